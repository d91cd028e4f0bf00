/* Core runtime: status messages, accounting allocator, rng, threads, progress. */
#include "util/test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "leanprop/status.h"
#include "leanprop/threads.h"

static void test_status_messages(void **state)
{
    (void)state;
    assert_int_equal(lp_error(LP_ERR_FORMAT, "%s: bad header at byte %d", "x.safetensors", 8), LP_ERR_FORMAT);
    assert_string_equal(lp_error_message(), "x.safetensors: bad header at byte 8");
    lp_error_context(LP_ERR_FORMAT, "loading %s", "model");
    assert_string_equal(lp_error_message(), "loading model: x.safetensors: bad header at byte 8");
    assert_string_equal(lp_status_name(LP_ERR_NOMEM), "out of memory");
    assert_string_equal(lp_status_name((lp_status)999), "unknown status");
    lp_error_clear();
    assert_string_equal(lp_error_message(), "");
}

static void test_alloc_accounting(void **state)
{
    (void)state;
    lp_mem_reset_peak();
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), a0 = lp_mem_current(LP_MEM_ACTIVATIONS);
    size_t t0 = lp_mem_total_current();
    float *w = lp_alloc(LP_MEM_WEIGHTS, 1000 * sizeof(float));
    assert_non_null(w);
    assert_true(((uintptr_t)w & 63) == 0);
    for (int i = 0; i < 1000; i++) assert_true(w[i] == 0.0f);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0 + 4000);
    void *a = lp_alloc(LP_MEM_ACTIVATIONS, 12345);
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0 + 12345);
    assert_int_equal(lp_alloc_size(a), 12345);
    assert_int_equal(lp_alloc_category(a), LP_MEM_ACTIVATIONS);
    lp_free(a);
    assert_int_equal(lp_mem_current(LP_MEM_ACTIVATIONS), a0);
    assert_int_equal(lp_mem_peak(LP_MEM_ACTIVATIONS), a0 + 12345);
    /* total peak is the peak of the sum */
    assert_int_equal(lp_mem_total_peak(), t0 + 4000 + 12345);
    lp_alloc_retag(w, LP_MEM_GRADIENTS);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    w = lp_realloc(w, 8000 * sizeof(float));
    assert_non_null(w);
    assert_int_equal(lp_alloc_category(w), LP_MEM_GRADIENTS);
    assert_true(w[7999] == 0.0f);
    lp_free(w);
    assert_int_equal(lp_mem_total_current(), t0);
    lp_free(NULL);
}

