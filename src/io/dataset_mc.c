/* Multiple-choice evaluation data (ARC / HellaSwag style) and its scoring by
 * the log-likelihood of each choice, as lm-evaluation-harness does it. */
#include "dataset_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/rng.h"

struct lp_mc_dataset {
    char *path;
    lp_arena arena;
    lp_mc_example *items;
    int64_t n, cap;
};

int64_t lp_mc_dataset_count(const lp_mc_dataset *ds) { return ds ? ds->n : 0; }

const lp_mc_example *lp_mc_dataset_get(const lp_mc_dataset *ds, int64_t i)
{
    return ds && i >= 0 && i < ds->n ? &ds->items[i] : NULL;
}

void lp_mc_dataset_free(lp_mc_dataset *ds)
{
    if (!ds) return;
    lp_free(ds->items);
    lp_arena_free(&ds->arena);
    lp_free(ds);
}

lp_mc_options lp_mc_options_defaults(void)
{
    lp_mc_options o;
    memset(&o, 0, sizeof o);
    o.context_template = "Question: {question}\nAnswer:";
    o.target_delimiter = " ";
    o.fewshot_delimiter = "\n\n";
    o.max_len = 2048;
    return o;
}

/* The question text: "question" (string, or ARC's {"stem": ...}), "ctx", "context". */
static const char *question_of(const cJSON *o, const cJSON **arc_choices)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
    *arc_choices = NULL;
    if (cJSON_IsString(q)) return q->valuestring;
    if (cJSON_IsObject(q)) {
        const cJSON *stem = cJSON_GetObjectItemCaseSensitive(q, "stem");
        *arc_choices = cJSON_GetObjectItemCaseSensitive(q, "choices");
        return cJSON_IsString(stem) ? stem->valuestring : NULL;
    }
    const char *s;
    if (lp_json_string(o, "ctx", &s) == 0) return s;
    if (lp_json_string(o, "context", &s) == 0) return s;
    return NULL;
}

#define MC_MAX_CHOICES 64

/* Collect choice texts (and labels) from an array of strings, an array of
 * {"text","label"} objects, or an object {"text": [..], "label": [..]}. */
static const char *collect_choices(const cJSON *c, const char **text, const char **label, int *n)
{
    *n = 0;
    if (cJSON_IsObject(c)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "label");
        if (!cJSON_IsArray(t)) return "\"choices\" object without a \"text\" array";
        int i = 0;
        for (const cJSON *x = t->child; x; x = x->next, i++) {
            if (i >= MC_MAX_CHOICES) return "more than 64 choices";
            if (!cJSON_IsString(x)) return "a choice is not a string";
            text[i] = x->valuestring;
            const cJSON *li = cJSON_IsArray(l) ? cJSON_GetArrayItem(l, i) : NULL;
            label[i] = cJSON_IsString(li) ? li->valuestring : NULL;
        }
        *n = i;
        return NULL;
    }
    if (!cJSON_IsArray(c)) return "\"choices\" is not an array";
    int i = 0;
    for (const cJSON *x = c->child; x; x = x->next, i++) {
        if (i >= MC_MAX_CHOICES) return "more than 64 choices";
        if (cJSON_IsString(x)) { text[i] = x->valuestring; label[i] = NULL; continue; }
        const char *s;
        if (cJSON_IsObject(x) && lp_json_string(x, "text", &s) == 0) {
            text[i] = s;
            label[i] = lp_json_string(x, "label", &s) == 0 ? s : NULL;
            continue;
        }
        return "a choice is neither a string nor {\"text\": ...}";
    }
    *n = i;
    return NULL;
}

