/* leanprop/lora.h: LoRA adapters (Hu et al. 2021) with PEFT's semantics, and
 * the hooks that plug them (and NF4 base weights, i.e. QLoRA) into a linear map.
 *
 * One adapter belongs to one linear layer y = x W^T (+ b), W (OC, C):
 *   y += s * (drop(x) A^T) B^T,   A (r, C), B (OC, r),
 *   s = alpha / r   (alpha / sqrt(r) with use_rslora),
 * drop = inverted dropout on the adapter input (kept values times 1/(1-p)),
 * only in training mode, as PEFT's lora_dropout. PEFT's default initialisation:
 * A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(C), 1/sqrt(C)), B = 0, so a new
 * adapter changes nothing until trained. The base W stays frozen: it gets no
 * gradient and no optimizer state (the caller allocates none for it).
 *
 * Memory (exact): A and B are LP_MEM_WEIGHTS, 4 r (C + OC) bytes; dA, dB the
 * same in LP_MEM_GRADIENTS. The adapter saves NOTHING for backward: backward
 * gets the layer input x (which the layer saves anyway) and recomputes the
 * (N, r) product drop(x) A^T, 2 N C r flops, cheaper than keeping it.
 * Temporaries are LP_MEM_SCRATCH: (N, r) floats, plus with dropout a row
 * chunk of at most LP_LORA_CHUNK_BYTES.
 *
 * Dropout masks need no storage either: the mask of an element is a hash of
 * (seed, step, row, column), so a backward that receives only some of the
 * forward's rows (TokenTune) regenerates exactly their masks. The row is
 * identified by a caller-given id (the _ids functions, e.g. b*T + t) or, by
 * default, by its bit pattern; the latter needs the backward's x rows to be
 * bit-identical to the forward's (true when they are saved, or recomputed by
 * the same float operations), and gives bit-identical rows of one step the
 * same mask (PEFT draws them independently). `step` advances at the first
 * training forward after a backward (or with lp_lora_next_step): all forwards
 * between two backwards share it.
 *
 *   lp_lora_config cfg;
 *   lp_lora_config_default(&cfg);                     // r 8, alpha 8, dropout 0 (PEFT's)
 *   cfg.r = 8; cfg.alpha = 16; cfg.dropout = 0.05f;
 *   lp_lora_config_set_targets(&cfg, "q_proj,v_proj");
 *   if (lp_lora_config_matches(&cfg, "model.layers.0.self_attn.q_proj")) {
 *       lp_lora *L;
 *       LP_TRY(lp_lora_new(&L, C, OC, &cfg, lp_lora_seed_for(cfg.seed, name), 1));
 *       lp_linear_forward(y, x, W, b, N, C, OC);   // base
 *       lp_lora_forward(L, y, x, N);               // y += s * drop(x) A^T B^T
 *       lp_lora_backward(L, dx, dy, x, N);         // dA, dB, dx +=
 *       lp_lora_merge(L, W, 0);                    // W += s B A (for export / inference)
 *       lp_lora_free(L);
 *   }
 *
 * Plugging into leanprop's transformer (lp_linear_hooks in transformer.h; the
 * function signatures below match its members):
 *   lp_lora_target t = {.nf4 = q_or_NULL, .lora = L};
 *   hooks.base_forward = q ? lp_lora_hook_base_forward : NULL;   // QLoRA: NF4 base
 *   hooks.base_backward = q ? lp_lora_hook_base_backward : NULL;
 *   hooks.forward = lp_lora_hook_forward; hooks.backward = lp_lora_hook_backward;
 *   hooks.ctx = &t;
 */
#ifndef LEANPROP_LORA_H
#define LEANPROP_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/nf4.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_LORA_MAX_TARGETS 32
#define LP_LORA_NAME_MAX 128      /* one target / exclude name, incl. NUL */
#define LP_LORA_REGEX_MAX 512     /* the string (regular expression) form, incl. NUL */
#define LP_LORA_CHUNK_BYTES (256u * 1024u)

/* init_lora_weights, as PEFT's option of that name. */
enum {
    LP_LORA_INIT_RANDOM = 0,    /* PEFT false: nn.Linear's default for both, A U(+-1/sqrt(C)), B U(+-1/sqrt(r)) */
    LP_LORA_INIT_DEFAULT = 1,   /* PEFT true: A U(+-1/sqrt(C)) (kaiming_uniform, a = sqrt(5)), B = 0 */
    LP_LORA_INIT_GAUSSIAN = 2,  /* PEFT "gaussian": A N(0, 1/r), B = 0 */
};

