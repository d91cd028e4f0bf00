/* Split files: the node / edge splits of every run, so runs are repeatable and comparable.
 *
 *   leanprop-split 1
 *   kind node            (or link)
 *   nodes 2708
 *   edges 5278           (undirected edges of the graph)
 *   runs 5
 *   seed 101
 *   run 0
 *   train 1733 <ids...>  (node: train/val/test; link: train_pos/train_neg/val_pos/val_neg/test_pos/test_neg
 *   val 434 <ids...>      with a pair count followed by u v u v ...)
 *   test 541 <ids...>
 *   run 1 ...
 */
#include "leanprop/graph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"

static void write_ids(FILE *f, const char *name, const int64_t *v, int64_t count, int per)
{
    fprintf(f, "%s %lld", name, (long long)count);
    for (int64_t k = 0; k < count * per; k++) fprintf(f, " %lld", (long long)v[k]);
    fputc('\n', f);
}

lp_status lp_graph_splits_save(const lp_graph_splits *s, const char *path)
{
    if (!s || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_splits_save: NULL argument");
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return lp_error(LP_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) { free(tmp); return lp_error(LP_ERR_IO, "%s: cannot create", path); }
    fprintf(f, "leanprop-split 1\nkind %s\nnodes %lld\nedges %lld\nruns %d\nseed %llu\n",
            s->kind == LP_SPLIT_NODE ? "node" : "link", (long long)s->n_nodes, (long long)s->n_edges, s->n_runs,
            (unsigned long long)s->seed);
    for (int r = 0; r < s->n_runs; r++) {
        fprintf(f, "run %d\n", r);
        if (s->kind == LP_SPLIT_NODE) {
            const lp_node_split *ns = &s->node[r];
            write_ids(f, "train", ns->train, ns->n_train, 1);
            write_ids(f, "val", ns->val, ns->n_val, 1);
            write_ids(f, "test", ns->test, ns->n_test, 1);
        } else {
            const lp_edge_split *e = &s->link[r];
            write_ids(f, "train_pos", e->train_pos, e->n_train, 2);
            write_ids(f, "train_neg", e->train_neg, e->n_train, 2);
            write_ids(f, "val_pos", e->val_pos, e->n_val, 2);
            write_ids(f, "val_neg", e->val_neg, e->n_val, 2);
            write_ids(f, "test_pos", e->test_pos, e->n_test, 2);
            write_ids(f, "test_neg", e->test_neg, e->n_test, 2);
        }
    }
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        return lp_error(LP_ERR_IO, "%s: write failed", path);
    }
    free(tmp);
    return LP_OK;
}

typedef struct {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    long lineno;
} reader;

/* Next line; its first word in *key, the rest in *rest. 0 at end of file. */
static int next(reader *r, char **key, char **rest)
{
    for (;;) {
        if (getline(&r->line, &r->cap, r->f) < 0) return 0;
        r->lineno++;
        char *s = r->line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s == '\n' || *s == '\r' || *s == '\0' || *s == '#') continue;
        *key = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') s++;
        if (*s) *s++ = '\0';
        *rest = s;
        return 1;
    }
}

static lp_status parse_i64(reader *r, char **s, int64_t *out, const char *field)
{
    char *end;
    errno = 0;
    long long v = strtoll(*s, &end, 10);
    if (end == *s || errno)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: %s: expected an integer", r->path, r->lineno, field);
    *s = end;
    *out = v;
    return LP_OK;
}

static lp_status expect_end(reader *r, const char *s, const char *field)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    if (*s) return lp_error(LP_ERR_FORMAT, "%s:%ld: %s: unexpected trailing data", r->path, r->lineno, field);
    return LP_OK;
}

