/* One GNN layer applied to an input made of column blocks ("parts"), over a row range.
 *
 * A forward-learned layer sees a constant input, so the neighbour aggregation
 * of a fixed dense part is computed once and cached (the reference's "cached"
 * convolutions):
 *   GCN   z = Ahat (X W) + b = (Ahat X) W + b            -> cache Ahat X
 *   SAGE  z = mean(X) W_l + b + X W_r                     -> cache mean(X), keep X
 * after which an epoch is one GEMM over the rows the loss needs. Sparse parts
 * (raw features) and parts that change every step go the direct way: T = X W
 * for every row, then propagate only the rows asked for. GAT cannot be cached
 * (attention depends on W): it runs through lp_gnn_layer_forward/backward on
 * all rows, with several parts concatenated into one dense input.
 *
 * GCN and SAGE use the layer's own parameters (lp_gnn_layer_find_param), so a
 * layer trained here is an ordinary lp_gnn_layer. Weights are (in, out)
 * row-major: part k uses the rows [off_k, off_k + cols_k) of each weight. */
#include <string.h>

#include "leanprop/kernels/linear.h"
#include "leanprop/kernels/spmm.h"
#include "train/fgnn_internal.h"

static const char *kname(const fgnn_conv *c) { return lp_gnn_kind_name(c->kind); }

/* Workspace: three (n x D) float buffers in LP_MEM_SCRATCH shared by every conv
 * of the thread (a conv uses them only inside one forward or backward call), kept
 * until fgnn_conv_workspace_release: an epoch reuses them instead of mapping and
 * faulting in fresh pages. Not zeroed. */
static _Thread_local float *g_ws[3];

static float *ws(fgnn_conv *c, int k)
{
    size_t need = (size_t)(c->n * c->D) * sizeof(float);
    if (g_ws[k] && lp_alloc_size(g_ws[k]) < need) { lp_free(g_ws[k]); g_ws[k] = NULL; }
    if (!g_ws[k]) g_ws[k] = lp_alloc(LP_MEM_SCRATCH, need);
    return g_ws[k];
}

void fgnn_conv_workspace_release(void)
{
    for (int k = 0; k < 3; k++) { lp_free(g_ws[k]); g_ws[k] = NULL; }
}

static int has_data(const fgnn_part *p) { return p->dense || p->sparse; }

void fgnn_conv_mute(fgnn_conv *c, int k, int on)
{
    if (k < 0 || k >= c->np || c->mute[k] == (on != 0)) return;
    c->mute[k] = on != 0;
    c->cat_dirty[k] = 1;
}

void fgnn_conv_release(fgnn_conv *c)
{
    if (!c) return;
    for (int k = 0; k < FGNN_MAX_PARTS; k++) lp_free(c->agg[k]);
    lp_free(c->self);
    lp_free(c->cat);
    lp_csr_free(c->cat_sparse);
    lp_free(c->zfull);
    if (c->layer) lp_gnn_layer_release(c->layer);
    memset(c, 0, sizeof *c);
}

/* Copy the parts into the dense concatenation (fixed ones only on the first call). */
static void fill_cat(fgnn_conv *c, int first)
{
    for (int k = 0; k < c->np; k++) {
        const fgnn_part *p = &c->p[k];
        if (!first && p->fixed && !c->cat_dirty[k]) continue;
        c->cat_dirty[k] = 0;
        for (int64_t i = 0; i < c->n; i++) {
            float *row = c->cat + i * c->in + c->off[k];
            if (c->mute[k]) memset(row, 0, (size_t)p->cols * sizeof(float));
            else if (p->dense) memcpy(row, p->dense + i * p->cols, (size_t)p->cols * sizeof(float));
            else {
                memset(row, 0, (size_t)p->cols * sizeof(float));
                if (p->sparse)
                    for (int64_t e = p->sparse->indptr[i]; e < p->sparse->indptr[i + 1]; e++)
                        row[p->sparse->indices[e]] = p->sparse->values[e];
            }
        }
    }
}

