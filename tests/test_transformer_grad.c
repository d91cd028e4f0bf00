/* Finite-difference checks of the whole transformer backward (tiny random
 * models of each family and config variant), memory accounting against the
 * planner, changing batch shapes, frozen parameters and adapter hooks.
 *
 * FD check: for each parameter tensor P and a random direction d restricted to
 * it, the central difference (L(P + e d) - L(P - e d)) / 2e, Richardson-
 * extrapolated from e = 4e-3 and 2e-3 (the model is fp32, the loss accumulated
 * in double), must equal <grad P, d> within 2e-3 * max(|fd|, |an|) + 2e-4. Random directions over whole tensors make
 * every element count while keeping the number of forwards small. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels/linear.h"
#include "leanprop/transformer.h"

typedef struct {
    int64_t B, T;
    int32_t *ids, *labels, *tt;
    uint8_t *mask, *sel;
} batch_data;

static void make_batch(batch_data *d, const lp_transformer_config *c, int64_t B, int64_t T, int pad, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    d->B = B;
    d->T = T;
    d->ids = malloc((size_t)(B * T) * sizeof(int32_t));
    d->labels = malloc((size_t)(B * T) * sizeof(int32_t));
    d->tt = malloc((size_t)(B * T) * sizeof(int32_t));
    d->mask = malloc((size_t)(B * T));
    d->sel = NULL;
    for (int64_t i = 0; i < B * T; i++) {
        d->ids[i] = (int32_t)lp_rng_below(&r, (uint64_t)c->vocab_size);
        d->labels[i] = (i % 5 == 2) ? -100 : d->ids[i];
        d->tt[i] = c->arch == LP_ARCH_BERT ? (int32_t)((i % d->T) >= T / 2) : 0;
        d->mask[i] = 1;
    }
    if (pad) /* last sequence padded from T-2 on */
        for (int64_t t = T - 2; t < T; t++) d->mask[(B - 1) * T + t] = 0;
    if (c->arch == LP_ARCH_BERT)
        for (int64_t b = 0; b < B; b++) d->labels[b] = (int32_t)lp_rng_below(&r, (uint64_t)c->num_labels);
}

static void free_batch(batch_data *d)
{
    free(d->ids);
    free(d->labels);
    free(d->tt);
    free(d->mask);
    free(d->sel);
}

static lp_transformer_batch as_batch(const batch_data *d)
{
    lp_transformer_batch b = {.B = d->B, .T = d->T, .input_ids = d->ids, .labels = d->labels, .attention_mask = d->mask,
                              .token_type_ids = d->tt, .selected = d->sel};
    return b;
}

static double loss_of(lp_transformer *m, const batch_data *d)
{
    lp_transformer_batch b = as_batch(d);
    float loss;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, NULL, &loss));
    return loss;
}

static void fd_check(lp_transformer *m, const batch_data *d, const char *what)
{
    lp_transformer_batch b = as_batch(d);
    lp_transformer_forward_opts o = {.need_grad = 1};
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 1));
    lp_transformer_zero_grad(m);
    float loss;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
    LP_ASSERT_OK(lp_transformer_backward(m));
    lp_rng r;
    lp_rng_seed(&r, 99);
    double worst = 0;
    const double e = 4e-3;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        float *dir = malloc((size_t)p->numel * sizeof(float));
        float *orig = malloc((size_t)p->numel * sizeof(float));
        lp_test_randn(&r, dir, (size_t)p->numel);
        memcpy(orig, p->data, (size_t)p->numel * sizeof(float));
        double an = 0;
        for (int64_t k = 0; k < p->numel; k++) an += (double)p->grad[k] * dir[k];
        double fdh[2];
        for (int h = 0; h < 2; h++) {
            double eh = h ? e / 2 : e;
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(orig[k] + eh * dir[k]);
            double lp = loss_of(m, d);
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(orig[k] - eh * dir[k]);
            double lm = loss_of(m, d);
            fdh[h] = (lp - lm) / (2 * eh);
        }
        memcpy(p->data, orig, (size_t)p->numel * sizeof(float));
        double fd = (4 * fdh[1] - fdh[0]) / 3; /* Richardson: the e^2 term cancels */
        double tol = 2e-3 * fmax(fabs(fd), fabs(an)) + 2e-4;
        double ratio = fabs(fd - an) / tol;
        if (ratio > worst) worst = ratio;
        if (!(fabs(fd - an) <= tol)) fail_msg("%s: %s: finite difference %.8g vs backward %.8g", what, p->name, fd, an);
        free(dir);
        free(orig);
    }
    print_message("  %s: loss %.5f, %d tensors, worst |fd-an|/tol %.3f\n", what, loss, lp_transformer_n_params(m), worst);
}

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

