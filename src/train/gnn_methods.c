/* The GNN training methods behind `leanprop gnn --method`. A forward-learning
 * method plugs in by adding a row: its node and/or link trainer with the
 * lp_gnn_train_fn signature (leanprop/gnn.h). */
#include <string.h>

#include "leanprop/gnn.h"

static const lp_gnn_method g_methods[] = {
    {"bp", "backpropagation through the whole stack (baseline)", lp_gnn_train_bp_node, lp_gnn_train_bp_link},
};

int lp_gnn_method_count(void) { return (int)(sizeof g_methods / sizeof g_methods[0]); }

const lp_gnn_method *lp_gnn_method_at(int i)
{
    return i >= 0 && i < lp_gnn_method_count() ? &g_methods[i] : NULL;
}

const lp_gnn_method *lp_gnn_method_find(const char *name)
{
    for (int i = 0; name && i < lp_gnn_method_count(); i++)
        if (!strcmp(g_methods[i].name, name)) return &g_methods[i];
    return NULL;
}
