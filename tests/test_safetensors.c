/* safetensors: fixtures written by Hugging Face, one malformed file per
 * failure class, F16/BF16 bit patterns, byte-exact write round trips. */
#include "util/test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/safetensors.h"
#include "leanprop/status.h"

/* ---- helpers ------------------------------------------------------------ */

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A file of: u64 header length, header text (as given), data bytes. */
static const char *write_st(const char *header, const void *data, size_t data_len)
{
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_len + 1);
    uint64_t n = hl;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hl);
    if (data_len) memcpy(buf + 8 + hl, data, data_len);
    const char *p = lp_test_write_temp(".safetensors", buf, 8 + hl + data_len);
    free(buf);
    assert_non_null(p);
    return p;
}

/* Open must fail with `want`, the message naming the file and `needle`s. */
static void expect_open_fails(const char *path, lp_status want, const char *needle1, const char *needle2)
{
    lp_safetensors *f = (lp_safetensors *)0x1;
    lp_status st = lp_safetensors_open(&f, path);
    const char *msg = lp_error_message();
    if (st != want)
        fail_msg("%s: expected %s, got %s: %s", path, lp_status_name(want), lp_status_name(st), msg);
    assert_null(f);
    if (!strstr(msg, path)) fail_msg("message does not name the file: %s", msg);
    if (needle1 && !strstr(msg, needle1)) fail_msg("message lacks '%s': %s", needle1, msg);
    if (needle2 && !strstr(msg, needle2)) fail_msg("message lacks '%s': %s", needle2, msg);
    /* the no-mmap and in-memory paths validate identically */
    st = lp_safetensors_open_ex(&f, path, LP_SAFETENSORS_NO_MMAP);
    assert_int_equal(st, want);
    char *img;
    size_t len;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 20, LP_MEM_SCRATCH, &img, &len));
    assert_int_equal(lp_safetensors_open_memory(&f, img, len, path), want);
    assert_non_null(strstr(lp_error_message(), path));
    lp_free(img);
    unlink(path);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *buf;
    LP_ASSERT_OK(lp_file_read_all(path, (size_t)1 << 30, LP_MEM_SCRATCH, &buf, len));
    return (unsigned char *)buf;
}

static char g_tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/leanprop-st-XXXXXX");
        assert_non_null(mkdtemp(g_tmpdir));
    }
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", g_tmpdir, name);
    return b;
}

/* No leftover temp files ("*.tmp-*") in the test directory. */
static void assert_no_temp_files(void)
{
    DIR *d = opendir(g_tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) fail_msg("temp file left behind: %s", e->d_name);
    closedir(d);
}

/* ---- F16 / BF16 --------------------------------------------------------- */

