//! A plan handed down: a process that planned the whole node (`gpuaff run`) passes every rank's
//! plan to the processes started under it in one environment variable, and a worker whose key
//! matches applies its rank's part without reading the topology.
//!
//! # Why nothing stale can bind a process
//! A worker uses a handed-down plan only when the key recorded with it equals the key the worker
//! builds for itself, now, from its own inputs:
//! - the library version (another version may plan differently);
//! - the boot id (`proc/sys/kernel/random/boot_id` under the fsroot, else the live one): a plan
//!   from before a reboot never applies;
//! - everything of the request that decides a plan: mode and every plan option (the parsed
//!   `PlanOptions`: cores, balanced, nproc, map), every vendor's visible-device variables, the
//!   vendor choice, the source and NVML library, the fsroot;
//! - the online CPUs and the allowed set, which the worker computes itself (its starting mask,
//!   narrowed by its cgroup cpuset, read now): a worker moved to another cgroup or CPU set, or a CPU
//!   taken offline, no longer matches.
//!
//! The key is compared whole, as text; a missing, malformed, oversized or foreign value, a rank the
//! plan does not hold (or holds as an error), a GPU override (`GPU_AFFINITY_GPU`), or a plan whose
//! CPUs are not within the worker's own allowed set, all mean: plan for yourself, silently. The
//! carrier is the environment, so a plan reaches only the process tree started under its planner
//! (no file another process could plant or leave behind) and dies with it. What the key does not
//! pin is the topology's own files within one boot (GPUs or NUMA nodes hot-plugged between the
//! planner's start and a worker's); the online-CPU and allowed sets are re-read.

use crate::config::Request;
use crate::cpuset::CpuSet;
use crate::plan::RankPlan;
use crate::sysfs::Fs;
use crate::topology::{allowed_set, cgroup_cpus, AllowedFrom};

/// The variable that carries the plan.
pub const VAR: &str = "GPU_AFFINITY_HANDOFF";
/// Larger plans are not handed down (the kernel caps one environment string at 128 KiB).
pub const CAP: usize = 64 * 1024;
const FORMAT: &str = "gpuaff-handoff-1";

/// What a worker takes from a matching handoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handed {
    pub plan: RankPlan,
    /// The machine's and the visible-GPU warnings, as the planner found them.
    pub warnings: Vec<String>,
    /// The allowed set the key matched.
    pub allowed: CpuSet,
}

