/* LayerNorm and RMSNorm forward/backward; saves row statistics only. */
#include "leanprop/kernels/norm.h"

#include <math.h>

#include "kernels/kcheck.h"

#define LPK_PAR_MIN 16384
#define COLBLK 256

lp_status lp_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *weight,
                               const float *bias, int64_t N, int64_t C, float eps)
{
    static const char fn[] = "lp_layernorm_forward";
    size_t total;
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, x);
    LPK_DIMS(fn, &total, "N,C", N, C);
    if (!(eps >= 0.0f && isfinite(eps))) return lp_error(LP_ERR_INVALID_ARG, "%s: eps must be >= 0, got %g", fn, eps);
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = out + n * C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; c++) s += xr[c];
        const float m = s / (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int64_t c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
        const float r = 1.0f / sqrtf(v / (float)C + eps);
        for (int64_t c = 0; c < C; c++) {
            float h = (xr[c] - m) * r;
            if (weight) h *= weight[c];
            if (bias) h += bias[c];
            yr[c] = h;
        }
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
    return LP_OK;
}

lp_status lp_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                                const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C)
{
    static const char fn[] = "lp_layernorm_backward";
    size_t total;
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, x);
    LPK_NONNULL(fn, mean);
    LPK_NONNULL(fn, rstd);
    LPK_DIMS(fn, &total, "N,C", N, C);
    if (dx) {
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * C, *dr = dout + n * C;
            const float m = mean[n], r = rstd[n];
            float sd = 0.0f, sdx = 0.0f;   /* mean of dnorm and of dnorm * xhat */
#pragma omp simd reduction(+ : sd, sdx)
            for (int64_t c = 0; c < C; c++) {
                float dn = weight ? weight[c] * dr[c] : dr[c];
                sd += dn;
                sdx += dn * (xr[c] - m) * r;
            }
            sd /= (float)C;
            sdx /= (float)C;
            float *dxr = dx + n * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                float dn = weight ? weight[c] * dr[c] : dr[c];
                dxr[c] += r * (dn - sd - (xr[c] - m) * r * sdx);
            }
        }
    }
    if (dweight || dbias) {
        /* Column blocks per thread: no races, same order every run. */
        const int64_t nblk = (C + COLBLK - 1) / COLBLK;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN && nblk > 1)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t c0 = blk * COLBLK, c1 = c0 + COLBLK < C ? c0 + COLBLK : C;
            float aw[COLBLK] = {0}, ab[COLBLK] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *xr = x + n * C, *dr = dout + n * C;
                const float m = mean[n], r = rstd[n];
#pragma omp simd
                for (int64_t c = c0; c < c1; c++) {
                    aw[c - c0] += dr[c] * (xr[c] - m) * r;
                    ab[c - c0] += dr[c];
                }
            }
            for (int64_t c = c0; c < c1; c++) {
                if (dweight) dweight[c] += aw[c - c0];
                if (dbias) dbias[c] += ab[c - c0];
            }
        }
    }
    return LP_OK;
}

lp_status lp_rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int64_t N, int64_t C,
                             float eps)
{
    static const char fn[] = "lp_rmsnorm_forward";
    size_t total;
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, x);
    LPK_DIMS(fn, &total, "N,C", N, C);
    if (!(eps >= 0.0f && isfinite(eps))) return lp_error(LP_ERR_INVALID_ARG, "%s: eps must be >= 0, got %g", fn, eps);
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = out + n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t c = 0; c < C; c++) ss += xr[c] * xr[c];
        const float r = 1.0f / sqrtf(ss / (float)C + eps);
        if (weight) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) yr[c] = weight[c] * (xr[c] * r);
        } else {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * r;
        }
        if (rstd) rstd[n] = r;
    }
    return LP_OK;
}

lp_status lp_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x, const float *weight,
                              const float *rstd, int64_t N, int64_t C)
{
    static const char fn[] = "lp_rmsnorm_backward";
    size_t total;
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, x);
    LPK_NONNULL(fn, rstd);
    LPK_DIMS(fn, &total, "N,C", N, C);
    if (dx) {
        /* y_c = w_c x_c r, r = (mean(x^2) + eps)^-1/2, dr/dx_c = -r^3 x_c / C:
         * dx_c = r w_c dy_c - x_c r^3 / C * sum_k w_k dy_k x_k */
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * C, *dr = dout + n * C;
            const float r = rstd[n];
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < C; c++) s += (weight ? weight[c] * dr[c] : dr[c]) * xr[c];
            const float k = s * r * r * r / (float)C;
            float *dxr = dx + n * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) dxr[c] += r * (weight ? weight[c] * dr[c] : dr[c]) - xr[c] * k;
        }
    }
    if (dweight) {
        const int64_t nblk = (C + COLBLK - 1) / COLBLK;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN && nblk > 1)
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int64_t c0 = blk * COLBLK, c1 = c0 + COLBLK < C ? c0 + COLBLK : C;
            float aw[COLBLK] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *xr = x + n * C, *dr = dout + n * C;
                const float r = rstd[n];
#pragma omp simd
                for (int64_t c = c0; c < c1; c++) aw[c - c0] += dr[c] * xr[c] * r;
            }
            for (int64_t c = c0; c < c1; c++) dweight[c] += aw[c - c0];
        }
    }
    return LP_OK;
}
