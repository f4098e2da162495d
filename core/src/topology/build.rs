//! Building the model from raw facts: packages, cores, complexes and nodes.

use super::read::{Facts, Want};
use super::{Core, Node, Package, Topology};
use crate::cpuset::{CpuSet, IdTable};

/// `set` ∩ `online`, always holding `cpu` itself (a CPU is its own sibling even when the file forgets it).
/// Shares `set`'s words when it already is that (the usual case).
fn own_group(set: &Option<CpuSet>, online: &CpuSet, cpu: usize) -> Option<CpuSet> {
    set.as_ref().map(|s| {
        let mut g = s.intersection(online);
        g.insert(cpu);
        g
    })
}

fn marked(bits: &[u64], cpu: usize) -> bool {
    bits.get(cpu / 64)
        .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
}

/// Partitions `online` into groups: each CPU, in ascending order, takes its group minus the CPUs
/// already taken (as hwloc does, so inconsistent sibling masks cannot make overlapping groups).
/// The CPUs taken are one bitmap marked in place, and a group that overlaps none of them is the
/// group's own (shared) set: nothing as wide as the machine is allocated per group.
fn partition(online: &CpuSet, group_of: impl FnMut(usize) -> CpuSet) -> Vec<CpuSet> {
    partition_into(online, &[], group_of, |g| g)
}

