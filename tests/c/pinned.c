/* A worker that pins itself inside the process's binding (as DALI and NCCL pin their threads), then
   creates a thread without an attribute: that thread must inherit the worker's narrower mask, not be
   widened to the whole binding. A second worker pins itself OUTSIDE the binding: its child is brought
   back inside. Prints "inner child cpus=LIST" and "outer child cpus=LIST". */
#include "common.h"

struct job { int cpu; const char *name; };

static void *child(void *p) {
    char cpus[512];
    cpus_of(tid_self(), cpus, sizeof cpus);
    printf("%s child cpus=%s\n", (const char *)p, cpus);
    fflush(stdout);
    return NULL;
}

static void *worker(void *p) {
    struct job *j = p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("pin"); exit(3); }
    pthread_t t;
    if (pthread_create(&t, NULL, child, (void *)j->name) != 0) { perror("child"); exit(3); }
    pthread_join(t, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: pinned INNER_CPU OUTER_CPU\n"); return 2; }
    struct job inner = { atoi(argv[1]), "inner" }, outer = { atoi(argv[2]), "outer" };
    pthread_t a, b;
    if (pthread_create(&a, NULL, worker, &inner) != 0) return 3;
    pthread_join(a, NULL);
    if (pthread_create(&b, NULL, worker, &outer) != 0) return 3;
    pthread_join(b, NULL);
    printf("done\n");
    return 0;
}
