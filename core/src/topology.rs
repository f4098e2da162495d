//! `Topology`: CPUs, cores (SMT sibling sets of any width), core complexes (CPUs sharing the
//! highest-level data/unified cache), NUMA nodes (CPU-less ones too) and packages, plus the allowed set.

use crate::cpuset::CpuSet;

/// A physical core: its online SMT siblings. Keyed by its lowest CPU id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    pub cpus: CpuSet,
    /// Index into `Topology::packages`.
    pub package: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// `physical_package_id` when meaningful (not -1, and consistent with the sibling masks).
    pub os_id: Option<i64>,
    /// Online CPUs of the package.
    pub cpus: CpuSet,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: u32,
    /// Online CPUs of the node (the sysfs list may name offline or absent CPUs; they are dropped).
    /// Empty for CPU-less memory nodes (Grace GPU memory, CXL, HBM).
    pub cpus: CpuSet,
    /// SLIT distances to every node of `Topology::nodes`, in that order; empty when unknown.
    pub distances: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Online CPUs.
    pub online: CpuSet,
    /// Sorted by lowest CPU id.
    pub cores: Vec<Core>,
    /// Sorted by lowest CPU id.
    pub packages: Vec<Package>,
    /// Sorted by id; CPU-less nodes included. Empty when the machine has no NUMA information
    /// (then every CPU is treated as one node 0 by the planner).
    pub nodes: Vec<Node>,
    /// Groups of CPUs sharing the highest-level data/unified cache, sorted by lowest CPU id.
    pub complexes: Vec<CpuSet>,
    /// CPUs this process may use: its mask narrowed by the cgroup cpuset (see `machine::AllowedFrom`).
    pub allowed: CpuSet,
    /// None: complete. Some(scope): a partial topology read for a plan (`Machine::load_for`):
    /// `cores` and `complexes` hold only the groups with a CPU in the scope, and each of `cores`,
    /// `complexes`, `packages` and the node distances is empty when the plan did not need it.
    /// `online`, `nodes` (their CPUs) and `allowed` are always complete.
    pub scope: Option<CpuSet>,
}

use crate::error::{Error, Result};
use crate::machine::AllowedFrom;
use crate::sysfs::Fs;

const CPU_DIR: &str = "sys/devices/system/cpu";
const NODE_DIR: &str = "sys/devices/system/node";

/// What sysfs says about one online CPU, before any grouping. Every fact may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuFacts {
    pub id: usize,
    /// `core_cpus_list`/`thread_siblings_list` (or their masks).
    pub thread_siblings: Option<CpuSet>,
    /// `package_cpus_list`/`core_siblings_list` (or their masks).
    pub package_siblings: Option<CpuSet>,
    /// `physical_package_id`, as written (-1 on some platforms).
    pub package_id: Option<i64>,
    /// `core_id`, as written.
    pub core_id: Option<i64>,
    /// `shared_cpu_list` of the highest-level data/unified cache.
    pub llc: Option<CpuSet>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub id: u32,
    /// As sysfs lists it (may name offline or absent CPUs).
    pub cpus: CpuSet,
    /// The node's `distance` row (to every online node, by id), empty when unknown.
    pub distances: Vec<u32>,
}

/// The raw sysfs facts a `Topology` is built from; tests build it by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub online: CpuSet,
    /// One per online CPU, ascending (CPUs without a record are treated as knowing nothing).
    pub cpus: Vec<CpuFacts>,
    /// Sorted by id; empty when the machine has no `sys/devices/system/node`.
    pub nodes: Vec<NodeFacts>,
    /// None: every fact of every online CPU was read. Some: only what this asked for (CPUs without
    /// a record outside its scope were not read), and `Topology::build` makes a partial topology.
    pub partial: Option<Want>,
}

/// Which facts a load reads, and for which CPUs (see `read_facts_for`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// CPUs whose cores and complexes are read; None = every online CPU. Every CPU whose group
    /// (core, complex) holds a scope CPU is covered too: its facts come with the group.
    pub scope: Option<CpuSet>,
    /// Thread siblings (and `core_id` where compute units need it).
    pub cores: bool,
    /// Package siblings and `physical_package_id`, always for the whole machine (with propagation
    /// that costs one or two files per package).
    pub packages: bool,
    /// The highest-level data/unified cache.
    pub complexes: bool,
    /// Node `distance` rows.
    pub distances: bool,
}

impl Want {
    /// Every fact of every CPU (what `gpuaff topo` shows).
    pub fn everything() -> Want {
        Want {
            scope: None,
            cores: true,
            packages: true,
            complexes: true,
            distances: true,
        }
    }

    /// True when this reads what `everything` reads.
    pub fn is_everything(&self) -> bool {
        self.scope.is_none() && self.cores && self.packages && self.complexes && self.distances
    }
}

/// Reads the CPU and NUMA facts under the fsroot: every fact, with each shared fact read once
/// (see `read_facts_for`).
pub fn read_facts(fs: &Fs) -> Result<Facts> {
    read_facts_for(fs, &Want::everything())
}

