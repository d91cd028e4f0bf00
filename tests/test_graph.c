/* Graphs, data sets (cora/citeseer npz, karate text), feature normalisation, splits, SpMM kernels. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/graph.h"
#include "leanprop/kernels/spmm.h"
#include "leanprop/rng.h"
#include "leanprop/threads.h"

static void test_graph_build(void **state)
{
    (void)state;
    /* directed edges with a duplicate and a self loop */
    int64_t src[] = {0, 1, 2, 2, 3, 1};
    int64_t dst[] = {1, 2, 0, 0, 3, 2};
    lp_graph *g;
    LP_ASSERT_OK(lp_graph_from_edges(&g, 5, src, dst, 6, 0, "t"));
    assert_int_equal(g->n_edges, 4); /* 0->1, 1->2, 2->0, 3->3 */
    assert_int_equal(g->n_self_loops, 1);
    assert_false(g->symmetric);
    assert_false(lp_graph_is_undirected(g));
    assert_true(lp_graph_has_edge(g, 0, 1));
    assert_false(lp_graph_has_edge(g, 1, 0));
    assert_int_equal(lp_graph_degree(g, 2), 1); /* in-degree of 2: from 1 */
    assert_int_equal(lp_graph_degree(g, 4), 0);
    assert_true(g->deg_inv[4] == 0.0f);
    /* transpose: out-neighbours of 1 = {2} */
    assert_int_equal(g->t_indptr[2] - g->t_indptr[1], 1);
    assert_int_equal(g->t_indices[g->t_indptr[1]], 2);
    lp_graph_free(g);
    LP_ASSERT_OK(lp_graph_from_edges(&g, 5, src, dst, 6, LP_GRAPH_SYMMETRIZE | LP_GRAPH_DROP_SELF_LOOPS, "t"));
    assert_int_equal(g->n_edges, 6);
    assert_int_equal(g->n_self_loops, 0);
    assert_true(g->symmetric);
    assert_true(lp_graph_is_undirected(g));
    assert_ptr_equal(g->t_indptr, g->indptr); /* no second copy for undirected graphs */
    assert_int_equal(lp_graph_degree(g, 2), 2);
    LP_ASSERT_CLOSE(g->gcn_dinv[2], 1 / sqrt(3.0), 1e-7, 0, "gcn dinv");
    LP_ASSERT_CLOSE(g->deg_inv[2], 0.5, 0, 0, "deg inv");
    for (int64_t i = 0; i < 5; i++) /* rows sorted ascending */
        for (int64_t e = g->indptr[i] + 1; e < g->indptr[i + 1]; e++) assert_true(g->indices[e] > g->indices[e - 1]);
    int64_t *pairs, m;
    LP_ASSERT_OK(lp_graph_undirected_pairs(g, &pairs, &m));
    assert_int_equal(m, 3);
    for (int64_t k = 0; k < m; k++) assert_true(pairs[2 * k] < pairs[2 * k + 1]);
    lp_free(pairs);
    lp_graph_free(g);
    int64_t bad[] = {0, 7};
    assert_int_equal(lp_graph_from_edges(&g, 5, bad, bad, 2, 0, "edges.txt"), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "edges.txt: edge 1"));
}

static void test_graph_from_csr_checks(void **state)
{
    (void)state;
    int64_t indptr[] = {0, 2, 1, 3}, indices[] = {1, 2, 0};
    lp_graph *g;
    assert_int_equal(lp_graph_from_csr(&g, 3, indptr, indices, 3, 0, "f.npz: adj"), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "f.npz: adj_indptr is not monotone"));
    int64_t ok_ptr[] = {0, 2, 2, 3}, bad_idx[] = {1, 5, 0};
    assert_int_equal(lp_graph_from_csr(&g, 3, ok_ptr, bad_idx, 3, 0, "f.npz: adj"), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "adj_indices[1] = 5 is out of range"));
    int64_t short_ptr[] = {0, 2, 2, 2};
    assert_int_equal(lp_graph_from_csr(&g, 3, short_ptr, indices, 3, 0, "f.npz: adj"), LP_ERR_FORMAT);
    LP_ASSERT_OK(lp_graph_from_csr(&g, 3, ok_ptr, indices, 3, LP_GRAPH_SYMMETRIZE, "f.npz: adj"));
    assert_true(g->symmetric);
    lp_graph_free(g);
}

