/* Learning-rate schedules: exact values against the Hugging Face formulas
 * (reference numbers computed with transformers' lr lambdas, times lr). */
#include "util/test_util.h"

#include <math.h>
#include <string.h>

#include "leanprop/schedule.h"

static lp_schedule make(lp_schedule_kind kind)
{
    lp_schedule s = lp_schedule_defaults();
    s.kind = kind;
    s.lr = 1e-3;
    s.warmup_steps = 10;
    s.total_steps = 110;
    return s;
}

#define LR_EQ(s, step, want) LP_ASSERT_CLOSE(lp_schedule_lr(&(s), (step)), (want), 1e-15, 1e-12, "lr at step " #step)

static void test_cosine_with_warmup(void **state)
{
    (void)state;
    lp_schedule s = make(LP_SCHED_COSINE);
    LP_ASSERT_OK(lp_schedule_validate(&s));
    LR_EQ(s, 0, 0.0);
    LR_EQ(s, 1, 0.0001);
    LR_EQ(s, 5, 0.0005);
    LR_EQ(s, 10, 0.001);
    LR_EQ(s, 11, 0.0009997532801828658);
    LR_EQ(s, 35, 0.0008535533905932737);
    LR_EQ(s, 60, 0.0005);
    LR_EQ(s, 109, 2.467198171342e-07);
    LR_EQ(s, 110, 0.0);
    LR_EQ(s, 500, 0.0); /* held at the end, not rising again */
    LR_EQ(s, -3, 0.0);
    s.num_cycles = 1.0;
    LR_EQ(s, 35, 0.0005);
}

static void test_cosine_min_lr(void **state)
{
    (void)state;
    lp_schedule s = make(LP_SCHED_COSINE);
    s.min_lr = 1e-4; /* min_lr_rate 0.1 in HF terms */
    LR_EQ(s, 60, 0.00055);
    LR_EQ(s, 35, 0.0008681980515339464);
    LR_EQ(s, 110, 1e-4);
    LR_EQ(s, 5, 0.0005); /* warm-up is unaffected */
}

static void test_linear_and_constant(void **state)
{
    (void)state;
    lp_schedule s = make(LP_SCHED_LINEAR);
    LR_EQ(s, 5, 0.0005);
    LR_EQ(s, 10, 0.001);
    LR_EQ(s, 35, 0.00075);
    LR_EQ(s, 60, 0.0005);
    LR_EQ(s, 110, 0.0);
    LR_EQ(s, 111, 0.0);
    s = make(LP_SCHED_CONSTANT);
    LR_EQ(s, 3, 0.0003);
    LR_EQ(s, 10, 0.001);
    LR_EQ(s, 100000, 0.001);
    s.warmup_steps = 0;
    LR_EQ(s, 0, 0.001);
    /* warmup == total: HF's max(1, total - warmup) makes step 1 full lr */
    s = make(LP_SCHED_COSINE);
    s.warmup_steps = 1;
    s.total_steps = 1;
    LR_EQ(s, 0, 0.0);
    LR_EQ(s, 1, 0.001);
}

static void test_parse_and_validate(void **state)
{
    (void)state;
    lp_schedule_kind k;
    LP_ASSERT_OK(lp_schedule_parse_kind(&k, "linear"));
    assert_int_equal(k, LP_SCHED_LINEAR);
    assert_string_equal(lp_schedule_kind_name(LP_SCHED_COSINE), "cosine");
    assert_int_equal(lp_schedule_parse_kind(&k, "step"), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "step"));
    lp_schedule s = make(LP_SCHED_COSINE);
    s.total_steps = 5;
    assert_int_equal(lp_schedule_validate(&s), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "total_steps"));
    s = make(LP_SCHED_COSINE);
    s.min_lr = 2e-3;
    assert_int_equal(lp_schedule_validate(&s), LP_ERR_INVALID_ARG);
    s = make(LP_SCHED_COSINE);
    s.lr = NAN;
    assert_int_equal(lp_schedule_validate(&s), LP_ERR_INVALID_ARG);
    s = make(LP_SCHED_CONSTANT);
    s.total_steps = 0; /* a constant schedule needs no length */
    LP_ASSERT_OK(lp_schedule_validate(&s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosine_with_warmup),
        cmocka_unit_test(test_cosine_min_lr),
        cmocka_unit_test(test_linear_and_constant),
        cmocka_unit_test(test_parse_and_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
