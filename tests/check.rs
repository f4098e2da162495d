//! `gpuaff check` on live processes started under the preload on fixture trees (bound, one thread
//! re-pinned, two ranks overlapping, unbound), on a synthetic `/proc` (remote memory, discovery), on
//! another user's process (permissions), and its argument errors. The JSON is read by python3's json
//! module, so it is checked as JSON.

mod common;
use common::*;
use std::path::Path;

/// The name tests/c/hold.c runs under (common::c_program names programs NAME-LINKED).
const HOLD: &str = "hold-false";

fn gpuaff() -> Proc {
    Proc::new(env!("CARGO_BIN_EXE_gpuaff"))
}

fn check(args: &[&str]) -> Run {
    gpuaff().arg("check").args(args).run()
}

/// tests/c/hold.c as local `rank` on `fx`, preloaded or not, left running.
fn hold(fx: &TempTree, rank: &str, preload: bool, args: &[&str]) -> Live {
    let p = Proc::new(c_program("hold", false))
        .args(args)
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", rank);
    if preload { p.preload() } else { p }.spawn_ready()
}

const FINDINGS: &str = "for f in d['findings']: print(f['kind'], *f['pids'])";
const PROCS: &str = "for p in d['processes']: print(p['pid'], p['rank'], p['planned'], p['actual'], p['threads_in'], p['threads_out'], p['ok'])";

fn message<'a>(run: &'a Run, kind_pid: &str) -> &'a str {
    // The text output's problem line about this pid.
    run.stdout
        .lines()
        .find(|l| l.starts_with("  ") && l.contains(kind_pid))
        .unwrap_or_else(|| panic!("no problem line with {kind_pid:?}\n{}", run.describe()))
}

#[test]
fn a_correctly_bound_two_rank_job_matches() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r0 = hold(&fx, "0", true, &["3"]);
    let r1 = hold(&fx, "1", true, &["3"]);
    let (p0, p1) = (r0.pid_s(), r1.pid_s());
    let text = check(&[&p0, &p1]);
    assert_eq!(text.code(), Some(0), "{}", text.describe());
    assert!(
        text.stdout.contains("everything matches its plan"),
        "{}",
        text.describe()
    );
    assert!(text.stdout.contains("planned") && text.stdout.contains("actual"));
    // The maps: rank 0 on core 0, rank 1 on core 1, planned and actual alike.
    assert_eq!(
        text.stdout.matches("cores    0-1     01  GPU 0,1").count(),
        2,
        "{}",
        text.stdout
    );
    let json = check(&["--json", &p0, &p1]);
    assert_eq!(json.code(), Some(0), "{}", json.describe());
    assert_eq!(
        query(&json, PROCS),
        [
            format!("{p0} 0 0 0 4 0 True"),
            format!("{p1} 1 1 1 4 0 True")
        ]
    );
    assert!(query(&json, FINDINGS).is_empty());
    assert_eq!(
        query(&json, "print(d['version'], d['ok'], d['processes'][0]['memory']['local_nodes'], d['processes'][0]['preloaded'])"),
        ["1 True [0] True"]
    );
}

#[test]
fn a_thread_repinned_outside_is_named_with_its_runtime() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r0 = hold(&fx, "0", true, &["3", "repin", "1", "omp_worker"]);
    let r1 = hold(&fx, "1", true, &["3"]);
    let (p0, p1) = (r0.pid_s(), r1.pid_s());
    let text = check(&[&p0, &p1]);
    assert_eq!(text.code(), Some(1), "{}", text.describe());
    let line = message(&text, &format!("rank 0 (pid {p0}, {HOLD}): thread"));
    assert!(
        line.contains("\"omp_worker\" on CPUs 1, outside the plan 0"),
        "{line}"
    );
    assert!(line.contains("the name suggests OpenMP"), "{line}");
    let json = check(&["--json", &p0, &p1]);
    assert_eq!(json.code(), Some(1), "{}", json.describe());
    let mut kinds = query(&json, FINDINGS);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            format!("overlap {p0} {p1}"),
            format!("threads_outside {p0}")
        ]
    );
    assert_eq!(
        query(&json, PROCS),
        [
            format!("{p0} 0 0 0-1 4 1 False"),
            format!("{p1} 1 1 1 4 0 False")
        ]
    );
    assert_eq!(
        query(&json, "print(*[t['cpulist'] for t in d['processes'][0]['threads'] if t['name'] == 'omp_worker'])"),
        ["1"]
    );
}

