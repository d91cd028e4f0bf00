/* Kernels: Adam (L2), AdamW (decoupled), SGD momentum, gradient-norm clipping,
 * against torch semantics written out in double precision below. */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"

#define NP 37
#define STEPS 3
/* float update vs double reference after 3 steps */
#define ATOL 2e-6
#define RTOL 1e-5

/* torch.optim.Adam / AdamW, step t = 1, 2, ... (single-tensor path):
 *   Adam:  g = grad + wd * p
 *   AdamW: p = p * (1 - lr * wd)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
static void ref_adam(double *p, double *m, double *v, const double *grad, int n, int t, double lr, double b1,
                     double b2, double eps, double wd, int decoupled)
{
    for (int i = 0; i < n; i++) {
        double g = grad[i];
        if (decoupled) p[i] *= 1.0 - lr * wd;
        else g += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double denom = sqrt(v[i]) / sqrt(1 - pow(b2, t)) + eps;
        p[i] -= lr / (1 - pow(b1, t)) * m[i] / denom;
    }
}

static void check_adam(int decoupled, float wd)
{
    lp_rng r;
    lp_rng_seed(&r, 10 + decoupled);
    lp_adam_config cfg = decoupled ? lp_adamw_defaults() : lp_adam_defaults();
    assert_int_equal(cfg.decoupled, decoupled);
    cfg.lr = 0.05f;
    cfg.beta1 = 0.8f;
    cfg.beta2 = 0.95f;
    cfg.eps = 1e-6f;
    cfg.weight_decay = wd;
    size_t opt0 = lp_mem_current(LP_MEM_OPTIMIZER);
    lp_adam *a;
    LP_ASSERT_OK(lp_adam_new(&a, NP, &cfg));
    assert_true(lp_mem_current(LP_MEM_OPTIMIZER) >= opt0 + 2 * NP * sizeof(float));
    float *p = kt_randn(&r, NP, 1.0f);
    double *pd = kt_to_double(p, NP), *m = kt_dzeros(NP), *v = kt_dzeros(NP);
    for (int t = 1; t <= STEPS; t++) {
        float *g = kt_randn(&r, NP, t == 2 ? 1e-3f : 1.0f);   /* small grads: eps matters */
        g[0] = 0.0f;
        double *gd = kt_to_double(g, NP);
        LP_ASSERT_OK(lp_adam_step(a, p, g, NP));
        assert_int_equal(lp_adam_steps(a), t);
        ref_adam(pd, m, v, gd, NP, t, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, decoupled);
        kt_assert_close_d(p, pd, NP, ATOL, RTOL, decoupled ? "AdamW params" : "Adam params");
        free(g); free(gd);
    }
    float *mf, *vf;
    lp_adam_moments(a, &mf, &vf);
    kt_assert_close_d(mf, m, NP, 1e-7, 1e-5, "Adam first moment");
    kt_assert_close_d(vf, v, NP, 1e-9, 1e-5, "Adam second moment");
    lp_adam_free(a);
    assert_int_equal(lp_mem_current(LP_MEM_OPTIMIZER), opt0);
    free(p); free(pd); free(m); free(v);
}

static void test_adam_l2(void **state) { (void)state; check_adam(0, 0.1f); }
static void test_adamw_decoupled(void **state) { (void)state; check_adam(1, 0.1f); }

static void test_adam_hand_values(void **state)
{
    (void)state;
    /* One step, p = 1, g = 0.5, lr 0.1, default betas, eps 1e-8, no decay:
     * m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25 -> p = 1 - 0.1 * 0.5 / (0.5 + 1e-8). */
    lp_adam_config cfg = lp_adam_defaults();
    cfg.lr = 0.1f;
    lp_adam *a;
    LP_ASSERT_OK(lp_adam_new(&a, 1, &cfg));
    float p = 1.0f, g = 0.5f;
    LP_ASSERT_OK(lp_adam_step(a, &p, &g, 1));
    LP_ASSERT_CLOSE(p, 1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-7, 0, "adam one step");
    lp_adam_free(a);
    /* AdamW on a zero gradient only decays: p = 1 * (1 - lr*wd); m = v = 0 so no Adam move. */
    cfg = lp_adamw_defaults();
    cfg.lr = 0.1f;
    cfg.weight_decay = 0.5f;
    LP_ASSERT_OK(lp_adam_new(&a, 1, &cfg));
    p = 1.0f;
    g = 0.0f;
    LP_ASSERT_OK(lp_adam_step(a, &p, &g, 1));
    LP_ASSERT_CLOSE(p, 0.95, 1e-7, 0, "adamw decay only");
    lp_adam_free(a);
}