static void test_f16_known_bits(void **state)
{
    (void)state;
    assert_true(lp_f16_to_f32(0x3c00) == 1.0f);
    assert_true(lp_f16_to_f32(0xc000) == -2.0f);
    assert_true(lp_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(lp_f16_to_f32(0x0400) == ldexpf(1.0f, -14));       /* smallest normal */
    assert_true(lp_f16_to_f32(0x0001) == ldexpf(1.0f, -24));       /* smallest subnormal */
    assert_true(lp_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));    /* largest subnormal */
    assert_true(lp_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    assert_true(lp_f16_to_f32(0x0200) == ldexpf(1.0f, -15));
    assert_int_equal(bits_of(lp_f16_to_f32(0x8000)), 0x80000000u); /* -0 */
    assert_int_equal(bits_of(lp_f16_to_f32(0x0000)), 0u);
    assert_true(isinf(lp_f16_to_f32(0x7c00)) && lp_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(lp_f16_to_f32(0xfc00)) && lp_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(lp_f16_to_f32(0x7e00)));
    assert_true(isnan(lp_f16_to_f32(0x7c01)));                     /* signalling NaN stays NaN */
    assert_true(lp_f16_to_f32(0x3555) == 0.333251953125f);

    /* f32 -> f16, round to nearest even */
    assert_int_equal(lp_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(lp_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);     /* tie -> even */
    assert_int_equal(lp_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02); /* tie -> even (up) */
    assert_int_equal(lp_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01);
    assert_int_equal(lp_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(lp_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(lp_f32_to_f16(65520.0f), 0x7c00);                  /* overflow */
    assert_int_equal(lp_f32_to_f16(-1e9f), 0xfc00);
    assert_int_equal(lp_f32_to_f16(ldexpf(1, -25)), 0x0000);            /* tie -> even 0 */
    assert_int_equal(lp_f32_to_f16(ldexpf(1.0001f, -25)), 0x0001);
    assert_int_equal(lp_f32_to_f16(3 * ldexpf(1, -25)), 0x0002);        /* 1.5 units -> 2 */
    assert_int_equal(lp_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);      /* rounds up into normal */
    assert_int_equal(lp_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(lp_f32_to_f16(ldexpf(1, -40)), 0x0000);
    assert_int_equal(lp_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(lp_f32_to_f16(NAN) & 0x7c00, 0x7c00);
    assert_true((lp_f32_to_f16(NAN) & 0x3ff) != 0);
    /* every half value survives half -> float -> half */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lp_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            assert_true(isnan(lp_f16_to_f32(lp_f32_to_f16(f))));
            continue;
        }
        if (lp_f32_to_f16(f) != h) fail_msg("half 0x%04x -> %g -> 0x%04x", h, (double)f, lp_f32_to_f16(f));
    }
}

static void test_bf16_known_bits(void **state)
{
    (void)state;
    assert_true(lp_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(lp_bf16_to_f32(0xc040) == -3.0f);
    assert_true(lp_bf16_to_f32(0x4049) == f32_of(0x40490000u));
    assert_true(lp_bf16_to_f32(0x0001) == f32_of(0x00010000u)); /* subnormal */
    assert_true(isinf(lp_bf16_to_f32(0x7f80)));
    assert_true(isnan(lp_bf16_to_f32(0x7fc0)));
    assert_int_equal(lp_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(lp_f32_to_bf16(f32_of(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(lp_f32_to_bf16(f32_of(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    assert_int_equal(lp_f32_to_bf16(f32_of(0x3f808001u)), 0x3f81);
    assert_int_equal(lp_f32_to_bf16(f32_of(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to inf */
    assert_true((lp_f32_to_bf16(f32_of(0x7f800001u)) & 0x7f) != 0); /* NaN stays NaN */
    for (uint32_t b = 0; b < 65536; b++) {
        float f = lp_bf16_to_f32((uint16_t)b);
        if (isnan(f)) continue;
        if (lp_f32_to_bf16(f) != b) fail_msg("bf16 0x%04x round trip", b);
    }
}

/* ---- fixtures ----------------------------------------------------------- */

static void test_open_gpt2_fixture(void **state)
{
    (void)state;
    const char *path = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!path) LP_SKIP("fixtures/gpt2-tiny/model.safetensors not found (set LEANPROP_SHARED)");
    for (unsigned flags = 0; flags <= LP_SAFETENSORS_NO_MMAP; flags++) {
        lp_safetensors *f;
        LP_ASSERT_OK(lp_safetensors_open_ex(&f, path, flags));
        assert_string_equal(lp_safetensors_path(f), path);
        assert_int_equal(lp_safetensors_count(f), 28);
        assert_string_equal(lp_safetensors_metadata(f, "format"), "pt");
        assert_null(lp_safetensors_metadata(f, "nope"));
        assert_int_equal(lp_safetensors_metadata_count(f), 1);
        const lp_tensor_info *t = lp_safetensors_find(f, "transformer.wte.weight");
        assert_non_null(t);
        assert_int_equal(t->dtype, LP_DTYPE_F32);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 1000);
        assert_int_equal(t->shape[1], 64);
        assert_int_equal(t->numel, 64000);
        assert_int_equal(t->nbytes, 256000);
        assert_null(lp_safetensors_find(f, "transformer.wte"));
        assert_null(lp_safetensors_at(f, 28));
        assert_string_equal(lp_safetensors_at(f, 0)->name, "transformer.h.0.attn.c_attn.bias");

        float *w;
        const lp_tensor_info *info;
        size_t before = lp_mem_current(LP_MEM_WEIGHTS);
        LP_ASSERT_OK(lp_safetensors_load_f32(f, "transformer.wte.weight", LP_MEM_WEIGHTS, &w, &info));
        assert_ptr_equal(info, t);
        assert_true(lp_mem_current(LP_MEM_WEIGHTS) >= before + 64000 * sizeof(float));
        /* values read independently with Python's struct module */
        assert_int_equal(bits_of(w[0]), 0x3c732c5bu);
        assert_int_equal(bits_of(w[1]), 0x3d1da58du);
        assert_int_equal(bits_of(w[2]), 0x3c81a4a4u);
        assert_true(w[63999] == -0.0007727599586360157f);
        lp_free(w);
        float lnf[64];
        LP_ASSERT_OK(lp_safetensors_read_f32(f, "transformer.ln_f.weight", lnf, 64));
        for (int i = 0; i < 64; i++) assert_true(lnf[i] == 1.0f);
        lp_safetensors_close(f);
    }
    /* the same image from memory */
    size_t len;
    unsigned char *img = slurp(path, &len);
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open_memory(&f, img, len, "gpt2 image"));
    assert_string_equal(lp_safetensors_path(f), "gpt2 image");
    assert_int_equal(lp_safetensors_count(f), 28);
    const lp_tensor_info *t = lp_safetensors_find(f, "transformer.wte.weight");
    assert_true(t->data >= (const void *)img && (const unsigned char *)t->data + t->nbytes <= img + len);
    lp_safetensors_close(f);
    assert_int_equal(lp_safetensors_open_memory(&f, img, 7, NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "<memory>"));
    lp_free(img);
}

static void test_open_reference_int64(void **state)
{
    (void)state;
    const char *path = lp_test_shared("fixtures/gpt2-tiny/reference.safetensors");
    if (!path) LP_SKIP("fixtures/gpt2-tiny/reference.safetensors not found (set LEANPROP_SHARED)");
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, path));
    int64_t ids[32], labels[32];
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "input_ids", ids, 32));
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "labels", labels, 32));
    assert_int_equal(ids[0], 76);
    assert_int_equal(ids[31], 102);
    assert_int_equal(labels[0], -100);
    assert_int_equal(labels[4], 571);
    float idsf[32];
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "input_ids", idsf, 32));
    assert_true(idsf[1] == 328.0f);
    float loss;
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "loss", &loss, 1));
    assert_true(loss == 6.90809965133667f);
    int64_t *ip;
    LP_ASSERT_OK(lp_safetensors_load_i64(f, "input_ids", LP_MEM_DATA, &ip, NULL));
    assert_int_equal(ip[2], 530);
    lp_free(ip);

    /* lookup failures name the file and the tensor */
    assert_int_equal(lp_safetensors_read_f32(f, "no.such.tensor", &loss, 1), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), path));
    assert_non_null(strstr(lp_error_message(), "no.such.tensor"));
    assert_int_equal(lp_safetensors_read_f32(f, "loss", idsf, 2), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "'loss'"));
    assert_non_null(strstr(lp_error_message(), "expected 2"));
    assert_int_equal(lp_safetensors_read_i64(f, "loss", ids, 1), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "F32"));
    float *none = (float *)0x1;
    assert_int_equal(lp_safetensors_load_f32(f, "missing", LP_MEM_WEIGHTS, &none, NULL), LP_ERR_NOT_FOUND);
    assert_null(none);
    lp_safetensors_close(f);
}

