/* Mid-run checkpoints of the layer-wise forward methods (sf, ff-la, ff-vn, fl-ce, fl-ff): the state of a
 * run in progress under "<method>.*" in the job's checkpoint (leanprop/gnn.h):
 *   <m>.layer               the layer in training (0-based); layers below it are finished
 *   <m>.layer_epoch         epochs it trained so far
 *   <m>.layers.<k>.epochs, <m>.layers.<k>.best_epoch   of each finished layer k
 *   <m>.layers.<k>.<param>  weights of layers 0..layer (finished ones: best restored)
 *   <m>.adam.m, .adam.v, .adam.t, <m>.best   the current layer's Adam state and best copy
 *   <m>.stop.best (f64 bits), .stop.best_epoch, .stop.bad, .stop.stop   its early stopping
 *   <m>.train_s, <m>.elapsed_s (f64 bits)     timing, so a resumed run reports the whole run's
 * The cumulative epoch (gnn.epoch) is the sum of the finished layers' epochs and layer_epoch.
 * A resume rebuilds the finished layers from their weights (their outputs are recomputed
 * exactly: no randomness after the weight init and FF's negatives) and continues the current layer.
 *
 * The prototypes are repeated in the trainers (fgnn_sf.c, fgnn_ff.c, fgnn_link.c) until they move to
 * fgnn_internal.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "leanprop/log.h"
#include "train/fgnn_internal.h"

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

static const char *key(char *b, size_t size, const fgnn_run *r, const char *fmt, int k)
{
    char tail[128];
    snprintf(tail, sizeof tail, fmt, k);
    snprintf(b, size, "%s.%s", lp_fgnn_method_name(r->method), tail);
    return b;
}

/* Weights of layer l: write them (w) or read them (ck). */
static lp_status layer_io(fgnn_run *r, int l, lp_checkpoint_writer *w, const lp_checkpoint *ck)
{
    char name[LP_CHECKPOINT_NAME_MAX];
    lp_gnn_layer *layer = r->model->layers[l];
    for (int j = 0; j < lp_gnn_layer_n_params(layer); j++) {
        lp_gnn_param p = lp_gnn_layer_param(layer, j);
        int64_t shape[2] = {p.rows, p.cols};
        snprintf(name, sizeof name, "%s.layers.%d.%s", lp_fgnn_method_name(r->method), l, p.name);
        if (w) LP_TRY(lp_checkpoint_writer_add_tensor(w, name, p.data, shape, 2));
        else LP_TRY(lp_checkpoint_get_tensor(ck, name, p.data, (size_t)p.numel));
    }
    return LP_OK;
}

/* Save when a checkpoint is due after the run's cumulative epoch (call after fgnn_run_epoch). */
lp_status fgnn_ckpt_save(fgnn_run *r, int l, int layer_epoch, fgnn_opt *opt, const fgnn_stopper *stop, const int *epochs,
                         const int *best_epochs)
{
    lp_gnn_checkpoint *c = r->cfg->ckpt;
    if (!lp_gnn_checkpoint_due(c, r->epochs_total)) return LP_OK;
    lp_checkpoint_writer *w;
    LP_TRY(lp_gnn_checkpoint_begin(c, r->a->run, r->epochs_total, &w));
    char k[256];
    float *m, *v;
    lp_adam_moments(opt->adam, &m, &v);
    int64_t n[1] = {lp_gnn_layer_numel(opt->layer)};
    lp_status st = LP_OK;
    for (int i = 0; st == LP_OK && i <= l; i++) st = layer_io(r, i, w, NULL);
    for (int i = 0; st == LP_OK && i < l; i++) {
        st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "layers.%d.epochs", i), epochs[i]);
        if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "layers.%d.best_epoch", i), best_epochs[i]);
    }
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "layer", 0), l);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "layer_epoch", 0), layer_epoch);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, key(k, sizeof k, r, "adam.m", 0), m, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, key(k, sizeof k, r, "adam.v", 0), v, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, key(k, sizeof k, r, "best", 0), opt->best, n, 1);
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, key(k, sizeof k, r, "adam.t", 0), (uint64_t)lp_adam_steps(opt->adam));
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, key(k, sizeof k, r, "stop.best", 0), f64_bits(stop->best));
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "stop.best_epoch", 0), stop->best_epoch);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "stop.bad", 0), stop->bad);
    if (st == LP_OK) st = lp_checkpoint_writer_add_i64(w, key(k, sizeof k, r, "stop.stop", 0), stop->stop);
    if (st == LP_OK) st = lp_checkpoint_writer_add_u64(w, key(k, sizeof k, r, "train_s", 0), f64_bits(r->train_s));
    if (st == LP_OK)
        st = lp_checkpoint_writer_add_u64(w, key(k, sizeof k, r, "elapsed_s", 0), f64_bits(lp_time_now() - r->t0));
    if (st != LP_OK) {
        lp_checkpoint_writer_free(w);
        return st;
    }
    return lp_gnn_checkpoint_commit(c, w);
}

static lp_status get_int(const lp_checkpoint *ck, const char *k, int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    LP_TRY(lp_checkpoint_get_i64(ck, k, &v));
    if (v < lo || v > hi)
        return lp_error(LP_ERR_FORMAT, "%s: %s = %" PRId64 " outside [%" PRId64 ", %" PRId64 "]", lp_checkpoint_path(ck), k, v,
                        lo, hi);
    *out = (int)v;
    return LP_OK;
}

