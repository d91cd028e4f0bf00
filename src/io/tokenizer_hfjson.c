/* Hugging Face tokenizer.json with a BPE model (a WordPiece model goes to tokenizer_wordpiece.c).
 *
 * Byte-level flavour (GPT-2, Llama-3, Qwen): pre_tokenizer ByteLevel (its GPT-2 regex when
 * use_regex), optionally after Split regexes (Isolated) or Digits, in a Sequence; decoder
 * ByteLevel. SentencePiece flavour (Llama-2, TinyLlama, Mistral): normalizer Prepend("▁") /
 * Replace(" " -> "▁") or a Metaspace pre-tokenizer; byte_fallback <0xNN> tokens; decoder
 * Replace("▁" -> " ") + ByteFallback + Fuse + Strip, or Metaspace. merges as "a b" strings or
 * ["a", "b"] pairs; added_tokens (special or not) are matched in the text before the rest.
 * Anything else (Unigram/WordLevel models, other normalizers or pre-tokenizers) is
 * LP_ERR_UNSUPPORTED naming the file and the part. */
#include "io/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"

/* ---- JSON helpers (also used by the GPT-2 and WordPiece loaders) ---- */

lp_status tk_json_load(const char *path, cJSON **root)
{
    *root = NULL;
    char *buf;
    size_t len;
    LP_TRY(tk_read_file(path, &buf, &len));
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
    lp_free(buf);
    if (!r) return lp_error(LP_ERR_FORMAT, "%s: not valid JSON (parse error near byte %zu)", path, at);
    *root = r;
    return LP_OK;
}

static int json_id(const cJSON *v, int32_t *id)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TK_MAX_ID) || floor(d) != d) return 0;
    *id = (int32_t)d;
    return 1;
}

lp_status tk_json_vocab_max(const cJSON *obj, const char *path, int32_t *max_id)
{
    int32_t m = -1, id;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!json_id(c, &id))
            return lp_error(LP_ERR_FORMAT, "%s: token '%.80s' has an id that is not an integer in 0..%d", path,
                            c->string ? c->string : "", TK_MAX_ID - 1);
        if (id > m) m = id;
    }
    if (m < 0) return lp_error(LP_ERR_FORMAT, "%s: the vocabulary is empty", path);
    *max_id = m;
    return LP_OK;
}

lp_status tk_json_vocab_set(lp_tokenizer *t, const cJSON *obj, const char *path)
{
    int32_t id;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string || !json_id(c, &id)) return lp_error(LP_ERR_FORMAT, "%s: bad vocabulary entry", path);
        LP_TRY(tk_set_token(t, id, c->string, strlen(c->string), path));
    }
    return LP_OK;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

const char *tk_jstr(const cJSON *o, const char *key) { return jstr(o, key); }
int tk_jbool(const cJSON *o, const char *key, int def) { return jbool(o, key, def); }
const cJSON *tk_jget(const cJSON *o, const char *key) { return jget(o, key); }

static lp_status copy_pat(const char *path, const char *what, const char *s, char *dst, size_t cap, size_t *n)
{
    size_t l = s ? strlen(s) : 0;
    if (!s || l >= cap)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: %s string missing or longer than %zu bytes", path, what, cap - 1);
    memcpy(dst, s, l + 1);
    *n = l;
    return LP_OK;
}

/* ---- configuration parsed before the handle exists ---- */

typedef struct {
    const char *path;
    lp_tokenizer *t;        /* set on the second pass (patterns compile into it) */
    int bytelevel, bytelevel_seen_first, has_meta, dec_bytelevel;
} hf_cfg;

