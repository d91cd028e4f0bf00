/* .npz archives: leanprop's own zip central-directory reader (stored and
 * deflate members, zip64 records), with every offset and size validated
 * against the file and each member's CRC-32 verified. */
#include "leanprop/npz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
    char *name;            /* without ".npy" */
    uint16_t method;       /* 0 stored, 8 deflate */
    uint16_t flags;
    uint32_t crc;
    uint64_t comp_size, size, local_offset;
} npz_member;

struct lp_npz {
    char *path;
    const unsigned char *buf;
    size_t len;
    int mapped;
    int n;
    npz_member *m;
};

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static char *dupstr(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void lp_npz_close(lp_npz *z)
{
    if (!z) return;
    for (int i = 0; i < z->n; i++) free(z->m[i].name);
    free(z->m);
    if (z->mapped && z->buf) munmap((void *)z->buf, z->len);
    free(z->path);
    free(z);
}

const char *lp_npz_path(const lp_npz *z) { return z ? z->path : ""; }
int lp_npz_count(const lp_npz *z) { return z ? z->n : 0; }
const char *lp_npz_name(const lp_npz *z, int i) { return z && i >= 0 && i < z->n ? z->m[i].name : NULL; }

int lp_npz_find(const lp_npz *z, const char *name)
{
    if (!z || !name) return -1;
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, ".npy")) n -= 4;
    for (int i = z->n - 1; i >= 0; i--) /* a repeated name: the last one wins, as in numpy */
        if (strlen(z->m[i].name) == n && !strncmp(z->m[i].name, name, n)) return i;
    return -1;
}

/* Locate the end-of-central-directory record; fill entry count, cd offset and size. */
static lp_status find_directory(lp_npz *z, uint64_t *n_entries, uint64_t *cd_off, uint64_t *cd_size)
{
    const unsigned char *b = z->buf;
    size_t len = z->len;
    if (len < 22) return lp_error(LP_ERR_FORMAT, "%s: too short to be a zip/npz archive (%zu bytes)", z->path, len);
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    size_t pos = len - 22;
    for (;;) {
        if (rd32(b + pos) == 0x06054b50 && pos + 22 + rd16(b + pos + 20) == len) break;
        if (pos == lo)
            return lp_error(LP_ERR_FORMAT, "%s: no zip end-of-central-directory record (truncated or not an npz)",
                            z->path);
        pos--;
    }
    if (rd16(b + pos + 4) != 0 || rd16(b + pos + 6) != 0)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", z->path);
    *n_entries = rd16(b + pos + 10);
    *cd_size = rd32(b + pos + 12);
    *cd_off = rd32(b + pos + 16);
    if (*n_entries == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
        /* zip64: locator 20 bytes before the EOCD points at the zip64 EOCD */
        if (pos < 20 || rd32(b + pos - 20) != 0x07064b50)
            return lp_error(LP_ERR_FORMAT, "%s: zip64 archive without a zip64 locator", z->path);
        uint64_t off = rd64(b + pos - 20 + 8);
        if (off > pos - 20 || pos - 20 - off < 56 || rd32(b + off) != 0x06064b50)
            return lp_error(LP_ERR_FORMAT, "%s: zip64 end-of-central-directory record out of range", z->path);
        *n_entries = rd64(b + off + 32);
        *cd_size = rd64(b + off + 40);
        *cd_off = rd64(b + off + 48);
        pos = (size_t)off;
    }
    if (*cd_off > pos || *cd_size > pos - *cd_off)
        return lp_error(LP_ERR_FORMAT, "%s: zip central directory (offset %llu, %llu bytes) lies outside the file",
                        z->path, (unsigned long long)*cd_off, (unsigned long long)*cd_size);
    if (*n_entries > *cd_size / 46)
        return lp_error(LP_ERR_FORMAT, "%s: zip directory claims %llu entries in %llu bytes", z->path,
                        (unsigned long long)*n_entries, (unsigned long long)*cd_size);
    return LP_OK;
}

