/* Forward-forward node classification (spec procedures 2 and 3), layer by layer.
 *
 * FF-LA (label appending): stack [L2norm, GNN]; layer 1 sees x || label, where
 * train nodes carry a one-hot label and the others the uniform 1/C. The
 * positive copy appends the true class; negative copy k the k-th of the node's
 * C-1 wrong classes (a random order fixed once per run).
 * FF-VN (virtual nodes): the graph gains C virtual nodes with fixed N(0,1)
 * features; the positive graph links each train node to its class's virtual
 * node, negative graph k to its k-th wrong class's. Reference quirk (default,
 * opts.ff_vn_shared_features): after layer 1 every negative graph reuses the
 * positive graph's features, only the virtual-node edges differ.
 *
 * Loss per layer: softplus(theta - G_pos) + mean_k softplus(G_neg_k - theta),
 * G = sum_j y_j^2, averaged over train nodes; one copy at a time (the loss is a
 * sum of per-copy terms, so each copy's forward and backward run back to back).
 * Inference: for each candidate class c the eval nodes get label c (LA) or an
 * edge to virtual node c (VN), the known nodes their true label, the rest the
 * uniform label (LA) or no edge (VN); score_c = sum over layers of
 * mean_j y_j^2 - theta; the argmax wins. Validation keeps the C candidate
 * streams of the validation set alive (their summed scores per layer too);
 * test and train metrics rerun the finished stack one candidate at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/log.h"
#include "leanprop/rng.h"
#include "train/fgnn_internal.h"

enum { CFG_TRAIN_COPY, CFG_VAL, CFG_TEST, CFG_TRAIN_EVAL };

typedef struct {
    fgnn_run *r;
    int vn;
    fgnn_layout lo;
    int64_t C, H, F, K;
    lp_graph *g;               /* FF-LA: the renumbered graph */
    lp_graph **tg, **vg;       /* FF-VN: training graphs (C), validation graphs (C) */
    int32_t *neg;              /* (n_train, K) */
    lp_csr *x0s;               /* FF-VN: normalised features with virtual-node rows (shared) */
    float *x0d;
    lp_csr *xs_tr, *xs_val;    /* FF-LA: x normalised for the training / validation configurations */
    float *xd_tr, *xd_val, *inv_tr, *inv_val;
    fgnn_stream *ts, *vs;      /* training copies (C), validation candidates (C) */
    float *vacc;               /* (C, n_val) summed goodness of finished layers */
    const lp_checkpoint *ck;                 /* resumed state: layers below ck_layer finished, */
    int ck_layer, ck_epoch;                  /* ck_layer after ck_epoch of its epochs */
    int epochs[LP_FGNN_MAX_LAYERS], best[LP_FGNN_MAX_LAYERS]; /* finished layers' epochs, best epochs */
} ff_ctx;

/* Class per layout row for a configuration (-1: uniform label / no virtual-node edge). */
static void assign(const ff_ctx *x, int32_t *cls, int cfg, int c)
{
    const fgnn_layout *L = &x->lo;
    for (int64_t i = 0; i < L->n; i++) {
        int32_t v = -1;
        int in_train = i < L->n_train, in_val = i >= L->off_val && i < L->off_val + L->n_val;
        int in_test = i >= L->off_test && i < L->off_test + L->n_test;
        switch (cfg) {
        case CFG_TRAIN_COPY: if (in_train) v = c == 0 ? L->label[i] : x->neg[i * x->K + c - 1]; break;
        case CFG_VAL: if (in_train) v = L->label[i]; else if (in_val) v = c; break;
        case CFG_TEST: if (in_train || in_val) v = L->label[i]; else if (in_test) v = c; break;
        default: if (in_train) v = c; break;
        }
        cls[i] = v;
    }
}

/* FF-LA: x normalised for a configuration whose one-hot rows are `cls >= 0`. */
static lp_status la_x(const ff_ctx *x, const int32_t *cls, lp_csr **xs, float **xd, float **inv)
{
    const fgnn_layout *L = &x->lo;
    float *extra = fgnn_scratch(L->n);
    *inv = fgnn_act(L->n);
    if (!extra || !*inv) { lp_free(extra); return lp_error_context(LP_ERR_NOMEM, "FF-LA input"); }
    for (int64_t i = 0; i < L->n; i++) extra[i] = cls[i] >= 0 ? 1.0f : 1.0f / (float)x->C;
    lp_status st = fgnn_features(xs, xd, x->r->a->data, L, NULL, extra, *inv);
    lp_free(extra);
    return st;
}