/// Reads the facts `want` asks for. A fact that names its group is read once per group and given
/// to every CPU of the group, as sysfs defines it:
///
/// - the highest-level cache's `shared_cpu_list` S of CPU c: every CPU of S has that very cache;
/// - the package siblings (and `physical_package_id`) of c: every sibling is in c's package;
/// - the thread siblings of c: every sibling is on c's core. Their `core_id` only matters for AMD
///   compute units (Bulldozer), whose kernel lists the two integer cores of a module as thread
///   siblings with different `core_id`s. A compute-unit design is a property of the processor
///   model, the same for every core of the machine: the `core_id`s of the first core with several
///   siblings decide whether the others' are read (different ids: compute units, read them all;
///   equal: SMT, read no more).
///
/// Which cache index is the highest data/unified one is decided once per distinct set of index
/// directories; after that one `shared_cpu_list` per cache instance is read. The file form that
/// answered (`core_cpus_list`, `thread_siblings`, ...) is tried first for the next CPU.
pub fn read_facts_for(fs: &Fs, want: &Want) -> Result<Facts> {
    let online = read_online(fs)?;
    let cpus = read_cpu_facts(fs, &online, want)?;
    let nodes = read_nodes(fs, want.distances)?;
    Ok(Facts {
        partial: if want.is_everything() {
            None
        } else {
            Some(want.clone())
        },
        online,
        cpus,
        nodes,
    })
}

/// The per-CPU facts `want` asks for (see `read_facts_for`), one record per CPU read or learnt.
pub fn read_cpu_facts(fs: &Fs, online: &CpuSet, want: &Want) -> Result<Vec<CpuFacts>> {
    CpuReader::new(fs, online).read(want)
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
        nodes,
        partial: None,
    })
}

/// A file read in one of several forms, the one that answered last tried first.
struct Probe {
    /// (file name, is a `_list`): tried in this order.
    names: &'static [(&'static str, bool)],
    hit: Option<usize>,
}

impl Probe {
    const THREADS: &'static [(&'static str, bool)] = &[
        ("core_cpus_list", true),
        ("core_cpus", false),
        ("thread_siblings_list", true),
        ("thread_siblings", false),
    ];
    const PACKAGE: &'static [(&'static str, bool)] = &[
        ("package_cpus_list", true),
        ("package_cpus", false),
        ("core_siblings_list", true),
        ("core_siblings", false),
    ];
    const SHARED: &'static [(&'static str, bool)] =
        &[("shared_cpu_list", true), ("shared_cpu_map", false)];

    fn new(names: &'static [(&'static str, bool)]) -> Probe {
        Probe { names, hit: None }
    }

    fn read(&mut self, fs: &Fs, dir: &str) -> Result<Option<CpuSet>> {
        let one = |i: usize| -> Result<Option<CpuSet>> {
            let Some((name, list)) = self.names.get(i) else {
                return Ok(None);
            };
            let rel = format!("{dir}/{name}");
            if *list {
                fs.read_list(&rel)
            } else {
                fs.read_mask(&rel)
            }
        };
        if let Some(h) = self.hit {
            if let Some(s) = one(h)? {
                return Ok(Some(s));
            }
        }
        for i in 0..self.names.len() {
            if Some(i) == self.hit {
                continue;
            }
            if let Some(s) = one(i)? {
                self.hit = Some(i);
                return Ok(Some(s));
            }
        }
        Ok(None)
    }
}

/// Reads per-CPU facts once per group (see `read_facts_for`).
struct CpuReader<'a> {
    fs: &'a Fs,
    online: &'a CpuSet,
    /// By CPU id; None = nothing read or learnt about that CPU.
    recs: Vec<Option<CpuFacts>>,
    threads: Probe,
    package: Probe,
    shared: Probe,
    /// None until the first core with several siblings was seen; then whether `core_id`s differ
    /// within a core (compute units).
    compute_units: Option<bool>,
    /// Cache index names of a CPU → the index holding its highest data/unified cache.
    layouts: Vec<(Vec<String>, Option<String>)>,
}

impl<'a> CpuReader<'a> {
    fn new(fs: &'a Fs, online: &'a CpuSet) -> Self {
        let len = online.last().map_or(0, |l| l + 1);
        CpuReader {
            fs,
            online,
            recs: vec![None; len],
            threads: Probe::new(Probe::THREADS),
            package: Probe::new(Probe::PACKAGE),
            shared: Probe::new(Probe::SHARED),
            compute_units: None,
            layouts: Vec::new(),
        }
    }

    fn rec(&mut self, cpu: usize) -> Option<&mut CpuFacts> {
        let slot = self.recs.get_mut(cpu)?;
        Some(slot.get_or_insert_with(|| CpuFacts {
            id: cpu,
            ..CpuFacts::default()
        }))
    }

    /// `set` ∩ online, holding `cpu`.
    fn group(&self, set: &CpuSet, cpu: usize) -> CpuSet {
        let mut g = set.intersection(self.online);
        g.insert(cpu);
        g
    }

