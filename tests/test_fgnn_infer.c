/* Inference rules of the forward methods, recomputed independently: the trained
 * layers are run here through plain lp_gnn_layer_forward on dense inputs (no
 * caching, no renumbering, no row blocks) and the spec's rule is applied
 *   SF            sum over layers of softmax(y_i . y_VN / tau)
 *   FF-LA         sum over layers of mean_j y_j^2 - theta, per candidate label
 *   SF-Top2Input  bottom-up with zero top-down input, then 10 alternating steps,
 *                 softmaxes of every layer at steps 2..9 summed
 * and the accuracies must equal what the trainer reports. */
#include "util/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/forwardgnn.h"
#include "train/fgnn_internal.h"

/* Cora: enough test nodes (542) and classes (7) that a different rule changes the accuracy */
static lp_graph_dataset *load_cora(void)
{
    const char *p = lp_test_shared("data/graphs/cora.npz");
    if (!p) return NULL;
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, p, NULL));
    return ds;
}

/* (N + extra, F) dense copy of the features; the extra rows are zero */
static float *features(const lp_graph_dataset *ds, int64_t extra)
{
    int64_t N = ds->n_nodes, F = ds->n_features;
    float *x = calloc((size_t)((N + extra) * F), sizeof *x);
    if (ds->x_dense) memcpy(x, ds->x_dense, (size_t)(N * F) * sizeof *x);
    else
        for (int64_t i = 0; i < N; i++)
            for (int64_t e = ds->x_sparse->indptr[i]; e < ds->x_sparse->indptr[i + 1]; e++)
                x[i * F + ds->x_sparse->indices[e]] = ds->x_sparse->values[e];
    return x;
}

static void rownorm(float *x, int64_t n, int64_t F)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t f = 0; f < F; f++) s += (double)x[i * F + f] * x[i * F + f];
        float inv = 1.0f / ((float)sqrt(s) + 1e-8f);
        for (int64_t f = 0; f < F; f++) x[i * F + f] *= inv;
    }
}

static float *layer_relu(lp_gnn_layer *l, const float *x, int64_t n, int64_t F, const lp_graph *g)
{
    int64_t D = lp_gnn_layer_out_dim(l);
    float *y = calloc((size_t)(n * D), sizeof *y);
    lp_gnn_input in = lp_gnn_input_dense(x, n, F);
    LP_ASSERT_OK(lp_gnn_layer_forward(l, y, &in, g, 0));
    for (int64_t i = 0; i < n * D; i++) y[i] = y[i] > 0 ? y[i] : 0;
    return y;
}

/* acc (ne, C) += softmax(y_i . y_{N+c} / tau) for the eval nodes */
static void add_softmax(double *acc, const float *y, int64_t N, int64_t C, int64_t D, const int64_t *eval, int64_t ne, double tau)
{
    for (int64_t k = 0; k < ne; k++) {
        double lg[16], mx = -1e300, s = 0;
        for (int64_t c = 0; c < C; c++) {
            double v = 0;
            for (int64_t d = 0; d < D; d++) v += (double)y[eval[k] * D + d] * y[(N + c) * D + d];
            lg[c] = v / tau;
            mx = lg[c] > mx ? lg[c] : mx;
        }
        for (int64_t c = 0; c < C; c++) s += exp(lg[c] - mx);
        for (int64_t c = 0; c < C; c++) acc[k * C + c] += exp(lg[c] - mx) / s;
    }
}

static double accuracy(const double *acc, const lp_graph_dataset *ds, const int64_t *eval, int64_t ne, int64_t C)
{
    int64_t ok = 0;
    for (int64_t k = 0; k < ne; k++) {
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (acc[k * C + c] > acc[k * C + best]) best = c;
        ok += best == ds->labels[eval[k]];
    }
    return (double)ok / (double)ne;
}

