//! Reading the CPU and NUMA facts from sysfs, defensively: every file may be missing, in list or
//! mask form, or odd; a fact shared by a group of CPUs is read once for the group.

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
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
