//! GPU identity through the fake NVML: `Machine::load` with GPU_AFFINITY_SOURCE=nvml/auto on fixture
//! trees (gpuaff_fixtures writes DIR/nvml.txt beside the sysfs tree), then `CUDA_VISIBLE_DEVICES`.
//!
//! NOTE (merge order): this file uses `gpuaff_fixtures::{write, by_name, catalog, Spec}` (branch
//! `fixtures`) and `Machine::load` / `gpu::resolve_visible` (branch `model`). On the `nvml` branch
//! alone it does not compile; all 12 tests pass on a merge of nvml + fixtures + model.

mod nvml_support;

use gpuaff_core::gpu::resolve_visible;
use gpuaff_core::{AllowedFrom, CpuSet, DeviceOrder, ErrorKind, Machine, Request, Source, Visible};
use gpuaff_fixtures::Spec;
use nvml_support::*;
use std::path::{Path, PathBuf};

/// Writes `spec` into a fresh directory with a private fake NVML beside it.
fn fixture(name: &str, spec: &Spec) -> (PathBuf, PathBuf) {
    let dir = test_dir(name);
    gpuaff_fixtures::write(spec, &dir).expect("write the fixture tree");
    let lib = install_fake(&dir, Variant::Full);
    (dir, lib)
}

fn dgx() -> Spec {
    gpuaff_fixtures::by_name("dgx-a100").expect("dgx-a100 in the catalog")
}

fn request(dir: &Path, lib: &Path, source: Source, cvd: Option<&str>) -> Request {
    Request {
        source,
        nvml_lib: Some(lib.to_path_buf()),
        fsroot: dir.to_path_buf(),
        devices: cvd.map_or_else(Default::default, |v| {
            gpuaff_core::gpu::DeviceEnv::default().with("CUDA_VISIBLE_DEVICES", v)
        }),
        ..Request::default()
    }
}

fn load(dir: &Path, lib: &Path, source: Source, cvd: Option<&str>) -> Machine {
    Machine::load(&request(dir, lib, source, cvd), AllowedFrom::Snapshot)
        .unwrap_or_else(|e| panic!("load {} ({source:?}): {e}", dir.display()))
}

fn visible(m: &Machine, cvd: Option<&str>) -> gpuaff_core::Result<Visible> {
    resolve_visible(&m.gpus, cvd, DeviceOrder::PciBusId)
}

fn cpus(list: &str) -> CpuSet {
    CpuSet::parse_list(list).expect("test cpulist")
}

/// Rewrites DIR/nvml.txt line by line.
fn edit_nvml(dir: &Path, f: impl Fn(usize, &str) -> String) {
    let path = dir.join("nvml.txt");
    let text = std::fs::read_to_string(&path).expect("read nvml.txt");
    let out: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("gpu "))
        .enumerate()
        .map(|(i, l)| f(i, l))
        .collect();
    std::fs::write(&path, out.join("\n") + "\n").expect("write nvml.txt");
}

