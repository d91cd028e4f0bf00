/* Node and edge splits of a graph data set: generation, checking, the link-prediction message-passing graph. */
#include "leanprop/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/rng.h"

static void free_node_split(lp_node_split *s)
{
    lp_free(s->train); lp_free(s->val); lp_free(s->test);
}

static void free_edge_split(lp_edge_split *s)
{
    lp_free(s->train_pos); lp_free(s->train_neg); lp_free(s->val_pos);
    lp_free(s->val_neg); lp_free(s->test_pos); lp_free(s->test_neg);
}

void lp_graph_splits_free(lp_graph_splits *s)
{
    if (!s) return;
    for (int r = 0; r < s->n_runs; r++) {
        if (s->node) free_node_split(&s->node[r]);
        if (s->link) free_edge_split(&s->link[r]);
    }
    free(s->node);
    free(s->link);
    free(s);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t *take_sorted(const int64_t *src, int64_t n)
{
    int64_t *d = lp_alloc_array(LP_MEM_DATA, n ? (size_t)n : 1, sizeof(int64_t));
    if (!d) return NULL;
    if (n) memcpy(d, src, (size_t)n * sizeof(int64_t));
    qsort(d, (size_t)n, sizeof(int64_t), cmp_i64);
    return d;
}

lp_status lp_graph_splits_node(lp_graph_splits **out, const lp_graph_dataset *ds, int n_runs, uint64_t seed)
{
    if (!out || !ds || n_runs < 1 || n_runs > 1000) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_splits_node: bad arguments");
    *out = NULL;
    if (!ds->labels) return lp_error(LP_ERR_FORMAT, "%s: labels missing (node classification needs them)", ds->path);
    const int K = 5;
    int64_t n = ds->n_labelled;
    if (n < 2 * K) return lp_error(LP_ERR_FORMAT, "%s: only %lld labelled nodes; a 5-fold split needs 10", ds->path, (long long)n);
    lp_graph_splits *s = calloc(1, sizeof *s);
    int64_t *lab = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int64_t));
    int64_t *perm = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int64_t));
    int64_t *rest = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int64_t));
    int64_t *rp = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int64_t));
    lp_status st = LP_OK;
    if (!s || !lab || !perm || !rest || !rp || !(s->node = calloc((size_t)n_runs, sizeof *s->node))) {
        st = lp_error(LP_ERR_NOMEM, "out of memory making node splits");
        goto done;
    }
    s->kind = LP_SPLIT_NODE;
    s->n_runs = n_runs;
    s->n_nodes = ds->n_nodes;
    s->n_edges = ds->graph->n_edges / 2;
    s->seed = seed;
    for (int64_t i = 0, k = 0; i < ds->n_nodes; i++)
        if (ds->labels[i] >= 0) lab[k++] = i;
    for (int r = 0; r < n_runs; r++) {
        int fold = r % K;
        if (fold == 0) { /* KFold(shuffle): one permutation per 5 runs */
            lp_rng g;
            lp_rng_seed(&g, seed + 1000003ULL * (uint64_t)(r / K));
            lp_rng_permutation(&g, perm, (size_t)n);
        }
        int64_t base = n / K, extra = n % K, start = 0;
        for (int f = 0; f < fold; f++) start += base + (f < extra);
        int64_t tsize = base + (fold < extra);
        int64_t nr = 0;
        for (int64_t k = 0; k < n; k++)
            if (k < start || k >= start + tsize) rest[nr++] = lab[perm[k]];
        lp_rng g;   /* train_test_split(test_size=0.2, random_state=127 * run) */
        lp_rng_seed(&g, seed ^ (127ULL * (uint64_t)r + 0x9E3779B97F4A7C15ULL));
        lp_rng_permutation(&g, rp, (size_t)nr);
        int64_t nval = (int64_t)ceil(0.2 * (double)nr);
        for (int64_t k = 0; k < nr; k++) rp[k] = rest[rp[k]];
        for (int64_t k = 0; k < tsize; k++) rest[k] = lab[perm[start + k]];
        lp_node_split *ns = &s->node[r];
        ns->n_test = tsize;
        ns->n_val = nval;
        ns->n_train = nr - nval;
        ns->test = take_sorted(rest, tsize);
        ns->val = take_sorted(rp, nval);
        ns->train = take_sorted(rp + nval, nr - nval);
        if (!ns->test || !ns->val || !ns->train) { st = lp_error_context(LP_ERR_NOMEM, "node splits"); goto done; }
    }
