/* `leanprop finetune`: fine-tune a transformer (full / LoRA / QLoRA, with or
 * without TokenTune) on LM or classification data; progress, JSONL metrics,
 * checkpoints, resume, and an end report of the allocator's memory by category. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/cmd_finetune_util.h"
#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/log.h"
#include "leanprop/metrics_log.h"
#include "leanprop/threads.h"
#include "leanprop/trainer.h"

typedef struct {
    const char *model, *tokenizer, *task, *data, *val, *labels, *method, *targets, *tokens, *strategy;
    const char *schedule, *out, *log, *plot, *resume, *on_bad, *on_unknown, *on_nonfinite, *max_memory;
    const char *text_field, *label_field;
    double val_fraction, lr, min_lr, wd, clip, epochs, lora_alpha, lora_dropout;
    long lora_r, batch, accum, seq, steps, warmup, eval_every, seed, split_seed, threads, stop_at;
    int quiet;
} ft_opts;

static int parse(ft_opts *o, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, argc, argv);
    memset(o, 0, sizeof *o);
    o->model = cli_get(&a, "model", NULL);
    o->tokenizer = cli_get(&a, "tokenizer", NULL);
    o->task = cli_get(&a, "task", "lm");
    o->data = cli_get(&a, "data", NULL);
    o->val = cli_get(&a, "val", NULL);
    o->val_fraction = cli_get_double(&a, "val-fraction", -1.0);
    o->split_seed = cli_get_long(&a, "split-seed", 1234);
    o->labels = cli_get(&a, "labels", NULL);
    o->text_field = cli_get(&a, "text-field", NULL);
    o->label_field = cli_get(&a, "label-field", NULL);
    o->method = cli_get(&a, "method", "lora");
    o->lora_r = cli_get_long(&a, "lora-r", 8);
    o->lora_alpha = cli_get_double(&a, "lora-alpha", 16.0);
    o->lora_dropout = cli_get_double(&a, "lora-dropout", 0.05);
    o->targets = cli_get(&a, "lora-targets", NULL);
    o->tokens = cli_get(&a, "tokens", "all");
    o->strategy = cli_get(&a, "token-strategy", "random");
    o->batch = cli_get_long(&a, "batch", 8);
    o->accum = cli_get_long(&a, "accum", 1);
    o->seq = cli_get_long(&a, "seq", 256);
    o->steps = cli_get_long(&a, "steps", 0);
    o->epochs = cli_get_double(&a, "epochs", 0.0);
    o->lr = cli_get_double(&a, "lr", -1.0);
    o->min_lr = cli_get_double(&a, "min-lr", 0.0);
    o->warmup = cli_get_long(&a, "warmup", 0);
    o->schedule = cli_get(&a, "schedule", "cosine");
    o->wd = cli_get_double(&a, "weight-decay", 0.01);
    o->clip = cli_get_double(&a, "clip", 1.0);
    o->eval_every = cli_get_long(&a, "eval-every", -1);
    o->seed = cli_get_long(&a, "seed", 42);
    o->threads = cli_get_long(&a, "threads", 0);
    o->out = cli_get(&a, "out", NULL);
    o->log = cli_get(&a, "log", NULL);
    o->plot = cli_get(&a, "plot", NULL);
    o->resume = cli_get(&a, "resume", NULL);
    o->on_bad = cli_get(&a, "on-bad-line", "stop");
    o->on_unknown = cli_get(&a, "on-unknown-label", "stop");
    o->on_nonfinite = cli_get(&a, "on-nonfinite", "stop");
    o->max_memory = cli_get(&a, "max-memory", NULL);
    o->stop_at = cli_get_long(&a, "stop-at", 0);
    o->quiet = cli_flag(&a, "quiet");
    if (cli_finish(&a)) return 2;
    if (!o->model || !o->data) {
        fprintf(stderr, "leanprop finetune: --model and --data are required (see leanprop finetune --help)\n");
        return 2;
    }
    if (o->batch <= 0 || o->accum <= 0 || o->seq < 2 || o->steps < 0 || o->epochs < 0 || o->lora_r <= 0 ||
        o->warmup < 0 || o->clip < 0 || o->wd < 0 || o->min_lr < 0) {
        fprintf(stderr, "leanprop finetune: need --batch, --accum, --lora-r > 0, --seq >= 2 and non-negative "
                        "--steps, --epochs, --warmup, --clip, --weight-decay, --min-lr\n");
        return 2;
    }
    if (o->steps > 0 && o->epochs > 0) {
        fprintf(stderr, "leanprop finetune: give --steps or --epochs, not both\n");
        return 2;
    }
    return 0;
}

/* Peaks per category over the training steps only (validations excluded) and
 * over the whole run: the allocator's peaks are read before and after each
 * validation and reset after it. */