static void run_fd(lp_transformer_config *c, int pad, const char *what)
{
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, c));
    lp_transformer_init_random(m, 7, 0.3f);
    /* non-trivial norm weights and biases */
    lp_rng r;
    lp_rng_seed(&r, 8);
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        if (p->kind == LP_PARAM_NORM || p->kind == LP_PARAM_BIAS)
            for (int64_t k = 0; k < p->numel; k++) p->data[k] += 0.2f * lp_rng_normal(&r);
    }
    batch_data d;
    make_batch(&d, c, 2, 7, pad, 11);
    fd_check(m, &d, what);
    free_batch(&d);
    lp_transformer_free(m);
}

static void test_fd_gpt2(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_GPT2);
    run_fd(&c, 0, "gpt2");
    run_fd(&c, 1, "gpt2 with padding mask");
    c.tie_word_embeddings = 0;
    run_fd(&c, 0, "gpt2 untied head");
}

static void test_fd_llama(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_LLAMA);
    run_fd(&c, 0, "llama (GQA 4/2)");
    c.tie_word_embeddings = 1;
    c.qkv_bias = 1; /* Qwen2 style */
    c.mlp_bias = 1;
    c.n_kv_heads = 1;
    c.head_dim = 6; /* head_dim * heads != hidden */
    run_fd(&c, 1, "llama tied, qkv+mlp bias, MQA, head_dim 6, padding");
}

static void test_fd_bert(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_BERT);
    run_fd(&c, 1, "bert with padding");
}

/* With every row selected by an explicit mask the result equals no mask; the
 * saved activations equal the planner's count and are freed by backward; B and
 * T change between calls; a selection shrinks saved memory. */
static void test_selection_memory_and_shapes(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_LLAMA);
    c.max_positions = 64;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, 3, 0.2f);
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 1));
    int64_t shapes[3][2] = {{2, 7}, {3, 20}, {1, 5}};
    float *g_ref = NULL;
    for (int s = 0; s < 3; s++) {
        batch_data d;
        make_batch(&d, &c, shapes[s][0], shapes[s][1], 1, 20 + (uint64_t)s);
        lp_transformer_batch b = as_batch(&d);
        lp_transformer_forward_opts o = {.need_grad = 1};
        lp_transformer_mem_plan plan;
        LP_ASSERT_OK(lp_transformer_plan_memory(&c, d.B, d.T, d.B * d.T, &plan));
        size_t a0 = lp_mem_current(LP_MEM_ACTIVATIONS);
        float l1, l2;
        lp_transformer_zero_grad(m);
        LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l1));
        assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS) - a0, plan.activations);
        assert_true(lp_mem_current(LP_MEM_SCRATCH) >= plan.scratch);
        LP_ASSERT_OK(lp_transformer_backward(m));
        assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
        lp_param *p = lp_transformer_find_param(m, "model.layers.0.self_attn.q_proj.weight");
        if (s == 0) {
            g_ref = malloc((size_t)p->numel * sizeof(float));
            memcpy(g_ref, p->grad, (size_t)p->numel * sizeof(float));
        }
        /* explicit all-ones selection == no selection */
        d.sel = malloc((size_t)(d.B * d.T));
        memset(d.sel, 1, (size_t)(d.B * d.T));
        b = as_batch(&d);
        float *g1 = malloc((size_t)p->numel * sizeof(float));
        memcpy(g1, p->grad, (size_t)p->numel * sizeof(float));
        lp_transformer_zero_grad(m);
        LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l2));
        LP_ASSERT_OK(lp_transformer_backward(m));
        assert_true(l1 == l2);
        assert_memory_equal(g1, p->grad, (size_t)p->numel * sizeof(float));
        /* half the rows selected: saved memory per the planner, smaller */
        int64_t S = 0;
        for (int64_t i = 0; i < d.B * d.T; i++) S += (d.sel[i] = (uint8_t)(i % 2 == 0));
        b = as_batch(&d);
        lp_transformer_mem_plan half;
        LP_ASSERT_OK(lp_transformer_plan_memory(&c, d.B, d.T, S, &half));
        LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l2));
        assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS) - a0, half.activations);
        assert_true(half.activations < plan.activations);
        LP_ASSERT_OK(lp_transformer_backward(m));
        free(g1);
        free_batch(&d);
    }
    /* the first shape again gives the first gradient exactly */
    batch_data d;
    make_batch(&d, &c, 2, 7, 1, 20);
    lp_transformer_batch b = as_batch(&d);
    lp_transformer_forward_opts o = {.need_grad = 1};
    lp_transformer_zero_grad(m);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, NULL));
    LP_ASSERT_OK(lp_transformer_backward(m));
    lp_param *p = lp_transformer_find_param(m, "model.layers.0.self_attn.q_proj.weight");
    assert_memory_equal(g_ref, p->grad, (size_t)p->numel * sizeof(float));
    /* backward twice is an error, not a crash */
    assert_int_equal(lp_transformer_backward(m), LP_ERR_INVALID_ARG);
    free(g_ref);
    free_batch(&d);
    lp_transformer_free(m);
}

