/* NF4 (QLoRA base weights): code books, quantisation error bounds, packing,
 * double quantisation, the tile-by-tile matmul, memory accounting, bad arguments. */
#include "util/test_util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/nf4.h"
#include "leanprop/rng.h"
#include "leanprop/status.h"

static float *randn(lp_rng *r, size_t n, float std)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = std * lp_rng_normal(r);
    return x;
}

static void test_codebook(void **state)
{
    (void)state;
    static const float want[16] = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    };
    const float *cb = lp_nf4_codebook();
    double widest = 0.0;
    for (int i = 0; i < 16; i++) {
        assert_true(cb[i] == want[i]);
        assert_int_equal(lp_nf4_encode(cb[i]), i);
        if (i) {
            assert_true(cb[i] > cb[i - 1]);
            widest = fmax(widest, 0.5 * ((double)cb[i] - cb[i - 1]));
            /* just above / below the midpoint go to the upper / lower code */
            float mid = 0.5f * (cb[i] + cb[i - 1]);
            assert_int_equal(lp_nf4_encode(nextafterf(mid, 2.0f)), i);
            assert_int_equal(lp_nf4_encode(nextafterf(mid, -2.0f)), i - 1);
        }
    }
    assert_true(cb[7] == 0.0f);
    LP_ASSERT_CLOSE(widest, LP_NF4_MAX_HALF_GAP, 1e-7, 0, "widest half gap");
    assert_int_equal(lp_nf4_encode(-5.0f), 0);
    assert_int_equal(lp_nf4_encode(5.0f), 15);
    assert_int_equal(lp_nf4_encode(NAN), 7);

    /* bitsandbytes' signed dynamic map: 254 means, 0 and 1, sorted: [-0.99297, 1] */
    const float *dq = lp_nf4_dq_codebook();
    int zeros = 0;
    for (int i = 0; i < 256; i++) {
        if (i) assert_true(dq[i] >= dq[i - 1]);
        zeros += dq[i] == 0.0f;
    }
    assert_int_equal(zeros, 1);
    assert_true(dq[255] == 1.0f);
    LP_ASSERT_CLOSE(dq[0], -(0.1 + 0.9 * 127.0 / 128.0), 1e-6, 0, "dynamic map minimum");
    LP_ASSERT_CLOSE(dq[254], 0.1 + 0.9 * 127.0 / 128.0, 1e-6, 0, "largest value below 1");
    /* smallest positive value: 1e-6 * mean(0.1, 1) */
    int pos = 0;
    while (dq[pos] <= 0.0f) pos++;
    LP_ASSERT_CLOSE(dq[pos], 0.55e-6, 1e-12, 1e-5, "smallest positive");
    /* widest gap: between neighbouring means of the top decade, 0.9/64 */
    LP_ASSERT_CLOSE(lp_nf4_dq_max_half_gap(), 0.9 / 128.0, 1e-7, 0, "dynamic map half gap");
}

static void test_packing_order(void **state)
{
    (void)state;
    /* one block: codes 0,15,7,8 then 15,0,... ; element 2j is the high nibble */
    float w[64];
    const float *cb = lp_nf4_codebook();
    for (int i = 0; i < 64; i++) w[i] = 2.0f * cb[(i * 5) % 16];
    w[0] = -2.0f; w[1] = 2.0f; w[2] = 0.0f; w[3] = 2.0f * cb[8];
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, 1, 64, 0));
    assert_int_equal(q->codes[0], 0x0F);
    assert_int_equal(q->codes[1], 0x78);
    for (int j = 2; j < 32; j++) {
        int hi = ((2 * j) * 5) % 16, lo = ((2 * j + 1) * 5) % 16;
        assert_int_equal(q->codes[j], (hi << 4) | lo);
    }
    assert_true(q->absmax[0] == 2.0f);
    float back[64];
    LP_ASSERT_OK(lp_nf4_dequantize(back, q));
    for (int i = 0; i < 64; i++) assert_true(back[i] == w[i]); /* codes times 2 are exact */
    lp_nf4_free(q);

    /* odd element count: the last byte's low nibble is unused (0) */
    float v[3] = {1.0f, -1.0f, 1.0f};
    LP_ASSERT_OK(lp_nf4_quantize(&q, v, 1, 3, 1));
    assert_int_equal(q->codes[0], 0xF0);
    assert_int_equal(q->codes[1], 0xF0);
    lp_nf4_free(q);
}