typedef struct {
    size_t train[LP_MEM_COUNT], train_total, run[LP_MEM_COUNT], run_total;
} peaks;

static void peaks_note(peaks *p, int training_window)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    for (int c = 0; c < LP_MEM_COUNT; c++) {
        if (training_window && s.peak[c] > p->train[c]) p->train[c] = s.peak[c];
        if (s.peak[c] > p->run[c]) p->run[c] = s.peak[c];
    }
    if (training_window && s.total_peak > p->train_total) p->train_total = s.total_peak;
    if (s.total_peak > p->run_total) p->run_total = s.total_peak;
}

/* Everything the run holds, released in one place. */
typedef struct {
    lp_transformer *m;
    lp_ft_model *f;
    lp_tokenizer *tok;
    lp_train_data data;
    lp_trainer *t;
    lp_metrics_log *log;
    lp_progress *bar;
    peaks pk;
} ft_run;

static void run_free(ft_run *r)
{
    lp_progress_free(r->bar);
    lp_metrics_log_close(r->log);
    lp_trainer_free(r->t);
    if (r->f) lp_ft_model_free(r->f);
    else lp_transformer_free(r->m);
    lp_train_data_free(&r->data);
    lp_tokenizer_close(r->tok);
}

static void log_eval(lp_metrics_log *log, int64_t step, double epoch, const lp_eval_result *e, int cls)
{
    if (!log) return;
    lp_metrics_row row = lp_metrics_row_empty(step);
    row.epoch = epoch;
    row.val_loss = e->loss;
    const char *names[] = {"val_acc", "val_macro_f1", "val_f1"};
    double vals[] = {e->accuracy, e->macro_f1, e->f1_positive};
    if (cls) {
        row.n_extra = 3;
        row.extra_names = names;
        row.extra_values = vals;
    }
    lp_metrics_log_write(log, &row);
}

static void print_eval(const char *when, const lp_eval_result *e, int cls)
{
    if (cls)
        printf("%s: val loss %.4f, accuracy %.4f, macro F1 %.4f, F1(class 1) %.4f (%lld sequences, %.1f s)\n", when,
               e->loss, e->accuracy, e->macro_f1, e->f1_positive, (long long)e->n_targets, e->seconds);
    else
        printf("%s: val loss %.4f (perplexity %.2f, %lld tokens, %.1f s)\n", when, e->loss, exp(e->loss),
               (long long)e->n_targets, e->seconds);
    fflush(stdout);
}

/* Better validation: CLS by accuracy (then loss), LM by loss. */
static int better(const lp_eval_result *e, double best_metric, int cls)
{
    double m = cls ? e->accuracy : e->loss;
    if (isnan(best_metric)) return !isnan(m);
    return cls ? m > best_metric : m < best_metric;
}

/* Validation between training windows: training peaks noted before, the
 * validation's own after, then a new window. */
static lp_status validate(ft_run *r, lp_eval_result *e)
{
    peaks_note(&r->pk, 1);
    lp_status st = lp_trainer_evaluate(r->t, &r->data.val, e);
    peaks_note(&r->pk, 0);
    lp_mem_reset_peak();
    return st;
}

static lp_status save_model(lp_ft_model *f, const char *out, const char *sub)
{
    char dir[LP_PATH_MAX];
    LP_TRY(lp_path_join(dir, sizeof dir, out, sub));
    LP_TRY(lp_ft_model_save(f, dir));
    return lp_atomic_sweep_temps(dir, NULL); /* temp files of saves killed earlier */
}

