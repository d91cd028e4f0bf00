/* Bad input to the model loaders: one test per failure class, each checking
 * the status and that the message names the file and the tensor (or key). */
#include "util/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/safetensors.h"
#include "leanprop/transformer.h"

static char g_tmp[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/lp_tf_badXXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_error(lp_status got, lp_status want, const char *must1, const char *must2)
{
    const char *msg = lp_error_message();
    if (got != want) fail_msg("status %s, want %s (%s)", lp_status_name(got), lp_status_name(want), msg);
    if (must1 && !strstr(msg, must1)) fail_msg("message \"%s\" does not name \"%s\"", msg, must1);
    if (must2 && !strstr(msg, must2)) fail_msg("message \"%s\" does not name \"%s\"", msg, must2);
    print_message("  ok: %s\n", msg);
}

static void copy_prefix(const char *src, const char *dst, long n)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    long left = n;
    while (left != 0) {
        size_t want = left < 0 || left > (long)sizeof buf ? sizeof buf : (size_t)left;
        size_t got = fread(buf, 1, want, in);
        if (got == 0) break;
        fwrite(buf, 1, got, out);
        if (left > 0) left -= (long)got;
    }
    fclose(in);
    fclose(out);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

/* A copy of fixture dir `rel` under g_tmp/name with config.json replaced
 * (config NULL: copied) and, when skip != NULL, tensor `skip` left out. */
static const char *make_dir(const char *rel, const char *name, const char *config, const char *skip)
{
    static char dir[256];
    char src[256], p[512];
    snprintf(src, sizeof src, "fixtures/%s/model.safetensors", rel);
    const char *sp = lp_test_shared(src);
    if (!sp) return NULL;
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (config) {
        write_text(p, config);
    } else {
        char cp[256];
        snprintf(cp, sizeof cp, "fixtures/%s/config.json", rel);
        copy_prefix(lp_test_shared(cp), p, -1);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!skip) {
        copy_prefix(sp, p, -1);
        return dir;
    }
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, sp));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    for (int i = 0; i < lp_safetensors_count(f); i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i);
        if (!strcmp(t->name, skip)) continue;
        LP_ASSERT_OK(lp_safetensors_writer_add(w, t->name, t->dtype, t->data, t->shape, t->ndim));
    }
    LP_ASSERT_OK(lp_safetensors_writer_save(w, p));
    lp_safetensors_writer_free(w);
    lp_safetensors_close(f);
    return dir;
}

static void test_truncated_llama2c(void **state)
{
    (void)state;
    const char *mp = lp_test_shared("data/models/stories260K/stories260K.bin");
    if (!mp) { LP_SKIP("stories260K not found (set LEANPROP_SHARED)"); }
    char p[256];
    snprintf(p, sizeof p, "%s/short.bin", g_tmp);
    /* header 28 bytes + embedding 512*64*4 + rms_att 5*64*4 + part of wq */
    copy_prefix(mp, p, 28 + 512 * 64 * 4 + 5 * 64 * 4 + 1000);
    lp_transformer *m = NULL;
    expect_error(lp_transformer_load(&m, p), LP_ERR_FORMAT, "short.bin", "tensor wq");
    assert_null(m);
    copy_prefix(mp, p, 20);
    expect_error(lp_llama2c_load(&m, p), LP_ERR_FORMAT, "short.bin", "header");
}

static void test_corrupt_header_llama2c(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/bad.bin", g_tmp);
    int32_t h[7] = {64, 172, 5, 8, 4, 512, 512};
    h[0] = -64;
    FILE *f = fopen(p, "wb");
    fwrite(h, 4, 7, f);
    fclose(f);
    lp_transformer *m = NULL;
    expect_error(lp_llama2c_load(&m, p), LP_ERR_FORMAT, "bad.bin", "dim");
    h[0] = 64;
    h[4] = 3; /* 8 heads not a multiple of 3 kv heads */
    f = fopen(p, "wb");
    fwrite(h, 4, 7, f);
    fclose(f);
    expect_error(lp_llama2c_load(&m, p), LP_ERR_FORMAT, "bad.bin", "n_kv_heads");
}

