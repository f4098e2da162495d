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
}
