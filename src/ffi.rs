//! The C ABI (c-header/gpu_affinity.h). Every entry point catches panics, never exits, and turns
//! errors into negative errno values with the full message kept per thread for
//! `gpu_affinity_last_error`.
//!
//! Arguments left to default come from the environment: the options are laid over the environment
//! (an argument stands in for its variable: `mode` for GPU_AFFINITY_MODE, `gpu_id` for the local rank)
//! and parsed by the same code as the constructor's, so a bad argument is reported under its
//! variable's name.

use crate::bind::{self, Effect};
use crate::msg;
use crate::preload::{env_lookup, quiet_panics};
use gpuaff_core::{Cores, Error, MemBind, Request, Result, Threads};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicI32, Ordering};

/// `struct gpu_affinity_options`; keep in step with the header (fields are only ever appended).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Options {
    pub size: usize,
    pub gpu_id: c_int,
    pub nproc_per_node: c_int,
    pub mode: *const c_char,
    pub cores: c_int,
    pub balanced: c_int,
    pub membind: c_int,
    pub threads: c_int,
    pub dry_run: c_int,
    pub verbose: c_int,
    pub strict: c_int,
    pub map: *const c_char,
    pub fsroot: *const c_char,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            size: size_of::<Options>(),
            gpu_id: -1,
            nproc_per_node: 0,
            mode: std::ptr::null(),
            cores: -1,
            balanced: -1,
            membind: -1,
            threads: -1,
            dry_run: -1,
            verbose: -1,
            strict: -1,
            map: std::ptr::null(),
            fsroot: std::ptr::null(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(text: &str) {
    let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Runs an entry point: panics become -EFAULT, errors become -errno with their message saved.
fn guard(f: impl FnOnce() -> Result<c_int>) -> c_int {
    quiet_panics();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            -e.errno()
        }
        Err(_) => {
            set_last_error("internal error in gpuaff (a panic was caught); nothing was changed");
            -libc::EFAULT
        }
    }
}

/// Reads the caller's options, honouring its `size`: fields beyond it keep their defaults.
///
/// # Safety
/// `p` is NULL or points to at least `size` readable bytes laid out as `struct gpu_affinity_options`.
unsafe fn read_options(p: *const Options) -> Result<Options> {
    let mut o = Options::default();
    if p.is_null() {
        return Ok(o);
    }
    let size = std::ptr::read_unaligned(p.cast::<usize>());
    if size < size_of::<usize>() {
        return Err(Error::invalid(format!(
            "gpu_affinity_options.size={size} is too small: call gpu_affinity_options_init first"
        )));
    }
    macro_rules! field {
        ($f:ident) => {
            if offset_of!(Options, $f) + size_of_val(&o.$f) <= size {
                o.$f = std::ptr::addr_of!((*p).$f).read_unaligned();
            }
        };
    }
    field!(gpu_id);
    field!(nproc_per_node);
    field!(mode);
    field!(cores);
    field!(balanced);
    field!(membind);
    field!(threads);
    field!(dry_run);
    field!(verbose);
    field!(strict);
    field!(map);
    field!(fsroot);
    Ok(o)
}

/// A C string argument; NULL is None.
unsafe fn c_str(p: *const c_char, what: &str) -> Result<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(p)
        .to_str()
        .map(|s| Some(s.to_string()))
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

fn flag(name: &str, v: c_int) -> Result<Option<bool>> {
    match v {
        -1 => Ok(None),
        0 => Ok(Some(false)),
        1 => Ok(Some(true)),
        _ => Err(Error::bad_value(
            name,
            &v.to_string(),
            "-1 (from the environment), 0, 1",
        )),
    }
}

