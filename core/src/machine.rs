//! `Machine`: the topology and the GPUs, read once, by one loader, reading what a plan needs.

use crate::config::{Request, Source, VendorChoice};
use crate::cpuset::CpuSet;
use crate::gpu::{self, Gpu, GpuReads, GpuSource, Vendor};
use crate::plan::{Need, NeedScope};
use crate::sysfs::Fs;
use crate::topology::{AllowedFrom, Base, NodeFacts, Topology, Want};
use std::path::Path;

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

/// The management-library query (NVML): the real one, or a fake in tests.
pub type MgmtQuery<'a> = &'a dyn Fn(Option<&Path>) -> crate::Result<Vec<Gpu>>;

impl Machine {
    /// Everything under `req.fsroot`, from `req.source` (what `gpuaff topo` shows).
    pub fn load(req: &Request, allowed: AllowedFrom) -> crate::Result<Machine> {
        Self::load_for(req, allowed, Need::everything())
    }

    /// What a plan of the kind `need` describes: the online CPUs, the NUMA nodes, the allowed set
    /// and the GPUs in full (but for the nodes of other GPUs with local CPUs, left unread unless
    /// `need.gpu_nodes`), and the cores, complexes and
    /// packages that `need` names, for the CPUs near the machine's GPUs (`Need::scope`). The
    /// topology is partial (`Topology::scope`) unless `need` is everything.
    ///
    /// Contract: a plan made on this machine for a request whose options `need` covers
    /// (`need_for(&req.plan)`, or `need(req.plan.mode)`) equals the plan made on `Machine::load`,
    /// or it has `RankPlan::fallback` set, or it fails: the fallbacks (the allowed set excludes a
    /// GPU's CPUs) look beyond the scope. `session::plan_for_process` plans again on a full load
    /// then.
    pub fn load_for(req: &Request, allowed: AllowedFrom, need: Need) -> crate::Result<Machine> {
        let fs = Fs::new(&req.fsroot);
        Self::load_fs(&fs, req, allowed, &need, &|lib| gpu::nvml::discover(lib))
    }

    /// The one loader: `load_for` over a given `Fs` and management-library query (tests give fakes).
    ///
    /// `Source::Auto` reads sysfs and asks NVML only when `CUDA_VISIBLE_DEVICES` names a GPU by
    /// UUID or MIG UUID that the sysfs GPUs cannot resolve (no UUIDs or MIG instances known): a
    /// machine without GPUs, or with indices only, never pays for loading NVML.
    pub fn load_fs(
        fs: &Fs,
        req: &Request,
        allowed: AllowedFrom,
        need: &Need,
        nvml: MgmtQuery,
    ) -> crate::Result<Machine> {
        let mut warnings = Vec::new();
        let mut gpus = Vec::new();
        // Machine index of the GPU the process uses, when its request says which.
        let mut own = None;
        let reads = GpuReads {
            identity: need.identity,
            models: need.models,
            defer_nodes: !need.gpu_nodes,
        };
        let topology = Topology::load_with(
            fs,
            &allowed,
            need.distances,
            &mut warnings,
            |base, warnings| {
                gpus = load_gpus(fs, req, reads, nvml, warnings)?;
                own = own_gpu(req, &gpus);
                Ok(want(need, base, &gpus, own))
            },
        )?;
        // The process's own GPU's node, which its plan names, when discovery left it unread
        // (`Need::gpu_nodes`).
        if let Some(g) = own.and_then(|i| gpus.get_mut(i)) {
            g.read_pending_node(fs)?;
        }
        Ok(Machine {
            topology,
            gpus,
            warnings,
            files_read: fs.files_read(),
        })
    }
}

