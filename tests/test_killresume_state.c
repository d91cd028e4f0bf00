/* GNN checkpoints in process (the kill tests, test_killresume.c, do it with SIGKILL):
 * a job resumed from the checkpoint of any epoch reproduces the uninterrupted job's per-epoch
 * losses and final results bit for bit (node and link, GCN and SAGE); saving changes nothing;
 * a checkpoint of another job is refused naming the field; flipped bytes and truncation are
 * refused; an injected write failure keeps the previous checkpoint, which still resumes
 * exactly; stale temp files are removed; NaN/Inf stops the run (run, epoch, tensor named) or
 * skips the update. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/threads.h"

#define MAX_EPOCHS 200
#define MAX_RUNS 3
#define MAX_SNAPS 8

/* One job: data, splits, config, and what its epochs reported. */
typedef struct {
    lp_graph_dataset *ds;
    lp_graph_splits *sp;
    lp_gnn_task task;
    lp_gnn_train_config cfg;
    int runs;
    /* recorded per (run, epoch): loss bits, reported or not */
    float loss[MAX_RUNS][MAX_EPOCHS + 1];
    double val[MAX_RUNS][MAX_EPOCHS + 1];
    unsigned char seen[MAX_RUNS][MAX_EPOCHS + 1];
    int n_reports, n_skipped;
    char first_skip[512];
    /* snapshots: copy the checkpoint file when an epoch in snap_at is reported */
    const char *ckpt_path;
    int snap_run[MAX_SNAPS], snap_epoch[MAX_SNAPS], n_snaps;
    char snap_path[MAX_SNAPS][256];
    const char *dir;
    lp_gnn_result res[MAX_RUNS];
} job;

static void copy_file(const char *from, const char *to)
{
    char *buf;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(from, 1 << 26, LP_MEM_SCRATCH, &buf, &n));
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    lp_free(buf);
}

static void on_epoch(const lp_gnn_epoch *e, void *user)
{
    job *j = user;
    if (e->run >= MAX_RUNS || e->epoch > MAX_EPOCHS) return;
    j->loss[e->run][e->epoch] = (float)e->loss;
    j->val[e->run][e->epoch] = e->val_metric;
    j->seen[e->run][e->epoch]++;
    j->n_reports++;
    if (e->skipped && j->n_skipped++ == 0 && e->skip_reason)
        snprintf(j->first_skip, sizeof j->first_skip, "%s", e->skip_reason);
    /* the checkpoint on disk now holds the state after the previous due epoch */
    for (int k = 0; j->ckpt_path && k < MAX_SNAPS; k++)
        if (j->snap_run[k] == e->run && j->snap_epoch[k] == e->epoch && lp_file_exists(j->ckpt_path)) {
            snprintf(j->snap_path[k], sizeof j->snap_path[k], "%s/snap%d", j->dir, k);
            copy_file(j->ckpt_path, j->snap_path[k]);
        }
}

static int job_setup(job *j, lp_gnn_task task, lp_gnn_kind kind)
{
    memset(j, 0, sizeof *j);
    const char *path = lp_test_shared("data/graphs/karate.edges.txt");
    if (!path) return 0;
    LP_ASSERT_OK(lp_graph_dataset_load(&j->ds, path, NULL));
    j->task = task;
    j->runs = 2;
    if (task == LP_GNN_TASK_NODE) LP_ASSERT_OK(lp_graph_splits_node(&j->sp, j->ds, j->runs, 101));
    else LP_ASSERT_OK(lp_graph_splits_link(&j->sp, j->ds->graph, j->runs, 0.16, 0.2, 101));
    j->cfg = lp_gnn_train_defaults();
    j->cfg.kind = kind;
    j->cfg.hidden = 16;
    j->cfg.link_dim = 16;
    j->cfg.epochs = 70;
    j->cfg.patience = 12; /* early stopping within 70 epochs for some runs */
    j->cfg.lr = 0.01f;
    return 1;
}

static void job_free(job *j)
{
    lp_graph_splits_free(j->sp);
    lp_graph_dataset_free(j->ds);
}

static lp_gnn_job job_desc(const job *j)
{
    lp_gnn_job d = {"bp", j->task, &j->cfg, j->runs, j->ds, j->sp};
    return d;
}

