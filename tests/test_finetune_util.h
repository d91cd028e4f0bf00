/* Helpers shared by the fine-tuning test binaries (test_finetune_*.c,
 * test_peft_fixture.c, test_memplan.c): fixture paths and reference tensors. */
#ifndef LEANPROP_TEST_FINETUNE_UTIL_H
#define LEANPROP_TEST_FINETUNE_UTIL_H

#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/finetune.h"
#include "leanprop/safetensors.h"

/* Directory of fixtures/<name> (static ring of 4), or NULL if absent. */
static inline const char *ft_fixture_dir(const char *name)
{
    static char dirs[4][4096];
    static int k;
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s", name);
    const char *p = lp_test_shared(rel);
    if (!p) return NULL;
    char *d = dirs[k++ & 3];
    snprintf(d, 4096, "%s", p);
    return d;
}

static inline lp_transformer *ft_load_fixture(const char *name)
{
    const char *dir = ft_fixture_dir(name);
    if (!dir) return NULL;
    lp_transformer *m;
    LP_ASSERT_OK(lp_transformer_load(&m, dir));
    return m;
}

/* Reference tensors (malloc'd); NULL when absent. */
static inline int32_t *ft_ref_i32(lp_safetensors *f, const char *name, int64_t *n_out)
{
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) return NULL;
    int64_t *tmp = malloc((size_t)t->numel * sizeof *tmp);
    int32_t *out = malloc((size_t)t->numel * sizeof *out);
    LP_ASSERT_OK(lp_safetensors_read_i64(f, name, tmp, (size_t)t->numel));
    for (int64_t i = 0; i < t->numel; i++) out[i] = (int32_t)tmp[i];
    free(tmp);
    if (n_out) *n_out = t->numel;
    return out;
}

static inline float *ft_ref_f32(lp_safetensors *f, const char *name, int64_t *n_out)
{
    const lp_tensor_info *t = lp_safetensors_find(f, name);
    if (!t) return NULL;
    float *out = malloc((size_t)t->numel * sizeof *out);
    LP_ASSERT_OK(lp_safetensors_read_f32(f, name, out, (size_t)t->numel));
    if (n_out) *n_out = t->numel;
    return out;
}

static inline double ft_max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* Largest |a-b| / max|b|. */
static inline double ft_rel_err(const float *a, const float *b, int64_t n)
{
    double m = ft_max_abs(b, n), e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - (double)b[i]));
    return m > 0 ? e / m : e;
}

/* A fixture's reference batch: input_ids, labels ((B,T) causal, (B) classes), mask, lengths. */
typedef struct {
    int64_t B, T;
    int32_t *ids, *labels, *lens;
    uint8_t *mask;
    int cls;
} ft_batch;

static inline int ft_load_batch(const char *name, ft_batch *d)
{
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s/reference.safetensors", name);
    const char *p = lp_test_shared(rel);
    if (!p) return 0;
    lp_safetensors *f;
    LP_ASSERT_OK(lp_safetensors_open(&f, p));
    const lp_tensor_info *t = lp_safetensors_find(f, "input_ids");
    d->B = t->shape[0];
    d->T = t->shape[1];
    d->ids = ft_ref_i32(f, "input_ids", NULL);
    d->labels = ft_ref_i32(f, "labels", NULL);
    int64_t nl = 0;
    free(ft_ref_i32(f, "labels", &nl));
    d->cls = nl == d->B;
    int32_t *am = ft_ref_i32(f, "attention_mask", NULL);
    d->mask = malloc((size_t)(d->B * d->T));
    d->lens = malloc((size_t)d->B * sizeof(int32_t));
    for (int64_t b = 0; b < d->B; b++) {
        d->lens[b] = 0;
        for (int64_t k = 0; k < d->T; k++) {
            d->mask[b * d->T + k] = (uint8_t)(am ? am[b * d->T + k] != 0 : 1);
            d->lens[b] += d->mask[b * d->T + k];
        }
    }
    free(am);
    lp_safetensors_close(f);
    return 1;
}

static inline void ft_free_batch(ft_batch *d)
{
    free(d->ids);
    free(d->labels);
    free(d->lens);
    free(d->mask);
}

static inline float ft_eval_loss(lp_ft_model *f, const ft_batch *d, float *logits)
{
    lp_transformer_batch b = {.B = d->B, .T = d->T, .input_ids = d->ids, .labels = d->labels, .attention_mask = d->mask};
    lp_transformer_forward_opts o = {.logits = logits};
    float loss;
    lp_ft_model_set_training(f, 0);
    LP_ASSERT_OK(lp_transformer_forward(lp_ft_model_transformer(f), &b, &o, &loss));
    lp_ft_model_set_training(f, 1);
    return loss;
}

#endif
