/* `leanprop eval`: LM loss / perplexity, classification accuracy and F1,
 * multiple-choice accuracy (acc, acc_norm) by log-likelihood; a base model
 * or a base model plus a PEFT adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd_finetune_util.h"
#include "cli/commands.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/log.h"
#include "leanprop/metrics_log.h"
#include "leanprop/threads.h"
#include "leanprop/trainer.h"

typedef struct {
    const char *model, *adapter, *method, *tokenizer, *task, *data, *labels, *on_bad, *on_unknown, *json;
    const char *text_field, *label_field, *template_, *part;
    double val_fraction;
    long seq, batch, n_shot, seed, split_seed, threads;
} ev_opts;

static int parse(ev_opts *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    memset(o, 0, sizeof *o);
    o->model = cli_get(&a, "model", NULL);
    o->adapter = cli_get(&a, "adapter", NULL);
    o->method = cli_get(&a, "method", NULL);
    o->tokenizer = cli_get(&a, "tokenizer", NULL);
    o->task = cli_get(&a, "task", "lm");
    o->data = cli_get(&a, "data", NULL);
    o->labels = cli_get(&a, "labels", NULL);
    o->text_field = cli_get(&a, "text-field", NULL);
    o->label_field = cli_get(&a, "label-field", NULL);
    o->part = cli_get(&a, "part", NULL);
    o->val_fraction = cli_get_double(&a, "val-fraction", -1.0);
    o->split_seed = cli_get_long(&a, "split-seed", 1234);
    o->on_bad = cli_get(&a, "on-bad-line", "stop");
    o->on_unknown = cli_get(&a, "on-unknown-label", "stop");
    o->seq = cli_get_long(&a, "seq", 256);
    o->batch = cli_get_long(&a, "batch", 8);
    o->n_shot = cli_get_long(&a, "n-shot", 0);
    o->template_ = cli_get(&a, "template", NULL);
    o->seed = cli_get_long(&a, "seed", 1234);
    o->threads = cli_get_long(&a, "threads", 0);
    o->json = cli_get(&a, "json", NULL);
    if (cli_finish(&a)) return 2;
    if (!o->model || !o->data) {
        fprintf(stderr, "leanprop eval: --model and --data are required (see leanprop eval --help)\n");
        return 2;
    }
    if (o->seq < 2 || o->batch <= 0 || o->n_shot < 0) {
        fprintf(stderr, "leanprop eval: need --seq >= 2, --batch > 0, --n-shot >= 0\n");
        return 2;
    }
    if (o->part && strcmp(o->part, "val") && strcmp(o->part, "all") && strcmp(o->part, "train")) {
        fprintf(stderr, "leanprop eval: --part is val, train or all\n");
        return 2;
    }
    return 0;
}

/* One line of results as JSON (--json). */
static int write_json(const char *path, const char *task, const char *const *keys, const double *vals, int n)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "leanprop eval: cannot write %s\n", path);
        return 1;
    }
    fprintf(fp, "{\"task\":\"%s\"", task);
    for (int i = 0; i < n; i++) {
        if (isfinite(vals[i])) fprintf(fp, ",\"%s\":%.17g", keys[i], vals[i]);
        else fprintf(fp, ",\"%s\":null", keys[i]);
    }
    fprintf(fp, "}\n");
    return fclose(fp) ? 1 : 0;
}

