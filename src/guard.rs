//! The guard: keeps other code from moving this process's threads out of the binding.
//!
//! Runtimes that start before the binding (OpenMP builds its places in its own constructor) or that
//! reset masks later (NCCL, TensorRT-LLM, `KMP_AFFINITY`) call `sched_setaffinity`,
//! `pthread_setaffinity_np` or create threads with an affinity attribute. With a binding in force,
//! `GPU_AFFINITY_GUARD` decides what happens to such a *foreign* request for CPUs outside it:
//! - `off`: nothing; the request goes through as made;
//! - `warn`: it goes through, and one line per kind of call (the function and the CPUs asked for) says so;
//! - `clamp` (the default): the request is intersected with the binding (an empty intersection keeps the
//!   thread on the whole binding); it is reported only with `GPU_AFFINITY_VERBOSE`.
//!
//! A request inside the binding (a runtime pinning its workers to cores of the rank) always goes through
//! unchanged, and so does one made by the program's own code (its main executable: `taskset -c`,
//! `numactl`, the user's C program): the guard judges shared libraries. gpuaff's own binding calls (the constructor, `gpu_affinity_set*`) use the raw system call,
//! so they never pass through here: a call through the C ABI moves the binding.
//!
//! The interposers are lock-free and allocation-free until they report (once per kind): a fixed stack
//! buffer of `WORDS` words holds a mask. Not caught: the raw `syscall(SYS_sched_setaffinity, ...)`
//! (LLVM's libomp pins this way), statically linked runtimes, and processes run without the preload.

use crate::bind::{self, Binding};
use crate::msg;
use gpuaff_core::{CpuSet, Error, Result};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

pub const VAR: &str = "GPU_AFFINITY_GUARD";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Off,
    Warn,
    Clamp,
}

impl Guard {
    /// Chosen because a binding that any library can undo silently is not a binding; narrowing inside
    /// it stays allowed, so runtimes that pin their workers keep working (README, "The guard").
    pub const DEFAULT: Guard = Guard::Clamp;

    pub fn parse(value: Option<&str>) -> Result<Guard> {
        let Some(v) = value else {
            return Ok(Guard::DEFAULT);
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(Guard::DEFAULT),
            "off" => Ok(Guard::Off),
            "warn" => Ok(Guard::Warn),
            "clamp" => Ok(Guard::Clamp),
            _ => Err(Error::bad_value(VAR, v, "off, warn, clamp")),
        }
    }

    /// The guard from the environment (checked before anything is bound).
    pub fn from_env() -> Result<Guard> {
        Guard::parse(crate::preload::env_lookup(VAR).as_deref())
    }

    pub fn name(self) -> &'static str {
        match self {
            Guard::Off => "off",
            Guard::Warn => "warn",
            Guard::Clamp => "clamp",
        }
    }
}

/// The widest mask the guard judges: 8,192 CPUs (1 KiB on the stack). A binding wider than that is
/// left unguarded.
pub const WORDS: usize = 128;

/// A CPU mask on the stack; `n` words are meaningful.
pub struct Mask {
    pub w: [u64; WORDS],
    pub n: usize,
}

impl Mask {
    fn zero() -> Mask {
        Mask {
            w: [0; WORDS],
            n: WORDS,
        }
    }
    pub fn bytes(&self) -> usize {
        self.n * 8
    }
    pub fn as_ptr(&self) -> *const libc::cpu_set_t {
        self.w.as_ptr().cast()
    }
    fn is_empty(&self) -> bool {
        self.w.iter().take(self.n).all(|&w| w == 0)
    }
    fn inside(&self, want: &[u64]) -> bool {
        self.w
            .iter()
            .take(self.n)
            .enumerate()
            .all(|(i, w)| w & !want.get(i).copied().unwrap_or(0) == 0)
    }
    fn to_list(&self) -> String {
        CpuSet::from_words(self.w.get(..self.n).unwrap_or_default()).to_list()
    }
}

/// The kinds of foreign call, each reported at most once.
#[derive(Clone, Copy)]
pub enum Caller {
    SchedSetaffinity,
    PthreadSetaffinity,
    CreateAttr,
}

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Caller::SchedSetaffinity => "sched_setaffinity",
            Caller::PthreadSetaffinity => "pthread_setaffinity_np",
            Caller::CreateAttr => "a pthread_create affinity attribute",
        }
    }
}

static REPORTED: [AtomicBool; 3] = [
    AtomicBool::new(false),
    AtomicBool::new(false),
    AtomicBool::new(false),
];

