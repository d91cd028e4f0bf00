/* Sequence classification with decoder models (HF GPT2ForSequenceClassification,
 * LlamaForSequenceClassification): a "score" head on the final-norm hidden
 * state of each sequence's last real token.
 *
 * Reference: a causal LM with the same weights whose lm_head rows 0..NL-1 are
 * the score weight computes the same final-norm hidden states; its logits at
 * (b, last real token), first NL columns, are the classifier's logits (the LM
 * path is checked against Hugging Face in test_transformer_hf). The loss is
 * recomputed from them in double. Gradients: central finite differences
 * (Richardson, as test_transformer_grad), |fd - an| <= 2e-3 max(|fd|,|an|) + 2e-4.
 * Also: a TokenTune selection leaves the forward unchanged (the head row is
 * always selected), save/load keeps the head and the architecture name,
 * decoding refuses a classifier, LoRA trains the head (modules_to_save). */
#include "test_finetune_util.h"

#include <unistd.h>

#include "leanprop/fileio.h"
#include "leanprop/peft.h"

static void tiny_config(lp_transformer_config *c, lp_arch arch)
{
    lp_transformer_config_default(c, arch);
    c->vocab_size = 29;
    c->hidden_size = 16;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = arch == LP_ARCH_LLAMA ? 2 : 4;
    c->head_dim = 4;
    c->intermediate_size = 24;
    c->max_positions = 12;
}

enum { B = 3, T = 7, NL = 3 };

typedef struct {
    int32_t ids[B * T], labels[B];
    uint8_t mask[B * T], sel[B * T];
} cls_batch;

/* sequence 0 full, 1 padded from 4, 2 padded from 2 */
static void make_batch(cls_batch *d, int64_t V, uint64_t seed)
{
    lp_rng r;
    lp_rng_seed(&r, seed);
    int len[B] = {T, 4, 2};
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            d->ids[b * T + t] = (int32_t)lp_rng_below(&r, (uint64_t)V);
            d->mask[b * T + t] = (uint8_t)(t < len[b]);
            d->sel[b * T + t] = (uint8_t)(t % 3 == 0); /* never the last real token 6, 3, 1 */
        }
        d->labels[b] = (int32_t)(b % NL);
    }
}

static lp_transformer *make_model(lp_arch arch, uint64_t seed)
{
    lp_transformer_config c;
    tiny_config(&c, arch);
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_new(&m, &c));
    lp_transformer_init_random(m, seed, 0.3f);
    lp_rng r;
    lp_rng_seed(&r, seed + 1);
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        if (p->kind == LP_PARAM_NORM || p->kind == LP_PARAM_BIAS)
            for (int64_t k = 0; k < p->numel; k++) p->data[k] += 0.2f * lp_rng_normal(&r);
    }
    return m;
}

static float forward(lp_transformer *m, const cls_batch *d, const uint8_t *sel, float *logits, int grad)
{
    lp_transformer_batch b = {.B = B, .T = T, .input_ids = d->ids, .labels = d->labels, .attention_mask = d->mask,
                              .selected = sel};
    lp_transformer_forward_opts o = {.need_grad = grad, .logits = logits};
    float loss;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
    return loss;
}

