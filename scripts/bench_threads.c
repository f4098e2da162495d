/* pthread_create + pthread_join, one thread at a time, timed with CLOCK_MONOTONIC.
 * Usage: bench_threads [THREADS [attr|syscall]]   (default 10000; `attr`: create every thread with
 * an attribute carrying the process's own CPU mask, as the gpuaff hook does for a NULL attribute;
 * `syscall`: instead time THREADS sched_getaffinity calls, the price of one cheap system call)
 * Prints one line: "<ns per thread> <threads> <cpus allowed in a new thread>".
 * Build: cc -O2 -pthread -o bench_threads scripts/bench_threads.c */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void *noop(void *arg) { return arg; }

static void *count_cpus(void *arg) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        *(int *)arg = CPU_COUNT(&set);
    return NULL;
}

static pthread_attr_t *attr;

static int run(long n) {
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, attr, noop, NULL) != 0 || pthread_join(t, NULL) != 0) {
            fprintf(stderr, "bench_threads: pthread_create/join failed at thread %ld\n", i);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
    if (n <= 0) {
        fprintf(stderr, "bench_threads: THREADS must be a positive integer, got %s\n", argv[1]);
        return 2;
    }
    if (argc > 2 && argv[2][0] == 's') {
        cpu_set_t set;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++)
            sched_getaffinity(0, sizeof set, &set);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
        printf("%.1f %ld %d\n", ns / (double)n, n, CPU_COUNT(&set));
        return 0;
    }
    static pthread_attr_t with_mask;
    if (argc > 2 && argv[2][0] == 'a') {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) != 0 || pthread_attr_init(&with_mask) != 0 ||
            pthread_attr_setaffinity_np(&with_mask, sizeof set, &set) != 0) {
            fprintf(stderr, "bench_threads: cannot make an affinity attribute\n");
            return 1;
        }
        attr = &with_mask;
    }
    /* Warm up: first-use costs (dlsym of the next pthread_create, stack cache). */
    if (run(n / 10 + 1) != 0)
        return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (run(n) != 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    int cpus = -1;
    pthread_t t;
    if (pthread_create(&t, NULL, count_cpus, &cpus) == 0)
        pthread_join(t, NULL);
    printf("%.1f %ld %d\n", ns / (double)n, n, cpus);
    return 0;
}
