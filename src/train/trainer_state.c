/* Resumable training state: one checkpoint (leanprop/checkpoint.h: a
 * safetensors file with CRCs, written atomically) holding the trainable
 * tensors, the AdamW moments, the step, data position, LoRA dropout
 * generation and counters as integers, and as JSON a fingerprint of the run
 * and the caller's notes. */
#include "train/trainer_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/checkpoint.h"
#include <cjson/cJSON.h>

#define STATE_FILE "trainer_state.safetensors"
#define STATE_FORMAT "leanprop-trainer-state"
#define STATE_VERSION 1

/* Every LoRA adapter plugged in through lp_lora_hook_* (the dropout masks
 * depend on its generation counter). */
static int lora_list(lp_transformer *m, lp_lora **out, int cap)
{
    int n = 0;
    for (int i = 0; i < lp_transformer_n_linears(m); i++) {
        const lp_nn_linear *l = lp_transformer_linear(m, i);
        if (!l->hooks || !l->hooks->ctx ||
            (l->hooks->forward != lp_lora_hook_forward && l->hooks->backward != lp_lora_hook_backward))
            continue;
        lp_lora *L = ((lp_lora_target *)l->hooks->ctx)->lora;
        if (!L) continue;
        if (n < cap) out[n] = L;
        n++;
    }
    return n;
}

static void select_spec(const lp_tokenselect_config *s, char *buf, size_t size)
{
    if (s->mode == LP_TOKENSELECT_ALL) snprintf(buf, size, "all");
    else if (s->mode == LP_TOKENSELECT_COUNT) snprintf(buf, size, "%d", (int)s->k);
    else snprintf(buf, size, "%.17g", s->fraction);
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, "/%d", (int)s->strategy);
}

/* The fingerprint: key/value pairs that must match between save and resume. */
typedef struct {
    char key[32];
    char val[160];
} kv;

static int fingerprint(const lp_trainer *t, kv *f)
{
    int n = 0;
    const lp_trainer_config *c = &t->cfg;
    const lp_ft_setup *s = lp_ft_model_setup(t->f);
#define FP(k, ...) do { snprintf(f[n].key, sizeof f[n].key, "%s", k); snprintf(f[n].val, sizeof f[n].val, __VA_ARGS__); n++; } while (0)
    FP("task", "%s", lp_train_task_name(c->task));
    FP("method", "%s", lp_ft_method_name(s->method));
    FP("n_trainable", "%d", t->n_tensors);
    FP("trainable_numel", "%" PRId64, t->adam_n[0] + t->adam_n[1]);
    FP("decay_numel", "%" PRId64, t->adam_n[0]);
    FP("batch", "%d", (int)c->batch);
    FP("accum", "%d", (int)c->accum);
    FP("max_len", "%d", (int)c->max_len);
    FP("seed", "%" PRIu64, c->seed);
    FP("train_sequences", "%" PRId64, t->train.n);
    char sel[64];
    select_spec(&c->select, sel, sizeof sel);
    FP("select", "%s", sel);
#undef FP
    return n;
}

static lp_status state_path(char *buf, size_t size, const char *dir)
{
    return lp_path_join(buf, size, dir, STATE_FILE);
}

