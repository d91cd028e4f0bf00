/* llama2.c checkpoints (run.c's format): read into an HF-layout Llama. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/fileio.h"

enum { T_EMB, T_RMS_ATT, T_WQ, T_WK, T_WV, T_WO, T_RMS_FFN, T_W1, T_W2, T_W3, T_RMS_FINAL, T_FREQ_RE, T_FREQ_IM,
       T_WCLS, T_COUNT };
static const char *tnames[T_COUNT] = {"token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo",
                                      "rms_ffn_weight", "w1", "w2", "w3", "rms_final_weight", "freq_cis_real",
                                      "freq_cis_imag", "wcls"};
static const char *hf_names[T_COUNT] = {"model.embed_tokens.weight", "input_layernorm.weight", "self_attn.q_proj.weight",
                                        "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                        "post_attention_layernorm.weight", "mlp.gate_proj.weight",
                                        "mlp.down_proj.weight", "mlp.up_proj.weight", "model.norm.weight", NULL, NULL,
                                        "lm_head.weight"};

/* Meta/llama2.c interleaved RoPE rows -> HF rotate-half rows, per head (HF's
 * convert_llama_weights_to_hf permute: view(heads, D/2, 2, in).transpose(1, 2)). */
static lp_status permute_rope_rows(float *w, int64_t heads, int64_t D, int64_t in)
{
    float *tmp = lp_alloc_array(LP_MEM_SCRATCH, (size_t)(D * in), sizeof(float));
    if (!tmp) return lp_error_context(LP_ERR_NOMEM, "llama2.c rope permutation");
    for (int64_t h = 0; h < heads; h++) {
        float *hw = w + h * D * in;
        memcpy(tmp, hw, (size_t)(D * in) * sizeof(float));
        for (int64_t i = 0; i < D / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(hw + (j * (D / 2) + i) * in, tmp + (2 * i + j) * in, (size_t)in * sizeof(float));
    }
    lp_free(tmp);
    return LP_OK;
}

lp_status lp_llama2c_load(lp_transformer **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_llama2c_load: NULL argument");
    *out = NULL;
    uint64_t fsize = 0;
    LP_TRY(lp_file_size(path, &fsize));
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error(LP_ERR_IO, "%s: cannot open", path);
    int32_t h[7];
    if (fread(h, sizeof(int32_t), 7, f) != 7) {
        fclose(f);
        return lp_error(LP_ERR_FORMAT, "%s: truncated header (%llu bytes, llama2.c header is 28)", path,
                        (unsigned long long)fsize);
    }
    if (!memcmp(h, "ak42", 4)) {
        fclose(f);
        return lp_error(LP_ERR_UNSUPPORTED, "%s: llama2.c version-1/2 export (magic ak42) not supported; use the legacy format",
                        path);
    }
    static const char *fields[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    lp_status st = LP_OK;
    for (int k = 0; k < 7 && st == LP_OK; k++) {
        int64_t v = k == 5 ? (h[k] < 0 ? -(int64_t)h[k] : h[k]) : h[k];
        if (v <= 0 || v > (1 << 24)) st = lp_error(LP_ERR_FORMAT, "%s: header field %s = %d out of range", path, fields[k], h[k]);
    }
    if (st == LP_OK && (h[0] % h[3]))
        st = lp_error(LP_ERR_FORMAT, "%s: dim %d not divisible by n_heads %d", path, h[0], h[3]);
    if (st == LP_OK && (h[3] % h[4]))
        st = lp_error(LP_ERR_FORMAT, "%s: n_heads %d not a multiple of n_kv_heads %d", path, h[3], h[4]);
    if (st == LP_OK && ((h[0] / h[3]) % 2))
        st = lp_error(LP_ERR_FORMAT, "%s: head size %d is odd (RoPE needs pairs)", path, h[0] / h[3]);
    if (st != LP_OK) {
        fclose(f);
        return st;
    }
    int64_t dim = h[0], hidden = h[1], L = h[2], NH = h[3], NKV = h[4], seq = h[6];
    int shared = h[5] > 0;
    int64_t V = shared ? h[5] : -(int64_t)h[5];
    int64_t D = dim / NH, kv_dim = D * NKV;
    /* each field is <= 2^24, but their products can pass 2^63: bound the total in floating point
     * first (no file is that large), so the int64 sizes below cannot overflow (found by fuzzing) */
    double need = 4.0 * ((double)V * (double)dim * (shared ? 1 : 2) + (double)dim + (double)seq * (double)D +
                         (double)L * (2.0 * dim + 2.0 * (double)dim * dim + 2.0 * (double)kv_dim * dim +
                                      3.0 * (double)hidden * dim));
    if (need > 9e18) {
        fclose(f);
        return lp_error(LP_ERR_FORMAT, "%s: header sizes need %.3g bytes of weights, the file has %llu", path, need,
                        (unsigned long long)fsize);
    }
    int64_t sz[T_COUNT] = {V * dim, L * dim, L * dim * dim, L * kv_dim * dim, L * kv_dim * dim, L * dim * dim,
                           L * dim, L * hidden * dim, L * dim * hidden, L * hidden * dim, dim, seq * D / 2, seq * D / 2,
                           shared ? 0 : V * dim};
    uint64_t off = 28;
    for (int t = 0; t < T_COUNT; t++) {
        uint64_t end = off + (uint64_t)sz[t] * 4;
        if (end > fsize) {
            fclose(f);
            return lp_error(LP_ERR_FORMAT, "%s: truncated in tensor %s (needs bytes %llu..%llu, file has %llu)", path,
                            tnames[t], (unsigned long long)off, (unsigned long long)end, (unsigned long long)fsize);
        }
        off = end;
    }
    lp_transformer_config cfg;
    lp_transformer_config_default(&cfg, LP_ARCH_LLAMA);
    cfg.vocab_size = V;
    cfg.hidden_size = dim;
    cfg.intermediate_size = hidden;
    cfg.n_layers = L;
    cfg.n_heads = NH;
    cfg.n_kv_heads = NKV;
    cfg.head_dim = D;
    cfg.max_positions = seq;
    cfg.norm_eps = 1e-5;
    cfg.rope_theta = 10000.0;
    cfg.tie_word_embeddings = shared;
    cfg.bos_token_id = 1;
    cfg.eos_token_id = 2;
    lp_transformer *m = NULL;
    st = lp_transformer_new(&m, &cfg);
    for (int t = 0; t < T_COUNT && st == LP_OK; t++) {
        if (t == T_FREQ_RE || t == T_FREQ_IM) {
            if (fseek(f, (long)(sz[t] * 4), SEEK_CUR)) st = lp_error(LP_ERR_IO, "%s: seek failed", path);
            continue;
        }
        if (sz[t] == 0) continue;
        int global = t == T_EMB || t == T_RMS_FINAL || t == T_WCLS;
        for (int64_t l = 0; l < (global ? 1 : L) && st == LP_OK; l++) {
            char name[128];
            if (global) snprintf(name, sizeof name, "%s", hf_names[t]);
            else snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, hf_names[t]);
            lp_param *p = lp_transformer_find_param(m, name);
            if (!p) { st = lp_error(LP_ERR_INTERNAL, "llama2.c: no parameter %s", name); break; }
            if (fread(p->data, 4, (size_t)p->numel, f) != (size_t)p->numel) {
                st = lp_error(LP_ERR_FORMAT, "%s: truncated in tensor %s", path, tnames[t]);
                break;
            }
            if (t == T_WQ) st = permute_rope_rows(p->data, NH, D, dim);
            if (t == T_WK) st = permute_rope_rows(p->data, NKV, D, dim);
        }
    }
    fclose(f);
    if (st != LP_OK) {
        lp_transformer_free(m);
        return st;
    }
    *out = m;
    return LP_OK;
}
