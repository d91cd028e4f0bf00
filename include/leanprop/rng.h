/* leanprop/rng.h: seeded, reproducible random numbers (xoshiro256**).
 *
 *   lp_rng r; lp_rng_seed(&r, 42);
 *   float u = lp_rng_uniform(&r);          // [0,1)
 *   float z = lp_rng_normal(&r);           // N(0,1)
 *   lp_rng_permutation(&r, perm, n);       // random order of 0..n-1
 *   lp_rng_sample(&r, out, k, n);          // k distinct from 0..n-1, ascending
 */
#ifndef LEANPROP_RNG_H
#define LEANPROP_RNG_H

#include <stdint.h>
#include <stddef.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t s[4];
    int has_spare;      /* Box-Muller keeps its second value */
    double spare;
} lp_rng;

void lp_rng_seed(lp_rng *r, uint64_t seed);
uint64_t lp_rng_next_u64(lp_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t lp_rng_below(lp_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double lp_rng_uniform_double(lp_rng *r);
float lp_rng_uniform(lp_rng *r);
/* Standard normal. */
double lp_rng_normal_double(lp_rng *r);
float lp_rng_normal(lp_rng *r);
/* Fill buf[n] with uniform values in [lo, hi) / normal(mean, std). */
void lp_rng_fill_uniform(lp_rng *r, float *buf, size_t n, float lo, float hi);
void lp_rng_fill_normal(lp_rng *r, float *buf, size_t n, float mean, float std);
/* perm[i] = a random permutation of 0..n-1 (Fisher-Yates). */
void lp_rng_permutation(lp_rng *r, int64_t *perm, size_t n);
/* out[k] = k distinct values from 0..n-1 without replacement, sorted
 * ascending. LP_ERR_INVALID_ARG if k > n. */
lp_status lp_rng_sample(lp_rng *r, int64_t *out, size_t k, size_t n);

#ifdef __cplusplus
}
#endif
#endif
