/* Transformer forward: all rows computed layer by layer in reusable scratch,
 * only the selected rows' backward operands saved (plus every row's K and V),
 * final norm + head + loss on selected rows only, the head's gradient fused. */
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
#include "leanprop/kernels/softmax.h"
#include "nn/transformer_internal.h"

/* ------------------------------------------------------------ layouts */

void *lp_tf_carve(lp_tf_carver *c, size_t bytes)
{
    size_t o = (c->off + 63) & ~(size_t)63;
    c->off = o + bytes;
    return c->base ? c->base + o : NULL;
}

#define F(n) ((size_t)(n) * sizeof(float))
#define I32(n) ((size_t)(n) * sizeof(int32_t))

/* Logit rows per head chunk: about 4M floats of logits at a time. */
int64_t lp_tf_head_chunk(const lp_transformer_config *c, int64_t R)
{
    int64_t rc = ((int64_t)1 << 22) / c->vocab_size;
    if (rc < 16) rc = 16;
    if (lp_tf_is_cls(c)) rc = R;
    return rc < R ? rc : (R > 0 ? R : 1);
}

void lp_tf_carve_index(lp_tf_carver *cv, lp_tf_index *ix, int64_t B, int64_t T, int64_t S)
{
    int64_t N = B * T;
    ix->sel = lp_tf_carve(cv, (size_t)S * sizeof(int64_t));
    ix->off = lp_tf_carve(cv, (size_t)(B + 1) * sizeof(int64_t));
    ix->sel_pos = lp_tf_carve(cv, I32(S));
    ix->sel_ids = lp_tf_carve(cv, I32(S));
    ix->sel_tt = lp_tf_carve(cv, I32(S));
    ix->kmask = lp_tf_carve(cv, I32(N));
}

void lp_tf_carve_arena(lp_tf_carver *cv, const lp_transformer_config *c, int64_t B, int64_t T, int64_t S,
                       lp_tf_index *ix, lp_tf_saved *sv, lp_tf_top *top)
{
    int64_t N = B * T, C = c->hidden_size, I = c->intermediate_size, H = c->n_heads;
    int64_t QD = H * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    int ln = c->arch != LP_ARCH_LLAMA, bert = c->arch == LP_ARCH_BERT, llama = c->arch == LP_ARCH_LLAMA;
    lp_tf_carve_index(cv, ix, B, T, S);
    for (int64_t l = 0; l < c->n_layers; l++) {
        lp_tf_saved *s = &sv[l];
        memset(s, 0, sizeof *s);
        s->x_in = lp_tf_carve(cv, F(S * C));
        if (!bert) {
            s->mean1 = ln ? lp_tf_carve(cv, F(S)) : NULL;
            s->rstd1 = lp_tf_carve(cv, F(S));
        }
        s->q = lp_tf_carve(cv, F(S * QD));
        s->k = lp_tf_carve(cv, F(N * KD));
        s->v = lp_tf_carve(cv, F(N * KD));
        s->lse = lp_tf_carve(cv, F(S * H));
        s->att = lp_tf_carve(cv, F(S * QD));
        s->x_mid = lp_tf_carve(cv, F(S * C));
        if (bert) {
            s->mean1 = lp_tf_carve(cv, F(S));
            s->rstd1 = lp_tf_carve(cv, F(S));
        }
        s->mean2 = ln ? lp_tf_carve(cv, F(S)) : NULL;
        s->rstd2 = lp_tf_carve(cv, F(S));
        s->h1 = lp_tf_carve(cv, F(S * I));
        s->h2 = llama ? lp_tf_carve(cv, F(S * I)) : NULL;
        s->x_out = bert ? lp_tf_carve(cv, F(S * C)) : NULL;
    }
    memset(top, 0, sizeof *top);
    if (bert) {
        top->emb = lp_tf_carve(cv, F(S * C));
        top->emb_mean = lp_tf_carve(cv, F(S));
        top->emb_rstd = lp_tf_carve(cv, F(S));
    }
    top->d_top = lp_tf_carve(cv, F(S * C));
}

