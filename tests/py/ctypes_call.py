"""ctypes_call.py LIB GPU_ID NPROC: calls gpu_affinity_set through ctypes and prints the result,
the error texts and every thread's Cpus_allowed_list, then "done"."""
import ctypes
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.gpu_affinity_set.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int]
lib.gpu_affinity_set.restype = ctypes.c_int
lib.gpu_affinity_strerror.argtypes = [ctypes.c_int]
lib.gpu_affinity_strerror.restype = ctypes.c_char_p
lib.gpu_affinity_last_error.restype = ctypes.c_char_p
lib.gpu_affinity_version.restype = ctypes.c_char_p

print("version=" + lib.gpu_affinity_version().decode())
cpus = (ctypes.c_int * 8)()
rc = lib.gpu_affinity_set(int(sys.argv[2]), int(sys.argv[3]), None, cpus, len(cpus))
if rc < 0:
    print(f"error rc={rc} strerror={lib.gpu_affinity_strerror(rc).decode()} "
          f"last={lib.gpu_affinity_last_error().decode()}")
else:
    print(f"rc={rc} cpus=" + ",".join(str(cpus[i]) for i in range(min(rc, len(cpus)))))
print("enodev=" + lib.gpu_affinity_strerror(-19).decode())
for tid in sorted(os.listdir("/proc/self/task"), key=int):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                print(f"task {tid} {line.split(':', 1)[1].strip()}")
print("done")
