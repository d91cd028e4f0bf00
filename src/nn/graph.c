/* Graphs in CSR form (both directions for undirected graphs) and sparse matrices. */
#include "leanprop/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

/* ---- graph ---- */

void lp_graph_free(lp_graph *g)
{
    if (!g) return;
    if (g->t_indptr != g->indptr) lp_free(g->t_indptr);
    if (g->t_indices != g->indices) lp_free(g->t_indices);
    lp_free(g->indptr);
    lp_free(g->indices);
    lp_free(g->deg_inv);
    lp_free(g->gcn_dinv);
    lp_free(g->gcn_self);
    free(g);
}

size_t lp_graph_bytes(const lp_graph *g)
{
    if (!g) return 0;
    size_t b = lp_alloc_size(g->indptr) + lp_alloc_size(g->indices) + lp_alloc_size(g->deg_inv) +
               lp_alloc_size(g->gcn_dinv) + lp_alloc_size(g->gcn_self);
    if (g->t_indptr != g->indptr) b += lp_alloc_size(g->t_indptr);
    if (g->t_indices != g->indices) b += lp_alloc_size(g->t_indices);
    return b;
}

static int row_contains(const int64_t *indptr, const int32_t *indices, int64_t row, int64_t v)
{
    int64_t lo = indptr[row], hi = indptr[row + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (indices[mid] < v) lo = mid + 1;
        else if (indices[mid] > v) hi = mid;
        else return 1;
    }
    return 0;
}

int lp_graph_has_edge(const lp_graph *g, int64_t u, int64_t v)
{
    if (!g || u < 0 || v < 0 || u >= g->n_nodes || v >= g->n_nodes) return 0;
    return row_contains(g->indptr, g->indices, v, u);
}

int lp_graph_is_undirected(const lp_graph *g)
{
    if (!g) return 0;
    for (int64_t i = 0; i < g->n_nodes; i++)
        for (int64_t e = g->indptr[i]; e < g->indptr[i + 1]; e++)
            if (!row_contains(g->indptr, g->indices, g->indices[e], i)) return 0;
    return 1;
}

/* Stable counting sort of (key, val) pairs by key in [0, n); out arrays sized m. */
static lp_status bucket_by(int64_t *out_key, int64_t *out_val, const int64_t *key, const int64_t *val, int64_t m,
                           int64_t n)
{
    int64_t *cnt = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n + 1, sizeof(int64_t));
    if (!cnt) return LP_ERR_NOMEM;
    for (int64_t k = 0; k < m; k++) cnt[key[k] + 1]++;
    for (int64_t i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    for (int64_t k = 0; k < m; k++) {
        int64_t p = cnt[key[k]]++;
        out_key[p] = key[k];
        out_val[p] = val[k];
    }
    lp_free(cnt);
    return LP_OK;
}

/* CSR of the transpose of (indptr, indices) over n nodes. */
static lp_status csr_transpose_struct(int64_t **t_indptr, int32_t **t_indices, const int64_t *indptr,
                                      const int32_t *indices, int64_t n)
{
    int64_t m = indptr[n];
    int64_t *tp = lp_alloc_array(LP_MEM_DATA, (size_t)n + 1, sizeof(int64_t));
    int32_t *ti = lp_alloc_array(LP_MEM_DATA, m ? (size_t)m : 1, sizeof(int32_t));
    if (!tp || !ti) { lp_free(tp); lp_free(ti); return LP_ERR_NOMEM; }
    for (int64_t e = 0; e < m; e++) tp[indices[e] + 1]++;
    for (int64_t i = 0; i < n; i++) tp[i + 1] += tp[i];
    int64_t *fill = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n + 1, sizeof(int64_t));
    if (!fill) { lp_free(tp); lp_free(ti); return LP_ERR_NOMEM; }
    memcpy(fill, tp, ((size_t)n + 1) * sizeof(int64_t));
    for (int64_t r = 0; r < n; r++) /* rows in order: each transposed row comes out ascending */
        for (int64_t e = indptr[r]; e < indptr[r + 1]; e++) ti[fill[indices[e]]++] = (int32_t)r;
    lp_free(fill);
    *t_indptr = tp;
    *t_indices = ti;
    return LP_OK;
}

