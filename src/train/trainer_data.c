/* Training / validation data as `leanprop finetune` and `eval` read it: a
 * text corpus with a held-out tail, instruction JSONL, or classification
 * files, with a separate validation file or a seeded split. */
#include "train/trainer_internal.h"

#include <string.h>
#include <strings.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && !strcasecmp(path + n - e, ext);
}

static lp_status copy_labels(lp_train_data *d, const lp_text_dataset *ds)
{
    int32_t n = 0;
    const char *const *names = lp_text_dataset_labels(ds, &n);
    if (!names || n <= 0) return LP_OK;
    size_t bytes = (size_t)n * sizeof(char *);
    for (int32_t i = 0; i < n; i++) bytes += strlen(names[i]) + 1;
    char **out = lp_alloc(LP_MEM_DATA, bytes);
    if (!out) return LP_ERR_NOMEM;
    char *p = (char *)(out + n);
    for (int32_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        out[i] = p;
        p += l;
    }
    d->label_names = out;
    d->n_labels = n;
    return LP_OK;
}

/* Load a text dataset of the task (LM JSONL or classification) and tokenise it. */
static lp_status load_examples(lp_token_dataset *out, lp_train_data *d, const lp_train_data_spec *s, const char *path,
                               const lp_data_options *opt, const lp_text_encoder *enc, lp_data_report *rep,
                               int keep_labels)
{
    lp_text_dataset *tds = NULL;
    if (s->task == LP_TRAIN_CLS) LP_TRY(lp_cls_dataset_load(&tds, path, LP_CLS_FORMAT_AUTO, opt, rep));
    else LP_TRY(lp_lm_dataset_load(&tds, path, opt, rep));
    lp_status st = LP_OK;
    if (keep_labels) st = copy_labels(d, tds);
    if (st == LP_OK) st = lp_token_dataset_from_text(out, tds, enc, s->max_len, rep);
    lp_text_dataset_free(tds);
    if (st == LP_OK && out->n == 0) {
        lp_token_dataset_free(out);
        st = lp_error(LP_ERR_FORMAT, "%s: no usable sequences after tokenisation", path);
    }
    return st;
}

lp_status lp_train_data_load(lp_train_data *d, const lp_train_data_spec *s, const lp_text_encoder *enc,
                             lp_data_report *rep, lp_data_report *val_rep)
{
    if (!d || !s || !s->path || !enc) return lp_error(LP_ERR_INVALID_ARG, "lp_train_data_load: NULL argument");
    memset(d, 0, sizeof *d);
    if (s->task != LP_TRAIN_LM && s->task != LP_TRAIN_CLS)
        return lp_error(LP_ERR_INVALID_ARG, "lp_train_data_load: task %s has no training data", lp_train_task_name(s->task));
    if (s->max_len < 2) return lp_error(LP_ERR_INVALID_ARG, "lp_train_data_load: max_len %d", (int)s->max_len);
    if (!(s->val_fraction >= 0.0 && s->val_fraction < 1.0))
        return lp_error(LP_ERR_INVALID_ARG, "validation fraction %g outside [0, 1)", s->val_fraction);
    lp_data_report dummy;
    if (!val_rep) {
        memset(&dummy, 0, sizeof dummy);
        val_rep = &dummy;
    }
    lp_status st = LP_OK;
    char **fixed = NULL;
    int32_t n_fixed = 0;
    lp_data_options opt = s->opt;
    if (s->task == LP_TRAIN_CLS && s->labels) {
        LP_TRY(lp_data_parse_label_list(s->labels, &fixed, &n_fixed));
        opt.labels = (const char *const *)fixed;
        opt.n_labels = n_fixed;
    }
    int corpus = s->task == LP_TRAIN_LM && has_ext(s->path, ".txt");
    if (corpus) {
        double vf = s->val_path ? 0.0 : s->val_fraction;
        st = lp_text_corpus_load(&d->all, vf > 0 ? &d->val_file : NULL, s->path, enc, s->max_len, vf, rep);
        if (st == LP_OK) {
            d->train = (lp_token_subset){&d->all, NULL, d->all.n};
            d->val = (lp_token_subset){&d->val_file, NULL, vf > 0 ? d->val_file.n : 0};
        }
    } else {
        st = load_examples(&d->all, d, s, s->path, &opt, enc, rep, 1);
        if (st == LP_OK && !s->val_path && s->val_fraction > 0) {
            int64_t nt = 0, nv = 0;
            st = lp_data_split(d->all.n, s->val_fraction, s->split_seed, &d->train_idx, &nt, &d->val_idx, &nv);
            if (st == LP_OK && nt == 0) st = lp_error(LP_ERR_FORMAT, "%s: %lld sequences leave none for training after a %g split",
                                                      s->path, (long long)d->all.n, s->val_fraction);
            if (st == LP_OK) {
                d->train = (lp_token_subset){&d->all, d->train_idx, nt};
                d->val = (lp_token_subset){&d->all, d->val_idx, nv};
            }
        } else if (st == LP_OK) {
            d->train = (lp_token_subset){&d->all, NULL, d->all.n};
        }
    }
    if (st == LP_OK && s->val_path) {
        if (has_ext(s->val_path, ".txt") && s->task == LP_TRAIN_LM) {
            st = lp_text_corpus_load(&d->val_file, NULL, s->val_path, enc, s->max_len, 0.0, val_rep);
        } else {
            lp_data_options vopt = opt;
            if (s->task == LP_TRAIN_CLS && d->label_names) {
                vopt.labels = (const char *const *)d->label_names;
                vopt.n_labels = d->n_labels;
            }
            st = load_examples(&d->val_file, d, s, s->val_path, &vopt, enc, val_rep, 0);
        }
        if (st == LP_OK) d->val = (lp_token_subset){&d->val_file, NULL, d->val_file.n};
    }
    lp_free(fixed);
    if (st != LP_OK) lp_train_data_free(d);
    return st;
}

void lp_train_data_free(lp_train_data *d)
{
    if (!d) return;
    lp_token_dataset_free(&d->all);
    lp_token_dataset_free(&d->val_file);
    lp_free(d->train_idx);
    lp_free(d->val_idx);
    lp_free(d->label_names);
    memset(d, 0, sizeof *d);
}
