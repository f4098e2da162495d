//! From a `Request` to a bound process: plan first (nothing changes unless the whole plan is valid),
//! then apply, then publish the binding for the `pthread_create` hook. Shared by the constructor and
//! the C ABI.
//!
//! # Children and `GPU_AFFINITY_INHERITED`
//! `LD_PRELOAD` is inherited, and so is the CPU mask: a worker started by a bound launcher (srun →
//! torchrun agent → workers) starts inside its parent's binding. When the constructor binds, it records
//! `GPU_AFFINITY_INHERITED=<original cpulist>/<bound cpulist>` in the environment (the mask the process
//! started with, and the binding). A child whose own mask at start equals the recorded binding treats
//! the recorded original as its starting mask, so its own rank's CPUs are planned within the parent's
//! original allowed set (the kernel lets it widen within the cgroup). A child whose mask is anything
//! else (someone narrowed it on purpose) starts from its own mask. A process with no record whose
//! mask is a launcher's own binding (see `launcher`) starts from the hard limits instead. The
//! variable is internal: users do not set it. Only the constructor records it (it runs before any other thread could read the
//! environment); an explicit `gpu_affinity_set` does not touch the environment, so children of a
//! process bound that way start from the narrowed mask.

use crate::apply;
use crate::launcher::{self, Found, Policy};
use crate::msg::Warnings;
use gpuaff_core::{AllowedFrom, CpuSet, Error, MemBind, Mode, RankPlan, Request, Result, Threads};
use std::sync::atomic::{AtomicPtr, Ordering};

pub const INHERITED_VAR: &str = "GPU_AFFINITY_INHERITED";

/// A binding in force, as the `pthread_create` hook sees it. Published once per binding and never
/// freed (a rebinding leaks the old one: a few hundred bytes), so the hook reads it lock-free.
pub struct Binding {
    pub cpus: CpuSet,
    /// The memory policy in force (after degradation).
    pub membind: MemBind,
    pub threads: Threads,
    /// What the guard does with foreign requests outside `cpus`.
    pub guard: crate::guard::Guard,
    /// GPU_AFFINITY_VERBOSE: the clamp guard reports too.
    pub verbose: bool,
    /// A thread attribute carrying `cpus`, for threads created with a NULL attribute.
    attr: Option<Box<libc::pthread_attr_t>>,
    /// `cpus` and the memory nodes as raw words, built once: the hook reads them without
    /// allocating.
    words: Box<[u64]>,
    mem_words: Box<[u64]>,
}

impl Binding {
    fn new(cpus: CpuSet, mems: CpuSet, membind: MemBind, req: &Request) -> Binding {
        let words: Box<[u64]> = cpus.words().into_owned().into();
        let mem_words: Box<[u64]> = mems.words().into_owned().into();
        let attr = affinity_attr(&words);
        Binding {
            cpus,
            membind,
            threads: req.threads,
            guard: crate::guard::Guard::DEFAULT,
            verbose: req.verbose,
            attr,
            words,
            mem_words,
        }
    }

    /// `cpus` as raw words (bit i of word w is CPU 64*w+i).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The memory nodes as raw words (bit i of word w is node 64*w+i).
    pub fn mem_words(&self) -> &[u64] {
        &self.mem_words
    }
    pub fn attr(&self) -> Option<*const libc::pthread_attr_t> {
        self.attr.as_deref().map(|a| a as *const _)
    }
}

fn affinity_attr(words: &[u64]) -> Option<Box<libc::pthread_attr_t>> {
    if words.is_empty() {
        return None;
    }
    // SAFETY: a zeroed pthread_attr_t is initialised by pthread_attr_init before any other use; the
    // affinity call copies the mask.
    unsafe {
        let mut attr: Box<libc::pthread_attr_t> = Box::new(std::mem::zeroed());
        if libc::pthread_attr_init(&mut *attr) != 0 {
            return None;
        }
        let rc = libc::pthread_attr_setaffinity_np(
            &mut *attr,
            std::mem::size_of_val(words),
            words.as_ptr().cast::<libc::cpu_set_t>(),
        );
        if rc != 0 {
            libc::pthread_attr_destroy(&mut *attr);
            return None;
        }
        Some(attr)
    }
}

static ACTIVE: AtomicPtr<Binding> = AtomicPtr::new(std::ptr::null_mut());

/// The binding in force, if any. Lock-free (fork-safe).
pub fn active() -> Option<&'static Binding> {
    let p = ACTIVE.load(Ordering::Acquire);
    // SAFETY: published bindings are leaked, never freed.
    unsafe { p.as_ref() }
}

