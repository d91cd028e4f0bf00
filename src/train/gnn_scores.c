/* Link prediction scores: dot products of node embeddings, and BCE with logits. */
#include <math.h>
#include <string.h>

#include "leanprop/gnn.h"

static lp_status check_pairs(const int64_t *pairs, int64_t P, int64_t N)
{
    for (int64_t p = 0; p < P; p++)
        if (pairs[2 * p] < 0 || pairs[2 * p] >= N || pairs[2 * p + 1] < 0 || pairs[2 * p + 1] >= N)
            return lp_error(LP_ERR_INVALID_ARG, "pair %lld (%lld, %lld) outside [0, %lld)", (long long)p,
                            (long long)pairs[2 * p], (long long)pairs[2 * p + 1], (long long)N);
    return LP_OK;
}

lp_status lp_gnn_pair_scores(float *s, const float *z, const int64_t *pairs, int64_t P, int64_t N, int64_t D)
{
    if (!s || !z || (P > 0 && !pairs) || P < 0 || D < 1) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_pair_scores: bad arguments");
    LP_TRY(check_pairs(pairs, P, N));
#pragma omp parallel for schedule(static) if (P * D >= 65536)
    for (int64_t p = 0; p < P; p++) {
        const float *a = z + pairs[2 * p] * D, *b = z + pairs[2 * p + 1] * D;
        float acc = 0;
        for (int64_t k = 0; k < D; k++) acc += a[k] * b[k];
        s[p] = acc;
    }
    return LP_OK;
}

lp_status lp_gnn_pair_scores_backward(float *dz, const float *ds, const float *z, const int64_t *pairs, int64_t P,
                                      int64_t N, int64_t D)
{
    if (!dz || !ds || !z || (P > 0 && !pairs) || P < 0 || D < 1)
        return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_pair_scores_backward: bad arguments");
    LP_TRY(check_pairs(pairs, P, N));
    for (int64_t p = 0; p < P; p++) { /* scatter into two rows per pair: serial, P*D*4 flops */
        int64_t u = pairs[2 * p], v = pairs[2 * p + 1];
        float g = ds[p];
        float *du = dz + u * D, *dv = dz + v * D;
        const float *zu = z + u * D, *zv = z + v * D;
        for (int64_t k = 0; k < D; k++) { du[k] += g * zv[k]; dv[k] += g * zu[k]; }
    }
    return LP_OK;
}

lp_status lp_bce_logits(float *loss, float *ds, const float *s, const uint8_t *y, int64_t P, float dloss)
{
    if (!loss || !s || !y || P < 1) return lp_error(LP_ERR_INVALID_ARG, "lp_bce_logits: bad arguments");
    double L = 0;
    for (int64_t p = 0; p < P; p++) {
        double x = s[p], t = y[p] ? 1.0 : 0.0;
        L += (x > 0 ? x : 0) - x * t + log1p(exp(-fabs(x)));
        if (ds) ds[p] = (float)((1.0 / (1.0 + exp(-x)) - t) / (double)P * dloss);
    }
    *loss = (float)(L / (double)P);
    return LP_OK;
}
