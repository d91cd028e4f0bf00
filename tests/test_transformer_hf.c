/* Transformers against Hugging Face: the fixtures' logits, loss and every
 * parameter gradient (transformers, float64 references), TokenTune's
 * selected-row references, and save -> file equal tensor for tensor.
 *
 * Tolerances (fp32 against float64 references), per tensor:
 *   logits      |a - b| <= 2e-5 * max|b| + 1e-5 * |b|
 *   loss        relative 1e-5
 *   gradients   |a - b| <= 1e-4 * max|b| + 1e-4 * |b| + 1e-9 (the floor covers gradients that
 *               are 0 in theory, e.g. BERT's key bias: softmax ignores a per-row constant)
 */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/safetensors.h"
#include "leanprop/transformer.h"

static int32_t *load_i32(lp_safetensors *f, const char *name, int64_t *n_out)
{
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) return NULL;
    int64_t *tmp = malloc((size_t)t->numel * sizeof *tmp);
    int32_t *out = malloc((size_t)t->numel * sizeof *out);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, name, tmp, (size_t)t->numel));
    for (int64_t i = 0; i < t->numel; i++) out[i] = (int32_t)tmp[i];
    free(tmp);
    if (n_out) *n_out = t->numel;
    return out;
}

static float *load_f32(lp_safetensors *f, const char *name, int64_t *n_out)
{
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) fail_msg("reference tensor %s missing", name);
    float *out = malloc((size_t)t->numel * sizeof *out);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, name, out, (size_t)t->numel));
    if (n_out) *n_out = t->numel;
    return out;
}

static double max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* Scale-aware closeness: |a-b| <= atol_rel*max|b| + rtol*|b|. Returns the worst ratio. */
static double check_close(const float *a, const float *b, int64_t n, double atol_rel, double rtol, const char *what)
{
    double atol = atol_rel * max_abs(b, n) + 1e-9; /* floor: gradients that are exactly 0 in theory */
    double r = lp_test_close_ratio(a, b, (size_t)n, atol, rtol, NULL);
    lp_test_assert_allclose(a, b, (size_t)n, atol, rtol, what);
    return r;
}

/* Load the fixture dir, run forward+backward (optionally with the TokenTune
 * selection) and compare with reference.safetensors. */
