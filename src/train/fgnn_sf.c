/* SF, single forward (spec procedure 4), layer by layer.
 *
 * The graph gains C virtual nodes (fixed N(0,1) features), linked both ways to
 * the train nodes of their class, built once. Layer l: H = ReLU(conv(L2norm(H_prev)));
 * loss = cross entropy of H[train] H[VN]^T / tau. Inference sums the per-layer
 * softmaxes over the virtual nodes. Rows are laid out [train | VN | val | test |
 * rest], so an epoch is conv over rows [0, train + C) and a validation over
 * [VN, val); the summed softmaxes of the finished layers are kept per node
 * (N x C floats), so validating layer l never re-runs layers below it.
 *
 * Held while layer l trains: its input (or cached aggregation), the loss rows'
 * outputs and gradients, the summed softmaxes. Nothing of earlier layers. */
#include <math.h>
#include <string.h>

#include "leanprop/log.h"
#include "train/fgnn_internal.h"

typedef struct {
    fgnn_run *r;
    fgnn_layout lo;
    lp_graph *g;
    fgnn_stream s;
    float *acc;          /* (n, C) summed softmaxes of finished layers, layout rows */
    int64_t C, H;
    const lp_checkpoint *ck;                 /* resumed state: layers below ck_layer finished, */
    int ck_layer, ck_epoch;                  /* ck_layer after ck_epoch of its epochs */
    int epochs[LP_FGNN_MAX_LAYERS], best[LP_FGNN_MAX_LAYERS]; /* finished layers' epochs, best epochs */
} sf_ctx;

/* Accuracy on rows [r0, r0 + m) of acc + this layer's softmaxes (y: the rows' outputs, vn: VN outputs). */
static lp_status sf_rows_acc(const sf_ctx *x, double *acc_out, const float *y, const float *vn, int64_t r0, int64_t m)
{
    float *sc = fgnn_scratch(m * x->C);
    if (!sc) return lp_error_context(LP_ERR_NOMEM, "SF scores");
    memcpy(sc, x->acc + r0 * x->C, (size_t)(m * x->C) * sizeof(float));
    lp_status st = lp_fgnn_sf_accumulate(sc, y, vn, m, x->C, x->H, x->r->o.tau);
    if (st == LP_OK) *acc_out = (double)lp_fgnn_argmax(NULL, sc, x->lo.label + r0, m, x->C) / (double)m;
    lp_free(sc);
    return st;
}

/* Validation: rows [VN, val end) in one pass. */
static lp_status sf_validate(sf_ctx *x, double *val)
{
    const fgnn_layout *L = &x->lo;
    int64_t r0 = L->off_vn, m = L->n_vn + L->n_val, H = x->H;
    float *z = fgnn_act(m * H);
    if (!z) return lp_error_context(LP_ERR_NOMEM, "SF validation");
    lp_status st = fgnn_conv_forward(&x->s.conv, z, r0, r0 + m, 0);
    if (st == LP_OK) {
        fgnn_relu(z, m * H);
        st = sf_rows_acc(x, val, z + L->n_vn * H, z, L->off_val, L->n_val);
    }
    lp_free(z);
    return st;
}

