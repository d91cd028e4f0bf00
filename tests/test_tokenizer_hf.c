/* Tokenizers from Hugging Face tokenizer.json: small byte-level (GPT-2 / Llama-3 style) and
 * SentencePiece-style (Llama-2 Prepend/Replace, Metaspace) files written here, and GPT-2's own
 * vocabulary and merges rewritten as tokenizer.json, which must encode Moby-Dick exactly as
 * the encoder.json + vocab.bpe path does. Expected ids below are worked out by hand from the
 * merge ranks written next to each vocabulary. */
#include "test_tokenizer_util.h"

#include <cjson/cJSON.h>

#define SP "\xe2\x96\x81" /* ▁ */

/* GPT-2 bytes_to_unicode, written out independently of the library. */
static void byte_char(int b, char *out)
{
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 63)); out[2] = 0; }
}

static const char *write_json(cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    assert_non_null(s);
    const char *p = tt_temp(".json", s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(root);
    return p;
}

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) fail_msg("test JSON does not parse: %s", text);
    return j;
}

static lp_tokenizer *open_json(cJSON *root)
{
    const char *p = write_json(root);
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_hf(&t, p);
    unlink(p);
    if (st != LP_OK) fail_msg("open_hf: %s", lp_error_message());
    return t;
}

/* ---- byte-level ---- */

/* ids 0..255: byte b is the token of its bytes_to_unicode character; then
 * 256 Ġt (merge 0 "Ġ t"), 257 he (1 "h e"), 258 Ġthe (2 "Ġt he"), 259 in (3 "i n"),
 * 260 Ġin (4 "Ġ in"), 261 Ġxyz (no merge makes it), 262 <|endoftext|> (added, special),
 * 263 <|begin_of_text|> (added, special), 264 [x] (added, not special) */
static cJSON *bytelevel_json(const char *pre_tokenizer, int ignore_merges)
{
    cJSON *vocab = cJSON_CreateObject();
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    const char *extra[] = { "\xc4\xa0t", "he", "\xc4\xa0the", "in", "\xc4\xa0in", "\xc4\xa0xyz" };
    for (int i = 0; i < 6; i++) cJSON_AddNumberToObject(vocab, extra[i], 256 + i);
    cJSON *root = parse("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                        "\"added_tokens\":[{\"id\":262,\"content\":\"<|endoftext|>\",\"single_word\":false,"
                        "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
                        "{\"id\":263,\"content\":\"<|begin_of_text|>\",\"special\":true},"
                        "{\"id\":264,\"content\":\"[x]\",\"special\":false}],"
                        "\"normalizer\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                        "\"trim_offsets\":true,\"use_regex\":true},"
                        "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false}}");
    cJSON_AddItemToObject(root, "pre_tokenizer", parse(pre_tokenizer));
    cJSON *model = parse("{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
                         "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,"
                         "\"merges\":[\"\xc4\xa0 t\",\"h e\",\"\xc4\xa0t he\",\"i n\",\"\xc4\xa0 in\"]}");
    cJSON_AddBoolToObject(model, "ignore_merges", ignore_merges);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(root, "model", model);
    return root;
}

static const char *const BYTELEVEL_GPT2 =
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}";

static void test_hf_bytelevel(void **state)
{
    (void)state;
    lp_tokenizer *t = open_json(bytelevel_json(BYTELEVEL_GPT2, 0));
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_HF_BYTELEVEL);
    assert_int_equal(lp_tokenizer_vocab_size(t), 265);
    /* "the" -> t he (no "t he" merge); " in" -> Ġ in -> Ġin; " the" -> Ġt h e -> Ġt he -> Ġthe */
    TT_EXPECT(t, "the in the", 0, 't', 257, 260, 258);
    TT_EXPECT(t, "the<|endoftext|>", 0, 't', 257, 262);
    TT_EXPECT(t, "a[x]b", 0, 'a', 264, 'b');
    TT_EXPECT(t, "a[x]b", LP_TOKENIZER_SPECIAL_AS_TEXT, 'a', 264, 'b'); /* [x] is not special */
    TT_EXPECT(t, "<|endoftext|>", LP_TOKENIZER_SPECIAL_AS_TEXT, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|',
              '>');
    TT_EXPECT(t, " xyz", 0, ' ', 'x', 'y', 'z'); /* no merges reach Ġxyz */
    assert_int_equal(lp_tokenizer_bos(t), 263);  /* by name */
    assert_int_equal(lp_tokenizer_eos(t), 262);
    assert_true(lp_tokenizer_is_special(t, 262));
    assert_false(lp_tokenizer_is_special(t, 264));
    const int32_t ids[] = { 263, 't', 257, 264, 258, 262 };
    char *s;
    size_t len;
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 6, 0, &s, &len));
    assert_string_equal(s, "<|begin_of_text|>the[x] the<|endoftext|>");
    lp_free(s);
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 6, LP_TOKENIZER_SKIP_SPECIAL, &s, &len));
    assert_string_equal(s, "the[x] the");
    lp_free(s);
    lp_rng r;
    lp_rng_seed(&r, 5);
    char buf[300];
    for (int it = 0; it < 200; it++) tt_roundtrip(t, buf, tt_random_utf8(&r, buf, 4 + lp_rng_below(&r, 290)), 0);
    lp_tokenizer_close(t);

    /* add_prefix_space: "the" is encoded as " the" (and decodes so, as in Hugging Face) */
    t = open_json(bytelevel_json("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", 0));
    TT_EXPECT(t, "the", 0, 258);
    TT_EXPECT(t, " the", 0, 258);
    lp_tokenizer_close(t);
}

