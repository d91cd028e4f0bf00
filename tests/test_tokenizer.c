/* Tokenizers: GPT-2 (encoder.json + vocab.bpe) and llama2.c (tokenizer.bin) against their
 * reference encoders, round trips, and the lookup API.
 *
 * Expected ids: the well-known ones ("Hello world" = 15496 995, " the" = 262, <|endoftext|> =
 * 50256) and, for the rest, the output of OpenAI's encoder.py algorithm (bytes_to_unicode,
 * GPT-2 regex with the Python `regex` module, rank-ordered merges) and of a literal Python port
 * of llama2.c's run.c encode(), both run once on this machine; their constants are pasted here. */
#include "test_tokenizer_util.h"

#include <time.h>

/* ---- GPT-2 ---- */

static void test_gpt2_known_ids(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_GPT2(t);
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_GPT2);
    assert_string_equal(lp_tokenizer_kind_name(LP_TOKENIZER_GPT2), "gpt2");
    assert_int_equal(lp_tokenizer_vocab_size(t), 50257);
    TT_EXPECT(t, "Hello world", 0, 15496, 995);
    TT_EXPECT(t, " the", 0, 262);
    TT_EXPECT(t, "<|endoftext|>", 0, 50256);
    TT_EXPECT(t, "Hello<|endoftext|> world", 0, 15496, 50256, 995);
    /* as plain text, encoder.py's result */
    TT_EXPECT(t, "<|endoftext|>", LP_TOKENIZER_SPECIAL_AS_TEXT, 27, 91, 437, 1659, 5239, 91, 29);
    TT_EXPECT(t, "don't", 0, 9099, 470);
    TT_EXPECT(t, "I'll", 0, 40, 1183);
    TT_EXPECT(t, "we've", 0, 732, 1053);
    TT_EXPECT(t, "a   b", 0, 64, 220, 220, 275);
    TT_EXPECT(t, "2024", 0, 1238, 1731);
    TT_EXPECT(t, "\xf0\x9f\x99\x82", 0, 8582, 25081);                       /* 🙂 */
    TT_EXPECT(t, "\xe4\xbd\xa0\xe5\xa5\xbd", 0, 19526, 254, 25001, 121);    /* 你好 */
    TT_EXPECT(t, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80", 0, /* Привет мир */
              140, 253, 21169, 18849, 38857, 16843, 20375, 12466, 120, 18849, 21169);
    TT_EXPECT(t, "na\xc3\xafve caf\xc3\xa9", 0, 2616, 38776, 40304);         /* naïve café */
    TT_EXPECT(t, "e\xcc\x81", 0, 68, 136, 223);                              /* e + combining acute */
    TT_EXPECT(t, "  leading\n\n trailing  ", 0, 220, 3756, 628, 25462, 220, 220);
    TT_EXPECT(t, "The year 2024, I'll say: don't!", 0, 464, 614, 48609, 11, 314, 1183, 910, 25, 836, 470, 0);
    /* BOS / EOS are both <|endoftext|> */
    assert_int_equal(lp_tokenizer_bos(t), 50256);
    assert_int_equal(lp_tokenizer_eos(t), 50256);
    TT_EXPECT(t, "Hello world", LP_TOKENIZER_ADD_BOS | LP_TOKENIZER_ADD_EOS, 50256, 15496, 995, 50256);
    /* empty text: no ids, NULL buffer */
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    LP_ASSERT_OK(lp_tokenizer_encode(t, "", 0, 0, &ids, &n));
    assert_null(ids);
    assert_int_equal(n, 0);
    lp_tokenizer_close(t);
}

/* Pre-token boundaries: what the regex hands to BPE. */
static void expect_pieces(lp_tokenizer *t, const char *text, const char *const *want, size_t n_want)
{
    lp_tokenizer_span *sp = NULL;
    size_t n = 0;
    LP_ASSERT_OK(lp_tokenizer_pretokenize(t, text, strlen(text), 0, &sp, &n));
    if (n != n_want) { lp_free(sp); fail_msg("'%s': %zu pieces, want %zu", text, n, n_want); }
    for (size_t i = 0; i < n; i++) {
        size_t l = sp[i].end - sp[i].begin;
        if (l != strlen(want[i]) || memcmp(text + sp[i].begin, want[i], l) != 0) {
            lp_free(sp);
            fail_msg("'%s': piece %zu is '%.*s', want '%s'", text, i, (int)l, text + sp[i].begin, want[i]);
        }
    }
    lp_free(sp);
}
#define EXPECT_PIECES(t, text, ...) do { const char *const w__[] = { __VA_ARGS__ }; \
    expect_pieces((t), (text), w__, sizeof w__ / sizeof *w__); } while (0)

