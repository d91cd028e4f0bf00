/* Elementwise activations: GELU (tanh and erf), SiLU, SwiGLU, ReLU, LeakyReLU. */
#include "leanprop/kernels/activation.h"

#include <math.h>

#include "kernels/kcheck.h"
#include "kernels/kmath.h"

#define LPK_PAR_MIN 16384
#define GELU_K 0.7978845608028654f   /* sqrt(2/pi) */
#define GELU_C 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

#define CHECK_FWD(fn)                                                                                      \
    do {                                                                                                   \
        LPK_NONNULL(fn, out);                                                                              \
        LPK_NONNULL(fn, x);                                                                                \
        LPK_DIMS(fn, NULL, "n", n);                                                                        \
    } while (0)
#define CHECK_BWD(fn)                                                                                      \
    do {                                                                                                   \
        LPK_NONNULL(fn, dx);                                                                               \
        LPK_NONNULL(fn, dout);                                                                             \
        LPK_NONNULL(fn, x);                                                                                \
        LPK_DIMS(fn, NULL, "n", n);                                                                        \
    } while (0)

static inline float sigmoidf(float x) { return 1.0f / (1.0f + lpk_expf(-x)); }

lp_status lp_gelu_tanh_forward(float *out, const float *x, int64_t n)
{
    CHECK_FWD("lp_gelu_tanh_forward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + lpk_tanhf(GELU_K * (v + GELU_C * v * v * v)));
    }
    return LP_OK;
}

lp_status lp_gelu_tanh_backward(float *dx, const float *dout, const float *x, int64_t n)
{
    CHECK_BWD("lp_gelu_tanh_backward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float t = lpk_tanhf(GELU_K * (v + GELU_C * v * v * v));
        float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        dx[i] += dout[i] * d;
    }
    return LP_OK;
}

lp_status lp_gelu_erf_forward(float *out, const float *x, int64_t n)
{
    CHECK_FWD("lp_gelu_erf_forward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * lpk_normcdff(x[i]);
    return LP_OK;
}

lp_status lp_gelu_erf_backward(float *dx, const float *dout, const float *x, int64_t n)
{
    CHECK_BWD("lp_gelu_erf_backward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float d = lpk_normcdff(v) + v * INV_SQRT_2PI * lpk_expf(-0.5f * v * v);
        dx[i] += dout[i] * d;
    }
    return LP_OK;
}

lp_status lp_silu_forward(float *out, const float *x, int64_t n)
{
    CHECK_FWD("lp_silu_forward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(x[i]);
    return LP_OK;
}

lp_status lp_silu_backward(float *dx, const float *dout, const float *x, int64_t n)
{
    CHECK_BWD("lp_silu_backward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
    return LP_OK;
}

lp_status lp_swiglu_forward(float *out, const float *gate, const float *up, int64_t n)
{
    static const char fn[] = "lp_swiglu_forward";
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, gate);
    LPK_NONNULL(fn, up);
    LPK_DIMS(fn, NULL, "n", n);
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * sigmoidf(g) * up[i];
    }
    return LP_OK;
}

lp_status lp_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                             int64_t n)
{
    static const char fn[] = "lp_swiglu_backward";
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, gate);
    LPK_NONNULL(fn, up);
    LPK_DIMS(fn, NULL, "n", n);
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf(g);
        if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
    return LP_OK;
}

lp_status lp_relu_forward(float *out, const float *x, int64_t n)
{
    CHECK_FWD("lp_relu_forward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return LP_OK;
}

lp_status lp_relu_backward(float *dx, const float *dout, const float *x, int64_t n)
{
    CHECK_BWD("lp_relu_backward");
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : 0.0f;
    return LP_OK;
}

lp_status lp_leaky_relu_forward(float *out, const float *x, int64_t n, float slope)
{
    CHECK_FWD("lp_leaky_relu_forward");
    if (!isfinite(slope)) return lp_error(LP_ERR_INVALID_ARG, "lp_leaky_relu_forward: slope %g is not finite", slope);
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : slope * x[i];
    return LP_OK;
}

lp_status lp_leaky_relu_backward(float *dx, const float *dout, const float *x, int64_t n, float slope)
{
    CHECK_BWD("lp_leaky_relu_backward");
    if (!isfinite(slope)) return lp_error(LP_ERR_INVALID_ARG, "lp_leaky_relu_backward: slope %g is not finite", slope);
#pragma omp parallel for simd schedule(static) if (n >= LPK_PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : slope * dout[i];
    return LP_OK;
}
