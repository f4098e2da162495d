/* hold N [pin-all CPU] [repin CPU NAME] [alarm SECONDS]: a process that stays alive to be checked. Optionally pins
   itself (main thread, before any other exists) to CPU; starts N threads; with "repin", one more
   thread named NAME pins itself to CPU (as OpenMP or NCCL runtimes pin their threads). Prints "ready"
   once every thread is in place, then waits until stdin closes (killed after 60 s, or SECONDS, at
   most). */
#include "common.h"

static pthread_barrier_t ready;
static int repin_cpu = -1;

static void *idle(void *p) {
    (void)p;
    pthread_barrier_wait(&ready);
    for (;;) pause();
    return NULL;
}

static void *repinner(void *name) {
    pthread_setname_np(pthread_self(), (const char *)name);
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(repin_cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) { perror("repin"); exit(3); }
    return idle(NULL);
}

int main(int argc, char **argv) {
    alarm(60);
    if (argc < 2) { fprintf(stderr, "usage: hold N [pin-all CPU] [repin CPU NAME]\n"); return 2; }
    int n = atoi(argv[1]);
    const char *name = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "pin-all") == 0 && i + 1 < argc) {
            cpu_set_t s;
            CPU_ZERO(&s);
            CPU_SET(atoi(argv[++i]), &s);
            if (sched_setaffinity(0, sizeof s, &s) != 0) { perror("pin-all"); return 3; }
        } else if (strcmp(argv[i], "alarm") == 0 && i + 1 < argc) {
            alarm((unsigned)atoi(argv[++i]));
        } else if (strcmp(argv[i], "repin") == 0 && i + 2 < argc) {
            repin_cpu = atoi(argv[++i]);
            name = argv[++i];
        }
    }
    pthread_barrier_init(&ready, NULL, (unsigned)(n + 1 + (name ? 1 : 0)));
    pthread_t t;
    for (int i = 0; i < n; i++)
        if (pthread_create(&t, NULL, idle, NULL) != 0) { perror("pthread_create"); return 3; }
    if (name && pthread_create(&t, NULL, repinner, (void *)name) != 0) { perror("repinner"); return 3; }
    pthread_barrier_wait(&ready);
    /* Touch some memory so numa_maps has anonymous pages to count. */
    size_t len = 4 << 20;
    char *buf = malloc(len);
    for (size_t i = 0; buf && i < len; i += 4096) ((volatile char *)buf)[i] = 1;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return buf ? 0 : 1;
}
