//! The one place that reads files. Paths are given as they are on a live system ("sys/devices/...",
//! without the leading slash) and resolved under the fsroot. Tolerant of what real snapshots hold:
//! trailing NULs and newlines, list or mask forms. Every error names the file. Counts files read.

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub struct Fs {
    root: PathBuf,
    files_read: Cell<usize>,
}

impl Fs {
    /// `root` stands in for `/` (as hwloc's HWLOC_FSROOT).
    pub fn new(root: impl Into<PathBuf>) -> Fs {
        Fs {
            root: root.into(),
            files_read: Cell::new(0),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// True when reading this machine's own `/`.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }
    /// The number of files read (opened) so far.
    pub fn files_read(&self) -> usize {
        self.files_read.get()
    }
    /// `rel` under the fsroot.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    /// Whole file as text (lossy UTF-8), or None when it does not exist. Other I/O errors name the file.
    pub fn read_opt(&self, rel: &str) -> Result<Option<String>> {
        let _ = rel;
        unimplemented!("sysfs::Fs::read_opt")
    }
}

/// The calling thread's CPU mask (`sched_getaffinity`), a read-only query.
pub fn process_mask() -> Result<CpuSet> {
    unimplemented!("sysfs::process_mask")
}
