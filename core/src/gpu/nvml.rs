//! The NVML source, through `nvml-wrapper`: dlopened at run time, initialised, queried and shut
//! down inside one call; only plain data (`Gpu`) leaves it.
//!
//! Only the device count, the handles by index and the PCI info are required; every other query
//! (UUID, affinities, NUMA node, model, minor, MIG) may fail or be missing from an old driver
//! (`NotSupported`, `FailedToLoadSymbol`) and then leaves its field empty.

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use std::mem::ManuallyDrop;
use std::os::raw::c_ulong;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The library `Nvml::init` loads when no path is given.
const DEFAULT_LIB: &str = "libnvidia-ml.so.1";
/// CPU ids NVML is asked about: twice Linux's largest NR_CPUS, so no real machine is cut short.
const MAX_CPUS: usize = 16384;
/// NUMA node ids NVML is asked about (Linux's MAX_NUMNODES is at most 1024).
const MAX_NODES: usize = 1024;
/// `nvmlAffinityScope_t` NODE (not re-exported by nvml-wrapper).
const SCOPE_NODE: u32 = 0;
/// `NVML_DEVICE_MIG_ENABLE`.
const MIG_ENABLED: u32 = 1;
/// Bound on MIG slots walked per GPU, whatever the driver claims (7 on A100/H100).
const MAX_MIG_SLOTS: u32 = 64;

/// The machine's GPUs as NVML reports them, in NVML index order (PCI bus order). `lib`: the path of
/// `libnvidia-ml.so.1` (GPU_AFFINITY_NVML_LIB); None: the dynamic loader's search. A missing library
/// or driver is an `Err` (ErrorKind::Nvml), never a panic.
pub fn discover(lib: Option<&Path>) -> Result<Vec<Gpu>> {
    let what = lib.map_or_else(|| DEFAULT_LIB.to_string(), |p| p.display().to_string());
    match catch_unwind(AssertUnwindSafe(|| discover_inner(lib, &what))) {
        Ok(result) => result,
        Err(_) => Err(Error::nvml(format!(
            "NVML ({what}) failed unexpectedly (nvml-wrapper panicked); not using NVML"
        ))),
    }
}

fn discover_inner(lib: Option<&Path>, what: &str) -> Result<Vec<Gpu>> {
    let mut builder = Nvml::builder();
    if let Some(path) = lib {
        builder.lib_path(path.as_os_str());
    }
    let nvml = builder
        .init()
        .map_err(|e| Error::nvml(format!("cannot load NVML ({what}): {}", describe(&e))))?;
    // nvml-wrapper's Drop calls nvmlShutdown through an `expect`: with the symbol missing (a broken
    // or foreign library) it would panic, so such a handle is leaked instead of dropped.
    let can_shut_down = nvml.lib().nvmlShutdown.is_ok();
    let nvml = ManuallyDrop::new(nvml);
    let gpus = read_gpus(&nvml, what);
    if can_shut_down {
        drop(ManuallyDrop::into_inner(nvml));
    }
    gpus
}

fn read_gpus(nvml: &Nvml, what: &str) -> Result<Vec<Gpu>> {
    let count = nvml.device_count().map_err(|e| {
        Error::nvml(format!(
            "NVML ({what}): cannot count GPUs: {}",
            describe(&e)
        ))
    })?;
    (0..count)
        .map(|index| {
            let device = nvml.device_by_index(index).map_err(|e| {
                Error::nvml(format!("NVML ({what}): GPU {index}: {}", describe(&e)))
            })?;
            read_gpu(&device, index as usize)
                .map_err(|e| Error::nvml(format!("NVML ({what}): GPU {index}: {}", describe(&e))))
        })
        .collect()
}

