//! The guard (GPU_AFFINITY_GUARD) against libraries that re-pin threads, OpenMP runtimes that start
//! before the binding, and fork during a call. Masks are read back from /proc by the programs.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// repin.c preloaded as local rank `rank` on two-gpu-local, re-pinning to `cpus`.
fn repin(rank: &str, cpus: &str, extra: &[(&str, &str)], args: &[&str]) -> Run {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    preloaded(c_program("repin", false), &fx, rank)
        .env("REPIN_LIB", c_library("repinlib"))
        .arg(cpus)
        .args(args)
        .envs(extra)
        .run()
}

/// (main, re-pinned thread, attribute threads) CPU lists.
fn where_they_ended(run: &Run) -> (String, String, Vec<String>) {
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
    assert!(run.stdout.contains("calls rc=0,0"), "{}", run.describe());
    let attr = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("thread attr "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("cpus=")))
        .map(str::to_string)
        .collect();
    (
        run.field("thread main", "cpus").expect("main"),
        run.field("thread repinned", "cpus").expect("repinned"),
        attr,
    )
}

#[test]
fn a_library_repinning_outside_the_binding_under_each_guard_mode() {
    // Rank 1 owns CPU 1; the "library" pins a thread with pthread_setaffinity_np, the main thread with
    // sched_setaffinity (each twice) and creates two threads with an affinity attribute, all to CPU 0.
    let one = |v: &str| (v.to_string(), v.to_string(), vec![v.to_string(); 2]);
    let off = repin("1", "0", &[("GPU_AFFINITY_GUARD", "off")], &[]);
    assert_eq!(where_they_ended(&off), one("0"), "{}", off.describe());
    assert_eq!(off.stderr, "", "off says nothing");

    let warn = repin("1", "0", &[("GPU_AFFINITY_GUARD", "warn")], &[]);
    assert_eq!(where_they_ended(&warn), one("0"), "warn lets it through");
    // One line per kind of call, however many calls: the function and the CPUs it asked for.
    assert_eq!(
        warn.stderr_lines(),
        [
            "gpuaff: GPU_AFFINITY_GUARD=warn: pthread_setaffinity_np asked for CPUs 0, outside the \
             binding (CPUs 1); allowed (reported once)",
            "gpuaff: GPU_AFFINITY_GUARD=warn: sched_setaffinity asked for CPUs 0, outside the \
             binding (CPUs 1); allowed (reported once)",
            "gpuaff: GPU_AFFINITY_GUARD=warn: a pthread_create affinity attribute asked for CPUs 0, \
             outside the binding (CPUs 1); allowed (reported once)",
        ],
        "{}",
        warn.describe()
    );

    // clamp is the default: an empty intersection keeps the thread on the binding, quietly.
    for extra in [&[][..], &[("GPU_AFFINITY_GUARD", "clamp")][..]] {
        let clamp = repin("1", "0", extra, &[]);
        assert_eq!(where_they_ended(&clamp), one("1"), "{}", clamp.describe());
        assert_all_tasks(&clamp, "1", &[]);
        assert_eq!(clamp.stderr, "", "clamp is quiet unless verbose");
    }
    // A wider request is cut to its part inside; verbose reports each kind once.
    let wide = repin("1", "0-1", &[("GPU_AFFINITY_VERBOSE", "1")], &[]);
    assert_eq!(where_they_ended(&wide), one("1"));
    let lines = wide.stderr_lines();
    assert_eq!(lines.len(), 4, "{}", wide.describe());
    assert!(lines[1..]
        .iter()
        .all(|l| l.starts_with("gpuaff: GPU_AFFINITY_GUARD=clamp: ")
            && l.contains("asked for CPUs 0-1, outside the binding (CPUs 1); clamped to CPUs 1")));
}

