/* CSR sparse x dense products (graph propagation, sparse features) and row L2 normalisation. */
#include "leanprop/kernels/spmm.h"

#include <math.h>
#include <string.h>

/* Parallelise only when a call has enough work to pay for the thread start. */
#define SPMM_PAR_MIN (1 << 16)

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
#pragma omp parallel for schedule(dynamic, 32) if (work >= SPMM_PAR_MIN)
    for (int64_t i = 0; i < n_rows; i++) {
        float *yi = y + i * d;
        float r = row_scale ? row_scale[i] : 1.0f;
        if (beta == 0.0f) memset(yi, 0, (size_t)d * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t k = 0; k < d; k++) yi[k] *= beta;
        for (int64_t e = indptr[i]; e < indptr[i + 1]; e++) {
            int64_t j = indices[e];
            float w = r * (values ? values[e] : 1.0f) * (col_scale ? col_scale[j] : 1.0f);
            const float *xj = x + j * d;
            for (int64_t k = 0; k < d; k++) yi[k] += w * xj[k];
        }
        if (self_scale) {
            float s = self_scale[i];
            const float *xi = x + i * d;
            for (int64_t k = 0; k < d; k++) yi[k] += s * xi[k];
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
