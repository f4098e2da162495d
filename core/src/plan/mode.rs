//! The modes and their options, and what each mode needs read from the machine (declared here,
//! beside the modes, so that a new mode states its reads where it is added).

use super::PlanOptions;
use crate::names::named;

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

named!(Mode, "GPU_AFFINITY_MODE",
    None => "none",
    Socket => "socket",
    SocketSingle => "socket_single",
    SocketSingleUnique => "socket_single_unique",
    SocketUniqueInterleaved => "socket_unique_interleaved",
    SocketUniqueContiguous => "socket_unique_contiguous",
    Node => "node",
    Package => "package",
    Exclusive => "exclusive",
    CoreComplex => "core-complex" | "core_complex",
    Map => "map",
);
named!(Cores, "GPU_AFFINITY_CORES", AllLogical => "all_logical", SingleLogical => "single_logical");

/// Which reference a mode follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `none`: leave the process alone.
    None,
    /// NVIDIA `gpu_affinity.py`.
    Nvidia,
    /// PyTorch `torch.numa.binding`.
    Torch,
    /// `GPU_AFFINITY_MAP`.
    Map,
}

impl Mode {
    pub fn family(&self) -> Family {
        match self {
            Mode::None => Family::None,
            Mode::Socket
            | Mode::SocketSingle
            | Mode::SocketSingleUnique
            | Mode::SocketUniqueInterleaved
            | Mode::SocketUniqueContiguous => Family::Nvidia,
            Mode::Node | Mode::Package | Mode::Exclusive | Mode::CoreComplex => Family::Torch,
            Mode::Map => Family::Map,
        }
    }
}

/// Which CPUs a plan looks at in detail (see `Need`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedScope {
    /// None: the plan needs no per-CPU fact.
    Nothing,
    /// The CPUs near the machine's GPUs: their local CPUs and the CPUs of their nodes.
    GpuNodes,
    /// The CPUs near the GPU the process uses (its local CPUs and its node's CPUs): plans that
    /// split only their own GPU's node. The machine's GPUs when which one is not yet certain.
    OwnGpu,
    /// Every online CPU.
    Machine,
}

/// What a plan needs to read, beyond the online CPUs, the NUMA nodes' CPUs, the allowed set and
/// the GPUs (always read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The CPUs whose cores and complexes are read.
    pub scope: NeedScope,
    /// SMT sibling sets (cores).
    pub cores: bool,
    /// Core complexes (the highest-level cache); implies packages (CPUs without cache information
    /// form one complex per package).
    pub complexes: bool,
    /// Packages, for the whole machine (one or two files per package).
    pub packages: bool,
    /// NUMA distances. No mode needs them: a GPU on a CPU-less node is placed by its local CPUs.
    pub distances: bool,
    /// The GPUs' identity from the driver's procfs (`uuid`, `minor`, `model`, `mem_node`): only
    /// `CUDA_VISIBLE_DEVICES` entries that are not indices (UUIDs, prefixes, MIG UUIDs) need it.
    /// Without it those fields stay None (`mem_node` too: no plan uses it), except `model` as
    /// `models` says.
    pub identity: bool,
    /// Without `identity`: tell the GPU models apart (the FASTEST_FIRST mixed-models warning);
    /// `model` holds the PCI device id ("PCI device 0x20b2") of each GPU the driver lists
    /// (`gpu::GpuReads::models`). Not needed with `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
    pub models: bool,
    /// Every GPU's `numa_node`. Without it only the nodes of GPUs without local CPUs are read at
    /// load, and the process's own GPU's once the visible devices say which it is
    /// (`Machine::load_fs`): the NVIDIA family binds to local CPUs, and a plan names the
    /// node of its own GPU only. The PyTorch family needs them all (GPUs on one node share it).
    pub gpu_nodes: bool,
    /// Of the other GPUs' homes only the number of cores matters (the unique modes' balanced
    /// split; `socket` and `socket_single` use their own GPU's cores only): whole nodes away from
    /// the process's GPU may be counted instead of listed (`Want::count_only`). Not
    /// `socket_single_unique`, whose GPUs each pick a core in turn.
    pub count_others: bool,
}

impl Need {
    /// Everything, as `Machine::load` reads.
    pub fn everything() -> Need {
        Need {
            scope: NeedScope::Machine,
            cores: true,
            complexes: true,
            packages: true,
            distances: true,
            identity: true,
            models: true,
            gpu_nodes: true,
            count_others: false,
        }
    }

    /// Nothing beyond what is always read.
    pub fn nothing() -> Need {
        Need {
            scope: NeedScope::Nothing,
            cores: false,
            complexes: false,
            packages: false,
            distances: false,
            identity: false,
            models: true,
            gpu_nodes: false,
            count_others: false,
        }
    }
}

/// What a plan in `mode` needs, whatever the other options (`cores`, `balanced`, `nproc`).
///
/// - `none`, `map`: nothing (`map` checks its lists against the allowed set only).
/// - the NVIDIA family: the cores near the GPUs (the unique modes split every participating
///   GPU's local cores, `single_logical` keeps one CPU per core).
/// - `node`, `exclusive`: the cores near the process's own GPU (other GPUs' nodes only count GPUs).
/// - `core-complex`: cores and complexes near the process's own GPU, and the packages.
/// - `package`: the packages, and the cores of the whole machine (for `single_logical`).
///
/// Only the PyTorch family needs every GPU's node (`Need::gpu_nodes`).
pub fn need(mode: Mode) -> Need {
    let gpu_nodes = mode.family() == Family::Torch;
    // The PyTorch family splits the CPUs of its own GPU's node(s) only.
    let scope = if gpu_nodes {
        NeedScope::OwnGpu
    } else {
        NeedScope::GpuNodes
    };
    let count_others = mode.family() == Family::Nvidia && mode != Mode::SocketSingleUnique;
    let near = |cores, complexes| Need {
        scope,
        cores,
        complexes,
        packages: complexes,
        distances: false,
        identity: false,
        models: true,
        gpu_nodes,
        count_others,
    };
    match mode {
        Mode::None | Mode::Map => Need::nothing(),
        Mode::Socket
        | Mode::SocketSingle
        | Mode::SocketSingleUnique
        | Mode::SocketUniqueInterleaved
        | Mode::SocketUniqueContiguous
        | Mode::Node
        | Mode::Exclusive => near(true, false),
        Mode::CoreComplex => near(true, true),
        Mode::Package => Need {
            scope: NeedScope::Machine,
            cores: true,
            complexes: false,
            packages: true,
            distances: false,
            identity: false,
            models: true,
            gpu_nodes,
            count_others,
        },
    }
}

/// `need(opts.mode)`, narrowed by the options: `socket`, `node` and `package` with
/// `all_logical` bind whole CPU sets and need no cores.
pub fn need_for(opts: &PlanOptions) -> Need {
    let mut n = need(opts.mode);
    let whole = matches!(opts.mode, Mode::Socket | Mode::Node | Mode::Package);
    if whole && opts.cores == Cores::AllLogical {
        n.cores = false;
    }
    if !n.cores && !n.complexes {
        n.scope = NeedScope::Nothing;
    }
    n
}