static void test_gpt2_pretokenize(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_GPT2(t);
    EXPECT_PIECES(t, "don't", "don", "'t");
    EXPECT_PIECES(t, "I'll", "I", "'ll");
    EXPECT_PIECES(t, "we've", "we", "'ve");
    EXPECT_PIECES(t, "they're here'd", "they", "'re", " here", "'d");
    EXPECT_PIECES(t, "a   b", "a", "  ", " b");
    EXPECT_PIECES(t, "2024", "2024");
    EXPECT_PIECES(t, "in 2024!", "in", " 2024", "!");
    EXPECT_PIECES(t, "x \xf0\x9f\x99\x82\xf0\x9f\x99\x82 y", "x", " \xf0\x9f\x99\x82\xf0\x9f\x99\x82", " y");
    EXPECT_PIECES(t, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
                  "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", " \xd0\xbc\xd0\xb8\xd1\x80");
    EXPECT_PIECES(t, "\xe4\xbd\xa0\xe5\xa5\xbd \xe4\xb8\x96\xe7\x95\x8c", "\xe4\xbd\xa0\xe5\xa5\xbd", " \xe4\xb8\x96\xe7\x95\x8c");
    EXPECT_PIECES(t, "na\xc3\xafve caf\xc3\xa9", "na\xc3\xafve", " caf\xc3\xa9");
    EXPECT_PIECES(t, "e\xcc\x81", "e", "\xcc\x81");     /* a combining mark is not \p{L} */
    EXPECT_PIECES(t, "end.  \n", "end", ".", "  \n"); /* trailing whitespace stays one piece */
    EXPECT_PIECES(t, "hi<|endoftext|>there", "hi", "<|endoftext|>", "there");
    /* bytes that are not UTF-8 become their own pieces rather than vanishing */
    EXPECT_PIECES(t, "ab\xff" "cd", "ab", "\xff", "cd");
    lp_tokenizer_close(t);
}

static void test_gpt2_roundtrip_random_utf8(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_GPT2(t);
    lp_rng r;
    lp_rng_seed(&r, 3);
    char buf[600];
    for (int it = 0; it < 400; it++) {
        size_t n = tt_random_utf8(&r, buf, 8 + lp_rng_below(&r, sizeof buf - 8));
        size_t nt = tt_roundtrip(t, buf, n, 0);
        assert_true(nt >= 1 && nt <= n);
    }
    /* arbitrary bytes, not UTF-8 at all, still round-trip (byte-level BPE covers all 256) */
    for (int it = 0; it < 200; it++) {
        size_t n = 1 + lp_rng_below(&r, 300);
        for (size_t i = 0; i < n; i++) buf[i] = (char)lp_rng_below(&r, 256);
        tt_roundtrip(t, buf, n, LP_TOKENIZER_SPECIAL_AS_TEXT);
    }
    lp_tokenizer_close(t);
}

static void test_gpt2_moby_dick(void **state)
{
    (void)state;
    const char *path = lp_test_shared(MOBY);
    if (!path) { LP_SKIP("shared moby_dick.txt not found (set LEANPROP_SHARED)"); }
    lp_tokenizer *t;
    TT_OPEN_GPT2(t);
    size_t n = 0;
    char *text = tt_slurp(path, &n);
    assert_non_null(text);
    int32_t *ids;
    size_t nt;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, n, 0, &ids, &nt));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    print_message("[   INFO   ] GPT-2 encode of moby_dick.txt: %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", n, nt,
                  secs, (double)n / secs / 1e6);
    /* encoder.py on the same file: 287230 tokens, this FNV-1a of the ids */
    assert_int_equal(nt, 287230);
    assert_true(tt_fnv(ids, nt) == 0x9cd2f64065bb918aULL);
    lp_free(ids);
    tt_roundtrip(t, text, n, 0);
    /* a second pass hits the per-word cache and must give the same ids */
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, n, 0, &ids, &nt));
    assert_true(tt_fnv(ids, nt) == 0x9cd2f64065bb918aULL);
    lp_free(ids);
    free(text);
    lp_tokenizer_close(t);
}

