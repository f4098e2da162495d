//! The preload side: the load-time constructor and the `pthread_create` interposer.
//!
//! The constructor costs next to nothing when the process has no local rank: it checks secure-execution
//! mode and a handful of `getenv` calls (no allocation, no file read) and returns.

use crate::bind::{self, Effect, INHERITED_VAR};
use crate::msg;
use gpuaff_core::{config, ErrorKind, Request, Threads};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

/// The exit status of a strict-mode failure.
pub const STRICT_EXIT: c_int = 66;

fn secure_execution() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether any variable that can carry a local rank is set: the core's own list, so the constructor
/// and `config::local_rank` cannot disagree. `var_os` converts short names on the stack; nothing is
/// allocated unless a variable is set.
fn any_rank_var() -> bool {
    config::LOCAL_RANK_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The environment as the core parses it; non-UTF-8 values arrive lossily so that the parser names them.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// GPU_AFFINITY_STRICT read directly, for failures that happen before the Request exists; parsed
/// as `Request::from_env` parses it (a malformed value is not strict).
fn strict_from_env() -> bool {
    env_lookup("GPU_AFFINITY_STRICT")
        .is_some_and(|v| config::parse_bool("GPU_AFFINITY_STRICT", &v) == Ok(true))
}

/// Debug builds only: the place GPUAFF_TEST_PANIC names ("load": the constructor, "thread": binding
/// a new thread in the hook), where `test_panic` panics so that tests/unwind.rs can check that a
/// panic in the real object unwinds to its `catch_unwind` (the object carries its own static
/// unwinder; see build.rs). Read once by the constructor: the hook's threads read an atomic, not the
/// environment (whose lock a fork could leave held).
static TEST_PANIC_AT: AtomicU8 = AtomicU8::new(0);
const TEST_PANIC_PLACES: [&str; 2] = ["load", "thread"];

fn read_test_panic() {
    if cfg!(debug_assertions) {
        let at = env_lookup("GPUAFF_TEST_PANIC")
            .and_then(|v| TEST_PANIC_PLACES.iter().position(|p| *p == v))
            .map_or(0, |i| i as u8 + 1);
        TEST_PANIC_AT.store(at, Ordering::Relaxed);
    }
}

fn test_panic(at: &str) {
    let asked = TEST_PANIC_AT.load(Ordering::Relaxed) as usize;
    if cfg!(debug_assertions) && asked > 0 && TEST_PANIC_PLACES.get(asked - 1) == Some(&at) {
        panic!("GPUAFF_TEST_PANIC={at}");
    }
}

static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// Our copy of std's panic hook prints one `gpuaff:` line instead of std's multi-line report (the host
/// program, even a Rust one, has its own std and its own hook).
pub fn quiet_panics() {
    // Unit tests keep the test harness's hook.
    if cfg!(test) {
        return;
    }
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            msg::line(&format!(
                "internal error (a bug in gpuaff): {info}; nothing more is bound"
            ));
        }));
    });
}

fn fail(e: &gpuaff_core::Error, strict: bool) {
    if strict {
        msg::line(&format!(
            "{e} (GPU_AFFINITY_STRICT=1: exiting with status {STRICT_EXIT})"
        ));
        // SAFETY: ends the process in the constructor, before main; nothing of the host's to flush.
        unsafe { libc::_exit(STRICT_EXIT) };
    }
    msg::line(&format!("{e}; the process is left as it was"));
}