fn report(caller: Caller, b: &Binding, asked: &Mask, clamped: Option<&Mask>) {
    let quiet = b.guard == Guard::Clamp && !b.verbose;
    if quiet || REPORTED[caller as usize].swap(true, Ordering::Relaxed) {
        return;
    }
    let what = match clamped {
        Some(c) => format!("clamped to CPUs {}", c.to_list()),
        None => "allowed".to_string(),
    };
    msg::line(&format!(
        "{VAR}={}: {} asked for CPUs {}, outside the binding (CPUs {}); {what} (reported once)",
        b.guard.name(),
        caller.name(),
        asked.to_list(),
        b.cpus.to_list(),
    ));
}

/// The load address of the object holding `addr`, or null.
fn object_of(addr: *const c_void) -> *mut c_void {
    // SAFETY: Dl_info is plain data; dladdr only reads the loader's tables.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: any address may be asked about; 0 means "in no object".
    if unsafe { libc::dladdr(addr, &mut info) } == 0 {
        return std::ptr::null_mut();
    }
    info.dli_fbase
}

/// True when the request comes from the program itself (its main executable: `taskset`, `numactl`,
/// the user's own code) rather than from a shared library: the program's own calls are the user's,
/// as calls through the C ABI are, and go through unchanged. Only asked for requests outside the
/// binding (it unwinds a few frames of our own to find the first caller outside this library).
fn from_main_program() -> bool {
    let mut frames = [std::ptr::null_mut::<c_void>(); 24];
    // SAFETY: backtrace writes at most frames.len() return addresses.
    let n = unsafe { libc::backtrace(frames.as_mut_ptr(), frames.len() as c_int) };
    let own = object_of(from_main_program as *const c_void);
    // SAFETY: getauxval only reads the auxiliary vector; AT_PHDR lies inside the main executable.
    let main = object_of(unsafe { libc::getauxval(libc::AT_PHDR) } as *const c_void);
    let caller = frames
        .iter()
        .take(usize::try_from(n).unwrap_or(0))
        .map(|&f| object_of(f))
        .find(|&o| o != own);
    !main.is_null() && caller == Some(main)
}

/// The binding's words when a guard applies; None when there is nothing to guard.
fn guarded() -> Option<(&'static Binding, &'static [u64])> {
    let b = bind::active()?;
    let want = b.words();
    (b.guard != Guard::Off && !want.is_empty() && want.len() <= WORDS).then_some((b, want))
}

/// Judges a foreign request read from `mask` (`size` bytes): None to let it through unchanged,
/// Some(mask) to use instead. Allocation-free unless it reports.
///
/// # Safety
/// `mask` is NULL or points to `size` readable bytes.
pub unsafe fn judge(caller: Caller, size: usize, mask: *const libc::cpu_set_t) -> Option<Mask> {
    let (b, want) = guarded()?;
    if mask.is_null() {
        return None;
    }
    let mut asked = Mask::zero();
    let take = size.min(WORDS * 8);
    // Only the words the caller gave are looked at (16 for a glibc cpu_set_t).
    asked.n = take.div_ceil(8).max(1);
    // SAFETY: the caller's mask holds `size` >= `take` bytes; our buffer holds WORDS*8 >= `take`.
    unsafe {
        std::ptr::copy_nonoverlapping(mask.cast::<u8>(), asked.w.as_mut_ptr().cast::<u8>(), take)
    };
    // CPUs past our buffer are past the binding too.
    let beyond = size > take && {
        // SAFETY: bytes take..size of the caller's mask are readable.
        let rest = unsafe { std::slice::from_raw_parts(mask.cast::<u8>().add(take), size - take) };
        rest.iter().any(|&x| x != 0)
    };
    if !beyond && (asked.is_empty() || asked.inside(want)) {
        // Inside the binding (or empty, which the kernel refuses on its own).
        return None;
    }
    if from_main_program() {
        return None;
    }
    decide(caller, b, want, asked)
}

fn decide(caller: Caller, b: &Binding, want: &[u64], asked: Mask) -> Option<Mask> {
    if b.guard != Guard::Clamp {
        report(caller, b, &asked, None);
        return None;
    }
    let mut out = Mask::zero();
    out.n = want.len();
    for (o, (a, w)) in out.w.iter_mut().zip(asked.w.iter().zip(want)) {
        *o = a & w;
    }
    if out.is_empty() {
        for (o, w) in out.w.iter_mut().zip(want) {
            *o = *w;
        }
    }
    report(caller, b, &asked, Some(&out));
    Some(out)
}

/// The affinity an attribute carries, None when it carries none (glibc reports all CPUs then).
///
/// # Safety
/// `attr` points to an initialised `pthread_attr_t`.
unsafe fn attr_mask(attr: *const libc::pthread_attr_t) -> Option<Mask> {
    let mut m = Mask::zero();
    // SAFETY: glibc writes at most WORDS*8 bytes into our buffer.
    let rc = unsafe { libc::pthread_attr_getaffinity_np(attr, m.bytes(), m.w.as_mut_ptr().cast()) };
    if rc != 0 || m.w.iter().all(|&w| w == u64::MAX) {
        return None;
    }
    Some(m)
}

