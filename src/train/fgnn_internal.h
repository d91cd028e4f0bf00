/* Internals of the forward-learning GNN trainers (src/train/fgnn_*.c). */
#ifndef LEANPROP_TRAIN_FGNN_INTERNAL_H
#define LEANPROP_TRAIN_FGNN_INTERNAL_H

#include <stdint.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/kernels/optim.h"

/* ---- node layout (fgnn_layout.c) ----
 * Node methods renumber the nodes so that every set a method touches is a
 * contiguous block of rows: [train | virtual nodes | val | test | rest]. A
 * layer's loss then runs over rows [0, n_train + n_vn) and validation over
 * [n_train, vn + val): one GEMM each, no gathers. */
typedef struct {
    int64_t n_real, C, n_vn, n;        /* n = n_real + n_vn */
    int64_t n_train, n_val, n_test, n_rest;
    int64_t off_vn, off_val, off_test, off_rest;
    int64_t *order;                    /* (n) new id -> old id (virtual node c: n_real + c) */
    int64_t *rank;                     /* (n) old id -> new id */
    int32_t *label;                    /* (n) by new id; -1 unknown; virtual node c: c */
} fgnn_layout;

/* with_vn: C virtual nodes after the train block. Errors on a data set without labels. */
lp_status fgnn_layout_node(fgnn_layout *L, const lp_graph_dataset *ds, const lp_node_split *sp, int with_vn,
                           const char *method);
void fgnn_layout_free(fgnn_layout *L);

/* The graph of the layout: ds->graph renumbered, plus virtual-node edges
 * new-id i <-> VN link[i] for every real row with link[i] >= 0 (link by new id, (n)). */
lp_status fgnn_layout_graph(lp_graph **out, const fgnn_layout *L, const lp_graph *g, const int32_t *link);

/* ---- layer inputs ---- */
#define FGNN_MAX_PARTS 2

/* One column block of a layer input. dense and sparse both NULL: a zero block. */
typedef struct {
    const float *dense;        /* (n, cols) */
    const lp_csr *sparse;      /* (n, cols), transpose built */
    int64_t cols;
    int fixed;                 /* unchanged while the layer trains: may be cached */
} fgnn_part;

/* Row-normalised features in layout order (virtual-node rows: vn_feats (C, F)),
 * each row divided by (sqrt(|x_i|^2 + extra_sq_i) + 1e-8) (extra_sq may be NULL).
 * Sparse features stay sparse (transpose built); *sp or *dn receives the result
 * (LP_MEM_ACTIVATIONS). inv_norm (n) (may be NULL) receives each row's factor. */
lp_status fgnn_features(lp_csr **sp, float **dn, const lp_graph_dataset *ds, const fgnn_layout *L, const float *vn_feats,
                        const float *extra_sq, float *inv_norm);
/* The same for identity-ordered real rows (link prediction): layout NULL. */
lp_csr *fgnn_csr_new(int64_t rows, int64_t cols, int64_t nnz);   /* arrays in LP_MEM_ACTIVATIONS */
lp_status fgnn_csr_finish(lp_csr *m);                            /* transpose, retagged to LP_MEM_ACTIVATIONS */
/* N(0,1) virtual-node features (C, F) from the run seed (LP_MEM_ACTIVATIONS). */
float *fgnn_vn_features(int64_t C, int64_t F, uint64_t seed);

