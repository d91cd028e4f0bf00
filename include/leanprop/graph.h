/* leanprop/graph.h: graphs (CSR), sparse feature matrices, graph data sets and their splits.
 *
 * A graph stores, for every node i, the sources j of its incoming edges j -> i
 * in CSR form (row i = in-neighbours, ascending, no duplicates), plus the
 * transpose (out-neighbours). Undirected graphs keep both directions, and
 * then the transpose is the graph itself (no extra memory). Degrees and the
 * normalisations GCN and SAGE need are computed once at build time. Graphs
 * from data sets carry no self loops: GCN and GAT add theirs implicitly.
 *
 *   lp_graph_dataset *ds;
 *   lp_graph_load_opts o = lp_graph_load_defaults();        // NormalizeFeatures on
 *   if (lp_graph_dataset_load(&ds, "cora.npz", &o) != LP_OK) ... lp_error_message()
 *   // ds->graph: 2708 nodes, undirected; ds->x_sparse (1433 features); ds->labels, ds->n_classes 7
 *   lp_graph_splits *sp;
 *   lp_graph_splits_node(&sp, ds, 5, 101);                  // 64/16/20, 5 runs
 *   lp_graph_splits_save(sp, "cora.split");                  // reload: lp_graph_splits_load(&sp, path, ds)
 *   lp_graph_splits_free(sp);
 *   lp_graph_dataset_free(ds);
 *
 * File formats (docs/GNN.md): .npz in the gnn-benchmark / PyG CitationFull layout
 * (adj_* CSR, attr_* CSR or attr_matrix, labels); plain text NAME.edges.txt ("u v"
 * per line, '#' comments) with optional NAME.labels.txt ("node label") and
 * NAME.features.txt ("node f1 f2 ... fF"); without features, one-hot identity
 * features are used. All buffers are counted as LP_MEM_DATA.
 */
#ifndef LEANPROP_GRAPH_H
#define LEANPROP_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- graph ---- */

typedef struct {
    int64_t n_nodes;
    int64_t n_edges;          /* stored directed entries (an undirected edge counts twice) */
    int64_t *indptr;          /* (n_nodes + 1): row i = sources j of edges j -> i */
    int32_t *indices;         /* (n_edges), ascending within each row */
    int64_t *t_indptr;        /* transpose: row j = targets i of edges j -> i; */
    int32_t *t_indices;       /*   the same arrays as indptr/indices when symmetric */
    int symmetric;            /* every edge j -> i has its reverse i -> j */
    int64_t n_self_loops;
    float *deg_inv;           /* (n_nodes) 1 / in-degree, 0 for a node without in-edges (SAGE mean) */
    float *gcn_dinv;          /* (n_nodes) (in-degree + 1)^-1/2: GCN with an implicit self loop */
    float *gcn_self;          /* (n_nodes) 1 / (in-degree + 1): that self loop's weight */
} lp_graph;

enum {
    LP_GRAPH_SYMMETRIZE = 1,        /* add the reverse of every edge */
    LP_GRAPH_DROP_SELF_LOOPS = 2,   /* remove edges i -> i */
};

/* Build from n_edges edges src[k] -> dst[k] over n_nodes nodes. Duplicates are
 * merged. An index outside [0, n_nodes) is LP_ERR_FORMAT naming `what` (e.g.
 * the file), the edge number and the value. Fields are read-only afterwards. */
lp_status lp_graph_from_edges(lp_graph **out, int64_t n_nodes, const int64_t *src, const int64_t *dst,
                              int64_t n_edges, unsigned flags, const char *what);
/* Build from a scipy-style CSR adjacency: row r lists targets c (edge r -> c).
 * indptr (n_nodes + 1) must start at 0, never decrease and end at nnz. */
lp_status lp_graph_from_csr(lp_graph **out, int64_t n_nodes, const int64_t *indptr, const int64_t *indices,
                            int64_t nnz, unsigned flags, const char *what);
void lp_graph_free(lp_graph *g);

