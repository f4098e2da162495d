/* Helpers shared by the test programs: thread ids, masks and memory policy as the kernel reports them. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

static inline pid_t tid_self(void) { return (pid_t)syscall(SYS_gettid); }

/* Cpus_allowed_list of a thread, from /proc (not from gpuaff). */
static inline void cpus_of(pid_t tid, char *out, size_t len) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    snprintf(out, len, "?");
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
            char *v = line + 18;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, len, "%s", v);
        }
    }
    fclose(f);
}

/* "MODE:MASKHEX" of the calling thread's memory policy, or "err:ERRNO". */
static inline void mempolicy_of_self(char *out, size_t len) {
    int mode = -1;
    unsigned long mask[16] = {0};
    if (syscall(SYS_get_mempolicy, &mode, mask, 16 * 8 * sizeof(unsigned long), (void *)0, 0UL) != 0) {
        snprintf(out, len, "err:%d", errno);
        return;
    }
    snprintf(out, len, "%d:%lx", mode, mask[0]);
}

/* Every thread of the process: "task TID CPULIST". A thread that exited between the listing and the
   read (a joined thread the kernel, or qemu-user, still lists for a moment) runs nowhere: left out. */
static inline void print_tasks(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    char cpus[512];
    if (!d) { printf("tasks unreadable\n"); return; }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        errno = 0;
        cpus_of((pid_t)atoi(e->d_name), cpus, sizeof cpus);
        if (strcmp(cpus, "?") == 0 && (errno == ENOENT || errno == ESRCH)) continue;
        printf("task %s %s\n", e->d_name, cpus);
    }
    closedir(d);
}
