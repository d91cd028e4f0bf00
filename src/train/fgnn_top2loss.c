/* SF-Top-To-Loss (spec procedure 5): all layers updated synchronously each step.
 *
 * States s[0] = norm(x), s[l+1] = norm(out_l), kept for every layer. Layer j's
 * input is s[j] (a constant); the embedding its SF loss sees is the element-wise
 * mean of its current output and the upper states s[j+2..L] from the previous
 * step (constants: the upper layers' signal reaches layer j through its loss,
 * never as a gradient). Per-layer gradient-norm clip (1.0), per-layer Adam;
 * early stopping on the whole model. Inference: one bottom-up pass, the same
 * merge, the per-layer softmaxes over the virtual nodes summed.
 *
 * All layers read the previous step's states, so layer j's new state waits in
 * a pending buffer until layer j + 1 has read the old one (one extra N x H
 * buffer instead of a second set of states).
 *
 * The spec's bottom-up pass is used (layer l + 1 reads norm(out_l)); the
 * reference's own bottom-up feeds each layer the previous layer's raw output
 * (docs/FORWARDGNN.md). */
#include <math.h>
#include <string.h>

#include "leanprop/kernels/spmm.h"
#include "leanprop/log.h"
#include "train/fgnn_internal.h"

typedef struct {
    fgnn_run *r;
    fgnn_layout lo;
    lp_graph *g;
    int L;
    int64_t n, H, C, m;            /* m = loss rows (train + VN) */
    fgnn_part x0;
    float *s[LP_FGNN_MAX_LAYERS + 1];
    fgnn_conv conv[LP_FGNN_MAX_LAYERS];
    int nconv;
    fgnn_opt opt[LP_FGNN_MAX_LAYERS];
    float *acc;                    /* (n, C) inference scores */
} t2l;

static lp_status bind_convs(t2l *t, fgnn_conv *conv, float **s, int flags)
{
    for (int j = 0; j < t->L; j++) {
        fgnn_part p = {j == 0 ? t->x0.dense : s[j], j == 0 ? t->x0.sparse : NULL, j == 0 ? t->x0.cols : t->H, j == 0};
        lp_status st = fgnn_conv_init(&conv[j], t->r->model->layers[j], t->g, &p, 1, flags);
        if (st != LP_OK) {
            for (int k = 0; k < j; k++) fgnn_conv_release(&conv[k]);
            return st;
        }
    }
    return LP_OK;
}

/* s[j+1] = norm(ReLU(conv_j(s[j]))), norms (may be NULL) the row norms before normalising. */
static lp_status bottom_up(t2l *t, fgnn_conv *conv, float **s, float **norms)
{
    for (int j = 0; j < t->L; j++) {
        LP_TRY(fgnn_conv_forward(&conv[j], s[j + 1], 0, t->n, 0));
        fgnn_relu(s[j + 1], t->n * t->H);
        LP_TRY(lp_rownorm_forward(s[j + 1], norms ? norms[j + 1] : NULL, s[j + 1], t->n, t->H, 1e-8f));
    }
    return LP_OK;
}

static lp_status t2l_step(t2l *t, double *loss)
{
    int L = t->L;
    int64_t n = t->n, H = t->H, m = t->m, ntr = t->lo.n_train, C = t->C;
    float *z = fgnn_act(n * H), *pend = fgnn_act(n * H), *emb = fgnn_act(m * H), *de = fgnn_act(m * H);
    lp_status st = z && pend && emb && de ? LP_OK : lp_error_context(LP_ERR_NOMEM, "sf-top2loss step");
    *loss = 0;
    for (int j = 0; j < L && st == LP_OK; j++) {
        lp_gnn_layer *layer = t->r->model->layers[j];
        lp_gnn_layer_zero_grad(layer);
        if ((st = fgnn_conv_forward(&t->conv[j], z, 0, n, 1)) != LP_OK) break;
        fgnn_relu(z, n * H);
        float inv = 1.0f / (float)(L - j);
        for (int64_t i = 0; i < m * H; i++) {
            float v = z[i];
            for (int k = j + 2; k <= L; k++) v += t->s[k][i];
            emb[i] = v * inv;
        }
        float l;
        if ((st = lp_fgnn_sf_loss(&l, de, de + ntr * H, NULL, emb, emb + ntr * H, t->lo.label, ntr, C, H, t->r->o.tau)) != LP_OK)
            break;
        float w = fgnn_run_loss_weight(t->r, j) * inv;
        for (int64_t i = 0; i < m * H; i++) de[i] *= w;
        fgnn_relu_mask(de, z, m * H);
        if ((st = fgnn_conv_backward(&t->conv[j], de, 0, m)) != LP_OK) break;
        if ((st = fgnn_opt_step(&t->opt[j], t->r->o.clip_norm)) != LP_OK) break;
        if (j >= 1) memcpy(t->s[j], pend, (size_t)(n * H) * sizeof(float));   /* layer j read the old s[j]: replace it */
        memcpy(pend, z, (size_t)(n * H) * sizeof(float));
        lp_rownorm_forward(pend, NULL, pend, n, H, 1e-8f);
        *loss += l;
    }
    if (st == LP_OK) memcpy(t->s[L], pend, (size_t)(n * H) * sizeof(float));
    lp_free(z); lp_free(pend); lp_free(emb); lp_free(de);
    return st;
}