/* Forward scratch for N = B*T rows, R head rows (and the index when not saved). */
void lp_tf_carve_fwd(lp_tf_carver *cv, const lp_transformer_config *c, int64_t B, int64_t T, int64_t R, int with_index,
                     lp_tf_fwd *f)
{
    int64_t N = B * T, C = c->hidden_size, I = c->intermediate_size, H = c->n_heads;
    int64_t QD = H * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    memset(f, 0, sizeof *f);
    if (with_index) lp_tf_carve_index(cv, &f->ix, B, T, R);
    f->x = lp_tf_carve(cv, F(N * C));
    f->xn = lp_tf_carve(cv, F(N * C));
    f->qkv = c->arch == LP_ARCH_GPT2 ? lp_tf_carve(cv, F(N * (QD + 2 * KD))) : NULL;
    f->q = lp_tf_carve(cv, F(N * QD));
    f->k = lp_tf_carve(cv, F(N * KD));
    f->v = lp_tf_carve(cv, F(N * KD));
    f->att = lp_tf_carve(cv, F(N * QD));
    f->lse = lp_tf_carve(cv, F(N * H));
    f->y = lp_tf_carve(cv, F(N * C));
    f->h1 = lp_tf_carve(cv, F(N * I));
    f->h2 = c->arch == LP_ARCH_LLAMA ? lp_tf_carve(cv, F(N * I)) : NULL;
    f->mean = lp_tf_carve(cv, F(N));
    f->rstd = lp_tf_carve(cv, F(N));
    f->pos = lp_tf_carve(cv, I32(N));
    f->row_ids = lp_tf_carve(cv, (size_t)N * sizeof(int64_t));
    f->cls_ids = lp_tf_carve(cv, (size_t)B * sizeof(int64_t));
    int64_t rc = lp_tf_head_chunk(c, R);
    f->xf = lp_tf_carve(cv, F(R * C));
    f->xnf = lp_tf_carve(cv, F(R * C));
    f->dxnf = lp_tf_carve(cv, F(R * C));
    f->hmean = lp_tf_carve(cv, F(R));
    f->hrstd = lp_tf_carve(cv, F(R));
    f->tgt = lp_tf_carve(cv, I32(R));
    f->logits = lp_tf_carve(cv, F(rc * (lp_tf_is_cls(c) ? c->num_labels : c->vocab_size)));
}

/* Backward scratch for S selected rows of sequences of T positions. */
void lp_tf_carve_bwd(lp_tf_carver *cv, const lp_transformer_config *c, int64_t T, int64_t S, lp_tf_bwd *b)
{
    int64_t C = c->hidden_size, I = c->intermediate_size, H = c->n_heads;
    int64_t QD = H * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    memset(b, 0, sizeof *b);
    b->dx = lp_tf_carve(cv, F(S * C));
    b->dxn = lp_tf_carve(cv, F(S * C));
    b->xn = lp_tf_carve(cv, F(S * C));
    b->act = lp_tf_carve(cv, F(S * I));
    b->dh1 = lp_tf_carve(cv, F(S * I));
    b->dh2 = lp_tf_carve(cv, F(S * I));
    b->datt = lp_tf_carve(cv, F(S * QD));
    b->dq = lp_tf_carve(cv, F(S * QD));
    b->dks = lp_tf_carve(cv, F(S * KD));
    b->dvs = lp_tf_carve(cv, F(S * KD));
    b->dkp = lp_tf_carve(cv, F(S * KD));
    b->dqkv = c->arch == LP_ARCH_GPT2 ? lp_tf_carve(cv, F(S * (QD + 2 * KD))) : NULL;
    b->dk = lp_tf_carve(cv, F(T * KD));
    b->dv = lp_tf_carve(cv, F(T * KD));
}

size_t lp_tf_arena_bytes(const lp_transformer_config *c, int64_t B, int64_t T, int64_t S)
{
    lp_tf_carver cv = {NULL, 0};
    lp_tf_index ix;
    lp_tf_top top;
    lp_tf_saved *sv = calloc((size_t)c->n_layers, sizeof *sv);
    if (!sv) return 0;
    lp_tf_carve_arena(&cv, c, B, T, S, &ix, sv, &top);
    free(sv);
    return cv.off;
}

size_t lp_tf_scratch_bytes(const lp_transformer_config *c, int64_t B, int64_t T, int64_t S, int need_grad)
{
    lp_tf_carver cv = {NULL, 0};
    lp_tf_fwd f;
    lp_tf_carve_fwd(&cv, c, B, T, S, !need_grad, &f);
    size_t fwd = cv.off;
    if (!need_grad) return fwd;
    lp_tf_carver cb = {NULL, 0};
    lp_tf_bwd b;
    lp_tf_carve_bwd(&cb, c, T, S, &b);
    return fwd > cb.off ? fwd : cb.off;
}

lp_status lp_transformer_plan_memory(const lp_transformer_config *cfg, int64_t B, int64_t T, int64_t n_selected,
                                     lp_transformer_mem_plan *out)
{
    LP_TRY(lp_transformer_config_validate(cfg));
    if (!out || B <= 0 || T <= 0 || n_selected <= 0 || n_selected > B * T)
        return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_plan_memory: bad B %lld, T %lld or selection %lld",
                        (long long)B, (long long)T, (long long)n_selected);
    out->activations = lp_tf_arena_bytes(cfg, B, T, n_selected);
    out->scratch = lp_tf_scratch_bytes(cfg, B, T, n_selected, 1);
    return LP_OK;
}

