/* Runs libompwork's omp_report(): linked (argv[1] = "linked"; the runtime's constructor runs before
   gpuaff's) or dlopened (argv[1] = "dlopen", argv[2] = the library: the runtime loads after the binding).
   With argv[3] = "fork", the report runs in a forked child after the parent ran a parallel region;
   the child first prints the mask it started with. */
#include "common.h"
#include <dlfcn.h>
#include <sys/wait.h>

void omp_report(void) __attribute__((weak));

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void (*report)(void) = omp_report;
    if (strcmp(argv[1], "dlopen") == 0) {
        void *h = argc > 2 ? dlopen(argv[2], RTLD_NOW) : NULL;
        if (!h) { printf("dlopen failed: %s\n", dlerror()); return 3; }
        report = (void (*)(void))dlsym(h, "omp_report");
    }
    if (!report) { printf("no omp_report\n"); return 4; }
    if (argc > 3 && strcmp(argv[3], "fork") == 0) {
        report();
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char c[512];
            cpus_of(tid_self(), c, sizeof c);
            printf("child main cpus=%s\n", c);
            report();
            print_tasks();
            fflush(stdout);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
    }
    report();
    print_tasks();
    printf("done\n");
    return 0;
}
