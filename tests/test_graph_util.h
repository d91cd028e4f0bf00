/* Test helpers for the graph tests: build .npy images and .npz (zip) archives
 * in memory, stored or deflate-compressed, optionally with zip64 records. */
#ifndef LEANPROP_TEST_GRAPH_UTIL_H
#define LEANPROP_TEST_GRAPH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    unsigned char *p;
    size_t n, cap;
} tbuf;

static inline void tb_put(tbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static inline void tb_u16(tbuf *b, unsigned v) { unsigned char c[2] = {v & 255, (v >> 8) & 255}; tb_put(b, c, 2); }
static inline void tb_u32(tbuf *b, uint32_t v) { tb_u16(b, v & 0xffff); tb_u16(b, v >> 16); }
static inline void tb_u64(tbuf *b, uint64_t v) { tb_u32(b, (uint32_t)v); tb_u32(b, (uint32_t)(v >> 32)); }

/* An .npy image: header dict {descr, fortran_order, shape} padded to 64 bytes, then data. */
static inline tbuf make_npy(const char *descr, int fortran, const char *shape, const void *data, size_t nbytes, int version)
{
    char dict[512];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                      fortran ? "True" : "False", shape);
    size_t pre = version == 1 ? 10 : 12;
    size_t total = pre + (size_t)dl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)dl + pad + 1;
    tbuf b = {0};
    tb_put(&b, "\x93NUMPY", 6);
    unsigned char ver[2] = {(unsigned char)version, 0};
    tb_put(&b, ver, 2);
    if (version == 1) tb_u16(&b, (unsigned)hlen);
    else tb_u32(&b, (uint32_t)hlen);
    tb_put(&b, dict, (size_t)dl);
    for (size_t i = 0; i < pad; i++) tb_put(&b, " ", 1);
    tb_put(&b, "\n", 1);
    if (nbytes) tb_put(&b, data, nbytes);
    return b;
}

typedef struct {
    const char *name;       /* with .npy */
    const void *data;
    size_t n;
} zmember;

/* A zip of the members; deflate = compress them; zip64 = put sizes in zip64 extras. */
static inline tbuf make_zip(const zmember *m, int count, int compress, int zip64)
{
    tbuf z = {0}, cd = {0};
    for (int i = 0; i < count; i++) {
        uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].n);
        unsigned char *comp = NULL;
        size_t clen = m[i].n;
        if (compress) {
            uLongf bound = compressBound((uLong)m[i].n) + 64;
            comp = malloc(bound);
            z_stream s;
            memset(&s, 0, sizeof s);
            deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
            s.next_in = (unsigned char *)m[i].data;
            s.avail_in = (uInt)m[i].n;
            s.next_out = comp;
            s.avail_out = (uInt)bound;
            deflate(&s, Z_FINISH);
            clen = s.total_out;
            deflateEnd(&s);
        }
        uint32_t off = (uint32_t)z.n;
        size_t nl = strlen(m[i].name);
        tb_u32(&z, 0x04034b50); tb_u16(&z, 20); tb_u16(&z, 0); tb_u16(&z, compress ? 8 : 0);
        tb_u16(&z, 0); tb_u16(&z, 0x21); tb_u32(&z, crc); tb_u32(&z, (uint32_t)clen); tb_u32(&z, (uint32_t)m[i].n);
        tb_u16(&z, (unsigned)nl); tb_u16(&z, 0);
        tb_put(&z, m[i].name, nl);
        tb_put(&z, compress ? comp : m[i].data, clen);
        free(comp);
        tb_u32(&cd, 0x02014b50); tb_u16(&cd, 45); tb_u16(&cd, 20); tb_u16(&cd, 0); tb_u16(&cd, compress ? 8 : 0);
        tb_u16(&cd, 0); tb_u16(&cd, 0x21); tb_u32(&cd, crc);
        tb_u32(&cd, zip64 ? 0xFFFFFFFFu : (uint32_t)clen); tb_u32(&cd, zip64 ? 0xFFFFFFFFu : (uint32_t)m[i].n);
        tb_u16(&cd, (unsigned)nl); tb_u16(&cd, zip64 ? 28 : 0); tb_u16(&cd, 0); tb_u16(&cd, 0); tb_u16(&cd, 0);
        tb_u32(&cd, 0); tb_u32(&cd, zip64 ? 0xFFFFFFFFu : off);
        tb_put(&cd, m[i].name, nl);
        if (zip64) { tb_u16(&cd, 1); tb_u16(&cd, 24); tb_u64(&cd, m[i].n); tb_u64(&cd, clen); tb_u64(&cd, off); }
    }
    uint32_t cd_off = (uint32_t)z.n;
    tb_put(&z, cd.p, cd.n);
    if (zip64) {
        uint64_t z64 = z.n;
        tb_u32(&z, 0x06064b50); tb_u64(&z, 44); tb_u16(&z, 45); tb_u16(&z, 45); tb_u32(&z, 0); tb_u32(&z, 0);
        tb_u64(&z, (uint64_t)count); tb_u64(&z, (uint64_t)count); tb_u64(&z, cd.n); tb_u64(&z, cd_off);
        tb_u32(&z, 0x07064b50); tb_u32(&z, 0); tb_u64(&z, z64); tb_u32(&z, 1);
    }
    tb_u32(&z, 0x06054b50); tb_u16(&z, 0); tb_u16(&z, 0);
    tb_u16(&z, zip64 ? 0xFFFF : (unsigned)count); tb_u16(&z, zip64 ? 0xFFFF : (unsigned)count);
    tb_u32(&z, zip64 ? 0xFFFFFFFFu : (uint32_t)cd.n); tb_u32(&z, zip64 ? 0xFFFFFFFFu : cd_off); tb_u16(&z, 0);
    free(cd.p);
    return z;
}