/// The per-CPU facts `need` asks for, once the GPUs are known.
fn want(need: &Need, base: &Base, gpus: &[Gpu], own: Option<usize>) -> Want {
    let own = own.and_then(|i| gpus.get(i));
    let near = match need.scope {
        NeedScope::OwnGpu => own.map_or(gpus, std::slice::from_ref),
        _ => gpus,
    };
    let scope = match need.scope {
        NeedScope::Nothing => Some(CpuSet::new()),
        NeedScope::Machine => None,
        NeedScope::GpuNodes | NeedScope::OwnGpu => {
            gpu_scope(&base.online, &base.nodes, near).map(|s| {
                // Cores and complexes are only ever taken within the allowed set; packages whole.
                if need.packages {
                    s
                } else {
                    s.intersection(&base.allowed)
                }
            })
        }
    };
    let count_only = match (need.count_others, need.scope, &scope) {
        (true, NeedScope::GpuNodes, Some(_)) if need.cores => {
            own.and_then(|own| counted_nodes(base, gpus, own))
        }
        _ => None,
    };
    Want {
        scope,
        cores: need.cores,
        packages: need.packages || need.complexes,
        complexes: need.complexes,
        distances: need.distances,
        infer_cores: true,
        count_only,
    }
}

/// The nodes whose cores a plan that splits every GPU's local CPUs need only count
/// (`Need::count_others`): whole nodes within the allowed set, away from the process's own GPU,
/// each held whole by the local CPUs of every GPU that reaches it, so that every other GPU's home
/// holds it whole or not at all. None when there is none.
fn counted_nodes(base: &Base, gpus: &[Gpu], own: &Gpu) -> Option<CpuSet> {
    let own_near = gpu_scope(&base.online, &base.nodes, std::slice::from_ref(own))?;
    let locals = localities(gpus);
    let mut counted = CpuSet::new();
    for n in &base.nodes {
        let cpus = n.cpus.intersection(&base.online);
        if cpus.is_empty() || cpus.intersects(&own_near) || !cpus.is_subset(&base.allowed) {
            continue;
        }
        if locals
            .iter()
            .all(|(l, _)| !l.intersects(&cpus) || cpus.is_subset(l))
        {
            counted.union_with(&cpus);
        }
    }
    (!counted.is_empty()).then_some(counted)
}

/// The machine index of the GPU the process `req` describes uses, by the planner's rule
/// (`plan::visible_position`); None when that is not certain (no rank, visible-device variables
/// that resolve to nothing or fail: the plan reports those).
fn own_gpu(req: &Request, gpus: &[Gpu]) -> Option<usize> {
    let rank = req.plan_rank().ok()?;
    let visible = gpu::visible(gpus, &req.devices).ok()?;
    let position = crate::plan::visible_position(&visible, rank, req.gpu);
    visible.gpus.get(position).copied()
}

/// The vendors whose GPUs the process may use, in the order they are tried.
///
/// The rule: `GPU_AFFINITY_VENDOR` names one; under `auto`, a vendor whose own variables are set
/// (`ROCR_VISIBLE_DEVICES` or `HIP_VISIBLE_DEVICES`: AMD) is the one; otherwise the first vendor with
/// GPUs on the machine, NVIDIA first (`CUDA_VISIBLE_DEVICES` alone is read by both CUDA and HIP).
pub fn candidates(req: &Request) -> Vec<&'static dyn GpuSource> {
    match req.vendor {
        VendorChoice::Nvidia => vec![gpu::source(Vendor::Nvidia)],
        VendorChoice::Amd => vec![gpu::source(Vendor::Amd)],
        VendorChoice::Auto => match gpu::SOURCES.iter().find(|s| s.claims(&req.devices)) {
            Some(s) => vec![*s],
            None => gpu::SOURCES.to_vec(),
        },
    }
}

/// What resolving the process's visible-device variables needs read, for every vendor it may use;
/// checks the variables before anything is read.
pub fn gpu_reads(req: &Request) -> crate::Result<GpuReads> {
    candidates(req)
        .iter()
        .try_fold(GpuReads::NONE, |r, s| Ok(r.union(s.reads(&req.devices)?)))
}