#[test]
fn the_programs_own_calls_are_the_users() {
    // The same calls made by the program's own code (as taskset -c or the user's C program make
    // them) go through under every mode: the guard judges shared libraries.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for guard in ["warn", "clamp"] {
        let run = preloaded(c_program("repin", false), &fx, "1")
            .arg("0")
            .env("GPU_AFFINITY_GUARD", guard)
            .run();
        assert!(run.stdout.contains("caller program"), "{}", run.describe());
        let (main, pinned, attr) = where_they_ended(&run);
        assert_eq!((main.as_str(), pinned.as_str()), ("0", "0"), "{guard}");
        assert_eq!(attr, ["0", "0"], "{guard}");
        assert_eq!(run.stderr, "", "{guard}");
    }
    // taskset under the preload: its exec'd command runs where taskset was told.
    let run = preloaded("taskset", &fx, "1")
        .args(["-c", "0", "grep", "Cpus_allowed_list", "/proc/self/status"])
        .run();
    assert!(run.stdout.trim_end().ends_with("\t0"), "{}", run.describe());
}

#[test]
fn narrowing_inside_the_binding_is_always_allowed() {
    // Mode node: rank 0 owns CPUs 0-1; a runtime pinning to CPU 1 is inside it.
    for guard in ["off", "warn", "clamp"] {
        let run = repin(
            "0",
            "1",
            &[("GPU_AFFINITY_MODE", "node"), ("GPU_AFFINITY_GUARD", guard)],
            &[],
        );
        let (main, pinned, attr) = where_they_ended(&run);
        assert_eq!((main.as_str(), pinned.as_str()), ("1", "1"), "{guard}");
        assert_eq!(attr, ["1", "1"], "{guard}");
        assert_eq!(run.stderr, "", "{guard}");
    }
}

#[test]
fn a_call_through_the_c_abi_moves_the_binding() {
    // Bound to CPU 1 by the constructor; gpu_affinity_set(0) moves the binding to CPU 0 (the guard
    // does not stand in its way); the library's later requests for CPU 1 are then clamped to CPU 0.
    let run = repin("1", "1", &[], &["0"]);
    assert!(run.stdout.contains("explicit rc=1"), "{}", run.describe());
    let (main, pinned, attr) = where_they_ended(&run);
    assert_eq!((main.as_str(), pinned.as_str()), ("0", "0"));
    assert_eq!(attr, ["0", "0"]);
    assert_all_tasks(&run, "0", &[]);
}

#[test]
fn a_bad_guard_value_is_one_line_and_binds_nothing() {
    let run = repin("1", "0", &[("GPU_AFFINITY_GUARD", "on")], &[]);
    assert_eq!(
        run.stderr_lines(),
        [
            "gpuaff: GPU_AFFINITY_GUARD=\"on\" is not valid (accepted: off, warn, clamp); the \
             process is left as it was"
        ],
        "{}",
        run.describe()
    );
    let (main, _, _) = where_they_ended(&run);
    assert_eq!(main, "0", "nothing bound, nothing guarded");
}

#[test]
fn fork_during_a_call_never_hangs_the_child() {
    // A thread loops on gpu_affinity_set while the main thread forks 100 children, each of which
    // calls gpu_affinity_set itself (a lock held at fork time must not block it).
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = Proc::new(c_program("forkcall", true))
        .arg("100")
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let line = run.stdout.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("forks=100 ok=100 hung=0 failed=0 "),
        "{}",
        run.describe()
    );
    eprintln!("fork during a call: {line}");
}

// ---- OpenMP -------------------------------------------------------------------------------------

/// LLVM's libomp (Debian libomp-dev): the directory holding libomp.so.
fn libomp_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("lib"))
        .filter(|d| d.join("libomp.so").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "LLVM's libomp is needed (apt-get install libomp-dev: /usr/lib/llvm-*/lib/libomp.so)"
        )
    })
}

/// Builds, once per test process, with `cc` and `args` into CARGO_TARGET_TMPDIR/name.
fn cc(name: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let tmp = tmp_beside(&out);
    let c = root().join("tests/c");
    let status = Command::new("cc")
        .args(["-O1", "-pthread", "-I"])
        .arg(&c)
        .args(args)
        .arg("-o")
        .arg(&tmp)
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc failed for {name}");
    std::fs::rename(&tmp, &out).expect("rename");
    out
}

struct Omp {
    /// The program linked with libgomp (through libompwork-gomp.so).
    linked: PathBuf,
    /// The program that dlopens a libompwork.
    dl: PathBuf,
    gomp: PathBuf,
    llvm: PathBuf,
}

/// Built once per test process (two tests use them).
fn omp_programs() -> &'static Omp {
    static OMP: std::sync::OnceLock<Omp> = std::sync::OnceLock::new();
    OMP.get_or_init(build_omp_programs)
}

