/* Sequence-classification data: TSV, CSV and JSONL {"text","label"}.
 *
 * Labels are interned while reading (a small table of distinct names); with
 * no fixed label set the table is sorted at the end (numerically when every
 * label is an integer) and example labels are remapped to sorted indices. */
#include "dataset_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "leanprop/alloc.h"

typedef struct {
    lp_text_dataset *ds;
    const lp_data_options *opt;
    lp_data_report *rep;
    char **names;           /* distinct labels seen (arena), or the fixed set */
    int64_t n_names, cap_names;
    int fixed;
} cls_loader;

/* Label index for name, interning it unless the set is fixed; -1 = unknown. */
static lp_status intern_label(cls_loader *L, const char *name, size_t len, int32_t *out)
{
    for (int64_t i = 0; i < L->n_names; i++)
        if (strlen(L->names[i]) == len && !memcmp(L->names[i], name, len)) { *out = (int32_t)i; return LP_OK; }
    if (L->fixed) { *out = -1; return LP_OK; }
    if (L->n_names >= INT32_MAX) return lp_error(LP_ERR_FORMAT, "%s: too many distinct labels", L->ds->path);
    LP_TRY(lp_data_grow((void **)&L->names, &L->cap_names, L->n_names + 1, sizeof *L->names));
    char *s = lp_arena_strndup(&L->ds->arena, name, len);
    if (!s) return LP_ERR_NOMEM;
    L->names[L->n_names] = s;
    *out = (int32_t)L->n_names++;
    return LP_OK;
}

static void known_labels(const cls_loader *L, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < L->n_names && i < 16 && off < size; i++) {
        int w = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", L->names[i]);
        if (w < 0) break;
        off += (size_t)w;
    }
    if (L->n_names > 16 && off < size) snprintf(buf + off, size - off, ", ...");
}

static lp_status add_example(cls_loader *L, const char *text, size_t text_len, const char *label, size_t label_len,
                             int64_t line)
{
    lp_data_report *rep = L->rep;
    if (label_len == 0)
        return lp_data_problem(rep, L->opt->on_malformed, &rep->skipped_malformed, L->ds->path, line, "empty label");
    int32_t idx;
    LP_TRY(intern_label(L, label, label_len, &idx));
    if (idx < 0) {
        char known[256];
        known_labels(L, known, sizeof known);
        return lp_data_problem(rep, L->opt->on_unknown_label, &rep->skipped_unknown_label, L->ds->path, line,
                               "unknown label \"%.*s\" (labels: %s)", (int)(label_len > 64 ? 64 : label_len), label,
                               known);
    }
    LP_TRY(lp_text_dataset_add(L->ds, NULL, 0, text, text_len, idx, line));
    rep->examples++;
    return LP_OK;
}

/* ------------------------------------------------------------------ TSV */

static lp_status load_tsv(cls_loader *L, char *data, size_t len)
{
    const char *path = L->ds->path;
    lp_data_report *rep = L->rep;
    int64_t line = 0;
    int header_done = 0;
    int32_t text_col = -1, label_col = -1, n_cols = 0;
    char *p = data, *end = data + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        if (le == p) { p = next; continue; }
        *le = '\0';
        if (!header_done) { /* a header names both columns */
            header_done = 1;
            int32_t col = 0;
            for (char *f = p;; col++) {
                char *tab = strchr(f, '\t');
                size_t fl = tab ? (size_t)(tab - f) : strlen(f);
                if (fl == strlen(L->opt->text_field) && !memcmp(f, L->opt->text_field, fl)) text_col = col;
                if (fl == strlen(L->opt->label_field) && !memcmp(f, L->opt->label_field, fl)) label_col = col;
                if (!tab) break;
                f = tab + 1;
            }
            n_cols = col + 1;
            if (text_col >= 0 && label_col >= 0) { p = next; continue; }
            text_col = label_col = -1;
        }
        rep->records++;
        if (text_col < 0) { /* label<TAB>text */
            char *tab = strchr(p, '\t');
            if (!tab) {
                LP_TRY(lp_data_problem(rep, L->opt->on_malformed, &rep->skipped_malformed, path, line,
                                       "no tab between label and text"));
            } else {
                LP_TRY(add_example(L, tab + 1, strlen(tab + 1), p, (size_t)(tab - p), line));
            }
        } else {
            const char *tf = NULL, *lf = NULL;
            size_t tl = 0, ll = 0;
            int32_t col = 0;
            for (char *f = p;; col++) {
                char *tab = strchr(f, '\t');
                size_t fl = tab ? (size_t)(tab - f) : strlen(f);
                if (col == text_col) { tf = f; tl = fl; }
                if (col == label_col) { lf = f; ll = fl; }
                if (!tab) break;
                f = tab + 1;
            }
            if (!tf || !lf) {
                LP_TRY(lp_data_problem(rep, L->opt->on_malformed, &rep->skipped_malformed, path, line,
                                       "%d fields, the header has %d (missing %s)", (int)col + 1, (int)n_cols,
                                       !lf ? L->opt->label_field : L->opt->text_field));
            } else {
                LP_TRY(add_example(L, tf, tl, lf, ll, line));
            }
        }
        p = next;
    }
    return LP_OK;
}

