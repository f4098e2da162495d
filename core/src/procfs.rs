//! What the kernel says about running processes and their threads, read from `/proc` or from a
//! directory standing in for it (`gpuaff check --proc DIR`). Reads and parses; changes nothing.
//! Every file read is counted; a process that vanishes mid-read reads as absent, not as an error.
//!
//! Per process: `status` (name, parent, owner, allowed CPUs), `environ`, `cmdline`, `numa_maps`
//! (bounded), `fd/` (links to `/dev/nvidia*`), `cwd`. Per thread: `task/TID/stat` (the name, `comm`,
//! and field 39, the CPU it last ran on) and the allowed CPUs: on the live `/proc` from
//! `sched_getaffinity` (the kernel formats no file for it), elsewhere from `task/TID/status`.
//! Machine-wide: `sys/kernel/numa_balancing`.

use crate::cpuset::CpuSet;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of `numa_maps` read per process: about 100,000 mappings. Past it the sums cover the
/// mappings read and say so (`NumaMaps::truncated`); reading a huge map walks every page table.
pub const NUMA_MAPS_CAP: usize = 16 << 20;
/// Descriptors of one process looked at for a GPU device.
const MAX_FDS: usize = 4096;
/// The most of any other file read: environments and command lines are far smaller.
const FILE_CAP: usize = 4 << 20;

/// Why a file could not be read, in words for one line (`permission denied`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub why: String,
    /// True for EACCES/EPERM: another user's process.
    pub denied: bool,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.why)
    }
}

/// A file's fate: read, absent (or the process is gone), or unreadable.
pub type Got<T> = std::result::Result<Option<T>, Unreadable>;

