/* PEFT LoRA adapters: adapter_config.json and adapter_model.safetensors,
 * read and written the way Hugging Face PEFT does. See leanprop/peft.h. */
#include "leanprop/peft.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"
#include "leanprop/safetensors.h"

/* ------------------------------------------------------------ config: read */

/* null, false, {} or [] */
static int is_default_value(const cJSON *v)
{
    if (cJSON_IsNull(v) || cJSON_IsFalse(v)) return 1;
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child) return 1;
    return 0;
}

/* Short text of a value for messages. */
static void value_text(const cJSON *v, char *buf, size_t size)
{
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, size, "%s", s ? s : "?");
    if (s && strlen(s) >= size && size > 4) strcpy(buf + size - 4, "...");
    free(s);
}

static lp_status unsupported(const char *path, const cJSON *v, const char *why)
{
    char t[80];
    value_text(v, t, sizeof t);
    return lp_error(LP_ERR_UNSUPPORTED, "%s: \"%s\": %s is not supported by leanprop%s%s", path, v->string, t,
                    why ? ": " : "", why ? why : "");
}

static lp_status wrong_type(const char *path, const cJSON *v, const char *want)
{
    char t[80];
    value_text(v, t, sizeof t);
    return lp_error(LP_ERR_FORMAT, "%s: \"%s\" must be %s (got %s)", path, v->string, want, t);
}

static lp_status get_bool(const char *path, const cJSON *v, int *out)
{
    if (!cJSON_IsBool(v)) return wrong_type(path, v, "true or false");
    *out = cJSON_IsTrue(v);
    return LP_OK;
}

static lp_status copy_string_or_null(const char *path, const cJSON *v, char *dst, size_t size)
{
    if (cJSON_IsNull(v)) {
        dst[0] = '\0';
        return LP_OK;
    }
    if (!cJSON_IsString(v)) return wrong_type(path, v, "a string or null");
    if (strlen(v->valuestring) >= size)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: \"%s\" longer than %zu characters", path, v->string, size - 1);
    strcpy(dst, v->valuestring);
    return LP_OK;
}

/* target_modules / exclude_modules: list of names or a regular expression */
static lp_status get_modules(const char *path, const cJSON *v, lp_lora_config *cfg, int exclude)
{
    if (cJSON_IsString(v)) {
        lp_status st = exclude ? lp_lora_config_set_exclude_regex(cfg, v->valuestring)
                               : lp_lora_config_set_target_regex(cfg, v->valuestring);
        return st == LP_OK ? st : lp_error_context(st, "%s: \"%s\"", path, v->string);
    }
    if (!cJSON_IsArray(v)) return wrong_type(path, v, "a list of module names or a regular expression");
    int n = 0;
    char(*names)[LP_LORA_NAME_MAX] = exclude ? cfg->exclude : cfg->targets;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            return lp_error(LP_ERR_FORMAT, "%s: \"%s\" element %d must be a non-empty string", path, v->string, n);
        if (n == LP_LORA_MAX_TARGETS || strlen(e->valuestring) >= LP_LORA_NAME_MAX)
            return lp_error(LP_ERR_UNSUPPORTED, "%s: \"%s\": more than %d names or a name longer than %d characters",
                            path, v->string, LP_LORA_MAX_TARGETS, LP_LORA_NAME_MAX - 1);
        strcpy(names[n++], e->valuestring);
    }
    if (exclude) {
        cfg->n_exclude = n;
        cfg->exclude_regex[0] = '\0';
    } else {
        if (n == 0) return lp_error(LP_ERR_FORMAT, "%s: \"target_modules\" is an empty list", path);
        cfg->n_targets = n;
        cfg->target_regex[0] = '\0';
    }
    return LP_OK;
}

static int key_is(const cJSON *v, const char *k) { return strcmp(v->string, k) == 0; }

