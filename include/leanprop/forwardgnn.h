/* leanprop/forwardgnn.h: forward learning of GNNs (ForwardGNN, spec procedures 2-7).
 *
 * Every layer has its own Adam optimizer and its own loss; a layer's input is a
 * constant, so no gradient ever crosses layers. Methods:
 *
 *   node classification          link prediction
 *   ff-la         (FF, label appending)      fl-ce          (per-layer BCE of <z_u, z_v>)
 *   ff-vn         (FF, virtual nodes)        fl-ff          (per-layer FF goodness of z_u * z_v)
 *   sf            (single forward)           fl-ce-topdown  (fl-ce with top-down signals)
 *   sf-top2loss   (SF, upper states merged into each layer's loss)
 *   sf-top2input  (SF, the layer above's output as a second input)
 *
 * Layer-wise methods (ff-la, ff-vn, sf, fl-ce, fl-ff) train layer 1 to the end
 * (early stopping on the validation score of the whole stack so far, best
 * weights restored), then layer 2 on layer 1's fixed output, and so on; only the
 * current layer's input and outputs are held (memory flat in depth). A run of
 * depth L also yields the results of depths 1..L-1 (lp_fgnn_report): layer l's
 * initial weights depend only on the run seed and l, so depth d of a deeper run
 * is exactly a run of depth d. The synchronous methods (sf-top2loss,
 * sf-top2input, fl-ce-topdown) update all layers every step from the previous
 * step's states and keep every layer's state (memory grows with depth).
 *
 * A fixed input is aggregated once (GCN: Ahat X, SAGE: mean of X; cached in
 * LP_MEM_ACTIVATIONS) so an epoch is one dense product per layer. GAT cannot be
 * cached this way (attention depends on W), and sparse inputs (raw features)
 * are not: Ahat (X W) costs less than (Ahat X) W because Ahat X is dense.
 *
 *   lp_gnn_train_config cfg = lp_gnn_train_defaults();      // GCN, hidden 128, lr 1e-3, ...
 *   cfg.n_layers = 4;
 *   lp_gnn_run_args a = {.data = ds, .task = LP_GNN_TASK_NODE, .node = &splits->node[0], .run = 0, .cfg = &cfg};
 *   lp_gnn_result res;
 *   lp_fgnn_report rep;                                      // per-depth results (out; may be NULL)
 *   lp_fgnn_opts o = lp_fgnn_defaults();
 *   if (lp_fgnn_train(LP_FGNN_SF, &a, &o, &res, &rep, NULL) != LP_OK) ... lp_error_message()
 *   // res.test: accuracy of the 4-layer stack; rep.test[1]: of its first 2 layers
 *
 * The lp_gnn_train_fn entry points (lp_fgnn_train_sf, ...) run with the
 * defaults; they are the rows of the `leanprop gnn --method` table.
 *
 * Memory: layer weights/gradients as lp_gnn_layer allocates them, Adam state in
 * LP_MEM_OPTIMIZER (freed when a layer-wise layer finishes), best-weight copies
 * in LP_MEM_WEIGHTS, layer inputs, caches, outputs and per-node scores in
 * LP_MEM_ACTIVATIONS, per-call temporaries in LP_MEM_SCRATCH, graphs built
 * here (virtual nodes, renumbering) in LP_MEM_DATA. lp_gnn_result.mem holds the
 * run's peaks; lp_fgnn_report.peak_activations the peak while each layer trained.
 */
#ifndef LEANPROP_FORWARDGNN_H
#define LEANPROP_FORWARDGNN_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_FGNN_MAX_LAYERS 32

typedef enum {
    LP_FGNN_FF_LA = 0,
    LP_FGNN_FF_VN,
    LP_FGNN_SF,
    LP_FGNN_SF_TOP2LOSS,
    LP_FGNN_SF_TOP2INPUT,
    LP_FGNN_FL_CE,
    LP_FGNN_FL_FF,
    LP_FGNN_FL_CE_TOPDOWN,
    LP_FGNN_METHOD_COUNT
} lp_fgnn_method;

/* "ff-la", "ff-vn", "sf", "sf-top2loss", "sf-top2input", "fl-ce", "fl-ff", "fl-ce-topdown" */
const char *lp_fgnn_method_name(lp_fgnn_method m);
lp_status lp_fgnn_method_parse(const char *s, lp_fgnn_method *out);
lp_gnn_task lp_fgnn_method_task(lp_fgnn_method m);
/* 1 for the layer-wise methods (memory flat in depth, per-depth results). */
int lp_fgnn_method_layerwise(lp_fgnn_method m);

typedef struct {
    float theta;              /* FF goodness threshold (2) */
    float tau;                /* SF softmax temperature (1) */
    int cache;                /* 1: cache the aggregation of fixed dense inputs (GCN, SAGE); 0: recompute each epoch */
    int ff_vn_shared_features;/* FF-VN, 1 (reference): after layer 1 every negative graph reuses the positive
                                 graph's features (only the virtual-node edges differ); 0: each negative graph
                                 propagates its own features */
    int test_time_steps;      /* top-down inference steps (10) */
    int first_scored_step;    /* first step whose outputs are summed at inference (2: steps 2..9) */
    float clip_norm;          /* SF-Top2Loss per-layer gradient-norm clip (1; 0 = none) */
    const float *layer_loss_weight; /* (n_layers) weight of each layer's loss, NULL = all 1 */
    float *scores_out;        /* NULL or a caller's (n_nodes, n_classes) buffer that node methods fill with the
                                 final inference scores by node id: summed softmaxes (SF, top-down) or summed
                                 goodness per candidate label (FF: train nodes scored with no label known, val
                                 nodes with the train labels known, test nodes with train + val known); rows of
                                 nodes outside the split are left as they are */
} lp_fgnn_opts;

