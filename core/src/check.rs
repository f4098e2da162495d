//! `gpuaff check`: where a live job's processes, threads and memory are, judged against the plan each
//! process computes from its own environment.
//!
//! # The plan a process is judged against
//! Its rank, mode, options, `CUDA_VISIBLE_DEVICES` and `GPU_AFFINITY_FSROOT` come from its
//! `/proc/PID/environ` (`Request::from_env`, defaults where unset), and `session::plan_for_process`
//! plans it, as the preloaded library in that process did. The allowed set it planned within:
//! - under a foreign fsroot (a fixture, a snapshot): the snapshot's own (cgroup cpuset, else online
//!   CPUs), exactly as the library does there;
//! - on `/`, the mask the process started from, which is not kept anywhere, so: the original mask in
//!   `GPU_AFFINITY_INHERITED` when its environment has one (a bound gpuaff parent recorded it); else
//!   the current mask of its nearest ancestor that is not the same rank (the launcher it was forked
//!   from: `fork` copies the mask, and processes of the same rank, such as data-loader workers, were
//!   forked from the rank's own bound process); else the online CPUs.
//!
//! A process started under `taskset` inherits a narrower mask than its launcher's: it is judged
//! against the launcher's, and a plan outside its `taskset` is reported (it usually is a mistake).

use crate::config::{Request, LOCAL_RANK_VARS};
use crate::cpuset::CpuSet;
use crate::machine::Machine;
use crate::plan::{PlanOptions, RankPlan};
use crate::procfs::{thread_hint, NumaMaps, ProcFs, Status, Thread, Unreadable};
use crate::topology::AllowedFrom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The variable a bound gpuaff process leaves to its children: `<original>/<bound>` cpulists.
pub const INHERITED_VAR: &str = "GPU_AFFINITY_INHERITED";

/// Memory on nodes away from the rank's above this share of its anonymous memory is a finding.
pub const REMOTE_LIMIT_PERCENT: u64 = 50;

/// Which processes to check.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Named on the command line: checked whatever they are.
    pub pids: Vec<u32>,
    /// Also find the job's processes: those carrying a local rank variable or `GPU_AFFINITY_INHERITED`,
    /// or holding `/dev/nvidia*` or `/dev/kfd` open.
    pub discover: bool,
    /// Discover among every user's processes (that can be read), not only `uid`'s.
    pub everyone: bool,
    /// The caller's real uid.
    pub uid: u32,
    /// Left out of discovery (the checker itself).
    pub exclude: Vec<u32>,
    /// Load each machine whole for the map (text output).
    pub machines: bool,
    /// Also ask NVML for its compute processes (`Some(library path or None for the default)`); only
    /// meaningful on the live `/proc`.
    pub nvml: Option<Option<PathBuf>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The process's files could not be read (another user's process).
    Unreadable,
    /// The named process does not exist.
    Gone,
    /// Its environment holds a value the library rejects.
    BadEnvironment,
    /// A named process has no local rank: there is no plan to compare with.
    NoRank,
    /// The plan could not be made (the fsroot is gone, no GPU...).
    NoPlan,
    /// No thread is bound: the process still has the whole mask it started from.
    Unbound,
    /// None of its CPUs is local to its GPU.
    OffGpu,
    /// Some threads are outside the plan.
    ThreadsOutside,
    /// Two ranks whose plans are disjoint share CPUs.
    Overlap,
    /// Two unrelated processes claim the same local rank on the same GPU (and so the same CPUs).
    SameRank,
    /// Most of its memory is on nodes away from its CPUs and GPU.
    RemoteMemory,
    /// The memory policy it asked for is not in force.
    MemPolicy,
}

impl Kind {
    /// The stable name used in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unreadable => "unreadable",
            Kind::Gone => "gone",
            Kind::BadEnvironment => "bad_environment",
            Kind::NoRank => "no_rank",
            Kind::NoPlan => "no_plan",
            Kind::Unbound => "unbound",
            Kind::OffGpu => "off_gpu",
            Kind::ThreadsOutside => "threads_outside",
            Kind::Overlap => "overlap",
            Kind::SameRank => "same_rank",
            Kind::RemoteMemory => "remote_memory",
            Kind::MemPolicy => "mempolicy",
        }
    }
}

