//! Inferring thread siblings from a few CPUs per node (`Want::infer_cores`) builds the very
//! topology that reading every core's file builds: on hwloc's real snapshots made to claim SMT is
//! on everywhere (so that the inference is attempted on real sibling data, and must either agree or
//! fall back), and on every catalog machine. Run with `--nocapture` for the table.

use gpuaff_core::topology::{Topology, Want};
use gpuaff_core::{AllowedFrom, Fs};

#[path = "support/catalog.rs"]
mod catalog;
#[path = "support/snapshots.rs"]
mod snapshots;
use std::path::Path;

/// The topology with inference on or off, and the files read.
fn load(root: &Path, infer: bool) -> (Result<Topology, String>, usize) {
    let fs = Fs::new(root);
    let topo = Topology::load_with(
        &fs,
        &AllowedFrom::Snapshot,
        true,
        &mut Vec::new(),
        |_, _| {
            Ok(Want {
                infer_cores: infer,
                ..Want::everything()
            })
        },
    )
    .map_err(|e| e.to_string());
    (topo, fs.files_read())
}

/// Files read with inference off and on; an error when the topologies differ.
fn compare(name: &str, root: &Path) -> Result<(usize, usize), String> {
    let (off, n_off) = load(root, false);
    let (on, n_on) = load(root, true);
    match (off, on) {
        (Ok(a), Ok(b)) if a == b => Ok((n_off, n_on)),
        (Ok(a), Ok(b)) => Err(format!(
            "{name}: inferred cores differ:\nread:     {:?}\ninferred: {:?}",
            a.cores, b.cores
        )),
        (Err(a), Err(b)) if a == b => Ok((n_off, n_on)),
        (a, b) => Err(format!("{name}: {:?} vs {:?}", a.err(), b.err())),
    }
}

/// The CPUs the kernel would list as present: one per `cpuN` directory.
fn cpu_dirs(root: &Path) -> String {
    let dir = root.join("sys/devices/system/cpu");
    let mut ids: Vec<usize> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let d = n.strip_prefix("cpu")?;
                    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| d.parse().ok())
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// With inference on, the precondition costs `smt/control`, `present` and the hybrid PMU's
/// `cpus`.
const PRECONDITION_FILES: usize = 3;