/* Apply a zip64 extended-information extra field to the fields that overflowed. */
static lp_status apply_zip64_extra(lp_npz *z, npz_member *m, const unsigned char *extra, size_t elen, const char *name)
{
    size_t p = 0;
    while (p + 4 <= elen) {
        uint16_t id = rd16(extra + p), sz = rd16(extra + p + 2);
        if (sz > elen - p - 4) break;
        if (id == 0x0001) {
            const unsigned char *e = extra + p + 4;
            size_t q = 0;
            if (m->size == 0xFFFFFFFFu) { if (q + 8 > sz) goto bad; m->size = rd64(e + q); q += 8; }
            if (m->comp_size == 0xFFFFFFFFu) { if (q + 8 > sz) goto bad; m->comp_size = rd64(e + q); q += 8; }
            if (m->local_offset == 0xFFFFFFFFu) { if (q + 8 > sz) goto bad; m->local_offset = rd64(e + q); q += 8; }
            return LP_OK;
        }
        p += 4 + (size_t)sz;
    }
    if (m->size == 0xFFFFFFFFu || m->comp_size == 0xFFFFFFFFu || m->local_offset == 0xFFFFFFFFu) goto bad;
    return LP_OK;
bad:
    return lp_error(LP_ERR_FORMAT, "%s: member '%s': bad zip64 extra field", z->path, name);
}

static lp_status read_directory(lp_npz *z)
{
    uint64_t n_entries = 0, cd_off = 0, cd_size = 0;
    LP_TRY(find_directory(z, &n_entries, &cd_off, &cd_size));
    z->m = calloc(n_entries ? n_entries : 1, sizeof *z->m);
    if (!z->m) return lp_error(LP_ERR_NOMEM, "%s: out of memory for the zip directory", z->path);
    const unsigned char *b = z->buf;
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (end - p < 46 || rd32(b + p) != 0x02014b50)
            return lp_error(LP_ERR_FORMAT, "%s: zip central directory entry %llu is malformed", z->path,
                            (unsigned long long)i);
        npz_member *m = &z->m[i];
        m->flags = rd16(b + p + 8);
        m->method = rd16(b + p + 10);
        m->crc = rd32(b + p + 16);
        m->comp_size = rd32(b + p + 20);
        m->size = rd32(b + p + 24);
        size_t nlen = rd16(b + p + 28), elen = rd16(b + p + 30), clen = rd16(b + p + 32);
        m->local_offset = rd32(b + p + 42);
        if (nlen + elen + clen > end - p - 46)
            return lp_error(LP_ERR_FORMAT, "%s: zip central directory entry %llu overruns the directory", z->path,
                            (unsigned long long)i);
        const char *name = (const char *)b + p + 46;
        size_t stem = nlen >= 4 && !memcmp(name + nlen - 4, ".npy", 4) ? nlen - 4 : nlen;
        m->name = dupstr(name, stem);
        z->n = (int)(i + 1);
        if (!m->name) return lp_error(LP_ERR_NOMEM, "%s: out of memory", z->path);
        if (memchr(m->name, '\0', stem))
            return lp_error(LP_ERR_FORMAT, "%s: zip member %llu has a NUL in its name", z->path, (unsigned long long)i);
        LP_TRY(apply_zip64_extra(z, m, b + p + 46 + nlen, elen, m->name));
        p += 46 + nlen + elen + clen;
    }
    return LP_OK;
}

static lp_status open_common(lp_npz **out, lp_npz *z)
{
    lp_status st = read_directory(z);
    if (st != LP_OK) { lp_npz_close(z); return st; }
    *out = z;
    return LP_OK;
}

lp_status lp_npz_open_memory(lp_npz **out, const void *buf, size_t len, const char *name)
{
    if (!out || (!buf && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_npz_open_memory: NULL argument");
    *out = NULL;
    lp_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = dupstr(name ? name : "<memory>", strlen(name ? name : "<memory>")))) {
        free(z);
        return lp_error(LP_ERR_NOMEM, "out of memory opening an npz");
    }
    z->buf = buf;
    z->len = len;
    return open_common(out, z);
}

