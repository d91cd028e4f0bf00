/* LoRA adapters: PEFT target matching, initialisation, forward against a double
 * reference, finite-difference gradients (with and without dropout), row-subset
 * backward (TokenTune), merge/unmerge, QLoRA hooks, memory, bad arguments. */
#include "util/test_util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/lora.h"
#include "leanprop/nf4.h"
#include "leanprop/rng.h"
#include "leanprop/status.h"

static void fill(lp_rng *r, float *x, size_t n, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = std * lp_rng_normal(r);
}

static lp_lora_config cfg_with(int r, float alpha, float dropout)
{
    lp_lora_config c;
    lp_lora_config_default(&c);
    c.r = r;
    c.alpha = alpha;
    c.dropout = dropout;
    assert_int_equal(lp_lora_config_set_targets(&c, "q_proj"), LP_OK);
    return c;
}

/* ---------------------------------------------------------------- config */

static void test_target_matching(void **state)
{
    (void)state;
    lp_lora_config c;
    lp_lora_config_default(&c);
    assert_int_equal(c.r, 8);
    assert_true(c.alpha == 8.0f && c.dropout == 0.0f);
    assert_int_equal(lp_lora_config_validate(&c), LP_ERR_INVALID_ARG); /* no targets */
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, lp_lora_targets_for("llama", 1)));
    assert_int_equal(c.n_targets, 7);
    LP_ASSERT_OK(lp_lora_config_validate(&c));
    assert_true(lp_lora_config_matches(&c, "model.layers.0.self_attn.q_proj"));
    assert_true(lp_lora_config_matches(&c, "model.layers.11.mlp.down_proj"));
    assert_true(lp_lora_config_matches(&c, "q_proj"));
    assert_false(lp_lora_config_matches(&c, "model.layers.0.self_attn.q_proj_x"));
    assert_false(lp_lora_config_matches(&c, "model.layers.0.self_attn.xq_proj"));
    assert_false(lp_lora_config_matches(&c, "lm_head"));
    assert_false(lp_lora_config_matches(&c, "model.layers.0.self_attn"));

    LP_ASSERT_OK(lp_lora_config_set_targets(&c, " c_attn , c_proj,c_fc "));
    assert_int_equal(c.n_targets, 3);
    assert_string_equal(c.targets[0], "c_attn");
    assert_true(lp_lora_config_matches(&c, "transformer.h.0.attn.c_attn"));
    assert_true(lp_lora_config_matches(&c, "transformer.h.0.attn.c_proj"));
    assert_true(lp_lora_config_matches(&c, "transformer.h.1.mlp.c_proj"));
    assert_true(lp_lora_config_matches(&c, "transformer.h.1.mlp.c_fc"));
    assert_false(lp_lora_config_matches(&c, "transformer.wte"));

    LP_ASSERT_OK(lp_lora_config_set_targets(&c, lp_lora_targets_for("bert", 1)));
    assert_true(lp_lora_config_matches(&c, "bert.encoder.layer.0.attention.self.query"));
    assert_true(lp_lora_config_matches(&c, "bert.encoder.layer.0.attention.output.dense"));
    assert_true(lp_lora_config_matches(&c, "bert.encoder.layer.1.intermediate.dense"));
    assert_false(lp_lora_config_matches(&c, "classifier"));
    /* a dotted target matches the tail of the name */
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, "attention.self.query"));
    assert_true(lp_lora_config_matches(&c, "bert.encoder.layer.0.attention.self.query"));
    assert_false(lp_lora_config_matches(&c, "bert.encoder.layer.0.crossattention.self.query"));

    /* exclude list */
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, "dense"));
    LP_ASSERT_OK(lp_lora_config_set_exclude(&c, "bert.pooler.dense"));
    assert_false(lp_lora_config_matches(&c, "bert.pooler.dense"));
    assert_true(lp_lora_config_matches(&c, "bert.encoder.layer.0.output.dense"));

    /* string form: whole-name regular expression, as Python's re.fullmatch */
    lp_lora_config_default(&c);
    LP_ASSERT_OK(lp_lora_config_set_target_regex(&c, ".*\\.layers\\.1\\..*(q|v)_proj"));
    assert_true(lp_lora_config_matches(&c, "model.layers.1.self_attn.v_proj"));
    assert_false(lp_lora_config_matches(&c, "model.layers.0.self_attn.v_proj"));
    assert_false(lp_lora_config_matches(&c, "model.layers.1.self_attn.v_proj.x"));
    LP_ASSERT_OK(lp_lora_config_set_target_regex(&c, "q_proj"));
    assert_false(lp_lora_config_matches(&c, "model.layers.0.self_attn.q_proj")); /* not a suffix rule */
    LP_ASSERT_OK(lp_lora_config_set_exclude_regex(&c, "q_proj"));
    assert_false(lp_lora_config_matches(&c, "q_proj"));
    assert_int_equal(lp_lora_config_set_target_regex(&c, "a(b"), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "a(b"));

    assert_string_equal(lp_lora_targets_for("gpt2", 0), "c_attn");
    assert_string_equal(lp_lora_targets_for("mistral", 0), "q_proj,v_proj");
    assert_null(lp_lora_targets_for("t5", 0));
    assert_null(lp_lora_targets_for(NULL, 0));
}

