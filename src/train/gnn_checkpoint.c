/* Checkpoints of a multi-run GNN job (leanprop/gnn.h): one leanprop checkpoint file
 * (leanprop/checkpoint.h) with
 *   JSON     {"format": "leanprop-gnn-job", "version": 1, "job": {fingerprint, all strings}}
 *   i64      gnn.run (first unfinished run), gnn.epoch (its saved state ends after this epoch;
 *            0 = no state), gnn.threads, gnn.result.<r>.<field> of finished runs
 *   u64      gnn.result.<r>.<field> of doubles as IEEE-754 bits, memory peaks
 *   the trainer's own state (tensors and scalars named "<method>.*")
 * The fingerprint is everything that decides the job's numbers: a resume of another job fails
 * naming the field that differs. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/gnn.h"
#include "leanprop/log.h"
#include "leanprop/threads.h"

#define JOB_FORMAT "leanprop-gnn-job"
#define JOB_VERSION 1

struct lp_gnn_checkpoint {
    char *path;             /* NULL: never save */
    int every;
    int n_runs;
    cJSON *job;             /* fingerprint object */
    lp_gnn_result *done;    /* (n_runs) results of finished runs */
    int n_done;
    lp_checkpoint *state;   /* resumed file holding the state of run n_done, or NULL */
    int state_epoch;
    int threads;            /* of the resumed checkpoint's writer */
    int saves;
    double save_seconds;
};

/* ------------------------------------------------------------ fingerprint */

static uint32_t crc_of(uint32_t crc, const void *p, size_t n) { return p && n ? lp_crc32(crc, p, n) : crc; }

static uint32_t data_crc(const lp_graph_dataset *ds)
{
    uint32_t c = 0;
    const lp_graph *g = ds->graph;
    if (g) {
        c = crc_of(c, g->indptr, (size_t)(g->n_nodes + 1) * sizeof *g->indptr);
        c = crc_of(c, g->indices, (size_t)g->n_edges * sizeof *g->indices);
    }
    if (ds->x_sparse) {
        const lp_csr *x = ds->x_sparse;
        c = crc_of(c, x->indptr, (size_t)(x->rows + 1) * sizeof *x->indptr);
        c = crc_of(c, x->indices, (size_t)x->nnz * sizeof *x->indices);
        c = crc_of(c, x->values, (size_t)x->nnz * sizeof *x->values);
    }
    if (ds->x_dense) c = crc_of(c, ds->x_dense, (size_t)(ds->n_nodes * ds->n_features) * sizeof(float));
    if (ds->labels) c = crc_of(c, ds->labels, (size_t)ds->n_nodes * sizeof *ds->labels);
    return c;
}

static uint32_t splits_crc(const lp_graph_splits *s)
{
    uint32_t c = 0;
    for (int r = 0; r < s->n_runs; r++) {
        if (s->kind == LP_SPLIT_NODE && s->node) {
            const lp_node_split *n = &s->node[r];
            int64_t h[3] = {n->n_train, n->n_val, n->n_test};
            c = crc_of(c, h, sizeof h);
            c = crc_of(c, n->train, (size_t)n->n_train * sizeof(int64_t));
            c = crc_of(c, n->val, (size_t)n->n_val * sizeof(int64_t));
            c = crc_of(c, n->test, (size_t)n->n_test * sizeof(int64_t));
        } else if (s->kind == LP_SPLIT_LINK && s->link) {
            const lp_edge_split *e = &s->link[r];
            int64_t h[3] = {e->n_train, e->n_val, e->n_test};
            c = crc_of(c, h, sizeof h);
            const int64_t *arr[6] = {e->train_pos, e->train_neg, e->val_pos, e->val_neg, e->test_pos, e->test_neg};
            const int64_t cnt[6] = {e->n_train, e->n_train, e->n_val, e->n_val, e->n_test, e->n_test};
            for (int k = 0; k < 6; k++) c = crc_of(c, arr[k], 2 * (size_t)cnt[k] * sizeof(int64_t));
        }
    }
    return c;
}

