#!/usr/bin/env bash
# Hostile and odd inputs: for each, the gpuaff lines a preloaded /bin/true prints (count and longest,
# in bytes), its wall time (median) and its peak RSS (GNU time's %M, median), for the release
# libgpuaff.so and, side by side, for an older library given as the argument (e.g. one built from an
# earlier commit), so that a change is measured before and after.
#
# Usage: scripts/bench-hostile.sh [OLD_LIBGPUAFF_SO]   (about 30 seconds; more with an old library
#                                                      that takes seconds per process)
# Needs python3 and GNU time (/usr/bin/time: peak RSS from a small parent, not a forked python), and
# a release build (the script runs `cargo build --release`). Runs of the two libraries alternate, so
# that the noise of a shared machine falls on both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_setup hostile "python3 time" python3 /usr/bin/time
"$fixture" write two-gpu-local "$work/local" >/dev/null
"$fixture" write two-gpu-split "$work/split" >/dev/null

python3 - "$work" "$lib" "$@" <<'EOF'
import os, statistics, subprocess, sys, time

work, libs = sys.argv[1], sys.argv[2:]
names = ["this"] + ["old"] * (len(libs) - 1)
cvd10k = ",".join(str(i) for i in range(10000))
cases = [
    ("CUDA_VISIBLE_DEVICES: 10,000 entries (0,1,...,9999)", "local", {"CUDA_VISIBLE_DEVICES": cvd10k}),
    # One environment string can be at most 128 KiB (MAX_ARG_STRLEN); a longer one cannot reach exec.
    ("CUDA_VISIBLE_DEVICES: 127 KiB (0,1, then one long entry)", "local",
     {"CUDA_VISIBLE_DEVICES": "0,1," + "9" * (127 * 1024)}),
    ("CUDA_VISIBLE_DEVICES=-1", "local", {"CUDA_VISIBLE_DEVICES": "-1"}),
    ("CUDA_VISIBLE_DEVICES= (empty)", "local", {"CUDA_VISIBLE_DEVICES": ""}),
    ("GPU_AFFINITY_MAP: 126 KB (14,000 x 0-131071)", "local",
     {"GPU_AFFINITY_MAP": ";".join(["0-131071"] * 14000)}),
    ("GPU_AFFINITY_MAP: 70 KB of one list (beyond the 64 KiB limit)", "local",
     {"GPU_AFFINITY_MAP": "0," * 35000 + "1"}),
    ("GPU_AFFINITY_MEMBIND=bind, node absent", "split",
     {"GPU_AFFINITY_MEMBIND": "bind", "LOCAL_RANK": "1"}),
    ("baseline: rank 0, nothing odd", "local", {}),
]

def one(lib, fx, extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GPU_AFFINITY_") and k not in ("CUDA_VISIBLE_DEVICES", "LD_PRELOAD")}
    # The variables reach /bin/true through env(1), so that GNU time itself is not preloaded.
    mine = dict(LD_PRELOAD=lib, LOCAL_RANK="0", GPU_AFFINITY_FSROOT=os.path.join(work, fx))
    mine.update(extra)
    cmd = ["/usr/bin/time", "-f", "gpuaff-bench-rss %M", "/usr/bin/env"]
    cmd += [f"{k}={v}" for k, v in mine.items()] + ["/bin/true"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    lines = [l for l in p.stderr.decode(errors="replace").split("\n") if l]
    rss = int(lines.pop().split()[-1])
    return dt, rss, lines

print("| input | library | lines | longest line (bytes) | start-up (ms, median) | peak RSS (KiB, median) | runs |")
print("|---|---|---|---|---|---|---|")
for title, fx, extra in cases:
    res = {lib: ([], [], []) for lib in libs}
    start = time.perf_counter()
    runs = 0
    while runs < 20 and (runs < 3 or time.perf_counter() - start < 2.0 * len(libs)):
        for lib in libs:
            dt, maxrss, lines = one(lib, fx, extra)
            res[lib][0].append(dt * 1000)
            res[lib][1].append(maxrss)
            res[lib][2][:] = lines
        runs += 1
    for name, lib in zip(names, libs):
        times, rss, lines = res[lib]
        longest = max((len(l.encode()) for l in lines), default=0)
        print(f"| {title} | {name} | {len(lines)} | {longest:,} | {statistics.median(times):.1f} | "
              f"{int(statistics.median(rss)):,} | {runs} |", flush=True)
        for l in lines:
            shown = l if len(l) <= 160 else l[:157] + "..."
            print(f"<!-- {name}: {shown} -->", file=sys.stderr)
EOF
