//! Helpers for the integration tests: the built libgpuaff.so, test programs compiled on demand,
//! fixture trees, and processes run with a clean gpuaff environment.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use gpuaff_fixtures::TempTree;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The libgpuaff.so that `cargo test` built next to this test executable (target/<profile>/).
pub fn so_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a directory");
    for dir in [deps.parent().unwrap_or(deps), deps] {
        let so = dir.join("libgpuaff.so");
        if so.is_file() {
            check_fresh(&so);
            return so;
        }
    }
    panic!(
        "libgpuaff.so not found next to {} (nor in its parent): run cargo build first",
        deps.display()
    );
}

/// `cargo test` does not build a cdylib-only library: a stale one would test old code.
fn check_fresh(so: &Path) {
    fn newest(dir: &Path, best: &mut Option<(std::time::SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // The command's sources (src/bin) are not part of the library.
                if p.ends_with("src/bin") {
                    continue;
                }
                newest(&p, best);
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    if best.as_ref().map_or(true, |(b, _)| t > *b) {
                        *best = Some((t, p));
                    }
                }
            }
        }
    }
    let mut best = None;
    newest(&root().join("src"), &mut best);
    newest(&root().join("core/src"), &mut best);
    let built = std::fs::metadata(so).and_then(|m| m.modified());
    if let (Some((src_time, src)), Ok(built)) = (best, built) {
        assert!(
            src_time <= built,
            "{} is older than {}: run cargo build first (cargo test does not rebuild the cdylib)",
            so.display(),
            src.display()
        );
    }
}

/// The directory holding libgpuaff.so (for -L and rpath).
pub fn so_dir() -> PathBuf {
    so_path()
        .parent()
        .expect("so has a directory")
        .to_path_buf()
}

/// The C compiler for test programs: `GPUAFF_TEST_CC` (one program, e.g. a cross compiler wrapper
/// when the tests run on another architecture) or `cc`.
pub fn test_cc() -> std::ffi::OsString {
    std::env::var_os("GPUAFF_TEST_CC").unwrap_or_else(|| "cc".into())
}

/// A private name beside `out`, to write to and then rename onto `out`: a reader never sees half a
/// file, and the name is unique per call (process id and a counter), so that neither two test
/// processes nor two threads of one write the same temporary file. A name per process only was
/// shared by the threads of one test binary: CI saw "symlink the library: File exists".
pub fn tmp_beside(out: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    out.with_file_name(name)
}

/// A directory where -lgpuaff finds the built library and the SONAME it records (libgpuaff.so.0)
/// resolves at run time: symlinks to the built libgpuaff.so, as an installed prefix has. Made
/// once per test process.
pub fn link_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(make_link_dir).clone()
}

fn make_link_dir() -> PathBuf {
    let so = so_path();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linked-lib");
    std::fs::create_dir_all(&dir).expect("create the link directory");
    for name in ["libgpuaff.so", "libgpuaff.so.0"] {
        let link = dir.join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(so.as_path()) {
            let tmp = tmp_beside(&link);
            std::os::unix::fs::symlink(&so, &tmp).expect("symlink the library");
            std::fs::rename(&tmp, &link).expect("rename the symlink");
        }
    }
    dir
}

static COMPILED: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

/// Compiles tests/c/NAME.c (linked with -lgpuaff when `link`) into CARGO_TARGET_TMPDIR, once per test
/// process (through `tmp_beside`: parallel test processes never see half a binary).
pub fn c_program(name: &str, link: bool) -> PathBuf {
    build_c(name, link, false)
}

/// Compiles tests/c/NAME.c as a shared library (lib NAME .so), as `c_program` does programs.
pub fn c_library(name: &str) -> PathBuf {
    build_c(name, false, true)
}

