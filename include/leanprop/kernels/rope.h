/* leanprop/kernels/rope.h: rotary position embedding as HF Llama applies it.
 *
 * rotate_half convention: dimension i pairs with i + D/2 (i < D/2),
 *   inv_freq_i = 1 / theta^(2i/D)   (float32, as HF computes it)
 *   a = pos * inv_freq_i            (float32 product)
 *   y_i       = x_i cos a - x_{i+D/2} sin a
 *   y_{i+D/2} = x_{i+D/2} cos a + x_i sin a
 * Positions come from an array so a subset of tokens (TokenTune) keeps its
 * original positions. Backward is the rotation by -a and ADDS into dx.
 *
 *   lp_rope_forward(q, q, pos, B, T, H, D, 10000.0f);   // in place on (B,T,H,D)
 *   lp_rope_backward(dq_pre, dq, pos, B, T, H, D, 10000.0f);
 */
#ifndef LEANPROP_KERNELS_ROPE_H
#define LEANPROP_KERNELS_ROPE_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_ROPE_THETA_DEFAULT 10000.0f

/* x (B,T,H,D), pos (B,T) or NULL (= 0..T-1) -> out (B,T,H,D) rotated; out may alias x.
 * D must be even; theta > 0. */
lp_status lp_rope_forward(float *out, const float *x, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                          int64_t D, float theta);

/* dout (B,T,H,D), pos (B,T) or NULL -> dx (B,T,H,D) += dout rotated by -angle (dx must not alias dout) */
lp_status lp_rope_backward(float *dx, const float *dout, const int32_t *pos, int64_t B, int64_t T, int64_t H,
                           int64_t D, float theta);

#ifdef __cplusplus
}
#endif
#endif