static void test_adam_slices_share_step(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 12);
    lp_adam_config cfg = lp_adamw_defaults();
    lp_adam *whole, *parts;
    LP_ASSERT_OK(lp_adam_new(&whole, NP, &cfg));
    LP_ASSERT_OK(lp_adam_new(&parts, NP, &cfg));
    float *p1 = kt_randn(&r, NP, 1.0f), *p2 = malloc(NP * sizeof(float));
    memcpy(p2, p1, NP * sizeof(float));
    for (int t = 0; t < STEPS; t++) {
        float *g = kt_randn(&r, NP, 1.0f);
        LP_ASSERT_OK(lp_adam_step(whole, p1, g, NP));
        LP_ASSERT_OK(lp_adam_begin_step(parts));
        LP_ASSERT_OK(lp_adam_update(parts, 0, p2, g, 10));
        LP_ASSERT_OK(lp_adam_update(parts, 10, p2 + 10, g + 10, NP - 10));
        free(g);
    }
    assert_memory_equal(p2, p1, NP * sizeof(float));   /* bit-identical */
    assert_int_equal(lp_adam_steps(parts), STEPS);
    free(p1); free(p2);
    lp_adam_free(whole);
    lp_adam_free(parts);
}

/* torch.optim.SGD, dampening 0: g = grad + wd p; buf = g (t = 1) else mu buf + g;
 * step = nesterov ? g + mu buf : buf; p -= lr step. */
static void check_sgd(float mu, float wd, int nesterov)
{
    lp_rng r;
    lp_rng_seed(&r, 20 + nesterov);
    lp_sgd_config cfg = lp_sgd_defaults();
    cfg.lr = 0.1f;
    cfg.momentum = mu;
    cfg.weight_decay = wd;
    cfg.nesterov = nesterov;
    lp_sgd *s;
    LP_ASSERT_OK(lp_sgd_new(&s, NP, &cfg));
    assert_true((lp_sgd_momentum(s) != NULL) == (mu > 0));
    float *p = kt_randn(&r, NP, 1.0f);
    double *pd = kt_to_double(p, NP), *buf = kt_dzeros(NP);
    for (int t = 1; t <= STEPS; t++) {
        float *g = kt_randn(&r, NP, 1.0f);
        LP_ASSERT_OK(lp_sgd_step(s, p, g, NP));
        for (int i = 0; i < NP; i++) {
            double gi = (double)g[i] + (double)wd * pd[i];
            if (mu > 0) {
                buf[i] = t == 1 ? gi : (double)mu * buf[i] + gi;
                gi = nesterov ? gi + (double)mu * buf[i] : buf[i];
            }
            pd[i] -= (double)cfg.lr * gi;
        }
        kt_assert_close_d(p, pd, NP, ATOL, RTOL, "SGD params");
        free(g);
    }
    assert_int_equal(lp_sgd_steps(s), STEPS);
    lp_sgd_free(s);
    free(p); free(pd); free(buf);
}

static void test_sgd(void **state)
{
    (void)state;
    check_sgd(0.9f, 0.0f, 0);
    check_sgd(0.9f, 0.01f, 0);
    check_sgd(0.0f, 0.05f, 0);
    check_sgd(0.5f, 0.01f, 1);
}

