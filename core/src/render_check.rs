//! Text and JSON forms of a `check::Report` (`gpuaff check`). Pure: returns strings.
//!
//! The JSON is a stable interface (README, "gpuaff check --json"): fields are only ever added.

use crate::check::{bytes_text, ProcCheck, Report};
use crate::cpuset::CpuSet;
use crate::plan::Plan;
use crate::render::{json_ids, json_opt, json_str, json_strs, machine_map};
use std::fmt::Write as _;

/// Version of the `--json` schema.
pub const SCHEMA_VERSION: u32 = 1;

fn list_or_dash(set: Option<&CpuSet>) -> String {
    match set {
        Some(s) if !s.is_empty() => s.to_list(),
        Some(_) => "none".into(),
        None => "-".into(),
    }
}

fn verdict(p: &ProcCheck) -> &'static str {
    if !p.checked {
        "not checked"
    } else if p.plan.is_none() && p.rank.is_none() {
        "no rank"
    } else if p.ok {
        "ok"
    } else {
        "OFF"
    }
}

fn local_memory(p: &ProcCheck) -> String {
    match &p.memory {
        Some(m) => match m.local_percent() {
            Some(pct) => format!("{pct:.0}% of {}", bytes_text(m.local + m.remote)),
            None => "-".into(),
        },
        None => "-".into(),
    }
}

