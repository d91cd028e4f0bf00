/* leanprop/status.h: status codes and error messages.
 *
 * Every fallible library function returns lp_status. On failure it leaves a
 * human-readable message (what failed and where: file, tensor, line) that the
 * caller reads with lp_error_message(). Library code never prints, exits or
 * aborts on bad input; the CLI turns a status into a message and exit code.
 *
 *   lp_status st = lp_safetensors_open(&f, "model.safetensors");
 *   if (st != LP_OK) fprintf(stderr, "error: %s\n", lp_error_message());
 */
#ifndef LEANPROP_STATUS_H
#define LEANPROP_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_OK = 0,
    LP_ERR_INVALID_ARG,   /* NULL pointer, zero/negative/overflowing size, bad option */
    LP_ERR_NOMEM,         /* allocation failed or memory budget exceeded */
    LP_ERR_IO,            /* open/read/write/rename failed */
    LP_ERR_FORMAT,        /* malformed file: truncated, wrong type, out of range */
    LP_ERR_UNSUPPORTED,   /* valid but not supported (dtype, architecture, ...) */
    LP_ERR_NOT_FOUND,     /* missing tensor, key, file */
    LP_ERR_NUMERIC,       /* NaN/Inf detected */
    LP_ERR_INTERNAL,      /* broken invariant inside leanprop: a bug */
    LP_STATUS_COUNT
} lp_status;

/* Short fixed name of a status code, e.g. "format error". */
const char *lp_status_name(lp_status st);

/* Message of the most recent failure on this thread ("" if none). */
const char *lp_error_message(void);

/* Record a failure message (printf-style) for this thread and return `st`,
 * so library code can write: return lp_error(LP_ERR_FORMAT, "%s: bad header", path); */
lp_status lp_error(lp_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepend context to the current message ("loading model: " + old message). */
lp_status lp_error_context(lp_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void lp_error_clear(void);

/* Propagate a failure: LP_TRY(lp_foo(...)); */
#define LP_TRY(expr) do { lp_status lp__st = (expr); if (lp__st != LP_OK) return lp__st; } while (0)

#ifdef __cplusplus
}
#endif
#endif
