//! The planner: one small pure function per mode over (topology, GPUs, options) → per-rank CPU sets.
//! Algorithms, worked examples and deliberate differences: docs/MODES.md.
//!
//! Layout: this file resolves which GPU a rank uses, the GPU's node and its "home" CPUs (with the
//! fallbacks), then hands plain core lists to `nvidia` (gpu_affinity.py family) or `torch`
//! (torch.numa.binding family), whose functions know nothing about sysfs or GPUs.

mod mode;
mod nvidia;
#[cfg(test)]
pub(crate) mod tests;
mod torch;

pub use mode::{need, need_for, Cores, Family, Mode, Need, NeedScope};

use crate::cpuset::{CpuSet, IdTable};
use crate::error::Error;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    pub mode: Mode,
    pub cores: Cores,
    pub balanced: bool,
    /// Processes on this node; None = the number of visible GPUs.
    pub nproc: Option<usize>,
    /// `GPU_AFFINITY_MAP`: one CPU list per local rank (mode `map`).
    pub map: Option<Vec<CpuSet>>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            mode: Mode::SocketUniqueContiguous,
            cores: Cores::AllLogical,
            balanced: true,
            nproc: None,
            map: None,
        }
    }
}

/// What one local rank gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankPlan {
    pub rank: usize,
    /// Position among the visible GPUs (CUDA index).
    pub gpu: usize,
    /// Index into the machine's GPU list (PCI order / NVML index).
    pub gpu_index: usize,
    pub pci_bus_id: String,
    /// The GPU's NUMA node (PCI numa_node, or the node holding its local CPUs when that is -1).
    pub numa_node: Option<u32>,
    /// The CPUs to bind to; never empty unless the mode is `none`, whose plan is an empty set
    /// meaning: leave the process (its threads and memory policy) exactly as it is.
    pub cpus: CpuSet,
    /// NUMA node ids for the memory policy: the nodes of `cpus` (never a CPU-less node by accident).
    pub mems: CpuSet,
    /// Deliberate differences from the reference that applied, one line each (printed as warnings).
    pub notes: Vec<String>,
    /// True when `cpus` are not the GPU's own CPUs (the allowed set excluded them and the plan fell
    /// back to the GPU's package or to every allowed CPU); strict callers refuse such a plan.
    pub fallback: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub options: PlanOptions,
    /// One entry per local rank, 0..nproc.
    pub ranks: Vec<Result<RankPlan, Error>>,
    /// Plan-wide notes (e.g. visible-GPU warnings).
    pub warnings: Vec<String>,
}

use crate::gpu::{Gpu, Visible};
use crate::topology::Topology;

/// Plans every local rank 0..nproc (rank r uses visible GPU r), as `gpuaff plan` shows them.
pub fn plan_all(topo: &Topology, gpus: &[Gpu], visible: &Visible, opts: &PlanOptions) -> Plan {
    let nproc = opts.nproc.unwrap_or(visible.gpus.len());
    let mut warnings = visible.warnings.clone();
    if visible.gpus.is_empty() && opts.nproc.is_none() {
        warnings.push("no GPU visible: nothing to plan".to_string());
    }
    // One context for every rank: the indexes and each GPU's home CPUs are computed once.
    let ctx = Ctx::new(topo, gpus);
    Plan {
        options: opts.clone(),
        ranks: (0..nproc)
            .map(|r| plan_rank_in(&ctx, visible, opts, r, None))
            .collect(),
        warnings,
    }
}

/// Plans one rank; `gpu` overrides which visible GPU it uses (GPU_AFFINITY_GPU).
///
/// Rank r uses visible GPU r; a process that sees exactly one GPU uses it whatever its rank. When
/// such a process is one of several (`nproc` > 1, e.g. Slurm `--gpus-per-task=1`), the plan is made
/// as if every GPU of the machine took part, so that the unique and exclusive modes still split each
/// node between its GPUs.
pub fn plan_rank(
    topo: &Topology,
    gpus: &[Gpu],
    visible: &Visible,
    opts: &PlanOptions,
    rank: usize,
    gpu: Option<usize>,
) -> Result<RankPlan, Error> {
    plan_rank_in(&Ctx::new(topo, gpus), visible, opts, rank, gpu)
}

