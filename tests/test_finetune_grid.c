/* The grid: every combination of {full, LoRA, QLoRA} x {TokenTune off,
 * k = 4, r = 0.5} on gpt2-tiny, llama-tiny and bert-tiny-cls, all linear
 * maps of the blocks targeted, LoRA dropout 0.05 active. Checked per
 * combination: loss finite; gradient buffers exactly for the trainable
 * tensors (lp_mem_current(LP_MEM_GRADIENTS) == 4 x trainable floats, no
 * buffer on any frozen parameter); QLoRA: every block linear NF4 and the
 * weights memory exactly fp32 rest + NF4 + adapters; every trainable tensor
 * gets a non-zero finite gradient (BERT's key bias excepted: 0 in theory);
 * 6 AdamW steps on the fixture batch (selection redrawn each step) reduce
 * its exact (unselected, eval) loss; everything freed afterwards. */
#include "test_finetune_util.h"

#include "leanprop/kernels/optim.h"
#include "leanprop/nf4.h"
#include "leanprop/tokenselect.h"

/* Bytes the weights must take: fp32 parameters that still have data, NF4 for
 * those that do not, and the adapters. */
static size_t expected_weight_bytes(lp_ft_model *f, int *n_nf4)
{
    lp_transformer *m = lp_ft_model_transformer(f);
    size_t w = 0;
    *n_nf4 = 0;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        if (p->data) w += (size_t)p->numel * sizeof(float);
    }
    for (int i = 0; i < lp_transformer_n_linears(m); i++) {
        lp_nn_linear *l = lp_transformer_linear(m, i);
        if (l->weight->data) continue;
        w += lp_nf4_bytes_for(l->out, l->in, 1);
        (*n_nf4)++;
    }
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        if (strstr(t.name, ".lora_")) w += (size_t)t.numel * sizeof(float);
    }
    return w;
}

