//! Bad inputs never break the host program: it runs to its normal end with its affinity untouched
//! and exactly one `gpuaff:` line on stderr; with GPU_AFFINITY_STRICT=1 it exits with status 66.

mod common;
use common::*;

/// What a case runs against.
#[derive(Clone, Copy)]
enum Root {
    Fixture(&'static str),
    NoGpu,
    Empty,
    Missing,
}

struct Case<'a> {
    name: &'a str,
    root: Root,
    env: &'a [(&'a str, &'a str)],
}

const fn case(
    name: &'static str,
    root: Root,
    env: &'static [(&'static str, &'static str)],
) -> Case<'static> {
    Case { name, root, env }
}

use Root::*;
const LOCAL: Root = Fixture("two-gpu-local");

fn cases() -> Vec<Case<'static>> {
    vec![
        case("rank not a number", LOCAL, &[("LOCAL_RANK", "abc")]),
        case("negative rank", LOCAL, &[("LOCAL_RANK", "-1")]),
        case("rank beyond the GPUs", LOCAL, &[("LOCAL_RANK", "99")]),
        case("launcher rank garbage", LOCAL, &[("SLURM_LOCALID", "x")]),
        case(
            "unknown mode",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_MODE", "sokcet")],
        ),
        case(
            "malformed map",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_MAP", "0-;1")],
        ),
        case(
            "map mode without map",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_MODE", "map")],
        ),
        case(
            "map outside the allowed CPUs",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_MAP", "64-65;66-67")],
        ),
        case("missing fsroot", Missing, &[("LOCAL_RANK", "0")]),
        case("empty fsroot", Empty, &[("LOCAL_RANK", "0")]),
        case(
            "bad membind",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_MEMBIND", "always")],
        ),
        case(
            "bad cores",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_CORES", "some")],
        ),
        case(
            "bad balanced",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_BALANCED", "maybe")],
        ),
        case(
            "bad source",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_SOURCE", "cuda")],
        ),
        case(
            "bad threads",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_THREADS", "all")],
        ),
        case(
            "bad verbose",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_VERBOSE", "2")],
        ),
        case(
            "bad dry run",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_DRY_RUN", "perhaps")],
        ),
        // (A list naming no GPU at all, such as "garbage" or "-1", is "no GPU": quiet, see below.)
        case(
            "CUDA_VISIBLE_DEVICES beyond its entry limit",
            LOCAL,
            Box::leak(Box::new([
                ("LOCAL_RANK", "0"),
                (
                    "CUDA_VISIBLE_DEVICES",
                    &*Box::leak("0,".repeat(5000).into_boxed_str()),
                ),
            ])),
        ),
        case(
            "GPU_AFFINITY_MAP beyond its size limit",
            LOCAL,
            Box::leak(Box::new([
                ("LOCAL_RANK", "0"),
                (
                    "GPU_AFFINITY_MAP",
                    &*Box::leak("0-131071;".repeat(8000).into_boxed_str()),
                ),
            ])),
        ),
        case(
            "bad device order",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("CUDA_DEVICE_ORDER", "RANDOM")],
        ),
        case(
            "GPU override beyond the GPUs",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_GPU", "5")],
        ),
        case(
            "zero processes",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_NPROC", "0")],
        ),
        case(
            "processes not a number",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("GPU_AFFINITY_NPROC", "two")],
        ),
        case(
            "local world size garbage",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", "-3")],
        ),
    ]
}

fn run_case(c: &Case, strict: bool) -> Run {
    let no_gpu = gpuaff_fixtures::Spec::new("no-gpu", 1, 1, 2, 1);
    let mut _keep = None;
    let empty;
    let root: std::path::PathBuf = match c.root {
        Fixture(name) => {
            let t = fixture(name);
            let p = t.path().to_path_buf();
            _keep = Some(t);
            p
        }
        NoGpu => {
            let t = fixture_spec(&no_gpu);
            let p = t.path().to_path_buf();
            _keep = Some(t);
            p
        }
        Empty => {
            empty = std::env::temp_dir().join(format!(
                "gpuaff-empty-{}-{}",
                std::process::id(),
                c.name.replace(' ', "-")
            ));
            std::fs::create_dir_all(&empty).expect("empty dir");
            empty.clone()
        }
        Missing => std::path::PathBuf::from("/nonexistent/gpuaff/fsroot"),
    };
    let mut p = Proc::new(c_program("threads", false))
        .arg("2")
        .arg("0")
        .preload()
        .env("GPU_AFFINITY_FSROOT", &root)
        .envs(c.env);
    if strict {
        p = p.env("GPU_AFFINITY_STRICT", "1");
    }
    let run = p.run();
    if let Empty = c.root {
        let _ = std::fs::remove_dir(&root);
    }
    run
}

