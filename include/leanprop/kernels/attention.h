/* leanprop/kernels/attention.h: multi-head attention, flash-attention style on the CPU.
 *
 * Layouts are exactly those of the projections (no permute copies):
 *   q   (B,Tq,H,D)      k, v (B,Tk,Hkv,D)      out (B,Tq,H,D)
 * Grouped-query attention when Hkv < H (H % Hkv == 0; query head h reads kv
 * head h / (H/Hkv)). Scores are scale * q.k with scale = 1/sqrt(D) unless set.
 *
 * Masking, per query row i and key j of batch b:
 *   key_mask (B,Tk) int32, nonzero = real token (NULL = all real);
 *   causal: key j is visible iff k_pos[b,j] <= q_pos[b,i], where the
 *   positions are int32 arrays (B,Tq), (B,Tk), NULL = 0..T-1. Passing the
 *   original positions of a SUBSET of query rows gives exactly those rows of
 *   the full computation (TokenTune runs selected queries against all keys).
 * A row with no visible key gets out = 0, lse = -inf, and zero gradients.
 *
 * Memory: the forward saves only the per-row logsumexp lse (B,H,Tq) floats
 * (lp_attention_saved_bytes); the backward recomputes probabilities row by
 * row from q, k, v, out and lse. No (B,H,Tq,Tk) tensor is ever allocated; the
 * scratch (LP_MEM_SCRATCH, freed before return) is, per thread, one key head
 * transposed to (D,Tk) plus a score row: Tk*(D+1) floats forward, twice that
 * backward (values transposed too). Backward ADDS
 * into dq, dk, dv; each may be NULL. Forward parallelises over (b,h),
 * backward over (b, kv head) so it is deterministic without locks.
 *
 *   lp_attention_params p = {.B = B, .Tq = T, .Tk = T, .H = 12, .Hkv = 12, .D = 64, .causal = 1};
 *   float *lse = lp_alloc(LP_MEM_ACTIVATIONS, lp_attention_saved_bytes(&p));
 *   lp_attention_forward(out, lse, q, k, v, &p);
 *   lp_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, &p);
 */
#ifndef LEANPROP_KERNELS_ATTENTION_H
#define LEANPROP_KERNELS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t B, Tq, Tk;       /* batch, query rows, key rows */
    int64_t H, Hkv, D;       /* query heads, key/value heads (H % Hkv == 0), head dimension */
    int causal;              /* 1 = key visible only at positions <= the query's */
    float scale;             /* 0 = 1/sqrt(D) */
    const int32_t *key_mask; /* (B,Tk), nonzero = real; NULL = all real */
    const int32_t *q_pos;    /* (B,Tq) original positions of the query rows; NULL = 0..Tq-1 */
    const int32_t *k_pos;    /* (B,Tk) positions of the keys; NULL = 0..Tk-1 */
} lp_attention_params;

/* Bytes the forward saves for the backward (lse, B*H*Tq floats); 0 if the dims are invalid. */
size_t lp_attention_saved_bytes(const lp_attention_params *p);

/* q (B,Tq,H,D), k, v (B,Tk,Hkv,D) -> out (B,Tq,H,D); saves lse (B,H,Tq) (may be NULL if no backward) */
lp_status lp_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                               const lp_attention_params *p);

/* dout, out (B,Tq,H,D), q, k, v, lse -> dq (B,Tq,H,D) +=, dk, dv (B,Tk,Hkv,D) +=; each gradient may be NULL */
lp_status lp_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const float *out, const float *lse, const lp_attention_params *p);

#ifdef __cplusplus
}
#endif
#endif
