/* Forward-learning GNN building blocks: virtual-node augmentation (edges, GCN
 * degrees), the cached/direct convolution against lp_gnn_layer, per-layer loss
 * gradients against finite differences in double precision (SF, FF, and a
 * whole GCN/SAGE layer under the SF loss), inference rules on hand-made cases,
 * bad-input errors. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/rng.h"
#include "train/fgnn_internal.h"

/* path 0-1-...-(n-1) plus `chords` random chords, undirected */
static lp_graph *test_graph(int64_t n, int chords, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    int64_t m = n - 1 + chords, *src = malloc((size_t)m * sizeof *src), *dst = malloc((size_t)m * sizeof *dst);
    for (int64_t i = 0; i + 1 < n; i++) { src[i] = i; dst[i] = i + 1; }
    for (int k = 0; k < chords; k++) {
        int64_t u = (int64_t)lp_rng_below(&r, (uint64_t)n), v = (int64_t)lp_rng_below(&r, (uint64_t)n);
        if (u == v) v = (u + 2) % n;
        src[n - 1 + k] = u;
        dst[n - 1 + k] = v;
    }
    lp_graph *g;
    LP_ASSERT_OK(lp_graph_from_edges(&g, n, src, dst, m, LP_GRAPH_SYMMETRIZE | LP_GRAPH_DROP_SELF_LOOPS, "test"));
    free(src);
    free(dst);
    return g;
}

static void test_vgraph_edges_and_degrees(void **state)
{
    (void)state;
    lp_graph *g = test_graph(4, 0, 1);   /* 0-1-2-3 */
    int32_t link[4] = {0, -1, 1, 0};     /* VN 0 = node 4, VN 1 = node 5 */
    lp_graph *a;
    LP_ASSERT_OK(lp_fgnn_vgraph(&a, g, 2, link, NULL));
    assert_int_equal(a->n_nodes, 6);
    assert_int_equal(a->n_edges, 6 + 6);
    assert_true(a->symmetric);
    assert_true(lp_graph_has_edge(a, 0, 4) && lp_graph_has_edge(a, 4, 0));
    assert_true(lp_graph_has_edge(a, 3, 4) && lp_graph_has_edge(a, 4, 3));
    assert_true(lp_graph_has_edge(a, 2, 5) && lp_graph_has_edge(a, 5, 2));
    assert_false(lp_graph_has_edge(a, 1, 4) || lp_graph_has_edge(a, 1, 5) || lp_graph_has_edge(a, 4, 5));
    int64_t deg[6] = {2, 2, 3, 2, 2, 1};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(lp_graph_degree(a, i), deg[i]);
        LP_ASSERT_CLOSE(a->gcn_dinv[i], 1.0 / sqrt((double)deg[i] + 1.0), 1e-7, 1e-6, "GCN (deg + 1)^-1/2 incl. virtual nodes");
        LP_ASSERT_CLOSE(a->deg_inv[i], 1.0 / (double)deg[i], 1e-7, 1e-6, "SAGE 1/deg");
    }
    lp_graph_free(a);
    /* renumbered: new id = 5 - old id */
    int64_t rank[6] = {5, 4, 3, 2, 1, 0};
    LP_ASSERT_OK(lp_fgnn_vgraph(&a, g, 2, link, rank));
    assert_true(lp_graph_has_edge(a, 5, 1) && lp_graph_has_edge(a, 1, 5) && lp_graph_has_edge(a, 3, 0));
    assert_true(lp_graph_has_edge(a, 5, 4) && !lp_graph_has_edge(a, 4, 1));
    assert_int_equal(lp_graph_degree(a, 1), 2);   /* VN 0 */
    lp_graph_free(a);
    /* bad link class */
    int32_t bad[4] = {0, 2, -1, -1};
    assert_int_equal(lp_fgnn_vgraph(&a, g, 2, bad, NULL), LP_ERR_INVALID_ARG);
    lp_graph_free(g);
}

/* dense (n, n) propagation matrix in double: GCN Ahat or SAGE mean */
static double *dense_prop(const lp_graph *g, lp_gnn_kind kind)
{
    int64_t n = g->n_nodes;
    double *A = calloc((size_t)(n * n), sizeof *A);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t e = g->indptr[i]; e < g->indptr[i + 1]; e++) {
            int64_t j = g->indices[e];
            A[i * n + j] += kind == LP_GNN_GCN ? (double)g->gcn_dinv[i] * g->gcn_dinv[j] : 1.0 / (double)lp_graph_degree(g, i);
        }
        if (kind == LP_GNN_GCN) A[i * n + i] += (double)g->gcn_dinv[i] * g->gcn_dinv[i];
    }
    return A;
}