static void test_gpt2_lookup_and_decode(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_GPT2(t);
    size_t len;
    assert_string_equal(lp_tokenizer_token(t, 262, &len), "\xc4\xa0the"); /* "Ġthe" */
    assert_int_equal(len, 5);
    assert_int_equal(lp_tokenizer_token_id(t, "\xc4\xa0the", 5), 262);
    assert_int_equal(lp_tokenizer_token_id(t, "<|endoftext|>", 13), 50256);
    assert_int_equal(lp_tokenizer_token_id(t, "no such token", 13), -1);
    assert_null(lp_tokenizer_token(t, 50257, NULL));
    assert_null(lp_tokenizer_token(t, -1, NULL));
    assert_true(lp_tokenizer_is_special(t, 50256));
    assert_false(lp_tokenizer_is_special(t, 262));
    /* decode: specials kept or skipped; bad ids refused */
    const int32_t ids[] = { 15496, 50256, 995 };
    char *s;
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 3, 0, &s, &len));
    assert_string_equal(s, "Hello<|endoftext|> world");
    lp_free(s);
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 3, LP_TOKENIZER_SKIP_SPECIAL, &s, &len));
    assert_string_equal(s, "Hello world");
    lp_free(s);
    LP_ASSERT_OK(lp_tokenizer_decode(t, NULL, 0, 0, &s, &len));
    assert_string_equal(s, "");
    lp_free(s);
    const int32_t bad[] = { 15496, 60000 };
    assert_int_equal(lp_tokenizer_decode(t, bad, 2, 0, &s, &len), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "60000"));
    assert_null(s);
    /* streaming: a byte-level token can be part of a character; the pieces add up */
    const int32_t smile[] = { 8582, 25081 };
    char joined[16];
    size_t k = 0;
    for (int i = 0; i < 2; i++) {
        const char *p;
        LP_ASSERT_OK(lp_tokenizer_decode_piece(t, i ? smile[i - 1] : -1, smile[i], &p, &len));
        memcpy(joined + k, p, len);
        k += len;
    }
    assert_int_equal(k, 4);
    assert_memory_equal(joined, "\xf0\x9f\x99\x82", 4);
    /* BOS / EOS override */
    LP_ASSERT_OK(lp_tokenizer_set_bos_eos(t, 262, -1));
    assert_int_equal(lp_tokenizer_bos(t), 262);
    assert_int_equal(lp_tokenizer_encode(t, "x", 1, LP_TOKENIZER_ADD_EOS, (int32_t **)&s, &len), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_tokenizer_set_bos_eos(t, 50257, 0), LP_ERR_INVALID_ARG);
    /* NULL arguments */
    assert_int_equal(lp_tokenizer_encode(NULL, "x", 1, 0, (int32_t **)&s, &len), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_tokenizer_encode(t, NULL, 1, 0, (int32_t **)&s, &len), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_tokenizer_decode(t, NULL, 1, 0, &s, &len), LP_ERR_INVALID_ARG);
    lp_tokenizer_close(t);
    lp_tokenizer_close(NULL);
}

static void test_open_by_name(void **state)
{
    (void)state;
    const char *enc = lp_test_shared(GPT2_ENCODER), *bin = lp_test_shared(TOK512);
    if (!enc || !bin) { LP_SKIP("shared tokenizer files not found (set LEANPROP_SHARED)"); }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", enc);
    *strrchr(dir, '/') = '\0';
    lp_tokenizer *t;
    LP_ASSERT_OK(lp_tokenizer_open(&t, dir));
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_GPT2);
    lp_tokenizer_close(t);
    LP_ASSERT_OK(lp_tokenizer_open(&t, enc)); /* encoder.json finds vocab.bpe beside it */
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_GPT2);
    lp_tokenizer_close(t);
    LP_ASSERT_OK(lp_tokenizer_open(&t, bin));
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_LLAMA2C);
    lp_tokenizer_close(t);
    assert_int_equal(lp_tokenizer_open(&t, "/nonexistent/tok"), LP_ERR_NOT_FOUND);
    assert_null(t);
    assert_int_equal(lp_tokenizer_open(&t, "/tmp"), LP_ERR_NOT_FOUND);
}