static void test_cora_dataset(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_mem_reset_peak();
    size_t data0 = lp_mem_current(LP_MEM_DATA);
    lp_graph_load_opts o = lp_graph_load_defaults();
    o.normalize = 0;
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, &o));
    assert_string_equal(ds->name, "cora");
    assert_int_equal(ds->n_nodes, 2708);
    assert_int_equal(ds->n_features, 1433);
    assert_int_equal(ds->n_classes, 7);
    assert_int_equal(ds->n_labelled, 2708);
    assert_int_equal(ds->n_input_edges, 5429);
    assert_non_null(ds->x_sparse);
    assert_int_equal(ds->x_sparse->nnz, 49216);
    assert_non_null(ds->x_sparse->t_indptr);
    assert_true(ds->graph->symmetric);
    assert_int_equal(ds->graph->n_self_loops, 0);
    print_message("cora: %lld undirected edges, %lld self loops dropped, data %zu bytes\n",
                  (long long)ds->graph->n_edges / 2, (long long)ds->n_dropped_self_loops,
                  lp_mem_current(LP_MEM_DATA) - data0);
    /* each citation becomes an undirected edge: at most 5429, some are reciprocal duplicates */
    assert_true(ds->graph->n_edges / 2 <= 5429 && ds->graph->n_edges / 2 > 5200);
    int64_t counts[7] = {0}, expect[7] = {298, 418, 818, 426, 217, 180, 351};
    for (int i = 0; i < 2708; i++) counts[ds->labels[i]]++;
    for (int c = 0; c < 7; c++) assert_int_equal(counts[c], expect[c]);
    for (int64_t e = 0; e < ds->x_sparse->nnz; e++) assert_true(ds->x_sparse->values[e] == 1.0f); /* binary */
    assert_true(lp_mem_current(LP_MEM_DATA) > data0);
    lp_graph_dataset_free(ds);
    assert_int_equal(lp_mem_current(LP_MEM_DATA), data0);
    /* with NormalizeFeatures: every row with features sums to 1 */
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    for (int64_t r = 0; r < ds->n_nodes; r++) {
        double s = 0;
        for (int64_t e = ds->x_sparse->indptr[r]; e < ds->x_sparse->indptr[r + 1]; e++) s += ds->x_sparse->values[e];
        if (ds->x_sparse->indptr[r + 1] > ds->x_sparse->indptr[r]) LP_ASSERT_CLOSE(s, 1.0, 1e-5, 0, "row sum");
    }
    /* transpose agrees with the matrix */
    const lp_csr *x = ds->x_sparse;
    for (int64_t c = 0; c < x->cols; c += 97)
        for (int64_t e = x->t_indptr[c]; e < x->t_indptr[c + 1]; e++) {
            int64_t r = x->t_indices[e];
            int found = 0;
            for (int64_t f = x->indptr[r]; f < x->indptr[r + 1]; f++)
                if (x->indices[f] == c) { found = 1; assert_true(x->values[f] == x->t_values[e]); }
            assert_true(found);
        }
    lp_graph_dataset_free(ds);
}

static void test_citeseer_and_densify(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/citeseer.npz");
    if (!path) LP_SKIP("citeseer.npz not found (set LEANPROP_SHARED)");
    lp_graph_load_opts o = lp_graph_load_defaults();
    o.max_sparse_density = 0; /* force dense */
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, &o));
    assert_int_equal(ds->n_nodes, 3312);
    assert_int_equal(ds->n_features, 3703);
    assert_int_equal(ds->n_classes, 6);
    assert_int_equal(ds->n_input_edges, 4715);
    assert_null(ds->x_sparse);
    assert_non_null(ds->x_dense);
    for (int64_t r = 0; r < 50; r++) {
        double s = 0;
        for (int64_t c = 0; c < ds->n_features; c++) s += ds->x_dense[r * ds->n_features + c];
        assert_true(fabs(s - 1.0) < 1e-4 || s == 0.0);
    }
    lp_graph_dataset_free(ds);
}

