//! The preloaded shim: the constructor binds every thread from the environment, the pthread_create
//! hook binds threads created later, children get their own rank's binding. Masks are read from
//! /proc by the test programs, never from gpuaff's own API.

mod common;
use common::*;

/// threads.c preloaded as local `rank` on two-gpu-local; the attribute thread asks for the other CPU.
fn threads_c(rank: usize, extra: &[(&str, &str)]) -> (Run, TempTree) {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let rank_s = rank.to_string();
    let attr_cpu = (1 - rank).to_string();
    let run = Proc::new(c_program("threads", false))
        .arg("3")
        .arg(&attr_cpu)
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", &rank_s)
        .envs(extra)
        .run();
    (run, fx)
}

fn attr_tid(run: &Run) -> String {
    run.field("thread 0 ", "tid")
        .expect("attribute thread line")
}

#[test]
fn c_program_every_thread_on_its_rank_cpu() {
    for rank in [0usize, 1] {
        let (run, _fx) = threads_c(rank, &[]);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
        assert_eq!(run.stderr, "", "a quiet binding prints nothing");
        let want = rank.to_string();
        let attr = attr_tid(&run);
        // The thread created with its own affinity attribute keeps it.
        assert_eq!(
            run.field("thread 0 ", "cpus").as_deref(),
            Some((1 - rank).to_string().as_str()),
            "{}",
            run.describe()
        );
        // Everyone else, including the thread created without an attribute by that thread and the one
        // created with a stack-size-only attribute, is on the rank's CPU.
        assert_all_tasks(&run, &want, &[attr]);
        assert_eq!(
            run.field("thread sub", "cpus").as_deref(),
            Some(want.as_str())
        );
        assert_eq!(
            run.field("thread 1 ", "cpus").as_deref(),
            Some(want.as_str())
        );
    }
}

#[test]
fn python_every_thread_on_its_rank_cpu() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for rank in ["0", "1"] {
        let run = Proc::new("python3")
            .arg(root().join("tests/py/threads.py"))
            .preload()
            .env("GPU_AFFINITY_FSROOT", fx.path())
            .env("LOCAL_RANK", rank)
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
        assert!(run.tasks().len() >= 6, "{}", run.describe());
        assert_all_tasks(&run, rank, &[]);
    }
}

