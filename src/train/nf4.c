/* NF4 quantisation with double-quantised absmax (bitsandbytes layout) and the
 * tile-by-tile dequantising matmul. See leanprop/nf4.h. */
#include "leanprop/nf4.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

/* bitsandbytes' NF4 code book (functional.py get_4bit_type("nf4")). */
static const float g_nf4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

static float g_nf4_mid[15];          /* midpoints between neighbouring codes */
static float g_dq[256];              /* dynamic 8-bit map */
static float g_dq_mid[255];
static double g_dq_half_gap;
static float g_pair[256][2];         /* byte -> (code of high nibble, code of low nibble) */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* torch.linspace(start, end, steps) in float32, as torch's CPU kernel computes it. */
static float linspace_at(float start, float end, int steps, int idx)
{
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    return idx < halfway ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
}

/* bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8). */
static void build_tables(void)
{
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        float scale = (float)pow(10.0, -6 + i);
        for (int j = 0; j + 1 < items; j++) {
            float mean = (linspace_at(0.1f, 1.0f, items, j) + linspace_at(0.1f, 1.0f, items, j + 1)) / 2.0f;
            g_dq[k++] = scale * mean;
            g_dq[k++] = -scale * mean;
        }
    }
    g_dq[k++] = 0.0f;
    g_dq[k++] = 1.0f;
    while (k < 256) g_dq[k++] = 0.0f;
    qsort(g_dq, 256, sizeof(float), cmp_float);
    g_dq_half_gap = 0.0;
    for (int i = 0; i < 255; i++) {
        g_dq_mid[i] = 0.5f * (g_dq[i] + g_dq[i + 1]);
        double h = 0.5 * ((double)g_dq[i + 1] - (double)g_dq[i]);
        if (h > g_dq_half_gap) g_dq_half_gap = h;
    }
    for (int i = 0; i < 15; i++) g_nf4_mid[i] = 0.5f * (g_nf4[i] + g_nf4[i + 1]);
    for (int b = 0; b < 256; b++) {
        g_pair[b][0] = g_nf4[b >> 4];
        g_pair[b][1] = g_nf4[b & 15];
    }
}

static void init_tables(void) { pthread_once(&g_once, build_tables); }

const float *lp_nf4_codebook(void) { return g_nf4; }

const float *lp_nf4_dq_codebook(void)
{
    init_tables();
    return g_dq;
}

double lp_nf4_dq_max_half_gap(void)
{
    init_tables();
    return g_dq_half_gap;
}

uint8_t lp_nf4_encode(float v)
{
    init_tables();
    if (v != v) return 7;
    /* count of midpoints below v = index of the nearest code (ties -> lower) */
    int lo = 0, hi = 15;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v > g_nf4_mid[mid]) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)lo;
}

/* Nearest value of the dynamic map to v in [-1, 1]. */
static uint8_t dq_encode(float v)
{
    int lo = 0, hi = 255;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v > g_dq_mid[mid]) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)lo;
}

size_t lp_nf4_bytes_for(int64_t OC, int64_t C, int double_quant)
{
    if (OC <= 0 || C <= 0) return 0;
    size_t n = (size_t)OC * (size_t)C;
    size_t nb = (n + LP_NF4_BLOCK - 1) / LP_NF4_BLOCK;
    size_t bytes = (n + 1) / 2;
    if (double_quant) bytes += nb + 4 * ((nb + LP_NF4_DQ_BLOCK - 1) / LP_NF4_DQ_BLOCK);
    else bytes += 4 * nb;
    return bytes;
}

size_t lp_nf4_bytes(const lp_nf4 *q)
{
    if (!q) return 0;
    return lp_alloc_size(q->codes) + (q->absmax ? lp_alloc_size(q->absmax) : 0) +
           (q->qabsmax ? lp_alloc_size(q->qabsmax) : 0) + (q->absmax2 ? lp_alloc_size(q->absmax2) : 0);
}

