//! `Request`: everything a binding needs to know from the user, from the environment, the C options
//! struct or CLI flags. Parsing is pure (the environment arrives as a lookup function) and every
//! error names the variable, the value and what is accepted.

use crate::plan::PlanOptions;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemBind {
    #[default]
    None,
    Preferred,
    Bind,
    Interleave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Threads {
    #[default]
    Inherit,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Auto,
    Sysfs,
    Nvml,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The local rank (LOCAL_RANK, then the launcher variables of DESIGN.md); None: nothing to do.
    pub rank: Option<usize>,
    /// GPU_AFFINITY_GPU: which visible GPU this process uses.
    pub gpu: Option<usize>,
    pub plan: PlanOptions,
    pub membind: MemBind,
    pub threads: Threads,
    pub strict: bool,
    pub verbose: bool,
    pub dry_run: bool,
    pub source: Source,
    pub nvml_lib: Option<PathBuf>,
    pub fsroot: PathBuf,
    pub cuda_visible_devices: Option<String>,
    pub cuda_device_order: Option<String>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            rank: None,
            gpu: None,
            plan: PlanOptions::default(),
            membind: MemBind::None,
            threads: Threads::Inherit,
            strict: false,
            verbose: false,
            dry_run: false,
            source: Source::Auto,
            nvml_lib: None,
            fsroot: PathBuf::from("/"),
            cuda_visible_devices: None,
            cuda_device_order: None,
        }
    }
}

/// An environment lookup: the real `std::env::var` in the shim, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The local rank from LOCAL_RANK or, in DESIGN.md's order, the launchers' variables. Cheap: the
/// constructor calls this first and returns at once on `Ok(None)`.
pub fn local_rank(env: Env) -> crate::Result<Option<usize>> {
    let _ = env;
    unimplemented!("config::local_rank")
}

impl Request {
    /// Every variable of DESIGN.md's environment table.
    pub fn from_env(env: Env) -> crate::Result<Request> {
        let _ = env;
        unimplemented!("Request::from_env")
    }
}
