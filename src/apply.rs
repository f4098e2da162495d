//! The only code that changes the process: CPU affinity of every thread and the memory policy.
//! Everything here is a thin, checked wrapper over a system call; deciding *what* to bind is the
//! planner's job (gpuaff_core), deciding *whether* is `bind`'s.

use crate::msg::Warnings;
use gpuaff_core::{CpuSet, Error, MemBind, Result};
use std::ffi::CStr;

/// How many times /proc/self/task is read while new threads keep appearing or scans miss some.
const MAX_SCANS: usize = 64;

pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

use gpuaff_core::error::last_errno as errno;

/// The text of an errno value, e.g. "Invalid argument".
pub fn os_text(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string (static or thread-local).
    let p = unsafe { libc::strerror(errno) };
    if p.is_null() {
        return format!("errno {errno}");
    }
    // SAFETY: non-null, NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A thread's CPU mask (`sched_getaffinity`); tid 0 is the calling thread. Err is the errno.
pub fn get_affinity(tid: libc::pid_t) -> std::result::Result<CpuSet, i32> {
    gpuaff_core::sysfs::thread_mask(tid).map_err(|e| e.errno())
}

/// Sets a thread's CPU mask; tid 0 is the calling thread. Err is the errno.
pub fn set_affinity(tid: libc::pid_t, cpus: &CpuSet) -> std::result::Result<(), i32> {
    set_affinity_words(tid, &cpus.words())
}

/// `set_affinity` from raw words (bit i of word w is CPU 64*w+i). Allocation-free (the
/// pthread_create hook calls it with the binding's words).
pub fn set_affinity_words(tid: libc::pid_t, words: &[u64]) -> std::result::Result<(), i32> {
    if words.is_empty() {
        return Err(libc::EINVAL);
    }
    // The raw system call: libc's sched_setaffinity is the guard's interposer in this library, and
    // gpuaff's own binding is authoritative.
    // SAFETY: the kernel reads words.len()*8 bytes from a valid slice.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            tid,
            std::mem::size_of_val(words),
            words.as_ptr(),
        )
    };
    if n == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The thread ids of this process, from /proc/self/task.
pub fn list_threads() -> std::result::Result<Vec<libc::pid_t>, std::io::Error> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let entry = entry?;
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Whether the kernel counts `listed` threads in this process now: a scan of /proc/self/task that
/// lists fewer than it counts skipped one. The count is the task directory's link count less two
/// (Linux adds the number of threads to it; one `stat`, no file to read); where that disagrees, the
/// `Threads:` line of /proc/self/status confirms. Unreadable counts vouch for the scan, as before
/// this check existed.
fn kernel_counts(listed: usize) -> bool {
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata("/proc/self/task").map(|m| m.nlink());
    if links.is_ok_and(|n| n == listed as u64 + 2) {
        return true;
    }
    let status = gpuaff_core::procfs::ProcFs::new("/proc").status("self");
    !matches!(status, Ok(Some(s)) if s.threads.is_some_and(|n| n != listed))
}

/// How re-scanning the threads ended.
#[derive(Debug)]
enum Scans {
    /// A scan found no new thread and the kernel counted as many threads as it listed.
    Settled,
    /// /proc/self/task could not be listed.
    Unlisted(std::io::Error),
    /// Threads were still appearing, or scans still missing some, after `MAX_SCANS` scans.
    Unsettled,
}

/// Calls `visit` once for every thread `scan` lists but `me`, scanning again until a scan lists no
/// new thread and `counted` agrees with its length. "No new thread" alone is not
/// enough: a thread ending while the kernel walks the list can make one scan skip a live thread
/// (the walk goes by position), and the next scan may skip it again.
fn scan_until_settled(
    me: libc::pid_t,
    mut scan: impl FnMut() -> std::io::Result<Vec<libc::pid_t>>,
    mut counted: impl FnMut(usize) -> bool,
    mut visit: impl FnMut(libc::pid_t),
) -> Scans {
    let mut seen = vec![me];
    for _ in 0..MAX_SCANS {
        let tids = match scan() {
            Ok(t) => t,
            Err(e) => return Scans::Unlisted(e),
        };
        let listed = tids.len();
        let mut fresh = false;
        for tid in tids {
            if !seen.contains(&tid) {
                fresh = true;
                seen.push(tid);
                visit(tid);
            }
        }
        if !fresh && counted(listed) {
            return Scans::Settled;
        }
    }
    Scans::Unsettled
}

/// What binding the threads did.
#[derive(Debug, Default)]
pub struct ThreadReport {
    /// Threads now bound (the calling thread first).
    pub bound: Vec<libc::pid_t>,
    /// Threads left alone because someone else gave them their own mask.
    pub left_alone: Vec<(libc::pid_t, CpuSet)>,
}