static lp_status finish_graph(lp_graph *g)
{
    int64_t n = g->n_nodes;
    g->deg_inv = lp_alloc_array(LP_MEM_DATA, (size_t)n ? (size_t)n : 1, sizeof(float));
    g->gcn_dinv = lp_alloc_array(LP_MEM_DATA, (size_t)n ? (size_t)n : 1, sizeof(float));
    g->gcn_self = lp_alloc_array(LP_MEM_DATA, (size_t)n ? (size_t)n : 1, sizeof(float));
    if (!g->deg_inv || !g->gcn_dinv || !g->gcn_self) return LP_ERR_NOMEM;
    g->n_self_loops = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t d = g->indptr[i + 1] - g->indptr[i];
        g->deg_inv[i] = d > 0 ? 1.0f / (float)d : 0.0f;
        g->gcn_dinv[i] = (float)(1.0 / sqrt((double)d + 1.0));
        g->gcn_self[i] = (float)(1.0 / ((double)d + 1.0));
        g->n_self_loops += row_contains(g->indptr, g->indices, i, i);
    }
    g->symmetric = lp_graph_is_undirected(g);
    if (g->symmetric) {
        g->t_indptr = g->indptr;
        g->t_indices = g->indices;
        return LP_OK;
    }
    return csr_transpose_struct(&g->t_indptr, &g->t_indices, g->indptr, g->indices, n);
}

lp_status lp_graph_from_edges(lp_graph **out, int64_t n_nodes, const int64_t *src, const int64_t *dst,
                              int64_t n_edges, unsigned flags, const char *what)
{
    if (!out || n_nodes < 0 || n_edges < 0 || (n_edges > 0 && (!src || !dst)))
        return lp_error(LP_ERR_INVALID_ARG, "lp_graph_from_edges: bad arguments");
    *out = NULL;
    if (!what) what = "graph";
    if (n_nodes >= INT32_MAX)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: %lld nodes (at most %d supported)", what, (long long)n_nodes, INT32_MAX - 1);
    for (int64_t k = 0; k < n_edges; k++) {
        if (src[k] < 0 || src[k] >= n_nodes || dst[k] < 0 || dst[k] >= n_nodes)
            return lp_error(LP_ERR_FORMAT, "%s: edge %lld (%lld -> %lld) has a node outside [0, %lld)", what,
                            (long long)k, (long long)src[k], (long long)dst[k], (long long)n_nodes);
    }
    int sym = (flags & LP_GRAPH_SYMMETRIZE) != 0, drop = (flags & LP_GRAPH_DROP_SELF_LOOPS) != 0;
    if (n_edges > INT64_MAX / 4) return lp_error(LP_ERR_INVALID_ARG, "%s: too many edges", what);
    int64_t cap = sym ? 2 * n_edges : n_edges;
    size_t cap_sz = cap ? (size_t)cap : 1;
    int64_t *tgt = lp_alloc_array(LP_MEM_SCRATCH, cap_sz, sizeof(int64_t));
    int64_t *srcs = lp_alloc_array(LP_MEM_SCRATCH, cap_sz, sizeof(int64_t));
    int64_t *k2 = lp_alloc_array(LP_MEM_SCRATCH, cap_sz, sizeof(int64_t));
    int64_t *v2 = lp_alloc_array(LP_MEM_SCRATCH, cap_sz, sizeof(int64_t));
    lp_graph *g = calloc(1, sizeof *g);
    lp_status st = LP_OK;
    if (!tgt || !srcs || !k2 || !v2 || !g) { st = lp_error(LP_ERR_NOMEM, "%s: out of memory building the graph", what); goto done; }
    int64_t m = 0;
    for (int64_t k = 0; k < n_edges; k++) {
        if (drop && src[k] == dst[k]) continue;
        tgt[m] = dst[k]; srcs[m] = src[k]; m++;
        if (sym && src[k] != dst[k]) { tgt[m] = src[k]; srcs[m] = dst[k]; m++; }
    }
    /* sort by source, then stably by target: rows come out with ascending sources */
    if ((st = bucket_by(k2, v2, srcs, tgt, m, n_nodes)) != LP_OK) goto done;    /* k2 = src, v2 = tgt */
    if ((st = bucket_by(tgt, srcs, v2, k2, m, n_nodes)) != LP_OK) goto done;    /* tgt sorted, srcs ascending per tgt */
    g->n_nodes = n_nodes;
    g->indptr = lp_alloc_array(LP_MEM_DATA, (size_t)n_nodes + 1, sizeof(int64_t));
    if (!g->indptr) { st = LP_ERR_NOMEM; goto done; }
    int64_t w = 0;
    for (int64_t k = 0; k < m; k++) { /* dedupe (tgt, src) runs in place */
        if (k > 0 && tgt[k] == tgt[k - 1] && srcs[k] == srcs[k - 1]) continue;
        tgt[w] = tgt[k]; srcs[w] = srcs[k]; w++;
    }
    g->n_edges = w;
    g->indices = lp_alloc_array(LP_MEM_DATA, w ? (size_t)w : 1, sizeof(int32_t));
    if (!g->indices) { st = LP_ERR_NOMEM; goto done; }
    for (int64_t k = 0; k < w; k++) { g->indices[k] = (int32_t)srcs[k]; g->indptr[tgt[k] + 1]++; }
    for (int64_t i = 0; i < n_nodes; i++) g->indptr[i + 1] += g->indptr[i];
    st = finish_graph(g);
done:
    lp_free(tgt); lp_free(srcs); lp_free(k2); lp_free(v2);
    if (st != LP_OK) {
        lp_graph_free(g);
        if (st == LP_ERR_NOMEM) lp_error_context(st, "%s: building the graph", what);
        return st;
    }
    *out = g;
    return LP_OK;
}