/* ---- convolution over fixed or changing inputs (fgnn_conv.c) ---- */
typedef struct {
    lp_gnn_layer *layer;
    lp_gnn_kind kind;
    const lp_graph *g;
    int64_t n, in, D;
    int np;
    fgnn_part p[FGNN_MAX_PARTS];
    int64_t off[FGNN_MAX_PARTS];       /* first weight row of each part */
    float *agg[FGNN_MAX_PARTS];        /* cached aggregation (n, cols): GCN Ahat P, SAGE mean P */
    int n_direct;                      /* parts with data and no cache */
    float *self;                       /* GCN: (n) self-loop weights dinv^2 */
    float *cat;                        /* GAT with several parts: dense concatenation (n, in) */
    lp_csr *cat_sparse;                /* GAT with fixed parts, one sparse: their concatenation */
    float *zfull;                      /* GAT: output of all rows (n, D) */
    lp_gnn_input gin;                  /* GAT input */
    int mute[FGNN_MAX_PARTS];          /* forward treats the part as zeros (top-down bottom-up pass) */
    int cat_dirty[FGNN_MAX_PARTS];
    float *W, *dW, *b, *db, *Wr, *dWr; /* GCN: lin.weight, bias; SAGE: lin_l.weight, lin_l.bias, lin_r.weight */
} fgnn_conv;

enum { FGNN_CONV_CACHE = 1, FGNN_CONV_MUTABLE = 2 };
/* Parts must cover in_dim columns in order. FGNN_CONV_CACHE: aggregate fixed dense
 * parts once; FGNN_CONV_MUTABLE: parts may be muted (GAT keeps a dense concatenation). */
lp_status fgnn_conv_init(fgnn_conv *c, lp_gnn_layer *layer, const lp_graph *g, const fgnn_part *parts, int np,
                         int flags);
/* Treat part k as zeros in the forward (on) or not; a muted conv is for inference only. */
void fgnn_conv_mute(fgnn_conv *c, int k, int on);
/* z (r1 - r0, D) = pre-activation of rows [r0, r1). save: a backward follows (GAT). */
lp_status fgnn_conv_forward(fgnn_conv *c, float *z, int64_t r0, int64_t r1, int save);
/* dz (r1 - r0, D) -> parameter gradients +=. The last forward must have covered these rows with save. */
lp_status fgnn_conv_backward(fgnn_conv *c, const float *dz, int64_t r0, int64_t r1);
/* 1 when the conv still reads part k's data (SAGE root term, direct parts, GAT). */
int fgnn_conv_reads_part(const fgnn_conv *c, int k);
void fgnn_conv_release(fgnn_conv *c);
/* Free the thread's shared conv workspace (3 x n x D floats, LP_MEM_SCRATCH). */
void fgnn_conv_workspace_release(void);

/* ---- streams: an input travelling up the stack (fgnn_common.c) ---- */
typedef struct {
    const lp_graph *g;
    int np;
    fgnn_part p[FGNN_MAX_PARTS];
    float *own_dense[FGNN_MAX_PARTS];
    lp_csr *own_sparse[FGNN_MAX_PARTS];
    fgnn_conv conv;
    int has_conv;
} fgnn_stream;

void fgnn_stream_init(fgnn_stream *s, const lp_graph *g);
/* Add a part; own = 1 hands the buffer to the stream. */
void fgnn_stream_add_dense(fgnn_stream *s, float *x, int64_t cols, int own);
void fgnn_stream_add_sparse(fgnn_stream *s, lp_csr *x, int own);
lp_status fgnn_stream_bind(fgnn_stream *s, lp_gnn_layer *layer, int cache);
/* Drop inputs the conv no longer reads (GCN caches). */
void fgnn_stream_drop_unread(fgnn_stream *s);
/* y (n, D) = ReLU(conv) of every row (LP_MEM_ACTIVATIONS, caller frees or hands to set_input). */
lp_status fgnn_stream_output(fgnn_stream *s, float **y);
/* Replace the input by y (n, D), row-normalised in place; releases the conv and old parts. */
void fgnn_stream_set_input(fgnn_stream *s, float *y, int64_t D);
void fgnn_stream_free(fgnn_stream *s);

/* ReLU in place over rows; returns nothing. */
void fgnn_relu(float *z, int64_t n);
/* dz *= (y > 0) */
void fgnn_relu_mask(float *dz, const float *y, int64_t n);
/* ReLU masks kept for backward, one byte per element (LP_MEM_ACTIVATIONS): a
 * quarter of the output it replaces, and the apply loop vectorises. */
