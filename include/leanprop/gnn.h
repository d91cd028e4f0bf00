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
#include "leanprop/checkpoint.h"
#include "leanprop/graph.h"
#include "leanprop/nonfinite.h"
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

typedef struct lp_gnn_checkpoint lp_gnn_checkpoint;

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
    lp_nonfinite_policy on_nonfinite; /* NaN/Inf in the output, loss or a gradient: STOP (default) ends the
                                         run with "run R epoch E: non-finite value (nan) in gradients of
                                         layers.0.lin.weight at index I (K of N values non-finite)";
                                         SKIP drops that epoch's update and goes on (BP trainers) */
    lp_gnn_checkpoint *ckpt;  /* NULL (default): none; else the trainer saves its state every few epochs
                                 and continues a saved run (see "checkpoints" below; BP, layer-wise forward) */
} lp_gnn_train_config;

lp_gnn_train_config lp_gnn_train_defaults(void);

typedef struct {
    int run, epoch;
    double loss;
    double train_metric;    /* accuracy or ROC-AUC of this epoch's forward on the train set */
    double val_metric;      /* NaN when not a validation epoch */
    int improved;           /* this validation became the best */
    double seconds;         /* since the run started */
    int skipped;            /* 1: non-finite output, loss or gradient, update dropped (policy skip) */
    const char *skip_reason;/* then the report (valid during the callback), else NULL */
} lp_gnn_epoch;

typedef void (*lp_gnn_epoch_fn)(const lp_gnn_epoch *e, void *user);

