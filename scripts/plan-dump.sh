#!/usr/bin/env bash
# Every plan of every catalog machine, through the shipped programs: `gpuaff topo`, `gpuaff plan` (text
# and JSON) in every mode × cores × balanced × nproc × visible-GPU subset, and the preloaded library's
# dry-run verbose line for the first ranks. Run it before and after a change that must not change plans
# and compare the two files byte for byte:
#   scripts/plan-dump.sh > /tmp/before.txt; ...change...; scripts/plan-dump.sh > /tmp/after.txt
#   cmp /tmp/before.txt /tmp/after.txt
# MACHINES="dgx-a100 uneven" limits the machines; BIN=DIR takes gpuaff, gpuaff-fixture and
# libgpuaff.so from DIR (a copy kept from before the change) instead of building. Machines of more
# than 512 CPUs get every mode and option but only the default nproc and all GPUs visible.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
bin=$root/bin
mkdir "$bin"
if [ -n "${BIN:-}" ]; then
    cp "$BIN/gpuaff" "$BIN/gpuaff-fixture" "$BIN/libgpuaff.so" "$bin/"
else
    cargo build --workspace --quiet
    # A copy of the programs, so that a rebuild during the dump cannot mix two versions.
    cp target/debug/gpuaff target/debug/gpuaff-fixture target/debug/libgpuaff.so "$bin/"
fi
machines=${MACHINES:-$("$bin/gpuaff-fixture" list | awk '{print $1}')}
modes="none socket socket_single socket_single_unique socket_unique_interleaved socket_unique_contiguous
       node package exclusive core-complex map"
for m in $machines; do
    dir=$root/$m
    "$bin/gpuaff-fixture" write "$m" "$dir" >/dev/null
    echo "### $m topo"
    "$bin/gpuaff" topo --fsroot "$dir" --source sysfs 2>&1 || echo "exit $?"
    "$bin/gpuaff" topo --fsroot "$dir" --source sysfs --json 2>&1 || echo "exit $?"
    ngpu=$("$bin/gpuaff" plan --fsroot "$dir" --source sysfs --json 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["ranks"]))' || echo 0)
    ncpu=$("$bin/gpuaff-fixture" list | awk -v m="$m" '$1 == m {print $2}')
    big=0
    [ "${ncpu:-0}" -gt 512 ] && big=1
    visibles=("")
    if [ "$ngpu" -gt 1 ] && [ "$big" -eq 0 ]; then
        visibles+=("$((ngpu / 2))" "$(seq -s, 1 2 $((ngpu - 1)))")
    fi
    for vis in "${visibles[@]}"; do
        for mode in $modes; do
            for cores in all_logical single_logical; do
                for bal in --balanced --no-balanced; do
                    nprocs=("" 1 3 "$ngpu")
                    [ "$big" -eq 1 ] && nprocs=("")
                    for nproc in "${nprocs[@]}"; do
                        args=(--fsroot "$dir" --source sysfs --mode "$mode" --cores "$cores" "$bal")
                        [ -n "$nproc" ] && args+=(--nproc "$nproc")
                        echo "### $m CUDA_VISIBLE_DEVICES=${vis:-all} ${args[*]:2}"
                        env_vis=()
                        [ -n "$vis" ] && env_vis=(CUDA_VISIBLE_DEVICES="$vis")
                        env "${env_vis[@]}" GPU_AFFINITY_MAP="0-1;2-3;4-5;6-7" \
                            "$bin/gpuaff" plan "${args[@]}" 2>&1 || echo "exit $?"
                        env "${env_vis[@]}" GPU_AFFINITY_MAP="0-1;2-3;4-5;6-7" \
                            "$bin/gpuaff" plan "${args[@]}" --json 2>&1 || echo "exit $?"
                    done
                done
            done
            for rank in 0 1 2 3; do
                [ "$rank" -lt "${ngpu:-0}" ] || [ "$rank" -eq 0 ] || continue
                echo "### $m preload rank $rank mode $mode vis ${vis:-all}"
                env_vis=()
                [ -n "$vis" ] && env_vis=(CUDA_VISIBLE_DEVICES="$vis")
                env "${env_vis[@]}" LOCAL_RANK=$rank GPU_AFFINITY_MODE="$mode" \
                    GPU_AFFINITY_MAP="0-1;2-3;4-5;6-7" GPU_AFFINITY_SOURCE=sysfs \
                    GPU_AFFINITY_FSROOT="$dir" GPU_AFFINITY_DRY_RUN=1 GPU_AFFINITY_VERBOSE=1 \
                    LD_PRELOAD="$bin/libgpuaff.so" /bin/true 2>&1 | sed "s/pid [0-9]*/pid N/; s|$root|ROOT|g"
            done
        done
    done
done | sed "s|$root|ROOT|g"
