/* GNN layer objects: parameters (PyG names and init), dispatch, shared products. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/kernels/linear.h"
#include "leanprop/kernels/spmm.h"
#include "nn/gnn_internal.h"

static const char *const g_kind_names[LP_GNN_KIND_COUNT] = {"gcn", "sage", "gat"};

const char *lp_gnn_kind_name(lp_gnn_kind k)
{
    return (int)k >= 0 && k < LP_GNN_KIND_COUNT ? g_kind_names[k] : "invalid";
}

lp_status lp_gnn_kind_parse(const char *s, lp_gnn_kind *out)
{
    for (int k = 0; s && k < LP_GNN_KIND_COUNT; k++)
        if (!strcmp(s, g_kind_names[k])) { *out = (lp_gnn_kind)k; return LP_OK; }
    return lp_error(LP_ERR_INVALID_ARG, "unknown GNN model '%s' (gcn, sage, gat)", s ? s : "(null)");
}

lp_gnn_input lp_gnn_input_dense(const float *x, int64_t rows, int64_t cols)
{
    lp_gnn_input in = {rows, cols, x, NULL};
    return in;
}

lp_gnn_input lp_gnn_input_sparse(const lp_csr *x)
{
    lp_gnn_input in = {x ? x->rows : 0, x ? x->cols : 0, NULL, x};
    return in;
}

lp_gnn_input lp_gnn_input_features(const lp_graph_dataset *ds)
{
    if (ds->x_sparse) return lp_gnn_input_sparse(ds->x_sparse);
    return lp_gnn_input_dense(ds->x_dense, ds->n_nodes, ds->n_features);
}

lp_gnn_layer_opts lp_gnn_layer_defaults(void)
{
    lp_gnn_layer_opts o = {.heads = 4, .concat = 1, .negative_slope = 0.2f};
    return o;
}

/* Workspace cache: per-call temporaries of the layers are returned here instead
 * of being freed, so an epoch does not map, fault in and zero fresh pages for
 * every temporary. Cached buffers stay counted as LP_MEM_SCRATCH until
 * lp_gnn_workspace_release(). */
#define WS_SLOTS 8
static _Thread_local float *g_ws[WS_SLOTS];

float *lp_gnn__scratch_nz(int64_t n)
{
    size_t need = (size_t)(n > 0 ? n : 1) * sizeof(float);
    int best = -1;
    for (int i = 0; i < WS_SLOTS; i++) /* smallest cached buffer that fits */
        if (g_ws[i] && lp_alloc_size(g_ws[i]) >= need && (best < 0 || lp_alloc_size(g_ws[i]) < lp_alloc_size(g_ws[best])))
            best = i;
    if (best >= 0 && lp_alloc_size(g_ws[best]) <= 2 * need + 4096) {
        float *p = g_ws[best];
        g_ws[best] = NULL;
        return p;
    }
    return lp_alloc_array(LP_MEM_SCRATCH, need / sizeof(float), sizeof(float));
}

float *lp_gnn__scratch(int64_t n)
{
    float *p = lp_gnn__scratch_nz(n);
    if (p) memset(p, 0, (size_t)(n > 0 ? n : 1) * sizeof(float));
    return p;
}

void lp_gnn__scratch_free(float *p)
{
    if (!p) return;
    for (int i = 0; i < WS_SLOTS; i++)
        if (!g_ws[i]) { g_ws[i] = p; return; }
    int small = 0; /* full: drop the smallest of the cache and p */
    for (int i = 1; i < WS_SLOTS; i++)
        if (lp_alloc_size(g_ws[i]) < lp_alloc_size(g_ws[small])) small = i;
    if (lp_alloc_size(p) > lp_alloc_size(g_ws[small])) {
        lp_free(g_ws[small]);
        g_ws[small] = p;
    } else {
        lp_free(p);
    }
}

void lp_gnn_workspace_release(void)
{
    for (int i = 0; i < WS_SLOTS; i++) { lp_free(g_ws[i]); g_ws[i] = NULL; }
}

size_t lp_gnn_workspace_bytes(void)
{
    size_t b = 0;
    for (int i = 0; i < WS_SLOTS; i++) b += lp_alloc_size(g_ws[i]);
    return b;
}

static lp_status add_param(lp_gnn_layer *l, const char *name, int64_t rows, int64_t cols, int transposed)
{
    lp_gnn_param *p = &l->p[l->n_params++];
    p->name = name;
    p->rows = rows;
    p->cols = cols;
    p->numel = rows * cols;
    p->transposed = transposed;
    p->data = lp_alloc_array(LP_MEM_WEIGHTS, (size_t)p->numel, sizeof(float));
    p->grad = lp_alloc_array(LP_MEM_GRADIENTS, (size_t)p->numel, sizeof(float));
    if (!p->data || !p->grad) return lp_error_context(LP_ERR_NOMEM, "%s layer parameter %s", lp_gnn_kind_name(l->kind), name);
    return LP_OK;
}