/// The Request for these options: the options laid over the environment.
unsafe fn request(o: &Options) -> Result<Request> {
    let mode = c_str(o.mode, "mode")?;
    let map = c_str(o.map, "gpu_affinity_options.map")?;
    let fsroot = c_str(o.fsroot, "gpu_affinity_options.fsroot")?;
    let gpu = (o.gpu_id >= 0).then(|| o.gpu_id.to_string());
    let nproc = (o.nproc_per_node > 0).then(|| o.nproc_per_node.to_string());
    let cores = match o.cores {
        -1 => None,
        0 => Some(Cores::AllLogical),
        1 => Some(Cores::SingleLogical),
        v => {
            return Err(Error::bad_value(
                "gpu_affinity_options.cores",
                &v.to_string(),
                "-1 (from the environment), 0 (all_logical), 1 (single_logical)",
            ))
        }
    };
    let membind = match o.membind {
        -1 => None,
        0 => Some(MemBind::None),
        1 => Some(MemBind::Preferred),
        2 => Some(MemBind::Bind),
        3 => Some(MemBind::Interleave),
        v => {
            return Err(Error::bad_value(
                "gpu_affinity_options.membind",
                &v.to_string(),
                "-1 (from the environment), 0 none, 1 preferred, 2 bind, 3 interleave",
            ))
        }
    };
    let threads = match o.threads {
        -1 => None,
        0 => Some(Threads::Inherit),
        1 => Some(Threads::Off),
        v => {
            return Err(Error::bad_value(
                "gpu_affinity_options.threads",
                &v.to_string(),
                "-1 (from the environment), 0 inherit, 1 off",
            ))
        }
    };
    let balanced = flag("gpu_affinity_options.balanced", o.balanced)?;
    let dry_run = flag("gpu_affinity_options.dry_run", o.dry_run)?;
    let verbose = flag("gpu_affinity_options.verbose", o.verbose)?;
    let strict = flag("gpu_affinity_options.strict", o.strict)?;
    let env = |name: &str| -> Option<String> {
        let over = match name {
            "LOCAL_RANK" if gpu.is_some() => return gpu.clone(),
            // An explicit gpu_id chooses the GPU, whatever GPU_AFFINITY_GPU says.
            "GPU_AFFINITY_GPU" if gpu.is_some() => return None,
            "GPU_AFFINITY_NPROC" => &nproc,
            "GPU_AFFINITY_MODE" => &mode,
            "GPU_AFFINITY_MAP" => &map,
            "GPU_AFFINITY_FSROOT" => &fsroot,
            _ => &None,
        };
        over.clone().or_else(|| env_lookup(name))
    };
    let mut req = Request::from_env(&env)?;
    if let Some(c) = cores {
        req.plan.cores = c;
    }
    if let Some(b) = balanced {
        req.plan.balanced = b;
    }
    if let Some(m) = membind {
        req.membind = m;
    }
    if let Some(t) = threads {
        req.threads = t;
    }
    if let Some(d) = dry_run {
        req.dry_run = d;
    }
    if let Some(v) = verbose {
        req.verbose = v;
    }
    if let Some(s) = strict {
        req.strict = s;
    }
    Ok(req)
}

/// One binding at a time: two threads binding at once would each leave the other's threads half done.
/// The lock word holds the pid of the process whose thread holds it (0: free). A child forked while a
/// thread of its parent held it finds its parent's pid there, and no thread of its own holding it: the
/// lock is stale and taken over, so a fork during a call never leaves the child waiting.
static BINDING_CALL: AtomicI32 = AtomicI32::new(0);

struct CallLock;