/* indptr (rows + 1) from 0, non-decreasing, ending at nnz; indices in [0, cols). */
lp_status lp_csr_check(int64_t rows, int64_t cols, const int64_t *indptr, const int64_t *indices, int64_t nnz,
                       const char *what)
{
    if (!indptr || rows < 0 || nnz < 0 || (nnz > 0 && !indices)) return lp_error(LP_ERR_INVALID_ARG, "lp_csr_check: bad arguments");
    if (!what) what = "matrix";
    if (indptr[0] != 0) return lp_error(LP_ERR_FORMAT, "%s_indptr[0] is %lld, must be 0", what, (long long)indptr[0]);
    for (int64_t r = 0; r < rows; r++)
        if (indptr[r + 1] < indptr[r])
            return lp_error(LP_ERR_FORMAT, "%s_indptr is not monotone: entry %lld (%lld) < entry %lld (%lld)", what,
                            (long long)(r + 1), (long long)indptr[r + 1], (long long)r, (long long)indptr[r]);
    if (indptr[rows] != nnz)
        return lp_error(LP_ERR_FORMAT, "%s_indptr ends at %lld but %s_indices has %lld entries", what,
                        (long long)indptr[rows], what, (long long)nnz);
    for (int64_t e = 0; e < nnz; e++)
        if (indices[e] < 0 || indices[e] >= cols)
            return lp_error(LP_ERR_FORMAT, "%s_indices[%lld] = %lld is out of range [0, %lld)", what, (long long)e,
                            (long long)indices[e], (long long)cols);
    return LP_OK;
}

lp_status lp_graph_from_csr(lp_graph **out, int64_t n_nodes, const int64_t *indptr, const int64_t *indices,
                            int64_t nnz, unsigned flags, const char *what)
{
    if (!out || !indptr || n_nodes < 0 || nnz < 0 || (nnz > 0 && !indices))
        return lp_error(LP_ERR_INVALID_ARG, "lp_graph_from_csr: bad arguments");
    if (!what) what = "adj";
    LP_TRY(lp_csr_check(n_nodes, n_nodes, indptr, indices, nnz, what));
    int64_t *src = lp_alloc_array(LP_MEM_SCRATCH, nnz ? (size_t)nnz : 1, sizeof(int64_t));
    if (!src) return lp_error_context(LP_ERR_NOMEM, "%s", what);
    for (int64_t r = 0; r < n_nodes; r++)
        for (int64_t e = indptr[r]; e < indptr[r + 1]; e++) src[e] = r;
    lp_status st = lp_graph_from_edges(out, n_nodes, src, indices, nnz, flags, what);
    lp_free(src);
    return st;
}

