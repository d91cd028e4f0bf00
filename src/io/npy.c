/* .npy header parsing and dtype conversion (the array format inside .npz). */
#include "leanprop/npz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_dtype_names[LP_NPY_DTYPE_COUNT] = {
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64",
};
static const size_t g_dtype_sizes[LP_NPY_DTYPE_COUNT] = {1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 4, 8};

const char *lp_npy_dtype_name(lp_npy_dtype dt)
{
    return (int)dt >= 0 && dt < LP_NPY_DTYPE_COUNT ? g_dtype_names[dt] : "invalid";
}

size_t lp_npy_dtype_size(lp_npy_dtype dt)
{
    return (int)dt >= 0 && dt < LP_NPY_DTYPE_COUNT ? g_dtype_sizes[dt] : 0;
}

/* ---- a tiny parser for the header's Python dict literal ---- */

typedef struct {
    const char *s, *end;
    const char *what;
} hparser;

static void skip_ws(hparser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int accept(hparser *p, char c)
{
    skip_ws(p);
    if (p->s < p->end && *p->s == c) { p->s++; return 1; }
    return 0;
}

/* A quoted string ('...' or "...") into out[cap]. */
static lp_status parse_string(hparser *p, char *out, size_t cap, const char *field)
{
    skip_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
        return lp_error(LP_ERR_FORMAT, "%s: .npy header: expected a quoted string for %s", p->what, field);
    char q = *p->s++;
    size_t n = 0;
    while (p->s < p->end && *p->s != q) {
        if (n + 1 >= cap) return lp_error(LP_ERR_FORMAT, "%s: .npy header: %s too long", p->what, field);
        out[n++] = *p->s++;
    }
    if (p->s >= p->end) return lp_error(LP_ERR_FORMAT, "%s: .npy header: unterminated string in %s", p->what, field);
    p->s++;
    out[n] = '\0';
    return LP_OK;
}

static int match_word(hparser *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) >= n && memcmp(p->s, w, n) == 0) { p->s += n; return 1; }
    return 0;
}

static lp_status parse_shape(hparser *p, lp_npy_header *h)
{
    if (!accept(p, '(')) return lp_error(LP_ERR_FORMAT, "%s: .npy header: 'shape' is not a tuple", p->what);
    h->ndim = 0;
    for (;;) {
        if (accept(p, ')')) break;
        skip_ws(p);
        if (p->s >= p->end || *p->s < '0' || *p->s > '9')
            return lp_error(LP_ERR_FORMAT, "%s: .npy header: bad 'shape' entry (need non-negative integers)", p->what);
        int64_t v = 0;
        while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
            if (v > (INT64_MAX - 9) / 10) return lp_error(LP_ERR_FORMAT, "%s: .npy header: 'shape' entry overflows", p->what);
            v = v * 10 + (*p->s++ - '0');
        }
        if (p->s < p->end && *p->s == 'L') p->s++; /* Python 2 long */
        if (h->ndim >= LP_NPY_MAX_DIMS)
            return lp_error(LP_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions", p->what, LP_NPY_MAX_DIMS);
        h->shape[h->ndim++] = v;
        if (accept(p, ',')) continue;
        if (accept(p, ')')) break;
        return lp_error(LP_ERR_FORMAT, "%s: .npy header: malformed 'shape' tuple", p->what);
    }
    return LP_OK;
}

static lp_status parse_descr(const char *d, lp_npy_header *h, const char *what)
{
    snprintf(h->descr, sizeof h->descr, "%s", d);
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return lp_error(LP_ERR_UNSUPPORTED, "%s: .npy dtype '%s' not supported", what, d);
    const char *t = d + 1;
    static const struct { const char *code; lp_npy_dtype dt; } map[] = {
        {"b1", LP_NPY_BOOL}, {"?", LP_NPY_BOOL}, {"i1", LP_NPY_I8}, {"u1", LP_NPY_U8}, {"i2", LP_NPY_I16},
        {"u2", LP_NPY_U16}, {"i4", LP_NPY_I32}, {"u4", LP_NPY_U32}, {"i8", LP_NPY_I64}, {"u8", LP_NPY_U64},
        {"f2", LP_NPY_F16}, {"f4", LP_NPY_F32}, {"f8", LP_NPY_F64},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(t, map[i].code) != 0) continue;
        h->dtype = map[i].dt;
        if (order == '|' && g_dtype_sizes[h->dtype] > 1)
            return lp_error(LP_ERR_FORMAT, "%s: .npy dtype '%s' has no byte order", what, d);
        h->big_endian = order == '>';
        return LP_OK;
    }
    return lp_error(LP_ERR_UNSUPPORTED,
                    "%s: .npy dtype '%s' not supported (numeric dtypes only: b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8)",
                    what, d);
}

