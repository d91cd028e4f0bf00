/* GNN training: metrics (accuracy, exact ROC-AUC with ties, mean/std), link scores,
 * the BP stack's wiring and memory accounting, and short BP runs (karate, cora). */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/metrics.h"
#include "leanprop/threads.h"

static void test_metrics(void **state)
{
    (void)state;
    float logits[4 * 3] = {1, 2, 0, 5, 1, 1, 0, 0, 0, 2, 2, 1};
    int32_t labels[4] = {1, 0, 2, 1};
    int64_t idx[2] = {1, 3};
    /* rows: argmax 1, 0, 0 (tie -> first), 0 (tie -> first) */
    LP_ASSERT_CLOSE(lp_accuracy_argmax(logits, 3, labels, NULL, 4), 0.5, 1e-12, 0, "accuracy");
    LP_ASSERT_CLOSE(lp_accuracy_argmax(logits, 3, labels, idx, 2), 0.5, 1e-12, 0, "accuracy idx");
    /* AUC: sklearn.metrics.roc_auc_score([1,0,1,0,1,0], [0.9,0.1,0.4,0.4,0.35,0.8]) = 0.6111... */
    float s1[6] = {0.9f, 0.1f, 0.4f, 0.4f, 0.35f, 0.8f};
    uint8_t y1[6] = {1, 0, 1, 0, 1, 0};
    double auc;
    LP_ASSERT_OK(lp_roc_auc(s1, y1, 6, &auc));
    LP_ASSERT_CLOSE(auc, 5.5 / 9.0, 1e-12, 0, "auc with a tie");
    float s2[4] = {1, 1, 1, 1};
    uint8_t y2[4] = {1, 0, 0, 1};
    LP_ASSERT_OK(lp_roc_auc(s2, y2, 4, &auc));
    LP_ASSERT_CLOSE(auc, 0.5, 1e-12, 0, "all tied");
    float s3[4] = {0.1f, 0.2f, 0.8f, 0.9f};
    uint8_t y3[4] = {0, 0, 1, 1};
    LP_ASSERT_OK(lp_roc_auc(s3, y3, 4, &auc));
    LP_ASSERT_CLOSE(auc, 1.0, 1e-12, 0, "perfect");
    uint8_t y4[4] = {1, 1, 1, 1};
    assert_int_equal(lp_roc_auc(s3, y4, 4, &auc), LP_ERR_INVALID_ARG);
    /* brute-force pair counting agrees on random scores with many ties */
    lp_rng r;
    lp_rng_seed(&r, 4);
    enum { n = 300 };
    float s[n];
    uint8_t y[n];
    for (int i = 0; i < n; i++) { s[i] = (float)lp_rng_below(&r, 20); y[i] = lp_rng_below(&r, 3) == 0; }
    double wins = 0, pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j]) { pairs++; wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0; }
    LP_ASSERT_OK(lp_roc_auc(s, y, n, &auc));
    LP_ASSERT_CLOSE(auc, wins / pairs, 1e-12, 0, "auc vs pair counting");
    double v[4] = {0.8, 0.9, 0.85, 0.75}, mean, std;
    lp_mean_std(v, 4, &mean, &std);
    LP_ASSERT_CLOSE(mean, 0.825, 1e-12, 0, "mean");
    LP_ASSERT_CLOSE(std, sqrt(0.003125), 1e-12, 0, "population std");
}

