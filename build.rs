use std::path::{Path, PathBuf};
use std::process::Command;

// libgpuaff.so carries the SONAME libgpuaff.so.0: a program linked with -lgpuaff then needs
// libgpuaff.so.0, which scripts/install.sh installs as the usual symlink chain
// (libgpuaff.so -> libgpuaff.so.0 -> libgpuaff.so.X.Y.Z). The major number changes only when the
// C ABI breaks.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgpuaff.so.0");
    }
    let unwinder = static_unwinder();
    if let Some(dir) = &unwinder {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    // Read by tests/unwind.rs: whether this build's objects should need libgcc_s.so.1.
    println!(
        "cargo:rustc-env=GPUAFF_STATIC_UNWINDER={}",
        u8::from(unwinder.is_some())
    );
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GPUAFF_SHARED_LIBGCC");
}

/// On a native linux-gnu build, a directory in which `-lgcc_s` (what Rust's std links its unwinder
/// with) finds the C compiler's static unwinder, libgcc_eh.a, before the shared libgcc_s.so.
///
/// Why: loading libgcc_s.so.1 is most of what the preload costs a process that has no rank
/// (docs/PERFORMANCE.md, "No-rank start-up"). The static copy is linked into the object with hidden
/// (local) symbols, unwinds our own frames (catch_unwind at the C boundary), and leaves the host's
/// unwinding to the host's libgcc_s. A forced unwind that glibc runs with its libgcc_s through our
/// frames (pthread_exit, cancellation) calls our personality routine with that unwinder's context,
/// read back through our copy's accessors: libgcc's context layout is versioned and has only grown
/// since gcc 4 (tests/unwind.rs, tests/preload.rs run both kinds). libgcc_eh.a from gcc 12 and later may need `_dl_find_object`
/// (glibc 2.35), which is why this is for builds that run where they are built: with a configured
/// linker (cargo-zigbuild's zig, a cross gcc) or a cross target nothing changes, and
/// scripts/build-release.sh's glibc-2.28 objects link zig's own unwinder as before.
///
/// Falls back silently to the shared libgcc_s when anything does not fit: the compiler has no
/// libgcc_eh.a, or a probe object linked the same way still needs libgcc_s.so or fails to link.
/// GPUAFF_SHARED_LIBGCC=1 asks for the shared one.
fn static_unwinder() -> Option<PathBuf> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("TARGET") != env("HOST")
        || std::env::var_os("RUSTC_LINKER").is_some()
        || env("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static")
        || env("GPUAFF_SHARED_LIBGCC") == "1"
    {
        return None;
    }
    // rustc links with `cc` unless a linker is configured (excluded above).
    let out = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let eh = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Without the file, gcc prints the bare name back.
    if !out.status.success() || !eh.is_absolute() || !eh.is_file() {
        return None;
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static-unwinder");
    std::fs::create_dir_all(&dir).ok()?;
    let alias = dir.join("libgcc_s.a");
    let _ = std::fs::remove_file(&alias);
    std::os::unix::fs::symlink(&eh, &alias).ok()?;
    println!("cargo:rerun-if-changed={}", eh.display());
    if probe(&dir) {
        Some(dir)
    } else {
        None
    }
}

/// Links a shared object that calls what std's unwinding and backtraces call, the way rustc links a
/// cdylib (`-nodefaultlibs`, then `-lgcc_s` and libc): true when it links without undefined symbols
/// and needs no libgcc_s.so.
fn probe(dir: &Path) -> bool {
    let src = dir.join("probe.c");
    let so = dir.join("probe.so");
    let code = "#include <unwind.h>\n\
        static _Unwind_Reason_Code step(struct _Unwind_Context *c, void *a) {\n\
            int before; (*(long *)a) += (long)_Unwind_GetIPInfo(c, &before)\n\
                + (long)_Unwind_GetLanguageSpecificData(c) + (long)_Unwind_GetRegionStart(c)\n\
                + (long)_Unwind_GetDataRelBase(c) + (long)_Unwind_GetTextRelBase(c)\n\
                + (long)_Unwind_GetCFA(c) + (long)_Unwind_FindEnclosingFunction((void *)c);\n\
            _Unwind_SetGR(c, 0, 0); _Unwind_SetIP(c, 0);\n\
            return _URC_NO_REASON;\n\
        }\n\
        long probe(struct _Unwind_Exception *e) {\n\
            long n = 0; _Unwind_Backtrace(step, &n);\n\
            if (n == 1) { _Unwind_RaiseException(e); _Unwind_Resume(e); _Unwind_DeleteException(e); }\n\
            return n;\n\
        }\n";
    if std::fs::write(&src, code).is_err() {
        return false;
    }
    let linked = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-nodefaultlibs",
            "-Wl,--no-undefined",
            "-o",
        ])
        .arg(&so)
        .arg(&src)
        .arg(format!("-L{}", dir.display()))
        .args(["-lgcc_s", "-lc"])
        .output()
        .is_ok_and(|o| o.status.success());
    let needs_shared = std::fs::read(&so)
        .map(|b| b.windows(11).any(|w| w == b"libgcc_s.so"))
        .unwrap_or(true);
    let _ = std::fs::remove_file(&so);
    let _ = std::fs::remove_file(&src);
    linked && !needs_shared
}