static void test_config_resolve_and_validate(void **state)
{
    (void)state;
    const char *mods[] = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                          "model.layers.0.mlp.down_proj", "lm_head"};
    lp_lora_config c;
    lp_lora_config_default(&c);
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, "q_proj,down_proj"));
    uint8_t sel[4];
    int n;
    LP_ASSERT_OK(lp_lora_config_resolve(&c, mods, 4, sel, &n));
    assert_int_equal(n, 2);
    assert_true(sel[0] && !sel[1] && sel[2] && !sel[3]);
    /* a target that matches nothing is an error naming it */
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, "q_proj,qproj"));
    assert_int_equal(lp_lora_config_resolve(&c, mods, 4, sel, &n), LP_ERR_NOT_FOUND);
    assert_non_null(strstr(lp_error_message(), "\"qproj\""));
    assert_non_null(strstr(lp_error_message(), "model.layers"));
    LP_ASSERT_OK(lp_lora_config_set_target_regex(&c, "nothing.*"));
    assert_int_equal(lp_lora_config_resolve(&c, mods, 4, NULL, NULL), LP_ERR_NOT_FOUND);
    /* all-linear: everything but the output layer, saved as PEFT does (last name parts) */
    LP_ASSERT_OK(lp_lora_config_set_targets(&c, "all-linear"));
    assert_string_equal(c.target_regex, "all-linear");
    LP_ASSERT_OK(lp_lora_config_resolve(&c, mods, 4, sel, &n));
    assert_int_equal(n, 3);
    assert_false(sel[3]);
    assert_int_equal(c.n_targets, 3);
    assert_string_equal(c.targets[2], "down_proj");
    assert_string_equal(c.target_regex, "");

    /* validation and parsing errors */
    c = cfg_with(4, 8, 0);
    LP_ASSERT_OK(lp_lora_config_validate(&c));
    c.r = 0;
    assert_int_equal(lp_lora_config_validate(&c), LP_ERR_INVALID_ARG);
    c = cfg_with(4, 8, 1.0f);
    assert_int_equal(lp_lora_config_validate(&c), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "lora_dropout"));
    c = cfg_with(4, -1, 0);
    assert_int_equal(lp_lora_config_validate(&c), LP_ERR_INVALID_ARG);
    c = cfg_with(4, 8, 0);
    assert_int_equal(lp_lora_config_set_targets(&c, "q_proj,,v_proj"), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_config_set_targets(&c, ""), LP_ERR_INVALID_ARG);
    assert_int_equal(c.n_targets, 1); /* unchanged after a failed set */
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(lp_lora_config_set_targets(&c, longname), LP_ERR_INVALID_ARG);
    char many[400] = "";
    for (int i = 0; i < 40; i++) strcat(many, "a,");
    strcat(many, "a");
    assert_int_equal(lp_lora_config_set_targets(&c, many), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_config_set_targets(NULL, "x"), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_config_set_exclude_regex(&c, "all-linear"), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_config_validate(NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_config_resolve(NULL, mods, 4, NULL, NULL), LP_ERR_INVALID_ARG);

    /* scaling: alpha/r, rsLoRA alpha/sqrt(r) */
    c = cfg_with(4, 8, 0);
    assert_true(lp_lora_config_scaling(&c) == 2.0f);
    c.use_rslora = 1;
    assert_true(lp_lora_config_scaling(&c) == 4.0f);
    assert_true(lp_lora_seed_for(1, "a") != lp_lora_seed_for(1, "b"));
    assert_true(lp_lora_seed_for(1, "a") != lp_lora_seed_for(2, "a"));
}

/* ---------------------------------------------------------------- adapter */