/* Llama-3 / Qwen layout: Split regex, then ByteLevel without its own regex; ignore_merges. */
static void test_hf_bytelevel_split_ignore_merges(void **state)
{
    (void)state;
    const char *pre =
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*"
        "|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}";
    cJSON *root = bytelevel_json(pre, 1);
    cJSON_ReplaceItemInObject(root, "post_processor",
                              parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
                                    "\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                                    "\"pair\":[],\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\","
                                    "\"ids\":[263],\"tokens\":[\"<|begin_of_text|>\"]}}}"));
    lp_tokenizer *t = open_json(root);
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_HF_BYTELEVEL);
    TT_EXPECT(t, " xyz", 0, 261);                 /* whole word in the vocabulary: taken as is */
    TT_EXPECT(t, "the in", LP_TOKENIZER_ADD_BOS, 263, 't', 257, 260);
    TT_EXPECT(t, "12345", 0, '1', '2', '3', '4', '5');
    lp_tokenizer_span *sp;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_pretokenize(t, "12345 DON'T", 11, 0, &sp, &n));
    assert_int_equal(n, 4); /* "123" "45" " DON" "'T": digits in threes, (?i) contractions */
    assert_int_equal(sp[0].end, 3);
    assert_int_equal(sp[1].end, 5);
    assert_int_equal(sp[2].end, 9);
    assert_int_equal(sp[3].begin, 9);
    assert_int_equal(sp[3].end, 11);
    lp_free(sp);
    lp_tokenizer_close(t);
}

/* ---- SentencePiece-style ---- */

/* 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then
 * 259 ▁ 260 h 261 e 262 l 263 o 264 w 265 r 266 d,
 * 267 ▁h (merge 0 "▁ h"), 268 ll (1 "l l"), 269 ▁he (2 "▁h e"), 270 llo (3 "ll o"),
 * 271 ▁hello (4 "▁he llo"), 272 ▁w (5 "▁ w"), 273 or (6 "o r"), 274 ▁wor (7 "▁w or"),
 * 275 ld (8 "l d"), 276 ▁world (9 "▁wor ld") */
static const char *const SP_PIECES[] = { SP, "h", "e", "l", "o", "w", "r", "d", SP "h", "ll", SP "he", "llo",
                                         SP "hello", SP "w", "or", SP "wor", "ld", SP "world" };
static const char *const SP_MERGES[][2] = { { SP, "h" }, { "l", "l" }, { SP "h", "e" }, { "ll", "o" }, { SP "he", "llo" },
                                            { SP, "w" }, { "o", "r" }, { SP "w", "or" }, { "l", "d" }, { SP "wor", "ld" } };