/* Every fixture file: load every tensor, write it back with the writer; the
 * new file must equal the original byte for byte (same order, offsets,
 * padding), and reading it back gives bit-identical tensors. */
static void roundtrip_file(const char *path)
{
    lp_safetensors *f, *g;
    LP_ASSERT_OK(lp_safetensors_open(&f, path));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    assert_non_null(w);
    for (int i = 0; i < lp_safetensors_count(f); i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i);
        LP_ASSERT_OK(lp_safetensors_writer_add(w, t->name, t->dtype, t->data, t->shape, t->ndim));
    }
    for (int i = 0; i < lp_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        assert_true(lp_safetensors_metadata_at(f, i, &k, &v));
        LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, k, v));
    }
    const char *out = tmp_path("roundtrip.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    lp_safetensors_writer_free(w);

    size_t la, lb;
    unsigned char *a = slurp(path, &la), *b = slurp(out, &lb);
    assert_int_equal(la, lb);
    uint64_t ha;
    memcpy(&ha, a, 8);
    if (memcmp(a, b, 8 + ha) != 0) fail_msg("%s: header bytes differ after rewrite:\n%.*s\n%.*s", path,
                                             (int)ha, (char *)a + 8, (int)ha, (char *)b + 8);
    assert_memory_equal(a, b, la);
    lp_free(a);
    lp_free(b);

    LP_ASSERT_OK(lp_safetensors_open(&g, out));
    assert_int_equal(lp_safetensors_count(g), lp_safetensors_count(f));
    for (int i = 0; i < lp_safetensors_count(f); i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i), *u = lp_safetensors_find(g, t->name);
        assert_non_null(u);
        assert_int_equal(u->dtype, t->dtype);
        assert_int_equal(u->ndim, t->ndim);
        assert_memory_equal(u->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        assert_int_equal(u->nbytes, t->nbytes);
        assert_memory_equal(u->data, t->data, t->nbytes);
    }
    lp_safetensors_close(g);
    lp_safetensors_close(f);
    unlink(out);
}