lp_status lp_graph_undirected_pairs(const lp_graph *g, int64_t **pairs, int64_t *m)
{
    if (!g || !pairs || !m) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_undirected_pairs: NULL argument");
    *pairs = NULL;
    *m = 0;
    int64_t cnt = 0;
    /* u < v pairs: from row v (sources u < v) and, for one-way edges, from the transpose */
    for (int64_t v = 0; v < g->n_nodes; v++) {
        for (int64_t e = g->indptr[v]; e < g->indptr[v + 1]; e++)
            if (g->indices[e] < v) cnt++;
        if (!g->symmetric)
            for (int64_t e = g->t_indptr[v]; e < g->t_indptr[v + 1]; e++)
                if (g->t_indices[e] < v && !row_contains(g->indptr, g->indices, v, g->t_indices[e])) cnt++;
    }
    int64_t *p = lp_alloc_array(LP_MEM_DATA, cnt ? 2 * (size_t)cnt : 2, sizeof(int64_t));
    if (!p) return LP_ERR_NOMEM;
    int64_t k = 0;
    for (int64_t v = 0; v < g->n_nodes; v++) {
        for (int64_t e = g->indptr[v]; e < g->indptr[v + 1]; e++)
            if (g->indices[e] < v) { p[2 * k] = g->indices[e]; p[2 * k + 1] = v; k++; }
        if (!g->symmetric)
            for (int64_t e = g->t_indptr[v]; e < g->t_indptr[v + 1]; e++)
                if (g->t_indices[e] < v && !row_contains(g->indptr, g->indices, v, g->t_indices[e])) {
                    p[2 * k] = g->t_indices[e]; p[2 * k + 1] = v; k++;
                }
    }
    *pairs = p;
    *m = cnt;
    return LP_OK;
}

/* ---- sparse matrices ---- */

void lp_csr_free(lp_csr *m)
{
    if (!m) return;
    lp_free(m->indptr); lp_free(m->indices); lp_free(m->values);
    lp_free(m->t_indptr); lp_free(m->t_indices); lp_free(m->t_values);
    free(m);
}

size_t lp_csr_bytes(const lp_csr *m)
{
    if (!m) return 0;
    return lp_alloc_size(m->indptr) + lp_alloc_size(m->indices) + lp_alloc_size(m->values) +
           lp_alloc_size(m->t_indptr) + lp_alloc_size(m->t_indices) + lp_alloc_size(m->t_values);
}

typedef struct { int32_t col; float val; } csr_entry;

static int cmp_entry(const void *a, const void *b)
{
    int32_t x = ((const csr_entry *)a)->col, y = ((const csr_entry *)b)->col;
    return (x > y) - (x < y);
}

