/* Crash-safe checkpoints: round trip of tensors, blobs, scalars, RNG state and JSON; the file is
 * plain safetensors; every flipped byte and every truncation is refused with LP_ERR_FORMAT naming
 * the file; a save that fails part-way (injected write failure, as a full disk) leaves the old
 * checkpoint loadable and no temporary file behind; bad arguments. */
#include "util/test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"
#include "leanprop/rng.h"
#include "leanprop/safetensors.h"

static char g_dir[256];

static const char *in_dir(const char *name)
{
    static char buf[4][512];
    static int k;
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/leanprop-ckpt-XXXXXX");
        assert_non_null(mkdtemp(g_dir));
    }
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static int count_temp_files(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    char *buf;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 26, LP_MEM_SCRATCH, &buf, n));
    unsigned char *copy = malloc(*n ? *n : 1);
    assert_non_null(copy);
    memcpy(copy, buf, *n);
    lp_free(buf);
    return copy;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A small training state: two tensors, a blob, scalars, an RNG mid-stream (with a spare). */
typedef struct {
    float w[6], m[6], v[3];
    unsigned char blob[5];
    lp_rng rng;
} state;

static void make_state(state *s, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    for (int i = 0; i < 6; i++) { s->w[i] = lp_rng_normal(&r); s->m[i] = 1e-3f * (float)i; }
    for (int i = 0; i < 3; i++) s->v[i] = (float)(i + 1) * 0.5f;
    s->w[5] = -0.0f;
    memcpy(s->blob, "a\0b\xff", 5);
    lp_rng_seed(&s->rng, seed + 1);
    (void)lp_rng_normal(&s->rng); /* leaves a Box-Muller spare */
}

static lp_status save_state(const state *s, uint64_t step, const char *path)
{
    lp_checkpoint_writer *w = lp_checkpoint_writer_new();
    assert_non_null(w);
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s6[1] = {6};
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "model.layers.0.mlp.up_proj.lora_A", s->w, s23, 2));
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "optim.m.\"quoted\\name\"", s->m, s6, 1));
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "optim.v", s->v, s3, 1));
    LP_ASSERT_OK(lp_checkpoint_writer_add_bytes(w, "loader", s->blob, sizeof s->blob));
    LP_ASSERT_OK(lp_checkpoint_writer_add_u64(w, "step", step));
    LP_ASSERT_OK(lp_checkpoint_writer_add_u64(w, "max", UINT64_MAX));
    LP_ASSERT_OK(lp_checkpoint_writer_add_i64(w, "epoch", -3));
    LP_ASSERT_OK(lp_checkpoint_writer_add_i64(w, "min", INT64_MIN));
    LP_ASSERT_OK(lp_checkpoint_writer_add_rng(w, "rng", &s->rng));
    LP_ASSERT_OK(lp_checkpoint_writer_set_json(w, "{\"lr\": 0.001, \"note\": \"tab\\there\"}"));
    lp_status st = lp_checkpoint_writer_save(w, path);
    lp_checkpoint_writer_free(w);
    return st;
}

static void expect_state(const char *path, const state *s, uint64_t step)
{
    lp_checkpoint *c;
    LP_ASSERT_OK(lp_checkpoint_open(&c, path));
    assert_string_equal(lp_checkpoint_path(c), path);
    assert_int_equal(lp_checkpoint_tensor_count(c), 4);
    float w[6], m[6], v[3];
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "model.layers.0.mlp.up_proj.lora_A", w, 6));
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "optim.m.\"quoted\\name\"", m, 6));
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "optim.v", v, 3));
    assert_memory_equal(w, s->w, sizeof w); /* bit-exact, -0.0 included */
    assert_memory_equal(m, s->m, sizeof m);
    assert_memory_equal(v, s->v, sizeof v);
    const lp_tensor_info *t = lp_checkpoint_find(c, "model.layers.0.mlp.up_proj.lora_A");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    unsigned char blob[5];
    LP_ASSERT_OK(lp_checkpoint_get_bytes(c, "loader", blob, 5));
    assert_memory_equal(blob, s->blob, 5);
    uint64_t u;
    int64_t i;
    LP_ASSERT_OK(lp_checkpoint_get_u64(c, "step", &u));
    assert_true(u == step);
    LP_ASSERT_OK(lp_checkpoint_get_u64(c, "max", &u));
    assert_true(u == UINT64_MAX);
    LP_ASSERT_OK(lp_checkpoint_get_i64(c, "epoch", &i));
    assert_true(i == -3);
    LP_ASSERT_OK(lp_checkpoint_get_i64(c, "min", &i));
    assert_true(i == INT64_MIN);
    /* the restored generator continues the exact sequence, spare included */
    lp_rng r, ref = s->rng;
    LP_ASSERT_OK(lp_checkpoint_get_rng(c, "rng", &r));
    for (int k = 0; k < 5; k++) {
        double a = lp_rng_normal_double(&r), b = lp_rng_normal_double(&ref);
        assert_memory_equal(&a, &b, sizeof a);
        assert_true(lp_rng_next_u64(&r) == lp_rng_next_u64(&ref));
    }
    assert_string_equal(lp_checkpoint_json(c), "{\"lr\": 0.001, \"note\": \"tab\\there\"}");
    lp_checkpoint_close(c);
}

