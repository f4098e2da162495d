//! `gpuaff check [PID...] [--all] [--json] [--proc DIR]`: judges live processes against the plan each
//! computes from its own environment (the reading and judging are `gpuaff_core::check`).

use super::Fail;
use gpuaff_core::check::{self, Selection};
use gpuaff_core::procfs::ProcFs;
use gpuaff_core::render_check;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn cmd_check(args: &[String]) -> Result<ExitCode, Fail> {
    let mut sel = Selection::default();
    let mut all = false;
    let mut json = false;
    let mut root = PathBuf::from("/proc");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => {
                println!("{}", super::USAGE);
                return Ok(ExitCode::SUCCESS);
            }
            "--all" => all = true,
            "--json" => json = true,
            "--proc" => {
                let v = it
                    .next()
                    .ok_or_else(|| Fail::Usage("--proc needs a value".into()))?;
                root = PathBuf::from(v);
            }
            s if s.starts_with("--proc=") => root = PathBuf::from(&s["--proc=".len()..]),
            s if s.starts_with('-') => return Err(Fail::Usage(format!("unknown option {s:?}"))),
            s => {
                let pid = s
                    .parse::<u32>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| Fail::Usage(format!("{s:?} is not a process id")))?;
                if !sel.pids.contains(&pid) {
                    sel.pids.push(pid);
                }
            }
        }
    }
    if !root.is_dir() {
        return Err(Fail::Usage(format!(
            "--proc {}: not a directory",
            root.display()
        )));
    }
    sel.discover = all || sel.pids.is_empty();
    sel.everyone = all;
    // SAFETY: getuid cannot fail and has no preconditions.
    sel.uid = unsafe { libc::getuid() };
    sel.machines = !json;
    let pfs = ProcFs::new(root);
    sel.exclude = vec![std::process::id()];
    if pfs.is_live() {
        // The shell or launcher running the check is not what is being checked.
        let mut pid = std::process::id();
        while let Some(ppid) = pfs
            .status(&pid.to_string())
            .ok()
            .flatten()
            .and_then(|s| s.ppid)
            .filter(|&p| p > 1 && !sel.exclude.contains(&p))
        {
            sel.exclude.push(ppid);
            pid = ppid;
        }
        sel.nvml = Some(std::env::var_os("GPU_AFFINITY_NVML_LIB").map(PathBuf::from));
    }
    let report = check::check(&pfs, &sel);
    if json {
        print!("{}", render_check::check_json(&report));
    } else {
        print!("{}", render_check::check_text(&report));
    }
    if report.processes.is_empty() {
        eprintln!(
            "gpuaff: no GPU job process found under {} (none carries a local rank variable or holds /dev/nvidia* or /dev/kfd{})",
            pfs.root().display(),
            if all { "" } else { "; --all looks at every user's" }
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