static void test_pair_scores_and_bce(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 8);
    enum { N = 6, D = 4, P = 5 };
    float z[N * D], s[P], ds[P], dz[N * D] = {0};
    int64_t pairs[2 * P] = {0, 1, 2, 3, 1, 4, 5, 5, 0, 3};
    uint8_t y[P] = {1, 1, 0, 0, 1};
    lp_test_randn(&r, z, N * D);
    LP_ASSERT_OK(lp_gnn_pair_scores(s, z, pairs, P, N, D));
    float loss;
    LP_ASSERT_OK(lp_bce_logits(&loss, ds, s, y, P, 1.0f));
    double ref = 0;
    for (int p = 0; p < P; p++) {
        double sg = 1 / (1 + exp(-(double)s[p]));
        ref -= y[p] ? log(sg) : log(1 - sg);
    }
    LP_ASSERT_CLOSE(loss, ref / P, 1e-6, 1e-6, "bce");
    LP_ASSERT_OK(lp_gnn_pair_scores_backward(dz, ds, z, pairs, P, N, D));
    for (int k = 0; k < N * D; k++) { /* central differences of the BCE loss in double */
        double h = 1e-3, L[2];
        for (int sg = 0; sg < 2; sg++) {
            double zz[N * D], acc = 0;
            for (int q = 0; q < N * D; q++) zz[q] = z[q] + (q == k ? (sg ? h : -h) : 0);
            for (int p = 0; p < P; p++) {
                double sc = 0;
                for (int d = 0; d < D; d++) sc += zz[pairs[2 * p] * D + d] * zz[pairs[2 * p + 1] * D + d];
                double sgm = 1 / (1 + exp(-sc));
                acc -= y[p] ? log(sgm) : log(1 - sgm);
            }
            L[sg] = acc / P;
        }
        LP_ASSERT_CLOSE(dz[k], (L[1] - L[0]) / (2 * h), 1e-4, 1e-3, "d score / d z");
    }
    int64_t bad[2] = {0, 6};
    assert_int_equal(lp_gnn_pair_scores(s, z, bad, 1, N, D), LP_ERR_INVALID_ARG);
}

/* The stack's gradients equal a hand-wired layer-by-layer backward (layers are FD-checked elsewhere). */
static void test_model_wiring(void **state)
{
    (void)state;
    for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
        lp_rng r;
        lp_rng_seed(&r, 20 + kind);
        int64_t src[] = {0, 1, 2, 3, 4, 5, 6, 2}, dst[] = {1, 2, 3, 4, 5, 6, 0, 5};
        lp_graph *g;
        LP_ASSERT_OK(lp_graph_from_edges(&g, 8, src, dst, 8, LP_GRAPH_SYMMETRIZE, "w"));
        lp_gnn_model_config mc = {(lp_gnn_kind)kind, 3, 5, 8, 3, 2};
        lp_gnn_model *m;
        LP_ASSERT_OK(lp_gnn_model_new(&m, &mc, &r));
        assert_int_equal(lp_gnn_model_n_layers(m), 3);
        float x[8 * 5], dout[8 * 3], *out;
        lp_test_randn(&r, x, 40);
        lp_test_randn(&r, dout, 24);
        lp_gnn_input in = lp_gnn_input_dense(x, 8, 5);
        lp_gnn_model_zero_grad(m);
        LP_ASSERT_OK(lp_gnn_model_forward(m, &in, g, 1, &out));
        float out_copy[24];
        memcpy(out_copy, out, sizeof out_copy);
        LP_ASSERT_OK(lp_gnn_model_backward(m, dout));
        /* by hand: same layers, ReLU between */
        int64_t n = lp_gnn_model_numel(m);
        float *grads_model = malloc((size_t)n * sizeof(float));
        int64_t off = 0;
        for (int l = 0; l < 3; l++)
            for (int i = 0; i < lp_gnn_layer_n_params(lp_gnn_model_layer(m, l)); i++) {
                lp_gnn_param p = lp_gnn_layer_param(lp_gnn_model_layer(m, l), i);
                memcpy(grads_model + off, p.grad, (size_t)p.numel * sizeof(float));
                off += p.numel;
            }
        assert_int_equal(off, n);
        lp_gnn_model_zero_grad(m);
        float h1[8 * 8], h2[8 * 8], y[8 * 3], d2[8 * 8] = {0}, d1[8 * 8] = {0};
        lp_gnn_layer *L0 = lp_gnn_model_layer(m, 0), *L1 = lp_gnn_model_layer(m, 1), *L2 = lp_gnn_model_layer(m, 2);
        lp_gnn_input i1 = lp_gnn_input_dense(h1, 8, 8), i2 = lp_gnn_input_dense(h2, 8, 8);
        LP_ASSERT_OK(lp_gnn_layer_forward(L0, h1, &in, g, 1));
        for (int k = 0; k < 64; k++) h1[k] = h1[k] > 0 ? h1[k] : 0;
        LP_ASSERT_OK(lp_gnn_layer_forward(L1, h2, &i1, g, 1));
        for (int k = 0; k < 64; k++) h2[k] = h2[k] > 0 ? h2[k] : 0;
        LP_ASSERT_OK(lp_gnn_layer_forward(L2, y, &i2, g, 1));
        lp_test_assert_allclose(y, out_copy, 24, 1e-7, 0, "model forward");
        LP_ASSERT_OK(lp_gnn_layer_backward(L2, d2, dout));
        for (int k = 0; k < 64; k++) d2[k] = h2[k] > 0 ? d2[k] : 0;
        LP_ASSERT_OK(lp_gnn_layer_backward(L1, d1, d2));
        for (int k = 0; k < 64; k++) d1[k] = h1[k] > 0 ? d1[k] : 0;
        LP_ASSERT_OK(lp_gnn_layer_backward(L0, NULL, d1));
        off = 0;
        for (int l = 0; l < 3; l++)
            for (int i = 0; i < lp_gnn_layer_n_params(lp_gnn_model_layer(m, l)); i++) {
                lp_gnn_param p = lp_gnn_layer_param(lp_gnn_model_layer(m, l), i);
                lp_test_assert_allclose(grads_model + off, p.grad, (size_t)p.numel, 1e-6, 1e-5, p.name);
                off += p.numel;
            }
        /* get / set params round trip */
        float *buf = malloc((size_t)n * sizeof(float));
        lp_gnn_model_get_params(m, buf);
        buf[0] += 1;
        lp_gnn_model_set_params(m, buf);
        assert_true(lp_gnn_layer_param(L0, 0).data[0] == buf[0]);
        free(buf);
        free(grads_model);
        lp_gnn_model_free(m);
        lp_graph_free(g);
    }
}

