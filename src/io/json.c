/* JSON files over cJSON: parse with line/column errors, label every
 * container with its source and key path, typed getters naming both.
 *
 * Label format, stored in a container node's valuestring (unused by cJSON for
 * objects and arrays, freed by cJSON_Delete, copied by cJSON_Duplicate): one
 * C string "<decimal length of keypath>:<keypath><source>", so a copy made by
 * strdup stays whole and parsing it never reads past the terminator. */
#include "leanprop/json.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"

/* ---- labels ------------------------------------------------------------ */

static int is_container(const cJSON *n) { return n && (cJSON_IsObject(n) || cJSON_IsArray(n)); }

/* Split a label into keypath (kp, kplen) and source; 0 if unlabelled. */
static int split_label(const cJSON *n, const char **kp, size_t *kplen, const char **src)
{
    if (!is_container(n) || !n->valuestring) return 0;
    const char *s = n->valuestring;
    char *end;
    unsigned long long len = strtoull(s, &end, 10);
    if (end == s || *end != ':' || len > strlen(end + 1)) return 0;
    *kp = end + 1;
    *kplen = (size_t)len;
    *src = end + 1 + len;
    return 1;
}

const char *lp_json_source(const cJSON *obj)
{
    const char *kp, *src;
    size_t kl;
    return split_label(obj, &kp, &kl, &src) ? src : "";
}

const char *lp_json_keypath(const cJSON *obj)
{
    static _Thread_local char buf[1024];
    const char *kp, *src;
    size_t kl;
    if (!split_label(obj, &kp, &kl, &src)) return "";
    if (kl >= sizeof buf) kl = sizeof buf - 1;
    memcpy(buf, kp, kl);
    buf[kl] = '\0';
    return buf;
}

static int set_label(cJSON *n, const char *kp, size_t kplen, const char *src)
{
    size_t sl = strlen(src);
    char *lab = cJSON_malloc(24 + kplen + sl + 1);
    if (!lab) return 0;
    int h = snprintf(lab, 24, "%zu:", kplen);
    memcpy(lab + h, kp, kplen);
    memcpy(lab + h + kplen, src, sl + 1);
    if (n->valuestring) cJSON_free(n->valuestring);
    n->valuestring = lab;
    return 1;
}

/* Label n and all containers below it; path is grown in *buf. */
static int label_tree(cJSON *n, char **buf, size_t *cap, size_t len, const char *src)
{
    if (!set_label(n, *buf, len, src)) return 0;
    int i = 0;
    for (cJSON *c = n->child; c; c = c->next, i++) {
        if (!is_container(c)) continue;
        char part[32];
        const char *add;
        size_t alen;
        int dot = 0;
        if (cJSON_IsArray(n)) {
            alen = (size_t)snprintf(part, sizeof part, "[%d]", i);
            add = part;
        } else {
            add = c->string ? c->string : "";
            alen = strlen(add);
            dot = len > 0;
        }
        size_t need = len + (size_t)dot + alen + 1;
        if (need > *cap) {
            size_t ncap = *cap * 2 > need ? *cap * 2 : need;
            char *nb = realloc(*buf, ncap);
            if (!nb) return 0;
            *buf = nb;
            *cap = ncap;
        }
        if (dot) (*buf)[len] = '.';
        memcpy(*buf + len + dot, add, alen);
        if (!label_tree(c, buf, cap, len + (size_t)dot + alen, src)) return 0;
    }
    return 1;
}

/* ---- parsing ----------------------------------------------------------- */

