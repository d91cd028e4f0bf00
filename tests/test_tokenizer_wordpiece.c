/* WordPiece (BERT): a small vocab.txt written here, and the same vocabulary as a tokenizer.json
 * laid out like bert-base-uncased's. Expected ids are worked out by hand from the vocabulary
 * below, following Hugging Face's BertNormalizer, BertPreTokenizer, WordPiece model and
 * decoder; then bad files, allocation failures, random input, and the `leanprop tokenize`
 * command run as a process. */
#include "test_tokenizer_util.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                   /* 0..4 */
    "un", "##aff", "##able", "hello", ",",                          /* 5..9 */
    "world", "!", "cafe", "caf\xc3\xa9", "the",                     /* 10..14: café */
    ".", "\xe4\xb8\xad", "\xe5\x9b\xbd", "a", "##b",                /* 15..19: 中 国 */
    "'", "s", "$", "\xe2\x80\x94", "\xc2\xbf",                      /* 20..24: — ¿ */
    "i", "\xe1\x84\x92", "##\xe1\x85\xa1", "##\xe1\x86\xab", "'s",  /* 25..29: ᄒ ##ᅡ ##ᆫ (Hangul jamo) */
    "##s", "Hello", "\xce\xb1", "##\xcf\x83",                       /* 30..33: α ##σ */
};
#define N_VOCAB ((int)(sizeof VOCAB / sizeof *VOCAB))

static char *vocab_text(void)
{
    static char buf[1024];
    buf[0] = '\0';
    for (int i = 0; i < N_VOCAB; i++) {
        strcat(buf, VOCAB[i]);
        strcat(buf, "\n");
    }
    return buf;
}

/* Options NULL would read a tokenizer_config.json beside the file (in /tmp): pass the defaults. */
static const lp_wordpiece_options *defaults(void)
{
    static lp_wordpiece_options o;
    lp_tokenizer_wordpiece_defaults(&o);
    return &o;
}

static lp_tokenizer *open_vocab(const lp_wordpiece_options *o)
{
    const char *p = tt_temp("-vocab.txt", vocab_text(), strlen(vocab_text()));
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_wordpiece(&t, p, o ? o : defaults());
    unlink(p);
    if (st != LP_OK) fail_msg("open_wordpiece: %s", lp_error_message());
    return t;
}

static void expect_decode(lp_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, const char *want)
{
    char *s;
    size_t len;
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, n, flags, &s, &len));
    if (strcmp(s, want) != 0) {
        char got[256];
        snprintf(got, sizeof got, "%s", s);
        lp_free(s);
        fail_msg("decode: got '%s' want '%s'", got, want);
    }
    assert_int_equal(len, strlen(want));
    lp_free(s);
}
#define EXPECT_DECODE(t, flags, want, ...) do { const int32_t i__[] = { __VA_ARGS__ }; \
    expect_decode((t), i__, sizeof i__ / sizeof *i__, (flags), (want)); } while (0)

