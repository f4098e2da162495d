//! Text and JSON forms of a machine and a plan, for `gpuaff topo` / `gpuaff plan`. Pure: returns strings.
//! JSON is written by hand (a few flat objects) rather than pulling in a serializer.

use crate::cpuset::CpuSet;
use crate::machine::Machine;
use crate::plan::{Cores, Plan};
use crate::topology::Topology;
use std::fmt::Write as _;

/// Cores per line in the machine map; 64 keeps a 256-CPU node readable in an 80-column terminal.
const MAP_WIDTH: usize = 64;

/// The map character for a rank: 0-9, then A-Z, then a-z; `#` beyond.
pub fn rank_char(rank: usize) -> char {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    DIGITS.get(rank).map_or('#', |&b| b as char)
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn json_ids(set: &CpuSet) -> String {
    let ids: Vec<String> = set.iter().map(|i| i.to_string()).collect();
    format!("[{}]", ids.join(", "))
}

pub(crate) fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

pub(crate) fn json_strs(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", v.join(", "))
}

fn smt_width(t: &Topology) -> usize {
    t.cores.iter().map(|c| c.cpus.len()).max().unwrap_or(0)
}

fn node_label(id: Option<u32>) -> String {
    id.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// `gpuaff topo`: packages, NUMA nodes, cores, core complexes and GPUs with their locality.
pub fn topo_text(m: &Machine) -> String {
    let t = &m.topology;
    let mut o = String::new();
    let cpuless: Vec<String> = t
        .nodes
        .iter()
        .filter(|n| n.cpus.is_empty())
        .map(|n| n.id.to_string())
        .collect();
    let _ = writeln!(
        o,
        "machine: {} packages, {} NUMA nodes{}, {} cores, {} CPUs online (SMT {}), {} core complexes",
        t.packages.len(),
        t.nodes.len(),
        if cpuless.is_empty() { String::new() } else { format!(" ({} without CPUs)", cpuless.len()) },
        t.cores.len(),
        t.online.len(),
        smt_width(t),
        t.complexes.len()
    );
    let _ = writeln!(o, "allowed: {} ({} CPUs)", t.allowed, t.allowed.len());
    for (pi, p) in t.packages.iter().enumerate() {
        let id = p.os_id.map_or_else(String::new, |id| format!(" (id {id})"));
        let _ = writeln!(o, "package {pi}{id}: CPUs {}", p.cpus);
        for n in t.nodes.iter().filter(|n| n.cpus.intersects(&p.cpus)) {
            let cores = t.cores.iter().filter(|c| c.cpus.is_subset(&n.cpus)).count();
            let cx: Vec<String> = t
                .complexes
                .iter()
                .filter(|c| c.is_subset(&n.cpus))
                .map(|c| c.to_string())
                .collect();
            let _ = writeln!(o, "  node {}: CPUs {} ({} cores)", n.id, n.cpus, cores);
            if !n.distances.is_empty() {
                let d: Vec<String> = n.distances.iter().map(|d| d.to_string()).collect();
                let _ = writeln!(o, "    distances: {}", d.join(" "));
            }
            if !cx.is_empty() {
                let _ = writeln!(o, "    core complexes: {}", cx.join(" | "));
            }
        }
    }
    if !cpuless.is_empty() {
        let _ = writeln!(
            o,
            "memory-only nodes (no CPUs; never a CPU binding target): {}",
            cpuless.join(",")
        );
    }
    if m.gpus.is_empty() {
        let _ = writeln!(o, "GPUs: none");
    } else {
        let _ = writeln!(o, "GPUs (PCI bus order = NVML index):");
        for g in &m.gpus {
            let mut extra = String::new();
            if let Some(mn) = g.mem_node {
                let _ = write!(extra, "  memory node {mn}");
            }
            if !g.migs.is_empty() {
                let _ = write!(extra, "  {} MIG instances", g.migs.len());
            }
            let _ = writeln!(
                o,
                "  {:>2}  {}  node {:>2}  CPUs {:<24} {} {}{}",
                g.index,
                g.pci_bus_id,
                node_label(g.numa_node),
                if g.local_cpus.is_empty() {
                    "?".to_string()
                } else {
                    g.local_cpus.to_string()
                },
                g.uuid.as_deref().unwrap_or("-"),
                g.model.as_deref().unwrap_or(""),
                extra
            );
        }
    }
    let _ = writeln!(o, "files read: {}", m.files_read);
    o
}

/// `gpuaff topo --json`.
pub fn topo_json(m: &Machine) -> String {
    let t = &m.topology;
    let packages: Vec<String> = t
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let nodes: Vec<String> = t
                .nodes
                .iter()
                .filter(|n| n.cpus.intersects(&p.cpus))
                .map(|n| n.id.to_string())
                .collect();
            format!(
                "{{\"package\": {i}, \"os_id\": {}, \"cpulist\": {}, \"nodes\": [{}]}}",
                json_opt(p.os_id),
                json_str(&p.cpus.to_list()),
                nodes.join(", ")
            )
        })
        .collect();
    let nodes: Vec<String> = t
        .nodes
        .iter()
        .map(|n| {
            let d: Vec<String> = n.distances.iter().map(|d| d.to_string()).collect();
            format!(
                "{{\"node\": {}, \"cpulist\": {}, \"cpus\": {}, \"distances\": [{}]}}",
                n.id,
                json_str(&n.cpus.to_list()),
                json_ids(&n.cpus),
                d.join(", ")
            )
        })
        .collect();
    let cores: Vec<String> = t
        .cores
        .iter()
        .map(|c| json_str(&c.cpus.to_list()))
        .collect();
    let complexes: Vec<String> = t.complexes.iter().map(|c| json_str(&c.to_list())).collect();
    let gpus: Vec<String> = m
        .gpus
        .iter()
        .map(|g| {
            format!(
                "{{\"index\": {}, \"pci_bus_id\": {}, \"numa_node\": {}, \"cpulist\": {}, \"uuid\": {}, \"model\": {}, \"minor\": {}, \"memory_node\": {}, \"migs\": {}}}",
                g.index,
                json_str(&g.pci_bus_id),
                json_opt(g.numa_node),
                json_str(&g.local_cpus.to_list()),
                g.uuid.as_deref().map_or_else(|| "null".into(), json_str),
                g.model.as_deref().map_or_else(|| "null".into(), json_str),
                json_opt(g.minor),
                json_opt(g.mem_node),
                json_strs(&g.migs)
            )
        })
        .collect();
    format!(
        "{{\"online\": {}, \"allowed\": {}, \"packages\": [{}], \"nodes\": [{}], \"cores\": [{}], \"complexes\": [{}], \"gpus\": [{}], \"warnings\": {}, \"files_read\": {}}}\n",
        json_str(&t.online.to_list()),
        json_str(&t.allowed.to_list()),
        packages.join(", "),
        nodes.join(", "),
        cores.join(", "),
        complexes.join(", "),
        gpus.join(", "),
        json_strs(&m.warnings),
        m.files_read
    )
}

