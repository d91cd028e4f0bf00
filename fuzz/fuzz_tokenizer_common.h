/* fuzz/fuzz_tokenizer_common.h: what the tokenizer harnesses do with a tokenizer that opened:
 * encode a text (with and without BOS/EOS and special-token parsing), decode the ids back, decode
 * piece by piece, pre-tokenize, and look every token up. */
#ifndef LEANPROP_FUZZ_TOKENIZER_COMMON_H
#define LEANPROP_FUZZ_TOKENIZER_COMMON_H

#include "fuzz_common.h"

#include "leanprop/tokenizer.h"

static const char lpfuzz_default_text[] =
    "Hello world! The quick brown fox, 123 <|endoftext|> <s> caf\xc3\xa9 \xe2\x96\x81x \xf0\x9f\x98\x80\n\tend \xff";

static void lpfuzz_use_tokenizer(lp_tokenizer *t, const char *text, size_t len)
{
    if (!text) { text = lpfuzz_default_text; len = sizeof lpfuzz_default_text - 1; }
    int32_t V = lp_tokenizer_vocab_size(t);
    if (V < 0) lpfuzz_die("negative vocabulary size");
    (void)lp_tokenizer_kind_name(lp_tokenizer_get_kind(t));
    int32_t bos = lp_tokenizer_bos(t), eos = lp_tokenizer_eos(t);
    if (bos >= V || eos >= V || bos < -1 || eos < -1) lpfuzz_die("BOS/EOS out of range");
    static const unsigned flags[] = {0, LP_TOKENIZER_ADD_BOS | LP_TOKENIZER_ADD_EOS, LP_TOKENIZER_SPECIAL_AS_TEXT};
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        int32_t *ids = NULL;
        size_t n = 0;
        lp_error_clear();
        lp_status st = lp_tokenizer_encode(t, text, len, flags[f], &ids, &n);
        lpfuzz_status(st, LPFUZZ_LENIENT, len);
        if (st != LP_OK) continue;
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V) lpfuzz_die("encode produced an id out of range");
        for (unsigned df = 0; df < 2; df++) {
            char *s = NULL;
            size_t sl = 0;
            lp_error_clear();
            st = lp_tokenizer_decode(t, ids, n, df ? LP_TOKENIZER_SKIP_SPECIAL : 0, &s, &sl);
            lpfuzz_status(st, LPFUZZ_LENIENT, len);
            if (st == LP_OK && s[sl] != '\0') lpfuzz_die("decode result not NUL-terminated");
            lp_free(s);
        }
        int32_t prev = -1;
        for (size_t i = 0; i < n; i++) {
            const char *b;
            size_t bl;
            lp_error_clear();
            lpfuzz_status(lp_tokenizer_decode_piece(t, prev, ids[i], &b, &bl), LPFUZZ_LENIENT, len);
            prev = ids[i];
        }
        lp_free(ids);
    }
    lp_tokenizer_span *sp = NULL;
    size_t ns = 0;
    lp_error_clear();
    lp_status st = lp_tokenizer_pretokenize(t, text, len, 0, &sp, &ns);
    lpfuzz_status(st, LPFUZZ_LENIENT, len);
    if (st == LP_OK)
        for (size_t i = 0; i < ns; i++)
            if (sp[i].begin > sp[i].end || sp[i].end > len) lpfuzz_die("span outside the text");
    lp_free(sp);
    int32_t lim = V < 4096 ? V : 4096;
    for (int32_t id = 0; id < lim; id++) {
        size_t tl = 0;
        const char *tok = lp_tokenizer_token(t, id, &tl);
        if (tok) (void)lp_tokenizer_token_id(t, tok, tl);
        (void)lp_tokenizer_is_special(t, id);
    }
    /* out-of-range ids are refused, not read */
    int32_t bad[2] = {V, -5};
    char *s = NULL;
    size_t sl;
    lp_error_clear();
    if (lp_tokenizer_decode(t, bad, 2, 0, &s, &sl) == LP_OK) lpfuzz_die("decode accepted ids out of range");
}

#endif
