/* Kill tests (issue 7): real `leanprop gnn` and `leanprop finetune` processes are killed with
 * SIGKILL at random moments, some while a checkpoint is being written, many times in a row.
 * After every kill the last checkpoint must load (lp_checkpoint_open verifies both CRCs) and
 * must never be behind the one before; a temp file left by a killed save is never the
 * checkpoint. The job is then resumed (or restarted when no checkpoint exists yet), and in the
 * end every per-step line any attempt logged must equal the uninterrupted run's line for that
 * step (loss and metrics compared as the logged strings), every step must have been logged,
 * and the final results must equal the uninterrupted run's exactly (same seed, same threads).
 *
 * The binary is $LEANPROP_BIN, else ../leanprop beside this test's directory (build/leanprop
 * for build/tests/, build-asan/leanprop under ASan). Kill moments come from a seeded generator:
 * LEANPROP_KILL_SEED=N repeats a sequence (the seed is printed), LEANPROP_KILLS=N sets the kills
 * per job (default 12 for gnn, 8 for finetune); longer jobs for longer campaigns:
 * LEANPROP_KILL_EPOCHS=N (gnn epochs per run, default 30; patience N/5) and LEANPROP_KILL_STEPS=N
 * (finetune steps, default 20), LEANPROP_KILL_GRAPH=path under the shared folder (default
 * data/graphs/karate.edges.txt), LEANPROP_KILL_TASK=node|link; LEANPROP_KILL_KEEP=1 keeps the job
 * directories. The CLI's own failure paths (non-finite stop/skip, resuming
 * another job or a corrupt checkpoint) are checked here too. */
#include "util/test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"

#define MAX_ARGS 64

static char g_bin[4096];

static const char *leanprop_bin(void)
{
    const char *env = getenv("LEANPROP_BIN");
    if (env && *env) {
        snprintf(g_bin, sizeof g_bin, "%s", env);
    } else {
        char self[4000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return NULL;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash) return NULL;
        *slash = '\0';
        snprintf(g_bin, sizeof g_bin, "%s/../leanprop", self);
    }
    return access(g_bin, X_OK) == 0 ? g_bin : NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ------------------------------------------------------------ processes */

typedef struct {
    const char *argv[MAX_ARGS];
    int argc;
} cmdline;

static void cl_add(cmdline *c, const char *a)
{
    assert_true(c->argc < MAX_ARGS - 1);
    c->argv[c->argc++] = a;
    c->argv[c->argc] = NULL;
}

static pid_t spawn(const cmdline *c, const char *out_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("OMP_WAIT_POLICY", "passive", 1); /* no re-exec in main */
        execv(c->argv[0], (char *const *)c->argv);
        _exit(127);
    }
    return pid;
}

static void show_output(const char *out_path)
{
    char *text;
    size_t n;
    if (lp_file_read_all(out_path, 1 << 20, LP_MEM_SCRATCH, &text, &n) == LP_OK) {
        print_message("---- %s (last 3000 bytes) ----\n%s\n----\n", out_path, n > 3000 ? text + n - 3000 : text);
        lp_free(text);
    }
}

static void run_ok(const cmdline *c, const char *out_path)
{
    pid_t pid = spawn(c, out_path);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        show_output(out_path);
        fail_msg("%s %s: exit status %d", c->argv[0], c->argv[1], status);
    }
}

/* Is `name` a temp file "<base>.tmp-XXXXXX" of the atomic writer (base NULL: of any file)? */
static int is_temp(const char *name, const char *base)
{
    const char *t = strstr(name, ".tmp-");
    size_t nb = base ? strlen(base) : 0;
    return t && (!base || ((size_t)(t - name) == nb && !strncmp(name, base, nb)));
}

static int has_temp(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) found = is_temp(e->d_name, base);
    closedir(d);
    return found;
}

#define MAX_KNOWN 64
typedef struct {
    const char *dir[2];     /* directories whose new temp files mean "a save is in progress" */
    const char *base[2];
    char known[MAX_KNOWN][256]; /* temp files that were there before the attempt (left by earlier kills) */
    int n_known;
} save_watch;

