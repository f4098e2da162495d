//! The loading rules: when the constructor binds, and one binding however many copies of the
//! library a process loads.
//!
//! # When the constructor binds
//! Only when this copy was preloaded: named in `LD_PRELOAD` or `/etc/ld.so.preload`. A copy that a
//! program was linked with (`-lgpuaff`) or that was loaded with `dlopen` (ctypes, the Python package)
//! binds nothing by itself: the program binds when it calls `gpu_affinity_set`. A preload exists to
//! bind a program that does not know about gpuaff; a program that links or loads gpuaff has said when
//! it wants to be bound, and binding twice (at load and at the call) would print two verbose lines.
//!
//! # Two copies, one binding
//! A process can hold several copies of the library under different paths: one preloaded and one
//! bundled with the Python package, or two packages each carrying their own. Each copy has its own
//! statics, but the process has one set of CPU masks, and only one copy's `pthread_create` (the first
//! in the global scope) sees new threads. So one copy, the *primary*, does the work for all: the
//! earliest-loaded object in the link map that defines `gpu_affinity_set_opts`. That is the
//! interposing copy whenever any copy interposes (copies loaded at start-up come before any loaded
//! with dlopen). Every other copy forwards its C ABI calls to the primary's exported functions (the
//! one interface stable across versions) and its constructor does nothing. The latest call, through
//! whichever copy, therefore governs new threads, and a verbose line is printed once per binding.
//! The primary is pinned (its handle is never closed) so that it outlives every forwarder.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

type SetFn = unsafe extern "C" fn(c_int, c_int, *const c_char, *mut c_int, c_int) -> c_int;
type OptsFn = unsafe extern "C" fn(*const crate::ffi::Options, *mut c_int, c_int) -> c_int;
type LastErrorFn = unsafe extern "C" fn() -> *const c_char;

/// The primary copy's entry points; a missing one (an older primary) is served locally.
pub struct Primary {
    pub set: Option<SetFn>,
    pub set_opts: Option<OptsFn>,
    pub plan: Option<OptsFn>,
    pub last_error: Option<LastErrorFn>,
}

/// Where `addr` lies: its object's load base and file name.
fn object_of(addr: *const c_void) -> Option<(usize, CString)> {
    // SAFETY: dladdr only reads the loader's tables; Dl_info is plain data it fills in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `info` is writable.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is the loader's NUL-terminated name of a loaded object.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_owned();
    Some((info.dli_fbase as usize, name))
}

/// This copy: its load base and the path it was loaded from.
fn this_copy() -> Option<&'static (usize, CString)> {
    static THIS: OnceLock<Option<(usize, CString)>> = OnceLock::new();
    THIS.get_or_init(|| object_of(this_copy as *const c_void))
        .as_ref()
}

/// The names of every loaded object, in link-map (load) order.
fn loaded_objects() -> Vec<CString> {
    /// # Safety
    /// Called by `dl_iterate_phdr` only, with `data` pointing to the `Vec<CString>` below.
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info record; `data` is the Vec given below.
        let (info, names) = unsafe { (&*info, &mut *data.cast::<Vec<CString>>()) };
        if !info.dlpi_name.is_null() {
            // SAFETY: dlpi_name is NUL-terminated while the callback runs.
            let name = unsafe { CStr::from_ptr(info.dlpi_name) };
            if !name.to_bytes().is_empty() {
                names.push(name.to_owned());
            }
        }
        0
    }
    let mut names: Vec<CString> = Vec::new();
    // SAFETY: the callback only reads the record and pushes to `names`, which outlives the call; the
    // dlopen calls that follow happen after the iteration (not under the loader's lock).
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut names as *mut Vec<CString>).cast()) };
    names
}

/// A symbol of the object behind `handle`, if that object (not a dependency) defines it.
fn symbol_in(handle: *mut c_void, name: &CStr, base: usize) -> Option<*mut c_void> {
    // SAFETY: handle comes from dlopen and is never closed; name is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    (!p.is_null() && object_of(p).is_some_and(|(b, _)| b == base)).then_some(p)
}

