"""The installed wheel: the module's API, the gpuaff command, python -m gpuaff, and the loading rules
as a Python user meets them. Every binding happens in a child interpreter, and masks are read back
from /proc/self/task."""
import errno
import os
import shutil
import subprocess
import sys

import gpuaff
import pytest

from conftest import REPO, TASKS, clean_env, last_json, run_python


def test_the_module_comes_from_the_installed_wheel():
    here = os.path.dirname(gpuaff.__file__)
    assert "site-packages" in here, here
    assert not here.startswith(os.path.join(REPO, "python")), here
    for f in ("py.typed", "lib/libgpuaff.so", "bin/gpuaff"):
        assert os.path.isfile(os.path.join(here, f)), f
    assert os.access(gpuaff.binary_path(), os.X_OK)
    assert gpuaff.library_path() == os.path.join(here, "lib", "libgpuaff.so")


def test_version_is_the_librarys_and_the_workspaces():
    assert gpuaff.__version__ == gpuaff.version()
    cargo = open(os.path.join(REPO, "Cargo.toml")).read()
    assert f'version = "{gpuaff.__version__}"' in cargo
    out = subprocess.run(["gpuaff", "--version"], stdout=subprocess.PIPE, text=True, check=True)
    assert out.stdout.strip() == f"gpuaff {gpuaff.__version__}"


def test_importing_and_loading_bind_nothing(machine):
    # A local rank and verbose are set: a library that bound on load would say so and narrow the mask.
    code = TASKS + """
import json, os, gpuaff
before = sorted(os.sched_getaffinity(0))
gpuaff.version()   # loads the library
print(json.dumps({"before": before, "tasks": _tasks()}))
"""
    r = run_python(code, GPU_AFFINITY_FSROOT=machine("two-gpu-local"), LOCAL_RANK="1",
                   GPU_AFFINITY_VERBOSE="1")
    out = last_json(r)
    assert r.stderr == ""
    for cpus in out["tasks"].values():
        assert cpus == out["before"]


def test_set_affinity_binds_every_thread_and_returns_the_mask(machine):
    code = TASKS + """
import json, os, threading, gpuaff
stop = threading.Event()
early = [threading.Thread(target=stop.wait) for _ in range(4)]
for t in early: t.start()
got = gpuaff.set_affinity(1, 2)
late_mask = []
late = threading.Thread(target=lambda: late_mask.append(sorted(os.sched_getaffinity(0))))
late.start(); late.join()
tasks = _tasks()
stop.set()
for t in early: t.join()
print(json.dumps({"got": sorted(got), "mask": sorted(os.sched_getaffinity(0)), "late": late_mask[0],
                  "tasks": tasks}))
"""
    r = run_python(code, GPU_AFFINITY_FSROOT=machine("two-gpu-local"))
    out = last_json(r)
    assert out["got"] == [1] and out["mask"] == [1] and out["late"] == [1]
    assert len(out["tasks"]) >= 5
    assert all(cpus == [1] for cpus in out["tasks"].values()), out
    assert r.stderr == ""


def test_modes_as_strings_nvidia_enums_and_our_enum_agree(machine):
    import enum
    fsroot = machine("dgx-a100")

    class NvidiaAffinityMode(enum.Enum):  # NVIDIA's gpu_affinity.AffinityMode uses auto() values
        socket_single_unique = enum.auto()

    kw = dict(dry_run=True, fsroot=fsroot)
    a = gpuaff.set_affinity(3, 8, mode="socket_single_unique", **kw)
    assert a == gpuaff.set_affinity(3, 8, mode=gpuaff.AffinityMode.socket_single_unique, **kw)
    assert a == gpuaff.set_affinity(3, 8, mode=NvidiaAffinityMode.socket_single_unique, **kw)
    assert a == gpuaff.plan_cpus(3, 8, mode="socket_single_unique", fsroot=fsroot)
    # The torch family and map are accepted too.
    assert gpuaff.set_affinity(3, 8, mode="node", **kw) == gpuaff.plan_cpus(3, 8, mode="node",
                                                                             fsroot=fsroot)


@pytest.mark.parametrize("kwargs", [
    dict(mode="sockets"), dict(mode=3), dict(cores="all"), dict(balanced="yes"),
    dict(membind="local"), dict(threads="spread"),
])
def test_bad_arguments_raise_value_error(machine, kwargs):
    with pytest.raises(ValueError):
        gpuaff.set_affinity(0, 2, fsroot=machine("two-gpu-local"), **kwargs)


@pytest.mark.parametrize("gpu_id,nproc", [(-1, 2), ("0", 2), (0, 0), (0, -2), (True, 2)])
def test_bad_gpu_or_nproc_raise_value_error(gpu_id, nproc):
    with pytest.raises(ValueError):
        gpuaff.set_affinity(gpu_id, nproc)


def test_a_failed_binding_raises_oserror_and_changes_nothing(machine, tmp_path):
    code = """
import json, os, gpuaff
before = sorted(os.sched_getaffinity(0))
errs = []
for kw in [dict(fsroot=%r), dict(fsroot=%r, gpu_id=7)]:
    gpu = kw.pop("gpu_id", 1)
    try:
        gpuaff.set_affinity(gpu, 2, **kw)
        errs.append(None)
    except OSError as e:
        errs.append([type(e).__name__, e.errno, e.strerror])
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)), "errs": errs}))
""" % (str(tmp_path / "missing"), machine("two-gpu-local"))
    r = run_python(code)
    out = last_json(r)
    assert out["after"] == out["before"]
    (name1, no1, msg1), (name2, no2, msg2) = out["errs"]
    assert name1 == "GpuaffError" and no1 in (errno.ENOENT, errno.EIO, errno.ENODEV), out
    assert str(tmp_path / "missing") in msg1, msg1
    assert no2 == errno.EINVAL and "7" in msg2, out
    assert r.stderr == ""


