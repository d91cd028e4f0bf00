/* Training metrics: the JSONL log, progress-bar text, and SVG loss plots. */
#include "leanprop/metrics_log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "leanprop/alloc.h"
#include "leanprop/dataset.h"
#include "leanprop/fileio.h"
#include "leanprop/log.h"

/* ------------------------------------------------------------ string buffer */

typedef struct {
    char *s;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        size_t room = b->cap - b->n;
        va_list ap;
        va_start(ap, fmt);
        int w = room ? vsnprintf(b->s + b->n, room, fmt, ap) : -1;
        va_end(ap);
        if (w >= 0 && (size_t)w < room) { b->n += (size_t)w; return; }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (w >= 0 && nc - b->n <= (size_t)w) nc *= 2;
        char *ns = b->s ? lp_realloc(b->s, nc) : lp_alloc(LP_MEM_DATA, nc);
        if (!ns) { b->failed = 1; return; }
        b->s = ns;
        b->cap = nc;
        if (w < 0 && room) { b->failed = 1; lp_error(LP_ERR_INTERNAL, "format error"); return; }
    }
}

/* Text as XML character data / attribute value. */
static void sb_xml(sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n') sb_printf(b, "%c", *s);
        }
    }
}

/* ------------------------------------------------------------- metrics log */

struct lp_metrics_log {
    FILE *f;
    char *path;
    double t0;
};

lp_metrics_row lp_metrics_row_empty(int64_t step)
{
    lp_metrics_row r;
    memset(&r, 0, sizeof r);
    r.step = step;
    r.epoch = r.loss = r.val_loss = r.lr = r.tokens_per_s = r.grad_norm = NAN;
    return r;
}

lp_status lp_metrics_log_open(lp_metrics_log **out, const char *path, int append)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_metrics_log_open: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, append ? "ab" : "wb");
    if (!f) return lp_error(LP_ERR_IO, "%s: cannot open metrics log: %s", path, strerror(errno));
    lp_metrics_log *log = lp_alloc(LP_MEM_DATA, sizeof *log);
    char *p = log ? lp_alloc(LP_MEM_DATA, strlen(path) + 1) : NULL;
    if (!p) { lp_free(log); fclose(f); return LP_ERR_NOMEM; }
    strcpy(p, path);
    log->f = f;
    log->path = p;
    log->t0 = lp_time_now();
    *out = log;
    return LP_OK;
}

static void json_num(sbuf *b, const char *key, double v)
{
    if (isnan(v)) return; /* absent */
    if (isfinite(v)) sb_printf(b, ",\"%s\":%.9g", key, v);
    else sb_printf(b, ",\"%s\":null", key);
}

static void json_key(sbuf *b, const char *key)
{
    sb_printf(b, ",\"");
    for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
        if (*s == '"' || *s == '\\') sb_printf(b, "\\%c", *s);
        else if (*s < 0x20) sb_printf(b, "\\u%04x", *s);
        else sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\":");
}

