//! Property tests of the planner over random machines (docs/MODES.md is the specification):
//! sockets 1-4 × nodes 1-4 × cores 1-16 × SMT 1/2/4 (stride or adjacent numbering), complexes of
//! 1-8 cores, CPU-less nodes, random allowed sets, 1-8 GPUs on random nodes (unknown `numa_node`,
//! CPU-less nodes with local CPUs elsewhere, unknown local CPUs), random nproc and
//! CUDA_VISIBLE_DEVICES-like subsets in any order, both `cores` settings, balanced or not.
//!
//! Every case plans every mode and checks: each rank's set is non-empty and allowed; ranks fail only
//! when they have no visible GPU; exclusive modes give different GPUs disjoint sets when docs/MODES.md
//! says they do; balanced unique modes give every GPU the same number of cores; the same inputs give
//! the same plan (again, on clones, on a different construction order, and in another process).
//!
//! `PROPTEST_CASES` sets the number of random machines (default 1500).

use gpuaff_core::plan::{plan_all, Family, Plan};
use gpuaff_core::topology::{Core, Node, Package};
use gpuaff_core::{Cores, CpuSet, ErrorKind, Gpu, Mode, PlanOptions, RankPlan, Topology, Visible};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many plans the conditional properties were checked on (so a run shows they ran).
static DISJOINT_CHECKED: AtomicUsize = AtomicUsize::new(0);
static BALANCED_CHECKED: AtomicUsize = AtomicUsize::new(0);
static RANKS_CHECKED: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
enum Allowed {
    All,
    /// Each online CPU kept with this probability (percent), from this seed.
    Random(u64, u8),
    /// One CPU node's CPUs (index modulo the CPU nodes).
    Node(usize),
    /// One package's CPUs.
    Package(usize),
}

#[derive(Clone, Debug)]
struct GpuSpec {
    /// Index into every node (CPU nodes, then CPU-less ones), modulo their number.
    node: usize,
    /// PCI numa_node = -1.
    numa_unknown: bool,
    /// The CPU node whose CPUs are the local CPUs when `node` is CPU-less.
    local_from: usize,
    /// False: local_cpulist unknown (empty).
    local_known: bool,
}

#[derive(Clone, Debug)]
struct Shape {
    sockets: usize,
    nodes_per_socket: usize,
    cores_per_node: usize,
    smt: usize,
    /// Siblings numbered c*smt+k (ARM/POWER style) instead of c+k*total (Linux x86).
    adjacent: bool,
    complex_cores: usize,
    cpuless: usize,
    allowed: Allowed,
    gpus: Vec<GpuSpec>,
    nproc: Option<usize>,
    /// CUDA order keys (a permutation) and how many GPUs stay visible; None: all, PCI order.
    visible: Option<(Vec<u64>, usize)>,
    cores: Cores,
    balanced: bool,
    map_seed: u64,
}

