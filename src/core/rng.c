/* Seeded random numbers: xoshiro256** seeded through splitmix64. */
#include "leanprop/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lp_rng_seed(lp_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t lp_rng_next_u64(lp_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t lp_rng_below(lp_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    /* rejection sampling removes modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do { x = lp_rng_next_u64(r); } while (x >= limit);
    return x % n;
}

double lp_rng_uniform_double(lp_rng *r) { return (double)(lp_rng_next_u64(r) >> 11) * 0x1.0p-53; }

float lp_rng_uniform(lp_rng *r)
{
    return (float)(lp_rng_next_u64(r) >> 40) * 0x1.0p-24f;
}

double lp_rng_normal_double(lp_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do { u1 = lp_rng_uniform_double(r); } while (u1 <= 0.0);
    u2 = lp_rng_uniform_double(r);
    double mag = sqrt(-2.0 * log(u1));
    r->spare = mag * sin(2.0 * M_PI * u2);
    r->has_spare = 1;
    return mag * cos(2.0 * M_PI * u2);
}

float lp_rng_normal(lp_rng *r) { return (float)lp_rng_normal_double(r); }

void lp_rng_fill_uniform(lp_rng *r, float *buf, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) buf[i] = lo + (hi - lo) * lp_rng_uniform(r);
}

void lp_rng_fill_normal(lp_rng *r, float *buf, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) buf[i] = mean + std * lp_rng_normal(r);
}

void lp_rng_permutation(lp_rng *r, int64_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = lp_rng_below(r, i);
        int64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#include <stdlib.h>
#include "leanprop/alloc.h"

lp_status lp_rng_sample(lp_rng *r, int64_t *out, size_t k, size_t n)
{
    if (k > n) return lp_error(LP_ERR_INVALID_ARG, "cannot sample %zu distinct values from %zu", k, n);
    if (k > 0 && !out) return lp_error(LP_ERR_INVALID_ARG, "lp_rng_sample: NULL output");
    /* Floyd's algorithm: exactly k draws. Membership by linear scan for small
     * k, by a scratch bitmap of n bits for large k. */
    size_t m = 0;
    unsigned char *bits = NULL;
    if (k > 64) {
        bits = lp_alloc(LP_MEM_SCRATCH, n / 8 + 1);
        if (!bits) return LP_ERR_NOMEM;
    }
    for (size_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)lp_rng_below(r, j + 1);
        int seen = 0;
        if (bits) seen = (bits[t >> 3] >> (t & 7)) & 1;
        else for (size_t i = 0; i < m; i++) if (out[i] == t) { seen = 1; break; }
        int64_t v = seen ? (int64_t)j : t;
        if (bits) bits[v >> 3] |= (unsigned char)(1u << (v & 7));
        out[m++] = v;
    }
    lp_free(bits);
    qsort(out, k, sizeof(int64_t), cmp_i64);
    return LP_OK;
}
