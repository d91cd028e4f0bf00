/* Metrics log (JSONL), loss-curve SVG plots, classification scores. */
#include "util/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/metrics_log.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/leanprop-metrics-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *in_dir(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Minimal well-formedness: tags nest and close, attributes quoted, no stray '<' or '&'. */
static void assert_well_formed_svg(const char *s)
{
    assert_true(!strncmp(s, "<svg", 4));
    char stack[16][32];
    int depth = 0, closed_root = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            assert_true(!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) || !strncmp(p, "&gt;", 4) ||
                        !strncmp(p, "&quot;", 6) || !strncmp(p, "&apos;", 6));
            continue;
        }
        if (*p == '>') fail_msg("stray '>' in text near \"%.30s\"", p);
        if (*p != '<') continue;
        assert_false(closed_root);
        const char *end = p + 1;
        int inq = 0;
        while (*end && (inq || *end != '>')) {
            if (*end == '"') inq = !inq;
            if (!inq && *end == '<') fail_msg("'<' inside a tag near \"%.30s\"", p);
            end++;
        }
        assert_true(*end == '>');
        char name[32];
        int closing = p[1] == '/';
        sscanf(p + 1 + closing, "%31[a-zA-Z]", name);
        if (closing) {
            assert_true(depth > 0);
            if (strcmp(stack[depth - 1], name)) fail_msg("</%s> closes <%s>", name, stack[depth - 1]);
            depth--;
            if (depth == 0) closed_root = 1;
        } else if (end[-1] != '/') {
            assert_true(depth < 16);
            snprintf(stack[depth++], 32, "%s", name);
        }
        p = end;
    }
    assert_int_equal(depth, 0);
    assert_true(closed_root);
    assert_null(strstr(s, "nan"));
    assert_null(strstr(s, "inf"));
}

static void test_log_lines(void **state)
{
    (void)state;
    const char *path = in_dir("metrics.jsonl");
    lp_metrics_log *log;
    LP_ASSERT_OK(lp_metrics_log_open(&log, path, 0));
    void *keep = lp_alloc(LP_MEM_ACTIVATIONS, 4096); /* visible in the memory counts */
    for (int s = 1; s <= 3; s++) {
        lp_metrics_row r = lp_metrics_row_empty(s * 10);
        r.loss = 3.0 - 0.5 * s;
        r.lr = 4e-4;
        r.tokens_per_s = 1234.5;
        r.epoch = 0.1 * s;
        LP_ASSERT_OK(lp_metrics_log_write(log, &r));
    }
    lp_metrics_row v = lp_metrics_row_empty(30);
    v.val_loss = 1.75;
    const char *names[2] = {"val_acc", "weird\"key"};
    double vals[2] = {0.875, INFINITY};
    v.n_extra = 2;
    v.extra_names = names;
    v.extra_values = vals;
    LP_ASSERT_OK(lp_metrics_log_write(log, &v));
    LP_ASSERT_OK(lp_metrics_log_close(log));
    lp_free(keep);
    /* resume: append */
    LP_ASSERT_OK(lp_metrics_log_open(&log, path, 1));
    lp_metrics_row r = lp_metrics_row_empty(40);
    r.loss = 1.2;
    r.grad_norm = NAN; /* absent */
    LP_ASSERT_OK(lp_metrics_log_write(log, &r));
    LP_ASSERT_OK(lp_metrics_log_close(log));

    char *text = slurp(path);
    assert_non_null(text);
    assert_int_equal(count(text, "\n"), 5);
    char *line = strtok(text, "\n");
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    assert_int_equal(cJSON_GetObjectItem(o, "step")->valueint, 10);
    LP_ASSERT_CLOSE(cJSON_GetObjectItem(o, "loss")->valuedouble, 2.5, 0, 0, "loss");
    LP_ASSERT_CLOSE(cJSON_GetObjectItem(o, "lr")->valuedouble, 4e-4, 0, 1e-12, "lr");
    LP_ASSERT_CLOSE(cJSON_GetObjectItem(o, "tokens_per_s")->valuedouble, 1234.5, 0, 0, "tok/s");
    assert_null(cJSON_GetObjectItem(o, "val_loss"));
    assert_null(cJSON_GetObjectItem(o, "grad_norm"));
    cJSON *mem = cJSON_GetObjectItem(o, "mem");
    const char *cats[] = {"weights", "gradients", "optimizer", "activations", "scratch", "data", "total"};
    for (int i = 0; i < 7; i++) {
        cJSON *c = cJSON_GetObjectItem(mem, cats[i]);
        assert_non_null(c);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(c, "current")));
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(c, "peak")));
    }
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(mem, "activations"), "current")->valuedouble >= 4096);
    assert_true(cJSON_GetObjectItem(o, "wall_s")->valuedouble >= 0);
    assert_true(cJSON_GetObjectItem(o, "time")->valuedouble > 1.6e9);
    cJSON_Delete(o);
    strtok(NULL, "\n");
    strtok(NULL, "\n");
    line = strtok(NULL, "\n");
    o = cJSON_Parse(line);
    assert_non_null(o);
    LP_ASSERT_CLOSE(cJSON_GetObjectItem(o, "val_loss")->valuedouble, 1.75, 0, 0, "val_loss");
    LP_ASSERT_CLOSE(cJSON_GetObjectItem(o, "val_acc")->valuedouble, 0.875, 0, 0, "val_acc");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "weird\"key")));
    assert_null(cJSON_GetObjectItem(o, "loss"));
    cJSON_Delete(o);
    free(text);

    /* formatting without a file */
    char buf[64];
    r = lp_metrics_row_empty(7);
    r.loss = 0.5;
    size_t need = lp_metrics_format_row(buf, sizeof buf, &r, -1);
    assert_true(!strncmp(buf, "{\"step\":7,\"loss\":0.5,\"mem\":{\"weights\":{", 39));
    assert_true(need > 100);
    assert_int_equal(strlen(buf), sizeof buf - 1);
    assert_int_equal(lp_metrics_log_open(&log, "/nonexistent/dir/m.jsonl", 0), LP_ERR_IO);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void assert_text(const char *path, const char *want)
{
    char *got;
    size_t n;
    LP_ASSERT_OK(lp_file_read_all(path, 1 << 20, LP_MEM_SCRATCH, &got, &n));
    assert_string_equal(got, want);
    lp_free(got);
}