static void test_init_and_memory(void **state)
{
    (void)state;
    lp_lora_config c = cfg_with(8, 16, 0);
    int64_t C = 256, OC = 96;
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS), g0 = lp_mem_current(LP_MEM_GRADIENTS);
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 5, 1));
    assert_true(L->scaling == 2.0f);
    assert_int_equal(lp_lora_weight_bytes(L), 4 * 8 * (256 + 96));
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS) - w0, lp_lora_weight_bytes(L));
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS) - g0, lp_lora_grad_bytes(L));
    /* PEFT default: A ~ U(-1/sqrt(C), 1/sqrt(C)), B = 0 */
    double bound = 1.0 / sqrt((double)C), s2 = 0;
    for (int64_t i = 0; i < 8 * C; i++) {
        assert_true(fabs(L->A[i]) <= bound);
        s2 += (double)L->A[i] * L->A[i];
    }
    LP_ASSERT_CLOSE(sqrt(s2 / (8.0 * C)), bound / sqrt(3.0), 0, 0.1, "std of A");
    for (int64_t i = 0; i < OC * 8; i++) assert_true(L->B[i] == 0.0f && L->dB[i] == 0.0f);
    /* a fresh adapter changes nothing */
    float x[2 * 256], y[2 * 96], y0[2 * 96];
    lp_rng r;
    lp_rng_seed(&r, 1);
    fill(&r, x, sizeof x / 4, 1);
    fill(&r, y, sizeof y / 4, 1);
    memcpy(y0, y, sizeof y);
    LP_ASSERT_OK(lp_lora_forward(L, y, x, 2));
    assert_memory_equal(y, y0, sizeof y);
    lp_lora *L2;
    LP_ASSERT_OK(lp_lora_new(&L2, C, OC, &c, 5, 0));
    assert_memory_equal(L->A, L2->A, (size_t)(8 * C) * 4); /* same seed, same A */
    assert_null(L2->dA);
    assert_int_equal(lp_lora_grad_bytes(L2), 0);
    lp_lora_free(L2);
    lp_lora_free(L);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    assert_int_equal(lp_mem_current(LP_MEM_GRADIENTS), g0);

    /* init_lora_weights = false (nn.Linear default for both), gaussian */
    c.init_lora_weights = LP_LORA_INIT_RANDOM;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 6, 0));
    double mb = 0;
    for (int64_t i = 0; i < OC * 8; i++) mb = fmax(mb, fabs(L->B[i]));
    assert_true(mb <= 1.0 / sqrt(8.0) && mb > 0.3);
    lp_lora_free(L);
    c.init_lora_weights = LP_LORA_INIT_GAUSSIAN;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 7, 0));
    s2 = 0;
    for (int64_t i = 0; i < 8 * C; i++) s2 += (double)L->A[i] * L->A[i];
    LP_ASSERT_CLOSE(sqrt(s2 / (8.0 * C)), 1.0 / 8.0, 0, 0.1, "std of gaussian A");
    lp_lora_free(L);
}

/* double reference: y[n] = s * B A (x[n] * mask / (1-p)), J = sum G * y */
static double ref_loss(const double *A, const double *B, const double *x, const uint8_t *mask, const float *G,
                       int64_t N, int64_t C, int64_t OC, int r, double s, double p, double *y)
{
    double J = 0;
    for (int64_t n = 0; n < N; n++) {
        double u[16] = {0};
        for (int k = 0; k < r; k++)
            for (int64_t c = 0; c < C; c++)
                u[k] += A[k * C + c] * (mask[n * C + c] ? x[n * C + c] / (1 - p) : 0.0);
        for (int64_t o = 0; o < OC; o++) {
            double v = 0;
            for (int k = 0; k < r; k++) v += B[o * r + k] * u[k];
            if (y) y[n * OC + o] = s * v;
            J += G[n * OC + o] * s * v;
        }
    }
    return J;
}

static void to_double(double *d, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

/* central differences of ref_loss w.r.t. every element of v (A, B or x) */
static void fd_grad(double *v, size_t n, double *g, const double *A, const double *B, const double *x,
                    const uint8_t *mask, const float *G, int64_t N, int64_t C, int64_t OC, int r, double s, double p)
{
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + h;
        double jp = ref_loss(A, B, x, mask, G, N, C, OC, r, s, p, NULL);
        v[i] = keep - h;
        double jm = ref_loss(A, B, x, mask, G, N, C, OC, r, s, p, NULL);
        v[i] = keep;
        g[i] = (jp - jm) / (2 * h);
    }
}

