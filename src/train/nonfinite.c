/* NaN / Inf detection for training steps (see leanprop/nonfinite.h).
 *
 * The test is on the bits: a float is non-finite exactly when its exponent field is all ones
 * (0x7f800000), which stays correct under -ffast-math (where isnan may be folded away) and
 * vectorises into compare + or. Large tensors are split over OpenMP threads with an OR
 * reduction; the locating and counting pass runs only after something was found. */
#include "leanprop/nonfinite.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define EXP_MASK 0x7f800000u
/* Below this many values one thread is faster than waking the team. */
#define PARALLEL_MIN ((size_t)1 << 17)

static const char *const g_policy_names[LP_NONFINITE_POLICY_COUNT] = {"stop", "skip"};

lp_status lp_nonfinite_policy_parse(const char *s, lp_nonfinite_policy *out)
{
    if (!s || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_nonfinite_policy_parse: NULL argument");
    for (int i = 0; i < LP_NONFINITE_POLICY_COUNT; i++)
        if (!strcmp(s, g_policy_names[i])) {
            *out = (lp_nonfinite_policy)i;
            return LP_OK;
        }
    return lp_error(LP_ERR_INVALID_ARG, "--on-nonfinite: '%s' is not a policy (stop or skip)", s);
}

const char *lp_nonfinite_policy_name(lp_nonfinite_policy p)
{
    return (int)p >= 0 && p < LP_NONFINITE_POLICY_COUNT ? g_policy_names[p] : "?";
}

static inline uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* 1 if any value in x[0..n) is non-finite. */
static int any_bad_serial(const float *x, size_t n)
{
    unsigned bad = 0;
    size_t i = 0;
    /* blocks of 1024 with an early exit between them */
    for (; i + 1024 <= n; i += 1024) {
        for (size_t k = 0; k < 1024; k++) bad |= (bits_of(x[i + k]) & EXP_MASK) == EXP_MASK;
        if (bad) return 1;
    }
    for (; i < n; i++) bad |= (bits_of(x[i]) & EXP_MASK) == EXP_MASK;
    return bad != 0;
}

int lp_all_finite(const float *x, size_t n)
{
    if (n == 0 || !x) return 1;
    if (n < PARALLEL_MIN) return !any_bad_serial(x, n);
    unsigned bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static)
    for (size_t i = 0; i < n; i++) bad |= (bits_of(x[i]) & EXP_MASK) == EXP_MASK;
    return bad == 0;
}

int64_t lp_first_nonfinite(const float *x, size_t n)
{
    if (lp_all_finite(x, n)) return -1;
    for (size_t i = 0; i < n; i++)
        if ((bits_of(x[i]) & EXP_MASK) == EXP_MASK) return (int64_t)i;
    return -1;
}

void lp_count_nonfinite(const float *x, size_t n, size_t *n_nan, size_t *n_inf)
{
    size_t a = 0, b = 0;
    if (x) {
#pragma omp parallel for reduction(+ : a, b) schedule(static) if (n >= PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) {
            uint32_t u = bits_of(x[i]);
            if ((u & EXP_MASK) == EXP_MASK) {
                if (u & 0x007fffffu) a++;
                else b++;
            }
        }
    }
    if (n_nan) *n_nan = a;
    if (n_inf) *n_inf = b;
}

lp_status lp_check_finite_kind(const float *x, size_t n, const char *kind, const char *name, int64_t step)
{
    if (n && !x) return lp_error(LP_ERR_INVALID_ARG, "lp_check_finite: NULL data for %zu values", n);
    if (lp_all_finite(x, n)) return LP_OK;
    int64_t i = lp_first_nonfinite(x, n);
    float v = x[i];
    const char *what = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    char where[64] = "";
    if (step >= 0) snprintf(where, sizeof where, "step %lld: ", (long long)step);
    if (!name) name = "tensor";
    const char *of = kind && kind[0] ? " of " : "";
    if (!kind) kind = "";
    if (n == 1) return lp_error(LP_ERR_NUMERIC, "%snon-finite value (%s) in %s%s%s", where, what, kind, of, name);
    size_t nn, ni;
    lp_count_nonfinite(x, n, &nn, &ni);
    return lp_error(LP_ERR_NUMERIC, "%snon-finite value (%s) in %s%s%s at index %lld (%zu of %zu values non-finite)",
                    where, what, kind, of, name, (long long)i, nn + ni, n);
}

lp_status lp_check_finite(const float *x, size_t n, const char *name, int64_t step)
{
    return lp_check_finite_kind(x, n, NULL, name, step);
}
