/* leanprop/nonfinite.h: detecting NaN and Inf in losses, gradients and activations.
 *
 * A training step checks what it produced and reports the first bad value with the step, what
 * kind of tensor it was and its name, so a run that diverges says where:
 *
 *   LP_TRY(lp_check_finite(&loss, 1, "loss", step));
 *   // "step 12: non-finite value (nan) in loss"
 *   st = lp_check_finite_kind(p->grad, p->numel, "gradients", p->name, step);
 *   // "step 12: non-finite value (nan) in gradients of model.layers.0.mlp.up_proj.weight
 *   //  at index 345 (3 of 4096 values non-finite)"
 *   if (st == LP_ERR_NUMERIC && policy == LP_NONFINITE_SKIP) { skip the optimizer step; count it }
 *
 * The scan is one pass over the bits (a value is non-finite when its exponent is all ones),
 * vectorised and split over OpenMP threads for large tensors; it allocates nothing and is
 * exact whatever the floating-point flags. The slow path (locating and counting) runs only when
 * something was found.
 *
 * Policies, as the CLI's --on-nonfinite stop|skip: STOP (the default) ends the run with the
 * message; SKIP drops the step's update (no optimizer step, gradients zeroed) and continues.
 */
#ifndef LEANPROP_NONFINITE_H
#define LEANPROP_NONFINITE_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_NONFINITE_STOP = 0,   /* stop the run with the report (default) */
    LP_NONFINITE_SKIP,       /* skip the update of the step that produced it, keep going */
    LP_NONFINITE_POLICY_COUNT
} lp_nonfinite_policy;

/* "stop" / "skip" -> policy; anything else is LP_ERR_INVALID_ARG naming the value and the choices. */
lp_status lp_nonfinite_policy_parse(const char *s, lp_nonfinite_policy *out);
/* "stop", "skip"; "?" for an invalid value. */
const char *lp_nonfinite_policy_name(lp_nonfinite_policy p);

/* 1 if every x[i] (n values) is finite, else 0. x may be NULL when n is 0. */
int lp_all_finite(const float *x, size_t n);
/* Index of the first non-finite value, or -1 when all are finite. */
int64_t lp_first_nonfinite(const float *x, size_t n);
/* Count NaNs and infinities (either output may be NULL). */
void lp_count_nonfinite(const float *x, size_t n, size_t *n_nan, size_t *n_inf);

/* LP_OK when all finite; else LP_ERR_NUMERIC with "step S: non-finite value (nan|inf|-inf) in
 * NAME at index I (K of N values non-finite)". step < 0 leaves out "step S: "; n == 1 leaves out
 * the index and count. name NULL reads "tensor". */
lp_status lp_check_finite(const float *x, size_t n, const char *name, int64_t step);
/* The same with the kind of tensor ("gradients", "activations", "weights"): "... in gradients of
 * NAME at index ...". */
lp_status lp_check_finite_kind(const float *x, size_t n, const char *kind, const char *name, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