fn build_omp_programs() -> Omp {
    let c = root().join("tests/c");
    let work = c.join("ompwork.c");
    let os = |s: &str| std::ffi::OsString::from(s);
    let gomp = cc(
        "libompwork-gomp.so",
        &[
            os("-shared").as_ref(),
            os("-fPIC").as_ref(),
            os("-fopenmp").as_ref(),
            work.as_os_str(),
        ],
    );
    let lomp = libomp_dir();
    // -fopenmp compiles the GOMP_* calls that libomp also implements; linking libomp instead of
    // libgomp gives the LLVM runtime.
    let obj = cc(
        "ompwork-llvm.o",
        &[
            os("-c").as_ref(),
            os("-fPIC").as_ref(),
            os("-fopenmp").as_ref(),
            work.as_os_str(),
        ],
    );
    let llvm = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libompwork-llvm.so");
    let tmp = tmp_beside(&llvm);
    let status = Command::new("cc")
        .args(["-shared", "-o"])
        .arg(&tmp)
        .arg(&obj)
        .arg(lomp.join("libomp.so"))
        .arg(format!("-Wl,-rpath,{}", lomp.display()))
        .status()
        .expect("cc runs");
    assert!(status.success(), "linking libompwork-llvm.so");
    std::fs::rename(&tmp, &llvm).expect("rename");
    let main = c.join("omp.c");
    let linked = cc(
        "omp-linked",
        &[
            main.as_os_str(),
            os("-Wl,--no-as-needed").as_ref(),
            gomp.as_os_str(),
            os(&format!("-Wl,-rpath,{}", env!("CARGO_TARGET_TMPDIR"))).as_ref(),
            os("-ldl").as_ref(),
        ],
    );
    let dl = cc("omp-dl", &[main.as_os_str(), os("-ldl").as_ref()]);
    Omp {
        linked,
        dl,
        gomp,
        llvm,
    }
}

/// Every OpenMP thread's and task's CPU list, and the number of places.
fn omp_threads(run: &Run) -> (Vec<String>, String) {
    let mut cpus: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("omp thread ") || l.starts_with("task "))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap_or_default()
                .trim_start_matches("cpus=")
                .to_string()
        })
        .collect();
    cpus.sort();
    cpus.dedup();
    let places = run.field("omp places", "places").unwrap_or_default();
    (cpus, places)
}

