/* `leanprop memplan`: predicted peak memory per category of one training
 * step, from a config.json alone (no weights loaded). See lp_ft_plan_memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/args.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/finetune.h"
#include "leanprop/threads.h"
#include "leanprop/tokenselect.h"

static int fail_arg(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "leanprop memplan: %s %s: %s\n", flag, value ? value : "", why);
    return 2;
}

int cmd_memplan(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *model = cli_get(&a, "model", NULL);
    const char *method_s = cli_get(&a, "method", "lora");
    long r = cli_get_long(&a, "lora-r", 8);
    double alpha = cli_get_double(&a, "lora-alpha", 16);
    double dropout = cli_get_double(&a, "lora-dropout", 0.05);
    const char *targets = cli_get(&a, "lora-targets", NULL);
    const char *tokens = cli_get(&a, "tokens", "all");
    long B = cli_get_long(&a, "batch", 8);
    long T = cli_get_long(&a, "seq", 256);
    const char *optimizer = cli_get(&a, "optimizer", "adamw");
    const char *task = cli_get(&a, "task", NULL);
    long num_labels = cli_get_long(&a, "num-labels", 2);
    const char *full_only = cli_get(&a, "full-only", NULL);
    int no_dq = cli_flag(&a, "no-double-quant");
    long threads = cli_get_long(&a, "threads", 0);
    int json = cli_flag(&a, "json");
    if (cli_finish(&a)) return 2;
    if (!model) return fail_arg("--model", "", "required (a model directory or its config.json)");
    if (B <= 0 || B > (1L << 24)) return fail_arg("--batch", "", "must be a positive count");
    if (T <= 0 || T > (1L << 24)) return fail_arg("--seq", "", "must be a positive count");
    if (r <= 0 || r > 65536) return fail_arg("--lora-r", "", "must be a positive rank");
    lp_threads_init();
    if (threads > 0 && lp_threads_set((int)threads) != LP_OK) return cli_fail("--threads");

    char path[LP_PATH_MAX];
    if (lp_dir_exists(model)) {
        if (lp_path_join(path, sizeof path, model, "config.json") != LP_OK) return cli_fail("--model");
    } else {
        snprintf(path, sizeof path, "%s", model);
    }
    lp_transformer_config cfg;
    if (lp_transformer_config_load(&cfg, path) != LP_OK) return cli_fail("reading the model config");
    if (task && !strcmp(task, "cls")) {
        if (cfg.arch != LP_ARCH_BERT && cfg.task != LP_TASK_SEQ_CLS) {
            cfg.task = LP_TASK_SEQ_CLS;
            cfg.num_labels = num_labels;
        }
    } else if (task && strcmp(task, "lm")) {
        return fail_arg("--task", task, "must be lm or cls");
    }
    if (lp_transformer_config_validate(&cfg) != LP_OK) return cli_fail("--task / --num-labels");

    lp_ft_method method;
    if (lp_ft_method_parse(method_s, &method) != LP_OK) return cli_fail("--method");
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    s.lora.r = (int)r;
    s.lora.alpha = (float)alpha;
    s.lora.dropout = (float)dropout;
    s.double_quant = !no_dq;
    s.full_only = full_only;
    if (targets && lp_lora_config_set_targets(&s.lora, targets) != LP_OK) return cli_fail("--lora-targets");

    lp_tokenselect_config tc = lp_tokenselect_defaults();
    if (lp_tokenselect_parse(&tc, tokens) != LP_OK) return cli_fail("--tokens");
    tc.encoder = cfg.arch == LP_ARCH_BERT;
    if (lp_tokenselect_validate(&tc) != LP_OK) return cli_fail("--tokens");
    int64_t per_seq = tc.mode == LP_TOKENSELECT_ALL ? T : lp_tokenselect_count(&tc, (int32_t)T);
    int64_t S = (int64_t)B * per_seq;

    lp_mem_plan p, pf;
    if (lp_ft_plan_memory(&cfg, &s, B, T, S, optimizer, &p) != LP_OK) return cli_fail("memory plan");
    lp_ft_setup sf;
    lp_ft_setup_default(&sf, LP_FT_FULL);
    if (lp_ft_plan_memory(&cfg, &sf, B, T, (int64_t)B * T, optimizer, &pf) != LP_OK) return cli_fail("memory plan");
#ifdef _OPENMP
    int nth = omp_get_max_threads();
#else
    int nth = 1;
#endif
    double frac = pf.total_peak ? (double)p.total_peak / (double)pf.total_peak : 0.0;

    if (json) {
        printf("{\"model\": \"%s\", \"model_type\": \"%s\", \"method\": \"%s\", \"tokens\": \"%s\", \"batch\": %ld, "
               "\"seq\": %ld, \"selected_rows\": %lld, \"optimizer\": \"%s\", \"threads\": %d, ",
               model, cfg.model_type, lp_ft_method_name(method), tokens, B, T, (long long)S, optimizer, nth);
        printf("\"peak\": {");
        for (int k = 0; k < LP_MEM_COUNT; k++)
            printf("%s\"%s\": %zu", k ? ", " : "", lp_mem_category_name((lp_mem_category)k), p.peak[k]);
        printf("}, \"total_peak\": %zu, \"params\": %lld, \"trainable\": %lld, \"adapters\": %d, \"nf4_linears\": %d, "
               "\"lora_weight_bytes\": %zu, \"nf4_weight_bytes\": %zu, \"scratch_transient\": %zu, "
               "\"full_finetune_total_peak\": %zu, \"fraction_of_full\": %.4f}\n",
               p.total_peak, (long long)p.params, (long long)p.trainable, p.n_adapters, p.n_nf4, p.lora_weights,
               p.nf4_weights, p.scratch_transient, pf.total_peak, frac);
        return 0;
    }
    char b1[32], b2[32];
    printf("memory plan: %s (%s, %lld parameters), %s", model, cfg.model_type, (long long)p.params,
           lp_ft_method_name(method));
    if (method != LP_FT_FULL)
        printf(" r %d on %d linears%s", s.lora.r, p.n_adapters, method == LP_FT_QLORA ? ", NF4 base" : "");
    printf(", tokens %s (%lld of %lld rows), batch %ld x %ld, %s, %d threads\n", tokens, (long long)S,
           (long long)B * T, B, T, optimizer, nth);
    printf("  %-12s %14s %12s\n", "category", "bytes", "");
    for (int k = 0; k < LP_MEM_COUNT; k++)
        printf("  %-12s %14zu %12s\n", lp_mem_category_name((lp_mem_category)k), p.peak[k],
               lp_format_bytes(p.peak[k], b1, sizeof b1));
    printf("  %-12s %14zu %12s\n", "total peak", p.total_peak, lp_format_bytes(p.total_peak, b1, sizeof b1));
    printf("  trainable %lld floats; full fine-tuning (all tokens) would peak at %s: this is %.1f%% of it\n",
           (long long)p.trainable, lp_format_bytes(pf.total_peak, b2, sizeof b2), 100.0 * frac);
    return 0;
}
