/* bench_gnn: epoch time (forward + backward + Adam step) of a 2-layer GCN, hidden 128,
 * full batch, on Cora and CiteSeer, with 1 and 2 threads; sparse features (the
 * default) and dense features (what the PyTorch reference uses). Not a test.
 *
 *   build/bench/bench_gnn [epochs]        (LEANPROP_SHARED locates the data)
 *
 * Reference on this machine (PyTorch 1.13 + PyG, dense features, one thread):
 * ~29 ms per epoch on Cora, ~48 ms on CiteSeer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/kernels/optim.h"
#include "leanprop/kernels/softmax.h"
#include "leanprop/log.h"
#include "leanprop/threads.h"

static lp_status adam_one(float *p, float *g, int64_t n, int64_t off, void *user)
{
    return lp_adam_update((lp_adam *)user, off, p, g, n);
}

/* ms per epoch; also the split of one epoch into forward / backward+step */
static int bench(const lp_graph_dataset *ds, int epochs, double *ms, double *fwd_ms)
{
    lp_rng rng;
    lp_rng_seed(&rng, 1);
    lp_gnn_model_config mc = {LP_GNN_GCN, 2, ds->n_features, 128, ds->n_classes, 4};
    lp_gnn_model *m;
    lp_adam *opt;
    lp_adam_config ac = lp_adam_defaults();
    ac.weight_decay = 5e-4f;
    if (lp_gnn_model_new(&m, &mc, &rng) != LP_OK || lp_adam_new(&opt, lp_gnn_model_numel(m), &ac) != LP_OK) return 1;
    int64_t N = ds->n_nodes, C = ds->n_classes;
    int32_t *targets = malloc((size_t)N * sizeof(int32_t));
    float *lse = malloc((size_t)N * sizeof(float));
    for (int64_t i = 0; i < N; i++) targets[i] = i % 5 < 3 ? ds->labels[i] : LP_IGNORE_INDEX;
    lp_gnn_input x = lp_gnn_input_features(ds);
    double t_fwd = 0, t0 = 0;
    for (int e = -3; e < epochs; e++) { /* 3 warm-up epochs */
        if (e == 0) t0 = lp_time_now();
        double a = lp_time_now();
        float *logits, loss;
        int64_t count;
        lp_gnn_model_zero_grad(m);
        if (lp_gnn_model_forward(m, &x, ds->graph, 1, &logits) != LP_OK) return 1;
        lp_crossentropy_forward(&loss, &count, lse, logits, targets, N, C, LP_IGNORE_INDEX);
        if (e >= 0) t_fwd += lp_time_now() - a;
        lp_crossentropy_backward(logits, logits, lse, targets, count, 1.0f, N, C, LP_IGNORE_INDEX);
        if (lp_gnn_model_backward(m, logits) != LP_OK) return 1;
        lp_adam_begin_step(opt);
        if (lp_gnn_model_for_params(m, adam_one, opt) != LP_OK) return 1;
    }
    *ms = 1e3 * (lp_time_now() - t0) / epochs;
    *fwd_ms = 1e3 * t_fwd / epochs;
    free(targets);
    free(lse);
    lp_adam_free(opt);
    lp_gnn_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    int epochs = argc > 1 ? atoi(argv[1]) : 100;
    if (epochs < 1) epochs = 100;
    const char *shared = getenv("LEANPROP_SHARED");
    const char *names[] = {"cora", "citeseer"};
    printf("2-layer GCN, hidden 128, full batch, epoch = forward + cross entropy + backward + Adam; %d epochs\n", epochs);
    printf("%-9s %-7s %7s %12s %12s\n", "data", "feats", "threads", "ms/epoch", "fwd ms");
    for (int d = 0; d < 2; d++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/graphs/%s.npz", shared ? shared : "../shared", names[d]);
        for (int dense = 0; dense < 2; dense++) {
            lp_graph_load_opts o = lp_graph_load_defaults();
            if (dense) o.max_sparse_density = 0;
            lp_graph_dataset *ds;
            if (lp_graph_dataset_load(&ds, path, &o) != LP_OK) {
                fprintf(stderr, "bench_gnn: %s (set LEANPROP_SHARED)\n", lp_error_message());
                return 1;
            }
            for (int t = 1; t <= 2; t++) {
                lp_threads_set(t);
                double ms, fwd;
                if (bench(ds, epochs, &ms, &fwd)) { fprintf(stderr, "bench_gnn: %s\n", lp_error_message()); return 1; }
                printf("%-9s %-7s %7d %12.2f %12.2f\n", names[d], dense ? "dense" : "sparse", t, ms, fwd);
                fflush(stdout);
            }
            lp_graph_dataset_free(ds);
        }
    }
    return 0;
}