/// The visible GPU rank `rank` uses, as its position among the visible ones: `gpu` when given
/// (GPU_AFFINITY_GPU), the only one when the process sees exactly one, else the rank's.
pub fn visible_position(visible: &Visible, rank: usize, gpu: Option<usize>) -> usize {
    match gpu {
        Some(g) => g,
        None if visible.gpus.len() == 1 => 0,
        None => rank,
    }
}

fn plan_rank_in(
    ctx: &Ctx,
    visible: &Visible,
    opts: &PlanOptions,
    rank: usize,
    gpu: Option<usize>,
) -> Result<RankPlan, Error> {
    let (topo, gpus) = (ctx.topo, ctx.gpus);
    if visible.gpus.is_empty() {
        return Err(Error::no_device(
            "no GPU visible (none present, or CUDA_VISIBLE_DEVICES selects none)",
        ));
    }
    let single = visible.gpus.len() == 1;
    let nproc = opts.nproc.unwrap_or(visible.gpus.len());
    if nproc == 0 {
        return Err(Error::invalid(
            "the number of processes per node is 0 (expected at least 1)",
        ));
    }
    if opts.nproc.is_some() && rank >= nproc {
        return Err(Error::invalid(format!(
            "local rank {rank} is not below the number of processes per node ({nproc})"
        )));
    }
    let cuda = visible_position(visible, rank, gpu);
    let Some(&gpu_index) = visible.gpus.get(cuda) else {
        return Err(Error::no_device(format!(
            "rank {rank} would use visible GPU {cuda}, but {} GPU(s) are visible",
            visible.gpus.len()
        )));
    };
    let Some(me) = gpus.get(gpu_index) else {
        return Err(Error::invalid(format!(
            "visible GPU {cuda} is machine GPU {gpu_index}, but the machine has {} GPU(s)",
            gpus.len()
        )));
    };
    if let Some(&bad) = visible.gpus.iter().find(|&&i| i >= gpus.len()) {
        return Err(Error::invalid(format!(
            "a visible GPU is machine GPU {bad}, but the machine has {} GPU(s)",
            gpus.len()
        )));
    }

    let mut notes = Vec::new();
    // The GPUs taking part, as machine indices, and this rank's position among them.
    let (pool, pos): (Vec<usize>, usize) = if single && nproc > 1 && gpus.len() > 1 {
        notes.push(format!(
            "this process sees only GPU {} of {nproc} processes: planning as if all {} GPUs of the machine took part",
            gpu_label(me),
            gpus.len()
        ));
        ((0..gpus.len()).collect(), gpu_index)
    } else {
        (visible.gpus.clone(), cuda)
    };

    let resolved = ctx.resolved(gpu_index);
    let mut plan = RankPlan {
        rank,
        gpu: cuda,
        gpu_index,
        pci_bus_id: me.pci_bus_id.clone(),
        numa_node: resolved.nodes.first().and_then(|n| u32::try_from(n).ok()),
        cpus: CpuSet::new(),
        mems: CpuSet::new(),
        notes,
        fallback: false,
    };

    let cpus = match opts.mode.family() {
        Family::None => return Ok(plan),
        Family::Map => plan_map(topo, opts, rank)?,
        Family::Nvidia => plan_nvidia(ctx, opts, nproc, &pool, pos, &mut plan)?,
        Family::Torch => plan_torch(ctx, opts, me, gpu_index, &pool, pos, &mut plan)?,
    };
    let cpus = match opts.cores {
        Cores::AllLogical => cpus,
        // The lowest allowed sibling of each core, never one chosen by hash order.
        Cores::SingleLogical => ctx
            .cores_of(&cpus)
            .iter()
            .filter_map(|c| c.first())
            .collect(),
    };
    if cpus.is_empty() {
        return Err(Error::unplannable(format!(
            "mode {} leaves local rank {rank} (GPU {}) no CPU",
            opts.mode.name(),
            gpu_label(me)
        )));
    }
    plan.mems = ctx.nodes_of(&cpus);
    plan.cpus = cpus;
    Ok(plan)
}

