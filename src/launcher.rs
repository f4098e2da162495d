//! A launcher's own CPU binding, recognized by the marks it leaves in the environment.
//!
//! Slurm (`task/affinity`), Open MPI's `mpirun` and MPICH's hydra bind each task before it starts,
//! without knowing where its GPU is. gpuaff replaces such a binding with the GPU-aware plan inside the
//! hard limits (the cgroup cpuset, a container) unless `GPU_AFFINITY_LAUNCHER_BINDING=keep`. A mask
//! that carries no launcher's mark (taskset, numactl, a pinned parent) is respected as before.
//!
//! The marks, as each launcher's source sets them:
//! - Slurm: slurmd exports `SLURM_CPU_BIND_TYPE` (`mask_cpu:`, `map_cpu:`, `none`, ...) and
//!   `SLURM_CPU_BIND_LIST` (one entry per local task, reused cyclically when there are more tasks
//!   than entries) whenever task/affinity binds (`setup_env` in slurm's `src/common/env.c`; the
//!   automatic `cores`/`sockets`/`threads` bindings are exported as `mask_cpu:` lists by
//!   `_lllp_generate_cpu_bind` in `src/plugins/task/affinity/dist_tasks.c`). Slurm's binding
//!   is recognized only when the process's mask is exactly its task's entry: a task someone narrowed
//!   further (`srun taskset ...`) keeps its mask.
//! - Open MPI: mpirun's schizo component sets `OMPI_MCA_orte_bound_at_launch=1` for every process of a
//!   job whose binding policy is not `none` (`setup_fork` in `orte/mca/schizo/ompi/schizo_ompi.c`,
//!   v4.x, the version Debian and most clusters ship). It carries no mask. Open MPI 5 launches
//!   through PRRTE, whose marks are not recognized here (its binding is kept, as today).
//! - MPICH: hydra's proxy sets `HYDRA_USER_PROVIDED_BINDING=1` in its own environment, so in every
//!   process it starts, when any `-bind-to` other than `none` is in force (`HYDT_topo_init` in
//!   `src/pm/hydra/tools/topo/topo.c`). It carries no mask either.
//!
//! The replacement stays within the hard limits, and within what the launcher gave the whole step on
//! this node where it says so: Slurm without a cgroup enforces a job's allocation with this very
//! binding (`--cpu-bind=none` on part of a node still binds to the allocated CPUs), so the union of
//! its tasks' masks bounds the plan.
//!
//! The marks are inherited by every descendant of a task, so they only count in a process no gpuaff
//! parent bound before (no `GPU_AFFINITY_INHERITED`): a parent already replaced the launcher's binding,
//! and a mask its child then carries was chosen by someone else.

use gpuaff_core::{config::Env, CpuSet, Error, Result};

/// The opt-out: `replace` (default) or `keep`.
pub const LAUNCHER_BINDING_VAR: &str = "GPU_AFFINITY_LAUNCHER_BINDING";

/// A launcher binding found on this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The launcher's name, for messages.
    pub launcher: &'static str,
    /// The variable and value that identified it, for messages.
    pub mark: String,
    /// The CPUs the launcher gave the whole step on this node, where it says (Slurm: every task's
    /// mask together). Without a cgroup (Slurm's task/affinity alone) that is the job's allocation:
    /// the replacement stays inside it.
    pub within: Option<CpuSet>,
}

/// What to do with a launcher's binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Replace,
    Keep,
}

/// `GPU_AFFINITY_LAUNCHER_BINDING`.
pub fn policy(env: Env) -> Result<Policy> {
    match env(LAUNCHER_BINDING_VAR) {
        None => Ok(Policy::Replace),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "replace" => Ok(Policy::Replace),
            "keep" => Ok(Policy::Keep),
            _ => Err(Error::bad_value(LAUNCHER_BINDING_VAR, &v, "replace, keep")),
        },
    }
}

/// The launcher binding `current` (the process's mask at start) carries, if any.
pub fn detect(env: Env, current: &CpuSet) -> Option<Found> {
    slurm(env, current)
        .or_else(|| {
            flag(
                env,
                "OMPI_COMM_WORLD_LOCAL_RANK",
                "OMPI_MCA_orte_bound_at_launch",
                "Open MPI",
            )
        })
        .or_else(|| {
            flag(
                env,
                "MPI_LOCALRANKID",
                "HYDRA_USER_PROVIDED_BINDING",
                "MPICH (hydra)",
            )
        })
}

/// Slurm: the task's entry of `SLURM_CPU_BIND_LIST` is exactly the process's mask.
fn slurm(env: Env, current: &CpuSet) -> Option<Found> {
    let kind = env("SLURM_CPU_BIND_TYPE")?;
    let list = env("SLURM_CPU_BIND_LIST")?;
    let local: usize = env("SLURM_LOCALID")?.trim().parse().ok()?;
    let masks = slurm_masks(&kind, &list)?;
    let mine = masks.get(local % masks.len())?;
    let within = masks.iter().fold(CpuSet::new(), |acc, m| acc.union(m));
    (mine == current).then(|| Found {
        launcher: "Slurm",
        within: Some(within),
        mark: format!(
            "SLURM_CPU_BIND={}",
            env("SLURM_CPU_BIND").unwrap_or_else(|| format!("{kind}{list}"))
        ),
    })
}

