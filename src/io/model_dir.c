/* Hugging Face model directories: config + single or sharded safetensors. */
#include "leanprop/model_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors_internal.h"
#include "leanprop/fileio.h"
#include "leanprop/json.h"

typedef struct {
    const lp_tensor_info *info;
    int shard;
} entry;

struct lp_model_dir {
    char *path;
    cJSON *config;
    int sharded;
    lp_safetensors **shards;
    int n_shards;
    entry *tensors; /* sorted by name */
    int n_tensors;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->info->name, ((const entry *)b)->info->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A shard name from an index must be a plain file name in the directory. */
static int plain_file_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

void lp_model_dir_close(lp_model_dir *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_shards; i++) lp_safetensors_close(m->shards[i]);
    free(m->shards);
    free(m->tensors);
    cJSON_Delete(m->config);
    free(m->path);
    free(m);
}

static lp_status add_shard(lp_model_dir *m, const char *file)
{
    char p[LP_PATH_MAX];
    LP_TRY(lp_path_join(p, sizeof p, m->path, file));
    lp_safetensors **ns = realloc(m->shards, ((size_t)m->n_shards + 1) * sizeof *ns);
    if (!ns) return lp_error(LP_ERR_NOMEM, "%s: out of memory", m->path);
    m->shards = ns;
    LP_TRY(lp_safetensors_open(&m->shards[m->n_shards], p));
    m->n_shards++;
    return LP_OK;
}

/* Open the shards named by the index and check it against them. */
static lp_status open_index(lp_model_dir *m, const char *index_path)
{
    cJSON *idx;
    LP_TRY(lp_json_load_file(index_path, &idx));
    const cJSON *wm;
    char **files = NULL;
    lp_status st = lp_json_require_object(idx, "weight_map", &wm);
    int n = st == LP_OK ? cJSON_GetArraySize(wm) : 0;
    if (st == LP_OK && n == 0) st = lp_error(LP_ERR_FORMAT, "%s: \"weight_map\" is empty", index_path);
    if (st == LP_OK && !(files = calloc((size_t)n, sizeof *files)))
        st = lp_error(LP_ERR_NOMEM, "%s: out of memory", index_path);
    int k = 0;
    for (const cJSON *e = wm ? wm->child : NULL; st == LP_OK && e; e = e->next) {
        const char *tname = e->string ? e->string : "";
        if (!cJSON_IsString(e) || !e->valuestring)
            st = lp_error(LP_ERR_FORMAT, "%s: weight_map entry for tensor '%s' is not a file name string", index_path,
                          tname);
        else if (!plain_file_name(e->valuestring))
            st = lp_error(LP_ERR_FORMAT, "%s: tensor '%s' maps to '%s', which is not a plain file name in the directory",
                          index_path, tname, e->valuestring);
        else
            files[k++] = e->valuestring;
    }
    if (st == LP_OK) {
        qsort(files, (size_t)k, sizeof *files, cmp_str);
        for (int i = 0; i < k && st == LP_OK; i++) {
            if (i > 0 && strcmp(files[i], files[i - 1]) == 0) continue;
            char p[LP_PATH_MAX];
            if ((st = lp_path_join(p, sizeof p, m->path, files[i])) != LP_OK) break;
            if (!lp_file_exists(p)) {
                /* name a tensor that lives there, for the message */
                const char *who = "";
                for (const cJSON *e = wm->child; e; e = e->next)
                    if (strcmp(e->valuestring, files[i]) == 0) {
                        who = e->string ? e->string : "";
                        break;
                    }
                st = lp_error(LP_ERR_NOT_FOUND, "%s: shard '%s' (holding tensor '%s') is missing: %s not found",
                              index_path, files[i], who, p);
                break;
            }
            st = add_shard(m, files[i]);
            if (st != LP_OK) lp_error_context(st, "%s", index_path);
        }
    }
    /* every listed tensor must be in the shard the index names */
    for (const cJSON *e = wm ? wm->child : NULL; st == LP_OK && e; e = e->next) {
        const char *tname = e->string ? e->string : "";
        int found = 0;
        for (int s = 0; s < m->n_shards && !found; s++) {
            const char *sp = lp_safetensors_path(m->shards[s]);
            if (strcmp(lp_path_basename(sp), e->valuestring) == 0)
                found = lp_safetensors_find(m->shards[s], tname) != NULL;
        }
        if (!found)
            st = lp_error(LP_ERR_FORMAT, "%s: tensor '%s' is listed in shard '%s' but that shard does not contain it",
                          index_path, tname, e->valuestring);
    }
    free(files);
    cJSON_Delete(idx);
    return st;
}

