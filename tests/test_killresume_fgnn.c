/* Mid-run checkpoints of the layer-wise forward methods, in process (test_killresume.c kills
 * the CLI): a job resumed from the checkpoint of any cumulative epoch (inside a layer, at a
 * layer boundary, after early stopping, at the start of the next run) reproduces the
 * uninterrupted job's per-epoch losses and validation scores and its results bit for bit
 * (SF, FF-LA, FF-VN node classification, FL-CE and FL-FF link prediction); saving changes nothing; a state
 * whose layer epochs do not add up to the job's epoch is refused. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"
#include "leanprop/forwardgnn.h"
#include "leanprop/gnn.h"
#include "leanprop/graph.h"
#include "leanprop/threads.h"

#define MAX_EPOCHS 200
#define MAX_RUNS 2
#define MAX_SNAPS 8

typedef struct {
    const char *method;
    lp_graph_dataset *ds;
    lp_graph_splits *sp;
    lp_gnn_task task;
    lp_gnn_train_config cfg;
    int runs;
    float loss[MAX_RUNS][MAX_EPOCHS + 1];
    double val[MAX_RUNS][MAX_EPOCHS + 1];
    unsigned char seen[MAX_RUNS][MAX_EPOCHS + 1];
    const char *ckpt_path;
    int snap_run[MAX_SNAPS], snap_epoch[MAX_SNAPS];
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
    /* the checkpoint on disk now holds the state after the previous due epoch */
    for (int k = 0; j->ckpt_path && k < MAX_SNAPS; k++)
        if (j->snap_run[k] == e->run && j->snap_epoch[k] == e->epoch && lp_file_exists(j->ckpt_path)) {
            snprintf(j->snap_path[k], sizeof j->snap_path[k], "%s/snap%d", j->dir, k);
            copy_file(j->ckpt_path, j->snap_path[k]);
        }
}

static int job_setup(job *j, const char *method)
{
    memset(j, 0, sizeof *j);
    const char *path = lp_test_shared("data/graphs/karate.edges.txt");
    if (!path) return 0;
    LP_ASSERT_OK(lp_graph_dataset_load(&j->ds, path, NULL));
    j->method = method;
    j->task = lp_gnn_method_find(method)->node ? LP_GNN_TASK_NODE : LP_GNN_TASK_LINK;
    j->runs = 2;
    if (j->task == LP_GNN_TASK_NODE) LP_ASSERT_OK(lp_graph_splits_node(&j->sp, j->ds, j->runs, 101));
    else LP_ASSERT_OK(lp_graph_splits_link(&j->sp, j->ds->graph, j->runs, 0.16, 0.2, 101));
    j->cfg = lp_gnn_train_defaults();
    j->cfg.n_layers = 3;
    j->cfg.hidden = 16;
    j->cfg.epochs = 30;
    j->cfg.patience = 6; /* some layers stop early */
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
    lp_gnn_job d = {j->method, j->task, &j->cfg, j->runs, j->ds, j->sp};
    return d;
}

static lp_status job_run(job *j, lp_gnn_checkpoint *ck)
{
    const lp_gnn_method *m = lp_gnn_method_find(j->method);
    int first = ck ? lp_gnn_checkpoint_next_run(ck) : 0;
    for (int r = 0; r < first; r++) LP_TRY(lp_gnn_checkpoint_result(ck, r, &j->res[r]));
    for (int r = first; r < j->runs; r++) {
        lp_gnn_train_config c = j->cfg;
        c.seed = j->cfg.seed + 3 * (uint64_t)r;
        c.ckpt = ck;
        lp_gnn_run_args a = {j->ds, j->task, j->task == LP_GNN_TASK_NODE ? &j->sp->node[r] : NULL,
                             j->task == LP_GNN_TASK_LINK ? &j->sp->link[r] : NULL, r, &c, on_epoch, j};
        LP_TRY((j->task == LP_GNN_TASK_NODE ? m->node : m->link)(&a, &j->res[r]));
        if (ck) LP_TRY(lp_gnn_checkpoint_end_run(ck, r, &j->res[r]));
    }
    return LP_OK;
}

static const char *tmpdir(void)
{
    static char d[64];
    snprintf(d, sizeof d, "/tmp/lp_krfgnn.XXXXXX");
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

static void check_resume_exact(const char *method, int every)
{
    job *ref = calloc(1, sizeof *ref), *sv = calloc(1, sizeof *sv), *re = calloc(1, sizeof *re);
    if (!job_setup(ref, method)) {
        free(ref); free(sv); free(re);
        LP_SKIP("karate not found (set LEANPROP_SHARED)");
    }
    LP_ASSERT_OK(job_run(ref, NULL));
    int last0 = ref->res[0].epochs, last1 = ref->res[1].epochs;
    assert_true(last0 > 2 * every + 2 && last1 > 2 * every + 2);
    assert_true(last0 < 3 * ref->cfg.epochs || last1 < 3 * ref->cfg.epochs); /* early stopping ran somewhere */
    assert_int_equal(job_setup(sv, method), 1);
    const char *dir = tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/job.ckpt", dir);
    sv->ckpt_path = path;
    sv->dir = dir;
    /* inside layer 1, across layers, the last epochs, the next run */
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
    assert_true(lp_gnn_checkpoint_saves(ck, NULL) >= (last0 + last1) / every);
    lp_gnn_checkpoint_free(ck);
    assert_same_epochs(ref, sv, 0, 0);
    assert_same_results(ref->res, sv->res, ref->runs);
    for (int k = 0; k <= MAX_SNAPS; k++) {
        const char *from = k < MAX_SNAPS ? sv->snap_path[k] : path;
        if (!from[0]) continue;
        assert_int_equal(job_setup(re, method), 1);
        lp_gnn_job dr = job_desc(re);
        char path2[300];
        snprintf(path2, sizeof path2, "%s/resumed.ckpt", dir);
        LP_ASSERT_OK(lp_gnn_checkpoint_new(&ck, k == 1 ? path2 : NULL, every, &dr));
        LP_ASSERT_OK(lp_gnn_checkpoint_resume(ck, from));
        int run = lp_gnn_checkpoint_next_run(ck), epoch = lp_gnn_checkpoint_next_epoch(ck);
        if (k < MAX_SNAPS) {
            int due = ((at_epoch[k] - 1) / every) * every;
            if (due == 0 && at_run[k] == 1) assert_true(run == 1 && epoch == 0);
            else assert_true(run == at_run[k] && epoch == due);
        } else {
            assert_int_equal(run, ref->runs);
        }
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

static void test_resume_exact_sf(void **state) { (void)state; check_resume_exact("sf", 4); }
static void test_resume_exact_sf_every1(void **state) { (void)state; check_resume_exact("sf", 1); }
static void test_resume_exact_fl_ce(void **state) { (void)state; check_resume_exact("fl-ce", 5); }
static void test_resume_exact_fl_ff(void **state) { (void)state; check_resume_exact("fl-ff", 3); }
static void test_resume_exact_ff_la(void **state) { (void)state; check_resume_exact("ff-la", 4); }
static void test_resume_exact_ff_vn(void **state) { (void)state; check_resume_exact("ff-vn", 5); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exact_sf),
        cmocka_unit_test(test_resume_exact_sf_every1),
        cmocka_unit_test(test_resume_exact_fl_ce),
        cmocka_unit_test(test_resume_exact_fl_ff),
        cmocka_unit_test(test_resume_exact_ff_la),
        cmocka_unit_test(test_resume_exact_ff_vn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
