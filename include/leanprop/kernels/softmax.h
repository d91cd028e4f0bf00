/* leanprop/kernels/softmax.h: row softmax and cross-entropy fused with softmax.
 *
 * Numerically stable (max-subtracted). Cross-entropy takes raw logits and
 * int32 targets with an ignore index (torch's -100), and averages over the
 * counted (non-ignored) targets, as torch.nn.functional.cross_entropy does.
 *
 *   float loss; int64_t count;
 *   lp_crossentropy_forward(&loss, &count, lse, logits, targets, N, V, LP_IGNORE_INDEX);
 *   // dlogits may be logits itself: the backward overwrites, in place, saving an (N,V) buffer
 *   lp_crossentropy_backward(logits, logits, lse, targets, count, 1.0f, N, V, LP_IGNORE_INDEX);
 */
#ifndef LEANPROP_KERNELS_SOFTMAX_H
#define LEANPROP_KERNELS_SOFTMAX_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_IGNORE_INDEX (-100)

/* x (N,V) -> out (N,V) = softmax over each row; out may alias x */
lp_status lp_softmax_forward(float *out, const float *x, int64_t N, int64_t V);

/* dout (N,V), out (N,V) (the forward's result) -> dx (N,V) += out * (dout - sum(dout * out)) */
lp_status lp_softmax_backward(float *dx, const float *dout, const float *out, int64_t N, int64_t V);

/* logits (N,V), targets (N) -> *loss = mean over counted rows of (logsumexp(row) - row[target]),
 * *count = number of rows whose target != ignore_index; saves lse (N) (may be NULL; ignored rows
 * get lse too). With count 0, *loss = 0 (torch would give NaN). A target outside [0, V) that is
 * not ignore_index is LP_ERR_INVALID_ARG (the message names the row). count may be NULL. */
lp_status lp_crossentropy_forward(float *loss, int64_t *count, float *lse, const float *logits,
                                  const int32_t *targets, int64_t N, int64_t V, int32_t ignore_index);

/* logits (N,V), lse (N) or NULL (recomputed), targets (N) -> dlogits (N,V) = (softmax - onehot) / count * dloss,
 * rows with an ignored target = 0. The one exception to the += contract: dlogits is OVERWRITTEN,
 * so it may be the logits buffer itself (in place). count: as returned by the forward, or the total over
 * several micro-batches when accumulating gradients (0: all zero). */
lp_status lp_crossentropy_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                   int64_t count, float dloss, int64_t N, int64_t V, int32_t ignore_index);

#ifdef __cplusplus
}
#endif
#endif
