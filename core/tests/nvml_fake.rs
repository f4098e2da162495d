//! `nvml::discover` and `nvml::reconcile` against the fake libnvidia-ml.so.1 (tests/fake_nvml).

mod nvml_support;

use gpuaff_core::nvml::{discover, reconcile};
use gpuaff_core::{CpuSet, ErrorKind, Gpu};
use nvml_support::*;
use std::time::Instant;

fn cpus(list: &str) -> CpuSet {
    CpuSet::parse_list(list).expect("test cpulist")
}

#[test]
fn dgx_a100_is_read_back_exactly() {
    let (_dir, lib) = fake_machine("dgx", Variant::Full, &dgx_a100_desc());
    let gpus = discover(Some(&lib)).expect("discover through the fake NVML");
    assert_eq!(gpus.len(), 8);
    for (i, g) in gpus.iter().enumerate() {
        assert_eq!(g.index, i);
        assert_eq!(g.pci_bus_id, format!("0000:{}:00.0", DGX_A100_BUS[i]));
        assert_eq!(g.uuid.as_deref(), Some(dgx_uuid(i).as_str()));
        assert_eq!(g.numa_node, Some(DGX_A100_NODES[i]), "GPU {i}");
        assert_eq!(g.local_cpus, cpus(&node_cpus(DGX_A100_NODES[i])), "GPU {i}");
        assert_eq!(g.model.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
        assert_eq!(g.minor, Some(i as u32));
        assert_eq!(g.mem_node, None);
        assert!(g.migs.is_empty());
    }
    // the worked example's first GPU, spelled out
    assert_eq!(gpus[0].local_cpus.to_list(), "48-63,176-191");
    assert_eq!(gpus[2].local_cpus.to_list(), "16-31,144-159");
}

#[test]
fn cpus_above_1024_are_not_cut_off() {
    let desc = "gpu pci=00000000:1B:00.0 uuid=GPU-big node=9 cpus=1100-1163,4000-4095 memnode=- model=X minor=0 migs=-\n";
    let (_dir, lib) = fake_machine("bigcpus", Variant::Full, desc);
    let gpus = discover(Some(&lib)).expect("discover");
    assert_eq!(gpus[0].local_cpus.to_list(), "1100-1163,4000-4095");
    assert_eq!(gpus[0].pci_bus_id, "0000:1b:00.0");
}

#[test]
fn grace_gpu_memory_node_is_mem_node_not_numa_node() {
    // GH200 pair: CPU nodes 0 and 1, GPU memory as CPU-less nodes 4 and 12.
    let desc = "\
gpu pci=00000009:01:00.0 uuid=GPU-grace0 node=0 cpus=0-71 memnode=4 model=NVIDIA_GH200_480GB minor=0 migs=-
gpu pci=00000019:01:00.0 uuid=GPU-grace1 node=1 cpus=72-143 memnode=12 model=NVIDIA_GH200_480GB minor=1 migs=-
";
    let (_dir, lib) = fake_machine("grace", Variant::Full, desc);
    let gpus = discover(Some(&lib)).expect("discover");
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].pci_bus_id, "0009:01:00.0");
    assert_eq!(gpus[0].mem_node, Some(4));
    assert_eq!(gpus[0].numa_node, Some(0));
    assert_eq!(gpus[0].local_cpus, cpus("0-71"));
    assert_eq!(gpus[1].pci_bus_id, "0019:01:00.0");
    assert_eq!(gpus[1].mem_node, Some(12));
    assert_eq!(gpus[1].numa_node, Some(1));
    assert_eq!(gpus[1].model.as_deref(), Some("NVIDIA GH200 480GB"));
}

#[test]
fn unknown_node_stays_unknown() {
    let desc = "gpu pci=00000000:00:04.0 uuid=GPU-vm node=-1 cpus=0-7 memnode=- model=NVIDIA_L4 minor=0 migs=-\n";
    let (_dir, lib) = fake_machine("vm", Variant::Full, desc);
    let gpus = discover(Some(&lib)).expect("discover");
    assert_eq!(gpus[0].numa_node, None);
    assert_eq!(gpus[0].local_cpus, cpus("0-7"));
}