/* The CLI's loop: finished runs from the checkpoint, the rest trained (continuing a saved run). */
static lp_status job_run(job *j, lp_gnn_checkpoint *ck)
{
    int first = ck ? lp_gnn_checkpoint_next_run(ck) : 0;
    for (int r = 0; r < first; r++) LP_TRY(lp_gnn_checkpoint_result(ck, r, &j->res[r]));
    for (int r = first; r < j->runs; r++) {
        lp_gnn_train_config c = j->cfg;
        c.seed = j->cfg.seed + 3 * (uint64_t)r;
        c.ckpt = ck;
        lp_gnn_run_args a = {j->ds, j->task, j->task == LP_GNN_TASK_NODE ? &j->sp->node[r] : NULL,
                             j->task == LP_GNN_TASK_LINK ? &j->sp->link[r] : NULL, r, &c, on_epoch, j};
        lp_gnn_train_fn fn = j->task == LP_GNN_TASK_NODE ? lp_gnn_train_bp_node : lp_gnn_train_bp_link;
        LP_TRY(fn(&a, &j->res[r]));
        if (ck) LP_TRY(lp_gnn_checkpoint_end_run(ck, r, &j->res[r]));
    }
    return LP_OK;
}

static const char *tmpdir(void)
{
    static char d[64];
    snprintf(d, sizeof d, "/tmp/lp_krstate.XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void assert_same_results(const lp_gnn_result *a, const lp_gnn_result *b, int runs)
{
    for (int r = 0; r < runs; r++) {
        assert_memory_equal(&a[r].test, &b[r].test, sizeof(double));
        assert_memory_equal(&a[r].val, &b[r].val, sizeof(double));
        assert_memory_equal(&a[r].train, &b[r].train, sizeof(double));
        assert_int_equal(a[r].best_epoch, b[r].best_epoch);
        assert_int_equal(a[r].epochs, b[r].epochs);
        assert_int_equal(a[r].params, b[r].params);
    }
}

/* Every epoch `got` reported equals the reference bit for bit; epochs after the resume point all reported. */
static void assert_same_epochs(const job *ref, const job *got, int from_run, int from_epoch)
{
    for (int r = 0; r < ref->runs; r++)
        for (int e = 1; e <= MAX_EPOCHS; e++) {
            int after = r > from_run || (r == from_run && e > from_epoch);
            if (!got->seen[r][e]) {
                if (after && ref->seen[r][e]) fail_msg("run %d epoch %d: not reported after the resume", r, e);
                continue;
            }
            if (!after) fail_msg("run %d epoch %d: reported again after resuming at run %d epoch %d", r, e, from_run, from_epoch);
            if (!ref->seen[r][e]) fail_msg("run %d epoch %d: beyond the reference run", r, e);
            if (memcmp(&got->loss[r][e], &ref->loss[r][e], sizeof(float)))
                fail_msg("run %d epoch %d: loss %.9g, uninterrupted %.9g", r, e, got->loss[r][e], ref->loss[r][e]);
            if (memcmp(&got->val[r][e], &ref->val[r][e], sizeof(double)) && !(isnan(got->val[r][e]) && isnan(ref->val[r][e])))
                fail_msg("run %d epoch %d: val %.17g, uninterrupted %.17g", r, e, got->val[r][e], ref->val[r][e]);
        }
}

static void check_resume_exact(lp_gnn_task task, lp_gnn_kind kind, int every)
{
    job *ref = calloc(1, sizeof *ref), *sv = calloc(1, sizeof *sv), *re = calloc(1, sizeof *re);
    if (!job_setup(ref, task, kind)) {
        free(ref); free(sv); free(re);
        LP_SKIP("karate not found (set LEANPROP_SHARED)");
    }
    /* uninterrupted, no checkpoint */
    LP_ASSERT_OK(job_run(ref, NULL));
    /* the same with saves (snapshots taken along the way): saving changes nothing */
    assert_int_equal(job_setup(sv, task, kind), 1);
    const char *dir = tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/job.ckpt", dir);
    sv->ckpt_path = path;
    sv->dir = dir;
    int last0 = ref->res[0].epochs, last1 = ref->res[1].epochs;
    int at_run[MAX_SNAPS] = {0, 0, 0, 0, 1, 1, 1, 1};
    int at_epoch[MAX_SNAPS] = {2, every + 2, last0 / 2 + 1, last0, 1, 2 * every + 1, last1 - 1, last1};
    for (int k = 0; k < MAX_SNAPS; k++) {
        sv->snap_run[k] = at_run[k];
        sv->snap_epoch[k] = at_epoch[k];
    }
    lp_gnn_job d = job_desc(sv);
    lp_gnn_checkpoint *ck;
    LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, path, every, &d));
    LP_ASSERT_OK(job_run(sv, ck));
    double secs;
    int saves = lp_gnn_checkpoint_saves(ck, &secs);
    assert_true(saves >= (last0 + last1) / every);
    lp_gnn_checkpoint_free(ck);
    assert_same_epochs(ref, sv, 0, 0);
    assert_same_results(ref->res, sv->res, ref->runs);
    /* resume from each snapshot (and from the final checkpoint: nothing left to train) */
    for (int k = 0; k <= MAX_SNAPS; k++) {
        const char *from = k < MAX_SNAPS ? sv->snap_path[k] : path;
        if (!from[0]) continue; /* no checkpoint existed yet at that epoch */
        assert_int_equal(job_setup(re, task, kind), 1);
        lp_gnn_job dr = job_desc(re);
        char path2[300];
        snprintf(path2, sizeof path2, "%s/resumed.ckpt", dir);
        /* the first resumed job goes on saving; the others only read (saves cost an fsync each) */
        LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, k == 0 ? path2 : NULL, every, &dr));
        LP_ASSERT_OK(lp_gnn_checkpoint_resume(ck, from));
        int run = lp_gnn_checkpoint_next_run(ck), epoch = lp_gnn_checkpoint_next_epoch(ck);
        if (k < MAX_SNAPS) {
            /* saved after the last due epoch before the snapshot's */
            int due = ((at_epoch[k] - 1) / every) * every;
            if (due == 0 && at_run[k] == 1) assert_true(run == 1 && epoch == 0); /* end of run 0 */
            else assert_true(run == at_run[k] && epoch == due);
        } else {
            assert_int_equal(run, ref->runs);
        }
        assert_int_equal(lp_gnn_checkpoint_threads(ck), lp_threads_get());
        LP_ASSERT_OK(job_run(re, ck));
        lp_gnn_checkpoint_free(ck);
        assert_same_epochs(ref, re, run, epoch);
        assert_same_results(ref->res, re->res, ref->runs);
        job_free(re);
    }
    job_free(ref);
    job_free(sv);
    free(ref); free(sv); free(re);
    rm_dir(dir);
}

