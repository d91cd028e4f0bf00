/* safetensors reader: mmap (or read) the file, validate the whole header
 * before any tensor byte is touched, convert tensors to float / int64.
 *
 * Validation order (each failure is LP_ERR_FORMAT naming the file and, where
 * there is one, the tensor): file >= 8 bytes; header length <= 100 MB and
 * inside the file; header is one JSON object followed only by whitespace;
 * each entry is an object with a known dtype (unknown: LP_ERR_UNSUPPORTED),
 * shape = list of <= 8 non-negative integers whose product (and byte size)
 * does not overflow, data_offsets = [begin, end] integers with
 * begin <= end <= data size and end - begin == numel * dtype size; names are
 * unique; no two tensors share a byte; "__metadata__" is a string map. */
#include "leanprop/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "leanprop reads little-endian data in place");

typedef struct {
    char *key;
    char *value;
} meta_kv;

struct lp_safetensors {
    char *path;
    const unsigned char *base; /* whole file */
    size_t size;
    int mapped;                /* base is an mmap */
    int borrowed;              /* base belongs to the caller (open_memory) */
    const unsigned char *data; /* data block after the header */
    size_t data_size;
    lp_tensor_info *tensors;   /* header order */
    int n;
    const lp_tensor_info **by_name; /* sorted by name */
    meta_kv *meta;             /* sorted by key */
    int n_meta;
};

/* ---- dtypes ------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} g_dtypes[LP_DTYPE_COUNT] = {
    [LP_DTYPE_F32] = {"F32", 4},  [LP_DTYPE_F16] = {"F16", 2}, [LP_DTYPE_BF16] = {"BF16", 2},
    [LP_DTYPE_F64] = {"F64", 8},  [LP_DTYPE_I64] = {"I64", 8}, [LP_DTYPE_I32] = {"I32", 4},
    [LP_DTYPE_I16] = {"I16", 2},  [LP_DTYPE_I8] = {"I8", 1},   [LP_DTYPE_U8] = {"U8", 1},
    [LP_DTYPE_BOOL] = {"BOOL", 1}, [LP_DTYPE_U16] = {"U16", 2}, [LP_DTYPE_U32] = {"U32", 4},
    [LP_DTYPE_U64] = {"U64", 8},
};

const char *lp_dtype_name(lp_dtype dt)
{
    if ((int)dt < 0 || dt >= LP_DTYPE_COUNT) return "?";
    return g_dtypes[dt].name;
}

size_t lp_dtype_size(lp_dtype dt)
{
    if ((int)dt < 0 || dt >= LP_DTYPE_COUNT) return 0;
    return g_dtypes[dt].size;
}

int lp_dtype_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < LP_DTYPE_COUNT; i++)
        if (strcmp(name, g_dtypes[i].name) == 0) return i;
    return -1;
}

int lp_dtype_is_float(lp_dtype dt)
{
    return dt == LP_DTYPE_F32 || dt == LP_DTYPE_F16 || dt == LP_DTYPE_BF16 || dt == LP_DTYPE_F64;
}

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float lp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return bits_to_f32(sign);
        int e = -1; /* subnormal: mant * 2^-24; normalise */
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400u));
        return bits_to_f32(sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13));
    }
    if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

