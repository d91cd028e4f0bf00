/* The tokenizer handle: vocabulary tables, added/special tokens, and the public encode /
 * decode / lookup calls. The loaders (tokenizer_gpt2.c, tokenizer_hfjson.c,
 * tokenizer_llama2c.c, tokenizer_wordpiece.c) fill a handle through tk_alloc_vocab /
 * tk_set_token / tk_add_added and call tk_finish; the BPE engine is in tokenizer_bpe.c, the
 * WordPiece normalizer, pre-tokenizer and model in tokenizer_wordpiece.c. */
#include "io/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "leanprop/alloc.h"

#define HOLE UINT32_MAX

/* ---- building ---- */

lp_tokenizer *tk_new(lp_tokenizer_kind kind, const char *path)
{
    lp_tokenizer *t = lp_alloc(LP_MEM_DATA, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    snprintf(t->path, sizeof t->path, "%s", path ? path : "(tokenizer)");
    t->bos = t->eos = t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

lp_status tk_alloc_vocab(lp_tokenizer *t, int32_t n_vocab)
{
    if (n_vocab <= 0 || n_vocab > TK_MAX_ID)
        return lp_error(LP_ERR_FORMAT, "%s: vocabulary of %d tokens is out of range (1..%d)", t->path, n_vocab, TK_MAX_ID);
    size_t n = (size_t)n_vocab;
    t->n_vocab = n_vocab;
    t->tok_off = lp_alloc_array(LP_MEM_DATA, n, sizeof(uint32_t));
    t->tok_len = lp_alloc_array(LP_MEM_DATA, n, sizeof(uint32_t));
    t->dec_off = lp_alloc_array(LP_MEM_DATA, n, sizeof(uint32_t));
    t->dec_len = lp_alloc_array(LP_MEM_DATA, n, sizeof(uint32_t));
    t->tok_flags = lp_alloc_array(LP_MEM_DATA, n, 1);
    if (!t->tok_off || !t->tok_len || !t->dec_off || !t->dec_len || !t->tok_flags) return LP_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) t->tok_off[i] = HOLE;
    return tk_bytes_reserve(&t->pool, n * 8);
}

lp_status tk_set_token(lp_tokenizer *t, int32_t id, const char *s, size_t n, const char *where)
{
    if (id < 0 || id >= t->n_vocab)
        return lp_error(LP_ERR_FORMAT, "%s: token id %d out of range (vocabulary %d)", where, id, t->n_vocab);
    if (t->tok_off[id] != HOLE)
        return lp_error(LP_ERR_FORMAT, "%s: id %d given to two tokens ('%.64s' and '%.64s')", where, id,
                        t->pool.p + t->tok_off[id], s);
    if (n > UINT32_MAX / 2 || t->pool.n > UINT32_MAX / 2)
        return lp_error(LP_ERR_FORMAT, "%s: token strings too large", where);
    t->tok_off[id] = (uint32_t)t->pool.n;
    t->tok_len[id] = (uint32_t)n;
    LP_TRY(tk_bytes_append(&t->pool, s, n));
    return tk_bytes_append(&t->pool, "", 1); /* keep each string NUL-terminated */
}

lp_status tk_add_added(lp_tokenizer *t, int32_t id, const char *s, size_t n, int special, int lstrip, int rstrip)
{
    if (id < 0 || id >= t->n_vocab)
        return lp_error(LP_ERR_FORMAT, "%s: added token '%.64s' has id %d out of range", t->path, s, id);
    if (n == 0) return lp_error(LP_ERR_FORMAT, "%s: added token with id %d is empty", t->path, id);
    if (t->tok_off[id] == HOLE) LP_TRY(tk_set_token(t, id, s, n, t->path));
    if (t->n_added % 64 == 0) {
        tk_added *a = t->added ? lp_realloc(t->added, (t->n_added + 64) * sizeof *a)
                               : lp_alloc_array(LP_MEM_DATA, 64, sizeof *a);
        if (!a) return LP_ERR_NOMEM;
        t->added = a;
    }
    size_t off = t->pool.n;
    LP_TRY(tk_bytes_append(&t->pool, s, n));
    LP_TRY(tk_bytes_append(&t->pool, "", 1));
    t->added[t->n_added++] = (tk_added){ .id = id, .off = (uint32_t)off, .len = (uint32_t)n,
                                         .lstrip = (uint8_t)!!lstrip, .rstrip = (uint8_t)!!rstrip,
                                         .special = (uint8_t)!!special };
    t->tok_flags[id] |= TK_FLAG_ADDED | (special ? TK_FLAG_SPECIAL : 0);
    return LP_OK;
}

int32_t tk_lookup(const lp_tokenizer *t, const char *s, size_t n)
{
    const int64_t *v = tk_map_get(&t->vocab, s, n);
    return v ? (int32_t)*v : -1;
}

static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int added_cmp(const void *pa, const void *pb, void *pool)
{
    const tk_added *a = pa, *b = pb;
    unsigned char fa = (unsigned char)((char *)pool)[a->off], fb = (unsigned char)((char *)pool)[b->off];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static void decode_token(const lp_tokenizer *t, int32_t id, const char *s, size_t n, char *o, size_t *on)
{
    int b;
    if (t->kind == LP_TOKENIZER_WORDPIECE) { tk_wp_decode_token(t, s, n, o, on); return; } /* added tokens too */
    if (t->tok_flags[id] & TK_FLAG_ADDED) { memcpy(o, s, n); *on = n; return; }
    switch (t->kind) {
    case LP_TOKENIZER_GPT2:
    case LP_TOKENIZER_HF_BYTELEVEL:
        tk_bytes_decode_bytelevel(s, n, o, on);
        return;
    case LP_TOKENIZER_HF_SENTENCEPIECE:
        if (t->dec_byte_fallback && (b = byte_token(s, n)) >= 0) { o[0] = (char)b; *on = 1; return; }
        if (t->dec_replace && t->dec_rep_len) {
            size_t k = 0;
            for (size_t i = 0; i < n;) {
                if (i + t->dec_rep_len <= n && memcmp(s + i, t->dec_rep, t->dec_rep_len) == 0) {
                    o[k++] = ' ';
                    i += t->dec_rep_len;
                } else {
                    o[k++] = s[i++];
                }
            }
            *on = k;
            return;
        }
        break;
    case LP_TOKENIZER_LLAMA2C:
        if (t->tok_flags[id] & TK_FLAG_SPECIAL) { /* "\n<s>\n" -> "<s>" */
            while (n && (*s == '\n' || *s == ' ')) { s++; n--; }
            while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
        } else if ((b = byte_token(s, n)) >= 0) {
            o[0] = (char)b;
            *on = 1;
            return;
        }
        break;
    default:
        break;
    }
    memcpy(o, s, n);
    *on = n;
}

lp_status tk_finish(lp_tokenizer *t)
{
    size_t n = (size_t)t->n_vocab;
    LP_TRY(tk_map_init(&t->vocab, n + t->n_added));
    for (size_t i = 0; i < n; i++) {
        if (t->tok_off[i] == HOLE) continue;
        if (t->tok_len[i] > t->max_tok_len) t->max_tok_len = t->tok_len[i];
        LP_TRY(tk_map_put(&t->vocab, t->pool.p + t->tok_off[i], t->tok_len[i], (int64_t)i, NULL));
    }
    for (size_t i = 0; i < t->n_added; i++)
        LP_TRY(tk_map_put(&t->vocab, t->pool.p + t->added[i].off, t->added[i].len, t->added[i].id, NULL));

    /* decoded bytes: never longer than the token string + 1 (WordPiece's space) */
    LP_TRY(tk_bytes_reserve(&t->dpool, t->pool.n + n));
    for (size_t i = 0; i < n; i++) {
        t->dec_off[i] = (uint32_t)t->dpool.n;
        t->dec_len[i] = 0;
        if (t->tok_off[i] == HOLE) continue;
        size_t on = 0;
        decode_token(t, (int32_t)i, t->pool.p + t->tok_off[i], t->tok_len[i], t->dpool.p + t->dpool.n, &on);
        t->dec_len[i] = (uint32_t)on;
        t->dpool.n += on;
    }

    int bytelevel = t->kind == LP_TOKENIZER_GPT2 || t->kind == LP_TOKENIZER_HF_BYTELEVEL;
    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t l = bytelevel ? tk_utf8_encode((uint32_t)tk_byte_to_unicode(b), buf)
                             : (size_t)snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_id[b] = tk_lookup(t, buf, l);
    }
    if (bytelevel && t->ignore_merges) {
        LP_TRY(tk_map_init(&t->whole, n));
        for (size_t i = 0; i < n; i++)
            if (t->tok_off[i] != HOLE && !(t->tok_flags[i] & TK_FLAG_ADDED))
                LP_TRY(tk_map_put(&t->whole, t->dpool.p + t->dec_off[i], t->dec_len[i], (int64_t)i, NULL));
    }

    if (t->n_added) qsort_r(t->added, t->n_added, sizeof *t->added, added_cmp, t->pool.p);
    size_t j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < t->n_added && (unsigned char)t->pool.p[t->added[j].off] < b) j++;
        t->added_first[b] = (uint32_t)j;
    }
    t->added_first[256] = (uint32_t)t->n_added;

    if (t->kind == LP_TOKENIZER_LLAMA2C) {
        t->cat_cap = 2 * t->max_tok_len + 2;
        t->cat = lp_alloc(LP_MEM_DATA, t->cat_cap);
        if (!t->cat) return LP_ERR_NOMEM;
    }
    return tk_map_init(&t->cache, 256); /* grows as words arrive */
}