/* The checks every uncased BERT tokenizer here must pass (vocab.txt and tokenizer.json alike). */
static void check_uncased(lp_tokenizer *t)
{
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_WORDPIECE);
    assert_string_equal(lp_tokenizer_kind_name(LP_TOKENIZER_WORDPIECE), "wordpiece");
    assert_int_equal(lp_tokenizer_vocab_size(t), N_VOCAB);
    assert_int_equal(lp_tokenizer_bos(t), 2);
    assert_int_equal(lp_tokenizer_eos(t), 3);
    /* greedy longest-match-first subwords */
    TT_EXPECT(t, "unaffable", 0, 5, 6, 7);
    TT_EXPECT(t, "ab abb", 0, 18, 19, 18, 19, 19);
    TT_EXPECT(t, "ba", 0, 1);                /* no piece starts "ba": unknown */
    TT_EXPECT(t, "unxyz", 0, 1);             /* "un" fits, the rest does not: the whole word is [UNK] */
    TT_EXPECT(t, "cafes", 0, 12, 30);        /* longest first: "cafe", then "##s" */
    /* lowercase, punctuation isolated, whitespace removed */
    TT_EXPECT(t, "Hello, World!", 0, 8, 9, 10, 11);
    TT_EXPECT(t, "HELLO,world!!", 0, 8, 9, 10, 11, 11);
    TT_EXPECT(t, "  hello \t\n world  ", 0, 8, 10);
    TT_EXPECT(t, "the's the.the", 0, 14, 20, 21, 14, 15, 14);
    /* Unicode punctuation (Pd, Po) and an ASCII symbol that is not Unicode P ($ is Sc) */
    TT_EXPECT(t, "the\xe2\x80\x94the\xc2\xbfthe$the", 0, 14, 23, 14, 24, 14, 22, 14);
    /* other whitespace: NBSP, ideographic space, line separator */
    TT_EXPECT(t, "the\xc2\xa0the\xe3\x80\x80the\xe2\x80\xa8the", 0, 14, 14, 14, 14);
    /* clean_text: controls (Cc) and format characters (Cf: soft hyphen, ZWSP) vanish, as do NUL and U+FFFD */
    TT_EXPECT(t, "un\xc2\xad" "aff\x01" "ab\xe2\x80\x8b" "le", 0, 5, 6, 7);
    {
        static const char nul[] = "hel\0lo";
        int32_t *ids;
        size_t n;
        LP_ASSERT_OK(lp_tokenizer_encode(t, nul, sizeof nul - 1, 0, &ids, &n));
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], 8);
        lp_free(ids);
    }
    TT_EXPECT(t, "hel\xef\xbf\xbdlo", 0, 8);
    TT_EXPECT(t, "hel\xee\x80\x80lo wor\xf3\xb0\x80\x80ld", 0, 8, 10); /* private use (Co) goes too */
    TT_EXPECT(t, "hel\xfflo", 0, 8);         /* invalid UTF-8 reads as U+FFFD, which clean_text drops */
    TT_EXPECT(t, "hel\vlo wor\fld the\xc2\x85the", 0, 8, 10, 1); /* \v \f U+0085 are Cc: dropped, not spaces */
    /* accents stripped (follows lowercase): precomposed é, e + combining acute, uppercase É */
    TT_EXPECT(t, "caf\xc3\xa9", 0, 12);
    TT_EXPECT(t, "cafe\xcc\x81", 0, 12);
    TT_EXPECT(t, "CAF\xc3\x89S", 0, 12, 30);
    TT_EXPECT(t, "\xc4\xb0", 0, 25);         /* İ: NFD I + dot above, dot dropped, lowercased */
    TT_EXPECT(t, "\xce\x86\xce\xa3", 0, 32, 33); /* Ά Σ -> α σ (per-character lowercase: σ, not final ς) */
    /* Hangul syllable -> conjoining jamo (NFD), as BERT uncased does */
    TT_EXPECT(t, "\xed\x95\x9c", 0, 26, 27, 28);
    /* CJK ideographs are words of their own */
    TT_EXPECT(t, "\xe4\xb8\xad\xe5\x9b\xbd", 0, 16, 17);
    TT_EXPECT(t, "the\xe4\xb8\xadthe", 0, 14, 16, 14);
    /* special tokens written in the text, and the template */
    TT_EXPECT(t, "[CLS] hello[SEP]", 0, 2, 8, 3);
    TT_EXPECT(t, "[CLS]", LP_TOKENIZER_SPECIAL_AS_TEXT, 1, 1, 1); /* "[", "cls" (unknown), "]" */
    TT_EXPECT(t, "Hello, World!", LP_TOKENIZER_ADD_SPECIAL, 2, 8, 9, 10, 11, 3);
    TT_EXPECT(t, "hello", LP_TOKENIZER_ADD_BOS, 2, 8);
    TT_EXPECT(t, "hello", LP_TOKENIZER_ADD_EOS, 8, 3);
    TT_EXPECT(t, "", LP_TOKENIZER_ADD_SPECIAL, 2, 3);
    assert_true(lp_tokenizer_is_special(t, 0) && lp_tokenizer_is_special(t, 1) && lp_tokenizer_is_special(t, 4));
    assert_false(lp_tokenizer_is_special(t, 8));
    assert_int_equal(lp_tokenizer_token_id(t, "##aff", 5), 6);
    size_t l;
    assert_string_equal(lp_tokenizer_token(t, 27, &l), "##\xe1\x85\xa1");
    assert_int_equal(l, 5);

    /* decoder: "##" joins, spaces elsewhere, cleanup before . , ! ? 's */
    EXPECT_DECODE(t, 0, "[CLS] hello, world! [SEP]", 2, 8, 9, 10, 11, 3);
    EXPECT_DECODE(t, LP_TOKENIZER_SKIP_SPECIAL, "hello, world!", 2, 8, 9, 10, 11, 3);
    EXPECT_DECODE(t, 0, "unaffable.", 5, 6, 7, 15);
    EXPECT_DECODE(t, 0, "##affable", 6, 7);                 /* the first token keeps its prefix */
    /* ... so the text is longer than the decoded pieces: 1 + 3 + 15 * 4 = 64 bytes would be one short */
    EXPECT_DECODE(t, 0, "##affableableableableableableableableableableableableableableable", 6, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                  7, 7, 7, 7, 7, 7);
    EXPECT_DECODE(t, 0, "the ' s the's", 14, 20, 21, 14, 29);
    EXPECT_DECODE(t, 0, "\xe4\xb8\xad \xe5\x9b\xbd", 16, 17);
    EXPECT_DECODE(t, LP_TOKENIZER_SKIP_SPECIAL, "", 1, 0);

    /* streaming pieces put together are the full decode */
    const int32_t ids[] = { 2, 5, 6, 7, 9, 14, 29, 3 };
    char joined[128] = "";
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        const char *p;
        size_t pn;
        LP_ASSERT_OK(lp_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i], &p, &pn));
        strncat(joined, p, pn);
    }
    EXPECT_DECODE(t, 0, joined, 2, 5, 6, 7, 9, 14, 29, 3);
    assert_string_equal(joined, "[CLS] unaffable, the's [SEP]");
}