/* Answer index from a number, a choice label, a letter or a digit string. */
static const char *answer_of(const cJSON *a, const char **label, int n, int *out)
{
    if (!a || cJSON_IsNull(a)) return "missing field \"answer\"";
    if (cJSON_IsNumber(a)) {
        if (!(fabs(a->valuedouble) < 2147483648.0)) return "answer is out of range"; /* before the cast (fuzzing) */
        if (a->valuedouble != (double)(int)a->valuedouble) return "answer is not an integer";
        *out = (int)a->valuedouble;
    } else if (cJSON_IsString(a)) {
        const char *s = a->valuestring;
        *out = -1;
        for (int i = 0; i < n; i++)
            if (label[i] && !strcmp(label[i], s)) { *out = i; return NULL; }
        if (s[0] >= 'A' && s[0] <= 'Z' && !s[1]) *out = s[0] - 'A';
        else if (s[0] >= 'a' && s[0] <= 'z' && !s[1]) *out = s[0] - 'a';
        else {
            char *e;
            long v = strtol(s, &e, 10);
            if (e == s || *e || v < 0 || v > MC_MAX_CHOICES) return "answer is not an index, a letter or a choice label";
            *out = (int)v;
        }
    } else {
        return "answer is neither a number nor a string";
    }
    if (*out < 0 || *out >= n) return "answer out of range";
    return NULL;
}

static lp_status add_mc(lp_mc_dataset *ds, const cJSON *o, int64_t line, const lp_data_options *opt,
                        lp_data_report *rep)
{
    const cJSON *arc_choices;
    const char *q = question_of(o, &arc_choices);
    const char *text[MC_MAX_CHOICES], *label[MC_MAX_CHOICES];
    int n = 0, ans = -1;
    const char *why = NULL;
    char msg[96];
    if (!q) why = "missing field \"question\" (or \"ctx\")";
    if (!why) {
        const cJSON *c = arc_choices ? arc_choices : cJSON_GetObjectItemCaseSensitive(o, "choices");
        if (!c) c = cJSON_GetObjectItemCaseSensitive(o, "endings");
        why = c ? collect_choices(c, text, label, &n) : "missing field \"choices\" (or \"endings\")";
    }
    if (!why && n < 2) { snprintf(msg, sizeof msg, "%d choice%s, need at least 2", n, n == 1 ? "" : "s"); why = msg; }
    if (!why) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        if (!a) a = cJSON_GetObjectItemCaseSensitive(o, "answerKey");
        if (!a) a = cJSON_GetObjectItemCaseSensitive(o, "label");
        why = answer_of(a, label, n, &ans);
        if (why && !strcmp(why, "answer out of range")) {
            snprintf(msg, sizeof msg, "answer out of range (%d choices)", n);
            why = msg;
        }
    }
    if (why) return lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, ds->path, line, "%s", why);
    LP_TRY(lp_data_grow((void **)&ds->items, &ds->cap, ds->n + 1, sizeof *ds->items));
    lp_mc_example *e = &ds->items[ds->n];
    const char **ch = lp_arena_alloc(&ds->arena, (size_t)n * sizeof(char *));
    e->question = lp_arena_strndup(&ds->arena, q, strlen(q));
    if (!ch || !e->question) return LP_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        ch[i] = lp_arena_strndup(&ds->arena, text[i], strlen(text[i]));
        if (!ch[i]) return LP_ERR_NOMEM;
    }
    e->choices = ch;
    e->n_choices = n;
    e->answer = ans;
    e->line = line;
    ds->n++;
    rep->examples++;
    return LP_OK;
}

lp_status lp_mc_dataset_load(lp_mc_dataset **out, const char *path, const lp_data_options *opt,
                             lp_data_report *rep)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_dataset_load: NULL argument");
    *out = NULL;
    lp_data_options defaults = lp_data_options_defaults();
    if (!opt) opt = &defaults;
    lp_data_report local;
    memset(&local, 0, sizeof local);
    if (!rep) rep = &local;
    lp_jsonl *r;
    LP_TRY(lp_jsonl_open(&r, path, opt->on_malformed, rep));
    lp_mc_dataset *ds = lp_alloc(LP_MEM_DATA, sizeof *ds);
    if (!ds || !(ds->path = lp_arena_strndup(&ds->arena, path, strlen(path)))) {
        lp_free(ds);
        lp_jsonl_close(r);
        return LP_ERR_NOMEM;
    }
    lp_status st;
    for (;;) {
        const cJSON *o;
        int64_t line;
        st = lp_jsonl_next(r, &o, &line);
        if (st != LP_OK || !o) break;
        st = add_mc(ds, o, line, opt, rep);
        if (st != LP_OK) break;
    }
    lp_jsonl_close(r);
    if (st == LP_OK && ds->n == 0)
        st = rep->skipped_malformed
           ? lp_error(LP_ERR_FORMAT, "%s: no usable examples (%lld malformed records skipped; first: %s)", path,
                      (long long)rep->skipped_malformed, rep->first_problem)
           : lp_error(LP_ERR_FORMAT, "%s: empty file (no examples)", path);
    if (st != LP_OK) { lp_mc_dataset_free(ds); return st; }
    *out = ds;
    return LP_OK;
}

