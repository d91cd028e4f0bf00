/* lp_ft_plan_memory against the allocator's measurements: for gpt2-tiny,
 * llama-tiny and bert-tiny-cls, every method {full, lora, qlora} x TokenTune
 * {all, k = 4, r = 0.5} x two batch shapes, a real training step (forward
 * with need_grad, backward, AdamW update; twice, the second in the measured
 * window) through the library's own lp_batch, lp_token_selection and
 * lp_adam. Each category's measured peak must equal the plan exactly, except
 * the optimizer (the plan leaves out the optimizer object's own few dozen
 * bytes: within 256 bytes); every category and the total within 5 % in any
 * case. Also: the planner's parameter and linear lists equal a real model's
 * for every architecture variant; bad input is an error. */
#include "test_finetune_util.h"

#include "leanprop/dataset.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/tokenselect.h"
#include "train/finetune_internal.h"

static void tiny_config(lp_transformer_config *c, lp_arch arch)
{
    lp_transformer_config_default(c, arch);
    c->vocab_size = 29;
    c->hidden_size = 16;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = arch == LP_ARCH_LLAMA ? 2 : 4;
    c->head_dim = 4;
    c->intermediate_size = 24;
    c->max_positions = 12;
    c->num_labels = 3;
}

static void check_layout(const lp_transformer_config *c, const char *what)
{
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, c));
    lp_ft_layout L;
    LP_ASSERT_OK(lp_ft_layout_build(&L, c));
    if (L.n_params != lp_transformer_n_params(m) || L.n_linears != lp_transformer_n_linears(m))
        fail_msg("%s: plan %d params / %d linears, model %d / %d", what, L.n_params, L.n_linears,
                 lp_transformer_n_params(m), lp_transformer_n_linears(m));
    for (int i = 0; i < L.n_params; i++) {
        lp_param *p = lp_transformer_param(m, i);
        if (strcmp(L.params[i].name, p->name) || L.params[i].numel != p->numel || L.params[i].kind != p->kind)
            fail_msg("%s: param %d: plan %s (%lld), model %s (%lld)", what, i, L.params[i].name,
                     (long long)L.params[i].numel, p->name, (long long)p->numel);
    }
    for (int i = 0; i < L.n_linears; i++) {
        lp_nn_linear *l = lp_transformer_linear(m, i);
        const lp_ft_layout_linear *q = &L.linears[i];
        int own = l->weight->kind == LP_PARAM_LINEAR;
        if (strcmp(q->name, l->name) || q->in != l->in || q->out != l->out || q->own_weight != own ||
            (q->bias >= 0) != (l->bias != NULL))
            fail_msg("%s: linear %d: plan %s, model %s", what, i, q->name, l->name);
    }
    lp_ft_layout_free(&L);
    lp_transformer_free(m);
}

static void test_layout_matches_model(void **state)
{
    (void)state;
    lp_transformer_config c;
    for (int a = 0; a < LP_ARCH_COUNT; a++) {
        tiny_config(&c, (lp_arch)a);
        check_layout(&c, "default");
        if (a == LP_ARCH_BERT) continue;
        c.tie_word_embeddings = !c.tie_word_embeddings;
        check_layout(&c, "tie flipped");
        c.qkv_bias = c.o_bias = c.mlp_bias = 1;
        check_layout(&c, "biases");
        c.task = LP_TASK_SEQ_CLS;
        check_layout(&c, "sequence classifier");
    }
}

/* ------------------------------------------------------------ measured */

typedef struct {
    size_t meas[LP_MEM_COUNT], total;
    lp_mem_plan plan;
} measure;

static void run_step(lp_ft_model *f, lp_batch *bt, const uint8_t *sel, lp_adam *opt, int cls)
{
    lp_transformer_batch b = {.B = bt->B, .T = bt->T_used, .input_ids = bt->input_ids,
                              .labels = cls ? bt->class_label : bt->labels, .selected = sel};
    lp_transformer_forward_opts o = {.need_grad = 1};
    float loss;
    lp_ft_model_zero_grad(f);
    LP_ASSERT_OK(lp_transformer_forward(lp_ft_model_transformer(f), &b, &o, &loss));
    assert_true(isfinite(loss));
    LP_ASSERT_OK(lp_transformer_backward(lp_ft_model_transformer(f)));
    LP_ASSERT_OK(lp_adam_begin_step(opt));
    int64_t off = 0;
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        LP_ASSERT_OK(lp_adam_update(opt, off, t.data, t.grad, t.numel));
        off += t.numel;
    }
}