/// `gpuaff plan --json`: the README's object, plus the mode and notes.
pub fn plan_json(m: &Machine, plan: &Plan) -> String {
    let ranks: Vec<String> = plan
        .ranks
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(r) => format!(
                "{{\"rank\": {}, \"gpu\": {}, \"pci_bus_id\": {}, \"numa_node\": {}, \"cpus\": {}, \"cpulist\": {}, \"mems\": {}, \"notes\": {}}}",
                r.rank,
                r.gpu,
                json_str(&r.pci_bus_id),
                json_opt(r.numa_node),
                json_ids(&r.cpus),
                json_str(&r.cpus.to_list()),
                json_ids(&r.mems),
                json_strs(&r.notes)
            ),
            Err(e) => format!("{{\"rank\": {i}, \"error\": {}}}", json_str(&e.to_string())),
        })
        .collect();
    let mut warnings = m.warnings.clone();
    warnings.extend(plan.warnings.iter().cloned());
    format!(
        "{{\"mode\": {}, \"cores\": {}, \"balanced\": {}, \"ranks\": [{}], \"warnings\": {}}}\n",
        json_str(plan.options.mode.name()),
        json_str(plan.options.cores.name()),
        plan.options.balanced,
        ranks.join(", "),
        json_strs(&warnings)
    )
}