static void test_roundtrip_fixtures_byte_exact(void **state)
{
    (void)state;
    static const char *files[] = {
        "fixtures/gpt2-tiny/model.safetensors",          "fixtures/gpt2-tiny/reference.safetensors",
        "fixtures/llama-tiny/model.safetensors",         "fixtures/llama-tiny/reference.safetensors",
        "fixtures/bert-tiny-cls/model.safetensors",      "fixtures/bert-tiny-cls/reference.safetensors",
        "fixtures/llama-tiny-lora/adapter_model.safetensors", "fixtures/pyg-layers/reference.safetensors",
    };
    int done = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        const char *p = lp_test_shared(files[i]);
        if (!p) continue;
        roundtrip_file(p);
        done++;
    }
    if (!done) LP_SKIP("no fixtures found (set LEANPROP_SHARED)");
    assert_no_temp_files();
}

/* Converted path: load_f32 every tensor, write as F32, compare bit-exactly. */
static void test_roundtrip_gpt2_through_float(void **state)
{
    (void)state;
    const char *path = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (!path) LP_SKIP("fixtures/gpt2-tiny/model.safetensors not found (set LEANPROP_SHARED)");
    lp_safetensors *f, *g;
    LP_ASSERT_OK(lp_safetensors_open(&f, path));
    int n = lp_safetensors_count(f);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    for (int i = 0; i < n; i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i);
        LP_ASSERT_OK(lp_safetensors_load_f32(f, t->name, LP_MEM_WEIGHTS, &bufs[i], NULL));
        LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, t->name, bufs[i], t->shape, t->ndim));
    }
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "format", "pt"));
    const char *out = tmp_path("float.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    LP_ASSERT_OK(lp_safetensors_open(&g, out));
    for (int i = 0; i < n; i++) {
        const lp_tensor_info *t = lp_safetensors_at(f, i), *u = lp_safetensors_find(g, t->name);
        assert_non_null(u);
        assert_memory_equal(u->data, t->data, t->nbytes);
        lp_free(bufs[i]);
    }
    free(bufs);
    lp_safetensors_writer_free(w);
    lp_safetensors_close(g);
    lp_safetensors_close(f);
    unlink(out);
}

/* ---- writer ------------------------------------------------------------- */

/* The Python library's own serialisation tests, byte for byte. */
static void test_writer_matches_python_library_bytes(void **state)
{
    (void)state;
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    const char *out = tmp_path("py.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    size_t len;
    unsigned char *b = slurp(out, &len);
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(len, sizeof empty);
    assert_memory_equal(b, empty, len);
    lp_free(b);
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "framework", "pt"));
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    b = slurp(out, &len);
    static const char meta_hdr[] = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    assert_int_equal(len, 8 + 40);
    assert_int_equal(b[0], 40);
    assert_memory_equal(b + 8, meta_hdr, 40);
    lp_free(b);
    lp_safetensors_writer_free(w);

    w = lp_safetensors_writer_new();
    float data[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[3] = {1, 2, 3};
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "attn.0", data, shape, 3));
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    b = slurp(out, &len);
    static const char hdr[] = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    assert_int_equal(len, 8 + 64 + 24);
    assert_int_equal(b[0], 64);
    assert_memory_equal(b + 8, hdr, 64);
    assert_memory_equal(b + 72, data, 24);
    lp_free(b);
    lp_safetensors_writer_free(w);
    unlink(out);
}

