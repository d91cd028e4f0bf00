/* Hugging Face model directories: config.json + model.safetensors (or shards
 * with model.safetensors.index.json), loaded and saved with HF names. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/fileio.h"
#include "leanprop/model_dir.h"
#include "leanprop/safetensors.h"
#include "nn/transformer_internal.h"

/* The tensor `name`, or the same name without the model-class prefix
 * ("transformer.", "model.", "bert."), as base-model checkpoints store it. */
static const lp_tensor_info *dir_find(const lp_model_dir *d, const char *name, const lp_safetensors **file)
{
    const lp_tensor_info *t = lp_model_dir_find(d, name, file);
    if (t) return t;
    static const char *prefixes[] = {"transformer.", "model.", "bert."};
    for (size_t k = 0; k < sizeof prefixes / sizeof *prefixes; k++)
        if (!strncmp(name, prefixes[k], strlen(prefixes[k]))) return lp_model_dir_find(d, name + strlen(prefixes[k]), file);
    return NULL;
}

static const char *shape_hint(const lp_transformer_config *c, char *buf, size_t n)
{
    snprintf(buf, n, "vocab_size %lld, hidden %lld, layers %lld, heads %lld, kv heads %lld, head_dim %lld, intermediate %lld, positions %lld",
             (long long)c->vocab_size, (long long)c->hidden_size, (long long)c->n_layers, (long long)c->n_heads,
             (long long)c->n_kv_heads, (long long)c->head_dim, (long long)c->intermediate_size,
             (long long)c->max_positions);
    return buf;
}

