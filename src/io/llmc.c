/* llm.c GPT-2 checkpoints (gpt2_124M.bin): read and write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/checkpoint_llm.h"
#include "leanprop/fileio.h"
#include "leanprop/safetensors.h"

#define HDR_INTS 256

enum { T_WTE, T_WPE, T_LN1W, T_LN1B, T_QKVW, T_QKVB, T_ATTW, T_ATTB, T_LN2W, T_LN2B,
       T_FCW, T_FCB, T_FCPW, T_FCPB, T_LNFW, T_LNFB, T_COUNT };
static const char *tnames[T_COUNT] = {"wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                                      "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
/* HF parameter suffix per llm.c tensor (per layer "transformer.h.%d." + suffix). */
static const char *hf_suffix[T_COUNT] = {"transformer.wte.weight", "transformer.wpe.weight", "ln_1.weight", "ln_1.bias",
                                         "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                                         "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
                                         "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
                                         "transformer.ln_f.weight", "transformer.ln_f.bias"};

static void sizes(int64_t out[T_COUNT], int64_t Vp, int64_t C, int64_t maxT, int64_t L)
{
    out[T_WTE] = Vp * C;
    out[T_WPE] = maxT * C;
    out[T_LN1W] = out[T_LN1B] = L * C;
    out[T_QKVW] = L * 3 * C * C;
    out[T_QKVB] = L * 3 * C;
    out[T_ATTW] = L * C * C;
    out[T_ATTB] = L * C;
    out[T_LN2W] = out[T_LN2B] = L * C;
    out[T_FCW] = L * 4 * C * C;
    out[T_FCB] = L * 4 * C;
    out[T_FCPW] = L * C * 4 * C;
    out[T_FCPB] = L * C;
    out[T_LNFW] = out[T_LNFB] = C;
}

static lp_param *param_for(lp_transformer *m, int t, int64_t layer)
{
    char name[128];
    if (t == T_WTE || t == T_WPE || t == T_LNFW || t == T_LNFB) snprintf(name, sizeof name, "%s", hf_suffix[t]);
    else snprintf(name, sizeof name, "transformer.h.%lld.%s", (long long)layer, hf_suffix[t]);
    return lp_transformer_find_param(m, name);
}

/* n values of element size esz (4 = fp32, 2 = bf16) from f into dst as float. */
static lp_status read_values(FILE *f, float *dst, int64_t n, size_t esz, const char *path, const char *tensor)
{
    if (esz == 4) {
        if (fread(dst, 4, (size_t)n, f) != (size_t)n)
            return lp_error(LP_ERR_FORMAT, "%s: truncated in tensor %s", path, tensor);
        return LP_OK;
    }
    uint16_t buf[4096];
    for (int64_t i = 0; i < n;) {
        size_t k = (size_t)(n - i < 4096 ? n - i : 4096);
        if (fread(buf, 2, k, f) != k) return lp_error(LP_ERR_FORMAT, "%s: truncated in tensor %s", path, tensor);
        for (size_t j = 0; j < k; j++) dst[i + (int64_t)j] = lp_bf16_to_f32(buf[j]);
        i += (int64_t)k;
    }
    return LP_OK;
}

