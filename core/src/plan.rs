//! The planner: one small pure function per mode over (topology, GPUs, options) → per-rank CPU sets.
//! Algorithms, worked examples and deliberate differences: ../shared/MODES.md.

use crate::cpuset::CpuSet;
use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    None,
    // NVIDIA gpu_affinity.py family ("socket" = the GPU's local CPUs).
    Socket,
    SocketSingle,
    SocketSingleUnique,
    SocketUniqueInterleaved,
    SocketUniqueContiguous,
    // PyTorch torch.numa.binding family.
    Node,
    Package,
    Exclusive,
    CoreComplex,
    // GPU_AFFINITY_MAP.
    Map,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Cores {
    #[default]
    AllLogical,
    SingleLogical,
}

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
    /// The CPUs to bind to; never empty unless the mode is `none` (then: leave the process alone).
    pub cpus: CpuSet,
    /// NUMA node ids for the memory policy: the nodes of `cpus` (never a CPU-less node by accident).
    pub mems: CpuSet,
    /// Deliberate differences from the reference that applied, one line each (printed as warnings).
    pub notes: Vec<String>,
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
    let _ = (topo, gpus, visible, opts);
    unimplemented!("plan::plan_all")
}

/// Plans one rank; `gpu` overrides which visible GPU it uses (GPU_AFFINITY_GPU).
pub fn plan_rank(
    topo: &Topology,
    gpus: &[Gpu],
    visible: &Visible,
    opts: &PlanOptions,
    rank: usize,
    gpu: Option<usize>,
) -> Result<RankPlan, Error> {
    let _ = (topo, gpus, visible, opts, rank, gpu);
    unimplemented!("plan::plan_rank")
}
