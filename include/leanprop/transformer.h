/* leanprop/transformer.h: one config-driven transformer for GPT-2, the Llama
 * family (Llama, TinyLlama, SmolLM, Mistral, Qwen2) and BERT sequence
 * classification, matching Hugging Face transformers numerically.
 *
 * Parameters live in a named list (Hugging Face names, e.g.
 * "model.layers.0.self_attn.q_proj.weight"), so loading, saving, optimizers
 * and adapter targeting iterate over names. Every linear map is an
 * lp_nn_linear that knows its weight, optional bias, optional gradients
 * (NULL = frozen, nothing allocated) and an optional hook table through which
 * LoRA / QLoRA plug in. Weights are LP_MEM_WEIGHTS, gradients
 * LP_MEM_GRADIENTS (trainable parameters only), tensors kept for backward
 * LP_MEM_ACTIVATIONS, per-layer temporaries LP_MEM_SCRATCH.
 *
 * Token selection (TokenTune): the forward takes an optional per-sequence
 * mask of SELECTED positions. Every row is computed (forward values and the
 * loss are exact), but only the selected rows save what backward needs, the
 * final norm / LM head / loss run on selected rows only, and backward flows
 * through selected rows only: keys and values of unselected rows are
 * constants. With no mask (all selected) this is ordinary backpropagation.
 *
 *   lp_transformer *m;
 *   if (lp_transformer_load(&m, "fixtures/gpt2-tiny") != LP_OK) ... lp_error_message()
 *   lp_transformer_set_trainable(m, NULL, 1);          // gradients for every parameter
 *   lp_transformer_batch b = {.B = 2, .T = 16, .input_ids = ids, .labels = labels};
 *   lp_transformer_forward_opts o = {.need_grad = 1};
 *   float loss;
 *   lp_transformer_zero_grad(m);
 *   lp_transformer_forward(m, &b, &o, &loss);
 *   lp_transformer_backward(m);                        // grads += d loss / d param
 *   for (int i = 0; i < lp_transformer_n_params(m); i++) {
 *       lp_param *p = lp_transformer_param(m, i);       // p->name, p->data, p->grad
 *   }
 *   lp_transformer_save_hf(m, "out_dir", NULL);        // config.json + model.safetensors
 *   lp_transformer_free(m);
 */
#ifndef LEANPROP_TRANSFORMER_H
#define LEANPROP_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/rng.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- config */

typedef enum {
    LP_ARCH_GPT2 = 0,   /* LayerNorm, learned positions, tanh-GELU MLP, tied head, biases */
    LP_ARCH_LLAMA,      /* RMSNorm, RoPE, SwiGLU, grouped-query attention, untied or tied head */
    LP_ARCH_BERT,       /* post-LayerNorm encoder, exact GELU, token types, pooler + classifier */
    LP_ARCH_COUNT
} lp_arch;

/* What the model's head computes. */
typedef enum {
    LP_TASK_CAUSAL_LM = 0,  /* GPT-2 / Llama: LM head, next-token loss */
    /* Sequence classification. BERT: pooler + "classifier" on [CLS] (always).
     * GPT-2 / Llama (HF *ForSequenceClassification): a "score" linear
     * (num_labels, hidden), no bias, on the final-norm hidden state of each
     * sequence's LAST REAL token (the last position whose attention_mask is 1;
     * position T-1 without a mask, 0 for a row of padding only); no lm_head;
     * loss = mean cross entropy over the B sequences. */
    LP_TASK_SEQ_CLS
} lp_task;

typedef struct {
    lp_arch arch;
    char model_type[32];        /* HF model_type: gpt2, llama, mistral, qwen2, bert */
    int64_t vocab_size;
    int64_t hidden_size;        /* C */
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;         /* == n_heads except grouped-query attention */
    int64_t head_dim;           /* usually hidden_size / n_heads */
    int64_t intermediate_size;  /* MLP width */
    int64_t max_positions;      /* learned position rows (GPT-2, BERT); context limit (Llama) */
    int64_t type_vocab_size;    /* BERT token types */
    int64_t num_labels;         /* classifier outputs (LP_TASK_SEQ_CLS) */
    double norm_eps;
    double rope_theta;          /* Llama family */
    int tie_word_embeddings;    /* LM head shares the token embedding */
    int qkv_bias;               /* biases on the q, k, v projections */
    int o_bias;                 /* bias on the attention output projection */
    int mlp_bias;               /* biases on the MLP projections */
    int64_t bos_token_id, eos_token_id, pad_token_id;   /* -1 = none */
    lp_task task;               /* BERT: always LP_TASK_SEQ_CLS; GPT-2/Llama: from "architectures" */
} lp_transformer_config;