/// `map`: the rank's list of `GPU_AFFINITY_MAP`, which must lie within the allowed set.
fn plan_map(topo: &Topology, opts: &PlanOptions, rank: usize) -> Result<CpuSet, Error> {
    let map = opts.map.as_deref().unwrap_or(&[]);
    let Some(set) = map.get(rank) else {
        return Err(Error::invalid(format!(
            "GPU_AFFINITY_MAP has {} CPU list(s), none for local rank {rank}",
            map.len()
        )));
    };
    if set.is_empty() {
        return Err(Error::invalid(format!(
            "GPU_AFFINITY_MAP gives local rank {rank} an empty CPU list"
        )));
    }
    let outside = set.difference(&topo.allowed);
    if !outside.is_empty() {
        return Err(Error::invalid(format!(
            "GPU_AFFINITY_MAP gives local rank {rank} CPUs {outside} that this process may not use (allowed: {})",
            topo.allowed
        )));
    }
    Ok(set.clone())
}

/// NVIDIA family: the first `nproc` GPUs of the pool take part (and this rank's GPU, when it is
/// beyond them); `nvidia::choose` splits each home's cores between the GPUs that share it.
fn plan_nvidia(
    ctx: &Ctx,
    opts: &PlanOptions,
    nproc: usize,
    pool: &[usize],
    pos: usize,
    plan: &mut RankPlan,
) -> Result<CpuSet, Error> {
    let limit = nproc.min(pool.len());
    let mut members: Vec<usize> = (0..limit).collect();
    if pos >= limit {
        members.push(pos);
    }
    let machine: Vec<usize> = members.iter().map(|&p| pool[p]).collect();
    let mut me_at = 0;
    for (i, (&p, &gi)) in members.iter().zip(&machine).enumerate() {
        let home = &ctx.nvidia(gi)?.home;
        if p == pos {
            me_at = i;
            plan.notes.extend(home.notes.iter().cloned());
            plan.fallback = home.fallback;
        }
    }
    let parts = ctx.participants(machine)?;
    let chosen = nvidia::choose(opts.mode, opts.balanced, &parts, me_at, &mut plan.notes);
    Ok(chosen.iter().collect())
}

/// PyTorch family: the GPU's node (or package) CPUs; `exclusive` and `core-complex` split them
/// between the pool's GPUs on the same node(s), whatever `nproc` is.
fn plan_torch(
    ctx: &Ctx,
    opts: &PlanOptions,
    me: &Gpu,
    gpu_index: usize,
    pool: &[usize],
    pos: usize,
    plan: &mut RankPlan,
) -> Result<CpuSet, Error> {
    let resolved = ctx.resolved(gpu_index);
    plan.notes.extend(resolved.notes.iter().cloned());
    let home = ctx.torch_home(me, resolved, opts.mode == Mode::Package)?;
    plan.notes.extend(home.notes);
    plan.fallback = home.fallback;
    let mut k = 0;
    let mut on_node = 0;
    for (p, &gi) in pool.iter().enumerate() {
        if ctx.resolved(gi).nodes == resolved.nodes {
            if p < pos {
                k += 1;
            }
            on_node += 1;
        }
    }
    let node_name = node_label(&resolved.nodes);
    Ok(match opts.mode {
        Mode::Exclusive => {
            let cores = ctx.cores_shared(&home.cpus);
            let run = torch::exclusive(&cores, k, on_node, &node_name, &mut plan.notes);
            run.iter().collect()
        }
        Mode::CoreComplex => {
            let groups = ctx.complexes_of(&home.cpus);
            torch::core_complex(&groups, &home.cpus, k, &node_name, &mut plan.notes)
        }
        _ => home.cpus,
    })
}

/// "1 core", "3 cores".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn gpu_label(g: &Gpu) -> String {
    if g.pci_bus_id.is_empty() {
        format!("{}", g.index)
    } else {
        g.pci_bus_id.clone()
    }
}

fn node_label(nodes: &CpuSet) -> String {
    if nodes.len() == 1 {
        format!("node {nodes}")
    } else {
        format!("nodes {nodes}")
    }
}

/// A GPU's node(s) for CPU binding, with the note saying why when it is not its PCI `numa_node`.
#[derive(Default)]
struct Resolved {
    nodes: CpuSet,
    notes: Vec<String>,
}

/// A GPU's own CPUs within the allowed set, or the fallback when the allowed set excludes them.
#[derive(Clone)]
struct Home {
    cpus: CpuSet,
    fallback: bool,
    notes: Vec<String>,
}