/* Error bounds on random data; returns the relative RMS error. */
static double roundtrip(int64_t OC, int64_t C, int double_quant, uint64_t seed, double *max_ratio)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    size_t n = (size_t)(OC * C);
    float *w = randn(&r, n, 0.02f);
    /* a few outliers and an all-zero block, as real weights have */
    for (size_t i = 0; i < n; i += 997) w[i] *= 8.0f;
    if (n >= 256) memset(w + 128, 0, 64 * sizeof(float));
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, double_quant));
    float *d = malloc(n * sizeof(float));
    LP_ASSERT_OK(lp_nf4_dequantize(d, q));
    double hg = lp_nf4_dq_max_half_gap(), se = 0, s2 = 0;
    *max_ratio = 0;
    for (int64_t b = 0; b < q->nblocks; b++) {
        size_t i0 = (size_t)b * 64, i1 = i0 + 64 < n ? i0 + 64 : n;
        double am = 0;
        for (size_t i = i0; i < i1; i++) am = fmax(am, fabs(w[i]));
        double am_q = lp_nf4_block_absmax(q, b), dq_err = 0;
        if (double_quant) {
            double a2 = q->absmax2[b / 256];
            dq_err = fabs(am_q - am);
            /* 8-bit absmax: within half a gap of the dynamic map times absmax2 (+ float rounding) */
            if (!(dq_err <= hg * a2 + 1e-6 * am + 1e-12))
                fail_msg("block %lld: absmax %.9g dequantised %.9g, bound %.3g", (long long)b, am, am_q, hg * a2);
        } else {
            assert_true(am_q == (float)am);
        }
        for (size_t i = i0; i < i1; i++) {
            double e = fabs((double)w[i] - d[i]);
            double bound = LP_NF4_MAX_HALF_GAP * am + dq_err + 1e-6 * am;
            if (bound > 0) *max_ratio = fmax(*max_ratio, e / bound);
            if (!(e <= bound))
                fail_msg("element %zu: %.9g -> %.9g, error %.3g > bound %.3g", i, w[i], d[i], e, bound);
            if (!double_quant) {
                /* the code is the nearest one */
                int c = lp_nf4_encode(am > 0 ? (float)(w[i] / am) : 0.0f);
                assert_true(d[i] == lp_nf4_codebook()[c] * (float)am);
            }
            se += e * e;
            s2 += (double)w[i] * w[i];
        }
    }
    lp_nf4_free(q);
    free(w);
    free(d);
    return sqrt(se / s2);
}

static void test_roundtrip_error_bounds(void **state)
{
    (void)state;
    double ratio, ratio_dq;
    double rel = roundtrip(96, 512, 0, 1, &ratio);
    double rel_dq = roundtrip(96, 512, 1, 1, &ratio_dq);
    print_message("[ INFO ] NF4 relative RMS error (N(0,0.02) weights, outliers): %.4f plain, %.4f double-quant;"
                  " worst error / bound %.3f, %.3f\n", rel, rel_dq, ratio, ratio_dq);
    /* NF4 of Gaussian data: about 10% RMS; double quantisation adds little */
    assert_true(rel < 0.12);
    assert_true(rel_dq < rel * 1.05 + 1e-3);
    /* shapes whose blocks span rows and end in a partial block */
    roundtrip(7, 172, 1, 2, &ratio);
    roundtrip(3, 43, 1, 3, &ratio);
    roundtrip(1, 1, 1, 4, &ratio);
    /* more than one double-quantisation block (>256 absmax blocks) */
    roundtrip(300, 200, 1, 5, &ratio);
}

static void test_dequantize_rows_and_odd_shapes(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 7);
    int64_t OC = 9, C = 43;   /* odd C: rows start at odd elements, blocks span rows */
    float *w = randn(&r, (size_t)(OC * C), 1.0f);
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, 1));
    float full[9 * 43], part[4 * 43];
    LP_ASSERT_OK(lp_nf4_dequantize(full, q));
    for (int64_t r0 = 0; r0 + 4 <= OC; r0++) {
        LP_ASSERT_OK(lp_nf4_dequantize_rows(part, q, r0, 4));
        assert_memory_equal(part, full + r0 * C, sizeof part);
    }
    lp_nf4_free(q);
    free(w);
}

