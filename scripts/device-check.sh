#!/usr/bin/env bash
# One short check of gpuaff on a machine with NVIDIA GPUs (under 3 minutes, usually seconds):
#   1. the machine: `gpuaff topo` from sysfs;
#   2. sysfs against NVML: every GPU's PCI address, NUMA node and local CPUs from `gpuaff topo
#      --source sysfs` and `--source nvml`, and every rank's CPUs from `gpuaff plan` in three modes;
#   3. a preloaded python3 with 8 threads as local rank 0, then `gpuaff check` on it (text and JSON);
#   4. the same with torch (CPU thread pool, and a matmul on the GPU when CUDA is there), when torch
#      can be imported;
# then a summary, one line per step, and `device-check: N passed, N failed, N skipped`. Exit status 0
# when nothing failed, 1 otherwise, 2 for bad arguments or when the programs are missing.
#
# Usage: scripts/device-check.sh [--fsroot DIR]
#   --fsroot DIR   read a sysfs snapshot or fixture instead of this machine (with GPU_AFFINITY_NVML_LIB
#                  naming a fake NVML that describes the same GPUs: how the tests run it without GPUs)
# Environment: GPUAFF (the gpuaff command; default target/release/gpuaff, else target/debug/gpuaff),
#   GPUAFF_LIB (libgpuaff.so; default next to the command), GPU_AFFINITY_NVML_LIB (NVML's library).
set -uo pipefail
cd "$(dirname "$0")/.."

fsroot=""
while [ $# -gt 0 ]; do
    case $1 in
    --fsroot) fsroot=${2:-}; shift 2 || { echo "device-check: --fsroot needs a value" >&2; exit 2; } ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-check: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -n "$fsroot" ] && [ ! -d "$fsroot" ]; then
    echo "device-check: --fsroot $fsroot is not a directory" >&2
    exit 2
fi

gpuaff=${GPUAFF:-}
if [ -z "$gpuaff" ]; then
    for c in target/release/gpuaff target/debug/gpuaff; do
        [ -x "$c" ] && { gpuaff=$c; break; }
    done
fi
if [ -z "$gpuaff" ] || [ ! -x "$gpuaff" ]; then
    echo "device-check: no gpuaff command (build with cargo build --release, or set GPUAFF)" >&2
    exit 2
fi
lib=${GPUAFF_LIB:-$(dirname "$gpuaff")/libgpuaff.so}
if [ ! -f "$lib" ]; then
    echo "device-check: no libgpuaff.so at $lib (set GPUAFF_LIB)" >&2
    exit 2
fi
lib=$(realpath "$lib")
command -v python3 >/dev/null || { echo "device-check: python3 is needed" >&2; exit 2; }
# The interpreter itself: a wrapper (pyenv's shim is a shell script) would be preloaded and bound too.
python=$(python3 -c 'import sys; print(sys.executable)')

