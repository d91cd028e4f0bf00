/* The backprop GNN stack: conv -> ReLU -> ... -> conv, full graph.
 * Saved for backward: every layer's output (N x width, LP_MEM_ACTIVATIONS;
 * hidden outputs are ReLU'd in place and double as the ReLU mask) plus what
 * each layer keeps itself (GAT). Backward uses two scratch gradient buffers. */
#include <stdlib.h>
#include <string.h>

#include "nn/gnn_internal.h"

struct lp_gnn_model {
    lp_gnn_model_config cfg;
    int L;
    lp_gnn_layer **layers;
    float **act;            /* act[l]: output of layer l, (N, out_l) */
    int64_t N;
    int saved;
};

void lp_gnn_model_release(lp_gnn_model *m)
{
    if (!m) return;
    for (int l = 0; l < m->L; l++) {
        if (m->act) { lp_free(m->act[l]); m->act[l] = NULL; }
        if (m->layers) lp_gnn_layer_release(m->layers[l]);
    }
    m->N = 0;
    m->saved = 0;
}

void lp_gnn_model_free(lp_gnn_model *m)
{
    if (!m) return;
    lp_gnn_model_release(m);
    for (int l = 0; m->layers && l < m->L; l++) lp_gnn_layer_free(m->layers[l]);
    lp_gnn_workspace_release();
    free(m->layers);
    free(m->act);
    free(m);
}

lp_status lp_gnn_model_new(lp_gnn_model **out, const lp_gnn_model_config *cfg, lp_rng *rng)
{
    if (!out || !cfg || !rng || cfg->n_layers < 1 || cfg->n_layers > 64 || cfg->in_dim < 1 || cfg->out_dim < 1 ||
        (cfg->n_layers > 1 && cfg->hidden < 1))
        return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_model_new: bad configuration (layers %d, in %lld, hidden %lld, out %lld)",
                        cfg ? cfg->n_layers : 0, cfg ? (long long)cfg->in_dim : 0, cfg ? (long long)cfg->hidden : 0,
                        cfg ? (long long)cfg->out_dim : 0);
    *out = NULL;
    lp_gnn_model *m = calloc(1, sizeof *m);
    if (!m) return lp_error(LP_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->L = cfg->n_layers;
    m->layers = calloc((size_t)m->L, sizeof *m->layers);
    m->act = calloc((size_t)m->L, sizeof *m->act);
    if (!m->layers || !m->act) { lp_gnn_model_free(m); return lp_error(LP_ERR_NOMEM, "out of memory"); }
    for (int l = 0; l < m->L; l++) {
        int last = l == m->L - 1;
        int64_t in = l == 0 ? cfg->in_dim : cfg->hidden, o = last ? cfg->out_dim : cfg->hidden;
        lp_gnn_layer_opts opts = lp_gnn_layer_defaults();
        if (cfg->heads > 0) opts.heads = cfg->heads;
        opts.concat = !last; /* GAT: hidden layers concatenate heads, the output layer averages */
        lp_status st = lp_gnn_layer_new(&m->layers[l], cfg->kind, in, o, &opts, rng);
        if (st != LP_OK) {
            lp_gnn_model_free(m);
            return lp_error_context(st, "layer %d", l + 1);
        }
    }
    *out = m;
    return LP_OK;
}

int lp_gnn_model_n_layers(const lp_gnn_model *m) { return m ? m->L : 0; }
lp_gnn_layer *lp_gnn_model_layer(lp_gnn_model *m, int i) { return m && i >= 0 && i < m->L ? m->layers[i] : NULL; }

int64_t lp_gnn_model_numel(const lp_gnn_model *m)
{
    int64_t n = 0;
    for (int l = 0; m && l < m->L; l++) n += lp_gnn_layer_numel(m->layers[l]);
    return n;
}

void lp_gnn_model_zero_grad(lp_gnn_model *m)
{
    for (int l = 0; m && l < m->L; l++) lp_gnn_layer_zero_grad(m->layers[l]);
}

