#!/usr/bin/env bash
# Cost of `gpuaff check --all` on a live job: 8 ranks x 200 threads (tests/c/hold.c, preloaded and
# bound on a fixture with 8 GPUs that fits this machine's two CPUs), checked as a prologue/epilogue
# would. Reports the median and fastest wall time of ROUNDS runs of each form (text with the machine
# maps, --json, one named PID), the files the check read by its own count (`files_read`), and the
# files it opened and system calls it made as strace counts them.
#
# Usage: scripts/bench-check.sh [ROUNDS] [RANKS] [THREADS]   (default 15 8 200; about 30 seconds)
# Needs cc, python3, strace and a release build (the script runs `cargo build --release`).
# Discovery walks every process on the machine: the table says how many there were.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
ranks=${2:-8}
threads=${3:-200}
. scripts/bench-lib.sh
bench_setup check "gcc python3 strace" cc python3 strace
gpuaff="$target/release/gpuaff"
cc -O2 -pthread -I c-header -o "$work/hold" tests/c/hold.c
fx="$work/fx"
"$fixture" write-scaled 2 "$ranks" "$fx" >/dev/null

# The holders read stdin until EOF: a FIFO this script keeps open for writing.
mkfifo "$work/keep"
exec 9<>"$work/keep"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for r in $(seq 0 $((ranks - 1))); do
    env LD_PRELOAD="$lib" LOCAL_RANK="$r" LOCAL_WORLD_SIZE="$ranks" GPU_AFFINITY_FSROOT="$fx" \
        "$work/hold" $((threads - 1)) alarm 900 <"$work/keep" >"$work/ready.$r" 2>/dev/null &
    pids+=($!)
done
for r in $(seq 0 $((ranks - 1))); do
    for _ in $(seq 600); do
        grep -q ready "$work/ready.$r" && break
        sleep 0.05
    done
    grep -q ready "$work/ready.$r" || { echo "bench-check: rank $r did not start" >&2; exit 1; }
done

"$gpuaff" check --all --json >"$work/check.json" || true
strace -f -c -o "$work/c.txt" "$gpuaff" check --all --json >/dev/null || true
strace -f -e trace=openat,open -o "$work/o.txt" "$gpuaff" check --all --json >/dev/null || true
nprocs=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)

python3 - "$work" "$rounds" "$ranks" "$threads" "$nprocs" "$gpuaff" "${pids[0]}" "${pids[@]}" <<'EOF'
import json, statistics, subprocess, sys, time
work, rounds, ranks, threads, nprocs, gpuaff, one = sys.argv[1:8]
ours = {int(p) for p in sys.argv[8:]}
rounds = int(rounds)
d = json.load(open(f"{work}/check.json"))
mine = [p for p in d["processes"] if p["pid"] in ours]
assert len(mine) == int(ranks), f"found {len(mine)} of {ranks} ranks"
nthreads = sum(len(p["threads"]) for p in mine)
ok = all(p["ok"] for p in mine)
pidlist = " ".join(str(p) for p in sorted(ours))
# (name, command, rounds): the hand-made baseline forks once per thread, so it runs fewer rounds.
few = max(3, rounds // 5)
forms = [
    ("check --all (text, machine maps)", [gpuaff, "check", "--all"], rounds),
    ("check --all --json", [gpuaff, "check", "--all", "--json"], rounds),
    ("check PID (one rank, text)", [gpuaff, "check", one], rounds),
    # For scale: what the check replaces, by hand (masks only: no plan, no memory, no judgement).
    ("taskset -cp per thread (baseline)",
     ["bash", "-c", f"for p in {pidlist}; do for t in /proc/$p/task/*; do taskset -cp ${{t##*/}}; done; done"], few),
]
if subprocess.run(["sh", "-c", "command -v hwloc-ps"], stdout=subprocess.DEVNULL).returncode == 0:
    forms.append(("hwloc-ps -t (baseline: every process's threads and masks)", ["hwloc-ps", "-t"], rounds))
times = {name: [] for name, _, _ in forms}
for r in range(rounds):
    for name, cmd, n in forms:
        if r >= n:
            continue
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append((time.perf_counter() - t) * 1000)
calls = total = 0
for line in open(f"{work}/c.txt"):
    f = line.split()
    if len(f) >= 5 and f[-1] == "total":
        total = int(f[3])
opened = [l for l in open(f"{work}/o.txt") if "open" in l and "resumed" not in l]
under_proc = [l for l in opened if '"/proc/' in l]
print(f"{ranks} ranks x {threads} threads ({nthreads} threads found, all matching their plan: {ok}); "
      f"{len(d['processes'])} processes checked of {nprocs} on the machine; {rounds} rounds.\n")
# Every rank must still be there (and still match): a timing of nothing is no timing.
after = json.loads(subprocess.run([gpuaff, "check", "--json"] + [str(p) for p in sorted(ours)],
                                  capture_output=True, text=True).stdout)
assert after["ok"] and len(after["processes"]) == int(ranks), "the ranks changed during the benchmark"
print("| form | runs | median ms | fastest ms |")
print("|---|---:|---:|---:|")
for name, _, _ in forms:
    v = times[name]
    print(f"| `{name}` | {len(v)} | {statistics.median(v):.1f} | {min(v):.1f} |")
print(f"\n`check --all --json`: files read by its own count {d['files_read']}; strace: {len(opened)} opens "
      f"({len(under_proc)} under /proc), {total} system calls in all.")
EOF
