/* TokenTune token selection: counts, forced positions, padding, seeds, uniformity. */
#include "util/test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/dataset.h"
#include "leanprop/tokenselect.h"

/* Every invariant of a selection, for any config. */
static void check_selection(const lp_token_selection *sel, const lp_tokenselect_config *cfg, const int32_t *lens)
{
    int64_t total = 0;
    assert_int_equal(sel->offsets[0], 0);
    for (int32_t b = 0; b < sel->n_seq; b++) {
        int32_t len = lens[b];
        int32_t n = sel->offsets[b + 1] - sel->offsets[b];
        const int32_t *p = sel->positions + sel->offsets[b];
        const uint8_t *row = sel->mask + (size_t)b * sel->T_used;
        assert_int_equal(n, lp_tokenselect_count(cfg, len));
        int32_t in_mask = 0;
        for (int32_t t = 0; t < sel->T_used; t++) {
            if (t >= len) assert_int_equal(row[t], 0); /* padding never selected */
            in_mask += row[t];
        }
        assert_int_equal(in_mask, n);
        for (int32_t i = 0; i < n; i++) {
            assert_true(p[i] >= 0 && p[i] < len);
            if (i) assert_true(p[i] > p[i - 1]);
            assert_int_equal(row[p[i]], 1);
        }
        if (len > 0) {
            assert_int_equal(p[0], 0);
            if (!cfg->encoder) assert_int_equal(p[n - 1], len - 1);
        }
        total += n;
    }
    assert_int_equal(sel->total_selected, total);
    assert_int_equal(sel->offsets[sel->n_seq], total);
}

static void test_count_mode_exact(void **state)
{
    (void)state;
    enum { B = 6, T = 40 };
    int32_t lens[B] = {40, 17, 3, 2, 1, 0};
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "8"));
    assert_int_equal(cfg.mode, LP_TOKENSELECT_COUNT);
    assert_int_equal(cfg.k, 8);
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, B, T));
    lp_rng r;
    lp_rng_seed(&r, 1);
    for (int step = 0; step < 50; step++) {
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
        check_selection(&sel, &cfg, lens);
        assert_int_equal(sel.offsets[1] - sel.offsets[0], 8);
        assert_int_equal(sel.offsets[2] - sel.offsets[1], 8);
        /* k > len: all real tokens, counted, no error */
        assert_int_equal(sel.offsets[3] - sel.offsets[2], 3);
        assert_int_equal(sel.offsets[4] - sel.offsets[3], 2);
        assert_int_equal(sel.offsets[5] - sel.offsets[4], 1);
        assert_int_equal(sel.offsets[6] - sel.offsets[5], 0);
        assert_int_equal(sel.n_capped, 3);
        assert_int_equal(sel.total_real, 40 + 17 + 3 + 2 + 1);
    }
    lp_tokenselect_free(&sel);
}

static void test_fraction_and_all(void **state)
{
    (void)state;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "0.3"));
    assert_int_equal(cfg.mode, LP_TOKENSELECT_FRACTION);
    assert_int_equal(lp_tokenselect_count(&cfg, 10), 3);
    assert_int_equal(lp_tokenselect_count(&cfg, 100), 30);
    assert_int_equal(lp_tokenselect_count(&cfg, 5), 2);  /* 1.5 -> 2 */
    assert_int_equal(lp_tokenselect_count(&cfg, 3), 2);  /* 0.9 -> 1, clamped to 2 */
    assert_int_equal(lp_tokenselect_count(&cfg, 1), 1);
    assert_int_equal(lp_tokenselect_count(&cfg, 0), 0);
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "35%"));
    assert_true(fabs(cfg.fraction - 0.35) < 1e-12);
    assert_int_equal(lp_tokenselect_count(&cfg, 10), 4); /* 3.5 rounds up despite 0.35*10 = 3.4999.. */
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "1.0"));
    assert_int_equal(lp_tokenselect_count(&cfg, 77), 77);

    enum { B = 4, T = 64 };
    int32_t lens[B] = {64, 33, 2, 7};
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, B, T));
    lp_rng r;
    lp_rng_seed(&r, 2);
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "0.25"));
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
    check_selection(&sel, &cfg, lens);
    assert_int_equal(sel.offsets[1], 16);
    assert_int_equal(sel.n_capped, 0);
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "all"));
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
    check_selection(&sel, &cfg, lens);
    assert_int_equal(sel.total_selected, 64 + 33 + 2 + 7);
    for (int32_t b = 0; b < B; b++)
        for (int32_t i = 0; i < lens[b]; i++) assert_int_equal(sel.positions[sel.offsets[b] + i], i);
    lp_tokenselect_free(&sel);
}

