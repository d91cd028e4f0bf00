/* Incremental decoding with a KV cache, and sampling (greedy, temperature, top-p). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels.h"
#include "leanprop/kernels/activation.h"
#include "leanprop/kernels/attention.h"
#include "leanprop/kernels/embedding.h"
#include "leanprop/kernels/norm.h"
#include "leanprop/kernels/rope.h"
#include "nn/transformer_internal.h"

#define DECODE_CHUNK 64

struct lp_kv_cache {
    int64_t max_len, len, n_layers, KD;
    float *k, *v;       /* (L, max_len, KD) each */
    char *scratch;      /* chunk buffers */
    float *x, *xn, *qkv, *q, *att, *y, *h1, *h2, *lse;
    int32_t *pos;
};

lp_status lp_kv_cache_new(lp_kv_cache **out, const lp_transformer *m, int64_t max_len)
{
    if (!out || !m) return lp_error(LP_ERR_INVALID_ARG, "lp_kv_cache_new: NULL argument");
    *out = NULL;
    const lp_transformer_config *c = &m->cfg;
    if (lp_tf_is_cls(c)) return lp_error(LP_ERR_UNSUPPORTED, "KV cache: this %s is not a causal LM", c->model_type);
    if (max_len <= 0 || max_len > (1 << 24)) return lp_error(LP_ERR_INVALID_ARG, "KV cache: bad length %lld", (long long)max_len);
    if (c->arch == LP_ARCH_GPT2 && max_len > c->max_positions) max_len = c->max_positions;
    lp_kv_cache *kc = calloc(1, sizeof *kc);
    if (!kc) return lp_error(LP_ERR_NOMEM, "KV cache");
    int64_t C = c->hidden_size, I = c->intermediate_size, H = c->n_heads, QD = H * c->head_dim;
    int64_t KD = c->n_kv_heads * c->head_dim, n = DECODE_CHUNK;
    kc->max_len = max_len;
    kc->n_layers = c->n_layers;
    kc->KD = KD;
    kc->k = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(c->n_layers * max_len * KD), sizeof(float));
    kc->v = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(c->n_layers * max_len * KD), sizeof(float));
    lp_tf_carver cv = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        cv.off = 0;
        kc->x = lp_tf_carve(&cv, (size_t)(n * C) * sizeof(float));
        kc->xn = lp_tf_carve(&cv, (size_t)(n * C) * sizeof(float));
        kc->qkv = lp_tf_carve(&cv, (size_t)(n * (QD + 2 * KD)) * sizeof(float));
        kc->q = lp_tf_carve(&cv, (size_t)(n * QD) * sizeof(float));
        kc->att = lp_tf_carve(&cv, (size_t)(n * QD) * sizeof(float));
        kc->y = lp_tf_carve(&cv, (size_t)(n * C) * sizeof(float));
        kc->h1 = lp_tf_carve(&cv, (size_t)(n * I) * sizeof(float));
        kc->h2 = lp_tf_carve(&cv, (size_t)(n * I) * sizeof(float));
        kc->lse = lp_tf_carve(&cv, (size_t)(n * H) * sizeof(float));
        kc->pos = lp_tf_carve(&cv, (size_t)n * sizeof(int32_t));
        if (pass == 0) {
            kc->scratch = lp_alloc(LP_MEM_SCRATCH, cv.off);
            if (!kc->scratch) break;
            cv.base = kc->scratch;
        }
    }
    if (!kc->k || !kc->v || !kc->scratch) {
        lp_kv_cache_free(kc);
        return lp_error_context(LP_ERR_NOMEM, "KV cache of %lld positions", (long long)max_len);
    }
    *out = kc;
    return LP_OK;
}

void lp_kv_cache_free(lp_kv_cache *c)
{
    if (!c) return;
    lp_free(c->k);
    lp_free(c->v);
    lp_free(c->scratch);
    free(c);
}

int64_t lp_kv_cache_len(const lp_kv_cache *c) { return c ? c->len : 0; }
void lp_kv_cache_reset(lp_kv_cache *c)
{
    if (c) c->len = 0;
}

static lp_status norm(const lp_transformer *m, float *y, const float *x, const lp_param *w, const lp_param *b, int64_t n)
{
    const lp_transformer_config *c = &m->cfg;
    if (c->arch == LP_ARCH_LLAMA) return lp_rmsnorm_forward(y, NULL, x, w->data, n, c->hidden_size, (float)c->norm_eps);
    return lp_layernorm_forward(y, NULL, NULL, x, w->data, b ? b->data : NULL, n, c->hidden_size, (float)c->norm_eps);
}

