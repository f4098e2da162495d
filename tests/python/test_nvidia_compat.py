"""The NVIDIA-compatibility table: for each of NVIDIA's six modes x cores x balanced, on each rank of
two fixture machines, the set gpuaff.set_affinity returns equals the CPUs `gpuaff plan` gives that
rank. On the large machines (CPUs this host lacks) set_affinity runs as a dry run and returns the
planned set; on the small ones it really binds, in a child process per case, and every thread's mask
is read back from /proc."""
import itertools
import json
import os
import subprocess

import gpuaff
import pytest

from conftest import TASKS, host_has_cpus, last_json, run_python

MODES = list(gpuaff.AffinityMode)
CORES = ["all_logical", "single_logical"]
BALANCED = [True, False]
CASES = list(itertools.product(MODES, CORES, BALANCED))


def cli_plan(fsroot, nproc, mode, cores, balanced):
    """Rank -> CPU set from the gpuaff command on PATH (the wheel's console script)."""
    args = ["gpuaff", "plan", "--json", "--fsroot", fsroot, "--nproc", str(nproc), "--mode",
            mode.value, "--cores", cores, "--balanced" if balanced else "--no-balanced"]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert r.returncode == 0, r.stderr
    ranks = json.loads(r.stdout)["ranks"]
    assert len(ranks) == nproc
    return {e["rank"]: set(e["cpus"]) for e in ranks}


def test_the_table_covers_nvidias_six_modes():
    assert [m.name for m in MODES] == ["none", "socket", "socket_single", "socket_single_unique",
                                       "socket_unique_interleaved", "socket_unique_contiguous"]
    assert len(CASES) == 24


@pytest.mark.parametrize("name,nproc", [("dgx-a100", 8), ("dgx-h100", 8)])
def test_set_affinity_equals_gpuaff_plan_on_large_machines(machine, name, nproc, monkeypatch):
    fsroot = machine(name)
    monkeypatch.delenv("GPU_AFFINITY_DRY_RUN", raising=False)
    distinct = set()
    for mode, cores, balanced in CASES:
        want = cli_plan(fsroot, nproc, mode, cores, balanced)
        for rank in range(nproc):
            got = gpuaff.set_affinity(rank, nproc, mode=mode, cores=cores, balanced=balanced,
                                      dry_run=True, fsroot=fsroot)
            assert got == want[rank], (name, mode, cores, balanced, rank)
            # A string mode is the same request.
            assert gpuaff.set_affinity(rank, nproc, mode=mode.value, cores=cores, balanced=balanced,
                                       dry_run=True, fsroot=fsroot) == got
            distinct.add(frozenset(got))
    # The table is not vacuous: the modes give many different sets.
    assert len(distinct) > 20, len(distinct)


REAL = """
import json, threading, gpuaff
{tasks}
stop = threading.Event()
workers = [threading.Thread(target=stop.wait) for _ in range(3)]
for w in workers: w.start()
got = gpuaff.set_affinity({rank}, {nproc}, mode={mode!r}, cores={cores!r}, balanced={balanced})
tasks = _tasks()
stop.set()
for w in workers: w.join()
print(json.dumps({{"got": sorted(got), "tasks": tasks}}))
"""


@pytest.mark.parametrize("name", ["two-gpu-local", "two-gpu-split"])
def test_set_affinity_binds_what_gpuaff_plan_says(machine, name):
    fsroot = machine(name)
    nproc = 2
    bound = 0
    for mode, cores, balanced in CASES:
        want = cli_plan(fsroot, nproc, mode, cores, balanced)
        for rank in range(nproc):
            if not host_has_cpus(want[rank]):
                pytest.skip(f"this host cannot use CPUs {sorted(want[rank])}")
            code = REAL.format(tasks=TASKS, rank=rank, nproc=nproc, mode=mode.value, cores=cores,
                               balanced=balanced)
            out = last_json(run_python(code, GPU_AFFINITY_FSROOT=fsroot))
            if mode is gpuaff.AffinityMode.none:
                # Mode none binds nothing: the process keeps the mask it started with.
                assert want[rank] == set()
                assert set(out["got"]) == os.sched_getaffinity(0), out
                continue
            assert set(out["got"]) == want[rank], (mode, cores, balanced, rank, out)
            for tid, cpus in out["tasks"].items():
                assert set(cpus) == want[rank], (mode, cores, balanced, rank, tid, out)
            bound += 1
    assert bound == 5 * 2 * 2 * nproc