done:
    lp_free(lab); lp_free(perm); lp_free(rest); lp_free(rp);
    if (st != LP_OK) { lp_graph_splits_free(s); return st; }
    *out = s;
    return LP_OK;
}

/* ---- a small open-addressing set of node pairs ---- */

typedef struct { uint64_t *keys; uint64_t mask; } pair_set;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

/* 1 if inserted, 0 if present. Keys are pair + 1 (0 = empty). */
static int set_insert(pair_set *s, uint64_t key)
{
    key += 1;
    for (uint64_t h = mix(key) & s->mask;; h = (h + 1) & s->mask) {
        if (s->keys[h] == key) return 0;
        if (s->keys[h] == 0) { s->keys[h] = key; return 1; }
    }
}

lp_status lp_graph_splits_link(lp_graph_splits **out, const lp_graph *g, int n_runs, double val_frac,
                               double test_frac, uint64_t seed)
{
    if (!out || !g || n_runs < 1 || n_runs > 1000 || !(val_frac >= 0) || !(test_frac >= 0) || val_frac + test_frac >= 1)
        return lp_error(LP_ERR_INVALID_ARG, "lp_graph_splits_link: bad arguments");
    *out = NULL;
    int64_t *pairs, m;
    LP_TRY(lp_graph_undirected_pairs(g, &pairs, &m));
    int64_t N = g->n_nodes;
    double non_edges = (double)N * (double)(N - 1) / 2.0 - (double)m;
    if (m < 3 || non_edges < 2.0 * (double)m) {
        lp_free(pairs);
        return lp_error(LP_ERR_FORMAT, "graph too small or too dense for a link split (%lld edges, %lld nodes)",
                        (long long)m, (long long)N);
    }
    lp_graph_splits *s = calloc(1, sizeof *s);
    int64_t *perm = lp_alloc_array(LP_MEM_SCRATCH, (size_t)m, sizeof(int64_t));
    int64_t *tmp = lp_alloc_array(LP_MEM_SCRATCH, 2 * (size_t)m, sizeof(int64_t));
    uint64_t cap = 1;
    while (cap < 4 * (uint64_t)m) cap <<= 1;
    pair_set set = {lp_alloc_array(LP_MEM_SCRATCH, cap, sizeof(uint64_t)), cap - 1};
    lp_status st = LP_OK;
    if (!s || !perm || !tmp || !set.keys || !(s->link = calloc((size_t)n_runs, sizeof *s->link))) {
        st = lp_error(LP_ERR_NOMEM, "out of memory making edge splits");
        goto done;
    }
    s->kind = LP_SPLIT_LINK;
    s->n_runs = n_runs;
    s->n_nodes = N;
    s->n_edges = m;
    s->seed = seed;
    int64_t nv = (int64_t)floor(val_frac * (double)m), nt = (int64_t)floor(test_frac * (double)m);
    int64_t ntr = m - nv - nt;
    for (int r = 0; r < n_runs; r++) {
        lp_rng rng;
        lp_rng_seed(&rng, seed + 7919ULL * (uint64_t)r);
        lp_rng_permutation(&rng, perm, (size_t)m);
        lp_edge_split *es = &s->link[r];
        es->n_train = ntr; es->n_val = nv; es->n_test = nt;
        int64_t **dst[6] = {&es->val_pos, &es->test_pos, &es->train_pos, &es->val_neg, &es->test_neg, &es->train_neg};
        int64_t cnt[3] = {nv, nt, ntr};
        for (int k = 0; k < 6; k++) {
            *dst[k] = lp_alloc_array(LP_MEM_DATA, cnt[k % 3] ? 2 * (size_t)cnt[k % 3] : 2, sizeof(int64_t));
            if (!*dst[k]) { st = lp_error_context(LP_ERR_NOMEM, "edge splits"); goto done; }
        }
        /* positives: val first, then test, then train (PyG RandomLinkSplit order) */
        for (int64_t k = 0, off = 0; k < 3; off += cnt[k], k++)
            for (int64_t j = 0; j < cnt[k]; j++) {
                (*dst[k])[2 * j] = pairs[2 * perm[off + j]];
                (*dst[k])[2 * j + 1] = pairs[2 * perm[off + j] + 1];
            }
        /* negatives: m distinct non-edges, sampled once */
        memset(set.keys, 0, cap * sizeof(uint64_t));
        for (int64_t j = 0; j < m;) {
            int64_t u = (int64_t)lp_rng_below(&rng, (uint64_t)N), v = (int64_t)lp_rng_below(&rng, (uint64_t)N);
            if (u == v || lp_graph_has_edge(g, u, v) || lp_graph_has_edge(g, v, u)) continue;
            if (u > v) { int64_t t = u; u = v; v = t; }
            if (!set_insert(&set, (uint64_t)u * (uint64_t)N + (uint64_t)v)) continue;
            tmp[2 * j] = u; tmp[2 * j + 1] = v;
            j++;
        }
        for (int64_t k = 0, off = 0; k < 3; off += cnt[k], k++)
            memcpy(*dst[3 + k], tmp + 2 * off, 2 * (size_t)cnt[k] * sizeof(int64_t));
    }
done:
    lp_free(pairs); lp_free(perm); lp_free(tmp); lp_free(set.keys);
    if (st != LP_OK) { lp_graph_splits_free(s); return st; }
    *out = s;
    return LP_OK;
}

