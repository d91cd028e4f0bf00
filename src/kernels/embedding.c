/* Embedding lookup with bounds-checked ids; scatter-add backward. */
#include "leanprop/kernels/embedding.h"

#include <string.h>

#include "kernels/kcheck.h"

#define LPK_PAR_MIN 16384
#define COLBLK 256

static lp_status check_ids(const char *fn, const int32_t *ids, int64_t N, int64_t V)
{
    for (int64_t n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return lp_error(LP_ERR_INVALID_ARG, "%s: id %d at position %lld is outside the vocabulary [0, %lld)", fn,
                            ids[n], (long long)n, (long long)V);
    return LP_OK;
}

lp_status lp_embedding_forward(float *out, const int32_t *ids, const float *W, int64_t N, int64_t V, int64_t C)
{
    static const char fn[] = "lp_embedding_forward";
    size_t total;
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, ids);
    LPK_NONNULL(fn, W);
    LPK_DIMS(fn, &total, "N,C", N, C);
    LPK_DIMS(fn, NULL, "V,C", V, C);
    LP_TRY(check_ids(fn, ids, N, V));
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) memcpy(out + n * C, W + (int64_t)ids[n] * C, (size_t)C * sizeof(float));
    return LP_OK;
}

lp_status lp_embedding_backward(float *dW, const float *dout, const int32_t *ids, int64_t N, int64_t V, int64_t C)
{
    static const char fn[] = "lp_embedding_backward";
    size_t total;
    LPK_NONNULL(fn, dW);
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, ids);
    LPK_DIMS(fn, &total, "N,C", N, C);
    LPK_DIMS(fn, NULL, "V,C", V, C);
    LP_TRY(check_ids(fn, ids, N, V));
    /* Threads own column blocks, so repeated ids never race; rows are added in order. */
    const int64_t nblk = (C + COLBLK - 1) / COLBLK;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN && nblk > 1)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t c0 = blk * COLBLK, c1 = c0 + COLBLK < C ? c0 + COLBLK : C;
        for (int64_t n = 0; n < N; n++) {
            float *w = dW + (int64_t)ids[n] * C;
            const float *d = dout + n * C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) w[c] += d[c];
        }
    }
    return LP_OK;
}
