/* leanprop/gnn.h: GNN layers (GCN, SAGE, GAT), a backprop stack, and the training methods.
 *
 * Layers compute what PyTorch Geometric computes (tests compare with PyG's own
 * numbers): GCNConv (symmetric normalisation with self loops, linear then
 * propagate, bias after), SAGEConv (mean aggregation, lin_l with bias on the
 * aggregate, lin_r without bias on the root), GATConv (multi-head, LeakyReLU,
 * self loops, heads concatenated or averaged). Graphs passed to GCN and GAT
 * must have no self loops: the layers add one per node implicitly.
 *
 * A layer is usable on its own, so forward-learning trainers can train one
 * layer at a time:
 *
 *   lp_gnn_layer *l;
 *   lp_gnn_layer_opts o = lp_gnn_layer_defaults();
 *   lp_gnn_layer_new(&l, LP_GNN_GCN, F, 128, &o, &rng);       // Glorot weights (LP_MEM_WEIGHTS)
 *   lp_gnn_input x = lp_gnn_input_features(ds);              // sparse or dense features
 *   lp_gnn_layer_zero_grad(l);
 *   lp_gnn_layer_forward(l, y, &x, ds->graph, 1);             // y (N,128); save = 1 keeps what backward needs
 *   lp_gnn_layer_backward(l, NULL, dy);                        // grads +=; dx += (NULL: not needed)
 *   lp_gnn_layer_release(l);                                   // drop saved activations
 *   lp_gnn_layer_free(l);
 *
 * Weights are stored (in, out) row-major, the transpose of PyG's lin.weight
 * (out, in), so a sparse first layer's X.W streams rows; lp_gnn_param says
 * which parameters are transposed relative to PyG.
 *
 * Memory: parameters in LP_MEM_WEIGHTS, gradients in LP_MEM_GRADIENTS, what a
 * layer keeps for backward in LP_MEM_ACTIVATIONS (GCN and SAGE keep nothing
 * beyond a reference to their input; GAT keeps its projected features and
 * per-node attention statistics, N*(H*C + 3H) floats), per-call temporaries in
 * LP_MEM_SCRATCH (recycled through a small workspace cache, see below). The BP stack keeps each layer's
 * output (the next layer's input) in LP_MEM_ACTIVATIONS.
 */
#ifndef LEANPROP_GNN_H
#define LEANPROP_GNN_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/alloc.h"
#include "leanprop/graph.h"
#include "leanprop/rng.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layers ---- */

typedef enum { LP_GNN_GCN = 0, LP_GNN_SAGE, LP_GNN_GAT, LP_GNN_KIND_COUNT } lp_gnn_kind;

const char *lp_gnn_kind_name(lp_gnn_kind k);               /* "gcn", "sage", "gat" */
lp_status lp_gnn_kind_parse(const char *s, lp_gnn_kind *out);

/* A layer input: dense (rows, cols) row-major, or a sparse matrix whose
 * transpose is built (lp_csr_build_transpose) when weight gradients are needed. */
typedef struct {
    int64_t rows, cols;
    const float *dense;
    const lp_csr *sparse;
} lp_gnn_input;

lp_gnn_input lp_gnn_input_dense(const float *x, int64_t rows, int64_t cols);
lp_gnn_input lp_gnn_input_sparse(const lp_csr *x);
lp_gnn_input lp_gnn_input_features(const lp_graph_dataset *ds);

typedef struct {
    int heads;              /* GAT: number of heads (default 4) */
    int concat;             /* GAT: 1 = concatenate (out_dim = heads x out_dim/heads), 0 = average (out_dim per head) */
    float negative_slope;   /* GAT: LeakyReLU slope (default 0.2) */
} lp_gnn_layer_opts;

lp_gnn_layer_opts lp_gnn_layer_defaults(void);

typedef struct {
    const char *name;       /* PyG parameter name: "lin.weight", "bias", "lin_l.weight", "att_src", ... */
    float *data;
    float *grad;
    int64_t numel;
    int64_t rows, cols;     /* leanprop's layout (row-major) */
    int transposed;         /* 1: PyG stores this parameter as (cols, rows) */
} lp_gnn_param;

