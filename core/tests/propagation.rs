//! Reading each shared fact once (`topology::read_facts`) builds the very topology that reading
//! every file of every CPU builds (`read_facts_every_cpu`), on hwloc's real snapshots and on every
//! catalog machine, with far fewer files.

use gpuaff_core::cpuset::CpuSet;
use gpuaff_core::topology::{read_facts, read_nodes, read_online, CpuFacts, Facts, Topology};
use gpuaff_core::{Fs, Result};

#[path = "support/catalog.rs"]
mod catalog;
#[path = "support/every_cpu.rs"]
mod every_cpu;
use every_cpu::read_facts_every_cpu;

#[path = "support/snapshots.rs"]
mod snapshots;
use std::path::Path;

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
    for (name, root) in catalog::trees() {
        match same(&name, &root) {
            Ok((a, b)) => {
                eprintln!("{name:<22} {a:>8} {b:>8}");
                assert!(b < a, "{name}: {b} files, not fewer than {a}");
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hwloc_snapshots() {
    let Some(tarballs) = snapshots::tarballs() else {
        return;
    };
    let mut failures = Vec::new();
    for tarball in &tarballs {
        let name = snapshots::name(tarball);
        match snapshots::extract(tarball, "propagation") {
            Ok(snap) => match same(&name, &snap.root) {
                Ok((a, b)) => eprintln!("{name:<40} {a:>6} {b:>6}"),
                Err(e) => failures.push(e),
            },
            Err(e) => failures.push(format!("cannot extract: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
