//! `gpuaff`: shows the machine and the binding plan for every local rank, without binding anything,
//! and runs commands with libgpuaff.so preloaded. Flags override the environment (see the README).

use gpuaff_core::config::{self, Request};
use gpuaff_core::plan::{Cores, Mode};
use gpuaff_core::{render, session, sysfs, AllowedFrom, CpuSet, Error, Machine};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Not src/bin/check.rs: cargo would take that for a second program.
#[path = "gpuaff/check.rs"]
mod check;

const USAGE: &str = "\
usage:
  gpuaff plan [--fsroot DIR] [--nproc N] [--mode M] [--cores all_logical|single_logical]
              [--balanced|--no-balanced] [--allowed CPULIST] [--source auto|sysfs|nvml] [--json]
  gpuaff topo [--fsroot DIR] [--source auto|sysfs|nvml] [--json]
  gpuaff run [--mode M] [--cores C] [--balanced|--no-balanced] [--nproc N] [--membind B]
             [--fsroot DIR] [--verbose] [--dry-run] [--strict] [--keep-launcher-binding]
             [--lib PATH] -- COMMAND [ARGS...]
  gpuaff lib              (prints the path of the library that gpuaff run preloads)
  gpuaff check [PID...] [--all] [--json] [--proc DIR]
  gpuaff --version

modes: none, socket, socket_single, socket_single_unique, socket_unique_interleaved,
       socket_unique_contiguous (default), node, package, exclusive, core-complex, map
The environment (GPU_AFFINITY_*, CUDA_VISIBLE_DEVICES) applies as for the preloaded library.";

/// Exit statuses: 0 every rank planned, 1 some rank could not be, 2 bad arguments (see the README).
enum Fail {
    Usage(String),
    Run(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Run(e)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plan") => cmd_plan(&args[1..]),
        Some("topo") => cmd_topo(&args[1..]),
        Some("run") => cmd_run(&args[1..]),
        Some("lib") => cmd_lib(&args[1..]),
        Some("check") => check::cmd_check(&args[1..]),
        Some("--version" | "-V" | "version") => {
            println!("gpuaff {}", gpuaff_core::VERSION);
            Ok(ExitCode::SUCCESS)
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(Fail::Usage(format!("unknown command {other:?}"))),
        None => Err(Fail::Usage("a command is needed".into())),
    };
    match result {
        Ok(code) => code,
        Err(Fail::Usage(msg)) => {
            eprintln!("gpuaff: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Fail::Run(e)) => {
            eprintln!("gpuaff: {e}");
            ExitCode::from(if e.kind() == gpuaff_core::ErrorKind::InvalidInput {
                2
            } else {
                1
            })
        }
    }
}

/// Flags shared by the subcommands, applied over the environment's `Request`.
struct Opts {
    req: Request,
    allowed: Option<CpuSet>,
    json: bool,
    lib: Option<PathBuf>,
    command: Vec<String>,
    /// Flags given on the command line, to pass to the child of `gpuaff run` as variables.
    env_out: Vec<(&'static str, String)>,
}

fn parse_opts(args: &[String], allow: &[&str]) -> Result<Opts, Fail> {
    let env = |k: &str| std::env::var(k).ok();
    let mut req = Request::from_env(&env).map_err(|e| Fail::Usage(e.to_string()))?;
    let mut o = Opts {
        req: Request::default(),
        allowed: None,
        json: false,
        lib: None,
        command: vec![],
        env_out: vec![],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if flag == "--" {
            if !allow.contains(&"--") {
                return Err(Fail::Usage("unexpected \"--\"".into()));
            }
            o.command = it.by_ref().cloned().collect();
            break;
        }
        if !allow.contains(&flag) {
            return Err(Fail::Usage(format!("unknown option {a:?}")));
        }
        let mut value = |name: &str| -> Result<String, Fail> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Fail::Usage(format!("{name} needs a value")))
        };
        // The parsers name the environment variable; on the command line the flag is what was typed.
        let bad = |e: Error| Fail::Usage(e.for_option(flag).to_string());
        match flag {
            "--fsroot" => {
                let v = value(flag)?;
                o.env_out.push(("GPU_AFFINITY_FSROOT", v.clone()));
                req.fsroot = PathBuf::from(v);
            }
            "--nproc" => {
                let v = value(flag)?;
                let n: usize = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Fail::Usage(format!(
                        "--nproc {v:?} is not valid (accepted: a positive integer)"
                    ))
                })?;
                o.env_out.push(("GPU_AFFINITY_NPROC", v));
                req.plan.nproc = Some(n);
            }
            "--mode" => {
                let v = value(flag)?;
                req.plan.mode = Mode::parse(&v).map_err(bad)?;
                o.env_out.push(("GPU_AFFINITY_MODE", v));
            }
            "--cores" => {
                let v = value(flag)?;
                req.plan.cores = Cores::parse(&v).map_err(bad)?;
                o.env_out.push(("GPU_AFFINITY_CORES", v));
            }
            "--balanced" | "--no-balanced" => {
                req.plan.balanced = flag == "--balanced";
                o.env_out.push((
                    "GPU_AFFINITY_BALANCED",
                    if req.plan.balanced { "1" } else { "0" }.into(),
                ));
            }
            "--allowed" => {
                let v = value(flag)?;
                let set =
                    CpuSet::parse_list(&v).map_err(|e| Fail::Usage(format!("--allowed: {e}")))?;
                if set.is_empty() {
                    return Err(Fail::Usage("--allowed needs at least one CPU".into()));
                }
                o.allowed = Some(set);
            }
            "--source" => {
                let v = value(flag)?;
                req.source = config::Source::parse(&v).map_err(bad)?;
                o.env_out.push(("GPU_AFFINITY_SOURCE", v));
            }
            "--membind" => {
                let v = value(flag)?;
                req.membind = config::MemBind::parse(&v).map_err(bad)?;
                o.env_out.push(("GPU_AFFINITY_MEMBIND", v));
            }
            "--json" => o.json = true,
            "--verbose" => o.env_out.push(("GPU_AFFINITY_VERBOSE", "1".into())),
            "--dry-run" => o.env_out.push(("GPU_AFFINITY_DRY_RUN", "1".into())),
            "--strict" => o.env_out.push(("GPU_AFFINITY_STRICT", "1".into())),
            "--keep-launcher-binding" => o
                .env_out
                .push(("GPU_AFFINITY_LAUNCHER_BINDING", "keep".into())),
            "--lib" => o.lib = Some(PathBuf::from(value(flag)?)),
            _ => return Err(Fail::Usage(format!("unknown option {a:?}"))),
        }
    }
    o.req = req;
    Ok(o)
}

