/* Global gradient L2 norm and clip_grad_norm_ (torch semantics). */
#include "leanprop/kernels/optim.h"

#include <math.h>

#include "kernels/kcheck.h"

#define LPK_PAR_MIN 32768

lp_status lp_grad_norm(float *const *grads, const int64_t *sizes, int k, float *total_norm)
{
    static const char fn[] = "lp_grad_norm";
    LPK_NONNULL(fn, grads);
    LPK_NONNULL(fn, sizes);
    if (k <= 0) return lp_error(LP_ERR_INVALID_ARG, "%s: k must be > 0, got %d", fn, k);
    double ss = 0.0;
    for (int j = 0; j < k; j++) {
        if (!grads[j]) continue;
        if (sizes[j] <= 0 || sizes[j] > LPK_MAX_NUMEL)
            return lp_error(LP_ERR_INVALID_ARG, "%s: sizes[%d] = %lld out of range", fn, j, (long long)sizes[j]);
        const float *g = grads[j];
        const int64_t n = sizes[j];
        double s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n >= LPK_PAR_MIN)
        for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
        ss += s;
    }
    if (total_norm) *total_norm = (float)sqrt(ss);
    return LP_OK;
}

lp_status lp_clip_grad_norm(float *const *grads, const int64_t *sizes, int k, float max_norm,
                            float *total_norm)
{
    static const char fn[] = "lp_clip_grad_norm";
    if (!(max_norm > 0.0f)) return lp_error(LP_ERR_INVALID_ARG, "%s: max_norm must be > 0, got %g", fn, max_norm);
    float norm;
    LP_TRY(lp_grad_norm(grads, sizes, k, &norm));
    if (total_norm) *total_norm = norm;
    if (!isfinite(norm))
        return lp_error(LP_ERR_NUMERIC, "%s: total gradient norm is %g; gradients left unscaled", fn, norm);
    /* torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1 (in float32). */
    float coef = max_norm / (norm + 1e-6f);
    if (coef >= 1.0f) return LP_OK;
    for (int j = 0; j < k; j++) {
        if (!grads[j]) continue;
        float *g = grads[j];
        const int64_t n = sizes[j];
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
        for (int64_t i = 0; i < n; i++) g[i] *= coef;
    }
    return LP_OK;
}
