/* A runtime pins the main thread to one CPU (argv[1]) with sched_setaffinity, then the process forks
   (a DataLoader worker): the child prints the mask it starts with. */
#include "common.h"
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(atoi(argv[1]), &s);
    sched_setaffinity(0, sizeof s, &s);
    char c[512];
    cpus_of(tid_self(), c, sizeof c);
    printf("parent cpus=%s\n", c);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        cpus_of(tid_self(), c, sizeof c);
        printf("child cpus=%s\n", c);
        fflush(stdout);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}
