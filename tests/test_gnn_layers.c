/* GNN layers: PyG's own numbers (fixtures/pyg-layers, computed by PyG in float64),
 * and central finite differences on an independent double-precision dense
 * reference of each layer, on a directed graph with an isolated node. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/safetensors.h"

/* ---- PyG fixture ---- */

static float *load(const lp_safetensors *f, const char *name, int64_t n)
{
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) fail_msg("fixture lacks %s", name);
    if (t->numel != n) fail_msg("%s: %lld values, expected %lld", name, (long long)t->numel, (long long)n);
    float *v = malloc((size_t)n * sizeof(float));
    LP_ASSERT_OK(lp_safetensors_read_f32(f, name, v, (size_t)n));
    return v;
}

/* Copy PyG parameter values into the layer (transposing lin weights). */
static void set_param_from_pyg(lp_gnn_layer *l, const char *pyg, const float *v)
{
    const lp_gnn_param *p = lp_gnn_layer_find_param(l, pyg);
    if (!p) fail_msg("layer has no %s", pyg);
    for (int64_t r = 0; r < p->rows; r++)
        for (int64_t c = 0; c < p->cols; c++) p->data[r * p->cols + c] = p->transposed ? v[c * p->rows + r] : v[r * p->cols + c];
}

static void check_grad_vs_pyg(lp_gnn_layer *l, const char *pyg, const float *ref, const char *what)
{
    const lp_gnn_param *p = lp_gnn_layer_find_param(l, pyg);
    float *g = malloc((size_t)p->numel * sizeof(float));
    for (int64_t r = 0; r < p->rows; r++)
        for (int64_t c = 0; c < p->cols; c++)
            g[p->transposed ? c * p->rows + r : r * p->cols + c] = p->grad[r * p->cols + c];
    lp_test_assert_allclose(g, ref, (size_t)p->numel, 1e-5, 1e-4, what);
    free(g);
}

static void run_fixture(const char *layer_name, lp_gnn_kind kind, const char *const *params, int n_params)
{
    const char *path = lp_test_shared("fixtures/pyg-layers/reference.safetensors");
    if (!path) { print_message("[ SKIP REASON ] pyg-layers fixture not found\n"); skip(); }
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, path));
    const int64_t N = 12, F = 7, D = 8;
    const lp_tensor_info *ei = lp_safetensors_find(f, "edge_index");
    assert_non_null(ei);
    int64_t E = ei->shape[1];
    int64_t *edges = malloc((size_t)(2 * E) * sizeof(int64_t));
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "edge_index", edges, (size_t)(2 * E)));
    lp_graph *g;
    LP_ASSERT_OK(lp_graph_from_edges(&g, N, edges, edges + E, E, 0, "edge_index"));
    assert_int_equal(g->n_edges, E);
    assert_true(g->symmetric);
    float *x = load(f, "x", N * F);
    char name[128];
    lp_rng rng;
    lp_rng_seed(&rng, 1);
    lp_gnn_layer_opts o = lp_gnn_layer_defaults(); /* GAT: 4 heads, concat */
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, kind, F, D, &o, &rng));
    for (int i = 0; i < n_params; i++) {
        snprintf(name, sizeof name, "%s.param.%s", layer_name, params[i]);
        const lp_gnn_param *p = lp_gnn_layer_find_param(l, params[i]);
        assert_non_null(p);
        float *v = load(f, name, p->numel);
        set_param_from_pyg(l, params[i], v);
        free(v);
    }
    float y[12 * 8], dx[12 * 7] = {0};
    lp_gnn_input in = lp_gnn_input_dense(x, N, F);
    lp_gnn_layer_zero_grad(l);
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 1));
    snprintf(name, sizeof name, "%s.out", layer_name);
    float *ref = load(f, name, N * D);
    lp_test_assert_allclose(y, ref, (size_t)(N * D), 1e-5, 1e-4, name);
    free(ref);
    snprintf(name, sizeof name, "%s.upstream", layer_name);
    float *up = load(f, name, N * D);
    LP_ASSERT_OK(lp_gnn_layer_backward(l, dx, up));
    free(up);
    snprintf(name, sizeof name, "%s.grad.x", layer_name);
    ref = load(f, name, N * F);
    lp_test_assert_allclose(dx, ref, (size_t)(N * F), 1e-5, 1e-4, name);
    free(ref);
    for (int i = 0; i < n_params; i++) {
        snprintf(name, sizeof name, "%s.grad.%s", layer_name, params[i]);
        const lp_gnn_param *p = lp_gnn_layer_find_param(l, params[i]);
        ref = load(f, name, p->numel);
        check_grad_vs_pyg(l, params[i], ref, name);
        free(ref);
    }
    lp_gnn_layer_free(l);
    lp_graph_free(g);
    free(x);
    free(edges);
    lp_safetensors_close(f);
}

