#!/usr/bin/env bash
# Start-up cost of libgpuaff.so against its baselines and the alternatives, measured side by side in
# one hyperfine run (medians of many runs; a markdown table of medians and ratios on stdout).
#
# Usage: [ROUNDS=3] scripts/bench-startup.sh [RUNS]   (default 300 runs per /bin/true command, RUNS/3
#                                         per python3 command, in ROUNDS rounds; about 3 minutes)
# Needs: hyperfine, numactl, hwloc (hwloc-bind), cc, python3, and a release build (the script runs
# `cargo build --release`). Uses CARGO_TARGET_DIR when set.
#
# The binding case: this script writes the 256-CPU, 8-GPU fixture `gpuaff-fixture write-scaled 256 8`
# (8 sockets x 2 NUMA nodes x 8 cores x SMT2; GPU 0 on node 0 = CPUs 0-7,128-135) and preloads with
# LOCAL_RANK=0 GPU_AFFINITY_FSROOT=<it>. The shim plans on the fixture (its CPUs, its allowed set) and
# binds every thread to rank 0's CPUs 0-7,128-135 with sched_setaffinity; the kernel keeps the CPUs
# of that list that exist here (CPU 0, and 1-7 where present), so the binding really happens on any
# machine. The alternatives bind the same list: `taskset -c 0-7,128-135`, `hwloc-bind node:0` reading
# the same fixture through HWLOC_FSROOT (HWLOC_THISSYSTEM=1, since hwloc otherwise treats a foreign
# fsroot as another machine and silently binds nothing), and `numactl --physcpubind` with the CPUs of
# the list that exist here (numactl refuses CPUs this machine lacks).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}

. scripts/bench-lib.sh
bench_setup startup "hyperfine numactl hwloc gcc python3" hyperfine numactl hwloc-bind cc python3
cc -O2 -shared -fPIC -o "$work/empty.so" scripts/empty.c
cc -O2 -shared -fPIC -o "$work/floor.so" scripts/floor.c
fx="$work/s256"
dgx="$work/dgx-a100"
big="$work/s4096-72"
"$fixture" write dgx-a100 "$dgx" >/dev/null
"$fixture" write-scaled 4096 72 "$big" >/dev/null
# What `gpuaff run --fsroot FX` hands down to the processes it starts (GPU_AFFINITY_HANDOFF; no space
# or quote in it, so it can stand in a hyperfine command).
handed() {
    "$target/release/gpuaff" run --lib "$lib" --fsroot "$1" -- /bin/sh -c 'printf %s "$GPU_AFFINITY_HANDOFF"'
}
# The interpreter itself: `python3` on PATH may be a wrapper script (pyenv shims start ~40 processes).
py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
"$fixture" write-scaled 256 8 "$fx" >/dev/null

