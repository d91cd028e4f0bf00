/* Multi-head attention (GQA, causal by position, key padding, query subsets),
 * forward saving only the row logsumexp, backward recomputing probabilities. */
#include "leanprop/kernels/attention.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/kcheck.h"
#include "leanprop/alloc.h"

static lp_status check_params(const char *fn, const lp_attention_params *p, float *scale)
{
    LPK_NONNULL(fn, p);
    LPK_DIMS(fn, NULL, "B,Tq,H,D", p->B, p->Tq, p->H, p->D);
    LPK_DIMS(fn, NULL, "B,Tk,Hkv,D", p->B, p->Tk, p->Hkv, p->D);
    if (p->Hkv > p->H || p->H % p->Hkv != 0)
        return lp_error(LP_ERR_INVALID_ARG, "%s: H = %lld must be a multiple of Hkv = %lld", fn, (long long)p->H,
                        (long long)p->Hkv);
    if (p->causal != 0 && p->causal != 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: causal must be 0 or 1, got %d", fn, p->causal);
    if (!isfinite(p->scale)) return lp_error(LP_ERR_INVALID_ARG, "%s: scale %g is not finite", fn, p->scale);
    *scale = p->scale != 0.0f ? p->scale : 1.0f / sqrtf((float)p->D);
    return LP_OK;
}

size_t lp_attention_saved_bytes(const lp_attention_params *p)
{
    size_t n;
    float scale;
    if (check_params("lp_attention_saved_bytes", p, &scale) != LP_OK ||
        lpk_dims("lp_attention_saved_bytes", &n, "B,H,Tq", (const int64_t[]){p->B, p->H, p->Tq}, 3) != LP_OK)
        return 0;
    return n * sizeof(float);
}

/* Position of query row i (batch b) and the end of the key range worth scanning:
 * with default key positions 0..Tk-1 a causal row sees only keys j <= qpos. */
static inline int64_t key_end(const lp_attention_params *p, int64_t qpos)
{
    if (!p->causal || p->k_pos) return p->Tk;
    if (qpos < 0) return 0;
    return qpos + 1 < p->Tk ? qpos + 1 : p->Tk;
}

static inline int visible(const lp_attention_params *p, int64_t b, int64_t j, int64_t qpos)
{
    if (p->key_mask && !p->key_mask[b * p->Tk + j]) return 0;
    if (p->causal && p->k_pos && p->k_pos[b * p->Tk + j] > qpos) return 0;
    return 1;
}

static inline float dot(const float *a, const float *b, int64_t D)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

lp_status lp_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                               const lp_attention_params *p)
{
    static const char fn[] = "lp_attention_forward";
    float scale;
    LP_TRY(check_params(fn, p, &scale));
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, q);
    LPK_NONNULL(fn, k);
    LPK_NONNULL(fn, v);
    const int64_t B = p->B, Tq = p->Tq, Tk = p->Tk, H = p->H, Hkv = p->Hkv, D = p->D, G = H / Hkv;
    int nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    float *scratch = lp_alloc_array(LP_MEM_SCRATCH, (size_t)nth * (size_t)Tk, sizeof(float));
    if (!scratch) return lp_error_context(LP_ERR_NOMEM, "%s: score row scratch", fn);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(nth)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            float *s = scratch + (size_t)tid * (size_t)Tk;
            const int64_t hk = h / G;
            for (int64_t i = 0; i < Tq; i++) {
                const float *qi = q + ((b * Tq + i) * H + h) * D;
                float *oi = out + ((b * Tq + i) * H + h) * D;
                const int64_t qpos = p->q_pos ? p->q_pos[b * Tq + i] : i;
                const int64_t jend = key_end(p, qpos);
                float mx = -INFINITY;
                for (int64_t j = 0; j < jend; j++) {
                    if (!visible(p, b, j, qpos)) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    s[j] = scale * dot(qi, k + ((b * Tk + j) * Hkv + hk) * D, D);
                    mx = s[j] > mx ? s[j] : mx;
                }
                memset(oi, 0, (size_t)D * sizeof(float));
                if (mx == -INFINITY) {   /* no visible key: output 0, no NaN */
                    if (lse) lse[(b * H + h) * Tq + i] = -INFINITY;
                    continue;
                }
                float sum = 0.0f;
                for (int64_t j = 0; j < jend; j++) {
                    if (s[j] == -INFINITY) continue;
                    const float e = expf(s[j] - mx);
                    sum += e;
                    const float *vj = v + ((b * Tk + j) * Hkv + hk) * D;
#pragma omp simd
                    for (int64_t d = 0; d < D; d++) oi[d] += e * vj[d];
                }
                const float inv = 1.0f / sum;
#pragma omp simd
                for (int64_t d = 0; d < D; d++) oi[d] *= inv;
                if (lse) lse[(b * H + h) * Tq + i] = mx + logf(sum);
            }
        }
    lp_free(scratch);
    return LP_OK;
}

lp_status lp_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const float *out, const float *lse, const lp_attention_params *p)
{
    static const char fn[] = "lp_attention_backward";
    float scale;
    LP_TRY(check_params(fn, p, &scale));
    LPK_NONNULL(fn, dout);
    LPK_NONNULL(fn, q);
    LPK_NONNULL(fn, k);
    LPK_NONNULL(fn, v);
    LPK_NONNULL(fn, out);
    LPK_NONNULL(fn, lse);
    if (!dq && !dk && !dv) return LP_OK;
    const int64_t B = p->B, Tq = p->Tq, Tk = p->Tk, H = p->H, Hkv = p->Hkv, D = p->D, G = H / Hkv;
    /* One task per (b, kv head): it owns dk, dv of that head and dq of its G query heads,
     * so no two threads write the same element and the summation order is fixed.
     * p_ij = exp(s_ij - lse_i) comes from the saved lse; no row buffer is needed:
     *   D_i = dout_i . out_i,  ds_ij = p_ij (dout_i . v_j - D_i)
     *   dq_i += scale sum_j ds_ij k_j,  dk_j += scale ds_ij q_i,  dv_j += p_ij dout_i */
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++)
        for (int64_t hk = 0; hk < Hkv; hk++)
            for (int64_t h = hk * G; h < (hk + 1) * G; h++)
                for (int64_t i = 0; i < Tq; i++) {
                    const float l = lse[(b * H + h) * Tq + i];
                    if (l == -INFINITY) continue;   /* row saw no key */
                    const int64_t row = ((b * Tq + i) * H + h) * D;
                    const float *qi = q + row, *doi = dout + row;
                    float *dqi = dq ? dq + row : NULL;
                    const float Di = dot(doi, out + row, D);
                    const int64_t qpos = p->q_pos ? p->q_pos[b * Tq + i] : i;
                    const int64_t jend = key_end(p, qpos);
                    for (int64_t j = 0; j < jend; j++) {
                        if (!visible(p, b, j, qpos)) continue;
                        const int64_t kv = ((b * Tk + j) * Hkv + hk) * D;
                        const float *kj = k + kv, *vj = v + kv;
                        const float pij = expf(scale * dot(qi, kj, D) - l);
                        if (dv) {
                            float *dvj = dv + kv;
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dvj[d] += pij * doi[d];
                        }
                        if (!dq && !dk) continue;
                        const float ds = scale * pij * (dot(doi, vj, D) - Di);
                        if (dk) {
                            float *dkj = dk + kv;
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dkj[d] += ds * qi[d];
                        }
                        if (dqi) {
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dqi[d] += ds * kj[d];
                        }
                    }
                }
    return LP_OK;
}