/// At `pthread_create` with an affinity attribute: true when the new thread must clamp itself (it
/// starts with the attribute's mask, then narrows it before the user's routine runs).
///
/// # Safety
/// `attr` points to an initialised `pthread_attr_t`.
pub unsafe fn attr_needs_clamp(attr: *const libc::pthread_attr_t) -> bool {
    let Some((b, want)) = guarded() else {
        return false;
    };
    // SAFETY: as this function's contract.
    let Some(asked) = (unsafe { attr_mask(attr) }) else {
        return false;
    };
    if asked.is_empty() || asked.inside(want) || from_main_program() {
        return false;
    }
    decide(Caller::CreateAttr, b, want, asked).is_some()
}

/// In a new thread created with a foreign attribute: narrows its own mask into the binding.
pub fn clamp_self(b: &Binding) {
    let want = b.words();
    if want.is_empty() || want.len() > WORDS {
        return;
    }
    let mut cur = Mask::zero();
    // SAFETY: the kernel writes at most WORDS*8 bytes into our buffer.
    let rc = unsafe { libc::sched_getaffinity(0, cur.bytes(), cur.w.as_mut_ptr().cast()) };
    if rc != 0 || cur.inside(want) {
        return;
    }
    let mut out = Mask::zero();
    out.n = want.len();
    for (o, (c, w)) in out.w.iter_mut().zip(cur.w.iter().zip(want)) {
        *o = c & w;
    }
    if out.is_empty() {
        for (o, w) in out.w.iter_mut().zip(want) {
            *o = *w;
        }
    }
    // SAFETY: the kernel reads out.n words from our buffer.
    unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, out.bytes(), out.w.as_ptr()) };
}

/// In a forked child (a `pthread_atfork` handler, so async-signal-safe: two system calls): a child
/// forked by a thread that a runtime pinned inside the binding (LLVM's libomp pins the thread that
/// forks DataLoader workers to one core) starts on the whole binding, as a new process of the rank.
/// Only under `clamp`; a mask outside the binding (someone chose it under `off` or `warn`) is kept.
pub extern "C" fn after_fork_child() {
    let Some((b, want)) = guarded() else {
        return;
    };
    if b.guard != Guard::Clamp {
        return;
    }
    let mut cur = Mask::zero();
    // SAFETY: the kernel writes at most WORDS*8 bytes into our buffer.
    let rc = unsafe { libc::sched_getaffinity(0, cur.bytes(), cur.w.as_mut_ptr().cast()) };
    let same = cur
        .w
        .iter()
        .enumerate()
        .all(|(i, w)| *w == want.get(i).copied().unwrap_or(0));
    if rc != 0 || same || cur.is_empty() || !cur.inside(want) {
        return;
    }
    // SAFETY: the kernel reads want.len() words from the binding's own slice.
    unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            std::mem::size_of_val(want),
            want.as_ptr(),
        )
    };
}

static ATFORK: AtomicBool = AtomicBool::new(false);