/// One thing that does not match, in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub pids: Vec<u32>,
    pub message: String,
}

/// Where the allowed set the plan was made within came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The fsroot is a snapshot: its cgroup cpuset or online CPUs.
    Snapshot,
    /// `GPU_AFFINITY_INHERITED` in the environment of this process (or of its same-rank ancestor).
    Inherited(u32),
    /// The current mask of this ancestor.
    Parent(u32, String),
    /// No ancestor could be read: the online CPUs.
    Online,
}

impl Basis {
    pub fn describe(&self) -> String {
        match self {
            Basis::Snapshot => "the fsroot's own CPUs".into(),
            Basis::Inherited(pid) => format!("GPU_AFFINITY_INHERITED of pid {pid}"),
            Basis::Parent(pid, name) => format!("the mask of its launcher, pid {pid} ({name})"),
            Basis::Online => "the online CPUs".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ThreadCheck {
    pub thread: Thread,
    /// Inside the plan; None when there is no plan or the mask is unknown.
    pub in_plan: Option<bool>,
}

/// The process's memory measured against its local nodes.
#[derive(Clone, Debug)]
pub struct Memory {
    pub maps: NumaMaps,
    /// The nodes of the planned CPUs and the GPU's own memory node.
    pub local_nodes: CpuSet,
    /// Anonymous bytes on local and on other nodes.
    pub local: u64,
    pub remote: u64,
}

impl Memory {
    pub fn local_percent(&self) -> Option<f64> {
        let total = self.local + self.remote;
        (total > 0).then(|| self.local as f64 * 100.0 / total as f64)
    }
}

/// One process, as read and as judged.
#[derive(Clone, Debug, Default)]
pub struct ProcCheck {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    pub name: String,
    pub cmdline: Vec<String>,
    pub rank: Option<usize>,
    pub request: Option<Request>,
    pub basis: Option<Basis>,
    /// The allowed set the plan was made within.
    pub allowed: Option<CpuSet>,
    pub plan: Option<RankPlan>,
    /// The GPU's local CPUs and memory node (Grace), from the machine the plan was made on.
    pub gpu_cpus: Option<CpuSet>,
    pub gpu_mem_node: Option<u32>,
    /// The process's own mask (its main thread's status).
    pub cpus: Option<CpuSet>,
    /// The union of its threads' masks.
    pub actual: CpuSet,
    pub threads: Vec<ThreadCheck>,
    pub memory: Option<Memory>,
    /// Why memory could not be measured.
    pub memory_note: Option<String>,
    /// False when something about this process does not match.
    pub ok: bool,
    /// False when it could not be checked at all.
    pub checked: bool,
    /// Why it was picked: `named`, `environment` (a rank variable or the inherited record), `GPU device`.
    pub found_by: &'static str,
    /// `LD_PRELOAD` names libgpuaff.
    pub preloaded: bool,
}

impl ProcCheck {
    pub fn threads_in(&self) -> usize {
        self.threads
            .iter()
            .filter(|t| t.in_plan == Some(true))
            .count()
    }
    pub fn threads_out(&self) -> usize {
        self.threads
            .iter()
            .filter(|t| t.in_plan == Some(false))
            .count()
    }
    /// A short name for tables: the program of the command line, else `comm`.
    pub fn command(&self) -> String {
        self.cmdline
            .first()
            .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| self.name.clone())
    }
}

/// A machine the checked processes were planned on, loaded whole for the map.
#[derive(Clone, Debug)]
pub struct MapMachine {
    pub fsroot: PathBuf,
    pub machine: Machine,
    pub options: PlanOptions,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub processes: Vec<ProcCheck>,
    pub findings: Vec<Finding>,
    /// Not failures: automatic NUMA balancing, processes skipped, processes without a rank.
    pub notes: Vec<String>,
    pub numa_balancing: Option<u32>,
    /// Processes discovery could not read (other users'); not judged, counted.
    pub skipped_unreadable: usize,
    /// Files read under the proc root and under every fsroot planned on.
    pub files_read: usize,
    pub machines: Vec<MapMachine>,
}

impl Report {
    /// Everything found matched (and something was checked).
    pub fn ok(&self) -> bool {
        self.findings.is_empty() && self.processes.iter().any(|p| p.checked && p.plan.is_some())
    }
}

fn env_has_rank(env: &[(String, String)]) -> bool {
    env.iter().any(|(k, v)| {
        !v.is_empty() && (LOCAL_RANK_VARS.contains(&k.as_str()) || k == INHERITED_VAR)
    })
}

/// Parses `GPU_AFFINITY_INHERITED`: `<original>/<bound>` (as the library writes it).
pub fn parse_inherited(value: &str) -> Option<(CpuSet, CpuSet)> {
    let (orig, bound) = value.split_once('/')?;
    let orig = CpuSet::parse_list(orig).ok()?;
    let bound = CpuSet::parse_list(bound).ok()?;
    (!orig.is_empty() && !bound.is_empty()).then_some((orig, bound))
}

struct Checker<'a> {
    pfs: &'a ProcFs,
    /// The caller's uid.
    uid: u32,
    statuses: HashMap<u32, Option<Status>>,
    envs: HashMap<u32, Option<Vec<(String, String)>>>,
    sys_files: usize,
}

impl Checker<'_> {
    fn status(&mut self, pid: u32) -> Option<Status> {
        if let Some(s) = self.statuses.get(&pid) {
            return s.clone();
        }
        let s = self.pfs.status(&pid.to_string()).ok().flatten();
        self.statuses.insert(pid, s.clone());
        s
    }
    fn env(&mut self, pid: u32) -> Option<Vec<(String, String)>> {
        if let Some(e) = self.envs.get(&pid) {
            return e.clone();
        }
        let e = self.pfs.environ(pid).ok().flatten();
        self.envs.insert(pid, e.clone());
        e
    }