static void run_fixture(const char *rel, int tokentune)
{
    char cfg_rel[256], ref_rel[256];
    snprintf(cfg_rel, sizeof cfg_rel, "fixtures/%s/config.json", rel);
    snprintf(ref_rel, sizeof ref_rel, "fixtures/%s/reference.safetensors", rel);
    const char *cfgp = lp_test_shared(cfg_rel);
    const char *refp = lp_test_shared(ref_rel);
    if (!cfgp || !refp) { LP_SKIP("fixture %s not found (set LEANPROP_SHARED)", rel); }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfgp);
    *strrchr(dir, '/') = '\0';

    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    const lp_transformer_config *c = lp_transformer_get_config(m);
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 1));
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, refp));

    int64_t n_ids;
    int32_t *ids = load_i32(ref, "input_ids", &n_ids);
    const lp_tensor_info *it = lp_safetensors_find(ref, "input_ids");
    int64_t B = it->shape[0], T = it->shape[1];
    int32_t *labels = load_i32(ref, "labels", NULL);
    int32_t *amask = load_i32(ref, "attention_mask", NULL);
    uint8_t *mask8 = NULL, *sel8 = NULL;
    if (amask) {
        mask8 = malloc((size_t)n_ids);
        for (int64_t i = 0; i < n_ids; i++) mask8[i] = (uint8_t)amask[i];
    }
    if (tokentune) {
        int32_t *sel = load_i32(ref, "tokentune_selected", NULL);
        assert_non_null(sel);
        sel8 = malloc((size_t)n_ids);
        for (int64_t i = 0; i < n_ids; i++) sel8[i] = (uint8_t)sel[i];
        free(sel);
    }
    int64_t R = 0;
    for (int64_t i = 0; i < n_ids; i++) R += sel8 ? sel8[i] : 1;
    int64_t out_cols = c->arch == LP_ARCH_BERT ? c->num_labels : c->vocab_size;
    int64_t out_rows = c->arch == LP_ARCH_BERT ? B : R;
    float *logits = calloc((size_t)(out_rows * out_cols), sizeof(float));
    lp_transformer_batch b = {.B = B, .T = T, .input_ids = ids, .labels = labels, .attention_mask = mask8,
                              .selected = sel8};
    lp_transformer_forward_opts o = {.need_grad = 1, .logits = logits};
    float loss;
    lp_transformer_zero_grad(m);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
    LP_ASSERT_OK(lp_transformer_backward(m));
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), 0);

    const char *pre = tokentune ? "tokentune." : "";
    char name[256];
    snprintf(name, sizeof name, "%sloss", pre);
    float *ref_loss = load_f32(ref, name, NULL);
    LP_ASSERT_CLOSE(loss, ref_loss[0], 0, 1e-5, name);

    /* logits: the reference has every row; compare the rows we produced */
    float *ref_logits = load_f32(ref, "logits", NULL);
    float *want = malloc((size_t)(out_rows * out_cols) * sizeof(float));
    int64_t r = 0;
    if (c->arch == LP_ARCH_BERT) {
        memcpy(want, ref_logits, (size_t)(out_rows * out_cols) * sizeof(float));
    } else {
        for (int64_t i = 0; i < n_ids; i++)
            if (!sel8 || sel8[i]) memcpy(want + (r++) * out_cols, ref_logits + i * out_cols, (size_t)out_cols * sizeof(float));
    }
    double worst_logit = check_close(logits, want, out_rows * out_cols, 2e-5, 1e-5, "logits");

    double worst_grad = 0;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        snprintf(name, sizeof name, "%sgrad.%s", pre, p->name);
        int64_t n;
        float *g_ref = load_f32(ref, name, &n);
        assert_int_equal(n, p->numel);
        float *g = malloc((size_t)n * sizeof(float));
        LP_ASSERT_OK(lp_param_copy_hf(p, g, 1));
        double w = check_close(g, g_ref, n, 1e-4, 1e-4, name);
        if (w > worst_grad) worst_grad = w;
        free(g);
        free(g_ref);
    }
    print_message("  %s%s: loss %.7f (ref %.7f), worst logit ratio %.3f, worst grad ratio %.3f (<= 1 passes)\n", rel,
                  tokentune ? " tokentune" : "", loss, ref_loss[0], worst_logit, worst_grad);
    free(want);
    free(ref_logits);
    free(ref_loss);
    free(logits);
    free(ids);
    free(labels);
    free(amask);
    free(mask8);
    free(sel8);
    lp_safetensors_close(ref);
    lp_transformer_free(m);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
}

static void test_gpt2_matches_hf(void **state) { (void)state; run_fixture("gpt2-tiny", 0); }
static void test_llama_matches_hf(void **state) { (void)state; run_fixture("llama-tiny", 0); }
static void test_bert_matches_hf(void **state) { (void)state; run_fixture("bert-tiny-cls", 0); }
static void test_gpt2_tokentune_matches_reference(void **state) { (void)state; run_fixture("gpt2-tiny", 1); }
static void test_llama_tokentune_matches_reference(void **state) { (void)state; run_fixture("llama-tiny", 1); }

/* Save the loaded model and compare the written file with the original,
 * tensor for tensor (names, dtypes, shapes, bytes); then reload it. */
static void save_roundtrip(const char *rel, size_t shard_bytes)
{
    char cfg_rel[256];
    snprintf(cfg_rel, sizeof cfg_rel, "fixtures/%s/model.safetensors", rel);
    const char *orig = lp_test_shared(cfg_rel);
    if (!orig) { LP_SKIP("fixture %s not found (set LEANPROP_SHARED)", rel); }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", orig);
    *strrchr(dir, '/') = '\0';
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    char tmpl[] = "/tmp/lp_tf_saveXXXXXX";
    char *out = mkdtemp(tmpl);
    assert_non_null(out);
    lp_transformer_save_opts so = {.dtype = "f32", .max_shard_bytes = shard_bytes};
    LP_ASSERT_OK(lp_transformer_save_hf(m, out, &so));

    lp_safetensors *a;
    LP_ASSERT_OK(lp_safetensors_open(&a, orig));
    char path[4200];
    if (!shard_bytes) {
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        lp_safetensors *bfile;
        LP_ASSERT_OK(lp_safetensors_open(&bfile, path));
        assert_int_equal(lp_safetensors_count(a), lp_safetensors_count(bfile));
        for (int i = 0; i < lp_safetensors_count(a); i++) {
            const lp_tensor_info *ta = lp_safetensors_at(a, i);
            const lp_tensor_info *tb = lp_safetensors_find(bfile, ta->name);
            if (!tb) fail_msg("saved file lacks %s", ta->name);
            assert_int_equal(ta->dtype, tb->dtype);
            assert_int_equal(ta->ndim, tb->ndim);
            for (int d = 0; d < ta->ndim; d++) assert_int_equal(ta->shape[d], tb->shape[d]);
            assert_int_equal(ta->nbytes, tb->nbytes);
            if (memcmp(ta->data, tb->data, ta->nbytes)) fail_msg("tensor %s differs after save", ta->name);
        }
        lp_safetensors_close(bfile);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
        assert_int_equal(access(path, R_OK), 0);
    }
    /* reload (sharded or not) and compare every parameter exactly */
    lp_transformer *m2;
    LP_ASSERT_OK(lp_transformer_load(&m2, out));
    assert_int_equal(lp_transformer_n_params(m), lp_transformer_n_params(m2));
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i), *q = lp_transformer_find_param(m2, p->name);
        assert_non_null(q);
        assert_int_equal(p->numel, q->numel);
        assert_memory_equal(p->data, q->data, (size_t)p->numel * sizeof(float));
    }
    lp_transformer_free(m2);
    lp_safetensors_close(a);
    lp_transformer_free(m);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    assert_int_equal(system(cmd), 0);
}

