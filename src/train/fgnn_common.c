/* What every forward-learning trainer shares: streams (an input travelling up
 * the stack), the per-layer optimizer with its best-weight copy, early
 * stopping, and the run's bookkeeping (timing, memory segments, report). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/kernels/spmm.h"
#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "train/fgnn_internal.h"

/* ---- elementwise ---- */

void fgnn_relu(float *z, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
    for (int64_t i = 0; i < n; i++) z[i] = z[i] > 0 ? z[i] : 0.0f;
}

void fgnn_relu_mask(float *dz, const float *y, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
    for (int64_t i = 0; i < n; i++)
        if (!(y[i] > 0)) dz[i] = 0.0f;
}

uint8_t *fgnn_mask_new(int64_t n) { return lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(n > 0 ? n : 1), 1); }

void fgnn_mask_set(uint8_t *mask, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) mask[i] = y[i] > 0;
}

void fgnn_mask_apply(float *dz, const uint8_t *mask, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dz[i] = mask[i] ? dz[i] : 0.0f;
}

/* ---- streams ---- */

void fgnn_stream_init(fgnn_stream *s, const lp_graph *g)
{
    memset(s, 0, sizeof *s);
    s->g = g;
}

void fgnn_stream_add_dense(fgnn_stream *s, float *x, int64_t cols, int own)
{
    fgnn_part p = {x, NULL, cols, 1};
    s->p[s->np] = p;
    s->own_dense[s->np] = own ? x : NULL;
    s->own_sparse[s->np] = NULL;
    s->np++;
}

void fgnn_stream_add_sparse(fgnn_stream *s, lp_csr *x, int own)
{
    fgnn_part p = {NULL, x, x->cols, 1};
    s->p[s->np] = p;
    s->own_dense[s->np] = NULL;
    s->own_sparse[s->np] = own ? x : NULL;
    s->np++;
}

static void free_parts(fgnn_stream *s)
{
    for (int k = 0; k < s->np; k++) {
        lp_free(s->own_dense[k]);
        lp_csr_free(s->own_sparse[k]);
        s->own_dense[k] = NULL;
        s->own_sparse[k] = NULL;
    }
    s->np = 0;
}

lp_status fgnn_stream_bind(fgnn_stream *s, lp_gnn_layer *layer, int cache)
{
    if (s->has_conv) fgnn_conv_release(&s->conv);
    s->has_conv = 0;
    LP_TRY(fgnn_conv_init(&s->conv, layer, s->g, s->p, s->np, cache));
    s->has_conv = 1;
    return LP_OK;
}

void fgnn_stream_drop_unread(fgnn_stream *s)
{
    for (int k = 0; s->has_conv && k < s->np; k++) {
        if (fgnn_conv_reads_part(&s->conv, k) || (!s->own_dense[k] && !s->own_sparse[k])) continue;
        lp_free(s->own_dense[k]);
        lp_csr_free(s->own_sparse[k]);
        s->own_dense[k] = NULL;
        s->own_sparse[k] = NULL;
        s->p[k].dense = NULL;
        s->p[k].sparse = NULL;
        s->conv.p[k].dense = NULL;
        s->conv.p[k].sparse = NULL;
    }
}

lp_status fgnn_stream_output(fgnn_stream *s, float **y)
{
    *y = NULL;
    if (!s->has_conv) return lp_error(LP_ERR_INTERNAL, "stream without a layer");
    int64_t n = s->conv.n, D = s->conv.D;
    float *o = fgnn_act(n * D);
    if (!o) return lp_error_context(LP_ERR_NOMEM, "layer output (%lld x %lld)", (long long)n, (long long)D);
    lp_status st = fgnn_conv_forward(&s->conv, o, 0, n, 0);
    if (st != LP_OK) { lp_free(o); return st; }
    fgnn_relu(o, n * D);
    *y = o;
    return LP_OK;
}

void fgnn_stream_set_input(fgnn_stream *s, float *y, int64_t D)
{
    int64_t n = s->g->n_nodes;
    if (s->has_conv) fgnn_conv_release(&s->conv);
    s->has_conv = 0;
    free_parts(s);
    lp_rownorm_forward(y, NULL, y, n, D, 1e-8f);
    fgnn_stream_add_dense(s, y, D, 1);
}