static lp_status parse_item(const char *path, const cJSON *v, lp_lora_config *cfg, int *seen)
{
    if (key_is(v, "peft_type")) {
        if (!cJSON_IsString(v)) return wrong_type(path, v, "a string");
        if (strcmp(v->valuestring, "LORA") != 0) return unsupported(path, v, "only LoRA adapters (\"LORA\")");
        seen[0] = 1;
    } else if (key_is(v, "r")) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > (1 << 20))
            return wrong_type(path, v, "a positive integer");
        cfg->r = (int)v->valuedouble;
    } else if (key_is(v, "lora_alpha")) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
            return wrong_type(path, v, "a positive number");
        cfg->alpha = (float)v->valuedouble;
    } else if (key_is(v, "lora_dropout")) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1))
            return wrong_type(path, v, "a number in [0, 1)");
        cfg->dropout = (float)v->valuedouble;
    } else if (key_is(v, "target_modules")) {
        if (cJSON_IsNull(v))
            return lp_error(LP_ERR_UNSUPPORTED,
                            "%s: \"target_modules\" is null (PEFT picks a per-model default); list the modules", path);
        LP_TRY(get_modules(path, v, cfg, 0));
        seen[1] = 1;
    } else if (key_is(v, "exclude_modules")) {
        if (!cJSON_IsNull(v)) LP_TRY(get_modules(path, v, cfg, 1));
    } else if (key_is(v, "bias")) {
        if (!cJSON_IsString(v)) return wrong_type(path, v, "a string");
        if (strcmp(v->valuestring, "none") != 0) return unsupported(path, v, "only \"none\" (no bias training)");
    } else if (key_is(v, "fan_in_fan_out")) {
        LP_TRY(get_bool(path, v, &cfg->fan_in_fan_out));
    } else if (key_is(v, "use_rslora")) {
        LP_TRY(get_bool(path, v, &cfg->use_rslora));
    } else if (key_is(v, "inference_mode")) {
        int ignored;
        LP_TRY(get_bool(path, v, &ignored));
    } else if (key_is(v, "init_lora_weights")) {
        if (cJSON_IsBool(v)) cfg->init_lora_weights = cJSON_IsTrue(v) ? LP_LORA_INIT_DEFAULT : LP_LORA_INIT_RANDOM;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "gaussian") == 0)
            cfg->init_lora_weights = LP_LORA_INIT_GAUSSIAN;
        else return unsupported(path, v, "only true, false or \"gaussian\"");
    } else if (key_is(v, "base_model_name_or_path")) {
        LP_TRY(copy_string_or_null(path, v, cfg->base_model, sizeof cfg->base_model));
    } else if (key_is(v, "task_type")) {
        LP_TRY(copy_string_or_null(path, v, cfg->task_type, sizeof cfg->task_type));
    } else if (key_is(v, "auto_mapping") || key_is(v, "peft_version") || key_is(v, "revision") ||
               key_is(v, "megatron_core") || key_is(v, "qalora_group_size")) {
        /* bookkeeping, or options that only matter when their feature (off) is on */
    } else if (!is_default_value(v)) {
        return unsupported(path, v, "leanprop implements plain LoRA; this option must be null, false, {} or []");
    }
    return LP_OK;
}