static void test_normalize_features_like_pyg(void **state)
{
    (void)state;
    /* dense features with a negative minimum: x - min, then rows / max(sum, 1) */
    const char *edges = lp_test_write_temp(".edges.txt", "0 1\n1 2\n", 8);
    char base[512], feats[600];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(edges) - 10), edges);
    snprintf(feats, sizeof feats, "%s.features.txt", base);
    FILE *f = fopen(feats, "w");
    fputs("0 -1 1 0\n1 0.1 -1 -1\n2 -1 -1 -1\n", f);
    fclose(f);
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, edges, NULL));
    assert_int_equal(ds->n_features, 3);
    assert_non_null(ds->x_dense);
    /* shifted: [0 2 1] sum 3, [1.1 0 0] sum 1.1, [0 0 0] sum 0 -> /1 */
    float expect[9] = {0, 2.0f / 3, 1.0f / 3, 1, 0, 0, 0, 0, 0};
    lp_test_assert_allclose(ds->x_dense, expect, 9, 1e-6, 1e-6, "normalised");
    lp_graph_dataset_free(ds);
    remove(feats);
}

static void test_karate_text(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/karate.edges.txt");
    if (!path) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    assert_string_equal(ds->name, "karate");
    assert_int_equal(ds->n_nodes, 34);
    assert_int_equal(ds->graph->n_edges, 156); /* 78 undirected edges */
    assert_int_equal(ds->n_classes, 2);
    assert_int_equal(ds->n_labelled, 34);
    assert_true(ds->identity_features);
    assert_int_equal(ds->n_features, 34);
    int ones = 0;
    for (int i = 0; i < 34; i++) ones += ds->labels[i];
    assert_int_equal(ones, 17);
    /* node 33 (the instructor's rival) has degree 17, node 0 degree 16 */
    assert_int_equal(lp_graph_degree(ds->graph, 33), 17);
    assert_int_equal(lp_graph_degree(ds->graph, 0), 16);
    lp_graph_dataset_free(ds);
}

static void test_text_format_errors(void **state)
{
    (void)state;
    lp_graph_dataset *ds;
    const char *e1 = lp_test_write_temp(".edges.txt", "0 1\n1 x\n", 8);
    assert_int_equal(lp_graph_dataset_load(&ds, e1, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), ":2: node 'x' is not an integer"));
    const char *e2 = lp_test_write_temp(".edges.txt", "# comment\n0 1\n5\n", 16);
    assert_int_equal(lp_graph_dataset_load(&ds, e2, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), ":3: expected 'u v'"));
    const char *e3 = lp_test_write_temp(".edges.txt", "0 -4\n", 5);
    assert_int_equal(lp_graph_dataset_load(&ds, e3, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "out of range"));
    assert_int_equal(lp_graph_dataset_load(&ds, "/nonexistent/g.edges.txt", NULL), LP_ERR_IO);
    /* labels: a bad label value names file and line */
    const char *e4 = lp_test_write_temp(".edges.txt", "0 1\n1 2\n", 8);
    char labels[600];
    snprintf(labels, sizeof labels, "%.*s.labels.txt", (int)(strlen(e4) - 10), e4);
    FILE *f = fopen(labels, "w");
    fputs("0 1\n1 -3\n2 0\n", f);
    fclose(f);
    assert_int_equal(lp_graph_dataset_load(&ds, e4, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), ".labels.txt:2: label -3 is out of range"));
    f = fopen(labels, "w");
    fputs("0 1\n2 0\n", f); /* node 1 unlabelled */
    fclose(f);
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, e4, NULL));
    assert_int_equal(ds->labels[1], -1);
    assert_int_equal(ds->n_labelled, 2);
    lp_graph_dataset_free(ds);
    remove(labels);
}

