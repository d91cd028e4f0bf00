/* Datasets, part 1: the JSONL reader, causal-LM instruction data, multiple choice.
 * One test per bad-input class: invalid JSON, non-object line, missing field,
 * wrong type, empty file, missing file, skip-policy counting. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/dataset.h"

/* Temporary files, removed at exit. */
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

static void test_jsonl_reader_lines(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl", "\xEF\xBB\xBF{\"a\": 1}\r\n\n   \n{\"a\": 2}  \n{\"a\":3}");
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    lp_jsonl *r;
    LP_ASSERT_OK(lp_jsonl_open(&r, p, LP_BAD_INPUT_STOP, &rep));
    const cJSON *o;
    int64_t line, want[3] = {1, 4, 5};
    for (int i = 0; i < 3; i++) {
        LP_ASSERT_OK(lp_jsonl_next(r, &o, &line));
        assert_non_null(o);
        assert_int_equal(line, want[i]);
        assert_int_equal(cJSON_GetObjectItem(o, "a")->valueint, i + 1);
    }
    LP_ASSERT_OK(lp_jsonl_next(r, &o, &line));
    assert_null(o);
    assert_int_equal(rep.records, 3);
    assert_string_equal(lp_jsonl_path(r), p);
    lp_jsonl_close(r);
}

static void test_jsonl_malformed_names_file_and_line(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"broken\n{\"text\": \"fine\"}\n");
    lp_text_dataset *ds;
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    char want[256];
    snprintf(want, sizeof want, "%s:3: invalid JSON near column", p);
    assert_contains(lp_error_message(), want);
    assert_null(ds);
    /* trailing garbage after a valid value */
    p = tmp_file(".jsonl", "{\"text\": \"a\"} x\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: trailing characters");
}

