//! The compute processes NVML lists on each GPU (`gpuaff check` discovery). Loaded, asked and shut
//! down inside one call, as `nvml::discover` does; a missing library or driver is an `Err`.

use crate::error::{Error, Result};
use nvml_wrapper::Nvml;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// `(pid, NVML index of the GPU)` for every compute process on every GPU. The pids are the driver's:
/// in a container with its own pid namespace they are the host's and match nothing under `/proc`.
pub fn compute_pids(lib: Option<&Path>) -> Result<Vec<(u32, usize)>> {
    let what = lib.map_or_else(
        || "libnvidia-ml.so.1".to_string(),
        |p| p.display().to_string(),
    );
    match catch_unwind(AssertUnwindSafe(|| inner(lib, &what))) {
        Ok(r) => r,
        Err(_) => Err(Error::nvml(format!(
            "NVML ({what}) failed unexpectedly listing processes"
        ))),
    }
}

fn inner(lib: Option<&Path>, what: &str) -> Result<Vec<(u32, usize)>> {
    let mut builder = Nvml::builder();
    if let Some(path) = lib {
        builder.lib_path(path.as_os_str());
    }
    let nvml = builder
        .init()
        .map_err(|e| Error::nvml(format!("cannot load NVML ({what}): {e}")))?;
    // As in nvml::discover: without nvmlShutdown, nvml-wrapper's Drop would panic; leak instead.
    let can_shut_down = nvml.lib().nvmlShutdown.is_ok();
    let nvml = ManuallyDrop::new(nvml);
    let mut out = Vec::new();
    let count = nvml.device_count().unwrap_or(0);
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        // An old driver without the call lists nothing: discovery then relies on /proc alone.
        for p in device.running_compute_processes().unwrap_or_default() {
            out.push((p.pid, index as usize));
        }
    }
    if can_shut_down {
        drop(ManuallyDrop::into_inner(nvml));
    }
    Ok(out)
}
