//! A corrupted-sysfs matrix: a good fixture tree ("example1", "dgx-a100") with one thing broken per
//! case: a file truncated, emptied, replaced by garbage, binary junk, huge or negative numbers, NULs,
//! a megabyte of text, a directory, a FIFO, a symlink to `.`, or missing; directories missing
//! (cpu/, node/, a topology/, PCI devices); huge CPU and node ids; symlink cycles; local CPUs that do
//! not exist; numa_node "abc".
//!
//! Each case runs, in a thread with a timeout, the shim's `session::plan_for_process` (partial
//! load) for ranks 0 and 3 in four modes, then `Machine::load` (sysfs source, snapshot allowed set)
//! and plans every mode on what it loaded. It must return Ok, or Err with a one-line message that
//! names a file of the tree: never a panic, never a hang.

use gpuaff_core::plan::plan_all;
use gpuaff_core::{AllowedFrom, Machine, Mode, PlanOptions, Request, Source, Visible};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
enum Broken {
    Missing,
    Text(Vec<u8>),
    /// The first half of the file.
    Truncated,
    /// A directory where a file is expected (reads fail with EISDIR, even for root).
    Dir,
    /// A named pipe: opening it for reading blocks until a writer comes.
    Fifo,
    /// A symlink to this target (relative to the link's directory).
    Link(&'static str),
}

struct Case {
    tree: &'static str,
    rel: String,
    broken: Broken,
}

fn label(b: &Broken) -> String {
    match b {
        Broken::Text(t) if t.len() > 40 => format!(
            "{} bytes of {:?}…",
            t.len(),
            String::from_utf8_lossy(&t[..12])
        ),
        Broken::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        other => format!("{other:?}"),
    }
}

/// Contents that break parsers: empty, garbage, binary, huge, negative, NULs, long.
fn texts() -> Vec<Vec<u8>> {
    let mut junk: Vec<u8> = (0u8..=255).rev().step_by(3).collect();
    junk.extend_from_slice(b"\0\xff\xfe\xc3\x28\n");
    vec![
        b"".to_vec(),
        b"banana\n".to_vec(),
        junk,
        b"0-99999999\n".to_vec(),
        b"99999999999999999999999\n".to_vec(),
        b"-1\n".to_vec(),
        b"abc\n".to_vec(),
        b"\0\0\0\0".to_vec(),
        b"ffffffff,ffffffff,ffffffff\n".to_vec(),
        b"3-1,,\n".to_vec(),
        b"0-1,".repeat(256 * 1024),
    ]
}

/// Files every load reads (or may read), relative to the fsroot.
fn files(tree: &str) -> Vec<String> {
    let gpu = match tree {
        "dgx-a100" => "0000:07:00.0",
        _ => "0000:07:00.0",
    };
    let c = "sys/devices/system/cpu";
    let n = "sys/devices/system/node";
    let p = format!("sys/bus/pci/devices/{gpu}");
    vec![
        format!("{c}/online"),
        format!("{c}/possible"),
        format!("{c}/present"),
        format!("{c}/smt/active"),
        format!("{c}/smt/control"),
        format!("{c}/cpu1/online"),
        format!("{c}/cpu0/topology/thread_siblings_list"),
        format!("{c}/cpu0/topology/thread_siblings"),
        format!("{c}/cpu0/topology/core_siblings_list"),
        format!("{c}/cpu0/topology/physical_package_id"),
        format!("{c}/cpu0/topology/core_id"),
        format!("{c}/cpu3/topology/core_cpus_list"),
        format!("{c}/cpu3/topology/package_cpus_list"),
        format!("{c}/cpu0/cache/index3/shared_cpu_list"),
        format!("{c}/cpu0/cache/index3/shared_cpu_map"),
        format!("{c}/cpu0/cache/index3/level"),
        format!("{c}/cpu0/cache/index3/type"),
        format!("{n}/online"),
        format!("{n}/possible"),
        format!("{n}/has_cpu"),
        format!("{n}/node0/cpulist"),
        format!("{n}/node0/cpumap"),
        format!("{n}/node1/distance"),
        format!("{p}/vendor"),
        format!("{p}/class"),
        format!("{p}/device"),
        format!("{p}/numa_node"),
        format!("{p}/local_cpulist"),
        format!("{p}/local_cpus"),
        format!("proc/driver/nvidia/gpus/{gpu}/information"),
        // Absent in the fixtures: created broken.
        "proc/self/cgroup".into(),
        "proc/self/cpuset".into(),
        "proc/self/mounts".into(),
        "proc/self/status".into(),
        "sys/fs/cgroup/cpuset.cpus.effective".into(),
    ]
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut add = |tree: &'static str, rel: &str, broken: Broken| {
        v.push(Case {
            tree,
            rel: rel.to_string(),
            broken,
        })
    };
    for tree in ["example1", "dgx-a100"] {
        for f in files(tree) {
            for t in texts() {
                add(tree, &f, Broken::Text(t));
            }
            for b in [
                Broken::Truncated,
                Broken::Missing,
                Broken::Dir,
                Broken::Fifo,
                Broken::Link("."),
            ] {
                add(tree, &f, b);
            }
        }
        let c = "sys/devices/system/cpu";
        let n = "sys/devices/system/node";
        let pci = "sys/bus/pci/devices";
        let gpu = "sys/bus/pci/devices/0000:07:00.0";
        // Whole directories missing.
        for d in [
            c.to_string(),
            n.to_string(),
            format!("{c}/cpu3/topology"),
            format!("{c}/cpu3"),
            format!("{c}/cpu0/cache"),
            format!("{n}/node1"),
            pci.to_string(),
            gpu.to_string(),
            "proc/driver/nvidia".to_string(),
            "sys".to_string(),
        ] {
            add(tree, &d, Broken::Missing);
        }
        // Huge ids.
        add(
            tree,
            &format!("{n}/node99999999/cpulist"),
            Broken::Text(b"0-3\n".to_vec()),
        );
        add(
            tree,
            &format!("{n}/node4294967296/cpulist"),
            Broken::Text(b"0\n".to_vec()),
        );
        add(
            tree,
            &format!("{c}/cpu99999999/topology/thread_siblings_list"),
            Broken::Text(b"99999999\n".to_vec()),
        );
        add(
            tree,
            &format!("{c}/cpu99999999/online"),
            Broken::Text(b"1\n".to_vec()),
        );
        // A GPU whose local CPUs do not exist, and odd numa_node values.
        add(
            tree,
            &format!("{gpu}/local_cpulist"),
            Broken::Text(b"200-300\n".to_vec()),
        );
        add(
            tree,
            &format!("{gpu}/local_cpulist"),
            Broken::Text(b"131072\n".to_vec()),
        );
        for v in ["abc\n", "99\n", "-5\n", "4294967296\n", "1 2\n"] {
            add(
                tree,
                &format!("{gpu}/numa_node"),
                Broken::Text(v.as_bytes().to_vec()),
            );
        }
        // Symlink cycles and loops.
        add(tree, gpu, Broken::Link("0000:07:00.0"));
        add(tree, gpu, Broken::Link(".."));
        add(tree, gpu, Broken::Link("."));
        add(tree, pci, Broken::Link("devices"));
        add(tree, &format!("{n}/node1"), Broken::Link("node1"));
        add(tree, &format!("{n}/node1"), Broken::Link("."));
        add(tree, &format!("{c}/cpu0/topology"), Broken::Link(".."));
        add(
            tree,
            &format!("{c}/cpu0/cache/index3"),
            Broken::Link("index3"),
        );
        add(tree, &format!("{gpu}/subdir-loop"), Broken::Link(".."));
        // A device directory that is a file, a FIFO among the devices.
        add(tree, gpu, Broken::Text(b"not a directory\n".to_vec()));
        add(tree, &format!("{pci}/0000:ff:00.0"), Broken::Fifo);
    }
    v
}

