/* Bad graph input, one test per failure class: each is a clear error naming the
 * file and the field, never a crash. */
#include "util/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/graph.h"
#include "test_graph_util.h"

static void expect_load_error(const char *path, lp_status want, const char *field, int require_labels)
{
    lp_graph_load_opts o = lp_graph_load_defaults();
    o.require_labels = require_labels;
    lp_graph_dataset *ds = NULL;
    lp_status st = lp_graph_dataset_load(&ds, path, &o);
    if (st != want) fail_msg("%s: expected %s, got %s: %s", path, lp_status_name(want), lp_status_name(st), lp_error_message());
    assert_null(ds);
    if (!strstr(lp_error_message(), path)) fail_msg("message lacks the file: %s", lp_error_message());
    if (field && !strstr(lp_error_message(), field)) fail_msg("message lacks '%s': %s", field, lp_error_message());
}

static void test_valid_small_npz_loads(void **state)
{
    (void)state;
    for (int deflate = 0; deflate < 2; deflate++) {
        npz_field f[9];
        npz_fields_default(f);
        const char *p = npz_fields_write(f, deflate);
        lp_graph_dataset *ds;
        LP_ASSERT_OK(lp_graph_dataset_load(&ds, p, NULL));
        assert_int_equal(ds->n_nodes, 4);
        assert_int_equal(ds->graph->n_edges, 6);
        assert_int_equal(ds->n_features, 3);
        assert_int_equal(ds->n_classes, 2);
        lp_graph_dataset_free(ds);
    }
}

static void test_truncated_zip(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    const char *p = npz_fields_write(f, 1);
    FILE *fp = fopen(p, "rb");
    static unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fp = fopen(p, "wb"); /* keep the first 60% */
    fwrite(buf, 1, n * 6 / 10, fp);
    fclose(fp);
    expect_load_error(p, LP_ERR_FORMAT, "end-of-central-directory", 0);
}

static void test_member_not_npy(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    tbuf junk = {0};
    tb_put(&junk, "PK junk that is not an array", 28);
    npz_fields_set(f, "adj_indices.npy", junk);
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "adj_indices: not a .npy", 0);
}