/// Binds the calling thread, then `publish` runs (so threads created from now on start bound), then
/// every other thread of the process, re-scanning /proc/self/task until a scan finds no new thread
/// and lists as many as the kernel counts.
/// A thread whose mask is neither `target` nor one of `ours` (the process's original mask and
/// earlier gpuaff bindings) was narrowed by someone else and is left alone. Every bound thread's mask
/// is read back; differences become warnings. Fails, having changed nothing, only when the calling
/// thread cannot be bound.
pub fn bind_threads(
    target: &CpuSet,
    ours: &[CpuSet],
    publish: impl FnOnce(),
    warnings: &mut Warnings,
) -> Result<ThreadReport> {
    let me = gettid();
    set_affinity(0, target).map_err(|e| {
        Error::os(
            e,
            format!(
                "sched_setaffinity(CPUs {target}) failed: {} (is a CPU outside the cgroup cpuset?)",
                os_text(e)
            ),
        )
    })?;
    publish();
    let mut report = ThreadReport {
        bound: vec![me],
        left_alone: Vec::new(),
    };
    let scans = scan_until_settled(me, list_threads, kernel_counts, |tid| {
        let mask = match get_affinity(tid) {
            Ok(m) => m,
            Err(libc::ESRCH) => return, // exited meanwhile
            Err(e) => {
                warnings.push(format!(
                    "cannot read the CPU mask of thread {tid}: {}",
                    os_text(e)
                ));
                return;
            }
        };
        if mask != *target && !ours.contains(&mask) {
            report.left_alone.push((tid, mask));
            return;
        }
        match set_affinity(tid, target) {
            Ok(()) => report.bound.push(tid),
            Err(libc::ESRCH) => {}
            Err(e) => warnings.push(format!(
                "cannot bind thread {tid} to CPUs {target}: {}",
                os_text(e)
            )),
        }
    });
    match scans {
        Scans::Settled => {}
        Scans::Unlisted(e) => warnings.push(format!(
            "cannot list /proc/self/task ({e}); only the calling thread and threads created from now on are bound"
        )),
        Scans::Unsettled => warnings.push(format!(
            "threads kept starting or ending through {MAX_SCANS} scans of /proc/self/task; threads created from now on are bound, an earlier one may not be"
        )),
    }
    for &tid in &report.bound {
        match get_affinity(tid) {
            Ok(m) if m == *target => {}
            Ok(m) => warnings.push(format!(
                "thread {tid} has CPUs {m} after binding to CPUs {target} (narrowed by a cgroup cpuset?)"
            )),
            Err(libc::ESRCH) => {}
            Err(e) => warnings.push(format!(
                "cannot read back the CPU mask of thread {tid}: {}",
                os_text(e)
            )),
        }
    }
    Ok(report)
}

const MPOL_DEFAULT: libc::c_long = 0;
const MPOL_PREFERRED: libc::c_long = 1;
const MPOL_BIND: libc::c_long = 2;
const MPOL_INTERLEAVE: libc::c_long = 3;

/// `set_mempolicy` for the calling thread (threads inherit it when they are created). `None` restores
/// the default policy. Err is the errno.
pub fn set_mempolicy(policy: MemBind, nodes: &CpuSet) -> std::result::Result<(), i32> {
    set_mempolicy_words(policy, &nodes.words())
}

/// `set_mempolicy` from raw node words. Allocation-free (the pthread_create hook calls it with the
/// binding's words).
pub fn set_mempolicy_words(policy: MemBind, words: &[u64]) -> std::result::Result<(), i32> {
    let mode = match policy {
        MemBind::None => MPOL_DEFAULT,
        MemBind::Preferred => MPOL_PREFERRED, // the kernel takes the first node of the mask
        MemBind::Bind => MPOL_BIND,
        MemBind::Interleave => MPOL_INTERLEAVE,
    };
    let (ptr, maxnode) = if policy == MemBind::None || words.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode-1 bits (a historical off-by-one that libnuma also pads for).
        (words.as_ptr(), words.len() * 64 + 1)
    };
    // SAFETY: the kernel reads (maxnode-1) bits from a valid slice, or nothing from NULL.
    let n = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if n == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Sets the calling thread's memory policy, degrading bind/interleave → preferred → none when the
