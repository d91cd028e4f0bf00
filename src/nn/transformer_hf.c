/* Hugging Face model directories: config.json + model.safetensors (or shards
 * with model.safetensors.index.json), loaded and saved with HF names. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/fileio.h"
#include "leanprop/safetensors.h"
#include "nn/transformer_internal.h"

#define MAX_SHARDS 4096

typedef struct {
    lp_safetensors **files;
    int n;
    char dir[LP_PATH_MAX];
} tensor_set;

static void set_close(tensor_set *s)
{
    for (int i = 0; i < s->n; i++) lp_safetensors_close(s->files[i]);
    free(s->files);
    s->files = NULL;
    s->n = 0;
}

static lp_status set_open(tensor_set *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char path[LP_PATH_MAX];
    LP_TRY(lp_path_join(path, sizeof path, dir, "model.safetensors"));
    if (lp_file_exists(path)) {
        s->files = calloc(1, sizeof *s->files);
        if (!s->files) return lp_error(LP_ERR_NOMEM, "%s", path);
        LP_TRY(lp_safetensors_open(&s->files[0], path));
        s->n = 1;
        return LP_OK;
    }
    LP_TRY(lp_path_join(path, sizeof path, dir, "model.safetensors.index.json"));
    if (!lp_file_exists(path))
        return lp_error(LP_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
    char *text = NULL;
    LP_TRY(lp_file_read_all(path, 64u << 20, LP_MEM_SCRATCH, &text, NULL));
    cJSON *j = cJSON_Parse(text);
    lp_free(text);
    const cJSON *wm = j ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!wm || !cJSON_IsObject(wm)) {
        cJSON_Delete(j);
        return lp_error(LP_ERR_FORMAT, "%s: no \"weight_map\" object", path);
    }
    /* unique shard names, in first-seen order */
    const char **names = calloc(MAX_SHARDS, sizeof *names);
    int nn = 0;
    lp_status st = names ? LP_OK : lp_error(LP_ERR_NOMEM, "%s", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (st != LP_OK) break;
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            st = lp_error(LP_ERR_FORMAT, "%s: bad shard name for tensor %s", path, e->string ? e->string : "?");
            break;
        }
        int k;
        for (k = 0; k < nn && strcmp(names[k], e->valuestring); k++) {}
        if (k == nn) {
            if (nn == MAX_SHARDS) { st = lp_error(LP_ERR_FORMAT, "%s: more than %d shards", path, MAX_SHARDS); break; }
            names[nn++] = e->valuestring;
        }
    }
    if (st == LP_OK) {
        s->files = calloc((size_t)(nn ? nn : 1), sizeof *s->files);
        if (!s->files) st = lp_error(LP_ERR_NOMEM, "%s", path);
    }
    for (int k = 0; st == LP_OK && k < nn; k++) {
        char sp[LP_PATH_MAX];
        st = lp_path_join(sp, sizeof sp, dir, names[k]);
        if (st == LP_OK) st = lp_safetensors_open(&s->files[k], sp);
        if (st == LP_OK) s->n++;
    }
    free(names);
    cJSON_Delete(j);
    if (st != LP_OK) set_close(s);
    return st;
}

/* The tensor `name`, or the same name without the model-class prefix
 * ("transformer.", "model.", "bert."), as base-model checkpoints store it. */