static lp_status build_table(lp_model_dir *m)
{
    int total = 0;
    for (int s = 0; s < m->n_shards; s++) total += lp_safetensors_count(m->shards[s]);
    m->tensors = calloc((size_t)total + 1, sizeof *m->tensors);
    if (!m->tensors) return lp_error(LP_ERR_NOMEM, "%s: out of memory", m->path);
    for (int s = 0; s < m->n_shards; s++)
        for (int i = 0; i < lp_safetensors_count(m->shards[s]); i++) {
            m->tensors[m->n_tensors].info = lp_safetensors_at(m->shards[s], i);
            m->tensors[m->n_tensors].shard = s;
            m->n_tensors++;
        }
    qsort(m->tensors, (size_t)m->n_tensors, sizeof *m->tensors, cmp_entry);
    for (int i = 1; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].info->name, m->tensors[i - 1].info->name) == 0)
            return lp_error(LP_ERR_FORMAT, "%s: tensor '%s' is in two shards: %s and %s", m->path,
                            m->tensors[i].info->name, lp_safetensors_path(m->shards[m->tensors[i - 1].shard]),
                            lp_safetensors_path(m->shards[m->tensors[i].shard]));
    return LP_OK;
}

lp_status lp_model_dir_open_named(lp_model_dir **out, const char *dir, const char *config_name,
                                  const char *weights_stem)
{
    if (!out || !dir || !weights_stem) return lp_error(LP_ERR_INVALID_ARG, "lp_model_dir_open: NULL argument");
    *out = NULL;
    if (!lp_dir_exists(dir)) return lp_error(LP_ERR_NOT_FOUND, "%s: model directory not found", dir);
    lp_model_dir *m = calloc(1, sizeof *m);
    size_t dl = strlen(dir);
    if (!m || !(m->path = malloc(dl + 1))) {
        free(m);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", dir);
    }
    memcpy(m->path, dir, dl + 1);
    lp_status st = LP_OK;
    char p[LP_PATH_MAX], name[LP_PATH_MAX];
    if (config_name) {
        st = lp_path_join(p, sizeof p, dir, config_name);
        if (st == LP_OK) st = lp_json_load_file(p, &m->config);
    }
    if (st == LP_OK) {
        snprintf(name, sizeof name, "%s.safetensors", weights_stem);
        st = lp_path_join(p, sizeof p, dir, name);
    }
    if (st == LP_OK) {
        if (lp_file_exists(p)) {
            st = add_shard(m, name);
        } else {
            snprintf(name, sizeof name, "%s.safetensors.index.json", weights_stem);
            st = lp_path_join(p, sizeof p, dir, name);
            if (st == LP_OK && !lp_file_exists(p))
                st = lp_error(LP_ERR_NOT_FOUND, "%s: no weights: neither %s.safetensors nor %s found", dir, weights_stem,
                              name);
            m->sharded = 1;
            if (st == LP_OK) st = open_index(m, p);
        }
    }
    if (st == LP_OK) st = build_table(m);
    if (st != LP_OK) {
        lp_model_dir_close(m);
        return st;
    }
    *out = m;
    return LP_OK;
}

lp_status lp_model_dir_open(lp_model_dir **out, const char *dir)
{
    return lp_model_dir_open_named(out, dir, "config.json", "model");
}

const char *lp_model_dir_path(const lp_model_dir *m) { return m ? m->path : NULL; }
const cJSON *lp_model_dir_config(const lp_model_dir *m) { return m ? m->config : NULL; }
int lp_model_dir_is_sharded(const lp_model_dir *m) { return m ? m->sharded : 0; }
int lp_model_dir_shard_count(const lp_model_dir *m) { return m ? m->n_shards : 0; }
int lp_model_dir_tensor_count(const lp_model_dir *m) { return m ? m->n_tensors : 0; }

const lp_safetensors *lp_model_dir_shard(const lp_model_dir *m, int i)
{
    return m && i >= 0 && i < m->n_shards ? m->shards[i] : NULL;
}