/* n <= DECODE_CHUNK tokens at positions kc->len .. kc->len + n - 1. */
static lp_status decode_chunk(lp_transformer *m, lp_kv_cache *kc, const int32_t *ids, int64_t n, float *logits_last)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size, H = c->n_heads, D = c->head_dim;
    int64_t QD = H * D, KD = kc->KD, p0 = kc->len;
    for (int64_t i = 0; i < n; i++) kc->pos[i] = (int32_t)(p0 + i);
    LP_TRY(lp_embedding_forward(kc->x, ids, m->wte->data, n, c->vocab_size, C));
    if (c->arch == LP_ARCH_GPT2)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < C; j++) kc->x[i * C + j] += m->wpe->data[(p0 + i) * C + j];
    for (int64_t l = 0; l < c->n_layers; l++) {
        const lp_tf_layer *L = &m->layers[l];
        float *kl = kc->k + l * kc->max_len * KD, *vl = kc->v + l * kc->max_len * KD;
        LP_TRY(norm(m, kc->xn, kc->x, L->ln1_w, L->ln1_b, n));
        if (c->arch == LP_ARCH_GPT2) {
            LP_TRY(lp_nn_linear_forward(L->qkv, kc->qkv, kc->xn, n));
            for (int64_t i = 0; i < n; i++) {
                const float *r = kc->qkv + i * (QD + 2 * KD);
                memcpy(kc->q + i * QD, r, (size_t)QD * sizeof(float));
                memcpy(kl + (p0 + i) * KD, r + QD, (size_t)KD * sizeof(float));
                memcpy(vl + (p0 + i) * KD, r + QD + KD, (size_t)KD * sizeof(float));
            }
        } else {
            LP_TRY(lp_nn_linear_forward(L->q, kc->q, kc->xn, n));
            LP_TRY(lp_nn_linear_forward(L->k, kl + p0 * KD, kc->xn, n));
            LP_TRY(lp_nn_linear_forward(L->v, vl + p0 * KD, kc->xn, n));
            LP_TRY(lp_rope_forward(kc->q, kc->q, kc->pos, 1, n, H, D, (float)c->rope_theta));
            LP_TRY(lp_rope_forward(kl + p0 * KD, kl + p0 * KD, kc->pos, 1, n, c->n_kv_heads, D, (float)c->rope_theta));
        }
        lp_attention_params p = {.B = 1, .Tq = n, .Tk = p0 + n, .H = H, .Hkv = c->n_kv_heads, .D = D, .causal = 1,
                                 .q_pos = kc->pos};
        LP_TRY(lp_attention_forward(kc->att, kc->lse, kc->q, kl, vl, &p));
        LP_TRY(lp_nn_linear_forward(L->o, kc->y, kc->att, n));
        LP_TRY(lp_residual_forward(kc->x, kc->x, kc->y, n * C));
        LP_TRY(norm(m, kc->xn, kc->x, L->ln2_w, L->ln2_b, n));
        if (c->arch == LP_ARCH_GPT2) {
            LP_TRY(lp_nn_linear_forward(L->fc, kc->h1, kc->xn, n));
            LP_TRY(lp_gelu_tanh_forward(kc->h1, kc->h1, n * I));
            LP_TRY(lp_nn_linear_forward(L->proj, kc->y, kc->h1, n));
        } else {
            LP_TRY(lp_nn_linear_forward(L->gate, kc->h1, kc->xn, n));
            LP_TRY(lp_nn_linear_forward(L->up, kc->h2, kc->xn, n));
            LP_TRY(lp_swiglu_forward(kc->h1, kc->h1, kc->h2, n * I));
            LP_TRY(lp_nn_linear_forward(L->down, kc->y, kc->h1, n));
        }
        LP_TRY(lp_residual_forward(kc->x, kc->x, kc->y, n * C));
    }
    kc->len += n;
    if (!logits_last) return LP_OK;
    LP_TRY(norm(m, kc->xn, kc->x + (n - 1) * C, m->lnf_w, m->lnf_b, 1));
    return lp_nn_linear_forward(m->head, logits_last, kc->xn, 1);
}