#[test]
fn bad_inputs_leave_the_process_alone_with_one_warning() {
    require_cpus_0_and_1();
    let own = own_cpus();
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for c in &cases {
        let run = run_case(c, false);
        let lines = run.stderr_lines();
        // Unbound, the attribute thread and the thread it creates have the attribute's CPU.
        let attr = run.field("thread 0 ", "tid").unwrap_or_default();
        let sub = run.field("thread sub", "tid").unwrap_or_default();
        let unchanged = run
            .tasks()
            .iter()
            .all(|(tid, cpus)| *tid == attr || *tid == sub || *cpus == own);
        let ok = run.code() == Some(0)
            && run.stdout.ends_with("done\n")
            && lines.len() == 1
            && lines[0].starts_with("gpuaff: ")
            && unchanged
            && run.tasks().len() >= 3;
        if !ok {
            failures.push(format!("case {:?}:\n{}", c.name, run.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_inputs_in_strict_mode_exit_66() {
    require_cpus_0_and_1();
    let mut failures = Vec::new();
    for c in &cases() {
        let run = run_case(c, true);
        let lines = run.stderr_lines();
        let ok = run.code() == Some(66)
            && run.stdout.is_empty()
            && lines.len() == 1
            && lines[0].starts_with("gpuaff: ");
        if !ok {
            failures.push(format!("case {:?} (strict):\n{}", c.name, run.describe()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// No GPU is not an error to shout about: a CPU-only machine (or a process given
/// `CUDA_VISIBLE_DEVICES=""`) runs untouched and silent; verbose says why; strict still refuses.
#[test]
fn no_gpu_is_silent_unless_verbose() {
    require_cpus_0_and_1();
    let own = own_cpus();
    let cases = [
        case("machine without GPU", NoGpu, &[("LOCAL_RANK", "0")]),
        case(
            "CUDA_VISIBLE_DEVICES empty",
            LOCAL,
            &[("LOCAL_RANK", "0"), ("CUDA_VISIBLE_DEVICES", "")],
        ),
    ];
    for c in cases {
        let Case { name, root, env } = c;
        let quiet = run_case(&c, false);
        assert_eq!(quiet.code(), Some(0), "{name}\n{}", quiet.describe());
        assert!(
            quiet.stderr.is_empty(),
            "{name}: silent\n{}",
            quiet.describe()
        );
        assert!(
            quiet.stdout.ends_with("done\n"),
            "{name}\n{}",
            quiet.describe()
        );
        let main_cpus = quiet.field("main", "cpus");
        assert_eq!(
            main_cpus.as_deref(),
            Some(own.as_str()),
            "{name}: unbound\n{}",
            quiet.describe()
        );

        let mut envs: Vec<(&str, &str)> = env.to_vec();
        envs.push(("GPU_AFFINITY_VERBOSE", "1"));
        let verbose = Case {
            name,
            root,
            env: &envs,
        };
        let loud = run_case(&verbose, false);
        let lines = loud.stderr_lines();
        assert_eq!(loud.code(), Some(0), "{name}\n{}", loud.describe());
        assert!(
            lines.len() == 1 && lines[0].ends_with("nothing to bind"),
            "{name}\n{}",
            loud.describe()
        );

        let strict = run_case(&verbose, true);
        assert_eq!(
            strict.code(),
            Some(66),
            "{name}: strict\n{}",
            strict.describe()
        );
    }
}

#[test]
fn visible_devices_naming_no_gpu_are_quiet_like_the_empty_value() {
    // "-1" is the usual way to hide every GPU: no GPU, nothing bound, nothing said.
    require_cpus_0_and_1();
    let own = own_cpus();
    let fx = fixture("two-gpu-local");
    for cvd in ["", "-1", "garbage", "7,0"] {
        let run = preloaded(c_program("threads", false), &fx, "0")
            .args(["2", "0"])
            .env("CUDA_VISIBLE_DEVICES", cvd)
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert_eq!(run.stderr, "", "CUDA_VISIBLE_DEVICES={cvd:?}");
        assert_eq!(run.field("main ", "cpus"), Some(own.clone()), "{cvd:?}");
    }
}