lp_status lp_npy_parse_header(lp_npy_header *h, const void *buf, size_t len, const char *what)
{
    if (!h || (!buf && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_npy_parse_header: NULL argument");
    if (!what) what = "array";
    memset(h, 0, sizeof *h);
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return lp_error(LP_ERR_FORMAT, "%s: not a .npy array (bad magic)", what);
    int major = b[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return lp_error(LP_ERR_FORMAT, "%s: .npy header truncated", what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        start = 12;
    } else {
        return lp_error(LP_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported (1, 2, 3)", what, major, b[7]);
    }
    if (hlen > len - start)
        return lp_error(LP_ERR_FORMAT, "%s: .npy header truncated (header says %zu bytes, %zu present)", what, hlen,
                        len - start);
    hparser p = {(const char *)b + start, (const char *)b + start + hlen, what};
    if (!accept(&p, '{')) return lp_error(LP_ERR_FORMAT, "%s: .npy header is not a dict", what);
    int have_descr = 0, have_order = 0, have_shape = 0;
    char descr[32];
    for (;;) {
        if (accept(&p, '}')) break;
        char key[32];
        LP_TRY(parse_string(&p, key, sizeof key, "a key"));
        if (!accept(&p, ':')) return lp_error(LP_ERR_FORMAT, "%s: .npy header: expected ':' after '%s'", what, key);
        if (!strcmp(key, "descr")) {
            skip_ws(&p);
            if (p.s < p.end && *p.s == '[')
                return lp_error(LP_ERR_UNSUPPORTED, "%s: structured .npy dtypes are not supported", what);
            LP_TRY(parse_string(&p, descr, sizeof descr, "'descr'"));
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (match_word(&p, "True")) h->fortran_order = 1;
            else if (match_word(&p, "False")) h->fortran_order = 0;
            else return lp_error(LP_ERR_FORMAT, "%s: .npy header: 'fortran_order' must be True or False", what);
            have_order = 1;
        } else if (!strcmp(key, "shape")) {
            LP_TRY(parse_shape(&p, h));
            have_shape = 1;
        } else {
            return lp_error(LP_ERR_FORMAT, "%s: .npy header: unexpected key '%s'", what, key);
        }
        if (accept(&p, ',')) continue;
        if (accept(&p, '}')) break;
        return lp_error(LP_ERR_FORMAT, "%s: .npy header: malformed dict", what);
    }
    if (!have_descr || !have_order || !have_shape)
        return lp_error(LP_ERR_FORMAT, "%s: .npy header lacks '%s'", what,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    LP_TRY(parse_descr(descr, h, what));
    int64_t numel = 1;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] != 0 && numel > INT64_MAX / 8 / h->shape[i])
            return lp_error(LP_ERR_FORMAT, "%s: .npy shape overflows", what);
        numel *= h->shape[i];
    }
    h->numel = numel;
    h->data_offset = start + hlen;
    h->data_bytes = (size_t)numel * g_dtype_sizes[h->dtype];
    if (h->data_bytes > len - h->data_offset)
        return lp_error(LP_ERR_FORMAT, "%s: .npy data truncated (shape needs %zu bytes, %zu present)", what,
                        h->data_bytes, len - h->data_offset);
    return LP_OK;
}

/* ---- element access ---- */

static int host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 0;
}

static void load_bytes(unsigned char *dst, const unsigned char *src, size_t n, int swap)
{
    if (n > 8) n = 8;
    if (!swap) { memcpy(dst, src, n); return; }
    for (size_t i = 0; i < n; i++) dst[i] = src[n - 1 - i];
}

static float half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0) v = ldexpf((float)mant, -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = ldexpf((float)(mant | 0x400), exp - 25);
    return sign ? -v : v;
}

