/* The BPE engine shared by every tokenizer kind.
 *
 * - GPT-2's bytes_to_unicode table (byte-level BPE spells each byte as a printable character).
 * - Pre-tokenization by chained PCRE2 regexes (UTF + UCP, JIT when available); like Hugging
 *   Face's Isolated split, both the matches and the gaps between them become pieces, so bytes
 *   that are not valid UTF-8 still reach BPE instead of being dropped.
 * - Merging with a binary heap over a linked list of symbols, O(n log n) in the word length:
 *   rank mode (lowest merge rank first, ties leftmost: the same result as GPT-2's encoder.py
 *   and Hugging Face's BPE) and score mode (highest vocabulary score first, ties leftmost: the
 *   same result as llama2.c's run.c, which rescans all pairs each step).
 * - A per-word cache of results (words up to TK_CACHE_WORD_MAX bytes), which WordPiece words
 *   (tokenizer_wordpiece.c) go through too. */
#include "io/tokenizer_internal.h"

#include <string.h>

#include "leanprop/alloc.h"

const char tk_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* bytes 33..126, 161..172, 174..255 stand for themselves; the other 68, in byte order, are
 * shifted to 256..323. */
int tk_byte_to_unicode(int b)
{
    if (b < 0 || b > 255) return -1;
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return b + 162;
    if (b == 173) return 323;
    return b;
}

int tk_unicode_to_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)cp - 256;
    if (cp >= 289 && cp <= 322) return (int)cp - 162;
    if (cp == 323) return 173;
    return -1;
}

size_t tk_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tk_utf8_len(const char *s, size_t n)
{
    size_t l = 1;
    while (l < 4 && l < n && ((unsigned char)s[l] & 0xC0) == 0x80) l++;
    return l;
}

