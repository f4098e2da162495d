/* A library that re-pins threads (built as librepinlib.so; see repin.h). */
#include "common.h"
#include "repin.h"

int lib_repin(pthread_t t, cpu_set_t *s, void *(*attr_thread)(void *)) {
    return repin_calls(t, s, attr_thread);
}