static void run_combo(const char *name, const ft_batch *d, lp_ft_method method, const char *tokens)
{
    char what[128];
    snprintf(what, sizeof what, "%s %s tokens=%s", name, lp_ft_method_name(method), tokens);
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    size_t a0 = lp_mem_current(LP_MEM_ACTIVATIONS), o0 = lp_mem_current(LP_MEM_OPTIMIZER);
    lp_transformer *m = ft_load_fixture(name);
    const lp_transformer_config *c = lp_transformer_get_config(m);
    int64_t n_params = lp_transformer_count_params(m, 0);
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, lp_lora_targets_for(c->model_type, 1)));
    s.lora.r = 4;
    s.lora.init_lora_weights = LP_LORA_INIT_RANDOM; /* B != 0: both A and B get gradients at once */
    s.lora.seed = 5;
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    m = lp_ft_model_transformer(f);
    c = lp_transformer_get_config(m);
    /* gradients exactly for the trainable tensors */
    int64_t nt = lp_ft_model_trainable_numel(f);
    if (lp_mem_current(LP_MEM_GRADIENTS) - g0 != (size_t)nt * sizeof(float))
        fail_msg("%s: gradient bytes %zu, trainable %lld floats", what, lp_mem_current(LP_MEM_GRADIENTS) - g0,
                 (long long)nt);
    int64_t n_lora = 0, n_head = 0;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        int head = c->arch == LP_ARCH_BERT && !strncmp(p->name, "classifier.", 11);
        if (method == LP_FT_FULL) {
            if (!p->grad) fail_msg("%s: %s has no gradient", what, p->name);
        } else if (head) {
            if (!p->grad) fail_msg("%s: head %s not trained", what, p->name);
            n_head += p->numel;
        } else if (p->grad) {
            fail_msg("%s: frozen %s has a gradient buffer", what, p->name);
        }
    }
    if (method == LP_FT_FULL) {
        assert_int_equal(nt, n_params);
    } else {
        for (int i = 0; i < lp_transformer_n_linears(m); i++) {
            lp_nn_linear *l = lp_transformer_linear(m, i);
            int targeted = l->hooks != NULL;
            int is_head = !strcmp(l->name, "lm_head") || !strcmp(l->name, "classifier");
            if (targeted == is_head) fail_msg("%s: linear %s %s", what, l->name, targeted ? "adapted" : "not adapted");
            if (targeted) n_lora += (int64_t)s.lora.r * (l->in + l->out);
            if (method == LP_FT_QLORA && targeted && l->weight->data)
                fail_msg("%s: %s still has fp32 weights", what, l->name);
        }
        assert_int_equal(nt, n_lora + n_head);
    }
    int n_nf4;
    size_t wexp = expected_weight_bytes(f, &n_nf4);
    if (lp_mem_current(LP_MEM_WEIGHTS) - w0 != wexp)
        fail_msg("%s: weights %zu bytes, expected %zu", what, lp_mem_current(LP_MEM_WEIGHTS) - w0, wexp);
    assert_true(method == LP_FT_QLORA ? n_nf4 > 0 : n_nf4 == 0);
    if (method == LP_FT_QLORA) assert_true(wexp < (size_t)n_params * sizeof(float));

    /* TokenTune selection */
    lp_tokenselect_config tc = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&tc, tokens));
    tc.encoder = c->arch == LP_ARCH_BERT;
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, (int32_t)d->B, (int32_t)d->T));
    lp_adam_config ac = lp_adamw_defaults();
    ac.lr = method == LP_FT_FULL || c->arch == LP_ARCH_BERT ? 1e-3f : 1e-2f;
    ac.weight_decay = 0;
    lp_adam *opt;
    LP_ASSERT_OK(lp_adam_new(&opt, nt, &ac));
    float loss0 = ft_eval_loss(f, d, NULL);
    assert_true(isfinite(loss0));
    for (int step = 0; step < 6; step++) {
        lp_rng r;
        lp_tokenselect_rng_for_step(&r, 17, step);
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &tc, (int32_t)d->B, (int32_t)d->T, d->lens,
                                           d->cls ? NULL : d->labels, &r));
        lp_transformer_batch b = {.B = d->B, .T = d->T, .input_ids = d->ids, .labels = d->labels,
                                  .attention_mask = d->mask, .selected = tc.mode == LP_TOKENSELECT_ALL ? NULL : sel.mask};
        lp_transformer_forward_opts o = {.need_grad = 1};
        float loss;
        lp_ft_model_zero_grad(f);
        LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
        if (!isfinite(loss)) fail_msg("%s: step %d loss %g", what, step, loss);
        LP_ASSERT_OK(lp_transformer_backward(m));
        assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
        LP_ASSERT_OK(lp_adam_begin_step(opt));
        int64_t off = 0;
        for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
            lp_ft_tensor t = lp_ft_model_trainable(f, i);
            double g2 = 0;
            for (int64_t k = 0; k < t.numel; k++) g2 += (double)t.grad[k] * t.grad[k];
            if (!isfinite(g2)) fail_msg("%s: %s gradient not finite", what, t.name);
            /* BERT's key bias gets no gradient in theory (softmax ignores a per-row constant) */
            if (step == 0 && g2 == 0 && !strstr(t.name, "attention.self.key.bias"))
                fail_msg("%s: %s gradient is zero", what, t.name);
            LP_ASSERT_OK(lp_adam_update(opt, off, t.data, t.grad, t.numel));
            off += t.numel;
        }
    }
    float loss1 = ft_eval_loss(f, d, NULL);
    print_message("  %-36s trainable %7lld, loss %.4f -> %.4f\n", what, (long long)nt, loss0, loss1);
    if (!(loss1 < loss0)) fail_msg("%s: 6 AdamW steps did not reduce the loss (%g -> %g)", what, loss0, loss1);
    lp_adam_free(opt);
    lp_tokenselect_free(&sel);
    lp_ft_model_free(f);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    assert_int_equal(lp_mem_current(LP_MEM_OPTIMIZER), o0);
}

static void run_grid(const char *name)
{
    ft_batch d = {0};
    if (!ft_load_batch(name, &d)) { LP_SKIP("fixture %s not found (set LEANPROP_SHARED)", name); }
    const char *tokens[] = {"all", "4", "0.5"};
    for (int mth = 0; mth < LP_FT_METHOD_COUNT; mth++)
        for (int k = 0; k < 3; k++) run_combo(name, &d, (lp_ft_method)mth, tokens[k]);
    ft_free_batch(&d);
}

static void test_grid_gpt2(void **state) { (void)state; run_grid("gpt2-tiny"); }
static void test_grid_llama(void **state) { (void)state; run_grid("llama-tiny"); }
static void test_grid_bert(void **state) { (void)state; run_grid("bert-tiny-cls"); }


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_gpt2),
        cmocka_unit_test(test_grid_llama),
        cmocka_unit_test(test_grid_bert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