/* Element i (storage order) as double, or as exact int64 (is_int set for integer dtypes). */
static void element(const lp_npy_header *h, const unsigned char *data, int64_t i, int swap, double *d, int64_t *iv,
                    uint64_t *uv)
{
    size_t sz = g_dtype_sizes[h->dtype];
    unsigned char raw[8];
    load_bytes(raw, data + (size_t)i * sz, sz, swap);
    *uv = 0;
    switch (h->dtype) {
    case LP_NPY_BOOL: *iv = raw[0] != 0; break;
    case LP_NPY_I8: { int8_t v; memcpy(&v, raw, 1); *iv = v; break; }
    case LP_NPY_U8: *iv = raw[0]; break;
    case LP_NPY_I16: { int16_t v; memcpy(&v, raw, 2); *iv = v; break; }
    case LP_NPY_U16: { uint16_t v; memcpy(&v, raw, 2); *iv = v; break; }
    case LP_NPY_I32: { int32_t v; memcpy(&v, raw, 4); *iv = v; break; }
    case LP_NPY_U32: { uint32_t v; memcpy(&v, raw, 4); *iv = v; break; }
    case LP_NPY_I64: { int64_t v; memcpy(&v, raw, 8); *iv = v; break; }
    case LP_NPY_U64: { uint64_t v; memcpy(&v, raw, 8); *uv = v; *iv = v > INT64_MAX ? -1 : (int64_t)v; *d = (double)v; return; }
    case LP_NPY_F16: { uint16_t v; memcpy(&v, raw, 2); *d = half_to_float(v); return; }
    case LP_NPY_F32: { float v; memcpy(&v, raw, 4); *d = v; return; }
    case LP_NPY_F64: { double v; memcpy(&v, raw, 8); *d = v; return; }
    default: *iv = 0; break;
    }
    *d = (double)*iv;
}

/* Storage index of C-order element c (fortran arrays store the first axis fastest). */
static int64_t storage_index(const lp_npy_header *h, int64_t c)
{
    if (!h->fortran_order || h->ndim < 2) return c;
    int64_t idx[LP_NPY_MAX_DIMS];
    for (int d = h->ndim - 1; d >= 0; d--) { idx[d] = c % h->shape[d]; c /= h->shape[d]; }
    int64_t s = 0;
    for (int d = h->ndim - 1; d >= 0; d--) s = s * h->shape[d] + idx[d];
    return s;
}

static lp_status check_convert_args(const void *dst, size_t n, const lp_npy_header *h, const void *buf, const char *what)
{
    if (!dst || !h || !buf) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument to .npy conversion", what);
    if ((int)h->dtype < 0 || h->dtype >= LP_NPY_DTYPE_COUNT)
        return lp_error(LP_ERR_INVALID_ARG, "%s: invalid dtype", what);
    if ((int64_t)n != h->numel)
        return lp_error(LP_ERR_INVALID_ARG, "%s: destination holds %zu values, array has %lld", what, n,
                        (long long)h->numel);
    return LP_OK;
}

lp_status lp_npy_convert_f32(float *dst, size_t n, const lp_npy_header *h, const void *buf, int reject_nonfinite,
                             const char *what)
{
    if (!what) what = "array";
    LP_TRY(check_convert_args(dst, n, h, buf, what));
    const unsigned char *data = (const unsigned char *)buf + h->data_offset;
    int swap = (h->big_endian != host_big_endian()) && g_dtype_sizes[h->dtype] > 1;
    if (h->dtype == LP_NPY_F32 && !swap && !h->fortran_order) {
        memcpy(dst, data, n * sizeof(float));
    } else {
        for (size_t c = 0; c < n; c++) {
            double d; int64_t iv; uint64_t uv;
            element(h, data, storage_index(h, (int64_t)c), swap, &d, &iv, &uv);
            dst[c] = (float)d;
        }
    }
    if (reject_nonfinite)
        for (size_t c = 0; c < n; c++)
            if (!isfinite(dst[c]))
                return lp_error(LP_ERR_FORMAT, "%s: element %zu is not finite (%g)", what, c, (double)dst[c]);
    return LP_OK;
}

lp_status lp_npy_convert_i64(int64_t *dst, size_t n, const lp_npy_header *h, const void *buf, const char *what)
{
    if (!what) what = "array";
    LP_TRY(check_convert_args(dst, n, h, buf, what));
    const unsigned char *data = (const unsigned char *)buf + h->data_offset;
    int swap = (h->big_endian != host_big_endian()) && g_dtype_sizes[h->dtype] > 1;
    int is_float = h->dtype == LP_NPY_F16 || h->dtype == LP_NPY_F32 || h->dtype == LP_NPY_F64;
    for (size_t c = 0; c < n; c++) {
        double d; int64_t iv; uint64_t uv;
        element(h, data, storage_index(h, (int64_t)c), swap, &d, &iv, &uv);
        if (is_float) {
            if (!(d == floor(d)) || !(fabs(d) < 9.2e18))
                return lp_error(LP_ERR_FORMAT, "%s: element %zu (%g) is not an integer", what, c, d);
            iv = (int64_t)d;
        } else if (h->dtype == LP_NPY_U64 && uv > (uint64_t)INT64_MAX) {
            return lp_error(LP_ERR_FORMAT, "%s: element %zu (%llu) exceeds int64", what, c, (unsigned long long)uv);
        }
        dst[c] = iv;
    }
    return LP_OK;
}
