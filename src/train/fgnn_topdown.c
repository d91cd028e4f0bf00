/* Forward learning with top-down signals (spec procedures 6 and 7's FL-CE-TopDown).
 *
 * States: s[0] = the features, s[1..L] = the layers' outputs, s[L+1] = a
 * context (node classification: one-hot true label on train nodes, uniform
 * 1/C on the other real nodes, one-hot class on each virtual node; link
 * prediction: none). Layer j's input is concat(norm(s[j]), norm(s[j+2])): the
 * layer above's output is a second, top-down input (the top layer gets the
 * context, or nothing). Every layer has its own Adam and loss (SF cross
 * entropy over virtual nodes, or BCE over link pairs) and sees constants.
 *
 * Schedule (alternating, as the reference runs it): initial states from a
 * bottom-up pass with zeros as top-down input; each step updates the even
 * layers first (reading the previous step's states), then the odd layers
 * (reading the even layers' new outputs). With this order the states can be
 * updated in place: even layers read only even-indexed states and write odd
 * ones, and the other way round. Inference: a bottom-up pass, then
 * test_time_steps steps of the same schedule; the scores of every layer at
 * steps first_scored_step.. are summed (node: softmaxes; link: sigmoids).
 * Early stopping on the whole model (all layers' best weights restored).
 *
 * Every layer's state is held (L x N x H): memory grows with depth, as the
 * method needs all states at every step. */
#include <math.h>
#include <string.h>

#include "leanprop/kernels/spmm.h"
#include "leanprop/log.h"
#include "leanprop/metrics.h"
#include "train/fgnn_internal.h"

typedef struct td td;
typedef struct {
    /* y (n, H): a layer's ReLU output, all rows. Fill dy for rows [*r0, *r1) (dy points at row *r0). */
    lp_status (*loss)(td *t, const float *y, float *dy, int64_t *r0, int64_t *r1, double *loss);
    /* inference: y (n, H) at a scored step */
    lp_status (*score)(td *t, void *ev, const float *y);
} td_hooks;

struct td {
    fgnn_run *r;
    int L;
    int64_t n, H;
    const lp_graph *g;
    fgnn_part x0, ctx;                         /* ctx.cols == 0: no context */
    float *st[LP_FGNN_MAX_LAYERS + 1];         /* st[1..L] row-normalised states (n, H) */
    fgnn_conv conv[LP_FGNN_MAX_LAYERS];
    int has_conv[LP_FGNN_MAX_LAYERS];
    fgnn_opt opt[LP_FGNN_MAX_LAYERS];
    float wd;
    const td_hooks *h;
    void *user;
};

static int td_parts(const td *t, float *const *s, int j, fgnn_part *p)
{
    int np = 0;
    fgnn_part d = {NULL, NULL, t->H, 0};
    if (j == 0) p[np++] = t->x0;
    else { d.dense = s[j]; p[np++] = d; }
    if (j + 2 <= t->L) { d.dense = s[j + 2]; p[np++] = d; }
    else if (t->ctx.cols > 0) p[np++] = t->ctx;
    return np;
}

static int64_t td_in_dim(const td *t, int j)
{
    int64_t in = j == 0 ? t->x0.cols : t->H;
    if (j + 2 <= t->L) in += t->H;
    else in += t->ctx.cols;
    return in;
}

/* y (n, H) scratch -> s = norm(y) */
static void store_state(float *s, const float *y, int64_t n, int64_t H)
{
    memcpy(s, y, (size_t)(n * H) * sizeof(float));
    lp_rownorm_forward(s, NULL, s, n, H, 1e-8f);
}

static lp_status bottom_up(td *t, fgnn_conv *conv, float **s, float *y)
{
    for (int j = 0; j < t->L; j++) {
        int top = conv[j].np > 1;
        if (top) fgnn_conv_mute(&conv[j], 1, 1);
        lp_status st = fgnn_conv_forward(&conv[j], y, 0, t->n, 0);
        if (top) fgnn_conv_mute(&conv[j], 1, 0);
        LP_TRY(st);
        fgnn_relu(y, t->n * t->H);
        store_state(s[j + 1], y, t->n, t->H);
    }
    return LP_OK;
}

