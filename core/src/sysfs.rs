//! The one place that reads files. Paths are given as they are on a live system ("sys/devices/...",
//! without the leading slash) and resolved under the fsroot. Tolerant of what real snapshots hold:
//! trailing NULs and newlines, list or mask forms. Every error names the file. Counts files read.

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
use std::cell::{Cell, OnceCell};
use std::path::{Path, PathBuf};

/// The most a sysfs/procfs file may hold: a cpulist naming every other CPU of an 8,192-CPU machine
/// is about 20 KiB; anything far larger is not a file the kernel wrote.
pub const MAX_FILE: usize = 256 * 1024;

pub struct Fs {
    root: PathBuf,
    files_read: Cell<usize>,
    /// The directories most reads are under, opened once (`O_PATH`) on first use; None when one
    /// cannot be opened (then reads there take the whole path, and report what that finds).
    held: [OnceCell<Option<Fd>>; HELD.len()],
}

/// Directories read through a held descriptor: every read under them is an `openat` of the rest
/// of the path, sparing the kernel the walk from the fsroot (about 15% of a read's time on a deep
/// fsroot, measured by `openat_timing`). Symlinks are followed as before.
const HELD: [&str; 3] = [
    "sys/devices/system/cpu/",
    "sys/devices/system/node/",
    "sys/bus/pci/devices/",
];

impl Fs {
    /// `root` stands in for `/` (as hwloc's HWLOC_FSROOT).
    pub fn new(root: impl Into<PathBuf>) -> Fs {
        Fs {
            root: root.into(),
            files_read: Cell::new(0),
            held: Default::default(),
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
    ///
    /// At most `MAX_FILE` bytes are read: a FIFO or device node where a sysfs file should be (a
    /// corrupt or hostile tree) must not hang or flood the reader. No `fstat`: a FIFO opened
    /// `O_NONBLOCK` reads EOF (no writer) or EAGAIN (a writer), a directory fails EISDIR, an endless
    /// device hits the cap; EAGAIN and EISDIR say "is not a regular file".
    pub fn read_opt(&self, rel: &str) -> Result<Option<String>> {
        self.files_read.set(self.files_read.get() + 1);
        // The path is only built for a message.
        let err = |errno: i32, what: &str| {
            Error::file(
                &self.path(rel),
                format!("{what}: {}", std::io::Error::from_raw_os_error(errno)),
            )
            .with_errno(errno)
        };
        let fd = match self.open_rel(rel) {
            Ok(fd) => fd,
            Err(errno) if is_absent_errno(errno) => return Ok(None),
            Err(errno) => return Err(err(errno, "cannot read")),
        };
        // A sysfs attribute arrives whole in one read (kernfs serves its buffered `show` output), so
        // under `sys/` a short read is the end. procfs seq_files (mounts, cgroup) are not: loop there.
        let one_shot = rel.trim_start_matches('/').starts_with("sys/");
        let bytes = match read_capped(&fd, one_shot) {
            Ok(b) => b,
            Err(errno) if matches!(errno, libc::EAGAIN | libc::EISDIR) => {
                return Err(Error::file(&self.path(rel), "is not a regular file").with_errno(errno))
            }
            Err(errno) => return Err(err(errno, "cannot read")),
        };
        if bytes.len() > MAX_FILE {
            return Err(Error::file(
                &self.path(rel),
                format!("is larger than {MAX_FILE} bytes"),
            ));
        }
        Ok(Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }

    /// Opens `rel` for reading: through a held directory when it is under one, else by its whole
    /// path. The errno on failure.
    fn open_rel(&self, rel: &str) -> std::result::Result<Fd, i32> {
        let rel = rel.trim_start_matches('/');
        for (i, prefix) in HELD.iter().enumerate() {
            let Some(rest) = rel.strip_prefix(prefix) else {
                continue;
            };
            let Some(cell) = self.held.get(i) else {
                break;
            };
            let dir = cell.get_or_init(|| open_dir(&self.root.join(prefix)).ok());
            if let (Some(dir), false) = (dir, rest.is_empty()) {
                let c = std::ffi::CString::new(rest).map_err(|_| libc::EINVAL)?;
                return openat_read(dir.0, &c);
            }
            break;
        }
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(self.path(rel).as_os_str().as_bytes())
            .map_err(|_| libc::EINVAL)?;
        openat_read(libc::AT_FDCWD, &c)
    }

    /// The file's text without trailing NULs and surrounding whitespace; None when absent.
    pub fn read_str(&self, rel: &str) -> Result<Option<String>> {
        Ok(self.read_opt(rel)?.map(|s| clean(&s).to_string()))
    }

    /// A decimal integer file (`physical_package_id`, `numa_node`, `level`); None when absent.
    /// An empty file counts as absent: snapshots hold empty placeholders.
    pub fn read_i64(&self, rel: &str) -> Result<Option<i64>> {
        match self.read_str(rel)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::file(&self.path(rel), format!("{s:?} is not an integer"))),
        }
    }

    /// A cpulist file (`0-3,8`); None when absent.
    pub fn read_list(&self, rel: &str) -> Result<Option<CpuSet>> {
        match self.read_opt(rel)? {
            None => Ok(None),
            Some(s) => CpuSet::parse_list(&s)
                .map(Some)
                .map_err(|e| Error::file(&self.path(rel), e)),
        }
    }

    /// A hexadecimal mask file (`ff,00000000`); None when absent or empty.
    pub fn read_mask(&self, rel: &str) -> Result<Option<CpuSet>> {
        match self.read_opt(rel)? {
            None => Ok(None),
            Some(s) if clean(&s).is_empty() => Ok(None),
            Some(s) => CpuSet::parse_mask(&s)
                .map(Some)
                .map_err(|e| Error::file(&self.path(rel), e)),
        }
    }

    /// A set given as `<list_rel>` or else `<mask_rel>` (the `*_list` form is preferred: it is
    /// unambiguous). None when neither exists.
    pub fn read_cpuset(&self, list_rel: &str, mask_rel: &str) -> Result<Option<CpuSet>> {
        match self.read_list(list_rel)? {
            Some(s) => Ok(Some(s)),
            None => self.read_mask(mask_rel),
        }
    }

    /// Entry names of a directory (links or plain dirs alike), sorted; empty when it does not exist.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self.list_dir_opt(rel)?.unwrap_or_default())
    }

