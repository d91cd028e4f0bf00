/* bench_transformer: training step (forward + backward + AdamW) of a
 * GPT-2-124M-shaped model with random weights, B=4, T=128, 2 threads.
 * Reports tokens/s, achieved GFLOP/s against the sgemm rate measured in the
 * same run, and peak memory by category; then the same step with TokenTune
 * selecting 30% of the rows (the memory the selection saves).
 *
 *   build/bench/bench_transformer [--steps N] [--threads N] [--B N] [--T N] [--layers N] [--select F]
 *
 * OMP_WAIT_POLICY defaults to passive here (set it to override): spinning
 * OpenMP workers otherwise compete with OpenBLAS's pthreads for the 2 cores.
 *
 * FLOP count (per step, matmuls only plus attention, the usual 6N rule):
 *   forward  2 * tokens * (linear params of the blocks + C*V of the head) + attention 4*T*C*L per token (full square)
 *   backward 2 * forward
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"
#include "leanprop/transformer.h"

static double sgemm_peak(int n, int reps)
{
    float *A = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    float *B = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    float *C = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n * n, sizeof(float));
    if (!A || !B || !C) return 0;
    lp_rng r;
    lp_rng_seed(&r, 1);
    lp_rng_fill_normal(&r, A, (size_t)n * n, 0, 1);
    lp_rng_fill_normal(&r, B, (size_t)n * n, 0, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    double best = 0;
    for (int i = 0; i < reps; i++) {
        double t0 = lp_time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double g = 2.0 * n * n * n / (lp_time_now() - t0) * 1e-9;
        if (g > best) best = g;
    }
    lp_free(A);
    lp_free(B);
    lp_free(C);
    return best;
}

static long arg_long(int argc, char **argv, const char *name, long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return strtol(argv[i + 1], NULL, 10);
    return def;
}

static double arg_double(int argc, char **argv, const char *name, double def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return strtod(argv[i + 1], NULL);
    return def;
}

static void print_mem(const char *title)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    char b[32];
    printf("  %s (accounting allocator, peak):", title);
    for (int c = 0; c < LP_MEM_COUNT; c++) {
        if (!s.peak[c]) continue;
        printf(" %s %s,", lp_mem_category_name((lp_mem_category)c), lp_format_bytes(s.peak[c], b, sizeof b));
    }
    printf(" total %s\n", lp_format_bytes(s.total_peak, b, sizeof b));
}

typedef struct {
    double fwd, bwd, opt, step;
} timing;

static int train_steps(lp_transformer *m, lp_adam *opt, const lp_transformer_batch *b, int steps, timing *t, float *loss)
{
    memset(t, 0, sizeof *t);
    for (int s = 0; s < steps; s++) {
        double t0 = lp_time_now();
        lp_transformer_zero_grad(m);
        lp_transformer_forward_opts o = {.need_grad = 1};
        if (lp_transformer_forward(m, b, &o, loss) != LP_OK) return -1;
        double t1 = lp_time_now();
        if (lp_transformer_backward(m) != LP_OK) return -1;
        double t2 = lp_time_now();
        lp_adam_begin_step(opt);
        int64_t off = 0;
        for (int i = 0; i < lp_transformer_n_params(m); i++) {
            lp_param *p = lp_transformer_param(m, i);
            if (lp_adam_update(opt, off, p->data, p->grad, p->numel) != LP_OK) return -1;
            off += p->numel;
        }
        double t3 = lp_time_now();
        t->fwd += t1 - t0;
        t->bwd += t2 - t1;
        t->opt += t3 - t2;
        t->step += t3 - t0;
    }
    t->fwd /= steps;
    t->bwd /= steps;
    t->opt /= steps;
    t->step /= steps;
    return 0;
}

int main(int argc, char **argv)
{
    /* OpenMP threads that spin after a parallel region steal the cores
     * OpenBLAS's own threads need: wait passively unless told otherwise.
     * libgomp reads the variable before main, hence the re-exec. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    int steps = (int)arg_long(argc, argv, "--steps", 3);
    int threads = (int)arg_long(argc, argv, "--threads", 2);
    int64_t B = arg_long(argc, argv, "--B", 4), T = arg_long(argc, argv, "--T", 128);
    int64_t layers = arg_long(argc, argv, "--layers", 12);
    double frac = arg_double(argc, argv, "--select", 0.3);
    lp_threads_init();
    if (lp_threads_set(threads) != LP_OK) {
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_GPT2);
    c.n_layers = layers;
    printf("OMP_WAIT_POLICY=%s\n", getenv("OMP_WAIT_POLICY"));
    printf("bench_transformer: GPT-2 124M shape (L %lld, C %lld, H %lld, V %lld), random weights, B %lld, T %lld, %d threads\n",
           (long long)c.n_layers, (long long)c.hidden_size, (long long)c.n_heads, (long long)c.vocab_size, (long long)B,
           (long long)T, threads);
    double peak = sgemm_peak(1024, 5);
    printf("  sgemm peak (1024^3, NT, %d threads): %.1f GFLOP/s\n", threads, peak);
    lp_mem_reset_peak();
    size_t rss0 = lp_mem_rss_bytes();

    lp_transformer *m;
    if (lp_transformer_new(&m, &c) != LP_OK || lp_transformer_set_trainable(m, NULL, 1) != LP_OK) {
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    lp_transformer_init_random(m, 1, 0.02f);
    int64_t n_params = lp_transformer_count_params(m, 0);
    lp_adam_config ac = lp_adamw_defaults();
    ac.lr = 3e-4f;
    lp_adam *opt;
    if (lp_adam_new(&opt, n_params, &ac) != LP_OK) {
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids);
    uint8_t *sel = malloc((size_t)(B * T));
    lp_rng r;
    lp_rng_seed(&r, 2);
    for (int64_t i = 0; i < B * T; i++) ids[i] = (int32_t)lp_rng_below(&r, (uint64_t)c.vocab_size);
    lp_transformer_batch b = {.B = B, .T = T, .input_ids = ids, .labels = ids};

    double C = (double)c.hidden_size, L = (double)c.n_layers, V = (double)c.vocab_size;
    double block_params = L * (3 * C * C + C * C + 2 * C * (double)c.intermediate_size);
    double head_flops = 2.0 * (double)(B * T) * C * V;
    double body_flops = 2.0 * (double)(B * T) * block_params + 4.0 * (double)(B * T) * (double)T * C * L;
    double fwd_flops = head_flops + body_flops;
    double step_flops = 3.0 * fwd_flops;
    /* leanprop's forward also runs the head's backward (fused loss): 3x head + body */
    double fwd_call_flops = 3.0 * head_flops + body_flops, bwd_call_flops = 2.0 * body_flops;
    printf("  parameters %lld (%.1f M), FLOPs per step %.1f G (forward %.1f G)\n", (long long)n_params, n_params / 1e6,
           step_flops * 1e-9, fwd_flops * 1e-9);

    timing t;
    float loss;
    if (train_steps(m, opt, &b, 1, &t, &loss)) { /* warm-up: allocates scratch and state */
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    if (train_steps(m, opt, &b, steps, &t, &loss)) {
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    printf("full backprop: %.3f s/step (forward %.3f, backward %.3f, AdamW %.3f), %.1f tokens/s, loss %.3f\n", t.step,
           t.fwd, t.bwd, t.opt, (double)(B * T) / t.step, loss);
    printf("  achieved %.1f GFLOP/s = %.0f%% of the sgemm peak (forward call incl. the fused head backward %.1f, "
           "backward call %.1f GFLOP/s)\n",
           step_flops / t.step * 1e-9, 100.0 * step_flops / t.step * 1e-9 / peak, fwd_call_flops / t.fwd * 1e-9,
           bwd_call_flops / t.bwd * 1e-9);
    print_mem("memory");
    char sz[32], sz2[32];
    printf("  RSS peak %s (process; %s before the model)\n", lp_format_bytes(lp_mem_rss_peak_bytes(), sz, sizeof sz),
           lp_format_bytes(rss0, sz2, sizeof sz2));
    lp_transformer_mem_plan plan;
    lp_transformer_plan_memory(&c, B, T, B * T, &plan);
    printf("  planner: activations %s, scratch %s\n", lp_format_bytes(plan.activations, sz, sizeof sz),
           lp_format_bytes(plan.scratch, sz2, sizeof sz2));

    /* TokenTune-style selection: position 0, the last one and random interior rows */
    int64_t S = 0;
    for (int64_t i = 0; i < B; i++)
        for (int64_t tt = 0; tt < T; tt++) {
            int on = tt == 0 || tt == T - 1 || lp_rng_uniform_double(&r) < frac;
            sel[i * T + tt] = (uint8_t)on;
            S += on;
        }
    b.selected = sel;
    lp_transformer_release_buffers(m);
    lp_mem_reset_peak();
    if (train_steps(m, opt, &b, steps, &t, &loss)) {
        fprintf(stderr, "bench_transformer: %s\n", lp_error_message());
        return 1;
    }
    printf("TokenTune %lld of %lld rows (%.0f%%): %.3f s/step (forward %.3f, backward %.3f), %.1f tokens/s\n",
           (long long)S, (long long)(B * T), 100.0 * (double)S / (double)(B * T), t.step, t.fwd, t.bwd,
           (double)(B * T) / t.step);
    print_mem("memory");
    lp_transformer_plan_memory(&c, B, T, S, &plan);
    printf("  planner: activations %s, scratch %s\n", lp_format_bytes(plan.activations, sz, sizeof sz),
           lp_format_bytes(plan.scratch, sz2, sizeof sz2));
    printf("reference points on this machine (from the issue): PyTorch 1.13 ~95 tokens/s, 3.3 GB peak RSS; llm.c CPU ~44 tokens/s\n");
    free(ids);
    free(sel);
    lp_adam_free(opt);
    lp_transformer_free(m);
    return 0;
}
