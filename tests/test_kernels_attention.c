/* Kernels: multi-head attention. Forward (out and lse) vs a plain double
 * reference; dq, dk, dv vs central differences of the reference in double
 * (rtol 1e-3, atol 1e-4). Causal/bidirectional, GQA/MQA, key padding,
 * query subsets by original position, permuted key positions, fully masked
 * rows, memory bound, bad arguments. */
#include "test_kernels_util.h"

#include "leanprop/kernels.h"
#include "leanprop/threads.h"

#define RTOL 1e-3
#define ATOL 1e-4

typedef struct {
    lp_attention_params p;
    double *q, *k, *v;
    double *lse;   /* optional output of the reference */
} att_ctx;

static void ref_attention(void *vctx, double *out)
{
    att_ctx *c = vctx;
    const lp_attention_params *p = &c->p;
    const int64_t B = p->B, Tq = p->Tq, Tk = p->Tk, H = p->H, Hkv = p->Hkv, D = p->D;
    const double scale = p->scale != 0 ? p->scale : 1.0 / sqrt((double)D);
    double *s = malloc((size_t)Tk * sizeof *s);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t hk = h / (H / Hkv);
                const double *qi = c->q + ((b * Tq + i) * H + h) * D;
                double *o = out + ((b * Tq + i) * H + h) * D;
                int64_t qp = p->q_pos ? p->q_pos[b * Tq + i] : i;
                double mx = -INFINITY;
                for (int64_t j = 0; j < Tk; j++) {
                    int64_t kp = p->k_pos ? p->k_pos[b * Tk + j] : j;
                    int ok = (!p->key_mask || p->key_mask[b * Tk + j]) && (!p->causal || kp <= qp);
                    s[j] = -INFINITY;
                    if (!ok) continue;
                    double d = 0;
                    for (int64_t e = 0; e < D; e++) d += qi[e] * c->k[((b * Tk + j) * Hkv + hk) * D + e];
                    s[j] = scale * d;
                    if (s[j] > mx) mx = s[j];
                }
                for (int64_t e = 0; e < D; e++) o[e] = 0;
                if (mx == -INFINITY) {
                    if (c->lse) c->lse[(b * H + h) * Tq + i] = -INFINITY;
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < Tk; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                for (int64_t j = 0; j < Tk; j++) {
                    if (s[j] == -INFINITY) continue;
                    double pj = exp(s[j] - mx) / sum;
                    for (int64_t e = 0; e < D; e++) o[e] += pj * c->v[((b * Tk + j) * Hkv + hk) * D + e];
                }
                if (c->lse) c->lse[(b * H + h) * Tq + i] = mx + log(sum);
            }
    free(s);
}

typedef struct {
    float *q, *k, *v, *out, *lse, *dq, *dk, *dv;
    size_t nq, nk, nl;
} att_bufs;

static void bufs_free(att_bufs *b)
{
    free(b->q); free(b->k); free(b->v); free(b->out); free(b->lse); free(b->dq); free(b->dk); free(b->dv);
}

/* Forward + backward (dout = R) of the kernel on random q, k, v. */
static att_bufs run_kernel(lp_rng *r, const lp_attention_params *p, const float *R)
{
    att_bufs b;
    b.nq = (size_t)(p->B * p->Tq * p->H * p->D);
    b.nk = (size_t)(p->B * p->Tk * p->Hkv * p->D);
    b.nl = (size_t)(p->B * p->H * p->Tq);
    b.q = kt_randn(r, b.nq, 1.0f);
    b.k = kt_randn(r, b.nk, 1.0f);
    b.v = kt_randn(r, b.nk, 1.0f);
    b.out = kt_fill(b.nq, NAN);
    b.lse = kt_zeros(b.nl);
    b.dq = kt_zeros(b.nq);
    b.dk = kt_zeros(b.nk);
    b.dv = kt_zeros(b.nk);
    LP_ASSERT_OK(lp_attention_forward(b.out, b.lse, b.q, b.k, b.v, p));
    if (R) LP_ASSERT_OK(lp_attention_backward(b.dq, b.dk, b.dv, R, b.q, b.k, b.v, b.out, b.lse, p));
    return b;
}

