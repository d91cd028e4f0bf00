/* `leanprop info`: environment summary and a quick sgemm measurement. */
#include <cblas.h>
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"
#include "leanprop/version.h"

int cmd_info(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    long threads = cli_get_long(&a, "threads", 0);
    if (cli_finish(&a)) return 2;
    lp_threads_init();
    if (threads > 0 && lp_threads_set((int)threads) != LP_OK) return cli_fail("--threads");

    printf("leanprop %s\n", lp_version());
    printf("threads   %d\n", lp_threads_get());
    printf("openblas  %s\n", openblas_get_config());

    const int n = 512;
    float *A = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    float *B = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    float *C = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    if (!A || !B || !C) { lp_free(A); lp_free(B); lp_free(C); return cli_fail("info"); }
    lp_rng r;
    lp_rng_seed(&r, 1);
    lp_rng_fill_normal(&r, A, (size_t)n * n, 0, 1);
    lp_rng_fill_normal(&r, B, (size_t)n * n, 0, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    int reps = 10;
    double t0 = lp_time_now();
    for (int i = 0; i < reps; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    double dt = lp_time_now() - t0;
    printf("sgemm     %.1f GFLOP/s (%dx%dx%d, %d threads)\n", 2.0 * n * n * n * reps / dt * 1e-9, n, n, n,
           lp_threads_get());
    char report[1024];
    lp_mem_format_report(report, sizeof report);
    printf("memory (accounting allocator, after the sgemm check):\n%s", report);
    lp_free(A);
    lp_free(B);
    lp_free(C);
    return 0;
}
