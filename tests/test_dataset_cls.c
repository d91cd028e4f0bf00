/* Datasets, part 2: sequence classification from TSV, CSV and JSONL; label
 * sets; unknown labels; CSV quoting errors; the real SMS Spam Collection;
 * seeded train/test splits. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/dataset.h"

static char g_tmp[32][128];
static int g_ntmp;

static const char *tmp_file(const char *suffix, const char *content)
{
    const char *p = lp_test_write_temp(suffix, content, strlen(content));
    assert_non_null(p);
    assert_true(g_ntmp < 32);
    snprintf(g_tmp[g_ntmp], sizeof g_tmp[0], "%s", p);
    return g_tmp[g_ntmp++];
}

static int cleanup(void **state)
{
    (void)state;
    for (int i = 0; i < g_ntmp; i++) unlink(g_tmp[i]);
    g_ntmp = 0;
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_sms_spam_real(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/text/sms_spam.tsv");
    if (!path) { LP_SKIP("../shared/data/text/sms_spam.tsv not found (set LEANPROP_SHARED)"); }
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, path, LP_CLS_FORMAT_AUTO, NULL, &rep));
    assert_int_equal(lp_text_dataset_count(ds), 5574);
    assert_int_equal(rep.records, 5574);
    assert_int_equal(rep.skipped_malformed, 0);
    int32_t nl;
    const char *const *labels = lp_text_dataset_labels(ds, &nl);
    assert_int_equal(nl, 2);
    assert_string_equal(labels[0], "ham");
    assert_string_equal(labels[1], "spam");
    int64_t count[2] = {0, 0};
    for (int64_t i = 0; i < lp_text_dataset_count(ds); i++) count[lp_text_dataset_get(ds, i)->label]++;
    assert_int_equal(count[0], 4827);
    assert_int_equal(count[1], 747);
    const lp_text_example *e = lp_text_dataset_get(ds, 0);
    assert_int_equal(e->label, 0);
    assert_int_equal(e->line, 1);
    assert_true(!strncmp(e->text, "Go until jurong point", 21));
    assert_int_equal(lp_text_dataset_get(ds, 2)->label, 1);
    /* seeded 80/20 split: sizes, disjoint, covering, stable */
    int64_t *tr, *te, ntr, nte, *tr2, *te2, ntr2, nte2;
    LP_ASSERT_OK(lp_data_split(5574, 0.2, 42, &tr, &ntr, &te, &nte));
    assert_int_equal(nte, 1115);
    assert_int_equal(ntr, 5574 - 1115);
    char *seen = calloc(5574, 1);
    for (int64_t i = 0; i < ntr; i++) { assert_true(!seen[tr[i]]); seen[tr[i]] = 1; if (i) assert_true(tr[i] > tr[i - 1]); }
    for (int64_t i = 0; i < nte; i++) { assert_true(!seen[te[i]]); seen[te[i]] = 1; }
    for (int64_t i = 0; i < 5574; i++) assert_true(seen[i]);
    free(seen);
    int64_t spam_test = 0;
    for (int64_t i = 0; i < nte; i++) spam_test += lp_text_dataset_get(ds, te[i])->label;
    assert_true(spam_test > 100 && spam_test < 200); /* 747 * 0.2 = 149 expected */
    LP_ASSERT_OK(lp_data_split(5574, 0.2, 42, &tr2, &ntr2, &te2, &nte2));
    assert_memory_equal(te, te2, (size_t)nte * sizeof(int64_t));
    lp_free(tr2); lp_free(te2);
    LP_ASSERT_OK(lp_data_split(5574, 0.2, 43, &tr2, &ntr2, &te2, &nte2));
    assert_true(memcmp(te, te2, (size_t)nte * sizeof(int64_t)) != 0);
    lp_free(tr2); lp_free(te2);
    lp_free(tr); lp_free(te);
    lp_text_dataset_free(ds);
}

