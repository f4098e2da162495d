//! A small deterministic mutation fuzzer for gpuaff's parsers (cargo fuzz needs a nightly
//! toolchain; this one runs on stable, in CI too).
//!
//! Targets: `CpuSet::parse_list`, `parse_mask`, `parse_any`, a generated round trip of random sets,
//! `Request::from_env` with random environments, `gpu::resolve_visible` with random
//! CUDA_VISIBLE_DEVICES, and `Machine::load` on the "example1" fixture tree with one file's
//! contents mutated per execution (`sysfs`). `--execs N` is split over the five fast targets; the
//! slow ones run on top: `roundtrip` 1/20 and `sysfs` 1/1000 of a fast target's share (alone,
//! with --target, each gets N).
//!
//! Inputs are mutations (bit flips, inserted separators, digits, huge numbers, NULs, unicode,
//! truncations, splices) of a corpus of valid inputs, driven by a seeded xorshift, so a run is
//! reproducible from its seed. Inputs that parse join the corpus.
//!
//! Invariants: no panic (caught, reported with the input); every successful parse round-trips
//! through `to_list` and `to_mask` (and `parse_any`); no id above `cpuset::MAX_ID`; errors and
//! warnings are one line and name the variable or a file of the tree; a loaded topology is
//! consistent (cores disjoint, within the online CPUs) and plans in every mode.
//!
//!   cargo run --release -p gpuaff-core --example fuzz -- [--execs N] [--seed S] [--target NAME]
//!
//! `core/tests/fuzz_parsers.rs` runs a CI-sized share; `scripts/fuzz.sh` a long run.

use gpuaff_core::config::{self, Request};
use gpuaff_core::cpuset::{CpuSet, MAX_ID};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so seeds 0, 1, 2 start far apart (and never at 0).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

const LIST_SEEDS: &[&str] = &[
    "0",
    "0-3,8-11",
    "0-7:2/4",
    "1,3,5",
    "0-127",
    "63-64",
    "",
    " 0-1,3\n\0\0",
    "131072",
    "131000-131072",
    "0-131072:1/64",
    "0-63,128-191",
    "0-255\n",
    "4-7,12-15",
];

const MASK_SEEDS: &[&str] = &[
    "ff",
    "00000001,00000000",
    "0x0000ff00",
    "ffffffff,ffffffff,ffffffff,ffffffff",
    "100000000",
    "0",
    "ffffffffffffffffffff",
    "00000000,00000000,0000ffff\n",
    "0X1",
    "f0f0f0f0,0f0f0f0f",
];

/// Fragments that parsers get wrong: separators, numbers at and past every bound, NULs, unicode
/// digits and spaces, byte-order marks.
const FRAGMENTS: &[&str] = &[
    ",",
    "-",
    ":",
    "/",
    ";",
    " ",
    "\n",
    "\t",
    "\r",
    "\0",
    "0x",
    "0X",
    ",,",
    "--",
    "1-",
    "-1",
    "0-",
    ":1/2",
    ":0/0",
    ":2/1",
    "/",
    "ff",
    "FFFFFFFF",
    "00000000",
    "deadbeef",
    "g",
    "z",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "131071",
    "131072",
    "131073",
    "131103",
    "131104",
    "999999999999",
    "1000000000000",
    "0-131072",
    "0-4294967295",
    "é",
    "٣",
    "３",
    "\u{feff}",
    "\u{a0}",
    "\u{2028}",
    "−",
    "－",
    "😀",
    "\u{0}\u{0}",
];