static lp_status save_checkpoint(ft_run *r, const char *out)
{
    char dir[LP_PATH_MAX];
    LP_TRY(save_model(r->f, out, "last"));
    LP_TRY(lp_path_join(dir, sizeof dir, out, "state"));
    LP_TRY(lp_trainer_save_state(r->t, dir));
    return lp_atomic_sweep_temps(dir, NULL);
}

/* End of run: counters, memory by category (current and peak), a summary line
 * for scripts, and the same as the metrics log's last line. */
static void final_report(ft_run *r, const ft_opts *o, lp_ft_method method, const lp_eval_result *before,
                         const lp_eval_result *after, int cls)
{
    lp_trainer_stats s;
    lp_trainer_get_stats(r->t, &s);
    double tps = s.train_seconds > 0 ? (double)s.tokens / s.train_seconds : NAN;
    double frac = s.tokens > 0 ? (double)s.selected / (double)s.tokens : NAN;
    printf("training: %lld steps, %lld tokens (%lld selected for gradients, %.1f%%), %.1f s, %.0f tokens/s\n",
           (long long)lp_trainer_step_index(r->t), (long long)s.tokens, (long long)s.selected, 100.0 * frac,
           s.train_seconds, tps);
    if (s.truncated) printf("warning: %lld sequences were cut at the maximum length in batches\n", (long long)s.truncated);
    if (s.capped)
        printf("note: %lld sequences were not longer than --tokens %s: all their tokens were trained\n",
               (long long)s.capped, o->tokens);
    if (s.skipped_steps) printf("warning: %lld steps skipped (non-finite loss or gradient)\n", (long long)s.skipped_steps);
    peaks_note(&r->pk, 1);
    const peaks *pk = &r->pk;
    lp_mem_stats ms;
    lp_mem_get_stats(&ms);
    char a[32], b[32], c2[32];
    printf("memory (accounting allocator, exact)   current   peak (training steps)   peak (with validation)\n");
    for (int c = 0; c < LP_MEM_COUNT; c++)
        printf("  %-34s %10s  %12s  %12s\n", lp_mem_category_name((lp_mem_category)c),
               lp_format_bytes(ms.current[c], a, sizeof a), lp_format_bytes(pk->train[c], b, sizeof b),
               lp_format_bytes(pk->run[c], c2, sizeof c2));
    printf("  %-34s %10s  %12s  %12s\n", "total (peak of the sum)", lp_format_bytes(ms.total_current, a, sizeof a),
           lp_format_bytes(pk->train_total, b, sizeof b), lp_format_bytes(pk->run_total, c2, sizeof c2));
    printf("  (process RSS peak %s: a cross-check that includes code, libraries and allocator slack)\n",
           lp_format_bytes(lp_mem_rss_peak_bytes(), a, sizeof a));
    printf("summary method=%s tokens=%s", lp_ft_method_name(method), o->tokens);
    if (cls) printf(" acc_before=%.4f acc_after=%.4f f1_before=%.4f f1_after=%.4f", before->accuracy, after->accuracy,
                    before->f1_positive, after->f1_positive);
    printf(" val_before=%.4f val_after=%.4f tok_s=%.1f", before->loss, after->loss, tps);
    for (int c = 0; c < LP_MEM_COUNT; c++) printf(" %s=%zu", lp_mem_category_name((lp_mem_category)c), pk->train[c]);
    printf(" total=%zu total_with_validation=%zu\n", pk->train_total, pk->run_total);
    fflush(stdout);
    if (!r->log) return;
    const char *names[10 + LP_MEM_COUNT + 2] = {"final", "val_loss_before", "val_loss_after", "val_acc_before",
                                                "val_acc_after", "val_f1_before", "val_f1_after", "selected_fraction",
                                                "train_seconds", "tokens"};
    double vals[10 + LP_MEM_COUNT + 2] = {1.0, before->loss, after->loss, before->accuracy, after->accuracy,
                                          before->f1_positive, after->f1_positive, frac, s.train_seconds, (double)s.tokens};
    static char keys[LP_MEM_COUNT + 2][48];
    int n = 10;
    for (int c = 0; c <= LP_MEM_COUNT + 1; c++, n++) {
        snprintf(keys[c], sizeof keys[c], "peak_train_%s",
                 c < LP_MEM_COUNT ? lp_mem_category_name((lp_mem_category)c) : c == LP_MEM_COUNT ? "total" : "total_with_validation");
        names[n] = keys[c];
        vals[n] = c < LP_MEM_COUNT ? (double)pk->train[c] : c == LP_MEM_COUNT ? (double)pk->train_total : (double)pk->run_total;
    }
    if (!strcmp(keys[LP_MEM_COUNT + 1], "peak_train_total_with_validation")) names[n - 1] = "peak_total_with_validation";
    lp_metrics_row row = lp_metrics_row_empty(lp_trainer_step_index(r->t));
    row.tokens_per_s = tps;
    row.val_loss = after->loss;
    row.n_extra = n;
    row.extra_names = names;
    row.extra_values = vals;
    lp_metrics_log_write(r->log, &row);
}