size_t tk_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t l;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { l = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { l = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { l = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (l > n) return 0;
    for (size_t i = 1; i < l; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return l;
}

void tk_bytes_decode_bytelevel(const char *s, size_t n, char *out, size_t *out_n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tk_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int b = l ? tk_unicode_to_byte(cp) : -1;
        if (b >= 0) {
            out[o++] = (char)b;
        } else { /* not one of the 256: keep the text as it is */
            if (!l) l = 1;
            memcpy(out + o, s + i, l);
            o += l;
        }
        i += l;
    }
    *out_n = o;
}

/* ---- regex pre-tokenizer ---- */

lp_status tk_compile_split(lp_tokenizer *t, const char *pattern, size_t len, int literal)
{
    if (t->n_split >= TK_MAX_SPLITS)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: more than %d chained Split pre-tokenizers", t->path, TK_MAX_SPLITS);
    int err = 0;
    PCRE2_SIZE off = 0;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lp_error(LP_ERR_UNSUPPORTED, "%s: pre-tokenizer regex '%.*s' does not compile (PCRE2, at offset %zu): %s",
                        t->path, (int)(len > 200 ? 200 : len), pattern, (size_t)off, (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    t->split_re[t->n_split++] = re;
    return LP_OK;
}

typedef struct {
    pcre2_match_data *md[TK_MAX_SPLITS];
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
} split_state;

static int match_once(const lp_tokenizer *t, split_state *st, int level, const char *s, size_t n, size_t pos)
{
    int rc = pcre2_match(t->split_re[level], (PCRE2_SPTR)s, n, pos, 0, st->md[level], st->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !st->stack) { /* deep backtracking: give JIT a bigger stack */
        st->mctx = pcre2_match_context_create(NULL);
        st->stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, NULL);
        if (st->mctx && st->stack) {
            pcre2_jit_stack_assign(st->mctx, NULL, st->stack);
            rc = pcre2_match(t->split_re[level], (PCRE2_SPTR)s, n, pos, 0, st->md[level], st->mctx);
        }
    }
    return rc;
}

static lp_status split_level(const lp_tokenizer *t, split_state *st, int level, const char *s, size_t n,
                             tk_piece_fn fn, void *ctx)
{
    if (n == 0) return LP_OK;
    if (level == t->n_split) return fn(ctx, s, n);
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = match_once(t, st, level, s, n, pos);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lp_error(LP_ERR_INTERNAL, "%s: pre-tokenizer regex failed at byte %zu: %s", t->path, pos,
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md[level]);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: step over one character */
            if (ms >= n) break;
            pos = ms + tk_utf8_len(s + ms, n - ms);
            continue;
        }
        if (ms > last) LP_TRY(split_level(t, st, level + 1, s + last, ms - last, fn, ctx));
        LP_TRY(split_level(t, st, level + 1, s + ms, me - ms, fn, ctx));
        last = pos = me;
    }
    return split_level(t, st, level + 1, s + last, n - last, fn, ctx);
}

lp_status tk_split(const lp_tokenizer *t, const char *s, size_t n, tk_piece_fn fn, void *ctx)
{
    if (t->n_split == 0) return n ? fn(ctx, s, n) : LP_OK;
    split_state st = {0};
    lp_status rc = LP_OK;
    for (int i = 0; i < t->n_split; i++) {
        st.md[i] = pcre2_match_data_create_from_pattern(t->split_re[i], NULL);
        if (!st.md[i]) rc = lp_error(LP_ERR_NOMEM, "%s: PCRE2 match data", t->path);
    }
    if (rc == LP_OK) rc = split_level(t, &st, 0, s, n, fn, ctx);
    for (int i = 0; i < t->n_split; i++) pcre2_match_data_free(st.md[i]);
    if (st.stack) pcre2_jit_stack_free(st.stack);
    if (st.mctx) pcre2_match_context_free(st.mctx);
    return rc;
}

/* ---- merging ---- */

enum { MODE_RANK, MODE_SCORE };

static lp_status ensure_scratch(lp_tokenizer *t, size_t n)
{
    if (n > (size_t)INT32_MAX / 4) return lp_error(LP_ERR_INVALID_ARG, "%s: word of %zu bytes is too long", t->path, n);
    if (n > t->sym_cap) {
        size_t cap = n < 256 ? 256 : n + n / 2;
        tk_sym *s = lp_alloc_array(LP_MEM_DATA, cap, sizeof *s);
        tk_cand *h = lp_alloc_array(LP_MEM_DATA, 3 * cap + 4, sizeof *h);
        if (!s || !h) { lp_free(s); lp_free(h); return LP_ERR_NOMEM; }
        lp_free(t->sym);
        lp_free(t->heap);
        t->sym = s;
        t->heap = h;
        t->sym_cap = cap;
        t->heap_cap = 3 * cap + 4;
    }
    return LP_OK;
}

/* Free a merge scratch larger than TK_SCRATCH_KEEP symbols, so a handle does not keep the
 * memory of its longest input. */
static void scratch_trim(lp_tokenizer *t)
{
    if (t->sym_cap <= TK_SCRATCH_KEEP) return;
    lp_free(t->sym);
    lp_free(t->heap);
    t->sym = NULL;
    t->heap = NULL;
    t->sym_cap = t->heap_cap = 0;
}

static inline int cand_less(const tk_cand *a, const tk_cand *b)
{
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static void heap_push(tk_cand *h, size_t *n, tk_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static tk_cand heap_pop(tk_cand *h, size_t *n)
{
    tk_cand top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static int make_cand(lp_tokenizer *t, int mode, int32_t pos, int32_t left, int32_t right, tk_cand *c)
{
    if (mode == MODE_RANK) {
        const tk_pair_slot *p = tk_pairmap_get(&t->merges, left, right);
        if (!p) return 0;
        c->key = (double)p->rank;
        c->merged = p->merged;
    } else {
        size_t la = t->tok_len[left], lb = t->tok_len[right];
        if (la + lb > t->max_tok_len) return 0;
        memcpy(t->cat, t->pool.p + t->tok_off[left], la);
        memcpy(t->cat + la, t->pool.p + t->tok_off[right], lb);
        const int64_t *v = tk_map_get(&t->vocab, t->cat, la + lb);
        if (!v) return 0;
        float score = t->scores[*v];
        if (!(score > -1e10f)) return 0; /* run.c starts its search at -1e10 */
        c->key = -(double)score;
        c->merged = (int32_t)*v;
    }
    c->pos = pos;
    c->left = left;
    c->right = right;
    return 1;
}

/* Merges t->sym[0..n) (linked in order) and appends the result to out. */
static lp_status merge_and_emit(lp_tokenizer *t, int32_t n, int mode, tk_ids *out)
{
    if (n <= 0) return LP_OK;
    tk_sym *s = t->sym;
    tk_cand *h = t->heap, c;
    size_t hn = 0;
    for (int32_t i = 0; i < n; i++) {
        s[i].prev = i - 1;
        s[i].next = i + 1 < n ? i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < n; i++)
        if (make_cand(t, mode, i, s[i].id, s[i + 1].id, &c)) heap_push(h, &hn, c);
    while (hn) {
        c = heap_pop(h, &hn);
        tk_sym *a = &s[c.pos];
        if (a->id != c.left || a->next < 0) continue;      /* stale: a was merged since */
        tk_sym *b = &s[a->next];
        if (b->id != c.right) continue;                     /* stale: b was merged since */
        int32_t bn = b->next;
        a->id = c.merged;
        a->next = bn;
        b->id = -1;
        if (bn >= 0) s[bn].prev = c.pos;
        if (a->prev >= 0 && make_cand(t, mode, a->prev, s[a->prev].id, a->id, &c)) heap_push(h, &hn, c);
        if (bn >= 0 && make_cand(t, mode, (int32_t)(a - s), a->id, s[bn].id, &c)) heap_push(h, &hn, c);
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = s[i].next) count++;
    LP_TRY(tk_ids_reserve(out, count));
    for (int32_t i = 0; i >= 0; i = s[i].next) out->p[out->n++] = s[i].id;
    return LP_OK;
}

/* Appends an unknown-character symbol (fused with a preceding one when fuse_unk). */
static void push_unk(lp_tokenizer *t, int32_t *k, int *last_unk)
{
    if (t->unk < 0) return; /* no <unk>: the character is dropped, as Hugging Face does */
    if (t->fuse_unk && *last_unk) return;
    t->sym[(*k)++].id = t->unk;
    *last_unk = 1;
}

lp_status tk_bpe_word(lp_tokenizer *t, const char *w, size_t n, tk_ids *out)
{
    if (n == 0) return LP_OK;
    if (t->kind == LP_TOKENIZER_WORDPIECE) return tk_wp_word(t, w, n, out); /* same per-word cache */
    int bytelevel = t->kind == LP_TOKENIZER_GPT2 || t->kind == LP_TOKENIZER_HF_BYTELEVEL;
    if (t->ignore_merges) {
        const int64_t *v = tk_map_get(bytelevel ? &t->whole : &t->vocab, w, n);
        if (v) return tk_ids_push(out, (int32_t)*v);
    }
    LP_TRY(ensure_scratch(t, n));
    int32_t k = 0;
    int last_unk = 0;
    if (bytelevel) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_id[(unsigned char)w[i]];
            if (id >= 0) { t->sym[k++].id = id; last_unk = 0; }
            else push_unk(t, &k, &last_unk);
        }
    } else {
        for (size_t i = 0; i < n;) {
            size_t l = tk_utf8_len(w + i, n - i);
            int32_t id = tk_lookup(t, w + i, l);
            if (id >= 0) {
                t->sym[k++].id = id;
                last_unk = 0;
            } else {
                int all = t->byte_fallback;
                for (size_t j = 0; all && j < l; j++) all = t->byte_id[(unsigned char)w[i + j]] >= 0;
                if (all) {
                    for (size_t j = 0; j < l; j++) t->sym[k++].id = t->byte_id[(unsigned char)w[i + j]];
                    last_unk = 0;
                } else {
                    push_unk(t, &k, &last_unk);
                }
            }
            i += l;
        }
    }
    lp_status st = merge_and_emit(t, k, MODE_RANK, out);
    scratch_trim(t); /* a word past TK_SCRATCH_KEEP (never a cached one) */
    return st;
}

lp_status tk_bpe_word_cached(lp_tokenizer *t, const char *w, size_t n, tk_ids *out)
{
    if (n > TK_CACHE_WORD_MAX) return tk_bpe_word(t, w, n, out);
    const int64_t *v = tk_map_get(&t->cache, w, n);
    if (v) {
        size_t off = (size_t)(*v >> 20), cnt = (size_t)(*v & 0xFFFFF);
        LP_TRY(tk_ids_reserve(out, cnt));
        if (cnt) memcpy(out->p + out->n, t->cache_ids.p + off, cnt * sizeof(int32_t));
        out->n += cnt;
        return LP_OK;
    }
    size_t start = out->n;
    LP_TRY(tk_bpe_word(t, w, n, out));
    size_t cnt = out->n - start;
    if (t->cache.n >= TK_CACHE_MAX_WORDS || t->cache.keys.n + n > TK_CACHE_MAX_KEY_BYTES ||
        t->cache_ids.n + cnt > TK_CACHE_MAX_IDS) { /* bound the cache's memory: start it afresh */
        tk_map_clear(&t->cache);
        t->cache_ids.n = 0;
    }
    size_t off = t->cache_ids.n;
    LP_TRY(tk_ids_reserve(&t->cache_ids, cnt));
    if (cnt) memcpy(t->cache_ids.p + off, out->p + start, cnt * sizeof(int32_t)); /* out->p NULL if cnt 0 */
    t->cache_ids.n += cnt;
    return tk_map_put(&t->cache, w, n, ((int64_t)off << 20) | (int64_t)cnt, NULL);
}

lp_status tk_llama2c_encode(lp_tokenizer *t, const char *s, size_t n, tk_ids *out)
{
    if (n == 0) return LP_OK;
    LP_TRY(ensure_scratch(t, n + 1));
    int32_t k = 0;
    /* run.c: a dummy prefix " " token in front of non-empty text */
    int32_t dummy = tk_lookup(t, " ", 1);
    if (dummy < 0) dummy = t->byte_id[' '];
    if (dummy >= 0) t->sym[k++].id = dummy;
    for (size_t i = 0; i < n;) {
        size_t l = tk_utf8_len(s + i, n - i);
        int32_t id = tk_lookup(t, s + i, l);
        if (id >= 0) {
            t->sym[k++].id = id;
        } else { /* byte fallback: <0xNN> (ids 3..258 in llama2.c's files) */
            for (size_t j = 0; j < l; j++) {
                int32_t b = t->byte_id[(unsigned char)s[i + j]];
                if (b < 0) b = t->unk;
                if (b >= 0) t->sym[k++].id = b;
            }
        }
        i += l;
    }
    lp_status st = merge_and_emit(t, k, MODE_SCORE, out);
    scratch_trim(t);
    return st;
}