/* ---- llama2.c ---- */

static void test_llama2c_known_ids(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_TOK512(t);
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_LLAMA2C);
    assert_int_equal(lp_tokenizer_vocab_size(t), 512);
    assert_int_equal(lp_tokenizer_bos(t), 1);
    assert_int_equal(lp_tokenizer_eos(t), 2);
    /* run.c: BOS, the dummy-prefix " " merged into " Once", ... */
    TT_EXPECT(t, "Once upon a time", LP_TOKENIZER_ADD_BOS, 1, 403, 407, 261, 378);
    TT_EXPECT(t, "Once upon a time", LP_TOKENIZER_ADD_BOS | LP_TOKENIZER_ADD_EOS, 1, 403, 407, 261, 378, 2);
    TT_EXPECT(t, "Once upon a time", 0, 403, 407, 261, 378);
    /* byte fallback (<0xNN> = id NN + 3) for what the 512-token vocabulary lacks */
    TT_EXPECT(t, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x99\x82", LP_TOKENIZER_ADD_BOS,
              1, 270, 485, 306, 414, 263, 198, 185, 420, 341, 410, 481, 410, 231, 192, 163, 232, 168, 192, 410, 243, 162,
              156, 133);
    assert_int_equal(lp_tokenizer_token_id(t, "<0x0A>", 6), 13);
    size_t len;
    assert_string_equal(lp_tokenizer_token(t, 403, &len), " Once");
    TT_EXPECT(t, "", LP_TOKENIZER_ADD_BOS, 1);
    /* special-looking text is plain text for llama2.c (run.c has no special-token matching) */
    int32_t *ids;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_encode(t, "<s>", 3, 0, &ids, &n));
    assert_true(n > 1);
    lp_free(ids);
    lp_tokenizer_close(t);
}

static void test_llama2c_decode_bos_space(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_TOK512(t);
    const int32_t ids[] = { 1, 403, 407, 261, 378, 2 };
    char *s;
    size_t len;
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 6, LP_TOKENIZER_SKIP_SPECIAL, &s, &len));
    assert_string_equal(s, "Once upon a time");
    lp_free(s);
    /* kept specials are shown without their "\n" padding; the space after BOS still goes */
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 6, 0, &s, &len));
    assert_string_equal(s, "<s>Once upon a time</s>");
    lp_free(s);
    /* streaming as run.c prints: the piece after BOS loses its leading space, later ones keep it */
    const char *p;
    LP_ASSERT_OK(lp_tokenizer_decode_piece(t, 1, 403, &p, &len));
    assert_int_equal(len, 4);
    assert_memory_equal(p, "Once", 4);
    LP_ASSERT_OK(lp_tokenizer_decode_piece(t, 403, 407, &p, &len));
    assert_memory_equal(p, " upon", 5);
    LP_ASSERT_OK(lp_tokenizer_decode_piece(t, 403, 13, &p, &len)); /* <0x0A> */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], '\n');
    assert_int_equal(lp_tokenizer_decode_piece(t, 1, 512, &p, &len), LP_ERR_INVALID_ARG);
    lp_tokenizer_close(t);
}