/// NVIDIA family: a GPU's home and its cores.
struct NvidiaHome {
    home: Home,
    cores: nvidia::CoreList,
}

/// CPU id → index of the one group (core or complex) holding it, when the groups are disjoint.
struct Index {
    of: IdTable,
    /// Per group: its lowest CPU (the sort key of disjoint cores).
    first: Vec<usize>,
}

impl Index {
    /// None when two groups share a CPU: then the groups are walked one by one.
    fn new(groups: &[&CpuSet]) -> Option<Index> {
        let len = groups
            .iter()
            .filter_map(|g| g.last())
            .max()
            .map_or(0, |l| l + 1);
        let mut of = IdTable::new(len);
        let mut first = Vec::with_capacity(groups.len());
        for (i, g) in groups.iter().enumerate() {
            let mut lowest = usize::MAX;
            for cpu in g.iter() {
                // Another group's already: shared CPUs.
                if of.get_or_set(cpu, i)? != i {
                    return None;
                }
                lowest = lowest.min(cpu);
            }
            first.push(lowest);
        }
        Some(Index { of, first })
    }

    fn group(&self, cpu: usize) -> Option<usize> {
        self.of.get(cpu)
    }
}

/// What planning needs of a machine, built once per `plan_all` (or `plan_rank`) and shared by its
/// ranks; per-GPU results are computed on first use.
struct Ctx<'a> {
    topo: &'a Topology,
    gpus: &'a [Gpu],
    /// (id, online CPUs), sorted by id; CPU-less nodes included. One node 0 holding every online
    /// CPU when the machine reports no NUMA information.
    nodes: Vec<(u32, CpuSet)>,
    cores: OnceCell<Option<Index>>,
    complexes: OnceCell<Option<Index>>,
    /// Per machine GPU.
    resolved: Vec<OnceCell<Resolved>>,
    nvidia: Vec<OnceCell<Result<NvidiaHome, Error>>>,
    /// `cores_of` of the sets asked before: GPUs on one node share their home CPUs.
    core_lists: RefCell<HashMap<CpuSet, Rc<Vec<CpuSet>>>>,
    /// The NVIDIA participants last planned, by machine GPU index.
    participants: RefCell<Option<(Vec<usize>, Rc<nvidia::Participants>)>>,
    /// Answer for a GPU index out of range (callers check first).
    unresolved: Resolved,
}

impl<'a> Ctx<'a> {
    fn new(topo: &'a Topology, gpus: &'a [Gpu]) -> Self {
        let mut nodes: Vec<(u32, CpuSet)> = if topo.nodes.is_empty() {
            vec![(0, topo.online.clone())]
        } else {
            topo.nodes.iter().map(|n| (n.id, n.cpus.clone())).collect()
        };
        nodes.sort_by_key(|n| n.0);
        Ctx {
            topo,
            gpus,
            nodes,
            cores: OnceCell::new(),
            complexes: OnceCell::new(),
            resolved: gpus.iter().map(|_| OnceCell::new()).collect(),
            nvidia: gpus.iter().map(|_| OnceCell::new()).collect(),
            core_lists: RefCell::new(HashMap::new()),
            participants: RefCell::new(None),
            unresolved: Resolved::default(),
        }
    }

    fn core_index(&self) -> Option<&Index> {
        self.cores
            .get_or_init(|| {
                let groups: Vec<&CpuSet> = self.topo.cores.iter().map(|c| &c.cpus).collect();
                Index::new(&groups)
            })
            .as_ref()
    }

    fn complex_index(&self) -> Option<&Index> {
        self.complexes
            .get_or_init(|| Index::new(&self.topo.complexes.iter().collect::<Vec<_>>()))
            .as_ref()
    }

    /// Machine GPU `gi`'s node(s).
    fn resolved(&self, gi: usize) -> &Resolved {
        match (self.resolved.get(gi), self.gpus.get(gi)) {
            (Some(cell), Some(g)) => cell.get_or_init(|| self.resolve_nodes(g)),
            _ => &self.unresolved,
        }
    }