static void test_round_trip(void **state_)
{
    (void)state_;
    state s;
    make_state(&s, 7);
    const char *p = in_dir("rt.safetensors");
    LP_ASSERT_OK(save_state(&s, 1200, p));
    expect_state(p, &s, 1200);
    assert_int_equal(count_temp_files(), 0);
    unlink(p);
}

/* Any safetensors reader sees the tensors and the metadata. */
static void test_is_safetensors(void **state_)
{
    (void)state_;
    state s;
    make_state(&s, 8);
    const char *p = in_dir("plain.safetensors");
    LP_ASSERT_OK(save_state(&s, 5, p));
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, p));
    assert_int_equal(lp_safetensors_count(f), 4);
    assert_string_equal(lp_safetensors_metadata(f, "leanprop.checkpoint"), "1");
    assert_string_equal(lp_safetensors_metadata(f, "u64.step"), "5");
    assert_string_equal(lp_safetensors_metadata(f, "i64.epoch"), "-3");
    assert_int_equal(strlen(lp_safetensors_metadata(f, "leanprop.data_crc32")), 8);
    float w[6];
    LP_ASSERT_OK(lp_safetensors_read_f32(f, "model.layers.0.mlp.up_proj.lora_A", w, 6));
    assert_memory_equal(w, s.w, sizeof w);
    const lp_tensor_info *t = lp_safetensors_find(f, "loader");
    assert_non_null(t);
    assert_int_equal(t->dtype, LP_DTYPE_U8);
    lp_safetensors_close(f);
    /* header length is a multiple of 8 (aligned data) */
    size_t n;
    unsigned char *b = read_file(p, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    free(b);
    unlink(p);
}

/* Every byte of the file, changed: never loads, always LP_ERR_FORMAT naming the file. */
static void test_flipped_byte_detected(void **state_)
{
    (void)state_;
    state s;
    make_state(&s, 9);
    const char *p = in_dir("flip.safetensors"), *q = in_dir("flip-mutant.safetensors");
    LP_ASSERT_OK(save_state(&s, 77, p));
    size_t n;
    unsigned char *orig = read_file(p, &n);
    unsigned char *m = malloc(n);
    assert_non_null(m);
    static const unsigned char xors[] = {0x01, 0x80, 0xff, 0x20};
    for (size_t i = 0; i < n; i++) {
        for (size_t x = 0; x < sizeof xors; x++) {
            memcpy(m, orig, n);
            m[i] ^= xors[x];
            write_file(q, m, n);
            lp_checkpoint *c = NULL;
            lp_status st = lp_checkpoint_open(&c, q);
            if (st == LP_OK) {
                lp_checkpoint_close(c);
                fail_msg("byte %zu ^ 0x%02x: corrupted checkpoint loaded", i, xors[x]);
            }
            if (st != LP_ERR_FORMAT && st != LP_ERR_UNSUPPORTED)
                fail_msg("byte %zu ^ 0x%02x: %s: %s", i, xors[x], lp_status_name(st), lp_error_message());
            assert_null(c);
            if (!strstr(lp_error_message(), q)) fail_msg("byte %zu: message does not name the file: %s", i, lp_error_message());
        }
    }
    /* the data block specifically reports the data checksum */
    memcpy(m, orig, n);
    m[n - 1] ^= 0x01;
    write_file(q, m, n);
    lp_checkpoint *c;
    assert_int_equal(lp_checkpoint_open(&c, q), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "data checksum mismatch"));
    free(m);
    free(orig);
    unlink(p);
    unlink(q);
}

static void test_truncation_detected(void **state_)
{
    (void)state_;
    state s;
    make_state(&s, 10);
    const char *p = in_dir("trunc.safetensors"), *q = in_dir("trunc-cut.safetensors");
    LP_ASSERT_OK(save_state(&s, 3, p));
    size_t n;
    unsigned char *orig = read_file(p, &n);
    for (size_t len = 0; len < n; len++) {
        write_file(q, orig, len);
        lp_checkpoint *c = NULL;
        lp_status st = lp_checkpoint_open(&c, q);
        if (st != LP_ERR_FORMAT) fail_msg("cut at %zu of %zu: %s: %s", len, n, lp_status_name(st), lp_error_message());
        assert_non_null(strstr(lp_error_message(), q));
    }
    /* bytes appended after the data are refused too (the data checksum covers to the end) */
    unsigned char *longer = malloc(n + 4);
    memcpy(longer, orig, n);
    memset(longer + n, 0, 4);
    write_file(q, longer, n + 4);
    lp_checkpoint *c;
    assert_int_equal(lp_checkpoint_open(&c, q), LP_ERR_FORMAT);
    free(longer);
    free(orig);
    unlink(p);
    unlink(q);
}