lp_fgnn_opts lp_fgnn_defaults(void);

/* Results per depth. Layer-wise methods: entry d = the first d + 1 layers, after
 * layer d trained (n_depths = n_layers). Synchronous methods train the whole
 * model at once: only entry n_layers - 1 is set, the others are NaN. */
typedef struct {
    int n_depths;
    double train[LP_FGNN_MAX_LAYERS], val[LP_FGNN_MAX_LAYERS], test[LP_FGNN_MAX_LAYERS];
    int epochs[LP_FGNN_MAX_LAYERS];          /* epochs this layer trained */
    int best_epoch[LP_FGNN_MAX_LAYERS];      /* its best validation epoch (0: none ran) */
    double seconds[LP_FGNN_MAX_LAYERS];      /* wall time of this layer (incl. its evaluation) */
    size_t peak_activations[LP_FGNN_MAX_LAYERS]; /* peak LP_MEM_ACTIVATIONS while this layer trained */
    size_t peak_total[LP_FGNN_MAX_LAYERS];   /* peak of all categories together */
} lp_fgnn_report;

/* The trained layers (for inspection and tests). */
typedef struct lp_fgnn_model lp_fgnn_model;
int lp_fgnn_model_n_layers(const lp_fgnn_model *m);
lp_gnn_layer *lp_fgnn_model_layer(lp_fgnn_model *m, int l);
void lp_fgnn_model_free(lp_fgnn_model *m);

/* Train one run. a->task must match the method's task; node methods need
 * labels and a->node, link methods a->link with training edges. out receives
 * the final (best-restored) metrics; rep (may be NULL) the per-depth results;
 * model (may be NULL) the trained layers. */
lp_status lp_fgnn_train(lp_fgnn_method m, const lp_gnn_run_args *a, const lp_fgnn_opts *opts, lp_gnn_result *out,
                        lp_fgnn_report *rep, lp_fgnn_model **model);

/* lp_gnn_train_fn entry points (defaults), for the method table. */
lp_status lp_fgnn_train_ff_la(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_ff_vn(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_sf(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_sf_top2loss(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_sf_top2input(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_fl_ce(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_fl_ff(const lp_gnn_run_args *a, lp_gnn_result *out);
lp_status lp_fgnn_train_fl_ce_topdown(const lp_gnn_run_args *a, lp_gnn_result *out);

/* ---- building blocks (used by the trainers, tested on their own) ---- */

/* Virtual-node augmentation: nodes 0..N-1 of g plus C virtual nodes N..N+C-1;
 * every real node i with link[i] = c >= 0 gets the edges i -> N+c and N+c -> i.
 * rank (N + C) renumbers the nodes (new id of node k; NULL = identity). The
 * result has degrees and GCN normalisation over the augmented edges (a virtual
 * node's degree is the number of nodes linked to it). LP_MEM_DATA. */
lp_status lp_fgnn_vgraph(lp_graph **out, const lp_graph *g, int64_t n_classes, const int32_t *link, const int64_t *rank);

/* SF loss: y (n, D) rows, vn (C, D) virtual-node rows, labels (n) in [0, C) ->
 * *loss = cross entropy of logits y vn^T / tau (mean over n); dy (n, D) and
 * dvn (C, D) are OVERWRITTEN with the gradients (either may be NULL; dy may be
 * y and dvn may be vn: in place);
 * *n_correct (may be NULL) = rows whose largest logit is their label. */
lp_status lp_fgnn_sf_loss(float *loss, float *dy, float *dvn, int64_t *n_correct, const float *y, const float *vn,
                          const int32_t *labels, int64_t n, int64_t C, int64_t D, float tau);

/* FF goodness loss over K + 1 copies of n rows: pos (n, D), neg[k] (n, D):
 * L = mean_i softplus(theta - G(pos_i)) + mean_k mean_i softplus(G(neg_k,i) - theta),
 * G(y) = sum_j y_j^2. dpos / dneg[k] OVERWRITTEN (NULL: not needed). */
lp_status lp_fgnn_ff_loss(float *loss, float *dpos, float *const *dneg, const float *pos, const float *const *neg,
                          int K, int64_t n, int64_t D, float theta);

/* Inference rules. */
/* acc (n, C) += softmax(y vn^T / tau) row-wise (SF: sum of per-layer softmaxes). */
lp_status lp_fgnn_sf_accumulate(float *acc, const float *y, const float *vn, int64_t n, int64_t C, int64_t D,
                                float tau);
/* acc (n) += mean_j y_j^2 - theta (FF: goodness of one layer for one candidate label). */
lp_status lp_fgnn_ff_accumulate(float *acc, const float *y, int64_t n, int64_t D, float theta);
/* pred (n) = argmax over C of scores (n, C) (first maximum); returns the number equal to labels (labels may be NULL). */
int64_t lp_fgnn_argmax(int32_t *pred, const float *scores, const int32_t *labels, int64_t n, int64_t C);

#ifdef __cplusplus
}
#endif
#endif