static int g_epochs_seen, g_vals_seen;
static void count_epochs(const lp_gnn_epoch *e, void *user)
{
    (void)user;
    g_epochs_seen++;
    if (!isnan(e->val_metric)) g_vals_seen++;
    assert_true(isfinite(e->loss));
}

static void test_bp_node_karate_all_models(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/karate.edges.txt");
    if (!path) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 5, 101));
    for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
        lp_gnn_train_config c = lp_gnn_train_defaults();
        c.kind = (lp_gnn_kind)kind;
        c.hidden = 16;
        c.epochs = 300;
        c.patience = 1000;
        c.lr = 1e-2f;
        double acc[5];
        for (int r = 0; r < 5; r++) {
            c.seed = 10100 + 3 * (uint64_t)r;
            lp_gnn_result res;
            g_epochs_seen = g_vals_seen = 0;
            lp_gnn_run_args a = {ds, LP_GNN_TASK_NODE, &sp->node[r], NULL, r, &c, count_epochs, NULL};
            LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &res));
            assert_int_equal(res.epochs, 300);
            assert_int_equal(g_epochs_seen, 300);
            assert_int_equal(g_vals_seen, 150);
            assert_true(res.best_epoch >= 2 && res.best_epoch <= 300 && res.best_epoch % 2 == 0);
            acc[r] = res.test;
        }
        double mean, std;
        lp_mean_std(acc, 5, &mean, &std);
        print_message("karate %s: test accuracy %.3f +- %.3f\n", lp_gnn_kind_name(c.kind), mean, std);
        assert_true(mean >= 0.75); /* the two clubs are nearly separable by structure */
    }
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

