/* RFC 4180 CSV (and TSV) records over an in-memory buffer.
 *
 * Quoted fields may hold separators, doubled quotes ("") and line breaks;
 * records end at LF or CRLF; blank lines are skipped. As Python's csv module,
 * a quote inside an unquoted field is kept literally. An unterminated quoted
 * field, or text between a closing quote and the next separator, is a format
 * error naming the line (never skippable: the record boundary is lost). */
#include "dataset_internal.h"

#include <string.h>

#include "leanprop/alloc.h"

struct lp_csv {
    const char *p, *end;
    const char *path;
    char sep;
    int64_t line;            /* line of the next character */
    char *buf;               /* unescaped field bytes of the current record */
    int64_t buf_cap;
    int64_t *starts;         /* field start offsets into buf */
    size_t *lens;
    const char **fields;
    int64_t fcap, lcap, pcap;
};

lp_status lp_csv_open_buffer(lp_csv **out, const char *data, size_t len, const char *path, char sep)
{
    lp_csv *c = lp_alloc(LP_MEM_DATA, sizeof *c);
    if (!c) return LP_ERR_NOMEM;
    c->p = data;
    c->end = data + len;
    c->path = path;
    c->sep = sep;
    c->line = 1;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) c->p += 3;
    *out = c;
    return LP_OK;
}

void lp_csv_close(lp_csv *c)
{
    if (!c) return;
    lp_free(c->buf);
    lp_free(c->starts);
    lp_free(c->lens);
    lp_free(c->fields);
    lp_free(c);
}

static lp_status put(lp_csv *c, int64_t *n, char ch)
{
    LP_TRY(lp_data_grow((void **)&c->buf, &c->buf_cap, *n + 2, 1));
    c->buf[(*n)++] = ch;
    return LP_OK;
}

lp_status lp_csv_next(lp_csv *c, const char *const **fields, const size_t **lens, int32_t *n_fields,
                      int64_t *line)
{
    *n_fields = 0;
    /* skip blank lines */
    while (c->p < c->end && (*c->p == '\n' || (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n'))) {
        c->p += *c->p == '\r' ? 2 : 1;
        c->line++;
    }
    if (c->p >= c->end) return LP_OK;
    int64_t start_line = c->line, nbuf = 0, nf = 0;
    for (;;) { /* one field per iteration */
        LP_TRY(lp_data_grow((void **)&c->starts, &c->fcap, nf + 1, sizeof *c->starts));
        LP_TRY(lp_data_grow((void **)&c->lens, &c->lcap, nf + 1, sizeof *c->lens));
        c->starts[nf] = nbuf;
        if (c->p < c->end && *c->p == '"') {
            int64_t open_line = c->line;
            c->p++;
            for (;;) {
                if (c->p >= c->end)
                    return lp_error(LP_ERR_FORMAT, "%s:%lld: unterminated quoted field (opened at line %lld)",
                                    c->path, (long long)c->line, (long long)open_line);
                char ch = *c->p++;
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"') { c->p++; LP_TRY(put(c, &nbuf, '"')); continue; }
                    break;
                }
                if (ch == '\n') c->line++;
                LP_TRY(put(c, &nbuf, ch));
            }
            if (c->p < c->end && *c->p != c->sep && *c->p != '\n' &&
                !(*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n') && !(*c->p == '\r' && c->p + 1 == c->end))
                return lp_error(LP_ERR_FORMAT, "%s:%lld: unexpected character '%c' after a closing quote in field %lld",
                                c->path, (long long)c->line, *c->p, (long long)nf + 1);
        } else {
            while (c->p < c->end && *c->p != c->sep && *c->p != '\n') {
                if (*c->p == '\r' && (c->p + 1 == c->end || c->p[1] == '\n')) { c->p++; continue; }
                LP_TRY(put(c, &nbuf, *c->p));
                c->p++;
            }
        }
        if (c->p < c->end && *c->p == '\r') c->p++; /* CR of CRLF after a quoted field */
        c->lens[nf] = (size_t)(nbuf - c->starts[nf]);
        LP_TRY(put(c, &nbuf, '\0'));
        nf++;
        if (c->p < c->end && *c->p == c->sep) { c->p++; continue; }
        if (c->p < c->end && *c->p == '\n') { c->p++; c->line++; }
        break;
    }
    LP_TRY(lp_data_grow((void **)&c->fields, &c->pcap, nf, sizeof *c->fields));
    for (int64_t i = 0; i < nf; i++) c->fields[i] = c->buf + c->starts[i];
    *fields = c->fields;
    *lens = c->lens;
    *n_fields = (int32_t)nf;
    if (line) *line = start_line;
    return LP_OK;
}