/* Check every parameter is present with its expected shape and read it. */
static lp_status fill_params(lp_transformer *m, const lp_model_dir *d, const char *cfgpath)
{
    char hint[256];
    for (int i = 0; i < m->n_params; i++) {
        lp_param *p = &m->params[i];
        const lp_safetensors *f = NULL;
        const lp_tensor_info *t = dir_find(d, p->name, &f);
        if (!t) {
            const char *where = lp_model_dir_is_sharded(d) ? lp_model_dir_path(d) : lp_safetensors_path(lp_model_dir_shard(d, 0));
            return lp_error(LP_ERR_NOT_FOUND, "%s: missing tensor %s", where, p->name);
        }
        int ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
        if (!ok) {
            char got[96] = "[", *w = got + 1;
            for (int k = 0; k < t->ndim && k < 4; k++)
                w += snprintf(w, sizeof got - (size_t)(w - got) - 2, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
            strcat(got, "]");
            if (p->ndim == 1)
                return lp_error(LP_ERR_FORMAT, "%s: tensor %s has shape %s but %s implies [%lld] (%s)", lp_safetensors_path(f),
                                t->name, got, cfgpath, (long long)p->shape[0], shape_hint(&m->cfg, hint, sizeof hint));
            return lp_error(LP_ERR_FORMAT, "%s: tensor %s has shape %s but %s implies [%lld, %lld] (%s)",
                            lp_safetensors_path(f), t->name, got, cfgpath, (long long)p->shape[0], (long long)p->shape[1],
                            shape_hint(&m->cfg, hint, sizeof hint));
        }
        if (!lp_dtype_is_float(t->dtype))
            return lp_error(LP_ERR_FORMAT, "%s: tensor %s has dtype %s, expected a float type", lp_safetensors_path(f),
                            t->name, lp_dtype_name(t->dtype));
        if (!p->transposed) {
            LP_TRY(lp_safetensors_read_f32(f, t->name, p->data, (size_t)p->numel));
        } else {
            float *tmp = lp_alloc_array(LP_MEM_SCRATCH, (size_t)p->numel, sizeof(float));
            if (!tmp) return lp_error_context(LP_ERR_NOMEM, "reading %s", t->name);
            lp_status st = lp_safetensors_read_f32(f, t->name, tmp, (size_t)p->numel);
            if (st == LP_OK) {
                int64_t in = p->shape[0], out = p->shape[1]; /* HF (in, out) -> (out, in) */
                for (int64_t r = 0; r < in; r++)
                    for (int64_t c = 0; c < out; c++) p->data[c * in + r] = tmp[r * out + c];
            }
            lp_free(tmp);
            LP_TRY(st);
        }
    }
    return LP_OK;
}

lp_status lp_transformer_load_hf(lp_transformer **out, const char *dir)
{
    if (!out || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_load_hf: NULL argument");
    *out = NULL;
    char cfgpath[LP_PATH_MAX];
    LP_TRY(lp_path_join(cfgpath, sizeof cfgpath, dir, "config.json"));
    char *text = NULL;
    size_t len = 0;
    LP_TRY(lp_file_read_all(cfgpath, 16u << 20, LP_MEM_SCRATCH, &text, &len));
    lp_transformer_config cfg;
    lp_status st = lp_transformer_config_parse(&cfg, text, cfgpath);
    char *keep = st == LP_OK ? malloc(len + 1) : NULL;
    if (keep) memcpy(keep, text, len + 1);
    lp_free(text);
    if (st != LP_OK) return st;
    if (!keep) return lp_error(LP_ERR_NOMEM, "%s", cfgpath);
    lp_model_dir *d = NULL;
    st = lp_model_dir_open(&d, dir);
    lp_transformer *m = NULL;
    if (st == LP_OK) st = lp_transformer_new(&m, &cfg);
    if (st == LP_OK) st = fill_params(m, d, cfgpath);
    lp_model_dir_close(d);
    if (st != LP_OK) {
        free(keep);
        lp_transformer_free(m);
        return st;
    }
    m->hf_config_text = keep;
    *out = m;
    return LP_OK;
}

lp_status lp_transformer_load(lp_transformer **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_load: NULL argument");
    if (lp_dir_exists(path)) return lp_transformer_load_hf(out, path);
    if (!lp_file_exists(path)) return lp_error(LP_ERR_NOT_FOUND, "%s: no such file or directory", path);
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error(LP_ERR_IO, "%s: cannot open", path);
    int32_t magic = 0;
    size_t got = fread(&magic, sizeof magic, 1, f);
    fclose(f);
    if (got != 1) return lp_error(LP_ERR_FORMAT, "%s: truncated header", path);
    if (magic == LP_LLMC_MAGIC) return lp_llmc_load(out, path);
    return lp_llama2c_load(out, path);
}

/* ------------------------------------------------------------------ save */

/* config.json as cJSON: the loaded text (dtype keys updated) or one generated from the config. */
static lp_status config_json(const lp_transformer *m, const char *torch_dtype, cJSON **out)
{
    char *gen = NULL;
    if (!m->hf_config_text) LP_TRY(lp_transformer_config_to_json(&m->cfg, torch_dtype, &gen));
    cJSON *j = cJSON_Parse(gen ? gen : m->hf_config_text);
    free(gen);
    if (!j) return lp_error(LP_ERR_NOMEM, "config.json");
    int had = 0;
    const char *keys[] = {"torch_dtype", "dtype"};
    for (int k = 0; k < 2; k++)
        if (cJSON_GetObjectItemCaseSensitive(j, keys[k])) {
            cJSON_ReplaceItemInObjectCaseSensitive(j, keys[k], cJSON_CreateString(torch_dtype));
            had = 1;
        }
    if (!had) cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    *out = j;
    return LP_OK;
}

lp_status lp_transformer_save_hf(const lp_transformer *m, const char *dir, const lp_transformer_save_opts *opts)
{
    if (!m || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_save_hf: NULL argument");
    const char *dts = opts && opts->dtype ? opts->dtype : "f32";
    lp_dtype dt;
    const char *torch_dtype;
    if (!strcmp(dts, "f32") || !strcmp(dts, "float32")) { dt = LP_DTYPE_F32; torch_dtype = "float32"; }
    else if (!strcmp(dts, "f16") || !strcmp(dts, "float16")) { dt = LP_DTYPE_F16; torch_dtype = "float16"; }
    else if (!strcmp(dts, "bf16") || !strcmp(dts, "bfloat16")) { dt = LP_DTYPE_BF16; torch_dtype = "bfloat16"; }
    else return lp_error(LP_ERR_INVALID_ARG, "save: dtype \"%s\" (use f32, f16 or bf16)", dts);
    for (int i = 0; i < m->n_params; i++)
        if (!m->params[i].data)
            return lp_error(LP_ERR_UNSUPPORTED, "save: parameter %s has no float data (quantised?)", m->params[i].name);
    cJSON *cfg = NULL;
    LP_TRY(config_json(m, torch_dtype, &cfg));
    /* HF-layout copies of transposed (Conv1D) weights live until the write */
    float **tmp = calloc((size_t)m->n_params, sizeof *tmp);
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    lp_status st = tmp && w ? lp_safetensors_writer_set_metadata(w, "format", "pt") : lp_error(LP_ERR_NOMEM, "save");
    for (int i = 0; st == LP_OK && i < m->n_params; i++) {
        const lp_param *p = &m->params[i];
        const float *src = p->data;
        if (p->transposed) {
            tmp[i] = lp_alloc_array(LP_MEM_SCRATCH, (size_t)p->numel, sizeof(float));
            if (!tmp[i]) { st = lp_error_context(LP_ERR_NOMEM, "saving %s", p->name); break; }
            lp_param_copy_hf(p, tmp[i], 0);
            src = tmp[i];
        }
        st = lp_safetensors_writer_add_f32_as(w, p->name, dt, src, p->shape, p->ndim);
    }
    if (st == LP_OK) st = lp_model_dir_write(dir, cfg, w, opts ? opts->max_shard_bytes : 0);
    for (int i = 0; tmp && i < m->n_params; i++) lp_free(tmp[i]);
    free(tmp);
    lp_safetensors_writer_free(w);
    cJSON_Delete(cfg);
    return st;
}