/* Early stopping: patience counts validations; the restored weights reproduce the best val score. */
static void test_bp_early_stopping_and_memory(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 101));
    lp_gnn_train_config c = lp_gnn_train_defaults();
    c.epochs = 400;
    c.patience = 5;
    c.lr = 0.05f; /* a large step so validation stalls early */
    lp_gnn_result res;
    lp_gnn_run_args a = {ds, LP_GNN_TASK_NODE, &sp->node[0], NULL, 0, &c, NULL, NULL};
    print_message("activations before: %zu\n", lp_mem_current(LP_MEM_ACTIVATIONS));
    LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &res));
    print_message("cora early stop: best epoch %d, stopped at %d, val %.4f test %.4f\n", res.best_epoch, res.epochs,
                  res.val, res.test);
    assert_true(res.epochs < 400);
    assert_int_equal(res.epochs, res.best_epoch + 2 * c.patience);
    /* exact activation accounting: two layer outputs (N x 128, N x 7) and the CE row statistics (N) */
    int64_t N = ds->n_nodes;
    assert_int_equal(res.mem.peak[LP_MEM_ACTIVATIONS], (size_t)(N * 128 + N * 7 + N) * 4);
    int64_t params = ds->n_features * 128 + 128 + 128 * 7 + 7;
    assert_int_equal(res.params, params);
    /* weights: the model plus the best-weight copy; Adam: two moments */
    assert_int_equal(res.mem.peak[LP_MEM_WEIGHTS], (size_t)(2 * params) * 4);
    assert_int_equal(res.mem.peak[LP_MEM_GRADIENTS], (size_t)params * 4);
    assert_true(res.mem.peak[LP_MEM_OPTIMIZER] >= (size_t)(2 * params) * 4); /* + the state's small header */
    assert_true(res.mem.peak[LP_MEM_OPTIMIZER] < (size_t)(2 * params) * 4 + 1024);
    assert_int_equal(lp_gnn_workspace_bytes(), 0);
    /* 4 layers keep two more N x 128 outputs: BP activations grow with depth */
    c.n_layers = 4;
    c.epochs = 4;
    LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &res));
    assert_int_equal(res.mem.peak[LP_MEM_ACTIVATIONS], (size_t)(3 * N * 128 + N * 7 + N) * 4);
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

static void test_bp_cora_short(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, path, NULL));
    lp_graph_splits *sp;
    LP_ASSERT_OK(lp_graph_splits_node(&sp, ds, 1, 101));
    lp_gnn_train_config c = lp_gnn_train_defaults();
    c.epochs = 200;
    c.lr = 1e-2f; /* 200 epochs instead of the full protocol: a faster step */
    lp_gnn_result res;
    lp_gnn_run_args a = {ds, LP_GNN_TASK_NODE, &sp->node[0], NULL, 0, &c, NULL, NULL};
    LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &res));
    print_message("cora gcn 200 epochs: test %.4f val %.4f (%.2f ms/epoch)\n", res.test, res.val, res.epoch_ms);
    assert_true(res.test > 0.82);
    lp_graph_splits_free(sp);
    /* link prediction: a few epochs learn something above chance */
    LP_ASSERT_OK(lp_graph_splits_link(&sp, ds->graph, 1, 0.16, 0.2, 101));
    c = lp_gnn_train_defaults();
    c.epochs = 40;
    lp_gnn_run_args b = {ds, LP_GNN_TASK_LINK, NULL, &sp->link[0], 0, &c, NULL, NULL};
    LP_ASSERT_OK(lp_gnn_train_bp_link(&b, &res));
    print_message("cora gcn link 40 epochs: test auc %.4f val %.4f train %.4f\n", res.test, res.val, res.train);
    assert_true(res.test > 0.65 && res.val > 0.65);
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
}

static void test_methods_registry(void **state)
{
    (void)state;
    const lp_gnn_method *m = lp_gnn_method_find("bp");
    assert_non_null(m);
    assert_ptr_equal(m->node, lp_gnn_train_bp_node);
    assert_ptr_equal(m->link, lp_gnn_train_bp_link);
    assert_null(lp_gnn_method_find("nope"));
    assert_true(lp_gnn_method_count() >= 1);
    assert_ptr_equal(lp_gnn_method_at(0), m);
    assert_null(lp_gnn_method_at(-1));
}

int main(void)
{
    lp_threads_set(getenv("LP_TEST_THREADS") ? atoi(getenv("LP_TEST_THREADS")) : 1); /* the machine is shared */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_pair_scores_and_bce),
        cmocka_unit_test(test_model_wiring),
        cmocka_unit_test(test_bp_node_karate_all_models),
        cmocka_unit_test(test_bp_early_stopping_and_memory),
        cmocka_unit_test(test_bp_cora_short),
        cmocka_unit_test(test_methods_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