/* A base-model checkpoint (OpenAI's gpt2 on the Hub: names without
 * "transformer.", plus attn.bias buffers) loads into the LM-head model. */
static void test_gpt2_base_names_load(void **state)
{
    (void)state;
    const char *orig = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    const char *cfg = lp_test_shared("fixtures/gpt2-tiny/config.json");
    if (!orig || !cfg) { LP_SKIP("gpt2-tiny not found (set LEANPROP_SHARED)"); }
    char tmpl[] = "/tmp/lp_tf_baseXXXXXX", path[256];
    assert_non_null(mkdtemp(tmpl));
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, orig));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    static char names[64][128];
    float mask_buf[64] = {0};
    int64_t mshape[4] = {1, 1, 8, 8};
    for (int i = 0; i < lp_safetensors_count(f); i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i);
        snprintf(names[i], sizeof names[i], "%s", t->name + strlen("transformer."));
        LP_ASSERT_OK(lp_safetensors_writer_add(w, names[i], t->dtype, t->data, t->shape, t->ndim));
    }
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "h.0.attn.bias", mask_buf, mshape, 4));
    snprintf(path, sizeof path, "%s/model.safetensors", tmpl);
    LP_ASSERT_OK(lp_safetensors_writer_save(w, path));
    lp_safetensors_writer_free(w);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/config.json'", cfg, tmpl);
    assert_int_equal(system(cmd), 0);
    lp_transformer *a, *b;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", orig);
    *strrchr(dir, '/') = '\0';
    LP_ASSERT_OK(lp_transformer_load(&a, dir));
    LP_ASSERT_OK(lp_transformer_load(&b, tmpl));
    for (int i = 0; i < lp_transformer_n_params(a); i++) {
        lp_param *p = lp_transformer_param(a, i), *q = lp_transformer_find_param(b, p->name);
        assert_non_null(q);
        assert_memory_equal(p->data, q->data, (size_t)p->numel * sizeof(float));
    }
    lp_transformer_free(a);
    lp_transformer_free(b);
    lp_safetensors_close(f);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
}

static void test_save_gpt2_equals_original(void **state) { (void)state; save_roundtrip("gpt2-tiny", 0); }
static void test_save_llama_equals_original(void **state) { (void)state; save_roundtrip("llama-tiny", 0); }
static void test_save_bert_equals_original(void **state) { (void)state; save_roundtrip("bert-tiny-cls", 0); }
static void test_save_sharded_reloads(void **state) { (void)state; save_roundtrip("llama-tiny", 100000); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_matches_hf),
        cmocka_unit_test(test_llama_matches_hf),
        cmocka_unit_test(test_bert_matches_hf),
        cmocka_unit_test(test_gpt2_tokentune_matches_reference),
        cmocka_unit_test(test_llama_tokentune_matches_reference),
        cmocka_unit_test(test_gpt2_base_names_load),
        cmocka_unit_test(test_save_gpt2_equals_original),
        cmocka_unit_test(test_save_llama_equals_original),
        cmocka_unit_test(test_save_bert_equals_original),
        cmocka_unit_test(test_save_sharded_reloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