static void test_vocab_txt(void **state)
{
    (void)state;
    lp_tokenizer *t = open_vocab(NULL);
    check_uncased(t);
    /* pre-tokenizer spans are bytes of the input */
    lp_tokenizer_span *sp;
    size_t n;
    const char *text = "Caf\xc3\xa9, the\xe4\xb8\xad!";
    LP_ASSERT_OK(lp_tokenizer_pretokenize(t, text, strlen(text), 0, &sp, &n));
    static const size_t want[][2] = { { 0, 5 }, { 5, 6 }, { 7, 10 }, { 10, 13 }, { 13, 14 } };
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sp[i].begin, want[i][0]);
        assert_int_equal(sp[i].end, want[i][1]);
        assert_int_equal(sp[i].special_id, -1);
    }
    lp_free(sp);
    LP_ASSERT_OK(lp_tokenizer_pretokenize(t, "[CLS]hi", 7, 0, &sp, &n));
    assert_int_equal(n, 2);
    assert_int_equal(sp[0].special_id, 2);
    assert_int_equal(sp[1].begin, 5);
    lp_free(sp);
    lp_tokenizer_close(t);
}

static void test_options(void **state)
{
    (void)state;
    lp_wordpiece_options o;
    lp_tokenizer_wordpiece_defaults(&o);
    assert_int_equal(o.max_input_chars_per_word, 100);
    lp_tokenizer *t = open_vocab(&o);
    /* max_input_chars_per_word: 100 characters split, 101 are [UNK] */
    char word[128] = "a";
    memset(word + 1, 'b', 99);
    word[100] = '\0';
    int32_t *ids;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_encode(t, word, 100, 0, &ids, &n));
    assert_int_equal(n, 100);
    assert_int_equal(ids[0], 18);
    assert_int_equal(ids[99], 19);
    lp_free(ids);
    strcat(word, "b");
    TT_EXPECT(t, word, 0, 1);
    lp_tokenizer_close(t);

    o.max_input_chars_per_word = 3;
    t = open_vocab(&o);
    TT_EXPECT(t, "abb abbb", 0, 18, 19, 19, 1);
    TT_EXPECT(t, "\xed\x95\x9c", 0, 26, 27, 28); /* counted after normalization: 3 jamo */
    lp_tokenizer_close(t);

    /* cased (bert-base-cased): no lowercase, so no accent stripping either */
    lp_tokenizer_wordpiece_defaults(&o);
    o.lowercase = 0;
    t = open_vocab(&o);
    TT_EXPECT(t, "Hello hello HELLO", 0, 31, 8, 1);
    TT_EXPECT(t, "caf\xc3\xa9", 0, 13);
    TT_EXPECT(t, "\xed\x95\x9c", 0, 1);              /* the syllable stays whole: not in the vocabulary */
    lp_tokenizer_close(t);

    /* lowercase but keep accents; no CJK handling; no clean_text */
    lp_tokenizer_wordpiece_defaults(&o);
    o.strip_accents = 0;
    o.handle_chinese_chars = 0;
    o.clean_text = 0;
    t = open_vocab(&o);
    TT_EXPECT(t, "CAF\xc3\x89", 0, 13);
    TT_EXPECT(t, "\xe4\xb8\xad\xe5\x9b\xbd", 0, 1);  /* one word of two ideographs */
    TT_EXPECT(t, "hel\x01lo", 0, 1);
    TT_EXPECT(t, "hello\vworld\fthe\xc2\x85the", 0, 8, 10, 14, 14); /* without clean_text \v \f U+0085 are whitespace */
    lp_tokenizer_close(t);

    /* other names for the special tokens; a token the vocabulary lacks is no error unless it is unk */
    lp_tokenizer_wordpiece_defaults(&o);
    o.cls_token = "the";
    o.sep_token = "[NONE]";
    t = open_vocab(&o);
    assert_int_equal(lp_tokenizer_bos(t), 14);
    assert_int_equal(lp_tokenizer_eos(t), -1);
    TT_EXPECT(t, "hello", LP_TOKENIZER_ADD_SPECIAL, 8); /* no [SEP]: no template */
    TT_EXPECT(t, "hello", LP_TOKENIZER_ADD_BOS, 14, 8);
    lp_tokenizer_close(t);
}