/* z (n, D) = layer(X) in double from the layer's parameters (GCN or SAGE) */
static void ref_layer(double *z, const lp_gnn_layer *l, const double *A, const double *X, int64_t n, int64_t F, int64_t D)
{
    lp_gnn_kind k = lp_gnn_layer_kind(l);
    const float *W = lp_gnn_layer_find_param(l, k == LP_GNN_GCN ? "lin.weight" : "lin_l.weight")->data;
    const float *b = lp_gnn_layer_find_param(l, k == LP_GNN_GCN ? "bias" : "lin_l.bias")->data;
    const float *Wr = k == LP_GNN_SAGE ? lp_gnn_layer_find_param(l, "lin_r.weight")->data : NULL;
    double *AX = calloc((size_t)(n * F), sizeof *AX);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t f = 0; f < F; f++) AX[i * F + f] += A[i * n + j] * X[j * F + f];
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) {
            double s = b[d];
            for (int64_t f = 0; f < F; f++) {
                s += AX[i * F + f] * W[f * D + d];
                if (Wr) s += X[i * F + f] * Wr[f * D + d];
            }
            z[i * D + d] = s;
        }
    free(AX);
}

static void test_vgraph_gcn_layer(void **state)
{
    (void)state;
    lp_graph *g = test_graph(7, 3, 2);
    int32_t link[7] = {0, 1, -1, 0, 2, -1, 1};
    lp_graph *a;
    LP_ASSERT_OK(lp_fgnn_vgraph(&a, g, 3, link, NULL));
    int64_t n = 10, F = 5, D = 4;
    lp_rng r;
    lp_rng_seed(&r, 3);
    float *x = malloc((size_t)(n * F) * sizeof *x), *y = malloc((size_t)(n * D) * sizeof *y);
    double *xd = malloc((size_t)(n * F) * sizeof *xd), *z = malloc((size_t)(n * D) * sizeof *z);
    lp_test_randn(&r, x, (size_t)(n * F));
    for (int64_t i = 0; i < n * F; i++) xd[i] = x[i];
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, LP_GNN_GCN, F, D, NULL, &r));
    lp_test_randn(&r, lp_gnn_layer_find_param(l, "bias")->data, (size_t)D);
    lp_gnn_input in = lp_gnn_input_dense(x, n, F);
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, a, 0));
    double *A = dense_prop(a, LP_GNN_GCN);
    /* the virtual node of class 0 (node 7) aggregates nodes 0 and 3 with degree 2 */
    LP_ASSERT_CLOSE(A[7 * n + 0], 1.0 / sqrt(3.0) / sqrt((double)lp_graph_degree(a, 0) + 1), 1e-7, 1e-6, "VN weight");
    ref_layer(z, l, A, xd, n, F, D);
    for (int64_t i = 0; i < n * D; i++) LP_ASSERT_CLOSE(y[i], z[i], 1e-5, 1e-4, "GCN on the virtual-node graph");
    free(A); free(x); free(y); free(xd); free(z);
    lp_gnn_layer_free(l);
    lp_graph_free(a);
    lp_graph_free(g);
}

/* sparse copy of a dense matrix, transpose built */
static lp_csr *to_csr(const float *x, int64_t n, int64_t F)
{
    int64_t nnz = 0;
    for (int64_t i = 0; i < n * F; i++) nnz += x[i] != 0;
    lp_csr *m = fgnn_csr_new(n, F, nnz);
    assert_non_null(m);
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t f = 0; f < F; f++)
            if (x[i * F + f] != 0) { m->indices[w] = (int32_t)f; m->values[w] = x[i * F + f]; w++; }
        m->indptr[i + 1] = w;
    }
    LP_ASSERT_OK(fgnn_csr_finish(m));
    return m;
}

static void grads(const lp_gnn_layer *l, float *out)
{
    int64_t off = 0;
    for (int i = 0; i < lp_gnn_layer_n_params(l); i++) {
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        memcpy(out + off, p.grad, (size_t)p.numel * sizeof(float));
        off += p.numel;
    }
}

/* conv over rows [r0, r1) (cached or not, dense or sparse input, split in two parts or not)
 * == lp_gnn_layer_forward/backward on the whole input */