void lp_nf4_free(lp_nf4 *q)
{
    if (!q) return;
    lp_free(q->codes);
    lp_free(q->absmax);
    lp_free(q->qabsmax);
    lp_free(q->absmax2);
    free(q);
}

static lp_status check_shape(const char *fn, int64_t OC, int64_t C)
{
    if (OC <= 0 || C <= 0 || OC > INT_MAX || C > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: shape (%lld, %lld) must be positive and fit in int", fn,
                        (long long)OC, (long long)C);
    if (OC > (INT64_MAX / 8) / C)
        return lp_error(LP_ERR_INVALID_ARG, "%s: shape (%lld, %lld) too large", fn, (long long)OC, (long long)C);
    return LP_OK;
}

/* absmax (nb) fp32 -> q->qabsmax, q->absmax2, q->absmax_offset. */
static void double_quantize(lp_nf4 *q, const float *absmax)
{
    int64_t nb = q->nblocks;
    double sum = 0.0;
    for (int64_t b = 0; b < nb; b++) sum += absmax[b];
    float offset = (float)(sum / (double)nb);
    q->absmax_offset = offset;
    for (int64_t d = 0; d < q->ndq_blocks; d++) {
        int64_t b0 = d * LP_NF4_DQ_BLOCK, b1 = b0 + LP_NF4_DQ_BLOCK < nb ? b0 + LP_NF4_DQ_BLOCK : nb;
        float m = 0.0f;
        for (int64_t b = b0; b < b1; b++) m = fmaxf(m, fabsf(absmax[b] - offset));
        q->absmax2[d] = m;
        float inv = m > 0.0f ? 1.0f / m : 0.0f;
        for (int64_t b = b0; b < b1; b++) {
            float v = (absmax[b] - offset) * inv;
            q->qabsmax[b] = dq_encode(fminf(fmaxf(v, -1.0f), 1.0f));
        }
    }
}

lp_status lp_nf4_quantize(lp_nf4 **out, const float *W, int64_t OC, int64_t C, int double_quant)
{
    static const char fn[] = "lp_nf4_quantize";
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "%s: out is NULL", fn);
    *out = NULL;
    if (!W) return lp_error(LP_ERR_INVALID_ARG, "%s: W is NULL", fn);
    LP_TRY(check_shape(fn, OC, C));
    init_tables();
    int64_t n = OC * C;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(W[i]))
            return lp_error(LP_ERR_NUMERIC, "%s: W[%lld] (row %lld, column %lld) is not finite", fn, (long long)i,
                            (long long)(i / C), (long long)(i % C));
    lp_nf4 *q = calloc(1, sizeof *q);
    if (!q) return lp_error(LP_ERR_NOMEM, "%s: out of memory", fn);
    q->OC = OC;
    q->C = C;
    q->n = n;
    q->nblocks = (n + LP_NF4_BLOCK - 1) / LP_NF4_BLOCK;
    q->double_quant = double_quant ? 1 : 0;
    q->ndq_blocks = q->double_quant ? (q->nblocks + LP_NF4_DQ_BLOCK - 1) / LP_NF4_DQ_BLOCK : 0;
    float *absmax = NULL;
    q->codes = lp_alloc(LP_MEM_WEIGHTS, (size_t)(n + 1) / 2);
    if (q->double_quant) {
        q->qabsmax = lp_alloc(LP_MEM_WEIGHTS, (size_t)q->nblocks);
        q->absmax2 = lp_alloc(LP_MEM_WEIGHTS, (size_t)q->ndq_blocks * sizeof(float));
        absmax = lp_alloc(LP_MEM_SCRATCH, (size_t)q->nblocks * sizeof(float));
    } else {
        absmax = q->absmax = lp_alloc(LP_MEM_WEIGHTS, (size_t)q->nblocks * sizeof(float));
    }
    if (!q->codes || !absmax || (q->double_quant && (!q->qabsmax || !q->absmax2))) {
        if (q->double_quant) lp_free(absmax);
        lp_nf4_free(q);
        return lp_error_context(LP_ERR_NOMEM, "%s (%lld x %lld)", fn, (long long)OC, (long long)C);
    }
