//! The worked examples and deliberate differences of docs/MODES.md, on hand-built topologies.

use super::*;
use crate::topology::{Core, Node, Package};

fn l(s: &str) -> CpuSet {
    CpuSet::parse_list(s).unwrap()
}

/// Linux x86 numbering: core c's siblings are c + k*total_cores. Node n holds cores
/// n*cores_per_node.., package s holds nodes s*nodes_per_socket.., complexes are runs of `l3_cores`
/// cores. GPU i sits on node gpu_nodes[i] (-1: unknown) with that node's CPUs as local CPUs.
fn machine(
    sockets: usize,
    nodes_per_socket: usize,
    cores_per_node: usize,
    smt: usize,
    l3_cores: usize,
    gpu_nodes: &[i32],
) -> (Topology, Vec<Gpu>) {
    let total = sockets * nodes_per_socket * cores_per_node;
    let with_siblings = |lo: usize, hi: usize| -> CpuSet {
        (0..smt)
            .flat_map(|k| (lo..hi).map(move |c| c + k * total))
            .collect()
    };
    let cores = (0..total)
        .map(|c| Core {
            cpus: with_siblings(c, c + 1),
            package: c / (nodes_per_socket * cores_per_node),
        })
        .collect();
    let per_pkg = nodes_per_socket * cores_per_node;
    let packages = (0..sockets)
        .map(|s| Package {
            os_id: Some(s as i64),
            cpus: with_siblings(s * per_pkg, (s + 1) * per_pkg),
        })
        .collect();
    let nodes: Vec<Node> = (0..sockets * nodes_per_socket)
        .map(|n| Node {
            id: n as u32,
            cpus: with_siblings(n * cores_per_node, (n + 1) * cores_per_node),
            distances: vec![],
        })
        .collect();
    let complexes = (0..total / l3_cores)
        .map(|x| with_siblings(x * l3_cores, (x + 1) * l3_cores))
        .collect();
    let online = with_siblings(0, total);
    let gpus = gpu_nodes
        .iter()
        .enumerate()
        .map(|(i, &n)| Gpu {
            index: i,
            pci_bus_id: format!("0000:{:02x}:00.0", 0x10 + i),
            numa_node: u32::try_from(n).ok(),
            local_cpus: usize::try_from(n)
                .ok()
                .and_then(|n| nodes.get(n))
                .map(|n| n.cpus.clone())
                .unwrap_or_default(),
            ..Gpu::default()
        })
        .collect();
    let topo = Topology {
        scope: None,
        counted: Vec::new(),
        allowed: online.clone(),
        online,
        cores,
        packages,
        nodes,
        complexes,
    };
    (topo, gpus)
}

fn all(gpus: &[Gpu]) -> Visible {
    Visible {
        gpus: (0..gpus.len()).collect(),
        warnings: vec![],
        none_by: None,
    }
}

fn opts(mode: &str, cores: Cores, balanced: bool) -> PlanOptions {
    PlanOptions {
        mode: Mode::parse(mode).unwrap(),
        cores,
        balanced,
        nproc: None,
        map: None,
    }
}

/// The cpulists of every rank; panics with the error of a rank that failed.
fn lists(topo: &Topology, gpus: &[Gpu], vis: &Visible, o: &PlanOptions) -> Vec<String> {
    plan_all(topo, gpus, vis, o)
        .ranks
        .into_iter()
        .map(|r| r.unwrap().cpus.to_list())
        .collect()
}

fn check(t: &(Topology, Vec<Gpu>), mode: &str, cores: Cores, balanced: bool, want: &[&str]) {
    let got = lists(&t.0, &t.1, &all(&t.1), &opts(mode, cores, balanced));
    assert_eq!(got, want, "mode {mode} {cores:?} balanced={balanced}");
}

const ALL: Cores = Cores::AllLogical;
const ONE: Cores = Cores::SingleLogical;

// ---- Worked example 1: 2 sockets × 4 cores × SMT2, GPUs on nodes 0,0,1,1 ----

pub(crate) fn ex1() -> (Topology, Vec<Gpu>) {
    machine(2, 1, 4, 2, 4, &[0, 0, 1, 1])
}

#[test]
fn ex1_socket_all() {
    check(
        &ex1(),
        "socket",
        ALL,
        true,
        &["0-3,8-11", "0-3,8-11", "4-7,12-15", "4-7,12-15"],
    );
}

#[test]
fn ex1_socket_single_logical() {
    check(&ex1(), "socket", ONE, true, &["0-3", "0-3", "4-7", "4-7"]);
}

#[test]
fn ex1_socket_single() {
    check(
        &ex1(),
        "socket_single",
        ALL,
        true,
        &["0,8", "0,8", "4,12", "4,12"],
    );
}