#[test]
fn hwloc_snapshots_claiming_smt_on() {
    let Some(tarballs) = snapshots::tarballs() else {
        return;
    };
    let mut failures = Vec::new();
    // (snapshot, outcome with `present` as the snapshot has it, outcome with `present` = online)
    let mut outcomes: Vec<(String, Outcome, Outcome)> = Vec::new();
    eprintln!(
        "\n{:<36} {:>5} {:>5} {:<8} {:<14} {:>5} {:<14}",
        "snapshot", "read", "infer", "present", "outcome", "infer", "present=online"
    );
    for tarball in &tarballs {
        let name = snapshots::name(tarball);
        let snap = match snapshots::extract(tarball, "infer") {
            Ok(x) => x,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let root = snap.root.clone();
        // The kernel's word, whatever the snapshot says (or lacks): SMT on; where the snapshot
        // has no `present`, one CPU per cpuN directory (as the kernel lists them), and then its
        // `online` written out too (else the loader would take `present` for it).
        let cpu = root.join("sys/devices/system/cpu");
        let online = gpuaff_core::topology::read_online(&Fs::new(&root));
        let _ = std::fs::create_dir_all(cpu.join("smt"));
        let mut wrote = std::fs::write(cpu.join("smt/active"), "1\n")
            .and_then(|_| std::fs::write(cpu.join("smt/control"), "on\n"));
        let present = if cpu.join("present").exists() {
            "kept"
        } else {
            wrote = wrote.and_then(|_| std::fs::write(cpu.join("present"), cpu_dirs(&root)));
            if let (false, Ok(o)) = (cpu.join("online").exists(), &online) {
                wrote = wrote.and_then(|_| std::fs::write(cpu.join("online"), o.to_list()));
            }
            "added"
        };
        let first = wrote
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|_| compare(&name, &root));
        // Then a harder case: `present` made equal to the online CPUs, as if no CPU had been
        // taken offline, so that only the checks on the sibling files stand between inference
        // and the snapshots' offline CPUs, odd widths and numbering.
        let forced = gpuaff_core::topology::read_online(&Fs::new(&root))
            .map_err(|e| e.to_string())
            .and_then(|o| {
                std::fs::write(cpu.join("present"), o.to_list()).map_err(|e| e.to_string())
            })
            .map_err(|e| format!("{name} with present = online: {e}"))
            .and_then(|_| compare(&name, &root));
        match (first, forced) {
            (Ok((off, on)), Ok((off2, on2))) => {
                let (a, b) = (Outcome::of(off, on), Outcome::of(off2, on2));
                eprintln!(
                    "{name:<36} {off:>5} {on:>5} {present:<8} {:<14} {on2:>5} {:<14}",
                    a.label(),
                    b.label()
                );
                outcomes.push((name, a, b));
            }
            (a, b) => failures.extend(a.err().into_iter().chain(b.err())),
        }
    }
    let count = |o: Outcome, second: bool| {
        outcomes
            .iter()
            .filter(|(_, a, b)| (if second { *b } else { *a }) == o)
            .count()
    };
    for (second, what) in [(false, "as snapshotted"), (true, "present = online")] {
        eprintln!(
            "{} snapshots, {what}: {} inferred, {} fell back after sampling, {} present != online, \
             {} not attempted (at most a few cores per node), {} inferred but saved fewer files \
             than the precondition costs",
            outcomes.len(),
            count(Outcome::Inferred, second),
            count(Outcome::FellBack, second),
            count(Outcome::PresentNotOnline, second),
            count(Outcome::NotAttempted, second),
            count(Outcome::Other, second),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(outcomes.len(), tarballs.len());
    let outcome = |name: &str| {
        outcomes
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, a, b)| (*a, *b))
    };
    // SMT machines with regular numbering and several cores per node infer (the check is not
    // vacuous).
    for regular in [
        "16em64t-4s2c2t",
        "256ppc-8n8s4t",
        "32intel64-2p8co2t+8ve",
        "64fake-4n2s2ca2c2t",
        "memorysidecaches",
    ] {
        assert_eq!(
            outcome(regular),
            Some((Outcome::Inferred, Outcome::Inferred)),
            "{regular}"
        );
    }
    // Hybrid cores and compute units (Bulldozer) fall back on what the samples show; CPUs offline
    // on `present`, and on the samples even when `present` is made to say all are online.
    for irregular in ["20em64t-hybrid-1p6c2t+2ca4co1t", "64amd64-4s2n4ca2co"] {
        assert_eq!(
            outcome(irregular),
            Some((Outcome::FellBack, Outcome::FellBack)),
            "{irregular}"
        );
    }
    assert_eq!(
        outcome("16em64t-4s2c2t-offlines"),
        Some((Outcome::PresentNotOnline, Outcome::FellBack))
    );
}

/// What inference did, told by the files read with it on and off (the snapshots' `smt/control`
/// says on): precondition files cost 3 (`smt/control`, `present`, `cpu_atom/cpus`), or 2 when
/// `present` differs from the online CPUs (checked before the PMU), or none when the nodes hold
/// too few CPUs to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Fewer files than reading every core.
    Inferred,
    /// The precondition held; the samples or the tiling said no: every core read.
    FellBack,
    /// `present` is not the online set.
    PresentNotOnline,
    /// Not tried: too few CPUs per node to save files.
    NotAttempted,
    /// Inferred somewhere but saved less than the precondition cost.
    Other,
}

impl Outcome {
    fn of(off: usize, on: usize) -> Outcome {
        match on as isize - off as isize {
            d if d < 0 => Outcome::Inferred,
            0 => Outcome::NotAttempted,
            2 => Outcome::PresentNotOnline,
            3 => Outcome::FellBack,
            _ => Outcome::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Inferred => "inferred",
            Outcome::FellBack => "fell back",
            Outcome::PresentNotOnline => "present!=onl",
            Outcome::NotAttempted => "not attempted",
            Outcome::Other => "saved < 3",
        }
    }
}

#[test]
fn catalog_machines() {
    let mut failures = Vec::new();
    let mut saved = Vec::new();
    eprintln!("\n{:<22} {:>8} {:>8}", "machine", "read", "inferred");
    for (name, root) in catalog::trees() {
        match compare(&name, &root) {
            Ok((off, on)) => {
                eprintln!("{name:<22} {off:>8} {on:>8}");
                // At worst the precondition's files more.
                if on > off + PRECONDITION_FILES {
                    failures.push(format!("{name}: {on} files, {off} reading every core"));
                }
                saved.push((name, off.saturating_sub(on)));
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Regular SMT machines with many cores per node read far fewer files.
    for (name, at_least) in [("dgx-a100", 40), ("big-1024", 400), ("power9-smt4", 2)] {
        let got = saved.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        assert!(
            got.is_some_and(|s| s >= at_least),
            "{name}: saved {got:?}, expected {at_least} or more"
        );
    }
}