/// `gpuaff plan`: a table of ranks, then a map of the machine (packages → NUMA nodes → cores) with each
/// rank's cores marked, then notes.
pub fn plan_text(m: &Machine, plan: &Plan) -> String {
    let t = &m.topology;
    let mut o = String::new();
    let opts = &plan.options;
    let _ = writeln!(
        o,
        "mode {}, cores {}, {}; {} ranks; machine: {} packages, {} NUMA nodes, {} cores, {} CPUs, {} GPUs",
        opts.mode.name(),
        opts.cores.name(),
        if opts.balanced { "balanced" } else { "not balanced" },
        plan.ranks.len(),
        t.packages.len(),
        t.nodes.len(),
        t.cores.len(),
        t.online.len(),
        m.gpus.len()
    );
    let width = plan
        .ranks
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.cpus.to_list().len())
        .max()
        .unwrap_or(4);
    let width = width.clamp(4, 40);
    let _ = writeln!(
        o,
        "rank  gpu  pci_bus_id    node  {:<width$}  ncpus  mems",
        "cpus"
    );
    for (i, r) in plan.ranks.iter().enumerate() {
        match r {
            Ok(r) if r.cpus.is_empty() => {
                let _ = writeln!(
                    o,
                    "{:>4}  {:>3}  {}  {:>4}  (mode none: left as it is)",
                    r.rank,
                    r.gpu,
                    r.pci_bus_id,
                    node_label(r.numa_node)
                );
            }
            Ok(r) => {
                let _ = writeln!(
                    o,
                    "{:>4}  {:>3}  {}  {:>4}  {:<width$}  {:>5}  {}",
                    r.rank,
                    r.gpu,
                    r.pci_bus_id,
                    node_label(r.numa_node),
                    r.cpus.to_list(),
                    r.cpus.len(),
                    r.mems
                );
            }
            Err(e) => {
                let _ = writeln!(o, "{i:>4}  error: {e}");
            }
        }
    }
    o.push('\n');
    o.push_str(&machine_map(t, plan, opts.cores));
    let notes: Vec<String> = m
        .warnings
        .iter()
        .chain(plan.warnings.iter())
        .cloned()
        .chain(
            plan.ranks
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flat_map(|r| r.notes.iter().map(move |n| format!("rank {}: {n}", r.rank))),
        )
        .collect();
    if !notes.is_empty() {
        o.push_str("\nnotes:\n");
        for n in notes {
            let _ = writeln!(o, "  {n}");
        }
    }
    o
}

