//! GPUs behind one seam: each vendor says how its GPUs are found in sysfs/procfs (in the order its
//! runtime numbers them) and how a process's visible-device variables select them. The planner sees
//! only `Gpu { index, pci_bus_id, numa_node, local_cpus, .. }`, whatever the vendor.
//!
//! Adding a vendor: a module with a `GpuSource`, one entry in `SOURCES`, a value of `Vendor`.

pub mod amd;
pub mod nvidia;
pub mod nvml;
mod pci;

pub use nvidia::{
    entry_is_uuid, needs_nvml, parse_information, resolve_visible, DeviceOrder, ProcInfo,
};
pub use pci::{normalize_bdf, parse_bdf};

use crate::cpuset::CpuSet;
use crate::names::named;
use crate::sysfs::Fs;

/// Whose GPU it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Vendor {
    #[default]
    Nvidia,
    Amd,
}

named!(Vendor, "GPU_AFFINITY_VENDOR", Nvidia => "nvidia", Amd => "amd");

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Gpu {
    pub vendor: Vendor,
    /// Position in the vendor runtime's order among the machine's GPUs: PCI bus order for NVIDIA
    /// (= NVML index), the KFD topology order for AMD (= ROCm's index before any visibility
    /// variable applies).
    pub index: usize,
    /// sysfs form, lower case, 4-digit domain: `0000:07:00.0`.
    pub pci_bus_id: String,
    /// PCI `numa_node`; None when -1 or unknown.
    pub numa_node: Option<u32>,
    /// `local_cpulist` (or `local_cpus`, or NVML's node-scope affinity); empty when unknown.
    pub local_cpus: CpuSet,
    /// `GPU-...`: NVIDIA's from procfs or NVML; AMD's `GPU-` + 16 hex digits of the KFD `unique_id`.
    pub uuid: Option<String>,
    /// `/dev/nvidiaN` minor (NVIDIA); the DRM render minor (AMD).
    pub minor: Option<u32>,
    /// Model name, e.g. "NVIDIA H100 80GB HBM3", or "PCI device 0x74a1".
    pub model: Option<String>,
    /// The GPU memory's own CPU-less NUMA node (Grace Hopper/Blackwell); never a CPU binding target.
    pub mem_node: Option<u32>,
    /// UUIDs (`MIG-...`) of the MIG instances carved from this GPU.
    pub migs: Vec<String>,
    /// The PCI function's directory (under the fsroot) when a partial discovery left its
    /// `numa_node` unread (`GpuReads::defer_nodes`): `numa_node` is None until
    /// `read_pending_node`. None once read, and for every GPU of a full discovery.
    pub pending_node: Option<String>,
}

impl Gpu {
    /// Reads the `numa_node` a partial discovery left unread (nothing when none is pending).
    pub fn read_pending_node(&mut self, fs: &Fs) -> crate::Result<()> {
        if let Some(dir) = self.pending_node.take() {
            if let Some(n) = pci::numa_node(fs, &dir)? {
                self.numa_node = Some(n);
            }
        }
        Ok(())
    }
}

/// The GPUs a process sees, in its runtime's order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Visible {
    /// Indices into the machine's GPU list, in the runtime's order.
    pub gpus: Vec<usize>,
    /// Things the user should know (ignored entries, assumed order); printed with `gpuaff:`.
    pub warnings: Vec<String>,
    /// The variable that deliberately selects no GPU (set but empty): the process uses none.
    pub none_by: Option<&'static str>,
}

/// What a discovery reads beyond each GPU's PCI address and locality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuReads {
    /// NVIDIA: the driver's `information` and `numa_status`: `uuid`, `minor`, `model`, `mem_node`.
    pub identity: bool,
    /// Without `identity`: something to tell models apart, for the FASTEST_FIRST warning. `model`
    /// then holds the PCI device id ("PCI device 0x20b2"), read for GPUs the driver's procfs lists
    /// (those whose model `identity` would have read), one small sysfs file instead of two procfs
    /// ones.
    pub models: bool,
    /// Leave the `numa_node` of each GPU with local CPUs unread (`Gpu::pending_node`): plans
    /// that bind to a GPU's local CPUs need the node of the process's own GPU only, read once it
    /// is known (`Machine::load_fs`). The NVIDIA family's modes; a discovery that is
    /// reconciled with NVML reads them all first.
    pub defer_nodes: bool,
}