static void render_row(sbuf *b, const lp_metrics_row *row, double wall_s)
{
    sb_printf(b, "{\"step\":%lld", (long long)row->step);
    json_num(b, "epoch", row->epoch);
    json_num(b, "loss", row->loss);
    json_num(b, "val_loss", row->val_loss);
    json_num(b, "lr", row->lr);
    json_num(b, "tokens_per_s", row->tokens_per_s);
    json_num(b, "grad_norm", row->grad_norm);
    for (int32_t i = 0; i < row->n_extra && row->extra_names && row->extra_values; i++) {
        if (!row->extra_names[i]) continue;
        json_key(b, row->extra_names[i]);
        double v = row->extra_values[i];
        if (isfinite(v)) sb_printf(b, "%.9g", v);
        else sb_printf(b, "null");
    }
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    sb_printf(b, ",\"mem\":{");
    for (int c = 0; c < LP_MEM_COUNT; c++)
        sb_printf(b, "\"%s\":{\"current\":%zu,\"peak\":%zu},", lp_mem_category_name((lp_mem_category)c), s.current[c],
                  s.peak[c]);
    sb_printf(b, "\"total\":{\"current\":%zu,\"peak\":%zu}}", s.total_current, s.total_peak);
    if (wall_s >= 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sb_printf(b, ",\"wall_s\":%.3f,\"time\":%.3f", wall_s, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    }
    sb_printf(b, "}");
}

size_t lp_metrics_format_row(char *buf, size_t size, const lp_metrics_row *row, double wall_s)
{
    sbuf b = {0};
    render_row(&b, row, wall_s);
    size_t n = b.failed ? 0 : b.n;
    if (buf && size) {
        size_t k = n < size - 1 ? n : size - 1;
        if (k) memcpy(buf, b.s, k);
        buf[k] = '\0';
    }
    lp_free(b.s);
    return n;
}

lp_status lp_metrics_log_write(lp_metrics_log *log, const lp_metrics_row *row)
{
    if (!log || !row) return lp_error(LP_ERR_INVALID_ARG, "lp_metrics_log_write: NULL argument");
    sbuf b = {0};
    render_row(&b, row, lp_time_now() - log->t0);
    sb_printf(&b, "\n");
    if (b.failed) { lp_free(b.s); return LP_ERR_NOMEM; }
    size_t w = fwrite(b.s, 1, b.n, log->f);
    lp_free(b.s);
    if (w != b.n || fflush(log->f) != 0)
        return lp_error(LP_ERR_IO, "%s: writing metrics failed: %s", log->path, strerror(errno));
    return LP_OK;
}

lp_status lp_metrics_log_close(lp_metrics_log *log)
{
    if (!log) return LP_OK;
    lp_status st = LP_OK;
    if (fclose(log->f) != 0) st = lp_error(LP_ERR_IO, "%s: closing metrics log failed: %s", log->path, strerror(errno));
    lp_free(log->path);
    lp_free(log);
    return st;
}

static const char *format_rate(double v, char *buf, size_t size)
{
    if (v >= 1e6) snprintf(buf, size, "%.2fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, size, "%.2fk", v / 1e3);
    else snprintf(buf, size, "%.0f", v);
    return buf;
}

void lp_metrics_format_progress(char *buf, size_t size, double loss, double tokens_per_s)
{
    if (!buf || !size) return;
    char r[32], a[32], b2[32], c[32];
    size_t off = 0;
    buf[0] = '\0';
#define APPEND(...) do { if (off < size) { int w__ = snprintf(buf + off, size - off, __VA_ARGS__); \
    if (w__ > 0) off += (size_t)w__; } } while (0)
    if (!isnan(loss)) APPEND("loss %.4f | ", loss);
    if (!isnan(tokens_per_s)) APPEND("%s tok/s | ", format_rate(tokens_per_s, r, sizeof r));
    APPEND("mem %s (act %s) peak %s", lp_format_bytes(lp_mem_total_current(), a, sizeof a),
           lp_format_bytes(lp_mem_current(LP_MEM_ACTIVATIONS), b2, sizeof b2),
           lp_format_bytes(lp_mem_total_peak(), c, sizeof c));
#undef APPEND
}

/* -------------------------------------------------------------- truncate */

/* -1, 0, 1: the line's (keys) against limit, lexicographically; 0 also when a key is missing
 * or the line is not a JSON object (such lines never end the kept prefix). */
static int line_vs_limit(const char *line, size_t n, const char *const *keys, const double *limit, int n_keys)
{
    cJSON *o = cJSON_ParseWithLength(line, n);
    int c = 0;
    for (int k = 0; o && k < n_keys && c == 0; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (!cJSON_IsNumber(v)) { c = 0; break; }
        c = v->valuedouble > limit[k] ? 1 : v->valuedouble < limit[k] ? -1 : 0;
    }
    cJSON_Delete(o);
    return c;
}