static void test_unsupported_dtype(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    static const char text[4 * 4 * 2] = {0};
    npz_fields_set(f, "labels.npy", make_npy("<U2", 0, "(4,)", text, sizeof text, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_UNSUPPORTED, "labels: .npy dtype '<U2' not supported", 0);
}

static void test_indptr_not_monotone(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    static const int32_t bad[5] = {0, 2, 1, 3, 3};
    npz_fields_set(f, "adj_indptr.npy", make_npy("<i4", 0, "(5,)", bad, sizeof bad, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "adj_indptr is not monotone", 0);
    npz_fields_default(f);
    static const int64_t bad_attr[5] = {0, 2, 3, 5, 4};
    npz_fields_set(f, "attr_indptr.npy", make_npy("<i8", 0, "(5,)", bad_attr, sizeof bad_attr, 1));
    expect_load_error(npz_fields_write(f, 1), LP_ERR_FORMAT, "attr_indptr is not monotone", 0);
}

static void test_index_out_of_range(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    static const int32_t bad[3] = {1, 9, 3};
    npz_fields_set(f, "adj_indices.npy", make_npy("<i4", 0, "(3,)", bad, sizeof bad, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "adj_indices[1] = 9 is out of range", 0);
    npz_fields_default(f);
    static const int32_t bad_attr[5] = {0, 1, 1, 7, 0};
    npz_fields_set(f, "attr_indices.npy", make_npy("<i4", 0, "(5,)", bad_attr, sizeof bad_attr, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "attr_indices[3] = 7 is out of range", 0);
    /* indptr length disagreeing with adj_shape */
    npz_fields_default(f);
    static const int64_t shape[2] = {5, 5};
    npz_fields_set(f, "adj_shape.npy", make_npy("<i8", 0, "(2,)", shape, sizeof shape, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "adj_indptr", 0);
}

static void test_labels_missing(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    npz_fields_set(f, "labels.npy", (tbuf){0});
    const char *p = npz_fields_write(f, 0);
    expect_load_error(p, LP_ERR_FORMAT, "labels missing", 1);
    lp_graph_dataset *ds; /* fine without labels when the task does not need them */
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, p, NULL));
    assert_null(ds->labels);
    lp_graph_splits *s;
    assert_int_equal(lp_graph_splits_node(&s, ds, 5, 1), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "labels missing"));
    lp_graph_dataset_free(ds);
}

static void test_labels_out_of_range(void **state)
{
    (void)state;
    npz_field f[9];
    npz_fields_default(f);
    static const int8_t bad[4] = {0, 1, -5, 1};
    npz_fields_set(f, "labels.npy", make_npy("|i1", 0, "(4,)", bad, sizeof bad, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "labels[2] = -5 is out of range", 0);
    npz_fields_default(f);
    static const int8_t short_labels[3] = {0, 1, 0};
    npz_fields_set(f, "labels.npy", make_npy("|i1", 0, "(3,)", short_labels, sizeof short_labels, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "labels has 3 entries", 0);
    npz_fields_default(f);
    static const float frac[4] = {0, 1, 0.5f, 1};
    npz_fields_set(f, "labels.npy", make_npy("<f4", 0, "(4,)", frac, sizeof frac, 1));
    expect_load_error(npz_fields_write(f, 0), LP_ERR_FORMAT, "labels", 0);
}

static void test_split_file_does_not_fit(void **state)
{
    (void)state;
    const char *karate = lp_test_shared("data/graphs/karate.edges.txt");
    if (!karate) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    lp_graph_dataset *ds;
    LP_ASSERT_OK(lp_graph_dataset_load(&ds, karate, NULL));
    lp_graph_splits *s;
    const char *ok = "leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\n"
                     "train 3 0 1 2\nval 2 3 4\ntest 2 5 6\n";
    const char *p = lp_test_write_temp(".split", ok, strlen(ok));
    LP_ASSERT_OK(lp_graph_splits_load(&s, p, ds));
    lp_graph_splits_free(s);
    struct { const char *text, *msg; } cases[] = {
        {"leanprop-split 1\nkind node\nnodes 2708\nedges 5278\nruns 1\nseed 1\nrun 0\ntrain 1 0\nval 1 1\ntest 1 2\n",
         "split is for 2708 nodes"},
        {"leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain 2 0 99\nval 1 1\ntest 1 2\n",
         "run 0 train[1] = 99 is not a node"},
        {"leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain 2 0 1\nval 1 1\ntest 1 2\n",
         "val node 1 appears twice"},
        {"leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain 3 0 1 2\nval 2 3\n",
         "val: line holds 1 values, fewer than the 2 announced"},
        {"leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 2\nseed 1\nrun 0\ntrain 1 0\nval 1 1\ntest 1 2\n",
         "truncated"},
        {"leanprop-split 1\nkind link\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain_pos 1 0 1\ntrain_neg 1 0 8\n"
         "val_pos 1 0 2\nval_neg 1 5 30\ntest_pos 1 0 3\ntest_neg 1 6 31\n",
         "train_neg pair (0, 8) is an edge"},
        {"leanprop-split 1\nkind link\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain_pos 1 0 33\ntrain_neg 1 0 9\n"
         "val_pos 1 0 2\nval_neg 1 5 30\ntest_pos 1 0 3\ntest_neg 1 6 31\n",
         "train_pos pair (0, 33) is not an edge"},
        {"leanprop-split 1\nkind link\nnodes 34\nedges 77\nruns 1\nseed 1\n", "split is for 77 edges"},
        {"leanprop-split 2\n", "version 2"},
        {"hello\n", "not a leanprop split file"},
        {"leanprop-split 1\nkind node\nnodes 34\nedges 78\nruns 1\nseed 1\nrun 0\ntrain 1 x\n", "train: expected an integer"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        p = lp_test_write_temp(".split", cases[c].text, strlen(cases[c].text));
        s = NULL;
        lp_status st = lp_graph_splits_load(&s, p, ds);
        if (st == LP_OK || !strstr(lp_error_message(), cases[c].msg) || !strstr(lp_error_message(), p))
            fail_msg("case %zu: %s: %s", c, lp_status_name(st), lp_error_message());
        assert_null(s);
    }
    assert_int_equal(lp_graph_splits_load(&s, "/nonexistent/x.split", ds), LP_ERR_IO);
    lp_graph_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_small_npz_loads),
        cmocka_unit_test(test_truncated_zip),
        cmocka_unit_test(test_member_not_npy),
        cmocka_unit_test(test_unsupported_dtype),
        cmocka_unit_test(test_indptr_not_monotone),
        cmocka_unit_test(test_index_out_of_range),
        cmocka_unit_test(test_labels_missing),
        cmocka_unit_test(test_labels_out_of_range),
        cmocka_unit_test(test_split_file_does_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