    fn read(mut self, want: &Want) -> Result<Vec<CpuFacts>> {
        let scope = match &want.scope {
            Some(s) => s.intersection(self.online),
            None => self.online.clone(),
        };
        if want.packages {
            let mut done = CpuSet::new();
            for cpu in self.online.iter() {
                if !done.contains(cpu) {
                    done = done.union(&self.read_package(cpu)?);
                }
            }
        }
        if want.cores && self.smt_inactive()? {
            // The kernel says no core has two online threads: every CPU is its own core, and no
            // sibling file needs reading (Grace, and machines booted with SMT off).
            for cpu in scope.iter() {
                if let Some(r) = self.rec(cpu) {
                    r.thread_siblings = Some(CpuSet::single(cpu));
                }
            }
        } else if want.cores {
            let mut done = CpuSet::new();
            for cpu in scope.iter() {
                if !done.contains(cpu) {
                    done = done.union(&self.read_core(cpu)?);
                }
            }
        }
        if want.complexes {
            let mut done = CpuSet::new();
            for cpu in scope.iter() {
                if !done.contains(cpu) {
                    done = done.union(&self.read_llc(cpu)?);
                }
            }
        }
        // Every CPU of the scope has a record, even one sysfs says nothing about.
        for cpu in scope.iter() {
            self.rec(cpu);
        }
        Ok(self.recs.into_iter().flatten().collect())
    }

    /// `cpu/smt/active` reads 0: "no physical core has two or more sibling threads online"
    /// (Documentation/ABI/testing/sysfs-devices-system-cpu). Absent (older kernels, snapshots) or
    /// anything else: false, and siblings are read as usual.
    fn smt_inactive(&self) -> Result<bool> {
        Ok(self
            .fs
            .read_str(&format!("{CPU_DIR}/smt/active"))?
            .as_deref()
            == Some("0"))
    }

    /// Reads `cpu`'s package; returns the CPUs now known.
    fn read_package(&mut self, cpu: usize) -> Result<CpuSet> {
        let t = format!("{CPU_DIR}/cpu{cpu}/topology");
        let sib = self.package.read(self.fs, &t)?;
        let id = self.fs.read_i64(&format!("{t}/physical_package_id"))?;
        let g = match &sib {
            Some(s) => self.group(s, cpu),
            None => CpuSet::single(cpu),
        };
        for d in g.iter() {
            if let Some(r) = self.rec(d) {
                r.package_siblings = sib.clone();
                r.package_id = id;
            }
        }
        Ok(g)
    }

    /// Reads `cpu`'s core; returns the CPUs now known.
    fn read_core(&mut self, cpu: usize) -> Result<CpuSet> {
        let t = format!("{CPU_DIR}/cpu{cpu}/topology");
        let sib = self.threads.read(self.fs, &t)?;
        let g = match &sib {
            Some(s) => self.group(s, cpu),
            None => CpuSet::single(cpu),
        };
        for d in g.iter() {
            if let Some(r) = self.rec(d) {
                r.thread_siblings = sib.clone();
            }
        }
        if g.len() > 1 && self.compute_units != Some(false) {
            let mut ids = Vec::with_capacity(g.len());
            for d in g.iter() {
                let id = self
                    .fs
                    .read_i64(&format!("{CPU_DIR}/cpu{d}/topology/core_id"))?;
                if let Some(r) = self.rec(d) {
                    r.core_id = id;
                }
                ids.push(id);
            }
            if self.compute_units.is_none() {
                self.compute_units = Some(ids.iter().any(|i| Some(i) != ids.first()));
            }
        }
        Ok(g)
    }

    /// Reads `cpu`'s highest-level data/unified cache; returns the CPUs now known.
    fn read_llc(&mut self, cpu: usize) -> Result<CpuSet> {
        let dir = format!("{CPU_DIR}/cpu{cpu}/cache");
        let names: Vec<String> = self
            .fs
            .list_dir(&dir)?
            .into_iter()
            .filter(|n| numbered(n, "index").is_some())
            .collect();
        let known = self
            .layouts
            .iter()
            .find(|(l, _)| *l == names)
            .map(|(_, best)| best.clone());
        let llc = match known {
            Some(None) => None,
            Some(Some(idx)) => match self.shared.read(self.fs, &format!("{dir}/{idx}"))? {
                Some(s) => Some(s),
                None => self.scan_llc(&dir, names)?,
            },
            None => self.scan_llc(&dir, names)?,
        };
        let g = match &llc {
            Some(s) => self.group(s, cpu),
            None => CpuSet::single(cpu),
        };
        for d in g.iter() {
            if let Some(r) = self.rec(d) {
                r.llc = llc.clone();
            }
        }
        Ok(g)
    }

    /// Every index's `type` and `level`: the highest data/unified one with a `shared_cpu_list`
    /// (the lowest index among equals); remembered for CPUs with the same index names.
    fn scan_llc(&mut self, dir: &str, names: Vec<String>) -> Result<Option<CpuSet>> {
        let mut best: Option<(i64, String, CpuSet)> = None;
        for name in &names {
            let idx = format!("{dir}/{name}");
            let kind = self
                .fs
                .read_str(&format!("{idx}/type"))?
                .unwrap_or_default();
            if !matches!(kind.as_str(), "Data" | "Unified") {
                continue;
            }
            let Some(level) = self.fs.read_i64(&format!("{idx}/level"))? else {
                continue;
            };
            if best.as_ref().is_some_and(|(l, _, _)| *l >= level) {
                continue;
            }
            if let Some(shared) = self.shared.read(self.fs, &idx)? {
                best = Some((level, name.clone(), shared));
            }
        }
        if !self.layouts.iter().any(|(l, _)| *l == names) {
            self.layouts
                .push((names, best.as_ref().map(|(_, n, _)| n.clone())));
        }
        Ok(best.map(|(_, _, s)| s))
    }
}

