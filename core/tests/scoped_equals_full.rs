//! `session::plan_for_process` reads only what the plan needs, and its plan is the plan made on
//! the full machine (`Machine::load`), for every catalog machine, mode, option and rank, with
//! `CUDA_VISIBLE_DEVICES` subsets and allowed sets that exclude GPUs' CPUs (the fallback path).

use gpuaff_core::plan::{Cores, Mode, PlanOptions};
use gpuaff_core::session::{plan_for_process, plan_process};
use gpuaff_core::{gpu, AllowedFrom, CpuSet, DeviceOrder, Machine, Request, Source};
#[path = "support/catalog.rs"]
mod catalog;
use std::path::Path;

fn request(root: &Path, cvd: Option<&str>) -> Request {
    Request {
        fsroot: root.to_path_buf(),
        source: Source::Sysfs,
        devices: cvd.map_or_else(Default::default, |v| {
            gpuaff_core::gpu::DeviceEnv::default().with("CUDA_VISIBLE_DEVICES", v)
        }),
        ..Request::default()
    }
}

/// Plans made on a machine that counted some nodes' cores instead of listing them.
static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Checks every mode × cores × balanced × rank; returns the number of plans compared.
fn check(
    name: &str,
    root: &Path,
    cvd: Option<&str>,
    allowed: &AllowedFrom,
    nprocs: &[Option<usize>],
) -> usize {
    let base = request(root, cvd);
    let full = Machine::load(&base, allowed.clone()).expect("full load");
    let visible =
        gpu::resolve_visible(&full.gpus, cvd, DeviceOrder::parse(None).unwrap()).expect("visible");
    let mut compared = 0;
    for mode in Mode::ALL.into_iter().filter(|m| *m != Mode::Map) {
        for cores in [Cores::AllLogical, Cores::SingleLogical] {
            for balanced in [true, false] {
                for &nproc in nprocs {
                    let ranks = nproc.unwrap_or(visible.gpus.len()).max(1);
                    // gpu72's 72 ranks: a sample that still spans every node (time).
                    let step = if ranks > 16 { 7 } else { 1 };
                    for rank in (0..ranks).step_by(step).chain([ranks - 1]) {
                        let req = Request {
                            rank: Some(rank),
                            plan: PlanOptions {
                                mode,
                                cores,
                                balanced,
                                nproc,
                                map: None,
                            },
                            ..base.clone()
                        };
                        let want = plan_process(&req, &full, &visible);
                        let got = plan_for_process(&req, allowed.clone()).map(|o| {
                            let t = &o.machine.topology;
                            if t.counted.iter().any(|c| c.1.is_some()) {
                                COUNTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            o.plan
                        });
                        let what = format!(
                            "{name} cvd={cvd:?} allowed={allowed:?} mode={} cores={} balanced={balanced} nproc={nproc:?} rank={rank}",
                            mode.name(),
                            cores.name()
                        );
                        match (&want, &got) {
                            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
                            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
                            _ => panic!("{what}: full {want:?}, scoped {got:?}"),
                        }
                        compared += 1;
                    }
                }
            }
        }
    }
    compared
}

#[test]
fn every_catalog_machine_mode_and_rank() {
    let mut total = 0;
    for (name, root) in catalog::trees() {
        total += check(&name, &root, None, &AllowedFrom::Snapshot, &[None]);
    }
    assert!(total > 1000, "only {total} plans compared");
    // The counted path is exercised: other GPUs' nodes counted, not listed.
    let counted = COUNTED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(counted > 100, "only {counted} plans on counted nodes");
}

#[test]
fn visible_subsets_and_allowed_sets_that_force_fallbacks() {
    let mut fallbacks = 0;
    for name in [
        "example1",
        "dgx-a100",
        "uneven",
        "grace-4gpu",
        "vm-numa-minus1",
        "container-one-socket",
        "two-gpu-split",
    ] {
        let spec = gpuaff_fixtures::by_name(name).expect("catalog machine");
        let root = gpuaff_fixtures::cached(&spec).expect("fixture written");
        let n = spec.gpus.len();
        let mut subsets = vec![
            Some("1".to_string()),
            Some(
                (0..n)
                    .rev()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        if n >= 4 {
            subsets.push(Some("0,3".to_string()));
        }
        for cvd in &subsets {
            check(
                name,
                &root,
                cvd.as_deref(),
                &AllowedFrom::Snapshot,
                &[None, Some(n)],
            );
        }
        // Allowed sets excluding some GPUs' CPUs: the first half, and one CPU of the last node.
        let online = Machine::load(&request(&root, None), AllowedFrom::Snapshot)
            .expect("load")
            .topology;
        let cpus: Vec<usize> = online.online.iter().collect();
        let half: CpuSet = cpus.iter().take(cpus.len() / 2).copied().collect();
        let last: CpuSet = cpus.last().map(|&c| CpuSet::single(c)).unwrap_or_default();
        for allowed in [AllowedFrom::Explicit(half), AllowedFrom::Process(last)] {
            check(name, &root, None, &allowed, &[None]);
            let req = Request {
                rank: Some(0),
                ..request(&root, None)
            };
            if let Ok(o) = plan_for_process(&req, allowed.clone()) {
                fallbacks += usize::from(o.full_load);
            }
        }
    }
    assert!(fallbacks > 0, "no case took the full-load path");
}

/// Files read per plan (default mode, rank 0): full load vs `plan_for_process`.
#[test]
fn files_read_table() {
    eprintln!(
        "\n{:<22} {:>6} {:>6} {:>6}",
        "machine", "cpus", "full", "scoped"
    );
    for (name, root) in catalog::trees() {
        let req = Request {
            rank: Some(0),
            ..request(&root, None)
        };
        let full = Machine::load(&req, AllowedFrom::Snapshot).expect("full load");
        let o = plan_for_process(&req, AllowedFrom::Snapshot).expect("plan");
        eprintln!(
            "{:<22} {:>6} {:>6} {:>6}{}",
            name,
            full.topology.online.len(),
            full.files_read,
            o.files_read,
            if o.full_load {
                " (re-planned on a full load)"
            } else {
                ""
            }
        );
        assert!(
            o.files_read <= full.files_read + 1 || o.full_load,
            "{}",
            name
        );
    }
}

/// A two-node machine, 16 CPUs a node (threads c and c + 8), a GPU on each node, with SMT on and
/// every CPU present: for rank 1, node 0 is counted, not listed. With `cross`, CPU 16's sibling
/// file also names CPU 0 of node 0 (broken firmware), so node 0's count cannot be vouched for:
/// the plan is made again on the whole machine, and is still the whole machine's.
fn two_nodes(cross: bool) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("gpuaff-counted-{}-{cross}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let file = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        std::fs::write(p, text).expect("write");
    };
    let cpu = "sys/devices/system/cpu";
    file(&format!("{cpu}/online"), "0-31\n");
    file(&format!("{cpu}/present"), "0-31\n");
    file(&format!("{cpu}/smt/active"), "1\n");
    file(&format!("{cpu}/smt/control"), "on\n");
    for c in 0..32 {
        let first = c / 16 * 16 + c % 8;
        let siblings = if cross && c == 16 {
            "0,16,24\n".to_string()
        } else {
            format!("{first},{}\n", first + 8)
        };
        file(&format!("{cpu}/cpu{c}/topology/core_cpus_list"), &siblings);
    }
    for (node, cpus, bdf) in [(0, "0-15", "0000:07:00.0"), (1, "16-31", "0000:87:00.0")] {
        file(
            &format!("sys/devices/system/node/node{node}/cpulist"),
            &format!("{cpus}\n"),
        );
        let d = format!("sys/bus/pci/devices/{bdf}");
        file(&format!("{d}/vendor"), "0x10de\n");
        file(&format!("{d}/class"), "0x030200\n");
        file(&format!("{d}/numa_node"), &format!("{node}\n"));
        file(&format!("{d}/local_cpulist"), &format!("{cpus}\n"));
    }
    root
}

#[test]
fn counted_nodes_are_vouched_for_or_planned_again() {
    for cross in [false, true] {
        let root = two_nodes(cross);
        let req = Request {
            rank: Some(1),
            ..request(&root, None)
        };
        let full = Machine::load(&req, AllowedFrom::Snapshot).expect("full load");
        let visible = gpu::resolve_visible(&full.gpus, None, DeviceOrder::parse(None).unwrap())
            .expect("visible");
        let want = plan_process(&req, &full, &visible).expect("plan");
        let o = plan_for_process(&req, AllowedFrom::Snapshot).expect("plan");
        assert_eq!(o.plan, want, "cross={cross}");
        let counted = &o.machine.topology.counted;
        if cross {
            assert!(o.full_load, "planned again on the whole machine");
        } else {
            assert!(!o.full_load);
            assert_eq!(counted.len(), 1);
            assert_eq!(counted[0].0.to_list(), "0-15");
            assert_eq!(counted[0].1, Some(8));
            let cores: Vec<String> = o
                .machine
                .topology
                .cores
                .iter()
                .map(|c| c.cpus.to_list())
                .collect();
            assert_eq!(cores.len(), 8, "node 0's cores only: {cores:?}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