static void test_alloc_bad_arguments(void **state)
{
    (void)state;
    assert_null(lp_alloc(LP_MEM_SCRATCH, 0));
    assert_null(lp_alloc((lp_mem_category)77, 16));
    assert_non_null(strstr(lp_error_message(), "category"));
    assert_null(lp_alloc_array(LP_MEM_DATA, SIZE_MAX / 2, 4));
    assert_non_null(strstr(lp_error_message(), "overflow"));
    assert_null(lp_alloc(LP_MEM_DATA, SIZE_MAX - 10));
    void *p = NULL;
    assert_int_equal(lp_alloc_checked(&p, LP_MEM_DATA, 0, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_alloc_checked(NULL, LP_MEM_DATA, 1, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_alloc_checked(&p, LP_MEM_DATA, 4, 4), LP_OK);
    lp_free(p);
}

static void test_alloc_budget_and_injected_failure(void **state)
{
    (void)state;
    lp_mem_set_limit(lp_mem_total_current() + 1000);
    void *ok = lp_alloc(LP_MEM_SCRATCH, 900);
    assert_non_null(ok);
    assert_null(lp_alloc(LP_MEM_OPTIMIZER, 200));
    assert_non_null(strstr(lp_error_message(), "optimizer"));
    assert_non_null(strstr(lp_error_message(), "budget"));
    lp_mem_set_limit(0);
    lp_free(ok);
    lp_mem_fail_after(2);
    void *first = lp_alloc(LP_MEM_DATA, 10);
    assert_non_null(first);
    assert_null(lp_alloc(LP_MEM_DATA, 10));
    assert_non_null(strstr(lp_error_message(), "data"));
    void *third = lp_alloc(LP_MEM_DATA, 10);
    assert_non_null(third);
    lp_free(first);
    lp_free(third);
    char report[1024];
    lp_mem_format_report(report, sizeof report);
    assert_non_null(strstr(report, "activations"));
    assert_non_null(strstr(report, "total"));
    char b[32];
    assert_string_equal(lp_format_bytes(1536, b, sizeof b), "1.50 KiB");
    assert_string_equal(lp_format_bytes(12, b, sizeof b), "12 B");
    assert_true(lp_mem_rss_bytes() > 0);
}

static void test_rng_reproducible_and_distributed(void **state)
{
    (void)state;
    lp_rng a, b;
    lp_rng_seed(&a, 123);
    lp_rng_seed(&b, 123);
    for (int i = 0; i < 100; i++) assert_true(lp_rng_next_u64(&a) == lp_rng_next_u64(&b));
    lp_rng_seed(&b, 124);
    assert_true(lp_rng_next_u64(&a) != lp_rng_next_u64(&b));
    /* moments of uniform and normal over 200k draws */
    double su = 0, sn = 0, sn2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = lp_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        su += u;
        double z = lp_rng_normal_double(&a);
        sn += z;
        sn2 += z * z;
    }
    LP_ASSERT_CLOSE(su / n, 0.5, 0.005, 0, "uniform mean");
    LP_ASSERT_CLOSE(sn / n, 0.0, 0.01, 0, "normal mean");
    LP_ASSERT_CLOSE(sn2 / n, 1.0, 0.015, 0, "normal variance");
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[lp_rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) assert_true(counts[i] > 9500 && counts[i] < 10500);
}

static void test_rng_permutation_and_sample(void **state)
{
    (void)state;
    lp_rng r;
    lp_rng_seed(&r, 7);
    int64_t perm[50];
    lp_rng_permutation(&r, perm, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) { assert_true(perm[i] >= 0 && perm[i] < 50); seen[perm[i]]++; }
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
    for (size_t k = 0; k <= 200; k += 13) {   /* small k: scan; large k: bitmap */
        int64_t out[200];
        LP_ASSERT_OK(lp_rng_sample(&r, out, k, 200));
        for (size_t i = 1; i < k; i++) assert_true(out[i] > out[i - 1]); /* sorted, distinct */
        if (k) assert_true(out[0] >= 0 && out[k - 1] < 200);
    }
    int64_t all[5];
    LP_ASSERT_OK(lp_rng_sample(&r, all, 5, 5));
    for (int i = 0; i < 5; i++) assert_int_equal(all[i], i);
    assert_int_equal(lp_rng_sample(&r, all, 6, 5), LP_ERR_INVALID_ARG);
    /* every element equally likely: sample 3 of 10, 30000 times */
    int hits[10] = {0};
    for (int t = 0; t < 30000; t++) {
        int64_t o[3];
        lp_rng_sample(&r, o, 3, 10);
        for (int i = 0; i < 3; i++) hits[o[i]]++;
    }
    for (int i = 0; i < 10; i++) assert_true(hits[i] > 8400 && hits[i] < 9600);
}

static void test_threads(void **state)
{
    (void)state;
    LP_ASSERT_OK(lp_threads_set(1));
    assert_int_equal(lp_threads_get(), 1);
    assert_int_equal(lp_threads_set(0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_threads_get(), 1);
    LP_ASSERT_OK(lp_threads_set(2));
    assert_int_equal(lp_threads_get(), 2);
}

static void test_progress_format(void **state)
{
    (void)state;
    lp_progress *p = lp_progress_new("train", 100);
    assert_non_null(p);
    char line[512];
    lp_progress_format(p, 25, 10.0, "loss 1.234", line, sizeof line);
    assert_non_null(strstr(line, "25/100"));
    assert_non_null(strstr(line, "25.0%"));
    assert_non_null(strstr(line, "2.50 it/s"));
    assert_non_null(strstr(line, "eta 00:30"));
    assert_non_null(strstr(line, "loss 1.234"));
    lp_progress_set_enabled(p, 0);
    lp_progress_update(p, 50, "x"); /* disabled: draws nothing */
    lp_progress_free(p);
    lp_progress_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_messages),
        cmocka_unit_test(test_alloc_accounting),
        cmocka_unit_test(test_alloc_bad_arguments),
        cmocka_unit_test(test_alloc_budget_and_injected_failure),
        cmocka_unit_test(test_rng_reproducible_and_distributed),
        cmocka_unit_test(test_rng_permutation_and_sample),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_progress_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