static void check_conv(lp_gnn_kind kind, int cache, int sparse, int split)
{
    lp_graph *g = test_graph(23, 12, 4);
    int64_t n = 23, F = 9, D = 8, r0 = 5, r1 = 17, m = r1 - r0;
    lp_rng r;
    lp_rng_seed(&r, 5 + (uint64_t)kind);
    float *x = calloc((size_t)(n * F), sizeof *x);
    for (int64_t i = 0; i < n * F; i++) x[i] = lp_rng_uniform(&r) < (sparse ? 0.3f : 1.0f) ? lp_rng_normal(&r) : 0.0f;
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, kind, F, D, NULL, &r));
    int64_t np = lp_gnn_layer_numel(l);
    float *yref = calloc((size_t)(n * D), sizeof(float)), *dy = calloc((size_t)(n * D), sizeof(float));
    float *z = calloc((size_t)(m * D), sizeof(float)), *gref = calloc((size_t)np, sizeof(float)), *gc = calloc((size_t)np, sizeof(float));
    for (int64_t i = r0 * D; i < r1 * D; i++) dy[i] = lp_rng_normal(&r);
    lp_gnn_input in = lp_gnn_input_dense(x, n, F);
    lp_gnn_layer_zero_grad(l);
    LP_ASSERT_OK(lp_gnn_layer_forward(l, yref, &in, g, 1));
    LP_ASSERT_OK(lp_gnn_layer_backward(l, NULL, dy));
    grads(l, gref);
    lp_gnn_layer_release(l);
    /* the same through fgnn_conv */
    int64_t F0 = split ? 4 : F;
    float *xa = calloc((size_t)(n * F0), sizeof(float)), *xb = split ? calloc((size_t)(n * (F - F0)), sizeof(float)) : NULL;
    for (int64_t i = 0; i < n; i++) {
        memcpy(xa + i * F0, x + i * F, (size_t)F0 * sizeof(float));
        if (split) memcpy(xb + i * (F - F0), x + i * F + F0, (size_t)(F - F0) * sizeof(float));
    }
    lp_csr *sa = sparse ? to_csr(xa, n, F0) : NULL;
    fgnn_part parts[2] = {{sparse ? NULL : xa, sa, F0, 1}, {xb, NULL, F - F0, 1}};
    fgnn_conv c;
    LP_ASSERT_OK(fgnn_conv_init(&c, l, g, parts, split ? 2 : 1, cache ? FGNN_CONV_CACHE : 0));
    lp_gnn_layer_zero_grad(l);
    LP_ASSERT_OK(fgnn_conv_forward(&c, z, r0, r1, 1));
    LP_ASSERT_OK(fgnn_conv_backward(&c, dy + r0 * D, r0, r1));
    grads(l, gc);
    char what[96];
    snprintf(what, sizeof what, "%s cache %d sparse %d split %d: forward rows", lp_gnn_kind_name(kind), cache, sparse, split);
    lp_test_assert_allclose(z, yref + r0 * D, (size_t)(m * D), 1e-5, 1e-4, what);
    snprintf(what, sizeof what, "%s cache %d sparse %d split %d: parameter gradients", lp_gnn_kind_name(kind), cache, sparse, split);
    lp_test_assert_allclose(gc, gref, (size_t)np, 1e-4, 1e-4, what);
    /* all rows */
    float *zall = calloc((size_t)(n * D), sizeof(float));
    LP_ASSERT_OK(fgnn_conv_forward(&c, zall, 0, n, 0));
    lp_test_assert_allclose(zall, yref, (size_t)(n * D), 1e-5, 1e-4, "all rows");
    fgnn_conv_release(&c);
    free(zall); free(xa); free(xb); free(x); free(yref); free(dy); free(z); free(gref); free(gc);
    lp_csr_free(sa);
    lp_gnn_layer_free(l);
    lp_graph_free(g);
}

static void test_conv_matches_layer(void **state)
{
    (void)state;
    for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++)
        for (int cache = 0; cache < 2; cache++)
            for (int sparse = 0; sparse < 2; sparse++)
                for (int split = 0; split < 2; split++) check_conv((lp_gnn_kind)kind, cache, sparse, split);
}