lp_status lp_tf_scratch_reserve(lp_transformer *m, size_t bytes)
{
    if (bytes <= m->scratch_bytes) return LP_OK;
    lp_free(m->scratch);
    m->scratch_bytes = 0;
    m->scratch = lp_alloc(LP_MEM_SCRATCH, bytes);
    if (!m->scratch) return lp_error_context(LP_ERR_NOMEM, "transformer scratch");
    m->scratch_bytes = bytes;
    return LP_OK;
}

void lp_tf_free_saved(lp_transformer *m)
{
    lp_free(m->arena);
    m->arena = NULL;
    m->have_saved = 0;
}

void lp_transformer_release_buffers(lp_transformer *m)
{
    if (!m) return;
    lp_tf_free_saved(m);
    lp_free(m->scratch);
    m->scratch = NULL;
    m->scratch_bytes = 0;
    free(m->saved);
    m->saved = NULL;
}

int64_t lp_transformer_last_rows(const lp_transformer *m) { return m ? m->n_head_rows : 0; }
int64_t lp_transformer_last_count(const lp_transformer *m) { return m ? m->n_counted : 0; }

/* ------------------------------------------------------------ helpers */

void lp_tf_gather(float *dst, const float *src, const int64_t *idx, int64_t S, int64_t C)
{
#pragma omp parallel for schedule(static) if (S * C >= (1 << 16))
    for (int64_t s = 0; s < S; s++) memcpy(dst + s * C, src + idx[s] * C, (size_t)C * sizeof(float));
}

static void gather_scalar(float *dst, const float *src, const int64_t *idx, int64_t S)
{
    for (int64_t s = 0; s < S; s++) dst[s] = src[idx[s]];
}

/* GPT-2 fused qkv (N, QD+2KD) -> q (N,QD), k, v (N,KD) */
static void split_qkv(float *q, float *k, float *v, const float *qkv, int64_t N, int64_t QD, int64_t KD)
{
    int64_t W = QD + 2 * KD;
#pragma omp parallel for schedule(static) if (N * W >= (1 << 16))
    for (int64_t n = 0; n < N; n++) {
        memcpy(q + n * QD, qkv + n * W, (size_t)QD * sizeof(float));
        memcpy(k + n * KD, qkv + n * W + QD, (size_t)KD * sizeof(float));
        memcpy(v + n * KD, qkv + n * W + QD + KD, (size_t)KD * sizeof(float));
    }
}

static lp_status norm_fwd(const lp_transformer *m, float *y, float *mean, float *rstd, const float *x, const lp_param *w,
                          const lp_param *b, int64_t N)
{
    const lp_transformer_config *c = &m->cfg;
    if (c->arch == LP_ARCH_LLAMA) return lp_rmsnorm_forward(y, rstd, x, w->data, N, c->hidden_size, (float)c->norm_eps);
    return lp_layernorm_forward(y, mean, rstd, x, w->data, b ? b->data : NULL, N, c->hidden_size, (float)c->norm_eps);
}

lp_status lp_tf_norm_bwd(const lp_transformer *m, float *dx, const float *dy, const float *x, const float *mean,
                         const float *rstd, const lp_param *w, const lp_param *b, int64_t N)
{
    const lp_transformer_config *c = &m->cfg;
    if (c->arch == LP_ARCH_LLAMA) return lp_rmsnorm_backward(dx, w->grad, dy, x, w->data, rstd, N, c->hidden_size);
    return lp_layernorm_backward(dx, w->grad, b ? b->grad : NULL, dy, x, w->data, mean, rstd, N, c->hidden_size);
}

/* Recompute a norm's output from its saved input and statistics. */
lp_status lp_tf_norm_recompute(const lp_transformer *m, float *y, const float *x, const float *mean, const float *rstd,
                               const lp_param *w, const lp_param *b, int64_t N)
{
    const int64_t C = m->cfg.hidden_size;
    const float *wd = w->data, *bd = b ? b->data : NULL;
    int rms = m->cfg.arch == LP_ARCH_LLAMA;
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        float mu = rms ? 0.0f : mean[n], rs = rstd[n];
        for (int64_t i = 0; i < C; i++) {
            float v = (xr[i] - mu) * rs * wd[i];
            yr[i] = bd ? v + bd[i] : v;
        }
    }
    return LP_OK;
}

/* ------------------------------------------------------------ forward */