#pragma omp parallel for schedule(static) if (q->nblocks > 256)
    for (int64_t b = 0; b < q->nblocks; b++) {
        int64_t i0 = b * LP_NF4_BLOCK, i1 = i0 + LP_NF4_BLOCK < n ? i0 + LP_NF4_BLOCK : n;
        float m = 0.0f;
        for (int64_t i = i0; i < i1; i++) m = fmaxf(m, fabsf(W[i]));
        absmax[b] = m;
        float inv = m > 0.0f ? 1.0f / m : 0.0f;
        /* blocks hold an even number of elements except the last, so bytes never straddle blocks */
        for (int64_t i = i0; i < i1; i++) {
            uint8_t c = lp_nf4_encode(W[i] * inv);
            if (i & 1) q->codes[i >> 1] |= c;
            else q->codes[i >> 1] = (uint8_t)(c << 4);
        }
    }
    if (q->double_quant) {
        double_quantize(q, absmax);
        lp_free(absmax);
    }
    *out = q;
    return LP_OK;
}

/* tables must be initialised */
static inline float block_absmax(const lp_nf4 *q, int64_t b)
{
    if (!q->double_quant) return q->absmax[b];
    return g_dq[q->qabsmax[b]] * q->absmax2[b / LP_NF4_DQ_BLOCK] + q->absmax_offset;
}

float lp_nf4_block_absmax(const lp_nf4 *q, int64_t b)
{
    if (!q || b < 0 || b >= q->nblocks) return 0.0f;
    init_tables();
    return block_absmax(q, b);
}

/* elements [i0, i0+cnt) of the flat matrix -> out (cnt) */
static void dequant_range(float *out, const lp_nf4 *q, int64_t i0, int64_t cnt)
{
    int64_t i = i0, end = i0 + cnt;
    while (i < end) {
        int64_t b = i / LP_NF4_BLOCK;
        int64_t bend = (b + 1) * LP_NF4_BLOCK < end ? (b + 1) * LP_NF4_BLOCK : end;
        float am = block_absmax(q, b);
        if (i & 1) { /* odd start: low nibble of a byte */
            *out++ = g_nf4[q->codes[i >> 1] & 15] * am;
            i++;
        }
        const uint8_t *c = q->codes + (i >> 1);
        int64_t pairs = (bend - i) / 2;
        for (int64_t j = 0; j < pairs; j++) {
            out[2 * j] = g_pair[c[j]][0] * am;
            out[2 * j + 1] = g_pair[c[j]][1] * am;
        }
        out += 2 * pairs;
        i += 2 * pairs;
        if (i < bend) { /* odd end: high nibble */
            *out++ = g_nf4[q->codes[i >> 1] >> 4] * am;
            i++;
        }
    }
}

lp_status lp_nf4_dequantize_rows(float *out, const lp_nf4 *q, int64_t r0, int64_t nr)
{
    static const char fn[] = "lp_nf4_dequantize_rows";
    if (!out || !q) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", fn, out ? "q" : "out");
    if (r0 < 0 || nr <= 0 || r0 > q->OC - nr)
        return lp_error(LP_ERR_INVALID_ARG, "%s: rows [%lld, %lld) outside [0, %lld)", fn, (long long)r0,
                        (long long)(r0 + nr), (long long)q->OC);
    init_tables();
    int64_t C = q->C;
#pragma omp parallel for schedule(static) if (nr * C >= 65536)
    for (int64_t r = 0; r < nr; r++) dequant_range(out + r * C, q, (r0 + r) * C, C);
    return LP_OK;
}

/* Serial: inside the matmuls, between OpenBLAS calls, an OpenMP team would fight
 * OpenBLAS's spinning worker threads for the cores. */
static void dequant_tile(float *out, const lp_nf4 *q, int64_t r0, int64_t nr)
{
    dequant_range(out, q, r0 * q->C, nr * q->C);
}

