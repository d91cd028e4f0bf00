/* Multi-head attention (GQA, causal by position, key padding, query subsets),
 * forward saving only the row logsumexp, backward recomputing probabilities. */
#include "leanprop/kernels/attention.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/kcheck.h"
#include "kernels/kmath.h"
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

/* Kt (D, n) = the n key (or value) rows of kv head hk in batch b, transposed, so
 * a query's scores against all keys are D vertical axpys instead of n dot products. */
static void transpose_head(float *Kt, const float *k, const lp_attention_params *p, int64_t b, int64_t hk,
                           int64_t n)
{
    const int64_t D = p->D, Tk = p->Tk, Hkv = p->Hkv;
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + ((b * Tk + j) * Hkv + hk) * D;
        for (int64_t d = 0; d < D; d++) Kt[d * n + j] = kj[d];
    }
}

/* s[0..jend) = scale * q_i . k_j, -inf where the key is not visible. */
static void row_scores(float *s, const float *qi, const float *Kt, const lp_attention_params *p, int64_t b,
                       int64_t qpos, int64_t jend, float scale)
{
    const int64_t D = p->D, Tk = p->Tk;
    for (int64_t j = 0; j < jend; j++) s[j] = 0.0f;
    for (int64_t d = 0; d < D; d++) {
        const float qd = scale * qi[d];
        const float *kt = Kt + d * Tk;
#pragma omp simd
        for (int64_t j = 0; j < jend; j++) s[j] += qd * kt[j];
    }
    if (p->key_mask || (p->causal && p->k_pos))
        for (int64_t j = 0; j < jend; j++)
            if (!visible(p, b, j, qpos)) s[j] = -INFINITY;
}

/* Per-thread scratch of `per` floats; NULL (error recorded) on failure. */
static float *thread_scratch(const char *fn, int nth, int64_t per)
{
    size_t n;
    if (lpk_dims(fn, &n, "threads,scratch", (const int64_t[]){nth, per}, 2) != LP_OK) return NULL;
    float *buf = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    if (!buf) lp_error_context(LP_ERR_NOMEM, "%s: per-thread scratch", fn);
    return buf;
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
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
    const int nth = max_threads();
    const int64_t per = Tk * (D + 1);   /* Kt (D,Tk) + one score row (Tk) */
    float *scratch = thread_scratch(fn, nth, per);
    if (!scratch) return LP_ERR_NOMEM;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(nth)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            float *Kt = scratch + (size_t)thread_id() * (size_t)per, *s = Kt + D * Tk;
            const int64_t hk = h / G;
            transpose_head(Kt, k, p, b, hk, Tk);
            for (int64_t i = 0; i < Tq; i++) {
                const int64_t row = ((b * Tq + i) * H + h) * D;
                float *oi = out + row;
                const int64_t qpos = p->q_pos ? p->q_pos[b * Tq + i] : i;
                const int64_t jend = key_end(p, qpos);
                memset(oi, 0, (size_t)D * sizeof(float));
                row_scores(s, q + row, Kt, p, b, qpos, jend, scale);
                float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
                for (int64_t j = 0; j < jend; j++) mx = s[j] > mx ? s[j] : mx;
                if (mx == -INFINITY) {   /* no visible key: output 0, no NaN */
                    if (lse) lse[(b * H + h) * Tq + i] = -INFINITY;
                    continue;
                }
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int64_t j = 0; j < jend; j++) {
                    s[j] = lpk_expf(s[j] - mx);   /* -inf -> 0 */
                    sum += s[j];
                }
                for (int64_t j = 0; j < jend; j++) {
                    const float e = s[j];
                    if (e == 0.0f) continue;
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
    const int nth = max_threads();
    const int64_t per = 2 * Tk * (D + 1);   /* Kt, Vt (D,Tk) + probability and dp rows (Tk) */
    float *scratch = thread_scratch(fn, nth, per);
    if (!scratch) return LP_ERR_NOMEM;
    /* One task per (b, kv head): it owns dk, dv of that head and dq of its G query heads,
     * so no two threads write the same element and the summation order is fixed.
     * p_ij = exp(s_ij - lse_i) comes from the saved lse:
     *   D_i = dout_i . out_i,  ds_ij = p_ij (dout_i . v_j - D_i)
     *   dq_i += scale sum_j ds_ij k_j,  dk_j += scale ds_ij q_i,  dv_j += p_ij dout_i */
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(nth)
    for (int64_t b = 0; b < B; b++)
        for (int64_t hk = 0; hk < Hkv; hk++) {
            float *Kt = scratch + (size_t)thread_id() * (size_t)per, *Vt = Kt + D * Tk;
            float *pr = Vt + D * Tk, *dp = pr + Tk;
            transpose_head(Kt, k, p, b, hk, Tk);
            transpose_head(Vt, v, p, b, hk, Tk);
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
                    row_scores(pr, qi, Kt, p, b, qpos, jend, scale);
#pragma omp simd
                    for (int64_t j = 0; j < jend; j++) pr[j] = lpk_expf(pr[j] - l);
                    if (dq || dk) {   /* dp_j = dout_i . v_j */
                        for (int64_t j = 0; j < jend; j++) dp[j] = 0.0f;
                        for (int64_t d = 0; d < D; d++) {
                            const float g = doi[d];
                            const float *vt = Vt + d * Tk;
#pragma omp simd
                            for (int64_t j = 0; j < jend; j++) dp[j] += g * vt[j];
                        }
                    }
                    for (int64_t j = 0; j < jend; j++) {
                        const float pij = pr[j];
                        if (pij == 0.0f) continue;
                        const int64_t kv = ((b * Tk + j) * Hkv + hk) * D;
                        if (dv) {
                            float *dvj = dv + kv;
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dvj[d] += pij * doi[d];
                        }
                        if (!dq && !dk) continue;
                        const float ds = scale * pij * (dp[j] - Di);
                        if (dk) {
                            float *dkj = dk + kv;
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dkj[d] += ds * qi[d];
                        }
                        if (dqi) {
                            const float *kj = k + kv;
#pragma omp simd
                            for (int64_t d = 0; d < D; d++) dqi[d] += ds * kj[d];
                        }
                    }
                }
        }
    lp_free(scratch);
    return LP_OK;
}