fn publish(b: Binding) {
    crate::guard::register_atfork();
    ACTIVE.store(Box::into_raw(Box::new(b)), Ordering::Release);
}

/// Parses `GPU_AFFINITY_INHERITED`: `<original>/<bound>`.
pub fn parse_inherited(value: &str) -> Option<(CpuSet, CpuSet)> {
    let (orig, bound) = value.split_once('/')?;
    let orig = CpuSet::parse_list(orig).ok()?;
    let bound = CpuSet::parse_list(bound).ok()?;
    (!orig.is_empty() && !bound.is_empty()).then_some((orig, bound))
}

/// Where a process's plan starts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Start {
    /// From this mask (the process's own at start, or the one a gpuaff parent recorded).
    Mask(CpuSet),
    /// From the hard limits (online CPUs and the cgroup cpuset, within the launcher's CPUs for the
    /// whole step): the mask at start was a launcher's GPU-unaware binding, replaced (see `launcher`).
    HardLimits { launcher_mask: CpuSet, found: Found },
}

/// Set once, leaked. An atomic rather than a OnceLock: a fork while another thread initialised it
/// would leave the child waiting on a lock no thread of its own holds.
static START: AtomicPtr<Start> = AtomicPtr::new(std::ptr::null_mut());

fn start_recorded() -> Option<&'static Start> {
    // SAFETY: a published start is leaked, never freed.
    unsafe { START.load(Ordering::Acquire).as_ref() }
}

/// Records the start unless one is already recorded; returns the one in force.
fn record_start(s: Start) -> Start {
    let new = Box::into_raw(Box::new(s));
    match START.compare_exchange(
        std::ptr::null_mut(),
        new,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: just published; never freed.
        Ok(_) => unsafe { (*new).clone() },
        Err(old) => {
            // SAFETY: `new` was never published; `old` is a leaked start.
            unsafe {
                drop(Box::from_raw(new));
                (*old).clone()
            }
        }
    }
}

/// Where the process starts from, and the masks gpuaff considers its own (a thread with any other
/// mask was narrowed by someone else and is left alone). The start is decided once per process.
fn starting_masks() -> Result<(Start, Vec<CpuSet>)> {
    // SAFETY: getpid cannot fail.
    let main = unsafe { libc::getpid() };
    let current = apply::get_affinity(main)
        .or_else(|_| apply::get_affinity(0))
        .map_err(|e| {
            Error::os(
                e,
                format!("sched_getaffinity failed: {}", apply::os_text(e)),
            )
        })?;
    let mut ours = Vec::new();
    let start = match start_recorded() {
        Some(s) => s.clone(),
        None => {
            let env = crate::preload::env_lookup;
            let inherited = env(INHERITED_VAR).map(|v| parse_inherited(&v));
            let start = match inherited {
                Some(Some((orig, bound))) if bound == current => {
                    ours.push(bound);
                    Start::Mask(orig)
                }
                // A gpuaff parent already dealt with the launcher (see `launcher`).
                Some(_) => Start::Mask(current.clone()),
                None => match launcher::detect(&env, &current) {
                    Some(found) if launcher::policy(&env)? == Policy::Replace => {
                        Start::HardLimits {
                            launcher_mask: current.clone(),
                            found,
                        }
                    }
                    _ => Start::Mask(current.clone()),
                },
            };
            record_start(start)
        }
    };
    match &start {
        Start::Mask(m) => ours.push(m.clone()),
        Start::HardLimits { launcher_mask, .. } => ours.push(launcher_mask.clone()),
    }
    ours.push(current);
    if let Some(b) = active() {
        ours.push(b.cpus.clone());
    }
    Ok((start, ours))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Plan and report; change nothing (also what GPU_AFFINITY_DRY_RUN does).
    PlanOnly,
    /// Plan and bind (unless the request says dry run).
    Apply,
}

/// What a binding did; warnings are for the caller to print.
pub struct Outcome {
    pub plan: RankPlan,
    pub applied: bool,
    pub membind: MemBind,
    pub warnings: Warnings,
    /// Notes for verbose mode only (a launcher's binding replaced).
    pub notes: Vec<String>,
    /// The mask the process started from (for GPU_AFFINITY_INHERITED): the hard limits when a
    /// launcher's binding was replaced.
    pub original: CpuSet,
}