static void test_truncated_and_corrupt_llmc(void **state)
{
    (void)state;
    const char *cfg = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!cfg) { LP_SKIP("gpt2-tiny not found (set LEANPROP_SHARED)"); }
    char dir[256], full[256], p[256];
    snprintf(dir, sizeof dir, "%s", cfg);
    *strrchr(dir, '/') = '\0';
    lp_transformer *m = NULL;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    snprintf(full, sizeof full, "%s/gpt2.bin", g_tmp);
    LP_ASSERT_OK(lp_llmc_save(m, full));
    lp_transformer_free(m);
    m = NULL;
    snprintf(p, sizeof p, "%s/gpt2_short.bin", g_tmp);
    /* header, wte (1024 padded rows x 64), wpe (64x64), then into ln1w */
    copy_prefix(full, p, 1024 + 1024 * 64 * 4 + 64 * 64 * 4 + 100);
    expect_error(lp_transformer_load(&m, p), LP_ERR_FORMAT, "gpt2_short.bin", "tensor ln1w");
    /* wrong version */
    char *bytes = read_text(full);
    ((int32_t *)bytes)[1] = 7;
    FILE *f = fopen(p, "wb");
    fwrite(bytes, 1, 1024, f);
    fclose(f);
    expect_error(lp_llmc_load(&m, p), LP_ERR_UNSUPPORTED, "gpt2_short.bin", "version 7");
    ((int32_t *)bytes)[1] = 3;
    ((int32_t *)bytes)[7] = 10; /* padded vocab < vocab */
    f = fopen(p, "wb");
    fwrite(bytes, 1, 1024, f);
    fclose(f);
    expect_error(lp_llmc_load(&m, p), LP_ERR_FORMAT, "gpt2_short.bin", "padded_vocab_size");
    free(bytes);
}

static void test_truncated_safetensors(void **state)
{
    (void)state;
    const char *dir = make_dir("llama-tiny", "trunc", NULL, NULL);
    if (!dir) { LP_SKIP("llama-tiny not found (set LEANPROP_SHARED)"); }
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    snprintf(q, sizeof q, "%s/model.full", dir);
    rename(p, q);
    copy_prefix(q, p, 300000);
    lp_transformer *m = NULL;
    expect_error(lp_transformer_load(&m, dir), LP_ERR_FORMAT, "model.safetensors", NULL);
    assert_null(m);
}

static void test_missing_tensor(void **state)
{
    (void)state;
    const char *dir = make_dir("llama-tiny", "missing", NULL, "model.layers.1.mlp.up_proj.weight");
    if (!dir) { LP_SKIP("llama-tiny not found (set LEANPROP_SHARED)"); }
    lp_transformer *m = NULL;
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_NOT_FOUND, "model.safetensors", "model.layers.1.mlp.up_proj.weight");
    assert_null(m);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0); /* nothing leaked */
    /* no weights at all */
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_NOT_FOUND, "missing", "model.safetensors");
}