/// A `/proc` tree: the live one or a synthetic stand-in.
pub struct ProcFs {
    root: PathBuf,
    files_read: Cell<usize>,
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs {
            root: root.into(),
            files_read: Cell::new(0),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// True when this is the machine's own `/proc`.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/proc")
    }
    /// Files and directories opened so far.
    pub fn files_read(&self) -> usize {
        self.files_read.get()
    }
    fn count(&self) {
        self.files_read.set(self.files_read.get() + 1);
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn unreadable(&self, rel: &str, e: &std::io::Error) -> Unreadable {
        Unreadable {
            path: self.path(rel),
            why: io_text(e),
            denied: matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)),
        }
    }

    /// At most `cap` bytes of `rel`, and whether there was more.
    pub fn read_capped(&self, rel: &str, cap: usize) -> Got<(Vec<u8>, bool)> {
        self.count();
        let path = self.path(rel);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(self.unreadable(rel, &e)),
        };
        // Room for a whole status or stat file up front: the file arrives in one read, and the
        // next one says EOF (an empty vector would make read_to_end probe in small reads).
        let mut buf = Vec::with_capacity(cap.min(16 << 10));
        match f.take(cap as u64 + 1).read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(self.unreadable(rel, &e)),
        }
        let more = buf.len() > cap;
        buf.truncate(cap);
        Ok(Some((buf, more)))
    }

    /// The whole (small) file as text.
    pub fn read_text(&self, rel: &str) -> Got<String> {
        Ok(self
            .read_capped(rel, FILE_CAP)?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Entry names of a directory; None when absent.
    pub fn list(&self, rel: &str) -> Got<Vec<String>> {
        self.count();
        let rd = match std::fs::read_dir(self.path(rel)) {
            Ok(rd) => rd,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(self.unreadable(rel, &e)),
        };
        Ok(Some(
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
        ))
    }

    fn link(&self, rel: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(rel)).ok()
    }

    /// Every process id under the root, ascending.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .list("")
            .ok()
            .flatten()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// `sys/kernel/numa_balancing`: 0 off, 1 on (2 and 3: memory tiering modes).
    pub fn numa_balancing(&self) -> Option<u32> {
        self.read_text("sys/kernel/numa_balancing")
            .ok()
            .flatten()
            .and_then(|s| s.trim().parse().ok())
    }

    /// `status` of a process (`PID`) or a thread (`PID/task/TID`).
    pub fn status(&self, dir: &str) -> Got<Status> {
        Ok(self
            .read_text(&format!("{dir}/status"))?
            .map(|s| parse_status(&s)))
    }

    /// The process's initial environment (what it was started with; later `setenv` calls do not
    /// show here), in order.
    pub fn environ(&self, pid: u32) -> Got<Vec<(String, String)>> {
        Ok(self
            .read_capped(&format!("{pid}/environ"), FILE_CAP)?
            .map(|(b, _)| parse_environ(&b)))
    }

    /// The command line, NUL-separated words.
    pub fn cmdline(&self, pid: u32) -> Vec<String> {
        match self.read_capped(&format!("{pid}/cmdline"), 64 << 10) {
            Ok(Some((b, _))) => b
                .split(|&c| c == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The process's working directory (to resolve a relative `GPU_AFFINITY_FSROOT`).
    pub fn cwd(&self, pid: u32) -> Option<PathBuf> {
        self.link(&format!("{pid}/cwd"))
    }

    /// Every thread of the process: name, allowed CPUs and the CPU it last ran on.
    pub fn threads(&self, pid: u32) -> Got<Vec<Thread>> {
        let Some(tids) = self.list(&format!("{pid}/task"))? else {
            return Ok(None);
        };
        let mut tids: Vec<u32> = tids.iter().filter_map(|t| t.parse().ok()).collect();
        tids.sort_unstable();
        let mut out = Vec::with_capacity(tids.len());
        for tid in tids {
            let dir = format!("{pid}/task/{tid}");
            if self.is_live() {
                // On this machine the kernel answers the mask without formatting a status file:
                // one file (stat: name and last CPU) and one system call per thread.
                let Some(stat) = self.read_text(&format!("{dir}/stat"))? else {
                    continue;
                };
                // An error is the thread ending since the listing.
                let Some(cpus) = libc::pid_t::try_from(tid)
                    .ok()
                    .and_then(|t| crate::sysfs::thread_mask(t).ok())
                else {
                    continue;
                };
                out.push(Thread {
                    tid,
                    name: stat_name(&stat).unwrap_or_default().to_string(),
                    cpus: Some(cpus),
                    last_cpu: stat_field(&stat, 39).and_then(|v| v.parse().ok()),
                });
                continue;
            }
            // A thread that ended since the listing is simply not there.
            let Some(st) = self.status(&dir)? else {
                continue;
            };
            let last_cpu = self
                .read_text(&format!("{dir}/stat"))
                .ok()
                .flatten()
                .and_then(|s| stat_field(&s, 39).and_then(|v| v.parse().ok()));
            out.push(Thread {
                tid,
                name: st.name,
                cpus: st.cpus,
                last_cpu,
            });
        }
        Ok(Some(out))
    }

    /// Resident memory per NUMA node from `numa_maps`, reading at most `NUMA_MAPS_CAP` bytes.
    pub fn numa_maps(&self, pid: u32) -> Got<NumaMaps> {
        Ok(self
            .read_capped(&format!("{pid}/numa_maps"), NUMA_MAPS_CAP)?
            .map(|(b, more)| {
                // A capped read ends mid-line: the partial line is dropped.
                let text = String::from_utf8_lossy(&b);
                let text = if more {
                    text.rsplit_once('\n').map_or("", |(head, _)| head)
                } else {
                    &text
                };
                let mut m = parse_numa_maps(text);
                m.truncated = more;
                m
            }))
    }

    /// Whether the process holds a GPU device open: `/dev/nvidia*` (any GPU, `nvidiactl`,
    /// `nvidia-uvm`) or AMD's `/dev/kfd` (every ROCm compute process opens it).
    pub fn holds_gpu_device(&self, pid: u32) -> Got<bool> {
        let dir = format!("{pid}/fd");
        let Some(fds) = self.list(&dir)? else {
            return Ok(None);
        };
        // The lowest descriptors only: a GPU runtime opens its devices early, and a process holding
        // a million sockets must not cost a million readlinks.
        let mut fds: Vec<u32> = fds.iter().filter_map(|f| f.parse().ok()).collect();
        fds.sort_unstable();
        fds.truncate(MAX_FDS);
        Ok(Some(fds.iter().any(|fd| {
            self.link(&format!("{dir}/{fd}")).is_some_and(|p| {
                let p = p.to_string_lossy();
                p.starts_with("/dev/nvidia") || p == "/dev/kfd"
            })
        })))
    }
}

/// ENOENT (no such file, or the process ended) and ESRCH (it ended while being read).
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    }
}

/// The fields of a `status` file that gpuaff uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub ppid: Option<u32>,
    /// The real uid.
    pub uid: Option<u32>,
    pub cpus: Option<CpuSet>,
    pub mems: Option<CpuSet>,
    /// Number of threads.
    pub threads: Option<usize>,
}

pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => s.name = value.to_string(),
            "PPid" => s.ppid = value.parse().ok(),
            "Uid" => s.uid = value.split_whitespace().next().and_then(|v| v.parse().ok()),
            "Threads" => s.threads = value.parse().ok(),
            "Cpus_allowed_list" => s.cpus = CpuSet::parse_list(value).ok(),
            "Mems_allowed_list" => s.mems = CpuSet::parse_list(value).ok(),
            _ => {}
        }
    }
    s
}

