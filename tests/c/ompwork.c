/* An OpenMP library (built with -fopenmp, linked with libgomp or LLVM's libomp): omp_report() runs one
   parallel region and prints where each OpenMP thread ran, as the kernel reports it. */
#include "common.h"
#include <omp.h>

void omp_report(void) {
    int places = omp_get_num_places();
#pragma omp parallel
    {
        char c[512];
        cpus_of(tid_self(), c, sizeof c);
#pragma omp critical
        printf("omp thread %d tid=%d cpus=%s\n", omp_get_thread_num(), (int)tid_self(), c);
    }
    printf("omp places=%d threads=%d\n", places, omp_get_max_threads());
}