/* tokenizer_config.json beside vocab.txt, and lp_tokenizer_open on the directory / the file. */
static void test_config_and_open(void **state)
{
    (void)state;
    char dir[] = "/tmp/lp-wp-XXXXXX", vpath[64], cpath[64];
    assert_non_null(mkdtemp(dir));
    snprintf(vpath, sizeof vpath, "%s/vocab.txt", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(vpath, "wb");
    assert_non_null(f);
    fputs(vocab_text(), f);
    fclose(f);
    lp_tokenizer *t;
    LP_ASSERT_OK(lp_tokenizer_open(&t, dir));
    TT_EXPECT(t, "Hello", 0, 8);
    lp_tokenizer_close(t);

    f = fopen(cpath, "wb");
    assert_non_null(f);
    fputs("{\"do_lower_case\": false, \"tokenize_chinese_chars\": true, \"strip_accents\": null,"
          " \"cls_token\": {\"content\": \"[CLS]\", \"lstrip\": false}, \"sep_token\": \"[SEP]\"}", f);
    fclose(f);
    LP_ASSERT_OK(lp_tokenizer_open(&t, vpath));
    TT_EXPECT(t, "Hello", LP_TOKENIZER_ADD_SPECIAL, 2, 31, 3);
    lp_tokenizer_close(t);

    f = fopen(cpath, "wb");
    assert_non_null(f);
    fputs("{\"do_lower_case\": \"no\"}", f);
    fclose(f);
    lp_status st = lp_tokenizer_open(&t, dir);
    assert_int_equal(st, LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), cpath));
    assert_non_null(strstr(lp_error_message(), "do_lower_case"));
    assert_null(t);
    unlink(cpath);
    unlink(vpath);
    rmdir(dir);
}

/* The same vocabulary as bert-base-uncased's tokenizer.json lays it out; model_extra ("key":
 * value,) goes first in the model, so it wins over the usual keys after it. */
