/* The re-pinning calls of tests/c/repin.c, compiled into the program (the program's own calls) and
   into librepinlib.so (a library's calls): pthread_setaffinity_np on thread t and sched_setaffinity
   on the caller (each twice), then two threads created with an affinity attribute. */
static int repin_calls(pthread_t t, cpu_set_t *s, void *(*attr_thread)(void *)) {
    int rc1 = 0, rc2 = 0;
    for (int i = 0; i < 2; i++) {
        rc1 |= pthread_setaffinity_np(t, sizeof *s, s);
        rc2 |= sched_setaffinity(0, sizeof *s, s);
    }
    printf("calls rc=%d,%d\n", rc1, rc2);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setaffinity_np(&a, sizeof *s, s);
    for (int i = 0; i < 2; i++) {
        pthread_t u;
        if (pthread_create(&u, &a, attr_thread, NULL) == 0) pthread_join(u, NULL);
    }
    pthread_attr_destroy(&a);
    return rc1 | rc2;
}