void fgnn_stream_free(fgnn_stream *s)
{
    if (!s) return;
    if (s->has_conv) fgnn_conv_release(&s->conv);
    s->has_conv = 0;
    free_parts(s);
}

/* ---- optimizer ---- */

lp_status fgnn_opt_init(fgnn_opt *o, lp_gnn_layer *layer, float lr, float weight_decay)
{
    memset(o, 0, sizeof *o);
    o->layer = layer;
    lp_adam_config c = lp_adam_defaults();
    c.lr = lr;
    c.weight_decay = weight_decay;
    c.decoupled = 0;   /* torch.optim.Adam: L2 added to the gradient */
    int64_t n = lp_gnn_layer_numel(layer);
    LP_TRY(lp_adam_new(&o->adam, n, &c));
    o->best = lp_alloc_array(LP_MEM_WEIGHTS, (size_t)n, sizeof(float));
    if (!o->best) { fgnn_opt_free(o); return lp_error_context(LP_ERR_NOMEM, "best-weight copy"); }
    fgnn_opt_save(o);
    return LP_OK;
}

lp_status fgnn_opt_step(fgnn_opt *o, float clip)
{
    int np = lp_gnn_layer_n_params(o->layer);
    if (clip > 0) {
        float *g[FGNN_MAX_LAYER_PARAMS];
        int64_t sz[FGNN_MAX_LAYER_PARAMS];
        for (int i = 0; i < np && i < FGNN_MAX_LAYER_PARAMS; i++) {
            lp_gnn_param p = lp_gnn_layer_param(o->layer, i);
            g[i] = p.grad;
            sz[i] = p.numel;
        }
        lp_status st = lp_clip_grad_norm(g, sz, np < FGNN_MAX_LAYER_PARAMS ? np : FGNN_MAX_LAYER_PARAMS, clip, NULL);
        if (st != LP_OK) return st;
    }
    LP_TRY(lp_adam_begin_step(o->adam));
    int64_t off = 0;
    for (int i = 0; i < np; i++) {
        lp_gnn_param p = lp_gnn_layer_param(o->layer, i);
        LP_TRY(lp_adam_update(o->adam, off, p.data, p.grad, p.numel));
        off += p.numel;
    }
    return LP_OK;
}

static void copy_params(lp_gnn_layer *l, float *buf, int to_buf)
{
    int64_t off = 0;
    for (int i = 0; i < lp_gnn_layer_n_params(l); i++) {
        lp_gnn_param p = lp_gnn_layer_param(l, i);
        if (to_buf) memcpy(buf + off, p.data, (size_t)p.numel * sizeof(float));
        else memcpy(p.data, buf + off, (size_t)p.numel * sizeof(float));
        off += p.numel;
    }
}

void fgnn_opt_save(fgnn_opt *o) { copy_params(o->layer, o->best, 1); }
void fgnn_opt_restore(fgnn_opt *o) { copy_params(o->layer, o->best, 0); }

void fgnn_opt_free(fgnn_opt *o)
{
    if (!o) return;
    lp_adam_free(o->adam);
    lp_free(o->best);
    memset(o, 0, sizeof *o);
}

/* ---- early stopping ---- */

void fgnn_stopper_init(fgnn_stopper *s, int patience)
{
    memset(s, 0, sizeof *s);
    s->best = -INFINITY;
    s->patience = patience;
}

int fgnn_stopper_step(fgnn_stopper *s, int epoch, double val)
{
    if (val > s->best) {   /* strictly greater */
        s->best = val;
        s->best_epoch = epoch;
        s->bad = 0;
        return 1;
    }
    if (++s->bad >= s->patience) s->stop = 1;
    return 0;
}

/* ---- run ---- */

static void fold_stats(lp_mem_stats *acc, const lp_mem_stats *s)
{
    for (int c = 0; c < LP_MEM_COUNT; c++) {
        if (s->peak[c] > acc->peak[c]) acc->peak[c] = s->peak[c];
        acc->current[c] = s->current[c];
    }
    if (s->total_peak > acc->total_peak) acc->total_peak = s->total_peak;
    acc->total_current = s->total_current;
    acc->n_allocs = s->n_allocs;
    acc->limit = s->limit;
}

