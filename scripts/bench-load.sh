#!/usr/bin/env bash
# What loading libgpuaff.so costs a process that has no rank (the constructor returns at once), side by
# side with what it is made of: interleaved rounds (scripts/interleave.c) of /bin/true alone, with an
# empty C preload, with the empty preload plus the shared libraries a Rust cdylib may need
# (libgcc_s.so.1: std's unwinder; libdl.so.2 + libpthread.so.0: what an object linked for glibc 2.28
# needs), and with libgpuaff.so: an older build (OLD, e.g. main's), this tree's release build, and the
# glibc-2.28 artefact of scripts/build-release.sh when it is present. Then, per object: size,
# libraries needed, relocations, the dynamic loader's own cycles (LD_DEBUG=statistics), and page
# faults per process (perf stat, where available).
#
# Usage: [ROUNDS=400] scripts/bench-load.sh [OLD_LIBGPUAFF.so]   (about a minute here)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-400}
old=${1:-}
. scripts/bench-lib.sh
bench_setup load "gcc binutils" cc readelf
cc -O2 -shared -fPIC -o "$work/empty.so" scripts/empty.c
cc -O2 -o "$work/interleave" scripts/interleave.c
shipped=$target/x86_64-unknown-linux-gnu/release/libgpuaff.so
[ "$(uname -m)" = x86_64 ] && [ -f "$shipped" ] || shipped=
[ -z "$shipped" ] || shipped=$(realpath "$shipped")
[ -z "$old" ] || old=$(realpath "$old")

e=/usr/bin/env
objects=()
{
    printf '%s\t%s\n' "/bin/true" "$e /bin/true"
    printf '%s\t%s\n' "empty C preload" "$e LD_PRELOAD=$work/empty.so /bin/true"
    printf '%s\t%s\n' "empty + libgcc_s.so.1" "$e LD_PRELOAD=$work/empty.so:libgcc_s.so.1 /bin/true"
    printf '%s\t%s\n' "empty + libdl.so.2" "$e LD_PRELOAD=$work/empty.so:libdl.so.2 /bin/true"
    printf '%s\t%s\n' "empty + libdl.so.2 + libpthread.so.0" "$e LD_PRELOAD=$work/empty.so:libdl.so.2:libpthread.so.0 /bin/true"
    if [ -n "$old" ]; then
        printf '%s\t%s\n' "libgpuaff no rank, before ($old)" "$e LD_PRELOAD=$old /bin/true"
        objects+=("before	$old")
    fi
    printf '%s\t%s\n' "libgpuaff no rank, this build" "$e LD_PRELOAD=$lib /bin/true"
    objects+=("this build	$lib")
    if [ -n "$shipped" ]; then
        printf '%s\t%s\n' "libgpuaff no rank, glibc-2.28 artefact" "$e LD_PRELOAD=$shipped /bin/true"
        objects+=("glibc-2.28 artefact	$shipped")
    fi
} >"$work/cmds.txt"
objects=("empty C preload	$work/empty.so" "${objects[@]}")
"$work/interleave" "$rounds" "$work/cmds.txt"

echo
echo "| object | bytes | needs | relative relocs | other relocs | loader cycles (median of 21) |"
echo "|---|---:|---|---:|---:|---:|"
for o in "${objects[@]}"; do
    name=${o%%$'\t'*} so=${o#*$'\t'}
    needs=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd ' ')
    rel=$(readelf -rW "$so" | grep -c '_RELATIVE' || true)
    other=$(readelf -rW "$so" | grep -cE '^[0-9a-f]+ +[0-9a-f]+ R_' || true)
    cycles=$(for _ in $(seq 21); do
        LD_DEBUG=statistics LD_PRELOAD=$so /bin/true 2>&1 |
            sed -n 's/.*total startup time in dynamic loader: *\([0-9,]*\) cycles.*/\1/p' | tr -d ,
    done | sort -n | awk '{v[NR]=$1} END {print NR ? v[int((NR+1)/2)] : "n/a"}')
    echo "| $name | $(stat -c %s "$so") | $needs | $rel | $((other - rel)) | $cycles |"
done

if command -v perf >/dev/null 2>&1 && perf stat -e page-faults true >/dev/null 2>&1; then
    echo
    echo "| command | page faults (perf stat -r 200, mean per process) |"
    echo "|---|---:|"
    while IFS=$'\t' read -r name cmd; do
        # shellcheck disable=SC2086
        perf stat -x, -e page-faults -r 200 $cmd 2>&1 >/dev/null |
            awk -F, -v n="$name" '$3 ~ /^page-faults/ {printf "| %s | %d |\n", n, $1}'
    done <"$work/cmds.txt"
fi
