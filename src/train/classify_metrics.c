/* Classification scores from a confusion matrix: accuracy, per-class
 * precision / recall / F1, binary F1 of a positive class, macro F1 over the
 * classes present in truth or prediction (scikit-learn's default labels;
 * 0/0 counts as 0, its zero_division=0). */
#include "leanprop/metrics_log.h"

#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"

void lp_cls_metrics_free(lp_cls_metrics *m)
{
    if (!m) return;
    lp_free(m->confusion);
    lp_free(m->support);
    lp_free(m->precision);
    lp_free(m->recall);
    lp_free(m->f1);
    memset(m, 0, sizeof *m);
}

static double safe_div(double a, double b) { return b > 0 ? a / b : 0.0; }

lp_status lp_cls_metrics_compute(lp_cls_metrics *m, const int32_t *truth, const int32_t *pred, int64_t n,
                                 int32_t n_classes)
{
    if (!m || ((!truth || !pred) && n > 0) || n < 0) return lp_error(LP_ERR_INVALID_ARG, "lp_cls_metrics_compute: bad argument");
    memset(m, 0, sizeof *m);
    if (n_classes < 1 || n_classes > 65536)
        return lp_error(LP_ERR_INVALID_ARG, "lp_cls_metrics_compute: %d classes", (int)n_classes);
    for (int64_t i = 0; i < n; i++)
        if (truth[i] < 0 || truth[i] >= n_classes || pred[i] < 0 || pred[i] >= n_classes)
            return lp_error(LP_ERR_INVALID_ARG, "lp_cls_metrics_compute: example %lld has truth %d, prediction %d "
                            "outside [0, %d)", (long long)i, (int)truth[i], (int)pred[i], (int)n_classes);
    size_t c = (size_t)n_classes;
    m->confusion = lp_alloc_array(LP_MEM_DATA, c * c, sizeof(int64_t));
    m->support = lp_alloc_array(LP_MEM_DATA, c, sizeof(int64_t));
    m->precision = lp_alloc_array(LP_MEM_DATA, c, sizeof(double));
    m->recall = lp_alloc_array(LP_MEM_DATA, c, sizeof(double));
    m->f1 = lp_alloc_array(LP_MEM_DATA, c, sizeof(double));
    if (!m->confusion || !m->support || !m->precision || !m->recall || !m->f1) {
        lp_cls_metrics_free(m);
        return LP_ERR_NOMEM;
    }
    m->n_classes = n_classes;
    m->n = n;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        m->confusion[(size_t)truth[i] * c + (size_t)pred[i]]++;
        correct += truth[i] == pred[i];
    }
    double f1_sum = 0;
    int present = 0;
    for (size_t k = 0; k < c; k++) {
        int64_t tp = m->confusion[k * c + k], row = 0, col = 0;
        for (size_t j = 0; j < c; j++) {
            row += m->confusion[k * c + j];
            col += m->confusion[j * c + k];
        }
        m->support[k] = row;
        m->precision[k] = safe_div((double)tp, (double)col);
        m->recall[k] = safe_div((double)tp, (double)row);
        m->f1[k] = safe_div(2.0 * (double)tp, (double)(row + col));
        if (row + col > 0) { f1_sum += m->f1[k]; present++; }
    }
    m->accuracy = safe_div((double)correct, (double)n);
    m->macro_f1 = safe_div(f1_sum, (double)present);
    return LP_OK;
}

double lp_cls_metrics_binary_f1(const lp_cls_metrics *m, int32_t positive)
{
    if (!m || !m->f1 || positive < 0 || positive >= m->n_classes) return 0.0;
    return m->f1[positive];
}

void lp_cls_metrics_format(const lp_cls_metrics *m, const char *const *names, char *buf, size_t size)
{
    if (!buf || !size) return;
    buf[0] = '\0';
    if (!m || !m->f1) return;
    size_t off = 0;
#define APPEND(...) do { if (off < size) { int w__ = snprintf(buf + off, size - off, __VA_ARGS__); \
    if (w__ > 0) off += (size_t)w__; } } while (0)
    char nb[32];
#define NAME(k) (names ? names[k] : (snprintf(nb, sizeof nb, "%d", (int)(k)), nb))
    APPEND("accuracy %.4f  macro F1 %.4f  (%lld examples)\n", m->accuracy, m->macro_f1, (long long)m->n);
    APPEND("%-16s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (int32_t k = 0; k < m->n_classes; k++)
        APPEND("%-16.16s %9.4f %9.4f %9.4f %9lld\n", NAME(k), m->precision[k], m->recall[k], m->f1[k],
               (long long)m->support[k]);
    if (m->n_classes <= 16) {
        APPEND("confusion (rows: truth, columns: prediction)\n");
        for (int32_t k = 0; k < m->n_classes; k++) {
            APPEND("%-16.16s", NAME(k));
            for (int32_t j = 0; j < m->n_classes; j++)
                APPEND(" %7lld", (long long)m->confusion[(size_t)k * (size_t)m->n_classes + (size_t)j]);
            APPEND("\n");
        }
    }
#undef NAME
#undef APPEND
}