/* ------------------------------------------------------------ requests */

typedef struct {
    char *s;
    int64_t n, cap;
} strbuf;

static lp_status sb_add(strbuf *b, const char *s, size_t n)
{
    LP_TRY(lp_data_grow((void **)&b->s, &b->cap, b->n + (int64_t)n + 1, 1));
    memcpy(b->s + b->n, s, n);
    b->n += (int64_t)n;
    b->s[b->n] = '\0';
    return LP_OK;
}

/* Append the template with every "{question}" replaced. */
static lp_status sb_context(strbuf *b, const char *tmpl, const char *question)
{
    static const char key[] = "{question}";
    for (const char *p = tmpl;;) {
        const char *hit = strstr(p, key);
        if (!hit) return sb_add(b, p, strlen(p));
        LP_TRY(sb_add(b, p, (size_t)(hit - p)));
        LP_TRY(sb_add(b, question, strlen(question)));
        p = hit + sizeof key - 1;
    }
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Context of example i with its few-shot prefix. */
static lp_status build_context(strbuf *b, const lp_mc_dataset *ds, int64_t i, const lp_mc_options *o, int64_t *shots)
{
    b->n = 0;
    LP_TRY(sb_add(b, "", 0));
    int32_t k = o->n_shot < ds->n - 1 ? o->n_shot : (int32_t)(ds->n - 1);
    if (k > 0) {
        lp_rng r;
        lp_rng_seed(&r, mix64(o->seed ^ mix64((uint64_t)i + 0x53686f74ULL /* "Shot" */)));
        LP_TRY(lp_rng_sample(&r, shots, (size_t)k, (size_t)(ds->n - 1)));
        for (int32_t s = 0; s < k; s++) {
            const lp_mc_example *e = &ds->items[shots[s] >= i ? shots[s] + 1 : shots[s]];
            LP_TRY(sb_context(b, o->context_template, e->question));
            LP_TRY(sb_add(b, o->target_delimiter, strlen(o->target_delimiter)));
            LP_TRY(sb_add(b, e->choices[e->answer], strlen(e->choices[e->answer])));
            LP_TRY(sb_add(b, o->fewshot_delimiter, strlen(o->fewshot_delimiter)));
        }
    }
    return sb_context(b, o->context_template, ds->items[i].question);
}

lp_status lp_mc_build_requests(lp_token_dataset *out, const lp_mc_dataset *ds, const lp_text_encoder *enc,
                               const lp_mc_options *opt, lp_data_report *rep)
{
    if (!out || !ds || !enc || !enc->encode) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_build_requests: NULL argument");
    lp_mc_options o = opt ? *opt : lp_mc_options_defaults();
    lp_mc_options d = lp_mc_options_defaults();
    if (!o.context_template) o.context_template = d.context_template;
    if (!o.target_delimiter) o.target_delimiter = d.target_delimiter;
    if (!o.fewshot_delimiter) o.fewshot_delimiter = d.fewshot_delimiter;
    if (o.max_len < 2) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_build_requests: max_len %d < 2", (int)o.max_len);
    if (o.n_shot < 0) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_build_requests: n_shot %d", (int)o.n_shot);
    lp_token_builder tb;
    lp_token_builder_begin(&tb, out);
    strbuf ctx = {0}, cont = {0};
    int32_t *ctx_ids = NULL, *seq = NULL; /* ctx_ids: only its length is used */
    int64_t *shots = o.n_shot > 0 ? lp_alloc_array(LP_MEM_SCRATCH, (size_t)o.n_shot, sizeof(int64_t)) : NULL;
    lp_status st = (o.n_shot > 0 && !shots) ? LP_ERR_NOMEM : LP_OK;
    for (int64_t i = 0; i < ds->n && st == LP_OK; i++) {
        const lp_mc_example *e = &ds->items[i];
        int64_t n_ctx = 0;
        st = build_context(&ctx, ds, i, &o, shots);
        if (st == LP_OK) { lp_free(ctx_ids); ctx_ids = NULL; st = lp_text_encode(enc, ctx.s, (size_t)ctx.n, &ctx_ids, &n_ctx); }
        for (int32_t c = 0; c < e->n_choices && st == LP_OK; c++) {
            /* lm-evaluation-harness: encode context + continuation as one string,
             * the context alone for its length; the rest is the continuation */
            cont.n = 0;
            st = sb_add(&cont, ctx.s, (size_t)ctx.n);
            if (st == LP_OK) st = sb_add(&cont, o.target_delimiter, strlen(o.target_delimiter));
            if (st == LP_OK) st = sb_add(&cont, e->choices[c], strlen(e->choices[c]));
            int32_t *whole = NULL;
            int64_t n_whole = 0;
            if (st == LP_OK) st = lp_text_encode(enc, cont.s, (size_t)cont.n, &whole, &n_whole);
            if (st != LP_OK) break;
            int64_t n_cont = n_whole - (n_ctx < n_whole ? n_ctx : n_whole);
            int64_t n = (enc->bos_id >= 0) + n_whole, cap = n > 0 ? n : 1;
            lp_free(seq);
            seq = lp_alloc_array(LP_MEM_SCRATCH, (size_t)cap, sizeof(int32_t));
            if (!seq) { lp_free(whole); st = LP_ERR_NOMEM; break; }
            int64_t k = 0;
            if (enc->bos_id >= 0) seq[k++] = enc->bos_id;
            if (n_whole) memcpy(seq + k, whole, (size_t)n_whole * sizeof(int32_t));
            lp_free(whole);
            int64_t n_prompt = n - n_cont, cut = 0;
            if (n > o.max_len) { /* keep the end: the choice and the nearest context */
                cut = n - o.max_len;
                if (rep) { rep->truncated++; rep->truncated_tokens += cut; }
            }
            n_prompt = n_prompt > cut ? n_prompt - cut : 0;
            st = lp_token_builder_add(&tb, seq + cut, n - cut, (int32_t)n_prompt, c, i);
        }
    }
    lp_free(ctx.s);
    lp_free(cont.s);
    lp_free(ctx_ids);
    lp_free(seq);
    lp_free(shots);
    return lp_token_builder_end(&tb, st);
}

lp_status lp_mc_score(const lp_mc_dataset *ds, const lp_token_dataset *req, const double *loglik,
                      double *acc, double *acc_norm, int32_t *pred)
{
    if (!ds || !req || (!loglik && req->n)) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_score: NULL argument");
    if (!req->source || !req->label) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_score: requests without source/label");
    int64_t hits = 0, hits_norm = 0, r = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        const lp_mc_example *e = &ds->items[i];
        int32_t best = -1, best_n = -1;
        double bv = 0, bvn = 0;
        for (int32_t c = 0; c < e->n_choices; c++, r++) {
            if (r >= req->n || req->source[r] != i || req->label[r] != c)
                return lp_error(LP_ERR_INVALID_ARG, "lp_mc_score: request %lld is not (example %lld, choice %d): "
                                "requests must come from lp_mc_build_requests on this dataset",
                                (long long)r, (long long)i, (int)c);
            double v = loglik[r];
            int64_t chars = lp_utf8_length(e->choices[c]);
            double vn = v / (double)(chars > 0 ? chars : 1);
            if (best < 0 || v > bv) { best = c; bv = v; }
            if (best_n < 0 || vn > bvn) { best_n = c; bvn = vn; }
        }
        hits += best == e->answer;
        hits_norm += best_n == e->answer;
        if (pred) pred[i] = best;
    }
    if (r != req->n) return lp_error(LP_ERR_INVALID_ARG, "lp_mc_score: %lld requests for %lld choices", (long long)req->n, (long long)r);
    if (acc) *acc = ds->n ? (double)hits / (double)ds->n : 0.0;
    if (acc_norm) *acc_norm = ds->n ? (double)hits_norm / (double)ds->n : 0.0;
    return LP_OK;
}