/* Inference with the current weights into t->acc. */
static lp_status t2l_eval(t2l *t)
{
    int L = t->L;
    const fgnn_layout *lo = &t->lo;
    int64_t n = t->n, H = t->H, C = t->C;
    float *e[LP_FGNN_MAX_LAYERS + 1] = {0}, *nrm[LP_FGNN_MAX_LAYERS + 1] = {0};
    fgnn_conv conv[LP_FGNN_MAX_LAYERS];
    int bound = 0;
    float *emb = fgnn_act(n * H);
    lp_status st = emb ? LP_OK : lp_error_context(LP_ERR_NOMEM, "sf-top2loss inference");
    for (int j = 1; j <= L && st == LP_OK; j++)
        if (!(e[j] = fgnn_act(n * H)) || !(nrm[j] = fgnn_act(n))) st = lp_error_context(LP_ERR_NOMEM, "sf-top2loss inference");
    if (st == LP_OK && (st = bind_convs(t, conv, e, t->r->o.cache ? FGNN_CONV_CACHE : 0)) == LP_OK) bound = 1;
    if (st == LP_OK) st = bottom_up(t, conv, e, nrm);
    memset(t->acc, 0, (size_t)(n * C) * sizeof(float));
    for (int j = 0; j < L && st == LP_OK; j++) {
        float inv = 1.0f / (float)(L - j);
        for (int64_t i = 0; i < n; i++) {
            float sc = nrm[j + 1][i] + 1e-8f;   /* out_j = norm(out_j) * (|out_j| + eps) */
            for (int64_t d = 0; d < H; d++) {
                float v = e[j + 1][i * H + d] * sc;
                for (int k = j + 2; k <= L; k++) v += e[k][i * H + d];
                emb[i * H + d] = v * inv;
            }
        }
        const float *vn = emb + lo->off_vn * H;
        if ((st = lp_fgnn_sf_accumulate(t->acc, emb, vn, lo->n_train, C, H, t->r->o.tau)) != LP_OK) break;
        st = lp_fgnn_sf_accumulate(t->acc + lo->off_val * C, emb + lo->off_val * H, vn, n - lo->off_val, C, H, t->r->o.tau);
    }
    if (bound)
        for (int j = 0; j < L; j++) fgnn_conv_release(&conv[j]);
    for (int j = 1; j <= L; j++) { lp_free(e[j]); lp_free(nrm[j]); }
    lp_free(emb);
    return st;
}

static double rows_acc(const t2l *t, int64_t r0, int64_t m)
{
    return (double)lp_fgnn_argmax(NULL, t->acc + r0 * t->C, t->lo.label + r0, m, t->C) / (double)m;
}