/* FF-LA: the label block (n, C) of a configuration, scaled by the rows' norms. */
static float *la_labels(const ff_ctx *x, const int32_t *cls, const float *inv)
{
    int64_t n = x->lo.n, C = x->C;
    float *lab = fgnn_act(n * C);
    if (!lab) return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++) lab[i * C + c] = (cls[i] >= 0 ? (cls[i] == c ? 1.0f : 0.0f) : 1.0f / (float)C) * inv[i];
    return lab;
}

/* A stream's layer-1 input for one configuration (graph: FF-LA the shared one, FF-VN *gout, built here). */
static lp_status make_stream(ff_ctx *x, fgnn_stream *s, const int32_t *cls, lp_graph **gout, const lp_csr *xs,
                             const float *xd, const float *inv)
{
    if (x->vn) {
        LP_TRY(fgnn_layout_graph(gout, &x->lo, x->r->a->data->graph, cls));
        fgnn_stream_init(s, *gout);
        if (x->x0s) fgnn_stream_add_sparse(s, x->x0s, 0);
        else fgnn_stream_add_dense(s, x->x0d, x->F, 0);
        return LP_OK;
    }
    fgnn_stream_init(s, x->g);
    float *lab = la_labels(x, cls, inv);
    if (!lab) return lp_error_context(LP_ERR_NOMEM, "FF-LA labels");
    if (xs) fgnn_stream_add_sparse(s, (lp_csr *)xs, 0);
    else fgnn_stream_add_dense(s, (float *)xd, x->F, 0);
    fgnn_stream_add_dense(s, lab, x->C, 1);
    return LP_OK;
}

/* Rerun layers 0..depth for every candidate of a configuration; accuracy on rows [r0, r0 + m). */
static lp_status ff_eval(ff_ctx *x, int cfg, int depth, int64_t r0, int64_t m, double *acc)
{
    const fgnn_layout *L = &x->lo;
    int64_t C = x->C, H = x->H;
    int32_t *cls = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->n, sizeof(int32_t));
    float *score = fgnn_act(m * C), *col = fgnn_act(m), *inv = NULL, *xd = NULL;
    lp_csr *xs = NULL;
    lp_status st = cls && score && col ? LP_OK : lp_error_context(LP_ERR_NOMEM, "FF evaluation");
    if (st == LP_OK && !x->vn) {
        assign(x, cls, cfg, 0);
        st = la_x(x, cls, &xs, &xd, &inv);
    }
    for (int c = 0; c < C && st == LP_OK; c++) {
        fgnn_stream s;
        lp_graph *g = NULL;
        memset(&s, 0, sizeof s);
        assign(x, cls, cfg, c);
        memset(col, 0, (size_t)m * sizeof(float));
        st = make_stream(x, &s, cls, &g, xs, xd, inv);
        for (int l = 0; l <= depth && st == LP_OK; l++) {
            float *y = NULL;
            if ((st = fgnn_stream_bind(&s, x->r->model->layers[l], 0)) != LP_OK) break;
            if ((st = fgnn_stream_output(&s, &y)) != LP_OK) break;
            st = lp_fgnn_ff_accumulate(col, y + r0 * H, m, H, x->r->o.theta);
            fgnn_stream_set_input(&s, y, H);
        }
        for (int64_t i = 0; i < m; i++) score[i * C + c] = col[i];
        fgnn_stream_free(&s);
        lp_graph_free(g);
    }
    if (st == LP_OK) *acc = (double)lp_fgnn_argmax(NULL, score, L->label + r0, m, C) / (double)m;
    if (st == LP_OK) fgnn_run_scores(x->r, L, score, r0, m);
    lp_free(cls); lp_free(score); lp_free(col); lp_free(inv); lp_free(xd);
    lp_csr_free(xs);
    return st;
}

