/* The training loop on a tiny random Llama: accumulation equivalence,
 * schedule, clipping, exact resume, non-finite policies, evaluations. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"
#include "leanprop/trainer.h"

#define V 48
#define WIN 12

static lp_transformer *tiny_model(uint64_t seed)
{
    lp_transformer_config c;
    lp_transformer_config_default(&c, LP_ARCH_LLAMA);
    c.vocab_size = V;
    c.hidden_size = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.intermediate_size = 48;
    c.max_positions = 64;
    c.tie_word_embeddings = 0;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, seed, 0.1f);
    return m;
}

/* A "language" with structure: next = (a*prev + b) mod V with noise, in
 * windows of WIN tokens (all the same length). */
static void tiny_data(lp_token_dataset *ds, int64_t n_tok, uint64_t seed)
{
    int32_t *ids = malloc((size_t)n_tok * sizeof *ids);
    lp_rng r;
    lp_rng_seed(&r, seed);
    ids[0] = 1;
    for (int64_t i = 1; i < n_tok; i++)
        ids[i] = lp_rng_uniform(&r) < 0.8f ? (int32_t)((5 * ids[i - 1] + 3) % V) : (int32_t)lp_rng_below(&r, V);
    LP_ASSERT_OK(lp_token_windows(ds, ids, n_tok, WIN));
    free(ids);
}

static lp_ft_model *ft(lp_transformer *m, lp_ft_method method)
{
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    if (method != LP_FT_FULL) lp_lora_config_set_targets(&s.lora, "q_proj,v_proj,up_proj");
    s.lora.seed = 7;
    lp_ft_model *f = NULL;
    lp_status st = lp_ft_model_new(&f, m, &s);
    if (st == LP_ERR_UNSUPPORTED) return NULL;
    LP_ASSERT_OK(st);
    return f;
}

static lp_trainer_config base_cfg(void)
{
    lp_trainer_config c = lp_trainer_config_defaults();
    c.batch = 2;
    c.accum = 1;
    c.max_len = WIN;
    c.steps = 10;
    c.schedule.lr = 1e-2;
    c.clip = 0.0f;
    c.seed = 3;
    return c;
}

/* accum 2 x batch 1 == batch 2 x accum 1: loss, every gradient and the
 * updated weights (equal-length windows, so the two means agree). */
static void test_accumulation_equivalence(void **state)
{
    (void)state;
    lp_token_dataset ds;
    tiny_data(&ds, 33 * WIN, 1); /* no partial window */
    lp_token_subset tr = {&ds, NULL, ds.n};
    lp_ft_model *fa = ft(tiny_model(5), LP_FT_FULL), *fb = ft(tiny_model(5), LP_FT_FULL);
    lp_trainer_config ca = base_cfg(), cb = base_cfg();
    ca.batch = 2;
    ca.accum = 1;
    cb.batch = 1;
    cb.accum = 2;
    lp_trainer *ta, *tb;
    LP_ASSERT_OK(lp_trainer_new(&ta, fa, &tr, &ca));
    LP_ASSERT_OK(lp_trainer_new(&tb, fb, &tr, &cb));
    for (int step = 0; step < 3; step++) {
        lp_trainer_step_info ia, ib;
        LP_ASSERT_OK(lp_trainer_step(ta, &ia));
        LP_ASSERT_OK(lp_trainer_step(tb, &ib));
        LP_ASSERT_CLOSE(ib.loss, ia.loss, 1e-6, 1e-5, "loss");
        LP_ASSERT_CLOSE(ib.grad_norm, ia.grad_norm, 1e-7, 1e-4, "grad norm");
        assert_int_equal(ia.tokens, ib.tokens);
        assert_int_equal(ia.targets, ib.targets);
        for (int i = 0; i < lp_ft_model_n_trainable(fa); i++) {
            lp_ft_tensor pa = lp_ft_model_trainable(fa, i), pb = lp_ft_model_trainable(fb, i);
            lp_test_assert_allclose(pb.grad, pa.grad, (size_t)pa.numel, 1e-6, 1e-4, pa.name);
            lp_test_assert_allclose(pb.data, pa.data, (size_t)pa.numel, 1e-6, 1e-4, pa.name);
        }
    }
    lp_trainer_free(ta);
    lp_trainer_free(tb);
    lp_ft_model_free(fa);
    lp_ft_model_free(fb);
    lp_token_dataset_free(&ds);
}

/* The schedule sets each step's rate: warm-up step 0 has lr 0, so nothing
 * moves (AdamW's decay factor is 1 - 0 * wd); later steps follow lp_schedule_lr. */