/* GAT with fixed parts, one of them sparse: one CSR holding every part's columns. */
static lp_status concat_csr(fgnn_conv *c)
{
    int64_t nnz = 0;
    for (int k = 0; k < c->np; k++)
        nnz += c->p[k].sparse ? c->p[k].sparse->nnz : c->p[k].dense ? c->n * c->p[k].cols : 0;
    lp_csr *m = fgnn_csr_new(c->n, c->in, nnz);
    if (!m) return LP_ERR_NOMEM;
    int64_t w = 0;
    for (int64_t i = 0; i < c->n; i++) {
        for (int k = 0; k < c->np; k++) {
            const fgnn_part *p = &c->p[k];
            if (p->sparse)
                for (int64_t e = p->sparse->indptr[i]; e < p->sparse->indptr[i + 1]; e++, w++) {
                    m->indices[w] = (int32_t)(c->off[k] + p->sparse->indices[e]);
                    m->values[w] = p->sparse->values[e];
                }
            else if (p->dense)
                for (int64_t j = 0; j < p->cols; j++, w++) {
                    m->indices[w] = (int32_t)(c->off[k] + j);
                    m->values[w] = p->dense[i * p->cols + j];
                }
        }
        m->indptr[i + 1] = w;
    }
    lp_status st = fgnn_csr_finish(m);
    if (st != LP_OK) { lp_csr_free(m); return st; }
    c->cat_sparse = m;
    c->gin = lp_gnn_input_sparse(m);
    return LP_OK;
}

static lp_status find(float **data, float **grad, const lp_gnn_layer *l, const char *name)
{
    const lp_gnn_param *p = lp_gnn_layer_find_param(l, name);
    if (!p) return lp_error(LP_ERR_INTERNAL, "%s layer has no parameter %s", lp_gnn_kind_name(lp_gnn_layer_kind(l)), name);
    *data = p->data;
    *grad = p->grad;
    return LP_OK;
}