#[test]
fn mig_instances_are_listed_under_their_parent() {
    let mut desc = dgx_a100_desc();
    desc = desc.replacen(
        "minor=1 migs=-",
        "minor=1 migs=MIG-11111111-2222-3333-4444-555555555555,MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        1,
    );
    desc = desc.replacen(
        "minor=6 migs=-",
        "minor=6 migs=MIG-66666666-0000-0000-0000-000000000006",
        1,
    );
    let (_dir, lib) = fake_machine("mig", Variant::Full, &desc);
    let gpus = discover(Some(&lib)).expect("discover");
    assert_eq!(gpus.len(), 8, "MIG instances are not GPUs of their own");
    assert_eq!(
        gpus[1].migs,
        [
            "MIG-11111111-2222-3333-4444-555555555555",
            "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        ]
    );
    assert_eq!(gpus[6].migs, ["MIG-66666666-0000-0000-0000-000000000006"]);
    for i in [0, 2, 3, 4, 5, 7] {
        assert!(gpus[i].migs.is_empty(), "GPU {i}: {:?}", gpus[i].migs);
    }
    // MIG mode does not hide the parent's own facts
    assert_eq!(gpus[1].uuid.as_deref(), Some(dgx_uuid(1).as_str()));
    assert_eq!(gpus[1].numa_node, Some(3));
}

#[test]
fn init_failure_is_a_clear_error() {
    let (dir, lib) = fake_machine("failinit", Variant::Full, &dgx_a100_desc());
    std::fs::write(dir.join("fail_init"), "").expect("switch");
    let err = discover(Some(&lib)).expect_err("init fails");
    assert_eq!(err.kind(), ErrorKind::Nvml);
    let msg = err.to_string();
    assert!(msg.contains("cannot load NVML"), "{msg}");
    assert!(
        msg.contains(&lib.display().to_string()),
        "names the library: {msg}"
    );
    assert!(msg.contains("driver is not loaded"), "says why: {msg}");
    eprintln!("init failure reads: {msg}");
}

#[test]
fn missing_description_fails_init_without_panic() {
    let dir = test_dir("nodesc");
    let lib = install_fake(&dir, Variant::Full);
    let err = discover(Some(&lib)).expect_err("no nvml.txt: the fake refuses init");
    assert_eq!(err.kind(), ErrorKind::Nvml);
}

#[test]
fn missing_affinity_symbols_leave_locality_empty() {
    let (_dir, lib) = fake_machine("noaff", Variant::NoAffinity, &dgx_a100_desc());
    let gpus = discover(Some(&lib)).expect("an old driver still lists its GPUs");
    assert_eq!(gpus.len(), 8);
    for (i, g) in gpus.iter().enumerate() {
        assert_eq!(g.pci_bus_id, format!("0000:{}:00.0", DGX_A100_BUS[i]));
        assert_eq!(g.uuid.as_deref(), Some(dgx_uuid(i).as_str()));
        assert!(g.local_cpus.is_empty(), "GPU {i}: {}", g.local_cpus);
        assert_eq!(g.numa_node, None);
    }
}

#[test]
fn missing_shutdown_symbol_does_not_panic() {
    let (_dir, lib) = fake_machine("noshutdown", Variant::NoShutdown, &dgx_a100_desc());
    let gpus = discover(Some(&lib)).expect("the answer is good even if NVML cannot be shut down");
    assert_eq!(gpus.len(), 8);
    assert_eq!(gpus[7].numa_node, Some(5));
}

#[test]
fn absent_library_is_an_error() {
    let dir = test_dir("absent");
    let lib = dir.join("no-such-dir").join("libnvidia-ml.so.1");
    let err = discover(Some(&lib)).expect_err("no library there");
    assert_eq!(err.kind(), ErrorKind::Nvml);
    let msg = err.to_string();
    assert!(
        msg.contains("cannot load NVML") && msg.contains("no-such-dir"),
        "{msg}"
    );
    eprintln!("absent library reads: {msg}");
}

#[test]
fn a_file_that_is_not_a_library_is_an_error() {
    let dir = test_dir("notalib");
    let lib = dir.join("libnvidia-ml.so.1");
    std::fs::write(&lib, "not an ELF file").expect("write");
    let err = discover(Some(&lib)).expect_err("garbage library");
    assert_eq!(err.kind(), ErrorKind::Nvml);
}

#[test]
fn slow_init_still_works() {
    let (dir, lib) = fake_machine("slow", Variant::Full, &dgx_a100_desc());
    std::fs::write(dir.join("slow_init_ms"), "200\n").expect("switch");
    let start = Instant::now();
    let gpus = discover(Some(&lib)).expect("slow init is still init");
    assert!(start.elapsed().as_millis() >= 200, "the switch took effect");
    assert_eq!(gpus.len(), 8);
}

#[test]
fn no_gpus_is_an_empty_list() {
    let (_dir, lib) = fake_machine("nogpu", Variant::Full, "# a driver without GPUs\n");
    assert_eq!(discover(Some(&lib)).expect("discover"), Vec::<Gpu>::new());
}

#[test]
fn repeated_discovery_in_one_process() {
    // init/shutdown pairs must balance: the second call sees a fresh library state
    let (_dir, lib) = fake_machine("again", Variant::Full, &dgx_a100_desc());
    let first = discover(Some(&lib)).expect("first");
    let second = discover(Some(&lib)).expect("second");
    assert_eq!(first, second);
}

/// The real no-driver case: the dynamic loader's own search, outside any test library path. Run in
/// a child process (the loader reads LD_LIBRARY_PATH only at start).
#[test]
fn default_library_search_without_a_driver_is_an_error() {
    if std::env::var_os("GPUAFF_NVML_CHILD").is_some() {
        let result = discover(None);
        let driver = std::path::Path::new("/proc/driver/nvidia/version").exists();
        match result {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Nvml);
                assert!(e.to_string().contains("libnvidia-ml.so.1"), "{e}");
            }
            Ok(gpus) => assert!(driver, "no NVIDIA driver here, yet NVML listed {gpus:?}"),
        }
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "default_library_search_without_a_driver_is_an_error",
            "--nocapture",
        ])
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .env("GPUAFF_NVML_CHILD", "1")
        .output()
        .expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}

