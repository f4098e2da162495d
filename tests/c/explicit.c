/* explicit GPU_ID NPROC [MODE]: linked with -lgpuaff. Starts threads (one with its own affinity
   attribute: CPU ATTR_CPU from the environment variable TEST_ATTR_CPU, default 0), then calls
   gpu_affinity_set, then creates one more thread (NULL attribute) from the attribute thread, and
   prints every thread's Cpus_allowed_list from /proc, then "done". */
#include "common.h"
#include "gpu_affinity.h"

static pthread_barrier_t ready, called, finish;
static pthread_t late;
static pid_t tids[3];

static void *waiter(void *p) {
    long i = (long)p;
    __atomic_store_n(&tids[i], tid_self(), __ATOMIC_SEQ_CST);
    if (i != 2) {
        pthread_barrier_wait(&ready);
        pthread_barrier_wait(&called);
    }
    if (i == 0) {
        /* created after the call by a thread that has its own mask */
        if (pthread_create(&late, NULL, waiter, (void *)2L) != 0) { perror("late"); exit(3); }
    }
    pthread_barrier_wait(&finish);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(30);
    int gpu = argc > 1 ? atoi(argv[1]) : -1;
    int nproc = argc > 2 ? atoi(argv[2]) : 0;
    const char *mode = argc > 3 ? argv[3] : NULL;
    const char *ac = getenv("TEST_ATTR_CPU");
    int attr_cpu = ac ? atoi(ac) : 0;
    pthread_t t[2];
    pthread_barrier_init(&ready, NULL, 3);
    pthread_barrier_init(&called, NULL, 3);
    pthread_barrier_init(&finish, NULL, 4);
    pthread_attr_t a;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(attr_cpu, &s);
    pthread_attr_init(&a);
    pthread_attr_setaffinity_np(&a, sizeof s, &s);
    if (pthread_create(&t[0], &a, waiter, (void *)0L) != 0) return 3;
    if (pthread_create(&t[1], NULL, waiter, (void *)1L) != 0) return 3;
    pthread_barrier_wait(&ready);

    printf("version=%s\n", gpu_affinity_version());
    int cpus[64];
    int rc = gpu_affinity_set(gpu, nproc, mode, cpus, 64);
    if (rc < 0) {
        printf("error rc=%d strerror=%s last=%s\n", rc, gpu_affinity_strerror(rc), gpu_affinity_last_error());
    } else {
        printf("rc=%d cpus=", rc);
        for (int i = 0; i < rc && i < 64; i++) printf("%s%d", i ? "," : "", cpus[i]);
        printf("\n");
    }
    /* plan-only with options: changes nothing, same answer */
    struct gpu_affinity_options o;
    gpu_affinity_options_init(&o);
    o.gpu_id = gpu;
    o.nproc_per_node = nproc;
    o.mode = mode;
    printf("plan=%d\n", gpu_affinity_plan(&o, NULL, 0));
    pthread_barrier_wait(&called);
    /* wait until `late` exists: it joins the finish barrier only after recording its tid */
    while (__atomic_load_n(&tids[2], __ATOMIC_SEQ_CST) == 0) usleep(1000);
    char c[512];
    const char *names[3] = {"attr", "plain", "late"};
    cpus_of(tid_self(), c, sizeof c);
    printf("thread main tid=%d cpus=%s\n", (int)tid_self(), c);
    for (int i = 0; i < 3; i++) {
        cpus_of(tids[i], c, sizeof c);
        printf("thread %s tid=%d cpus=%s\n", names[i], (int)tids[i], c);
    }
    print_tasks();
    pthread_barrier_wait(&finish);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_join(late, NULL);
    printf("done\n");
    return 0;
}