fn find_primary() -> Option<Primary> {
    let (own_base, _) = this_copy()?;
    for name in loaded_objects() {
        // SAFETY: RTLD_NOLOAD only looks the object up; a handle it returns is kept (never closed),
        // which pins the primary for the life of the process.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if handle.is_null() {
            continue;
        }
        // SAFETY: as in symbol_in.
        let p = unsafe { libc::dlsym(handle, c"gpu_affinity_set_opts".as_ptr()) };
        let Some((base, _)) = (!p.is_null()).then(|| object_of(p)).flatten() else {
            // SAFETY: a handle from dlopen above, not the primary's.
            unsafe { libc::dlclose(handle) };
            continue;
        };
        if base == *own_base {
            // SAFETY: as above; this copy is the primary and needs no pin.
            unsafe { libc::dlclose(handle) };
            return None;
        }
        // SAFETY: each transmute takes a symbol that the primary copy defines under the name of a C ABI
        // function of gpu_affinity.h, whose signature the type spells.
        return Some(unsafe {
            Primary {
                set: symbol_in(handle, c"gpu_affinity_set", base)
                    .map(|p| std::mem::transmute::<*mut c_void, SetFn>(p)),
                set_opts: Some(std::mem::transmute::<*mut c_void, OptsFn>(p)),
                plan: symbol_in(handle, c"gpu_affinity_plan", base)
                    .map(|p| std::mem::transmute::<*mut c_void, OptsFn>(p)),
                last_error: symbol_in(handle, c"gpu_affinity_last_error", base)
                    .map(|p| std::mem::transmute::<*mut c_void, LastErrorFn>(p)),
            }
        });
    }
    None
}

/// The copy that does this process's binding work, when it is not this one. Found once: a copy
/// loaded later can never come earlier in the link map, and the primary is pinned.
pub fn primary() -> Option<&'static Primary> {
    static PRIMARY: OnceLock<Option<Primary>> = OnceLock::new();
    PRIMARY
        .get_or_init(|| std::panic::catch_unwind(find_primary).ok().flatten())
        .as_ref()
}

/// The file identity (device, inode) of a path.
fn file_id(path: &CStr) -> Option<(u64, u64)> {
    // SAFETY: stat writes into a zeroed, writable struct; path is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::stat(path.as_ptr(), &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Whether one preload entry names `own` (the path this copy was loaded from): the same file for an
/// entry with a slash, the same file name for a bare name (the loader searched for it).
fn entry_names(entry: &str, own: &CStr, own_id: Option<(u64, u64)>) -> bool {
    let own_bytes = own.to_bytes();
    let own_file = own_bytes.rsplit(|&b| b == b'/').next().unwrap_or(own_bytes);
    let file = entry.rsplit('/').next().unwrap_or(entry);
    if file.as_bytes() != own_file && !entry.contains('$') {
        return false;
    }
    if !entry.contains('/') || entry.contains('$') {
        return true;
    }
    match (CString::new(entry).ok().and_then(|e| file_id(&e)), own_id) {
        (Some(a), Some(b)) => a == b,
        _ => entry.as_bytes() == own_bytes,
    }
}

/// Whether a preload list (`LD_PRELOAD`'s spaces and colons, or ld.so.preload's lines) names `own`.
pub fn list_names(list: &str, own: &CStr) -> bool {
    let entries = || {
        list.split(|c: char| c == ':' || c.is_whitespace())
            .filter(|e| !e.is_empty())
    };
    // The loader records a preloaded path as written: the usual match needs no stat.
    if entries().any(|e| e.as_bytes() == own.to_bytes()) {
        return true;
    }
    let own_id = file_id(own);
    entries().any(|e| entry_names(e, own, own_id))
}

/// Whether this copy was preloaded (the only way it binds at load).
pub fn preloaded() -> bool {
    let Some((_, own)) = this_copy() else {
        return false;
    };
    if let Some(v) = std::env::var_os("LD_PRELOAD") {
        if list_names(&v.to_string_lossy(), own) {
            return true;
        }
    }
    std::fs::read_to_string("/etc/ld.so.preload").is_ok_and(|s| list_names(&s, own))
}

/// Whether this copy's constructor may bind: preloaded, and the primary copy.
pub fn constructor_binds() -> bool {
    preloaded() && primary().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_lists_name_a_copy_by_file_or_by_file_name() {
        let own = c"/opt/x/lib/libgpuaff.so";
        assert!(list_names("/opt/x/lib/libgpuaff.so", own));
        assert!(list_names("libfoo.so libgpuaff.so", own));
        assert!(list_names("/a/libfoo.so:/opt/x/lib/libgpuaff.so", own));
        assert!(!list_names("/opt/y/lib/libgpuaff.so", own));
        assert!(!list_names("libgpuaff.so.0", own));
        assert!(!list_names("", own));
        assert!(list_names("/opt/$LIB/libgpuaff.so", own));
        // The same file under another name (a symlink) is the same copy.
        let dir = std::env::temp_dir().join(format!("gpuaff-loading-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("libgpuaff.so");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.join("other/libgpuaff.so");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let own = CString::new(real.to_str().unwrap()).unwrap();
        assert!(list_names(link.to_str().unwrap(), &own));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
