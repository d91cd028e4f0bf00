/* Accuracy, exact ROC-AUC with ties, mean and population std. */
#include "leanprop/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "leanprop/alloc.h"

double lp_accuracy_argmax(const float *logits, int64_t C, const int32_t *labels, const int64_t *idx, int64_t n)
{
    if (!logits || !labels || C < 1 || n <= 0) return 0.0;
    int64_t ok = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx ? idx[k] : k;
        const float *row = logits + i * C;
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (row[c] > row[best]) best = c;
        ok += best == labels[i];
    }
    return (double)ok / (double)n;
}

typedef struct { float s; uint8_t pos; } scored;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

lp_status lp_roc_auc(const float *scores, const uint8_t *labels, int64_t n, double *auc)
{
    if (!scores || !labels || !auc || n < 2) return lp_error(LP_ERR_INVALID_ARG, "lp_roc_auc: bad arguments");
    scored *v = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(scored));
    if (!v) return lp_error_context(LP_ERR_NOMEM, "ROC-AUC");
    int64_t npos = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(scores[i])) { lp_free(v); return lp_error(LP_ERR_INVALID_ARG, "lp_roc_auc: score %lld is NaN", (long long)i); }
        v[i].s = scores[i];
        v[i].pos = labels[i] != 0;
        npos += v[i].pos;
    }
    int64_t nneg = n - npos;
    if (npos == 0 || nneg == 0) {
        lp_free(v);
        return lp_error(LP_ERR_INVALID_ARG, "lp_roc_auc: needs positives and negatives (%lld / %lld)", (long long)npos,
                        (long long)nneg);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    /* sum of the positives' ranks (1-based), tied groups sharing their average rank */
    double rank_sum = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        int64_t p = 0;
        while (j < n && v[j].s == v[i].s) { p += v[j].pos; j++; }
        rank_sum += (double)p * ((double)(i + 1) + (double)j) / 2.0;
        i = j;
    }
    lp_free(v);
    *auc = (rank_sum - (double)npos * (double)(npos + 1) / 2.0) / ((double)npos * (double)nneg);
    return LP_OK;
}

void lp_mean_std(const double *x, int n, double *mean, double *std)
{
    double m = 0, s = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m = n > 0 ? m / n : 0;
    for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    if (mean) *mean = m;
    if (std) *std = n > 0 ? sqrt(s / n) : 0;
}