/// Registers `after_fork_child` once (when a binding is first published).
pub fn register_atfork() {
    if !ATFORK.swap(true, Ordering::Relaxed) {
        // SAFETY: registers a handler that stays valid: the library is never unloaded while bound
        // (glibc drops a dlclosed object's handlers).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    }
}

/// True when `pid` (a thread id for sched_setaffinity) is a thread of this process.
fn is_own_thread(pid: libc::pid_t) -> bool {
    if pid == 0 {
        return true;
    }
    // SAFETY: getpid cannot fail; tgkill with signal 0 only checks that `pid` is in our thread group.
    unsafe {
        let me = libc::getpid();
        pid == me || libc::syscall(libc::SYS_tgkill, me, pid, 0) == 0
    }
}

/// A libc function found with dlsym(RTLD_NEXT) on first use; None when it is not there.
pub fn next(slot: &AtomicPtr<c_void>, name: &std::ffi::CStr) -> Option<*mut c_void> {
    let mut p = slot.load(Ordering::Relaxed);
    if p.is_null() {
        // SAFETY: dlsym with a NUL-terminated name.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
        if p.is_null() {
            return None;
        }
        slot.store(p, Ordering::Relaxed);
    }
    Some(p)
}

type SchedSetFn = unsafe extern "C" fn(libc::pid_t, usize, *const libc::cpu_set_t) -> c_int;
type PthreadSetFn = unsafe extern "C" fn(libc::pthread_t, usize, *const libc::cpu_set_t) -> c_int;

static REAL_SCHED: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static REAL_PTHREAD: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// # Safety
/// As `sched_setaffinity(2)`.
unsafe fn real_sched_setaffinity(
    pid: libc::pid_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    match next(&REAL_SCHED, c"sched_setaffinity") {
        Some(p) => {
            // SAFETY: the symbol is libc's sched_setaffinity, whose C signature SchedSetFn spells.
            let f = unsafe { std::mem::transmute::<*mut c_void, SchedSetFn>(p) };
            // SAFETY: the caller's arguments, passed on.
            unsafe { f(pid, size, mask) }
        }
        // SAFETY: the system call reads `size` bytes of `mask`, as the caller promised.
        None => unsafe { libc::syscall(libc::SYS_sched_setaffinity, pid, size, mask) as c_int },
    }
}

/// # Safety
/// As `pthread_setaffinity_np(3)`.
unsafe fn real_pthread_setaffinity(
    thread: libc::pthread_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    match next(&REAL_PTHREAD, c"pthread_setaffinity_np") {
        Some(p) => {
            // SAFETY: libc's pthread_setaffinity_np, whose C signature PthreadSetFn spells.
            let f = unsafe { std::mem::transmute::<*mut c_void, PthreadSetFn>(p) };
            // SAFETY: the caller's arguments, passed on.
            unsafe { f(thread, size, mask) }
        }
        None => libc::ENOSYS,
    }
}

/// # Safety
/// As `sched_setaffinity(2)`.
pub unsafe fn sched_setaffinity_guarded(
    pid: libc::pid_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    let verdict = std::panic::catch_unwind(|| {
        if is_own_thread(pid) {
            // SAFETY: the caller's mask holds `size` bytes.
            unsafe { judge(Caller::SchedSetaffinity, size, mask) }
        } else {
            None
        }
    })
    .unwrap_or(None);
    match verdict {
        // SAFETY: the caller's arguments.
        None => unsafe { real_sched_setaffinity(pid, size, mask) },
        // SAFETY: our mask holds m.bytes() bytes.
        Some(m) => unsafe { real_sched_setaffinity(pid, m.bytes(), m.as_ptr()) },
    }
}

/// # Safety
/// As `pthread_setaffinity_np(3)`.
pub unsafe fn pthread_setaffinity_guarded(
    thread: libc::pthread_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    // SAFETY: the caller's mask holds `size` bytes.
    let verdict =
        std::panic::catch_unwind(|| unsafe { judge(Caller::PthreadSetaffinity, size, mask) })
            .unwrap_or(None);
    match verdict {
        // SAFETY: the caller's arguments.
        None => unsafe { real_pthread_setaffinity(thread, size, mask) },
        // SAFETY: our mask holds m.bytes() bytes.
        Some(m) => unsafe { real_pthread_setaffinity(thread, m.bytes(), m.as_ptr()) },
    }
}

/// The interposed `sched_setaffinity`: a foreign request is judged by the guard (module docs).
///
/// # Safety
/// Same contract as `sched_setaffinity(2)`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn sched_setaffinity(
    pid: libc::pid_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    // SAFETY: the caller's contract is sched_setaffinity's.
    unsafe { sched_setaffinity_guarded(pid, size, mask) }
}

/// The interposed `pthread_setaffinity_np`: a foreign request is judged by the guard (module docs).
///
/// # Safety
/// Same contract as `pthread_setaffinity_np(3)`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn pthread_setaffinity_np(
    thread: libc::pthread_t,
    size: usize,
    mask: *const libc::cpu_set_t,
) -> c_int {
    // SAFETY: the caller's contract is pthread_setaffinity_np's.
    unsafe { pthread_setaffinity_guarded(thread, size, mask) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_variable() {
        assert_eq!(Guard::parse(None), Ok(Guard::Clamp));
        assert_eq!(Guard::parse(Some("")), Ok(Guard::Clamp));
        assert_eq!(Guard::parse(Some(" WARN ")), Ok(Guard::Warn));
        assert_eq!(Guard::parse(Some("off")), Ok(Guard::Off));
        let e = Guard::parse(Some("on")).unwrap_err().to_string();
        assert!(e.contains(VAR) && e.contains("clamp"), "{e}");
    }

    #[test]
    fn masks_inside_and_clamped() {
        let mut m = Mask::zero();
        m.w[0] = 0b0110;
        assert!(m.inside(&[0b1110]));
        assert!(!m.inside(&[0b0100]));
        m.w[1] = 1;
        assert!(!m.inside(&[0b1110]), "a bit in a word the binding lacks");
        assert_eq!(m.to_list(), "1-2,64");
    }
}
