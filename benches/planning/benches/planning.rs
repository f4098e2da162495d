//! Planning time as machines grow: `Machine::load` (the sysfs read), `plan_all` (every rank, as
//! `gpuaff plan` does) and `session::plan_process` for rank 0 (what the shim plans) separately, and the whole
//! of what the shim does before binding (`load` + `resolve_visible` + `plan_process` for
//! rank 0). Each fixture tree is written once (gpuaff_fixtures::cached, under scratch_root(): tmpfs
//! when /dev/shm is writable) and read many times.
//!
//! Before timing, one line per machine goes to stderr: CPUs, GPUs, `Machine.files_read` of a full
//! load, and the files the shim's path reads (`session::Outcome::files_read`).

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use gpuaff_core::{plan, session, AllowedFrom, Machine, Request, Source};
use gpuaff_fixtures::Spec;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// The machines: the catalog's DGX A100 (the 256-CPU, 8-GPU figure), the scaled series at
/// 8 GPUs, and 72 GPUs at 1,024 and 4,096 CPUs.
fn machines() -> Vec<(String, Spec)> {
    let mut v = Vec::new();
    if let Some(s) = gpuaff_fixtures::by_name("dgx-a100") {
        v.push(("dgx-a100 256c 8g".to_string(), s));
    }
    for cpus in [16, 256, 1024, 4096] {
        v.push((
            format!("scaled {cpus}c 8g"),
            gpuaff_fixtures::scaled(cpus, 8),
        ));
    }
    for cpus in [1024, 4096] {
        v.push((
            format!("scaled {cpus}c 72g"),
            gpuaff_fixtures::scaled(cpus, 72),
        ));
    }
    v
}

fn request(root: PathBuf) -> Request {
    Request {
        fsroot: root,
        source: Source::Sysfs,
        rank: Some(0),
        ..Request::default()
    }
}

fn load(req: &Request) -> Machine {
    match Machine::load(req, AllowedFrom::Snapshot) {
        Ok(m) => m,
        Err(e) => panic!("cannot load the fixture {}: {e}", req.fsroot.display()),
    }
}

/// 10 samples each: plan_all at 4,096 CPUs and 72 GPUs once took about a second.
fn group<'a>(c: &'a mut Criterion, name: &str, secs: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(secs));
    g
}

fn bench(c: &mut Criterion) {
    let mut trees = Vec::new();
    for (label, spec) in machines() {
        let root = match gpuaff_fixtures::cached(&spec) {
            Ok(p) => p,
            Err(e) => panic!("cannot write the fixture {label}: {e}"),
        };
        let req = request(root);
        let m = load(&req);
        let shim = match session::plan_for_process(&req, AllowedFrom::Snapshot) {
            Ok(o) => o,
            Err(e) => panic!("cannot plan rank 0 on {label}: {e}"),
        };
        eprintln!(
            "machine {label}: {} CPUs, {} GPUs, files_read {}, shim_files_read {}, shim_full_load {}",
            m.topology.online.len(),
            m.gpus.len(),
            m.files_read,
            shim.files_read,
            shim.full_load
        );
        // The GPUs rank 0 sees, as the shim resolved them (no CUDA_VISIBLE_DEVICES).
        trees.push((label, req, m, shim.visible));
    }

    let mut g = group(c, "load", 3);
    for (label, req, _, _) in &trees {
        g.bench_with_input(BenchmarkId::from_parameter(label), req, |b, req| {
            b.iter(|| load(black_box(req)))
        });
    }
    g.finish();

    let mut g = group(c, "plan_all", 2);
    for (label, req, m, visible) in &trees {
        g.bench_with_input(BenchmarkId::from_parameter(label), m, |b, m| {
            b.iter(|| plan::plan_all(black_box(&m.topology), &m.gpus, visible, &req.plan))
        });
    }
    g.finish();

    // The shim plans one rank only.
    let mut g = group(c, "plan_rank0", 2);
    for (label, req, m, visible) in &trees {
        g.bench_with_input(BenchmarkId::from_parameter(label), m, |b, m| {
            b.iter(|| session::plan_process(black_box(req), m, visible))
        });
    }
    g.finish();

    // What the constructor does before it binds: read what the plan needs, resolve the GPUs, plan.
    let mut g = group(c, "shim_plan_rank0", 2);
    for (label, req, _, _) in &trees {
        g.bench_with_input(BenchmarkId::from_parameter(label), req, |b, req| {
            b.iter(|| session::plan_for_process(black_box(req), AllowedFrom::Snapshot))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