/* reference: dequantise everything, then sgemm */
static void check_matmul(int64_t N, int64_t C, int64_t OC, int with_bias, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    float *w = randn(&r, (size_t)(OC * C), 0.05f), *x = randn(&r, (size_t)(N * C), 1.0f);
    float *b = randn(&r, (size_t)OC, 1.0f), *dy = randn(&r, (size_t)(N * OC), 1.0f);
    float *y = malloc((size_t)(N * OC) * 4), *yr = malloc((size_t)(N * OC) * 4), *wd = malloc((size_t)(OC * C) * 4);
    float *dx = randn(&r, (size_t)(N * C), 1.0f), *dxr = malloc((size_t)(N * C) * 4);
    memcpy(dxr, dx, (size_t)(N * C) * 4);
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, 1));
    LP_ASSERT_OK(lp_nf4_dequantize(wd, q));
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++) yr[n * OC + o] = with_bias ? b[o] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, (int)C, 1.0f, x, (int)C, wd, (int)C,
                1.0f, yr, (int)OC);
    memset(y, 0xff, (size_t)(N * OC) * 4); /* NaN garbage must be overwritten */
    size_t s0 = lp_mem_peak(LP_MEM_SCRATCH);
    lp_mem_reset_peak();
    s0 = lp_mem_current(LP_MEM_SCRATCH);
    LP_ASSERT_OK(lp_nf4_linear_forward(y, x, q, with_bias ? b : NULL, N, C, OC));
    /* only one tile of scratch, never the full W */
    assert_int_equal(lp_mem_peak(LP_MEM_SCRATCH) - s0, lp_nf4_scratch_bytes(OC, C));
    lp_test_assert_allclose(y, yr, (size_t)(N * OC), 1e-5, 1e-5, "nf4 forward vs dequantise + sgemm");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, (int)OC, 1.0f, dy, (int)OC, wd, (int)C,
                1.0f, dxr, (int)C);
    LP_ASSERT_OK(lp_nf4_linear_backward(dx, dy, q, N, C, OC));
    lp_test_assert_allclose(dx, dxr, (size_t)(N * C), 1e-5, 1e-5, "nf4 backward vs dequantise + sgemm");
    lp_nf4_free(q);
    free(w); free(x); free(b); free(dy); free(y); free(yr); free(wd); free(dx); free(dxr);
}

static void test_matmul_equals_dequantize_then_sgemm(void **state)
{
    (void)state;
    check_matmul(5, 64, 172, 1, 11);     /* llama-tiny gate/up */
    check_matmul(5, 172, 64, 0, 12);     /* down_proj: C not a multiple of 64 */
    check_matmul(3, 3000, 300, 1, 13);   /* two tiles (174 rows each), the last partial */
    check_matmul(1, 7, 3, 1, 14);
    assert_int_equal(lp_nf4_tile_rows(300, 3000), 174);
}

static void test_forward_close_to_full_precision(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 21);
    int64_t N = 32, C = 512, OC = 256;
    float *w = randn(&r, (size_t)(OC * C), 0.02f), *x = randn(&r, (size_t)(N * C), 1.0f);
    float *y = malloc((size_t)(N * OC) * 4), *yq = malloc((size_t)(N * OC) * 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, (int)C, 1.0f, x, (int)C, w, (int)C, 0.0f,
                y, (int)OC);
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, 1));
    LP_ASSERT_OK(lp_nf4_linear_forward(yq, x, q, NULL, N, C, OC));
    double se = 0, s2 = 0;
    for (int64_t i = 0; i < N * OC; i++) {
        se += ((double)yq[i] - y[i]) * ((double)yq[i] - y[i]);
        s2 += (double)y[i] * y[i];
    }
    double rel = sqrt(se / s2);
    print_message("[ INFO ] NF4 layer forward (512->256, N(0,0.02) weights): relative RMS error %.4f\n", rel);
    /* errors of independent weights add in quadrature: about the weight error (~0.1) */
    assert_true(rel < 0.12);
    assert_true(rel > 0.01); /* it is a 4-bit format: an exact match would mean no quantisation */
    lp_nf4_free(q);
    free(w); free(x); free(y); free(yq);
}