static void check_against_lm(lp_arch arch)
{
    lp_transformer *lm = make_model(arch, 5), *cls = make_model(arch, 5);
    size_t w_before = lp_mem_current(LP_MEM_WEIGHTS);
    LP_ASSERT_OK(lp_transformer_add_cls_head(cls, NL, 77));
    const lp_transformer_config *c = lp_transformer_get_config(cls);
    int64_t C = c->hidden_size, V = c->vocab_size;
    assert_int_equal(c->task, LP_TASK_SEQ_CLS);
    assert_null(lp_transformer_find_linear(cls, "lm_head"));
    lp_param *score = lp_transformer_find_param(cls, "score.weight");
    assert_non_null(score);
    assert_int_equal(score->shape[0], NL);
    assert_int_equal(score->shape[1], C);
    /* an untied LM head's weight is freed, a tied one stays the embedding */
    size_t head_bytes = c->tie_word_embeddings ? 0 : (size_t)(V * C) * sizeof(float);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w_before - head_bytes + (size_t)(NL * C) * sizeof(float));
    /* the reference LM: lm_head rows 0..NL-1 = score (untie a tied head by copying the embedding) */
    lp_nn_linear *h = lp_transformer_find_linear(lm, "lm_head");
    if (c->tie_word_embeddings) {
        lp_transformer_config c2 = *lp_transformer_get_config(lm);
        c2.tie_word_embeddings = 0;
        lp_transformer *u;
        LP_ASSERT_OK(lp_transformer_new(&u, &c2));
        for (int i = 0; i < lp_transformer_n_params(lm); i++) {
            lp_param *p = lp_transformer_param(lm, i);
            memcpy(lp_transformer_find_param(u, p->name)->data, p->data, (size_t)p->numel * sizeof(float));
        }
        lp_transformer_free(lm);
        lm = u;
        h = lp_transformer_find_linear(lm, "lm_head");
    }
    memcpy(h->weight->data, score->data, (size_t)(NL * C) * sizeof(float));
    cls_batch d;
    make_batch(&d, V, 9);
    float *lm_logits = malloc((size_t)(B * T * V) * sizeof(float)), logits[B * NL], logits_sel[B * NL];
    lp_transformer_batch lb = {.B = B, .T = T, .input_ids = d.ids, .attention_mask = d.mask};
    lp_transformer_forward_opts lo = {.logits = lm_logits};
    LP_ASSERT_OK(lp_transformer_forward(lm, &lb, &lo, NULL));
    float loss = forward(cls, &d, NULL, logits, 0);
    int last[B] = {T - 1, 3, 1};
    double want_loss = 0;
    for (int b = 0; b < B; b++) {
        const float *row = lm_logits + (b * T + last[b]) * V;
        lp_test_assert_allclose(logits + b * NL, row, NL, 1e-6, 1e-5, "score logits vs LM rows");
        double mx = -INFINITY, se = 0;
        for (int k = 0; k < NL; k++) mx = fmax(mx, row[k]);
        for (int k = 0; k < NL; k++) se += exp(row[k] - mx);
        want_loss += (mx + log(se) - row[d.labels[b]]) / B;
    }
    LP_ASSERT_CLOSE(loss, want_loss, 1e-6, 1e-5, "classification loss");
    /* a selection without the last tokens: the same forward (the head row is forced in) */
    float loss_sel = forward(cls, &d, d.sel, logits_sel, 1);
    LP_ASSERT_OK(lp_transformer_backward(cls));
    LP_ASSERT_CLOSE(loss_sel, loss, 0, 1e-6, "loss with a selection");
    lp_test_assert_allclose(logits_sel, logits, B * NL, 1e-7, 1e-6, "logits with a selection");
    assert_int_equal(lp_transformer_last_rows(cls), B);
    assert_int_equal(lp_transformer_last_count(cls), B);
    /* no causal decoding for a classifier */
    lp_kv_cache *kc = NULL;
    assert_int_equal(lp_kv_cache_new(&kc, cls, 8), LP_ERR_UNSUPPORTED);
    /* adding a head twice is an error */
    assert_int_equal(lp_transformer_add_cls_head(cls, NL, 1), LP_ERR_INVALID_ARG);
    free(lm_logits);
    lp_transformer_free(lm);
    lp_transformer_free(cls);
}

static void test_gpt2_matches_lm(void **state)
{
    (void)state;
    check_against_lm(LP_ARCH_GPT2);
}

static void test_llama_matches_lm(void **state)
{
    (void)state;
    check_against_lm(LP_ARCH_LLAMA);
}

static void fd_check(lp_transformer *m, const cls_batch *d, const uint8_t *sel, const char *what)
{
    LP_ASSERT_OK(lp_transformer_set_trainable(m, NULL, 1));
    lp_transformer_zero_grad(m);
    float loss = forward(m, d, sel, NULL, 1);
    LP_ASSERT_OK(lp_transformer_backward(m));
    lp_rng r;
    lp_rng_seed(&r, 99);
    double worst = 0;
    const double e = 4e-3;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        float *dir = malloc((size_t)p->numel * sizeof(float)), *orig = malloc((size_t)p->numel * sizeof(float));
        lp_test_randn(&r, dir, (size_t)p->numel);
        memcpy(orig, p->data, (size_t)p->numel * sizeof(float));
        double an = 0, fdh[2];
        for (int64_t k = 0; k < p->numel; k++) an += (double)p->grad[k] * dir[k];
        for (int hh = 0; hh < 2; hh++) {
            double eh = hh ? e / 2 : e;
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(orig[k] + eh * dir[k]);
            double lp = forward(m, d, NULL, NULL, 0);
            for (int64_t k = 0; k < p->numel; k++) p->data[k] = (float)(orig[k] - eh * dir[k]);
            double lm = forward(m, d, NULL, NULL, 0);
            fdh[hh] = (lp - lm) / (2 * eh);
        }
        memcpy(p->data, orig, (size_t)p->numel * sizeof(float));
        double fd = (4 * fdh[1] - fdh[0]) / 3, tol = 2e-3 * fmax(fabs(fd), fabs(an)) + 2e-4;
        worst = fmax(worst, fabs(fd - an) / tol);
        if (!(fabs(fd - an) <= tol)) fail_msg("%s: %s: finite difference %.8g vs backward %.8g", what, p->name, fd, an);
        free(dir);
        free(orig);
    }
    print_message("  %s: loss %.5f, worst |fd-an|/tol %.3f\n", what, loss, worst);
}