/// The online CPUs: `online`, else `present`, else the `cpuN` directories.
pub fn read_online(fs: &Fs) -> Result<CpuSet> {
    for file in ["online", "present"] {
        if let Some(set) = fs.read_list(&format!("{CPU_DIR}/{file}"))? {
            if !set.is_empty() {
                // The kernel lists only CPUs it made directories for; a claim beyond them (a corrupt
                // tree) would cost reads for every phantom CPU. One directory listing bounds it.
                let dirs: CpuSet = fs
                    .list_dir(CPU_DIR)?
                    .iter()
                    .filter_map(|n| numbered(n, "cpu"))
                    .filter(|&id| id <= crate::cpuset::MAX_ID)
                    .collect();
                let real = set.intersection(&dirs);
                return Ok(if real.is_empty() { set } else { real });
            }
        }
    }
    // Old or trimmed snapshots: every cpuN directory counts, unless its own `online` says 0.
    let mut set = CpuSet::new();
    for id in fs
        .list_dir(CPU_DIR)?
        .iter()
        .filter_map(|n| numbered(n, "cpu"))
    {
        if fs.read_i64(&format!("{CPU_DIR}/cpu{id}/online"))? != Some(0) {
            set.insert(id);
        }
    }
    if set.is_empty() {
        return Err(Error::file(
            &fs.path(CPU_DIR),
            "no online CPU: expected an `online` or `present` cpulist, or cpuN directories",
        ));
    }
    Ok(set)
}

/// `N` of `{prefix}N`.
fn numbered(name: &str, prefix: &str) -> Option<usize> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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

/// The NUMA nodes (online ones, sorted by id), with their `distance` rows when `distances`.
pub fn read_nodes(fs: &Fs, distances: bool) -> Result<Vec<NodeFacts>> {
    let Some(names) = fs.list_dir_opt(NODE_DIR)? else {
        return Ok(Vec::new());
    };
    let online = fs.read_list(&format!("{NODE_DIR}/online"))?;
    let mut ids: Vec<u32> = names
        .iter()
        .filter_map(|n| numbered(n, "node"))
        .filter_map(|n| u32::try_from(n).ok())
        .filter(|&n| online.as_ref().map_or(true, |o| o.contains(n as usize)))
        .collect();
    ids.sort_unstable();
    let mut nodes = Vec::with_capacity(ids.len());
    for id in ids {
        let dir = format!("{NODE_DIR}/node{id}");
        let cpus = fs
            .read_cpuset(&format!("{dir}/cpulist"), &format!("{dir}/cpumap"))?
            .unwrap_or_default();
        let row = if distances {
            fs.read_str(&format!("{dir}/distance"))?
        } else {
            None
        };
        let distances = match row {
            None => Vec::new(),
            Some(text) => {
                let parsed: Option<Vec<u32>> =
                    text.split_whitespace().map(|w| w.parse().ok()).collect();
                parsed.ok_or_else(|| {
                    Error::file(
                        &fs.path(&format!("{dir}/distance")),
                        format!("{text:?} is not a list of distances (expected e.g. \"10 21\")"),
                    )
                })?
            }
        };
        nodes.push(NodeFacts {
            id,
            cpus,
            distances,
        });
    }
    Ok(nodes)
}

/// `set` ∩ `online`, always holding `cpu` itself (a CPU is its own sibling even when the file forgets it).
fn own_group(set: &Option<CpuSet>, online: &CpuSet, cpu: usize) -> Option<CpuSet> {
    set.as_ref().map(|s| {
        let mut g = s.intersection(online);
        g.insert(cpu);
        g
    })
}

/// Partitions `online` into groups: each CPU, in ascending order, takes its group minus the CPUs
/// already taken (as hwloc does, so inconsistent sibling masks cannot make overlapping groups).
fn partition(online: &CpuSet, group_of: impl Fn(usize) -> CpuSet) -> Vec<CpuSet> {
    let mut taken = CpuSet::new();
    let mut groups = Vec::new();
    for cpu in online.iter() {
        if taken.contains(cpu) {
            continue;
        }
        let mut g = group_of(cpu).intersection(online).difference(&taken);
        g.insert(cpu);
        taken = taken.union(&g);
        groups.push(g);
    }
    groups
}

