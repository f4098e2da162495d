/* Fork safety with the pthread_create hook active: threads keep creating threads while another
   thread forks; each child creates threads too. A deadlock trips the alarm (exit by SIGALRM). */
#include "common.h"
#include <sys/wait.h>

static volatile int stop;
static void *nothing(void *p) { return p; }

static void *creator(void *p) {
    while (!stop) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
    }
    return p;
}

static void *forker(void *p) {
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            for (int k = 0; k < 3; k++) {
                pthread_t t;
                if (pthread_create(&t, NULL, nothing, NULL) != 0) _exit(4);
                pthread_join(t, NULL);
            }
            _exit(0);
        }
        if (pid < 0) { perror("fork"); exit(3); }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d failed: status %d\n", i, st);
            exit(5);
        }
    }
    return p;
}

int main(void) {
    alarm(30);
    pthread_t c[3], f;
    for (int i = 0; i < 3; i++) pthread_create(&c[i], NULL, creator, NULL);
    pthread_create(&f, NULL, forker, NULL);
    pthread_join(f, NULL);
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(c[i], NULL);
    printf("ok\n");
    return 0;
}
