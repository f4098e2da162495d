//! Unit tests of the topology: reading, building, the allowed set.

use super::*;
#[path = "../../tests/support/every_cpu.rs"]
mod every_cpu;
use crate::sysfs::TestFs;
use every_cpu::read_facts_every_cpu;

fn set(s: &str) -> CpuSet {
    CpuSet::parse_list(s).unwrap()
}

/// One CPU's topology files in list form.
fn cpu(t: &TestFs, id: usize, threads: &str, package: &str, pkg_id: i64, llc: &str) {
    let d = format!("sys/devices/system/cpu/cpu{id}");
    t.file(
        &format!("{d}/topology/thread_siblings_list"),
        &format!("{threads}\n"),
    )
    .file(
        &format!("{d}/topology/core_siblings_list"),
        &format!("{package}\n"),
    )
    .file(
        &format!("{d}/topology/physical_package_id"),
        &format!("{pkg_id}\n"),
    )
    .file(&format!("{d}/cache/index0/level"), "1\n")
    .file(&format!("{d}/cache/index0/type"), "Instruction\n")
    .file(&format!("{d}/cache/index0/shared_cpu_list"), "0-63\n")
    .file(&format!("{d}/cache/index3/level"), "3\n")
    .file(&format!("{d}/cache/index3/type"), "Unified\n")
    .file(&format!("{d}/cache/index3/shared_cpu_list"), llc);
}

/// Two packages of two SMT4 cores; CPUs 14-15 offline; node 0 lists absent CPUs; node 2 CPU-less.
fn smt4(t: &TestFs) {
    t.file("sys/devices/system/cpu/online", "0-13\n");
    for c in 0..14usize {
        let core = c / 4 * 4;
        let pkg = c / 8 * 8;
        cpu(
            t,
            c,
            &format!("{core}-{}", core + 3),
            &format!("{pkg}-{}", pkg + 7),
            (c / 8) as i64,
            &format!("{pkg}-{}", pkg + 7),
        );
    }
    t.file("sys/devices/system/node/online", "0-1,2\n")
        .file("sys/devices/system/node/node0/cpulist", "0-7,64-71\n")
        .file("sys/devices/system/node/node0/distance", "10 20 40\n")
        .file("sys/devices/system/node/node1/cpulist", "8-15\n")
        .file("sys/devices/system/node/node1/distance", "20 10 40\n")
        .file("sys/devices/system/node/node2/cpulist", "\n")
        .file("sys/devices/system/node/node2/distance", "40 30 10\n");
}

/// With `cpu/smt/active` = 0 every CPU is its own core and no sibling file is read: here the
/// sibling files (wrongly) claim pairs, so reading them would give two cores, not four.
#[test]
fn smt_inactive_means_one_core_per_cpu_without_reading_siblings() {
    let t = TestFs::new("smt-off");
    t.file("sys/devices/system/cpu/online", "0-3\n");
    for c in 0..4usize {
        let pair = c / 2 * 2;
        cpu(&t, c, &format!("{pair}-{}", pair + 1), "0-3", 0, "0-3");
    }
    let want = Want {
        scope: None,
        cores: true,
        complexes: false,
        packages: false,
        distances: false,
    };
    let with_siblings = read_cpu_facts(&t.fs(), &set("0-3"), &want).unwrap();
    assert_eq!(with_siblings[0].thread_siblings, Some(set("0-1")));
    t.file("sys/devices/system/cpu/smt/active", "0\n");
    let fs = t.fs();
    let facts = read_cpu_facts(&fs, &set("0-3"), &want).unwrap();
    for f in &facts {
        assert_eq!(
            f.thread_siblings,
            Some(CpuSet::single(f.id)),
            "cpu {}",
            f.id
        );
    }
    assert_eq!(fs.files_read(), 1, "only smt/active");
    // Any other value (1, or a missing file as above) reads the siblings.
    t.file("sys/devices/system/cpu/smt/active", "1\n");
    let facts = read_cpu_facts(&t.fs(), &set("0-3"), &want).unwrap();
    assert_eq!(facts[3].thread_siblings, Some(set("2-3")));
}

