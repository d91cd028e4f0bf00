/* Kernels: RoPE (HF Llama rotate_half) and embedding lookup/scatter-add.
 * Forward vs double references; backward vs central differences in double
 * (rtol 1e-3, atol 1e-4). */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"

#define RTOL 1e-3
#define ATOL 1e-4

/* ---- RoPE ---- */

typedef struct {
    int64_t B, T, H, D;
    const int32_t *pos;
    float theta;
    double *x;
} rope_ctx;

/* Angles as HF computes them (float32 inv_freq and product), rotation in double. */
static void ref_rope(void *vctx, double *out)
{
    rope_ctx *c = vctx;
    const int64_t half = c->D / 2;
    for (int64_t bt = 0; bt < c->B * c->T; bt++) {
        float p = c->pos ? (float)c->pos[bt] : (float)(bt % c->T);
        for (int64_t h = 0; h < c->H; h++)
            for (int64_t i = 0; i < half; i++) {
                float inv = 1.0f / powf(c->theta, (float)(2 * i) / (float)c->D);
                double a = (double)(p * inv);
                const double *x = c->x + (bt * c->H + h) * c->D;
                double *y = out + (bt * c->H + h) * c->D;
                /* q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x2, x1) */
                y[i] = x[i] * cos(a) - x[i + half] * sin(a);
                y[i + half] = x[i + half] * cos(a) + x[i] * sin(a);
            }
    }
}

static void check_rope(lp_rng *r, int64_t B, int64_t T, int64_t H, int64_t D, const int32_t *pos, float theta)
{
    size_t n = (size_t)(B * T * H * D);
    float *x = kt_randn(r, n, 1.0f), *R = kt_randn(r, n, 1.0f), *y = kt_zeros(n), *dx = kt_fill(n, 1.0f);
    rope_ctx ctx = {B, T, H, D, pos, theta, kt_to_double(x, n)};
    double *yref = kt_dzeros(n), *Rd = kt_to_double(R, n), *g = kt_dzeros(n);
    LP_ASSERT_OK(lp_rope_forward(y, x, pos, B, T, H, D, theta));
    ref_rope(&ctx, yref);
    kt_assert_close_d(y, yref, n, 1e-6, 1e-5, "rope forward");
    LP_ASSERT_OK(lp_rope_backward(dx, R, pos, B, T, H, D, theta));
    for (size_t i = 0; i < n; i++) dx[i] -= 1.0f;
    kt_fd_grad(ref_rope, &ctx, ctx.x, n, Rd, n, g);
    kt_assert_close_d(dx, g, n, ATOL, RTOL, "rope dx");
    /* in place */
    LP_ASSERT_OK(lp_rope_forward(x, x, pos, B, T, H, D, theta));
    assert_memory_equal(x, y, n * sizeof(float));
    free(x); free(R); free(y); free(dx); free(ctx.x); free(yref); free(Rd); free(g);
}

static void test_rope(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 500);
    check_rope(&r, 1, 1, 1, 2, NULL, 10000.0f);
    check_rope(&r, 2, 5, 3, 8, NULL, 10000.0f);
    int32_t pos[2 * 3] = {0, 7, 1000, 3, 3, 50};
    check_rope(&r, 2, 3, 2, 6, pos, 500000.0f);   /* Llama 3 theta, arbitrary positions */
}

static void test_rope_hand_values(void **state)
{
    (void)state;
    /* D = 4, position 1: inv_freq = (1, 1/100); pairs are (0, 2) and (1, 3). */
    float x[4] = {1, 0, 0, 0}, y[4];
    int32_t pos = 1;
    LP_ASSERT_OK(lp_rope_forward(y, x, &pos, 1, 1, 1, 4, 10000.0f));
    LP_ASSERT_CLOSE(y[0], cos(1.0), 1e-6, 0, "y0");
    LP_ASSERT_CLOSE(y[1], 0.0, 1e-7, 0, "y1");
    LP_ASSERT_CLOSE(y[2], sin(1.0), 1e-6, 0, "y2 (pair of 0)");
    float x2[4] = {0, 1, 0, 0};
    LP_ASSERT_OK(lp_rope_forward(y, x2, &pos, 1, 1, 1, 4, 10000.0f));
    LP_ASSERT_CLOSE(y[1], cos(0.01), 1e-6, 0, "y1");
    LP_ASSERT_CLOSE(y[3], sin(0.01), 1e-6, 0, "y3 (pair of 1)");
    /* position 0 is the identity; backward undoes forward */
    pos = 0;
    LP_ASSERT_OK(lp_rope_forward(y, x2, &pos, 1, 1, 1, 4, 10000.0f));
    assert_memory_equal(y, x2, sizeof y);
    float z[4] = {0.3f, -1.2f, 2.0f, 0.7f}, rz[4], back[4] = {0};
    pos = 37;
    LP_ASSERT_OK(lp_rope_forward(rz, z, &pos, 1, 1, 1, 4, 10000.0f));
    LP_ASSERT_OK(lp_rope_backward(back, rz, &pos, 1, 1, 1, 4, 10000.0f));
    lp_test_assert_allclose(back, z, 4, 1e-6, 1e-6, "inverse rotation");
}