lp_status lp_metrics_log_truncate_after(const char *path, const char *const *keys, const double *limit, int n_keys,
                                        int64_t *removed)
{
    if (removed) *removed = 0;
    if (!path || !keys || !limit || n_keys < 1)
        return lp_error(LP_ERR_INVALID_ARG, "lp_metrics_log_truncate_after: NULL argument");
    if (!lp_path_exists(path)) return LP_OK;
    char *text;
    size_t len;
    LP_TRY(lp_file_read_all(path, (size_t)1 << 32, LP_MEM_SCRATCH, &text, &len));
    size_t keep = 0;
    int64_t cut_lines = 0;
    int cut = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (!nl) { cut_lines++; break; } /* a torn last line (killed while writing) goes too */
        size_t end = (size_t)(nl - text) + 1;
        if (!cut && line_vs_limit(text + i, end - i, keys, limit, n_keys) > 0) cut = 1;
        if (cut) cut_lines++;
        else keep = end;
        i = end;
    }
    lp_status st = keep == len ? LP_OK : lp_file_write_atomic(path, text, keep);
    lp_free(text);
    if (st != LP_OK) return lp_error_context(st, "cutting the metrics log back to the checkpoint");
    if (removed) *removed = cut_lines;
    return LP_OK;
}

/* ------------------------------------------------------------------ series */

void lp_series_free(lp_series *s)
{
    if (!s) return;
    lp_free(s->x);
    lp_free(s->y);
    memset(s, 0, sizeof *s);
}

lp_status lp_metrics_log_read_series(const char *path, const char *key, lp_series *out, int64_t *skipped)
{
    if (!path || !key || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_metrics_log_read_series: NULL argument");
    memset(out, 0, sizeof *out);
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    lp_jsonl *r;
    LP_TRY(lp_jsonl_open(&r, path, LP_BAD_INPUT_SKIP, &rep));
    int64_t cap = 0;
    lp_status st = LP_OK;
    for (;;) {
        const cJSON *o;
        int64_t line;
        st = lp_jsonl_next(r, &o, &line);
        if (st != LP_OK || !o) break;
        const cJSON *sx = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *sy = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!cJSON_IsNumber(sx) || !cJSON_IsNumber(sy) || !isfinite(sy->valuedouble)) continue;
        if (out->n == cap) {
            int64_t nc = cap ? cap * 2 : 256;
            double *nx = out->x ? lp_realloc(out->x, (size_t)nc * sizeof(double))
                                : lp_alloc_array(LP_MEM_DATA, (size_t)nc, sizeof(double));
            if (nx) out->x = nx;
            double *ny = !nx ? NULL : out->y ? lp_realloc(out->y, (size_t)nc * sizeof(double))
                                             : lp_alloc_array(LP_MEM_DATA, (size_t)nc, sizeof(double));
            if (!ny) { st = LP_ERR_NOMEM; break; }
            out->y = ny;
            cap = nc;
        }
        out->x[out->n] = sx->valuedouble;
        out->y[out->n] = sy->valuedouble;
        out->n++;
    }
    lp_jsonl_close(r);
    if (st != LP_OK) { lp_series_free(out); return st; }
    if (skipped) *skipped = rep.skipped_malformed;
    return LP_OK;
}

/* -------------------------------------------------------------------- plot */

static const char *const k_palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

/* A 1-2-5 step giving about `target` intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int target)
{
    double range = hi - lo;
    if (!(range > 0)) return 1.0;
    double rough = range / target, mag = pow(10.0, floor(log10(rough))), norm = rough / mag;
    return (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * mag;
}

static void fmt_tick(char *buf, size_t size, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0.0;
    int decimals = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e6 || (v != 0.0 && fabs(v) < 1e-4)) snprintf(buf, size, "%.3g", v);
    else snprintf(buf, size, "%.*f", decimals > 8 ? 8 : decimals, v);
}

typedef struct {
    double x0, x1, y0, y1;   /* data range (y in log10 units when log_y) */
    double L, T, W, H;       /* plot area in pixels */
    int log_y;
} frame;

static double px(const frame *f, double x) { return f->L + (x - f->x0) / (f->x1 - f->x0) * f->W; }
static double py(const frame *f, double y)
{
    double v = f->log_y ? log10(y) : y;
    return f->T + f->H - (v - f->y0) / (f->y1 - f->y0) * f->H;
}

static int usable(const frame *f, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!f->log_y || y > 0.0);
}

