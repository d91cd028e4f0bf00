/* bench_nf4: the NF4 (QLoRA) matmul against plain fp32 sgemm on the same
 * shapes, in one run: dequantisation throughput (GB/s of fp32 written), the
 * forward out = x deq(W)^T and the input gradient dx += dy deq(W), in GFLOP/s
 * (2 N C OC per matmul) and as a fraction of sgemm's. Not a test; ~10 s.
 *
 *   ./build/bench/bench_nf4          (LEANPROP_BENCH_QUICK=1: fewer reps)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "leanprop/alloc.h"
#include "leanprop/log.h"
#include "leanprop/nf4.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"

#define CHECK(expr) do { lp_status st__ = (expr); if (st__ != LP_OK) { \
    fprintf(stderr, "bench_nf4: %s failed: %s\n", #expr, lp_error_message()); exit(1); } } while (0)

#define BEST_OF(reps, t_out, code) do { double b__ = 1e30; \
    for (int r__ = 0; r__ <= (reps); r__++) { double t0__ = lp_time_now(); code; \
        double dt__ = lp_time_now() - t0__; if (r__ > 0 && dt__ < b__) b__ = dt__; } \
    (t_out) = b__; } while (0)

static float *buf(size_t n, lp_rng *r, float std)
{
    float *p = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    if (!p) { fprintf(stderr, "bench_nf4: out of memory (%zu floats)\n", n); exit(1); }
    if (r) lp_rng_fill_normal(r, p, n, 0.0f, std);
    return p;
}

static void run(int64_t N, int64_t C, int64_t OC, int reps)
{
    lp_rng r;
    lp_rng_seed(&r, 1);
    float *W = buf((size_t)(OC * C), &r, 0.02f), *x = buf((size_t)(N * C), &r, 1.0f);
    float *dy = buf((size_t)(N * OC), &r, 1.0f), *y = buf((size_t)(N * OC), NULL, 0);
    float *dx = buf((size_t)(N * C), NULL, 0), *Wd = buf((size_t)(OC * C), NULL, 0);
    lp_nf4 *q;
    double t_q, t_deq, t_f, t_fq, t_b, t_bq;
    BEST_OF(1, t_q, { lp_nf4 *tmp; CHECK(lp_nf4_quantize(&tmp, W, OC, C, 1)); lp_nf4_free(tmp); });
    CHECK(lp_nf4_quantize(&q, W, OC, C, 1));
    BEST_OF(reps, t_deq, CHECK(lp_nf4_dequantize(Wd, q)));
    BEST_OF(reps, t_f, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, (int)C, 1.0f, x, (int)C,
                                   W, (int)C, 0.0f, y, (int)OC));
    BEST_OF(reps, t_fq, CHECK(lp_nf4_linear_forward(y, x, q, NULL, N, C, OC)));
    BEST_OF(reps, t_b, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, (int)OC, 1.0f, dy,
                                   (int)OC, W, (int)C, 1.0f, dx, (int)C));
    BEST_OF(reps, t_bq, CHECK(lp_nf4_linear_backward(dx, dy, q, N, C, OC)));
    double fl = 2.0 * (double)N * (double)C * (double)OC * 1e-9;
    printf("N %5lld  C %5lld  OC %5lld | quantise %6.1f ms | dequantise %5.2f GB/s | "
           "forward sgemm %6.1f  nf4 %6.1f GFLOP/s (%3.0f%%) | dx sgemm %6.1f  nf4 %6.1f GFLOP/s (%3.0f%%) | "
           "weights %.2f -> %.2f MiB\n",
           (long long)N, (long long)C, (long long)OC, t_q * 1e3, (double)(OC * C) * 4e-9 / t_deq, fl / t_f, fl / t_fq,
           100.0 * t_f / t_fq, fl / t_b, fl / t_bq, 100.0 * t_b / t_bq, (double)(OC * C) * 4 / 1048576.0,
           (double)lp_nf4_bytes(q) / 1048576.0);
    lp_nf4_free(q);
    lp_free(W); lp_free(x); lp_free(dy); lp_free(y); lp_free(dx); lp_free(Wd);
}

int main(void)
{
    lp_threads_init();
    const char *quick = getenv("LEANPROP_BENCH_QUICK");
    int reps = quick && *quick && *quick != '0' ? 1 : 3;
    printf("threads %d; tile %u KiB of dequantised rows\n", lp_threads_get(), LP_NF4_TILE_BYTES / 1024);
    run(512, 2048, 2048, reps);   /* TinyLlama-sized q/o projection, 512 tokens */
    run(512, 2048, 5632, reps);   /* its MLP up/gate */
    run(64, 2048, 2048, reps);    /* few tokens: dequantisation dominates */
    return 0;
}
