/* Internal to src/kernels: argument validation shared by all kernels.
 *
 *   size_t n;
 *   LPK_NONNULL("lp_layernorm_forward", out);
 *   LPK_DIMS("lp_layernorm_forward", &n, "N,C", N, C);   // each > 0, product fits
 */
#ifndef LEANPROP_KCHECK_H
#define LEANPROP_KCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/status.h"

/* Largest element count a float buffer may have (bytes must fit ptrdiff_t). */
#define LPK_MAX_NUMEL ((int64_t)(PTRDIFF_MAX / 8))

/* Checks every dims[i] > 0 and that their product stays <= LPK_MAX_NUMEL;
 * names is a comma-separated list naming the dimensions for the message.
 * *numel (may be NULL) receives the product. */
lp_status lpk_dims(const char *fn, size_t *numel, const char *names, const int64_t *dims, int n);

#define LPK_DIMS(fn, numel, names, ...)                                                                    \
    LP_TRY(lpk_dims((fn), (numel), (names), (const int64_t[]){__VA_ARGS__},                                \
                    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))))

#define LPK_NONNULL(fn, p)                                                                                 \
    do {                                                                                                   \
        if (!(p)) return lp_error(LP_ERR_INVALID_ARG, "%s: %s is NULL", (fn), #p);                          \
    } while (0)

#endif
