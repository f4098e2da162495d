//! A plan handed down by `gpuaff run` (GPU_AFFINITY_HANDOFF): workers apply their rank's part when
//! every key input matches, and plan for themselves, silently, when any differs. The handed-down plan
//! is made observable by forging it (rank 0 moved to CPU 1, where its own plan says CPU 0).

mod common;
use common::*;

const MODE: (&str, &str) = ("GPU_AFFINITY_MODE", "node");

/// The value `gpuaff run` hands down on `fx`, read back by a preloaded shell with no rank;
/// `taskset` narrows `gpuaff run` first when given.
fn handed_down(fx: &TempTree, taskset: Option<&str>, extra: &[(&str, &str)]) -> String {
    let gpuaff = env!("CARGO_BIN_EXE_gpuaff");
    let p = match taskset {
        Some(cpus) => Proc::new("taskset").args(["-c", cpus, gpuaff]),
        None => Proc::new(gpuaff),
    };
    let run = p
        .args(["run", "--lib"])
        .arg(so_path())
        .arg("--fsroot")
        .arg(fx.path())
        .args(["--", "/bin/sh", "-c", "printf %s \"$GPU_AFFINITY_HANDOFF\""])
        .envs(&[MODE])
        .envs(extra)
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "{}", run.describe());
    assert!(
        run.stdout.starts_with("gpuaff-handoff-1|"),
        "{}",
        run.describe()
    );
    run.stdout
}

/// `value` with rank `rank`'s CPUs replaced by `cpus`.
fn forged(value: &str, rank: usize, cpus: &str) -> String {
    let mut parts: Vec<String> = value.split('|').map(str::to_string).collect();
    let mut fields: Vec<String> = parts[3 + rank].split(';').map(str::to_string).collect();
    fields[4] = cpus.to_string();
    parts[3 + rank] = fields.join(";");
    parts.join("|")
}

/// rank.c as local rank 0 on `fx` with `value` handed down; its CPUs (all three threads agree).
fn worker(fx: &TempTree, value: &str, extra: &[(&str, &str)]) -> String {
    let run = preloaded(c_program("rank", false), fx, "0")
        .env("GPU_AFFINITY_HANDOFF", value)
        .envs(&[MODE])
        .envs(extra)
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "silently\n{}", run.describe());
    let line = run.stdout.lines().find(|l| l.starts_with("rank ")).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.get(5), Some(&"3"), "{line}");
    f[7].to_string()
}

fn boot_id(fx: &TempTree, id: &str) {
    let dir = fx.path().join("proc/sys/kernel/random");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("boot_id"), format!("{id}\n")).unwrap();
}

#[test]
fn a_matching_key_applies_the_handed_plan_and_any_change_replans() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-split");
    boot_id(&fx, "11111111-2222-3333-4444-555555555555");
    let real = handed_down(&fx, None, &[]);
    // Its own plan and the real handed-down one agree: rank 0 -> GPU 0 on node 0 = CPU 0.
    assert_eq!(worker(&fx, &real, &[]), "0");
    assert_eq!(worker(&fx, "", &[]), "0");
    let fake = forged(&real, 0, "1");
    assert_eq!(worker(&fx, &fake, &[]), "1", "the handed-down plan is used");

    // Each key input changed: the worker plans for itself (CPU 0), silently.
    let mut changed: Vec<(&str, &str)> = vec![
        ("GPU_AFFINITY_MODE", "socket_unique_contiguous"),
        ("GPU_AFFINITY_NPROC", "2"),
        ("GPU_AFFINITY_BALANCED", "0"),
        ("GPU_AFFINITY_CORES", "single_logical"),
        ("GPU_AFFINITY_VENDOR", "nvidia"),
        ("GPU_AFFINITY_SOURCE", "sysfs"),
        ("GPU_AFFINITY_GPU", "0"),
    ];
    let devices: Vec<String> = gpuaff_core::gpu::device_vars()
        .map(str::to_string)
        .collect();
    for v in &devices {
        let value = if v.ends_with("_ORDER") {
            "PCI_BUS_ID"
        } else {
            "0,1"
        };
        changed.push((v.as_str(), value));
    }
    // (An AMD variable makes the process an AMD one, which has no GPU on this tree: its own
    // plan leaves it as it was; what counts is that the forged CPU 1 is not taken.)
    for extra in &changed {
        let own = if extra.0.starts_with("CUDA") || extra.0.starts_with("GPU_") {
            "0"
        } else {
            "0-1"
        };
        assert_eq!(worker(&fx, &fake, &[*extra]), own, "{extra:?} changed");
    }
    // Another version's plan.
    let version = format!("version={}%20", gpuaff_core::VERSION);
    assert!(fake.contains(&version));
    let other = fake.replace(&version, "version=0.0.0-other%20");
    assert_eq!(worker(&fx, &other, &[]), "0", "library version");
    // Another boot.
    boot_id(&fx, "99999999-2222-3333-4444-555555555555");
    assert_eq!(worker(&fx, &fake, &[]), "0", "boot id");
    boot_id(&fx, "11111111-2222-3333-4444-555555555555");
    assert_eq!(worker(&fx, &fake, &[]), "1", "the same boot again");
    // Another tree with the same content.
    let copy = fixture("two-gpu-split");
    boot_id(&copy, "11111111-2222-3333-4444-555555555555");
    assert_eq!(worker(&copy, &fake, &[]), "0", "fsroot");
    // Malformed or truncated values.
    for bad in [&fake[..fake.len() - 3], "gpuaff-handoff-1|x", "garbage"] {
        assert_eq!(worker(&fx, bad, &[]), "0", "{bad}");
    }
}