lp_status fgnn_run_begin(fgnn_run *r, lp_fgnn_method m, const lp_gnn_run_args *a, const lp_fgnn_opts *o,
                         lp_gnn_result *out, lp_fgnn_report *rep)
{
    memset(r, 0, sizeof *r);
    if ((int)m < 0 || m >= LP_FGNN_METHOD_COUNT) return lp_error(LP_ERR_INVALID_ARG, "unknown forward method %d", (int)m);
    const char *name = lp_fgnn_method_name(m);
    if (!a || !out || !a->data || !a->cfg) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", name);
    const lp_gnn_train_config *c = a->cfg;
    if (c->n_layers < 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: depth %d; a GNN needs at least one layer", name, c->n_layers);
    if (c->n_layers > LP_FGNN_MAX_LAYERS)
        return lp_error(LP_ERR_INVALID_ARG, "%s: depth %d exceeds %d layers", name, c->n_layers, LP_FGNN_MAX_LAYERS);
    if (c->hidden < 1 || c->epochs < 0 || c->eval_every < 1 || c->patience < 1 || !(c->lr >= 0) || !(c->weight_decay >= 0))
        return lp_error(LP_ERR_INVALID_ARG, "%s: bad training configuration (hidden %d, epochs %d, eval every %d, patience %d)",
                        name, c->hidden, c->epochs, c->eval_every, c->patience);
    if ((int)c->kind < 0 || c->kind >= LP_GNN_KIND_COUNT) return lp_error(LP_ERR_INVALID_ARG, "%s: bad GNN kind", name);
    lp_gnn_task task = lp_fgnn_method_task(m);
    if (a->task != task)
        return lp_error(LP_ERR_INVALID_ARG, "%s is a %s method, asked for %s", name,
                        task == LP_GNN_TASK_NODE ? "node-classification" : "link-prediction",
                        a->task == LP_GNN_TASK_NODE ? "node classification" : "link prediction");
    if (task == LP_GNN_TASK_NODE && !a->node) return lp_error(LP_ERR_INVALID_ARG, "%s: no node split", name);
    if (task == LP_GNN_TASK_LINK && !a->link) return lp_error(LP_ERR_INVALID_ARG, "%s: no edge split", name);
    if (!a->data->graph || a->data->n_nodes < 1 || a->data->n_features < 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: empty data set", name);
    r->method = m;
    r->a = a;
    r->cfg = c;
    r->o = o ? *o : lp_fgnn_defaults();
    if (!(r->o.tau > 0)) return lp_error(LP_ERR_INVALID_ARG, "%s: temperature %g must be > 0", name, (double)r->o.tau);
    if (r->o.test_time_steps < 1 || r->o.first_scored_step < 0 || r->o.first_scored_step >= r->o.test_time_steps)
        return lp_error(LP_ERR_INVALID_ARG, "%s: inference steps %d..%d", name, r->o.first_scored_step,
                        r->o.test_time_steps - 1);
    r->out = out;
    r->rep = rep;
    memset(out, 0, sizeof *out);
    if (rep) memset(rep, 0, sizeof *rep);
    r->model = calloc(1, sizeof *r->model);
    if (!r->model) return lp_error(LP_ERR_NOMEM, "out of memory");
    r->model->kind = c->kind;
    r->model->L = c->n_layers;
    r->t0 = lp_time_now();
    lp_mem_reset_peak();
    lp_mem_get_stats(&r->seg);
    return LP_OK;
}

lp_status fgnn_run_layer(fgnn_run *r, int l, int64_t in_dim, int64_t out_dim)
{
    lp_rng rng;
    lp_rng_seed(&rng, fgnn_seed(r->cfg->seed, 0x4c41ULL, (uint64_t)l));
    lp_gnn_layer_opts lo = lp_gnn_layer_defaults();
    if (r->cfg->heads > 0) lo.heads = r->cfg->heads;
    lp_gnn_layer_free(r->model->layers[l]);
    r->model->layers[l] = NULL;
    lp_status st = lp_gnn_layer_new(&r->model->layers[l], r->cfg->kind, in_dim, out_dim, &lo, &rng);
    if (st != LP_OK) return lp_error_context(st, "%s layer %d", lp_fgnn_method_name(r->method), l + 1);
    return LP_OK;
}

float fgnn_run_loss_weight(const fgnn_run *r, int l)
{
    return r->o.layer_loss_weight ? r->o.layer_loss_weight[l] : 1.0f;
}

void fgnn_run_segment_begin(fgnn_run *r)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    fold_stats(&r->seg, &s);
    lp_mem_reset_peak();
    r->seg_t0 = lp_time_now();
}

void fgnn_run_segment_end(fgnn_run *r, int depth)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    fold_stats(&r->seg, &s);
    if (r->rep && depth >= 0 && depth < LP_FGNN_MAX_LAYERS) {
        r->rep->peak_activations[depth] = s.peak[LP_MEM_ACTIVATIONS];
        r->rep->peak_total[depth] = s.total_peak;
        r->rep->seconds[depth] = lp_time_now() - r->seg_t0;
    }
    lp_mem_reset_peak();
}