static void test_schedule_applied(void **state)
{
    (void)state;
    lp_token_dataset ds;
    tiny_data(&ds, 300, 2);
    lp_token_subset tr = {&ds, NULL, ds.n};
    lp_ft_model *f = ft(tiny_model(6), LP_FT_FULL);
    lp_trainer_config c = base_cfg();
    c.schedule.kind = LP_SCHED_COSINE;
    c.schedule.warmup_steps = 2;
    c.schedule.min_lr = 1e-3;
    c.steps = 6;
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    lp_ft_tensor p = lp_ft_model_trainable(f, 1);
    float *before = malloc((size_t)p.numel * sizeof(float));
    memcpy(before, p.data, (size_t)p.numel * sizeof(float));
    lp_schedule s = c.schedule;
    s.total_steps = c.steps;
    for (int step = 0; step < 6; step++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        assert_int_equal(si.step, step + 1);
        LP_ASSERT_CLOSE(si.lr, lp_schedule_lr(&s, step), 0, 1e-12, "lr");
        if (step == 0) assert_memory_equal(before, p.data, (size_t)p.numel * sizeof(float));
        if (step == 1) assert_true(memcmp(before, p.data, (size_t)p.numel * sizeof(float)) != 0);
    }
    assert_int_equal(lp_trainer_step_index(t), 6);
    free(before);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_token_dataset_free(&ds);
}

/* Clipping: the reported norm is the one before clipping; after the step the
 * gradients' norm is max_norm. */
static void test_clipping(void **state)
{
    (void)state;
    lp_token_dataset ds;
    tiny_data(&ds, 300, 3);
    lp_token_subset tr = {&ds, NULL, ds.n};
    lp_ft_model *f = ft(tiny_model(7), LP_FT_FULL);
    lp_trainer_config c = base_cfg();
    c.clip = 1e-3f;
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    lp_trainer_step_info si;
    LP_ASSERT_OK(lp_trainer_step(t, &si));
    assert_true(si.grad_norm > 1e-2);
    int n = lp_ft_model_n_trainable(f);
    double ss = 0;
    for (int i = 0; i < n; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(f, i);
        for (int64_t j = 0; j < p.numel; j++) ss += (double)p.grad[j] * p.grad[j];
    }
    LP_ASSERT_CLOSE(sqrt(ss), 1e-3, 0, 1e-3, "norm after clipping");
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_token_dataset_free(&ds);
}