/* The augmented graph and normalised inputs of the virtual-node methods (original ids, VN c = N + c). */
static lp_graph *vn_graph(const lp_graph_dataset *ds, const lp_node_split *sp)
{
    int32_t *link = malloc((size_t)ds->n_nodes * sizeof *link);
    for (int64_t i = 0; i < ds->n_nodes; i++) link[i] = -1;
    for (int64_t k = 0; k < sp->n_train; k++) link[sp->train[k]] = ds->labels[sp->train[k]];
    lp_graph *g;
    LP_ASSERT_OK(lp_fgnn_vgraph(&g, ds->graph, ds->n_classes, link, NULL));
    free(link);
    return g;
}

static float *vn_inputs(const lp_graph_dataset *ds, uint64_t seed)
{
    int64_t N = ds->n_nodes, C = ds->n_classes, F = ds->n_features;
    float *x = features(ds, C), *v = fgnn_vn_features(C, F, seed);
    memcpy(x + N * F, v, (size_t)(C * F) * sizeof *x);
    lp_free(v);
    rownorm(x, N + C, F);
    return x;
}

/* the trainer's per-node scores (n_nodes, C) against ours (ne, C) for the eval nodes */
static void check_scores(const float *got, const double *want, const int64_t *eval, int64_t ne, int64_t C, const char *what)
{
    for (int64_t k = 0; k < ne; k++)
        for (int64_t c = 0; c < C; c++) LP_ASSERT_CLOSE(got[eval[k] * C + c], want[k * C + c], 2e-4, 2e-4, what);
}

static float *g_scores;   /* (n_nodes, C) filled by train() */

static lp_gnn_result train(lp_fgnn_method m, lp_graph_dataset *ds, lp_graph_splits *sp, lp_gnn_kind kind, int L,
                           int epochs, lp_fgnn_model **model)
{
    free(g_scores);
    g_scores = calloc((size_t)(ds->n_nodes * ds->n_classes), sizeof *g_scores);
    lp_fgnn_opts o = lp_fgnn_defaults();
    o.scores_out = g_scores;
    lp_gnn_train_config cfg = lp_gnn_train_defaults();
    cfg.kind = kind;
    cfg.n_layers = L;
    cfg.hidden = 16;
    cfg.epochs = epochs;
    cfg.patience = 5;
    cfg.seed = 77;
    lp_gnn_run_args a = {ds, LP_GNN_TASK_NODE, &sp->node[0], NULL, 0, &cfg, NULL, NULL};
    lp_gnn_result res;
    LP_ASSERT_OK(lp_fgnn_train(m, &a, &o, &res, NULL, model));
    return res;
}

static void test_sf_rule(void **state)
{
    (void)state;
    lp_graph_dataset *ds = load_cora();
    if (!ds) { LP_SKIP("data/graphs/cora.npz not found (set LEANPROP_SHARED)"); }
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 5));
    const lp_node_split *ns = &sp->node[0];
    for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
        lp_fgnn_model *m;
        lp_gnn_result res = train(LP_FGNN_SF, ds, sp, (lp_gnn_kind)kind, 3, 30, &m);
        int64_t N = ds->n_nodes, C = ds->n_classes, F = ds->n_features;
        lp_graph *g = vn_graph(ds, ns);
        float *x = vn_inputs(ds, 77);
        double *acc = calloc((size_t)(ns->n_test * C), sizeof *acc), *accv = calloc((size_t)(ns->n_val * C), sizeof *accv);
        for (int l = 0; l < 3; l++) {
            lp_gnn_layer *layer = lp_fgnn_model_layer(m, l);
            float *y = layer_relu(layer, x, N + C, F, g);
            F = lp_gnn_layer_out_dim(layer);
            add_softmax(acc, y, N, C, F, ns->test, ns->n_test, 1.0);
            add_softmax(accv, y, N, C, F, ns->val, ns->n_val, 1.0);
            free(x);
            x = y;
            rownorm(x, N + C, F);
        }
        check_scores(g_scores, acc, ns->test, ns->n_test, C, "SF summed softmaxes (test nodes)");
        check_scores(g_scores, accv, ns->val, ns->n_val, C, "SF summed softmaxes (val nodes)");
        LP_ASSERT_CLOSE(res.test, accuracy(acc, ds, ns->test, ns->n_test, C), 1e-12, 0, "SF test accuracy");
        LP_ASSERT_CLOSE(res.val, accuracy(accv, ds, ns->val, ns->n_val, C), 1e-12, 0, "SF val accuracy");
        free(acc); free(accv); free(x);
        lp_graph_free(g);
        lp_fgnn_model_free(m);
    }
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