/* {"format", "version", "fingerprint": {...}, "notes": {...}, "train_seconds"} */
static char *state_json(const lp_trainer *t)
{
    cJSON *root = cJSON_CreateObject(), *fpo = cJSON_CreateObject(), *notes = cJSON_CreateObject();
    kv fp[16];
    int nfp = fingerprint(t, fp);
    for (int i = 0; i < nfp; i++) cJSON_AddStringToObject(fpo, fp[i].key, fp[i].val);
    for (int i = 0; i < t->n_notes; i++) cJSON_AddStringToObject(notes, t->note_key[i], t->note_val[i]);
    cJSON_AddStringToObject(root, "format", STATE_FORMAT);
    cJSON_AddNumberToObject(root, "version", STATE_VERSION);
    cJSON_AddItemToObject(root, "fingerprint", fpo);
    cJSON_AddItemToObject(root, "notes", notes);
    cJSON_AddNumberToObject(root, "train_seconds", t->stats.train_seconds);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

lp_status lp_trainer_save_state(lp_trainer *t, const char *dir)
{
    if (!t || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_save_state: NULL argument");
    LP_TRY(lp_dir_create(dir));
    char path[LP_PATH_MAX];
    LP_TRY(state_path(path, sizeof path, dir));
    lp_checkpoint_writer *w = lp_checkpoint_writer_new();
    if (!w) return LP_ERR_NOMEM;
    lp_status st = LP_OK;
    char name[LP_CHECKPOINT_NAME_MAX];
    for (int i = 0; i < t->n_tensors && st == LP_OK; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(t->f, i);
        int64_t shape[1] = {p.numel};
        snprintf(name, sizeof name, "param.%s", p.name);
        st = lp_checkpoint_writer_add_tensor(w, name, p.data, shape, 1);
    }
    for (int g = 0; g < 2 && st == LP_OK; g++) {
        if (!t->adam[g]) continue;
        float *mo, *vo;
        lp_adam_moments(t->adam[g], &mo, &vo);
        int64_t shape[1] = {t->adam_n[g]};
        snprintf(name, sizeof name, "adam%d.exp_avg", g);
        st = lp_checkpoint_writer_add_tensor(w, name, mo, shape, 1);
        snprintf(name, sizeof name, "adam%d.exp_avg_sq", g);
        if (st == LP_OK) st = lp_checkpoint_writer_add_tensor(w, name, vo, shape, 1);
    }
    lp_lora *L[1] = {NULL};
    int nl = lora_list(t->m, L, 1);
    struct {
        const char *k;
        int64_t v;
    } ints[] = {
        {"step", t->step},
        {"cursor", t->cursor},
        {"adam_steps", t->adam[0] ? lp_adam_steps(t->adam[0]) : t->adam[1] ? lp_adam_steps(t->adam[1]) : 0},
        {"lora_step", nl ? (int64_t)L[0]->step : 0},
        {"lora_advance", nl ? L[0]->advance : 0},
        {"stat_tokens", t->stats.tokens},
        {"stat_selected", t->stats.selected},
        {"stat_truncated", t->stats.truncated},
        {"stat_capped", t->stats.capped},
        {"stat_skipped_steps", t->stats.skipped_steps},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == LP_OK; i++)
        st = lp_checkpoint_writer_add_i64(w, ints[i].k, ints[i].v);
    char *json = st == LP_OK ? state_json(t) : NULL;
    if (st == LP_OK && !json) st = lp_error(LP_ERR_NOMEM, "training state JSON");
    if (st == LP_OK) st = lp_checkpoint_writer_set_json(w, json);
    free(json);
    if (st == LP_OK) st = lp_checkpoint_writer_save(w, path);
    lp_checkpoint_writer_free(w);
    return st == LP_OK ? LP_OK : lp_error_context(st, "saving the training state");
}

/* The state's JSON, checked to be ours. */
static lp_status open_json(const lp_checkpoint *c, const char *path, cJSON **out)
{
    const char *js = lp_checkpoint_json(c);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, STATE_FORMAT) || !cJSON_IsNumber(ver)) {
        cJSON_Delete(root);
        return lp_error(LP_ERR_FORMAT, "%s: not a leanprop training state", path);
    }
    if (ver->valuedouble != STATE_VERSION) {
        cJSON_Delete(root);
        return lp_error(LP_ERR_UNSUPPORTED, "%s: training state version %g (this build reads %d)", path,
                        ver->valuedouble, STATE_VERSION);
    }
    *out = root;
    return LP_OK;
}