static char *temp_dir(void)
{
    char *d = malloc(64);
    snprintf(d, 64, "/tmp/lp_trainer_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* Train 6 steps straight vs 3, save, rebuild from scratch, load, 3 more:
 * identical losses and weights bit for bit. */
static void resume_case(lp_ft_method method, const char *tokens, int accum)
{
    lp_token_dataset ds;
    tiny_data(&ds, 500, 4);
    lp_token_subset tr = {&ds, NULL, ds.n};
    lp_trainer_config c = base_cfg();
    c.accum = accum;
    c.steps = 6;
    c.clip = 1.0f;
    c.schedule.warmup_steps = 2;
    LP_ASSERT_OK(lp_tokenselect_parse(&c.select, tokens));
    lp_ft_model *f = ft(tiny_model(8), method);
    if (!f) {
        print_message("  resume: %s not available in this build, case skipped\n", lp_ft_method_name(method));
        lp_token_dataset_free(&ds);
        return;
    }
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    double straight[6];
    for (int i = 0; i < 6; i++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        straight[i] = si.loss;
    }
    int n = lp_ft_model_n_trainable(f);
    float **final = calloc((size_t)n, sizeof *final);
    for (int i = 0; i < n; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(f, i);
        final[i] = malloc((size_t)p.numel * sizeof(float));
        memcpy(final[i], p.data, (size_t)p.numel * sizeof(float));
    }
    lp_trainer_free(t);
    lp_ft_model_free(f);

    char *dir = temp_dir();
    f = ft(tiny_model(8), method);
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    for (int i = 0; i < 3; i++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        assert_memory_equal(&si.loss, &straight[i], sizeof(double));
    }
    LP_ASSERT_OK(lp_trainer_set_note(t, "best_metric", "1.5"));
    LP_ASSERT_OK(lp_trainer_save_state(t, dir));
    lp_trainer_free(t);
    lp_ft_model_free(f);

    f = ft(tiny_model(8), method);
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    LP_ASSERT_OK(lp_trainer_load_state(t, dir));
    assert_int_equal(lp_trainer_step_index(t), 3);
    char buf[64];
    LP_ASSERT_OK(lp_trainer_state_peek(dir, "best_metric", buf, sizeof buf));
    assert_string_equal(buf, "1.5");
    for (int i = 3; i < 6; i++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        if (memcmp(&si.loss, &straight[i], sizeof(double)))
            fail_msg("%s %s accum %d: step %d loss %.17g after resume vs %.17g straight", lp_ft_method_name(method),
                     tokens, accum, i + 1, si.loss, straight[i]);
    }
    for (int i = 0; i < n; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(f, i);
        assert_memory_equal(final[i], p.data, (size_t)p.numel * sizeof(float));
        free(final[i]);
    }
    free(final);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    print_message("  resume %s tokens %s accum %d: 6 losses identical bit for bit (last %.6f)\n",
                  lp_ft_method_name(method), tokens, accum, straight[5]);

    /* a different run refuses the state */
    f = ft(tiny_model(8), method);
    c.batch = 3;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    assert_int_equal(lp_trainer_load_state(t, dir), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "batch"));
    lp_trainer_free(t);
    lp_ft_model_free(f);
    char path[128];
    snprintf(path, sizeof path, "%s/trainer_state.safetensors", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
    lp_token_dataset_free(&ds);
}

static void test_resume_exact(void **state)
{
    (void)state;
    resume_case(LP_FT_FULL, "all", 1);
    resume_case(LP_FT_FULL, "0.5", 2);
    resume_case(LP_FT_LORA, "0.5", 2);   /* dropout 0.05: the mask generation is restored */
    resume_case(LP_FT_QLORA, "4", 1);
}

/* A NaN weight: stop fails naming the step; skip drops the update. */
static void test_nonfinite(void **state)
{
    (void)state;
    lp_token_dataset ds;
    tiny_data(&ds, 300, 5);
    lp_token_subset tr = {&ds, NULL, ds.n};
    lp_ft_model *f = ft(tiny_model(9), LP_FT_FULL);
    lp_trainer_config c = base_cfg();
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    lp_trainer_step_info si;
    LP_ASSERT_OK(lp_trainer_step(t, &si));
    lp_param *w = lp_transformer_find_param(lp_ft_model_transformer(f), "model.layers.1.mlp.up_proj.weight");
    assert_non_null(w);
    w->data[3] = NAN;
    assert_int_equal(lp_trainer_step(t, &si), LP_ERR_NUMERIC);
    assert_non_null(strstr(lp_error_message(), "step 2"));
    lp_trainer_free(t);

    c.on_nonfinite = LP_NONFINITE_SKIP;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    lp_param *e = lp_transformer_find_param(lp_ft_model_transformer(f), "model.embed_tokens.weight");
    float e0 = e->data[10];
    LP_ASSERT_OK(lp_trainer_step(t, &si));
    assert_int_equal(si.skipped, 1);
    assert_true(e->data[10] == e0);
    lp_trainer_stats stats;
    lp_trainer_get_stats(t, &stats);
    assert_int_equal(stats.skipped_steps, 1);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_token_dataset_free(&ds);
}

/* The trainer learns the tiny language; evaluate is exact (no selection). */
static void test_learns_and_evaluates(void **state)
{
    (void)state;
    lp_token_dataset ds, va;
    tiny_data(&ds, 2000, 6);
    tiny_data(&va, 300, 60);
    lp_token_subset tr = {&ds, NULL, ds.n}, vs = {&va, NULL, va.n};
    lp_ft_model *f = ft(tiny_model(10), LP_FT_FULL);
    lp_trainer_config c = base_cfg();
    c.batch = 8;
    c.steps = 60;
    c.clip = 1.0f;
    LP_ASSERT_OK(lp_tokenselect_parse(&c.select, "0.5"));
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &tr, &c));
    lp_eval_result r0, r1, r2;
    LP_ASSERT_OK(lp_trainer_evaluate(t, &vs, &r0));
    LP_ASSERT_OK(lp_trainer_evaluate(t, &vs, &r2));
    assert_memory_equal(&r0.loss, &r2.loss, sizeof(double)); /* deterministic */
    assert_int_equal(r0.n_targets, va.n_tokens - va.n);
    for (int i = 0; i < 60; i++) {
        lp_trainer_step_info si;
        LP_ASSERT_OK(lp_trainer_step(t, &si));
        assert_true(si.selected < si.tokens);
    }
    LP_ASSERT_OK(lp_trainer_evaluate(t, &vs, &r1));
    print_message("  tiny LM val loss %.4f -> %.4f\n", r0.loss, r1.loss);
    assert_true(r1.loss < r0.loss - 0.5);
    /* lp_eval_loglik agrees with the mean loss: sum of log-likelihoods = -loss * count */
    double *ll = calloc((size_t)va.n, sizeof *ll);
    LP_ASSERT_OK(lp_eval_loglik(lp_ft_model_transformer(f), &vs, 3, WIN, 0, ll));
    double s = 0;
    for (int64_t i = 0; i < va.n; i++) s += ll[i];
    LP_ASSERT_CLOSE(-s / (double)r1.n_targets, r1.loss, 1e-5, 1e-5, "loglik vs loss");
    free(ll);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_token_dataset_free(&ds);
    lp_token_dataset_free(&va);
}