fn read_gpu(device: &Device<'_>, index: usize) -> std::result::Result<Gpu, NvmlError> {
    let pci = device.pci_info()?;
    let mem_node = device.numa_node_id().ok();
    let affinity_nodes = device
        .memory_affinity(MAX_NODES.div_ceil(c_ulong::BITS as usize), SCOPE_NODE)
        .map(|w| words_to_set(&w))
        .unwrap_or_default();
    Ok(Gpu {
        vendor: crate::gpu::Vendor::Nvidia,
        index,
        pci_bus_id: sysfs_bus_id(&pci.bus_id),
        numa_node: cpu_node(&affinity_nodes, mem_node),
        local_cpus: local_cpus(device),
        uuid: device.uuid().ok().filter(|u| !u.is_empty()),
        minor: device.minor_number().ok(),
        model: device.name().ok().filter(|m| !m.is_empty()),
        mem_node,
        migs: mig_uuids(device),
        pending_node: None,
    })
}

/// The GPU's node-scope CPUs (what sysfs calls `local_cpulist`); empty when NVML cannot say.
fn local_cpus(device: &Device<'_>) -> CpuSet {
    let words = MAX_CPUS.div_ceil(c_ulong::BITS as usize);
    device
        .cpu_affinity_within_scope(words, SCOPE_NODE)
        .or_else(|_| device.cpu_affinity(words))
        .map(|w| words_to_set(&w))
        .unwrap_or_default()
}

/// The NUMA node of the GPU's CPUs: the one node of its memory affinity, leaving out the GPU's own
/// memory node (`nvmlDeviceGetNumaNodeId` names a CPU-less node on Grace; CPUs never bind there).
/// None when NVML names no node or several: the planner then uses the node holding `local_cpus`.
fn cpu_node(affinity_nodes: &CpuSet, mem_node: Option<u32>) -> Option<u32> {
    let mut nodes = affinity_nodes.clone();
    if let Some(m) = mem_node {
        nodes.remove(m as usize);
    }
    match (nodes.len(), nodes.first()) {
        (1, Some(n)) => u32::try_from(n).ok(),
        _ => None,
    }
}

/// UUIDs of the MIG instances that exist on this GPU; empty when MIG is off or unsupported.
fn mig_uuids(device: &Device<'_>) -> Vec<String> {
    match device.mig_mode() {
        Ok(mode) if mode.current == MIG_ENABLED => {}
        _ => return Vec::new(),
    }
    let slots = device.mig_device_count().unwrap_or(0).min(MAX_MIG_SLOTS);
    // Slots of instances not created answer NotFound; they are skipped, not fatal.
    (0..slots)
        .filter_map(|i| device.mig_device_by_index(i).ok())
        .filter_map(|mig| mig.uuid().ok())
        .filter(|u| !u.is_empty())
        .collect()
}

/// NVML's words are `unsigned long`s (64 CPUs each on 64-bit Linux), bit i of word w = id w*BITS+i.
fn words_to_set(words: &[c_ulong]) -> CpuSet {
    let bits = c_ulong::BITS as usize;
    words
        .iter()
        .enumerate()
        .filter(|(_, &w)| w != 0)
        .flat_map(|(i, &w)| {
            (0..bits)
                .filter(move |&b| w & (1 << b) != 0)
                .map(move |b| i * bits + b)
        })
        .collect()
}

/// NVML's bus id (`00000000:07:00.0`, 8-digit domain, upper case) in sysfs form (`0000:07:00.0`).
pub fn sysfs_bus_id(nvml_bus_id: &str) -> String {
    let id = nvml_bus_id.trim().trim_end_matches('\0');
    match id.split_once(':') {
        Some((domain, rest)) => match u32::from_str_radix(domain, 16) {
            Ok(d) => format!("{d:04x}:{}", rest.to_ascii_lowercase()),
            Err(_) => id.to_ascii_lowercase(),
        },
        None => id.to_ascii_lowercase(),
    }
}

