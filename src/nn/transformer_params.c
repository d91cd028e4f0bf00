/* Transformer structure: the named parameter list, linear maps, trainability. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/kernels/linear.h"
#include "leanprop/rng.h"
#include "nn/transformer_internal.h"

/* ------------------------------------------------------------ lp_nn_linear */

lp_status lp_nn_linear_forward(const lp_nn_linear *l, float *y, const float *x, int64_t N)
{
    return lp_nn_linear_forward_ids(l, y, x, NULL, N);
}

lp_status lp_nn_linear_backward(const lp_nn_linear *l, float *dx, const float *dy, const float *x, int64_t N)
{
    return lp_nn_linear_backward_ids(l, dx, dy, x, NULL, N);
}

lp_status lp_nn_linear_forward_ids(const lp_nn_linear *l, float *y, const float *x, const int64_t *ids, int64_t N)
{
    if (!l || !y || !x) return lp_error(LP_ERR_INVALID_ARG, "lp_nn_linear_forward: NULL argument");
    const lp_linear_hooks *h = l->hooks;
    const float *b = l->bias ? l->bias->data : NULL;
    if (h && h->base_forward) {
        LP_TRY(h->base_forward(h->ctx, y, x, N, l->in, l->out));
        if (b) LP_TRY(lp_bias_forward(y, b, N, l->out));
    } else {
        if (!l->weight || !l->weight->data)
            return lp_error(LP_ERR_INVALID_ARG, "linear %s: no weight data and no base_forward hook", l->name);
        LP_TRY(lp_linear_forward(y, x, l->weight->data, b, N, l->in, l->out));
    }
    if (h && h->forward_ids) LP_TRY(h->forward_ids(h->ctx, y, x, ids, N, l->in, l->out));
    else if (h && h->forward) LP_TRY(h->forward(h->ctx, y, x, N, l->in, l->out));
    return LP_OK;
}

lp_status lp_nn_linear_backward_ids(const lp_nn_linear *l, float *dx, const float *dy, const float *x,
                                    const int64_t *ids, int64_t N)
{
    if (!l || !dy) return lp_error(LP_ERR_INVALID_ARG, "lp_nn_linear_backward: NULL argument");
    if (N == 0) return LP_OK;
    const lp_linear_hooks *h = l->hooks;
    float *dW = l->weight ? l->weight->grad : NULL;
    float *db = l->bias ? l->bias->grad : NULL;
    if (h && h->base_backward) {
        if (dx) LP_TRY(h->base_backward(h->ctx, dx, dy, N, l->in, l->out));
        if (db) LP_TRY(lp_bias_backward(db, dy, N, l->out));
    } else if (dx || dW || db) {
        if (!l->weight || !l->weight->data)
            return lp_error(LP_ERR_INVALID_ARG, "linear %s: no weight data and no base_backward hook", l->name);
        LP_TRY(lp_linear_backward(dx, dW, db, dy, x, l->weight->data, N, l->in, l->out));
    }
    if (h && h->backward_ids) LP_TRY(h->backward_ids(h->ctx, dx, dy, x, ids, N, l->in, l->out));
    else if (h && h->backward) LP_TRY(h->backward(h->ctx, dx, dy, x, N, l->in, l->out));
    return LP_OK;
}

/* ------------------------------------------------------------ registration */

lp_param *lp_tf_add_param(lp_transformer *m, const char *name, int ndim, int64_t d0, int64_t d1, int transposed)
{
    if (m->n_params >= m->cap_params) {
        lp_error(LP_ERR_INTERNAL, "transformer: parameter table full at %s", name);
        return NULL;
    }
    lp_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    if (snprintf(p->name, sizeof p->name, "%s", name) >= (int)sizeof p->name) {
        lp_error(LP_ERR_INTERNAL, "transformer: parameter name too long: %s", name);
        return NULL;
    }
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->numel = d0 * (ndim > 1 ? d1 : 1);
    p->transposed = transposed;
    p->data = lp_alloc_array(LP_MEM_WEIGHTS, (size_t)p->numel, sizeof(float));
    if (!p->data) {
        lp_error_context(LP_ERR_NOMEM, "transformer parameter %s", name);
        return NULL;
    }
    m->n_params++;
    return p;
}

