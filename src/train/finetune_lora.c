/* LoRA / QLoRA side of lp_ft_model: adapters on the targeted linears, NF4
 * base weights, merge. PEFT files: finetune_peft.c. See leanprop/finetune.h. */
#include "train/finetune_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

int lp_ft_is_head_module(const lp_transformer *m, const char *module)
{
    const lp_transformer_config *c = lp_transformer_get_config(m);
    if (!strcmp(module, "lm_head") || !strcmp(module, "score")) return 1;
    return c->arch == LP_ARCH_BERT && !strcmp(module, "classifier");
}

lp_status lp_ft_resolve_targets(lp_lora_config *lc, const lp_transformer_config *c, const char *const *names, int n,
                                uint8_t *selected, int *n_selected)
{
    if (lc->n_targets == 0 && !lc->target_regex[0]) {
        const char *def = lp_lora_targets_for(c->model_type, 0);
        if (!def) return lp_error(LP_ERR_UNSUPPORTED, "no default LoRA targets for model type \"%s\"", c->model_type);
        LP_TRY(lp_lora_config_set_targets(lc, def));
    }
    lc->fan_in_fan_out = c->arch == LP_ARCH_GPT2; /* PEFT records Conv1D layers so */
    int cls = c->arch == LP_ARCH_BERT || c->task == LP_TASK_SEQ_CLS;
    if (!lc->task_type[0]) snprintf(lc->task_type, sizeof lc->task_type, "%s", cls ? "SEQ_CLS" : "CAUSAL_LM");
    return lp_lora_config_resolve(lc, names, n, selected, n_selected);
}

lp_status lp_ft_resolve_lora_config(lp_lora_config *lc, const lp_transformer *m, int *n_selected, uint8_t *selected)
{
    int n = lp_transformer_n_linears(m);
    const char **names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    if (!names) return lp_error(LP_ERR_NOMEM, "LoRA targets");
    for (int i = 0; i < n; i++) names[i] = lp_transformer_linear((lp_transformer *)m, i)->name;
    lp_status st = lp_ft_resolve_targets(lc, lp_transformer_get_config(m), names, n, selected, n_selected);
    free(names);
    return st;
}

int lp_ft_is_classifier(const lp_transformer *m)
{
    const lp_transformer_config *c = lp_transformer_get_config(m);
    return c->arch == LP_ARCH_BERT || c->task == LP_TASK_SEQ_CLS;
}

/* Row-id hooks: dropout masks keyed by each row's b*T+t, so TokenTune's
 * backward (selected rows only) regenerates exactly the forward's masks. */
static lp_status hook_forward_ids(void *ctx, float *y, const float *x, const int64_t *ids, int64_t N, int64_t in,
                                  int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t || !t->lora || !ids) return lp_lora_hook_forward(ctx, y, x, N, in, out);
    if (t->lora->C != in || t->lora->OC != out)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA hook: linear %lld -> %lld, adapter %lld -> %lld", (long long)in,
                        (long long)out, (long long)t->lora->C, (long long)t->lora->OC);
    return lp_lora_forward_ids(t->lora, y, x, ids, N);
}

static lp_status hook_backward_ids(void *ctx, float *dx, const float *dy, const float *x, const int64_t *ids,
                                   int64_t N, int64_t in, int64_t out)
{
    const lp_lora_target *t = ctx;
    if (!t || !t->lora || !ids) return lp_lora_hook_backward(ctx, dx, dy, x, N, in, out);
    if (t->lora->C != in || t->lora->OC != out)
        return lp_error(LP_ERR_INVALID_ARG, "LoRA hook: linear %lld -> %lld, adapter %lld -> %lld", (long long)in,
                        (long long)out, (long long)t->lora->C, (long long)t->lora->OC);
    return lp_lora_backward_ids(t->lora, dx, dy, x, ids, N);
}

/* QLoRA keeps output layers (and weights shared with the embedding) in fp32,
 * as bitsandbytes skips lm_head. */
static int quantisable(const lp_transformer *m, const lp_nn_linear *lin)
{
    return lin->weight && lin->weight->kind == LP_PARAM_LINEAR && lin->weight->data && !lp_ft_is_head_module(m, lin->name);
}

