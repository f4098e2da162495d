#!/usr/bin/env bash
# Real launchers end to end: a private single-node Slurm (tests/launchers/slurm.sh), Open MPI's
# mpirun and MPICH's hydra mpiexec start a rank program (tests/c/rank.c) with libgpuaff.so preloaded
# on the fixture two-gpu-crossed, where GPU 0 sits on CPU 1 and GPU 1 on CPU 0: a launcher that binds
# rank r to CPU r disagrees with the GPUs, so where each rank's threads end shows who won. Each rank
# reads its threads back from /proc/self/task itself. Prints the table launcher x binding option x
# GPU_AFFINITY_LAUNCHER_BINDING, then "N passed, N failed, N skipped"; a launcher that is not
# installed (or a Slurm that cannot start) is skipped with its reason.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}/debug

passed=0
failed=0
skipped=0
reasons=()
rows=()

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpuaff-launchers.XXXXXX")
# shellcheck source=../launchers/slurm.sh
. "$root/tests/launchers/slurm.sh"
trap 'slurm_stop; rm -rf "$tmp"' EXIT

own=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
if [ "$own" != "0-1" ] && [ "$own" != "0-$(($(nproc --all) - 1))" ] || [ "$(nproc --all)" -lt 2 ]; then
    echo "launchers: needs CPUs 0 and 1 and a process allowed on every CPU (this one: $own)"
    exit 77
fi
if [ "$(nproc --all)" -ne 2 ]; then
    # The fixture is a 2-CPU machine: its CPUs must be this machine's, and the launchers bind over
    # every CPU of this machine.
    echo "launchers: the fixture two-gpu-crossed stands for a 2-CPU node; this machine has $(nproc --all) CPUs"
    exit 77
fi

for f in libgpuaff.so gpuaff gpuaff-fixture; do
    if [ ! -e "$target/$f" ]; then
        cargo build --workspace --quiet || {
            echo "0 passed, 1 failed"
            exit 1
        }
        break
    fi
done
so=$target/libgpuaff.so
cc -std=c99 -Wall -O1 -pthread -I "$root/c-header" "$root/tests/c/rank.c" -o "$tmp/rank" || {
    echo "0 passed, 1 failed"
    exit 1
}
"$target/gpuaff-fixture" write two-gpu-crossed "$tmp/fx" >/dev/null || {
    echo "0 passed, 1 failed"
    exit 1
}
fx=$tmp/fx

# check LAUNCHER OPTION OPTOUT WANT OUT ERR: WANT is "CPUs of rank 0 / CPUs of rank 1"; every
# "rank R ... threads N cpus LIST" line of OUT counts (all of a rank's threads must agree).
check() {
    local launcher=$1 option=$2 optout=$3 want=$4 out=$5 err=$6
    local r0 r1 got ok=1
    r0=$(awk '$1 == "rank" && $2 == "0" {print $8}' "$out" | sort -u | paste -sd' ')
    r1=$(awk '$1 == "rank" && $2 == "1" {print $8}' "$out" | sort -u | paste -sd' ')
    got="${r0:-none} / ${r1:-none}"
    [ "$got" = "$want" ] || ok=0
    # Every thread of every rank read back (the rank program starts two, plus its main thread).
    awk '$1 == "rank" && $6 != 3 {bad = 1} END {exit bad}' "$out" || ok=0
    if [ "$ok" -eq 1 ]; then
        passed=$((passed + 1))
        rows+=("$(printf '%-9s %-26s %-7s %-11s ok' "$launcher" "$option" "$optout" "$got")")
    else
        failed=$((failed + 1))
        rows+=("$(printf '%-9s %-26s %-7s %-11s FAILED (want %s)' "$launcher" "$option" "$optout" "$got" "$want")")
        echo "--- $launcher $option ($optout): want $want, got $got"
        sed 's/^/    out: /' "$out"
        sed 's/^/    err: /' "$err"
    fi
}

