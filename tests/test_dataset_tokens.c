/* Datasets, part 3: tokenisation through the encode callback, truncation,
 * batches with Hugging Face labels, plain-text corpus windows (Moby-Dick),
 * epoch orders. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/dataset.h"
#include "leanprop/tokenizer.h"

static char g_tmp[16][128];
static int g_ntmp;

static const char *tmp_file(const char *suffix, const char *content)
{
    const char *p = lp_test_write_temp(suffix, content, strlen(content));
    assert_non_null(p);
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

/* Byte b -> b + 10, then repeated `copies` times (copies 2 exercises the
 * grow-and-retry path of the encode contract); counts its calls. */
typedef struct { int copies; int calls; } test_enc;

static lp_status encode_test(void *user, const char *text, size_t len, int32_t *ids, int64_t cap, int64_t *n)
{
    test_enc *t = user;
    t->calls++;
    int64_t k = 0;
    for (size_t i = 0; i < len; i++)
        for (int c = 0; c < t->copies; c++, k++)
            if (k < cap) ids[k] = (unsigned char)text[i] + 10;
    *n = k;
    return LP_OK;
}

static lp_text_encoder make_enc(test_enc *t, int copies)
{
    t->copies = copies;
    t->calls = 0;
    lp_text_encoder e = {encode_test, t, 1, 2, 0};
    return e;
}

static void test_tokenize_prompt_response(void **state)
{
    (void)state;
    const char *p = tmp_file(".jsonl",
                             "{\"prompt\": \"ab\", \"response\": \"cde\"}\n"
                             "{\"text\": \"xyz\"}\n"
                             "{\"prompt\": \"a long prompt\", \"response\": \"r\"}\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_lm_dataset_load(&ds, p, NULL, NULL));
    test_enc te;
    lp_text_encoder enc = make_enc(&te, 1);
    lp_token_dataset tok;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_token_dataset_from_text(&tok, ds, &enc, 6, &rep));
    /* seq 0: bos a b | c d e eos = 7 tokens -> cut to 6 (eos lost) */
    assert_int_equal(tok.n, 2);
    int32_t want0[6] = {1, 'a' + 10, 'b' + 10, 'c' + 10, 'd' + 10, 'e' + 10};
    assert_int_equal(tok.offsets[1], 6);
    assert_memory_equal(tok.ids, want0, sizeof want0);
    assert_int_equal(tok.n_prompt[0], 3);
    assert_int_equal(tok.label[0], -1);
    /* seq 1: bos x y z eos, only bos untrained */
    assert_int_equal(tok.offsets[2] - tok.offsets[1], 5);
    assert_int_equal(tok.n_prompt[1], 1);
    assert_int_equal(tok.ids[tok.offsets[2] - 1], 2);
    assert_int_equal(tok.source[1], 1);
    /* seq 2: the prompt alone fills max_len: dropped and counted */
    assert_int_equal(rep.truncated, 2);
    assert_int_equal(rep.truncated_tokens, 1 + (1 + 13 + 1 + 1 - 6));
    assert_int_equal(rep.dropped_no_target, 1);
    assert_int_equal(tok.max_len, 6);
    lp_token_dataset_free(&tok);
    /* encoder needing more ids than bytes: grow and retry */
    enc = make_enc(&te, 3);
    LP_ASSERT_OK(lp_token_dataset_from_text(&tok, ds, &enc, 1000, NULL));
    assert_int_equal(tok.offsets[1], 1 + 6 + 9 + 1);
    assert_int_equal(tok.n_prompt[0], 7);
    lp_token_dataset_free(&tok);
    int32_t *ids;
    int64_t n;
    char big[100];
    memset(big, 'q', sizeof big);
    LP_ASSERT_OK(lp_text_encode(&enc, big, sizeof big, &ids, &n));
    assert_int_equal(n, 300);
    assert_int_equal(ids[299], 'q' + 10);
    assert_int_equal(te.calls > 0, 1);
    lp_free(ids);
    lp_text_dataset_free(ds);
}