/* The saved state of this run, or NULL (*st says whether that is an error). Fills the layer in
 * training, its epochs so far, the finished layers' epochs and best epochs; restores timing. */
const lp_checkpoint *fgnn_ckpt_state(fgnn_run *r, int *layer, int *layer_epoch, int *epochs, int *best_epochs,
                                     lp_status *st)
{
    *layer = *layer_epoch = 0;
    *st = LP_OK;
    int total;
    const lp_checkpoint *ck = lp_gnn_checkpoint_state(r->cfg->ckpt, r->a->run, &total);
    if (!ck) return NULL;
    const lp_gnn_train_config *c = r->cfg;
    char k[256];
    uint64_t train_s, elapsed;
    int sum = 0;
    lp_status s = get_int(ck, key(k, sizeof k, r, "layer", 0), 0, c->n_layers - 1, layer);
    if (s == LP_OK) s = get_int(ck, key(k, sizeof k, r, "layer_epoch", 0), 0, c->epochs, layer_epoch);
    for (int i = 0; s == LP_OK && i < *layer; i++) {
        s = get_int(ck, key(k, sizeof k, r, "layers.%d.epochs", i), 0, c->epochs, &epochs[i]);
        if (s == LP_OK) s = get_int(ck, key(k, sizeof k, r, "layers.%d.best_epoch", i), 0, epochs[i], &best_epochs[i]);
        sum += s == LP_OK ? epochs[i] : 0;
    }
    if (s == LP_OK) s = lp_checkpoint_get_u64(ck, key(k, sizeof k, r, "train_s", 0), &train_s);
    if (s == LP_OK) s = lp_checkpoint_get_u64(ck, key(k, sizeof k, r, "elapsed_s", 0), &elapsed);
    if (s == LP_OK && sum + *layer_epoch != total)
        s = lp_error(LP_ERR_FORMAT, "%s: gnn.epoch = %d, the layers' epochs add up to %d", lp_checkpoint_path(ck), total,
                     sum + *layer_epoch);
    if (s != LP_OK) {
        *st = lp_error_context(s, "resuming run %d", r->a->run);
        return NULL;
    }
    r->train_s = bits_f64(train_s);
    r->t0 -= bits_f64(elapsed);
    return ck;
}

lp_status fgnn_ckpt_load_layer(fgnn_run *r, const lp_checkpoint *ck, int l)
{
    lp_status st = layer_io(r, l, NULL, ck);
    return st == LP_OK ? LP_OK : lp_error_context(st, "resuming run %d, layer %d", r->a->run, l + 1);
}

/* The current layer's Adam state, best copy and early stopping (after fgnn_opt_init). */
lp_status fgnn_ckpt_load_opt(fgnn_run *r, const lp_checkpoint *ck, fgnn_opt *opt, fgnn_stopper *stop)
{
    char k[256];
    float *m, *v;
    lp_adam_moments(opt->adam, &m, &v);
    size_t n = (size_t)lp_gnn_layer_numel(opt->layer);
    uint64_t t, best;
    int layer_epoch = 0;
    lp_status st = get_int(ck, key(k, sizeof k, r, "layer_epoch", 0), 0, r->cfg->epochs, &layer_epoch);
    if (st == LP_OK) st = lp_checkpoint_get_tensor(ck, key(k, sizeof k, r, "adam.m", 0), m, n);
    if (st == LP_OK) st = lp_checkpoint_get_tensor(ck, key(k, sizeof k, r, "adam.v", 0), v, n);
    if (st == LP_OK) st = lp_checkpoint_get_tensor(ck, key(k, sizeof k, r, "best", 0), opt->best, n);
    if (st == LP_OK) st = lp_checkpoint_get_u64(ck, key(k, sizeof k, r, "adam.t", 0), &t);
    if (st == LP_OK) st = lp_checkpoint_get_u64(ck, key(k, sizeof k, r, "stop.best", 0), &best);
    if (st == LP_OK) st = get_int(ck, key(k, sizeof k, r, "stop.best_epoch", 0), 0, layer_epoch, &stop->best_epoch);
    if (st == LP_OK) st = get_int(ck, key(k, sizeof k, r, "stop.bad", 0), 0, layer_epoch, &stop->bad);
    if (st == LP_OK) st = get_int(ck, key(k, sizeof k, r, "stop.stop", 0), 0, 1, &stop->stop);
    if (st == LP_OK && t > (uint64_t)layer_epoch)
        st = lp_error(LP_ERR_FORMAT, "%s: adam.t = %" PRIu64 " after %d epochs", lp_checkpoint_path(ck), t, layer_epoch);
    if (st == LP_OK) st = lp_adam_set_steps(opt->adam, (int64_t)t);
    if (st != LP_OK) return lp_error_context(st, "resuming run %d", r->a->run);
    stop->best = bits_f64(best);
    return LP_OK;
}

lp_status fgnn_ckpt_first_epoch(fgnn_run *r, const lp_checkpoint *ck, int finished, int resumed, int saved_epochs,
                                int saved_best, int ck_epoch, fgnn_opt *opt, fgnn_stopper *stop, int *epoch)
{
    *epoch = 1;
    if (finished) {
        stop->stop = 1;
        stop->best_epoch = saved_best;
        *epoch = saved_epochs + 1;
        r->epochs_total += saved_epochs;
    } else if (resumed) {
        LP_TRY(fgnn_ckpt_load_opt(r, ck, opt, stop));
        *epoch = ck_epoch + 1;
        r->epochs_total += ck_epoch;
    }
    return LP_OK;
}
