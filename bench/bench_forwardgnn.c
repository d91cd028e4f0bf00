/* bench_forwardgnn: the ForwardGNN protocols timed end to end (not a test).
 *
 *   ./build/bench/bench_forwardgnn                                   # SF, GCN, 4 layers, 5 runs on Cora
 *   ./build/bench/bench_forwardgnn --method fl-ce --layers 4 --runs 5 --threads 1
 *   ./build/bench/bench_forwardgnn --no-cache                        # the same without cached aggregation
 *
 * Prints, for a layer-wise method, every depth 1..L of the same runs (depth d of
 * a deeper run is exactly a run of depth d): test metric mean +- std (ddof 0),
 * epochs, seconds and peak activation bytes per layer; then wall and CPU time of
 * the whole protocol and the per-epoch arithmetic of a cached layer against
 * this machine's sgemm rate at the same shape, measured in the same run.
 * Options: --data PATH (default $LEANPROP_SHARED/data/graphs/cora.npz),
 * --method, --model gcn|sage|gat, --layers, --runs, --epochs, --threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "leanprop/alloc.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/kernels/linear.h"
#include "leanprop/log.h"
#include "leanprop/metrics.h"
#include "leanprop/threads.h"

#define CHECK(expr) do { lp_status st__ = (expr); if (st__ != LP_OK) { \
    fprintf(stderr, "bench_forwardgnn: %s failed: %s\n", #expr, lp_error_message()); exit(1); } } while (0)

static double cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* best-of-5 GFLOP/s of C (M,N) = A (M,K) B (K,N) */
static double sgemm_rate(int64_t M, int64_t N, int64_t K)
{
    float *a = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(M * K), sizeof(float));
    float *b = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(K * N), sizeof(float));
    float *c = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(M * N), sizeof(float));
    if (!a || !b || !c) exit(1);
    for (int64_t i = 0; i < M * K; i++) a[i] = 0.001f * (float)(i % 97);
    for (int64_t i = 0; i < K * N; i++) b[i] = 0.002f * (float)(i % 89);
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t = lp_time_now();
        for (int k = 0; k < 20; k++) CHECK(lp_sgemm(c, 0, a, 0, b, 0, M, N, K, LP_NOTRANS, LP_NOTRANS, 1.0f, 0.0f));
        t = (lp_time_now() - t) / 20;
        if (r > 0 && t < best) best = t;
    }
    lp_free(a); lp_free(b); lp_free(c);
    return 2.0 * (double)M * N * K / best * 1e-9;
}