static void test_pyg_gcn(void **state)
{
    (void)state;
    const char *p[] = {"lin.weight", "bias"};
    run_fixture("gcn", LP_GNN_GCN, p, 2);
}

static void test_pyg_sage(void **state)
{
    (void)state;
    const char *p[] = {"lin_l.weight", "lin_l.bias", "lin_r.weight"};
    run_fixture("sage", LP_GNN_SAGE, p, 3);
}

static void test_pyg_gat(void **state)
{
    (void)state;
    const char *p[] = {"lin.weight", "att_src", "att_dst", "bias"};
    run_fixture("gat", LP_GNN_GAT, p, 4);
}

/* ---- double-precision dense reference ---- */

enum { RN = 9, RF = 5 };

typedef struct {
    int kind;
    int64_t D, H, C;
    int concat;
    double A[RN][RN];      /* A[i][j] = 1: edge j -> i */
} ref_layer;

/* params in leanprop layout (double copies); returns y (RN, D) */
static void ref_forward(const ref_layer *r, double *const *P, const double *x, double *y)
{
    int64_t D = r->D;
    double deg[RN];
    for (int i = 0; i < RN; i++) { deg[i] = 0; for (int j = 0; j < RN; j++) deg[i] += r->A[i][j]; }
    if (r->kind == LP_GNN_GCN) {
        double t[RN][16];
        for (int n = 0; n < RN; n++)
            for (int d = 0; d < D; d++) { t[n][d] = 0; for (int f = 0; f < RF; f++) t[n][d] += x[n * RF + f] * P[0][f * D + d]; }
        for (int i = 0; i < RN; i++)
            for (int d = 0; d < D; d++) {
                double s = t[i][d] / (deg[i] + 1);
                for (int j = 0; j < RN; j++) s += r->A[i][j] * t[j][d] / sqrt((deg[i] + 1) * (deg[j] + 1));
                y[i * D + d] = s + P[1][d];
            }
    } else if (r->kind == LP_GNN_SAGE) {
        for (int i = 0; i < RN; i++)
            for (int d = 0; d < D; d++) {
                double s = P[1][d];
                for (int f = 0; f < RF; f++) {
                    double agg = 0;
                    for (int j = 0; j < RN; j++) agg += r->A[i][j] * x[j * RF + f];
                    if (deg[i] > 0) agg /= deg[i];
                    s += agg * P[0][f * D + d] + x[i * RF + f] * P[2][f * D + d];
                }
                y[i * D + d] = s;
            }
    } else {
        int64_t H = r->H, C = r->C, HC = H * C;
        double h[RN][16];
        for (int n = 0; n < RN; n++)
            for (int d = 0; d < HC; d++) { h[n][d] = 0; for (int f = 0; f < RF; f++) h[n][d] += x[n * RF + f] * P[0][f * HC + d]; }
        for (int i = 0; i < RN * D; i++) y[i] = 0;
        for (int k = 0; k < H; k++)
            for (int i = 0; i < RN; i++) {
                double e[RN], m = -1e300, z = 0;
                int nb[RN];
                for (int j = 0; j < RN; j++) {
                    nb[j] = r->A[i][j] != 0 || j == i;
                    double as = 0, ad = 0;
                    for (int c = 0; c < C; c++) { as += h[j][k * C + c] * P[1][k * C + c]; ad += h[i][k * C + c] * P[2][k * C + c]; }
                    double v = as + ad;
                    e[j] = v > 0 ? v : 0.2 * v;
                    if (nb[j] && e[j] > m) m = e[j];
                }
                for (int j = 0; j < RN; j++) if (nb[j]) z += exp(e[j] - m);
                for (int j = 0; j < RN; j++) {
                    if (!nb[j]) continue;
                    double a = exp(e[j] - m) / z;
                    for (int c = 0; c < C; c++) {
                        if (r->concat) y[i * D + k * C + c] += a * h[j][k * C + c];
                        else y[i * D + c] += a * h[j][k * C + c] / (double)H;
                    }
                }
            }
        for (int i = 0; i < RN; i++) for (int d = 0; d < D; d++) y[i * D + d] += P[3][d];
    }
}

static double ref_loss(const ref_layer *r, double *const *P, const double *x, const double *dy)
{
    double y[RN * 16], L = 0;
    ref_forward(r, P, x, y);
    for (int i = 0; i < RN * r->D; i++) L += y[i] * dy[i];
    return L;
}

