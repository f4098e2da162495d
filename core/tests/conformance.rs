//! Conformance with hwloc over the real machine snapshots of hwloc's Linux test suite
//! (../shared/fixtures/hwloc). Each snapshot must load (or be refused with a reason), and its
//! package, NUMA node, core and CPU counts must agree with hwloc's own reading (`NAME.console`),
//! or the disagreement must be listed in `KNOWN` with the reason. Run with `--nocapture` to see
//! the table.

use gpuaff_core::topology::Topology;
use gpuaff_core::{AllowedFrom, CpuSet, Fs};

#[path = "support/snapshots.rs"]
mod snapshots;

// 64amd64-* (AMD Opteron 6276, Bulldozer) list `thread_siblings_list` 0-1 for CPUs 0 and 1, but
// their `core_id`s differ (0 and 1): the kernel reports the two integer cores of a compute unit
// as thread siblings. hwloc's console shows 64 cores of one PU each (topology-linux.c splits
// siblings whose core_id differs), and so does gpuaff: they are real cores with their own
// integer units, so `single_logical` must not halve them. These snapshots agree below.

/// Disagreements with hwloc that are deliberate: (snapshot, field, reason).
const KNOWN: &[(&str, &str, &str)] = &[
    // hwloc shows one NUMANode for a machine without sys/devices/system/node; gpuaff's
    // `Topology::nodes` is empty then (the planner treats every CPU as node 0).
    (
        "20s390-2g6s4c",
        "numa",
        "no node directory: hwloc invents node 0, nodes stay empty",
    ),
    (
        "2arm-2c",
        "numa",
        "no node directory: hwloc invents node 0, nodes stay empty",
    ),
    (
        "2ps3-2t",
        "numa",
        "no node directory: hwloc invents node 0, nodes stay empty",
    ),
    // No package sibling mask and no physical_package_id: hwloc makes no Package; gpuaff puts
    // the CPUs in one package so `package` mode still has a domain.
    (
        "2ps3-2t",
        "pkg",
        "no package information: one package holds all CPUs",
    ),
    // No thread_siblings at all: hwloc makes no Core objects; gpuaff makes each CPU its own core.
    (
        "4fake-4gr1nu1pu",
        "core",
        "no thread siblings: each CPU is its own core (hwloc: none)",
    ),
    // hwloc also applies the cgroup's cpuset.mems: it hides disallowed nodes and keeps packages
    // that only allowed memory reaches. gpuaff keeps every node (it binds CPUs; mems are the
    // kernel's to refuse) and counts packages with allowed CPUs.
    (
        "4fake-4gr1nu1pu",
        "numa",
        "cgroup mems=0,2: hwloc hides the other nodes",
    ),
    (
        "16amd64-8n2c-cpusets",
        "numa",
        "cgroup mems=1-4: hwloc hides the other nodes",
    ),
    (
        "16amd64-8n2c-cpusets",
        "pkg",
        "hwloc keeps a CPU-less package reached by allowed mems",
    ),
    (
        "fakememinitiators-1np2c+1npp+gi",
        "numa",
        "cgroup mems=5-10: hwloc hides nodes 0-4",
    ),
    (
        "16amd64-4n4c-cgroup-distance-merge",
        "numa",
        "cgroup mems=2-3: hwloc hides nodes 0-1",
    ),
    (
        "16amd64-4n4c-cgroup-distance-merge",
        "pkg",
        "hwloc keeps packages reached by mems 2-3",
    ),
    (
        "16amd64-4n4c-cgroup-distance-merge",
        "core",
        "hwloc's console shows no Core objects here",
    ),
    // All eight nodes list CPUs 0-7 at distance 10: hwloc discards the broken NUMA information and
    // shows one node; gpuaff keeps what sysfs says (node_of_cpu answers the lowest id, node 0).
    (
        "8em64t-2s2ca2c-buggynuma",
        "numa",
        "8 overlapping nodes; hwloc merges them into one",
    ),
    // A deliberately conflicting snapshot (hwloc's pci-conflicts test): hwloc leaves package 3's
    // L3 directly under Machine. sysfs says four packages of ten CPUs.
    (
        "40intel64-4n10c+pci-conflicts",
        "pkg",
        "hwloc drops package 3 over an object conflict",
    ),
    // hwloc hides NVIDIA GPU-memory nodes unless asked (nvidiagpunumanodes-kept.console shows
    // all 8); gpuaff keeps them as CPU-less nodes (Gpu::mem_node) and never binds CPUs to them.
    (
        "nvidiagpunumanodes",
        "numa",
        "hwloc hides the 6 GPU-memory nodes by default",
    ),
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    pkg: usize,
    numa: usize,
    core: usize,
    cpu: usize,
}

