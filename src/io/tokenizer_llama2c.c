/* llama2.c's tokenizer.bin: int32 max_token_length, then for each token float32 score, int32
 * length, that many bytes (little-endian; the vocabulary size is not stored: the file ends
 * after the last token). Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS), stored as "<unk>",
 * "\n<s>\n", "\n</s>\n"; <0x00>..<0xFF> (ids 3..258) are the byte-fallback tokens; the
 * SentencePiece "▁" is already a plain space. Every length is checked against the file before
 * it is used, so a truncated or hostile file is LP_ERR_FORMAT, never an out-of-bounds read. */
#include "io/tokenizer_internal.h"

#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"

#define MAX_TOKEN_LENGTH_LIMIT 65536

static int32_t rd_i32(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static float rd_f32(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float r;
    memcpy(&r, &v, 4);
    return r;
}

/* Walks the records; with t == NULL only counts and validates them. */
static lp_status walk(const char *path, const unsigned char *buf, size_t len, int32_t max_len, lp_tokenizer *t,
                      int32_t *count)
{
    size_t pos = 4;
    int32_t k = 0;
    while (pos < len) {
        if (len - pos < 8)
            return lp_error(LP_ERR_FORMAT, "%s: truncated: token %d needs 8 header bytes at offset %zu, %zu left", path,
                            k, pos, len - pos);
        float score = rd_f32(buf + pos);
        int32_t tlen = rd_i32(buf + pos + 4);
        if (tlen < 0 || tlen > max_len)
            return lp_error(LP_ERR_FORMAT, "%s: token %d (offset %zu): length %d outside 0..max_token_length %d", path, k,
                            pos, tlen, max_len);
        if ((size_t)tlen > len - pos - 8)
            return lp_error(LP_ERR_FORMAT, "%s: truncated: token %d needs %d bytes at offset %zu, %zu left", path, k,
                            tlen, pos + 8, len - pos - 8);
        if (isnan(score)) return lp_error(LP_ERR_FORMAT, "%s: token %d has a NaN score", path, k);
        if (k >= TK_MAX_ID) return lp_error(LP_ERR_FORMAT, "%s: more than %d tokens", path, TK_MAX_ID);
        if (t) {
            t->scores[k] = score;
            LP_TRY(tk_set_token(t, k, (const char *)buf + pos + 8, (size_t)tlen, path));
        }
        pos += 8 + (size_t)tlen;
        k++;
    }
    *count = k;
    return LP_OK;
}

static lp_status load(lp_tokenizer *t, const char *path, const unsigned char *buf, size_t len)
{
    if (len < 4) return lp_error(LP_ERR_FORMAT, "%s: truncated: %zu bytes, no max_token_length", path, len);
    int32_t max_len = rd_i32(buf);
    if (max_len < 1 || max_len > MAX_TOKEN_LENGTH_LIMIT)
        return lp_error(LP_ERR_FORMAT, "%s: max_token_length %d outside 1..%d", path, max_len, MAX_TOKEN_LENGTH_LIMIT);
    int32_t n = 0;
    LP_TRY(walk(path, buf, len, max_len, NULL, &n));
    if (n < 3) return lp_error(LP_ERR_FORMAT, "%s: %d tokens; llama2.c needs at least <unk>, <s>, </s>", path, n);
    LP_TRY(tk_alloc_vocab(t, n));
    t->scores = lp_alloc_array(LP_MEM_DATA, (size_t)n, sizeof(float));
    if (!t->scores) return LP_ERR_NOMEM;
    LP_TRY(walk(path, buf, len, max_len, t, &n));
    for (int i = 0; i < 3; i++) t->tok_flags[i] |= TK_FLAG_SPECIAL;
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->tpl_bos = 1; /* run.c starts every prompt with BOS */
    return tk_finish(t);
}

lp_status lp_tokenizer_open_llama2c(lp_tokenizer **out, const char *tokenizer_bin)
{
    if (!out || !tokenizer_bin) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_open_llama2c: NULL argument");
    *out = NULL;
    char *buf;
    size_t len;
    LP_TRY(tk_read_file(tokenizer_bin, &buf, &len));
    lp_tokenizer *t = tk_new(LP_TOKENIZER_LLAMA2C, tokenizer_bin);
    lp_status st = t ? load(t, tokenizer_bin, (const unsigned char *)buf, len) : LP_ERR_NOMEM;
    lp_free(buf);
    if (st != LP_OK) {
        lp_tokenizer_close(t);
        return st;
    }
    *out = t;
    return LP_OK;
}