static lp_status header_value(reader *r, const char *want, int64_t *out)
{
    char *key, *rest;
    if (!next(r, &key, &rest)) return lp_error(LP_ERR_FORMAT, "%s: truncated header (no '%s')", r->path, want);
    if (strcmp(key, want) != 0)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: expected '%s', found '%s'", r->path, r->lineno, want, key);
    LP_TRY(parse_i64(r, &rest, out, want));
    return expect_end(r, rest, want);
}

/* A line "<want> <count> v1 v2 ..." with count * per values, into a new LP_MEM_DATA array. */
static lp_status id_line(reader *r, const char *want, int per, int64_t **out, int64_t *count)
{
    char *key, *rest;
    if (!next(r, &key, &rest)) return lp_error(LP_ERR_FORMAT, "%s: truncated (missing '%s')", r->path, want);
    if (strcmp(key, want) != 0)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: expected '%s', found '%s'", r->path, r->lineno, want, key);
    int64_t c = 0;
    LP_TRY(parse_i64(r, &rest, &c, want));
    if (c < 0 || c > (int64_t)1 << 40)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: %s: bad count %lld", r->path, r->lineno, want, (long long)c);
    /* the line must hold at least count*per numbers: bound by its length before allocating */
    if ((size_t)(c * per) > strlen(rest) / 2 + 1)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: %s: line holds fewer than the %lld values announced", r->path,
                        r->lineno, want, (long long)(c * per));
    int64_t *v = lp_alloc_array(LP_MEM_DATA, c ? (size_t)(c * per) : 1, sizeof(int64_t));
    if (!v) return LP_ERR_NOMEM;
    for (int64_t k = 0; k < c * per; k++) {
        while (*rest == ' ' || *rest == '\t') rest++;
        if (*rest == '\0' || *rest == '\n' || *rest == '\r') {
            lp_free(v);
            return lp_error(LP_ERR_FORMAT, "%s:%ld: %s: line holds %lld values, fewer than the %lld announced", r->path,
                            r->lineno, want, (long long)k, (long long)(c * per));
        }
        lp_status st = parse_i64(r, &rest, &v[k], want);
        if (st != LP_OK) { lp_free(v); return st; }
    }
    lp_status st = expect_end(r, rest, want);
    if (st != LP_OK) { lp_free(v); return st; }
    *out = v;
    *count = c;
    return LP_OK;
}

