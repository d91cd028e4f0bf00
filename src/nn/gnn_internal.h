/* Shared internals of the GNN layers (src/nn/gnn_layer.c, gcn.c, sage.c, gat.c). */
#ifndef LEANPROP_NN_GNN_INTERNAL_H
#define LEANPROP_NN_GNN_INTERNAL_H

#include "leanprop/gnn.h"

#define LP_GNN_MAX_PARAMS 4

struct lp_gnn_layer {
    lp_gnn_kind kind;
    int64_t in, out;
    lp_gnn_layer_opts o;
    int n_params;
    lp_gnn_param p[LP_GNN_MAX_PARAMS];
    /* saved by a forward with save = 1 */
    int saved;
    lp_gnn_input x;
    const lp_graph *g;
    /* GAT: projected features h (N, H*C), attention logit parts a_src, a_dst and
     * softmax log-normaliser lse (N, H each), all LP_MEM_ACTIVATIONS */
    float *h, *a_src, *a_dst, *lse;
    int64_t saved_rows;
};

/* y (N,out) = beta*y + X (N,in) @ W (in,out): dense through BLAS, sparse through SpMM. */
lp_status lp_gnn__xw(float *y, const lp_gnn_input *x, const float *W, int64_t out, float beta);
/* dW (in,out) += X^T @ G (N,out) */
lp_status lp_gnn__xtg(float *dW, const lp_gnn_input *x, const float *G, int64_t out);
/* dX (N,in) += G (N,out) @ W^T */
lp_status lp_gnn__gwt(float *dX, const float *G, const float *W, int64_t N, int64_t in, int64_t out);
/* Scratch array of n floats from the workspace cache (LP_MEM_SCRATCH), zeroed
 * or not (_nz); NULL with an error recorded. Return it with lp_gnn__scratch_free. */
float *lp_gnn__scratch(int64_t n);
float *lp_gnn__scratch_nz(int64_t n);
void lp_gnn__scratch_free(float *p);
lp_status lp_gnn__check_graph(const lp_gnn_layer *l, const lp_gnn_input *x, const lp_graph *g, int self_loops_free);

lp_status lp_gcn_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g);
lp_status lp_gcn_backward(lp_gnn_layer *l, float *dx, const float *dy);
lp_status lp_sage_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g);
lp_status lp_sage_backward(lp_gnn_layer *l, float *dx, const float *dy);
lp_status lp_gat_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g, int save);
lp_status lp_gat_backward(lp_gnn_layer *l, float *dx, const float *dy);

#endif
