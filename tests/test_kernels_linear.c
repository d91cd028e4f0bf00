/* Kernels: lp_sgemm, linear, bias, residual. Forward vs a double reference;
 * backward vs central finite differences in double (rtol 1e-3, atol 1e-4). */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"

#define RTOL 1e-3
#define ATOL 1e-4

/* ---- sgemm ---- */

static void ref_gemm(double *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                     int ta, int tb, double alpha, double beta)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * C[i * ldc + j]);
        }
}

static void test_sgemm_all_transposes(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 1);
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {8, 1, 4}, {1, 9, 2}, {17, 13, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 2; pad++) {
                    /* pad: leading dimensions larger than the row length */
                    int lda = (ta ? M : K) + 3 * pad, ldb = (tb ? K : N) + 2 * pad, ldc = N + pad;
                    float *A = kt_randn(&r, (size_t)(ta ? K : M) * lda, 1.0f);
                    float *B = kt_randn(&r, (size_t)(tb ? N : K) * ldb, 1.0f);
                    float *C = kt_randn(&r, (size_t)M * ldc, 1.0f);
                    double *Cd = kt_to_double(C, (size_t)M * ldc);
                    float alpha = 0.5f + (float)pad, beta = (ta + tb) % 2 ? 1.0f : 0.0f;
                    if (!beta) C[0] = NAN; /* beta 0 must overwrite, not read */
                    LP_ASSERT_OK(lp_sgemm(C, pad ? ldc : 0, A, pad ? lda : 0, B, pad ? ldb : 0, M, N, K,
                                          ta ? LP_TRANS : LP_NOTRANS, tb ? LP_TRANS : LP_NOTRANS, alpha, beta));
                    ref_gemm(Cd, ldc, A, lda, B, ldb, M, N, K, ta, tb, alpha, beta);
                    for (int i = 0; i < M; i++)
                        kt_assert_close_d(C + i * ldc, Cd + i * ldc, (size_t)N, 1e-5, 1e-5, "sgemm");
                    free(A); free(B); free(C); free(Cd);
                }
    }
}

/* ---- linear ---- */

typedef struct {
    int N, C, OC;
    double *x, *W, *b;
} lin_ctx;

static void ref_linear(void *vctx, double *out)
{
    lin_ctx *c = vctx;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int i = 0; i < c->C; i++) s += c->x[n * c->C + i] * c->W[o * c->C + i];
            out[n * c->OC + o] = s;
        }
}

static void check_linear(lp_rng *r, int N, int C, int OC, int with_bias)
{
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = kt_randn(r, nx, 1.0f), *W = kt_randn(r, nw, 0.5f), *b = with_bias ? kt_randn(r, OC, 1.0f) : NULL;
    float *y = kt_zeros(no), *R = kt_randn(r, no, 1.0f);
    lin_ctx ctx = {N, C, OC, kt_to_double(x, nx), kt_to_double(W, nw), b ? kt_to_double(b, OC) : NULL};
    double *yref = kt_dzeros(no), *Rd = kt_to_double(R, no);
    for (size_t i = 0; i < no; i++) y[i] = NAN;   /* forward must overwrite */
    LP_ASSERT_OK(lp_linear_forward(y, x, W, b, N, C, OC));
    ref_linear(&ctx, yref);
    kt_assert_close_d(y, yref, no, 1e-5, 1e-5, "linear forward");

    /* Backward accumulates: start from a known non-zero value and subtract it. */
    float *dx = kt_fill(nx, 0.25f), *dW = kt_fill(nw, -0.5f), *db = kt_fill(OC, 1.0f);
    LP_ASSERT_OK(lp_linear_backward(dx, dW, with_bias ? db : NULL, R, x, W, N, C, OC));
    for (size_t i = 0; i < nx; i++) dx[i] -= 0.25f;
    for (size_t i = 0; i < nw; i++) dW[i] += 0.5f;
    for (int i = 0; i < OC; i++) db[i] -= 1.0f;
    double *g = kt_dzeros(nx > nw ? nx : nw);
    kt_fd_grad(ref_linear, &ctx, ctx.x, nx, Rd, no, g);
    kt_assert_close_d(dx, g, nx, ATOL, RTOL, "linear dinp");
    kt_fd_grad(ref_linear, &ctx, ctx.W, nw, Rd, no, g);
    kt_assert_close_d(dW, g, nw, ATOL, RTOL, "linear dW");
    if (with_bias) {
        kt_fd_grad(ref_linear, &ctx, ctx.b, OC, Rd, no, g);
        kt_assert_close_d(db, g, OC, ATOL, RTOL, "linear db");
    }
    /* Frozen weights: only dinp, the parameter gradients are skipped (W still read). */
    float *dx2 = kt_zeros(nx);
    LP_ASSERT_OK(lp_linear_backward(dx2, NULL, NULL, R, NULL, W, N, C, OC));
    lp_test_assert_allclose(dx2, dx, nx, 1e-6, 1e-5, "linear dinp only");
    free(x); free(W); free(b); free(y); free(R); free(dx); free(dW); free(db); free(dx2); free(g);
    free(ctx.x); free(ctx.W); free(ctx.b); free(yref); free(Rd);
}

