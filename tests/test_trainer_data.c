/* Bad input on the fine-tuning paths: malformed JSONL lines (file:line, skip
 * policy), unknown labels, truncation counted, TokenTune k larger than a
 * sequence; the data loader's splits and corpus tail. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"
#include "leanprop/trainer.h"

static lp_train_data_spec spec_for(lp_train_task task, const char *path)
{
    lp_train_data_spec s;
    memset(&s, 0, sizeof s);
    s.task = task;
    s.path = path;
    s.val_fraction = 0.0;
    s.split_seed = 1234;
    s.max_len = 64;
    s.opt = lp_data_options_defaults();
    return s;
}

static void test_malformed_jsonl_line(void **state)
{
    (void)state;
    const char text[] = "{\"prompt\": \"a\", \"response\": \"bc\"}\n"
                        "{\"prompt\": \"d\", \"response\": \"ef\"\n" /* line 2: unterminated */
                        "{\"text\": \"ghij\"}\n";
    const char *path = lp_test_write_temp(".jsonl", text, sizeof text - 1);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data d;
    lp_data_report rep = {0};
    lp_train_data_spec s = spec_for(LP_TRAIN_LM, path);
    assert_int_equal(lp_train_data_load(&d, &s, &enc, &rep, NULL), LP_ERR_FORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s:2:", path);
    if (!strstr(lp_error_message(), want)) fail_msg("message \"%s\" does not name %s", lp_error_message(), want);

    s.opt.on_malformed = LP_BAD_INPUT_SKIP;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_train_data_load(&d, &s, &enc, &rep, NULL));
    assert_int_equal(rep.skipped_malformed, 1);
    assert_non_null(strstr(rep.first_problem, want));
    assert_int_equal(d.train.n, 2);
    assert_int_equal(d.val.n, 0);
    /* the prompt is not trained: "a" + "bc" -> labels only on the response */
    assert_int_equal(d.all.n_prompt[0], 1);
    lp_train_data_free(&d);
}

static void test_unknown_label(void **state)
{
    (void)state;
    const char train[] = "ham\thello there\nspam\twin money now\nham\tsee you\n";
    const char val[] = "ham\tok\nmaybe\twho knows\nspam\tfree prize\n";
    const char *tp = lp_test_write_temp(".tsv", train, sizeof train - 1);
    const char *vp = lp_test_write_temp(".tsv", val, sizeof val - 1);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data d;
    lp_data_report rep = {0}, vrep = {0};
    lp_train_data_spec s = spec_for(LP_TRAIN_CLS, tp);
    s.val_path = vp;
    assert_int_equal(lp_train_data_load(&d, &s, &enc, &rep, &vrep), LP_ERR_FORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s:2: unknown label \"maybe\"", vp);
    if (!strstr(lp_error_message(), want)) fail_msg("message \"%s\" lacks \"%s\"", lp_error_message(), want);

    s.opt.on_unknown_label = LP_BAD_INPUT_SKIP;
    LP_ASSERT_OK(lp_train_data_load(&d, &s, &enc, &rep, &vrep));
    assert_int_equal(vrep.skipped_unknown_label, 1);
    assert_int_equal(d.n_labels, 2);
    assert_string_equal(d.label_names[0], "ham");
    assert_string_equal(d.label_names[1], "spam");
    assert_int_equal(d.val.n, 2);
    assert_int_equal(d.all.label[1], 1);
    lp_train_data_free(&d);

    /* a fixed label list: a training label outside it is unknown too */
    s = spec_for(LP_TRAIN_CLS, tp);
    s.labels = "spam,other";
    assert_int_equal(lp_train_data_load(&d, &s, &enc, &rep, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "unknown label \"ham\""));
}

static void test_truncation_counted(void **state)
{
    (void)state;
    char text[512];
    const char *resp = "a very long response that goes on past the limit";
    snprintf(text, sizeof text, "{\"prompt\": \"q\", \"response\": \"%s\"}\n{\"text\": \"short\"}\n", resp);
    const char *path = lp_test_write_temp(".jsonl", text, strlen(text));
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data d;
    lp_data_report rep = {0};
    lp_train_data_spec s = spec_for(LP_TRAIN_LM, path);
    s.max_len = 16;
    LP_ASSERT_OK(lp_train_data_load(&d, &s, &enc, &rep, NULL));
    assert_int_equal(rep.truncated, 1);
    assert_int_equal(rep.truncated_tokens, 1 + (int64_t)strlen(resp) - 16);
    assert_int_equal(d.all.max_len, 16);
    lp_train_data_free(&d);

    /* a prompt filling the maximum leaves nothing to train: dropped, counted */
    snprintf(text, sizeof text, "{\"prompt\": \"%s\", \"response\": \"x\"}\n{\"text\": \"ok ok\"}\n",
             "a prompt longer than sixteen bytes");
    s.path = lp_test_write_temp(".jsonl", text, strlen(text));
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_train_data_load(&d, &s, &enc, &rep, NULL));
    assert_int_equal(rep.dropped_no_target, 1);
    assert_int_equal(d.train.n, 1);
    lp_train_data_free(&d);
}

