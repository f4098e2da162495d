//! NVIDIA `gpu_affinity.py` family over plain core lists: `Participants::lists[i]` is participant
//! i's cores (its local CPUs ∩ allowed, grouped by SMT siblings, ordered by sibling tuple);
//! participants are in GPU order. `choose` returns the cores of participant `me`; what all ranks
//! share (buckets, the single-unique picks) is computed once per `Participants`.

use super::Mode;
use crate::cpuset::CpuSet;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The participants' core lists with what every rank's choice shares, computed once per plan:
/// the buckets of identical lists and, for `socket_single_unique`, every participant's pick.
pub(super) struct Participants {
    lists: Vec<CoreList>,
    /// Buckets of identical lists in order of first appearance, members in GPU order.
    buckets: Vec<Vec<usize>>,
    /// Participant → its bucket.
    bucket_of: Vec<usize>,
    /// Some bucket has fewer cores than GPUs.
    starved: bool,
    /// The smallest cores-per-GPU quotient over the buckets that can give each GPU a core.
    min_per: Option<usize>,
    /// `socket_single_unique`: participant → (index of its core in its list, shared); None from
    /// the first participant with no core on.
    single: OnceCell<Vec<Option<(usize, bool)>>>,
}

/// A participant's cores: listed, or only counted (a home of nodes a partial topology counted,
/// `Topology::counted`; never the process's own).
#[derive(Clone)]
pub(super) enum CoreList {
    Listed(Rc<Vec<CpuSet>>),
    Counted(usize),
}

impl CoreList {
    pub(super) fn len(&self) -> usize {
        match self {
            CoreList::Listed(l) => l.len(),
            CoreList::Counted(n) => *n,
        }
    }

    fn listed(&self) -> Option<&[CpuSet]> {
        match self {
            CoreList::Listed(l) => Some(l),
            CoreList::Counted(_) => None,
        }
    }
}

impl Participants {
    /// `homes[i]` is the set of CPUs that `lists[i]` groups into cores: lists are equal exactly
    /// when their sets are, and sets are cheaper to compare.
    pub(super) fn new(lists: Vec<CoreList>, homes: &[&CpuSet]) -> Self {
        let mut buckets: Vec<Vec<usize>> = Vec::new();
        let mut bucket_of = Vec::with_capacity(lists.len());
        {
            let mut by_home: HashMap<&CpuSet, usize> = HashMap::new();
            for (i, &home) in homes.iter().enumerate() {
                let b = *by_home.entry(home).or_insert_with(|| {
                    buckets.push(Vec::new());
                    buckets.len() - 1
                });
                if let Some(members) = buckets.get_mut(b) {
                    members.push(i);
                }
                bucket_of.push(b);
            }
        }
        let size = |members: &Vec<usize>| {
            members
                .first()
                .and_then(|&m| lists.get(m))
                .map_or(0, CoreList::len)
        };
        let starved = buckets.iter().any(|m| size(m) < m.len());
        let min_per = buckets
            .iter()
            .filter(|m| size(m) >= m.len())
            .map(|m| size(m) / m.len())
            .min();
        Participants {
            lists,
            buckets,
            bucket_of,
            starved,
            min_per,
            single: OnceCell::new(),
        }
    }
}

pub(super) fn choose(
    mode: Mode,
    balanced: bool,
    parts: &Participants,
    me: usize,
    notes: &mut Vec<String>,
) -> Vec<CpuSet> {
    // Only counted: not this process's own GPU (see `Ctx::nvidia`); no CPU, and the caller plans
    // again on the whole machine.
    let Some(mine) = parts.lists.get(me).and_then(CoreList::listed) else {
        return Vec::new();
    };
    match mode {
        Mode::SocketSingle => mine.iter().take(1).cloned().collect(),
        Mode::SocketSingleUnique => single_unique(parts, me, notes),
        Mode::SocketUniqueContiguous | Mode::SocketUniqueInterleaved => unique(
            parts,
            me,
            balanced,
            mode == Mode::SocketUniqueInterleaved,
            notes,
        ),
        _ => mine.to_vec(),
    }
}

/// GPUs in order each take the first core of their set not yet taken; one that finds none shares
/// its set's first core (the reference shifts later ranks onto other GPUs' cores, or crashes).
fn single_unique(parts: &Participants, me: usize, notes: &mut Vec<String>) -> Vec<CpuSet> {
    let picks = parts.single.get_or_init(|| {
        let mut taken = CpuSet::new();
        let mut picks = Vec::with_capacity(parts.lists.len());
        // A list only counted stops the picks: the GPUs from it on get none (never so: this mode
        // lists every home).
        for list in parts.lists.iter().map_while(CoreList::listed) {
            let pick = match list.iter().position(|c| !c.intersects(&taken)) {
                Some(i) => (i, false),
                None if list.is_empty() => break,
                None => (0, true),
            };
            if let Some(core) = list.get(pick.0) {
                taken.union_with(core);
            }
            picks.push(Some(pick));
        }
        picks.resize(parts.lists.len(), None);
        picks
    });
    let (Some(Some((i, shared))), Some(list)) = (
        picks.get(me),
        parts.lists.get(me).and_then(CoreList::listed),
    ) else {
        return Vec::new();
    };
    let Some(core) = list.get(*i) else {
        return Vec::new();
    };
    if *shared {
        notes.push(format!(
            "no free core left among CPUs {}: sharing core {core}",
            list.iter().collect::<CpuSet>()
        ));
    }
    vec![core.clone()]
}

/// Buckets of GPUs with identical core lists split their list: contiguous runs of `per` cores or
/// every G-th core. With `balanced`, `per` is the smallest quotient over the buckets that can give
/// each GPU a core; a bucket with fewer cores than GPUs shares its cores (the reference gives
/// every rank an empty set).
fn unique(
    parts: &Participants,
    me: usize,
    balanced: bool,
    interleaved: bool,
    notes: &mut Vec<String>,
) -> Vec<CpuSet> {
    let Some(members) = parts.bucket_of.get(me).and_then(|&b| parts.buckets.get(b)) else {
        return Vec::new();
    };
    let Some(cores) = members
        .first()
        .and_then(|&m| parts.lists.get(m))
        .and_then(CoreList::listed)
    else {
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
        if parts.starved {
            notes.push(
                "balanced split: the minimum is taken over the GPUs that can each have a core (some GPUs share cores)"
                    .to_string(),
            );
        }
        parts.min_per.unwrap_or(c / g)
    } else {
        c / g
    };
    let usable = if balanced {
        &cores[..(g * per).min(c)]
    } else {
        cores
    };
    if interleaved {
        usable.iter().skip(k).step_by(g).cloned().collect()
    } else {
        usable.iter().skip(k * per).take(per).cloned().collect()
    }
}
