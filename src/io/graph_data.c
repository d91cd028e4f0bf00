/* Graph data sets: assembly shared by the readers, feature normalisation, format dispatch. */
#include "leanprop/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

lp_graph_load_opts lp_graph_load_defaults(void)
{
    lp_graph_load_opts o = {.normalize = 1, .max_sparse_density = 0.1, .require_labels = 0};
    return o;
}

void lp_graph_dataset_free(lp_graph_dataset *ds)
{
    if (!ds) return;
    lp_graph_free(ds->graph);
    lp_csr_free(ds->x_sparse);
    lp_free(ds->x_dense);
    lp_free(ds->labels);
    free(ds->path);
    free(ds->name);
    free(ds);
}

static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    static const char *const suffixes[] = {".edges.txt", ".edges", ".npz", ".txt"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t s = strlen(suffixes[i]);
        if (n > s && !strcmp(base + n - s, suffixes[i])) { n -= s; break; }
    }
    char *r = malloc(n + 1);
    if (r) { memcpy(r, base, n); r[n] = '\0'; }
    return r;
}

lp_status lp_graph_dataset_densify(lp_graph_dataset *ds)
{
    if (!ds) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_dataset_densify: NULL");
    if (!ds->x_sparse) return LP_OK;
    float *d;
    LP_TRY(lp_csr_to_dense(ds->x_sparse, &d));
    lp_csr_free(ds->x_sparse);
    ds->x_sparse = NULL;
    ds->x_dense = d;
    return LP_OK;
}

static lp_status sparsify(lp_graph_dataset *ds)
{
    int64_t N = ds->n_nodes, F = ds->n_features, nnz = 0;
    for (int64_t i = 0; i < N * F; i++) nnz += ds->x_dense[i] != 0.0f;
    int64_t *indptr = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N + 1, sizeof(int64_t));
    int64_t *idx = lp_alloc_array(LP_MEM_SCRATCH, nnz ? (size_t)nnz : 1, sizeof(int64_t));
    float *val = lp_alloc_array(LP_MEM_SCRATCH, nnz ? (size_t)nnz : 1, sizeof(float));
    lp_status st = LP_ERR_NOMEM;
    if (indptr && idx && val) {
        int64_t k = 0;
        for (int64_t r = 0; r < N; r++) {
            for (int64_t c = 0; c < F; c++)
                if (ds->x_dense[r * F + c] != 0.0f) { idx[k] = c; val[k] = ds->x_dense[r * F + c]; k++; }
            indptr[r + 1] = k;
        }
        st = lp_csr_from_arrays(&ds->x_sparse, N, F, indptr, idx, val, nnz, "features");
    }
    lp_free(indptr); lp_free(idx); lp_free(val);
    if (st != LP_OK) return st;
    lp_free(ds->x_dense);
    ds->x_dense = NULL;
    return LP_OK;
}

lp_status lp_graph_dataset_normalize_features(lp_graph_dataset *ds)
{
    if (!ds) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_dataset_normalize_features: NULL");
    int64_t N = ds->n_nodes, F = ds->n_features;
    if (N == 0 || F == 0) return LP_OK;
    if (ds->x_sparse) {
        const lp_csr *m = ds->x_sparse;
        float mn = m->nnz < N * F ? 0.0f : INFINITY;
        for (int64_t e = 0; e < m->nnz; e++) mn = m->values[e] < mn ? m->values[e] : mn;
        if (mn != 0.0f) LP_TRY(lp_graph_dataset_densify(ds)); /* shifting fills the implicit zeros */
    }
    if (ds->x_sparse) {
        lp_csr *m = ds->x_sparse;
        for (int64_t r = 0; r < N; r++) {
            float s = 0;
            for (int64_t e = m->indptr[r]; e < m->indptr[r + 1]; e++) s += m->values[e];
            float d = s > 1.0f ? s : 1.0f;
            for (int64_t e = m->indptr[r]; e < m->indptr[r + 1]; e++) m->values[e] /= d;
        }
        lp_free(m->t_indptr); lp_free(m->t_indices); lp_free(m->t_values);
        m->t_indptr = NULL; m->t_indices = NULL; m->t_values = NULL;
        return lp_csr_build_transpose(m);
    }
    float *x = ds->x_dense, mn = INFINITY;
    for (int64_t i = 0; i < N * F; i++) mn = x[i] < mn ? x[i] : mn;
    for (int64_t r = 0; r < N; r++) {
        float *row = x + r * F, s = 0;
        for (int64_t c = 0; c < F; c++) { row[c] -= mn; s += row[c]; }
        float d = s > 1.0f ? s : 1.0f;
        for (int64_t c = 0; c < F; c++) row[c] /= d;
    }
    return LP_OK;
}