static void check_attention(lp_rng *r, lp_attention_params p, const char *what)
{
    size_t nq = (size_t)(p.B * p.Tq * p.H * p.D), nk = (size_t)(p.B * p.Tk * p.Hkv * p.D);
    float *R = kt_randn(r, nq, 1.0f);
    att_bufs b = run_kernel(r, &p, R);
    att_ctx ctx = {p, kt_to_double(b.q, nq), kt_to_double(b.k, nk), kt_to_double(b.v, nk), kt_dzeros(b.nl)};
    double *oref = kt_dzeros(nq), *Rd = kt_to_double(R, nq), *g = kt_dzeros(nq > nk ? nq : nk);
    char msg[128];
    ref_attention(&ctx, oref);
    snprintf(msg, sizeof msg, "%s: forward", what);
    kt_assert_close_d(b.out, oref, nq, 1e-5, 1e-4, msg);
    for (size_t i = 0; i < b.nl; i++) {
        if (ctx.lse[i] == -INFINITY) { assert_true(b.lse[i] == -INFINITY); continue; }
        LP_ASSERT_CLOSE(b.lse[i], ctx.lse[i], 1e-5, 1e-5, "lse");
    }
    free(ctx.lse);
    ctx.lse = NULL;
    kt_fd_grad(ref_attention, &ctx, ctx.q, nq, Rd, nq, g);
    snprintf(msg, sizeof msg, "%s: dq", what);
    kt_assert_close_d(b.dq, g, nq, ATOL, RTOL, msg);
    kt_fd_grad(ref_attention, &ctx, ctx.k, nk, Rd, nq, g);
    snprintf(msg, sizeof msg, "%s: dk", what);
    kt_assert_close_d(b.dk, g, nk, ATOL, RTOL, msg);
    kt_fd_grad(ref_attention, &ctx, ctx.v, nk, Rd, nq, g);
    snprintf(msg, sizeof msg, "%s: dv", what);
    kt_assert_close_d(b.dv, g, nk, ATOL, RTOL, msg);
    for (size_t i = 0; i < nq; i++) assert_false(isnan(b.out[i]) || isnan(b.dq[i]));
    /* accumulation and NULL gradients: a second backward with only dk adds the same dk again */
    float *dk2 = malloc(nk * sizeof(float));
    memcpy(dk2, b.dk, nk * sizeof(float));
    LP_ASSERT_OK(lp_attention_backward(NULL, dk2, NULL, R, b.q, b.k, b.v, b.out, b.lse, &p));
    for (size_t i = 0; i < nk; i++) LP_ASSERT_CLOSE(dk2[i], 2.0 * b.dk[i], 1e-6, 1e-5, "dk accumulates");
    free(dk2);
    free(R); free(oref); free(Rd); free(g); free(ctx.q); free(ctx.k); free(ctx.v);
    bufs_free(&b);
}

static void test_attention_shapes(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 400);
    check_attention(&r, (lp_attention_params){.B = 1, .Tq = 4, .Tk = 4, .H = 2, .Hkv = 2, .D = 4}, "bidirectional");
    check_attention(&r, (lp_attention_params){.B = 2, .Tq = 5, .Tk = 5, .H = 2, .Hkv = 2, .D = 4, .causal = 1},
                    "causal");
    check_attention(&r, (lp_attention_params){.B = 2, .Tq = 5, .Tk = 5, .H = 4, .Hkv = 2, .D = 3, .causal = 1},
                    "causal GQA, odd D");
    check_attention(&r, (lp_attention_params){.B = 1, .Tq = 6, .Tk = 6, .H = 3, .Hkv = 1, .D = 1, .causal = 1},
                    "MQA (Hkv = 1), D = 1");
    check_attention(&r, (lp_attention_params){.B = 1, .Tq = 1, .Tk = 1, .H = 1, .Hkv = 1, .D = 2, .causal = 1},
                    "T = 1");
    check_attention(&r, (lp_attention_params){.B = 2, .Tq = 3, .Tk = 6, .H = 2, .Hkv = 1, .D = 5, .scale = 0.3f},
                    "cross-attention Tq != Tk, explicit scale");
}

static void test_attention_padding_and_empty_rows(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 401);
    /* batch 0: last two keys are padding; batch 1: every key is padding (all rows empty) */
    int32_t mask[2 * 5] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    lp_attention_params p = {.B = 2, .Tq = 5, .Tk = 5, .H = 2, .Hkv = 1, .D = 3, .causal = 1, .key_mask = mask};
    check_attention(&r, p, "causal + key padding");
    p.causal = 0;
    check_attention(&r, p, "bidirectional + key padding");
    /* left padding under causal: the first rows of batch 0 see no key at all */
    int32_t left[2 * 5] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    p.key_mask = left;
    p.causal = 1;
    check_attention(&r, p, "left padding, empty leading rows");
    /* the empty rows: output exactly 0, lse -inf, zero gradients, no NaN */
    size_t nq = 2 * 5 * 2 * 3;
    float *R = kt_randn(&r, nq, 1.0f);
    att_bufs b = run_kernel(&r, &p, R);
    for (int i = 0; i < 2; i++)   /* batch 0, rows 0 and 1 */
        for (int h = 0; h < 2; h++) {
            assert_true(b.lse[(0 * 2 + h) * 5 + i] == -INFINITY);
            for (int d = 0; d < 3; d++) {
                assert_true(b.out[((0 * 5 + i) * 2 + h) * 3 + d] == 0.0f);
                assert_true(b.dq[((0 * 5 + i) * 2 + h) * 3 + d] == 0.0f);
            }
        }
    for (int d = 0; d < 3; d++) assert_true(b.dk[d] == 0.0f && b.dv[d] == 0.0f);   /* padded key 0 */
    free(R);
    bufs_free(&b);
}