#[test]
fn smt4_packages_cores_nodes() {
    let t = TestFs::new("smt4");
    smt4(&t);
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.online, set("0-13"));
    let cores: Vec<String> = topo.cores.iter().map(|c| c.cpus.to_list()).collect();
    assert_eq!(cores, ["0-3", "4-7", "8-11", "12-13"]);
    assert_eq!(
        topo.cores.iter().map(|c| c.package).collect::<Vec<_>>(),
        [0, 0, 1, 1]
    );
    assert_eq!(topo.packages.len(), 2);
    assert_eq!(topo.packages[1].cpus, set("8-13"));
    assert_eq!(topo.packages[1].os_id, Some(1));
    assert_eq!(topo.complexes, vec![set("0-7"), set("8-13")]);
    // Offline and absent CPUs are dropped from the node lists; the CPU-less node stays.
    assert_eq!(topo.nodes.len(), 3);
    assert_eq!(topo.node_cpus(0), set("0-7"));
    assert_eq!(topo.node_cpus(1), set("8-13"));
    assert!(topo.node_cpus(2).is_empty());
    assert_eq!(topo.distance(0, 2), Some(40));
    assert_eq!(topo.nearest_cpu_nodes(2), vec![1]);
    assert_eq!(topo.node_of_cpu(9), Some(1));
    assert_eq!(topo.package_of_cpu(9), Some(1));
    assert_eq!(topo.package_nodes(0), vec![0]);
    assert_eq!(
        topo.cores_within(&set("2-9")),
        vec![set("2-3"), set("4-7"), set("8-9")]
    );
    assert_eq!(topo.allowed, set("0-13"));
}

#[test]
fn mask_forms_and_newer_names() {
    let t = TestFs::new("masks");
    t.file("sys/devices/system/cpu/present", "0-3\0");
    for c in 0..4 {
        let d = format!("sys/devices/system/cpu/cpu{c}/topology");
        let core = if c < 2 { "3" } else { "c" };
        t.file(
            &format!("{d}/core_cpus"),
            &format!("00000000,0000000{core}\n"),
        )
        .file(&format!("{d}/package_cpus"), "f\n")
        .file(&format!("{d}/physical_package_id"), "-1\n");
    }
    t.file("sys/devices/system/node/node0/cpumap", "0000000f\n");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.online, set("0-3"));
    assert_eq!(topo.cores.len(), 2);
    assert_eq!(topo.cores[1].cpus, set("2-3"));
    assert_eq!(topo.packages.len(), 1);
    assert_eq!(topo.packages[0].os_id, None, "-1 is no id");
    assert_eq!(topo.node_cpus(0), set("0-3"));
    // No cache information: one complex per package.
    assert_eq!(topo.complexes, vec![set("0-3")]);
}

#[test]
fn compute_unit_siblings_with_own_core_ids_are_cores() {
    let t = TestFs::new("bulldozer");
    t.file("sys/devices/system/cpu/online", "0-3");
    for c in 0..4 {
        let d = format!("sys/devices/system/cpu/cpu{c}/topology");
        t.file(
            &format!("{d}/thread_siblings_list"),
            if c < 2 { "0-1" } else { "2-3" },
        )
        .file(&format!("{d}/core_siblings_list"), "0-3")
        .file(&format!("{d}/core_id"), &format!("{c}"));
    }
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.cores.len(), 4);
    // Same core_id: real SMT pairs (compute units are a property of the processor model:
    // the first core's ids decide for the machine, so both pairs change together).
    t.file("sys/devices/system/cpu/cpu1/topology/core_id", "0")
        .file("sys/devices/system/cpu/cpu3/topology/core_id", "2");
    let fs = t.fs();
    let topo = Topology::load(&fs, &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.cores.len(), 2);
    assert_eq!(topo.cores[0].cpus, set("0-1"));
    // SMT: the second core's ids are not read.
    let every = Topology::build(&read_facts_every_cpu(&t.fs()).unwrap());
    assert_eq!(every.cores, topo.cores);
}

