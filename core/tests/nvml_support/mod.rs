//! Builds the fake libnvidia-ml.so.1 (tests/fake_nvml/fake_nvml.c) and gives each test its own
//! directory holding a private copy of it: the fake reads `nvml.txt` beside itself, and a copy
//! (another inode) is loaded as another library, so tests run in parallel without sharing state.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const LIB_NAME: &str = "libnvidia-ml.so.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Full,
    /// Built with -DFAKE_NVML_NO_AFFINITY: no nvmlDeviceGetCpuAffinity* / GetMemoryAffinity.
    NoAffinity,
    /// Built with -DFAKE_NVML_NO_SHUTDOWN: no nvmlShutdown (nvml-wrapper's Drop would panic).
    NoShutdown,
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fake_nvml/fake_nvml.c")
}

fn build(variant: Variant) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fake_nvml")
        .join(format!("{variant:?}"));
    std::fs::create_dir_all(&dir).expect("create fake NVML build dir");
    let out = dir.join(LIB_NAME);
    // Compile to a private name, then rename: a reader never sees a half-written library.
    let tmp = dir.join(format!("{LIB_NAME}.{}.tmp", std::process::id()));
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args([
        "-shared",
        "-fPIC",
        "-O1",
        "-Wall",
        "-Wl,-soname,libnvidia-ml.so.1",
        "-o",
    ])
    .arg(&tmp)
    .arg(source());
    match variant {
        Variant::Full => {}
        Variant::NoAffinity => {
            cc.arg("-DFAKE_NVML_NO_AFFINITY");
        }
        Variant::NoShutdown => {
            cc.arg("-DFAKE_NVML_NO_SHUTDOWN");
        }
    }
    let status = cc
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler to build the fake NVML: {e}"));
    assert!(status.success(), "building the fake NVML failed: {status}");
    std::fs::rename(&tmp, &out).expect("rename the fake NVML into place");
    out
}

/// The fake library, built once per test process and variant.
pub fn fake_lib(variant: Variant) -> &'static Path {
    static FULL: OnceLock<PathBuf> = OnceLock::new();
    static NO_AFFINITY: OnceLock<PathBuf> = OnceLock::new();
    static NO_SHUTDOWN: OnceLock<PathBuf> = OnceLock::new();
    match variant {
        Variant::Full => FULL.get_or_init(|| build(variant)),
        Variant::NoAffinity => NO_AFFINITY.get_or_init(|| build(variant)),
        Variant::NoShutdown => NO_SHUTDOWN.get_or_init(|| build(variant)),
    }
}

/// A fresh, empty directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    // tmpfs where there is one: fixture trees are thousands of small files.
    let root = gpuaff_fixtures::scratch_root().join("gpuaff-nvml-tests");
    // tmpfs is memory: sweep what earlier, finished test processes left behind.
    SWEEP.call_once(|| {
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    let dir = root.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Copies the fake library into `dir`; returns the copy's path.
pub fn install_fake(dir: &Path, variant: Variant) -> PathBuf {
    let lib = dir.join(LIB_NAME);
    std::fs::copy(fake_lib(variant), &lib).expect("copy the fake NVML");
    lib
}

/// A test directory with a private fake library and `nvml.txt` holding `desc`.
pub fn fake_machine(name: &str, variant: Variant, desc: &str) -> (PathBuf, PathBuf) {
    let dir = test_dir(name);
    let lib = install_fake(&dir, variant);
    std::fs::write(dir.join("nvml.txt"), desc).expect("write nvml.txt");
    (dir, lib)
}

/// The DGX A100 shape of docs/MODES.md example 2: 8 GPUs on nodes 3,3,1,1,7,7,5,5; node n holds cores
/// 16n..16n+15 and their SMT siblings +128.
pub const DGX_A100_BUS: [&str; 8] = ["07", "0f", "47", "4e", "87", "90", "b7", "bd"];
pub const DGX_A100_NODES: [u32; 8] = [3, 3, 1, 1, 7, 7, 5, 5];

pub fn node_cpus(node: u32) -> String {
    let lo = 16 * node;
    format!("{}-{},{}-{}", lo, lo + 15, lo + 128, lo + 143)
}

pub fn dgx_uuid(i: usize) -> String {
    format!("GPU-{i:x}{i:x}a0b1c2-d3e4-f5a6-b7c8-d9e0f1a2b3c{i:x}")
}

pub fn dgx_a100_desc() -> String {
    let mut s = String::from("# DGX A100 shape\n");
    for (i, (bus, node)) in DGX_A100_BUS.iter().zip(DGX_A100_NODES).enumerate() {
        s.push_str(&format!(
            "gpu pci=00000000:{}:00.0 uuid={} node={node} cpus={} memnode=- model=NVIDIA_A100-SXM4-80GB minor={i} migs=-\n",
            bus.to_ascii_uppercase(),
            dgx_uuid(i),
            node_cpus(node)
        ));
    }
    s
}