#[test]
fn ex1_socket_single_unique() {
    check(
        &ex1(),
        "socket_single_unique",
        ALL,
        true,
        &["0,8", "1,9", "4,12", "5,13"],
    );
}

#[test]
fn ex1_socket_unique_interleaved() {
    let want = ["0,2,8,10", "1,3,9,11", "4,6,12,14", "5,7,13,15"];
    check(&ex1(), "socket_unique_interleaved", ALL, true, &want);
}

#[test]
fn ex1_socket_unique_contiguous() {
    let want = ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"];
    check(&ex1(), "socket_unique_contiguous", ALL, true, &want);
}

#[test]
fn ex1_socket_unique_contiguous_single_logical() {
    check(
        &ex1(),
        "socket_unique_contiguous",
        ONE,
        true,
        &["0-1", "2-3", "4-5", "6-7"],
    );
}

#[test]
fn ex1_node_package_core_complex() {
    for mode in ["node", "package", "core-complex"] {
        check(
            &ex1(),
            mode,
            ALL,
            true,
            &["0-3,8-11", "0-3,8-11", "4-7,12-15", "4-7,12-15"],
        );
    }
}

#[test]
fn ex1_exclusive() {
    let want = ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"];
    check(&ex1(), "exclusive", ALL, true, &want);
}

#[test]
fn ex1_cuda_visible_devices_2_3_is_honoured() {
    let (topo, gpus) = ex1();
    let vis = Visible {
        gpus: vec![2, 3],
        warnings: vec![],
        none_by: None,
    };
    let node = lists(&topo, &gpus, &vis, &opts("node", ALL, true));
    assert_eq!(node, ["4-7,12-15", "4-7,12-15"]);
    let excl = lists(&topo, &gpus, &vis, &opts("exclusive", ALL, true));
    assert_eq!(excl, ["4-5,12-13", "6-7,14-15"]);
    // The NVIDIA family too: rank 0 is physical GPU 2, on node 1.
    let nv = lists(
        &topo,
        &gpus,
        &vis,
        &opts("socket_unique_contiguous", ALL, true),
    );
    assert_eq!(nv, ["4-5,12-13", "6-7,14-15"]);
    let p = plan_rank(&topo, &gpus, &vis, &opts("node", ALL, true), 1, None).unwrap();
    assert_eq!((p.gpu, p.gpu_index, p.numa_node), (1, 3, Some(1)));
    assert_eq!(p.pci_bus_id, "0000:13:00.0");
}

#[test]
fn ex1_mems_and_numa_node() {
    let (topo, gpus) = ex1();
    let plan = plan_all(&topo, &gpus, &all(&gpus), &opts("package", ALL, true));
    for (r, rp) in plan.ranks.iter().enumerate() {
        let rp = rp.as_ref().unwrap();
        let node = if r < 2 { 0 } else { 1 };
        assert_eq!(rp.numa_node, Some(node));
        assert_eq!(rp.mems, CpuSet::single(node as usize));
        assert_eq!(rp.rank, r);
        assert!(rp.notes.is_empty() && !rp.fallback, "{rp:?}");
    }
}

// ---- Worked example 2: DGX A100 shape ----

fn ex2() -> (Topology, Vec<Gpu>) {
    machine(2, 4, 16, 2, 4, &[3, 3, 1, 1, 7, 7, 5, 5])
}

#[test]
fn ex2_socket_and_node() {
    let a = "48-63,176-191";
    let b = "16-31,144-159";
    let c = "112-127,240-255";
    let d = "80-95,208-223";
    for mode in ["socket", "node"] {
        check(&ex2(), mode, ALL, true, &[a, a, b, b, c, c, d, d]);
    }
}

#[test]
fn ex2_package() {
    let a = "0-63,128-191";
    let b = "64-127,192-255";
    check(&ex2(), "package", ALL, true, &[a, a, a, a, b, b, b, b]);
}

#[test]
fn ex2_socket_single() {
    let want = [
        "48,176", "48,176", "16,144", "16,144", "112,240", "112,240", "80,208", "80,208",
    ];
    check(&ex2(), "socket_single", ALL, true, &want);
}

#[test]
fn ex2_socket_single_unique() {
    let want = [
        "48,176", "49,177", "16,144", "17,145", "112,240", "113,241", "80,208", "81,209",
    ];
    check(&ex2(), "socket_single_unique", ALL, true, &want);
}

#[test]
fn ex2_socket_unique_contiguous_and_exclusive() {
    let want = [
        "48-55,176-183",
        "56-63,184-191",
        "16-23,144-151",
        "24-31,152-159",
        "112-119,240-247",
        "120-127,248-255",
        "80-87,208-215",
        "88-95,216-223",
    ];
    for mode in ["socket_unique_contiguous", "exclusive"] {
        check(&ex2(), mode, ALL, true, &want);
        check(&ex2(), mode, ALL, false, &want);
    }
}

