//! The reference topology reader: every file of every CPU, nothing shared (as before propagation).
//! Test code only: `topology::read_facts` must build the same topology. Included by the core's unit
//! tests and by core/tests/propagation.rs; the including module provides the names used here.

use super::*;

const CPU_DIR: &str = "sys/devices/system/cpu";

/// `N` of `{prefix}N`.
fn numbered(name: &str, prefix: &str) -> Option<usize> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The reference reader: every file of every CPU, nothing shared (as before propagation). For
/// tests that check `read_facts` against it, and for diagnosing odd snapshots.
pub fn read_facts_every_cpu(fs: &Fs) -> Result<Facts> {
    let online = read_online(fs)?;
    let mut cpus = Vec::with_capacity(online.len());
    for id in online.iter() {
        cpus.push(read_cpu(fs, id)?);
    }
    let nodes = read_nodes(fs, true)?;
    Ok(Facts {
        online,
        cpus,
        cores: Vec::new(),
        counted: Vec::new(),
        nodes,
        partial: None,
    })
}

fn read_cpu(fs: &Fs, id: usize) -> Result<CpuFacts> {
    let t = format!("{CPU_DIR}/cpu{id}/topology");
    let first = |pairs: &[(&str, &str)]| -> Result<Option<CpuSet>> {
        for (list, mask) in pairs {
            if let Some(s) = fs.read_cpuset(&format!("{t}/{list}"), &format!("{t}/{mask}"))? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    };
    let thread_siblings = first(&[
        ("core_cpus_list", "core_cpus"),
        ("thread_siblings_list", "thread_siblings"),
    ])?;
    let package_siblings = first(&[
        ("package_cpus_list", "package_cpus"),
        ("core_siblings_list", "core_siblings"),
    ])?;
    let package_id = fs.read_i64(&format!("{t}/physical_package_id"))?;
    let core_id = fs.read_i64(&format!("{t}/core_id"))?;
    let llc = read_llc(fs, id)?;
    Ok(CpuFacts {
        id,
        thread_siblings,
        package_siblings,
        package_id,
        core_id,
        llc,
    })
}

/// The CPUs sharing this CPU's highest-level data or unified cache.
fn read_llc(fs: &Fs, id: usize) -> Result<Option<CpuSet>> {
    let dir = format!("{CPU_DIR}/cpu{id}/cache");
    let mut best: Option<(i64, CpuSet)> = None;
    for name in fs.list_dir(&dir)? {
        if numbered(&name, "index").is_none() {
            continue;
        }
        let idx = format!("{dir}/{name}");
        let kind = fs.read_str(&format!("{idx}/type"))?.unwrap_or_default();
        if !matches!(kind.as_str(), "Data" | "Unified") {
            continue;
        }
        let Some(level) = fs.read_i64(&format!("{idx}/level"))? else {
            continue;
        };
        if best.as_ref().is_some_and(|(l, _)| *l >= level) {
            continue;
        }
        if let Some(shared) = fs.read_cpuset(
            &format!("{idx}/shared_cpu_list"),
            &format!("{idx}/shared_cpu_map"),
        )? {
            best = Some((level, shared));
        }
    }
    Ok(best.map(|(_, s)| s))
}
