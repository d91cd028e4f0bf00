/* Dataset plumbing: options, reports, the string arena, growable arrays, the
 * text-dataset container, label lists, epoch orders and seeded splits. */
#include "dataset_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/rng.h"

lp_data_options lp_data_options_defaults(void)
{
    lp_data_options o;
    memset(&o, 0, sizeof o);
    o.on_malformed = LP_BAD_INPUT_STOP;
    o.on_unknown_label = LP_BAD_INPUT_STOP;
    o.text_field = "text";
    o.label_field = "label";
    return o;
}

void lp_data_report_format(const lp_data_report *rep, char *buf, size_t size)
{
    if (!buf || size == 0) return;
    buf[0] = '\0';
    if (!rep) return;
    size_t off = 0;
#define APPEND(...) do { if (off < size) { int w__ = snprintf(buf + off, size - off, __VA_ARGS__); \
    if (w__ > 0) off += (size_t)w__; } } while (0)
    const char *sep = "";
    if (rep->skipped_malformed) { APPEND("%lld malformed records skipped", (long long)rep->skipped_malformed); sep = "; "; }
    if (rep->skipped_unknown_label) {
        APPEND("%s%lld records with unknown labels skipped", sep, (long long)rep->skipped_unknown_label);
        sep = "; ";
    }
    if (rep->first_problem[0] && (rep->skipped_malformed || rep->skipped_unknown_label))
        APPEND(" (first: %s)", rep->first_problem);
    if (rep->truncated) {
        APPEND("%s%lld sequences truncated to the maximum length (%lld tokens dropped)", sep,
               (long long)rep->truncated, (long long)rep->truncated_tokens);
        sep = "; ";
    }
    if (rep->dropped_no_target)
        APPEND("%s%lld sequences dropped: no trained token left after truncation", sep, (long long)rep->dropped_no_target);
#undef APPEND
}

lp_status lp_data_problem(lp_data_report *rep, lp_bad_input_policy pol, int64_t *counter, const char *path,
                          int64_t line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pol != LP_BAD_INPUT_SKIP) return lp_error(LP_ERR_FORMAT, "%s:%lld: %s", path, (long long)line, msg);
    if (counter) (*counter)++;
    if (rep && !rep->first_problem[0])
        snprintf(rep->first_problem, sizeof rep->first_problem, "%s:%lld: %s", path, (long long)line, msg);
    return LP_OK;
}

/* ---------------------------------------------------------------- arena */

struct lp_arena_chunk {
    lp_arena_chunk *next;
    size_t used, cap;
    char data[];
};

#define ARENA_CHUNK (1u << 20)