static lp_status ff_validate(ff_ctx *x, double *val)
{
    const fgnn_layout *L = &x->lo;
    int64_t C = x->C, H = x->H, nv = L->n_val;
    float *z = fgnn_act(nv * H), *score = fgnn_scratch(nv * C);
    lp_status st = z && score ? LP_OK : lp_error_context(LP_ERR_NOMEM, "FF validation");
    for (int c = 0; c < C && st == LP_OK; c++) {
        if ((st = fgnn_conv_forward(&x->vs[c].conv, z, L->off_val, L->off_val + nv, 0)) != LP_OK) break;
        fgnn_relu(z, nv * H);
        float *g = x->vacc + c * nv;
        for (int64_t i = 0; i < nv; i++) {
            double s = 0;
            for (int64_t j = 0; j < H; j++) s += (double)z[i * H + j] * z[i * H + j];
            score[i * C + c] = g[i] + (float)(s / (double)H - x->r->o.theta);
        }
    }
    if (st == LP_OK) *val = (double)lp_fgnn_argmax(NULL, score, L->label + L->off_val, nv, C) / (double)nv;
    lp_free(z);
    lp_free(score);
    return st;
}

/* FF-VN with shared features: do negatives borrow the positive stream's input at layer l? */
static int borrows(const ff_ctx *x, int l) { return x->vn && x->r->o.ff_vn_shared_features && l > 0; }

static lp_status bind_streams(ff_ctx *x, int l, lp_gnn_layer *layer)
{
    int cache = x->r->o.cache;
    for (int k = 0; k <= x->K; k++) {
        fgnn_stream *s = &x->ts[k];
        if (k > 0 && borrows(x, l)) {
            fgnn_stream_free(s);
            fgnn_stream_init(s, x->tg[k]);
            fgnn_stream_add_dense(s, (float *)x->ts[0].p[0].dense, x->H, 0);
        }
        LP_TRY(fgnn_stream_bind(s, layer, cache));
    }
    for (int c = 0; c < x->C; c++) {
        LP_TRY(fgnn_stream_bind(&x->vs[c], layer, cache));
        fgnn_stream_drop_unread(&x->vs[c]);
    }
    int keep0 = 0;
    for (int k = 1; k <= x->K; k++) {
        if (borrows(x, l)) keep0 |= fgnn_conv_reads_part(&x->ts[k].conv, 0);
        else fgnn_stream_drop_unread(&x->ts[k]);
    }
    if (!keep0) fgnn_stream_drop_unread(&x->ts[0]);
    return LP_OK;
}

/* After layer l: every stream's output becomes its next input; validation scores += goodness. */
static lp_status advance_streams(ff_ctx *x, int l)
{
    const fgnn_layout *L = &x->lo;
    int64_t H = x->H;
    for (int c = 0; c < x->C; c++) {
        float *y;
        LP_TRY(fgnn_stream_output(&x->vs[c], &y));
        lp_status st = lp_fgnn_ff_accumulate(x->vacc + c * L->n_val, y + L->off_val * H, L->n_val, H, x->r->o.theta);
        fgnn_stream_set_input(&x->vs[c], y, H);
        LP_TRY(st);
    }
    for (int k = x->K; k >= 0; k--) {    /* negatives first: they may read the positive's input */
        if (k > 0 && x->vn && x->r->o.ff_vn_shared_features) {
            fgnn_stream_free(&x->ts[k]);
            fgnn_stream_init(&x->ts[k], x->tg[k]);
            continue;
        }
        float *y;
        LP_TRY(fgnn_stream_output(&x->ts[k], &y));
        fgnn_stream_set_input(&x->ts[k], y, H);
    }
    (void)l;
    return LP_OK;
}