/* Split and corpus tail: same seed, same split; disjoint and complete. */
static void test_splits(void **state)
{
    (void)state;
    char text[4096] = "";
    for (int i = 0; i < 50; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s\tmessage number %d\n", i % 3 ? "ham" : "spam", i);
        strcat(text, line);
    }
    const char *path = lp_test_write_temp(".tsv", text, strlen(text));
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data a, b;
    lp_train_data_spec s = spec_for(LP_TRAIN_CLS, path);
    s.val_fraction = 0.2;
    LP_ASSERT_OK(lp_train_data_load(&a, &s, &enc, NULL, NULL));
    LP_ASSERT_OK(lp_train_data_load(&b, &s, &enc, NULL, NULL));
    assert_int_equal(a.val.n, 10);
    assert_int_equal(a.train.n, 40);
    assert_memory_equal(a.val.idx, b.val.idx, 10 * sizeof(int64_t));
    uint8_t seen[50] = {0};
    for (int64_t i = 0; i < a.train.n; i++) seen[a.train.idx[i]]++;
    for (int64_t i = 0; i < a.val.n; i++) seen[a.val.idx[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
    lp_train_data_free(&a);
    lp_train_data_free(&b);

    /* a .txt corpus: the held-out tail */
    char corpus[2000];
    for (int i = 0; i < 1999; i++) corpus[i] = (char)('a' + i % 26);
    path = lp_test_write_temp(".txt", corpus, 1999);
    s = spec_for(LP_TRAIN_LM, path);
    s.val_fraction = 0.1;
    s.max_len = 100;
    LP_ASSERT_OK(lp_train_data_load(&a, &s, &enc, NULL, NULL));
    assert_int_equal(a.all.n_tokens, 1799);
    assert_int_equal(a.val_file.n_tokens, 200);
    assert_int_equal(a.val.n, 2);
    assert_true(a.val_file.ids[0] == 'a' + 1799 % 26);
    lp_train_data_free(&a);
}

/* TokenTune k above a sequence's length: all its tokens train, counted. */
static void test_k_larger_than_sequence(void **state)
{
    (void)state;
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_LLAMA);
    c.vocab_size = 256;
    c.hidden_size = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.intermediate_size = 32;
    c.max_positions = 64;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, 1, 0.1f);
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_FULL);
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    const char text[] = "{\"text\": \"abcdefghij\"}\n{\"text\": \"klmnopqrstuvwxyz0123456789ABCDEFGHIJ\"}\n";
    const char *path = lp_test_write_temp(".jsonl", text, sizeof text - 1);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data d;
    lp_train_data_spec ds = spec_for(LP_TRAIN_LM, path);
    LP_ASSERT_OK(lp_train_data_load(&d, &ds, &enc, NULL, NULL));
    lp_trainer_config tc = lp_trainer_config_defaults();
    tc.batch = 2;
    tc.max_len = 64;
    tc.steps = 2;
    LP_ASSERT_OK(lp_tokenselect_parse(&tc.select, "16"));
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &d.train, &tc));
    lp_trainer_step_info si;
    LP_ASSERT_OK(lp_trainer_step(t, &si));
    assert_int_equal(si.tokens, 10 + 36);
    assert_int_equal(si.selected, 10 + 16); /* the short one: all 10; the long one: exactly 16 */
    lp_trainer_stats st;
    lp_trainer_get_stats(t, &st);
    assert_int_equal(st.capped, 1);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_train_data_free(&d);
}

/* Evaluation argument checks: a classifier with the wrong class count. */
static void test_eval_errors(void **state)
{
    (void)state;
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_LLAMA);
    c.vocab_size = 256;
    c.hidden_size = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.intermediate_size = 32;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    const char text[] = "a\tx\nb\ty\nc\tz\n";
    const char *path = lp_test_write_temp(".tsv", text, sizeof text - 1);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data d;
    lp_train_data_spec ds = spec_for(LP_TRAIN_CLS, path);
    LP_ASSERT_OK(lp_train_data_load(&d, &ds, &enc, NULL, NULL));
    lp_eval_result r;
    assert_int_equal(lp_eval_cls(m, &d.train, 2, 16, 0, 3, NULL, &r), LP_ERR_INVALID_ARG); /* no head */
    LP_ASSERT_OK(lp_transformer_add_cls_head(m, 2, 1));
    assert_int_equal(lp_eval_cls(m, &d.train, 2, 16, 0, 3, NULL, &r), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "3 classes"));
    lp_transformer_free(m);
    lp_train_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_jsonl_line),
        cmocka_unit_test(test_unknown_label),
        cmocka_unit_test(test_truncation_counted),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_k_larger_than_sequence),
        cmocka_unit_test(test_eval_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
