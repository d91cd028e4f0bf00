/* Kernels: row softmax, cross-entropy fused with softmax (ignore index, mean
 * over counted targets). Forward vs a double reference; backward vs central
 * differences in double (rtol 1e-3, atol 1e-4 softmax; atol 1e-5 cross-entropy,
 * whose gradients are divided by the count). */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"
#include "leanprop/threads.h"

#define RTOL 1e-3
#define ATOL 1e-4

typedef struct {
    int N, V;
    double *x;
    const int32_t *t;
    double dloss;
} sm_ctx;

static void ref_softmax(void *vctx, double *out)
{
    sm_ctx *c = vctx;
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->V;
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < c->V; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < c->V; j++) s += exp(x[j] - mx);
        for (int j = 0; j < c->V; j++) out[n * c->V + j] = exp(x[j] - mx) / s;
    }
}

static double ref_lse(const double *x, int V)
{
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    for (int j = 0; j < V; j++) s += exp(x[j] - mx);
    return mx + log(s);
}

/* torch cross_entropy(reduction='mean', ignore_index=-100), times dloss (one output) */
static void ref_ce(void *vctx, double *out)
{
    sm_ctx *c = vctx;
    double s = 0;
    int cnt = 0;
    for (int n = 0; n < c->N; n++) {
        if (c->t[n] == LP_IGNORE_INDEX) continue;
        s += ref_lse(c->x + n * c->V, c->V) - c->x[n * c->V + c->t[n]];
        cnt++;
    }
    out[0] = cnt ? s / cnt : 0.0;
}

static void test_softmax(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 300);
    const int shapes[][2] = {{1, 1}, {1, 5}, {4, 1}, {3, 17}, {2, 64}};
    for (int s = 0; s < 5; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        size_t n = (size_t)N * V;
        float *x = kt_randn(&r, n, 3.0f), *R = kt_randn(&r, n, 1.0f);
        x[0] += 200.0f;   /* stability: a huge logit must not overflow */
        sm_ctx ctx = {N, V, kt_to_double(x, n), NULL, 0};
        float *y = kt_zeros(n), *dx = kt_fill(n, 0.25f);
        double *yref = kt_dzeros(n), *Rd = kt_to_double(R, n), *g = kt_dzeros(n);
        LP_ASSERT_OK(lp_softmax_forward(y, x, N, V));
        ref_softmax(&ctx, yref);
        kt_assert_close_d(y, yref, n, 1e-7, 1e-5, "softmax forward");
        LP_ASSERT_OK(lp_softmax_backward(dx, R, y, N, V));
        for (size_t i = 0; i < n; i++) dx[i] -= 0.25f;
        kt_fd_grad(ref_softmax, &ctx, ctx.x, n, Rd, n, g);
        kt_assert_close_d(dx, g, n, ATOL, RTOL, "softmax dx");
        free(x); free(R); free(y); free(dx); free(yref); free(Rd); free(g); free(ctx.x);
    }
    /* a fully -inf row gives zeros, not NaN */
    float m[3] = {-INFINITY, -INFINITY, -INFINITY}, o[3];
    LP_ASSERT_OK(lp_softmax_forward(o, m, 1, 3));
    assert_true(o[0] == 0.0f && o[1] == 0.0f && o[2] == 0.0f);
}

static void check_ce(lp_rng *r, int N, int V, int n_ignored, float offset)
{
    size_t n = (size_t)N * V;
    float *x = kt_randn(r, n, 2.0f);
    for (size_t i = 0; i < n; i++) x[i] += offset;
    int32_t *t = malloc((size_t)N * sizeof *t);
    for (int i = 0; i < N; i++) t[i] = i < n_ignored ? LP_IGNORE_INDEX : (int32_t)lp_rng_below(r, (uint64_t)V);
    const double dloss = 0.7;
    sm_ctx ctx = {N, V, kt_to_double(x, n), t, dloss};
    float loss, *lse = kt_zeros(N), *dl = kt_fill(n, 99.0f);
    int64_t count;
    LP_ASSERT_OK(lp_crossentropy_forward(&loss, &count, lse, x, t, N, V, LP_IGNORE_INDEX));
    assert_int_equal(count, N - n_ignored);
    double ref;
    ref_ce(&ctx, &ref);
    LP_ASSERT_CLOSE(loss, ref, 1e-5, 1e-5, "cross-entropy loss");
    for (int i = 0; i < N; i++) LP_ASSERT_CLOSE(lse[i], ref_lse(ctx.x + i * V, V), 1e-5, 1e-6, "lse");
    /* backward overwrites (the 99s vanish) */
    LP_ASSERT_OK(lp_crossentropy_backward(dl, x, lse, t, count, (float)dloss, N, V, LP_IGNORE_INDEX));
    double *g = kt_dzeros(n), Rd = dloss;
    kt_fd_grad(ref_ce, &ctx, ctx.x, n, &Rd, 1, g);
    kt_assert_close_d(dl, g, n, 1e-5, RTOL, "cross-entropy dlogits");
    /* in place over the logits, lse recomputed: same result */
    float *xin = malloc(n * sizeof(float));
    memcpy(xin, x, n * sizeof(float));
    LP_ASSERT_OK(lp_crossentropy_backward(xin, xin, NULL, t, count, (float)dloss, N, V, LP_IGNORE_INDEX));
    lp_test_assert_allclose(xin, dl, n, 1e-7, 1e-5, "cross-entropy in place");
    free(x); free(t); free(lse); free(dl); free(g); free(xin); free(ctx.x);
}