    /// Entry names of a directory, sorted; None when it does not exist (or is not a directory).
    pub fn list_dir_opt(&self, rel: &str) -> Result<Option<Vec<String>>> {
        let path = self.path(rel);
        let rd = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => {
                return Err(Error::file(&path, format!("cannot list directory: {e}"))
                    .with_errno(e.raw_os_error().unwrap_or(libc::EIO)))
            }
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| Error::file(&path, format!("cannot list directory: {e}")))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }

    /// True when `rel` exists (following links) as anything.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// True when `rel` is a directory, or a link to one.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.path(rel).is_dir()
    }
}

/// An open file descriptor, closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// `openat(dir, path, O_RDONLY|O_NONBLOCK|O_CLOEXEC)`; the errno on failure. O_NONBLOCK: opening
/// a FIFO for reading would otherwise wait for a writer.
fn openat_read(dir: libc::c_int, path: &std::ffi::CStr) -> std::result::Result<Fd, i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call; `dir` is AT_FDCWD or an open fd.
    let fd = unsafe {
        libc::openat(
            dir,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(Fd(fd))
    }
}

/// A directory held for `openat` (`O_PATH`: no read permission needed, nothing read).
fn open_dir(path: &Path) -> std::result::Result<Fd, i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(Fd(fd))
    }
}

/// Up to `MAX_FILE + 1` bytes of `fd`, through a stack buffer: sysfs files fit in one read, so
/// the heap holds only the result.
/// Reads to EOF, at most `MAX_FILE + 1` bytes. `one_shot`: a read shorter than asked is the end
/// (sysfs attributes; regular files in fixture trees), which saves the read that returns 0.
fn read_capped(fd: &Fd, one_shot: bool) -> std::result::Result<Vec<u8>, i32> {
    let mut buf = [0u8; 4096];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let room = (MAX_FILE + 1 - out.len()).min(buf.len());
        // SAFETY: `buf` has `room` <= its length writable bytes.
        let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), room) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
        if out.len() > MAX_FILE || (one_shot && n < room) {
            return Ok(out);
        }
    }
}