/// Breaks `rel` under `root`, keeping what was there in `backup` (same filesystem, outside the tree).
fn apply(root: &Path, backup: &Path, rel: &str, broken: &Broken) -> std::io::Result<()> {
    let path = root.join(rel);
    let had = fs::symlink_metadata(&path).is_ok();
    let original = if had && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        fs::read(&path).ok()
    } else {
        None
    };
    if had {
        fs::rename(&path, backup)?;
    }
    if let Some(parent) = path.parent() {
        // Removing a directory's child above may leave the parent missing only when rel is deep
        // under a missing dir; create what the case names.
        fs::create_dir_all(parent)?;
    }
    match broken {
        Broken::Missing => {}
        Broken::Text(t) => fs::write(&path, t)?,
        Broken::Truncated => {
            let o = original.unwrap_or_default();
            fs::write(&path, &o[..o.len() / 2])?;
        }
        Broken::Dir => fs::create_dir(&path)?,
        Broken::Fifo => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Broken::Link(target) => symlink(target, &path)?,
    }
    Ok(())
}

fn undo(root: &Path, backup: &Path, rel: &str) {
    let path = root.join(rel);
    if let Ok(m) = fs::symlink_metadata(&path) {
        if m.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    if fs::symlink_metadata(backup).is_ok() {
        fs::rename(backup, &path).unwrap();
    }
}

/// Unblocks a reader stuck opening a FIFO: a writer that opens and closes at once gives it EOF.
fn release_fifos(root: &Path, rel: &str) {
    let path = root.join(rel);
    if fs::symlink_metadata(&path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    }) {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
    }
}