static int eval_mc(const ev_opts *o, lp_transformer *m, const lp_text_encoder *enc, const lp_data_options *dopt,
                   int32_t seq)
{
    lp_mc_dataset *mc;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    if (lp_mc_dataset_load(&mc, o->data, dopt, &rep) != LP_OK) return cli_fail("data");
    ftcli_print_report(o->data, &rep, seq);
    lp_mc_options mo = lp_mc_options_defaults();
    mo.n_shot = (int32_t)o->n_shot;
    mo.seed = (uint64_t)o->seed;
    mo.max_len = seq;
    if (o->template_) mo.context_template = o->template_;
    lp_token_dataset req;
    memset(&req, 0, sizeof req);
    if (lp_mc_build_requests(&req, mc, enc, &mo, &rep) != LP_OK) {
        lp_mc_dataset_free(mc);
        return cli_fail("requests");
    }
    if (rep.truncated) fprintf(stderr, "warning: %lld requests lost context tokens on the left to fit %d tokens\n",
                               (long long)rep.truncated, (int)seq);
    double *ll = lp_alloc_array(LP_MEM_DATA, (size_t)req.n, sizeof *ll);
    int rc = 0;
    double acc = NAN, accn = NAN, t0 = lp_time_now();
    lp_token_subset all = {&req, NULL, req.n};
    if (!ll) rc = cli_fail("memory");
    else if (lp_eval_loglik(m, &all, (int32_t)o->batch, seq, enc->pad_id, ll) != LP_OK) rc = cli_fail("eval");
    else if (lp_mc_score(mc, &req, ll, &acc, &accn, NULL) != LP_OK) rc = cli_fail("score");
    if (!rc) {
        int64_t n = lp_mc_dataset_count(mc);
        printf("multiple choice: %lld questions, %lld requests, %ld-shot, %.1f s\n", (long long)n, (long long)req.n,
               o->n_shot, lp_time_now() - t0);
        printf("acc %.4f  acc_norm %.4f\n", acc, accn);
        const char *keys[] = {"acc", "acc_norm", "n"};
        double vals[] = {acc, accn, (double)n};
        if (o->json) rc = write_json(o->json, "mc", keys, vals, 3);
    }
    lp_free(ll);
    lp_token_dataset_free(&req);
    lp_mc_dataset_free(mc);
    return rc;
}