skip() {
    skipped=$((skipped + $2))
    reasons+=("$1")
}

# The launched ranks' environment: preloaded, the fixture, verbose.
gpuaff_env=(LD_PRELOAD="$so" GPU_AFFINITY_FSROOT="$fx" GPU_AFFINITY_VERBOSE=1)

# --- Slurm
slurm_cases=9
t0=$(date +%s.%N)
if slurm_start "$tmp/slurm"; then
    t1=$(date +%s.%N)
    slurm_time=$(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")
    srun_case() {
        local option=$1 optout=$2 want=$3
        shift 3
        local extra=()
        [ "$optout" = keep ] && extra=(GPU_AFFINITY_LAUNCHER_BINDING=keep)
        env "${gpuaff_env[@]}" "${extra[@]+"${extra[@]}"}" timeout 60 srun "$@" "$tmp/rank" \
            >"$tmp/out" 2>"$tmp/err"
        check Slurm "$option" "$optout" "$want" "$tmp/out" "$tmp/err"
    }
    srun_case "srun -n2 (default)" replace "1 / 0" -n2
    srun_case "srun -n2 (default)" keep "0 / 1" -n2
    srun_case "--cpu-bind=none" replace "1 / 0" -n2 --cpu-bind=none
    srun_case "--cpu-bind=none" keep "1 / 0" -n2 --cpu-bind=none
    srun_case "--cpu-bind=cores" replace "1 / 0" -n2 --cpu-bind=cores
    srun_case "--ntasks-per-node=2" replace "1 / 0" --ntasks-per-node=2
    # The user's own narrowing inside the task is respected.
    srun_case "srun -n2 taskset -c 0" replace "0 / 0" -n2 taskset -c 0
    # One task on a one-CPU allocation: without a cgroup, Slurm's binding is the allocation itself
    # (even with --cpu-bind=none), and the replacement stays inside it.
    srun_case "srun -n1 (1 CPU allocated)" replace "0 / none" -n1
    srun_case "-n1 --cpu-bind=none" replace "0 / none" -n1 --cpu-bind=none
    # srun starts one task on both CPUs; gpuaff run preloads a torchrun-like agent (rank 0 by
    # SLURM_LOCALID, rebound to GPU 0's CPU 1), whose workers rebind to their own LOCAL_RANK's CPUs.
    env GPU_AFFINITY_FSROOT="$fx" timeout 60 srun -n1 -c2 "$target/gpuaff" run --lib "$so" --verbose -- \
        python3 "$root/tests/py/torchrun_like.py" 2 "$tmp/rank" >"$tmp/out" 2>"$tmp/err"
    grep -q '^agent pid [0-9]* cpus 1$' "$tmp/out" || sed -i 's/^rank /agent-not-on-cpu-1 /' "$tmp/out"
    check Slurm "-n1 -c2 gpuaff run agent" replace "1 / 0" "$tmp/out" "$tmp/err"
    # The verbose lines of the agent case: the agent once (with the note), worker 1 once.
    echo "--- srun -n1 -c2 gpuaff run -- torchrun-like agent, stderr:"
    sed 's/^/    /' "$tmp/err"
    # Verbose once per binding: a rank whose shell pipeline starts grep and sort prints one line.
    env "${gpuaff_env[@]}" timeout 60 srun -n1 -c2 --cpu-bind=none \
        bash -c 'grep Cpus_allowed_list /proc/self/status | sort' >"$tmp/out" 2>"$tmp/err"
    n=$(grep -c '^gpuaff: ' "$tmp/err")
    echo "--- srun -n1 -c2 --cpu-bind=none bash -c 'grep ... | sort': stdout $(tr '\t' ' ' <"$tmp/out"), $n gpuaff line(s):"
    sed 's/^/    /' "$tmp/err"
    if [ "$n" -eq 1 ] && grep -q 'Cpus_allowed_list:.1$' "$tmp/out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "--- FAILED: want one gpuaff line and CPU 1"
    fi
    t2=$(date +%s.%N)
    slurm_stop
    t3=$(date +%s.%N)
    echo "--- slurm harness: started in ${slurm_time} s, stopped in $(awk "BEGIN {printf \"%.2f\", $t3 - $t2}") s"
else
    skip "Slurm: cannot start a private Slurm: $SLURM_WHY" $((slurm_cases + 1))
fi

# --- Open MPI (Debian's, by its explicit name: it coexists with MPICH)
if command -v mpirun.openmpi >/dev/null 2>&1; then
    ompi_case() {
        local option=$1 optout=$2 want=$3
        shift 3
        local extra=()
        [ "$optout" = keep ] && extra=(-x GPU_AFFINITY_LAUNCHER_BINDING=keep)
        # Options up to "--", then the command that starts the rank program (taskset ...).
        local opts=() prefix=()
        while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
        [ $# -gt 0 ] && shift && prefix=("$@")
        timeout 60 mpirun.openmpi --allow-run-as-root --oversubscribe -np 2 "${opts[@]+"${opts[@]}"}" \
            -x LD_PRELOAD="$so" -x GPU_AFFINITY_FSROOT="$fx" -x GPU_AFFINITY_VERBOSE=1 \
            "${extra[@]+"${extra[@]}"}" "${prefix[@]+"${prefix[@]}"}" "$tmp/rank" >"$tmp/out" 2>"$tmp/err"
        check "Open MPI" "$option" "$optout" "$want" "$tmp/out" "$tmp/err"
    }
    ompi_case "mpirun -np 2 (default)" replace "1 / 0"
    ompi_case "mpirun -np 2 (default)" keep "0 / 1"
    ompi_case "--bind-to none" replace "1 / 0" --bind-to none
    ompi_case "--bind-to none" keep "1 / 0" --bind-to none
    ompi_case "mpirun taskset -c 0" replace "0 / 0" -- taskset -c 0
else
    skip "Open MPI: mpirun.openmpi not installed (Debian: openmpi-bin)" 5
fi

# --- MPICH's hydra (Debian's mpich: mpiexec.hydra, also mpiexec.mpich)
hydra=$(command -v mpiexec.hydra || command -v mpiexec.mpich || true)
if [ -n "$hydra" ]; then
    hydra_case() {
        local option=$1 optout=$2 want=$3
        shift 3
        local extra=()
        [ "$optout" = keep ] && extra=(-genv GPU_AFFINITY_LAUNCHER_BINDING keep)
        timeout 60 "$hydra" -n 2 "$@" -genv LD_PRELOAD "$so" -genv GPU_AFFINITY_FSROOT "$fx" \
            -genv GPU_AFFINITY_VERBOSE 1 "${extra[@]+"${extra[@]}"}" "$tmp/rank" \
            >"$tmp/out" 2>"$tmp/err"
        check MPICH "$option" "$optout" "$want" "$tmp/out" "$tmp/err"
    }
    hydra_case "mpiexec -n 2 (default)" replace "1 / 0"
    hydra_case "-bind-to core" replace "1 / 0" -bind-to core
    hydra_case "-bind-to core" keep "0 / 1" -bind-to core
else
    skip "MPICH: mpiexec.hydra not installed (Debian: mpich)" 3
fi

echo
echo "fixture two-gpu-crossed: GPU 0 on CPU 1, GPU 1 on CPU 0; cells are the CPUs of every thread of rank 0 / rank 1"
printf '%-9s %-26s %-7s %-11s %s\n' launcher "binding option" opt-out "threads" result
for r in "${rows[@]+"${rows[@]}"}"; do echo "$r"; done
for r in "${reasons[@]+"${reasons[@]}"}"; do echo "skipped: $r"; done
if [ $((passed + failed)) -eq 0 ]; then
    echo "no launcher could run: ${reasons[*]}"
    exit 77
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
