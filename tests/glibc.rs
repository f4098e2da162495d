//! The shipped libgpuaff.so must load on glibc 2.28 (RHEL 8): it may need no symbol version above
//! GLIBC_2.28. `scripts/build-release.sh` builds it so (cargo-zigbuild, target
//! x86_64-unknown-linux-gnu.2.28); a plain `cargo build` links against this machine's glibc.
//!
//! With the release artifact present (target/x86_64-unknown-linux-gnu/release/libgpuaff.so) the test
//! asserts the highest GLIBC_ version of it, of the command, and of the aarch64 library and command
//! where built (`scripts/build-release.sh x86_64 aarch64`) is at most 2.28. Without it, it reports the highest version
//! the plain build of this test run needs, and how to build the compatible one.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAX: (u32, u32) = (2, 28);

/// target/ (or $CARGO_TARGET_DIR): this executable lives in target/<profile>/deps/.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("test executable under target/<profile>/deps")
}

/// Every GLIBC_x.y[.z] version the file's dynamic symbols need, sorted; None without objdump.
fn glibc_versions(so: &Path) -> Option<Vec<(u32, u32, u32)>> {
    let out = Command::new("objdump").arg("-T").arg(so).output().ok()?;
    assert!(
        out.status.success(),
        "objdump -T {} failed: {}",
        so.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Vec<(u32, u32, u32)> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|ver| {
            let mut it = ver.split('.').map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect();
    v.sort();
    v.dedup();
    Some(v)
}

/// True when a source file of the library is newer than `so`.
fn is_stale(so: &Path) -> bool {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut best = None;
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            let t = if p.is_dir() {
                newest(&p)
            } else {
                e.metadata().ok().and_then(|m| m.modified().ok())
            };
            best = best.max(t);
        }
        best
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = [root.join("src"), root.join("core/src")]
        .iter()
        .filter_map(|d| newest(d))
        .max();
    let built = std::fs::metadata(so).and_then(|m| m.modified()).ok();
    matches!((src, built), (Some(s), Some(b)) if s > b)
}

fn show((a, b, c): (u32, u32, u32)) -> String {
    if c == 0 {
        format!("GLIBC_{a}.{b}")
    } else {
        format!("GLIBC_{a}.{b}.{c}")
    }
}

#[test]
fn shipped_library_needs_at_most_glibc_2_28() {
    let target = target_dir();
    let release = target.join("x86_64-unknown-linux-gnu/release/libgpuaff.so");
    let plain: Vec<PathBuf> = ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("libgpuaff.so"))
        .filter(|p| p.is_file())
        .collect();
    let how = "build it with scripts/build-release.sh (cargo zigbuild --release \
               --target x86_64-unknown-linux-gnu.2.28 -p gpuaff)";

    for so in &plain {
        let Some(v) = glibc_versions(so) else {
            println!("objdump not found: cannot check {}", so.display());
            return;
        };
        let top = v.last().copied();
        let over: Vec<String> = v
            .iter()
            .filter(|x| (x.0, x.1) > MAX)
            .map(|&x| show(x))
            .collect();
        println!(
            "{}: highest {} ({})",
            so.display(),
            top.map_or("none".to_string(), show),
            if over.is_empty() {
                "loads on glibc 2.28".to_string()
            } else {
                format!("NOT loadable on glibc 2.28: needs {}", over.join(", "))
            }
        );
    }

    if !release.is_file() {
        println!(
            "{} absent: the glibc 2.28 check of the shipped library did not run; {how}",
            release.display()
        );
        return;
    }
    // The shipped files: both libraries and both commands, where built (aarch64: build-release.sh aarch64).
    let shipped: Vec<PathBuf> = ["x86_64", "aarch64"]
        .iter()
        .flat_map(|arch| {
            let dir = target.join(format!("{arch}-unknown-linux-gnu/release"));
            [dir.join("libgpuaff.so"), dir.join("gpuaff")]
        })
        .filter(|p| p.is_file())
        .collect();
    for file in &shipped {
        if is_stale(file) {
            println!(
                "{} is older than the sources: the check below is of an old build; {how}",
                file.display()
            );
        }
        let v = glibc_versions(file).expect("objdump is needed to check the release files");
        assert!(
            !v.is_empty(),
            "{} names no GLIBC_ version: not a glibc binary?",
            file.display()
        );
        let top = *v.last().unwrap();
        println!("{}: highest {}", file.display(), show(top));
        assert!(
            (top.0, top.1) <= MAX,
            "{} needs {} (> GLIBC_2.28): it will not load on RHEL 8; {how}",
            file.display(),
            show(top)
        );
    }
}

/// The parser reads objdump's real output: the C library itself names many versions.
#[test]
fn version_scan_reads_objdump_output() {
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file());
    let Some(libc) = libc else {
        println!("no libc.so.6 at the usual places: skipped");
        return;
    };
    let Some(v) = glibc_versions(libc) else {
        println!("objdump not found: skipped");
        return;
    };
    assert!(v.contains(&(2, 2, 5)), "{v:?}");
    assert!(v.iter().any(|x| (x.0, x.1) >= (2, 28)), "{v:?}");
}