static cJSON *sp_json(int merges_as_pairs, const char *normalizer, const char *pre_tokenizer, const char *decoder,
                      int byte_fallback)
{
    cJSON *vocab = cJSON_CreateObject();
    cJSON_AddNumberToObject(vocab, "<unk>", 0);
    cJSON_AddNumberToObject(vocab, "<s>", 1);
    cJSON_AddNumberToObject(vocab, "</s>", 2);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        cJSON_AddNumberToObject(vocab, name, 3 + b);
    }
    for (int i = 0; i < 18; i++) cJSON_AddNumberToObject(vocab, SP_PIECES[i], 259 + i);
    cJSON *merges = cJSON_CreateArray();
    for (int i = 0; i < 10; i++) {
        if (merges_as_pairs) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(SP_MERGES[i][0]));
            cJSON_AddItemToArray(pair, cJSON_CreateString(SP_MERGES[i][1]));
            cJSON_AddItemToArray(merges, pair);
        } else {
            char m[64];
            snprintf(m, sizeof m, "%s %s", SP_MERGES[i][0], SP_MERGES[i][1]);
            cJSON_AddItemToArray(merges, cJSON_CreateString(m));
        }
    }
    cJSON *root = parse("{\"version\":\"1.0\",\"added_tokens\":["
                        "{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                        "\"normalized\":false,\"special\":true},"
                        "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
                        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":"
                        "{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}}");
    cJSON_AddItemToObject(root, "normalizer", parse(normalizer));
    cJSON_AddItemToObject(root, "pre_tokenizer", parse(pre_tokenizer));
    cJSON_AddItemToObject(root, "decoder", parse(decoder));
    cJSON *model = parse("{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
                         "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"ignore_merges\":false}");
    cJSON_AddBoolToObject(model, "byte_fallback", byte_fallback);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    return root;
}

/* Llama-2 / TinyLlama tokenizer.json layout */
static const char *const LLAMA2_NORMALIZER =
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"" SP "\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SP "\"}]}";
static const char *const LLAMA2_DECODER =
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" SP "\"},\"content\":\" \"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}";

static void test_hf_sentencepiece_llama2(void **state)
{
    (void)state;
    lp_tokenizer *t = open_json(sp_json(0, LLAMA2_NORMALIZER, "null", LLAMA2_DECODER, 1));
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_HF_SENTENCEPIECE);
    assert_int_equal(lp_tokenizer_bos(t), 1);
    assert_int_equal(lp_tokenizer_eos(t), 2);
    /* "▁hello▁world": ▁h, ll, ▁he, llo, ▁hello, ▁w, or, ▁wor, ld, ▁world */
    TT_EXPECT(t, "hello world", 0, 271, 276);
    TT_EXPECT(t, "hello world", LP_TOKENIZER_ADD_BOS | LP_TOKENIZER_ADD_EOS, 1, 271, 276, 2);
    /* byte fallback: i = <0x69> = 3 + 0x69, \n = <0x0A>, é = <0xC3> <0xA9> */
    TT_EXPECT(t, "hi\n", 0, 267, 3 + 0x69, 3 + 0x0A);
    TT_EXPECT(t, "h\xc3\xa9", 0, 267, 3 + 0xC3, 3 + 0xA9);
    /* added tokens split the text first; Prepend applies to every piece (Hugging Face's legacy) */
    TT_EXPECT(t, "<s>hello", 0, 1, 271);
    TT_EXPECT(t, "hello</s>", 0, 271, 2);
    char *s;
    size_t len;
    const int32_t ids[] = { 1, 271, 276, 3 + 0x0A };
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 4, LP_TOKENIZER_SKIP_SPECIAL, &s, &len));
    assert_string_equal(s, "hello world\n");
    lp_free(s);
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 4, 0, &s, &len));
    assert_string_equal(s, "<s> hello world\n"); /* as Hugging Face decodes with special tokens kept */
    lp_free(s);
    const char *p;
    LP_ASSERT_OK(lp_tokenizer_decode_piece(t, 1, 271, &p, &len)); /* after BOS: the start of the text */
    assert_int_equal(len, 5);
    assert_memory_equal(p, "hello", 5);
    LP_ASSERT_OK(lp_tokenizer_decode_piece(t, 271, 276, &p, &len));
    assert_memory_equal(p, " world", 6);
    assert_int_equal(lp_tokenizer_token_id(t, SP "hello", strlen(SP "hello")), 271);
    lp_rng r;
    lp_rng_seed(&r, 9);
    char buf[300];
    for (int it = 0; it < 200; it++) tt_roundtrip(t, buf, tt_random_utf8(&r, buf, 4 + lp_rng_below(&r, 290)), 0);
    tt_roundtrip(t, "  two leading spaces", 20, 0);
    lp_tokenizer_close(t);
}

/* Metaspace pre-tokenizer (prepend "first", split) and decoder; merges as pairs; no byte
 * fallback, so unknown characters become <unk>, consecutive ones fused. */
