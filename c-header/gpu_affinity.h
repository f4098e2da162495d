/* gpu_affinity.h — the C ABI of libgpuaff.so (gpuaff).
 *
 * Binds the calling process (all its threads, and threads it creates later) to the CPUs, and
 * optionally the NUMA memory, closest to a GPU. Link with -lgpuaff, or LD_PRELOAD libgpuaff.so and
 * let its constructor bind from the environment (LOCAL_RANK, GPU_AFFINITY_*).
 *
 * Every function is safe to call from any thread, never unwinds across this boundary and never exits
 * the process. None is async-signal-safe (they allocate and read files): never call one from a signal
 * handler. fork() is safe at any time, also while another thread is inside a call: the child can call
 * them. A call here is the user's choice and moves the binding; GPU_AFFINITY_GUARD applies to other
 * code's sched_setaffinity, pthread_setaffinity_np and pthread_create affinity attributes.
 * Failures return a negative errno value:
 *   -EINVAL   an argument or environment value is malformed or out of range
 *   -ENODEV   no usable GPU (none present, none visible through CUDA_VISIBLE_DEVICES, no driver/sysfs entry)
 *   -EDOM     no CPU can be planned for the GPU within the allowed set (or strict mode refused a fallback)
 *   -ENOENT, -EIO, -EACCES  a file of the machine description (sysfs/procfs) is missing or unreadable
 *   -EPERM    the kernel refused the binding
 *   -ELIBACC  NVML could not be loaded (GPU_AFFINITY_SOURCE=nvml)
 *   -EFAULT   an internal error in gpuaff (a bug)
 * gpu_affinity_strerror() describes each; gpu_affinity_last_error() gives the full message of the
 * calling thread's last failure (naming the file, variable or value at fault). */
#ifndef GPU_AFFINITY_H
#define GPU_AFFINITY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Binds the calling process (all its threads) for GPU `gpu_id` of `nproc_per_node` processes.
   gpu_id < 0: from the environment; nproc_per_node <= 0: from the environment / GPU count;
   mode NULL: GPU_AFFINITY_MODE or the default. Writes up to cpus_len CPU ids (ascending) to cpus.
   Returns the number of CPUs in the new binding (which may exceed cpus_len), or a negative errno value.
   Mode "none" binds nothing and returns 0. cpus may be NULL when cpus_len is 0. */
int gpu_affinity_set(int gpu_id, int nproc_per_node, const char *mode, int *cpus, int cpus_len);

/* A static, human-readable message for an error value (err and -err alike); never NULL. */
const char *gpu_affinity_strerror(int err);

/* Values of gpu_affinity_options.cores */
#define GPU_AFFINITY_CORES_DEFAULT (-1)       /* GPU_AFFINITY_CORES or all_logical */
#define GPU_AFFINITY_CORES_ALL_LOGICAL 0
#define GPU_AFFINITY_CORES_SINGLE_LOGICAL 1

/* Values of gpu_affinity_options.membind */
#define GPU_AFFINITY_MEMBIND_DEFAULT (-1)     /* GPU_AFFINITY_MEMBIND or none */
#define GPU_AFFINITY_MEMBIND_NONE 0
#define GPU_AFFINITY_MEMBIND_PREFERRED 1
#define GPU_AFFINITY_MEMBIND_BIND 2
#define GPU_AFFINITY_MEMBIND_INTERLEAVE 3

/* Values of gpu_affinity_options.threads */
#define GPU_AFFINITY_THREADS_DEFAULT (-1)     /* GPU_AFFINITY_THREADS or inherit */
#define GPU_AFFINITY_THREADS_INHERIT 0        /* threads created later start inside the binding */
#define GPU_AFFINITY_THREADS_OFF 1            /* pthread_create is left alone */

/* Options for gpu_affinity_set_opts / gpu_affinity_plan. Fill with gpu_affinity_options_init (every
   field "from the environment"), then set what you need. `size` lets the struct grow: a library that is
   newer than your header reads only the first `size` bytes and defaults the rest.
   Flags (balanced, dry_run, verbose, strict): -1 from the environment, 0 off, 1 on. */
struct gpu_affinity_options {
    size_t size;            /* sizeof(struct gpu_affinity_options); set by gpu_affinity_options_init */
    int gpu_id;             /* < 0: the local rank / GPU_AFFINITY_GPU from the environment */
    int nproc_per_node;     /* <= 0: GPU_AFFINITY_NPROC, LOCAL_WORLD_SIZE, ..., or the GPU count */
    const char *mode;       /* NULL: GPU_AFFINITY_MODE or socket_unique_contiguous */
    int cores;              /* GPU_AFFINITY_CORES_* */
    int balanced;           /* flag, as GPU_AFFINITY_BALANCED */
    int membind;            /* GPU_AFFINITY_MEMBIND_* */
    int threads;            /* GPU_AFFINITY_THREADS_* */
    int dry_run;            /* flag: plan and report (if verbose), bind nothing */
    int verbose;            /* flag: one "gpuaff: ..." line on stderr saying what was bound */
    int strict;             /* flag: a fallback plan (CPUs not local to the GPU) is an error (-EDOM) */
    const char *map;        /* NULL: GPU_AFFINITY_MAP; per-rank CPU lists "0-7;8-15" (mode "map") */
    const char *fsroot;     /* NULL: GPU_AFFINITY_FSROOT or "/" */
};

/* Sets every field to "from the environment" and `size` to sizeof(struct gpu_affinity_options). */
void gpu_affinity_options_init(struct gpu_affinity_options *opts);

/* As gpu_affinity_set, with options (NULL: all from the environment). */
int gpu_affinity_set_opts(const struct gpu_affinity_options *opts, int *cpus, int cpus_len);

/* Plans as gpu_affinity_set_opts would, and changes nothing. Same return value. */
int gpu_affinity_plan(const struct gpu_affinity_options *opts, int *cpus, int cpus_len);

/* The full one-line message of the calling thread's last failed call ("" if none). The pointer stays
   valid until the calling thread's next gpu_affinity_* call. */
const char *gpu_affinity_last_error(void);

/* The library version, e.g. "0.1.0". */
const char *gpu_affinity_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GPU_AFFINITY_H */