static void td_free(td *t)
{
    for (int j = 0; j < t->L; j++) {
        if (t->has_conv[j]) fgnn_conv_release(&t->conv[j]);
        t->has_conv[j] = 0;
        fgnn_opt_free(&t->opt[j]);
        lp_free(t->st[j + 1]);
        t->st[j + 1] = NULL;
    }
}

static lp_status td_init(td *t)
{
    fgnn_run *r = t->r;
    float *y = fgnn_scratch(t->n * t->H);
    if (!y) return lp_error_context(LP_ERR_NOMEM, "top-down states");
    lp_status st = LP_OK;
    for (int j = 0; j < t->L && st == LP_OK; j++) {
        if (!(t->st[j + 1] = fgnn_act(t->n * t->H))) st = lp_error_context(LP_ERR_NOMEM, "top-down state %d", j + 1);
        if (st == LP_OK) st = fgnn_run_layer(r, j, td_in_dim(t, j), t->H);
        if (st == LP_OK) st = fgnn_opt_init(&t->opt[j], r->model->layers[j], r->cfg->lr, t->wd);
    }
    for (int j = 0; j < t->L && st == LP_OK; j++) {
        fgnn_part p[FGNN_MAX_PARTS];
        int np = td_parts(t, t->st, j, p);
        st = fgnn_conv_init(&t->conv[j], r->model->layers[j], t->g, p, np,
                            (r->o.cache ? FGNN_CONV_CACHE : 0) | FGNN_CONV_MUTABLE);
        t->has_conv[j] = st == LP_OK;
    }
    if (st == LP_OK) st = bottom_up(t, t->conv, t->st, y);
    lp_free(y);
    return st;
}

/* One training step of every layer; *loss = their sum. */
static lp_status td_step(td *t, double *loss)
{
    int64_t n = t->n, H = t->H;
    float *y = fgnn_act(n * H), *dy = fgnn_act(n * H);
    lp_status st = y && dy ? LP_OK : lp_error_context(LP_ERR_NOMEM, "top-down step");
    *loss = 0;
    for (int pass = 0; pass < 2 && st == LP_OK; pass++)
        for (int j = pass; j < t->L && st == LP_OK; j += 2) {
            lp_gnn_layer *layer = t->r->model->layers[j];
            int64_t r0 = 0, r1 = n;
            double l = 0;
            lp_gnn_layer_zero_grad(layer);
            if ((st = fgnn_conv_forward(&t->conv[j], y, 0, n, 1)) != LP_OK) break;
            fgnn_relu(y, n * H);
            if ((st = t->h->loss(t, y, dy, &r0, &r1, &l)) != LP_OK) break;
            float w = fgnn_run_loss_weight(t->r, j);
            if (w != 1.0f)
                for (int64_t i = 0; i < (r1 - r0) * H; i++) dy[i] *= w;
            fgnn_relu_mask(dy, y + r0 * H, (r1 - r0) * H);
            if ((st = fgnn_conv_backward(&t->conv[j], dy, r0, r1)) != LP_OK) break;
            if ((st = fgnn_opt_step(&t->opt[j], 0.0f)) != LP_OK) break;
            store_state(t->st[j + 1], y, n, H);
            *loss += l;
        }
    lp_free(y);
    lp_free(dy);
    return st;
}