static void check_grads(float dropout, int use_rslora)
{
    enum { N = 6, C = 11, OC = 7, R = 3 };
    lp_lora_config c = cfg_with(R, 5.0f, dropout);
    c.use_rslora = use_rslora;
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 3, 1));
    lp_rng r;
    lp_rng_seed(&r, 100 + (uint64_t)(dropout * 100));
    fill(&r, L->A, R * C, 0.5f);
    fill(&r, L->B, OC * R, 0.5f);
    float x[N * C], G[N * OC], y[N * OC], base[N * OC], dx[N * C];
    fill(&r, x, N * C, 1);
    fill(&r, G, N * OC, 1);
    fill(&r, base, N * OC, 1);
    memcpy(y, base, sizeof y);
    uint8_t mask[N * C];
    LP_ASSERT_OK(lp_lora_dropout_mask(L, mask, x, NULL, N));
    int kept = 0;
    for (int i = 0; i < N * C; i++) kept += mask[i];
    if (dropout > 0) assert_true(kept < N * C && kept > 0);
    else assert_int_equal(kept, N * C);

    double Ad[R * C], Bd[OC * R], xd[N * C], yd[N * OC], s = L->scaling;
    to_double(Ad, L->A, R * C);
    to_double(Bd, L->B, OC * R);
    to_double(xd, x, N * C);
    ref_loss(Ad, Bd, xd, mask, G, N, C, OC, R, s, dropout, yd);
    LP_ASSERT_OK(lp_lora_forward(L, y, x, N));
    for (int i = 0; i < N * OC; i++) LP_ASSERT_CLOSE(y[i] - base[i], yd[i], 1e-5, 1e-5, "forward vs double");

    memset(dx, 0, sizeof dx);
    dx[0] = 1.0f; /* accumulates */
    LP_ASSERT_OK(lp_lora_backward(L, dx, G, x, N));
    dx[0] -= 1.0f;
    double gA[R * C], gB[OC * R], gx[N * C];
    fd_grad(Ad, R * C, gA, Ad, Bd, xd, mask, G, N, C, OC, R, s, dropout);
    fd_grad(Bd, OC * R, gB, Ad, Bd, xd, mask, G, N, C, OC, R, s, dropout);
    fd_grad(xd, N * C, gx, Ad, Bd, xd, mask, G, N, C, OC, R, s, dropout);
    for (int i = 0; i < R * C; i++) LP_ASSERT_CLOSE(L->dA[i], gA[i], 1e-5, 1e-4, "dA vs finite differences");
    for (int i = 0; i < OC * R; i++) LP_ASSERT_CLOSE(L->dB[i], gB[i], 1e-5, 1e-4, "dB vs finite differences");
    for (int i = 0; i < N * C; i++) LP_ASSERT_CLOSE(dx[i], gx[i], 1e-5, 1e-4, "dx vs finite differences");
    if (dropout > 0)
        for (int i = 0; i < N * C; i++)
            if (!mask[i]) assert_true(dx[i] == 0.0f);

    /* TokenTune: backward of a subset of rows (gathered, reordered) = the full backward
     * with the other rows' dout zero; the masks are regenerated from the rows themselves */
    float dA_full[R * C], dB_full[OC * R], dx_full[N * C] = {0}, Gz[N * OC];
    memcpy(Gz, G, sizeof G);
    for (int n = 0; n < N; n++)
        if (n != 1 && n != 4) memset(Gz + n * OC, 0, OC * sizeof(float));
    lp_lora_zero_grad(L);
    LP_ASSERT_OK(lp_lora_backward(L, dx_full, Gz, x, N));
    memcpy(dA_full, L->dA, sizeof dA_full);
    memcpy(dB_full, L->dB, sizeof dB_full);
    float xs[2 * C], Gs[2 * OC], dxs[2 * C] = {0};
    memcpy(xs, x + 4 * C, C * 4);
    memcpy(xs + C, x + 1 * C, C * 4);
    memcpy(Gs, G + 4 * OC, OC * 4);
    memcpy(Gs + OC, G + 1 * OC, OC * 4);
    lp_lora_zero_grad(L);
    LP_ASSERT_OK(lp_lora_backward(L, dxs, Gs, xs, 2));
    lp_test_assert_allclose(L->dA, dA_full, R * C, 1e-6, 1e-5, "dA from a row subset");
    lp_test_assert_allclose(L->dB, dB_full, OC * R, 1e-6, 1e-5, "dB from a row subset");
    lp_test_assert_allclose(dxs, dx_full + 4 * C, C, 1e-6, 1e-5, "dx row 4 from a row subset");
    lp_test_assert_allclose(dxs + C, dx_full + 1 * C, C, 1e-6, 1e-5, "dx row 1 from a row subset");
    lp_lora_free(L);
}

