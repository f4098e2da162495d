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
        infer_cores: true,
        count_only: None,
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

// Inferring thread siblings from a few CPUs per node (`CpuReader::infer_domain`): each test
// builds a tree, loads it with inference on and off, checks the two topologies are equal, and
// checks from the files read whether it inferred or fell back.

/// Core c's threads c, c+n, ... (x86 numbering).
fn stride(n: usize, smt: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|c| (0..smt).map(|k| c + k * n).collect())
        .collect()
}

/// Core c's threads c*smt .. c*smt+smt-1 (POWER, ARM).
fn adjacent(n: usize, smt: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|c| (0..smt).map(|k| c * smt + k).collect())
        .collect()
}

fn list(v: &[usize]) -> String {
    v.iter().copied().collect::<CpuSet>().to_list()
}

/// A machine whose online (and present) CPUs are those of `cores`, each CPU's `core_cpus_list`
/// naming its core, one package, `nodes` as the nodes' cpulists, and the kernel saying SMT is on.
fn smt_tree(name: &str, cores: &[Vec<usize>], nodes: &[&str]) -> TestFs {
    let t = TestFs::new(name);
    let all: Vec<usize> = cores.iter().flatten().copied().collect();
    let c = "sys/devices/system/cpu";
    t.file(&format!("{c}/online"), &list(&all))
        .file(&format!("{c}/present"), &list(&all))
        .file(&format!("{c}/smt/active"), "1\n")
        .file(&format!("{c}/smt/control"), "on\n");
    for (i, core) in cores.iter().enumerate() {
        for cpu in core {
            let d = format!("{c}/cpu{cpu}/topology");
            t.file(&format!("{d}/core_cpus_list"), &list(core))
                .file(&format!("{d}/core_id"), &i.to_string())
                .file(&format!("{d}/package_cpus_list"), &list(&all))
                .file(&format!("{d}/physical_package_id"), "0");
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        t.file(&format!("sys/devices/system/node/node{i}/cpulist"), n);
    }
    t
}

fn remove(t: &TestFs, rel: &str) {
    std::fs::remove_file(t.root.join(rel)).unwrap();
}

/// The cores (and the files read) with inference on or off.
fn cores_read(t: &TestFs, infer: bool, packages: bool) -> (Topology, usize) {
    let fs = t.fs();
    let want = Want {
        scope: None,
        cores: true,
        packages,
        complexes: false,
        distances: false,
        infer_cores: infer,
        count_only: None,
    };
    (
        Topology::build(&read_facts_for(&fs, &want).unwrap()),
        fs.files_read(),
    )
}

/// The cores as lists, with inference on, after checking that reading every core gives the same
/// topology; and how many more files inference read (negative: fewer).
fn inferred(t: &TestFs, packages: bool) -> (Vec<String>, isize) {
    let (on, n_on) = cores_read(t, true, packages);
    let (off, n_off) = cores_read(t, false, packages);
    assert_eq!(on, off, "inferred and read topologies differ");
    let cores = on.cores.iter().map(|c| c.cpus.to_list()).collect();
    (cores, n_on as isize - n_off as isize)
}

/// Inference read only `smt/control`, `present` and the hybrid PMU's `cpus` (absent) more, then
/// every core as before.
const FELL_BACK: isize = 3;

#[test]
fn infers_a_stride_numbered_machine_from_three_cpus_per_node() {
    // Two nodes of eight SMT2 cores: node 0 = 0-7,16-23, node 1 = 8-15,24-31.
    let t = smt_tree("infer-stride", &stride(16, 2), &["0-7,16-23", "8-15,24-31"]);
    let (cores, delta) = inferred(&t, false);
    assert_eq!(cores.len(), 16);
    assert_eq!(cores[3], "3,19");
    // Off: 16 sibling files. On: control, present, cpu_atom/cpus, and CPUs 0, 23 (core 7) and 4
    // per node.
    assert_eq!(delta, 3 + 2 * 3 - 16);
    // With packages read, each translate is checked to lie in one package.
    assert_eq!(inferred(&t, true).1, 3 + 2 * 3 - 16);
}

/// The cores of `scope` only, as a plan asks for them.
fn cores_within(scope: CpuSet, infer_cores: bool) -> Want {
    Want {
        scope: Some(scope),
        cores: true,
        packages: false,
        complexes: false,
        distances: false,
        infer_cores,
        count_only: None,
    }
}

#[test]
fn infers_within_a_scope_only_its_cores() {
    // A GPU's node, or a cgroup's part of it: two nodes of 16 SMT2 cores, 12 CPUs of each wanted.
    let t = smt_tree(
        "infer-scope",
        &stride(32, 2),
        &["0-15,32-47", "16-31,48-63"],
    );
    let read = |infer: bool| {
        let fs = t.fs();
        let want = cores_within(set("1-12,17-28"), infer);
        let topo = Topology::build(&read_facts_for(&fs, &want).unwrap());
        (topo, fs.files_read())
    };
    let ((on, n_on), (off, n_off)) = (read(true), read(false));
    assert_eq!(on, off);
    let cores: Vec<String> = on.cores.iter().map(|c| c.cpus.to_list()).collect();
    assert_eq!(cores.len(), 24);
    assert_eq!((cores[0].as_str(), cores[23].as_str()), ("1,33", "28,60"));
    // Per node: CPUs 1, 12 and 7 instead of 12 files.
    assert_eq!(n_on as isize - n_off as isize, 3 + 2 * 3 - 24);
    // A scope of a few CPUs per node is not worth the precondition's files: none are read.
    let fs = t.fs();
    let want = cores_within(set("1-6,17-22"), true);
    read_facts_for(&fs, &want).unwrap();
    let n_small = fs.files_read();
    let fs = t.fs();
    read_facts_for(
        &fs,
        &Want {
            infer_cores: false,
            ..want
        },
    )
    .unwrap();
    assert_eq!(n_small, fs.files_read());
}

#[test]
fn infers_power_smt4_adjacent_numbering() {
    let t = smt_tree("infer-smt4", &adjacent(8, 4), &["0-15", "16-31"]);
    let (cores, delta) = inferred(&t, false);
    assert_eq!(cores[1], "4-7");
    assert_eq!(delta, 3 + 2 * 3 - 8);
    // No node directory: the packages (when read), else the whole machine, is one domain.
    std::fs::remove_dir_all(t.root.join("sys/devices/system/node")).unwrap();
    assert_eq!(inferred(&t, true).1, 3 + 3 - 8);
    assert_eq!(inferred(&t, false).1, 3 + 3 - 8);
}

#[test]
fn no_inference_without_the_kernels_word() {
    let c = "sys/devices/system/cpu";
    // smt/control missing (kernels before 4.19, snapshots): one file more, then every core.
    let t = smt_tree("infer-nocontrol", &stride(8, 2), &["0-15"]);
    remove(&t, &format!("{c}/smt/control"));
    assert_eq!(inferred(&t, false).1, 1);
    // SMT forced off, not supported, off, or a POWER thread count: the same.
    for control in ["off", "forceoff", "notsupported", "notimplemented", "2", ""] {
        t.file(&format!("{c}/smt/control"), control);
        assert_eq!(inferred(&t, false).1, 1, "control {control:?}");
    }
    // smt/active missing or odd: no extra file at all.
    t.file(&format!("{c}/smt/control"), "on");
    remove(&t, &format!("{c}/smt/active"));
    assert_eq!(inferred(&t, false).1, 0);
    t.file(&format!("{c}/smt/active"), "yes");
    assert_eq!(inferred(&t, false).1, 0);
    // `present` missing, unreadable as a list, or naming a CPU not online.
    t.file(&format!("{c}/smt/active"), "1");
    remove(&t, &format!("{c}/present"));
    assert_eq!(inferred(&t, false).1, 2);
    t.file(&format!("{c}/present"), "banana");
    assert_eq!(inferred(&t, false).1, 2);
    t.file(&format!("{c}/present"), "0-16");
    assert_eq!(inferred(&t, false).1, 2);
    t.file(&format!("{c}/present"), "0-15");
    assert!(inferred(&t, false).1 < 0, "the same tree infers");
}

#[test]
fn a_cpu_offlined_mid_core_falls_back() {
    // Ten SMT4 cores 0-3 ... 36-39 with threads taken offline by hand (`ppc64_cpu --smt=2` on
    // some cores): every core shows two threads but core 4-7, which shows four. The first, last
    // and middle CPUs (0, 36, 16) all show a pair, and the online CPUs tile by pairs: only
    // `present` (0-39, not all online) tells.
    let mut cores = vec![vec![0, 1], vec![4, 5, 6, 7]];
    cores.extend((2..10).map(|c| vec![4 * c, 4 * c + 1]));
    let online: CpuSet = cores.iter().flatten().copied().collect();
    let t = smt_tree("infer-offlined", &cores, &[&online.to_list()]);
    let c = "sys/devices/system/cpu";
    t.file(&format!("{c}/present"), "0-39");
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 10);
    assert_eq!(got[1], "4-7");
    assert_eq!(delta, 2, "control and present read");
    // Had `present` said all online, the tiling by pairs would have passed (the guard is needed).
    t.file(&format!("{c}/present"), &online.to_list());
    let (on, _) = cores_read(&t, true, false);
    assert_eq!(
        on.cores.len(),
        11,
        "inference without the present check splits 4-7"
    );
    // On x86 numbering one offline CPU breaks the tiling itself: 0-7,8-15 with CPU 10 offline.
    let mut cores = stride(8, 2);
    cores[2] = vec![2];
    let t = smt_tree("infer-offline-x86", &cores, &["0-9,11-15"]);
    assert_eq!(inferred(&t, false).1, FELL_BACK);
}