lp_status fgnn_conv_init(fgnn_conv *c, lp_gnn_layer *layer, const lp_graph *g, const fgnn_part *parts, int np, int flags)
{
    int cache = flags & FGNN_CONV_CACHE;
    memset(c, 0, sizeof *c);
    if (!layer || !g || !parts || np < 1 || np > FGNN_MAX_PARTS)
        return lp_error(LP_ERR_INVALID_ARG, "fgnn_conv_init: bad arguments");
    c->layer = layer;
    c->kind = lp_gnn_layer_kind(layer);
    c->g = g;
    c->n = g->n_nodes;
    c->in = lp_gnn_layer_in_dim(layer);
    c->D = lp_gnn_layer_out_dim(layer);
    c->np = np;
    int64_t off = 0;
    for (int k = 0; k < np; k++) {
        c->p[k] = parts[k];
        c->off[k] = off;
        off += parts[k].cols;
        if (parts[k].sparse && parts[k].sparse->rows != c->n)
            return lp_error(LP_ERR_INVALID_ARG, "%s layer input part %d has %lld rows, graph %lld nodes", kname(c), k,
                            (long long)parts[k].sparse->rows, (long long)c->n);
        if (parts[k].sparse && !parts[k].sparse->t_indptr)
            return lp_error(LP_ERR_INVALID_ARG, "%s layer input part %d lacks its transpose", kname(c), k);
    }
    if (off != c->in)
        return lp_error(LP_ERR_INVALID_ARG, "%s layer: input parts have %lld columns, layer expects %lld", kname(c),
                        (long long)off, (long long)c->in);
    lp_status st = LP_OK;
    if (c->kind == LP_GNN_GAT) {
        int all_fixed = 1, any_sparse = 0;
        for (int k = 0; k < np; k++) { all_fixed &= parts[k].fixed; any_sparse |= parts[k].sparse != NULL; }
        if (np == 1 && has_data(&parts[0])) {
            c->gin = parts[0].sparse ? lp_gnn_input_sparse(parts[0].sparse) : lp_gnn_input_dense(parts[0].dense, c->n, c->in);
        } else if (all_fixed && any_sparse && !(flags & FGNN_CONV_MUTABLE)) {
            if ((st = concat_csr(c)) != LP_OK) goto fail;
        } else {
            c->cat = fgnn_act(c->n * c->in);
            if (!c->cat) { st = lp_error_context(LP_ERR_NOMEM, "GAT input (%lld x %lld)", (long long)c->n, (long long)c->in); goto fail; }
            fill_cat(c, 1);
            c->gin = lp_gnn_input_dense(c->cat, c->n, c->in);
        }
        c->zfull = fgnn_act(c->n * c->D);
        if (!c->zfull) { st = lp_error_context(LP_ERR_NOMEM, "GAT output"); goto fail; }
        return LP_OK;
    }
    if (c->kind == LP_GNN_GCN) {
        if ((st = find(&c->W, &c->dW, layer, "lin.weight")) || (st = find(&c->b, &c->db, layer, "bias"))) goto fail;
        c->self = fgnn_act(c->n);
        if (!c->self) { st = lp_error_context(LP_ERR_NOMEM, "GCN self weights"); goto fail; }
        for (int64_t i = 0; i < c->n; i++) c->self[i] = g->gcn_dinv[i] * g->gcn_dinv[i];
    } else {
        if ((st = find(&c->W, &c->dW, layer, "lin_l.weight")) || (st = find(&c->b, &c->db, layer, "lin_l.bias")) ||
            (st = find(&c->Wr, &c->dWr, layer, "lin_r.weight")))
            goto fail;
    }
    for (int k = 0; k < np; k++) {
        const fgnn_part *p = &c->p[k];
        if (!has_data(p)) continue;
        if (!(cache && p->fixed && p->dense)) { c->n_direct++; continue; }
        c->agg[k] = fgnn_act(c->n * p->cols);
        if (!c->agg[k]) { st = lp_error_context(LP_ERR_NOMEM, "cached aggregation (%lld x %lld)", (long long)c->n, (long long)p->cols); goto fail; }
        if (c->kind == LP_GNN_GCN)
            st = lp_spmm(c->agg[k], g->indptr, g->indices, NULL, g->gcn_dinv, g->gcn_dinv, c->self, p->dense, c->n, c->n,
                         p->cols, 0.0f);
        else
            st = lp_spmm(c->agg[k], g->indptr, g->indices, NULL, g->deg_inv, NULL, NULL, p->dense, c->n, c->n, p->cols, 0.0f);
        if (st != LP_OK) goto fail;
    }
    return LP_OK;
fail:
    fgnn_conv_release(c);
    return st;
}

int fgnn_conv_reads_part(const fgnn_conv *c, int k)
{
    if (k < 0 || k >= c->np || !has_data(&c->p[k])) return 0;
    if (c->kind == LP_GNN_GAT) return !((c->cat || c->cat_sparse) && c->p[k].fixed);
    if (c->kind == LP_GNN_SAGE) return 1;
    return c->agg[k] == NULL;
}

/* T (n, D) = sum over direct parts of P_k W[off_k:]; beta-free: the first part overwrites. */
static lp_status direct_xw(const fgnn_conv *c, float *T, const float *W)
{
    int first = 1;
    for (int k = 0; k < c->np; k++) {
        const fgnn_part *p = &c->p[k];
        if (!has_data(p) || c->agg[k] || c->mute[k]) continue;
        const float *Wk = W + c->off[k] * c->D;
        float beta = first ? 0.0f : 1.0f;
        if (p->sparse)
            LP_TRY(lp_spmm(T, p->sparse->indptr, p->sparse->indices, p->sparse->values, NULL, NULL, NULL, Wk, c->n, p->cols,
                           c->D, beta));
        else
            LP_TRY(lp_sgemm(T, 0, p->dense, 0, Wk, 0, c->n, c->D, p->cols, LP_NOTRANS, LP_NOTRANS, 1.0f, beta));
        first = 0;
    }
    if (first) memset(T, 0, (size_t)(c->n * c->D) * sizeof(float));
    return LP_OK;
}