lp_status lp_peft_parse_config(lp_lora_config *cfg, const char *json_text, const char *path)
{
    if (!cfg || !json_text) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_parse_config: NULL argument");
    if (!path) path = LP_PEFT_CONFIG_NAME;
    lp_lora_config c;
    lp_lora_config_default(&c);
    cJSON *root = cJSON_Parse(json_text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json_text && at <= json_text + strlen(json_text) ? (long)(at - json_text) : -1;
        return lp_error(LP_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", path, off);
    }
    lp_status st = LP_OK;
    int seen[2] = {0, 0};
    if (!cJSON_IsObject(root)) st = lp_error(LP_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *v;
    if (st == LP_OK) {
        cJSON_ArrayForEach(v, root) {
            if ((st = parse_item(path, v, &c, seen)) != LP_OK) break;
        }
    }
    cJSON_Delete(root);
    if (st != LP_OK) return st;
    if (!seen[0]) return lp_error(LP_ERR_FORMAT, "%s: no \"peft_type\" (not a PEFT adapter config)", path);
    if (!seen[1]) return lp_error(LP_ERR_FORMAT, "%s: no \"target_modules\"", path);
    st = lp_lora_config_validate(&c);
    if (st != LP_OK) return lp_error_context(st, "%s", path);
    *cfg = c;
    return LP_OK;
}

lp_status lp_peft_read_config(lp_lora_config *cfg, const char *path)
{
    if (!cfg || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_read_config: NULL argument");
    char *text;
    LP_TRY(lp_file_read_all(path, LP_PEFT_MAX_CONFIG_BYTES, LP_MEM_SCRATCH, &text, NULL));
    lp_status st = lp_peft_parse_config(cfg, text, path);
    lp_free(text);
    return st;
}

/* ------------------------------------------------------------ config: write */

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->failed = 1;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

/* JSON string literal */
static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_add(b, "\\%c", *p);
        else if (*p == '\n') sb_add(b, "\\n");
        else if (*p == '\t') sb_add(b, "\\t");
        else if (*p < 0x20) sb_add(b, "\\u%04x", *p);
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

static void sb_str_or_null(sbuf *b, const char *s)
{
    if (s && *s) sb_str(b, s);
    else sb_add(b, "null");
}

/* Shortest decimal that reads back as the same float; ".0" on integers (Python's float repr). */
static void sb_float(sbuf *b, float f)
{
    char t[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(t, sizeof t, "%.*g", p, (double)f);
        if (strtof(t, NULL) == f) break;
    }
    if (!strpbrk(t, ".en")) strcat(t, ".0");
    sb_add(b, "%s", t);
}

static void sb_names(sbuf *b, const char *key, int n, const char (*names)[LP_LORA_NAME_MAX], const char *regex)
{
    sb_add(b, "  \"%s\": ", key);
    if (regex[0]) {
        sb_str(b, regex);
    } else {
        sb_add(b, "[\n");
        for (int i = 0; i < n; i++) {
            sb_add(b, "    ");
            sb_str(b, names[i]);
            sb_add(b, i + 1 < n ? ",\n" : "\n");
        }
        sb_add(b, "  ]");
    }
    sb_add(b, ",\n");
}

lp_status lp_peft_config_to_json(const lp_lora_config *cfg, char **out)
{
    if (!cfg || !out) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_config_to_json: NULL argument");
    *out = NULL;
    LP_TRY(lp_lora_config_validate(cfg));
    sbuf b = {0};
    sb_add(&b, "{\n  \"alpha_pattern\": {},\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": ");
    sb_str_or_null(&b, cfg->base_model);
    sb_add(&b, ",\n  \"bias\": \"none\",\n");
    if (cfg->n_exclude > 0 || cfg->exclude_regex[0])
        sb_names(&b, "exclude_modules", cfg->n_exclude, (const char(*)[LP_LORA_NAME_MAX])cfg->exclude,
                 cfg->exclude_regex);
    sb_add(&b, "  \"fan_in_fan_out\": %s,\n  \"inference_mode\": true,\n  \"init_lora_weights\": %s,\n",
           cfg->fan_in_fan_out ? "true" : "false",
           cfg->init_lora_weights == LP_LORA_INIT_GAUSSIAN ? "\"gaussian\""
           : cfg->init_lora_weights == LP_LORA_INIT_RANDOM ? "false" : "true");
    sb_add(&b, "  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n  \"loftq_config\": {},\n"
               "  \"lora_alpha\": ");
    if (cfg->alpha == floorf(cfg->alpha) && cfg->alpha < 1e9f) sb_add(&b, "%.0f", (double)cfg->alpha);
    else sb_float(&b, cfg->alpha);
    sb_add(&b, ",\n  \"lora_dropout\": ");
    sb_float(&b, cfg->dropout);
    sb_add(&b, ",\n  \"megatron_config\": null,\n  \"megatron_core\": \"megatron.core\",\n"
               "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": %d,\n  \"rank_pattern\": {},\n"
               "  \"revision\": null,\n",
           cfg->r);
    sb_names(&b, "target_modules", cfg->n_targets, (const char(*)[LP_LORA_NAME_MAX])cfg->targets, cfg->target_regex);
    sb_add(&b, "  \"task_type\": ");
    sb_str_or_null(&b, cfg->task_type);
    sb_add(&b, ",\n  \"use_dora\": false,\n  \"use_rslora\": %s\n}", cfg->use_rslora ? "true" : "false");
    if (b.failed) {
        free(b.s);
        return lp_error(LP_ERR_NOMEM, "lp_peft_config_to_json: out of memory");
    }
    *out = b.s;
    return LP_OK;
}

lp_status lp_peft_write_config(const lp_lora_config *cfg, const char *path)
{
    if (!path) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_write_config: path is NULL");
    char *text;
    LP_TRY(lp_peft_config_to_json(cfg, &text));
    lp_status st = lp_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

/* ------------------------------------------------------------ weights */

lp_status lp_peft_tensor_name(char *buf, size_t size, const char *module, char which, const char *adapter_name)
{
    if (!buf || !module || (which != 'A' && which != 'B'))
        return lp_error(LP_ERR_INVALID_ARG, "lp_peft_tensor_name: bad arguments");
    int n = adapter_name ? snprintf(buf, size, LP_PEFT_PREFIX "%s.lora_%c.%s.weight", module, which, adapter_name)
                         : snprintf(buf, size, LP_PEFT_PREFIX "%s.lora_%c.weight", module, which);
    if (n < 0 || (size_t)n >= size)
        return lp_error(LP_ERR_INVALID_ARG, "lp_peft_tensor_name: name for module \"%s\" longer than %zu", module,
                        size);
    return LP_OK;
}

/* "base_model.model.<module>.lora_X.weight" -> module (malloc'd), *which = 'A'/'B' */
static lp_status split_name(const char *path, const char *name, char **module, char *which)
{
    static const char pre[] = LP_PEFT_PREFIX;
    size_t lp = sizeof pre - 1, ln = strlen(name), ls = strlen(".lora_A.weight");
    if (strncmp(name, pre, lp) != 0)
        return lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" is not a PEFT LoRA tensor (no \"%s\" prefix)", path, name,
                        pre);
    if (ln <= lp + ls || strncmp(name + ln - ls, ".lora_", 6) != 0 || strcmp(name + ln - 7, ".weight") != 0 ||
        (name[ln - 8] != 'A' && name[ln - 8] != 'B'))
        return lp_error(LP_ERR_UNSUPPORTED,
                        "%s: tensor \"%s\" is not a lora_A / lora_B weight (modules_to_save, embeddings, DoRA and "
                        "biases are not supported)",
                        path, name);
    size_t lm = ln - lp - ls;
    *module = malloc(lm + 1);
    if (!*module) return lp_error(LP_ERR_NOMEM, "%s: out of memory", path);
    memcpy(*module, name + lp, lm);
    (*module)[lm] = '\0';
    *which = name[ln - 8];
    return LP_OK;
}

/* Read module's A (r,C) and B (OC,r) from f into L after checking shapes. */
static lp_status read_pair(const lp_safetensors *f, const char *module, lp_lora *L)
{
    const char *path = lp_safetensors_path(f);
    for (int k = 0; k < 2; k++) {
        char name[1024];
        LP_TRY(lp_peft_tensor_name(name, sizeof name, module, k ? 'B' : 'A', NULL));
        const lp_tensor_info *t = lp_safetensors_find(f, name);
        if (!t) return lp_error(LP_ERR_NOT_FOUND, "%s: tensor \"%s\" missing", path, name);
        int64_t d0 = k ? L->OC : L->r, d1 = k ? L->r : L->C;
        if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
            return lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" has shape %s(%lld, %lld), expected (%lld, %lld)", path,
                            name, t->ndim != 2 ? "of wrong rank " : "", (long long)t->shape[0],
                            (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)d0, (long long)d1);
        if (!lp_dtype_is_float(t->dtype))
            return lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected a float type", path, name,
                            lp_dtype_name(t->dtype));
        LP_TRY(lp_safetensors_read_f32(f, name, k ? L->B : L->A, (size_t)(d0 * d1)));
    }
    return LP_OK;
}

void lp_peft_free(lp_peft_adapter *a)
{
    if (!a) return;
    for (int i = 0; i < a->n; i++) {
        free(a->modules[i]);
        lp_lora_free(a->loras[i]);
    }
    free(a->modules);
    free(a->loras);
    free(a);
}

lp_lora *lp_peft_find(const lp_peft_adapter *a, const char *module)
{
    if (!a || !module) return NULL;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->modules[i], module) == 0) return a->loras[i];
    return NULL;
}