static lp_status parse_metaspace(hf_cfg *c, const cJSON *o, char *rep, size_t cap, size_t *rep_len, int *prepend,
                                 int *split)
{
    const char *r = jstr(o, "replacement");
    LP_TRY(copy_pat(c->path, "Metaspace replacement", r ? r : "\xe2\x96\x81", rep, cap, rep_len));
    const char *scheme = jstr(o, "prepend_scheme");
    if (scheme) {
        if (!strcmp(scheme, "always")) *prepend = TK_PREPEND_ALWAYS;
        else if (!strcmp(scheme, "first")) *prepend = TK_PREPEND_FIRST;
        else if (!strcmp(scheme, "never")) *prepend = TK_PREPEND_NEVER;
        else return lp_error(LP_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%s'", c->path, scheme);
    } else {
        *prepend = jbool(o, "add_prefix_space", 1) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
    }
    if (split) *split = jbool(o, "split", 1);
    return LP_OK;
}

static lp_status add_split(hf_cfg *c, const char *pat, size_t n, int literal)
{
    return c->t ? tk_compile_split(c->t, pat, n, literal) : LP_OK;
}

static lp_status parse_pretok(hf_cfg *c, const cJSON *o, int depth)
{
    if (!o) return LP_OK;
    const char *type = jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"", c->path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "pretokenizers");
        if (depth > 4 || !cJSON_IsArray(list))
            return lp_error(LP_ERR_FORMAT, "%s: pre_tokenizer Sequence without a \"pretokenizers\" list", c->path);
        for (const cJSON *e = list->child; e; e = e->next) LP_TRY(parse_pretok(c, e, depth + 1));
        return LP_OK;
    }
    int first = !c->bytelevel_seen_first;
    c->bytelevel_seen_first = 1;
    if (!strcmp(type, "ByteLevel")) {
        c->bytelevel = 1;
        if (jbool(o, "add_prefix_space", 0)) {
            if (!first)
                return lp_error(LP_ERR_UNSUPPORTED, "%s: ByteLevel add_prefix_space after another pre-tokenizer", c->path);
            if (c->t) c->t->prefix_space = 1;
        }
        if (jbool(o, "use_regex", 1)) LP_TRY(add_split(c, tk_gpt2_pattern, strlen(tk_gpt2_pattern), 0));
        return LP_OK;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = jget(o, "pattern");
        const char *behavior = jstr(o, "behavior");
        if (behavior && strcmp(behavior, "Isolated"))
            return lp_error(LP_ERR_UNSUPPORTED, "%s: Split behavior '%s' (only Isolated)", c->path, behavior);
        if (jbool(o, "invert", 0)) return lp_error(LP_ERR_UNSUPPORTED, "%s: inverted Split", c->path);
        const char *re = pat ? jstr(pat, "Regex") : NULL, *lit = pat ? jstr(pat, "String") : NULL;
        if (!re && !lit) return lp_error(LP_ERR_FORMAT, "%s: Split without a Regex or String pattern", c->path);
        return re ? add_split(c, re, strlen(re), 0) : add_split(c, lit, strlen(lit), 1);
    }
    if (!strcmp(type, "Digits")) {
        static const char one[] = "\\p{N}", many[] = "\\p{N}+";
        return jbool(o, "individual_digits", 0) ? add_split(c, one, sizeof one - 1, 0) : add_split(c, many, sizeof many - 1, 0);
    }
    if (!strcmp(type, "Metaspace")) {
        c->has_meta = 1;
        if (c->t) {
            lp_tokenizer *t = c->t;
            t->meta = 1;
            LP_TRY(parse_metaspace(c, o, t->meta_rep, sizeof t->meta_rep, &t->meta_rep_len, &t->meta_prepend, &t->meta_split));
        }
        return LP_OK;
    }
    return lp_error(LP_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", c->path, type);
}

