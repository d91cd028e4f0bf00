/* Node layouts, virtual-node graph augmentation and normalised layer-1 inputs
 * for the forward-learning trainers.
 *
 * Virtual nodes (spec procedures 3, 4, 6): C extra nodes, one per class, whose
 * features are fixed N(0,1) vectors of width F; a linked real node i gets the
 * edges i -> VN and VN -> i, so GCN's normalisation counts them in both
 * degrees. Nodes are renumbered so each set a method touches is a block of
 * rows (fgnn_internal.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/rng.h"
#include "train/fgnn_internal.h"

uint64_t fgnn_seed(uint64_t seed, uint64_t tag, uint64_t index)
{
    uint64_t z = seed ^ (tag * 0x9E3779B97F4A7C15ULL) ^ ((index + 1) * 0xD1B54A32D192ED03ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void fgnn_layout_free(fgnn_layout *L)
{
    if (!L) return;
    lp_free(L->order);
    lp_free(L->rank);
    lp_free(L->label);
    memset(L, 0, sizeof *L);
}

static lp_status mark_set(unsigned char *mark, const int64_t *ids, int64_t n, unsigned char bit, const lp_graph_dataset *ds,
                          const char *what)
{
    for (int64_t k = 0; k < n; k++) {
        int64_t v = ids[k];
        if (v < 0 || v >= ds->n_nodes)
            return lp_error(LP_ERR_INVALID_ARG, "%s split: node %lld outside the graph (%lld nodes)", what, (long long)v,
                            (long long)ds->n_nodes);
        if (ds->labels[v] < 0 || ds->labels[v] >= ds->n_classes)
            return lp_error(LP_ERR_INVALID_ARG, "%s split: node %lld has no label", what, (long long)v);
        if (mark[v]) return lp_error(LP_ERR_INVALID_ARG, "%s split: node %lld is in two sets", what, (long long)v);
        mark[v] = bit;
    }
    return LP_OK;
}

lp_status fgnn_layout_node(fgnn_layout *L, const lp_graph_dataset *ds, const lp_node_split *sp, int with_vn,
                           const char *method)
{
    memset(L, 0, sizeof *L);
    if (!ds->labels || ds->n_classes < 2)
        return lp_error(LP_ERR_FORMAT, "%s: method %s classifies nodes and needs labels (at least 2 classes); the data set has %s",
                        ds->path ? ds->path : "graph", method, ds->labels ? "one class" : "none");
    if (!sp || sp->n_train < 1 || sp->n_val < 1 || sp->n_test < 1)
        return lp_error(LP_ERR_INVALID_ARG, "method %s: the node split has an empty train, val or test set", method);
    int64_t N = ds->n_nodes, C = ds->n_classes;
    L->n_real = N;
    L->C = C;
    L->n_vn = with_vn ? C : 0;
    L->n = N + L->n_vn;
    L->n_train = sp->n_train;
    L->n_val = sp->n_val;
    L->n_test = sp->n_test;
    L->n_rest = N - sp->n_train - sp->n_val - sp->n_test;
    L->off_vn = L->n_train;
    L->off_val = L->off_vn + L->n_vn;
    L->off_test = L->off_val + L->n_val;
    L->off_rest = L->off_test + L->n_test;
    unsigned char *mark = lp_alloc(LP_MEM_SCRATCH, (size_t)N);
    L->order = lp_alloc_array(LP_MEM_DATA, (size_t)L->n, sizeof(int64_t));
    L->rank = lp_alloc_array(LP_MEM_DATA, (size_t)L->n, sizeof(int64_t));
    L->label = lp_alloc_array(LP_MEM_DATA, (size_t)L->n, sizeof(int32_t));
    lp_status st = LP_OK;
    if (!mark || !L->order || !L->rank || !L->label) { st = lp_error_context(LP_ERR_NOMEM, "node layout"); goto done; }
    if ((st = mark_set(mark, sp->train, sp->n_train, 1, ds, "train")) != LP_OK ||
        (st = mark_set(mark, sp->val, sp->n_val, 2, ds, "val")) != LP_OK ||
        (st = mark_set(mark, sp->test, sp->n_test, 3, ds, "test")) != LP_OK)
        goto done;
    int64_t w = 0;
    for (int64_t k = 0; k < sp->n_train; k++) L->order[w++] = sp->train[k];
    for (int64_t c = 0; c < L->n_vn; c++) L->order[w++] = N + c;
    for (int64_t k = 0; k < sp->n_val; k++) L->order[w++] = sp->val[k];
    for (int64_t k = 0; k < sp->n_test; k++) L->order[w++] = sp->test[k];
    for (int64_t i = 0; i < N; i++)
        if (!mark[i]) L->order[w++] = i;
    for (int64_t r = 0; r < L->n; r++) {
        int64_t o = L->order[r];
        L->rank[o] = r;
        L->label[r] = o >= N ? (int32_t)(o - N) : ds->labels[o];
    }
done:
    lp_free(mark);
    if (st != LP_OK) fgnn_layout_free(L);
    return st;
}

lp_status lp_fgnn_vgraph(lp_graph **out, const lp_graph *g, int64_t n_classes, const int32_t *link, const int64_t *rank)
{
    if (!out || !g || n_classes < 0 || (n_classes > 0 && !link))
        return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_vgraph: bad arguments");
    *out = NULL;
    int64_t N = g->n_nodes, total = N + n_classes, nv = 0;
    for (int64_t i = 0; n_classes > 0 && i < N; i++) {
        if (link[i] >= n_classes)
            return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_vgraph: node %lld links to class %d of %lld", (long long)i,
                            (int)link[i], (long long)n_classes);
        if (link[i] >= 0) nv++;
    }
    int64_t m = g->n_edges + 2 * nv;
    int64_t *src = lp_alloc_array(LP_MEM_SCRATCH, m ? (size_t)m : 1, sizeof(int64_t));
    int64_t *dst = lp_alloc_array(LP_MEM_SCRATCH, m ? (size_t)m : 1, sizeof(int64_t));
    if (!src || !dst) { lp_free(src); lp_free(dst); return lp_error_context(LP_ERR_NOMEM, "virtual-node graph"); }
#define RK(v) (rank ? rank[v] : (v))
    int64_t w = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t e = g->indptr[i]; e < g->indptr[i + 1]; e++) { src[w] = RK(g->indices[e]); dst[w] = RK(i); w++; }
    for (int64_t i = 0; n_classes > 0 && i < N; i++)
        if (link[i] >= 0) {
            int64_t v = N + link[i];
            src[w] = RK(i); dst[w] = RK(v); w++;
            src[w] = RK(v); dst[w] = RK(i); w++;
        }
#undef RK
    lp_status st = lp_graph_from_edges(out, total, src, dst, w, LP_GRAPH_DROP_SELF_LOOPS, "virtual-node graph");
    lp_free(src);
    lp_free(dst);
    return st;
}

lp_status fgnn_layout_graph(lp_graph **out, const fgnn_layout *L, const lp_graph *g, const int32_t *link)
{
    int32_t *lo = NULL;
    if (L->n_vn > 0) {
        lo = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->n_real, sizeof(int32_t));
        if (!lo) return lp_error_context(LP_ERR_NOMEM, "virtual-node links");
        for (int64_t i = 0; i < L->n_real; i++) lo[i] = -1;
        for (int64_t r = 0; link && r < L->n; r++)
            if (L->order[r] < L->n_real) lo[L->order[r]] = link[r];
    }
    lp_status st = lp_fgnn_vgraph(out, g, L->n_vn, lo, L->rank);
    lp_free(lo);
    return st;
}

/* ---- inputs ---- */

