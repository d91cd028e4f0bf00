/* `leanprop gnn`: train and evaluate a GNN on a graph data set over several runs/splits,
 * with crash-safe checkpoints (--checkpoint, --resume) and a non-finite policy. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd_finetune_util.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/log.h"
#include "leanprop/metrics.h"
#include "leanprop/metrics_log.h"
#include "leanprop/nonfinite.h"
#include "leanprop/threads.h"
#include "leanprop/version.h"

typedef struct {
    lp_progress *bar;
    lp_metrics_log *log;
    int run, n_runs;
    const char *metric;
    lp_status log_status;
    int skipped;
    int64_t bar_total; /* progress-bar steps of one run */
} epoch_ctx;

/* Steps of one run's progress bar: epochs, or epochs x layers for the layer-wise forward
 * methods, whose epoch counter runs on across the layers (each trained for up to `epochs`). */
static int64_t bar_total(const lp_gnn_method *m, const lp_gnn_train_config *cfg)
{
    for (int k = 0; k < LP_FGNN_METHOD_COUNT; k++)
        if (!strcmp(m->name, lp_fgnn_method_name((lp_fgnn_method)k)) && lp_fgnn_method_layerwise((lp_fgnn_method)k))
            return (int64_t)cfg->epochs * cfg->n_layers;
    return cfg->epochs;
}

static void on_epoch(const lp_gnn_epoch *e, void *user)
{
    epoch_ctx *c = user;
    if (e->skipped && ++c->skipped <= 10)
        fprintf(stderr, "%swarning: update skipped (--on-nonfinite skip): %s%s\n", c->bar ? "\n" : "",
                e->skip_reason ? e->skip_reason : "non-finite value",
                c->skipped == 10 ? " (further skips are counted, not shown)" : "");
    if (c->bar) {
        if (isnan(e->val_metric)) lp_progress_update(c->bar, e->epoch, "loss %.4f", e->loss);
        else lp_progress_update(c->bar, e->epoch, "loss %.4f val %s %.2f%%", e->loss, c->metric, 100 * e->val_metric);
    }
    if (c->log && c->log_status == LP_OK) {
        lp_metrics_row row = lp_metrics_row_empty(e->epoch);
        row.loss = e->loss;
        row.epoch = e->epoch;
        const char *names[] = {"run", "train_metric", "val_metric", "seconds"};
        double vals[] = {e->run, e->train_metric, e->val_metric, e->seconds};
        row.n_extra = 4;
        row.extra_names = names;
        row.extra_values = vals;
        c->log_status = lp_metrics_log_write(c->log, &row);
    }
}

/* A float flag value as the user wrote it (0.001, not 0.0010000000474974513). */
static double short_float(float v)
{
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return strtod(b, NULL);
}

static cJSON *mem_json(const lp_mem_stats *m)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < LP_MEM_COUNT; k++)
        cJSON_AddNumberToObject(o, lp_mem_category_name((lp_mem_category)k), (double)m->peak[k]);
    cJSON_AddNumberToObject(o, "total", (double)m->total_peak);
    return o;
}

