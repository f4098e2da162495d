//! The unwinder inside libgpuaff.so. A native build links the C compiler's static unwinder
//! (libgcc_eh) instead of needing libgcc_s.so.1 (build.rs: loading that library was most of what the
//! preload cost a process without a rank). These tests check the object itself (no libgcc_s, no
//! exported `_Unwind_*`, no glibc symbol newer than this machine's), that panics still unwind inside
//! the object to its `catch_unwind` (debug builds carry a panic on request, GPUAFF_TEST_PANIC), and
//! that the host's own unwinding is untouched: pthread_exit and cancellation through the hook's
//! wrapper (tests/preload.rs, tests/c/exits.c) and a C++ host that throws (tests/c/throws.cpp).

mod common;
use common::*;
use std::process::Command;

/// The object's dynamic section and symbols, as readelf and objdump print them.
fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .arg(so_path())
        .output()
        .unwrap_or_else(|e| panic!("{name} runs (binutils is needed for this test): {e}"));
    assert!(out.status.success(), "{name} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn version(s: &str) -> Vec<u32> {
    s.split('.').filter_map(|p| p.parse().ok()).collect()
}

#[test]
fn the_object_needs_no_libgcc_s_and_exports_no_unwinder() {
    let needed: Vec<String> = tool("readelf", &["-dW"])
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_string))
        .collect();
    assert!(
        needed.iter().any(|n| n.starts_with("libc.so")),
        "{needed:?}"
    );
    if env!("GPUAFF_STATIC_UNWINDER") == "1" {
        assert!(
            !needed.iter().any(|n| n.starts_with("libgcc_s")),
            "build.rs chose the static unwinder, yet the object needs {needed:?}"
        );
    } else {
        println!(
            "build.rs kept the shared libgcc_s (not a native linux-gnu build with libgcc_eh.a)"
        );
    }
    let dynsym = tool("objdump", &["-T"]);
    // Defined (not *UND*) unwinder symbols would be offered to every later object in the process.
    let exported: Vec<&str> = dynsym
        .lines()
        .filter(|l| l.contains("_Unwind_") && !l.contains("*UND*"))
        .collect();
    assert!(exported.is_empty(), "exported: {exported:#?}");
    // Built here, it must load here: no symbol version above this machine's glibc.
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let here = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let here = version(&here.to_string_lossy());
    let top = dynsym
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .map(version)
        .max()
        .expect("the object names GLIBC_ versions");
    assert!(
        top <= here,
        "needs GLIBC {top:?}, this machine has {here:?}"
    );
}

/// The panic-on-request hook exists in debug builds only (cargo test's default profile).
fn debug_build() -> bool {
    if !cfg!(debug_assertions) {
        println!("a release test build: the library carries no GPUAFF_TEST_PANIC; skipped");
    }
    cfg!(debug_assertions)
}

fn assert_internal_errors(run: &Run, at: &str, count: usize) {
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), count, "{}", run.describe());
    for l in lines {
        assert!(
            l.starts_with("gpuaff: internal error (a bug in gpuaff): ")
                && l.contains(&format!("GPUAFF_TEST_PANIC={at}")),
            "{}",
            run.describe()
        );
    }
}

/// A panic in the constructor unwinds to its catch_unwind: one line, the process runs on unbound
/// (strict: exits 66).
#[test]
fn a_panic_at_load_unwinds_to_the_constructors_catch() {
    if !debug_build() {
        return;
    }
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = preloaded(c_program("threads", false), &fx, "1")
        .args(["2", "0"])
        .env("GPUAFF_TEST_PANIC", "load")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
    assert_internal_errors(&run, "load", 1);
    // Nothing was bound: the main thread keeps this test's mask.
    let main = run.pid.to_string();
    let tasks = run.tasks();
    let cpus = tasks.iter().find(|(t, _)| *t == main).map(|(_, c)| c);
    assert_eq!(cpus, Some(&own_cpus()), "{}", run.describe());

    let strict = preloaded(c_program("threads", false), &fx, "1")
        .args(["2", "0"])
        .env("GPUAFF_TEST_PANIC", "load")
        .env("GPU_AFFINITY_STRICT", "1")
        .run();
    assert_eq!(strict.code(), Some(66), "{}", strict.describe());
    assert_eq!(strict.stdout, "", "{}", strict.describe());
    assert_internal_errors(&strict, "load", 1);
}

/// A panic while the hook binds a new thread unwinds to the wrapper's catch_unwind; the thread runs
/// its routine unbound, and pthread_exit and cancellation still pass the wrapper.
#[test]
fn a_panic_in_a_new_thread_unwinds_to_the_wrappers_catch() {
    if !debug_build() {
        return;
    }
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    // The creator pins itself to CPU 0, outside rank 1's CPU 1, so both of its threads go through the
    // wrapper (the creator itself inherits main's binding: no wrapper, no panic).
    let run = preloaded(c_program("exits", false), &fx, "1")
        .arg("0")
        .env("GPUAFF_TEST_PANIC", "thread")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains("exit value=42 cpus=0\n"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout
            .contains("cancel result=canceled cleanup=1 cpus=0\n"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
    assert_internal_errors(&run, "thread", 2);
}

/// A C++ host's exceptions and forced unwinds, in threads started through the hook's wrapper and in
/// main, with the library (and its own unwinder) loaded alongside the host's libgcc_s.
#[test]
fn a_cpp_host_throws_and_exits_through_its_own_frames() {
    if std::env::var_os("GPUAFF_TEST_CC").is_some() {
        println!("GPUAFF_TEST_CC is set (a cross build): no C++ compiler for it here; skipped");
        return;
    }
    require_cpus_0_and_1();
    let src = root().join("tests/c/throws.cpp");
    let exe = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("throws.{}", std::process::id()));
    let status = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-O1", "-pthread", "-I"])
        .arg(root().join("tests/c"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("c++ runs (a C++ compiler is needed for this test)");
    assert!(status.success(), "c++ failed for {}", src.display());
    let fx = fixture("two-gpu-local");
    for extra in [&[][..], &[("GPU_AFFINITY_MEMBIND", "preferred")][..]] {
        let run = preloaded(&exe, &fx, "1").envs(extra).run();
        let at = format!("{extra:?}\n{}", run.describe());
        assert_eq!(run.code(), Some(0), "{at}");
        assert_eq!(
            run.stdout,
            "pthread caught=1 destroyed=6 cpus=1\n\
             std::thread caught=1 destroyed=6 cpus=1\n\
             exit value=42 forced=1 destroyed=1 cpus=1\n\
             main caught=1 destroyed=6\n\
             done\n",
            "{at}"
        );
        assert_eq!(run.stderr, "", "{at}");
    }
    let _ = std::fs::remove_file(&exe);
}
