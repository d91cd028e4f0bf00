/* lp_ft_model: a transformer set up for one fine-tuning method (full, LoRA,
 * QLoRA): trainable tensor list, gradients only where trained, adapters and
 * NF4 base weights plugged in through lp_linear_hooks. See leanprop/finetune.h. */
#include "train/finetune_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/nf4.h"

static const char *const method_names[LP_FT_METHOD_COUNT] = {"full", "lora", "qlora"};

const char *lp_ft_method_name(lp_ft_method m)
{
    return (int)m >= 0 && m < LP_FT_METHOD_COUNT ? method_names[m] : "unknown";
}

lp_status lp_ft_method_parse(const char *s, lp_ft_method *out)
{
    if (!s || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_ft_method_parse: NULL argument");
    for (int i = 0; i < LP_FT_METHOD_COUNT; i++)
        if (!strcmp(s, method_names[i])) {
            *out = (lp_ft_method)i;
            return LP_OK;
        }
    return lp_error(LP_ERR_INVALID_ARG, "unknown fine-tuning method \"%s\" (full, lora, qlora)", s);
}

void lp_ft_setup_default(lp_ft_setup *s, lp_ft_method method)
{
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->method = method;
    lp_lora_config_default(&s->lora);
    s->lora.r = 8;
    s->lora.alpha = 16.0f;
    s->lora.dropout = 0.05f;
    s->double_quant = 1;
    s->full_only = NULL;
    s->train_head = -1;
}

/* ------------------------------------------------------------ trainable list */

static lp_status add_trainable(lp_ft_model *f, const char *name, float *data, float *grad, int64_t numel, int decay)
{
    if (f->n_tr == f->cap_tr) {
        int cap = f->cap_tr ? 2 * f->cap_tr : 64;
        lp_ft_tensor *t = realloc(f->tr, (size_t)cap * sizeof *t);
        if (!t) return lp_error(LP_ERR_NOMEM, "lp_ft_model: trainable list");
        f->tr = t;
        char **nm = realloc(f->tr_names, (size_t)cap * sizeof *nm);
        if (!nm) return lp_error(LP_ERR_NOMEM, "lp_ft_model: trainable list");
        f->tr_names = nm;
        f->cap_tr = cap;
    }
    char *copy = strdup(name);
    if (!copy) return lp_error(LP_ERR_NOMEM, "lp_ft_model: trainable list");
    f->tr_names[f->n_tr] = copy;
    f->tr[f->n_tr] = (lp_ft_tensor){.name = copy, .data = data, .grad = grad, .numel = numel, .decay = decay};
    f->n_tr++;
    return LP_OK;
}

static void clear_trainable(lp_ft_model *f)
{
    for (int i = 0; i < f->n_tr; i++) free(f->tr_names[i]);
    f->n_tr = 0;
}

lp_status lp_ft_rebuild_trainable(lp_ft_model *f)
{
    clear_trainable(f);
    lp_transformer *m = f->m;
    for (int i = 0; i < lp_transformer_n_params(m); i++) {
        lp_param *p = lp_transformer_param(m, i);
        if (!p->grad) continue;
        int decay = p->kind == LP_PARAM_LINEAR || p->kind == LP_PARAM_EMBEDDING;
        LP_TRY(add_trainable(f, p->name, p->data, p->grad, p->numel, decay));
    }
    for (int i = 0; i < f->n_ad; i++) {
        lp_lora *L = f->ad[i].lora;
        if (!L || !L->dA) continue;
        char name[256];
        LP_TRY(lp_peft_tensor_name(name, sizeof name, f->ad[i].module, 'A', "default"));
        LP_TRY(add_trainable(f, name, L->A, L->dA, (int64_t)L->r * L->C, 1));
        LP_TRY(lp_peft_tensor_name(name, sizeof name, f->ad[i].module, 'B', "default"));
        LP_TRY(add_trainable(f, name, L->B, L->dB, L->OC * (int64_t)L->r, 1));
    }
    return LP_OK;
}

/* ------------------------------------------------------------ life cycle */

lp_status lp_ft_model_new(lp_ft_model **out, lp_transformer *m, const lp_ft_setup *s)
{
    static const char fn[] = "lp_ft_model_new";
    if (out) *out = NULL;
    if (!out || !m || !s) {
        lp_transformer_free(m);
        return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    }
    if ((int)s->method < 0 || s->method >= LP_FT_METHOD_COUNT) {
        lp_transformer_free(m);
        return lp_error(LP_ERR_INVALID_ARG, "%s: unknown method %d", fn, (int)s->method);
    }
    lp_ft_model *f = calloc(1, sizeof *f);
    if (!f) {
        lp_transformer_free(m);
        return lp_error(LP_ERR_NOMEM, "%s", fn);
    }
    f->m = m;
    f->setup = *s;
    f->setup.full_only = NULL;
    f->training = 1;
    lp_status st = LP_OK;
    if (s->full_only && !(f->full_only = strdup(s->full_only))) st = lp_error(LP_ERR_NOMEM, "%s", fn);
    f->setup.full_only = f->full_only;
    if (st == LP_OK) {
        /* Start from a clean slate: no gradient anywhere. */
        st = lp_transformer_set_trainable(m, NULL, 0);
    }
    if (st == LP_OK) {
        if (s->method == LP_FT_FULL) st = lp_transformer_set_trainable(m, f->full_only, 1);
        else st = lp_ft_attach_adapters(f);
    }
    if (st == LP_OK && s->method != LP_FT_FULL && (s->train_head > 0 || (s->train_head < 0 && lp_ft_is_classifier(m)))) {
        /* PEFT's SEQ_CLS: the new classification head is trained in full (modules_to_save) */
        lp_nn_linear *h = lp_transformer_find_linear(m, "classifier");
        if (!h) h = lp_transformer_find_linear(m, "score");
        if (!h || !lp_ft_is_classifier(m)) {
            if (s->train_head > 0) st = lp_error(LP_ERR_INVALID_ARG, "%s: train_head: the model has no classification head", fn);
        } else {
            st = lp_transformer_set_trainable(m, h->weight->name, 1);
            if (st == LP_OK && h->bias) st = lp_transformer_set_trainable(m, h->bias->name, 1);
        }
    }
    if (st == LP_OK && s->method == LP_FT_FULL && f->full_only && lp_transformer_count_params(m, 1) == 0)
        st = lp_error(LP_ERR_NOT_FOUND, "%s: full_only \"%s\" matches no parameter", fn, f->full_only);
    if (st == LP_OK) st = lp_ft_rebuild_trainable(f);
    if (st != LP_OK) {
        lp_ft_model_free(f);
        return lp_error_context(st, "setting up %s fine-tuning", lp_ft_method_name(s->method));
    }
    *out = f;
    return LP_OK;
}

void lp_ft_model_free(lp_ft_model *f)
{
    if (!f) return;
    lp_ft_detach_adapters(f);
    lp_transformer_free(f->m);
    clear_trainable(f);
    free(f->tr);
    free(f->tr_names);
    free(f->full_only);
    free(f);
}

int lp_ft_n_loras(const lp_ft_model *f)
{
    int n = 0;
    for (int i = 0; i < f->n_ad; i++) n += f->ad[i].lora != NULL;
    return n;
}

lp_transformer *lp_ft_model_transformer(lp_ft_model *f) { return f ? f->m : NULL; }
const lp_ft_setup *lp_ft_model_setup(const lp_ft_model *f) { return f ? &f->setup : NULL; }
int lp_ft_model_n_trainable(const lp_ft_model *f) { return f ? f->n_tr : 0; }

lp_ft_tensor lp_ft_model_trainable(lp_ft_model *f, int i)
{
    lp_ft_tensor none = {0};
    return f && i >= 0 && i < f->n_tr ? f->tr[i] : none;
}

int64_t lp_ft_model_trainable_numel(const lp_ft_model *f)
{
    int64_t n = 0;
    for (int i = 0; f && i < f->n_tr; i++) n += f->tr[i].numel;
    return n;
}

void lp_ft_model_zero_grad(lp_ft_model *f)
{
    for (int i = 0; f && i < f->n_tr; i++)
        if (f->tr[i].grad) memset(f->tr[i].grad, 0, (size_t)f->tr[i].numel * sizeof(float));
}

void lp_ft_model_set_training(lp_ft_model *f, int training)
{
    if (!f) return;
    f->training = training ? 1 : 0;
    for (int i = 0; i < f->n_ad; i++)
        if (f->ad[i].lora) lp_lora_set_training(f->ad[i].lora, f->training);
}

lp_status lp_ft_model_save(const lp_ft_model *f, const char *dir)
{
    if (!f || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_ft_model_save: NULL argument");
    if (f->setup.method == LP_FT_FULL || f->merged) return lp_transformer_save_hf(f->m, dir, NULL);
    return lp_ft_save_adapter(f, dir);
}
