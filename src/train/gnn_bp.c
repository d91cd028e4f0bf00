/* Backprop baselines (spec procedure 1), full batch, one Adam step per epoch:
 *   node: conv stack -> C logits, cross entropy on train nodes; accuracy.
 *   link: conv stack -> link_dim embeddings, s_uv = <z_u, z_v>, BCE on train
 *         positives and their fixed negatives; ROC-AUC. Message passing over
 *         train positives for train and val, train + val positives for test.
 * Validation every eval_every epochs; stop after `patience` validations without
 * strict improvement; the best weights are restored before the final scores.
 * Each epoch checks the output, the loss and every gradient for NaN/Inf
 * (cfg->on_nonfinite: stop, or skip the update). With cfg->ckpt the run saves
 * its whole state every few epochs and continues a saved one (leanprop/gnn.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/gnn.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/kernels/softmax.h"
#include "leanprop/log.h"
#include "leanprop/metrics.h"

lp_gnn_train_config lp_gnn_train_defaults(void)
{
    lp_gnn_train_config c = {
        .kind = LP_GNN_GCN, .n_layers = 2, .hidden = 128, .heads = 4, .link_dim = 128, .lr = 1e-3f,
        .weight_decay = 5e-4f, .epochs = 1000, .eval_every = 2, .patience = 100, .seed = 10100,
    };
    return c;
}

static lp_status adam_update_one(float *param, float *grad, int64_t numel, int64_t offset, void *user)
{
    return lp_adam_update((lp_adam *)user, offset, param, grad, numel);
}

/* What both tasks share: model, optimizer, best-weight copy, early stopping. */
typedef struct {
    const lp_gnn_run_args *a;
    lp_gnn_model *model;
    lp_adam *opt;
    float *best;
    double best_val;
    int best_epoch, bad, stop;
    double t0, train_s;
    int epochs_run;
    lp_gnn_input x;
    lp_rng rng;             /* after the weight init (kept in checkpoints) */
    int start_epoch;        /* the epoch a resumed run continues after */
    int skip, skipped;      /* this epoch's update dropped (non-finite); how many were */
    char skip_reason[512];
} bp_run;

/* ---- checkpoints: the run's whole state under "bp.*" ---- */

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Visit every parameter with its checkpoint name "bp.layers.<i>.<PyG name>". */
static lp_status bp_params_io(bp_run *r, lp_checkpoint_writer *w, const lp_checkpoint *ck)
{
    char name[LP_CHECKPOINT_NAME_MAX];
    for (int i = 0; i < lp_gnn_model_n_layers(r->model); i++) {
        lp_gnn_layer *l = lp_gnn_model_layer(r->model, i);
        for (int j = 0; j < lp_gnn_layer_n_params(l); j++) {
            lp_gnn_param p = lp_gnn_layer_param(l, j);
            int64_t shape[2] = {p.rows, p.cols};
            snprintf(name, sizeof name, "bp.layers.%d.%s", i, p.name);
            if (w) LP_TRY(lp_checkpoint_writer_add_tensor(w, name, p.data, shape, 2));
            else LP_TRY(lp_checkpoint_get_tensor(ck, name, p.data, (size_t)p.numel));
        }
    }
    return LP_OK;
}

static lp_status bp_save(bp_run *r, int epoch)
{
    lp_gnn_checkpoint *c = r->a->cfg->ckpt;
    lp_checkpoint_writer *w;
    LP_TRY(lp_gnn_checkpoint_begin(c, r->a->run, epoch, &w));
    float *m, *v;
    lp_adam_moments(r->opt, &m, &v);
    int64_t n[1] = {lp_gnn_model_numel(r->model)};
    lp_status st = bp_params_io(r, w, NULL);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, "bp.adam.m", m, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, "bp.adam.v", v, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, "bp.best", r->best, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, "bp.adam.t", (uint64_t)lp_adam_steps(r->opt));
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, "bp.best_val", f64_bits(r->best_val));
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, "bp.train_s", f64_bits(r->train_s));
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, "bp.elapsed_s", f64_bits(lp_time_now() - r->t0));
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, "bp.epoch", epoch);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, "bp.best_epoch", r->best_epoch);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, "bp.bad", r->bad);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, "bp.stop", r->stop);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, "bp.skipped", r->skipped);
    if (st == LP_OK) st = lp_checkpoint_writer_add_rng(w, "bp.rng", &r->rng);
    if (st != LP_OK) {
        lp_checkpoint_writer_free(w);
        return st;
    }
    return lp_gnn_checkpoint_commit(c, w);
}