/// The variables `Request::from_env` reads besides the launchers' (`config::LOCAL_RANK_VARS`,
/// `config::LOCAL_SIZE_VARS`, taken from the core itself so a new one is fuzzed too).
const OTHER_ENV_NAMES: &[&str] = &[
    "GPU_AFFINITY_NPROC",
    "GPU_AFFINITY_MODE",
    "GPU_AFFINITY_CORES",
    "GPU_AFFINITY_BALANCED",
    "GPU_AFFINITY_MAP",
    "GPU_AFFINITY_GPU",
    "GPU_AFFINITY_MEMBIND",
    "GPU_AFFINITY_THREADS",
    "GPU_AFFINITY_STRICT",
    "GPU_AFFINITY_VERBOSE",
    "GPU_AFFINITY_DRY_RUN",
    "GPU_AFFINITY_SOURCE",
    "GPU_AFFINITY_NVML_LIB",
    "GPU_AFFINITY_FSROOT",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
];

const ENV_SEEDS: &[&str] = &[
    "0",
    "1",
    "7",
    "8",
    "-1",
    "2(x3)",
    "4,2(x3)",
    "yes",
    "no",
    "TRUE",
    "socket_unique_contiguous",
    "socket_unique_interleaved",
    "socket_single_unique",
    "map",
    "core_complex",
    "core-complex",
    "exclusive",
    "node",
    "package",
    "none",
    "0-7;8-15",
    "0-3;4-7;8-11;12-15",
    "single_logical",
    "all_logical",
    "bind",
    "interleave",
    "preferred",
    "off",
    "inherit",
    "sysfs",
    "nvml",
    "auto",
    "/",
    "/tmp/snap",
    "0,1",
    "GPU-abc",
    "MIG-0",
    "PCI_BUS_ID",
    "FASTEST_FIRST",
    "",
];

/// One input mutated 1-4 times.
pub fn mutate(rng: &mut Rng, input: &str, corpus: &[String]) -> String {
    let mut b: Vec<u8> = input.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(10) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let f = rng.pick(FRAGMENTS).as_bytes();
                b.splice(at..at, f.iter().copied());
            }
            3 => {
                let d = (b'0' + rng.below(10) as u8, rng.below(20));
                b.splice(at..at, std::iter::repeat(d.0).take(1 + d.1));
            }
            4 => b.truncate(at),
            5 if !b.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(b.len());
                let lo = at.min(end);
                b.drain(lo..end);
            }
            6 if !corpus.is_empty() => {
                // Splice: our head, another input's tail.
                let other = rng.pick(corpus).as_bytes();
                let from = rng.below(other.len() + 1);
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
            7 if !b.is_empty() => {
                // Repeat a chunk (long lists, many words).
                let lo = rng.below(b.len());
                let hi = (lo + 1 + rng.below(16)).min(b.len());
                let chunk = b[lo..hi].to_vec();
                for _ in 0..1 + rng.below(8) {
                    b.splice(hi..hi, chunk.iter().copied());
                }
            }
            8 => {
                let c = *rng.pick(b"0123456789abcdefABCDEFxX,-:/; \n\0");
                b.insert(at, c);
            }
            _ if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
            _ => b.push(rng.next_u64() as u8),
        }
    }
    // Files are read as lossy UTF-8, and the environment as Rust strings: the parsers see &str.
    String::from_utf8_lossy(&b).into_owned()
}

#[derive(Default)]
pub struct Stats {
    pub execs: u64,
    pub ok: u64,
    pub err: u64,
    pub slowest: Duration,
    pub slowest_input: String,
    /// Distinct findings: what broke → (count, first input).
    pub findings: BTreeMap<String, (u64, String)>,
}

