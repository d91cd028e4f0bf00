/* SAGEConv (PyG, mean aggregation): y = lin_l(mean_{j in N(i)} x_j) + lin_r(x_i), bias in lin_l.
 * A node without in-neighbours aggregates to 0. Keeps nothing for backward beyond
 * the reference to its input: weight gradients use G = mean^T dy, so the
 * aggregate itself is never stored. */
#include "leanprop/kernels/linear.h"
#include "leanprop/kernels/spmm.h"
#include "nn/gnn_internal.h"

lp_status lp_sage_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g)
{
    int64_t N = g->n_nodes, D = l->out, F = l->in;
    lp_status st;
    if (x->sparse || F >= D) {
        /* transform first (cheaper, and keeps a sparse input sparse): y = mean(X W_l) */
        float *t = lp_gnn__scratch_nz(N * D);
        if (!t) return lp_error_context(LP_ERR_NOMEM, "SAGE forward");
        st = lp_gnn__xw(t, x, l->p[0].data, D, 0.0f);
        if (st == LP_OK) st = lp_spmm(y, g->indptr, g->indices, NULL, g->deg_inv, NULL, NULL, t, N, N, D, 0.0f);
        lp_gnn__scratch_free(t);
    } else {
        /* aggregate first: y = mean(X) W_l */
        float *a = lp_gnn__scratch_nz(N * F);
        if (!a) return lp_error_context(LP_ERR_NOMEM, "SAGE forward");
        st = lp_spmm(a, g->indptr, g->indices, NULL, g->deg_inv, NULL, NULL, x->dense, N, N, F, 0.0f);
        if (st == LP_OK) st = lp_sgemm(y, 0, a, 0, l->p[0].data, 0, N, D, F, LP_NOTRANS, LP_NOTRANS, 1.0f, 0.0f);
        lp_gnn__scratch_free(a);
    }
    if (st == LP_OK) st = lp_gnn__xw(y, x, l->p[2].data, D, 1.0f);
    if (st == LP_OK) st = lp_bias_forward(y, l->p[1].data, N, D);
    return st;
}

lp_status lp_sage_backward(lp_gnn_layer *l, float *dx, const float *dy)
{
    const lp_graph *g = l->g;
    int64_t N = g->n_nodes, D = l->out;
    LP_TRY(lp_bias_backward(l->p[1].grad, dy, N, D));
    LP_TRY(lp_gnn__xtg(l->p[2].grad, &l->x, dy, D));
    if (dx) LP_TRY(lp_gnn__gwt(dx, dy, l->p[2].data, N, l->in, D));
    /* G = mean^T dy: dx_j += sum over targets i of j of dy_i / deg_i */
    float *G = lp_gnn__scratch_nz(N * D);
    if (!G) return lp_error_context(LP_ERR_NOMEM, "SAGE backward");
    lp_status st = lp_spmm(G, g->t_indptr, g->t_indices, NULL, NULL, g->deg_inv, NULL, dy, N, N, D, 0.0f);
    if (st == LP_OK) st = lp_gnn__xtg(l->p[0].grad, &l->x, G, D);
    if (st == LP_OK && dx) st = lp_gnn__gwt(dx, G, l->p[0].data, N, l->in, D);
    lp_gnn__scratch_free(G);
    return st;
}