static int find_module(char *const *modules, int n, const char *m)
{
    for (int i = 0; i < n; i++)
        if (strcmp(modules[i], m) == 0) return i;
    return -1;
}

static lp_status weights_path(char *buf, size_t size, const char *dir)
{
    LP_TRY(lp_path_join(buf, size, dir, LP_PEFT_WEIGHTS_NAME));
    if (lp_file_exists(buf)) return LP_OK;
    char bin[LP_PATH_MAX];
    if (lp_path_join(bin, sizeof bin, dir, "adapter_model.bin") == LP_OK && lp_file_exists(bin))
        return lp_error(LP_ERR_UNSUPPORTED,
                        "%s: pickled PyTorch adapters are not read; save with safe_serialization=True "
                        "(adapter_model.safetensors)",
                        bin);
    return lp_error(LP_ERR_NOT_FOUND, "%s: no such file", buf);
}

lp_status lp_peft_load(lp_peft_adapter **out, const char *dir, int with_grads)
{
    if (!out || !dir) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_load: NULL argument");
    *out = NULL;
    char cpath[LP_PATH_MAX], wpath[LP_PATH_MAX];
    LP_TRY(lp_path_join(cpath, sizeof cpath, dir, LP_PEFT_CONFIG_NAME));
    lp_peft_adapter *a = calloc(1, sizeof *a);
    if (!a) return lp_error(LP_ERR_NOMEM, "lp_peft_load: out of memory");
    lp_safetensors *f = NULL;
    lp_status st = lp_peft_read_config(&a->config, cpath);
    if (st == LP_OK) st = weights_path(wpath, sizeof wpath, dir);
    if (st == LP_OK) st = lp_safetensors_open(&f, wpath);
    int count = f ? lp_safetensors_count(f) : 0;
    if (st == LP_OK && count == 0) st = lp_error(LP_ERR_FORMAT, "%s: no tensors", wpath);
    if (st == LP_OK) {
        a->modules = calloc((size_t)count, sizeof *a->modules);
        a->loras = calloc((size_t)count, sizeof *a->loras);
        if (!a->modules || !a->loras) st = lp_error(LP_ERR_NOMEM, "lp_peft_load: out of memory");
    }
    for (int i = 0; st == LP_OK && i < count; i++) {
        char *module;
        char which;
        const lp_tensor_info *t = lp_safetensors_at(f, i);
        if ((st = split_name(wpath, t->name, &module, &which)) != LP_OK) break;
        if (find_module(a->modules, a->n, module) >= 0) {
            free(module);
            continue;
        }
        a->modules[a->n] = module;
        /* shapes: A (r, in), B (out, r) */
        char an[1024], bn[1024];
        const lp_tensor_info *ta = NULL, *tb = NULL;
        if ((st = lp_peft_tensor_name(an, sizeof an, module, 'A', NULL)) == LP_OK &&
            (st = lp_peft_tensor_name(bn, sizeof bn, module, 'B', NULL)) == LP_OK) {
            ta = lp_safetensors_find(f, an);
            tb = lp_safetensors_find(f, bn);
            if (!ta || !tb)
                st = lp_error(LP_ERR_NOT_FOUND, "%s: tensor \"%s\" missing", wpath, ta ? bn : an);
        }
        if (st != LP_OK) {
            a->n++;
            break;
        }
        if (ta->ndim != 2 || tb->ndim != 2 || ta->shape[0] != a->config.r || tb->shape[1] != a->config.r)
            st = lp_error(LP_ERR_FORMAT, "%s: module \"%s\": lora_A must be (r, in) and lora_B (out, r) with r = %d "
                          "from %s",
                          wpath, module, a->config.r, cpath);
        if (st == LP_OK)
            st = lp_lora_new(&a->loras[a->n], ta->shape[1], tb->shape[0], &a->config,
                             lp_lora_seed_for(a->config.seed, module), with_grads);
        a->n++;
        if (st == LP_OK) st = read_pair(f, module, a->loras[a->n - 1]);
    }
    lp_safetensors_close(f);
    if (st != LP_OK) {
        lp_peft_free(a);
        return st;
    }
    *out = a;
    return LP_OK;
}