fn build_c(name: &str, link: bool, shared: bool) -> PathBuf {
    let key = if shared {
        format!("lib{name}.so")
    } else {
        format!("{name}-{link}")
    };
    let mut cache = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get_or_insert_with(HashMap::new).get(&key) {
        return p.clone();
    }
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = out_dir.join(&key);
    let tmp = tmp_beside(&out);
    let src = root().join("tests/c").join(format!("{name}.c"));
    let mut cmd = Command::new(test_cc());
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    }
    cmd.args(["-std=c99", "-Wall", "-O1", "-pthread", "-I"])
        .arg(root().join("c-header"))
        .arg(&src)
        .arg("-o")
        .arg(&tmp);
    if link {
        let dir = link_dir();
        cmd.arg(format!("-L{}", dir.display()))
            .arg("-lgpuaff")
            .arg(format!("-Wl,-rpath,{}", dir.display()));
    }
    // dlopen is in libc from glibc 2.34; older C libraries (and cross sysroots) need libdl.
    cmd.arg("-ldl");
    let status = cmd
        .status()
        .expect("cc runs (a C compiler is needed for these tests)");
    assert!(status.success(), "cc failed for {}", src.display());
    std::fs::rename(&tmp, &out).expect("rename compiled program");
    cache
        .get_or_insert_with(HashMap::new)
        .insert(key, out.clone());
    out
}

/// A catalog machine written to a fresh temporary directory (removed on drop).
pub fn fixture(name: &str) -> TempTree {
    let spec = gpuaff_fixtures::by_name(name).unwrap_or_else(|| panic!("no fixture {name}"));
    gpuaff_fixtures::write_temp(&spec).expect("write fixture")
}

/// A spec written to a fresh temporary directory.
pub fn fixture_spec(spec: &gpuaff_fixtures::Spec) -> TempTree {
    gpuaff_fixtures::write_temp(spec).expect("write fixture")
}

/// Variables that would change what gpuaff does (besides GPU_AFFINITY_*), removed from every test
/// process's environment: the core's own lists, so a launcher variable added there is cleared here too.
fn launcher_vars() -> impl Iterator<Item = &'static str> {
    use gpuaff_core::config::{LOCAL_RANK_VARS, LOCAL_SIZE_VARS};
    LOCAL_RANK_VARS
        .into_iter()
        .chain(LOCAL_SIZE_VARS)
        .chain(gpuaff_core::gpu::device_vars())
        .chain(["LD_PRELOAD"])
}

/// What a finished process left.
#[derive(Debug)]
pub struct Run {
    pub status: std::process::ExitStatus,
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
    /// `task TID LIST` lines: every thread's Cpus_allowed_list.
    pub fn tasks(&self) -> Vec<(String, String)> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("task "))
            .filter_map(|l| l.split_once(' '))
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect()
    }
    /// The value of `key=` on the line starting with `prefix`.
    pub fn field(&self, prefix: &str, key: &str) -> Option<String> {
        let line = self.stdout.lines().find(|l| l.starts_with(prefix))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A process to run with a clean gpuaff environment plus `envs`.
pub struct Proc {
    cmd: Command,
}

impl Proc {
    pub fn new(program: impl AsRef<std::ffi::OsStr>) -> Proc {
        let mut cmd = Command::new(program);
        for v in launcher_vars() {
            cmd.env_remove(v);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GPU_AFFINITY_") {
                cmd.env_remove(k);
            }
        }
        Proc { cmd }
    }
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, a: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(a);
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }
    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Self {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }
    pub fn preload(self) -> Self {
        let so = so_path();
        self.env("LD_PRELOAD", so)
    }
    /// Runs to completion (killed after 60 s). Under qemu-user a run that hangs is killed and run
    /// once more (see `qemu_user`); natively a hang fails the test at once.
    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let tries = if qemu_user() { 2 } else { 1 };
        let mut hangs = Vec::new();
        for _ in 0..tries {
            match self.run_once() {
                Ok(run) => {
                    if !hangs.is_empty() {
                        eprintln!(
                            "note: under qemu-user, a run hung and was run again: {}",
                            hangs.join("; ")
                        );
                    }
                    return run;
                }
                Err(hang) => hangs.push(hang),
            }
        }
        panic!("{}", hangs.join("; then "));
    }

    fn run_once(&mut self) -> Result<Run, String> {
        let mut child = self.cmd.spawn().expect("spawn test program");
        let pid = child.id();
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        // Bytes, then lossy text: output that is not UTF-8 still shows up (read_to_string drops it all).
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                // Where it hung, before it is gone: still the test binary (a fork that never
                // reached exec) or the program, and what its threads wait in.
                let state = hang_state(pid);
                let _ = child.kill();
                let _ = child.wait();
                let _ = (t_out.join(), t_err.join());
                return Err(format!(
                    "test program {pid} did not finish within 60 s ({state})"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Run {
            status,
            pid,
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
        })
    }
}

