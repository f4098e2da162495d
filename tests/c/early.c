/* A library whose constructor starts a thread before gpuaff's constructor runs (preloaded after
   libgpuaff.so, so initialised first). The thread waits forever; it must end up bound. */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

static void *sleeper(void *p) {
    for (;;) pause();
    return p;
}

__attribute__((constructor)) static void early_thread(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) == 0) pthread_detach(t);
}