static void test_writer_dtypes_and_order(void **state)
{
    (void)state;
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    float xs[5] = {1.0f, -2.5f, 1e-6f, 65504.0f, 3.14159265f};
    int64_t s5[1] = {5};
    int64_t i64[3] = {-1, INT64_MAX, 7};
    int32_t i32[3] = {-2147483647 - 1, 5, 6};
    int16_t i16[2] = {-32768, 12};
    int8_t i8[2] = {-128, 127};
    uint8_t u8[2] = {0, 255}, bl[3] = {0, 1, 1};
    uint16_t u16[1] = {65535};
    uint32_t u32[1] = {4000000000u};
    uint64_t u64[2] = {5, UINT64_MAX};
    int64_t s3[1] = {3}, s2[1] = {2}, s1[1] = {1};
    int64_t empty_shape[2] = {0, 3};
    float scalar = 42.0f;
    LP_ASSERT_OK(lp_safetensors_writer_add_f32_as(w, "h", LP_DTYPE_F16, xs, s5, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32_as(w, "b", LP_DTYPE_BF16, xs, s5, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32_as(w, "d", LP_DTYPE_F64, xs, s5, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32_as(w, "f", LP_DTYPE_F32, xs, s5, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "i64", LP_DTYPE_I64, i64, s3, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "i32", LP_DTYPE_I32, i32, s3, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "i16", LP_DTYPE_I16, i16, s2, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "i8", LP_DTYPE_I8, i8, s2, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "u8", LP_DTYPE_U8, u8, s2, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "bool", LP_DTYPE_BOOL, bl, s3, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "u16", LP_DTYPE_U16, u16, s1, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "u32", LP_DTYPE_U32, u32, s1, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add(w, "u64", LP_DTYPE_U64, u64, s2, 1));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "empty", NULL, empty_shape, 2));
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "scalar", &scalar, NULL, 0));
    /* writer argument errors */
    assert_int_equal(lp_safetensors_writer_add_f32(w, "f", xs, s5, 1), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "'f'"));
    assert_int_equal(lp_safetensors_writer_add_f32(w, "__metadata__", xs, s5, 1), LP_ERR_INVALID_ARG);
    int64_t neg[1] = {-1};
    assert_int_equal(lp_safetensors_writer_add_f32(w, "neg", xs, neg, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_safetensors_writer_add_f32(w, "nine", xs, s5, 9), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_safetensors_writer_add_f32(w, "null", NULL, s5, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_safetensors_writer_add_f32_as(w, "asint", LP_DTYPE_I32, xs, s5, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_safetensors_writer_count(w), 15);

    const char *out = tmp_path("dtypes.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    lp_safetensors_writer_free(w);
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, out));
    /* written in the Python library's order: widest dtype enum first, then name */
    static const char *order[] = {"u64", "i64", "d", "empty", "f", "scalar", "u32", "i32", "b",
                                  "h",   "u16", "i16", "i8", "u8", "bool"};
    uint64_t prev_end = 0;
    for (int i = 0; i < 15; i++) {
        const lp_tensor_info *t = lp_safetensors_find(f, order[i]);
        assert_non_null(t);
        assert_string_equal(lp_safetensors_at(f, i)->name, order[i]);
        assert_int_equal((const unsigned char *)t->data - (const unsigned char *)lp_safetensors_at(f, 0)->data,
                         prev_end);
        prev_end += t->nbytes;
    }
    assert_int_equal(prev_end, lp_safetensors_data_size(f));

    float got[5];
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "h", got, 5));
    for (int i = 0; i < 5; i++) assert_true(got[i] == lp_f16_to_f32(lp_f32_to_f16(xs[i])));
    assert_true(got[3] == 65504.0f);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "b", got, 5));
    for (int i = 0; i < 5; i++) assert_true(got[i] == lp_bf16_to_f32(lp_f32_to_bf16(xs[i])));
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "d", got, 5));
    assert_memory_equal(got, xs, sizeof xs);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "f", got, 5));
    assert_memory_equal(got, xs, sizeof xs);
    int64_t iv[3];
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "i64", iv, 3));
    assert_memory_equal(iv, i64, sizeof i64);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "i32", iv, 3));
    assert_true(iv[0] == INT32_MIN && iv[2] == 6);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "i16", iv, 2));
    assert_true(iv[0] == -32768 && iv[1] == 12);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "i8", iv, 2));
    assert_true(iv[0] == -128 && iv[1] == 127);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "u8", iv, 2));
    assert_true(iv[1] == 255);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "bool", iv, 3));
    assert_true(iv[0] == 0 && iv[1] == 1 && iv[2] == 1);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "u16", iv, 1));
    assert_true(iv[0] == 65535);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, "u32", iv, 1));
    assert_true(iv[0] == 4000000000LL);
    assert_int_equal(lp_safetensors_read_i64(f, "u64", iv, 2), LP_ERR_FORMAT); /* UINT64_MAX does not fit */
    assert_non_null(strstr(lp_error_message(), "'u64'"));
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "i8", got, 2));
    assert_true(got[0] == -128.0f);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "bool", got, 3));
    assert_true(got[0] == 0.0f && got[2] == 1.0f);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "scalar", got, 1));
    assert_true(got[0] == 42.0f);
    assert_int_equal(lp_safetensors_find(f, "scalar")->ndim, 0);
    const lp_tensor_info *e = lp_safetensors_find(f, "empty");
    assert_int_equal(e->numel, 0);
    assert_int_equal(e->ndim, 2);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "empty", NULL, 0));
    float *eb;
    LP_ASSERT_OK(lp_safetensors_load_f32(f, "empty", LP_MEM_SCRATCH, &eb, NULL));
    lp_free(eb);
    lp_safetensors_close(f);
    unlink(out);
}