#[test]
fn two_ranks_overlapping_and_two_claiming_one_rank() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r0 = hold(&fx, "0", true, &["2"]);
    // Rank 1, not preloaded, pinned by something else onto rank 0's CPU.
    let r1 = hold(&fx, "1", false, &["2", "pin-all", "0"]);
    let (p0, p1) = (r0.pid_s(), r1.pid_s());
    let json = check(&["--json", &p0, &p1]);
    assert_eq!(json.code(), Some(1), "{}", json.describe());
    let mut kinds = query(&json, FINDINGS);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            format!("overlap {p0} {p1}"),
            format!("threads_outside {p1}")
        ]
    );
    let text = check(&[&p0, &p1]);
    assert_eq!(text.code(), Some(1));
    let line = message(&text, "share CPUs");
    assert!(
        line.contains(&format!("rank 0 (pid {p0}, {HOLD}) and rank 1 (pid {p1}, {HOLD}) share CPUs 0, which their plans keep apart (0 and 1)")),
        "{line}"
    );
    assert!(
        message(&text, &format!("rank 1 (pid {p1}, {HOLD}): 3 threads"))
            .contains("on CPUs 0, outside the plan 1")
    );

    // A second, unrelated process told it is local rank 0 too.
    let dup = hold(&fx, "0", true, &["1"]);
    let pd = dup.pid_s();
    let json = check(&["--json", &p0, &pd]);
    assert_eq!(json.code(), Some(1), "{}", json.describe());
    assert_eq!(query(&json, FINDINGS), [format!("same_rank {p0} {pd}")]);
}

#[test]
fn a_memory_policy_in_force_matches() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r = Proc::new(c_program("hold", false))
        .arg("1")
        .preload()
        .env("GPU_AFFINITY_FSROOT", fx.path())
        .env("LOCAL_RANK", "1")
        .env("GPU_AFFINITY_MEMBIND", "bind")
        .spawn_ready();
    let json = check(&["--json", &r.pid_s()]);
    assert_eq!(json.code(), Some(0), "{}", json.describe());
    assert_eq!(
        query(&json, "print(d['processes'][0]['memory']['policy'])"),
        ["bind:0"]
    );
}

#[test]
fn an_unbound_process_is_one_line() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r = hold(&fx, "1", false, &["5"]);
    let p = r.pid_s();
    let text = check(&[&p]);
    assert_eq!(text.code(), Some(1), "{}", text.describe());
    let problems: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("pid {p}")))
        .collect();
    assert_eq!(problems.len(), 1, "{}", text.stdout);
    assert!(
        problems[0].contains("not bound at all: its 6 threads may run on CPUs"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("the plan is 1 (GPU 1"),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].ends_with("libgpuaff.so is not preloaded in it"),
        "{}",
        problems[0]
    );
    let json = check(&["--json", &p]);
    assert_eq!(query(&json, FINDINGS), [format!("unbound {p}")]);
    assert_eq!(
        query(&json, "print(d['ok'], d['processes'][0]['threads_out'])"),
        ["False 6"]
    );
}