/* Inference on graph g: bottom-up, then the schedule; scored steps go to the score hook. */
static lp_status td_eval(td *t, const lp_graph *g, void *ev)
{
    int L = t->L;
    int64_t n = t->n, H = t->H;
    float *e[LP_FGNN_MAX_LAYERS + 1] = {0};
    fgnn_conv conv[LP_FGNN_MAX_LAYERS];
    int nc = 0;
    float *y = fgnn_act(n * H);
    lp_status st = y ? LP_OK : lp_error_context(LP_ERR_NOMEM, "top-down inference");
    for (int j = 1; j <= L && st == LP_OK; j++)
        if (!(e[j] = fgnn_act(n * H))) st = lp_error_context(LP_ERR_NOMEM, "top-down inference states");
    for (int j = 0; j < L && st == LP_OK; j++, nc++) {
        fgnn_part p[FGNN_MAX_PARTS];
        int np = td_parts(t, e, j, p);
        st = fgnn_conv_init(&conv[j], t->r->model->layers[j], g, p, np,
                            (t->r->o.cache ? FGNN_CONV_CACHE : 0) | FGNN_CONV_MUTABLE);
        if (st != LP_OK) break;
    }
    if (st == LP_OK) st = bottom_up(t, conv, e, y);
    for (int step = 0; step < t->r->o.test_time_steps && st == LP_OK; step++)
        for (int pass = 0; pass < 2 && st == LP_OK; pass++)
            for (int j = pass; j < L && st == LP_OK; j += 2) {
                if ((st = fgnn_conv_forward(&conv[j], y, 0, n, 0)) != LP_OK) break;
                fgnn_relu(y, n * H);
                if (step >= t->r->o.first_scored_step && (st = t->h->score(t, ev, y)) != LP_OK) break;
                store_state(e[j + 1], y, n, H);
            }
    for (int j = 0; j < nc; j++) fgnn_conv_release(&conv[j]);
    for (int j = 1; j <= L; j++) lp_free(e[j]);
    lp_free(y);
    return st;
}

/* The epoch loop: validate(t, &val) every eval_every steps, whole-model early stopping. */
static lp_status td_train(td *t, lp_status (*validate)(td *, double *))
{
    fgnn_run *r = t->r;
    const lp_gnn_train_config *cfg = r->cfg;
    fgnn_stopper stop;
    fgnn_stopper_init(&stop, cfg->patience);
    int epoch;
    for (epoch = 1; epoch <= cfg->epochs && !stop.stop; epoch++) {
        double t0 = lp_time_now(), loss;
        LP_TRY(td_step(t, &loss));
        if (!isfinite(loss)) return lp_error(LP_ERR_NUMERIC, "step %d: loss is %g", epoch, loss);
        r->train_s += lp_time_now() - t0;
        double val = NAN;
        int improved = 0;
        if (epoch % cfg->eval_every == 0) {
            LP_TRY(validate(t, &val));
            if ((improved = fgnn_stopper_step(&stop, epoch, val)))
                for (int j = 0; j < t->L; j++) fgnn_opt_save(&t->opt[j]);
        }
        fgnn_run_epoch(r, epoch, loss, NAN, val, improved);
    }
    if (stop.best_epoch > 0)
        for (int j = 0; j < t->L; j++) fgnn_opt_restore(&t->opt[j]);
    r->out->best_epoch = stop.best_epoch;
    if (r->rep) {
        r->rep->n_depths = t->L;
        r->rep->epochs[t->L - 1] = epoch - 1;
        r->rep->best_epoch[t->L - 1] = stop.best_epoch;
    }
    return LP_OK;
}

static void td_report(fgnn_run *r, int L, double tr, double va, double te)
{
    r->out->train = tr;
    r->out->val = va;
    r->out->test = te;
    if (!r->rep) return;
    for (int d = 0; d < L - 1; d++) r->rep->train[d] = r->rep->val[d] = r->rep->test[d] = NAN;
    r->rep->train[L - 1] = tr;
    r->rep->val[L - 1] = va;
    r->rep->test[L - 1] = te;
}

/* ---- node classification: SF-Top-To-Input ---- */

typedef struct {
    fgnn_layout lo;
    float *acc;              /* (n, C) inference scores */
} ti_ctx;

static lp_status ti_loss(td *t, const float *y, float *dy, int64_t *r0, int64_t *r1, double *loss)
{
    ti_ctx *x = t->user;
    int64_t ntr = x->lo.n_train, C = x->lo.C, H = t->H;
    float L;
    *r0 = 0;
    *r1 = ntr + C;
    LP_TRY(lp_fgnn_sf_loss(&L, dy, dy + ntr * H, NULL, y, y + ntr * H, x->lo.label, ntr, C, H, t->r->o.tau));
    *loss = L;
    return LP_OK;
}

