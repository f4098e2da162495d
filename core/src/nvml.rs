//! The NVML source, through `nvml-wrapper`: dlopened at run time, initialised, queried and shut
//! down inside one call; only plain data (`Gpu`) leaves it.

use crate::error::Result;
use crate::gpu::Gpu;
use std::path::Path;

/// The machine's GPUs as NVML reports them, in NVML index order (PCI bus order). `lib`: the path of
/// `libnvidia-ml.so.1` (GPU_AFFINITY_NVML_LIB); None: the dynamic loader's search. A missing library
/// or driver is an `Err` (ErrorKind::Nvml), never a panic.
pub fn discover(lib: Option<&Path>) -> Result<Vec<Gpu>> {
    let _ = lib;
    unimplemented!("nvml::discover")
}

/// Merges NVML's answer into the sysfs GPU list (matched by PCI bus id): fills UUIDs, MIG instances,
/// models and memory nodes that sysfs lacks; returns one warning per disagreement, naming both answers.
pub fn reconcile(sysfs: &[Gpu], nvml: &[Gpu]) -> (Vec<Gpu>, Vec<String>) {
    let _ = (sysfs, nvml);
    unimplemented!("nvml::reconcile")
}