int main(int argc, char **argv)
{
    const char *data = NULL, *method = "sf", *model = "gcn";
    int layers = 4, runs = 5, epochs = 1000, threads = 0, cache = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-cache")) { cache = 0; continue; }
        if (!v) { fprintf(stderr, "bench_forwardgnn: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--method")) method = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else { fprintf(stderr, "bench_forwardgnn: unknown option %s\n", a); return 2; }
        i++;
    }
    char path[4096];
    if (!data) {
        const char *sh = getenv("LEANPROP_SHARED");
        snprintf(path, sizeof path, "%s/data/graphs/cora.npz", sh && *sh ? sh : "../shared");
        data = path;
    }
    if (threads > 0) CHECK(lp_threads_set(threads));
    lp_fgnn_method m;
    lp_gnn_train_config cfg = lp_gnn_train_defaults();
    CHECK(lp_fgnn_method_parse(method, &m));
    CHECK(lp_gnn_kind_parse(model, &cfg.kind));
    if (layers < 1 || layers > LP_FGNN_MAX_LAYERS || runs < 1 || runs > 100) { fprintf(stderr, "bad --layers/--runs\n"); return 2; }
    cfg.n_layers = layers;
    cfg.epochs = epochs;
    lp_graph_dataset *ds;
    CHECK(lp_graph_dataset_load(&ds, data, NULL));
    lp_gnn_task task = lp_fgnn_method_task(m);
    lp_graph_splits *sp;
    if (task == LP_GNN_TASK_NODE) CHECK(lp_graph_splits_node(&sp, ds, runs, 101));
    else CHECK(lp_graph_splits_link(&sp, ds->graph, runs, 0.16, 0.2, 101));
    printf("bench_forwardgnn: %s %s x%d on %s (%lld nodes, %lld features), %d runs, up to %d epochs per layer, "
           "%d threads, cache %s\n", method, model, layers, ds->name, (long long)ds->n_nodes, (long long)ds->n_features, runs,
           epochs, lp_threads_get(), cache ? "on" : "off");
    fflush(stdout);
    lp_fgnn_opts o = lp_fgnn_defaults();
    o.cache = cache;
    double test[LP_FGNN_MAX_LAYERS][100], val[LP_FGNN_MAX_LAYERS][100], ep[LP_FGNN_MAX_LAYERS] = {0}, sec[LP_FGNN_MAX_LAYERS] = {0};
    size_t act[LP_FGNN_MAX_LAYERS] = {0};
    double wall = lp_time_now(), cpu = cpu_now(), epoch_ms = 0;
    int total_epochs = 0;
    lp_mem_stats peak = {0};
    for (int r = 0; r < runs; r++) {
        lp_gnn_train_config c = cfg;
        c.seed = cfg.seed + 3 * (uint64_t)r;
        lp_gnn_run_args a = {ds, task, task == LP_GNN_TASK_NODE ? &sp->node[r] : NULL, task == LP_GNN_TASK_LINK ? &sp->link[r] : NULL,
                             r, &c, NULL, NULL};
        lp_gnn_result res;
        lp_fgnn_report rep;
        memset(&rep, 0, sizeof rep);
        CHECK(lp_fgnn_train(m, &a, &o, &res, &rep, NULL));
        for (int d = 0; d < layers; d++) {
            test[d][r] = rep.test[d];
            val[d][r] = rep.val[d];
            ep[d] += rep.epochs[d];
            sec[d] += rep.seconds[d];
            if (rep.peak_activations[d] > act[d]) act[d] = rep.peak_activations[d];
        }
        for (int k = 0; k < LP_MEM_COUNT; k++)
            if (res.mem.peak[k] > peak.peak[k]) peak.peak[k] = res.mem.peak[k];
        total_epochs += res.epochs;
        epoch_ms += res.epoch_ms * res.epochs;
        printf("  run %d: test %.2f%%  (%d epochs, %.2f s)\n", r + 1, 100 * res.test, res.epochs, res.seconds);
        fflush(stdout);
    }
    wall = lp_time_now() - wall;
    cpu = cpu_now() - cpu;
    const char *metric = task == LP_GNN_TASK_NODE ? "accuracy" : "ROC-AUC";
    printf("\n| depth | test %s (mean +- std) | val | epochs/run | s/run | peak activations |\n|---|---|---|---|---|---|\n", metric);
    char b[32];
    for (int d = 0; d < layers; d++) {
        if (isnan(test[d][0])) continue;
        double tm, ts, vm, vs;
        lp_mean_std(test[d], runs, &tm, &ts);
        lp_mean_std(val[d], runs, &vm, &vs);
        printf("| %d | %.2f +- %.2f | %.2f | %.0f | %.2f | %s |\n", d + 1, 100 * tm, 100 * ts, 100 * vm, ep[d] / runs, sec[d] / runs,
               lp_format_bytes(act[d], b, sizeof b));
    }
    printf("\nprotocol: %.2f s wall, %.2f s CPU (all threads), %d epochs, %.3f ms per training epoch (forward + backward + step)\n",
           wall, cpu, total_epochs, total_epochs ? epoch_ms / total_epochs : 0.0);
    printf("memory peaks:");
    for (int k = 0; k < LP_MEM_COUNT; k++) printf(" %s %s", lp_mem_category_name((lp_mem_category)k), lp_format_bytes(peak.peak[k], b, sizeof b));
    printf("\n");
    if (task == LP_GNN_TASK_NODE && cfg.kind != LP_GNN_GAT) {
        /* a cached hidden layer's epoch: forward and weight gradient over train + C rows, plus a
         * validation forward over C + val rows every eval_every epochs */
        int64_t rows = sp->node[0].n_train + ds->n_classes, vrows = ds->n_classes + sp->node[0].n_val, H = cfg.hidden;
        double flop = 2.0 * (2.0 * rows + (double)vrows / cfg.eval_every) * H * H * (cfg.kind == LP_GNN_SAGE ? 2 : 1);
        double rate = sgemm_rate(rows, H, H);
        printf("cached layer: %.1f MFLOP per epoch; sgemm %lldx%lldx%lld here: %.1f GFLOP/s -> floor %.3f ms per epoch\n",
               flop * 1e-6, (long long)rows, (long long)H, (long long)H, rate, flop / (rate * 1e9) * 1e3);
    }
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
    return 0;
}