typedef struct lp_gnn_layer lp_gnn_layer;

/* in_dim -> out_dim (the width of the output in every case). Init as PyG's
 * reset_parameters: GCN/GAT Glorot weights (and attention vectors), zero bias;
 * SAGE kaiming-uniform weights and bias (torch.nn.Linear). */
lp_status lp_gnn_layer_new(lp_gnn_layer **out, lp_gnn_kind kind, int64_t in_dim, int64_t out_dim,
                           const lp_gnn_layer_opts *opts, lp_rng *rng);
void lp_gnn_layer_free(lp_gnn_layer *l);
lp_gnn_kind lp_gnn_layer_kind(const lp_gnn_layer *l);
int64_t lp_gnn_layer_in_dim(const lp_gnn_layer *l);
int64_t lp_gnn_layer_out_dim(const lp_gnn_layer *l);
int lp_gnn_layer_n_params(const lp_gnn_layer *l);
lp_gnn_param lp_gnn_layer_param(const lp_gnn_layer *l, int i);
/* NULL when the layer has no parameter of that PyG name. */
const lp_gnn_param *lp_gnn_layer_find_param(const lp_gnn_layer *l, const char *pyg_name);
int64_t lp_gnn_layer_numel(const lp_gnn_layer *l);
void lp_gnn_layer_zero_grad(lp_gnn_layer *l);

/* x (N, in_dim), g (N nodes) -> y (N, out_dim). save = 1: remember x and g (the
 * caller keeps both alive and unchanged until backward) and keep what backward
 * needs (buffers reused by later forwards until lp_gnn_layer_release). save = 0:
 * inference; keeps nothing and invalidates a pending backward. */
lp_status lp_gnn_layer_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g, int save);
/* dy (N, out_dim) -> parameter gradients +=, dx (N, in_dim) += (NULL: not
 * needed; must be NULL for a sparse input). Needs a forward with save = 1. */
lp_status lp_gnn_layer_backward(lp_gnn_layer *l, float *dx, const float *dy);
/* Free the saved activations (a later backward needs a new forward). */
void lp_gnn_layer_release(lp_gnn_layer *l);
/* Bytes currently kept for backward. */
size_t lp_gnn_layer_saved_bytes(const lp_gnn_layer *l);
/* The layers' per-call temporaries are recycled through a small per-thread
 * workspace cache (LP_MEM_SCRATCH) instead of freed; this frees it, and
 * _bytes reports what it holds. lp_gnn_model_free and the trainers release it. */
void lp_gnn_workspace_release(void);
size_t lp_gnn_workspace_bytes(void);

/* ---- backprop stack: conv -> ReLU -> ... -> conv (no activation on the last layer) ---- */

typedef struct {
    lp_gnn_kind kind;
    int n_layers;           /* >= 1 */
    int64_t in_dim, hidden, out_dim;
    int heads;              /* GAT heads: hidden layers concatenate (hidden / heads each), the last averages */
} lp_gnn_model_config;

typedef struct lp_gnn_model lp_gnn_model;

lp_status lp_gnn_model_new(lp_gnn_model **out, const lp_gnn_model_config *cfg, lp_rng *rng);
void lp_gnn_model_free(lp_gnn_model *m);
int lp_gnn_model_n_layers(const lp_gnn_model *m);
lp_gnn_layer *lp_gnn_model_layer(lp_gnn_model *m, int i);
int64_t lp_gnn_model_numel(const lp_gnn_model *m);
void lp_gnn_model_zero_grad(lp_gnn_model *m);
/* Full-graph forward. *out -> the model's (N, out_dim) output, valid until the
 * next forward. save = 1 keeps every layer's output for backward. */
lp_status lp_gnn_model_forward(lp_gnn_model *m, const lp_gnn_input *x, const lp_graph *g, int save, float **out);
/* dout (N, out_dim) -> every parameter gradient +=. dout may be the output buffer. */
lp_status lp_gnn_model_backward(lp_gnn_model *m, const float *dout);
/* Copy all parameters to / from buf (lp_gnn_model_numel floats), for best-weight restore. */
void lp_gnn_model_get_params(const lp_gnn_model *m, float *buf);
void lp_gnn_model_set_params(lp_gnn_model *m, const float *buf);
/* Visit every (param, grad, numel) in a fixed order; offsets are consecutive. */
typedef lp_status (*lp_gnn_param_fn)(float *param, float *grad, int64_t numel, int64_t offset, void *user);
lp_status lp_gnn_model_for_params(lp_gnn_model *m, lp_gnn_param_fn fn, void *user);
/* Drop saved activations and buffers. */
void lp_gnn_model_release(lp_gnn_model *m);

