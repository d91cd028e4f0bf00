/* safetensors writer: the Python library's layout byte for byte.
 *
 * Header: {"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}
 * compact JSON (serde_json escaping), padded with spaces to a multiple of 8;
 * tensors ordered by dtype (the library's enum order, descending) then by
 * name (bytewise), offsets contiguous from 0. Metadata keys are sorted (the
 * library uses a hash map, so any order is valid). The file is written
 * through lp_atomic_writer: temp file, fsync, rename, fsync of directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors_internal.h"
#include "leanprop/fileio.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "leanprop writes little-endian data in place");

typedef struct {
    char *key, *value;
} kv;

struct lp_safetensors_writer {
    lp_st_entry *e;
    int n, cap;
    kv *meta;
    int n_meta, cap_meta;
};

/* Python library (Rust) enum: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16,
 * BF16, I32, U32, F32, F64, I64, U64. */
int lp_st_dtype_rank(lp_dtype dt)
{
    switch (dt) {
    case LP_DTYPE_BOOL: return 0;
    case LP_DTYPE_U8: return 1;
    case LP_DTYPE_I8: return 2;
    case LP_DTYPE_I16: return 5;
    case LP_DTYPE_U16: return 6;
    case LP_DTYPE_F16: return 7;
    case LP_DTYPE_BF16: return 8;
    case LP_DTYPE_I32: return 9;
    case LP_DTYPE_U32: return 10;
    case LP_DTYPE_F32: return 11;
    case LP_DTYPE_F64: return 12;
    case LP_DTYPE_I64: return 13;
    case LP_DTYPE_U64: return 14;
    default: return -1;
    }
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

lp_safetensors_writer *lp_safetensors_writer_new(void)
{
    lp_safetensors_writer *w = calloc(1, sizeof *w);
    if (!w) lp_error(LP_ERR_NOMEM, "out of memory for a safetensors writer");
    return w;
}

void lp_safetensors_writer_free(lp_safetensors_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->e);
    free(w->meta);
    free(w);
}

int lp_st_writer_count(const lp_safetensors_writer *w) { return w ? w->n : 0; }
int lp_safetensors_writer_count(const lp_safetensors_writer *w) { return w ? w->n : 0; }

const lp_st_entry *lp_st_writer_entry(const lp_safetensors_writer *w, int i)
{
    return w && i >= 0 && i < w->n ? &w->e[i] : NULL;
}

size_t lp_safetensors_writer_data_bytes(const lp_safetensors_writer *w)
{
    size_t s = 0;
    for (int i = 0; w && i < w->n; i++) s += w->e[i].nbytes;
    return s;
}

static lp_status add_entry(lp_safetensors_writer *w, const char *name, lp_dtype dtype, const void *data,
                           int from_f32, const int64_t *shape, int ndim)
{
    if (!w || !name) return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: NULL writer or tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: \"__metadata__\" is reserved, not a tensor name");
    size_t esz = lp_dtype_size(dtype);
    if (esz == 0) return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (from_f32 && !lp_dtype_is_float(dtype))
        return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': float data cannot be stored as %s", name,
                        lp_dtype_name(dtype));
    if (ndim < 0 || ndim > LP_MAX_DIMS || (ndim > 0 && !shape))
        return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': ndim %d (0..%d)", name, ndim, LP_MAX_DIMS);
    uint64_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0)
            return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': negative shape[%d]", name, k);
        uint64_t d = (uint64_t)shape[k];
        if (d != 0 && numel > (uint64_t)INT64_MAX / d)
            return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': element count overflows", name);
        numel *= d;
    }
    if (numel > (uint64_t)SIZE_MAX / 8)
        return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': byte size overflows", name);
    if (numel > 0 && !data) return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: tensor '%s': NULL data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: duplicate tensor name '%s'", name);
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 16;
        lp_st_entry *ne = realloc(w->e, (size_t)ncap * sizeof *ne);
        if (!ne) return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = ncap;
    }
    lp_st_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = dup_str(name))) return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->data = data;
    e->from_f32 = from_f32;
    e->ndim = ndim;
    for (int k = 0; k < ndim; k++) e->shape[k] = shape[k];
    e->nbytes = (size_t)numel * esz;
    w->n++;
    return LP_OK;
}

lp_status lp_safetensors_writer_add(lp_safetensors_writer *w, const char *name, lp_dtype dtype, const void *data,
                                    const int64_t *shape, int ndim)
{
    return add_entry(w, name, dtype, data, 0, shape, ndim);
}

lp_status lp_safetensors_writer_add_f32(lp_safetensors_writer *w, const char *name, const float *data,
                                        const int64_t *shape, int ndim)
{
    return add_entry(w, name, LP_DTYPE_F32, data, 0, shape, ndim);
}

lp_status lp_safetensors_writer_add_f32_as(lp_safetensors_writer *w, const char *name, lp_dtype dtype,
                                           const float *data, const int64_t *shape, int ndim)
{
    return add_entry(w, name, dtype, data, dtype != LP_DTYPE_F32, shape, ndim);
}

