/* .npy / .npz reader: real files (cora.npz), every dtype and version, stored and
 * deflate members, zip64 records, and malformed input of each kind. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/npz.h"
#include "leanprop/status.h"
#include "test_graph_util.h"

static void test_cora_members(void **state)
{
    (void)state;
    const char *path = lp_test_shared("data/graphs/cora.npz");
    if (!path) LP_SKIP("cora.npz not found (set LEANPROP_SHARED)");
    lp_npz *z;
    LP_ASSERT_OK(lp_npz_open(&z, path));
    assert_int_equal(lp_npz_count(z), 11);
    assert_true(lp_npz_find(z, "adj_indptr") >= 0);
    assert_true(lp_npz_find(z, "adj_indptr.npy") >= 0);
    assert_int_equal(lp_npz_find(z, "nope"), -1);
    lp_npy_header h;
    int64_t *shape;
    LP_ASSERT_OK(lp_npz_load_i64(z, "adj_shape", LP_MEM_SCRATCH, &shape, &h));
    assert_int_equal(h.dtype, LP_NPY_I64);
    assert_int_equal(shape[0], 2708);
    assert_int_equal(shape[1], 2708);
    lp_free(shape);
    int64_t *labels;
    LP_ASSERT_OK(lp_npz_load_i64(z, "labels", LP_MEM_SCRATCH, &labels, &h));
    assert_int_equal(h.dtype, LP_NPY_I8);
    assert_int_equal(h.numel, 2708);
    int64_t counts[7] = {0}, expect[7] = {298, 418, 818, 426, 217, 180, 351};
    for (int i = 0; i < 2708; i++) {
        assert_true(labels[i] >= 0 && labels[i] < 7);
        counts[labels[i]]++;
    }
    for (int c = 0; c < 7; c++) assert_int_equal(counts[c], expect[c]);
    lp_free(labels);
    float *data;
    LP_ASSERT_OK(lp_npz_load_f32(z, "attr_data", LP_MEM_SCRATCH, &data, &h));
    assert_int_equal(h.numel, 49216);
    lp_free(data);
    /* node_names is a unicode array: unsupported when asked for, never read otherwise */
    assert_int_equal(lp_npz_header(z, "node_names", &h), LP_ERR_UNSUPPORTED);
    assert_non_null(strstr(lp_error_message(), "node_names"));
    assert_non_null(strstr(lp_error_message(), "<U7"));
    assert_int_equal(lp_npz_load_f32(z, "missing", LP_MEM_SCRATCH, &data, NULL), LP_ERR_NOT_FOUND);
    lp_npz_close(z);
}