lp_status lp_plot_svg_render(char **svg, size_t *len, const lp_plot_options *opt, const lp_plot_series *series,
                             int n_series)
{
    if (!svg || (n_series > 0 && !series) || n_series < 0) return lp_error(LP_ERR_INVALID_ARG, "lp_plot_svg_render: bad argument");
    *svg = NULL;
    lp_plot_options o;
    memset(&o, 0, sizeof o);
    if (opt) o = *opt;
    int width = o.width > 0 ? o.width : 800, height = o.height > 0 ? o.height : 480;
    if (width < 200 || height < 150 || width > 20000 || height > 20000)
        return lp_error(LP_ERR_INVALID_ARG, "plot size %d x %d outside 200x150 .. 20000x20000", width, height);
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, 70, o.title ? 40 : 20, 0, 0, o.log_y};
    f.W = width - f.L - 20 - 130; /* legend column on the right */
    f.H = height - f.T - 55;
    for (int s = 0; s < n_series; s++)
        for (int64_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!usable(&f, x, y)) continue;
            double v = f.log_y ? log10(y) : y;
            if (x < f.x0) f.x0 = x;
            if (x > f.x1) f.x1 = x;
            if (v < f.y0) f.y0 = v;
            if (v > f.y1) f.y1 = v;
        }
    if (!(f.x0 <= f.x1)) { f.x0 = 0; f.x1 = 1; }
    if (!(f.y0 <= f.y1)) { f.y0 = 0; f.y1 = 1; }
    if (!(f.x1 > f.x0)) { double d = fabs(f.x0) > 1 ? fabs(f.x0) * 1e-3 : 1.0; f.x0 -= d; f.x1 += d; }
    if (!(f.y1 > f.y0)) { double d = fabs(f.y0) > 0 ? fabs(f.y0) * 0.1 : 1.0; f.y0 -= d; f.y1 += d; }
    double xs = nice_step(f.x0, f.x1, 8), ys;
    if (!f.log_y) {
        ys = nice_step(f.y0, f.y1, 6);
        f.y0 = floor(f.y0 / ys + 1e-9) * ys;
        f.y1 = ceil(f.y1 / ys - 1e-9) * ys;
    } else {
        f.y0 = floor(f.y0);
        f.y1 = ceil(f.y1);
        if (f.y1 == f.y0) f.y1 += 1;
        ys = 1.0;
    }

    sbuf b = {0};
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n", width, height, width, height);
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height);
    if (o.title) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", f.L + f.W / 2);
        sb_xml(&b, o.title);
        sb_printf(&b, "</text>\n");
    }
    char t[48];
    /* ticks by integer counters: x0 + k*step always advances, even where x0 + step == x0 */
    double xfirst = ceil(f.x0 / xs - 1e-9) * xs;
    int nxt = 0, nyt = 0;
    while (nxt < 50 && xfirst + nxt * xs <= f.x1 + xs * 1e-9) nxt++;
    while (nyt < 50 && f.y0 + nyt * ys <= f.y1 + ys * 1e-9) nyt++;
    /* grid and ticks */
    sb_printf(&b, "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    for (int k = 0; k < nxt; k++) {
        double x = xfirst + k * xs;
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", px(&f, x), f.T, px(&f, x), f.T + f.H);
    }
    for (int k = 0; k < nyt; k++) {
        double y = f.y0 + k * ys;
        double yy = f.T + f.H - (y - f.y0) / (f.y1 - f.y0) * f.H;
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f.L, yy, f.L + f.W, yy);
    }
    sb_printf(&b, "</g>\n<g fill=\"#333\">\n");
    for (int k = 0; k < nxt; k++) {
        double x = xfirst + k * xs;
        fmt_tick(t, sizeof t, x, xs);
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", px(&f, x), f.T + f.H + 16, t);
    }
    for (int k = 0; k < nyt; k++) {
        double y = f.y0 + k * ys;
        double yy = f.T + f.H - (y - f.y0) / (f.y1 - f.y0) * f.H;
        if (f.log_y) snprintf(t, sizeof t, "%g", pow(10.0, y));
        else fmt_tick(t, sizeof t, y, ys);
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", f.L - 6, yy + 4, t);
    }
    sb_printf(&b, "</g>\n");
    /* axes and labels */
    sb_printf(&b, "<path d=\"M%.2f %.2fV%.2fH%.2f\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>\n", f.L, f.T,
              f.T + f.H, f.L + f.W);
    if (o.xlabel) {
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", f.L + f.W / 2, f.T + f.H + 38);
        sb_xml(&b, o.xlabel);
        sb_printf(&b, "</text>\n");
    }
    if (o.ylabel) {
        sb_printf(&b, "<text transform=\"translate(16 %.2f) rotate(-90)\" text-anchor=\"middle\">", f.T + f.H / 2);
        sb_xml(&b, o.ylabel);
        sb_printf(&b, "</text>\n");
    }
    /* series */
    for (int s = 0; s < n_series; s++) {
        const lp_plot_series *se = &series[s];
        const char *color = se->color ? se->color : k_palette[s % 6];
        sb_printf(&b, "<polyline fill=\"none\" stroke=\"");
        sb_xml(&b, color);
        sb_printf(&b, "\" stroke-width=\"1.5\" points=\"");
        int64_t shown = 0;
        for (int64_t i = 0; i < se->n; i++) {
            if (!usable(&f, se->x[i], se->y[i])) continue;
            sb_printf(&b, "%s%.2f,%.2f", shown++ ? " " : "", px(&f, se->x[i]), py(&f, se->y[i]));
        }
        sb_printf(&b, "\"/>\n");
        if (shown <= 60) { /* markers for short series (e.g. validation) */
            sb_printf(&b, "<g fill=\"");
            sb_xml(&b, color);
            sb_printf(&b, "\">");
            for (int64_t i = 0; i < se->n; i++)
                if (usable(&f, se->x[i], se->y[i]))
                    sb_printf(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\"/>", px(&f, se->x[i]), py(&f, se->y[i]));
            sb_printf(&b, "</g>\n");
        }
        double ly = f.T + 10 + 20.0 * s, lx = f.L + f.W + 15;
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"", lx, ly, lx + 22, ly);
        sb_xml(&b, color);
        sb_printf(&b, "\" stroke-width=\"2\"/><text x=\"%.2f\" y=\"%.2f\">", lx + 28, ly + 4);
        sb_xml(&b, se->name ? se->name : "");
        sb_printf(&b, "</text>\n");
    }
    sb_printf(&b, "</svg>\n");
    if (b.failed) { lp_free(b.s); return LP_ERR_NOMEM; }
    *svg = b.s;
    if (len) *len = b.n;
    return LP_OK;
}