/* text[len] must be '\0'. */
static lp_status parse_nul(const char *text, size_t len, const char *source, cJSON **out)
{
    const char *end = NULL, *nul = memchr(text, '\0', len);
    cJSON *root = nul ? NULL : cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (nul) end = nul;
    if (!root || end != text + len) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < at; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        cJSON_Delete(root);
        if (len == 0) return lp_error(LP_ERR_FORMAT, "%s: empty file, expected JSON", source);
        if (nul)
            return lp_error(LP_ERR_FORMAT, "%s: NUL byte inside JSON at line %d, column %d", source, line, col);
        return lp_error(LP_ERR_FORMAT, "%s: invalid JSON at line %d, column %d", source, line, col);
    }
    char *buf = malloc(256);
    size_t cap = 256;
    int ok = buf && label_tree(root, &buf, &cap, 0, source);
    free(buf);
    if (!ok) {
        cJSON_Delete(root);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory labelling JSON", source);
    }
    *out = root;
    return LP_OK;
}

lp_status lp_json_parse(const char *text, size_t len, const char *source, cJSON **out)
{
    if (!out || (!text && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_json_parse: NULL argument");
    *out = NULL;
    if (!source) source = "<json>";
    char *copy = malloc(len + 1);
    if (!copy) return lp_error(LP_ERR_NOMEM, "%s: out of memory", source);
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    lp_status st = parse_nul(copy, len, source, out);
    free(copy);
    return st;
}

lp_status lp_json_load_file(const char *path, cJSON **out)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_json_load_file: NULL argument");
    *out = NULL;
    char *text;
    size_t len;
    LP_TRY(lp_file_read_all(path, LP_JSON_MAX_FILE, LP_MEM_SCRATCH, &text, &len));
    lp_status st = parse_nul(text, len, path, out);
    lp_free(text);
    return st;
}

void lp_json_free(cJSON *root) { cJSON_Delete(root); }

/* ---- getters ----------------------------------------------------------- */

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a bool";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "a list";
    return "an invalid value";
}

/* "file: key 'a.b'" prefix for messages. */
static lp_status key_error(lp_status st, const cJSON *obj, const char *key, const char *what, const cJSON *got)
{
    const char *kp = "", *src = "";
    size_t kl = 0;
    split_label(obj, &kp, &kl, &src);
    const char *sep = *src ? ": " : "";
    const char *dot = kl ? "." : "";
    if (got)
        return lp_error(st, "%s%skey '%.*s%s%s': expected %s, got %s", src, sep, (int)kl, kp, dot, key, what,
                        type_name(got));
    return lp_error(st, "%s%skey '%.*s%s%s': %s", src, sep, (int)kl, kp, dot, key, what);
}

/* *item = the value, or NULL when absent or null; *absent tells which. */
static lp_status find(const cJSON *obj, const char *key, const cJSON **item, int *absent)
{
    *item = NULL;
    *absent = 1;
    if (!key) return lp_error(LP_ERR_INVALID_ARG, "lp_json: NULL key");
    if (!obj) return LP_OK;
    if (!cJSON_IsObject(obj)) {
        const char *kp = "", *src = "";
        size_t kl = 0;
        split_label(obj, &kp, &kl, &src);
        return lp_error(LP_ERR_FORMAT, "%s%sreading key '%s': '%.*s' is %s, not an object", src, *src ? ": " : "", key,
                        (int)kl, kp, type_name(obj));
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return LP_OK;
    *absent = 0;
    if (!cJSON_IsNull(v)) *item = v;
    return LP_OK;
}

static lp_status need(const cJSON *obj, const char *key, const cJSON **item)
{
    int absent;
    LP_TRY(find(obj, key, item, &absent));
    if (absent) return key_error(LP_ERR_NOT_FOUND, obj, key, "missing (required)", NULL);
    if (!*item) return key_error(LP_ERR_FORMAT, obj, key, "is null, a value is required", NULL);
    return LP_OK;
}

static lp_status as_int64(const cJSON *obj, const char *key, const cJSON *v, double lo, double hi, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return key_error(LP_ERR_FORMAT, obj, key, "an integer", v);
    double d = v->valuedouble;
    if (d != floor(d)) return key_error(LP_ERR_FORMAT, obj, key, "expected an integer, got a fraction", NULL);
    if (!(d >= lo && d <= hi)) return key_error(LP_ERR_FORMAT, obj, key, "integer out of range", NULL);
    *out = (int64_t)d;
    return LP_OK;
}

#define INT_LO ((double)INT_MIN)
#define INT_HI ((double)INT_MAX)
#define I64_LO (-9223372036854775808.0)
#define I64_HI (9223372036854774784.0) /* largest double below 2^63 */

lp_status lp_json_get_int(const cJSON *obj, const char *key, int def, int *out)
{
    const cJSON *v;
    int absent;
    int64_t x = 0;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) {
        *out = def;
        return LP_OK;
    }
    LP_TRY(as_int64(obj, key, v, INT_LO, INT_HI, &x));
    *out = (int)x;
    return LP_OK;
}