static int write_results(const char *path, const lp_graph_dataset *ds, const lp_gnn_train_config *cfg, const char *method,
                         const char *task, const char *metric, const lp_gnn_result *res, int runs, const char *split_info,
                         const lp_mem_stats *peak)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "leanprop", lp_version());
    cJSON *d = cJSON_AddObjectToObject(root, "dataset");
    cJSON_AddStringToObject(d, "path", ds->path);
    cJSON_AddStringToObject(d, "name", ds->name);
    cJSON_AddNumberToObject(d, "nodes", (double)ds->n_nodes);
    cJSON_AddNumberToObject(d, "undirected_edges", (double)(ds->graph->n_edges / 2));
    cJSON_AddNumberToObject(d, "features", (double)ds->n_features);
    cJSON_AddBoolToObject(d, "sparse_features", ds->x_sparse != NULL);
    cJSON_AddNumberToObject(d, "classes", ds->n_classes);
    cJSON *c = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(c, "model", lp_gnn_kind_name(cfg->kind));
    cJSON_AddNumberToObject(c, "layers", cfg->n_layers);
    cJSON_AddNumberToObject(c, "hidden", cfg->hidden);
    if (cfg->kind == LP_GNN_GAT) cJSON_AddNumberToObject(c, "heads", cfg->heads);
    cJSON_AddStringToObject(c, "method", method);
    cJSON_AddStringToObject(c, "task", task);
    cJSON_AddNumberToObject(c, "lr", short_float(cfg->lr));
    cJSON_AddNumberToObject(c, "weight_decay", short_float(cfg->weight_decay));
    cJSON_AddNumberToObject(c, "epochs", cfg->epochs);
    cJSON_AddNumberToObject(c, "eval_every", cfg->eval_every);
    cJSON_AddNumberToObject(c, "patience", cfg->patience);
    cJSON_AddNumberToObject(c, "threads", lp_threads_get());
    cJSON_AddStringToObject(c, "split", split_info);
    cJSON_AddStringToObject(root, "metric", metric);
    cJSON *arr = cJSON_AddArrayToObject(root, "runs");
    double test[1000], val[1000];
    for (int r = 0; r < runs; r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "run", r);
        cJSON_AddNumberToObject(o, "seed", (double)(cfg->seed + 3 * (uint64_t)r));
        cJSON_AddNumberToObject(o, "test", res[r].test);
        cJSON_AddNumberToObject(o, "val", res[r].val);
        cJSON_AddNumberToObject(o, "train", res[r].train);
        cJSON_AddNumberToObject(o, "best_epoch", res[r].best_epoch);
        cJSON_AddNumberToObject(o, "epochs", res[r].epochs);
        cJSON_AddNumberToObject(o, "seconds", res[r].seconds);
        cJSON_AddNumberToObject(o, "epoch_ms", res[r].epoch_ms);
        cJSON_AddNumberToObject(o, "params", (double)res[r].params);
        cJSON_AddNumberToObject(o, "skipped_epochs", res[r].skipped_epochs);
        cJSON_AddItemToObject(o, "memory_peak_bytes", mem_json(&res[r].mem));
        cJSON_AddItemToArray(arr, o);
        test[r] = res[r].test;
        val[r] = res[r].val;
    }
    double tm, ts, vm, vs;
    lp_mean_std(test, runs, &tm, &ts);
    lp_mean_std(val, runs, &vm, &vs);
    cJSON *s = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(s, "test_mean", tm);
    cJSON_AddNumberToObject(s, "test_std", ts);
    cJSON_AddNumberToObject(s, "val_mean", vm);
    cJSON_AddNumberToObject(s, "val_std", vs);
    cJSON_AddStringToObject(s, "std", "population (ddof 0)");
    cJSON_AddItemToObject(root, "memory_peak_bytes", mem_json(peak));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) { lp_error(LP_ERR_NOMEM, "formatting %s", path); return 1; }
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = '\0';
    lp_status st = lp_file_write_atomic(path, text, n + 1);
    free(text);
    return st != LP_OK;
}

/* Train run r (continuing it when the checkpoint holds its state), print its line and save the
 * end-of-run checkpoint. Returns 0, or 1 after printing the error. */