#[test]
fn hybrid_cores_fall_back() {
    // P-cores of two threads, E-cores of one at the end (Alder Lake numbering): the last CPU
    // shows one thread.
    let mut cores = adjacent(6, 2);
    cores.extend((12..20).map(|c| vec![c]));
    let t = smt_tree("infer-hybrid", &cores, &["0-19"]);
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 14);
    assert_eq!(delta, FELL_BACK);
    // Two E-cores between P-cores, where no sample looks: only the kernel's hybrid PMU tells.
    let mut cores = adjacent(4, 2);
    cores.extend([vec![8], vec![9]]);
    cores.extend((5..10).map(|c| vec![2 * c, 2 * c + 1]));
    let t = smt_tree("infer-hybrid-mid", &cores, &["0-19"]);
    t.file("sys/devices/cpu_atom/cpus", "8-9\n");
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 11);
    assert_eq!(delta, FELL_BACK);
    std::fs::remove_dir_all(t.root.join("sys/devices/cpu_atom")).unwrap();
    let (on, _) = cores_read(&t, true, false);
    assert_eq!(on.cores.len(), 10, "without the PMU check 8 and 9 pair up");
    // A PMU file that cannot be read (a directory here) may still be there: no inference.
    t.dir("sys/devices/cpu_atom/cpus");
    assert_eq!(inferred(&t, false).1, FELL_BACK);
}