#[test]
fn openmp_threads_end_inside_the_binding() {
    // Local rank 1 owns CPU 1 of two-gpu-local. OMP_NUM_THREADS=4 so that spreading over places
    // would show; the table goes to stderr (cargo test -- --nocapture).
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let omp = omp_programs();
    let mut table = vec![
        "| runtime | OMP_PROC_BIND | guard | CPUs of every thread | places | gpuaff lines |"
            .to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let gomp = omp.gomp.to_string_lossy().into_owned();
    let llvm = omp.llvm.to_string_lossy().into_owned();
    let cases: [(&str, &Path, Vec<&str>); 3] = [
        ("libgomp, linked", &omp.linked, vec!["linked"]),
        ("libgomp, dlopened", &omp.dl, vec!["dlopen", &gomp]),
        ("libomp (LLVM), dlopened", &omp.dl, vec!["dlopen", &llvm]),
    ];
    for (runtime, program, args) in &cases {
        for bind in ["unset", "true", "close", "spread"] {
            for guard in ["off", "warn", "clamp"] {
                let mut p = preloaded(program, &fx, "1")
                    .args(args)
                    .env("GPU_AFFINITY_GUARD", guard)
                    .env("OMP_NUM_THREADS", "4");
                if bind != "unset" {
                    p = p.env("OMP_PROC_BIND", bind).env("OMP_PLACES", "cores");
                }
                let run = p.run();
                assert_eq!(run.code(), Some(0), "{}", run.describe());
                let (cpus, places) = omp_threads(&run);
                table.push(format!(
                    "| {runtime} | {bind} | {guard} | {} | {places} | {} |",
                    cpus.join(" "),
                    run.stderr_lines().len()
                ));
                assert_eq!(cpus, ["1"], "{runtime} {bind} {guard}\n{}", run.describe());
                assert!(run.stdout.contains("omp thread 3 "), "{}", run.describe());
                assert_eq!(run.stderr, "", "{runtime} {bind} {guard}");
                if bind != "unset" {
                    // The runtime built its places from the bound mask: the constructor ran first.
                    assert_eq!(places, "1", "{runtime} {bind} {guard}\n{}", run.describe());
                }
            }
        }
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn a_forked_child_of_an_openmp_parent_starts_on_the_binding() {
    // Mode node: rank 0 owns CPUs 0-1. libomp pins the main thread to one place (CPU 0) and the
    // process forks (a DataLoader worker): the child starts on the whole binding, and its own
    // OpenMP threads stay inside it.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let omp = omp_programs();
    for guard in ["off", "clamp"] {
        let run = preloaded(&omp.dl, &fx, "0")
            .args(["dlopen".as_ref(), omp.llvm.as_os_str(), "fork".as_ref()])
            .env("GPU_AFFINITY_MODE", "node")
            .env("GPU_AFFINITY_GUARD", guard)
            .env("OMP_PROC_BIND", "true")
            .env("OMP_PLACES", "cores")
            .env("OMP_NUM_THREADS", "2")
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert_eq!(
            run.field("child main", "cpus").as_deref(),
            Some("0-1"),
            "{}",
            run.describe()
        );
        let (cpus, _) = omp_threads(&run);
        assert!(
            cpus.iter().all(|c| ["0", "1", "0-1"].contains(&c.as_str())),
            "{guard}: {cpus:?}\n{}",
            run.describe()
        );
        eprintln!(
            "libomp fork, guard {guard}: {}",
            run.stdout.lines().collect::<Vec<_>>().join(" | ")
        );
    }
}

#[test]
fn omp_sets_unset_thread_counts_to_the_bound_cores() {
    require_cpus_0_and_1();
    let sh = |fx: &TempTree, extra: &[(&str, &str)]| {
        preloaded("/bin/sh", fx, "0")
            .args([
                "-c",
                "echo omp=$OMP_NUM_THREADS mkl=$MKL_NUM_THREADS blas=$OPENBLAS_NUM_THREADS",
            ])
            .env("GPU_AFFINITY_MODE", "node")
            .envs(extra)
            .run()
    };
    let local = fixture("two-gpu-local");
    let off = sh(&local, &[]);
    assert_eq!(off.stdout, "omp= mkl= blas=\n", "off by default");
    let on = sh(
        &local,
        &[("GPU_AFFINITY_OMP", "1"), ("MKL_NUM_THREADS", "7")],
    );
    assert_eq!(on.stdout, "omp=2 mkl=7 blas=2\n", "{}", on.describe());
    assert_eq!(on.stderr, "");
    // example1's node 0 is CPUs 0-3,8-11: 4 cores with 2 threads each.
    let smt = sh(&fixture("example1"), &[("GPU_AFFINITY_OMP", "yes")]);
    assert_eq!(smt.stdout, "omp=4 mkl=4 blas=4\n", "{}", smt.describe());
    let bad = sh(&local, &[("GPU_AFFINITY_OMP", "sometimes")]);
    assert_eq!(bad.stdout, "omp= mkl= blas=\n");
    assert_eq!(bad.stderr_lines().len(), 1, "{}", bad.describe());
    assert!(bad
        .stderr
        .starts_with("gpuaff: GPU_AFFINITY_OMP=\"sometimes\" is not valid"));
}

#[test]
fn a_child_forked_by_a_thread_pinned_inside_starts_on_the_whole_binding() {
    // Mode node: rank 0 owns CPUs 0-1. The main thread pins itself to CPU 1 (inside: allowed), then
    // forks. Under clamp the child starts on the whole binding; under off it keeps the pin.
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for (guard, child) in [("clamp", "0-1"), ("warn", "1"), ("off", "1")] {
        let run = preloaded(c_program("pinfork", false), &fx, "0")
            .arg("1")
            .env("GPU_AFFINITY_MODE", "node")
            .env("GPU_AFFINITY_GUARD", guard)
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert_eq!(run.field("parent", "cpus").as_deref(), Some("1"), "{guard}");
        assert_eq!(
            run.field("child", "cpus").as_deref(),
            Some(child),
            "{guard}\n{}",
            run.describe()
        );
        assert_eq!(run.stderr, "", "{guard}");
    }
}