    /// True when `a` is an ancestor of `b`.
    fn is_ancestor(&mut self, a: u32, b: u32) -> bool {
        let mut cur = b;
        for _ in 0..64 {
            match self.status(cur).and_then(|s| s.ppid) {
                Some(p) if p == a => return true,
                Some(p) if p > 0 && p != cur => cur = p,
                _ => return false,
            }
        }
        false
    }

    /// The allowed set a live process planned within (see the module documentation).
    fn basis(
        &mut self,
        pid: u32,
        env: &[(String, String)],
        rank: Option<usize>,
    ) -> (Basis, Option<CpuSet>) {
        let mut cur = pid;
        let mut cur_env = env.to_vec();
        for _ in 0..64 {
            if let Some((orig, _)) = cur_env
                .iter()
                .find(|(k, _)| k == INHERITED_VAR)
                .and_then(|(_, v)| parse_inherited(v))
            {
                return (Basis::Inherited(cur), Some(orig));
            }
            let Some(ppid) = self.status(cur).and_then(|s| s.ppid).filter(|&p| p > 0) else {
                break;
            };
            let Some(parent) = self.status(ppid) else {
                break;
            };
            let parent_env = self.env(ppid);
            let same_rank = parent_env.as_ref().is_some_and(|e| {
                let look = |k: &str| e.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                crate::config::local_rank(&look).ok().flatten() == rank
            });
            if same_rank {
                cur = ppid;
                cur_env = parent_env.unwrap_or_default();
                continue;
            }
            return match parent.cpus {
                Some(c) => (Basis::Parent(ppid, parent.name), Some(c)),
                None => (Basis::Online, None),
            };
        }
        (Basis::Online, None)
    }
}

