/* Regression tests for what the libFuzzer harnesses (fuzz/fuzz_*.c, `make fuzz`) found: each
 * test rebuilds the offending input (the minimal form of the crash artifact, which is also kept
 * as a seed in fuzz/corpus/<harness>/regress-*) and checks the parser now refuses it cleanly,
 * with the message the fix added. Under the sanitizer build (`make test-asan`) the unfixed code
 * aborts here with the UBSan report the fuzzer saw.
 *
 * FOUND BY FUZZING (harness, file:line of the report, fix):
 *   fuzz_llmc        src/io/llmc.c:29        int64 overflow in tensor sizes from header fields <= 2^24
 *   fuzz_llama2c     src/io/llama2c.c:77     the same in llama2.c's sizes
 *   fuzz_dataset_jsonl src/io/dataset_cls.c:201 double -> long long cast of a huge numeric label
 *   fuzz_tokenizer_gpt2, fuzz_tokenizer_hf  src/io/tokenizer_bpe.c:370  memcpy from a NULL id buffer
 *                    (pointer arithmetic on NULL, UB) when a word encodes to no token at all;
 *                    only the sanitizer build sees it (the normal build passes either way)
 * FOUND BY CHECKING THE SAME PATTERN (confirmed with the harness binaries before the fix):
 *   fuzz_dataset_jsonl src/io/dataset_mc.c:107  double -> int cast of a huge numeric answer
 *   fuzz_config      src/nn/transformer_config.c:164 double -> int64 cast of a huge token id
 */
#include "util/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/dataset.h"
#include "leanprop/tokenizer.h"
#include "leanprop/transformer.h"

#define EXPECT_REFUSED(expr, status, needle) do { \
    lp_status st__ = (expr); \
    if (st__ != (status)) fail_msg("%s -> %s (%s), expected %s", #expr, lp_status_name(st__), lp_error_message(), \
                                   lp_status_name(status)); \
    if (!strstr(lp_error_message(), (needle))) fail_msg("message '%s' lacks '%s'", lp_error_message(), (needle)); \
} while (0)

/* llm.c header with every size field at the maximum the reader allows (2^24): the tensor sizes
 * L*3*C*C overflowed int64 before the file size was compared. */
static void test_llmc_header_size_overflow(void **state)
{
    (void)state;
    int32_t h[256] = {0};
    h[0] = 20240326;        /* magic */
    h[1] = 3;               /* fp32 */
    h[2] = 4;               /* max_seq_len */
    h[3] = 8;               /* vocab */
    h[4] = 1 << 24;         /* layers */
    h[5] = 2;               /* heads */
    h[6] = 1 << 24;         /* channels */
    h[7] = 1 << 24;         /* padded vocab */
    const char *p = lp_test_write_temp(".bin", h, sizeof h);
    lp_transformer *m = NULL;
    EXPECT_REFUSED(lp_llmc_load(&m, p), LP_ERR_FORMAT, "header sizes need");
    assert_null(m);
    assert_non_null(strstr(lp_error_message(), p));
    unlink(p);
}

static void test_llama2c_header_size_overflow(void **state)
{
    (void)state;
    /* dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len */
    int32_t h[7] = {1 << 24, 1 << 24, 1 << 24, 2, 2, 1 << 24, 4};
    const char *p = lp_test_write_temp(".bin", h, sizeof h);
    lp_transformer *m = NULL;
    EXPECT_REFUSED(lp_llama2c_load(&m, p), LP_ERR_FORMAT, "header sizes need");
    assert_null(m);
    unlink(p);
    /* untied classifier (negative vocab) doubles the embedding: same check */
    h[5] = -(1 << 24);
    p = lp_test_write_temp(".bin", h, sizeof h);
    EXPECT_REFUSED(lp_llama2c_load(&m, p), LP_ERR_FORMAT, "header sizes need");
    unlink(p);
}

static const char *write_text(const char *suffix, const char *text)
{
    return lp_test_write_temp(suffix, text, strlen(text));
}