impl Stats {
    fn find(&mut self, what: String, input: &str) {
        let e = self.findings.entry(what).or_insert((0, input.to_string()));
        e.0 += 1;
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// The invariants every successfully parsed set keeps; None when all hold.
fn set_invariants(s: &CpuSet) -> Option<String> {
    if let Some(last) = s.last() {
        if last > MAX_ID {
            return Some(format!("parsed id {last} above MAX_ID {MAX_ID}"));
        }
    }
    let list = s.to_list();
    match CpuSet::parse_list(&list) {
        Ok(t) if t == *s => {}
        Ok(t) => return Some(format!("parse_list(to_list) gives {t}, not the same set")),
        Err(e) => return Some(format!("parse_list(to_list) fails: {e}")),
    }
    match CpuSet::parse_any(&list) {
        Ok(t) if t == *s => {}
        Ok(t) => return Some(format!("parse_any(to_list) gives {t}, not the same set")),
        Err(e) => return Some(format!("parse_any(to_list) fails: {e}")),
    }
    match CpuSet::parse_mask(&s.to_mask()) {
        Ok(t) if t == *s => {}
        Ok(t) => return Some(format!("parse_mask(to_mask) gives {t}, not the same set")),
        Err(e) => return Some(format!("parse_mask(to_mask) fails: {e}")),
    }
    None
}

/// Generalises a finding's message so that one bug counts once (numbers and quoted text vary).
fn shape_of(msg: &str) -> String {
    let mut out = String::new();
    let mut in_quote = false;
    let mut last_digit = false;
    for c in msg.chars() {
        if c == '"' {
            in_quote = !in_quote;
            if in_quote {
                out.push_str("\"…\"");
            }
            continue;
        }
        if in_quote {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(c);
    }
    out
}

pub const TARGETS: &[&str] = &[
    "parse_list",
    "parse_mask",
    "parse_any",
    "roundtrip",
    "from_env",
    "visible",
    "sysfs",
];

const VISIBLE_SEEDS: &[&str] = &[
    "0",
    "1,0",
    "3,2,1,0",
    "",
    "GPU-1111aaaa",
    "GPU-2222bbbb-0000-0000-0000-000000000002,0",
    "2222",
    "MIG-aaaa0000-0000-0000-0000-000000000000",
    "MIG-GPU-1111aaaa-0000-0000-0000-000000000001/1/0",
    "0,0",
    "-1",
    "1,5,2",
];

/// Four GPUs with UUIDs (two sharing a prefix) and MIG instances, for `resolve_visible`.
fn visible_gpus() -> Vec<gpuaff_core::Gpu> {
    let uuids = [
        "GPU-1111aaaa-0000-0000-0000-000000000001",
        "GPU-2222bbbb-0000-0000-0000-000000000002",
        "GPU-2222cccc-0000-0000-0000-000000000003",
        "GPU-4444dddd-0000-0000-0000-000000000004",
    ];
    uuids
        .iter()
        .enumerate()
        .map(|(i, u)| gpuaff_core::Gpu {
            index: i,
            pci_bus_id: format!("0000:{:02x}:00.0", 7 + i),
            uuid: Some(u.to_string()),
            model: Some(if i == 3 { "NVIDIA A10" } else { "NVIDIA A100" }.into()),
            migs: if i == 0 {
                vec!["MIG-aaaa0000-0000-0000-0000-000000000000".into()]
            } else {
                vec![]
            },
            ..gpuaff_core::Gpu::default()
        })
        .collect()
}

/// `resolve_visible` on a mutated CUDA_VISIBLE_DEVICES and order: indices in range, no duplicate,
/// errors on one line naming the variable.
fn visible_invariants(
    gpus: &[gpuaff_core::Gpu],
    cvd: &str,
    order: &str,
) -> Result<Option<String>, ()> {
    let order = match gpuaff_core::DeviceOrder::parse(Some(order)) {
        Ok(o) => o,
        Err(e) if e.message().contains("CUDA_DEVICE_ORDER") && !e.message().contains('\n') => {
            return Err(())
        }
        Err(e) => {
            return Ok(Some(format!(
                "bad CUDA_DEVICE_ORDER error: {}",
                e.message()
            )))
        }
    };
    match gpuaff_core::gpu::resolve_visible(gpus, Some(cvd), order) {
        Ok(v) => {
            if v.gpus.iter().any(|&g| g >= gpus.len()) {
                return Ok(Some(format!("visible index out of range: {:?}", v.gpus)));
            }
            let mut d = v.gpus.clone();
            d.sort_unstable();
            d.dedup();
            if d.len() != v.gpus.len() {
                return Ok(Some(format!("a GPU listed twice: {:?}", v.gpus)));
            }
            if v.warnings.iter().any(|w| w.contains('\n')) {
                return Ok(Some("a warning spans lines".into()));
            }
            Ok(None)
        }
        Err(e) => {
            let m = e.message();
            if m.contains('\n') {
                Ok(Some(format!("error spans lines: {m:?}")))
            } else if !m.contains("CUDA_VISIBLE_DEVICES") {
                Ok(Some(format!("error names no variable: {m}")))
            } else {
                Err(())
            }
        }
    }
}

/// A fixture tree whose files get mutated one at a time (`sysfs` target).
struct Tree {
    _tree: gpuaff_fixtures::TempTree,
    root: std::path::PathBuf,
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
}

impl Tree {
    fn new() -> Tree {
        let spec = gpuaff_fixtures::by_name("example1").expect("fixture example1");
        let tree = gpuaff_fixtures::write_temp(&spec).expect("writing the fixture tree");
        let root = tree.path().to_path_buf();
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d)
                .expect("listing the fixture")
                .flatten()
            {
                let p = e.path();
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    dirs.push(p);
                } else if t.is_file() {
                    let bytes = std::fs::read(&p).unwrap_or_default();
                    files.push((p, bytes));
                }
            }
        }
        files.sort();
        Tree {
            _tree: tree,
            root,
            files,
        }
    }
}

