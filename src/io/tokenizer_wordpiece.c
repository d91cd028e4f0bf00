/* BERT's WordPiece, as Hugging Face's BertTokenizer / tokenizers' WordPiece model do it.
 *
 * - vocab.txt (one token a line, id = line number - 1), with options from
 *   lp_wordpiece_options or a tokenizer_config.json beside it; or a tokenizer.json whose model
 *   is WordPiece (tokenizer_hfjson.c hands it over).
 * - Normalizer (BertNormalizer, in its order): clean_text drops NUL, U+FFFD and control
 *   characters (Cc, Cf, Co; tab, newline and return count as whitespace) and turns whitespace into
 *   ' '; handle_chinese_chars puts ' ' around each CJK ideograph; strip_accents decomposes (NFD)
 *   and drops nonspacing marks; lowercase applies the full per-character lowercase mapping.
 *   A Sequence of Lowercase and NFD + StripAccents is the same pipeline.
 * - Pre-tokenizer (BertPreTokenizer): words end at whitespace, and each punctuation character
 *   (Unicode P*, and ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) is a word of its own.
 *   Normalizer and pre-tokenizer run in one pass over the code points (both are per character).
 * - Model: a word longer than max_input_chars_per_word characters is the unknown token; else
 *   greedy longest-match-first pieces, every piece after the first spelled with the prefix
 *   ("##"); a word with any part that matches nothing is the unknown token as a whole.
 * - Decoder (WordPiece, cleanup): see tk_wp_decode_token.
 * Tables for the Unicode parts are in tokenizer_unicode.c. Bytes that are not valid UTF-8 are
 * read as U+FFFD (which clean_text removes). */
#include "io/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "leanprop/alloc.h"

void lp_tokenizer_wordpiece_defaults(lp_wordpiece_options *o)
{
    if (!o) return;
    *o = (lp_wordpiece_options){ .lowercase = 1, .strip_accents = -1, .clean_text = 1, .handle_chinese_chars = 1,
                                 .max_input_chars_per_word = 100, .unk_token = "[UNK]", .cls_token = "[CLS]",
                                 .sep_token = "[SEP]", .pad_token = "[PAD]", .mask_token = "[MASK]", .prefix = "##" };
}

/* ---- normalizer + pre-tokenizer ---- */

typedef struct {
    const lp_tokenizer *t;
    tk_bytes word;        /* the word being built, normalized UTF-8 */
    size_t begin, end;    /* the input bytes it came from */
    tk_word_fn fn;
    void *ctx;
} walk;

static lp_status flush(walk *w)
{
    if (!w->word.n) return LP_OK;
    lp_status st = w->fn(w->ctx, w->word.p, w->word.n, w->begin, w->end);
    w->word.n = 0;
    return st;
}

static lp_status append(walk *w, uint32_t c, size_t b, size_t e)
{
    if (!w->word.n) w->begin = b;
    w->end = e;
    if (c < 0x80 && w->word.n + 1 < w->word.cap) {
        w->word.p[w->word.n++] = (char)c;
        return LP_OK;
    }
    char u[4];
    return tk_bytes_append(&w->word, u, tk_utf8_encode(c, u));
}

/* One normalized character, made from input bytes [b, e): the pre-tokenizer's part. */
static lp_status put(walk *w, uint32_t c, size_t b, size_t e)
{
    const lp_tokenizer *t = w->t;
    if (t->wp_split_ws && tk_uc_is_space(c)) return flush(w);
    if (t->wp_split_punct && tk_uc_is_punct(c)) {
        LP_TRY(flush(w));
        LP_TRY(append(w, c, b, e));
        return flush(w);
    }
    return append(w, c, b, e);
}

/* BERT's ASCII punctuation, 33-47, 58-64, 91-96, 123-126, as a bit set. */
static const uint32_t ascii_punct[4] = { 0, 0xFC00FFFEu, 0xF8000001u, 0x78000001u };