static void test_node_splits(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    lp_graph_splits *s, *t;
    LP_ASSERT_OK(lp_graph_splits_node(&s, ds, 5, 101));
    LP_ASSERT_OK(lp_graph_splits_check(s, ds, "generated"));
    unsigned char *in_test = calloc(2708, 1);
    for (int r = 0; r < 5; r++) {
        const lp_node_split *n = &s->node[r];
        /* KFold: 2708 = 5 * 541 + 3 -> folds of 542, 542, 542, 541, 541; val = ceil(0.2 * rest) */
        assert_int_equal(n->n_test, r < 3 ? 542 : 541);
        assert_int_equal(n->n_val, (int64_t)ceil(0.2 * (2708 - n->n_test)));
        assert_int_equal(n->n_train + n->n_val + n->n_test, 2708);
        for (int64_t k = 0; k < n->n_test; k++) { assert_false(in_test[n->test[k]]); in_test[n->test[k]] = 1; }
    }
    for (int i = 0; i < 2708; i++) assert_true(in_test[i]); /* the 5 test folds cover every node once */
    free(in_test);
    /* reproducible from the seed; a different seed differs */
    LP_ASSERT_OK(lp_graph_splits_node(&t, ds, 5, 101));
    assert_memory_equal(s->node[2].train, t->node[2].train, (size_t)s->node[2].n_train * 8);
    lp_graph_splits_free(t);
    LP_ASSERT_OK(lp_graph_splits_node(&t, ds, 5, 102));
    assert_memory_not_equal(s->node[0].test, t->node[0].test, (size_t)s->node[0].n_test * 8);
    lp_graph_splits_free(t);
    /* save / load round trip */
    const char *file = lp_test_write_temp(".split", "", 0);
    LP_ASSERT_OK(lp_graph_splits_save(s, file));
    LP_ASSERT_OK(lp_graph_splits_load(&t, file, ds));
    assert_int_equal(t->kind, LP_SPLIT_NODE);
    assert_int_equal(t->n_runs, 5);
    for (int r = 0; r < 5; r++) {
        assert_int_equal(t->node[r].n_val, s->node[r].n_val);
        assert_memory_equal(t->node[r].val, s->node[r].val, (size_t)s->node[r].n_val * 8);
        assert_memory_equal(t->node[r].test, s->node[r].test, (size_t)s->node[r].n_test * 8);
    }
    lp_graph_splits_free(t);
    lp_graph_splits_free(s);
    lp_graph_dataset_free(ds);
}

static void test_link_splits(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    int64_t m = ds->graph->n_edges / 2;
    lp_graph_splits *s, *t;
    LP_ASSERT_OK(lp_graph_splits_link(&s, ds->graph, 2, 0.16, 0.2, 7));
    LP_ASSERT_OK(lp_graph_splits_check(s, ds, "generated"));
    const lp_edge_split *e = &s->link[1];
    assert_int_equal(e->n_val, (int64_t)floor(0.16 * m));
    assert_int_equal(e->n_test, (int64_t)floor(0.2 * m));
    assert_int_equal(e->n_train + e->n_val + e->n_test, m);
    /* message-passing graphs: train only, then train + val */
    lp_graph *g1, *g2;
    LP_ASSERT_OK(lp_edge_split_graph(&g1, e, ds->n_nodes, 0));
    LP_ASSERT_OK(lp_edge_split_graph(&g2, e, ds->n_nodes, 1));
    assert_int_equal(g1->n_edges, 2 * e->n_train);
    assert_int_equal(g2->n_edges, 2 * (e->n_train + e->n_val));
    assert_true(g1->symmetric && g2->symmetric);
    for (int64_t k = 0; k < e->n_test; k++) assert_false(lp_graph_has_edge(g2, e->test_pos[2 * k], e->test_pos[2 * k + 1]));
    lp_graph_free(g1);
    lp_graph_free(g2);
    const char *file = lp_test_write_temp(".split", "", 0);
    LP_ASSERT_OK(lp_graph_splits_save(s, file));
    LP_ASSERT_OK(lp_graph_splits_load(&t, file, ds));
    assert_int_equal(t->kind, LP_SPLIT_LINK);
    assert_memory_equal(t->link[1].test_neg, e->test_neg, (size_t)e->n_test * 16);
    assert_memory_equal(t->link[1].train_pos, e->train_pos, (size_t)e->n_train * 16);
    lp_graph_splits_free(t);
    lp_graph_splits_free(s);
    lp_graph_dataset_free(ds);
}

