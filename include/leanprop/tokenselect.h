/* leanprop/tokenselect.h: TokenTune token selection.
 *
 * TokenTune trains through a subset of token positions per sequence: every
 * token is computed in the forward pass, but only the selected ones save
 * activations and receive gradients. This module decides WHICH positions, per
 * sequence of a batch, redrawn every step and shared by every layer.
 *
 * Rules (decoder, the default):
 *   - position 0 and the last real token (len_b - 1) are always selected;
 *   - the rest is drawn uniformly without replacement from the interior
 *     1 .. len_b-2, so a sequence gets EXACTLY k_b positions;
 *   - padding (positions >= len_b) is never selected and never counted;
 *   - LP_TOKENSELECT_COUNT: k_b = min(k, len_b). A k larger than a sequence is
 *     not an error: that sequence trains on all its real tokens and is counted
 *     in lp_token_selection.n_capped (the caller may warn). Needs k >= 2.
 *   - LP_TOKENSELECT_FRACTION: k_b = round(r * len_b) (half away from zero),
 *     clamped to [min(2, len_b), len_b]. 0 < r <= 1.
 *   - LP_TOKENSELECT_ALL: every real token (ordinary fine-tuning).
 * Encoder (BERT) variant, cfg.encoder = 1: [CLS] (position 0) plus k_b - 1
 * random positions from 1 .. len_b-1; the last token is not forced; k >= 1 and
 * the fraction lower bound is min(1, len_b). Default k for encoders: 16.
 *
 * Strategies are pluggable: LP_TOKENSELECT_RANDOM (the paper's), _ANSWER (every
 * position whose next-token target is a trained label first, then random
 * fill; falls back to random when no labels are given), or _CUSTOM (your
 * function). Every strategy's output is checked (sorted, distinct, in range,
 * exactly k_b) before it is used.
 *
 * Reproducibility: seed a generator per step with lp_tokenselect_rng_for_step
 * so step s draws the same selection after a resume, whatever ran before.
 *
 *   lp_tokenselect_config cfg = lp_tokenselect_defaults();
 *   lp_tokenselect_parse(&cfg, "0.3");              // or "16", "30%", "all"
 *   lp_token_selection sel;
 *   lp_tokenselect_init(&sel, B_max, T_max);          // capacity
 *   for (step ...) {                                  // batch: an lp_batch from dataset.h
 *       lp_rng r; lp_tokenselect_rng_for_step(&r, seed, step);
 *       lp_tokenselect_select(&sel, &cfg, batch.B, batch.T_used, batch.lengths, batch.labels, &r);
 *       // sel.positions[sel.offsets[b] .. sel.offsets[b+1]) ascending; sel.mask[b*sel.T_used + t]
 *   }
 *   lp_tokenselect_free(&sel);
 */
#ifndef LEANPROP_TOKENSELECT_H
#define LEANPROP_TOKENSELECT_H

#include <stdint.h>
#include "leanprop/rng.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_TOKENSELECT_ALL = 0,    /* every real token: ordinary fine-tuning */
    LP_TOKENSELECT_COUNT,      /* k tokens per sequence */
    LP_TOKENSELECT_FRACTION    /* round(r * len) tokens per sequence */
} lp_tokenselect_mode;

typedef enum {
    LP_TOKENSELECT_RANDOM = 0, /* forced positions + uniform interior draw (paper) */
    LP_TOKENSELECT_ANSWER,     /* forced + every label-bearing position, then random fill */
    LP_TOKENSELECT_CUSTOM      /* cfg.custom */
} lp_tokenselect_strategy;

struct lp_tokenselect_config;

/* A strategy: write exactly k distinct positions in [0, len), ascending, into
 * out[0..k). `trained` (may be NULL) has len entries, 1 where the position's
 * next-token target (or the position itself, see label_shift) is a trained
 * label. Return LP_OK or a failure (with lp_error). */
typedef lp_status (*lp_tokenselect_fn)(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                                       const struct lp_tokenselect_config *cfg, lp_rng *rng, void *user);