static void test_edge_lengths(void **state)
{
    (void)state;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 2;
    int32_t lens[3] = {1, 2, 3};
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 3, 3));
    lp_rng r;
    lp_rng_seed(&r, 3);
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
    check_selection(&sel, &cfg, lens);
    /* len 1: {0}; len 2: {0,1}; len 3, k 2: exactly {0,2} (the interior gets nothing) */
    assert_int_equal(sel.positions[0], 0);
    assert_int_equal(sel.positions[1], 0);
    assert_int_equal(sel.positions[2], 1);
    assert_int_equal(sel.positions[3], 0);
    assert_int_equal(sel.positions[4], 2);
    assert_int_equal(sel.n_capped, 1);
    lp_tokenselect_free(&sel);
}

static void test_encoder_variant(void **state)
{
    (void)state;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    cfg.encoder = 1;
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 16; /* BERT default */
    enum { B = 3, T = 128 };
    int32_t lens[B] = {128, 20, 9};
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, B, T));
    lp_rng r;
    lp_rng_seed(&r, 4);
    int last_seen = 0;
    for (int step = 0; step < 40; step++) {
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
        check_selection(&sel, &cfg, lens);
        assert_int_equal(sel.offsets[1], 16);
        assert_int_equal(sel.offsets[2] - sel.offsets[1], 16);
        assert_int_equal(sel.offsets[3] - sel.offsets[2], 9);
        if (sel.positions[15] == 127) last_seen++;
    }
    assert_true(last_seen < 40); /* the last token is not forced for encoders */
    cfg.k = 1;
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
    assert_int_equal(sel.total_selected, 3); /* [CLS] alone */
    lp_tokenselect_free(&sel);
}

static void test_reproducible_by_seed(void **state)
{
    (void)state;
    enum { B = 4, T = 100 };
    int32_t lens[B] = {100, 90, 50, 10};
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "0.2"));
    lp_token_selection a, b;
    LP_ASSERT_OK(lp_tokenselect_init(&a, B, T));
    LP_ASSERT_OK(lp_tokenselect_init(&b, B, T));
    lp_rng ra, rb;
    lp_tokenselect_rng_for_step(&ra, 42, 7);
    lp_tokenselect_rng_for_step(&rb, 42, 7);
    LP_ASSERT_OK(lp_tokenselect_select(&a, &cfg, a.B, a.T, lens, NULL, &ra));
    LP_ASSERT_OK(lp_tokenselect_select(&b, &cfg, b.B, b.T, lens, NULL, &rb));
    assert_memory_equal(a.positions, b.positions, sizeof(int32_t) * (size_t)a.total_selected);
    assert_memory_equal(a.mask, b.mask, B * T);
    /* the next step and another seed draw differently */
    lp_tokenselect_rng_for_step(&rb, 42, 8);
    LP_ASSERT_OK(lp_tokenselect_select(&b, &cfg, b.B, b.T, lens, NULL, &rb));
    assert_true(memcmp(a.mask, b.mask, B * T) != 0);
    lp_tokenselect_rng_for_step(&rb, 43, 7);
    LP_ASSERT_OK(lp_tokenselect_select(&b, &cfg, b.B, b.T, lens, NULL, &rb));
    assert_true(memcmp(a.mask, b.mask, B * T) != 0);
    lp_tokenselect_free(&a);
    lp_tokenselect_free(&b);
}