lp_status lp_plot_svg_write(const char *path, const lp_plot_options *opt, const lp_plot_series *series, int n_series)
{
    if (!path) return lp_error(LP_ERR_INVALID_ARG, "lp_plot_svg_write: NULL path");
    char *svg;
    size_t len;
    LP_TRY(lp_plot_svg_render(&svg, &len, opt, series, n_series));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    lp_status st = LP_OK;
    if (!f) st = lp_error(LP_ERR_IO, "%s: cannot write plot: %s", path, strerror(errno));
    else {
        size_t w = fwrite(svg, 1, len, f);
        if ((fclose(f) != 0) | (w != len)) st = lp_error(LP_ERR_IO, "%s: writing plot failed", path);
        else if (rename(tmp, path) != 0) st = lp_error(LP_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        if (st != LP_OK) remove(tmp);
    }
    lp_free(svg);
    return st;
}

lp_status lp_plot_loss_svg(const char *log_path, const char *svg_path, const lp_plot_options *opt)
{
    lp_series tr, va;
    LP_TRY(lp_metrics_log_read_series(log_path, "loss", &tr, NULL));
    lp_status st = lp_metrics_log_read_series(log_path, "val_loss", &va, NULL);
    if (st != LP_OK) { lp_series_free(&tr); return st; }
    if (tr.n == 0 && va.n == 0) st = lp_error(LP_ERR_FORMAT, "%s: no \"loss\" or \"val_loss\" values to plot", log_path);
    if (st == LP_OK) {
        lp_plot_options o = {"loss", "step", "loss", 0, 0, 0};
        if (opt) o = *opt;
        lp_plot_series s[2] = {{"train", tr.x, tr.y, tr.n, NULL}, {"validation", va.x, va.y, va.n, NULL}};
        st = lp_plot_svg_write(svg_path, &o, s, 2);
    }
    lp_series_free(&tr);
    lp_series_free(&va);
    return st;
}