static const char *bert_json(const char *normalizer, const char *pre_tokenizer, const char *decoder, const char *model_extra)
{
    static char path[4096];
    char *vocab = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&vocab, &cap);
    assert_non_null(m);
    for (int i = 0; i < N_VOCAB; i++) {
        cJSON *str = cJSON_CreateString(VOCAB[i]);
        char *esc = cJSON_PrintUnformatted(str);
        fprintf(m, "%s%s:%d", i ? "," : "", esc, i);
        cJSON_free(esc);
        cJSON_Delete(str);
    }
    fclose(m);
    char *json = NULL;
    size_t jcap = 0;
    m = open_memstream(&json, &jcap);
    assert_non_null(m);
    fprintf(m,
            "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
            "{\"id\":0,\"content\":\"[PAD]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
            "{\"id\":1,\"content\":\"[UNK]\",\"special\":true},{\"id\":2,\"content\":\"[CLS]\",\"special\":true},"
            "{\"id\":3,\"content\":\"[SEP]\",\"special\":true},{\"id\":4,\"content\":\"[MASK]\",\"special\":true}],"
            "\"normalizer\":%s,\"pre_tokenizer\":%s,"
            "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},"
            "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],"
            "\"pair\":[],\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[2],\"tokens\":[\"[CLS]\"]},"
            "\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[3],\"tokens\":[\"[SEP]\"]}}},"
            "\"decoder\":%s,\"model\":{%s\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
            "\"max_input_chars_per_word\":100,\"vocab\":{%s}}}",
            normalizer, pre_tokenizer, decoder, model_extra, vocab);
    fclose(m);
    free(vocab);
    snprintf(path, sizeof path, "%s", tt_temp("-tokenizer.json", json, strlen(json)));
    free(json);
    return path;
}

static const char BERT_NORM[] =
    "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}";
static const char BERT_PRE[] = "{\"type\":\"BertPreTokenizer\"}";
static const char WP_DEC[] = "{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true}";

static lp_tokenizer *open_json_path(const char *p)
{
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_hf(&t, p);
    unlink(p);
    if (st != LP_OK) fail_msg("open_hf: %s", lp_error_message());
    return t;
}

static void test_tokenizer_json(void **state)
{
    (void)state;
    lp_tokenizer *t = open_json_path(bert_json(BERT_NORM, BERT_PRE, WP_DEC, ""));
    check_uncased(t);
    lp_tokenizer_close(t);

    /* cased BertNormalizer; a Sequence normalizer; WhitespaceSplit + Punctuation; no decoder */
    t = open_json_path(bert_json("{\"type\":\"BertNormalizer\",\"lowercase\":false}", BERT_PRE, WP_DEC, ""));
    TT_EXPECT(t, "Hello caf\xc3\xa9", 0, 31, 13);
    lp_tokenizer_close(t);
    t = open_json_path(bert_json("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"Lowercase\"},"
                                 "{\"type\":\"StripAccents\"}]}",
                                 "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"WhitespaceSplit\"},"
                                 "{\"type\":\"Punctuation\",\"behavior\":\"Isolated\"}]}",
                                 "null", "\"max_input_chars_per_word\":4,"));
    TT_EXPECT(t, "CAF\xc3\x89, abbbb abbb CAF\xc3\x89S", 0, 12, 9, 1, 18, 19, 19, 19, 1);
    TT_EXPECT(t, "\xe4\xb8\xad\xe5\x9b\xbd", 0, 1);       /* no CJK handling without BertNormalizer */
    EXPECT_DECODE(t, 0, "un ##aff ##able .", 5, 6, 7, 15); /* no decoder: tokens joined by spaces */
    lp_tokenizer_close(t);
    /* no normalizer and no pre-tokenizer: the text is one word */
    t = open_json_path(bert_json("null", "null", WP_DEC, ""));
    TT_EXPECT(t, "hello", 0, 8);
    TT_EXPECT(t, "hello world", 0, 1);
    TT_EXPECT(t, "Hello", 0, 31);
    lp_tokenizer_close(t);
}

static void expect_open_error(lp_status got, lp_status want, const char *path, const char *needle)
{
    const char *msg = lp_error_message();
    if (got != want) fail_msg("status %s, want %s (%s)", lp_status_name(got), lp_status_name(want), msg);
    if (path && !strstr(msg, path)) fail_msg("message does not name '%s': %s", path, msg);
    if (needle && !strstr(msg, needle)) fail_msg("message lacks '%s': %s", needle, msg);
}

