//! Precedence between a launcher's own binding, the user's narrowing and gpuaff's plan, without the
//! launchers' daemons: `taskset` binds the rank program before the library loads, as slurmd, Open
//! MPI's orted or hydra's proxy do, and the environment carries the launcher's marks. The fixture
//! two-gpu-crossed puts GPU 0 on CPU 1 and GPU 1 on CPU 0, so a rank-order binding and the GPUs
//! disagree. tests/suites/launchers.sh runs the real launchers.

mod common;

use common::*;

/// The rank program bound to `cpus` by "the launcher", then preloaded with `env` on two-gpu-crossed.
fn launched(cpus: &str, env: &[(&str, &str)]) -> (Run, TempTree) {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-crossed");
    let rank = c_program("rank", false);
    let so = format!("LD_PRELOAD={}", so_path().display());
    let fsroot = format!("GPU_AFFINITY_FSROOT={}", fx.path().display());
    let run = Proc::new("taskset")
        .args(["-c", cpus, "env", &so, &fsroot, "GPU_AFFINITY_VERBOSE=1"])
        .arg(&rank)
        .envs(env)
        .run();
    assert!(run.status.success(), "{}", run.describe());
    (run, fx)
}

/// "rank R pid P threads N cpus LIST": every thread's CPUs (the program reads them back itself).
fn cpus(run: &Run) -> String {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("rank "))
        .unwrap_or_else(|| panic!("no rank line\n{}", run.describe()));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.get(5), Some(&"3"), "three threads read back: {line}");
    f.get(7).copied().unwrap_or_default().to_string()
}

const SLURM_TASK0: [(&str, &str); 4] = [
    ("SLURM_LOCALID", "0"),
    ("SLURM_CPU_BIND", "quiet,mask_cpu:0x1,0x2"),
    ("SLURM_CPU_BIND_TYPE", "mask_cpu:"),
    ("SLURM_CPU_BIND_LIST", "0x1,0x2"),
];

#[test]
fn a_launchers_binding_is_replaced_by_the_gpus_cpus_with_a_verbose_note() {
    let (run, _fx) = launched("0", &SLURM_TASK0);
    assert_eq!(cpus(&run), "1", "{}", run.describe());
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].starts_with(
            "gpuaff: Slurm bound this process to CPUs 0 (SLURM_CPU_BIND=quiet,mask_cpu:0x1,0x2)"
        ) && lines[0].contains("planning within CPUs 0-1")
            && lines[0].contains("GPU_AFFINITY_LAUNCHER_BINDING=keep"),
        "{}",
        run.describe()
    );
    assert!(lines[1].contains("rank 0 -> GPU 0") && lines[1].contains("CPUs 1,"));

    for (rank_var, flag) in [
        (
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_MCA_orte_bound_at_launch",
        ),
        ("MPI_LOCALRANKID", "HYDRA_USER_PROVIDED_BINDING"),
    ] {
        let (run, _fx) = launched("0", &[(rank_var, "0"), (flag, "1")]);
        assert_eq!(cpus(&run), "1", "{}", run.describe());
        assert!(
            run.stderr.contains(&format!("({flag}=1)")),
            "{}",
            run.describe()
        );
    }
}

#[test]
fn a_mask_without_a_launchers_mark_is_respected() {
    // taskset alone, a Slurm task narrowed beyond its entry, an MPI rank without the flag.
    let narrowed = [
        ("SLURM_LOCALID", "0"),
        ("SLURM_CPU_BIND_TYPE", "mask_cpu:"),
        ("SLURM_CPU_BIND_LIST", "0x3,0x2"),
    ];
    for env in [
        &[("LOCAL_RANK", "0")][..],
        &narrowed[..],
        &[("OMPI_COMM_WORLD_LOCAL_RANK", "0")][..],
    ] {
        let (run, _fx) = launched("0", env);
        assert_eq!(cpus(&run), "0", "{env:?}\n{}", run.describe());
        assert!(
            run.stderr.contains("falling back") && !run.stderr.contains("bound this process"),
            "{}",
            run.describe()
        );
    }
}