work=$(mktemp -d "${TMPDIR:-/tmp}/gpuaff-device-check.XXXXXX")
holders=()
cleanup() {
    for p in "${holders[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

fs_args=()
[ -n "$fsroot" ] && fs_args=(--fsroot "$fsroot")
passed=0 failed=0 skipped=0
summary=()
result() { # STATUS STEP DETAIL
    case $1 in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    esac
    summary+=("$1  $2: $3")
    echo "-> $1: $3"
}

echo "== 1. machine (sysfs)"
[ -z "$fsroot" ] && command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L
if timeout 30 "$gpuaff" topo "${fs_args[@]}" --source sysfs >"$work/topo.txt" 2>&1; then
    cat "$work/topo.txt"
    ngpus=$(grep -cE '^ +[0-9]+  [0-9a-f]{4}:' "$work/topo.txt")
    if [ "$ngpus" -gt 0 ]; then
        result PASS machine "$ngpus NVIDIA GPUs in sysfs"
    else
        result FAIL machine "no NVIDIA GPU in sysfs"
    fi
else
    cat "$work/topo.txt"
    result FAIL machine "gpuaff topo failed"
fi

echo "== 2. sysfs against NVML"
timeout 30 "$gpuaff" topo "${fs_args[@]}" --source sysfs --json >"$work/topo-sysfs.json" 2>/dev/null
if timeout 60 "$gpuaff" topo "${fs_args[@]}" --source nvml --json >"$work/topo-nvml.json" 2>"$work/nvml.err"; then
    if python3 - "$work/topo-sysfs.json" "$work/topo-nvml.json" <<'EOF'; then
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda g: (g["pci_bus_id"], g["numa_node"], g["cpulist"])
sa, sb = [key(g) for g in a["gpus"]], [key(g) for g in b["gpus"]]
for g in sb:
    print("   NVML  %s node %s CPUs %s" % g)
if sa != sb:
    for g in sa:
        print("   sysfs %s node %s CPUs %s" % g)
    sys.exit(1)
EOF
        result PASS topo "every GPU's PCI address, node and CPUs agree"
    else
        result FAIL topo "sysfs and NVML disagree (above)"
    fi
    plan_diff=()
    for mode in socket_unique_contiguous node exclusive; do
        timeout 30 "$gpuaff" plan "${fs_args[@]}" --mode "$mode" --source sysfs --json >"$work/p1.json" 2>/dev/null
        timeout 60 "$gpuaff" plan "${fs_args[@]}" --mode "$mode" --source nvml --json >"$work/p2.json" 2>/dev/null
        if ! python3 - "$work/p1.json" "$work/p2.json" <<'EOF'; then
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
f = lambda d: [r.get("cpulist", "error") for r in d["ranks"]]
sys.exit(0 if f(a) == f(b) and f(a) else 1)
EOF
            plan_diff+=("$mode")
        fi
    done
    if [ ${#plan_diff[@]} -eq 0 ]; then
        result PASS plan "every rank's CPUs agree in socket_unique_contiguous, node, exclusive"
    else
        result FAIL plan "plans differ between sysfs and NVML in: ${plan_diff[*]}"
    fi
else
    sed 's/^/   /' "$work/nvml.err"
    result SKIP topo "NVML could not be loaded (see above)"
    result SKIP plan "NVML could not be loaded"
fi

# Starts the rank-0 program ($1: "torch" or "threads") preloaded, its stdin a FIFO held open on fd $2;
# sets rank0_pid once it is ready (empty when it did not start).
start_rank0() {
    local kind=$1 fifo="$work/keep-$1"
    rank0_pid=""
    mkfifo "$fifo"
    local env=(LD_PRELOAD="$lib" LOCAL_RANK=0 GPU_AFFINITY_VERBOSE=1 DEVICE_CHECK_KIND="$kind")
    [ -n "$fsroot" ] && env+=(GPU_AFFINITY_FSROOT="$fsroot")
    # The program reads stdin until EOF: the FIFO, held open for writing by this shell.
    env "${env[@]}" "$python" -c '
import os, sys, threading
ev = threading.Event()
for i in range(8):
    threading.Thread(target=ev.wait, name="worker%d" % i, daemon=True).start()
info = ""
if os.environ["DEVICE_CHECK_KIND"] == "torch":
    import torch
    torch.set_num_threads(4)
    a = torch.randn(512, 512)
    (a @ a).sum().item()
    info = " torch %s" % torch.__version__
    if torch.cuda.is_available():
        b = a.cuda()
        (b @ b).sum().item()
        torch.cuda.synchronize()
        info += ", CUDA on %s" % torch.cuda.get_device_name(0)
print("ready %d threads=%d%s" % (os.getpid(), threading.active_count(), info), flush=True)
sys.stdin.read()
' <"$fifo" >"$work/$kind.out" 2>"$work/$kind.err" &
    local pid=$!
    holders+=("$pid")
    eval "exec ${2}<>\"\$fifo\""
    for _ in $(seq 1200); do
        grep -q ready "$work/$kind.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if grep -q ready "$work/$kind.out" 2>/dev/null; then rank0_pid=$pid; fi
}

check_rank0() { # STEP KIND FD
    local step=$1 kind=$2 pid
    start_rank0 "$kind" "$3"
    pid=$rank0_pid
    sed 's/^/   /' "$work/$kind.err"
    if [ -z "$pid" ]; then
        result FAIL "$step" "the preloaded python3 did not start"
        return
    fi
    sed 's/^/   /' "$work/$kind.out"
    timeout 60 "$gpuaff" check "$pid"
    local rc=$?
    timeout 60 "$gpuaff" check --json "$pid" >"$work/$kind.json"
    python3 - "$work/$kind.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for p in d["processes"]:
    print("   json: pid %s rank %s mode %s planned %s actual %s threads in/out %s/%s memory %s ok %s" % (
        p["pid"], p["rank"], p["mode"], p["planned"], p["actual"], p["threads_in"], p["threads_out"],
        (p["memory"] or {}).get("local_percent"), p["ok"]))
EOF
    if [ "$rc" -eq 0 ]; then
        result PASS "$step" "gpuaff check: rank 0 (pid $pid) matches its plan"
    else
        result FAIL "$step" "gpuaff check exited $rc on rank 0 (pid $pid)"
    fi
}

echo "== 3. preloaded python3 with threads as rank 0, then gpuaff check"
check_rank0 python threads 8

echo "== 4. the same with torch"
if "$python" -c 'import torch' 2>/dev/null; then
    check_rank0 torch torch 9
else
    result SKIP torch "torch is not installed"
fi

echo
echo "== summary ($(uname -n), $(date -u +%Y-%m-%dT%H:%M:%SZ)${fsroot:+, fsroot $fsroot})"
for line in "${summary[@]}"; do echo "  $line"; done
echo "device-check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
