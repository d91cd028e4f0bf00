/* leanprop/kernels/activation.h: elementwise activations over n floats.
 *
 * Forward: out may alias x (in place). Backward needs the ORIGINAL input x
 * and ADDS into dx (dx += dout * f'(x)); dx must not alias x.
 *
 *   lp_gelu_tanh_forward(h, h, n);               // GPT-2 "gelu_new", in place
 *   lp_swiglu_forward(h, gate, up, n);           // Llama MLP: silu(gate) * up
 *   lp_swiglu_backward(dgate, dup, dh, gate, up, n);
 */
#ifndef LEANPROP_KERNELS_ACTIVATION_H
#define LEANPROP_KERNELS_ACTIVATION_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (n) -> out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (GPT-2 gelu_new) */
lp_status lp_gelu_tanh_forward(float *out, const float *x, int64_t n);
/* dout (n), x (n) -> dx (n) += dout * gelu_tanh'(x) */
lp_status lp_gelu_tanh_backward(float *dx, const float *dout, const float *x, int64_t n);

/* x (n) -> out (n) = 0.5 x (1 + erf(x / sqrt 2))   (exact GELU, BERT) */
lp_status lp_gelu_erf_forward(float *out, const float *x, int64_t n);
/* dout (n), x (n) -> dx (n) += dout * gelu'(x) */
lp_status lp_gelu_erf_backward(float *dx, const float *dout, const float *x, int64_t n);

/* x (n) -> out (n) = x * sigmoid(x) */
lp_status lp_silu_forward(float *out, const float *x, int64_t n);
/* dout (n), x (n) -> dx (n) += dout * silu'(x) */
lp_status lp_silu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* gate (n), up (n) -> out (n) = silu(gate) * up; out may alias gate or up */
lp_status lp_swiglu_forward(float *out, const float *gate, const float *up, int64_t n);
/* dout (n), gate (n), up (n) -> dgate (n) += dout * up * silu'(gate), dup (n) += dout * silu(gate);
 * either gradient may be NULL */
lp_status lp_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                             int64_t n);

/* x (n) -> out (n) = max(x, 0) */
lp_status lp_relu_forward(float *out, const float *x, int64_t n);
/* dout (n), x (n) -> dx (n) += x > 0 ? dout : 0 (torch: zero gradient at 0) */
lp_status lp_relu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* x (n) -> out (n) = x > 0 ? x : slope * x   (torch default slope 0.01) */
lp_status lp_leaky_relu_forward(float *out, const float *x, int64_t n, float slope);
/* dout (n), x (n) -> dx (n) += x > 0 ? dout : slope * dout */
lp_status lp_leaky_relu_backward(float *dx, const float *dout, const float *x, int64_t n, float slope);

#ifdef __cplusplus
}
#endif
#endif