static lp_status check_batch(const lp_transformer *m, const lp_transformer_batch *b)
{
    const lp_transformer_config *c = &m->cfg;
    if (!b || !b->input_ids) return lp_error(LP_ERR_INVALID_ARG, "transformer forward: batch or input_ids is NULL");
    if (b->B <= 0 || b->T <= 0 || b->B > (1 << 24) || b->T > (1 << 24))
        return lp_error(LP_ERR_INVALID_ARG, "transformer forward: bad batch shape B=%lld T=%lld", (long long)b->B,
                        (long long)b->T);
    if (c->arch != LP_ARCH_LLAMA && b->T > c->max_positions)
        return lp_error(LP_ERR_INVALID_ARG, "transformer forward: T = %lld exceeds the %lld learned positions",
                        (long long)b->T, (long long)c->max_positions);
    int64_t N = b->B * b->T;
    for (int64_t n = 0; n < N; n++)
        if (b->input_ids[n] < 0 || b->input_ids[n] >= c->vocab_size)
            return lp_error(LP_ERR_INVALID_ARG, "transformer forward: input_ids[%lld] = %d outside [0, %lld)", (long long)n,
                            b->input_ids[n], (long long)c->vocab_size);
    if (b->token_type_ids && c->arch == LP_ARCH_BERT)
        for (int64_t n = 0; n < N; n++)
            if (b->token_type_ids[n] < 0 || b->token_type_ids[n] >= c->type_vocab_size)
                return lp_error(LP_ERR_INVALID_ARG, "transformer forward: token_type_ids[%lld] = %d outside [0, %lld)",
                                (long long)n, b->token_type_ids[n], (long long)c->type_vocab_size);
    if (b->labels && lp_tf_is_cls(c))
        for (int64_t i = 0; i < b->B; i++)
            if (b->labels[i] != LP_IGNORE_INDEX && (b->labels[i] < 0 || b->labels[i] >= c->num_labels))
                return lp_error(LP_ERR_INVALID_ARG, "transformer forward: labels[%lld] = %d outside [0, %lld)",
                                (long long)i, b->labels[i], (long long)c->num_labels);
    return LP_OK;
}

/* Position of sequence i's last real token (T-1 without a mask, 0 without any token). */
static int64_t last_real(const lp_transformer_batch *b, int64_t i)
{
    if (!b->attention_mask) return b->T - 1;
    for (int64_t t = b->T - 1; t > 0; t--)
        if (b->attention_mask[i * b->T + t]) return t;
    return 0;
}

/* Position every selection includes in sequence i: BERT's [CLS], a decoder
 * classifier's last real token; -1 for none. */
static int64_t forced_row(const lp_transformer *m, const lp_transformer_batch *b, int64_t i)
{
    if (m->cfg.arch == LP_ARCH_BERT) return 0;
    return lp_tf_is_dec_cls(&m->cfg) ? last_real(b, i) : -1;
}

static int64_t count_selected(const lp_transformer *m, const lp_transformer_batch *b)
{
    if (!b->selected) return b->B * b->T;
    int64_t S = 0;
    for (int64_t i = 0; i < b->B; i++) {
        int64_t fr = forced_row(m, b, i);
        for (int64_t t = 0; t < b->T; t++) S += b->selected[i * b->T + t] || t == fr;
    }
    return S;
}

static void fill_index(const lp_transformer *m, const lp_transformer_batch *b, lp_tf_index *ix)
{
    int64_t s = 0;
    for (int64_t i = 0; i < b->B; i++) {
        ix->off[i] = s;
        int64_t fr = b->selected ? forced_row(m, b, i) : -1;
        for (int64_t t = 0; t < b->T; t++) {
            int64_t n = i * b->T + t;
            if (b->selected && !b->selected[n] && t != fr) continue;
            ix->sel[s] = n;
            ix->sel_pos[s] = (int32_t)t;
            ix->sel_ids[s] = b->input_ids[n];
            ix->sel_tt[s] = b->token_type_ids ? b->token_type_ids[n] : 0;
            s++;
        }
    }
    ix->off[b->B] = s;
    for (int64_t n = 0; n < b->B * b->T; n++) ix->kmask[n] = b->attention_mask ? (b->attention_mask[n] != 0) : 1;
}

static lp_status embed(lp_transformer *m, const lp_transformer_batch *b, lp_tf_fwd *f, const lp_tf_index *ix, int g)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t B = b->B, T = b->T, N = B * T, C = c->hidden_size, S = ix->off[B];
    LP_TRY(lp_embedding_forward(f->x, b->input_ids, m->wte->data, N, c->vocab_size, C));
    if (c->arch == LP_ARCH_LLAMA) return LP_OK;
    /* learned positions (and BERT token types) */
    for (int64_t i = 0; i < B; i++)
        for (int64_t t = 0; t < T; t++) {
            float *xr = f->x + (i * T + t) * C;
            const float *pr = m->wpe->data + t * C;
            const float *tr = m->wtt ? m->wtt->data + (int64_t)(b->token_type_ids ? b->token_type_ids[i * T + t] : 0) * C : NULL;
            for (int64_t k = 0; k < C; k++) xr[k] += pr[k] + (tr ? tr[k] : 0.0f);
        }
    if (c->arch != LP_ARCH_BERT) return LP_OK;
    if (g) lp_tf_gather(m->top.emb, f->x, ix->sel, S, C);
    LP_TRY(norm_fwd(m, f->x, f->mean, f->rstd, f->x, m->emb_ln_w, m->emb_ln_b, N));
    if (g) {
        gather_scalar(m->top.emb_mean, f->mean, ix->sel, S);
        gather_scalar(m->top.emb_rstd, f->rstd, ix->sel, S);
    }
    return LP_OK;
}

