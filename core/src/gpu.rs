//! GPUs as the machine has them (PCI bus order, which is NVML's) and as CUDA shows them to a process
//! (`CUDA_VISIBLE_DEVICES`, `CUDA_DEVICE_ORDER`).

use crate::cpuset::CpuSet;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Gpu {
    /// Position in PCI bus order among the machine's NVIDIA GPUs (= NVML index).
    pub index: usize,
    /// sysfs form, lower case, 4-digit domain: `0000:07:00.0`.
    pub pci_bus_id: String,
    /// PCI `numa_node`; None when -1 or unknown.
    pub numa_node: Option<u32>,
    /// `local_cpulist` (or `local_cpus`, or NVML's node-scope affinity); empty when unknown.
    pub local_cpus: CpuSet,
    /// `GPU-xxxxxxxx-...`, from procfs or NVML.
    pub uuid: Option<String>,
    /// `/dev/nvidiaN` minor.
    pub minor: Option<u32>,
    /// Model name, e.g. "NVIDIA H100 80GB HBM3".
    pub model: Option<String>,
    /// The GPU memory's own CPU-less NUMA node (Grace Hopper/Blackwell); never a CPU binding target.
    pub mem_node: Option<u32>,
    /// UUIDs (`MIG-...`) of the MIG instances carved from this GPU.
    pub migs: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceOrder {
    /// CUDA's default; gpuaff assumes PCI order (warning when models are mixed).
    #[default]
    FastestFirst,
    PciBusId,
}

/// The GPUs a process sees, in CUDA's order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Visible {
    /// Indices into the machine's GPU list, in CUDA order.
    pub gpus: Vec<usize>,
    /// Things the user should know (ignored entries, assumed order); printed with `gpuaff:`.
    pub warnings: Vec<String>,
}

impl DeviceOrder {
    /// `CUDA_DEVICE_ORDER`: `FASTEST_FIRST` (default) or `PCI_BUS_ID`.
    pub fn parse(value: Option<&str>) -> crate::Result<DeviceOrder> {
        let _ = value;
        unimplemented!("DeviceOrder::parse")
    }
}

/// The GPUs a process sees, from `CUDA_VISIBLE_DEVICES` (None: all, in PCI order).
pub fn resolve_visible(
    gpus: &[Gpu],
    cuda_visible_devices: Option<&str>,
    order: DeviceOrder,
) -> crate::Result<Visible> {
    let _ = (gpus, cuda_visible_devices, order);
    unimplemented!("gpu::resolve_visible")
}
