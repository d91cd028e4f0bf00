/* Internal layout of lp_trainer, shared by trainer.c and trainer_state.c. */
#ifndef LEANPROP_TRAINER_INTERNAL_H
#define LEANPROP_TRAINER_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "leanprop/trainer.h"

#define LP_TRAINER_MAX_NOTES 16
#define LP_TRAINER_NOTE_KEY 48
#define LP_TRAINER_NOTE_VAL 256

struct lp_trainer {
    lp_ft_model *f;
    lp_transformer *m;
    lp_trainer_config cfg;
    lp_token_subset train;
    int n_tensors;
    int64_t *offset;        /* (n_tensors) slice of its group's moments */
    uint8_t *group;         /* (n_tensors) 0 = weight decay, 1 = none */
    float **grads;          /* (n_tensors) for clipping */
    int64_t *sizes;
    lp_adam *adam[2];
    int64_t adam_n[2];
    lp_batch batch;
    lp_token_selection sel;
    uint8_t *amask;         /* (batch, max_len) attention mask */
    int64_t *perm;          /* (train.n) visiting order of epoch perm_epoch */
    int64_t perm_epoch;
    int64_t *idx;           /* (batch) dataset indices of the current micro-batch */
    int64_t step;           /* optimizer steps done */
    int64_t cursor;         /* sequences consumed */
    lp_trainer_stats stats;
    int n_notes;
    char note_key[LP_TRAINER_MAX_NOTES][LP_TRAINER_NOTE_KEY];
    char note_val[LP_TRAINER_MAX_NOTES][LP_TRAINER_NOTE_VAL];
};

const uint8_t *lp_trainer__attention_mask(uint8_t *buf, const lp_batch *b);

#endif