/// One character per core: the rank bound there, `*` for several ranks, `.` free, `-` not allowed.
pub fn machine_map(t: &Topology, plan: &Plan, _cores: Cores) -> String {
    let mut o = String::new();
    let bound: Vec<(usize, &CpuSet)> = plan
        .ranks
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| (r.rank, &r.cpus))
        .collect();
    let gpus_of_node = |node: u32| -> Vec<String> {
        let mut v: Vec<String> = plan
            .ranks
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|r| r.numa_node == Some(node))
            .map(|r| r.gpu.to_string())
            .collect();
        v.dedup();
        v
    };
    let _ = writeln!(
        o,
        "machine map (one character per core: the rank bound there, * several ranks, . free, - not allowed)"
    );
    let core_char = |cpus: &CpuSet| -> char {
        let owners: Vec<usize> = bound
            .iter()
            .filter(|(_, s)| s.intersects(cpus))
            .map(|(r, _)| *r)
            .collect();
        match owners.as_slice() {
            [] if !cpus.intersects(&t.allowed) => '-',
            [] => '.',
            [r] => rank_char(*r),
            _ => '*',
        }
    };
    for (pi, p) in t.packages.iter().enumerate() {
        let _ = writeln!(o, "package {pi}");
        let nodes: Vec<(String, CpuSet)> = if t.nodes.iter().any(|n| n.cpus.intersects(&p.cpus)) {
            t.nodes
                .iter()
                .filter(|n| n.cpus.intersects(&p.cpus))
                .map(|n| (n.id.to_string(), n.cpus.intersection(&p.cpus)))
                .collect()
        } else {
            vec![("-".to_string(), p.cpus.clone())]
        };
        for (label, ncpus) in nodes {
            let cores: Vec<&CpuSet> = t
                .cores
                .iter()
                .map(|c| &c.cpus)
                .filter(|c| c.is_subset(&ncpus))
                .collect();
            let first = cores.first().and_then(|c| c.first()).unwrap_or(0);
            let last = cores.last().and_then(|c| c.first()).unwrap_or(0);
            let gpus = label.parse().map(&gpus_of_node).unwrap_or_default();
            let gpu_txt = if gpus.is_empty() {
                String::new()
            } else {
                format!("  GPU {}", gpus.join(","))
            };
            let chars: String = cores.iter().map(|c| core_char(c)).collect();
            let chars: Vec<char> = chars.chars().collect();
            for (li, chunk) in chars.chunks(MAP_WIDTH).enumerate() {
                let line: String = chunk.iter().collect();
                if li == 0 {
                    let _ = writeln!(
                        o,
                        "  node {label:>3}  cores {first:>4}-{last:<4}  {line}{gpu_txt}"
                    );
                } else {
                    let _ = writeln!(o, "  {:>28}{line}", "");
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::Gpu;
    use crate::plan::{Mode, PlanOptions, RankPlan};
    use crate::topology::{Core, Node, Package};

    fn small() -> Machine {
        let l = |s: &str| CpuSet::parse_list(s).unwrap();
        let cores: Vec<Core> = (0..4)
            .map(|c| Core {
                cpus: l(&format!("{c},{}", c + 4)),
                package: 0,
            })
            .collect();
        let topology = Topology {
            scope: None,
            counted: Vec::new(),
            online: l("0-7"),
            cores,
            packages: vec![Package {
                os_id: Some(0),
                cpus: l("0-7"),
            }],
            nodes: vec![
                Node {
                    id: 0,
                    cpus: l("0-1,4-5"),
                    distances: vec![10, 20, 80],
                },
                Node {
                    id: 1,
                    cpus: l("2-3,6-7"),
                    distances: vec![20, 10, 80],
                },
                Node {
                    id: 2,
                    cpus: CpuSet::new(),
                    distances: vec![80, 80, 10],
                },
            ],
            complexes: vec![l("0-7")],
            allowed: l("0-2,4-6"),
        };
        let gpus = vec![Gpu {
            index: 0,
            pci_bus_id: "0000:07:00.0".into(),
            numa_node: Some(1),
            local_cpus: l("2-3,6-7"),
            uuid: Some("GPU-1234\"x".into()),
            ..Default::default()
        }];
        Machine {
            topology,
            gpus,
            warnings: vec![],
            files_read: 42,
        }
    }

    fn plan_of(ranks: Vec<Result<RankPlan, crate::Error>>) -> Plan {
        let options = PlanOptions {
            mode: Mode::Node,
            ..Default::default()
        };
        Plan {
            options,
            ranks,
            warnings: vec!["w".into()],
        }
    }

    fn rank(r: usize, cpus: &str) -> RankPlan {
        RankPlan {
            rank: r,
            gpu: r,
            gpu_index: r,
            pci_bus_id: "0000:07:00.0".into(),
            numa_node: Some(1),
            cpus: CpuSet::parse_list(cpus).unwrap(),
            mems: CpuSet::single(1),
            notes: vec!["a note".into()],
            fallback: false,
        }
    }

    #[test]
    fn map_marks_each_rank_shared_free_and_disallowed_cores() {
        let m = small();
        let p = plan_of(vec![Ok(rank(0, "2,6")), Ok(rank(1, "2")), Ok(rank(2, "0"))]);
        let text = plan_text(&m, &p);
        // node 0: core 0 -> rank 2, core 1 -> free; node 1: core 2 -> ranks 0 and 1, core 3 -> not allowed.
        assert!(text.contains("node   0  cores    0-1     2."), "{text}");
        assert!(
            text.contains("node   1  cores    2-3     *-  GPU 0,1"),
            "{text}"
        );
        assert!(text.contains("rank 1: a note"), "{text}");
        assert!(
            !text.contains("node   2  cores"),
            "CPU-less node has no cores line: {text}"
        );
    }

    #[test]
    fn plan_json_has_the_contract_fields_and_errors() {
        let m = small();
        let p = plan_of(vec![
            Ok(rank(0, "2-3")),
            Err(crate::Error::no_device("no GPU 1")),
        ]);
        let j = plan_json(&m, &p);
        assert!(j.starts_with("{\"mode\": \"node\""), "{j}");
        assert!(j.contains("{\"rank\": 0, \"gpu\": 0, \"pci_bus_id\": \"0000:07:00.0\", \"numa_node\": 1, \"cpus\": [2, 3], \"cpulist\": \"2-3\", \"mems\": [1]"), "{j}");
        assert!(j.contains("{\"rank\": 1, \"error\": \"no GPU 1\"}"), "{j}");
    }

    #[test]
    fn topo_renders_cpuless_nodes_and_escapes_json() {
        let m = small();
        let t = topo_text(&m);
        assert!(t.contains("3 NUMA nodes (1 without CPUs)"), "{t}");
        assert!(
            t.contains("memory-only nodes (no CPUs; never a CPU binding target): 2"),
            "{t}"
        );
        let j = topo_json(&m);
        assert!(j.contains("\"uuid\": \"GPU-1234\\\"x\""), "{j}");
        assert!(j.contains("\"files_read\": 42"), "{j}");
    }

    #[test]
    fn rank_chars() {
        assert_eq!(rank_char(0), '0');
        assert_eq!(rank_char(10), 'A');
        assert_eq!(rank_char(61), 'z');
        assert_eq!(rank_char(62), '#');
    }
}
