/* leanprop/metrics_log.h: training metrics as JSONL, loss-curve SVG plots,
 * classification scores.
 *
 * Metrics log: one JSON object per line, flushed per line (a crashed run
 * keeps every finished step), appended to on resume after
 * lp_metrics_log_truncate_after cut it back to the checkpoint. Each line carries the
 * step, the fields the caller set (NaN = absent), extra named values, the
 * allocator's exact memory counts per category (current and peak), the
 * seconds since the log was opened and the Unix time:
 *   {"step":10,"epoch":0.05,"loss":2.3141,"lr":0.0004,"tokens_per_s":5321.2,
 *    "mem":{"weights":{"current":..,"peak":..},...,"total":{..}},"wall_s":12.5,"time":1718000000.1}
 *
 *   lp_metrics_log *log;
 *   lp_metrics_log_open(&log, "run/metrics.jsonl", 1);
 *   lp_metrics_row row = lp_metrics_row_empty(step);
 *   row.loss = loss; row.lr = lr; row.tokens_per_s = tps;
 *   lp_metrics_log_write(log, &row);
 *   lp_metrics_log_close(log);
 *   lp_plot_loss_svg("run/metrics.jsonl", "run/loss.svg", NULL);   // --plot
 *
 * SVG plots are self-contained (no scripts, fonts or external files): axes
 * with "nice" ticks, grid, one <polyline> per series, a legend.
 *
 * Classification: accuracy, per-class precision/recall/F1 from a confusion
 * matrix, binary F1 of a positive class, macro F1 (over the classes that
 * occur in truth or prediction, as scikit-learn's default; 0/0 counts as 0).
 */
#ifndef LEANPROP_METRICS_LOG_H
#define LEANPROP_METRICS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ metrics log */

typedef struct {
    int64_t step;
    double epoch;          /* NaN = not written (all doubles below too) */
    double loss;           /* training loss (mean over the logging window) */
    double val_loss;
    double lr;
    double tokens_per_s;
    double grad_norm;
    int32_t n_extra;       /* more named values, e.g. {"val_acc", "val_f1"} */
    const char *const *extra_names;
    const double *extra_values;
} lp_metrics_row;

/* step, every double NaN, no extras. */
lp_metrics_row lp_metrics_row_empty(int64_t step);

typedef struct lp_metrics_log lp_metrics_log;

/* append = 1 keeps existing lines (resume); 0 truncates. */
lp_status lp_metrics_log_open(lp_metrics_log **out, const char *path, int append);
/* Write one line and flush it. Non-finite values are written as null. */
lp_status lp_metrics_log_write(lp_metrics_log *log, const lp_metrics_row *row);
/* Format a row as its JSON line (no newline) without writing: snprintf
 * contract (returns the length needed). wall_s < 0 omits wall_s and time. */
size_t lp_metrics_format_row(char *buf, size_t size, const lp_metrics_row *row, double wall_s);
/* Resume: cut the log back to what the checkpoint covers, so lines a crashed run wrote after
 * its last save are not logged twice. Keeps the longest prefix of whole lines before the
 * first line whose values of keys[0..n_keys) compare lexicographically greater than
 * limit[0..n_keys) (lines lacking a key, or not JSON, never end the prefix); a torn last line
 * without its newline goes too. The kept lines stay byte-identical; the file is replaced
 * atomically (temp file + rename) and only when something is cut. A missing file is fine.
 * *removed (may be NULL): lines cut. E.g. finetune: keys {"step"}, limit {S};
 * gnn: keys {"run", "step"}, limit {run, epoch}. */
lp_status lp_metrics_log_truncate_after(const char *path, const char *const *keys, const double *limit, int n_keys,
                                        int64_t *removed);
/* Close (reports a failed final flush). NULL is a no-op. */
lp_status lp_metrics_log_close(lp_metrics_log *log);

/* The status text for a progress bar: "loss 2.3141 | 5.32k tok/s | mem 1.41 GiB
 * (act 212 MiB) peak 1.52 GiB"; NaN values are left out. */
void lp_metrics_format_progress(char *buf, size_t size, double loss, double tokens_per_s);

/* ------------------------------------------------------------------ series */

typedef struct {
    int64_t n;
    double *x;             /* LP_MEM_DATA */
    double *y;
} lp_series;

/* (step, key) of every line of a metrics log that has a finite `key`.
 * Malformed lines (e.g. a crashed run's last line) are skipped and counted in
 * *skipped (may be NULL). */
lp_status lp_metrics_log_read_series(const char *path, const char *key, lp_series *out, int64_t *skipped);
void lp_series_free(lp_series *s);

/* -------------------------------------------------------------------- plot */

typedef struct {
    const char *name;      /* legend label */
    const double *x, *y;
    int64_t n;
    const char *color;     /* NULL: palette */
} lp_plot_series;

typedef struct {
    const char *title;     /* NULL: none */
    const char *xlabel, *ylabel;
    int width, height;     /* pixels; 0: 800 x 480 */
    int log_y;             /* 1: logarithmic y axis (non-positive values skipped) */
} lp_plot_options;

/* Render to a NUL-terminated SVG string (LP_MEM_DATA, lp_free it).
 * Non-finite points are skipped. */
lp_status lp_plot_svg_render(char **svg, size_t *len, const lp_plot_options *opt, const lp_plot_series *series,
                             int n_series);
/* Render and write to path (temporary file, then rename). */
lp_status lp_plot_svg_write(const char *path, const lp_plot_options *opt, const lp_plot_series *series,
                            int n_series);
/* --plot: "loss" and "val_loss" against "step" from a metrics log. opt may be
 * NULL (title "loss", axes "step" / "loss"). */
lp_status lp_plot_loss_svg(const char *log_path, const char *svg_path, const lp_plot_options *opt);

/* ---------------------------------------------------- classification scores */

typedef struct {
    int32_t n_classes;
    int64_t n;             /* examples */
    int64_t *confusion;    /* (n_classes, n_classes), [truth][pred]; LP_MEM_DATA */
    int64_t *support;      /* (n_classes) examples per true class */
    double *precision, *recall, *f1;   /* (n_classes); 0 where 0/0 */
    double accuracy;
    double macro_f1;
} lp_cls_metrics;

/* truth[i], pred[i] in [0, n_classes). */
lp_status lp_cls_metrics_compute(lp_cls_metrics *m, const int32_t *truth, const int32_t *pred, int64_t n,
                                 int32_t n_classes);
/* F1 of one class as the positive one (binary F1, e.g. "spam"). */
double lp_cls_metrics_binary_f1(const lp_cls_metrics *m, int32_t positive);
/* A small table: accuracy, macro F1, then per class precision/recall/F1/support
 * and the confusion matrix. names may be NULL (class indices). */
void lp_cls_metrics_format(const lp_cls_metrics *m, const char *const *names, char *buf, size_t size);
void lp_cls_metrics_free(lp_cls_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
