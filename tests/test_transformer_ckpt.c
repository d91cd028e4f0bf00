/* Checkpoint formats and generation: the real stories260K (llama2.c) run
 * greedily from BOS reproduces the text its README quotes; llm.c round trip;
 * conversion to an HF directory keeps the logits; KV-cache decoding equals the
 * full forward. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/safetensors.h"
#include "leanprop/transformer.h"

static const char *STORY =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
    "a big, red ball. She wanted to play with it, but it was too high.";

/* Minimal llama2.c tokenizer.bin decoder (run.c's rules): enough to turn ids into text. */
typedef struct {
    int n;
    char **piece;
} mini_tok;

static int mini_tok_open(mini_tok *t, const char *path, int vocab)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int32_t maxlen;
    if (fread(&maxlen, 4, 1, f) != 1) { fclose(f); return -1; }
    t->n = vocab;
    t->piece = calloc((size_t)vocab, sizeof *t->piece);
    for (int i = 0; i < vocab; i++) {
        float score;
        int32_t len;
        if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > 1024) { fclose(f); return -1; }
        t->piece[i] = calloc((size_t)len + 1, 1);
        if (fread(t->piece[i], 1, (size_t)len, f) != (size_t)len) { fclose(f); return -1; }
    }
    fclose(f);
    return 0;
}

static void mini_tok_free(mini_tok *t)
{
    for (int i = 0; i < t->n; i++) free(t->piece[i]);
    free(t->piece);
}

static void mini_tok_decode(const mini_tok *t, const int32_t *ids, int n, int32_t prev, char *out, size_t cap)
{
    size_t w = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *p = t->piece[ids[i]];
        if (prev == 1 && p[0] == ' ') p++; /* run.c: strip the space after BOS */
        unsigned byte;
        char buf[2] = {0};
        if (sscanf(p, "<0x%02X>", &byte) == 1) { buf[0] = (char)byte; p = buf; }
        size_t L = strlen(p);
        if (w + L + 1 < cap) { memcpy(out + w, p, L); w += L; out[w] = '\0'; }
        prev = ids[i];
    }
}

static void test_stories260k_greedy_story(void **state)
{
    (void)state;
    const char *mp = lp_test_shared("data/models/stories260K/stories260K.bin");
    const char *tp = lp_test_shared("data/models/stories260K/tok512.bin");
    if (!mp || !tp) { LP_SKIP("stories260K not found (set LEANPROP_SHARED)"); }
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, mp));
    const lp_transformer_config *c = lp_transformer_get_config(m);
    assert_int_equal(c->arch, LP_ARCH_LLAMA);
    assert_int_equal(c->hidden_size, 64);
    assert_int_equal(c->n_layers, 5);
    assert_int_equal(c->n_kv_heads, 4);
    assert_int_equal(c->vocab_size, 512);
    int32_t bos = 1, out[256];
    int64_t n = 0;
    lp_sampler_opts so = {.temperature = 0.0f};
    LP_ASSERT_OK(lp_transformer_generate(m, &bos, 1, 200, &so, 0, out, &n));
    /* run.c stops when the model emits BOS (1), the sequence delimiter */
    int k = 0;
    while (k < n && out[k] != 1) k++;
    mini_tok t = {0, NULL};
    assert_int_equal(mini_tok_open(&t, tp, 512), 0);
    char text[4096];
    mini_tok_decode(&t, out, k, bos, text, sizeof text);
    mini_tok_free(&t);
    print_message("  stories260K greedy: \"%s\"\n", text);
    assert_true(strncmp(text, STORY, strlen(STORY)) == 0);
    lp_transformer_free(m);
}

/* The full forward's logits at every position equal those of KV-cache decoding
 * (token by token and in one chunk). */
