/* Helpers shared by tests/test_tokenizer*.c (static, header-only). */
#ifndef LEANPROP_TEST_TOKENIZER_UTIL_H
#define LEANPROP_TEST_TOKENIZER_UTIL_H

#include "util/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/rng.h"
#include "leanprop/tokenizer.h"

#define GPT2_ENCODER "data/tokenizers/gpt2/encoder.json"
#define GPT2_VOCAB "data/tokenizers/gpt2/vocab.bpe"
#define TOK512 "data/models/stories260K/tok512.bin"
#define MOBY "data/text/moby_dick.txt"

static inline char *tt_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[sz] = '\0'; *n = (size_t)sz; }
    return b;
}

/* Opens GPT-2 from the shared folder, or skips the test. */
#define TT_OPEN_GPT2(tok) do { \
    const char *enc__ = lp_test_shared(GPT2_ENCODER), *bpe__ = lp_test_shared(GPT2_VOCAB); \
    if (!enc__ || !bpe__) { LP_SKIP("shared GPT-2 tokenizer files not found (set LEANPROP_SHARED)"); } \
    LP_ASSERT_OK(lp_tokenizer_open_gpt2(&(tok), enc__, bpe__)); } while (0)

#define TT_OPEN_TOK512(tok) do { \
    const char *p__ = lp_test_shared(TOK512); \
    if (!p__) { LP_SKIP("shared stories260K/tok512.bin not found (set LEANPROP_SHARED)"); } \
    LP_ASSERT_OK(lp_tokenizer_open_llama2c(&(tok), p__)); } while (0)

/* Encodes text and checks the ids equal want[0..n_want). */
static inline void tt_expect(lp_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, strlen(text), flags, &ids, &n));
    int same = n == n_want;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == want[i];
    if (!same) {
        char got[1024] = "", exp[1024] = "";
        for (size_t i = 0; i < n && strlen(got) < 900; i++) snprintf(got + strlen(got), 24, " %d", ids[i]);
        for (size_t i = 0; i < n_want && strlen(exp) < 900; i++) snprintf(exp + strlen(exp), 24, " %d", want[i]);
        lp_free(ids);
        fail_msg("encode('%s'): got [%s ] want [%s ]", text, got, exp);
    }
    lp_free(ids);
}
#define TT_EXPECT(t, text, flags, ...) do { const int32_t w__[] = { __VA_ARGS__ }; \
    tt_expect((t), (text), (flags), w__, sizeof w__ / sizeof *w__); } while (0)

/* decode(encode(text)) == text; returns the token count. */
static inline size_t tt_roundtrip(lp_tokenizer *t, const char *text, size_t len, unsigned enc_flags)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t blen = 0;
    LP_ASSERT_OK(lp_tokenizer_encode(t, text, len, enc_flags, &ids, &n));
    for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < lp_tokenizer_vocab_size(t));
    LP_ASSERT_OK(lp_tokenizer_decode(t, ids, n, LP_TOKENIZER_SKIP_SPECIAL, &back, &blen));
    if (blen != len || memcmp(back, text, len) != 0) {
        size_t i = 0;
        while (i < len && i < blen && back[i] == text[i]) i++;
        lp_free(ids);
        lp_free(back);
        fail_msg("round trip differs at byte %zu of %zu (decoded %zu bytes, %zu tokens)", i, len, blen, n);
    }
    assert_true(back[blen] == '\0');
    lp_free(ids);
    lp_free(back);
    return n;
}

/* Random valid UTF-8: ASCII words and spaces, Latin-1, Cyrillic, CJK, combining marks, emoji,
 * odd whitespace; never U+2581 (SentencePiece's space). Returns bytes written (< cap). */
static inline size_t tt_random_utf8(lp_rng *r, char *out, size_t cap)
{
    static const uint32_t ranges[][2] = {
        { 0x20, 0x7E }, { 0x20, 0x7E }, { 0x20, 0x7E }, { 'a', 'z' }, { 0x0A, 0x0A }, { 0xA0, 0xFF },
        { 0x0400, 0x04FF }, { 0x4E00, 0x9FFF }, { 0x0300, 0x036F }, { 0x1F300, 0x1F6FF }, { 0x2000, 0x200B },
        { 0x0E00, 0x0E7F }, { 0x10000, 0x10FFFF }, { 0x09, 0x0D },
    };
    size_t n = 0, nr = sizeof ranges / sizeof *ranges;
    while (n + 4 < cap) {
        const uint32_t *rg = ranges[lp_rng_below(r, nr)];
        uint32_t cp = rg[0] + (uint32_t)lp_rng_below(r, rg[1] - rg[0] + 1);
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) continue;
        if (cp < 0x80) out[n++] = (char)cp;
        else if (cp < 0x800) { out[n++] = (char)(0xC0 | cp >> 6); out[n++] = (char)(0x80 | (cp & 63)); }
        else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12); out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18); out[n++] = (char)(0x80 | ((cp >> 12) & 63));
            out[n++] = (char)(0x80 | ((cp >> 6) & 63)); out[n++] = (char)(0x80 | (cp & 63));
        }
    }
    return n;
}

/* FNV-1a over the ids as little-endian int32 (matches the Python used to make the constants). */
static inline uint64_t tt_fnv(const int32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) { h ^= ((uint32_t)ids[i] >> (8 * k)) & 0xFF; h *= 0x100000001b3ULL; }
    return h;
}

/* Writes a temporary file and returns its path (caller unlinks). */
static inline const char *tt_temp(const char *suffix, const void *data, size_t n)
{
    const char *p = lp_test_write_temp(suffix, data, n);
    assert_non_null(p);
    return p;
}

#endif