impl Topology {
    /// Builds the topology from raw facts; `allowed` is set to every online CPU.
    ///
    /// - Packages come from the package sibling masks (as hwloc: `physical_package_id` may be -1 or
    ///   repeat), else from `physical_package_id` when it is not -1, else one package holds every
    ///   CPU that knows neither.
    /// - Cores are the online thread siblings within the package. Siblings with different
    ///   `core_id` are split into one core each, as hwloc does for AMD compute units (Bulldozer
    ///   lists both integer cores of a module as thread siblings). A CPU without sibling
    ///   information is a core of its own.
    /// - Core complexes share the highest-level data/unified cache; CPUs without cache
    ///   information form one complex per package.
    /// - NUMA node CPU lists are narrowed to online CPUs; CPU-less nodes are kept.
    ///
    /// Partial facts (`Facts::partial`) make a partial topology (`Topology::scope`).
    pub fn build(facts: &Facts) -> Topology {
        let online = &facts.online;
        let mut index: Vec<Option<usize>> = Vec::new();
        for (i, c) in facts.cpus.iter().enumerate() {
            if index.len() <= c.id {
                index.resize(c.id + 1, None);
            }
            if let Some(slot) = index.get_mut(c.id) {
                slot.get_or_insert(i);
            }
        }
        let by_id = |cpu: usize| {
            index
                .get(cpu)
                .copied()
                .flatten()
                .and_then(|i| facts.cpus.get(i))
        };
        let mut by_package_id: Vec<(i64, CpuSet)> = Vec::new();
        for c in &facts.cpus {
            if let Some(id) = c.package_id.filter(|&p| p >= 0) {
                match by_package_id.iter_mut().find(|(p, _)| *p == id) {
                    Some((_, set)) => set.insert(c.id),
                    None => by_package_id.push((id, CpuSet::single(c.id))),
                }
            }
        }

        // Packages.
        let by_pkg_id = |cpu: usize| -> Option<CpuSet> {
            let id = by_id(cpu)?.package_id.filter(|&p| p >= 0)?;
            by_package_id
                .iter()
                .find(|(p, _)| *p == id)
                .map(|(_, s)| s.clone())
        };
        let unknown_pkg: CpuSet = online
            .iter()
            .filter(|&c| {
                by_id(c).map_or(true, |f| f.package_siblings.is_none()) && by_pkg_id(c).is_none()
            })
            .collect();
        let pkg_sets = partition(online, |cpu| {
            by_id(cpu)
                .and_then(|f| own_group(&f.package_siblings, online, cpu))
                .or_else(|| by_pkg_id(cpu))
                .unwrap_or_else(|| unknown_pkg.clone())
        });
        let mut packages: Vec<Package> = pkg_sets
            .into_iter()
            .map(|cpus| {
                let ids: Vec<Option<i64>> = cpus
                    .iter()
                    .map(|c| by_id(c).and_then(|f| f.package_id))
                    .collect();
                let os_id = match ids.first() {
                    Some(Some(id)) if *id >= 0 && ids.iter().all(|i| *i == Some(*id)) => Some(*id),
                    _ => None,
                };
                Package { os_id, cpus }
            })
            .collect();
        // An id shared by two packages says nothing.
        let os_ids: Vec<Option<i64>> = packages.iter().map(|p| p.os_id).collect();
        for p in packages.iter_mut() {
            if p.os_id.is_some() && os_ids.iter().filter(|i| **i == p.os_id).count() > 1 {
                p.os_id = None;
            }
        }
        let package_index = |cpu: usize| packages.iter().position(|p| p.cpus.contains(cpu));

        // Cores.
        let core_sets = partition(online, |cpu| {
            let pkg = package_index(cpu)
                .and_then(|i| packages.get(i))
                .map(|p| p.cpus.clone())
                .unwrap_or_else(|| CpuSet::single(cpu));
            let Some(f) = by_id(cpu) else {
                return CpuSet::single(cpu);
            };
            let Some(sib) = own_group(&f.thread_siblings, online, cpu) else {
                return CpuSet::single(cpu);
            };
            let sib = sib.intersection(&pkg);
            // AMD compute units: siblings with another core_id are cores of their own.
            match f.core_id {
                Some(my) => sib
                    .iter()
                    .filter(|&s| by_id(s).and_then(|g| g.core_id).map_or(true, |c| c == my))
                    .collect(),
                None => sib,
            }
        });
        let cores = core_sets
            .into_iter()
            .map(|cpus| Core {
                package: cpus.first().and_then(package_index).unwrap_or(0),
                cpus,
            })
            .collect();

        // Core complexes.
        let no_cache: CpuSet = online
            .iter()
            .filter(|&c| by_id(c).map_or(true, |f| f.llc.is_none()))
            .collect();
        let complexes = partition(online, |cpu| {
            match by_id(cpu).and_then(|f| own_group(&f.llc, online, cpu)) {
                Some(s) => s,
                None => package_index(cpu)
                    .and_then(|i| packages.get(i))
                    .map(|p| p.cpus.intersection(&no_cache))
                    .unwrap_or_else(|| CpuSet::single(cpu)),
            }
        });

        // NUMA nodes: the distance rows are in online-node order, which is our order.
        let n = facts.nodes.len();
        let nodes = facts
            .nodes
            .iter()
            .map(|nf| Node {
                id: nf.id,
                cpus: nf.cpus.intersection(online),
                distances: if nf.distances.len() == n {
                    nf.distances.clone()
                } else {
                    Vec::new()
                },
            })
            .collect();

        let mut topo = Topology {
            online: online.clone(),
            cores,
            packages,
            nodes,
            complexes,
            allowed: online.clone(),
            scope: None,
        };
        if let Some(want) = &facts.partial {
            topo.narrow(want);
        }
        topo
    }

    /// Keeps what `want` read: the cores and complexes that hold a scope CPU, the packages when
    /// read; empties the rest.
    fn narrow(&mut self, want: &Want) {
        let scope = want
            .scope
            .as_ref()
            .map_or_else(|| self.online.clone(), |s| s.intersection(&self.online));
        if want.cores {
            self.cores.retain(|c| c.cpus.intersects(&scope));
        } else {
            self.cores.clear();
        }
        if want.complexes {
            self.complexes.retain(|c| c.intersects(&scope));
        } else {
            self.complexes.clear();
        }
        if !want.packages {
            self.packages.clear();
            for c in self.cores.iter_mut() {
                c.package = 0;
            }
        }
        if !want.distances {
            for n in self.nodes.iter_mut() {
                n.distances.clear();
            }
        }
        self.scope = Some(scope);
    }