/// The constructor's work: with a local rank, plan and bind; otherwise return at once. Only a
/// preloaded primary copy binds (see `loading`).
pub fn on_load() {
    if secure_execution() || !any_rank_var() || !crate::loading::constructor_binds() {
        return;
    }
    quiet_panics();
    read_test_panic();
    test_panic("load");
    match config::local_rank(&env_lookup) {
        Ok(Some(_)) => {}
        Ok(None) => return,
        Err(e) => return fail(&e, strict_from_env()),
    }
    let req = match Request::from_env(&env_lookup) {
        Ok(r) => r,
        Err(e) => return fail(&e, strict_from_env()),
    };
    if req.rank.is_none() {
        return;
    }
    let omp = match crate::omp::enabled() {
        Ok(on) => on,
        Err(e) => return fail(&e, req.strict),
    };
    match bind::bind(&req, Effect::Apply) {
        Ok(outcome) => {
            // Read before any setenv: a host that brings its own setenv/getenv (bash) answers
            // getenv from its own table once setenv has created it.
            let parent_report = env_lookup(REPORTED_VAR);
            if outcome.applied {
                record_inherited(&outcome.original, &outcome.plan.cpus);
                if omp {
                    let set = crate::omp::set_thread_counts(&req.fsroot, &outcome.plan.cpus);
                    if req.verbose && !set.is_empty() {
                        msg::line(&format!("{}=1: set {}", crate::omp::VAR, set.join(" ")));
                    }
                }
            }
            // Nothing to print: no report to compare (formatting it is a visible part of a
            // plan handed down).
            if !req.verbose && outcome.warnings.is_empty() {
                return;
            }
            // Once per binding: a child whose binding (and verbosity) equals what its parent already
            // reported stays quiet; a new binding or another rank prints.
            let report = reported_key(&outcome, &req);
            if parent_report.as_deref() == Some(report.as_str()) {
                return;
            }
            outcome.warnings.print();
            if req.verbose {
                for n in &outcome.notes {
                    msg::line(n);
                }
                msg::line(&bind::verbose_line(
                    &outcome,
                    req.plan.mode,
                    std::process::id(),
                ));
            }
            if req.verbose || !outcome.warnings.is_empty() {
                set_env(REPORTED_VAR, &report);
            }
        }
        // A CPU-only machine or process is not a problem to report: stay quiet unless asked.
        Err(e) if e.kind() == ErrorKind::NoGpu && !req.strict => {
            if req.verbose {
                msg::line(&format!("{e}; nothing to bind"));
            }
        }
        Err(e) => fail(&e, req.strict),
    }
}

/// Internal: what this process reported about its binding (see `reported_key`), for its children.
pub const REPORTED_VAR: &str = "GPU_AFFINITY_REPORTED";

/// The verbose line without its pid, and whether it was printed: equal keys mean a child would print
/// exactly what its parent already printed.
fn reported_key(outcome: &bind::Outcome, req: &Request) -> String {
    let line = bind::verbose_line(outcome, req.plan.mode, 0);
    let line = line.strip_suffix(" (pid 0)").unwrap_or(&line);
    format!("{}{line}", if req.verbose { "v:" } else { "w:" })
}

/// Records the original mask and the binding for children (see `bind`'s module documentation).
fn record_inherited(original: &gpuaff_core::CpuSet, bound: &gpuaff_core::CpuSet) {
    set_env(
        INHERITED_VAR,
        &format!("{}/{}", original.to_list(), bound.to_list()),
    );
}

/// The constructor runs before main, so no other thread reads the environment concurrently.
fn set_env(name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (std::ffi::CString::new(name), std::ffi::CString::new(value)) {
        // SAFETY: valid C strings; single-threaded at this point.
        unsafe { libc::setenv(name.as_ptr(), value.as_ptr(), 1) };
    }
}

/// Whether the load-time work has run (or is running): it runs once, at the first of our
/// constructor and an early `pthread_getaffinity_np`.
static LOADED: AtomicBool = AtomicBool::new(false);

fn load_once() {
    if LOADED.swap(true, Ordering::AcqRel) {
        return;
    }
    // The panic hook has already printed the one line (a bug: the planning code reports errors as
    // values, and apply's system calls cannot panic).
    if std::panic::catch_unwind(on_load).is_err() && strict_from_env() {
        // SAFETY: before main; nothing of the host's to flush.
        unsafe { libc::_exit(STRICT_EXIT) };
    }
}

#[cfg(not(test))]
#[ctor::ctor(unsafe)]
fn gpuaff_load() {
    load_once();
}