lp_status tk_wp_words(const lp_tokenizer *t, const char *s, size_t n, tk_word_fn fn, void *ctx)
{
    walk w = { .t = t, .fn = fn, .ctx = ctx };
    lp_status st = tk_bytes_reserve(&w.word, 64);
    for (size_t i = 0, l; st == LP_OK && i < n; i += l) {
        uint32_t cp = (unsigned char)s[i];
        l = 1;
        if (cp < 0x80) { /* ASCII, the common case: the same steps without table lookups */
            int tnr = cp == '\t' || cp == '\n' || cp == '\r';
            if (t->wp_clean && (cp < 0x20 || cp == 0x7F) && !tnr) continue; /* \v and \f too: Cc goes first */
            if (t->wp_clean && tnr) cp = ' ';
            int space = cp == ' ' || (cp >= '\t' && cp <= '\r');
            if (t->wp_lower && cp >= 'A' && cp <= 'Z') cp += 32;
            if (space && t->wp_split_ws) st = flush(&w);
            else if (t->wp_split_punct && (ascii_punct[cp >> 5] >> (cp & 31) & 1)) st = put(&w, cp, i, i + 1);
            else st = append(&w, cp, i, i + 1);
            continue;
        }
        if (!(l = tk_utf8_decode((const unsigned char *)s + i, n - i, &cp))) {
            cp = 0xFFFD;
            l = 1;
        }
        size_t e = i + l;
        if (t->wp_clean) {
            if (cp == 0xFFFD || tk_uc_class(cp) == TK_UC_CTRL) continue;
            if (tk_uc_is_space(cp)) cp = ' ';
        }
        int cjk = t->wp_cjk && cp >= 0x3400 && tk_uc_is_cjk(cp);
        if (cjk) st = put(&w, ' ', i, e);
        uint32_t a[3], lo[2];
        size_t na = 1;
        a[0] = cp;
        if (t->wp_strip && cp >= 0xC0) na = tk_uc_strip(cp, a);
        for (size_t k = 0; st == LP_OK && k < na; k++) {
            if (!t->wp_lower) {
                st = put(&w, a[k], i, e);
                continue;
            }
            size_t nl = tk_uc_lower(a[k], lo);
            for (size_t j = 0; st == LP_OK && j < nl; j++) st = put(&w, lo[j], i, e);
        }
        if (cjk && st == LP_OK) st = put(&w, ' ', i, e);
    }
    if (st == LP_OK) st = flush(&w);
    tk_bytes_free(&w.word);
    return st;
}

/* ---- model ---- */

typedef struct { lp_tokenizer *t; tk_ids *out; } enc_ctx;

static lp_status enc_word(void *ctx, const char *w, size_t n, size_t begin, size_t end)
{
    (void)begin;
    (void)end;
    enc_ctx *c = ctx;
    return tk_bpe_word_cached(c->t, w, n, c->out);
}

lp_status tk_wp_encode(lp_tokenizer *t, const char *s, size_t n, tk_ids *out)
{
    enc_ctx c = { t, out };
    return tk_wp_words(t, s, n, enc_word, &c);
}

static int cont_byte(char c) { return ((unsigned char)c & 0xC0) == 0x80; }

lp_status tk_wp_word(lp_tokenizer *t, const char *w, size_t n, tk_ids *out)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += !cont_byte(w[i]);
    if (chars > t->wp_max_chars) return tk_ids_push(out, t->unk);
    size_t first = out->n, pl = t->wp_prefix_len, maxlen = t->max_tok_len;
    for (size_t start = 0; start < n;) {
        size_t pre = start ? pl : 0, end = n;
        if (pre + (end - start) > maxlen) { /* longer pieces are in no vocabulary */
            end = maxlen > pre ? start + (maxlen - pre) : start;
            while (end > start && cont_byte(w[end])) end--;
        }
        int32_t id = -1;
        while (end > start) {
            if (pre) { /* t->cat holds the prefix in front */
                memcpy(t->cat + pl, w + start, end - start);
                id = tk_lookup(t, t->cat, pl + end - start);
            } else {
                id = tk_lookup(t, w, end);
            }
            if (id >= 0) break;
            do end--; while (end > start && cont_byte(w[end]));
        }
        if (id < 0) { /* some part matches nothing: the whole word is unknown */
            out->n = first;
            return tk_ids_push(out, t->unk);
        }
        LP_TRY(tk_ids_push(out, id));
        start = end;
    }
    return LP_OK;
}

/* ---- decoder ---- */

/* Replaces every a by b (b no longer than a) in s[0..n), left to right; returns the new length. */
static size_t replace_in(char *s, size_t n, const char *a, const char *b)
{
    size_t an = strlen(a), bn = strlen(b), k = 0;
    for (size_t i = 0; i < n;) {
        if (i + an <= n && memcmp(s + i, a, an) == 0) {
            memcpy(s + k, b, bn);
            k += bn;
            i += an;
        } else {
            s[k++] = s[i++];
        }
    }
    return k;
}

