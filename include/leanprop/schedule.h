/* leanprop/schedule.h: learning-rate schedules.
 *
 * The Hugging Face transformers schedules, as functions of the optimizer step
 * (0-based, the step about to be taken):
 *   warm-up (all kinds):  lr * step / warmup_steps        for step < warmup_steps
 *   constant:             lr
 *   linear:               min_lr + (lr - min_lr) * (total - step) / (total - warmup)
 *   cosine:               min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * 2 * cycles * progress)),
 *                         progress = (step - warmup) / (total - warmup)
 * With min_lr = 0 and cycles = 0.5 these are exactly get_constant_schedule_with_warmup,
 * get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup (denominators
 * max(1, .) as there); with min_lr > 0 cosine is get_cosine_with_min_lr_schedule_with_warmup.
 * One deliberate difference: past total_steps, progress is held at 1 (HF's cosine
 * would rise again), so an over-long run keeps the final rate.
 *
 *   lp_schedule s = lp_schedule_defaults();
 *   s.kind = LP_SCHED_COSINE; s.lr = 4e-4; s.warmup_steps = 100; s.total_steps = 1000;
 *   for (int64_t step = 0; step < 1000; step++) { double lr = lp_schedule_lr(&s, step); ... }
 */
#ifndef LEANPROP_SCHEDULE_H
#define LEANPROP_SCHEDULE_H

#include <stdint.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LP_SCHED_CONSTANT = 0, LP_SCHED_LINEAR, LP_SCHED_COSINE } lp_schedule_kind;

typedef struct {
    lp_schedule_kind kind;
    double lr;              /* peak learning rate */
    double min_lr;          /* floor reached at total_steps (linear, cosine); 0 = HF default */
    int64_t warmup_steps;   /* linear warm-up from 0 */
    int64_t total_steps;    /* optimizer steps in the run (linear, cosine) */
    double num_cycles;      /* cosine: 0.5 = one half-wave down to min_lr */
} lp_schedule;

/* cosine, lr 1e-4, min_lr 0, no warm-up, total 0 (set it), 0.5 cycles. */
lp_schedule lp_schedule_defaults(void);

/* "constant", "linear", "cosine". */
lp_status lp_schedule_parse_kind(lp_schedule_kind *out, const char *name);
const char *lp_schedule_kind_name(lp_schedule_kind kind);

/* Check ranges: lr >= 0, 0 <= min_lr <= lr, warmup >= 0, total >= warmup for
 * decaying kinds, num_cycles > 0. Messages name the field. */
lp_status lp_schedule_validate(const lp_schedule *s);

/* Learning rate for optimizer step `step` (steps < 0 count as 0). */
double lp_schedule_lr(const lp_schedule *s, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