static void watch_reset(save_watch *w)
{
    w->n_known = 0;
    for (int i = 0; i < 2; i++) {
        DIR *d = w->dir[i] ? opendir(w->dir[i]) : NULL;
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (is_temp(e->d_name, w->base[i]) && w->n_known < MAX_KNOWN)
                snprintf(w->known[w->n_known++], 256, "%s", e->d_name);
        if (d) closedir(d);
    }
}

/* A temp file that was not there when the attempt started. */
static int saving(const save_watch *w)
{
    int found = 0;
    for (int i = 0; i < 2 && !found; i++) {
        DIR *d = w->dir[i] ? opendir(w->dir[i]) : NULL;
        struct dirent *e;
        while (d && !found && (e = readdir(d))) {
            if (!is_temp(e->d_name, w->base[i])) continue;
            found = 1;
            for (int k = 0; k < w->n_known && found; k++) found = strcmp(w->known[k], e->d_name) != 0;
        }
        if (d) closedir(d);
    }
    return found;
}

/* Identity of the checkpoint file: each save renames a new file over it. */
static int file_id(const char *path, struct stat *out)
{
    return stat(path, out) == 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* When to kill: after `saves` completed saves of the checkpoint (0: from the start), then
 * KILL_AFTER_DELAY: `delay` seconds later; KILL_AT_SAVE_END: at once (the process is past the
 * rename: cleaning up, logging or training); KILL_IN_SAVE: as soon as a new temp file shows a
 * save in progress. */
enum { KILL_AFTER_DELAY, KILL_AT_SAVE_END, KILL_IN_SAVE };

/* Start the job and SIGKILL it at that moment (giving up waiting after 30 s). Returns 1 when
 * killed, 0 when it finished first (then its exit status must be 0). */
static int run_and_kill(const cmdline *c, const char *out_path, const char *ckpt, int saves, int mode, double delay,
                        save_watch *w)
{
    watch_reset(w);
    struct stat last, cur;
    int have = file_id(ckpt, &last), seen = 0;
    pid_t pid = spawn(c, out_path);
    double t0 = now_s(), t_saves = saves == 0 ? t0 : -1;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                show_output(out_path);
                fail_msg("%s %s ended by itself with status %d", c->argv[0], c->argv[1], status);
            }
            return 0;
        }
        double t = now_s();
        if (t_saves < 0 && file_id(ckpt, &cur) && (!have || !same_file(&cur, &last))) {
            last = cur;
            have = 1;
            if (++seen >= saves) t_saves = t;
        }
        if (t - t0 > 30.0) break;
        if (t_saves >= 0) {
            if (mode == KILL_AT_SAVE_END) break;
            if (mode == KILL_AFTER_DELAY && t - t_saves >= delay) break;
            if (mode == KILL_IN_SAVE && saving(w)) break;
        }
        sleep_s(50e-6);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* ------------------------------------------------------------ logs */

/* The raw text of "key": value in a JSON line (up to ',' or '}'), or "" when absent. */
static void field(const char *line, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    size_t n = strcspn(p, ",}");
    if (n >= size) n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

typedef struct {
    char key[64];           /* "run/step" */
    char vals[256];         /* the compared fields' text */
} log_row;

typedef struct {
    log_row *rows;
    int n;
} log_rows;

/* Rows of a metrics log with a "loss" field; key_fields name the row, cmp_fields are compared. */
static log_rows read_log(const char *path, const char *const *key_fields, const char *const *cmp_fields)
{
    log_rows L = {0};
    char *text;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 26, LP_MEM_SCRATCH, &text, &n));
    int cap = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!*line) continue;
        cJSON *o = cJSON_Parse(line);
        if (!o) fail_msg("%s: a line that is not JSON (torn write?): %.200s", path, line);
        cJSON_Delete(o);
        char v[64];
        field(line, "loss", v, sizeof v);
        if (!v[0]) continue;
        if (L.n == cap) {
            cap = cap ? 2 * cap : 256;
            L.rows = realloc(L.rows, (size_t)cap * sizeof *L.rows);
            assert_non_null(L.rows);
        }
        log_row *r = &L.rows[L.n++];
        r->key[0] = r->vals[0] = '\0';
        for (int k = 0; key_fields[k]; k++) {
            field(line, key_fields[k], v, sizeof v);
            size_t m = strlen(r->key);
            snprintf(r->key + m, sizeof r->key - m, "%s/", v);
        }
        for (int k = 0; cmp_fields[k]; k++) {
            field(line, cmp_fields[k], v, sizeof v);
            size_t m = strlen(r->vals);
            snprintf(r->vals + m, sizeof r->vals - m, "%s=%s ", cmp_fields[k], v);
        }
    }
    lp_free(text);
    return L;
}