static int add_str(cJSON *o, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int add_str(cJSON *o, const char *key, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    return cJSON_AddStringToObject(o, key, b) != NULL;
}

/* The shortest decimal that reads back as exactly v ("0.001", not "0.00100000005"). */
static const char *float_str(char *b, size_t size, float v)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, size, "%.*g", prec, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    return b;
}

static cJSON *job_json(const lp_gnn_job *j)
{
    char f1[32], f2[32];
    const lp_gnn_train_config *c = j->cfg;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = add_str(o, "method", "%s", j->method) && add_str(o, "task", "%s", j->task == LP_GNN_TASK_NODE ? "node" : "link") &&
             add_str(o, "model", "%s", lp_gnn_kind_name(c->kind)) && add_str(o, "layers", "%d", c->n_layers) &&
             add_str(o, "hidden", "%d", c->hidden) && add_str(o, "heads", "%d", c->heads) &&
             add_str(o, "link_dim", "%d", c->link_dim) && add_str(o, "lr", "%s", float_str(f1, sizeof f1, c->lr)) &&
             add_str(o, "weight_decay", "%s", float_str(f2, sizeof f2, c->weight_decay)) && add_str(o, "epochs", "%d", c->epochs) &&
             add_str(o, "eval_every", "%d", c->eval_every) && add_str(o, "patience", "%d", c->patience) &&
             add_str(o, "seed", "%" PRIu64, c->seed) && add_str(o, "runs", "%d", j->n_runs) &&
             add_str(o, "nodes", "%" PRId64, j->data->n_nodes) && add_str(o, "features", "%" PRId64, j->data->n_features) &&
             add_str(o, "classes", "%d", j->data->n_classes) && add_str(o, "data_crc32", "%08x", data_crc(j->data)) &&
             add_str(o, "splits_crc32", "%08x", j->splits ? splits_crc(j->splits) : 0u);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The trainers that save and continue a run in progress; a trainer gaining support adds itself. */
int lp_gnn_method_resumable(const lp_gnn_method *m)
{
    static const lp_gnn_train_fn resumable[] = {lp_gnn_train_bp_node, lp_gnn_train_bp_link, lp_fgnn_train_sf,
                                                lp_fgnn_train_fl_ce, lp_fgnn_train_fl_ff, lp_fgnn_train_ff_la,
                                                lp_fgnn_train_ff_vn};
    if (!m) return 0;
    int n = 0, ok = 0;
    for (int k = 0; k < 2; k++) {
        lp_gnn_train_fn f = k == 0 ? m->node : m->link;
        if (!f) continue;
        n++;
        for (size_t i = 0; i < sizeof resumable / sizeof resumable[0]; i++) ok += f == resumable[i];
    }
    return n > 0 && ok == n;
}

/* ------------------------------------------------------------ life cycle */

lp_status lp_gnn_checkpoint_new(lp_gnn_checkpoint **out, const char *path, int every, const lp_gnn_job *job)
{
    if (!out || !job || !job->method || !job->cfg || !job->data)
        return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_new: NULL argument");
    *out = NULL;
    if (every < 1) return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: save interval %d epochs (must be >= 1)", every);
    if (job->n_runs < 1) return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: %d runs", job->n_runs);
    lp_gnn_checkpoint *c = calloc(1, sizeof *c);
    if (!c) return lp_error(LP_ERR_NOMEM, "gnn checkpoint: out of memory");
    c->every = every;
    c->n_runs = job->n_runs;
    c->path = path ? strdup(path) : NULL;
    c->job = job_json(job);
    c->done = calloc((size_t)job->n_runs, sizeof *c->done);
    if ((path && !c->path) || !c->job || !c->done) {
        lp_gnn_checkpoint_free(c);
        return lp_error(LP_ERR_NOMEM, "gnn checkpoint: out of memory");
    }
    *out = c;
    return LP_OK;
}

void lp_gnn_checkpoint_free(lp_gnn_checkpoint *c)
{
    if (!c) return;
    lp_checkpoint_close(c->state);
    cJSON_Delete(c->job);
    free(c->done);
    free(c->path);
    free(c);
}

int lp_gnn_checkpoint_next_run(const lp_gnn_checkpoint *c) { return c ? c->n_done : 0; }
int lp_gnn_checkpoint_next_epoch(const lp_gnn_checkpoint *c) { return c && c->state ? c->state_epoch : 0; }
int lp_gnn_checkpoint_threads(const lp_gnn_checkpoint *c) { return c ? c->threads : 0; }

int lp_gnn_checkpoint_saves(const lp_gnn_checkpoint *c, double *seconds)
{
    if (seconds) *seconds = c ? c->save_seconds : 0;
    return c ? c->saves : 0;
}

lp_status lp_gnn_checkpoint_result(const lp_gnn_checkpoint *c, int run, lp_gnn_result *out)
{
    if (!c || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_result: NULL argument");
    if (run < 0 || run >= c->n_done)
        return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: run %d is not finished (%d finished)", run, c->n_done);
    *out = c->done[run];
    return LP_OK;
}

int lp_gnn_checkpoint_due(const lp_gnn_checkpoint *c, int epoch)
{
    return c && c->path && epoch > 0 && epoch % c->every == 0;
}

const lp_checkpoint *lp_gnn_checkpoint_state(const lp_gnn_checkpoint *c, int run, int *epoch)
{
    if (epoch) *epoch = 0;
    if (!c || !c->state || run != c->n_done) return NULL;
    if (epoch) *epoch = c->state_epoch;
    return c->state;
}

/* ------------------------------------------------------------ results */

/* Doubles travel as their bits (u64), so a resumed job reports exactly what the run returned. */
static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

#define RES_DOUBLES(X) X(train) X(val) X(test) X(seconds) X(epoch_ms)
#define RES_INTS(X) X(best_epoch) X(epochs) X(params) X(skipped_epochs)

static lp_status put_result(lp_checkpoint_writer *w, int r, const lp_gnn_result *res)
{
    char k[96];
#define PUT_D(f) snprintf(k, sizeof k, "gnn.result.%d." #f, r); LP_TRY(lp_checkpoint_writer_add_u64(w, k, dbits(res->f)));
#define PUT_I(f) snprintf(k, sizeof k, "gnn.result.%d." #f, r); LP_TRY(lp_checkpoint_writer_add_i64(w, k, (int64_t)res->f));
    RES_DOUBLES(PUT_D)
    RES_INTS(PUT_I)
#undef PUT_D
#undef PUT_I
    for (int m = 0; m < LP_MEM_COUNT; m++) {
        snprintf(k, sizeof k, "gnn.result.%d.mem.%s", r, lp_mem_category_name((lp_mem_category)m));
        LP_TRY(lp_checkpoint_writer_add_u64(w, k, (uint64_t)res->mem.peak[m]));
    }
    snprintf(k, sizeof k, "gnn.result.%d.mem.total", r);
    return lp_checkpoint_writer_add_u64(w, k, (uint64_t)res->mem.total_peak);
}

static lp_status get_result(const lp_checkpoint *ck, int r, lp_gnn_result *res)
{
    char k[96];
    uint64_t u;
    int64_t i;
    memset(res, 0, sizeof *res);
#define GET_D(f) snprintf(k, sizeof k, "gnn.result.%d." #f, r); LP_TRY(lp_checkpoint_get_u64(ck, k, &u)); res->f = bitsd(u);
#define GET_I(f) snprintf(k, sizeof k, "gnn.result.%d." #f, r); LP_TRY(lp_checkpoint_get_i64(ck, k, &i)); \
    if (i < 0 || i > INT32_MAX) return lp_error(LP_ERR_FORMAT, "%s: %s = %" PRId64 " out of range", lp_checkpoint_path(ck), k, i); \
    res->f = i;
    RES_DOUBLES(GET_D)
    RES_INTS(GET_I)
#undef GET_D
#undef GET_I
    for (int m = 0; m < LP_MEM_COUNT; m++) {
        snprintf(k, sizeof k, "gnn.result.%d.mem.%s", r, lp_mem_category_name((lp_mem_category)m));
        LP_TRY(lp_checkpoint_get_u64(ck, k, &u));
        res->mem.peak[m] = (size_t)u;
    }
    snprintf(k, sizeof k, "gnn.result.%d.mem.total", r);
    LP_TRY(lp_checkpoint_get_u64(ck, k, &u));
    res->mem.total_peak = (size_t)u;
    return LP_OK;
}

/* ------------------------------------------------------------ resume */

static lp_status get_int(const lp_checkpoint *ck, const char *key, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    LP_TRY(lp_checkpoint_get_i64(ck, key, &v));
    if (v < lo || v > hi)
        return lp_error(LP_ERR_FORMAT, "%s: %s = %" PRId64 " outside [%" PRId64 ", %" PRId64 "]", lp_checkpoint_path(ck), key,
                        v, lo, hi);
    *out = (int)v;
    return LP_OK;
}

/* The saved job must be this one, field by field. */
static lp_status compare_job(const lp_gnn_checkpoint *c, const lp_checkpoint *ck)
{
    const char *path = lp_checkpoint_path(ck);
    const char *text = lp_checkpoint_json(ck);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(root, "job");
    lp_status st = LP_OK;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, JOB_FORMAT) || !cJSON_IsObject(job) || !cJSON_IsNumber(ver))
        st = lp_error(LP_ERR_FORMAT, "%s: not a checkpoint of `leanprop gnn` (no \"%s\" job in its JSON)", path, JOB_FORMAT);
    else if (ver->valuedouble != JOB_VERSION)
        st = lp_error(LP_ERR_UNSUPPORTED, "%s: GNN job version %g (this build reads %d)", path, ver->valuedouble, JOB_VERSION);
    for (const cJSON *e = c->job->child; st == LP_OK && e; e = e->next) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(job, e->string);
        if (!cJSON_IsString(s))
            st = lp_error(LP_ERR_INVALID_ARG, "%s: a checkpoint of another job: it has no %s (here %s)", path, e->string,
                          e->valuestring);
        else if (strcmp(s->valuestring, e->valuestring))
            st = lp_error(LP_ERR_INVALID_ARG, "%s: a checkpoint of another job: %s is %s there, %s here", path, e->string,
                          s->valuestring, e->valuestring);
    }
    for (const cJSON *s = job ? job->child : NULL; st == LP_OK && s; s = s->next)
        if (!cJSON_GetObjectItemCaseSensitive(c->job, s->string))
            st = lp_error(LP_ERR_INVALID_ARG, "%s: a checkpoint of another job: it sets %s, unknown here", path, s->string);
    cJSON_Delete(root);
    return st;
}