static lp_status ti_score(td *t, void *ev, const float *y)
{
    ti_ctx *x = ev;
    const fgnn_layout *L = &x->lo;
    int64_t C = L->C, H = t->H;
    const float *vn = y + L->off_vn * H;
    LP_TRY(lp_fgnn_sf_accumulate(x->acc, y, vn, L->n_train, C, H, t->r->o.tau));
    return lp_fgnn_sf_accumulate(x->acc + L->off_val * C, y + L->off_val * H, vn, L->n - L->off_val, C, H, t->r->o.tau);
}

static double rows_acc(const ti_ctx *x, int64_t r0, int64_t m)
{
    return (double)lp_fgnn_argmax(NULL, x->acc + r0 * x->lo.C, x->lo.label + r0, m, x->lo.C) / (double)m;
}

static lp_status ti_eval(td *t)
{
    ti_ctx *x = t->user;
    memset(x->acc, 0, (size_t)(x->lo.n * x->lo.C) * sizeof(float));
    return td_eval(t, t->g, x);
}

static lp_status ti_validate(td *t, double *val)
{
    ti_ctx *x = t->user;
    LP_TRY(ti_eval(t));
    *val = rows_acc(x, x->lo.off_val, x->lo.n_val);
    return LP_OK;
}

lp_status fgnn_train_top2input(fgnn_run *r)
{
    const lp_graph_dataset *ds = r->a->data;
    static const td_hooks hooks = {ti_loss, ti_score};
    ti_ctx x;
    td t;
    memset(&x, 0, sizeof x);
    memset(&t, 0, sizeof t);
    LP_TRY(fgnn_layout_node(&x.lo, ds, r->a->node, 1, "sf-top2input"));
    fgnn_layout *L = &x.lo;
    int64_t C = L->C, n = L->n;
    lp_graph *g = NULL;
    lp_csr *xs = NULL;
    float *xd = NULL, *vnf = NULL, *ctx = fgnn_act(n * C);
    int32_t *link = lp_alloc_array(LP_MEM_SCRATCH, (size_t)n, sizeof(int32_t));
    x.acc = fgnn_act(n * C);
    lp_status st = ctx && link && x.acc ? LP_OK : lp_error_context(LP_ERR_NOMEM, "sf-top2input");
    for (int64_t i = 0; st == LP_OK && i < n; i++) {
        link[i] = i < L->n_train ? L->label[i] : -1;
        /* context, row-normalised: one-hot rows stay, uniform rows become 1/sqrt(C) */
        int onehot = i < L->n_train || (i >= L->off_vn && i < L->off_vn + L->n_vn);
        for (int64_t c = 0; c < C; c++) ctx[i * C + c] = onehot ? (L->label[i] == c ? 1.0f : 0.0f) : 1.0f / sqrtf((float)C);
    }
    if (st == LP_OK) st = fgnn_layout_graph(&g, L, ds->graph, link);
    if (st == LP_OK && !(vnf = fgnn_vn_features(C, ds->n_features, r->cfg->seed))) st = lp_error_context(LP_ERR_NOMEM, "virtual nodes");
    if (st == LP_OK) st = fgnn_features(&xs, &xd, ds, L, vnf, NULL, NULL);
    lp_free(vnf);
    lp_free(link);
    if (st == LP_OK) {
        t.r = r;
        t.L = r->cfg->n_layers;
        t.n = n;
        t.H = r->cfg->hidden;
        t.g = g;
        fgnn_part p0 = {xd, xs, ds->n_features, 1}, pc = {ctx, NULL, C, 1};
        t.x0 = p0;
        t.ctx = pc;
        t.wd = r->cfg->weight_decay;
        t.h = &hooks;
        t.user = &x;
        fgnn_run_segment_begin(r);
        st = td_init(&t);
        if (st == LP_OK) st = td_train(&t, ti_validate);
        if (st == LP_OK) st = ti_eval(&t);
        if (st == LP_OK) fgnn_run_scores(r, L, x.acc, 0, n);
        if (st == LP_OK)
            td_report(r, t.L, rows_acc(&x, 0, L->n_train), rows_acc(&x, L->off_val, L->n_val), rows_acc(&x, L->off_test, L->n_test));
        fgnn_run_segment_end(r, t.L - 1);
    }
    td_free(&t);
    lp_csr_free(xs);
    lp_free(xd);
    lp_free(ctx);
    lp_free(x.acc);
    lp_graph_free(g);
    fgnn_layout_free(&x.lo);
    return st;
}