/* Dense reference for lp_spmm in double. */
static void spmm_ref(double *y, const int64_t *ip, const int32_t *ix, const float *v, const float *r, const float *c,
                     const float *s, const float *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++) {
            double acc = 0;
            for (int64_t e = ip[i]; e < ip[i + 1]; e++)
                acc += (double)(v ? v[e] : 1) * (c ? c[ix[e]] : 1) * x[ix[e] * d + k];
            y[i * d + k] = acc * (r ? r[i] : 1) + (s ? (double)s[i] * x[i * d + k] : 0);
        }
}

static void test_spmm_kernel(void **state)
{
    (void)state;
    lp_rng rng;
    lp_rng_seed(&rng, 5);
    const int64_t n = 300, d = 40;
    int64_t src[3000], dst[3000];
    for (int k = 0; k < 3000; k++) { src[k] = (int64_t)lp_rng_below(&rng, n); dst[k] = (int64_t)lp_rng_below(&rng, n); }
    lp_graph *g;
    LP_ASSERT_OK(lp_graph_from_edges(&g, n, src, dst, 3000, 0, "rand"));
    float *x = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d), *vals = malloc(sizeof(float) * 3000);
    float *r = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n), *s = malloc(sizeof(float) * n);
    double *yr = malloc(sizeof(double) * n * d);
    lp_test_randn(&rng, x, (size_t)(n * d));
    lp_test_randn(&rng, vals, 3000);
    lp_test_randn(&rng, r, n);
    lp_test_randn(&rng, c, n);
    lp_test_randn(&rng, s, n);
    for (int threads = 1; threads <= 2; threads++) {
        LP_ASSERT_OK(lp_threads_set(threads));
        for (int variant = 0; variant < 4; variant++) {
            const float *V = variant & 1 ? vals : NULL, *R = variant & 2 ? r : NULL, *C = variant & 2 ? c : NULL;
            const float *S = variant == 3 ? s : NULL;
            LP_ASSERT_OK(lp_spmm(y, g->indptr, g->indices, V, R, C, S, x, n, n, d, 0.0f));
            spmm_ref(yr, g->indptr, g->indices, V, R, C, S, x, n, d);
            for (int64_t i = 0; i < n * d; i++) LP_ASSERT_CLOSE(y[i], yr[i], 1e-4, 1e-4, "spmm");
        }
        /* the transpose through t_indptr equals A^T x; beta = 1 accumulates */
        float *yt = malloc(sizeof(float) * n * d);
        for (int64_t i = 0; i < n * d; i++) yt[i] = 1.0f;
        LP_ASSERT_OK(lp_spmm(yt, g->t_indptr, g->t_indices, NULL, NULL, NULL, NULL, x, n, n, d, 1.0f));
        for (int64_t j = 0; j < n; j++)
            for (int64_t k = 0; k < d; k += 7) {
                double acc = 1.0;
                for (int64_t e = g->t_indptr[j]; e < g->t_indptr[j + 1]; e++) acc += x[g->t_indices[e] * d + k];
                double check = 1.0; /* from the forward structure: sum over i with j in row i */
                for (int64_t i = 0; i < n; i++)
                    for (int64_t e = g->indptr[i]; e < g->indptr[i + 1]; e++)
                        if (g->indices[e] == j) check += x[i * d + k];
                LP_ASSERT_CLOSE(yt[j * d + k], check, 1e-4, 1e-4, "spmm transpose");
                LP_ASSERT_CLOSE(acc, check, 1e-9, 1e-9, "transpose structure");
            }
        free(yt);
    }
    assert_int_equal(lp_spmm(y, g->indptr, g->indices, NULL, NULL, NULL, s, x, n, n + 1, d, 0), LP_ERR_INVALID_ARG);
    /* a wide, short right-hand side (sparse features x weights): rows > cols, d = 128 + 5 (blocked + rest) */
    {
        const int64_t R = 50, F = 7, W = 133;
        int64_t ip[51], ix[200];
        float vv[200];
        int64_t k = 0;
        ip[0] = 0;
        for (int64_t i = 0; i < R; i++) {
            for (int64_t f = 0; f < F; f++)
                if ((i + f) % 3 == 0) { ix[k] = f; vv[k] = lp_rng_normal(&rng); k++; }
            ip[i + 1] = k;
        }
        lp_csr *m;
        LP_ASSERT_OK(lp_csr_from_arrays(&m, R, F, ip, ix, vv, k, "wide"));
        float *w = malloc(sizeof(float) * F * W), *o = malloc(sizeof(float) * R * W);
        double *orf = malloc(sizeof(double) * R * W);
        lp_test_randn(&rng, w, (size_t)(F * W));
        for (int64_t q = 0; q < R * W; q++) o[q] = 2.0f;
        LP_ASSERT_OK(lp_spmm(o, m->indptr, m->indices, m->values, NULL, NULL, NULL, w, R, F, W, 0.5f));
        spmm_ref(orf, m->indptr, m->indices, m->values, NULL, NULL, NULL, w, R, W);
        for (int64_t q = 0; q < R * W; q++) LP_ASSERT_CLOSE(o[q], orf[q] + 1.0, 1e-4, 1e-4, "wide spmm, beta 0.5");
        free(w); free(o); free(orf);
        lp_csr_free(m);
    }
    free(x); free(y); free(vals); free(r); free(c); free(s); free(yr);
    lp_graph_free(g);
}