static void test_writer_metadata_escaping(void **state)
{
    (void)state;
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "z", "1"));
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "quote\"back\\slash", "line\nbreak\ttab\x01 \xc3\xa9"));
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(w, "z", "2")); /* replaces */
    float x = 1.0f;
    int64_t s1[1] = {1};
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "we\"ird/name \xe2\x9c\x93", &x, s1, 1));
    const char *out = tmp_path("meta.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    lp_safetensors_writer_free(w);
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, out));
    assert_int_equal(lp_safetensors_metadata_count(f), 2);
    assert_string_equal(lp_safetensors_metadata(f, "z"), "2");
    assert_string_equal(lp_safetensors_metadata(f, "quote\"back\\slash"), "line\nbreak\ttab\x01 \xc3\xa9");
    assert_non_null(lp_safetensors_find(f, "we\"ird/name \xe2\x9c\x93"));
    lp_safetensors_close(f);
    size_t len;
    unsigned char *b = slurp(out, &len);
    assert_non_null(strstr((char *)b + 8, "\\u0001")); /* serde_json's escape */
    lp_free(b);
    unlink(out);
}

/* A failing save (disk full after 100 bytes) leaves the old file intact and
 * no temp file behind. */
static void test_writer_failure_keeps_old_file(void **state)
{
    (void)state;
    const char *out = tmp_path("keep.safetensors");
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    int64_t s[1] = {64};
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(w, "x", x, s, 1));
    LP_ASSERT_OK(lp_safetensors_writer_save(w, out));
    size_t la;
    unsigned char *a = slurp(out, &la);
    x[0] = 99.0f;
    lp_fileio_fail_after_bytes(100);
    lp_status st = lp_safetensors_writer_save(w, out);
    lp_fileio_fail_after_bytes(0);
    assert_int_equal(st, LP_ERR_IO);
    assert_non_null(strstr(lp_error_message(), out));
    size_t lb;
    unsigned char *b = slurp(out, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_no_temp_files();
    /* a target that is a non-empty directory: rename fails, nothing left behind */
    const char *dir = tmp_path("adir");
    LP_ASSERT_OK(lp_dir_create(dir));
    char inner[600];
    LP_ASSERT_OK(lp_path_join(inner, sizeof inner, dir, "f"));
    LP_ASSERT_OK(lp_file_write_atomic(inner, "x", 1));
    assert_int_equal(lp_safetensors_writer_save(w, dir), LP_ERR_IO);
    assert_non_null(strstr(lp_error_message(), dir));
    assert_no_temp_files();
    /* a directory that does not exist */
    assert_int_equal(lp_safetensors_writer_save(w, "/nonexistent-dir-lp/x.safetensors"), LP_ERR_NOT_FOUND);
    unlink(inner);
    rmdir(dir);
    lp_free(a);
    lp_free(b);
    lp_safetensors_writer_free(w);
    unlink(out);
}

/* ---- malformed files: one per failure class ------------------------------ */

static const float g_four[8] = {1, 2, 3, 4, 5, 6, 7, 8}; /* 32 bytes of data for the files below */

static void test_bad_truncated(void **state)
{
    (void)state;
    expect_open_fails(lp_test_write_temp(".safetensors", "\x10\0\0\0\0", 5), LP_ERR_FORMAT, "truncated", NULL);
    expect_open_fails(lp_test_write_temp(".safetensors", "", 0), LP_ERR_FORMAT, "truncated", NULL);
    /* a real file cut in the middle of its data */
    const char *path = lp_test_shared("fixtures/gpt2-tiny/model.safetensors");
    if (path) {
        size_t len;
        unsigned char *b = slurp(path, &len);
        expect_open_fails(lp_test_write_temp(".safetensors", b, len - 100), LP_ERR_FORMAT, "transformer.wte.weight",
                          "out of range");
        expect_open_fails(lp_test_write_temp(".safetensors", b, 1000), LP_ERR_FORMAT, "past the end", NULL);
        lp_free(b);
    }
    lp_safetensors *f;
    assert_int_equal(lp_safetensors_open(&f, "/nonexistent/x.safetensors"), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "/nonexistent/x.safetensors"));
    assert_int_equal(lp_safetensors_open(&f, "/tmp"), LP_ERR_IO);
    assert_int_equal(lp_safetensors_open(NULL, "x"), LP_ERR_INVALID_ARG);
}