lp_status lp_nf4_dequantize(float *out, const lp_nf4 *q)
{
    if (!q) return lp_error(LP_ERR_INVALID_ARG, "lp_nf4_dequantize: q is NULL");
    return lp_nf4_dequantize_rows(out, q, 0, q->OC);
}

int64_t lp_nf4_tile_rows(int64_t OC, int64_t C)
{
    if (OC <= 0 || C <= 0) return 0;
    int64_t tr = (int64_t)(LP_NF4_TILE_BYTES / sizeof(float)) / C;
    if (tr < 16) tr = 16;
    return tr < OC ? tr : OC;
}

size_t lp_nf4_scratch_bytes(int64_t OC, int64_t C)
{
    return (size_t)lp_nf4_tile_rows(OC, C) * (size_t)(C > 0 ? C : 0) * sizeof(float);
}

static lp_status check_mm(const char *fn, const void *a, const char *an, const void *b, const char *bn,
                          const lp_nf4 *W, int64_t N, int64_t C, int64_t OC)
{
    if (!a) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", fn, an);
    if (!b) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", fn, bn);
    if (!W) return lp_error(LP_ERR_INVALID_ARG, "%s: W is NULL", fn);
    if (N <= 0 || N > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: N = %lld must be in [1, INT_MAX]", fn, (long long)N);
    if (C != W->C || OC != W->OC)
        return lp_error(LP_ERR_INVALID_ARG, "%s: (OC, C) = (%lld, %lld) but the NF4 weight is (%lld, %lld)", fn,
                        (long long)OC, (long long)C, (long long)W->OC, (long long)W->C);
    return LP_OK;
}

/* inp (N,C), W (OC,C) NF4, b (OC) -> out (N,OC) = inp @ deq(W)^T + b, one row tile of W at a time */
lp_status lp_nf4_linear_forward(float *out, const float *inp, const lp_nf4 *W, const float *b, int64_t N,
                                int64_t C, int64_t OC)
{
    static const char fn[] = "lp_nf4_linear_forward";
    LP_TRY(check_mm(fn, out, "out", inp, "inp", W, N, C, OC));
    init_tables();
    int64_t tr = lp_nf4_tile_rows(OC, C);
    float *tile = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(tr * C), sizeof(float));
    if (!tile) return lp_error_context(LP_ERR_NOMEM, "%s: tile of %lld rows", fn, (long long)tr);
    for (int64_t r0 = 0; r0 < OC; r0 += tr) {
        int64_t nr = OC - r0 < tr ? OC - r0 : tr;
        dequant_tile(tile, W, r0, nr);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)nr, (int)C, 1.0f, inp, (int)C, tile,
                    (int)C, 0.0f, out + r0, (int)OC);
    }
    lp_free(tile);
    if (b) {
#pragma omp parallel for schedule(static) if (N * OC >= 65536)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OC; o++) out[n * OC + o] += b[o];
    }
    return LP_OK;
}

/* dout (N,OC), W (OC,C) NF4 -> dinp (N,C) += dout @ deq(W), one row tile of W at a time */
lp_status lp_nf4_linear_backward(float *dinp, const float *dout, const lp_nf4 *W, int64_t N, int64_t C,
                                 int64_t OC)
{
    static const char fn[] = "lp_nf4_linear_backward";
    LP_TRY(check_mm(fn, dinp, "dinp", dout, "dout", W, N, C, OC));
    init_tables();
    int64_t tr = lp_nf4_tile_rows(OC, C);
    float *tile = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(tr * C), sizeof(float));
    if (!tile) return lp_error_context(LP_ERR_NOMEM, "%s: tile of %lld rows", fn, (long long)tr);
    for (int64_t r0 = 0; r0 < OC; r0 += tr) {
        int64_t nr = OC - r0 < tr ? OC - r0 : tr;
        dequant_tile(tile, W, r0, nr);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, (int)nr, 1.0f, dout + r0, (int)OC,
                    tile, (int)C, 1.0f, dinp, (int)C);
    }
    lp_free(tile);
    return LP_OK;
}