/* Interior positions are drawn uniformly: chi-square over 30 interior cells. */
static void test_interior_uniform(void **state)
{
    (void)state;
    enum { T = 32, DRAWS = 20000 };
    int32_t len = T;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 6; /* 4 of the 30 interior positions per draw */
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 1, T));
    lp_rng r;
    lp_rng_seed(&r, 5);
    double hits[T] = {0};
    double pair_lo = 0; /* how often positions 1 and 2 are both taken */
    for (int d = 0; d < DRAWS; d++) {
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, &len, NULL, &r));
        for (int t = 0; t < T; t++) hits[t] += sel.mask[t];
        pair_lo += sel.mask[1] && sel.mask[2];
    }
    assert_true(hits[0] == DRAWS && hits[T - 1] == DRAWS);
    double expect = DRAWS * 4.0 / 30.0, chi2 = 0;
    for (int t = 1; t < T - 1; t++) chi2 += (hits[t] - expect) * (hits[t] - expect) / expect;
    /* 29 dof (slightly dependent cells): mean 29, the 99.99% point is about 66 */
    if (chi2 > 66.0) fail_msg("interior draws not uniform: chi2 %.1f over 29 dof", chi2);
    /* pairs: P(1 and 2) = C(28,2)/C(30,4) = 4*3/(30*29) */
    double p_pair = 12.0 / 870.0;
    double sd = sqrt(DRAWS * p_pair * (1 - p_pair));
    if (fabs(pair_lo - DRAWS * p_pair) > 5 * sd)
        fail_msg("pair frequency %.0f vs expected %.1f", pair_lo, DRAWS * p_pair);
    lp_tokenselect_free(&sel);
}

static void test_answer_strategy(void **state)
{
    (void)state;
    enum { T = 20 };
    int32_t len = 16;
    int32_t labels[T];
    /* prompt of 10 tokens, response 6 tokens (positions 10..15), padding after */
    for (int t = 0; t < T; t++) labels[t] = (t >= 10 && t < 16) ? 100 + t : -100;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse_strategy(&cfg, "answer"));
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 9;
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 1, T));
    lp_rng r;
    lp_rng_seed(&r, 6);
    for (int step = 0; step < 20; step++) {
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, &len, labels, &r));
        check_selection(&sel, &cfg, &len);
        /* shifted: positions 9..14 predict trained tokens; all in, plus 1 random */
        for (int t = 9; t <= 14; t++) assert_int_equal(sel.mask[t], 1);
    }
    cfg.k = 4; /* fewer than the answer positions: 2 of them, never prompt positions */
    for (int step = 0; step < 20; step++) {
        LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, &len, labels, &r));
        check_selection(&sel, &cfg, &len);
        for (int t = 1; t < 9; t++) assert_int_equal(sel.mask[t], 0);
    }
    /* no labels: falls back to random */
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, &len, NULL, &r));
    check_selection(&sel, &cfg, &len);
    lp_tokenselect_free(&sel);
}

/* A custom strategy: the first k positions. And one that breaks the contract. */
static lp_status first_k(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                         const lp_tokenselect_config *cfg, lp_rng *rng, void *user)
{
    (void)len; (void)trained; (void)cfg; (void)rng;
    int *calls = user;
    (*calls)++;
    for (int32_t i = 0; i < k; i++) out[i] = i;
    return LP_OK;
}

static lp_status broken(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                        const lp_tokenselect_config *cfg, lp_rng *rng, void *user)
{
    (void)trained; (void)cfg; (void)rng; (void)user;
    for (int32_t i = 0; i < k; i++) out[i] = len; /* out of range */
    return LP_OK;
}

static void test_custom_strategy(void **state)
{
    (void)state;
    int32_t lens[2] = {10, 5};
    int calls = 0;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 3;
    cfg.strategy = LP_TOKENSELECT_CUSTOM;
    cfg.custom = first_k;
    cfg.custom_user = &calls;
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 2, 10));
    lp_rng r;
    lp_rng_seed(&r, 7);
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r));
    assert_int_equal(calls, 2);
    assert_int_equal(sel.positions[5], 2);
    cfg.custom = broken;
    assert_int_equal(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r), LP_ERR_INTERNAL);
    assert_non_null(strstr(lp_error_message(), "sequence 0"));
    cfg.custom = NULL;
    assert_int_equal(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, lens, NULL, &r), LP_ERR_INVALID_ARG);
    lp_tokenselect_free(&sel);
}