/// A process left running for a test to look at; killed when dropped.
pub struct Live {
    child: std::process::Child,
    pub pid: u32,
}

impl Live {
    pub fn pid_s(&self) -> String {
        self.pid.to_string()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts the program and returns once it prints a line starting with `ready` (a test program
    /// that then waits until its stdin closes: tests/c/hold.c).
    pub fn spawn_ready(mut self) -> Live {
        use std::io::BufRead;
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = self.cmd.spawn().expect("spawn test program");
        let pid = child.id();
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let live = Live { child, pid };
        assert!(
            line.starts_with("ready"),
            "test program {pid} did not get ready (printed {line:?})"
        );
        live
    }
}

/// `program` with libgpuaff.so preloaded as local `rank` on the fixture tree `fx`.
pub fn preloaded(program: impl AsRef<std::ffi::OsStr>, fx: &TempTree, rank: &str) -> Proc {
    Proc::new(program)
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", rank)
}

/// This test process's own Cpus_allowed_list (what an unbound child inherits).
pub fn own_cpus() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .expect("Cpus_allowed_list")
}

fn parse_list(s: &str) -> Vec<usize> {
    gpuaff_fixtures::parse_list(s).unwrap_or_default()
}

/// The binding tests use two-CPU fixtures and expect CPUs 0 and 1 to be usable by this process.
pub fn require_cpus_0_and_1() {
    let own = own_cpus();
    let cpus = parse_list(&own);
    assert!(
        cpus.contains(&0) && cpus.contains(&1),
        "these tests bind to CPUs 0 and 1 (the fixtures are 2-CPU machines), but this test process may \
         only use CPUs {own}; run them where CPUs 0 and 1 are both allowed (e.g. not under taskset -c 2-3)"
    );
}

/// Every thread's list equals `want`, except the listed thread ids.
pub fn assert_all_tasks(run: &Run, want: &str, except: &[String]) {
    let tasks = run.tasks();
    assert!(!tasks.is_empty(), "no task lines\n{}", run.describe());
    for (tid, cpus) in tasks {
        if except.contains(&tid) {
            continue;
        }
        assert_eq!(cpus, want, "thread {tid}\n{}", run.describe());
    }
}

/// Runs `code` in python3 with `d` the parsed JSON of the run's stdout; its printed lines.
pub fn query(run: &Run, code: &str) -> Vec<String> {
    let py = format!("import json,sys\nd=json.load(sys.stdin)\n{code}");
    let mut child = std::process::Command::new("python3")
        .args(["-c", &py])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(run.stdout.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "not JSON:\n{}", run.describe());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// True when this test binary runs under qemu-user: the aarch64 suite on an x86_64 host, which
/// sets qemu's `QEMU_LD_PREFIX` (qemu-user shows the guest program as `/proc/self/exe`, so that
/// cannot tell). qemu-user itself deadlocks now and then when a process with threads forks (a
/// strict-mode child hung once in CI, never in 89 runs here); a second run tells that from a hang
/// of ours, which repeats.
pub fn qemu_user() -> bool {
    std::env::var_os("QEMU_LD_PREFIX").is_some()
}

/// A hung process's command line and the kernel's wait channel of each of its threads.
fn hang_state(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let waits: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| std::fs::read_to_string(e.path().join("wchan")).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    format!("command line {cmdline:?}, threads waiting in {waits:?}")
}
