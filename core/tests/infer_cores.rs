//! Inferring thread siblings from a few CPUs per node (`Want::infer_cores`) builds the very
//! topology that reading every core's file builds: on hwloc's real snapshots made to claim SMT is
//! on everywhere (so that the inference is attempted on real sibling data, and must either agree or
//! fall back), and on every catalog machine. Run with `--nocapture` for the table.

use gpuaff_core::topology::{Topology, Want};
use gpuaff_core::{AllowedFrom, Fs};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Extracts `tarball` under a fresh directory; (that directory, the fsroot).
fn extract(tarball: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let tmp =
        gpuaff_fixtures::scratch_root().join(format!("gpuaff-infer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let ok = Command::new("tar")
        .arg("xjf")
        .arg(tarball)
        .arg("-C")
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    let root = std::fs::read_dir(&tmp).ok().and_then(|rd| {
        rd.flatten()
            .flat_map(|t| [t.path(), t.path().join("fsroot")])
            .find(|c| c.join("sys").is_dir())
    });
    match (ok, root) {
        (true, Some(root)) => Ok((tmp, root)),
        _ => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(format!("{name}: cannot extract {}", tarball.display()))
        }
    }
}

/// With inference on, the precondition costs `smt/control`, `present` and the hybrid PMU's
/// `cpus`; any file fewer than that means some node's cores were inferred.
const PRECONDITION_FILES: usize = 3;

#[test]
fn hwloc_snapshots_claiming_smt_on() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/hwloc");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: {} not found", dir.display());
        return;
    };
    let mut tarballs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.bz2"))
        .collect();
    tarballs.sort();
    assert!(!tarballs.is_empty(), "no snapshots in {}", dir.display());
    let mut failures = Vec::new();
    let (mut inferred, mut fell_back) = (Vec::new(), Vec::new());
    eprintln!(
        "\n{:<40} {:>8} {:>8}  present  {:>8}",
        "snapshot", "read", "inferred", "all on"
    );
    for tarball in &tarballs {
        let name = tarball
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_end_matches(".tar.bz2")
            .to_string();
        let (tmp, root) = match extract(tarball, &name) {
            Ok(x) => x,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        // The kernel's word, whatever the snapshot says (or lacks): SMT on, and every present
        // CPU online where the snapshot has no `present` (the kernel lists one per cpuN dir).
        let cpu = root.join("sys/devices/system/cpu");
        let _ = std::fs::create_dir_all(cpu.join("smt"));
        let wrote = std::fs::write(cpu.join("smt/active"), "1\n")
            .and_then(|_| std::fs::write(cpu.join("smt/control"), "on\n"));
        let present = if cpu.join("present").exists() {
            "kept"
        } else {
            let _ = std::fs::write(cpu.join("present"), cpu_dirs(&root));
            "added"
        };
        match wrote
            .map_err(|e| format!("{name}: {e}"))
            .and_then(|_| compare(&name, &root))
        {
            Ok((off, on)) => {
                // Then a harder case: `present` made equal to the online CPUs, as if no CPU
                // had been taken offline, so that only the checks on the sibling files stand
                // between inference and the snapshots' offline CPUs, odd widths and numbering.
                let online = gpuaff_core::topology::read_online(&Fs::new(&root));
                let forced = online
                    .map_err(|e| e.to_string())
                    .and_then(|o| {
                        std::fs::write(cpu.join("present"), o.to_list()).map_err(|e| e.to_string())
                    })
                    .map_err(|e| format!("{name}: {e}"))
                    .and_then(|_| compare(&name, &root));
                match forced {
                    Ok((_, all_on)) => {
                        eprintln!("{name:<40} {off:>8} {on:>8}  {present:<7}  {all_on:>8}")
                    }
                    Err(e) => failures.push(format!("with present = online: {e}")),
                }
                if on < off + PRECONDITION_FILES {
                    inferred.push(name);
                } else {
                    fell_back.push(name);
                }
            }
            Err(e) => failures.push(e),
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    eprintln!(
        "{} snapshots: {} read fewer files by inferring; {} read every core's file (fell back, or \
         at most three cores per node): {}",
        tarballs.len(),
        inferred.len(),
        fell_back.len(),
        fell_back.join(" ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // SMT machines with regular numbering and several cores per node save files (the check is
    // not vacuous).
    for regular in [
        "16em64t-4s2c2t",
        "256ppc-8n8s4t",
        "32intel64-2p8co2t+8ve",
        "64fake-4n2s2ca2c2t",
        "memorysidecaches",
    ] {
        assert!(
            inferred.iter().any(|n| n == regular),
            "{regular} did not infer"
        );
    }
    // Hybrid cores, CPUs offline and compute units (Bulldozer) must not.
    for irregular in [
        "20em64t-hybrid-1p6c2t+2ca4co1t",
        "16em64t-4s2c2t-offlines",
        "64amd64-4s2n4ca2co",
    ] {
        assert!(
            fell_back.iter().any(|n| n == irregular),
            "{irregular} inferred"
        );
    }
}

#[test]
fn catalog_machines() {
    let mut failures = Vec::new();
    let mut saved = Vec::new();
    eprintln!("\n{:<22} {:>8} {:>8}", "machine", "read", "inferred");
    for spec in gpuaff_fixtures::catalog() {
        if spec.name == "big-4096" {
            continue;
        }
        let root = gpuaff_fixtures::cached(&spec).expect("fixture written");
        match compare(&spec.name, &root) {
            Ok((off, on)) => {
                eprintln!("{:<22} {off:>8} {on:>8}", spec.name);
                // At worst the precondition's files more.
                if on > off + PRECONDITION_FILES {
                    failures.push(format!(
                        "{}: {on} files, {off} reading every core",
                        spec.name
                    ));
                }
                saved.push((spec.name.clone(), off.saturating_sub(on)));
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