/// The boot id the key holds: the fsroot's when it has one (a snapshot), else this machine's.
fn boot_id(fs: &Fs) -> Option<String> {
    let read = |fs: &Fs| {
        fs.read_opt("proc/sys/kernel/random/boot_id")
            .ok()
            .flatten()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    read(fs).or_else(|| read(&Fs::new("/")))
}

/// The key: everything besides the topology files that decides a plan (see the module comment).
pub fn key(req: &Request, online: &CpuSet, allowed: &CpuSet, boot: &str) -> String {
    format!(
        "version={} boot={boot} fsroot={:?} source={:?} nvml={:?} vendor={:?} plan={:?} devices={:?} online={} allowed={}",
        crate::VERSION,
        req.fsroot,
        req.source,
        req.nvml_lib,
        req.vendor,
        req.plan,
        req.devices,
        online.to_list(),
        allowed.to_list(),
    )
}

/// The worker's own key, computed as `Topology::load_with` computes the allowed set. None when it
/// cannot be computed cleanly (then the full path reports whatever is wrong).
pub fn own_key(req: &Request, from: &AllowedFrom) -> Option<(String, CpuSet)> {
    let fs = Fs::new(&req.fsroot);
    let online = fs
        .read_list("sys/devices/system/cpu/online")
        .ok()
        .flatten()?;
    let cgroup = cgroup_cpus(&fs, &online).ok()?;
    let mut warnings = Vec::new();
    let allowed = allowed_set(&online, from, cgroup.as_ref(), &mut warnings).ok()?;
    if !warnings.is_empty() {
        return None;
    }
    let boot = boot_id(&fs)?;
    Some((key(req, &online, &allowed, &boot), allowed))
}

/// The value to hand down for a node plan made with `req` (its `Machine` and `Visible`), or None
/// when there is no boot id or the value would exceed `CAP`.
pub fn encode_node(req: &Request, node: &crate::session::NodePlan, fs: &Fs) -> Option<String> {
    let topo = &node.machine.topology;
    let boot = boot_id(fs)?;
    let mut warnings = node.machine.warnings.clone();
    warnings.extend(node.visible.warnings.iter().cloned());
    let key = key(req, &topo.online, &topo.allowed, &boot);
    let ranks: Vec<Option<&RankPlan>> = node.plan.ranks.iter().map(|r| r.as_ref().ok()).collect();
    let v = encode(&key, &warnings, &ranks);
    (v.len() <= CAP).then_some(v)
}

/// `FORMAT|key|warnings|rank0|rank1...|$`; a rank is `gpu;gpu_index;bdf;node;cpus;mems;fallback;notes`
/// or `-` (no plan: the worker plans and reports for itself).
pub fn encode(key: &str, warnings: &[String], ranks: &[Option<&RankPlan>]) -> String {
    let mut s = String::with_capacity(256 + ranks.len() * 64);
    s.push_str(FORMAT);
    s.push('|');
    s.push_str(&esc(key));
    s.push('|');
    s.push_str(
        &warnings
            .iter()
            .map(|w| esc(w))
            .collect::<Vec<_>>()
            .join(","),
    );
    for r in ranks {
        s.push('|');
        match r {
            None => s.push('-'),
            Some(p) => s.push_str(&format!(
                "{};{};{};{};{};{};{};{}",
                p.gpu,
                p.gpu_index,
                esc(&p.pci_bus_id),
                p.numa_node
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                p.cpus.to_list(),
                p.mems.to_list(),
                u8::from(p.fallback),
                p.notes.iter().map(|n| esc(n)).collect::<Vec<_>>().join(",")
            )),
        }
    }
    // The end mark: a cut value is refused whole.
    s.push_str("|$");
    s
}

/// The parts of a value: (key, warnings, rank `rank`'s plan). None when malformed or when the
/// rank has no plan in it.
pub fn decode(value: &str, rank: usize) -> Option<(String, Vec<String>, RankPlan)> {
    if value.len() > CAP {
        return None;
    }
    let mut parts = value.strip_suffix("|$")?.split('|');
    if parts.next()? != FORMAT {
        return None;
    }
    let key = unesc(parts.next()?)?;
    let warnings = list(parts.next()?)?;
    let entry = parts.nth(rank)?;
    if entry == "-" {
        return None;
    }
    let f: Vec<&str> = entry.split(';').collect();
    let [gpu, gpu_index, bdf, node, cpus, mems, fallback, notes] = f[..] else {
        return None;
    };
    let set = |t: &str| {
        if t.is_empty() {
            Some(CpuSet::new())
        } else {
            CpuSet::parse_list(t).ok()
        }
    };
    let plan = RankPlan {
        rank,
        gpu: gpu.parse().ok()?,
        gpu_index: gpu_index.parse().ok()?,
        pci_bus_id: unesc(bdf)?,
        numa_node: match node {
            "-" => None,
            n => Some(n.parse().ok()?),
        },
        cpus: set(cpus)?,
        mems: set(mems)?,
        fallback: match fallback {
            "0" => false,
            "1" => true,
            _ => return None,
        },
        notes: list(notes)?,
    };
    Some((key, warnings, plan))
}

/// Takes rank `req.rank`'s part of `value` when its key matches this process's own key (computed
/// with `from`, the allowed set's start) and its CPUs lie within the allowed set; None otherwise.
pub fn accept(value: &str, req: &Request, from: &AllowedFrom) -> Option<Handed> {
    if req.gpu.is_some() {
        return None;
    }
    let (key, warnings, plan) = decode(value, req.rank?)?;
    // Cheap rejections first: the version leads the key.
    if !key.starts_with(&format!("version={} ", crate::VERSION)) {
        return None;
    }
    let (own, allowed) = own_key(req, from)?;
    if own != key || !plan.cpus.is_subset(&allowed) {
        return None;
    }
    Some(Handed {
        plan,
        warnings,
        allowed,
    })
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // Nothing a shell or a launcher's variable list would split on.
            '%' | '|' | ';' | ',' | ' ' | '"' | '\'' | '\\' | '\n' | '\0' => {
                o.push_str(&format!("%{:02X}", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

fn unesc(s: &str) -> Option<String> {
    let mut o = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            o.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            o.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(o).ok()
}

fn list(s: &str) -> Option<Vec<String>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',').map(unesc).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(rank: usize, cpus: &str, notes: &[&str]) -> RankPlan {
        RankPlan {
            rank,
            gpu: rank,
            gpu_index: rank + 1,
            pci_bus_id: "0000:07:00.0".into(),
            numa_node: (rank == 0).then_some(3),
            cpus: if cpus.is_empty() {
                CpuSet::new()
            } else {
                CpuSet::parse_list(cpus).unwrap()
            },
            mems: CpuSet::single(3),
            notes: notes.iter().map(|s| s.to_string()).collect(),
            fallback: rank == 1,
        }
    }

    #[test]
    fn round_trips_every_field_and_escapes_separators() {
        let a = rp(0, "0-7,128-135", &["a; b, c|d %e\nf"]);
        let b = rp(1, "", &[]);
        let warnings = vec!["w|1,;%".to_string(), String::new()];
        let v = encode("k|e;y", &warnings, &[Some(&a), Some(&b), None]);
        assert!(!v.contains(['\n', ' ', '"']));
        let (k, w, p) = decode(&v, 0).unwrap();
        assert_eq!((k.as_str(), &w, &p), ("k|e;y", &warnings, &a));
        assert_eq!(decode(&v, 1).unwrap().2, b);
        assert!(decode(&v, 2).is_none(), "an error rank is not handed down");
        assert!(decode(&v, 3).is_none(), "beyond the plan");
    }

    #[test]
    fn malformed_values_are_refused() {
        let a = rp(0, "0-3", &[]);
        let good = encode("k", &[], &[Some(&a)]);
        assert!(decode(&good, 0).is_some());
        let bad = [
            String::new(),
            good.replacen(FORMAT, "gpuaff-handoff-0", 1),
            good.replace("0-3", "3-x"),
            good.replace(";0;", ";2;"),
            format!("{good};extra"),
            good[..good.len() - 1].to_string(),
            good.replace("|k|", "|k%G|"),
            format!("{good}{}", " ".repeat(CAP)),
        ];
        for v in bad {
            assert!(decode(&v, 0).is_none(), "{v:.80}");
        }
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let req = Request::default();
        let set = |s: &str| CpuSet::parse_list(s).unwrap();
        let base = key(&req, &set("0-7"), &set("0-3"), "b");
        let mut changed = vec![
            key(&req, &set("0-6"), &set("0-3"), "b"),
            key(&req, &set("0-7"), &set("0-2"), "b"),
            key(&req, &set("0-7"), &set("0-3"), "c"),
        ];
        let mut variants: Vec<Request> = Vec::new();
        let mut r = req.clone();
        r.plan.mode = crate::Mode::Node;
        variants.push(r);
        let mut r = req.clone();
        r.plan.balanced = false;
        variants.push(r);
        let mut r = req.clone();
        r.plan.nproc = Some(4);
        variants.push(r);
        let mut r = req.clone();
        r.plan.cores = crate::Cores::SingleLogical;
        variants.push(r);
        let mut r = req.clone();
        r.fsroot = "/tmp".into();
        variants.push(r);
        let mut r = req.clone();
        r.source = crate::Source::Nvml;
        variants.push(r);
        let mut r = req.clone();
        r.vendor = crate::config::VendorChoice::Amd;
        variants.push(r);
        for var in crate::gpu::device_vars() {
            let mut r = req.clone();
            r.devices.set(var, "0");
            variants.push(r);
        }
        for r in &variants {
            changed.push(key(r, &set("0-7"), &set("0-3"), "b"));
        }
        for k in &changed {
            assert_ne!(k, &base);
        }
        // Per-process settings that do not decide the plan leave it alone.
        let mut r = req.clone();
        r.rank = Some(3);
        r.verbose = true;
        r.dry_run = true;
        assert_eq!(key(&r, &set("0-7"), &set("0-3"), "b"), base);
    }
}