/* ------------------------------------------------------------------ CSV */

static lp_status load_csv(cls_loader *L, const char *data, size_t len)
{
    const char *path = L->ds->path;
    lp_data_report *rep = L->rep;
    lp_csv *c;
    LP_TRY(lp_csv_open_buffer(&c, data, len, path, ','));
    const char *const *f;
    const size_t *fl;
    int32_t nf, text_col = -1, label_col = -1, n_cols;
    int64_t line;
    lp_status st = lp_csv_next(c, &f, &fl, &nf, &line);
    if (st == LP_OK && nf == 0) st = lp_error(LP_ERR_FORMAT, "%s: empty file (no header)", path);
    if (st == LP_OK) {
        for (int32_t i = 0; i < nf; i++) {
            if (!strcmp(f[i], L->opt->text_field)) text_col = i;
            if (!strcmp(f[i], L->opt->label_field)) label_col = i;
        }
        if (text_col < 0 || label_col < 0)
            st = lp_error(LP_ERR_FORMAT, "%s:%lld: the header has no \"%s\" column (columns must include \"%s\" and \"%s\")",
                          path, (long long)line, text_col < 0 ? L->opt->text_field : L->opt->label_field,
                          L->opt->text_field, L->opt->label_field);
    }
    n_cols = nf;
    while (st == LP_OK) {
        st = lp_csv_next(c, &f, &fl, &nf, &line);
        if (st != LP_OK || nf == 0) break;
        rep->records++;
        if (nf != n_cols)
            st = lp_data_problem(rep, L->opt->on_malformed, &rep->skipped_malformed, path, line,
                                 "%d fields, the header has %d", (int)nf, (int)n_cols);
        else
            st = add_example(L, f[text_col], fl[text_col], f[label_col], fl[label_col], line);
    }
    lp_csv_close(c);
    return st;
}

/* ---------------------------------------------------------------- JSONL */

static lp_status load_jsonl(cls_loader *L)
{
    const char *path = L->ds->path;
    lp_data_report *rep = L->rep;
    const lp_data_options *opt = L->opt;
    lp_jsonl *r;
    LP_TRY(lp_jsonl_open(&r, path, opt->on_malformed, rep));
    lp_status st = LP_OK;
    while (st == LP_OK) {
        const cJSON *o;
        int64_t line;
        st = lp_jsonl_next(r, &o, &line);
        if (st != LP_OK || !o) break;
        const char *text = NULL;
        int tr = lp_json_string(o, opt->text_field, &text);
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(o, opt->label_field);
        char num[32];
        const char *label = NULL;
        if (cJSON_IsString(lab)) label = lab->valuestring;
        else if (cJSON_IsNumber(lab) && fabs(lab->valuedouble) < 9e18 && /* range first: the cast (found by fuzzing) */
                 lab->valuedouble == (double)(long long)lab->valuedouble) {
            snprintf(num, sizeof num, "%lld", (long long)lab->valuedouble);
            label = num;
        } else if (cJSON_IsBool(lab)) label = cJSON_IsTrue(lab) ? "true" : "false";
        if (tr != 0)
            st = lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, path, line,
                                 tr == 1 ? "missing field \"%s\"" : "field \"%s\" is not a string", opt->text_field);
        else if (!label && (!lab || cJSON_IsNull(lab)))
            st = lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, path, line,
                                 "missing field \"%s\"", opt->label_field);
        else if (!label)
            st = lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, path, line,
                                 "field \"%s\" is %s, expected a string or an integer", opt->label_field,
                                 lp_json_type_name(lab));
        else
            st = add_example(L, text, strlen(text), label, strlen(label), line);
    }
    lp_jsonl_close(r);
    return st;
}

/* ------------------------------------------------------------ label order */

static int all_integers(char **names, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        char *e;
        errno = 0;
        (void)strtoll(names[i], &e, 10);
        if (e == names[i] || *e || errno) return 0;
    }
    return 1;
}

static int label_less(const char *x, const char *y, int numeric)
{
    if (numeric) return strtoll(x, NULL, 10) < strtoll(y, NULL, 10);
    return strcmp(x, y) < 0;
}