/// Loads the tree with one file mutated, plans every mode on it; the loaded topology must be
/// consistent (cores and nodes within the online CPUs, cores disjoint).
fn sysfs_invariants(root: &std::path::Path) -> Result<Option<String>, ()> {
    use gpuaff_core::{AllowedFrom, Machine, Mode, PlanOptions, Source, Visible};
    let req = Request {
        fsroot: root.to_path_buf(),
        source: Source::Sysfs,
        ..Request::default()
    };
    let m = match Machine::load(&req, AllowedFrom::Snapshot) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.message();
            if msg.contains('\n') {
                return Ok(Some(format!("error spans lines: {msg:?}")));
            }
            if !msg.contains(root.to_str().unwrap_or("")) {
                return Ok(Some(format!("error names no file of the tree: {msg}")));
            }
            return Err(());
        }
    };
    let t = &m.topology;
    let mut seen = CpuSet::new();
    for c in &t.cores {
        if !c.cpus.is_subset(&t.online) {
            return Ok(Some(format!(
                "core {} not within online {}",
                c.cpus, t.online
            )));
        }
        if c.cpus.intersects(&seen) {
            return Ok(Some(format!("core {} overlaps another core", c.cpus)));
        }
        seen = seen.union(&c.cpus);
    }
    if let Some(n) = t.nodes.iter().find(|n| !n.cpus.is_subset(&t.online)) {
        return Ok(Some(format!(
            "node {} CPUs {} not within online",
            n.id, n.cpus
        )));
    }
    if !t.allowed.is_subset(&t.online) {
        return Ok(Some(format!(
            "allowed {} not within online {}",
            t.allowed, t.online
        )));
    }
    let visible = Visible {
        gpus: (0..m.gpus.len()).collect(),
        warnings: vec![],
        none_by: None,
    };
    for mode in Mode::ALL.iter().copied().filter(|&m| m != Mode::Map) {
        let o = PlanOptions {
            mode,
            ..PlanOptions::default()
        };
        let plan = gpuaff_core::plan::plan_all(t, &m.gpus, &visible, &o);
        for r in plan.ranks.iter().flatten() {
            if mode != Mode::None && !r.cpus.is_subset(&t.allowed) {
                return Ok(Some(format!(
                    "{}: rank {} outside allowed",
                    mode.name(),
                    r.rank
                )));
            }
        }
    }
    Ok(None)
}