static lp_status bp_get_int(const lp_checkpoint *ck, const char *key, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    LP_TRY(lp_checkpoint_get_i64(ck, key, &v));
    if (v < lo || v > hi)
        return lp_error(LP_ERR_FORMAT, "%s: %s = %" PRId64 " outside [%" PRId64 ", %" PRId64 "]", lp_checkpoint_path(ck), key,
                        v, lo, hi);
    *out = (int)v;
    return LP_OK;
}

/* Continue a saved run: everything bp_save wrote. */
static lp_status bp_restore(bp_run *r, const lp_checkpoint *ck, int epoch)
{
    float *m, *v;
    lp_adam_moments(r->opt, &m, &v);
    size_t n = (size_t)lp_gnn_model_numel(r->model);
    uint64_t t, best_val, train_s, elapsed;
    int saved_epoch;
    LP_TRY(bp_params_io(r, NULL, ck));
    LP_TRY(lp_checkpoint_get_tensor(ck, "bp.adam.m", m, n));
    LP_TRY(lp_checkpoint_get_tensor(ck, "bp.adam.v", v, n));
    LP_TRY(lp_checkpoint_get_tensor(ck, "bp.best", r->best, n));
    LP_TRY(lp_checkpoint_get_u64(ck, "bp.adam.t", &t));
    LP_TRY(lp_checkpoint_get_u64(ck, "bp.best_val", &best_val));
    LP_TRY(lp_checkpoint_get_u64(ck, "bp.train_s", &train_s));
    LP_TRY(lp_checkpoint_get_u64(ck, "bp.elapsed_s", &elapsed));
    LP_TRY(bp_get_int(ck, "bp.epoch", epoch, epoch, &saved_epoch));
    LP_TRY(bp_get_int(ck, "bp.best_epoch", 0, epoch, &r->best_epoch));
    LP_TRY(bp_get_int(ck, "bp.bad", 0, epoch, &r->bad));
    LP_TRY(bp_get_int(ck, "bp.stop", 0, 1, &r->stop));
    LP_TRY(bp_get_int(ck, "bp.skipped", 0, epoch, &r->skipped));
    LP_TRY(lp_checkpoint_get_rng(ck, "bp.rng", &r->rng));
    if (t > (uint64_t)epoch)
        return lp_error(LP_ERR_FORMAT, "%s: bp.adam.t = %" PRIu64 " after %d epochs", lp_checkpoint_path(ck), t, epoch);
    LP_TRY(lp_adam_set_steps(r->opt, (int64_t)t));
    r->best_val = bits_f64(best_val);
    r->train_s = bits_f64(train_s);
    r->t0 -= bits_f64(elapsed);
    r->epochs_run = r->start_epoch = epoch;
    return LP_OK;
}

/* ---- non-finite values ---- */

/* A failed finiteness check (st): STOP returns it with run and epoch; SKIP keeps the first
 * report of the epoch, marks the epoch skipped and goes on. */
static lp_status bp_nonfinite(bp_run *r, int epoch, lp_status st)
{
    if (st != LP_ERR_NUMERIC) return st;
    st = lp_error_context(st, "run %d epoch %d", r->a->run, epoch);
    if (r->a->cfg->on_nonfinite != LP_NONFINITE_SKIP) return st;
    if (!r->skip) snprintf(r->skip_reason, sizeof r->skip_reason, "%s", lp_error_message());
    r->skip = 1;
    lp_error_clear();
    return LP_OK;
}

static lp_status bp_check_output(bp_run *r, int epoch, const float *y, size_t n)
{
    if (lp_all_finite(y, n)) return LP_OK;
    char name[64];
    snprintf(name, sizeof name, "the output of layer %d", lp_gnn_model_n_layers(r->model) - 1);
    return bp_nonfinite(r, epoch, lp_check_finite_kind(y, n, "activations", name, -1));
}