/* a muted part contributes zeros: conv([x, y] with y muted) == conv([x, 0]) */
static void test_conv_mute(void **state)
{
    (void)state;
    lp_graph *g = test_graph(12, 5, 6);
    int64_t n = 12, F = 6, D = 4;
    lp_rng r;
    lp_rng_seed(&r, 7);
    float *x = malloc((size_t)(n * F) * sizeof *x), *zero = calloc((size_t)(n * F), sizeof *zero);
    lp_test_randn(&r, x, (size_t)(n * F));
    float *ya = calloc((size_t)(n * D), sizeof(float)), *yb = calloc((size_t)(n * D), sizeof(float));
    for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
        lp_gnn_layer *l;
        LP_ASSERT_OK(lp_gnn_layer_new(&l, (lp_gnn_kind)kind, 2 * F, D, NULL, &r));
        fgnn_part pa[2] = {{x, NULL, F, 1}, {x, NULL, F, 1}}, pb[2] = {{x, NULL, F, 1}, {zero, NULL, F, 1}};
        fgnn_conv a, b;
        LP_ASSERT_OK(fgnn_conv_init(&a, l, g, pa, 2, FGNN_CONV_CACHE | FGNN_CONV_MUTABLE));
        LP_ASSERT_OK(fgnn_conv_init(&b, l, g, pb, 2, 0));
        fgnn_conv_mute(&a, 1, 1);
        LP_ASSERT_OK(fgnn_conv_forward(&a, ya, 0, n, 0));
        LP_ASSERT_OK(fgnn_conv_forward(&b, yb, 0, n, 0));
        lp_test_assert_allclose(ya, yb, (size_t)(n * D), 1e-6, 1e-5, "muted part");
        fgnn_conv_mute(&a, 1, 0);
        LP_ASSERT_OK(fgnn_conv_forward(&a, ya, 0, n, 0));
        assert_true(lp_test_close_ratio(ya, yb, (size_t)(n * D), 1e-6, 1e-5, NULL) > 1);
        fgnn_conv_release(&a);
        fgnn_conv_release(&b);
        lp_gnn_layer_free(l);
    }
    free(x); free(zero); free(ya); free(yb);
    lp_graph_free(g);
}

/* ---- losses in double ---- */

static double sf_loss_ref(const double *y, const double *vn, const int32_t *lab, int64_t n, int64_t C, int64_t D, double tau)
{
    double L = 0;
    for (int64_t i = 0; i < n; i++) {
        double lg[16], mx = -1e300, s = 0;
        for (int64_t c = 0; c < C; c++) {
            lg[c] = 0;
            for (int64_t d = 0; d < D; d++) lg[c] += y[i * D + d] * vn[c * D + d];
            lg[c] /= tau;
            mx = lg[c] > mx ? lg[c] : mx;
        }
        for (int64_t c = 0; c < C; c++) s += exp(lg[c] - mx);
        L += mx + log(s) - lg[lab[i]];
    }
    return L / (double)n;
}

static void test_sf_loss_fd(void **state)
{
    (void)state;
    int64_t n = 6, C = 3, D = 5;
    float tau = 0.7f;
    int32_t lab[6] = {0, 2, 1, 1, 0, 2};
    lp_rng r;
    lp_rng_seed(&r, 11);
    float y[30], vn[15], dy[30], dvn[15], loss;
    double yd[30], vd[15];
    lp_test_randn(&r, y, 30);
    lp_test_randn(&r, vn, 15);
    for (int i = 0; i < 30; i++) yd[i] = y[i];
    for (int i = 0; i < 15; i++) vd[i] = vn[i];
    int64_t correct;
    LP_ASSERT_OK(lp_fgnn_sf_loss(&loss, dy, dvn, &correct, y, vn, lab, n, C, D, tau));
    LP_ASSERT_CLOSE(loss, sf_loss_ref(yd, vd, lab, n, C, D, tau), 1e-5, 1e-5, "SF loss value");
    const double h = 1e-6;
    for (int i = 0; i < 30; i++) {
        double s = yd[i];
        yd[i] = s + h; double lp = sf_loss_ref(yd, vd, lab, n, C, D, tau);
        yd[i] = s - h; double lm = sf_loss_ref(yd, vd, lab, n, C, D, tau);
        yd[i] = s;
        LP_ASSERT_CLOSE(dy[i], (lp - lm) / (2 * h), 1e-5, 1e-3, "SF dL/dy");
    }
    for (int i = 0; i < 15; i++) {
        double s = vd[i];
        vd[i] = s + h; double lp = sf_loss_ref(yd, vd, lab, n, C, D, tau);
        vd[i] = s - h; double lm = sf_loss_ref(yd, vd, lab, n, C, D, tau);
        vd[i] = s;
        LP_ASSERT_CLOSE(dvn[i], (lp - lm) / (2 * h), 1e-5, 1e-3, "SF dL/dvn");
    }
    /* in place: dy over y, dvn over vn */
    float yi[30], vi[15];
    memcpy(yi, y, sizeof yi);
    memcpy(vi, vn, sizeof vi);
    float l2;
    LP_ASSERT_OK(lp_fgnn_sf_loss(&l2, yi, vi, NULL, yi, vi, lab, n, C, D, tau));
    lp_test_assert_allclose(yi, dy, 30, 1e-7, 1e-6, "SF dy in place");
    lp_test_assert_allclose(vi, dvn, 15, 1e-7, 1e-6, "SF dvn in place");
    /* correct count = argmax of the logits */
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bv = -1e300;
        for (int c = 0; c < C; c++) {
            double v = 0;
            for (int d = 0; d < D; d++) v += yd[i * D + d] * vd[c * D + d];
            if (v > bv) { bv = v; best = c; }
        }
        ok += best == lab[i];
    }
    assert_int_equal(correct, ok);
}

