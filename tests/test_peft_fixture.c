/* PEFT's own LoRA adapter on llama-tiny (fixtures/llama-tiny-lora, written by
 * PEFT 0.21 with float64 references) loaded through lp_ft_model: logits, loss
 * and every adapter gradient match; our saved adapter reloads identically and
 * reads back through the independent lp_peft_load; mismatching adapters fail.
 *
 * Tolerances (fp32 against float64 references), per tensor:
 *   logits     |a - b| <= 2e-5 * max|b| + 1e-5 * |b|
 *   loss       relative 1e-5
 *   gradients  |a - b| <= 1e-4 * max|b| + 1e-4 * |b|
 */
#include "test_finetune_util.h"

#include <unistd.h>

#include "leanprop/peft.h"

typedef struct {
    lp_safetensors *ref;
    int32_t *ids, *labels;
    int64_t B, T;
} fixture_ref;

static int open_ref(fixture_ref *r)
{
    const char *dir = ft_fixture_dir("llama-tiny-lora");
    if (!dir || !ft_fixture_dir("llama-tiny")) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    LP_ASSERT_OK(lp_safetensors_open(&r->ref, path));
    int64_t n;
    r->ids = ft_ref_i32(r->ref, "input_ids", &n);
    r->labels = ft_ref_i32(r->ref, "labels", NULL);
    const lp_tensor_info *t = lp_safetensors_find(r->ref, "input_ids");
    r->B = t->shape[0];
    r->T = t->shape[1];
    return 1;
}

static void close_ref(fixture_ref *r)
{
    free(r->ids);
    free(r->labels);
    lp_safetensors_close(r->ref);
}

static lp_ft_model *load_with_adapter(lp_ft_method method, const char *adapter_dir)
{
    lp_ft_setup s;
    LP_ASSERT_OK(lp_ft_setup_from_adapter(&s, method, adapter_dir));
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, ft_load_fixture("llama-tiny"), &s));
    LP_ASSERT_OK(lp_ft_model_load_adapter(f, adapter_dir));
    return f;
}

/* forward (+ backward) on the fixture batch; logits (B*T, V) */
static float run(lp_ft_model *f, const fixture_ref *r, float *logits, int backward)
{
    lp_transformer_batch b = {.B = r->B, .T = r->T, .input_ids = r->ids, .labels = r->labels};
    lp_transformer_forward_opts o = {.need_grad = backward, .logits = logits};
    float loss;
    lp_ft_model_zero_grad(f);
    LP_ASSERT_OK(lp_transformer_forward(lp_ft_model_transformer(f), &b, &o, &loss));
    if (backward) LP_ASSERT_OK(lp_transformer_backward(lp_ft_model_transformer(f)));
    return loss;
}

static void test_fixture_logits_loss_grads(void **state)
{
    (void)state;
    fixture_ref r;
    if (!open_ref(&r)) { LP_SKIP("fixtures llama-tiny / llama-tiny-lora not found (set LEANPROP_SHARED)"); }
    size_t g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_ft_model *f = load_with_adapter(LP_FT_LORA, ft_fixture_dir("llama-tiny-lora"));
    const lp_ft_setup *s = lp_ft_model_setup(f);
    assert_int_equal(s->lora.r, 4);
    assert_true(s->lora.alpha == 8.0f);
    assert_true(s->lora.dropout == 0.0f);
    /* 2 layers x 5 modules x (A, B), gradients only for them */
    assert_int_equal(lp_ft_model_n_trainable(f), 20);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, (size_t)lp_ft_model_trainable_numel(f) * sizeof(float));
    int64_t V = lp_transformer_get_config(lp_ft_model_transformer(f))->vocab_size, n = r.B * r.T * V;
    float *logits = malloc((size_t)n * sizeof(float));
    float loss = run(f, &r, logits, 1);
    float *ref_loss = ft_ref_f32(r.ref, "loss", NULL), *ref_logits = ft_ref_f32(r.ref, "logits", NULL);
    LP_ASSERT_CLOSE(loss, ref_loss[0], 0, 1e-5, "loss");
    lp_test_assert_allclose(logits, ref_logits, (size_t)n, 2e-5 * ft_max_abs(ref_logits, n), 1e-5, "logits");
    double worst = 0;
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        char name[512];
        snprintf(name, sizeof name, "grad.%s", t.name);
        int64_t ng;
        float *g = ft_ref_f32(r.ref, name, &ng);
        if (!g) fail_msg("reference %s missing", name);
        assert_int_equal(ng, t.numel);
        double atol = 1e-4 * ft_max_abs(g, ng);
        worst = fmax(worst, lp_test_close_ratio(t.grad, g, (size_t)ng, atol, 1e-4, NULL));
        lp_test_assert_allclose(t.grad, g, (size_t)ng, atol, 1e-4, name);
        free(g);
    }
    print_message("  PEFT fixture: loss %.7f (ref %.7f), logits rel err %.2e, worst grad ratio %.3f\n", loss,
                  ref_loss[0], ft_rel_err(logits, ref_logits, n), worst);
    free(ref_loss);
    free(ref_logits);
    free(logits);
    lp_ft_model_free(f);
    close_ref(&r);
}