/* Attention over all rows; with g also the selected rows' lse in per-sequence layout. */
static lp_status attention_all(lp_transformer *m, int64_t B, int64_t T, lp_tf_fwd *f, const float *k, const float *v,
                               const lp_tf_index *ix, lp_tf_saved *s)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t H = c->n_heads, QD = H * c->head_dim;
    lp_attention_params p = {.B = B, .Tq = T, .Tk = T, .H = H, .Hkv = c->n_kv_heads, .D = c->head_dim,
                             .causal = c->arch != LP_ARCH_BERT, .key_mask = ix->kmask};
    LP_TRY(lp_attention_forward(f->att, f->lse, f->q, k, v, &p));
    if (!s) return LP_OK;
    int64_t S = ix->off[B];
    lp_tf_gather(s->q, f->q, ix->sel, S, QD);
    lp_tf_gather(s->att, f->att, ix->sel, S, QD);
    for (int64_t i = 0; i < B; i++) {
        int64_t o = ix->off[i], cnt = ix->off[i + 1] - o;
        for (int64_t h = 0; h < H; h++)
            for (int64_t r = 0; r < cnt; r++) s->lse[H * o + h * cnt + r] = f->lse[(i * H + h) * T + ix->sel_pos[o + r]];
    }
    return LP_OK;
}

static lp_status layer_forward(lp_transformer *m, int64_t l, int64_t B, int64_t T, lp_tf_fwd *f, const lp_tf_index *ix,
                               int g)
{
    const lp_transformer_config *c = &m->cfg;
    const lp_tf_layer *L = &m->layers[l];
    lp_tf_saved *s = g ? &m->saved[l] : NULL;
    int64_t N = B * T, C = c->hidden_size, I = c->intermediate_size, S = ix->off[B];
    int64_t QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    float *k = s ? s->k : f->k, *v = s ? s->v : f->v;
    if (s) lp_tf_gather(s->x_in, f->x, ix->sel, S, C);

    if (c->arch == LP_ARCH_BERT) {
        LP_TRY(lp_nn_linear_forward_ids(L->q, f->q, f->x, f->row_ids, N));
        LP_TRY(lp_nn_linear_forward_ids(L->k, k, f->x, f->row_ids, N));
        LP_TRY(lp_nn_linear_forward_ids(L->v, v, f->x, f->row_ids, N));
        LP_TRY(attention_all(m, B, T, f, k, v, ix, s));
        LP_TRY(lp_nn_linear_forward_ids(L->o, f->y, f->att, f->row_ids, N));
        LP_TRY(lp_residual_forward(f->y, f->y, f->x, N * C));
        if (s) lp_tf_gather(s->x_mid, f->y, ix->sel, S, C);
        LP_TRY(norm_fwd(m, f->x, f->mean, f->rstd, f->y, L->ln1_w, L->ln1_b, N));
        if (s) {
            gather_scalar(s->mean1, f->mean, ix->sel, S);
            gather_scalar(s->rstd1, f->rstd, ix->sel, S);
        }
        LP_TRY(lp_nn_linear_forward_ids(L->fc, f->h1, f->x, f->row_ids, N));
        if (s) lp_tf_gather(s->h1, f->h1, ix->sel, S, I);
        LP_TRY(lp_gelu_erf_forward(f->h1, f->h1, N * I));
        LP_TRY(lp_nn_linear_forward_ids(L->proj, f->y, f->h1, f->row_ids, N));
        LP_TRY(lp_residual_forward(f->y, f->y, f->x, N * C));
        if (s) lp_tf_gather(s->x_out, f->y, ix->sel, S, C);
        LP_TRY(norm_fwd(m, f->x, f->mean, f->rstd, f->y, L->ln2_w, L->ln2_b, N));
        if (s) {
            gather_scalar(s->mean2, f->mean, ix->sel, S);
            gather_scalar(s->rstd2, f->rstd, ix->sel, S);
        }
        return LP_OK;
    }

    /* pre-norm decoder block */
    LP_TRY(norm_fwd(m, f->xn, f->mean, f->rstd, f->x, L->ln1_w, L->ln1_b, N));
    if (s) {
        if (s->mean1) gather_scalar(s->mean1, f->mean, ix->sel, S);
        gather_scalar(s->rstd1, f->rstd, ix->sel, S);
    }
    if (c->arch == LP_ARCH_GPT2) {
        LP_TRY(lp_nn_linear_forward_ids(L->qkv, f->qkv, f->xn, f->row_ids, N));
        split_qkv(f->q, k, v, f->qkv, N, QD, KD);
    } else {
        LP_TRY(lp_nn_linear_forward_ids(L->q, f->q, f->xn, f->row_ids, N));
        LP_TRY(lp_nn_linear_forward_ids(L->k, k, f->xn, f->row_ids, N));
        LP_TRY(lp_nn_linear_forward_ids(L->v, v, f->xn, f->row_ids, N));
        LP_TRY(lp_rope_forward(f->q, f->q, f->pos, B, T, c->n_heads, c->head_dim, (float)c->rope_theta));
        LP_TRY(lp_rope_forward(k, k, f->pos, B, T, c->n_kv_heads, c->head_dim, (float)c->rope_theta));
    }
    LP_TRY(attention_all(m, B, T, f, k, v, ix, s));
    LP_TRY(lp_nn_linear_forward_ids(L->o, f->y, f->att, f->row_ids, N));
    LP_TRY(lp_residual_forward(f->x, f->x, f->y, N * C));
    if (s) lp_tf_gather(s->x_mid, f->x, ix->sel, S, C);
    LP_TRY(norm_fwd(m, f->xn, f->mean, f->rstd, f->x, L->ln2_w, L->ln2_b, N));
    if (s) {
        if (s->mean2) gather_scalar(s->mean2, f->mean, ix->sel, S);
        gather_scalar(s->rstd2, f->rstd, ix->sel, S);
    }
    if (c->arch == LP_ARCH_GPT2) {
        LP_TRY(lp_nn_linear_forward_ids(L->fc, f->h1, f->xn, f->row_ids, N));
        if (s) lp_tf_gather(s->h1, f->h1, ix->sel, S, I);
        LP_TRY(lp_gelu_tanh_forward(f->h1, f->h1, N * I));
        LP_TRY(lp_nn_linear_forward_ids(L->proj, f->y, f->h1, f->row_ids, N));
    } else {
        LP_TRY(lp_nn_linear_forward_ids(L->gate, f->h1, f->xn, f->row_ids, N));
        LP_TRY(lp_nn_linear_forward_ids(L->up, f->h2, f->xn, f->row_ids, N));
        if (s) {
            lp_tf_gather(s->h1, f->h1, ix->sel, S, I);
            lp_tf_gather(s->h2, f->h2, ix->sel, S, I);
        }
        LP_TRY(lp_swiglu_forward(f->h1, f->h1, f->h2, N * I));
        LP_TRY(lp_nn_linear_forward_ids(L->down, f->y, f->h1, f->row_ids, N));
    }
    LP_TRY(lp_residual_forward(f->x, f->x, f->y, N * C));
    return LP_OK;
}

