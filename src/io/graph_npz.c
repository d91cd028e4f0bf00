/* Graph data sets in the gnn-benchmark / PyG CitationFull .npz layout:
 * adj_data, adj_indices, adj_indptr, adj_shape (scipy CSR adjacency),
 * attr_data, attr_indices, attr_indptr, attr_shape (CSR features) or
 * attr_matrix (dense), labels (N,). Other members (node_names, class_names,
 * pickled object arrays) are never read. */
#include "leanprop/graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/npz.h"

static lp_status need(const lp_npz *z, const char *name)
{
    if (lp_npz_find(z, name) < 0) return lp_error(LP_ERR_FORMAT, "%s: array '%s' is missing", lp_npz_path(z), name);
    return LP_OK;
}

static lp_status check_1d(const lp_npz *z, const lp_npy_header *h, const char *name, int64_t expect)
{
    if (h->ndim != 1 || (expect >= 0 && h->shape[0] != expect))
        return lp_error(LP_ERR_FORMAT, "%s: '%s' has shape (%s%lld%s), expected (%lld,)", lp_npz_path(z), name,
                        h->ndim ? "" : "scalar", h->ndim ? (long long)h->shape[0] : 0LL, h->ndim > 1 ? ", ..." : "",
                        (long long)expect);
    return LP_OK;
}

/* "<prefix>_shape" as (rows, cols). */
static lp_status read_shape(const lp_npz *z, const char *prefix, int64_t *rows, int64_t *cols)
{
    char name[64];
    snprintf(name, sizeof name, "%s_shape", prefix);
    LP_TRY(need(z, name));
    int64_t *s;
    lp_npy_header h;
    LP_TRY(lp_npz_load_i64(z, name, LP_MEM_SCRATCH, &s, &h));
    lp_status st = LP_OK;
    if (h.numel != 2 || s[0] < 0 || s[1] < 0)
        st = lp_error(LP_ERR_FORMAT, "%s: '%s' must hold two non-negative sizes", lp_npz_path(z), name);
    else { *rows = s[0]; *cols = s[1]; }
    lp_free(s);
    return st;
}

typedef struct {
    int64_t *indptr, *indices;
    float *data;
    int64_t nnz;
} raw_csr;

static void raw_free(raw_csr *r)
{
    lp_free(r->indptr); lp_free(r->indices); lp_free(r->data);
    memset(r, 0, sizeof *r);
}

/* prefix_indptr (rows+1), prefix_indices (nnz), prefix_data (nnz, optional when !need_data). */
static lp_status read_csr(const lp_npz *z, const char *prefix, int64_t rows, int need_data, raw_csr *r)
{
    char n_ptr[64], n_idx[64], n_dat[64];
    snprintf(n_ptr, sizeof n_ptr, "%s_indptr", prefix);
    snprintf(n_idx, sizeof n_idx, "%s_indices", prefix);
    snprintf(n_dat, sizeof n_dat, "%s_data", prefix);
    memset(r, 0, sizeof *r);
    LP_TRY(need(z, n_ptr));
    LP_TRY(need(z, n_idx));
    if (need_data) LP_TRY(need(z, n_dat));
    lp_npy_header h;
    lp_status st;
    if ((st = lp_npz_load_i64(z, n_ptr, LP_MEM_SCRATCH, &r->indptr, &h)) != LP_OK) goto fail;
    if ((st = check_1d(z, &h, n_ptr, rows + 1)) != LP_OK) goto fail;
    if ((st = lp_npz_load_i64(z, n_idx, LP_MEM_SCRATCH, &r->indices, &h)) != LP_OK) goto fail;
    if ((st = check_1d(z, &h, n_idx, -1)) != LP_OK) goto fail;
    r->nnz = h.shape[0];
    if (lp_npz_find(z, n_dat) >= 0) {
        if ((st = lp_npz_load_f32(z, n_dat, LP_MEM_SCRATCH, &r->data, &h)) != LP_OK) goto fail;
        if ((st = check_1d(z, &h, n_dat, r->nnz)) != LP_OK) goto fail;
        for (int64_t e = 0; e < r->nnz; e++)
            if (!isfinite(r->data[e])) {
                st = lp_error(LP_ERR_FORMAT, "%s: %s[%lld] is not finite", lp_npz_path(z), n_dat, (long long)e);
                goto fail;
            }
    }
    return LP_OK;
fail:
    raw_free(r);
    return st;
}

