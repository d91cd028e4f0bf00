/* libFuzzer harness: graph data sets in .npz (gnn-benchmark / PyG CitationFull layout:
 * adj_* CSR, attr_* CSR or attr_matrix, labels) via lp_graph_dataset_load_npz. */
#include "fuzz_common.h"

#include "leanprop/graph.h"

LPFUZZ_INIT(64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *path = lpfuzz_write("g.npz", data, size);
    lp_graph_load_opts o = lp_graph_load_defaults();
    o.normalize = size & 1;
    o.max_sparse_density = (size & 2) ? 0.0 : 0.5;
    lp_graph_dataset *ds = NULL;
    lp_status st = lp_graph_dataset_load_npz(&ds, path, &o);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        const lp_graph *g = ds->graph;
        for (int64_t i = 0; i < g->n_nodes; i++)
            for (int64_t k = g->indptr[i]; k < g->indptr[i + 1]; k++)
                if (g->indices[k] < 0 || g->indices[k] >= g->n_nodes) lpfuzz_die("edge index out of range");
        if (ds->labels)
            for (int64_t i = 0; i < ds->n_nodes; i++)
                if (ds->labels[i] < -1 || ds->labels[i] >= ds->n_classes) lpfuzz_die("label out of range");
        lp_graph_dataset_free(ds);
    }
    lpfuzz_end();
    return 0;
}