static void test_bad_vocab_txt(void **state)
{
    (void)state;
    static const struct { const char *text, *needle; } cases[] = {
        { "", "empty" },
        { "\n\r\n\n", "empty" },
        { "[UNK]\na\nb\na\n", ":4: token 'a' is already on line 2" },
        { "[UNK]\r\nx\r\nx", ":3: token 'x' is already on line 2" },
        { "a\nb\n", "'[UNK]' is not in the vocabulary" },
        { "[UNK]\nab\xc3(\n", ":2: not valid UTF-8 (byte 3 of the line)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = tt_temp("-vocab.txt", cases[i].text, strlen(cases[i].text));
        lp_tokenizer *t = (lp_tokenizer *)1;
        lp_status st = lp_tokenizer_open_wordpiece(&t, p, defaults());
        expect_open_error(st, LP_ERR_FORMAT, p, cases[i].needle);
        assert_null(t);
        unlink(p);
    }
    lp_tokenizer *t;
    expect_open_error(lp_tokenizer_open_wordpiece(&t, "/nonexistent/vocab.txt", defaults()), LP_ERR_NOT_FOUND,
                      "/nonexistent/vocab.txt", NULL);
    expect_open_error(lp_tokenizer_open_wordpiece(NULL, "x", NULL), LP_ERR_INVALID_ARG, NULL, NULL);
    lp_wordpiece_options o;
    lp_tokenizer_wordpiece_defaults(&o);
    o.max_input_chars_per_word = 0;
    const char *p = tt_temp("-vocab.txt", "[UNK]\n", 6);
    expect_open_error(lp_tokenizer_open_wordpiece(&t, p, &o), LP_ERR_FORMAT, p, "max_input_chars_per_word");
    /* empty lines in the middle are ids without a token; empty lines at the end are nothing */
    const char *q = tt_temp("-vocab.txt", "[UNK]\n\nhello\n\n\n", 15);
    LP_ASSERT_OK(lp_tokenizer_open_wordpiece(&t, q, defaults()));
    assert_int_equal(lp_tokenizer_vocab_size(t), 3);
    assert_null(lp_tokenizer_token(t, 1, NULL));
    TT_EXPECT(t, "hello hi", 0, 2, 0);
    lp_tokenizer_close(t);
    unlink(p);
    unlink(q);
}

static void test_bad_tokenizer_json(void **state)
{
    (void)state;
    static const struct { const char *norm, *pre, *dec, *extra; lp_status st; const char *needle; } cases[] = {
        { "{\"type\":\"NFKC\"}", "null", "null", "", LP_ERR_UNSUPPORTED, "'NFKC'" },
        { "{\"type\":\"NFD\"}", "null", "null", "", LP_ERR_UNSUPPORTED, "NFD" },
        { "{\"type\":\"StripAccents\"}", "null", "null", "", LP_ERR_UNSUPPORTED, "StripAccents" },
        { "null", "{\"type\":\"Whitespace\"}", "null", "", LP_ERR_UNSUPPORTED, "'Whitespace'" },
        { "null", "{\"type\":\"Punctuation\",\"behavior\":\"Removed\"}", "null", "", LP_ERR_UNSUPPORTED, "Removed" },
        { "null", "null", "{\"type\":\"ByteLevel\"}", "", LP_ERR_UNSUPPORTED, "'ByteLevel'" },
        { "null", "null", "null", "\"max_input_chars_per_word\":-1,", LP_ERR_FORMAT, "max_input_chars_per_word" },
        { "null", "null", "null", "\"unk_token\":\"<unk>\",", LP_ERR_FORMAT, "'<unk>' is not in the vocabulary" },
        { "null", "null", "null", "\"continuing_subword_prefix\":\"0123456789012345678901234567890123456789\",",
          LP_ERR_UNSUPPORTED, "continuing_subword_prefix" },
        { "{\"normalizers\":[]}", "null", "null", "", LP_ERR_FORMAT, "type" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = bert_json(cases[i].norm, cases[i].pre, cases[i].dec, cases[i].extra);
        lp_tokenizer *t = (lp_tokenizer *)1;
        lp_status st = lp_tokenizer_open_hf(&t, p);
        expect_open_error(st, cases[i].st, p, cases[i].needle);
        assert_null(t);
        unlink(p);
    }
    static const char bad_vocab[] = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":[\"[UNK]\"]}}";
    const char *p = tt_temp("-tokenizer.json", bad_vocab, sizeof bad_vocab - 1);
    lp_tokenizer *t;
    expect_open_error(lp_tokenizer_open_hf(&t, p), LP_ERR_FORMAT, p, "model.vocab");
    unlink(p);
}

/* Every allocation failing in turn while opening and using: LP_ERR_NOMEM or success, and the
 * data category back where it started after close. */
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *p = tt_temp("-vocab.txt", vocab_text(), strlen(vocab_text()));
    size_t base = lp_mem_current(LP_MEM_DATA);
    int succeeded = 0;
    for (size_t k = 1; k < 400 && !succeeded; k++) {
        lp_tokenizer *t = NULL;
        lp_mem_fail_after(k);
        lp_status st = lp_tokenizer_open_wordpiece(&t, p, defaults());
        if (st == LP_OK) {
            int32_t *ids = NULL;
            size_t n;
            lp_tokenizer_span *sp = NULL;
            const char *text = "[CLS] Unaffable caf\xc3\xa9 \xe4\xb8\xad!";
            st = lp_tokenizer_encode(t, text, strlen(text), 0, &ids, &n);
            if (st == LP_OK) st = lp_tokenizer_pretokenize(t, "hello, world", 12, 0, &sp, &n);
            lp_free(ids);
            lp_free(sp);
            succeeded = st == LP_OK;
            lp_tokenizer_close(t);
        }
        lp_mem_fail_after(0);
        if (st != LP_OK && st != LP_ERR_NOMEM) fail_msg("k=%zu: %s: %s", k, lp_status_name(st), lp_error_message());
        assert_int_equal(lp_mem_current(LP_MEM_DATA), base);
    }
    assert_true(succeeded);
    unlink(p);
}

/* Random text in many scripts and random bytes: encoding never fails, every id is a token, the
 * words are pieces of the vocabulary, and decoding works. */
static void test_random_input(void **state)
{
    (void)state;
    lp_tokenizer *t = open_vocab(NULL);
    lp_rng r;
    lp_rng_seed(&r, 11);
    char buf[600];
    for (int it = 0; it < 400; it++) {
        size_t n = it % 2 ? tt_random_utf8(&r, buf, sizeof buf) : lp_rng_below(&r, sizeof buf);
        if (it % 2 == 0)
            for (size_t i = 0; i < n; i++) buf[i] = (char)lp_rng_below(&r, 256);
        int32_t *ids;
        size_t ni;
        LP_ASSERT_OK(lp_tokenizer_encode(t, buf, n, LP_TOKENIZER_ADD_SPECIAL, &ids, &ni));
        assert_true(ni >= 2 && ids[0] == 2 && ids[ni - 1] == 3);
        for (size_t i = 0; i < ni; i++) assert_non_null(lp_tokenizer_token(t, ids[i], NULL));
        char *s;
        size_t sl;
        LP_ASSERT_OK(lp_tokenizer_decode(t, ids, ni, LP_TOKENIZER_SKIP_SPECIAL, &s, &sl));
        assert_int_equal(strlen(s), sl);
        lp_free(s);
        lp_free(ids);
    }
    lp_tokenizer_close(t);
}

/* LP_TOKENIZER_ADD_SPECIAL on the other kinds: BOS for llama2.c and a Llama-style template,
 * nothing for GPT-2 (whose post-processor adds nothing), both for a Roberta-style processor. */
static void test_add_special_other_kinds(void **state)
{
    (void)state;
    static const char llama_json[] =
        "{\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true},{\"id\":1,\"content\":\"</s>\","
        "\"special\":true}],\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
        "{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":"
        "{\"id\":\"<s>\",\"ids\":[0],\"tokens\":[\"<s>\"]}}},\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,"
        "\"</s>\":1,\"a\":2},\"merges\":[]}}";
    static const char roberta_json[] =
        "{\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",1],\"cls\":[\"<s>\",0]},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,\"</s>\":1,\"a\":2},\"merges\":[]}}";
    lp_tokenizer *t = open_json_path(tt_temp("-tokenizer.json", llama_json, sizeof llama_json - 1));
    TT_EXPECT(t, "a", LP_TOKENIZER_ADD_SPECIAL, 0, 2);
    TT_EXPECT(t, "a", LP_TOKENIZER_ADD_SPECIAL | LP_TOKENIZER_ADD_BOS, 0, 2); /* not twice */
    TT_EXPECT(t, "a", LP_TOKENIZER_ADD_SPECIAL | LP_TOKENIZER_ADD_EOS, 0, 2, 1);
    lp_tokenizer_close(t);
    t = open_json_path(tt_temp("-tokenizer.json", roberta_json, sizeof roberta_json - 1));
    TT_EXPECT(t, "a", LP_TOKENIZER_ADD_SPECIAL, 0, 2, 1);
    lp_tokenizer_close(t);
    TT_OPEN_TOK512(t);
    int32_t *ids;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_encode(t, "Once", 4, LP_TOKENIZER_ADD_SPECIAL, &ids, &n));
    assert_true(n >= 2 && ids[0] == 1 && ids[n - 1] != 2);
    lp_free(ids);
    lp_tokenizer_close(t);
    TT_OPEN_GPT2(t);
    TT_EXPECT(t, "Hello world", LP_TOKENIZER_ADD_SPECIAL, 15496, 995);
    lp_tokenizer_close(t);
}

