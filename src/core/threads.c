/* Thread count shared by OpenMP loops and OpenBLAS. */
#include "leanprop/threads.h"

#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Provided by OpenBLAS. */
extern void openblas_set_num_threads(int num_threads);

static int g_threads = 0;

lp_status lp_threads_set(int n)
{
    if (n < 1 || n > 1024) return lp_error(LP_ERR_INVALID_ARG, "thread count must be 1..1024, got %d", n);
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    return LP_OK;
}

void lp_threads_init(void)
{
    if (g_threads > 0) return;
    int n = 0;
    const char *env = getenv("LEANPROP_THREADS");
    if (env && *env) n = atoi(env);
    if (n < 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    if (lp_threads_set(n) != LP_OK) lp_threads_set(1);
}

int lp_threads_get(void)
{
    if (g_threads == 0) lp_threads_init();
    return g_threads;
}