type GetAffinityFn = unsafe extern "C" fn(libc::pthread_t, usize, *mut libc::cpu_set_t) -> c_int;
static REAL_GETAFFINITY: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// The interposed `pthread_getaffinity_np`. A library whose constructor runs before ours (the loader
/// runs a preloaded library's constructor after those of the program's own libraries) and reads the
/// mask to build its thread places (libgomp does) first triggers our load-time binding, so it sees the
/// bound mask. Afterwards it only forwards.
///
/// # Safety
/// Same contract as `pthread_getaffinity_np(3)`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn pthread_getaffinity_np(
    thread: libc::pthread_t,
    size: usize,
    mask: *mut libc::cpu_set_t,
) -> c_int {
    if !LOADED.load(Ordering::Relaxed) {
        load_once();
    }
    match crate::guard::next(&REAL_GETAFFINITY, c"pthread_getaffinity_np") {
        Some(p) => {
            // SAFETY: libc's pthread_getaffinity_np, whose C signature GetAffinityFn spells.
            let f = unsafe { std::mem::transmute::<*mut c_void, GetAffinityFn>(p) };
            // SAFETY: the caller's arguments, passed on.
            unsafe { f(thread, size, mask) }
        }
        None => libc::ENOSYS,
    }
}

type StartRoutine = unsafe extern "C-unwind" fn(*mut c_void) -> *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    Option<StartRoutine>,
    *mut c_void,
) -> c_int;

static REAL_CREATE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// The next `pthread_create` (libc's), found on first use: another library's constructor may create
/// threads before ours ran.
fn real_create() -> Option<CreateFn> {
    let p = crate::guard::next(&REAL_CREATE, c"pthread_create")?;
    // SAFETY: the symbol is libc's pthread_create, whose C signature CreateFn spells.
    Some(unsafe { std::mem::transmute::<*mut c_void, CreateFn>(p) })
}