static void test_attention_query_subset(void **state)
{
    (void)state;
    /* TokenTune: run only query rows {1, 4, 6} (with their original positions) against
     * all keys; outputs and dq equal those rows of the full computation, and dk, dv equal
     * the full backward with dout zero on the other rows. */
    lp_rng r;
    lp_rng_seed(&r, 402);
    const int64_t B = 2, T = 7, H = 4, Hkv = 2, D = 3, S = 3;
    const int32_t rows[3] = {1, 4, 6};
    int32_t mask[2 * 7] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    lp_attention_params full = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = Hkv, .D = D, .causal = 1, .key_mask = mask};
    size_t nq = (size_t)(B * T * H * D), nk = (size_t)(B * T * Hkv * D), row = (size_t)(H * D);
    float *R = kt_randn(&r, nq, 1.0f);
    for (int64_t b = 0; b < B; b++)   /* dout zero outside the subset */
        for (int64_t t = 0; t < T; t++)
            if (t != 1 && t != 4 && t != 6) memset(R + (b * T + t) * row, 0, row * sizeof(float));
    att_bufs f = run_kernel(&r, &full, R);

    int32_t qpos[2 * 3];
    float *qs = kt_zeros((size_t)(B * S) * row), *Rs = kt_zeros((size_t)(B * S) * row);
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            qpos[b * S + s] = rows[s];
            memcpy(qs + (b * S + s) * row, f.q + (b * T + rows[s]) * row, row * sizeof(float));
            memcpy(Rs + (b * S + s) * row, R + (b * T + rows[s]) * row, row * sizeof(float));
        }
    lp_attention_params sub = full;
    sub.Tq = S;
    sub.q_pos = qpos;
    assert_int_equal(lp_attention_saved_bytes(&sub), (size_t)(B * H * S) * sizeof(float));
    float *out = kt_zeros((size_t)(B * S) * row), *lse = kt_zeros((size_t)(B * H * S));
    float *dq = kt_zeros((size_t)(B * S) * row), *dk = kt_zeros(nk), *dv = kt_zeros(nk);
    LP_ASSERT_OK(lp_attention_forward(out, lse, qs, f.k, f.v, &sub));
    LP_ASSERT_OK(lp_attention_backward(dq, dk, dv, Rs, qs, f.k, f.v, out, lse, &sub));
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            lp_test_assert_allclose(out + (b * S + s) * row, f.out + (b * T + rows[s]) * row, row, 1e-6, 1e-5,
                                    "subset output rows");
            lp_test_assert_allclose(dq + (b * S + s) * row, f.dq + (b * T + rows[s]) * row, row, 1e-6, 1e-5,
                                    "subset dq rows");
            for (int64_t h = 0; h < H; h++)
                LP_ASSERT_CLOSE(lse[(b * H + h) * S + s], f.lse[(b * H + h) * T + rows[s]], 1e-6, 1e-6, "subset lse");
        }
    lp_test_assert_allclose(dk, f.dk, nk, 1e-6, 1e-5, "subset dk");
    lp_test_assert_allclose(dv, f.dv, nk, 1e-6, 1e-5, "subset dv");
    free(R); free(qs); free(Rs); free(out); free(lse); free(dq); free(dk); free(dv);
    bufs_free(&f);
}

