/* lp_ft_model <-> PEFT adapter directories, including a fully trained
 * classification head as PEFT's modules_to_save (SEQ_CLS: "classifier" /
 * "score"), which leanprop/peft.h does not cover: the config key is patched
 * here and the head tensors are written beside the LoRA pairs under
 * "base_model.model.<head>.weight|bias" (PEFT's saved form). */
#include "train/finetune_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/safetensors.h"

/* The head linear (BERT "classifier", decoder "score") when its weight is trained. */
static lp_nn_linear *trained_head(const lp_ft_model *f)
{
    lp_transformer *m = f->m;
    lp_nn_linear *h = lp_transformer_find_linear(m, "classifier");
    if (!h) h = lp_transformer_find_linear(m, "score");
    return h && h->weight && h->weight->grad && lp_ft_is_classifier(m) ? h : NULL;
}

static lp_nn_linear *any_head(lp_transformer *m)
{
    lp_nn_linear *h = lp_transformer_find_linear(m, "classifier");
    if (!h) h = lp_transformer_find_linear(m, "score");
    return h && lp_ft_is_classifier(m) ? h : NULL;
}

/* ------------------------------------------------------------ config text */

/* Read adapter_config.json, take modules_to_save out (into *mts, a list of
 * at most 4 names, *n_mts of them), parse the rest with lp_peft_parse_config. */
static lp_status read_config(lp_lora_config *cfg, const char *dir, char mts[4][64], int *n_mts)
{
    char path[LP_PATH_MAX];
    LP_TRY(lp_path_join(path, sizeof path, dir, LP_PEFT_CONFIG_NAME));
    char *text = NULL;
    size_t len = 0;
    LP_TRY(lp_file_read_all(path, LP_PEFT_MAX_CONFIG_BYTES, LP_MEM_SCRATCH, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    lp_free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lp_error(LP_ERR_FORMAT, "%s: not a JSON object", path);
    }
    *n_mts = 0;
    lp_status st = LP_OK;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v)) st = lp_error(LP_ERR_FORMAT, "%s: modules_to_save must be a list or null", path);
        cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (st != LP_OK) break;
            if (!cJSON_IsString(e) || strlen(e->valuestring) >= 64 || *n_mts == 4) {
                st = lp_error(LP_ERR_UNSUPPORTED, "%s: modules_to_save: only the classification head "
                              "(\"classifier\", \"score\") is supported", path);
                break;
            }
            int dup = 0;
            for (int i = 0; i < *n_mts; i++) dup |= !strcmp(mts[i], e->valuestring);
            if (!dup) snprintf(mts[(*n_mts)++], 64, "%s", e->valuestring);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(root, "modules_to_save");
    }
    for (int i = 0; st == LP_OK && i < *n_mts; i++)
        if (strcmp(mts[i], "classifier") && strcmp(mts[i], "score"))
            st = lp_error(LP_ERR_UNSUPPORTED, "%s: modules_to_save \"%s\": only the classification head "
                          "(\"classifier\", \"score\") is supported", path, mts[i]);
    char *rest = st == LP_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (st == LP_OK && !rest) st = lp_error(LP_ERR_NOMEM, "%s", path);
    if (st == LP_OK) st = lp_peft_parse_config(cfg, rest, path);
    free(rest);
    return st;
}

