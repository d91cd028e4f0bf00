/* Internal to src/nn/transformer*.c: the model struct and shared helpers. */
#ifndef LEANPROP_TRANSFORMER_INTERNAL_H
#define LEANPROP_TRANSFORMER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/transformer.h"

typedef struct {
    /* GPT-2/Llama: pre-attention and pre-MLP norms. BERT: attention.output.LayerNorm
     * (after attention) and output.LayerNorm (after the MLP). */
    lp_param *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    lp_nn_linear *qkv;          /* GPT-2 fused c_attn (3C rows: q, k, v) */
    lp_nn_linear *q, *k, *v;    /* Llama, BERT */
    lp_nn_linear *o;
    lp_nn_linear *fc, *proj;    /* GPT-2 c_fc/c_proj, BERT intermediate/output dense */
    lp_nn_linear *gate, *up, *down;   /* Llama SwiGLU */
} lp_tf_layer;

/* Saved tensors of one layer (LP_MEM_ACTIVATIONS; S selected rows, N all rows). */
typedef struct {
    float *x_in;      /* (S,C) layer input (norm input for GPT-2/Llama, projection input for BERT) */
    float *mean1, *rstd1;   /* (S) first norm statistics (mean NULL for RMSNorm); BERT: of x_mid */
    float *q;         /* (S,QD) queries (after RoPE) */
    float *k, *v;     /* (N,KD) keys (after RoPE) and values of every row */
    float *lse;       /* (S,H) attention logsumexp */
    float *att;       /* (S,QD) attention output (o_proj input) */
    float *x_mid;     /* (S,C) GPT-2/Llama: residual after attention; BERT: pre-LayerNorm sum */
    float *mean2, *rstd2;   /* second norm (of x_mid; BERT: of x_out) */
    float *h1;        /* (S,I) MLP pre-activation (GPT-2/BERT fc out, Llama gate) */
    float *h2;        /* (S,I) Llama up projection */
    float *x_out;     /* (S,C) BERT: second pre-LayerNorm sum */
} lp_tf_saved;

/* Row bookkeeping of one forward: S selected rows of B sequences of T. */
typedef struct {
    int64_t *sel;       /* (S) flat row b*T+t of each selected row, ascending */
    int64_t *off;       /* (B+1) sequence b owns selected rows off[b] .. off[b+1] */
    int32_t *sel_pos;   /* (S) position t */
    int32_t *sel_ids;   /* (S) token id */
    int32_t *sel_tt;    /* (S) token type */
    int32_t *kmask;     /* (N) 1 = key is a real token */
} lp_tf_index;

/* Saved outside the layers. */
typedef struct {
    float *emb, *emb_mean, *emb_rstd;   /* BERT embedding sum (S,C) and LayerNorm statistics */
    float *d_top;                       /* (S,C) gradient at the last layer's output (fused head) */
} lp_tf_top;

/* Forward scratch (N = B*T rows, R head rows). */
typedef struct {
    lp_tf_index ix;     /* only without need_grad (else in the arena) */
    float *x, *xn, *qkv, *q, *k, *v, *att, *lse, *y, *h1, *h2, *mean, *rstd;
    int32_t *pos;
    int64_t *row_ids;   /* (N) b*T + t, handed to adapter hooks */
    int64_t *cls_ids;   /* (B) BERT [CLS] rows */
    float *xf, *xnf, *dxnf, *hmean, *hrstd, *logits;
    int32_t *tgt;
} lp_tf_fwd;

/* Backward scratch (S rows; T rows for one sequence's dK, dV). */
typedef struct {
    float *dx, *dxn, *xn, *act, *dh1, *dh2, *datt, *dq, *dks, *dvs, *dkp, *dqkv, *dk, *dv;
} lp_tf_bwd;

/* Bump allocator over a block; base NULL only counts bytes. */
typedef struct {
    char *base;
    size_t off;
} lp_tf_carver;

struct lp_transformer {
    lp_transformer_config cfg;
    lp_param *params;
    int n_params, cap_params;
    lp_nn_linear *linears;
    int n_linears, cap_linears;
    lp_tf_layer *layers;
    lp_param *wte, *wpe, *wtt, *emb_ln_w, *emb_ln_b, *lnf_w, *lnf_b;
    lp_nn_linear *head;     /* lm_head (weight may be wte) or BERT classifier */
    lp_nn_linear *pooler;   /* BERT */
    char *hf_config_text;   /* config.json as loaded (malloc'd), written back on save; NULL = generate */

    /* scratch (LP_MEM_SCRATCH), grown on demand, kept between calls */
    char *scratch;
    size_t scratch_bytes;

    /* state of the last need_grad forward */
    void *arena;            /* one LP_MEM_ACTIVATIONS block: index, saved layers, top */
    int have_saved;
    int64_t B, T, S;        /* S = selected rows */
    int64_t n_head_rows, n_counted;
    lp_tf_index ix;
    lp_tf_saved *saved;     /* (L) pointers into the arena */
    lp_tf_top top;
};

/* Classifier head (BERT, or a decoder with LP_TASK_SEQ_CLS): (B, num_labels) logits, (B) labels. */
static inline int lp_tf_is_cls(const lp_transformer_config *c) { return c->arch == LP_ARCH_BERT || c->task == LP_TASK_SEQ_CLS; }
/* Decoder classifier: score head on each sequence's last real token. */
static inline int lp_tf_is_dec_cls(const lp_transformer_config *c) { return c->arch != LP_ARCH_BERT && c->task == LP_TASK_SEQ_CLS; }

/* Parameter/linear registration (transformer_params.c). */
lp_param *lp_tf_add_param(lp_transformer *m, const char *name, int ndim, int64_t d0, int64_t d1, int transposed);

/* Layouts and helpers (transformer_forward.c). */
void *lp_tf_carve(lp_tf_carver *c, size_t bytes);
void lp_tf_carve_index(lp_tf_carver *cv, lp_tf_index *ix, int64_t B, int64_t T, int64_t S);
void lp_tf_carve_arena(lp_tf_carver *cv, const lp_transformer_config *c, int64_t B, int64_t T, int64_t S,
                       lp_tf_index *ix, lp_tf_saved *sv, lp_tf_top *top);
void lp_tf_carve_fwd(lp_tf_carver *cv, const lp_transformer_config *c, int64_t B, int64_t T, int64_t R, int with_index,
                     lp_tf_fwd *f);
void lp_tf_carve_bwd(lp_tf_carver *cv, const lp_transformer_config *c, int64_t T, int64_t S, lp_tf_bwd *b);
size_t lp_tf_arena_bytes(const lp_transformer_config *c, int64_t B, int64_t T, int64_t S);
size_t lp_tf_scratch_bytes(const lp_transformer_config *c, int64_t B, int64_t T, int64_t S, int need_grad);
lp_status lp_tf_scratch_reserve(lp_transformer *m, size_t bytes);
void lp_tf_free_saved(lp_transformer *m);
int64_t lp_tf_head_chunk(const lp_transformer_config *c, int64_t R);
void lp_tf_gather(float *dst, const float *src, const int64_t *idx, int64_t S, int64_t C);
lp_status lp_tf_norm_bwd(const lp_transformer *m, float *dx, const float *dy, const float *x, const float *mean,
                         const float *rstd, const lp_param *w, const lp_param *b, int64_t N);
lp_status lp_tf_norm_recompute(const lp_transformer *m, float *y, const float *x, const float *mean, const float *rstd,
                               const lp_param *w, const lp_param *b, int64_t N);

#endif
