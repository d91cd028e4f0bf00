/* libFuzzer harness: split files (lp_graph_splits_load), parsed and checked against the fixed
 * 12-node graph of fuzz_graph_fixture.h (ids in range, node sets disjoint and labelled, link
 * positives are edges and negatives are not). Counts are bounded by the line length before
 * allocating, so memory is bounded by the input. */
#include "fuzz_common.h"

#include "fuzz_graph_fixture.h"
#include "leanprop/graph.h"

LPFUZZ_INIT(128u << 20)

static lp_graph_dataset *g_ds;

static void load_fixture(void)
{
    const char *e = lpfuzz_write("fixture.edges.txt", lpfuzz_fixture_edges, sizeof lpfuzz_fixture_edges - 1);
    const char *l = lpfuzz_write("fixture.labels.txt", lpfuzz_fixture_labels, sizeof lpfuzz_fixture_labels - 1);
    if (lp_graph_dataset_load_text(&g_ds, e, l, NULL, NULL) != LP_OK) {
        fprintf(stderr, "%s\n", lp_error_message());
        lpfuzz_die("cannot load the fixture graph");
    }
    unlink(e);
    unlink(l);
    lpfuzz_nfiles = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ds) load_fixture();
    lpfuzz_begin();
    const char *path = lpfuzz_write("fuzz.split", data, size);
    lp_graph_splits *s = NULL;
    lp_status st = lp_graph_splits_load(&s, path, g_ds);
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        if (s->kind == LP_SPLIT_LINK)
            for (int r = 0; r < s->n_runs; r++) {
                lp_graph *g = NULL;
                lp_error_clear();
                st = lp_edge_split_graph(&g, &s->link[r], s->n_nodes, r & 1);
                lpfuzz_status(st, LPFUZZ_STRICT, size);
                lp_graph_free(g);
            }
        lp_graph_splits_free(s);
    }
    lpfuzz_end();
    return 0;
}
