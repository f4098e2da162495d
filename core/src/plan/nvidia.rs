//! NVIDIA `gpu_affinity.py` family over plain core lists: `lists[i]` is participant i's cores (its
//! local CPUs ∩ allowed, grouped by SMT siblings, ordered by sibling tuple); participants are in
//! GPU order. Returns the cores of participant `me`.

use super::Mode;
use crate::cpuset::CpuSet;

pub(super) fn choose(
    mode: Mode,
    balanced: bool,
    lists: &[Vec<CpuSet>],
    me: usize,
    notes: &mut Vec<String>,
) -> Vec<CpuSet> {
    let Some(mine) = lists.get(me) else {
        return Vec::new();
    };
    match mode {
        Mode::SocketSingle => mine.iter().take(1).cloned().collect(),
        Mode::SocketSingleUnique => single_unique(lists, me, notes),
        Mode::SocketUniqueContiguous | Mode::SocketUniqueInterleaved => unique(
            lists,
            me,
            balanced,
            mode == Mode::SocketUniqueInterleaved,
            notes,
        ),
        _ => mine.clone(),
    }
}

/// GPUs in order each take the first core of their set not yet taken; one that finds none shares
/// its set's first core (the reference shifts later ranks onto other GPUs' cores, or crashes).
fn single_unique(lists: &[Vec<CpuSet>], me: usize, notes: &mut Vec<String>) -> Vec<CpuSet> {
    let mut taken = CpuSet::new();
    for (i, list) in lists.iter().enumerate().take(me + 1) {
        let free = list.iter().find(|c| !c.intersects(&taken));
        let core = match free {
            Some(c) => c,
            None => {
                let Some(first) = list.first() else {
                    return Vec::new();
                };
                if i == me {
                    notes.push(format!(
                        "no free core left among CPUs {}: sharing core {first}",
                        list.iter().collect::<CpuSet>()
                    ));
                }
                first
            }
        };
        if i == me {
            return vec![core.clone()];
        }
        taken = taken.union(core);
    }
    Vec::new()
}

/// Buckets of GPUs with identical core lists split their list: contiguous runs of `per` cores or
/// every G-th core. With `balanced`, `per` is the smallest quotient over the buckets that can give
/// each GPU a core; a bucket with fewer cores than GPUs shares its cores (the reference gives
/// every rank an empty set).
fn unique(
    lists: &[Vec<CpuSet>],
    me: usize,
    balanced: bool,
    interleaved: bool,
    notes: &mut Vec<String>,
) -> Vec<CpuSet> {
    // Buckets in order of first appearance, members in GPU order.
    let mut buckets: Vec<(&Vec<CpuSet>, Vec<usize>)> = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        match buckets.iter_mut().find(|b| b.0 == list) {
            Some(b) => b.1.push(i),
            None => buckets.push((list, vec![i])),
        }
    }
    let starved = buckets.iter().any(|b| b.0.len() < b.1.len());
    let min_per = buckets
        .iter()
        .filter(|b| b.0.len() >= b.1.len())
        .map(|b| b.0.len() / b.1.len())
        .min();
    let Some((cores, members)) = buckets.iter().find(|b| b.1.contains(&me)) else {
        return Vec::new();
    };
    let g = members.len();
    let k = members.iter().position(|&m| m == me).unwrap_or(0);
    let c = cores.len();
    if c < g {
        let Some(core) = cores.get(k * c / g) else {
            return Vec::new();
        };
        notes.push(format!(
            "the CPUs {} have {g} GPUs but {}: GPUs share core {core}",
            cores.iter().collect::<CpuSet>(),
            super::count(c, "core")
        ));
        return vec![core.clone()];
    }
    let per = if balanced {
        if starved {
            notes.push(
                "balanced split: the minimum is taken over the GPUs that can each have a core (some GPUs share cores)"
                    .to_string(),
            );
        }
        min_per.unwrap_or(c / g)
    } else {
        c / g
    };
    let usable = if balanced {
        &cores[..(g * per).min(c)]
    } else {
        &cores[..]
    };
    if interleaved {
        usable.iter().skip(k).step_by(g).cloned().collect()
    } else {
        usable.iter().skip(k * per).take(per).cloned().collect()
    }
}