// ---- reconcile ----

fn dgx_sysfs() -> Vec<Gpu> {
    DGX_A100_BUS
        .iter()
        .zip(DGX_A100_NODES)
        .enumerate()
        .map(|(i, (bus, node))| Gpu {
            index: i,
            pci_bus_id: format!("0000:{bus}:00.0"),
            numa_node: Some(node),
            local_cpus: cpus(&node_cpus(node)),
            ..Gpu::default()
        })
        .collect()
}

#[test]
fn reconcile_agreeing_sources_has_no_warning_and_fills_identity() {
    let (_dir, lib) = fake_machine("agree", Variant::Full, &dgx_a100_desc());
    let nvml = discover(Some(&lib)).expect("discover");
    let sysfs = dgx_sysfs();
    let (merged, warnings) = reconcile(&sysfs, &nvml);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(merged.len(), 8);
    for (i, g) in merged.iter().enumerate() {
        assert_eq!(g.pci_bus_id, sysfs[i].pci_bus_id);
        assert_eq!(g.local_cpus, sysfs[i].local_cpus);
        assert_eq!(g.uuid.as_deref(), Some(dgx_uuid(i).as_str()));
        assert_eq!(g.model.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
        assert_eq!(g.minor, Some(i as u32));
    }
}

#[test]
fn reconcile_disagreement_names_both_answers_and_keeps_sysfs() {
    // NVML puts GPU 0 on node 1
    let desc =
        dgx_a100_desc().replacen("node=3 cpus=48-63,176-191", "node=1 cpus=16-31,144-159", 1);
    let (_dir, lib) = fake_machine("disagree", Variant::Full, &desc);
    let nvml = discover(Some(&lib)).expect("discover");
    let (merged, warnings) = reconcile(&dgx_sysfs(), &nvml);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(
        w.contains("GPU 0000:07:00.0: sysfs says node 3 (CPUs 48-63,176-191), NVML says node 1 (CPUs 16-31,144-159)"),
        "{w}"
    );
    assert_eq!(merged[0].numa_node, Some(3));
    assert_eq!(merged[0].local_cpus, cpus("48-63,176-191"));
}

#[test]
fn reconcile_differing_uuid_is_a_warning() {
    let (_dir, lib) = fake_machine("uuid", Variant::Full, &dgx_a100_desc());
    let nvml = discover(Some(&lib)).expect("discover");
    let mut sysfs = dgx_sysfs();
    sysfs[4].uuid = Some("GPU-procfs-other".into());
    let (merged, warnings) = reconcile(&sysfs, &nvml);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("0000:87:00.0"), "{warnings:?}");
    assert!(warnings[0].contains("GPU-procfs-other"), "{warnings:?}");
    assert!(warnings[0].contains(&dgx_uuid(4)), "{warnings:?}");
    assert_eq!(merged[4].uuid.as_deref(), Some("GPU-procfs-other"));
}

