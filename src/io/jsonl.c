/* JSONL reader: one JSON object per line, with line numbers for messages.
 *
 * Lines are read with getline (any length), so a record's line number is
 * exact. Blank lines (only spaces, tabs, CR) are ignored; a UTF-8 BOM on the
 * first line is dropped. Parse errors report the column where cJSON stopped. */
#include "dataset_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

struct lp_jsonl {
    FILE *f;
    char *path;
    char *line;         /* getline buffer (libc) */
    size_t line_cap;
    int64_t line_no;
    cJSON *obj;
    lp_bad_input_policy policy;
    lp_data_report *rep;
};

lp_status lp_jsonl_open(lp_jsonl **out, const char *path, lp_bad_input_policy on_malformed, lp_data_report *rep)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_jsonl_open: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lp_jsonl *r = lp_alloc(LP_MEM_DATA, sizeof *r);
    size_t plen = strlen(path);
    char *p = r ? lp_alloc(LP_MEM_DATA, plen + 1) : NULL;
    if (!r || !p) {
        lp_free(r);
        fclose(f);
        return LP_ERR_NOMEM;
    }
    memcpy(p, path, plen + 1);
    r->f = f;
    r->path = p;
    r->policy = on_malformed;
    r->rep = rep;
    *out = r;
    return LP_OK;
}

const char *lp_jsonl_path(const lp_jsonl *r) { return r ? r->path : ""; }

void lp_jsonl_close(lp_jsonl *r)
{
    if (!r) return;
    if (r->f) fclose(r->f);
    cJSON_Delete(r->obj);
    free(r->line);
    lp_free(r->path);
    lp_free(r);
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

lp_status lp_jsonl_next(lp_jsonl *r, const cJSON **obj, int64_t *line)
{
    if (!r || !obj) return lp_error(LP_ERR_INVALID_ARG, "lp_jsonl_next: NULL argument");
    *obj = NULL;
    cJSON_Delete(r->obj);
    r->obj = NULL;
    int64_t dummy;
    int64_t *skipped = r->rep ? &r->rep->skipped_malformed : &dummy;
    for (;;) {
        errno = 0;
        ssize_t got = getline(&r->line, &r->line_cap, r->f);
        if (got < 0) {
            if (ferror(r->f)) return lp_error(LP_ERR_IO, "%s:%lld: read error: %s", r->path,
                                              (long long)r->line_no + 1, strerror(errno));
            return LP_OK; /* end of file */
        }
        r->line_no++;
        char *s = r->line;
        size_t n = (size_t)got;
        if (r->line_no == 1 && n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) { s += 3; n -= 3; }
        if (is_blank(s, n)) continue;
        if (r->rep) r->rep->records++;
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
        lp_status st;
        if (!v) {
            size_t col = end && end >= s && end <= s + n ? (size_t)(end - s) + 1 : 1;
            if (memchr(s, '\0', n))
                st = lp_data_problem(r->rep, r->policy, skipped, r->path, r->line_no, "NUL byte in line");
            else
                st = lp_data_problem(r->rep, r->policy, skipped, r->path, r->line_no,
                                     "invalid JSON near column %zu", col);
        } else if (end && !is_blank(end, n - (size_t)(end - s))) {
            st = lp_data_problem(r->rep, r->policy, skipped, r->path, r->line_no,
                                 "trailing characters after the JSON value at column %zu", (size_t)(end - s) + 1);
        } else if (!cJSON_IsObject(v)) {
            st = lp_data_problem(r->rep, r->policy, skipped, r->path, r->line_no,
                                 "expected a JSON object, found %s", lp_json_type_name(v));
        } else {
            r->obj = v;
            *obj = v;
            if (line) *line = r->line_no;
            return LP_OK;
        }
        cJSON_Delete(v);
        if (st != LP_OK) return st;
    }
}

const char *lp_json_type_name(const cJSON *item)
{
    if (!item) return "nothing";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "an invalid value";
}

int lp_json_string(const cJSON *obj, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsString(v) || !v->valuestring) return 2;
    *out = v->valuestring;
    return 0;
}