static void test_crossentropy(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 301);
    check_ce(&r, 1, 1, 0, 0.0f);
    check_ce(&r, 1, 7, 0, 0.0f);
    check_ce(&r, 5, 11, 2, 0.0f);
    check_ce(&r, 4, 33, 1, 1000.0f);   /* large logits: stable */
    check_ce(&r, 3, 4, 3, 0.0f);       /* all ignored: loss 0, zero gradients */
}

static void test_crossentropy_values(void **state)
{
    (void)state;
    /* uniform logits over V classes: loss = log V exactly; gradient (1/V - onehot)/count */
    float x[2 * 4] = {0}, d[8];
    int32_t t[2] = {3, LP_IGNORE_INDEX};
    float loss;
    int64_t count;
    LP_ASSERT_OK(lp_crossentropy_forward(&loss, &count, NULL, x, t, 2, 4, LP_IGNORE_INDEX));
    assert_int_equal(count, 1);
    LP_ASSERT_CLOSE(loss, log(4.0), 1e-6, 0, "uniform loss");
    /* count 3 as if accumulated over micro-batches */
    LP_ASSERT_OK(lp_crossentropy_backward(d, x, NULL, t, 3, 1.0f, 2, 4, LP_IGNORE_INDEX));
    LP_ASSERT_CLOSE(d[0], 0.25 / 3, 1e-7, 0, "grad");
    LP_ASSERT_CLOSE(d[3], -0.75 / 3, 1e-7, 0, "grad target");
    assert_true(d[4] == 0.0f && d[7] == 0.0f);
    /* a custom ignore index */
    int32_t t2[2] = {0, 5};
    KT_EXPECT_ERR(lp_crossentropy_forward(&loss, &count, NULL, x, t2, 2, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "row 1"));
    LP_ASSERT_OK(lp_crossentropy_forward(&loss, &count, NULL, x, t2, 2, 4, 5));
    assert_int_equal(count, 1);
}

static void test_threaded_large(void **state)
{
    (void)state;
    /* 40 x 1000 logits (threaded path): loss vs the double reference, gradients bitwise equal
     * between 1 and 2 threads (rows are independent). */
    lp_rng r;
    lp_rng_seed(&r, 302);
    const int N = 40, V = 1000;
    size_t n = (size_t)N * V;
    float *x = kt_randn(&r, n, 3.0f), *d1 = kt_zeros(n), *d2 = kt_zeros(n), *s1 = kt_zeros(n), *s2 = kt_zeros(n);
    int32_t t[40];
    for (int i = 0; i < N; i++) t[i] = i % 7 == 0 ? LP_IGNORE_INDEX : (int32_t)lp_rng_below(&r, V);
    sm_ctx ctx = {N, V, kt_to_double(x, n), t, 1.0};
    double ref;
    ref_ce(&ctx, &ref);
    float loss1, loss2;
    int64_t c1, c2;
    LP_ASSERT_OK(lp_threads_set(1));
    LP_ASSERT_OK(lp_crossentropy_forward(&loss1, &c1, NULL, x, t, N, V, LP_IGNORE_INDEX));
    LP_ASSERT_OK(lp_crossentropy_backward(d1, x, NULL, t, c1, 1.0f, N, V, LP_IGNORE_INDEX));
    LP_ASSERT_OK(lp_softmax_forward(s1, x, N, V));
    LP_ASSERT_OK(lp_threads_set(2));
    LP_ASSERT_OK(lp_crossentropy_forward(&loss2, &c2, NULL, x, t, N, V, LP_IGNORE_INDEX));
    LP_ASSERT_OK(lp_crossentropy_backward(d2, x, NULL, t, c2, 1.0f, N, V, LP_IGNORE_INDEX));
    LP_ASSERT_OK(lp_softmax_forward(s2, x, N, V));
    assert_int_equal(c1, c2);
    LP_ASSERT_CLOSE(loss2, ref, 1e-5, 1e-5, "threaded loss");
    LP_ASSERT_CLOSE(loss1, ref, 1e-5, 1e-5, "serial loss");
    assert_memory_equal(d1, d2, n * sizeof(float));
    assert_memory_equal(s1, s2, n * sizeof(float));
    free(x); free(d1); free(d2); free(s1); free(s2); free(ctx.x);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[8] = {0}, loss;
    int32_t t[2] = {0, -1};
    int64_t count;
    KT_EXPECT_ERR(lp_softmax_forward(NULL, buf, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_softmax_forward(buf, buf, 2, 0), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_softmax_backward(buf, buf, buf, KT_BIG, KT_BIG), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_forward(&loss, &count, NULL, buf, t, 2, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_forward(NULL, &count, NULL, buf, t, 1, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_forward(&loss, &count, NULL, buf, NULL, 1, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_forward(&loss, &count, NULL, buf, t, -1, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_crossentropy_backward(buf, buf, NULL, t, 1, 1.0f, 1, 4, LP_IGNORE_INDEX));
    KT_EXPECT_ERR(lp_crossentropy_backward(buf, buf, NULL, t, -1, 1.0f, 1, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_backward(buf, buf, NULL, t, 1, 1.0f, 2, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_crossentropy_backward(NULL, buf, NULL, t, 1, 1.0f, 1, 4, LP_IGNORE_INDEX), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_crossentropy_values),
        cmocka_unit_test(test_threaded_large),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
