/* leanprop/finetune.h: a transformer set up for one fine-tuning method
 * (full, LoRA, QLoRA), its trainable tensors, saving/loading what it
 * trains, and the memory planner.
 *
 * CONTRACT between the model side (lp_ft_model, lp_ft_plan_memory) and the
 * training loop / CLI (`leanprop finetune`, `eval`, `memplan`).
 *
 *   lp_transformer *m;  LP_TRY(lp_transformer_load(&m, "model_dir"));
 *   lp_ft_setup s;  lp_ft_setup_default(&s, LP_FT_LORA);
 *   lp_lora_config_set_targets(&s.lora, "q_proj,v_proj");
 *   lp_ft_model *f;  LP_TRY(lp_ft_model_new(&f, m, &s));       // takes ownership of m
 *   lp_transformer *t = lp_ft_model_transformer(f);            // forward/backward as usual
 *   for (int i = 0; i < lp_ft_model_n_trainable(f); i++) {
 *       lp_ft_tensor p = lp_ft_model_trainable(f, i);           // name, data, grad, numel
 *   }
 *   LP_TRY(lp_ft_model_save(f, "out"));     // LoRA/QLoRA: PEFT adapter dir; full: HF model dir
 *   lp_ft_model_free(f);                    // frees the transformer too
 */
#ifndef LEANPROP_FINETUNE_H
#define LEANPROP_FINETUNE_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/alloc.h"
#include "leanprop/lora.h"
#include "leanprop/status.h"
#include "leanprop/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LP_FT_FULL = 0, LP_FT_LORA, LP_FT_QLORA, LP_FT_METHOD_COUNT } lp_ft_method;

const char *lp_ft_method_name(lp_ft_method m);            /* "full", "lora", "qlora" */
lp_status lp_ft_method_parse(const char *s, lp_ft_method *out);

typedef struct {
    lp_ft_method method;
    lp_lora_config lora;        /* LoRA / QLoRA: rank, alpha, dropout, targets, seed */
    int double_quant;           /* QLoRA: double-quantise the NF4 absmax values (default 1) */
    const char *full_only;      /* full: train only parameters whose name contains this (NULL = all) */
    /* LoRA / QLoRA on a sequence classifier (BERT "classifier", decoder
     * "score"): also train the head in full, as PEFT's SEQ_CLS task does
     * (modules_to_save; saved in the adapter). 1 = yes, 0 = no, -1 (default) =
     * yes when the model is a classifier. Ignored by full fine-tuning. */
    int train_head;
} lp_ft_setup;

/* Defaults per method (LoRA: r 8, alpha 16, dropout 0.05, double_quant 1,
 * train_head -1; no targets here: lp_ft_model_new then uses PEFT's default
 * targets for the model type, lp_lora_targets_for(model_type, 0), e.g.
 * "q_proj,v_proj" for Llama, "c_attn" for GPT-2, "query,value" for BERT). */
void lp_ft_setup_default(lp_ft_setup *s, lp_ft_method method);
/* Defaults for `method` (lora or qlora) with s->lora read from a PEFT
 * adapter dir's adapter_config.json (rank, alpha, dropout, targets, ...;
 * modules_to_save of a classification head sets train_head = 1). Then
 * lp_ft_model_new + lp_ft_model_load_adapter load the weights. */
lp_status lp_ft_setup_from_adapter(lp_ft_setup *s, lp_ft_method method, const char *dir);

typedef struct lp_ft_model lp_ft_model;

/* Attach the method to `m` (ownership passes to the lp_ft_model, also on
 * failure): full -> gradients for the trainable parameters; LoRA -> frozen
 * base (no gradients), adapters with gradients on every targeted linear (a
 * target matching nothing is an error); QLoRA -> as LoRA, and the base
 * weight of EVERY linear map of the blocks (adapted or not, as bitsandbytes'
 * load_in_4bit does) quantised to NF4 and its fp32 copy freed; output layers
 * (lm_head, score, classifier) and embeddings keep fp32 weights, as
 * bitsandbytes leaves lm_head unquantised. Any gradients m had are freed
 * first. */
lp_status lp_ft_model_new(lp_ft_model **out, lp_transformer *m, const lp_ft_setup *s);
void lp_ft_model_free(lp_ft_model *f);
lp_transformer *lp_ft_model_transformer(lp_ft_model *f);
const lp_ft_setup *lp_ft_model_setup(const lp_ft_model *f);

typedef struct {
    const char *name;           /* HF name, or PEFT in-memory name "...lora_A.default.weight" */
    float *data, *grad;
    int64_t numel;
    int decay;                  /* 1 if weight decay applies (not biases/norms) */
} lp_ft_tensor;