lp_status lp_safetensors_writer_set_metadata(lp_safetensors_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: NULL metadata key or value");
    char *v = dup_str(value);
    if (!v) return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return LP_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int ncap = w->cap_meta ? w->cap_meta * 2 : 4;
        kv *nm = realloc(w->meta, (size_t)ncap * sizeof *nm);
        if (!nm) {
            free(v);
            return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->meta = nm;
        w->cap_meta = ncap;
    }
    char *k = dup_str(key);
    if (!k) {
        free(v);
        return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return LP_OK;
}

/* ---- header text ------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + n + 1) ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string as serde_json writes it. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            }
        }
        if (esc) {
            sb_put(b, run, (size_t)(s - run));
            sb_str(b, esc);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

static void sb_u64(sbuf *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    sb_put(b, tmp, (size_t)n);
}

static int cmp_entry_ptr(const void *a, const void *b)
{
    const lp_st_entry *x = *(const lp_st_entry *const *)a, *y = *(const lp_st_entry *const *)b;
    int rx = lp_st_dtype_rank(x->dtype), ry = lp_st_dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

static int cmp_kv(const void *a, const void *b) { return strcmp(((const kv *)a)->key, ((const kv *)b)->key); }

static lp_status build_header(const lp_safetensors_writer *w, const lp_st_entry *const *ents, int n, sbuf *b)
{
    kv *meta = NULL;
    if (w->n_meta) {
        meta = malloc((size_t)w->n_meta * sizeof *meta);
        if (!meta) return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory");
        memcpy(meta, w->meta, (size_t)w->n_meta * sizeof *meta);
        qsort(meta, (size_t)w->n_meta, sizeof *meta, cmp_kv);
    }
    sb_put(b, "{", 1);
    int first = 1;
    if (w->n_meta) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_put(b, ",", 1);
            sb_json_string(b, meta[i].key);
            sb_put(b, ":", 1);
            sb_json_string(b, meta[i].value);
        }
        sb_put(b, "}", 1);
        first = 0;
    }
    free(meta);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const lp_st_entry *e = ents[i];
        if (!first) sb_put(b, ",", 1);
        first = 0;
        sb_json_string(b, e->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, lp_dtype_name(e->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int k = 0; k < e->ndim; k++) {
            if (k) sb_put(b, ",", 1);
            sb_u64(b, (unsigned long long)e->shape[k]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_put(b, ",", 1);
        off += e->nbytes;
        sb_u64(b, off);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->oom && b->len % 8) sb_put(b, " ", 1);
    if (b->oom) return lp_error(LP_ERR_NOMEM, "safetensors writer: out of memory for the header");
    return LP_OK;
}

/* Write one entry's bytes, converting float data when needed. */
static lp_status write_entry(lp_atomic_writer *aw, const lp_st_entry *e, const char *path)
{
    if (e->nbytes == 0) return LP_OK;
    if (!e->from_f32) return lp_atomic_writer_write(aw, e->data, e->nbytes);
    enum { CHUNK = 1 << 15 };
    size_t esz = lp_dtype_size(e->dtype), n = e->nbytes / esz;
    unsigned char *buf = lp_alloc(LP_MEM_SCRATCH, CHUNK * 8);
    if (!buf) return lp_error_context(LP_ERR_NOMEM, "%s: tensor '%s'", path, e->name);
    const float *src = e->data;
    lp_status st = LP_OK;
    for (size_t i = 0; i < n && st == LP_OK; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        for (size_t j = 0; j < m; j++) {
            float f = src[i + j];
            if (e->dtype == LP_DTYPE_F16) {
                uint16_t h = lp_f32_to_f16(f);
                memcpy(buf + 2 * j, &h, 2);
            } else if (e->dtype == LP_DTYPE_BF16) {
                uint16_t h = lp_f32_to_bf16(f);
                memcpy(buf + 2 * j, &h, 2);
            } else if (e->dtype == LP_DTYPE_F64) {
                double d = f;
                memcpy(buf + 8 * j, &d, 8);
            } else {
                memcpy(buf + 4 * j, &f, 4);
            }
        }
        st = lp_atomic_writer_write(aw, buf, m * esz);
    }
    lp_free(buf);
    return st;
}

lp_status lp_st_writer_save_subset(const lp_safetensors_writer *w, const char *path, const int *idx_in, int n)
{
    if (!w || !path) return lp_error(LP_ERR_INVALID_ARG, "safetensors writer: NULL writer or path");
    const lp_st_entry **ents = malloc(((size_t)n + 1) * sizeof *ents);
    if (!ents) return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        if (idx_in[i] < 0 || idx_in[i] >= w->n) {
            free(ents);
            return lp_error(LP_ERR_INVALID_ARG, "%s: tensor index %d out of range", path, idx_in[i]);
        }
        ents[i] = &w->e[idx_in[i]];
    }
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_ptr);
    sbuf hb = {0};
    lp_status st = build_header(w, ents, n, &hb);
    lp_atomic_writer *aw = NULL;
    if (st == LP_OK) st = lp_atomic_writer_open(&aw, path);
    if (st == LP_OK) {
        unsigned char len8[8];
        uint64_t hlen = hb.len;
        memcpy(len8, &hlen, 8);
        st = lp_atomic_writer_write(aw, len8, 8);
        if (st == LP_OK) st = lp_atomic_writer_write(aw, hb.p, hb.len);
        for (int i = 0; i < n && st == LP_OK; i++) st = write_entry(aw, ents[i], path);
        if (st == LP_OK)
            st = lp_atomic_writer_commit(aw);
        else
            lp_atomic_writer_abort(aw);
    }
    free(hb.p);
    free(ents);
    return st;
}

lp_status lp_safetensors_writer_save(lp_safetensors_writer *w, const char *path)
{
    if (!w || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors_writer_save: NULL writer or path");
    int *idx = malloc(((size_t)w->n + 1) * sizeof *idx);
    if (!idx) return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < w->n; i++) idx[i] = i;
    lp_status st = lp_st_writer_save_subset(w, path, idx, w->n);
    free(idx);
    return st;
}