/* ---- link prediction: FL-CE-TopDown ---- */

typedef struct {
    lp_graph *gtr, *gall;
    fgnn_pairs tr, va, te;
    const fgnn_pairs *sets[2];
    float *acc[2];
    int nsets;
} lt_ctx;

static lp_status lt_loss(td *t, const float *y, float *dy, int64_t *r0, int64_t *r1, double *loss)
{
    lt_ctx *x = t->user;
    *r0 = 0;
    *r1 = t->n;
    return fgnn_link_loss(loss, dy, y, &x->tr, t->n, t->H, 0, 0.0f, 1.0f);
}

static lp_status lt_score(td *t, void *ev, const float *y)
{
    lt_ctx *x = ev;
    for (int k = 0; k < x->nsets; k++) LP_TRY(fgnn_link_accumulate(x->acc[k], y, x->sets[k], t->n, t->H, 0, 0.0f));
    return LP_OK;
}

/* AUCs of up to two pair sets on graph g */
static lp_status lt_eval(td *t, const lp_graph *g, const fgnn_pairs *a, const fgnn_pairs *b, double *auc_a, double *auc_b)
{
    lt_ctx *x = t->user;
    x->nsets = b ? 2 : 1;
    x->sets[0] = a;
    x->sets[1] = b;
    x->acc[0] = fgnn_act(a->P);
    x->acc[1] = b ? fgnn_act(b->P) : NULL;
    lp_status st = x->acc[0] && (!b || x->acc[1]) ? LP_OK : lp_error_context(LP_ERR_NOMEM, "link scores");
    if (st == LP_OK) st = td_eval(t, g, x);
    if (st == LP_OK) st = lp_roc_auc(x->acc[0], a->y, a->P, auc_a);
    if (st == LP_OK && b) st = lp_roc_auc(x->acc[1], b->y, b->P, auc_b);
    lp_free(x->acc[0]);
    lp_free(x->acc[1]);
    x->acc[0] = x->acc[1] = NULL;
    return st;
}

static lp_status lt_validate(td *t, double *val)
{
    lt_ctx *x = t->user;
    return lt_eval(t, x->gtr, &x->va, NULL, val, NULL);
}

lp_status fgnn_train_link_topdown(fgnn_run *r)
{
    const lp_graph_dataset *ds = r->a->data;
    static const td_hooks hooks = {lt_loss, lt_score};
    lt_ctx x;
    td t;
    memset(&x, 0, sizeof x);
    memset(&t, 0, sizeof t);
    lp_csr *xs = NULL;
    float *xd = NULL;
    lp_status st = fgnn_link_setup(r, &x.gtr, &x.gall, &x.tr, &x.va, &x.te);
    if (st == LP_OK) st = fgnn_features(&xs, &xd, ds, NULL, NULL, NULL, NULL);
    if (st == LP_OK) {
        t.r = r;
        t.L = r->cfg->n_layers;
        t.n = ds->n_nodes;
        t.H = r->cfg->hidden;
        t.g = x.gtr;
        fgnn_part p0 = {xd, xs, ds->n_features, 1};
        t.x0 = p0;
        t.wd = 0.0f;   /* the reference trains FL-CE-TopDown without weight decay */
        t.h = &hooks;
        t.user = &x;
        fgnn_run_segment_begin(r);
        st = td_init(&t);
        if (st == LP_OK) st = td_train(&t, lt_validate);
        double tr = 0, va = 0, te = 0;
        if (st == LP_OK) st = lt_eval(&t, x.gtr, &x.tr, &x.va, &tr, &va);
        if (st == LP_OK) st = lt_eval(&t, x.gall, &x.te, NULL, &te, NULL);
        if (st == LP_OK) td_report(r, t.L, tr, va, te);
        fgnn_run_segment_end(r, t.L - 1);
    }
    td_free(&t);
    lp_csr_free(xs);
    lp_free(xd);
    fgnn_pairs_free(&x.tr); fgnn_pairs_free(&x.va); fgnn_pairs_free(&x.te);
    lp_graph_free(x.gtr);
    lp_graph_free(x.gall);
    return st;
}