/// The per-task masks of a `SLURM_CPU_BIND_TYPE`/`SLURM_CPU_BIND_LIST` pair: hex masks for
/// `mask_cpu:`, CPU ids for `map_cpu:`; None for `none` and the kinds that name no CPUs (ldoms, rank).
pub fn slurm_masks(kind: &str, list: &str) -> Option<Vec<CpuSet>> {
    let kinds: Vec<&str> = kind.split(',').map(str::trim).collect();
    let entries = list.split(',').map(str::trim).filter(|e| !e.is_empty());
    let masks: Option<Vec<CpuSet>> = if kinds.contains(&"mask_cpu:") {
        entries.map(|e| CpuSet::parse_mask(e).ok()).collect()
    } else if kinds.contains(&"map_cpu:") {
        entries
            .map(|e| {
                let id = match e.strip_prefix("0x").or_else(|| e.strip_prefix("0X")) {
                    Some(hex) => usize::from_str_radix(hex, 16).ok()?,
                    None => e.parse().ok()?,
                };
                (id <= gpuaff_core::cpuset::MAX_ID).then(|| CpuSet::single(id))
            })
            .collect()
    } else {
        None
    };
    masks.filter(|m| !m.is_empty() && m.iter().all(|s| !s.is_empty()))
}

/// An MPI launcher's flag: set to anything but `0`, with the launcher's local rank present.
fn flag(env: Env, rank_var: &str, var: &str, launcher: &'static str) -> Option<Found> {
    env(rank_var)?;
    let v = env(var)?;
    let v = v.trim();
    (!v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")).then(|| Found {
        launcher,
        within: None,
        mark: format!("{var}={v}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn found(pairs: &[(&str, &str)], current: &str) -> Option<Found> {
        let map = env(pairs);
        let get = |k: &str| map.get(k).cloned();
        detect(&get, &CpuSet::parse_list(current).unwrap())
    }

    #[test]
    fn slurm_is_recognized_by_the_tasks_own_entry() {
        let slurm = |local: &'static str| {
            vec![
                ("SLURM_LOCALID", local),
                ("SLURM_CPU_BIND", "quiet,mask_cpu:0x1,0x2"),
                ("SLURM_CPU_BIND_TYPE", "mask_cpu:"),
                ("SLURM_CPU_BIND_LIST", "0x1,0x2"),
            ]
        };
        let f = found(&slurm("0"), "0").unwrap();
        assert_eq!(f.launcher, "Slurm");
        assert_eq!(f.mark, "SLURM_CPU_BIND=quiet,mask_cpu:0x1,0x2");
        assert_eq!(f.within, Some(CpuSet::range(0, 1)));
        assert!(found(&slurm("1"), "1").is_some());
        // Entries are reused cyclically.
        assert!(found(&slurm("3"), "1").is_some());
        // Narrowed by someone else (srun taskset -c 1 for task 0), or not bound at all.
        assert!(found(&slurm("0"), "1").is_none());
        assert!(found(&slurm("0"), "0-1").is_none());
        // No local id: not a task Slurm started.
        assert!(found(&slurm("0")[1..], "0").is_none());
    }

    #[test]
    fn slurm_kinds() {
        let m = |k, l| slurm_masks(k, l).map(|v| v.iter().map(CpuSet::to_list).collect::<Vec<_>>());
        assert_eq!(
            m("mask_cpu:", "0x3,0xC"),
            Some(vec!["0-1".into(), "2-3".into()])
        );
        assert_eq!(m("cores,mask_cpu:", "0x1"), Some(vec!["0".into()]));
        assert_eq!(m("map_cpu:", "4,5"), Some(vec!["4".into(), "5".into()]));
        assert_eq!(m("none", ""), None);
        assert_eq!(m("mask_ldom:", "0x1"), None);
        assert_eq!(m("mask_cpu:", ""), None);
        assert_eq!(m("mask_cpu:", "0x0"), None);
        assert_eq!(m("mask_cpu:", "zz"), None);
        assert_eq!(m("map_cpu:", "99999999"), None);
    }

    #[test]
    fn mpi_flags_need_the_launchers_rank() {
        let ompi = [
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("OMPI_MCA_orte_bound_at_launch", "1"),
        ];
        assert_eq!(found(&ompi, "1").unwrap().launcher, "Open MPI");
        assert_eq!(found(&ompi, "1").unwrap().within, None);
        assert!(found(&ompi[1..], "1").is_none());
        let none = [
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("OMPI_MCA_orte_bound_at_launch", "0"),
        ];
        assert!(found(&none, "1").is_none());
        let hydra = [
            ("MPI_LOCALRANKID", "0"),
            ("HYDRA_USER_PROVIDED_BINDING", "1"),
        ];
        assert_eq!(found(&hydra, "0").unwrap().launcher, "MPICH (hydra)");
        assert!(found(&[("MPI_LOCALRANKID", "0")], "0").is_none());
    }

    #[test]
    fn policy_values() {
        let p = |v: Option<&str>| {
            let get = |_: &str| v.map(str::to_string);
            policy(&get)
        };
        assert_eq!(p(None).unwrap(), Policy::Replace);
        assert_eq!(p(Some("replace")).unwrap(), Policy::Replace);
        assert_eq!(p(Some(" KEEP ")).unwrap(), Policy::Keep);
        let e = p(Some("maybe")).unwrap_err().to_string();
        assert!(
            e.contains("GPU_AFFINITY_LAUNCHER_BINDING") && e.contains("keep"),
            "{e}"
        );
    }
}