/// True when the attribute carries an affinity. glibc's pthread_attr_getaffinity_np reports all CPUs
/// when none was set; an attribute set to every CPU explicitly means the same thing anyway.
///
/// # Safety
/// `attr` points to an initialised `pthread_attr_t`.
unsafe fn attr_has_affinity(attr: *const libc::pthread_attr_t) -> bool {
    let mut set: [u64; 16] = [0; 16];
    // SAFETY: attr is initialised (contract); glibc writes at most size_of_val(&set) bytes.
    let rc = unsafe {
        libc::pthread_attr_getaffinity_np(
            attr,
            std::mem::size_of_val(&set),
            set.as_mut_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    // A mask wider than 1024 CPUs does not fit our buffer (EINVAL): it is an explicit one.
    rc != 0 || set.iter().any(|&w| w != u64::MAX)
}

/// True when the calling thread's mask lies inside the binding: exactly it, or a narrower mask someone
/// chose inside it (a pinned worker). Its new threads inherit that mask, which is already inside, so
/// the hook leaves them alone. Allocation-free.
fn creator_is_inside(b: &bind::Binding) -> bool {
    let mut set = [0u64; 16];
    // SAFETY: the kernel writes at most size_of_val(&set) bytes.
    let n = unsafe {
        libc::sched_getaffinity(
            0,
            std::mem::size_of_val(&set),
            set.as_mut_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if n != 0 {
        return false; // more than 1024 CPUs: take the general path
    }
    let want = b.words();
    set.iter().any(|w| *w != 0)
        && set
            .iter()
            .enumerate()
            .all(|(i, w)| w & !want.get(i).copied().unwrap_or(0) == 0)
}

struct Start {
    routine: Option<StartRoutine>,
    arg: *mut c_void,
    binding: &'static bind::Binding,
    /// Created with a foreign affinity attribute outside the binding: narrow it (the guard's clamp).
    clamp: bool,
}

/// Unboxes the start record; the Box is freed here, before the user's routine runs.
///
/// # Safety
/// `p` came from `Box::into_raw` of a `Start` in `create`, and is taken once.
unsafe fn take_start(p: *mut c_void) -> Start {
    // SAFETY: as the contract says: our own Box, handed to exactly one new thread.
    *unsafe { Box::from_raw(p.cast::<Start>()) }
}

static HOOK_WARNED: AtomicBool = AtomicBool::new(false);

fn bind_new_thread(b: &bind::Binding, clamp: bool) {
    test_panic("thread");
    let cpus_ok = if clamp {
        crate::guard::clamp_self(b);
        true
    } else {
        crate::apply::set_affinity_words(0, b.words()).is_ok()
    };
    let mem_ok = b.membind == gpuaff_core::MemBind::None
        || crate::apply::set_mempolicy_words(b.membind, b.mem_words()).is_ok();
    let failed = !cpus_ok || !mem_ok;
    if failed && !HOOK_WARNED.swap(true, Ordering::Relaxed) {
        msg::line("cannot bind a new thread (CPU mask or memory policy refused); it runs unbound");
    }
}

/// Runs in the new thread: binds it, then becomes the user's routine. Nothing here needs dropping
/// around that call, so pthread_exit and cancellation (forced unwinds) pass through cleanly.
///
/// # Safety
/// Called by pthread_create with the `Start` record `create` boxed for this thread.
unsafe extern "C-unwind" fn start_bound(p: *mut c_void) -> *mut c_void {
    // SAFETY: p is the record `create` boxed for this very thread.
    let Start {
        routine,
        arg,
        binding,
        clamp,
    } = unsafe { take_start(p) };
    let _ = std::panic::catch_unwind(|| bind_new_thread(binding, clamp));
    match routine {
        // SAFETY: the user's start routine with the user's argument, as pthread_create promised it.
        Some(f) => unsafe { f(arg) },
        None => std::ptr::null_mut(),
    }
}

/// What the hook does for one pthread_create call; None: pass through unchanged.
enum Route {
    Attr(*const libc::pthread_attr_t),
    /// Bind the new thread to the binding, or (true) clamp its attribute's mask into it.
    Wrap(&'static bind::Binding, bool),
}

/// # Safety
/// `attr` is NULL or points to an initialised `pthread_attr_t` (pthread_create's contract).
unsafe fn route(attr: *const libc::pthread_attr_t) -> Option<Route> {
    let b = bind::active()?;
    if b.threads == Threads::Off {
        return None;
    }
    // The common case: the creator is inside the binding and the new thread inherits its mask; one
    // cheap query instead of a sched_setaffinity on every new thread.
    let inherits = b.membind == gpuaff_core::MemBind::None && creator_is_inside(b);
    // SAFETY: attr is non-NULL here and initialised by the caller's contract.
    if inherits && (attr.is_null() || !unsafe { attr_has_affinity(attr) }) {
        return None;
    }
    if attr.is_null() {
        // glibc applies an attribute's affinity at creation; the memory policy needs the wrapper.
        if b.membind == gpuaff_core::MemBind::None {
            if let Some(a) = b.attr() {
                return Some(Route::Attr(a));
            }
        }
        return Some(Route::Wrap(b, false));
    }
    // SAFETY: as above.
    if unsafe { attr_has_affinity(attr) } {
        // A foreign attribute: the guard decides (and reports, under warn).
        // SAFETY: attr is non-NULL and initialised.
        return unsafe { crate::guard::attr_needs_clamp(attr) }.then_some(Route::Wrap(b, true));
    }
    Some(Route::Wrap(b, false))
}

/// The interposed `pthread_create`: with a binding in force (and GPU_AFFINITY_THREADS=inherit), a
/// thread created without an affinity attribute starts inside the binding, whoever creates it.
///
/// # Safety
/// Same contract as POSIX `pthread_create`.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: Option<StartRoutine>,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the caller's pthread_create contract, passed on.
    unsafe { create(thread, attr, start, arg) }
}

/// # Safety
/// Same contract as POSIX `pthread_create`.
unsafe fn create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: Option<StartRoutine>,
    arg: *mut c_void,
) -> c_int {
    let Some(real) = real_create() else {
        return libc::EAGAIN;
    };
    // SAFETY: attr as pthread_create's contract says.
    let route = std::panic::catch_unwind(|| unsafe { route(attr) }).unwrap_or(None);
    match route {
        // SAFETY (every `real` call below): libc's pthread_create with the caller's arguments, or
        // with our own attribute or start record in their place.
        None => unsafe { real(thread, attr, start, arg) },
        Some(Route::Attr(a)) => {
            let rc = unsafe { real(thread, a, start, arg) };
            // The binding may no longer be allowed (cgroup changed): never fail the host's thread.
            if rc == libc::EINVAL {
                unsafe { real(thread, attr, start, arg) }
            } else {
                rc
            }
        }
        Some(Route::Wrap(binding, clamp)) => {
            let boxed = Box::into_raw(Box::new(Start {
                routine: start,
                arg,
                binding,
                clamp,
            }));
            let rc = unsafe { real(thread, attr, Some(start_bound), boxed.cast()) };
            if rc != 0 {
                // SAFETY: no thread was created, so the record is still ours alone.
                drop(unsafe { Box::from_raw(boxed) });
            }
            rc
        }
    }
}