static void test_attention_key_positions(void **state)
{
    (void)state;
    /* Keys stored in a shuffled order with their positions in k_pos: causality follows the
     * positions, so the result equals the unshuffled computation. */
    lp_rng r;
    lp_rng_seed(&r, 403);
    const int64_t T = 6, H = 2, D = 4;
    const int32_t perm[6] = {3, 0, 5, 1, 4, 2};
    lp_attention_params p = {.B = 1, .Tq = T, .Tk = T, .H = H, .Hkv = H, .D = D, .causal = 1};
    size_t n = (size_t)(T * H * D), row = (size_t)(H * D);
    float *R = kt_randn(&r, n, 1.0f);
    att_bufs a = run_kernel(&r, &p, R);
    float *k2 = kt_zeros(n), *v2 = kt_zeros(n), *out = kt_zeros(n), *lse = kt_zeros((size_t)(H * T));
    float *dq = kt_zeros(n), *dk = kt_zeros(n), *dv = kt_zeros(n);
    for (int64_t j = 0; j < T; j++) {
        memcpy(k2 + j * row, a.k + perm[j] * row, row * sizeof(float));
        memcpy(v2 + j * row, a.v + perm[j] * row, row * sizeof(float));
    }
    p.k_pos = perm;
    check_attention(&r, p, "shuffled keys with k_pos (FD)");
    LP_ASSERT_OK(lp_attention_forward(out, lse, a.q, k2, v2, &p));
    LP_ASSERT_OK(lp_attention_backward(dq, dk, dv, R, a.q, k2, v2, out, lse, &p));
    lp_test_assert_allclose(out, a.out, n, 1e-6, 1e-5, "k_pos forward");
    lp_test_assert_allclose(dq, a.dq, n, 1e-6, 1e-5, "k_pos dq");
    for (int64_t j = 0; j < T; j++) {
        lp_test_assert_allclose(dk + j * row, a.dk + perm[j] * row, row, 1e-6, 1e-5, "k_pos dk");
        lp_test_assert_allclose(dv + j * row, a.dv + perm[j] * row, row, 1e-6, 1e-5, "k_pos dv");
    }
    free(R); free(k2); free(v2); free(out); free(lse); free(dq); free(dk); free(dv);
    bufs_free(&a);
}

static void test_attention_memory_bound(void **state)
{
    (void)state;
    /* T = 512, H = 4: a probability tensor would be 4 MiB; the kernel may use, per thread,
     * 2 * Tk * (D + 1) floats of scratch (transposed K and V heads, two rows) and nothing else. */
    lp_rng r;
    lp_rng_seed(&r, 404);
    LP_ASSERT_OK(lp_threads_set(2));
    const size_t bound = 2 * 2 * 512 * (8 + 1) * sizeof(float);
    lp_attention_params p = {.B = 1, .Tq = 512, .Tk = 512, .H = 4, .Hkv = 4, .D = 8, .causal = 1};
    size_t n = 512 * 4 * 8;
    float *q = kt_randn(&r, n, 1.0f), *k = kt_randn(&r, n, 1.0f), *v = kt_randn(&r, n, 1.0f);
    float *out = kt_zeros(n), *lse = kt_zeros(4 * 512), *dq = kt_zeros(n), *dk = kt_zeros(n), *dv = kt_zeros(n);
    lp_mem_reset_peak();
    size_t base = lp_mem_total_current();
    LP_ASSERT_OK(lp_attention_forward(out, lse, q, k, v, &p));
    LP_ASSERT_OK(lp_attention_backward(dq, dk, dv, out, q, k, v, out, lse, &p));
    size_t extra = lp_mem_total_peak() - base;
    if (extra > bound) fail_msg("attention used %zu bytes of temporaries (bound %zu)", extra, bound);
    assert_true(bound < (size_t)4 * 512 * 512 * sizeof(float) / 10);
    assert_int_equal(lp_mem_total_current(), base);
    assert_int_equal(lp_attention_saved_bytes(&p), 4 * 512 * sizeof(float));
    free(q); free(k); free(v); free(out); free(lse); free(dq); free(dk); free(dv);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float buf[64] = {0};
    lp_attention_params p = {.B = 1, .Tq = 2, .Tk = 2, .H = 2, .Hkv = 2, .D = 2};
    LP_ASSERT_OK(lp_attention_forward(buf, buf + 32, buf, buf, buf, &p));
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, NULL), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_attention_forward(NULL, buf, buf, buf, buf, &p), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, NULL, buf, &p), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_attention_backward(buf, buf, buf, buf, buf, buf, buf, buf, NULL, &p), LP_ERR_INVALID_ARG);
    KT_EXPECT_ERR(lp_attention_backward(buf, buf, buf, NULL, buf, buf, buf, buf, buf, &p), LP_ERR_INVALID_ARG);
    lp_attention_params bad = p;
    bad.Hkv = 3;   /* Hkv > H */
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    bad = p;
    bad.H = 3;   /* 3 % 2 != 0 */
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    bad = p;
    bad.D = 0;
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_attention_saved_bytes(&bad), 0);
    bad = p;
    bad.Tk = -1;
    KT_EXPECT_ERR(lp_attention_backward(buf, buf, buf, buf, buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    bad = p;
    bad.B = KT_BIG;
    bad.Tq = KT_BIG;
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    bad = p;
    bad.causal = 2;
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
    bad = p;
    bad.scale = NAN;
    KT_EXPECT_ERR(lp_attention_forward(buf, buf, buf, buf, buf, &bad), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_shapes),
        cmocka_unit_test(test_attention_padding_and_empty_rows),
        cmocka_unit_test(test_attention_query_subset),
        cmocka_unit_test(test_attention_key_positions),
        cmocka_unit_test(test_attention_memory_bound),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