static inline int64_t lp_graph_degree(const lp_graph *g, int64_t i) { return g->indptr[i + 1] - g->indptr[i]; }
/* 1 when edge u -> v exists (binary search). */
int lp_graph_has_edge(const lp_graph *g, int64_t u, int64_t v);
/* 1 when every edge has its reverse (recomputed, not the cached flag). */
int lp_graph_is_undirected(const lp_graph *g);
/* Undirected edges {u, v}, u < v, each once, as pairs (m, 2) in LP_MEM_DATA; self loops skipped. */
lp_status lp_graph_undirected_pairs(const lp_graph *g, int64_t **pairs, int64_t *m);
/* Bytes held by the graph's arrays. */
size_t lp_graph_bytes(const lp_graph *g);

/* ---- sparse matrix (features) ---- */

typedef struct {
    int64_t rows, cols, nnz;
    int64_t *indptr;          /* (rows + 1) */
    int32_t *indices;         /* (nnz) column of each value, ascending within a row */
    float *values;            /* (nnz) */
    int64_t *t_indptr;        /* transpose (CSC), built by lp_csr_build_transpose: */
    int32_t *t_indices;       /*   needed for weight gradients X^T dY */
    float *t_values;
} lp_csr;

/* Check scipy-style CSR arrays: indptr (rows + 1) starts at 0, never
 * decreases and ends at nnz; every index in [0, cols). Messages name the
 * fields as "<what>_indptr" / "<what>_indices" (what = "cora.npz: adj"). */
lp_status lp_csr_check(int64_t rows, int64_t cols, const int64_t *indptr, const int64_t *indices, int64_t nnz,
                       const char *what);
/* Validate and copy a CSR matrix (indptr monotone from 0 to nnz, columns in
 * range); duplicate entries within a row are summed. `what` names the source. */
lp_status lp_csr_from_arrays(lp_csr **out, int64_t rows, int64_t cols, const int64_t *indptr,
                             const int64_t *indices, const float *values, int64_t nnz, const char *what);
lp_status lp_csr_build_transpose(lp_csr *m);
/* Dense copy (rows, cols) row-major in a new LP_MEM_DATA buffer. */
lp_status lp_csr_to_dense(const lp_csr *m, float **out);
void lp_csr_free(lp_csr *m);
size_t lp_csr_bytes(const lp_csr *m);

/* ---- data set ---- */

typedef struct {
    char *path;
    char *name;               /* file stem: "cora" */
    lp_graph *graph;          /* undirected, both directions, no self loops */
    int64_t n_nodes;
    int64_t n_features;
    lp_csr *x_sparse;         /* features: exactly one of x_sparse (with transpose) / x_dense */
    float *x_dense;           /* (n_nodes, n_features) */
    int32_t *labels;          /* (n_nodes) class or -1 (unlabelled); NULL when the data has none */
    int n_classes;
    int64_t n_labelled;
    int64_t n_input_edges;    /* edge entries in the file, before symmetrisation */
    int64_t n_dropped_self_loops;
    int identity_features;    /* no features in the data: one-hot node identity used */
} lp_graph_dataset;

typedef struct {
    int normalize;            /* PyG NormalizeFeatures (default 1) */
    double max_sparse_density;/* keep features sparse when nnz / (N F) <= this (default 0.1); 0 = always dense */
    int require_labels;       /* LP_ERR_FORMAT when labels are missing (default 0) */
} lp_graph_load_opts;

lp_graph_load_opts lp_graph_load_defaults(void);

/* .npz -> lp_graph_dataset_load_npz; anything else -> the text format, where
 * `path` is NAME.edges.txt (or NAME.edges / NAME.txt) and the labels and
 * features files are looked up beside it. opts may be NULL (defaults). */
lp_status lp_graph_dataset_load(lp_graph_dataset **out, const char *path, const lp_graph_load_opts *opts);
lp_status lp_graph_dataset_load_npz(lp_graph_dataset **out, const char *path, const lp_graph_load_opts *opts);
lp_status lp_graph_dataset_load_text(lp_graph_dataset **out, const char *edges_path, const char *labels_path,
                                     const char *features_path, const lp_graph_load_opts *opts);