float *fgnn_act(int64_t n) { return lp_alloc_array(LP_MEM_ACTIVATIONS, n > 0 ? (size_t)n : 1, sizeof(float)); }
float *fgnn_scratch(int64_t n) { return lp_alloc_array(LP_MEM_SCRATCH, n > 0 ? (size_t)n : 1, sizeof(float)); }

lp_csr *fgnn_csr_new(int64_t rows, int64_t cols, int64_t nnz)
{
    lp_csr *m = calloc(1, sizeof *m);
    if (!m) { lp_error(LP_ERR_NOMEM, "out of memory"); return NULL; }
    m->rows = rows;
    m->cols = cols;
    m->nnz = nnz;
    m->indptr = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)rows + 1, sizeof(int64_t));
    m->indices = lp_alloc_array(LP_MEM_ACTIVATIONS, nnz ? (size_t)nnz : 1, sizeof(int32_t));
    m->values = lp_alloc_array(LP_MEM_ACTIVATIONS, nnz ? (size_t)nnz : 1, sizeof(float));
    if (!m->indptr || !m->indices || !m->values) { lp_csr_free(m); lp_error_context(LP_ERR_NOMEM, "sparse layer input"); return NULL; }
    return m;
}

lp_status fgnn_csr_finish(lp_csr *m)
{
    LP_TRY(lp_csr_build_transpose(m));
    lp_alloc_retag(m->t_indptr, LP_MEM_ACTIVATIONS);
    lp_alloc_retag(m->t_indices, LP_MEM_ACTIVATIONS);
    lp_alloc_retag(m->t_values, LP_MEM_ACTIVATIONS);
    return LP_OK;
}