static void test_resume_exact_node_gcn(void **state) { (void)state; check_resume_exact(LP_GNN_TASK_NODE, LP_GNN_GCN, 3); }
static void test_resume_exact_node_sage(void **state) { (void)state; check_resume_exact(LP_GNN_TASK_NODE, LP_GNN_SAGE, 1); }
static void test_resume_exact_link_gcn(void **state) { (void)state; check_resume_exact(LP_GNN_TASK_LINK, LP_GNN_GCN, 4); }
static void test_resume_exact_node_gat(void **state) { (void)state; check_resume_exact(LP_GNN_TASK_NODE, LP_GNN_GAT, 5); }

/* A checkpoint made after run 0 epoch 10 (every 5) by a job with cfg; returns its path. */
static void make_checkpoint(job *j, const char *path)
{
    j->cfg.epochs = 10;
    lp_gnn_job d = job_desc(j);
    lp_gnn_checkpoint *ck;
    LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, path, 5, &d));
    lp_gnn_train_config c = j->cfg;
    c.ckpt = ck;
    lp_gnn_run_args a = {j->ds, j->task, &j->sp->node[0], NULL, 0, &c, NULL, NULL};
    LP_ASSERT_OK(lp_gnn_train_bp_node(&a, &j->res[0]));
    lp_gnn_checkpoint_free(ck);
}

static void expect_refused(job *j, const char *path, lp_status want, const char *needle)
{
    lp_gnn_job d = job_desc(j);
    lp_gnn_checkpoint *ck;
    LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, NULL, 5, &d));
    lp_status st = lp_gnn_checkpoint_resume(ck, path);
    if (st != want || !strstr(lp_error_message(), needle))
        fail_msg("resume %s: %s '%s', want %s mentioning '%s'", path, lp_status_name(st), lp_error_message(),
                 lp_status_name(want), needle);
    assert_int_equal(lp_gnn_checkpoint_next_run(ck), 0);
    assert_int_equal(lp_gnn_checkpoint_next_epoch(ck), 0);
    lp_gnn_checkpoint_free(ck);
}

