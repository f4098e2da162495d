#!/usr/bin/env bash
# Builds gpuaff and shows its main job on a bundled example machine (a DGX A100: 2 × 64 cores, NPS4,
# SMT2, 8 GPUs), with no GPU needed: the plan for every rank, and the line that binds a real job.
set -euo pipefail
cd "$(dirname "$0")/.."
machine=${1:-dgx-a100}
cargo build --workspace --quiet
dir=target/example/$machine
target/debug/gpuaff-fixture write "$machine" "$dir" >/dev/null
echo "\$ gpuaff plan --fsroot $dir"
target/debug/gpuaff plan --fsroot "$dir"
echo
echo "To bind a real job, preload the library into every worker; each binds itself by its LOCAL_RANK:"
echo "  LD_PRELOAD=$PWD/target/debug/libgpuaff.so torchrun --nproc-per-node=8 train.py"
echo "or let gpuaff set LD_PRELOAD:"
echo "  $PWD/target/debug/gpuaff run -- torchrun --nproc-per-node=8 train.py"
echo "To see it bind here, on the example machine's tree (rank 1, dry run, one line on stderr):"
echo "\$ LOCAL_RANK=1 GPU_AFFINITY_FSROOT=$dir GPU_AFFINITY_DRY_RUN=1 GPU_AFFINITY_VERBOSE=1 LD_PRELOAD=target/debug/libgpuaff.so /bin/true"
LOCAL_RANK=1 GPU_AFFINITY_FSROOT=$dir GPU_AFFINITY_DRY_RUN=1 GPU_AFFINITY_VERBOSE=1 LD_PRELOAD=$PWD/target/debug/libgpuaff.so /bin/true