static void fill_uniform(lp_rng *rng, float *w, int64_t n, double bound)
{
    for (int64_t i = 0; i < n; i++) w[i] = (float)((2.0 * lp_rng_uniform_double(rng) - 1.0) * bound);
}

lp_status lp_gnn_layer_new(lp_gnn_layer **out, lp_gnn_kind kind, int64_t in_dim, int64_t out_dim,
                           const lp_gnn_layer_opts *opts, lp_rng *rng)
{
    if (!out || !rng || in_dim < 1 || out_dim < 1 || (int)kind < 0 || kind >= LP_GNN_KIND_COUNT)
        return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_layer_new: bad arguments (kind %d, %lld -> %lld)", (int)kind,
                        (long long)in_dim, (long long)out_dim);
    *out = NULL;
    lp_gnn_layer *l = calloc(1, sizeof *l);
    if (!l) return lp_error(LP_ERR_NOMEM, "out of memory");
    l->kind = kind;
    l->in = in_dim;
    l->out = out_dim;
    l->o = opts ? *opts : lp_gnn_layer_defaults();
    lp_status st = LP_OK;
    if (kind == LP_GNN_GCN) {
        if ((st = add_param(l, "lin.weight", in_dim, out_dim, 1)) || (st = add_param(l, "bias", 1, out_dim, 0))) goto fail;
        fill_uniform(rng, l->p[0].data, l->p[0].numel, sqrt(6.0 / (double)(in_dim + out_dim)));
    } else if (kind == LP_GNN_SAGE) {
        if ((st = add_param(l, "lin_l.weight", in_dim, out_dim, 1)) || (st = add_param(l, "lin_l.bias", 1, out_dim, 0)) ||
            (st = add_param(l, "lin_r.weight", in_dim, out_dim, 1)))
            goto fail;
        double b = 1.0 / sqrt((double)in_dim);
        fill_uniform(rng, l->p[0].data, l->p[0].numel, b);
        fill_uniform(rng, l->p[1].data, l->p[1].numel, b);
        fill_uniform(rng, l->p[2].data, l->p[2].numel, b);
    } else {
        int H = l->o.heads;
        if (H < 1 || (l->o.concat && out_dim % H != 0)) {
            st = lp_error(LP_ERR_INVALID_ARG, "GAT: %lld outputs do not split into %d concatenated heads",
                          (long long)out_dim, H);
            goto fail;
        }
        if (!(l->o.negative_slope >= 0)) { st = lp_error(LP_ERR_INVALID_ARG, "GAT: bad negative slope"); goto fail; }
        int64_t C = l->o.concat ? out_dim / H : out_dim;
        if ((st = add_param(l, "lin.weight", in_dim, H * C, 1)) || (st = add_param(l, "att_src", H, C, 0)) ||
            (st = add_param(l, "att_dst", H, C, 0)) || (st = add_param(l, "bias", 1, out_dim, 0)))
            goto fail;
        fill_uniform(rng, l->p[0].data, l->p[0].numel, sqrt(6.0 / (double)(in_dim + H * C)));
        fill_uniform(rng, l->p[1].data, l->p[1].numel, sqrt(6.0 / (double)(H + C)));
        fill_uniform(rng, l->p[2].data, l->p[2].numel, sqrt(6.0 / (double)(H + C)));
    }
    *out = l;
    return LP_OK;
fail:
    lp_gnn_layer_free(l);
    return st;
}

void lp_gnn_layer_release(lp_gnn_layer *l)
{
    if (!l) return;
    lp_free(l->h); lp_free(l->a_src); lp_free(l->a_dst); lp_free(l->lse);
    l->h = l->a_src = l->a_dst = l->lse = NULL;
    l->saved_rows = 0;
    l->saved = 0;
    l->g = NULL;
    memset(&l->x, 0, sizeof l->x);
}

void lp_gnn_layer_free(lp_gnn_layer *l)
{
    if (!l) return;
    lp_gnn_layer_release(l);
    for (int i = 0; i < l->n_params; i++) { lp_free(l->p[i].data); lp_free(l->p[i].grad); }
    free(l);
}

lp_gnn_kind lp_gnn_layer_kind(const lp_gnn_layer *l) { return l->kind; }
int64_t lp_gnn_layer_in_dim(const lp_gnn_layer *l) { return l->in; }
int64_t lp_gnn_layer_out_dim(const lp_gnn_layer *l) { return l->out; }
int lp_gnn_layer_n_params(const lp_gnn_layer *l) { return l ? l->n_params : 0; }

lp_gnn_param lp_gnn_layer_param(const lp_gnn_layer *l, int i)
{
    lp_gnn_param none = {0};
    return l && i >= 0 && i < l->n_params ? l->p[i] : none;
}