impl CallLock {
    fn take() -> CallLock {
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        loop {
            let held = BINDING_CALL.load(Ordering::Acquire);
            if held != me
                && BINDING_CALL
                    .compare_exchange(held, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return CallLock;
            }
            // A binding takes milliseconds; polling keeps the lock a plain word.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

impl Drop for CallLock {
    fn drop(&mut self) {
        BINDING_CALL.store(0, Ordering::Release);
    }
}

unsafe fn run(o: *const Options, cpus: *mut c_int, cpus_len: c_int, effect: Effect) -> c_int {
    guard(|| {
        if cpus_len < 0 || (cpus.is_null() && cpus_len > 0) {
            return Err(Error::invalid(format!(
                "cpus={cpus:?}, cpus_len={cpus_len}: cpus_len must be >= 0 and cpus non-NULL when cpus_len > 0"
            )));
        }
        let o = read_options(o)?;
        let req = request(&o)?;
        let outcome = {
            let _one = CallLock::take();
            bind::bind(&req, effect)?
        };
        if effect == Effect::Apply {
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
        }
        let set = &outcome.plan.cpus;
        for (i, cpu) in set.iter().take(cpus_len as usize).enumerate() {
            // SAFETY: i < cpus_len, the caller's buffer length.
            *cpus.add(i) = c_int::try_from(cpu).unwrap_or(c_int::MAX);
        }
        Ok(c_int::try_from(set.len()).unwrap_or(c_int::MAX))
    })
}

/// # Safety
/// `mode` is NULL or a C string; `cpus` is NULL (with `cpus_len` 0) or holds `cpus_len` ints.
#[no_mangle]
pub unsafe extern "C" fn gpu_affinity_set(
    gpu_id: c_int,
    nproc_per_node: c_int,
    mode: *const c_char,
    cpus: *mut c_int,
    cpus_len: c_int,
) -> c_int {
    let o = Options {
        gpu_id,
        nproc_per_node,
        mode,
        ..Options::default()
    };
    run(&o, cpus, cpus_len, Effect::Apply)
}

/// # Safety
/// `opts` is NULL or initialised by `gpu_affinity_options_init`; `cpus` as for `gpu_affinity_set`.
#[no_mangle]
pub unsafe extern "C" fn gpu_affinity_set_opts(
    opts: *const Options,
    cpus: *mut c_int,
    cpus_len: c_int,
) -> c_int {
    run(opts, cpus, cpus_len, Effect::Apply)
}

/// # Safety
/// As `gpu_affinity_set_opts`.
#[no_mangle]
pub unsafe extern "C" fn gpu_affinity_plan(
    opts: *const Options,
    cpus: *mut c_int,
    cpus_len: c_int,
) -> c_int {
    run(opts, cpus, cpus_len, Effect::PlanOnly)
}

/// # Safety
/// `opts` is NULL or points to a writable `struct gpu_affinity_options`.
#[no_mangle]
pub unsafe extern "C" fn gpu_affinity_options_init(opts: *mut Options) {
    if !opts.is_null() {
        opts.write_unaligned(Options::default());
    }
}

#[no_mangle]
pub extern "C" fn gpu_affinity_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[no_mangle]
pub extern "C" fn gpu_affinity_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The static message for an error value; the sign is ignored.
pub fn strerror(err: c_int) -> &'static CStr {
    match err.unsigned_abs() as i32 {
        0 => c"success",
        libc::EINVAL => c"invalid argument or environment value (gpu_affinity_last_error names it)",
        libc::ENODEV => c"no usable GPU: none present, none visible (CUDA_VISIBLE_DEVICES), or the requested one does not exist",
        libc::EDOM => c"no CPU can be planned for this GPU within the allowed CPUs",
        libc::ENOENT => c"a file of the machine description (sysfs/procfs) is missing",
        libc::EIO => c"the machine description (sysfs/procfs) could not be read or is malformed",
        libc::EACCES => c"a file of the machine description (sysfs/procfs) is not readable",
        libc::EPERM => c"the kernel refused the binding (permission or cgroup cpuset)",
        libc::ESRCH => c"a thread to bind no longer exists",
        libc::ELIBACC => c"NVML (libnvidia-ml.so.1) could not be loaded or failed",
        libc::EFAULT => c"internal error in gpuaff (a bug; gpu_affinity_last_error has details)",
        libc::EBUSY => c"another binding is in progress",
        _ => c"unknown error",
    }
}

#[no_mangle]
pub extern "C" fn gpu_affinity_strerror(err: c_int) -> *const c_char {
    strerror(err).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_ignores_the_sign_and_is_never_empty() {
        for e in [
            0,
            1,
            libc::EINVAL,
            libc::ENODEV,
            libc::EDOM,
            12345,
            c_int::MIN,
        ] {
            assert_eq!(strerror(e), strerror(e.wrapping_neg()));
            assert!(!strerror(e).to_bytes().is_empty());
        }
        assert!(strerror(-libc::ENODEV).to_str().unwrap().contains("GPU"));
    }

    #[test]
    fn options_honour_their_size() {
        let mut full = Options {
            gpu_id: 3,
            cores: 1,
            fsroot: c"/x".as_ptr(),
            ..Options::default()
        };
        full.size = offset_of!(Options, cores) + 4;
        let o = unsafe { read_options(&full) }.unwrap();
        assert_eq!(o.gpu_id, 3);
        assert_eq!(o.cores, 1);
        assert!(o.fsroot.is_null(), "fields past size keep their defaults");
        full.size = 0;
        assert!(unsafe { read_options(&full) }.is_err());
    }

    #[test]
    fn panics_and_errors_become_negative_errno_with_a_message() {
        assert_eq!(guard(|| panic!("boom")), -libc::EFAULT);
        let msg = unsafe { CStr::from_ptr(gpu_affinity_last_error()) };
        assert!(msg.to_str().unwrap().contains("internal error"));
        assert_eq!(guard(|| Err(Error::no_device("no GPU"))), -libc::ENODEV);
        let msg = unsafe { CStr::from_ptr(gpu_affinity_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "no GPU");
    }
}