static int eval_data(const ev_opts *o, lp_train_task task, lp_transformer *m, const lp_text_encoder *enc,
                     const lp_data_options *dopt, int32_t seq, lp_train_data *d)
{
    int cls = task == LP_TRAIN_CLS;
    /* --part val (default when a split is asked for): the held-out part as finetune made it */
    const lp_token_subset *set = &d->val;
    if (o->part && !strcmp(o->part, "train")) set = &d->train;
    else if ((o->part && !strcmp(o->part, "all")) || d->val.n == 0) set = NULL;
    lp_token_subset whole = {&d->all, NULL, d->all.n};
    if (!set) set = &whole;
    printf("data: %s, %lld sequences (%s)\n", o->data, (long long)set->n,
           set == &whole ? "all" : set == &d->train ? "training part" : "held-out part");
    lp_eval_result r;
    int rc = 0;
    if (!cls) {
        if (lp_eval_lm(m, set, (int32_t)o->batch, seq, enc->pad_id, &r) != LP_OK) return cli_fail("eval");
        printf("loss %.4f  perplexity %.3f  (%lld tokens, %.1f s)\n", r.loss, exp(r.loss), (long long)r.n_targets,
               r.seconds);
        const char *keys[] = {"loss", "perplexity", "tokens"};
        double vals[] = {r.loss, exp(r.loss), (double)r.n_targets};
        if (o->json) rc = write_json(o->json, "lm", keys, vals, 3);
        return rc;
    }
    int32_t nl = d->n_labels;
    int32_t *pred = lp_alloc_array(LP_MEM_DATA, (size_t)(set->n > 0 ? set->n : 1), sizeof *pred);
    int32_t *truth = lp_alloc_array(LP_MEM_DATA, (size_t)(set->n > 0 ? set->n : 1), sizeof *truth);
    if (!pred || !truth) rc = cli_fail("memory");
    else if (lp_eval_cls(m, set, (int32_t)o->batch, seq, enc->pad_id, nl, pred, &r) != LP_OK) rc = cli_fail("eval");
    if (!rc) {
        for (int64_t i = 0; i < set->n; i++) truth[i] = set->ds->label[set->idx ? set->idx[i] : i];
        lp_cls_metrics cm;
        if (lp_cls_metrics_compute(&cm, truth, pred, set->n, nl) == LP_OK) {
            char buf[4096];
            lp_cls_metrics_format(&cm, (const char *const *)d->label_names, buf, sizeof buf);
            printf("loss %.4f  (%.1f s)\n%s", r.loss, r.seconds, buf);
            if (nl == 2) printf("F1 of \"%s\" (class 1): %.4f\n", d->label_names[1], r.f1_positive);
            lp_cls_metrics_free(&cm);
        }
        const char *keys[] = {"loss", "accuracy", "macro_f1", "f1", "n"};
        double vals[] = {r.loss, r.accuracy, r.macro_f1, r.f1_positive, (double)set->n};
        if (o->json) rc = write_json(o->json, "cls", keys, vals, 5);
    }
    lp_free(pred);
    lp_free(truth);
    (void)dopt;
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines interleave with warnings on stderr */
    ev_opts o;
    int rc = parse(&o, argc, argv);
    if (rc) return rc;
    lp_train_task task;
    lp_bad_input_policy on_bad, on_unknown;
    if (lp_train_task_parse(o.task, &task) || ftcli_policy(o.on_bad, &on_bad) || ftcli_policy(o.on_unknown, &on_unknown)) {
        fprintf(stderr, "leanprop eval: %s\n", lp_error_message());
        return 2;
    }
    if (o.threads > 0 && lp_threads_set((int)o.threads) != LP_OK) return cli_fail("--threads");
    lp_threads_init();
    lp_transformer *m;
    if (lp_transformer_load(&m, o.model) != LP_OK) return cli_fail("loading the model");
    lp_transformer_config cfg = *lp_transformer_get_config(m);
    int32_t seq = (int32_t)o.seq;
    if (cfg.max_positions > 0 && seq > cfg.max_positions) {
        fprintf(stderr, "warning: --seq %d exceeds the model's maximum of %lld positions; using %lld\n", (int)seq,
                (long long)cfg.max_positions, (long long)cfg.max_positions);
        seq = (int32_t)cfg.max_positions;
    }
    lp_tokenizer *tok = NULL;
    if (ftcli_open_tokenizer(&tok, o.tokenizer, o.model, cfg.vocab_size) != LP_OK) {
        lp_transformer_free(m);
        return cli_fail("tokenizer (pass --tokenizer)");
    }
    lp_text_encoder enc = ftcli_encoder(tok, &cfg, task);
    lp_data_options dopt = lp_data_options_defaults();
    dopt.on_malformed = on_bad;
    dopt.on_unknown_label = on_unknown;
    if (o.text_field) dopt.text_field = o.text_field;
    if (o.label_field) dopt.label_field = o.label_field;

    /* classification data first: a decoder needs its head before the adapter loads */
    lp_train_data d;
    memset(&d, 0, sizeof d);
    lp_ft_model *f = NULL;
    if (task != LP_TRAIN_MC) {
        lp_train_data_spec spec = {.task = task, .path = o.data, .split_seed = (uint64_t)o.split_seed, .max_len = seq,
                                   .labels = o.labels, .opt = dopt};
        spec.val_fraction = o.val_fraction >= 0 ? o.val_fraction
                            : (o.part && strcmp(o.part, "all")) ? ftcli_default_val_fraction(task, o.data) : 0.0;
        lp_data_report rep;
        memset(&rep, 0, sizeof rep);
        if (lp_train_data_load(&d, &spec, &enc, &rep, NULL) != LP_OK) {
            rc = cli_fail("data");
            goto done;
        }
        ftcli_print_report(o.data, &rep, seq);
        lp_tokenizer_close(tok); /* its encode caches grow with the text */
        tok = NULL;
        if (task == LP_TRAIN_CLS && ftcli_setup_classifier(m, d.n_labels, (const char *const *)d.label_names, 0) != LP_OK) {
            rc = cli_fail("classifier");
            goto done;
        }
    }
    if (o.adapter) {
        lp_ft_method method = LP_FT_LORA;
        if (o.method && lp_ft_method_parse(o.method, &method) != LP_OK) {
            rc = cli_fail("--method");
            goto done;
        }
        lp_ft_setup s;
        if (lp_ft_setup_from_adapter(&s, method, o.adapter) != LP_OK) {
            rc = cli_fail("--adapter");
            goto done;
        }
        lp_transformer *mm = m;
        m = NULL;
        if (lp_ft_model_new(&f, mm, &s) != LP_OK || lp_ft_model_load_adapter(f, o.adapter) != LP_OK) {
            rc = cli_fail("--adapter");
            goto done;
        }
        lp_ft_model_set_training(f, 0);
        m = lp_ft_model_transformer(f);
        printf("model: %s + %s adapter %s\n", o.model, lp_ft_method_name(method), o.adapter);
    }
    rc = task == LP_TRAIN_MC ? eval_mc(&o, m, &enc, &dopt, seq) : eval_data(&o, task, m, &enc, &dopt, seq, &d);
    if (!rc) ftcli_print_memory(stdout);
done:
    lp_train_data_free(&d);
    if (f) lp_ft_model_free(f);
    else lp_transformer_free(m);
    lp_tokenizer_close(tok);
    return rc;
}