fn describe(e: &NvmlError) -> String {
    match e {
        NvmlError::DriverNotLoaded => {
            "the NVIDIA driver is not loaded (NVML_ERROR_DRIVER_NOT_LOADED)".into()
        }
        NvmlError::NoPermission => {
            "no permission to talk to the driver (NVML_ERROR_NO_PERMISSION)".into()
        }
        NvmlError::LibloadingError(le) => le.to_string(),
        other => other.to_string(),
    }
}

/// Merges NVML's answer into the sysfs GPU list (matched by PCI bus id): fills UUIDs, MIG instances,
/// models and memory nodes that sysfs lacks; returns one warning per disagreement, naming both answers.
///
/// Sysfs's order and locality win. A GPU only NVML sees is added (in PCI bus order, with NVML's
/// facts), since CUDA will enumerate it; a GPU only sysfs sees is kept. Indices are renumbered.
/// With no sysfs GPUs at all (no PCI tree, e.g. some containers) NVML's list is the answer.
pub fn reconcile(sysfs: &[Gpu], nvml: &[Gpu]) -> (Vec<Gpu>, Vec<String>) {
    if sysfs.is_empty() {
        return (nvml.to_vec(), Vec::new());
    }
    let mut warnings = Vec::new();
    let mut merged: Vec<Gpu> = Vec::with_capacity(sysfs.len().max(nvml.len()));
    for s in sysfs {
        let mut g = s.clone();
        match nvml.iter().find(|n| n.pci_bus_id == s.pci_bus_id) {
            Some(n) => {
                merge_into(&mut g, n, &mut warnings);
            }
            None => warnings.push(format!(
                "GPU {}: sysfs lists it, NVML does not (NVML lists {})",
                s.pci_bus_id,
                bus_ids(nvml)
            )),
        }
        merged.push(g);
    }
    for n in nvml {
        if sysfs.iter().any(|s| s.pci_bus_id == n.pci_bus_id) {
            continue;
        }
        warnings.push(format!(
            "GPU {}: NVML lists it (node {}, CPUs {}), sysfs does not (sysfs lists {}); using NVML's answer",
            n.pci_bus_id,
            node_text(n.numa_node),
            cpus_text(&n.local_cpus),
            bus_ids(sysfs)
        ));
        let at = merged
            .iter()
            .position(|g| g.pci_bus_id > n.pci_bus_id)
            .unwrap_or(merged.len());
        merged.insert(at, n.clone());
    }
    for (i, g) in merged.iter_mut().enumerate() {
        g.index = i;
    }
    (merged, warnings)
}

fn merge_into(g: &mut Gpu, n: &Gpu, warnings: &mut Vec<String>) {
    let id = &g.pci_bus_id;
    match (&g.uuid, &n.uuid) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => warnings.push(format!(
            "GPU {id}: procfs says UUID {a}, NVML says UUID {b}"
        )),
        (None, Some(b)) => g.uuid = Some(b.clone()),
        _ => {}
    }
    let nodes_differ = matches!((g.numa_node, n.numa_node), (Some(a), Some(b)) if a != b);
    let cpus_differ =
        !g.local_cpus.is_empty() && !n.local_cpus.is_empty() && g.local_cpus != n.local_cpus;
    if nodes_differ || cpus_differ {
        warnings.push(format!(
            "GPU {id}: sysfs says node {} (CPUs {}), NVML says node {} (CPUs {}); using sysfs",
            node_text(g.numa_node),
            cpus_text(&g.local_cpus),
            node_text(n.numa_node),
            cpus_text(&n.local_cpus)
        ));
    }
    // Where sysfs does not know the locality, NVML's answer is better than none.
    if g.local_cpus.is_empty() {
        g.local_cpus = n.local_cpus.clone();
    }
    if g.numa_node.is_none() {
        g.numa_node = n.numa_node;
    }
    if g.model.is_none() {
        g.model = n.model.clone();
    }
    if g.minor.is_none() {
        g.minor = n.minor;
    }
    if g.mem_node.is_none() {
        g.mem_node = n.mem_node;
    }
    if g.migs.is_empty() {
        g.migs = n.migs.clone();
    }
}

