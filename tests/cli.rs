//! The `gpuaff` command as a user runs it: plans on fixture trees (text and JSON), exit statuses, and
//! `gpuaff run` preloading the real library into a real process.

mod common;

use common::{fixture, query, require_cpus_0_and_1, so_path, Proc, Run};

fn gpuaff() -> Proc {
    Proc::new(env!("CARGO_BIN_EXE_gpuaff"))
}

/// The `"cpulist"` of every rank in `gpuaff plan --json` output, read by python3's json module so the
/// output is checked as JSON, not as text.
fn cpulists(run: &Run) -> Vec<String> {
    query(
        run,
        "for r in d['ranks']: print(r.get('cpulist', 'error: ' + r.get('error', '?')))",
    )
}

#[test]
fn plan_json_matches_the_worked_example() {
    let fx = fixture("example1");
    for (mode, want) in [
        (
            "socket_unique_contiguous",
            ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"],
        ),
        ("socket_single_unique", ["0,8", "1,9", "4,12", "5,13"]),
        ("node", ["0-3,8-11", "0-3,8-11", "4-7,12-15", "4-7,12-15"]),
        (
            "exclusive",
            ["0-1,8-9", "2-3,10-11", "4-5,12-13", "6-7,14-15"],
        ),
    ] {
        let run = gpuaff()
            .args(["plan", "--json", "--mode", mode, "--fsroot"])
            .arg(fx.path())
            .run();
        assert_eq!(run.code(), Some(0), "{mode}\n{}", run.describe());
        assert_eq!(cpulists(&run), want, "{mode}");
    }
    // CUDA_VISIBLE_DEVICES applies as for the shim (docs/MODES.md: two ranks on GPUs 2,3).
    let run = gpuaff()
        .env("CUDA_VISIBLE_DEVICES", "2,3")
        .args(["plan", "--json", "--mode", "exclusive", "--fsroot"])
        .arg(fx.path())
        .run();
    assert_eq!(
        cpulists(&run),
        ["4-5,12-13", "6-7,14-15"],
        "{}",
        run.describe()
    );
}