#[test]
fn ex2_core_complex() {
    let want = [
        "48-51,176-179",
        "52-55,180-183",
        "16-19,144-147",
        "20-23,148-151",
        "112-115,240-243",
        "116-119,244-247",
        "80-83,208-211",
        "84-87,212-215",
    ];
    check(&ex2(), "core-complex", ALL, true, &want);
}

#[test]
fn ex2_socket_unique_interleaved() {
    // r0 = even cores of node 3 with siblings, r1 = odd ones, and so on for every node.
    let strided = |lo: usize, parity: usize| -> String {
        (lo..lo + 16)
            .filter(|c| c % 2 == parity)
            .flat_map(|c| [c, c + 128])
            .collect::<CpuSet>()
            .to_list()
    };
    let want: Vec<String> = [48, 16, 112, 80]
        .iter()
        .flat_map(|&lo| [strided(lo, 0), strided(lo, 1)])
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    check(&ex2(), "socket_unique_interleaved", ALL, true, &want);
    assert_eq!(
        want[0],
        "48,50,52,54,56,58,60,62,176,178,180,182,184,186,188,190"
    );
}

// ---- Uneven example: 2 sockets × 8 cores × SMT2, GPUs on nodes 0,0,0,1 ----

fn uneven() -> (Topology, Vec<Gpu>) {
    machine(2, 1, 8, 2, 8, &[0, 0, 0, 1])
}

#[test]
fn uneven_contiguous_balanced() {
    let want = ["0-1,16-17", "2-3,18-19", "4-5,20-21", "8-9,24-25"];
    check(&uneven(), "socket_unique_contiguous", ALL, true, &want);
}

#[test]
fn uneven_contiguous_unbalanced() {
    let want = ["0-1,16-17", "2-3,18-19", "4-5,20-21", "8-15,24-31"];
    check(&uneven(), "socket_unique_contiguous", ALL, false, &want);
}

#[test]
fn uneven_interleaved_balanced_and_not() {
    // Balanced: node 0's list is cut to 3*2 cores before striding; unbalanced strides all 8.
    let bal = ["0,3,16,19", "1,4,17,20", "2,5,18,21", "8-9,24-25"];
    check(&uneven(), "socket_unique_interleaved", ALL, true, &bal);
    let unbal = [
        "0,3,6,16,19,22",
        "1,4,7,17,20,23",
        "2,5,18,21",
        "8-15,24-31",
    ];
    check(&uneven(), "socket_unique_interleaved", ALL, false, &unbal);
}

#[test]
fn uneven_exclusive() {
    let want = ["0-2,16-18", "3-5,19-21", "6-7,22-23", "8-15,24-31"];
    check(&uneven(), "exclusive", ALL, true, &want);
}

#[test]
fn uneven_core_complex() {
    let want = ["0-7,16-23", "0-7,16-23", "0-7,16-23", "8-15,24-31"];
    check(&uneven(), "core-complex", ALL, true, &want);
}

// ---- Deliberate differences ----

#[test]
fn differs_single_logical_is_lowest_allowed_sibling() {
    // Large ids: core c ↔ c+512; 2 GPUs on node 0.
    let (mut topo, gpus) = machine(1, 1, 4, 2, 4, &[0, 0]);
    assert!(topo.cores[0].cpus.contains(4)); // total = 4 here: siblings c, c+4
    for core in &mut topo.cores {
        let lo = core.cpus.first().unwrap();
        core.cpus = [lo, lo + 512].into_iter().collect();
    }
    let node: CpuSet = (0..4).flat_map(|c| [c, c + 512]).collect();
    topo.nodes[0].cpus = node.clone();
    topo.online = node.clone();
    topo.packages[0].cpus = node.clone();
    topo.complexes = vec![node.clone()];
    // Core 1's lowest sibling is not allowed: its other sibling stands in.
    topo.allowed = node.difference(&CpuSet::single(1));
    let gpus: Vec<Gpu> = gpus
        .into_iter()
        .map(|g| Gpu {
            local_cpus: node.clone(),
            ..g
        })
        .collect();
    let got = lists(
        &topo,
        &gpus,
        &all(&gpus),
        &opts("socket_unique_contiguous", ONE, true),
    );
    assert_eq!(got, ["0,513", "2-3"]);
    let got = lists(&topo, &gpus, &all(&gpus), &opts("socket", ONE, true));
    assert_eq!(got, ["0,2-3,513", "0,2-3,513"]);
}