/* The validation forward's output: non-finite under STOP is the run's error; under SKIP the
 * validation scores NaN (no improvement). *ok = 1 when every value is finite. */
static lp_status bp_check_val_output(bp_run *r, int epoch, const float *y, size_t n, int *ok)
{
    *ok = lp_all_finite(y, n);
    if (*ok || r->a->cfg->on_nonfinite == LP_NONFINITE_SKIP) return LP_OK;
    char name[80];
    snprintf(name, sizeof name, "the validation output of layer %d", lp_gnn_model_n_layers(r->model) - 1);
    return lp_error_context(lp_check_finite_kind(y, n, "activations", name, -1), "run %d epoch %d", r->a->run, epoch);
}

static lp_status bp_check_loss(bp_run *r, int epoch, float loss)
{
    return isfinite(loss) ? LP_OK : bp_nonfinite(r, epoch, lp_check_finite(&loss, 1, "loss", -1));
}

static lp_status bp_check_grads(bp_run *r, int epoch)
{
    char name[96];
    for (int i = 0; i < lp_gnn_model_n_layers(r->model); i++) {
        lp_gnn_layer *l = lp_gnn_model_layer(r->model, i);
        for (int j = 0; j < lp_gnn_layer_n_params(l); j++) {
            lp_gnn_param p = lp_gnn_layer_param(l, j);
            if (lp_all_finite(p.grad, (size_t)p.numel)) continue;
            snprintf(name, sizeof name, "layers.%d.%s", i, p.name);
            return bp_nonfinite(r, epoch, lp_check_finite_kind(p.grad, (size_t)p.numel, "gradients", name, -1));
        }
    }
    return LP_OK;
}

static lp_status bp_begin(bp_run *r, const lp_gnn_run_args *a, int64_t out_dim)
{
    memset(r, 0, sizeof *r);
    r->a = a;
    r->best_val = -INFINITY;
    r->t0 = lp_time_now();
    const lp_gnn_train_config *c = a->cfg;
    if (c->n_layers < 1 || c->hidden < 1 || c->epochs < 0 || c->eval_every < 1 || c->patience < 1)
        return lp_error(LP_ERR_INVALID_ARG, "bad training configuration (layers %d, hidden %d, epochs %d, eval every %d, patience %d)",
                        c->n_layers, c->hidden, c->epochs, c->eval_every, c->patience);
    lp_rng_seed(&r->rng, c->seed);
    lp_gnn_model_config mc = {c->kind, c->n_layers, a->data->n_features, c->hidden, out_dim, c->heads};
    LP_TRY(lp_gnn_model_new(&r->model, &mc, &r->rng));
    lp_adam_config ac = lp_adam_defaults();
    ac.lr = c->lr;
    ac.weight_decay = c->weight_decay;
    ac.decoupled = 0;
    int64_t n = lp_gnn_model_numel(r->model);
    LP_TRY(lp_adam_new(&r->opt, n, &ac));
    r->best = lp_alloc_array(LP_MEM_WEIGHTS, (size_t)n, sizeof(float));
    if (!r->best) return lp_error_context(LP_ERR_NOMEM, "best-weight copy");
    r->x = lp_gnn_input_features(a->data);
    int epoch;
    const lp_checkpoint *ck = lp_gnn_checkpoint_state(a->cfg->ckpt, a->run, &epoch);
    lp_status st = ck ? bp_restore(r, ck, epoch) : LP_OK;
    return st == LP_OK ? LP_OK : lp_error_context(st, "resuming run %d", a->run);
}

/* The epoch's update: one Adam step, or none when the epoch was skipped. */
static lp_status bp_step(bp_run *r)
{
    if (r->skip) {
        r->skipped++;
        return LP_OK;
    }
    LP_TRY(lp_adam_begin_step(r->opt));
    return lp_gnn_model_for_params(r->model, adam_update_one, r->opt);
}

/* Record a validation score; returns whether it improved. */
static int bp_validate(bp_run *r, int epoch, double val)
{
    if (val > r->best_val) {
        r->best_val = val;
        r->best_epoch = epoch;
        r->bad = 0;
        lp_gnn_model_get_params(r->model, r->best);
        return 1;
    }
    if (++r->bad >= r->a->cfg->patience) r->stop = 1;
    return 0;
}

