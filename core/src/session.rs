//! The one entry point from a request to a plan: load the machine, resolve the GPUs the process
//! sees, plan. The preload shim, the C ABI, the CLI and the tests all come through here.
//!
//! - `plan_for_process`: one process's plan, reading as little as the plan needs. The plan is made
//!   on a partial machine (`Machine::load_for`), and made again on the full machine when the
//!   partial one cannot vouch for it (a fallback, or no CPU left).
//! - `plan_node`: every local rank of the node, on the full machine (`gpuaff plan`).

use crate::config::Request;
use crate::error::{Error, ErrorKind, Result};
use crate::gpu::Visible;
use crate::machine::{Machine, MgmtQuery};
use crate::plan::{need_for, plan_all, plan_rank, Need, Plan, RankPlan};
use crate::sysfs::Fs;
use crate::topology::AllowedFrom;

/// A planned process.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The machine the plan was made on: partial (`Topology::scope` is Some) unless `full_load`.
    pub machine: Machine,
    pub visible: Visible,
    pub plan: RankPlan,
    /// Files read by every load, the second one included.
    pub files_read: usize,
    /// True when the partial machine could not vouch for the plan and it was made on a full load.
    pub full_load: bool,
    /// The machine's warnings, then the visible-GPU ones (the plan's notes stay in `plan.notes`).
    pub warnings: Vec<String>,
}

/// Plans `req` for this process: loads what `req.plan` needs, resolves the visible GPUs,
/// plans the rank; when the plan falls back (`RankPlan::fallback`) or is unplannable, loads the
/// whole machine and plans again. The result is the plan `Machine::load` would give.
pub fn plan_for_process(req: &Request, allowed: AllowedFrom) -> Result<Outcome> {
    let fs = Fs::new(&req.fsroot);
    plan_for_process_fs(&fs, req, allowed, &|lib| crate::gpu::nvml::discover(lib))
}

/// As `plan_for_process`, over a given `Fs` and NVML query (tests give a fake).
pub fn plan_for_process_fs(
    fs: &Fs,
    req: &Request,
    allowed: AllowedFrom,
    nvml: MgmtQuery,
) -> Result<Outcome> {
    let mut need = need_for(&req.plan);
    // What the visible-device variables need read (UUID entries need the driver's identity files);
    // a malformed variable fails here, before anything is read.
    let reads = crate::machine::gpu_reads(req)?;
    need.identity = reads.identity;
    need.models = reads.models;
    let first = plan_on(fs, req, allowed.clone(), &need, nvml)?;
    let vouched = match &first.2 {
        Ok(p) => !p.fallback,
        Err(e) => e.kind() != ErrorKind::Unplannable,
    };
    let scoped = first.0.topology.scope.is_some();
    let (machine, visible, plan) = if vouched || !scoped {
        first
    } else {
        let (m, v, p) = plan_on(fs, req, allowed, &Need::everything(), nvml)?;
        (m, v, p)
    };
    let full_load = machine.topology.scope.is_none();
    let plan = plan?;
    let mut warnings = machine.warnings.clone();
    warnings.extend(visible.warnings.iter().cloned());
    Ok(Outcome {
        files_read: fs.files_read(),
        machine,
        visible,
        plan,
        full_load,
        warnings,
    })
}

type Planned = (Machine, Visible, Result<RankPlan>);

fn plan_on(
    fs: &Fs,
    req: &Request,
    allowed: AllowedFrom,
    need: &Need,
    nvml: MgmtQuery,
) -> Result<Planned> {
    let machine = Machine::load_fs(fs, req, allowed, need, nvml)?;
    if machine.gpus.is_empty() {
        return Err(Error::no_gpu(format!(
            "no GPU found under {} (no NVIDIA or AMD GPU, or no driver: a CPU-only machine)",
            fs.path("sys/bus/pci/devices").display()
        )));
    }
    let visible = crate::gpu::visible(&machine.gpus, &req.devices)?;
    if let Some(var) = visible.none_by {
        return Err(Error::no_gpu(format!(
            "{var} selects no GPU (empty, -1 or no valid first entry): this process uses no GPU"
        )));
    }
    let plan = plan_process(req, &machine, &visible);
    Ok((machine, visible, plan))
}

/// The plan of the process `req` describes: its rank (or, without one, its GPU override), GPU and
/// options, on `machine` as it sees the GPUs.
pub fn plan_process(req: &Request, machine: &Machine, visible: &Visible) -> Result<RankPlan> {
    let rank = req.plan_rank()?;
    plan_rank(
        &machine.topology,
        &machine.gpus,
        visible,
        &req.plan,
        rank,
        req.gpu,
    )
}

/// Every local rank of the node, on the full machine.
#[derive(Clone, Debug)]
pub struct NodePlan {
    pub machine: Machine,
    pub visible: Visible,
    /// `plan.warnings` holds the visible-GPU warnings (once), then the plan's own.
    pub plan: Plan,
}

/// Plans every local rank 0..nproc of `req`'s node as `gpuaff plan` shows them: the whole machine
/// under `req.fsroot`, the GPUs as `req`'s visible-device variables select them, `req.plan`'s
/// options. A machine without GPUs is not an error here: the plan has no rank and says why.
pub fn plan_node(req: &Request, allowed: AllowedFrom) -> Result<NodePlan> {
    let fs = Fs::new(&req.fsroot);
    plan_node_fs(&fs, req, allowed, &|lib| crate::gpu::nvml::discover(lib))
}