#[test]
fn another_allowed_set_replans() {
    // Planned by `gpuaff run` confined to CPU 1: rank 0's GPU has no allowed CPU and falls back to
    // CPU 1. A worker allowed both CPUs has another key: it plans CPU 0 for itself.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-split");
    let narrow = handed_down(&fx, Some("1"), &[]);
    assert!(narrow.contains("allowed=1|"), "{narrow}");
    assert_eq!(worker(&fx, &narrow, &[]), "0");
    let wide = handed_down(&fx, None, &[]);
    assert!(wide.contains("allowed=0-1|"), "{wide}");
    // Under the same confinement the worker takes the handed-down plan (the forged CPU proves it).
    let run = Proc::new("taskset")
        .args(["-c", "1"])
        .arg(c_program("rank", false))
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "0")
        .env("GPU_AFFINITY_HANDOFF", &narrow)
        .envs(&[MODE])
        .run();
    assert!(run.stdout.contains(" cpus 1"), "{}", run.describe());
}

/// The stderr lines of dry-run verbose workers, ranks 0..=gpus (one beyond the plan), under
/// `gpuaff run` (`under`) or preloaded directly; pids cut off.
fn dry_run_lines(fx: &TempTree, gpus: usize, under: bool, vars: &[(&str, &str)]) -> Vec<String> {
    let script = format!(
        "for r in $(seq 0 {gpus}); do LOCAL_RANK=$r /bin/true; done; \
         test -n \"$GPU_AFFINITY_HANDOFF\" || echo no handoff >&2"
    );
    let p = if under {
        Proc::new(env!("CARGO_BIN_EXE_gpuaff"))
            .args(["run", "--lib"])
            .arg(so_path())
            .arg("--fsroot")
            .arg(fx.path())
            .args(["--", "/bin/sh", "-c", &script])
    } else {
        Proc::new("/bin/sh")
            .args(["-c", &script])
            .preload()
            .env("GPU_AFFINITY_FSROOT", fx.path())
    };
    let run = p
        .env("GPU_AFFINITY_DRY_RUN", "1")
        .env("GPU_AFFINITY_VERBOSE", "1")
        .envs(vars)
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    run.stderr
        .lines()
        .map(|l| l.split(" (pid ").next().unwrap().to_string())
        .collect()
}

#[test]
fn workers_under_gpuaff_run_get_the_plan_they_would_make() {
    // Every catalog machine, every rank (and one beyond), dry run and verbose, under `gpuaff run` and
    // without it: the same lines (plan, warnings, notes, errors).
    for spec in gpuaff_fixtures::catalog() {
        let fx = fixture_spec(&spec);
        let n = spec.gpus.len();
        let modes: &[&[(&str, &str)]] = if spec.name == "dgx-a100" {
            &[
                &[],
                &[MODE],
                &[
                    ("GPU_AFFINITY_MODE", "exclusive"),
                    ("CUDA_VISIBLE_DEVICES", "3,2,1"),
                ],
            ]
        } else {
            &[&[]]
        };
        for vars in modes {
            let under = dry_run_lines(&fx, n, true, vars);
            let mut alone = dry_run_lines(&fx, n, false, vars);
            assert_eq!(alone.pop().as_deref(), Some("no handoff"), "{}", spec.name);
            assert_eq!(under, alone, "{} {vars:?}", spec.name);
            assert!(under.len() > n, "{} {under:?}", spec.name);
        }
    }
}