fn shape() -> impl Strategy<Value = Shape> {
    let allowed = prop_oneof![
        2 => Just(Allowed::All),
        4 => (any::<u64>(), 5u8..100).prop_map(|(s, d)| Allowed::Random(s, d)),
        1 => (0usize..16).prop_map(Allowed::Node),
        1 => (0usize..4).prop_map(Allowed::Package),
    ];
    let gpu = (
        0usize..24,
        prop::bool::weighted(0.2),
        0usize..16,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(node, numa_unknown, local_from, local_known)| GpuSpec {
            node,
            numa_unknown,
            local_from,
            local_known,
        });
    (
        (
            1usize..=4,
            1usize..=4,
            1usize..=16,
            prop::sample::select(vec![1usize, 2, 4]),
        ),
        (
            any::<bool>(),
            1usize..=8,
            prop::sample::select(vec![0usize, 0, 0, 1, 2]),
        ),
        allowed,
        prop::collection::vec(gpu, 1..=8),
        prop::option::weighted(0.3, 1usize..=10),
        prop::option::weighted(0.3, (prop::collection::vec(any::<u64>(), 8), 1usize..=8)),
        (any::<bool>(), prop::bool::weighted(0.7), any::<u64>()),
    )
        .prop_map(
            |((s, n, c, t), (adj, cx, cl), allowed, gpus, nproc, visible, (one, bal, seed))| {
                Shape {
                    sockets: s,
                    nodes_per_socket: n,
                    cores_per_node: c,
                    smt: t,
                    adjacent: adj,
                    complex_cores: cx,
                    cpuless: cl,
                    allowed,
                    gpus,
                    nproc,
                    visible,
                    cores: if one {
                        Cores::SingleLogical
                    } else {
                        Cores::AllLogical
                    },
                    balanced: bal,
                    map_seed: seed,
                }
            },
        )
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

struct Case {
    topo: Topology,
    gpus: Vec<Gpu>,
    visible: Visible,
    shape: Shape,
}

fn build(sh: &Shape) -> Case {
    let total = sh.sockets * sh.nodes_per_socket * sh.cores_per_node;
    let core_cpus = |c: usize| -> CpuSet {
        (0..sh.smt)
            .map(|k| {
                if sh.adjacent {
                    c * sh.smt + k
                } else {
                    c + k * total
                }
            })
            .collect()
    };
    let cores_cpus = |lo: usize, hi: usize| -> CpuSet {
        (lo..hi).map(core_cpus).collect::<Vec<_>>().iter().collect()
    };
    let per_pkg = sh.nodes_per_socket * sh.cores_per_node;
    let cores: Vec<Core> = (0..total)
        .map(|c| Core {
            cpus: core_cpus(c),
            package: c / per_pkg,
        })
        .collect();
    let packages: Vec<Package> = (0..sh.sockets)
        .map(|s| Package {
            os_id: Some(s as i64),
            cpus: cores_cpus(s * per_pkg, (s + 1) * per_pkg),
        })
        .collect();
    let cpu_nodes = sh.sockets * sh.nodes_per_socket;
    let mut nodes: Vec<Node> = (0..cpu_nodes)
        .map(|n| Node {
            id: n as u32,
            cpus: cores_cpus(n * sh.cores_per_node, (n + 1) * sh.cores_per_node),
            distances: vec![],
        })
        .collect();
    // CPU-less nodes get sparse ids above the CPU nodes, as on Grace (GPU memory) or CXL machines.
    for i in 0..sh.cpuless {
        nodes.push(Node {
            id: (cpu_nodes + 2 * i + 1) as u32,
            cpus: CpuSet::new(),
            distances: vec![],
        });
    }
    let complexes: Vec<CpuSet> = (0..sh.sockets)
        .flat_map(|s| {
            (0..per_pkg).step_by(sh.complex_cores).map(move |lo| {
                let lo = s * per_pkg + lo;
                (lo, (lo + sh.complex_cores).min((s + 1) * per_pkg))
            })
        })
        .map(|(lo, hi)| cores_cpus(lo, hi))
        .collect();
    let online = cores_cpus(0, total);
    let allowed = match &sh.allowed {
        Allowed::All => online.clone(),
        Allowed::Random(seed, density) => {
            let mut s = seed | 1;
            let mut a: CpuSet = online
                .iter()
                .filter(|_| xorshift(&mut s) % 100 < u64::from(*density))
                .collect();
            if a.is_empty() {
                let ids: Vec<usize> = online.iter().collect();
                a.insert(ids[(*seed as usize) % ids.len()]);
            }
            a
        }
        Allowed::Node(n) => nodes[n % cpu_nodes].cpus.clone(),
        Allowed::Package(p) => packages[p % sh.sockets].cpus.clone(),
    };
    let gpus: Vec<Gpu> = sh
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let target = g.node % nodes.len();
            let local_node = if target < cpu_nodes {
                target
            } else {
                g.local_from % cpu_nodes
            };
            Gpu {
                index: i,
                pci_bus_id: format!("0000:{:02x}:00.0", 0x10 + i),
                numa_node: (!g.numa_unknown).then_some(nodes[target].id),
                local_cpus: if g.local_known {
                    nodes[local_node].cpus.clone()
                } else {
                    CpuSet::new()
                },
                ..Gpu::default()
            }
        })
        .collect();
    let visible = match &sh.visible {
        None => (0..gpus.len()).collect(),
        Some((keys, count)) => {
            let mut order: Vec<usize> = (0..gpus.len()).collect();
            order.sort_by_key(|&i| (keys[i], i));
            order.truncate((*count).clamp(1, gpus.len()));
            order
        }
    };
    Case {
        topo: Topology {
            online,
            cores,
            packages,
            nodes,
            complexes,
            allowed,
            scope: None,
            counted: Vec::new(),
        },
        gpus,
        visible: Visible {
            gpus: visible,
            warnings: vec![],
            none_by: None,
        },
        shape: sh.clone(),
    }
}