static void test_tsv_header_and_missing_tab(void **state)
{
    (void)state;
    lp_data_options opt = lp_data_options_defaults();
    opt.text_field = "sentence";
    const char *p = tmp_file(".tsv", "sentence\tlabel\r\nit is great\t1\r\nawful\t0\r\n\r\nfine \"quoted\" text\t1\r\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, &opt, NULL));
    assert_int_equal(lp_text_dataset_count(ds), 3);
    assert_string_equal(lp_text_dataset_get(ds, 0)->text, "it is great");
    assert_int_equal(lp_text_dataset_get(ds, 0)->label, 1);
    assert_string_equal(lp_text_dataset_get(ds, 2)->text, "fine \"quoted\" text"); /* TSV: quotes are literal */
    assert_int_equal(lp_text_dataset_get(ds, 2)->line, 5);
    lp_text_dataset_free(ds);
    /* headerless label<TAB>text with a line lacking the tab */
    p = tmp_file(".tsv", "ham\thello\nspam\twin now\nnot a record\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    char want[256];
    snprintf(want, sizeof want, "%s:3: no tab between label and text", p);
    assert_contains(lp_error_message(), want);
    opt = lp_data_options_defaults();
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_TSV, &opt, &rep));
    assert_int_equal(lp_text_dataset_count(ds), 2);
    assert_int_equal(rep.skipped_malformed, 1);
    lp_text_dataset_free(ds);
    /* header with too few fields in a row; empty label */
    p = tmp_file(".tsv", "label\ttext\nham\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":2: 1 fields, the header has 2 (missing text)");
    p = tmp_file(".tsv", "\thello\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: empty label");
}

static void test_csv_quoting(void **state)
{
    (void)state;
    const char *p = tmp_file(".csv",
                             "id,label,text\r\n"
                             "1,pos,\"Hello, world\"\r\n"
                             "2,neg,\"She said \"\"no\"\".\"\r\n"
                             "3,pos,\"two\nlines\"\n"
                             "4,neg,plain text\n"
                             "\n"
                             "5,pos,\"\"\n"
                             "6,neg,a\"b\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL));
    assert_int_equal(lp_text_dataset_count(ds), 6);
    assert_string_equal(lp_text_dataset_get(ds, 0)->text, "Hello, world");
    assert_string_equal(lp_text_dataset_get(ds, 1)->text, "She said \"no\".");
    assert_string_equal(lp_text_dataset_get(ds, 2)->text, "two\nlines");
    assert_int_equal(lp_text_dataset_get(ds, 2)->line, 4);
    assert_int_equal(lp_text_dataset_get(ds, 3)->line, 6); /* after the two-line record */
    assert_string_equal(lp_text_dataset_get(ds, 3)->text, "plain text");
    assert_string_equal(lp_text_dataset_get(ds, 4)->text, "");
    assert_string_equal(lp_text_dataset_get(ds, 5)->text, "a\"b"); /* as Python's csv */
    int32_t nl;
    const char *const *labels = lp_text_dataset_labels(ds, &nl);
    assert_int_equal(nl, 2);
    assert_string_equal(labels[0], "neg");
    assert_int_equal(lp_text_dataset_get(ds, 0)->label, 1);
    lp_text_dataset_free(ds);
}

static void test_csv_unbalanced_quote(void **state)
{
    (void)state;
    lp_text_dataset *ds;
    const char *p = tmp_file(".csv", "text,label\n\"fine\",a\n\"never closed,b\nmore,c\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "unterminated quoted field (opened at line 3)");
    /* even under SKIP: the record boundary is lost */
    lp_data_options opt = lp_data_options_defaults();
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, &opt, NULL), LP_ERR_FORMAT);
    p = tmp_file(".csv", "text,label\n\"closed\"x,a\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":2: unexpected character 'x' after a closing quote");
}

static void test_csv_field_count_and_header(void **state)
{
    (void)state;
    lp_text_dataset *ds;
    const char *p = tmp_file(".csv", "text,label\nhello,a\nonly one field\nbye,b\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":3: 1 fields, the header has 2");
    lp_data_options opt = lp_data_options_defaults();
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, &opt, &rep));
    assert_int_equal(lp_text_dataset_count(ds), 2);
    assert_int_equal(rep.skipped_malformed, 1);
    lp_text_dataset_free(ds);
    p = tmp_file(".csv", "sentence,label\nx,1\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: the header has no \"text\" column");
    p = tmp_file(".csv", "");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "empty file");
    p = tmp_file(".csv", "text,label\n");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "empty file (no examples)");
    p = tmp_file(".txt", "x");
    assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_UNSUPPORTED);
}

static void test_jsonl_labels_numeric_order(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl",
                             "{\"text\": \"a\", \"label\": 10}\n"
                             "{\"text\": \"b\", \"label\": 2}\n"
                             "{\"text\": \"c\", \"label\": \"1\"}\n"
                             "{\"text\": \"d\", \"label\": 2}\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL));
    int32_t nl;
    const char *const *labels = lp_text_dataset_labels(ds, &nl);
    assert_int_equal(nl, 3);
    assert_string_equal(labels[0], "1");
    assert_string_equal(labels[1], "2");
    assert_string_equal(labels[2], "10");
    assert_int_equal(lp_text_dataset_get(ds, 0)->label, 2);
    assert_int_equal(lp_text_dataset_get(ds, 3)->label, 1);
    lp_text_dataset_free(ds);
    struct { const char *line, *msg; } bad[] = {
        {"{\"label\": \"x\"}\n", ":1: missing field \"text\""},
        {"{\"text\": \"a\"}\n", ":1: missing field \"label\""},
        {"{\"text\": \"a\", \"label\": 1.5}\n", "field \"label\" is a number, expected a string or an integer"},
        {"{\"text\": 3, \"label\": \"x\"}\n", "field \"text\" is not a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = tmp_file(".jsonl", bad[i].line);
        assert_int_equal(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL), LP_ERR_FORMAT);
        assert_contains(lp_error_message(), bad[i].msg);
    }
}