/* A save that fails part-way leaves the old checkpoint intact and loadable. */
static void test_failed_save_keeps_old(void **state_)
{
    (void)state_;
    state a, b;
    make_state(&a, 11);
    make_state(&b, 12);
    const char *p = in_dir("keep.safetensors");
    LP_ASSERT_OK(save_state(&a, 100, p));
    size_t n;
    unsigned char *before = read_file(p, &n);
    /* fail at every point of the new file: in the length, the header, the data */
    for (uint64_t k = 1; k < n; k += 1 + k / 3) {
        lp_fileio_fail_after_bytes(k);
        lp_status st = save_state(&b, 200, p);
        lp_fileio_fail_after_bytes(0);
        if (st == LP_OK) fail_msg("save with a write failure after %llu bytes succeeded", (unsigned long long)k);
        assert_int_equal(st, LP_ERR_IO);
        assert_non_null(strstr(lp_error_message(), "keep.safetensors"));
        expect_state(p, &a, 100);
        size_t n2;
        unsigned char *now = read_file(p, &n2);
        assert_int_equal(n2, n);
        assert_memory_equal(now, before, n);
        free(now);
        assert_int_equal(count_temp_files(), 0);
    }
    /* and a save that works replaces it */
    LP_ASSERT_OK(save_state(&b, 200, p));
    expect_state(p, &b, 200);
    free(before);
    unlink(p);
}

static void test_not_a_checkpoint(void **state_)
{
    (void)state_;
    lp_checkpoint *c = (lp_checkpoint *)0x1;
    assert_int_equal(lp_checkpoint_open(&c, in_dir("missing.safetensors")), LP_ERR_NOT_FOUND);
    assert_null(c);
    assert_int_equal(lp_checkpoint_open(&c, g_dir), LP_ERR_FORMAT); /* a directory */
    /* a valid safetensors file without the checkpoint metadata */
    float x[2] = {1, 2};
    int64_t sh[1] = {2};
    lp_safetensors_writer *sw = lp_safetensors_writer_new();
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(sw, "x", x, sh, 1));
    const char *p = in_dir("plain2.safetensors");
    LP_ASSERT_OK(lp_safetensors_writer_save(sw, p));
    lp_safetensors_writer_free(sw);
    assert_int_equal(lp_checkpoint_open(&c, p), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "not a leanprop checkpoint"));
    assert_non_null(strstr(lp_error_message(), p));
    /* a newer format version is "unsupported" (checked before the checksums) */
    sw = lp_safetensors_writer_new();
    LP_ASSERT_OK(lp_safetensors_writer_add_f32(sw, "x", x, sh, 1));
    LP_ASSERT_OK(lp_safetensors_writer_set_metadata(sw, "leanprop.checkpoint", "2"));
    LP_ASSERT_OK(lp_safetensors_writer_save(sw, p));
    lp_safetensors_writer_free(sw);
    assert_int_equal(lp_checkpoint_open(&c, p), LP_ERR_UNSUPPORTED);
    unlink(p);
}

static void test_lookup_errors(void **state_)
{
    (void)state_;
    state s;
    make_state(&s, 13);
    const char *p = in_dir("lookup.safetensors");
    LP_ASSERT_OK(save_state(&s, 1, p));
    lp_checkpoint *c;
    LP_ASSERT_OK(lp_checkpoint_open(&c, p));
    float buf[8];
    assert_int_equal(lp_checkpoint_get_tensor(c, "nope", buf, 1), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "nope"));
    assert_int_equal(lp_checkpoint_get_tensor(c, "optim.v", buf, 4), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "3 elements, expected 4"));
    assert_int_equal(lp_checkpoint_get_tensor(c, "loader", buf, 5), LP_ERR_FORMAT); /* U8, not F32 */
    assert_int_equal(lp_checkpoint_get_bytes(c, "optim.v", buf, 12), LP_ERR_FORMAT);
    assert_int_equal(lp_checkpoint_get_bytes(c, "loader", buf, 4), LP_ERR_FORMAT);
    uint64_t u;
    int64_t i;
    assert_int_equal(lp_checkpoint_get_u64(c, "epoch", &u), LP_ERR_NOT_FOUND); /* an i64, not a u64 */
    assert_int_equal(lp_checkpoint_get_i64(c, "step", &i), LP_ERR_NOT_FOUND);
    lp_rng r;
    assert_int_equal(lp_checkpoint_get_rng(c, "other", &r), LP_ERR_NOT_FOUND);
    assert_null(lp_checkpoint_find(c, "nope"));
    assert_null(lp_checkpoint_tensor_at(c, 4));
    assert_non_null(lp_checkpoint_tensor_at(c, 3));
    lp_checkpoint_close(c);
    unlink(p);
}

