/* A short real run: the pretrained stories260K (TinyStories) fine-tuned on
 * Moby-Dick, text it never saw, with LoRA + TokenTune 25%: the validation
 * loss on the held-out tail of the book falls; memory and resume on real data. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"
#include "leanprop/log.h"
#include "leanprop/threads.h"
#include "leanprop/tokenizer.h"
#include "leanprop/trainer.h"

static void test_stories260k_on_moby_dick(void **state)
{
    (void)state;
    const char *mp = lp_test_shared("data/models/stories260K/stories260K.bin");
    const char *tp = lp_test_shared("data/models/stories260K/tok512.bin");
    const char *dp = lp_test_shared("data/text/moby_dick.txt");
    if (!mp || !tp || !dp) { LP_SKIP("stories260K or moby_dick.txt not found (set LEANPROP_SHARED)"); }
    lp_threads_set(1); /* a tiny model: one thread is fastest, and robust on a shared machine */
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, mp));
    lp_tokenizer *tok;
    LP_ASSERT_OK(lp_tokenizer_open(&tok, tp));
    lp_text_encoder enc = lp_text_encoder_from_tokenizer(tok);
    lp_train_data_spec spec = {.task = LP_TRAIN_LM, .path = dp, .val_fraction = 0.1, .max_len = 128,
                               .opt = lp_data_options_defaults()};
    lp_train_data d;
    LP_ASSERT_OK(lp_train_data_load(&d, &spec, &enc, NULL, NULL));
    lp_tokenizer_close(tok);
    assert_true(d.train.n > 4000);
    lp_token_subset val = d.val;
    val.n = 48; /* the first 48 windows of the held-out tail: enough to see the trend, fast */

    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_LORA);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"));
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    lp_trainer_config tc = lp_trainer_config_defaults();
    tc.batch = 8;
    tc.max_len = 128;
    tc.steps = 40;
    tc.schedule.lr = 3e-3;
    tc.schedule.warmup_steps = 4;
    LP_ASSERT_OK(lp_tokenselect_parse(&tc.select, "25%"));
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &d.train, &tc));
    lp_eval_result before, after;
    LP_ASSERT_OK(lp_trainer_evaluate(t, &val, &before));
    lp_mem_reset_peak();
    double t0 = lp_time_now();
    for (int i = 0; i < tc.steps; i++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        assert_true(isfinite(si.loss));
        assert_int_equal(si.selected, 8 * 32); /* round(0.25 * 128) per window */
    }
    double secs = lp_time_now() - t0;
    size_t act = lp_mem_peak(LP_MEM_ACTIVATIONS);
    LP_ASSERT_OK(lp_trainer_evaluate(t, &val, &after));
    print_message("  stories260K on Moby-Dick, LoRA + TokenTune 25%%, 40 steps: val loss %.4f -> %.4f, "
                  "%.0f tokens/s, activations peak %zu bytes\n",
                  before.loss, after.loss, 40.0 * 8 * 128 / secs, act);
    assert_true(after.loss < before.loss - 0.05);
    assert_true(act > 0);
    /* the exact planner agrees with the measured saved activations of one step */
    lp_transformer_mem_plan tp_plan;
    LP_ASSERT_OK(lp_transformer_plan_memory(lp_transformer_get_config(lp_ft_model_transformer(f)), 8, 128, 8 * 32,
                                            &tp_plan));
    print_message("  transformer planner: activations %zu bytes for the step\n", tp_plan.activations);
    assert_int_equal(act, tp_plan.activations);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_train_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k_on_moby_dick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
