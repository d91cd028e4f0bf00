/* The GNN training methods behind `leanprop gnn --method`. A forward-learning
 * method plugs in by adding a row: its node and/or link trainer with the
 * lp_gnn_train_fn signature (leanprop/gnn.h). */
#include <string.h>

#include "leanprop/forwardgnn.h"
#include "leanprop/gnn.h"

static const lp_gnn_method g_methods[] = {
    {"bp", "backpropagation through the whole stack (baseline)", lp_gnn_train_bp_node, lp_gnn_train_bp_link},
    {"ff-la", "forward-forward, label appending (layer-wise, docs/FORWARDGNN.md)", lp_fgnn_train_ff_la, NULL},
    {"ff-vn", "forward-forward, virtual nodes (layer-wise)", lp_fgnn_train_ff_vn, NULL},
    {"sf", "single forward over virtual nodes (layer-wise)", lp_fgnn_train_sf, NULL},
    {"sf-top2loss", "single forward, upper states merged into each layer's loss", lp_fgnn_train_sf_top2loss, NULL},
    {"sf-top2input", "single forward, the layer above's output as a top-down input", lp_fgnn_train_sf_top2input, NULL},
    {"fl-ce", "forward learning, per-layer BCE of <z_u, z_v> (layer-wise)", NULL, lp_fgnn_train_fl_ce},
    {"fl-ff", "forward learning, per-layer FF goodness of z_u * z_v (layer-wise)", NULL, lp_fgnn_train_fl_ff},
    {"fl-ce-topdown", "fl-ce with top-down signals", NULL, lp_fgnn_train_fl_ce_topdown},
};

int lp_gnn_method_count(void) { return (int)(sizeof g_methods / sizeof g_methods[0]); }

const lp_gnn_method *lp_gnn_method_at(int i)
{
    return i >= 0 && i < lp_gnn_method_count() ? &g_methods[i] : NULL;
}

int lp_gnn_method_skips_nonfinite(const lp_gnn_method *m)
{
    return m && m->node == lp_gnn_train_bp_node && m->link == lp_gnn_train_bp_link;
}

const lp_gnn_method *lp_gnn_method_find(const char *name)
{
    for (int i = 0; name && i < lp_gnn_method_count(); i++)
        if (!strcmp(g_methods[i].name, name)) return &g_methods[i];
    return NULL;
}