/// Reads and judges the selected processes under `pfs`.
pub fn check(pfs: &ProcFs, sel: &Selection) -> Report {
    let mut ck = Checker {
        pfs,
        uid: sel.uid,
        statuses: HashMap::new(),
        envs: HashMap::new(),
        sys_files: 0,
    };
    let mut report = Report {
        numa_balancing: pfs.numa_balancing(),
        ..Report::default()
    };
    let mut picked: Vec<(u32, &'static str)> = sel.pids.iter().map(|&p| (p, "named")).collect();
    let nvml_pids: Vec<u32> = match (&sel.nvml, sel.discover) {
        (Some(lib), true) => crate::nvml_procs::compute_pids(lib.as_deref())
            .map(|v| v.into_iter().map(|(pid, _)| pid).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if sel.discover {
        for pid in pfs.pids() {
            if sel.exclude.contains(&pid) || picked.iter().any(|(p, _)| *p == pid) {
                continue;
            }
            let Some(st) = ck.status(pid) else {
                continue;
            };
            if !sel.everyone && st.uid != Some(sel.uid) {
                continue;
            }
            let env = match pfs.environ(pid) {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(_) => {
                    report.skipped_unreadable += 1;
                    continue;
                }
            };
            let has_rank = env_has_rank(&env);
            ck.envs.insert(pid, Some(env));
            if has_rank {
                picked.push((pid, "environment"));
            } else if nvml_pids.contains(&pid) {
                picked.push((pid, "NVML"));
            } else if pfs.holds_gpu_device(pid).ok().flatten() == Some(true) {
                picked.push((pid, "GPU device"));
            }
        }
    }
    for (pid, found_by) in picked {
        let pc = examine(&mut ck, pid, found_by, &mut report.findings);
        report.processes.push(pc);
    }
    cross_check(&mut ck, &mut report);
    if sel.machines {
        report.machines = load_machines(&report.processes, &mut ck.sys_files);
    }
    for p in &report.processes {
        if p.checked && p.rank.is_none() && p.found_by != "named" {
            let how = if p.found_by == "NVML" {
                "is a compute process on a GPU (NVML)"
            } else {
                "holds a GPU device"
            };
            report.notes.push(format!(
                "pid {} ({}) {how} but has no local rank variable: not judged",
                p.pid,
                p.command()
            ));
        }
    }
    match report.skipped_unreadable {
        0 => {}
        1 => report.notes.push(
            "1 process could not be read (another user's, or protected) and was not checked".into(),
        ),
        n => report.notes.push(format!(
            "{n} processes could not be read (other users', or protected) and were not checked"
        )),
    }
    if let Some(n) = report.numa_balancing.filter(|&n| n != 0) {
        report.notes.push(format!(
            "automatic NUMA balancing is on (kernel.numa_balancing = {n}): the kernel moves pages toward \
             the threads touching them, after the binding; sysctl kernel.numa_balancing=0 keeps placement as bound"
        ));
    }
    for p in report.processes.iter_mut() {
        p.ok = p.checked && !report.findings.iter().any(|f| f.pids.contains(&p.pid));
    }
    report.files_read = pfs.files_read() + ck.sys_files;
    report
}

fn who(pid: u32, rank: Option<usize>, name: &str) -> String {
    match rank {
        Some(r) => format!("rank {r} (pid {pid}, {name})"),
        None => format!("pid {pid} ({name})"),
    }
}

fn unreadable_finding(pid: u32, st: Option<&Status>, u: &Unreadable, caller: u32) -> Finding {
    let uid = st.and_then(|s| s.uid);
    let owner = uid.map_or_else(String::new, |u| format!(", uid {u}"));
    let name = st.map_or("?", |s| s.name.as_str());
    let advice = match (u.denied, uid) {
        (false, _) => "",
        (true, Some(u)) if u == caller => {
            ": a protected process (not dumpable, or another namespace)"
        }
        (true, _) => ": another user's process; run as that user or as root",
    };
    Finding {
        kind: Kind::Unreadable,
        pids: vec![pid],
        message: format!("pid {pid} ({name}{owner}): not checked: {u}{advice}"),
    }
}

fn examine(
    ck: &mut Checker,
    pid: u32,
    found_by: &'static str,
    findings: &mut Vec<Finding>,
) -> ProcCheck {
    let pfs = ck.pfs;
    let mut pc = ProcCheck {
        pid,
        found_by,
        ..ProcCheck::default()
    };
    let st = match pfs.status(&pid.to_string()) {
        Ok(Some(st)) => st,
        Ok(None) => {
            findings.push(Finding {
                kind: Kind::Gone,
                pids: vec![pid],
                message: format!("pid {pid}: no such process"),
            });
            return pc;
        }
        Err(u) => {
            findings.push(unreadable_finding(pid, None, &u, ck.uid));
            return pc;
        }
    };
    pc.ppid = st.ppid;
    pc.uid = st.uid;
    pc.name = st.name.clone();
    pc.cpus = st.cpus.clone();
    pc.cmdline = pfs.cmdline(pid);
    let env = match ck.envs.get(&pid).cloned().flatten() {
        Some(e) => e,
        None => match pfs.environ(pid) {
            Ok(Some(e)) => e,
            Ok(None) => {
                findings.push(Finding {
                    kind: Kind::Gone,
                    pids: vec![pid],
                    message: format!("pid {pid}: ended while being read"),
                });
                return pc;
            }
            Err(u) => {
                findings.push(unreadable_finding(pid, Some(&st), &u, ck.uid));
                return pc;
            }
        },
    };
    let threads = match pfs.threads(pid) {
        Ok(t) => t.unwrap_or_default(),
        Err(u) => {
            findings.push(unreadable_finding(pid, Some(&st), &u, ck.uid));
            return pc;
        }
    };
    pc.checked = true;
    pc.actual = threads
        .iter()
        .filter_map(|t| t.cpus.as_ref())
        .fold(CpuSet::new(), |a, c| a.union(c));
    pc.threads = threads
        .into_iter()
        .map(|thread| ThreadCheck {
            thread,
            in_plan: None,
        })
        .collect();
    pc.preloaded = env
        .iter()
        .any(|(k, v)| k == "LD_PRELOAD" && v.contains("libgpuaff"));
    let me = |pc: &ProcCheck| who(pid, pc.rank, &pc.command());
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut req = match Request::from_env(&lookup) {
        Ok(r) => r,
        Err(e) => {
            pc.rank = crate::config::local_rank(&lookup).ok().flatten();
            findings.push(Finding {
                kind: Kind::BadEnvironment,
                pids: vec![pid],
                message: format!(
                    "{}: its environment is not valid ({e}); the library would have left it unbound",
                    me(&pc)
                ),
            });
            return pc;
        }
    };
    pc.rank = req.rank;
    if req.fsroot.is_relative() {
        if let Some(cwd) = pfs.cwd(pid) {
            req.fsroot = cwd.join(&req.fsroot);
        }
    }
    let Some(rank) = req.rank else {
        if found_by == "named" {
            findings.push(Finding {
                kind: Kind::NoRank,
                pids: vec![pid],
                message: format!(
                    "{}: no local rank in its environment ({}), so no plan to compare with; it runs on CPUs {}",
                    me(&pc),
                    LOCAL_RANK_VARS.join(", "),
                    pc.cpus.as_ref().map_or("?".into(), |c| c.to_list())
                ),
            });
        }
        pc.request = Some(req);
        return pc;
    };
    let live = req.fsroot == Path::new("/");
    let (basis, start) = if live {
        ck.basis(pid, &env, Some(rank))
    } else {
        (Basis::Snapshot, None)
    };
    let allowed = match (&basis, start) {
        (_, Some(set)) => AllowedFrom::Process(set),
        (Basis::Online, None) if live => match crate::topology::read_online(&crate::Fs::new("/")) {
            Ok(online) => AllowedFrom::Process(online),
            Err(_) => AllowedFrom::Snapshot,
        },
        _ => AllowedFrom::Snapshot,
    };
    pc.basis = Some(basis);
    let outcome = match crate::session::plan_for_process(&req, allowed) {
        Ok(o) => o,
        Err(e) => {
            findings.push(Finding {
                kind: Kind::NoPlan,
                pids: vec![pid],
                message: format!("{}: its plan cannot be made: {e}", me(&pc)),
            });
            pc.request = Some(req);
            return pc;
        }
    };
    ck.sys_files += outcome.files_read;
    let plan = outcome.plan.clone();
    let gpu = outcome.machine.gpus.get(plan.gpu_index);
    pc.gpu_cpus = gpu.map(|g| g.local_cpus.clone());
    pc.gpu_mem_node = gpu.and_then(|g| g.mem_node);
    pc.allowed = Some(outcome.machine.topology.allowed.clone());
    judge(&mut pc, &plan, &req, ck.pfs, findings);
    pc.plan = Some(plan);
    pc.request = Some(req);
    pc
}

fn judge(
    pc: &mut ProcCheck,
    plan: &RankPlan,
    req: &Request,
    pfs: &ProcFs,
    findings: &mut Vec<Finding>,
) {
    let me = who(pc.pid, pc.rank, &pc.command());
    // Memory first: it is judged whatever the CPUs are.
    let mut local_nodes = plan.mems.clone();
    if let Some(m) = pc.gpu_mem_node {
        local_nodes.insert(m as usize);
    }
    match pfs.numa_maps(pc.pid) {
        Ok(Some(maps)) if !local_nodes.is_empty() => {
            let by_node = if maps.anon_total() > 0 {
                &maps.anon_by_node
            } else {
                &maps.bytes_by_node
            };
            let (mut local, mut remote) = (0u64, 0u64);
            let mut far = CpuSet::new();
            for (&node, &bytes) in by_node {
                if local_nodes.contains(node as usize) {
                    local += bytes;
                } else if bytes > 0 {
                    remote += bytes;
                    far.insert(node as usize);
                }
            }
            let mem = Memory {
                maps,
                local_nodes: local_nodes.clone(),
                local,
                remote,
            };
            let total = local + remote;
            if total > 0 && remote * 100 > total * REMOTE_LIMIT_PERCENT && !plan.cpus.is_empty() {
                findings.push(Finding {
                    kind: Kind::RemoteMemory,
                    pids: vec![pc.pid],
                    message: format!(
                        "{me}: {}% of its memory ({} of {}) is on node {}, away from its node {}{}",
                        remote * 100 / total,
                        bytes_text(remote),
                        bytes_text(total),
                        far,
                        local_nodes,
                        if mem.maps.truncated {
                            " (numa_maps read in part)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            let want = match req.membind {
                crate::MemBind::None => None,
                crate::MemBind::Bind => Some("bind"),
                crate::MemBind::Preferred => Some("prefer"),
                crate::MemBind::Interleave => Some("interleave"),
            };
            if let (Some(want), Some(policy)) = (want, mem.maps.policy.as_deref()) {
                if !policy.starts_with(want) && !plan.cpus.is_empty() {
                    findings.push(Finding {
                        kind: Kind::MemPolicy,
                        pids: vec![pc.pid],
                        message: format!(
                            "{me}: asked for memory policy {} on node {} (GPU_AFFINITY_MEMBIND) but its mappings show {policy}",
                            want, plan.mems
                        ),
                    });
                }
            }
            pc.memory = Some(mem);
        }
        Ok(Some(_)) => pc.memory_note = Some("its plan names no memory node".into()),
        Ok(None) => pc.memory_note = Some("no numa_maps (a kernel without NUMA)".into()),
        Err(u) => pc.memory_note = Some(u.to_string()),
    }
    if plan.cpus.is_empty() {
        // Mode none: left as it is, by request.
        return;
    }
    for t in pc.threads.iter_mut() {
        t.in_plan = t.thread.cpus.as_ref().map(|c| c.is_subset(&plan.cpus));
    }
    let any_in = pc.threads.iter().any(|t| t.in_plan == Some(true));
    let start = pc.allowed.clone().unwrap_or_default();
    let main_wide = pc
        .cpus
        .as_ref()
        .is_some_and(|c| !c.is_subset(&plan.cpus) && start.is_subset(c));
    if !any_in && main_wide {
        findings.push(Finding {
            kind: Kind::Unbound,
            pids: vec![pc.pid],
            message: format!(
                "{me}: not bound at all: its {} threads may run on CPUs {} (all it started with); the plan is {} (GPU {}, {}){}",
                pc.threads.len(),
                pc.actual,
                plan.cpus,
                plan.gpu,
                plan.pci_bus_id,
                if pc.preloaded { "" } else { "; libgpuaff.so is not preloaded in it" }
            ),
        });
        return;
    }
    if let Some(gpu_cpus) = pc.gpu_cpus.as_ref().filter(|g| !g.is_empty()) {
        if !pc.actual.is_empty() && !pc.actual.intersects(gpu_cpus) && !plan.fallback {
            findings.push(Finding {
                kind: Kind::OffGpu,
                pids: vec![pc.pid],
                message: format!(
                    "{me}: not on its GPU's CPUs at all: it runs on CPUs {}; GPU {} ({}) is local to CPUs {}, the plan is {}",
                    pc.actual, plan.gpu, plan.pci_bus_id, gpu_cpus, plan.cpus
                ),
            });
            return;
        }
    }
    // Threads outside, one line per distinct mask.
    let mut groups: Vec<(CpuSet, Vec<&Thread>)> = Vec::new();
    for t in pc.threads.iter().filter(|t| t.in_plan == Some(false)) {
        let Some(mask) = t.thread.cpus.clone() else {
            continue;
        };
        match groups.iter_mut().find(|(m, _)| *m == mask) {
            Some((_, v)) => v.push(&t.thread),
            None => groups.push((mask, vec![&t.thread])),
        }
    }
    for (mask, threads) in groups {
        let mut names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
        names.dedup();
        let hint = threads
            .iter()
            .find_map(|t| thread_hint(&t.name))
            .map_or_else(String::new, |h| format!("; the name suggests {h}"));
        let what = if threads.len() == 1 {
            format!("thread {} \"{}\"", threads[0].tid, threads[0].name)
        } else {
            let shown: Vec<String> = names.iter().take(3).map(|n| format!("\"{n}\"")).collect();
            format!(
                "{} threads ({}{})",
                threads.len(),
                shown.join(", "),
                if names.len() > 3 { ", ..." } else { "" }
            )
        };
        let last: CpuSet = threads
            .iter()
            .filter_map(|t| t.last_cpu)
            .filter(|c| !plan.cpus.contains(*c))
            .fold(CpuSet::new(), |mut s, c| {
                s.insert(c);
                s
            });
        let ran = if last.is_empty() {
            String::new()
        } else {
            format!(", last ran on CPU {last}")
        };
        findings.push(Finding {
            kind: Kind::ThreadsOutside,
            pids: vec![pc.pid],
            message: format!(
                "{me}: {what} on CPUs {mask}, outside the plan {}{ran}{hint}",
                plan.cpus
            ),
        });
    }
}

/// Between processes: ranks sharing CPUs their plans keep apart, and unrelated processes claiming
/// the same rank on the same machine.
fn cross_check(ck: &mut Checker, report: &mut Report) {
    let judged: Vec<usize> = report
        .processes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.plan.as_ref().is_some_and(|pl| !pl.cpus.is_empty()))
        .filter(|(_, p)| {
            !report
                .findings
                .iter()
                .any(|f| f.kind == Kind::Unbound && f.pids.contains(&p.pid))
        })
        .map(|(i, _)| i)
        .collect();
    let mut found = Vec::new();
    for (n, &i) in judged.iter().enumerate() {
        for &j in &judged[n + 1..] {
            let (a, b) = (&report.processes[i], &report.processes[j]);
            let same_machine =
                a.request.as_ref().map(|r| &r.fsroot) == b.request.as_ref().map(|r| &r.fsroot);
            if !same_machine {
                continue;
            }
            let (Some(pa), Some(pb)) = (a.plan.as_ref(), b.plan.as_ref()) else {
                continue;
            };
            let shared = a.actual.intersection(&b.actual);
            let related = ck.is_ancestor(a.pid, b.pid) || ck.is_ancestor(b.pid, a.pid);
            if a.rank == b.rank && pa.pci_bus_id == pb.pci_bus_id && !related {
                found.push(Finding {
                    kind: Kind::SameRank,
                    pids: vec![a.pid, b.pid],
                    message: format!(
                        "pids {} ({}) and {} ({}) both claim local rank {}: they share GPU {} and CPUs {}",
                        a.pid,
                        a.command(),
                        b.pid,
                        b.command(),
                        pa.rank,
                        pa.gpu,
                        if shared.is_empty() { pa.cpus.clone() } else { shared }
                    ),
                });
            } else if !pa.cpus.intersects(&pb.cpus) && !shared.is_empty() {
                found.push(Finding {
                    kind: Kind::Overlap,
                    pids: vec![a.pid, b.pid],
                    message: format!(
                        "{} and {} share CPUs {}, which their plans keep apart ({} and {})",
                        who(a.pid, a.rank, &a.command()),
                        who(b.pid, b.rank, &b.command()),
                        shared,
                        pa.cpus,
                        pb.cpus
                    ),
                });
            }
        }
    }
    report.findings.extend(found);
}

/// Each fsroot the processes were planned on, loaded whole, for the machine map.
fn load_machines(procs: &[ProcCheck], files: &mut usize) -> Vec<MapMachine> {
    let mut out: Vec<MapMachine> = Vec::new();
    for p in procs {
        let (Some(req), Some(_)) = (&p.request, &p.plan) else {
            continue;
        };
        if out.iter().any(|m| m.fsroot == req.fsroot) {
            continue;
        }
        let allowed = match &p.allowed {
            Some(a) => AllowedFrom::Explicit(a.clone()),
            None => AllowedFrom::Snapshot,
        };
        if let Ok(machine) = Machine::load(req, allowed) {
            *files += machine.files_read;
            out.push(MapMachine {
                fsroot: req.fsroot.clone(),
                machine,
                options: req.plan.clone(),
            });
        }
    }
    out
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`.
pub fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    fn proc_(t: &TestFs, pid: u32, ppid: u32, cpus: &str, env: &str) {
        t.file(
            &format!("{pid}/status"),
            &format!(
                "Name:\tp{pid}\nPPid:\t{ppid}\nUid:\t0\t0\t0\t0\nCpus_allowed_list:\t{cpus}\n"
            ),
        )
        .file(&format!("{pid}/environ"), env);
    }

    fn basis_of(t: &TestFs, pid: u32) -> (Basis, Option<String>) {
        let pfs = ProcFs::new(&t.root);
        let mut ck = Checker {
            pfs: &pfs,
            uid: 0,
            statuses: HashMap::new(),
            envs: HashMap::new(),
            sys_files: 0,
        };
        let env = pfs.environ(pid).unwrap().unwrap();
        let look = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let rank = crate::config::local_rank(&look).unwrap();
        let (b, set) = ck.basis(pid, &env, rank);
        (b, set.map(|s| s.to_list()))
    }

    #[test]
    fn the_starting_mask_comes_from_the_record_or_the_launcher() {
        let t = TestFs::new("check-basis");
        // A launcher on 0-15; worker 0 forked from it; a data-loader worker forked from worker 0
        // (same rank, no record in its initial environment).
        proc_(&t, 1, 0, "0-15", "PATH=/bin\0");
        proc_(&t, 10, 1, "0-3", "LOCAL_RANK=0\0");
        proc_(&t, 11, 10, "0-3", "LOCAL_RANK=0\0");
        // srun -> bound agent (SLURM_LOCALID=0) -> worker 1 carrying the agent's record.
        proc_(&t, 20, 1, "0-3", "SLURM_LOCALID=0\0");
        proc_(
            &t,
            21,
            20,
            "4-7",
            "SLURM_LOCALID=0\0LOCAL_RANK=1\0GPU_AFFINITY_INHERITED=0-15/0-3\0",
        );
        // A process whose parent cannot be read.
        proc_(&t, 30, 999, "0-1", "LOCAL_RANK=2\0");
        assert_eq!(
            basis_of(&t, 10),
            (Basis::Parent(1, "p1".into()), Some("0-15".into()))
        );
        assert_eq!(
            basis_of(&t, 11),
            (Basis::Parent(1, "p1".into()), Some("0-15".into()))
        );
        assert_eq!(
            basis_of(&t, 20),
            (Basis::Parent(1, "p1".into()), Some("0-15".into()))
        );
        assert_eq!(
            basis_of(&t, 21),
            (Basis::Inherited(21), Some("0-15".into()))
        );
        assert_eq!(basis_of(&t, 30), (Basis::Online, None));
        assert_eq!(parse_inherited("0-15/0-3").unwrap().1.to_list(), "0-3");
        assert!(parse_inherited("junk").is_none());
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(3 << 20), "3.0 MiB");
        assert_eq!(bytes_text(3_072_000_000), "2.9 GiB");
        assert_eq!(bytes_text(200 << 30), "200 GiB");
    }
}