/// A synthetic /proc for the example1 machine (GPUs on nodes 0,0,1,1): rank 2 bound right but with
/// three quarters of its memory on node 0, rank 0 all local, a GPU holder without a rank, another
/// user's rank 3, and automatic NUMA balancing on.
fn synthetic_proc(fx: &TempTree) -> std::path::PathBuf {
    let dir = fx.path().join("fakeproc");
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let other = if uid == 4242 { 4243 } else { 4242 };
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let stat = |pid: u32, name: &str, cpu: u32| {
        format!(
            "{pid} ({name}) S 1 {pid} {pid} 0 -1 0 {}{cpu} 0 0 0 0 0\n",
            "0 ".repeat(29)
        )
    };
    let proc_ = |pid: u32,
                 uid: u32,
                 env: &str,
                 cpus: &str,
                 threads: &[(u32, &str, u32)],
                 maps: &str| {
        w(&format!("{pid}/status"), &format!("Name:\tpython3\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCpus_allowed_list:\t{cpus}\n"));
        w(&format!("{pid}/environ"), env);
        w(&format!("{pid}/cmdline"), "python3\0train.py\0");
        w(&format!("{pid}/numa_maps"), maps);
        for (tid, name, cpu) in threads {
            w(
                &format!("{pid}/task/{tid}/status"),
                &format!("Name:\t{name}\nCpus_allowed_list:\t{cpus}\n"),
            );
            w(&format!("{pid}/task/{tid}/stat"), &stat(*tid, name, *cpu));
        }
    };
    let env = |rank: u32| {
        format!(
            "LOCAL_RANK={rank}\0GPU_AFFINITY_FSROOT={}\0",
            fx.path().display()
        )
    };
    proc_(
        100,
        uid,
        &env(2),
        "4-5,12-13",
        &[(100, "python3", 4), (101, "pt_autograd_0", 12)],
        "00400000 default file=/usr/bin/python3 mapped=100 N0=100 kernelpagesize_kB=4\n\
         01000000 default heap anon=1000000 dirty=1000000 N0=750000 N1=250000 kernelpagesize_kB=4\n",
    );
    proc_(
        200,
        uid,
        &env(0),
        "0-1,8-9",
        &[(200, "python3", 0)],
        "01000000 default heap anon=1000 dirty=1000 N0=1000 kernelpagesize_kB=4\n",
    );
    proc_(
        300,
        uid,
        "PATH=/bin\0",
        "0-15",
        &[(300, "nv-hostengine", 3)],
        "",
    );
    std::fs::create_dir_all(dir.join("300/fd")).unwrap();
    std::os::unix::fs::symlink("/dev/nvidia0", dir.join("300/fd/3")).unwrap();
    // A ROCm process holds /dev/kfd.
    proc_(310, uid, "PATH=/bin\0", "0-15", &[(310, "python3", 3)], "");
    std::fs::create_dir_all(dir.join("310/fd")).unwrap();
    std::os::unix::fs::symlink("/dev/kfd", dir.join("310/fd/5")).unwrap();
    proc_(400, other, &env(3), "6-7,14-15", &[(400, "python3", 6)], "");
    // Rank 1 asked for a bound memory policy; its mappings show none.
    proc_(
        500,
        uid,
        &format!("{}GPU_AFFINITY_MEMBIND=bind\0", env(1)),
        "2-3,10-11",
        &[(500, "python3", 2)],
        "01000000 default heap anon=10 dirty=10 N0=10 kernelpagesize_kB=4\n",
    );
    // Rank 1, whose CUDA_VISIBLE_DEVICES makes its GPU physical GPU 0 (node 0), running on node 1
    // only, on CPUs no other rank here uses; rank 1 of pid 500 is on another GPU: no clash.
    proc_(
        600,
        uid,
        &format!("{}CUDA_VISIBLE_DEVICES=1,0,2,3\0", env(1)),
        "6-7",
        &[(600, "python3", 7)],
        "",
    );
    // An environment the library rejects, and a plan that cannot be made.
    proc_(
        700,
        uid,
        &format!("{}GPU_AFFINITY_MODE=bogus\0", env(1)),
        "0-15",
        &[(700, "python3", 0)],
        "",
    );
    proc_(
        800,
        uid,
        "LOCAL_RANK=0\0GPU_AFFINITY_FSROOT=/nonexistent/fsroot\0",
        "0-15",
        &[(800, "python3", 0)],
        "",
    );
    w("sys/kernel/numa_balancing", "1\n");
    dir
}