static void test_jsonl_not_an_object(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl", "[1, 2]\n");
    lp_text_dataset *ds;
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: expected a JSON object, found an array");
    p = tmp_file(".jsonl", "\"just a string\"\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "found a string");
}

static void test_skip_policy_counts(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl",
                             "{\"text\": \"one\"}\n"
                             "{oops\n"
                             "{\"instruction\": \"no output\"}\n"
                             "{\"text\": \"two\"}\n"
                             "[]\n"
                             "{\"text\": \"three\"}\n");
    lp_data_options opt = lp_data_options_defaults();
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_lm_dataset_load(&ds, p, &opt, &rep));
    assert_int_equal(lp_text_dataset_count(ds), 3);
    assert_int_equal(rep.skipped_malformed, 3);
    assert_int_equal(rep.records, 6);
    assert_int_equal(rep.examples, 3);
    char want[256];
    snprintf(want, sizeof want, "%s:2: invalid JSON", p);
    assert_contains(rep.first_problem, want);
    assert_string_equal(lp_text_dataset_get(ds, 2)->text, "three");
    assert_int_equal(lp_text_dataset_get(ds, 2)->line, 6);
    char line[1024];
    lp_data_report_format(&rep, line, sizeof line);
    assert_contains(line, "3 malformed records skipped");
    lp_text_dataset_free(ds);
    /* everything skipped: an error that says so */
    p = tmp_file(".jsonl", "{bad\n{worse\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, &opt, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "no usable examples (2 malformed");
}

static void test_lm_formats(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl",
                             "{\"instruction\": \"Add the numbers.\", \"input\": \"2 and 3\", \"output\": \"5\"}\n"
                             "{\"instruction\": \"Say hi.\", \"input\": \"\", \"output\": \"hi\"}\n"
                             "{\"prompt\": \"Q: 1+1?\\nA:\", \"response\": \" 2\"}\n"
                             "{\"prompt\": \"P\", \"completion\": \"C\"}\n"
                             "{\"text\": \"Call me Ishmael.\"}\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_lm_dataset_load(&ds, p, NULL, NULL));
    assert_int_equal(lp_text_dataset_count(ds), 5);
    const lp_text_example *e = lp_text_dataset_get(ds, 0);
    assert_string_equal(e->prompt,
                        "Below is an instruction that describes a task, paired with an input that provides further "
                        "context. Write a response that appropriately completes the request.\n\n"
                        "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n");
    assert_string_equal(e->text, "5");
    assert_int_equal(e->label, -1);
    e = lp_text_dataset_get(ds, 1);
    assert_string_equal(e->prompt,
                        "Below is an instruction that describes a task. Write a response that appropriately "
                        "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n");
    e = lp_text_dataset_get(ds, 2);
    assert_string_equal(e->prompt, "Q: 1+1?\nA:");
    assert_string_equal(e->text, " 2");
    assert_string_equal(lp_text_dataset_get(ds, 3)->text, "C");
    e = lp_text_dataset_get(ds, 4);
    assert_null(e->prompt);
    assert_string_equal(e->text, "Call me Ishmael.");
    assert_int_equal(e->line, 5);
    assert_null(lp_text_dataset_get(ds, 5));
    int32_t nl;
    assert_null(lp_text_dataset_labels(ds, &nl));
    assert_int_equal(nl, 0);
    lp_text_dataset_free(ds);
    /* the snprintf contract of the template helper */
    char small[8];
    size_t need = lp_data_alpaca_prompt(small, sizeof small, "x", NULL);
    assert_int_equal(strlen(small), 7);
    assert_true(need > 100);
}

static void test_lm_missing_field_and_wrong_type(void **state)
{
    (void)state;
    lp_text_dataset *ds;
    const char *p = tmp_file(".jsonl", "{\"text\": \"a\"}\n{\"instruction\": \"Do it.\", \"input\": \"\"}\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":2: missing field \"output\"");
    p = tmp_file(".jsonl", "{\"prompt\": \"a\", \"response\": 7}\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: field \"response\" is a number, expected a string");
    p = tmp_file(".jsonl", "{\"instruction\": \"a\", \"input\": [1], \"output\": \"b\"}\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "field \"input\" is an array");
    p = tmp_file(".jsonl", "{\"question\": \"?\"}\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), ":1: no \"instruction\", \"prompt\" or \"text\" field");
}

static void test_empty_and_missing_files(void **state)
{
    (void)state;
    lp_text_dataset *ds;
    lp_mc_dataset *mc;
    const char *p = tmp_file(".jsonl", "");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "empty file");
    p = tmp_file(".jsonl", "\n  \n\r\n");
    assert_int_equal(lp_lm_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
    assert_contains(lp_error_message(), "empty file");
    assert_int_equal(lp_mc_dataset_load(&mc, p, NULL, NULL), LP_ERR_FORMAT);
    assert_int_equal(lp_lm_dataset_load(&ds, "/nonexistent/x.jsonl", NULL, NULL), LP_ERR_NOT_FOUND);
    assert_contains(lp_error_message(), "/nonexistent/x.jsonl");
    assert_int_equal(lp_lm_dataset_load(NULL, p, NULL, NULL), LP_ERR_INVALID_ARG);
}

/* ------------------------------------------------------- multiple choice */

static const char *k_mc =
    "{\"question\": \"Which is a planet?\", \"choices\": [\"Moon\", \"Mars\", \"Sun\"], \"answer\": 1}\n"
    "{\"question\": \"2+2?\", \"choices\": [\"3\", \"4\"], \"answer\": \"B\"}\n"
    "{\"question\": {\"stem\": \"Color of sky?\", \"choices\": [{\"text\": \"green\", \"label\": \"1\"},"
    " {\"text\": \"blue\", \"label\": \"2\"}]}, \"answerKey\": \"2\"}\n"
    "{\"ctx\": \"He opened the door and\", \"endings\": [\"walked in.\", \"ate it.\", \"flew.\", \"sang.\"], \"label\": \"0\"}\n"
    "{\"question\": \"HF ARC\", \"choices\": {\"text\": [\"a\", \"b\", \"c\"], \"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"C\"}\n";

static void test_mc_load(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl", k_mc);
    lp_mc_dataset *ds;
    LP_ASSERT_OK(lp_mc_dataset_load(&ds, p, NULL, NULL));
    assert_int_equal(lp_mc_dataset_count(ds), 5);
    const lp_mc_example *e = lp_mc_dataset_get(ds, 0);
    assert_int_equal(e->n_choices, 3);
    assert_int_equal(e->answer, 1);
    assert_string_equal(e->choices[2], "Sun");
    assert_int_equal(lp_mc_dataset_get(ds, 1)->answer, 1);
    e = lp_mc_dataset_get(ds, 2);
    assert_string_equal(e->question, "Color of sky?");
    assert_int_equal(e->answer, 1); /* answerKey "2" is the label of the second choice */
    e = lp_mc_dataset_get(ds, 3);
    assert_string_equal(e->question, "He opened the door and");
    assert_int_equal(e->n_choices, 4);
    assert_int_equal(e->answer, 0);
    assert_int_equal(lp_mc_dataset_get(ds, 4)->answer, 2);
    assert_int_equal(lp_mc_dataset_get(ds, 4)->line, 5);
    lp_mc_dataset_free(ds);
}

static void test_mc_bad_records(void **state)
{
    (void)state;
    lp_mc_dataset *ds;
    struct { const char *line, *msg; } cases[] = {
        {"{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 2}\n", ":1: answer out of range (2 choices)"},
        {"{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}\n", ":1: 1 choice, need at least 2"},
        {"{\"choices\": [\"a\", \"b\"], \"answer\": 0}\n", ":1: missing field \"question\""},
        {"{\"question\": \"q\", \"answer\": 0}\n", ":1: missing field \"choices\""},
        {"{\"question\": \"q\", \"choices\": [\"a\", \"b\"]}\n", ":1: missing field \"answer\""},
        {"{\"question\": \"q\", \"choices\": [\"a\", 3], \"answer\": 0}\n", "neither a string"},
        {"{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"maybe\"}\n", "not an index, a letter"},
        {"{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0.5}\n", "not an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = tmp_file(".jsonl", cases[i].line);
        assert_int_equal(lp_mc_dataset_load(&ds, p, NULL, NULL), LP_ERR_FORMAT);
        assert_contains(lp_error_message(), cases[i].msg);
        cleanup(NULL);
    }
    /* skip policy */
    lp_data_options opt = lp_data_options_defaults();
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    const char *p = tmp_file(".jsonl", "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}\n"
                                       "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n");
    LP_ASSERT_OK(lp_mc_dataset_load(&ds, p, &opt, &rep));
    assert_int_equal(lp_mc_dataset_count(ds), 1);
    assert_int_equal(rep.skipped_malformed, 1);
    lp_mc_dataset_free(ds);
}

static void test_mc_requests_and_score(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl", k_mc);
    lp_mc_dataset *ds;
    LP_ASSERT_OK(lp_mc_dataset_load(&ds, p, NULL, NULL));
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_mc_options o = lp_mc_options_defaults();
    lp_token_dataset req;
    LP_ASSERT_OK(lp_mc_build_requests(&req, ds, &enc, &o, NULL));
    assert_int_equal(req.n, 3 + 2 + 2 + 4 + 3);
    /* request 1: example 0, choice 1: "Question: Which is a planet?\nAnswer:" + " Mars" */
    const char *ctx = "Question: Which is a planet?\nAnswer:";
    assert_int_equal(req.source[1], 0);
    assert_int_equal(req.label[1], 1);
    assert_int_equal(req.n_prompt[1], (int)strlen(ctx));
    assert_int_equal(req.offsets[2] - req.offsets[1], (int64_t)strlen(ctx) + 5);
    char text[128];
    int64_t len = req.offsets[2] - req.offsets[1];
    for (int64_t i = 0; i < len; i++) text[i] = (char)req.ids[req.offsets[1] + i];
    text[len] = '\0';
    assert_string_equal(text + req.n_prompt[1], " Mars");

    /* scores: raw sums pick the short choice, normalised sums the right one */
    double ll[14];
    for (int i = 0; i < 14; i++) ll[i] = -100.0;
    ll[0] = -5.0;   /* "Moon" 4 chars: -1.25/char */
    ll[1] = -6.0;   /* "Mars": -1.5/char -> raw and norm both pick Moon (wrong) */
    ll[4] = -1.0;   /* example 1: "4" right */
    ll[6] = -2.0;   /* example 2: "blue" right */
    ll[7] = -10.0;  /* example 3: "walked in." (10 chars) -1/char, right by norm only */
    ll[8] = -8.0;   /* "ate it." (7 chars) -1.14/char: best raw */
    ll[13] = -0.5;  /* example 4: "c" right */
    double acc, acc_norm;
    int32_t pred[5];
    LP_ASSERT_OK(lp_mc_score(ds, &req, ll, &acc, &acc_norm, pred));
    LP_ASSERT_CLOSE(acc, 3.0 / 5.0, 1e-12, 0, "acc");
    LP_ASSERT_CLOSE(acc_norm, 4.0 / 5.0, 1e-12, 0, "acc_norm");
    assert_int_equal(pred[0], 0);
    assert_int_equal(pred[3], 1);
    lp_token_dataset_free(&req);

    /* few-shot: 2 solved other examples before the question, seeded */
    o.n_shot = 2;
    o.seed = 9;
    LP_ASSERT_OK(lp_mc_build_requests(&req, ds, &enc, &o, NULL));
    len = req.n_prompt[0];
    char *c0 = malloc((size_t)len + 1);
    for (int64_t i = 0; i < len; i++) c0[i] = (char)req.ids[req.offsets[0] + i];
    c0[len] = '\0';
    assert_non_null(strstr(c0, "\n\nQuestion: Which is a planet?\nAnswer:"));
    assert_null(strstr(c0, "Answer: Mars")); /* never its own solution */
    assert_int_equal((int)(strstr(c0, "Question: Which is a planet?") - c0) > 0, 1);
    lp_token_dataset req2;
    LP_ASSERT_OK(lp_mc_build_requests(&req2, ds, &enc, &o, NULL));
    assert_int_equal(req2.n_tokens, req.n_tokens);
    assert_memory_equal(req2.ids, req.ids, (size_t)req.n_tokens * sizeof(int32_t));
    free(c0);
    lp_token_dataset_free(&req2);
    lp_token_dataset_free(&req);

    /* max_len cuts context on the left, keeps the choice */
    o = lp_mc_options_defaults();
    o.max_len = 8;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_mc_build_requests(&req, ds, &enc, &o, &rep));
    assert_true(req.max_len <= 8);
    assert_true(rep.truncated > 0);
    assert_int_equal(req.n_prompt[1], 8 - 5);
    assert_int_equal(req.ids[req.offsets[1] + 7], 's'); /* " Mars" kept whole at the end */
    lp_token_dataset_free(&req);

    /* requests from another dataset: refused */
    LP_ASSERT_OK(lp_mc_build_requests(&req, ds, &enc, NULL, NULL));
    req.label[2] = 0;
    assert_int_equal(lp_mc_score(ds, &req, ll, &acc, &acc_norm, NULL), LP_ERR_INVALID_ARG);
    lp_token_dataset_free(&req);
    lp_mc_dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_jsonl_reader_lines, cleanup),
        cmocka_unit_test_teardown(test_jsonl_malformed_names_file_and_line, cleanup),
        cmocka_unit_test_teardown(test_jsonl_not_an_object, cleanup),
        cmocka_unit_test_teardown(test_skip_policy_counts, cleanup),
        cmocka_unit_test_teardown(test_lm_formats, cleanup),
        cmocka_unit_test_teardown(test_lm_missing_field_and_wrong_type, cleanup),
        cmocka_unit_test_teardown(test_empty_and_missing_files, cleanup),
        cmocka_unit_test_teardown(test_mc_load, cleanup),
        cmocka_unit_test_teardown(test_mc_bad_records, cleanup),
        cmocka_unit_test_teardown(test_mc_requests_and_score, cleanup),
    };
    size_t before = lp_mem_current(LP_MEM_DATA);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (lp_mem_current(LP_MEM_DATA) != before) {
        fprintf(stderr, "data memory leaked: %zu bytes\n", lp_mem_current(LP_MEM_DATA) - before);
        return 1;
    }
    return rc;
}
