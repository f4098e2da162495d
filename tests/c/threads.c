/* threads N ATTR_CPU: starts N threads; thread 0 is created with its own affinity attribute (CPU
   ATTR_CPU) and itself creates one more thread without an attribute ("sub"). Once all exist, prints
   each thread's tid, Cpus_allowed_list (from /proc) and memory policy, then every task, then "done". */
#include "common.h"

#define MAX 64
struct info { char name[16]; int attr; pid_t tid; char mempol[64]; };
static struct info infos[MAX + 2];
static pthread_barrier_t ready, finish;
static pthread_t sub;

static void *worker(void *p) {
    struct info *in = p;
    in->tid = tid_self();
    mempolicy_of_self(in->mempol, sizeof in->mempol);
    if (in->attr) {
        /* A thread whose creator has its own mask: without an attribute it starts in the binding. */
        if (pthread_create(&sub, NULL, worker, &infos[MAX + 1]) != 0) { perror("sub"); exit(3); }
    }
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&finish);
    return NULL;
}

int main(int argc, char **argv) {
    alarm(30);
    int n = argc > 1 ? atoi(argv[1]) : 3;
    int attr_cpu = argc > 2 ? atoi(argv[2]) : 0;
    if (n < 1 || n > MAX) return 2;
    pthread_t t[MAX];
    pthread_barrier_init(&ready, NULL, (unsigned)n + 2);
    pthread_barrier_init(&finish, NULL, (unsigned)n + 2);
    snprintf(infos[MAX + 1].name, 16, "sub");
    for (int i = 0; i < n; i++) {
        snprintf(infos[i].name, 16, "%d", i);
        infos[i].attr = i == 0;
        pthread_attr_t a, *ap = NULL;
        if (i == 0) {
            cpu_set_t s;
            CPU_ZERO(&s);
            CPU_SET(attr_cpu, &s);
            pthread_attr_init(&a);
            pthread_attr_setaffinity_np(&a, sizeof s, &s);
            ap = &a;
        } else if (i == 1) {
            /* An attribute without affinity (a stack size, as CPython and many runtimes set). */
            pthread_attr_init(&a);
            pthread_attr_setstacksize(&a, 1 << 20);
            ap = &a;
        }
        if (pthread_create(&t[i], ap, worker, &infos[i]) != 0) { perror("pthread_create"); return 3; }
        if (ap) pthread_attr_destroy(ap);
    }
    pthread_barrier_wait(&ready);
    char cpus[512], mp[64];
    cpus_of(tid_self(), cpus, sizeof cpus);
    mempolicy_of_self(mp, sizeof mp);
    printf("main tid=%d cpus=%s mempolicy=%s\n", (int)tid_self(), cpus, mp);
    for (int i = 0; i < MAX + 2; i++) {
        if (i >= n && i != MAX + 1) continue;
        cpus_of(infos[i].tid, cpus, sizeof cpus);
        printf("thread %s tid=%d attr=%d cpus=%s mempolicy=%s\n", infos[i].name, (int)infos[i].tid,
               infos[i].attr, cpus, infos[i].mempol);
    }
    print_tasks();
    pthread_barrier_wait(&finish);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    pthread_join(sub, NULL);
    printf("done\n");
    return 0;
}
