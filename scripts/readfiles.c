/* The floor of a plan's file reading: opens, reads once and closes every file listed in LIST (one
 * path per line), as the library's reader does, and nothing else. bench-interleaved.sh lists the
 * files a rank-0 plan reads (strace) and times this program beside the library, so the table says
 * how much of a plan's cost the files alone are.
 * Usage: readfiles LIST      Build: cc -O2 -o readfiles scripts/readfiles.c */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: readfiles LIST\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char paths[4096][512];
    int n = 0;
    while (n < 4096 && fgets(paths[n], sizeof paths[n], f)) {
        paths[n][strcspn(paths[n], "\n")] = 0;
        n++;
    }
    fclose(f);
    char buf[4096];
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, buf, sizeof buf) < 0) {
                perror(paths[i]);
            }
            close(fd);
        }
    }
    return 0;
}
