/* Rotary position embedding (HF Llama rotate_half convention), forward and backward. */
#include "leanprop/kernels/rope.h"

#include <math.h>

#include "kernels/kcheck.h"
#include "leanprop/alloc.h"

#define LPK_PAR_MIN 16384

static lp_status rope_check(const char *fn, const float *a, const float *b, int64_t B, int64_t T, int64_t H,
                            int64_t D, float theta, size_t *total)
{
    LPK_NONNULL(fn, a);
    LPK_NONNULL(fn, b);
    LPK_DIMS(fn, total, "B,T,H,D", B, T, H, D);
    if (D % 2) return lp_error(LP_ERR_INVALID_ARG, "%s: head dimension D = %lld must be even", fn, (long long)D);
    if (!(theta > 0.0f && isfinite(theta)))
        return lp_error(LP_ERR_INVALID_ARG, "%s: theta must be > 0, got %g", fn, theta);
    return LP_OK;
}

/* sign = +1: forward rotation; -1: inverse (backward). accumulate: y += rot(x) instead of y = rot(x).
 * inv_freq (D/2) is precomputed; one sincos per (token, frequency), shared by the H heads. */
static void rope_apply(float *y, const float *x, const int32_t *pos, const float *inv_freq, int64_t B, int64_t T,
                       int64_t H, int64_t D, float sign, int accumulate, size_t total)
{
    const int64_t half = D / 2;
#pragma omp parallel for schedule(static) if (total >= LPK_PAR_MIN)
    for (int64_t bt = 0; bt < B * T; bt++) {
        const float p = pos ? (float)pos[bt] : (float)(bt % T);
        for (int64_t i = 0; i < half; i++) {
            const float a = p * inv_freq[i];   /* float32 product, as HF */
            float s, c;
            sincosf(a, &s, &c);
            s *= sign;
            for (int64_t h = 0; h < H; h++) {
                const int64_t o = (bt * H + h) * D;
                const float x1 = x[o + i], x2 = x[o + i + half];
                const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
                if (accumulate) {
                    y[o + i] += y1;
                    y[o + i + half] += y2;
                } else {
                    y[o + i] = y1;
                    y[o + i + half] = y2;
                }
            }
        }
    }
}

/* As HF: inv_freq = 1.0 / base ** (arange(0, D, 2).float() / D), all float32. */
static float *rope_inv_freq(const char *fn, int64_t D, float theta)
{
    float *f = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(D / 2), sizeof(float));
    if (!f) {
        lp_error_context(LP_ERR_NOMEM, "%s: inverse frequencies", fn);
        return NULL;
    }
    for (int64_t i = 0; i < D / 2; i++) f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)D);
    return f;
}

lp_status lp_rope_forward(float *out, const float *x, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                          int64_t D, float theta)
{
    size_t total;
    LP_TRY(rope_check("lp_rope_forward", out, x, B, T, H, D, theta, &total));
    float *inv_freq = rope_inv_freq("lp_rope_forward", D, theta);
    if (!inv_freq) return LP_ERR_NOMEM;
    rope_apply(out, x, pos, inv_freq, B, T, H, D, 1.0f, 0, total);
    lp_free(inv_freq);
    return LP_OK;
}

lp_status lp_rope_backward(float *dx, const float *dout, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                           int64_t D, float theta)
{
    size_t total;
    LP_TRY(rope_check("lp_rope_backward", dx, dout, B, T, H, D, theta, &total));
    float *inv_freq = rope_inv_freq("lp_rope_backward", D, theta);
    if (!inv_freq) return LP_ERR_NOMEM;
    rope_apply(dx, dout, pos, inv_freq, B, T, H, D, -1.0f, 1, total);
    lp_free(inv_freq);
    return LP_OK;
}