static double ff_loss_ref(const double *pos, const double *neg, int K, int64_t n, int64_t D, double theta)
{
    double L = 0;
    for (int k = 0; k <= K; k++) {
        const double *y = k == 0 ? pos : neg + (k - 1) * n * D;
        double part = 0;
        for (int64_t i = 0; i < n; i++) {
            double G = 0;
            for (int64_t d = 0; d < D; d++) G += y[i * D + d] * y[i * D + d];
            double x = k == 0 ? theta - G : G - theta;
            part += log1p(exp(x));
        }
        L += k == 0 ? part / n : part / n / K;
    }
    return L;
}

static void test_ff_loss_fd(void **state)
{
    (void)state;
    enum { K = 3, n = 4, D = 3 };
    float theta = 2.0f, pos[n * D], neg[K][n * D], dpos[n * D], dneg[K][n * D], loss;
    double all[(K + 1) * n * D];
    lp_rng r;
    lp_rng_seed(&r, 13);
    lp_test_randn(&r, pos, n * D);
    for (int k = 0; k < K; k++) lp_test_randn(&r, neg[k], n * D);
    for (int i = 0; i < n * D; i++) all[i] = pos[i];
    for (int k = 0; k < K; k++)
        for (int i = 0; i < n * D; i++) all[(k + 1) * n * D + i] = neg[k][i];
    const float *negp[K] = {neg[0], neg[1], neg[2]};
    float *dnegp[K] = {dneg[0], dneg[1], dneg[2]};
    LP_ASSERT_OK(lp_fgnn_ff_loss(&loss, dpos, dnegp, pos, negp, K, n, D, theta));
    LP_ASSERT_CLOSE(loss, ff_loss_ref(all, all + n * D, K, n, D, theta), 1e-5, 1e-5, "FF loss value");
    const double h = 1e-6;
    for (int i = 0; i < (K + 1) * n * D; i++) {
        double s = all[i];
        all[i] = s + h; double lp = ff_loss_ref(all, all + n * D, K, n, D, theta);
        all[i] = s - h; double lm = ff_loss_ref(all, all + n * D, K, n, D, theta);
        all[i] = s;
        float an = i < n * D ? dpos[i] : dneg[i / (n * D) - 1][i % (n * D)];
        LP_ASSERT_CLOSE(an, (lp - lm) / (2 * h), 1e-5, 1e-3, "FF dL/dy");
    }
}

/* One GCN or SAGE layer + ReLU + SF loss, as fgnn_sf trains it (conv rows [0, n_train + C)),
 * against finite differences of a double-precision reference over every parameter. */