/// Every mode but `map`, and `map` with lists drawn from the allowed set.
fn options(case: &Case) -> Vec<PlanOptions> {
    let nranks = case.shape.nproc.unwrap_or(case.visible.gpus.len());
    let allowed: Vec<usize> = case.topo.allowed.iter().collect();
    let mut s = case.shape.map_seed | 1;
    let map: Vec<CpuSet> = (0..nranks)
        .map(|_| {
            let lo = xorshift(&mut s) as usize % allowed.len();
            let n = 1 + xorshift(&mut s) as usize % allowed.len().min(8);
            allowed.iter().cycle().skip(lo).take(n).copied().collect()
        })
        .collect();
    Mode::ALL
        .iter()
        .map(|&mode| PlanOptions {
            mode,
            cores: case.shape.cores,
            balanced: case.shape.balanced,
            nproc: case.shape.nproc,
            map: (mode == Mode::Map).then(|| map.clone()),
        })
        .collect()
}

/// The cores of the machine that `set` touches.
fn core_count(topo: &Topology, set: &CpuSet) -> usize {
    topo.cores.iter().filter(|c| c.cpus.intersects(set)).count()
}

fn node_cpus(topo: &Topology, ids: &CpuSet) -> CpuSet {
    topo.nodes
        .iter()
        .filter(|n| ids.contains(n.id as usize))
        .map(|n| &n.cpus)
        .collect()
}

/// docs/MODES.md: a GPU's node is its PCI numa_node; when that is -1 or CPU-less, the node(s) holding
/// its local CPUs.
fn gpu_nodes(topo: &Topology, g: &Gpu) -> CpuSet {
    if let Some(n) = g.numa_node {
        if topo.nodes.iter().any(|x| x.id == n && !x.cpus.is_empty()) {
            return CpuSet::single(n as usize);
        }
    }
    topo.nodes
        .iter()
        .filter(|n| n.cpus.intersects(&g.local_cpus))
        .map(|n| n.id as usize)
        .collect()
}

/// The GPUs (machine indices) that take part in a plan: the visible ones, or every GPU of the
/// machine when a process sees one GPU but is one of several.
fn pool(case: &Case, nranks: usize) -> Vec<usize> {
    if case.visible.gpus.len() == 1 && nranks > 1 && case.gpus.len() > 1 {
        (0..case.gpus.len()).collect()
    } else {
        case.visible.gpus.clone()
    }
}

fn equal_or_disjoint(sets: &[CpuSet]) -> bool {
    sets.iter()
        .all(|a| sets.iter().all(|b| a == b || !a.intersects(b)))
}

fn check_disjoint(ok: &[&RankPlan], what: &str) -> Result<(), TestCaseError> {
    DISJOINT_CHECKED.fetch_add(1, Relaxed);
    for a in ok {
        for b in ok {
            if a.gpu_index != b.gpu_index {
                prop_assert!(
                    !a.cpus.intersects(&b.cpus),
                    "{what}: ranks {} and {} (GPUs {} and {}) share CPUs: {} / {}",
                    a.rank,
                    b.rank,
                    a.gpu_index,
                    b.gpu_index,
                    a.cpus,
                    b.cpus
                );
            }
        }
    }
    Ok(())
}

