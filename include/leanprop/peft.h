/* leanprop/peft.h: LoRA adapters in Hugging Face PEFT's own format.
 *
 * An adapter directory holds adapter_config.json and adapter_model.safetensors
 * with one pair of tensors per adapted module:
 *   base_model.model.<module>.lora_A.weight   (r, in)
 *   base_model.model.<module>.lora_B.weight   (out, r)
 * e.g. <module> = "model.layers.0.self_attn.q_proj". (In memory PEFT inserts
 * the adapter name: "...q_proj.lora_A.default.weight"; lp_peft_tensor_name
 * builds either form.) A PEFT user loads what lp_peft_save writes with
 * PeftModel.from_pretrained, and lp_peft_load reads what PEFT saves.
 *
 * Reading adapter_config.json: r, lora_alpha, lora_dropout, target_modules
 * (list, or string = regular expression / "all-linear"), exclude_modules,
 * bias (must be "none"), fan_in_fan_out, use_rslora, init_lora_weights (true,
 * false or "gaussian"), base_model_name_or_path, task_type, peft_type (must be
 * "LORA"). Options leanprop does not implement (DoRA, lora_bias, rank_pattern,
 * alpha_pattern, layers_to_transform, modules_to_save, other init schemes,
 * ...) are LP_ERR_UNSUPPORTED naming the file and the key; any other key is
 * accepted only at a default value (null, false, {} or []).
 *
 * Writing adapter_config.json: sorted keys, 2-space indent (as PEFT's
 * json.dumps(sort_keys=True, indent=2)), the keys PEFT 0.9 .. 0.21 all know
 * (peft_type "LORA", task_type, r, lora_alpha, lora_dropout, target_modules,
 * bias "none", fan_in_fan_out, inference_mode true, modules_to_save null,
 * use_rslora, use_dora false, init_lora_weights, rank_pattern {}, ...); newer
 * keys are left out, which PEFT reads as their defaults. Both files are
 * written atomically (temporary file, fsync, rename).
 *
 *   lp_peft_adapter *a;
 *   LP_TRY(lp_peft_load(&a, "fixtures/llama-tiny-lora", 1));    // with gradients
 *   lp_lora *L = lp_peft_find(a, "model.layers.0.self_attn.q_proj");
 *   ...
 *   LP_TRY(lp_peft_save("out", &a->config, (const char *const *)a->modules, a->loras, a->n));
 *   lp_peft_free(a);
 */
#ifndef LEANPROP_PEFT_H
#define LEANPROP_PEFT_H

#include <stddef.h>

#include "leanprop/lora.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_PEFT_CONFIG_NAME "adapter_config.json"
#define LP_PEFT_WEIGHTS_NAME "adapter_model.safetensors"
#define LP_PEFT_PREFIX "base_model.model."
/* Largest adapter_config.json accepted. */
#define LP_PEFT_MAX_CONFIG_BYTES (1u << 20)

/* Parse adapter_config.json text; `path` only names the file in messages.
 * cfg is filled from PEFT's defaults, then from the file. */
lp_status lp_peft_parse_config(lp_lora_config *cfg, const char *json_text, const char *path);
/* Read and parse a file. */
lp_status lp_peft_read_config(lp_lora_config *cfg, const char *path);
/* adapter_config.json text for cfg (malloc'd, NUL-terminated; free()). */
lp_status lp_peft_config_to_json(const lp_lora_config *cfg, char **out);
/* Write it atomically to `path`. */
lp_status lp_peft_write_config(const lp_lora_config *cfg, const char *path);

/* PEFT tensor name of a module's lora_A (which = 'A') or lora_B ('B'):
 * "base_model.model.<module>.lora_A.weight", or with adapter_name (e.g.
 * "default") the in-memory form "...lora_A.default.weight". */
lp_status lp_peft_tensor_name(char *buf, size_t size, const char *module, char which, const char *adapter_name);

typedef struct {
    lp_lora_config config;
    int n;              /* adapted modules */
    char **modules;     /* (n) module names, "model.layers.0.self_attn.q_proj", in file order (sorted) */
    lp_lora **loras;    /* (n) their adapters, A and B from the file */
} lp_peft_adapter;

/* Load <dir>/adapter_config.json and <dir>/adapter_model.safetensors: one
 * lp_lora per module in the file (shapes from the file, checked against r;
 * F32/F16/BF16 converted), with zeroed gradients when with_grads. */
lp_status lp_peft_load(lp_peft_adapter **out, const char *dir, int with_grads);
void lp_peft_free(lp_peft_adapter *a);
/* Adapter of a module, NULL if absent. */
lp_lora *lp_peft_find(const lp_peft_adapter *a, const char *module);

/* Fill existing adapters (created for the model's layers) from an
 * adapter_model.safetensors: every listed module's lora_A / lora_B must be in
 * the file with matching shapes, and every tensor in the file must belong to
 * a listed module (else LP_ERR_NOT_FOUND / LP_ERR_FORMAT naming the tensor). */
lp_status lp_peft_load_weights(const char *path, const char *const *modules, lp_lora *const *loras, int n);

/* Write <dir>/adapter_model.safetensors (F32, metadata format=pt) and
 * <dir>/adapter_config.json for n adapters; dir is created if missing. */
lp_status lp_peft_save(const char *dir, const lp_lora_config *cfg, const char *const *modules, lp_lora *const *loras,
                       int n);

#ifdef __cplusplus
}
#endif
#endif
