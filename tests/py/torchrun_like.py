"""A torchrun-like agent: starts N workers (argv[1]) running argv[2:], each with LOCAL_RANK and
LOCAL_WORLD_SIZE set, waits for them and exits with the worst status. Prints its own CPUs first:
"agent pid P cpus LIST"."""
import os
import subprocess
import sys


def cpus():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    return "?"


def main():
    n = int(sys.argv[1])
    print(f"agent pid {os.getpid()} cpus {cpus()}", flush=True)
    procs = []
    for rank in range(n):
        env = dict(os.environ, LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(n))
        procs.append(subprocess.Popen(sys.argv[2:], env=env))
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()