#[test]
fn the_opt_out_keeps_the_launchers_binding() {
    let mut env = SLURM_TASK0.to_vec();
    env.push(("GPU_AFFINITY_LAUNCHER_BINDING", "keep"));
    let (run, _fx) = launched("0", &env);
    assert_eq!(cpus(&run), "0", "{}", run.describe());
    assert!(
        !run.stderr.contains("bound this process"),
        "{}",
        run.describe()
    );

    // The same through the command.
    env.pop();
    let so = format!("LD_PRELOAD={}", so_path().display());
    let fx = fixture("two-gpu-crossed");
    let run = Proc::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_gpuaff"), "run", "--lib"])
        .arg(so_path())
        .args(["--keep-launcher-binding", "--fsroot"])
        .arg(fx.path())
        .arg("--")
        .arg(c_program("rank", false))
        .envs(&env)
        .run();
    assert_eq!(cpus(&run), "0", "{so}\n{}", run.describe());

    env.push(("GPU_AFFINITY_LAUNCHER_BINDING", "sometimes"));
    let (run, _fx) = launched("0", &env);
    assert_eq!(cpus(&run), "0", "left as it was\n{}", run.describe());
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert!(
        run.stderr
            .starts_with("gpuaff: GPU_AFFINITY_LAUNCHER_BINDING=\"sometimes\" is not valid")
            && run.stderr.contains("the process is left as it was"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_gpuaff_parent_already_replaced_the_launchers_binding() {
    // A child narrowed by the user inside a bound rank carries the launcher's marks still, and the
    // parent's record: its mask is the user's.
    let mut env = SLURM_TASK0.to_vec();
    env.push(("GPU_AFFINITY_INHERITED", "0-1/1"));
    let (run, _fx) = launched("0", &env);
    assert_eq!(cpus(&run), "0", "{}", run.describe());
    // A child still on the parent's binding plans from the parent's start: its own rank's CPUs.
    env[0] = ("SLURM_LOCALID", "1");
    let (run, _fx) = launched("1", &env);
    assert_eq!(cpus(&run), "0", "{}", run.describe());
}

#[test]
fn a_fixture_on_this_machines_cpus_starts_from_the_process_mask_and_plan_keeps_the_snapshot() {
    // taskset -c 0 with no launcher mark: the process's mask is a limit, as on a real node.
    let (run, fx) = launched("0", &[("LOCAL_RANK", "0")]);
    assert_eq!(cpus(&run), "0", "{}", run.describe());
    // `gpuaff plan --fsroot` under the same mask plans the snapshot's CPUs.
    let plan = Proc::new("taskset")
        .args([
            "-c",
            "0",
            env!("CARGO_BIN_EXE_gpuaff"),
            "plan",
            "--json",
            "--fsroot",
        ])
        .arg(fx.path())
        .run();
    assert!(plan.status.success(), "{}", plan.describe());
    assert!(
        plan.stdout.contains("\"cpulist\": \"1\"") && plan.stdout.contains("\"cpulist\": \"0\""),
        "{}",
        plan.describe()
    );
    // A tree with CPUs this machine lacks keeps the snapshot rule in the shim too.
    let big = fixture("example1");
    let run = Proc::new("taskset")
        .args(["-c", "0"])
        .arg(c_program("rank", false))
        .env("LD_PRELOAD", so_path())
        .env("GPU_AFFINITY_FSROOT", big.path())
        .env("GPU_AFFINITY_DRY_RUN", "1")
        .env("GPU_AFFINITY_VERBOSE", "1")
        .env("LOCAL_RANK", "2")
        .run();
    assert!(
        run.stderr.contains("CPUs 4-5,12-13") && run.stderr.contains("dry run"),
        "{}",
        run.describe()
    );
}

#[test]
fn verbose_once_per_binding_for_a_ranks_shell_pipeline() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-crossed");
    let run = preloaded("bash", &fx, "0")
        .env("GPU_AFFINITY_VERBOSE", "1")
        .args([
            "-c",
            "grep Cpus_allowed_list /proc/self/status | sort; LOCAL_RANK=1 grep -c x /dev/null",
        ])
        .run();
    let lines = run.stderr_lines();
    // bash prints; grep and sort (same binding) stay quiet; the rank-1 grep prints its own.
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(lines[0].contains("rank 0 -> GPU 0") && lines[0].contains("CPUs 1,"));
    assert!(lines[1].contains("rank 1 -> GPU 1") && lines[1].contains("CPUs 0,"));
    assert!(
        run.stdout.contains("Cpus_allowed_list:\t1"),
        "{}",
        run.describe()
    );
}