static void test_llama2c_roundtrip(void **state)
{
    (void)state;
    lp_tokenizer *t;
    TT_OPEN_TOK512(t);
    lp_rng r;
    lp_rng_seed(&r, 11);
    char buf[400];
    for (int it = 0; it < 300; it++) {
        size_t n = tt_random_utf8(&r, buf, 8 + lp_rng_below(&r, sizeof buf - 8));
        tt_roundtrip(t, buf, n, it % 2 ? LP_TOKENIZER_ADD_BOS : 0);
    }
    for (int it = 0; it < 100; it++) { /* any bytes: byte fallback covers them */
        size_t n = 1 + lp_rng_below(&r, 200);
        for (size_t i = 0; i < n; i++) buf[i] = (char)lp_rng_below(&r, 256);
        tt_roundtrip(t, buf, n, LP_TOKENIZER_ADD_BOS);
    }
    const char *path = lp_test_shared(MOBY);
    if (path) {
        size_t n = 0;
        char *text = tt_slurp(path, &n);
        assert_non_null(text);
        /* the run.c port on the first 30000 bytes: 16891 ids (BOS included), this FNV-1a */
        int32_t *ids;
        size_t nt;
        LP_ASSERT_OK(lp_tokenizer_encode(t, text, 30000, LP_TOKENIZER_ADD_BOS, &ids, &nt));
        assert_int_equal(nt, 16891);
        assert_true(tt_fnv(ids, nt) == 0x866136223ad26b32ULL);
        lp_free(ids);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        nt = tt_roundtrip(t, text, n, LP_TOKENIZER_ADD_BOS);
        clock_gettime(CLOCK_MONOTONIC, &b);
        print_message("[   INFO   ] llama2.c tok512 encode+decode of moby_dick.txt: %zu tokens in %.3f s\n", nt,
                      (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
        assert_true(nt > n / 4 && nt < n); /* 512 tokens: about 1.8 bytes a token */
        free(text);
    }
    lp_tokenizer_close(t);
}

/* What a handle keeps after encoding is bounded (docs/TOKENIZERS.md): the per-word cache is
 * capped, a large merge scratch is freed; the ids do not change. */
static void test_memory_kept_is_bounded(void **state)
{
    (void)state;
    const char *path = lp_test_shared(MOBY);
    if (!path) { LP_SKIP("shared moby_dick.txt not found (set LEANPROP_SHARED)"); }
    size_t n = 0;
    char *text = tt_slurp(path, &n);
    assert_non_null(text);
    int32_t *ids;
    size_t nt;
    /* llama2.c: run.c merges across the whole text; ~150 MiB while it runs, little after */
    lp_tokenizer *t;
    TT_OPEN_TOK512(t);
    size_t base = lp_mem_current(LP_MEM_DATA);
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, n, LP_TOKENIZER_ADD_BOS, &ids, &nt));
    lp_free(ids);
    size_t kept = lp_mem_current(LP_MEM_DATA) - base;
    print_message("[   INFO   ] tok512 handle keeps %.1f MiB after encoding moby_dick.txt\n", kept / 1048576.0);
    assert_true(kept <= (size_t)6 << 20);
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, 30000, LP_TOKENIZER_ADD_BOS, &ids, &nt)); /* same ids as before */
    assert_int_equal(nt, 16891);
    assert_true(tt_fnv(ids, nt) == 0x866136223ad26b32ULL);
    lp_free(ids);
    lp_tokenizer_close(t);
    /* GPT-2: 400k distinct words fill the word cache past its cap several times */
    size_t cap = 8u << 20, len = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (int i = 0; i < 400000; i++) len += (size_t)snprintf(many + len, cap - len, " w%luq", (unsigned long)i * 7919u);
    TT_OPEN_GPT2(t);
    base = lp_mem_current(LP_MEM_DATA);
    int32_t *first;
    size_t nf;
    LP_ASSERT_OK(lp_tokenizer_encode(t, many, len, 0, &first, &nf));
    LP_ASSERT_OK(lp_tokenizer_encode(t, many, len, 0, &ids, &nt)); /* another cache state, same ids */
    assert_int_equal(nt, nf);
    assert_memory_equal(ids, first, nf * sizeof *ids);
    lp_free(ids);
    lp_free(first);
    kept = lp_mem_current(LP_MEM_DATA) - base;
    print_message("[   INFO   ] GPT-2 handle keeps %.1f MiB after 400k distinct words\n", kept / 1048576.0);
    assert_true(kept <= (size_t)12 << 20);
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, n, 0, &ids, &nt)); /* encoder.py's ids after the clears */
    assert_int_equal(nt, 287230);
    assert_true(tt_fnv(ids, nt) == 0x9cd2f64065bb918aULL);
    lp_free(ids);
    lp_tokenizer_close(t);
    free(many);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_known_ids),
        cmocka_unit_test(test_gpt2_pretokenize),
        cmocka_unit_test(test_gpt2_roundtrip_random_utf8),
        cmocka_unit_test(test_gpt2_moby_dick),
        cmocka_unit_test(test_gpt2_lookup_and_decode),
        cmocka_unit_test(test_open_by_name),
        cmocka_unit_test(test_llama2c_known_ids),
        cmocka_unit_test(test_llama2c_decode_bos_space),
        cmocka_unit_test(test_llama2c_roundtrip),
        cmocka_unit_test(test_memory_kept_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
