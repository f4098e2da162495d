#!/usr/bin/env bash
# The start-up table side by side, interleaved: every round runs each command once (scripts/interleave.c),
# so the drifts of a shared machine fall on all of them alike; medians per command, and the difference
# from the empty C preload. Rows: the floor (a C preload that only calls sched_setaffinity), taskset,
# numactl, hwloc-bind on the 256-CPU fixture, libgpuaff with no rank, rank 0 on the dgx-a100 fixture
# (dry run: its CPUs are not this machine's), bound on the 256-CPU fixture, and 4,096 CPUs / 72 GPUs
# (dry run), each planning for itself and with the plan handed down by `gpuaff run`; and, where strace
# is installed, a C program reading exactly the files those rank-0 plans read (scripts/readfiles.c):
# the floor of planning for itself, whatever the code around the reads.
#
# Usage: scripts/bench-interleaved.sh [ROUNDS] [OLD_LIB]   (default 400; about 3 minutes here)
# OLD_LIB: another build of libgpuaff.so (kept from before a change); its no-rank, dgx-a100 and
# 4,096/72 rows are added, so that before and after are measured in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-400}
old=${2:-}
. scripts/bench-lib.sh
bench_setup interleaved "hyperfine numactl hwloc gcc" numactl hwloc-bind cc
cc -O2 -shared -fPIC -o "$work/empty.so" scripts/empty.c
cc -O2 -shared -fPIC -o "$work/floor.so" scripts/floor.c
cc -O2 -o "$work/interleave" scripts/interleave.c
cc -O2 -o "$work/readfiles" scripts/readfiles.c
s256="$work/s256" dgx="$work/dgx" big="$work/s4096-72"
"$fixture" write-scaled 256 8 "$s256" >/dev/null
"$fixture" write dgx-a100 "$dgx" >/dev/null
"$fixture" write-scaled 4096 72 "$big" >/dev/null
handed() {
    "$target/release/gpuaff" run --lib "$lib" --fsroot "$1" -- /bin/sh -c 'printf %s "$GPU_AFFINITY_HANDOFF"'
}
# The files a rank-0 plan opens under FSROOT (strace -y names each descriptor's path), for the
# readfiles rows: the cost of those files alone, read by a C program that does nothing else.
files_of() {
    strace -f -y -e trace=openat -o "$work/open.txt" env LD_PRELOAD="$lib" LOCAL_RANK=0 \
        GPU_AFFINITY_DRY_RUN=1 GPU_AFFINITY_FSROOT="$1" /bin/true 2>/dev/null
    grep -o "= [0-9]*<$1[^>]*>" "$work/open.txt" | sed 's/^= [0-9]*<//; s/>$//' |
        while read -r p; do [ -f "$p" ] && echo "$p"; done >"$2"
}
: >"$work/none.txt"
have_strace=$(command -v strace >/dev/null 2>&1 && echo 1 || echo "")
if [ -n "$have_strace" ]; then
    files_of "$dgx" "$work/files-dgx.txt"
    files_of "$big" "$work/files-big.txt"
fi
here=$(python3 -c 'import os; print(",".join(map(str, sorted({0,1,2,3,4,5,6,7} & os.sched_getaffinity(0)))))')
e=/usr/bin/env
dry="LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_DRY_RUN=1"
{
    printf '%s\t%s\n' "/bin/true" "$e /bin/true"
    printf '%s\t%s\n' "empty C preload" "$e LD_PRELOAD=$work/empty.so /bin/true"
    printf '%s\t%s\n' "C preload calling only sched_setaffinity (floor)" "$e LD_PRELOAD=$work/floor.so /bin/true"
    printf '%s\t%s\n' "taskset -c 0-7,128-135" "$e taskset -c 0-7,128-135 /bin/true"
    printf '%s\t%s\n' "numactl --physcpubind=$here" "$e numactl --physcpubind=$here /bin/true"
    printf '%s\t%s\n' "hwloc-bind node:0 (256-CPU fixture)" "$e HWLOC_THISSYSTEM=1 HWLOC_FSROOT=$s256 hwloc-bind node:0 -- /bin/true"
    printf '%s\t%s\n' "libgpuaff, no rank" "$e LD_PRELOAD=$lib /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 dgx-a100 (dry run)" "$e $dry GPU_AFFINITY_FSROOT=$dgx /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 dgx-a100 (dry run), plan handed down" "$e GPU_AFFINITY_HANDOFF=$(handed "$dgx") $dry GPU_AFFINITY_FSROOT=$dgx /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 bound, 256-CPU fixture" "$e LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$s256 /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 bound, 256-CPU fixture, plan handed down" "$e GPU_AFFINITY_HANDOFF=$(handed "$s256") LD_PRELOAD=$lib LOCAL_RANK=0 GPU_AFFINITY_FSROOT=$s256 /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 4096 CPUs 72 GPUs (dry run)" "$e $dry GPU_AFFINITY_FSROOT=$big /bin/true"
    printf '%s\t%s\n' "libgpuaff, rank 0 4096 CPUs 72 GPUs (dry run), plan handed down" "$e GPU_AFFINITY_HANDOFF=$(handed "$big") $dry GPU_AFFINITY_FSROOT=$big /bin/true"
    if [ -n "$have_strace" ]; then
        printf '%s\t%s\n' "readfiles, no file (its own start-up)" "$e $work/readfiles $work/none.txt"
        printf '%s\t%s\n' "readfiles: the $(wc -l <"$work/files-dgx.txt") files rank 0 dgx-a100 reads" "$e $work/readfiles $work/files-dgx.txt"
        printf '%s\t%s\n' "readfiles: the $(wc -l <"$work/files-big.txt") files rank 0 4096/72 reads" "$e $work/readfiles $work/files-big.txt"
    fi
    if [ -n "$old" ]; then
        o="LD_PRELOAD=$(realpath "$old") LOCAL_RANK=0 GPU_AFFINITY_DRY_RUN=1"
        printf '%s\t%s\n' "before: libgpuaff, no rank" "$e LD_PRELOAD=$(realpath "$old") /bin/true"
        printf '%s\t%s\n' "before: libgpuaff, rank 0 dgx-a100 (dry run)" "$e $o GPU_AFFINITY_FSROOT=$dgx /bin/true"
        printf '%s\t%s\n' "before: libgpuaff, rank 0 4096 CPUs 72 GPUs (dry run)" "$e $o GPU_AFFINITY_FSROOT=$big /bin/true"
    fi
} >"$work/cmds.txt"
"$work/interleave" "$rounds" "$work/cmds.txt"

# CPU time, page faults and (where the machine exposes the counter) instructions per process.
if command -v perf >/dev/null 2>&1 && perf stat -e task-clock true >/dev/null 2>&1; then
    echo
    echo "perf stat -r 50 (means per process; instructions n/a where the VM exposes no counter):"
    echo
    echo "| command | task-clock (ms) | page faults | instructions |"
    echo "|---|---:|---:|---:|"
    while IFS=$'\t' read -r name cmd; do
        # shellcheck disable=SC2086
        perf stat -x, -e task-clock,page-faults,instructions -r 50 $cmd 2>&1 >/dev/null |
            awk -F, -v n="$name" '$3 ~ /^task-clock/ {t=$1} $3 ~ /^page-faults/ {f=$1}
                $3 ~ /^instructions/ {i=($1 ~ /^[0-9.]+$/) ? $1 : "n/a"}
                END {printf "| %s | %.3f | %d | %s |\n", n, t, f, i}'
    done <"$work/cmds.txt"
fi