lp_status lp_json_require_int(const cJSON *obj, const char *key, int *out)
{
    const cJSON *v;
    int64_t x = 0;
    LP_TRY(need(obj, key, &v));
    LP_TRY(as_int64(obj, key, v, INT_LO, INT_HI, &x));
    *out = (int)x;
    return LP_OK;
}

lp_status lp_json_get_i64(const cJSON *obj, const char *key, int64_t def, int64_t *out)
{
    const cJSON *v;
    int absent;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) {
        *out = def;
        return LP_OK;
    }
    return as_int64(obj, key, v, I64_LO, I64_HI, out);
}

lp_status lp_json_require_i64(const cJSON *obj, const char *key, int64_t *out)
{
    const cJSON *v;
    LP_TRY(need(obj, key, &v));
    return as_int64(obj, key, v, I64_LO, I64_HI, out);
}

lp_status lp_json_get_double(const cJSON *obj, const char *key, double def, double *out)
{
    const cJSON *v;
    int absent;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) {
        *out = def;
        return LP_OK;
    }
    if (!cJSON_IsNumber(v)) return key_error(LP_ERR_FORMAT, obj, key, "a number", v);
    *out = v->valuedouble;
    return LP_OK;
}

lp_status lp_json_require_double(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v;
    LP_TRY(need(obj, key, &v));
    if (!cJSON_IsNumber(v)) return key_error(LP_ERR_FORMAT, obj, key, "a number", v);
    *out = v->valuedouble;
    return LP_OK;
}

lp_status lp_json_get_float(const cJSON *obj, const char *key, float def, float *out)
{
    double d = def;
    LP_TRY(lp_json_get_double(obj, key, (double)def, &d));
    if (isfinite(d) && fabs(d) > FLT_MAX) return key_error(LP_ERR_FORMAT, obj, key, "number out of float range", NULL);
    *out = (float)d;
    return LP_OK;
}

lp_status lp_json_get_bool(const cJSON *obj, const char *key, int def, int *out)
{
    const cJSON *v;
    int absent;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) {
        *out = def;
        return LP_OK;
    }
    if (!cJSON_IsBool(v)) return key_error(LP_ERR_FORMAT, obj, key, "true or false", v);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return LP_OK;
}

lp_status lp_json_require_bool(const cJSON *obj, const char *key, int *out)
{
    const cJSON *v;
    LP_TRY(need(obj, key, &v));
    if (!cJSON_IsBool(v)) return key_error(LP_ERR_FORMAT, obj, key, "true or false", v);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return LP_OK;
}

lp_status lp_json_get_string(const cJSON *obj, const char *key, const char *def, const char **out)
{
    const cJSON *v;
    int absent;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) {
        *out = def;
        return LP_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring) return key_error(LP_ERR_FORMAT, obj, key, "a string", v);
    *out = v->valuestring;
    return LP_OK;
}

lp_status lp_json_require_string(const cJSON *obj, const char *key, const char **out)
{
    const cJSON *v;
    LP_TRY(need(obj, key, &v));
    if (!cJSON_IsString(v) || !v->valuestring) return key_error(LP_ERR_FORMAT, obj, key, "a string", v);
    *out = v->valuestring;
    return LP_OK;
}

