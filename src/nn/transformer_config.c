/* Transformer configs: defaults, Hugging Face config.json parsing and writing. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/fileio.h"
#include "leanprop/transformer.h"

void lp_transformer_config_default(lp_transformer_config *cfg, lp_arch arch)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = arch;
    cfg->bos_token_id = cfg->eos_token_id = cfg->pad_token_id = -1;
    switch (arch) {
    case LP_ARCH_GPT2:
        snprintf(cfg->model_type, sizeof cfg->model_type, "gpt2");
        cfg->vocab_size = 50257;
        cfg->hidden_size = 768;
        cfg->n_layers = 12;
        cfg->n_heads = cfg->n_kv_heads = 12;
        cfg->head_dim = 64;
        cfg->intermediate_size = 3072;
        cfg->max_positions = 1024;
        cfg->norm_eps = 1e-5;
        cfg->tie_word_embeddings = 1;
        cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
        cfg->bos_token_id = cfg->eos_token_id = 50256;
        break;
    case LP_ARCH_LLAMA:
        snprintf(cfg->model_type, sizeof cfg->model_type, "llama");
        cfg->vocab_size = 32000;
        cfg->hidden_size = 2048;
        cfg->n_layers = 22;
        cfg->n_heads = 32;
        cfg->n_kv_heads = 4;
        cfg->head_dim = 64;
        cfg->intermediate_size = 5632;
        cfg->max_positions = 2048;
        cfg->norm_eps = 1e-5;
        cfg->rope_theta = 10000.0;
        cfg->bos_token_id = 1;
        cfg->eos_token_id = 2;
        break;
    case LP_ARCH_BERT:
    default:
        cfg->arch = LP_ARCH_BERT;
        snprintf(cfg->model_type, sizeof cfg->model_type, "bert");
        cfg->vocab_size = 30522;
        cfg->hidden_size = 768;
        cfg->n_layers = 12;
        cfg->n_heads = cfg->n_kv_heads = 12;
        cfg->head_dim = 64;
        cfg->intermediate_size = 3072;
        cfg->max_positions = 512;
        cfg->type_vocab_size = 2;
        cfg->num_labels = 2;
        cfg->norm_eps = 1e-12;
        cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
        cfg->pad_token_id = 0;
        cfg->task = LP_TASK_SEQ_CLS;
        break;
    }
}

lp_status lp_transformer_config_validate(const lp_transformer_config *c)
{
    if (!c) return lp_error(LP_ERR_INVALID_ARG, "transformer config: NULL");
    if (c->arch < 0 || c->arch >= LP_ARCH_COUNT) return lp_error(LP_ERR_INVALID_ARG, "transformer config: bad arch %d", (int)c->arch);
    const int64_t lim = (int64_t)1 << 31;
#define POS(field)                                                                                          \
    if (c->field <= 0 || c->field >= lim)                                                                   \
        return lp_error(LP_ERR_FORMAT, "transformer config: %s = %lld out of range", #field, (long long)c->field)
    POS(vocab_size);
    POS(hidden_size);
    POS(n_layers);
    POS(n_heads);
    POS(n_kv_heads);
    POS(head_dim);
    POS(intermediate_size);
    POS(max_positions);
#undef POS
    if (c->n_heads % c->n_kv_heads)
        return lp_error(LP_ERR_FORMAT, "transformer config: n_heads %lld not a multiple of n_kv_heads %lld",
                        (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->arch != LP_ARCH_LLAMA && c->n_heads * c->head_dim != c->hidden_size)
        return lp_error(LP_ERR_FORMAT, "transformer config: n_heads %lld * head_dim %lld != hidden_size %lld",
                        (long long)c->n_heads, (long long)c->head_dim, (long long)c->hidden_size);
    if (c->arch != LP_ARCH_LLAMA && c->n_kv_heads != c->n_heads)
        return lp_error(LP_ERR_FORMAT, "transformer config: %s needs n_kv_heads == n_heads", c->model_type);
    if (c->arch == LP_ARCH_LLAMA && (c->head_dim % 2))
        return lp_error(LP_ERR_FORMAT, "transformer config: RoPE needs an even head_dim, got %lld", (long long)c->head_dim);
    if (c->arch == LP_ARCH_LLAMA && !(c->rope_theta > 0))
        return lp_error(LP_ERR_FORMAT, "transformer config: rope_theta must be > 0");
    if (!(c->norm_eps > 0) || !(c->norm_eps < 1))
        return lp_error(LP_ERR_FORMAT, "transformer config: norm eps %g out of range", c->norm_eps);
    if (c->arch == LP_ARCH_BERT) {
        if (c->type_vocab_size <= 0 || c->type_vocab_size >= lim)
            return lp_error(LP_ERR_FORMAT, "transformer config: type_vocab_size %lld out of range", (long long)c->type_vocab_size);
        if (c->num_labels < 2 || c->num_labels >= lim)
            return lp_error(LP_ERR_UNSUPPORTED, "transformer config: num_labels %lld (classification needs >= 2)",
                            (long long)c->num_labels);
    }
    if (c->task != LP_TASK_CAUSAL_LM && c->task != LP_TASK_SEQ_CLS)
        return lp_error(LP_ERR_INVALID_ARG, "transformer config: bad task %d", (int)c->task);
    if (c->arch != LP_ARCH_BERT && c->task == LP_TASK_SEQ_CLS && (c->num_labels < 2 || c->num_labels >= lim))
        return lp_error(LP_ERR_UNSUPPORTED, "transformer config: num_labels %lld (classification needs >= 2)",
                        (long long)c->num_labels);
    return LP_OK;
}

/* ------------------------------------------------------------ json reading */

