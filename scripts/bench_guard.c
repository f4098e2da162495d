/* Guard cost: nanoseconds per call of pthread_create+join (no attribute, and an affinity attribute
   for every CPU: outside a one-CPU binding) and of sched_setaffinity on the calling thread (to the
   mask it has: inside the binding; and to every CPU: outside), made from a shared library (built with
   -DBENCH_LIB: the guard judges libraries' calls), and the last one again from the program itself
   (which the guard lets through after finding who called). Built and run by bench-guard.sh. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void *nothing(void *p) { return p; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Each loop runs in BATCHES batches and reports its fastest batch's mean: on a shared machine,
   preemption only ever adds time, so the fastest batch is the cost of the call. */
#define BATCHES 20

static pthread_attr_t attr;
static cpu_set_t own, all;

static void create(int attr_on) {
    pthread_t t;
    if (pthread_create(&t, attr_on ? &attr : NULL, nothing, NULL) == 0) pthread_join(t, NULL);
}

static double best(int kind, int n) {
    double min = 1e18;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            switch (kind) {
            case 0: create(0); break;
            case 1: create(1); break;
            case 2: sched_setaffinity(0, sizeof own, &own); break;
            default: sched_setaffinity(0, sizeof all, &all); break;
            }
        }
        double per = (now() - t0) / n;
        if (per < min) min = per;
    }
    sched_setaffinity(0, sizeof own, &own);
    return min;
}

#ifdef BENCH_LIB
void bench_lib(int n, double out[4]) {
    sched_getaffinity(0, sizeof own, &own);
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof all, &all);
    out[0] = best(0, n / BATCHES);
    out[1] = best(1, n / BATCHES);
    out[2] = best(2, 10 * n / BATCHES);
    out[3] = best(3, 10 * n / BATCHES);
}
#else
void bench_lib(int n, double out[4]);

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    double lib[4];
    bench_lib(n, lib);
    sched_getaffinity(0, sizeof own, &own);
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
    double prog = best(3, 10 * n / BATCHES);
    printf("%.0f %.0f %.0f %.0f %.0f\n", lib[0], lib[1], lib[2], lib[3], prog);
    return 0;
}
#endif
