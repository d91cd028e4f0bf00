/* bench_kernels: this machine's sgemm peak and memory bandwidth, measured in the
 * same run, then every kernel's achieved GFLOP/s (matmul-like) or GB/s
 * (memory-bound) and its fraction of that ceiling. Not a test; ~30-60 s.
 *
 *   ./build/bench/bench_kernels            (LEANPROP_BENCH_QUICK=1: fewer reps)
 *
 * The bandwidth ceiling is the better of memcpy and a STREAM triad at the same
 * thread count. Byte counts are the compulsory traffic (each input read once, each output
 * written once, += outputs read and written); FLOP counts are 2 per
 * multiply-add. Timings are the best of several repetitions after a warm-up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels.h"
#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"

static int g_reps = 5;

#define CHECK(expr) do { lp_status st__ = (expr); if (st__ != LP_OK) { \
    fprintf(stderr, "bench: %s failed: %s\n", #expr, lp_error_message()); exit(1); } } while (0)

/* Best wall time of `reps` runs of `code`, after one warm-up run. */
#define BEST_OF(reps, t_out, code) do { double b__ = 1e30; \
    for (int r__ = 0; r__ <= (reps); r__++) { double t0__ = lp_time_now(); code; \
        double dt__ = lp_time_now() - t0__; if (r__ > 0 && dt__ < b__) b__ = dt__; } \
    (t_out) = b__; } while (0)

static float *buf(size_t n, lp_rng *r)
{
    float *p = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    if (!p) { fprintf(stderr, "bench: out of memory (%zu floats)\n", n); exit(1); }
    if (r) lp_rng_fill_normal(r, p, n, 0.0f, 1.0f);
    return p;
}

static double sgemm_gflops(int64_t n, int reps)
{
    float *a = buf((size_t)(n * n), NULL), *b = buf((size_t)(n * n), NULL), *c = buf((size_t)(n * n), NULL);
    for (int64_t i = 0; i < n * n; i++) { a[i] = 0.001f * (float)(i % 997); b[i] = 0.002f * (float)(i % 991); }
    double t;
    BEST_OF(reps, t, CHECK(lp_sgemm(c, 0, a, 0, b, 0, n, n, n, LP_NOTRANS, LP_NOTRANS, 1.0f, 0.0f)));
    lp_free(a); lp_free(b); lp_free(c);
    return 2.0 * (double)n * n * n / t * 1e-9;
}

static double memcpy_gbs(size_t bytes, int reps)
{
    char *a = lp_alloc(LP_MEM_SCRATCH, bytes), *b = lp_alloc(LP_MEM_SCRATCH, bytes);
    if (!a || !b) exit(1);
    memset(a, 1, bytes);
    double t;
    BEST_OF(reps, t, memcpy(b, a, bytes));
    lp_free(a); lp_free(b);
    return 2.0 * (double)bytes / t * 1e-9;   /* read + write */
}

static void triad_once(float *a, const float *b, const float *c, int64_t n)
{
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
}

/* STREAM-style triad a = b + s*c over 3 x 64 MiB on the current OpenMP threads (12 bytes/element). */
static double triad_gbs(int reps)
{
    const int64_t n = (int64_t)16 << 20;
    float *a = buf((size_t)n, NULL), *b = buf((size_t)n, NULL), *c = buf((size_t)n, NULL);
    for (int64_t i = 0; i < n; i++) { b[i] = 1.0f; c[i] = 2.0f; }
    double t;
    BEST_OF(reps, t, triad_once(a, b, c, n));
    lp_free(a); lp_free(b); lp_free(c);
    return 12.0 * (double)n / t * 1e-9;
}

static double g_peak, g_bw;

static void row_flops(const char *name, const char *shape, double t, double flops)
{
    double g = flops / t * 1e-9;
    printf("%-26s %-26s %9.3f ms %9.1f GFLOP/s %6.1f%% of sgemm peak\n", name, shape, t * 1e3, g, 100.0 * g / g_peak);
}

static void row_bytes(const char *name, const char *shape, double t, double bytes)
{
    double g = bytes / t * 1e-9;
    printf("%-26s %-26s %9.3f ms %9.2f GB/s    %6.1f%% of stream bw\n", name, shape, t * 1e3, g, 100.0 * g / g_bw);
}