static lp_status sf_layer(sf_ctx *x, int l)
{
    fgnn_run *r = x->r;
    const lp_gnn_train_config *cfg = r->cfg;
    const fgnn_layout *L = &x->lo;
    int64_t H = x->H, C = x->C, ntr = L->n_train, m = ntr + C;
    int64_t in = l == 0 ? r->a->data->n_features : H;
    LP_TRY(fgnn_run_layer(r, l, in, H));
    lp_gnn_layer *layer = r->model->layers[l];
    int resumed = x->ck && l <= x->ck_layer, finished = x->ck && l < x->ck_layer;
    if (resumed) LP_TRY(fgnn_ckpt_load_layer(r, x->ck, l));
    fgnn_opt opt;
    LP_TRY(fgnn_opt_init(&opt, layer, cfg->lr, cfg->weight_decay));
    float *z = NULL, *y = NULL;
    uint8_t *mask = NULL;
    lp_status st = fgnn_stream_bind(&x->s, layer, r->o.cache);
    if (st != LP_OK) goto done;
    fgnn_stream_drop_unread(&x->s);
    z = fgnn_act(m * H);      /* outputs of the loss rows, then (in place) their gradients */
    mask = fgnn_mask_new(m * H);
    if (!z || !mask) { st = lp_error_context(LP_ERR_NOMEM, "SF layer %d buffers", l + 1); goto done; }
    float w = fgnn_run_loss_weight(r, l);
    fgnn_stopper stop;
    fgnn_stopper_init(&stop, cfg->patience);
    int epoch;
    if ((st = fgnn_ckpt_first_epoch(r, x->ck, finished, resumed, x->epochs[l], x->best[l], x->ck_epoch, &opt, &stop,
                                    &epoch)) != LP_OK)
        goto done;
    for (; epoch <= cfg->epochs && !stop.stop; epoch++) {
        double t = lp_time_now();
        float loss;
        int64_t correct = 0;
        lp_gnn_layer_zero_grad(layer);
        if ((st = fgnn_conv_forward(&x->s.conv, z, 0, m, 1)) != LP_OK) goto done;
        fgnn_relu(z, m * H);
        fgnn_mask_set(mask, z, m * H);
        if ((st = lp_fgnn_sf_loss(&loss, z, z + ntr * H, &correct, z, z + ntr * H, L->label, ntr, C, H, r->o.tau)) != LP_OK)
            goto done;
        if (!isfinite(loss)) { st = lp_error(LP_ERR_NUMERIC, "layer %d epoch %d: loss is %g", l + 1, epoch, (double)loss); goto done; }
        if (w != 1.0f)
            for (int64_t i = 0; i < m * H; i++) z[i] *= w;
        fgnn_mask_apply(z, mask, m * H);
        if ((st = fgnn_conv_backward(&x->s.conv, z, 0, m)) != LP_OK) goto done;
        if ((st = fgnn_opt_step(&opt, 0.0f)) != LP_OK) goto done;
        r->train_s += lp_time_now() - t;
        double val = NAN;
        int improved = 0;
        if (epoch % cfg->eval_every == 0) {
            if ((st = sf_validate(x, &val)) != LP_OK) goto done;
            if ((improved = fgnn_stopper_step(&stop, epoch, val))) fgnn_opt_save(&opt);
        }
        fgnn_run_epoch(r, epoch, loss, (double)correct / (double)ntr, val, improved);
        if ((st = fgnn_ckpt_save(r, l, epoch, &opt, &stop, x->epochs, x->best)) != LP_OK) goto done;
    }
    x->epochs[l] = epoch - 1;
    x->best[l] = stop.best_epoch;
    if (stop.best_epoch > 0) fgnn_opt_restore(&opt);
    lp_free(z);
    lp_free(mask);
    z = NULL;
    mask = NULL;
    fgnn_opt_free(&opt);
    /* the finished layer: every row's output -> scores, next input */
    if ((st = fgnn_stream_output(&x->s, &y)) != LP_OK) goto done;
    const float *vn = y + L->off_vn * H;
    if ((st = lp_fgnn_sf_accumulate(x->acc, y, vn, ntr, C, H, r->o.tau)) != LP_OK) goto done;
    if ((st = lp_fgnn_sf_accumulate(x->acc + L->off_val * C, y + L->off_val * H, vn, L->n - L->off_val, C, H, r->o.tau)) != LP_OK)
        goto done;
    double tr = (double)lp_fgnn_argmax(NULL, x->acc, L->label, ntr, C) / (double)ntr;
    double va = (double)lp_fgnn_argmax(NULL, x->acc + L->off_val * C, L->label + L->off_val, L->n_val, C) / (double)L->n_val;
    double te = (double)lp_fgnn_argmax(NULL, x->acc + L->off_test * C, L->label + L->off_test, L->n_test, C) / (double)L->n_test;
    fgnn_run_scores(r, L, x->acc, 0, L->n);
    fgnn_run_record_depth(r, l, tr, va, te, epoch - 1, stop.best_epoch);
    fgnn_stream_set_input(&x->s, y, H);
    y = NULL;
done:
    lp_free(z);
    lp_free(mask);
    lp_free(y);
    fgnn_opt_free(&opt);
    return st;
}

lp_status fgnn_train_sf(fgnn_run *r)
{
    const lp_graph_dataset *ds = r->a->data;
    sf_ctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.H = r->cfg->hidden;
    LP_TRY(fgnn_layout_node(&x.lo, ds, r->a->node, 1, "sf"));
    fgnn_layout *L = &x.lo;
    x.C = L->C;
    int32_t *link = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->n, sizeof(int32_t));
    float *vnf = NULL;
    lp_csr *xs = NULL;
    float *xd = NULL;
    lp_status st = link ? LP_OK : lp_error_context(LP_ERR_NOMEM, "SF");
    for (int64_t i = 0; st == LP_OK && i < L->n; i++) link[i] = i < L->n_train ? L->label[i] : -1;
    if (st == LP_OK) st = fgnn_layout_graph(&x.g, L, ds->graph, link);
    lp_free(link);
    if (st == LP_OK && !(vnf = fgnn_vn_features(x.C, ds->n_features, r->cfg->seed))) st = lp_error_context(LP_ERR_NOMEM, "virtual nodes");
    if (st == LP_OK) st = fgnn_features(&xs, &xd, ds, L, vnf, NULL, NULL);
    lp_free(vnf);
    if (st == LP_OK && !(x.acc = fgnn_act(L->n * x.C))) st = lp_error_context(LP_ERR_NOMEM, "SF scores");
    if (st == LP_OK) {
        fgnn_stream_init(&x.s, x.g);
        if (xs) fgnn_stream_add_sparse(&x.s, xs, 1);
        else fgnn_stream_add_dense(&x.s, xd, ds->n_features, 1);
        xs = NULL;
        xd = NULL;
        x.ck = fgnn_ckpt_state(r, &x.ck_layer, &x.ck_epoch, x.epochs, x.best, &st);
        for (int l = 0; l < r->cfg->n_layers && st == LP_OK; l++) {
            fgnn_run_segment_begin(r);
            st = sf_layer(&x, l);
            fgnn_run_segment_end(r, l);
        }
    }
    fgnn_stream_free(&x.s);
    lp_csr_free(xs);
    lp_free(xd);
    lp_free(x.acc);
    lp_graph_free(x.g);
    fgnn_layout_free(&x.lo);
    return st;
}