/// As `plan_node`, over a given `Fs` and NVML query.
pub fn plan_node_fs(
    fs: &Fs,
    req: &Request,
    allowed: AllowedFrom,
    nvml: MgmtQuery,
) -> Result<NodePlan> {
    crate::machine::gpu_reads(req)?;
    let machine = Machine::load_fs(fs, req, allowed, &Need::everything(), nvml)?;
    let visible = crate::gpu::visible(&machine.gpus, &req.devices)?;
    let plan = plan_all(&machine.topology, &machine.gpus, &visible, &req.plan);
    Ok(NodePlan {
        machine,
        visible,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    /// Two GPUs of different models, one per node, with the driver's procfs.
    fn tree() -> TestFs {
        let t = TestFs::new("session");
        t.file("sys/devices/system/cpu/online", "0-7\n")
            .file("sys/devices/system/node/node0/cpulist", "0-3\n")
            .file("sys/devices/system/node/node1/cpulist", "4-7\n");
        for (i, (bdf, device, model)) in [
            ("0000:07:00.0", "0x20b2", "NVIDIA A100-SXM4-80GB"),
            ("0000:87:00.0", "0x2237", "NVIDIA A10G"),
        ]
        .into_iter()
        .enumerate()
        {
            let d = format!("sys/bus/pci/devices/{bdf}");
            t.file(&format!("{d}/device"), &format!("{device}\n"))
                .file(&format!("{d}/numa_node"), &format!("{i}\n"))
                .file(
                    &format!("{d}/local_cpulist"),
                    &format!("{}-{}\n", i * 4, i * 4 + 3),
                )
                .file(
                    &format!("proc/driver/nvidia/gpus/{bdf}/information"),
                    &format!("Model: \t\t {model}\nGPU UUID: \t GPU-{i}{i}{i}-{device}\n"),
                );
        }
        t
    }

    fn env(cvd: Option<&str>, order: Option<&str>) -> crate::gpu::DeviceEnv {
        let mut d = crate::gpu::DeviceEnv::default();
        if let Some(v) = cvd {
            d.set("CUDA_VISIBLE_DEVICES", v);
        }
        if let Some(v) = order {
            d.set("CUDA_DEVICE_ORDER", v);
        }
        d
    }

    fn plan(t: &TestFs, cvd: Option<&str>, order: Option<&str>) -> Outcome {
        let req = Request {
            fsroot: t.root.clone(),
            source: crate::config::Source::Sysfs,
            rank: Some(0),
            devices: env(cvd, order),
            ..Request::default()
        };
        plan_for_process_fs(&t.fs(), &req, AllowedFrom::Snapshot, &|_| {
            Err(crate::Error::nvml("unused"))
        })
        .unwrap()
    }

    #[test]
    fn identity_is_read_only_for_uuid_entries_and_models_only_for_fastest_first() {
        let t = tree();
        let by_index = plan(&t, Some("1"), None);
        let by_uuid = plan(&t, Some("GPU-111"), None);
        let by_bus = plan(&t, Some("1"), Some("PCI_BUS_ID"));
        assert_eq!(by_index.plan.gpu_index, 1);
        assert_eq!(by_index.plan, by_uuid.plan);
        assert_eq!(by_index.plan, by_bus.plan);
        assert_eq!(by_index.plan.cpus.to_list(), "4-7");
        // The UUID needs the driver's files; indices need only the PCI device ids.
        assert_eq!(by_index.machine.gpus[1].uuid, None);
        assert_eq!(
            by_uuid.machine.gpus[1].uuid.as_deref(),
            Some("GPU-111-0x2237")
        );
        assert!(by_bus.files_read < by_index.files_read);
        assert!(by_index.files_read < by_uuid.files_read);
        // Both sources tell the models apart.
        for (o, named) in [(&by_index, "PCI device 0x2237"), (&by_uuid, "NVIDIA A10G")] {
            assert!(
                o.warnings
                    .iter()
                    .any(|w| w.contains("GPU models differ") && w.contains(named)),
                "{:?}",
                o.warnings
            );
        }
        assert!(by_bus.warnings.is_empty(), "{:?}", by_bus.warnings);
    }

    #[test]
    fn plan_process_uses_rank_gpu_and_options() {
        let (topology, gpus) = crate::plan::tests::ex1();
        let machine = crate::Machine {
            topology,
            gpus,
            warnings: vec![],
            files_read: 0,
        };
        let vis = Visible {
            gpus: (0..machine.gpus.len()).collect(),
            warnings: vec![],
            none_by: None,
        };
        let mut req = crate::Request::default();
        let e = plan_process(&req, &machine, &vis).unwrap_err();
        assert!(e.message().contains("LOCAL_RANK"), "{e}");
        req.rank = Some(1);
        assert_eq!(
            plan_process(&req, &machine, &vis).unwrap().cpus,
            crate::CpuSet::parse_list("2-3,10-11").unwrap()
        );
        req.gpu = Some(2);
        let r = plan_process(&req, &machine, &vis).unwrap();
        assert_eq!(
            (r.rank, r.gpu, r.cpus.to_list()),
            (1, 2, "4-5,12-13".to_string())
        );
        req.rank = None;
        assert_eq!(plan_process(&req, &machine, &vis).unwrap().rank, 2);
        req.plan.mode = crate::Mode::Node;
        let plan = crate::plan::plan_all(&machine.topology, &machine.gpus, &vis, &req.plan);
        assert_eq!(plan.ranks.len(), 4);
        assert_eq!(plan.options.mode, crate::Mode::Node);
    }
}