/* Insertion sort: label sets are small, and qsort has no context argument. */
static void sort_labels(char **v, int64_t n, int numeric)
{
    for (int64_t i = 1; i < n; i++) {
        char *x = v[i];
        int64_t j = i;
        while (j > 0 && label_less(x, v[j - 1], numeric)) { v[j] = v[j - 1]; j--; }
        v[j] = x;
    }
}

static lp_status finish_labels(cls_loader *L)
{
    lp_text_dataset *ds = L->ds;
    int64_t n = L->n_names;
    ds->labels = lp_arena_alloc(&ds->arena, (size_t)(n ? n : 1) * sizeof(char *));
    if (!ds->labels) return LP_ERR_NOMEM;
    if (L->fixed) {
        for (int64_t i = 0; i < n; i++) ds->labels[i] = L->names[i];
        ds->n_labels = (int32_t)n;
        return LP_OK;
    }
    int32_t *map = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(n ? n : 1), sizeof(int32_t));
    if (!map) return LP_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) ds->labels[i] = L->names[i];
    sort_labels(ds->labels, n, all_integers(ds->labels, n));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (ds->labels[j] == L->names[i]) { map[i] = (int32_t)j; break; }
    for (int64_t i = 0; i < ds->n; i++) ds->items[i].label = map[ds->items[i].label];
    lp_free(map);
    ds->n_labels = (int32_t)n;
    return LP_OK;
}

static lp_cls_format format_from_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return LP_CLS_FORMAT_AUTO;
    if (!strcasecmp(dot, ".tsv")) return LP_CLS_FORMAT_TSV;
    if (!strcasecmp(dot, ".csv")) return LP_CLS_FORMAT_CSV;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json") || !strcasecmp(dot, ".ndjson"))
        return LP_CLS_FORMAT_JSONL;
    return LP_CLS_FORMAT_AUTO;
}

lp_status lp_cls_dataset_load(lp_text_dataset **out, const char *path, lp_cls_format format,
                              const lp_data_options *opt, lp_data_report *rep)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_cls_dataset_load: NULL argument");
    *out = NULL;
    lp_data_options defaults = lp_data_options_defaults();
    if (!opt) opt = &defaults;
    lp_data_options o = *opt;
    if (!o.text_field) o.text_field = "text";
    if (!o.label_field) o.label_field = "label";
    lp_data_report local;
    memset(&local, 0, sizeof local);
    if (!rep) rep = &local;
    if (format == LP_CLS_FORMAT_AUTO) format = format_from_path(path);
    if (format == LP_CLS_FORMAT_AUTO)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: cannot tell the format from the name (use .tsv, .csv or .jsonl)", path);
    cls_loader L;
    memset(&L, 0, sizeof L);
    L.opt = &o;
    L.rep = rep;
    LP_TRY(lp_text_dataset_new(&L.ds, path));
    lp_status st = LP_OK;
    if (o.labels) {
        if (o.n_labels <= 0) st = lp_error(LP_ERR_INVALID_ARG, "%s: empty fixed label set", path);
        for (int32_t i = 0; st == LP_OK && i < o.n_labels; i++) {
            int32_t idx;
            st = intern_label(&L, o.labels[i], strlen(o.labels[i]), &idx);
            if (st == LP_OK && idx != i)
                st = lp_error(LP_ERR_INVALID_ARG, "label \"%s\" given twice", o.labels[i]);
        }
        L.fixed = 1;
    }
    if (st == LP_OK) {
        if (format == LP_CLS_FORMAT_JSONL) {
            st = load_jsonl(&L);
        } else {
            char *data;
            size_t len;
            st = lp_data_read_file(path, &data, &len);
            if (st == LP_OK) {
                st = format == LP_CLS_FORMAT_TSV ? load_tsv(&L, data, len) : load_csv(&L, data, len);
                lp_free(data);
            }
        }
    }
    if (st == LP_OK && L.ds->n == 0) {
        if (rep->skipped_malformed || rep->skipped_unknown_label)
            st = lp_error(LP_ERR_FORMAT, "%s: no usable examples (%lld skipped; first: %s)", path,
                          (long long)(rep->skipped_malformed + rep->skipped_unknown_label), rep->first_problem);
        else
            st = lp_error(LP_ERR_FORMAT, "%s: empty file (no examples)", path);
    }
    if (st == LP_OK) st = finish_labels(&L);
    lp_free(L.names);
    if (st != LP_OK) { lp_text_dataset_free(L.ds); return st; }
    *out = L.ds;
    return LP_OK;
}