static void test_gradients_finite_differences(void **state)
{
    (void)state;
    check_grads(0.0f, 0);
    check_grads(0.3f, 0);
    check_grads(0.0f, 1);
}

static void test_dropout_statistics_and_steps(void **state)
{
    (void)state;
    int64_t N = 200, C = 100, OC = 4;
    lp_lora_config c = cfg_with(2, 2, 0.25f);
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 9, 1));
    lp_rng r;
    lp_rng_seed(&r, 4);
    float *x = malloc((size_t)(N * C) * 4), *y = calloc((size_t)(N * OC), 4), *y2 = calloc((size_t)(N * OC), 4);
    float *yeval = calloc((size_t)(N * OC), 4), *dy = malloc((size_t)(N * OC) * 4);
    uint8_t *m1 = malloc((size_t)(N * C)), *m2 = malloc((size_t)(N * C));
    fill(&r, x, (size_t)(N * C), 1);
    fill(&r, L->B, (size_t)(OC * 2), 1);
    fill(&r, dy, (size_t)(N * OC), 1);
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m1, x, NULL, N));
    double kept = 0;
    for (int64_t i = 0; i < N * C; i++) kept += m1[i];
    kept /= (double)(N * C);
    LP_ASSERT_CLOSE(kept, 0.75, 0.01, 0, "kept fraction");
    /* the mask stays until a backward, then the next forward draws a new one */
    LP_ASSERT_OK(lp_lora_forward(L, y, x, N));
    LP_ASSERT_OK(lp_lora_forward(L, y2, x, N));
    assert_memory_equal(y, y2, (size_t)(N * OC) * 4);
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m2, x, NULL, N));
    assert_memory_equal(m1, m2, (size_t)(N * C));
    LP_ASSERT_OK(lp_lora_backward(L, NULL, dy, x, N));
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m2, x, NULL, N));
    assert_memory_not_equal(m1, m2, (size_t)(N * C));
    /* eval mode: no dropout, same as p = 0 */
    lp_lora_set_training(L, 0);
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m2, x, NULL, N));
    for (int64_t i = 0; i < N * C; i++) assert_int_equal(m2[i], 1);
    LP_ASSERT_OK(lp_lora_forward(L, yeval, x, N));
    L->dropout = 0;
    memset(y2, 0, (size_t)(N * OC) * 4);
    LP_ASSERT_OK(lp_lora_forward(L, y2, x, N));
    assert_memory_equal(yeval, y2, (size_t)(N * OC) * 4);
    /* lp_lora_next_step starts a new generation without a backward */
    L->dropout = 0.25f;
    lp_lora_set_training(L, 1);
    lp_lora_next_step(L);
    uint8_t *m3 = malloc((size_t)(N * C));
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m3, x, NULL, N));
    assert_memory_not_equal(m3, m1, (size_t)(N * C));
    free(m3);
    free(x); free(y); free(y2); free(yeval); free(dy); free(m1); free(m2);
    lp_lora_free(L);
}

