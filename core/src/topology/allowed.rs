//! The allowed set: where it starts from (`AllowedFrom`), narrowed by the cgroup cpuset found under
//! the fsroot (cgroup v1 and v2, as hwloc looks for it).

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
use crate::sysfs::Fs;

/// Where the allowed CPU set starts from; the cgroup cpuset under the fsroot narrows it in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedFrom {
    /// The process's own mask (`sched_getaffinity`), as the shim and `gpuaff plan` on `/` use.
    Process(CpuSet),
    /// The snapshot's online CPUs (a foreign fsroot).
    Snapshot,
    /// Exactly this set (`gpuaff plan --allowed`); not narrowed further.
    Explicit(CpuSet),
}

/// The allowed set per `AllowedFrom`, narrowed by the cgroup cpuset where that applies.
pub fn allowed_set(
    online: &CpuSet,
    from: &AllowedFrom,
    cgroup: Option<&CpuSet>,
    warnings: &mut Vec<String>,
) -> Result<CpuSet> {
    let (base, what) = match from {
        AllowedFrom::Explicit(set) => {
            if !set.intersects(online) {
                return Err(Error::invalid(format!(
                    "allowed CPUs {set} hold no online CPU (online: {online})"
                )));
            }
            return Ok(set.clone());
        }
        AllowedFrom::Process(mask) => (mask.intersection(online), format!("process mask {mask}")),
        AllowedFrom::Snapshot => (online.clone(), format!("online CPUs {online}")),
    };
    if base.is_empty() {
        return Err(Error::machine(format!(
            "{what} holds no online CPU (online: {online})"
        )));
    }
    match cgroup {
        None => Ok(base),
        Some(cg) => {
            let narrowed = base.intersection(cg);
            if narrowed.is_empty() {
                warnings.push(format!(
                    "cgroup cpuset {cg} shares no CPU with the {what}; ignoring the cgroup"
                ));
                Ok(base)
            } else {
                Ok(narrowed)
            }
        }
    }
}

/// One `proc/self/cgroup` line: `hierarchy-id:controllers:path`.
fn cgroup_paths(fs: &Fs) -> Result<(Option<String>, Option<String>)> {
    let mut v1 = None;
    let mut v2 = None;
    if let Some(text) = fs.read_opt("proc/self/cgroup")? {
        for line in text.lines() {
            let mut parts = line.trim_end_matches('\0').splitn(3, ':');
            let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && ctrl.is_empty() {
                v2 = Some(path.to_string());
            } else if ctrl.split(',').any(|c| c == "cpuset") {
                v1 = Some(path.to_string());
            }
        }
    }
    Ok((v1, v2))
}

/// Mount points (relative to the fsroot) of cpuset hierarchies: (v1 ones, v2 ones), from
/// `proc/self/mounts` or `proc/mounts`.
fn cgroup_mounts(fs: &Fs) -> Result<(Vec<String>, Vec<String>)> {
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    let text = match fs.read_opt("proc/self/mounts")? {
        Some(t) => Some(t),
        None => fs.read_opt("proc/mounts")?,
    };
    for line in text.unwrap_or_default().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dir), Some(kind)) = (f.get(1), f.get(2)) else {
            continue;
        };
        let opts = f.get(3).copied().unwrap_or("");
        let dir = dir.trim_start_matches('/').to_string();
        match *kind {
            "cgroup2" => v2.push(dir),
            "cpuset" => v1.push(dir),
            "cgroup" if opts.split(',').any(|o| o == "cpuset") => v1.push(dir),
            _ => {}
        }
    }
    Ok((v1, v2))
}

/// The CPUs of this process's cgroup cpuset under the fsroot, when one can be found.
/// cgroup v1 (a `cpuset` controller line) is tried first, then v2 (`0::/path`); the old
/// `proc/self/cpuset` gives the path when `proc/self/cgroup` does not. v2 walks up the hierarchy
/// while a level has no (or an empty) cpuset file. An `effective` file naming offline CPUs was not
/// written by the kernel in its present state (a stale or edited snapshot): the configured
/// `cpus` file is used instead.
pub fn cgroup_cpus(fs: &Fs, online: &CpuSet) -> Result<Option<CpuSet>> {
    let (p1, p2) = cgroup_paths(fs)?;
    // The old `proc/self/cpuset` is only asked when `proc/self/cgroup` names no path.
    let legacy = if p1.is_none() && p2.is_none() {
        fs.read_str("proc/self/cpuset")?
            .filter(|s| s.starts_with('/'))
    } else {
        None
    };
    if p1.is_none() && p2.is_none() && legacy.is_none() {
        return Ok(None);
    }
    let (mut m1, mut m2) = cgroup_mounts(fs)?;
    for d in ["sys/fs/cgroup/cpuset", "dev/cpuset"] {
        if !m1.iter().any(|m| m == d) {
            m1.push(d.to_string());
        }
    }
    if !m2.iter().any(|m| m == "sys/fs/cgroup") {
        m2.push("sys/fs/cgroup".to_string());
    }
    if let Some(path) = p1
        .clone()
        .or_else(|| if p2.is_none() { legacy.clone() } else { None })
    {
        for m in &m1 {
            let dir = join(m, &path);
            for file in [
                "cpuset.effective_cpus",
                "cpuset.cpus",
                "effective_cpus",
                "cpus",
            ] {
                if let Some(set) = fs.read_list_fmt(format_args!("{dir}/{file}"))? {
                    if !set.is_empty() && (!file.contains("effective") || set.is_subset(online)) {
                        return Ok(Some(set));
                    }
                }
            }
        }
    }
    if let Some(path) = p2.or(if p1.is_none() { legacy } else { None }) {
        for m in &m2 {
            let mut path = path.trim_end_matches('/').to_string();
            loop {
                let dir = join(m, &path);
                for file in ["cpuset.cpus.effective", "cpuset.cpus"] {
                    if let Some(set) = fs.read_list_fmt(format_args!("{dir}/{file}"))? {
                        if !set.is_empty() && (!file.contains("effective") || set.is_subset(online))
                        {
                            return Ok(Some(set));
                        }
                    }
                }
                match path.rfind('/') {
                    Some(i) if !path.is_empty() => path.truncate(i),
                    _ => break,
                }
            }
        }
    }
    Ok(None)
}

fn join(mount: &str, path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        mount.to_string()
    } else {
        format!("{mount}/{p}")
    }
}