lp_status lp_llmc_load(lp_transformer **out, const char *path)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_llmc_load: NULL argument");
    *out = NULL;
    uint64_t fsize = 0;
    LP_TRY(lp_file_size(path, &fsize));
    FILE *f = fopen(path, "rb");
    if (!f) return lp_error(LP_ERR_IO, "%s: cannot open", path);
    int32_t h[HDR_INTS];
    if (fread(h, sizeof(int32_t), HDR_INTS, f) != HDR_INTS) {
        fclose(f);
        return lp_error(LP_ERR_FORMAT, "%s: truncated header (%llu bytes, llm.c header is 1024)", path,
                        (unsigned long long)fsize);
    }
    lp_status st = LP_OK;
    if (h[0] != LP_LLMC_MAGIC) st = lp_error(LP_ERR_FORMAT, "%s: bad magic %d (llm.c: %d)", path, h[0], LP_LLMC_MAGIC);
    else if (h[1] != 3 && h[1] != 5)
        st = lp_error(LP_ERR_UNSUPPORTED, "%s: llm.c version %d (3 = fp32 and 5 = bf16 supported)", path, h[1]);
    static const char *fields[] = {"magic", "version", "max_seq_len", "vocab_size", "num_layers", "num_heads",
                                   "channels", "padded_vocab_size"};
    for (int k = 2; k < 8 && st == LP_OK; k++)
        if (h[k] <= 0 || h[k] > (1 << 24))
            st = lp_error(LP_ERR_FORMAT, "%s: header field %s = %d out of range", path, fields[k], h[k]);
    if (st == LP_OK && h[7] < h[3])
        st = lp_error(LP_ERR_FORMAT, "%s: padded_vocab_size %d < vocab_size %d", path, h[7], h[3]);
    if (st == LP_OK && h[6] % h[5])
        st = lp_error(LP_ERR_FORMAT, "%s: channels %d not divisible by num_heads %d", path, h[6], h[5]);
    if (st != LP_OK) {
        fclose(f);
        return st;
    }
    int64_t maxT = h[2], V = h[3], L = h[4], NH = h[5], C = h[6], Vp = h[7];
    size_t esz = h[1] == 3 ? 4 : 2;
    /* each field is <= 2^24, but their products can pass 2^63: bound the total in floating point
     * first (no file is that large), so the int64 sizes below cannot overflow (found by fuzzing) */
    double need = (double)esz * ((double)Vp * (double)C + (double)maxT * (double)C + 2.0 * (double)C +
                                 (double)L * (12.0 * (double)C * (double)C + 13.0 * (double)C));
    if (need > 9e18) {
        fclose(f);
        return lp_error(LP_ERR_FORMAT, "%s: header sizes need %.3g bytes of weights, the file has %llu", path, need,
                        (unsigned long long)fsize);
    }
    int64_t sz[T_COUNT];
    sizes(sz, Vp, C, maxT, L);
    /* size check first, naming the tensor where the file ends */
    uint64_t off = HDR_INTS * 4;
    for (int t = 0; t < T_COUNT; t++) {
        uint64_t end = off + (uint64_t)sz[t] * esz;
        if (end > fsize) {
            fclose(f);
            return lp_error(LP_ERR_FORMAT, "%s: truncated in tensor %s (needs bytes %llu..%llu, file has %llu)", path,
                            tnames[t], (unsigned long long)off, (unsigned long long)end, (unsigned long long)fsize);
        }
        off = end;
    }
    lp_transformer_config cfg;
    lp_transformer_config_default(&cfg, LP_ARCH_GPT2);
    cfg.vocab_size = V;
    cfg.hidden_size = C;
    cfg.n_layers = L;
    cfg.n_heads = cfg.n_kv_heads = NH;
    cfg.head_dim = C / NH;
    cfg.intermediate_size = 4 * C;
    cfg.max_positions = maxT;
    lp_transformer *m = NULL;
    st = lp_transformer_new(&m, &cfg);
    for (int t = 0; t < T_COUNT && st == LP_OK; t++) {
        int per_layer = !(t == T_WTE || t == T_WPE || t == T_LNFW || t == T_LNFB);
        int64_t nl = per_layer ? L : 1;
        for (int64_t l = 0; l < nl && st == LP_OK; l++) {
            lp_param *p = param_for(m, t, l);
            if (!p) { st = lp_error(LP_ERR_INTERNAL, "llm.c: no parameter for %s", tnames[t]); break; }
            st = read_values(f, p->data, p->numel, esz, path, tnames[t]);
        }
        if (st == LP_OK && t == T_WTE && Vp > V && fseek(f, (long)((Vp - V) * C * (int64_t)esz), SEEK_CUR))
            st = lp_error(LP_ERR_IO, "%s: seek failed", path);
    }
    fclose(f);
    if (st != LP_OK) {
        lp_transformer_free(m);
        return st;
    }
    *out = m;
    return LP_OK;
}

lp_status lp_llmc_save(const lp_transformer *m, const char *path)
{
    if (!m || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_llmc_save: NULL argument");
    const lp_transformer_config *c = lp_transformer_get_config(m);
    if (c->arch != LP_ARCH_GPT2 || !c->tie_word_embeddings || c->intermediate_size != 4 * c->hidden_size)
        return lp_error(LP_ERR_UNSUPPORTED, "%s: llm.c stores tied GPT-2 models with a 4C MLP only", path);
    int64_t V = c->vocab_size, C = c->hidden_size, L = c->n_layers;
    int64_t Vp = (V + 127) / 128 * 128;
    int32_t h[HDR_INTS] = {0};
    h[0] = LP_LLMC_MAGIC;
    h[1] = 3;
    h[2] = (int32_t)c->max_positions;
    h[3] = (int32_t)V;
    h[4] = (int32_t)L;
    h[5] = (int32_t)c->n_heads;
    h[6] = (int32_t)C;
    h[7] = (int32_t)Vp;
    lp_atomic_writer *w;
    LP_TRY(lp_atomic_writer_open(&w, path));
    lp_status st = lp_atomic_writer_write(w, h, sizeof h);
    lp_transformer *mm = (lp_transformer *)m; /* lookups only */
    for (int t = 0; t < T_COUNT && st == LP_OK; t++) {
        int per_layer = !(t == T_WTE || t == T_WPE || t == T_LNFW || t == T_LNFB);
        for (int64_t l = 0; l < (per_layer ? L : 1) && st == LP_OK; l++) {
            const lp_param *p = param_for(mm, t, l);
            if (!p || !p->data) { st = lp_error(LP_ERR_INTERNAL, "llm.c save: no data for %s", tnames[t]); break; }
            st = lp_atomic_writer_write(w, p->data, (size_t)p->numel * sizeof(float));
        }
        if (st == LP_OK && t == T_WTE && Vp > V) {
            float zero[128] = {0};
            for (int64_t r = 0; r < (Vp - V) * C && st == LP_OK; r += 128) {
                int64_t k = (Vp - V) * C - r < 128 ? (Vp - V) * C - r : 128;
                st = lp_atomic_writer_write(w, zero, (size_t)k * sizeof(float));
            }
        }
    }
    if (st != LP_OK) {
        lp_atomic_writer_abort(w);
        return st;
    }
    return lp_atomic_writer_commit(w);
}