typedef struct {
    double train, val, test;  /* metric (accuracy or ROC-AUC, 0..1) with the restored best weights */
    int best_epoch, epochs;   /* epoch of the best validation, epochs run */
    double seconds;           /* wall time of the run */
    double epoch_ms;          /* mean time of one training epoch (forward + backward + step) */
    int64_t params;
    lp_mem_stats mem;         /* accounting-allocator peaks during the run (reset at its start) */
    int skipped_epochs;       /* epochs whose update was dropped (non-finite, policy skip) */
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

/* ---- checkpoints: crash-safe saves and exact resume of a multi-run job ----
 *
 * One leanprop checkpoint (leanprop/checkpoint.h: safetensors with CRC-32s, written to a
 * temporary file, fsynced and renamed over the old one) holds the whole job: its fingerprint
 * (method, task, configuration, runs, CRC-32s of the data set and the splits), the results of
 * the finished runs, and the state of the run in progress as its trainer saved it (BP: epoch,
 * parameters, Adam moments and step count, best parameters, best validation score and epoch,
 * validations without improvement, RNG state; the layer-wise forward methods (sf, ff-*, fl-ce, fl-ff):
 * the finished layers' weights, the current layer's weights, Adam state, best copy and early
 * stopping, under "<method>.*", at their cumulative epoch). Trainers save after every `every`-th epoch; the
 * caller saves at the end of each run (lp_gnn_checkpoint_end_run). A resumed job reproduces the
 * uninterrupted one's per-epoch losses bit for bit with the same thread count (the writer's is
 * lp_gnn_checkpoint_threads). After each save, temporary files a killed save left beside the
 * checkpoint ("<path>.tmp-XXXXXX") are removed.
 *
 *   lp_gnn_job job = {.method = "bp", .task = LP_GNN_TASK_NODE, .cfg = &cfg, .n_runs = runs,
 *                     .data = ds, .splits = splits};
 *   lp_gnn_checkpoint *ck;
 *   LP_TRY(lp_gnn_checkpoint_new(&ck, "job.ckpt", 50, &job));
 *   if (resume) LP_TRY(lp_gnn_checkpoint_resume(ck, "job.ckpt"));   // the same job, or an error
 *   for (int r = 0; r < lp_gnn_checkpoint_next_run(ck); r++) lp_gnn_checkpoint_result(ck, r, &res[r]);
 *   for (int r = lp_gnn_checkpoint_next_run(ck); r < runs; r++) {
 *       lp_gnn_train_config c = cfg;
 *       c.seed = cfg.seed + 3 * r;
 *       c.ckpt = ck;
 *       lp_gnn_run_args a = {..., .run = r, .cfg = &c};
 *       LP_TRY(lp_gnn_train_bp_node(&a, &res[r]));                  // continues a saved run
 *       LP_TRY(lp_gnn_checkpoint_end_run(ck, r, &res[r]));
 *   }
 *   lp_gnn_checkpoint_free(ck);
 *
 * A trainer supports checkpoints (and lp_gnn_method_resumable says so) with four calls: lp_gnn_checkpoint_state at the start of a
 * run (restore what it finds), and after an epoch where lp_gnn_checkpoint_due holds,
 * lp_gnn_checkpoint_begin, lp_checkpoint_writer_add_* of its own state (names prefixed by the
 * method, "bp."), lp_gnn_checkpoint_commit. */

typedef struct {
    const char *method;                /* method name ("bp") */
    lp_gnn_task task;
    const lp_gnn_train_config *cfg;    /* the job's configuration (on_nonfinite may change on resume) */
    int n_runs;
    const lp_graph_dataset *data;      /* fingerprinted by size and a CRC-32 of graph, features, labels */
    const lp_graph_splits *splits;     /* CRC-32 of the runs' splits; NULL: not fingerprinted */
} lp_gnn_job;

/* path NULL: never save (resume only). every >= 1. */
lp_status lp_gnn_checkpoint_new(lp_gnn_checkpoint **out, const char *path, int every, const lp_gnn_job *job);
void lp_gnn_checkpoint_free(lp_gnn_checkpoint *c);
/* Load a checkpoint of this job (before any run). LP_ERR_NOT_FOUND without the file,
 * LP_ERR_FORMAT when it is corrupt or truncated (CRC) or not a GNN job, LP_ERR_INVALID_ARG
 * naming the first field of the fingerprint that differs ("hidden: 16 in the checkpoint, 32 here"). */
lp_status lp_gnn_checkpoint_resume(lp_gnn_checkpoint *c, const char *path);
/* The first run not finished (0 for a fresh job) and the epoch its saved state ends with (0: it
 * starts afresh). */
int lp_gnn_checkpoint_next_run(const lp_gnn_checkpoint *c);
int lp_gnn_checkpoint_next_epoch(const lp_gnn_checkpoint *c);
/* The result of finished run `run` (< next_run), as its trainer returned it. */
lp_status lp_gnn_checkpoint_result(const lp_gnn_checkpoint *c, int run, lp_gnn_result *out);
/* Threads of the process that wrote the resumed checkpoint (0: nothing resumed). */
int lp_gnn_checkpoint_threads(const lp_gnn_checkpoint *c);
/* Saves so far and their wall time in seconds. */
int lp_gnn_checkpoint_saves(const lp_gnn_checkpoint *c, double *seconds);
/* Record the result of run `run` (== next_run), which becomes finished, and save. */
lp_status lp_gnn_checkpoint_end_run(lp_gnn_checkpoint *c, int run, const lp_gnn_result *res);

/* 1 when the method's trainers save and continue a run in progress (cfg->ckpt): BP, and the
 * layer-wise forward methods (sf, ff-la, ff-vn, fl-ce, fl-ff); 0 (the synchronous forward
 * methods): a checkpoint keeps only finished runs (a resume redoes the run in progress). */
int lp_gnn_method_resumable(const lp_gnn_method *m);
/* 1 when the method's trainers honour on_nonfinite skip (BP); else non-finite values stop the run. */
int lp_gnn_method_skips_nonfinite(const lp_gnn_method *m);

/* For trainers. 1 when a save is due after `epoch` (c not NULL, a path, epoch % every == 0). */
int lp_gnn_checkpoint_due(const lp_gnn_checkpoint *c, int epoch);
/* A writer holding the job (fingerprint, finished runs) with run `run` in progress after
 * `epoch`; the trainer adds its state and passes it to _commit, which saves atomically and
 * frees it (also on failure: then the old file is untouched). */
lp_status lp_gnn_checkpoint_begin(lp_gnn_checkpoint *c, int run, int epoch, lp_checkpoint_writer **w);
lp_status lp_gnn_checkpoint_commit(lp_gnn_checkpoint *c, lp_checkpoint_writer *w);
/* The saved state of run `run`, or NULL when that run starts afresh; *epoch (may be NULL) = the
 * epoch it was saved after. Valid until free. */
const lp_checkpoint *lp_gnn_checkpoint_state(const lp_gnn_checkpoint *c, int run, int *epoch);

#ifdef __cplusplus
}
#endif
#endif