static void test_ff_la_rule(void **state)
{
    (void)state;
    lp_graph_dataset *ds = load_cora();
    if (!ds) { LP_SKIP("data/graphs/cora.npz not found (set LEANPROP_SHARED)"); }
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 6));
    const lp_node_split *ns = &sp->node[0];
    lp_fgnn_model *m;
    lp_gnn_result res = train(LP_FGNN_FF_LA, ds, sp, LP_GNN_GCN, 2, 20, &m);
    int64_t N = ds->n_nodes, C = ds->n_classes, F = ds->n_features, W = F + C;
    float *x0 = features(ds, 0);
    int *known = calloc((size_t)N, sizeof *known);
    for (int64_t k = 0; k < ns->n_train; k++) known[ns->train[k]] = 1;
    for (int64_t k = 0; k < ns->n_val; k++) known[ns->val[k]] = 1;
    double *score = calloc((size_t)(ns->n_test * C), sizeof *score);
    for (int64_t c = 0; c < C; c++) {
        float *x = calloc((size_t)(N * W), sizeof *x);
        for (int64_t i = 0; i < N; i++) {
            memcpy(x + i * W, x0 + i * F, (size_t)F * sizeof *x);
            for (int64_t k = 0; k < C; k++) x[i * W + F + k] = 1.0f / (float)C;   /* unknown: uniform */
        }
        for (int64_t i = 0; i < N; i++)
            if (known[i]) { for (int64_t k = 0; k < C; k++) x[i * W + F + k] = ds->labels[i] == k; }
        for (int64_t k = 0; k < ns->n_test; k++)
            for (int64_t q = 0; q < C; q++) x[ns->test[k] * W + F + q] = q == c;   /* candidate */
        rownorm(x, N, W);
        int64_t in = W;
        for (int l = 0; l < 2; l++) {
            lp_gnn_layer *layer = lp_fgnn_model_layer(m, l);
            float *y = layer_relu(layer, x, N, in, ds->graph);
            int64_t D = lp_gnn_layer_out_dim(layer);
            for (int64_t k = 0; k < ns->n_test; k++) {
                double s = 0;
                for (int64_t d = 0; d < D; d++) s += (double)y[ns->test[k] * D + d] * y[ns->test[k] * D + d];
                score[k * C + c] += s / (double)D - 2.0;   /* mean, not sum, minus theta */
            }
            free(x);
            x = y;
            in = D;
            rownorm(x, N, in);
        }
        free(x);
    }
    check_scores(g_scores, score, ns->test, ns->n_test, C, "FF-LA summed goodness (test nodes)");
    LP_ASSERT_CLOSE(res.test, accuracy(score, ds, ns->test, ns->n_test, C), 1e-12, 0, "FF-LA test accuracy");
    free(score); free(known); free(x0);
    lp_fgnn_model_free(m);
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

/* concat(a (n, Fa), b (n, Fb) or zeros) */
static float *concat(const float *a, int64_t Fa, const float *b, int64_t Fb, int64_t n)
{
    float *x = calloc((size_t)(n * (Fa + Fb)), sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        memcpy(x + i * (Fa + Fb), a + i * Fa, (size_t)Fa * sizeof *x);
        if (b) memcpy(x + i * (Fa + Fb) + Fa, b + i * Fb, (size_t)Fb * sizeof *x);
    }
    return x;
}