static lp_param *add_norm(lp_transformer *m, const char *name, int64_t C)
{
    lp_param *p = lp_tf_add_param(m, name, 1, C, 1, 0);
    if (!p) return NULL;
    p->kind = LP_PARAM_NORM;
    if (strstr(name, "weight"))
        for (int64_t i = 0; i < C; i++) p->data[i] = 1.0f;
    return p;
}

static lp_param *add_embedding(lp_transformer *m, const char *name, int64_t rows, int64_t C)
{
    lp_param *p = lp_tf_add_param(m, name, 2, rows, C, 0);
    if (p) p->kind = LP_PARAM_EMBEDDING;
    return p;
}

/* A linear "module" with "module.weight" (HF shape (out,in), or (in,out) for Conv1D)
 * and optionally "module.bias". shared_weight reuses an existing parameter (tied head). */
static lp_nn_linear *add_linear(lp_transformer *m, const char *module, int64_t in, int64_t out, int bias,
                                int conv1d, lp_param *shared_weight)
{
    if (m->n_linears >= m->cap_linears) {
        lp_error(LP_ERR_INTERNAL, "transformer: linear table full at %s", module);
        return NULL;
    }
    lp_nn_linear *l = &m->linears[m->n_linears];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", module);
    l->in = in;
    l->out = out;
    char name[160];
    if (shared_weight) {
        l->weight = shared_weight;
    } else {
        snprintf(name, sizeof name, "%s.weight", module);
        l->weight = conv1d ? lp_tf_add_param(m, name, 2, in, out, 1) : lp_tf_add_param(m, name, 2, out, in, 0);
        if (!l->weight) return NULL;
        l->weight->kind = LP_PARAM_LINEAR;
    }
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", module);
        l->bias = lp_tf_add_param(m, name, 1, out, 1, 0);
        if (!l->bias) return NULL;
        l->bias->kind = LP_PARAM_BIAS;
    }
    m->n_linears++;
    return l;
}

#define CHECK(p) do { if (!(p)) { lp_transformer_free(m); return lp_error_context(LP_ERR_NOMEM, "lp_transformer_new"); } } while (0)

