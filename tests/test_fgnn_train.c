/* Forward-learning trainers end to end: no gradient crosses layers, activation
 * memory flat in depth (against backprop's growth), every method on every
 * layer kind, and short Cora runs reaching a sane accuracy. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/log.h"

static lp_graph_dataset *load(const char *rel)
{
    const char *p = lp_test_shared(rel);
    if (!p) return NULL;
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, p, NULL));
    return ds;
}

typedef struct {
    lp_graph_dataset *ds;
    lp_graph_splits *node, *link;
} data;

static int open_data(data *d, const char *rel)
{
    memset(d, 0, sizeof *d);
    if (!(d->ds = load(rel))) return 0;
    LP_ASSERT_OK(lp_graph_splits_node(&d->node, d->ds, 1, 101));
    LP_ASSERT_OK(lp_graph_splits_link(&d->link, d->ds->graph, 1, 0.16, 0.2, 101));
    return 1;
}

static void close_data(data *d)
{
    lp_graph_splits_free(d->node);
    lp_graph_splits_free(d->link);
    lp_graph_dataset_free(d->ds);
}

static lp_gnn_train_config small_cfg(lp_gnn_kind kind, int L, int epochs)
{
    lp_gnn_train_config c = lp_gnn_train_defaults();
    c.kind = kind;
    c.n_layers = L;
    c.hidden = 16;
    c.epochs = epochs;
    c.patience = 1000;
    c.seed = 10100;
    return c;
}

static lp_status run(lp_fgnn_method m, const data *d, const lp_gnn_train_config *cfg, const lp_fgnn_opts *o,
                     lp_gnn_result *res, lp_fgnn_report *rep, lp_fgnn_model **model)
{
    lp_gnn_task t = lp_fgnn_method_task(m);
    lp_gnn_run_args a = {d->ds, t, t == LP_GNN_TASK_NODE ? &d->node->node[0] : NULL,
                         t == LP_GNN_TASK_LINK ? &d->link->link[0] : NULL, 0, cfg, NULL, NULL};
    return lp_fgnn_train(m, &a, o, res, rep, model);
}

static int same_params(lp_gnn_layer *a, lp_gnn_layer *b)
{
    for (int i = 0; i < lp_gnn_layer_n_params(a); i++) {
        lp_gnn_param p = lp_gnn_layer_param(a, i), q = lp_gnn_layer_param(b, i);
        if (p.numel != q.numel || memcmp(p.data, q.data, (size_t)p.numel * sizeof(float))) return 0;
    }
    return 1;
}

/* Layer-wise methods: layer 1 of a 2-layer run is bit-identical to a 1-layer run,
 * and to a 2-layer run whose top layer has a different loss (weight 0 or 3). */
static void test_layerwise_no_gradient_crosses(void **state)
{
    (void)state;
    data d;
    if (!open_data(&d, "data/graphs/karate.edges.txt")) { LP_SKIP("data/graphs/karate.edges.txt not found (set LEANPROP_SHARED)"); }
    lp_fgnn_method ms[] = {LP_FGNN_SF, LP_FGNN_FF_LA, LP_FGNN_FF_VN, LP_FGNN_FL_CE, LP_FGNN_FL_FF};
    for (int k = 0; k < 5; k++)
        for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
            lp_gnn_train_config c1 = small_cfg((lp_gnn_kind)kind, 1, 12), c2 = small_cfg((lp_gnn_kind)kind, 2, 12);
            lp_fgnn_opts o = lp_fgnn_defaults();
            float w0[2] = {1, 0}, w3[2] = {1, 3};
            lp_gnn_result r1, r2, r3;
            lp_fgnn_report p1, p2;
            memset(&p1, 0, sizeof p1);
            memset(&p2, 0, sizeof p2);
            lp_fgnn_model *m1, *m2, *m3;
            LP_ASSERT_OK(run(ms[k], &d, &c1, NULL, &r1, &p1, &m1));
            LP_ASSERT_OK(run(ms[k], &d, &c2, NULL, &r2, &p2, &m2));
            o.layer_loss_weight = k % 2 ? w0 : w3;
            LP_ASSERT_OK(run(ms[k], &d, &c2, &o, &r3, NULL, &m3));
            char what[80];
            snprintf(what, sizeof what, "%s/%s", lp_fgnn_method_name(ms[k]), lp_gnn_kind_name((lp_gnn_kind)kind));
            if (!same_params(lp_fgnn_model_layer(m1, 0), lp_fgnn_model_layer(m2, 0))) fail_msg("%s: layer 1 changed by a layer above", what);
            if (!same_params(lp_fgnn_model_layer(m2, 0), lp_fgnn_model_layer(m3, 0))) fail_msg("%s: layer 1 changed by the top loss", what);
            if (same_params(lp_fgnn_model_layer(m2, 1), lp_fgnn_model_layer(m3, 1))) fail_msg("%s: the top loss had no effect", what);
            /* the depth-1 entry of the deeper run is the 1-layer run */
            assert_int_equal(p2.n_depths, 2);
            LP_ASSERT_CLOSE(p2.test[0], r1.test, 0, 0, what);
            LP_ASSERT_CLOSE(p2.val[0], r1.val, 0, 0, what);
            assert_int_equal(p2.epochs[0], p1.epochs[0]);
            LP_ASSERT_CLOSE(r2.test, p2.test[1], 0, 0, what);
            lp_fgnn_model_free(m1);
            lp_fgnn_model_free(m2);
            lp_fgnn_model_free(m3);
        }
    close_data(&d);
}