lp_status lp_json_get_object(const cJSON *obj, const char *key, const cJSON **out)
{
    const cJSON *v;
    int absent;
    *out = NULL;
    LP_TRY(find(obj, key, &v, &absent));
    if (v && !cJSON_IsObject(v)) return key_error(LP_ERR_FORMAT, obj, key, "an object", v);
    *out = v;
    return LP_OK;
}

lp_status lp_json_require_object(const cJSON *obj, const char *key, const cJSON **out)
{
    const cJSON *v;
    *out = NULL;
    LP_TRY(need(obj, key, &v));
    if (!cJSON_IsObject(v)) return key_error(LP_ERR_FORMAT, obj, key, "an object", v);
    *out = v;
    return LP_OK;
}

lp_status lp_json_get_array(const cJSON *obj, const char *key, const cJSON **out)
{
    const cJSON *v;
    int absent;
    *out = NULL;
    LP_TRY(find(obj, key, &v, &absent));
    if (v && !cJSON_IsArray(v)) return key_error(LP_ERR_FORMAT, obj, key, "a list", v);
    *out = v;
    return LP_OK;
}

lp_status lp_json_require_array(const cJSON *obj, const char *key, const cJSON **out)
{
    const cJSON *v;
    *out = NULL;
    LP_TRY(need(obj, key, &v));
    if (!cJSON_IsArray(v)) return key_error(LP_ERR_FORMAT, obj, key, "a list", v);
    *out = v;
    return LP_OK;
}

lp_status lp_json_get_int_list(const cJSON *obj, const char *key, int64_t *dst, size_t cap, size_t *n)
{
    const cJSON *v;
    int absent;
    *n = 0;
    LP_TRY(find(obj, key, &v, &absent));
    if (!v) return LP_OK;
    if (cJSON_IsNumber(v)) {
        if (cap < 1) return key_error(LP_ERR_FORMAT, obj, key, "more values than the caller can take", NULL);
        LP_TRY(as_int64(obj, key, v, I64_LO, I64_HI, &dst[0]));
        *n = 1;
        return LP_OK;
    }
    if (!cJSON_IsArray(v)) return key_error(LP_ERR_FORMAT, obj, key, "an integer or a list of integers", v);
    size_t k = 0;
    for (const cJSON *e = v->child; e; e = e->next, k++) {
        if (k >= cap) return key_error(LP_ERR_FORMAT, obj, key, "more values than the caller can take", NULL);
        if (!cJSON_IsNumber(e)) return key_error(LP_ERR_FORMAT, obj, key, "a list of integers", e);
        LP_TRY(as_int64(obj, key, e, I64_LO, I64_HI, &dst[k]));
    }
    *n = k;
    return LP_OK;
}

/* ---- writing ----------------------------------------------------------- */

lp_status lp_json_write_file(const char *path, const cJSON *root)
{
    if (!path || !root) return lp_error(LP_ERR_INVALID_ARG, "lp_json_write_file: NULL argument");
    char *text = cJSON_Print(root);
    if (!text) return lp_error(LP_ERR_NOMEM, "%s: out of memory printing JSON", path);
    /* cJSON indents with tabs and writes "key":<tab>value; raw tabs only
     * occur as formatting (tabs inside strings are escaped): use 2 spaces
     * per level and "key": value, as Python's json.dumps(indent=2). */
    size_t len = strlen(text), tabs = 0;
    for (size_t i = 0; i < len; i++) tabs += text[i] == '\t';
    char *out = malloc(len + tabs + 2);
    if (!out) {
        cJSON_free(text);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory printing JSON", path);
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\t') {
            out[o++] = text[i];
        } else if (i > 0 && text[i - 1] == ':') {
            out[o++] = ' ';
        } else {
            out[o++] = ' ';
            out[o++] = ' ';
        }
    }
    out[o++] = '\n';
    cJSON_free(text);
    lp_status st = lp_file_write_atomic(path, out, o);
    free(out);
    return st;
}