static const cJSON *jget(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* Integer field: absent/null -> def (LP_OK); non-integer -> error naming the key. */
static lp_status jint(const cJSON *o, const char *key, int64_t def, int64_t *out, const char *path)
{
    const cJSON *v = jget(o, key);
    if (!v) { *out = def; return LP_OK; }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9e15)
        return lp_error(LP_ERR_FORMAT, "%s: \"%s\" must be an integer", path, key);
    *out = (int64_t)v->valuedouble;
    return LP_OK;
}

static lp_status jreq(const cJSON *o, const char *key, int64_t *out, const char *path)
{
    if (!jget(o, key)) return lp_error(LP_ERR_FORMAT, "%s: missing \"%s\"", path, key);
    return jint(o, key, 0, out, path);
}

static lp_status jnum(const cJSON *o, const char *key, double def, double *out, const char *path)
{
    const cJSON *v = jget(o, key);
    if (!v) { *out = def; return LP_OK; }
    if (!cJSON_IsNumber(v)) return lp_error(LP_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    *out = v->valuedouble;
    return LP_OK;
}

static lp_status jbool(const cJSON *o, const char *key, int def, int *out, const char *path)
{
    const cJSON *v = jget(o, key);
    if (!v) { *out = def; return LP_OK; }
    if (!cJSON_IsBool(v)) return lp_error(LP_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return LP_OK;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* bos/eos may be an int or a list of ints (first taken). */
static lp_status jtoken(const cJSON *o, const char *key, int64_t *out, const char *path)
{
    const cJSON *v = jget(o, key);
    if (v && cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v) { *out = -1; return LP_OK; }
    /* range before the cast (a double past int64 is undefined behaviour; found by fuzzing) */
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 9e15))
        return lp_error(LP_ERR_FORMAT, "%s: \"%s\" must be a token id", path, key);
    *out = (int64_t)v->valuedouble;
    return LP_OK;
}

/* num_labels (from id2label, default 2) and problem_type of a classifier. */
static lp_status parse_labels(lp_transformer_config *c, const cJSON *j, const char *path)
{
    const cJSON *id2 = jget(j, "id2label");
    int64_t nl = 2;
    if (id2 && cJSON_IsObject(id2)) nl = cJSON_GetArraySize(id2);
    LP_TRY(jint(j, "num_labels", nl, &c->num_labels, path));
    const char *pt = jstr(j, "problem_type");
    if (pt && strcmp(pt, "single_label_classification"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: problem_type \"%s\" not supported", path, pt);
    return LP_OK;
}

/* GPT-2 / Llama: "*ForSequenceClassification" -> a score head. */
static lp_status parse_task(lp_transformer_config *c, const cJSON *j, const char *path, const char *arch0)
{
    if (!arch0 || !strstr(arch0, "ForSequenceClassification")) return LP_OK;
    c->task = LP_TASK_SEQ_CLS;
    return parse_labels(c, j, path);
}

static lp_status parse_gpt2(lp_transformer_config *c, const cJSON *j, const char *path)
{
    lp_transformer_config_default(c, LP_ARCH_GPT2);
    LP_TRY(jreq(j, "vocab_size", &c->vocab_size, path));
    LP_TRY(jreq(j, "n_embd", &c->hidden_size, path));
    LP_TRY(jreq(j, "n_layer", &c->n_layers, path));
    LP_TRY(jreq(j, "n_head", &c->n_heads, path));
    LP_TRY(jint(j, "n_positions", 1024, &c->max_positions, path));
    c->n_kv_heads = c->n_heads;
    if (c->n_heads <= 0 || c->hidden_size % c->n_heads)
        return lp_error(LP_ERR_FORMAT, "%s: n_embd %lld not divisible by n_head %lld", path, (long long)c->hidden_size,
                        (long long)c->n_heads);
    c->head_dim = c->hidden_size / c->n_heads;
    LP_TRY(jint(j, "n_inner", 4 * c->hidden_size, &c->intermediate_size, path));
    LP_TRY(jnum(j, "layer_norm_epsilon", 1e-5, &c->norm_eps, path));
    LP_TRY(jbool(j, "tie_word_embeddings", 1, &c->tie_word_embeddings, path));
    const char *act = jstr(j, "activation_function");
    if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh") && strcmp(act, "gelu_fast"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: activation_function \"%s\" not supported (gelu_new only)", path, act);
    int v;
    LP_TRY(jbool(j, "scale_attn_weights", 1, &v, path));
    if (!v) return lp_error(LP_ERR_UNSUPPORTED, "%s: scale_attn_weights false not supported", path);
    LP_TRY(jbool(j, "scale_attn_by_inverse_layer_idx", 0, &v, path));
    if (v) return lp_error(LP_ERR_UNSUPPORTED, "%s: scale_attn_by_inverse_layer_idx not supported", path);
    LP_TRY(jtoken(j, "bos_token_id", &c->bos_token_id, path));
    LP_TRY(jtoken(j, "eos_token_id", &c->eos_token_id, path));
    LP_TRY(jtoken(j, "pad_token_id", &c->pad_token_id, path));
    return LP_OK;
}

static lp_status parse_llama(lp_transformer_config *c, const cJSON *j, const char *path, const char *mt)
{
    lp_transformer_config_default(c, LP_ARCH_LLAMA);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    int qwen2 = !strcmp(mt, "qwen2");
    LP_TRY(jreq(j, "vocab_size", &c->vocab_size, path));
    LP_TRY(jreq(j, "hidden_size", &c->hidden_size, path));
    LP_TRY(jreq(j, "num_hidden_layers", &c->n_layers, path));
    LP_TRY(jreq(j, "num_attention_heads", &c->n_heads, path));
    LP_TRY(jreq(j, "intermediate_size", &c->intermediate_size, path));
    LP_TRY(jint(j, "num_key_value_heads", c->n_heads, &c->n_kv_heads, path));
    if (c->n_heads <= 0) return lp_error(LP_ERR_FORMAT, "%s: num_attention_heads must be > 0", path);
    LP_TRY(jint(j, "head_dim", c->hidden_size / c->n_heads, &c->head_dim, path));
    LP_TRY(jint(j, "max_position_embeddings", 2048, &c->max_positions, path));
    LP_TRY(jnum(j, "rms_norm_eps", 1e-6, &c->norm_eps, path));
    LP_TRY(jbool(j, "tie_word_embeddings", 0, &c->tie_word_embeddings, path));
    int ab, mb;
    LP_TRY(jbool(j, "attention_bias", qwen2, &ab, path));
    LP_TRY(jbool(j, "mlp_bias", 0, &mb, path));
    c->qkv_bias = ab;
    c->o_bias = qwen2 ? 0 : ab;
    c->mlp_bias = mb;
    const char *act = jstr(j, "hidden_act");
    if (act && strcmp(act, "silu") && strcmp(act, "swish"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" not supported (silu only)", path, act);
    /* rope: rope_theta at top level (transformers 4.x) or in rope_parameters (5.x) */
    const cJSON *rp = jget(j, "rope_parameters");
    const cJSON *rs = jget(j, "rope_scaling");
    LP_TRY(jnum(j, "rope_theta", 10000.0, &c->rope_theta, path));
    if (rp) {
        if (!cJSON_IsObject(rp)) return lp_error(LP_ERR_FORMAT, "%s: \"rope_parameters\" must be an object", path);
        LP_TRY(jnum(rp, "rope_theta", c->rope_theta, &c->rope_theta, path));
        rs = rp;
    }
    if (rs) {
        const char *rt = jstr(rs, "rope_type");
        if (!rt) rt = jstr(rs, "type");
        if (rt && strcmp(rt, "default"))
            return lp_error(LP_ERR_UNSUPPORTED, "%s: rope scaling \"%s\" not supported (default RoPE only)", path, rt);
    }
    if (qwen2) {
        int sw;
        LP_TRY(jbool(j, "use_sliding_window", 0, &sw, path));
        if (sw) return lp_error(LP_ERR_UNSUPPORTED, "%s: use_sliding_window not supported", path);
    }
    if (!strcmp(mt, "mistral")) {
        int64_t sw;
        LP_TRY(jint(j, "sliding_window", 0, &sw, path));
        if (sw > 0 && sw < c->max_positions) c->max_positions = sw; /* exact up to the window */
    }
    LP_TRY(jtoken(j, "bos_token_id", &c->bos_token_id, path));
    LP_TRY(jtoken(j, "eos_token_id", &c->eos_token_id, path));
    LP_TRY(jtoken(j, "pad_token_id", &c->pad_token_id, path));
    return LP_OK;
}

static lp_status parse_bert(lp_transformer_config *c, const cJSON *j, const char *path)
{
    lp_transformer_config_default(c, LP_ARCH_BERT);
    LP_TRY(jreq(j, "vocab_size", &c->vocab_size, path));
    LP_TRY(jreq(j, "hidden_size", &c->hidden_size, path));
    LP_TRY(jreq(j, "num_hidden_layers", &c->n_layers, path));
    LP_TRY(jreq(j, "num_attention_heads", &c->n_heads, path));
    LP_TRY(jreq(j, "intermediate_size", &c->intermediate_size, path));
    c->n_kv_heads = c->n_heads;
    if (c->n_heads <= 0 || c->hidden_size % c->n_heads)
        return lp_error(LP_ERR_FORMAT, "%s: hidden_size %lld not divisible by num_attention_heads %lld", path,
                        (long long)c->hidden_size, (long long)c->n_heads);
    c->head_dim = c->hidden_size / c->n_heads;
    LP_TRY(jint(j, "max_position_embeddings", 512, &c->max_positions, path));
    LP_TRY(jint(j, "type_vocab_size", 2, &c->type_vocab_size, path));
    LP_TRY(jnum(j, "layer_norm_eps", 1e-12, &c->norm_eps, path));
    LP_TRY(jtoken(j, "pad_token_id", &c->pad_token_id, path));
    const char *act = jstr(j, "hidden_act");
    if (act && strcmp(act, "gelu"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" not supported (gelu only)", path, act);
    const char *pe = jstr(j, "position_embedding_type");
    if (pe && strcmp(pe, "absolute"))
        return lp_error(LP_ERR_UNSUPPORTED, "%s: position_embedding_type \"%s\" not supported", path, pe);
    LP_TRY(parse_labels(c, j, path));
    c->tie_word_embeddings = 0; /* no LM head in sequence classification */
    return LP_OK;
}

lp_status lp_transformer_config_parse(lp_transformer_config *cfg, const char *json_text, const char *path)
{
    if (!cfg || !json_text) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_config_parse: NULL argument");
    if (!path) path = "config.json";
    cJSON *j = cJSON_Parse(json_text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lp_error(LP_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const char *mt = jstr(j, "model_type");
    const char *arch0 = NULL;
    const cJSON *archs = jget(j, "architectures");
    if (archs && cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch0 = cJSON_GetArrayItem(archs, 0)->valuestring;
    lp_status st;
    if (!mt) {
        st = lp_error(LP_ERR_FORMAT, "%s: missing \"model_type\"", path);
    } else if (!strcmp(mt, "gpt2")) {
        st = parse_gpt2(cfg, j, path);
        if (st == LP_OK) st = parse_task(cfg, j, path, arch0);
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2")) {
        st = parse_llama(cfg, j, path, mt);
        if (st == LP_OK) st = parse_task(cfg, j, path, arch0);
    } else if (!strcmp(mt, "bert")) {
        if (arch0 && strcmp(arch0, "BertForSequenceClassification"))
            st = lp_error(LP_ERR_UNSUPPORTED, "%s: architecture \"%s\" not supported (BertForSequenceClassification only)",
                          path, arch0);
        else
            st = parse_bert(cfg, j, path);
    } else {
        st = lp_error(LP_ERR_UNSUPPORTED, "%s: unknown model_type \"%s\" (supported: gpt2, llama, mistral, qwen2, bert)",
                      path, mt);
    }
    cJSON_Delete(j);
    if (st != LP_OK) return st;
    st = lp_transformer_config_validate(cfg);
    if (st != LP_OK) return lp_error_context(st, "%s", path);
    return LP_OK;
}

lp_status lp_transformer_config_load(lp_transformer_config *cfg, const char *path)
{
    char *text = NULL;
    LP_TRY(lp_file_read_all(path, 16u << 20, LP_MEM_SCRATCH, &text, NULL));
    lp_status st = lp_transformer_config_parse(cfg, text, path);
    lp_free(text);
    return st;
}

/* ------------------------------------------------------------ json writing */

static void add_int(cJSON *o, const char *k, int64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }
static void add_tok(cJSON *o, const char *k, int64_t v)
{
    if (v >= 0) add_int(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

lp_status lp_transformer_config_to_json(const lp_transformer_config *c, const char *torch_dtype, char **out)
{
    LP_TRY(lp_transformer_config_validate(c));
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_config_to_json: out is NULL");
    if (!torch_dtype) torch_dtype = "float32";
    cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
    if (!j || !a) { cJSON_Delete(j); cJSON_Delete(a); return lp_error(LP_ERR_NOMEM, "config json"); }
    int cls = c->arch == LP_ARCH_BERT || c->task == LP_TASK_SEQ_CLS;
    const char *archname = c->arch == LP_ARCH_BERT ? "BertForSequenceClassification"
                         : c->arch == LP_ARCH_GPT2 ? (cls ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel")
                         : !strcmp(c->model_type, "mistral") ? (cls ? "MistralForSequenceClassification" : "MistralForCausalLM")
                         : !strcmp(c->model_type, "qwen2") ? (cls ? "Qwen2ForSequenceClassification" : "Qwen2ForCausalLM")
                         : cls ? "LlamaForSequenceClassification" : "LlamaForCausalLM";
    cJSON_AddItemToArray(a, cJSON_CreateString(archname));
    cJSON_AddItemToObject(j, "architectures", a);
    cJSON_AddStringToObject(j, "model_type", c->model_type[0] ? c->model_type : "llama");
    add_int(j, "vocab_size", c->vocab_size);
    if (c->arch == LP_ARCH_GPT2) {
        cJSON_AddStringToObject(j, "activation_function", "gelu_new");
        add_int(j, "n_embd", c->hidden_size);
        add_int(j, "n_layer", c->n_layers);
        add_int(j, "n_head", c->n_heads);
        add_int(j, "n_inner", c->intermediate_size);
        add_int(j, "n_positions", c->max_positions);
        add_int(j, "n_ctx", c->max_positions);
        cJSON_AddNumberToObject(j, "layer_norm_epsilon", c->norm_eps);
        cJSON_AddNumberToObject(j, "attn_pdrop", 0);
        cJSON_AddNumberToObject(j, "embd_pdrop", 0);
        cJSON_AddNumberToObject(j, "resid_pdrop", 0);
        cJSON_AddBoolToObject(j, "scale_attn_weights", 1);
    } else if (c->arch == LP_ARCH_LLAMA) {
        add_int(j, "hidden_size", c->hidden_size);
        add_int(j, "intermediate_size", c->intermediate_size);
        add_int(j, "num_hidden_layers", c->n_layers);
        add_int(j, "num_attention_heads", c->n_heads);
        add_int(j, "num_key_value_heads", c->n_kv_heads);
        add_int(j, "head_dim", c->head_dim);
        add_int(j, "max_position_embeddings", c->max_positions);
        cJSON_AddStringToObject(j, "hidden_act", "silu");
        cJSON_AddNumberToObject(j, "rms_norm_eps", c->norm_eps);
        cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
        cJSON_AddNullToObject(j, "rope_scaling");
        if (strcmp(c->model_type, "qwen2")) {
            cJSON_AddBoolToObject(j, "attention_bias", c->qkv_bias);
            cJSON_AddBoolToObject(j, "mlp_bias", c->mlp_bias);
        }
        cJSON_AddNumberToObject(j, "attention_dropout", 0);
        cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    } else {
        add_int(j, "hidden_size", c->hidden_size);
        add_int(j, "num_hidden_layers", c->n_layers);
        add_int(j, "num_attention_heads", c->n_heads);
        add_int(j, "intermediate_size", c->intermediate_size);
        add_int(j, "max_position_embeddings", c->max_positions);
        add_int(j, "type_vocab_size", c->type_vocab_size);
        cJSON_AddStringToObject(j, "hidden_act", "gelu");
        cJSON_AddNumberToObject(j, "layer_norm_eps", c->norm_eps);
        cJSON_AddNumberToObject(j, "hidden_dropout_prob", 0.1);
        cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", 0.1);
        cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
    }
    if (cls) {
        cJSON *id2 = cJSON_CreateObject(), *l2i = cJSON_CreateObject();
        for (int64_t i = 0; i < c->num_labels && id2 && l2i; i++) {
            char k[32], v[32];
            snprintf(k, sizeof k, "%lld", (long long)i);
            snprintf(v, sizeof v, "LABEL_%lld", (long long)i);
            cJSON_AddStringToObject(id2, k, v);
            cJSON_AddNumberToObject(l2i, v, (double)i);
        }
        cJSON_AddItemToObject(j, "id2label", id2);
        cJSON_AddItemToObject(j, "label2id", l2i);
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->arch == LP_ARCH_BERT ? 1 : c->tie_word_embeddings);
    add_tok(j, "bos_token_id", c->bos_token_id);
    add_tok(j, "eos_token_id", c->eos_token_id);
    add_tok(j, "pad_token_id", c->pad_token_id);
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype);
    cJSON_AddBoolToObject(j, "use_cache", 1);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return lp_error(LP_ERR_NOMEM, "config json");
    *out = s;
    return LP_OK;
}
