/* The fine-tuning loop: micro-batches, gradient accumulation, TokenTune
 * selection, clipping, AdamW with the schedule, non-finite handling. State
 * save/load is in trainer_state.c, evaluations in trainer_eval.c. */
#include "train/trainer_internal.h"

#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/log.h"
#include "leanprop/nonfinite.h"

static const char *const task_names[LP_TRAIN_TASK_COUNT] = {"lm", "cls", "mc"};

const char *lp_train_task_name(lp_train_task t)
{
    return t >= 0 && t < LP_TRAIN_TASK_COUNT ? task_names[t] : "?";
}

lp_status lp_train_task_parse(const char *s, lp_train_task *out)
{
    for (int i = 0; s && i < LP_TRAIN_TASK_COUNT; i++)
        if (!strcmp(s, task_names[i])) {
            *out = (lp_train_task)i;
            return LP_OK;
        }
    return lp_error(LP_ERR_INVALID_ARG, "unknown task \"%s\" (expected lm, cls or mc)", s ? s : "(null)");
}

lp_trainer_config lp_trainer_config_defaults(void)
{
    lp_trainer_config c;
    memset(&c, 0, sizeof c);
    c.task = LP_TRAIN_LM;
    c.batch = 8;
    c.accum = 1;
    c.max_len = 512;
    c.steps = 100;
    c.schedule = lp_schedule_defaults();
    c.adam = lp_adamw_defaults();
    c.clip = 1.0f;
    c.select = lp_tokenselect_defaults();
    c.seed = 42;
    c.pad_id = 0;
    c.on_nonfinite = LP_NONFINITE_STOP;
    return c;
}

lp_status lp_trainer_config_validate(const lp_trainer_config *c)
{
    if (!c) return lp_error(LP_ERR_INVALID_ARG, "trainer config: NULL");
    if (c->task != LP_TRAIN_LM && c->task != LP_TRAIN_CLS)
        return lp_error(LP_ERR_INVALID_ARG, "trainer config: task %s cannot be trained (lm or cls)", lp_train_task_name(c->task));
    if (c->batch <= 0 || c->batch > (1 << 20)) return lp_error(LP_ERR_INVALID_ARG, "trainer config: batch %d", (int)c->batch);
    if (c->accum <= 0 || c->accum > (1 << 20)) return lp_error(LP_ERR_INVALID_ARG, "trainer config: accum %d", (int)c->accum);
    if (c->max_len < 2) return lp_error(LP_ERR_INVALID_ARG, "trainer config: max_len %d (>= 2)", (int)c->max_len);
    if (c->steps <= 0) return lp_error(LP_ERR_INVALID_ARG, "trainer config: steps %lld (> 0)", (long long)c->steps);
    if (!(c->clip >= 0.0f) || !isfinite(c->clip)) return lp_error(LP_ERR_INVALID_ARG, "trainer config: clip %g", (double)c->clip);
    if (c->pad_id < 0) return lp_error(LP_ERR_INVALID_ARG, "trainer config: pad_id %d", (int)c->pad_id);
    lp_schedule s = c->schedule;
    if (s.total_steps == 0) s.total_steps = c->steps;
    LP_TRY(lp_schedule_validate(&s));
    LP_TRY(lp_tokenselect_validate(&c->select));
    return LP_OK;
}

/* ------------------------------------------------------------- lifecycle */