/* Defaults of an architecture (GPT-2 124M, a TinyLlama-shaped Llama,
 * bert-base with 2 labels); adjust fields, then lp_transformer_new. */
void lp_transformer_config_default(lp_transformer_config *cfg, lp_arch arch);

/* Parse a Hugging Face config.json text. `path` only names the file in
 * messages. Unknown model types, unsupported options (rope scaling, other
 * activations, ...) and inconsistent values are errors naming the key. */
lp_status lp_transformer_config_parse(lp_transformer_config *cfg, const char *json_text, const char *path);
/* Read and parse `path` (a config.json). */
lp_status lp_transformer_config_load(lp_transformer_config *cfg, const char *path);
/* Check internal consistency (positive sizes, heads divide, ...). */
lp_status lp_transformer_config_validate(const lp_transformer_config *cfg);
/* A config.json text Hugging Face loads for this config (malloc'd; free()).
 * torch_dtype names the stored dtype ("float32", "bfloat16", "float16"). */
lp_status lp_transformer_config_to_json(const lp_transformer_config *cfg, const char *torch_dtype, char **out);

/* ------------------------------------------------------- parameters, linear */

typedef enum {
    LP_PARAM_LINEAR = 0,    /* weight matrix of a linear map */
    LP_PARAM_BIAS,
    LP_PARAM_NORM,          /* LayerNorm / RMSNorm weight or bias (no weight decay, usually) */
    LP_PARAM_EMBEDDING
} lp_param_kind;

typedef struct {
    char name[96];          /* Hugging Face name */
    lp_param_kind kind;
    int ndim;
    int64_t shape[2];       /* shape as stored by Hugging Face */
    int64_t numel;
    int transposed;         /* HF stores (in, out) (GPT-2 Conv1D); `data` holds (out, in) */
    float *data;            /* LP_MEM_WEIGHTS (internal layout: linears (out, in)); NULL when an
                               adapter owns the storage (e.g. NF4) */
    float *grad;            /* LP_MEM_GRADIENTS, same layout as data; NULL = frozen */
} lp_param;

/* Copy a parameter (or, with grad = 1, its gradient) into dst[numel] in the
 * Hugging Face layout (transposing Conv1D weights). */
lp_status lp_param_copy_hf(const lp_param *p, float *dst, int grad);

/* Extension points of one linear map, for adapters (LoRA, QLoRA).
 * All dimensions: x (N, in), y (N, out). */
typedef struct {
    /* Base product y = x W^T (no bias) when the weight is not a float matrix
     * (NF4 dequantised on the fly). NULL: use weight->data. */
    lp_status (*base_forward)(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out);
    /* dx += dy W for such a weight (frozen: no weight gradient). */
    lp_status (*base_backward)(void *ctx, float *dx, const float *dy, int64_t N, int64_t in, int64_t out);
    /* y += delta(x), e.g. LoRA (alpha/r) (x A^T) B^T. NULL: no adapter. */
    lp_status (*forward)(void *ctx, float *y, const float *x, int64_t N, int64_t in, int64_t out);
    /* Given the same x rows the forward saw (only the rows that get gradients):
     * dx += d delta / dx, adapter gradients += ... */
    lp_status (*backward)(void *ctx, float *dx, const float *dy, const float *x, int64_t N, int64_t in,
                          int64_t out);
    /* The same with a stable id per row (its flat batch position b*T + t), so
     * per-row randomness such as dropout masks is regenerated exactly for the
     * subset of rows backward sees. Used instead of forward / backward when
     * set; ids may be NULL when the caller has none (then treat as absent). */
    lp_status (*forward_ids)(void *ctx, float *y, const float *x, const int64_t *ids, int64_t N, int64_t in,
                             int64_t out);
    lp_status (*backward_ids)(void *ctx, float *dx, const float *dy, const float *x, const int64_t *ids, int64_t N,
                              int64_t in, int64_t out);
    void *ctx;
} lp_linear_hooks;

typedef struct {
    char name[96];          /* HF module name, e.g. "model.layers.0.mlp.up_proj", "lm_head" */
    int64_t in, out;
    lp_param *weight;       /* (out, in) */
    lp_param *bias;         /* (out) or NULL */
    const lp_linear_hooks *hooks;   /* NULL = plain linear */
} lp_nn_linear;