/// Where the allowed set starts (see the README): on this machine, the process's original mask (or, when
/// that was a launcher's binding, the launcher's CPUs for the whole step where it says, else the
/// online CPUs, narrowed by the cgroup cpuset either way); under a foreign
/// fsroot (a snapshot), the snapshot's cgroup cpuset or its online CPUs — the plan is the snapshot's,
/// and CPUs this machine lacks then fail at apply time with a clear message. A fixture tree whose
/// CPUs all exist on this machine counts as this machine, so that tests see what a real node does.
fn allowed_from(req: &Request, start: &Start) -> AllowedFrom {
    if !behaves_like_this_machine(&req.fsroot) {
        return AllowedFrom::Snapshot;
    }
    match start {
        Start::Mask(m) => AllowedFrom::Process(m.clone()),
        Start::HardLimits { found, .. } => match &found.within {
            Some(step) => AllowedFrom::Process(step.clone()),
            None => AllowedFrom::Snapshot,
        },
    }
}

/// True for `/`, and for a tree whose online CPUs are all online here.
fn behaves_like_this_machine(fsroot: &std::path::Path) -> bool {
    if fsroot == std::path::Path::new("/") {
        return true;
    }
    let online = |root: &std::path::Path| {
        gpuaff_core::Fs::new(root)
            .read_list("sys/devices/system/cpu/online")
            .ok()
            .flatten()
    };
    match (online(fsroot), online(std::path::Path::new("/"))) {
        (Some(tree), Some(here)) => !tree.is_empty() && tree.is_subset(&here),
        _ => false,
    }
}

/// Plans `req` and, for `Effect::Apply` without dry run, binds every thread of the process and sets the
/// memory policy. On error nothing was changed (except, in strict mode, a refused memory policy, where
/// the calling thread's CPU mask is restored before returning).
pub fn bind(req: &Request, effect: Effect) -> Result<Outcome> {
    let mut warnings = Warnings::default();
    let guard = crate::guard::Guard::from_env()?;
    let (start, ours) = starting_masks()?;
    let from = allowed_from(req, &start);
    // A plan handed down by `gpuaff run` applies only from a plain starting mask, key matched.
    let handed = match start {
        Start::Mask(_) => crate::handoff::take(req, &from),
        Start::HardLimits { .. } => None,
    };
    let (plan, allowed) = match handed {
        Some(h) => {
            warnings.extend(h.warnings);
            (h.plan, h.allowed)
        }
        None => {
            // Reads only what this mode needs; re-plans on the whole machine when that cannot vouch.
            let session = gpuaff_core::session::plan_for_process(req, from)?;
            warnings.extend(session.warnings.iter().cloned());
            (session.plan, session.machine.topology.allowed)
        }
    };
    let mut notes = Vec::new();
    let original = match start {
        Start::Mask(m) => m,
        Start::HardLimits {
            launcher_mask,
            found,
        } => {
            if launcher_mask != allowed {
                notes.push(format!(
                "{} bound this process to CPUs {launcher_mask} ({}), which knows nothing of GPUs; \
                 planning within CPUs {} instead ({}=keep keeps the launcher's binding)",
                    found.launcher,
                    found.mark,
                    allowed,
                    launcher::LAUNCHER_BINDING_VAR
                ));
            }
            allowed
        }
    };
    if req.strict && plan.fallback {
        return Err(Error::unplannable(format!(
            "GPU {} ({}) has no allowed CPU of its own: {}",
            plan.gpu,
            plan.pci_bus_id,
            plan.notes.join("; ")
        )));
    }
    warnings.extend(plan.notes.iter().cloned());
    let mut outcome = Outcome {
        plan,
        applied: false,
        membind: MemBind::None,
        warnings,
        notes,
        original,
    };
    if effect == Effect::PlanOnly || req.dry_run || outcome.plan.cpus.is_empty() {
        outcome.membind = if outcome.plan.cpus.is_empty() {
            MemBind::None
        } else {
            req.membind
        };
        return Ok(outcome);
    }
    let cpus = outcome.plan.cpus.clone();
    let mems = outcome.plan.mems.clone();
    // SAFETY: no arguments; reads the calling thread's own mask.
    let before = apply::get_affinity(0).ok();
    let membind = apply::apply_membind(req.membind, &mems, &mut outcome.warnings);
    if req.strict && membind != req.membind {
        let _ = apply::set_mempolicy(MemBind::None, &mems);
        return Err(Error::os(
            libc::EPERM,
            format!(
                "the kernel refused memory policy {} on nodes {mems}",
                req.membind.name()
            ),
        ));
    }
    let mut binding = Binding::new(cpus.clone(), mems.clone(), membind, req);
    binding.guard = guard;
    let mut thread_warnings = Warnings::default();
    let result = apply::bind_threads(&cpus, &ours, || publish(binding), &mut thread_warnings);
    if let Err(e) = result {
        if membind != MemBind::None {
            let _ = apply::set_mempolicy(MemBind::None, &mems);
        }
        return Err(e);
    }
    let mismatch = !thread_warnings.is_empty();
    if req.strict && mismatch {
        if let Some(b) = before {
            let _ = apply::set_affinity(0, &b);
        }
        return Err(Error::os(
            libc::EIO,
            format!(
                "not every thread could be bound: {}",
                thread_warnings.into_vec().join("; ")
            ),
        ));
    }
    outcome.warnings.extend(thread_warnings.into_vec());
    outcome.applied = true;
    outcome.membind = membind;
    Ok(outcome)
}