lp_status lp_npz_open(lp_npz **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_npz_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lp_error(LP_ERR_IO, "%s: cannot open", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lp_error(LP_ERR_IO, "%s: not a regular file", path);
    }
    lp_npz *z = calloc(1, sizeof *z);
    if (!z || !(z->path = dupstr(path, strlen(path)))) {
        free(z);
        close(fd);
        return lp_error(LP_ERR_NOMEM, "out of memory opening %s", path);
    }
    z->len = (size_t)sb.st_size;
    if (z->len > 0) {
        void *map = mmap(NULL, z->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            lp_npz_close(z);
            return lp_error(LP_ERR_IO, "%s: cannot map the file", path);
        }
        z->buf = map;
        z->mapped = 1;
    }
    close(fd);
    return open_common(out, z);
}

/* The uncompressed bytes of member i: either a pointer into the archive or a
 * fresh scratch buffer (*owned, free with lp_free). */
static lp_status member_bytes(const lp_npz *z, int i, const unsigned char **data, size_t *len, void **owned)
{
    const npz_member *m = &z->m[i];
    *owned = NULL;
    if (m->flags & 1) return lp_error(LP_ERR_UNSUPPORTED, "%s: member '%s' is encrypted", z->path, m->name);
    if (m->method != 0 && m->method != 8)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: member '%s' uses zip compression method %u (stored and deflate only)",
                        z->path, m->name, m->method);
    const unsigned char *b = z->buf;
    uint64_t lo = m->local_offset;
    if (lo > z->len || z->len - lo < 30 || rd32(b + lo) != 0x04034b50)
        return lp_error(LP_ERR_FORMAT, "%s: member '%s': local header at offset %llu is missing or truncated", z->path,
                        m->name, (unsigned long long)lo);
    uint64_t start = lo + 30 + (uint64_t)rd16(b + lo + 26) + rd16(b + lo + 28);
    if (start > z->len || m->comp_size > z->len - start)
        return lp_error(LP_ERR_FORMAT, "%s: member '%s' is truncated (%llu bytes at offset %llu, file has %zu)", z->path,
                        m->name, (unsigned long long)m->comp_size, (unsigned long long)start, z->len);
    if (m->size > SIZE_MAX / 2)
        return lp_error(LP_ERR_FORMAT, "%s: member '%s' claims %llu bytes", z->path, m->name, (unsigned long long)m->size);
    const unsigned char *src = b + start;
    if (m->method == 0) {
        if (m->comp_size != m->size)
            return lp_error(LP_ERR_FORMAT, "%s: stored member '%s' has differing sizes (%llu vs %llu)", z->path,
                            m->name, (unsigned long long)m->comp_size, (unsigned long long)m->size);
        *data = src;
        *len = (size_t)m->size;
    } else {
        /* deflate expands at most ~1032:1; anything beyond is a corrupt or hostile size */
        if (m->size > m->comp_size * 1040 + 1024)
            return lp_error(LP_ERR_FORMAT, "%s: member '%s' claims %llu bytes from %llu compressed", z->path, m->name,
                            (unsigned long long)m->size, (unsigned long long)m->comp_size);
        unsigned char *dst = lp_alloc(LP_MEM_SCRATCH, m->size ? (size_t)m->size : 1);
        if (!dst) return lp_error_context(LP_ERR_NOMEM, "%s: member '%s'", z->path, m->name);
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
            lp_free(dst);
            return lp_error(LP_ERR_INTERNAL, "%s: zlib inflateInit failed", z->path);
        }
        /* feed in chunks: avail_in/avail_out are 32-bit */
        uint64_t in_left = m->comp_size, out_left = m->size;
        s.next_in = (unsigned char *)src;
        s.next_out = dst;
        int rc = Z_OK;
        while (rc == Z_OK) { /* Z_BUF_ERROR: input exhausted or output full before the end */
            if (s.avail_in == 0) { s.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left; in_left -= s.avail_in; }
            if (s.avail_out == 0) { s.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left; out_left -= s.avail_out; }
            rc = inflate(&s, Z_NO_FLUSH);
        }
        uint64_t produced = s.total_out;
        inflateEnd(&s);
        if (rc != Z_STREAM_END || produced != m->size) {
            lp_free(dst);
            return lp_error(LP_ERR_FORMAT, "%s: member '%s': deflate data is corrupt or truncated (%s)", z->path,
                            m->name, rc == Z_STREAM_END ? "wrong size" : rc == Z_DATA_ERROR ? "bad data" : "ends early");
        }
        *data = dst;
        *len = (size_t)m->size;
        *owned = dst;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t left = *len;
    const unsigned char *q = *data;
    while (left) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, q, chunk);
        q += chunk;
        left -= chunk;
    }
    if ((uint32_t)crc != m->crc) {
        lp_free(*owned);
        *owned = NULL;
        return lp_error(LP_ERR_FORMAT, "%s: member '%s' fails its CRC-32 check (corrupt archive)", z->path, m->name);
    }
    return LP_OK;
}

