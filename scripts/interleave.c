/* Interleaved start-up timing: every round runs each command once, in a fresh random order (a fixed
 * seed: runs repeat), so slow drifts of a shared machine fall on every command alike, and no command
 * always follows the same one (an order merely rotated each round put every command after the same
 * predecessor: the row after a 55 ms hwloc-bind read ~0.1-0.2 ms slow in every round); prints each command's median
 * and the difference of medians from the second command (the baseline, e.g. an empty preload), in wall
 * time and in CPU time (the child's user + system time from wait4: a busy machine delays a process
 * without adding to its CPU time).
 * Usage: interleave ROUNDS FILE   (FILE: one "NAME<TAB>ARGV..." per line, ARGV split on spaces)
 * Build: cc -O2 -o interleave scripts/interleave.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: interleave ROUNDS FILE\n"); return 2; }
    int rounds = atoi(argv[1]);
    FILE *f = fopen(argv[2], "r");
    if (!f || rounds < 1) { perror(argv[2]); return 2; }
    char *names[64], **cmds[64];
    int n = 0;
    char line[65536];
    while (n < 64 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        names[n] = strdup(line);
        char **av = calloc(256, sizeof *av);
        int k = 0;
        for (char *t = strtok(strdup(tab + 1), " "); t && k < 255; t = strtok(NULL, " ")) av[k++] = t;
        cmds[n++] = av;
    }
    double *t = calloc((size_t)n * rounds, sizeof *t);
    double *c = calloc((size_t)n * rounds, sizeof *c);
    /* Every command's stderr goes to /dev/null alike (a binding beyond this machine's CPUs warns once). */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int order[64];
    for (int i = 0; i < n; i++) order[i] = i;
    unsigned long long seed = 0x9e3779b97f4a7c15ULL;
    for (int r = 0; r < rounds; r++) {
        for (int j = n - 1; j > 0; j--) { /* Fisher-Yates, xorshift64 */
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            int k = (int)(seed % (unsigned long long)(j + 1));
            int tmp = order[j]; order[j] = order[k]; order[k] = tmp;
        }
        for (int j = 0; j < n; j++) {
            int i = order[j];
            struct timespec a, b;
            pid_t pid;
            clock_gettime(CLOCK_MONOTONIC, &a);
            if (posix_spawn(&pid, cmds[i][0], &fa, NULL, cmds[i], environ) != 0) { perror(cmds[i][0]); return 1; }
            int st;
            struct rusage ru;
            wait4(pid, &st, 0, &ru);
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "%s failed\n", names[i]); return 1; }
            t[i * rounds + r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
            c[i * rounds + r] = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                                (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
        }
    }
    double med[64], cpu[64];
    for (int i = 0; i < n; i++) {
        qsort(t + i * rounds, rounds, sizeof *t, cmp);
        qsort(c + i * rounds, rounds, sizeof *c, cmp);
        med[i] = t[i * rounds + rounds / 2];
        cpu[i] = c[i * rounds + rounds / 2];
    }
    const char *base = n > 1 ? names[1] : "";
    printf("%d interleaved rounds; median per command.\n\n", rounds);
    printf("| command | median (ms) | vs %s (ms) | ratio to it | CPU median (ms) | CPU vs %s (ms) |\n"
           "|---|---:|---:|---:|---:|---:|\n", base, base);
    for (int i = 0; i < n; i++)
        printf("| %s | %.3f | %+.3f | %.2f | %.3f | %+.3f |\n", names[i], med[i], med[i] - med[1], med[i] / med[1],
               cpu[i], cpu[i] - cpu[1]);
    return 0;
}