static char *temp_dir(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "/tmp/lp_peft_fixture_XXXXXX");
    assert_non_null(mkdtemp(buf));
    return buf;
}

static void remove_dir(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, LP_PEFT_CONFIG_NAME);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, LP_PEFT_WEIGHTS_NAME);
    unlink(p);
    rmdir(dir);
}

/* Save ours, reload: bit-identical adapters and logits; the independent
 * lp_peft_load reads the files in PEFT's naming. */
static void test_save_reload(void **state)
{
    (void)state;
    fixture_ref r;
    if (!open_ref(&r)) { LP_SKIP("fixtures llama-tiny / llama-tiny-lora not found (set LEANPROP_SHARED)"); }
    lp_ft_model *f = load_with_adapter(LP_FT_LORA, ft_fixture_dir("llama-tiny-lora"));
    /* move the adapters away from the file's values: one AdamW-free step by hand */
    float *logits = NULL;
    run(f, &r, NULL, 1);
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        for (int64_t k = 0; k < t.numel; k++) t.data[k] -= 0.5f * t.grad[k];
    }
    int64_t V = lp_transformer_get_config(lp_ft_model_transformer(f))->vocab_size, n = r.B * r.T * V;
    logits = malloc((size_t)n * sizeof(float));
    float *logits2 = malloc((size_t)n * sizeof(float));
    float l1 = run(f, &r, logits, 0);
    char *dir = temp_dir();
    LP_ASSERT_OK(lp_ft_model_save(f, dir));
    lp_ft_model *g = load_with_adapter(LP_FT_LORA, dir);
    float l2 = run(g, &r, logits2, 0);
    assert_true(l1 == l2);
    assert_memory_equal(logits, logits2, (size_t)n * sizeof(float));
    assert_int_equal(lp_ft_model_n_trainable(g), lp_ft_model_n_trainable(f));
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor a = lp_ft_model_trainable(f, i), b = lp_ft_model_trainable(g, i);
        assert_string_equal(a.name, b.name);
        assert_memory_equal(a.data, b.data, (size_t)a.numel * sizeof(float));
    }
    /* PEFT's format, read by the plain PEFT reader */
    lp_peft_adapter *pa;
    LP_ASSERT_OK(lp_peft_load(&pa, dir, 0));
    assert_int_equal(pa->n, 10);
    assert_int_equal(pa->config.r, 4);
    assert_true(pa->config.alpha == 8.0f);
    lp_lora *L = lp_peft_find(pa, "model.layers.1.mlp.down_proj");
    assert_non_null(L);
    lp_ft_tensor a = {0};
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++)
        if (!strcmp(lp_ft_model_trainable(f, i).name, "base_model.model.model.layers.1.mlp.down_proj.lora_B.default.weight"))
            a = lp_ft_model_trainable(f, i);
    assert_non_null(a.data);
    assert_memory_equal(L->B, a.data, (size_t)a.numel * sizeof(float));
    lp_peft_free(pa);
    lp_ft_model_free(g);
    lp_ft_model_free(f);
    remove_dir(dir);
    free(logits);
    free(logits2);
    close_ref(&r);
}

/* A model with other targets or another rank refuses the fixture adapter,
 * naming the module; a LoRA target matching nothing is an error naming it. */
static void test_mismatch_errors(void **state)
{
    (void)state;
    const char *adir = ft_fixture_dir("llama-tiny-lora");
    if (!adir || !ft_fixture_dir("llama-tiny")) { LP_SKIP("fixtures not found (set LEANPROP_SHARED)"); }
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_LORA);
    s.lora.r = 4;
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, "q_proj,v_proj"));
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, ft_load_fixture("llama-tiny"), &s));
    assert_int_equal(lp_ft_model_load_adapter(f, adir), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "mlp.gate_proj"));
    lp_ft_model_free(f);

    LP_ASSERT_OK(lp_ft_setup_from_adapter(&s, LP_FT_LORA, adir));
    s.lora.r = 8;
    LP_ASSERT_OK(lp_ft_model_new(&f, ft_load_fixture("llama-tiny"), &s));
    assert_int_equal(lp_ft_model_load_adapter(f, adir), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "rank 4"));
    lp_ft_model_free(f);

    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_ft_setup_default(&s, LP_FT_QLORA);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, "q_proj,c_attn"));
    assert_int_equal(lp_ft_model_new(&f, ft_load_fixture("llama-tiny"), &s), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "\"c_attn\""));
    assert_null(f);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_logits_loss_grads),
        cmocka_unit_test(test_save_reload),
        cmocka_unit_test(test_mismatch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