#[test]
fn differs_smt4_adjacent_ids() {
    // POWER-style SMT4: core k = CPUs 4k..4k+3; one node of 4 cores, 2 GPUs.
    let cpus = l("0-15");
    let topo = Topology {
        scope: None,
        counted: Vec::new(),
        online: cpus.clone(),
        cores: (0..4)
            .map(|k| Core {
                cpus: CpuSet::range(4 * k, 4 * k + 3),
                package: 0,
            })
            .collect(),
        packages: vec![Package {
            os_id: Some(0),
            cpus: cpus.clone(),
        }],
        nodes: vec![Node {
            id: 0,
            cpus: cpus.clone(),
            distances: vec![],
        }],
        complexes: vec![cpus.clone()],
        allowed: cpus.clone(),
    };
    let gpus: Vec<Gpu> = (0..2)
        .map(|i| Gpu {
            index: i,
            numa_node: Some(0),
            local_cpus: cpus.clone(),
            ..Gpu::default()
        })
        .collect();
    let v = all(&gpus);
    assert_eq!(
        lists(
            &topo,
            &gpus,
            &v,
            &opts("socket_unique_contiguous", ALL, true)
        ),
        ["0-7", "8-15"]
    );
    assert_eq!(
        lists(
            &topo,
            &gpus,
            &v,
            &opts("socket_unique_contiguous", ONE, true)
        ),
        ["0,4", "8,12"]
    );
    assert_eq!(
        lists(&topo, &gpus, &v, &opts("socket_single_unique", ALL, true)),
        ["0-3", "4-7"]
    );
    assert_eq!(
        lists(&topo, &gpus, &v, &opts("exclusive", ALL, true)),
        ["0-7", "8-15"]
    );
}

#[test]
fn differs_balanced_with_a_starved_node() {
    // Node 0: 4 cores, 2 GPUs; node 1: 1 core, 2 GPUs (the reference gives everyone an empty set).
    let (mut topo, gpus) = machine(2, 1, 4, 2, 4, &[0, 0, 1, 1]);
    topo.allowed = l("0-4,8-12");
    let v = all(&gpus);
    let o = opts("socket_unique_contiguous", ALL, true);
    let plan = plan_all(&topo, &gpus, &v, &o);
    let got: Vec<_> = plan
        .ranks
        .iter()
        .map(|r| r.as_ref().unwrap().cpus.to_list())
        .collect();
    assert_eq!(got, ["0-1,8-9", "2-3,10-11", "4,12", "4,12"]);
    let r2 = plan.ranks[2].as_ref().unwrap();
    assert!(
        r2.notes
            .iter()
            .any(|n| n.contains("have 2 GPUs but 1 core:") && n.contains("share core 4,12")),
        "{:?}",
        r2.notes
    );
    let r0 = plan.ranks[0].as_ref().unwrap();
    assert!(
        r0.notes.iter().any(|n| n.starts_with("balanced split")),
        "{:?}",
        r0.notes
    );
    for n in plan
        .ranks
        .iter()
        .flat_map(|r| r.as_ref().unwrap().notes.iter())
    {
        assert!(
            n.starts_with(|c: char| c.is_lowercase()) && !n.contains('\n'),
            "{n}"
        );
    }
    // The torch family shares as well.
    assert_eq!(
        lists(&topo, &gpus, &v, &opts("exclusive", ALL, true)),
        ["0-1,8-9", "2-3,10-11", "4,12", "4,12"]
    );
}

#[test]
fn differs_socket_single_unique_overflow_shares_first_core() {
    // One node of 2 cores, 3 GPUs: the third GPU shares the node's first core.
    let (topo, gpus) = machine(1, 1, 2, 2, 2, &[0, 0, 0]);
    let plan = plan_all(
        &topo,
        &gpus,
        &all(&gpus),
        &opts("socket_single_unique", ALL, true),
    );
    let got: Vec<_> = plan
        .ranks
        .iter()
        .map(|r| r.as_ref().unwrap().cpus.to_list())
        .collect();
    assert_eq!(got, ["0,2", "1,3", "0,2"]);
    assert!(plan.ranks[2].as_ref().unwrap().notes[0].contains("sharing core 0,2"));
    assert!(plan.ranks[1].as_ref().unwrap().notes.is_empty());
}