static lp_status ff_layer(ff_ctx *x, int l)
{
    fgnn_run *r = x->r;
    const lp_gnn_train_config *cfg = r->cfg;
    const fgnn_layout *L = &x->lo;
    int64_t H = x->H, ntr = L->n_train;
    int64_t in = l > 0 ? H : x->vn ? x->F : x->F + x->C;
    LP_TRY(fgnn_run_layer(r, l, in, H));
    lp_gnn_layer *layer = r->model->layers[l];
    int resumed = x->ck && l <= x->ck_layer, finished = x->ck && l < x->ck_layer;
    if (resumed) LP_TRY(fgnn_ckpt_load_layer(r, x->ck, l));
    fgnn_opt opt;
    LP_TRY(fgnn_opt_init(&opt, layer, cfg->lr, cfg->weight_decay));
    float *z = NULL, *dz = NULL;
    lp_status st = bind_streams(x, l, layer);
    if (st != LP_OK) goto done;
    z = fgnn_act(ntr * H);
    dz = fgnn_act(ntr * H);
    if (!z || !dz) { st = lp_error_context(LP_ERR_NOMEM, "FF layer %d buffers", l + 1); goto done; }
    float w = fgnn_run_loss_weight(r, l);
    fgnn_stopper stop;
    fgnn_stopper_init(&stop, cfg->patience);
    int epoch;
    if ((st = fgnn_ckpt_first_epoch(r, x->ck, finished, resumed, x->epochs[l], x->best[l], x->ck_epoch, &opt, &stop,
                                    &epoch)) != LP_OK)
        goto done;
    for (; epoch <= cfg->epochs && !stop.stop; epoch++) {
        double t = lp_time_now(), loss = 0;
        lp_gnn_layer_zero_grad(layer);
        for (int k = 0; k <= x->K; k++) {
            if ((st = fgnn_conv_forward(&x->ts[k].conv, z, 0, ntr, 1)) != LP_OK) goto done;
            fgnn_relu(z, ntr * H);
            loss += fgnn_ff_term(dz, z, ntr, H, r->o.theta, k == 0 ? 1 : -1, (k == 0 ? 1.0 : 1.0 / (double)x->K) * w);
            fgnn_relu_mask(dz, z, ntr * H);
            if ((st = fgnn_conv_backward(&x->ts[k].conv, dz, 0, ntr)) != LP_OK) goto done;
        }
        if (!isfinite(loss)) { st = lp_error(LP_ERR_NUMERIC, "layer %d epoch %d: loss is %g", l + 1, epoch, loss); goto done; }
        if ((st = fgnn_opt_step(&opt, 0.0f)) != LP_OK) goto done;
        r->train_s += lp_time_now() - t;
        double val = NAN;
        int improved = 0;
        if (epoch % cfg->eval_every == 0) {
            if ((st = ff_validate(x, &val)) != LP_OK) goto done;
            if ((improved = fgnn_stopper_step(&stop, epoch, val))) fgnn_opt_save(&opt);
        }
        fgnn_run_epoch(r, epoch, w != 0 ? loss / w : loss, NAN, val, improved);
        if ((st = fgnn_ckpt_save(r, l, epoch, &opt, &stop, x->epochs, x->best)) != LP_OK) goto done;
    }
    x->epochs[l] = epoch - 1;
    x->best[l] = stop.best_epoch;
    if (stop.best_epoch > 0) fgnn_opt_restore(&opt);
    lp_free(z); lp_free(dz);
    z = dz = NULL;
    fgnn_opt_free(&opt);
    double tr = 0, va = 0, te = 0;
    if ((st = advance_streams(x, l)) != LP_OK) goto done;
    /* validation candidates now hold the scores of layers 0..l */
    {
        float *score = fgnn_scratch(L->n_val * x->C);
        if (!score) { st = lp_error_context(LP_ERR_NOMEM, "FF scores"); goto done; }
        for (int64_t i = 0; i < L->n_val; i++)
            for (int64_t c = 0; c < x->C; c++) score[i * x->C + c] = x->vacc[c * L->n_val + i];
        va = (double)lp_fgnn_argmax(NULL, score, L->label + L->off_val, L->n_val, x->C) / (double)L->n_val;
        fgnn_run_scores(r, L, score, L->off_val, L->n_val);
        lp_free(score);
    }
    if ((st = ff_eval(x, CFG_TEST, l, L->off_test, L->n_test, &te)) != LP_OK) goto done;
    if ((st = ff_eval(x, CFG_TRAIN_EVAL, l, 0, ntr, &tr)) != LP_OK) goto done;
    fgnn_run_record_depth(r, l, tr, va, te, epoch - 1, stop.best_epoch);
done:
    lp_free(z);
    lp_free(dz);
    fgnn_opt_free(&opt);
    return st;
}

/* Negative classes: for each train row, its C-1 wrong classes in a random order. */
static lp_status make_negatives(ff_ctx *x)
{
    const fgnn_layout *L = &x->lo;
    x->neg = lp_alloc_array(LP_MEM_DATA, (size_t)(L->n_train * x->K), sizeof(int32_t));
    if (!x->neg) return lp_error_context(LP_ERR_NOMEM, "negative classes");
    lp_rng rng;
    lp_rng_seed(&rng, fgnn_seed(x->r->cfg->seed, 0x4e45ULL, 0));
    for (int64_t i = 0; i < L->n_train; i++) {
        int32_t *p = x->neg + i * x->K;
        int64_t w = 0;
        for (int32_t c = 0; c < x->C; c++)
            if (c != L->label[i]) p[w++] = c;
        for (int64_t k = x->K - 1; k > 0; k--) {
            int64_t j = (int64_t)lp_rng_below(&rng, (uint64_t)(k + 1));
            int32_t t = p[k]; p[k] = p[j]; p[j] = t;
        }
    }
    return LP_OK;
}

