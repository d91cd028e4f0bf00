/* lp_ft_model: full fine-tuning setup, QLoRA forward close to full
 * precision, merge equals the unmerged forward (the method x TokenTune grid
 * is test_finetune_grid.c).
 *
 * Tolerances: merge (LoRA, and QLoRA dequantised) vs unmerged logits
 * |a - b| <= 1e-5 max|b| + 1e-5 |b| (fp32 reassociation). QLoRA (NF4, double
 * quantised, fixture adapter on llama-tiny): against an fp32 model whose
 * block weights are deq(NF4(W)) the same bound (the dequantising matmul is
 * exact up to fp32 rounding); against the fp32 model itself, NF4's own error
 * (up to 0.152 absmax of a 64-block per weight): relative logit error
 * max |a - b| / max |b| < 0.5, RMS < 0.3, loss within 1 % (measured values
 * are printed: about 0.33, 0.19 and 0.01 % on this random tiny model). */
#include "test_finetune_util.h"

#include "leanprop/nf4.h"


static lp_transformer *load_fixture(const char *name) { return ft_load_fixture(name); }

/* Full fine-tuning: every parameter trainable, gradient bytes exactly the
 * trainable floats; full_only restricts; a substring matching nothing fails. */
static void test_full(void **state)
{
    (void)state;
    size_t g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_transformer *m = load_fixture("gpt2-tiny");
    if (!m) { LP_SKIP("fixture gpt2-tiny not found (set LEANPROP_SHARED)"); }
    int64_t all = lp_transformer_count_params(m, 0);
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_FULL);
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    assert_int_equal(lp_ft_model_trainable_numel(f), all);
    assert_int_equal(lp_ft_model_n_trainable(f), lp_transformer_n_params(lp_ft_model_transformer(f)));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, (size_t)all * sizeof(float));
    lp_ft_tensor t = lp_ft_model_trainable(f, 0);
    assert_string_equal(t.name, "transformer.wte.weight");
    assert_int_equal(t.decay, 1);
    lp_ft_model_free(f);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);

    m = load_fixture("gpt2-tiny");
    s.full_only = "mlp.c_fc";
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    assert_int_equal(lp_ft_model_n_trainable(f), 4); /* 2 layers x weight, bias */
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, (size_t)lp_ft_model_trainable_numel(f) * sizeof(float));
    lp_ft_model_free(f);

    m = load_fixture("gpt2-tiny");
    s.full_only = "no_such_thing";
    assert_int_equal(lp_ft_model_new(&f, m, &s), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "no_such_thing"));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
}

static void test_method_names(void **state)
{
    (void)state;
    lp_ft_method m;
    for (int i = 0; i < LP_FT_METHOD_COUNT; i++) {
        LP_ASSERT_OK(lp_ft_method_parse(lp_ft_method_name((lp_ft_method)i), &m));
        assert_int_equal(m, i);
    }
    assert_int_equal(lp_ft_method_parse("dora", &m), LP_ERR_INVALID_ARG);
}


/* ------------------------------------------------------------ QLoRA vs fp32, merge */

static lp_ft_model *fixture_adapter_model(lp_ft_method method)
{
    const char *adir = ft_fixture_dir("llama-tiny-lora");
    lp_ft_setup s;
    LP_ASSERT_OK(lp_ft_setup_from_adapter(&s, method, adir));
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, load_fixture("llama-tiny"), &s));
    LP_ASSERT_OK(lp_ft_model_load_adapter(f, adir));
    return f;
}

static void test_qlora_close_to_fp32(void **state)
{
    (void)state;
    ft_batch d = {0};
    if (!ft_fixture_dir("llama-tiny-lora") || !ft_load_batch("llama-tiny", &d)) {
        LP_SKIP("fixtures llama-tiny / llama-tiny-lora not found (set LEANPROP_SHARED)");
    }
    lp_ft_model *lo = fixture_adapter_model(LP_FT_LORA);
    size_t w_lora = lp_mem_current(LP_MEM_WEIGHTS);
    lp_ft_model *q = fixture_adapter_model(LP_FT_QLORA);
    size_t w_qlora = lp_mem_current(LP_MEM_WEIGHTS) - w_lora;
    /* every block linear is NF4, adapted (q, v, gate, up, down) or not (k, o); lm_head stays fp32 */
    lp_transformer *qm = lp_ft_model_transformer(q);
    assert_null(lp_transformer_find_param(qm, "model.layers.1.self_attn.k_proj.weight")->data);
    assert_null(lp_transformer_find_param(qm, "model.layers.0.self_attn.o_proj.weight")->data);
    assert_null(lp_transformer_find_param(qm, "model.layers.0.mlp.up_proj.weight")->data);
    assert_non_null(lp_transformer_find_param(qm, "lm_head.weight")->data);
    assert_int_equal(lp_ft_model_n_trainable(q), 20);
    /* the exact counterpart: an fp32 LoRA model whose block weights are deq(NF4(W)) */
    lp_ft_model *dq = fixture_adapter_model(LP_FT_LORA);
    lp_transformer *dm = lp_ft_model_transformer(dq);
    for (int i = 0; i < lp_transformer_n_linears(dm); i++) {
        lp_nn_linear *l = lp_transformer_linear(dm, i);
        if (!strcmp(l->name, "lm_head")) continue;
        lp_nf4 *nf;
        LP_ASSERT_OK(lp_nf4_quantize(&nf, l->weight->data, l->out, l->in, 1));
        LP_ASSERT_OK(lp_nf4_dequantize(l->weight->data, nf));
        lp_nf4_free(nf);
    }
    int64_t n = d.B * d.T * 512;
    float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
    float *c = malloc((size_t)n * sizeof(float));
    float la = ft_eval_loss(lo, &d, a), lb = ft_eval_loss(q, &d, b), lc = ft_eval_loss(dq, &d, c);
    double rel_exact = ft_rel_err(b, c, n);
    double rel = ft_rel_err(b, a, n), e2 = 0, r2 = 0;
    for (int64_t k = 0; k < n; k++) {
        e2 += ((double)b[k] - a[k]) * ((double)b[k] - a[k]);
        r2 += (double)a[k] * a[k];
    }
    double rms = sqrt(e2 / r2);
    print_message("  QLoRA (llama-tiny + PEFT adapter, all 14 block linears NF4): vs fp32 weights deq(NF4(W)) "
                  "rel err %.2e, loss %.7f vs %.7f;\n  vs the fp32 model: logits max rel err %.4f, rms rel err %.4f, "
                  "loss %.5f vs %.5f; weights %zu vs %zu bytes\n",
                  rel_exact, lb, lc, rel, rms, lb, la, w_qlora, w_lora);
    lp_test_assert_allclose(b, c, (size_t)n, 1e-5 * ft_max_abs(c, n), 1e-5, "QLoRA vs deq(NF4) fp32 model");
    LP_ASSERT_CLOSE(lb, lc, 0, 1e-5, "QLoRA loss vs deq(NF4) fp32 model");
    assert_true(rel < 0.5);
    assert_true(rms < 0.3);
    LP_ASSERT_CLOSE(lb, la, 0, 0.01, "QLoRA loss vs fp32");
    assert_true(w_qlora < w_lora / 1.8);
    free(a);
    free(b);
    free(c);
    lp_ft_model_free(dq);
    lp_ft_model_free(q);
    lp_ft_model_free(lo);
    ft_free_batch(&d);
}

