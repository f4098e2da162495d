/* A fake libnvidia-ml.so.1 for gpuaff's tests: just the NVML calls gpuaff (through nvml-wrapper 0.13)
 * makes, answering from a description file instead of a driver.
 *
 * Build:  cc -shared -fPIC -O1 -Wl,-soname,libnvidia-ml.so.1 -o DIR/libnvidia-ml.so.1 fake_nvml.c
 *         (add -DFAKE_NVML_NO_AFFINITY to leave out the CPU and memory affinity calls, as old drivers do;
 *          -DFAKE_NVML_NO_SHUTDOWN leaves out nvmlShutdown, to test that gpuaff survives it)
 *
 * Description: DIR/nvml.txt next to the loaded .so (found with dladdr, so every test directory is its
 * own machine and tests can run in parallel), or the file named by FAKE_NVML_DESC. One GPU per line,
 * in NVML index order; '#' starts a comment line:
 *   gpu pci=00000000:07:00.0 uuid=GPU-... node=3 cpus=48-63,176-191 memnode=- model=NVIDIA_A100 minor=0 migs=-
 * optionally followed by pids=PID,PID,...: the compute processes on that GPU (default none).
 * node: -1 allowed (no memory affinity); memnode: the GPU memory's CPU-less NUMA node, or -; model: '_'
 * stands for a space; migs: comma-separated MIG-uuids, or -.
 *
 * Switches, as files in DIR or environment variables of the upper-case name:
 *   fail_init      nvmlInit* returns NVML_ERROR_DRIVER_NOT_LOADED
 *   slow_init_ms   (containing N) nvmlInit* sleeps N ms first
 *
 * nvmlShutdown is exported in the normal build: nvml-wrapper's Drop panics when the symbol is missing
 * (gpuaff guards against that, but a real libnvidia-ml always has it). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

#define MAX_GPUS 256
#define MAX_MIGS_PER_GPU 7
#define MAX_CPUS 16384
#define MAX_NODES 1024
#define WORD_BITS (8 * sizeof(unsigned long))

struct fake_dev {
    int is_mig;
    int parent;                   /* index of the parent GPU (MIG handles), else own index */
    unsigned int domain, bus, dev, fn;
    char uuid[96];
    char model[96];
    int node;                     /* -1: unknown */
    int memnode;                  /* -1: none */
    unsigned int minor;
    unsigned long cpus[MAX_CPUS / (8 * sizeof(unsigned long))];
    int nmigs;
    unsigned int pids[16];        /* compute processes (nvmlDeviceGetComputeRunningProcesses) */
    int npids;
};

static struct fake_dev gpus[MAX_GPUS];
static struct fake_dev migs[MAX_GPUS][MAX_MIGS_PER_GPU];
static unsigned int ngpus;
static int initialized;

typedef struct fake_dev *nvmlDevice_t;

/* ---- description ---- */

static void own_dir(char *out, size_t len) {
    Dl_info info;
    out[0] = 0;
    if (dladdr((void *)own_dir, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            size_t n = (size_t)(slash - info.dli_fname);
            if (n >= len) n = len - 1;
            memcpy(out, info.dli_fname, n);
            out[n] = 0;
            return;
        }
    }
    snprintf(out, len, ".");
}

/* The switch NAME: its file in the library's directory, else the environment variable NAME in upper case.
   Returns 1 when set, with its contents (trimmed) in val. */
static int switch_value(const char *name, char *val, size_t len) {
    char dir[PATH_MAX], path[PATH_MAX + 64], env[64];
    size_t i;
    val[0] = 0;
    own_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(val, 1, len - 1, f);
        val[n] = 0;
        fclose(f);
        while (n > 0 && isspace((unsigned char)val[n - 1])) val[--n] = 0;
        return 1;
    }
    for (i = 0; name[i] && i < sizeof env - 1; i++) env[i] = (char)toupper((unsigned char)name[i]);
    env[i] = 0;
    const char *e = getenv(env);
    if (e) {
        snprintf(val, len, "%s", e);
        return 1;
    }
    return 0;
}

