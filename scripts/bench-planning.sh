#!/usr/bin/env bash
# Planning time as machines grow (criterion, benches/planning): Machine::load (the full sysfs read,
# as `gpuaff plan`/`topo`), plan_all (every rank), session::plan_process for rank 0 on the full machine, and
# the shim's whole planning path (session::plan_for_process for rank 0), on fixture trees written once under
# gpuaff_fixtures::scratch_root() (tmpfs /dev/shm when writable). Prints a markdown table of the
# criterion medians, with files read per load and ratios to the 16-CPU machine.
#
# Usage: scripts/bench-planning.sh [--report]   (about 2.5 minutes; --report only re-reads the last
#                                                results)
# The benchmark crate is outside the main workspace (criterion takes a minute to build), so the first
# run also builds criterion. Uses CARGO_TARGET_DIR when set, else benches/planning/target.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-benches/planning/target}
mkdir -p "$target"
# Absolute: cargo runs the benchmark in its crate's directory, where criterion puts its results
# under CARGO_TARGET_DIR.
target=$(cd "$target" && pwd)
log="$target/bench-planning.log"
if [ "${1:-}" != "--report" ]; then
    CARGO_TARGET_DIR=$target cargo bench --quiet --manifest-path benches/planning/Cargo.toml >"$log" 2>&1 || {
        tail -20 "$log" >&2
        exit 1
    }
fi
python3 - "$target/criterion" "$log" <<'EOF'
import json, os, re, sys
root, log = sys.argv[1], sys.argv[2]
files = {}
for line in open(log):
    m = re.match(r"machine (.+): (\d+) CPUs, (\d+) GPUs, files_read (\d+), shim_files_read (\d+), shim_full_load (\w+)", line)
    if m:
        files[m.group(1)] = (int(m.group(4)), int(m.group(5)), m.group(6))
groups = ["load", "plan_rank0", "plan_all", "shim_plan_rank0"]
def median(group, machine):
    p = os.path.join(root, group, machine, "new", "estimates.json")
    return json.load(open(p))["median"]["point_estimate"] / 1e6  # ms
def fmt(ms):
    return f"{ms*1e3:.1f} µs" if ms < 1 else f"{ms:.2f} ms"
machines = list(files)
base = "scaled 16c 8g"
print("criterion medians; ratio = time / time on the 16-CPU 8-GPU machine.\n")
print("| machine | files read (full load) | files read (shim) | Machine::load (full) | ratio | plan rank 0 | ratio | plan_all | ratio | shim: plan_for_process rank 0 | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in machines:
    full, shim, reloaded = files[m]
    cells = [m, str(full), str(shim) + (" (full re-load)" if reloaded == "true" else "")]
    for g in groups:
        t = median(g, m)
        cells += [fmt(t), f"{t / median(g, base):.1f}"]
    print("| " + " | ".join(cells) + " |")
EOF
