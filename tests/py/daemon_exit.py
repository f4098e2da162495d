"""Daemon threads still running when the interpreter exits, a thread that ends by SystemExit, and a
ThreadPoolExecutor shut down without waiting: under the preload (threads on the hook's wrapper path),
the interpreter must finish with status 0. Prints every thread's CPUs before exiting."""
import concurrent.futures
import os
import sys
import threading
import time


def spin():
    while True:
        time.sleep(0.01)


def leaves_by_system_exit():
    sys.exit(3)


for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
t = threading.Thread(target=leaves_by_system_exit)
t.start()
t.join()
pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
for _ in range(6):
    pool.submit(time.sleep, 0.05)
for tid in sorted(os.listdir("/proc/self/task"), key=int):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                print("task", tid, line.split()[1])
pool.shutdown(wait=False)
print("done", flush=True)