/* x (N,in) -> y (N,out) = x W^T + b (+ adapter). */
lp_status lp_nn_linear_forward(const lp_nn_linear *l, float *y, const float *x, int64_t N);
/* dy (N,out), x (N,in) -> dx (N,in) += (dx may be NULL), weight->grad / bias->grad += when
 * not NULL, adapter gradients += . */
lp_status lp_nn_linear_backward(const lp_nn_linear *l, float *dx, const float *dy, const float *x, int64_t N);
/* The same with row ids (N) handed to forward_ids / backward_ids hooks (NULL = none).
 * The transformer passes b*T + t of every row it computes. */
lp_status lp_nn_linear_forward_ids(const lp_nn_linear *l, float *y, const float *x, const int64_t *ids, int64_t N);
lp_status lp_nn_linear_backward_ids(const lp_nn_linear *l, float *dx, const float *dy, const float *x,
                                    const int64_t *ids, int64_t N);

/* ------------------------------------------------------------------ model */

typedef struct lp_transformer lp_transformer;

/* Weights allocated (zero, norm weights one) for `cfg`, no gradients. */
lp_status lp_transformer_new(lp_transformer **out, const lp_transformer_config *cfg);
void lp_transformer_free(lp_transformer *m);
const lp_transformer_config *lp_transformer_get_config(const lp_transformer *m);

/* GPT-2 style initialisation: linear and embedding weights N(0, std), biases
 * zero, norm weights one. */
void lp_transformer_init_random(lp_transformer *m, uint64_t seed, float std);

int lp_transformer_n_params(const lp_transformer *m);
lp_param *lp_transformer_param(lp_transformer *m, int i);
/* By Hugging Face name; NULL if absent. */
lp_param *lp_transformer_find_param(lp_transformer *m, const char *name);
int64_t lp_transformer_count_params(const lp_transformer *m, int trainable_only);

int lp_transformer_n_linears(const lp_transformer *m);
lp_nn_linear *lp_transformer_linear(lp_transformer *m, int i);
lp_nn_linear *lp_transformer_find_linear(lp_transformer *m, const char *name);

/* Turn a GPT-2 / Llama causal LM into a sequence classifier (HF
 * *ForSequenceClassification): the LM head is dropped (its weight freed
 * unless tied to the embedding) and a "score" linear (num_labels, hidden),
 * no bias, is added with weights N(0, 0.02) from `seed` (HF's
 * initializer_range), frozen (no gradient). cfg.task becomes
 * LP_TASK_SEQ_CLS; the saved config.json then names the classification
 * architecture. num_labels >= 2. */
lp_status lp_transformer_add_cls_head(lp_transformer *m, int64_t num_labels, uint64_t seed);

/* Allocate (trainable = 1) or free (0) gradients of every parameter whose
 * name contains `name_substring` (NULL = all). */
lp_status lp_transformer_set_trainable(lp_transformer *m, const char *name_substring, int trainable);
/* Zero every allocated gradient. */
void lp_transformer_zero_grad(lp_transformer *m);

/* ------------------------------------------------------ forward, backward */

typedef struct {
    int64_t B, T;
    const int32_t *input_ids;       /* (B,T) */
    /* Causal LM: (B,T) in the Hugging Face convention (position t is scored on
     * labels[t+1]; -100 = ignored). Sequence classification (BERT, decoders
     * with LP_TASK_SEQ_CLS): (B) class indices (-100 = ignored). NULL = no loss. */
    const int32_t *labels;
    const uint8_t *attention_mask;  /* (B,T) 1 = token, 0 = padding; NULL = all tokens */
    const int32_t *token_type_ids;  /* (B,T) BERT; NULL = all 0 */
    /* (B,T) 1 = the row gets gradients (TokenTune); NULL = every row. BERT
     * always adds [CLS] (position 0), a decoder classifier each sequence's
     * last real token (the head's row). */
    const uint8_t *selected;
} lp_transformer_batch;

typedef struct {
    int need_grad;      /* save what lp_transformer_backward needs */
    /* Optional output. Causal LM: logits of the head rows, (R, V) with R = the
     * selected rows in (b, t) order (B*T rows without a mask). Sequence
     * classification: (B, num_labels). */
    float *logits;
    /* Multiplies the loss gradient (e.g. 1/accumulation steps); 0 means 1. */
    float grad_scale;
} lp_transformer_forward_opts;

