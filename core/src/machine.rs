//! `Machine`: the topology and the GPUs, read once from one source.

use crate::cpuset::CpuSet;
use crate::gpu::Gpu;
use crate::topology::Topology;

/// Where the allowed CPU set starts from; the cgroup cpuset under the fsroot narrows it in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedFrom {
    /// The process's own mask (`sched_getaffinity`), as the shim and `gpuaff plan` on `/` use.
    Process(CpuSet),
    /// The snapshot's online CPUs (a foreign fsroot).
    Snapshot,
    /// Exactly this set (`gpuaff plan --allowed`); not narrowed further.
    Explicit(CpuSet),
}

#[derive(Clone, Debug)]
pub struct Machine {
    pub topology: Topology,
    /// In PCI bus order.
    pub gpus: Vec<Gpu>,
    /// Non-fatal findings while reading (source disagreements, odd files); printed with `gpuaff:`.
    pub warnings: Vec<String>,
    /// Files opened to build this machine.
    pub files_read: usize,
}

use crate::config::Request;

impl Machine {
    /// Reads the machine under `req.fsroot` from `req.source` (sysfs, NVML or both).
    pub fn load(req: &Request, allowed: AllowedFrom) -> crate::Result<Machine> {
        let _ = (req, allowed);
        unimplemented!("Machine::load")
    }
}