/// Runs `execs` executions of one target from `seed`.
pub fn run(target: &str, execs: u64, seed: u64) -> Stats {
    let mut rng = Rng::new(seed ^ target.len() as u64 ^ (target.as_bytes()[0] as u64) << 8);
    let seeds: Vec<&str> = match target {
        "parse_mask" => MASK_SEEDS.to_vec(),
        "from_env" => ENV_SEEDS.to_vec(),
        "visible" => VISIBLE_SEEDS.to_vec(),
        "parse_any" => [LIST_SEEDS, MASK_SEEDS].concat(),
        _ => LIST_SEEDS.to_vec(),
    };
    let mut seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
    if !matches!(target, "from_env" | "visible" | "sysfs") {
        // The widest masks the bound allows: the top word holds MAX_ID.
        let words = MAX_ID / 32;
        seeds.push(format!(
            "{:x}{}",
            1 << (MAX_ID % 32),
            ",00000000".repeat(words)
        ));
        seeds.push(format!("{}{}", "ffffffff,".repeat(words), "ffffffff"));
    }
    let mut corpus = seeds.clone();
    let mut st = Stats::default();
    let gpus = visible_gpus();
    let tree = (target == "sysfs").then(Tree::new);
    if let Some(t) = &tree {
        // Mutations splice in other files' contents.
        corpus = t
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(&f.1).into_owned())
            .collect();
    }
    let env_names: Vec<&str> = gpuaff_core::config::LOCAL_RANK_VARS
        .iter()
        .chain(gpuaff_core::config::LOCAL_SIZE_VARS.iter())
        .chain(OTHER_ENV_NAMES)
        .copied()
        .collect();
    for _ in 0..execs {
        let t0 = Instant::now();
        let input;
        let outcome: Result<Option<String>, String> = match target {
            "from_env" => {
                let vars: Vec<(String, String)> = (0..1 + rng.below(6))
                    .map(|_| {
                        let name = rng.pick(&env_names).to_string();
                        let base = rng.pick(&corpus).clone();
                        let value = if rng.chance(70) {
                            mutate(&mut rng, &base, &corpus)
                        } else {
                            base
                        };
                        (name, value)
                    })
                    .collect();
                input = format!("{vars:?}");
                let r = panic::catch_unwind(AssertUnwindSafe(|| env_invariants(&vars)));
                match r {
                    Ok(Ok(None)) => {
                        st.ok += 1;
                        for (_, v) in &vars {
                            if corpus.len() < 4096 && !corpus.contains(v) && rng.chance(5) {
                                corpus.push(v.clone());
                            }
                        }
                        Ok(None)
                    }
                    Ok(Ok(Some(bad))) => Ok(Some(bad)),
                    Ok(Err(())) => {
                        st.err += 1;
                        Ok(None)
                    }
                    Err(p) => Err(panic_text(p)),
                }
            }
            "visible" => {
                let base = rng.pick(&corpus).clone();
                let cvd = mutate(&mut rng, &base, &corpus);
                let order = *rng.pick(&[
                    "",
                    "PCI_BUS_ID",
                    "FASTEST_FIRST",
                    "pci_bus_id",
                    " PCI_BUS_ID\n",
                ]);
                input = format!("CUDA_VISIBLE_DEVICES={cvd:?} CUDA_DEVICE_ORDER={order:?}");
                match panic::catch_unwind(AssertUnwindSafe(|| {
                    visible_invariants(&gpus, &cvd, order)
                })) {
                    Ok(Ok(v)) => {
                        st.ok += 1;
                        if v.is_none() && corpus.len() < 4096 && cvd.len() < 256 && rng.chance(10) {
                            corpus.push(cvd);
                        }
                        Ok(v)
                    }
                    Ok(Err(())) => {
                        st.err += 1;
                        Ok(None)
                    }
                    Err(p) => Err(panic_text(p)),
                }
            }
            "sysfs" => {
                let t = tree.as_ref().expect("tree");
                let (path, original) = rng.pick(&t.files).clone();
                let text = String::from_utf8_lossy(&original).into_owned();
                let mutated = mutate(&mut rng, &text, &corpus);
                let rel = path
                    .strip_prefix(&t.root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                input = format!("{rel} = {mutated:?}");
                let _ = std::fs::write(&path, mutated.as_bytes());
                let r = panic::catch_unwind(AssertUnwindSafe(|| sysfs_invariants(&t.root)));
                let _ = std::fs::write(&path, &original);
                match r {
                    Ok(Ok(v)) => {
                        st.ok += 1;
                        Ok(v)
                    }
                    Ok(Err(())) => {
                        st.err += 1;
                        Ok(None)
                    }
                    Err(p) => Err(panic_text(p)),
                }
            }
            "roundtrip" => {
                let s = random_set(&mut rng);
                input = s.to_list();
                match panic::catch_unwind(AssertUnwindSafe(|| set_invariants(&s))) {
                    Ok(v) => {
                        st.ok += 1;
                        Ok(v)
                    }
                    Err(p) => Err(panic_text(p)),
                }
            }
            _ => {
                let base = rng.pick(&corpus).clone();
                input = if rng.chance(95) {
                    mutate(&mut rng, &base, &corpus)
                } else {
                    base
                };
                let parse: fn(&str) -> Result<CpuSet, _> = match target {
                    "parse_mask" => CpuSet::parse_mask,
                    "parse_any" => CpuSet::parse_any,
                    _ => CpuSet::parse_list,
                };
                match panic::catch_unwind(AssertUnwindSafe(|| {
                    parse(&input).map(|s| (set_invariants(&s), s))
                })) {
                    Ok(Ok((v, s))) => {
                        st.ok += 1;
                        if corpus.len() < 4096 && input.len() < 256 && rng.chance(10) {
                            corpus.push(input.clone());
                        }
                        drop(s);
                        Ok(v)
                    }
                    Ok(Err(e)) => {
                        st.err += 1;
                        if e.0.contains('\n') {
                            Ok(Some("parse error message spans lines".to_string()))
                        } else {
                            Ok(None)
                        }
                    }
                    Err(p) => Err(panic_text(p)),
                }
            }
        };
        st.execs += 1;
        let dt = t0.elapsed();
        if dt > st.slowest {
            st.slowest = dt;
            st.slowest_input = input.clone();
        }
        match outcome {
            Ok(None) => {}
            Ok(Some(bad)) => st.find(format!("invariant: {}", shape_of(&bad)), &input),
            Err(p) => st.find(format!("panic: {}", shape_of(&p)), &input),
        }
    }
    st
}

