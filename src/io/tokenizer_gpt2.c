/* GPT-2's original tokenizer files: encoder.json ({"token": id}, tokens spelled in the
 * bytes_to_unicode alphabet, 50257 entries) and vocab.bpe ("#version: 0.2", then one merge
 * "a b" per line, rank = order, 50000 merges). Pre-tokenization is GPT-2's regex; the one
 * special token is <|endoftext|> (BOS = EOS = 50256). */
#include "io/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"

static lp_status merge_error(const char *file, size_t where, int json, const char *a, size_t an, const char *b,
                             size_t bn, const char *what, const char *tok, size_t tn)
{
    char loc[64]; /* "file:12: merge 'a b'" for vocab.bpe, "file: merge 12 'a b'" for tokenizer.json */
    snprintf(loc, sizeof loc, json ? ": merge %zu" : ":%zu: merge", where);
    return lp_error(LP_ERR_FORMAT, "%s%s '%.*s %.*s' %s '%.*s', which is not in the vocabulary", file, loc,
                    (int)(an > 80 ? 80 : an), a, (int)(bn > 80 ? 80 : bn), b, what, (int)(tn > 160 ? 160 : tn), tok);
}

lp_status tk_add_merge(lp_tokenizer *t, const char *a, size_t an, const char *b, size_t bn, int32_t rank,
                       const char *file, size_t where, int json)
{
    int32_t ia = tk_lookup(t, a, an), ib = tk_lookup(t, b, bn);
    if (ia < 0) return merge_error(file, where, json, a, an, b, bn, "uses", a, an);
    if (ib < 0) return merge_error(file, where, json, a, an, b, bn, "uses", b, bn);
    int32_t im = -1;
    char stackbuf[512];
    if (an + bn <= t->max_tok_len) {
        char *buf = an + bn <= sizeof stackbuf ? stackbuf : lp_alloc(LP_MEM_SCRATCH, an + bn);
        if (!buf) return LP_ERR_NOMEM;
        memcpy(buf, a, an);
        memcpy(buf + an, b, bn);
        im = tk_lookup(t, buf, an + bn);
        if (buf != stackbuf) lp_free(buf);
    }
    if (im < 0) {
        char joined[256];
        snprintf(joined, sizeof joined, "%.*s%.*s", (int)(an > 120 ? 120 : an), a, (int)(bn > 120 ? 120 : bn), b);
        return merge_error(file, where, json, a, an, b, bn, "makes", joined, strlen(joined));
    }
    return tk_pairmap_put(&t->merges, ia, ib, rank, im, NULL);
}

/* vocab.bpe: merges, one per line; errors say file:line. */
static lp_status load_merges(lp_tokenizer *t, const char *path)
{
    char *buf;
    size_t len;
    LP_TRY(tk_read_file(path, &buf, &len));
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    lp_status st = tk_pairmap_init(&t->merges, lines);
    int32_t rank = 0;
    size_t line_no = 0;
    for (size_t p = 0; st == LP_OK && p < len;) {
        const char *line = buf + p;
        const char *nl = memchr(line, '\n', len - p);
        size_t n = nl ? (size_t)(nl - line) : len - p;
        p += n + (nl ? 1 : 0);
        line_no++;
        if (n && line[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0) continue;
        const char *sp = memchr(line, ' ', n);
        if (!sp || sp == line || sp == line + n - 1 || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - line))) {
            st = lp_error(LP_ERR_FORMAT, "%s:%zu: expected two tokens separated by one space, got '%.*s'", path,
                          line_no, (int)(n > 120 ? 120 : n), line);
            break;
        }
        if (rank == INT32_MAX) {
            st = lp_error(LP_ERR_FORMAT, "%s:%zu: too many merges", path, line_no);
            break;
        }
        size_t an = (size_t)(sp - line);
        st = tk_add_merge(t, line, an, sp + 1, n - an - 1, rank++, path, line_no, 0);
    }
    lp_free(buf);
    return st;
}

lp_status lp_tokenizer_open_gpt2(lp_tokenizer **out, const char *encoder_json, const char *vocab_bpe)
{
    if (!out || !encoder_json || !vocab_bpe) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_open_gpt2: NULL argument");
    *out = NULL;
    lp_tokenizer *t = tk_new(LP_TOKENIZER_GPT2, encoder_json);
    if (!t) return LP_ERR_NOMEM;
    cJSON *root = NULL;
    int32_t max_id = -1;
    lp_status st = tk_json_load(encoder_json, &root);
    if (st == LP_OK && !cJSON_IsObject(root))
        st = lp_error(LP_ERR_FORMAT, "%s: expected a JSON object {\"token\": id, ...}", encoder_json);
    if (st == LP_OK) st = tk_json_vocab_max(root, encoder_json, &max_id);
    if (st == LP_OK) st = tk_alloc_vocab(t, max_id + 1);
    if (st == LP_OK) st = tk_json_vocab_set(t, root, encoder_json);
    cJSON_Delete(root);
    if (st == LP_OK) {
        int32_t eot = -1;
        for (int32_t i = 0; i < t->n_vocab; i++) /* the id named by the string, without the map yet */
            if (t->tok_len[i] == 13 && memcmp(t->pool.p + t->tok_off[i], "<|endoftext|>", 13) == 0) eot = i;
        if (eot >= 0) st = tk_add_added(t, eot, "<|endoftext|>", 13, 1, 0, 0);
        t->bos = t->eos = eot;
    }
    if (st == LP_OK) st = tk_compile_split(t, tk_gpt2_pattern, strlen(tk_gpt2_pattern), 0);
    if (st == LP_OK) st = tk_finish(t);
    if (st == LP_OK) st = load_merges(t, vocab_bpe);
    if (st != LP_OK) {
        lp_tokenizer_close(t);
        return st;
    }
    *out = t;
    return LP_OK;
}