static void test_dropout_row_ids(void **state)
{
    (void)state;
    enum { N = 5, C = 64, OC = 3 };
    lp_lora_config c = cfg_with(2, 2, 0.5f);
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 4, 1));
    lp_rng r;
    lp_rng_seed(&r, 31);
    float x[N * C], G[N * OC];
    fill(&r, x, N * C, 1);
    fill(&r, G, N * OC, 1);
    fill(&r, L->B, OC * 2, 1);
    memcpy(x + 3 * C, x, C * sizeof(float)); /* rows 0 and 3 identical */
    int64_t ids[N] = {10, 11, 12, 13, 14};
    uint8_t mc[N * C], mi[N * C];
    LP_ASSERT_OK(lp_lora_dropout_mask(L, mc, x, NULL, N));
    LP_ASSERT_OK(lp_lora_dropout_mask(L, mi, x, ids, N));
    assert_memory_equal(mc, mc + 3 * C, C);        /* by content: identical rows, identical masks */
    assert_memory_not_equal(mi, mi + 3 * C, C);    /* by id: independent */
    /* backward of rows {4, 1} with their ids = full backward with the other rows' dout zero */
    float y[N * OC] = {0}, dxf[N * C] = {0}, Gz[N * OC], dA[2 * C], dB[OC * 2];
    LP_ASSERT_OK(lp_lora_forward_ids(L, y, x, ids, N));
    memcpy(Gz, G, sizeof G);
    for (int n = 0; n < N; n++)
        if (n != 1 && n != 4) memset(Gz + n * OC, 0, OC * sizeof(float));
    LP_ASSERT_OK(lp_lora_backward_ids(L, dxf, Gz, x, ids, N));
    memcpy(dA, L->dA, sizeof dA);
    memcpy(dB, L->dB, sizeof dB);
    lp_lora_zero_grad(L);
    float xs[2 * C], Gs[2 * OC], dxs[2 * C] = {0};
    int64_t sid[2] = {14, 11};
    memcpy(xs, x + 4 * C, C * 4);
    memcpy(xs + C, x + 1 * C, C * 4);
    memcpy(Gs, G + 4 * OC, OC * 4);
    memcpy(Gs + OC, G + 1 * OC, OC * 4);
    LP_ASSERT_OK(lp_lora_backward_ids(L, dxs, Gs, xs, sid, 2));
    lp_test_assert_allclose(L->dA, dA, 2 * C, 1e-6, 1e-5, "dA from a row subset (ids)");
    lp_test_assert_allclose(L->dB, dB, OC * 2, 1e-6, 1e-5, "dB from a row subset (ids)");
    lp_test_assert_allclose(dxs, dxf + 4 * C, C, 1e-6, 1e-5, "dx row 4 (ids)");
    lp_test_assert_allclose(dxs + C, dxf + 1 * C, C, 1e-6, 1e-5, "dx row 1 (ids)");
    /* the forward used the id masks: compare with a reference built from them */
    float h[N * C], u[N * 2], yr[N * OC];
    for (int i = 0; i < N * C; i++) h[i] = mi[i] ? 2.0f * x[i] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 2, C, 1, h, C, L->A, C, 0, u, 2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, 2, 1, u, 2, L->B, 2, 0, yr, OC);
    lp_test_assert_allclose(y, yr, N * OC, 1e-5, 1e-5, "forward with id masks");
    ids[2] = -1;
    assert_int_equal(lp_lora_forward_ids(L, y, x, ids, N), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "negative"));
    lp_lora_free(L);
}

static void test_large_chunks_with_dropout(void **state)
{
    (void)state;
    /* more rows than one dropout chunk: chunked result = unchunked reference */
    int64_t N = 70, C = 1100, OC = 5;   /* chunk = 59 rows */
    lp_lora_config c = cfg_with(4, 4, 0.5f);
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 2, 1));
    lp_rng r;
    lp_rng_seed(&r, 8);
    float *x = malloc((size_t)(N * C) * 4), *y = calloc((size_t)(N * OC), 4), *h = malloc((size_t)(N * C) * 4);
    float *ref = calloc((size_t)(N * OC), 4), *u = malloc((size_t)(N * 4) * 4);
    uint8_t *m = malloc((size_t)(N * C));
    fill(&r, x, (size_t)(N * C), 1);
    fill(&r, L->B, (size_t)(OC * 4), 1);
    LP_ASSERT_OK(lp_lora_dropout_mask(L, m, x, NULL, N));
    for (int64_t i = 0; i < N * C; i++) h[i] = m[i] ? 2.0f * x[i] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, 4, (int)C, 1, h, (int)C, L->A, (int)C, 0, u, 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)OC, 4, 1, u, 4, L->B, 4, 0, ref, (int)OC);
    LP_ASSERT_OK(lp_lora_forward(L, y, x, N));
    lp_test_assert_allclose(y, ref, (size_t)(N * OC), 1e-5, 1e-5, "chunked dropout forward");
    free(x); free(y); free(h); free(ref); free(u); free(m);
    lp_lora_free(L);
}