typedef struct {
    int r;                      /* rank > 0 */
    float alpha;                /* lora_alpha */
    float dropout;              /* lora_dropout in [0, 1) */
    int use_rslora;             /* scaling alpha / sqrt(r) instead of alpha / r */
    int fan_in_fan_out;         /* base weights stored (in, out) (GPT-2 Conv1D); PEFT records it */
    int init_lora_weights;      /* LP_LORA_INIT_* */
    /* Targets, PEFT's rules: the list form matches a module whose name equals
     * a target or ends with "." + target; the string form (target_regex, when
     * non-empty) is a regular expression that must match the whole name, or
     * "all-linear" (every linear module except the output layer lm_head). */
    int n_targets;
    char targets[LP_LORA_MAX_TARGETS][LP_LORA_NAME_MAX];
    char target_regex[LP_LORA_REGEX_MAX];
    /* Excluded modules, same two forms (PEFT exclude_modules). */
    int n_exclude;
    char exclude[LP_LORA_MAX_TARGETS][LP_LORA_NAME_MAX];
    char exclude_regex[LP_LORA_REGEX_MAX];
    char base_model[512];       /* base_model_name_or_path ("" = null) */
    char task_type[32];         /* "CAUSAL_LM", "SEQ_CLS", ... ("" = null) */
    uint64_t seed;              /* initialisation and dropout seeds derive from it */
} lp_lora_config;

/* PEFT's defaults: r 8, alpha 8, dropout 0, init default, no targets. */
void lp_lora_config_default(lp_lora_config *cfg);
/* Comma-separated target list ("q_proj, v_proj"); "all-linear" selects the
 * string form. Replaces the current targets. */
lp_status lp_lora_config_set_targets(lp_lora_config *cfg, const char *list);
/* String form: a regular expression (PCRE2, whole-name match like Python's
 * re.fullmatch), checked for syntax here. */
lp_status lp_lora_config_set_target_regex(lp_lora_config *cfg, const char *regex);
/* Same for exclude_modules: comma list / regular expression. */
lp_status lp_lora_config_set_exclude(lp_lora_config *cfg, const char *list);
lp_status lp_lora_config_set_exclude_regex(lp_lora_config *cfg, const char *regex);
/* r > 0, alpha > 0 finite, 0 <= dropout < 1, some target, valid regexes. */
lp_status lp_lora_config_validate(const lp_lora_config *cfg);
/* alpha / r, or alpha / sqrt(r) with use_rslora. */
float lp_lora_config_scaling(const lp_lora_config *cfg);
/* 1 if the module (e.g. "model.layers.0.self_attn.q_proj") gets an adapter. */
int lp_lora_config_matches(const lp_lora_config *cfg, const char *module);
/* Check the targets against the model's linear modules: each list target must
 * match some module (else LP_ERR_NOT_FOUND naming the target and an example
 * module name), a regex at least one. selected (n, may be NULL) receives 1 per
 * targeted module, *n_selected (may be NULL) their count. "all-linear" is
 * replaced by the list of the selected modules' last name components (as PEFT
 * saves it). */
lp_status lp_lora_config_resolve(lp_lora_config *cfg, const char *const *modules, int n, uint8_t *selected,
                                 int *n_selected);
/* Comma-separated target list for a Hugging Face model_type: PEFT's default
 * (all_linear = 0: llama/mistral/qwen2 "q_proj,v_proj", gpt2 "c_attn", bert
 * "query,value") or every linear map of the blocks (all_linear = 1: llama
 * "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", gpt2
 * "c_attn,c_proj,c_fc", bert "query,key,value,dense"). NULL if unknown. */
const char *lp_lora_targets_for(const char *model_type, int all_linear);
/* Per-module seed: a hash of the config seed and the module name. */
uint64_t lp_lora_seed_for(uint64_t seed, const char *module);