static void set_bit(unsigned long *words, size_t nwords, long bit) {
    if (bit >= 0 && (size_t)bit / WORD_BITS < nwords) words[bit / WORD_BITS] |= 1UL << (bit % WORD_BITS);
}

static int parse_cpulist(const char *s, unsigned long *words, size_t nwords) {
    if (strcmp(s, "-") == 0 || *s == 0) return 0;
    while (*s) {
        char *end;
        long lo = strtol(s, &end, 10), hi;
        if (end == s || lo < 0) return -1;
        hi = lo;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1 || hi < lo) return -1;
            s = end;
        }
        for (long c = lo; c <= hi; c++) set_bit(words, nwords, c);
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return 0;
}

static int parse_pci(const char *s, unsigned int *domain, unsigned int *bus, unsigned int *dev,
                     unsigned int *fn) {
    char tail;
    if (sscanf(s, "%x:%x:%x.%x%c", domain, bus, dev, fn, &tail) == 4) return 0;
    *domain = 0;
    if (sscanf(s, "%x:%x.%x%c", bus, dev, fn, &tail) == 3) return 0;
    return -1;
}

static void parse_gpu_line(char *line) {
    if (ngpus >= MAX_GPUS) return;
    struct fake_dev *g = &gpus[ngpus];
    memset(g, 0, sizeof *g);
    g->parent = (int)ngpus;
    g->node = -1;
    g->memnode = -1;
    g->minor = ngpus;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        const char *key = tok, *val = eq + 1;
        if (strcmp(key, "pci") == 0) {
            if (parse_pci(val, &g->domain, &g->bus, &g->dev, &g->fn) != 0) return;
        } else if (strcmp(key, "uuid") == 0) {
            snprintf(g->uuid, sizeof g->uuid, "%s", val);
        } else if (strcmp(key, "node") == 0) {
            g->node = atoi(val);
        } else if (strcmp(key, "memnode") == 0) {
            g->memnode = strcmp(val, "-") == 0 ? -1 : atoi(val);
        } else if (strcmp(key, "cpus") == 0) {
            if (parse_cpulist(val, g->cpus, sizeof g->cpus / sizeof g->cpus[0]) != 0) return;
        } else if (strcmp(key, "model") == 0) {
            snprintf(g->model, sizeof g->model, "%s", val);
            for (char *p = g->model; *p; p++)
                if (*p == '_') *p = ' ';
        } else if (strcmp(key, "minor") == 0) {
            g->minor = (unsigned int)strtoul(val, NULL, 10);
        } else if (strcmp(key, "pids") == 0) {
            char buf[1024], *psave = NULL;
            snprintf(buf, sizeof buf, "%s", val);
            for (char *q = strtok_r(buf, ",", &psave); q && g->npids < 16; q = strtok_r(NULL, ",", &psave))
                g->pids[g->npids++] = (unsigned int)strtoul(q, NULL, 10);
        } else if (strcmp(key, "migs") == 0 && strcmp(val, "-") != 0) {
            char buf[1024], *msave = NULL;
            snprintf(buf, sizeof buf, "%s", val);
            for (char *m = strtok_r(buf, ",", &msave); m && g->nmigs < MAX_MIGS_PER_GPU;
                 m = strtok_r(NULL, ",", &msave)) {
                struct fake_dev *mig = &migs[ngpus][g->nmigs++];
                *mig = *g;
                mig->is_mig = 1;
                mig->nmigs = 0;
                snprintf(mig->uuid, sizeof mig->uuid, "%s", m);
            }
        }
    }
    /* MIG handles share the parent's locality, which may come after `migs=` on the line */
    for (int i = 0; i < g->nmigs; i++) {
        struct fake_dev *mig = &migs[ngpus][i];
        char uuid[96];
        memcpy(uuid, mig->uuid, sizeof uuid);
        *mig = *g;
        mig->is_mig = 1;
        mig->nmigs = 0;
        memcpy(mig->uuid, uuid, sizeof uuid);
    }
    ngpus++;
}

