#!/usr/bin/env bash
# Cost of the pthread_create hook: create+join 10,000 threads one at a time (scripts/bench_threads.c),
# plain, with libgpuaff preloaded and no rank (the hook passes through), and with a binding in force.
#
# Usage: scripts/bench-threads.sh [ROUNDS] [THREADS]   (default 15 rounds of 10,000; about 1 minute)
# Needs cc, python3 and a release build (the script runs `cargo build --release`).
#
# On a shared machine the cost of a thread depends mostly on where the scheduler puts it: a thread
# confined to one CPU starts and joins about twice as fast as one that may wake on another. So each
# variant runs both unconfined and confined to CPU 0, and the hook's cost with a binding is read
# against plain-on-CPU-0. The binding is planned on the catalog fixture `two-gpu-split` (2 CPUs,
# GPU n on node n = CPU n): rank 0 is bound to CPU 0, a CPU every machine has. Each round
# runs every variant once, in turn, so slow drifts hit all variants alike; the table gives medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
threads=${2:-10000}
. scripts/bench-lib.sh
bench_setup threads "gcc python3" cc python3
cc -O2 -pthread -o "$work/bench_threads" scripts/bench_threads.c
cc -O2 -shared -fPIC -o "$work/empty.so" scripts/empty.c
fx="$work/split"
"$fixture" write two-gpu-split "$fx" >/dev/null
bt="$work/bench_threads"

names=() cmds=()
add() { names+=("$1"); cmds+=("$2"); }
add "plain" "$bt $threads"
add "empty C preload" "env LD_PRELOAD=$work/empty.so $bt $threads"
add "libgpuaff, no rank" "env LD_PRELOAD=$lib $bt $threads"
add "plain, taskset -c 0" "taskset -c 0 $bt $threads"
add "libgpuaff, no rank, taskset -c 0" "env LD_PRELOAD=$lib taskset -c 0 $bt $threads"
add "libgpuaff, rank 0 bound to CPU 0" "env LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx $bt $threads"
add "plain, taskset -c 0, affinity attribute (glibc's cost of one)" "taskset -c 0 $bt $threads attr"
add "libgpuaff bound, GPU_AFFINITY_THREADS=off" "env LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$fx GPU_AFFINITY_THREADS=off $bt $threads"
add "(one sched_getaffinity system call, for scale)" "taskset -c 0 $bt $threads syscall"

out="$work/results.txt"
for r in $(seq "$rounds"); do
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086 # the command lines are word lists
        line=$(${cmds[$i]} 2>/dev/null)
        echo "$i $line" >>"$out"
    done
done

python3 - "$out" "$rounds" "$threads" "${names[@]}" <<'EOF'
import statistics, sys
path, rounds, threads, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ns = {i: [] for i in range(len(names))}
cpus = {}
for line in open(path):
    i, per, n, c = line.split()
    ns[int(i)].append(float(per))
    cpus[int(i)] = c
med = {i: statistics.median(v) for i, v in ns.items()}
lo = {i: min(v) for i, v in ns.items()}
baseline = {0: 0, 1: 0, 2: 0, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 8}
print(f"{rounds} rounds of {threads} threads created and joined one at a time; medians of the rounds.\n")
print("| variant | CPUs a new thread may use | median ns/thread | fastest round | baseline | difference of medians (ns) | of fastest rounds (ns) | ratio of medians |")
print("|---|---:|---:|---:|---|---:|---:|---:|")
for i, name in enumerate(names):
    b = baseline[i]
    print(f"| {name} | {cpus[i]} | {med[i]:.0f} | {lo[i]:.0f} | {names[b]} | {med[i]-med[b]:+.0f} | {lo[i]-lo[b]:+.0f} | {med[i]/med[b]:.3f} |")
EOF
