"""gpuaff: bind a GPU worker process, and every thread it has or creates, to the CPUs (and optionally
the NUMA memory) closest to its GPU.

``set_affinity`` is a drop-in for NVIDIA's ``gpu_affinity.set_affinity`` (same parameters, defaults
and return value) that binds every thread of the process, not only the calling one. The other
functions are the rest of libgpuaff's C ABI: ``plan_cpus`` (plan only), ``plan`` (``gpuaff plan
--json`` for every rank), ``library_path`` (for ``LD_PRELOAD``), ``version``.

Importing this module binds nothing, and neither does loading the library through it: only a call
of ``set_affinity`` does. (A library that is *preloaded* binds at start-up from ``LOCAL_RANK``; if a
process has both a preloaded copy and this package's copy, calls through this package are carried
out by the preloaded copy, so the process keeps one binding and the latest call governs.)
"""

import ctypes
import enum
import json
import os
import subprocess
import sys
import threading
from typing import Any, Dict, Optional, Set, Union

from ._version import __version__

__all__ = [
    "AffinityMode",
    "GpuaffError",
    "MODES",
    "__version__",
    "binary_path",
    "library_path",
    "plan",
    "plan_cpus",
    "set_affinity",
    "version",
]


class AffinityMode(enum.Enum):
    """NVIDIA's affinity modes, under NVIDIA's member names (``gpu_affinity.AffinityMode``)."""

    none = "none"
    socket = "socket"
    socket_single = "socket_single"
    socket_single_unique = "socket_single_unique"
    socket_unique_interleaved = "socket_unique_interleaved"
    socket_unique_contiguous = "socket_unique_contiguous"


#: Every mode the library accepts: NVIDIA's six, PyTorch's ``torch.numa.binding`` family, and ``map``
#: (the CPU lists of GPU_AFFINITY_MAP).
MODES = tuple(m.value for m in AffinityMode) + (
    "node",
    "package",
    "exclusive",
    "core-complex",
    "core_complex",
    "map",
)

_CORES = {"all_logical": 0, "single_logical": 1}
_MEMBIND = {"none": 0, "preferred": 1, "bind": 2, "interleave": 3}
_THREADS = {"inherit": 0, "off": 1}
_MAX_CPUS = 8192

Mode = Union[str, AffinityMode]


class GpuaffError(OSError):
    """A failed binding or plan: ``errno`` is the library's error number, ``strerror`` its message."""


class _Options(ctypes.Structure):
    # struct gpu_affinity_options (gpu_affinity.h); fields are only ever appended.
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("gpu_id", ctypes.c_int),
        ("nproc_per_node", ctypes.c_int),
        ("mode", ctypes.c_char_p),
        ("cores", ctypes.c_int),
        ("balanced", ctypes.c_int),
        ("membind", ctypes.c_int),
        ("threads", ctypes.c_int),
        ("dry_run", ctypes.c_int),
        ("verbose", ctypes.c_int),
        ("strict", ctypes.c_int),
        ("map", ctypes.c_char_p),
        ("fsroot", ctypes.c_char_p),
    ]


_here = os.path.dirname(os.path.abspath(__file__))
_lib = None
_lib_lock = threading.Lock()


def library_path() -> str:
    """The path of this package's ``libgpuaff.so``, e.g. for ``LD_PRELOAD=$(python -m gpuaff lib)``."""
    return os.path.join(_here, "lib", "libgpuaff.so")


def binary_path() -> str:
    """The path of this package's ``gpuaff`` command."""
    return os.path.join(_here, "bin", "gpuaff")