static lp_status check_nodes(const int64_t *ids, int64_t n, unsigned char *mark, unsigned char bit,
                             const lp_graph_dataset *ds, const char *what, int run, const char *field)
{
    for (int64_t k = 0; k < n; k++) {
        int64_t v = ids[k];
        if (v < 0 || v >= ds->n_nodes)
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s[%lld] = %lld is not a node of %s (%lld nodes)", what, run,
                            field, (long long)k, (long long)v, ds->path, (long long)ds->n_nodes);
        if (ds->labels[v] < 0)
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s node %lld has no label in %s", what, run, field,
                            (long long)v, ds->path);
        if (mark[v])
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s node %lld appears twice (sets must be disjoint)", what, run,
                            field, (long long)v);
        mark[v] = bit;
    }
    return LP_OK;
}

static lp_status check_pairs(const int64_t *p, int64_t n, int positive, const lp_graph *g, const char *what, int run,
                             const char *field, const char *dpath)
{
    for (int64_t k = 0; k < n; k++) {
        int64_t u = p[2 * k], v = p[2 * k + 1];
        if (u < 0 || v < 0 || u >= g->n_nodes || v >= g->n_nodes)
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s pair %lld (%lld, %lld) is out of range for %s (%lld nodes)",
                            what, run, field, (long long)k, (long long)u, (long long)v, dpath, (long long)g->n_nodes);
        int edge = lp_graph_has_edge(g, u, v) || lp_graph_has_edge(g, v, u);
        if (positive && !edge)
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s pair (%lld, %lld) is not an edge of %s", what, run, field,
                            (long long)u, (long long)v, dpath);
        if (!positive && (edge || u == v))
            return lp_error(LP_ERR_FORMAT, "%s: run %d %s pair (%lld, %lld) is an edge of %s, not a negative", what,
                            run, field, (long long)u, (long long)v, dpath);
    }
    return LP_OK;
}