int lp_ft_model_n_trainable(const lp_ft_model *f);
lp_ft_tensor lp_ft_model_trainable(lp_ft_model *f, int i);
int64_t lp_ft_model_trainable_numel(const lp_ft_model *f);
void lp_ft_model_zero_grad(lp_ft_model *f);
/* Training mode on/off (LoRA dropout). */
void lp_ft_model_set_training(lp_ft_model *f, int training);

/* Save what is trained: LoRA/QLoRA -> PEFT adapter dir (adapter_config.json +
 * adapter_model.safetensors); full -> HF model dir. */
lp_status lp_ft_model_save(const lp_ft_model *f, const char *dir);
/* Load a PEFT adapter dir into a LoRA/QLoRA model: its targets must select
 * exactly the adapted modules and its rank must equal ours; the adapter's
 * alpha (scaling) is adopted; every tensor in the file must be used. */
lp_status lp_ft_model_load_adapter(lp_ft_model *f, const char *dir);
/* Merge adapters into the base weights and return to a plain model (no
 * adapters, no hooks; a trained head stays trainable); lp_ft_model_save then
 * writes an HF model dir. LoRA: W += s B A in fp32. QLoRA: W = deq(NF4) +
 * s B A in fp32, i.e. the NF4 weight is dequantised (weights memory grows back
 * to fp32) and not requantised: the merged model computes what the QLoRA
 * model computed, without a second rounding (lp_lora_merge_nf4 is the
 * requantising alternative). */
lp_status lp_ft_model_merge(lp_ft_model *f);

/* Memory plan: the peak bytes per category of one training step (forward
 * with need_grad + backward + optimizer update) in steady state (optimizer
 * state allocated, the transformer's scratch grown), predicted from the config
 * without allocating the model, exactly as lp_alloc counts them:
 *   weights      every parameter fp32, except QLoRA's block linears: NF4
 *                (lp_nf4_bytes_for; output layers stay fp32); + LoRA A, B
 *                (4 r (in + out) per adapted linear)
 *   gradients    4 bytes per trainable float: full = every parameter (or the
 *                full_only ones); LoRA/QLoRA = A, B (+ the head with train_head)
 *   optimizer    per trainable float: adamw / adam 8 (m, v), sgd 4 (momentum),
 *                sgd0 / none 0; the optimizer object itself (tens of bytes)
 *                is not counted
 *   activations  lp_transformer_plan_memory's saved tensors (LoRA saves nothing)
 *   scratch      lp_transformer_plan_memory's scratch + the largest temporary
 *                of one call: attention rows (threads x T (D+1) floats forward,
 *                twice that backward), RoPE's D/2 floats, LoRA's (rows, r)
 *                products and dropout chunks (dropout > 0: training mode),
 *                NF4 tiles (lp_nf4_scratch_bytes)
 *   data         one lp_batch of (B, T) (lp_batch_init: 8 B T + 16 B) and,
 *                when n_selected < B T, one lp_token_selection
 *                (lp_tokenselect_init: 4 (B+1) + 5 B T); the data set's own
 *                buffers are not included
 * total_peak = the sum (all categories hold their peak together while the
 * largest temporary lives). n_selected: rows that get gradients, including
 * the forced ones (BERT [CLS], a decoder classifier's last token); B*T for
 * all. Model-setup transients (loading, NF4 quantisation) are not part of a
 * step. The formulas: docs/FINETUNE_MODEL.md. */
typedef struct {
    size_t peak[LP_MEM_COUNT];
    size_t total_peak;
    /* details */
    int64_t params;             /* parameters of the model */
    int64_t trainable;          /* trainable floats */
    size_t lora_weights;        /* bytes of all A, B */
    size_t nf4_weights;         /* bytes of all NF4 weights */
    int n_adapters, n_nf4;      /* adapted linears, NF4-quantised linears */
    size_t scratch_transient;   /* the largest in-call temporary (part of peak[LP_MEM_SCRATCH]) */
} lp_mem_plan;

/* setup s as for lp_ft_model_new (targets resolved against the config's
 * linear names: a target matching nothing is an error); optimizer: "adamw"
 * (NULL), "adam", "sgd", "sgd0", "none". Uses the calling thread's OpenMP
 * thread count (omp_get_max_threads) for attention's per-thread rows. */
lp_status lp_ft_plan_memory(const lp_transformer_config *cfg, const lp_ft_setup *s, int64_t B, int64_t T,
                            int64_t n_selected, const char *optimizer, lp_mem_plan *out);
/* The same for a run with `threads` OpenMP threads (<= 0: the current count). */
lp_status lp_ft_plan_memory_ex(const lp_transformer_config *cfg, const lp_ft_setup *s, int64_t B, int64_t T,
                               int64_t n_selected, const char *optimizer, int threads, lp_mem_plan *out);

#ifdef __cplusplus
}
#endif
#endif