/// hwloc's counts from lstopo's text output: one object per line.
fn console_counts(text: &str) -> Counts {
    // Object lines: `Type L#n ...` or `Type(subtype) L#n ...`; not the memory-attribute lines
    // (`NUMANode L#0 = 1000 from ...`) nor the summary (`depth 1: 2 Package`).
    let count = |what: &str| {
        text.lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                let ty = words.next().unwrap_or("");
                let ty = ty.split('(').next().unwrap_or("");
                ty == what
                    && words.next().is_some_and(|w| w.starts_with("L#"))
                    && words.next() != Some("=")
            })
            .count()
    };
    Counts {
        pkg: count("Package"),
        numa: count("NUMANode"),
        core: count("Core"),
        cpu: count("PU"),
    }
}

/// Our counts as lstopo shows them: only what the (cgroup-)allowed CPUs reach, as hwloc hides
/// disallowed CPUs and the cores and packages left empty.
fn our_counts(t: &Topology) -> Counts {
    Counts {
        pkg: t
            .packages
            .iter()
            .filter(|p| p.cpus.intersects(&t.allowed))
            .count(),
        numa: t.nodes.len(),
        core: t
            .cores
            .iter()
            .filter(|c| c.cpus.intersects(&t.allowed))
            .count(),
        cpu: t.allowed.len(),
    }
}

struct Row {
    name: String,
    loaded: Result<Counts, String>,
    hwloc: Option<Counts>,
    verdict: String,
}

#[test]
fn snapshots_agree_with_hwloc() {
    let Some(tarballs) = snapshots::tarballs() else {
        return;
    };
    let fixtures = snapshots::dir().expect("the snapshots' directory");

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut used_known = Vec::new();
    for tarball in &tarballs {
        let name = snapshots::name(tarball);
        let hwloc = std::fs::read_to_string(fixtures.join(format!("{name}.console")))
            .ok()
            .map(|t| console_counts(&t));
        let snap = match snapshots::extract(tarball, "conformance") {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("cannot extract: {e}"));
                continue;
            }
        };
        let root = &snap.root;
        let fs = Fs::new(root);
        let loaded = Topology::load(&fs, &AllowedFrom::Snapshot)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                check_invariants(&t).map_err(|e| format!("invariant broken: {e}"))?;
                let gpus =
                    gpuaff_core::gpu::nvidia::discover_sysfs(&fs).map_err(|e| e.to_string())?;
                if name == "nvidiagpunumanodes" {
                    check_nvidiagpunumanodes(&t, &gpus)
                        .map_err(|e| format!("GPU check failed: {e}"))?;
                }
                Ok(our_counts(&t))
            });
        drop(snap);

        let verdict = match (&loaded, &hwloc) {
            (Err(e), _) => {
                failures.push(format!("{name}: does not load: {e}"));
                "FAIL: does not load".to_string()
            }
            (Ok(_), None) => "loads (no hwloc console)".to_string(),
            (Ok(ours), Some(h)) => {
                let mut notes = Vec::new();
                for (field, a, b) in [
                    ("pkg", ours.pkg, h.pkg),
                    ("numa", ours.numa, h.numa),
                    ("core", ours.core, h.core),
                    ("cpu", ours.cpu, h.cpu),
                ] {
                    if a == b {
                        continue;
                    }
                    match KNOWN.iter().find(|(n, f, _)| *n == name && *f == field) {
                        Some((_, _, why)) => {
                            used_known.push((name.clone(), field));
                            notes.push(format!("{field} differs: {why}"));
                        }
                        None => {
                            failures.push(format!(
                                "{name}: {field} = {a}, hwloc says {b} (not in KNOWN)"
                            ));
                            notes.push(format!("FAIL {field}"));
                        }
                    }
                }
                if notes.is_empty() {
                    "agree".to_string()
                } else {
                    notes.join("; ")
                }
            }
        };
        rows.push(Row {
            name,
            loaded,
            hwloc,
            verdict,
        });
    }
    for (n, f, _) in KNOWN {
        if !used_known.iter().any(|(un, uf)| un == n && uf == f) {
            failures.push(format!(
                "KNOWN entry ({n}, {f}) is stale: no such disagreement"
            ));
        }
    }

    let fmt = |c: &Counts| format!("{}/{}/{}/{}", c.pkg, c.numa, c.core, c.cpu);
    eprintln!(
        "\n{:<38} {:<7} {:<16} {:<16} verdict",
        "snapshot", "loaded", "pkg/numa/core/cpu", "hwloc"
    );
    for r in &rows {
        eprintln!(
            "{:<38} {:<7} {:<16} {:<16} {}",
            r.name,
            if r.loaded.is_ok() { "yes" } else { "NO" },
            r.loaded.as_ref().map(fmt).unwrap_or_else(|_| "-".into()),
            r.hwloc.as_ref().map(fmt).unwrap_or_else(|| "-".into()),
            r.verdict
        );
    }
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
}