#[test]
fn reconcile_nvml_only_and_sysfs_only_gpus() {
    let (_dir, lib) = fake_machine("onlyone", Variant::Full, &dgx_a100_desc());
    let nvml = discover(Some(&lib)).expect("discover");
    // sysfs misses GPU 2 (0000:47:00.0) and has one NVML does not know
    let mut sysfs = dgx_sysfs();
    sysfs.remove(2);
    sysfs.push(Gpu {
        pci_bus_id: "0000:e1:00.0".into(),
        numa_node: Some(5),
        local_cpus: cpus(&node_cpus(5)),
        ..Gpu::default()
    });
    let (merged, warnings) = reconcile(&sysfs, &nvml);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("0000:47:00.0") && w.contains("NVML lists it")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("0000:e1:00.0") && w.contains("NVML does not")));
    let ids: Vec<_> = merged.iter().map(|g| g.pci_bus_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "0000:07:00.0",
            "0000:0f:00.0",
            "0000:47:00.0",
            "0000:4e:00.0",
            "0000:87:00.0",
            "0000:90:00.0",
            "0000:b7:00.0",
            "0000:bd:00.0",
            "0000:e1:00.0"
        ]
    );
    assert!(merged.iter().enumerate().all(|(i, g)| g.index == i));
    assert_eq!(merged[2].numa_node, Some(1));
    assert_eq!(merged[2].uuid.as_deref(), Some(dgx_uuid(2).as_str()));
}

#[test]
fn reconcile_without_sysfs_gpus_is_nvml() {
    let (_dir, lib) = fake_machine("nosysfs", Variant::Full, &dgx_a100_desc());
    let nvml = discover(Some(&lib)).expect("discover");
    let (merged, warnings) = reconcile(&[], &nvml);
    assert!(warnings.is_empty());
    assert_eq!(merged, nvml);
}

#[test]
fn reconcile_does_not_warn_when_nvml_cannot_say() {
    let (_dir, lib) = fake_machine("noaffrec", Variant::NoAffinity, &dgx_a100_desc());
    let nvml = discover(Some(&lib)).expect("discover");
    let (merged, warnings) = reconcile(&dgx_sysfs(), &nvml);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(merged[5].local_cpus, cpus(&node_cpus(7)));
    assert_eq!(merged[5].uuid.as_deref(), Some(dgx_uuid(5).as_str()));
}

/// The fake's lookups that gpuaff's discovery does not use, straight through nvml-wrapper: by UUID
/// (GPU- and MIG-), by PCI bus id (8- and 4-digit domain), MIG parent.
#[test]
fn fake_lookups_through_nvml_wrapper() {
    let desc = dgx_a100_desc().replacen("minor=2 migs=-", "minor=2 migs=MIG-aa,MIG-bb", 1);
    let (_dir, lib) = fake_machine("lookups", Variant::Full, &desc);
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect("init");
    let by_uuid = nvml.device_by_uuid(dgx_uuid(5)).expect("by uuid");
    assert_eq!(by_uuid.index().expect("index"), 5);
    for id in ["00000000:4E:00.0", "0000:4e:00.0"] {
        let d = nvml.device_by_pci_bus_id(id).expect(id);
        assert_eq!(d.index().expect("index"), 3, "{id}");
    }
    assert!(nvml.device_by_pci_bus_id("0000:4f:00.0").is_err());
    let mig = nvml.device_by_uuid("MIG-bb").expect("by MIG uuid");
    assert!(mig.mig_is_mig_device_handle().expect("is mig"));
    let parent = mig.mig_parent_device().expect("parent");
    assert_eq!(parent.uuid().expect("uuid"), dgx_uuid(2));
    assert!(!parent.mig_is_mig_device_handle().expect("is mig"));
    assert!(nvml.device_by_uuid("GPU-nope").is_err());
}