/// `partition`, each group made into a `T` as it is found (no vector of sets on the way). The
/// CPUs of `skip` count as taken from the start: they are in no group.
fn partition_into<T>(
    online: &CpuSet,
    skip: &[&CpuSet],
    mut group_of: impl FnMut(usize) -> CpuSet,
    mut make: impl FnMut(CpuSet) -> T,
) -> Vec<T> {
    let mut taken = vec![0u64; online.word_len()];
    for c in skip.iter().flat_map(|s| s.iter()) {
        if let Some(w) = taken.get_mut(c / 64) {
            *w |= 1 << (c % 64);
        }
    }
    let mut groups = Vec::new();
    for cpu in online.iter() {
        if marked(&taken, cpu) {
            continue;
        }
        let mut g = group_of(cpu).intersection(online);
        if g.iter().any(|c| marked(&taken, c)) {
            g = g.iter().filter(|&c| !marked(&taken, c)).collect();
        }
        g.insert(cpu);
        for c in g.iter() {
            if let Some(w) = taken.get_mut(c / 64) {
                *w |= 1 << (c % 64);
            }
        }
        groups.push(make(g));
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
        let mut index = IdTable::new(facts.cpus.iter().map(|c| c.id + 1).max().unwrap_or(0));
        for (i, c) in facts.cpus.iter().enumerate() {
            index.get_or_set(c.id, i);
        }
        let by_id = |cpu: usize| index.get(cpu).and_then(|i| facts.cpus.get(i));
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
        // Nothing read about packages (a plan that does not need them): one package of every
        // online CPU, as the general case below finds, without its passes over every CPU.
        let no_package_facts =
            by_package_id.is_empty() && facts.cpus.iter().all(|c| c.package_siblings.is_none());
        let pkg_sets = if no_package_facts {
            if online.is_empty() {
                Vec::new()
            } else {
                vec![online.clone()]
            }
        } else {
            let unknown_pkg: CpuSet = online
                .iter()
                .filter(|&c| {
                    by_id(c).map_or(true, |f| f.package_siblings.is_none())
                        && by_pkg_id(c).is_none()
                })
                .collect();
            partition(online, |cpu| {
                by_id(cpu)
                    .and_then(|f| own_group(&f.package_siblings, online, cpu))
                    .or_else(|| by_pkg_id(cpu))
                    .unwrap_or_else(|| unknown_pkg.clone())
            })
        };
        let mut packages: Vec<Package> = pkg_sets
            .into_iter()
            .map(|cpus| {
                let os_id = {
                    let mut ids = cpus.iter().map(|c| by_id(c).and_then(|f| f.package_id));
                    match ids.next() {
                        Some(Some(id)) if id >= 0 && ids.all(|i| i == Some(id)) => Some(id),
                        _ => None,
                    }
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
        let len = online.last().map_or(0, |l| l + 1);
        // One package holding every online CPU (machines without package facts): no table.
        let whole = packages.len() == 1 && packages.first().is_some_and(|p| p.cpus == *online);
        let pkg_of = if whole {
            IdTable::default()
        } else {
            IdTable::of_groups(len, packages.iter().map(|p| &p.cpus))
        };
        let package_index = |cpu: usize| {
            if whole {
                online.contains(cpu).then_some(0)
            } else {
                pkg_of.get(cpu)
            }
        };
        let want = facts.partial.as_ref();

        // Cores (none when a partial load did not read them: `narrow` would drop them).
        // Per counted node: a core made elsewhere reaches into it (see `counted` below).
        let mut crossed = vec![false; facts.counted.len()];
        let cores = if want.is_some_and(|w| !w.cores) {
            Vec::new()
        } else {
            // CPU → the core the reader inferred for it (`Facts::cores`).
            let inferred = IdTable::of_groups(
                if facts.cores.is_empty() { 0 } else { len },
                facts.cores.iter(),
            );
            // Counted nodes have no core listed: none is made for their CPUs.
            let skip: Vec<&CpuSet> = facts.counted.iter().map(|c| &c.0).collect();
            partition_into(
                online,
                &skip,
                |cpu| {
                    let Some(pkg) = package_index(cpu).and_then(|i| packages.get(i)) else {
                        return CpuSet::single(cpu);
                    };
                    let f = by_id(cpu);
                    // The siblings a file gave, else the core inferred.
                    let siblings = f
                        .and_then(|f| f.thread_siblings.as_ref())
                        .or_else(|| inferred.get(cpu).and_then(|i| facts.cores.get(i)))
                        .cloned();
                    let Some(sib) = own_group(&siblings, online, cpu) else {
                        return CpuSet::single(cpu);
                    };
                    let core_id = f.and_then(|f| f.core_id);
                    // Within the package (already so when it is every online CPU).
                    let sib = if whole {
                        sib
                    } else {
                        sib.intersection(&pkg.cpus)
                    };
                    // AMD compute units: siblings with another core_id are cores of their own.
                    let other_core = |s: usize| {
                        by_id(s)
                            .and_then(|g| g.core_id)
                            .is_some_and(|c| Some(c) != core_id)
                    };
                    let sib = if core_id.is_some() && sib.iter().any(other_core) {
                        sib.iter().filter(|&s| !other_core(s)).collect()
                    } else {
                        sib
                    };
                    for (x, (node, _)) in crossed.iter_mut().zip(&facts.counted) {
                        *x |= sib.intersects(node);
                    }
                    sib
                },
                |cpus| Core {
                    package: cpus.first().and_then(package_index).unwrap_or(0),
                    cpus,
                },
            )
        };

        // Core complexes (none when a partial load did not read them).
        let complexes = if want.is_some_and(|w| !w.complexes) {
            Vec::new()
        } else {
            let no_cache: CpuSet = online
                .iter()
                .filter(|&c| by_id(c).map_or(true, |f| f.llc.is_none()))
                .collect();
            partition(online, |cpu| {
                match by_id(cpu).and_then(|f| own_group(&f.llc, online, cpu)) {
                    Some(s) => s,
                    None => package_index(cpu)
                        .and_then(|i| packages.get(i))
                        .map(|p| p.cpus.intersection(&no_cache))
                        .unwrap_or_else(|| CpuSet::single(cpu)),
                }
            })
        };

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

        // A count stands only when no core made elsewhere reaches into its node (a sibling file
        // naming a CPU of another node, which the full build would have grouped otherwise).
        let counted = facts
            .counted
            .iter()
            .zip(crossed)
            .map(|((node, n), crossed)| (node.clone(), (!crossed).then_some(*n)))
            .collect();
        let mut topo = Topology {
            online: online.clone(),
            cores,
            packages,
            nodes,
            complexes,
            allowed: online.clone(),
            scope: None,
            counted,
        };
        if let Some(want) = &facts.partial {
            topo.narrow(want);
        }
        topo
    }

    /// Keeps what `want` read: the cores and complexes that hold a scope CPU, the packages when
    /// read; empties the rest.
    fn narrow(&mut self, want: &Want) {
        let mut scope = want
            .scope
            .as_ref()
            .map_or_else(|| self.online.clone(), |s| s.intersection(&self.online));
        for (node, _) in &self.counted {
            scope = scope.difference(node);
        }
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
}