static void fd_check(lp_gnn_kind kind, int concat, int sparse_input)
{
    lp_rng rng;
    lp_rng_seed(&rng, 100 + kind * 10 + concat);
    /* directed edges, node 8 has no in-edges and node 7 no edges at all */
    int64_t src[] = {0, 1, 2, 3, 4, 5, 6, 1, 2, 0, 3, 5, 8, 8, 4};
    int64_t dst[] = {1, 2, 3, 4, 5, 6, 0, 0, 1, 3, 1, 2, 0, 4, 6};
    int64_t E = 15;
    lp_graph *g;
    LP_ASSERT_OK(lp_graph_from_edges(&g, RN, src, dst, E, 0, "fd"));
    assert_false(g->symmetric);
    ref_layer r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.concat = concat;
    for (int64_t e = 0; e < E; e++) r.A[dst[e]][src[e]] = 1;
    lp_gnn_layer_opts o = lp_gnn_layer_defaults();
    o.heads = 2;
    o.concat = concat;
    int64_t D = 6;
    r.D = D;
    r.H = 2;
    r.C = concat ? 3 : 6;
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, kind, RF, D, &o, &rng));
    int np = lp_gnn_layer_n_params(l);
    double *P[4];
    for (int i = 0; i < np; i++) {
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        lp_test_randn(&rng, p.data, (size_t)p.numel); /* non-zero biases and attention too */
        P[i] = malloc((size_t)p.numel * sizeof(double));
        for (int64_t k = 0; k < p.numel; k++) P[i][k] = p.data[k];
    }
    float x[RN * RF], y[RN * 16], dyf[RN * 16], dx[RN * RF] = {0};
    double xd[RN * RF], dyd[RN * 16], yr[RN * 16];
    lp_test_randn(&rng, x, RN * RF);
    if (sparse_input) /* make x sparse-ish so the sparse path is exercised */
        for (int i = 0; i < RN * RF; i++) if (i % 3 == 1) x[i] = 0;
    lp_test_randn(&rng, dyf, (size_t)(RN * D));
    for (int i = 0; i < RN * RF; i++) xd[i] = x[i];
    for (int i = 0; i < RN * D; i++) dyd[i] = dyf[i];
    lp_csr *xs = NULL;
    lp_gnn_input in = lp_gnn_input_dense(x, RN, RF);
    if (sparse_input) {
        int64_t ip[RN + 1], ix[RN * RF], k = 0;
        float v[RN * RF];
        ip[0] = 0;
        for (int i = 0; i < RN; i++) {
            for (int f = 0; f < RF; f++) if (x[i * RF + f] != 0) { ix[k] = f; v[k] = x[i * RF + f]; k++; }
            ip[i + 1] = k;
        }
        LP_ASSERT_OK(lp_csr_from_arrays(&xs, RN, RF, ip, ix, v, k, "x"));
        LP_ASSERT_OK(lp_csr_build_transpose(xs));
        in = lp_gnn_input_sparse(xs);
    }
    lp_gnn_layer_zero_grad(l);
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 1));
    ref_forward(&r, P, xd, yr);
    for (int i = 0; i < RN * D; i++) LP_ASSERT_CLOSE(y[i], yr[i], 1e-5, 1e-5, "forward vs double reference");
    LP_ASSERT_OK(lp_gnn_layer_backward(l, sparse_input ? NULL : dx, dyf));
    const double h = 1e-6;
    char what[64];
    for (int i = 0; i < np; i++) {
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        for (int64_t k = 0; k < p.numel; k++) {
            double keep = P[i][k];
            P[i][k] = keep + h;
            double Lp = ref_loss(&r, P, xd, dyd);
            P[i][k] = keep - h;
            double Lm = ref_loss(&r, P, xd, dyd);
            P[i][k] = keep;
            snprintf(what, sizeof what, "%s d%s[%lld]", lp_gnn_kind_name(kind), p.name, (long long)k);
            LP_ASSERT_CLOSE(p.grad[k], (Lp - Lm) / (2 * h), 1e-4, 1e-4, what);
        }
    }
    if (!sparse_input)
        for (int k = 0; k < RN * RF; k++) {
            double keep = xd[k];
            xd[k] = keep + h;
            double Lp = ref_loss(&r, P, xd, dyd);
            xd[k] = keep - h;
            double Lm = ref_loss(&r, P, xd, dyd);
            xd[k] = keep;
            snprintf(what, sizeof what, "%s dx[%d]", lp_gnn_kind_name(kind), k);
            LP_ASSERT_CLOSE(dx[k], (Lp - Lm) / (2 * h), 1e-4, 1e-4, what);
        }
    for (int i = 0; i < np; i++) free(P[i]);
    lp_csr_free(xs);
    lp_gnn_layer_free(l);
    lp_graph_free(g);
}