/// The name in a `stat` line: between the first `(` and the last `)`.
pub fn stat_name(text: &str) -> Option<&str> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    text.get(open + 1..close)
}

/// Field `n` (1-based, as proc(5) numbers them) of a `stat` line. The name (field 2) may hold spaces
/// and parentheses: fields after it are counted from its last `)`.
pub fn stat_field(text: &str, n: usize) -> Option<&str> {
    if n < 3 {
        return None;
    }
    let (_, rest) = text.rsplit_once(')')?;
    rest.split_whitespace().nth(n - 3)
}

/// `KEY=VALUE` entries separated by NULs; entries without `=` are skipped.
pub fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&c| c == 0)
        .filter_map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub tid: u32,
    pub name: String,
    pub cpus: Option<CpuSet>,
    pub last_cpu: Option<usize>,
}

/// Resident bytes per NUMA node, as `numa_maps` counts pages mapped by the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumaMaps {
    /// Every mapping.
    pub bytes_by_node: BTreeMap<u32, u64>,
    /// Mappings not backed by a file (heap, stacks, anonymous and pinned buffers): the memory the
    /// process itself placed. Shared libraries' pages sit wherever the page cache put them first.
    pub anon_by_node: BTreeMap<u32, u64>,
    /// The policy shown for the most mappings (`default`, `bind:0`, `prefer:1`, `interleave:0-3`...):
    /// mappings without their own policy show the process's.
    pub policy: Option<String>,
    pub mappings: usize,
    /// True when the file was longer than `NUMA_MAPS_CAP`: the sums cover the mappings read.
    pub truncated: bool,
}

impl NumaMaps {
    pub fn anon_total(&self) -> u64 {
        self.anon_by_node.values().sum()
    }
    pub fn total(&self) -> u64 {
        self.bytes_by_node.values().sum()
    }
}

pub fn parse_numa_maps(text: &str) -> NumaMaps {
    let mut m = NumaMaps::default();
    let mut policies: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(_addr), Some(policy)) = (words.next(), words.next()) else {
            continue;
        };
        m.mappings += 1;
        *policies.entry(policy).or_default() += 1;
        let mut page_kb: u64 = 4;
        let mut file = false;
        let mut pages: Vec<(u32, u64)> = Vec::new();
        for w in words {
            if let Some(v) = w.strip_prefix("kernelpagesize_kB=") {
                page_kb = v.parse().unwrap_or(4);
            } else if w.starts_with("file=") {
                file = true;
            } else if let Some((node, n)) = w.strip_prefix('N').and_then(|r| r.split_once('=')) {
                if let (Ok(node), Ok(n)) = (node.parse::<u32>(), n.parse::<u64>()) {
                    pages.push((node, n));
                }
            }
        }
        for (node, n) in pages {
            let bytes = n.saturating_mul(page_kb).saturating_mul(1024);
            *m.bytes_by_node.entry(node).or_default() += bytes;
            if !file {
                *m.anon_by_node.entry(node).or_default() += bytes;
            }
        }
    }
    m.policy = policies
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p.to_string());
    m
}

/// The words of a thread name that say which runtime likely pinned it, and the advice to give.
const THREAD_HINTS: &[(&str, &str)] = &[
    ("omp", "OpenMP (OMP_PROC_BIND/OMP_PLACES, KMP_AFFINITY or GOMP_CPU_AFFINITY pin its threads)"),
    ("nccl", "NCCL (its threads follow NCCL's own CPU affinity; NCCL_IGNORE_CPU_AFFINITY=1 leaves them to the process)"),
    ("pt_", "PyTorch (its thread pools and torch.set_num_threads / numa binding)"),
    ("torch", "PyTorch (its thread pools and torch.set_num_threads / numa binding)"),
    ("dali", "DALI (its worker threads pin themselves to the GPU's CPUs as NVML reports them)"),
    ("cuda", "the CUDA runtime"),
    ("gloo", "Gloo (PyTorch's CPU collectives)"),
    ("ucx", "UCX/MPI progress threads"),
    ("mpi", "the MPI library"),
    ("tf_", "TensorFlow's thread pools"),
    ("ray", "Ray"),
    ("mkl", "MKL (MKL_ENABLE_INSTRUCTIONS/KMP_AFFINITY)"),
];