void fgnn_run_epoch(fgnn_run *r, int epoch, double loss, double train, double val, int improved)
{
    (void)epoch;
    r->epochs_total++;
    if (!r->a->on_epoch) return;
    lp_gnn_epoch e = {r->a->run, r->epochs_total, loss, train, val, improved, lp_time_now() - r->t0, 0, NULL};
    r->a->on_epoch(&e, r->a->user);
}

void fgnn_run_end(fgnn_run *r, lp_fgnn_model **model)
{
    if (!r->model) return;
    lp_gnn_workspace_release();   /* the layers' cached temporaries (GAT, direct layer calls) */
    fgnn_conv_workspace_release();
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    fold_stats(&r->seg, &s);
    if (r->out) {
        r->out->mem = r->seg;
        r->out->seconds = lp_time_now() - r->t0;
        r->out->epochs = r->epochs_total;
        r->out->epoch_ms = r->epochs_total ? 1e3 * r->train_s / r->epochs_total : 0;
        int64_t n = 0;
        for (int l = 0; l < r->model->L; l++) n += lp_gnn_layer_numel(r->model->layers[l]);
        r->out->params = n;
    }
    if (model) *model = (lp_fgnn_model *)r->model;
    else lp_fgnn_model_free((lp_fgnn_model *)r->model);
    r->model = NULL;
}

void fgnn_run_scores(fgnn_run *r, const fgnn_layout *L, const float *acc, int64_t r0, int64_t m)
{
    float *out = r->o.scores_out;
    if (!out) return;
    int64_t C = L->C;
    for (int64_t i = 0; i < m; i++) {
        int64_t o = L->order[r0 + i];
        if (o < L->n_real) memcpy(out + o * C, acc + i * C, (size_t)C * sizeof(float));
    }
}

int lp_fgnn_model_n_layers(const lp_fgnn_model *m) { return m ? m->L : 0; }

lp_gnn_layer *lp_fgnn_model_layer(lp_fgnn_model *m, int l) { return m && l >= 0 && l < m->L ? m->layers[l] : NULL; }

void lp_fgnn_model_free(lp_fgnn_model *m)
{
    if (!m) return;
    for (int l = 0; l < LP_FGNN_MAX_LAYERS; l++) lp_gnn_layer_free(m->layers[l]);
    free(m);
}

void fgnn_run_record_depth(fgnn_run *r, int l, double train, double val, double test, int layer_epochs, int best_epoch)
{
    r->out->train = train;
    r->out->val = val;
    r->out->test = test;
    r->out->best_epoch = best_epoch > 0 ? r->epochs_total - layer_epochs + best_epoch : 0;
    if (!r->rep) return;
    r->rep->n_depths = l + 1;
    r->rep->train[l] = train;
    r->rep->val[l] = val;
    r->rep->test[l] = test;
    r->rep->epochs[l] = layer_epochs;
    r->rep->best_epoch[l] = best_epoch;
}
