/* leanprop/trainer.h: the fine-tuning loop (full / LoRA / QLoRA, with or
 * without TokenTune) and the evaluations it and `leanprop eval` share.
 *
 * One optimizer step = `accum` micro-batches of `batch` sequences: each one
 * draws its token selection (TokenTune; seeded by (seed, micro-step) so a
 * resumed run redraws the same tokens), runs the forward with the selection
 * mask and grad_scale = 1/accum, and backward; then the gradient norm is
 * measured (and clipped, torch's clip_grad_norm_), a non-finite loss or norm
 * stops the run or skips the update (policy), the schedule sets the learning
 * rate, and AdamW updates every trainable tensor of the lp_ft_model (weight
 * decay only where lp_ft_tensor.decay; two moment buffers, LP_MEM_OPTIMIZER).
 * Sequences are visited in a seeded per-epoch permutation
 * (lp_data_epoch_order), continuously across epoch ends; the data position is
 * one counter. Everything a step depends on is therefore a pure function of
 * (seed, step, weights, moments), and the training state (trainable tensors,
 * moments, step, data position, LoRA dropout generation) written by
 * lp_trainer_save_state makes a resumed run reproduce the uninterrupted one
 * bit for bit (same thread count).
 *
 * The library never prints: the caller (the CLI) drives the loop, draws the
 * progress bar and writes the metrics log.
 *
 *   lp_trainer_config tc = lp_trainer_config_defaults();
 *   tc.batch = 8; tc.accum = 4; tc.steps = 300; tc.schedule.lr = 4e-4;
 *   lp_tokenselect_parse(&tc.select, "0.25");
 *   lp_token_subset tr = {&train, NULL, train.n}, va = {&val, NULL, val.n};
 *   lp_trainer *t;
 *   LP_TRY(lp_trainer_new(&t, ftmodel, &tr, &tc));        // ftmodel stays the caller's
 *   while (lp_trainer_step_index(t) < tc.steps) {
 *       lp_trainer_step_info si;
 *       LP_TRY(lp_trainer_step(t, &si));                   // si.loss, si.lr, si.grad_norm, ...
 *       if (si.step % 50 == 0) {
 *           lp_eval_result r; lp_trainer_evaluate(t, &va, &r);   // r.loss (exact: no selection)
 *           LP_TRY(lp_trainer_save_state(t, "out/state"));
 *       }
 *   }
 *   lp_trainer_free(t);
 */
#ifndef LEANPROP_TRAINER_H
#define LEANPROP_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/dataset.h"
#include "leanprop/finetune.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/nonfinite.h"
#include "leanprop/schedule.h"
#include "leanprop/status.h"
#include "leanprop/tokenselect.h"
#include "leanprop/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_TRAIN_LM = 0,     /* causal LM: next-token loss on trained (label != -100) tokens */
    LP_TRAIN_CLS,        /* sequence classification: lp_token_dataset.label per sequence */
    LP_TRAIN_MC,         /* multiple choice (evaluation only) */
    LP_TRAIN_TASK_COUNT
} lp_train_task;

/* "lm", "cls", "mc". */
const char *lp_train_task_name(lp_train_task t);
lp_status lp_train_task_parse(const char *s, lp_train_task *out);

/* Some sequences of a dataset: idx[0..n) (idx NULL = sequences 0..n-1). */
typedef struct {
    const lp_token_dataset *ds;
    const int64_t *idx;
    int64_t n;
} lp_token_subset;

typedef struct {
    lp_train_task task;               /* LM or CLS */
    int32_t batch;              /* sequences per micro-batch (default 8) */
    int32_t accum;              /* micro-batches per optimizer step (default 1) */
    int32_t max_len;            /* longer sequences are cut (counted in lp_trainer_stats); default 512 */
    int64_t steps;              /* optimizer steps of the run (> 0) */
    lp_schedule schedule;       /* lr, min_lr, warm-up, kind; total_steps 0 = steps */
    lp_adam_config adam;        /* AdamW betas/eps/weight decay (default torch's, wd 0.01) */
    float clip;                 /* max gradient norm; 0 = no clipping (the norm is still measured) */
    lp_tokenselect_config select;   /* TokenTune; mode ALL = ordinary fine-tuning */
    uint64_t seed;              /* data order and token selection */
    int32_t pad_id;             /* padding id (labels of padding are -100 anyway) */
    lp_nonfinite_policy on_nonfinite;
} lp_trainer_config;

/* LM, batch 8, accum 1, max_len 512, steps 100, cosine lr 1e-4 no warm-up,
 * AdamW torch defaults, clip 1.0, all tokens, seed 42, pad 0, stop. */
lp_trainer_config lp_trainer_config_defaults(void);
lp_status lp_trainer_config_validate(const lp_trainer_config *c);

typedef struct lp_trainer lp_trainer;

/* The model is borrowed (the caller frees it after the trainer); `train`
 * (with its dataset) must outlive the trainer. Allocates the optimizer state
 * (8 bytes per trainable value), the batch and the selection buffers. The
 * encoder variant of token selection follows the model (BERT). */
lp_status lp_trainer_new(lp_trainer **out, lp_ft_model *model, const lp_token_subset *train,
                         const lp_trainer_config *cfg);
void lp_trainer_free(lp_trainer *t);

typedef struct {
    int64_t step;           /* optimizer steps done (this one included) */
    double epoch;           /* sequences visited / training-set size */
    double loss;            /* mean of the micro-batch losses (over selected, counted positions) */
    double lr;              /* learning rate used */
    double grad_norm;       /* total norm before clipping */
    int64_t tokens;         /* real tokens through the forward */
    int64_t selected;       /* of which selected for gradients */
    int64_t targets;        /* positions the loss counted */
    double seconds;         /* wall time of the step */
    int skipped;            /* 1: non-finite, update dropped (policy skip) */
} lp_trainer_step_info;

