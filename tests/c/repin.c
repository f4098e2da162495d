/* Re-pinning threads, as OpenMP runtimes and NCCL do (repin.h), to the CPUs of argv[1] (a cpulist):
   from a library (the environment's REPIN_LIB, dlopened: librepinlib.so), or, without it, from the
   program's own code. With argv[2] = GPU, first binds through the C ABI (gpu_affinity_set, found with
   dlsym: the library is preloaded), which moves the binding. */
#include "common.h"
#include "repin.h"
#include <dlfcn.h>

static volatile int go;
static volatile pid_t idle_tid;

static void *idle(void *p) {
    idle_tid = tid_self();
    while (!go) usleep(1000);
    return p;
}

static void *attr_thread(void *p) {
    char c[512];
    cpus_of(tid_self(), c, sizeof c);
    printf("thread attr cpus=%s tid=%d\n", c, (int)tid_self());
    return p;
}

static void parse(const char *list, cpu_set_t *s) {
    CPU_ZERO(s);
    const char *p = list;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        for (long i = a; i <= b; i++) CPU_SET((int)i, s);
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p) break;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (argc > 2) {
        int (*set)(int, int, const char *, int *, int) =
            (int (*)(int, int, const char *, int *, int))dlsym(RTLD_DEFAULT, "gpu_affinity_set");
        if (!set) { printf("no gpu_affinity_set\n"); return 3; }
        printf("explicit rc=%d\n", set(atoi(argv[2]), 0, NULL, NULL, 0));
    }
    cpu_set_t s;
    parse(argv[1], &s);
    pthread_t t;
    pthread_create(&t, NULL, idle, NULL);
    while (!idle_tid) usleep(1000);
    int (*calls)(pthread_t, cpu_set_t *, void *(*)(void *)) = repin_calls;
    const char *lib = getenv("REPIN_LIB");
    if (lib) {
        void *h = dlopen(lib, RTLD_NOW);
        calls = h ? (int (*)(pthread_t, cpu_set_t *, void *(*)(void *)))dlsym(h, "lib_repin") : NULL;
        if (!calls) { printf("cannot load %s\n", lib); return 4; }
    }
    printf("caller %s\n", lib ? "library" : "program");
    calls(t, &s, attr_thread);
    char c[512];
    cpus_of(tid_self(), c, sizeof c);
    printf("thread main cpus=%s\n", c);
    cpus_of(idle_tid, c, sizeof c);
    printf("thread repinned cpus=%s\n", c);
    print_tasks();
    go = 1;
    pthread_join(t, NULL);
    printf("done\n");
    return 0;
}