void *lp_arena_alloc(lp_arena *a, size_t bytes)
{
    size_t need = (bytes + 7) & ~(size_t)7;
    if (need < bytes) { lp_error(LP_ERR_NOMEM, "arena: %zu bytes overflows", bytes); return NULL; }
    lp_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        c = lp_alloc(LP_MEM_DATA, sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

char *lp_arena_strndup(lp_arena *a, const char *s, size_t n)
{
    char *d = lp_arena_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void lp_arena_free(lp_arena *a)
{
    lp_arena_chunk *c = a->head;
    while (c) {
        lp_arena_chunk *next = c->next;
        lp_free(c);
        c = next;
    }
    a->head = NULL;
}

lp_status lp_data_grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap && *p) return LP_OK;
    int64_t nc = *cap > 0 ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = *p ? lp_realloc(*p, (size_t)nc * elem) : lp_alloc_array(LP_MEM_DATA, (size_t)nc, elem);
    if (!q) return LP_ERR_NOMEM;
    *p = q;
    *cap = nc;
    return LP_OK;
}

lp_status lp_data_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = lp_alloc(LP_MEM_DATA, cap);
    if (!buf) { fclose(f); return LP_ERR_NOMEM; }
    for (;;) {
        if (cap - n < 2) {
            char *nb = lp_realloc(buf, cap * 2);
            if (!nb) { lp_free(buf); fclose(f); return LP_ERR_NOMEM; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { lp_free(buf); return lp_error(LP_ERR_IO, "%s: read error", path); }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return LP_OK;
}

int64_t lp_utf8_length(const char *s)
{
    int64_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* --------------------------------------------------------- text dataset */

lp_status lp_text_dataset_new(lp_text_dataset **out, const char *path)
{
    *out = NULL;
    lp_text_dataset *ds = lp_alloc(LP_MEM_DATA, sizeof *ds);
    if (!ds) return LP_ERR_NOMEM;
    ds->path = lp_arena_strndup(&ds->arena, path, strlen(path));
    if (!ds->path) { lp_free(ds); return LP_ERR_NOMEM; }
    *out = ds;
    return LP_OK;
}

lp_status lp_text_dataset_add(lp_text_dataset *ds, const char *prompt, size_t prompt_len, const char *text,
                              size_t text_len, int32_t label, int64_t line)
{
    LP_TRY(lp_data_grow((void **)&ds->items, &ds->cap, ds->n + 1, sizeof *ds->items));
    lp_text_example *e = &ds->items[ds->n];
    e->prompt = prompt ? lp_arena_strndup(&ds->arena, prompt, prompt_len) : NULL;
    e->text = lp_arena_strndup(&ds->arena, text, text_len);
    if ((prompt && !e->prompt) || !e->text) return LP_ERR_NOMEM;
    e->label = label;
    e->line = line;
    ds->n++;
    return LP_OK;
}

int64_t lp_text_dataset_count(const lp_text_dataset *ds) { return ds ? ds->n : 0; }

const lp_text_example *lp_text_dataset_get(const lp_text_dataset *ds, int64_t i)
{
    return ds && i >= 0 && i < ds->n ? &ds->items[i] : NULL;
}

const char *lp_text_dataset_path(const lp_text_dataset *ds) { return ds ? ds->path : ""; }

const char *const *lp_text_dataset_labels(const lp_text_dataset *ds, int32_t *n_labels)
{
    if (n_labels) *n_labels = ds ? ds->n_labels : 0;
    return ds ? (const char *const *)ds->labels : NULL;
}

void lp_text_dataset_free(lp_text_dataset *ds)
{
    if (!ds) return;
    lp_free(ds->items);
    lp_arena_free(&ds->arena);
    lp_free(ds);
}

lp_status lp_data_parse_label_list(const char *list, char ***names, int32_t *n)
{
    if (!list || !names || !n) return lp_error(LP_ERR_INVALID_ARG, "label list: NULL argument");
    *names = NULL;
    *n = 0;
    size_t len = strlen(list);
    int32_t count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    /* one block: pointer table, then the strings */
    char **tab = lp_alloc(LP_MEM_DATA, (size_t)count * sizeof(char *) + len + 1);
    if (!tab) return LP_ERR_NOMEM;
    char *s = (char *)(tab + count);
    memcpy(s, list, len + 1);
    int32_t k = 0;
    for (char *tok = s;; ) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        while (*tok == ' ') tok++;
        char *e = tok + strlen(tok);
        while (e > tok && e[-1] == ' ') *--e = '\0';
        if (!*tok) { lp_free(tab); return lp_error(LP_ERR_INVALID_ARG, "label list \"%s\": empty label", list); }
        for (int32_t j = 0; j < k; j++)
            if (!strcmp(tab[j], tok)) {
                lp_error(LP_ERR_INVALID_ARG, "label list \"%s\": label \"%s\" given twice", list, tok);
                lp_free(tab);
                return LP_ERR_INVALID_ARG;
            }
        tab[k++] = tok;
        if (!comma) break;
        tok = comma + 1;
    }
    *names = tab;
    *n = k;
    return LP_OK;
}

/* ------------------------------------------------------- orders and splits */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lp_data_epoch_order(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch)
{
    if (!perm || n <= 0) return;
    lp_rng r;
    lp_rng_seed(&r, mix64(seed ^ mix64((uint64_t)epoch + 0x45706f6368ULL /* "Epoch" */)));
    lp_rng_permutation(&r, perm, (size_t)n);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

lp_status lp_data_split(int64_t n, double test_fraction, uint64_t seed, int64_t **train, int64_t *n_train,
                        int64_t **test, int64_t *n_test)
{
    if (!train || !n_train || !test || !n_test) return lp_error(LP_ERR_INVALID_ARG, "lp_data_split: NULL argument");
    *train = *test = NULL;
    *n_train = *n_test = 0;
    if (n <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_data_split: %lld examples", (long long)n);
    if (!(test_fraction >= 0.0 && test_fraction <= 1.0))
        return lp_error(LP_ERR_INVALID_ARG, "lp_data_split: test fraction %g outside [0, 1]", test_fraction);
    int64_t nt = (int64_t)floor((double)n * test_fraction + 0.5);
    int64_t *perm = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int64_t));
    if (!perm) return LP_ERR_NOMEM;
    lp_rng r;
    lp_rng_seed(&r, mix64(seed ^ 0x53706c6974ULL /* "Split" */));
    lp_rng_permutation(&r, perm, (size_t)n);
    int64_t *a = n - nt > 0 ? lp_alloc_array(LP_MEM_DATA, (size_t)(n - nt), sizeof(int64_t)) : NULL;
    int64_t *b = nt > 0 ? lp_alloc_array(LP_MEM_DATA, (size_t)nt, sizeof(int64_t)) : NULL;
    if ((n - nt > 0 && !a) || (nt > 0 && !b)) {
        lp_free(a); lp_free(b); lp_free(perm);
        return LP_ERR_NOMEM;
    }
    if (nt) memcpy(b, perm, (size_t)nt * sizeof(int64_t));
    if (n - nt) memcpy(a, perm + nt, (size_t)(n - nt) * sizeof(int64_t));
    lp_free(perm);
    if (a) qsort(a, (size_t)(n - nt), sizeof(int64_t), cmp_i64);
    if (b) qsort(b, (size_t)nt, sizeof(int64_t), cmp_i64);
    *train = a;
    *n_train = n - nt;
    *test = b;
    *n_test = nt;
    return LP_OK;
}