float lp_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t lp_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                     /* below 2^-14: subnormal half */
        if (ax <= 0x33000000u) return (uint16_t)sign;           /* <= 2^-25: ties to even 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e, r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = (ax >> 13) - (112u << 10), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

uint16_t lp_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#define CONVERT_LOOP(T, EXPR)                              \
    for (size_t i = 0; i < n; i++) {                       \
        T v;                                               \
        memcpy(&v, s + i * sizeof(T), sizeof(T));          \
        dst[i] = (EXPR);                                   \
    }

lp_status lp_dtype_convert_to_f32(lp_dtype dt, const void *src, float *dst, size_t n)
{
    if (n == 0) return LP_OK;
    if (!src || !dst) return lp_error(LP_ERR_INVALID_ARG, "lp_dtype_convert_to_f32: NULL buffer");
    const unsigned char *s = src;
    switch (dt) {
    case LP_DTYPE_F32: memcpy(dst, src, n * sizeof(float)); break;
    case LP_DTYPE_F16: CONVERT_LOOP(uint16_t, lp_f16_to_f32(v)); break;
    case LP_DTYPE_BF16: CONVERT_LOOP(uint16_t, lp_bf16_to_f32(v)); break;
    case LP_DTYPE_F64: CONVERT_LOOP(double, (float)v); break;
    case LP_DTYPE_I64: CONVERT_LOOP(int64_t, (float)v); break;
    case LP_DTYPE_I32: CONVERT_LOOP(int32_t, (float)v); break;
    case LP_DTYPE_I16: CONVERT_LOOP(int16_t, (float)v); break;
    case LP_DTYPE_I8: CONVERT_LOOP(int8_t, (float)v); break;
    case LP_DTYPE_U8: CONVERT_LOOP(uint8_t, (float)v); break;
    case LP_DTYPE_BOOL: CONVERT_LOOP(uint8_t, v ? 1.0f : 0.0f); break;
    case LP_DTYPE_U16: CONVERT_LOOP(uint16_t, (float)v); break;
    case LP_DTYPE_U32: CONVERT_LOOP(uint32_t, (float)v); break;
    case LP_DTYPE_U64: CONVERT_LOOP(uint64_t, (float)v); break;
    default: return lp_error(LP_ERR_INVALID_ARG, "lp_dtype_convert_to_f32: invalid dtype %d", (int)dt);
    }
    return LP_OK;
}

/* ---- header parsing ---------------------------------------------------- */

/* A JSON number that is a non-negative integer below 2^63. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d >= 9223372036854775808.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_info_ptr(const void *a, const void *b)
{
    const lp_tensor_info *x = *(const lp_tensor_info *const *)a, *y = *(const lp_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const meta_kv *)a)->key, ((const meta_kv *)b)->key);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static lp_status parse_metadata(lp_safetensors *f, const cJSON *m)
{
    const char *p = f->path;
    if (f->meta) return lp_error(LP_ERR_FORMAT, "%s: duplicate \"__metadata__\" entry in header", p);
    if (!cJSON_IsObject(m)) return lp_error(LP_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", p);
    int n = cJSON_GetArraySize(m);
    f->meta = calloc((size_t)n + 1, sizeof *f->meta);
    if (!f->meta) return lp_error(LP_ERR_NOMEM, "%s: out of memory for metadata", p);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring)
            return lp_error(LP_ERR_FORMAT, "%s: \"__metadata__\" entry '%s' is not a string", p,
                            e->string ? e->string : "");
        meta_kv *kv = &f->meta[f->n_meta];
        kv->key = dup_str(e->string ? e->string : "");
        kv->value = dup_str(e->valuestring);
        f->n_meta++; /* counted before the check so close() frees both */
        if (!kv->key || !kv->value) return lp_error(LP_ERR_NOMEM, "%s: out of memory for metadata", p);
    }
    qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta);
    for (int i = 1; i < f->n_meta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return lp_error(LP_ERR_FORMAT, "%s: duplicate \"__metadata__\" key '%s'", p, f->meta[i].key);
    return LP_OK;
}

static lp_status parse_tensor(lp_safetensors *f, const cJSON *e, lp_tensor_info *t, range *r)
{
    const char *p = f->path, *name = t->name;
    if (!cJSON_IsObject(e)) return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", p, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", p, name);
    int d = lp_dtype_from_name(dt->valuestring);
    if (d < 0)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", p, name, dt->valuestring);
    t->dtype = (lp_dtype)d;

    if (!cJSON_IsArray(shape))
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': missing \"shape\" or not a list", p, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > LP_MAX_DIMS)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", p, name, ndim,
                        LP_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *s = shape->child; s; s = s->next, k++) {
        uint64_t dim;
        if (!json_uint(s, &dim))
            return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", p, name, k);
        t->shape[k] = (int64_t)dim;
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim)
            return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': element count overflows", p, name);
        numel *= dim;
    }
    size_t esz = lp_dtype_size(t->dtype);
    if (numel > (uint64_t)SIZE_MAX / esz)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': byte size overflows", p, name);
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)numel * esz;

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not a list [begin, end]", p, name);
    uint64_t b, en;
    if (!json_uint(offs->child, &b) || !json_uint(offs->child->next, &en))
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" are not non-negative integers", p, name);
    if (b > en)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu", p, name,
                        (unsigned long long)b, (unsigned long long)en);
    if (en > f->data_size)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] out of range (data block %zu bytes)",
                        p, name, (unsigned long long)b, (unsigned long long)en, f->data_size);
    if (en - b != (uint64_t)t->nbytes)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but %s shape needs %zu", p, name,
                        (unsigned long long)(en - b), lp_dtype_name(t->dtype), t->nbytes);
    t->data = f->data + b;
    r->begin = b;
    r->end = en;
    return LP_OK;
}

