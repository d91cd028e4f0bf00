/* `leanprop generate`: sample text from a causal model with a KV cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/log.h"
#include "leanprop/threads.h"
#include "leanprop/tokenizer.h"
#include "leanprop/transformer.h"

/* --tokenizer, else the model directory, else tokenizer.bin / tok<V>.bin beside a .bin checkpoint. */
static lp_status open_tokenizer(lp_tokenizer **tok, const char *path, const char *model, int64_t vocab)
{
    *tok = NULL;
    if (path) return lp_tokenizer_open(tok, path);
    if (lp_dir_exists(model)) return lp_tokenizer_open(tok, model) == LP_OK ? LP_OK : LP_ERR_NOT_FOUND;
    char dir[LP_PATH_MAX], cand[LP_PATH_MAX], name[64];
    LP_TRY(lp_path_dirname(dir, sizeof dir, model));
    snprintf(name, sizeof name, "tok%lld.bin", (long long)vocab);
    const char *names[] = {"tokenizer.bin", name};
    for (int i = 0; i < 2; i++)
        if (lp_path_join(cand, sizeof cand, dir, names[i]) == LP_OK && lp_file_exists(cand))
            return lp_tokenizer_open(tok, cand);
    return LP_ERR_NOT_FOUND;
}

static int parse_ids(const char *s, int32_t **ids, int64_t *n)
{
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *ids = malloc((size_t)cap * sizeof **ids);
    *n = 0;
    if (!*ids) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff) return -1;
        (*ids)[(*n)++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *n > 0 ? 0 : -1;
}