static void test_fd_gcn(void **state) { (void)state; fd_check(LP_GNN_GCN, 1, 0); fd_check(LP_GNN_GCN, 1, 1); }
static void test_fd_sage(void **state) { (void)state; fd_check(LP_GNN_SAGE, 1, 0); fd_check(LP_GNN_SAGE, 1, 1); }
static void test_fd_gat_concat(void **state) { (void)state; fd_check(LP_GNN_GAT, 1, 0); fd_check(LP_GNN_GAT, 1, 1); }
static void test_fd_gat_mean(void **state) { (void)state; fd_check(LP_GNN_GAT, 0, 0); }

static void test_layer_memory_and_contract(void **state)
{
    (void)state;
    lp_rng rng;
    lp_rng_seed(&rng, 3);
    int64_t src[] = {0, 1, 2}, dst[] = {1, 2, 0};
    lp_graph *g, *gl;
    LP_ASSERT_OK(lp_graph_from_edges(&g, 3, src, dst, 3, LP_GRAPH_SYMMETRIZE, "t"));
    int64_t s2[] = {0, 1}, d2[] = {0, 2};
    LP_ASSERT_OK(lp_graph_from_edges(&gl, 3, s2, d2, 2, 0, "loops"));
    float x[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, y[3 * 8], dy[3 * 8];
    for (int i = 0; i < 24; i++) dy[i] = 0.1f * (float)i;
    lp_gnn_input in = lp_gnn_input_dense(x, 3, 4);
    lp_gnn_layer_opts o = lp_gnn_layer_defaults();
    lp_gnn_workspace_release();
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    size_t a0 = lp_mem_current(LP_MEM_ACTIVATIONS), s0 = lp_mem_current(LP_MEM_SCRATCH);
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, LP_GNN_GAT, 4, 8, &o, &rng));
    int64_t numel = 4 * 8 + 4 * 2 + 4 * 2 + 8;
    assert_int_equal(lp_gnn_layer_numel(l), numel);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS) - w0, numel * 4);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, numel * 4);
    /* backward before forward, graph with self loops, wrong input width */
    assert_int_equal(lp_gnn_layer_backward(l, NULL, dy), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_gnn_layer_forward(l, y, &in, gl, 1), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "self loops"));
    lp_gnn_input bad = lp_gnn_input_dense(x, 3, 3);
    assert_int_equal(lp_gnn_layer_forward(l, y, &bad, g, 1), LP_ERR_INVALID_ARG);
    /* GAT keeps exactly h (N x HC) + 3 (N x H) floats */
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 1));
    assert_int_equal(lp_gnn_layer_saved_bytes(l), (3 * 8 + 3 * 3 * 4) * 4);
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS) - a0, (3 * 8 + 3 * 3 * 4) * 4);
    assert_true(lp_mem_current(LP_MEM_SCRATCH) - s0 == lp_gnn_workspace_bytes()); /* temporaries recycled */
    lp_gnn_workspace_release();
    assert_int_equal(lp_mem_current(LP_MEM_SCRATCH), s0);
    LP_ASSERT_OK(lp_gnn_layer_backward(l, NULL, dy));
    lp_gnn_layer_release(l);
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
    assert_int_equal(lp_gnn_layer_backward(l, NULL, dy), LP_ERR_INVALID_ARG);
    /* inference keeps nothing */
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 0));
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
    lp_gnn_layer_free(l);
    /* GCN and SAGE keep nothing */
    for (int k = LP_GNN_GCN; k <= LP_GNN_SAGE; k++) {
        LP_ASSERT_OK(lp_gnn_layer_new(&l, (lp_gnn_kind)k, 4, 8, &o, &rng));
        LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 1));
        assert_int_equal(lp_gnn_layer_saved_bytes(l), 0);
        assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
        lp_gnn_layer_free(l);
    }
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    o.heads = 3;
    assert_int_equal(lp_gnn_layer_new(&l, LP_GNN_GAT, 4, 8, &o, &rng), LP_ERR_INVALID_ARG);
    lp_gnn_kind kk;
    LP_ASSERT_OK(lp_gnn_kind_parse("sage", &kk));
    assert_int_equal(kk, LP_GNN_SAGE);
    assert_int_equal(lp_gnn_kind_parse("gin", &kk), LP_ERR_INVALID_ARG);
    lp_graph_free(g);
    lp_graph_free(gl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pyg_gcn),
        cmocka_unit_test(test_pyg_sage),
        cmocka_unit_test(test_pyg_gat),
        cmocka_unit_test(test_fd_gcn),
        cmocka_unit_test(test_fd_sage),
        cmocka_unit_test(test_fd_gat_concat),
        cmocka_unit_test(test_fd_gat_mean),
        cmocka_unit_test(test_layer_memory_and_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
