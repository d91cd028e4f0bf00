/* Transformer backward over the selected rows only: selected queries against
 * every key, dK/dV kept at selected key rows (the other rows' K and V are
 * constants), parameter gradients summed over selected rows. */
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels.h"
#include "leanprop/kernels/activation.h"
#include "leanprop/kernels/attention.h"
#include "leanprop/kernels/embedding.h"
#include "leanprop/kernels/rope.h"
#include "nn/transformer_internal.h"

static void zero(float *p, int64_t n) { memset(p, 0, (size_t)n * sizeof(float)); }

/* Attention backward per sequence: dq (S,QD) +=, dk_sel, dv_sel (S,KD) = the
 * key/value gradients at the selected rows. datt is the gradient at the
 * attention output of the selected rows. */
static lp_status attention_bwd(lp_transformer *m, const lp_tf_saved *s, lp_tf_bwd *bw, const float *datt, float *dq,
                               float *dk_sel, float *dv_sel)
{
    const lp_transformer_config *c = &m->cfg;
    const lp_tf_index *ix = &m->ix;
    int64_t T = m->T, H = c->n_heads, QD = H * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    for (int64_t i = 0; i < m->B; i++) {
        int64_t o = ix->off[i], cnt = ix->off[i + 1] - o;
        if (cnt == 0) continue;
        zero(bw->dk, T * KD);
        zero(bw->dv, T * KD);
        lp_attention_params p = {.B = 1, .Tq = cnt, .Tk = T, .H = H, .Hkv = c->n_kv_heads, .D = c->head_dim,
                                 .causal = c->arch != LP_ARCH_BERT, .key_mask = ix->kmask + i * T,
                                 .q_pos = ix->sel_pos + o};
        LP_TRY(lp_attention_backward(dq + o * QD, bw->dk, bw->dv, datt + o * QD, s->q + o * QD, s->k + i * T * KD,
                                     s->v + i * T * KD, s->att + o * QD, s->lse + H * o, &p));
        for (int64_t r = 0; r < cnt; r++) {
            int64_t t = ix->sel_pos[o + r];
            memcpy(dk_sel + (o + r) * KD, bw->dk + t * KD, (size_t)KD * sizeof(float));
            memcpy(dv_sel + (o + r) * KD, bw->dv + t * KD, (size_t)KD * sizeof(float));
        }
    }
    return LP_OK;
}

/* Pre-norm decoder block (GPT-2, Llama). bw->dx: gradient at the block output
 * on entry, at the block input on return. */
