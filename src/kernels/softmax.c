/* Row softmax and cross-entropy fused with softmax (stable, ignore index, mean over counted). */
#include "leanprop/kernels/softmax.h"

#include <math.h>

#include "kernels/kcheck.h"
#include "kernels/kmath.h"

#define LPK_PAR_MIN 16384

/* log(sum(exp(row))) with the max subtracted. */
static float row_logsumexp(const float *row, int64_t V)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    if (mx == -INFINITY || !isfinite(mx)) return mx;   /* all -inf, or +inf present */
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < V; j++) s += lpk_expf(row[j] - mx);
    return mx + logf(s);
}

lp_status lp_softmax_forward(float *out, const float *x, int64_t N, int64_t V)
{
    static const char fn[] = "lp_softmax_forward";
    size_t total;
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, x);
    LPK_DIMS(fn, &total, "N,V", N, V);
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * V;
        float *yr = out + n * V;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < V; j++) mx = xr[j] > mx ? xr[j] : mx;
        if (mx == -INFINITY) {   /* fully masked row: zeros, not NaN */
            for (int64_t j = 0; j < V; j++) yr[j] = 0.0f;
            continue;
        }
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < V; j++) {
            float e = lpk_expf(xr[j] - mx);
            yr[j] = e;
            s += e;
        }
        const float inv = 1.0f / s;
#pragma omp simd
        for (int64_t j = 0; j < V; j++) yr[j] *= inv;
    }
    return LP_OK;
}

lp_status lp_softmax_backward(float *dx, const float *dout, const float *out, int64_t N, int64_t V)
{
    static const char fn[] = "lp_softmax_backward";
    size_t total;
    LPK_NONNULL(fn, dx);
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, out);
    LPK_DIMS(fn, &total, "N,V", N, V);
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *dr = dout + n * V, *yr = out + n * V;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < V; j++) s += dr[j] * yr[j];
        float *dxr = dx + n * V;
#pragma omp simd
        for (int64_t j = 0; j < V; j++) dxr[j] += yr[j] * (dr[j] - s);
    }
    return LP_OK;
}

static lp_status check_targets(const char *fn, const int32_t *targets, int64_t N, int64_t V, int32_t ignore_index,
                               int64_t *count)
{
    int64_t c = 0;
    for (int64_t n = 0; n < N; n++) {
        if (targets[n] == ignore_index) continue;
        if (targets[n] < 0 || targets[n] >= V)
            return lp_error(LP_ERR_INVALID_ARG, "%s: target %d at row %lld is outside [0, %lld) and not the ignore "
                            "index %d", fn, targets[n], (long long)n, (long long)V, ignore_index);
        c++;
    }
    *count = c;
    return LP_OK;
}

lp_status lp_crossentropy_forward(float *loss, int64_t *count, float *lse, const float *logits,
                                  const int32_t *targets, int64_t N, int64_t V, int32_t ignore_index)
{
    static const char fn[] = "lp_crossentropy_forward";
    size_t total;
    LPK_NONNULL(fn, loss);
    LPK_NONNULL(fn, logits);
    LPK_NONNULL(fn, targets);
    LPK_DIMS(fn, &total, "N,V", N, V);
    int64_t cnt = 0;
    LP_TRY(check_targets(fn, targets, N, V, ignore_index, &cnt));
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *row = logits + n * V;
        const float l = row_logsumexp(row, V);
        if (lse) lse[n] = l;
        if (targets[n] != ignore_index) sum += (double)l - (double)row[targets[n]];
    }
    *loss = cnt > 0 ? (float)(sum / (double)cnt) : 0.0f;
    if (count) *count = cnt;
    return LP_OK;
}

lp_status lp_crossentropy_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                   int64_t count, float dloss, int64_t N, int64_t V, int32_t ignore_index)
{
    static const char fn[] = "lp_crossentropy_backward";
    size_t total;
    LPK_NONNULL(fn, dlogits);
    LPK_NONNULL(fn, logits);
    LPK_NONNULL(fn, targets);
    LPK_DIMS(fn, &total, "N,V", N, V);
    int64_t cnt = 0;
    LP_TRY(check_targets(fn, targets, N, V, ignore_index, &cnt));
    if (count < 0) return lp_error(LP_ERR_INVALID_ARG, "%s: count %lld < 0", fn, (long long)count);
    const float scale = count > 0 ? dloss / (float)count : 0.0f;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const float *row = logits + n * V;
        float *drow = dlogits + n * V;   /* may equal row: each element is read before it is written */
        const int32_t t = targets[n];
        if (t == ignore_index || scale == 0.0f) {
            for (int64_t j = 0; j < V; j++) drow[j] = 0.0f;
            continue;
        }
        const float l = lse ? lse[n] : row_logsumexp(row, V);
#pragma omp simd
        for (int64_t j = 0; j < V; j++) drow[j] = scale * lpk_expf(row[j] - l);
        drow[t] -= scale;
    }
    return LP_OK;
}