static void test_rope_subset_positions(void **state)
{
    (void)state;
    /* Rows 2 and 5 of a sequence, rotated alone with positions {2, 5}, equal the full rotation's rows. */
    lp_rng r;
    lp_rng_seed(&r, 501);
    const int64_t T = 6, H = 2, D = 4, row = H * D;
    float *x = kt_randn(&r, (size_t)(T * row), 1.0f), *y = kt_zeros((size_t)(T * row));
    LP_ASSERT_OK(lp_rope_forward(y, x, NULL, 1, T, H, D, 10000.0f));
    float xs[2 * 8], ys[2 * 8];
    memcpy(xs, x + 2 * row, row * sizeof(float));
    memcpy(xs + row, x + 5 * row, row * sizeof(float));
    int32_t pos[2] = {2, 5};
    LP_ASSERT_OK(lp_rope_forward(ys, xs, pos, 1, 2, H, D, 10000.0f));
    assert_memory_equal(ys, y + 2 * row, row * sizeof(float));
    assert_memory_equal(ys + row, y + 5 * row, row * sizeof(float));
    free(x); free(y);
}

/* ---- embedding ---- */

typedef struct {
    int64_t N, C;
    const int32_t *ids;
    double *W;
} emb_ctx;

static void ref_embedding(void *vctx, double *out)
{
    emb_ctx *c = vctx;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t i = 0; i < c->C; i++) out[n * c->C + i] = c->W[c->ids[n] * c->C + i];
}

static void check_embedding(lp_rng *r, int64_t N, int64_t V, int64_t C, int fd)
{
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    for (int64_t n = 0; n < N; n++) ids[n] = (int32_t)lp_rng_below(r, (uint64_t)V);
    ids[N - 1] = ids[0];   /* a repeated id sums */
    size_t nw = (size_t)(V * C), no = (size_t)(N * C);
    float *W = kt_randn(r, nw, 1.0f), *R = kt_randn(r, no, 1.0f), *y = kt_zeros(no), *dW = kt_fill(nw, 0.5f);
    emb_ctx ctx = {N, C, ids, kt_to_double(W, nw)};
    double *yref = kt_dzeros(no), *Rd = kt_to_double(R, no), *g = kt_dzeros(nw);
    LP_ASSERT_OK(lp_embedding_forward(y, ids, W, N, V, C));
    ref_embedding(&ctx, yref);
    kt_assert_close_d(y, yref, no, 1e-30, 0, "embedding forward (exact copy)");
    LP_ASSERT_OK(lp_embedding_backward(dW, R, ids, N, V, C));
    for (size_t i = 0; i < nw; i++) dW[i] -= 0.5f;
    if (fd) {
        kt_fd_grad(ref_embedding, &ctx, ctx.W, nw, Rd, no, g);
    } else {   /* large: the exact scatter-add in double */
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < C; i++) g[ids[n] * C + i] += Rd[n * C + i];
    }
    kt_assert_close_d(dW, g, nw, ATOL, RTOL, "embedding dW");
    free(ids); free(W); free(R); free(y); free(dW); free(ctx.W); free(yref); free(Rd); free(g);
}

static void test_embedding(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 502);
    check_embedding(&r, 1, 1, 1, 1);
    check_embedding(&r, 5, 3, 4, 1);
    check_embedding(&r, 9, 20, 7, 1);
    check_embedding(&r, 300, 50, 600, 0);   /* threaded, several column blocks */
}

static void test_embedding_bad_ids(void **state)
{
    (void)state;
    float W[3 * 2] = {1, 2, 3, 4, 5, 6}, out[2 * 2] = {-7, -7, -7, -7}, dW[6] = {0};
    int32_t ids[2] = {1, 3};
    KT_EXPECT_ERR(lp_embedding_forward(out, ids, W, 2, 3, 2), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "position 1"));
    assert_true(out[0] == -7.0f);   /* nothing written */
    ids[1] = -1;
    KT_EXPECT_ERR(lp_embedding_backward(dW, out, ids, 2, 3, 2), LP_ERR_INVALID_ARG);
    assert_true(dW[2] == 0.0f);
    ids[1] = 2;
    LP_ASSERT_OK(lp_embedding_forward(out, ids, W, 2, 3, 2));
    assert_true(out[0] == 3.0f && out[3] == 6.0f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[16] = {0};
    int32_t ids[2] = {0, 0};
    KT_EXPECT_ERR(lp_rope_forward(buf, buf, NULL, 1, 2, 1, 3, 10000.0f), LP_ERR_INVALID_ARG);   /* odd D */
    KT_EXPECT_ERR(lp_rope_forward(buf, buf, NULL, 1, 2, 1, 4, 0.0f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rope_forward(NULL, buf, NULL, 1, 2, 1, 4, 10000.0f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rope_backward(buf, buf, NULL, 0, 2, 1, 4, 10000.0f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_rope_backward(buf, buf, NULL, KT_BIG, KT_BIG, 1, 4, 10000.0f), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_embedding_forward(buf, NULL, buf, 2, 2, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_embedding_forward(buf, ids, buf, 2, 0, 2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_embedding_backward(buf, buf, ids, 2, 2, -2), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_embedding_backward(buf, buf, ids, 2, KT_BIG, KT_BIG), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_rope_hand_values),
        cmocka_unit_test(test_rope_subset_positions),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_embedding_bad_ids),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