lp_status lp_trainer_new(lp_trainer **out, lp_ft_model *model, const lp_token_subset *train,
                         const lp_trainer_config *cfg)
{
    if (!out || !model || !train || !train->ds || !cfg) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: NULL argument");
    *out = NULL;
    LP_TRY(lp_trainer_config_validate(cfg));
    if (train->n <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: no training sequences");
    for (int64_t i = 0; train->idx && i < train->n; i++)
        if (train->idx[i] < 0 || train->idx[i] >= train->ds->n)
            return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: training index %lld outside the dataset (%lld)",
                            (long long)train->idx[i], (long long)train->ds->n);
    if (cfg->task == LP_TRAIN_CLS && !train->ds->label)
        return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: classification data without labels");
    int nt = lp_ft_model_n_trainable(model);
    if (nt <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: the model has no trainable tensors");
    lp_trainer *t = lp_alloc(LP_MEM_DATA, sizeof *t);
    if (!t) return LP_ERR_NOMEM;
    t->f = model;
    t->m = lp_ft_model_transformer(model);
    t->cfg = *cfg;
    if (t->cfg.schedule.total_steps == 0) t->cfg.schedule.total_steps = cfg->steps;
    t->cfg.select.encoder = lp_transformer_get_config(t->m)->arch == LP_ARCH_BERT;
    t->train = *train;
    t->n_tensors = nt;
    lp_status st = LP_OK;
    t->offset = lp_alloc_array(LP_MEM_DATA, (size_t)nt, sizeof *t->offset);
    t->group = lp_alloc_array(LP_MEM_DATA, (size_t)nt, sizeof *t->group);
    t->grads = lp_alloc_array(LP_MEM_DATA, (size_t)nt, sizeof *t->grads);
    t->sizes = lp_alloc_array(LP_MEM_DATA, (size_t)nt, sizeof *t->sizes);
    t->perm = lp_alloc_array(LP_MEM_DATA, (size_t)train->n, sizeof *t->perm);
    t->idx = lp_alloc_array(LP_MEM_DATA, (size_t)cfg->batch, sizeof *t->idx);
    t->amask = lp_alloc_array(LP_MEM_DATA, (size_t)cfg->batch * (size_t)cfg->max_len, 1);
    if (!t->offset || !t->group || !t->grads || !t->sizes || !t->perm || !t->idx || !t->amask) {
        st = lp_error_context(LP_ERR_NOMEM, "lp_trainer_new");
        goto fail;
    }
    t->perm_epoch = -1;
    for (int i = 0; i < nt; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(model, i);
        if (!p.data || !p.grad || p.numel <= 0) {
            st = lp_error(LP_ERR_INVALID_ARG, "lp_trainer_new: trainable tensor %s has no data or gradient",
                          p.name ? p.name : "?");
            goto fail;
        }
        int g = p.decay && cfg->adam.weight_decay > 0.0f ? 0 : 1;
        t->group[i] = (uint8_t)g;
        t->offset[i] = t->adam_n[g];
        t->adam_n[g] += p.numel;
        t->sizes[i] = p.numel;
    }
    for (int g = 0; g < 2; g++) {
        if (t->adam_n[g] == 0) continue;
        lp_adam_config ac = cfg->adam;
        ac.decoupled = 1;
        if (g == 1) ac.weight_decay = 0.0f;
        if ((st = lp_adam_new(&t->adam[g], t->adam_n[g], &ac)) != LP_OK) goto fail;
    }
    if ((st = lp_batch_init(&t->batch, cfg->batch, cfg->max_len)) != LP_OK) goto fail;
    if ((st = lp_tokenselect_init(&t->sel, cfg->batch, cfg->max_len)) != LP_OK) goto fail;
    *out = t;
    return LP_OK;
fail:
    lp_trainer_free(t);
    return st;
}

void lp_trainer_free(lp_trainer *t)
{
    if (!t) return;
    for (int g = 0; g < 2; g++) lp_adam_free(t->adam[g]);
    lp_batch_free(&t->batch);
    lp_tokenselect_free(&t->sel);
    lp_free(t->offset);
    lp_free(t->group);
    lp_free(t->grads);
    lp_free(t->sizes);
    lp_free(t->perm);
    lp_free(t->idx);
    lp_free(t->amask);
    lp_free(t);
}

int64_t lp_trainer_step_index(const lp_trainer *t)
{
    return t ? t->step : 0;
}

lp_ft_model *lp_trainer_model(lp_trainer *t)
{
    return t ? t->f : NULL;
}

const lp_trainer_config *lp_trainer_get_config(const lp_trainer *t)
{
    return t ? &t->cfg : NULL;
}

void lp_trainer_get_stats(const lp_trainer *t, lp_trainer_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (t) *out = t->stats;
}

lp_status lp_trainer_set_note(lp_trainer *t, const char *key, const char *value)
{
    if (!t || !key || !value || !*key || strlen(key) >= LP_TRAINER_NOTE_KEY || strlen(value) >= LP_TRAINER_NOTE_VAL)
        return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_set_note: bad key or value");
    int i = 0;
    while (i < t->n_notes && strcmp(t->note_key[i], key)) i++;
    if (i == t->n_notes) {
        if (t->n_notes == LP_TRAINER_MAX_NOTES) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_set_note: too many notes");
        t->n_notes++;
    }
    snprintf(t->note_key[i], sizeof t->note_key[i], "%s", key);
    snprintf(t->note_val[i], sizeof t->note_val[i], "%s", value);
    return LP_OK;
}

/* ------------------------------------------------------------- the step */

/* The next `batch` sequences of the stream (a seeded permutation per epoch,
 * continuing across epoch ends) into t->batch. */
static lp_status next_batch(lp_trainer *t)
{
    int64_t n = t->train.n;
    int32_t B = t->cfg.batch;
    for (int32_t i = 0; i < B; i++) {
        int64_t epoch = t->cursor / n, pos = t->cursor % n;
        if (epoch != t->perm_epoch) {
            lp_data_epoch_order(t->perm, n, t->cfg.seed, epoch);
            t->perm_epoch = epoch;
        }
        int64_t k = t->perm[pos];
        t->idx[i] = t->train.idx ? t->train.idx[k] : k;
        t->cursor++;
    }
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    LP_TRY(lp_batch_fill(&t->batch, t->train.ds, t->idx, B, 0, t->cfg.pad_id, &rep));
    t->stats.truncated += rep.truncated;
    return LP_OK;
}

/* attention mask (B, T_used) from the lengths; NULL when nothing is padded. */
const uint8_t *lp_trainer__attention_mask(uint8_t *buf, const lp_batch *b)
{
    int padded = 0;
    for (int32_t r = 0; r < b->n_seq; r++) padded |= b->lengths[r] < b->T_used;
    if (!padded) return NULL;
    for (int32_t r = 0; r < b->n_seq; r++)
        for (int32_t s = 0; s < b->T_used; s++) buf[(size_t)r * b->T_used + s] = s < b->lengths[r];
    return buf;
}

/* The first trainable tensor whose gradient holds a NaN or Inf: its message
 * ("step S: non-finite value (nan) in gradients of NAME at index I ...") into why. */
static void nonfinite_gradient(lp_trainer *t, int64_t step, char *why, size_t size)
{
    snprintf(why, size, "step %lld: non-finite gradient norm", (long long)step);
    for (int i = 0; i < t->n_tensors; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(t->f, i);
        if (lp_check_finite_kind(p.grad, (size_t)p.numel, "gradients", p.name, step) != LP_OK) {
            snprintf(why, size, "%s", lp_error_message());
            return;
        }
    }
}

static lp_status one_micro(lp_trainer *t, int64_t micro, double *loss, int64_t *count)
{
    const lp_trainer_config *c = &t->cfg;
    lp_batch *b = &t->batch;
    LP_TRY(next_batch(t));
    lp_rng r;
    lp_tokenselect_rng_for_step(&r, c->seed, micro);
    LP_TRY(lp_tokenselect_select(&t->sel, &c->select, b->n_seq, b->T_used, b->lengths, b->labels, &r));
    const uint8_t *am = lp_trainer__attention_mask(t->amask, b);
    lp_transformer_batch tb = {.B = b->n_seq, .T = b->T_used, .input_ids = b->input_ids, .attention_mask = am};
    tb.labels = c->task == LP_TRAIN_CLS ? b->class_label : b->labels;
    /* every real token with nothing padded is the plain path (no mask) */
    tb.selected = c->select.mode == LP_TOKENSELECT_ALL && !am ? NULL : t->sel.mask;
    lp_transformer_forward_opts o = {.need_grad = 1, .grad_scale = 1.0f / (float)c->accum};
    float l = 0.0f;
    LP_TRY(lp_transformer_forward(t->m, &tb, &o, &l));
    t->stats.tokens += b->n_tokens;
    t->stats.selected += t->sel.total_selected;
    t->stats.capped += t->sel.n_capped;
    *loss = l;
    *count = lp_transformer_last_count(t->m);
    if (!isfinite(l)) {
        lp_transformer_release_buffers(t->m);
        return LP_ERR_NUMERIC;
    }
    return lp_transformer_backward(t->m);
}

lp_status lp_trainer_step(lp_trainer *t, lp_trainer_step_info *info)
{
    if (!t) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_step: NULL trainer");
    const lp_trainer_config *c = &t->cfg;
    double t0 = lp_time_now();
    lp_trainer_step_info si;
    memset(&si, 0, sizeof si);
    int64_t tok0 = t->stats.tokens, sel0 = t->stats.selected;
    lp_ft_model_set_training(t->f, 1);
    lp_ft_model_zero_grad(t->f);
    double loss_sum = 0.0;
    int bad = 0;
    char why[600] = "";
    for (int32_t a = 0; a < c->accum; a++) {
        int64_t micro = t->step * c->accum + a;
        if (bad) { /* keep the data position of an uninterrupted run */
            LP_TRY(next_batch(t));
            continue;
        }
        double l = NAN;
        int64_t cnt = 0;
        lp_status st = one_micro(t, micro, &l, &cnt);
        si.targets += cnt;
        if (st == LP_ERR_NUMERIC) {
            bad = 1;
            float lf = (float)l;
            lp_check_finite(&lf, 1, "loss", t->step + 1);
            snprintf(why, sizeof why, "%s (micro-batch %d)", lp_error_message(), (int)a);
            loss_sum = NAN;
            continue;
        }
        if (st != LP_OK) return lp_error_context(st, "step %lld", (long long)(t->step + 1));
        loss_sum += l;
    }
    float norm = NAN;
    if (!bad) {
        for (int i = 0; i < t->n_tensors; i++) t->grads[i] = lp_ft_model_trainable(t->f, i).grad;
        lp_status st = c->clip > 0.0f ? lp_clip_grad_norm(t->grads, t->sizes, t->n_tensors, c->clip, &norm)
                                      : lp_grad_norm(t->grads, t->sizes, t->n_tensors, &norm);
        if (st == LP_OK && !isfinite(norm)) st = LP_ERR_NUMERIC;
        if (st == LP_ERR_NUMERIC) {
            bad = 1;
            nonfinite_gradient(t, t->step + 1, why, sizeof why);
        } else if (st != LP_OK) {
            return st;
        }
    }
    si.step = t->step + 1;
    si.lr = lp_schedule_lr(&c->schedule, t->step);
    si.loss = loss_sum / c->accum;
    si.grad_norm = norm;
    if (bad) {
        lp_ft_model_zero_grad(t->f);
        if (c->on_nonfinite == LP_NONFINITE_STOP) {
            return lp_error(LP_ERR_NUMERIC, "%s (--on-nonfinite skip drops such steps)", why);
        }
        t->stats.skipped_steps++;
        si.skipped = 1;
    } else {
        for (int g = 0; g < 2; g++) {
            if (!t->adam[g]) continue;
            LP_TRY(lp_adam_set_lr(t->adam[g], (float)si.lr));
            LP_TRY(lp_adam_begin_step(t->adam[g]));
        }
        for (int i = 0; i < t->n_tensors; i++) {
            lp_ft_tensor p = lp_ft_model_trainable(t->f, i);
            LP_TRY(lp_adam_update(t->adam[t->group[i]], t->offset[i], p.data, p.grad, p.numel));
        }
    }
    t->step++;
    si.tokens = t->stats.tokens - tok0;
    si.selected = t->stats.selected - sel0;
    si.epoch = (double)t->cursor / (double)t->train.n;
    si.seconds = lp_time_now() - t0;
    t->stats.sequences_seen = t->cursor;
    t->stats.train_seconds += si.seconds;
    if (info) *info = si;
    return LP_OK;
}

lp_status lp_trainer_evaluate(lp_trainer *t, const lp_token_subset *data, lp_eval_result *out)
{
    if (!t || !data || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_evaluate: NULL argument");
    lp_ft_model_set_training(t->f, 0);
    int32_t eb = t->cfg.batch;
    lp_status st;
    if (t->cfg.task == LP_TRAIN_CLS) {
        st = lp_eval_cls(t->m, data, eb, t->cfg.max_len, t->cfg.pad_id, 0, NULL, out);
    } else {
        st = lp_eval_lm(t->m, data, eb, t->cfg.max_len, t->cfg.pad_id, out);
    }
    lp_ft_model_set_training(t->f, 1);
    lp_transformer_release_buffers(t->m);
    return st;
}