static int train_one(epoch_ctx *ec, lp_gnn_checkpoint *ck, lp_gnn_train_fn train, const lp_graph_dataset *ds,
                     const lp_graph_splits *sp, lp_gnn_task t, const lp_gnn_train_config *cfg, int r, long runs, int quiet,
                     const char *metric, lp_gnn_result *res)
{
    lp_gnn_train_config rc_cfg = *cfg;
    rc_cfg.seed = cfg->seed + 3 * (uint64_t)r;
    rc_cfg.ckpt = ck;
    char label[32];
    snprintf(label, sizeof label, "run %d/%ld", r + 1, runs);
    ec->bar = quiet ? NULL : lp_progress_new(label, ec->bar_total);
    ec->run = r;
    lp_gnn_run_args ra = {ds, t, t == LP_GNN_TASK_NODE ? &sp->node[r] : NULL, t == LP_GNN_TASK_LINK ? &sp->link[r] : NULL,
                          r, &rc_cfg, on_epoch, ec};
    lp_status st = train(&ra, res);
    lp_progress_free(ec->bar);
    ec->bar = NULL;
    if (st != LP_OK) {
        char w[64];
        snprintf(w, sizeof w, "run %d", r + 1);
        return cli_fail(w);
    }
    if (ec->log_status != LP_OK) return cli_fail("--log");
    printf("run %d/%ld  test %s %.2f%%  val %.2f%%  train %.2f%%  best epoch %d of %d  %.2f s (%.2f ms/epoch)  seed %llu",
           r + 1, runs, metric, 100 * res->test, 100 * res->val, 100 * res->train, res->best_epoch, res->epochs,
           res->seconds, res->epoch_ms, (unsigned long long)rc_cfg.seed);
    if (res->skipped_epochs) printf("  %d epochs skipped (non-finite)", res->skipped_epochs);
    printf("\n");
    fflush(stdout);
    if (ck && lp_gnn_checkpoint_end_run(ck, r, res) != LP_OK) return cli_fail("--checkpoint");
    return 0;
}