#[test]
fn plan_text_shows_the_table_and_the_map() {
    let fx = fixture("dgx-a100");
    let run = gpuaff().args(["plan", "--fsroot"]).arg(fx.path()).run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout
            .contains("   1    1  0000:0f:00.0     3  56-63,184-191"),
        "{}",
        run.stdout
    );
    // Node 3 holds ranks 0 and 1, eight cores each; node 0 has no GPU.
    assert!(
        run.stdout
            .contains("node   3  cores   48-63    0000000011111111  GPU 0,1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("node   0  cores    0-15    ................\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn allowed_restricts_and_unplannable_ranks_exit_1() {
    let fx = fixture("example1");
    // Only socket 1 allowed: GPUs 0,1 fall back to what is allowed, with a note.
    let run = gpuaff()
        .args([
            "plan",
            "--allowed",
            "4-7,12-15",
            "--mode",
            "node",
            "--fsroot",
        ])
        .arg(fx.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(run.stdout.contains("notes:"), "{}", run.stdout);
    // map with a CPU outside the allowed set: that rank cannot be planned.
    let run = gpuaff()
        .env("GPU_AFFINITY_MAP", "0-1;2-3;4-5;99")
        .args(["plan", "--json", "--fsroot"])
        .arg(fx.path())
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    let lists = cpulists(&run);
    assert_eq!(lists[..3], ["0-1", "2-3", "4-5"]);
    assert!(lists[3].starts_with("error: "), "{lists:?}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let fx = fixture("example1");
    for args in [
        vec!["plan", "--mode", "sokcet"],
        vec!["plan", "--cores", "two"],
        vec!["plan", "--nproc", "0"],
        vec!["plan", "--allowed", "x-y"],
        vec!["plan", "--frobnicate"],
        vec!["frobnicate"],
        vec!["run"],
    ] {
        let run = gpuaff().args(&args).arg("--fsroot").arg(fx.path()).run();
        assert_eq!(run.code(), Some(2), "{args:?}\n{}", run.describe());
        assert!(
            run.stderr.starts_with("gpuaff: "),
            "{args:?}\n{}",
            run.describe()
        );
        assert!(run.stdout.is_empty(), "{args:?}: errors go to stderr");
    }
    let run = gpuaff()
        .args(["plan", "--fsroot", "/nonexistent/gpuaff"])
        .run();
    assert_eq!(run.code(), Some(2), "{}", run.describe());
}

#[test]
fn topo_json_is_json_and_names_cpuless_nodes() {
    let fx = fixture("grace-4gpu");
    let run = gpuaff()
        .args(["topo", "--json", "--fsroot"])
        .arg(fx.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let py = "import json,sys\nd=json.load(sys.stdin)\nprint(len(d['gpus']), sorted(n['node'] for n in d['nodes'] if not n['cpus']), [g['memory_node'] for g in d['gpus']])";
    let out = std::process::Command::new("python3")
        .args(["-c", py])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(run.stdout.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "4 [4, 5, 6, 7] [4, 5, 6, 7]",
        "{}",
        run.stdout
    );
}

#[test]
fn run_preloads_the_library_and_binds_the_command() {
    require_cpus_0_and_1();
    let fx = fixture("two-gpu-local");
    // Rank 0 names the library; rank 1 lets gpuaff find it next to itself.
    for (rank, want, lib) in [
        ("0", "0", vec!["--lib".into(), so_path()]),
        ("1", "1", vec![]),
    ] {
        let run = gpuaff()
            .env("LOCAL_RANK", rank)
            .arg("run")
            .args(lib)
            .args(["--verbose", "--fsroot"])
            .arg(fx.path())
            .args(["--", "sh", "-c", "grep Cpus_allowed_list /proc/self/status"])
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        assert_eq!(
            run.stdout.trim(),
            format!("Cpus_allowed_list:\t{want}"),
            "{}",
            run.describe()
        );
        assert!(
            run.stderr
                .contains(&format!("gpuaff: rank {rank} -> GPU {rank} ")),
            "{}",
            run.describe()
        );
    }
}

/// Each CUDA_VISIBLE_DEVICES warning appears once, in the text and in the JSON form (it was printed
/// twice when the command repeated the session's visible-GPU resolution).
#[test]
fn visible_device_warnings_appear_once() {
    let fx = fixture("example1");
    for json in [false, true] {
        let mut p = gpuaff()
            .env("CUDA_VISIBLE_DEVICES", "1,7,2")
            .args(["plan", "--fsroot"])
            .arg(fx.path());
        if json {
            p = p.arg("--json");
        }
        let run = p.run();
        assert_eq!(run.code(), Some(0), "{}", run.describe());
        let all = format!("{}{}", run.stdout, run.stderr);
        assert_eq!(
            all.matches("entry \\\"7\\\" is invalid").count()
                + all.matches("entry \"7\" is invalid").count(),
            1,
            "json={json}\n{}",
            run.describe()
        );
    }
}

/// AMD GPUs: ROCm's order and ROCR_VISIBLE_DEVICES, then HIP_VISIBLE_DEVICES over what ROCr left,
/// on the MI300X (2 sockets x 96 cores, SMT2, 4 GPUs per socket) and MI300A (4 APUs) fixtures.
#[test]
fn amd_plans_follow_rocm_visibility() {
    let plan = |machine: &str, vars: &[(&str, &str)]| {
        let fx = fixture(machine);
        let run = gpuaff()
            .envs(vars)
            .args(["plan", "--json", "--fsroot"])
            .arg(fx.path())
            .run();
        assert_eq!(
            run.code(),
            Some(0),
            "{machine} {vars:?}\n{}",
            run.describe()
        );
        cpulists(&run)
    };
    let all = plan("mi300x", &[]);
    assert_eq!(all.len(), 8);
    assert_eq!(all[0], "0-23,192-215");
    assert_eq!(all[5], "120-143,312-335");
    assert_eq!(
        plan("mi300x", &[("ROCR_VISIBLE_DEVICES", "4,5")]),
        ["96-143,288-335", "144-191,336-383"]
    );
    assert_eq!(
        plan(
            "mi300x",
            &[
                ("ROCR_VISIBLE_DEVICES", "4,5"),
                ("HIP_VISIBLE_DEVICES", "1")
            ]
        ),
        ["96-191,288-383"]
    );
    assert_eq!(
        plan("mi300a", &[("HIP_VISIBLE_DEVICES", "2,0")]),
        ["48-71,144-167", "0-23,96-119"]
    );
    // HIP reads CUDA_VISIBLE_DEVICES when HIP_VISIBLE_DEVICES is unset.
    assert_eq!(
        plan("mi300a", &[("CUDA_VISIBLE_DEVICES", "3")]),
        ["72-95,168-191"]
    );
}