static void test_clip_grad_norm(void **state)
{
    (void)state;
    /* ||(3,4)|| with (0) and a frozen NULL buffer = 5 */
    float a[2] = {3.0f, 4.0f}, b[1] = {0.0f};
    float *grads[3] = {a, NULL, b};
    int64_t sizes[3] = {2, 999, 1};
    float norm = 0.0f;
    LP_ASSERT_OK(lp_grad_norm(grads, sizes, 3, &norm));
    LP_ASSERT_CLOSE(norm, 5.0, 1e-6, 0, "grad norm");
    LP_ASSERT_OK(lp_clip_grad_norm(grads, sizes, 3, 10.0f, &norm));   /* coef > 1: untouched */
    assert_true(a[0] == 3.0f && a[1] == 4.0f);
    LP_ASSERT_OK(lp_clip_grad_norm(grads, sizes, 3, 1.0f, &norm));
    LP_ASSERT_CLOSE(norm, 5.0, 1e-6, 0, "norm before clipping");
    double coef = 1.0 / (5.0 + 1e-6);   /* torch: max_norm / (total + 1e-6) */
    LP_ASSERT_CLOSE(a[0], 3.0 * coef, 1e-7, 0, "clipped a0");
    LP_ASSERT_CLOSE(a[1], 4.0 * coef, 1e-7, 0, "clipped a1");
    /* many buffers, large sizes (threaded path) */
    lp_rng r;
    lp_rng_seed(&r, 30);
    int64_t n1 = 70000, n2 = 3;
    float *g1 = kt_randn(&r, n1, 1.0f), *g2 = kt_randn(&r, n2, 1.0f);
    double ss = 0;
    for (int64_t i = 0; i < n1; i++) ss += (double)g1[i] * g1[i];
    for (int64_t i = 0; i < n2; i++) ss += (double)g2[i] * g2[i];
    float *gg[2] = {g1, g2};
    int64_t nn[2] = {n1, n2};
    float g2_0 = g2[0];
    LP_ASSERT_OK(lp_clip_grad_norm(gg, nn, 2, 2.0f, &norm));
    LP_ASSERT_CLOSE(norm, sqrt(ss), 0, 1e-6, "large grad norm");
    LP_ASSERT_CLOSE(g2[0], g2_0 * 2.0 / (sqrt(ss) + 1e-6), 0, 1e-5, "large clipped");
    LP_ASSERT_OK(lp_grad_norm(gg, nn, 2, &norm));
    LP_ASSERT_CLOSE(norm, 2.0, 1e-5, 0, "norm after clipping");
    /* non-finite norm: error, gradients untouched */
    g2[1] = NAN;
    float g1_0 = g1[0];
    KT_EXPECT_ERR(lp_clip_grad_norm(gg, nn, 2, 1.0f, &norm), LP_ERR_NUMERIC);
    assert_true(g1[0] == g1_0);
    free(g1); free(g2);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    lp_adam *a = NULL;
    lp_adam_config cfg = lp_adamw_defaults();
    KT_EXPECT_ERR(lp_adam_new(&a, 0, &cfg), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_adam_new(&a, 4, NULL), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_adam_new(NULL, 4, &cfg), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_adam_new(&a, INT64_MAX, &cfg), LP_ERR_INVALID_ARG);
    cfg.beta1 = 1.0f;
    KT_EXPECT_ERR(lp_adam_new(&a, 4, &cfg), LP_ERR_INVALID_ARG);
    cfg = lp_adamw_defaults();
    cfg.lr = -1.0f;
    KT_EXPECT_ERR(lp_adam_new(&a, 4, &cfg), LP_ERR_INVALID_ARG);
    assert_null(a);
    cfg = lp_adamw_defaults();
    LP_ASSERT_OK(lp_adam_new(&a, 4, &cfg));
    float p[8] = {0}, g[8] = {0};
    KT_EXPECT_ERR(lp_adam_update(a, 0, p, g, 4), LP_ERR_INVALID_ARG);   /* no begin_step yet */
    KT_EXPECT_ERR(lp_adam_step(a, p, g, 5), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_adam_step(a, NULL, g, 4), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_adam_begin_step(a));
    KT_EXPECT_ERR(lp_adam_update(a, 2, p, g, 3), LP_ERR_INVALID_ARG);   /* slice past the end */
    KT_EXPECT_ERR(lp_adam_update(a, -1, p, g, 1), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_adam_set_lr(a, NAN), LP_ERR_INVALID_ARG);
    lp_adam_free(a);
    lp_adam_free(NULL);
    lp_sgd *s = NULL;
    lp_sgd_config sc = lp_sgd_defaults();
    sc.momentum = 0.0f;
    sc.nesterov = 1;
    KT_EXPECT_ERR(lp_sgd_new(&s, 4, &sc), LP_ERR_INVALID_ARG);
    sc = lp_sgd_defaults();
    KT_EXPECT_ERR(lp_sgd_new(&s, -4, &sc), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_sgd_new(&s, 4, &sc));
    KT_EXPECT_ERR(lp_sgd_step(s, p, g, 3), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgd_update(s, 0, p, g, 4), LP_ERR_INVALID_ARG);
    lp_sgd_free(s);
    float *gr[1] = {g};
    int64_t sz[1] = {0};
    KT_EXPECT_ERR(lp_grad_norm(gr, sz, 1, NULL), LP_ERR_INVALID_ARG);
    sz[0] = 4;
    KT_EXPECT_ERR(lp_grad_norm(gr, sz, 0, NULL), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_clip_grad_norm(gr, sz, 1, 0.0f, NULL), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_clip_grad_norm(NULL, sz, 1, 1.0f, NULL), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_l2),
        cmocka_unit_test(test_adamw_decoupled),
        cmocka_unit_test(test_adam_hand_values),
        cmocka_unit_test(test_adam_slices_share_step),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
