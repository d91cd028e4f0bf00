/* Kernels: LayerNorm and RMSNorm. Forward vs a double reference; every
 * gradient (dx, dweight, dbias) vs central differences in double
 * (rtol 1e-3, atol 1e-4). */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"
#include "leanprop/threads.h"

#define RTOL 1e-3
#define ATOL 1e-4

typedef struct {
    int N, C, rms;
    double eps;
    double *x, *w, *b;   /* w, b may be NULL */
} norm_ctx;

static void ref_norm(void *vctx, double *out)
{
    norm_ctx *c = vctx;
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += x[i];
        m /= c->C;
        if (c->rms) {
            for (int i = 0; i < c->C; i++) v += x[i] * x[i];
            m = 0;   /* no centering */
        } else {
            for (int i = 0; i < c->C; i++) v += (x[i] - m) * (x[i] - m);
        }
        double r = 1.0 / sqrt(v / c->C + c->eps);
        for (int i = 0; i < c->C; i++)
            out[n * c->C + i] = (x[i] - m) * r * (c->w ? c->w[i] : 1.0) + (c->b ? c->b[i] : 0.0);
    }
}

static void check_norm(lp_rng *r, int rms, int N, int C, int affine)
{
    size_t nx = (size_t)N * C;
    const float eps = rms ? 1e-6f : 1e-5f;
    float *x = kt_randn(r, nx, 1.5f), *R = kt_randn(r, nx, 1.0f);
    for (size_t i = 0; i < nx; i++) x[i] += 0.7f;   /* non-zero mean */
    float *w = affine ? kt_randn(r, C, 1.0f) : NULL, *b = affine && !rms ? kt_randn(r, C, 1.0f) : NULL;
    norm_ctx ctx = {N, C, rms, eps, kt_to_double(x, nx), w ? kt_to_double(w, C) : NULL, b ? kt_to_double(b, C) : NULL};
    float *y = kt_zeros(nx), *mean = kt_zeros(N), *rstd = kt_zeros(N);
    double *yref = kt_dzeros(nx), *Rd = kt_to_double(R, nx);
    if (rms) LP_ASSERT_OK(lp_rmsnorm_forward(y, rstd, x, w, N, C, eps));
    else LP_ASSERT_OK(lp_layernorm_forward(y, mean, rstd, x, w, b, N, C, eps));
    ref_norm(&ctx, yref);
    kt_assert_close_d(y, yref, nx, 1e-5, 1e-4, rms ? "rmsnorm forward" : "layernorm forward");
    /* in place gives the same result */
    float *y2 = malloc(nx * sizeof(float));
    memcpy(y2, x, nx * sizeof(float));
    if (rms) LP_ASSERT_OK(lp_rmsnorm_forward(y2, NULL, y2, w, N, C, eps));
    else LP_ASSERT_OK(lp_layernorm_forward(y2, NULL, NULL, y2, w, b, N, C, eps));
    lp_test_assert_allclose(y2, y, nx, 0, 1e-6, "norm in place");

    float *dx = kt_fill(nx, 0.5f), *dw = kt_fill(C, -1.0f), *db = kt_fill(C, 2.0f);
    if (rms) LP_ASSERT_OK(lp_rmsnorm_backward(dx, w ? dw : NULL, R, x, w, rstd, N, C));
    else LP_ASSERT_OK(lp_layernorm_backward(dx, w ? dw : NULL, b ? db : NULL, R, x, w, mean, rstd, N, C));
    for (size_t i = 0; i < nx; i++) dx[i] -= 0.5f;
    for (int i = 0; i < C; i++) { dw[i] += 1.0f; db[i] -= 2.0f; }
    double *g = kt_dzeros(nx);
    kt_fd_grad(ref_norm, &ctx, ctx.x, nx, Rd, nx, g);
    kt_assert_close_d(dx, g, nx, ATOL, RTOL, rms ? "rmsnorm dx" : "layernorm dx");
    if (w) {
        kt_fd_grad(ref_norm, &ctx, ctx.w, C, Rd, nx, g);
        kt_assert_close_d(dw, g, C, ATOL, RTOL, rms ? "rmsnorm dweight" : "layernorm dweight");
    }
    if (b) {
        kt_fd_grad(ref_norm, &ctx, ctx.b, C, Rd, nx, g);
        kt_assert_close_d(db, g, C, ATOL, RTOL, "layernorm dbias");
    }
    /* parameter gradients only (dx NULL) match */
    if (w) {
        float *dw2 = kt_zeros(C);
        if (rms) LP_ASSERT_OK(lp_rmsnorm_backward(NULL, dw2, R, x, w, rstd, N, C));
        else LP_ASSERT_OK(lp_layernorm_backward(NULL, dw2, NULL, R, x, w, mean, rstd, N, C));
        lp_test_assert_allclose(dw2, dw, C, 1e-5, 1e-5, "dweight alone");
        free(dw2);
    }
    free(x); free(R); free(w); free(b); free(y); free(y2); free(mean); free(rstd); free(yref); free(Rd);
    free(dx); free(dw); free(db); free(g); free(ctx.x); free(ctx.w); free(ctx.b);
}

static void test_layernorm(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 100);
    check_norm(&r, 0, 1, 1, 1);
    check_norm(&r, 0, 3, 7, 1);
    check_norm(&r, 0, 1, 16, 0);
    check_norm(&r, 0, 5, 33, 1);
    check_norm(&r, 0, 2, 300, 1);   /* > one column block */
}