# Check that each binding case binds before timing it: it must succeed and leave the process on the
# CPUs of 0-7,128-135 that exist here; libgpuaff must also say it bound rank 0 to that list.
# The CPUs of rank 0's list that this process may use: what every binding row must leave it on.
read -r here want < <(python3 -c '
import os
cpus = sorted((set(range(8)) | set(range(128, 136))) & os.sched_getaffinity(0))
runs, start = [], None
for i, c in enumerate(cpus):
    if start is None:
        start = c
    if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
        runs.append(str(start) if start == c else f"{start}-{c}")
        start = None
print(",".join(map(str, cpus)), ",".join(runs))')
if [ -z "$want" ]; then
    echo "bench-startup: this process may use none of CPUs 0-7,128-135; run it where CPU 0 is allowed" >&2
    exit 1
fi
check() {
    local got
    got=$("$@" grep Cpus_allowed_list /proc/self/status 2>"$work/check.err" | awk '{print $2}')
    if [ "$got" != "$want" ]; then
        echo "bench-startup: '$*' left CPUs '$got', expected $want: $(cat "$work/check.err")" >&2
        exit 1
    fi
}
bind=(env "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx")
check "${bind[@]}"
if ! "${bind[@]}" GPU_AFFINITY_VERBOSE=1 /bin/true 2>&1 | grep -q 'rank 0 -> GPU 0 .*CPUs 0-7,128-135'; then
    echo "bench-startup: libgpuaff did not bind rank 0 to CPUs 0-7,128-135 on the fixture" >&2
    exit 1
fi
check env "GPU_AFFINITY_HANDOFF=$(handed "$fx")" "${bind[@]:1}"
check env "LD_PRELOAD=$work/floor.so"
check env taskset -c 0-7,128-135
check env numactl "--physcpubind=$here"
check env HWLOC_THISSYSTEM=1 "HWLOC_FSROOT=$fx" hwloc-bind node:0 --

# Every command starts with `env` (one exec) so that the environment differs without a shell.
names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
add "/bin/true" "env /bin/true"
add "empty C preload" "env LD_PRELOAD=$work/empty.so /bin/true"
add "libgpuaff, no rank" "env LD_PRELOAD=$lib /bin/true"
add "C preload that only calls sched_setaffinity (the floor)" "env LD_PRELOAD=$work/floor.so /bin/true"
dry="LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_DRY_RUN=1"
add "libgpuaff, rank 0, dry run, dgx-a100" "env $dry GPU_AFFINITY_FSROOT=$dgx /bin/true"
add "libgpuaff, rank 0, dry run, dgx-a100, plan handed down" "env GPU_AFFINITY_HANDOFF=$(handed "$dgx") $dry GPU_AFFINITY_FSROOT=$dgx /bin/true"
add "libgpuaff, rank 0, dry run, 4096 CPUs 72 GPUs" "env $dry GPU_AFFINITY_FSROOT=$big /bin/true"
add "libgpuaff, rank 0, dry run, 4096 CPUs 72 GPUs, plan handed down" "env GPU_AFFINITY_HANDOFF=$(handed "$big") $dry GPU_AFFINITY_FSROOT=$big /bin/true"
add "libgpuaff, rank 0 bound (256 CPUs), plan handed down" "env GPU_AFFINITY_HANDOFF=$(handed "$fx") LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx /bin/true"
add "libgpuaff, rank 0, dry run (256 CPUs)" "env LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx GPU_AFFINITY_DRY_RUN=1 /bin/true"
add "libgpuaff, rank 0 bound (256 CPUs)" "env LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx /bin/true"
add "taskset -c 0-7,128-135" "env taskset -c 0-7,128-135 /bin/true"
add "numactl --physcpubind=$here" "env numactl --physcpubind=$here /bin/true"
add "hwloc-bind node:0 (fixture via HWLOC_FSROOT)" "env HWLOC_THISSYSTEM=1 HWLOC_FSROOT=$fx hwloc-bind node:0 -- /bin/true"
add "hwloc-bind node:0 (this machine)" "env hwloc-bind node:0 -- /bin/true"
ntrue=${#cmds[@]}
add "python3 -c pass" "env $py -c pass"
add "python3, empty C preload" "env LD_PRELOAD=$work/empty.so $py -c pass"
add "python3, libgpuaff, no rank" "env LD_PRELOAD=$lib $py -c pass"
add "python3, libgpuaff, rank 0 bound (256 CPUs)" "env LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx $py -c pass"

true_args=() py_args=()
for i in "${!cmds[@]}"; do
    if [ "$i" -lt "$ntrue" ]; then
        true_args+=(-n "${names[$i]}" "${cmds[$i]}")
    else
        py_args+=(-n "${names[$i]}" "${cmds[$i]}")
    fi
done
# hyperfine runs one command's runs back to back; three rounds spread slow drifts of a shared machine
# over every command, and the medians pool all rounds.
rounds=${ROUNDS:-3}
for round in $(seq $rounds); do
    hyperfine -N --style none --warmup 10 --runs $(((runs + rounds - 1) / rounds)) \
        --export-json "$work/startup-$round-a.json" "${true_args[@]}" >/dev/null 2>&1
    hyperfine -N --style none --warmup 3 --runs $(((runs / 3 + rounds - 1) / rounds)) \
        --export-json "$work/startup-$round-b.json" "${py_args[@]}" >/dev/null 2>&1
done

python3 - "$work" "$rounds" <<'EOF'
import json, statistics, sys
times = {}
order = []
for k in range(1, int(sys.argv[2]) + 1):
    for part in "ab":
        for r in json.load(open(f"{sys.argv[1]}/startup-{k}-{part}.json"))["results"]:
            if r["command"] not in times:
                order.append(r["command"])
            times.setdefault(r["command"], []).extend(r["times"])
res = [{"command": c, "times": times[c]} for c in order]
med = {c: statistics.median(t) for c, t in times.items()}
def base(name):
    if name.startswith("python3"):
        return "python3 -c pass"
    return "/bin/true"
floor = {"/bin/true": "empty C preload", "python3 -c pass": "python3, empty C preload"}
print(f"{len(res[0]['times'])} runs per /bin/true command, {len(res[-1]['times'])} per python3 command, "
      f"in {sys.argv[2]} rounds of hyperfine; medians.\n")
print("| command | median (ms) | ratio to baseline | added (ms) | vs empty preload (ms) |")
print("|---|---:|---:|---:|---:|")
for r in res:
    n = r["command"]; b = base(n); m = med[n]
    ratio = m / med[b]
    added = (m - med[b]) * 1e3
    vs_empty = (m - med[floor[b]]) * 1e3
    print(f"| {n} | {m*1e3:.3f} | {ratio:.3f} | {added:+.3f} | {vs_empty:+.3f} |")
EOF

# CPU time and page faults of the load itself, where perf is available (less noisy than wall time):
# the no-rank library against the empty preload, and an empty preload that also needs libgcc_s.so.1
# (libgpuaff needs it for unwinding), which tells how much of the difference that library is.
if command -v perf >/dev/null 2>&1 && perf stat -e task-clock true >/dev/null 2>&1; then
    cc -O2 -shared -fPIC -o "$work/empty_gcc.so" scripts/empty.c -Wl,--no-as-needed -lgcc_s
    echo
    echo "perf stat -r 300 (mean CPU time and page faults of the whole process, /bin/true):"
    echo
    echo "| preload | task-clock (ms) | page faults |"
    echo "|---|---:|---:|"
    for p in "empty C preload=$work/empty.so" "empty C preload + libgcc_s=$work/empty_gcc.so" "libgpuaff, no rank=$lib"; do
        perf stat -x, -e task-clock,page-faults -r 300 env "LD_PRELOAD=${p#*=}" /bin/true 2>&1 >/dev/null |
            awk -F, -v n="${p%%=*}" '$3 ~ /task-clock/ {t=$1} $3 ~ /page-faults/ {f=$1} END {printf "| %s | %.3f | %d |\n", n, t, f}'
    done
fi