/// What must hold of any topology we build.
fn check_invariants(t: &Topology) -> Result<(), String> {
    let union = |sets: &mut dyn Iterator<Item = &CpuSet>| -> Result<CpuSet, String> {
        let mut all = CpuSet::new();
        for s in sets {
            if s.is_empty() || all.intersects(s) {
                return Err(format!("empty or overlapping group {s}"));
            }
            all = all.union(s);
        }
        Ok(all)
    };
    if union(&mut t.cores.iter().map(|c| &c.cpus))? != t.online {
        return Err("cores do not cover the online CPUs".into());
    }
    if union(&mut t.packages.iter().map(|p| &p.cpus))? != t.online {
        return Err("packages do not cover the online CPUs".into());
    }
    if union(&mut t.complexes.iter())? != t.online {
        return Err("complexes do not cover the online CPUs".into());
    }
    for c in &t.cores {
        let pkg = t.packages.get(c.package).ok_or("core names no package")?;
        if !c.cpus.is_subset(&pkg.cpus) {
            return Err(format!("core {} spans packages", c.cpus));
        }
    }
    for n in &t.nodes {
        if !n.cpus.is_subset(&t.online) {
            return Err(format!("node {} lists offline CPUs", n.id));
        }
    }
    if t.allowed.is_empty() || !t.allowed.is_subset(&t.online) {
        return Err(format!("allowed {} is empty or not online", t.allowed));
    }
    Ok(())
}

/// POWER9 with six V100s whose memory is onlined as CPU-less nodes 250-255.
fn check_nvidiagpunumanodes(t: &Topology, gpus: &[gpuaff_core::Gpu]) -> Result<(), String> {
    let ids: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
    let want = [
        "0004:05:00.0",
        "0004:06:00.0",
        "0006:00:00.0",
        "0007:00:00.0",
        "0035:04:00.0",
        "0035:05:00.0",
    ];
    if ids != want {
        return Err(format!("GPUs {ids:?}, expected {want:?}"));
    }
    let cpuless: Vec<u32> = t
        .nodes
        .iter()
        .filter(|n| n.cpus.is_empty())
        .map(|n| n.id)
        .collect();
    if cpuless.len() != 6 {
        return Err(format!("CPU-less nodes {cpuless:?}, expected six"));
    }
    for (i, g) in gpus.iter().enumerate() {
        if g.index != i {
            return Err(format!("GPU {} has index {}", g.pci_bus_id, g.index));
        }
        if g.local_cpus.is_empty() {
            return Err(format!("GPU {} has no local CPUs", g.pci_bus_id));
        }
        let nodes = t.nodes_of(&g.local_cpus);
        if nodes.iter().any(|n| cpuless.contains(n)) || nodes.len() != 1 {
            return Err(format!(
                "GPU {} local CPUs lie in nodes {nodes:?}",
                g.pci_bus_id
            ));
        }
        match g.mem_node {
            Some(m) if cpuless.contains(&m) => {}
            other => return Err(format!("GPU {} memory node {other:?}", g.pci_bus_id)),
        }
    }
    Ok(())
}