void lp_tokenizer_close(lp_tokenizer *t)
{
    if (!t) return;
    tk_bytes_free(&t->pool);
    tk_bytes_free(&t->dpool);
    lp_free(t->tok_off);
    lp_free(t->tok_len);
    lp_free(t->dec_off);
    lp_free(t->dec_len);
    lp_free(t->tok_flags);
    lp_free(t->scores);
    tk_map_free(&t->vocab);
    tk_map_free(&t->whole);
    tk_pairmap_free(&t->merges);
    for (int i = 0; i < t->n_split; i++) pcre2_code_free(t->split_re[i]);
    lp_free(t->added);
    tk_map_free(&t->cache);
    tk_ids_free(&t->cache_ids);
    lp_free(t->sym);
    lp_free(t->heap);
    lp_free(t->cat);
    lp_free(t);
}

/* ---- added tokens in text ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Leftmost, then longest, added token in s[from..n). The match [*mb, *me) includes whitespace
 * absorbed by lstrip/rstrip (never reaching before `from`). */
static int find_added(const lp_tokenizer *t, const char *s, size_t n, size_t from, unsigned flags,
                      size_t *mb, size_t *me, int32_t *id)
{
    if (!t->n_added) return 0;
    for (size_t i = from; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        for (uint32_t k = t->added_first[c]; k < t->added_first[c + 1]; k++) {
            const tk_added *a = &t->added[k];
            if (a->special && (flags & LP_TOKENIZER_SPECIAL_AS_TEXT)) continue;
            if (a->len > n - i || memcmp(s + i, t->pool.p + a->off, a->len) != 0) continue;
            size_t b = i, e = i + a->len;
            if (a->lstrip) while (b > from && is_space(s[b - 1])) b--;
            if (a->rstrip) while (e < n && is_space(s[e])) e++;
            *mb = b;
            *me = e;
            *id = a->id;
            return 1;
        }
    }
    return 0;
}

