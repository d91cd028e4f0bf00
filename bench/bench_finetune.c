/* bench_finetune: memory by category and tokens/s of one fine-tuning step
 * (forward + backward + clipping + AdamW through lp_trainer) for a
 * GPT-2-124M-shaped and a Llama-1B-shaped model (random weights) at B=4,
 * T=512, across {full, LoRA, QLoRA} x TokenTune selected fractions. Memory is
 * the accounting allocator's exact peak per category over the measured steps
 * (everything live: weights, gradients, optimizer state, saved activations,
 * scratch, the batch); lp_ft_plan_memory's prediction is printed beside it.
 * GPT-2: one warm-up step, then --steps timed steps; Llama: --llama-steps
 * timed steps after the warm-up, 0 = the single (cold) step is timed.
 * Configurations whose predicted peak exceeds --max-gb (default 12 GiB, this
 * machine has 24 GiB shared) are not run: their row is the planner's
 * prediction, marked "planned". Writes a table and an SVG of peak memory
 * against the selected fraction. Not a test.
 *
 *   build/bench/bench_finetune [--models gpt2,llama] [--methods full,lora,qlora] [--fractions 1,0.5,0.25]
 *                              [--B 4] [--T 512] [--steps 1] [--llama-steps 0] [--threads 2] [--max-gb 12]
 *                              [--targets all-linear] [--svg bench/finetune_memory.svg] [--plan-only]
 * LEANPROP_BENCH_QUICK=1: T=128, GPT-2 only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"
#include "leanprop/log.h"
#include "leanprop/metrics_log.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"
#include "leanprop/trainer.h"

static const char *arg_str(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

typedef struct {
    const char *model, *method;
    double frac;
    int measured;               /* 0: planner only */
    double tok_s, step_s;
    size_t peak[LP_MEM_COUNT], total;
    size_t plan_total, plan_act;
    int planned_ok;
} row;

#define MAX_ROWS 64

static void model_config(lp_transformer_config *c, const char *name)
{
    if (!strcmp(name, "gpt2")) {
        lp_transformer_config_default(c, LP_ARCH_GPT2);     /* 124M: L12 C768 H12 V50257 */
    } else {
        lp_transformer_config_default(c, LP_ARCH_LLAMA);    /* TinyLlama-1.1B: L22 C2048 H32/4 I5632 V32000 */
    }
}

/* A rough peak when lp_ft_plan_memory is not available: parameter bytes by
 * method plus the transformer planner's exact activations and scratch. Only
 * gates which configurations are run. */
static double estimate_total(const lp_transformer_config *c, lp_ft_method method, int64_t B, int64_t T, int64_t n_sel)
{
    double C = (double)c->hidden_size, I = (double)c->intermediate_size, V = (double)c->vocab_size, L = (double)c->n_layers;
    double kv = (double)(c->n_kv_heads * c->head_dim);
    double lin = c->arch == LP_ARCH_GPT2 ? L * 12 * C * C : L * (2 * C * C + 2 * C * kv + 3 * C * I);
    double emb = V * C * (c->tie_word_embeddings ? 1 : 2) + (c->arch == LP_ARCH_GPT2 ? (double)c->max_positions * C : 0);
    double all = lin + emb;
    double w = method == LP_FT_QLORA ? 4 * emb + lin * 0.53 : 4 * all;
    double g = method == LP_FT_FULL ? 4 * all : 0, o = method == LP_FT_FULL ? 8 * all : 0;
    lp_transformer_mem_plan tp;
    double act = 0;
    if (lp_transformer_plan_memory(c, B, T, n_sel, &tp) == LP_OK) act = (double)tp.activations + (double)tp.scratch;
    return w + g + o + act;
}

