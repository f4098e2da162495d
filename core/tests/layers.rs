//! The core's modules import only downwards: no import cycle between them
//! (`scripts/module-graph.py` prints the graph and fails on a cycle).

use std::path::Path;
use std::process::Command;

#[test]
fn no_import_cycle_between_core_modules() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/module-graph.py");
    let out = Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs the module graph");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.trim_end().ends_with("no cycle"), "{text}");
    // The planner knows nothing of requests, machines or sessions.
    let plan = text
        .lines()
        .find(|l| l.starts_with("plan "))
        .expect("plan's line");
    for above in ["config", "machine", "session", "render"] {
        assert!(!plan.contains(above), "{plan}");
    }
}