/* ---- encode ---- */

typedef struct { lp_tokenizer *t; tk_ids *out; } enc_ctx;

static lp_status enc_piece(void *ctx, const char *p, size_t n)
{
    enc_ctx *c = ctx;
    return tk_bpe_word_cached(c->t, p, n, c->out);
}

static lp_status replace_all(tk_bytes *cur, const char *a, size_t an, const char *b, size_t bn)
{
    if (!an) return LP_OK;
    tk_bytes o = {0};
    lp_status st = tk_bytes_reserve(&o, cur->n + 16);
    for (size_t i = 0; st == LP_OK && i < cur->n;) {
        if (i + an <= cur->n && memcmp(cur->p + i, a, an) == 0) {
            st = tk_bytes_append(&o, b, bn);
            i += an;
        } else {
            size_t j = i + 1;
            while (j < cur->n && (unsigned char)cur->p[j] != (unsigned char)a[0]) j++;
            st = tk_bytes_append(&o, cur->p + i, j - i);
            i = j;
        }
    }
    tk_bytes_free(cur);
    *cur = o;
    return st;
}

static lp_status prepend(tk_bytes *cur, const char *a, size_t an)
{
    tk_bytes o = {0};
    lp_status st = tk_bytes_append(&o, a, an);
    if (st == LP_OK) st = tk_bytes_append(&o, cur->p, cur->n);
    tk_bytes_free(cur);
    *cur = o;
    return st;
}