/* Every row of `got` equals the reference row of its key; every reference key occurs once. */
static int compare_logs(const log_rows *ref, const log_rows *got)
{
    char *hit = calloc((size_t)ref->n + 1, 1);
    for (int i = 0; i < got->n; i++) {
        int j = 0;
        while (j < ref->n && strcmp(ref->rows[j].key, got->rows[i].key)) j++;
        if (j == ref->n) fail_msg("logged step %s is not in the uninterrupted run", got->rows[i].key);
        if (strcmp(ref->rows[j].vals, got->rows[i].vals))
            fail_msg("step %s: %s, uninterrupted: %s", got->rows[i].key, got->rows[i].vals, ref->rows[j].vals);
        /* a resume cuts the log back to its checkpoint: no step may be logged twice */
        if (hit[j]) fail_msg("step %s is logged twice (a resume must cut the log back to the checkpoint)", got->rows[i].key);
        hit[j] = 1;
    }
    for (int j = 0; j < ref->n; j++)
        if (!hit[j]) fail_msg("step %s of the uninterrupted run was never logged", ref->rows[j].key);
    free(hit);
    return got->n;
}

/* ------------------------------------------------------------ the kill loop */

typedef struct {
    const char *name;          /* "gnn" / "finetune" */
    cmdline fresh, resume;     /* start afresh / continue from the checkpoint */
    const char *ckpt;          /* the checkpoint file to verify */
    const char *progress[3];   /* i64 scalars that never go back (lexicographic) */
    save_watch watch;
    int max_saves;             /* an attempt is killed after 1..max_saves saves (the first at once) */
    int kills;
} kill_job;

typedef struct {
    int kills, during_save, before_first_ckpt, finished_early, resumes, loads;
    char trail[1024];          /* where each kill left the checkpoint */
} kill_stats;

static lp_rng g_rng;