/* dW[off_k:] += P_k^T G for every direct part (G (n, D), all rows) */
static lp_status direct_xtg(const fgnn_conv *c, float *dW, const float *G)
{
    for (int k = 0; k < c->np; k++) {
        const fgnn_part *p = &c->p[k];
        if (!has_data(p) || c->agg[k]) continue;
        float *dWk = dW + c->off[k] * c->D;
        if (p->sparse)
            LP_TRY(lp_spmm(dWk, p->sparse->t_indptr, p->sparse->t_indices, p->sparse->t_values, NULL, NULL, NULL, G, p->cols,
                           c->n, c->D, 1.0f));
        else
            LP_TRY(lp_sgemm(dWk, 0, p->dense, 0, G, 0, p->cols, c->D, c->n, LP_TRANS, LP_NOTRANS, 1.0f, 1.0f));
    }
    return LP_OK;
}

static lp_status gat_forward(fgnn_conv *c, float *z, int64_t r0, int64_t r1, int save)
{
    if (c->cat) fill_cat(c, 0);
    LP_TRY(lp_gnn_layer_forward(c->layer, c->zfull, &c->gin, c->g, save));
    if (z != c->zfull + r0 * c->D) memcpy(z, c->zfull + r0 * c->D, (size_t)((r1 - r0) * c->D) * sizeof(float));
    return LP_OK;
}

lp_status fgnn_conv_forward(fgnn_conv *c, float *z, int64_t r0, int64_t r1, int save)
{
    if (!c || !c->layer || !z || r0 < 0 || r1 > c->n || r0 >= r1)
        return lp_error(LP_ERR_INVALID_ARG, "fgnn_conv_forward: bad rows [%lld, %lld)", (long long)r0, (long long)r1);
    if (c->kind == LP_GNN_GAT) return gat_forward(c, z, r0, r1, save);
    const lp_graph *g = c->g;
    int64_t m = r1 - r0, D = c->D;
    int wrote = 0;
    lp_status st = LP_OK;
    if (c->n_direct) {
        float *T = ws(c, 0);
        if (!T) return lp_error_context(LP_ERR_NOMEM, "%s forward", kname(c));
        st = direct_xw(c, T, c->W);
        if (st == LP_OK && c->kind == LP_GNN_GCN) {
            st = lp_spmm(z, g->indptr + r0, g->indices, NULL, g->gcn_dinv + r0, g->gcn_dinv, NULL, T, m, c->n, D, 0.0f);
            for (int64_t i = 0; st == LP_OK && i < m; i++) {
                float s = c->self[r0 + i];
                const float *t = T + (r0 + i) * D;
                float *zi = z + i * D;
                for (int64_t k = 0; k < D; k++) zi[k] += s * t[k];
            }
        } else if (st == LP_OK) {
            st = lp_spmm(z, g->indptr + r0, g->indices, NULL, g->deg_inv + r0, NULL, NULL, T, m, c->n, D, 0.0f);
        }
        if (st != LP_OK) return st;
        wrote = 1;
    }
    for (int k = 0; k < c->np; k++) {
        if (!c->agg[k] || c->mute[k]) continue;
        int64_t cols = c->p[k].cols;
        LP_TRY(lp_sgemm(z, 0, c->agg[k] + r0 * cols, 0, c->W + c->off[k] * D, 0, m, D, cols, LP_NOTRANS, LP_NOTRANS, 1.0f,
                        wrote ? 1.0f : 0.0f));
        wrote = 1;
    }
    if (!wrote) memset(z, 0, (size_t)(m * D) * sizeof(float));
    if (c->kind == LP_GNN_SAGE)   /* root term on every part with data */
        for (int k = 0; k < c->np; k++) {
            const fgnn_part *p = &c->p[k];
            const float *Wk = c->Wr + c->off[k] * D;
            if (c->mute[k]) continue;
            if (p->sparse)
                LP_TRY(lp_spmm(z, p->sparse->indptr + r0, p->sparse->indices, p->sparse->values, NULL, NULL, NULL, Wk, m,
                               p->cols, D, 1.0f));
            else if (p->dense)
                LP_TRY(lp_sgemm(z, 0, p->dense + r0 * p->cols, 0, Wk, 0, m, D, p->cols, LP_NOTRANS, LP_NOTRANS, 1.0f, 1.0f));
        }
    return lp_bias_forward(z, c->b, m, D);
}