static void measure_one(const char *fixture, lp_ft_method method, const char *tokens, int32_t B, int32_t T, measure *ms)
{
    const char *dir = ft_fixture_dir(fixture);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    lp_transformer_config cfg;
    LP_ASSERT_OK(lp_transformer_config_load(&cfg, path));
    int cls = cfg.arch == LP_ARCH_BERT;
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, lp_lora_targets_for(cfg.model_type, 1)));
    s.lora.r = 4;

    size_t base[LP_MEM_COUNT];
    for (int k = 0; k < LP_MEM_COUNT; k++) base[k] = lp_mem_current((lp_mem_category)k);
    size_t base_total = lp_mem_total_current();
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, ft_load_fixture(fixture), &s));
    lp_batch bt;
    LP_ASSERT_OK(lp_batch_init(&bt, B, T));
    lp_rng r;
    lp_rng_seed(&r, 3);
    bt.n_seq = B;
    bt.T_used = T;
    for (int64_t i = 0; i < (int64_t)B * T; i++) {
        bt.input_ids[i] = (int32_t)lp_rng_below(&r, (uint64_t)cfg.vocab_size);
        bt.labels[i] = bt.input_ids[i];
    }
    for (int b = 0; b < B; b++) {
        bt.lengths[b] = T;
        bt.class_label[b] = b % 2;
    }
    lp_tokenselect_config tc = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&tc, tokens));
    tc.encoder = cls;
    int use_sel = tc.mode != LP_TOKENSELECT_ALL;
    lp_token_selection sel = {0};
    int64_t S = (int64_t)B * T;
    if (use_sel) {
        LP_ASSERT_OK(lp_tokenselect_init(&sel, B, T));
        lp_tokenselect_rng_for_step(&r, 1, 0);
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &tc, B, T, bt.lengths, cls ? NULL : bt.labels, &r));
        S = sel.total_selected;
    }
    lp_adam_config ac = lp_adamw_defaults();
    ac.lr = 1e-4f;
    lp_adam *opt;
    LP_ASSERT_OK(lp_adam_new(&opt, lp_ft_model_trainable_numel(f), &ac));
    run_step(f, &bt, use_sel ? sel.mask : NULL, opt, cls); /* grows the scratch */
    lp_mem_reset_peak();
    run_step(f, &bt, use_sel ? sel.mask : NULL, opt, cls);
    for (int k = 0; k < LP_MEM_COUNT; k++) ms->meas[k] = lp_mem_peak((lp_mem_category)k) - base[k];
    ms->total = lp_mem_total_peak() - base_total;
    LP_ASSERT_OK(lp_ft_plan_memory(&cfg, &s, B, T, S, "adamw", &ms->plan));
    assert_int_equal(ms->plan.trainable, lp_ft_model_trainable_numel(f));
    lp_adam_free(opt);
    if (use_sel) lp_tokenselect_free(&sel);
    lp_batch_free(&bt);
    lp_ft_model_free(f);
}

static void run_fixture(const char *fixture)
{
    if (!ft_fixture_dir(fixture)) { LP_SKIP("fixture %s not found (set LEANPROP_SHARED)", fixture); }
    const char *tokens[] = {"all", "4", "0.5"};
    int32_t shapes[2][2] = {{2, 16}, {3, 9}};
    static const char *short_names[LP_MEM_COUNT] = {"weights", "grads", "optim", "activ", "scratch", "data"};
    print_message("  %-13s %-5s %-4s %-6s", "model", "meth", "tok", "B,T");
    for (int k = 0; k < LP_MEM_COUNT; k++) print_message(" %16s", short_names[k]);
    print_message(" %18s\n", "total (plan/meas)");
    double worst = 0;
    for (int mth = 0; mth < LP_FT_METHOD_COUNT; mth++)
        for (int t = 0; t < 3; t++)
            for (int sh = 0; sh < 2; sh++) {
                measure ms;
                measure_one(fixture, (lp_ft_method)mth, tokens[t], shapes[sh][0], shapes[sh][1], &ms);
                char bt[16];
                snprintf(bt, sizeof bt, "%d,%d", shapes[sh][0], shapes[sh][1]);
                print_message("  %-13s %-5s %-4s %-6s", fixture, lp_ft_method_name((lp_ft_method)mth), tokens[t], bt);
                for (int k = 0; k < LP_MEM_COUNT; k++) {
                    size_t p = ms.plan.peak[k], m = ms.meas[k];
                    print_message(" %8zu%s%-7zu", p, p == m ? "=" : "~", m);
                    double rel = p ? fabs((double)m - (double)p) / (double)p : (m ? 1.0 : 0.0);
                    worst = fmax(worst, rel);
                    if (rel > 0.05)
                        fail_msg("%s %s %s B%d T%d: %s planned %zu, measured %zu", fixture,
                                 lp_ft_method_name((lp_ft_method)mth), tokens[t], shapes[sh][0], shapes[sh][1],
                                 lp_mem_category_name((lp_mem_category)k), p, m);
                    int exact_needed = k != LP_MEM_OPTIMIZER;
                    if (exact_needed ? p != m : (m < p || m > p + 256))
                        fail_msg("%s %s %s B%d T%d: %s planned %zu, measured %zu (must be exact)", fixture,
                                 lp_ft_method_name((lp_ft_method)mth), tokens[t], shapes[sh][0], shapes[sh][1],
                                 lp_mem_category_name((lp_mem_category)k), p, m);
                }
                print_message(" %9zu/%-9zu\n", ms.plan.total_peak, ms.total);
                double rel = fabs((double)ms.total - (double)ms.plan.total_peak) / (double)ms.plan.total_peak;
                worst = fmax(worst, rel);
                if (rel > 0.05) fail_msg("%s: total planned %zu, measured %zu", fixture, ms.plan.total_peak, ms.total);
            }
    print_message("  %s: worst relative difference %.2e\n", fixture, worst);
}