/* A small graph npz in the gnn-benchmark layout: 4 nodes, path 0-1-2-3 (directed one way),
 * 3 features (CSR), labels 0 1 0 1. Fields may be overridden by name (NULL data = drop). */
typedef struct {
    const char *name;
    tbuf npy;
} npz_field;

static inline void npz_fields_default(npz_field f[9])
{
    static const float adj_data[3] = {1, 1, 1};
    static const int32_t adj_indices[3] = {1, 2, 3}, adj_indptr[5] = {0, 1, 2, 3, 3};
    static const int64_t adj_shape[2] = {4, 4}, attr_shape[2] = {4, 3};
    static const float attr_data[5] = {1, 1, 1, 1, 1};
    static const int32_t attr_indices[5] = {0, 1, 1, 2, 0}, attr_indptr[5] = {0, 2, 3, 4, 5};
    static const int8_t labels[4] = {0, 1, 0, 1};
    f[0] = (npz_field){"adj_data.npy", make_npy("<f4", 0, "(3,)", adj_data, sizeof adj_data, 1)};
    f[1] = (npz_field){"adj_indices.npy", make_npy("<i4", 0, "(3,)", adj_indices, sizeof adj_indices, 1)};
    f[2] = (npz_field){"adj_indptr.npy", make_npy("<i4", 0, "(5,)", adj_indptr, sizeof adj_indptr, 1)};
    f[3] = (npz_field){"adj_shape.npy", make_npy("<i8", 0, "(2,)", adj_shape, sizeof adj_shape, 1)};
    f[4] = (npz_field){"attr_data.npy", make_npy("<f4", 0, "(5,)", attr_data, sizeof attr_data, 1)};
    f[5] = (npz_field){"attr_indices.npy", make_npy("<i4", 0, "(5,)", attr_indices, sizeof attr_indices, 1)};
    f[6] = (npz_field){"attr_indptr.npy", make_npy("<i4", 0, "(5,)", attr_indptr, sizeof attr_indptr, 1)};
    f[7] = (npz_field){"attr_shape.npy", make_npy("<i8", 0, "(2,)", attr_shape, sizeof attr_shape, 1)};
    f[8] = (npz_field){"labels.npy", make_npy("|i1", 0, "(4,)", labels, sizeof labels, 1)};
}

static inline void npz_fields_set(npz_field f[9], const char *name, tbuf npy)
{
    for (int i = 0; i < 9; i++)
        if (!strcmp(f[i].name, name)) { free(f[i].npy.p); f[i].npy = npy; return; }
}

/* Write the fields (those with data) as an npz to a temp file; frees the fields. */
static inline const char *npz_fields_write(npz_field f[9], int deflate)
{
    zmember m[9];
    int n = 0;
    for (int i = 0; i < 9; i++)
        if (f[i].npy.p) m[n++] = (zmember){f[i].name, f[i].npy.p, f[i].npy.n};
    tbuf z = make_zip(m, n, deflate, 0);
    const char *path = lp_test_write_temp(".npz", z.p, z.n);
    free(z.p);
    for (int i = 0; i < 9; i++) free(f[i].npy.p);
    return path;
}

#endif
