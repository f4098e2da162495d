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

use crate::config::{Request, Source};
use crate::sysfs::Fs;
use std::path::Path;

impl Machine {
    /// Reads the machine under `req.fsroot` from `req.source` (sysfs, NVML or both).
    pub fn load(req: &Request, allowed: AllowedFrom) -> crate::Result<Machine> {
        let fs = Fs::new(&req.fsroot);
        Self::load_fs(&fs, req, allowed, &|lib| crate::nvml::discover(lib))
    }

    /// As `load`, over a given `Fs` and with the NVML query passed in (tests give a fake).
    ///
    /// `Source::Auto` reads sysfs and asks NVML only when `CUDA_VISIBLE_DEVICES` names a GPU by
    /// UUID or MIG UUID that the sysfs GPUs cannot resolve (no UUIDs or MIG instances known): a
    /// machine without GPUs, or with indices only, never pays for loading NVML.
    pub fn load_fs(
        fs: &Fs,
        req: &Request,
        allowed: AllowedFrom,
        nvml: &dyn Fn(Option<&Path>) -> crate::Result<Vec<Gpu>>,
    ) -> crate::Result<Machine> {
        let (topology, mut warnings) = Topology::load_with_warnings(fs, &allowed)?;
        let gpus = match req.source {
            Source::Sysfs => crate::gpu::discover_sysfs(fs)?,
            Source::Nvml => nvml(req.nvml_lib.as_deref())?,
            Source::Auto => {
                let sysfs = crate::gpu::discover_sysfs(fs)?;
                if needs_nvml(&sysfs, req.cuda_visible_devices.as_deref()) {
                    match nvml(req.nvml_lib.as_deref()) {
                        Ok(nv) if sysfs.is_empty() => nv,
                        Ok(nv) => {
                            let (merged, w) = crate::nvml::reconcile(&sysfs, &nv);
                            warnings.extend(w);
                            merged
                        }
                        Err(e) => {
                            warnings.push(format!(
                                "CUDA_VISIBLE_DEVICES names GPUs by UUID, which sysfs cannot \
                                 resolve, and NVML is unavailable ({e}); using sysfs only"
                            ));
                            sysfs
                        }
                    }
                } else {
                    sysfs
                }
            }
        };
        Ok(Machine {
            topology,
            gpus,
            warnings,
            files_read: fs.files_read(),
        })
    }
}

/// True when a `CUDA_VISIBLE_DEVICES` entry is a UUID or MIG UUID that `gpus` cannot resolve.
pub fn needs_nvml(gpus: &[Gpu], cuda_visible_devices: Option<&str>) -> bool {
    let Some(cvd) = cuda_visible_devices else {
        return false;
    };
    cvd.split(',').map(str::trim).any(|e| {
        if !crate::gpu::entry_is_uuid(e) {
            false
        } else if e.starts_with("MIG-") {
            !gpus
                .iter()
                .any(|g| g.migs.iter().any(|m| m.eq_ignore_ascii_case(e)))
        } else {
            gpus.iter().any(|g| g.uuid.is_none())
        }
    })
}
