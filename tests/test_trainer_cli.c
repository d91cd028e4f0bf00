/* `leanprop finetune` / `leanprop eval` end to end on stories260K: bad input
 * messages and policies, truncation and k warnings, the memory refusal, the
 * JSONL log and its final line, and an interrupted run resumed through the
 * CLI reproducing the straight run's losses exactly. */
#include "util/test_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_cli[PATH_MAX];
static const char *g_model, *g_tok;

/* build/tests/test_trainer_cli -> build/leanprop */
static int find_cli(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 0;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) return 0;
    *slash = '\0';
    snprintf(g_cli, sizeof g_cli, "%s/../leanprop", self);
    return access(g_cli, X_OK) == 0;
}

/* Run `leanprop ARGS` (stdout and stderr into *out, malloc'd); exit code. */
static int run(char **out, const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "LEANPROP_PROGRESS=0 '%s' %s 2>&1", g_cli, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *g_small; /* the first 120 KB of Moby-Dick: fast validations */

static const char *small_corpus(void)
{
    const char *moby = lp_test_shared("data/text/moby_dick.txt");
    if (!moby) return NULL;
    FILE *fp = fopen(moby, "rb");
    if (!fp) return NULL;
    static char buf[120000];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", lp_test_write_temp(".txt", buf, n));
    return path;
}

static int setup(void **state)
{
    (void)state;
    g_small = small_corpus();
    g_model = lp_test_shared("data/models/stories260K/stories260K.bin");
    static char tok[PATH_MAX];
    const char *t = lp_test_shared("data/models/stories260K/tok512.bin");
    if (t) snprintf(tok, sizeof tok, "%s", t);
    g_tok = t ? tok : NULL;
    static char model[PATH_MAX];
    if (g_model) {
        snprintf(model, sizeof model, "%s", g_model);
        g_model = model;
    }
    return 0;
}

#define NEED() do { if (!find_cli()) { LP_SKIP("build/leanprop not built next to the tests"); } \
    if (!g_model || !g_tok) { LP_SKIP("stories260K not found (set LEANPROP_SHARED)"); } } while (0)

#define BASE "finetune --model '%s' --tokenizer '%s' --threads 1 --quiet "

static void test_help(void **state)
{
    (void)state;
    if (!find_cli()) { LP_SKIP("build/leanprop not built next to the tests"); }
    char *out;
    assert_int_equal(run(&out, "finetune --help"), 0);
    assert_non_null(strstr(out, "--tokens"));
    assert_non_null(strstr(out, "--resume"));
    free(out);
    assert_int_equal(run(&out, "eval --help"), 0);
    assert_non_null(strstr(out, "acc_norm"));
    free(out);
    assert_int_equal(run(&out, "finetune --model x"), 2); /* --data missing */
    free(out);
}

static void test_malformed_line(void **state)
{
    (void)state;
    NEED();
    const char text[] = "{\"prompt\": \"Once upon a time\", \"response\": \" there was a cat.\"}\n"
                        "{\"text\": \"The sun was warm.\"}\n"
                        "{\"prompt\": \"broken\", \"response\": }\n"
                        "{\"text\": \"Lily saw a big red ball and she was happy.\"}\n";
    const char *path = lp_test_write_temp(".jsonl", text, sizeof text - 1);
    char *out, want[PATH_MAX + 8];
    snprintf(want, sizeof want, "%s:3:", path);
    assert_int_equal(run(&out, BASE "--data '%s' --steps 2 --seq 64 --batch 2", g_model, g_tok, path), 1);
    if (!strstr(out, want)) fail_msg("no \"%s\" in:\n%s", want, out);
    free(out);
    assert_int_equal(run(&out, BASE "--data '%s' --steps 2 --seq 64 --batch 2 --on-bad-line skip --val-fraction 0", g_model, g_tok, path), 0);
    if (!strstr(out, "1 malformed records skipped") || !strstr(out, want)) fail_msg("skip report missing:\n%s", out);
    assert_non_null(strstr(out, "summary method=lora"));
    free(out);
}