use crate::error::last_errno as errno;

fn is_absent_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT | libc::ENOTDIR | libc::ENODEV | libc::ENXIO
    )
}

fn is_absent(e: &std::io::Error) -> bool {
    // ENOTDIR: a path component is a file (odd snapshots); ENODEV/ENXIO: sysfs attributes of absent
    // hardware. All mean "this fact is not known here".
    matches!(e.kind(), std::io::ErrorKind::NotFound)
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOTDIR) | Some(libc::ENODEV) | Some(libc::ENXIO)
        )
}

pub use crate::cpuset::clean;

/// The calling thread's CPU mask (`sched_getaffinity`), a read-only query.
pub fn process_mask() -> Result<CpuSet> {
    thread_mask(0)
}

/// A thread's CPU mask (`sched_getaffinity`; tid 0 is the calling thread), a read-only query.
pub fn thread_mask(tid: libc::pid_t) -> Result<CpuSet> {
    // Start at 1024 CPUs (glibc's cpu_set_t) and grow on EINVAL: the kernel refuses a buffer
    // smaller than its nr_cpu_ids.
    let mut words = 16usize;
    let max_words = crate::cpuset::MAX_ID / 64 + 1;
    loop {
        let mut buf = vec![0u64; words];
        let bytes = words * std::mem::size_of::<u64>();
        // SAFETY: buf holds `bytes` writable bytes.
        let rc = unsafe { libc::sched_getaffinity(tid, bytes, buf.as_mut_ptr().cast()) };
        if rc == 0 {
            return Ok(CpuSet::from_words(&buf));
        }
        let errno = errno();
        if errno == libc::EINVAL && words < max_words {
            words = (words * 2).min(max_words);
            continue;
        }
        return Err(Error::os(
            errno,
            format!(
                "sched_getaffinity failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        ));
    }
}

/// A throwaway directory tree for tests: `TestFs::new("name").file("sys/...", "text")`.
#[cfg(test)]
pub(crate) struct TestFs {
    pub root: PathBuf,
}

#[cfg(test)]
impl TestFs {
    pub fn new(name: &str) -> TestFs {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "gpuaff-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        TestFs { root }
    }
    pub fn file(&self, rel: &str, text: &str) -> &TestFs {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    pub fn dir(&self, rel: &str) -> &TestFs {
        std::fs::create_dir_all(self.root.join(rel)).unwrap();
        self
    }
    pub fn fs(&self) -> Fs {
        Fs::new(&self.root)
    }
}

#[cfg(test)]
impl Drop for TestFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_none_and_counted() {
        let t = TestFs::new("missing");
        let fs = t.fs();
        assert_eq!(fs.read_opt("sys/nothing").unwrap(), None);
        assert_eq!(fs.read_list("sys/nothing").unwrap(), None);
        assert_eq!(fs.read_i64("sys/nothing").unwrap(), None);
        assert_eq!(fs.files_read(), 3);
        assert!(fs.list_dir("sys/none").unwrap().is_empty());
    }

    #[test]
    fn lists_masks_and_trailing_nuls() {
        let t = TestFs::new("forms");
        t.file("a_list", "0-3,8\n\0\0")
            .file("a_mask", "00000000,00000f00\n")
            .file("short_mask", "3\0")
            .file("empty", "")
            .file("id", " -1\n");
        let fs = t.fs();
        assert_eq!(fs.read_list("a_list").unwrap().unwrap().to_list(), "0-3,8");
        assert_eq!(fs.read_mask("a_mask").unwrap().unwrap().to_list(), "8-11");
        // "3" as a mask is CPUs 0-1, never CPU 3.
        assert_eq!(
            fs.read_mask("short_mask").unwrap().unwrap().to_list(),
            "0-1"
        );
        assert_eq!(fs.read_mask("empty").unwrap(), None);
        assert_eq!(fs.read_i64("empty").unwrap(), None);
        assert_eq!(fs.read_i64("id").unwrap(), Some(-1));
        // The list file wins; the mask is the fallback.
        assert_eq!(
            fs.read_cpuset("a_list", "a_mask")
                .unwrap()
                .unwrap()
                .to_list(),
            "0-3,8"
        );
        assert_eq!(
            fs.read_cpuset("no_list", "a_mask")
                .unwrap()
                .unwrap()
                .to_list(),
            "8-11"
        );
    }

    #[test]
    fn errors_name_the_file() {
        let t = TestFs::new("errors");
        t.file("bad_list", "0-x\n").file("bad_int", "zero\n");
        let fs = t.fs();
        let e = fs.read_list("bad_list").unwrap_err();
        assert!(e.message().contains("bad_list"), "{e}");
        let e = fs.read_i64("bad_int").unwrap_err();
        assert!(
            e.message().contains("bad_int") && e.message().contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn non_regular_files_neither_hang_nor_flood() {
        let t = TestFs::new("odd");
        t.dir("d");
        let fs = t.fs();
        let e = fs.read_opt("d").unwrap_err();
        assert!(
            e.message().contains("is not a regular file") && e.message().contains("/d"),
            "{e}"
        );
        // A FIFO without a writer reads as empty at once.
        let fifo = std::ffi::CString::new(t.root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_eq!(fs.read_opt("fifo").unwrap().as_deref(), Some(""));
        // An endless device stops at the cap.
        std::os::unix::fs::symlink("/dev/zero", t.root.join("zero")).unwrap();
        let e = fs.read_opt("zero").unwrap_err();
        assert!(e.message().contains("larger than"), "{e}");
        // Files bigger than the stack buffer come back whole.
        let big = "0-1,".repeat(3000);
        t.file("big", &big);
        assert_eq!(fs.read_opt("big").unwrap().as_deref(), Some(big.as_str()));
    }

    #[test]
    fn directories_are_sorted() {
        let t = TestFs::new("dirs");
        t.dir("d/node10").dir("d/node2").file("d/online", "0");
        assert_eq!(
            t.fs().list_dir("d").unwrap(),
            vec!["node10", "node2", "online"]
        );
    }

    /// Whole-path opens against `openat` on a held directory: `GPU_AFFINITY_BENCH_ROOT` (a
    /// fixture tree) or a small one here. `cargo test -p gpuaff-core --lib openat_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn openat_timing() {
        use std::time::Instant;
        let t = TestFs::new("openat");
        let root = match std::env::var_os("GPU_AFFINITY_BENCH_ROOT") {
            Some(r) => PathBuf::from(r),
            None => {
                t.file(
                    "sys/devices/system/cpu/cpu57/topology/core_cpus_list",
                    "57,185\n",
                );
                t.root.clone()
            }
        };
        let rel = "cpu57/topology/core_cpus_list";
        let n = 20_000;
        let full = root.join("sys/devices/system/cpu").join(rel);
        let full = std::ffi::CString::new(full.to_str().unwrap()).unwrap();
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        let whole = time(&|| {
            let fd = openat_read(libc::AT_FDCWD, &full).unwrap();
            assert!(!read_capped(&fd, true).unwrap().is_empty());
        });
        let dir = open_dir(&root.join("sys/devices/system/cpu")).unwrap();
        let crel = std::ffi::CString::new(rel).unwrap();
        let at = time(&|| {
            let fd = openat_read(dir.0, &crel).unwrap();
            assert!(!read_capped(&fd, true).unwrap().is_empty());
        });
        let fs = Fs::new(&root);
        let api = format!("sys/devices/system/cpu/{rel}");
        let read_opt = time(&|| assert!(fs.read_opt(&api).unwrap().is_some()));
        eprintln!(
            "{n} reads of {rel} under {}: whole path {whole:.2} us/read, openat {at:.2} us/read, \
             Fs::read_opt {read_opt:.2} us/read",
            root.display(),
        );
    }

    #[test]
    fn process_mask_holds_this_thread() {
        let m = process_mask().unwrap();
        assert!(!m.is_empty());
        // SAFETY: plain query of the running CPU.
        let cpu = unsafe { libc::sched_getcpu() };
        assert!(cpu < 0 || m.contains(cpu as usize));
    }
}