def test_plan_is_gpuaff_plan_json(machine):
    fsroot = machine("dgx-a100")
    p = gpuaff.plan(fsroot=fsroot, mode="socket_unique_interleaved", cores="single_logical")
    cli = subprocess.run(["gpuaff", "plan", "--json", "--fsroot", fsroot, "--mode",
                          "socket_unique_interleaved", "--cores", "single_logical"],
                         stdout=subprocess.PIPE, text=True, check=True)
    import json
    assert p == json.loads(cli.stdout)
    assert len(p["ranks"]) == 8 and all("cpus" in r for r in p["ranks"])
    with pytest.raises(ValueError):
        gpuaff.plan(fsroot=fsroot, mode="bogus")
    with pytest.raises(ValueError):
        gpuaff.plan(fsroot=fsroot, nproc_per_node=0)


def test_dry_run_returns_the_plan_and_binds_nothing(machine):
    code = """
import json, os, gpuaff
before = sorted(os.sched_getaffinity(0))
got = gpuaff.set_affinity(1, 2, dry_run=True)
print(json.dumps({"before": before, "after": sorted(os.sched_getaffinity(0)), "got": sorted(got)}))
"""
    out = last_json(run_python(code, GPU_AFFINITY_FSROOT=machine("two-gpu-local")))
    assert out["got"] == [1] and out["after"] == out["before"]


def test_python_m_gpuaff_runs_the_command(machine):
    fsroot = machine("two-gpu-local")
    lib = subprocess.run([sys.executable, "-m", "gpuaff", "lib"], stdout=subprocess.PIPE, text=True,
                         check=True).stdout.strip()
    assert os.path.realpath(lib) == os.path.realpath(gpuaff.library_path())
    topo = subprocess.run([sys.executable, "-m", "gpuaff", "topo", "--fsroot", fsroot, "--json"],
                          stdout=subprocess.PIPE, text=True, check=True)
    assert '"gpus"' in topo.stdout
    bad = subprocess.run([sys.executable, "-m", "gpuaff", "plan", "--mode", "bogus"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("gpuaff: ")


def test_the_gpuaff_command_on_path_plans_and_runs(machine):
    fsroot = machine("two-gpu-local")
    exe = shutil.which("gpuaff")
    assert exe and os.path.dirname(exe) == os.path.dirname(sys.executable), exe
    plan = subprocess.run(["gpuaff", "plan", "--fsroot", fsroot], stdout=subprocess.PIPE, text=True,
                          check=True)
    assert "0000:1f:00.0" in plan.stdout or "GPU" in plan.stdout
    # gpuaff run finds the wheel's library (bin/../lib inside the package) and preloads it.
    code = "import os; print(sorted(os.sched_getaffinity(0)))"
    r = subprocess.run(["gpuaff", "run", "--fsroot", fsroot, "--", sys.executable, "-c", code],
                       env=clean_env(LOCAL_RANK="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1]", r.stdout + r.stderr


def test_ld_preload_of_the_wheels_library_binds_at_start(machine):
    lib = subprocess.run([sys.executable, "-m", "gpuaff", "lib"], stdout=subprocess.PIPE, text=True,
                         check=True).stdout.strip()
    r = run_python("import os; print(sorted(os.sched_getaffinity(0)))", LD_PRELOAD=lib,
                   LOCAL_RANK="1", GPU_AFFINITY_FSROOT=machine("two-gpu-local"),
                   GPU_AFFINITY_VERBOSE="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1]"
    assert len(r.stderr.splitlines()) == 1 and "rank 1 -> GPU 1" in r.stderr, r.stderr


def test_a_preloaded_copy_and_the_packages_copy_keep_one_binding(machine, tmp_path):
    # Another copy of the library (another path), preloaded: it binds rank 1 at start. The package's
    # copy then binds GPU 0; a thread created afterwards by a thread outside both bindings must start
    # on the latest binding's CPU (the preloaded copy's hook follows the package's call).
    other = tmp_path / "libgpuaff.so"
    shutil.copy(gpuaff.library_path(), other)
    code = TASKS + """
import json, os, threading, gpuaff
start = sorted(os.sched_getaffinity(0))
got = gpuaff.set_affinity(0, 2)
result = {}
def creator():
    os.sched_setaffinity(0, {0, 1})
    t = threading.Thread(target=lambda: result.update(late=sorted(os.sched_getaffinity(0))))
    t.start(); t.join()
c = threading.Thread(target=creator); c.start(); c.join()
print(json.dumps({"start": start, "got": sorted(got), "late": result["late"]}))
"""
    # The guard off: the creator (Python, a shared library to the guard) must be able to widen itself.
    r = run_python(code, LD_PRELOAD=str(other), LOCAL_RANK="1", GPU_AFFINITY_GUARD="off",
                   GPU_AFFINITY_FSROOT=machine("two-gpu-local"), GPU_AFFINITY_VERBOSE="1")
    out = last_json(r)
    assert out == {"start": [1], "got": [0], "late": [0]}, (out, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert "rank 1 -> GPU 1" in lines[0] and "rank 0 -> GPU 0" in lines[1], r.stderr
