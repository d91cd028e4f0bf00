/* leanprop/model_dir.h: a Hugging Face model directory, read and written.
 *
 * A model directory holds config.json and the weights either in one file
 * (model.safetensors) or in shards listed by model.safetensors.index.json
 * ({"metadata": {"total_size": N}, "weight_map": {"tensor": "model-00001-of-00002.safetensors"}}).
 * Opening maps every shard and validates the index (shard names are plain
 * file names in the directory, every listed tensor is in its shard, no tensor
 * in two shards); lookups then work by tensor name across all shards.
 *
 *   lp_model_dir *m;
 *   LP_TRY(lp_model_dir_open(&m, "gpt2-tiny"));
 *   int n_embd;
 *   lp_json_require_int(lp_model_dir_config(m), "n_embd", &n_embd);
 *   float *wte;
 *   lp_model_dir_load_f32(m, "transformer.wte.weight", LP_MEM_WEIGHTS, &wte, NULL);
 *   lp_model_dir_close(m);
 *
 *   // writing: tensors collected in a safetensors writer; 0 = one file,
 *   // else shards of at most max_shard_bytes (a bigger tensor gets its own)
 *   lp_model_dir_write("out-model", config, w, 2u << 30);
 *
 * A PEFT adapter directory uses other names:
 *   lp_model_dir_open_named(&m, dir, "adapter_config.json", "adapter_model");
 */
#ifndef LEANPROP_MODEL_DIR_H
#define LEANPROP_MODEL_DIR_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "leanprop/alloc.h"
#include "leanprop/safetensors.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_model_dir lp_model_dir;

/* config.json (required) + model.safetensors or model.safetensors.index.json
 * (the single file wins when both exist, as in transformers). */
lp_status lp_model_dir_open(lp_model_dir **out, const char *dir);
/* config_name: NULL = no config; weights_stem: "model" -> model.safetensors /
 * model.safetensors.index.json. */
lp_status lp_model_dir_open_named(lp_model_dir **out, const char *dir, const char *config_name,
                                  const char *weights_stem);
void lp_model_dir_close(lp_model_dir *m);

const char *lp_model_dir_path(const lp_model_dir *m);
/* Parsed config (lp_json getters name the file); NULL if opened without one. */
const cJSON *lp_model_dir_config(const lp_model_dir *m);
int lp_model_dir_is_sharded(const lp_model_dir *m);
int lp_model_dir_shard_count(const lp_model_dir *m);
const lp_safetensors *lp_model_dir_shard(const lp_model_dir *m, int i);

/* All tensors of all shards, sorted by name; shard (may be NULL) receives the file. */
int lp_model_dir_tensor_count(const lp_model_dir *m);
const lp_tensor_info *lp_model_dir_tensor_at(const lp_model_dir *m, int i, const lp_safetensors **shard);
/* NULL if absent (no error recorded). */
const lp_tensor_info *lp_model_dir_find(const lp_model_dir *m, const char *name, const lp_safetensors **shard);
/* LP_ERR_NOT_FOUND naming the directory and tensor if absent. */
lp_status lp_model_dir_require(const lp_model_dir *m, const char *name, const lp_tensor_info **info);

/* As lp_safetensors_read_f32 / load_f32 / read_i64, across shards. */
lp_status lp_model_dir_read_f32(const lp_model_dir *m, const char *name, float *dst, size_t n);
lp_status lp_model_dir_load_f32(const lp_model_dir *m, const char *name, lp_mem_category cat, float **out,
                                const lp_tensor_info **info);
lp_status lp_model_dir_read_i64(const lp_model_dir *m, const char *name, int64_t *dst, size_t n);

/* Write a model directory (created if missing; parent must exist): config
 * (NULL = none) as config.json, the writer's tensors as model.safetensors when
 * max_shard_bytes == 0 or everything fits, else as
 * model-00001-of-0000N.safetensors shards in name order plus
 * model.safetensors.index.json (written last). Each file is written
 * atomically. Stale weight files of the other layout (and old shards not in
 * the new index) are removed after the new ones are in place. */
lp_status lp_model_dir_write(const char *dir, const cJSON *config, const lp_safetensors_writer *w,
                             size_t max_shard_bytes);
lp_status lp_model_dir_write_named(const char *dir, const char *config_name, const cJSON *config,
                                   const char *weights_stem, const lp_safetensors_writer *w, size_t max_shard_bytes);

#ifdef __cplusplus
}
#endif
#endif