/// A table of processes by rank, the machine maps (planned, then actual), problems and notes.
pub fn check_text(r: &Report) -> String {
    let mut o = String::new();
    let mut procs: Vec<&ProcCheck> = r.processes.iter().collect();
    procs.sort_by_key(|p| (p.rank.is_none(), p.rank, p.pid));
    let ranks: std::collections::BTreeSet<usize> = procs.iter().filter_map(|p| p.rank).collect();
    let _ = writeln!(
        o,
        "gpuaff check: {}, {}; kernel.numa_balancing {}; {} files read",
        count(procs.len(), "process", "processes"),
        count(ranks.len(), "rank", "ranks"),
        r.numa_balancing
            .map_or_else(|| "unknown".into(), |n| n.to_string()),
        r.files_read
    );
    let planned: Vec<String> = procs
        .iter()
        .map(|p| list_or_dash(p.plan.as_ref().map(|pl| &pl.cpus)))
        .collect();
    let actual: Vec<String> = procs
        .iter()
        .map(|p| {
            if p.checked {
                list_or_dash(Some(&p.actual))
            } else {
                "-".into()
            }
        })
        .collect();
    let w = |v: &[String]| v.iter().map(String::len).max().unwrap_or(0).clamp(7, 40);
    let (wp, wa) = (w(&planned), w(&actual));
    let wc = procs
        .iter()
        .map(|p| p.command().len())
        .max()
        .unwrap_or(0)
        .clamp(7, 20);
    let _ = writeln!(
        o,
        "rank  {:>7}  {:<wc$}  gpu  {:<wp$}  {:<wa$}  threads in/out  local memory     verdict",
        "pid", "command", "planned", "actual"
    );
    for (i, p) in procs.iter().enumerate() {
        let mut cmd = p.command();
        cmd.truncate(wc);
        let threads = if p.plan.is_some() {
            format!("{}/{}", p.threads_in(), p.threads_out())
        } else if p.checked {
            format!("{} threads", p.threads.len())
        } else {
            "-".into()
        };
        let _ = writeln!(
            o,
            "{:>4}  {:>7}  {cmd:<wc$}  {:>3}  {:<wp$}  {:<wa$}  {threads:<14}  {:<15}  {}",
            p.rank.map_or_else(|| "-".into(), |r| r.to_string()),
            p.pid,
            p.plan
                .as_ref()
                .map_or_else(|| "-".into(), |pl| pl.gpu.to_string()),
            planned[i],
            actual[i],
            local_memory(p),
            verdict(p)
        );
    }
    for m in &r.machines {
        let on: Vec<&&ProcCheck> = procs
            .iter()
            .filter(|p| {
                p.request.as_ref().is_some_and(|q| q.fsroot == m.fsroot) && p.plan.is_some()
            })
            .collect();
        let plan_of = |actual: bool| Plan {
            options: m.options.clone(),
            ranks: on
                .iter()
                .filter_map(|p| {
                    let mut pl = p.plan.clone()?;
                    if actual {
                        pl.cpus = p.actual.clone();
                    }
                    Some(Ok(pl))
                })
                .collect(),
            warnings: vec![],
        };
        let _ = writeln!(
            o,
            "\nmachine {} (mode {}): planned",
            m.fsroot.display(),
            m.options.mode.name()
        );
        o.push_str(&machine_map(
            &m.machine.topology,
            &plan_of(false),
            m.options.cores,
        ));
        let _ = writeln!(o, "actual (where each rank's threads may run now)");
        o.push_str(&body(&machine_map(
            &m.machine.topology,
            &plan_of(true),
            m.options.cores,
        )));
    }
    if !r.findings.is_empty() {
        o.push_str("\nproblems:\n");
        for f in &r.findings {
            let _ = writeln!(o, "  {}", f.message);
        }
    }
    if !r.notes.is_empty() {
        o.push_str("\nnotes:\n");
        for n in &r.notes {
            let _ = writeln!(o, "  {n}");
        }
    }
    let _ = writeln!(
        o,
        "\n{}",
        if r.ok() {
            "everything matches its plan".to_string()
        } else if r.processes.is_empty() {
            "no GPU job process found".to_string()
        } else if r.findings.is_empty() {
            "nothing with a plan to judge".to_string()
        } else {
            count(r.findings.len(), "problem", "problems")
        }
    );
    o
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The map without its legend line (said once, above the planned map).
fn body(map: &str) -> String {
    map.lines()
        .filter(|l| !l.starts_with("machine map"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn json_nodes(m: &std::collections::BTreeMap<u32, u64>) -> String {
    let v: Vec<String> = m.iter().map(|(n, b)| format!("\"{n}\": {b}")).collect();
    format!("{{{}}}", v.join(", "))
}

fn json_list(set: Option<&CpuSet>) -> String {
    set.map_or_else(|| "null".into(), |s| json_str(&s.to_list()))
}

fn process_json(p: &ProcCheck) -> String {
    let threads: Vec<String> = p
        .threads
        .iter()
        .map(|t| {
            format!(
                "{{\"tid\": {}, \"name\": {}, \"cpulist\": {}, \"last_cpu\": {}, \"in_plan\": {}}}",
                t.thread.tid,
                json_str(&t.thread.name),
                json_list(t.thread.cpus.as_ref()),
                json_opt(t.thread.last_cpu),
                json_opt(t.in_plan)
            )
        })
        .collect();
    let memory = p.memory.as_ref().map_or_else(
        || "null".into(),
        |m| {
            format!(
                "{{\"policy\": {}, \"local_nodes\": {}, \"local_bytes\": {}, \"remote_bytes\": {}, \"local_percent\": {}, \"bytes_by_node\": {}, \"anon_bytes_by_node\": {}, \"mappings\": {}, \"truncated\": {}}}",
                m.maps.policy.as_deref().map_or_else(|| "null".into(), json_str),
                json_ids(&m.local_nodes),
                m.local,
                m.remote,
                m.local_percent()
                    .map_or_else(|| "null".into(), |v| format!("{v:.1}")),
                json_nodes(&m.maps.bytes_by_node),
                json_nodes(&m.maps.anon_by_node),
                m.maps.mappings,
                m.maps.truncated
            )
        },
    );
    let req = p.request.as_ref();
    let plan = p.plan.as_ref();
    format!(
        "{{\"pid\": {}, \"ppid\": {}, \"uid\": {}, \"name\": {}, \"cmdline\": {}, \"found_by\": {}, \"checked\": {}, \"ok\": {}, \
\"rank\": {}, \"mode\": {}, \"fsroot\": {}, \"preloaded\": {}, \"allowed_from\": {}, \"allowed\": {}, \
\"gpu\": {}, \"pci_bus_id\": {}, \"gpu_cpulist\": {}, \"planned\": {}, \"planned_mems\": {}, \
\"cpulist\": {}, \"actual\": {}, \"threads_in\": {}, \"threads_out\": {}, \"threads\": [{}], \"memory\": {}, \"memory_note\": {}}}",
        p.pid,
        json_opt(p.ppid),
        json_opt(p.uid),
        json_str(&p.name),
        json_strs(&p.cmdline),
        json_str(p.found_by),
        p.checked,
        p.ok,
        json_opt(p.rank),
        req.map_or_else(|| "null".into(), |r| json_str(r.plan.mode.name())),
        req.map_or_else(|| "null".into(), |r| json_str(&r.fsroot.to_string_lossy())),
        p.preloaded,
        p.basis
            .as_ref()
            .map_or_else(|| "null".into(), |b| json_str(&b.describe())),
        json_list(p.allowed.as_ref()),
        json_opt(plan.map(|pl| pl.gpu)),
        plan.map_or_else(|| "null".into(), |pl| json_str(&pl.pci_bus_id)),
        json_list(p.gpu_cpus.as_ref()),
        json_list(plan.map(|pl| &pl.cpus)),
        plan.map_or_else(|| "null".into(), |pl| json_ids(&pl.mems)),
        json_list(p.cpus.as_ref()),
        if p.checked { json_list(Some(&p.actual)) } else { "null".into() },
        p.threads_in(),
        p.threads_out(),
        threads.join(", "),
        memory,
        p.memory_note
            .as_deref()
            .map_or_else(|| "null".into(), json_str)
    )
}

/// `gpuaff check --json`: one object (schema in README).
pub fn check_json(r: &Report) -> String {
    let procs: Vec<String> = r.processes.iter().map(process_json).collect();
    let findings: Vec<String> = r
        .findings
        .iter()
        .map(|f| {
            let pids: Vec<String> = f.pids.iter().map(|p| p.to_string()).collect();
            format!(
                "{{\"kind\": {}, \"pids\": [{}], \"message\": {}}}",
                json_str(f.kind.name()),
                pids.join(", "),
                json_str(&f.message)
            )
        })
        .collect();
    format!(
        "{{\"version\": {SCHEMA_VERSION}, \"ok\": {}, \"numa_balancing\": {}, \"files_read\": {}, \"skipped_unreadable\": {}, \"processes\": [{}], \"findings\": [{}], \"notes\": {}}}\n",
        r.ok(),
        json_opt(r.numa_balancing),
        r.files_read,
        r.skipped_unreadable,
        procs.join(", "),
        findings.join(", "),
        json_strs(&r.notes)
    )
}