static void test_other_job_and_corruption_refused(void **state)
{
    (void)state;
    job *j = calloc(1, sizeof *j);
    assert_int_equal(lp_gnn_method_resumable(lp_gnn_method_find("bp")), 1);
    assert_int_equal(lp_gnn_method_resumable(lp_gnn_method_find("sf")), 1);
    assert_int_equal(lp_gnn_method_resumable(lp_gnn_method_find("fl-ce")), 1);
    assert_int_equal(lp_gnn_method_resumable(lp_gnn_method_find("ff-la")), 1);
    assert_int_equal(lp_gnn_method_resumable(lp_gnn_method_find("sf-top2loss")), 0); /* synchronous: runs kept whole only */
    assert_int_equal(lp_gnn_method_skips_nonfinite(lp_gnn_method_find("bp")), 1);
    assert_int_equal(lp_gnn_method_skips_nonfinite(lp_gnn_method_find("sf")), 0);
    assert_int_equal(lp_gnn_method_resumable(NULL), 0);
    if (!job_setup(j, LP_GNN_TASK_NODE, LP_GNN_GCN)) { free(j); LP_SKIP("karate not found (set LEANPROP_SHARED)"); }
    const char *dir = tmpdir();
    char path[256], bad[300];
    snprintf(path, sizeof path, "%s/job.ckpt", dir);
    make_checkpoint(j, path);
    /* the same job resumes (run 0 after epoch 10) */
    lp_gnn_job d = job_desc(j);
    lp_gnn_checkpoint *ck;
    LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, NULL, 5, &d));
    LP_ASSERT_OK(lp_gnn_checkpoint_resume(ck, path));
    assert_int_equal(lp_gnn_checkpoint_next_epoch(ck), 10);
    assert_non_null(lp_gnn_checkpoint_state(ck, 0, NULL));
    assert_null(lp_gnn_checkpoint_state(ck, 1, NULL));
    assert_int_equal(lp_gnn_checkpoint_resume(ck, path), LP_ERR_INVALID_ARG); /* only once, before the runs */
    lp_gnn_checkpoint_free(ck);
    /* another job: each fingerprint field names itself */
    j->cfg.hidden = 32;
    expect_refused(j, path, LP_ERR_INVALID_ARG, "hidden is 16 there, 32 here");
    j->cfg.hidden = 16;
    j->cfg.lr = 0.02f;
    expect_refused(j, path, LP_ERR_INVALID_ARG, "lr");
    j->cfg.lr = 0.01f;
    j->cfg.on_nonfinite = LP_NONFINITE_SKIP; /* the policy may change on resume */
    LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, NULL, 5, &d));
    LP_ASSERT_OK(lp_gnn_checkpoint_resume(ck, path));
    lp_gnn_checkpoint_free(ck);
    j->cfg.on_nonfinite = LP_NONFINITE_STOP;
    lp_graph_splits *other;
    LP_ASSERT_OK(lp_graph_splits_node(&other, j->ds, j->runs, 102));
    lp_graph_splits *keep = j->sp;
    j->sp = other;
    expect_refused(j, path, LP_ERR_INVALID_ARG, "splits_crc32");
    j->sp = keep;
    lp_graph_splits_free(other);
    j->task = LP_GNN_TASK_LINK;
    expect_refused(j, path, LP_ERR_INVALID_ARG, "task is node there, link here");
    j->task = LP_GNN_TASK_NODE;
    /* no file; not a GNN job (a bare checkpoint) */
    snprintf(bad, sizeof bad, "%s/missing.ckpt", dir);
    expect_refused(j, bad, LP_ERR_NOT_FOUND, "missing.ckpt");
    snprintf(bad, sizeof bad, "%s/bare.ckpt", dir);
    lp_checkpoint_writer *w = lp_checkpoint_writer_new();
    LP_ASSERT_OK(lp_checkpoint_writer_add_i64(w, "gnn.run", 0));
    LP_ASSERT_OK(lp_checkpoint_writer_save(w, bad));
    lp_checkpoint_writer_free(w);
    expect_refused(j, bad, LP_ERR_FORMAT, "not a checkpoint of `leanprop gnn`");
    /* flipped bytes anywhere, truncation at any length: refused (CRC), never a wrong resume */
    char *orig, *buf;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 24, LP_MEM_SCRATCH, &orig, &n));
    buf = malloc(n);
    assert_non_null(buf);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
    lp_rng rng;
    lp_rng_seed(&rng, 7);
    for (int t = 0; t < 32; t++) {
        size_t at = t < 8 ? (size_t)t * 3 : (size_t)lp_rng_below(&rng, n);
        memcpy(buf, orig, n);
        buf[at] ^= (char)(1 + lp_rng_below(&rng, 255));
        LP_ASSERT_OK(lp_file_write_atomic(bad, buf, n));
        expect_refused(j, bad, LP_ERR_FORMAT, "bad.ckpt");
    }
    size_t cuts[] = {0, 1, 7, 8, 100, n / 2, n - 4, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        LP_ASSERT_OK(lp_file_write_atomic(bad, orig, cuts[k]));
        expect_refused(j, bad, LP_ERR_FORMAT, "bad.ckpt");
    }
    free(buf);
    lp_free(orig);
    job_free(j);
    free(j);
    rm_dir(dir);
}