static lp_status parse_normalizer(hf_cfg *c, const cJSON *o, int depth)
{
    if (!o) return LP_OK;
    const char *type = jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: normalizer without a \"type\"", c->path);
    lp_tokenizer *t = c->t;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "normalizers");
        if (depth > 4 || !cJSON_IsArray(list))
            return lp_error(LP_ERR_FORMAT, "%s: normalizer Sequence without a \"normalizers\" list", c->path);
        for (const cJSON *e = list->child; e; e = e->next) LP_TRY(parse_normalizer(c, e, depth + 1));
        return LP_OK;
    }
    if (!strcmp(type, "NFC")) return LP_OK; /* input is taken as already NFC (documented) */
    if (strcmp(type, "Prepend") && strcmp(type, "Replace"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported", c->path, type);
    if (!t) return LP_OK;
    if (t->kind != LP_TOKENIZER_HF_SENTENCEPIECE)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: normalizer '%s' with a byte-level tokenizer", c->path, type);
    if (t->n_norm >= TK_MAX_NORM) return lp_error(LP_ERR_UNSUPPORTED, "%s: more than %d normalizers", c->path, TK_MAX_NORM);
    tk_norm_op *op = &t->norm[t->n_norm];
    if (!strcmp(type, "Prepend")) {
        op->op = TK_NORM_PREPEND;
        LP_TRY(copy_pat(c->path, "Prepend", jstr(o, "prepend"), op->a, sizeof op->a, &op->alen));
    } else {
        const cJSON *pat = jget(o, "pattern");
        if (!pat || !jstr(pat, "String"))
            return lp_error(LP_ERR_UNSUPPORTED, "%s: Replace normalizer with a non-String pattern", c->path);
        op->op = TK_NORM_REPLACE;
        LP_TRY(copy_pat(c->path, "Replace pattern", jstr(pat, "String"), op->a, sizeof op->a, &op->alen));
        LP_TRY(copy_pat(c->path, "Replace content", jstr(o, "content"), op->b, sizeof op->b, &op->blen));
        if (!op->alen) return lp_error(LP_ERR_FORMAT, "%s: Replace normalizer with an empty pattern", c->path);
    }
    t->n_norm++;
    return LP_OK;
}

static lp_status parse_decoder(hf_cfg *c, const cJSON *o, int depth)
{
    if (!o) return LP_OK;
    const char *type = jstr(o, "type");
    if (!type) return lp_error(LP_ERR_FORMAT, "%s: decoder without a \"type\"", c->path);
    lp_tokenizer *t = c->t;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "decoders");
        if (depth > 4 || !cJSON_IsArray(list))
            return lp_error(LP_ERR_FORMAT, "%s: decoder Sequence without a \"decoders\" list", c->path);
        for (const cJSON *e = list->child; e; e = e->next) LP_TRY(parse_decoder(c, e, depth + 1));
        return LP_OK;
    }
    if (!strcmp(type, "ByteLevel")) { c->dec_bytelevel = 1; return LP_OK; }
    if (!strcmp(type, "Fuse")) return LP_OK;
    if (!t) return !strcmp(type, "ByteFallback") || !strcmp(type, "Replace") || !strcmp(type, "Strip") ||
                           !strcmp(type, "Metaspace")
                       ? LP_OK
                       : lp_error(LP_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported", c->path, type);
    if (!strcmp(type, "ByteFallback")) { t->dec_byte_fallback = 1; return LP_OK; }
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = jget(o, "pattern");
        const char *content = jstr(o, "content");
        if (!pat || !jstr(pat, "String") || !content || strcmp(content, " "))
            return lp_error(LP_ERR_UNSUPPORTED, "%s: decoder Replace other than String -> \" \"", c->path);
        t->dec_replace = 1;
        return copy_pat(c->path, "decoder Replace", jstr(pat, "String"), t->dec_rep, sizeof t->dec_rep, &t->dec_rep_len);
    }
    if (!strcmp(type, "Strip")) {
        const char *content = jstr(o, "content");
        const cJSON *start = jget(o, "start");
        if (content && !strcmp(content, " ") && cJSON_IsNumber(start) && start->valuedouble >= 1) t->dec_strip_space = 1;
        return LP_OK;
    }
    /* Metaspace decoder */
    int prepend = 0;
    t->dec_replace = 1;
    LP_TRY(parse_metaspace(c, o, t->dec_rep, sizeof t->dec_rep, &t->dec_rep_len, &prepend, NULL));
    if (prepend != TK_PREPEND_NEVER) t->dec_strip_space = 1;
    return LP_OK;
}

/* ---- special-token ids from the post-processor ---- */

static int32_t special_id(const lp_tokenizer *t, const cJSON *specials, const char *name)
{
    const cJSON *e = specials ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
    const cJSON *ids = e ? jget(e, "ids") : NULL;
    int32_t id;
    if (cJSON_IsArray(ids) && ids->child && json_id(ids->child, &id) && id < t->n_vocab) return id;
    return tk_lookup(t, name, strlen(name));
}