#[test]
fn a_synthetic_proc_with_remote_memory() {
    let fx = fixture("example1");
    let proc_dir = synthetic_proc(&fx);
    let pd = proc_dir.to_str().unwrap();
    let text = check(&["--proc", pd]);
    assert_eq!(text.code(), Some(1), "{}", text.describe());
    let line = message(&text, "rank 2 (pid 100");
    assert_eq!(
        line.trim(),
        "rank 2 (pid 100, python3): 75% of its memory (2.9 GiB of 3.8 GiB) is on node 0, away from its node 1"
    );
    assert!(
        text.stdout.contains("automatic NUMA balancing is on"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(
            "pid 300 (python3) holds a GPU device but has no local rank variable: not judged"
        ),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("25% of 3.8 GiB"), "{}", text.stdout);
    // The maps: ranks 0 and 2 on the first core of each socket's pair.
    assert!(text.stdout.contains("machine "), "{}", text.stdout);
    let json = check(&["--json", "--proc", pd]);
    assert_eq!(json.code(), Some(1));
    assert_eq!(
        query(&json, FINDINGS),
        [
            "remote_memory 100",
            "mempolicy 500",
            "off_gpu 600",
            "bad_environment 700",
            "no_plan 800"
        ]
    );
    let off = message(&text, "rank 1 (pid 600");
    let want = format!(
        "rank 1 (pid 600, python3): not on its GPU's CPUs at all: it runs on CPUs 6-7; GPU 1 ({}) is local to CPUs 0-3,8-11, the plan is ",
        fx.spec.gpus[0].pci_bus_id
    );
    assert!(off.trim().starts_with(&want), "{off}");
    assert!(
        message(&text, "(pid 700").contains("GPU_AFFINITY_MODE"),
        "{}",
        text.stdout
    );
    assert!(
        message(&text, "(pid 800").contains("its plan cannot be made"),
        "{}",
        text.stdout
    );
    assert!(
        message(&text, "rank 1 (pid 500").ends_with(
            "asked for memory policy bind on node 0 (GPU_AFFINITY_MEMBIND) but its mappings show default"
        ),
        "{}",
        text.stdout
    );
    // Another user's rank appears with --all only.
    assert_eq!(
        query(
            &json,
            "print(*sorted((p['pid'], p['found_by']) for p in d['processes']))"
        ),
        ["(100, 'environment') (200, 'environment') (300, 'GPU device') (310, 'GPU device') (500, 'environment') (600, 'environment') (700, 'environment') (800, 'environment')"]
    );
    assert_eq!(
        query(&json, "p=d['processes'][0]; m=p['memory']; print(p['planned'], p['threads_in'], m['local_percent'], m['remote_bytes'], m['anon_bytes_by_node'], m['policy'], d['numa_balancing'])"),
        ["4-5,12-13 2 25.0 3072000000 {'0': 3072000000, '1': 1024000000} default 1"]
    );
    assert_eq!(
        query(
            &json,
            "print(*[t['last_cpu'] for t in d['processes'][0]['threads']])"
        ),
        ["4 12"]
    );
    let all = check(&["--json", "--all", "--proc", pd]);
    let pids = query(&all, "print(*sorted(p['pid'] for p in d['processes']))");
    assert_eq!(pids, ["100 200 300 310 400 500 600 700 800"]);
    // Named: only those, whatever they are; one without a rank says so.
    let named = check(&["--json", "--proc", pd, "200", "300"]);
    assert_eq!(query(&named, FINDINGS), ["no_rank 300"]);
    assert_eq!(named.code(), Some(1));
    let good = check(&["--proc", pd, "200"]);
    assert_eq!(good.code(), Some(0), "{}", good.describe());
}

#[test]
fn gone_and_bad_arguments() {
    let fx = fixture("example1");
    let proc_dir = synthetic_proc(&fx);
    let pd = proc_dir.to_str().unwrap();
    let gone = check(&["--proc", pd, "999"]);
    assert_eq!(gone.code(), Some(1));
    assert!(
        gone.stdout.contains("pid 999: no such process"),
        "{}",
        gone.describe()
    );
    for bad in [
        &["abc"][..],
        &["--bogus"],
        &["--proc"],
        &["--proc", "/nonexistent/proc"],
        &["0"],
    ] {
        let run = check(bad);
        assert_eq!(run.code(), Some(2), "{bad:?}\n{}", run.describe());
        assert!(run.stderr.starts_with("gpuaff: "), "{}", run.describe());
        assert_eq!(run.stdout, "");
    }
}

/// Runs `gpuaff check ARGS` as user nobody, when this test runs as root and setpriv is there.
fn as_nobody(args: &[&str]) -> Option<Run> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root and setpriv to run the check as another user");
        return None;
    }
    // A copy nobody can reach: the build directory may sit under a home only root can enter.
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("gpuaff-check-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("gpuaff");
    if !exe.exists() {
        let tmp = dir.join(format!("gpuaff.{:?}", std::thread::current().id()));
        std::fs::copy(env!("CARGO_BIN_EXE_gpuaff"), &tmp).expect("copy gpuaff");
        let _ = std::fs::rename(&tmp, &exe);
    }
    for p in [&dir, &exe] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let run = Proc::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .arg("check")
        .args(args)
        .run();
    Some(run)
}

#[test]
fn another_users_process_is_one_line_not_a_crash() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r = hold(&fx, "0", true, &["1"]);
    let p = r.pid_s();
    let Some(run) = as_nobody(&[&p]) else {
        return;
    };
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    let want = format!(
        "  pid {p} ({HOLD}, uid 0): not checked: cannot read /proc/{p}/environ: permission denied: another user's process; run as that user or as root"
    );
    assert!(run.stdout.lines().any(|l| l == want), "{}", run.describe());
    assert!(!run.stderr.contains("panick"), "{}", run.describe());
    let json = as_nobody(&["--json", &p]).expect("ran once");
    assert_eq!(query(&json, FINDINGS), [format!("unreadable {p}")]);
    assert_eq!(
        query(&json, "print(d['processes'][0]['checked'])"),
        ["False"]
    );
    // Discovery over every user skips what it cannot read, and counts it.
    let all = as_nobody(&["--json", "--all"]).expect("ran once");
    let n = query(&all, "print(d['skipped_unreadable'] > 0)");
    assert_eq!(n, ["True"], "{}", all.describe());
    let dir = std::env::temp_dir().join(format!("gpuaff-check-nobody-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn discovery_finds_the_job_among_everything_running() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    let r0 = hold(&fx, "0", true, &["2"]);
    let r1 = hold(&fx, "1", true, &["2"]);
    // Other tests' processes may be running too: only ours are asserted on.
    let run = check(&["--json"]);
    let found = query(
        &run,
        &format!(
            "print(*sorted((p['pid'], p['found_by'], p['ok']) for p in d['processes'] if p['pid'] in ({}, {})))",
            r0.pid, r1.pid
        ),
    );
    assert_eq!(
        found,
        [format!(
            "({}, 'environment', True) ({}, 'environment', True)",
            r0.pid, r1.pid
        )],
        "{}",
        run.describe()
    );
}
