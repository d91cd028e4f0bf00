/* Kernels: GELU (tanh, erf), SiLU, SwiGLU, ReLU, LeakyReLU. Forward vs a
 * double reference; backward vs central differences in double (rtol 1e-3,
 * atol 1e-4), away from the kinks of ReLU/LeakyReLU. */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"
#include "kernels/kmath.h"   /* internal: the vectorisable exp/tanh/Phi under test */

#define RTOL 1e-3
#define ATOL 1e-4

enum { GELU_TANH, GELU_ERF, SILU, RELU, LEAKY, NACT };
static const char *const names[NACT] = {"gelu_tanh", "gelu_erf", "silu", "relu", "leaky_relu"};
#define SLOPE 0.2

static double ref_act(int kind, double x)
{
    switch (kind) {
    case GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case SILU: return x / (1.0 + exp(-x));
    case RELU: return x > 0 ? x : 0.0;
    default: return x > 0 ? x : SLOPE * x;
    }
}

typedef struct {
    int kind;
    size_t n;
    double *x, *gate, *up;
} act_ctx;

static void ref_act_fn(void *vctx, double *out)
{
    act_ctx *c = vctx;
    for (size_t i = 0; i < c->n; i++) out[i] = ref_act(c->kind, c->x[i]);
}

static lp_status run_fwd(int kind, float *y, const float *x, int64_t n)
{
    switch (kind) {
    case GELU_TANH: return lp_gelu_tanh_forward(y, x, n);
    case GELU_ERF: return lp_gelu_erf_forward(y, x, n);
    case SILU: return lp_silu_forward(y, x, n);
    case RELU: return lp_relu_forward(y, x, n);
    default: return lp_leaky_relu_forward(y, x, n, (float)SLOPE);
    }
}

static lp_status run_bwd(int kind, float *dx, const float *dy, const float *x, int64_t n)
{
    switch (kind) {
    case GELU_TANH: return lp_gelu_tanh_backward(dx, dy, x, n);
    case GELU_ERF: return lp_gelu_erf_backward(dx, dy, x, n);
    case SILU: return lp_silu_backward(dx, dy, x, n);
    case RELU: return lp_relu_backward(dx, dy, x, n);
    default: return lp_leaky_relu_backward(dx, dy, x, n, (float)SLOPE);
    }
}

static void test_elementwise(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 200);
    const size_t sizes[] = {1, 7, 64, 40000};   /* 40000: the threaded path */
    for (int kind = 0; kind < NACT; kind++)
        for (size_t s = 0; s < 4; s++) {
            size_t n = sizes[s];
            float *x = kt_randn(&r, n, 2.5f), *R = kt_randn(&r, n, 1.0f);
            /* keep |x| >= 1e-3 so no central difference straddles the ReLU kink */
            for (size_t i = 0; i < n; i++) if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f;
            if (n >= 7) { x[0] = 12.0f; x[1] = -12.0f; }   /* saturated tails */
            act_ctx ctx = {kind, n, kt_to_double(x, n), NULL, NULL};
            float *y = kt_zeros(n), *dx = kt_fill(n, 1.0f);
            double *yref = kt_dzeros(n), *Rd = kt_to_double(R, n), *g = kt_dzeros(n);
            LP_ASSERT_OK(run_fwd(kind, y, x, (int64_t)n));
            ref_act_fn(&ctx, yref);
            char what[64];
            snprintf(what, sizeof what, "%s forward n=%zu", names[kind], n);
            kt_assert_close_d(y, yref, n, 1e-6, 1e-5, what);
            LP_ASSERT_OK(run_bwd(kind, dx, R, x, (int64_t)n));
            for (size_t i = 0; i < n; i++) dx[i] -= 1.0f;
            /* FD on every element when small, on a 200-element prefix when large
             * (elementwise: out[i] depends on x[i] only, so a prefix is exact) */
            size_t nfd = n > 200 ? 200 : n;
            act_ctx fctx = ctx;
            fctx.n = nfd;
            kt_fd_grad(ref_act_fn, &fctx, fctx.x, nfd, Rd, nfd, g);
            snprintf(what, sizeof what, "%s dx n=%zu", names[kind], n);
            kt_assert_close_d(dx, g, nfd, ATOL, RTOL, what);
            /* in place forward */
            LP_ASSERT_OK(run_fwd(kind, x, x, (int64_t)n));
            assert_memory_equal(x, y, n * sizeof(float));   /* in place: bit-identical */
            free(x); free(R); free(y); free(dx); free(yref); free(Rd); free(g); free(ctx.x);
        }
}

static void ref_swiglu(void *vctx, double *out)
{
    act_ctx *c = vctx;
    for (size_t i = 0; i < c->n; i++) out[i] = ref_act(SILU, c->gate[i]) * c->up[i];
}

