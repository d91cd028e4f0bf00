/* TokenTune through lp_ft_model, the two checks test_transformer_hf does not
 * make (it matches the fixtures' tokentune.loss and tokentune.grad.*):
 *
 * (1) Forward exactness: with a selection, the loss equals the full model's
 *     next-token cross entropy (recomputed in double from the unselected
 *     forward's logits) averaged over the selected positions with a target,
 *     and the selected rows' logits equal the full forward's rows; on the
 *     gpt2-tiny / llama-tiny fixtures (their tokentune_selected, and the
 *     fixture's tokentune.loss) and with LoRA / QLoRA models under
 *     lp_tokenselect selections. Tolerance: loss relative 2e-6, logits
 *     |a - b| <= 1e-5 max|b| + 1e-5 |b|.
 * (3) Finite differences of the same surrogate: the loss with every
 *     unselected row's keys and values held constant at every layer (GPT-2:
 *     the whole c_attn output row; Llama / BERT: k_proj / key and v_proj /
 *     value rows), realised by recording those rows through lp_linear_hooks
 *     at the unperturbed parameters and replaying them in the perturbed
 *     forwards. Central differences along a random direction per tensor,
 *     Richardson-extrapolated from e = 4e-3 and 2e-3, must equal <grad, d>
 *     within 2e-3 max(|fd|, |an|) + 2e-4 (as test_transformer_grad); for
 *     every parameter (full) and for every LoRA A, B (LoRA, dropout 0) of tiny
 *     random GPT-2, Llama (GQA) and BERT models with padding. */
#include "test_finetune_util.h"

#include "leanprop/tokenselect.h"

/* ------------------------------------------------------------ (1) exactness */

/* mean CE over selected positions t < T-1 with labels[t+1] != -100, from full logits (B*T, V) */
static double ref_selected_loss(const float *logits, const int32_t *labels, const uint8_t *sel, int64_t B, int64_t T,
                                int64_t V)
{
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t + 1 < T; t++) {
            int64_t n = b * T + t;
            int32_t y = labels[n + 1];
            if ((sel && !sel[n]) || y == -100) continue;
            const float *row = logits + n * V;
            double mx = -INFINITY, se = 0;
            for (int64_t k = 0; k < V; k++) mx = fmax(mx, row[k]);
            for (int64_t k = 0; k < V; k++) se += exp((double)row[k] - mx);
            sum += mx + log(se) - row[y];
            cnt++;
        }
    return cnt ? sum / (double)cnt : 0.0;
}

static void check_exact(lp_ft_model *f, const ft_batch *d, const uint8_t *sel, const float *ref_loss, const char *what)
{
    lp_transformer *m = lp_ft_model_transformer(f);
    int64_t B = d->B, T = d->T, V = lp_transformer_get_config(m)->vocab_size;
    float *full = malloc((size_t)(B * T * V) * sizeof(float)), *part = malloc((size_t)(B * T * V) * sizeof(float));
    lp_ft_model_set_training(f, 0);
    lp_transformer_batch b = {.B = B, .T = T, .input_ids = d->ids, .labels = d->labels, .attention_mask = d->mask};
    lp_transformer_forward_opts o = {.logits = full};
    float loss_full, loss_sel;
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss_full));
    b.selected = sel;
    o.logits = part;
    o.need_grad = 1; /* the training path */
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss_sel));
    LP_ASSERT_OK(lp_transformer_backward(m));
    double want = ref_selected_loss(full, d->labels, sel, B, T, V);
    LP_ASSERT_CLOSE(loss_sel, want, 0, 2e-6, what);
    if (ref_loss) LP_ASSERT_CLOSE(loss_sel, ref_loss[0], 0, 1e-5, "fixture tokentune.loss");
    int64_t r = 0;
    for (int64_t n = 0; n < B * T; n++) {
        if (!sel[n]) continue;
        lp_test_assert_allclose(part + r * V, full + n * V, (size_t)V, 1e-5 * ft_max_abs(full + n * V, V), 1e-5, what);
        r++;
    }
    assert_int_equal(r, lp_transformer_last_rows(m));
    print_message("  %s: %lld of %lld rows selected, loss %.7f (reference %.7f)\n", what, (long long)r,
                  (long long)(B * T), loss_sel, want);
    lp_ft_model_set_training(f, 1);
    free(full);
    free(part);
}