static lp_status write_config(const lp_lora_config *cfg, const char *dir, int with_head)
{
    char path[LP_PATH_MAX];
    LP_TRY(lp_path_join(path, sizeof path, dir, LP_PEFT_CONFIG_NAME));
    char *text = NULL;
    LP_TRY(lp_peft_config_to_json(cfg, &text));
    lp_status st = LP_OK;
    if (with_head) { /* PEFT's SEQ_CLS models save both names */
        static const char key[] = "\"modules_to_save\": null", list[] = "\"modules_to_save\": [\n    \"classifier\",\n    \"score\"\n  ]";
        char *at = strstr(text, key);
        char *out = at ? malloc(strlen(text) + sizeof list) : NULL;
        if (!at) st = lp_error(LP_ERR_INTERNAL, "adapter config text has no modules_to_save key");
        else if (!out) st = lp_error(LP_ERR_NOMEM, "%s", path);
        if (out) {
            size_t pre = (size_t)(at - text);
            memcpy(out, text, pre);
            strcpy(out + pre, list);
            strcat(out, at + strlen(key));
            free(text);
            text = out;
        }
    }
    if (st == LP_OK) st = lp_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

/* ------------------------------------------------------------ save */

lp_status lp_ft_save_adapter(const lp_ft_model *f, const char *dir)
{
    static const char fn[] = "lp_ft_model_save";
    if (lp_ft_n_loras(f) == 0) return lp_error(LP_ERR_INVALID_ARG, "%s: no adapters to save", fn);
    lp_nn_linear *head = trained_head(f);
    char wpath[LP_PATH_MAX];
    LP_TRY(lp_path_join(wpath, sizeof wpath, dir, LP_PEFT_WEIGHTS_NAME));
    LP_TRY(lp_dir_create(dir));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    if (!w) return lp_error_context(LP_ERR_NOMEM, "%s", fn);
    lp_status st = lp_safetensors_writer_set_metadata(w, "format", "pt");
    for (int i = 0; st == LP_OK && i < f->n_ad; i++) {
        const lp_lora *L = f->ad[i].lora;
        if (!L) continue; /* QLoRA: NF4 weight without adapter */
        char an[512], bn[512];
        int64_t sa[2] = {L->r, L->C}, sb[2] = {L->OC, L->r};
        if ((st = lp_peft_tensor_name(an, sizeof an, f->ad[i].module, 'A', NULL)) != LP_OK) break;
        if ((st = lp_peft_tensor_name(bn, sizeof bn, f->ad[i].module, 'B', NULL)) != LP_OK) break;
        if ((st = lp_safetensors_writer_add_f32(w, an, L->A, sa, 2)) != LP_OK) break;
        st = lp_safetensors_writer_add_f32(w, bn, L->B, sb, 2);
    }
    lp_param *hp[2] = {head ? head->weight : NULL, head ? head->bias : NULL};
    for (int k = 0; st == LP_OK && k < 2; k++) {
        if (!hp[k]) continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s", LP_PEFT_PREFIX, hp[k]->name);
        int64_t shape[2] = {hp[k]->shape[0], hp[k]->shape[1]};
        st = lp_safetensors_writer_add_f32(w, name, hp[k]->data, shape, hp[k]->ndim);
    }
    if (st == LP_OK) st = lp_safetensors_writer_save(w, wpath);
    lp_safetensors_writer_free(w);
    if (st == LP_OK) st = write_config(&f->setup.lora, dir, head != NULL);
    return st == LP_OK ? LP_OK : lp_error_context(st, "saving adapter to %s", dir);
}

/* ------------------------------------------------------------ load */

lp_status lp_ft_setup_from_adapter(lp_ft_setup *s, lp_ft_method method, const char *dir)
{
    if (!s || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_ft_setup_from_adapter: NULL argument");
    if (method != LP_FT_LORA && method != LP_FT_QLORA)
        return lp_error(LP_ERR_INVALID_ARG, "lp_ft_setup_from_adapter: method must be lora or qlora");
    lp_ft_setup_default(s, method);
    char mts[4][64];
    int n_mts = 0;
    LP_TRY(read_config(&s->lora, dir, mts, &n_mts));
    if (n_mts > 0) s->train_head = 1;
    return LP_OK;
}

static lp_status read_into(const lp_safetensors *st, const char *path, const char *name, float *dst, int64_t r0,
                           int64_t c0, const char *what)
{
    const lp_tensor_info *t = lp_safetensors_find(st, name);
    if (!t) return lp_error(LP_ERR_NOT_FOUND, "%s: tensor \"%s\" missing", path, name);
    int64_t r = t->ndim >= 1 ? t->shape[0] : 1, c = t->ndim == 2 ? t->shape[1] : 1;
    if (t->ndim < 1 || t->ndim > 2 || r != r0 || c != c0)
        return lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" has shape (%lld, %lld), %s needs (%lld, %lld)", path, name,
                        (long long)r, (long long)c, what, (long long)r0, (long long)c0);
    return lp_safetensors_read_f32(st, name, dst, (size_t)(r0 * c0));
}

lp_status lp_ft_model_load_adapter(lp_ft_model *f, const char *dir)
{
    static const char fn[] = "lp_ft_model_load_adapter";
    if (!f || !dir) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (f->setup.method == LP_FT_FULL || f->merged || lp_ft_n_loras(f) == 0)
        return lp_error(LP_ERR_INVALID_ARG, "%s: the model has no (unmerged) adapters", fn);
    lp_lora_config cfg;
    char mts[4][64];
    int n_mts = 0;
    LP_TRY(read_config(&cfg, dir, mts, &n_mts));
    /* the file's targets must select exactly our adapted modules, at our rank */
    int n = lp_transformer_n_linears(f->m), ns = 0;
    uint8_t *sel = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!sel) return lp_error(LP_ERR_NOMEM, "%s", fn);
    lp_status st = lp_ft_resolve_lora_config(&cfg, f->m, &ns, sel);
    for (int i = 0, k = 0; st == LP_OK && i < n; i++) {
        lp_nn_linear *lin = lp_transformer_linear(f->m, i);
        int ours = 0;
        if (k < f->n_ad && f->ad[k].lin == lin) ours = f->ad[k++].lora != NULL;
        if (ours != sel[i])
            st = lp_error(LP_ERR_INVALID_ARG, "%s: %s: module \"%s\" is %s by the adapter but %s here", fn, dir,
                          lin->name, sel[i] ? "targeted" : "not targeted", ours ? "adapted" : "not adapted");
    }
    free(sel);
    if (st == LP_OK && cfg.r != f->setup.lora.r)
        st = lp_error(LP_ERR_INVALID_ARG, "%s: %s has rank %d, the model's adapters %d", fn, dir, cfg.r,
                      f->setup.lora.r);
    if (st != LP_OK) return st;

    char wpath[LP_PATH_MAX];
    LP_TRY(lp_path_join(wpath, sizeof wpath, dir, LP_PEFT_WEIGHTS_NAME));
    lp_safetensors *sf;
    LP_TRY(lp_safetensors_open(&sf, wpath));
    lp_nn_linear *head = n_mts > 0 ? any_head(f->m) : NULL;
    if (n_mts > 0 && !head) st = lp_error(LP_ERR_INVALID_ARG, "%s: %s saves a classification head; the model has none", fn, dir);
    /* every tensor must be ours */
    int used = 0;
    for (int i = 0; st == LP_OK && i < f->n_ad; i++) {
        lp_lora *L = f->ad[i].lora;
        if (!L) continue;
        char an[512], bn[512];
        if ((st = lp_peft_tensor_name(an, sizeof an, f->ad[i].module, 'A', NULL)) != LP_OK) break;
        if ((st = lp_peft_tensor_name(bn, sizeof bn, f->ad[i].module, 'B', NULL)) != LP_OK) break;
        if ((st = read_into(sf, wpath, an, L->A, L->r, L->C, "lora_A (r, in)")) != LP_OK) break;
        st = read_into(sf, wpath, bn, L->B, L->OC, L->r, "lora_B (out, r)");
        used += 2;
    }
    lp_param *hp[2] = {head ? head->weight : NULL, head ? head->bias : NULL};
    for (int k = 0; st == LP_OK && k < 2; k++) {
        if (!hp[k]) continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s", LP_PEFT_PREFIX, hp[k]->name);
        if (!lp_safetensors_find(sf, name)) continue; /* PEFT lists both names; one head exists */
        st = read_into(sf, wpath, name, hp[k]->data, hp[k]->shape[0], hp[k]->ndim == 2 ? hp[k]->shape[1] : 1,
                       hp[k]->name);
        used++;
    }
    if (st == LP_OK && used != lp_safetensors_count(sf)) {
        for (int i = 0; i < lp_safetensors_count(sf); i++) {
            const char *name = lp_safetensors_at(sf, i)->name;
            int known = 0;
            for (int k = 0; k < f->n_ad && !known; k++) {
                char an[512], bn[512];
                if (!f->ad[k].lora) continue;
                lp_peft_tensor_name(an, sizeof an, f->ad[k].module, 'A', NULL);
                lp_peft_tensor_name(bn, sizeof bn, f->ad[k].module, 'B', NULL);
                known = !strcmp(name, an) || !strcmp(name, bn);
            }
            for (int k = 0; k < 2 && !known; k++) {
                char hn[256];
                if (!hp[k]) continue;
                snprintf(hn, sizeof hn, "%s%s", LP_PEFT_PREFIX, hp[k]->name);
                known = !strcmp(name, hn);
            }
            if (!known) {
                st = lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" belongs to no adapted module of this model", wpath,
                              name);
                break;
            }
        }
    }
    lp_safetensors_close(sf);
    if (st != LP_OK) return st;
    /* adopt the file's scaling */
    float s = lp_lora_config_scaling(&cfg);
    for (int i = 0; i < f->n_ad; i++) {
        if (!f->ad[i].lora) continue;
        f->ad[i].lora->alpha = cfg.alpha;
        f->ad[i].lora->scaling = s;
    }
    f->setup.lora.alpha = cfg.alpha;
    f->setup.lora.use_rslora = cfg.use_rslora;
    return LP_OK;
}
