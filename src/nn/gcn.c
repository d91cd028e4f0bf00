/* GCNConv (PyG): y = D^-1/2 (A + I) D^-1/2 (X W) + b, degrees on targets incl. the self loop.
 * Keeps nothing for backward beyond the reference to its input. */
#include "leanprop/kernels/linear.h"
#include "leanprop/kernels/spmm.h"
#include "nn/gnn_internal.h"

lp_status lp_gcn_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g)
{
    int64_t N = g->n_nodes, D = l->out;
    float *t = lp_gnn__scratch_nz(N * D);
    if (!t) return lp_error_context(LP_ERR_NOMEM, "GCN forward");
    lp_status st = lp_gnn__xw(t, x, l->p[0].data, D, 0.0f);
    if (st == LP_OK) st = lp_spmm(y, g->indptr, g->indices, NULL, g->gcn_dinv, g->gcn_dinv, g->gcn_self, t, N, N, D, 0.0f);
    if (st == LP_OK) st = lp_bias_forward(y, l->p[1].data, N, D);
    lp_gnn__scratch_free(t);
    return st;
}

lp_status lp_gcn_backward(lp_gnn_layer *l, float *dx, const float *dy)
{
    const lp_graph *g = l->g;
    int64_t N = g->n_nodes, D = l->out;
    LP_TRY(lp_bias_backward(l->p[1].grad, dy, N, D));
    /* dT = Ahat^T dy: the transpose structure, same symmetric weights */
    float *dt = lp_gnn__scratch_nz(N * D);
    if (!dt) return lp_error_context(LP_ERR_NOMEM, "GCN backward");
    lp_status st = lp_spmm(dt, g->t_indptr, g->t_indices, NULL, g->gcn_dinv, g->gcn_dinv, g->gcn_self, dy, N, N, D, 0.0f);
    if (st == LP_OK) st = lp_gnn__xtg(l->p[0].grad, &l->x, dt, D);
    if (st == LP_OK && dx) st = lp_gnn__gwt(dx, dt, l->p[0].data, N, l->in, D);
    lp_gnn__scratch_free(dt);
    return st;
}