/* tokenizers' WordPiece decoder, for a token that is not the first: "##aff" -> "aff", other
 * tokens get a space in front; then cleanup (per token, as tokenizers does). Without a WordPiece
 * decoder (none in the tokenizer.json) tokens are joined by spaces, as Hugging Face does. */
void tk_wp_decode_token(const lp_tokenizer *t, const char *s, size_t n, char *o, size_t *on)
{
    static const char *const cleanup[][2] = {
        { " .", "." }, { " ?", "?" }, { " !", "!" }, { " ,", "," }, { " ' ", "'" }, { " n't", "n't" },
        { " 'm", "'m" }, { " do not", " don't" }, { " 's", "'s" }, { " 've", "'ve" }, { " 're", "'re" },
    };
    size_t pl = t->wp_dec_prefix_len, k;
    if (t->wp_dec && n >= pl && memcmp(s, t->wp_dec_prefix, pl) == 0) {
        memcpy(o, s + pl, n - pl);
        k = n - pl;
    } else {
        o[0] = ' ';
        memcpy(o + 1, s, n);
        k = n + 1;
    }
    if (t->wp_dec && t->wp_dec_cleanup)
        for (size_t i = 0; i < sizeof cleanup / sizeof *cleanup; i++) k = replace_in(o, k, cleanup[i][0], cleanup[i][1]);
    *on = k;
}

/* ---- common to both loaders ---- */

typedef struct {
    int clean, cjk, strip, lower, nfd, strip_mn, split_ws, split_punct, dec, cleanup;
    const char *dec_prefix;
} wp_cfg;

static lp_status set_pat(const char *path, const char *what, const char *s, char *dst, size_t *len)
{
    size_t l = strlen(s);
    if (l >= TK_MAX_PAT)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: %s '%.40s' is longer than %d bytes", path, what, s, TK_MAX_PAT - 1);
    memcpy(dst, s, l + 1);
    *len = l;
    return LP_OK;
}

/* Before tk_finish (which decodes every token with these settings). */
static lp_status wp_setup(lp_tokenizer *t, const wp_cfg *c, const char *prefix, int max_chars)
{
    if (max_chars <= 0)
        return lp_error(LP_ERR_FORMAT, "%s: max_input_chars_per_word %d is not positive", t->path, max_chars);
    t->wp_max_chars = (size_t)max_chars;
    t->wp_clean = (uint8_t)c->clean;
    t->wp_cjk = (uint8_t)c->cjk;
    t->wp_strip = (uint8_t)c->strip;
    t->wp_lower = (uint8_t)c->lower;
    t->wp_split_ws = (uint8_t)c->split_ws;
    t->wp_split_punct = (uint8_t)c->split_punct;
    t->wp_dec = (uint8_t)c->dec;
    t->wp_dec_cleanup = (uint8_t)c->cleanup;
    LP_TRY(set_pat(t->path, "continuing_subword_prefix", prefix, t->wp_prefix, &t->wp_prefix_len));
    return set_pat(t->path, "decoder prefix", c->dec_prefix ? c->dec_prefix : prefix, t->wp_dec_prefix,
                   &t->wp_dec_prefix_len);
}

/* After tk_finish: the unknown token must exist; [CLS] / [SEP] by name when nothing set BOS /
 * EOS; the candidate buffer holds the prefix followed by a piece. */
static lp_status wp_finish(lp_tokenizer *t, const char *unk, const char *cls, const char *sep)
{
    t->unk = unk ? tk_lookup(t, unk, strlen(unk)) : -1;
    if (t->unk < 0)
        return lp_error(LP_ERR_FORMAT,
                        "%s: the unknown token '%.40s' is not in the vocabulary (WordPiece needs it for words it "
                        "cannot split)", t->path, unk ? unk : "");
    if (t->bos < 0 && cls) t->bos = tk_lookup(t, cls, strlen(cls));
    if (t->eos < 0 && sep) t->eos = tk_lookup(t, sep, strlen(sep));
    if (t->bos >= 0) t->tok_flags[t->bos] |= TK_FLAG_SPECIAL;
    if (t->eos >= 0) t->tok_flags[t->eos] |= TK_FLAG_SPECIAL;
    t->cat_cap = (t->max_tok_len > t->wp_prefix_len ? t->max_tok_len : t->wp_prefix_len) + 1;
    t->cat = lp_alloc(LP_MEM_DATA, t->cat_cap);
    if (!t->cat) return LP_ERR_NOMEM;
    memcpy(t->cat, t->wp_prefix, t->wp_prefix_len);
    return LP_OK;
}

