/* Internal to src/kernels: vectorisable float exp, tanh and erf.
 *
 * glibc's expf/tanhf/erff are scalar calls that stop `omp simd` loops from
 * vectorising; these inline versions use only arithmetic, selects and bit
 * moves, so GCC vectorises loops that call them.
 *   lpk_expf: Cephes polynomial, max relative error ~2e-7 on [-86, 88.7];
 *             x < -86 -> 0 (true value < 5e-38), x > 88.7 -> inf, NaN -> NaN.
 *   lpk_tanhf: via lpk_expf(-2|x|), absolute error ~1e-7.
 *   lpk_normcdff: Phi(x) = 0.5 erfc(-x / sqrt 2) through the Numerical Recipes
 *             Chebyshev erfc (fractional error < 1.2e-7 in exact arithmetic),
 *             so the lower tail keeps its relative accuracy.
 */
#ifndef LEANPROP_KMATH_H
#define LEANPROP_KMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float lpk_expf(float x)
{
    const float hi = 88.7f, lo = -86.0f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;   /* NaN passes through both */
    /* n = round(x / ln 2) with the 1.5 * 2^23 trick: the low mantissa bits hold n */
    const float t = xc * 1.44269504088896341f + 12582912.0f;
    const float n = t - 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    /* r = x - n ln2, ln2 split in two for accuracy */
    const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^(n-1) * 2 keeps n = 128 representable; n >= -124 here */
    const uint32_t eb = (tb - 0x4B400000u + 126u) << 23;
    float scale;
    memcpy(&scale, &eb, sizeof scale);
    float res = p * scale * 2.0f;
    res = x < lo ? 0.0f : res;
    res = x > hi ? INFINITY : res;
    return res;
}

static inline float lpk_tanhf(float x)
{
    const float e = lpk_expf(-2.0f * fabsf(x));
    const float t = (1.0f - e) / (1.0f + e);
    return x < 0.0f ? -t : t;
}

/* erfc(z) for z >= 0 */
static inline float lpk_erfcf_pos(float z)
{
    const float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * lpk_expf(p - z * z);
}

/* Standard normal CDF Phi(x) = 0.5 (1 + erf(x / sqrt 2)) */
static inline float lpk_normcdff(float x)
{
    const float h = 0.5f * lpk_erfcf_pos(fabsf(x) * 0.70710678118654752f);
    return x < 0.0f ? h : 1.0f - h;
}

#endif