#[test]
fn cpus_without_topology_and_offline_dirs() {
    let t = TestFs::new("bare");
    t.dir("sys/devices/system/cpu/cpu0")
        .dir("sys/devices/system/cpu/cpu1")
        .file("sys/devices/system/cpu/cpu2/online", "0\n")
        .dir("sys/devices/system/cpu/cpu10");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.online, set("0-1,10"));
    assert_eq!(topo.cores.len(), 3, "each CPU its own core");
    assert_eq!(topo.packages.len(), 1, "unknown packages make one");
    assert!(topo.nodes.is_empty());
    assert_eq!(topo.node_of_cpu(0), None);
}

#[test]
fn no_cpu_at_all_is_an_error_naming_the_dir() {
    let t = TestFs::new("nocpu");
    t.dir("sys");
    let e = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap_err();
    assert!(e.message().contains("sys/devices/system/cpu"), "{e}");
}

#[test]
fn cgroup_v2_walks_up() {
    let t = TestFs::new("cg2");
    smt4(&t);
    t.file("proc/self/cgroup", "0::/job/step\n")
        .file("sys/fs/cgroup/job/cpuset.cpus.effective", "2-9\n")
        .file("sys/fs/cgroup/job/step/cpuset.cpus", "\n");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.allowed, set("2-9"));
    let topo = Topology::load(&t.fs(), &AllowedFrom::Process(set("0-4"))).unwrap();
    assert_eq!(topo.allowed, set("2-4"));
}

#[test]
fn cgroup_v1_and_legacy_cpuset() {
    let t = TestFs::new("cg1");
    smt4(&t);
    t.file("proc/self/cgroup", "4:cpuset:/slurm\n1:name=systemd:/x\n")
        .file("sys/fs/cgroup/cpuset/slurm/cpuset.effective_cpus", "8-11\n");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.allowed, set("8-11"));
    // An effective set naming offline CPUs is stale: the configured one is used.
    t.file("sys/fs/cgroup/cpuset/slurm/cpuset.effective_cpus", "8-15\n")
        .file("sys/fs/cgroup/cpuset/slurm/cpuset.cpus", "0-3\n");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.allowed, set("0-3"));

    let t = TestFs::new("legacy");
    smt4(&t);
    t.file("proc/self/cpuset", "/prout\n")
        .file("proc/mounts", "none /dev/cpuset cpuset rw 0 0\n")
        .file("dev/cpuset/prout/cpus", "5-6\n");
    let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
    assert_eq!(topo.allowed, set("5-6"));
    // Explicit is not narrowed; it must hold an online CPU.
    let topo = Topology::load(&t.fs(), &AllowedFrom::Explicit(set("0-1"))).unwrap();
    assert_eq!(topo.allowed, set("0-1"));
    let e = Topology::load(&t.fs(), &AllowedFrom::Explicit(set("20-21"))).unwrap_err();
    assert!(e.message().contains("20-21"), "{e}");
}

#[test]
fn disjoint_cgroup_falls_back_with_a_warning() {
    let t = TestFs::new("cgdisjoint");
    smt4(&t);
    t.file("proc/self/cgroup", "0::/\n")
        .file("sys/fs/cgroup/cpuset.cpus.effective", "8-9\n");
    let mut w = Vec::new();
    let topo = Topology::load_with(
        &t.fs(),
        &AllowedFrom::Process(set("0-1")),
        true,
        &mut w,
        |_, _| Ok(Want::everything()),
    )
    .unwrap();
    assert_eq!(topo.allowed, set("0-1"));
    assert!(w.iter().any(|w| w.contains("8-9")), "{w:?}");
    let e = Topology::load(&t.fs(), &AllowedFrom::Process(set("40"))).unwrap_err();
    assert!(e.message().contains("40"), "{e}");
}