static void test_memory_accounting(void **state)
{
    (void)state;
    int64_t OC = 256, C = 1024;
    float *w = calloc((size_t)(OC * C), sizeof(float));
    w[5] = 1.0f;
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, 1));
    /* 131072 code bytes + 4096 qabsmax + 16 absmax2 floats */
    assert_int_equal(lp_nf4_bytes(q), 131072 + 4096 + 64);
    assert_int_equal(lp_nf4_bytes_for(OC, C, 1), lp_nf4_bytes(q));
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS) - w0, lp_nf4_bytes(q));
    print_message("[ INFO ] NF4 %lldx%lld: %zu bytes = %.5f byte/param (fp32: 4)\n", (long long)OC, (long long)C,
                  lp_nf4_bytes(q), (double)lp_nf4_bytes(q) / (double)(OC * C));
    lp_nf4_free(q);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, OC, C, 0));
    assert_int_equal(lp_nf4_bytes(q), 131072 + 4096 * 4);
    assert_int_equal(lp_nf4_bytes_for(OC, C, 0), lp_nf4_bytes(q));
    lp_nf4_free(q);
    free(w);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float w[64] = {0}, x[64] = {0}, y[64];
    lp_nf4 *q = (lp_nf4 *)1;
    assert_int_equal(lp_nf4_quantize(NULL, w, 1, 64, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_quantize(&q, NULL, 1, 64, 1), LP_ERR_INVALID_ARG);
    assert_null(q);
    assert_int_equal(lp_nf4_quantize(&q, w, 0, 64, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_quantize(&q, w, 1, -3, 1), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "shape"));
    w[9] = NAN;
    assert_int_equal(lp_nf4_quantize(&q, w, 2, 32, 1), LP_ERR_NUMERIC);
    assert_non_null(strstr(lp_error_message(), "row 0, column 9"));
    w[9] = INFINITY;
    assert_int_equal(lp_nf4_quantize(&q, w, 2, 32, 1), LP_ERR_NUMERIC);
    w[9] = 0.5f;
    LP_ASSERT_OK(lp_nf4_quantize(&q, w, 2, 32, 1));
    assert_int_equal(lp_nf4_linear_forward(NULL, x, q, NULL, 1, 32, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_linear_forward(y, NULL, q, NULL, 1, 32, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_linear_forward(y, x, NULL, NULL, 1, 32, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_linear_forward(y, x, q, NULL, 0, 32, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_linear_forward(y, x, q, NULL, 1, 64, 1), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "(2, 32)"));
    assert_int_equal(lp_nf4_linear_backward(x, y, q, 1, 32, 3), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_linear_backward(NULL, y, q, 1, 32, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_dequantize_rows(y, q, 1, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_dequantize_rows(y, q, -1, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_dequantize_rows(y, q, 0, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_dequantize(NULL, q), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nf4_dequantize(y, NULL), LP_ERR_INVALID_ARG);
    assert_true(lp_nf4_block_absmax(q, 5) == 0.0f);
    assert_true(lp_nf4_block_absmax(NULL, 0) == 0.0f);
    assert_int_equal(lp_nf4_bytes(NULL), 0);
    assert_int_equal(lp_nf4_bytes_for(0, 5, 1), 0);
    lp_nf4_free(q);
    lp_nf4_free(NULL);
    /* allocation failure is reported, nothing leaks */
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    lp_mem_fail_after(2);
    assert_int_equal(lp_nf4_quantize(&q, w, 2, 32, 1), LP_ERR_NOMEM);
    lp_mem_fail_after(0);
    assert_null(q);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codebook),
        cmocka_unit_test(test_packing_order),
        cmocka_unit_test(test_roundtrip_error_bounds),
        cmocka_unit_test(test_dequantize_rows_and_odd_shapes),
        cmocka_unit_test(test_matmul_equals_dequantize_then_sgemm),
        cmocka_unit_test(test_forward_close_to_full_precision),
        cmocka_unit_test(test_memory_accounting),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