static void test_bad_header_length(void **state)
{
    (void)state;
    unsigned char b[40] = {0};
    uint64_t n = 1000;
    memcpy(b, &n, 8);
    memcpy(b + 8, "{}", 2);
    expect_open_fails(lp_test_write_temp(".safetensors", b, sizeof b), LP_ERR_FORMAT, "past the end", "1000");
    n = (uint64_t)1 << 40;
    memcpy(b, &n, 8);
    expect_open_fails(lp_test_write_temp(".safetensors", b, sizeof b), LP_ERR_FORMAT, "absurd", NULL);
    n = UINT64_MAX;
    memcpy(b, &n, 8);
    expect_open_fails(lp_test_write_temp(".safetensors", b, sizeof b), LP_ERR_FORMAT, "absurd", NULL);
}

static void test_bad_header_not_json(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"a\": {\"dtype\": ", NULL, 0), LP_ERR_FORMAT, "not valid JSON", NULL);
    expect_open_fails(write_st("not json", NULL, 0), LP_ERR_FORMAT, "not valid JSON", NULL);
    expect_open_fails(write_st("[1, 2]  ", NULL, 0), LP_ERR_FORMAT, "not a JSON object", NULL);
    expect_open_fails(write_st("\"str\"   ", NULL, 0), LP_ERR_FORMAT, "not a JSON object", NULL);
    expect_open_fails(write_st("{} junk ", NULL, 0), LP_ERR_FORMAT, "not valid JSON", NULL);
    /* an embedded NUL must not hide the rest of the header */
    unsigned char b[24] = {0};
    uint64_t n = 8;
    memcpy(b, &n, 8);
    memcpy(b + 8, "{}\0xxxxx", 8);
    expect_open_fails(lp_test_write_temp(".safetensors", b, 16), LP_ERR_FORMAT, "NUL byte", NULL);
    expect_open_fails(write_st("{\"__metadata__\": [1]}", NULL, 0), LP_ERR_FORMAT, "__metadata__", NULL);
    expect_open_fails(write_st("{\"__metadata__\": {\"k\": 1}}", NULL, 0), LP_ERR_FORMAT, "'k'", NULL);
    expect_open_fails(write_st("{\"t\": 5}", NULL, 0), LP_ERR_FORMAT, "'t'", "not a JSON object");
    expect_open_fails(write_st("{\"t\": {\"shape\": [], \"data_offsets\": [0, 4]}}", g_four, 4), LP_ERR_FORMAT, "'t'",
                      "dtype");
}

static void test_bad_unknown_dtype(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"w.q\": {\"dtype\": \"Q4_K\", \"shape\": [4], \"data_offsets\": [0, 4]}}", g_four, 4),
                      LP_ERR_UNSUPPORTED, "'w.q'", "Q4_K");
    expect_open_fails(write_st("{\"w.q\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", g_four, 4),
                      LP_ERR_UNSUPPORTED, "'w.q'", "f32");
}

static void test_bad_shape(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", g_four, 16),
                      LP_ERR_FORMAT, "'s'", "shape");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}", g_four, 16),
                      LP_ERR_FORMAT, "'s'", "shape[0]");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [2, 1.5], \"data_offsets\": [0, 12]}}", g_four,
                               16),
                      LP_ERR_FORMAT, "'s'", "shape[1]");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", g_four,
                               16),
                      LP_ERR_FORMAT, "'s'", "shape[0]");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,4], "
                               "\"data_offsets\": [0, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'s'", "9 dimensions");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
                               "\"data_offsets\": [0, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'s'", "overflow");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F64\", \"shape\": [2305843009213693952], "
                               "\"data_offsets\": [0, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'s'", "overflow");
    /* shape and bytes disagree */
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", g_four,
                               16),
                      LP_ERR_FORMAT, "'s'", "12 bytes");
    expect_open_fails(write_st("{\"s\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [0, 16]}}", g_four,
                               16),
                      LP_ERR_FORMAT, "'s'", "BF16");
}