static void exact_fixture(const char *name)
{
    ft_batch d = {0};
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s/reference.safetensors", name);
    const char *rp = lp_test_shared(rel);
    if (!rp || !ft_load_batch(name, &d)) { LP_SKIP("fixture %s not found (set LEANPROP_SHARED)", name); }
    lp_safetensors *ref;
    LP_ASSERT_OK(lp_safetensors_open(&ref, rp));
    int32_t *s32 = ft_ref_i32(ref, "tokentune_selected", NULL);
    float *tt_loss = ft_ref_f32(ref, "tokentune.loss", NULL);
    uint8_t *sel = malloc((size_t)(d.B * d.T));
    for (int64_t i = 0; i < d.B * d.T; i++) sel[i] = (uint8_t)s32[i];
    const lp_transformer_config *c0;
    for (int mth = 0; mth < LP_FT_METHOD_COUNT; mth++) {
        lp_ft_setup s;
        lp_ft_setup_default(&s, (lp_ft_method)mth);
        s.lora.init_lora_weights = LP_LORA_INIT_RANDOM;
        lp_ft_model *f;
        LP_ASSERT_OK(lp_ft_model_new(&f, ft_load_fixture(name), &s));
        c0 = lp_transformer_get_config(lp_ft_model_transformer(f));
        char what[128];
        snprintf(what, sizeof what, "%s %s, fixture selection", name, lp_ft_method_name((lp_ft_method)mth));
        check_exact(f, &d, sel, mth == LP_FT_FULL ? tt_loss : NULL, what);
        /* lp_tokenselect selections: k = 3 and r = 0.4 */
        const char *specs[] = {"3", "0.4"};
        for (int k = 0; k < 2; k++) {
            lp_tokenselect_config tc = lp_tokenselect_defaults();
            LP_ASSERT_OK(lp_tokenselect_parse(&tc, specs[k]));
            lp_token_selection ts;
            LP_ASSERT_OK(lp_tokenselect_init(&ts, (int32_t)d.B, (int32_t)d.T));
            lp_rng r;
            lp_tokenselect_rng_for_step(&r, 7, k);
            LP_ASSERT_OK(lp_tokenselect_select(&ts, &tc, (int32_t)d.B, (int32_t)d.T, d.lens, d.labels, &r));
            snprintf(what, sizeof what, "%s %s, tokens %s", name, lp_ft_method_name((lp_ft_method)mth), specs[k]);
            check_exact(f, &d, ts.mask, NULL, what);
            lp_tokenselect_free(&ts);
        }
        (void)c0;
        lp_ft_model_free(f);
    }
    free(s32);
    free(tt_loss);
    free(sel);
    lp_safetensors_close(ref);
    ft_free_batch(&d);
}

static void test_exact_gpt2(void **state) { (void)state; exact_fixture("gpt2-tiny"); }
static void test_exact_llama(void **state) { (void)state; exact_fixture("llama-tiny"); }

/* ------------------------------------------------------------ (3) surrogate FD */

/* Record (mode 0) or replay (mode 1) the unselected rows of a linear's output. */
typedef struct {
    lp_nn_linear *lin;
    const lp_linear_hooks *orig;
    lp_linear_hooks mine;
    const uint8_t *sel; /* (N) selected rows (forced ones included) */
    int64_t N;
    float *saved;       /* (N, out) */
    int mode;
} clamp;

static lp_status clamp_apply(clamp *k, float *y, int64_t N, int64_t out)
{
    if (N != k->N) return lp_error(LP_ERR_INTERNAL, "clamp: %lld rows, expected %lld", (long long)N, (long long)k->N);
    for (int64_t n = 0; n < N; n++) {
        if (k->mode == 0) memcpy(k->saved + n * out, y + n * out, (size_t)out * sizeof(float));
        else if (!k->sel[n]) memcpy(y + n * out, k->saved + n * out, (size_t)out * sizeof(float));
    }
    return LP_OK;
}

static lp_status clamp_base_fwd(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out)
{
    clamp *k = ctx;
    return k->orig->base_forward(k->orig->ctx, y, x, N, in, out);
}

static lp_status clamp_fwd(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out)
{
    clamp *k = ctx;
    if (k->orig && k->orig->forward) LP_TRY(k->orig->forward(k->orig->ctx, y, x, N, in, out));
    return clamp_apply(k, y, N, out);
}