uint8_t *fgnn_mask_new(int64_t n);
void fgnn_mask_set(uint8_t *mask, const float *y, int64_t n);        /* mask[i] = y[i] > 0 */
void fgnn_mask_apply(float *dz, const uint8_t *mask, int64_t n);     /* dz[i] = 0 where mask[i] == 0 */
float *fgnn_act(int64_t n);          /* zeroed LP_MEM_ACTIVATIONS floats */
float *fgnn_scratch(int64_t n);      /* zeroed LP_MEM_SCRATCH floats */

/* ---- per-layer optimizer, early stopping, bookkeeping (fgnn_common.c) ---- */
#define FGNN_MAX_LAYER_PARAMS 8
typedef struct {
    lp_gnn_layer *layer;
    lp_adam *adam;
    float *best;                 /* best-weight copy (LP_MEM_WEIGHTS) */
} fgnn_opt;

lp_status fgnn_opt_init(fgnn_opt *o, lp_gnn_layer *layer, float lr, float weight_decay);
/* clip > 0: clip the layer's gradient norm first. Then one Adam step. */
lp_status fgnn_opt_step(fgnn_opt *o, float clip);
void fgnn_opt_save(fgnn_opt *o);
void fgnn_opt_restore(fgnn_opt *o);
void fgnn_opt_free(fgnn_opt *o);

typedef struct {
    double best;
    int best_epoch, bad, stop, patience;
} fgnn_stopper;
void fgnn_stopper_init(fgnn_stopper *s, int patience);
int fgnn_stopper_step(fgnn_stopper *s, int epoch, double val);     /* 1 when improved */

/* One run: configuration, layers, timing, memory segments, report. */
typedef struct lp_fgnn_model {
    lp_gnn_kind kind;
    int L;
    lp_gnn_layer *layers[LP_FGNN_MAX_LAYERS];
} fgnn_model;

typedef struct {
    lp_fgnn_method method;
    const lp_gnn_run_args *a;
    const lp_gnn_train_config *cfg;
    lp_fgnn_opts o;
    lp_gnn_result *out;
    lp_fgnn_report *rep;
    fgnn_model *model;
    double t0, seg_t0, train_s;
    int epochs_total;             /* cumulative epoch counter (callbacks) */
    lp_mem_stats seg;             /* peaks of the finished segments (max) */
} fgnn_run;

/* Checks (depth, sizes, task), memory window, model shell. */
lp_status fgnn_run_begin(fgnn_run *r, lp_fgnn_method m, const lp_gnn_run_args *a, const lp_fgnn_opts *o,
                         lp_gnn_result *out, lp_fgnn_report *rep);
/* Layer l of in_dim -> out_dim, initial weights from (seed, l). */
lp_status fgnn_run_layer(fgnn_run *r, int l, int64_t in_dim, int64_t out_dim);
float fgnn_run_loss_weight(const fgnn_run *r, int l);
/* Start / end a memory segment (one per layer for layer-wise methods). */
void fgnn_run_segment_begin(fgnn_run *r);
void fgnn_run_segment_end(fgnn_run *r, int depth);
void fgnn_run_epoch(fgnn_run *r, int epoch, double loss, double train, double val, int improved);
/* Layer l finished after layer_epochs epochs (best at best_epoch, 0 = none): its
 * train/val/test metrics become the run's result (best epoch counted over all
 * layers) and, with a report, depth l + 1's row. */
void fgnn_run_record_depth(fgnn_run *r, int l, double train, double val, double test, int layer_epochs, int best_epoch);
/* opts.scores_out (if any): the rows of layout rows [r0, r0 + m) from acc (m, C). */
void fgnn_run_scores(fgnn_run *r, const fgnn_layout *L, const float *acc, int64_t r0, int64_t m);
/* Fills out (metrics set by the caller), the report, frees or hands out the model. */
void fgnn_run_end(fgnn_run *r, lp_fgnn_model **model);