static lp_status decoder_layer_bwd(lp_transformer *m, int64_t l, lp_tf_bwd *bw)
{
    const lp_transformer_config *c = &m->cfg;
    const lp_tf_layer *L = &m->layers[l];
    const lp_tf_saved *s = &m->saved[l];
    int64_t S = m->S, C = c->hidden_size, I = c->intermediate_size, H = c->n_heads, D = c->head_dim;
    int64_t QD = H * D, KD = c->n_kv_heads * D;
    float theta = (float)c->rope_theta;

    /* MLP */
    LP_TRY(lp_tf_norm_recompute(m, bw->xn, s->x_mid, s->mean2, s->rstd2, L->ln2_w, L->ln2_b, S));
    zero(bw->dxn, S * C);
    if (c->arch == LP_ARCH_GPT2) {
        LP_TRY(lp_gelu_tanh_forward(bw->act, s->h1, S * I));
        zero(bw->dh1, S * I);
        LP_TRY(lp_nn_linear_backward_ids(L->proj, bw->dh1, bw->dx, bw->act, m->ix.sel, S));
        zero(bw->dh2, S * I);
        LP_TRY(lp_gelu_tanh_backward(bw->dh2, bw->dh1, s->h1, S * I));
        LP_TRY(lp_nn_linear_backward_ids(L->fc, bw->dxn, bw->dh2, bw->xn, m->ix.sel, S));
    } else {
        LP_TRY(lp_swiglu_forward(bw->act, s->h1, s->h2, S * I));
        zero(bw->dh1, S * I);
        LP_TRY(lp_nn_linear_backward_ids(L->down, bw->dh1, bw->dx, bw->act, m->ix.sel, S));
        float *dgate = bw->act, *dup = bw->dh2;
        zero(dgate, S * I);
        zero(dup, S * I);
        LP_TRY(lp_swiglu_backward(dgate, dup, bw->dh1, s->h1, s->h2, S * I));
        LP_TRY(lp_nn_linear_backward_ids(L->gate, bw->dxn, dgate, bw->xn, m->ix.sel, S));
        LP_TRY(lp_nn_linear_backward_ids(L->up, bw->dxn, dup, bw->xn, m->ix.sel, S));
    }
    LP_TRY(lp_tf_norm_bwd(m, bw->dx, bw->dxn, s->x_mid, s->mean2, s->rstd2, L->ln2_w, L->ln2_b, S));

    /* attention */
    zero(bw->datt, S * QD);
    LP_TRY(lp_nn_linear_backward_ids(L->o, bw->datt, bw->dx, s->att, m->ix.sel, S));
    zero(bw->dq, S * QD);
    LP_TRY(attention_bwd(m, s, bw, bw->datt, bw->dq, bw->dks, bw->dvs));
    LP_TRY(lp_tf_norm_recompute(m, bw->xn, s->x_in, s->mean1, s->rstd1, L->ln1_w, L->ln1_b, S));
    zero(bw->dxn, S * C);
    if (c->arch == LP_ARCH_GPT2) {
        int64_t W = QD + 2 * KD;
        for (int64_t r = 0; r < S; r++) {
            memcpy(bw->dqkv + r * W, bw->dq + r * QD, (size_t)QD * sizeof(float));
            memcpy(bw->dqkv + r * W + QD, bw->dks + r * KD, (size_t)KD * sizeof(float));
            memcpy(bw->dqkv + r * W + QD + KD, bw->dvs + r * KD, (size_t)KD * sizeof(float));
        }
        LP_TRY(lp_nn_linear_backward_ids(L->qkv, bw->dxn, bw->dqkv, bw->xn, m->ix.sel, S));
    } else {
        float *dq_pre = bw->datt, *dk_pre = bw->dkp;
        zero(dq_pre, S * QD);
        zero(dk_pre, S * KD);
        LP_TRY(lp_rope_backward(dq_pre, bw->dq, m->ix.sel_pos, 1, S, H, D, theta));
        LP_TRY(lp_rope_backward(dk_pre, bw->dks, m->ix.sel_pos, 1, S, c->n_kv_heads, D, theta));
        LP_TRY(lp_nn_linear_backward_ids(L->q, bw->dxn, dq_pre, bw->xn, m->ix.sel, S));
        LP_TRY(lp_nn_linear_backward_ids(L->k, bw->dxn, dk_pre, bw->xn, m->ix.sel, S));
        LP_TRY(lp_nn_linear_backward_ids(L->v, bw->dxn, bw->dvs, bw->xn, m->ix.sel, S));
    }
    LP_TRY(lp_tf_norm_bwd(m, bw->dx, bw->dxn, s->x_in, s->mean1, s->rstd1, L->ln1_w, L->ln1_b, S));
    return LP_OK;
}

/* Post-norm encoder block (BERT). bw->dx: gradient at the block output (after
 * output.LayerNorm) on entry, at the block input on return. */