impl GpuReads {
    /// Everything.
    pub const ALL: GpuReads = GpuReads {
        identity: true,
        models: true,
        defer_nodes: false,
    };
    /// Only addresses and locality.
    pub const NONE: GpuReads = GpuReads {
        identity: false,
        models: false,
        defer_nodes: false,
    };
    pub fn union(self, other: GpuReads) -> GpuReads {
        GpuReads {
            identity: self.identity || other.identity,
            models: self.models || other.models,
            defer_nodes: self.defer_nodes && other.defer_nodes,
        }
    }
}

/// The values of every vendor's visible-device variables, as the process has them; set-but-empty
/// is kept (it means "no GPU" to CUDA and ROCr).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceEnv {
    vars: Vec<(&'static str, String)>,
}

impl DeviceEnv {
    /// Every vendor's variables, read through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> DeviceEnv {
        let mut d = DeviceEnv::default();
        for name in device_vars() {
            if let Some(v) = env(name) {
                d.set(name, v);
            }
        }
        d
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Sets `name` (one of `device_vars()`; others are ignored).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let Some(name) = device_vars().find(|n| *n == name) else {
            return;
        };
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }
}

/// One GPU vendor behind the seam.
pub trait GpuSource: Sync {
    fn vendor(&self) -> Vendor;
    /// The variables its runtime reads to select GPUs (and their order), as the process sets them.
    fn visible_vars(&self) -> &'static [&'static str];
    /// True when the variables say the process uses this vendor's GPUs (a vendor-only variable is
    /// set); decides the vendor on a machine with both.
    fn claims(&self, env: &DeviceEnv) -> bool;
    /// Checks the variables before anything is read, and says which identity reads resolving them
    /// needs.
    fn reads(&self, env: &DeviceEnv) -> crate::Result<GpuReads>;
    /// The machine's GPUs in the runtime's order (`Gpu::index` set).
    fn discover(&self, fs: &Fs, reads: GpuReads) -> crate::Result<Vec<Gpu>>;
    /// The GPUs the process sees, as its runtime resolves the variables.
    fn resolve_visible(&self, gpus: &[Gpu], env: &DeviceEnv) -> crate::Result<Visible>;
}

/// Every vendor, in the order `auto` tries them when no variable claims one.
pub static SOURCES: [&dyn GpuSource; 2] = [&nvidia::Nvidia, &amd::Amd];

/// The source of `vendor`.
pub fn source(vendor: Vendor) -> &'static dyn GpuSource {
    match vendor {
        Vendor::Nvidia => &nvidia::Nvidia,
        Vendor::Amd => &amd::Amd,
    }
}

/// Every vendor's variables, once each.
pub fn device_vars() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for s in SOURCES {
        for v in s.visible_vars() {
            if !seen.contains(v) {
                seen.push(v);
            }
        }
    }
    seen.into_iter()
}

/// The GPUs `gpus` (all of one vendor) a process sees under `env`.
pub fn visible(gpus: &[Gpu], env: &DeviceEnv) -> crate::Result<Visible> {
    let vendor = gpus.first().map_or(Vendor::Nvidia, |g| g.vendor);
    source(vendor).resolve_visible(gpus, env)
}

/// The warning for an entry of a visible-device list that ends it (CUDA, ROCr and HIP all drop the
/// entry and everything after it).
pub(crate) fn list_ended(
    var: &str,
    value: &str,
    entry: &str,
    why: &str,
    rest: &[impl AsRef<str>],
    runtime: &str,
) -> String {
    let ignored = if rest.is_empty() {
        String::new()
    } else {
        format!(
            " and the {} entries after it ({})",
            rest.len(),
            crate::limits::shown(&rest.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(","))
        )
    };
    format!(
        "{var}={}: entry {} is invalid ({why}); {runtime} ignores it{ignored}",
        crate::limits::shown(value),
        crate::limits::shown(entry)
    )
}