static void test_unknown_label_and_classifier(void **state)
{
    (void)state;
    NEED();
    char train[2048] = "";
    for (int i = 0; i < 12; i++)
        strcat(train, i % 2 ? "spam\tWIN a FREE prize now call 0800\n" : "ham\tsee you at the park later\n");
    const char val[] = "ham\tok then\nmaybe\tnot sure\n";
    const char *tp = lp_test_write_temp(".tsv", train, strlen(train));
    const char *vp = lp_test_write_temp(".tsv", val, sizeof val - 1);
    char *out, want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s:2: unknown label \"maybe\"", vp);
    assert_int_equal(run(&out, BASE "--task cls --data '%s' --val '%s' --steps 2 --seq 64 --batch 2", g_model, g_tok, tp, vp), 1);
    if (!strstr(out, want)) fail_msg("no \"%s\" in:\n%s", want, out);
    free(out);
    char dir[] = "/tmp/lp_ftcli_cXXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(run(&out, BASE "--task cls --data '%s' --val '%s' --steps 4 --seq 64 --batch 2 --on-unknown-label skip "
                         "--lr 1e-2 --out %s", g_model, g_tok, tp, vp, dir), 0);
    assert_non_null(strstr(out, "1 records with unknown labels skipped"));
    assert_non_null(strstr(out, "acc_after="));
    free(out);
    /* the saved adapter (with its "score" head) evaluates through `leanprop eval` */
    assert_int_equal(run(&out, "eval --model '%s' --tokenizer '%s' --threads 1 --task cls --data '%s' --adapter %s/last",
                         g_model, g_tok, tp, dir), 0);
    if (!strstr(out, "accuracy") || !strstr(out, "confusion")) fail_msg("no classification report:\n%s", out);
    free(out);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_truncation_and_k_warnings(void **state)
{
    (void)state;
    NEED();
    char text[8192] = "";
    for (int i = 0; i < 6; i++)
        strcat(text, "{\"text\": \"Once upon a time there was a little girl named Lily. She loved to play outside in "
                     "the park with her big red ball every single day until the sun went down.\"}\n"
                     "{\"text\": \"Tom was sad.\"}\n");
    const char *path = lp_test_write_temp(".jsonl", text, strlen(text));
    char *out;
    assert_int_equal(run(&out, BASE "--data '%s' --steps 3 --batch 2 --seq 24 --tokens 12 --val-fraction 0", g_model, g_tok,
                         path), 0);
    if (!strstr(out, "6 sequences longer than 24 tokens were truncated")) fail_msg("no truncation warning:\n%s", out);
    if (!strstr(out, "not longer than --tokens 12")) fail_msg("no k note:\n%s", out);
    free(out);
    /* --seq past the model's 512 positions: capped with a warning */
    assert_int_equal(run(&out, BASE "--data '%s' --steps 1 --batch 2 --seq 4096 --val-fraction 0", g_model, g_tok, path), 0);
    assert_non_null(strstr(out, "exceeds the model's maximum of 512"));
    free(out);
}

/* Multiple choice by log-likelihood: stories260K knows how its stories go. */
static void test_multiple_choice(void **state)
{
    (void)state;
    NEED();
    const char mc[] = "{\"question\": \"Once upon a\", \"choices\": [\"time\", \"car engine diagnostic\"], \"answer\": 0}\n"
                      "{\"question\": \"Lily went to the park with her\", \"choices\": [\"spreadsheet\", \"mom\"], \"answer\": 1}\n"
                      "{\"question\": \"Tom was sad because he lost his\", \"choices\": [\"toy\", \"mortgage\"], \"answer\": \"A\"}\n"
                      "{\"question\": \"She wanted to play with the big red\", \"choices\": [\"tax\", \"ball\"], \"answer\": \"B\"}\n";
    const char *path = lp_test_write_temp(".jsonl", mc, sizeof mc - 1);
    char *out;
    assert_int_equal(run(&out, "eval --model '%s' --tokenizer '%s' --threads 1 --task mc --template '{question}' --data '%s'",
                         g_model, g_tok, path), 0);
    if (!strstr(out, "acc 1.0000  acc_norm 1.0000") || !strstr(out, "4 questions, 8 requests")) fail_msg("%s", out);
    free(out);
    /* a bad answer names the line */
    const char bad[] = "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 5}\n";
    path = lp_test_write_temp(".jsonl", bad, sizeof bad - 1);
    assert_int_equal(run(&out, "eval --model '%s' --tokenizer '%s' --task mc --data '%s'", g_model, g_tok, path), 1);
    assert_non_null(strstr(out, ":1: answer out of range"));
    free(out);
}