fn check_plan(case: &Case, o: &PlanOptions, plan: &Plan) -> Result<(), TestCaseError> {
    let topo = &case.topo;
    let vis = &case.visible.gpus;
    let nranks = o.nproc.unwrap_or(vis.len());
    let mode = o.mode.name();
    prop_assert_eq!(plan.ranks.len(), nranks, "{}: one entry per rank", mode);
    let mut ok: Vec<&RankPlan> = Vec::new();
    for (r, res) in plan.ranks.iter().enumerate() {
        let has_gpu = r < vis.len() || vis.len() == 1;
        let rp = match res {
            Err(e) => {
                prop_assert!(
                    !has_gpu && e.kind() == ErrorKind::NoDevice,
                    "{mode}: rank {r} failed: {e}"
                );
                continue;
            }
            Ok(rp) => rp,
        };
        prop_assert!(has_gpu, "{mode}: rank {r} planned without a visible GPU");
        prop_assert_eq!(rp.rank, r);
        let cuda = if vis.len() == 1 { 0 } else { r };
        prop_assert_eq!(rp.gpu, cuda);
        prop_assert_eq!(rp.gpu_index, vis[cuda]);
        if o.mode == Mode::None {
            prop_assert!(rp.cpus.is_empty() && rp.mems.is_empty(), "none: {rp:?}");
            continue;
        }
        prop_assert!(!rp.cpus.is_empty(), "{mode}: rank {r} empty");
        prop_assert!(
            rp.cpus.is_subset(&topo.allowed),
            "{mode}: rank {r} gets {} outside the allowed {}",
            rp.cpus,
            topo.allowed
        );
        // mems: exactly the CPU nodes of the set.
        let mems: CpuSet = topo
            .nodes
            .iter()
            .filter(|n| n.cpus.intersects(&rp.cpus))
            .map(|n| n.id as usize)
            .collect();
        prop_assert_eq!(&rp.mems, &mems, "{}: rank {} mems", mode, r);
        if o.cores == Cores::SingleLogical {
            prop_assert_eq!(
                core_count(topo, &rp.cpus),
                rp.cpus.len(),
                "{}: single_logical gives one CPU per core: {}",
                mode,
                &rp.cpus
            );
        }
        let g = &case.gpus[rp.gpu_index];
        if !rp.fallback {
            match o.mode.family() {
                Family::Nvidia if !g.local_cpus.is_empty() => prop_assert!(
                    rp.cpus.is_subset(&g.local_cpus),
                    "{mode}: rank {r} {} not within its GPU's local CPUs {}",
                    rp.cpus,
                    g.local_cpus
                ),
                Family::Torch => {
                    let home = node_cpus(topo, &gpu_nodes(topo, g));
                    let home = if o.mode == Mode::Package {
                        topo.packages
                            .iter()
                            .filter(|p| p.cpus.intersects(&home))
                            .map(|p| &p.cpus)
                            .collect()
                    } else {
                        home
                    };
                    prop_assert!(
                        rp.cpus.is_subset(&home),
                        "{mode}: rank {r} {} not within {home}",
                        rp.cpus
                    );
                }
                Family::Map => {
                    let want = &o.map.as_ref().unwrap()[r];
                    // single_logical keeps one CPU of each core of the map's list too.
                    prop_assert!(
                        rp.cpus == *want
                            || (o.cores == Cores::SingleLogical
                                && rp.cpus.is_subset(want)
                                && core_count(topo, &rp.cpus) == core_count(topo, want)),
                        "map: rank {r} got {} for {want}",
                        rp.cpus
                    );
                }
                _ => {}
            }
        }
        RANKS_CHECKED.fetch_add(1, Relaxed);
        ok.push(rp);
    }
    if o.mode == Mode::None || ok.iter().any(|rp| rp.fallback) {
        return Ok(());
    }

    let pool = pool(case, nranks);
    match o.mode {
        Mode::SocketUniqueContiguous | Mode::SocketUniqueInterleaved | Mode::SocketSingleUnique => {
            // The participants: the first nproc GPUs of the pool; each one's set is its local
            // CPUs (or its node's) within the allowed set.
            let part = &pool[..nranks.min(pool.len())];
            let homes: Vec<CpuSet> = part
                .iter()
                .map(|&i| {
                    let g = &case.gpus[i];
                    let own = if g.local_cpus.is_empty() {
                        node_cpus(topo, &gpu_nodes(topo, g))
                    } else {
                        g.local_cpus.clone()
                    };
                    own.intersection(&topo.allowed)
                })
                .collect();
            let enough = homes.iter().all(|h| {
                !h.is_empty() && core_count(topo, h) >= homes.iter().filter(|x| *x == h).count()
            });
            if enough && equal_or_disjoint(&homes) {
                check_disjoint(&ok, mode)?;
                if o.balanced && o.mode != Mode::SocketSingleUnique {
                    BALANCED_CHECKED.fetch_add(1, Relaxed);
                    let counts: Vec<usize> =
                        ok.iter().map(|rp| core_count(topo, &rp.cpus)).collect();
                    prop_assert!(
                        counts.windows(2).all(|w| w[0] == w[1]),
                        "{mode} balanced: unequal core counts {counts:?}"
                    );
                }
            }
        }
        Mode::Exclusive => {
            let nodes: Vec<CpuSet> = pool
                .iter()
                .map(|&i| gpu_nodes(topo, &case.gpus[i]))
                .collect();
            let homes: Vec<CpuSet> = nodes
                .iter()
                .map(|n| node_cpus(topo, n).intersection(&topo.allowed))
                .collect();
            let enough = homes.iter().all(|h| {
                !h.is_empty() && core_count(topo, h) >= homes.iter().filter(|x| *x == h).count()
            });
            if enough && equal_or_disjoint(&nodes) {
                check_disjoint(&ok, mode)?;
                // Within a node: runs of P/G cores, one more for the lowest relative indices.
                for h in homes.iter() {
                    let on: Vec<usize> = ok
                        .iter()
                        .filter(|rp| rp.cpus.is_subset(h))
                        .map(|rp| core_count(topo, &rp.cpus))
                        .collect();
                    let g = homes.iter().filter(|x| *x == h).count();
                    let p = core_count(topo, h);
                    prop_assert!(
                        on.iter().all(|&n| n == p / g || n == p / g + 1)
                            && on.windows(2).all(|w| w[0] >= w[1]),
                        "exclusive: node of {h}: {g} GPUs over {p} cores gave {on:?}"
                    );
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The same machine built in another order: reversed cores, nodes, complexes and packages.
fn reordered(topo: &Topology) -> Topology {
    let np = topo.packages.len();
    let mut t = topo.clone();
    t.cores.reverse();
    for c in &mut t.cores {
        c.package = np - 1 - c.package;
    }
    t.packages.reverse();
    t.nodes.reverse();
    t.complexes.reverse();
    // CpuSets built highest id first.
    let ids: Vec<usize> = topo.allowed.iter().collect();
    t.allowed = ids.into_iter().rev().collect();
    t
}

fn check_case(sh: &Shape) -> Result<(), TestCaseError> {
    let case = build(sh);
    let other = reordered(&case.topo);
    for o in options(&case) {
        let plan = plan_all(&case.topo, &case.gpus, &case.visible, &o);
        check_plan(&case, &o, &plan)?;
        let again = plan_all(
            &case.topo.clone(),
            &case.gpus.clone(),
            &case.visible,
            &o.clone(),
        );
        prop_assert_eq!(&plan, &again, "{}: planning twice differs", o.mode.name());
        // Contract: the vectors are sorted; a planner that does not lean on it is robust to
        // loaders that build them differently.
        let moved = plan_all(&other, &case.gpus, &case.visible, &o);
        prop_assert_eq!(
            &plan.ranks,
            &moved.ranks,
            "{}: plan depends on construction order",
            o.mode.name()
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

#[test]
fn random_machines_every_mode() {
    let n = cases();
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let t = std::time::Instant::now();
    if let Err(e) = runner.run(&shape(), |sh| check_case(&sh)) {
        panic!("{e}");
    }
    println!(
        "prop_plan: {n} random machines x {} modes planned and checked in {:.1?}: {} rank plans, \
         {} plans checked disjoint, {} checked balanced",
        Mode::ALL.len(),
        t.elapsed(),
        RANKS_CHECKED.load(Relaxed),
        DISJOINT_CHECKED.load(Relaxed),
        BALANCED_CHECKED.load(Relaxed),
    );
}

const CHILD: &str = "GPUAFF_PROP_PLAN_CHILD";
const CHILD_CASES: usize = 150;

/// The plans of a fixed, deterministic series of machines, as text.
fn plans_text() -> String {
    let mut runner = TestRunner::deterministic();
    let strat = shape();
    let mut out = String::new();
    for i in 0..CHILD_CASES {
        let sh = strat
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("generating case {i}: {e}"))
            .current();
        let case = build(&sh);
        for o in options(&case) {
            let plan = plan_all(&case.topo, &case.gpus, &case.visible, &o);
            out.push_str(&format!("{i} {}: {:?}\n", o.mode.name(), plan.ranks));
        }
    }
    out
}

/// Another process (new hash seeds, new addresses) computes the same plans.
#[test]
fn same_plans_in_another_process() {
    if std::env::var_os(CHILD).is_some() {
        print!("<<<PLANS\n{}PLANS>>>", plans_text());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "same_plans_in_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let child = stdout
        .split_once("<<<PLANS\n")
        .and_then(|(_, rest)| rest.split_once("PLANS>>>"))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("child printed no plans: {stdout}"));
    let mine = plans_text();
    assert!(mine.lines().count() >= CHILD_CASES * Mode::ALL.len());
    for (i, (a, b)) in mine.lines().zip(child.lines()).enumerate() {
        assert_eq!(a, b, "line {i} differs between processes");
    }
    assert_eq!(mine.len(), child.len());
    println!(
        "prop_plan: {CHILD_CASES} machines x {} modes planned identically in two processes",
        Mode::ALL.len()
    );
}