static void test_merge_unmerge(void **state)
{
    (void)state;
    enum { N = 3, C = 9, OC = 6, R = 2 };
    lp_lora_config c = cfg_with(R, 3.0f, 0.1f);
    lp_lora *L;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 1, 1));
    lp_rng r;
    lp_rng_seed(&r, 12);
    fill(&r, L->B, OC * R, 1);
    float W[OC * C], W0[OC * C], Wt[C * OC], x[N * C], y[N * OC], ym[N * OC];
    fill(&r, W, OC * C, 1);
    fill(&r, x, N * C, 1);
    memcpy(W0, W, sizeof W);
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < C; i++) Wt[i * OC + o] = W[o * C + i];
    /* eval-mode output before merging */
    lp_lora_set_training(L, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, x, C, W, C, 0, y, OC);
    LP_ASSERT_OK(lp_lora_forward(L, y, x, N));
    LP_ASSERT_OK(lp_lora_merge(L, W, 0));
    assert_true(L->merged);
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < C; i++) {
            double d = 0;
            for (int k = 0; k < R; k++) d += (double)L->B[o * R + k] * L->A[k * C + i];
            LP_ASSERT_CLOSE(W[o * C + i], W0[o * C + i] + 1.5 * d, 1e-6, 1e-6, "merged W");
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, x, C, W, C, 0, ym, OC);
    LP_ASSERT_OK(lp_lora_forward(L, ym, x, N)); /* merged: adds nothing */
    lp_test_assert_allclose(ym, y, N * OC, 1e-5, 1e-5, "merged forward = base + adapter");
    assert_int_equal(lp_lora_merge(L, W, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_backward(L, NULL, y, x, N), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "merged"));
    LP_ASSERT_OK(lp_lora_unmerge(L, W, 0));
    lp_test_assert_allclose(W, W0, OC * C, 1e-6, 1e-6, "unmerged W");
    assert_int_equal(lp_lora_unmerge(L, W, 0), LP_ERR_INVALID_ARG);
    /* fan_in_fan_out (GPT-2 Conv1D layout, W stored (C, OC)) */
    LP_ASSERT_OK(lp_lora_merge(L, Wt, 1));
    LP_ASSERT_OK(lp_lora_unmerge(L, Wt, 1));
    LP_ASSERT_OK(lp_lora_merge(L, Wt, 1));
    LP_ASSERT_OK(lp_lora_unmerge(L, W, 0)); /* W = W0 - s B A */
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < C; i++)
            LP_ASSERT_CLOSE(Wt[i * OC + o] - W0[o * C + i], W0[o * C + i] - W[o * C + i], 1e-6, 1e-5,
                            "fan_in_fan_out merge");
    lp_lora_free(L);
}