/* A batch padded to its longest sequence (lp_batch's T_used) inside a larger
 * capacity: the mask has that batch's row stride. */
static void test_batch_shape_within_capacity(void **state)
{
    (void)state;
    int32_t ids[9] = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    int64_t offsets[3] = {0, 5, 9};
    int32_t n_prompt[2] = {2, 0}, label[2] = {-1, -1};
    int64_t source[2] = {0, 1};
    lp_token_dataset ds = {2, offsets, ids, n_prompt, label, source, 5, 9};
    lp_batch batch;
    LP_ASSERT_OK(lp_batch_init(&batch, 4, 16));
    int64_t idx[2] = {0, 1};
    LP_ASSERT_OK(lp_batch_fill(&batch, &ds, idx, 2, 0, 0, NULL));
    assert_int_equal(batch.T_used, 5);
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    LP_ASSERT_OK(lp_tokenselect_parse(&cfg, "3"));
    lp_token_selection sel;
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 4, 16));
    lp_rng r;
    lp_rng_seed(&r, 9);
    LP_ASSERT_OK(lp_tokenselect_select(&sel, &cfg, batch.B, batch.T_used, batch.lengths, batch.labels, &r));
    assert_int_equal(sel.n_seq, 4);
    assert_int_equal(sel.T_used, 5);
    check_selection(&sel, &cfg, batch.lengths);
    assert_int_equal(sel.mask[0 * 5 + 0], 1);
    assert_int_equal(sel.mask[0 * 5 + 4], 1);
    assert_int_equal(sel.mask[1 * 5 + 3], 1); /* last real token of the 4-token row */
    assert_int_equal(sel.mask[1 * 5 + 4], 0); /* its padding */
    assert_int_equal(sel.total_selected, 6);   /* rows 2 and 3 are empty */
    assert_int_equal(lp_tokenselect_select(&sel, &cfg, 5, 5, batch.lengths, NULL, &r), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_tokenselect_select(&sel, &cfg, 4, 17, batch.lengths, NULL, &r), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "capacity"));
    lp_tokenselect_free(&sel);
    lp_batch_free(&batch);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    lp_tokenselect_config cfg = lp_tokenselect_defaults();
    const char *bad[] = {"", "abc", "0", "-3", "1.5", "0%", "120%", "16x", "0.0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (lp_tokenselect_parse(&cfg, bad[i]) != LP_ERR_INVALID_ARG) fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(lp_tokenselect_parse_strategy(&cfg, "greedy"), LP_ERR_INVALID_ARG);
    cfg = lp_tokenselect_defaults();
    cfg.mode = LP_TOKENSELECT_COUNT;
    cfg.k = 1; /* decoders force two positions */
    assert_int_equal(lp_tokenselect_validate(&cfg), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "k >= 2"));
    cfg.encoder = 1;
    LP_ASSERT_OK(lp_tokenselect_validate(&cfg));
    lp_token_selection sel;
    assert_int_equal(lp_tokenselect_init(&sel, 0, 4), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_tokenselect_init(&sel, 1, 4));
    int32_t len = 5; /* longer than T */
    lp_rng r;
    lp_rng_seed(&r, 8);
    assert_int_equal(lp_tokenselect_select(&sel, &cfg, sel.B, sel.T, &len, NULL, &r), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "length 5"));
    lp_tokenselect_free(&sel);
    lp_tokenselect_free(&sel); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_mode_exact),
        cmocka_unit_test(test_fraction_and_all),
        cmocka_unit_test(test_edge_lengths),
        cmocka_unit_test(test_encoder_variant),
        cmocka_unit_test(test_reproducible_by_seed),
        cmocka_unit_test(test_interior_uniform),
        cmocka_unit_test(test_answer_strategy),
        cmocka_unit_test(test_custom_strategy),
        cmocka_unit_test(test_batch_shape_within_capacity),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
