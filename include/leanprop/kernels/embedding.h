/* leanprop/kernels/embedding.h: embedding lookup and its scatter-add backward.
 *
 * ids are int32 and bounds-checked: an id outside [0, V) returns
 * LP_ERR_INVALID_ARG naming the position and id, before anything is written.
 *
 *   lp_embedding_forward(x, ids, wte, N, V, C);       // x (N,C) = wte[ids]
 *   lp_embedding_backward(dwte, dx, ids, N, V, C);    // dwte[ids[n]] += dx[n]
 */
#ifndef LEANPROP_KERNELS_EMBEDDING_H
#define LEANPROP_KERNELS_EMBEDDING_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ids (N), W (V,C) -> out (N,C), out[n] = W[ids[n]] */
lp_status lp_embedding_forward(float *out, const int32_t *ids, const float *W, int64_t N, int64_t V, int64_t C);

/* dout (N,C), ids (N) -> dW (V,C) += scatter-add of dout rows (repeated ids sum); deterministic */
lp_status lp_embedding_backward(float *dW, const float *dout, const int32_t *ids, int64_t N, int64_t V, int64_t C);

#ifdef __cplusplus
}
#endif
#endif