static void check_decode_matches_forward(lp_transformer *m, int64_t T)
{
    const lp_transformer_config *c = lp_transformer_get_config(m);
    int64_t V = c->vocab_size;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    lp_rng r;
    lp_rng_seed(&r, 5);
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)lp_rng_below(&r, (uint64_t)V);
    float *full = malloc((size_t)(T * V) * sizeof(float));
    lp_transformer_batch b = {.B = 1, .T = T, .input_ids = ids};
    lp_transformer_forward_opts o = {.logits = full};
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, NULL));
    lp_kv_cache *kc;
    LP_ASSERT_OK(lp_kv_cache_new(&kc, m, T));
    float *step = malloc((size_t)V * sizeof(float));
    for (int64_t t = 0; t < T; t++) {
        LP_ASSERT_OK(lp_transformer_decode(m, kc, ids + t, 1, step));
        lp_test_assert_allclose(step, full + t * V, (size_t)V, 1e-4, 1e-4, "decode vs forward");
    }
    assert_int_equal(lp_kv_cache_len(kc), T);
    assert_int_equal(lp_transformer_decode(m, kc, ids, 1, step), LP_ERR_INVALID_ARG); /* cache full */
    lp_kv_cache_reset(kc);
    LP_ASSERT_OK(lp_transformer_decode(m, kc, ids, T, step));
    lp_test_assert_allclose(step, full + (T - 1) * V, (size_t)V, 1e-4, 1e-4, "chunk decode vs forward");
    lp_kv_cache_free(kc);
    free(step);
    free(full);
    free(ids);
}

static void test_decode_matches_forward(void **state)
{
    (void)state;
    const char *mp = lp_test_shared("data/models/stories260K/stories260K.bin");
    const char *gp = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!mp || !gp) { LP_SKIP("stories260K / gpt2-tiny not found (set LEANPROP_SHARED)"); }
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, mp));
    check_decode_matches_forward(m, 80); /* > one 64-token decode chunk */
    lp_transformer_free(m);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", gp);
    *strrchr(dir, '/') = '\0';
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    check_decode_matches_forward(m, 40);
    lp_transformer_free(m);
}

/* Sampling: greedy is the argmax; a seed reproduces; top-p keeps the nucleus. */
static void test_sampler(void **state)
{
    (void)state;
    float logits[5] = {0.0f, 3.0f, 2.9f, -1.0f, 1.0f};
    int32_t tok;
    lp_sampler_opts g = {0};
    LP_ASSERT_OK(lp_sample_token(&tok, logits, 5, &g, NULL));
    assert_int_equal(tok, 1);
    lp_sampler_opts s = {.temperature = 1.0f, .top_p = 0.5f, .seed = 1};
    lp_rng r;
    lp_rng_seed(&r, 3);
    int counts[5] = {0};
    for (int i = 0; i < 2000; i++) {
        LP_ASSERT_OK(lp_sample_token(&tok, logits, 5, &s, &r));
        counts[tok]++;
    }
    /* p(1) ~ 0.45, p(2) ~ 0.41 of the full softmax: the 0.5 nucleus is {1, 2} */
    assert_int_equal(counts[0] + counts[3] + counts[4], 0);
    assert_true(counts[1] > 900 && counts[2] > 800);
    s.top_p = 1.0f;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 4000; i++) {
        LP_ASSERT_OK(lp_sample_token(&tok, logits, 5, &s, &r));
        counts[tok]++;
    }
    assert_true(counts[4] > 100 && counts[0] > 20); /* p ~ 0.06, 0.02 */
    assert_int_equal(lp_sample_token(&tok, logits, 5, &s, NULL), LP_ERR_INVALID_ARG);
}