/* One optimizer step. A non-finite loss or gradient norm: under STOP the step
 * fails with LP_ERR_NUMERIC ("step 12: non-finite gradient in
 * model.layers.0.mlp.up_proj.lora_A..."), parameters untouched; under SKIP the
 * update is dropped (step and data position still advance) and info->skipped = 1. */
lp_status lp_trainer_step(lp_trainer *t, lp_trainer_step_info *info);
int64_t lp_trainer_step_index(const lp_trainer *t);
lp_ft_model *lp_trainer_model(lp_trainer *t);
const lp_trainer_config *lp_trainer_get_config(const lp_trainer *t);

typedef struct {
    int64_t sequences_seen;     /* data position */
    int64_t tokens;             /* real tokens trained on */
    int64_t selected;           /* tokens selected for gradients */
    int64_t truncated;          /* sequences cut at max_len in batches */
    int64_t capped;             /* sequences shorter than the TokenTune k (all tokens trained) */
    int64_t skipped_steps;      /* non-finite steps skipped */
    double train_seconds;       /* sum of step times */
} lp_trainer_stats;

void lp_trainer_get_stats(const lp_trainer *t, lp_trainer_stats *out);

/* Evaluation of the model as it is now (eval mode, no token selection, no
 * gradients; training mode is restored after). */
typedef struct {
    double loss;            /* LM: token-weighted mean next-token loss; CLS: mean cross entropy */
    int64_t n_targets;      /* LM: counted positions; CLS: sequences */
    double accuracy;        /* CLS only (NaN for LM) */
    double macro_f1;        /* CLS only */
    double f1_positive;     /* CLS: binary F1 of class 1 (two classes), else NaN */
    double seconds;
} lp_eval_result;

lp_status lp_trainer_evaluate(lp_trainer *t, const lp_token_subset *data, lp_eval_result *out);

/* Training state: trainable tensors, AdamW moments and step count, data
 * position, LoRA dropout generation, counters and a fingerprint of the run
 * (method, trainable names and sizes, batch, accum, seed, selection). One
 * safetensors file `dir`/trainer_state.safetensors, written to a temporary
 * file and renamed (never half-written). */
lp_status lp_trainer_save_state(lp_trainer *t, const char *dir);
/* Restore it into a trainer built the same way (same model, method, data,
 * config): a mismatch of the fingerprint is LP_ERR_INVALID_ARG naming the
 * field. The run continues at the saved step. */
lp_status lp_trainer_load_state(lp_trainer *t, const char *dir);
/* Metadata value of a saved state ("step", "best_metric", ...) into buf; NULL
 * key lists nothing. For the CLI (e.g. the best validation so far). */
lp_status lp_trainer_state_peek(const char *dir, const char *key, char *buf, size_t size);
/* Extra metadata carried in the next save (e.g. "best_metric" = "2.1345"). */
lp_status lp_trainer_set_note(lp_trainer *t, const char *key, const char *value);

/* ------------------------------------------------ evaluations (also `leanprop eval`) */

/* LM loss over data (no selection, eval mode): token-weighted mean over
 * positions with a trained next token. batch sequences at a time, cut at max_len. */
lp_status lp_eval_lm(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len, int32_t pad_id,
                     lp_eval_result *out);
/* Classification: pred[i] (may be NULL) per sequence of data, loss, accuracy,
 * macro F1, F1 of class 1. */
lp_status lp_eval_cls(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len, int32_t pad_id,
                      int32_t n_classes, int32_t *pred, lp_eval_result *out);
/* Summed log-likelihood of each sequence's trained tokens (multiple-choice
 * requests from lp_mc_build_requests): loglik[i] for data sequence i. */
lp_status lp_eval_loglik(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len,
                         int32_t pad_id, double *loglik);

/* --------------------------------------------------------------- data */

/* Training and validation data from a file, as `leanprop finetune` reads it:
 *   LM  .txt            text corpus, windows of max_len, the last val_fraction held out
 *   LM  .jsonl/.json    instruction / prompt-response / text records (loss on responses)
 *   CLS .tsv/.csv/.jsonl {text, label}
 * With val_path, validation comes from that file (classification: with the
 * training file's label set); else (JSONL, CLS) a seeded split holds out
 * round(n * val_fraction) examples (the same file, fraction and seed give the
 * same split); val_fraction 0 = no validation. Loading reports go to rep
 * (training file) and val_rep (validation file; may be the same pointer). */
typedef struct {
    lp_token_dataset all;       /* the training file's sequences */
    lp_token_dataset val_file;  /* a separate validation file's (or the corpus tail) */
    int64_t *train_idx, *val_idx;
    lp_token_subset train, val; /* what to train on / validate on (val.n 0: none) */
    char **label_names;         /* CLS: label names (index order), LP_MEM_DATA */
    int32_t n_labels;
} lp_train_data;

typedef struct {
    lp_train_task task;
    const char *path;
    const char *val_path;       /* NULL: split / corpus tail */
    double val_fraction;        /* default LM .txt 0.1, others 0.2 (caller sets) */
    uint64_t split_seed;
    int32_t max_len;
    const char *labels;         /* CLS: fixed label list "ham,spam" or NULL */
    lp_data_options opt;        /* bad-input policies, field names */
} lp_train_data_spec;

lp_status lp_train_data_load(lp_train_data *out, const lp_train_data_spec *spec, const lp_text_encoder *enc,
                             lp_data_report *rep, lp_data_report *val_rep);
void lp_train_data_free(lp_train_data *d);

#ifdef __cplusplus
}
#endif
#endif
