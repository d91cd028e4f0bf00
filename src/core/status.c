/* Status codes and per-thread error messages. */
#include "leanprop/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LP_ERRMSG_MAX 1024

static _Thread_local char g_message[LP_ERRMSG_MAX];

static const char *const g_names[LP_STATUS_COUNT] = {
    [LP_OK] = "ok",
    [LP_ERR_INVALID_ARG] = "invalid argument",
    [LP_ERR_NOMEM] = "out of memory",
    [LP_ERR_IO] = "I/O error",
    [LP_ERR_FORMAT] = "format error",
    [LP_ERR_UNSUPPORTED] = "unsupported",
    [LP_ERR_NOT_FOUND] = "not found",
    [LP_ERR_NUMERIC] = "non-finite value",
    [LP_ERR_INTERNAL] = "internal error",
};

const char *lp_status_name(lp_status st)
{
    if ((int)st < 0 || st >= LP_STATUS_COUNT) return "unknown status";
    return g_names[st];
}

const char *lp_error_message(void) { return g_message; }

void lp_error_clear(void) { g_message[0] = '\0'; }

lp_status lp_error(lp_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    return st;
}

lp_status lp_error_context(lp_status st, const char *fmt, ...)
{
    char prefix[LP_ERRMSG_MAX], old[LP_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_message, sizeof old);
    snprintf(g_message, sizeof g_message, "%s: %s", prefix, old);
    return st;
}