static lp_status t2l_run(t2l *t)
{
    fgnn_run *r = t->r;
    const lp_gnn_train_config *cfg = r->cfg;
    for (int j = 0; j < t->L; j++) {
        LP_TRY(fgnn_run_layer(r, j, j == 0 ? t->x0.cols : t->H, t->H));
        LP_TRY(fgnn_opt_init(&t->opt[j], r->model->layers[j], cfg->lr, cfg->weight_decay));
        if (!(t->s[j + 1] = fgnn_act(t->n * t->H))) return lp_error_context(LP_ERR_NOMEM, "sf-top2loss states");
    }
    LP_TRY(bind_convs(t, t->conv, t->s, r->o.cache ? FGNN_CONV_CACHE : 0));
    t->nconv = t->L;
    LP_TRY(bottom_up(t, t->conv, t->s, NULL));
    fgnn_stopper stop;
    fgnn_stopper_init(&stop, cfg->patience);
    int epoch;
    for (epoch = 1; epoch <= cfg->epochs && !stop.stop; epoch++) {
        double t0 = lp_time_now(), loss;
        LP_TRY(t2l_step(t, &loss));
        if (!isfinite(loss)) return lp_error(LP_ERR_NUMERIC, "step %d: loss is %g", epoch, loss);
        r->train_s += lp_time_now() - t0;
        double val = NAN;
        int improved = 0;
        if (epoch % cfg->eval_every == 0) {
            LP_TRY(t2l_eval(t));
            val = rows_acc(t, t->lo.off_val, t->lo.n_val);
            if ((improved = fgnn_stopper_step(&stop, epoch, val)))
                for (int j = 0; j < t->L; j++) fgnn_opt_save(&t->opt[j]);
        }
        fgnn_run_epoch(r, epoch, loss, NAN, val, improved);
    }
    if (stop.best_epoch > 0)
        for (int j = 0; j < t->L; j++) fgnn_opt_restore(&t->opt[j]);
    LP_TRY(t2l_eval(t));
    fgnn_run_scores(r, &t->lo, t->acc, 0, t->n);
    double tr = rows_acc(t, 0, t->lo.n_train), va = rows_acc(t, t->lo.off_val, t->lo.n_val);
    double te = rows_acc(t, t->lo.off_test, t->lo.n_test);
    r->out->train = tr;
    r->out->val = va;
    r->out->test = te;
    r->out->best_epoch = stop.best_epoch;
    if (r->rep) {
        int L = t->L;
        r->rep->n_depths = L;
        for (int d = 0; d < L - 1; d++) r->rep->train[d] = r->rep->val[d] = r->rep->test[d] = NAN;
        r->rep->train[L - 1] = tr;
        r->rep->val[L - 1] = va;
        r->rep->test[L - 1] = te;
        r->rep->epochs[L - 1] = epoch - 1;
        r->rep->best_epoch[L - 1] = stop.best_epoch;
    }
    return LP_OK;
}

lp_status fgnn_train_top2loss(fgnn_run *r)
{
    const lp_graph_dataset *ds = r->a->data;
    t2l t;
    memset(&t, 0, sizeof t);
    t.r = r;
    t.L = r->cfg->n_layers;
    t.H = r->cfg->hidden;
    LP_TRY(fgnn_layout_node(&t.lo, ds, r->a->node, 1, "sf-top2loss"));
    fgnn_layout *L = &t.lo;
    t.n = L->n;
    t.C = L->C;
    t.m = L->n_train + L->C;
    lp_csr *xs = NULL;
    float *xd = NULL, *vnf = NULL;
    int32_t *link = lp_alloc_array(LP_MEM_SCRATCH, (size_t)L->n, sizeof(int32_t));
    t.acc = fgnn_act(L->n * L->C);
    lp_status st = link && t.acc ? LP_OK : lp_error_context(LP_ERR_NOMEM, "sf-top2loss");
    for (int64_t i = 0; st == LP_OK && i < L->n; i++) link[i] = i < L->n_train ? L->label[i] : -1;
    if (st == LP_OK) st = fgnn_layout_graph(&t.g, L, ds->graph, link);
    lp_free(link);
    if (st == LP_OK && !(vnf = fgnn_vn_features(L->C, ds->n_features, r->cfg->seed))) st = lp_error_context(LP_ERR_NOMEM, "virtual nodes");
    if (st == LP_OK) st = fgnn_features(&xs, &xd, ds, L, vnf, NULL, NULL);
    lp_free(vnf);
    if (st == LP_OK) {
        fgnn_part p0 = {xd, xs, ds->n_features, 1};
        t.x0 = p0;
        fgnn_run_segment_begin(r);
        st = t2l_run(&t);
        fgnn_run_segment_end(r, t.L - 1);
    }
    for (int j = 0; j < t.nconv; j++) fgnn_conv_release(&t.conv[j]);
    for (int j = 0; j < t.L; j++) { fgnn_opt_free(&t.opt[j]); lp_free(t.s[j + 1]); }
    lp_csr_free(xs);
    lp_free(xd);
    lp_free(t.acc);
    lp_graph_free(t.g);
    fgnn_layout_free(&t.lo);
    return st;
}