const lp_gnn_param *lp_gnn_layer_find_param(const lp_gnn_layer *l, const char *pyg_name)
{
    for (int i = 0; l && pyg_name && i < l->n_params; i++)
        if (!strcmp(l->p[i].name, pyg_name)) return &l->p[i];
    return NULL;
}

int64_t lp_gnn_layer_numel(const lp_gnn_layer *l)
{
    int64_t n = 0;
    for (int i = 0; l && i < l->n_params; i++) n += l->p[i].numel;
    return n;
}

void lp_gnn_layer_zero_grad(lp_gnn_layer *l)
{
    for (int i = 0; l && i < l->n_params; i++) memset(l->p[i].grad, 0, (size_t)l->p[i].numel * sizeof(float));
}

size_t lp_gnn_layer_saved_bytes(const lp_gnn_layer *l)
{
    if (!l) return 0;
    return lp_alloc_size(l->h) + lp_alloc_size(l->a_src) + lp_alloc_size(l->a_dst) + lp_alloc_size(l->lse);
}

lp_status lp_gnn__check_graph(const lp_gnn_layer *l, const lp_gnn_input *x, const lp_graph *g, int self_loops_free)
{
    if (!x || !g || (!x->dense && !x->sparse))
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: NULL input or graph", lp_gnn_kind_name(l->kind));
    if (x->cols != l->in)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: input has %lld columns, layer expects %lld",
                        lp_gnn_kind_name(l->kind), (long long)x->cols, (long long)l->in);
    if (x->rows != g->n_nodes)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: input has %lld rows, graph %lld nodes", lp_gnn_kind_name(l->kind),
                        (long long)x->rows, (long long)g->n_nodes);
    if (self_loops_free && g->n_self_loops)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: graph has %lld self loops; pass one without (the layer adds its own)",
                        lp_gnn_kind_name(l->kind), (long long)g->n_self_loops);
    return LP_OK;
}

lp_status lp_gnn_layer_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g, int save)
{
    if (!l || !y) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_layer_forward: NULL argument");
    LP_TRY(lp_gnn__check_graph(l, x, g, l->kind != LP_GNN_SAGE));
    l->saved = 0;
    lp_status st;
    switch (l->kind) {
    case LP_GNN_GCN: st = lp_gcn_forward(l, y, x, g); break;
    case LP_GNN_SAGE: st = lp_sage_forward(l, y, x, g); break;
    default: st = lp_gat_forward(l, y, x, g, save); break;
    }
    if (st != LP_OK) return st;
    if (save) {
        l->x = *x;
        l->g = g;
        l->saved = 1;
    }
    return LP_OK;
}

lp_status lp_gnn_layer_backward(lp_gnn_layer *l, float *dx, const float *dy)
{
    if (!l || !dy) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_layer_backward: NULL argument");
    if (!l->saved)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: backward without a forward(save = 1)", lp_gnn_kind_name(l->kind));
    if (dx && !l->x.dense)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: no input gradient for a sparse input", lp_gnn_kind_name(l->kind));
    if (l->x.sparse && !l->x.sparse->t_indptr)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: sparse input lacks its transpose (lp_csr_build_transpose)",
                        lp_gnn_kind_name(l->kind));
    switch (l->kind) {
    case LP_GNN_GCN: return lp_gcn_backward(l, dx, dy);
    case LP_GNN_SAGE: return lp_sage_backward(l, dx, dy);
    default: return lp_gat_backward(l, dx, dy);
    }
}

/* ---- shared products ---- */

lp_status lp_gnn__xw(float *y, const lp_gnn_input *x, const float *W, int64_t out, float beta)
{
    if (x->sparse)
        return lp_spmm(y, x->sparse->indptr, x->sparse->indices, x->sparse->values, NULL, NULL, NULL, W, x->rows,
                       x->cols, out, beta);
    return lp_sgemm(y, 0, x->dense, 0, W, 0, x->rows, out, x->cols, LP_NOTRANS, LP_NOTRANS, 1.0f, beta);
}

lp_status lp_gnn__xtg(float *dW, const lp_gnn_input *x, const float *G, int64_t out)
{
    if (x->sparse)
        return lp_spmm(dW, x->sparse->t_indptr, x->sparse->t_indices, x->sparse->t_values, NULL, NULL, NULL, G, x->cols,
                       x->rows, out, 1.0f);
    return lp_sgemm(dW, 0, x->dense, 0, G, 0, x->cols, out, x->rows, LP_TRANS, LP_NOTRANS, 1.0f, 1.0f);
}

lp_status lp_gnn__gwt(float *dX, const float *G, const float *W, int64_t N, int64_t in, int64_t out)
{
    return lp_sgemm(dX, 0, G, 0, W, 0, N, in, out, LP_NOTRANS, LP_TRANS, 1.0f, 1.0f);
}