static void test_writer_arguments(void **state_)
{
    (void)state_;
    lp_checkpoint_writer *w = lp_checkpoint_writer_new();
    float x[4] = {0};
    int64_t sh[2] = {2, 2}, neg[1] = {-1};
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "x", x, sh, 2));
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "x", x, sh, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "", x, sh, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "__metadata__", x, sh, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "y", x, neg, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "y", NULL, sh, 2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "y", x, sh, LP_MAX_DIMS + 1), LP_ERR_INVALID_ARG);
    int64_t huge[2] = {INT64_MAX, 4};
    assert_int_equal(lp_checkpoint_writer_add_tensor(w, "y", x, huge, 2), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_checkpoint_writer_add_u64(w, "step", 1));
    assert_int_equal(lp_checkpoint_writer_add_u64(w, "step", 2), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_checkpoint_writer_add_i64(w, "step", 2)); /* another kind: its own name space */
    assert_int_equal(lp_checkpoint_writer_set_json(w, "{not json"), LP_ERR_INVALID_ARG);
    char *longname = malloc(LP_CHECKPOINT_NAME_MAX + 2);
    memset(longname, 'a', LP_CHECKPOINT_NAME_MAX + 1);
    longname[LP_CHECKPOINT_NAME_MAX + 1] = '\0';
    assert_int_equal(lp_checkpoint_writer_add_u64(w, longname, 1), LP_ERR_INVALID_ARG);
    free(longname);
    /* an empty tensor and a scalar tensor save and load */
    int64_t zero[2] = {0, 3};
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "empty", NULL, zero, 2));
    float one = 2.5f;
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "scalar", &one, NULL, 0));
    const char *p = in_dir("args.safetensors");
    LP_ASSERT_OK(lp_checkpoint_writer_save(w, p));
    /* saving again (same writer) works and gives the same bytes */
    const char *p2 = in_dir("args2.safetensors");
    LP_ASSERT_OK(lp_checkpoint_writer_save(w, p2));
    lp_checkpoint_writer_free(w);
    size_t n1, n2;
    unsigned char *b1 = read_file(p, &n1), *b2 = read_file(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    lp_checkpoint *c;
    LP_ASSERT_OK(lp_checkpoint_open(&c, p));
    float got;
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "scalar", &got, 1));
    assert_true(got == 2.5f);
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "empty", NULL, 0));
    assert_null(lp_checkpoint_json(c));
    lp_checkpoint_close(c);
    unlink(p);
    unlink(p2);
    assert_int_equal(lp_checkpoint_writer_save(NULL, p), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_checkpoint_open(NULL, p), LP_ERR_INVALID_ARG);
    lp_checkpoint_writer_free(NULL);
    lp_checkpoint_close(NULL);
}

/* A bigger state (1M floats): save and verified load are fast enough to run every few steps. */
static void test_large_round_trip(void **state_)
{
    (void)state_;
    size_t n = 1 << 20;
    float *x = lp_alloc_array(LP_MEM_WEIGHTS, n, sizeof(float)), *y = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    assert_true(x && y);
    lp_rng r;
    lp_rng_seed(&r, 3);
    lp_rng_fill_normal(&r, x, n, 0, 1);
    int64_t sh[2] = {1024, 1024};
    lp_checkpoint_writer *w = lp_checkpoint_writer_new();
    LP_ASSERT_OK(lp_checkpoint_writer_add_tensor(w, "w", x, sh, 2));
    const char *p = in_dir("large.safetensors");
    LP_ASSERT_OK(lp_checkpoint_writer_save(w, p));
    lp_checkpoint_writer_free(w);
    lp_checkpoint *c;
    LP_ASSERT_OK(lp_checkpoint_open(&c, p));
    LP_ASSERT_OK(lp_checkpoint_get_tensor(c, "w", y, n));
    assert_memory_equal(x, y, n * sizeof(float));
    lp_checkpoint_close(c);
    lp_free(x);
    lp_free(y);
    unlink(p);
}

static int teardown(void **state_)
{
    (void)state_;
    if (g_dir[0]) rmdir(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_is_safetensors),
        cmocka_unit_test(test_flipped_byte_detected),
        cmocka_unit_test(test_truncation_detected),
        cmocka_unit_test(test_failed_save_keeps_old),
        cmocka_unit_test(test_not_a_checkpoint),
        cmocka_unit_test(test_lookup_errors),
        cmocka_unit_test(test_writer_arguments),
        cmocka_unit_test(test_large_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
