//! Grace machines (GH200: one Grace and one Hopper; GB200-like: four Grace sockets, one GPU each,
//! GPU memory on CPU-less nodes), through the preloaded library, the C ABI and the command. These run
//! on every architecture; scripts' aarch64 suite runs them, with the aarch64 build, under qemu-user.
//! The fixtures' CPUs are not this host's, so the library plans in dry-run mode and reports.

mod common;
use common::*;

#[test]
fn preloaded_on_grace_4gpu_each_rank_gets_its_socket() {
    let fx = fixture("grace-4gpu");
    let own = own_cpus();
    for (rank, cpus) in [("0", "0-71"), ("2", "144-215"), ("3", "216-287")] {
        let run = preloaded(c_program("threads", false), &fx, rank)
            .args(["2", "0"])
            .env("GPU_AFFINITY_DRY_RUN", "1")
            .env("GPU_AFFINITY_VERBOSE", "1")
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{}", run.describe());
        let want = format!(
            "gpuaff: rank {rank} -> GPU {rank} (00{}9:01:00.0, node {rank}): CPUs {cpus}, mems {rank}, mode socket_unique_contiguous, dry run (pid {})",
            rank.parse::<u32>().unwrap(),
            run.pid
        );
        assert_eq!(lines[0], want, "{}", run.describe());
        // A dry run binds nothing: every thread keeps the mask it started with (the attribute thread
        // and the thread it created keep the attribute's CPU).
        let attr = run.field("thread 0 ", "tid").expect("attr tid");
        let sub = run.field("thread sub", "tid").expect("sub tid");
        assert_all_tasks(&run, &own, &[attr, sub]);
    }
}

#[test]
fn c_abi_plans_grace_hopper() {
    let fx = fixture("grace-hopper");
    let run = Proc::new(c_program("explicit", true))
        .args(["0", "1"])
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("GPU_AFFINITY_DRY_RUN", "1")
        .env("TEST_ATTR_CPU", "0")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // All 72 Grace cores (no SMT); the call returns the count and writes the first 64.
    assert_eq!(
        run.field("rc=", "rc").as_deref(),
        Some("72"),
        "{}",
        run.describe()
    );
    let first: Vec<String> = (0..64).map(|c| c.to_string()).collect();
    assert_eq!(run.field("rc=", "cpus"), Some(first.join(",")));
    assert_eq!(run.field("plan=", "plan").as_deref(), Some("72"));
    assert_eq!(run.stderr, "", "{}", run.describe());
}

#[test]
fn gpuaff_plan_on_grace_machines() {
    let gh = fixture("grace-hopper");
    let run = Proc::new(env!("CARGO_BIN_EXE_gpuaff"))
        .args(["plan", "--json", "--fsroot"])
        .arg(gh.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains(r#""cpulist": "0-71", "mems": [0]"#),
        "{}",
        run.describe()
    );
    let g4 = fixture("grace-4gpu");
    let run = Proc::new(env!("CARGO_BIN_EXE_gpuaff"))
        .args(["plan", "--json", "--mode", "node", "--fsroot"])
        .arg(g4.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    for (i, list) in ["0-71", "72-143", "144-215", "216-287"].iter().enumerate() {
        assert!(
            run.stdout
                .contains(&format!(r#""cpulist": "{list}", "mems": [{i}]"#)),
            "{}",
            run.describe()
        );
    }
}
