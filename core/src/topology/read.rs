//! Reading the CPU and NUMA facts from sysfs, defensively: every file may be missing, in list or
//! mask form, or odd; a fact shared by a group of CPUs is read once for the group.

use crate::cpuset::{CpuSet, IdTable};
use crate::error::{Error, Result};
use crate::sysfs::Fs;
use std::fmt;

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
    /// One per CPU read or learnt, in the order learnt (a CPU without a record is treated as
    /// knowing nothing).
    pub cpus: Vec<CpuFacts>,
    /// Cores the reader inferred rather than read (`Want::infer_cores`), each whole: the thread
    /// siblings of their CPUs that have no `thread_siblings` of their own. A set per core, not a
    /// hundred-byte record per CPU.
    pub cores: Vec<CpuSet>,
    /// Whole nodes (their online CPUs) whose cores were counted, not listed (`Want::count_only`):
    /// no core of theirs is in `cores`, and their CPUs have no `thread_siblings` to go by.
    pub counted: Vec<(CpuSet, usize)>,
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
    /// Thread siblings may be inferred from a few CPUs per node where the kernel and the files read
    /// vouch for a uniform pattern (see `CpuReader::infer_domain`); false reads every core's file.
    /// The topology is the same either way; tests turn it off to compare.
    pub infer_cores: bool,
    /// CPUs whose cores need only be counted: a node of the scope lying wholly here whose cores
    /// are inferred is reported as a count (`Facts::counted`) instead of one set per core. None:
    /// list every core. A plan that needs other GPUs' core counts, not their cores, asks this.
    pub count_only: Option<CpuSet>,
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
            infer_cores: true,
            count_only: None,
        }
    }

    /// True when this reads what `everything` reads (however the cores are read).
    pub fn is_everything(&self) -> bool {
        self.scope.is_none()
            && self.count_only.is_none()
            && self.cores
            && self.packages
            && self.complexes
            && self.distances
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
/// Beyond that, where the kernel says SMT is on and every present CPU online, a node's cores are
/// inferred from the siblings of its first, last and middle CPUs when they show one numbering
/// pattern that tiles the node (`Want::infer_cores`, `CpuReader::infer_domain`); otherwise every
/// core's file is read.
///
/// Which cache index is the highest data/unified one is decided once per distinct set of index
/// directories; after that one `shared_cpu_list` per cache instance is read. The file form that
/// answered (`core_cpus_list`, `thread_siblings`, ...) is tried first for the next CPU.
pub fn read_facts_for(fs: &Fs, want: &Want) -> Result<Facts> {
    let online = read_online(fs)?;
    let nodes = read_nodes(fs, want.distances)?;
    let read = read_cpu_facts_in(fs, &online, &nodes, want)?;
    Ok(read.into_facts(online, nodes, want.clone()))
}

/// The per-CPU facts `want` asks for (see `read_facts_for`), one record per CPU read or learnt.
/// Without the NUMA nodes, thread siblings are inferred per package (when read) or machine-wide.
/// An inferred core's siblings are given to each of its CPUs here, as a read would.
pub fn read_cpu_facts(fs: &Fs, online: &CpuSet, want: &Want) -> Result<Vec<CpuFacts>> {
    // Without nodes nothing is counted: every core comes back.
    let CpuRead {
        mut cpus, cores, ..
    } = read_cpu_facts_in(fs, online, &[], want)?;
    let mut at = IdTable::new(online.last().map_or(0, |l| l + 1));
    for (i, r) in cpus.iter().enumerate() {
        at.get_or_set(r.id, i);
    }
    for core in cores {
        for id in core.iter() {
            match at.get(id).and_then(|i| cpus.get_mut(i)) {
                Some(r) => {
                    r.thread_siblings.get_or_insert_with(|| core.clone());
                }
                None => cpus.push(CpuFacts {
                    id,
                    thread_siblings: Some(core.clone()),
                    ..CpuFacts::default()
                }),
            }
        }
    }
    cpus.sort_unstable_by_key(|r| r.id);
    Ok(cpus)
}

/// `read_cpu_facts` given the NUMA nodes (as `read_nodes` read them): thread siblings are inferred
/// per node (see `CpuReader::infer_domain`) and returned as cores beside the records
/// (`Facts::cores`). The records are in the order learnt, not by id (`Topology::build` indexes
/// them): sorting two thousand of them was a visible part of a 4,096-CPU load.
pub fn read_cpu_facts_in(
    fs: &Fs,
    online: &CpuSet,
    nodes: &[NodeFacts],
    want: &Want,
) -> Result<CpuRead> {
    CpuReader::new(fs, online).read(want, nodes)
}

/// What `read_cpu_facts_in` learnt: `Facts::cpus`, `Facts::cores` and `Facts::counted`.
pub struct CpuRead {
    pub cpus: Vec<CpuFacts>,
    pub cores: Vec<CpuSet>,
    pub counted: Vec<(CpuSet, usize)>,
}

impl CpuRead {
    /// The facts of a load that read this for `want` over `online` and `nodes`: partial unless
    /// `want` is everything.
    pub fn into_facts(self, online: CpuSet, nodes: Vec<NodeFacts>, want: Want) -> Facts {
        Facts {
            partial: (!want.is_everything()).then_some(want),
            online,
            cpus: self.cpus,
            cores: self.cores,
            counted: self.counted,
            nodes,
        }
    }
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

    /// The first of `names` under `dir` that is there (the one found last time tried first).
    /// The paths are formatted on the stack: this runs once per core and cache read.
    fn read(&mut self, fs: &Fs, dir: fmt::Arguments<'_>) -> Result<Option<CpuSet>> {
        let one = |i: usize| -> Result<Option<CpuSet>> {
            let Some((name, list)) = self.names.get(i) else {
                return Ok(None);
            };
            if *list {
                fs.read_list_fmt(format_args!("{dir}/{name}"))
            } else {
                fs.read_mask_fmt(format_args!("{dir}/{name}"))
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

/// The files `CpuReader::smt_everywhere` reads, and the most sibling files `infer_domain` reads
/// per node.
const PRECONDITION_FILES: usize = 3;
const SAMPLES: usize = 3;

/// Reads per-CPU facts once per group (see `read_facts_for`).
struct CpuReader<'a> {
    fs: &'a Fs,
    online: &'a CpuSet,
    /// By CPU id: the index of its record in `recs`, none when nothing was read or learnt about
    /// it. Records are made only as facts arrive (an inferred core's record is its lowest
    /// CPU's), so a 4,096-CPU machine does not pay a hundred bytes per CPU up front.
    slots: IdTable,
    recs: Vec<CpuFacts>,
    /// Cores inferred, not read (`Facts::cores`).
    cores: Vec<CpuSet>,
    /// Nodes whose cores were counted (`Facts::counted`).
    counted: Vec<(CpuSet, usize)>,
    threads: Probe,
    package: Probe,
    shared: Probe,
    /// None until the first core with several siblings was seen; then whether `core_id`s differ
    /// within a core (compute units).
    compute_units: Option<bool>,
    /// Some CPU's package siblings were read (`within_packages` has something to check).
    packages_read: bool,
    /// Cache index names of a CPU → the index holding its highest data/unified cache.
    layouts: Vec<(Vec<String>, Option<String>)>,
}

impl<'a> CpuReader<'a> {
    fn new(fs: &'a Fs, online: &'a CpuSet) -> Self {
        let len = online.last().map_or(0, |l| l + 1);
        CpuReader {
            fs,
            online,
            slots: IdTable::new(len),
            // Room for one record per CPU, so the vector never moves: its untouched part costs
            // address space, not pages (a growth by doubling touched both copies).
            recs: Vec::with_capacity(len),
            cores: Vec::new(),
            counted: Vec::new(),
            threads: Probe::new(Probe::THREADS),
            package: Probe::new(Probe::PACKAGE),
            shared: Probe::new(Probe::SHARED),
            compute_units: None,
            packages_read: false,
            layouts: Vec::new(),
        }
    }

    fn rec(&mut self, cpu: usize) -> Option<&mut CpuFacts> {
        let next = self.recs.len();
        let i = self.slots.get_or_set(cpu, next)?;
        if i == next {
            self.recs.push(CpuFacts {
                id: cpu,
                ..CpuFacts::default()
            });
        }
        self.recs.get_mut(i)
    }

    /// `cpu`'s record, when it has one.
    fn get(&self, cpu: usize) -> Option<&CpuFacts> {
        self.recs.get(self.slots.get(cpu)?)
    }

    /// `set` ∩ online, holding `cpu`.
    fn group(&self, set: &CpuSet, cpu: usize) -> CpuSet {
        let mut g = set.intersection(self.online);
        g.insert(cpu);
        g
    }

    fn read(mut self, want: &Want, nodes: &[NodeFacts]) -> Result<CpuRead> {
        let scope = match &want.scope {
            Some(s) => s.intersection(self.online),
            None => self.online.clone(),
        };
        if want.packages {
            let mut done = CpuSet::new();
            for cpu in self.online.iter() {
                if !done.contains(cpu) {
                    done.union_with(&self.read_package(cpu)?);
                }
            }
        }
        if want.cores {
            self.read_cores(want, &scope, nodes)?;
        }
        if want.complexes {
            let mut done = CpuSet::new();
            for cpu in scope.iter() {
                if !done.contains(cpu) {
                    done.union_with(&self.read_llc(cpu)?);
                }
            }
        }
        // A CPU without a record is one nothing was read or learnt about, or one of an inferred
        // core (`cores` names it), or one of a counted node.
        Ok(CpuRead {
            cpus: self.recs,
            cores: self.cores,
            counted: self.counted,
        })
    }

    /// The thread siblings of every CPU of `scope` (and of the CPUs sharing a core with one):
    /// none read when the kernel says no core has two threads online; a few per node when it says
    /// every core has all of them and the files read show one pattern (`infer_domain`); else one
    /// file per core.
    fn read_cores(&mut self, want: &Want, scope: &CpuSet, nodes: &[NodeFacts]) -> Result<()> {
        let infer = want.infer_cores;
        // `cpu/smt/active` (Documentation/ABI/testing/sysfs-devices-system-cpu): 0 = "no physical
        // core has two or more sibling threads online", 1 = some has. Absent (older kernels,
        // snapshots) or anything else: the siblings are read.
        let active = self.fs.read_str(&format!("{CPU_DIR}/smt/active"))?;
        if active.as_deref() == Some("0") {
            // Every CPU is its own core (Grace, and machines booted with SMT off).
            for cpu in scope.iter() {
                if let Some(r) = self.rec(cpu) {
                    r.thread_siblings = Some(CpuSet::single(cpu));
                }
            }
            return Ok(());
        }
        let mut done = CpuSet::new();
        if infer && active.as_deref() == Some("1") {
            let domains = self.domains(nodes);
            // The precondition costs three files and each node up to three samples: worth it
            // only where, at two threads a core, the nodes' scoped cores would cost as much.
            let saved: usize = domains
                .iter()
                .map(|d| (d.intersection(scope).len() / 2).saturating_sub(SAMPLES))
                .sum();
            if saved >= PRECONDITION_FILES && self.smt_everywhere() {
                for domain in domains {
                    let part = domain.intersection(scope).difference(&done);
                    if !part.is_empty() {
                        // A whole node that needs only counting.
                        let count = part == domain
                            && want
                                .count_only
                                .as_ref()
                                .is_some_and(|c| domain.is_subset(c));
                        done.union_with(&self.infer_domain(&domain, &part, count)?);
                    }
                }
            }
        }
        for cpu in scope.iter() {
            if !done.contains(cpu) {
                done.union_with(&self.read_core(cpu)?);
            }
        }
        Ok(())
    }

    /// The kernel's word that every core has all its threads online, and that the cores are all
    /// of one kind: `cpu/smt/control` reads `on` (SMT enabled: not `off`, `forceoff`,
    /// `notsupported`, nor a thread count N as POWER allows); every present CPU is online
    /// (`present` = online: no CPU, hence no thread of a core, was taken offline by hand or by
    /// `maxcpus=`); and the machine is not an Intel hybrid (no `cpu_atom` PMU listing E-cores,
    /// which have one thread beside P-cores with two). A missing or unreadable `control` or
    /// `present` says nothing, and an unreadable `cpu_atom/cpus` may be there: no inference.
    fn smt_everywhere(&self) -> bool {
        let fs = self.fs;
        fs.read_str(&format!("{CPU_DIR}/smt/control"))
            .ok()
            .flatten()
            .as_deref()
            == Some("on")
            && fs
                .read_list(&format!("{CPU_DIR}/present"))
                .ok()
                .flatten()
                .as_ref()
                == Some(self.online)
            && matches!(fs.read_opt("sys/devices/cpu_atom/cpus"), Ok(None))
    }

    /// The groups of CPUs within which one sibling pattern is looked for: the NUMA nodes' online
    /// CPUs, else the packages when they were read, else the whole machine; none at all when
    /// they overlap (broken NUMA information). A node may list CPUs that are not online: with every
    /// present CPU online (`smt_everywhere`) they do not exist (POWER lists every possible CPU),
    /// so no core is missing a thread there.
    fn domains(&self, nodes: &[NodeFacts]) -> Vec<CpuSet> {
        let mut domains: Vec<CpuSet> = nodes
            .iter()
            .map(|n| n.cpus.intersection(self.online))
            .filter(|c| !c.is_empty())
            .collect();
        if domains.is_empty() {
            let mut done = CpuSet::new();
            for cpu in self.online.iter() {
                if done.contains(cpu) {
                    continue;
                }
                let pkg = self.get(cpu).and_then(|r| r.package_siblings.as_ref());
                let Some(pkg) = pkg else {
                    // Packages not read (or unknown): one domain.
                    domains = vec![self.online.clone()];
                    break;
                };
                let g = self.group(pkg, cpu);
                done.union_with(&g);
                domains.push(g);
            }
        }
        let mut all = CpuSet::new();
        for d in &domains {
            if all.intersects(d) {
                return Vec::new();
            }
            all.union_with(d);
        }
        domains
    }

    /// Learns the cores of the CPUs of `part` (a part of `domain`, a node's online CPUs) from the
    /// siblings of at most three of them; returns the CPUs whose cores are now known (all of
    /// `part` when it inferred, else the cores it read).
    ///
    /// Why it is sound. The caller has the kernel's word that SMT is on, that every present CPU
    /// is online (so every core has all its threads online: none was offlined by hand), and that
    /// the cores are not of two kinds (`smt_everywhere`). What is left is how the threads are
    /// numbered, and kernels number all cores of a machine by one rule (x86 by APIC id: core c's
    /// threads c, c+N, ...; POWER and ARM adjacent: c*T .. c*T+T-1), so within a node every core
    /// is one offset pattern D translated. D is taken from the first CPU's sibling file, then
    /// checked against everything read: D has two threads or more; the node's online CPUs are
    /// tiled exactly by disjoint translates of D (a missing or extra CPU anywhere, or a core of
    /// another width at either end, breaks the tiling); the first, last and middle CPUs' sibling
    /// files each equal the translate holding them, within the node; each translate lies in one
    /// package (when packages were read); no compute units (whose cores need every `core_id`
    /// read, see `compute_units`). A machine that passed all this yet had one odd core between
    /// the samples would break the kernel's one rule; that is the one assumption made.
    ///
    /// Falls back (returns the cores it read; the caller reads every other core's file) when a
    /// sampled sibling file is missing, does not list its CPU, or names a CPU outside the node
    /// (or not online); when the first core has a single thread; when the samples disagree with
    /// the tiling (hybrid cores, POWER cores in mixed SMT modes, odd numbering) or the node
    /// cannot be tiled; when a translate spans packages; when compute units were found.
    ///
    /// With `count` (`part` is the whole node), a node whose cores are inferred is recorded as its
    /// number of cores (`Facts::counted`), not as a set per core.
    fn infer_domain(&mut self, domain: &CpuSet, part: &CpuSet, count: bool) -> Result<CpuSet> {
        let mut known = CpuSet::new();
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            return Ok(known);
        };
        let Some(sib) = self.sample(first, domain, &mut known)? else {
            return Ok(known);
        };
        let base = sib.first().unwrap_or(first);
        let pattern: Vec<usize> = sib.iter().map(|c| c - base).collect();
        if pattern.len() < 2 || self.compute_units != Some(false) {
            return Ok(known);
        }
        let Some(tiles) = tile(domain, &pattern) else {
            return Ok(known);
        };
        let tile_of = |cpu: usize| tiles.iter().find(|t| t.contains(cpu));
        if tile_of(first) != Some(&sib) {
            return Ok(known);
        }
        let touched: Vec<&CpuSet> = tiles.iter().filter(|t| t.intersects(part)).collect();
        let middle = touched
            .get(touched.len() / 2)
            .and_then(|t| t.intersection(part).first());
        for cpu in [Some(last), middle].into_iter().flatten() {
            if known.contains(cpu) {
                continue;
            }
            match self.sample(cpu, domain, &mut known)? {
                Some(s) if tile_of(cpu) == Some(&s) => {}
                _ => return Ok(known),
            }
        }
        if self.compute_units != Some(false) || !self.within_packages(&tiles) {
            return Ok(known);
        }
        let every_tile = touched.len() == tiles.len();
        if count && every_tile {
            self.counted.push((domain.clone(), tiles.len()));
            known.union_with(domain);
            return Ok(known);
        }
        // A set per core, no record per CPU: the threads learn nothing else here.
        self.cores.extend(touched.iter().map(|t| (*t).clone()));
        if every_tile {
            // The tiles cover the domain exactly.
            known.union_with(domain);
        } else {
            for t in touched {
                known.union_with(t);
            }
        }
        Ok(known)
    }

    /// Reads `cpu`'s core (adding its CPUs to `known`); its sibling set when the file lists
    /// `cpu` and only CPUs of `domain` (all online).
    fn sample(
        &mut self,
        cpu: usize,
        domain: &CpuSet,
        known: &mut CpuSet,
    ) -> Result<Option<CpuSet>> {
        known.union_with(&self.read_core(cpu)?);
        let sib = self.get(cpu).and_then(|r| r.thread_siblings.clone());
        Ok(sib.filter(|s| s.contains(cpu) && s.is_subset(domain)))
    }

    /// Every tile lies within the package siblings its CPUs were given (when packages were read;
    /// a CPU without them says nothing).
    fn within_packages(&self, tiles: &[CpuSet]) -> bool {
        if !self.packages_read {
            return true;
        }
        tiles.iter().all(|t| {
            t.iter().all(|cpu| {
                self.get(cpu)
                    .and_then(|r| r.package_siblings.as_ref())
                    .map_or(true, |p| t.is_subset(p))
            })
        })
    }

    /// Reads `cpu`'s package; returns the CPUs now known.
    fn read_package(&mut self, cpu: usize) -> Result<CpuSet> {
        let sib = self
            .package
            .read(self.fs, format_args!("{CPU_DIR}/cpu{cpu}/topology"))?;
        self.packages_read |= sib.is_some();
        let id = self.fs.read_i64_fmt(format_args!(
            "{CPU_DIR}/cpu{cpu}/topology/physical_package_id"
        ))?;
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
        let sib = self
            .threads
            .read(self.fs, format_args!("{CPU_DIR}/cpu{cpu}/topology"))?;
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
                    .read_i64_fmt(format_args!("{CPU_DIR}/cpu{d}/topology/core_id"))?;
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
            Some(Some(idx)) => match self.shared.read(self.fs, format_args!("{dir}/{idx}"))? {
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
            if let Some(shared) = self.shared.read(self.fs, format_args!("{idx}"))? {
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
                // tree) would cost reads for every phantom CPU. A few claimed CPUs' directories are
                // looked up; any missing one and a directory listing bounds the claim. (Listing
                // always cost as much as the rest of a 4,096-CPU load: one entry per CPU.)
                if claims_hold(fs, &set) {
                    return Ok(set);
                }
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

/// The CPUs probed by `claims_hold`: the first, the last and evenly spaced ones between.
const CLAIM_PROBES: usize = 16;

/// Whether the directories of `set`'s first, last and up to `CLAIM_PROBES` - 2 evenly spaced CPUs
/// exist (every one when the set is that small).
fn claims_hold(fs: &Fs, set: &CpuSet) -> bool {
    let n = set.len();
    let step = n.div_ceil(CLAIM_PROBES - 1).max(1);
    let mut probes = set.iter().step_by(step).chain(set.last());
    probes.all(|cpu| fs.is_dir(&format!("{CPU_DIR}/cpu{cpu}")))
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

/// `domain` tiled by translates of `pattern` (offsets from a core's lowest CPU, ascending, the
/// first 0): each lowest CPU not yet covered starts a translate, which must lie wholly in `domain`
/// and cover no CPU twice. None when no exact tiling exists (this greedy one is the only one: the
/// lowest uncovered CPU can only be the lowest of its translate).
fn tile(domain: &CpuSet, pattern: &[usize]) -> Option<Vec<CpuSet>> {
    // The CPUs covered so far, one bitmap marked in place.
    let mut covered = vec![0u64; domain.word_len()];
    let mut tiles = Vec::new();
    let mut ids = Vec::with_capacity(pattern.len());
    for cpu in domain.iter() {
        if covered
            .get(cpu / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
        {
            continue;
        }
        ids.clear();
        for off in pattern {
            let c = cpu.checked_add(*off)?;
            let w = covered.get_mut(c / 64)?;
            if !domain.contains(c) || *w & (1 << (c % 64)) != 0 {
                return None;
            }
            *w |= 1 << (c % 64);
            ids.push(c);
        }
        // The pattern is ascending, so are its translates.
        tiles.push(CpuSet::from_sorted(&ids));
    }
    Some(tiles)
}