static void check_layer_sf_grad(lp_gnn_kind kind)
{
    lp_graph *g0 = test_graph(9, 4, 21);
    int32_t link[9] = {0, 1, 0, 1, -1, -1, -1, -1, -1};   /* train = 0..3, linked to their class VN */
    int64_t rank[11] = {0, 1, 2, 3, 6, 7, 8, 9, 10, 4, 5};  /* layout: train, VN, rest */
    lp_graph *g;
    LP_ASSERT_OK(lp_fgnn_vgraph(&g, g0, 2, link, rank));
    int64_t n = 11, F = 4, D = 3, ntr = 4, C = 2, m = ntr + C;
    int32_t lab[4] = {0, 1, 0, 1};
    lp_rng r;
    lp_rng_seed(&r, 22 + (uint64_t)kind);
    float *x = malloc((size_t)(n * F) * sizeof *x);
    double *xd = malloc((size_t)(n * F) * sizeof *xd), *z = malloc((size_t)(n * D) * sizeof *z);
    lp_test_randn(&r, x, (size_t)(n * F));
    for (int64_t i = 0; i < n * F; i++) xd[i] = x[i];
    lp_gnn_layer *l;
    LP_ASSERT_OK(lp_gnn_layer_new(&l, kind, F, D, NULL, &r));
    for (int i = 0; i < lp_gnn_layer_n_params(l); i++) {   /* larger weights: fewer dead units */
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        lp_test_randn(&r, p.data, (size_t)p.numel);
    }
    fgnn_part part = {x, NULL, F, 1};
    fgnn_conv c;
    LP_ASSERT_OK(fgnn_conv_init(&c, l, g, &part, 1, FGNN_CONV_CACHE));
    float *y = calloc((size_t)(m * D), sizeof(float)), *dy = calloc((size_t)(m * D), sizeof(float)), loss;
    lp_gnn_layer_zero_grad(l);
    LP_ASSERT_OK(fgnn_conv_forward(&c, y, 0, m, 1));
    fgnn_relu(y, m * D);
    LP_ASSERT_OK(lp_fgnn_sf_loss(&loss, dy, dy + ntr * D, NULL, y, y + ntr * D, lab, ntr, C, D, 1.0f));
    fgnn_relu_mask(dy, y, m * D);
    LP_ASSERT_OK(fgnn_conv_backward(&c, dy, 0, m));
    double *A = dense_prop(g, kind), yy[64], h = 1e-6;
#define REF_LOSS(out) do { ref_layer(z, l, A, xd, n, F, D); \
        for (int64_t q = 0; q < m * D; q++) yy[q] = z[q] > 0 ? z[q] : 0; \
        out = sf_loss_ref(yy, yy + ntr * D, lab, ntr, C, D, 1.0); } while (0)
    double L0;
    REF_LOSS(L0);
    LP_ASSERT_CLOSE(loss, L0, 1e-4, 1e-4, "layer + SF loss value");
    /* the reference reads float parameters: perturb in float, difference in double */
    for (int i = 0; i < lp_gnn_layer_n_params(l); i++) {
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        for (int64_t k = 0; k < p.numel; k++) {
            float s = p.data[k];
            double hp = 1e-3, lp_, lm_;
            p.data[k] = s + (float)hp; REF_LOSS(lp_);
            double hp_eff = (double)p.data[k] - s;
            p.data[k] = s - (float)hp; REF_LOSS(lm_);
            double hm_eff = s - (double)p.data[k];
            p.data[k] = s;
            char what[64];
            snprintf(what, sizeof what, "%s d loss / d %s[%lld]", lp_gnn_kind_name(kind), p.name, (long long)k);
            LP_ASSERT_CLOSE(p.grad[k], (lp_ - lm_) / (hp_eff + hm_eff), 2e-4, 2e-2, what);
        }
    }
    (void)h;
#undef REF_LOSS
    fgnn_conv_release(&c);
    free(A); free(x); free(xd); free(z); free(y); free(dy);
    lp_gnn_layer_free(l);
    lp_graph_free(g);
    lp_graph_free(g0);
}

static void test_layer_sf_gradients_fd(void **state)
{
    (void)state;
    check_layer_sf_grad(LP_GNN_GCN);
    check_layer_sf_grad(LP_GNN_SAGE);
}

/* ---- inference rules on hand-made cases ---- */