static int count_temps(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp-'", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

/* A save that fails (full disk, injected in the header or the data) ends the run with
 * LP_ERR_IO naming the checkpoint; the previous checkpoint stays and resumes exactly; no temp
 * file is left; a stale temp file of a killed save is removed by the next save. */
static int g_fail_epoch;
static uint64_t g_fail_bytes;

static void arm_failure(const lp_gnn_epoch *e, void *user)
{
    on_epoch(e, user);
    if (e->epoch == g_fail_epoch) lp_fileio_fail_after_bytes(g_fail_bytes); /* the save of this epoch fails */
}

static void test_write_failure_keeps_previous(void **state)
{
    (void)state;
    job *ref = calloc(1, sizeof *ref), *j = calloc(1, sizeof *j);
    if (!job_setup(ref, LP_GNN_TASK_NODE, LP_GNN_GCN)) { free(ref); free(j); LP_SKIP("karate not found (set LEANPROP_SHARED)"); }
    ref->runs = 1;
    ref->cfg.patience = 1000;
    LP_ASSERT_OK(job_run(ref, NULL));
    const char *dir = tmpdir();
    char path[256], stale[300], other[300];
    snprintf(path, sizeof path, "%s/job.ckpt", dir);
    snprintf(stale, sizeof stale, "%s.tmp-AbC123", path);
    snprintf(other, sizeof other, "%s/other.ckpt.tmp-AbC123", dir);
    uint64_t offsets[] = {100, 3000};
    for (int k = 0; k < 2; k++) {
        unlink(path);
        LP_ASSERT_OK(lp_file_write_atomic(stale, "partial", 7));
        LP_ASSERT_OK(lp_file_write_atomic(other, "keep", 4));
        assert_int_equal(job_setup(j, LP_GNN_TASK_NODE, LP_GNN_GCN), 1);
        j->runs = 1;
        j->cfg.patience = 1000;
        lp_gnn_job d = job_desc(j);
        lp_gnn_checkpoint *ck;
        LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, path, 4, &d));
        g_fail_epoch = 12;
        g_fail_bytes = offsets[k];
        lp_gnn_train_config c = j->cfg;
        c.ckpt = ck;
        lp_gnn_run_args a = {j->ds, j->task, &j->sp->node[0], NULL, 0, &c, arm_failure, j};
        lp_status st = lp_gnn_train_bp_node(&a, &j->res[0]);
        lp_fileio_fail_after_bytes(0);
        if (st != LP_ERR_IO || !strstr(lp_error_message(), "saving the GNN checkpoint"))
            fail_msg("injected write failure: %s '%s'", lp_status_name(st), lp_error_message());
        lp_gnn_checkpoint_free(ck);
        assert_int_equal(count_temps(dir), 1); /* the stale one is gone, the failed save left none, other's stays */
        assert_true(lp_file_exists(other));
        job_free(j);
        /* the epoch-8 checkpoint survived and continues exactly */
        assert_int_equal(job_setup(j, LP_GNN_TASK_NODE, LP_GNN_GCN), 1);
        j->runs = 1;
        j->cfg.patience = 1000;
        d = job_desc(j);
        LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, path, 4, &d));
        LP_ASSERT_OK(lp_gnn_checkpoint_resume(ck, path));
        assert_int_equal(lp_gnn_checkpoint_next_run(ck), 0);
        assert_int_equal(lp_gnn_checkpoint_next_epoch(ck), 8);
        LP_ASSERT_OK(job_run(j, ck));
        lp_gnn_checkpoint_free(ck);
        assert_same_epochs(ref, j, 0, 8);
        assert_same_results(ref->res, j->res, 1);
        job_free(j);
    }
    job_free(ref);
    free(ref);
    free(j);
    rm_dir(dir);
}

