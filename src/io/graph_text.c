/* Plain-text graphs for users' own data:
 *   NAME.edges.txt     "u v" per line (extra columns ignored), '#' or '%' comments
 *   NAME.labels.txt    "node label" per line (or just "label": line k = node k); -1 = unlabelled
 *   NAME.features.txt  "node f1 f2 ... fF" per line, the same F on every line
 * Node ids are 0-based integers; the node count is the largest id seen + 1.
 * Edges are made undirected and self loops dropped. Without features the
 * nodes get one-hot identity features. */
#include "leanprop/graph.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"

typedef struct {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int64_t lineno;
} line_reader;

/* Next non-empty, non-comment line into r->line; 0 at end of file. */
static int next_line(line_reader *r)
{
    for (;;) {
        ssize_t n = getline(&r->line, &r->cap, r->f);
        if (n < 0) return 0;
        r->lineno++;
        char *s = r->line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\0' || *s == '\n' || *s == '\r' || *s == '#' || *s == '%') continue;
        return 1;
    }
}

/* Tokenise in place on blanks and commas; returns the token count (<= max). */
static int split_tokens(char *s, char **tok, int max)
{
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',' || *s == '\n' || *s == '\r') *s++ = '\0';
        if (!*s) break;
        if (n < max) tok[n] = s;
        n++;
        while (*s && *s != ' ' && *s != '\t' && *s != ',' && *s != '\n' && *s != '\r') s++;
    }
    return n;
}

static lp_status parse_int(const line_reader *r, const char *tok, int64_t lo, int64_t hi, const char *field, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (errno || *end || end == tok)
        return lp_error(LP_ERR_FORMAT, "%s:%lld: %s '%s' is not an integer", r->path, (long long)r->lineno, field, tok);
    if (v < lo || v > hi)
        return lp_error(LP_ERR_FORMAT, "%s:%lld: %s %lld is out of range [%lld, %lld]", r->path, (long long)r->lineno,
                        field, v, (long long)lo, (long long)hi);
    *out = v;
    return LP_OK;
}

static lp_status open_reader(line_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "r");
    if (!r->f) return lp_error(LP_ERR_IO, "%s: cannot open", path);
    return LP_OK;
}

static void close_reader(line_reader *r)
{
    if (r->f) fclose(r->f);
    free(r->line);
}

/* Growable int64 array in scratch memory. */
typedef struct { int64_t *v; int64_t n, cap; } vec64;