/// A random set: dense or sparse, small ids or near MAX_ID.
fn random_set(rng: &mut Rng) -> CpuSet {
    let top = *rng.pick(&[
        64usize,
        64,
        256,
        256,
        1024,
        1024,
        8192,
        8192,
        8192,
        MAX_ID + 1,
    ]);
    let base = if rng.chance(20) {
        (MAX_ID + 1).saturating_sub(top)
    } else {
        0
    };
    let n = rng.below(64);
    let mut s = CpuSet::new();
    for _ in 0..n {
        let lo = base + rng.below(top);
        let len = if rng.chance(30) { rng.below(200) } else { 0 };
        for id in lo..=(lo + len).min(MAX_ID) {
            s.insert(id);
        }
    }
    s
}

/// Ok(None): parsed and consistent; Err(()): rejected with a good message; Ok(Some): a finding.
fn env_invariants(vars: &[(String, String)]) -> Result<Option<String>, ()> {
    let env = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match Request::from_env(&env) {
        Ok(r) => {
            if let Some(map) = &r.plan.map {
                if map.iter().any(|s| s.is_empty()) {
                    return Ok(Some("map with an empty CPU list".into()));
                }
                if let Some(bad) = map.iter().find_map(set_invariants) {
                    return Ok(Some(format!("map list: {bad}")));
                }
            }
            if r.plan.mode == gpuaff_core::Mode::Map && r.plan.map.is_none() {
                return Ok(Some("mode map without a map".into()));
            }
            if r.plan.nproc == Some(0) {
                return Ok(Some("nproc 0 accepted".into()));
            }
            // The cheap path agrees with the full parse.
            if config::local_rank(&env).ok().flatten() != r.rank {
                return Ok(Some("local_rank disagrees with from_env".into()));
            }
            Ok(None)
        }
        Err(e) => {
            let m = e.message();
            if m.contains('\n') {
                return Ok(Some(format!("error spans lines: {m:?}")));
            }
            if !vars.iter().any(|(k, _)| m.contains(k.as_str())) {
                return Ok(Some(format!("error names no variable: {m}")));
            }
            Err(())
        }
    }
}