enum Outcome {
    Ok(usize),
    Err(String),
    Panic(String),
    Hang,
}

fn load_and_plan(root: PathBuf) -> Result<usize, String> {
    let req = Request {
        fsroot: root,
        source: Source::Sysfs,
        ..Request::default()
    };
    // The shim's path: a partial load for the plan, a full one when it cannot vouch for it.
    for mode in [
        Mode::SocketUniqueContiguous,
        Mode::Exclusive,
        Mode::CoreComplex,
        Mode::Node,
    ] {
        for rank in [0, 3] {
            let mut r = req.clone();
            r.rank = Some(rank);
            r.plan.mode = mode;
            if let Err(e) = gpuaff_core::session::plan_for_process(&r, AllowedFrom::Snapshot) {
                if e.message().contains('\n') {
                    return Err(format!(
                        "plan_for_process ({}, rank {rank}):\n{}",
                        mode.name(),
                        e.message()
                    ));
                }
            }
        }
    }
    let m = Machine::load(&req, AllowedFrom::Snapshot).map_err(|e| e.message().to_string())?;
    // What was loaded must plan without panicking, in every mode.
    let visible = Visible {
        gpus: (0..m.gpus.len()).collect(),
        warnings: vec![],
        none_by: None,
    };
    for mode in Mode::ALL {
        if mode == Mode::Map {
            continue;
        }
        let o = PlanOptions {
            mode,
            ..PlanOptions::default()
        };
        let _ = plan_all(&m.topology, &m.gpus, &visible, &o);
    }
    Ok(m.gpus.len())
}

fn run_case(root: &Path, rel: &str) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let r = root.to_path_buf();
    let h = std::thread::spawn(move || {
        let out = std::panic::catch_unwind(|| load_and_plan(r));
        let _ = tx.send(out);
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(Ok(n))) => Outcome::Ok(n),
        Ok(Ok(Err(m))) => Outcome::Err(m),
        Ok(Err(p)) => Outcome::Panic(
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        ),
        Err(_) => {
            // Free the reader (so the tree can be restored) and report the hang.
            for _ in 0..50 {
                release_fifos(root, rel);
                if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                    break;
                }
            }
            let _ = h;
            Outcome::Hang
        }
    }
}

fn spec(name: &str) -> gpuaff_fixtures::Spec {
    gpuaff_fixtures::by_name(name).unwrap_or_else(|| panic!("no fixture {name}"))
}