#[test]
fn verbose_prints_the_documented_line() {
    let (run, fx) = threads_c(1, &[("GPU_AFFINITY_VERBOSE", "1")]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let bdf = &fx.spec.gpus[1].pci_bus_id;
    let want = format!(
        "gpuaff: rank 1 -> GPU 1 ({bdf}, node 0): CPUs 1, mems 0, mode socket_unique_contiguous (pid {})",
        run.pid
    );
    assert_eq!(run.stderr_lines(), [want.as_str()], "{}", run.describe());
    assert_all_tasks(&run, "1", &[attr_tid(&run)]);
}

#[test]
fn dry_run_binds_nothing() {
    let own = own_cpus();
    let (run, fx) = threads_c(
        1,
        &[("GPU_AFFINITY_DRY_RUN", "1"), ("GPU_AFFINITY_VERBOSE", "1")],
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let bdf = &fx.spec.gpus[1].pci_bus_id;
    let want = format!(
        "gpuaff: rank 1 -> GPU 1 ({bdf}, node 0): CPUs 1, mems 0, mode socket_unique_contiguous, dry run (pid {})",
        run.pid
    );
    assert_eq!(run.stderr_lines(), [want.as_str()], "{}", run.describe());
    // Unbound: the thread created by the attribute thread inherits its mask.
    assert_eq!(run.field("thread sub", "cpus").as_deref(), Some("0"));
    let sub = run.field("thread sub", "tid").expect("sub tid");
    assert_all_tasks(&run, &own, &[attr_tid(&run), sub]);

    let (quiet, _fx) = threads_c(0, &[("GPU_AFFINITY_DRY_RUN", "1")]);
    assert_eq!(quiet.stderr, "", "{}", quiet.describe());
    assert_eq!(quiet.field("main ", "cpus"), Some(own));
}

#[test]
fn threads_off_leaves_new_threads_to_inherit() {
    // With the hook off, a thread created by the attribute thread inherits that thread's mask.
    let (run, _fx) = threads_c(0, &[("GPU_AFFINITY_THREADS", "off")]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.field("thread sub", "cpus").as_deref(), Some("1"));
    assert_eq!(run.field("main ", "cpus").as_deref(), Some("0"));
    assert_eq!(run.field("thread 2 ", "cpus").as_deref(), Some("0"));
}

/// MPOL_* as get_mempolicy reports them.
const MPOL: [(&str, i32); 3] = [("preferred", 1), ("bind", 2), ("interleave", 3)];

#[test]
fn membind_sets_the_memory_policy_of_main_and_new_threads() {
    for (name, mode) in MPOL {
        let (run, _fx) = threads_c(0, &[("GPU_AFFINITY_MEMBIND", name)]);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
        assert_all_tasks(&run, "0", &[attr_tid(&run)]);
        let main = run.field("main ", "mempolicy").expect("mempolicy");
        if main == format!("{mode}:1") {
            // Threads created later start with it too (created by main, and by the unbound thread).
            assert_eq!(run.field("thread 2 ", "mempolicy"), Some(main.clone()));
            assert_eq!(run.field("thread sub", "mempolicy"), Some(main.clone()));
            assert_eq!(run.stderr, "", "{}", run.describe());
        } else {
            // The kernel refused (seccomp without CAP_SYS_NICE, cpuset.mems): one warning.
            assert!(
                run.stderr.starts_with(&format!(
                    "gpuaff: GPU_AFFINITY_MEMBIND={name}: set_mempolicy on nodes 0 refused: {name} ("
                )) && run.stderr_lines().len() == 1,
                "policy {main} and no degradation warning\n{}",
                run.describe()
            );
            assert!(run.stderr_lines().iter().all(|l| l.starts_with("gpuaff: ")));
        }
    }
}

#[test]
fn children_get_their_own_rank_binding() {
    // srun (SLURM_LOCALID=0) → an agent bound to CPU 0 → workers with LOCAL_RANK=1 and 0.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-split");
    let threads = c_program("threads", false);
    let t = threads.display();
    let script = format!(
        "echo parent $(grep Cpus_allowed_list /proc/$$/status | cut -f2); \
         echo child 1; LOCAL_RANK=1 {t} 2 0; \
         echo child 0; LOCAL_RANK=0 {t} 2 1; \
         echo child none; env -u SLURM_LOCALID {t} 2 1"
    );
    let run = Proc::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("GPU_AFFINITY_MODE", "node")
        .env("SLURM_LOCALID", "0")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "{}", run.describe());
    assert!(run.stdout.starts_with("parent 0\n"), "{}", run.describe());
    let sections: Vec<&str> = run.stdout.split("child ").skip(1).collect();
    assert_eq!(sections.len(), 3, "{}", run.describe());
    let tid_of = |section: &str, prefix: &str| -> String {
        section
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("tid=")))
            .unwrap_or_else(|| panic!("no {prefix} line in {section}"))
            .to_string()
    };
    for (section, want) in sections.iter().zip(["1", "0", "0"]) {
        let attr = tid_of(section, "thread 0 ");
        // Without a rank of its own nothing is bound by gpuaff in the last child: the thread created
        // by the attribute thread inherits that thread's mask.
        let sub = tid_of(section, "thread sub");
        let unbound = section.starts_with("none");
        let tasks: Vec<_> = section
            .lines()
            .filter_map(|l| l.strip_prefix("task "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(tid, _)| *tid != attr && !(unbound && *tid == sub))
            .collect();
        assert!(tasks.len() >= 2, "{section}");
        for (tid, cpus) in tasks {
            assert_eq!(cpus, want, "child section {section:?}: thread {tid}");
        }
    }
}