static void test_qlora_hooks(void **state)
{
    (void)state;
    enum { N = 4, C = 128, OC = 40, R = 4 };
    lp_rng r;
    lp_rng_seed(&r, 77);
    float *W = malloc(OC * C * 4), *Wd = malloc(OC * C * 4), *x = malloc(N * C * 4), *dy = malloc(N * OC * 4);
    float y[N * OC], yr[N * OC], dx[N * C] = {0}, dxr[N * C] = {0};
    fill(&r, W, OC * C, 0.05f);
    fill(&r, x, N * C, 1);
    fill(&r, dy, N * OC, 1);
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, W, OC, C, 1));
    LP_ASSERT_OK(lp_nf4_dequantize(Wd, q));
    lp_lora_config c = cfg_with(R, 8, 0);
    lp_lora *L, *L2;
    LP_ASSERT_OK(lp_lora_new(&L, C, OC, &c, 4, 1));
    LP_ASSERT_OK(lp_lora_new(&L2, C, OC, &c, 4, 1));
    fill(&r, L->B, OC * R, 0.1f);
    memcpy(L2->B, L->B, OC * R * 4);
    lp_lora_target t = {.nf4 = q, .lora = L};
    LP_ASSERT_OK(lp_lora_hook_base_forward(&t, y, x, N, C, OC));
    LP_ASSERT_OK(lp_lora_hook_forward(&t, y, x, N, C, OC));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, x, C, Wd, C, 0, yr, OC);
    LP_ASSERT_OK(lp_lora_forward(L2, yr, x, N));
    lp_test_assert_allclose(y, yr, N * OC, 1e-5, 1e-5, "QLoRA hooks forward");
    LP_ASSERT_OK(lp_lora_hook_base_backward(&t, dx, dy, N, C, OC));
    LP_ASSERT_OK(lp_lora_hook_backward(&t, dx, dy, x, N, C, OC));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, dy, OC, Wd, C, 0, dxr, C);
    LP_ASSERT_OK(lp_lora_backward(L2, dxr, dy, x, N));
    lp_test_assert_allclose(dx, dxr, N * C, 1e-5, 1e-5, "QLoRA hooks backward dx");
    lp_test_assert_allclose(L->dA, L2->dA, R * C, 1e-6, 1e-5, "QLoRA hooks dA");
    /* hook argument checks */
    assert_int_equal(lp_lora_hook_forward(&t, y, x, N, C, OC + 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_hook_forward(NULL, y, x, N, C, OC), LP_ERR_INVALID_ARG);
    lp_lora_target none = {0};
    LP_ASSERT_OK(lp_lora_hook_forward(&none, y, x, N, C, OC));
    assert_int_equal(lp_lora_hook_base_forward(&none, y, x, N, C, OC), LP_ERR_INVALID_ARG);
    /* merge into NF4: requantised deq(W) + s B A is close to the float merge */
    float *Wm = malloc(OC * C * 4), *Wq = malloc(OC * C * 4);
    memcpy(Wm, Wd, OC * C * 4);
    LP_ASSERT_OK(lp_lora_merge(L2, Wm, 0));
    LP_ASSERT_OK(lp_lora_merge_nf4(L, &q));
    LP_ASSERT_OK(lp_nf4_dequantize(Wq, q));
    double se = 0, s2 = 0;
    for (int i = 0; i < OC * C; i++) {
        se += ((double)Wq[i] - Wm[i]) * ((double)Wq[i] - Wm[i]);
        s2 += (double)Wm[i] * Wm[i];
    }
    assert_true(sqrt(se / s2) < 0.12);
    assert_int_equal(lp_lora_merge_nf4(L, &q), LP_ERR_INVALID_ARG); /* already merged */
    lp_nf4_free(q);
    lp_lora_free(L);
    lp_lora_free(L2);
    free(W); free(Wd); free(x); free(dy); free(Wm); free(Wq);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    lp_lora_config c = cfg_with(4, 8, 0);
    lp_lora *L = (lp_lora *)1;
    assert_int_equal(lp_lora_new(NULL, 4, 4, &c, 0, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_new(&L, 0, 4, &c, 0, 1), LP_ERR_INVALID_ARG);
    assert_null(L);
    assert_int_equal(lp_lora_new(&L, 4, -1, &c, 0, 1), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_new(&L, 4, 4, NULL, 0, 1), LP_ERR_INVALID_ARG);
    c.r = 0;
    assert_int_equal(lp_lora_new(&L, 4, 4, &c, 0, 1), LP_ERR_INVALID_ARG);
    c.r = 4;
    LP_ASSERT_OK(lp_lora_new(&L, 4, 4, &c, 0, 1));
    float x[16] = {0}, y[16] = {0};
    assert_int_equal(lp_lora_forward(NULL, y, x, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_forward(L, NULL, x, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_forward(L, y, NULL, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_forward(L, y, x, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_backward(L, x, NULL, x, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_backward(L, x, y, x, -2), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_dropout_mask(L, NULL, x, NULL, 4), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_merge(L, NULL, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_merge(NULL, y, 0), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_lora_merge_nf4(L, NULL), LP_ERR_INVALID_ARG);
    /* NF4 of the wrong shape */
    lp_nf4 *q;
    LP_ASSERT_OK(lp_nf4_quantize(&q, x, 2, 8, 1));
    assert_int_equal(lp_lora_merge_nf4(L, &q), LP_ERR_INVALID_ARG);
    lp_nf4_free(q);
    /* allocation failure leaves nothing behind */
    lp_lora_free(L);
    size_t w0 = lp_mem_current(LP_MEM_WEIGHTS);
    lp_mem_fail_after(3);
    assert_int_equal(lp_lora_new(&L, 4, 4, &c, 0, 1), LP_ERR_NOMEM);
    lp_mem_fail_after(0);
    assert_int_equal(lp_mem_current(LP_MEM_WEIGHTS), w0);
    lp_lora_free(NULL);
    lp_lora_zero_grad(NULL);
    lp_lora_set_training(NULL, 1);
    lp_lora_next_step(NULL);
    assert_int_equal(lp_lora_weight_bytes(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_matching),
        cmocka_unit_test(test_config_resolve_and_validate),
        cmocka_unit_test(test_init_and_memory),
        cmocka_unit_test(test_gradients_finite_differences),
        cmocka_unit_test(test_dropout_statistics_and_steps),
        cmocka_unit_test(test_dropout_row_ids),
        cmocka_unit_test(test_large_chunks_with_dropout),
        cmocka_unit_test(test_merge_unmerge),
        cmocka_unit_test(test_qlora_hooks),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