lp_status lp_trainer_load_state(lp_trainer *t, const char *dir)
{
    if (!t || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_load_state: NULL argument");
    char path[LP_PATH_MAX];
    LP_TRY(state_path(path, sizeof path, dir));
    if (!lp_file_exists(path)) return lp_error(LP_ERR_NOT_FOUND, "%s: no training state to resume from", path);
    lp_checkpoint *c;
    LP_TRY(lp_checkpoint_open(&c, path));
    cJSON *root = NULL;
    lp_status st = open_json(c, path, &root);
    if (st != LP_OK) goto done;
    const cJSON *fpo = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
    kv fp[16];
    int nfp = fingerprint(t, fp);
    for (int i = 0; i < nfp; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(fpo, fp[i].key);
        const char *vs = cJSON_IsString(v) ? v->valuestring : NULL;
        if (!vs || strcmp(vs, fp[i].val)) {
            st = lp_error(LP_ERR_INVALID_ARG, "%s: the saved run has %s = %s, this run %s; resume with the same settings",
                          path, fp[i].key, vs ? vs : "(none)", fp[i].val);
            goto done;
        }
    }
    int64_t step = 0, cursor = 0, adam_steps = 0, lora_step = 0, lora_adv = 0;
    if ((st = lp_checkpoint_get_i64(c, "step", &step)) || (st = lp_checkpoint_get_i64(c, "cursor", &cursor)) ||
        (st = lp_checkpoint_get_i64(c, "adam_steps", &adam_steps)) ||
        (st = lp_checkpoint_get_i64(c, "lora_step", &lora_step)) ||
        (st = lp_checkpoint_get_i64(c, "lora_advance", &lora_adv)))
        goto done;
    if (step < 0 || cursor < 0 || adam_steps < 0 || adam_steps > step || lora_step < 0) {
        st = lp_error(LP_ERR_FORMAT, "%s: inconsistent counters (step %lld, cursor %lld, adam steps %lld)", path,
                      (long long)step, (long long)cursor, (long long)adam_steps);
        goto done;
    }
    char name[LP_CHECKPOINT_NAME_MAX];
    for (int i = 0; i < t->n_tensors && st == LP_OK; i++) {
        lp_ft_tensor p = lp_ft_model_trainable(t->f, i);
        snprintf(name, sizeof name, "param.%s", p.name);
        st = lp_checkpoint_get_tensor(c, name, p.data, (size_t)p.numel);
    }
    for (int g = 0; g < 2 && st == LP_OK; g++) {
        if (!t->adam[g]) continue;
        float *mo, *vo;
        lp_adam_moments(t->adam[g], &mo, &vo);
        snprintf(name, sizeof name, "adam%d.exp_avg", g);
        st = lp_checkpoint_get_tensor(c, name, mo, (size_t)t->adam_n[g]);
        snprintf(name, sizeof name, "adam%d.exp_avg_sq", g);
        if (st == LP_OK) st = lp_checkpoint_get_tensor(c, name, vo, (size_t)t->adam_n[g]);
        if (st == LP_OK) st = lp_adam_set_steps(t->adam[g], adam_steps);
    }
    if (st != LP_OK) goto done;
    t->step = step;
    t->cursor = cursor;
    t->perm_epoch = -1;
    struct {
        const char *k;
        int64_t *dst;
    } stats[] = {{"stat_tokens", &t->stats.tokens},       {"stat_selected", &t->stats.selected},
                 {"stat_truncated", &t->stats.truncated}, {"stat_capped", &t->stats.capped},
                 {"stat_skipped_steps", &t->stats.skipped_steps}};
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) lp_checkpoint_get_i64(c, stats[i].k, stats[i].dst);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "train_seconds");
    if (cJSON_IsNumber(ts)) t->stats.train_seconds = ts->valuedouble;
    t->stats.sequences_seen = cursor;
    lp_lora *L[1024];
    int nl = lora_list(t->m, L, 1024);
    for (int i = 0; i < nl && i < 1024; i++) {
        L[i]->step = (uint64_t)lora_step;
        L[i]->advance = lora_adv ? 1 : 0;
    }
    const cJSON *notes = cJSON_GetObjectItemCaseSensitive(root, "notes"), *it;
    t->n_notes = 0;
    cJSON_ArrayForEach(it, notes)
        if (cJSON_IsString(it)) lp_trainer_set_note(t, it->string, it->valuestring);
    lp_error_clear();
done:
    cJSON_Delete(root);
    lp_checkpoint_close(c);
    return st;
}

lp_status lp_trainer_state_peek(const char *dir, const char *key, char *buf, size_t size)
{
    if (!dir || !key || !buf || size == 0) return lp_error(LP_ERR_INVALID_ARG, "lp_trainer_state_peek: NULL argument");
    char path[LP_PATH_MAX];
    LP_TRY(state_path(path, sizeof path, dir));
    if (!lp_file_exists(path)) return lp_error(LP_ERR_NOT_FOUND, "%s: no training state", path);
    lp_checkpoint *c;
    LP_TRY(lp_checkpoint_open(&c, path));
    cJSON *root = NULL;
    lp_status st = open_json(c, path, &root);
    int64_t v;
    if (st == LP_OK) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "notes"), key);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "fingerprint"), key);
        if (cJSON_IsString(n)) snprintf(buf, size, "%s", n->valuestring);
        else if (cJSON_IsString(f)) snprintf(buf, size, "%s", f->valuestring);
        else if (lp_checkpoint_get_i64(c, key, &v) == LP_OK) snprintf(buf, size, "%lld", (long long)v);
        else st = lp_error(LP_ERR_NOT_FOUND, "%s: no \"%s\" in the training state", path, key);
    }
    cJSON_Delete(root);
    lp_checkpoint_close(c);
    return st;
}