#[test]
fn differs_allowed_set_excludes_the_gpus_node() {
    // 2 sockets × 2 nodes; the container may use only node 1 (socket 0) and node 2 (socket 1).
    let (mut topo, gpus) = machine(2, 2, 2, 2, 2, &[0, 3]);
    topo.allowed = l("2-3,10-11,4-5,12-13");
    let v = all(&gpus);
    for mode in ["socket", "node", "socket_unique_contiguous", "exclusive"] {
        let plan = plan_all(&topo, &gpus, &v, &opts(mode, ALL, true));
        let r0 = plan.ranks[0].as_ref().unwrap();
        assert_eq!(r0.cpus, l("2-3,10-11"), "{mode}: the package of node 0");
        assert!(r0.fallback);
        assert!(
            r0.notes
                .iter()
                .any(|n| n.contains("the allowed CPUs of its package")),
            "{:?}",
            r0.notes
        );
        assert_eq!(r0.mems, CpuSet::single(1));
        assert_eq!(r0.numa_node, Some(0));
        let r1 = plan.ranks[1].as_ref().unwrap();
        assert_eq!(r1.cpus, l("4-5,12-13"), "{mode}");
    }
    // No allowed CPU in the GPU's package: every allowed CPU.
    topo.allowed = l("4-5");
    let r = plan_rank(&topo, &gpus, &v, &opts("node", ALL, true), 0, None).unwrap();
    assert_eq!(r.cpus, l("4-5"));
    assert!(r.fallback && r.notes.iter().any(|n| n.contains("every allowed CPU")));
    // Nothing allowed at all: an error, never an empty set.
    topo.allowed = CpuSet::new();
    let e = plan_rank(&topo, &gpus, &v, &opts("node", ALL, true), 0, None).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unplannable);
}

#[test]
fn differs_cpu_less_nodes_never_get_cpus() {
    // Grace Hopper shape: CPU node 0, GPU memory on CPU-less node 1; the GPU's numa_node is 1.
    let (mut topo, mut gpus) = machine(1, 1, 4, 1, 4, &[0]);
    topo.nodes.push(Node {
        id: 1,
        cpus: CpuSet::new(),
        distances: vec![],
    });
    gpus[0].numa_node = Some(1);
    gpus[0].mem_node = Some(1);
    for mode in ["node", "package", "socket", "exclusive", "core-complex"] {
        let r = plan_rank(&topo, &gpus, &all(&gpus), &opts(mode, ALL, true), 0, None).unwrap();
        assert_eq!(r.cpus, l("0-3"), "{mode}");
        assert_eq!(r.mems, CpuSet::single(0), "{mode}: never the CPU-less node");
        assert_eq!(r.numa_node, Some(0));
        assert!(!r.fallback);
        if mode != "socket" {
            assert!(
                r.notes.iter().any(|n| n.contains("CPU-less node 1")),
                "{mode}: {:?}",
                r.notes
            );
        }
    }
}

