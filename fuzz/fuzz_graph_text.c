/* libFuzzer harness: plain-text graphs (lp_graph_dataset_load_text): NAME.edges.txt,
 * NAME.labels.txt and NAME.features.txt, then node and link splits of what loads.
 * Input: edges [, LPFUZZ_SEP, labels [, LPFUZZ_SEP, features]]. A node id is a declared size
 * (ids up to 2e9 are legal), so the budget, not the input, bounds memory here. */
#include "fuzz_common.h"

#include "leanprop/graph.h"

LPFUZZ_INIT(64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[3], len[3];
    int parts = lpfuzz_split(data, size, 3, off, len);
    const char *edges = lpfuzz_write("g.edges.txt", data + off[0], len[0]);
    const char *labels = parts > 1 ? lpfuzz_write("g.labels.txt", data + off[1], len[1]) : NULL;
    const char *feats = parts > 2 ? lpfuzz_write("g.features.txt", data + off[2], len[2]) : NULL;
    lp_graph_load_opts o = lp_graph_load_defaults();
    o.normalize = size & 1;
    lp_graph_dataset *ds = NULL;
    lp_status st = lp_graph_dataset_load_text(&ds, edges, labels, feats, &o);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        const lp_graph *g = ds->graph;
        if (g->n_nodes != ds->n_nodes) lpfuzz_die("graph and data set disagree on the node count");
        for (int64_t i = 0; i < g->n_nodes; i++)
            for (int64_t k = g->indptr[i]; k < g->indptr[i + 1]; k++)
                if (g->indices[k] < 0 || g->indices[k] >= g->n_nodes) lpfuzz_die("edge index out of range");
        lp_graph_splits *sp = NULL;
        if (ds->labels && ds->n_labelled >= 5) {
            lp_error_clear();
            st = lp_graph_splits_node(&sp, ds, 2, 7);
            lpfuzz_status(st, LPFUZZ_LENIENT, size);
            if (st == LP_OK) {
                lp_error_clear();
                lpfuzz_status(lp_graph_splits_check(sp, ds, "fuzz"), LPFUZZ_LENIENT, size);
                lp_graph_splits_free(sp);
            }
        }
        sp = NULL;
        lp_error_clear();
        st = lp_graph_splits_link(&sp, g, 1, 0.1, 0.1, 3);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st == LP_OK) lp_graph_splits_free(sp);
        lp_graph_dataset_free(ds);
    }
    lpfuzz_end();
    return 0;
}
