/* The forward-learning methods: names, defaults, dispatch and the lp_gnn_train_fn
 * entry points of the `leanprop gnn --method` table. */
#include <string.h>

#include "train/fgnn_internal.h"

static const char *const g_names[LP_FGNN_METHOD_COUNT] = {
    "ff-la", "ff-vn", "sf", "sf-top2loss", "sf-top2input", "fl-ce", "fl-ff", "fl-ce-topdown",
};

const char *lp_fgnn_method_name(lp_fgnn_method m)
{
    return (int)m >= 0 && m < LP_FGNN_METHOD_COUNT ? g_names[m] : "invalid";
}

lp_status lp_fgnn_method_parse(const char *s, lp_fgnn_method *out)
{
    for (int m = 0; s && out && m < LP_FGNN_METHOD_COUNT; m++)
        if (!strcmp(s, g_names[m])) { *out = (lp_fgnn_method)m; return LP_OK; }
    return lp_error(LP_ERR_INVALID_ARG,
                    "unknown forward method '%s' (ff-la, ff-vn, sf, sf-top2loss, sf-top2input, fl-ce, fl-ff, fl-ce-topdown)",
                    s ? s : "(null)");
}

lp_gnn_task lp_fgnn_method_task(lp_fgnn_method m)
{
    return m >= LP_FGNN_FL_CE ? LP_GNN_TASK_LINK : LP_GNN_TASK_NODE;
}

int lp_fgnn_method_layerwise(lp_fgnn_method m)
{
    return m == LP_FGNN_FF_LA || m == LP_FGNN_FF_VN || m == LP_FGNN_SF || m == LP_FGNN_FL_CE || m == LP_FGNN_FL_FF;
}

lp_fgnn_opts lp_fgnn_defaults(void)
{
    lp_fgnn_opts o = {
        .theta = 2.0f, .tau = 1.0f, .cache = 1, .ff_vn_shared_features = 1, .test_time_steps = 10,
        .first_scored_step = 2, .clip_norm = 1.0f, .layer_loss_weight = NULL, .scores_out = NULL,
    };
    return o;
}

lp_status lp_fgnn_train(lp_fgnn_method m, const lp_gnn_run_args *a, const lp_fgnn_opts *opts, lp_gnn_result *out,
                        lp_fgnn_report *rep, lp_fgnn_model **model)
{
    if (model) *model = NULL;
    fgnn_run r;
    LP_TRY(fgnn_run_begin(&r, m, a, opts, out, rep));
    lp_status st;
    switch (m) {
    case LP_FGNN_SF: st = fgnn_train_sf(&r); break;
    case LP_FGNN_FF_LA:
    case LP_FGNN_FF_VN: st = fgnn_train_ff(&r); break;
    case LP_FGNN_SF_TOP2LOSS: st = fgnn_train_top2loss(&r); break;
    case LP_FGNN_SF_TOP2INPUT: st = fgnn_train_top2input(&r); break;
    case LP_FGNN_FL_CE:
    case LP_FGNN_FL_FF: st = fgnn_train_link(&r); break;
    default: st = fgnn_train_link_topdown(&r); break;
    }
    fgnn_run_end(&r, st == LP_OK ? model : NULL);
    if (st != LP_OK) return lp_error_context(st, "%s (%s, %d layers)", lp_fgnn_method_name(m), lp_gnn_kind_name(a->cfg->kind),
                                             a->cfg->n_layers);
    return LP_OK;
}

#define ENTRY(fn, M) \
    lp_status fn(const lp_gnn_run_args *a, lp_gnn_result *out) { return lp_fgnn_train(M, a, NULL, out, NULL, NULL); }
ENTRY(lp_fgnn_train_ff_la, LP_FGNN_FF_LA)
ENTRY(lp_fgnn_train_ff_vn, LP_FGNN_FF_VN)
ENTRY(lp_fgnn_train_sf, LP_FGNN_SF)
ENTRY(lp_fgnn_train_sf_top2loss, LP_FGNN_SF_TOP2LOSS)
ENTRY(lp_fgnn_train_sf_top2input, LP_FGNN_SF_TOP2INPUT)
ENTRY(lp_fgnn_train_fl_ce, LP_FGNN_FL_CE)
ENTRY(lp_fgnn_train_fl_ff, LP_FGNN_FL_FF)
ENTRY(lp_fgnn_train_fl_ce_topdown, LP_FGNN_FL_CE_TOPDOWN)
#undef ENTRY