/* ---- vocab.txt ---- */

/* The line starting at *pos ("\n", "\r\n" or "\r" ends it): bytes [*b, *e); *pos moves past it. */
static int next_line(const char *buf, size_t len, size_t *pos, size_t *b, size_t *e)
{
    size_t i = *pos;
    if (i >= len) return 0;
    *b = i;
    while (i < len && buf[i] != '\n' && buf[i] != '\r') i++;
    *e = i;
    if (i < len) i += buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n' ? 2 : 1;
    *pos = i;
    return 1;
}

static lp_status vocab_lines(lp_tokenizer *t, const char *path, const char *buf, size_t len, tk_map *seen)
{
    size_t pos = 0, b, e, lines = 0, used = 0;
    while (next_line(buf, len, &pos, &b, &e)) {
        lines++;
        if (e > b) used = lines; /* empty lines at the end do not count */
    }
    if (used == 0) return lp_error(LP_ERR_FORMAT, "%s: empty: no tokens (want one token a line)", path);
    if (used > TK_MAX_ID) return lp_error(LP_ERR_FORMAT, "%s: more than %d tokens", path, TK_MAX_ID);
    LP_TRY(tk_alloc_vocab(t, (int32_t)used));
    LP_TRY(tk_map_init(seen, used));
    pos = 0;
    for (size_t line = 1; line <= used && next_line(buf, len, &pos, &b, &e); line++) {
        if (e == b) continue; /* an id with no token */
        uint32_t cp;
        for (size_t i = b, l; i < e; i += l) {
            l = (unsigned char)buf[i] < 0x80 ? 1 : tk_utf8_decode((const unsigned char *)buf + i, e - i, &cp);
            if (!l) return lp_error(LP_ERR_FORMAT, "%s:%zu: not valid UTF-8 (byte %zu of the line)", path, line, i - b + 1);
        }
        int inserted;
        LP_TRY(tk_map_put(seen, buf + b, e - b, (int64_t)line, &inserted));
        if (!inserted)
            return lp_error(LP_ERR_FORMAT, "%s:%zu: token '%.*s' is already on line %lld", path, line,
                            (int)(e - b > 80 ? 80 : e - b), buf + b, (long long)*tk_map_get(seen, buf + b, e - b));
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", path, line);
        LP_TRY(tk_set_token(t, (int32_t)(line - 1), buf + b, e - b, where));
    }
    return LP_OK;
}

static lp_status load_vocab_txt(lp_tokenizer *t, const char *path, const lp_wordpiece_options *o)
{
    char *buf;
    size_t len;
    LP_TRY(tk_read_file(path, &buf, &len));
    tk_map seen = {0};
    lp_status st = vocab_lines(t, path, buf, len, &seen);
    lp_free(buf);
    const char *special[] = { o->unk_token, o->cls_token, o->sep_token, o->pad_token, o->mask_token };
    for (size_t i = 0; st == LP_OK && i < sizeof special / sizeof *special; i++) {
        const int64_t *line = special[i] && *special[i] ? tk_map_get(&seen, special[i], strlen(special[i])) : NULL;
        if (line) st = tk_add_added(t, (int32_t)(*line - 1), special[i], strlen(special[i]), 1, 0, 0);
    }
    tk_map_free(&seen);
    if (st != LP_OK) return st;
    wp_cfg c = { .clean = !!o->clean_text, .cjk = !!o->handle_chinese_chars, .lower = !!o->lowercase,
                 .strip = o->strip_accents < 0 ? !!o->lowercase : !!o->strip_accents, .split_ws = 1, .split_punct = 1,
                 .dec = 1, .cleanup = 1 };
    LP_TRY(wp_setup(t, &c, o->prefix ? o->prefix : "##", o->max_input_chars_per_word));
    LP_TRY(tk_finish(t));
    t->tpl_bos = t->tpl_eos = 1; /* [CLS] ... [SEP] (BertProcessing), when both exist */
    LP_TRY(wp_finish(t, o->unk_token, o->cls_token, o->sep_token));
    if (t->bos < 0 || t->eos < 0) t->tpl_bos = t->tpl_eos = 0;
    return LP_OK;
}