#[test]
fn differs_numa_node_minus_one_uses_nodes_of_local_cpus() {
    let (topo, mut gpus) = ex1();
    gpus[2].numa_node = None;
    gpus[3].numa_node = None;
    let got = lists(&topo, &gpus, &all(&gpus), &opts("node", ALL, true));
    assert_eq!(got, ["0-3,8-11", "0-3,8-11", "4-7,12-15", "4-7,12-15"]);
    let got = lists(&topo, &gpus, &all(&gpus), &opts("exclusive", ALL, true));
    assert_eq!(got, ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"]);
    let r = plan_rank(&topo, &gpus, &all(&gpus), &opts("node", ALL, true), 2, None).unwrap();
    assert_eq!(r.numa_node, Some(1));
    assert!(
        r.notes.iter().any(|n| n.contains("no NUMA node")),
        "{:?}",
        r.notes
    );
}

#[test]
fn differs_core_complex_without_shared_cache_is_the_node() {
    // Every core its own "complex" (no cache shared by several cores).
    let (mut topo, gpus) = ex1();
    topo.complexes = topo.cores.iter().map(|c| c.cpus.clone()).collect();
    let plan = plan_all(&topo, &gpus, &all(&gpus), &opts("core-complex", ALL, true));
    let got: Vec<_> = plan
        .ranks
        .iter()
        .map(|r| r.as_ref().unwrap().cpus.to_list())
        .collect();
    assert_eq!(got, ["0-3,8-11", "0-3,8-11", "4-7,12-15", "4-7,12-15"]);
    assert!(plan.ranks[0].as_ref().unwrap().notes[0].contains("one complex"));
}

#[test]
fn core_complex_orders_by_allowed_size_then_id_and_wraps() {
    // Node 0 of ex2 (cores 0-15, 4 complexes); complex 0-3 partly disallowed so it sorts last.
    let (mut topo, gpus) = machine(1, 1, 16, 2, 4, &[0; 5]);
    topo.allowed = topo.online.difference(&l("0"));
    let got = lists(&topo, &gpus, &all(&gpus), &opts("core-complex", ALL, true));
    assert_eq!(
        got,
        [
            "4-7,20-23",
            "8-11,24-27",
            "12-15,28-31",
            "1-3,16-19",
            "4-7,20-23"
        ]
    );
}

// ---- GPU choice, map, none, errors ----

#[test]
fn one_visible_gpu_of_many_processes_plans_with_every_gpu() {
    // Slurm --gpus-per-task=1: rank 3 sees only physical GPU 3, as CUDA index 0.
    let (topo, gpus) = ex1();
    let vis = Visible {
        gpus: vec![3],
        warnings: vec![],
        none_by: None,
    };
    let mut o = opts("socket_unique_contiguous", ALL, true);
    o.nproc = Some(4);
    let r = plan_rank(&topo, &gpus, &vis, &o, 3, None).unwrap();
    assert_eq!(r.cpus, l("6-7,14-15"));
    assert_eq!((r.gpu, r.gpu_index), (0, 3));
    assert!(r.notes.iter().any(|n| n.contains("as if all 4 GPUs")));
    o.mode = Mode::Exclusive;
    assert_eq!(
        plan_rank(&topo, &gpus, &vis, &o, 3, None).unwrap().cpus,
        l("6-7,14-15")
    );
    // Without a process count it is simply the only GPU, whatever the rank.
    o.nproc = None;
    let r = plan_rank(&topo, &gpus, &vis, &o, 3, None).unwrap();
    assert_eq!(r.cpus, l("4-7,12-15"));
    assert!(r.notes.is_empty());
}

#[test]
fn gpu_override_picks_the_visible_gpu() {
    let (topo, gpus) = ex1();
    let o = opts("socket_unique_contiguous", ALL, true);
    let r = plan_rank(&topo, &gpus, &all(&gpus), &o, 0, Some(3)).unwrap();
    assert_eq!((r.rank, r.gpu, r.gpu_index), (0, 3, 3));
    assert_eq!(r.cpus, l("6-7,14-15"));
    // A GPU beyond nproc joins the participants instead of failing.
    let mut o2 = o.clone();
    o2.nproc = Some(2);
    let r = plan_rank(&topo, &gpus, &all(&gpus), &o2, 1, Some(3)).unwrap();
    assert_eq!(r.cpus, l("4-5,12-13"), "balanced: node 0's 2 cores per GPU");
    o2.balanced = false;
    let r = plan_rank(&topo, &gpus, &all(&gpus), &o2, 1, Some(3)).unwrap();
    assert_eq!(r.cpus, l("4-7,12-15"));
    let e = plan_rank(&topo, &gpus, &all(&gpus), &o, 0, Some(4)).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NoDevice);
    assert!(e.message().contains("visible GPU 4"), "{e}");
}

#[test]
fn rank_and_gpu_errors() {
    let (topo, gpus) = ex1();
    let mut o = opts("node", ALL, true);
    let e = plan_rank(&topo, &gpus, &all(&gpus), &o, 4, None).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NoDevice);
    o.nproc = Some(2);
    let e = plan_rank(&topo, &gpus, &all(&gpus), &o, 2, None).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    assert!(e.message().contains("local rank 2"), "{e}");
    let none = Visible::default();
    let e = plan_rank(&topo, &gpus, &none, &o, 0, None).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::NoDevice);
    assert!(e.message().contains("no GPU visible"));
    // plan_all: nproc 6 over 4 GPUs; ranks 4 and 5 fail, the others plan.
    o.nproc = Some(6);
    let plan = plan_all(&topo, &gpus, &all(&gpus), &o);
    assert_eq!(plan.ranks.len(), 6);
    assert!(plan.ranks[..4].iter().all(Result::is_ok));
    assert!(plan.ranks[4..].iter().all(Result::is_err));
    let plan = plan_all(&topo, &gpus, &none, &opts("node", ALL, true));
    assert!(plan.ranks.is_empty() && !plan.warnings.is_empty());
}

#[test]
fn map_mode() {
    let (mut topo, gpus) = ex1();
    let mut o = opts("map", ALL, true);
    o.map = Some(vec![l("0-1"), l("8-9"), l("4"), l("15")]);
    assert_eq!(
        lists(&topo, &gpus, &all(&gpus), &o),
        ["0-1", "8-9", "4", "15"]
    );
    let r = plan_rank(&topo, &gpus, &all(&gpus), &o, 1, None).unwrap();
    assert_eq!(r.mems, CpuSet::single(0));
    o.map = Some(vec![l("0-1")]);
    let e = plan_rank(&topo, &gpus, &all(&gpus), &o, 1, None).unwrap_err();
    assert!(e.message().contains("none for local rank 1"), "{e}");
    topo.allowed = l("0-7");
    o.map = Some(vec![l("6-9")]);
    let e = plan_rank(&topo, &gpus, &all(&gpus), &o, 0, None).unwrap_err();
    assert!(e.message().contains("CPUs 8-9"), "{e}");
}