static void test_batch_labels_and_padding(void **state)
{
    (void)state;
    /* three sequences by hand: lengths 5, 3, 8; prompts 2, 0, 8 */
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = 100 + i;
    int64_t offsets[4] = {0, 5, 8, 16};
    int32_t n_prompt[3] = {2, 0, 3};
    int32_t label[3] = {-1, -1, -1};
    int64_t source[3] = {0, 1, 2};
    lp_token_dataset ds = {3, offsets, ids, n_prompt, label, source, 8, 16};
    lp_batch b;
    LP_ASSERT_OK(lp_batch_init(&b, 4, 8));
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    int64_t idx[2] = {0, 1};
    LP_ASSERT_OK(lp_batch_fill(&b, &ds, idx, 2, 0, -1, &rep));
    assert_int_equal(b.T_used, 5); /* longest in the batch */
    assert_int_equal(b.n_seq, 2);
    int32_t want_in[4 * 5] = {100, 101, 102, 103, 104, 105, 106, 107, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    int32_t want_lab[4 * 5] = {-100, -100, 102, 103, 104, 105, 106, 107, -100, -100,
                               -100, -100, -100, -100, -100, -100, -100, -100, -100, -100};
    assert_memory_equal(b.input_ids, want_in, sizeof want_in);
    assert_memory_equal(b.labels, want_lab, sizeof want_lab);
    assert_int_equal(b.lengths[0], 5);
    assert_int_equal(b.lengths[1], 3);
    assert_int_equal(b.lengths[2], 0);
    assert_int_equal(b.index[3], -1);
    assert_int_equal(b.n_tokens, 8);
    assert_int_equal(b.n_targets, 3 + 2); /* t >= 1 and trained */
    assert_int_equal(rep.truncated, 0);
    /* fixed length 6: sequence 2 (8 tokens) is cut and counted */
    int64_t idx2[3] = {2, 0, 1};
    LP_ASSERT_OK(lp_batch_fill(&b, &ds, idx2, 3, 6, 0, &rep));
    assert_int_equal(b.T_used, 6);
    assert_int_equal(b.lengths[0], 6);
    assert_int_equal(rep.truncated, 1);
    assert_int_equal(rep.truncated_tokens, 2);
    assert_int_equal(b.labels[2], -100);
    assert_int_equal(b.labels[3], 111);
    assert_int_equal(b.input_ids[6 + 5], 0);
    /* longest capped by the capacity T */
    LP_ASSERT_OK(lp_batch_fill(&b, &ds, idx2, 1, 0, 0, &rep));
    assert_int_equal(b.T_used, 8);
    /* bad arguments */
    int64_t bad = 3;
    assert_int_equal(lp_batch_fill(&b, &ds, &bad, 1, 0, 0, NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_batch_fill(&b, &ds, idx, 5, 0, 0, NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_batch_fill(&b, &ds, idx, 1, 9, 0, NULL), LP_ERR_INVALID_ARG);
    lp_batch_free(&b);
    assert_int_equal(lp_batch_init(&b, 0, 8), LP_ERR_INVALID_ARG);
}

static void test_classification_tokens(void **state)
{
    (void)state;
    const char *p = tmp_file(".tsv", "spam\twin\nham\thi there\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_AUTO, NULL, NULL));
    test_enc te;
    lp_text_encoder enc = make_enc(&te, 1); /* [CLS]=1 ... [SEP]=2 */
    lp_token_dataset tok;
    LP_ASSERT_OK(lp_token_dataset_from_text(&tok, ds, &enc, 4, NULL));
    assert_int_equal(tok.n, 2);
    assert_int_equal(tok.label[0], 1);
    assert_int_equal(tok.label[1], 0);
    assert_int_equal(tok.offsets[1], 4); /* [CLS] w i n [SEP] cut to 4 */
    lp_batch b;
    LP_ASSERT_OK(lp_batch_init(&b, 2, 4));
    int64_t idx[2] = {1, 0};
    LP_ASSERT_OK(lp_batch_fill(&b, &tok, idx, 2, 0, 0, NULL));
    assert_int_equal(b.class_label[0], 0);
    assert_int_equal(b.class_label[1], 1);
    assert_int_equal(b.input_ids[0], 1);
    lp_batch_free(&b);
    lp_token_dataset_free(&tok);
    lp_text_dataset_free(ds);
}

static void test_moby_dick_windows(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/text/moby_dick.txt");
    if (!path) { LP_SKIP("../shared/data/text/moby_dick.txt not found (set LEANPROP_SHARED)"); }
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    unsigned char tail_first = 0;
    lp_text_encoder enc = lp_text_encoder_bytes();
    int64_t n_val = (int64_t)floor(bytes * 0.1 + 0.5), n_train = bytes - n_val;
    fseek(f, (long)n_train, SEEK_SET);
    assert_int_equal(fread(&tail_first, 1, 1, f), 1);
    fclose(f);
    lp_token_dataset tr, va;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_ASSERT_OK(lp_text_corpus_load(&tr, &va, path, &enc, 256, 0.1, &rep));
    assert_true(bytes > 1000000);
    assert_int_equal(tr.n_tokens + va.n_tokens, bytes - ((n_train % 256 == 1) + (n_val % 256 == 1)));
    assert_int_equal(tr.n, (n_train + 254) / 256);
    assert_int_equal(tr.offsets[1], 256);
    assert_int_equal(tr.max_len, 256);
    assert_int_equal(va.ids[0], tail_first);
    assert_int_equal(tr.ids[0], 'C'); /* "CHAPTER 1." */
    for (int64_t i = 0; i < tr.n; i++) assert_int_equal(tr.n_prompt[i], 0);
    assert_int_equal(rep.examples, tr.n + va.n);
    lp_token_dataset_free(&tr);
    lp_token_dataset_free(&va);
}

static void test_windows_small_and_bad(void **state)
{
    (void)state;
    int32_t ids[7] = {1, 2, 3, 4, 5, 6, 7};
    lp_token_dataset w;
    LP_ASSERT_OK(lp_token_windows(&w, ids, 7, 3));
    assert_int_equal(w.n, 2); /* [1 2 3] [4 5 6]; a lone 7 trains nothing */
    assert_int_equal(w.ids[3], 4);
    lp_token_dataset_free(&w);
    LP_ASSERT_OK(lp_token_windows(&w, ids, 0, 3));
    assert_int_equal(w.n, 0);
    assert_int_equal(w.offsets[0], 0);
    lp_token_dataset_free(&w);
    assert_int_equal(lp_token_windows(&w, ids, 7, 1), LP_ERR_INVALID_ARG);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_token_dataset tr, va;
    const char *p = tmp_file(".txt", "tiny");
    assert_int_equal(lp_text_corpus_load(&tr, &va, p, &enc, 8, 0.5, NULL), LP_OK);
    lp_token_dataset_free(&tr);
    lp_token_dataset_free(&va);
    p = tmp_file(".txt", "abc");
    assert_int_equal(lp_text_corpus_load(&tr, &va, p, &enc, 8, 0.1, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "too few"));
    assert_int_equal(lp_text_corpus_load(&tr, &va, p, &enc, 8, 1.0, NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_text_corpus_load(&tr, &va, "/nonexistent.txt", &enc, 8, 0.1, NULL), LP_ERR_NOT_FOUND);
}

/* Real tokenizers through the adapter: the response/continuation split is
 * taken from one encoding of the joined text, so a SentencePiece-style
 * tokenizer (llama2.c's) puts no word-start marker in front of the response. */
static void test_real_tokenizers(void **state)
{
    (void)state;
    const char *tokbin = lp_test_shared("data/models/stories260K/tok512.bin");
    const char *enc_json = lp_test_shared("data/tokenizers/gpt2/encoder.json");
    const char *vocab = lp_test_shared("data/tokenizers/gpt2/vocab.bpe");
    if (!tokbin || !enc_json || !vocab) { LP_SKIP("shared tokenizers not found (set LEANPROP_SHARED)"); }
    const char *p = tmp_file(".jsonl", "{\"prompt\": \"Once upon a time\", \"response\": \", there was a cat.\"}\n");
    lp_text_dataset *ds;
    LP_ASSERT_OK(lp_lm_dataset_load(&ds, p, NULL, NULL));
    lp_tokenizer *tok;
    LP_ASSERT_OK(lp_tokenizer_open_llama2c(&tok, tokbin));
    lp_text_encoder enc = lp_text_encoder_from_tokenizer(tok);
    assert_int_equal(enc.bos_id, 1);
    assert_int_equal(enc.eos_id, 2);
    lp_token_dataset td;
    LP_ASSERT_OK(lp_token_dataset_from_text(&td, ds, &enc, 512, NULL));
    int32_t *full, *prompt;
    size_t nf, np;
    const char *joined = "Once upon a time, there was a cat.";
    LP_ASSERT_OK(lp_tokenizer_encode(tok, joined, strlen(joined), 0, &full, &nf));
    LP_ASSERT_OK(lp_tokenizer_encode(tok, "Once upon a time", 16, 0, &prompt, &np));
    assert_int_equal(td.offsets[1], (int64_t)nf + 2);           /* bos ... eos */
    assert_int_equal(td.ids[0], 1);
    assert_memory_equal(td.ids + 1, full, nf * sizeof(int32_t));
    assert_int_equal(td.ids[nf + 1], 2);
    assert_int_equal(td.n_prompt[0], (int32_t)np + 1);
    /* the trained part decodes back to the response */
    char *text;
    size_t len;
    LP_ASSERT_OK(lp_tokenizer_decode(tok, td.ids + td.n_prompt[0], nf - np, 0, &text, &len));
    assert_string_equal(text, ", there was a cat.");
    lp_free(text);
    lp_free(full);
    lp_free(prompt);
    lp_token_dataset_free(&td);
    lp_tokenizer_close(tok);
    lp_text_dataset_free(ds);

    /* GPT-2, multiple choice: the continuation is " Paris" */
    p = tmp_file(".jsonl", "{\"question\": \"Capital of France?\", \"choices\": [\"Rome\", \"Paris\"], \"answer\": 1}\n");
    lp_mc_dataset *mc;
    LP_ASSERT_OK(lp_mc_dataset_load(&mc, p, NULL, NULL));
    LP_ASSERT_OK(lp_tokenizer_open_gpt2(&tok, enc_json, vocab));
    enc = lp_text_encoder_from_tokenizer(tok);
    enc.bos_id = -1; /* lm-eval scores GPT-2 without a leading <|endoftext|> */
    lp_token_dataset req;
    LP_ASSERT_OK(lp_mc_build_requests(&req, mc, &enc, NULL, NULL));
    assert_int_equal(req.n, 2);
    int64_t n1 = req.offsets[2] - req.offsets[1];
    LP_ASSERT_OK(lp_tokenizer_decode(tok, req.ids + req.offsets[1] + req.n_prompt[1], (size_t)(n1 - req.n_prompt[1]),
                                     0, &text, &len));
    assert_string_equal(text, " Paris");
    lp_free(text);
    LP_ASSERT_OK(lp_tokenizer_decode(tok, req.ids + req.offsets[1], (size_t)req.n_prompt[1], 0, &text, &len));
    assert_string_equal(text, "Question: Capital of France?\nAnswer:");
    lp_free(text);
    lp_token_dataset_free(&req);
    lp_tokenizer_close(tok);
    lp_mc_dataset_free(mc);
}

static void test_epoch_order(void **state)
{
    (void)state;
    int64_t a[50], b[50];
    lp_data_epoch_order(a, 50, 7, 3);
    lp_data_epoch_order(b, 50, 7, 3);
    assert_memory_equal(a, b, sizeof a);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
    lp_data_epoch_order(b, 50, 7, 4);
    assert_true(memcmp(a, b, sizeof a) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tokenize_prompt_response, cleanup),
        cmocka_unit_test_teardown(test_batch_labels_and_padding, cleanup),
        cmocka_unit_test_teardown(test_classification_tokens, cleanup),
        cmocka_unit_test_teardown(test_moby_dick_windows, cleanup),
        cmocka_unit_test_teardown(test_windows_small_and_bad, cleanup),
        cmocka_unit_test_teardown(test_real_tokenizers, cleanup),
        cmocka_unit_test_teardown(test_epoch_order, cleanup),
    };
    size_t before = lp_mem_current(LP_MEM_DATA);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (lp_mem_current(LP_MEM_DATA) != before) {
        fprintf(stderr, "data memory leaked: %zu bytes\n", lp_mem_current(LP_MEM_DATA) - before);
        return 1;
    }
    return rc;
}
