/* Tokenizer files that are wrong: one test per failure class, each checking the status and that
 * the message names the file (and the line, for vocab.bpe); then byte mutations of real files,
 * which must load or fail cleanly, never crash or read out of bounds (run under ASan too). */
#include "test_tokenizer_util.h"

/* The status of opening, and that the message names `must_name` and holds `needle`. */
static void expect_error(lp_status got, lp_status want, const char *must_name, const char *needle)
{
    const char *msg = lp_error_message();
    if (got != want) fail_msg("status %s, want %s (%s)", lp_status_name(got), lp_status_name(want), msg);
    if (must_name && !strstr(msg, must_name)) fail_msg("message does not name '%s': %s", must_name, msg);
    if (needle && !strstr(msg, needle)) fail_msg("message lacks '%s': %s", needle, msg);
}

static lp_status open_gpt2_text(const char *enc_json, const char *bpe, const char **enc_path, const char **bpe_path,
                                lp_tokenizer **t)
{
    static char e[4096], b[4096];
    snprintf(e, sizeof e, "%s", tt_temp("-encoder.json", enc_json, strlen(enc_json)));
    snprintf(b, sizeof b, "%s", tt_temp("-vocab.bpe", bpe, strlen(bpe)));
    *t = NULL;
    lp_status st = lp_tokenizer_open_gpt2(t, e, b);
    unlink(e);
    unlink(b);
    if (enc_path) *enc_path = e;
    if (bpe_path) *bpe_path = b;
    return st;
}

static lp_status open_hf_text(const char *json, const char **path, lp_tokenizer **t)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s", tt_temp("-tokenizer.json", json, strlen(json)));
    *t = NULL;
    lp_status st = lp_tokenizer_open_hf(t, p);
    unlink(p);
    *path = p;
    return st;
}

static lp_status open_bin(const void *data, size_t n, const char **path, lp_tokenizer **t)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s", tt_temp("-tokenizer.bin", data, n));
    *t = NULL;
    lp_status st = lp_tokenizer_open_llama2c(t, p);
    unlink(p);
    *path = p;
    return st;
}

static void test_missing_files(void **state)
{
    (void)state;
    lp_tokenizer *t = (lp_tokenizer *)1;
    expect_error(lp_tokenizer_open_gpt2(&t, "/nonexistent/encoder.json", "/nonexistent/vocab.bpe"), LP_ERR_NOT_FOUND,
                 "/nonexistent/encoder.json", "cannot open");
    assert_null(t);
    const char *enc = tt_temp("-encoder.json", "{\"a\":0}", 7);
    expect_error(lp_tokenizer_open_gpt2(&t, enc, "/nonexistent/vocab.bpe"), LP_ERR_NOT_FOUND, "/nonexistent/vocab.bpe",
                 NULL);
    unlink(enc);
    expect_error(lp_tokenizer_open_hf(&t, "/nonexistent/tokenizer.json"), LP_ERR_NOT_FOUND, "/nonexistent/tokenizer.json",
                 NULL);
    expect_error(lp_tokenizer_open_llama2c(&t, "/nonexistent/tokenizer.bin"), LP_ERR_NOT_FOUND,
                 "/nonexistent/tokenizer.bin", NULL);
    expect_error(lp_tokenizer_open_llama2c(&t, "/tmp"), LP_ERR_IO, "/tmp", NULL); /* a directory */
    expect_error(lp_tokenizer_open_gpt2(NULL, "a", "b"), LP_ERR_INVALID_ARG, NULL, NULL);
}

static void test_encoder_json_not_json(void **state)
{
    (void)state;
    lp_tokenizer *t;
    const char *e;
    expect_error(open_gpt2_text("{\"a\": 0, ", "#version: 0.2\n", &e, NULL, &t), LP_ERR_FORMAT, NULL, "not valid JSON");
    assert_non_null(strstr(lp_error_message(), e));
    assert_null(t);
    expect_error(open_gpt2_text("", "", &e, NULL, &t), LP_ERR_FORMAT, NULL, "JSON");
    assert_non_null(strstr(lp_error_message(), e));
}

static void test_encoder_json_wrong_types(void **state)
{
    (void)state;
    static const struct { const char *json, *needle; } cases[] = {
        { "[1, 2, 3]", "object" },
        { "\"just a string\"", "object" },
        { "{\"a\": \"zero\"}", "'a'" },
        { "{\"a\": 0, \"b\": 1.5}", "'b'" },
        { "{\"a\": -1}", "'a'" },
        { "{\"a\": 1e12}", "'a'" },        /* would need a terabyte-scale table */
        { "{\"a\": null}", "'a'" },
        { "{}", "empty" },
        { "{\"a\": 0, \"b\": 0}", "id 0" }, /* two tokens, one id */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lp_tokenizer *t;
        const char *e;
        expect_error(open_gpt2_text(cases[i].json, "#version: 0.2\n", &e, NULL, &t), LP_ERR_FORMAT, NULL, cases[i].needle);
        assert_non_null(strstr(lp_error_message(), e));
        assert_null(t);
    }
}