/// kernel refuses (EPERM under seccomp, EINVAL when cpuset.mems excludes the nodes): one warning for
/// the whole degradation, naming each refusal. Returns the policy in force.
pub fn apply_membind(want: MemBind, nodes: &CpuSet, warnings: &mut Warnings) -> MemBind {
    if want == MemBind::None {
        return MemBind::None;
    }
    if nodes.is_empty() {
        warnings.push(format!(
            "GPU_AFFINITY_MEMBIND={}: the plan names no NUMA node; the memory policy is left alone",
            want.name()
        ));
        return MemBind::None;
    }
    let mut policy = want;
    let mut refused = Vec::new();
    while policy != MemBind::None {
        match set_mempolicy(policy, nodes) {
            Ok(()) => break,
            Err(e) => {
                refused.push(format!("{} ({})", policy.name(), os_text(e)));
                policy = match policy {
                    MemBind::Bind | MemBind::Interleave => MemBind::Preferred,
                    _ => MemBind::None,
                };
            }
        }
    }
    if !refused.is_empty() {
        warnings.push(format!(
            "GPU_AFFINITY_MEMBIND={}: set_mempolicy on nodes {nodes} refused: {}; using {}",
            want.name(),
            refused.join(", then "),
            policy.name()
        ));
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_mask_and_threads() {
        let mask = get_affinity(0).unwrap();
        assert!(!mask.is_empty());
        assert_eq!(get_affinity(gettid()).unwrap(), mask);
        // One scan of /proc/self/task can skip a live thread when another exits meanwhile (the
        // kernel walks the threads by position): the other tests' threads end while this runs,
        // and 1 run in 11 missed this one. `bind_threads` re-scans for this reason.
        let me = gettid();
        assert!((0..5).any(|_| list_threads().unwrap().contains(&me)));
    }

    /// Runs `scan_until_settled` over scripted scans and counts: the threads visited, the scans
    /// made and the outcome.
    fn scripted(scans: &[&[libc::pid_t]], counts: &[usize]) -> (Vec<libc::pid_t>, usize, Scans) {
        let mut visited = Vec::new();
        let (mut s, mut c) = (0, 0);
        let end = scan_until_settled(
            1,
            || {
                s += 1;
                Ok(scans[(s - 1).min(scans.len() - 1)].to_vec())
            },
            |listed| {
                c += 1;
                counts[(c - 1).min(counts.len() - 1)] == listed
            },
            |tid| visited.push(tid),
        );
        (visited, s, end)
    }

    #[test]
    fn a_scan_that_skipped_a_live_thread_is_not_trusted() {
        // Thread 1 (the caller) alone: one scan, the count agrees.
        let (visited, scans, end) = scripted(&[&[1]], &[1]);
        assert_eq!((visited, scans), (vec![], 1));
        assert!(matches!(end, Scans::Settled));
        // Threads 2 and 3 found, then a scan with nothing new that agrees with the count.
        let (visited, scans, end) = scripted(&[&[1, 2, 3], &[1, 2, 3]], &[3]);
        assert_eq!((visited, scans), (vec![2, 3], 2));
        assert!(matches!(end, Scans::Settled));
        // The first scan skipped live thread 4 (another thread was ending): it found nothing new,
        // but lists one thread fewer than the kernel counts, so the scan is repeated and 4 is found.
        let (visited, scans, end) = scripted(&[&[1], &[1, 4], &[1, 4]], &[2]);
        assert_eq!((visited, scans), (vec![4], 3));
        assert!(matches!(end, Scans::Settled));
        // A count that never agrees ends after MAX_SCANS, saying so.
        let (visited, scans, end) = scripted(&[&[1, 2]], &[5]);
        assert_eq!((visited, scans), (vec![2], MAX_SCANS));
        assert!(matches!(end, Scans::Unsettled));
    }

    #[test]
    fn the_kernel_counts_this_processs_threads() {
        // Both counts this library reads agree with a scan of a quiet process: a test binary's other
        // tests start and end threads, so a few tries are allowed.
        assert!((0..20).any(|_| kernel_counts(list_threads().unwrap().len())));
        assert!(!kernel_counts(list_threads().unwrap().len() + 1000));
    }

    #[test]
    fn setting_a_thread_to_its_own_mask_is_accepted() {
        // Re-applying the current mask changes nothing but exercises the call and its buffer size.
        let mask = get_affinity(0).unwrap();
        set_affinity(0, &mask).unwrap();
        assert_eq!(get_affinity(0).unwrap(), mask);
        assert_eq!(set_affinity(0, &CpuSet::new()), Err(libc::EINVAL));
    }

    #[test]
    fn default_memory_policy_can_be_restored() {
        assert_eq!(set_mempolicy(MemBind::None, &CpuSet::new()), Ok(()));
        let mut w = Warnings::default();
        assert_eq!(
            apply_membind(MemBind::Bind, &CpuSet::new(), &mut w),
            MemBind::None
        );
        assert_eq!(w.as_slice().len(), 1);
    }
}