int cmd_gnn(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    lp_gnn_train_config cfg = lp_gnn_train_defaults();
    const char *dataset = cli_get(&a, "dataset", NULL);
    const char *model = cli_get(&a, "model", "gcn");
    const char *method_name = cli_get(&a, "method", "bp");
    const char *task = cli_get(&a, "task", "node");
    const char *split_file = cli_get(&a, "split-file", NULL);
    const char *out_path = cli_get(&a, "out", NULL);
    const char *log_path = cli_get(&a, "log", NULL);
    cfg.n_layers = (int)cli_get_long(&a, "layers", cfg.n_layers);
    cfg.hidden = (int)cli_get_long(&a, "hidden", cfg.hidden);
    cfg.heads = (int)cli_get_long(&a, "heads", cfg.heads);
    cfg.link_dim = (int)cli_get_long(&a, "link-dim", cfg.link_dim);
    cfg.epochs = (int)cli_get_long(&a, "epochs", cfg.epochs);
    cfg.patience = (int)cli_get_long(&a, "patience", cfg.patience);
    cfg.eval_every = (int)cli_get_long(&a, "eval-every", cfg.eval_every);
    cfg.lr = (float)cli_get_double(&a, "lr", cfg.lr);
    cfg.weight_decay = (float)cli_get_double(&a, "weight-decay", cfg.weight_decay);
    long seed = cli_get_long(&a, "seed", 10100);
    long split_seed = cli_get_long(&a, "split-seed", 101);
    long runs = cli_get_long(&a, "runs", 5);
    long threads = cli_get_long(&a, "threads", 0);
    int dense = cli_flag(&a, "dense");
    int no_norm = cli_flag(&a, "no-normalize");
    int quiet = cli_flag(&a, "quiet");
    const char *ckpt_path = cli_get(&a, "checkpoint", NULL);
    long ckpt_every = cli_get_long(&a, "checkpoint-every", 50);
    const char *resume = cli_get(&a, "resume", NULL);
    const char *on_nonfinite = cli_get(&a, "on-nonfinite", "stop");
    const char *max_memory = cli_get(&a, "max-memory", NULL);
    if (cli_finish(&a)) return 2;
    size_t budget = 0;
    if (max_memory && (ftcli_parse_size(max_memory, &budget) != LP_OK || budget == 0)) {
        fprintf(stderr, "leanprop gnn: --max-memory expects a size such as 512M or 2G, got '%s'\n", max_memory);
        return 2;
    }
    if (lp_nonfinite_policy_parse(on_nonfinite, &cfg.on_nonfinite) != LP_OK) return cli_fail("--on-nonfinite") + 1;
    if (ckpt_every < 1 || ckpt_every > 1000000000L) {
        fprintf(stderr, "leanprop gnn: --checkpoint-every must be a positive number of epochs\n");
        return 2;
    }
    if (!ckpt_path) ckpt_path = resume; /* a resumed job goes on saving where it was read from */
    if (!dataset) { fprintf(stderr, "leanprop gnn: --dataset PATH is required (see --help)\n"); return 2; }
    lp_gnn_task t;
    if (!strcmp(task, "node")) t = LP_GNN_TASK_NODE;
    else if (!strcmp(task, "link")) t = LP_GNN_TASK_LINK;
    else { fprintf(stderr, "leanprop gnn: --task must be node or link, got '%s'\n", task); return 2; }
    if (lp_gnn_kind_parse(model, &cfg.kind) != LP_OK) return cli_fail("--model");
    const lp_gnn_method *method = lp_gnn_method_find(method_name);
    if (!method) {
        fprintf(stderr, "leanprop gnn: unknown --method '%s' (available:", method_name);
        for (int i = 0; i < lp_gnn_method_count(); i++) fprintf(stderr, " %s", lp_gnn_method_at(i)->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    lp_gnn_train_fn train = t == LP_GNN_TASK_NODE ? method->node : method->link;
    if (!train) { fprintf(stderr, "leanprop gnn: method %s has no %s task\n", method->name, task); return 2; }
    if (cfg.on_nonfinite == LP_NONFINITE_SKIP && !lp_gnn_method_skips_nonfinite(method)) {
        fprintf(stderr, "leanprop gnn: --on-nonfinite skip is not supported by method %s (it stops)\n", method->name);
        return 2;
    }
    if (runs < 1 || runs > 1000 || cfg.n_layers < 1 || cfg.n_layers > 64 || cfg.hidden < 1 || cfg.epochs < 0 ||
        cfg.patience < 1 || cfg.eval_every < 1 || seed < 0 || split_seed < 0 || cfg.link_dim < 1) {
        fprintf(stderr, "leanprop gnn: --runs, --layers, --hidden, --patience, --eval-every, --link-dim must be positive\n");
        return 2;
    }
    if (threads > 0 && lp_threads_set((int)threads) != LP_OK) return cli_fail("--threads");
    cfg.seed = (uint64_t)seed;
    /* no GNN memory planner yet: the budget is enforced by the allocator, so a run that
     * would pass it stops cleanly at the allocation, naming the category and size */
    if (budget) lp_mem_set_limit(lp_mem_total_current() + budget);

    lp_graph_load_opts lo = lp_graph_load_defaults();
    lo.normalize = !no_norm;
    lo.require_labels = t == LP_GNN_TASK_NODE;
    if (dense) lo.max_sparse_density = 0;
    lp_graph_dataset *ds = NULL;
    lp_graph_splits *sp = NULL;
    lp_gnn_result *res = NULL;
    lp_gnn_checkpoint *ck = NULL;
    epoch_ctx ec = {0};
    int rc = 1;
    if (lp_graph_dataset_load(&ds, dataset, &lo) != LP_OK) return cli_fail("loading the data set");
    double density = ds->x_sparse ? (double)ds->x_sparse->nnz / ((double)ds->n_nodes * (double)ds->n_features) : 1.0;
    printf("data    %s: %lld nodes, %lld undirected edges, %lld features (%s%s), %d classes\n", ds->name,
           (long long)ds->n_nodes, (long long)(ds->graph->n_edges / 2), (long long)ds->n_features,
           ds->x_sparse ? "sparse" : "dense", ds->identity_features ? ", identity" : "", ds->n_classes);
    if (ds->x_sparse) printf("        features %.2f%% nonzero, kept sparse: the first layer's X.W is a sparse-dense product\n", 100 * density);
    /* splits: load when the file exists, else make them (and save when a path is given) */
    char split_info[512];
    lp_split_kind want = t == LP_GNN_TASK_NODE ? LP_SPLIT_NODE : LP_SPLIT_LINK;
    if (split_file && lp_file_exists(split_file)) {
        if (lp_graph_splits_load(&sp, split_file, ds) != LP_OK) { cli_fail("split file"); goto done; }
        if (sp->kind != want) {
            fprintf(stderr, "leanprop gnn: %s holds %s splits, --task %s needs %s splits\n", split_file,
                    sp->kind == LP_SPLIT_NODE ? "node" : "link", task, want == LP_SPLIT_NODE ? "node" : "link");
            goto done;
        }
        if (sp->n_runs < runs) {
            fprintf(stderr, "leanprop gnn: %s has %d runs, --runs asks for %ld\n", split_file, sp->n_runs, runs);
            goto done;
        }
        snprintf(split_info, sizeof split_info, "loaded from %s", split_file);
    } else {
        lp_status st = t == LP_GNN_TASK_NODE ? lp_graph_splits_node(&sp, ds, (int)runs, (uint64_t)split_seed)
                                             : lp_graph_splits_link(&sp, ds->graph, (int)runs, 0.16, 0.2, (uint64_t)split_seed);
        if (st != LP_OK) { cli_fail("making splits"); goto done; }
        if (split_file && lp_graph_splits_save(sp, split_file) != LP_OK) { cli_fail("saving the split file"); goto done; }
        snprintf(split_info, sizeof split_info, "%s, seed %ld%s%s",
                 t == LP_GNN_TASK_NODE ? "nodes 64/16/20 (5-fold test, 80/20 train/val)"
                                       : "edges 64/16/20 positives, one fixed negative each",
                 split_seed, split_file ? ", saved to " : "", split_file ? split_file : "");
    }
    printf("split   %s\n", split_info);
    int first_run = 0;
    if (ckpt_path) {
        lp_gnn_job job = {method->name, t, &cfg, (int)runs, ds, sp};
        if (lp_gnn_checkpoint_new(&ck, ckpt_path, (int)ckpt_every, &job) != LP_OK) { cli_fail("--checkpoint"); goto done; }
        if (resume) {
            if (lp_gnn_checkpoint_resume(ck, resume) != LP_OK) { cli_fail("--resume"); goto done; }
            int saved = lp_gnn_checkpoint_threads(ck);
            if (threads <= 0 && saved > 0 && saved != lp_threads_get() && lp_threads_set(saved) != LP_OK) {
                cli_fail("threads of the checkpoint");
                goto done;
            }
            if (saved > 0 && saved != lp_threads_get())
                fprintf(stderr, "warning: the checkpoint was written with %d threads, this run has %d: losses may differ "
                                "from an uninterrupted run in the last bits\n", saved, lp_threads_get());
            first_run = lp_gnn_checkpoint_next_run(ck);
            printf("resume  %s: %d of %ld runs finished", resume, first_run, runs);
            if (lp_gnn_checkpoint_next_epoch(ck) > 0)
                printf(", run %d continues after epoch %d", first_run + 1, lp_gnn_checkpoint_next_epoch(ck));
            printf("\n");
        }
        if (lp_gnn_method_resumable(method))
            printf("ckpt    %s every %ld epochs%s and after each run (temp file, fsync, rename; CRC-32 checked on --resume)\n",
                   ckpt_path, ckpt_every, bar_total(method, &cfg) != cfg.epochs ? " (counted across layers)" : "");
        else
            printf("ckpt    %s after each run (method %s cannot save a run in progress: a resume redoes that run)\n",
                   ckpt_path, method->name);
    }
    printf("model   %s x%d, hidden %d%s, method %s, task %s, %ld runs, lr %g, weight decay %g, up to %d epochs, "
           "patience %d x %d, %d threads\n",
           lp_gnn_kind_name(cfg.kind), cfg.n_layers, cfg.hidden, cfg.kind == LP_GNN_GAT ? " (4 heads)" : "", method->name,
           task, runs, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.patience, cfg.eval_every, lp_threads_get());
    fflush(stdout);
    const char *metric = t == LP_GNN_TASK_NODE ? "acc" : "auc";
    ec.metric = metric;
    ec.bar_total = bar_total(method, &cfg);
    ec.n_runs = (int)runs;
    if (log_path && resume && ck) { /* drop what a crashed run logged after its last checkpoint */
        static const char *const keys[] = {"run", "step"};
        double at[] = {first_run, lp_gnn_checkpoint_next_epoch(ck)};
        if (lp_metrics_log_truncate_after(log_path, keys, at, 2, NULL) != LP_OK) { cli_fail("--log"); goto done; }
    }
    if (log_path && lp_metrics_log_open(&ec.log, log_path, resume != NULL) != LP_OK) { cli_fail("--log"); goto done; }
    res = calloc((size_t)runs, sizeof *res);
    if (!res) { lp_error(LP_ERR_NOMEM, "out of memory"); cli_fail(""); goto done; }
    lp_mem_stats peak = {0};
    double test[1000], val[1000];
    for (int r = 0; r < runs; r++) {
        if (r < first_run) { /* finished before the resume */
            if (lp_gnn_checkpoint_result(ck, r, &res[r]) != LP_OK) { cli_fail("--resume"); goto done; }
            printf("run %d/%ld  test %s %.2f%%  val %.2f%%  train %.2f%%  best epoch %d of %d  (from the checkpoint)\n", r + 1,
                   runs, metric, 100 * res[r].test, 100 * res[r].val, 100 * res[r].train, res[r].best_epoch, res[r].epochs);
        } else if (train_one(&ec, ck, train, ds, sp, t, &cfg, r, runs, quiet, metric, &res[r])) {
            goto done;
        }
        test[r] = res[r].test;
        val[r] = res[r].val;
        for (int k = 0; k < LP_MEM_COUNT; k++)
            if (res[r].mem.peak[k] > peak.peak[k]) peak.peak[k] = res[r].mem.peak[k];
        if (res[r].mem.total_peak > peak.total_peak) peak.total_peak = res[r].mem.total_peak;
    }
    double tm, ts, vm, vs;
    lp_mean_std(test, (int)runs, &tm, &ts);
    lp_mean_std(val, (int)runs, &vm, &vs);
    printf("summary %s %s x%d %s %s: test %s %.2f ± %.2f %%  (val %.2f ± %.2f; mean ± population std over %ld runs)\n",
           ds->name, lp_gnn_kind_name(cfg.kind), cfg.n_layers, method->name, task, metric, 100 * tm, 100 * ts, 100 * vm,
           100 * vs, runs);
    char b[32];
    printf("memory  peak per category (accounting allocator, max over runs):");
    for (int k = 0; k < LP_MEM_COUNT; k++)
        printf(" %s %s%s", lp_mem_category_name((lp_mem_category)k), lp_format_bytes(peak.peak[k], b, sizeof b),
               k + 1 < LP_MEM_COUNT ? "," : "");
    printf("; total %s\n", lp_format_bytes(peak.total_peak, b, sizeof b));
    if (out_path) {
        if (write_results(out_path, ds, &cfg, method->name, task, t == LP_GNN_TASK_NODE ? "accuracy" : "roc_auc", res,
                          (int)runs, split_info, &peak)) {
            cli_fail("--out");
            goto done;
        }
        printf("results %s\n", out_path);
    }
    if (ck) {
        double secs;
        int saves = lp_gnn_checkpoint_saves(ck, &secs);
        printf("ckpt    %s: %d saves this process, %.2f s (resume with --resume %s)\n", ckpt_path, saves, secs, ckpt_path);
    }
    rc = 0;
done:
    lp_gnn_checkpoint_free(ck);
    if (ec.log && lp_metrics_log_close(ec.log) != LP_OK && rc == 0) rc = cli_fail("--log");
    free(res);
    lp_graph_splits_free(sp);
    lp_graph_dataset_free(ds);
    return rc;
}