static lp_status encoder_layer_bwd(lp_transformer *m, int64_t l, lp_tf_bwd *bw)
{
    const lp_transformer_config *c = &m->cfg;
    const lp_tf_layer *L = &m->layers[l];
    const lp_tf_saved *s = &m->saved[l];
    int64_t S = m->S, C = c->hidden_size, I = c->intermediate_size, QD = c->n_heads * c->head_dim;

    /* output.LayerNorm: ds2 -> dxn */
    zero(bw->dxn, S * C);
    LP_TRY(lp_tf_norm_bwd(m, bw->dxn, bw->dx, s->x_out, s->mean2, s->rstd2, L->ln2_w, L->ln2_b, S));
    /* s2 = h + proj(gelu(fc(h))) */
    LP_TRY(lp_tf_norm_recompute(m, bw->xn, s->x_mid, s->mean1, s->rstd1, L->ln1_w, L->ln1_b, S));
    LP_TRY(lp_gelu_erf_forward(bw->act, s->h1, S * I));
    zero(bw->dh1, S * I);
    LP_TRY(lp_nn_linear_backward_ids(L->proj, bw->dh1, bw->dxn, bw->act, m->ix.sel, S));
    zero(bw->dh2, S * I);
    LP_TRY(lp_gelu_erf_backward(bw->dh2, bw->dh1, s->h1, S * I));
    memcpy(bw->dx, bw->dxn, (size_t)(S * C) * sizeof(float));
    LP_TRY(lp_nn_linear_backward_ids(L->fc, bw->dx, bw->dh2, bw->xn, m->ix.sel, S));
    /* attention.output.LayerNorm: dh -> ds1 (dxn) */
    zero(bw->dxn, S * C);
    LP_TRY(lp_tf_norm_bwd(m, bw->dxn, bw->dx, s->x_mid, s->mean1, s->rstd1, L->ln1_w, L->ln1_b, S));
    /* s1 = x + o(att) */
    memcpy(bw->dx, bw->dxn, (size_t)(S * C) * sizeof(float));
    zero(bw->datt, S * QD);
    LP_TRY(lp_nn_linear_backward_ids(L->o, bw->datt, bw->dxn, s->att, m->ix.sel, S));
    zero(bw->dq, S * QD);
    LP_TRY(attention_bwd(m, s, bw, bw->datt, bw->dq, bw->dks, bw->dvs));
    LP_TRY(lp_nn_linear_backward_ids(L->q, bw->dx, bw->dq, s->x_in, m->ix.sel, S));
    LP_TRY(lp_nn_linear_backward_ids(L->k, bw->dx, bw->dks, s->x_in, m->ix.sel, S));
    LP_TRY(lp_nn_linear_backward_ids(L->v, bw->dx, bw->dvs, s->x_in, m->ix.sel, S));
    return LP_OK;
}

static lp_status embedding_bwd(lp_transformer *m, lp_tf_bwd *bw)
{
    const lp_transformer_config *c = &m->cfg;
    const lp_tf_index *ix = &m->ix;
    int64_t S = m->S, C = c->hidden_size;
    const float *d = bw->dx;
    if (c->arch == LP_ARCH_BERT) {
        zero(bw->dxn, S * C);
        LP_TRY(lp_tf_norm_bwd(m, bw->dxn, bw->dx, m->top.emb, m->top.emb_mean, m->top.emb_rstd, m->emb_ln_w,
                              m->emb_ln_b, S));
        d = bw->dxn;
        if (m->wtt->grad) LP_TRY(lp_embedding_backward(m->wtt->grad, d, ix->sel_tt, S, c->type_vocab_size, C));
    }
    if (m->wte->grad) LP_TRY(lp_embedding_backward(m->wte->grad, d, ix->sel_ids, S, c->vocab_size, C));
    if (m->wpe && m->wpe->grad) LP_TRY(lp_embedding_backward(m->wpe->grad, d, ix->sel_pos, S, c->max_positions, C));
    return LP_OK;
}

lp_status lp_transformer_backward(lp_transformer *m)
{
    if (!m) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_backward: model is NULL");
    if (!m->have_saved)
        return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_backward: no saved forward (call forward with need_grad first)");
    const lp_transformer_config *c = &m->cfg;
    lp_tf_carver cv = {m->scratch, 0};
    lp_tf_bwd bw;
    lp_tf_carve_bwd(&cv, c, m->T, m->S, &bw);
    lp_status st = cv.off <= m->scratch_bytes ? LP_OK : lp_error(LP_ERR_INTERNAL, "transformer backward: scratch too small");
    if (st == LP_OK) memcpy(bw.dx, m->top.d_top, (size_t)(m->S * c->hidden_size) * sizeof(float));
    for (int64_t l = c->n_layers - 1; st == LP_OK && l >= 0; l--)
        st = c->arch == LP_ARCH_BERT ? encoder_layer_bwd(m, l, &bw) : decoder_layer_bwd(m, l, &bw);
    if (st == LP_OK) st = embedding_bwd(m, &bw);
    lp_tf_free_saved(m);
    return st;
}