/* BERT sequence classification (the bert-tiny-cls fixture, bytes as ids):
 * the pooler/classifier trains, the encoder TokenTune variant keeps [CLS],
 * accuracy rises on a learnable rule. */
static void test_bert_classifier(void **state)
{
    (void)state;
    const char *cp = lp_test_shared("fixtures/bert-tiny-cls/config.json");
    if (!cp) { LP_SKIP("fixture bert-tiny-cls not found (set LEANPROP_SHARED)"); }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cp);
    *strrchr(dir, '/') = '\0';
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    char *text = malloc(1 << 16);
    text[0] = '\0';
    lp_rng r;
    lp_rng_seed(&r, 11);
    for (int i = 0; i < 200; i++) { /* label = whether the message has a 'z' */
        char msg[40];
        int len = 8 + (int)lp_rng_below(&r, 20), z = (int)lp_rng_below(&r, 2);
        for (int k = 0; k < len; k++) msg[k] = (char)('a' + lp_rng_below(&r, 25)); /* a..y */
        if (z) msg[lp_rng_below(&r, (uint64_t)len)] = 'z';
        msg[len] = '\0';
        char line[64];
        snprintf(line, sizeof line, "%s\t%s\n", z ? "yes" : "no", msg);
        strcat(text, line);
    }
    const char *path = lp_test_write_temp(".tsv", text, strlen(text));
    free(text);
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_train_data_spec spec = {.task = LP_TRAIN_CLS, .path = path, .val_fraction = 0.25, .split_seed = 3, .max_len = 32,
                               .opt = lp_data_options_defaults()};
    lp_train_data d;
    LP_ASSERT_OK(lp_train_data_load(&d, &spec, &enc, NULL, NULL));
    lp_ft_model *f = ft(m, LP_FT_FULL);
    lp_trainer_config c = base_cfg();
    c.task = LP_TRAIN_CLS;
    c.batch = 16;
    c.max_len = 32;
    c.steps = 80;
    c.schedule.lr = 3e-3;
    c.clip = 1.0f;
    LP_ASSERT_OK(lp_tokenselect_parse(&c.select, "0.5"));
    lp_trainer *t;
    LP_ASSERT_OK(lp_trainer_new(&t, f, &d.train, &c));
    assert_int_equal(lp_trainer_get_config(t)->select.encoder, 1);
    lp_eval_result r0, r1;
    LP_ASSERT_OK(lp_trainer_evaluate(t, &d.val, &r0));
    for (int i = 0; i < 80; i++) LP_ASSERT_OK(lp_trainer_step(t, NULL));
    LP_ASSERT_OK(lp_trainer_evaluate(t, &d.val, &r1));
    print_message("  bert-tiny-cls, TokenTune 50%%: val accuracy %.3f -> %.3f, loss %.4f -> %.4f\n", r0.accuracy,
                  r1.accuracy, r0.loss, r1.loss);
    assert_true(r1.loss < r0.loss);
    assert_true(r1.accuracy >= 0.75);
    lp_trainer_free(t);
    lp_ft_model_free(f);
    lp_train_data_free(&d);
}

static void test_config_validation(void **state)
{
    (void)state;
    lp_trainer_config c = lp_trainer_config_defaults();
    LP_ASSERT_OK(lp_trainer_config_validate(&c));
    c.batch = 0;
    assert_int_equal(lp_trainer_config_validate(&c), LP_ERR_INVALID_ARG);
    c = lp_trainer_config_defaults();
    c.task = LP_TRAIN_MC;
    assert_int_equal(lp_trainer_config_validate(&c), LP_ERR_INVALID_ARG);
    c = lp_trainer_config_defaults();
    c.schedule.warmup_steps = 500; /* more than the 100 steps */
    assert_int_equal(lp_trainer_config_validate(&c), LP_ERR_INVALID_ARG);
    lp_train_task task;
    LP_ASSERT_OK(lp_train_task_parse("cls", &task));
    assert_int_equal(task, LP_TRAIN_CLS);
    assert_int_equal(lp_train_task_parse("regression", &task), LP_ERR_INVALID_ARG);
    lp_nonfinite_policy p;
    LP_ASSERT_OK(lp_nonfinite_policy_parse("skip", &p));
    assert_int_equal(p, LP_NONFINITE_SKIP);
    assert_int_equal(lp_nonfinite_policy_parse("ignore", &p), LP_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_accumulation_equivalence),
        cmocka_unit_test(test_schedule_applied),
        cmocka_unit_test(test_clipping),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_learns_and_evaluates),
        cmocka_unit_test(test_bert_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