lp_status lp_transformer_decode(lp_transformer *m, lp_kv_cache *kc, const int32_t *ids, int64_t n, float *logits_last)
{
    if (!m || !kc || !ids || n <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_decode: bad argument");
    if (lp_tf_is_cls(&m->cfg)) return lp_error(LP_ERR_UNSUPPORTED, "decode: this %s is not a causal LM", m->cfg.model_type);
    if (kc->n_layers != m->cfg.n_layers || kc->KD != m->cfg.n_kv_heads * m->cfg.head_dim)
        return lp_error(LP_ERR_INVALID_ARG, "decode: the KV cache was made for another model");
    if (kc->len + n > kc->max_len)
        return lp_error(LP_ERR_INVALID_ARG, "decode: %lld cached + %lld new tokens exceed the cache (%lld positions)",
                        (long long)kc->len, (long long)n, (long long)kc->max_len);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return lp_error(LP_ERR_INVALID_ARG, "decode: token id %d outside [0, %lld)", ids[i], (long long)m->cfg.vocab_size);
    for (int64_t i0 = 0; i0 < n; i0 += DECODE_CHUNK) {
        int64_t k = n - i0 < DECODE_CHUNK ? n - i0 : DECODE_CHUNK;
        LP_TRY(decode_chunk(m, kc, ids + i0, k, i0 + k == n ? logits_last : NULL));
    }
    return LP_OK;
}

/* ------------------------------------------------------------ sampling */

typedef struct {
    float p;
    int32_t i;
} prob_index;

static int by_prob_desc(const void *a, const void *b)
{
    float pa = ((const prob_index *)a)->p, pb = ((const prob_index *)b)->p;
    if (pa > pb) return -1;
    if (pa < pb) return 1;
    return ((const prob_index *)a)->i - ((const prob_index *)b)->i;
}

lp_status lp_sample_token(int32_t *out, const float *logits, int64_t V, const lp_sampler_opts *o, lp_rng *rng)
{
    if (!out || !logits || V <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_sample_token: bad argument");
    float temp = o ? o->temperature : 0.0f;
    if (!(temp >= 0.0f) || !isfinite(temp)) return lp_error(LP_ERR_INVALID_ARG, "sample: temperature %g", temp);
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp == 0.0f) {
        *out = (int32_t)best;
        return LP_OK;
    }
    if (!rng) return lp_error(LP_ERR_INVALID_ARG, "sample: temperature > 0 needs a generator");
    float top_p = o->top_p;
    if (top_p <= 0.0f || top_p > 1.0f) top_p = 1.0f;
    prob_index *pi = lp_alloc_array(LP_MEM_SCRATCH, (size_t)V, sizeof *pi);
    if (!pi) return lp_error_context(LP_ERR_NOMEM, "sampling");
    double sum = 0.0, mx = logits[best];
    for (int64_t i = 0; i < V; i++) {
        double e = exp(((double)logits[i] - mx) / temp);
        pi[i].p = (float)e;
        pi[i].i = (int32_t)i;
        sum += e;
    }
    int64_t n = V;
    if (top_p < 1.0f) {
        qsort(pi, (size_t)V, sizeof *pi, by_prob_desc);
        double cum = 0.0;
        for (n = 0; n < V;) {
            cum += pi[n].p / sum;
            n++;
            if (cum >= top_p) break;
        }
        sum = 0.0;
        for (int64_t i = 0; i < n; i++) sum += pi[i].p;
    }
    double u = lp_rng_uniform_double(rng) * sum, acc = 0.0;
    int32_t pick = pi[n - 1].i;
    for (int64_t i = 0; i < n; i++) {
        acc += pi[i].p;
        if (u < acc) {
            pick = pi[i].i;
            break;
        }
    }
    lp_free(pi);
    *out = pick;
    return LP_OK;
}

lp_status lp_transformer_generate(lp_transformer *m, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                                  const lp_sampler_opts *o, int stop_at_eos, int32_t *out, int64_t *n_out)
{
    if (!m || !prompt || n_prompt <= 0 || max_new < 0 || (max_new > 0 && !out) || !n_out)
        return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_generate: bad argument");
    *n_out = 0;
    if (max_new == 0) return LP_OK;
    int64_t limit = n_prompt + max_new;
    if (m->cfg.arch == LP_ARCH_GPT2 && limit > m->cfg.max_positions) limit = m->cfg.max_positions;
    if (n_prompt >= limit)
        return lp_error(LP_ERR_INVALID_ARG, "generate: prompt of %lld tokens leaves no room (context %lld)",
                        (long long)n_prompt, (long long)limit);
    lp_kv_cache *kc;
    LP_TRY(lp_kv_cache_new(&kc, m, limit));
    float *logits = lp_alloc_array(LP_MEM_SCRATCH, (size_t)m->cfg.vocab_size, sizeof(float));
    lp_rng rng;
    lp_rng_seed(&rng, o ? o->seed : 0);
    lp_status st = logits ? lp_transformer_decode(m, kc, prompt, n_prompt, logits) : lp_error(LP_ERR_NOMEM, "generate");
    int64_t k = 0;
    while (st == LP_OK && k < max_new) {
        int32_t tok;
        st = lp_sample_token(&tok, logits, m->cfg.vocab_size, o, &rng);
        if (st != LP_OK) break;
        out[k++] = tok;
        if (stop_at_eos && m->cfg.eos_token_id >= 0 && tok == m->cfg.eos_token_id) break;
        if (k == max_new || lp_kv_cache_len(kc) >= limit) break;
        st = lp_transformer_decode(m, kc, &tok, 1, logits);
    }
    *n_out = k;
    lp_free(logits);
    lp_kv_cache_free(kc);
    return st;
}
