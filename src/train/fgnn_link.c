/* Forward-learned link prediction, layer by layer (spec procedure 7).
 *
 * FL-CE: stack [L2norm, GNN] x L; each layer scores a pair by s_uv = <z_u, z_v>
 * and trains on BCE over the train positives and their fixed negatives.
 * FL-FF: e = z_u * z_v, logit = sum e^2 - theta; softplus losses of the
 * positives and negatives, each averaged over its set, summed.
 * Message passing: train positives for training and validation, train + val
 * positives for test (a second stream, advanced one layer at each layer end).
 * Score of a pair: mean over layers of sigmoid(per-layer logit); early stopping
 * per layer on the validation ROC-AUC of the stack so far. */
#include <math.h>
#include <string.h>

#include "leanprop/log.h"
#include "leanprop/metrics.h"
#include "train/fgnn_internal.h"

lp_status fgnn_pairs_make(fgnn_pairs *p, const int64_t *pos, const int64_t *neg, int64_t n)
{
    memset(p, 0, sizeof *p);
    p->P = 2 * n;
    p->pairs = lp_alloc_array(LP_MEM_DATA, 2 * (size_t)(p->P ? p->P : 1), sizeof(int64_t));
    p->y = lp_alloc_array(LP_MEM_DATA, (size_t)(p->P ? p->P : 1), 1);
    if (!p->pairs || !p->y) { fgnn_pairs_free(p); return lp_error_context(LP_ERR_NOMEM, "link pairs"); }
    memcpy(p->pairs, pos, 2 * (size_t)n * sizeof(int64_t));
    memcpy(p->pairs + 2 * n, neg, 2 * (size_t)n * sizeof(int64_t));
    for (int64_t k = 0; k < n; k++) p->y[k] = 1;
    return LP_OK;
}

void fgnn_pairs_free(fgnn_pairs *p)
{
    lp_free(p->pairs);
    lp_free(p->y);
    memset(p, 0, sizeof *p);
}

static inline double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static inline double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* Per-pair logit of a layer: FL-CE <z_u, z_v>, FL-FF sum (z_u z_v)^2 - theta. */
lp_status fgnn_link_logits(float *s, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff, float theta)
{
    if (!ff) return lp_gnn_pair_scores(s, z, p->pairs, p->P, N, D);
    for (int64_t k = 0; k < p->P; k++) {
        const float *a = z + p->pairs[2 * k] * D, *b = z + p->pairs[2 * k + 1] * D;
        double G = 0;
        for (int64_t j = 0; j < D; j++) { double e = (double)a[j] * b[j]; G += e * e; }
        s[k] = (float)(G - theta);
    }
    return LP_OK;
}

/* Loss of one layer over the pairs and dz (N, D) (OVERWRITTEN), times weight w. */
lp_status fgnn_link_loss(double *loss, float *dz, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff,
                         float theta, float w)
{
    float *s = fgnn_scratch(p->P);
    if (!s) return lp_error_context(LP_ERR_NOMEM, "link loss");
    lp_status st = fgnn_link_logits(s, z, p, N, D, ff, theta);
    memset(dz, 0, (size_t)(N * D) * sizeof(float));
    if (st == LP_OK && !ff) {
        float L;
        st = lp_bce_logits(&L, s, s, p->y, p->P, w);   /* s becomes ds */
        if (st == LP_OK) st = lp_gnn_pair_scores_backward(dz, s, z, p->pairs, p->P, N, D);
        *loss = L;
    } else if (st == LP_OK) {
        int64_t npos = 0;
        for (int64_t k = 0; k < p->P; k++) npos += p->y[k] != 0;
        int64_t nneg = p->P - npos;
        double L = 0;
        for (int64_t k = 0; k < p->P; k++) {
            int pos = p->y[k] != 0;
            double x = s[k], cnt = (double)(pos ? npos : nneg);
            L += (pos ? softplus(-x) : softplus(x)) / cnt;
            float g = (float)((pos ? -sigmoid(-x) : sigmoid(x)) / cnt * w);   /* dL/dlogit */
            int64_t u = p->pairs[2 * k], v = p->pairs[2 * k + 1];
            const float *a = z + u * D, *b = z + v * D;
            float *da = dz + u * D, *db = dz + v * D;
            for (int64_t j = 0; j < D; j++) {
                float e = a[j] * b[j], de = 2.0f * e * g;   /* d(sum e^2)/de = 2e */
                da[j] += de * b[j];
                db[j] += de * a[j];
            }
        }
        *loss = L;
    }
    lp_free(s);
    return st;
}

/* acc (P) += sigmoid(layer logit) */
lp_status fgnn_link_accumulate(float *acc, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff, float theta)
{
    float *s = fgnn_scratch(p->P);
    if (!s) return lp_error_context(LP_ERR_NOMEM, "link scores");
    lp_status st = fgnn_link_logits(s, z, p, N, D, ff, theta);
    for (int64_t k = 0; st == LP_OK && k < p->P; k++) acc[k] += (float)sigmoid(s[k]);
    lp_free(s);
    return st;
}