lp_status lp_graph_dataset_assemble(lp_graph_dataset **out, const char *path, lp_graph *graph, lp_csr *x_sparse,
                                    float *x_dense, int64_t n_features, int32_t *labels,
                                    const lp_graph_load_opts *opts)
{
    lp_graph_load_opts def = lp_graph_load_defaults();
    if (!opts) opts = &def;
    lp_graph_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !out || !graph || !path) {
        free(ds);
        lp_graph_free(graph); lp_csr_free(x_sparse); lp_free(x_dense); lp_free(labels);
        return lp_error(!out || !graph || !path ? LP_ERR_INVALID_ARG : LP_ERR_NOMEM, "assembling a graph data set");
    }
    *out = NULL;
    ds->graph = graph;
    ds->x_sparse = x_sparse;
    ds->x_dense = x_dense;
    ds->labels = labels;
    ds->n_nodes = graph->n_nodes;
    ds->n_features = n_features;
    ds->path = strdup(path);
    ds->name = stem_of(path);
    lp_status st = LP_OK;
    if (!ds->path || !ds->name) { st = lp_error(LP_ERR_NOMEM, "%s: out of memory", path); goto fail; }
    if ((x_sparse != NULL) == (x_dense != NULL)) { st = lp_error(LP_ERR_INVALID_ARG, "%s: need exactly one feature matrix", path); goto fail; }
    if (x_sparse && (x_sparse->rows != ds->n_nodes || x_sparse->cols != n_features)) {
        st = lp_error(LP_ERR_FORMAT, "%s: features have %lld rows, the graph has %lld nodes", path,
                      (long long)x_sparse->rows, (long long)ds->n_nodes);
        goto fail;
    }
    if (!labels && opts->require_labels) { st = lp_error(LP_ERR_FORMAT, "%s: labels missing", path); goto fail; }
    if (labels) {
        int32_t mx = -1;
        for (int64_t i = 0; i < ds->n_nodes; i++) {
            if (labels[i] < -1) {
                st = lp_error(LP_ERR_FORMAT, "%s: labels[%lld] = %d is out of range (classes are 0..C-1, -1 = unlabelled)",
                              path, (long long)i, labels[i]);
                goto fail;
            }
            if (labels[i] >= 0) ds->n_labelled++;
            mx = labels[i] > mx ? labels[i] : mx;
        }
        ds->n_classes = mx + 1;
        if (ds->n_classes < 2 && opts->require_labels) {
            st = lp_error(LP_ERR_FORMAT, "%s: labels name %d class(es); classification needs at least 2", path, ds->n_classes);
            goto fail;
        }
    }
    if (opts->normalize && (st = lp_graph_dataset_normalize_features(ds)) != LP_OK) goto fail;
    if (ds->x_sparse) {
        double density = (double)ds->x_sparse->nnz / ((double)ds->n_nodes * (double)(n_features ? n_features : 1));
        if (density > opts->max_sparse_density && (st = lp_graph_dataset_densify(ds)) != LP_OK) goto fail;
    } else if (ds->n_nodes * n_features > 0) {
        int64_t nnz = 0;
        for (int64_t i = 0; i < ds->n_nodes * n_features; i++) nnz += ds->x_dense[i] != 0.0f;
        if ((double)nnz <= opts->max_sparse_density * (double)ds->n_nodes * (double)n_features && (st = sparsify(ds)) != LP_OK)
            goto fail;
    }
    if (ds->x_sparse && (st = lp_csr_build_transpose(ds->x_sparse)) != LP_OK) goto fail;
    *out = ds;
    return LP_OK;
fail:
    lp_graph_dataset_free(ds);
    return st;
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int file_exists(const char *p)
{
    FILE *f = fopen(p, "r");
    if (f) fclose(f);
    return f != NULL;
}

lp_status lp_graph_dataset_load(lp_graph_dataset **out, const char *path, const lp_graph_load_opts *opts)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_dataset_load: NULL argument");
    if (ends_with(path, ".npz")) return lp_graph_dataset_load_npz(out, path, opts);
    /* text: NAME.edges.txt | NAME.edges | NAME.txt with NAME.labels.txt, NAME.features.txt beside it */
    size_t n = strlen(path), cut = n;
    if (ends_with(path, ".edges.txt")) cut = n - 10;
    else if (ends_with(path, ".edges")) cut = n - 6;
    else if (ends_with(path, ".txt")) cut = n - 4;
    char *labels = malloc(cut + 16), *feats = malloc(cut + 16);
    if (!labels || !feats) { free(labels); free(feats); return lp_error(LP_ERR_NOMEM, "out of memory"); }
    snprintf(labels, cut + 16, "%.*s.labels.txt", (int)cut, path);
    snprintf(feats, cut + 16, "%.*s.features.txt", (int)cut, path);
    lp_status st = lp_graph_dataset_load_text(out, path, file_exists(labels) ? labels : NULL,
                                              file_exists(feats) ? feats : NULL, opts);
    free(labels);
    free(feats);
    return st;
}
