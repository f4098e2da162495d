#!/usr/bin/env bash
# `gpuaff check` on the cases that matter, with no GPU: live processes (tests/c/hold.c) preloaded on
# the two-GPU, two-CPU fixture `two-gpu-local`, and a synthetic /proc for the `example1` machine.
#   1. a correctly bound two-rank job            2. the same with one thread re-pinned outside
#   3. two ranks overlapping                     4. an unbound process
#   5. remote memory (synthetic /proc)           6. another user's process (as nobody; root only)
# Each case prints the text output, the JSON (thread lists shortened to their length) and the exit
# status. Needs cc, python3 and the debug build (cargo build).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/debug
gpuaff=$bin/gpuaff
for f in gpuaff libgpuaff.so gpuaff-fixture; do
    [ -e "$bin/$f" ] || { echo "check-demo: $bin/$f is not built (cargo build --workspace)" >&2; exit 2; }
done
lib=$(realpath "$bin/libgpuaff.so")
work=$(mktemp -d "${TMPDIR:-/tmp}/gpuaff-check-demo.XXXXXX")
holders=()
trap 'for p in "${holders[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
cc -O1 -pthread -I c-header -o "$work/hold" tests/c/hold.c
fx=$work/fx
"$bin/gpuaff-fixture" write two-gpu-local "$fx" >/dev/null
mkfifo "$work/keep"
exec 9<>"$work/keep"

# hold RANK PRELOAD(yes/no) ARGS...: starts one, sets $pid once it is ready.
hold() {
    local rank=$1 pre=$2 n=${#holders[@]}
    shift 2
    local env=(LOCAL_RANK="$rank" GPU_AFFINITY_FSROOT="$fx")
    [ "$pre" = yes ] && env+=(LD_PRELOAD="$lib")
    env "${env[@]}" "$work/hold" "$@" <"$work/keep" >"$work/ready.$n" &
    holders+=($!)
    pid=$!
    for _ in $(seq 200); do grep -q ready "$work/ready.$n" && return; sleep 0.05; done
    echo "check-demo: a holder did not start" >&2
    exit 1
}
stop() { for p in "$@"; do kill "$p"; done; }

show() { # TITLE ARGS...
    local title=$1
    shift
    echo "=================== $title"
    echo "\$ gpuaff check $*"
    "$gpuaff" check "$@"
    echo "(exit status $?)"
    echo "\$ gpuaff check --json $*"
    "$gpuaff" check --json "$@" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for p in d["processes"]:
    p["threads"] = "[%d threads]" % len(p["threads"])
print(json.dumps(d, indent=1))'
    echo "(exit status ${PIPESTATUS[0]})"
}

hold 0 yes 3; a=$pid
hold 1 yes 3; b=$pid
show "1. a correctly bound two-rank job" "$a" "$b"
stop "$a" "$b"

hold 0 yes 3 repin 1 omp_worker; a=$pid
hold 1 yes 3; b=$pid
show "2. the same job, one thread of rank 0 re-pinned by the program onto CPU 1" "$a" "$b"
stop "$a" "$b"

hold 0 yes 2; a=$pid
hold 1 no 2 pin-all 0; b=$pid
show "3. two ranks overlapping: rank 1 not preloaded, pinned onto rank 0's CPU" "$a" "$b"
stop "$a" "$b"

hold 1 no 5; a=$pid
show "4. an unbound process (rank 1, not preloaded)" "$a"
stop "$a"

# 5: example1 (GPUs on nodes 0,0,1,1); rank 2 bound right with 3/4 of its memory on node 0.
ex=$work/example1
"$bin/gpuaff-fixture" write example1 "$ex" >/dev/null
p=$work/proc
mk() { mkdir -p "$(dirname "$1")" && printf "$2" >"$1"; }
uid=$(id -u)
for spec in "100 2 4-5,12-13 750000 250000" "200 0 0-1,8-9 1000 0"; do
    read -r pid rank cpus n0 n1 <<<"$spec"
    mk "$p/$pid/status" "Name:\tpython3\nPPid:\t1\nUid:\t$uid\t$uid\t$uid\t$uid\nCpus_allowed_list:\t$cpus\n"
    mk "$p/$pid/environ" "LOCAL_RANK=$rank\0GPU_AFFINITY_FSROOT=$ex\0"
    mk "$p/$pid/cmdline" "python3\0train.py\0"
    mk "$p/$pid/task/$pid/status" "Name:\tpython3\nCpus_allowed_list:\t$cpus\n"
    mk "$p/$pid/numa_maps" "01000000 default heap anon=$((n0 + n1)) dirty=$((n0 + n1)) N0=$n0 N1=$n1 kernelpagesize_kB=4\n"
done
mk "$p/sys/kernel/numa_balancing" "1\n"
show "5. remote memory (a synthetic /proc: rank 2 on node 1, 75% of its memory on node 0)" --proc "$p"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    hold 0 yes 1; a=$pid
    # A copy nobody can reach (the build directory and $work may not be).
    nob=$(mktemp -d /tmp/gpuaff-nobody.XXXXXX)
    chmod 755 "$nob"
    install -m 755 "$gpuaff" "$nob/gpuaff"
    gpuaff=$nob/gpuaff
    echo "=================== 6. another user's process (the check runs as nobody)"
    echo "\$ setpriv --reuid=nobody gpuaff check $a"
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$gpuaff" check "$a"
    echo "(exit status $?)"
    echo "\$ setpriv --reuid=nobody gpuaff check --json $a"
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$gpuaff" check --json "$a"
    echo "(exit status $?)"
    stop "$a"
    rm -rf "$nob"
else
    echo "=================== 6. skipped: needs root and setpriv to run the check as another user"
fi