float *fgnn_vn_features(int64_t C, int64_t F, uint64_t seed)
{
    float *v = fgnn_act(C * F);
    if (!v) return NULL;
    lp_rng r;
    lp_rng_seed(&r, fgnn_seed(seed, 0x564eULL, 0));
    lp_rng_fill_normal(&r, v, (size_t)(C * F), 0.0f, 1.0f);
    return v;
}

lp_status fgnn_features(lp_csr **sp, float **dn, const lp_graph_dataset *ds, const fgnn_layout *L, const float *vn_feats,
                        const float *extra_sq, float *inv_norm)
{
    *sp = NULL;
    *dn = NULL;
    int64_t N = ds->n_nodes, F = ds->n_features, n = L ? L->n : N, n_vn = L ? L->n_vn : 0;
    if (n_vn > 0 && !vn_feats) return lp_error(LP_ERR_INVALID_ARG, "fgnn_features: virtual-node features missing");
    const lp_csr *X = ds->x_sparse;
#define ORIG(r) (L ? L->order[r] : (r))
    if (X) {
        int64_t nnz = 0;
        for (int64_t r = 0; r < n; r++) {
            int64_t o = ORIG(r);
            nnz += o < N ? X->indptr[o + 1] - X->indptr[o] : F;
        }
        lp_csr *m = fgnn_csr_new(n, F, nnz);
        if (!m) return LP_ERR_NOMEM;
        int64_t w = 0;
        for (int64_t r = 0; r < n; r++) {
            int64_t o = ORIG(r), a = w;
            if (o < N) {
                for (int64_t e = X->indptr[o]; e < X->indptr[o + 1]; e++, w++) { m->indices[w] = X->indices[e]; m->values[w] = X->values[e]; }
            } else {
                const float *v = vn_feats + (o - N) * F;
                for (int64_t f = 0; f < F; f++, w++) { m->indices[w] = (int32_t)f; m->values[w] = v[f]; }
            }
            double ss = extra_sq ? extra_sq[r] : 0.0;
            for (int64_t e = a; e < w; e++) ss += (double)m->values[e] * m->values[e];
            float inv = 1.0f / ((float)sqrt(ss) + 1e-8f);
            for (int64_t e = a; e < w; e++) m->values[e] *= inv;
            if (inv_norm) inv_norm[r] = inv;
            m->indptr[r + 1] = w;
        }
        lp_status st = fgnn_csr_finish(m);
        if (st != LP_OK) { lp_csr_free(m); return st; }
        *sp = m;
        return LP_OK;
    }
    if (!ds->x_dense) return lp_error(LP_ERR_INVALID_ARG, "%s: no node features", ds->path ? ds->path : "graph");
    float *d = fgnn_act(n * F);
    if (!d) return lp_error_context(LP_ERR_NOMEM, "layer-1 input (%lld x %lld)", (long long)n, (long long)F);
    for (int64_t r = 0; r < n; r++) {
        int64_t o = ORIG(r);
        const float *src = o < N ? ds->x_dense + o * F : vn_feats + (o - N) * F;
        float *row = d + r * F;
        double ss = extra_sq ? extra_sq[r] : 0.0;
        for (int64_t f = 0; f < F; f++) ss += (double)src[f] * src[f];
        float inv = 1.0f / ((float)sqrt(ss) + 1e-8f);
        for (int64_t f = 0; f < F; f++) row[f] = src[f] * inv;
        if (inv_norm) inv_norm[r] = inv;
    }
#undef ORIG
    *dn = d;
    return LP_OK;
}