#[test]
fn none_mode_leaves_the_process_alone() {
    let (topo, gpus) = ex1();
    let r = plan_rank(&topo, &gpus, &all(&gpus), &opts("none", ALL, true), 2, None).unwrap();
    assert!(r.cpus.is_empty() && r.mems.is_empty());
    assert_eq!((r.gpu_index, r.numa_node), (2, Some(1)));
}

#[test]
fn no_numa_information_is_one_node() {
    let (mut topo, mut gpus) = ex1();
    topo.nodes.clear();
    for g in &mut gpus {
        g.numa_node = None;
    }
    let got = lists(&topo, &gpus, &all(&gpus), &opts("exclusive", ALL, true));
    // Every GPU counts as on the one node 0.
    assert_eq!(got, ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"]);
    let r = plan_rank(&topo, &gpus, &all(&gpus), &opts("node", ALL, true), 0, None).unwrap();
    assert_eq!(r.cpus, topo.online);
    assert_eq!(r.mems, CpuSet::single(0));
}

#[test]
fn mode_and_cores_names_round_trip() {
    for m in Mode::ALL {
        assert_eq!(Mode::parse(m.name()).unwrap(), m);
    }
    assert_eq!(Mode::parse("core_complex").unwrap(), Mode::CoreComplex);
    assert_eq!(Mode::Socket.family(), Family::Nvidia);
    assert_eq!(Mode::Package.family(), Family::Torch);
    assert_eq!(Mode::Map.family(), Family::Map);
    assert_eq!(Mode::None.family(), Family::None);
    let e = Mode::parse("sokcet").unwrap_err();
    assert!(
        e.message().contains("GPU_AFFINITY_MODE")
            && e.message().contains("socket_unique_contiguous")
    );
    for c in [Cores::AllLogical, Cores::SingleLogical] {
        assert_eq!(Cores::parse(c.name()).unwrap(), c);
    }
    assert!(Cores::parse("all")
        .unwrap_err()
        .message()
        .contains("GPU_AFFINITY_CORES"));
}

#[test]
fn plans_are_deterministic() {
    let (topo, gpus) = ex2();
    for m in Mode::ALL.into_iter().filter(|m| *m != Mode::Map) {
        let o = opts(m.name(), ONE, false);
        assert_eq!(
            plan_all(&topo, &gpus, &all(&gpus), &o),
            plan_all(&topo, &gpus, &all(&gpus), &o)
        );
    }
}

/// Fixture machines loaded from sysfs trees written once under the scratch root.
fn fixture_machine(spec: &gpuaff_fixtures::Spec) -> Option<crate::Machine> {
    let root = gpuaff_fixtures::cached(spec).ok()?;
    let req = crate::Request {
        fsroot: root,
        source: crate::Source::Sysfs,
        rank: Some(0),
        ..crate::Request::default()
    };
    crate::Machine::load(&req, crate::AllowedFrom::Snapshot).ok()
}

/// Planning time on big machines (run in release):
/// `cargo test -p gpuaff-core --release --lib plan_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn plan_timing() {
    use std::time::{Duration, Instant};
    let specs = [
        ("dgx-a100", gpuaff_fixtures::by_name("dgx-a100")),
        ("big-1024", gpuaff_fixtures::by_name("big-1024")),
        ("gpu72", gpuaff_fixtures::by_name("gpu72")),
        ("scaled 4096c 72g", Some(gpuaff_fixtures::scaled(4096, 72))),
    ];
    for (label, spec) in specs {
        let m = fixture_machine(&spec.expect(label)).expect(label);
        let vis = crate::gpu::resolve_visible(&m.gpus, None, crate::DeviceOrder::FastestFirst)
            .expect(label);
        let o = PlanOptions::default();
        let time = |f: &dyn Fn()| -> Duration {
            let mut best = Duration::MAX;
            let start = Instant::now();
            let mut n = 0;
            while n < 3 || (start.elapsed() < Duration::from_secs(2) && n < 200) {
                let t = Instant::now();
                f();
                best = best.min(t.elapsed());
                n += 1;
            }
            best
        };
        let all = time(&|| {
            std::hint::black_box(plan_all(&m.topology, &m.gpus, &vis, &o));
        });
        let one = time(&|| {
            std::hint::black_box(plan_rank(&m.topology, &m.gpus, &vis, &o, 0, None).ok());
        });
        let index = time(&|| {
            std::hint::black_box(Ctx::new(&m.topology, &m.gpus).core_index().is_some());
        });
        let homes = time(&|| {
            let ctx = Ctx::new(&m.topology, &m.gpus);
            for gi in 0..m.gpus.len() {
                std::hint::black_box(ctx.nvidia(gi).is_ok());
            }
        });
        eprintln!("{label}: core index {index:?}, every GPU's home and cores {homes:?}");
        eprintln!(
            "{label}: {} CPUs {} GPUs: plan_all {all:?}, one rank {one:?}",
            m.topology.online.len(),
            m.gpus.len()
        );
    }
}