static void run_table(int th)
{
    CHECK(lp_threads_set(th));
    printf("\n== kernels on %d thread%s (vs the %d-thread sgemm peak %.1f GFLOP/s, stream bw %.2f GB/s)\n", th,
           th > 1 ? "s" : "", th, g_peak, g_bw);
    printf("%-26s %-26s %12s %17s\n", "kernel", "shape", "time", "achieved");
    double t;
    char shape[64];
    lp_rng r;
    lp_rng_seed(&r, 2);
    /* GPT-2 small MLP-ish shapes: 1024 tokens, C 768, hidden 3072 */
    const int64_t N = 1024, C = 768, OC = 3072;
    float *x = buf((size_t)(N * C), &r), *W = buf((size_t)(OC * C), &r), *bias = buf((size_t)OC, &r);
    float *y = buf((size_t)(N * OC), NULL), *dy = buf((size_t)(N * OC), &r);
    float *dx = buf((size_t)(N * C), NULL), *dW = buf((size_t)(OC * C), NULL), *db = buf((size_t)OC, NULL);
    snprintf(shape, sizeof shape, "N%lld C%lld OC%lld", (long long)N, (long long)C, (long long)OC);
    BEST_OF(g_reps, t, CHECK(lp_linear_forward(y, x, W, bias, N, C, OC)));
    row_flops("linear_forward", shape, t, 2.0 * N * C * OC);
    BEST_OF(g_reps, t, CHECK(lp_linear_backward(dx, dW, db, dy, x, W, N, C, OC)));
    row_flops("linear_backward (dx,dW,db)", shape, t, 4.0 * N * C * OC);
    BEST_OF(g_reps, t, CHECK(lp_linear_backward(dx, NULL, NULL, dy, x, W, N, C, OC)));
    row_flops("linear_backward (dx only)", shape, t, 2.0 * N * C * OC);

    /* memory-bound kernels: working sets of >= 48 MiB (past the 32 MiB L3), so GB/s
     * compares with the DRAM memcpy figure */
    lp_free(x); lp_free(W); lp_free(bias); lp_free(y); lp_free(dy); lp_free(dx); lp_free(dW); lp_free(db);
    const int64_t nh = (int64_t)16 << 20;
    y = buf((size_t)nh, &r);
    dy = buf((size_t)nh, &r);
    snprintf(shape, sizeof shape, "n %lld", (long long)nh);
    BEST_OF(g_reps, t, CHECK(lp_gelu_tanh_forward(dy, y, nh)));
    row_bytes("gelu_tanh_forward", shape, t, 8.0 * nh);
    BEST_OF(g_reps, t, CHECK(lp_gelu_tanh_backward(y, dy, dy, nh)));
    row_bytes("gelu_tanh_backward", shape, t, 16.0 * nh);
    BEST_OF(g_reps, t, CHECK(lp_gelu_erf_forward(dy, y, nh)));
    row_bytes("gelu_erf_forward", shape, t, 8.0 * nh);
    BEST_OF(g_reps, t, CHECK(lp_silu_forward(dy, y, nh)));
    row_bytes("silu_forward", shape, t, 8.0 * nh);
    BEST_OF(g_reps, t, CHECK(lp_swiglu_forward(dy, y, y, nh / 2)));
    row_bytes("swiglu_forward", shape, t, 12.0 * (nh / 2));
    BEST_OF(g_reps, t, CHECK(lp_relu_forward(dy, y, nh)));
    row_bytes("relu_forward", shape, t, 8.0 * nh);
    BEST_OF(g_reps, t, CHECK(lp_residual_forward(dy, y, dy, nh)));
    row_bytes("residual_forward", shape, t, 12.0 * nh);

    const int64_t NR = 16384;   /* rows for norms, RoPE, embedding: 16384 x 768 floats = 48 MiB */
    x = buf((size_t)(NR * C), &r);
    dx = buf((size_t)(NR * C), NULL);
    db = buf((size_t)C, NULL);
    float *mean = buf((size_t)NR, NULL), *rstd = buf((size_t)NR, NULL), *lw = buf((size_t)C, &r), *lb = buf((size_t)C, &r);
    float *xo = buf((size_t)(NR * C), NULL), *dxo = buf((size_t)(NR * C), &r), *dlw = buf((size_t)C, NULL);
    snprintf(shape, sizeof shape, "N%lld C%lld", (long long)NR, (long long)C);
    BEST_OF(g_reps, t, CHECK(lp_layernorm_forward(xo, mean, rstd, x, lw, lb, NR, C, 1e-5f)));
    row_bytes("layernorm_forward", shape, t, 8.0 * NR * C);
    BEST_OF(g_reps, t, CHECK(lp_layernorm_backward(dx, dlw, db, dxo, x, lw, mean, rstd, NR, C)));
    row_bytes("layernorm_backward", shape, t, 16.0 * NR * C);
    BEST_OF(g_reps, t, CHECK(lp_rmsnorm_forward(xo, rstd, x, lw, NR, C, 1e-6f)));
    row_bytes("rmsnorm_forward", shape, t, 8.0 * NR * C);
    BEST_OF(g_reps, t, CHECK(lp_rmsnorm_backward(dx, dlw, dxo, x, lw, rstd, NR, C)));
    row_bytes("rmsnorm_backward", shape, t, 16.0 * NR * C);

    /* RoPE on q: 16384 tokens, 12 heads of 64 */
    snprintf(shape, sizeof shape, "BT%lld H12 D64", (long long)NR);
    BEST_OF(g_reps, t, CHECK(lp_rope_forward(xo, x, NULL, 1, NR, 12, 64, 10000.0f)));
    row_bytes("rope_forward", shape, t, 8.0 * NR * C);
    BEST_OF(g_reps, t, CHECK(lp_rope_backward(dx, xo, NULL, 1, NR, 12, 64, 10000.0f)));
    row_bytes("rope_backward", shape, t, 12.0 * NR * C);

    /* embedding: GPT-2 vocabulary */
    const int64_t V = 50257;
    float *wte = buf((size_t)(V * C), &r), *dwte = buf((size_t)(V * C), NULL);
    int32_t *ids = malloc((size_t)NR * sizeof *ids);
    for (int64_t i = 0; i < NR; i++) ids[i] = (int32_t)lp_rng_below(&r, (uint64_t)V);
    snprintf(shape, sizeof shape, "N%lld V%lld C%lld", (long long)NR, (long long)V, (long long)C);
    BEST_OF(g_reps, t, CHECK(lp_embedding_forward(xo, ids, wte, NR, V, C)));
    row_bytes("embedding_forward", shape, t, 8.0 * NR * C);
    BEST_OF(g_reps, t, CHECK(lp_embedding_backward(dwte, dxo, ids, NR, V, C)));
    row_bytes("embedding_backward", shape, t, 12.0 * NR * C);

    /* cross-entropy over GPT-2 logits, 256 rows (51 MB) */
    const int64_t NL = 256;
    float *logits = buf((size_t)(NL * V), &r), *dlogits = buf((size_t)(NL * V), NULL), *lse = buf((size_t)NL, NULL);
    int32_t *tg = malloc((size_t)NL * sizeof *tg);
    for (int64_t i = 0; i < NL; i++) tg[i] = (int32_t)lp_rng_below(&r, (uint64_t)V);
    float loss;
    int64_t count;
    snprintf(shape, sizeof shape, "N%lld V%lld", (long long)NL, (long long)V);
    BEST_OF(g_reps, t, CHECK(lp_crossentropy_forward(&loss, &count, lse, logits, tg, NL, V, LP_IGNORE_INDEX)));
    row_bytes("crossentropy_forward", shape, t, 4.0 * NL * V);
    BEST_OF(g_reps, t, CHECK(lp_crossentropy_backward(dlogits, logits, lse, tg, count, 1.0f, NL, V, LP_IGNORE_INDEX)));
    row_bytes("crossentropy_backward", shape, t, 8.0 * NL * V);
    BEST_OF(g_reps, t, CHECK(lp_softmax_forward(dlogits, logits, NL, V)));
    row_bytes("softmax_forward", shape, t, 8.0 * NL * V);

    /* optimizer: 10M parameters */
    const int64_t NP = 10 * 1000 * 1000;
    float *p = buf((size_t)NP, &r), *g = buf((size_t)NP, &r);
    lp_adam_config ac = lp_adamw_defaults();
    lp_adam *opt;
    CHECK(lp_adam_new(&opt, NP, &ac));
    snprintf(shape, sizeof shape, "n %lld", (long long)NP);
    BEST_OF(g_reps, t, CHECK(lp_adam_step(opt, p, g, NP)));
    row_bytes("adamw_step", shape, t, 28.0 * NP);
    lp_adam_free(opt);
    float *gs[1] = {g};
    int64_t ns[1] = {NP};
    float norm;
    BEST_OF(g_reps, t, CHECK(lp_grad_norm(gs, ns, 1, &norm)));
    row_bytes("grad_norm", shape, t, 4.0 * NP);

    /* attention: GPT-2 small head layout, one sequence of 1024, causal */
    const int64_t T = 1024, H = 12, D = 64;
    lp_attention_params ap = {.B = 1, .Tq = T, .Tk = T, .H = H, .Hkv = H, .D = D, .causal = 1};
    float *q = buf((size_t)(T * H * D), &r), *k = buf((size_t)(T * H * D), &r), *v = buf((size_t)(T * H * D), &r);
    float *ao = buf((size_t)(T * H * D), NULL), *alse = buf((size_t)(H * T), NULL);
    float *dq = buf((size_t)(T * H * D), NULL), *dk = buf((size_t)(T * H * D), NULL), *dv = buf((size_t)(T * H * D), NULL);
    const double causal_pairs = (double)T * (T + 1) / 2.0 * H;
    snprintf(shape, sizeof shape, "T%lld H%lld D%lld causal", (long long)T, (long long)H, (long long)D);
    int areps = g_reps < 3 ? g_reps : 3;
    BEST_OF(areps, t, CHECK(lp_attention_forward(ao, alse, q, k, v, &ap)));
    row_flops("attention_forward", shape, t, 4.0 * causal_pairs * D);            /* QK^T, PV */
    BEST_OF(areps, t, CHECK(lp_attention_backward(dq, dk, dv, q, q, k, v, ao, alse, &ap)));
    row_flops("attention_backward", shape, t, 10.0 * causal_pairs * D);          /* QK^T, dO.V, dV, dK, dQ */
    /* GQA 12 query heads over 4 kv heads: backward parallelism is B*Hkv = 4 tasks */
    ap.Hkv = 4;
    snprintf(shape, sizeof shape, "T%lld H%lld/4 D%lld causal", (long long)T, (long long)H, (long long)D);
    BEST_OF(areps, t, CHECK(lp_attention_forward(ao, alse, q, k, v, &ap)));
    row_flops("attention_forward GQA", shape, t, 4.0 * causal_pairs * D);
    BEST_OF(areps, t, CHECK(lp_attention_backward(dq, dk, dv, q, q, k, v, ao, alse, &ap)));
    row_flops("attention_backward GQA", shape, t, 10.0 * causal_pairs * D);
    lp_free(x); lp_free(dx); lp_free(db); lp_free(y); lp_free(dy); lp_free(mean); lp_free(rstd); lp_free(lw);
    lp_free(lb); lp_free(xo); lp_free(dxo); lp_free(dlw); lp_free(wte); lp_free(dwte); lp_free(logits);
    lp_free(dlogits); lp_free(lse); lp_free(p); lp_free(g); lp_free(q); lp_free(k); lp_free(v); lp_free(ao);
    lp_free(alse); lp_free(dq); lp_free(dk); lp_free(dv);
    free(ids); free(tg);
    if (th == 2) printf("\nattention saved bytes (lse) for B1 H12 T1024: %zu (a probability tensor would be %zu)\n",
           lp_attention_saved_bytes(&ap), (size_t)(H * T * T) * sizeof(float));
}

