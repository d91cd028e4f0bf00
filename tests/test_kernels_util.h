/* Helpers shared by the tests/test_kernels_*.c binaries (header-only).
 *
 * Gradient checks: a test writes a plain double-precision reference forward
 * f(ctx, out) that reads its inputs from double arrays inside ctx. The loss is
 * L = sum(out * R) for a fixed random R; kt_fd_grad takes central differences
 * of L with respect to one of those arrays, which the test then compares with
 * the float analytic backward (run with dout = R).
 */
#ifndef LEANPROP_TEST_KERNELS_UTIL_H
#define LEANPROP_TEST_KERNELS_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/test_util.h"
#include "leanprop/alloc.h"
#include "leanprop/status.h"

typedef void (*kt_ref_fn)(void *ctx, double *out);

#define KT_FD_EPS 1e-6

/* grad[i] = (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), L = sum(out * R). */
static inline void kt_fd_grad(kt_ref_fn f, void *ctx, double *x, size_t n, const double *R, size_t nout,
                              double *grad)
{
    double *out = malloc(nout * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], lp = 0.0, lm = 0.0;
        x[i] = x0 + KT_FD_EPS;
        f(ctx, out);
        for (size_t j = 0; j < nout; j++) lp += out[j] * R[j];
        x[i] = x0 - KT_FD_EPS;
        f(ctx, out);
        for (size_t j = 0; j < nout; j++) lm += out[j] * R[j];
        x[i] = x0;
        grad[i] = (lp - lm) / (2.0 * KT_FD_EPS);
    }
    free(out);
}

/* Fail unless |a - b| <= atol + rtol*|b| element-wise (a float analytic, b double reference). */
static inline void kt_assert_close_d(const float *a, const double *b, size_t n, double atol, double rtol,
                                     const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= atol + rtol * fabs(b[i])))
            fail_msg("%s: element %zu of %zu: %.9g vs reference %.9g (atol %g rtol %g)", what, i, n, (double)a[i],
                     b[i], atol, rtol);
    }
}

/* Random float buffer (N(0,1) * scale) and its exact double copy. */
static inline float *kt_randn(lp_rng *r, size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * lp_rng_normal(r);
    return x;
}

static inline double *kt_to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) d[i] = (double)x[i];
    return d;
}

static inline float *kt_zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static inline double *kt_dzeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static inline float *kt_fill(size_t n, float v)
{
    float *x = kt_zeros(n);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

/* Expect a status and that a message was left. */
#define KT_EXPECT_ERR(expr, code) do { lp_error_clear(); lp_status s__ = (expr); \
    if (s__ != (code)) fail_msg("%s returned %s, expected %s", #expr, lp_status_name(s__), lp_status_name(code)); \
    if (lp_error_message()[0] == '\0') fail_msg("%s left no error message", #expr); } while (0)

#define KT_BIG ((int64_t)1 << 40)   /* product of two of these overflows */

#endif