/// Every plan of every catalog machine in every mode, as text: run before and after a change to
/// the planner's internals and compare (`GPUAFF_PLAN_DUMP=/path`).
#[test]
#[ignore]
fn plan_dump() {
    use std::fmt::Write;
    let Some(path) = std::env::var_os("GPUAFF_PLAN_DUMP") else {
        return;
    };
    let mut out = String::new();
    let specs = gpuaff_fixtures::catalog()
        .into_iter()
        .filter(|s| s.ncpus() <= 1024)
        .chain([gpuaff_fixtures::scaled(512, 24)]);
    for spec in specs {
        let Some(m) = fixture_machine(&spec) else {
            writeln!(out, "{}: no load", spec.name).unwrap();
            continue;
        };
        let Ok(full) = crate::gpu::resolve_visible(&m.gpus, None, crate::DeviceOrder::PciBusId)
        else {
            continue;
        };
        let mut visibles = vec![full.clone()];
        if full.gpus.len() > 1 {
            let mut one = full.clone();
            one.gpus = vec![full.gpus[full.gpus.len() / 2]];
            visibles.push(one);
            let mut odd = full.clone();
            odd.gpus = full.gpus.iter().copied().skip(1).step_by(2).collect();
            visibles.push(odd);
        }
        for vis in &visibles {
            for mode in Mode::ALL {
                for cores in [Cores::AllLogical, Cores::SingleLogical] {
                    for balanced in [true, false] {
                        for nproc in [None, Some(1), Some(3), Some(m.gpus.len().max(1))] {
                            let o = PlanOptions {
                                mode,
                                cores,
                                balanced,
                                nproc,
                                map: (mode == Mode::Map).then(|| {
                                    m.topology.cores.iter().map(|c| c.cpus.clone()).collect()
                                }),
                            };
                            let p = plan_all(&m.topology, &m.gpus, vis, &o);
                            writeln!(out, "{} {:?} {o:?}\n{p:?}", spec.name, vis.gpus).unwrap();
                            for g in 0..vis.gpus.len().min(4) {
                                let r = plan_rank(&m.topology, &m.gpus, vis, &o, 0, Some(g));
                                writeln!(out, "gpu {g}: {r:?}").unwrap();
                            }
                        }
                    }
                }
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

/// The CPU-indexed `cores_of` / `complexes_of` against walking every core and complex, on sets
/// with CPUs in no core (and beyond every core), complexes listed out of CPU order, and cores
/// that overlap (where the index must step aside).
#[test]
fn indexed_cores_and_complexes_equal_the_walk() {
    let (mut topo, gpus) = ex2();
    let lone = topo.cores.pop().unwrap().cpus;
    topo.complexes.reverse();
    topo.complexes.pop();
    let top = topo.online.last().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut sets: Vec<CpuSet> = vec![CpuSet::new(), topo.online.clone(), lone.clone()];
    for _ in 0..300 {
        let set: CpuSet = (0..=top + 3)
            .filter(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seed >> 62 == 0
            })
            .collect();
        sets.push(set);
    }
    let ctx = Ctx::new(&topo, &gpus);
    assert!(ctx.core_index().is_some() && ctx.complex_index().is_some());
    for set in &sets {
        let walked = ctx.cores_of_walk(set);
        assert_eq!(ctx.cores_of(set), walked, "cores of {set}");
        assert_eq!(ctx.within_one_core(set), walked.len() <= 1, "{set}");
        let mut groups = ctx.complexes_walk(set);
        if groups.len() > 1 && groups.iter().all(|g| ctx.cores_of_walk(g).len() <= 1) {
            groups.clear();
        }
        assert_eq!(ctx.complexes_of(set), groups, "complexes of {set}");
    }

    // Overlapping cores and complexes: no index, the walk answers.
    topo.cores[1].cpus = topo.cores[1].cpus.union(&topo.cores[0].cpus);
    topo.complexes[1] = topo.complexes[1].union(&topo.complexes[0]);
    let ctx = Ctx::new(&topo, &gpus);
    assert!(ctx.core_index().is_none() && ctx.complex_index().is_none());
    for set in &sets {
        assert_eq!(ctx.cores_of(set), ctx.cores_of_walk(set), "cores of {set}");
    }
}
