//! Reading each shared fact once (`topology::read_facts`) builds the very topology that reading
//! every file of every CPU builds (`read_facts_every_cpu`), on hwloc's real snapshots and on every
//! catalog machine, with far fewer files.

use gpuaff_core::cpuset::CpuSet;
use gpuaff_core::topology::{read_facts, read_nodes, read_online, CpuFacts, Facts, Topology};
use gpuaff_core::{Fs, Result};

#[path = "support/every_cpu.rs"]
mod every_cpu;
use every_cpu::read_facts_every_cpu;
use std::path::{Path, PathBuf};
use std::process::Command;

fn same(name: &str, root: &Path) -> Result<(usize, usize), String> {
    let fs_every = Fs::new(root);
    let every = read_facts_every_cpu(&fs_every).map(|f| Topology::build(&f));
    let fs = Fs::new(root);
    let shared = read_facts(&fs).map(|f| Topology::build(&f));
    match (every, shared) {
        (Ok(a), Ok(b)) if a == b => Ok((fs_every.files_read(), fs.files_read())),
        (Ok(a), Ok(b)) => Err(format!("{name}: topologies differ:\n{a:?}\n{b:?}")),
        (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok((0, 0)),
        (a, b) => Err(format!("{name}: {:?} vs {:?}", a.err(), b.err())),
    }
}

#[test]
fn catalog_machines() {
    let mut failures = Vec::new();
    eprintln!("\n{:<22} {:>8} {:>8}", "machine", "every", "shared");
    for spec in gpuaff_fixtures::catalog() {
        if spec.name == "big-4096" {
            continue;
        }
        let root = gpuaff_fixtures::cached(&spec).expect("fixture written");
        match same(&spec.name, &root) {
            Ok((a, b)) => {
                eprintln!("{:<22} {a:>8} {b:>8}", spec.name);
                assert!(b < a, "{}: {b} files, not fewer than {a}", spec.name);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hwloc_snapshots() {
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
    let mut failures = Vec::new();
    for tarball in &tarballs {
        let name = tarball
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_end_matches(".tar.bz2")
            .to_string();
        let tmp = gpuaff_fixtures::scratch_root()
            .join(format!("gpuaff-propagation-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("scratch dir");
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
            (true, Some(root)) => match same(&name, &root) {
                Ok((a, b)) => eprintln!("{name:<40} {a:>6} {b:>6}"),
                Err(e) => failures.push(e),
            },
            _ => failures.push(format!("{name}: cannot extract")),
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