void lp_graph_dataset_free(lp_graph_dataset *ds);

/* Internal assembly used by the readers: takes ownership of graph, x_sparse or
 * x_dense and labels (all LP_MEM_DATA), validates labels, applies the options
 * (normalisation, sparse/dense choice, transpose for sparse features). */
lp_status lp_graph_dataset_assemble(lp_graph_dataset **out, const char *path, lp_graph *graph, lp_csr *x_sparse,
                                    float *x_dense, int64_t n_features, int32_t *labels,
                                    const lp_graph_load_opts *opts);

/* PyG NormalizeFeatures: x -= min(x) over all entries (implicit zeros
 * included; a sparse matrix becomes dense only when the minimum is not 0),
 * then each row /= max(row sum, 1). */
lp_status lp_graph_dataset_normalize_features(lp_graph_dataset *ds);
/* Replace sparse features by a dense copy. */
lp_status lp_graph_dataset_densify(lp_graph_dataset *ds);

/* ---- splits ---- */

typedef struct {
    int64_t n_train, n_val, n_test;
    int64_t *train, *val, *test;          /* node ids, ascending */
} lp_node_split;

typedef struct {
    int64_t n_train, n_val, n_test;       /* positives per set; each set has as many negatives */
    int64_t *train_pos, *train_neg;       /* (n_train, 2) node pairs */
    int64_t *val_pos, *val_neg;           /* (n_val, 2) */
    int64_t *test_pos, *test_neg;         /* (n_test, 2) */
} lp_edge_split;

typedef enum { LP_SPLIT_NODE = 0, LP_SPLIT_LINK = 1 } lp_split_kind;

typedef struct {
    lp_split_kind kind;
    int n_runs;
    int64_t n_nodes;
    int64_t n_edges;                      /* undirected edges of the graph split */
    uint64_t seed;
    lp_node_split *node;                  /* (n_runs) for LP_SPLIT_NODE */
    lp_edge_split *link;                  /* (n_runs) for LP_SPLIT_LINK */
} lp_graph_splits;

/* Node splits: labelled nodes, 5-fold; run i tests on fold i % 5 (a fresh
 * permutation every 5 runs) and splits the rest 80/20 into train/val (sizes as
 * sklearn KFold + train_test_split(test_size=0.2): 64/16/20). */
lp_status lp_graph_splits_node(lp_graph_splits **out, const lp_graph_dataset *ds, int n_runs, uint64_t seed);
/* Edge splits: per run, val_frac / test_frac of the undirected edges are val /
 * test positives (floor, as PyG RandomLinkSplit), the rest train; one negative
 * (a non-edge u != v, distinct across the run's sets) per positive, sampled once. */
lp_status lp_graph_splits_link(lp_graph_splits **out, const lp_graph *g, int n_runs, double val_frac,
                               double test_frac, uint64_t seed);
void lp_graph_splits_free(lp_graph_splits *s);

/* Text split file (docs/GNN.md), written to a temporary file then renamed. */
lp_status lp_graph_splits_save(const lp_graph_splits *s, const char *path);
/* Read and check that the splits fit ds: node count, edge count, every id in
 * range, node sets disjoint and labelled, link positives are edges of the
 * graph and negatives are not. Errors name the file, run and field. */
lp_status lp_graph_splits_load(lp_graph_splits **out, const char *path, const lp_graph_dataset *ds);
/* Check an in-memory split against ds (what lp_graph_splits_load does after parsing). */
lp_status lp_graph_splits_check(const lp_graph_splits *s, const lp_graph_dataset *ds, const char *what);

/* The message-passing graph of a link split: train positives (plus val
 * positives when include_val), both directions, no self loops. */
lp_status lp_edge_split_graph(lp_graph **out, const lp_edge_split *s, int64_t n_nodes, int include_val);

#ifdef __cplusplus
}
#endif
#endif