static void test_swiglu(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 201);
    const size_t sizes[] = {1, 5, 129};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *gate = kt_randn(&r, n, 2.0f), *up = kt_randn(&r, n, 1.0f), *R = kt_randn(&r, n, 1.0f);
        act_ctx ctx = {SILU, n, NULL, kt_to_double(gate, n), kt_to_double(up, n)};
        float *y = kt_zeros(n), *dg = kt_fill(n, 0.5f), *du = kt_fill(n, -0.5f);
        double *yref = kt_dzeros(n), *Rd = kt_to_double(R, n), *g = kt_dzeros(n);
        LP_ASSERT_OK(lp_swiglu_forward(y, gate, up, (int64_t)n));
        ref_swiglu(&ctx, yref);
        kt_assert_close_d(y, yref, n, 1e-6, 1e-5, "swiglu forward");
        LP_ASSERT_OK(lp_swiglu_backward(dg, du, R, gate, up, (int64_t)n));
        for (size_t i = 0; i < n; i++) { dg[i] -= 0.5f; du[i] += 0.5f; }
        kt_fd_grad(ref_swiglu, &ctx, ctx.gate, n, Rd, n, g);
        kt_assert_close_d(dg, g, n, ATOL, RTOL, "swiglu dgate");
        kt_fd_grad(ref_swiglu, &ctx, ctx.up, n, Rd, n, g);
        kt_assert_close_d(du, g, n, ATOL, RTOL, "swiglu dup");
        /* only dup (frozen gate path) */
        float *du2 = kt_zeros(n);
        LP_ASSERT_OK(lp_swiglu_backward(NULL, du2, R, gate, up, (int64_t)n));
        lp_test_assert_allclose(du2, du, n, 1e-6, 1e-5, "swiglu dup alone");
        free(gate); free(up); free(R); free(y); free(dg); free(du); free(du2); free(yref); free(Rd); free(g);
        free(ctx.gate); free(ctx.up);
    }
}

static void test_relu_at_zero(void **state)
{
    (void)state;
    /* torch: relu'(0) = 0, leaky_relu'(0) = slope */
    float x = 0.0f, d = 1.0f, dx = 0.0f;
    LP_ASSERT_OK(lp_relu_backward(&dx, &d, &x, 1));
    assert_true(dx == 0.0f);
    LP_ASSERT_OK(lp_leaky_relu_backward(&dx, &d, &x, 1, 0.01f));
    assert_true(dx == 0.01f);
}

static void test_kmath_accuracy(void **state)
{
    (void)state;
    /* stated bounds of src/kernels/kmath.h, on a dense grid over [-90, 90] */
    double we = 0, wt = 0, wp = 0;
    for (int i = 0; i <= 180000; i++) {
        float x = -90.0f + 0.001f * (float)i;
        double e = exp((double)x);
        if (x > -86.0f && x < 88.7f) {
            double rel = fabs(lpk_expf(x) - e) / e;
            if (rel > we) we = rel;
        }
        double t = fabs(lpk_tanhf(x) - tanh((double)x));
        if (t > wt) wt = t;
        double ph = fabs(lpk_normcdff(x) - 0.5 * erfc(-(double)x / sqrt(2.0)));
        if (ph > wp) wp = ph;
    }
    if (we > 3e-7) fail_msg("lpk_expf max relative error %g", we);
    if (wt > 2e-7) fail_msg("lpk_tanhf max absolute error %g", wt);
    if (wp > 3e-7) fail_msg("lpk_normcdff max absolute error %g", wp);
    assert_true(lpk_expf(-INFINITY) == 0.0f && lpk_expf(-100.0f) == 0.0f);
    assert_true(isinf(lpk_expf(INFINITY)) && isinf(lpk_expf(89.0f)));
    assert_true(isnan(lpk_expf(NAN)) && lpk_expf(0.0f) == 1.0f);
    assert_true(lpk_normcdff(-INFINITY) == 0.0f && lpk_normcdff(INFINITY) == 1.0f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[4] = {0};
    KT_EXPECT_ERR(lp_gelu_tanh_forward(NULL, buf, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_gelu_tanh_backward(buf, buf, buf, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_gelu_erf_forward(buf, NULL, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_gelu_erf_backward(buf, NULL, buf, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_silu_forward(buf, buf, -1), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_silu_backward(NULL, buf, buf, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_swiglu_forward(buf, buf, NULL, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_swiglu_backward(buf, buf, buf, buf, buf, INT64_MAX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_relu_forward(buf, buf, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_relu_backward(buf, buf, NULL, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_leaky_relu_forward(buf, buf, 4, INFINITY), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_leaky_relu_backward(buf, buf, buf, -5, 0.1f), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_relu_at_zero),
        cmocka_unit_test(test_kmath_accuracy),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