static void test_measured_gpt2(void **state) { (void)state; run_fixture("gpt2-tiny"); }
static void test_measured_llama(void **state) { (void)state; run_fixture("llama-tiny"); }
static void test_measured_bert(void **state) { (void)state; run_fixture("bert-tiny-cls"); }

/* QLoRA on a bigger shape: weights well under a quarter of fp32; TokenTune
 * shrinks the activations; the thread count scales attention scratch. */
static void test_plan_shapes_and_errors(void **state)
{
    (void)state;
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_LLAMA); /* TinyLlama 1.1B shape */
    lp_ft_setup full, q;
    lp_ft_setup_default(&full, LP_FT_FULL);
    lp_ft_setup_default(&q, LP_FT_QLORA);
    lp_mem_plan pf, pq, pqt, p1, p8;
    LP_ASSERT_OK(lp_ft_plan_memory(&c, &full, 4, 512, 4 * 512, "adamw", &pf));
    LP_ASSERT_OK(lp_ft_plan_memory(&c, &q, 4, 512, 4 * 512, "adamw", &pq));
    LP_ASSERT_OK(lp_ft_plan_memory(&c, &q, 4, 512, 4 * 154, "adamw", &pqt));
    assert_int_equal(pf.trainable, pf.params);
    assert_int_equal(pf.peak[LP_MEM_OPTIMIZER], 2 * pf.peak[LP_MEM_GRADIENTS]);
    assert_true(pq.peak[LP_MEM_WEIGHTS] < pf.peak[LP_MEM_WEIGHTS] / 2);
    assert_int_equal(pq.n_adapters, 2 * 22);
    assert_int_equal(pq.n_nf4, 7 * 22); /* every block linear, adapted or not */
    assert_true(pqt.peak[LP_MEM_ACTIVATIONS] < pq.peak[LP_MEM_ACTIVATIONS] / 2);
    LP_ASSERT_OK(lp_ft_plan_memory_ex(&c, &q, 1, 4096, 4096, "adamw", 1, &p1));
    LP_ASSERT_OK(lp_ft_plan_memory_ex(&c, &q, 1, 4096, 4096, "adamw", 8, &p8));
    assert_int_equal(p8.scratch_transient - p1.scratch_transient, 7 * 2 * 4096 * (64 + 1) * sizeof(float));
    LP_ASSERT_OK(lp_ft_plan_memory(&c, &full, 4, 512, 4 * 512, "sgd0", &p1));
    assert_int_equal(p1.peak[LP_MEM_OPTIMIZER], 0);
    /* errors */
    assert_int_equal(lp_ft_plan_memory(&c, &full, 4, 512, 4 * 512, "lion", &p1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_ft_plan_memory(&c, &full, 4, 512, 0, "adamw", &p1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_ft_plan_memory(&c, &full, 4, 512, 4 * 513, "adamw", &p1), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_lora_config_set_targets(&q.lora, "q_proj,c_fc"));
    assert_int_equal(lp_ft_plan_memory(&c, &q, 4, 512, 4 * 512, "adamw", &p1), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "\"c_fc\""));
    full.full_only = "nothing_like_this";
    assert_int_equal(lp_ft_plan_memory(&c, &full, 4, 512, 4 * 512, "adamw", &p1), LP_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_matches_model),
        cmocka_unit_test(test_measured_gpt2),
        cmocka_unit_test(test_measured_llama),
        cmocka_unit_test(test_measured_bert),
        cmocka_unit_test(test_plan_shapes_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