/* AUC of acc + this layer's scores (extra may be NULL) */
static lp_status pairs_auc(double *auc, const float *acc, const float *z, const fgnn_pairs *p, int64_t N, int64_t D, int ff,
                           float theta)
{
    float *s = fgnn_scratch(p->P);
    if (!s) return lp_error_context(LP_ERR_NOMEM, "link scores");
    if (acc) memcpy(s, acc, (size_t)p->P * sizeof(float));
    lp_status st = z ? fgnn_link_accumulate(s, z, p, N, D, ff, theta) : LP_OK;
    if (st == LP_OK) st = lp_roc_auc(s, p->y, p->P, auc);
    lp_free(s);
    return st;
}

lp_status fgnn_link_setup(fgnn_run *r, lp_graph **gtr, lp_graph **gall, fgnn_pairs *tr, fgnn_pairs *va, fgnn_pairs *te)
{
    const lp_edge_split *sp = r->a->link;
    const char *name = lp_fgnn_method_name(r->method);
    if (sp->n_train < 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: no training edges left after the edge split (%lld train, %lld val, %lld test)",
                        name, (long long)sp->n_train, (long long)sp->n_val, (long long)sp->n_test);
    if (sp->n_val < 1 || sp->n_test < 1)
        return lp_error(LP_ERR_INVALID_ARG, "%s: the edge split has no %s edges", name, sp->n_val < 1 ? "validation" : "test");
    int64_t N = r->a->data->n_nodes;
    LP_TRY(lp_edge_split_graph(gtr, sp, N, 0));
    LP_TRY(lp_edge_split_graph(gall, sp, N, 1));
    LP_TRY(fgnn_pairs_make(tr, sp->train_pos, sp->train_neg, sp->n_train));
    LP_TRY(fgnn_pairs_make(va, sp->val_pos, sp->val_neg, sp->n_val));
    return fgnn_pairs_make(te, sp->test_pos, sp->test_neg, sp->n_test);
}

typedef struct {
    fgnn_run *r;
    int ff;
    int64_t N, H;
    lp_graph *gtr, *gall;
    fgnn_pairs tr, va, te;
    fgnn_stream s, t;          /* layer input on the training graph / on train + val (test) */
    float *tracc, *vacc, *tacc;
    const lp_checkpoint *ck;                 /* resumed state: layers below ck_layer finished, */
    int ck_layer, ck_epoch;                  /* ck_layer after ck_epoch of its epochs */
    int epochs[LP_FGNN_MAX_LAYERS], best[LP_FGNN_MAX_LAYERS]; /* finished layers' epochs, best epochs */
} fl_ctx;

