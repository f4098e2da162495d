//! The C ABI: an explicit gpu_affinity_set from C (linked with -lgpuaff) and from Python (ctypes),
//! and the header itself.

mod common;
use common::*;
use std::process::Command;

fn explicit(gpu: &str, attr_cpu: &str, fx: &TempTree) -> Run {
    Proc::new(c_program("explicit", true))
        .arg(gpu)
        .arg("2")
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("TEST_ATTR_CPU", attr_cpu)
        .run()
}

#[test]
fn threads_created_before_the_call_end_inside() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for (gpu, other) in [("1", "0"), ("0", "1")] {
        let run = explicit(gpu, other, &fx);
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
        assert_eq!(
            run.field("rc=", "rc").as_deref(),
            Some("1"),
            "{}",
            run.describe()
        );
        assert_eq!(run.field("rc=", "cpus").as_deref(), Some(gpu));
        assert_eq!(run.field("plan=", "plan").as_deref(), Some("1"));
        assert_eq!(
            run.field("version=", "version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        // The thread with its own attribute mask keeps it; everything else, including the thread it
        // created after the call without an attribute, is bound.
        assert_eq!(run.field("thread attr", "cpus").as_deref(), Some(other));
        assert_eq!(run.field("thread plain", "cpus").as_deref(), Some(gpu));
        assert_eq!(run.field("thread late", "cpus").as_deref(), Some(gpu));
        assert_eq!(run.field("thread main", "cpus").as_deref(), Some(gpu));
        let attr = run.field("thread attr", "tid").expect("attr tid");
        assert_all_tasks(&run, gpu, &[attr]);
        assert_eq!(run.stderr, "", "{}", run.describe());
    }
}

#[test]
fn a_failed_call_changes_nothing_and_explains() {
    require_cpus_0_and_1();
    let own = own_cpus();
    let fx = fixture("two-gpu-local");
    let run = explicit("7", "0", &fx);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("error "))
        .unwrap_or_else(|| panic!("no error line\n{}", run.describe()));
    let rc: i32 = run
        .field("error ", "rc")
        .and_then(|v| v.parse().ok())
        .expect("rc");
    assert!(rc < 0, "{line}");
    assert!(line.contains(" last="), "{line}");
    let last = line.split(" last=").nth(1).unwrap_or("");
    assert!(!last.is_empty(), "last error is empty: {line}");
    let attr = run.field("thread attr", "tid").expect("attr tid");
    let late = run.field("thread late", "tid").expect("late tid");
    // The late thread was created by the attribute thread (CPU 0) with no binding in force.
    assert_all_tasks(&run, &own, &[attr, late]);
    assert_eq!(run.stderr, "", "{}", run.describe());
}