fn matrix(tree: &'static str) {
    let t = gpuaff_fixtures::write_temp(&spec(tree)).unwrap();
    let root = t.path().to_path_buf();
    let backup = root.with_extension("bak");
    let _ = fs::remove_dir_all(&backup);
    // Sanity: the good tree loads, with its GPUs.
    match run_case(&root, "") {
        Outcome::Ok(n) => assert!(n > 0, "{tree}: the good tree has no GPU"),
        _ => panic!("{tree}: the good tree does not load"),
    }
    let t0 = Instant::now();
    let (mut n, mut oks, mut errs, mut longest) = (0, 0, 0, 0usize);
    let mut failures = Vec::new();
    for case in cases().into_iter().filter(|c| c.tree == tree) {
        n += 1;
        let what = format!("{tree}: {} <- {}", case.rel, label(&case.broken));
        if let Err(e) = apply(&root, &backup, &case.rel, &case.broken) {
            panic!("{what}: cannot set up: {e}");
        }
        let started = Instant::now();
        let out = run_case(&root, &case.rel);
        let took = started.elapsed();
        undo(&root, &backup, &case.rel);
        match out {
            Outcome::Ok(_) => {
                oks += 1;
                if std::env::var_os("GPUAFF_CORRUPT_VERBOSE").is_some() {
                    println!("  {what}: loaded");
                }
            }
            Outcome::Err(m) => {
                errs += 1;
                longest = longest.max(m.len());
                if m.contains('\n') {
                    failures.push(format!("{what}: error spans lines: {m:?}"));
                } else if !m.contains(root.to_str().unwrap()) {
                    failures.push(format!("{what}: error names no file of the tree: {m}"));
                } else if std::env::var_os("GPUAFF_CORRUPT_VERBOSE").is_some() {
                    println!("  {what}: {}", m.chars().take(200).collect::<String>());
                }
            }
            Outcome::Panic(p) => failures.push(format!("{what}: PANIC: {p}")),
            Outcome::Hang => failures.push(format!(
                "{what}: HANG: Machine::load did not return within {TIMEOUT:?}"
            )),
        }
        if took > Duration::from_secs(3) {
            println!("  slow: {what}: {took:.1?}");
        }
    }
    // And the tree is whole again.
    assert!(
        matches!(run_case(&root, ""), Outcome::Ok(_)),
        "{tree}: restore failed"
    );
    // Messages quote a bounded part of a bad file, whatever its size.
    if longest > 4096 {
        failures.push(format!("an error message of {longest} bytes"));
    }
    println!(
        "corrupt_sysfs {tree}: {n} cases in {:.1?}: {oks} loaded, {errs} refused (longest message {longest} bytes), {} failure(s)",
        t0.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example1_survives_every_corruption() {
    matrix("example1");
}

#[test]
fn dgx_a100_survives_every_corruption() {
    matrix("dgx-a100");
}

/// Found here, fixed in sysfs.rs: `Fs::read_opt` opened files with a blocking `std::fs::read`, so a
/// FIFO anywhere the loader reads blocked `Machine::load` (and the preloaded program) forever.
#[test]
fn fifo_does_not_hang_the_loader() {
    let t = gpuaff_fixtures::write_temp(&spec("example1")).unwrap();
    let root = t.path().to_path_buf();
    let backup = root.with_extension("bak");
    let rel = "sys/devices/system/cpu/online";
    apply(&root, &backup, rel, &Broken::Fifo).unwrap();
    let out = run_case(&root, rel);
    undo(&root, &backup, rel);
    assert!(
        !matches!(out, Outcome::Hang),
        "Machine::load hung on a FIFO at {rel}"
    );
}

/// Found here, fixed in sysfs.rs: a malformed file's error quoted its whole text, so a 1 MiB garbage
/// `cpu/online` gave a 1 MiB `gpuaff:` line.
#[test]
fn error_messages_stay_short() {
    let t = gpuaff_fixtures::write_temp(&spec("example1")).unwrap();
    let root = t.path().to_path_buf();
    let backup = root.with_extension("bak");
    let rel = "sys/devices/system/cpu/online";
    apply(
        &root,
        &backup,
        rel,
        &Broken::Text(b"0-1,".repeat(256 * 1024)),
    )
    .unwrap();
    let out = run_case(&root, rel);
    undo(&root, &backup, rel);
    match out {
        Outcome::Err(m) => assert!(m.len() <= 4096, "a {} byte error message", m.len()),
        Outcome::Ok(_) => {}
        _ => panic!("panic or hang"),
    }
}

/// FINDING (fuzz, sysfs target): a `cpu/online` claiming ids up to MAX_ID (`0-131071`) on a
/// 16-CPU tree is accepted, and the loader then looks for every claimed CPU's files: 11.6 s in a
/// release build for `0-111115`. Not a hang, but a corrupt snapshot stalls the preloaded program.
/// Bounding the online set by the `cpuN` directories present would fix it.
#[test]
fn a_huge_online_claim_loads_quickly() {
    let t = gpuaff_fixtures::write_temp(&spec("example1")).unwrap();
    let root = t.path().to_path_buf();
    let backup = root.with_extension("bak");
    let rel = "sys/devices/system/cpu/online";
    apply(&root, &backup, rel, &Broken::Text(b"0-131071\n".to_vec())).unwrap();
    let t0 = Instant::now();
    let out = run_case(&root, rel);
    let took = t0.elapsed();
    undo(&root, &backup, rel);
    assert!(!matches!(out, Outcome::Panic(_)));
    assert!(took < Duration::from_secs(2), "loading took {took:.1?}");
}