lp_status lp_graph_splits_check(const lp_graph_splits *s, const lp_graph_dataset *ds, const char *what)
{
    if (!s || !ds) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_splits_check: NULL argument");
    if (!what) what = "split";
    if (s->n_nodes != ds->n_nodes)
        return lp_error(LP_ERR_FORMAT, "%s: split is for %lld nodes, %s has %lld", what, (long long)s->n_nodes,
                        ds->path, (long long)ds->n_nodes);
    if (s->kind == LP_SPLIT_LINK) {
        int64_t m = ds->graph->n_edges / 2;
        if (s->n_edges != m)
            return lp_error(LP_ERR_FORMAT, "%s: split is for %lld edges, %s has %lld", what, (long long)s->n_edges,
                            ds->path, (long long)m);
        for (int r = 0; r < s->n_runs; r++) {
            const lp_edge_split *e = &s->link[r];
            LP_TRY(check_pairs(e->train_pos, e->n_train, 1, ds->graph, what, r, "train_pos", ds->path));
            LP_TRY(check_pairs(e->val_pos, e->n_val, 1, ds->graph, what, r, "val_pos", ds->path));
            LP_TRY(check_pairs(e->test_pos, e->n_test, 1, ds->graph, what, r, "test_pos", ds->path));
            LP_TRY(check_pairs(e->train_neg, e->n_train, 0, ds->graph, what, r, "train_neg", ds->path));
            LP_TRY(check_pairs(e->val_neg, e->n_val, 0, ds->graph, what, r, "val_neg", ds->path));
            LP_TRY(check_pairs(e->test_neg, e->n_test, 0, ds->graph, what, r, "test_neg", ds->path));
        }
        return LP_OK;
    }
    if (!ds->labels) return lp_error(LP_ERR_FORMAT, "%s: %s has no labels for a node split", what, ds->path);
    unsigned char *mark = lp_alloc(LP_MEM_SCRATCH, (size_t)ds->n_nodes ? (size_t)ds->n_nodes : 1);
    if (!mark) return LP_ERR_NOMEM;
    lp_status st = LP_OK;
    for (int r = 0; r < s->n_runs && st == LP_OK; r++) {
        const lp_node_split *n = &s->node[r];
        memset(mark, 0, (size_t)ds->n_nodes);
        if (n->n_train < 1 || n->n_val < 1 || n->n_test < 1)
            st = lp_error(LP_ERR_FORMAT, "%s: run %d has an empty train, val or test set", what, r);
        if (st == LP_OK) st = check_nodes(n->train, n->n_train, mark, 1, ds, what, r, "train");
        if (st == LP_OK) st = check_nodes(n->val, n->n_val, mark, 2, ds, what, r, "val");
        if (st == LP_OK) st = check_nodes(n->test, n->n_test, mark, 3, ds, what, r, "test");
    }
    lp_free(mark);
    return st;
}

lp_status lp_edge_split_graph(lp_graph **out, const lp_edge_split *s, int64_t n_nodes, int include_val)
{
    if (!out || !s) return lp_error(LP_ERR_INVALID_ARG, "lp_edge_split_graph: NULL argument");
    int64_t m = s->n_train + (include_val ? s->n_val : 0);
    int64_t *src = lp_alloc_array(LP_MEM_SCRATCH, m ? (size_t)m : 1, sizeof(int64_t));
    int64_t *dst = lp_alloc_array(LP_MEM_SCRATCH, m ? (size_t)m : 1, sizeof(int64_t));
    if (!src || !dst) { lp_free(src); lp_free(dst); return LP_ERR_NOMEM; }
    for (int64_t k = 0; k < s->n_train; k++) { src[k] = s->train_pos[2 * k]; dst[k] = s->train_pos[2 * k + 1]; }
    if (include_val)
        for (int64_t k = 0; k < s->n_val; k++) {
            src[s->n_train + k] = s->val_pos[2 * k];
            dst[s->n_train + k] = s->val_pos[2 * k + 1];
        }
    lp_status st = lp_graph_from_edges(out, n_nodes, src, dst, m, LP_GRAPH_SYMMETRIZE | LP_GRAPH_DROP_SELF_LOOPS,
                                       "link split");
    lp_free(src);
    lp_free(dst);
    return st;
}