static void test_inference_rules(void **state)
{
    (void)state;
    /* SF sums per-layer softmaxes, not logits: layer 1 is sure of class 1, layers 2 and 3
     * mildly prefer class 0. Sum of softmaxes -> class 0; a sum of logits would say class 1. */
    float vn[4] = {1, 0, 0, 1}, y1[2] = {0, 10}, y2[2] = {3, 0};
    float acc[2] = {0, 0};
    LP_ASSERT_OK(lp_fgnn_sf_accumulate(acc, y1, vn, 1, 2, 2, 1.0f));
    LP_ASSERT_OK(lp_fgnn_sf_accumulate(acc, y2, vn, 1, 2, 2, 1.0f));
    LP_ASSERT_OK(lp_fgnn_sf_accumulate(acc, y2, vn, 1, 2, 2, 1.0f));
    LP_ASSERT_CLOSE(acc[0], 2 * (1 / (1 + exp(-3.0))) + 1 / (1 + exp(10.0)), 1e-6, 1e-5, "summed softmax");
    int32_t pred;
    int32_t lab0 = 0;
    assert_int_equal(lp_fgnn_argmax(&pred, acc, &lab0, 1, 2), 1);
    assert_int_equal(pred, 0);
    /* temperature divides the logits */
    float acc2[2] = {0, 0}, yt[2] = {1, 0};
    LP_ASSERT_OK(lp_fgnn_sf_accumulate(acc2, yt, vn, 1, 2, 2, 0.5f));
    LP_ASSERT_CLOSE(acc2[0], 1 / (1 + exp(-2.0)), 1e-6, 1e-5, "tau");
    /* FF goodness: mean (not sum) of squares minus theta, summed over layers */
    float g[2] = {0, 0}, ya[4] = {1, 1, 2, 0}, yb[4] = {0, 0, 0, 3};
    LP_ASSERT_OK(lp_fgnn_ff_accumulate(g, ya, 2, 2, 2.0f));
    LP_ASSERT_OK(lp_fgnn_ff_accumulate(g, yb, 2, 2, 2.0f));
    LP_ASSERT_CLOSE(g[0], (1.0 - 2) + (0.0 - 2), 1e-6, 0, "goodness row 0");
    LP_ASSERT_CLOSE(g[1], (2.0 - 2) + (4.5 - 2), 1e-6, 0, "goodness row 1");
    /* FF prediction: candidate scores per class, argmax, first maximum on ties */
    float sc[6] = {0.5f, 2.0f, 2.0f, -1, -3, -2};
    int32_t p2[2], lab[2] = {1, 0};
    assert_int_equal(lp_fgnn_argmax(p2, sc, lab, 2, 3), 2);
    assert_int_equal(p2[0], 1);
    assert_int_equal(p2[1], 0);
}

/* ---- bad input ---- */

static lp_graph_dataset *tiny_dataset(int with_labels)
{
    lp_graph *g = test_graph(30, 20, 31);
    float *x = lp_alloc_array(LP_MEM_DATA, 30 * 4, sizeof(float));
    int32_t *lab = with_labels ? lp_alloc_array(LP_MEM_DATA, 30, sizeof(int32_t)) : NULL;
    lp_rng r;
    lp_rng_seed(&r, 32);
    for (int i = 0; i < 120; i++) x[i] = lp_rng_uniform(&r);
    for (int i = 0; with_labels && i < 30; i++) lab[i] = i % 3;
    lp_graph_dataset *ds;
    lp_graph_load_opts o = lp_graph_load_defaults();
    LP_ASSERT_OK(lp_graph_dataset_assemble(&ds, "tiny", g, NULL, x, 4, lab, &o));
    return ds;
}