/* Frozen parameters get no gradient buffer; gradients of the others are
 * unchanged; grad_scale scales them. */
static void test_frozen_and_grad_scale(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_GPT2);
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, 4, 0.2f);
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 1));
    int64_t all = lp_transformer_count_params(m, 1);
    batch_data d;
    make_batch(&d, &c, 2, 6, 0, 5);
    lp_transformer_batch b = as_batch(&d);
    lp_transformer_forward_opts o = {.need_grad = 1};
    lp_transformer_zero_grad(m);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, NULL));
    LP_ASSERT_OK(lp_transformer_backward(m));
    lp_param *fc = lp_transformer_find_param(m, "transformer.h.0.mlp.c_fc.weight");
    float *ref = malloc((size_t)fc->numel * sizeof(float));
    memcpy(ref, fc->grad, (size_t)fc->numel * sizeof(float));
    size_t g_all = lp_mem_current(LP_MEM_GRADIENTS);
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 0));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g_all - (size_t)all * sizeof(float));
    LP_ASSERT_OK(lp_transformer_set_trainable(m, "mlp.c_fc.weight", 1));
    assert_int_equal(lp_transformer_count_params(m, 1), 2 * c.hidden_size * c.intermediate_size);
    o.grad_scale = 0.5f;
    lp_transformer_zero_grad(m);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, NULL));
    LP_ASSERT_OK(lp_transformer_backward(m));
    for (int64_t k = 0; k < fc->numel; k++) ref[k] *= 0.5f;
    lp_test_assert_allclose(fc->grad, ref, (size_t)fc->numel, 1e-7, 1e-5, "frozen others, scaled");
    free(ref);
    free_batch(&d);
    lp_transformer_free(m);
}

/* An adapter through lp_linear_hooks: y += x A^T on a frozen W behaves as the
 * weight W + A, and the hook's gradient equals that weight's gradient. */
typedef struct {
    float *A, *dA;
    int64_t in, out;
} test_adapter;

static lp_status hook_fwd(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out)
{
    test_adapter *a = ctx;
    return lp_sgemm(y, 0, x, 0, a->A, 0, N, out, in, LP_NOTRANS, LP_TRANS, 1.0f, 1.0f);
}

static lp_status hook_bwd(void *ctx, float *dx, const float *dy, const float *x, int64_t N, int64_t in, int64_t out)
{
    test_adapter *a = ctx;
    if (dx) LP_TRY(lp_sgemm(dx, 0, dy, 0, a->A, 0, N, in, out, LP_NOTRANS, LP_NOTRANS, 1.0f, 1.0f));
    return lp_sgemm(a->dA, 0, dy, 0, x, 0, out, in, N, LP_TRANS, LP_NOTRANS, 1.0f, 1.0f);
}

/* The _ids hooks see every row's id b*T+t in forward and exactly the selected
 * rows' ids in backward, with those rows' inputs. */