/* A numeric label beyond long long ("label": 1e300) was cast before its range was checked. */
static void test_cls_jsonl_huge_numeric_label(void **state)
{
    (void)state;
    const char *p = write_text(".jsonl", "{\"text\": \"good\", \"label\": 1}\n{\"text\": \"bad movie\", \"label\": 1e300}\n");
    lp_data_options opt = lp_data_options_defaults();
    lp_data_report rep = {0};
    lp_text_dataset *ds = NULL;
    EXPECT_REFUSED(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_JSONL, &opt, &rep), LP_ERR_FORMAT, ":2:");
    assert_null(ds);
    /* under SKIP the record is counted and the rest loads */
    opt.on_malformed = LP_BAD_INPUT_SKIP;
    LP_ASSERT_OK(lp_cls_dataset_load(&ds, p, LP_CLS_FORMAT_JSONL, &opt, &rep));
    assert_int_equal(lp_text_dataset_count(ds), 1);
    assert_int_equal(rep.skipped_malformed, 1);
    lp_text_dataset_free(ds);
    /* -1e300 and the largest exact integers too */
    const char *q = write_text(".jsonl", "{\"text\": \"a\", \"label\": -1e300}\n");
    opt.on_malformed = LP_BAD_INPUT_STOP;
    EXPECT_REFUSED(lp_cls_dataset_load(&ds, q, LP_CLS_FORMAT_JSONL, &opt, &rep), LP_ERR_FORMAT, ":1:");
    unlink(q);
    unlink(p);
}

static void test_mc_huge_numeric_answer(void **state)
{
    (void)state;
    const char *p = write_text(".jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1e300}\n");
    lp_data_options opt = lp_data_options_defaults();
    lp_data_report rep = {0};
    lp_mc_dataset *ds = NULL;
    EXPECT_REFUSED(lp_mc_dataset_load(&ds, p, &opt, &rep), LP_ERR_FORMAT, "out of range");
    assert_null(ds);
    unlink(p);
    p = write_text(".jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": -3e9}\n");
    EXPECT_REFUSED(lp_mc_dataset_load(&ds, p, &opt, &rep), LP_ERR_FORMAT, "out of range");
    unlink(p);
}

static void test_config_huge_token_id(void **state)
{
    (void)state;
    static const char *const keys[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    static const char *const types[] = {"gpt2", "llama"};
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < 3; k++) {
            char json[512];
            snprintf(json, sizeof json,
                     "{\"model_type\": \"%s\", \"vocab_size\": 8, \"n_embd\": 4, \"n_layer\": 1, \"n_head\": 2, "
                     "\"n_positions\": 4, \"hidden_size\": 4, \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                     "\"num_attention_heads\": 2, \"%s\": %s}",
                     types[t], keys[k], k == 1 ? "[1e300]" : "1e300");
            lp_transformer_config cfg;
            EXPECT_REFUSED(lp_transformer_config_parse(&cfg, json, "cfg.json"), LP_ERR_FORMAT, keys[k]);
        }
    }
}

/* A GPT-2 vocabulary without the bytes of a word ("\xb9#v..." has no token): the word encodes to
 * nothing, and caching that empty result copied from a NULL buffer. Encoding it twice exercises
 * both the store and the cache hit. (The fuzzer's input: fuzz/corpus/tokenizer_gpt2/regress-*.) */
static void test_tokenizer_word_without_tokens(void **state)
{
    (void)state;
    const char *enc = write_text("-encoder.json", "{\"a\":0,\"b\":1,\"ab\":2}");
    const char *bpe = write_text("-vocab.bpe", "#version: 0.2\na b\n");
    lp_tokenizer *t = NULL;
    LP_ASSERT_OK(lp_tokenizer_open_gpt2(&t, enc, bpe));
    for (int rep = 0; rep < 2; rep++) {
        int32_t *ids = NULL;
        size_t n = 99;
        static const char text[] = "\xb9#v\xe5rs ab";
        LP_ASSERT_OK(lp_tokenizer_encode(t, text, sizeof text - 1, 0, &ids, &n));
        /* only "ab" survives: every other byte has no token in this vocabulary */
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], 2);
        lp_free(ids);
    }
    lp_tokenizer_close(t);
    unlink(enc);
    unlink(bpe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llmc_header_size_overflow),
        cmocka_unit_test(test_llama2c_header_size_overflow),
        cmocka_unit_test(test_cls_jsonl_huge_numeric_label),
        cmocka_unit_test(test_mc_huge_numeric_answer),
        cmocka_unit_test(test_config_huge_token_id),
        cmocka_unit_test(test_tokenizer_word_without_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
