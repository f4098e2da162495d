/* fork during a call: a thread calls gpu_affinity_set in a loop while the main thread forks N
   children (argv[1], default 100); each child calls gpu_affinity_set itself, then exits. A child still
   running after 10 s is killed by its alarm and counted as hung. `during` counts the forks made while
   the other thread was inside a call. */
#include "common.h"
#include "gpu_affinity.h"
#include <signal.h>
#include <sys/wait.h>

static volatile int stop, in_call;
static volatile long calls;

static void *caller(void *p) {
    while (!stop) {
        in_call = 1;
        gpu_affinity_set(-1, 0, NULL, NULL, 0);
        in_call = 0;
        calls++;
    }
    return p;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t t;
    pthread_create(&t, NULL, caller, NULL);
    while (calls == 0) usleep(100);
    int ok = 0, hung = 0, failed = 0, during = 0;
    for (int i = 0; i < n; i++) {
        usleep((unsigned)(i * 37 % 500));
        during += in_call;
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            int rc = gpu_affinity_set(-1, 0, NULL, NULL, 0);
            _exit(rc >= 0 ? 0 : 1);
        }
        if (pid < 0) { perror("fork"); return 3; }
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) hung++;
        else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
        else failed++;
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("forks=%d ok=%d hung=%d failed=%d during=%d calls=%ld\n", n, ok, hung, failed, during, calls);
    return hung || failed;
}
