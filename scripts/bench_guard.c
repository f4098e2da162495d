/* Guard cost: nanoseconds per call of pthread_create+join (no attribute, and an affinity attribute
   for every CPU: outside a one-CPU binding) and of sched_setaffinity on the calling thread (to the
   mask it has: inside the binding; and to every CPU: outside). Built and run by bench-guard.sh. */
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

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000, m = n * 10;
    cpu_set_t own, all;
    sched_getaffinity(0, sizeof own, &own);
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof all, &all);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
    }
    double t1 = now();
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, nothing, NULL) == 0) pthread_join(t, NULL);
    }
    double t2 = now();
    for (int i = 0; i < m; i++) sched_setaffinity(0, sizeof own, &own);
    double t3 = now();
    for (int i = 0; i < m; i++) sched_setaffinity(0, sizeof all, &all);
    double t4 = now();
    sched_setaffinity(0, sizeof own, &own);
    printf("%.0f %.0f %.0f %.0f\n", (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / m, (t4 - t3) / m);
    return 0;
}