#define SMALL_ENC "{\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3, \"abc\": 4}"

static void test_vocab_bpe_malformed_line(void **state)
{
    (void)state;
    lp_tokenizer *t;
    const char *b;
    /* the well-formed file loads and merges */
    LP_ASSERT_OK(open_gpt2_text(SMALL_ENC, "#version: 0.2\na b\nab c\n", NULL, NULL, &t));
    TT_EXPECT(t, "abc", 0, 4);
    TT_EXPECT(t, "cab", 0, 3, 2);
    lp_tokenizer_close(t);
    static const struct { const char *bpe, *line; } cases[] = {
        { "#version: 0.2\na b\nab\n", ":3:" },       /* one token */
        { "#version: 0.2\na  b\n", ":2:" },          /* two spaces */
        { "#version: 0.2\na b c\n", ":2:" },         /* three tokens */
        { "#version: 0.2\n a\n", ":2:" },            /* empty first token */
        { "#version: 0.2\na b\nab \n", ":3:" },      /* empty second token */
        { "a b\r\nab c\r\nnospace\r\n", ":3:" },     /* no version line, CRLF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        expect_error(open_gpt2_text(SMALL_ENC, cases[i].bpe, NULL, &b, &t), LP_ERR_FORMAT, NULL, cases[i].line);
        char where[4200];
        snprintf(where, sizeof where, "%s%s", b, cases[i].line);
        if (!strstr(lp_error_message(), where)) fail_msg("case %zu: want '%s' in: %s", i, where, lp_error_message());
        assert_null(t);
    }
}

static void test_vocab_bpe_unknown_token(void **state)
{
    (void)state;
    lp_tokenizer *t;
    const char *b;
    expect_error(open_gpt2_text(SMALL_ENC, "#version: 0.2\na b\na x\n", NULL, &b, &t), LP_ERR_FORMAT, NULL, "'x'");
    assert_non_null(strstr(lp_error_message(), b));
    assert_non_null(strstr(lp_error_message(), ":3:"));
    /* both halves known, but what they make is not */
    expect_error(open_gpt2_text(SMALL_ENC, "#version: 0.2\nb a\n", NULL, &b, &t), LP_ERR_FORMAT, NULL, "makes 'ba'");
    assert_non_null(strstr(lp_error_message(), b));
    assert_non_null(strstr(lp_error_message(), ":2:"));
    assert_null(t);
}

/* tok512.bin cut at every length: each either loads (a cut at a record boundary is a shorter
 * but valid vocabulary) or fails as a format error naming the file. */
static void test_llama2c_truncated(void **state)
{
    (void)state;
    const char *src = lp_test_shared(TOK512);
    if (!src) { LP_SKIP("shared stories260K/tok512.bin not found (set LEANPROP_SHARED)"); }
    size_t n = 0;
    char *data = tt_slurp(src, &n);
    assert_non_null(data);
    int ok = 0, bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        lp_tokenizer *t;
        const char *p;
        lp_status st = open_bin(data, cut, &p, &t);
        if (st == LP_OK) {
            assert_true(lp_tokenizer_vocab_size(t) >= 3 && lp_tokenizer_vocab_size(t) < 512);
            lp_tokenizer_close(t);
            ok++;
        } else {
            expect_error(st, LP_ERR_FORMAT, p, NULL);
            bad++;
        }
    }
    assert_int_equal(ok, 512 - 3); /* boundaries after tokens 3..511 */
    assert_true(bad > 5000);
    lp_tokenizer *t;
    const char *p = "";
    expect_error(open_bin(data, n - 1, &p, &t), LP_ERR_FORMAT, NULL, "truncated");
    assert_non_null(strstr(lp_error_message(), p));
    expect_error(open_bin(data, 2, &p, &t), LP_ERR_FORMAT, NULL, "truncated");
    assert_non_null(strstr(lp_error_message(), p));
    free(data);
}

static void put_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }

static void test_llama2c_absurd_lengths(void **state)
{
    (void)state;
    /* a synthetic file: max_token_length 5, tokens <unk> <s> </s> "ab" */
    unsigned char buf[256];
    size_t n = 0;
    put_i32(buf, 5);
    n = 4;
    const char *toks[] = { "<unk>", "\n<s>\n", "</s>", "ab" };
    size_t len_at[4];
    for (int i = 0; i < 4; i++) {
        float score = (float)-i;
        memcpy(buf + n, &score, 4);
        len_at[i] = n + 4;
        put_i32(buf + n + 4, (int32_t)strlen(toks[i]));
        memcpy(buf + n + 8, toks[i], strlen(toks[i]));
        n += 8 + strlen(toks[i]);
    }
    lp_tokenizer *t;
    const char *p;
    LP_ASSERT_OK(open_bin(buf, n, &p, &t));
    assert_int_equal(lp_tokenizer_vocab_size(t), 4);
    lp_tokenizer_close(t);

    static const int32_t absurd_len[] = { INT32_MAX, -1, INT32_MIN, 6, 1 << 20 };
    for (size_t i = 0; i < sizeof absurd_len / sizeof *absurd_len; i++) {
        unsigned char m[256];
        memcpy(m, buf, n);
        put_i32(m + len_at[3], absurd_len[i]);
        expect_error(open_bin(m, n, &p, &t), LP_ERR_FORMAT, p, "length");
        assert_null(t);
    }
    /* a length within max_token_length that runs past the end of the file */
    unsigned char m[256];
    memcpy(m, buf, n);
    put_i32(m + len_at[3], 5);
    expect_error(open_bin(m, n, &p, &t), LP_ERR_FORMAT, p, "truncated");
    static const int32_t absurd_max[] = { 0, -7, INT32_MAX, 1 << 24 };
    for (size_t i = 0; i < sizeof absurd_max / sizeof *absurd_max; i++) {
        memcpy(m, buf, n);
        put_i32(m, absurd_max[i]);
        expect_error(open_bin(m, n, &p, &t), LP_ERR_FORMAT, p, "max_token_length");
    }
    /* NaN score; fewer than the three special tokens */
    memcpy(m, buf, n);
    float nan = __builtin_nanf("");
    memcpy(m + len_at[3] - 4, &nan, 4);
    expect_error(open_bin(m, n, &p, &t), LP_ERR_FORMAT, p, "NaN");
    expect_error(open_bin(buf, len_at[2] - 4, &p, &t), LP_ERR_FORMAT, p, "at least");
}

static void test_hf_unsupported(void **state)
{
    (void)state;
    static const struct { const char *json, *needle; } cases[] = {
        { "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"a\":0},\"unk_token\":\"[UNK]\"}}", "'WordLevel'" },
        { "{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", "'Unigram'" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
          "'BertPreTokenizer'" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"Lowercase\"}}",
          "'Lowercase'" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
          "'WordPiece'" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
          "\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}}",
          "regex" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
          "\"pattern\":{\"String\":\" \"},\"behavior\":\"Removed\"}}",
          "Removed" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"continuing_subword_prefix\":\"##\"}}",
          "continuing_subword_prefix" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lp_tokenizer *t;
        const char *p;
        lp_status st = open_hf_text(cases[i].json, &p, &t);
        expect_error(st, LP_ERR_UNSUPPORTED, p, cases[i].needle);
        assert_null(t);
    }
}

static void test_hf_malformed(void **state)
{
    (void)state;
    static const struct { const char *json, *needle; } cases[] = {
        { "{\"model\": {", "not valid JSON" },
        { "[]", "object" },
        { "{\"version\":\"1.0\"}", "\"model\"" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":[\"a\"]}}", "vocab" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}", "merges" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"a z\"]}}", "merge 1" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}}", "merge 0" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}}", "merge 0" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"\"]]}}", "empty" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"content\":\"x\"}]}", "added token" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":1e9,\"content\":\"x\"}]}",
          "added token" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":{}}", "added_tokens" },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"pretokenizers\":[]}}", "type" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lp_tokenizer *t;
        const char *p;
        lp_status st = open_hf_text(cases[i].json, &p, &t);
        expect_error(st, LP_ERR_FORMAT, p, cases[i].needle);
        assert_null(t);
    }
}

/* Random byte mutations of a real tokenizer.bin and of a small tokenizer.json: load or fail
 * cleanly; whatever loads can encode and decode. */
static void try_use(lp_tokenizer *t, lp_rng *r)
{
    char buf[200];
    size_t n = tt_random_utf8(r, buf, sizeof buf);
    int32_t *ids;
    size_t ni;
    if (lp_tokenizer_encode(t, buf, n, LP_TOKENIZER_ADD_BOS, &ids, &ni) == LP_OK) {
        char *s;
        size_t sl;
        if (lp_tokenizer_decode(t, ids, ni, 0, &s, &sl) == LP_OK) lp_free(s);
        lp_free(ids);
    }
}