/* dzf (n, D): dz in rows [r0, r1), zeros elsewhere (workspace slot 1) */
static float *pad_rows(fgnn_conv *c, const float *dz, int64_t r0, int64_t r1)
{
    float *f = ws(c, 1);
    if (!f) return NULL;
    memset(f, 0, (size_t)(r0 * c->D) * sizeof(float));
    memcpy(f + r0 * c->D, dz, (size_t)((r1 - r0) * c->D) * sizeof(float));
    memset(f + r1 * c->D, 0, (size_t)((c->n - r1) * c->D) * sizeof(float));
    return f;
}

lp_status fgnn_conv_backward(fgnn_conv *c, const float *dz, int64_t r0, int64_t r1)
{
    if (!c || !c->layer || !dz || r0 < 0 || r1 > c->n || r0 >= r1)
        return lp_error(LP_ERR_INVALID_ARG, "fgnn_conv_backward: bad rows [%lld, %lld)", (long long)r0, (long long)r1);
    const lp_graph *g = c->g;
    int64_t m = r1 - r0, D = c->D, n = c->n;
    if (c->kind == LP_GNN_GAT) {
        float *dzf = pad_rows(c, dz, r0, r1);
        if (!dzf) return lp_error_context(LP_ERR_NOMEM, "GAT backward");
        return lp_gnn_layer_backward(c->layer, NULL, dzf);
    }
    LP_TRY(lp_bias_backward(c->db, dz, m, D));
    for (int k = 0; k < c->np; k++) {
        if (!c->agg[k]) continue;
        int64_t cols = c->p[k].cols;
        LP_TRY(lp_sgemm(c->dW + c->off[k] * D, 0, c->agg[k] + r0 * cols, 0, dz, 0, cols, D, m, LP_TRANS, LP_NOTRANS, 1.0f, 1.0f));
    }
    int sparse_root = 0;
    if (c->kind == LP_GNN_SAGE)
        for (int k = 0; k < c->np; k++) {
            const fgnn_part *p = &c->p[k];
            if (p->sparse) sparse_root = 1;
            else if (p->dense)
                LP_TRY(lp_sgemm(c->dWr + c->off[k] * D, 0, p->dense + r0 * p->cols, 0, dz, 0, p->cols, D, m, LP_TRANS,
                                LP_NOTRANS, 1.0f, 1.0f));
        }
    if (!c->n_direct && !sparse_root) return LP_OK;
    float *dzf = pad_rows(c, dz, r0, r1), *G = c->n_direct ? ws(c, 2) : NULL;
    lp_status st = !dzf || (c->n_direct && !G) ? lp_error_context(LP_ERR_NOMEM, "%s backward", kname(c)) : LP_OK;
    if (st == LP_OK && sparse_root)
        for (int k = 0; k < c->np && st == LP_OK; k++) {
            const fgnn_part *p = &c->p[k];
            if (p->sparse)
                st = lp_spmm(c->dWr + c->off[k] * D, p->sparse->t_indptr, p->sparse->t_indices, p->sparse->t_values, NULL,
                             NULL, NULL, dzf, p->cols, n, D, 1.0f);
        }
    if (st == LP_OK && c->n_direct) {
        if (c->kind == LP_GNN_GCN)   /* G = Ahat^T dz: transpose structure, same symmetric weights, self loop */
            st = lp_spmm(G, g->t_indptr, g->t_indices, NULL, g->gcn_dinv, g->gcn_dinv, c->self, dzf, n, n, D, 0.0f);
        else                         /* G = mean^T dz */
            st = lp_spmm(G, g->t_indptr, g->t_indices, NULL, NULL, g->deg_inv, NULL, dzf, n, n, D, 0.0f);
        if (st == LP_OK) st = direct_xtg(c, c->dW, G);
    }
    return st;
}