/* Report the epoch, then save when a checkpoint is due. */
static lp_status bp_report(bp_run *r, int epoch, double loss, double train, double val, int improved)
{
    if (r->a->on_epoch) {
        lp_gnn_epoch e = {r->a->run, epoch, loss, train, val, improved, lp_time_now() - r->t0, r->skip,
                          r->skip ? r->skip_reason : NULL};
        r->a->on_epoch(&e, r->a->user);
    }
    r->skip = 0;
    return lp_gnn_checkpoint_due(r->a->cfg->ckpt, epoch) ? bp_save(r, epoch) : LP_OK;
}

static void bp_finish(bp_run *r, lp_gnn_result *out)
{
    if (r->best_epoch > 0) lp_gnn_model_set_params(r->model, r->best); /* else: no validation ran, keep the last */
    out->best_epoch = r->best_epoch;
    out->epochs = r->epochs_run;
    out->params = lp_gnn_model_numel(r->model);
    out->epoch_ms = r->epochs_run ? 1e3 * r->train_s / r->epochs_run : 0;
    out->skipped_epochs = r->skipped;
}

static void bp_end(bp_run *r, lp_gnn_result *out)
{
    lp_mem_get_stats(&out->mem);
    out->seconds = lp_time_now() - r->t0;
    lp_gnn_model_free(r->model); /* also releases the layers' workspace cache */
    lp_adam_free(r->opt);
    lp_free(r->best);
}

lp_status lp_gnn_train_bp_node(const lp_gnn_run_args *a, lp_gnn_result *out)
{
    if (!a || !out || !a->data || !a->node || !a->cfg) return lp_error(LP_ERR_INVALID_ARG, "bp node: NULL argument");
    const lp_graph_dataset *ds = a->data;
    const lp_node_split *sp = a->node;
    if (!ds->labels || ds->n_classes < 2) return lp_error(LP_ERR_FORMAT, "%s: labels missing", ds->path);
    memset(out, 0, sizeof *out);
    lp_mem_reset_peak();
    int64_t N = ds->n_nodes, C = ds->n_classes;
    bp_run r;
    memset(&r, 0, sizeof r);
    int32_t *targets = lp_alloc_array(LP_MEM_DATA, (size_t)N, sizeof(int32_t));
    float *lse = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)N, sizeof(float));
    lp_status st = targets && lse ? bp_begin(&r, a, C) : lp_error_context(LP_ERR_NOMEM, "bp node");
    if (st != LP_OK) goto done;
    for (int64_t i = 0; i < N; i++) targets[i] = LP_IGNORE_INDEX;
    for (int64_t k = 0; k < sp->n_train; k++) targets[sp->train[k]] = ds->labels[sp->train[k]];
    float *logits;
    for (int epoch = r.start_epoch + 1; epoch <= a->cfg->epochs && !r.stop; epoch++) {
        double ts = lp_time_now();
        float loss;
        int64_t count;
        lp_gnn_model_zero_grad(r.model);
        if ((st = lp_gnn_model_forward(r.model, &r.x, ds->graph, 1, &logits)) != LP_OK) goto done;
        if ((st = bp_check_output(&r, epoch, logits, (size_t)(N * C))) != LP_OK) goto done;
        if ((st = lp_crossentropy_forward(&loss, &count, lse, logits, targets, N, C, LP_IGNORE_INDEX)) != LP_OK) goto done;
        if ((st = bp_check_loss(&r, epoch, loss)) != LP_OK) goto done;
        double train_acc = lp_accuracy_argmax(logits, C, ds->labels, sp->train, sp->n_train);
        if ((st = lp_crossentropy_backward(logits, logits, lse, targets, count, 1.0f, N, C, LP_IGNORE_INDEX)) != LP_OK) goto done;
        if ((st = lp_gnn_model_backward(r.model, logits)) != LP_OK) goto done;
        if ((st = bp_check_grads(&r, epoch)) != LP_OK) goto done;
        if ((st = bp_step(&r)) != LP_OK) goto done;
        r.train_s += lp_time_now() - ts;
        r.epochs_run = epoch;
        double val = NAN;
        int improved = 0;
        if (epoch % a->cfg->eval_every == 0) {
            int ok;
            if ((st = lp_gnn_model_forward(r.model, &r.x, ds->graph, 0, &logits)) != LP_OK) goto done;
            if ((st = bp_check_val_output(&r, epoch, logits, (size_t)(N * C), &ok)) != LP_OK) goto done;
            if (ok) val = lp_accuracy_argmax(logits, C, ds->labels, sp->val, sp->n_val);
            improved = bp_validate(&r, epoch, val);
        }
        if ((st = bp_report(&r, epoch, loss, train_acc, val, improved)) != LP_OK) goto done;
    }
    bp_finish(&r, out);
    if ((st = lp_gnn_model_forward(r.model, &r.x, ds->graph, 0, &logits)) != LP_OK) goto done;
    out->train = lp_accuracy_argmax(logits, C, ds->labels, sp->train, sp->n_train);
    out->val = lp_accuracy_argmax(logits, C, ds->labels, sp->val, sp->n_val);
    out->test = lp_accuracy_argmax(logits, C, ds->labels, sp->test, sp->n_test);
