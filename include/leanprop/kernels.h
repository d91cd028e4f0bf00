/* leanprop/kernels.h: every numeric kernel (umbrella header).
 *
 * Kernels are plain functions over row-major float buffers with explicit
 * dimensions, outputs first, each with a one-line shape comment. They validate
 * their arguments and return lp_status (LP_ERR_INVALID_ARG with a message on
 * NULL, non-positive or overflowing sizes); they never print or abort.
 *
 * Gradient contract: every *_backward ADDS (+=) into the gradient buffers it
 * is given (inputs and parameters alike); zero them before the first backward
 * of a step. A NULL gradient pointer means "not needed": that work is skipped
 * (e.g. frozen weights under LoRA need dinp but no dW).
 *
 * Saved state for backward is the minimum: normalisation statistics (mean,
 * rstd), softmax row statistics (attention logsumexp), never normalised copies
 * or (B,H,T,T) probability tensors.
 *
 *   #include "leanprop/kernels.h"
 *   lp_linear_forward(y, x, W, b, N, C, OC);
 *   lp_linear_backward(dx, NULL, NULL, dy, x, W, N, C, OC);   // frozen W: only dx
 */
#ifndef LEANPROP_KERNELS_H
#define LEANPROP_KERNELS_H

#include "leanprop/kernels/activation.h"
#include "leanprop/kernels/attention.h"
#include "leanprop/kernels/embedding.h"
#include "leanprop/kernels/linear.h"
#include "leanprop/kernels/norm.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/kernels/rope.h"
#include "leanprop/kernels/softmax.h"

#endif