int main(void)
{
    const char *quick = getenv("LEANPROP_BENCH_QUICK");
    if (quick && *quick == '1') g_reps = 2;
    printf("== ceilings (best of %d)\n", g_reps);
    const int64_t sizes[] = {256, 512, 1024, 1536};
    double peak[3] = {0, 0, 0}, bw[3] = {0, 0, 0};
    for (int th = 1; th <= 2; th++) {
        CHECK(lp_threads_set(th));
        for (int i = 0; i < 4; i++) {
            double g = sgemm_gflops(sizes[i], g_reps);
            printf("sgemm %4lld^3  %d thread%s %8.1f GFLOP/s\n", (long long)sizes[i], th, th > 1 ? "s" : " ", g);
            if (g > peak[th]) peak[th] = g;
        }
        double m = memcpy_gbs((size_t)64 << 20, g_reps), tr = triad_gbs(g_reps);
        printf("memcpy 64 MiB (read+write)    %8.2f GB/s   triad 3 x 64 MiB, %d thread%s %8.2f GB/s\n", m, th,
               th > 1 ? "s" : " ", tr);
        bw[th] = m > tr ? m : tr;
    }
    printf("sgemm peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)\n", peak[1], peak[2]);
    for (int th = 1; th <= 2; th++) {
        /* the machine is shared: measure the peak again right before the table, keep the best */
        CHECK(lp_threads_set(th));
        double again = sgemm_gflops(1024, 2 * g_reps);
        if (again > peak[th]) peak[th] = again;
        g_peak = peak[th];
        g_bw = bw[th];
        run_table(th);
    }
    return 0;
}
