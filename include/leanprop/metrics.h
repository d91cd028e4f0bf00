/* leanprop/metrics.h: evaluation metrics and run statistics.
 *
 *   double acc = lp_accuracy_argmax(logits, C, labels, test_nodes, n_test);
 *   double auc; lp_roc_auc(scores, is_positive, n, &auc);     // exact, ties count 1/2
 *   double mean, std; lp_mean_std(values, runs, &mean, &std);  // population std (ddof 0)
 */
#ifndef LEANPROP_METRICS_H
#define LEANPROP_METRICS_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* logits (N, C), labels (N), idx (n) rows to score (NULL = rows 0..n-1):
 * fraction of rows whose argmax (first maximum on ties) equals the label. 0 when n == 0. */
double lp_accuracy_argmax(const float *logits, int64_t C, const int32_t *labels, const int64_t *idx, int64_t n);

/* ROC-AUC of scores (n) against labels (n, nonzero = positive), exact:
 * the Mann-Whitney statistic with average ranks for tied scores (equal to
 * sklearn.metrics.roc_auc_score). LP_ERR_INVALID_ARG without both classes or
 * with a NaN score. */
lp_status lp_roc_auc(const float *scores, const uint8_t *labels, int64_t n, double *auc);

/* Mean and population standard deviation (ddof 0) of x (n >= 1). */
void lp_mean_std(const double *x, int n, double *mean, double *std);

#ifdef __cplusplus
}
#endif
#endif