static int64_t g_fwd_rows, g_bwd_ids[64], g_bwd_rows;
static lp_status hook_fwd_ids(void *ctx, float *y, const float *x, const int64_t *ids, int64_t N, int64_t in, int64_t out)
{
    for (int64_t i = 0; i < N; i++)
        if (ids[i] != i) return lp_error(LP_ERR_INTERNAL, "forward id %lld at row %lld", (long long)ids[i], (long long)i);
    g_fwd_rows = N;
    return hook_fwd(ctx, y, x, N, in, out);
}
static lp_status hook_bwd_ids(void *ctx, float *dx, const float *dy, const float *x, const int64_t *ids, int64_t N,
                              int64_t in, int64_t out)
{
    g_bwd_rows = N;
    for (int64_t i = 0; i < N && i < 64; i++) g_bwd_ids[i] = ids[i];
    return hook_bwd(ctx, dx, dy, x, N, in, out);
}

static void test_linear_hooks(void **state)
{
    (void)state;
    lp_transformer_config c;
    tiny_config(&c, LP_ARCH_LLAMA);
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, 6, 0.2f);
    lp_nn_linear *l = lp_transformer_find_linear(m, "model.layers.1.mlp.up_proj");
    assert_non_null(l);
    test_adapter ad = {.in = l->in, .out = l->out};
    ad.A = calloc((size_t)(l->in * l->out), sizeof(float));
    ad.dA = calloc((size_t)(l->in * l->out), sizeof(float));
    lp_rng r;
    lp_rng_seed(&r, 1);
    for (int64_t k = 0; k < l->in * l->out; k++) ad.A[k] = 0.1f * lp_rng_normal(&r);
    lp_linear_hooks h = {.forward = hook_fwd, .backward = hook_bwd, .ctx = &ad};
    l->hooks = &h;
    batch_data d;
    make_batch(&d, &c, 2, 6, 0, 9);
    d.sel = malloc(12);
    for (int i = 0; i < 12; i++) d.sel[i] = (uint8_t)(i % 3 != 1);
    lp_transformer_batch b = as_batch(&d);
    lp_transformer_forward_opts o = {.need_grad = 1};
    float l_hook, l_merged;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l_hook));
    LP_ASSERT_OK(lp_transformer_backward(m)); /* nothing trainable but the adapter */
    l->hooks = NULL;
    for (int64_t k = 0; k < l->in * l->out; k++) l->weight->data[k] += ad.A[k];
    LP_ASSERT_OK(lp_transformer_set_trainable(m, "mlp.up_proj", 1));
    lp_transformer_zero_grad(m);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l_merged));
    LP_ASSERT_OK(lp_transformer_backward(m));
    LP_ASSERT_CLOSE(l_hook, l_merged, 1e-6, 1e-5, "loss with hook vs merged weight");
    lp_test_assert_allclose(ad.dA, l->weight->grad, (size_t)(l->in * l->out), 1e-6, 1e-4, "hook gradient");
    /* the same adapter through the _ids slots */
    for (int64_t k = 0; k < l->in * l->out; k++) l->weight->data[k] -= ad.A[k];
    float *dA_ref = malloc((size_t)(l->in * l->out) * sizeof(float));
    memcpy(dA_ref, ad.dA, (size_t)(l->in * l->out) * sizeof(float));
    memset(ad.dA, 0, (size_t)(l->in * l->out) * sizeof(float));
    lp_linear_hooks hi = {.forward_ids = hook_fwd_ids, .backward_ids = hook_bwd_ids, .ctx = &ad};
    l->hooks = &hi;
    float l_ids;
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 0));
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &l_ids));
    LP_ASSERT_OK(lp_transformer_backward(m));
    LP_ASSERT_CLOSE(l_ids, l_hook, 1e-6, 1e-6, "loss through the _ids hooks"); /* W + A - A: not bitwise W */
    assert_int_equal(g_fwd_rows, 12);
    assert_int_equal(g_bwd_rows, 8);
    for (int64_t i = 0, k = 0; i < 12; i++)
        if (d.sel[i]) assert_int_equal(g_bwd_ids[k++], i);
    lp_test_assert_allclose(ad.dA, dA_ref, (size_t)(l->in * l->out), 1e-6, 1e-4, "hook gradient through _ids");
    free(dA_ref);
    free(ad.A);
    free(ad.dA);
    free_batch(&d);
    lp_transformer_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_gpt2),
        cmocka_unit_test(test_fd_llama),
        cmocka_unit_test(test_fd_bert),
        cmocka_unit_test(test_selection_memory_and_shapes),
        cmocka_unit_test(test_frozen_and_grad_scale),
        cmocka_unit_test(test_linear_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