/* One FF loss term (fgnn_loss.c): sign +1 positive softplus(theta - G), -1 negative
 * softplus(G - theta), G = sum_j y_j^2, mean over n rows times weight; dy OVERWRITTEN (may be NULL). */
double fgnn_ff_term(float *dy, const float *y, int64_t n, int64_t D, float theta, int sign, double weight);

/* ---- trainers ---- */
lp_status fgnn_train_sf(fgnn_run *r);
lp_status fgnn_train_ff(fgnn_run *r);            /* ff-la, ff-vn */
lp_status fgnn_train_top2loss(fgnn_run *r);
lp_status fgnn_train_top2input(fgnn_run *r);
lp_status fgnn_train_link(fgnn_run *r);          /* fl-ce, fl-ff */
lp_status fgnn_train_link_topdown(fgnn_run *r);

/* Link helpers (fgnn_link.c) shared with the top-down trainer. */
typedef struct {
    int64_t P;                    /* pairs (pos then neg) */
    int64_t *pairs;               /* (P, 2) */
    uint8_t *y;                   /* (P) */
} fgnn_pairs;
lp_status fgnn_pairs_make(fgnn_pairs *p, const int64_t *pos, const int64_t *neg, int64_t n);
void fgnn_pairs_free(fgnn_pairs *p);
/* Checks the split (train edges left?), builds the train / train+val graphs and the pair sets. */
lp_status fgnn_link_setup(fgnn_run *r, lp_graph **gtr, lp_graph **gall, fgnn_pairs *tr, fgnn_pairs *va, fgnn_pairs *te);
/* s (P) = per-pair logit of a layer's output z (N, D): <z_u, z_v> (ff = 0) or sum (z_u z_v)^2 - theta (ff = 1). */
lp_status fgnn_link_logits(float *s, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff, float theta);
/* BCE (ff = 0, mean over all pairs) or FF (softplus, mean per set, summed) loss; dz (N, D) OVERWRITTEN, times w. */
lp_status fgnn_link_loss(double *loss, float *dz, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff,
                         float theta, float w);
/* acc (P) += sigmoid(logit) */
lp_status fgnn_link_accumulate(float *acc, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff, float theta);

/* The run seed mixed with a purpose tag. */
uint64_t fgnn_seed(uint64_t seed, uint64_t tag, uint64_t index);

/* ---- mid-run checkpoints of the layer-wise methods (fgnn_ckpt.c) ---- */
lp_status fgnn_ckpt_save(fgnn_run *r, int l, int layer_epoch, fgnn_opt *opt, const fgnn_stopper *stop, const int *epochs,
                         const int *best_epochs);
const lp_checkpoint *fgnn_ckpt_state(fgnn_run *r, int *layer, int *layer_epoch, int *epochs, int *best_epochs,
                                     lp_status *st);
lp_status fgnn_ckpt_load_layer(fgnn_run *r, const lp_checkpoint *ck, int l);
lp_status fgnn_ckpt_load_opt(fgnn_run *r, const lp_checkpoint *ck, fgnn_opt *opt, fgnn_stopper *stop);
/* Where layer l's epoch loop starts: a layer finished before the checkpoint is
 * marked stopped after its saved epochs (its saved weights are the best ones);
 * the layer in progress reloads its optimizer and stopper and goes on after the
 * checkpoint's epoch; otherwise epoch 1. Advances r->epochs_total to match. */
lp_status fgnn_ckpt_first_epoch(fgnn_run *r, const lp_checkpoint *ck, int finished, int resumed, int saved_epochs,
                                int saved_best, int ck_epoch, fgnn_opt *opt, fgnn_stopper *stop, int *epoch);

#endif
