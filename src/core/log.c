/* Logging and the terminal progress bar. */
#include "leanprop/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static lp_log_level g_level = LP_LOG_INFO;
static int g_level_from_env_done = 0;
static lp_log_sink g_sink = NULL;
static void *g_sink_user = NULL;

static void init_level_from_env(void)
{
    if (g_level_from_env_done) return;
    g_level_from_env_done = 1;
    const char *env = getenv("LEANPROP_LOG");
    if (!env) return;
    if (!strcmp(env, "error")) g_level = LP_LOG_ERROR;
    else if (!strcmp(env, "warn")) g_level = LP_LOG_WARN;
    else if (!strcmp(env, "info")) g_level = LP_LOG_INFO;
    else if (!strcmp(env, "debug")) g_level = LP_LOG_DEBUG;
}

void lp_log_set_level(lp_log_level level) { g_level_from_env_done = 1; g_level = level; }
lp_log_level lp_log_get_level(void) { init_level_from_env(); return g_level; }

void lp_log_set_sink(lp_log_sink sink, void *user)
{
    g_sink = sink;
    g_sink_user = user;
}

void lp_log(lp_log_level level, const char *fmt, ...)
{
    init_level_from_env();
    if (level > g_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_sink) { g_sink(level, msg, g_sink_user); return; }
    static const char *const prefix[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "leanprop %s: %s\n", prefix[level], msg);
}

double lp_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct lp_progress {
    char label[64];
    int64_t total;
    double start;
    double last_draw;
    int enabled;
    int drawn;
};

lp_progress *lp_progress_new(const char *label, int64_t total)
{
    lp_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->start = lp_time_now();
    p->last_draw = 0.0;
    const char *env = getenv("LEANPROP_PROGRESS");
    p->enabled = isatty(STDERR_FILENO) && !(env && !strcmp(env, "0"));
    return p;
}

void lp_progress_set_enabled(lp_progress *p, int enabled)
{
    if (p) p->enabled = enabled;
}

static void format_duration(double s, char *buf, int n)
{
    if (s < 0 || s > 359999) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

void lp_progress_format(lp_progress *p, int64_t done, double elapsed_s, const char *extra, char *buf,
                        int buf_size)
{
    if (!p || !buf || buf_size <= 0) return;
    char el[16], eta[16], bar[32];
    double rate = elapsed_s > 0 ? (double)done / elapsed_s : 0.0;
    format_duration(elapsed_s, el, sizeof el);
    const int width = 24;
    if (p->total > 0) {
        double frac = (double)done / (double)p->total;
        if (frac > 1) frac = 1;
        int fill = (int)(frac * width);
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        format_duration(rate > 0 ? (double)(p->total - done) / rate : -1, eta, sizeof eta);
        snprintf(buf, buf_size, "%s [%s] %lld/%lld %5.1f%% %.2f it/s elapsed %s eta %s%s%s", p->label, bar,
                 (long long)done, (long long)p->total, 100.0 * frac, rate, el, eta, extra && *extra ? " " : "",
                 extra ? extra : "");
    } else {
        snprintf(buf, buf_size, "%s %lld %.2f it/s elapsed %s%s%s", p->label, (long long)done, rate, el,
                 extra && *extra ? " " : "", extra ? extra : "");
    }
}

void lp_progress_update(lp_progress *p, int64_t done, const char *fmt, ...)
{
    if (!p || !p->enabled) return;
    double now = lp_time_now();
    int final = p->total > 0 && done >= p->total;
    if (!final && now - p->last_draw < 0.1) return; /* at most 10 redraws a second */
    p->last_draw = now;
    char extra[256] = "", line[512];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    lp_progress_format(p, done, now - p->start, extra, line, sizeof line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->drawn = 1;
}

void lp_progress_free(lp_progress *p)
{
    if (!p) return;
    if (p->enabled && p->drawn) fputc('\n', stderr);
    free(p);
}