/// Where the allowed set starts: `--allowed`, else this process's mask on this machine, else the
/// snapshot's online CPUs.
fn allowed(o: &Opts) -> Result<AllowedFrom, Fail> {
    if !o.req.fsroot.is_dir() {
        return Err(Fail::Run(Error::invalid(format!(
            "fsroot {} is not a directory",
            o.req.fsroot.display()
        ))));
    }
    Ok(match &o.allowed {
        Some(set) => AllowedFrom::Explicit(set.clone()),
        None if o.req.fsroot == Path::new("/") => AllowedFrom::Process(sysfs::process_mask()?),
        None => AllowedFrom::Snapshot,
    })
}

fn cmd_plan(args: &[String]) -> Result<ExitCode, Fail> {
    let o = parse_opts(
        args,
        &[
            "--fsroot",
            "--nproc",
            "--mode",
            "--cores",
            "--balanced",
            "--no-balanced",
            "--allowed",
            "--source",
            "--json",
        ],
    )?;
    let node = session::plan_node(&o.req, allowed(&o)?)?;
    let (m, p) = (&node.machine, &node.plan);
    if o.json {
        print!("{}", render::plan_json(m, p));
    } else {
        print!("{}", render::plan_text(m, p));
    }
    let ok = !p.ranks.is_empty() && p.ranks.iter().all(|r| r.is_ok());
    if p.ranks.is_empty() {
        eprintln!("gpuaff: no rank to plan (no GPU visible)");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn cmd_topo(args: &[String]) -> Result<ExitCode, Fail> {
    let o = parse_opts(args, &["--fsroot", "--source", "--json", "--allowed"])?;
    let m = Machine::load(&o.req, allowed(&o)?)?;
    if o.json {
        print!("{}", render::topo_json(&m));
    } else {
        print!("{}", render::topo_text(&m));
        for w in &m.warnings {
            eprintln!("gpuaff: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The library to preload: `--lib`, else next to this executable (cargo's target dir), else in a
/// `lib*` directory beside the executable's (`bin/../lib`, `../lib64`, `../lib/x86_64-linux-gnu`: an
/// installed prefix), else one level up.
fn find_lib(explicit: Option<PathBuf>) -> Result<PathBuf, Fail> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Fail::Usage(format!("--lib {}: no such file", p.display())))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Fail::Run(Error::invalid(format!("cannot find myself: {e}"))))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.to_path_buf()];
    let mut libdirs: Vec<PathBuf> = std::fs::read_dir(dir.join(".."))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("lib"))
        .map(|e| e.path())
        .collect();
    libdirs.sort();
    for d in libdirs {
        candidates.push(d.clone());
        let mut sub: Vec<PathBuf> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
            .map(|e| e.path())
            .collect();
        sub.sort();
        candidates.extend(sub);
    }
    candidates.push(dir.join(".."));
    candidates
        .iter()
        .flat_map(|d| [d.join("libgpuaff.so"), d.join("libgpuaff.so.0")])
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
        .ok_or_else(|| {
            Fail::Run(Error::invalid(format!(
                "libgpuaff.so not found next to {} (looked in {} and ../lib*); build it (cargo build) or pass --lib",
                exe.display(),
                dir.display()
            )))
        })
}

/// `gpuaff lib`: the path of the library `gpuaff run` preloads (for `LD_PRELOAD=$(gpuaff lib)`).
fn cmd_lib(args: &[String]) -> Result<ExitCode, Fail> {
    if let Some(a) = args.first() {
        return Err(Fail::Usage(format!("lib takes no arguments (got {a:?})")));
    }
    println!("{}", find_lib(None)?.display());
    Ok(ExitCode::SUCCESS)
}

/// Every rank's plan for the processes `gpuaff run` starts, so that they need not read the topology
/// (see `gpuaff_core::handoff`). The allowed set starts as a worker's does: from this mask on this
/// machine or on a tree whose online CPUs are all online here, else from the tree's online CPUs. A
/// worker whose key differs plans for itself, so any failure here just hands nothing down.
fn handoff(o: &Opts) -> Option<String> {
    let online = |root: &Path| sysfs::Fs::new(root).read_list("sys/devices/system/cpu/online");
    let here = o.req.fsroot == Path::new("/")
        || match (online(&o.req.fsroot), online(Path::new("/"))) {
            (Ok(Some(tree)), Ok(Some(live))) => !tree.is_empty() && tree.is_subset(&live),
            _ => false,
        };
    let from = if here {
        AllowedFrom::Process(sysfs::process_mask().ok()?)
    } else {
        AllowedFrom::Snapshot
    };
    let node = session::plan_node(&o.req, from).ok()?;
    gpuaff_core::handoff::encode_node(&o.req, &node, &sysfs::Fs::new(&o.req.fsroot))
}

fn cmd_run(args: &[String]) -> Result<ExitCode, Fail> {
    use std::os::unix::process::CommandExt;
    let o = parse_opts(
        args,
        &[
            "--mode",
            "--cores",
            "--balanced",
            "--no-balanced",
            "--nproc",
            "--membind",
            "--fsroot",
            "--verbose",
            "--dry-run",
            "--strict",
            "--keep-launcher-binding",
            "--source",
            "--lib",
            "--",
        ],
    )?;
    let Some((prog, rest)) = o.command.split_first() else {
        return Err(Fail::Usage("run needs a command after --".into()));
    };
    let lib = find_lib(o.lib.clone())?;
    // Prepend, keeping whatever the user already preloads.
    let mut preload = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(" ");
        preload.push(old);
    }
    let mut cmd = std::process::Command::new(prog);
    cmd.args(rest).env("LD_PRELOAD", preload);
    for (k, v) in &o.env_out {
        cmd.env(k, v);
    }
    match handoff(&o) {
        Some(v) => cmd.env(gpuaff_core::handoff::VAR, v),
        None => cmd.env_remove(gpuaff_core::handoff::VAR),
    };
    let err = cmd.exec();
    Err(Fail::Run(Error::invalid(format!(
        "cannot run {prog:?}: {err}"
    ))))
}