static lp_status vec_push(vec64 *a, int64_t x)
{
    if (a->n == a->cap) {
        int64_t nc = a->cap ? 2 * a->cap : 1024;
        int64_t *nv = lp_realloc(a->v, (size_t)nc * sizeof(int64_t));
        if (!nv) return LP_ERR_NOMEM;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = x;
    return LP_OK;
}

#define MAX_NODE 2000000000LL

lp_status lp_graph_dataset_load_text(lp_graph_dataset **out, const char *edges_path, const char *labels_path,
                                     const char *features_path, const lp_graph_load_opts *opts)
{
    if (!out || !edges_path) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_dataset_load_text: NULL argument");
    *out = NULL;
    line_reader r = {0};
    vec64 src = {0}, dst = {0}, lab_node = {0}, lab_val = {0}, feat_node = {0};
    float *fvals = NULL, *xd = NULL;
    int64_t fcap = 0, fn = 0, F = -1;
    int32_t *labels = NULL;
    lp_graph *g = NULL;
    lp_csr *xs = NULL;
    int64_t N = 0;
    char *tok[3];
    lp_status st;
    /* edges */
    if ((st = open_reader(&r, edges_path)) != LP_OK) return st;
    while (next_line(&r)) {
        int nt = split_tokens(r.line, tok, 3);
        int64_t u, v;
        if (nt < 2) { st = lp_error(LP_ERR_FORMAT, "%s:%lld: expected 'u v'", r.path, (long long)r.lineno); goto done; }
        if ((st = parse_int(&r, tok[0], 0, MAX_NODE, "node", &u)) != LP_OK) goto done;
        if ((st = parse_int(&r, tok[1], 0, MAX_NODE, "node", &v)) != LP_OK) goto done;
        if (vec_push(&src, u) || vec_push(&dst, v)) { st = lp_error(LP_ERR_NOMEM, "%s: out of memory", r.path); goto done; }
        N = u + 1 > N ? u + 1 : N;
        N = v + 1 > N ? v + 1 : N;
    }
    if (ferror(r.f)) { st = lp_error(LP_ERR_IO, "%s: read error", r.path); goto done; }
    close_reader(&r);
    memset(&r, 0, sizeof r);
    /* labels */
    if (labels_path) {
        if ((st = open_reader(&r, labels_path)) != LP_OK) goto done;
        int form = 0; /* 1: "label", 2: "node label" */
        while (next_line(&r)) {
            int nt = split_tokens(r.line, tok, 3);
            int64_t node, lab;
            if (nt < 1 || nt > 2 || (form && nt != form)) {
                st = lp_error(LP_ERR_FORMAT, "%s:%lld: expected 'node label' on every line", r.path, (long long)r.lineno);
                goto done;
            }
            form = nt;
            if (nt == 2) {
                if ((st = parse_int(&r, tok[0], 0, MAX_NODE, "node", &node)) != LP_OK) goto done;
                if ((st = parse_int(&r, tok[1], -1, 1000000, "label", &lab)) != LP_OK) goto done;
            } else {
                node = lab_node.n;
                if ((st = parse_int(&r, tok[0], -1, 1000000, "label", &lab)) != LP_OK) goto done;
            }
            if (vec_push(&lab_node, node) || vec_push(&lab_val, lab)) { st = LP_ERR_NOMEM; goto done; }
            N = node + 1 > N ? node + 1 : N;
        }
        close_reader(&r);
        memset(&r, 0, sizeof r);
    }
    /* features */
    if (features_path) {
        if ((st = open_reader(&r, features_path)) != LP_OK) goto done;
        while (next_line(&r)) {
            char *s = r.line, *end;
            errno = 0;
            long long node = strtoll(s, &end, 10);
            if (end == s || errno || node < 0 || node > MAX_NODE) {
                st = lp_error(LP_ERR_FORMAT, "%s:%lld: expected 'node f1 f2 ...'", r.path, (long long)r.lineno);
                goto done;
            }
            int64_t k = 0;
            for (s = end;; s = end) {
                while (*s == ' ' || *s == '\t' || *s == ',') s++;
                if (*s == '\0' || *s == '\n' || *s == '\r') break;
                errno = 0;
                float v = strtof(s, &end);
                if (end == s || !isfinite(v)) {
                    st = lp_error(LP_ERR_FORMAT, "%s:%lld: feature %lld is not a finite number", r.path,
                                  (long long)r.lineno, (long long)k + 1);
                    goto done;
                }
                if (fn == fcap) {
                    int64_t nc = fcap ? 2 * fcap : 4096;
                    float *nv = lp_realloc(fvals, (size_t)nc * sizeof(float));
                    if (!nv) { st = LP_ERR_NOMEM; goto done; }
                    fvals = nv;
                    fcap = nc;
                }
                fvals[fn++] = v;
                k++;
            }
            if (F < 0) F = k;
            if (k != F || k == 0) {
                st = lp_error(LP_ERR_FORMAT, "%s:%lld: %lld features, expected %lld as on the first line", r.path,
                              (long long)r.lineno, (long long)k, (long long)F);
                goto done;
            }
            if (vec_push(&feat_node, node)) { st = LP_ERR_NOMEM; goto done; }
            N = node + 1 > N ? node + 1 : N;
        }
        close_reader(&r);
        memset(&r, 0, sizeof r);
    }
    if (N == 0) { st = lp_error(LP_ERR_FORMAT, "%s: no edges", edges_path); goto done; }
    if ((st = lp_graph_from_edges(&g, N, src.v, dst.v, src.n, LP_GRAPH_SYMMETRIZE | LP_GRAPH_DROP_SELF_LOOPS,
                                  edges_path)) != LP_OK)
        goto done;
    if (labels_path) {
        labels = lp_alloc_array(LP_MEM_DATA, (size_t)N, sizeof(int32_t));
        if (!labels) { st = LP_ERR_NOMEM; goto done; }
        for (int64_t i = 0; i < N; i++) labels[i] = -1;
        for (int64_t k = 0; k < lab_node.n; k++) labels[lab_node.v[k]] = (int32_t)lab_val.v[k];
    }
    if (features_path) {
        if (feat_node.n != N) {
            st = lp_error(LP_ERR_FORMAT, "%s: features for %lld nodes, the graph has %lld", features_path,
                          (long long)feat_node.n, (long long)N);
            goto done;
        }
        xd = lp_alloc_array(LP_MEM_DATA, (size_t)(N * F), sizeof(float));
        unsigned char *seen = lp_alloc(LP_MEM_SCRATCH, (size_t)N);
        if (!xd || !seen) { lp_free(seen); st = LP_ERR_NOMEM; goto done; }
        for (int64_t k = 0; k < N; k++) {
            int64_t node = feat_node.v[k];
            if (seen[node]) {
                lp_free(seen);
                st = lp_error(LP_ERR_FORMAT, "%s: node %lld has two feature lines", features_path, (long long)node);
                goto done;
            }
            seen[node] = 1;
            memcpy(xd + node * F, fvals + k * F, (size_t)F * sizeof(float));
        }
        lp_free(seen);
    } else {
        int64_t *ip = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N + 1, sizeof(int64_t));
        int64_t *ix = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N, sizeof(int64_t));
        float *iv = lp_alloc_array(LP_MEM_SCRATCH, (size_t)N, sizeof(float));
        if (ip && ix && iv) {
            for (int64_t i = 0; i < N; i++) { ip[i + 1] = i + 1; ix[i] = i; iv[i] = 1.0f; }
            st = lp_csr_from_arrays(&xs, N, N, ip, ix, iv, N, "identity features");
        } else st = LP_ERR_NOMEM;
        lp_free(ip); lp_free(ix); lp_free(iv);
        F = N;
        if (st != LP_OK) goto done;
    }
    {
        lp_graph_dataset *ds;
        st = lp_graph_dataset_assemble(&ds, edges_path, g, xs, xd, F, labels, opts);
        g = NULL; xs = NULL; xd = NULL; labels = NULL;
        if (st == LP_OK) {
            ds->n_input_edges = src.n;
            ds->identity_features = !features_path;
            for (int64_t k = 0; k < src.n; k++) ds->n_dropped_self_loops += src.v[k] == dst.v[k];
            *out = ds;
        }
    }
done:
    close_reader(&r);
    lp_free(src.v); lp_free(dst.v); lp_free(lab_node.v); lp_free(lab_val.v); lp_free(feat_node.v);
    lp_free(fvals);
    lp_free(labels);
    lp_free(xd);
    lp_csr_free(xs);
    lp_graph_free(g);
    return st;
}