def _library() -> ctypes.CDLL:
    """The library, loaded on first use (loading it binds nothing)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            lib = ctypes.CDLL(library_path())
            ints = ctypes.POINTER(ctypes.c_int)
            opts = ctypes.POINTER(_Options)
            lib.gpu_affinity_options_init.argtypes = [opts]
            lib.gpu_affinity_options_init.restype = None
            for name in ("gpu_affinity_set_opts", "gpu_affinity_plan"):
                f = getattr(lib, name)
                f.argtypes = [opts, ints, ctypes.c_int]
                f.restype = ctypes.c_int
            lib.gpu_affinity_strerror.argtypes = [ctypes.c_int]
            lib.gpu_affinity_strerror.restype = ctypes.c_char_p
            lib.gpu_affinity_last_error.argtypes = []
            lib.gpu_affinity_last_error.restype = ctypes.c_char_p
            lib.gpu_affinity_version.argtypes = []
            lib.gpu_affinity_version.restype = ctypes.c_char_p
            _lib = lib
        return _lib


def version() -> str:
    """The version of the loaded library (equal to ``__version__`` for this package's own copy)."""
    return _library().gpu_affinity_version().decode()


def _mode_name(mode: Optional[Mode]) -> Optional[str]:
    if mode is None:
        return None
    if isinstance(mode, AffinityMode):
        return mode.value
    # Another module's AffinityMode (NVIDIA's own enum) carries the same member names.
    if isinstance(mode, enum.Enum):
        mode = mode.name
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"unknown affinity mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def _choice(name: str, value: Optional[str], table: Dict[str, int]) -> int:
    if value is None:
        return -1
    if value not in table:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(table)}")
    return table[value]


def _flag(name: str, value: Optional[bool]) -> int:
    if value is None:
        return -1
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return int(value)


def _options(
    gpu_id: Optional[int],
    nproc_per_node: Optional[int],
    mode: Optional[Mode],
    cores: Optional[str],
    balanced: Optional[bool],
    membind: Optional[str],
    threads: Optional[str],
    strict: Optional[bool],
    verbose: Optional[bool],
    dry_run: Optional[bool],
    fsroot: Optional[str],
) -> _Options:
    if gpu_id is not None and (isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or gpu_id < 0):
        raise ValueError(f"gpu_id must be a non-negative integer, not {gpu_id!r}")
    if nproc_per_node is not None and (
        isinstance(nproc_per_node, bool) or not isinstance(nproc_per_node, int) or nproc_per_node < 1
    ):
        raise ValueError(f"nproc_per_node must be a positive integer, not {nproc_per_node!r}")
    o = _Options()
    _library().gpu_affinity_options_init(ctypes.byref(o))
    # This struct's size, not the library's: a newer library then defaults the fields it lacks.
    o.size = ctypes.sizeof(_Options)
    o.gpu_id = -1 if gpu_id is None else gpu_id
    o.nproc_per_node = 0 if nproc_per_node is None else nproc_per_node
    name = _mode_name(mode)
    o.mode = None if name is None else name.encode()
    o.cores = _choice("cores", cores, _CORES)
    o.balanced = _flag("balanced", balanced)
    o.membind = _choice("membind", membind, _MEMBIND)
    o.threads = _choice("threads", threads, _THREADS)
    o.strict = _flag("strict", strict)
    o.verbose = _flag("verbose", verbose)
    o.dry_run = _flag("dry_run", dry_run)
    o.fsroot = None if fsroot is None else os.fsencode(fsroot)
    return o


def _call(name: str, o: _Options) -> Set[int]:
    lib = _library()
    buf = (ctypes.c_int * _MAX_CPUS)()
    rc = getattr(lib, name)(ctypes.byref(o), buf, _MAX_CPUS)
    if rc < 0:
        err = -rc
        message = lib.gpu_affinity_last_error().decode(errors="replace")
        raise GpuaffError(err, message or lib.gpu_affinity_strerror(rc).decode())
    if rc > _MAX_CPUS:
        raise GpuaffError(0, f"the plan has {rc} CPUs, more than this module's buffer ({_MAX_CPUS})")
    return set(buf[:rc])