lp_status lp_ft_attach_adapters(lp_ft_model *f)
{
    lp_transformer *m = f->m;
    int n = lp_transformer_n_linears(m), ns = 0;
    uint8_t *sel = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!sel) return lp_error(LP_ERR_NOMEM, "LoRA targets");
    lp_status st = lp_ft_resolve_lora_config(&f->setup.lora, m, &ns, sel);
    /* one entry per adapted linear and, with QLoRA, per quantised one */
    if (st == LP_OK && !(f->ad = calloc((size_t)n, sizeof *f->ad))) st = lp_error(LP_ERR_NOMEM, "LoRA adapters");
    const lp_lora_config *lc = &f->setup.lora;
    int qlora = f->setup.method == LP_FT_QLORA;
    for (int i = 0; st == LP_OK && i < n; i++) {
        lp_nn_linear *lin = lp_transformer_linear(m, i);
        int quant = qlora && quantisable(m, lin);
        if (!sel[i] && !quant) continue;
        lp_ft_adapter *a = &f->ad[f->n_ad++];
        a->lin = lin;
        if (!(a->module = strdup(lin->name))) {
            st = lp_error(LP_ERR_NOMEM, "LoRA adapters");
            break;
        }
        if (lin->hooks) {
            st = lp_error(LP_ERR_INVALID_ARG, "linear %s already has hooks", lin->name);
            break;
        }
        if (sel[i]) {
            st = lp_lora_new(&a->lora, lin->in, lin->out, lc, lp_lora_seed_for(lc->seed, lin->name), 1);
            if (st != LP_OK) break;
            lp_lora_set_training(a->lora, f->training);
        }
        if (quant) {
            st = lp_nf4_quantize(&a->nf4, lin->weight->data, lin->out, lin->in, f->setup.double_quant);
            if (st != LP_OK) {
                lp_error_context(st, "quantising %s", lin->weight->name);
                break;
            }
            lp_free(lin->weight->data);
            lin->weight->data = NULL;
            a->hooks.base_forward = lp_lora_hook_base_forward;
            a->hooks.base_backward = lp_lora_hook_base_backward;
        }
        a->target.nf4 = a->nf4;
        a->target.lora = a->lora;
        a->hooks.forward = lp_lora_hook_forward;
        a->hooks.backward = lp_lora_hook_backward;
        a->hooks.forward_ids = hook_forward_ids;
        a->hooks.backward_ids = hook_backward_ids;
        a->hooks.ctx = &a->target;
        lin->hooks = &a->hooks;
    }
    free(sel);
    return st;
}

/* Give an NF4 weight its fp32 storage back: deq(W) (used by merge and detach). */
static lp_status restore_fp32(lp_ft_adapter *a)
{
    if (!a->nf4) return LP_OK;
    lp_param *w = a->lin->weight;
    float *data = lp_alloc_array(LP_MEM_WEIGHTS, (size_t)w->numel, sizeof(float));
    if (!data) return lp_error_context(LP_ERR_NOMEM, "dequantising %s", w->name);
    lp_status st = lp_nf4_dequantize(data, a->nf4);
    if (st != LP_OK) {
        lp_free(data);
        return st;
    }
    w->data = data;
    lp_nf4_free(a->nf4);
    a->nf4 = NULL;
    a->target.nf4 = NULL;
    a->hooks.base_forward = NULL;
    a->hooks.base_backward = NULL;
    return LP_OK;
}

void lp_ft_detach_adapters(lp_ft_model *f)
{
    for (int i = 0; i < f->n_ad; i++) {
        lp_ft_adapter *a = &f->ad[i];
        if (a->lin && a->lin->hooks == &a->hooks) a->lin->hooks = NULL;
        lp_lora_free(a->lora);
        lp_nf4_free(a->nf4); /* the transformer frees its params; a NULL data is fine there */
        free(a->module);
    }
    free(f->ad);
    f->ad = NULL;
    f->n_ad = 0;
}

lp_status lp_ft_model_merge(lp_ft_model *f)
{
    static const char fn[] = "lp_ft_model_merge";
    if (!f) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL model", fn);
    if (f->setup.method == LP_FT_FULL || f->merged) return LP_OK;
    /* First give every NF4 weight fp32 storage (the only step that can fail
     * for want of memory), then add s B A: the model is never half merged. */
    for (int i = 0; i < f->n_ad; i++) LP_TRY(restore_fp32(&f->ad[i]));
    for (int i = 0; i < f->n_ad; i++) {
        lp_ft_adapter *a = &f->ad[i];
        if (a->lora) LP_TRY(lp_lora_merge(a->lora, a->lin->weight->data, 0));
        a->lin->hooks = NULL;
    }
    /* the adapters are part of the weights now; keep the head if it was trained */
    for (int i = 0; i < f->n_ad; i++) {
        lp_lora_free(f->ad[i].lora);
        f->ad[i].lora = NULL;
        f->ad[i].target.lora = NULL;
    }
    f->merged = 1;
    return lp_ft_rebuild_trainable(f);
}