void tk_json_post(lp_tokenizer *t, const cJSON *o, int depth)
{
    const char *type = o ? jstr(o, "type") : NULL;
    if (!type || depth > 4) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "processors");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next) tk_json_post(t, e, depth + 1);
    } else if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = jget(o, "single"), *specials = jget(o, "special_tokens");
        int seen_seq = 0;
        for (const cJSON *e = cJSON_IsArray(single) ? single->child : NULL; e; e = e->next) {
            const cJSON *sp = jget(e, "SpecialToken");
            if (jget(e, "Sequence")) seen_seq = 1;
            const char *name = sp ? jstr(sp, "id") : NULL;
            if (!name) continue;
            int32_t id = special_id(t, specials, name);
            if (id < 0) continue;
            if (!seen_seq && t->bos < 0) { t->bos = id; t->tpl_bos = 1; }
            if (seen_seq && t->eos < 0) { t->eos = id; t->tpl_eos = 1; }
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = jget(o, "cls"), *sep = jget(o, "sep");
        int32_t id;
        if (cJSON_IsArray(cls) && cJSON_GetArraySize(cls) == 2 && json_id(cJSON_GetArrayItem(cls, 1), &id) &&
            id < t->n_vocab && t->bos < 0) {
            t->bos = id;
            t->tpl_bos = 1;
        }
        if (cJSON_IsArray(sep) && cJSON_GetArraySize(sep) == 2 && json_id(cJSON_GetArrayItem(sep, 1), &id) &&
            id < t->n_vocab && t->eos < 0) {
            t->eos = id;
            t->tpl_eos = 1;
        }
    }
}

static void guess_bos_eos(lp_tokenizer *t)
{
    static const char *const bos[] = { "<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "<|endoftext|>" };
    static const char *const eos[] = { "</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>" };
    for (size_t i = 0; t->bos < 0 && i < sizeof bos / sizeof *bos; i++) t->bos = tk_lookup(t, bos[i], strlen(bos[i]));
    for (size_t i = 0; t->eos < 0 && i < sizeof eos / sizeof *eos; i++) t->eos = tk_lookup(t, eos[i], strlen(eos[i]));
}

/* ---- merges ---- */

static lp_status load_merges(lp_tokenizer *t, const cJSON *merges)
{
    size_t n = (size_t)cJSON_GetArraySize(merges);
    LP_TRY(tk_pairmap_init(&t->merges, n));
    size_t i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a = NULL, *b = NULL;
        size_t an = 0, bn = 0;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return lp_error(LP_ERR_FORMAT, "%s: merge %zu '%.80s' is not two tokens separated by one space", t->path, i, s);
            a = s;
            an = (size_t)(sp - s);
            b = sp + 1;
            bn = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring;
            b = m->child->next->valuestring;
            an = strlen(a);
            bn = strlen(b);
            if (!an || !bn) return lp_error(LP_ERR_FORMAT, "%s: merge %zu has an empty token", t->path, i);
        } else {
            return lp_error(LP_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", t->path, i);
        }
        LP_TRY(tk_add_merge(t, a, an, b, bn, (int32_t)i, t->path, i, 1));
    }
    return LP_OK;
}

/* ---- added tokens ---- */

lp_status tk_json_added_max(const cJSON *root, const char *path, int32_t *max_id)
{
    const cJSON *added = jget(root, "added_tokens");
    int32_t id;
    if (added && !cJSON_IsArray(added)) return lp_error(LP_ERR_FORMAT, "%s: added_tokens is not a list", path);
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        if (!json_id(jget(a, "id"), &id) || !jstr(a, "content"))
            return lp_error(LP_ERR_FORMAT, "%s: an added token lacks an integer id or a content string", path);
        if (id > *max_id) *max_id = id;
    }
    return LP_OK;
}

lp_status tk_json_added_set(lp_tokenizer *t, const cJSON *root, const char *path)
{
    const cJSON *added = jget(root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const char *content = jstr(a, "content");
        int32_t id = -1;
        if (!content || !json_id(jget(a, "id"), &id)) return lp_error(LP_ERR_FORMAT, "%s: bad added token", path);
        LP_TRY(tk_add_added(t, id, content, strlen(content), jbool(a, "special", 0), jbool(a, "lstrip", 0),
                            jbool(a, "rstrip", 0)));
    }
    return LP_OK;
}

/* ---- open ---- */

