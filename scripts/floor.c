/* The floor for a binding preload: a constructor that only calls sched_setaffinity with a list it is
 * given at build time (CPUs 0-7,128-135, rank 0's on the 256-CPU fixture; the kernel keeps those that
 * exist), reading nothing and planning nothing.
 * Build: cc -O2 -shared -fPIC -o floor.so scripts/floor.c */
#define _GNU_SOURCE
#include <sched.h>

__attribute__((constructor)) static void floor_ctor(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < 8; c++) {
        CPU_SET(c, &set);
        CPU_SET(128 + c, &set);
    }
    sched_setaffinity(0, sizeof set, &set);
}
