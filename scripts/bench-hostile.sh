#!/usr/bin/env bash
# Hostile and odd inputs: for each, the gpuaff lines a preloaded /bin/true prints (count and longest,
# in bytes), its wall time (median) and its peak RSS (ru_maxrss from wait4, median), for the release
# libgpuaff.so and, side by side, for an older library given as the argument (e.g. one built from an
# earlier commit), so that a change is measured before and after.
#
# Usage: scripts/bench-hostile.sh [OLD_LIBGPUAFF_SO]   (about 30 seconds; more with an old library
#                                                      that takes seconds per process)
# Needs cc and python3, and a release build (the script runs `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_setup hostile "python3" python3
"$fixture" write two-gpu-local "$work/local" >/dev/null
"$fixture" write two-gpu-split "$work/split" >/dev/null

python3 - "$work" "$lib" "$@" <<'EOF'
import os, statistics, subprocess, sys, time

work, libs = sys.argv[1], sys.argv[2:]
names = ["this"] + ["old"] * (len(libs) - 1)
cvd10k = ",".join(str(i) for i in range(10000))
cases = [
    ("CUDA_VISIBLE_DEVICES: 10,000 entries (0,1,...,9999)", "local", {"CUDA_VISIBLE_DEVICES": cvd10k}),
    ("CUDA_VISIBLE_DEVICES: 1 MiB (0,1, then one 1 MiB entry)", "local",
     {"CUDA_VISIBLE_DEVICES": "0,1," + "9" * (1 << 20)}),
    ("CUDA_VISIBLE_DEVICES=-1", "local", {"CUDA_VISIBLE_DEVICES": "-1"}),
    ("CUDA_VISIBLE_DEVICES= (empty)", "local", {"CUDA_VISIBLE_DEVICES": ""}),
    ("GPU_AFFINITY_MAP: 126 KB (14,000 x 0-131071)", "local",
     {"GPU_AFFINITY_MAP": ";".join(["0-131071"] * 14000)}),
    ("GPU_AFFINITY_MAP: 70 KB of one list", "local", {"GPU_AFFINITY_MAP": "0," * 35000 + "1"}),
    ("GPU_AFFINITY_MEMBIND=bind, node absent", "split",
     {"GPU_AFFINITY_MEMBIND": "bind", "LOCAL_RANK": "1"}),
    ("baseline: rank 0, nothing odd", "local", {}),
]

def one(lib, fx, extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPU_AFFINITY_") and k not in ("CUDA_VISIBLE_DEVICES", "LD_PRELOAD")}
    env.update(LD_PRELOAD=lib, LOCAL_RANK="0", GPU_AFFINITY_FSROOT=os.path.join(work, fx))
    env.update(extra)
    t0 = time.perf_counter()
    p = subprocess.Popen(["/bin/true"], env=env, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    lines = [l for l in err.decode(errors="replace").split("\n") if l]
    return dt, ru.ru_maxrss, lines

print("| input | library | lines | longest line (bytes) | start-up (ms, median) | peak RSS (KiB, median) | runs |")
print("|---|---|---|---|---|---|---|")
for title, fx, extra in cases:
    for name, lib in zip(names, libs):
        times, rss, runs, start = [], [], 0, time.perf_counter()
        while runs < 30 and (runs < 3 or time.perf_counter() - start < 1.0):
            dt, maxrss, lines = one(lib, fx, extra)
            times.append(dt * 1000)
            rss.append(maxrss)
            runs += 1
        longest = max((len(l.encode()) for l in lines), default=0)
        print(f"| {title} | {name} | {len(lines)} | {longest:,} | {statistics.median(times):.1f} | "
              f"{int(statistics.median(rss)):,} | {runs} |")
        for l in lines:
            shown = l if len(l) <= 160 else l[:157] + "..."
            print(f"<!-- {name}: {shown} -->", file=sys.stderr)
EOF