/* Synchronous methods: after one step, every layer below the top is identical whatever
 * the top layer's loss (its own loss only moves it); the top layer differs. */
static void test_sync_no_gradient_crosses(void **state)
{
    (void)state;
    data d;
    if (!open_data(&d, "data/graphs/karate.edges.txt")) { LP_SKIP("data/graphs/karate.edges.txt not found (set LEANPROP_SHARED)"); }
    lp_fgnn_method ms[] = {LP_FGNN_SF_TOP2LOSS, LP_FGNN_SF_TOP2INPUT, LP_FGNN_FL_CE_TOPDOWN};
    for (int k = 0; k < 3; k++)
        for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++) {
            lp_gnn_train_config c = small_cfg((lp_gnn_kind)kind, 3, 1);
            float w1[3] = {1, 1, 1}, w0[3] = {1, 1, 0};
            lp_fgnn_opts a = lp_fgnn_defaults(), b = lp_fgnn_defaults();
            a.layer_loss_weight = w1;
            b.layer_loss_weight = w0;
            lp_gnn_result ra, rb;
            lp_fgnn_model *ma, *mb;
            LP_ASSERT_OK(run(ms[k], &d, &c, &a, &ra, NULL, &ma));
            LP_ASSERT_OK(run(ms[k], &d, &c, &b, &rb, NULL, &mb));
            for (int l = 0; l < 2; l++)
                if (!same_params(lp_fgnn_model_layer(ma, l), lp_fgnn_model_layer(mb, l)))
                    fail_msg("%s/%s: layer %d changed by the top layer's loss", lp_fgnn_method_name(ms[k]),
                             lp_gnn_kind_name((lp_gnn_kind)kind), l + 1);
            assert_false(same_params(lp_fgnn_model_layer(ma, 2), lp_fgnn_model_layer(mb, 2)));
            lp_fgnn_model_free(ma);
            lp_fgnn_model_free(mb);
        }
    close_data(&d);
}

/* Peak LP_MEM_ACTIVATIONS: flat from 1 to 4 layers for SF (and FL-CE), growing for backprop. */
static void test_memory_flat_in_depth(void **state)
{
    (void)state;
    data d;
    if (!open_data(&d, "data/graphs/cora.npz")) { LP_SKIP("data/graphs/cora.npz not found (set LEANPROP_SHARED)"); }
    size_t sf[5] = {0}, fl[5] = {0}, bp[5] = {0};
    for (int L = 1; L <= 4; L++) {
        lp_gnn_train_config c = small_cfg(LP_GNN_GCN, L, 4);
        c.hidden = 128;
        lp_gnn_result r;
        LP_ASSERT_OK(run(LP_FGNN_SF, &d, &c, NULL, &r, NULL, NULL));
        sf[L] = r.mem.peak[LP_MEM_ACTIVATIONS];
        LP_ASSERT_OK(run(LP_FGNN_FL_CE, &d, &c, NULL, &r, NULL, NULL));
        fl[L] = r.mem.peak[LP_MEM_ACTIVATIONS];
        lp_gnn_run_args a = {d.ds, LP_GNN_TASK_NODE, &d.node->node[0], NULL, 0, &c, NULL, NULL};
        LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &r));
        bp[L] = r.mem.peak[LP_MEM_ACTIVATIONS];
        print_message("layers %d: peak activations SF %zu, FL-CE %zu, BP %zu bytes\n", L, sf[L], fl[L], bp[L]);
    }
    for (int L = 2; L <= 4; L++) {
        assert_true(sf[L] <= sf[1] + sf[1] / 2);   /* layer 1 (sparse input) and layers 2+ (dense 128) differ a little */
        assert_true(sf[L] == sf[2]);               /* from layer 2 on: exactly flat */
        assert_true(fl[L] == fl[2]);
        assert_true(bp[L] > bp[L - 1]);            /* backprop keeps every layer's output */
    }
    assert_true(sf[4] < bp[4]);
    close_data(&d);
}