/// An input as a Rust string literal, its middle cut when long.
pub fn abbreviate(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    if chars.len() <= 160 {
        return format!("{input:?}");
    }
    let head: String = chars[..60].iter().collect();
    let tail: String = chars[chars.len() - 60..].iter().collect();
    format!("{head:?} … {tail:?} ({} chars)", chars.len())
}

/// Prints one target's figures; returns its number of findings.
pub fn report(target: &str, st: &Stats, took: Duration) -> usize {
    println!(
        "fuzz {target}: {} executions ({} parsed, {} rejected) in {:.1?} ({:.0}/s), slowest {:.1?} on {}, {} finding(s)",
        st.execs,
        st.ok,
        st.err,
        took,
        st.execs as f64 / took.as_secs_f64().max(1e-9),
        st.slowest,
        abbreviate(&st.slowest_input),
        st.findings.len()
    );
    for (what, (n, input)) in &st.findings {
        println!(
            "  FINDING {target}: {what} ({n} times), e.g. input {}",
            abbreviate(input)
        );
    }
    st.findings.len()
}

/// Quiet panics while fuzzing (they are caught and reported once each).
pub fn quiet_panics() {
    panic::set_hook(Box::new(|_| {}));
}

#[allow(dead_code)]
fn main() {
    let mut execs: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut only: Option<String> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--execs" => execs = val().replace('_', "").parse().expect("--execs N"),
            "--seed" => seed = val().parse().expect("--seed S"),
            "--target" => only = Some(val()),
            _ => {
                eprintln!(
                    "usage: fuzz [--execs N (total)] [--seed S] [--target {}]",
                    TARGETS.join("|")
                );
                std::process::exit(2);
            }
        }
    }
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| only.as_deref().map_or(true, |o| o == *t))
        .collect();
    if targets.is_empty() {
        eprintln!("no such target; targets: {}", TARGETS.join(", "));
        std::process::exit(2);
    }
    quiet_panics();
    // N executions split over the fast targets; the slow ones run a share on top.
    let fast = targets
        .iter()
        .filter(|t| !matches!(**t, "roundtrip" | "sysfs"))
        .count()
        .max(1);
    let per = execs / fast as u64;
    let (mut total, mut findings) = (0u64, 0usize);
    let t0 = Instant::now();
    for t in &targets {
        let start = Instant::now();
        // A sysfs execution writes a file and loads a whole machine: ~1000x a parse. Run alone
        // (--target sysfs), it gets the full count.
        // A round trip of a big generated set costs ~20 parses.
        let n = match *t {
            _ if targets.len() == 1 => per,
            "sysfs" => (per / 1000).max(1),
            "roundtrip" => (per / 20).max(1),
            _ => per,
        };
        let st = run(t, n, seed);
        total += st.execs;
        findings += report(t, &st, start.elapsed());
    }
    println!(
        "fuzz: {total} executions over {} target(s), seed {seed}, {:.1?}, {findings} distinct finding(s)",
        targets.len(),
        t0.elapsed()
    );
    if findings > 0 {
        std::process::exit(1);
    }
}