/* A *_token entry of tokenizer_config.json: a string or {"content": string}; NULL otherwise. */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *v = tk_jget(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_IsObject(v) ? tk_jstr(v, "content") : NULL;
}

static lp_status config_bool(const cJSON *cfg, const char *key, const char *path, int *out)
{
    const cJSON *v = tk_jget(cfg, key);
    if (!v) return LP_OK;
    if (!cJSON_IsBool(v)) return lp_error(LP_ERR_FORMAT, "%s: \"%s\" is not true or false", path, key);
    *out = cJSON_IsTrue(v);
    return LP_OK;
}

/* tokenizer_config.json beside vocab.txt, if there is one: options; *cfg holds their strings. */
static lp_status read_config(const char *vocab_path, lp_wordpiece_options *o, cJSON **cfg)
{
    char path[4096];
    const char *slash = strrchr(vocab_path, '/');
    int dir = slash ? (int)(slash - vocab_path) : 0;
    snprintf(path, sizeof path, "%.*s%stokenizer_config.json", dir, vocab_path, slash ? "/" : "");
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return LP_OK;
    LP_TRY(tk_json_load(path, cfg));
    if (!cJSON_IsObject(*cfg)) return lp_error(LP_ERR_FORMAT, "%s: expected a JSON object", path);
    LP_TRY(config_bool(*cfg, "do_lower_case", path, &o->lowercase));
    LP_TRY(config_bool(*cfg, "tokenize_chinese_chars", path, &o->handle_chinese_chars));
    if (tk_jget(*cfg, "strip_accents")) LP_TRY(config_bool(*cfg, "strip_accents", path, &o->strip_accents));
    const char *v;
    if ((v = config_token(*cfg, "unk_token"))) o->unk_token = v;
    if ((v = config_token(*cfg, "cls_token"))) o->cls_token = v;
    if ((v = config_token(*cfg, "sep_token"))) o->sep_token = v;
    if ((v = config_token(*cfg, "pad_token"))) o->pad_token = v;
    if ((v = config_token(*cfg, "mask_token"))) o->mask_token = v;
    return LP_OK;
}

lp_status lp_tokenizer_open_wordpiece(lp_tokenizer **out, const char *vocab_txt, const lp_wordpiece_options *opts)
{
    if (!out || !vocab_txt) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_open_wordpiece: NULL argument");
    *out = NULL;
    lp_wordpiece_options o;
    cJSON *cfg = NULL;
    lp_status st = LP_OK;
    if (opts) {
        o = *opts;
    } else {
        lp_tokenizer_wordpiece_defaults(&o);
        st = read_config(vocab_txt, &o, &cfg);
    }
    lp_tokenizer *t = NULL;
    if (st == LP_OK) {
        t = tk_new(LP_TOKENIZER_WORDPIECE, vocab_txt);
        st = t ? load_vocab_txt(t, vocab_txt, &o) : LP_ERR_NOMEM;
    }
    cJSON_Delete(cfg);
    if (st != LP_OK) {
        lp_tokenizer_close(t);
        return st;
    }
    *out = t;
    return LP_OK;
}

/* ---- tokenizer.json ---- */

static lp_status json_normalizer(const char *path, const cJSON *o, wp_cfg *c, int depth)
{
    if (!o) return LP_OK;
    const char *type = tk_jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: normalizer without a \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = tk_jget(o, "normalizers");
        if (depth > 4 || !cJSON_IsArray(list))
            return lp_error(LP_ERR_FORMAT, "%s: normalizer Sequence without a \"normalizers\" list", path);
        for (const cJSON *e = list->child; e; e = e->next) LP_TRY(json_normalizer(path, e, c, depth + 1));
        return LP_OK;
    }
    if (!strcmp(type, "BertNormalizer")) {
        c->clean = tk_jbool(o, "clean_text", 1);
        c->cjk = tk_jbool(o, "handle_chinese_chars", 1);
        c->lower = tk_jbool(o, "lowercase", 1);
        c->strip = tk_jbool(o, "strip_accents", c->lower); /* null: follows lowercase */
        return LP_OK;
    }
    if (!strcmp(type, "Lowercase")) { c->lower = 1; return LP_OK; }
    if (!strcmp(type, "NFD")) { c->nfd = 1; return LP_OK; }
    if (!strcmp(type, "StripAccents")) {
        if (!c->nfd) return lp_error(LP_ERR_UNSUPPORTED, "%s: StripAccents without NFD before it", path);
        c->strip_mn = 1;
        return LP_OK;
    }
    if (!strcmp(type, "NFC")) return LP_OK; /* input is taken as already NFC (documented) */
    return lp_error(LP_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported with a WordPiece model", path, type);
}