static void test_truncate_after(void **state)
{
    (void)state;
    const char *path = in_dir("resume.jsonl");
    static const char *const step[] = {"step"}, *const run_step[] = {"run", "step"};
    /* finetune: steps 1..4 logged, the checkpoint is at step 2; an eval line of step 2 stays */
    const char *head = "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":2.25}\nnot json\n{\"step\":2,\"val_loss\":2.0}\n";
    char text[512];
    snprintf(text, sizeof text, "%s{\"step\":3,\"loss\":2.0}\n{\"step\":1,\"x\":1}\n{\"step\":4,\"lo", head);
    write_text(path, text);
    double at = 2;
    int64_t removed = -1;
    LP_ASSERT_OK(lp_metrics_log_truncate_after(path, step, &at, 1, &removed));
    assert_int_equal(removed, 3); /* step 3, everything after it, and the torn line */
    assert_text(path, head);
    LP_ASSERT_OK(lp_metrics_log_truncate_after(path, step, &at, 1, &removed)); /* nothing more to cut */
    assert_int_equal(removed, 0);
    assert_text(path, head);
    /* appending after the cut gives the uninterrupted log */
    lp_metrics_log *log;
    LP_ASSERT_OK(lp_metrics_log_open(&log, path, 1));
    LP_ASSERT_OK(lp_metrics_log_close(log));
    assert_text(path, head);
    /* gnn: (run, step) lexicographically: run 0 finished, run 1 saved after epoch 2 */
    const char *g = "{\"step\":1,\"run\":0}\n{\"step\":9,\"run\":0}\n{\"step\":1,\"run\":1}\n{\"step\":2,\"run\":1}\n";
    snprintf(text, sizeof text, "%s{\"step\":3,\"run\":1}\n{\"step\":1,\"run\":2}\n", g);
    write_text(path, text);
    double lim[] = {1, 2};
    LP_ASSERT_OK(lp_metrics_log_truncate_after(path, run_step, lim, 2, &removed));
    assert_int_equal(removed, 2);
    assert_text(path, g);
    /* run 1 not started (a non-resumable method redoes it): (1, 0) keeps run 0 only */
    lim[1] = 0;
    LP_ASSERT_OK(lp_metrics_log_truncate_after(path, run_step, lim, 2, &removed));
    assert_int_equal(removed, 2);
    assert_text(path, "{\"step\":1,\"run\":0}\n{\"step\":9,\"run\":0}\n");
    /* a missing log is fine; bad arguments are not */
    LP_ASSERT_OK(lp_metrics_log_truncate_after(in_dir("none.jsonl"), step, &at, 1, &removed));
    assert_int_equal(removed, 0);
    assert_int_equal(lp_metrics_log_truncate_after(NULL, step, &at, 1, NULL), LP_ERR_INVALID_ARG);
    assert_int_equal(lp_metrics_log_truncate_after(path, step, &at, 0, NULL), LP_ERR_INVALID_ARG);
}