static lp_status parse_file(reader *r, lp_graph_splits *s, const lp_graph_dataset *ds)
{
    char *key, *rest;
    if (!next(r, &key, &rest) || strcmp(key, "leanprop-split") != 0)
        return lp_error(LP_ERR_FORMAT, "%s: not a leanprop split file (first line must be 'leanprop-split 1')", r->path);
    int64_t version = 0;
    LP_TRY(parse_i64(r, &rest, &version, "version"));
    if (version != 1) return lp_error(LP_ERR_UNSUPPORTED, "%s: split file version %lld (this build reads 1)", r->path, (long long)version);
    if (!next(r, &key, &rest) || strcmp(key, "kind") != 0)
        return lp_error(LP_ERR_FORMAT, "%s:%ld: expected 'kind node|link'", r->path, r->lineno);
    if (!strncmp(rest, "node", 4)) s->kind = LP_SPLIT_NODE;
    else if (!strncmp(rest, "link", 4)) s->kind = LP_SPLIT_LINK;
    else return lp_error(LP_ERR_FORMAT, "%s:%ld: kind must be 'node' or 'link'", r->path, r->lineno);
    int64_t runs, seed;
    LP_TRY(header_value(r, "nodes", &s->n_nodes));
    LP_TRY(header_value(r, "edges", &s->n_edges));
    LP_TRY(header_value(r, "runs", &runs));
    LP_TRY(header_value(r, "seed", &seed));
    if (runs < 1 || runs > 1000) return lp_error(LP_ERR_FORMAT, "%s: runs %lld out of range 1..1000", r->path, (long long)runs);
    /* does the file fit the graph at all? (the ids are checked after parsing) */
    if (s->n_nodes != ds->n_nodes)
        return lp_error(LP_ERR_FORMAT, "%s: split is for %lld nodes, %s has %lld", r->path, (long long)s->n_nodes,
                        ds->path, (long long)ds->n_nodes);
    if (s->n_edges != ds->graph->n_edges / 2)
        return lp_error(LP_ERR_FORMAT, "%s: split is for %lld edges, %s has %lld", r->path, (long long)s->n_edges,
                        ds->path, (long long)(ds->graph->n_edges / 2));
    s->seed = (uint64_t)seed;
    if (s->kind == LP_SPLIT_NODE) s->node = calloc((size_t)runs, sizeof *s->node);
    else s->link = calloc((size_t)runs, sizeof *s->link);
    if (!s->node && !s->link) return lp_error(LP_ERR_NOMEM, "out of memory");
    for (int run = 0; run < runs; run++) {
        int64_t rr;
        LP_TRY(header_value(r, "run", &rr));
        if (rr != run) return lp_error(LP_ERR_FORMAT, "%s:%ld: expected run %d, found %lld", r->path, r->lineno, run, (long long)rr);
        s->n_runs = run + 1;
        if (s->kind == LP_SPLIT_NODE) {
            lp_node_split *n = &s->node[run];
            LP_TRY(id_line(r, "train", 1, &n->train, &n->n_train));
            LP_TRY(id_line(r, "val", 1, &n->val, &n->n_val));
            LP_TRY(id_line(r, "test", 1, &n->test, &n->n_test));
        } else {
            lp_edge_split *e = &s->link[run];
            int64_t c2;
            LP_TRY(id_line(r, "train_pos", 2, &e->train_pos, &e->n_train));
            LP_TRY(id_line(r, "train_neg", 2, &e->train_neg, &c2));
            if (c2 != e->n_train) return lp_error(LP_ERR_FORMAT, "%s: run %d: train_neg has %lld pairs, train_pos %lld", r->path, run, (long long)c2, (long long)e->n_train);
            LP_TRY(id_line(r, "val_pos", 2, &e->val_pos, &e->n_val));
            LP_TRY(id_line(r, "val_neg", 2, &e->val_neg, &c2));
            if (c2 != e->n_val) return lp_error(LP_ERR_FORMAT, "%s: run %d: val_neg has %lld pairs, val_pos %lld", r->path, run, (long long)c2, (long long)e->n_val);
            LP_TRY(id_line(r, "test_pos", 2, &e->test_pos, &e->n_test));
            LP_TRY(id_line(r, "test_neg", 2, &e->test_neg, &c2));
            if (c2 != e->n_test) return lp_error(LP_ERR_FORMAT, "%s: run %d: test_neg has %lld pairs, test_pos %lld", r->path, run, (long long)c2, (long long)e->n_test);
        }
    }
    if (next(r, &key, &rest)) return lp_error(LP_ERR_FORMAT, "%s:%ld: unexpected '%s' after the last run", r->path, r->lineno, key);
    return LP_OK;
}

lp_status lp_graph_splits_load(lp_graph_splits **out, const char *path, const lp_graph_dataset *ds)
{
    if (!out || !path || !ds) return lp_error(LP_ERR_INVALID_ARG, "lp_graph_splits_load: NULL argument");
    *out = NULL;
    reader r = {fopen(path, "r"), path, NULL, 0, 0};
    if (!r.f) return lp_error(LP_ERR_IO, "%s: cannot open split file", path);
    lp_graph_splits *s = calloc(1, sizeof *s);
    lp_status st = s ? parse_file(&r, s, ds) : lp_error(LP_ERR_NOMEM, "out of memory");
    fclose(r.f);
    free(r.line);
    if (st == LP_OK) st = lp_graph_splits_check(s, ds, path);
    if (st != LP_OK) { lp_graph_splits_free(s); return st; }
    *out = s;
    return LP_OK;
}