static void test_bad_offsets(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", g_four, 8),
                      LP_ERR_FORMAT, "'o'", "out of range");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", g_four, 16),
                      LP_ERR_FORMAT, "'o'", "out of range");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", g_four, 16),
                      LP_ERR_FORMAT, "'o'", "begin 8 > end 4");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0]}}", g_four, 16),
                      LP_ERR_FORMAT, "'o'", "data_offsets");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16, 32]}}", g_four,
                               16),
                      LP_ERR_FORMAT, "'o'", "data_offsets");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [-16, 0]}}", g_four, 16),
                      LP_ERR_FORMAT, "'o'", "data_offsets");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4], "
                               "\"data_offsets\": [18446744073709551600, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'o'", "data_offsets");
    expect_open_fails(write_st("{\"o\": {\"dtype\": \"F32\", \"shape\": [4]}}", g_four, 16), LP_ERR_FORMAT, "'o'",
                      "data_offsets");
}

static void test_bad_overlap(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                               " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'a' and 'b'", "overlap");
    /* the same range twice */
    expect_open_fails(write_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                               " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "overlap", NULL);
    /* one range inside another, listed in reverse order */
    expect_open_fails(write_st("{\"in\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]},"
                               " \"out\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "'out' and 'in'", "overlap");
    /* empty tensors own no byte: not an overlap; gaps are allowed */
    lp_safetensors *f;
    const char *p = write_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                             " \"e\": {\"dtype\": \"F32\", \"shape\": [0, 2], \"data_offsets\": [4, 4]}}",
                             g_four, 20);
    LP_ASSERT_OK(lp_safetensors_open(&f, p));
    assert_int_equal(lp_safetensors_count(f), 2);
    lp_safetensors_close(f);
    unlink(p);
}

static void test_bad_duplicate_names(void **state)
{
    (void)state;
    expect_open_fails(write_st("{\"dup\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                               " \"dup\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
                               g_four, 16),
                      LP_ERR_FORMAT, "duplicate", "'dup'");
    expect_open_fails(write_st("{\"__metadata__\": {}, \"__metadata__\": {}}", NULL, 0), LP_ERR_FORMAT, "duplicate",
                      "__metadata__");
    expect_open_fails(write_st("{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", NULL, 0), LP_ERR_FORMAT,
                      "duplicate", "'k'");
}

/* Header length not a multiple of 8: the data is unaligned and must still be
 * read correctly (UBSan flags misaligned loads). */
static void test_unaligned_data(void **state)
{
    (void)state;
    double d3[3] = {1.5, -2.25, 1e300};
    unsigned char data[4 * 4 + 3 * 8];
    memcpy(data, g_four, 16);
    memcpy(data + 16, d3, 24);
    char header[256];
    /* pad so that 8 + header length is odd: every tensor starts unaligned */
    for (int pad = 0;; pad++) {
        snprintf(header, sizeof header,
                 "{\"f\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[16,40]}}%*s", pad, "");
        if (strlen(header) % 2 == 1) break;
    }
    const char *p = write_st(header, data, sizeof data);
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, p));
    assert_true(((uintptr_t)lp_safetensors_find(f, "f")->data & 3) != 0);
    float got[4];
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "f", got, 4));
    assert_memory_equal(got, g_four, 16);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "d", got, 3));
    assert_true(got[0] == 1.5f && got[1] == -2.25f && isinf(got[2]));
    lp_safetensors_close(f);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known_bits),
        cmocka_unit_test(test_bf16_known_bits),
        cmocka_unit_test(test_open_gpt2_fixture),
        cmocka_unit_test(test_open_reference_int64),
        cmocka_unit_test(test_roundtrip_fixtures_byte_exact),
        cmocka_unit_test(test_roundtrip_gpt2_through_float),
        cmocka_unit_test(test_writer_matches_python_library_bytes),
        cmocka_unit_test(test_writer_dtypes_and_order),
        cmocka_unit_test(test_writer_metadata_escaping),
        cmocka_unit_test(test_writer_failure_keeps_old_file),
        cmocka_unit_test(test_bad_truncated),
        cmocka_unit_test(test_bad_header_length),
        cmocka_unit_test(test_bad_header_not_json),
        cmocka_unit_test(test_bad_unknown_dtype),
        cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_bad_overlap),
        cmocka_unit_test(test_bad_duplicate_names),
        cmocka_unit_test(test_unaligned_data),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_tmpdir[0]) rmdir(g_tmpdir);
    return rc;
}
