/* leanprop/kernels/norm.h: LayerNorm and RMSNorm over the last dimension.
 *
 * Forward saves only per-row statistics (mean and rstd for LayerNorm, rstd for
 * RMSNorm, N floats each); backward recomputes the normalised rows from x.
 * Backward ADDS into dx, dweight, dbias; any of them may be NULL (skipped).
 *
 *   lp_layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f);       // torch.nn.LayerNorm
 *   lp_layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
 *   lp_rmsnorm_forward(y, rstd, x, w, N, C, 1e-6f);                  // HF LlamaRMSNorm
 *   lp_rmsnorm_backward(dx, dw, dy, x, w, rstd, N, C);
 */
#ifndef LEANPROP_KERNELS_NORM_H
#define LEANPROP_KERNELS_NORM_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (N,C), weight (C) or NULL (= 1), bias (C) or NULL (= 0) -> out (N,C); saves mean, rstd (N).
 * y = (x - mean) * rstd * weight + bias, rstd = 1/sqrt(biased var + eps). mean, rstd may be
 * NULL when no backward follows. out may alias x. eps >= 0. */
lp_status lp_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *weight,
                               const float *bias, int64_t N, int64_t C, float eps);

/* dout (N,C), x (N,C), weight (C) or NULL, mean, rstd (N) -> dx (N,C) +=, dweight (C) +=, dbias (C) += */
lp_status lp_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dout, const float *x,
                                const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C);

/* x (N,C), weight (C) or NULL (= 1) -> out (N,C); saves rstd (N) (may be NULL).
 * HF Llama: y = weight * (x * rsqrt(mean(x^2) + eps)). out may alias x. */
lp_status lp_rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int64_t N, int64_t C,
                             float eps);

/* dout (N,C), x (N,C), weight (C) or NULL, rstd (N) -> dx (N,C) +=, dweight (C) += */
lp_status lp_rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x, const float *weight,
                              const float *rstd, int64_t N, int64_t C);

#ifdef __cplusplus
}
#endif
#endif
