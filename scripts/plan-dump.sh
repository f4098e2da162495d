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
# SNAPSHOTS=DIR dumps real machine snapshots instead (below).
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
# How many files a reading took is work, not a plan: a reader that infers what it used to read must
# still dump the same.
counts='s/files read: [0-9]*/files read: N/; s/"files_read": [0-9]*/"files_read": N/'
# SNAPSHOTS=DIR (hwloc's machine snapshots, `NAME.tar.bz2`): instead of the catalog, every snapshot's
# `gpuaff topo` (text and JSON) and `gpuaff plan` in every mode, as read both with `smt/active` and
# `smt/control` as the snapshot has them (none do) and with them added saying SMT is on, so that a
# reader that trusts those files is exercised on real sibling data. GPUs are added where there are
# none (below).
if [ -n "${SNAPSHOTS:-}" ]; then
    for tarball in "$SNAPSHOTS"/*.tar.bz2; do
        name=$(basename "$tarball" .tar.bz2)
        mkdir -p "$root/x/$name"
        tar xjf "$tarball" -C "$root/x/$name"
        fs=$(find "$root/x/$name" -maxdepth 3 -type d -name sys -printf '%h\n' | sort | head -1)
        [ -n "$fs" ] || continue
        # Snapshots without GPUs get one NVIDIA GPU per NUMA node with CPUs (one for the machine when
        # it has no nodes), local to that node, so that every mode has something to plan.
        if ! cat "$fs"/sys/bus/pci/devices/*/vendor 2>/dev/null | grep -q 0x10de; then
            i=0
            nodes=$(ls -d "$fs"/sys/devices/system/node/node[0-9]* 2>/dev/null || true)
            for n in ${nodes:-none}; do
                if [ "$n" = none ]; then
                    id=-1 mask='' list=$(cat "$fs/sys/devices/system/cpu/online" 2>/dev/null || echo 0)
                else
                    id=${n##*node} list=$(tr -d '\0' 2>/dev/null <"$n/cpulist" || true)
                    mask=$(tr -d '\0' 2>/dev/null <"$n/cpumap" || true)
                    [ -n "$list" ] || [ -n "$mask" ] || continue
                fi
                d=$(printf '%s/sys/bus/pci/devices/0000:%02x:00.0' "$fs" $((0x40 + i)))
                mkdir -p "$d"
                printf '0x10de\n' >"$d/vendor"
                printf '0x030200\n' >"$d/class"
                printf '0x20b0\n' >"$d/device"
                printf '%s\n' "$id" >"$d/numa_node"
                if [ -n "$list" ]; then
                    printf '%s\n' "$list" >"$d/local_cpulist"
                else
                    printf '%s\n' "$mask" >"$d/local_cpus"
                fi
                i=$((i + 1))
            done
        fi
        for smt in as-is on; do
            if [ "$smt" = on ]; then
                mkdir -p "$fs/sys/devices/system/cpu/smt"
                echo 1 >"$fs/sys/devices/system/cpu/smt/active"
                echo on >"$fs/sys/devices/system/cpu/smt/control"
            fi
            echo "### $name smt $smt topo"
            "$bin/gpuaff" topo --fsroot "$fs" --source sysfs 2>&1 || echo "exit $?"
            "$bin/gpuaff" topo --fsroot "$fs" --source sysfs --json 2>&1 || echo "exit $?"
            for mode in $modes; do
                echo "### $name smt $smt plan $mode"
                GPU_AFFINITY_MAP="0-1;2-3" "$bin/gpuaff" plan --fsroot "$fs" --source sysfs \
                    --mode "$mode" --json 2>&1 || echo "exit $?"
            done
        done
        rm -rf "$root/x/$name"
    done | sed "s|$root|ROOT|g; $counts"
    exit 0
fi
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
done | sed "s|$root|ROOT|g; $counts"
