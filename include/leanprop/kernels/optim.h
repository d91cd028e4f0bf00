/* leanprop/kernels/optim.h: Adam/AdamW, SGD with momentum, gradient-norm clipping.
 *
 * Exact torch.optim semantics (single-tensor path, float32 arithmetic with the
 * bias corrections computed in double). Optimizer state (moments, momentum) is
 * allocated in LP_MEM_OPTIMIZER, so it shows up in the memory report.
 *
 * One state object covers n parameters. Either step one buffer at once, or
 * share one state (one step counter) across several parameter tensors laid out
 * at offsets in [0, n):
 *
 *   lp_adam *opt;
 *   lp_adam_config cfg = lp_adamw_defaults();   // lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01
 *   cfg.lr = 3e-4f;
 *   if (lp_adam_new(&opt, n, &cfg) != LP_OK) ... lp_error_message()
 *   lp_adam_step(opt, param, grad, n);                 // t += 1, update all n
 *   // or, for several tensors in one state:
 *   lp_adam_begin_step(opt);                           // t += 1
 *   lp_adam_update(opt, 0, wq, dwq, nq);               // state slice [0, nq)
 *   lp_adam_update(opt, nq, wk, dwk, nk);              // state slice [nq, nq+nk)
 *   lp_adam_free(opt);
 *
 *   float norm;   // torch.nn.utils.clip_grad_norm_ over several buffers
 *   float *grads[] = {dwq, dwk}; int64_t sizes[] = {nq, nk};
 *   lp_clip_grad_norm(grads, sizes, 2, 1.0f, &norm);
 */
#ifndef LEANPROP_KERNELS_OPTIM_H
#define LEANPROP_KERNELS_OPTIM_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float lr;
    float beta1, beta2;
    float eps;
    float weight_decay;
    /* 1 = AdamW: param *= 1 - lr*wd before the Adam update (torch.optim.AdamW).
     * 0 = Adam: grad += wd*param before the moments (torch.optim.Adam). */
    int decoupled;
} lp_adam_config;

/* torch.optim.AdamW defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
lp_adam_config lp_adamw_defaults(void);
/* torch.optim.Adam defaults: the same with weight_decay 0 and decoupled 0. */
lp_adam_config lp_adam_defaults(void);

typedef struct lp_adam lp_adam;

/* State for n parameters: m, v zeroed, in LP_MEM_OPTIMIZER (8n bytes). Validates
 * the config (lr >= 0, 0 <= beta < 1, eps >= 0, weight_decay >= 0). */
lp_status lp_adam_new(lp_adam **out, int64_t n, const lp_adam_config *cfg);
void lp_adam_free(lp_adam *a);
/* Change the learning rate (schedules). */
lp_status lp_adam_set_lr(lp_adam *a, float lr);
/* Steps taken so far (t; the first step is t = 1). */
int64_t lp_adam_steps(const lp_adam *a);
/* Moment buffers (n floats each), e.g. for checkpoints; either pointer may be NULL. */
void lp_adam_moments(lp_adam *a, float **m, float **v);
/* Restore the step counter (with the moments, when resuming from a checkpoint). */
lp_status lp_adam_set_steps(lp_adam *a, int64_t t);

/* t += 1. */
lp_status lp_adam_begin_step(lp_adam *a);
/* param (n), grad (n) -> param (n) updated in place, state slice [offset, offset+n).
 * Uses the current t (>= 1: call lp_adam_begin_step first). grad is not modified. */
lp_status lp_adam_update(lp_adam *a, int64_t offset, float *param, const float *grad, int64_t n);
/* lp_adam_begin_step + lp_adam_update(a, 0, param, grad, n); n must be the state's n. */
lp_status lp_adam_step(lp_adam *a, float *param, const float *grad, int64_t n);

typedef struct {
    float lr;
    float momentum;      /* 0 = plain SGD (no state allocated) */
    float weight_decay;  /* L2: grad += wd * param */
    int nesterov;        /* 1 = Nesterov momentum (needs momentum > 0) */
} lp_sgd_config;

/* lr 1e-2, momentum 0.9, weight_decay 0, nesterov 0. */
lp_sgd_config lp_sgd_defaults(void);

typedef struct lp_sgd lp_sgd;

/* torch.optim.SGD with dampening 0: g = grad + wd*param; on the first step
 * buf = g, afterwards buf = momentum*buf + g; param -= lr * (nesterov ? g + momentum*buf : buf). */
lp_status lp_sgd_new(lp_sgd **out, int64_t n, const lp_sgd_config *cfg);
void lp_sgd_free(lp_sgd *s);
lp_status lp_sgd_set_lr(lp_sgd *s, float lr);
int64_t lp_sgd_steps(const lp_sgd *s);
/* Momentum buffer (n floats) or NULL when momentum == 0. */
float *lp_sgd_momentum(lp_sgd *s);
lp_status lp_sgd_begin_step(lp_sgd *s);
/* param (n), grad (n) -> param updated in place, state slice [offset, offset+n). */
lp_status lp_sgd_update(lp_sgd *s, int64_t offset, float *param, const float *grad, int64_t n);
lp_status lp_sgd_step(lp_sgd *s, float *param, const float *grad, int64_t n);

/* grads[k] (sizes[k] each) -> *total_norm = sqrt(sum of squares over all buffers),
 * accumulated in double. NULL buffers (frozen) are skipped; total_norm may be NULL. */
lp_status lp_grad_norm(float *const *grads, const int64_t *sizes, int k, float *total_norm);

/* torch.nn.utils.clip_grad_norm_ (norm_type 2): total = lp_grad_norm(...);
 * coef = max_norm / (total + 1e-6); if coef < 1 every gradient is scaled by coef.
 * *total_norm (may be NULL) receives the norm before clipping. A non-finite norm
 * returns LP_ERR_NUMERIC and leaves the gradients untouched (skip the step). */
lp_status lp_clip_grad_norm(float *const *grads, const int64_t *sizes, int k, float max_norm,
                            float *total_norm);

#ifdef __cplusplus
}
#endif
#endif