#[test]
fn irregular_patterns_fall_back() {
    // A wide core in the middle: first and last agree, the middle sample (CPU 8) does not.
    let mut cores = adjacent(4, 2);
    cores.push(vec![8, 9, 10, 11]);
    cores.extend((6..9).map(|c| vec![2 * c, 2 * c + 1]));
    let t = smt_tree("infer-wide-middle", &cores, &["0-17"]);
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 8);
    assert_eq!(got[4], "8-11");
    assert_eq!(delta, FELL_BACK);
    // A single-thread first core (SMT active elsewhere): no pattern of two.
    let mut cores = vec![vec![0]];
    cores.extend((0..8).map(|c| vec![1 + 2 * c, 2 + 2 * c]));
    let t = smt_tree("infer-single-first", &cores, &["0-16"]);
    assert_eq!(inferred(&t, false).1, FELL_BACK);
    // Numbering that tiles but changes: cores 0,2 and 1,3, then adjacent pairs 4,5 ... 14,15.
    let mut cores = vec![vec![0, 2], vec![1, 3]];
    cores.extend((2..8).map(|c| vec![2 * c, 2 * c + 1]));
    let t = smt_tree("infer-mixed-numbering", &cores, &["0-15"]);
    assert_eq!(inferred(&t, false).1, FELL_BACK);
    // The last CPU's file lists a third thread (an inconsistent tree: which CPU's file is read
    // matters; these two agree).
    let t = smt_tree("infer-last-odd", &stride(8, 2), &["0-15"]);
    t.file(
        "sys/devices/system/cpu/cpu15/topology/core_cpus_list",
        "7,14-15",
    );
    assert_eq!(inferred(&t, false).1, FELL_BACK);
}

#[test]
fn siblings_across_nodes_or_packages_fall_back() {
    // Node 0 = 0-15, node 1 = 16-31, each core's threads in both (c, c+16).
    let t = smt_tree("infer-across-nodes", &stride(16, 2), &["0-15", "16-31"]);
    assert_eq!(inferred(&t, false).1, FELL_BACK);
    // One node over two packages (0-7, 8-15) whose cores pair c and c+8 across them: the build
    // splits them by package; inference must too (it does not infer).
    let t = smt_tree("infer-across-packages", &stride(8, 2), &["0-15"]);
    for cpu in 0..16 {
        let pkg = if cpu < 8 { "0-7" } else { "8-15" };
        t.file(
            &format!("sys/devices/system/cpu/cpu{cpu}/topology/package_cpus_list"),
            pkg,
        );
    }
    let (got, delta) = inferred(&t, true);
    assert_eq!(got.len(), 16);
    assert_eq!(delta, FELL_BACK);
}