/// Which runtime a thread name suggests moved it, when any.
pub fn thread_hint(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    THREAD_HINTS
        .iter()
        .find(|(word, _)| lower.contains(word))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    #[test]
    fn status_stat_environ_parse() {
        let st = parse_status(
            "Name:\tpt_main_thread\nUmask:\t0022\nPPid:\t42\nUid:\t1000\t1000\t1000\t1000\nThreads:\t3\nCpus_allowed:\tff\nCpus_allowed_list:\t0-3,8\nMems_allowed_list:\t0\n",
        );
        assert_eq!(st.name, "pt_main_thread");
        assert_eq!(st.ppid, Some(42));
        assert_eq!(st.uid, Some(1000));
        assert_eq!(st.threads, Some(3));
        assert_eq!(st.cpus.unwrap().to_list(), "0-3,8");
        assert_eq!(st.mems.unwrap().to_list(), "0");
        // A name with spaces and a parenthesis does not shift the fields after it.
        let stat = "77 (a) b (c) S 1 77 77 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 17 13 0 0 0 0 0";
        assert_eq!(stat_field(stat, 3), Some("S"));
        assert_eq!(stat_field(stat, 39), Some("13"));
        assert_eq!(stat_field(stat, 99), None);
        assert_eq!(stat_name(stat), Some("a) b (c"));
        assert_eq!(stat_field("garbage", 39), None);
        let env = parse_environ(b"LOCAL_RANK=1\0NOEQ\0A=b=c\0=x\0\0");
        assert_eq!(
            env,
            [
                ("LOCAL_RANK".into(), "1".into()),
                ("A".into(), "b=c".into())
            ]
        );
    }

    #[test]
    fn numa_maps_sums_pages_by_node_and_kind() {
        let m = parse_numa_maps(
            "00400000 default file=/usr/bin/python3 mapped=10 N0=10 kernelpagesize_kB=4\n\
             01000000 default heap anon=300 dirty=300 N0=100 N1=200 kernelpagesize_kB=4\n\
             7f0000000000 bind:1 anon=2 dirty=2 N1=2 kernelpagesize_kB=2048\n\
             7fff0000 default stack anon=3 dirty=3 N0=3 kernelpagesize_kB=4\n\
             garbage\n",
        );
        assert_eq!(m.mappings, 4);
        assert_eq!(m.bytes_by_node[&0], (10 + 100 + 3) * 4096);
        assert_eq!(m.anon_by_node[&0], 103 * 4096);
        assert_eq!(m.anon_by_node[&1], 200 * 4096 + 2 * 2048 * 1024);
        assert_eq!(m.policy.as_deref(), Some("default"));
        assert!(!m.truncated);
    }

    #[test]
    fn reads_a_synthetic_tree_and_caps_numa_maps() {
        let t = TestFs::new("procfs");
        t.file(
            "7/status",
            "Name:\tpython3\nPPid:\t1\nUid:\t0\t0\t0\t0\nCpus_allowed_list:\t0-1\n",
        )
        .file("7/environ", "LOCAL_RANK=0\0PATH=/bin\0")
        .file("7/cmdline", "python3\0train.py\0")
        .file("7/task/7/status", "Name:\tpython3\nCpus_allowed_list:\t0\n")
        .file(
            "7/task/7/stat",
            &format!("7 (python3) R {}", "0 ".repeat(35) + "1 0"),
        )
        .file(
            "7/task/9/status",
            "Name:\tomp_thread\nCpus_allowed_list:\t1\n",
        )
        .file("sys/kernel/numa_balancing", "1\n");
        let line = "1000 default anon=1 N1=1 kernelpagesize_kB=4\n";
        t.file("7/numa_maps", &line.repeat(NUMA_MAPS_CAP / line.len() + 10));
        let p = ProcFs::new(&t.root);
        assert_eq!(p.pids(), [7]);
        assert_eq!(p.numa_balancing(), Some(1));
        assert_eq!(p.cmdline(7), ["python3", "train.py"]);
        assert_eq!(p.environ(7).unwrap().unwrap()[0].1, "0");
        let threads = p.threads(7).unwrap().unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[0].last_cpu, Some(1));
        assert_eq!(threads[1].last_cpu, None, "no stat: unknown");
        assert_eq!(threads[1].name, "omp_thread");
        let m = p.numa_maps(7).unwrap().unwrap();
        assert!(m.truncated);
        assert_eq!(m.mappings, NUMA_MAPS_CAP / line.len());
        // Absent is absent, not an error: a process that ended.
        assert_eq!(p.threads(8).unwrap(), None);
        assert_eq!(p.holds_gpu_device(7).unwrap(), None);
        assert!(p.files_read() > 8);
    }

    #[test]
    fn hints_name_the_runtime() {
        assert!(thread_hint("omp_worker").unwrap().starts_with("OpenMP"));
        assert!(thread_hint("NCCL Progress").unwrap().starts_with("NCCL"));
        assert!(thread_hint("pt_autograd_0").unwrap().starts_with("PyTorch"));
        assert_eq!(thread_hint("python3"), None);
    }
}