/* A diverging run (lr 1e30: the weights reach ~1e30 after one step, the products overflow):
 * STOP ends it with run, epoch and the tensor; SKIP drops those updates and finishes. */
static void check_nonfinite(lp_gnn_task task)
{
    job *j = calloc(1, sizeof *j);
    if (!job_setup(j, task, LP_GNN_GCN)) { free(j); LP_SKIP("karate not found (set LEANPROP_SHARED)"); }
    j->cfg.lr = 1e30f;
    j->cfg.epochs = 12;
    lp_gnn_train_config c = j->cfg;
    lp_gnn_run_args a = {j->ds, task, task == LP_GNN_TASK_NODE ? &j->sp->node[0] : NULL,
                         task == LP_GNN_TASK_LINK ? &j->sp->link[0] : NULL, 0, &c, on_epoch, j};
    lp_gnn_train_fn fn = task == LP_GNN_TASK_NODE ? lp_gnn_train_bp_node : lp_gnn_train_bp_link;
    lp_status st = fn(&a, &j->res[0]);
    const char *msg = lp_error_message();
    print_message("stop: %s\n", msg);
    if (st != LP_ERR_NUMERIC || strncmp(msg, "run 0 epoch ", 12) || !strstr(msg, "non-finite value") ||
        !(strstr(msg, "in loss") || strstr(msg, "in gradients of layers.") || strstr(msg, "in activations of the")))
        fail_msg("stop: %s '%s'", lp_status_name(st), msg);
    int stop_epoch = atoi(msg + 12);
    assert_true(stop_epoch >= 2 && stop_epoch <= 12);
    assert_int_equal(j->n_reports, stop_epoch - 1); /* the bad epoch is not reported as trained */
    job_free(j);
    assert_int_equal(job_setup(j, task, LP_GNN_GCN), 1);
    j->cfg.lr = 1e30f;
    j->cfg.epochs = 12;
    j->cfg.on_nonfinite = LP_NONFINITE_SKIP;
    c = j->cfg;
    a.data = j->ds;
    a.node = task == LP_GNN_TASK_NODE ? &j->sp->node[0] : NULL;
    a.link = task == LP_GNN_TASK_LINK ? &j->sp->link[0] : NULL;
    a.user = j;
    LP_ASSERT_OK(fn(&a, &j->res[0]));
    print_message("skip: %d of %d epochs skipped, first: %s\n", j->res[0].skipped_epochs, j->res[0].epochs, j->first_skip);
    assert_int_equal(j->res[0].epochs, 12);
    assert_true(j->res[0].skipped_epochs >= 1 && j->res[0].skipped_epochs <= 11);
    assert_int_equal(j->n_skipped, j->res[0].skipped_epochs);
    char want[32];
    snprintf(want, sizeof want, "run 0 epoch %d: ", stop_epoch);
    assert_non_null(strstr(j->first_skip, want)); /* the same first bad epoch, now skipped */
    job_free(j);
    free(j);
}

static void test_nonfinite_node(void **state) { (void)state; check_nonfinite(LP_GNN_TASK_NODE); }
static void test_nonfinite_link(void **state) { (void)state; check_nonfinite(LP_GNN_TASK_LINK); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exact_node_gcn),
        cmocka_unit_test(test_resume_exact_node_sage),
        cmocka_unit_test(test_resume_exact_link_gcn),
        cmocka_unit_test(test_resume_exact_node_gat),
        cmocka_unit_test(test_other_job_and_corruption_refused),
        cmocka_unit_test(test_write_failure_keeps_previous),
        cmocka_unit_test(test_nonfinite_node),
        cmocka_unit_test(test_nonfinite_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