/* SentencePiece-style normalization of one segment: normalizer ops, then Metaspace. */
static lp_status sp_normalize(const lp_tokenizer *t, const char *s, size_t n, int first, tk_bytes *cur)
{
    LP_TRY(tk_bytes_append(cur, s, n));
    for (int i = 0; i < t->n_norm; i++) {
        const tk_norm_op *op = &t->norm[i];
        if (op->op == TK_NORM_PREPEND && cur->n) LP_TRY(prepend(cur, op->a, op->alen));
        else if (op->op == TK_NORM_REPLACE) LP_TRY(replace_all(cur, op->a, op->alen, op->b, op->blen));
    }
    if (t->meta) {
        LP_TRY(replace_all(cur, " ", 1, t->meta_rep, t->meta_rep_len));
        int want = t->meta_prepend == TK_PREPEND_ALWAYS || (t->meta_prepend == TK_PREPEND_FIRST && first);
        if (want && cur->n && !(cur->n >= t->meta_rep_len && memcmp(cur->p, t->meta_rep, t->meta_rep_len) == 0))
            LP_TRY(prepend(cur, t->meta_rep, t->meta_rep_len));
    }
    return LP_OK;
}

static lp_status encode_segment(lp_tokenizer *t, const char *s, size_t n, int first, tk_ids *out)
{
    enc_ctx ctx = { t, out };
    switch (t->kind) {
    case LP_TOKENIZER_GPT2:
    case LP_TOKENIZER_HF_BYTELEVEL:
        if (t->prefix_space && s[0] != ' ') {
            tk_bytes tmp = {0};
            lp_status st = tk_bytes_append(&tmp, " ", 1);
            if (st == LP_OK) st = tk_bytes_append(&tmp, s, n);
            if (st == LP_OK) st = tk_split(t, tmp.p, tmp.n, enc_piece, &ctx);
            tk_bytes_free(&tmp);
            return st;
        }
        return tk_split(t, s, n, enc_piece, &ctx);
    case LP_TOKENIZER_HF_SENTENCEPIECE: {
        tk_bytes cur = {0};
        lp_status st = sp_normalize(t, s, n, first, &cur);
        if (st == LP_OK && t->meta && t->meta_split) { /* a word starts at each replacement char */
            size_t b = 0, r = t->meta_rep_len;
            for (size_t i = 1; st == LP_OK && i + r <= cur.n; i++)
                if (memcmp(cur.p + i, t->meta_rep, r) == 0) {
                    st = tk_bpe_word_cached(t, cur.p + b, i - b, out);
                    b = i;
                }
            if (st == LP_OK) st = tk_bpe_word_cached(t, cur.p + b, cur.n - b, out);
        } else if (st == LP_OK) {
            st = tk_bpe_word_cached(t, cur.p, cur.n, out);
        }
        tk_bytes_free(&cur);
        return st;
    }
    case LP_TOKENIZER_LLAMA2C:
        return tk_llama2c_encode(t, s, n, out);
    case LP_TOKENIZER_WORDPIECE:
        return tk_wp_encode(t, s, n, out);
    default:
        return lp_error(LP_ERR_INTERNAL, "%s: unknown tokenizer kind %d", t->path, (int)t->kind);
    }
}

