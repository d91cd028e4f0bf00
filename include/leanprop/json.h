/* leanprop/json.h: JSON files (model configs, shard indexes) over cJSON,
 * with typed getters whose errors name the file and the key.
 *
 *   cJSON *cfg;
 *   LP_TRY(lp_json_load_file("model/config.json", &cfg));
 *   int n_layer; double eps; const char *act;
 *   lp_status st = lp_json_require_int(cfg, "n_layer", &n_layer);          // missing: LP_ERR_NOT_FOUND
 *   if (st == LP_OK) st = lp_json_get_double(cfg, "layer_norm_epsilon", 1e-5, &eps); // absent/null: default
 *   if (st == LP_OK) st = lp_json_get_string(cfg, "activation_function", "gelu_new", &act);
 *   // wrong type: LP_ERR_FORMAT "model/config.json: key 'n_layer': expected an integer, got string"
 *   lp_json_free(cfg);
 *
 * Every object and array of a tree from lp_json_load_file / lp_json_parse is
 * labelled with its source and key path (kept in the node's otherwise unused
 * valuestring, freed by cJSON_Delete), so getters on nested objects still
 * name the file and the full key ("config.json: key 'rope_scaling.factor'").
 * Trees built by other means work too; their messages just lack the file.
 * Getters on a NULL object treat every key as absent (handy for optional
 * sub-objects). Integers are exact up to 2^53 (cJSON stores doubles).
 */
#ifndef LEANPROP_JSON_H
#define LEANPROP_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest JSON file lp_json_load_file reads (tokenizer.json files are big). */
#define LP_JSON_MAX_FILE ((size_t)256 << 20)

/* Parse a file; syntax errors are LP_ERR_FORMAT naming the file, line and
 * column. Free with lp_json_free (= cJSON_Delete). */
lp_status lp_json_load_file(const char *path, cJSON **out);
/* Parse len bytes of text (need not be NUL-terminated); `source` names it in
 * messages (e.g. a file name). */
lp_status lp_json_parse(const char *text, size_t len, const char *source, cJSON **out);
void lp_json_free(cJSON *root);

/* The file an object came from ("" if unknown) and its key path from the
 * root ("" for the root, "rope_scaling", "layers[2]"). */
const char *lp_json_source(const cJSON *obj);
const char *lp_json_keypath(const cJSON *obj);

/* Optional keys: absent or null -> *out = def. Present with the wrong type
 * (or out of range) -> LP_ERR_FORMAT naming file and key. */
lp_status lp_json_get_int(const cJSON *obj, const char *key, int def, int *out);
lp_status lp_json_get_i64(const cJSON *obj, const char *key, int64_t def, int64_t *out);
lp_status lp_json_get_double(const cJSON *obj, const char *key, double def, double *out);
lp_status lp_json_get_float(const cJSON *obj, const char *key, float def, float *out);
lp_status lp_json_get_bool(const cJSON *obj, const char *key, int def, int *out);
/* *out points into the tree (valid until lp_json_free) or is def. */
lp_status lp_json_get_string(const cJSON *obj, const char *key, const char *def, const char **out);
/* Absent or null -> *out = NULL. */
lp_status lp_json_get_object(const cJSON *obj, const char *key, const cJSON **out);
lp_status lp_json_get_array(const cJSON *obj, const char *key, const cJSON **out);

/* Required keys: absent -> LP_ERR_NOT_FOUND; null or wrong type -> LP_ERR_FORMAT. */
lp_status lp_json_require_int(const cJSON *obj, const char *key, int *out);
lp_status lp_json_require_i64(const cJSON *obj, const char *key, int64_t *out);
lp_status lp_json_require_double(const cJSON *obj, const char *key, double *out);
lp_status lp_json_require_bool(const cJSON *obj, const char *key, int *out);
lp_status lp_json_require_string(const cJSON *obj, const char *key, const char **out);
lp_status lp_json_require_object(const cJSON *obj, const char *key, const cJSON **out);
lp_status lp_json_require_array(const cJSON *obj, const char *key, const cJSON **out);

/* An integer or a list of integers (e.g. "eos_token_id": 2 or [2, 7]) into
 * dst[0..cap); *n receives the count. Absent or null -> *n = 0. More than
 * cap values -> LP_ERR_FORMAT. */
lp_status lp_json_get_int_list(const cJSON *obj, const char *key, int64_t *dst, size_t cap, size_t *n);

/* Write `root` to `path` atomically, indented by 2 spaces, newline-terminated. */
lp_status lp_json_write_file(const char *path, const cJSON *root);

#ifdef __cplusplus
}
#endif
#endif