lp_status lp_gnn_model_forward(lp_gnn_model *m, const lp_gnn_input *x, const lp_graph *g, int save, float **out)
{
    if (!m || !x || !g || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_model_forward: NULL argument");
    int64_t N = g->n_nodes;
    if (m->N != N) {
        lp_gnn_model_release(m);
        for (int l = 0; l < m->L; l++) {
            m->act[l] = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(N * lp_gnn_layer_out_dim(m->layers[l])), sizeof(float));
            if (!m->act[l]) { lp_gnn_model_release(m); return lp_error_context(LP_ERR_NOMEM, "GNN activations"); }
        }
        m->N = N;
    }
    m->saved = 0;
    for (int l = 0; l < m->L; l++) {
        lp_gnn_input in = l == 0 ? *x : lp_gnn_input_dense(m->act[l - 1], N, lp_gnn_layer_out_dim(m->layers[l - 1]));
        lp_status st = lp_gnn_layer_forward(m->layers[l], m->act[l], &in, g, save);
        if (st != LP_OK) return lp_error_context(st, "layer %d", l + 1);
        if (l < m->L - 1) {
            float *a = m->act[l];
            int64_t n = N * lp_gnn_layer_out_dim(m->layers[l]);
            for (int64_t i = 0; i < n; i++) a[i] = a[i] > 0 ? a[i] : 0;
        }
    }
    m->saved = save;
    *out = m->act[m->L - 1];
    return LP_OK;
}

lp_status lp_gnn_model_backward(lp_gnn_model *m, const float *dout)
{
    if (!m || !dout) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_model_backward: NULL argument");
    if (!m->saved) return lp_error(LP_ERR_INVALID_ARG, "GNN backward without a forward(save = 1)");
    int64_t N = m->N;
    const float *g = dout;
    float *owned = NULL;
    lp_status st = LP_OK;
    for (int l = m->L - 1; l >= 0 && st == LP_OK; l--) {
        float *dx = NULL;
        if (l > 0) {
            dx = lp_gnn__scratch(N * lp_gnn_layer_in_dim(m->layers[l]));
            if (!dx) { st = lp_error_context(LP_ERR_NOMEM, "GNN backward"); break; }
        }
        st = lp_gnn_layer_backward(m->layers[l], dx, g);
        lp_gnn__scratch_free(owned);
        owned = dx;
        g = dx;
        if (dx) { /* through the ReLU of layer l-1: its output is > 0 where the input was */
            const float *a = m->act[l - 1];
            int64_t n = N * lp_gnn_layer_out_dim(m->layers[l - 1]);
            for (int64_t i = 0; i < n; i++) dx[i] = a[i] > 0 ? dx[i] : 0.0f;
        }
    }
    lp_gnn__scratch_free(owned);
    return st;
}

lp_status lp_gnn_model_for_params(lp_gnn_model *m, lp_gnn_param_fn fn, void *user)
{
    if (!m || !fn) return lp_error(LP_ERR_INVALID_ARG, "lp_gnn_model_for_params: NULL argument");
    int64_t off = 0;
    for (int l = 0; l < m->L; l++)
        for (int i = 0; i < lp_gnn_layer_n_params(m->layers[l]); i++) {
            lp_gnn_param p = lp_gnn_layer_param(m->layers[l], i);
            LP_TRY(fn(p.data, p.grad, p.numel, off, user));
            off += p.numel;
        }
    return LP_OK;
}

void lp_gnn_model_get_params(const lp_gnn_model *m, float *buf)
{
    for (int l = 0; m && l < m->L; l++)
        for (int i = 0; i < lp_gnn_layer_n_params(m->layers[l]); i++) {
            lp_gnn_param p = lp_gnn_layer_param(m->layers[l], i);
            memcpy(buf, p.data, (size_t)p.numel * sizeof(float));
            buf += p.numel;
        }
}

void lp_gnn_model_set_params(lp_gnn_model *m, const float *buf)
{
    for (int l = 0; m && l < m->L; l++)
        for (int i = 0; i < lp_gnn_layer_n_params(m->layers[l]); i++) {
            lp_gnn_param p = lp_gnn_layer_param(m->layers[l], i);
            memcpy(p.data, buf, (size_t)p.numel * sizeof(float));
            buf += p.numel;
        }
}
