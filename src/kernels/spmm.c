/* CSR sparse x dense products (graph propagation, sparse features) and row L2 normalisation. */
#include "leanprop/kernels/spmm.h"

#include <math.h>
#include <string.h>

/* Parallelise only when a call has enough work to pay for the thread start. */
#define SPMM_PAR_MIN (1 << 16)

/* One output row, columns [k0, k0 + SPMM_BLK): the accumulators stay in vector
 * registers across the row's edges instead of a load and store of y per edge.
 * GCC/Clang vector extensions (8 floats, unaligned access allowed). */
#define SPMM_BLK 64
typedef float v8f __attribute__((vector_size(32), aligned(4)));

static inline void row_block(float *yi, const int64_t *indptr, const int32_t *indices, const float *values, float r,
                             const float *col_scale, int has_self, float s, const float *x, int64_t i, int64_t d,
                             int64_t k0, float beta)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int64_t e = indptr[i]; e < indptr[i + 1]; e++) {
        int64_t j = indices[e];
        float w = (values ? values[e] : 1.0f) * (col_scale ? col_scale[j] : 1.0f);
        const v8f *xj = (const v8f *)(x + j * d + k0);
        a0 += w * xj[0]; a1 += w * xj[1]; a2 += w * xj[2]; a3 += w * xj[3];
        a4 += w * xj[4]; a5 += w * xj[5]; a6 += w * xj[6]; a7 += w * xj[7];
    }
    v8f acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    v8f *out = (v8f *)(yi + k0);
    const v8f *xi = (const v8f *)(x + i * d + k0);
    for (int q = 0; q < 8; q++) {
        v8f v = r * acc[q];
        if (has_self) v += s * xi[q]; /* x has a row i only when the matrix is square */
        out[q] = beta == 0.0f ? v : beta * out[q] + v;
    }
}

lp_status lp_spmm(float *y, const int64_t *indptr, const int32_t *indices, const float *values,
                  const float *row_scale, const float *col_scale, const float *self_scale, const float *x,
                  int64_t n_rows, int64_t n_cols, int64_t d, float beta)
{
    if (!y || !indptr || !x || n_rows < 0 || n_cols < 0 || d < 1 || (indptr[n_rows] > 0 && !indices))
        return lp_error(LP_ERR_INVALID_ARG, "lp_spmm: bad arguments (rows %lld, cols %lld, d %lld)",
                        (long long)n_rows, (long long)n_cols, (long long)d);
    if (self_scale && n_rows != n_cols)
        return lp_error(LP_ERR_INVALID_ARG, "lp_spmm: a self term needs a square matrix (%lld x %lld)",
                        (long long)n_rows, (long long)n_cols);
    int64_t work = (indptr[n_rows] + n_rows) * d;
    int64_t full = d / SPMM_BLK * SPMM_BLK;
#pragma omp parallel for schedule(dynamic, 32) if (work >= SPMM_PAR_MIN)
    for (int64_t i = 0; i < n_rows; i++) {
        float *yi = y + i * d;
        float r = row_scale ? row_scale[i] : 1.0f, s = self_scale ? self_scale[i] : 0.0f;
        for (int64_t k0 = 0; k0 < full; k0 += SPMM_BLK)
            row_block(yi, indptr, indices, values, r, col_scale, self_scale != NULL, s, x, i, d, k0, beta);
        if (full == d) continue;
        /* remaining columns (and small d, e.g. the class logits): accumulate in y */
        float *yt = yi + full;
        int64_t rest = d - full;
        if (beta == 0.0f) memset(yt, 0, (size_t)rest * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t k = 0; k < rest; k++) yt[k] *= beta;
        for (int64_t e = indptr[i]; e < indptr[i + 1]; e++) {
            int64_t j = indices[e];
            float w = r * (values ? values[e] : 1.0f) * (col_scale ? col_scale[j] : 1.0f);
            const float *xj = x + j * d + full;
            for (int64_t k = 0; k < rest; k++) yt[k] += w * xj[k];
        }
        if (self_scale) {
            const float *xi = x + i * d + full;
            for (int64_t k = 0; k < rest; k++) yt[k] += s * xi[k];
        }
    }
    return LP_OK;
}

lp_status lp_rownorm_forward(float *y, float *norm, const float *x, int64_t N, int64_t D, float eps)
{
    if (!y || !x || N < 0 || D < 1 || !(eps >= 0))
        return lp_error(LP_ERR_INVALID_ARG, "lp_rownorm_forward: bad arguments");
#pragma omp parallel for schedule(static) if (N * D >= SPMM_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * D;
        double ss = 0;
        for (int64_t k = 0; k < D; k++) ss += (double)xi[k] * xi[k];
        float n = (float)sqrt(ss), inv = 1.0f / (n + eps);
        if (norm) norm[i] = n;
        float *yi = y + i * D;
        for (int64_t k = 0; k < D; k++) yi[k] = xi[k] * inv;
    }
    return LP_OK;
}

lp_status lp_rownorm_backward(float *dx, const float *dy, const float *y, const float *norm, int64_t N, int64_t D,
                              float eps)
{
    if (!dx || !dy || !y || !norm || N < 0 || D < 1 || !(eps >= 0))
        return lp_error(LP_ERR_INVALID_ARG, "lp_rownorm_backward: bad arguments");
#pragma omp parallel for schedule(static) if (N * D >= SPMM_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *dyi = dy + i * D, *yi = y + i * D;
        float n = norm[i];
        double dot = 0;
        for (int64_t k = 0; k < D; k++) dot += (double)yi[k] * dyi[k];
        float a = 1.0f / (n + eps), b = n > 0 ? (float)(dot / n) : 0.0f;
        float *dxi = dx + i * D;
        for (int64_t k = 0; k < D; k++) dxi[k] += a * dyi[k] - b * yi[k];
    }
    return LP_OK;
}