lp_status lp_csr_from_arrays(lp_csr **out, int64_t rows, int64_t cols, const int64_t *indptr,
                             const int64_t *indices, const float *values, int64_t nnz, const char *what)
{
    if (!out || !indptr || rows < 0 || cols < 0 || nnz < 0 || (nnz > 0 && (!indices || !values)))
        return lp_error(LP_ERR_INVALID_ARG, "lp_csr_from_arrays: bad arguments");
    *out = NULL;
    if (!what) what = "matrix";
    if (cols >= INT32_MAX) return lp_error(LP_ERR_UNSUPPORTED, "%s: %lld columns (too many)", what, (long long)cols);
    LP_TRY(lp_csr_check(rows, cols, indptr, indices, nnz, what));
    lp_csr *m = calloc(1, sizeof *m);
    csr_entry *tmp = NULL;
    if (!m) return lp_error(LP_ERR_NOMEM, "%s: out of memory", what);
    m->rows = rows;
    m->cols = cols;
    m->indptr = lp_alloc_array(LP_MEM_DATA, (size_t)rows + 1, sizeof(int64_t));
    m->indices = lp_alloc_array(LP_MEM_DATA, nnz ? (size_t)nnz : 1, sizeof(int32_t));
    m->values = lp_alloc_array(LP_MEM_DATA, nnz ? (size_t)nnz : 1, sizeof(float));
    int64_t maxrow = 0;
    for (int64_t r = 0; r < rows; r++) maxrow = indptr[r + 1] - indptr[r] > maxrow ? indptr[r + 1] - indptr[r] : maxrow;
    tmp = lp_alloc_array(LP_MEM_SCRATCH, maxrow ? (size_t)maxrow : 1, sizeof(csr_entry));
    if (!m->indptr || !m->indices || !m->values || !tmp) {
        lp_free(tmp);
        lp_csr_free(m);
        return lp_error_context(LP_ERR_NOMEM, "%s", what);
    }
    int64_t w = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t a = indptr[r], len = indptr[r + 1] - a;
        int sorted = 1;
        for (int64_t k = 0; k < len; k++) {
            tmp[k].col = (int32_t)indices[a + k];
            tmp[k].val = values[a + k];
            if (k > 0 && tmp[k].col <= tmp[k - 1].col) sorted = 0;
        }
        if (!sorted) qsort(tmp, (size_t)len, sizeof *tmp, cmp_entry);
        for (int64_t k = 0; k < len; k++) {
            if (w > m->indptr[r] && m->indices[w - 1] == tmp[k].col) { m->values[w - 1] += tmp[k].val; continue; }
            m->indices[w] = tmp[k].col;
            m->values[w] = tmp[k].val;
            w++;
        }
        m->indptr[r + 1] = w;
    }
    lp_free(tmp);
    m->nnz = w;
    *out = m;
    return LP_OK;
}

lp_status lp_csr_build_transpose(lp_csr *m)
{
    if (!m) return lp_error(LP_ERR_INVALID_ARG, "lp_csr_build_transpose: NULL");
    if (m->t_indptr) return LP_OK;
    int64_t *tp = lp_alloc_array(LP_MEM_DATA, (size_t)m->cols + 1, sizeof(int64_t));
    int32_t *ti = lp_alloc_array(LP_MEM_DATA, m->nnz ? (size_t)m->nnz : 1, sizeof(int32_t));
    float *tv = lp_alloc_array(LP_MEM_DATA, m->nnz ? (size_t)m->nnz : 1, sizeof(float));
    int64_t *fill = lp_alloc_array(LP_MEM_SCRATCH, (size_t)m->cols + 1, sizeof(int64_t));
    if (!tp || !ti || !tv || !fill) {
        lp_free(tp); lp_free(ti); lp_free(tv); lp_free(fill);
        return lp_error_context(LP_ERR_NOMEM, "transposing a sparse matrix");
    }
    for (int64_t e = 0; e < m->nnz; e++) tp[m->indices[e] + 1]++;
    for (int64_t c = 0; c < m->cols; c++) tp[c + 1] += tp[c];
    memcpy(fill, tp, ((size_t)m->cols + 1) * sizeof(int64_t));
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t e = m->indptr[r]; e < m->indptr[r + 1]; e++) {
            int64_t p = fill[m->indices[e]]++;
            ti[p] = (int32_t)r;
            tv[p] = m->values[e];
        }
    lp_free(fill);
    m->t_indptr = tp;
    m->t_indices = ti;
    m->t_values = tv;
    return LP_OK;
}

lp_status lp_csr_to_dense(const lp_csr *m, float **out)
{
    if (!m || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_csr_to_dense: NULL");
    float *d = lp_alloc_array(LP_MEM_DATA, m->rows * m->cols > 0 ? (size_t)(m->rows * m->cols) : 1, sizeof(float));
    if (!d) return lp_error_context(LP_ERR_NOMEM, "densifying a %lldx%lld matrix", (long long)m->rows, (long long)m->cols);
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t e = m->indptr[r]; e < m->indptr[r + 1]; e++) d[r * m->cols + m->indices[e]] = m->values[e];
    *out = d;
    return LP_OK;
}
