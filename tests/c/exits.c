/* Threads that leave through pthread_exit and through cancellation, created on the hook's wrapper
   path (a creator pinned outside the binding, with a non-NULL attribute): the wrapper must let both
   forced unwinds pass. Prints "exit value=42 cpus=LIST", "cancel result=canceled cleanup=1 cpus=LIST",
   then "done". */
#include "common.h"

static int cleaned = 0;
static char exit_cpus[512], cancel_cpus[512];

static void *leaves_by_exit(void *p) {
    (void)p;
    cpus_of(tid_self(), exit_cpus, sizeof exit_cpus);
    pthread_exit((void *)42);
    return NULL;
}

static void cleanup(void *p) { (void)p; cleaned = 1; }

static void *waits_for_cancel(void *p) {
    (void)p;
    cpus_of(tid_self(), cancel_cpus, sizeof cancel_cpus);
    pthread_cleanup_push(cleanup, NULL);
    for (;;) {
        sleep(1); /* a cancellation point */
    }
    pthread_cleanup_pop(0);
    return NULL;
}

static void *creator(void *p) {
    int outside = *(int *)p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(outside, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("pin"); exit(3); }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_t a, b;
    void *ret = NULL;
    if (pthread_create(&a, &attr, leaves_by_exit, NULL) != 0) { perror("a"); exit(3); }
    pthread_join(a, &ret);
    printf("exit value=%ld cpus=%s\n", (long)ret, exit_cpus);
    if (pthread_create(&b, &attr, waits_for_cancel, NULL) != 0) { perror("b"); exit(3); }
    usleep(100000);
    pthread_cancel(b);
    pthread_join(b, &ret);
    printf("cancel result=%s cleanup=%d cpus=%s\n", ret == PTHREAD_CANCELED ? "canceled" : "other", cleaned,
           cancel_cpus);
    pthread_attr_destroy(&attr);
    return NULL;
}

int main(int argc, char **argv) {
    int outside = argc > 1 ? atoi(argv[1]) : 0;
    alarm(20); /* a hang is a failure, not a stuck test */
    pthread_t c;
    if (pthread_create(&c, NULL, creator, &outside) != 0) return 3;
    pthread_join(c, NULL);
    printf("done\n");
    return 0;
}