static void test_npy_dtypes_and_versions(void **state)
{
    (void)state;
    struct { const char *descr; unsigned char bytes[32]; size_t n; double expect[4]; } cases[] = {
        {"|b1", {1, 0, 1, 1}, 4, {1, 0, 1, 1}},
        {"|i1", {0xff, 2, 0x80, 0}, 4, {-1, 2, -128, 0}},
        {"|u1", {0xff, 2, 0x80, 0}, 4, {255, 2, 128, 0}},
        {"<i2", {0xfe, 0xff, 1, 0, 0, 0x80, 7, 0}, 8, {-2, 1, -32768, 7}},
        {">i2", {0xff, 0xfe, 0, 1, 0x80, 0, 0, 7}, 8, {-2, 1, -32768, 7}},
        {"<u2", {0xfe, 0xff, 1, 0, 0, 0x80, 7, 0}, 8, {65534, 1, 32768, 7}},
        {"<f2", {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x38}, 8, {1, -2, 0, 0.5}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int version = 1; version <= 3; version++) {
            tbuf b = make_npy(cases[c].descr, 0, "(4,)", cases[c].bytes, cases[c].n, version);
            lp_npy_header h;
            LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, cases[c].descr));
            assert_int_equal(h.numel, 4);
            assert_int_equal(h.data_offset % 64, 0);
            float f[4];
            int64_t iv[4];
            LP_ASSERT_OK(lp_npy_convert_f32(f, 4, &h, b.p, 1, "t"));
            for (int i = 0; i < 4; i++) LP_ASSERT_CLOSE(f[i], cases[c].expect[i], 0, 0, cases[c].descr);
            if (strcmp(cases[c].descr, "<f2") != 0) {
                LP_ASSERT_OK(lp_npy_convert_i64(iv, 4, &h, b.p, "t"));
                for (int i = 0; i < 4; i++) assert_int_equal(iv[i], (int64_t)cases[c].expect[i]);
            } else {
                assert_int_equal(lp_npy_convert_i64(iv, 4, &h, b.p, "t"), LP_ERR_FORMAT); /* 0.5 */
            }
            free(b.p);
        }
    }
    /* 64-bit and 32-bit types, both byte orders */
    int64_t i64[3] = {-5, 1LL << 40, 7};
    double f64[3] = {1.5, -2.25, 1e10};
    float f32[3] = {0.25f, -1, 3};
    int32_t i32[3] = {-7, 100000, 3};
    uint32_t u32[3] = {4000000000u, 0, 9};
    uint64_t u64[3] = {1, 2, 3};
    tbuf b;
    lp_npy_header h;
    int64_t iv[3];
    float f[3];
    b = make_npy("<i8", 0, "(3,)", i64, sizeof i64, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "i8"));
    LP_ASSERT_OK(lp_npy_convert_i64(iv, 3, &h, b.p, "i8"));
    assert_int_equal(iv[1], 1LL << 40);
    free(b.p);
    b = make_npy("<f8", 0, "(3,)", f64, sizeof f64, 2);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "f8"));
    LP_ASSERT_OK(lp_npy_convert_f32(f, 3, &h, b.p, 1, "f8"));
    assert_true(f[0] == 1.5f && f[1] == -2.25f && f[2] == 1e10f);
    assert_int_equal(lp_npy_convert_i64(iv, 3, &h, b.p, "f8"), LP_ERR_FORMAT); /* 1.5 is not an integer */
    free(b.p);
    b = make_npy("<f4", 0, "(3,)", f32, sizeof f32, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "f4"));
    LP_ASSERT_OK(lp_npy_convert_f32(f, 3, &h, b.p, 1, "f4"));
    assert_true(f[0] == 0.25f && f[1] == -1 && f[2] == 3);
    free(b.p);
    b = make_npy("<i4", 0, "(3,)", i32, sizeof i32, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "i4"));
    LP_ASSERT_OK(lp_npy_convert_i64(iv, 3, &h, b.p, "i4"));
    assert_true(iv[0] == -7 && iv[1] == 100000);
    free(b.p);
    b = make_npy("<u4", 0, "(3,)", u32, sizeof u32, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "u4"));
    LP_ASSERT_OK(lp_npy_convert_i64(iv, 3, &h, b.p, "u4"));
    assert_int_equal(iv[0], 4000000000LL);
    free(b.p);
    b = make_npy("<u8", 0, "(3,)", u64, sizeof u64, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "u8"));
    LP_ASSERT_OK(lp_npy_convert_i64(iv, 3, &h, b.p, "u8"));
    assert_int_equal(iv[2], 3);
    free(b.p);
    /* NaN rejected only on request */
    float bad[2] = {1, NAN};
    b = make_npy("<f4", 0, "(2,)", bad, sizeof bad, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "nan"));
    LP_ASSERT_OK(lp_npy_convert_f32(f, 2, &h, b.p, 0, "nan"));
    assert_int_equal(lp_npy_convert_f32(f, 2, &h, b.p, 1, "nan"), LP_ERR_FORMAT);
    free(b.p);
}

static void test_npy_shapes_and_fortran(void **state)
{
    (void)state;
    /* a 2x3 array stored in Fortran order: columns first */
    float fort[6] = {1, 4, 2, 5, 3, 6};
    tbuf b = make_npy("<f4", 1, "(2, 3)", fort, sizeof fort, 1);
    lp_npy_header h;
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "fortran"));
    assert_int_equal(h.ndim, 2);
    assert_int_equal(h.fortran_order, 1);
    float f[6];
    LP_ASSERT_OK(lp_npy_convert_f32(f, 6, &h, b.p, 1, "fortran"));
    for (int i = 0; i < 6; i++) assert_true(f[i] == (float)(i + 1));
    free(b.p);
    /* scalar and empty arrays */
    float one = 42;
    b = make_npy("<f4", 0, "()", &one, 4, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "scalar"));
    assert_int_equal(h.ndim, 0);
    assert_int_equal(h.numel, 1);
    free(b.p);
    b = make_npy("<f4", 0, "(0, 5)", NULL, 0, 1);
    LP_ASSERT_OK(lp_npy_parse_header(&h, b.p, b.n, "empty"));
    assert_int_equal(h.numel, 0);
    free(b.p);
}