static int run_config(row *r, const lp_transformer_config *cfg, lp_ft_method method, const char *targets, int64_t B,
                      int64_t T, int steps)
{
    lp_transformer *m;
    if (lp_transformer_new(&m, cfg) != LP_OK) return -1;
    lp_transformer_init_random(m, 1, 0.02f);
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    if (method != LP_FT_FULL && lp_lora_config_set_targets(&s.lora, targets) != LP_OK) {
        lp_transformer_free(m);
        return -1;
    }
    lp_ft_model *f;
    if (lp_ft_model_new(&f, m, &s) != LP_OK) return -1;
    int64_t n = B * T * (steps + 1);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    lp_rng rng;
    lp_rng_seed(&rng, 7);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)lp_rng_below(&rng, (uint64_t)cfg->vocab_size);
    lp_token_dataset ds;
    lp_status st = lp_token_windows(&ds, ids, n, (int32_t)T);
    free(ids);
    lp_trainer *t = NULL;
    lp_trainer_config tc = lp_trainer_config_defaults();
    tc.batch = (int32_t)B;
    tc.max_len = (int32_t)T;
    tc.steps = steps + 1;
    tc.schedule.lr = 1e-5;
    char spec[32];
    snprintf(spec, sizeof spec, "%g", r->frac);
    if (st == LP_OK) st = r->frac >= 1.0 ? lp_tokenselect_parse(&tc.select, "all") : lp_tokenselect_parse(&tc.select, spec);
    lp_token_subset all = {&ds, NULL, ds.n};
    if (st == LP_OK) st = lp_trainer_new(&t, f, &all, &tc);
    lp_mem_reset_peak();
    double secs = 0;
    int64_t tokens = 0;
    for (int i = 0; st == LP_OK && i <= steps; i++) {
        lp_trainer_step_info si;
        st = lp_trainer_step(t, &si);
        if (i > 0 || steps == 0) { /* the first step warms up (allocations, page faults) */
            secs += si.seconds;
            tokens += si.tokens;
        }
    }
    if (st == LP_OK) {
        lp_mem_stats ms;
        lp_mem_get_stats(&ms);
        memcpy(r->peak, ms.peak, sizeof r->peak);
        r->total = ms.total_peak;
        r->step_s = secs / (steps > 0 ? steps : 1);
        r->tok_s = secs > 0 ? (double)tokens / secs : NAN;
        r->measured = 1;
    } else {
        fprintf(stderr, "bench_finetune: %s\n", lp_error_message());
    }
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_token_dataset_free(&ds);
    return st == LP_OK ? 0 : -1;
}