static void test_fd(void **state)
{
    (void)state;
    lp_arch archs[2] = {LP_ARCH_GPT2, LP_ARCH_LLAMA};
    for (int a = 0; a < 2; a++) {
        lp_transformer *m = make_model(archs[a], 3);
        LP_ASSERT_OK(lp_transformer_add_cls_head(m, NL, 4));
        /* a score weight of the scale of the others, so its gradient path matters */
        lp_param *s = lp_transformer_find_param(m, "score.weight");
        for (int64_t k = 0; k < s->numel; k++) s->data[k] *= 15.0f;
        cls_batch d;
        make_batch(&d, lp_transformer_get_config(m)->vocab_size, 12);
        fd_check(m, &d, NULL, archs[a] == LP_ARCH_GPT2 ? "gpt2 classifier, padded" : "llama classifier, padded");
        lp_transformer_free(m);
    }
}

/* save -> config.json names the classification architecture, score.weight
 * saved, load gives the same logits; LoRA on a decoder classifier trains the
 * score head in full and saves it as modules_to_save. */
static void test_save_load_and_lora_head(void **state)
{
    (void)state;
    lp_transformer *m = make_model(LP_ARCH_LLAMA, 21);
    LP_ASSERT_OK(lp_transformer_add_cls_head(m, NL, 5));
    cls_batch d;
    make_batch(&d, lp_transformer_get_config(m)->vocab_size, 13);
    float l1[B * NL], l2[B * NL];
    forward(m, &d, NULL, l1, 0);
    char dir[] = "/tmp/lp_cls_XXXXXX";
    assert_non_null(mkdtemp(dir));
    LP_ASSERT_OK(lp_transformer_save_hf(m, dir, NULL));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    lp_transformer_config c2;
    LP_ASSERT_OK(lp_transformer_config_load(&c2, path));
    assert_int_equal(c2.task, LP_TASK_SEQ_CLS);
    assert_int_equal(c2.num_labels, NL);
    lp_transformer *m2;
    LP_ASSERT_OK(lp_transformer_load(&m2, dir));
    forward(m2, &d, NULL, l2, 0);
    assert_memory_equal(l1, l2, sizeof l1);
    lp_transformer_free(m2);

    /* LoRA: adapters + the head, both saved; reload restores the head */
    lp_ft_setup s;
    lp_ft_setup_default(&s, LP_FT_LORA);
    s.lora.dropout = 0;
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m, &s));
    assert_non_null(lp_transformer_find_param(lp_ft_model_transformer(f), "score.weight")->grad);
    int64_t want = (int64_t)NL * 16;
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        if (strstr(t.name, "lora_")) want += t.numel;
    }
    assert_int_equal(lp_ft_model_trainable_numel(f), want);
    lp_param *sw = lp_transformer_find_param(lp_ft_model_transformer(f), "score.weight");
    for (int64_t k = 0; k < sw->numel; k++) sw->data[k] += 0.01f * (float)k; /* "trained" */
    forward(lp_ft_model_transformer(f), &d, NULL, l1, 0);
    char adir[] = "/tmp/lp_cls_adapter_XXXXXX";
    assert_non_null(mkdtemp(adir));
    LP_ASSERT_OK(lp_ft_model_save(f, adir));
    lp_ft_setup s2;
    LP_ASSERT_OK(lp_ft_setup_from_adapter(&s2, LP_FT_LORA, adir));
    assert_int_equal(s2.train_head, 1);
    assert_string_equal(s2.lora.task_type, "SEQ_CLS");
    lp_transformer *base;
    LP_ASSERT_OK(lp_transformer_load(&base, dir));
    lp_ft_model *g;
    LP_ASSERT_OK(lp_ft_model_new(&g, base, &s2));
    LP_ASSERT_OK(lp_ft_model_load_adapter(g, adir));
    forward(lp_ft_model_transformer(g), &d, NULL, l2, 0);
    assert_memory_equal(l1, l2, sizeof l1);
    /* the plain PEFT reader refuses modules_to_save; our config lists the head */
    snprintf(path, sizeof path, "%s/%s", adir, LP_PEFT_CONFIG_NAME);
    char *text = NULL;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 20, LP_MEM_SCRATCH, &text, NULL));
    assert_non_null(strstr(text, "\"modules_to_save\": [\n    \"classifier\",\n    \"score\"\n  ]"));
    lp_free(text);
    lp_ft_model_free(g);
    lp_ft_model_free(f);
    const char *files[] = {"config.json", "model.safetensors", LP_PEFT_CONFIG_NAME, LP_PEFT_WEIGHTS_NAME};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", i < 2 ? dir : adir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    rmdir(adir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_matches_lm),
        cmocka_unit_test(test_llama_matches_lm),
        cmocka_unit_test(test_fd),
        cmocka_unit_test(test_save_load_and_lora_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
