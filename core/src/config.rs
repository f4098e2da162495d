//! `Request`: everything a binding needs to know from the user, from the environment, the C options
//! struct or CLI flags. Parsing is pure (the environment arrives as a lookup function) and every
//! error names the variable, the value and what is accepted.

use crate::cpuset::CpuSet;
use crate::error::Error;
use crate::gpu::DeviceEnv;
use crate::names::named;
use crate::plan::{Cores, Mode, PlanOptions};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VendorChoice {
    #[default]
    Auto,
    Nvidia,
    Amd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The local rank (LOCAL_RANK, then the launcher variables the README lists); None: nothing to do.
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
    /// GPU_AFFINITY_VENDOR: whose GPUs the process uses (`auto`: see `machine`'s vendor rule).
    pub vendor: VendorChoice,
    /// Every vendor's visible-device variables (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ...).
    pub devices: DeviceEnv,
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
            vendor: VendorChoice::Auto,
            devices: DeviceEnv::default(),
        }
    }
}

/// An environment lookup: the real `std::env::var` in the shim, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where the local rank comes from, in order; the first one set decides.
pub const LOCAL_RANK_VARS: [&str; 7] = [
    "LOCAL_RANK",
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "PALS_LOCAL_RANKID",
    "FLUX_TASK_LOCAL_ID",
];

/// Where the number of processes on this node comes from, in order (GPU_AFFINITY_NPROC overrides).
pub const LOCAL_SIZE_VARS: [&str; 4] = [
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_NTASKS_PER_NODE",
];

const BOOL_NAMES: &str = "1, 0, true, false, yes, no";
const MAP_NAMES: &str = "CPU lists separated by ';', one per local rank, e.g. 0-7;8-15";

/// A set, non-empty value; empty strings count as unset.
fn get(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

fn parse_index(name: &str, value: &str) -> crate::Result<usize> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|_| Error::bad_value(name, value, "a non-negative integer"))
}

fn parse_count(name: &str, value: &str) -> crate::Result<usize> {
    // SLURM_NTASKS_PER_NODE may read "2(x3)": the leading integer is the count.
    let v = value.trim();
    let digits = if name == "SLURM_NTASKS_PER_NODE" {
        let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        let rest = &v[end..];
        if rest.is_empty() || rest.starts_with('(') || rest.starts_with(',') {
            &v[..end]
        } else {
            v
        }
    } else {
        v
    };
    match digits.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::bad_value(name, value, "a positive integer")),
    }
}

/// `1`/`0`, `true`/`false`, `yes`/`no`, in any case.
pub fn parse_bool(name: &str, value: &str) -> crate::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(Error::bad_value(name, value, BOOL_NAMES)),
    }
}

/// `GPU_AFFINITY_MAP`: `0-7;8-15;...`, one non-empty CPU list per local rank.
pub fn parse_map(name: &str, value: &str) -> crate::Result<Vec<CpuSet>> {
    crate::limits::check_list(name, value, ';')?;
    value
        .split(';')
        .map(|item| {
            let set = CpuSet::parse_list(item).map_err(|e| {
                Error::bad_value(name, value, MAP_NAMES).context(format!("{item:?}: {e}"))
            })?;
            if set.is_empty() {
                return Err(Error::bad_value(name, value, MAP_NAMES)
                    .context("an empty CPU list in the map"));
            }
            Ok(set)
        })
        .collect()
}

named!(MemBind, "GPU_AFFINITY_MEMBIND", None => "none", Preferred => "preferred", Bind => "bind", Interleave => "interleave");
named!(Threads, "GPU_AFFINITY_THREADS", Inherit => "inherit", Off => "off");
named!(Source, "GPU_AFFINITY_SOURCE", Auto => "auto", Sysfs => "sysfs", Nvml => "nvml");
named!(VendorChoice, "GPU_AFFINITY_VENDOR", Auto => "auto", Nvidia => "nvidia", Amd => "amd");

/// The local rank from LOCAL_RANK or, in the README's order, the launchers' variables. Cheap: the
/// constructor calls this first and returns at once on `Ok(None)`.
pub fn local_rank(env: Env) -> crate::Result<Option<usize>> {
    for name in LOCAL_RANK_VARS {
        if let Some(v) = get(env, name) {
            return parse_index(name, &v).map(Some);
        }
    }
    Ok(None)
}

