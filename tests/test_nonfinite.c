/* Non-finite detection: every position and kind (nan, +inf, -inf, signalling and negative NaN)
 * is found, the report names step, kind, tensor, index and count; finite extremes (max float,
 * subnormals, -0) pass; large tensors take the threaded path and agree with the serial one;
 * policy names parse; the scan runs at memory speed. */
#include "util/test_util.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "leanprop/alloc.h"
#include "leanprop/nonfinite.h"
#include "leanprop/threads.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_policy_parse(void **state)
{
    (void)state;
    lp_nonfinite_policy p = LP_NONFINITE_SKIP;
    LP_ASSERT_OK(lp_nonfinite_policy_parse("stop", &p));
    assert_int_equal(p, LP_NONFINITE_STOP);
    LP_ASSERT_OK(lp_nonfinite_policy_parse("skip", &p));
    assert_int_equal(p, LP_NONFINITE_SKIP);
    assert_int_equal(lp_nonfinite_policy_parse("Stop", &p), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "'Stop'"));
    assert_non_null(strstr(lp_error_message(), "stop or skip"));
    assert_int_equal(lp_nonfinite_policy_parse("", &p), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_nonfinite_policy_parse(NULL, &p), LP_ERR_INVALID_ARG);
    assert_int_equal(p, LP_NONFINITE_SKIP); /* untouched on failure */
    assert_string_equal(lp_nonfinite_policy_name(LP_NONFINITE_STOP), "stop");
    assert_string_equal(lp_nonfinite_policy_name(LP_NONFINITE_SKIP), "skip");
    assert_string_equal(lp_nonfinite_policy_name((lp_nonfinite_policy)7), "?");
}

static void test_finite_extremes_pass(void **state)
{
    (void)state;
    float x[] = {0.0f, -0.0f, FLT_MAX, -FLT_MAX, FLT_MIN, from_bits(1) /* smallest subnormal */,
                 from_bits(0x807fffffu), 1e-45f, 3.0f};
    size_t n = sizeof x / sizeof x[0];
    assert_true(lp_all_finite(x, n));
    assert_int_equal(lp_first_nonfinite(x, n), -1);
    LP_ASSERT_OK(lp_check_finite(x, n, "x", 3));
    assert_true(lp_all_finite(NULL, 0));
    LP_ASSERT_OK(lp_check_finite(NULL, 0, "empty", 0));
    assert_int_equal(lp_check_finite(NULL, 4, "x", 0), LP_ERR_INVALID_ARG);
}

/* Each kind of bad value at each position of tensors of several lengths (covering the
 * 1024-blocks and the tail of the serial scan). */
static void test_every_position_found(void **state)
{
    (void)state;
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY, from_bits(0x7f800001u) /* signalling NaN */,
                         from_bits(0xffc00000u)};
    const size_t lens[] = {1, 2, 7, 1023, 1024, 1025, 3000};
    float *x = lp_alloc_array(LP_MEM_SCRATCH, 3000, sizeof(float));
    assert_non_null(x);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        for (size_t i = 0; i < n; i += 1 + n / 50) {
            for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                for (size_t k = 0; k < n; k++) x[k] = (float)k - 100.0f;
                x[i] = bad[b];
                if (lp_all_finite(x, n)) fail_msg("n=%zu: value %zu at %zu not found", n, b, i);
                assert_int_equal(lp_first_nonfinite(x, n), (int64_t)i);
                assert_int_equal(lp_check_finite(x, n, "t", 1), LP_ERR_NUMERIC);
            }
        }
    }
    lp_free(x);
}

static void test_messages(void **state)
{
    (void)state;
    float g[4096];
    for (int i = 0; i < 4096; i++) g[i] = 0.5f;
    g[345] = NAN;
    g[1000] = INFINITY;
    g[4000] = NAN;
    assert_int_equal(lp_check_finite_kind(g, 4096, "gradients", "model.layers.0.mlp.up_proj.weight", 12),
                     LP_ERR_NUMERIC);
    assert_string_equal(lp_error_message(),
                        "step 12: non-finite value (nan) in gradients of model.layers.0.mlp.up_proj.weight at index "
                        "345 (3 of 4096 values non-finite)");
    g[345] = -INFINITY;
    assert_int_equal(lp_check_finite(g, 4096, "h", -1), LP_ERR_NUMERIC);
    assert_string_equal(lp_error_message(), "non-finite value (-inf) in h at index 345 (3 of 4096 values non-finite)");
    float loss = INFINITY;
    assert_int_equal(lp_check_finite(&loss, 1, "loss", 7), LP_ERR_NUMERIC);
    assert_string_equal(lp_error_message(), "step 7: non-finite value (inf) in loss");
    loss = NAN;
    assert_int_equal(lp_check_finite_kind(&loss, 1, "activations", "ln_f", 0), LP_ERR_NUMERIC);
    assert_string_equal(lp_error_message(), "step 0: non-finite value (nan) in activations of ln_f");
    assert_int_equal(lp_check_finite(&loss, 1, NULL, 2), LP_ERR_NUMERIC);
    assert_string_equal(lp_error_message(), "step 2: non-finite value (nan) in tensor");
    size_t nn, ni;
    lp_count_nonfinite(g, 4096, &nn, &ni);
    assert_int_equal(nn, 1);
    assert_int_equal(ni, 2);
    lp_count_nonfinite(g, 4096, NULL, NULL);
}

/* Large tensors go through the OpenMP reduction: same answers with 1 and several threads, for a
 * bad value near the start, in the middle, at the very end. */
static void test_large_threaded(void **state)
{
    (void)state;
    size_t n = (size_t)3 << 20;
    float *x = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    assert_non_null(x);
    int saved = lp_threads_get();
    const size_t where[] = {0, 5, n / 2, n - 1};
    for (int threads = 1; threads <= 4; threads += 3) {
        LP_ASSERT_OK(lp_threads_set(threads));
        for (size_t k = 0; k < n; k++) x[k] = 1.0f;
        assert_true(lp_all_finite(x, n));
        LP_ASSERT_OK(lp_check_finite(x, n, "big", 1));
        for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
            x[where[w]] = w & 1 ? INFINITY : NAN;
            assert_false(lp_all_finite(x, n));
            assert_int_equal(lp_first_nonfinite(x, n), (int64_t)where[w]);
            size_t nn, ni;
            lp_count_nonfinite(x, n, &nn, &ni);
            assert_int_equal(nn + ni, 1);
            x[where[w]] = 1.0f;
        }
    }
    LP_ASSERT_OK(lp_threads_set(saved));
    lp_free(x);
}

/* The scan runs at memory speed (about 10 GB/s here in the optimised build, 0.7 GB/s under
 * ASan); the rate is printed. Timing does not gate the suite (a shared machine): only a
 * pathological slowdown (over 2 s for 64 MiB) fails. */
static void test_speed(void **state)
{
    (void)state;
    size_t n = (size_t)16 << 20;
    float *x = lp_alloc_array(LP_MEM_SCRATCH, n, sizeof(float));
    assert_non_null(x);
    for (size_t k = 0; k < n; k++) x[k] = (float)(k & 1023);
    struct timespec a, b;
    int ok = 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int r = 0; r < 5; r++) ok &= lp_all_finite(x, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true(ok);
    double s = ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec)) / 5;
    print_message("lp_all_finite: %.2f ms for 64 MiB (%.1f GB/s)\n", 1e3 * s, (double)n * 4 / s / 1e9);
    lp_free(x);
    assert_true(s < 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_parse),
        cmocka_unit_test(test_finite_extremes_pass),
        cmocka_unit_test(test_every_position_found),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_large_threaded),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