static lp_status check_overlaps(lp_safetensors *f, range *r, int n)
{
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    uint64_t max_end = 0;
    int max_idx = -1;
    for (int i = 0; i < n; i++) {
        if (r[i].begin == r[i].end) continue; /* empty tensors own no byte */
        if (max_idx >= 0 && r[i].begin < max_end)
            return lp_error(LP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data block (bytes %llu..%llu)",
                            f->path, f->tensors[max_idx].name, f->tensors[r[i].idx].name,
                            (unsigned long long)r[i].begin, (unsigned long long)max_end);
        if (r[i].end > max_end) {
            max_end = r[i].end;
            max_idx = r[i].idx;
        }
    }
    return LP_OK;
}

static lp_status parse_header(lp_safetensors *f)
{
    const char *p = f->path;
    uint64_t hlen;
    memcpy(&hlen, f->base, 8);
    if (hlen > LP_SAFETENSORS_MAX_HEADER)
        return lp_error(LP_ERR_FORMAT, "%s: header length %llu is absurd (limit %u bytes)", p,
                        (unsigned long long)hlen, LP_SAFETENSORS_MAX_HEADER);
    if (hlen > f->size - 8)
        return lp_error(LP_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", p,
                        (unsigned long long)hlen, f->size);
    f->data = f->base + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;

    char *text = malloc((size_t)hlen + 1);
    if (!text) return lp_error(LP_ERR_NOMEM, "%s: out of memory for a %llu-byte header", p, (unsigned long long)hlen);
    memcpy(text, f->base + 8, (size_t)hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    lp_status st = LP_OK;
    range *ranges = NULL;
    cJSON *root = NULL;
    const char *nul = memchr(text, '\0', (size_t)hlen);
    if (nul) {
        st = lp_error(LP_ERR_FORMAT, "%s: header contains a NUL byte at offset %zu", p, (size_t)(nul - text));
        goto done;
    }
    root = cJSON_ParseWithLengthOpts(text, (size_t)hlen + 1, &end, 1);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        st = lp_error(LP_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %llu)", p, at,
                      (unsigned long long)hlen);
        goto done;
    }
    if (end != text + hlen) { /* cannot happen after the NUL check; kept as a guard */
        st = lp_error(LP_ERR_FORMAT, "%s: header has trailing bytes after the JSON value", p);
        goto done;
    }
    if (!cJSON_IsObject(root)) {
        st = lp_error(LP_ERR_FORMAT, "%s: header is not a JSON object", p);
        goto done;
    }
    int n_items = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n_items + 1, sizeof *f->tensors);
    f->by_name = calloc((size_t)n_items + 1, sizeof *f->by_name);
    ranges = calloc((size_t)n_items + 1, sizeof *ranges);
    if (!f->tensors || !f->by_name || !ranges) {
        st = lp_error(LP_ERR_NOMEM, "%s: out of memory for %d header entries", p, n_items);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        const char *key = e->string ? e->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = parse_metadata(f, e)) != LP_OK) goto done;
            continue;
        }
        lp_tensor_info *t = &f->tensors[f->n];
        t->name = dup_str(key);
        if (!t->name) {
            st = lp_error(LP_ERR_NOMEM, "%s: out of memory for tensor names", p);
            goto done;
        }
        ranges[f->n].idx = f->n;
        f->n++; /* counted now so close() frees the name */
        if ((st = parse_tensor(f, e, t, &ranges[f->n - 1])) != LP_OK) goto done;
    }
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_info_ptr);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
            st = lp_error(LP_ERR_FORMAT, "%s: duplicate tensor name '%s' in header", p, f->by_name[i]->name);
            goto done;
        }
    st = check_overlaps(f, ranges, f->n);
done:
    free(ranges);
    cJSON_Delete(root);
    free(text);
    return st;
}

/* ---- open / close ------------------------------------------------------ */