/* stories260K -> HF directory -> load: same logits; llm.c save -> load: same params. */
static void test_convert_roundtrips(void **state)
{
    (void)state;
    const char *mp = lp_test_shared("data/models/stories260K/stories260K.bin");
    const char *gp = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!mp || !gp) { LP_SKIP("stories260K / gpt2-tiny not found (set LEANPROP_SHARED)"); }
    char tmpl[] = "/tmp/lp_tf_convXXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    lp_transformer *a, *b;
    LP_ASSERT_OK(lp_transformer_load(&a, mp));
    LP_ASSERT_OK(lp_transformer_save_hf(a, dir, NULL));
    LP_ASSERT_OK(lp_transformer_load(&b, dir));
    assert_int_equal(lp_transformer_n_params(a), lp_transformer_n_params(b));
    const lp_transformer_config *ca = lp_transformer_get_config(a), *cb = lp_transformer_get_config(b);
    assert_int_equal(ca->tie_word_embeddings, cb->tie_word_embeddings);
    assert_int_equal(ca->n_kv_heads, cb->n_kv_heads);
    assert_true(ca->norm_eps == cb->norm_eps && ca->rope_theta == cb->rope_theta);
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        assert_non_null(q);
        assert_memory_equal(p->data, q->data, (size_t)p->numel * sizeof(float));
    }
    lp_transformer_free(b);
    /* bf16 save converts on load (within bf16 rounding) */
    lp_transformer_save_opts so = {.dtype = "bf16"};
    LP_ASSERT_OK(lp_transformer_save_hf(a, dir, &so));
    LP_ASSERT_OK(lp_transformer_load(&b, dir));
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        lp_test_assert_allclose(q->data, p->data, (size_t)p->numel, 1e-30, 1.0 / 256, p->name);
    }
    lp_transformer_free(b);
    so.dtype = "f16";
    LP_ASSERT_OK(lp_transformer_save_hf(a, dir, &so));
    LP_ASSERT_OK(lp_transformer_load(&b, dir));
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        lp_test_assert_allclose(q->data, p->data, (size_t)p->numel, 1e-7, 1.0 / 1024, p->name);
    }
    lp_transformer_free(b);
    lp_transformer_free(a);

    /* llm.c */
    char gdir[4096], bin[4200];
    snprintf(gdir, sizeof gdir, "%s", gp);
    *strrchr(gdir, '/') = '\0';
    snprintf(bin, sizeof bin, "%s/gpt2.bin", dir);
    LP_ASSERT_OK(lp_transformer_load(&a, gdir));
    LP_ASSERT_OK(lp_llmc_save(a, bin));
    LP_ASSERT_OK(lp_transformer_load(&b, bin)); /* detected by magic */
    assert_int_equal(lp_transformer_get_config(b)->arch, LP_ARCH_GPT2);
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        assert_non_null(q);
        assert_memory_equal(p->data, q->data, (size_t)p->numel * sizeof(float));
    }
    lp_transformer_free(b);
    lp_transformer_free(a);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* llm.c version 5 (bf16) loads, converted within bf16 rounding. */
static void test_llmc_bf16(void **state)
{
    (void)state;
    const char *gp = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!gp) { LP_SKIP("gpt2-tiny not found (set LEANPROP_SHARED)"); }
    char gdir[4096], tmpl[] = "/tmp/lp_tf_bf16XXXXXX", bin[128];
    snprintf(gdir, sizeof gdir, "%s", gp);
    *strrchr(gdir, '/') = '\0';
    assert_non_null(mkdtemp(tmpl));
    snprintf(bin, sizeof bin, "%s/gpt2.bin", tmpl);
    lp_transformer *a, *b;
    LP_ASSERT_OK(lp_transformer_load(&a, gdir));
    LP_ASSERT_OK(lp_llmc_save(a, bin));
    /* rewrite the fp32 body as bf16 with version 5 */
    FILE *f = fopen(bin, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    ((int32_t *)buf)[1] = 5;
    long nv = (n - 1024) / 4;
    uint16_t *h = malloc((size_t)nv * 2);
    for (long i = 0; i < nv; i++) {
        float v;
        memcpy(&v, buf + 1024 + 4 * i, 4);
        h[i] = lp_f32_to_bf16(v);
    }
    f = fopen(bin, "wb");
    fwrite(buf, 1, 1024, f);
    fwrite(h, 2, (size_t)nv, f);
    fclose(f);
    LP_ASSERT_OK(lp_transformer_load(&b, bin));
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        lp_test_assert_allclose(q->data, p->data, (size_t)p->numel, 1e-30, 1.0 / 256, p->name);
    }
    free(buf);
    free(h);
    lp_transformer_free(a);
    lp_transformer_free(b);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k_greedy_story),
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_convert_roundtrips),
        cmocka_unit_test(test_llmc_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