static void test_read_series_and_plot(void **state)
{
    (void)state;
    const char *path = in_dir("run.jsonl");
    lp_metrics_log *log;
    LP_ASSERT_OK(lp_metrics_log_open(&log, path, 0));
    for (int s = 1; s <= 200; s++) {
        lp_metrics_row r = lp_metrics_row_empty(s);
        r.loss = 4.0 * exp(-s / 60.0) + 1.0;
        if (s % 50 == 0) r.val_loss = r.loss + 0.2;
        LP_ASSERT_OK(lp_metrics_log_write(log, &r));
    }
    LP_ASSERT_OK(lp_metrics_log_close(log));
    FILE *f = fopen(path, "ab"); /* a crashed run's half line */
    fputs("{\"step\": 201, \"loss\": 1.0", f);
    fclose(f);
    lp_series s;
    int64_t skipped = -1;
    LP_ASSERT_OK(lp_metrics_log_read_series(path, "loss", &s, &skipped));
    assert_int_equal(s.n, 200);
    assert_int_equal(skipped, 1);
    assert_true(s.x[199] == 200.0);
    lp_series_free(&s);
    LP_ASSERT_OK(lp_metrics_log_read_series(path, "val_loss", &s, NULL));
    assert_int_equal(s.n, 4);
    assert_true(s.x[0] == 50.0);
    lp_series_free(&s);

    const char *svg_path = in_dir("loss.svg");
    LP_ASSERT_OK(lp_plot_loss_svg(path, svg_path, NULL));
    char *svg = slurp(svg_path);
    assert_non_null(svg);
    assert_well_formed_svg(svg);
    assert_int_equal(count(svg, "<polyline"), 2);
    assert_non_null(strstr(svg, ">train</text>"));
    assert_non_null(strstr(svg, ">validation</text>"));
    assert_non_null(strstr(svg, ">step</text>"));
    assert_int_equal(count(svg, "<circle"), 4); /* markers on the short validation series */
    free(svg);
    assert_int_equal(access(in_dir("loss.svg.tmp"), F_OK), -1);

    /* a log without losses */
    const char *empty = in_dir("empty.jsonl");
    LP_ASSERT_OK(lp_metrics_log_open(&log, empty, 0));
    lp_metrics_row r = lp_metrics_row_empty(1);
    r.lr = 1e-3;
    LP_ASSERT_OK(lp_metrics_log_write(log, &r));
    LP_ASSERT_OK(lp_metrics_log_close(log));
    assert_int_equal(lp_plot_loss_svg(empty, in_dir("x.svg"), NULL), LP_ERR_FORMAT);
    assert_non_null(strstr(lp_error_message(), "no \"loss\""));
    assert_int_equal(lp_plot_loss_svg(in_dir("missing.jsonl"), in_dir("x.svg"), NULL), LP_ERR_NOT_FOUND);
}

static void test_plot_edge_cases(void **state)
{
    (void)state;
    double x1[1] = {5}, y1[1] = {2};
    double xc[3] = {1, 2, 3}, yc[3] = {7, 7, 7};
    double xb[4] = {1e20, 1e20 + 1e5, 1e20 + 2e5, NAN}, yb[4] = {1, 2, INFINITY, 3};
    double xl[4] = {0, 1, 2, 3}, yl[4] = {100, 10, 1, -1};
    lp_plot_series s[5] = {
        {"empty", NULL, NULL, 0, NULL},
        {"one point", x1, y1, 1, NULL},
        {"<constant & \"flat\">", xc, yc, 3, "#000"},
        {"huge x", xb, yb, 4, NULL},
        {"log", xl, yl, 4, NULL},
    };
    lp_plot_options o = {"a <title> & more", "x", "y", 0, 0, 0};
    char *svg;
    size_t len;
    for (int log_y = 0; log_y <= 1; log_y++) {
        o.log_y = log_y;
        LP_ASSERT_OK(lp_plot_svg_render(&svg, &len, &o, s, 5));
        assert_int_equal(strlen(svg), len);
        assert_well_formed_svg(svg);
        assert_int_equal(count(svg, "<polyline"), 5);
        assert_non_null(strstr(svg, "a &lt;title&gt; &amp; more"));
        assert_non_null(strstr(svg, "&lt;constant &amp; &quot;flat&quot;&gt;"));
        lp_free(svg);
    }
    LP_ASSERT_OK(lp_plot_svg_render(&svg, &len, NULL, NULL, 0));
    assert_well_formed_svg(svg);
    lp_free(svg);
    o.width = 10;
    assert_int_equal(lp_plot_svg_render(&svg, &len, &o, s, 5), LP_ERR_INVALID_ARG);
    o.width = 0;
    assert_int_equal(lp_plot_svg_write("/nonexistent/dir/p.svg", &o, s, 5), LP_ERR_IO);
}