const lp_tensor_info *lp_model_dir_tensor_at(const lp_model_dir *m, int i, const lp_safetensors **shard)
{
    if (!m || i < 0 || i >= m->n_tensors) return NULL;
    if (shard) *shard = m->shards[m->tensors[i].shard];
    return m->tensors[i].info;
}

const lp_tensor_info *lp_model_dir_find(const lp_model_dir *m, const char *name, const lp_safetensors **shard)
{
    if (!m || !name || m->n_tensors == 0) return NULL;
    lp_tensor_info ki = {.name = name};
    entry key = {.info = &ki};
    const entry *hit = bsearch(&key, m->tensors, (size_t)m->n_tensors, sizeof *m->tensors, cmp_entry);
    if (!hit) return NULL;
    if (shard) *shard = m->shards[hit->shard];
    return hit->info;
}

lp_status lp_model_dir_require(const lp_model_dir *m, const char *name, const lp_tensor_info **info)
{
    if (!m || !name) return lp_error(LP_ERR_INVALID_ARG, "lp_model_dir: NULL directory or tensor name");
    const lp_tensor_info *t = lp_model_dir_find(m, name, NULL);
    if (!t) return lp_error(LP_ERR_NOT_FOUND, "%s: tensor '%s' not found in the model directory", m->path, name);
    if (info) *info = t;
    return LP_OK;
}

static lp_status shard_of(const lp_model_dir *m, const char *name, const lp_safetensors **s)
{
    LP_TRY(lp_model_dir_require(m, name, NULL));
    lp_model_dir_find(m, name, s);
    return LP_OK;
}

lp_status lp_model_dir_read_f32(const lp_model_dir *m, const char *name, float *dst, size_t n)
{
    const lp_safetensors *s;
    LP_TRY(shard_of(m, name, &s));
    return lp_safetensors_read_f32(s, name, dst, n);
}

lp_status lp_model_dir_load_f32(const lp_model_dir *m, const char *name, lp_mem_category cat, float **out,
                                const lp_tensor_info **info)
{
    const lp_safetensors *s;
    if (out) *out = NULL;
    LP_TRY(shard_of(m, name, &s));
    return lp_safetensors_load_f32(s, name, cat, out, info);
}

lp_status lp_model_dir_read_i64(const lp_model_dir *m, const char *name, int64_t *dst, size_t n)
{
    const lp_safetensors *s;
    LP_TRY(shard_of(m, name, &s));
    return lp_safetensors_read_i64(s, name, dst, n);
}

/* ---- writing ----------------------------------------------------------- */

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(const lp_st_entry *const *)a)->name, (*(const lp_st_entry *const *)b)->name);
}

/* Is `file` a "<stem>-NNNNN-of-NNNNN.safetensors" shard name? */
static int is_shard_name(const char *file, const char *stem)
{
    size_t sl = strlen(stem);
    if (strncmp(file, stem, sl) != 0) return 0;
    unsigned a, b;
    int used = 0;
    return sscanf(file + sl, "-%5u-of-%5u.safetensors%n", &a, &b, &used) == 2 && file[sl + (size_t)used] == '\0';
}

/* Remove old shards of `stem` not named in keep[0..n_keep). */
static lp_status remove_stale_shards(const char *dir, const char *stem, char (*keep)[256], int n_keep)
{
    DIR *d = opendir(dir);
    if (!d) return lp_error(LP_ERR_IO, "%s: cannot list directory", dir);
    lp_status st = LP_OK;
    struct dirent *e;
    while (st == LP_OK && (e = readdir(d))) {
        if (!is_shard_name(e->d_name, stem)) continue;
        int kept = 0;
        for (int i = 0; i < n_keep && !kept; i++) kept = strcmp(keep[i], e->d_name) == 0;
        if (kept) continue;
        char p[LP_PATH_MAX];
        st = lp_path_join(p, sizeof p, dir, e->d_name);
        if (st == LP_OK) st = lp_file_remove(p);
    }
    closedir(d);
    return st;
}