static lp_status clamp_fwd_ids(void *ctx, float *y, const float *x, const int64_t *ids, int64_t N, int64_t in,
                               int64_t out)
{
    clamp *k = ctx;
    if (k->orig && k->orig->forward_ids) LP_TRY(k->orig->forward_ids(k->orig->ctx, y, x, ids, N, in, out));
    else if (k->orig && k->orig->forward) LP_TRY(k->orig->forward(k->orig->ctx, y, x, N, in, out));
    return clamp_apply(k, y, N, out);
}

static int clamped_module(const lp_transformer_config *c, const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *last = dot ? dot + 1 : name;
    if (c->arch == LP_ARCH_GPT2) return !strcmp(last, "c_attn");
    if (c->arch == LP_ARCH_LLAMA) return !strcmp(last, "k_proj") || !strcmp(last, "v_proj");
    return !strcmp(last, "key") || !strcmp(last, "value");
}

typedef struct {
    int n;
    clamp k[16];
} clamps;

static void clamps_install(clamps *cs, lp_transformer *m, const uint8_t *sel, int64_t N)
{
    const lp_transformer_config *c = lp_transformer_get_config(m);
    cs->n = 0;
    for (int i = 0; i < lp_transformer_n_linears(m); i++) {
        lp_nn_linear *l = lp_transformer_linear(m, i);
        if (!clamped_module(c, l->name)) continue;
        clamp *k = &cs->k[cs->n++];
        memset(k, 0, sizeof *k);
        k->lin = l;
        k->orig = l->hooks;
        k->sel = sel;
        k->N = N;
        k->saved = malloc((size_t)(N * l->out) * sizeof(float));
        k->mine.base_forward = l->hooks && l->hooks->base_forward ? clamp_base_fwd : NULL;
        k->mine.forward = clamp_fwd;
        k->mine.forward_ids = clamp_fwd_ids;
        k->mine.ctx = k;
        l->hooks = &k->mine;
    }
}

static void clamps_mode(clamps *cs, int mode)
{
    for (int i = 0; i < cs->n; i++) cs->k[i].mode = mode;
}

static void clamps_remove(clamps *cs)
{
    for (int i = 0; i < cs->n; i++) {
        cs->k[i].lin->hooks = cs->k[i].orig;
        free(cs->k[i].saved);
    }
    cs->n = 0;
}

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
    c->num_labels = 3;
}

enum { FB = 2, FT = 8 };

static float loss_of(lp_transformer *m, const lp_transformer_batch *b)
{
    float loss;
    LP_ASSERT_OK(lp_transformer_forward(m, b, NULL, &loss));
    return loss;
}

