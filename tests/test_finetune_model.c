/* lp_ft_model: methods attached to the tiny fixtures. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"

static lp_transformer *load_fixture(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s/config.json", name);
    const char *p = lp_test_shared(rel);
    if (!p) return NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", p);
    *strrchr(dir, '/') = '\0';
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    return m;
}

/* Full fine-tuning: every parameter trainable, gradient bytes exactly the
 * trainable floats; full_only restricts; a substring matching nothing fails. */
static void test_full(void **state)
{
    (void)state;
    size_t g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_transformer *m = load_fixture("gpt2-tiny");
    if (!m) { LP_SKIP("fixture gpt2-tiny not found (set LEANPROP_SHARED)"); }
    int64_t all = lp_transformer_count_params(m, 0);
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_FULL);
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    assert_int_equal(lp_ft_model_trainable_numel(f), all);
    assert_int_equal(lp_ft_model_n_trainable(f), lp_transformer_n_params(lp_ft_model_transformer(f)));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, (size_t)all * sizeof(float));
    lp_ft_tensor t = lp_ft_model_trainable(f, 0);
    assert_string_equal(t.name, "transformer.wte.weight");
    assert_int_equal(t.decay, 1);
    lp_ft_model_free(f);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);

    m = load_fixture("gpt2-tiny");
    s.full_only = "mlp.c_fc";
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    assert_int_equal(lp_ft_model_n_trainable(f), 4); /* 2 layers x weight, bias */
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, (size_t)lp_ft_model_trainable_numel(f) * sizeof(float));
    lp_ft_model_free(f);

    m = load_fixture("gpt2-tiny");
    s.full_only = "no_such_thing";
    assert_int_equal(lp_ft_model_new(&f, m, &s), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "no_such_thing"));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);
}

static void test_method_names(void **state)
{
    (void)state;
    lp_ft_method m;
    for (int i = 0; i < LP_FT_METHOD_COUNT; i++) {
        LP_ASSERT_OK(lp_ft_method_parse(lp_ft_method_name((lp_ft_method)i), &m));
        assert_int_equal(m, i);
    }
    assert_int_equal(lp_ft_method_parse("dora", &m), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