static lp_status fl_layer(fl_ctx *x, int l)
{
    fgnn_run *r = x->r;
    const lp_gnn_train_config *cfg = r->cfg;
    int64_t N = x->N, H = x->H;
    float theta = r->o.theta;
    LP_TRY(fgnn_run_layer(r, l, l == 0 ? r->a->data->n_features : H, H));
    lp_gnn_layer *layer = r->model->layers[l];
    int resumed = x->ck && l <= x->ck_layer, finished = x->ck && l < x->ck_layer;
    if (resumed) LP_TRY(fgnn_ckpt_load_layer(r, x->ck, l));
    fgnn_opt opt;
    LP_TRY(fgnn_opt_init(&opt, layer, cfg->lr, cfg->weight_decay));
    float *z = NULL, *dz = NULL, *y = NULL;
    lp_status st = fgnn_stream_bind(&x->s, layer, r->o.cache);
    if (st != LP_OK) goto done;
    fgnn_stream_drop_unread(&x->s);
    z = fgnn_act(N * H);
    dz = fgnn_act(N * H);
    if (!z || !dz) { st = lp_error_context(LP_ERR_NOMEM, "link layer %d buffers", l + 1); goto done; }
    float w = fgnn_run_loss_weight(r, l);
    fgnn_stopper stop;
    fgnn_stopper_init(&stop, cfg->patience);
    int epoch;
    if ((st = fgnn_ckpt_first_epoch(r, x->ck, finished, resumed, x->epochs[l], x->best[l], x->ck_epoch, &opt, &stop,
                                    &epoch)) != LP_OK)
        goto done;
    for (; epoch <= cfg->epochs && !stop.stop; epoch++) {
        double t = lp_time_now(), loss;
        lp_gnn_layer_zero_grad(layer);
        if ((st = fgnn_conv_forward(&x->s.conv, z, 0, N, 1)) != LP_OK) goto done;
        fgnn_relu(z, N * H);
        if ((st = fgnn_link_loss(&loss, dz, z, &x->tr, N, H, x->ff, theta, w)) != LP_OK) goto done;
        if (!isfinite(loss)) { st = lp_error(LP_ERR_NUMERIC, "layer %d epoch %d: loss is %g", l + 1, epoch, loss); goto done; }
        fgnn_relu_mask(dz, z, N * H);
        if ((st = fgnn_conv_backward(&x->s.conv, dz, 0, N)) != LP_OK) goto done;
        if ((st = fgnn_opt_step(&opt, 0.0f)) != LP_OK) goto done;
        r->train_s += lp_time_now() - t;
        double val = NAN;
        int improved = 0;
        if (epoch % cfg->eval_every == 0) {
            if ((st = fgnn_conv_forward(&x->s.conv, z, 0, N, 0)) != LP_OK) goto done;
            fgnn_relu(z, N * H);
            if ((st = pairs_auc(&val, x->vacc, z, &x->va, N, H, x->ff, theta)) != LP_OK) goto done;
            if ((improved = fgnn_stopper_step(&stop, epoch, val))) fgnn_opt_save(&opt);
        }
        fgnn_run_epoch(r, epoch, loss, NAN, val, improved);
        if ((st = fgnn_ckpt_save(r, l, epoch, &opt, &stop, x->epochs, x->best)) != LP_OK) goto done;
    }
    x->epochs[l] = epoch - 1;
    x->best[l] = stop.best_epoch;
    if (stop.best_epoch > 0) fgnn_opt_restore(&opt);
    lp_free(z); lp_free(dz);
    z = dz = NULL;
    fgnn_opt_free(&opt);
    /* the finished layer on both graphs */
    if ((st = fgnn_stream_output(&x->s, &y)) != LP_OK) goto done;
    if ((st = fgnn_link_accumulate(x->tracc, y, &x->tr, N, H, x->ff, theta)) != LP_OK) goto done;
    if ((st = fgnn_link_accumulate(x->vacc, y, &x->va, N, H, x->ff, theta)) != LP_OK) goto done;
    fgnn_stream_set_input(&x->s, y, H);
    y = NULL;
    if ((st = fgnn_stream_bind(&x->t, layer, 0)) != LP_OK) goto done;
    if ((st = fgnn_stream_output(&x->t, &y)) != LP_OK) goto done;
    if ((st = fgnn_link_accumulate(x->tacc, y, &x->te, N, H, x->ff, theta)) != LP_OK) goto done;
    fgnn_stream_set_input(&x->t, y, H);
    y = NULL;
    double tr, va, te;
    if ((st = pairs_auc(&tr, x->tracc, NULL, &x->tr, N, H, x->ff, theta)) != LP_OK ||
        (st = pairs_auc(&va, x->vacc, NULL, &x->va, N, H, x->ff, theta)) != LP_OK ||
        (st = pairs_auc(&te, x->tacc, NULL, &x->te, N, H, x->ff, theta)) != LP_OK)
        goto done;
    fgnn_run_record_depth(r, l, tr, va, te, epoch - 1, stop.best_epoch);
done:
    lp_free(z);
    lp_free(dz);
    lp_free(y);
    fgnn_opt_free(&opt);
    return st;
}

lp_status fgnn_train_link(fgnn_run *r)
{
    const lp_graph_dataset *ds = r->a->data;
    fl_ctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.ff = r->method == LP_FGNN_FL_FF;
    x.N = ds->n_nodes;
    x.H = r->cfg->hidden;
    lp_csr *xs = NULL;
    float *xd = NULL;
    lp_status st = fgnn_link_setup(r, &x.gtr, &x.gall, &x.tr, &x.va, &x.te);
    if (st == LP_OK) st = fgnn_features(&xs, &xd, ds, NULL, NULL, NULL, NULL);
    if (st == LP_OK) {
        x.tracc = fgnn_act(x.tr.P);
        x.vacc = fgnn_act(x.va.P);
        x.tacc = fgnn_act(x.te.P);
        if (!x.tracc || !x.vacc || !x.tacc) st = lp_error_context(LP_ERR_NOMEM, "link scores");
    }
    if (st == LP_OK) {
        fgnn_stream_init(&x.s, x.gtr);
        fgnn_stream_init(&x.t, x.gall);
        if (xs) { fgnn_stream_add_sparse(&x.s, xs, 0); fgnn_stream_add_sparse(&x.t, xs, 0); }
        else { fgnn_stream_add_dense(&x.s, xd, ds->n_features, 0); fgnn_stream_add_dense(&x.t, xd, ds->n_features, 0); }
        x.ck = fgnn_ckpt_state(r, &x.ck_layer, &x.ck_epoch, x.epochs, x.best, &st);
        for (int l = 0; l < r->cfg->n_layers && st == LP_OK; l++) {
            fgnn_run_segment_begin(r);
            st = fl_layer(&x, l);
            fgnn_run_segment_end(r, l);
            if (l == 0) { lp_csr_free(xs); lp_free(xd); xs = NULL; xd = NULL; }   /* both streams moved on */
        }
    }
    fgnn_stream_free(&x.s);
    fgnn_stream_free(&x.t);
    lp_csr_free(xs);
    lp_free(xd);
    lp_free(x.tracc); lp_free(x.vacc); lp_free(x.tacc);
    fgnn_pairs_free(&x.tr); fgnn_pairs_free(&x.va); fgnn_pairs_free(&x.te);
    lp_graph_free(x.gtr);
    lp_graph_free(x.gall);
    return st;
}