int cmd_generate(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *model = cli_get(&a, "model", NULL);
    const char *tokp = cli_get(&a, "tokenizer", NULL);
    const char *prompt = cli_get(&a, "prompt", "");
    const char *ids_s = cli_get(&a, "ids", NULL);
    long steps = cli_get_long(&a, "steps", 256);
    double temperature = cli_get_double(&a, "temperature", 1.0);
    double top_p = cli_get_double(&a, "top-p", 0.9);
    long seed = cli_get_long(&a, "seed", 42);
    long threads = cli_get_long(&a, "threads", 0);
    int no_bos = cli_flag(&a, "no-bos");
    int no_stop = cli_flag(&a, "no-stop");
    int show_ids = cli_flag(&a, "show-ids");
    if (cli_finish(&a)) return 2;
    if (!model) {
        fprintf(stderr, "leanprop generate: --model is required (see --help)\n");
        return 2;
    }
    if (steps <= 0 || temperature < 0 || top_p <= 0 || top_p > 1) {
        fprintf(stderr, "leanprop generate: need --steps > 0, --temperature >= 0, 0 < --top-p <= 1\n");
        return 2;
    }
    if (threads > 0 && lp_threads_set((int)threads) != LP_OK) return cli_fail("--threads");
    lp_transformer *m;
    if (lp_transformer_load(&m, model) != LP_OK) return cli_fail("generate");
    const lp_transformer_config *c = lp_transformer_get_config(m);
    lp_tokenizer *tok = NULL;
    lp_status st = open_tokenizer(&tok, tokp, model, c->vocab_size);
    if (st != LP_OK && tokp) {
        lp_transformer_free(m);
        return cli_fail("tokenizer");
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 0;
    if (ids_s) {
        if (parse_ids(ids_s, &ids, &n)) {
            fprintf(stderr, "leanprop generate: --ids expects comma-separated token ids\n");
            rc = 2;
        }
    } else if (!tok) {
        if (*prompt) {
            fprintf(stderr, "leanprop generate: no tokenizer found for %s; pass --tokenizer or --ids\n", model);
            rc = 2;
        } else if (c->bos_token_id >= 0 && !no_bos) {
            ids = malloc(sizeof *ids);
            ids[0] = (int32_t)c->bos_token_id;
            n = 1;
        } else {
            fprintf(stderr, "leanprop generate: an empty prompt needs a BOS token\n");
            rc = 2;
        }
    } else {
        int32_t *enc = NULL;
        size_t ne = 0;
        int bos = lp_tokenizer_bos(tok) >= 0 && !no_bos && (c->arch == LP_ARCH_LLAMA || !*prompt);
        if (lp_tokenizer_encode(tok, prompt, strlen(prompt), bos ? LP_TOKENIZER_ADD_BOS : 0, &enc, &ne) != LP_OK) {
            rc = cli_fail("encode");
        } else if (ne == 0) {
            fprintf(stderr, "leanprop generate: the prompt encodes to no tokens (use a BOS or a prompt)\n");
            rc = 2;
        } else {
            ids = malloc(ne * sizeof *ids);
            memcpy(ids, enc, ne * sizeof *ids);
            n = (int64_t)ne;
        }
        lp_free(enc);
    }
    int64_t max_len = n + steps;
    lp_kv_cache *kc = NULL;
    float *logits = NULL;
    if (!rc && lp_kv_cache_new(&kc, m, max_len) != LP_OK) rc = cli_fail("generate");
    if (!rc && !(logits = lp_alloc_array(LP_MEM_SCRATCH, (size_t)c->vocab_size, sizeof(float)))) rc = cli_fail("generate");
    double t0 = lp_time_now(), t_prompt = 0;
    int64_t produced = 0;
    if (!rc) {
        if (tok && !ids_s) {
            fputs(prompt, stdout);
        } else if (tok) {
            for (int64_t i = 0; i < n; i++) {
                const char *b;
                size_t bl;
                if (lp_tokenizer_decode_piece(tok, i ? ids[i - 1] : -1, ids[i], &b, &bl) == LP_OK) fwrite(b, 1, bl, stdout);
            }
        }
        if (show_ids || !tok)
            for (int64_t i = 0; i < n; i++) printf(i ? ",%d" : "[%d", ids[i]);
        if (show_ids || !tok) printf("]");
        fflush(stdout);
        if (lp_transformer_decode(m, kc, ids, n, logits) != LP_OK) rc = cli_fail("generate");
        t_prompt = lp_time_now() - t0;
        lp_rng rng;
        lp_rng_seed(&rng, (uint64_t)seed);
        lp_sampler_opts so = {.temperature = (float)temperature, .top_p = (float)top_p, .seed = (uint64_t)seed};
        int32_t prev = ids[n - 1];
        while (!rc && produced < steps) {
            int32_t next;
            if (lp_sample_token(&next, logits, c->vocab_size, &so, &rng) != LP_OK) { rc = cli_fail("sample"); break; }
            if (!no_stop && ((c->eos_token_id >= 0 && next == c->eos_token_id) ||
                             (c->bos_token_id >= 0 && next == c->bos_token_id && c->arch == LP_ARCH_LLAMA)))
                break;
            produced++;
            if (tok && !show_ids) {
                const char *b;
                size_t bl;
                if (lp_tokenizer_decode_piece(tok, prev, next, &b, &bl) == LP_OK) fwrite(b, 1, bl, stdout);
            } else {
                printf(",%d", next);
            }
            fflush(stdout);
            prev = next;
            if (lp_kv_cache_len(kc) >= max_len) break;
            if (lp_transformer_decode(m, kc, &next, 1, logits) != LP_OK) rc = cli_fail("generate");
        }
        printf("\n");
        double dt = lp_time_now() - t0 - t_prompt;
        char sz[32];
        fprintf(stderr, "prompt %lld tokens in %.3f s; generated %lld tokens, %.1f tokens/s; KV cache %s\n", (long long)n,
                t_prompt, (long long)produced, dt > 0 ? (double)produced / dt : 0.0,
                lp_format_bytes(lp_mem_current(LP_MEM_ACTIVATIONS), sz, sizeof sz));
    }
    lp_free(logits);
    lp_kv_cache_free(kc);
    free(ids);
    lp_tokenizer_close(tok);
    lp_transformer_free(m);
    return rc;
}
