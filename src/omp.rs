//! `GPU_AFFINITY_OMP=1` (off by default): thread-count variables from the binding.
//!
//! After the constructor binds, each of `VARS` that the user has not set is set to the number of
//! cores in the binding (SMT siblings count once), so OpenMP, MKL and OpenBLAS start one thread per
//! bound core instead of one per CPU of the machine. Ordering limits: a runtime reads these when it
//! initialises; runtimes loaded later (dlopen, Python imports) and LLVM's libomp (lazy) see them,
//! a runtime whose constructor ran before ours and read them already does not (libgomp linked into the
//! program reads them in its constructor; its default thread count still follows the binding, since
//! gpuaff binds when libgomp first reads the mask).

use gpuaff_core::{sysfs::Fs, CpuSet};

pub const VAR: &str = "GPU_AFFINITY_OMP";

/// Set when unset, in this order.
pub const VARS: [&str; 3] = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"];

/// The number of cores of `cpus`: CPUs that share `thread_siblings_list` count once. A CPU whose
/// siblings cannot be read counts as a core of its own.
pub fn cores(fs: &Fs, cpus: &CpuSet) -> usize {
    let mut seen = CpuSet::new();
    let mut n = 0;
    for cpu in cpus.iter() {
        if seen.contains(cpu) {
            continue;
        }
        n += 1;
        let rel = format!("sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
        match fs.read_list(&rel) {
            Ok(Some(sib)) if sib.contains(cpu) => seen = seen.union(&sib),
            _ => seen.insert(cpu),
        }
    }
    n
}

/// Whether `GPU_AFFINITY_OMP` is on (checked before anything is bound).
pub fn enabled() -> gpuaff_core::Result<bool> {
    match crate::preload::env_lookup(VAR) {
        Some(v) if !v.trim().is_empty() => gpuaff_core::config::parse_bool(VAR, &v),
        _ => Ok(false),
    }
}

/// Sets the unset thread-count variables to the number of cores of `cpus`; returns what it set, for
/// the verbose line. Runs in the constructor, before any other thread reads the environment.
pub fn set_thread_counts(fsroot: &std::path::Path, cpus: &CpuSet) -> Vec<String> {
    let mut set = Vec::new();
    if cpus.is_empty() {
        return set;
    }
    let n = cores(&Fs::new(fsroot), cpus).to_string();
    for var in VARS {
        if std::env::var_os(var).is_some() {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            std::ffi::CString::new(var),
            std::ffi::CString::new(n.as_str()),
        ) {
            // SAFETY: valid C strings; the constructor runs before other threads read the environment.
            unsafe { libc::setenv(name.as_ptr(), value.as_ptr(), 0) };
            set.push(format!("{var}={n}"));
        }
    }
    set
}
