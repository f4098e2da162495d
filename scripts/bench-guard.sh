#!/usr/bin/env bash
# What the guard costs per call: pthread_create+join (plain, and with an affinity attribute outside
# the binding) and sched_setaffinity (to the caller's own mask, inside the binding; to every CPU,
# outside it), called from a shared library (whose calls the guard judges), and the last once more from
# the program itself (which the guard lets through once it has found the caller), without gpuaff, preloaded without a rank, and bound (rank 0 of two-gpu-local: CPU 0)
# under GPU_AFFINITY_GUARD=off, warn and clamp. Each process reports the fastest of 20 batches per
# call (preemption on a shared machine only adds time); the table has the median over REPS processes
# and the ratio against guard off.
#
# Usage: scripts/bench-guard.sh [N] [REPS]   (N creates, 10*N setaffinity calls per process; default
#                                            2000 and 7; about 20 seconds)
# Needs cc and python3 and a release build (the script runs `cargo build --release`). CPU 0 must be
# usable; the outside-the-binding rows also need a second CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
reps=${2:-7}
. scripts/bench-lib.sh
bench_setup guard "gcc python3" cc python3
cc -O2 -pthread -shared -fPIC -DBENCH_LIB -o "$work/libbenchguard.so" scripts/bench_guard.c
cc -O2 -pthread -o "$work/bench_guard" scripts/bench_guard.c -L"$work" -lbenchguard -Wl,-rpath,"$work"
"$fixture" write two-gpu-local "$work/fx" >/dev/null

run() { # NAME ENV...
    local name=$1
    shift
    for _ in $(seq "$reps"); do
        echo "$name $(env "$@" "$work/bench_guard" "$n" 2>/dev/null)"
    done
}
{
    run "no gpuaff"
    run "preloaded, no rank" LD_PRELOAD="$lib"
    for g in off warn clamp; do
        run "bound, guard $g" LD_PRELOAD="$lib" LOCAL_RANK=0 GPU_AFFINITY_FSROOT="$work/fx" GPU_AFFINITY_GUARD=$g
    done
} | python3 -c '
import statistics, sys
rows = {}
for line in sys.stdin:
    *name, a, b, c, d, e = line.split()
    rows.setdefault(" ".join(name), []).append([float(x) for x in (a, b, c, d, e)])
med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
base = med["bound, guard off"]
cols = ["pthread_create+join", "create with attribute outside", "sched_setaffinity inside",
        "sched_setaffinity outside", "sched_setaffinity outside, from the program"]
print("| process | " + " | ".join(c + " (ns)" for c in cols) + " |")
print("|---|" + "---|" * len(cols))
for k, v in med.items():
    print(f"| {k} | " + " | ".join(f"{x:,.0f} ({x / b:.2f}x)" for x, b in zip(v, base)) + " |")
'