static void test_progress_text(void **state)
{
    (void)state;
    char buf[256];
    lp_metrics_format_progress(buf, sizeof buf, 2.31412, 5321.0);
    assert_non_null(strstr(buf, "loss 2.3141 | 5.32k tok/s | mem "));
    assert_non_null(strstr(buf, "(act "));
    assert_non_null(strstr(buf, ") peak "));
    lp_metrics_format_progress(buf, sizeof buf, NAN, NAN);
    assert_true(!strncmp(buf, "mem ", 4));
    lp_metrics_format_progress(buf, 8, 1.0, 1.0);
    assert_int_equal(strlen(buf), 7);
}

static void test_classification_scores(void **state)
{
    (void)state;
    int32_t truth[6] = {0, 0, 1, 1, 1, 2}, pred[6] = {0, 1, 1, 1, 0, 2};
    lp_cls_metrics m;
    LP_ASSERT_OK(lp_cls_metrics_compute(&m, truth, pred, 6, 4)); /* class 3 never occurs */
    LP_ASSERT_CLOSE(m.accuracy, 4.0 / 6.0, 1e-12, 0, "accuracy");
    LP_ASSERT_CLOSE(m.f1[0], 0.5, 1e-12, 0, "f1 0");
    LP_ASSERT_CLOSE(m.f1[1], 2.0 / 3.0, 1e-12, 0, "f1 1");
    LP_ASSERT_CLOSE(m.f1[2], 1.0, 1e-12, 0, "f1 2");
    LP_ASSERT_CLOSE(m.f1[3], 0.0, 0, 0, "f1 3");
    LP_ASSERT_CLOSE(m.macro_f1, (0.5 + 2.0 / 3.0 + 1.0) / 3.0, 1e-12, 0, "macro f1 (sklearn labels)");
    LP_ASSERT_CLOSE(m.precision[0], 0.5, 1e-12, 0, "precision 0");
    assert_int_equal(m.confusion[1 * 4 + 0], 1);
    assert_int_equal(m.support[1], 3);
    const char *names[4] = {"a", "b", "c", "d"};
    char buf[2048];
    lp_cls_metrics_format(&m, names, buf, sizeof buf);
    assert_non_null(strstr(buf, "accuracy 0.6667"));
    assert_non_null(strstr(buf, "confusion"));
    lp_cls_metrics_format(&m, NULL, buf, 40);
    assert_int_equal(strlen(buf), 39);
    lp_cls_metrics_free(&m);
    /* binary: spam is the positive class */
    int32_t t2[5] = {1, 0, 1, 1, 0}, p2[5] = {1, 0, 0, 1, 1};
    LP_ASSERT_OK(lp_cls_metrics_compute(&m, t2, p2, 5, 2));
    LP_ASSERT_CLOSE(lp_cls_metrics_binary_f1(&m, 1), 2.0 / 3.0, 1e-12, 0, "binary f1");
    LP_ASSERT_CLOSE(lp_cls_metrics_binary_f1(&m, 0), 0.5, 1e-12, 0, "f1 of negative class");
    assert_true(lp_cls_metrics_binary_f1(&m, 5) == 0.0);
    lp_cls_metrics_free(&m);
    /* bad labels */
    pred[3] = 4;
    assert_int_equal(lp_cls_metrics_compute(&m, truth, pred, 6, 4), LP_ERR_INVALID_ARG);
    assert_non_null(strstr(lp_error_message(), "example 3"));
    assert_int_equal(lp_cls_metrics_compute(&m, truth, pred, 6, 0), LP_ERR_INVALID_ARG);
    LP_ASSERT_OK(lp_cls_metrics_compute(&m, NULL, NULL, 0, 2));
    assert_true(m.accuracy == 0.0 && m.macro_f1 == 0.0);
    lp_cls_metrics_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_read_series_and_plot),
        cmocka_unit_test(test_truncate_after),
        cmocka_unit_test(test_plot_edge_cases),
        cmocka_unit_test(test_progress_text),
        cmocka_unit_test(test_classification_scores),
    };
    size_t before = lp_mem_current(LP_MEM_DATA);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    if (lp_mem_current(LP_MEM_DATA) != before) {
        fprintf(stderr, "data memory leaked: %zu bytes\n", lp_mem_current(LP_MEM_DATA) - before);
        return 1;
    }
    return rc;
}