typedef struct lp_tokenselect_config {
    lp_tokenselect_mode mode;
    int32_t k;                 /* COUNT mode */
    double fraction;           /* FRACTION mode, 0 < r <= 1 */
    int encoder;               /* 1: [CLS] + k-1 random, last token not forced */
    lp_tokenselect_strategy strategy;
    lp_tokenselect_fn custom;  /* CUSTOM strategy */
    void *custom_user;
    /* How labels (HF convention, -100 = not trained) mark a position as
     * label-bearing for the ANSWER strategy: 1 (causal LM, default): position
     * t if labels[t+1] != -100; 0: position t if labels[t] != -100. */
    int label_shift;
} lp_tokenselect_config;

/* The selection of one batch. Buffers are LP_MEM_DATA, sized at init. */
typedef struct {
    int32_t B, T;              /* capacity given to init */
    int32_t n_seq, T_used;     /* shape (B, T) of the last selection */
    int32_t *offsets;          /* (n_seq+1): sequence b owns positions[offsets[b] .. offsets[b+1]) */
    int32_t *positions;        /* used prefix offsets[n_seq]; ascending per sequence */
    uint8_t *mask;             /* (n_seq, T_used) row-major: 1 = selected; 0 on padding */
    int64_t total_selected;    /* offsets[B] */
    int64_t total_real;        /* sum of lengths */
    int32_t n_capped;          /* sequences where k exceeded the length: all tokens taken */
} lp_token_selection;

/* mode ALL, strategy RANDOM, k 16, fraction 0.3, decoder, label_shift 1. */
lp_tokenselect_config lp_tokenselect_defaults(void);

/* Parse a user spec: "all", an integer count ("16"), a fraction in (0,1]
 * ("0.3") or a percentage ("30%"). Sets cfg->mode and k/fraction only.
 * LP_ERR_INVALID_ARG (naming the spec) otherwise. */
lp_status lp_tokenselect_parse(lp_tokenselect_config *cfg, const char *spec);

/* Strategy by name: "random", "answer". */
lp_status lp_tokenselect_parse_strategy(lp_tokenselect_config *cfg, const char *name);

/* Check a config (k >= 2 for decoders, >= 1 for encoders; fraction range;
 * CUSTOM has a function). */
lp_status lp_tokenselect_validate(const lp_tokenselect_config *cfg);

/* The number of positions a sequence of `len` real tokens gets (0 for len 0). */
int32_t lp_tokenselect_count(const lp_tokenselect_config *cfg, int32_t len);

/* Seed `r` for training step `step` from a run seed: a pure function of
 * (seed, step), so resumed runs redraw identical selections. */
void lp_tokenselect_rng_for_step(lp_rng *r, uint64_t seed, int64_t step);

/* Allocate a selection for up to B sequences of T positions. */
lp_status lp_tokenselect_init(lp_token_selection *sel, int32_t B, int32_t T);
void lp_tokenselect_free(lp_token_selection *sel);

/* Select for a batch of B sequences padded to T positions (B, T within the
 * capacity; rows of length 0 select nothing): lens[b] in [0, T] real tokens
 * (padding after). labels: (B, T) int32 in the HF convention or NULL (read by
 * the ANSWER strategy only). The mask comes out (B, T) with row stride T, the
 * layout of lp_batch's input_ids. */
lp_status lp_tokenselect_select(lp_token_selection *sel, const lp_tokenselect_config *cfg, int32_t B, int32_t T,
                                const int32_t *lens, const int32_t *labels, lp_rng *rng);

/* The built-in strategies, usable from a custom one (e.g. to wrap them). */
lp_status lp_tokenselect_random(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                                const lp_tokenselect_config *cfg, lp_rng *rng, void *user);
lp_status lp_tokenselect_answer(int32_t *out, int32_t k, int32_t len, const uint8_t *trained,
                                const lp_tokenselect_config *cfg, lp_rng *rng, void *user);

#ifdef __cplusplus
}
#endif
#endif