done:
    bp_end(&r, out);
    lp_free(targets);
    lp_free(lse);
    return st;
}

/* pairs = [pos; neg] (2P, 2) with labels 1 then 0 */
static lp_status make_pairs(int64_t **pairs, uint8_t **labels, const int64_t *pos, const int64_t *neg, int64_t P)
{
    *pairs = lp_alloc_array(LP_MEM_DATA, 4 * (size_t)(P ? P : 1), sizeof(int64_t));
    *labels = lp_alloc_array(LP_MEM_DATA, 2 * (size_t)(P ? P : 1), 1);
    if (!*pairs || !*labels) return lp_error_context(LP_ERR_NOMEM, "link pairs");
    memcpy(*pairs, pos, 2 * (size_t)P * sizeof(int64_t));
    memcpy(*pairs + 2 * P, neg, 2 * (size_t)P * sizeof(int64_t));
    for (int64_t p = 0; p < P; p++) (*labels)[p] = 1;
    return LP_OK;
}

/* nan_ok (policy skip): a NaN score makes the AUC NaN instead of an error. */
static lp_status pairs_auc(double *auc, float *s, const float *z, const int64_t *pairs, const uint8_t *y, int64_t P2,
                           int64_t N, int64_t D, int nan_ok)
{
    LP_TRY(lp_gnn_pair_scores(s, z, pairs, P2, N, D));
    for (int64_t p = 0; nan_ok && p < P2; p++)
        if (isnan(s[p])) {
            *auc = NAN;
            return LP_OK;
        }
    return lp_roc_auc(s, y, P2, auc);
}