static void test_rownorm_fd(void **state)
{
    (void)state;
    lp_rng rng;
    lp_rng_seed(&rng, 9);
    enum { N = 6, D = 5 };
    float x[N * D], y[N * D], norm[N], dy[N * D], dx[N * D] = {0};
    lp_test_randn(&rng, x, N * D);
    lp_test_randn(&rng, dy, N * D);
    for (int k = 0; k < D; k++) x[5 * D + k] = 0; /* a zero row */
    const float eps = 1e-8f;
    LP_ASSERT_OK(lp_rownorm_forward(y, norm, x, N, D, eps));
    LP_ASSERT_OK(lp_rownorm_backward(dx, dy, y, norm, N, D, eps));
    /* central differences in double on L = sum(dy * y) */
    for (int i = 0; i < N - 1; i++)
        for (int k = 0; k < D; k++) {
            double h = 1e-4, Lp = 0, Lm = 0;
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double xr[D], nn = 0, L = 0;
                for (int q = 0; q < D; q++) xr[q] = x[i * D + q] + (q == k ? sgn * h : 0);
                for (int q = 0; q < D; q++) nn += xr[q] * xr[q];
                nn = sqrt(nn);
                for (int q = 0; q < D; q++) L += dy[i * D + q] * xr[q] / (nn + eps);
                if (sgn < 0) Lm = L; else Lp = L;
            }
            LP_ASSERT_CLOSE(dx[i * D + k], (Lp - Lm) / (2 * h), 1e-4, 1e-3, "rownorm grad");
        }
    for (int k = 0; k < D; k++) LP_ASSERT_CLOSE(dx[5 * D + k], dy[5 * D + k] / eps, 0, 1e-5, "zero row");
    for (int k = 0; k < D; k++) assert_true(y[5 * D + k] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_build),
        cmocka_unit_test(test_graph_from_csr_checks),
        cmocka_unit_test(test_cora_dataset),
        cmocka_unit_test(test_citeseer_and_densify),
        cmocka_unit_test(test_normalize_features_like_pyg),
        cmocka_unit_test(test_karate_text),
        cmocka_unit_test(test_text_format_errors),
        cmocka_unit_test(test_node_splits),
        cmocka_unit_test(test_link_splits),
        cmocka_unit_test(test_spmm_kernel),
        cmocka_unit_test(test_rownorm_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