    /// Reads the topology under the fsroot and computes the allowed set.
    pub fn load(fs: &Fs, allowed: &AllowedFrom) -> Result<Topology> {
        Self::load_with_warnings(fs, allowed).map(|(t, _)| t)
    }

    /// As `load`, with the non-fatal findings (a cgroup cpuset that excludes the whole mask).
    pub fn load_with_warnings(fs: &Fs, allowed: &AllowedFrom) -> Result<(Topology, Vec<String>)> {
        let facts = read_facts(fs)?;
        let mut topo = Topology::build(&facts);
        let mut warnings = Vec::new();
        let cgroup = cgroup_cpus(fs, &topo.online)?;
        topo.allowed = allowed_set(&topo.online, allowed, cgroup.as_ref(), &mut warnings)?;
        Ok((topo, warnings))
    }

    /// The node with this id.
    pub fn node(&self, id: u32) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The (lowest-id) node whose CPUs hold `cpu`; None when no node lists it.
    pub fn node_of_cpu(&self, cpu: usize) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(|n| n.id)
    }

    /// Index into `packages` of the package holding `cpu`.
    pub fn package_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.packages.iter().position(|p| p.cpus.contains(cpu))
    }

    /// Index into `cores` of the core holding `cpu`.
    pub fn core_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.cores.iter().position(|c| c.cpus.contains(cpu))
    }

    /// Index into `complexes` of the complex holding `cpu`.
    pub fn complex_of_cpu(&self, cpu: usize) -> Option<usize> {
        self.complexes.iter().position(|c| c.contains(cpu))
    }

    /// Every core intersected with `set`, the non-empty ones, sorted by lowest CPU id.
    pub fn cores_within(&self, set: &CpuSet) -> Vec<CpuSet> {
        let mut v: Vec<CpuSet> = self
            .cores
            .iter()
            .map(|c| c.cpus.intersection(set))
            .filter(|c| !c.is_empty())
            .collect();
        v.sort_by_key(|c| c.first());
        v
    }

    /// Every complex intersected with `set`, the non-empty ones, sorted by lowest CPU id.
    pub fn complexes_within(&self, set: &CpuSet) -> Vec<CpuSet> {
        let mut v: Vec<CpuSet> = self
            .complexes
            .iter()
            .map(|c| c.intersection(set))
            .filter(|c| !c.is_empty())
            .collect();
        v.sort_by_key(|c| c.first());
        v
    }

    /// Ids of the nodes with CPUs in package `pkg` (index into `packages`).
    pub fn package_nodes(&self, pkg: usize) -> Vec<u32> {
        match self.packages.get(pkg) {
            Some(p) => self.nodes_of(&p.cpus),
            None => Vec::new(),
        }
    }

    /// Ids of the nodes holding any CPU of `set`, ascending.
    pub fn nodes_of(&self, set: &CpuSet) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.cpus.intersects(set))
            .map(|n| n.id)
            .collect()
    }

    /// The online CPUs of node `id` (empty for CPU-less or unknown nodes).
    pub fn node_cpus(&self, id: u32) -> CpuSet {
        self.node(id).map(|n| n.cpus.clone()).unwrap_or_default()
    }

    /// SLIT distance from node `from` to node `to`, when known.
    pub fn distance(&self, from: u32, to: u32) -> Option<u32> {
        let to_idx = self.nodes.iter().position(|n| n.id == to)?;
        self.node(from)?.distances.get(to_idx).copied()
    }

    /// The nodes with CPUs nearest to node `id` by SLIT distance (itself when it has CPUs); for a
    /// CPU-less memory node, the CPU nodes it hangs off. Empty when distances are unknown.
    pub fn nearest_cpu_nodes(&self, id: u32) -> Vec<u32> {
        if !self.node_cpus(id).is_empty() {
            return vec![id];
        }
        let with_cpus: Vec<(u32, u32)> = self
            .nodes
            .iter()
            .filter(|n| !n.cpus.is_empty())
            .filter_map(|n| Some((n.id, self.distance(id, n.id)?)))
            .collect();
        let Some(min) = with_cpus.iter().map(|(_, d)| *d).min() else {
            return Vec::new();
        };
        with_cpus
            .into_iter()
            .filter(|(_, d)| *d == min)
            .map(|(n, _)| n)
            .collect()
    }
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
                if let Some(set) = fs.read_list(&format!("{dir}/{file}"))? {
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
                    if let Some(set) = fs.read_list(&format!("{dir}/{file}"))? {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse_list(s).unwrap()
    }

    /// One CPU's topology files in list form.
    fn cpu(t: &TestFs, id: usize, threads: &str, package: &str, pkg_id: i64, llc: &str) {
        let d = format!("sys/devices/system/cpu/cpu{id}");
        t.file(
            &format!("{d}/topology/thread_siblings_list"),
            &format!("{threads}\n"),
        )
        .file(
            &format!("{d}/topology/core_siblings_list"),
            &format!("{package}\n"),
        )
        .file(
            &format!("{d}/topology/physical_package_id"),
            &format!("{pkg_id}\n"),
        )
        .file(&format!("{d}/cache/index0/level"), "1\n")
        .file(&format!("{d}/cache/index0/type"), "Instruction\n")
        .file(&format!("{d}/cache/index0/shared_cpu_list"), "0-63\n")
        .file(&format!("{d}/cache/index3/level"), "3\n")
        .file(&format!("{d}/cache/index3/type"), "Unified\n")
        .file(&format!("{d}/cache/index3/shared_cpu_list"), llc);
    }

    /// Two packages of two SMT4 cores; CPUs 14-15 offline; node 0 lists absent CPUs; node 2 CPU-less.
    fn smt4(t: &TestFs) {
        t.file("sys/devices/system/cpu/online", "0-13\n");
        for c in 0..14usize {
            let core = c / 4 * 4;
            let pkg = c / 8 * 8;
            cpu(
                t,
                c,
                &format!("{core}-{}", core + 3),
                &format!("{pkg}-{}", pkg + 7),
                (c / 8) as i64,
                &format!("{pkg}-{}", pkg + 7),
            );
        }
        t.file("sys/devices/system/node/online", "0-1,2\n")
            .file("sys/devices/system/node/node0/cpulist", "0-7,64-71\n")
            .file("sys/devices/system/node/node0/distance", "10 20 40\n")
            .file("sys/devices/system/node/node1/cpulist", "8-15\n")
            .file("sys/devices/system/node/node1/distance", "20 10 40\n")
            .file("sys/devices/system/node/node2/cpulist", "\n")
            .file("sys/devices/system/node/node2/distance", "40 30 10\n");
    }

    /// With `cpu/smt/active` = 0 every CPU is its own core and no sibling file is read: here the
    /// sibling files (wrongly) claim pairs, so reading them would give two cores, not four.
    #[test]
    fn smt_inactive_means_one_core_per_cpu_without_reading_siblings() {
        let t = TestFs::new("smt-off");
        t.file("sys/devices/system/cpu/online", "0-3\n");
        for c in 0..4usize {
            let pair = c / 2 * 2;
            cpu(&t, c, &format!("{pair}-{}", pair + 1), "0-3", 0, "0-3");
        }
        let want = Want {
            scope: None,
            cores: true,
            complexes: false,
            packages: false,
            distances: false,
        };
        let with_siblings = read_cpu_facts(&t.fs(), &set("0-3"), &want).unwrap();
        assert_eq!(with_siblings[0].thread_siblings, Some(set("0-1")));
        t.file("sys/devices/system/cpu/smt/active", "0\n");
        let fs = t.fs();
        let facts = read_cpu_facts(&fs, &set("0-3"), &want).unwrap();
        for f in &facts {
            assert_eq!(
                f.thread_siblings,
                Some(CpuSet::single(f.id)),
                "cpu {}",
                f.id
            );
        }
        assert_eq!(fs.files_read(), 1, "only smt/active");
        // Any other value (1, or a missing file as above) reads the siblings.
        t.file("sys/devices/system/cpu/smt/active", "1\n");
        let facts = read_cpu_facts(&t.fs(), &set("0-3"), &want).unwrap();
        assert_eq!(facts[3].thread_siblings, Some(set("2-3")));
    }

    #[test]
    fn smt4_packages_cores_nodes() {
        let t = TestFs::new("smt4");
        smt4(&t);
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.online, set("0-13"));
        let cores: Vec<String> = topo.cores.iter().map(|c| c.cpus.to_list()).collect();
        assert_eq!(cores, ["0-3", "4-7", "8-11", "12-13"]);
        assert_eq!(
            topo.cores.iter().map(|c| c.package).collect::<Vec<_>>(),
            [0, 0, 1, 1]
        );
        assert_eq!(topo.packages.len(), 2);
        assert_eq!(topo.packages[1].cpus, set("8-13"));
        assert_eq!(topo.packages[1].os_id, Some(1));
        assert_eq!(topo.complexes, vec![set("0-7"), set("8-13")]);
        // Offline and absent CPUs are dropped from the node lists; the CPU-less node stays.
        assert_eq!(topo.nodes.len(), 3);
        assert_eq!(topo.node_cpus(0), set("0-7"));
        assert_eq!(topo.node_cpus(1), set("8-13"));
        assert!(topo.node_cpus(2).is_empty());
        assert_eq!(topo.distance(0, 2), Some(40));
        assert_eq!(topo.nearest_cpu_nodes(2), vec![1]);
        assert_eq!(topo.node_of_cpu(9), Some(1));
        assert_eq!(topo.package_of_cpu(9), Some(1));
        assert_eq!(topo.package_nodes(0), vec![0]);
        assert_eq!(
            topo.cores_within(&set("2-9")),
            vec![set("2-3"), set("4-7"), set("8-9")]
        );
        assert_eq!(topo.allowed, set("0-13"));
    }

    #[test]
    fn mask_forms_and_newer_names() {
        let t = TestFs::new("masks");
        t.file("sys/devices/system/cpu/present", "0-3\0");
        for c in 0..4 {
            let d = format!("sys/devices/system/cpu/cpu{c}/topology");
            let core = if c < 2 { "3" } else { "c" };
            t.file(
                &format!("{d}/core_cpus"),
                &format!("00000000,0000000{core}\n"),
            )
            .file(&format!("{d}/package_cpus"), "f\n")
            .file(&format!("{d}/physical_package_id"), "-1\n");
        }
        t.file("sys/devices/system/node/node0/cpumap", "0000000f\n");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.online, set("0-3"));
        assert_eq!(topo.cores.len(), 2);
        assert_eq!(topo.cores[1].cpus, set("2-3"));
        assert_eq!(topo.packages.len(), 1);
        assert_eq!(topo.packages[0].os_id, None, "-1 is no id");
        assert_eq!(topo.node_cpus(0), set("0-3"));
        // No cache information: one complex per package.
        assert_eq!(topo.complexes, vec![set("0-3")]);
    }

    #[test]
    fn compute_unit_siblings_with_own_core_ids_are_cores() {
        let t = TestFs::new("bulldozer");
        t.file("sys/devices/system/cpu/online", "0-3");
        for c in 0..4 {
            let d = format!("sys/devices/system/cpu/cpu{c}/topology");
            t.file(
                &format!("{d}/thread_siblings_list"),
                if c < 2 { "0-1" } else { "2-3" },
            )
            .file(&format!("{d}/core_siblings_list"), "0-3")
            .file(&format!("{d}/core_id"), &format!("{c}"));
        }
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.cores.len(), 4);
        // Same core_id: real SMT pairs (compute units are a property of the processor model:
        // the first core's ids decide for the machine, so both pairs change together).
        t.file("sys/devices/system/cpu/cpu1/topology/core_id", "0")
            .file("sys/devices/system/cpu/cpu3/topology/core_id", "2");
        let fs = t.fs();
        let topo = Topology::load(&fs, &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.cores.len(), 2);
        assert_eq!(topo.cores[0].cpus, set("0-1"));
        // SMT: the second core's ids are not read.
        let every = Topology::build(&read_facts_every_cpu(&t.fs()).unwrap());
        assert_eq!(every.cores, topo.cores);
    }

    #[test]
    fn cpus_without_topology_and_offline_dirs() {
        let t = TestFs::new("bare");
        t.dir("sys/devices/system/cpu/cpu0")
            .dir("sys/devices/system/cpu/cpu1")
            .file("sys/devices/system/cpu/cpu2/online", "0\n")
            .dir("sys/devices/system/cpu/cpu10");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.online, set("0-1,10"));
        assert_eq!(topo.cores.len(), 3, "each CPU its own core");
        assert_eq!(topo.packages.len(), 1, "unknown packages make one");
        assert!(topo.nodes.is_empty());
        assert_eq!(topo.node_of_cpu(0), None);
    }

    #[test]
    fn no_cpu_at_all_is_an_error_naming_the_dir() {
        let t = TestFs::new("nocpu");
        t.dir("sys");
        let e = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap_err();
        assert!(e.message().contains("sys/devices/system/cpu"), "{e}");
    }

    #[test]
    fn cgroup_v2_walks_up() {
        let t = TestFs::new("cg2");
        smt4(&t);
        t.file("proc/self/cgroup", "0::/job/step\n")
            .file("sys/fs/cgroup/job/cpuset.cpus.effective", "2-9\n")
            .file("sys/fs/cgroup/job/step/cpuset.cpus", "\n");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.allowed, set("2-9"));
        let topo = Topology::load(&t.fs(), &AllowedFrom::Process(set("0-4"))).unwrap();
        assert_eq!(topo.allowed, set("2-4"));
    }

    #[test]
    fn cgroup_v1_and_legacy_cpuset() {
        let t = TestFs::new("cg1");
        smt4(&t);
        t.file("proc/self/cgroup", "4:cpuset:/slurm\n1:name=systemd:/x\n")
            .file("sys/fs/cgroup/cpuset/slurm/cpuset.effective_cpus", "8-11\n");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.allowed, set("8-11"));
        // An effective set naming offline CPUs is stale: the configured one is used.
        t.file("sys/fs/cgroup/cpuset/slurm/cpuset.effective_cpus", "8-15\n")
            .file("sys/fs/cgroup/cpuset/slurm/cpuset.cpus", "0-3\n");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.allowed, set("0-3"));

        let t = TestFs::new("legacy");
        smt4(&t);
        t.file("proc/self/cpuset", "/prout\n")
            .file("proc/mounts", "none /dev/cpuset cpuset rw 0 0\n")
            .file("dev/cpuset/prout/cpus", "5-6\n");
        let topo = Topology::load(&t.fs(), &AllowedFrom::Snapshot).unwrap();
        assert_eq!(topo.allowed, set("5-6"));
        // Explicit is not narrowed; it must hold an online CPU.
        let topo = Topology::load(&t.fs(), &AllowedFrom::Explicit(set("0-1"))).unwrap();
        assert_eq!(topo.allowed, set("0-1"));
        let e = Topology::load(&t.fs(), &AllowedFrom::Explicit(set("20-21"))).unwrap_err();
        assert!(e.message().contains("20-21"), "{e}");
    }

    #[test]
    fn disjoint_cgroup_falls_back_with_a_warning() {
        let t = TestFs::new("cgdisjoint");
        smt4(&t);
        t.file("proc/self/cgroup", "0::/\n")
            .file("sys/fs/cgroup/cpuset.cpus.effective", "8-9\n");
        let (topo, w) =
            Topology::load_with_warnings(&t.fs(), &AllowedFrom::Process(set("0-1"))).unwrap();
        assert_eq!(topo.allowed, set("0-1"));
        assert!(w.iter().any(|w| w.contains("8-9")), "{w:?}");
        let e = Topology::load(&t.fs(), &AllowedFrom::Process(set("40"))).unwrap_err();
        assert!(e.message().contains("40"), "{e}");
    }
}