static void check_merge(lp_ft_model *f, const ft_batch *d, const char *what)
{
    int64_t V = lp_transformer_get_config(lp_ft_model_transformer(f))->vocab_size, n = d->B * d->T * V;
    float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)n * sizeof(float));
    float la = ft_eval_loss(f, d, a);
    size_t g0 = lp_mem_current(LP_MEM_GRADIENTS);
    int64_t nt = lp_ft_model_trainable_numel(f);
    LP_ASSERT_OK(lp_ft_model_merge(f));
    assert_int_equal(lp_ft_model_n_trainable(f), 0);
    assert_int_equal(g0 - lp_mem_current(LP_MEM_GRADIENTS), (size_t)nt * sizeof(float));
    lp_transformer *m = lp_ft_model_transformer(f);
    for (int i = 0; i < lp_transformer_n_linears(m); i++) {
        assert_null(lp_transformer_linear(m, i)->hooks);
        assert_non_null(lp_transformer_linear(m, i)->weight->data);
    }
    float lb = ft_eval_loss(f, d, b);
    double rel = ft_rel_err(b, a, n);
    print_message("  %s: merged vs unmerged logits rel err %.2e, loss %.7f vs %.7f\n", what, rel, lb, la);
    lp_test_assert_allclose(b, a, (size_t)n, 1e-5 * ft_max_abs(a, n), 1e-5, what);
    /* merged -> HF dir -> plain model: the same logits */
    char dir[] = "/tmp/lp_merge_XXXXXX";
    assert_non_null(mkdtemp(dir));
    LP_ASSERT_OK(lp_ft_model_save(f, dir));
    lp_transformer *r;
    LP_ASSERT_OK(lp_transformer_load(&r, dir));
    lp_transformer_batch bb = {.B = d->B, .T = d->T, .input_ids = d->ids, .attention_mask = d->mask};
    lp_transformer_forward_opts o = {.logits = a};
    LP_ASSERT_OK(lp_transformer_forward(r, &bb, &o, NULL));
    assert_memory_equal(a, b, (size_t)n * sizeof(float));
    lp_transformer_free(r);
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    remove(p);
    remove(dir);
    free(a);
    free(b);
}

static void test_merge(void **state)
{
    (void)state;
    ft_batch d = {0};
    if (!ft_fixture_dir("llama-tiny-lora") || !ft_load_batch("llama-tiny", &d)) {
        LP_SKIP("fixtures llama-tiny / llama-tiny-lora not found (set LEANPROP_SHARED)");
    }
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    lp_ft_model *f = fixture_adapter_model(LP_FT_LORA);
    check_merge(f, &d, "llama-tiny LoRA");
    lp_ft_model_free(f);
    f = fixture_adapter_model(LP_FT_QLORA);
    check_merge(f, &d, "llama-tiny QLoRA (dequantised)");
    /* after a QLoRA merge the weights are fp32 again: exactly the base model */
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS) - w0,
                     (size_t)lp_transformer_count_params(lp_ft_model_transformer(f), 0) * sizeof(float));
    assert_int_equal(lp_ft_model_load_adapter(f, ft_fixture_dir("llama-tiny-lora")), LP_ERR_INVALID_ARG);
    lp_ft_model_free(f);
    ft_free_batch(&d);

    /* GPT-2: Conv1D weights, every linear targeted, random B */
    if (!ft_load_batch("gpt2-tiny", &d)) { LP_SKIP("fixture gpt2-tiny not found"); }
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_LORA);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, "c_attn,c_proj,c_fc"));
    s.lora.init_lora_weights = LP_LORA_INIT_RANDOM;
    LP_ASSERT_OK(lp_ft_model_new(&f, load_fixture("gpt2-tiny"), &s));
    check_merge(f, &d, "gpt2-tiny LoRA");
    lp_ft_model_free(f);
    ft_free_batch(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_qlora_close_to_fp32),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