lp_status lp_tokenizer_encode(lp_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                              size_t *n_ids)
{
    if (!ids || !n_ids) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_encode: NULL output");
    *ids = NULL;
    *n_ids = 0;
    if (!t || (!text && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_encode: NULL tokenizer or text");
    if ((flags & LP_TOKENIZER_ADD_BOS) && t->bos < 0)
        return lp_error(LP_ERR_INVALID_ARG, "%s: BOS asked for but this tokenizer has none", t->path);
    if ((flags & LP_TOKENIZER_ADD_EOS) && t->eos < 0)
        return lp_error(LP_ERR_INVALID_ARG, "%s: EOS asked for but this tokenizer has none", t->path);
    int special = (flags & LP_TOKENIZER_ADD_SPECIAL) != 0;
    int add_bos = (flags & LP_TOKENIZER_ADD_BOS) || (special && t->tpl_bos && t->bos >= 0);
    int add_eos = (flags & LP_TOKENIZER_ADD_EOS) || (special && t->tpl_eos && t->eos >= 0);
    tk_ids out = {0};
    lp_status st = tk_ids_reserve(&out, len / 3 + 8);
    if (st == LP_OK && add_bos) st = tk_ids_push(&out, t->bos);
    size_t pos = 0;
    while (st == LP_OK && pos < len) {
        size_t mb = len, me = len;
        int32_t id = -1;
        int found = find_added(t, text, len, pos, flags, &mb, &me, &id);
        if (mb > pos) st = encode_segment(t, text + pos, mb - pos, pos == 0, &out);
        if (!found || st != LP_OK) break;
        st = tk_ids_push(&out, id);
        pos = me;
    }
    if (st == LP_OK && add_eos) st = tk_ids_push(&out, t->eos);
    if (st != LP_OK || out.n == 0) {
        tk_ids_free(&out);
        return st;
    }
    *ids = out.p;
    *n_ids = out.n;
    return LP_OK;
}

/* ---- pretokenize ---- */

/* Pieces arrive as pointers into the subject `base`, which starts at byte `origin` of the text
 * and carries `shift` bytes of prefix (the ByteLevel prefix space) that the text does not. */
typedef struct { tk_bytes spans; const char *base; size_t origin, shift, limit; } span_ctx;

static lp_status span_add(span_ctx *c, size_t b, size_t e, int32_t special)
{
    lp_tokenizer_span sp = { b, e, special };
    return tk_bytes_append(&c->spans, &sp, sizeof sp);
}

static lp_status span_word(void *ctx, const char *w, size_t n, size_t b, size_t e)
{
    (void)w;
    (void)n;
    span_ctx *c = ctx;
    return span_add(c, c->origin + b, c->origin + e, -1);
}

static lp_status span_piece(void *ctx, const char *p, size_t n)
{
    span_ctx *c = ctx;
    size_t b = (size_t)(p - c->base), e = b + n;
    b = c->origin + (b > c->shift ? b - c->shift : 0);
    e = c->origin + (e > c->shift ? e - c->shift : 0);
    if (e > c->limit) e = c->limit;
    return e > b ? span_add(c, b, e, -1) : LP_OK;
}

lp_status lp_tokenizer_pretokenize(const lp_tokenizer *t, const char *text, size_t len, unsigned flags,
                                   lp_tokenizer_span **spans, size_t *n_spans)
{
    if (!spans || !n_spans) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_pretokenize: NULL output");
    *spans = NULL;
    *n_spans = 0;
    if (!t || (!text && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_pretokenize: NULL tokenizer or text");
    span_ctx c = { .limit = len };
    lp_status st = LP_OK;
    size_t pos = 0;
    while (st == LP_OK && pos < len) {
        size_t mb = len, me = len;
        int32_t id = -1;
        int found = find_added(t, text, len, pos, flags, &mb, &me, &id);
        const char *s = text + pos;
        size_t n = mb - pos;
        if (n && (t->kind == LP_TOKENIZER_GPT2 || t->kind == LP_TOKENIZER_HF_BYTELEVEL)) {
            if (t->prefix_space && s[0] != ' ') {
                tk_bytes tmp = {0};
                st = tk_bytes_append(&tmp, " ", 1);
                if (st == LP_OK) st = tk_bytes_append(&tmp, s, n);
                c.base = tmp.p;
                c.origin = pos;
                c.shift = 1;
                if (st == LP_OK) st = tk_split(t, tmp.p, tmp.n, span_piece, &c);
                tk_bytes_free(&tmp);
            } else {
                c.base = s;
                c.origin = pos;
                c.shift = 0;
                st = tk_split(t, s, n, span_piece, &c);
            }
        } else if (n && t->kind == LP_TOKENIZER_WORDPIECE) {
            c.origin = pos;
            st = tk_wp_words(t, s, n, span_word, &c);
        } else if (n && t->kind == LP_TOKENIZER_HF_SENTENCEPIECE && t->meta && t->meta_split) {
            size_t b = pos;
            for (size_t i = pos + 1; st == LP_OK && i < mb; i++)
                if (text[i] == ' ') { st = span_add(&c, b, i, -1); b = i; }
            if (st == LP_OK) st = span_add(&c, b, mb, -1);
        } else if (n) {
            st = span_add(&c, pos, mb, -1);
        }
        if (!found || st != LP_OK) break;
        st = span_add(&c, mb, me, id);
        pos = me;
    }
    if (st != LP_OK || c.spans.n == 0) {
        tk_bytes_free(&c.spans);
        return st;
    }
    *spans = (lp_tokenizer_span *)(void *)c.spans.p;
    *n_spans = c.spans.n / sizeof(lp_tokenizer_span);
    return LP_OK;
}

/* ---- decode ---- */

/* The decoded bytes of id, with the encoder's leading space dropped where it belongs. */
static void piece_of(const lp_tokenizer *t, int32_t prev, int32_t id, int at_start, const char **p, size_t *n)
{
    *p = t->dpool.p + t->dec_off[id];
    *n = t->dec_len[id];
    int strip = 0;
    if (t->kind == LP_TOKENIZER_WORDPIECE && at_start) { /* the decoder leaves the first token as it is */
        *p = t->pool.p + t->tok_off[id];
        *n = t->tok_len[id];
        return;
    }
    if (t->kind == LP_TOKENIZER_LLAMA2C) strip = at_start || (prev >= 0 && prev == t->bos);
    else if (t->kind == LP_TOKENIZER_HF_SENTENCEPIECE) strip = t->dec_strip_space && at_start;
    if (strip && *n && (*p)[0] == ' ' && !(t->tok_flags[id] & TK_FLAG_ADDED)) { (*p)++; (*n)--; }
}

static lp_status check_id(const lp_tokenizer *t, int32_t id, size_t i)
{
    if (id < 0 || id >= t->n_vocab || t->tok_off[id] == HOLE)
        return lp_error(LP_ERR_INVALID_ARG, "%s: id %d at position %zu is not a token (vocabulary %d)", t->path, id, i,
                        t->n_vocab);
    return LP_OK;
}

lp_status lp_tokenizer_decode(const lp_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **text,
                              size_t *len)
{
    if (!text || !len) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_decode: NULL output");
    *text = NULL;
    *len = 0;
    if (!t || (!ids && n)) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_decode: NULL tokenizer or ids");
    size_t total = 1 + (t->kind == LP_TOKENIZER_WORDPIECE ? t->max_tok_len : 0); /* its first token is raw */
    for (size_t i = 0; i < n; i++) {
        LP_TRY(check_id(t, ids[i], i));
        total += t->dec_len[ids[i]];
    }
    char *o = lp_alloc(LP_MEM_DATA, total);
    if (!o) return LP_ERR_NOMEM;
    size_t k = 0;
    int32_t prev = -1;
    int first = 1; /* the first token kept: its leading space came from the encoder */
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if ((flags & LP_TOKENIZER_SKIP_SPECIAL) && (t->tok_flags[id] & TK_FLAG_SPECIAL)) { prev = id; continue; }
        const char *p;
        size_t pn;
        piece_of(t, prev, id, first, &p, &pn);
        first = 0;
        memcpy(o + k, p, pn);
        k += pn;
        prev = id;
    }
    o[k] = '\0';
    *text = o;
    *len = k;
    return LP_OK;
}

lp_status lp_tokenizer_decode_piece(const lp_tokenizer *t, int32_t prev, int32_t id, const char **bytes, size_t *len)
{
    if (!t || !bytes || !len) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_decode_piece: NULL argument");
    LP_TRY(check_id(t, id, 0));
    int at_start = prev < 0 || (t->kind != LP_TOKENIZER_WORDPIECE && prev < t->n_vocab &&
                                (t->tok_flags[prev] & TK_FLAG_SPECIAL));
    piece_of(t, prev, id, at_start, bytes, len);
    return LP_OK;
}

/* ---- lookups ---- */

lp_tokenizer_kind lp_tokenizer_get_kind(const lp_tokenizer *t) { return t ? t->kind : LP_TOKENIZER_KIND_COUNT; }

const char *lp_tokenizer_kind_name(lp_tokenizer_kind kind)
{
    static const char *const names[LP_TOKENIZER_KIND_COUNT] = { "gpt2", "hf-bytelevel", "hf-sentencepiece", "llama2c",
                                                                 "wordpiece" };
    return (int)kind >= 0 && kind < LP_TOKENIZER_KIND_COUNT ? names[kind] : "unknown";
}

int32_t lp_tokenizer_vocab_size(const lp_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *lp_tokenizer_token(const lp_tokenizer *t, int32_t id, size_t *len)
{
    if (len) *len = 0;
    if (!t || id < 0 || id >= t->n_vocab || t->tok_off[id] == HOLE) return NULL;
    if (len) *len = t->tok_len[id];
    return t->pool.p + t->tok_off[id];
}

int32_t lp_tokenizer_token_id(const lp_tokenizer *t, const char *token, size_t len)
{
    return t && token ? tk_lookup(t, token, len) : -1;
}

int lp_tokenizer_is_special(const lp_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_vocab && (t->tok_flags[id] & TK_FLAG_SPECIAL);
}

int32_t lp_tokenizer_bos(const lp_tokenizer *t) { return t ? t->bos : -1; }
int32_t lp_tokenizer_eos(const lp_tokenizer *t) { return t ? t->eos : -1; }

lp_status lp_tokenizer_set_bos_eos(lp_tokenizer *t, int32_t bos, int32_t eos)
{
    if (!t) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_set_bos_eos: NULL tokenizer");
    if (bos < -1 || bos >= t->n_vocab || eos < -1 || eos >= t->n_vocab)
        return lp_error(LP_ERR_INVALID_ARG, "%s: BOS %d / EOS %d out of range (vocabulary %d)", t->path, bos, eos,
                        t->n_vocab);
    t->bos = bos;
    t->eos = eos;
    return LP_OK;
}

/* ---- open by name ---- */

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int exists(const char *dir, const char *name, char *buf, size_t cap)
{
    struct stat sb;
    snprintf(buf, cap, "%s/%s", dir, name);
    return stat(buf, &sb) == 0 && S_ISREG(sb.st_mode);
}

lp_status lp_tokenizer_open(lp_tokenizer **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_open: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lp_error(LP_ERR_NOT_FOUND, "%s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode)) {
        char a[4096], b[4096];
        if (exists(path, "tokenizer.json", a, sizeof a)) return lp_tokenizer_open_hf(out, a);
        if (exists(path, "encoder.json", a, sizeof a) && exists(path, "vocab.bpe", b, sizeof b))
            return lp_tokenizer_open_gpt2(out, a, b);
        if (exists(path, "tokenizer.bin", a, sizeof a)) return lp_tokenizer_open_llama2c(out, a);
        if (exists(path, "vocab.txt", a, sizeof a)) return lp_tokenizer_open_wordpiece(out, a, NULL);
        return lp_error(LP_ERR_NOT_FOUND, "%s: no tokenizer.json, encoder.json + vocab.bpe, tokenizer.bin or vocab.txt in it",
                        path);
    }
    if (has_suffix(path, "encoder.json")) { /* GPT-2's pair: vocab.bpe beside it */
        char dir[4096], b[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        if (exists(slash ? dir : ".", "vocab.bpe", b, sizeof b)) return lp_tokenizer_open_gpt2(out, path, b);
    }
    if (has_suffix(path, ".json")) return lp_tokenizer_open_hf(out, path);
    if (has_suffix(path, ".bin")) return lp_tokenizer_open_llama2c(out, path);
    if (has_suffix(path, ".txt")) return lp_tokenizer_open_wordpiece(out, path, NULL);
    return lp_error(LP_ERR_UNSUPPORTED, "%s: not a tokenizer name (want a directory, *.json, *.bin or *.txt)", path);
}