static void test_bad_inputs(void **state)
{
    (void)state;
    lp_graph_dataset *ds = tiny_dataset(1), *nolab = tiny_dataset(0);
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 1));
    lp_gnn_train_config cfg = lp_gnn_train_defaults();
    cfg.epochs = 2;
    cfg.hidden = 8;
    lp_gnn_result res;
    lp_gnn_run_args a = {ds, LP_GNN_TASK_NODE, &sp->node[0], NULL, 0, &cfg, NULL, NULL};
    /* depth 0 */
    cfg.n_layers = 0;
    for (int m = 0; m < LP_FGNN_METHOD_COUNT; m++) {
        a.task = lp_fgnn_method_task((lp_fgnn_method)m);
        assert_int_equal(lp_fgnn_train((lp_fgnn_method)m, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
        assert_non_null(strstr(lp_error_message(), "at least one layer"));
    }
    cfg.n_layers = LP_FGNN_MAX_LAYERS + 1;
    a.task = LP_GNN_TASK_NODE;
    assert_int_equal(lp_fgnn_train(LP_FGNN_SF, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    cfg.n_layers = 2;
    /* labels missing: every node method */
    a.data = nolab;
    for (int m = LP_FGNN_FF_LA; m <= LP_FGNN_SF_TOP2INPUT; m++) {
        assert_int_equal(lp_fgnn_train((lp_fgnn_method)m, &a, NULL, &res, NULL, NULL), LP_ERR_FORMAT);
        assert_non_null(strstr(lp_error_message(), "needs labels"));
    }
    a.data = ds;
    /* a link method asked for node classification, and the other way round */
    assert_int_equal(lp_fgnn_train(LP_FGNN_FL_CE, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    a.task = LP_GNN_TASK_LINK;
    assert_int_equal(lp_fgnn_train(LP_FGNN_SF, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    /* link prediction with no edges left for training */
    lp_edge_split es;
    memset(&es, 0, sizeof es);
    int64_t vp[2] = {0, 1}, vn[2] = {0, 5};
    es.n_val = es.n_test = 1;
    es.val_pos = es.test_pos = vp;
    es.val_neg = es.test_neg = vn;
    a.link = &es;
    a.node = NULL;
    for (int m = LP_FGNN_FL_CE; m <= LP_FGNN_FL_CE_TOPDOWN; m++) {
        assert_int_equal(lp_fgnn_train((lp_fgnn_method)m, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
        assert_non_null(strstr(lp_error_message(), "no training edges"));
    }
    a.link = NULL;
    assert_int_equal(lp_fgnn_train(LP_FGNN_FL_CE, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    /* bad options */
    a.task = LP_GNN_TASK_NODE;
    a.node = &sp->node[0];
    lp_fgnn_opts o = lp_fgnn_defaults();
    o.tau = 0;
    assert_int_equal(lp_fgnn_train(LP_FGNN_SF, &a, &o, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    o = lp_fgnn_defaults();
    o.first_scored_step = 10;
    assert_int_equal(lp_fgnn_train(LP_FGNN_SF_TOP2INPUT, &a, &o, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    /* GAT width that does not split into heads */
    cfg.kind = LP_GNN_GAT;
    cfg.hidden = 6;
    cfg.heads = 4;
    assert_int_equal(lp_fgnn_train(LP_FGNN_SF, &a, NULL, &res, NULL, NULL), LP_ERR_INVALID_ARG);
    /* names and the method table */
    lp_fgnn_method mm;
    assert_int_equal(lp_fgnn_method_parse("nope", &mm), LP_ERR_INVALID_ARG);
    for (int m = 0; m < LP_FGNN_METHOD_COUNT; m++) {
        LP_ASSERT_OK(lp_fgnn_method_parse(lp_fgnn_method_name((lp_fgnn_method)m), &mm));
        assert_int_equal(mm, m);
        const lp_gnn_method *row = lp_gnn_method_find(lp_fgnn_method_name((lp_fgnn_method)m));
        assert_non_null(row);
        int node = lp_fgnn_method_task((lp_fgnn_method)m) == LP_GNN_TASK_NODE;
        assert_true(node ? row->node && !row->link : !row->node && row->link);
    }
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
    lp_graph_dataset_free(nolab);
}

/* Dense features (the other input path: cached first layer for GCN/SAGE): every method runs. */
static void test_dense_features_all_methods(void **state)
{
    (void)state;
    lp_graph_dataset *ds = tiny_dataset(1);
    assert_non_null(ds->x_dense);
    lp_graph_splits *node, *link;
    LP_ASSERT_OK(lp_graph_splits_node(&node, ds, 1, 3));
    LP_ASSERT_OK(lp_graph_splits_link(&link, ds->graph, 1, 0.16, 0.2, 3));
    size_t before = lp_mem_total_current();
    for (int m = 0; m < LP_FGNN_METHOD_COUNT; m++)
        for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
            lp_gnn_train_config cfg = lp_gnn_train_defaults();
            cfg.kind = (lp_gnn_kind)kind;
            cfg.n_layers = 2;
            cfg.hidden = 8;
            cfg.epochs = 4;
            lp_gnn_task t = lp_fgnn_method_task((lp_fgnn_method)m);
            lp_gnn_run_args a = {ds, t, t == LP_GNN_TASK_NODE ? &node->node[0] : NULL, t == LP_GNN_TASK_LINK ? &link->link[0] : NULL,
                                 0, &cfg, NULL, NULL};
            lp_gnn_result res;
            lp_status st = lp_fgnn_train((lp_fgnn_method)m, &a, NULL, &res, NULL, NULL);
            if (st != LP_OK) fail_msg("%s/%s: %s", lp_fgnn_method_name((lp_fgnn_method)m), lp_gnn_kind_name((lp_gnn_kind)kind), lp_error_message());
            assert_true(res.test >= 0 && res.test <= 1 && res.epochs == 8 - 4 * !lp_fgnn_method_layerwise((lp_fgnn_method)m));
        }
    assert_int_equal(lp_mem_total_current(), before);
    lp_graph_splits_free(node);
    lp_graph_splits_free(link);
    lp_graph_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vgraph_edges_and_degrees),
        cmocka_unit_test(test_vgraph_gcn_layer),
        cmocka_unit_test(test_conv_matches_layer),
        cmocka_unit_test(test_conv_mute),
        cmocka_unit_test(test_sf_loss_fd),
        cmocka_unit_test(test_ff_loss_fd),
        cmocka_unit_test(test_layer_sf_gradients_fd),
        cmocka_unit_test(test_inference_rules),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_dense_features_all_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