int cmd_finetune(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines interleave with warnings on stderr */
    ft_opts o;
    int rc = parse(&o, argc, argv);
    if (rc) return rc;
    ft_run r;
    memset(&r, 0, sizeof r);
    lp_train_task task;
    lp_ft_method method;
    lp_nonfinite_policy nfp;
    lp_bad_input_policy on_bad, on_unknown;
    lp_schedule_kind sk;
    lp_trainer_config tc = lp_trainer_config_defaults();
    if (lp_train_task_parse(o.task, &task) || task == LP_TRAIN_MC || lp_ft_method_parse(o.method, &method) ||
        lp_nonfinite_policy_parse(o.on_nonfinite, &nfp) || ftcli_policy(o.on_bad, &on_bad) ||
        ftcli_policy(o.on_unknown, &on_unknown) || lp_schedule_parse_kind(&sk, o.schedule) ||
        lp_tokenselect_parse(&tc.select, o.tokens) || lp_tokenselect_parse_strategy(&tc.select, o.strategy)) {
        fprintf(stderr, "leanprop finetune: %s\n",
                task == LP_TRAIN_MC ? "--task mc is evaluation only (leanprop eval)" : lp_error_message());
        return 2;
    }
    size_t max_mem = 0;
    if (o.max_memory && ftcli_parse_size(o.max_memory, &max_mem)) {
        fprintf(stderr, "leanprop finetune: --max-memory expects a size such as 512M or 2G, got '%s'\n", o.max_memory);
        return 2;
    }
    const char *out = o.out ? o.out : o.resume;
    if (o.threads > 0 && lp_threads_set((int)o.threads) != LP_OK) return cli_fail("--threads");
    lp_threads_init();
    int cls = task == LP_TRAIN_CLS;

    /* model, tokenizer, data */
    if (lp_transformer_load(&r.m, o.model) != LP_OK) return cli_fail("loading the model");
    lp_transformer_config cfg = *lp_transformer_get_config(r.m);
    int32_t seq = (int32_t)o.seq;
    if (cfg.max_positions > 0 && seq > cfg.max_positions) {
        fprintf(stderr, "warning: --seq %d exceeds the model's maximum of %lld positions; using %lld\n", (int)seq,
                (long long)cfg.max_positions, (long long)cfg.max_positions);
        seq = (int32_t)cfg.max_positions;
    }
    if (ftcli_open_tokenizer(&r.tok, o.tokenizer, o.model, cfg.vocab_size) != LP_OK) {
        run_free(&r);
        return cli_fail("tokenizer (pass --tokenizer)");
    }
    lp_text_encoder enc = ftcli_encoder(r.tok, &cfg, task);
    lp_train_data_spec spec = {.task = task, .path = o.data, .val_path = o.val, .split_seed = (uint64_t)o.split_seed,
                               .max_len = seq, .labels = o.labels, .opt = lp_data_options_defaults()};
    spec.val_fraction = o.val ? 0.0 : o.val_fraction >= 0 ? o.val_fraction : ftcli_default_val_fraction(task, o.data);
    spec.opt.on_malformed = on_bad;
    spec.opt.on_unknown_label = on_unknown;
    if (o.text_field) spec.opt.text_field = o.text_field;
    if (o.label_field) spec.opt.label_field = o.label_field;
    lp_data_report rep, vrep;
    memset(&rep, 0, sizeof rep);
    memset(&vrep, 0, sizeof vrep);
    double t_load = lp_time_now();
    if (lp_train_data_load(&r.data, &spec, &enc, &rep, &vrep) != LP_OK) {
        run_free(&r);
        return cli_fail("data");
    }
    /* the tokenizer's encode caches grow with the text: not needed past here */
    lp_tokenizer_close(r.tok);
    r.tok = NULL;
    ftcli_print_report(o.data, &rep, seq);
    if (o.val) ftcli_print_report(o.val, &vrep, seq);
    printf("data: %lld training sequences (%lld tokens), %lld validation sequences%s; loaded in %.1f s\n",
           (long long)r.data.train.n, (long long)r.data.all.n_tokens, (long long)r.data.val.n,
           o.val ? "" : r.data.val.ds == &r.data.all ? " (seeded split)" : " (held-out tail)", lp_time_now() - t_load);
    if (cls && ftcli_setup_classifier(r.m, r.data.n_labels, (const char *const *)r.data.label_names,
                                         (uint64_t)o.seed) != LP_OK) {
        run_free(&r);
        return cli_fail("classifier");
    }
    cfg = *lp_transformer_get_config(r.m);

    /* method */
    lp_ft_setup setup;
    lp_ft_setup_default(&setup, method);
    setup.lora.r = (int)o.lora_r;
    setup.lora.alpha = (float)o.lora_alpha;
    setup.lora.dropout = (float)o.lora_dropout;
    setup.lora.seed = (uint64_t)o.seed;
    if (o.targets && lp_lora_config_set_targets(&setup.lora, o.targets) != LP_OK) {
        run_free(&r);
        return cli_fail("--lora-targets");
    }

    /* schedule and loop settings */
    int64_t per_step = o.batch * o.accum;
    int64_t steps = o.steps > 0 ? o.steps
                    : o.epochs > 0 ? (int64_t)ceil(o.epochs * (double)r.data.train.n / (double)per_step)
                                   : (int64_t)ceil((double)r.data.train.n / (double)per_step);
    tc.task = task;
    tc.batch = (int32_t)o.batch;
    tc.accum = (int32_t)o.accum;
    tc.max_len = seq;
    tc.steps = steps;
    tc.schedule.kind = sk;
    tc.schedule.lr = o.lr > 0 ? o.lr : method == LP_FT_FULL ? 4e-5 : 4e-4;
    tc.schedule.min_lr = o.min_lr;
    tc.schedule.warmup_steps = o.warmup;
    tc.schedule.total_steps = steps;
    tc.adam.weight_decay = (float)o.wd;
    tc.clip = (float)o.clip;
    tc.seed = (uint64_t)o.seed;
    tc.pad_id = enc.pad_id >= 0 ? enc.pad_id : 0;
    tc.on_nonfinite = nfp;
    int64_t eval_every = o.eval_every >= 0 ? o.eval_every : (steps >= 10 ? steps / 5 : steps);

    /* memory: the planner's prediction, refusal past --max-memory, then the budget */
    int64_t n_sel = ftcli_planned_selected(&tc.select, tc.batch, seq, cfg.arch == LP_ARCH_BERT);
    lp_mem_plan plan;
    int planned = lp_ft_plan_memory(&cfg, &setup, tc.batch, seq, n_sel, "adamw", &plan) == LP_OK;
    char b1[32], b2[32], b3[32];
    if (planned) {
        size_t need = plan.total_peak + lp_mem_current(LP_MEM_DATA);
        printf("memory plan: %s per step (activations %s) + data %s\n", lp_format_bytes(plan.total_peak, b1, sizeof b1),
               lp_format_bytes(plan.peak[LP_MEM_ACTIVATIONS], b2, sizeof b2),
               lp_format_bytes(lp_mem_current(LP_MEM_DATA), b3, sizeof b3));
        if (max_mem && need > max_mem) {
            fprintf(stderr, "leanprop finetune: the planned peak %s exceeds --max-memory %s; lower --batch/--seq, "
                            "use --tokens, LoRA or QLoRA\n",
                    lp_format_bytes(need, b1, sizeof b1), lp_format_bytes(max_mem, b2, sizeof b2));
            run_free(&r);
            return 1;
        }
    } else if (max_mem) {
        fprintf(stderr, "warning: no memory plan (%s); --max-memory is enforced as a budget only\n", lp_error_message());
    }
    if (max_mem) lp_mem_set_limit(max_mem);

    lp_ft_model *f;
    lp_transformer *m = r.m;
    if (lp_ft_model_new(&f, m, &setup) != LP_OK) {
        r.m = NULL;
        run_free(&r);
        return cli_fail("method");
    }
    r.f = f;
    r.m = lp_ft_model_transformer(f);
    if (lp_trainer_new(&r.t, f, &r.data.train, &tc) != LP_OK) {
        run_free(&r);
        return cli_fail("trainer");
    }
    int resumed = 0;
    if (o.resume) {
        char dir[LP_PATH_MAX];
        if (lp_path_join(dir, sizeof dir, o.resume, "state") || lp_trainer_load_state(r.t, dir)) {
            run_free(&r);
            return cli_fail("--resume");
        }
        resumed = 1;
        printf("resumed from %s at step %lld\n", o.resume, (long long)lp_trainer_step_index(r.t));
    }
    if (out && lp_dir_create(out) != LP_OK) {
        run_free(&r);
        return cli_fail("--out");
    }
    char log_path[LP_PATH_MAX] = "";
    if (o.log) snprintf(log_path, sizeof log_path, "%s", o.log);
    else if (out) lp_path_join(log_path, sizeof log_path, out, "metrics.jsonl");
    if (*log_path && resumed) { /* drop what a crashed run logged after its last checkpoint */
        static const char *const key[] = {"step"};
        double at[] = {(double)lp_trainer_step_index(r.t)};
        if (lp_metrics_log_truncate_after(log_path, key, at, 1, NULL) != LP_OK) {
            run_free(&r);
            return cli_fail("--log");
        }
    }
    if (*log_path && lp_metrics_log_open(&r.log, log_path, resumed) != LP_OK) {
        run_free(&r);
        return cli_fail("--log");
    }
    printf("finetune: %s, %s%s, tokens %s, %lld steps x %d x %d sequences of <= %d tokens, lr %g (%s, warm-up %lld), "
           "%lld trainable values, threads %d\n",
           o.model, lp_ft_method_name(method), method == LP_FT_FULL ? "" : ftcli_lora_desc(f), o.tokens,
           (long long)steps, (int)tc.batch, (int)tc.accum, (int)seq, tc.schedule.lr, lp_schedule_kind_name(sk),
           (long long)o.warmup, (long long)lp_ft_model_trainable_numel(f), lp_threads_get());

    /* validation before training (kept in the state's notes across a resume) */
    lp_eval_result before, last;
    memset(&before, 0, sizeof before);
    before.loss = before.accuracy = before.macro_f1 = before.f1_positive = NAN;
    last = before;
    int have_val = r.data.val.n > 0;
    double best_metric = NAN;
    char note[64];
    if (resumed && lp_trainer_state_peek(ftcli_join(o.resume, "state"), "val_before", note, sizeof note) == LP_OK)
        ftcli_parse_eval_note(note, &before);
    if (resumed && lp_trainer_state_peek(ftcli_join(o.resume, "state"), "best_metric", note, sizeof note) == LP_OK)
        best_metric = strtod(note, NULL);
    if (have_val && !resumed) {
        if (lp_trainer_evaluate(r.t, &r.data.val, &before) != LP_OK) {
            run_free(&r);
            return cli_fail("validation");
        }
        print_eval("before", &before, cls);
        log_eval(r.log, 0, 0.0, &before, cls);
        ftcli_format_eval_note(note, sizeof note, &before);
        lp_trainer_set_note(r.t, "val_before", note);
    }
    lp_error_clear();
    lp_mem_reset_peak(); /* the report's peaks: the training steps', and the run's from here */

    r.bar = lp_progress_new("finetune", steps);
    if (o.quiet) lp_progress_set_enabled(r.bar, 0);
    double loss_win = 0.0;
    int n_win = 0;
    int64_t evaluated_at = -1;
    int stopped = 0;
    while (lp_trainer_step_index(r.t) < steps) {
        lp_trainer_step_info si;
        lp_status st = lp_trainer_step(r.t, &si);
        if (st != LP_OK) {
            lp_progress_free(r.bar);
            r.bar = NULL;
            if (st == LP_ERR_NOMEM && max_mem)
                fprintf(stderr, "leanprop finetune: stopped cleanly at step %lld: the memory budget --max-memory %s "
                                "was exceeded\n", (long long)lp_trainer_step_index(r.t) + 1, o.max_memory);
            rc = cli_fail("training");
            break;
        }
        double tps = si.seconds > 0 ? (double)si.tokens / si.seconds : NAN;
        if (r.log) {
            lp_metrics_row row = lp_metrics_row_empty(si.step);
            row.epoch = si.epoch;
            row.loss = si.loss;
            row.lr = si.lr;
            row.tokens_per_s = tps;
            row.grad_norm = si.grad_norm;
            lp_metrics_log_write(r.log, &row);
        }
        if (si.skipped) fprintf(stderr, "\nwarning: step %lld skipped: non-finite loss or gradient\n", (long long)si.step);
        if (!si.skipped) {
            loss_win += si.loss;
            n_win++;
        }
        char prog[256];
        lp_metrics_format_progress(prog, sizeof prog, si.loss, tps);
        lp_progress_update(r.bar, si.step, "%s", prog);
        int last_step = si.step == steps;
        if ((eval_every > 0 && si.step % eval_every == 0) || last_step) {
            if (have_val) {
                if (validate(&r, &last) != LP_OK) {
                    rc = cli_fail("validation");
                    break;
                }
                evaluated_at = si.step;
                log_eval(r.log, si.step, si.epoch, &last, cls);
                if (out && better(&last, best_metric, cls)) {
                    best_metric = cls ? last.accuracy : last.loss;
                    snprintf(note, sizeof note, "%.17g", best_metric);
                    lp_trainer_set_note(r.t, "best_metric", note);
                    if (save_model(f, out, "best") != LP_OK) {
                        rc = cli_fail("saving best");
                        break;
                    }
                }
            }
            if (!r.bar || o.quiet || !ftcli_isatty()) {
                printf("step %lld/%lld | train loss %.4f | ", (long long)si.step, (long long)steps,
                       n_win ? loss_win / n_win : NAN);
                if (have_val) printf(cls ? "val acc %.4f | " : "val loss %.4f | ", cls ? last.accuracy : last.loss);
                printf("%s\n", prog);
                fflush(stdout);
            }
            loss_win = 0.0;
            n_win = 0;
            if (out && save_checkpoint(&r, out) != LP_OK) {
                rc = cli_fail("checkpoint");
                break;
            }
        }
        if (o.stop_at > 0 && si.step == o.stop_at && !last_step) {
            stopped = 1;
            if (out && save_checkpoint(&r, out) != LP_OK) rc = cli_fail("checkpoint");
            break;
        }
    }
    lp_progress_free(r.bar);
    r.bar = NULL;
    if (rc || stopped) {
        if (stopped)
            printf("stopped after step %lld (--stop-at)%s%s\n", (long long)o.stop_at, out ? "; continue with --resume " : "",
                   out ? out : "");
        run_free(&r);
        return rc;
    }
    if (have_val && evaluated_at != steps) {
        if (validate(&r, &last) != LP_OK) {
            run_free(&r);
            return cli_fail("validation");
        }
    }
    if (have_val) print_eval("after", &last, cls);
    final_report(&r, &o, method, &before, &last, cls);
    if (r.log) {
        lp_status st = lp_metrics_log_close(r.log);
        r.log = NULL;
        if (st != LP_OK) rc = cli_fail("--log");
    }
    if (o.plot && *log_path) {
        if (lp_plot_loss_svg(log_path, o.plot, NULL) != LP_OK) rc = cli_fail("--plot");
        else printf("plot: %s\n", o.plot);
    } else if (o.plot) {
        fprintf(stderr, "warning: --plot needs --log or --out (the plot is drawn from the metrics log)\n");
    }
    if (out) printf("saved: %s/last (%s), %s/best, %s/state (resume with --resume %s)\n", out,
                    method == LP_FT_FULL ? "Hugging Face model dir" : "PEFT adapter", out, out, out);
    run_free(&r);
    return rc;
}