#[test]
fn python_ctypes_binds_and_reports() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let run = Proc::new("python3")
        .arg(root().join("tests/py/ctypes_call.py"))
        .arg(so_path())
        .arg("1")
        .arg("2")
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(
        run.field("rc=", "rc").as_deref(),
        Some("1"),
        "{}",
        run.describe()
    );
    assert_eq!(run.field("rc=", "cpus").as_deref(), Some("1"));
    assert_eq!(
        run.field("version=", "version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let enodev = run.stdout.lines().find_map(|l| l.strip_prefix("enodev="));
    assert!(
        enodev.is_some_and(|m| m.contains("GPU")),
        "{}",
        run.describe()
    );
    assert_all_tasks(&run, "1", &[]);

    let bad = Proc::new("python3")
        .arg(root().join("tests/py/ctypes_call.py"))
        .arg(so_path())
        .arg("1")
        .arg("2")
        .env("GPU_AFFINITY_FSROOT", "/nonexistent/gpuaff")
        .run();
    assert_eq!(bad.code(), Some(0), "{}", bad.describe());
    assert!(bad.stdout.contains("error rc=-"), "{}", bad.describe());
    assert!(
        bad.stdout.contains("/nonexistent/gpuaff"),
        "{}",
        bad.describe()
    );
}

#[test]
fn header_compiles_as_c99_and_cxx11() {
    let header = root().join("c-header/gpu_affinity.h");
    for (cc, args) in [
        (
            "cc",
            &[
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-x",
                "c",
            ][..],
        ),
        (
            "c++",
            &[
                "-std=c++11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-x",
                "c++",
            ][..],
        ),
    ] {
        let out = Command::new(cc)
            .args(args)
            .arg("-fsyntax-only")
            .arg(&header)
            .output()
            .unwrap_or_else(|e| panic!("{cc}: {e}"));
        assert!(
            out.status.success(),
            "{cc} rejects the header: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A program using every declaration links against the library.
    let src = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("use_header_{}.c", std::process::id()));
    std::fs::write(
        &src,
        "#include <gpu_affinity.h>\n#include <stdio.h>\nint main(void){struct gpu_affinity_options o;\
         gpu_affinity_options_init(&o);o.gpu_id=0;o.dry_run=1;o.membind=GPU_AFFINITY_MEMBIND_BIND;\
         o.cores=GPU_AFFINITY_CORES_SINGLE_LOGICAL;o.threads=GPU_AFFINITY_THREADS_INHERIT;\
         printf(\"%d %s %s %s %d %d\\n\",(int)(o.size==sizeof o),gpu_affinity_version(),\
         gpu_affinity_strerror(-19),gpu_affinity_last_error(),gpu_affinity_plan(NULL,NULL,0)<=0,\
         gpu_affinity_set_opts(&o,NULL,-1));return 0;}\n",
    )
    .expect("write source");
    let exe = src.with_extension("");
    let dir = so_dir();
    let st = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror", "-I"])
        .arg(root().join("c-header"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", dir.display()))
        .arg("-lgpuaff")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .status()
        .expect("cc");
    assert!(st.success());
    let run = Proc::new(&exe).run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // size is set, a negative cpus_len is refused with -EINVAL.
    assert!(run.stdout.starts_with("1 "), "{}", run.describe());
    assert!(
        run.stdout
            .trim_end()
            .ends_with(&format!(" {}", -libc_einval())),
        "{}",
        run.describe()
    );
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&exe);
}

fn libc_einval() -> i32 {
    libc::EINVAL
}

/// A machine without an NVIDIA GPU: the call changes nothing and says so with -ENODEV.
#[test]
fn no_gpu_is_enodev_with_a_clear_message() {
    let fx = fixture_spec(&gpuaff_fixtures::Spec::new("no-gpu", 1, 1, 2, 1));
    let py = "import ctypes,os,sys\n\
              lib=ctypes.CDLL(sys.argv[1])\n\
              lib.gpu_affinity_strerror.restype=ctypes.c_char_p\n\
              lib.gpu_affinity_last_error.restype=ctypes.c_char_p\n\
              before=os.sched_getaffinity(0)\n\
              n=lib.gpu_affinity_set(0,0,None,None,0)\n\
              print(n)\n\
              print(lib.gpu_affinity_strerror(n).decode())\n\
              print(lib.gpu_affinity_last_error().decode())\n\
              print(os.sched_getaffinity(0)==before)";
    let run = Proc::new("python3")
        .args(["-c", py])
        .arg(so_path())
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("-{}", libc::ENODEV).as_str()),
        "{}",
        run.describe()
    );
    assert!(lines[1].starts_with("no usable GPU"), "{}", run.describe());
    assert!(
        lines[2].starts_with("no GPU found under"),
        "{}",
        run.describe()
    );
    assert_eq!(lines[3], "True", "affinity unchanged\n{}", run.describe());
    assert!(
        run.stderr.is_empty(),
        "the C API reports through its return value\n{}",
        run.describe()
    );
}

/// gpu_affinity_set from 16 threads at once while 1,000 threads are being created: no deadlock
/// (a watchdog in the program), every call succeeds, and every thread — those alive after the
/// calls and those created later — ends inside the final binding.
#[test]
fn concurrent_calls_during_a_thread_storm() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    for (gpu, want) in [("1", "1"), ("0", "0")] {
        let run = Proc::new(c_program("storm", true))
            .arg(gpu)
            .env("GPU_AFFINITY_FSROOT", fx.path())
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        let rcs: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("set rc="))
            .collect();
        assert_eq!(rcs.len(), 16, "{}", run.describe());
        assert!(
            rcs.iter().all(|l| *l == "set rc=1"),
            "every call binds one CPU\n{}",
            run.describe()
        );
        assert!(
            run.tasks().len() >= 21,
            "main, 4 creators, 16 callers\n{}",
            run.describe()
        );
        assert_all_tasks(&run, want, &[]);
        let late: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("late cpus="))
            .collect();
        assert_eq!(
            late,
            vec![format!("late cpus={want}").as_str(); 4],
            "{}",
            run.describe()
        );
        assert!(run.stdout.ends_with("done\n"), "{}", run.describe());
    }
}
