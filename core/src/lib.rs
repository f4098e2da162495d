//! gpuaff's pure core: reads the machine (sysfs/procfs under an fsroot, or NVML), resolves which GPU
//! each process uses, and computes binding plans. Nothing here changes the process: the effects
//! (binding threads, memory policy, preload hooks, the C ABI) live in the `gpuaff` crate.
//!
//! Data flows one way: `Request` (config) → `Machine` (topology + GPUs) → `Plan` → apply or report.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod check;
pub mod config;
pub mod cpuset;
pub mod error;
pub mod gpu;
pub mod handoff;
pub mod limits;
pub mod machine;
mod names;
pub mod nvml_procs;
pub mod plan;
pub mod procfs;
pub mod render;
pub mod render_check;
pub mod session;
pub mod sysfs;
pub mod topology;

pub use config::{MemBind, Request, Source, Threads};
pub use cpuset::CpuSet;
pub use error::{Error, ErrorKind, Result};
pub use gpu::{nvml, DeviceEnv, DeviceOrder, Gpu, Vendor, Visible};
pub use machine::Machine;
pub use plan::{Cores, Mode, Plan, PlanOptions, RankPlan};
pub use sysfs::Fs;
pub use topology::{AllowedFrom, Topology};

/// The crate version, as the C ABI's `gpu_affinity_version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
