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
    /// CPUs this process may use: its mask narrowed by the cgroup cpuset (see `AllowedFrom`).
    pub allowed: CpuSet,
    /// None: complete. Some(scope): a partial topology read for a plan (`Machine::load_for`):
    /// `cores` and `complexes` hold only the groups with a CPU in the scope, and each of `cores`,
    /// `complexes`, `packages` and the node distances is empty when the plan did not need it.
    /// `online`, `nodes` (their CPUs) and `allowed` are always complete.
    pub scope: Option<CpuSet>,
    /// A partial topology's whole nodes (their online CPUs, outside `scope`) whose cores were
    /// counted, not listed (`Want::count_only`); the count is None when a listed core reaches
    /// into the node, so that the count could not be vouched for. Empty when complete.
    pub counted: Vec<(CpuSet, Option<usize>)>,
}

mod allowed;
mod build;
mod read;
#[cfg(test)]
mod tests;

pub use allowed::{allowed_set, cgroup_cpus, AllowedFrom};
pub use read::{
    read_cpu_facts, read_cpu_facts_in, read_facts, read_facts_for, read_nodes, read_online,
    CpuFacts, CpuRead, Facts, NodeFacts, Want,
};

use crate::error::Result;
use crate::sysfs::Fs;

/// What every load reads before deciding which per-CPU facts it needs: the online CPUs, the NUMA
/// nodes and the allowed set.
pub struct Base {
    pub online: CpuSet,
    pub nodes: Vec<NodeFacts>,
    pub allowed: CpuSet,
}

impl Topology {
    /// The one topology loader. Reads the online CPUs, the NUMA nodes (their distance rows when
    /// `distances`) and the allowed set (non-fatal findings go to `warnings`), then the per-CPU facts
    /// that `want` asks for, given what was read so far (the machine loader finds the GPUs there
    /// and scopes the reads to their CPUs). The topology is partial (`scope`) unless `want` asks
    /// for everything.
    pub fn load_with(
        fs: &Fs,
        allowed: &AllowedFrom,
        distances: bool,
        warnings: &mut Vec<String>,
        want: impl FnOnce(&Base, &mut Vec<String>) -> Result<Want>,
    ) -> Result<Topology> {
        let online = read_online(fs)?;
        let nodes = read_nodes(fs, distances)?;
        let cgroup = cgroup_cpus(fs, &online)?;
        let allowed = allowed_set(&online, allowed, cgroup.as_ref(), warnings)?;
        let base = Base {
            online,
            nodes,
            allowed,
        };
        let want = Want {
            distances,
            ..want(&base, warnings)?
        };
        let read = read_cpu_facts_in(fs, &base.online, &base.nodes, &want)?;
        let facts = read.into_facts(base.online, base.nodes, want);
        let mut topology = Topology::build(&facts);
        topology.allowed = base.allowed;
        Ok(topology)
    }

    /// The whole topology under the fsroot, with the allowed set (`gpuaff topo`, tests).
    pub fn load(fs: &Fs, allowed: &AllowedFrom) -> Result<Topology> {
        Self::load_with(fs, allowed, true, &mut Vec::new(), |_, _| {
            Ok(Want::everything())
        })
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