/* Final norm, LM head and next-token loss on the selected rows, in row chunks;
 * with g the head and final-norm gradients too (d_top). */
static lp_status lm_head(lp_transformer *m, const lp_transformer_batch *b, const lp_transformer_forward_opts *o,
                         lp_tf_fwd *f, const lp_tf_index *ix, int g, double *loss_sum)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t B = b->B, T = b->T, C = c->hidden_size, V = c->vocab_size, R = ix->off[B];
    lp_tf_gather(f->xf, f->x, ix->sel, R, C);
    LP_TRY(norm_fwd(m, f->xnf, f->hmean, f->hrstd, f->xf, m->lnf_w, m->lnf_b, R));
    int64_t count = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t n = ix->sel[r], t = ix->sel_pos[r];
        f->tgt[r] = (b->labels && t + 1 < T) ? b->labels[n + 1] : LP_IGNORE_INDEX;
        if (f->tgt[r] != LP_IGNORE_INDEX) {
            if (f->tgt[r] < 0 || f->tgt[r] >= V)
                return lp_error(LP_ERR_INVALID_ARG, "transformer forward: labels[%lld] = %d outside [0, %lld)",
                                (long long)(n + 1), f->tgt[r], (long long)V);
            count++;
        }
    }
    m->n_counted = count;
    float scale = (o && o->grad_scale != 0.0f) ? o->grad_scale : 1.0f;
    int do_grad = g && b->labels && count > 0;
    if (g) memset(f->dxnf, 0, (size_t)(R * C) * sizeof(float));
    int64_t rc = lp_tf_head_chunk(c, R);
    for (int64_t r0 = 0; r0 < R; r0 += rc) {
        int64_t n = R - r0 < rc ? R - r0 : rc;
        LP_TRY(lp_nn_linear_forward_ids(m->head, f->logits, f->xnf + r0 * C, ix->sel + r0, n));
        if (o && o->logits) memcpy(o->logits + r0 * V, f->logits, (size_t)(n * V) * sizeof(float));
        if (!b->labels) continue;
        float lc;
        int64_t cc;
        LP_TRY(lp_crossentropy_forward(&lc, &cc, f->lse, f->logits, f->tgt + r0, n, V, LP_IGNORE_INDEX));
        *loss_sum += (double)lc * (double)cc;
        if (!do_grad || cc == 0) continue;
        LP_TRY(lp_crossentropy_backward(f->logits, f->logits, f->lse, f->tgt + r0, count, scale, n, V, LP_IGNORE_INDEX));
        LP_TRY(lp_nn_linear_backward_ids(m->head, f->dxnf + r0 * C, f->logits, f->xnf + r0 * C, ix->sel + r0, n));
    }
    if (g) {
        memset(m->top.d_top, 0, (size_t)(R * C) * sizeof(float));
        if (do_grad)
            LP_TRY(lp_tf_norm_bwd(m, m->top.d_top, f->dxnf, f->xf, f->hmean, f->hrstd, m->lnf_w, m->lnf_b, R));
    }
    return LP_OK;
}