static lp_status read_fd(int fd, unsigned char *buf, size_t size, const char *path)
{
    size_t off = 0;
    while (off < size) {
        ssize_t r = read(fd, buf + off, size - off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return lp_error(LP_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (r == 0) return lp_error(LP_ERR_IO, "%s: file shrank while reading (%zu of %zu bytes)", path, off, size);
        off += (size_t)r;
    }
    return LP_OK;
}

lp_status lp_safetensors_open_ex(lp_safetensors **out, const char *path, unsigned flags)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors_open: NULL argument");
    *out = NULL;
    lp_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dup_str(path))) {
        free(f);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    }
    lp_status st = LP_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = lp_error(errno == ENOENT ? LP_ERR_NOT_FOUND : LP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = lp_error(LP_ERR_IO, "%s: not a readable regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        st = lp_error(LP_ERR_UNSUPPORTED, "%s: file too large for this address space", path);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        st = lp_error(LP_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length", path, f->size);
        goto fail;
    }
    if (!(flags & LP_SAFETENSORS_NO_MMAP)) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->base = m;
            f->mapped = 1;
        }
    }
    if (!f->base) { /* fallback: read the whole file */
        unsigned char *buf = lp_alloc(LP_MEM_DATA, f->size);
        if (!buf) {
            st = lp_error_context(LP_ERR_NOMEM, "%s", path);
            goto fail;
        }
        f->base = buf;
        if ((st = read_fd(fd, buf, f->size, path)) != LP_OK) goto fail;
    }
    close(fd);
    fd = -1;
    if ((st = parse_header(f)) != LP_OK) goto fail;
    *out = f;
    return LP_OK;
fail:
    if (fd >= 0) close(fd);
    lp_safetensors_close(f);
    return st;
}

lp_status lp_safetensors_open_memory(lp_safetensors **out, const void *data, size_t size, const char *name)
{
    if (!out || (!data && size)) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors_open_memory: NULL argument");
    *out = NULL;
    if (!name) name = "<memory>";
    lp_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dup_str(name))) {
        free(f);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", name);
    }
    f->base = data;
    f->size = size;
    f->borrowed = 1;
    lp_status st = size < 8 ? lp_error(LP_ERR_FORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length",
                                       name, size)
                            : parse_header(f);
    if (st != LP_OK) {
        lp_safetensors_close(f);
        return st;
    }
    *out = f;
    return LP_OK;
}

lp_status lp_safetensors_open(lp_safetensors **out, const char *path)
{
    return lp_safetensors_open_ex(out, path, 0);
}

void lp_safetensors_close(lp_safetensors *f)
{
    if (!f) return;
    if (f->base && !f->borrowed) {
        if (f->mapped)
            munmap((void *)f->base, f->size);
        else
            lp_free((void *)f->base);
    }
    for (int i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

/* ---- queries ----------------------------------------------------------- */

const char *lp_safetensors_path(const lp_safetensors *f) { return f ? f->path : NULL; }
int lp_safetensors_count(const lp_safetensors *f) { return f ? f->n : 0; }
size_t lp_safetensors_data_size(const lp_safetensors *f) { return f ? f->data_size : 0; }

const lp_tensor_info *lp_safetensors_at(const lp_safetensors *f, int i)
{
    if (!f || i < 0 || i >= f->n) return NULL;
    return &f->tensors[i];
}

const lp_tensor_info *lp_safetensors_find(const lp_safetensors *f, const char *name)
{
    if (!f || !name || f->n == 0) return NULL;
    lp_tensor_info key = {.name = name};
    const lp_tensor_info *kp = &key;
    const lp_tensor_info **hit = bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_info_ptr);
    return hit ? *hit : NULL;
}

const char *lp_safetensors_metadata(const lp_safetensors *f, const char *key)
{
    if (!f || !key || f->n_meta == 0) return NULL;
    meta_kv k = {.key = (char *)key};
    const meta_kv *hit = bsearch(&k, f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta);
    return hit ? hit->value : NULL;
}

int lp_safetensors_metadata_count(const lp_safetensors *f) { return f ? f->n_meta : 0; }

int lp_safetensors_metadata_at(const lp_safetensors *f, int i, const char **key, const char **value)
{
    if (!f || i < 0 || i >= f->n_meta) return 0;
    if (key) *key = f->meta[i].key;
    if (value) *value = f->meta[i].value;
    return 1;
}

/* ---- conversion -------------------------------------------------------- */

static lp_status lookup(const lp_safetensors *f, const char *name, size_t n, int check_n, const lp_tensor_info **out)
{
    if (!f || !name) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors: NULL file or tensor name");
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) return lp_error(LP_ERR_NOT_FOUND, "%s: tensor '%s' not found", f->path, name);
    if (check_n && (uint64_t)t->numel != (uint64_t)n)
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %zu", f->path, name,
                        (long long)t->numel, n);
    *out = t;
    return LP_OK;
}