/* `leanprop tokenize`, run as a process: the CLI binary sits at BUILD/leanprop beside BUILD/tests. */
static char cli_path[4096];

static int run_cli(const char *args, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s tokenize %s 2>&1", cli_path, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void **state)
{
    (void)state;
    struct stat sb;
    if (stat(cli_path, &sb) != 0) { LP_SKIP("CLI binary %s not built (make cli)", cli_path); }
    char dir[] = "/tmp/lp-wp-cli-XXXXXX", v[64];
    assert_non_null(mkdtemp(dir)); /* a directory of its own: no stray tokenizer_config.json beside */
    snprintf(v, sizeof v, "%s/vocab.txt", dir);
    FILE *f = fopen(v, "wb");
    assert_non_null(f);
    fputs(vocab_text(), f);
    fclose(f);
    char args[4096], out[4096];
    snprintf(args, sizeof args, "--tokenizer %s --text 'Hello, World!' --special --ids", dir);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_string_equal(out, "2,8,9,10,11,3\n");
    snprintf(args, sizeof args, "--tokenizer %s --text unaffable", v);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_string_equal(out, "5\tun\n6\t##aff\n7\t##able\n");
    snprintf(args, sizeof args, "--tokenizer %s --decode 2,8,9,10,11,3", v);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_string_equal(out, "[CLS] hello, world! [SEP]\n");
    snprintf(args, sizeof args, "--tokenizer %s --decode '2, 8 9' --skip-special", v);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_string_equal(out, "hello,\n");
    snprintf(args, sizeof args, "--tokenizer %s --file - --count < %s", v, v); /* the vocabulary as text */
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    lp_tokenizer *t = open_vocab(NULL);
    int32_t *ids;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_encode(t, vocab_text(), strlen(vocab_text()), 0, &ids, &n));
    lp_free(ids);
    lp_tokenizer_close(t);
    char want[64];
    snprintf(want, sizeof want, "tokens %zu\nbytes %zu\n", n, strlen(vocab_text()));
    if (!strstr(out, want)) fail_msg("--count printed '%s', want '%s'", out, want);
    assert_non_null(strstr(out, "MB/s"));
    /* errors: exit codes and messages */
    snprintf(args, sizeof args, "--tokenizer %s --decode 2,x", v);
    assert_int_equal(run_cli(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "'x' is not an id"));
    snprintf(args, sizeof args, "--tokenizer %s --decode 99", v);
    assert_int_equal(run_cli(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "id 99"));
    assert_int_equal(run_cli("--tokenizer /nonexistent/vocab.txt --text x", out, sizeof out), 1);
    assert_non_null(strstr(out, "/nonexistent/vocab.txt"));
    snprintf(args, sizeof args, "--tokenizer %s", dir);
    assert_int_equal(run_cli(args, out, sizeof out), 2);
    unlink(v);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    snprintf(cli_path, sizeof cli_path, "%s", argv[0]);
    char *slash = strrchr(cli_path, '/');
    if (slash) snprintf(slash, sizeof cli_path - (size_t)(slash - cli_path), "/../leanprop");
    else snprintf(cli_path, sizeof cli_path, "../leanprop");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_txt),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_config_and_open),
        cmocka_unit_test(test_tokenizer_json),
        cmocka_unit_test(test_bad_vocab_txt),
        cmocka_unit_test(test_bad_tokenizer_json),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_random_input),
        cmocka_unit_test(test_add_special_other_kinds),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