typedef struct {
    const unsigned char *data;
    size_t len;
    void *owned;
    char what[256];
} member_view;

static lp_status open_member(const lp_npz *z, const char *name, member_view *v, lp_npy_header *h)
{
    memset(v, 0, sizeof *v);
    if (!z || !name) return lp_error(LP_ERR_INVALID_ARG, "npz: NULL argument");
    int i = lp_npz_find(z, name);
    if (i < 0) return lp_error(LP_ERR_NOT_FOUND, "%s: no array '%s'", z->path, name);
    snprintf(v->what, sizeof v->what, "%s: %s", z->path, z->m[i].name);
    LP_TRY(member_bytes(z, i, &v->data, &v->len, &v->owned));
    lp_status st = lp_npy_parse_header(h, v->data, v->len, v->what);
    if (st != LP_OK) { lp_free(v->owned); v->owned = NULL; }
    return st;
}

lp_status lp_npz_header(const lp_npz *z, const char *name, lp_npy_header *h)
{
    member_view v;
    lp_npy_header tmp;
    LP_TRY(open_member(z, name, &v, h ? h : &tmp));
    lp_free(v.owned);
    return LP_OK;
}

lp_status lp_npz_load_f32(const lp_npz *z, const char *name, lp_mem_category cat, float **out, lp_npy_header *h)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_npz_load_f32: NULL out");
    *out = NULL;
    member_view v;
    lp_npy_header tmp, *hh = h ? h : &tmp;
    LP_TRY(open_member(z, name, &v, hh));
    size_t n = (size_t)hh->numel;
    float *dst = lp_alloc_array(cat, n ? n : 1, sizeof(float));
    lp_status st = dst ? lp_npy_convert_f32(dst, n, hh, v.data, 0, v.what) : lp_error_context(LP_ERR_NOMEM, "%s", v.what);
    lp_free(v.owned);
    if (st != LP_OK) { lp_free(dst); return st; }
    *out = dst;
    return LP_OK;
}

lp_status lp_npz_load_i64(const lp_npz *z, const char *name, lp_mem_category cat, int64_t **out, lp_npy_header *h)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_npz_load_i64: NULL out");
    *out = NULL;
    member_view v;
    lp_npy_header tmp, *hh = h ? h : &tmp;
    LP_TRY(open_member(z, name, &v, hh));
    size_t n = (size_t)hh->numel;
    int64_t *dst = lp_alloc_array(cat, n ? n : 1, sizeof(int64_t));
    lp_status st = dst ? lp_npy_convert_i64(dst, n, hh, v.data, v.what) : lp_error_context(LP_ERR_NOMEM, "%s", v.what);
    lp_free(v.owned);
    if (st != LP_OK) { lp_free(dst); return st; }
    *out = dst;
    return LP_OK;
}