static void surrogate_fd(lp_arch arch, lp_ft_method method, const char *what)
{
    lp_transformer_config c;
    tiny_config(&c, arch);
    lp_transformer *m0;
    LP_ASSERT_OK(lp_transformer_new(&m0, &c));
    lp_transformer_init_random(m0, 7, 0.3f);
    lp_rng r;
    lp_rng_seed(&r, 8);
    for (int i = 0; i < lp_transformer_n_params(m0); i++) {
        lp_param *p = lp_transformer_param(m0, i);
        if (p->kind == LP_PARAM_NORM || p->kind == LP_PARAM_BIAS)
            for (int64_t k = 0; k < p->numel; k++) p->data[k] += 0.2f * lp_rng_normal(&r);
    }
    lp_ft_setup s;
    lp_ft_setup_default(&s, method);
    LP_ASSERT_OK(lp_lora_config_set_targets(&s.lora, lp_lora_targets_for(c.model_type, 1)));
    s.lora.r = 3;
    s.lora.alpha = 3; /* scaling 1: with random A and B, alpha 16 makes the loss too curved for e = 4e-3 */
    s.lora.dropout = 0;
    s.lora.init_lora_weights = LP_LORA_INIT_RANDOM;
    s.train_head = 0;
    lp_ft_model *f;
    LP_ASSERT_OK(lp_ft_model_new(&f, m0, &s));
    lp_transformer *m = lp_ft_model_transformer(f);
    int bert = arch == LP_ARCH_BERT;
    int32_t ids[FB * FT], labels[FB * FT];
    uint8_t mask[FB * FT], sel[FB * FT];
    for (int n = 0; n < FB * FT; n++) {
        int t = n % FT;
        ids[n] = (int32_t)lp_rng_below(&r, (uint64_t)c.vocab_size);
        labels[n] = (n % 5 == 2) ? -100 : ids[n];
        mask[n] = (uint8_t)!(n / FT == 1 && t >= FT - 2); /* sequence 1 padded from FT-2 */
        sel[n] = (uint8_t)((t % 3 == 0 || t == 4) && mask[n]);
        if (bert && t == 0) sel[n] = 1; /* [CLS] is always selected: the clamp must know */
    }
    if (bert) labels[0] = 1, labels[1] = 2;
    lp_transformer_batch b = {.B = FB, .T = FT, .input_ids = ids, .labels = labels, .attention_mask = mask,
                              .selected = sel};
    lp_transformer_forward_opts o = {.need_grad = 1};
    float loss;
    lp_ft_model_zero_grad(f);
    LP_ASSERT_OK(lp_transformer_forward(m, &b, &o, &loss));
    LP_ASSERT_OK(lp_transformer_backward(m));
    clamps cs;
    clamps_install(&cs, m, sel, FB * FT);
    clamps_mode(&cs, 0);
    float l_rec = loss_of(m, &b);
    LP_ASSERT_CLOSE(l_rec, loss, 0, 1e-6, "recording forward");
    clamps_mode(&cs, 1);
    double worst = 0;
    const double e = 4e-3;
    for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
        lp_ft_tensor t = lp_ft_model_trainable(f, i);
        float *dir = malloc((size_t)t.numel * sizeof(float)), *orig = malloc((size_t)t.numel * sizeof(float));
        lp_test_randn(&r, dir, (size_t)t.numel);
        memcpy(orig, t.data, (size_t)t.numel * sizeof(float));
        double an = 0, fdh[2];
        for (int64_t k = 0; k < t.numel; k++) an += (double)t.grad[k] * dir[k];
        for (int h = 0; h < 2; h++) {
            double eh = h ? e / 2 : e;
            for (int64_t k = 0; k < t.numel; k++) t.data[k] = (float)(orig[k] + eh * dir[k]);
            double lp = loss_of(m, &b);
            for (int64_t k = 0; k < t.numel; k++) t.data[k] = (float)(orig[k] - eh * dir[k]);
            double lm = loss_of(m, &b);
            fdh[h] = (lp - lm) / (2 * eh);
        }
        memcpy(t.data, orig, (size_t)t.numel * sizeof(float));
        double fd = (4 * fdh[1] - fdh[0]) / 3, tol = 2e-3 * fmax(fabs(fd), fabs(an)) + 2e-4;
        worst = fmax(worst, fabs(fd - an) / tol);
        if (!(fabs(fd - an) <= tol)) fail_msg("%s: %s: surrogate finite difference %.8g vs backward %.8g", what, t.name, fd, an);
        free(dir);
        free(orig);
    }
    clamps_remove(&cs);
    print_message("  %s: loss %.5f, %d tensors, worst |fd-an|/tol %.3f\n", what, loss, lp_ft_model_n_trainable(f), worst);
    lp_ft_model_free(f);
}

static void test_surrogate_fd_gpt2(void **state)
{
    (void)state;
    surrogate_fd(LP_ARCH_GPT2, LP_FT_FULL, "gpt2 full, selection + padding");
    surrogate_fd(LP_ARCH_GPT2, LP_FT_LORA, "gpt2 LoRA (all linears), selection + padding");
}

static void test_surrogate_fd_llama(void **state)
{
    (void)state;
    surrogate_fd(LP_ARCH_LLAMA, LP_FT_FULL, "llama full (GQA), selection + padding");
    surrogate_fd(LP_ARCH_LLAMA, LP_FT_LORA, "llama LoRA (all linears), selection + padding");
    surrogate_fd(LP_ARCH_LLAMA, LP_FT_QLORA, "llama QLoRA (all linears), selection + padding");
}

static void test_surrogate_fd_bert(void **state)
{
    (void)state;
    surrogate_fd(LP_ARCH_BERT, LP_FT_FULL, "bert full, selection + padding");
    surrogate_fd(LP_ARCH_BERT, LP_FT_LORA, "bert LoRA (all linears), selection + padding");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_gpt2),
        cmocka_unit_test(test_exact_llama),
        cmocka_unit_test(test_surrogate_fd_gpt2),
        cmocka_unit_test(test_surrogate_fd_llama),
        cmocka_unit_test(test_surrogate_fd_bert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
