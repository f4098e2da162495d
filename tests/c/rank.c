/* rank: what a launched rank reports about itself. Starts two threads, then prints one line
   "rank R pid P threads N cpus LIST" where R is the local rank the launcher gave (LOCAL_RANK, else
   SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID), N the number of threads read back from
   /proc/self/task and LIST their Cpus_allowed_list when all agree ("mixed:A|B|..." otherwise). */
#include "common.h"

static pthread_barrier_t ready, finish;

static void *worker(void *p) {
    (void)p;
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&finish);
    return NULL;
}

int main(void) {
    alarm(30);
    const char *vars[] = {"LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
    const char *rank = "?";
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) { rank = getenv(vars[i]); break; }
    pthread_t t[2];
    pthread_barrier_init(&ready, NULL, 3);
    pthread_barrier_init(&finish, NULL, 3);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0) { perror("pthread_create"); return 3; }
    pthread_barrier_wait(&ready);
    char first[512] = "", cpus[512], all[4096] = "";
    int n = 0, mixed = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    if (!d) { perror("/proc/self/task"); return 4; }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        cpus_of((pid_t)atoi(e->d_name), cpus, sizeof cpus);
        if (n++ == 0) snprintf(first, sizeof first, "%s", cpus);
        else if (strcmp(first, cpus) != 0) mixed = 1;
        if (strlen(all) + strlen(cpus) + 2 < sizeof all) {
            if (all[0]) strcat(all, "|");
            strcat(all, cpus);
        }
    }
    closedir(d);
    pthread_barrier_wait(&finish);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("rank %s pid %d threads %d cpus %s%s\n", rank, (int)getpid(), n, mixed ? "mixed:" : "",
           mixed ? all : first);
    return 0;
}