/* Every method on every layer kind (karate, 2 layers, a few epochs): runs, sane metrics, nothing leaked. */
static void test_all_methods_all_kinds(void **state)
{
    (void)state;
    data d;
    if (!open_data(&d, "data/graphs/karate.edges.txt")) { LP_SKIP("data/graphs/karate.edges.txt not found (set LEANPROP_SHARED)"); }
    size_t before = lp_mem_total_current();
    for (int m = 0; m < LP_FGNN_METHOD_COUNT; m++)
        for (int kind = 0; kind < LP_GNN_KIND_COUNT; kind++)
            for (int cache = 0; cache < 2; cache++) {
                lp_gnn_train_config c = small_cfg((lp_gnn_kind)kind, 2, 6);
                lp_fgnn_opts o = lp_fgnn_defaults();
                o.cache = cache;
                o.ff_vn_shared_features = cache;   /* both FF-VN variants */
                lp_gnn_result r;
                lp_fgnn_report rep;
                memset(&rep, 0, sizeof rep);
                lp_status st = run((lp_fgnn_method)m, &d, &c, &o, &r, &rep, NULL);
                if (st != LP_OK) fail_msg("%s/%s: %s", lp_fgnn_method_name((lp_fgnn_method)m), lp_gnn_kind_name((lp_gnn_kind)kind), lp_error_message());
                assert_true(r.test >= 0 && r.test <= 1 && r.val >= 0 && r.val <= 1 && r.train >= 0 && r.train <= 1);
                assert_int_equal(rep.n_depths, 2);
                assert_true(r.epochs >= 6 && r.params > 0 && r.mem.peak[LP_MEM_ACTIVATIONS] > 0 && r.mem.peak[LP_MEM_OPTIMIZER] > 0);
                assert_true(rep.peak_activations[1] > 0);
                if (lp_fgnn_method_layerwise((lp_fgnn_method)m)) assert_true(rep.peak_activations[0] > 0 && rep.test[0] >= 0);
                else assert_true(isnan(rep.test[0]));
            }
    assert_int_equal(lp_mem_total_current(), before);
    close_data(&d);
}

/* Short Cora runs: SF and FL-CE reach a sane score within seconds. */
static void test_cora_short_runs(void **state)
{
    (void)state;
    data d;
    if (!open_data(&d, "data/graphs/cora.npz")) { LP_SKIP("data/graphs/cora.npz not found (set LEANPROP_SHARED)"); }
    lp_gnn_train_config c = small_cfg(LP_GNN_GCN, 2, 80);
    c.hidden = 128;
    c.patience = 20;
    lp_gnn_result r;
    double t = lp_time_now();
    LP_ASSERT_OK(run(LP_FGNN_SF, &d, &c, NULL, &r, NULL, NULL));
    print_message("SF GCN x2, <= 80 epochs per layer: test accuracy %.3f, %.2f s\n", r.test, lp_time_now() - t);
    assert_true(r.test > 0.80);
    t = lp_time_now();
    LP_ASSERT_OK(run(LP_FGNN_FL_CE, &d, &c, NULL, &r, NULL, NULL));
    print_message("FL-CE GCN x2, <= 80 epochs per layer: test ROC-AUC %.3f, %.2f s\n", r.test, lp_time_now() - t);
    assert_true(r.test > 0.80);
    close_data(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layerwise_no_gradient_crosses),
        cmocka_unit_test(test_sync_no_gradient_crosses),
        cmocka_unit_test(test_memory_flat_in_depth),
        cmocka_unit_test(test_all_methods_all_kinds),
        cmocka_unit_test(test_cora_short_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