static void test_top2input_rule(void **state)
{
    (void)state;
    lp_graph_dataset *ds = load_cora();
    if (!ds) { LP_SKIP("data/graphs/cora.npz not found (set LEANPROP_SHARED)"); }
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 7));
    const lp_node_split *ns = &sp->node[0];
    for (int L = 1; L <= 3; L += 2) {
        lp_fgnn_model *m;
        lp_gnn_result res = train(LP_FGNN_SF_TOP2INPUT, ds, sp, LP_GNN_GCN, L, 12, &m);
        int64_t N = ds->n_nodes, C = ds->n_classes, F = ds->n_features, n = N + C, H = 16;
        lp_graph *g = vn_graph(ds, ns);
        float *s[8] = {0};
        s[0] = vn_inputs(ds, 77);
        float *ctx = calloc((size_t)(n * C), sizeof *ctx);
        for (int64_t i = 0; i < N; i++)
            for (int64_t c = 0; c < C; c++) ctx[i * C + c] = 1.0f / (float)C;
        for (int64_t k = 0; k < ns->n_train; k++)
            for (int64_t c = 0; c < C; c++) ctx[ns->train[k] * C + c] = ds->labels[ns->train[k]] == c;
        for (int64_t c = 0; c < C; c++) ctx[(N + c) * C + c] = 1;
        rownorm(ctx, n, C);
        s[L + 1] = ctx;
        /* bottom-up with zero top-down input */
        for (int j = 0; j < L; j++) {
            int64_t Fa = j == 0 ? F : H, Fb = j + 2 <= L ? H : C;
            float *x = concat(s[j], Fa, NULL, Fb, n);
            s[j + 1] = layer_relu(lp_fgnn_model_layer(m, j), x, n, Fa + Fb, g);
            rownorm(s[j + 1], n, H);
            free(x);
        }
        double *acc = calloc((size_t)(ns->n_test * C), sizeof *acc), *accv = calloc((size_t)(ns->n_val * C), sizeof *accv);
        for (int t = 0; t < 10; t++)
            for (int pass = 0; pass < 2; pass++)
                for (int j = pass; j < L; j += 2) {
                    int64_t Fa = j == 0 ? F : H, Fb = j + 2 <= L ? H : C;
                    float *x = concat(s[j], Fa, s[j + 2], Fb, n);
                    float *y = layer_relu(lp_fgnn_model_layer(m, j), x, n, Fa + Fb, g);
                    if (t >= 2) {
                        add_softmax(acc, y, N, C, H, ns->test, ns->n_test, 1.0);
                        add_softmax(accv, y, N, C, H, ns->val, ns->n_val, 1.0);
                    }
                    rownorm(y, n, H);
                    free(s[j + 1]);
                    s[j + 1] = y;
                    free(x);
                }
        check_scores(g_scores, acc, ns->test, ns->n_test, C, "SF-Top2Input summed softmaxes (test nodes)");
        check_scores(g_scores, accv, ns->val, ns->n_val, C, "SF-Top2Input summed softmaxes (val nodes)");
        LP_ASSERT_CLOSE(res.test, accuracy(acc, ds, ns->test, ns->n_test, C), 1e-12, 0, "SF-Top2Input test accuracy");
        LP_ASSERT_CLOSE(res.val, accuracy(accv, ds, ns->val, ns->n_val, C), 1e-12, 0, "SF-Top2Input val accuracy");
        for (int j = 0; j <= L + 1; j++) free(s[j]);
        free(acc); free(accv);
        lp_graph_free(g);
        lp_fgnn_model_free(m);
    }
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sf_rule),
        cmocka_unit_test(test_ff_la_rule),
        cmocka_unit_test(test_top2input_rule),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_scores);
    return rc;
}