/* ---- link scores ---- */

/* z (N,D), pairs (P,2) -> s (P) = <z_u, z_v> */
lp_status lp_gnn_pair_scores(float *s, const float *z, const int64_t *pairs, int64_t P, int64_t N, int64_t D);
/* ds (P) -> dz (N,D) += ds_p z_v (row u) and ds_p z_u (row v) */
lp_status lp_gnn_pair_scores_backward(float *dz, const float *ds, const float *z, const int64_t *pairs, int64_t P,
                                      int64_t N, int64_t D);
/* BCE with logits averaged over P: *loss; ds (P) = (sigmoid(s) - y) / P * dloss (overwrites; may be NULL). */
lp_status lp_bce_logits(float *loss, float *ds, const float *s, const uint8_t *y, int64_t P, float dloss);

/* ---- training ---- */

typedef enum { LP_GNN_TASK_NODE = 0, LP_GNN_TASK_LINK = 1 } lp_gnn_task;

typedef struct {
    lp_gnn_kind kind;
    int n_layers;           /* 2 */
    int hidden;             /* 128 */
    int heads;              /* 4 (GAT) */
    int link_dim;           /* output width of link prediction (128) */
    float lr;               /* 1e-3 */
    float weight_decay;     /* 5e-4: L2 added to the gradient (torch.optim.Adam) */
    int epochs;             /* 1000 */
    int eval_every;         /* 2 */
    int patience;           /* 100 validations without strict improvement */
    uint64_t seed;          /* run seed (init) */
} lp_gnn_train_config;

lp_gnn_train_config lp_gnn_train_defaults(void);

typedef struct {
    int run, epoch;
    double loss;
    double train_metric;    /* accuracy or ROC-AUC of this epoch's forward on the train set */
    double val_metric;      /* NaN when not a validation epoch */
    int improved;           /* this validation became the best */
    double seconds;         /* since the run started */
} lp_gnn_epoch;

typedef void (*lp_gnn_epoch_fn)(const lp_gnn_epoch *e, void *user);

typedef struct {
    double train, val, test;  /* metric (accuracy or ROC-AUC, 0..1) with the restored best weights */
    int best_epoch, epochs;   /* epoch of the best validation, epochs run */
    double seconds;           /* wall time of the run */
    double epoch_ms;          /* mean time of one training epoch (forward + backward + step) */
    int64_t params;
    lp_mem_stats mem;         /* accounting-allocator peaks during the run (reset at its start) */
} lp_gnn_result;

typedef struct {
    const lp_graph_dataset *data;
    lp_gnn_task task;
    const lp_node_split *node;      /* LP_GNN_TASK_NODE */
    const lp_edge_split *link;      /* LP_GNN_TASK_LINK */
    int run;
    const lp_gnn_train_config *cfg;
    lp_gnn_epoch_fn on_epoch;       /* may be NULL */
    void *user;
} lp_gnn_run_args;

typedef lp_status (*lp_gnn_train_fn)(const lp_gnn_run_args *a, lp_gnn_result *out);

/* A training method; node or link may be NULL where a method lacks that task. */
typedef struct {
    const char *name;       /* "bp" */
    const char *summary;
    lp_gnn_train_fn node;
    lp_gnn_train_fn link;
} lp_gnn_method;

int lp_gnn_method_count(void);
const lp_gnn_method *lp_gnn_method_at(int i);
const lp_gnn_method *lp_gnn_method_find(const char *name);

/* Backprop baselines (spec procedure 1). */
lp_status lp_gnn_train_bp_node(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_gnn_train_bp_link(const lp_gnn_run_args *a, lp_gnn_result *out);

#ifdef __cplusplus
}
#endif
#endif