static const lp_tensor_info *set_find(const tensor_set *s, const char *name, const lp_safetensors **file)
{
    static const char *prefixes[] = {"transformer.", "model.", "bert."};
    for (int pass = 0; pass < 2; pass++) {
        const char *n = name;
        if (pass == 1) {
            n = NULL;
            for (size_t k = 0; k < sizeof prefixes / sizeof *prefixes; k++)
                if (!strncmp(name, prefixes[k], strlen(prefixes[k]))) n = name + strlen(prefixes[k]);
            if (!n) break;
        }
        for (int i = 0; i < s->n; i++) {
            const lp_tensor_info *t = lp_safetensors_find(s->files[i], n);
            if (t) {
                *file = s->files[i];
                return t;
            }
        }
    }
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
static lp_status fill_params(lp_transformer *m, const tensor_set *s, const char *cfgpath)
{
    char hint[256];
    for (int i = 0; i < m->n_params; i++) {
        lp_param *p = &m->params[i];
        const lp_safetensors *f = NULL;
        const lp_tensor_info *t = set_find(s, p->name, &f);
        if (!t)
            return lp_error(LP_ERR_NOT_FOUND, "%s: missing tensor %s", s->n == 1 ? lp_safetensors_path(s->files[0]) : s->dir,
                            p->name);
        int ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
        if (!ok) {
            char got[96] = "[", *w = got + 1;
            for (int d = 0; d < t->ndim && d < 4; d++)
                w += snprintf(w, sizeof got - (size_t)(w - got) - 2, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
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
    tensor_set s;
    st = set_open(&s, dir);
    lp_transformer *m = NULL;
    if (st == LP_OK) st = lp_transformer_new(&m, &cfg);
    if (st == LP_OK) st = fill_params(m, &s, cfgpath);
    set_close(&s);
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

static lp_status config_text(const lp_transformer *m, const char *torch_dtype, char **out)
{
    if (!m->hf_config_text) return lp_transformer_config_to_json(&m->cfg, torch_dtype, out);
    cJSON *j = cJSON_Parse(m->hf_config_text);
    if (!j) return lp_transformer_config_to_json(&m->cfg, torch_dtype, out);
    int had = 0;
    const char *keys[] = {"torch_dtype", "dtype"};
    for (int k = 0; k < 2; k++)
        if (cJSON_GetObjectItemCaseSensitive(j, keys[k])) {
            cJSON_ReplaceItemInObjectCaseSensitive(j, keys[k], cJSON_CreateString(torch_dtype));
            had = 1;
        }
    if (!had) cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    *out = cJSON_Print(j);
    cJSON_Delete(j);
    return *out ? LP_OK : lp_error(LP_ERR_NOMEM, "config.json");
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
    size_t shard_max = opts ? opts->max_shard_bytes : 0;
    for (int i = 0; i < m->n_params; i++)
        if (!m->params[i].data)
            return lp_error(LP_ERR_UNSUPPORTED, "save: parameter %s has no float data (quantised?)", m->params[i].name);

    LP_TRY(lp_dir_create(dir));
    char path[LP_PATH_MAX];
    char *cfg = NULL;
    LP_TRY(config_text(m, torch_dtype, &cfg));
    lp_status st = lp_path_join(path, sizeof path, dir, "config.json");
    if (st == LP_OK) st = lp_file_write_atomic(path, cfg, strlen(cfg));
    free(cfg);
    LP_TRY(st);

    /* HF-layout copies of transposed weights live until their shard is written */
    float **tmp = calloc((size_t)m->n_params, sizeof *tmp);
    if (!tmp) return lp_error(LP_ERR_NOMEM, "save");
    size_t esz = lp_dtype_size(dt);
    int n_shards = 1;
    if (shard_max) {
        size_t cur = 0;
        for (int i = 0; i < m->n_params; i++) {
            size_t b = (size_t)m->params[i].numel * esz;
            if (cur > 0 && cur + b > shard_max) { n_shards++; cur = 0; }
            cur += b;
        }
    }
    cJSON *index = NULL, *wmap = NULL;
    if (n_shards > 1) {
        index = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
        size_t total = 0;
        for (int i = 0; i < m->n_params; i++) total += (size_t)m->params[i].numel * esz;
        if (meta) cJSON_AddNumberToObject(meta, "total_size", (double)total);
        wmap = cJSON_AddObjectToObject(index, "weight_map");
        if (!wmap) st = lp_error(LP_ERR_NOMEM, "save index");
    }
    int i = 0;
    for (int shard = 0; shard < n_shards && st == LP_OK; shard++) {
        char fname[96];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
        lp_safetensors_writer *w = lp_safetensors_writer_new();
        if (!w) { st = lp_error(LP_ERR_NOMEM, "save"); break; }
        st = lp_safetensors_writer_set_metadata(w, "format", "pt");
        size_t cur = 0;
        int first = i;
        while (st == LP_OK && i < m->n_params) {
            const lp_param *p = &m->params[i];
            size_t b = (size_t)p->numel * esz;
            if (n_shards > 1 && i > first && cur + b > shard_max) break;
            cur += b;
            const float *src = p->data;
            if (p->transposed) {
                tmp[i] = lp_alloc_array(LP_MEM_SCRATCH, (size_t)p->numel, sizeof(float));
                if (!tmp[i]) { st = lp_error_context(LP_ERR_NOMEM, "saving %s", p->name); break; }
                lp_param_copy_hf(p, tmp[i], 0);
                src = tmp[i];
            }
            st = lp_safetensors_writer_add_f32_as(w, p->name, dt, src, p->shape, p->ndim);
            if (st == LP_OK && wmap && !cJSON_AddStringToObject(wmap, p->name, fname)) st = lp_error(LP_ERR_NOMEM, "save index");
            i++;
        }
        if (st == LP_OK) st = lp_path_join(path, sizeof path, dir, fname);
        if (st == LP_OK) st = lp_safetensors_writer_save(w, path);
        lp_safetensors_writer_free(w);
        for (int k = first; k < i; k++) { lp_free(tmp[k]); tmp[k] = NULL; }
    }
    for (int k = 0; k < m->n_params; k++) lp_free(tmp[k]);
    free(tmp);
    if (st == LP_OK && index) {
        char *txt = cJSON_Print(index);
        if (!txt) st = lp_error(LP_ERR_NOMEM, "save index");
        if (st == LP_OK) st = lp_path_join(path, sizeof path, dir, "model.safetensors.index.json");
        if (st == LP_OK) st = lp_file_write_atomic(path, txt, strlen(txt));
        free(txt);
    }
    cJSON_Delete(index);
    if (st == LP_OK) {
        /* a stale single file or index from an earlier save would shadow the new layout */
        char other[LP_PATH_MAX];
        if (n_shards > 1 && lp_path_join(other, sizeof other, dir, "model.safetensors") == LP_OK) lp_file_remove(other);
        if (n_shards == 1 && lp_path_join(other, sizeof other, dir, "model.safetensors.index.json") == LP_OK)
            lp_file_remove(other);
    }
    return st;
}
