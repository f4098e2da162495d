//! hwloc's real machine snapshots (`../shared/fixtures/hwloc`, one `NAME.tar.bz2` per machine), for
//! tests that skip, saying so, when they are absent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The snapshots' directory, when there is one.
pub fn dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/hwloc");
    dir.is_dir().then_some(dir)
}

/// Every snapshot, sorted; None (after saying the test skips) when the directory is absent. A
/// directory without a snapshot is a broken checkout, not a skip.
pub fn tarballs() -> Option<Vec<PathBuf>> {
    let Some(dir) = dir() else {
        eprintln!("skipping: ../shared/fixtures/hwloc not found");
        return None;
    };
    let mut tarballs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("snapshot directory readable")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.bz2"))
        .collect();
    tarballs.sort();
    assert!(!tarballs.is_empty(), "no snapshots in {}", dir.display());
    Some(tarballs)
}

/// `NAME` of `.../NAME.tar.bz2`.
pub fn name(tarball: &Path) -> String {
    let file = tarball.file_name().unwrap_or_default().to_string_lossy();
    file.trim_end_matches(".tar.bz2").to_string()
}

/// An extracted snapshot, removed when dropped.
pub struct Extracted {
    dir: PathBuf,
    /// The directory standing in for `/` (the one holding `sys/`).
    pub root: PathBuf,
}

impl Drop for Extracted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Extracts `tarball` into a fresh directory named after `tag`, the process and the snapshot.
pub fn extract(tarball: &Path, tag: &str) -> Result<Extracted, String> {
    let name = name(tarball);
    // tmpfs when there is one: the snapshots are thousands of small files, slow on a loaded disk.
    let dir =
        gpuaff_fixtures::scratch_root().join(format!("gpuaff-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut snap = Extracted {
        dir,
        root: PathBuf::new(),
    };
    let st = Command::new("tar")
        .arg("xjf")
        .arg(tarball)
        .arg("-C")
        .arg(&snap.dir)
        .status()
        .map_err(|e| format!("{name}: tar: {e}"))?;
    if !st.success() {
        return Err(format!(
            "{name}: tar xjf {} failed: {st}",
            tarball.display()
        ));
    }
    // The top directory may be named differently from the tarball; x86 ones add `fsroot/`.
    let root = std::fs::read_dir(&snap.dir).ok().and_then(|rd| {
        rd.flatten()
            .flat_map(|t| [t.path(), t.path().join("fsroot")])
            .find(|c| c.join("sys").is_dir())
    });
    snap.root =
        root.ok_or_else(|| format!("{name}: no sys/ directory in {}", tarball.display()))?;
    Ok(snap)
}