fn set_field(line: &str, key: &str, value: &str) -> String {
    line.split(' ')
        .map(|tok| match tok.split_once('=') {
            Some((k, _)) if k == key => format!("{key}={value}"),
            _ => tok.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn nvml_source_reads_the_dgx_a100() {
    let (dir, lib) = fixture("id-dgx", &dgx());
    let m = load(&dir, &lib, Source::Nvml, None);
    assert_eq!(m.gpus.len(), 8);
    let nodes: Vec<_> = m.gpus.iter().map(|g| g.numa_node).collect();
    assert_eq!(nodes, [3, 3, 1, 1, 7, 7, 5, 5].map(Some));
    assert_eq!(m.gpus[0].pci_bus_id, "0000:07:00.0");
    assert_eq!(m.gpus[0].local_cpus, cpus("48-63,176-191"));
    assert_eq!(m.gpus[2].local_cpus, cpus("16-31,144-159"));
    assert!(m
        .gpus
        .iter()
        .all(|g| g.uuid.as_deref().is_some_and(|u| u.starts_with("GPU-"))));
}

#[test]
fn indices_select_and_reorder() {
    let (dir, lib) = fixture("id-idx", &dgx());
    let m = load(&dir, &lib, Source::Nvml, Some("5,2"));
    let v = visible(&m, Some("5,2")).expect("resolve");
    assert_eq!(v.gpus, [5, 2]);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    assert_eq!(m.gpus[5].numa_node, Some(7));
    assert_eq!(m.gpus[2].local_cpus, cpus("16-31,144-159"));
}

#[test]
fn full_uuids_from_nvml() {
    let (dir, lib) = fixture("id-uuid", &dgx());
    let all = load(&dir, &lib, Source::Nvml, None);
    let u6 = all.gpus[6].uuid.clone().expect("uuid 6");
    let u1 = all.gpus[1].uuid.clone().expect("uuid 1");
    let cvd = format!("{u6},{u1}");
    let m = load(&dir, &lib, Source::Nvml, Some(&cvd));
    assert_eq!(visible(&m, Some(&cvd)).expect("resolve").gpus, [6, 1]);
    // auto mode with sysfs that has no UUIDs (no driver procfs): NVML supplies them
    let (dir, lib) = fixture("id-uuid-auto", &dgx().procfs(false));
    let m = load(&dir, &lib, Source::Auto, Some(&cvd));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(visible(&m, Some(&cvd)).expect("resolve").gpus, [6, 1]);
    assert_eq!(m.gpus[6].local_cpus, cpus("80-95,208-223"));
}

/// GPUs 2 and 3 get UUIDs sharing the prefix `GPU-abcd`.
fn shared_prefix_fixture(name: &str) -> (PathBuf, PathBuf) {
    let (dir, lib) = fixture(name, &dgx());
    edit_nvml(&dir, |i, l| match i {
        2 => set_field(l, "uuid", "GPU-abcd1111-0000-0000-0000-000000000002"),
        3 => set_field(l, "uuid", "GPU-abcd2222-0000-0000-0000-000000000003"),
        _ => l.to_string(),
    });
    (dir, lib)
}

#[test]
fn unique_uuid_prefixes() {
    let (dir, lib) = shared_prefix_fixture("id-prefix");
    let m = load(&dir, &lib, Source::Nvml, None);
    for (cvd, want) in [
        ("GPU-abcd1", vec![2]),
        ("abcd2", vec![3]),
        ("GPU-ABCD2222", vec![3]),
        ("abcd22,GPU-abcd11", vec![3, 2]),
    ] {
        let v = visible(&m, Some(cvd)).unwrap_or_else(|e| panic!("{cvd}: {e}"));
        assert_eq!(v.gpus, want, "{cvd}");
    }
}

#[test]
fn ambiguous_uuid_prefix_is_an_error() {
    let (dir, lib) = shared_prefix_fixture("id-ambiguous");
    let m = load(&dir, &lib, Source::Nvml, None);
    let err = visible(&m, Some("GPU-abcd")).expect_err("two GPUs match");
    let msg = err.to_string();
    assert!(msg.contains("ambiguous"), "{msg}");
    assert!(
        msg.contains("GPU-abcd1111") && msg.contains("GPU-abcd2222"),
        "{msg}"
    );
}

fn mig_spec() -> Spec {
    dgx().map_gpus(|g| {
        if g.minor == 1 || g.minor == 6 {
            g.migs(2)
        } else {
            g
        }
    })
}

#[test]
fn mig_uuid_resolves_to_its_parent_through_nvml() {
    let spec = mig_spec();
    let mig = spec.gpus[1].mig_uuids[1].clone();
    let mig6 = spec.gpus[6].mig_uuids[0].clone();
    let (dir, lib) = fixture("id-mig", &spec);
    let m = load(&dir, &lib, Source::Nvml, Some(&mig));
    assert_eq!(m.gpus[1].migs, spec.gpus[1].mig_uuids);
    let v = visible(&m, Some(&mig)).expect("resolve");
    assert_eq!(v.gpus, [1]);
    assert_eq!(m.gpus[1].numa_node, Some(3), "the parent's locality");
    assert_eq!(m.gpus[1].local_cpus, cpus("48-63,176-191"));
    let cvd = format!("{mig6},{mig}");
    assert_eq!(visible(&m, Some(&cvd)).expect("resolve").gpus, [6, 1]);
}

#[test]
fn auto_mode_asks_nvml_for_mig_instances() {
    let spec = mig_spec();
    let mig = spec.gpus[6].mig_uuids[1].clone();
    let (dir, lib) = fixture("id-mig-auto", &spec);
    // sysfs alone cannot find a MIG instance's parent
    let sysfs = load(&dir, &lib, Source::Sysfs, Some(&mig));
    assert!(sysfs.gpus.iter().all(|g| g.migs.is_empty()));
    assert!(visible(&sysfs, Some(&mig)).is_err());
    // auto: sysfs locality, NVML's MIG list
    let m = load(&dir, &lib, Source::Auto, Some(&mig));
    assert!(m.warnings.is_empty(), "sources agree: {:?}", m.warnings);
    assert_eq!(m.gpus[6].migs, spec.gpus[6].mig_uuids);
    assert_eq!(visible(&m, Some(&mig)).expect("resolve").gpus, [6]);
    assert_eq!(m.gpus[6].local_cpus, cpus("80-95,208-223"));
}

#[test]
fn an_invalid_entry_ends_the_list() {
    let (dir, lib) = fixture("id-invalid", &dgx());
    let m = load(&dir, &lib, Source::Nvml, None);
    let u0 = m.gpus[0].uuid.clone().expect("uuid 0");
    for cvd in [
        "1,9,0".to_string(),
        format!("1,GPU-ffffffff-no-such-gpu,{u0}"),
        "1,,0".to_string(),
        "1,1,0".to_string(),
    ] {
        let v = visible(&m, Some(&cvd)).unwrap_or_else(|e| panic!("{cvd}: {e}"));
        assert_eq!(v.gpus, [1], "{cvd}");
        assert_eq!(v.warnings.len(), 1, "{cvd}: {:?}", v.warnings);
    }
}

#[test]
fn empty_cuda_visible_devices_means_no_gpu() {
    let (dir, lib) = fixture("id-empty", &dgx());
    let m = load(&dir, &lib, Source::Nvml, Some(""));
    assert_eq!(m.gpus.len(), 8, "the machine still has them");
    assert!(visible(&m, Some("")).expect("resolve").gpus.is_empty());
}

#[test]
fn sysfs_and_nvml_agree_on_every_catalog_machine() {
    // big-4096 is big-1024's shape at 160,000 files: it adds time, not cases. NVML knows NVIDIA's
    // GPUs only.
    for spec in gpuaff_fixtures::catalog()
        .into_iter()
        .filter(|s| s.name != "big-4096" && !s.has_amd())
    {
        let (dir, lib) = fixture(&format!("id-cat-{}", spec.name), &spec);
        let s = load(&dir, &lib, Source::Sysfs, None);
        let n = load(&dir, &lib, Source::Nvml, None);
        let name = &spec.name;
        assert_eq!(s.gpus.len(), n.gpus.len(), "{name}");
        for (a, b) in s.gpus.iter().zip(&n.gpus) {
            let at = format!("{name} GPU {}", a.index);
            assert_eq!(a.index, b.index, "{at}");
            assert_eq!(a.pci_bus_id, b.pci_bus_id, "{at}");
            assert_eq!(a.local_cpus, b.local_cpus, "{at}");
            assert_eq!(a.numa_node, b.numa_node, "{at}");
            // sysfs learns the memory node from the driver's procfs numa_status.
            assert_eq!(a.mem_node, b.mem_node, "{at}");
            let want_mem = spec.gpus.iter().find(|g| g.pci_bus_id == b.pci_bus_id);
            assert_eq!(b.mem_node, want_mem.and_then(|g| g.mem_node), "{at}");
            let want = spec.gpus.iter().find(|g| g.pci_bus_id == b.pci_bus_id);
            assert_eq!(b.model.as_deref(), want.map(|g| g.model.as_str()), "{at}");
            if a.uuid.is_some() {
                assert_eq!(a.uuid, b.uuid, "{at}");
                assert_eq!(a.minor, b.minor, "{at}");
            }
        }
        let (merged, warnings) = gpuaff_core::nvml::reconcile(&s.gpus, &n.gpus);
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        assert_eq!(merged.len(), s.gpus.len(), "{name}");
        for (m, b) in merged.iter().zip(&n.gpus) {
            assert_eq!(m.mem_node, b.mem_node, "{name} GPU {}", m.index);
            assert_eq!(m.uuid, b.uuid, "{name} GPU {}", m.index);
        }
        // Large trees live in tmpfs (memory): do not keep them.
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn disagreement_is_a_warning_naming_both_answers() {
    let (dir, lib) = fixture("id-disagree", &dgx().procfs(false));
    edit_nvml(&dir, |i, l| {
        if i == 0 {
            set_field(&set_field(l, "node", "1"), "cpus", "16-31,144-159")
        } else {
            l.to_string()
        }
    });
    let n = load(&dir, &lib, Source::Nvml, None);
    let u0 = n.gpus[0].uuid.clone().expect("uuid 0");
    // auto consults NVML because sysfs cannot resolve a UUID without the driver's procfs
    let m = load(&dir, &lib, Source::Auto, Some(&u0));
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].contains(
            "GPU 0000:07:00.0: sysfs says node 3 (CPUs 48-63,176-191), NVML says node 1 (CPUs 16-31,144-159)"
        ),
        "{:?}",
        m.warnings
    );
    assert_eq!(visible(&m, Some(&u0)).expect("resolve").gpus, [0]);
    assert_eq!(m.gpus[0].numa_node, Some(3), "sysfs locality wins");
}

#[test]
fn auto_mode_survives_an_nvml_that_fails() {
    let (dir, lib) = fixture("id-failinit", &dgx().procfs(false));
    std::fs::write(dir.join("fail_init"), "").expect("switch");
    let err = Machine::load(
        &request(&dir, &lib, Source::Nvml, None),
        AllowedFrom::Snapshot,
    )
    .expect_err("nvml source without NVML");
    assert_eq!(err.kind(), ErrorKind::Nvml);
    let m = load(&dir, &lib, Source::Auto, Some("GPU-0123"));
    assert_eq!(m.gpus.len(), 8, "sysfs still answers");
    assert!(
        m.warnings.iter().any(|w| w.contains("NVML")),
        "says NVML was unavailable: {:?}",
        m.warnings
    );
    // without UUIDs in CUDA_VISIBLE_DEVICES auto never loads NVML
    let m = load(&dir, &lib, Source::Auto, Some("3,4"));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}