typedef struct lp_lora {
    int64_t C, OC;      /* in and out features of the adapted linear */
    int r;
    float alpha, scaling, dropout;
    float *A;           /* (r, C) LP_MEM_WEIGHTS */
    float *B;           /* (OC, r) LP_MEM_WEIGHTS */
    float *dA, *dB;     /* LP_MEM_GRADIENTS; NULL when created without gradients */
    int training;       /* dropout active (default 1; lp_lora_set_training) */
    int merged;         /* W holds + s B A: forward adds nothing, backward refuses */
    uint64_t seed;      /* dropout stream */
    uint64_t step;      /* dropout mask generation */
    int advance;        /* internal: a backward ran since the last forward */
} lp_lora;

/* New adapter for W (OC, C), rank and scaling from cfg, initialised by
 * cfg->init_lora_weights from `seed`; dA, dB allocated (zero) if with_grads. */
lp_status lp_lora_new(lp_lora **out, int64_t C, int64_t OC, const lp_lora_config *cfg, uint64_t seed,
                      int with_grads);
void lp_lora_free(lp_lora *L);
void lp_lora_zero_grad(lp_lora *L);
void lp_lora_set_training(lp_lora *L, int training);
/* Start a new dropout mask generation now. */
void lp_lora_next_step(lp_lora *L);
/* Exact bytes of A + B (weights) and of dA + dB (gradients). */
size_t lp_lora_weight_bytes(const lp_lora *L);
size_t lp_lora_grad_bytes(const lp_lora *L);

/* x (N,C), out (N,OC) -> out += s * (drop(x) A^T) B^T. Nothing is saved. */
lp_status lp_lora_forward(lp_lora *L, float *out, const float *x, int64_t N);
/* dout (N,OC), x (N,C) = the rows (any subset, any order) of a forward since
 * the last backward -> dA (r,C) += , dB (OC,r) += , dx (N,C) += (dx may be
 * NULL; dA, dB skipped when not allocated). */
lp_status lp_lora_backward(lp_lora *L, float *dx, const float *dout, const float *x, int64_t N);
/* The same with a row id per row (ids (N), >= 0) keying the dropout masks
 * instead of the row contents; pass the same ids to forward and backward. */
lp_status lp_lora_forward_ids(lp_lora *L, float *out, const float *x, const int64_t *ids, int64_t N);
lp_status lp_lora_backward_ids(lp_lora *L, float *dx, const float *dout, const float *x, const int64_t *ids,
                               int64_t N);
/* mask (N,C) = 1 where the next forward / backward keeps x[n][c] (all 1 in
 * eval mode or with p = 0); ids as above or NULL. For tests and debugging. */
lp_status lp_lora_dropout_mask(const lp_lora *L, uint8_t *mask, const float *x, const int64_t *ids, int64_t N);

/* W += s B A, then L->merged = 1. W is (OC,C), or with fan_in_fan_out stored
 * (C,OC): the flag describes the buffer passed (leanprop's transformer keeps
 * GPT-2 Conv1D weights as (out, in), so pass 0 for its data even though the
 * PEFT config of a GPT-2 adapter says fan_in_fan_out: true). Unmerge
 * subtracts it again (exact up to float rounding). */
lp_status lp_lora_merge(lp_lora *L, float *W, int fan_in_fan_out);
lp_status lp_lora_unmerge(lp_lora *L, float *W, int fan_in_fan_out);
/* QLoRA export: *q (OC,C) NF4 -> a new NF4 of deq(W) + s B A (requantised,
 * as PEFT merges into bitsandbytes 4-bit layers; lossy). *q is replaced. */
lp_status lp_lora_merge_nf4(lp_lora *L, lp_nf4 **q);

/* Context of the hooks below: an NF4 base weight (QLoRA) and/or an adapter. */
typedef struct {
    const lp_nf4 *nf4;  /* base weight in NF4, or NULL */
    lp_lora *lora;      /* adapter, or NULL */
} lp_lora_target;

/* ctx = lp_lora_target*. x (N,in) -> y (N,out) = x deq(W)^T (overwrites y). */
lp_status lp_lora_hook_base_forward(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out);
/* dy (N,out) -> dx (N,in) += dy deq(W). */
lp_status lp_lora_hook_base_backward(void *ctx, float *dx, const float *dy, int64_t N, int64_t in, int64_t out);
/* y += adapter(x); no-op without an adapter. */
lp_status lp_lora_hook_forward(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out);
/* Adapter backward (dx may be NULL); no-op without an adapter. */
lp_status lp_lora_hook_backward(void *ctx, float *dx, const float *dy, const float *x, int64_t N, int64_t in,
                                int64_t out);

#ifdef __cplusplus
}
#endif
#endif