#[test]
fn fork_while_threads_are_created_does_not_deadlock() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = Proc::new(c_program("forks", false))
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_MEMBIND", "preferred")
        .run();
    // A deadlock ends in SIGALRM (no exit code).
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stdout, "ok\n", "{}", run.describe());
}

#[test]
fn no_local_rank_means_nothing_happens() {
    let own = own_cpus();
    let run = Proc::new(c_program("threads", false))
        .arg("2")
        .arg("0")
        .preload()
        .env("GPU_AFFINITY_VERBOSE", "1")
        .env("GPU_AFFINITY_MODE", "nonsense")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "{}", run.describe());
    assert_eq!(run.field("main ", "cpus"), Some(own));
}

#[test]
fn a_refused_memory_policy_degrades_with_one_warning() {
    // two-gpu-split puts GPU 1 on node 1; where this machine has no node 1 the kernel refuses every
    // policy on it (EINVAL), and bind degrades to preferred, then to none.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-split");
    let node1 = std::path::Path::new("/sys/devices/system/node/node1").exists();
    let run = Proc::new(c_program("threads", false))
        .arg("2")
        .arg("0")
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_MEMBIND", "bind")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.field("main ", "cpus").as_deref(), Some("1"));
    let policy = run.field("main ", "mempolicy").expect("mempolicy");
    if node1 && policy == "2:2" {
        assert_eq!(run.stderr, "", "{}", run.describe());
        return;
    }
    assert_eq!(
        run.stderr_lines(),
        [
            "gpuaff: GPU_AFFINITY_MEMBIND=bind: set_mempolicy on nodes 1 refused: bind (Invalid \
          argument), then preferred (Invalid argument); using none"
        ],
        "{}",
        run.describe()
    );
    assert_eq!(policy, "0:0", "the default policy stays");

    // Strict: the refusal is fatal.
    let strict = Proc::new(c_program("threads", false))
        .arg("2")
        .arg("0")
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_MEMBIND", "bind")
        .env("GPU_AFFINITY_STRICT", "1")
        .run();
    assert_eq!(strict.code(), Some(66), "{}", strict.describe());
    assert_eq!(strict.stderr_lines().len(), 1, "{}", strict.describe());
}

#[test]
fn threads_from_an_earlier_constructor_are_bound() {
    // early.so is preloaded after libgpuaff.so, so its constructor runs first and creates a thread
    // (through the hook, before gpuaff's constructor ran): the binding scan must catch it.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let preload = format!("{} {}", so_path().display(), c_library("early").display());
    let run = Proc::new(c_program("threads", false))
        .arg("2")
        .arg("0")
        .env("LD_PRELOAD", &preload)
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // main, the early thread, 2 threads and "sub"
    assert_eq!(run.tasks().len(), 5, "{}", run.describe());
    assert_all_tasks(&run, "1", &[attr_tid(&run)]);
}

/// A thread that pins itself inside the binding passes its narrower mask on to its children; one that
/// pins itself outside has its children brought back inside.
#[test]
fn pinned_workers_keep_their_narrower_mask_for_children() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    // (mode, rank, inner child's CPUs, outer child's CPUs); the inner worker pins CPU 1, the outer CPU 0.
    for (mode, rank, inner, outer) in [
        // Mode node binds CPUs 0-1: both workers pin inside it; their children inherit 1 and 0.
        ("node", "0", "1", "0"),
        // Rank 1 binds CPU 1: the worker pinned to CPU 0 is outside, so its child starts on CPU 1.
        ("socket_unique_contiguous", "1", "1", "1"),
    ] {
        let run = preloaded(c_program("pinned", false), &fx, rank)
            .args(["1", "0"])
            .env("GPU_AFFINITY_MODE", mode)
            .run();
        let at = format!("{mode} rank {rank}\n{}", run.describe());
        assert_eq!(run.code(), Some(0), "{at}");
        assert_eq!(
            run.field("inner child", "cpus").as_deref(),
            Some(inner),
            "{at}"
        );
        assert_eq!(
            run.field("outer child", "cpus").as_deref(),
            Some(outer),
            "{at}"
        );
    }
}

