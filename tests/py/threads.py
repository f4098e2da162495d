"""Starts threading.Thread and ThreadPoolExecutor threads, then prints every thread's
Cpus_allowed_list from /proc/self/task/*/status ("task TID LIST"), then "done"."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

release = threading.Event()
started = threading.Barrier(6)


def wait():
    started.wait()
    release.wait(30)


def cpus(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    return "?"


threads = [threading.Thread(target=wait) for _ in range(2)]
for t in threads:
    t.start()
pool = ThreadPoolExecutor(max_workers=3)
futures = [pool.submit(wait) for _ in range(3)]
started.wait()
for tid in sorted(os.listdir("/proc/self/task"), key=int):
    print(f"task {tid} {cpus(tid)}")
release.set()
for t in threads:
    t.join()
pool.shutdown()
print("done")