static int load_description(void) {
    char path[PATH_MAX + 16];
    const char *env = getenv("FAKE_NVML_DESC");
    if (env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        char dir[PATH_MAX];
        own_dir(dir, sizeof dir);
        snprintf(path, sizeof path, "%s/nvml.txt", dir);
    }
    memset(gpus, 0, sizeof gpus);
    memset(migs, 0, sizeof migs);
    ngpus = 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    static char line[65536];
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '#' || *p == 0) continue;
        if (strncmp(p, "gpu", 3) == 0 && isspace((unsigned char)p[3])) parse_gpu_line(p + 3);
    }
    fclose(f);
    return 0;
}

/* ---- handles ---- */

static int valid_handle(nvmlDevice_t d) {
    uintptr_t p = (uintptr_t)d, g0 = (uintptr_t)&gpus[0], m0 = (uintptr_t)&migs[0][0];
    if (p >= g0 && p < (uintptr_t)&gpus[ngpus]) return (p - g0) % sizeof *d == 0;
    if (p >= m0 && p < m0 + sizeof migs && (p - m0) % sizeof *d == 0) {
        size_t off = (p - m0) / sizeof *d;
        size_t gpu = off / MAX_MIGS_PER_GPU, slot = off % MAX_MIGS_PER_GPU;
        return gpu < ngpus && (int)slot < gpus[gpu].nmigs;
    }
    return 0;
}

#define CHECK(d)                                              \
    do {                                                      \
        if (!initialized) return NVML_ERROR_UNINITIALIZED;    \
        if (!valid_handle(d)) return NVML_ERROR_INVALID_ARGUMENT; \
    } while (0)

/* ---- init ---- */