static void test_npy_malformed_headers(void **state)
{
    (void)state;
    float v[2] = {1, 2};
    struct { const char *descr, *shape; lp_status st; const char *msg; } cases[] = {
        {"<U7", "(2,)", LP_ERR_UNSUPPORTED, "<U7"},
        {"|O", "(2,)", LP_ERR_UNSUPPORTED, "|O"},
        {"<c8", "(2,)", LP_ERR_UNSUPPORTED, "<c8"},
        {"|f4", "(2,)", LP_ERR_FORMAT, "byte order"},
        {"<f4", "(2", LP_ERR_FORMAT, "shape"},
        {"<f4", "(-2,)", LP_ERR_FORMAT, "shape"},
        {"<f4", "(3,)", LP_ERR_FORMAT, "truncated"},
        {"<f4", "(99999999999999999999,)", LP_ERR_FORMAT, "overflow"},
        {"<f4", "(1,1,1,1,1,1,1,1,1,2)", LP_ERR_UNSUPPORTED, "dimensions"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tbuf b = make_npy(cases[c].descr, 0, cases[c].shape, v, sizeof v, 1);
        lp_npy_header h;
        lp_status st = lp_npy_parse_header(&h, b.p, b.n, "arr");
        if (st != cases[c].st || !strstr(lp_error_message(), cases[c].msg))
            fail_msg("descr %s shape %s: got %s '%s'", cases[c].descr, cases[c].shape, lp_status_name(st),
                     lp_error_message());
        free(b.p);
    }
    /* raw garbage, bad magic, bad version, header length past the end, not a dict */
    lp_npy_header h;
    assert_int_equal(lp_npy_parse_header(&h, "hello world", 11, "g"), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "magic"));
    unsigned char v9[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 9, 0, 4, 0, '{', '}', ' ', '\n'};
    assert_int_equal(lp_npy_parse_header(&h, v9, 14, "v9"), LP_ERR_UNSUPPORTED);
    unsigned char longh[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f, '{', '}'};
    assert_int_equal(lp_npy_parse_header(&h, longh, 12, "long"), LP_ERR_FORMAT);
    unsigned char notdict[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 4, 0, '[', ']', ' ', '\n'};
    assert_int_equal(lp_npy_parse_header(&h, notdict, 14, "nd"), LP_ERR_FORMAT);
    const char *dict = "{'descr': '<f4', 'shape': ()}";
    unsigned char missing[64] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)strlen(dict), 0};
    memcpy(missing + 10, dict, strlen(dict));
    assert_int_equal(lp_npy_parse_header(&h, missing, 10 + strlen(dict), "m"), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "fortran_order"));
}

static tbuf two_member_zip(int deflate, int zip64, float *vals, int n)
{
    static tbuf a, b;
    int64_t idx[5] = {0, 10, 20, 30, 40};
    a = make_npy("<f4", 0, "(1000,)", vals, (size_t)n * sizeof(float), 1);
    b = make_npy("<i8", 0, "(5,)", idx, sizeof idx, 1);
    zmember m[2] = {{"vals.npy", a.p, a.n}, {"idx.npy", b.p, b.n}};
    tbuf z = make_zip(m, 2, deflate, zip64);
    free(a.p);
    free(b.p);
    return z;
}

static void test_npz_stored_deflate_zip64(void **state)
{
    (void)state;
    float vals[1000];
    for (int i = 0; i < 1000; i++) vals[i] = (float)(i % 17) * 0.5f;
    for (int mode = 0; mode < 4; mode++) {
        int deflate = mode & 1, zip64 = mode >> 1;
        tbuf z = two_member_zip(deflate, zip64, vals, 1000);
        lp_npz *a;
        LP_ASSERT_OK(lp_npz_open_memory(&a, z.p, z.n, "mem.npz"));
        assert_int_equal(lp_npz_count(a), 2);
        assert_string_equal(lp_npz_name(a, 0), "vals");
        float *v;
        int64_t *ix;
        LP_ASSERT_OK(lp_npz_load_f32(a, "vals", LP_MEM_SCRATCH, &v, NULL));
        for (int i = 0; i < 1000; i++) assert_true(v[i] == vals[i]);
        LP_ASSERT_OK(lp_npz_load_i64(a, "idx", LP_MEM_SCRATCH, &ix, NULL));
        assert_int_equal(ix[4], 40);
        lp_free(v);
        lp_free(ix);
        lp_npz_close(a);
        /* the same through a file */
        const char *p = lp_test_write_temp(".npz", z.p, z.n);
        LP_ASSERT_OK(lp_npz_open(&a, p));
        LP_ASSERT_OK(lp_npz_load_f32(a, "vals.npy", LP_MEM_SCRATCH, &v, NULL));
        assert_true(v[999] == vals[999]);
        lp_free(v);
        lp_npz_close(a);
        free(z.p);
    }
}