static void kill_loop(kill_job *j, const char *out_path, kill_stats *s)
{
    int64_t last[3] = {-1, -1, -1};
    for (int k = 0; k < j->kills; k++) {
        int have = lp_file_exists(j->ckpt);
        const cmdline *c = have ? &j->resume : &j->fresh;
        s->resumes += have;
        /* the first kill comes at once (no checkpoint yet); then after 1..max_saves saves, cycling
         * through: a random delay, right after a save, in the middle of a save */
        int mode = k == 0 ? KILL_AFTER_DELAY : (k - 1) % 3;
        int saves = k == 0 ? 0 : 1 + (int)lp_rng_below(&g_rng, (uint64_t)j->max_saves);
        double delay = k == 0 ? 0.002 * lp_rng_uniform_double(&g_rng) : 0.02 * lp_rng_uniform_double(&g_rng);
        if (!run_and_kill(c, out_path, j->ckpt, saves, mode, delay, &j->watch)) {
            s->finished_early++;
            break;
        }
        s->kills++;
        int in_save = saving(&j->watch); /* the killed save's temp file is still there */
        s->during_save += in_save;
        size_t tl = strlen(s->trail);
        if (!lp_file_exists(j->ckpt)) {
            s->before_first_ckpt++;
            snprintf(s->trail + tl, sizeof s->trail - tl, " -%s", in_save ? "*" : "");
            continue;
        }
        lp_checkpoint *ck;
        lp_status st = lp_checkpoint_open(&ck, j->ckpt);
        if (st != LP_OK) fail_msg("%s: kill %d: the checkpoint does not load: %s", j->name, k + 1, lp_error_message());
        s->loads++;
        int64_t v[3] = {0, 0, 0};
        for (int i = 0; i < 3 && j->progress[i]; i++) LP_ASSERT_OK(lp_checkpoint_get_i64(ck, j->progress[i], &v[i]));
        lp_checkpoint_close(ck);
        if (j->progress[1]) snprintf(s->trail + tl, sizeof s->trail - tl, " %lld/%lld%s", (long long)v[0], (long long)v[1], in_save ? "*" : "");
        else snprintf(s->trail + tl, sizeof s->trail - tl, " %lld%s", (long long)v[0], in_save ? "*" : "");
        int cmp = 0;
        for (int i = 0; i < 3 && j->progress[i] && !cmp; i++) cmp = v[i] < last[i] ? -1 : v[i] > last[i];
        if (cmp < 0) fail_msg("%s: kill %d: the checkpoint went back (%s %lld)", j->name, k + 1, j->progress[0], (long long)v[0]);
        memcpy(last, v, sizeof last);
    }
    /* and to the end */
    run_ok(lp_file_exists(j->ckpt) ? &j->resume : &j->fresh, out_path);
    s->resumes += 1;
    print_message("%s: %d kills (%d during a save, %d before the first checkpoint), %d checkpoints loaded after a kill, "
                  "%d resumes, %s\n", j->name, s->kills, s->during_save, s->before_first_ckpt, s->loads, s->resumes,
                  s->finished_early ? "the job once finished before its kill" : "every attempt killed");
    print_message("%s: checkpoint after each kill (%s; * = killed during a save, - = none yet):%s\n", j->name,
                  j->progress[1] ? "run/epoch" : "step", s->trail);
}

static unsigned long kill_seed(void)
{
    const char *e = getenv("LEANPROP_KILL_SEED");
    return e && *e ? strtoul(e, NULL, 10) : 20240607UL;
}

static int env_int(const char *name, int def)
{
    const char *e = getenv(name);
    int n = e && *e ? atoi(e) : def;
    return n > 0 ? n : def;
}

static int kill_count(int def)
{
    const char *e = getenv("LEANPROP_KILLS");
    int n = e && *e ? atoi(e) : def;
    return n > 0 ? n : def;
}

static const char *tmpdir(void)
{
    static char d[2][64];
    static int k;
    char *p = d[k++ & 1];
    snprintf(p, 64, "/tmp/lp_kill.XXXXXX");
    assert_non_null(mkdtemp(p));
    return p;
}

