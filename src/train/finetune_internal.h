/* Internal to src/train/finetune_*.c: the lp_ft_model struct. */
#ifndef LEANPROP_FINETUNE_INTERNAL_H
#define LEANPROP_FINETUNE_INTERNAL_H

#include "leanprop/finetune.h"
#include "leanprop/lora.h"
#include "leanprop/nf4.h"
#include "leanprop/peft.h"
#include "leanprop/transformer.h"

/* One adapted (lora) and/or NF4-quantised (nf4, QLoRA) linear map. */
typedef struct {
    char *module;           /* HF module name, "model.layers.0.self_attn.q_proj" */
    lp_nn_linear *lin;      /* the transformer's linear */
    lp_lora *lora;          /* adapter (NULL once merged) */
    lp_lora_target target;  /* hook context: nf4 (QLoRA) and lora */
    lp_linear_hooks hooks;
    lp_nf4 *nf4;            /* QLoRA: the quantised base weight (owned) */
} lp_ft_adapter;

struct lp_ft_model {
    lp_transformer *m;
    lp_ft_setup setup;
    char *full_only;        /* owned copy of setup.full_only */
    int training;
    int merged;             /* adapters merged into the base: a plain model now */
    int n_ad;
    lp_ft_adapter *ad;
    int n_tr, cap_tr;
    lp_ft_tensor *tr;
    char **tr_names;
};

/* finetune_model.c */
lp_status lp_ft_rebuild_trainable(lp_ft_model *f);
/* Entries with an adapter. */
int lp_ft_n_loras(const lp_ft_model *f);
/* finetune_lora.c: create adapters (and NF4 weights for QLoRA) on the
 * linears f->setup.lora targets (resolved in place: default targets for the
 * model type, fan_in_fan_out, task_type, all-linear expanded). */
lp_status lp_ft_attach_adapters(lp_ft_model *f);
void lp_ft_detach_adapters(lp_ft_model *f);
/* Fill defaults of lc for model m and resolve its targets against m's linears
 * (selected: one flag per linear, may be NULL). */
lp_status lp_ft_resolve_lora_config(lp_lora_config *lc, const lp_transformer *m, int *n_selected, uint8_t *selected);
/* 1 for output layers (lm_head, score, BERT classifier). */
int lp_ft_is_head_module(const lp_transformer *m, const char *module);
/* 1 for sequence classifiers (BERT, or a decoder with a "score" head). */
int lp_ft_is_classifier(const lp_transformer *m);
/* Defaults of lc for a model of config c (targets from the model type,
 * fan_in_fan_out for GPT-2, task_type) and its targets resolved against the
 * linear module names (selected: one flag per name, may be NULL). */
lp_status lp_ft_resolve_targets(lp_lora_config *lc, const lp_transformer_config *c, const char *const *names, int n,
                                uint8_t *selected, int *n_selected);

/* finetune_memplan.c: the parameter and linear lists lp_transformer_new
 * builds for a config, without allocating the model. */
typedef struct {
    char name[96];
    int64_t numel;
    lp_param_kind kind;
} lp_ft_layout_param;
typedef struct {
    char name[96];
    int64_t in, out;
    int own_weight;         /* 0: weight tied to the embedding */
    int weight, bias;       /* indices into params, -1 = none */
} lp_ft_layout_linear;
typedef struct {
    int n_params, n_linears;
    lp_ft_layout_param *params;
    lp_ft_layout_linear *linears;
} lp_ft_layout;
lp_status lp_ft_layout_build(lp_ft_layout *L, const lp_transformer_config *c);
void lp_ft_layout_free(lp_ft_layout *L);

/* finetune_peft.c */
lp_status lp_ft_save_adapter(const lp_ft_model *f, const char *dir);

#endif