/// The GPUs of the vendor the process uses (see `candidates`), in its runtime's order.
fn load_gpus(
    fs: &Fs,
    req: &Request,
    reads: GpuReads,
    nvml: MgmtQuery,
    warnings: &mut Vec<String>,
) -> crate::Result<Vec<Gpu>> {
    let mut sources = candidates(req);
    // NVML knows NVIDIA's GPUs only.
    if req.source == Source::Nvml {
        sources.retain(|s| s.vendor() == Vendor::Nvidia);
        if sources.is_empty() {
            return Err(crate::Error::invalid(
                "GPU_AFFINITY_SOURCE=nvml reads NVIDIA GPUs only, and GPU_AFFINITY_VENDOR=amd \
                 (use GPU_AFFINITY_SOURCE=auto or sysfs)",
            ));
        }
    }
    for (i, src) in sources.iter().enumerate() {
        let gpus = match src.vendor() {
            Vendor::Nvidia => load_nvidia(fs, req, reads, nvml, warnings)?,
            _ => src.discover(fs, reads)?,
        };
        if !gpus.is_empty() || i + 1 == sources.len() {
            return Ok(gpus);
        }
    }
    Ok(Vec::new())
}

/// NVIDIA's GPUs from `req.source` (see `Machine::load_fs`).
fn load_nvidia(
    fs: &Fs,
    req: &Request,
    reads: GpuReads,
    nvml: MgmtQuery,
    warnings: &mut Vec<String>,
) -> crate::Result<Vec<Gpu>> {
    let sysfs = || gpu::source(Vendor::Nvidia).discover(fs, reads);
    Ok(match req.source {
        Source::Sysfs => sysfs()?,
        Source::Nvml => nvml(req.nvml_lib.as_deref())?,
        Source::Auto => {
            let mut sysfs = sysfs()?;
            if gpu::needs_nvml(&sysfs, req.devices.get("CUDA_VISIBLE_DEVICES")) {
                // NVML's answer is checked against every GPU's node: none left unread.
                for g in sysfs.iter_mut() {
                    g.read_pending_node(fs)?;
                }
                match nvml(req.nvml_lib.as_deref()) {
                    Ok(nv) if sysfs.is_empty() => nv,
                    Ok(nv) => {
                        let (merged, w) = gpu::nvml::reconcile(&sysfs, &nv);
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
    })
}

/// The CPUs a plan may look at for the machine's GPUs: each GPU's local CPUs and the CPUs of the
/// nodes holding them or named by its `numa_node`. None (the whole machine) when the machine has
/// no NUMA nodes or a GPU's locality is unknown. A `numa_node` left unread (`Need::gpu_nodes`)
/// adds nothing: the plans that leave it so bind to local CPUs, whose cores the scope holds.
fn gpu_scope(online: &CpuSet, nodes: &[NodeFacts], gpus: &[Gpu]) -> Option<CpuSet> {
    if nodes.is_empty() {
        return None;
    }
    // Once per node, not once per node and GPU: 72 GPUs on 16 nodes of 4,096 CPUs made this a
    // visible part of a load.
    let node_cpus: Vec<(u32, CpuSet)> = nodes
        .iter()
        .map(|n| (n.id, n.cpus.intersection(online)))
        .collect();
    let mut scope = CpuSet::new();
    for (local_cpus, numa_node) in localities(gpus) {
        let local = local_cpus.intersection(online);
        let mut near = local.clone();
        for (id, cpus) in &node_cpus {
            if numa_node == Some(*id) || cpus.intersects(&local) {
                near.union_with(cpus);
            }
        }
        if near.is_empty() {
            return None;
        }
        scope.union_with(&near);
    }
    Some(scope)
}

/// The GPUs' distinct localities (local CPUs, node), in order: GPUs sharing a node share theirs
/// (72 GPUs, 16 localities), and what is computed per locality is computed once.
fn localities(gpus: &[Gpu]) -> Vec<(&CpuSet, Option<u32>)> {
    let mut seen: Vec<(&CpuSet, Option<u32>)> = Vec::new();
    for g in gpus {
        let l = (&g.local_cpus, g.numa_node);
        // Most recent first: GPUs of one node are usually neighbours in bus order.
        if !seen.iter().rev().any(|s| *s == l) {
            seen.push(l);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::needs_nvml;
    use crate::plan::{need, need_for, Cores, Mode, PlanOptions};
    use crate::sysfs::TestFs;
    use std::cell::Cell;

    fn tree(name: &str) -> TestFs {
        let t = TestFs::new(name);
        t.file("sys/devices/system/cpu/online", "0-3\n")
            .file("sys/devices/system/node/node0/cpulist", "0-3\n")
            .file("sys/bus/pci/devices/0000:07:00.0/vendor", "0x10de\n")
            .file("sys/bus/pci/devices/0000:07:00.0/class", "0x030200\n")
            .file("sys/bus/pci/devices/0000:07:00.0/local_cpulist", "0-3\n");
        t
    }

    /// `Machine::load_fs` of everything, from the snapshot's online CPUs.
    fn full(fs: &Fs, req: &Request, nvml: MgmtQuery) -> crate::Result<Machine> {
        Machine::load_fs(fs, req, AllowedFrom::Snapshot, &Need::everything(), nvml)
    }

    fn nvml_gpu() -> Gpu {
        Gpu {
            pci_bus_id: "0000:07:00.0".into(),
            uuid: Some("GPU-1234".into()),
            ..Gpu::default()
        }
    }

    #[test]
    fn auto_stays_off_nvml_unless_a_uuid_needs_it() {
        let t = tree("auto");
        let calls = Cell::new(0);
        let nvml = |_: Option<&Path>| {
            calls.set(calls.get() + 1);
            Err(crate::Error::nvml("libnvidia-ml.so.1 not found"))
        };
        let mut req = Request {
            fsroot: t.root.clone(),
            devices: crate::gpu::DeviceEnv::default().with("CUDA_VISIBLE_DEVICES", "0"),
            ..Request::default()
        };
        let m = full(&t.fs(), &req, &nvml).unwrap();
        assert_eq!(calls.get(), 0);
        assert_eq!(m.gpus.len(), 1);
        assert!(m.warnings.is_empty());
        assert!(m.files_read > 0);

        // A UUID that sysfs cannot resolve (no procfs identity): NVML is asked; it fails: warn.
        req.devices.set("CUDA_VISIBLE_DEVICES", "GPU-1234");
        let m = full(&t.fs(), &req, &nvml).unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(m.gpus.len(), 1);
        assert!(
            m.warnings.iter().any(|w| w.contains("NVML")),
            "{:?}",
            m.warnings
        );

        // No GPU in sysfs is not a reason to load NVML.
        let bare = TestFs::new("nogpu");
        bare.file("sys/devices/system/cpu/online", "0-3\n");
        let m = full(&bare.fs(), &req, &nvml).unwrap();
        assert_eq!(calls.get(), 1);
        assert!(m.gpus.is_empty());
    }

    #[test]
    fn sources_sysfs_and_nvml() {
        let t = tree("sources");
        let nvml = |_: Option<&Path>| Ok(vec![nvml_gpu()]);
        let mut req = Request {
            fsroot: t.root.clone(),
            source: Source::Nvml,
            devices: crate::gpu::DeviceEnv::default().with("CUDA_VISIBLE_DEVICES", "GPU-1234"),
            ..Request::default()
        };
        let m = full(&t.fs(), &req, &nvml).unwrap();
        assert_eq!(m.gpus[0].uuid.as_deref(), Some("GPU-1234"));
        req.source = Source::Sysfs;
        let m = full(&t.fs(), &req, &nvml).unwrap();
        assert_eq!(m.gpus[0].uuid, None);
        let failing = |_: Option<&Path>| Err(crate::Error::nvml("no driver"));
        req.source = Source::Nvml;
        let e = full(&t.fs(), &req, &failing).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Nvml);
    }

    #[test]
    fn needs_nvml_cases() {
        let mut g = nvml_gpu();
        assert!(!needs_nvml(&[g.clone()], None));
        assert!(!needs_nvml(&[g.clone()], Some("0,1")));
        assert!(!needs_nvml(&[g.clone()], Some("GPU-12")));
        assert!(needs_nvml(&[g.clone()], Some("MIG-1")));
        g.migs.push("MIG-1".into());
        assert!(!needs_nvml(&[g.clone()], Some("MIG-1")));
        g.uuid = None;
        assert!(needs_nvml(&[g], Some("GPU-12")));
        assert!(!needs_nvml(&[], Some("GPU-12")));
    }

    #[test]
    fn needs_follow_the_mode_and_options() {
        let opts = |mode, cores| PlanOptions {
            mode,
            cores,
            ..PlanOptions::default()
        };
        assert_eq!(
            need_for(&opts(Mode::None, Cores::SingleLogical)),
            Need::nothing()
        );
        assert_eq!(
            need_for(&opts(Mode::Map, Cores::AllLogical)),
            Need::nothing()
        );
        let n = need_for(&opts(Mode::Socket, Cores::AllLogical));
        assert_eq!((n.scope, n.cores), (NeedScope::Nothing, false));
        let n = need_for(&opts(Mode::Socket, Cores::SingleLogical));
        assert_eq!((n.scope, n.cores), (NeedScope::GpuNodes, true));
        let n = need_for(&opts(Mode::SocketUniqueContiguous, Cores::AllLogical));
        assert_eq!(
            (n.scope, n.cores, n.packages),
            (NeedScope::GpuNodes, true, false)
        );
        let n = need_for(&opts(Mode::CoreComplex, Cores::AllLogical));
        assert!(n.cores && n.complexes && n.packages);
        assert_eq!(n.scope, NeedScope::OwnGpu);
        let n = need_for(&opts(Mode::Exclusive, Cores::AllLogical));
        assert_eq!(
            (n.scope, n.cores, n.gpu_nodes),
            (NeedScope::OwnGpu, true, true)
        );
        let n = need_for(&opts(Mode::Node, Cores::SingleLogical));
        assert_eq!((n.scope, n.cores), (NeedScope::OwnGpu, true));
        let n = need_for(&opts(Mode::SocketUniqueContiguous, Cores::AllLogical));
        assert!(!n.gpu_nodes);
        let n = need_for(&opts(Mode::Package, Cores::AllLogical));
        assert_eq!(
            (n.scope, n.cores, n.packages),
            (NeedScope::Nothing, false, true)
        );
        assert!(Mode::ALL.iter().all(|m| !need(*m).distances));
    }

    #[test]
    fn load_for_reads_the_gpu_nodes_only() {
        // Two nodes of two SMT2 cores; the GPU sits on node 1 (CPUs 2-3, 6-7).
        let t = TestFs::new("loadfor");
        t.file("sys/devices/system/cpu/online", "0-7\n")
            .file("sys/devices/system/node/node0/cpulist", "0-1,4-5\n")
            .file("sys/devices/system/node/node1/cpulist", "2-3,6-7\n")
            .file("sys/devices/system/node/node1/distance", "20 10\n")
            .file("sys/bus/pci/devices/0000:07:00.0/vendor", "0x10de\n")
            .file("sys/bus/pci/devices/0000:07:00.0/class", "0x030200\n")
            .file("sys/bus/pci/devices/0000:07:00.0/numa_node", "1\n")
            .file(
                "sys/bus/pci/devices/0000:07:00.0/local_cpulist",
                "2-3,6-7\n",
            );
        for c in 0..8 {
            let d = format!("sys/devices/system/cpu/cpu{c}/topology");
            let core = c % 4;
            t.file(
                &format!("{d}/thread_siblings_list"),
                &format!("{core},{}\n", core + 4),
            )
            .file(&format!("{d}/core_id"), &format!("{core}\n"));
        }
        let req = Request {
            fsroot: t.root.clone(),
            source: Source::Sysfs,
            ..Request::default()
        };
        let need = need(Mode::SocketUniqueContiguous);
        let fs = t.fs();
        let m = Machine::load_fs(&fs, &req, AllowedFrom::Snapshot, &need, &|_| {
            Err(crate::Error::nvml("unused"))
        })
        .unwrap();
        let topo = &m.topology;
        assert_eq!(topo.scope, Some(CpuSet::parse_list("2-3,6-7").unwrap()));
        let cores: Vec<String> = topo.cores.iter().map(|c| c.cpus.to_list()).collect();
        assert_eq!(cores, ["2,6", "3,7"]);
        assert!(topo.packages.is_empty() && topo.complexes.is_empty());
        assert!(topo.nodes.iter().all(|n| n.distances.is_empty()));
        assert_eq!(topo.node_cpus(0), CpuSet::parse_list("0-1,4-5").unwrap());
        // Two sibling files and two core_ids for the cores, not one per CPU of the machine.
        let sibling_reads = 2;
        let full = Machine::load(&req, AllowedFrom::Snapshot).unwrap();
        assert!(full.topology.scope.is_none());
        assert_eq!(full.topology.cores.len(), 4);
        assert!(
            m.files_read + sibling_reads <= full.files_read,
            "{} vs {}",
            m.files_read,
            full.files_read
        );
    }

    #[test]
    fn torch_modes_read_the_cores_near_their_own_gpu_only() {
        // Two nodes of two SMT2 cores, a GPU on each; the NVIDIA family reads both nodes' cores,
        // `exclusive` the cores of the rank's own GPU's node (and then its GPU's node only).
        let t = TestFs::new("loadown");
        t.file("sys/devices/system/cpu/online", "0-7\n")
            .file("sys/devices/system/node/node0/cpulist", "0-1,4-5\n")
            .file("sys/devices/system/node/node1/cpulist", "2-3,6-7\n");
        for (bdf, node, cpus) in [
            ("0000:07:00.0", 0, "0-1,4-5"),
            ("0000:87:00.0", 1, "2-3,6-7"),
        ] {
            let d = format!("sys/bus/pci/devices/{bdf}");
            t.file(&format!("{d}/vendor"), "0x10de\n")
                .file(&format!("{d}/class"), "0x030200\n")
                .file(&format!("{d}/numa_node"), &format!("{node}\n"))
                .file(&format!("{d}/local_cpulist"), &format!("{cpus}\n"));
        }
        for c in 0..8 {
            let core = c % 4;
            t.file(
                &format!("sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list"),
                &format!("{core},{}\n", core + 4),
            );
        }
        let cores = |mode, rank| {
            let req = Request {
                fsroot: t.root.clone(),
                source: Source::Sysfs,
                rank: Some(rank),
                ..Request::default()
            };
            let m = Machine::load_fs(&t.fs(), &req, AllowedFrom::Snapshot, &need(mode), &|_| {
                Err(crate::Error::nvml("unused"))
            })
            .unwrap();
            let c: Vec<String> = m.topology.cores.iter().map(|c| c.cpus.to_list()).collect();
            c.join(" ")
        };
        assert_eq!(cores(Mode::SocketUniqueContiguous, 1), "0,4 1,5 2,6 3,7");
        assert_eq!(cores(Mode::Exclusive, 0), "0,4 1,5");
        assert_eq!(cores(Mode::Exclusive, 1), "2,6 3,7");
        assert_eq!(cores(Mode::CoreComplex, 1), "2,6 3,7");
        // No rank (and no GPU override): which GPU is not known, so every GPU's node.
        let req = Request {
            fsroot: t.root.clone(),
            source: Source::Sysfs,
            ..Request::default()
        };
        let m = Machine::load_fs(
            &t.fs(),
            &req,
            AllowedFrom::Snapshot,
            &need(Mode::Exclusive),
            &|_| Err(crate::Error::nvml("unused")),
        )
        .unwrap();
        assert_eq!(m.topology.cores.len(), 4);
    }

    #[test]
    fn load_reads_the_fsroot() {
        let t = tree("load");
        let req = Request {
            fsroot: t.root.clone(),
            source: Source::Sysfs,
            ..Request::default()
        };
        let m = Machine::load(&req, AllowedFrom::Explicit(CpuSet::range(1, 2))).unwrap();
        assert_eq!(m.topology.allowed, CpuSet::range(1, 2));
        assert_eq!(m.gpus[0].local_cpus, CpuSet::range(0, 3));
    }
}
