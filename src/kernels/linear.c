/* GEMM wrapper over OpenBLAS, linear layer forward/backward, bias and residual adds. */
#include "leanprop/kernels/linear.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "kernels/kcheck.h"

/* Elementwise loops below this many elements stay single-threaded. */
#define LPK_PAR_MIN 32768

static lp_status check_ld(const char *fn, const char *what, int64_t *ld, int64_t cols)
{
    if (*ld == 0) *ld = cols;
    if (*ld < cols || *ld > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: %s = %lld must be in [%lld, INT_MAX]", fn, what, (long long)*ld,
                        (long long)cols);
    return LP_OK;
}

lp_status lp_sgemm(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb,
                   int64_t M, int64_t N, int64_t K, lp_transpose trans_a, lp_transpose trans_b,
                   float alpha, float beta)
{
    static const char fn[] = "lp_sgemm";
    LPK_NONNULL(fn, C);
    LPK_NONNULL(fn, A);
    LPK_NONNULL(fn, B);
    if ((trans_a != LP_NOTRANS && trans_a != LP_TRANS) || (trans_b != LP_NOTRANS && trans_b != LP_TRANS))
        return lp_error(LP_ERR_INVALID_ARG, "%s: transpose flags must be LP_NOTRANS or LP_TRANS", fn);
    LPK_DIMS(fn, NULL, "M,K", M, K);
    LPK_DIMS(fn, NULL, "K,N", K, N);
    LPK_DIMS(fn, NULL, "M,N", M, N);
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
        return lp_error(LP_ERR_INVALID_ARG, "%s: M, N, K must fit in int (got %lld, %lld, %lld)", fn,
                        (long long)M, (long long)N, (long long)K);
    LP_TRY(check_ld(fn, "lda", &lda, trans_a == LP_NOTRANS ? K : M));
    LP_TRY(check_ld(fn, "ldb", &ldb, trans_b == LP_NOTRANS ? N : K));
    LP_TRY(check_ld(fn, "ldc", &ldc, N));
    /* OpenBLAS with beta == 0 zeroes C first, so stale NaN in C never leaks. */
    cblas_sgemm(CblasRowMajor, trans_a == LP_TRANS ? CblasTrans : CblasNoTrans,
                trans_b == LP_TRANS ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
    return LP_OK;
}

lp_status lp_linear_forward(float *out, const float *inp, const float *W, const float *b,
                            int64_t N, int64_t C, int64_t OC)
{
    static const char fn[] = "lp_linear_forward";
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, inp);
    LPK_NONNULL(fn, W);
    LPK_DIMS(fn, NULL, "N,C", N, C);
    LPK_DIMS(fn, NULL, "OC,C", OC, C);
    LPK_DIMS(fn, NULL, "N,OC", N, OC);
    float beta = 0.0f;
    if (b) {
        for (int64_t n = 0; n < N; n++) memcpy(out + n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    return lp_sgemm(out, OC, inp, C, W, C, N, OC, C, LP_NOTRANS, LP_TRANS, 1.0f, beta);
}

lp_status lp_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                             const float *W, int64_t N, int64_t C, int64_t OC)
{
    static const char fn[] = "lp_linear_backward";
    LPK_NONNULL(fn, dout);
    if (dinp) LPK_NONNULL(fn, W);
    if (dW) LPK_NONNULL(fn, inp);
    LPK_DIMS(fn, NULL, "N,C", N, C);
    LPK_DIMS(fn, NULL, "OC,C", OC, C);
    LPK_DIMS(fn, NULL, "N,OC", N, OC);
    if (dinp) LP_TRY(lp_sgemm(dinp, C, dout, OC, W, C, N, C, OC, LP_NOTRANS, LP_NOTRANS, 1.0f, 1.0f));
    if (dW) LP_TRY(lp_sgemm(dW, C, dout, OC, inp, C, OC, C, N, LP_TRANS, LP_NOTRANS, 1.0f, 1.0f));
    if (db) LP_TRY(lp_bias_backward(db, dout, N, OC));
    return LP_OK;
}

lp_status lp_bias_forward(float *out, const float *b, int64_t N, int64_t C)
{
    static const char fn[] = "lp_bias_forward";
    size_t total;
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, b);
    LPK_DIMS(fn, &total, "N,C", N, C);
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *o = out + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) o[c] += b[c];
    }
    return LP_OK;
}

lp_status lp_bias_backward(float *db, const float *dout, int64_t N, int64_t C)
{
    static const char fn[] = "lp_bias_backward";
    size_t total;
    LPK_NONNULL(fn, db);
    LPK_NONNULL(fn, dout);
    LPK_DIMS(fn, &total, "N,C", N, C);
    /* Column blocks per thread; each block sums all rows (rows read contiguously). */
    const int64_t BLK = 256;
    int64_t nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN && nblk > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BLK, c1 = c0 + BLK < C ? c0 + BLK : C;
        float acc[256];
        for (int64_t c = c0; c < c1; c++) acc[c - c0] = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float *d = dout + n * C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += d[c];
        }
        for (int64_t c = c0; c < c1; c++) db[c] += acc[c - c0];
    }
    return LP_OK;
}

lp_status lp_residual_forward(float *out, const float *a, const float *b, int64_t n)
{
    static const char fn[] = "lp_residual_forward";
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, a);
    LPK_NONNULL(fn, b);
    LPK_DIMS(fn, NULL, "n", n);
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return LP_OK;
}

lp_status lp_residual_backward(float *da, float *db, const float *dout, int64_t n)
{
    static const char fn[] = "lp_residual_backward";
    LPK_NONNULL(fn, dout);
    LPK_DIMS(fn, NULL, "n", n);
    if (da) {
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
        for (int64_t i = 0; i < n; i++) da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
        for (int64_t i = 0; i < n; i++) db[i] += dout[i];
    }
    return LP_OK;
}