static void test_linear_forward_backward(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 2);
    check_linear(&r, 1, 1, 1, 1);
    check_linear(&r, 3, 5, 4, 1);
    check_linear(&r, 7, 1, 3, 0);
    check_linear(&r, 2, 9, 1, 1);
    check_linear(&r, 6, 8, 5, 0);
}

/* ---- bias and residual ---- */

static void test_bias_and_residual(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 3);
    const int shapes[][2] = {{1, 1}, {4, 3}, {3, 300}, {1, 7}};
    for (size_t s = 0; s < 4; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *y = kt_randn(&r, n, 1.0f), *b = kt_randn(&r, C, 1.0f);
        double *yd = kt_to_double(y, n);
        LP_ASSERT_OK(lp_bias_forward(y, b, N, C));
        for (size_t i = 0; i < n; i++) yd[i] += b[i % C];
        kt_assert_close_d(y, yd, n, 1e-6, 1e-6, "bias forward");
        /* db += column sums of dout */
        float *db = kt_fill(C, 2.0f);
        double *dbr = kt_dzeros(C);
        for (size_t i = 0; i < n; i++) dbr[i % C] += y[i];
        for (int c = 0; c < C; c++) dbr[c] += 2.0;
        LP_ASSERT_OK(lp_bias_backward(db, y, N, C));
        kt_assert_close_d(db, dbr, C, 1e-5, 1e-5, "bias backward");
        /* residual: out = a + b in place, da/db += dout */
        float *a = kt_randn(&r, n, 1.0f), *d = kt_randn(&r, n, 1.0f);
        double *sum = kt_dzeros(n);
        for (size_t i = 0; i < n; i++) sum[i] = (double)a[i] + (double)y[i];
        LP_ASSERT_OK(lp_residual_forward(a, a, y, (int64_t)n));
        kt_assert_close_d(a, sum, n, 1e-6, 1e-6, "residual forward (aliased)");
        for (size_t i = 0; i < n; i++) sum[i] = (double)a[i] + (double)d[i];
        LP_ASSERT_OK(lp_residual_backward(a, NULL, d, (int64_t)n));
        kt_assert_close_d(a, sum, n, 1e-6, 1e-6, "residual backward");
        free(y); free(b); free(yd); free(db); free(dbr); free(a); free(d); free(sum);
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[16] = {0};
    KT_EXPECT_ERR(lp_sgemm(NULL, 0, buf, 0, buf, 0, 2, 2, 2, LP_NOTRANS, LP_NOTRANS, 1, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgemm(buf, 0, buf, 0, buf, 0, 0, 2, 2, LP_NOTRANS, LP_NOTRANS, 1, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgemm(buf, 0, buf, 0, buf, 0, 2, -1, 2, LP_NOTRANS, LP_NOTRANS, 1, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgemm(buf, 0, buf, 0, buf, 0, 2, 2, 2, (lp_transpose)7, LP_NOTRANS, 1, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgemm(buf, 1, buf, 0, buf, 0, 2, 2, 2, LP_NOTRANS, LP_NOTRANS, 1, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_sgemm(buf, 0, buf, 0, buf, 0, (int64_t)1 << 32, 1, 1, LP_NOTRANS, LP_NOTRANS, 1, 0),
                  LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_forward(buf, buf, NULL, NULL, 2, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_forward(buf, buf, buf, NULL, 2, 0, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_forward(buf, buf, buf, NULL, KT_BIG, KT_BIG, 2), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "overflow"));
    KT_EXPECT_ERR(lp_linear_backward(buf, NULL, NULL, buf, buf, NULL, 2, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_backward(NULL, buf, NULL, buf, NULL, buf, 2, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_backward(NULL, NULL, buf, NULL, buf, buf, 2, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_linear_backward(buf, buf, buf, buf, buf, buf, 2, 2, -3), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_bias_forward(buf, NULL, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_bias_backward(buf, buf, 2, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_residual_forward(buf, buf, buf, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_residual_backward(buf, buf, NULL, 4), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_residual_forward(buf, buf, buf, INT64_MAX), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_all_transposes),
        cmocka_unit_test(test_linear_forward_backward),
        cmocka_unit_test(test_bias_and_residual),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