/* Run the model. Loss (when labels are given): causal LM: mean next-token
 * cross entropy over selected positions t < T-1 whose labels[t+1] != -100 (0
 * when none count); BERT: mean cross entropy of the classifier. With
 * need_grad, the LM head / classifier gradient is accumulated here already
 * (fused, as llm.c does: the (R, V) logit gradient never exists in full) and
 * the rest by lp_transformer_backward. B and T may change between calls. */
lp_status lp_transformer_forward(lp_transformer *m, const lp_transformer_batch *batch,
                                 const lp_transformer_forward_opts *opts, float *loss);
/* Gradients of the last need_grad forward's loss += into every allocated
 * gradient (and adapters' through their hooks). Frees the saved activations. */
lp_status lp_transformer_backward(lp_transformer *m);
/* Rows of the last forward's head output (selected rows), and how many
 * positions the loss counted. */
int64_t lp_transformer_last_rows(const lp_transformer *m);
int64_t lp_transformer_last_count(const lp_transformer *m);

/* Release saved activations and scratch (they are re-allocated on demand). */
void lp_transformer_release_buffers(lp_transformer *m);

/* Exact bytes of saved activations (LP_MEM_ACTIVATIONS) and of scratch
 * (LP_MEM_SCRATCH) a forward with need_grad allocates for B sequences of T
 * tokens with `n_selected` selected rows in total (B*T without a mask). */
typedef struct {
    size_t activations;
    size_t scratch;
} lp_transformer_mem_plan;
lp_status lp_transformer_plan_memory(const lp_transformer_config *cfg, int64_t B, int64_t T, int64_t n_selected,
                                     lp_transformer_mem_plan *out);

/* ----------------------------------------------------------- load, save */

/* Load a model: a Hugging Face directory (config.json + model.safetensors or
 * sharded model.safetensors.index.json), an llm.c GPT-2 checkpoint (.bin with
 * magic 20240326) or a llama2.c checkpoint (.bin). F32/F16/BF16 converted. */
lp_status lp_transformer_load(lp_transformer **out, const char *path);
lp_status lp_transformer_load_hf(lp_transformer **out, const char *dir);

typedef struct {
    const char *dtype;          /* "f32" (default), "f16", "bf16" */
    size_t max_shard_bytes;     /* 0 = one model.safetensors; else shards + index */
} lp_transformer_save_opts;

/* Write config.json and model.safetensors (or shards + index) under `dir`
 * (created if missing) with Hugging Face names and layouts. opts may be NULL. */
lp_status lp_transformer_save_hf(const lp_transformer *m, const char *dir, const lp_transformer_save_opts *opts);

/* --------------------------------------------------------------- decode */

typedef struct lp_kv_cache lp_kv_cache;

/* Cache for one sequence of up to max_len positions (LP_MEM_ACTIVATIONS). */
lp_status lp_kv_cache_new(lp_kv_cache **out, const lp_transformer *m, int64_t max_len);
void lp_kv_cache_free(lp_kv_cache *c);
int64_t lp_kv_cache_len(const lp_kv_cache *c);
void lp_kv_cache_reset(lp_kv_cache *c);

/* Feed n tokens after the cached ones (causal models); logits (V) of the last
 * one into logits_last. */
lp_status lp_transformer_decode(lp_transformer *m, lp_kv_cache *c, const int32_t *ids, int64_t n,
                                float *logits_last);

typedef struct {
    float temperature;  /* 0 = greedy (argmax) */
    float top_p;        /* nucleus mass in (0,1]; 1 (or 0) = off */
    uint64_t seed;
} lp_sampler_opts;

/* Next token from logits (V): greedy (temperature 0), or a draw from
 * softmax(logits / temperature) restricted to the smallest set of most likely
 * tokens whose mass reaches top_p. */
lp_status lp_sample_token(int32_t *out, const float *logits, int64_t V, const lp_sampler_opts *o, lp_rng *rng);

/* prompt (n_prompt >= 1 ids) -> out[0..*n_out) generated ids (without the
 * prompt), at most max_new, stopping after eos (cfg.eos_token_id, included)
 * when stop_at_eos. */
lp_status lp_transformer_generate(lp_transformer *m, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                                  const lp_sampler_opts *o, int stop_at_eos, int32_t *out, int64_t *n_out);

#ifdef __cplusplus
}
#endif
#endif
