/* storm GPU_ID: linked with -lgpuaff. Four creator threads create and join 250 short-lived threads
   each (1,000 in all) while 16 threads call gpu_affinity_set(GPU_ID, 2, NULL, ...) at the same time.
   Then every thread that still exists, and one thread created afterwards by each creator, report
   their Cpus_allowed_list. Prints "set rc=N" for each call, "task TID LIST" lines, "late cpus=LIST"
   lines, then "done". A watchdog turns a deadlock into a failure. */
#include "common.h"
#include "gpu_affinity.h"

#define CREATORS 4
#define PER_CREATOR 250
#define CALLERS 16

static int gpu;
static pthread_barrier_t start, calls_done, reported;
static int rcs[CALLERS];

static void *brief(void *p) { (void)p; return NULL; }

static void *late_report(void *p) {
    (void)p;
    char cpus[512];
    cpus_of(tid_self(), cpus, sizeof cpus);
    printf("late cpus=%s\n", cpus);
    fflush(stdout);
    return NULL;
}

static void *creator(void *p) {
    (void)p;
    pthread_barrier_wait(&start);
    for (int i = 0; i < PER_CREATOR; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, brief, NULL) != 0) { perror("create"); exit(3); }
        pthread_join(t, NULL);
    }
    pthread_barrier_wait(&calls_done);
    pthread_barrier_wait(&reported);
    pthread_t t;
    if (pthread_create(&t, NULL, late_report, NULL) != 0) { perror("late"); exit(3); }
    pthread_join(t, NULL);
    return NULL;
}

static void *caller(void *p) {
    long i = (long)p;
    pthread_barrier_wait(&start);
    rcs[i] = gpu_affinity_set(gpu, 2, NULL, NULL, 0);
    pthread_barrier_wait(&calls_done);
    pthread_barrier_wait(&reported);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(60);
    gpu = argc > 1 ? atoi(argv[1]) : 0;
    pthread_t c[CREATORS], k[CALLERS];
    /* main takes part in every barrier */
    pthread_barrier_init(&start, NULL, CREATORS + CALLERS + 1);
    pthread_barrier_init(&calls_done, NULL, CREATORS + CALLERS + 1);
    pthread_barrier_init(&reported, NULL, CREATORS + CALLERS + 1);
    for (int i = 0; i < CREATORS; i++) pthread_create(&c[i], NULL, creator, NULL);
    for (long i = 0; i < CALLERS; i++) pthread_create(&k[i], NULL, caller, (void *)i);
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&calls_done);
    for (int i = 0; i < CALLERS; i++) printf("set rc=%d\n", rcs[i]);
    print_tasks();
    fflush(stdout);
    pthread_barrier_wait(&reported);
    for (int i = 0; i < CREATORS; i++) pthread_join(c[i], NULL);
    for (int i = 0; i < CALLERS; i++) pthread_join(k[i], NULL);
    printf("done\n");
    return 0;
}
