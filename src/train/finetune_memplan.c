/* lp_ft_plan_memory: the bytes of every category one training step
 * (forward + backward + optimizer step) allocates, from the config alone.
 *
 * The parameter and linear lists are rebuilt from the config with the names
 * and shapes lp_transformer_new gives them (tests/test_memplan.c checks both
 * lists against real models), so LoRA targets and full_only resolve exactly
 * as on a loaded model. Scratch is the transformer's own (lp_transformer_
 * plan_memory) plus the largest temporary allocated inside one call while it
 * is held: attention's per-thread rows, RoPE's frequency table, LoRA's
 * (N, r) products and dropout chunks, NF4 dequantisation tiles. The formulas
 * are in docs/FINETUNE_MODEL.md. */
#include "train/finetune_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "leanprop/alloc.h"

/* ------------------------------------------------------------ structure */

lp_status lp_ft_layout_build(lp_ft_layout *L, const lp_transformer_config *c)
{
    memset(L, 0, sizeof *L);
    int64_t nl = c->n_layers;
    L->params = calloc((size_t)(16 * nl + 16), sizeof *L->params);
    L->linears = calloc((size_t)(8 * nl + 8), sizeof *L->linears);
    if (!L->params || !L->linears) {
        lp_ft_layout_free(L);
        return lp_error(LP_ERR_NOMEM, "memory plan: layout");
    }
    int64_t C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    int cls = c->arch == LP_ARCH_BERT || c->task == LP_TASK_SEQ_CLS;
#define P(nm, n, k)                                                                                          \
    do {                                                                                                     \
        lp_ft_layout_param *p_ = &L->params[L->n_params++];                                                  \
        snprintf(p_->name, sizeof p_->name, "%s", nm);                                                       \
        p_->numel = (n);                                                                                     \
        p_->kind = (k);                                                                                      \
    } while (0)
#define LIN(mod, in_, out_, bias_, own_)                                                                       \
    do {                                                                                                     \
        lp_ft_layout_linear *l_ = &L->linears[L->n_linears++];                                              \
        snprintf(l_->name, sizeof l_->name, "%s", mod);                                                      \
        l_->in = (in_);                                                                                      \
        l_->out = (out_);                                                                                    \
        l_->own_weight = (own_);                                                                             \
        char n_[160];                                                                                        \
        if (own_) {                                                                                           \
            snprintf(n_, sizeof n_, "%s.weight", mod);                                                       \
            l_->weight = L->n_params;                                                                        \
            P(n_, (in_) * (out_), LP_PARAM_LINEAR);                                                          \
        } else {                                                                                             \
            l_->weight = -1;                                                                                 \
        }                                                                                                    \
        l_->bias = -1;                                                                                       \
        if (bias_) {                                                                                         \
            snprintf(n_, sizeof n_, "%s.bias", mod);                                                         \
            l_->bias = L->n_params;                                                                          \
            P(n_, (out_), LP_PARAM_BIAS);                                                                    \
        }                                                                                                    \
    } while (0)
    char n[160];
    if (c->arch == LP_ARCH_GPT2) {
        P("transformer.wte.weight", V * C, LP_PARAM_EMBEDDING);
        P("transformer.wpe.weight", c->max_positions * C, LP_PARAM_EMBEDDING);
        for (int64_t i = 0; i < nl; i++) {
            snprintf(n, sizeof n, "transformer.h.%lld.ln_1.weight", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "transformer.h.%lld.ln_1.bias", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "transformer.h.%lld.attn.c_attn", (long long)i);
            LIN(n, C, 3 * C, 1, 1);
            snprintf(n, sizeof n, "transformer.h.%lld.attn.c_proj", (long long)i);
            LIN(n, C, C, 1, 1);
            snprintf(n, sizeof n, "transformer.h.%lld.ln_2.weight", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "transformer.h.%lld.ln_2.bias", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "transformer.h.%lld.mlp.c_fc", (long long)i);
            LIN(n, C, I, 1, 1);
            snprintf(n, sizeof n, "transformer.h.%lld.mlp.c_proj", (long long)i);
            LIN(n, I, C, 1, 1);
        }
        P("transformer.ln_f.weight", C, LP_PARAM_NORM);
        P("transformer.ln_f.bias", C, LP_PARAM_NORM);
    } else if (c->arch == LP_ARCH_LLAMA) {
        P("model.embed_tokens.weight", V * C, LP_PARAM_EMBEDDING);
        for (int64_t i = 0; i < nl; i++) {
            snprintf(n, sizeof n, "model.layers.%lld.input_layernorm.weight", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "model.layers.%lld.self_attn.q_proj", (long long)i);
            LIN(n, C, QD, c->qkv_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.self_attn.k_proj", (long long)i);
            LIN(n, C, KD, c->qkv_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.self_attn.v_proj", (long long)i);
            LIN(n, C, KD, c->qkv_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.self_attn.o_proj", (long long)i);
            LIN(n, QD, C, c->o_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.post_attention_layernorm.weight", (long long)i);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "model.layers.%lld.mlp.gate_proj", (long long)i);
            LIN(n, C, I, c->mlp_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.mlp.up_proj", (long long)i);
            LIN(n, C, I, c->mlp_bias, 1);
            snprintf(n, sizeof n, "model.layers.%lld.mlp.down_proj", (long long)i);
            LIN(n, I, C, c->mlp_bias, 1);
        }
        P("model.norm.weight", C, LP_PARAM_NORM);
    } else {
        P("bert.embeddings.word_embeddings.weight", V * C, LP_PARAM_EMBEDDING);
        P("bert.embeddings.position_embeddings.weight", c->max_positions * C, LP_PARAM_EMBEDDING);
        P("bert.embeddings.token_type_embeddings.weight", c->type_vocab_size * C, LP_PARAM_EMBEDDING);
        P("bert.embeddings.LayerNorm.weight", C, LP_PARAM_NORM);
        P("bert.embeddings.LayerNorm.bias", C, LP_PARAM_NORM);
        for (int64_t i = 0; i < nl; i++) {
            char pre[96];
            snprintf(pre, sizeof pre, "bert.encoder.layer.%lld", (long long)i);
            const char *qkvo[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                  "attention.output.dense"};
            for (int k = 0; k < 4; k++) {
                snprintf(n, sizeof n, "%s.%s", pre, qkvo[k]);
                LIN(n, C, C, 1, 1);
            }
            snprintf(n, sizeof n, "%s.attention.output.LayerNorm.weight", pre);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "%s.attention.output.LayerNorm.bias", pre);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "%s.intermediate.dense", pre);
            LIN(n, C, I, 1, 1);
            snprintf(n, sizeof n, "%s.output.dense", pre);
            LIN(n, I, C, 1, 1);
            snprintf(n, sizeof n, "%s.output.LayerNorm.weight", pre);
            P(n, C, LP_PARAM_NORM);
            snprintf(n, sizeof n, "%s.output.LayerNorm.bias", pre);
            P(n, C, LP_PARAM_NORM);
        }
        LIN("bert.pooler.dense", C, C, 1, 1);
    }
    if (c->arch == LP_ARCH_BERT) LIN("classifier", C, c->num_labels, 1, 1);
    else if (cls) LIN("score", C, c->num_labels, 0, 1);
    else LIN("lm_head", C, V, 0, !c->tie_word_embeddings);
#undef P
#undef LIN
    return LP_OK;
}

void lp_ft_layout_free(lp_ft_layout *L)
{
    free(L->params);
    free(L->linears);
    memset(L, 0, sizeof *L);
}

/* ------------------------------------------------------------ pieces */

#define LORA_CHUNK_FLOATS ((int64_t)(LP_LORA_CHUNK_BYTES / sizeof(float)))

/* Temporaries of one LoRA forward over N rows (lp_lora_forward_ids). */
static size_t lora_fwd_bytes(int64_t N, int64_t C, int r, int drop)
{
    if (N <= 0) return 0;
    size_t b = (size_t)N * (size_t)r * sizeof(float);
    if (drop) {
        int64_t ch = LORA_CHUNK_FLOATS / C;
        if (ch < 1) ch = 1;
        if (ch > N) ch = N;
        b += (size_t)ch * (size_t)C * (sizeof(float) + 1);
    }
    return b;
}

/* ... and of one LoRA backward over N rows (lp_lora_backward_ids). */
static size_t lora_bwd_bytes(int64_t N, int64_t C, int r, int drop)
{
    if (N <= 0) return 0;
    int64_t ch = N;
    if (drop) {
        ch = LORA_CHUNK_FLOATS / C;
        if (ch < 1) ch = 1;
        if (ch > N) ch = N;
    }
    size_t b = 2 * (size_t)ch * (size_t)r * sizeof(float);
    if (drop) b += (size_t)ch * (size_t)C * (sizeof(float) + 1);
    return b;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

static int is_head(const char *name) { return !strcmp(name, "lm_head") || !strcmp(name, "score") || !strcmp(name, "classifier"); }

lp_status lp_ft_plan_memory_ex(const lp_transformer_config *cfg, const lp_ft_setup *s, int64_t B, int64_t T,
                               int64_t n_selected, const char *optimizer, int threads, lp_mem_plan *out)
{
    static const char fn[] = "lp_ft_plan_memory";
    if (!cfg || !s || !out) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    memset(out, 0, sizeof *out);
    LP_TRY(lp_transformer_config_validate(cfg));
    if ((int)s->method < 0 || s->method >= LP_FT_METHOD_COUNT)
        return lp_error(LP_ERR_INVALID_ARG, "%s: unknown method %d", fn, (int)s->method);
    size_t opt_per_float;
    if (!optimizer || !strcmp(optimizer, "adamw") || !strcmp(optimizer, "adam")) opt_per_float = 8;
    else if (!strcmp(optimizer, "sgd")) opt_per_float = 4;
    else if (!strcmp(optimizer, "none") || !strcmp(optimizer, "sgd0")) opt_per_float = 0;
    else return lp_error(LP_ERR_INVALID_ARG, "%s: unknown optimizer \"%s\" (adamw, adam, sgd, sgd0, none)", fn, optimizer);
    if (threads <= 0) {
#ifdef _OPENMP
        threads = omp_get_max_threads();
#else
        threads = 1;
#endif
    }
    if (cfg->arch != LP_ARCH_LLAMA && T > cfg->max_positions)
        return lp_error(LP_ERR_INVALID_ARG, "%s: T = %lld exceeds the model's %lld learned positions", fn, (long long)T,
                        (long long)cfg->max_positions);
    lp_transformer_mem_plan tp;
    LP_TRY(lp_transformer_plan_memory(cfg, B, T, n_selected, &tp));

    lp_ft_layout L;
    LP_TRY(lp_ft_layout_build(&L, cfg));
    uint8_t *sel = calloc((size_t)L.n_linears, 1), *trained = calloc((size_t)L.n_params, 1);
    const char **names = malloc((size_t)L.n_linears * sizeof *names);
    lp_status st = sel && trained && names ? LP_OK : lp_error(LP_ERR_NOMEM, "%s", fn);
    lp_lora_config lc = s->lora;
    int cls = cfg->arch == LP_ARCH_BERT || cfg->task == LP_TASK_SEQ_CLS;
    int lora = s->method != LP_FT_FULL, qlora = s->method == LP_FT_QLORA;
    if (st == LP_OK && lora) {
        for (int i = 0; i < L.n_linears; i++) names[i] = L.linears[i].name;
        st = lp_ft_resolve_targets(&lc, cfg, names, L.n_linears, sel, &out->n_adapters);
    }
    if (st != LP_OK) {
        free(sel);
        free(trained);
        free(names);
        lp_ft_layout_free(&L);
        return lp_error_context(st, "%s", fn);
    }

    /* weights, and which parameters train */
    size_t W = 0;
    for (int i = 0; i < L.n_params; i++) {
        W += (size_t)L.params[i].numel * sizeof(float);
        if (s->method == LP_FT_FULL) trained[i] = !s->full_only || strstr(L.params[i].name, s->full_only) != NULL;
    }
    int train_head = lora && cls && s->train_head != 0;
    int64_t n_trainable = 0;
    for (int i = 0; i < L.n_linears; i++) {
        const lp_ft_layout_linear *l = &L.linears[i];
        if (train_head && is_head(l->name)) {
            if (l->weight >= 0) trained[l->weight] = 1;
            if (l->bias >= 0) trained[l->bias] = 1;
        }
        if (sel[i]) {
            int64_t ab = (int64_t)lc.r * (l->in + l->out);
            out->lora_weights += (size_t)ab * sizeof(float);
            n_trainable += ab;
        }
        if (qlora && l->own_weight && !is_head(l->name)) { /* every frozen block linear, adapted or not */
            size_t q = lp_nf4_bytes_for(l->out, l->in, s->double_quant);
            W -= (size_t)(l->in * l->out) * sizeof(float);
            W += q;
            out->nf4_weights += q;
            out->n_nf4++;
        }
    }
    W += out->lora_weights;
    for (int i = 0; i < L.n_params; i++)
        if (trained[i]) n_trainable += L.params[i].numel;
    if (s->method == LP_FT_FULL && s->full_only && n_trainable == 0)
        st = lp_error(LP_ERR_NOT_FOUND, "%s: full_only \"%s\" matches no parameter", fn, s->full_only);

    /* scratch temporaries inside one call, while the transformer's scratch is held */
    int64_t N = B * T, S = n_selected, D = cfg->head_dim;
    size_t tmp = (size_t)threads * (size_t)(T * (D + 1)) * sizeof(float);              /* attention forward */
    tmp = max_z(tmp, (size_t)threads * (size_t)(2 * T * (D + 1)) * sizeof(float));     /* attention backward */
    if (cfg->arch == LP_ARCH_LLAMA) tmp = max_z(tmp, (size_t)(D / 2) * sizeof(float)); /* RoPE inv_freq */
    int64_t hc = ((int64_t)1 << 22) / cfg->vocab_size; /* LM head row chunk (transformer_forward.c) */
    if (hc < 16) hc = 16;
    if (hc > S) hc = S;
    int drop = lc.dropout > 0.0f; /* training mode */
    for (int i = 0; i < L.n_linears; i++) {
        const lp_ft_layout_linear *l = &L.linears[i];
        int64_t fr = N, br = S; /* rows through the linear in forward, backward */
        if (!strcmp(l->name, "lm_head")) fr = br = hc;
        else if (is_head(l->name) || !strcmp(l->name, "bert.pooler.dense")) fr = br = B;
        if (sel[i]) {
            tmp = max_z(tmp, lora_fwd_bytes(fr, l->in, lc.r, drop));
            tmp = max_z(tmp, lora_bwd_bytes(br, l->in, lc.r, drop));
        }
        if (qlora && l->own_weight && !is_head(l->name)) tmp = max_z(tmp, lp_nf4_scratch_bytes(l->out, l->in));
    }
    out->scratch_transient = tmp;

    out->peak[LP_MEM_WEIGHTS] = W;
    out->peak[LP_MEM_GRADIENTS] = (size_t)n_trainable * sizeof(float);
    out->peak[LP_MEM_OPTIMIZER] = (size_t)n_trainable * opt_per_float;
    out->peak[LP_MEM_ACTIVATIONS] = tp.activations;
    out->peak[LP_MEM_SCRATCH] = tp.scratch + tmp;
    /* one lp_batch (lp_batch_init) and, with a selection, one lp_token_selection (lp_tokenselect_init) */
    size_t data = 8 * (size_t)N + 16 * (size_t)B;
    if (S < N) data += 4 * (size_t)(B + 1) + 5 * (size_t)N;
    out->peak[LP_MEM_DATA] = data;
    for (int k = 0; k < LP_MEM_COUNT; k++) out->total_peak += out->peak[k];
    out->trainable = n_trainable;
    out->params = 0;
    for (int i = 0; i < L.n_params; i++) out->params += L.params[i].numel;
    free(sel);
    free(trained);
    free(names);
    lp_ft_layout_free(&L);
    return st;
}

lp_status lp_ft_plan_memory(const lp_transformer_config *cfg, const lp_ft_setup *s, int64_t B, int64_t T,
                            int64_t n_selected, const char *optimizer, lp_mem_plan *out)
{
    return lp_ft_plan_memory_ex(cfg, s, B, T, n_selected, optimizer, 0, out);
}