lp_status lp_gnn_checkpoint_resume(lp_gnn_checkpoint *c, const char *path)
{
    if (!c || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_resume: NULL argument");
    if (c->n_done || c->state) return lp_error(LP_ERR_INVALID_ARG, "%s: resume before the job's first run", path);
    lp_checkpoint *ck;
    LP_TRY(lp_checkpoint_open(&ck, path));
    lp_status st = compare_job(c, ck);
    /* epochs a run can report: per layer for the layer-wise forward methods */
    int run = 0, epoch = 0;
    int64_t max_epochs = 0;
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(c->job, "epochs");
    const cJSON *ly = cJSON_GetObjectItemCaseSensitive(c->job, "layers");
    if (cJSON_IsString(ep) && cJSON_IsString(ly)) {
        int64_t layers = atoi(ly->valuestring);
        max_epochs = (int64_t)atoi(ep->valuestring) * (layers > 0 ? layers : 1);
        if (max_epochs > INT32_MAX) max_epochs = INT32_MAX;
    }
    if (st == LP_OK) st = get_int(ck, "gnn.run", 0, c->n_runs, &run);
    if (st == LP_OK) st = get_int(ck, "gnn.epoch", 0, run < c->n_runs ? max_epochs : 0, &epoch);
    if (st == LP_OK) st = get_int(ck, "gnn.threads", 0, 1 << 20, &c->threads);
    for (int r = 0; st == LP_OK && r < run; r++) st = get_result(ck, r, &c->done[r]);
    if (st != LP_OK) {
        lp_checkpoint_close(ck);
        memset(c->done, 0, (size_t)c->n_runs * sizeof *c->done);
        c->threads = 0;
        return st;
    }
    c->n_done = run;
    c->state_epoch = epoch;
    if (epoch > 0) c->state = ck;
    else lp_checkpoint_close(ck);
    return LP_OK;
}

/* ------------------------------------------------------------ saving */

/* A writer with the job, the finished runs and "run `run` in progress after `epoch`". */
static lp_status job_writer(lp_gnn_checkpoint *c, int run, int epoch, lp_checkpoint_writer **w)
{
    lp_checkpoint_writer *wr = lp_checkpoint_writer_new();
    if (!wr) return LP_ERR_NOMEM;
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    lp_status st = LP_OK;
    if (!root || !cJSON_AddStringToObject(root, "format", JOB_FORMAT) || !cJSON_AddNumberToObject(root, "version", JOB_VERSION) ||
        !cJSON_AddItemReferenceToObject(root, "job", c->job) || !(text = cJSON_PrintUnformatted(root)))
        st = lp_error(LP_ERR_NOMEM, "gnn checkpoint: out of memory");
    cJSON_Delete(root);
    if (st == LP_OK) st = lp_checkpoint_writer_set_json(wr, text);
    free(text);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(wr, "gnn.run", run);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(wr, "gnn.epoch", epoch);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(wr, "gnn.threads", lp_threads_get());
    for (int r = 0; st == LP_OK && r < c->n_done; r++) st = put_result(wr, r, &c->done[r]);
    if (st != LP_OK) {
        lp_checkpoint_writer_free(wr);
        return st;
    }
    *w = wr;
    return LP_OK;
}

lp_status lp_gnn_checkpoint_begin(lp_gnn_checkpoint *c, int run, int epoch, lp_checkpoint_writer **w)
{
    if (!c || !w) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_begin: NULL argument");
    *w = NULL;
    if (!c->path) return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: no path to save to");
    if (run != c->n_done || run >= c->n_runs || epoch < 0)
        return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: run %d epoch %d is not the run in progress (%d of %d done)", run,
                        epoch, c->n_done, c->n_runs);
    return job_writer(c, run, epoch, w);
}