lp_status lp_peft_load_weights(const char *path, const char *const *modules, lp_lora *const *loras, int n)
{
    if (!path || n <= 0 || !modules || !loras) return lp_error(LP_ERR_INVALID_ARG, "lp_peft_load_weights: bad arguments");
    for (int i = 0; i < n; i++)
        if (!modules[i] || !loras[i])
            return lp_error(LP_ERR_INVALID_ARG, "lp_peft_load_weights: module or adapter %d is NULL", i);
    lp_safetensors *f;
    LP_TRY(lp_safetensors_open(&f, path));
    lp_status st = LP_OK;
    for (int i = 0; st == LP_OK && i < lp_safetensors_count(f); i++) {
        char *module;
        char which;
        const char *name = lp_safetensors_at(f, i)->name;
        if ((st = split_name(path, name, &module, &which)) != LP_OK) break;
        if (find_module((char *const *)modules, n, module) < 0)
            st = lp_error(LP_ERR_FORMAT, "%s: tensor \"%s\" belongs to module \"%s\", which has no adapter here", path,
                          name, module);
        free(module);
    }
    for (int i = 0; st == LP_OK && i < n; i++) st = read_pair(f, modules[i], loras[i]);
    lp_safetensors_close(f);
    return st;
}

lp_status lp_peft_save(const char *dir, const lp_lora_config *cfg, const char *const *modules, lp_lora *const *loras,
                       int n)
{
    static const char fn[] = "lp_peft_save";
    if (!dir || !cfg || !modules || !loras || n <= 0) return lp_error(LP_ERR_INVALID_ARG, "%s: bad arguments", fn);
    LP_TRY(lp_lora_config_validate(cfg));
    float s = lp_lora_config_scaling(cfg);
    for (int i = 0; i < n; i++) {
        if (!modules[i] || !loras[i]) return lp_error(LP_ERR_INVALID_ARG, "%s: module or adapter %d is NULL", fn, i);
        if (loras[i]->r != cfg->r || fabsf(loras[i]->scaling - s) > 1e-6f * s)
            return lp_error(LP_ERR_INVALID_ARG, "%s: adapter of \"%s\" has r %d, scaling %g; the config says r %d, "
                            "scaling %g",
                            fn, modules[i], loras[i]->r, (double)loras[i]->scaling, cfg->r, (double)s);
        for (int j = 0; j < i; j++)
            if (strcmp(modules[i], modules[j]) == 0)
                return lp_error(LP_ERR_INVALID_ARG, "%s: module \"%s\" listed twice", fn, modules[i]);
    }
    char wpath[LP_PATH_MAX], cpath[LP_PATH_MAX];
    LP_TRY(lp_path_join(wpath, sizeof wpath, dir, LP_PEFT_WEIGHTS_NAME));
    LP_TRY(lp_path_join(cpath, sizeof cpath, dir, LP_PEFT_CONFIG_NAME));
    LP_TRY(lp_dir_create(dir));
    lp_safetensors_writer *w = lp_safetensors_writer_new();
    if (!w) return lp_error_context(LP_ERR_NOMEM, "%s", fn);
    lp_status st = lp_safetensors_writer_set_metadata(w, "format", "pt");
    for (int i = 0; st == LP_OK && i < n; i++) {
        char an[1024], bn[1024];
        int64_t sa[2] = {loras[i]->r, loras[i]->C}, sb[2] = {loras[i]->OC, loras[i]->r};
        if ((st = lp_peft_tensor_name(an, sizeof an, modules[i], 'A', NULL)) != LP_OK) break;
        if ((st = lp_peft_tensor_name(bn, sizeof bn, modules[i], 'B', NULL)) != LP_OK) break;
        if ((st = lp_safetensors_writer_add_f32(w, an, loras[i]->A, sa, 2)) != LP_OK) break;
        st = lp_safetensors_writer_add_f32(w, bn, loras[i]->B, sb, 2);
    }
    if (st == LP_OK) st = lp_safetensors_writer_save(w, wpath);
    lp_safetensors_writer_free(w);
    if (st == LP_OK) st = lp_peft_write_config(cfg, cpath);
    return st;
}