static void test_unknown_label(void **state)
{
    (void)state;
    const char *train = tmp_file(".tsv", "ham\thi\nspam\twin\n");
    const char *val = tmp_file(".tsv", "ham\tok\nmaybe\twhat\nspam\tprize\n");
    lp_text_dataset *tr, *va;
    LP_ASSERT_OK(lp_cls_dataset_load(&tr, train, LP_CLS_FORMAT_AUTO, NULL, NULL));
    lp_data_options opt = lp_data_options_defaults();
    opt.labels = lp_text_dataset_labels(tr, &opt.n_labels);
    assert_int_equal(lp_cls_dataset_load(&va, val, LP_CLS_FORMAT_AUTO, &opt, NULL), LP_ERR_FORMAT);
    char want[256];
    snprintf(want, sizeof want, "%s:2: unknown label \"maybe\" (labels: ham, spam)", val);
    assert_contains(lp_error_message(), want);
    opt.on_unknown_label = LP_BAD_INPUT_SKIP;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_cls_dataset_load(&va, val, LP_CLS_FORMAT_AUTO, &opt, &rep));
    assert_int_equal(lp_text_dataset_count(va), 2);
    assert_int_equal(rep.skipped_unknown_label, 1);
    assert_int_equal(rep.skipped_malformed, 0);
    assert_int_equal(lp_text_dataset_get(va, 1)->label, 1);
    lp_text_dataset_free(va);
    lp_text_dataset_free(tr);

    /* --labels order is kept as given */
    char **names;
    int32_t n;
    LP_ASSERT_OK(lp_data_parse_label_list(" spam , ham", &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "spam");
    opt = lp_data_options_defaults();
    opt.labels = (const char *const *)names;
    opt.n_labels = n;
    LP_ASSERT_OK(lp_cls_dataset_load(&tr, train, LP_CLS_FORMAT_AUTO, &opt, NULL));
    assert_int_equal(lp_text_dataset_get(tr, 0)->label, 1);
    assert_string_equal(lp_text_dataset_labels(tr, NULL)[0], "spam");
    lp_text_dataset_free(tr);
    lp_free(names);
    assert_int_equal(lp_data_parse_label_list("a,,b", &names, &n), LP_ERR_INVALID_ARG);
    assert_contains(lp_error_message(), "empty label");
    assert_int_equal(lp_data_parse_label_list("a,b,a", &names, &n), LP_ERR_INVALID_ARG);
    assert_contains(lp_error_message(), "\"a\" given twice");
}

static void test_split_edges(void **state)
{
    (void)state;
    int64_t *tr, *te, ntr, nte;
    LP_ASSERT_OK(lp_data_split(10, 0.0, 1, &tr, &ntr, &te, &nte));
    assert_int_equal(ntr, 10);
    assert_int_equal(nte, 0);
    assert_null(te);
    lp_free(tr);
    LP_ASSERT_OK(lp_data_split(3, 0.5, 1, &tr, &ntr, &te, &nte));
    assert_int_equal(nte, 2); /* 1.5 rounds up */
    lp_free(tr); lp_free(te);
    assert_int_equal(lp_data_split(0, 0.2, 1, &tr, &ntr, &te, &nte), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_data_split(5, 1.2, 1, &tr, &ntr, &te, &nte), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sms_spam_real, cleanup),
        cmocka_unit_test_teardown(test_tsv_header_and_missing_tab, cleanup),
        cmocka_unit_test_teardown(test_csv_quoting, cleanup),
        cmocka_unit_test_teardown(test_csv_unbalanced_quote, cleanup),
        cmocka_unit_test_teardown(test_csv_field_count_and_header, cleanup),
        cmocka_unit_test_teardown(test_jsonl_labels_numeric_order, cleanup),
        cmocka_unit_test_teardown(test_unknown_label, cleanup),
        cmocka_unit_test_teardown(test_split_edges, cleanup),
    };
    size_t before = lp_mem_current(LP_MEM_DATA);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (lp_mem_current(LP_MEM_DATA) != before) {
        fprintf(stderr, "data memory leaked: %zu bytes\n", lp_mem_current(LP_MEM_DATA) - before);
        return 1;
    }
    return rc;
}
