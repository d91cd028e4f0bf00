/* leanprop/log.h: logging levels and a terminal progress bar.
 *
 * Logging goes to stderr unless a sink is installed; level from
 * $LEANPROP_LOG (error|warn|info|debug) or lp_log_set_level().
 *   lp_log(LP_LOG_WARN, "sequence %d truncated to %d tokens", i, max);
 *
 * Progress bar (drawn on stderr only when stderr is a terminal):
 *   lp_progress *p = lp_progress_new("epoch", total_steps);
 *   for (...) lp_progress_update(p, step + 1, "loss %.3f", loss);
 *   lp_progress_free(p);
 */
#ifndef LEANPROP_LOG_H
#define LEANPROP_LOG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LP_LOG_ERROR = 0, LP_LOG_WARN, LP_LOG_INFO, LP_LOG_DEBUG } lp_log_level;

typedef void (*lp_log_sink)(lp_log_level level, const char *msg, void *user);

void lp_log_set_level(lp_log_level level);
lp_log_level lp_log_get_level(void);
/* NULL restores the default stderr sink. */
void lp_log_set_sink(lp_log_sink sink, void *user);
void lp_log(lp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds from a monotonic clock. */
double lp_time_now(void);

typedef struct lp_progress lp_progress;

/* total may be 0 when unknown (no ETA then). Returns NULL on allocation failure;
 * all functions accept NULL. */
lp_progress *lp_progress_new(const char *label, int64_t total);
/* Force drawing on/off (default: isatty(stderr) and $LEANPROP_PROGRESS != 0). */
void lp_progress_set_enabled(lp_progress *p, int enabled);
void lp_progress_update(lp_progress *p, int64_t done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Format the bar line for `done` into buf without drawing (used by tests). */
void lp_progress_format(lp_progress *p, int64_t done, double elapsed_s, const char *extra,
                        char *buf, int buf_size);
void lp_progress_free(lp_progress *p);

#ifdef __cplusplus
}
#endif
#endif
