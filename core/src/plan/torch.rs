//! PyTorch `torch.numa.binding` family over plain lists: the node's cores or CPUs, the rank's
//! relative index `k` among the `g` GPUs on the node.

use crate::cpuset::CpuSet;

/// The node's cores split into `g` runs of `P / g`; the remainder goes one core each to the lowest
/// relative indices. With fewer cores than GPUs, GPUs share cores (torch fails).
pub(super) fn exclusive(
    cores: &[CpuSet],
    k: usize,
    g: usize,
    node: &str,
    notes: &mut Vec<String>,
) -> Vec<CpuSet> {
    let p = cores.len();
    let g = g.max(1);
    if p < g {
        let Some(core) = cores.get(k.min(g - 1) * p / g) else {
            return Vec::new();
        };
        notes.push(format!(
            "{node} has {g} GPUs but {}: GPUs share core {core}",
            super::count(p, "core")
        ));
        return vec![core.clone()];
    }
    let (base, rem) = (p / g, p % g);
    let start = k * base + k.min(rem);
    let len = base + usize::from(k < rem);
    cores.iter().skip(start).take(len).cloned().collect()
}

/// Relative index k gets complex `k % groups`, ordered by most allowed CPUs then lowest id. No
/// groups (no cache shared by several cores): the node is one complex (torch falls back to one
/// core per GPU).
pub(super) fn core_complex(
    groups: &[CpuSet],
    node_cpus: &CpuSet,
    k: usize,
    node: &str,
    notes: &mut Vec<String>,
) -> CpuSet {
    if groups.is_empty() {
        notes.push(format!(
            "no cache is shared by several cores of {node}: the node is one complex"
        ));
        return node_cpus.clone();
    }
    let mut order: Vec<&CpuSet> = groups.iter().collect();
    order.sort_by_key(|s| (std::cmp::Reverse(s.len()), s.first()));
    order
        .get(k % order.len())
        .map(|s| (*s).clone())
        .unwrap_or_default()
}
