/* `leanprop convert`: llama2.c / llm.c / Hugging Face -> Hugging Face directory (or llm.c). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/finetune.h"
#include "leanprop/transformer.h"

static const char *arch_name(lp_arch a)
{
    return a == LP_ARCH_GPT2 ? "gpt2" : a == LP_ARCH_LLAMA ? "llama" : "bert";
}

/* Attach the PEFT adapter in `dir` to *m and merge it into the base weights.
 * On success *ft owns the model and *m points at its (merged) transformer;
 * on failure the model is freed. */
static lp_status merge_adapter(lp_ft_model **ft, lp_transformer **m, const char *dir, const char *method_name)
{
    lp_ft_method method;
    lp_ft_setup s;
    lp_status st = lp_ft_method_parse(method_name, &method);
    if (st == LP_OK && method == LP_FT_FULL)
        st = lp_error(LP_ERR_INVALID_ARG, "--merge-method must be lora or qlora");
    if (st == LP_OK) st = lp_ft_setup_from_adapter(&s, method, dir);
    if (st != LP_OK) {
        lp_transformer_free(*m);
        return st;
    }
    LP_TRY(lp_ft_model_new(ft, *m, &s)); /* owns *m from here, also on failure */
    st = lp_ft_model_load_adapter(*ft, dir);
    if (st == LP_OK) st = lp_ft_model_merge(*ft);
    if (st != LP_OK) {
        lp_ft_model_free(*ft);
        *ft = NULL;
        return st;
    }
    *m = lp_ft_model_transformer(*ft);
    return LP_OK;
}

int cmd_convert(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *in = cli_get(&a, "model", NULL);
    const char *out = cli_get(&a, "out", NULL);
    const char *dtype = cli_get(&a, "dtype", "f32");
    const char *format = cli_get(&a, "format", "hf");
    long shard_mb = cli_get_long(&a, "shard-mb", 0);
    const char *merge = cli_get(&a, "merge", NULL);
    const char *merge_method = cli_get(&a, "merge-method", "lora");
    if (cli_finish(&a)) return 2;
    if (!in || !out) {
        fprintf(stderr, "leanprop convert: --model and --out are required (see --help)\n");
        return 2;
    }
    if (shard_mb < 0) {
        fprintf(stderr, "leanprop convert: --shard-mb must be >= 0\n");
        return 2;
    }
    lp_transformer *m;
    if (lp_transformer_load(&m, in) != LP_OK) return cli_fail("convert");
    lp_ft_model *ft = NULL;
    if (merge && merge_adapter(&ft, &m, merge, merge_method) != LP_OK) return cli_fail("convert --merge");
    const lp_transformer_config *c = lp_transformer_get_config(m);
    lp_status st;
    if (!strcmp(format, "hf")) {
        lp_transformer_save_opts so = {.dtype = dtype, .max_shard_bytes = (size_t)shard_mb << 20};
        st = lp_transformer_save_hf(m, out, &so);
    } else if (!strcmp(format, "llmc")) {
        st = strcmp(dtype, "f32") ? lp_error(LP_ERR_UNSUPPORTED, "llm.c output is f32 only") : lp_llmc_save(m, out);
    } else {
        st = lp_error(LP_ERR_INVALID_ARG, "--format \"%s\" (use hf or llmc)", format);
    }
    if (st != LP_OK) {
        if (ft) lp_ft_model_free(ft); else lp_transformer_free(m);
        return cli_fail("convert");
    }
    char sz[32];
    printf("%s -> %s (%s, %s)\n", in, out, format, dtype);
    printf("  %s: %lld layers, hidden %lld, heads %lld/%lld, vocab %lld, %lld parameters (%s as f32)\n",
           arch_name(c->arch), (long long)c->n_layers, (long long)c->hidden_size, (long long)c->n_heads,
           (long long)c->n_kv_heads, (long long)c->vocab_size, (long long)lp_transformer_count_params(m, 0),
           lp_format_bytes(lp_mem_current(LP_MEM_WEIGHTS), sz, sizeof sz));
    if (merge) printf("  merged the %s adapter in %s into the base weights\n", merge_method, merge);
    if (ft) lp_ft_model_free(ft); else lp_transformer_free(m);
    return 0;
}