/// Threads on the hook's wrapper path leave through pthread_exit and cancellation (forced unwinds
/// through the `extern "C-unwind"` wrapper) without aborting, and start inside the binding.
#[test]
fn pthread_exit_and_cancellation_pass_through_the_wrapper() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for extra in [&[][..], &[("GPU_AFFINITY_MEMBIND", "preferred")][..]] {
        // Rank 1 binds CPU 1; the creator pins itself to CPU 0, outside, so the hook wraps.
        let run = preloaded(c_program("exits", false), &fx, "1")
            .arg("0")
            .envs(extra)
            .run();
        let at = format!("{extra:?}\n{}", run.describe());
        assert_eq!(run.code(), Some(0), "{at}");
        assert!(run.stdout.contains("exit value=42 cpus=1\n"), "{at}");
        assert!(
            run.stdout
                .contains("cancel result=canceled cleanup=1 cpus=1\n"),
            "{at}"
        );
        assert!(run.stdout.ends_with("done\n"), "{at}");
    }
}

/// python3 with daemon threads alive at exit, a thread ended by SystemExit and an executor shut down
/// without waiting; with a memory policy every thread goes through the wrapper. Status 0, all bound.
#[test]
fn python_daemon_threads_at_interpreter_exit() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = preloaded("python3", &fx, "1")
        .arg(root().join("tests/py/daemon_exit.py"))
        .env("GPU_AFFINITY_MEMBIND", "preferred")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
    assert!(run.tasks().len() >= 5, "{}", run.describe());
    assert_all_tasks(&run, "1", &[]);
}

/// python3 bound as local rank 1: children through multiprocessing's fork, spawn and forkserver end
/// on rank 1's CPU (threads too); a spawned child given LOCAL_RANK=0 rebinds to rank 0's CPU although
/// it inherited its parent's narrowed mask.
#[test]
fn python_multiprocessing_children_end_on_their_rank() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = preloaded("python3", &fx, "1")
        .arg(root().join("tests/py/mp_children.py"))
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    for want in [
        "parent cpus=1",
        "fork rank=1 cpus=1 thread=1",
        "spawn rank=1 cpus=1 thread=1",
        "forkserver rank=1 cpus=1 thread=1",
        "spawn-as-0 rank=0 cpus=0 thread=0",
    ] {
        assert!(
            run.stdout.lines().any(|l| l == want),
            "{want}\n{}",
            run.describe()
        );
    }
    assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
}

/// AMD GPUs through the same shim: on a 2-CPU fixture whose KFD (ROCm) order is the reverse of the
/// bus order, rank 0 uses ROCm's GPU 0 (bus 42, node 1: CPU 1); ROCR_VISIBLE_DEVICES=1 gives it the
/// other GPU (CPU 0). Every thread of python3 is read back.
#[test]
fn amd_gpus_bind_in_rocm_order() {
    require_cpus_0_and_1();
    let fx = fixture("two-apu-split");
    for (vars, want) in [
        (vec![], "1"),
        (vec![("ROCR_VISIBLE_DEVICES", "1")], "0"),
        (vec![("HIP_VISIBLE_DEVICES", "1")], "0"),
        (
            vec![
                ("ROCR_VISIBLE_DEVICES", "1,0"),
                ("HIP_VISIBLE_DEVICES", "1"),
            ],
            "1",
        ),
    ] {
        let run = Proc::new("python3")
            .arg(root().join("tests/py/threads.py"))
            .preload()
            .env("GPU_AFFINITY_FSROOT", fx.path())
            .env("LOCAL_RANK", "0")
            .envs(&vars)
            .run();
        assert_eq!(run.code(), Some(0), "{vars:?}\n{}", run.describe());
        assert_eq!(run.stderr, "", "{vars:?}: a quiet binding prints nothing");
        assert!(run.tasks().len() >= 6, "{}", run.describe());
        assert_all_tasks(&run, want, &[]);
    }
}