fn node_text(node: Option<u32>) -> String {
    node.map_or_else(|| "unknown".to_string(), |n| n.to_string())
}

fn cpus_text(cpus: &CpuSet) -> String {
    if cpus.is_empty() {
        "unknown".to_string()
    } else {
        cpus.to_list()
    }
}

fn bus_ids(gpus: &[Gpu]) -> String {
    if gpus.is_empty() {
        "none".to_string()
    } else {
        gpus.iter()
            .map(|g| g.pci_bus_id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(bus: &str, node: Option<u32>, cpus: &str) -> Gpu {
        Gpu {
            pci_bus_id: bus.to_string(),
            numa_node: node,
            local_cpus: CpuSet::parse_list(cpus).unwrap_or_default(),
            ..Gpu::default()
        }
    }

    #[test]
    fn bus_id_to_sysfs_form() {
        assert_eq!(sysfs_bus_id("00000000:07:00.0"), "0000:07:00.0");
        assert_eq!(sysfs_bus_id("00000000:BD:00.0"), "0000:bd:00.0");
        assert_eq!(sysfs_bus_id("00010000:3B:00.1"), "10000:3b:00.1");
        assert_eq!(sysfs_bus_id("0000:3b:00.0\0\0"), "0000:3b:00.0");
    }

    #[test]
    fn cpu_node_skips_the_gpu_memory_node() {
        let set = |l: &str| CpuSet::parse_list(l).unwrap_or_default();
        assert_eq!(cpu_node(&set("3"), None), Some(3));
        assert_eq!(cpu_node(&set("0,4"), Some(4)), Some(0));
        assert_eq!(cpu_node(&set("4"), Some(4)), None);
        assert_eq!(cpu_node(&set("0-1"), None), None);
        assert_eq!(cpu_node(&CpuSet::new(), None), None);
    }

    #[test]
    fn reconcile_fills_what_sysfs_lacks_and_keeps_sysfs_locality() {
        let s = vec![
            gpu("0000:07:00.0", Some(3), "48-63"),
            gpu("0000:0f:00.0", None, ""),
        ];
        let mut n = vec![
            gpu("0000:07:00.0", Some(3), "48-63"),
            gpu("0000:0f:00.0", Some(3), "48-63"),
        ];
        n[0].uuid = Some("GPU-a".into());
        n[0].migs = vec!["MIG-x".into()];
        n[1].mem_node = Some(9);
        let (m, w) = reconcile(&s, &n);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m[0].uuid.as_deref(), Some("GPU-a"));
        assert_eq!(m[0].migs, vec!["MIG-x".to_string()]);
        assert_eq!(m[1].numa_node, Some(3));
        assert_eq!(m[1].local_cpus.to_list(), "48-63");
        assert_eq!(m[1].mem_node, Some(9));
    }

    #[test]
    fn reconcile_merges_in_bus_order_and_renumbers() {
        let s = vec![
            gpu("0000:07:00.0", Some(3), "48-63"),
            gpu("0000:bd:00.0", Some(5), "80-95"),
        ];
        let n = vec![
            gpu("0000:07:00.0", Some(3), "48-63"),
            gpu("0000:0f:00.0", Some(3), "48-63"),
            gpu("0000:bd:00.0", Some(5), "80-95"),
        ];
        let (m, w) = reconcile(&s, &n);
        let ids: Vec<_> = m.iter().map(|g| (g.index, g.pci_bus_id.as_str())).collect();
        assert_eq!(
            ids,
            [
                (0, "0000:07:00.0"),
                (1, "0000:0f:00.0"),
                (2, "0000:bd:00.0")
            ]
        );
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("0000:0f:00.0") && w[0].contains("sysfs does not"),
            "{w:?}"
        );
    }
}