static lp_status build_gpt2(lp_transformer *m)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size;
    char n[160];
    LP_TRY((m->wte = add_embedding(m, "transformer.wte.weight", c->vocab_size, C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->wpe = add_embedding(m, "transformer.wpe.weight", c->max_positions, C)) ? LP_OK : LP_ERR_NOMEM);
    for (int64_t i = 0; i < c->n_layers; i++) {
        lp_tf_layer *L = &m->layers[i];
        snprintf(n, sizeof n, "transformer.h.%lld.ln_1.weight", (long long)i);
        LP_TRY((L->ln1_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.ln_1.bias", (long long)i);
        LP_TRY((L->ln1_b = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.attn.c_attn", (long long)i);
        LP_TRY((L->qkv = add_linear(m, n, C, 3 * C, 1, 1, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.attn.c_proj", (long long)i);
        LP_TRY((L->o = add_linear(m, n, C, C, 1, 1, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.ln_2.weight", (long long)i);
        LP_TRY((L->ln2_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.ln_2.bias", (long long)i);
        LP_TRY((L->ln2_b = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.mlp.c_fc", (long long)i);
        LP_TRY((L->fc = add_linear(m, n, C, I, 1, 1, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "transformer.h.%lld.mlp.c_proj", (long long)i);
        LP_TRY((L->proj = add_linear(m, n, I, C, 1, 1, NULL)) ? LP_OK : LP_ERR_NOMEM);
    }
    LP_TRY((m->lnf_w = add_norm(m, "transformer.ln_f.weight", C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->lnf_b = add_norm(m, "transformer.ln_f.bias", C)) ? LP_OK : LP_ERR_NOMEM);
    m->head = c->task == LP_TASK_SEQ_CLS ? add_linear(m, "score", C, c->num_labels, 0, 0, NULL)
                                         : add_linear(m, "lm_head", C, c->vocab_size, 0, 0, c->tie_word_embeddings ? m->wte : NULL);
    return m->head ? LP_OK : LP_ERR_NOMEM;
}

static lp_status build_llama(lp_transformer *m)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size, QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    char n[160];
    LP_TRY((m->wte = add_embedding(m, "model.embed_tokens.weight", c->vocab_size, C)) ? LP_OK : LP_ERR_NOMEM);
    for (int64_t i = 0; i < c->n_layers; i++) {
        lp_tf_layer *L = &m->layers[i];
        snprintf(n, sizeof n, "model.layers.%lld.input_layernorm.weight", (long long)i);
        LP_TRY((L->ln1_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.self_attn.q_proj", (long long)i);
        LP_TRY((L->q = add_linear(m, n, C, QD, c->qkv_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.self_attn.k_proj", (long long)i);
        LP_TRY((L->k = add_linear(m, n, C, KD, c->qkv_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.self_attn.v_proj", (long long)i);
        LP_TRY((L->v = add_linear(m, n, C, KD, c->qkv_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.self_attn.o_proj", (long long)i);
        LP_TRY((L->o = add_linear(m, n, QD, C, c->o_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.post_attention_layernorm.weight", (long long)i);
        LP_TRY((L->ln2_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.mlp.gate_proj", (long long)i);
        LP_TRY((L->gate = add_linear(m, n, C, I, c->mlp_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.mlp.up_proj", (long long)i);
        LP_TRY((L->up = add_linear(m, n, C, I, c->mlp_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "model.layers.%lld.mlp.down_proj", (long long)i);
        LP_TRY((L->down = add_linear(m, n, I, C, c->mlp_bias, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
    }
    LP_TRY((m->lnf_w = add_norm(m, "model.norm.weight", C)) ? LP_OK : LP_ERR_NOMEM);
    m->head = c->task == LP_TASK_SEQ_CLS ? add_linear(m, "score", C, c->num_labels, 0, 0, NULL)
                                         : add_linear(m, "lm_head", C, c->vocab_size, 0, 0, c->tie_word_embeddings ? m->wte : NULL);
    return m->head ? LP_OK : LP_ERR_NOMEM;
}

static lp_status build_bert(lp_transformer *m)
{
    const lp_transformer_config *c = &m->cfg;
    int64_t C = c->hidden_size, I = c->intermediate_size;
    char n[160];
    LP_TRY((m->wte = add_embedding(m, "bert.embeddings.word_embeddings.weight", c->vocab_size, C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->wpe = add_embedding(m, "bert.embeddings.position_embeddings.weight", c->max_positions, C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->wtt = add_embedding(m, "bert.embeddings.token_type_embeddings.weight", c->type_vocab_size, C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->emb_ln_w = add_norm(m, "bert.embeddings.LayerNorm.weight", C)) ? LP_OK : LP_ERR_NOMEM);
    LP_TRY((m->emb_ln_b = add_norm(m, "bert.embeddings.LayerNorm.bias", C)) ? LP_OK : LP_ERR_NOMEM);
    for (int64_t i = 0; i < c->n_layers; i++) {
        lp_tf_layer *L = &m->layers[i];
        char pre[96];
        snprintf(pre, sizeof pre, "bert.encoder.layer.%lld", (long long)i);
        snprintf(n, sizeof n, "%s.attention.self.query", pre);
        LP_TRY((L->q = add_linear(m, n, C, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.attention.self.key", pre);
        LP_TRY((L->k = add_linear(m, n, C, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.attention.self.value", pre);
        LP_TRY((L->v = add_linear(m, n, C, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.attention.output.dense", pre);
        LP_TRY((L->o = add_linear(m, n, C, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.attention.output.LayerNorm.weight", pre);
        LP_TRY((L->ln1_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.attention.output.LayerNorm.bias", pre);
        LP_TRY((L->ln1_b = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.intermediate.dense", pre);
        LP_TRY((L->fc = add_linear(m, n, C, I, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.output.dense", pre);
        LP_TRY((L->proj = add_linear(m, n, I, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.output.LayerNorm.weight", pre);
        LP_TRY((L->ln2_w = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
        snprintf(n, sizeof n, "%s.output.LayerNorm.bias", pre);
        LP_TRY((L->ln2_b = add_norm(m, n, C)) ? LP_OK : LP_ERR_NOMEM);
    }
    LP_TRY((m->pooler = add_linear(m, "bert.pooler.dense", C, C, 1, 0, NULL)) ? LP_OK : LP_ERR_NOMEM);
    m->head = add_linear(m, "classifier", C, c->num_labels, 1, 0, NULL);
    return m->head ? LP_OK : LP_ERR_NOMEM;
}

lp_status lp_transformer_new(lp_transformer **out, const lp_transformer_config *cfg)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_new: out is NULL");
    *out = NULL;
    LP_TRY(lp_transformer_config_validate(cfg));
    lp_transformer *m = calloc(1, sizeof *m);
    if (!m) return lp_error(LP_ERR_NOMEM, "lp_transformer_new");
    m->cfg = *cfg;
    m->cap_params = (int)(16 * cfg->n_layers + 16);
    m->cap_linears = (int)(8 * cfg->n_layers + 8);
    m->params = calloc((size_t)m->cap_params, sizeof *m->params);
    m->linears = calloc((size_t)m->cap_linears, sizeof *m->linears);
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    CHECK(m->params && m->linears && m->layers);
    lp_status st = cfg->arch == LP_ARCH_GPT2 ? build_gpt2(m) : cfg->arch == LP_ARCH_LLAMA ? build_llama(m) : build_bert(m);
    if (st != LP_OK) {
        lp_transformer_free(m);
        return lp_error_context(st, "building %s model", cfg->model_type);
    }
    *out = m;
    return LP_OK;
}

void lp_transformer_free(lp_transformer *m)
{
    if (!m) return;
    lp_transformer_release_buffers(m);
    for (int i = 0; i < m->n_params; i++) {
        lp_free(m->params[i].data);
        lp_free(m->params[i].grad);
    }
    free(m->params);
    free(m->hf_config_text);
    free(m->linears);
    free(m->layers);
    free(m);
}

const lp_transformer_config *lp_transformer_get_config(const lp_transformer *m) { return m ? &m->cfg : NULL; }
lp_status lp_transformer_add_cls_head(lp_transformer *m, int64_t num_labels, uint64_t seed)
{
    static const char fn[] = "lp_transformer_add_cls_head";
    if (!m) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL model", fn);
    lp_transformer_config *c = &m->cfg;
    if (c->arch == LP_ARCH_BERT || c->task != LP_TASK_CAUSAL_LM)
        return lp_error(LP_ERR_INVALID_ARG, "%s: %s is already a classifier", fn, c->model_type);
    if (num_labels < 2 || num_labels >= ((int64_t)1 << 31))
        return lp_error(LP_ERR_INVALID_ARG, "%s: num_labels %lld (need >= 2)", fn, (long long)num_labels);
    /* the head is the last linear; an untied lm_head weight is the last parameter */
    lp_nn_linear *h = m->head;
    if (h != &m->linears[m->n_linears - 1] ||
        (h->weight != m->wte && h->weight != &m->params[m->n_params - 1]))
        return lp_error(LP_ERR_INTERNAL, "%s: unexpected head layout", fn);
    lp_transformer_release_buffers(m);
    if (h->weight != m->wte) {
        lp_free(h->weight->data);
        lp_free(h->weight->grad);
        m->n_params--;
    }
    m->n_linears--;
    c->task = LP_TASK_SEQ_CLS;
    c->num_labels = num_labels;
    m->head = add_linear(m, "score", c->hidden_size, num_labels, 0, 0, NULL);
    if (!m->head) return lp_error_context(LP_ERR_NOMEM, "%s", fn);
    lp_rng r;
    lp_rng_seed(&r, seed);
    lp_rng_fill_normal(&r, m->head->weight->data, (size_t)m->head->weight->numel, 0.0f, 0.02f);
    free(m->hf_config_text); /* config.json is generated again on save */
    m->hf_config_text = NULL;
    return LP_OK;
}

int lp_transformer_n_params(const lp_transformer *m) { return m ? m->n_params : 0; }
lp_param *lp_transformer_param(lp_transformer *m, int i) { return m && i >= 0 && i < m->n_params ? &m->params[i] : NULL; }
int lp_transformer_n_linears(const lp_transformer *m) { return m ? m->n_linears : 0; }
lp_nn_linear *lp_transformer_linear(lp_transformer *m, int i) { return m && i >= 0 && i < m->n_linears ? &m->linears[i] : NULL; }

lp_param *lp_transformer_find_param(lp_transformer *m, const char *name)
{
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

lp_nn_linear *lp_transformer_find_linear(lp_transformer *m, const char *name)
{
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_linears; i++)
        if (!strcmp(m->linears[i].name, name)) return &m->linears[i];
    return NULL;
}

int64_t lp_transformer_count_params(const lp_transformer *m, int trainable_only)
{
    int64_t n = 0;
    for (int i = 0; m && i < m->n_params; i++)
        if (!trainable_only || m->params[i].grad) n += m->params[i].numel;
    return n;
}

lp_status lp_transformer_set_trainable(lp_transformer *m, const char *name_substring, int trainable)
{
    if (!m) return lp_error(LP_ERR_INVALID_ARG, "lp_transformer_set_trainable: NULL model");
    for (int i = 0; i < m->n_params; i++) {
        lp_param *p = &m->params[i];
        if (name_substring && !strstr(p->name, name_substring)) continue;
        if (trainable && !p->grad) {
            p->grad = lp_alloc_array(LP_MEM_GRADIENTS, (size_t)p->numel, sizeof(float));
            if (!p->grad) return lp_error_context(LP_ERR_NOMEM, "gradient of %s", p->name);
        } else if (!trainable && p->grad) {
            lp_free(p->grad);
            p->grad = NULL;
        }
    }
    return LP_OK;
}

void lp_transformer_zero_grad(lp_transformer *m)
{
    for (int i = 0; m && i < m->n_params; i++)
        if (m->params[i].grad) memset(m->params[i].grad, 0, (size_t)m->params[i].numel * sizeof(float));
}

void lp_transformer_init_random(lp_transformer *m, uint64_t seed, float std)
{
    if (!m) return;
    lp_rng r;
    lp_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++) {
        lp_param *p = &m->params[i];
        if (!p->data) continue;
        if (p->kind == LP_PARAM_LINEAR || p->kind == LP_PARAM_EMBEDDING) {
            lp_rng_fill_normal(&r, p->data, (size_t)p->numel, 0.0f, std);
        } else {
            float v = (p->kind == LP_PARAM_NORM && strstr(p->name, "weight")) ? 1.0f : 0.0f;
            for (int64_t j = 0; j < p->numel; j++) p->data[j] = v;
        }
    }
}

lp_status lp_param_copy_hf(const lp_param *p, float *dst, int grad)
{
    if (!p || !dst) return lp_error(LP_ERR_INVALID_ARG, "lp_param_copy_hf: NULL argument");
    const float *src = grad ? p->grad : p->data;
    if (!src) return lp_error(LP_ERR_INVALID_ARG, "%s: no %s", p->name, grad ? "gradient" : "data");
    if (!p->transposed) {
        memcpy(dst, src, (size_t)p->numel * sizeof(float));
        return LP_OK;
    }
    /* internal (out, in) = (shape[1], shape[0]) -> HF (in, out) */
    int64_t rows = p->shape[1], cols = p->shape[0];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
    return LP_OK;
}