static void test_max_memory(void **state)
{
    (void)state;
    NEED();
    const char *moby = g_small;
    if (!moby) { LP_SKIP("moby_dick.txt not found"); }
    char *out;
    int rc = run(&out, BASE "--data '%s' --steps 2 --seq 64 --batch 2 --max-memory 2M --method full", g_model, g_tok, moby);
    assert_int_equal(rc, 1);
    if (!strstr(out, "--max-memory")) fail_msg("no memory message:\n%s", out);
    free(out);
}

/* Returns the "loss" of step s from a metrics log (NaN if absent). */
static double log_loss(const char *path, int step, char *text_out, size_t size)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[8192], key[32];
    snprintf(key, sizeof key, "{\"step\":%d,", step);
    double v = -1;
    while (fgets(line, sizeof line, fp)) {
        const char *l = strstr(line, ",\"loss\":");
        if (strncmp(line, key, strlen(key)) || !l || strstr(line, "\"final\"")) continue;
        v = strtod(l + 8, NULL);
        const char *e = strchr(l + 8, ',');
        snprintf(text_out, size, "%.*s", e ? (int)(e - l - 8) : 32, l + 8);
    }
    fclose(fp);
    return v;
}

static void test_resume_through_cli(void **state)
{
    (void)state;
    NEED();
    const char *moby = g_small;
    if (!moby) { LP_SKIP("moby_dick.txt not found"); }
    char a[] = "/tmp/lp_ftcli_aXXXXXX", b[] = "/tmp/lp_ftcli_bXXXXXX";
    assert_non_null(mkdtemp(a));
    assert_non_null(mkdtemp(b));
    char *out;
    const char *common = "--seq 64 --tokens 0.5 --lora-dropout 0.1 --steps 6 --eval-every 3 --warmup 2 --lr 3e-3";
    assert_int_equal(run(&out, BASE "--data '%s' %s --batch 2 --out %s --plot %s/loss.svg", g_model, g_tok, moby, common, a, a), 0);
    assert_non_null(strstr(out, "summary method=lora tokens=0.5"));
    free(out);
    assert_int_equal(run(&out, BASE "--data '%s' %s --batch 2 --out %s --stop-at 4", g_model, g_tok, moby, common, b), 0);
    assert_non_null(strstr(out, "stopped after step 4"));
    free(out);
    assert_int_equal(run(&out, BASE "--data '%s' %s --batch 2 --resume %s", g_model, g_tok, moby, common, b), 0);
    assert_non_null(strstr(out, "resumed from"));
    free(out);
    char la[8][64], lb[8][64], pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/metrics.jsonl", a);
    snprintf(pb, sizeof pb, "%s/metrics.jsonl", b);
    for (int s = 1; s <= 6; s++) {
        double x = log_loss(pa, s, la[s], sizeof la[s]), y = log_loss(pb, s, lb[s], sizeof lb[s]);
        assert_true(x > 0 && y > 0);
        if (strcmp(la[s], lb[s])) fail_msg("step %d: loss %s straight vs %s interrupted + resumed", s, la[s], lb[s]);
    }
    /* the final line carries the report; the plot exists; a changed setting refuses to resume */
    FILE *fp = fopen(pa, "r");
    char line[8192], last[8192] = "";
    while (fgets(line, sizeof line, fp)) snprintf(last, sizeof last, "%s", line);
    fclose(fp);
    assert_non_null(strstr(last, "\"final\":1"));
    assert_non_null(strstr(last, "\"val_loss_before\""));
    assert_non_null(strstr(last, "\"activations\""));
    char svg[600];
    snprintf(svg, sizeof svg, "%s/loss.svg", a);
    assert_int_equal(access(svg, R_OK), 0);
    assert_int_equal(run(&out, BASE "--data '%s' %s --resume %s --batch 3", g_model, g_tok, moby, common, b), 1);
    assert_non_null(strstr(out, "batch"));
    free(out);
    /* eval of the saved adapter reproduces the run's final validation loss */
    assert_int_equal(run(&out, "eval --model '%s' --tokenizer '%s' --threads 1 --seq 64 --data '%s' --part val "
                               "--adapter %s/last", g_model, g_tok, moby, a), 0);
    assert_non_null(strstr(out, "perplexity"));
    free(out);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", a, b);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_malformed_line),
        cmocka_unit_test(test_unknown_label_and_classifier),
        cmocka_unit_test(test_truncation_and_k_warnings),
        cmocka_unit_test(test_multiple_choice),
        cmocka_unit_test(test_max_memory),
        cmocka_unit_test(test_resume_through_cli),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