static void print_row(const row *r)
{
    char b[LP_MEM_COUNT + 2][32];
    const char *plan = r->planned_ok ? lp_format_bytes(r->plan_total, b[LP_MEM_COUNT], 32) : "n/a";
    if (r->measured) {
        printf("| %s | %s | %g | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n", r->model, r->method, r->frac,
               r->tok_s, r->step_s, lp_format_bytes(r->peak[LP_MEM_WEIGHTS], b[0], 32),
               lp_format_bytes(r->peak[LP_MEM_GRADIENTS], b[1], 32), lp_format_bytes(r->peak[LP_MEM_OPTIMIZER], b[2], 32),
               lp_format_bytes(r->peak[LP_MEM_ACTIVATIONS], b[3], 32), lp_format_bytes(r->peak[LP_MEM_SCRATCH], b[4], 32),
               lp_format_bytes(r->peak[LP_MEM_DATA], b[5], 32), lp_format_bytes(r->total, b[6], 32), plan);
    } else {
        printf("| %s | %s | %g | - | - | (planned) | | | %s | | | - | %s |\n", r->model, r->method, r->frac,
               r->planned_ok ? lp_format_bytes(r->plan_act, b[0], 32) : "n/a", plan);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (!getenv("OMP_WAIT_POLICY")) { /* spinning OpenMP workers starve OpenBLAS (see bench_transformer) */
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    int quick = getenv("LEANPROP_BENCH_QUICK") && atoi(getenv("LEANPROP_BENCH_QUICK"));
    const char *models = arg_str(argc, argv, "--models", quick ? "gpt2" : "gpt2,llama");
    const char *methods = arg_str(argc, argv, "--methods", "full,lora,qlora");
    const char *fractions = arg_str(argc, argv, "--fractions", "1,0.5,0.25");
    const char *targets = arg_str(argc, argv, "--targets", "all-linear");
    const char *svg = arg_str(argc, argv, "--svg", NULL);
    int64_t B = atol(arg_str(argc, argv, "--B", "4")), T = atol(arg_str(argc, argv, "--T", quick ? "128" : "512"));
    int steps = atoi(arg_str(argc, argv, "--steps", "1"));
    /* Llama-1B: one cold step is both the memory and the time (a step is ~a minute here) */
    int llama_steps = atoi(arg_str(argc, argv, "--llama-steps", "0"));
    int threads = atoi(arg_str(argc, argv, "--threads", "2"));
    double max_gb = atof(arg_str(argc, argv, "--max-gb", "12"));
    int plan_only = 0;
    for (int i = 1; i < argc; i++) plan_only |= !strcmp(argv[i], "--plan-only");
    lp_threads_init();
    if (lp_threads_set(threads) != LP_OK) {
        fprintf(stderr, "bench_finetune: %s\n", lp_error_message());
        return 1;
    }
    printf("bench_finetune: B %lld, T %lld, GPT-2 %d timed step(s) after a warm-up step, Llama %d (0 = one cold step), "
           "%d threads, OMP_WAIT_POLICY=%s, LoRA targets %s, runs only where the planned peak <= %.1f GiB\n",
           (long long)B, (long long)T, steps, llama_steps, threads, getenv("OMP_WAIT_POLICY"), targets, max_gb);
    printf("\n| model | method | selected | tokens/s | s/step | weights | gradients | optimizer | activations | scratch | data | "
           "total peak | planned total |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    row rows[MAX_ROWS];
    int nr = 0;
    char mlist[128], flist[128], tlist[64];
    snprintf(mlist, sizeof mlist, "%s", models);
    for (char *mn = strtok(mlist, ","); mn && nr < MAX_ROWS; mn = strtok(NULL, ",")) {
        static char model_names[4][16];
        static int n_models;
        char *mname = model_names[n_models++ & 3];
        snprintf(mname, 16, "%s", !strcmp(mn, "gpt2") ? "GPT-2 124M" : "Llama 1.1B");
        lp_transformer_config cfg;
        model_config(&cfg, mn);
        snprintf(tlist, sizeof tlist, "%s", methods);
        char *save_t = NULL;
        for (char *me = strtok_r(tlist, ",", &save_t); me && nr < MAX_ROWS; me = strtok_r(NULL, ",", &save_t)) {
            lp_ft_method method;
            if (lp_ft_method_parse(me, &method) != LP_OK) continue;
            snprintf(flist, sizeof flist, "%s", fractions);
            char *save_f = NULL;
            for (char *fr = strtok_r(flist, ",", &save_f); fr && nr < MAX_ROWS; fr = strtok_r(NULL, ",", &save_f)) {
                row *r = &rows[nr++];
                memset(r, 0, sizeof *r);
                r->model = mname;
                r->method = lp_ft_method_name(method);
                r->frac = atof(fr);
                lp_ft_setup s;
                lp_ft_setup_default(&s, method);
                if (method != LP_FT_FULL) lp_lora_config_set_targets(&s.lora, targets);
                lp_tokenselect_config sc = lp_tokenselect_defaults();
                char spec[32];
                snprintf(spec, sizeof spec, "%g", r->frac);
                lp_tokenselect_parse(&sc, r->frac >= 1 ? "all" : spec);
                int32_t k = lp_tokenselect_count(&sc, (int32_t)T);
                lp_mem_plan plan;
                if (lp_ft_plan_memory(&cfg, &s, B, T, B * (k > 0 ? k : T), "adamw", &plan) == LP_OK) {
                    r->planned_ok = 1;
                    r->plan_total = plan.total_peak;
                    r->plan_act = plan.peak[LP_MEM_ACTIVATIONS];
                }
                lp_error_clear();
                double need = r->planned_ok ? (double)r->plan_total
                                            : estimate_total(&cfg, method, B, T, B * (k > 0 ? k : T));
                int fits = need <= max_gb * 1073741824.0;
                if (!r->planned_ok && !fits) {
                    r->planned_ok = 1; /* show the rough estimate instead */
                    r->plan_total = (size_t)need;
                }
                if (fits && !plan_only)
                    run_config(r, &cfg, method, targets, B, T, strcmp(mn, "gpt2") ? llama_steps : steps);
                print_row(r);
            }
        }
    }
    if (svg) {
        /* total peak (measured, else planned) against the selected fraction, one series per model x method */
        lp_plot_series ser[16];
        double xs[16][8], ys[16][8];
        int ns = 0;
        for (int i = 0; i < nr; i++) {
            int s = 0;
            while (s < ns && !(strstr(ser[s].name, rows[i].model) && strstr(ser[s].name, rows[i].method))) s++;
            if (s == ns) {
                if (ns == 16) continue;
                static char names[16][64];
                snprintf(names[ns], 64, "%s %s", rows[i].model, rows[i].method);
                ser[ns] = (lp_plot_series){.name = names[ns], .x = xs[ns], .y = ys[ns], .n = 0};
                ns++;
            }
            double v = rows[i].measured ? (double)rows[i].total : rows[i].planned_ok ? (double)rows[i].plan_total : NAN;
            if (ser[s].n < 8) {
                xs[s][ser[s].n] = rows[i].frac;
                ys[s][ser[s].n] = v / 1073741824.0;
                ser[s].n++;
            }
        }
        lp_plot_options po = {.title = "fine-tuning step: peak memory (all categories) vs TokenTune selected fraction",
                              .xlabel = "selected fraction of tokens", .ylabel = "peak memory (GiB, log)", .log_y = 1};
        if (lp_plot_svg_write(svg, &po, ser, ns) != LP_OK) fprintf(stderr, "bench_finetune: %s\n", lp_error_message());
        else printf("\nSVG: %s\n", svg);
    }
    return 0;
}
