//! The loading rules (src/loading.rs): only a preloaded copy binds at load; a linked or dlopened copy
//! binds when called; two copies under different paths keep one binding, governed by the latest
//! call, with one verbose line per binding.

mod common;
use common::*;

/// A second copy of the library under another path (the loader treats it as another object).
fn second_copy() -> std::path::PathBuf {
    static COPY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(make_second_copy).clone()
}

fn make_second_copy() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("second-copy");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let copy = dir.join("libgpuaff.so");
    let tmp = tmp_beside(&copy);
    std::fs::copy(so_path(), &tmp).expect("copy the library");
    std::fs::rename(&tmp, &copy).expect("rename the copy");
    copy
}

fn verbose_lines(run: &Run) -> Vec<&str> {
    run.stderr_lines()
        .into_iter()
        .filter(|l| l.contains(" -> GPU "))
        .collect()
}

#[test]
fn a_dlopened_copy_binds_only_when_called() {
    require_cpus_0_and_1();
    let own = own_cpus();
    let fx = fixture("two-gpu-local");
    let run = Proc::new(c_program("two_copies", false))
        .arg(second_copy())
        .args(["0", "2"])
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_VERBOSE", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // LOCAL_RANK=1 is set, yet loading bound nothing: only the call (GPU 0) did.
    assert_eq!(
        run.field("loaded", "cpus").as_deref(),
        Some(own.as_str()),
        "{}",
        run.describe()
    );
    assert_eq!(run.field("rc=", "cpus").as_deref(), Some("0"));
    // (No hook is in force: a dlopened copy cannot interpose pthread_create, so the late thread's
    // creator, which widened itself, decides its mask.)
    let lines = verbose_lines(&run);
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert!(lines[0].contains("rank 0 -> GPU 0"), "{}", run.describe());
}

#[test]
fn a_linked_copy_binds_only_when_called() {
    require_cpus_0_and_1();
    let own = own_cpus();
    let fx = fixture("two-gpu-local");
    // Linked with -lgpuaff, and a second copy dlopened: the call through the second copy is forwarded
    // to the linked one, whose pthread_create hook then governs the late thread.
    let run = Proc::new(c_program("two_copies", true))
        .arg(second_copy())
        .args(["0", "2"])
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_VERBOSE", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(
        run.field("start", "cpus").as_deref(),
        Some(own.as_str()),
        "{}",
        run.describe()
    );
    assert_eq!(run.field("rc=", "cpus").as_deref(), Some("0"));
    assert_eq!(
        run.field("thread late", "cpus").as_deref(),
        Some("0"),
        "{}",
        run.describe()
    );
    assert_eq!(verbose_lines(&run).len(), 1, "{}", run.describe());
}

#[test]
fn a_preloaded_and_a_dlopened_copy_keep_one_binding() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    // The preloaded copy binds rank 1 (CPU 1) at start; the program then binds GPU 0 through its own
    // copy. The late thread is created by a thread on CPUs 0-1 (outside both bindings): the preloaded
    // copy's hook must follow the latest call and start it on CPU 0, not on the first binding's CPU 1.
    let run = preloaded(c_program("two_copies", false), &fx, "1")
        .arg(second_copy())
        .args(["0", "2"])
        .env("GPU_AFFINITY_VERBOSE", "1")
        .env("TEST_ATTR_CPU", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(run.field("start", "cpus").as_deref(), Some("1"));
    assert_eq!(run.field("rc=", "rc").as_deref(), Some("1"));
    assert_eq!(run.field("rc=", "cpus").as_deref(), Some("0"));
    let late = run.field("thread late", "tid").expect("late tid");
    assert_eq!(
        run.field("thread late", "cpus").as_deref(),
        Some("0"),
        "the latest call governs new threads\n{}",
        run.describe()
    );
    // Every thread but the attribute thread (which widened itself to 0-1) is on CPU 0.
    let attr: Vec<String> = run
        .tasks()
        .into_iter()
        .filter(|(t, c)| c == "0-1" && *t != late)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(attr.len(), 1, "{}", run.describe());
    assert_all_tasks(&run, "0", &attr);
    // The error of the forwarded call is read back through the second copy.
    let err = run
        .stdout
        .lines()
        .find(|l| l.starts_with("error rc=-"))
        .unwrap_or_else(|| panic!("no error line\n{}", run.describe()));
    assert!(err.contains("99"), "{}", run.describe());
    let lines = verbose_lines(&run);
    assert_eq!(lines.len(), 2, "one line per binding\n{}", run.describe());
    assert!(lines[0].contains("CPUs 1,") || lines[0].contains("CPUs 1 "));
    assert!(lines[1].contains("rank 0 -> GPU 0"), "{}", run.describe());
}

#[test]
fn two_preloaded_copies_bind_once() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let both = format!("{} {}", so_path().display(), second_copy().display());
    let run = preloaded(c_program("threads", false), &fx, "1")
        .arg("2")
        .arg("0")
        .env("LD_PRELOAD", &both)
        .env("GPU_AFFINITY_VERBOSE", "1")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert_eq!(verbose_lines(&run).len(), 1, "{}", run.describe());
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert_eq!(run.field("thread sub", "cpus").as_deref(), Some("1"));
}

#[test]
fn a_copy_preloaded_by_file_name_or_symlink_binds() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    // By file name: the loader searches LD_LIBRARY_PATH. Through a symlink: the same file.
    let link = link_dir();
    for (preload, libpath) in [
        ("libgpuaff.so".to_string(), link.display().to_string()),
        (
            link.join("libgpuaff.so.0").display().to_string(),
            String::new(),
        ),
    ] {
        let run = preloaded(c_program("threads", false), &fx, "1")
            .arg("2")
            .arg("0")
            .env("LD_PRELOAD", &preload)
            .env("LD_LIBRARY_PATH", &libpath)
            .env("GPU_AFFINITY_VERBOSE", "1")
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert_eq!(
            verbose_lines(&run).len(),
            1,
            "{preload}\n{}",
            run.describe()
        );
        assert_eq!(run.field("thread sub", "cpus").as_deref(), Some("1"));
    }
}