/* BERT: pooler (tanh) and classifier on [CLS]; with g their gradients and d_top at [CLS] rows. */
static lp_status cls_head(lp_transformer *m, const lp_transformer_batch *b, const lp_transformer_forward_opts *o,
                          lp_tf_fwd *f, const lp_tf_index *ix, int g, double *loss_sum)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t B = b->B, T = b->T, C = c->hidden_size, NL = c->num_labels;
    for (int64_t i = 0; i < B; i++) {
        memcpy(f->xf + i * C, f->x + i * T * C, (size_t)C * sizeof(float));
        f->cls_ids[i] = i * T;
    }
    LP_TRY(lp_nn_linear_forward_ids(m->pooler, f->xnf, f->xf, f->cls_ids, B));
    for (int64_t k = 0; k < B * C; k++) f->xnf[k] = tanhf(f->xnf[k]);
    LP_TRY(lp_nn_linear_forward_ids(m->head, f->logits, f->xnf, f->cls_ids, B));
    if (o && o->logits) memcpy(o->logits, f->logits, (size_t)(B * NL) * sizeof(float));
    m->n_counted = 0;
    if (g) memset(m->top.d_top, 0, (size_t)(ix->off[B] * C) * sizeof(float));
    if (!b->labels) return LP_OK;
    float lc;
    int64_t cc;
    LP_TRY(lp_crossentropy_forward(&lc, &cc, NULL, f->logits, b->labels, B, NL, LP_IGNORE_INDEX));
    *loss_sum = (double)lc * (double)cc;
    m->n_counted = cc;
    if (!g || cc == 0) return LP_OK;
    float scale = (o && o->grad_scale != 0.0f) ? o->grad_scale : 1.0f;
    LP_TRY(lp_crossentropy_backward(f->logits, f->logits, NULL, b->labels, cc, scale, B, NL, LP_IGNORE_INDEX));
    memset(f->dxnf, 0, (size_t)(B * C) * sizeof(float));
    LP_TRY(lp_nn_linear_backward_ids(m->head, f->dxnf, f->logits, f->xnf, f->cls_ids, B));
    for (int64_t k = 0; k < B * C; k++) f->dxnf[k] *= 1.0f - f->xnf[k] * f->xnf[k];
    /* d pooler input -> d [CLS] rows of the last layer's output */
    float *dcls = f->y; /* (B,C) free at this point */
    memset(dcls, 0, (size_t)(B * C) * sizeof(float));
    LP_TRY(lp_nn_linear_backward_ids(m->pooler, dcls, f->dxnf, f->xf, f->cls_ids, B));
    for (int64_t i = 0; i < B; i++) {
        int64_t r = ix->off[i]; /* [CLS] is the first selected row of each sequence */
        memcpy(m->top.d_top + r * C, dcls + i * C, (size_t)C * sizeof(float));
    }
    return LP_OK;
}

/* Decoder classifier (HF *ForSequenceClassification): final norm and score on
 * each sequence's last real token; with g their gradients and d_top at those rows. */