static void rm_dir(const char *dir)
{
    const char *keep = getenv("LEANPROP_KILL_KEEP");
    if (keep && *keep && strcmp(keep, "0")) {
        print_message("kept %s (LEANPROP_KILL_KEEP)\n", dir);
        return;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ gnn */

static void compare_results(const char *ref_path, const char *got_path)
{
    char *a, *b;
    size_t na, nb;
    LP_ASSERT_OK(lp_file_read_all(ref_path, 1 << 22, LP_MEM_SCRATCH, &a, &na));
    LP_ASSERT_OK(lp_file_read_all(got_path, 1 << 22, LP_MEM_SCRATCH, &b, &nb));
    cJSON *ra = cJSON_Parse(a), *rb = cJSON_Parse(b);
    lp_free(a);
    lp_free(b);
    assert_non_null(ra);
    assert_non_null(rb);
    const cJSON *xa = cJSON_GetObjectItem(ra, "runs"), *xb = cJSON_GetObjectItem(rb, "runs");
    assert_int_equal(cJSON_GetArraySize(xa), cJSON_GetArraySize(xb));
    const char *keys[] = {"test", "val", "train", "best_epoch", "epochs", "params", "seed"};
    for (int r = 0; r < cJSON_GetArraySize(xa); r++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            double va = cJSON_GetObjectItem(cJSON_GetArrayItem(xa, r), keys[k])->valuedouble;
            double vb = cJSON_GetObjectItem(cJSON_GetArrayItem(xb, r), keys[k])->valuedouble;
            if (va != vb) fail_msg("run %d %s: %.17g after kills, %.17g uninterrupted", r, keys[k], vb, va);
        }
    cJSON_Delete(ra);
    cJSON_Delete(rb);
}

/* Kill a 3-run job on karate again and again; its log and results equal the uninterrupted job's.
 * method_args: extra flags (NULL-terminated) selecting the method; def_*: the default epochs and kills. */
static void check_kill_gnn(const char *name, const char *const *method_args, int def_epochs, int def_kills)
{
    const char *bin = leanprop_bin();
    if (!bin) fail_msg("no leanprop binary (set LEANPROP_BIN or build the CLI: make cli)");
    const char *graph = getenv("LEANPROP_KILL_GRAPH"), *task = getenv("LEANPROP_KILL_TASK");
    const char *karate = lp_test_shared(graph && *graph ? graph : "data/graphs/karate.edges.txt");
    if (!karate) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    char kar[1024];
    snprintf(kar, sizeof kar, "%s", karate);
    const char *dir = tmpdir();
    char ck[300], log[300], ref_log[300], ref_out[300], out[300], res[300];
    snprintf(ck, sizeof ck, "%s/job.ckpt", dir);
    snprintf(log, sizeof log, "%s/log.jsonl", dir);
    snprintf(ref_log, sizeof ref_log, "%s/ref.jsonl", dir);
    snprintf(ref_out, sizeof ref_out, "%s/ref.json", dir);
    snprintf(res, sizeof res, "%s/res.json", dir);
    snprintf(out, sizeof out, "%s/output.txt", dir);
    /* 3 runs x up to 30 epochs (early stopping may end one sooner), a save after every epoch */
    int epochs = env_int("LEANPROP_KILL_EPOCHS", def_epochs);
    char ep[16], pat[16];
    snprintf(ep, sizeof ep, "%d", epochs);
    snprintf(pat, sizeof pat, "%d", epochs / 5 > 0 ? epochs / 5 : 1);
    const char *common[] = {bin, "gnn", "--dataset", kar, "--hidden", "16", "--epochs", ep, "--patience", pat, "--lr", "0.01",
                            "--runs", "3", "--threads", "2", "--quiet", "--task", task && *task ? task : "node", NULL};
    kill_job j;
    memset(&j, 0, sizeof j);
    cmdline ref = {0};
    for (int i = 0; common[i]; i++) {
        cl_add(&ref, common[i]);
        cl_add(&j.fresh, common[i]);
        cl_add(&j.resume, common[i]);
    }
    for (int i = 0; method_args && method_args[i]; i++) {
        cl_add(&ref, method_args[i]);
        cl_add(&j.fresh, method_args[i]);
        cl_add(&j.resume, method_args[i]);
    }
    cl_add(&ref, "--log"); cl_add(&ref, ref_log); cl_add(&ref, "--out"); cl_add(&ref, ref_out);
    const char *save[] = {"--checkpoint", ck, "--checkpoint-every", "1", "--log", log, "--out", res, NULL};
    for (int i = 0; save[i]; i++) {
        cl_add(&j.fresh, save[i]);
        cl_add(&j.resume, save[i]);
    }
    cl_add(&j.resume, "--resume");
    cl_add(&j.resume, ck);
    run_ok(&ref, out);
    j.name = name;
    j.ckpt = ck;
    j.progress[0] = "gnn.run";
    j.progress[1] = "gnn.epoch";
    j.watch.dir[0] = dir;
    j.watch.base[0] = "job.ckpt";
    j.max_saves = 6;
    j.kills = kill_count(def_kills);
    kill_stats s = {0};
    kill_loop(&j, out, &s);
    assert_true(s.kills >= 1);
    const char *keys[] = {"run", "step", NULL}, *cmp[] = {"loss", "train_metric", "val_metric", NULL};
    log_rows a = read_log(ref_log, keys, cmp), b = read_log(log, keys, cmp);
    assert_true(a.n >= 3 * (epochs / 3)); /* 3 runs of at least a third of their epochs */
    int n = compare_logs(&a, &b);
    print_message("%s: %d logged epochs (%d in the uninterrupted run) equal to the uninterrupted run's losses and metrics\n",
                  name, n, a.n);
    free(a.rows);
    free(b.rows);
    compare_results(ref_out, res);
    if (has_temp(dir, "job.ckpt")) fail_msg("a temp file of the checkpoint is left in %s after the job finished", dir);
    rm_dir(dir);
}

static void test_kill_gnn(void **state)
{
    (void)state;
    check_kill_gnn("gnn", NULL, 30, 12);
}

/* SF, layer-wise: kills land inside a layer, at layer boundaries and between runs (the saved
 * epoch counts across layers); resumes rebuild the finished layers and continue the current one. */
static void test_kill_gnn_sf(void **state)
{
    (void)state;
    const char *task = getenv("LEANPROP_KILL_TASK");
    if (task && *task && strcmp(task, "node")) LP_SKIP("sf is a node method (LEANPROP_KILL_TASK=%s)", task);
    const char *sf[] = {"--method", "sf", "--layers", "2", NULL};
    check_kill_gnn("gnn sf", sf, 15, 8);
}

/* ------------------------------------------------------------ finetune */

static void test_kill_finetune(void **state)
{
    (void)state;
    const char *bin = leanprop_bin();
    if (!bin) fail_msg("no leanprop binary (set LEANPROP_BIN or build the CLI: make cli)");
    const char *model = lp_test_shared("data/models/stories260K/stories260K.bin");
    const char *tok = lp_test_shared("data/models/stories260K/tok512.bin");
    const char *text = lp_test_shared("data/text/moby_dick.txt");
    if (!model || !tok || !text) LP_SKIP("stories260K or moby_dick.txt not found (set LEANPROP_SHARED)");
    char m[1024], t[1024];
    snprintf(m, sizeof m, "%s", model);
    snprintf(t, sizeof t, "%s", tok);
    const char *dir = tmpdir();
    char slice[300], outdir[300], state_dir[300], last_dir[300], ck[400], log[300], ref_log[300], out[300];
    snprintf(slice, sizeof slice, "%s/moby.txt", dir);
    snprintf(outdir, sizeof outdir, "%s/run", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", outdir);
    snprintf(last_dir, sizeof last_dir, "%s/last", outdir);
    snprintf(ck, sizeof ck, "%s/trainer_state.safetensors", state_dir);
    snprintf(log, sizeof log, "%s/log.jsonl", dir);
    snprintf(ref_log, sizeof ref_log, "%s/ref.jsonl", dir);
    snprintf(out, sizeof out, "%s/output.txt", dir);
    /* a 24 KB slice of Moby-Dick from chapter 1 */
    char *all;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(text, 1 << 22, LP_MEM_SCRATCH, &all, &n));
    LP_ASSERT_OK(lp_file_write_atomic(slice, all, n < 24000 ? n : 24000));
    lp_free(all);
    /* LoRA with dropout (its masks must regenerate exactly), 20 steps, a checkpoint after each */
    int steps = env_int("LEANPROP_KILL_STEPS", 20);
    char st[16];
    snprintf(st, sizeof st, "%d", steps);
    const char *common[] = {bin, "finetune", "--model", m, "--tokenizer", t, "--data", slice, "--method", "lora",
                            "--steps", st, "--batch", "4", "--seq", "64", "--lr", "1e-3", "--seed", "7",
                            "--val-fraction", "0", "--eval-every", "1", "--threads", "2", "--quiet", NULL};
    kill_job j;
    memset(&j, 0, sizeof j);
    cmdline ref = {0};
    for (int i = 0; common[i]; i++) {
        cl_add(&ref, common[i]);
        cl_add(&j.fresh, common[i]);
        cl_add(&j.resume, common[i]);
    }
    cl_add(&ref, "--log");
    cl_add(&ref, ref_log);
    const char *save[] = {"--log", log, NULL};
    for (int i = 0; save[i]; i++) {
        cl_add(&j.fresh, save[i]);
        cl_add(&j.resume, save[i]);
    }
    cl_add(&j.fresh, "--out");
    cl_add(&j.fresh, outdir);
    cl_add(&j.resume, "--resume"); /* continues saving there */
    cl_add(&j.resume, outdir);
    run_ok(&ref, out);
    j.name = "finetune";
    j.ckpt = ck;
    j.progress[0] = "step";
    j.watch.dir[0] = state_dir;
    j.watch.dir[1] = last_dir;
    j.max_saves = 2;
    j.kills = kill_count(8);
    kill_stats s = {0};
    kill_loop(&j, out, &s);
    assert_true(s.kills >= 1);
    const char *keys[] = {"step", NULL}, *cmp[] = {"loss", "lr", "grad_norm", NULL};
    log_rows a = read_log(ref_log, keys, cmp), b = read_log(log, keys, cmp);
    assert_int_equal(a.n, steps);
    int got = compare_logs(&a, &b);
    print_message("finetune: %d logged steps (%d in the uninterrupted run) equal to the uninterrupted run's loss, lr and "
                  "gradient norm\n", got, a.n);
    free(a.rows);
    free(b.rows);
    /* each successful save sweeps the temp files of saves killed before it: none may be left */
    int left = 0;
    for (int i = 0; i < 2; i++) {
        DIR *d = opendir(i ? last_dir : state_dir);
        struct dirent *e;
        while (d && (e = readdir(d))) left += is_temp(e->d_name, NULL);
        if (d) closedir(d);
    }
    if (left) fail_msg("finetune: %d temp files of killed saves left in %s/{state,last} after the final save", left, outdir);
    rm_dir(dir);
}

/* ------------------------------------------------------------ CLI failure paths */

static int run_status(const cmdline *c, const char *out_path)
{
    unlink(out_path);
    pid_t pid = spawn(c, out_path);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_output(const char *out_path, const char *needle)
{
    char *text;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(out_path, 1 << 22, LP_MEM_SCRATCH, &text, &n));
    int found = strstr(text, needle) != NULL;
    lp_free(text);
    if (!found) {
        show_output(out_path);
        fail_msg("output lacks '%s'", needle);
    }
}

static void test_gnn_cli_failures(void **state)
{
    (void)state;
    const char *bin = leanprop_bin();
    if (!bin) fail_msg("no leanprop binary (set LEANPROP_BIN or build the CLI: make cli)");
    const char *karate = lp_test_shared("data/graphs/karate.edges.txt");
    if (!karate) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    char kar[1024];
    snprintf(kar, sizeof kar, "%s", karate);
    const char *dir = tmpdir();
    char ck[300], out[300], bad[300];
    snprintf(ck, sizeof ck, "%s/job.ckpt", dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
    snprintf(out, sizeof out, "%s/output.txt", dir);
    const char *common[] = {bin, "gnn", "--dataset", kar, "--hidden", "8", "--epochs", "12", "--runs", "1", "--threads", "2",
                            "--quiet", NULL};
    cmdline c = {0};
    /* diverging (lr 1e30): stop names run, epoch and tensor; skip finishes and warns */
    for (int i = 0; common[i]; i++) cl_add(&c, common[i]);
    cl_add(&c, "--lr");
    cl_add(&c, "1e30");
    int n0 = c.argc;
    assert_int_equal(run_status(&c, out), 1);
    expect_output(out, "run 1: run 0 epoch 2: non-finite value (");
    expect_output(out, ") in activations of the output of layer 1 at index 0");
    cl_add(&c, "--on-nonfinite");
    cl_add(&c, "skip");
    assert_int_equal(run_status(&c, out), 0);
    expect_output(out, "warning: update skipped (--on-nonfinite skip): run 0 epoch 2: non-finite value");
    expect_output(out, "11 epochs skipped (non-finite)");
    c.argc = n0 + 1;
    cl_add(&c, "sometimes");
    assert_int_equal(run_status(&c, out), 2);
    expect_output(out, "'sometimes' is not a policy");
    /* a checkpoint of this job; resuming it with another setting names the setting */
    c.argc = 0;
    for (int i = 0; common[i]; i++) cl_add(&c, common[i]);
    cl_add(&c, "--checkpoint");
    cl_add(&c, ck);
    cl_add(&c, "--checkpoint-every");
    cl_add(&c, "5");
    assert_int_equal(run_status(&c, out), 0);
    expect_output(out, "3 saves this process"); /* epochs 5 and 10, end of the run */
    c.argc = 0;
    for (int i = 0; common[i]; i++) cl_add(&c, common[i]);
    cl_add(&c, "--resume");
    cl_add(&c, ck);
    assert_int_equal(run_status(&c, out), 0);
    expect_output(out, "1 of 1 runs finished");
    expect_output(out, "(from the checkpoint)");
    cl_add(&c, "--lr");
    cl_add(&c, "0.5");
    assert_int_equal(run_status(&c, out), 1);
    expect_output(out, "a checkpoint of another job: lr is 0.001 there, 0.5 here");
    /* a flipped byte: refused (CRC or structure), naming the file */
    char *buf;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(ck, 1 << 22, LP_MEM_SCRATCH, &buf, &n));
    buf[n - 3] ^= 0x10;
    LP_ASSERT_OK(lp_file_write_atomic(bad, buf, n));
    lp_free(buf);
    c.argc = 0;
    for (int i = 0; common[i]; i++) cl_add(&c, common[i]);
    cl_add(&c, "--resume");
    cl_add(&c, bad);
    assert_int_equal(run_status(&c, out), 1);
    expect_output(out, "leanprop: --resume: ");
    expect_output(out, "bad.ckpt: ");
    c.argc = n0 - 2; /* no such file */
    cl_add(&c, "--resume");
    cl_add(&c, "/nonexistent/job.ckpt");
    assert_int_equal(run_status(&c, out), 1);
    expect_output(out, "--resume");
    rm_dir(dir);
}

/* The progress bar (drawn on a terminal only: the CLI runs under script(1)'s pseudo-terminal)
 * counts epochs x layers for a layer-wise forward method, whose epochs run on across layers. */
static void test_gnn_progress_total(void **state)
{
    (void)state;
    const char *bin = leanprop_bin();
    if (!bin) fail_msg("no leanprop binary (set LEANPROP_BIN or build the CLI: make cli)");
    const char *karate = lp_test_shared("data/graphs/karate.edges.txt");
    if (!karate) LP_SKIP("karate not found (set LEANPROP_SHARED)");
    if (system("command -v script >/dev/null 2>&1") != 0) LP_SKIP("script(1) not found: no pseudo-terminal for the bar");
    const char *dir = tmpdir();
    char out[300], line[3000];
    snprintf(out, sizeof out, "%s/output.txt", dir);
    static const struct { const char *method; const char *total; } cases[] = {{"ff-la", "/6 "}, {"bp", "/3 "}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(line, sizeof line, "script -qec \"LEANPROP_PROGRESS=1 '%s' gnn --dataset '%s' --method %s --layers 2 "
                 "--epochs 3 --patience 10 --runs 1 --threads 1\" /dev/null", bin, karate, cases[i].method);
        cmdline c = {0};
        cl_add(&c, "/bin/sh");
        cl_add(&c, "-c");
        cl_add(&c, line);
        if (run_status(&c, out) != 0) {
            show_output(out);
            fail_msg("%s under script(1) failed", cases[i].method);
        }
        char want[64];
        snprintf(want, sizeof want, "] 1%s", cases[i].total); /* the bar's first update: "1/<total> " */
        expect_output(out, want);
    }
    rm_dir(dir);
}

static int setup(void **state)
{
    (void)state;
    unsigned long seed = kill_seed();
    lp_rng_seed(&g_rng, seed);
    print_message("kill moments: LEANPROP_KILL_SEED=%lu\n", seed);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_gnn),
        cmocka_unit_test(test_kill_gnn_sf),
        cmocka_unit_test(test_kill_finetune),
        cmocka_unit_test(test_gnn_cli_failures),
        cmocka_unit_test(test_gnn_progress_total),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