    /// Machine GPU `gi`'s NVIDIA-family home and its cores.
    fn nvidia(&self, gi: usize) -> crate::Result<&NvidiaHome> {
        let (Some(cell), Some(g)) = (self.nvidia.get(gi), self.gpus.get(gi)) else {
            return Err(Error::invalid(format!(
                "machine GPU {gi} does not exist (the machine has {} GPU(s))",
                self.gpus.len()
            )));
        };
        cell.get_or_init(|| {
            let home = self.nvidia_home(g)?;
            let counted = self
                .topo
                .counted
                .iter()
                .any(|(n, _)| n.intersects(&home.cpus));
            let cores = if counted {
                nvidia::CoreList::Counted(self.count_cores(&home.cpus)?)
            } else {
                nvidia::CoreList::Listed(self.cores_shared(&home.cpus))
            };
            Ok(NvidiaHome { home, cores })
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// `cores_of(set).len()` where `set` holds counted nodes: each counted node wholly in `set`
    /// adds its count, the rest is listed. An error (unplannable: the caller plans again on the
    /// whole machine) when `set` holds part of a counted node, or one whose count could not be
    /// vouched for.
    fn count_cores(&self, set: &CpuSet) -> crate::Result<usize> {
        let mut len = 0;
        let mut rest = set.clone();
        for (node, count) in &self.topo.counted {
            if !node.intersects(set) {
                continue;
            }
            match count {
                Some(n) if node.is_subset(set) => {
                    len += n;
                    rest = rest.difference(node);
                }
                _ => {
                    return Err(Error::unplannable(format!(
                        "the cores of CPUs {node} were counted, not read, and cannot be counted \
                         within CPUs {set}"
                    )))
                }
            }
        }
        if !rest.is_empty() {
            len += self.cores_shared(&rest).len();
        }
        Ok(len)
    }

    /// `cores_of(set)`, computed once per set.
    fn cores_shared(&self, set: &CpuSet) -> Rc<Vec<CpuSet>> {
        if let Some(cores) = self.core_lists.borrow().get(set) {
            return Rc::clone(cores);
        }
        let cores = Rc::new(self.cores_of(set));
        self.core_lists
            .borrow_mut()
            .insert(set.clone(), Rc::clone(&cores));
        cores
    }

    /// The NVIDIA participants `machine` (machine GPU indices in participant order), kept for the
    /// next rank, which in `plan_all` has the same ones.
    fn participants(&self, machine: Vec<usize>) -> crate::Result<Rc<nvidia::Participants>> {
        if let Some((key, parts)) = self.participants.borrow().as_ref() {
            if *key == machine {
                return Ok(Rc::clone(parts));
            }
        }
        let homes = machine
            .iter()
            .map(|&gi| self.nvidia(gi))
            .collect::<crate::Result<Vec<_>>>()?;
        let lists = homes.iter().map(|n| n.cores.clone()).collect();
        let sets: Vec<&CpuSet> = homes.iter().map(|n| &n.home.cpus).collect();
        let parts = Rc::new(nvidia::Participants::new(lists, &sets));
        *self.participants.borrow_mut() = Some((machine, Rc::clone(&parts)));
        Ok(parts)
    }

    fn node_cpus(&self, id: u32) -> Option<&CpuSet> {
        self.nodes.iter().find(|n| n.0 == id).map(|n| &n.1)
    }

    /// Ids of the nodes with CPUs in `cpus`; never a CPU-less node.
    fn nodes_of(&self, cpus: &CpuSet) -> CpuSet {
        self.nodes
            .iter()
            .filter(|n| n.1.intersects(cpus))
            .map(|n| n.0 as usize)
            .collect()
    }

    fn cpus_of_nodes(&self, ids: &CpuSet) -> CpuSet {
        self.nodes
            .iter()
            .filter(|n| ids.contains(n.0 as usize))
            .map(|n| &n.1)
            .collect()
    }

    fn resolve_nodes(&self, g: &Gpu) -> Resolved {
        if let Some(n) = g.numa_node {
            if self.node_cpus(n).is_some_and(|c| !c.is_empty()) {
                return Resolved {
                    nodes: CpuSet::single(n as usize),
                    notes: Vec::new(),
                };
            }
        }
        let nodes = self.nodes_of(&g.local_cpus);
        let why = match g.numa_node {
            None => "has no NUMA node (numa_node -1)".to_string(),
            Some(n) if self.node_cpus(n).is_some() => format!("sits on CPU-less node {n}"),
            Some(n) => format!("names node {n}, which the machine does not have"),
        };
        let note = if nodes.is_empty() {
            format!(
                "GPU {} {why} and no known local CPUs: no node to bind to",
                gpu_label(g)
            )
        } else {
            format!(
                "GPU {} {why}: using {} that hold its local CPUs",
                gpu_label(g),
                node_label(&nodes)
            )
        };
        Resolved {
            nodes,
            notes: vec![format!("the {note}")],
        }
    }

    /// The online CPUs of every package that has CPUs in `near` (the whole machine when the
    /// topology names no package).
    fn package_cpus(&self, near: &CpuSet) -> CpuSet {
        if self.topo.packages.is_empty() {
            return self.topo.online.clone();
        }
        self.topo
            .packages
            .iter()
            .filter(|p| p.cpus.intersects(near))
            .map(|p| &p.cpus)
            .collect()
    }

    /// `own` ∩ allowed, else the allowed CPUs of the package(s) near `near`, else every allowed CPU.
    fn with_fallback(
        &self,
        own: &CpuSet,
        near: &CpuSet,
        what: impl FnOnce() -> String,
    ) -> crate::Result<Home> {
        let allowed = &self.topo.allowed;
        let cpus = own.intersection(allowed);
        if !cpus.is_empty() {
            return Ok(Home {
                cpus,
                fallback: false,
                notes: Vec::new(),
            });
        }
        // Said only when needed: formatting CPU lists costs more than planning the common case.
        let what = what();
        let pkg = self.package_cpus(near).intersection(allowed);
        let (cpus, to) = if !pkg.is_empty() {
            (pkg, "the allowed CPUs of its package")
        } else if !allowed.is_empty() {
            (allowed.clone(), "every allowed CPU")
        } else {
            return Err(Error::unplannable(format!(
                "this process may use no CPU at all (allowed set empty), so {what} cannot be bound"
            )));
        };
        Ok(Home {
            notes: vec![format!(
                "the allowed CPUs ({allowed}) exclude {what}: falling back to {to} ({cpus})"
            )],
            cpus,
            fallback: true,
        })
    }

    /// NVIDIA family: the GPU's local CPUs (its node's CPUs when unknown) within the allowed set.
    fn nvidia_home(&self, g: &Gpu) -> crate::Result<Home> {
        let mut notes = Vec::new();
        let own = if g.local_cpus.is_empty() {
            let r = self.resolve_nodes(g);
            let cpus = self.cpus_of_nodes(&r.nodes);
            notes.push(format!(
                "GPU {} has no known local CPUs: using the CPUs of its {} ({cpus})",
                gpu_label(g),
                node_label(&r.nodes)
            ));
            cpus
        } else {
            g.local_cpus.clone()
        };
        let what = || format!("the local CPUs {own} of GPU {}", gpu_label(g));
        let mut home = self.with_fallback(&own, &own, what)?;
        notes.iter_mut().for_each(|n| *n = format!("the {n}"));
        notes.append(&mut home.notes);
        home.notes = notes;
        Ok(home)
    }

    /// Torch family: the CPUs of the GPU's node (or of every node of its package) within the
    /// allowed set.
    fn torch_home(&self, g: &Gpu, r: &Resolved, package: bool) -> crate::Result<Home> {
        let node_cpus = self.cpus_of_nodes(&r.nodes);
        let near = node_cpus.union(&g.local_cpus);
        if package {
            // The union of the CPU nodes of the node's package (found through the node's CPUs).
            let pkg = self.package_cpus(&node_cpus);
            let own: CpuSet = self
                .nodes
                .iter()
                .filter(|n| n.1.intersects(&pkg))
                .map(|n| &n.1)
                .collect();
            let what = || {
                format!(
                    "the package of {} of GPU {}",
                    node_label(&r.nodes),
                    gpu_label(g)
                )
            };
            return self.with_fallback(&own, &near, what);
        }
        let what = || format!("{} of GPU {}", node_label(&r.nodes), gpu_label(g));
        self.with_fallback(&node_cpus, &near, what)
    }

    /// The cores of `set`: each core's CPUs within `set`, ordered by the core's sibling tuple. A CPU
    /// that no core lists counts as a core of its own.
    fn cores_of(&self, set: &CpuSet) -> Vec<CpuSet> {
        let Some(index) = self.core_index() else {
            return self.cores_of_walk(set);
        };
        // Disjoint cores: ordering by sibling tuple is ordering by lowest CPU.
        let mut touched = vec![false; index.first.len()];
        let mut keyed: Vec<(usize, CpuSet)> = Vec::new();
        for cpu in set.iter() {
            let Some(c) = index.group(cpu) else {
                keyed.push((cpu, CpuSet::single(cpu)));
                continue;
            };
            if let (Some(t), Some(core), Some(&first)) = (
                touched.get_mut(c),
                self.topo.cores.get(c),
                index.first.get(c),
            ) {
                if !*t {
                    *t = true;
                    keyed.push((first, core.cpus.intersection(set)));
                }
            }
        }
        keyed.sort_by_key(|k| k.0);
        keyed.into_iter().map(|k| k.1).collect()
    }

    /// `cores_of` for cores that share CPUs: every core intersected with `set`.
    fn cores_of_walk(&self, set: &CpuSet) -> Vec<CpuSet> {
        let mut keyed: Vec<(Vec<usize>, CpuSet)> = Vec::new();
        let mut seen = CpuSet::new();
        for core in &self.topo.cores {
            let part = core.cpus.intersection(set);
            if !part.is_empty() {
                seen.union_with(&part);
                keyed.push((core.cpus.iter().collect(), part));
            }
        }
        for cpu in set.difference(&seen).iter() {
            keyed.push((vec![cpu], CpuSet::single(cpu)));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.into_iter().map(|k| k.1).collect()
    }

    /// Whether `set` lies within one core (a CPU in no core being a core of its own).
    fn within_one_core(&self, set: &CpuSet) -> bool {
        let Some(index) = self.core_index() else {
            return self.cores_of_walk(set).len() <= 1;
        };
        let mut cpus = set.iter();
        let Some(first) = cpus.next() else {
            return true;
        };
        match index.group(first) {
            Some(core) => cpus.all(|cpu| index.group(cpu) == Some(core)),
            None => cpus.next().is_none(),
        }
    }

    /// `set` grouped by the core complexes (CPUs sharing the highest-level cache); CPUs in no
    /// complex form one more group.
    fn complexes_of(&self, set: &CpuSet) -> Vec<CpuSet> {
        let mut groups = match self.complex_index() {
            Some(index) => {
                let mut parts: Vec<(usize, CpuSet)> = Vec::new();
                // Complex → its part in `parts`.
                let mut slot = IdTable::new(index.first.len());
                let mut rest = CpuSet::new();
                for cpu in set.iter() {
                    let Some(c) = index.group(cpu) else {
                        rest.insert(cpu);
                        continue;
                    };
                    match slot.get_or_set(c, parts.len()) {
                        Some(p) if p == parts.len() => parts.push((c, CpuSet::single(cpu))),
                        Some(p) => {
                            if let Some(part) = parts.get_mut(p) {
                                part.1.insert(cpu);
                            }
                        }
                        None => rest.insert(cpu),
                    }
                }
                // In the order the topology lists the complexes.
                parts.sort_by_key(|p| p.0);
                let mut groups: Vec<CpuSet> = parts.into_iter().map(|p| p.1).collect();
                if !rest.is_empty() {
                    groups.push(rest);
                }
                groups
            }
            None => self.complexes_walk(set),
        };
        // "No cache shared by several cores": when every group lies within one core.
        if groups.len() > 1 && groups.iter().all(|g| self.within_one_core(g)) {
            groups.clear();
        }
        groups
    }

    /// `complexes_of`'s groups for complexes that share CPUs: every complex intersected with `set`.
    fn complexes_walk(&self, set: &CpuSet) -> Vec<CpuSet> {
        let mut groups: Vec<CpuSet> = Vec::new();
        let mut seen = CpuSet::new();
        for cx in &self.topo.complexes {
            let part = cx.intersection(set);
            if !part.is_empty() {
                seen.union_with(&part);
                groups.push(part);
            }
        }
        let rest = set.difference(&seen);
        if !rest.is_empty() {
            groups.push(rest);
        }
        groups
    }
}