/// The verbose line (without the `gpuaff: ` prefix). Exact format, which README documents:
///
/// ```text
/// rank R -> GPU G (BDF, node N): CPUs LIST, mems LIST, mode MODE[, membind POLICY][, dry run] (pid PID)
/// rank R -> GPU G (BDF, node N): mode none, nothing bound (pid PID)
/// ```
///
/// R is the local rank, G the CUDA index of the GPU among the visible ones, BDF its PCI address, N its
/// NUMA node (`?` when unknown), LIST a cpulist (`56-63,184-191`; `none` for no memory node), MODE the
/// mode name, POLICY the memory policy in force when it is not `none`. `dry run` appears when nothing
/// was bound because GPU_AFFINITY_DRY_RUN=1 (or the call was plan-only).
pub fn verbose_line(o: &Outcome, mode: Mode, pid: u32) -> String {
    let p = &o.plan;
    let node = p
        .numa_node
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    let head = format!(
        "rank {} -> GPU {} ({}, node {node}): ",
        p.rank, p.gpu, p.pci_bus_id
    );
    if p.cpus.is_empty() {
        return format!("{head}mode none, nothing bound (pid {pid})");
    }
    let mems = if p.mems.is_empty() {
        "none".to_string()
    } else {
        p.mems.to_list()
    };
    let mut s = format!(
        "{head}CPUs {}, mems {mems}, mode {}",
        p.cpus.to_list(),
        mode.name()
    );
    if o.membind != MemBind::None {
        s.push_str(", membind ");
        s.push_str(o.membind.name());
    }
    if !o.applied {
        s.push_str(", dry run");
    }
    s.push_str(&format!(" (pid {pid})"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(cpus: &str, applied: bool, membind: MemBind) -> Outcome {
        Outcome {
            plan: RankPlan {
                rank: 1,
                gpu: 1,
                gpu_index: 1,
                pci_bus_id: "0000:0f:00.0".into(),
                numa_node: Some(3),
                cpus: CpuSet::parse_list(cpus).unwrap(),
                mems: CpuSet::single(3),
                notes: vec![],
                fallback: false,
            },
            applied,
            membind,
            warnings: Warnings::default(),
            notes: vec![],
            original: CpuSet::range(0, 255),
        }
    }

    #[test]
    fn verbose_line_has_the_documented_shape() {
        let o = outcome("56-63,184-191", true, MemBind::None);
        assert_eq!(
            verbose_line(&o, Mode::SocketUniqueContiguous, 1234),
            "rank 1 -> GPU 1 (0000:0f:00.0, node 3): CPUs 56-63,184-191, mems 3, mode socket_unique_contiguous (pid 1234)"
        );
        let o = outcome("56-63", false, MemBind::Bind);
        assert_eq!(
            verbose_line(&o, Mode::Node, 7),
            "rank 1 -> GPU 1 (0000:0f:00.0, node 3): CPUs 56-63, mems 3, mode node, membind bind, dry run (pid 7)"
        );
        let o = outcome("", true, MemBind::None);
        assert_eq!(
            verbose_line(&o, Mode::None, 7),
            "rank 1 -> GPU 1 (0000:0f:00.0, node 3): mode none, nothing bound (pid 7)"
        );
    }

    #[test]
    fn inherited_record_parses_or_is_ignored() {
        let (o, b) = parse_inherited("0-15/4-7").unwrap();
        assert_eq!(o, CpuSet::range(0, 15));
        assert_eq!(b, CpuSet::range(4, 7));
        for bad in ["", "0-3", "/0", "0/", "x/1", "0-3/4/5"] {
            assert!(parse_inherited(bad).is_none(), "{bad}");
        }
    }
}