static void test_hf_sentencepiece_metaspace(void **state)
{
    (void)state;
    const char *meta = "{\"type\":\"Metaspace\",\"replacement\":\"" SP "\",\"prepend_scheme\":\"first\",\"split\":true}";
    lp_tokenizer *t = open_json(sp_json(1, "null", meta, meta, 0));
    assert_int_equal(lp_tokenizer_get_kind(t), LP_TOKENIZER_HF_SENTENCEPIECE);
    TT_EXPECT(t, "hello world", 0, 271, 276);
    /* after a special token the piece is not the first: no ▁ in front -> h e llo */
    TT_EXPECT(t, "<s>hello", 0, 1, 260, 261, 270);
    TT_EXPECT(t, "h\xc3\xa9\xc3\xa9 hello", 0, 267, 0, 271); /* ▁h <unk> (two é fused) ▁hello */
    lp_tokenizer_span *sp;
    size_t n;
    LP_ASSERT_OK(lp_tokenizer_pretokenize(t, "hello big world", 15, 0, &sp, &n));
    assert_int_equal(n, 3);
    assert_int_equal(sp[1].begin, 5);
    assert_int_equal(sp[2].begin, 9);
    lp_free(sp);
    const int32_t ids[] = { 271, 276 };
    char *s;
    size_t len;
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, 2, 0, &s, &len));
    assert_string_equal(s, "hello world");
    lp_free(s);
    lp_tokenizer_close(t);
}

/* ---- GPT-2's files as tokenizer.json ---- */

static void test_hf_gpt2_same_as_original_files(void **state)
{
    (void)state;
    const char *enc = lp_test_shared(GPT2_ENCODER), *bpe = lp_test_shared(GPT2_VOCAB), *moby = lp_test_shared(MOBY);
    if (!enc || !bpe || !moby) { LP_SKIP("shared GPT-2 files or moby_dick.txt not found (set LEANPROP_SHARED)"); }
    size_t n = 0, nb = 0, nm = 0;
    char *ej = tt_slurp(enc, &n), *vb = tt_slurp(bpe, &nb), *text = tt_slurp(moby, &nm);
    assert_true(ej && vb && text);
    cJSON *vocab = cJSON_Parse(ej);
    assert_non_null(vocab);
    cJSON *merges = cJSON_CreateArray();
    for (char *line = strchr(vb, '\n') + 1; line && *line;) { /* skip "#version: 0.2" */
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        cJSON *pair = cJSON_CreateArray(); /* the newer [a, b] form */
        cJSON_AddItemToArray(pair, cJSON_CreateString(line));
        cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
        cJSON_AddItemToArray(merges, pair);
        line = nl ? nl + 1 : NULL;
    }
    assert_int_equal(cJSON_GetArraySize(merges), 50000);
    cJSON *root = parse("{\"version\":\"1.0\",\"added_tokens\":[{\"id\":50256,\"content\":\"<|endoftext|>\","
                        "\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":true}],"
                        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                        "\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":{\"type\":\"ByteLevel\","
                        "\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},\"decoder\":"
                        "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}}");
    cJSON *model = parse("{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
                         "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false}");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    lp_tokenizer *h = open_json(root), *g;
    LP_ASSERT_OK(lp_tokenizer_open_gpt2(&g, enc, bpe));
    assert_int_equal(lp_tokenizer_vocab_size(h), 50257);
    assert_int_equal(lp_tokenizer_eos(h), 50256);
    int32_t *a, *b;
    size_t na, nbb;
    LP_ASSERT_OK(lp_tokenizer_encode(g, text, nm, 0, &a, &na));
    LP_ASSERT_OK(lp_tokenizer_encode(h, text, nm, 0, &b, &nbb));
    assert_int_equal(na, nbb);
    for (size_t i = 0; i < na; i++)
        if (a[i] != b[i]) fail_msg("token %zu: gpt2 files %d, tokenizer.json %d", i, a[i], b[i]);
    assert_true(tt_fnv(b, nbb) == 0x9cd2f64065bb918aULL);
    lp_free(a);
    lp_free(b);
    TT_EXPECT(h, "Hello world<|endoftext|>", 0, 15496, 995, 50256);
    lp_tokenizer_close(h);
    lp_tokenizer_close(g);
    free(ej);
    free(vb);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_bytelevel),
        cmocka_unit_test(test_hf_bytelevel_split_ignore_merges),
        cmocka_unit_test(test_hf_sentencepiece_llama2),
        cmocka_unit_test(test_hf_sentencepiece_metaspace),
        cmocka_unit_test(test_hf_gpt2_same_as_original_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