static void test_config_contradicts_tensors(void **state)
{
    (void)state;
    const char *cp = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!cp) { LP_SKIP("gpt2-tiny not found (set LEANPROP_SHARED)"); }
    char *cfg = read_text(cp);
    char *at = strstr(cfg, "\"n_embd\": 64");
    assert_non_null(at);
    memcpy(at, "\"n_embd\": 32", 12);
    const char *dir = make_dir("gpt2-tiny", "contradict", cfg, NULL);
    lp_transformer *m = NULL;
    expect_error(lp_transformer_load(&m, dir), LP_ERR_FORMAT, "transformer.wte.weight", "config.json");
    assert_null(m);
    free(cfg);
    /* n_layer larger than the file: a missing tensor of layer 2 */
    cfg = read_text(cp);
    at = strstr(cfg, "\"n_layer\": 2");
    assert_non_null(at);
    memcpy(at, "\"n_layer\": 3", 12);
    dir = make_dir("gpt2-tiny", "contradict2", cfg, NULL);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_NOT_FOUND, "model.safetensors", "transformer.h.2.");
    free(cfg);
    /* num_key_value_heads that does not divide the heads: a config error naming the file */
    const char *lp = lp_test_shared("fixtures/llama-tiny/config.json");
    cfg = read_text(lp);
    at = strstr(cfg, "\"num_key_value_heads\": 4");
    assert_non_null(at);
    memcpy(at, "\"num_key_value_heads\": 3", 24);
    dir = make_dir("llama-tiny", "contradict3", cfg, NULL);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_FORMAT, "config.json", "n_kv_heads");
    free(cfg);
}

static void test_unknown_architecture(void **state)
{
    (void)state;
    const char *dir = make_dir("gpt2-tiny", "mamba", "{\"model_type\": \"mamba\", \"vocab_size\": 1000}", NULL);
    if (!dir) { LP_SKIP("gpt2-tiny not found (set LEANPROP_SHARED)"); }
    lp_transformer *m = NULL;
    expect_error(lp_transformer_load(&m, dir), LP_ERR_UNSUPPORTED, "config.json", "mamba");
    dir = make_dir("gpt2-tiny", "rope", "{\"model_type\": \"llama\", \"vocab_size\": 512, \"hidden_size\": 64, "
                                        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"intermediate_size\": 172,"
                                        " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}", NULL);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_UNSUPPORTED, "config.json", "yarn");
    dir = make_dir("gpt2-tiny", "notjson", "{\"model_type\": ", NULL);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_FORMAT, "config.json", "JSON");
    dir = make_dir("gpt2-tiny", "badint", "{\"model_type\": \"gpt2\", \"vocab_size\": 1000, \"n_embd\": \"64\", "
                                          "\"n_layer\": 2, \"n_head\": 4}", NULL);
    expect_error(lp_transformer_load(&m, dir), LP_ERR_FORMAT, "config.json", "n_embd");
    assert_null(m);
}

static void test_bad_batch(void **state)
{
    (void)state;
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_GPT2);
    c.vocab_size = 10;
    c.hidden_size = 8;
    c.n_layers = 1;
    c.n_heads = c.n_kv_heads = 2;
    c.head_dim = 4;
    c.intermediate_size = 16;
    c.max_positions = 4;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    int32_t ids[6] = {1, 2, 3, 10, 0, 0}, labels[6] = {1, 2, 3, 4, 5, 77};
    lp_transformer_batch b = {.B = 1, .T = 4, .input_ids = ids};
    expect_error(lp_transformer_forward(m, &b, NULL, NULL), LP_ERR_INVALID_ARG, "input_ids[3]", NULL);
    ids[3] = 4;
    b.T = 6;
    expect_error(lp_transformer_forward(m, &b, NULL, NULL), LP_ERR_INVALID_ARG, "T = 6", "positions");
    b.T = 3;
    b.input_ids = ids + 3;
    b.labels = labels + 3;
    expect_error(lp_transformer_forward(m, &b, NULL, NULL), LP_ERR_INVALID_ARG, "labels", "77");
    uint8_t none[3] = {0, 0, 0};
    b.labels = NULL;
    b.selected = none;
    expect_error(lp_transformer_forward(m, &b, NULL, NULL), LP_ERR_INVALID_ARG, "no row selected", NULL);
    lp_transformer_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_llama2c),
        cmocka_unit_test(test_corrupt_header_llama2c),
        cmocka_unit_test(test_truncated_and_corrupt_llmc),
        cmocka_unit_test(test_truncated_safetensors),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_config_contradicts_tensors),
        cmocka_unit_test(test_unknown_architecture),
        cmocka_unit_test(test_bad_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
