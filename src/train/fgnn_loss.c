/* Per-layer losses of the forward methods and their inference rules.
 *
 * SF (spec 4):  logits = Y[train] Y[VN]^T / tau, cross entropy with the labels.
 * FF (spec 2, 3): G = sum_j y_j^2; positives want G > theta, negatives G < theta:
 *               L = softplus(theta - G_pos) + mean_k softplus(G_neg_k - theta).
 * Inference:    SF sums per-layer softmaxes over the virtual nodes; FF sums
 *               mean_j y_j^2 - theta over layers for each candidate label. */
#include <math.h>
#include <string.h>

#include "leanprop/kernels/linear.h"
#include "train/fgnn_internal.h"

lp_status lp_fgnn_sf_loss(float *loss, float *dy, float *dvn, int64_t *n_correct, const float *y, const float *vn,
                          const int32_t *labels, int64_t n, int64_t C, int64_t D, float tau)
{
    if (!loss || !y || !vn || !labels || n < 1 || C < 1 || D < 1 || !(tau > 0))
        return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_sf_loss: bad arguments (n %lld, C %lld, D %lld, tau %g)", (long long)n,
                        (long long)C, (long long)D, (double)tau);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_sf_loss: row %lld has label %d (classes 0..%lld)", (long long)i,
                            (int)labels[i], (long long)(C - 1));
    float *logits = fgnn_scratch(n * C), *gvn = dvn ? fgnn_scratch(C * D) : NULL;
    lp_status st = !logits || (dvn && !gvn) ? lp_error_context(LP_ERR_NOMEM, "SF loss") : LP_OK;
    if (st == LP_OK) st = lp_sgemm(logits, 0, y, 0, vn, 0, n, C, D, LP_NOTRANS, LP_TRANS, 1.0f / tau, 0.0f);
    if (st == LP_OK && n_correct) *n_correct = lp_fgnn_argmax(NULL, logits, labels, n, C);
    if (st == LP_OK) {   /* cross entropy over C (a handful of) classes; logits become dlogits */
        double L = 0;
        for (int64_t i = 0; i < n; i++) {
            float *li = logits + i * C, mx = li[0];
            for (int64_t c = 1; c < C; c++) mx = li[c] > mx ? li[c] : mx;
            double s = 0;
            for (int64_t c = 0; c < C; c++) s += exp((double)(li[c] - mx));
            L += (double)mx + log(s) - li[labels[i]];
            for (int64_t c = 0; c < C; c++) li[c] = (float)(exp((double)(li[c] - mx)) / s / (double)n);
            li[labels[i]] -= 1.0f / (float)n;
        }
        *loss = (float)(L / (double)n);
    }
    /* dvn first (reads y), then dy (reads vn): dy may be y and dvn may be vn (in place) */
    if (st == LP_OK && dvn) st = lp_sgemm(gvn, 0, logits, 0, y, 0, C, D, n, LP_TRANS, LP_NOTRANS, 1.0f / tau, 0.0f);
    if (st == LP_OK && dy) st = lp_sgemm(dy, 0, logits, 0, vn, 0, n, D, C, LP_NOTRANS, LP_NOTRANS, 1.0f / tau, 0.0f);
    if (st == LP_OK && dvn) memcpy(dvn, gvn, (size_t)(C * D) * sizeof(float));
    lp_free(logits);
    lp_free(gvn);
    return st;
}

static inline double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static inline double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* One FF term: positive (sign +1): softplus(theta - G), negative (-1): softplus(G - theta),
 * mean over n rows times weight; dy (may be NULL) OVERWRITTEN. Returns the term. */
double fgnn_ff_term(float *dy, const float *y, int64_t n, int64_t D, float theta, int sign, double weight)
{
    double L = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *yi = y + i * D;
        double G = 0;
        for (int64_t j = 0; j < D; j++) G += (double)yi[j] * yi[j];
        double x = sign > 0 ? theta - G : G - theta;
        L += softplus(x);
        if (dy) {
            /* dL/dG = -sigmoid(x) (positive) or +sigmoid(x) (negative); dG/dy = 2y */
            float gG = (float)((sign > 0 ? -1.0 : 1.0) * sigmoid(x) * weight / (double)n * 2.0);
            float *di = dy + i * D;
            for (int64_t j = 0; j < D; j++) di[j] = gG * yi[j];
        }
    }
    return weight * L / (double)n;
}

lp_status lp_fgnn_ff_loss(float *loss, float *dpos, float *const *dneg, const float *pos, const float *const *neg,
                          int K, int64_t n, int64_t D, float theta)
{
    if (!loss || !pos || K < 0 || (K > 0 && !neg) || n < 1 || D < 1)
        return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_ff_loss: bad arguments");
    double L = fgnn_ff_term(dpos, pos, n, D, theta, 1, 1.0);
    for (int k = 0; k < K; k++) L += fgnn_ff_term(dneg ? dneg[k] : NULL, neg[k], n, D, theta, -1, 1.0 / K);
    *loss = (float)L;
    return LP_OK;
}

lp_status lp_fgnn_sf_accumulate(float *acc, const float *y, const float *vn, int64_t n, int64_t C, int64_t D, float tau)
{
    if (!acc || !y || !vn || n < 0 || C < 1 || D < 1 || !(tau > 0))
        return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_sf_accumulate: bad arguments");
    if (n == 0) return LP_OK;
    float *p = fgnn_scratch(n * C);
    if (!p) return lp_error_context(LP_ERR_NOMEM, "SF scores");
    lp_status st = lp_sgemm(p, 0, y, 0, vn, 0, n, C, D, LP_NOTRANS, LP_TRANS, 1.0f / tau, 0.0f);
    for (int64_t i = 0; st == LP_OK && i < n; i++) {
        const float *pi = p + i * C;
        float mx = pi[0];
        for (int64_t c = 1; c < C; c++) mx = pi[c] > mx ? pi[c] : mx;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += exp((double)(pi[c] - mx));
        for (int64_t c = 0; c < C; c++) acc[i * C + c] += (float)(exp((double)(pi[c] - mx)) / s);
    }
    lp_free(p);
    return st;
}

lp_status lp_fgnn_ff_accumulate(float *acc, const float *y, int64_t n, int64_t D, float theta)
{
    if (!acc || !y || n < 0 || D < 1) return lp_error(LP_ERR_INVALID_ARG, "lp_fgnn_ff_accumulate: bad arguments");
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (double)y[i * D + j] * y[i * D + j];
        acc[i] += (float)(s / (double)D - theta);
    }
    return LP_OK;
}

int64_t lp_fgnn_argmax(int32_t *pred, const float *scores, const int32_t *labels, int64_t n, int64_t C)
{
    int64_t ok = 0;
    for (int64_t i = 0; scores && i < n; i++) {
        const float *s = scores + i * C;
        int32_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (s[c] > s[best]) best = (int32_t)c;
        if (pred) pred[i] = best;
        if (labels && labels[i] == best) ok++;
    }
    return ok;
}