/// The number of processes on this node: GPU_AFFINITY_NPROC, else the first launcher variable set.
pub fn local_size(env: Env) -> crate::Result<Option<usize>> {
    for name in std::iter::once("GPU_AFFINITY_NPROC").chain(LOCAL_SIZE_VARS) {
        if let Some(v) = get(env, name) {
            return parse_count(name, &v).map(Some);
        }
    }
    Ok(None)
}

impl Request {
    /// The local rank the plan is for: the rank, or without one the GPU override.
    pub fn plan_rank(&self) -> crate::Result<usize> {
        match (self.rank, self.gpu) {
            (Some(r), _) => Ok(r),
            (None, Some(g)) => Ok(g),
            (None, None) => Err(Error::invalid(
                "no local rank: set LOCAL_RANK (or a launcher's local-rank variable) or GPU_AFFINITY_GPU",
            )),
        }
    }

    /// Every variable of the README's environment table.
    pub fn from_env(env: Env) -> crate::Result<Request> {
        let flag = |name: &str, default: bool| -> crate::Result<bool> {
            get(env, name).map_or(Ok(default), |v| parse_bool(name, &v))
        };
        let map = get(env, "GPU_AFFINITY_MAP")
            .map(|v| parse_map("GPU_AFFINITY_MAP", &v))
            .transpose()?;
        let mode = match get(env, "GPU_AFFINITY_MODE") {
            Some(v) => Mode::parse(&v)?,
            None if map.is_some() => Mode::Map,
            None => PlanOptions::default().mode,
        };
        if mode == Mode::Map && map.is_none() {
            return Err(Error::bad_value(
                "GPU_AFFINITY_MODE",
                "map",
                "map only together with GPU_AFFINITY_MAP (e.g. 0-7;8-15)",
            ));
        }
        let plan = PlanOptions {
            mode,
            cores: get(env, "GPU_AFFINITY_CORES")
                .map_or(Ok(Cores::default()), |v| Cores::parse(&v))?,
            balanced: flag("GPU_AFFINITY_BALANCED", true)?,
            nproc: local_size(env)?,
            map,
        };
        Ok(Request {
            rank: local_rank(env)?,
            gpu: get(env, "GPU_AFFINITY_GPU")
                .map(|v| parse_index("GPU_AFFINITY_GPU", &v))
                .transpose()?,
            plan,
            membind: get(env, "GPU_AFFINITY_MEMBIND")
                .map_or(Ok(MemBind::default()), |v| MemBind::parse(&v))?,
            threads: get(env, "GPU_AFFINITY_THREADS")
                .map_or(Ok(Threads::default()), |v| Threads::parse(&v))?,
            strict: flag("GPU_AFFINITY_STRICT", false)?,
            verbose: flag("GPU_AFFINITY_VERBOSE", false)?,
            dry_run: flag("GPU_AFFINITY_DRY_RUN", false)?,
            source: get(env, "GPU_AFFINITY_SOURCE")
                .map_or(Ok(Source::default()), |v| Source::parse(&v))?,
            nvml_lib: get(env, "GPU_AFFINITY_NVML_LIB").map(PathBuf::from),
            fsroot: get(env, "GPU_AFFINITY_FSROOT")
                .map_or_else(|| PathBuf::from("/"), PathBuf::from),
            vendor: get(env, "GPU_AFFINITY_VENDOR")
                .map_or(Ok(VendorChoice::default()), |v| VendorChoice::parse(&v))?,
            // Set but empty means "no GPU" to CUDA and ROCr: kept as set.
            devices: DeviceEnv::from_env(env),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn req(vars: &[(&str, &str)]) -> crate::Result<Request> {
        Request::from_env(&with(vars))
    }

    /// The error names the variable and the value.
    fn bad(vars: &[(&str, &str)], var: &str, value: &str) {
        let e = req(vars).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains(var), "{e}");
        assert!(e.message().contains(value), "{e}");
    }

    #[test]
    fn nothing_set_is_the_default_request() {
        assert_eq!(req(&[]).unwrap(), Request::default());
        assert_eq!(local_rank(&with(&[])).unwrap(), None);
    }

    #[test]
    fn local_rank_order_first_set_decides() {
        for (i, name) in LOCAL_RANK_VARS.iter().enumerate() {
            // Every later variable disagrees; the earlier ones are unset or empty.
            let mut vars: Vec<(&str, &str)> = vec![(name, "5")];
            vars.extend(LOCAL_RANK_VARS[i + 1..].iter().map(|n| (*n, "9")));
            vars.extend(LOCAL_RANK_VARS[..i].iter().map(|n| (*n, "")));
            assert_eq!(local_rank(&with(&vars)).unwrap(), Some(5), "{name}");
            assert_eq!(req(&vars).unwrap().rank, Some(5));
        }
        // A malformed first variable is an error even when a later one is good.
        for v in ["abc", "-1", "1.5"] {
            let e = local_rank(&with(&[("LOCAL_RANK", v), ("SLURM_LOCALID", "2")])).unwrap_err();
            assert!(
                e.message().contains("LOCAL_RANK") && e.message().contains(v),
                "{e}"
            );
        }
        let e = local_rank(&with(&[("SLURM_LOCALID", "x")])).unwrap_err();
        assert!(e.message().contains("SLURM_LOCALID"));
    }

    #[test]
    fn local_world_size_and_nproc() {
        for name in LOCAL_SIZE_VARS {
            assert_eq!(req(&[(name, "4")]).unwrap().plan.nproc, Some(4), "{name}");
        }
        assert_eq!(
            req(&[("LOCAL_WORLD_SIZE", "2"), ("SLURM_NTASKS_PER_NODE", "8")])
                .unwrap()
                .plan
                .nproc,
            Some(2)
        );
        assert_eq!(
            req(&[("SLURM_NTASKS_PER_NODE", "2(x3)")])
                .unwrap()
                .plan
                .nproc,
            Some(2)
        );
        assert_eq!(
            req(&[("GPU_AFFINITY_NPROC", "3"), ("LOCAL_WORLD_SIZE", "8")])
                .unwrap()
                .plan
                .nproc,
            Some(3)
        );
        bad(&[("LOCAL_WORLD_SIZE", "0")], "LOCAL_WORLD_SIZE", "0");
        bad(
            &[("LOCAL_WORLD_SIZE", "2(x3)")],
            "LOCAL_WORLD_SIZE",
            "2(x3)",
        );
        bad(
            &[("GPU_AFFINITY_NPROC", "many")],
            "GPU_AFFINITY_NPROC",
            "many",
        );
        bad(
            &[("SLURM_NTASKS_PER_NODE", "x4")],
            "SLURM_NTASKS_PER_NODE",
            "x4",
        );
    }

    #[test]
    fn mode_cores_balanced() {
        let r = req(&[
            ("GPU_AFFINITY_MODE", "core_complex"),
            ("GPU_AFFINITY_CORES", "single_logical"),
            ("GPU_AFFINITY_BALANCED", "0"),
        ])
        .unwrap();
        assert_eq!(r.plan.mode, Mode::CoreComplex);
        assert_eq!(r.plan.cores, Cores::SingleLogical);
        assert!(!r.plan.balanced);
        for (v, want) in [
            ("1", true),
            ("TRUE", true),
            ("yes", true),
            ("False", false),
            ("no", false),
        ] {
            assert_eq!(
                req(&[("GPU_AFFINITY_BALANCED", v)]).unwrap().plan.balanced,
                want,
                "{v}"
            );
        }
        bad(
            &[("GPU_AFFINITY_MODE", "sokcet")],
            "GPU_AFFINITY_MODE",
            "sokcet",
        );
        bad(
            &[("GPU_AFFINITY_CORES", "all")],
            "GPU_AFFINITY_CORES",
            "all",
        );
        bad(
            &[("GPU_AFFINITY_BALANCED", "2")],
            "GPU_AFFINITY_BALANCED",
            "2",
        );
    }

    #[test]
    fn gpu_override() {
        assert_eq!(req(&[("GPU_AFFINITY_GPU", "3")]).unwrap().gpu, Some(3));
        bad(&[("GPU_AFFINITY_GPU", "-1")], "GPU_AFFINITY_GPU", "-1");
    }

    #[test]
    fn membind_threads_source() {
        for m in MemBind::ALL {
            assert_eq!(
                req(&[("GPU_AFFINITY_MEMBIND", m.name())]).unwrap().membind,
                m
            );
        }
        for t in Threads::ALL {
            assert_eq!(
                req(&[("GPU_AFFINITY_THREADS", t.name())]).unwrap().threads,
                t
            );
        }
        for s in Source::ALL {
            assert_eq!(req(&[("GPU_AFFINITY_SOURCE", s.name())]).unwrap().source, s);
        }
        bad(
            &[("GPU_AFFINITY_MEMBIND", "local")],
            "GPU_AFFINITY_MEMBIND",
            "local",
        );
        bad(
            &[("GPU_AFFINITY_THREADS", "spread")],
            "GPU_AFFINITY_THREADS",
            "spread",
        );
        bad(
            &[("GPU_AFFINITY_SOURCE", "hwloc")],
            "GPU_AFFINITY_SOURCE",
            "hwloc",
        );
        let e = MemBind::parse("x").unwrap_err();
        assert!(
            e.message().contains("none, preferred, bind, interleave)"),
            "{e}"
        );
    }

    #[test]
    fn flags() {
        let r = req(&[
            ("GPU_AFFINITY_STRICT", "1"),
            ("GPU_AFFINITY_VERBOSE", "true"),
            ("GPU_AFFINITY_DRY_RUN", "yes"),
        ])
        .unwrap();
        assert!(r.strict && r.verbose && r.dry_run);
        for name in [
            "GPU_AFFINITY_STRICT",
            "GPU_AFFINITY_VERBOSE",
            "GPU_AFFINITY_DRY_RUN",
        ] {
            bad(&[(name, "maybe")], name, "maybe");
            // Empty counts as unset.
            assert_eq!(req(&[(name, "")]).unwrap(), Request::default());
        }
    }

    #[test]
    fn map_implies_mode_map() {
        let r = req(&[("GPU_AFFINITY_MAP", "0-7;8-15;16,18")]).unwrap();
        assert_eq!(r.plan.mode, Mode::Map);
        let want: Vec<CpuSet> = ["0-7", "8-15", "16,18"]
            .iter()
            .map(|s| CpuSet::parse_list(s).unwrap())
            .collect();
        assert_eq!(r.plan.map, Some(want));
        let r = req(&[("GPU_AFFINITY_MAP", "0-7"), ("GPU_AFFINITY_MODE", "map")]).unwrap();
        assert_eq!(r.plan.mode, Mode::Map);
        // An explicit other mode wins; the map is kept but unused.
        let r = req(&[("GPU_AFFINITY_MAP", "0-7"), ("GPU_AFFINITY_MODE", "node")]).unwrap();
        assert_eq!(r.plan.mode, Mode::Node);
        bad(&[("GPU_AFFINITY_MODE", "map")], "GPU_AFFINITY_MODE", "map");
        bad(
            &[("GPU_AFFINITY_MAP", "0-7;;8-15")],
            "GPU_AFFINITY_MAP",
            "0-7;;8-15",
        );
        bad(&[("GPU_AFFINITY_MAP", "0-7;")], "GPU_AFFINITY_MAP", "0-7;");
        bad(
            &[("GPU_AFFINITY_MAP", "0-7;x")],
            "GPU_AFFINITY_MAP",
            "0-7;x",
        );
    }

    #[test]
    fn paths_and_cuda_variables() {
        let r = req(&[
            ("GPU_AFFINITY_NVML_LIB", "/opt/nvidia/libnvidia-ml.so.1"),
            ("GPU_AFFINITY_FSROOT", "/snap/dgx"),
            ("CUDA_VISIBLE_DEVICES", "2,GPU-abc"),
            ("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
        ])
        .unwrap();
        assert_eq!(
            r.nvml_lib,
            Some(PathBuf::from("/opt/nvidia/libnvidia-ml.so.1"))
        );
        assert_eq!(r.fsroot, PathBuf::from("/snap/dgx"));
        assert_eq!(r.devices.get("CUDA_VISIBLE_DEVICES"), Some("2,GPU-abc"));
        assert_eq!(r.devices.get("CUDA_DEVICE_ORDER"), Some("PCI_BUS_ID"));
        // Empty CUDA_VISIBLE_DEVICES means no GPU, unlike every other variable.
        let r = req(&[("CUDA_VISIBLE_DEVICES", ""), ("GPU_AFFINITY_FSROOT", "")]).unwrap();
        assert_eq!(r.devices.get("CUDA_VISIBLE_DEVICES"), Some(""));
        assert_eq!(r.fsroot, PathBuf::from("/"));
    }
}