static nvmlReturn_t do_init(void) {
    char val[64];
    if (switch_value("slow_init_ms", val, sizeof val)) {
        long ms = strtol(val, NULL, 10);
        if (ms > 0) {
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (switch_value("fail_init", val, sizeof val)) return NVML_ERROR_DRIVER_NOT_LOADED;
    if (load_description() != 0) return NVML_ERROR_DRIVER_NOT_LOADED;
    initialized++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return do_init(); }
nvmlReturn_t nvmlInit(void) { return do_init(); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return do_init();
}

#ifndef FAKE_NVML_NO_SHUTDOWN
nvmlReturn_t nvmlShutdown(void) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized--;
    return NVML_SUCCESS;
}
#endif

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t copy_string(const char *s, char *out, unsigned int len) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_string("550.54.15", version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_string("12.550.54.15", version, length);
}

/* ---- devices ---- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = ngpus;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= ngpus) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!uuid || !device) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < ngpus; i++) {
        if (strcmp(gpus[i].uuid, uuid) == 0) {
            *device = &gpus[i];
            return NVML_SUCCESS;
        }
        for (int m = 0; m < gpus[i].nmigs; m++) {
            if (strcmp(migs[i][m].uuid, uuid) == 0) {
                *device = &migs[i][m];
                return NVML_SUCCESS;
            }
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *pciBusId, nvmlDevice_t *device) {
    unsigned int domain, bus, dev, fn;
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!pciBusId || !device || parse_pci(pciBusId, &domain, &bus, &dev, &fn) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < ngpus; i++) {
        struct fake_dev *g = &gpus[i];
        if (g->domain == domain && g->bus == bus && g->dev == dev && g->fn == fn) {
            *device = g;
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *pciBusId, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByPciBusId_v2(pciBusId, device);
}

#ifndef FAKE_NVML_NO_AFFINITY
static nvmlReturn_t cpu_affinity(nvmlDevice_t d, unsigned int size, unsigned long *set) {
    size_t have = sizeof d->cpus / sizeof d->cpus[0];
    if (!set || size == 0) return NVML_ERROR_INVALID_ARGUMENT;
    memset(set, 0, size * sizeof *set);
    /* as NVML: the first `size` words; CPUs beyond them are silently dropped */
    memcpy(set, d->cpus, (size < have ? size : have) * sizeof *set);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCpuAffinity(nvmlDevice_t d, unsigned int cpuSetSize, unsigned long *cpuSet) {
    CHECK(d);
    return cpu_affinity(d, cpuSetSize, cpuSet);
}

nvmlReturn_t nvmlDeviceGetCpuAffinityWithinScope(nvmlDevice_t d, unsigned int cpuSetSize,
                                                 unsigned long *cpuSet, unsigned int scope) {
    CHECK(d);
    /* socket scope would need the package's CPUs, which the description does not give */
    if (scope != 0) return NVML_ERROR_NOT_SUPPORTED;
    return cpu_affinity(d, cpuSetSize, cpuSet);
}

nvmlReturn_t nvmlDeviceGetMemoryAffinity(nvmlDevice_t d, unsigned int nodeSetSize, unsigned long *nodeSet,
                                         unsigned int scope) {
    CHECK(d);
    if (!nodeSet || nodeSetSize == 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (scope != 0) return NVML_ERROR_NOT_SUPPORTED;
    memset(nodeSet, 0, nodeSetSize * sizeof *nodeSet);
    if (d->node >= 0 && d->node < MAX_NODES) set_bit(nodeSet, nodeSetSize, d->node);
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t d, unsigned int *node) {
    CHECK(d);
    if (!node) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->memnode < 0) return NVML_ERROR_NOT_SUPPORTED;
    *node = (unsigned int)d->memnode;
    return NVML_SUCCESS;
}

static void fill_pci(const struct fake_dev *g, nvmlPciInfo_t *pci) {
    memset(pci, 0, sizeof *pci);
    pci->domain = g->domain;
    pci->bus = g->bus;
    pci->device = g->dev;
    pci->pciDeviceId = 0x20b210de;
    pci->pciSubSystemId = 0x147f10de;
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", g->domain, g->bus, g->dev, g->fn);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", g->domain & 0xffff, g->bus,
             g->dev, g->fn);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    CHECK(d);
    if (!pci) return NVML_ERROR_INVALID_ARGUMENT;
    fill_pci(d, pci);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t d, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(d, pci); }

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    CHECK(d);
    if (!d->uuid[0]) return NVML_ERROR_NOT_SUPPORTED;
    return copy_string(d->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    CHECK(d);
    if (!d->model[0]) return NVML_ERROR_NOT_SUPPORTED;
    return copy_string(d->model, name, length);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *index) {
    CHECK(d);
    if (!index) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)d->parent;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int *minor) {
    CHECK(d);
    if (!minor) return NVML_ERROR_INVALID_ARGUMENT;
    *minor = d->minor;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    CHECK(d);
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = d->nmigs > 0 ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned int *isMig) {
    CHECK(d);
    if (!isMig) return NVML_ERROR_INVALID_ARGUMENT;
    *isMig = (unsigned int)d->is_mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count) {
    CHECK(d);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    /* as on an A100: the slots a full split would have, not the instances that exist */
    *count = d->nmigs > 0 ? MAX_MIGS_PER_GPU : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig) {
    CHECK(d);
    if (!mig || d->is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->nmigs == 0) return NVML_ERROR_NOT_SUPPORTED;
    if (index >= MAX_MIGS_PER_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    if ((int)index >= d->nmigs) return NVML_ERROR_NOT_FOUND;
    *mig = &migs[d->parent][index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig, nvmlDevice_t *parent) {
    CHECK(mig);
    if (!parent) return NVML_ERROR_INVALID_ARGUMENT;
    if (!mig->is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    *parent = &gpus[mig->parent];
    return NVML_SUCCESS;
}

/* nvmlProcessInfo_t (v2 layout, as nvmlDeviceGetComputeRunningProcesses_v3 fills it). */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    CHECK(d);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int n = (unsigned int)d->npids;
    if (*count < n || (!infos && n > 0)) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = d->pids[i];
        infos[i].usedGpuMemory = 1ULL << 30;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    return NVML_SUCCESS;
}
