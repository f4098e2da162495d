#!/usr/bin/env bash
# scripts/device-check.sh without a GPU: on fixture trees with the fake NVML (tests/fake_nvml)
# describing the same GPUs (everything passes; torch is skipped unless installed), describing other
# GPUs (the comparison fails), or missing (NVML steps skipped); and its argument errors.
# Needs the debug build (scripts/test.sh builds it first), cc and python3.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${CARGO_TARGET_DIR:-target}/debug
for f in gpuaff libgpuaff.so gpuaff-fixture; do
    [ -e "$bin/$f" ] || { echo "$bin/$f is not built (cargo build --workspace)"; exit 77; }
done
command -v cc >/dev/null || { echo "cc is needed to build the fake NVML"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/gpuaff-suite-device-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GPUAFF=$bin/gpuaff
cc -shared -fPIC -O1 -Wl,-soname,libnvidia-ml.so.1 -o "$work/libnvidia-ml.so.1" tests/fake_nvml/fake_nvml.c
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAILED: $1"; sed 's/^/    /' "$work/out"; }

# nvml.txt from the fixture's own sysfs view; sed EXPR (optional) edits it.
describe() { # FIXTURE-DIR [SED-EXPR]
    "$GPUAFF" topo --fsroot "$1" --json | python3 -c '
import json, sys
for g in json.load(sys.stdin)["gpus"]:
    node = -1 if g["numa_node"] is None else g["numa_node"]
    print("gpu pci=%s uuid=GPU-fake-%d node=%s cpus=%s memnode=- model=Fake minor=%d migs=-"
          % (g["pci_bus_id"], g["index"], node, g["cpulist"], g["index"]))
' | sed -e "${2:-}" >"$work/nvml.txt"
}

fx=$work/split
"$bin/gpuaff-fixture" write two-gpu-split "$fx" >/dev/null
run() { GPU_AFFINITY_NVML_LIB=$1 scripts/device-check.sh --fsroot "$fx" >"$work/out" 2>&1; }

describe "$fx"
run "$work/libnvidia-ml.so.1"
rc=$?
if [ $rc -eq 0 ] && grep -q '^  PASS  topo:' "$work/out" && grep -q '^  PASS  plan:' "$work/out" \
    && grep -q '^  PASS  python: gpuaff check: rank 0 (pid [0-9]*) matches its plan' "$work/out" \
    && grep -qE '^device-check: [45] passed, 0 failed' "$work/out"; then
    ok "NVML agreeing with sysfs: every step passes"
else
    bad "NVML agreeing with sysfs (exit $rc)"
fi

# GPU 1 moved to node 0 / CPU 0 in NVML's view.
describe "$fx" '2s/node=1 cpus=1/node=0 cpus=0/'
run "$work/libnvidia-ml.so.1"
rc=$?
if [ $rc -eq 1 ] && grep -q '^  FAIL  topo: sysfs and NVML disagree' "$work/out" \
    && grep -q '^  FAIL  plan: plans differ between sysfs and NVML in: socket_unique_contiguous node exclusive' "$work/out" \
    && grep -q '^  PASS  python:' "$work/out"; then
    ok "NVML disagreeing with sysfs: the comparison fails, exit 1"
else
    bad "NVML disagreeing with sysfs (exit $rc)"
fi

run "$work/no-such-libnvidia-ml.so.1"
rc=$?
if [ $rc -eq 0 ] && grep -q '^  SKIP  topo: NVML could not be loaded' "$work/out"; then
    ok "no NVML: its steps are skipped"
else
    bad "no NVML (exit $rc)"
fi

scripts/device-check.sh --fsroot "$work/nowhere" >"$work/out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q 'is not a directory' "$work/out"; then
    ok "a missing --fsroot is a bad argument"
else
    bad "missing --fsroot (exit $rc)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