static lp_status ff_setup(ff_ctx *x)
{
    fgnn_run *r = x->r;
    const lp_graph_dataset *ds = r->a->data;
    const fgnn_layout *L = &x->lo;
    int64_t C = x->C;
    LP_TRY(make_negatives(x));
    x->ts = calloc((size_t)C, sizeof *x->ts);
    x->vs = calloc((size_t)C, sizeof *x->vs);
    x->vacc = fgnn_act(C * L->n_val);
    int32_t *cls = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->n, sizeof(int32_t));
    lp_status st = x->ts && x->vs && x->vacc && cls ? LP_OK : lp_error_context(LP_ERR_NOMEM, "FF streams");
    if (st == LP_OK && x->vn) {
        x->tg = calloc((size_t)C, sizeof *x->tg);
        x->vg = calloc((size_t)C, sizeof *x->vg);
        float *vnf = fgnn_vn_features(C, x->F, r->cfg->seed);
        if (!x->tg || !x->vg || !vnf) st = lp_error_context(LP_ERR_NOMEM, "FF-VN graphs");
        if (st == LP_OK) st = fgnn_features(&x->x0s, &x->x0d, ds, L, vnf, NULL, NULL);
        lp_free(vnf);
    } else if (st == LP_OK) {
        st = fgnn_layout_graph(&x->g, L, ds->graph, NULL);
        if (st == LP_OK) { assign(x, cls, CFG_TRAIN_COPY, 0); st = la_x(x, cls, &x->xs_tr, &x->xd_tr, &x->inv_tr); }
        if (st == LP_OK) { assign(x, cls, CFG_VAL, 0); st = la_x(x, cls, &x->xs_val, &x->xd_val, &x->inv_val); }
    }
    for (int k = 0; k < C && st == LP_OK; k++) {
        assign(x, cls, CFG_TRAIN_COPY, k);
        st = make_stream(x, &x->ts[k], cls, x->vn ? &x->tg[k] : NULL, x->xs_tr, x->xd_tr, x->inv_tr);
    }
    for (int c = 0; c < C && st == LP_OK; c++) {
        assign(x, cls, CFG_VAL, c);
        st = make_stream(x, &x->vs[c], cls, x->vn ? &x->vg[c] : NULL, x->xs_val, x->xd_val, x->inv_val);
    }
    lp_free(cls);
    return st;
}

lp_status fgnn_train_ff(fgnn_run *r)
{
    ff_ctx x;
    memset(&x, 0, sizeof x);
    x.r = r;
    x.vn = r->method == LP_FGNN_FF_VN;
    x.H = r->cfg->hidden;
    x.F = r->a->data->n_features;
    LP_TRY(fgnn_layout_node(&x.lo, r->a->data, r->a->node, x.vn, lp_fgnn_method_name(r->method)));
    x.C = x.lo.C;
    x.K = x.C - 1;
    lp_status st = ff_setup(&x);
    if (st == LP_OK) x.ck = fgnn_ckpt_state(r, &x.ck_layer, &x.ck_epoch, x.epochs, x.best, &st);
    for (int l = 0; l < r->cfg->n_layers && st == LP_OK; l++) {
        fgnn_run_segment_begin(r);
        st = ff_layer(&x, l);
        fgnn_run_segment_end(r, l);
    }
    for (int k = 0; x.ts && k < x.C; k++) fgnn_stream_free(&x.ts[k]);
    for (int c = 0; x.vs && c < x.C; c++) fgnn_stream_free(&x.vs[c]);
    for (int k = 0; x.tg && k < x.C; k++) lp_graph_free(x.tg[k]);
    for (int c = 0; x.vg && c < x.C; c++) lp_graph_free(x.vg[c]);
    free(x.ts); free(x.vs); free(x.tg); free(x.vg);
    lp_free(x.vacc); lp_free(x.neg);
    lp_csr_free(x.x0s); lp_free(x.x0d);
    lp_csr_free(x.xs_tr); lp_csr_free(x.xs_val);
    lp_free(x.xd_tr); lp_free(x.xd_val); lp_free(x.inv_tr); lp_free(x.inv_val);
    lp_graph_free(x.g);
    fgnn_layout_free(&x.lo);
    return st;
}