static void test_rmsnorm(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 101);
    check_norm(&r, 1, 1, 1, 1);
    check_norm(&r, 1, 3, 7, 1);
    check_norm(&r, 1, 4, 9, 0);
    check_norm(&r, 1, 2, 300, 1);
}

static void test_layernorm_constant_row(void **state)
{
    (void)state;
    /* a constant row: var 0 -> y = bias, rstd = 1/sqrt(eps), no NaN */
    float x[4] = {3, 3, 3, 3}, w[4] = {1, 2, 3, 4}, b[4] = {0.5f, 0, -1, 2}, y[4], mean, rstd;
    LP_ASSERT_OK(lp_layernorm_forward(y, &mean, &rstd, x, w, b, 1, 4, 1e-5f));
    lp_test_assert_allclose(y, b, 4, 1e-6, 0, "constant row");
    LP_ASSERT_CLOSE(rstd, 1.0 / sqrt(1e-5), 0, 1e-5, "rstd");
    float z[3] = {0, 0, 0}, rz;
    LP_ASSERT_OK(lp_rmsnorm_forward(z, &rz, z, NULL, 1, 3, 1e-6f));
    assert_true(z[0] == 0.0f && isfinite(rz));
}

static void test_threaded_matches_serial(void **state)
{
    (void)state;
    /* 64 x 600 = 38400 elements: past the threading threshold and over several column
     * blocks; rows are independent and column blocks fixed, so 1 and 2 threads agree bitwise. */
    lp_rng r;
    lp_rng_seed(&r, 102);
    const int64_t N = 64, C = 600;
    size_t n = (size_t)(N * C);
    float *x = kt_randn(&r, n, 1.0f), *w = kt_randn(&r, C, 1.0f), *b = kt_randn(&r, C, 1.0f), *dy = kt_randn(&r, n, 1.0f);
    float *out[2], *dx[2], *dw[2], *db[2], *mean = kt_zeros(N), *rstd = kt_zeros(N);
    for (int rms = 0; rms < 2; rms++) {
        for (int t = 0; t < 2; t++) {
            LP_ASSERT_OK(lp_threads_set(t + 1));
            out[t] = kt_zeros(n); dx[t] = kt_zeros(n); dw[t] = kt_zeros(C); db[t] = kt_zeros(C);
            if (rms) {
                LP_ASSERT_OK(lp_rmsnorm_forward(out[t], rstd, x, w, N, C, 1e-6f));
                LP_ASSERT_OK(lp_rmsnorm_backward(dx[t], dw[t], dy, x, w, rstd, N, C));
            } else {
                LP_ASSERT_OK(lp_layernorm_forward(out[t], mean, rstd, x, w, b, N, C, 1e-5f));
                LP_ASSERT_OK(lp_layernorm_backward(dx[t], dw[t], db[t], dy, x, w, mean, rstd, N, C));
            }
        }
        assert_memory_equal(out[0], out[1], n * sizeof(float));
        assert_memory_equal(dx[0], dx[1], n * sizeof(float));
        assert_memory_equal(dw[0], dw[1], (size_t)C * sizeof(float));
        assert_memory_equal(db[0], db[1], (size_t)C * sizeof(float));
        /* and the threaded run agrees with the double reference */
        norm_ctx ctx = {(int)N, (int)C, rms, rms ? 1e-6 : 1e-5, kt_to_double(x, n), kt_to_double(w, C),
                        rms ? NULL : kt_to_double(b, C)};
        double *ref = kt_dzeros(n);
        ref_norm(&ctx, ref);
        kt_assert_close_d(out[1], ref, n, 1e-5, 1e-4, "threaded norm forward");
        free(ref); free(ctx.x); free(ctx.w); free(ctx.b);
        for (int t = 0; t < 2; t++) { free(out[t]); free(dx[t]); free(dw[t]); free(db[t]); }
    }
    free(x); free(w); free(b); free(dy); free(mean); free(rstd);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[8] = {0};
    KT_EXPECT_ERR(lp_layernorm_forward(NULL, buf, buf, buf, NULL, NULL, 2, 2, 1e-5f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_layernorm_forward(buf, buf, buf, buf, NULL, NULL, 0, 2, 1e-5f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_layernorm_forward(buf, buf, buf, buf, NULL, NULL, 2, 2, -1.0f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_layernorm_forward(buf, buf, buf, buf, NULL, NULL, KT_BIG, KT_BIG, 1e-5f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_layernorm_backward(buf, NULL, NULL, buf, buf, NULL, NULL, buf, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_layernorm_backward(buf, NULL, NULL, buf, buf, NULL, buf, buf, 2, -2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rmsnorm_forward(buf, buf, NULL, buf, 2, 2, 1e-6f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rmsnorm_forward(buf, buf, buf, buf, 2, 0, 1e-6f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rmsnorm_forward(buf, buf, buf, buf, 2, 2, NAN), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rmsnorm_backward(buf, buf, buf, buf, buf, NULL, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rmsnorm_backward(buf, buf, buf, buf, buf, buf, INT64_MAX, 2), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_layernorm_constant_row),
        cmocka_unit_test(test_threaded_matches_serial),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