lp_status lp_safetensors_read_f32(const lp_safetensors *f, const char *name, float *dst, size_t n)
{
    const lp_tensor_info *t = NULL;
    LP_TRY(lookup(f, name, n, 1, &t));
    if (n && !dst) return lp_error(LP_ERR_INVALID_ARG, "%s: tensor '%s': NULL destination", f->path, name);
    return lp_dtype_convert_to_f32(t->dtype, t->data, dst, n);
}

lp_status lp_safetensors_load_f32(const lp_safetensors *f, const char *name, lp_mem_category cat, float **out,
                                  const lp_tensor_info **info)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors_load_f32: NULL output");
    *out = NULL;
    const lp_tensor_info *t = NULL;
    LP_TRY(lookup(f, name, 0, 0, &t));
    size_t n = (size_t)t->numel;
    float *buf = lp_alloc_array(cat, n ? n : 1, sizeof(float));
    if (!buf) return lp_error_context(LP_ERR_NOMEM, "%s: tensor '%s'", f->path, name);
    lp_status st = lp_dtype_convert_to_f32(t->dtype, t->data, buf, n);
    if (st != LP_OK) {
        lp_free(buf);
        return st;
    }
    *out = buf;
    if (info) *info = t;
    return LP_OK;
}

lp_status lp_safetensors_read_i64(const lp_safetensors *f, const char *name, int64_t *dst, size_t n)
{
    const lp_tensor_info *t = NULL;
    LP_TRY(lookup(f, name, n, 1, &t));
    if (n && !dst) return lp_error(LP_ERR_INVALID_ARG, "%s: tensor '%s': NULL destination", f->path, name);
    const unsigned char *s = t->data;
    switch (t->dtype) {
    case LP_DTYPE_I64: if (n) memcpy(dst, s, n * sizeof(int64_t)); break;
    case LP_DTYPE_I32: CONVERT_LOOP(int32_t, v); break;
    case LP_DTYPE_I16: CONVERT_LOOP(int16_t, v); break;
    case LP_DTYPE_I8: CONVERT_LOOP(int8_t, v); break;
    case LP_DTYPE_U8: CONVERT_LOOP(uint8_t, v); break;
    case LP_DTYPE_BOOL: CONVERT_LOOP(uint8_t, v ? 1 : 0); break;
    case LP_DTYPE_U16: CONVERT_LOOP(uint16_t, v); break;
    case LP_DTYPE_U32: CONVERT_LOOP(uint32_t, v); break;
    case LP_DTYPE_U64:
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, s + i * 8, 8);
            if (v > (uint64_t)INT64_MAX)
                return lp_error(LP_ERR_FORMAT, "%s: tensor '%s': U64 element %zu (%llu) does not fit int64", f->path,
                                name, i, (unsigned long long)v);
            dst[i] = (int64_t)v;
        }
        break;
    default:
        return lp_error(LP_ERR_FORMAT, "%s: tensor '%s' is %s, not an integer type", f->path, name,
                        lp_dtype_name(t->dtype));
    }
    return LP_OK;
}

lp_status lp_safetensors_load_i64(const lp_safetensors *f, const char *name, lp_mem_category cat, int64_t **out,
                                  const lp_tensor_info **info)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_safetensors_load_i64: NULL output");
    *out = NULL;
    const lp_tensor_info *t = NULL;
    LP_TRY(lookup(f, name, 0, 0, &t));
    size_t n = (size_t)t->numel;
    int64_t *buf = lp_alloc_array(cat, n ? n : 1, sizeof(int64_t));
    if (!buf) return lp_error_context(LP_ERR_NOMEM, "%s: tensor '%s'", f->path, name);
    lp_status st = lp_safetensors_read_i64(f, name, buf, n);
    if (st != LP_OK) {
        lp_free(buf);
        return st;
    }
    *out = buf;
    if (info) *info = t;
    return LP_OK;
}
