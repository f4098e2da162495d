"""Shared fixtures for the tests of the installed Python package (tests/suites/python.sh installs
the wheel into a fresh venv and runs pytest here). Machine trees come from the repository's fixture
generator (GPUAFF_FIXTURE_BIN, else target/debug/gpuaff-fixture)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _fixture_bin():
    exe = os.environ.get("GPUAFF_FIXTURE_BIN") or os.path.join(REPO, "target", "debug", "gpuaff-fixture")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"{exe} not found: cargo build -p gpuaff-fixtures (or set GPUAFF_FIXTURE_BIN)")
    return exe


@pytest.fixture(scope="session")
def machine(tmp_path_factory):
    """machine(NAME) -> the path of the catalog machine NAME's sysfs tree."""
    made = {}

    def make(name):
        if name not in made:
            d = tmp_path_factory.mktemp(name)
            subprocess.run([_fixture_bin(), "write", name, str(d)], check=True)
            made[name] = str(d)
        return made[name]

    return make


def clean_env(**extra):
    """This process's environment without anything that steers gpuaff, plus `extra`."""
    drop = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
            "MV2_COMM_WORLD_LOCAL_RANK", "PALS_LOCAL_RANKID", "FLUX_TASK_LOCAL_ID", "LOCAL_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE",
            "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LD_PRELOAD")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GPU_AFFINITY_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code, **env):
    """Runs `code` in a fresh interpreter of this venv; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def last_json(proc):
    """The last stdout line of a run_python child, parsed as JSON (fails with the child's output)."""
    assert proc.returncode == 0, f"status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: Python source that prints every thread's Cpus_allowed_list as a JSON object {tid: [cpus]}.
TASKS = """
def _tasks():
    import os
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    cpus = set()
                    for part in line.split(":", 1)[1].strip().split(","):
                        a, _, b = part.partition("-")
                        cpus.update(range(int(a), int(b or a) + 1))
                    out[tid] = sorted(cpus)
    return out
"""


def host_has_cpus(cpus):
    return set(cpus) <= os.sched_getaffinity(0)
