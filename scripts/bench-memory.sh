#!/usr/bin/env bash
# Size of the stripped libgpuaff.so (the release profile strips symbols) and the resident memory it
# adds to a process: VmRSS (and its anonymous/file split) of a sleeping `sleep` started plain, with an
# empty C preload library, with libgpuaff and no rank, and with libgpuaff binding rank 0 on the
# 256-CPU fixture. Medians of 5 processes each.
#
# Usage: scripts/bench-memory.sh       (about 10 seconds)
# Needs cc, python3 and a release build (the script runs `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_setup memory "gcc python3" cc python3
cc -O2 -shared -fPIC -o "$work/empty.so" scripts/empty.c
fx="$work/s256"
"$fixture" write-scaled 256 8 "$fx" >/dev/null

echo "libgpuaff.so: $(stat -c %s "$lib") bytes on disk ($(file -b "$lib" | grep -o 'stripped\|not stripped' || true)); empty.so: $(stat -c %s "$work/empty.so") bytes"
size -A "$lib" | awk '$1 ~ /^\.(text|rodata|data\.rel\.ro|data|bss|eh_frame)$/ {printf "  %s %d\n", $1, $2}'
echo

rss() { # NAME ENV...
    local name=$1
    shift
    for _ in 1 2 3 4 5; do
        env "$@" sleep 3 2>/dev/null &
        local pid=$!
        sleep 0.3
        awk -v n="$name" '/^(VmRSS|RssAnon|RssFile):/ {v[$1]=$2} END {print n "\t" v["VmRSS:"] "\t" v["RssAnon:"] "\t" v["RssFile:"]}' "/proc/$pid/status"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
}
{
    rss "plain"
    rss "empty C preload" "LD_PRELOAD=$work/empty.so"
    rss "libgpuaff, no rank" "LD_PRELOAD=$lib"
    rss "libgpuaff, rank 0 bound (256 CPUs)" "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx"
} >"$work/rss.txt"
python3 - "$work/rss.txt" <<'PY'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    n, *v = line.rstrip("\n").split("\t")
    if n not in rows:
        order.append(n)
    rows.setdefault(n, []).append([int(x) for x in v])
med = {n: [statistics.median(c) for c in zip(*v)] for n, v in rows.items()}
print("| process (`sleep`) | VmRSS (KiB) | RssAnon (KiB) | RssFile (KiB) | added VmRSS vs plain (KiB) | vs empty preload (KiB) |")
print("|---|---:|---:|---:|---:|---:|")
for n in order:
    m = med[n]
    print(f"| {n} | {m[0]:.0f} | {m[1]:.0f} | {m[2]:.0f} | {m[0]-med['plain'][0]:+.0f} | {m[0]-med['empty C preload'][0]:+.0f} |")
PY
