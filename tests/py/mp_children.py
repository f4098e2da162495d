"""Children of a preloaded, bound python3 through multiprocessing's three start methods, and a spawned
child given another local rank (as a launcher that starts its workers itself would). Each child
prints its own CPUs and those of a thread it starts: "METHOD rank=R cpus=LIST thread=LIST"."""
import multiprocessing as mp
import os
import sys
import threading


def cpus_of(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    return "?"


def report(method, queue):
    seen = {}
    t = threading.Thread(target=lambda: seen.update(cpus=cpus_of(threading.get_native_id())))
    t.start()
    t.join()
    queue.put(f"{method} rank={os.environ.get('LOCAL_RANK')} cpus={cpus_of(os.getpid())} thread={seen['cpus']}")


def run(method, rank=None):
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    old = os.environ.get("LOCAL_RANK")
    if rank is not None:
        os.environ["LOCAL_RANK"] = rank
    try:
        p = ctx.Process(target=report, args=(method if rank is None else f"{method}-as-{rank}", queue))
        p.start()
        line = queue.get(timeout=60)
        p.join(60)
    finally:
        os.environ["LOCAL_RANK"] = old
    print(line, flush=True)


if __name__ == "__main__":
    print(f"parent cpus={cpus_of(os.getpid())}", flush=True)
    run("fork")
    run("spawn")
    run("forkserver")
    run("spawn", rank="0")
    print("done", flush=True)
    sys.exit(0)
