//! The one place that reads files. Paths are given as they are on a live system ("sys/devices/...",
//! without the leading slash) and resolved under the fsroot. Tolerant of what real snapshots hold:
//! trailing NULs and newlines, list or mask forms. Every error names the file. Counts files read.

use crate::cpuset::CpuSet;
use crate::error::{Error, Result};
use std::cell::{Cell, OnceCell};
use std::ffi::CStr;
use std::fmt;
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
        self.read_bytes(rel, |b| String::from_utf8_lossy(b).into_owned())
    }

    /// Reads `rel` and hands its bytes to `f`: the path is built and the bytes read on the stack
    /// (the heap only for a path or file past the stack buffers, 512 and 4,096 bytes), so a small
    /// sysfs file costs no allocation beyond what `f` makes. None when the file does not exist.
    fn read_bytes<R>(&self, rel: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.files_read.set(self.files_read.get() + 1);
        // The path is only built for a message.
        let err = |errno: i32, what: &str| {
            Error::file(
                &self.path(rel),
                format!("{what}: {}", std::io::Error::from_raw_os_error(errno)),
            )
            .with_errno(errno)
        };
        let fd = match self.open_rel(rel, OPEN_FILE) {
            Ok(fd) => fd,
            Err(errno) if is_absent_errno(errno) => return Ok(None),
            Err(errno) => return Err(err(errno, "cannot read")),
        };
        // A sysfs attribute arrives whole in one read (kernfs serves its buffered `show` output), so
        // under `sys/` a short read is the end. procfs seq_files (mounts, cgroup) are not: loop there.
        let one_shot = rel.trim_start_matches('/').starts_with("sys/");
        let mut stack = [0u8; 4096];
        let mut heap = Vec::new();
        let bytes = match read_capped(&fd, one_shot, &mut stack, &mut heap) {
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
        Ok(Some(f(bytes)))
    }

    /// Opens `rel` (`flags` added to `O_CLOEXEC`): through a held directory when it is under one,
    /// else by its whole path, either built on the stack. The errno on failure.
    fn open_rel(&self, rel: &str, flags: libc::c_int) -> std::result::Result<Fd, i32> {
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
                let mut path = StackBuf::new();
                path.push(rest.as_bytes());
                return openat(dir.0, path.c_str()?, flags);
            }
            break;
        }
        // As `self.path(rel)`: the root, a separator unless it ends with one, the rest.
        use std::os::unix::ffi::OsStrExt;
        let root = self.root.as_os_str().as_bytes();
        let mut path = StackBuf::new();
        path.push(root);
        if root.last().is_some_and(|&b| b != b'/') {
            path.push(b"/");
        }
        path.push(rel.as_bytes());
        openat(libc::AT_FDCWD, path.c_str()?, flags)
    }

    /// The file's text without trailing NULs and surrounding whitespace; None when absent.
    pub fn read_str(&self, rel: &str) -> Result<Option<String>> {
        self.read_bytes(rel, |b| clean(&String::from_utf8_lossy(b)).to_string())
    }

    /// A file parsed from its (lossy UTF-8) text: None when absent or when `parse` finds nothing
    /// in it; a parse error names the file.
    fn read_parsed<T, E: fmt::Display>(
        &self,
        rel: &str,
        parse: impl FnOnce(&str) -> std::result::Result<Option<T>, E>,
    ) -> Result<Option<T>> {
        match self.read_bytes(rel, |b| parse(&String::from_utf8_lossy(b)))? {
            None => Ok(None),
            Some(r) => r.map_err(|e| Error::file(&self.path(rel), e)),
        }
    }

    /// A decimal integer file (`physical_package_id`, `numa_node`, `level`); None when absent.
    /// An empty file counts as absent: snapshots hold empty placeholders.
    pub fn read_i64(&self, rel: &str) -> Result<Option<i64>> {
        self.read_parsed(rel, |text| match clean(text) {
            "" => Ok(None),
            s => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{s:?} is not an integer")),
        })
    }

    /// A cpulist file (`0-3,8`); None when absent.
    pub fn read_list(&self, rel: &str) -> Result<Option<CpuSet>> {
        self.read_parsed(rel, |text| CpuSet::parse_list(text).map(Some))
    }

    /// A hexadecimal mask file (`ff,00000000`); None when absent or empty.
    pub fn read_mask(&self, rel: &str) -> Result<Option<CpuSet>> {
        self.read_parsed(rel, |text| {
            if clean(text).is_empty() {
                Ok(None)
            } else {
                CpuSet::parse_mask(text).map(Some)
            }
        })
    }

    /// A set given as `<list_rel>` or else `<mask_rel>` (the `*_list` form is preferred: it is
    /// unambiguous). None when neither exists.
    pub fn read_cpuset(&self, list_rel: &str, mask_rel: &str) -> Result<Option<CpuSet>> {
        match self.read_list(list_rel)? {
            Some(s) => Ok(Some(s)),
            None => self.read_mask(mask_rel),
        }
    }

    /// `read_opt` of a path given as `format_args!`, built on the stack instead of in a `String`.
    pub fn read_opt_fmt(&self, rel: fmt::Arguments<'_>) -> Result<Option<String>> {
        self.read_opt(StackBuf::format(rel).as_str())
    }

    /// `read_str` of a path given as `format_args!`.
    pub fn read_str_fmt(&self, rel: fmt::Arguments<'_>) -> Result<Option<String>> {
        self.read_str(StackBuf::format(rel).as_str())
    }

    /// `read_i64` of a path given as `format_args!`.
    pub fn read_i64_fmt(&self, rel: fmt::Arguments<'_>) -> Result<Option<i64>> {
        self.read_i64(StackBuf::format(rel).as_str())
    }

    /// `read_list` of a path given as `format_args!`.
    pub fn read_list_fmt(&self, rel: fmt::Arguments<'_>) -> Result<Option<CpuSet>> {
        self.read_list(StackBuf::format(rel).as_str())
    }

    /// `read_mask` of a path given as `format_args!`.
    pub fn read_mask_fmt(&self, rel: fmt::Arguments<'_>) -> Result<Option<CpuSet>> {
        self.read_mask(StackBuf::format(rel).as_str())
    }

    /// `read_cpuset` of paths given as `format_args!`.
    pub fn read_cpuset_fmt(
        &self,
        list_rel: fmt::Arguments<'_>,
        mask_rel: fmt::Arguments<'_>,
    ) -> Result<Option<CpuSet>> {
        match self.read_list_fmt(list_rel)? {
            Some(s) => Ok(Some(s)),
            None => self.read_mask_fmt(mask_rel),
        }
    }

    /// Entry names of a directory (links or plain dirs alike), sorted; empty when it does not exist.
    pub fn list_dir(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self.list_dir_opt(rel)?.unwrap_or_default())
    }

    /// Entry names of a directory, sorted; None when it does not exist (or is not a directory).
    pub fn list_dir_opt(&self, rel: &str) -> Result<Option<Vec<String>>> {
        let mut names = Vec::new();
        if !self.list_dir_each(rel, |name| names.push(name.to_string()))? {
            return Ok(None);
        }
        names.sort();
        Ok(Some(names))
    }

    /// Hands each entry name of a directory to `f` (lossy UTF-8, unsorted: the order the kernel
    /// lists them), without allocating per entry; false when the directory does not exist (or is
    /// not one).
    pub fn list_dir_each(&self, rel: &str, mut f: impl FnMut(&str)) -> Result<bool> {
        let fail = |errno: i32| {
            Error::file(
                &self.path(rel),
                format!(
                    "cannot list directory: {}",
                    std::io::Error::from_raw_os_error(errno)
                ),
            )
            .with_errno(errno)
        };
        let dir = match self.open_rel(rel, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(errno) if is_absent_errno(errno) => return Ok(false),
            Err(errno) => return Err(fail(errno)),
        };
        // The buffer glibc's opendir would allocate: as many getdents64 calls as readdir makes.
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buf` has `buf.len()` writable bytes; `dir` is an open directory.
            let n =
                unsafe { libc::syscall(libc::SYS_getdents64, dir.0, buf.as_mut_ptr(), buf.len()) };
            if n < 0 {
                match errno() {
                    libc::EINTR => continue,
                    e => return Err(fail(e)),
                }
            }
            let Some(data) = usize::try_from(n).ok().and_then(|n| buf.get(..n)) else {
                return Err(fail(libc::EIO));
            };
            if data.is_empty() {
                return Ok(true);
            }
            for name in dirents(data) {
                if name != b"." && name != b".." {
                    f(&String::from_utf8_lossy(name));
                }
            }
        }
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

/// How files are opened for reading. O_NONBLOCK: opening a FIFO for reading would otherwise wait
/// for a writer.
const OPEN_FILE: libc::c_int = libc::O_RDONLY | libc::O_NONBLOCK;

/// `openat(dir, path, flags|O_CLOEXEC)`; the errno on failure.
fn openat(dir: libc::c_int, path: &CStr, flags: libc::c_int) -> std::result::Result<Fd, i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call; `dir` is AT_FDCWD or an open fd.
    let fd = unsafe { libc::openat(dir, path.as_ptr(), flags | libc::O_CLOEXEC) };
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

/// Reads to EOF, at most `MAX_FILE + 1` bytes: into `stack` while it holds them (every sysfs file
/// but the largest cpulists), then on into `heap`. `one_shot`: a read shorter than asked is the end
/// (sysfs attributes; regular files in fixture trees), which saves the read that returns 0.
fn read_capped<'a>(
    fd: &Fd,
    one_shot: bool,
    stack: &'a mut [u8; 4096],
    heap: &'a mut Vec<u8>,
) -> std::result::Result<&'a [u8], i32> {
    let mut len = 0;
    while let Some(room) = stack.get_mut(len..).filter(|r| !r.is_empty()) {
        let asked = room.len();
        let n = read_some(fd, room)?;
        len += n;
        if n == 0 || (one_shot && n < asked) {
            return Ok(stack.get(..len).unwrap_or_default());
        }
    }
    // Larger than the stack buffer: on in chunks of it, as before.
    heap.extend_from_slice(stack);
    loop {
        let room = (MAX_FILE + 1 - heap.len()).min(stack.len());
        let Some(chunk) = stack.get_mut(..room) else {
            return Ok(heap);
        };
        let n = read_some(fd, chunk)?;
        if n == 0 {
            return Ok(heap);
        }
        heap.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if heap.len() > MAX_FILE || (one_shot && n < room) {
            return Ok(heap);
        }
    }
}

/// One `read` into `buf`, retried on EINTR; the bytes read, or the errno.
fn read_some(fd: &Fd, buf: &mut [u8]) -> std::result::Result<usize, i32> {
    loop {
        // SAFETY: `buf` has `buf.len()` writable bytes.
        let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// The names in a `getdents64` buffer (`struct linux_dirent64`: inode 8 bytes, offset 8, record
/// length 2, type 1, then the NUL-terminated name).
fn dirents(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(rest.get(16..18)?.try_into().ok()?));
        let record = rest.get(..len).filter(|_| len > 19)?;
        rest = rest.get(len..).unwrap_or_default();
        let name = record.get(19..).unwrap_or_default();
        Some(name.split(|&b| b == 0).next().unwrap_or_default())
    })
}

/// Bytes kept on the stack up to its 512, on the heap past them: a relative path, or a C path.
struct StackBuf {
    stack: [u8; 512],
    len: usize,
    heap: Vec<u8>,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            stack: [0; 512],
            len: 0,
            heap: Vec::new(),
        }
    }

    /// The text of `args`, written here.
    fn format(args: fmt::Arguments<'_>) -> Self {
        let mut b = StackBuf::new();
        let _ = fmt::Write::write_fmt(&mut b, args);
        b
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() {
            if let Some(dst) = self.stack.get_mut(self.len..self.len + bytes.len()) {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
            self.heap
                .extend_from_slice(self.stack.get(..self.len).unwrap_or_default());
        }
        self.heap.extend_from_slice(bytes);
    }

    fn bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            self.stack.get(..self.len).unwrap_or_default()
        } else {
            &self.heap
        }
    }

    /// The text written (only whole `str`s are, so it is UTF-8).
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or_default()
    }

    /// The bytes NUL-terminated; EINVAL when they hold a NUL.
    fn c_str(&mut self) -> std::result::Result<&CStr, i32> {
        self.push(&[0]);
        CStr::from_bytes_with_nul(self.bytes()).map_err(|_| libc::EINVAL)
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

use crate::error::last_errno as errno;

/// ENOTDIR: a path component is a file (odd snapshots); ENODEV/ENXIO: sysfs attributes of absent
/// hardware. All mean "this fact is not known here".
fn is_absent_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT | libc::ENOTDIR | libc::ENODEV | libc::ENXIO
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

    #[test]
    fn paths_from_format_args_and_past_the_stack_buffers() {
        let t = TestFs::new("fmtpaths");
        let cpu = 7;
        t.file(
            "sys/devices/system/cpu/cpu7/topology/core_cpus_list",
            "7,71\n",
        )
        .file("sys/bus/pci/devices/0000:07:00.0/numa_node", "3\n")
        .file("proc/self/cgroup", "0::/\n");
        let fs = t.fs();
        let dir = "sys/devices/system/cpu";
        assert_eq!(
            fs.read_list_fmt(format_args!("{dir}/cpu{cpu}/topology/core_cpus_list"))
                .unwrap()
                .unwrap()
                .to_list(),
            "7,71"
        );
        assert_eq!(
            fs.read_i64_fmt(format_args!(
                "sys/bus/pci/devices/{}/numa_node",
                "0000:07:00.0"
            ))
            .unwrap(),
            Some(3)
        );
        assert_eq!(
            fs.read_str_fmt(format_args!("proc/self/{}", "cgroup"))
                .unwrap()
                .as_deref(),
            Some("0::/")
        );
        assert_eq!(
            fs.read_cpuset_fmt(format_args!("{dir}/nothing"), format_args!("{dir}/none"))
                .unwrap(),
            None
        );
        // Paths longer than the 512-byte stack buffer, under a held directory and not.
        let long = "d".repeat(200);
        let deep = format!("{long}/{long}/{long}/x");
        t.file(&format!("{dir}/{deep}"), "1-2\n")
            .file(&format!("etc/{deep}"), "42\n");
        assert_eq!(
            fs.read_list_fmt(format_args!("{dir}/{deep}"))
                .unwrap()
                .unwrap()
                .to_list(),
            "1-2"
        );
        assert_eq!(fs.read_i64(&format!("etc/{deep}")).unwrap(), Some(42));
        let e = fs
            .read_i64_fmt(format_args!(
                "sys/bus/pci/devices/{}/numa_node",
                "0000:07:00.0x"
            ))
            .unwrap();
        assert_eq!(e, None);
        // A path with a NUL is refused, naming it.
        let e = fs.read_opt("sys/a\0b").unwrap_err();
        assert!(e.message().contains("cannot read"), "{e}");
        // The root spelt with a trailing separator reads the same files.
        let slash = Fs::new(format!("{}/", t.root.display()));
        assert_eq!(
            slash.read_str("proc/self/cgroup").unwrap().as_deref(),
            Some("0::/")
        );
        assert_eq!(fs.files_read(), 9);
    }

    #[test]
    fn files_at_the_stack_buffer_boundary() {
        let t = TestFs::new("boundary");
        let fs = t.fs();
        for n in [4095, 4096, 4097, 8192, 8193] {
            let text = "7".repeat(n);
            t.file("sys/f", &text).file("proc/f", &text);
            assert_eq!(fs.read_opt("sys/f").unwrap().unwrap().len(), n);
            assert_eq!(fs.read_opt("proc/f").unwrap().unwrap(), text);
        }
        // Invalid UTF-8 reads lossily, as before.
        std::fs::write(t.root.join("sys/bad"), b"0-1\xff\n").unwrap();
        assert_eq!(
            fs.read_opt("sys/bad").unwrap().as_deref(),
            Some("0-1\u{fffd}\n")
        );
        let e = fs.read_list("sys/bad").unwrap_err();
        assert!(e.message().contains("sys/bad"), "{e}");
    }

    #[test]
    fn listing_without_allocating_per_entry() {
        let t = TestFs::new("listing");
        // More entries than one getdents64 buffer holds (32 KiB): ~60 bytes per record.
        for i in 0..1500 {
            t.dir(&format!("sys/devices/system/cpu/cpu{i}-{}", "n".repeat(30)));
        }
        t.file("sys/devices/system/cpu/online", "0\n");
        let fs = t.fs();
        let mut seen = Vec::new();
        assert!(fs
            .list_dir_each("sys/devices/system/cpu", |n| seen.push(n.to_string()))
            .unwrap());
        assert_eq!(seen.len(), 1501);
        assert!(!seen.iter().any(|n| n == "." || n == ".."));
        seen.sort();
        assert_eq!(fs.list_dir("sys/devices/system/cpu").unwrap(), seen);
        // Through a held directory, and a file or nothing at all is no directory.
        t.dir("sys/devices/system/cpu/cpu0/cache/index0");
        assert_eq!(
            fs.list_dir("sys/devices/system/cpu/cpu0/cache").unwrap(),
            ["index0"]
        );
        assert_eq!(
            fs.list_dir_opt("sys/devices/system/cpu/online").unwrap(),
            None
        );
        assert_eq!(fs.list_dir_opt("sys/none").unwrap(), None);
        assert!(!fs.list_dir_each("sys/none", |_| panic!()).unwrap());
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
        let read = |fd: &Fd| {
            let (mut stack, mut heap) = ([0u8; 4096], Vec::new());
            assert!(!read_capped(fd, true, &mut stack, &mut heap)
                .unwrap()
                .is_empty());
        };
        let whole = time(&|| read(&openat(libc::AT_FDCWD, &full, OPEN_FILE).unwrap()));
        let dir = open_dir(&root.join("sys/devices/system/cpu")).unwrap();
        let crel = std::ffi::CString::new(rel).unwrap();
        let at = time(&|| read(&openat(dir.0, &crel, OPEN_FILE).unwrap()));
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
