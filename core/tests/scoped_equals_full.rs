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

/// How many plans `check` compared, and how many of them were made on a machine that counted
/// some nodes' cores instead of listing them.
#[derive(Default)]
struct Compared {
    plans: usize,
    on_counted: usize,
}

/// Checks every mode × cores × balanced × rank.
fn check(
    name: &str,
    root: &Path,
    cvd: Option<&str>,
    allowed: &AllowedFrom,
    nprocs: &[Option<usize>],
) -> Compared {
    let base = request(root, cvd);
    let full = Machine::load(&base, allowed.clone()).expect("full load");
    let visible =
        gpu::resolve_visible(&full.gpus, cvd, DeviceOrder::parse(None).unwrap()).expect("visible");
    let mut compared = Compared::default();
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
                                compared.on_counted += 1;
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
                        compared.plans += 1;
                    }
                }
            }
        }
    }
    compared
}

#[test]
fn every_catalog_machine_mode_and_rank() {
    let (mut total, mut counted) = (0, 0);
    for (name, root) in catalog::trees() {
        let c = check(&name, &root, None, &AllowedFrom::Snapshot, &[None]);
        total += c.plans;
        counted += c.on_counted;
    }
    assert!(total > 1000, "only {total} plans compared");
    // The counted path is exercised: other GPUs' nodes counted, not listed.
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

/// A two-node machine from the fixture generator: 16 cores of two threads (c and c + 16), 8 a
/// node, a GPU on each node; SMT on and every CPU present, so the reader infers cores and, for
/// rank 1, counts node 0's instead of listing them. With `cross`, CPU 8's sibling file (node 1)
/// also names CPU 0 of node 0 (broken firmware), so node 0's count cannot be vouched for: the plan
/// is made again on the whole machine, and is still the whole machine's.
fn two_nodes(cross: bool) -> gpuaff_fixtures::TempTree {
    let spec = gpuaff_fixtures::Spec::new("counted-nodes", 1, 2, 8, 2)
        .gpus_on_nodes(&[0, 1], "NVIDIA A100-SXM4-80GB");
    let tree = gpuaff_fixtures::write_temp(&spec).expect("fixture written");
    if cross {
        let topo = tree.path().join("sys/devices/system/cpu/cpu8/topology");
        for name in ["core_cpus_list", "thread_siblings_list"] {
            std::fs::write(topo.join(name), "0,8,24\n").expect("sibling file");
        }
    }
    tree
}

#[test]
fn counted_nodes_are_vouched_for_or_planned_again() {
    for cross in [false, true] {
        let tree = two_nodes(cross);
        let req = Request {
            rank: Some(1),
            ..request(tree.path(), None)
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
            assert_eq!(counted[0].0.to_list(), "0-7,16-23");
            assert_eq!(counted[0].1, Some(8));
            let cores: Vec<String> = o
                .machine
                .topology
                .cores
                .iter()
                .map(|c| c.cpus.to_list())
                .collect();
            assert_eq!(cores.len(), 8, "node 1's cores only: {cores:?}");
        }
    }
}