/* Every truncation of a (stored and deflated) archive is a clean error, never a crash. */
static void test_npz_truncated(void **state)
{
    (void)state;
    float vals[1000];
    for (int i = 0; i < 1000; i++) vals[i] = (float)i;
    for (int deflate = 0; deflate < 2; deflate++) {
        tbuf z = two_member_zip(deflate, 0, vals, 1000);
        for (size_t cut = 0; cut < z.n; cut += (cut < 64 || z.n - cut < 200) ? 1 : 37) {
            unsigned char *copy = malloc(cut ? cut : 1);
            memcpy(copy, z.p, cut);
            lp_npz *a = NULL;
            lp_status st = lp_npz_open_memory(&a, copy, cut, "cut.npz");
            if (st == LP_OK) { /* a directory survived: members must fail cleanly */
                float *v = NULL;
                st = lp_npz_load_f32(a, "vals", LP_MEM_SCRATCH, &v, NULL);
                lp_free(v);
                lp_npz_close(a);
            }
            assert_int_not_equal(st, LP_OK);
            assert_non_null(strstr(lp_error_message(), "cut.npz"));
            free(copy);
        }
        free(z.p);
    }
    const char *p = lp_test_shared("data/graphs/cora.npz");
    if (p) {
        FILE *f = fopen(p, "rb");
        static unsigned char buf[600000];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        const char *t = lp_test_write_temp(".npz", buf, n / 2);
        lp_npz *a;
        assert_int_equal(lp_npz_open(&a, t), LP_ERR_FORMAT);
        assert_non_null(strstr(lp_error_message(), "end-of-central-directory"));
    }
}

static void test_npz_corruption(void **state)
{
    (void)state;
    float vals[1000];
    for (int i = 0; i < 1000; i++) vals[i] = (float)i;
    /* flip a data byte: CRC catches it (stored) or inflate / CRC does (deflate) */
    for (int deflate = 0; deflate < 2; deflate++) {
        tbuf z = two_member_zip(deflate, 0, vals, 1000);
        z.p[30 + 8 + 200] ^= 0x55;
        lp_npz *a;
        LP_ASSERT_OK(lp_npz_open_memory(&a, z.p, z.n, "flip.npz"));
        float *v = NULL;
        assert_int_equal(lp_npz_load_f32(a, "vals", LP_MEM_SCRATCH, &v, NULL), LP_ERR_FORMAT);
        assert_non_null(strstr(lp_error_message(), "vals"));
        lp_npz_close(a);
        free(z.p);
    }
    /* a member that is not an .npy at all */
    const char *junk = "this is not a numpy array, just some text";
    zmember m[1] = {{"labels.npy", junk, strlen(junk)}};
    tbuf z = make_zip(m, 1, 1, 0);
    lp_npz *a;
    LP_ASSERT_OK(lp_npz_open_memory(&a, z.p, z.n, "junk.npz"));
    int64_t *iv = NULL;
    assert_int_equal(lp_npz_load_i64(a, "labels", LP_MEM_SCRATCH, &iv, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "junk.npz: labels"));
    assert_non_null(strstr(lp_error_message(), "not a .npy"));
    lp_npz_close(a);
    free(z.p);
    /* unsupported compression method */
    tbuf y = two_member_zip(0, 0, vals, 1000);
    y.p[8] = 12; /* local header method: bzip2 */
    size_t cd = 0;
    for (size_t i = 0; i + 4 < y.n; i++)
        if (y.p[i] == 'P' && y.p[i + 1] == 'K' && y.p[i + 2] == 1 && y.p[i + 3] == 2) { cd = i; break; }
    y.p[cd + 10] = 12; /* central directory method */
    LP_ASSERT_OK(lp_npz_open_memory(&a, y.p, y.n, "bz.npz"));
    float *v = NULL;
    assert_int_equal(lp_npz_load_f32(a, "vals", LP_MEM_SCRATCH, &v, NULL), LP_ERR_UNSUPPORTED);
    assert_non_null(strstr(lp_error_message(), "method 12"));
    lp_npz_close(a);
    /* central directory offset beyond the file */
    y.p[y.n - 6] = 0xff;
    y.p[y.n - 5] = 0xff;
    assert_int_equal(lp_npz_open_memory(&a, y.p, y.n, "off.npz"), LP_ERR_FORMAT);
    free(y.p);
    /* not a zip, empty file */
    assert_int_equal(lp_npz_open_memory(&a, "PK", 2, "tiny.npz"), LP_ERR_FORMAT);
    const char *empty = lp_test_write_temp(".npz", "", 0);
    assert_int_equal(lp_npz_open(&a, empty), LP_ERR_FORMAT);
    assert_int_equal(lp_npz_open(&a, "/nonexistent/x.npz"), LP_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cora_members),
        cmocka_unit_test(test_npy_dtypes_and_versions),
        cmocka_unit_test(test_npy_shapes_and_fortran),
        cmocka_unit_test(test_npy_malformed_headers),
        cmocka_unit_test(test_npz_stored_deflate_zip64),
        cmocka_unit_test(test_npz_truncated),
        cmocka_unit_test(test_npz_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