lp_status lp_gnn_train_bp_link(const lp_gnn_run_args *a, lp_gnn_result *out)
{
    if (!a || !out || !a->data || !a->link || !a->cfg) return lp_error(LP_ERR_INVALID_ARG, "bp link: NULL argument");
    const lp_graph_dataset *ds = a->data;
    const lp_edge_split *sp = a->link;
    if (sp->n_train < 1 || sp->n_val < 1 || sp->n_test < 1)
        return lp_error(LP_ERR_INVALID_ARG, "bp link: the split has an empty train, val or test set");
    memset(out, 0, sizeof *out);
    lp_mem_reset_peak();
    int64_t N = ds->n_nodes, D = a->cfg->link_dim;
    lp_graph *g_train = NULL, *g_all = NULL;
    int64_t *ptr = NULL, *pva = NULL, *pte = NULL;
    uint8_t *ytr = NULL, *yva = NULL, *yte = NULL;
    float *s = NULL, *dz = NULL;
    bp_run r;
    memset(&r, 0, sizeof r);
    lp_status st;
    if ((st = lp_edge_split_graph(&g_train, sp, N, 0)) != LP_OK || (st = lp_edge_split_graph(&g_all, sp, N, 1)) != LP_OK)
        goto done;
    if ((st = make_pairs(&ptr, &ytr, sp->train_pos, sp->train_neg, sp->n_train)) != LP_OK ||
        (st = make_pairs(&pva, &yva, sp->val_pos, sp->val_neg, sp->n_val)) != LP_OK ||
        (st = make_pairs(&pte, &yte, sp->test_pos, sp->test_neg, sp->n_test)) != LP_OK)
        goto done;
    int64_t Pmax = 2 * (sp->n_train > sp->n_val ? (sp->n_train > sp->n_test ? sp->n_train : sp->n_test)
                                                : (sp->n_val > sp->n_test ? sp->n_val : sp->n_test));
    s = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)Pmax, sizeof(float));
    if (!s) { st = lp_error_context(LP_ERR_NOMEM, "link scores"); goto done; }
    if ((st = bp_begin(&r, a, D)) != LP_OK) goto done;
    float *z;
    int64_t P2 = 2 * sp->n_train;
    for (int epoch = r.start_epoch + 1; epoch <= a->cfg->epochs && !r.stop; epoch++) {
        double ts = lp_time_now();
        float loss;
        double train_auc = NAN;
        lp_gnn_model_zero_grad(r.model);
        if ((st = lp_gnn_model_forward(r.model, &r.x, g_train, 1, &z)) != LP_OK) goto done;
        if ((st = bp_check_output(&r, epoch, z, (size_t)(N * D))) != LP_OK) goto done;
        if ((st = lp_gnn_pair_scores(s, z, ptr, P2, N, D)) != LP_OK) goto done;
        if (a->on_epoch && lp_roc_auc(s, ytr, P2, &train_auc) != LP_OK) train_auc = NAN;
        if ((st = lp_bce_logits(&loss, s, s, ytr, P2, 1.0f)) != LP_OK) goto done; /* s becomes ds */
        if ((st = bp_check_loss(&r, epoch, loss)) != LP_OK) goto done;
        dz = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(N * D), sizeof(float));
        if (!dz) { st = lp_error_context(LP_ERR_NOMEM, "link backward"); goto done; }
        if ((st = lp_gnn_pair_scores_backward(dz, s, z, ptr, P2, N, D)) != LP_OK) goto done;
        if ((st = lp_gnn_model_backward(r.model, dz)) != LP_OK) goto done;
        lp_free(dz);
        dz = NULL;
        if ((st = bp_check_grads(&r, epoch)) != LP_OK) goto done;
        if ((st = bp_step(&r)) != LP_OK) goto done;
        r.train_s += lp_time_now() - ts;
        r.epochs_run = epoch;
        double val = NAN;
        int improved = 0;
        if (epoch % a->cfg->eval_every == 0) {
            int ok;
            if ((st = lp_gnn_model_forward(r.model, &r.x, g_train, 0, &z)) != LP_OK) goto done;
            if ((st = bp_check_val_output(&r, epoch, z, (size_t)(N * D), &ok)) != LP_OK) goto done;
            if (ok && (st = pairs_auc(&val, s, z, pva, yva, 2 * sp->n_val, N, D, 0)) != LP_OK) goto done;
            improved = bp_validate(&r, epoch, val);
        }
        if ((st = bp_report(&r, epoch, loss, train_auc, val, improved)) != LP_OK) goto done;
    }
    bp_finish(&r, out);
    if ((st = lp_gnn_model_forward(r.model, &r.x, g_train, 0, &z)) != LP_OK) goto done;
    int nan_ok = a->cfg->on_nonfinite == LP_NONFINITE_SKIP;
    if ((st = pairs_auc(&out->train, s, z, ptr, ytr, P2, N, D, nan_ok)) != LP_OK) goto done;
    if ((st = pairs_auc(&out->val, s, z, pva, yva, 2 * sp->n_val, N, D, nan_ok)) != LP_OK) goto done;
    if ((st = lp_gnn_model_forward(r.model, &r.x, g_all, 0, &z)) != LP_OK) goto done;
    st = pairs_auc(&out->test, s, z, pte, yte, 2 * sp->n_test, N, D, nan_ok);
done:
    bp_end(&r, out);
    lp_free(dz);
    lp_free(s);
    lp_free(ptr); lp_free(pva); lp_free(pte);
    lp_free(ytr); lp_free(yva); lp_free(yte);
    lp_graph_free(g_train);
    lp_graph_free(g_all);
    return st;
}