static lp_status score_head(lp_transformer *m, const lp_transformer_batch *b, const lp_transformer_forward_opts *o,
                            lp_tf_fwd *f, const lp_tf_index *ix, int g, double *loss_sum)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t B = b->B, T = b->T, C = c->hidden_size, NL = c->num_labels;
    int64_t R = ix->off[B];
    for (int64_t i = 0; i < B; i++) {
        int64_t t = last_real(b, i);
        memcpy(f->xf + i * C, f->x + (i * T + t) * C, (size_t)C * sizeof(float));
    }
    LP_TRY(norm_fwd(m, f->xnf, f->hmean, f->hrstd, f->xf, m->lnf_w, m->lnf_b, B));
    LP_TRY(lp_nn_linear_forward(m->head, f->logits, f->xnf, B));
    if (o && o->logits) memcpy(o->logits, f->logits, (size_t)(B * NL) * sizeof(float));
    m->n_counted = 0;
    if (g) memset(m->top.d_top, 0, (size_t)(R * C) * sizeof(float));
    if (!b->labels) return LP_OK;
    float lc;
    int64_t cc;
    LP_TRY(lp_crossentropy_forward(&lc, &cc, NULL, f->logits, b->labels, B, NL, LP_IGNORE_INDEX));
    *loss_sum = (double)lc * (double)cc;
    m->n_counted = cc;
    if (!g || cc == 0) return LP_OK;
    float scale = (o && o->grad_scale != 0.0f) ? o->grad_scale : 1.0f;
    LP_TRY(lp_crossentropy_backward(f->logits, f->logits, NULL, b->labels, cc, scale, B, NL, LP_IGNORE_INDEX));
    memset(f->dxnf, 0, (size_t)(B * C) * sizeof(float));
    LP_TRY(lp_nn_linear_backward(m->head, f->dxnf, f->logits, f->xnf, B));
    float *dxf = f->y; /* (B,C) free at this point */
    memset(dxf, 0, (size_t)(B * C) * sizeof(float));
    LP_TRY(lp_tf_norm_bwd(m, dxf, f->dxnf, f->xf, f->hmean, f->hrstd, m->lnf_w, m->lnf_b, B));
    for (int64_t i = 0; i < B; i++) { /* the last real token is a selected row (fill_index forces it) */
        int64_t t = last_real(b, i), r = ix->off[i];
        while (r < ix->off[i + 1] && ix->sel_pos[r] != t) r++;
        if (r == ix->off[i + 1]) return lp_error(LP_ERR_INTERNAL, "score head: sequence %lld: last token not selected", (long long)i);
        memcpy(m->top.d_top + r * C, dxf + i * C, (size_t)C * sizeof(float));
    }
    return LP_OK;
}

lp_status lp_transformer_forward(lp_transformer *m, const lp_transformer_batch *b, const lp_transformer_forward_opts *o,
                                 float *loss)
{
    if (!m) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_forward: model is NULL");
    LP_TRY(check_batch(m, b));
    const lp_transformer_config *c = &m->cfg;
    int g = o && o->need_grad;
    lp_tf_free_saved(m);
    int64_t B = b->B, T = b->T, S = count_selected(m, b);
    if (S == 0) return lp_error(LP_ERR_INVALID_ARG, "transformer forward: no row selected");
    if (!m->saved) {
        m->saved = calloc((size_t)c->n_layers, sizeof *m->saved);
        if (!m->saved) return lp_error(LP_ERR_NOMEM, "transformer forward");
    }
    lp_tf_index ix;
    if (g) {
        size_t ab = lp_tf_arena_bytes(c, B, T, S);
        m->arena = lp_alloc(LP_MEM_ACTIVATIONS, ab);
        if (!m->arena) return lp_error_context(LP_ERR_NOMEM, "saved activations (%zu bytes)", ab);
        lp_tf_carver cv = {m->arena, 0};
        lp_tf_carve_arena(&cv, c, B, T, S, &ix, m->saved, &m->top);
    }
    lp_status st = lp_tf_scratch_reserve(m, lp_tf_scratch_bytes(c, B, T, S, g));
    if (st != LP_OK) {
        lp_tf_free_saved(m);
        return st;
    }
    lp_tf_carver cs = {m->scratch, 0};
    lp_tf_fwd f;
    lp_tf_carve_fwd(&cs, c, B, T, S, !g, &f);
    if (!g) ix = f.ix;
    fill_index(m, b, &ix);
    for (int64_t i = 0; i < B; i++)
        for (int64_t t = 0; t < T; t++) {
            f.pos[i * T + t] = (int32_t)t;
            f.row_ids[i * T + t] = i * T + t;
        }
    double loss_sum = 0.0;
    st = embed(m, b, &f, &ix, g);
    for (int64_t l = 0; st == LP_OK && l < c->n_layers; l++) st = layer_forward(m, l, B, T, &f, &ix, g);
    if (st == LP_OK)
        st = c->arch == LP_ARCH_BERT ? cls_head(m, b, o, &f, &ix, g, &loss_sum)
           : lp_tf_is_dec_cls(c)    ? score_head(m, b, o, &f, &ix, g, &loss_sum)
                                    : lm_head(m, b, o, &f, &ix, g, &loss_sum);
    if (st != LP_OK) {
        lp_tf_free_saved(m);
        return st;
    }
    m->B = B;
    m->T = T;
    m->S = S;
    m->ix = ix;
    m->n_head_rows = lp_tf_is_cls(c) ? B : S;
    m->have_saved = g;
    if (loss) *loss = m->n_counted > 0 ? (float)(loss_sum / (double)m->n_counted) : 0.0f;
    return LP_OK;
}