lp_status lp_graph_dataset_load_npz(lp_graph_dataset **out, const char *path, const lp_graph_load_opts *opts)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_dataset_load_npz: NULL argument");
    *out = NULL;
    lp_npz *z;
    LP_TRY(lp_npz_open(&z, path));
    lp_graph *g = NULL;
    lp_csr *xs = NULL;
    float *xd = NULL;
    int32_t *labels = NULL;
    int64_t *lab64 = NULL, *src = NULL, *dst = NULL;
    raw_csr adj = {0}, attr = {0};
    int64_t N, N2, F = 0;
    char what[512];
    lp_status st;
    if ((st = read_shape(z, "adj", &N, &N2)) != LP_OK) goto done;
    if (N != N2) { st = lp_error(LP_ERR_FORMAT, "%s: adj_shape (%lld, %lld) is not square", path, (long long)N, (long long)N2); goto done; }
    if ((st = read_csr(z, "adj", N, 0, &adj)) != LP_OK) goto done;
    /* scipy may store explicit zeros: those entries are not edges */
    src = lp_alloc_array(LP_MEM_SCRATCH, adj.nnz ? (size_t)adj.nnz : 1, sizeof(int64_t));
    dst = lp_alloc_array(LP_MEM_SCRATCH, adj.nnz ? (size_t)adj.nnz : 1, sizeof(int64_t));
    if (!src || !dst) { st = LP_ERR_NOMEM; goto done; }
    snprintf(what, sizeof what, "%s: adj", path);
    if ((st = lp_csr_check(N, N, adj.indptr, adj.indices, adj.nnz, what)) != LP_OK) goto done;
    int64_t m = 0, self = 0;
    for (int64_t r = 0; r < N; r++)
        for (int64_t e = adj.indptr[r]; e < adj.indptr[r + 1]; e++) {
            if (adj.data && adj.data[e] == 0.0f) continue;
            if (adj.indices[e] == r) self++;
            src[m] = r; dst[m] = adj.indices[e]; m++;
        }
    if ((st = lp_graph_from_edges(&g, N, src, dst, m, LP_GRAPH_SYMMETRIZE | LP_GRAPH_DROP_SELF_LOOPS, what)) != LP_OK)
        goto done;
    /* features */
    if (lp_npz_find(z, "attr_indptr") >= 0) {
        int64_t R;
        if ((st = read_shape(z, "attr", &R, &F)) != LP_OK) goto done;
        if (R != N) { st = lp_error(LP_ERR_FORMAT, "%s: attr_shape has %lld rows, adj_shape %lld nodes", path, (long long)R, (long long)N); goto done; }
        if ((st = read_csr(z, "attr", N, 1, &attr)) != LP_OK) goto done;
        snprintf(what, sizeof what, "%s: attr", path);
        if ((st = lp_csr_from_arrays(&xs, N, F, attr.indptr, attr.indices, attr.data, attr.nnz, what)) != LP_OK) goto done;
    } else if (lp_npz_find(z, "attr_matrix") >= 0) {
        lp_npy_header h;
        if ((st = lp_npz_load_f32(z, "attr_matrix", LP_MEM_DATA, &xd, &h)) != LP_OK) goto done;
        if (h.ndim != 2 || h.shape[0] != N) {
            st = lp_error(LP_ERR_FORMAT, "%s: attr_matrix must be (%lld, F)", path, (long long)N);
            goto done;
        }
        F = h.shape[1];
        for (int64_t i = 0; i < N * F; i++)
            if (!isfinite(xd[i])) { st = lp_error(LP_ERR_FORMAT, "%s: attr_matrix has a non-finite value", path); goto done; }
    } else {
        /* no features: one-hot node identity */
        int64_t *ip = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N + 1, sizeof(int64_t));
        int64_t *ix = lp_alloc_array(LP_MEM_SCRATCH, N ? (size_t)N : 1, sizeof(int64_t));
        float *iv = lp_alloc_array(LP_MEM_SCRATCH, N ? (size_t)N : 1, sizeof(float));
        if (ip && ix && iv) {
            for (int64_t i = 0; i < N; i++) { ip[i + 1] = i + 1; ix[i] = i; iv[i] = 1.0f; }
            st = lp_csr_from_arrays(&xs, N, N, ip, ix, iv, N, "identity features");
        } else st = LP_ERR_NOMEM;
        lp_free(ip); lp_free(ix); lp_free(iv);
        F = N;
        if (st != LP_OK) goto done;
    }
    /* labels */
    if (lp_npz_find(z, "labels") >= 0) {
        lp_npy_header h;
        if ((st = lp_npz_load_i64(z, "labels", LP_MEM_SCRATCH, &lab64, &h)) != LP_OK) goto done;
        if (h.ndim != 1 || h.shape[0] != N) {
            st = lp_error(LP_ERR_FORMAT, "%s: labels has %lld entries (shape of %d dims), the graph has %lld nodes", path,
                          (long long)h.numel, h.ndim, (long long)N);
            goto done;
        }
        labels = lp_alloc_array(LP_MEM_DATA, N ? (size_t)N : 1, sizeof(int32_t));
        if (!labels) { st = LP_ERR_NOMEM; goto done; }
        for (int64_t i = 0; i < N; i++) {
            if (lab64[i] < -1 || lab64[i] > 1000000) {
                st = lp_error(LP_ERR_FORMAT, "%s: labels[%lld] = %lld is out of range", path, (long long)i, (long long)lab64[i]);
                goto done;
            }
            labels[i] = (int32_t)lab64[i];
        }
    }
    {
        lp_graph_dataset *ds;
        st = lp_graph_dataset_assemble(&ds, path, g, xs, xd, F, labels, opts);
        g = NULL; xs = NULL; xd = NULL; labels = NULL; /* owned (or freed) by assemble */
        if (st == LP_OK) {
            ds->n_input_edges = m;
            ds->n_dropped_self_loops = self;
            ds->identity_features = lp_npz_find(z, "attr_indptr") < 0 && lp_npz_find(z, "attr_matrix") < 0;
            *out = ds;
        }
    }
done:
    raw_free(&adj);
    raw_free(&attr);
    lp_free(src); lp_free(dst); lp_free(lab64);
    lp_graph_free(g);
    lp_csr_free(xs);
    lp_free(xd);
    lp_free(labels);
    lp_npz_close(z);
    return st;
}