def set_affinity(
    gpu_id: Optional[int],
    nproc_per_node: Optional[int] = None,
    *,
    mode: Mode = "socket_unique_contiguous",
    cores: str = "all_logical",
    balanced: bool = True,
    membind: Optional[str] = None,
    threads: Optional[str] = None,
    strict: Optional[bool] = None,
    verbose: Optional[bool] = None,
    dry_run: Optional[bool] = None,
    fsroot: Optional[str] = None,
) -> Set[int]:
    """Binds the process (every thread, and threads it creates later) for GPU ``gpu_id`` of
    ``nproc_per_node`` processes on this node, and returns ``os.sched_getaffinity(0)``.

    The parameters and defaults are NVIDIA's: ``mode`` is one of NVIDIA's six modes (a string or an
    ``AffinityMode``) or another mode of ``MODES``; ``cores`` is ``"all_logical"`` or
    ``"single_logical"``; ``balanced`` gives every GPU the same number of cores. ``nproc_per_node``
    None means the local world size from the environment (``LOCAL_WORLD_SIZE``, ...) or else the
    number of visible GPUs. ``gpu_id`` None means the local rank from the environment.

    The keyword-only options beyond NVIDIA's default to the environment (``GPU_AFFINITY_MEMBIND``,
    ``..._THREADS``, ``..._STRICT``, ``..._VERBOSE``, ``..._DRY_RUN``, ``..._FSROOT``). With a dry
    run nothing is bound and the planned set is returned.

    Raises ``ValueError`` for a bad argument and ``GpuaffError`` (an ``OSError``: ``errno`` and the
    library's message) when planning or binding fails; the process is then left as it was.
    """
    o = _options(gpu_id, nproc_per_node, mode, cores, balanced, membind, threads, strict, verbose,
                 dry_run, fsroot)
    planned = _call("gpu_affinity_set_opts", o)
    if dry_run or (dry_run is None and _env_flag("GPU_AFFINITY_DRY_RUN")):
        return planned
    return os.sched_getaffinity(0)


def plan_cpus(
    gpu_id: Optional[int] = None,
    nproc_per_node: Optional[int] = None,
    *,
    mode: Optional[Mode] = None,
    cores: Optional[str] = None,
    balanced: Optional[bool] = None,
    fsroot: Optional[str] = None,
) -> Set[int]:
    """The CPUs ``set_affinity`` would bind this process to, changing nothing (the C ABI's
    ``gpu_affinity_plan``). Arguments left None come from the environment."""
    o = _options(gpu_id, nproc_per_node, mode, cores, balanced, None, None, None, None, None, fsroot)
    return _call("gpu_affinity_plan", o)


def plan(
    nproc_per_node: Optional[int] = None,
    *,
    mode: Optional[Mode] = None,
    cores: Optional[str] = None,
    balanced: Optional[bool] = None,
    allowed: Optional[str] = None,
    fsroot: Optional[str] = None,
    source: Optional[str] = None,
) -> Dict[str, Any]:
    """The plan for every local rank, as ``gpuaff plan --json`` prints it: ``{"ranks": [{"rank": 0,
    "gpu": 0, "pci_bus_id": ..., "numa_node": ..., "cpus": [...], "cpulist": ..., "mems": [...]},
    ...]}``; a rank that cannot be planned has ``"error"`` instead of ``"cpus"``. Changes nothing.
    Raises ``ValueError`` for bad arguments."""
    args = [binary_path(), "plan", "--json"]
    if nproc_per_node is not None:
        args += ["--nproc", str(nproc_per_node)]
    name = _mode_name(mode)
    if name is not None:
        args += ["--mode", name]
    if cores is not None:
        _choice("cores", cores, _CORES)
        args += ["--cores", cores]
    if balanced is not None:
        args.append("--balanced" if balanced else "--no-balanced")
    if allowed is not None:
        args += ["--allowed", allowed]
    if fsroot is not None:
        args += ["--fsroot", os.fspath(fsroot)]
    if source is not None:
        args += ["--source", source]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    err = r.stderr.decode(errors="replace").strip()
    if r.returncode == 2:
        raise ValueError(err.splitlines()[0] if err else "gpuaff plan: bad arguments")
    if r.returncode not in (0, 1) or not r.stdout.strip():
        raise GpuaffError(0, err or f"gpuaff plan exited with status {r.returncode}")
    return json.loads(r.stdout)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _main(argv: Optional[list] = None) -> None:
    """``python -m gpuaff ARGS``: the ``gpuaff`` command (``python -m gpuaff lib`` prints the
    library's path)."""
    args = sys.argv[1:] if argv is None else argv
    exe = binary_path()
    sys.stdout.flush()
    os.execv(exe, [exe] + list(args))