lp_status lp_gnn_checkpoint_commit(lp_gnn_checkpoint *c, lp_checkpoint_writer *w)
{
    if (!c || !w) {
        lp_checkpoint_writer_free(w);
        return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_commit: NULL argument");
    }
    double t = lp_time_now();
    lp_status st = lp_checkpoint_writer_save(w, c->path);
    lp_checkpoint_writer_free(w);
    if (st != LP_OK) return lp_error_context(st, "saving the GNN checkpoint");
    (void)lp_atomic_sweep_temps(c->path, NULL); /* temps of killed saves: best effort */
    c->saves++;
    c->save_seconds += lp_time_now() - t;
    return LP_OK;
}

lp_status lp_gnn_checkpoint_end_run(lp_gnn_checkpoint *c, int run, const lp_gnn_result *res)
{
    if (!c || !res) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_checkpoint_end_run: NULL argument");
    if (run != c->n_done || run >= c->n_runs)
        return lp_error(LP_ERR_INVALID_ARG, "gnn checkpoint: run %d is not the run in progress (%d of %d done)", run,
                        c->n_done, c->n_runs);
    c->done[run] = *res;
    c->n_done++;
    lp_checkpoint_close(c->state); /* the finished run's state is not needed again */
    c->state = NULL;
    c->state_epoch = 0;
    if (!c->path) return LP_OK;
    lp_checkpoint_writer *w;
    LP_TRY(job_writer(c, c->n_done, 0, &w));
    return lp_gnn_checkpoint_commit(c, w);
}