static lp_status build(lp_tokenizer **out, const char *path, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return lp_error(LP_ERR_FORMAT, "%s: expected a JSON object at the top", path);
    const cJSON *model = jget(root, "model");
    if (!cJSON_IsObject(model)) return lp_error(LP_ERR_FORMAT, "%s: no \"model\" object", path);
    const char *mtype = jstr(model, "type");
    if (mtype && !strcmp(mtype, "WordPiece")) return tk_wp_build_json(out, path, root);
    if (mtype && strcmp(mtype, "BPE"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE and WordPiece)", path, mtype);
    const cJSON *vocab = jget(model, "vocab"), *merges = jget(model, "merges");
    if (!cJSON_IsObject(vocab)) return lp_error(LP_ERR_FORMAT, "%s: model.vocab is not a {\"token\": id} object", path);
    if (merges && !cJSON_IsArray(merges)) return lp_error(LP_ERR_FORMAT, "%s: model.merges is not a list", path);
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: BPE continuing_subword_prefix / end_of_word_suffix", path);

    /* first pass: flavour, and every unsupported part, before allocating */
    hf_cfg cfg = { .path = path };
    LP_TRY(parse_pretok(&cfg, jget(root, "pre_tokenizer"), 0));
    LP_TRY(parse_normalizer(&cfg, jget(root, "normalizer"), 0));
    LP_TRY(parse_decoder(&cfg, jget(root, "decoder"), 0));
    int bytelevel = cfg.bytelevel || cfg.dec_bytelevel;
    if (bytelevel && cfg.has_meta) return lp_error(LP_ERR_UNSUPPORTED, "%s: both ByteLevel and Metaspace", path);

    int32_t max_id = -1;
    LP_TRY(tk_json_vocab_max(vocab, path, &max_id));
    LP_TRY(tk_json_added_max(root, path, &max_id));

    lp_tokenizer *t = tk_new(bytelevel ? LP_TOKENIZER_HF_BYTELEVEL : LP_TOKENIZER_HF_SENTENCEPIECE, path);
    if (!t) return LP_ERR_NOMEM;
    *out = t;
    cfg = (hf_cfg){ .path = path, .t = t };
    LP_TRY(tk_alloc_vocab(t, max_id + 1));
    LP_TRY(tk_json_vocab_set(t, vocab, path));
    LP_TRY(tk_json_added_set(t, root, path));
    LP_TRY(parse_pretok(&cfg, jget(root, "pre_tokenizer"), 0));
    LP_TRY(parse_normalizer(&cfg, jget(root, "normalizer"), 0));
    LP_TRY(parse_decoder(&cfg, jget(root, "decoder"), 0));
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    if (!bytelevel) {
        if (t->byte_fallback) t->dec_byte_fallback = 1;
        if (!jget(root, "decoder")) { /* no decoder given: undo what the encoder did */
            const char *rep = t->meta ? t->meta_rep : "\xe2\x96\x81";
            t->dec_replace = 1;
            LP_TRY(copy_pat(path, "replacement", rep, t->dec_rep, sizeof t->dec_rep, &t->dec_rep_len));
        }
    }
    LP_TRY(tk_finish(t));
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = tk_lookup(t, unk, strlen(unk));
    if (merges) LP_TRY(load_merges(t, merges));
    else LP_TRY(tk_pairmap_init(&t->merges, 0));
    tk_json_post(t, jget(root, "post_processor"), 0);
    guess_bos_eos(t);
    if (t->bos >= 0) t->tok_flags[t->bos] |= TK_FLAG_SPECIAL;
    if (t->eos >= 0) t->tok_flags[t->eos] |= TK_FLAG_SPECIAL;
    return LP_OK;
}

lp_status lp_tokenizer_open_hf(lp_tokenizer **out, const char *tokenizer_json)
{
    if (!out || !tokenizer_json) return lp_error(LP_ERR_INVALID_ARG, "lp_tokenizer_open_hf: NULL argument");
    *out = NULL;
    cJSON *root = NULL;
    LP_TRY(tk_json_load(tokenizer_json, &root));
    lp_tokenizer *t = NULL;
    lp_status st = build(&t, tokenizer_json, root);
    cJSON_Delete(root);
    if (st != LP_OK) {
        lp_tokenizer_close(t);
        return st;
    }
    *out = t;
    return LP_OK;
}