#[test]
fn odd_nodes_fall_back() {
    // A node listing CPUs that do not exist (POWER lists every possible CPU): with every present
    // CPU online they are no core's threads, and the node infers.
    let t = smt_tree("infer-node-absent", &stride(8, 2), &["0-31"]);
    assert_eq!(inferred(&t, false).1, 3 + 3 - 8);
    // A listed CPU that is present but offline (a core missing a thread): no inference.
    t.file("sys/devices/system/cpu/present", "0-16");
    assert_eq!(inferred(&t, false).1, 2);
    // Overlapping nodes (every node lists every CPU, as broken firmware does): not attempted.
    let t = smt_tree("infer-overlap", &stride(8, 2), &["0-15", "0-15"]);
    assert_eq!(inferred(&t, false).1, 0);
    // A CPU in no node is read on its own; the nodes still infer.
    let t = smt_tree("infer-nodeless", &stride(8, 2), &["0-6,8-14"]);
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 8);
    assert_eq!(delta, 3 + 3 + 1 - 8);
}

#[test]
fn missing_or_odd_sibling_files_fall_back() {
    // The sibling files of core 0,8 are missing: each is a core of its own.
    let t = smt_tree("infer-missing", &stride(8, 2), &["0-15"]);
    remove(&t, "sys/devices/system/cpu/cpu0/topology/core_cpus_list");
    remove(&t, "sys/devices/system/cpu/cpu8/topology/core_cpus_list");
    let (got, delta) = inferred(&t, false);
    assert_eq!((got.len(), got[0].as_str()), (9, "0"));
    assert_eq!(delta, FELL_BACK);
    // A sibling file naming a CPU that is not online.
    let t = smt_tree("infer-names-offline", &stride(8, 2), &["0-15"]);
    t.file(
        "sys/devices/system/cpu/cpu0/topology/core_cpus_list",
        "0,8,99",
    );
    assert_eq!(inferred(&t, false).1, FELL_BACK);
    // A file that does not list its own CPU.
    t.file("sys/devices/system/cpu/cpu0/topology/core_cpus_list", "1,9");
    assert_eq!(inferred(&t, false).1, FELL_BACK);
}

#[test]
fn compute_units_fall_back_and_keep_their_core_ids() {
    // Bulldozer: thread siblings 2c, 2c+1 with their own core_ids; every core_id is read.
    let t = smt_tree("infer-bulldozer", &adjacent(8, 2), &["0-15"]);
    for cpu in 0..16 {
        t.file(
            &format!("sys/devices/system/cpu/cpu{cpu}/topology/core_id"),
            &cpu.to_string(),
        );
    }
    let (got, delta) = inferred(&t, false);
    assert_eq!(got.len(), 16, "{got:?}");
    assert_eq!(delta, FELL_BACK);
}

#[test]
fn an_online_claim_beyond_the_cpu_directories_is_bounded_by_them() {
    // The kernel makes a directory for every CPU it lists; a tree claiming more (corrupt or
    // trimmed) is narrowed to the directories, whichever probed CPU is missing.
    let t = TestFs::new("online-claim");
    for id in 0..4 {
        t.dir(&format!("sys/devices/system/cpu/cpu{id}"));
    }
    t.file("sys/devices/system/cpu/online", "0-7\n");
    assert_eq!(read_online(&t.fs()).unwrap().to_list(), "0-3");
    t.file("sys/devices/system/cpu/online", "0-3,4000\n");
    assert_eq!(read_online(&t.fs()).unwrap().to_list(), "0-3");
    // A claim the directories back is taken as it is.
    t.file("sys/devices/system/cpu/online", "0-2\n");
    assert_eq!(read_online(&t.fs()).unwrap().to_list(), "0-2");
    // Large: 0-999 claimed, directories for 0-499 only; the last CPU's is missing.
    let big = TestFs::new("online-claim-big");
    for id in 0..500 {
        big.dir(&format!("sys/devices/system/cpu/cpu{id}"));
    }
    big.file("sys/devices/system/cpu/online", "0-999\n");
    assert_eq!(read_online(&big.fs()).unwrap().to_list(), "0-499");
}
