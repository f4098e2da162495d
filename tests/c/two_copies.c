/* two_copies COPY GPU NPROC: loads another copy of libgpuaff.so (COPY, a different path) with dlopen
   and binds through it. Prints the main thread's mask before anything is called ("start cpus="),
   starts a thread with its own affinity attribute (CPU TEST_ATTR_CPU, default 1), calls
   gpu_affinity_set(GPU, NPROC) of COPY, then has the attribute thread widen itself to CPUs 0-1 and
   create a "late" thread with no attribute (so whichever pthread_create hook is in force decides
   its mask), calls COPY once more
   with GPU 99 (an error, read back through COPY's gpu_affinity_last_error), and prints every
   thread's Cpus_allowed_list, then "done". Built plain, or linked with -lgpuaff. */
#include "common.h"
#include <dlfcn.h>

typedef int (*set_fn)(int, int, const char *, int *, int);
typedef const char *(*last_fn)(void);

static pthread_barrier_t called, finish;
static pthread_t late;
static pid_t late_tid;

static void *late_main(void *p) {
    (void)p;
    __atomic_store_n(&late_tid, tid_self(), __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&finish);
    return NULL;
}

static void *attr_main(void *p) {
    (void)p;
    pthread_barrier_wait(&called);
    /* Widen to CPUs 0-1: a creator outside any binding, so the hook (if any) decides. */
    cpu_set_t w;
    CPU_ZERO(&w);
    CPU_SET(0, &w);
    CPU_SET(1, &w);
    sched_setaffinity(0, sizeof w, &w);
    if (pthread_create(&late, NULL, late_main, NULL) != 0) { perror("late"); exit(3); }
    pthread_barrier_wait(&finish);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(30);
    if (argc < 4) { fprintf(stderr, "usage: two_copies COPY GPU NPROC\n"); return 2; }
    char c[512];
    cpus_of(tid_self(), c, sizeof c);
    printf("start cpus=%s\n", c);
    fflush(stdout);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen failed: %s\n", dlerror()); return 4; }
    set_fn set = (set_fn)dlsym(h, "gpu_affinity_set");
    last_fn last = (last_fn)dlsym(h, "gpu_affinity_last_error");
    if (!set || !last) { printf("dlsym failed\n"); return 4; }
    cpus_of(tid_self(), c, sizeof c);
    printf("loaded cpus=%s\n", c);
    fflush(stdout);

    const char *ac = getenv("TEST_ATTR_CPU");
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(ac ? atoi(ac) : 1, &s);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setaffinity_np(&a, sizeof s, &s);
    pthread_barrier_init(&called, NULL, 2);
    pthread_barrier_init(&finish, NULL, 3);
    pthread_t t;
    if (pthread_create(&t, &a, attr_main, NULL) != 0) return 3;

    int cpus[64];
    int rc = set(atoi(argv[2]), atoi(argv[3]), NULL, cpus, 64);
    printf("rc=%d cpus=", rc);
    for (int i = 0; i < rc && i < 64; i++) printf("%s%d", i ? "," : "", cpus[i]);
    printf("\n");
    fflush(stdout);
    pthread_barrier_wait(&called);
    while (__atomic_load_n(&late_tid, __ATOMIC_SEQ_CST) == 0) usleep(1000);
    cpus_of(late_tid, c, sizeof c);
    printf("thread late tid=%d cpus=%s\n", (int)late_tid, c);
    int bad = set(99, atoi(argv[3]), NULL, NULL, 0);
    printf("error rc=%d last=%s\n", bad, last());
    print_tasks();
    pthread_barrier_wait(&finish);
    pthread_join(t, NULL);
    pthread_join(late, NULL);
    printf("done\n");
    return 0;
}