static lp_status json_pretok(const char *path, const cJSON *o, wp_cfg *c, int depth)
{
    if (!o) return LP_OK;
    const char *type = tk_jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = tk_jget(o, "pretokenizers");
        if (depth > 4 || !cJSON_IsArray(list))
            return lp_error(LP_ERR_FORMAT, "%s: pre_tokenizer Sequence without a \"pretokenizers\" list", path);
        for (const cJSON *e = list->child; e; e = e->next) LP_TRY(json_pretok(path, e, c, depth + 1));
        return LP_OK;
    }
    if (!strcmp(type, "BertPreTokenizer")) { c->split_ws = c->split_punct = 1; return LP_OK; }
    if (!strcmp(type, "WhitespaceSplit")) { c->split_ws = 1; return LP_OK; }
    if (!strcmp(type, "Punctuation")) {
        const char *behavior = tk_jstr(o, "behavior");
        if (behavior && strcmp(behavior, "Isolated"))
            return lp_error(LP_ERR_UNSUPPORTED, "%s: Punctuation behavior '%s' (only Isolated)", path, behavior);
        c->split_punct = 1;
        return LP_OK;
    }
    return lp_error(LP_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported with a WordPiece model", path,
                    type);
}

static lp_status json_decoder(const char *path, const cJSON *o, wp_cfg *c)
{
    if (!o) return LP_OK;
    const char *type = tk_jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: decoder without a \"type\"", path);
    if (strcmp(type, "WordPiece"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported with a WordPiece model", path, type);
    c->dec = 1;
    c->cleanup = tk_jbool(o, "cleanup", 1);
    c->dec_prefix = tk_jstr(o, "prefix");
    return LP_OK;
}

lp_status tk_wp_build_json(lp_tokenizer **out, const char *path, const cJSON *root)
{
    const cJSON *model = tk_jget(root, "model"), *vocab = tk_jget(model, "vocab");
    if (!cJSON_IsObject(vocab)) return lp_error(LP_ERR_FORMAT, "%s: model.vocab is not a {\"token\": id} object", path);
    const char *unk = tk_jstr(model, "unk_token"), *prefix = tk_jstr(model, "continuing_subword_prefix");
    const cJSON *mc = tk_jget(model, "max_input_chars_per_word");
    int max_chars = 100;
    if (mc) {
        if (!cJSON_IsNumber(mc) || !(mc->valuedouble >= 1 && mc->valuedouble <= 1e9) ||
            mc->valuedouble != (double)(int)mc->valuedouble)
            return lp_error(LP_ERR_FORMAT, "%s: model.max_input_chars_per_word is not a positive integer", path);
        max_chars = (int)mc->valuedouble;
    }
    wp_cfg c = {0};
    LP_TRY(json_normalizer(path, tk_jget(root, "normalizer"), &c, 0));
    if (c.nfd && !c.strip_mn)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: NFD normalizer without StripAccents (only the two together)", path);
    if (c.strip_mn) c.strip = 1;
    LP_TRY(json_pretok(path, tk_jget(root, "pre_tokenizer"), &c, 0));
    LP_TRY(json_decoder(path, tk_jget(root, "decoder"), &c));

    int32_t max_id = -1;
    LP_TRY(tk_json_vocab_max(vocab, path, &max_id));
    LP_TRY(tk_json_added_max(root, path, &max_id));
    lp_tokenizer *t = tk_new(LP_TOKENIZER_WORDPIECE, path);
    if (!t) return LP_ERR_NOMEM;
    *out = t;
    LP_TRY(tk_alloc_vocab(t, max_id + 1));
    LP_TRY(tk_json_vocab_set(t, vocab, path));
    LP_TRY(tk_json_added_set(t, root, path));
    LP_TRY(wp_setup(t, &c, prefix ? prefix : "##", max_chars));
    LP_TRY(tk_finish(t));
    tk_json_post(t, tk_jget(root, "post_processor"), 0);
    return wp_finish(t, unk ? unk : "[UNK]", "[CLS]", "[SEP]");
}