static void test_mutations_never_crash(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 2024);
    const char *src = lp_test_shared(TOK512);
    if (src) {
        size_t n = 0;
        unsigned char *data = (unsigned char *)tt_slurp(src, &n), *m = malloc(n);
        assert_true(data && m);
        for (int it = 0; it < 300; it++) {
            memcpy(m, data, n);
            int flips = 1 + (int)lp_rng_below(&r, 4);
            for (int f = 0; f < flips; f++) m[lp_rng_below(&r, n)] = (unsigned char)lp_rng_below(&r, 256);
            lp_tokenizer *t;
            const char *p;
            lp_status st = open_bin(m, n, &p, &t);
            if (st == LP_OK) { try_use(t, &r); lp_tokenizer_close(t); }
            else assert_int_equal(st, LP_ERR_FORMAT);
        }
        free(data);
        free(m);
    }
    static const char json[] =
        "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\","
        "\"special\":true}],\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
        "\"\xe2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
        "\"pre_tokenizer\":null,\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":"
        "{\"String\":\"\xe2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,\"vocab\":"
        "{\"<unk>\":0,\"<s>\":1,\"<0x41>\":2,\"\xe2\x96\x81\":3,\"a\":4,\"b\":5,\"ab\":6,\"\xe2\x96\x81" "ab\":7},"
        "\"merges\":[\"a b\",\"\xe2\x96\x81 ab\"]}}";
    size_t jn = sizeof json - 1;
    lp_tokenizer *t;
    const char *p;
    LP_ASSERT_OK(open_hf_text(json, &p, &t));
    TT_EXPECT(t, "ab", 0, 7);
    lp_tokenizer_close(t);
    char m[sizeof json];
    for (int it = 0; it < 600; it++) {
        memcpy(m, json, sizeof json);
        int flips = 1 + (int)lp_rng_below(&r, 3);
        for (int f = 0; f < flips; f++) {
            size_t at = lp_rng_below(&r, jn);
            /* mostly JSON punctuation and digits, so mutants often still parse */
            static const char pool[] = "{}[]\":,0123456789 abtrue-nul\\\xe2";
            m[at] = lp_rng_below(&r, 4) ? pool[lp_rng_below(&r, sizeof pool - 1)] : (char)lp_rng_below(&r, 256);
        }
        lp_status st = open_hf_text(m, &p, &t);
        if (st == LP_OK) { try_use(t, &r); lp_tokenizer_close(t); }
        else assert_true(st == LP_ERR_FORMAT || st == LP_ERR_UNSUPPORTED);
    }
}

/* Every allocation failing in turn while opening and using a tokenizer: LP_ERR_NOMEM or
 * success, and the data category back where it started after close (nothing leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *bin = lp_test_shared(TOK512);
    if (!bin) { LP_SKIP("shared stories260K/tok512.bin not found (set LEANPROP_SHARED)"); }
    static const char json[] =
        "{\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true}],\"pre_tokenizer\":{\"type\":"
        "\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
        "{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}";
    const char *jp = tt_temp("-tokenizer.json", json, sizeof json - 1);
    size_t base = lp_mem_current(LP_MEM_DATA);
    for (int which = 0; which < 2; which++) {
        int succeeded = 0;
        for (size_t k = 1; k < 400 && !succeeded; k++) {
            lp_tokenizer *t = NULL;
            lp_mem_fail_after(k);
            lp_status st = which ? lp_tokenizer_open_hf(&t, jp) : lp_tokenizer_open_llama2c(&t, bin);
            if (st == LP_OK) {
                int32_t *ids = NULL;
                size_t n;
                st = lp_tokenizer_encode(t, "ab<s>ba", 7, 0, &ids, &n);
                lp_free(ids);
                succeeded = lp_mem_current(LP_MEM_DATA) > base && st == LP_OK;
                lp_tokenizer_close(t);
            }
            lp_mem_fail_after(0);
            if (st != LP_OK && st != LP_ERR_NOMEM) fail_msg("k=%zu: %s: %s", k, lp_status_name(st), lp_error_message());
            assert_int_equal(lp_mem_current(LP_MEM_DATA), base);
        }
        assert_true(succeeded);
    }
    unlink(jp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_encoder_json_not_json),
        cmocka_unit_test(test_encoder_json_wrong_types),
        cmocka_unit_test(test_vocab_bpe_malformed_line),
        cmocka_unit_test(test_vocab_bpe_unknown_token),
        cmocka_unit_test(test_llama2c_truncated),
        cmocka_unit_test(test_llama2c_absurd_lengths),
        cmocka_unit_test(test_hf_unsupported),
        cmocka_unit_test(test_hf_malformed),
        cmocka_unit_test(test_mutations_never_crash),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
