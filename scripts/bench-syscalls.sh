#!/usr/bin/env bash
# Files opened and system calls made per binding, and how they grow with the machine: a preloaded
# /bin/true with LOCAL_RANK=0 GPU_AFFINITY_DRY_RUN=1 on fixtures of 16 to 4,096 CPUs, under
# `strace -f -c` (every call) and `strace -f -e trace=openat,open` (files opened). The rows "plain" and
# "no rank" are the floor every row includes (the dynamic loader, libc); the "added" columns subtract
# the "no rank" row.
#
# Usage: [LIB=old/libgpuaff.so] scripts/bench-syscalls.sh      (about 30 seconds; counts, so one run of each is exact)
# Needs strace, python3 and a release build (the script runs `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_setup syscalls "strace python3" strace python3
# LIB=path measures another build (one kept from before a change) with this build's fixtures.
lib=$(realpath "${LIB:-$lib}")

rows=()
measure() { # NAME FSROOT-or-empty ENV...
    local name=$1 fx=$2
    shift 2
    strace -f -c -o "$work/c.txt" env "$@" /bin/true 2>/dev/null
    # -y names each descriptor's path, so an openat relative to a held directory of the fixture
    # (`openat(5</…/cpu>, "cpu3/…")`) counts as under it.
    strace -f -y -e trace=openat,open -o "$work/o.txt" env "$@" /bin/true 2>/dev/null
    python3 - "$work/c.txt" "$work/o.txt" "$fx" "$name" >>"$work/rows.txt" <<'EOF'
import sys
calls = {}
total = 0
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and f[-1] == "total":
        total = int(f[3])
    elif len(f) >= 5 and f[0][0].isdigit() and not f[-1].startswith("-"):
        calls[f[-1]] = int(f[3])
opened = [l for l in open(sys.argv[2]) if "open" in l and "resumed" not in l]
under = [l for l in opened if sys.argv[3] and sys.argv[3] in l] if sys.argv[3] else []
top = ["openat", "read", "close", "statx", "getdents64", "newfstatat"]
print("\t".join([sys.argv[4], str(total), str(len(opened)), str(len(under))] + [str(calls.get(t, 0)) for t in top]))
EOF
}

# What `gpuaff run --fsroot FX` hands down to the processes it starts (GPU_AFFINITY_HANDOFF).
handed() {
    "$target/release/gpuaff" run --lib "$lib" --fsroot "$1" -- /bin/sh -c 'printf %s "$GPU_AFFINITY_HANDOFF"'
}

measure "plain /bin/true" ""
measure "libgpuaff, no rank" "" "LD_PRELOAD=$lib"
for spec in "16 8" "256 8" "1024 8" "4096 8" "1024 72" "4096 72"; do
    read -r cpus gpus <<<"$spec"
    fx="$work/s$cpus-$gpus"
    "$fixture" write-scaled "$cpus" "$gpus" "$fx" >/dev/null
    measure "rank 0, dry run, $cpus CPUs $gpus GPUs (scaled)" "$fx" \
        "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx" GPU_AFFINITY_DRY_RUN=1
    measure "  the same, plan handed down" "$fx" "GPU_AFFINITY_HANDOFF=$(handed "$fx")" \
        "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx" GPU_AFFINITY_DRY_RUN=1
    rm -rf "$fx"
done
fx="$work/dgx-a100"
"$fixture" write dgx-a100 "$fx" >/dev/null
measure "rank 0, dry run, dgx-a100 (256 CPUs 8 GPUs)" "$fx" \
    "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx" GPU_AFFINITY_DRY_RUN=1
measure "  the same, plan handed down" "$fx" "GPU_AFFINITY_HANDOFF=$(handed "$fx")" \
    "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx" GPU_AFFINITY_DRY_RUN=1
for m in dgx-h100 mi300x grace-hopper; do
    fx="$work/$m"
    "$fixture" write "$m" "$fx" >/dev/null
    measure "rank 0, dry run, $m ($("$fixture" list | awk -v m="$m" '$1 == m {print $2}') CPUs)" "$fx" \
        "LD_PRELOAD=$lib" LOCAL_RANK=0 "GPU_AFFINITY_FSROOT=$fx" GPU_AFFINITY_DRY_RUN=1
done

python3 - "$work/rows.txt" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
floor = rows[1]
print("| run | system calls | files opened | of them under the fixture | added calls | added opens | openat | read | close | statx | getdents64 | newfstatat |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    name, total, opened, under = r[0], int(r[1]), int(r[2]), int(r[3])
    added = total - int(floor[1]); added_o = opened - int(floor[2])
    print(f"| {name} | {total} | {opened} | {under} | {added:+d} | {added_o:+d} | " + " | ".join(r[4:]) + " |")
EOF

# What one file costs: a fixture on tmpfs against the live sysfs of this machine (the same small
# topology file), read with open/read/read/close as the shim does; medians of 5 runs of 20,000 reads.
if command -v cc >/dev/null 2>&1; then
    cc -O2 -o "$work/bench_fileread" scripts/bench_fileread.c
    live=/sys/devices/system/cpu/cpu0/topology/core_cpus_list
    [ -r "$live" ] || live=/sys/devices/system/cpu/online
    cp "$live" "$work/copy"
    med() { for _ in 1 2 3 4 5; do "$work/bench_fileread" "$1"; done | sort -n | sed -n 3p; }
    echo
    echo "| one small file (open, read to EOF, close) | ns per file |"
    echo "|---|---:|"
    echo "| live sysfs ($live) | $(med "$live") |"
    echo "| copy under $(dirname "$work") ($(stat -f -c %T "$work")) | $(med "$work/copy") |"
fi