lp_status lp_model_dir_write_named(const char *dir, const char *config_name, const cJSON *config,
                                   const char *weights_stem, const lp_safetensors_writer *w, size_t max_shard_bytes)
{
    if (!dir || !w || !weights_stem || (config && !config_name))
        return lp_error(LP_ERR_INVALID_ARG, "lp_model_dir_write: NULL argument");
    if (strlen(weights_stem) > 200) return lp_error(LP_ERR_INVALID_ARG, "%s: weights name too long", dir);
    LP_TRY(lp_dir_create(dir));
    char p[LP_PATH_MAX], name[256], index_name[256];
    if (config) {
        LP_TRY(lp_path_join(p, sizeof p, dir, config_name));
        LP_TRY(lp_json_write_file(p, config));
    }
    int n = lp_st_writer_count(w);
    snprintf(index_name, sizeof index_name, "%s.safetensors.index.json", weights_stem);
    snprintf(name, sizeof name, "%s.safetensors", weights_stem);

    /* plan shards: name order, greedy, a tensor never split */
    const lp_st_entry **ents = malloc(((size_t)n + 1) * sizeof *ents);
    int *shard_of_ent = malloc(((size_t)n + 1) * sizeof *shard_of_ent);
    int *idx = malloc(((size_t)n + 1) * sizeof *idx);
    if (!ents || !shard_of_ent || !idx) {
        free(ents);
        free(shard_of_ent);
        free(idx);
        return lp_error(LP_ERR_NOMEM, "%s: out of memory", dir);
    }
    for (int i = 0; i < n; i++) ents[i] = lp_st_writer_entry(w, i);
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_name);
    int n_shards = n > 0 ? 1 : 0;
    size_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t b = ents[i]->nbytes;
        if (max_shard_bytes && cur > 0 && cur + b > max_shard_bytes) {
            n_shards++;
            cur = 0;
        }
        cur += b;
        total += b;
        shard_of_ent[i] = n_shards - 1;
    }

    lp_status st = LP_OK;
    char (*shard_names)[256] = NULL;
    cJSON *index = NULL;
    if (n_shards <= 1) {
        for (int i = 0; i < n; i++) idx[i] = i;
        if ((st = lp_path_join(p, sizeof p, dir, name)) == LP_OK) st = lp_st_writer_save_subset(w, p, idx, n);
        if (st == LP_OK && (st = lp_path_join(p, sizeof p, dir, index_name)) == LP_OK) st = lp_file_remove(p);
        if (st == LP_OK) st = remove_stale_shards(dir, weights_stem, NULL, 0);
        goto done;
    }
    shard_names = calloc((size_t)n_shards, sizeof *shard_names);
    index = cJSON_CreateObject();
    cJSON *meta = index ? cJSON_AddObjectToObject(index, "metadata") : NULL;
    cJSON *wm = index ? cJSON_AddObjectToObject(index, "weight_map") : NULL;
    if (!shard_names || !meta || !wm || !cJSON_AddNumberToObject(meta, "total_size", (double)total)) {
        st = lp_error(LP_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    for (int s = 0; s < n_shards && st == LP_OK; s++) {
        snprintf(shard_names[s], sizeof shard_names[s], "%s-%05d-of-%05d.safetensors", weights_stem, s + 1, n_shards);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (shard_of_ent[i] == s) idx[k++] = (int)(ents[i] - lp_st_writer_entry(w, 0));
        if ((st = lp_path_join(p, sizeof p, dir, shard_names[s])) == LP_OK) st = lp_st_writer_save_subset(w, p, idx, k);
    }
    for (int i = 0; i < n && st == LP_OK; i++)
        if (!cJSON_AddStringToObject(wm, ents[i]->name, shard_names[shard_of_ent[i]]))
            st = lp_error(LP_ERR_NOMEM, "%s: out of memory", dir);
    /* the index goes last: until it is in place, readers see the old state */
    if (st == LP_OK && (st = lp_path_join(p, sizeof p, dir, index_name)) == LP_OK) st = lp_json_write_file(p, index);
    if (st == LP_OK && (st = lp_path_join(p, sizeof p, dir, name)) == LP_OK) st = lp_file_remove(p);
    if (st == LP_OK) st = remove_stale_shards(dir, weights_stem, shard_names, n_shards);
done:
    cJSON_Delete(index);
    free(shard_names);
    free(ents);
    free(shard_of_ent);
    free(idx);
    return st;
}

lp_status lp_model_dir_write(const char *dir, const cJSON *config, const lp_safetensors_writer *w,
                             size_t max_shard_bytes)
{
    return lp_model_dir_write_named(dir, "config.json", config, "model", w, max_shard_bytes);
}
