/* leanprop/checkpoint_llm.h: llm.c and llama2.c checkpoints.
 *
 * llm.c GPT-2 (gpt2_124M.bin): 256 int32 header (magic 20240326, version 3 =
 * fp32 or 5 = bf16, [2] max_seq_len, [3] vocab, [4] layers, [5] heads, [6]
 * channels, [7] padded vocab), then tensors in llm.c's order (wte (Vp,C), wpe,
 * ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw,
 * fcprojb, lnfw, lnfb); weights stored (out, in).
 *
 * llama2.c (stories260K.bin): 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size (negative = untied classifier), seq_len), then fp32
 * token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis_real/imag (skipped), wcls if untied. llama2.c's RoPE rotates
 * adjacent pairs; on load the rows of wq/wk are permuted per head exactly as
 * Hugging Face's convert_llama_weights_to_hf does, so the loaded model is an
 * ordinary HF-layout Llama (RMS eps 1e-5, rope theta 10000, bos 1, eos 2).
 *
 *   lp_transformer *m;
 *   if (lp_llama2c_load(&m, "stories260K.bin") != LP_OK) ... lp_error_message()
 *   lp_transformer_save_hf(m, "stories260K-hf", NULL);
 *
 * Truncated files and header values out of range are LP_ERR_FORMAT naming the
 * file and the tensor (or header field).
 */
#ifndef LEANPROP_CHECKPOINT_LLM_H
#define LEANPROP_CHECKPOINT_LLM_H

#include "leanprop/status.h"
#include "leanprop/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_LLMC_MAGIC 20240326

lp_status lp_llmc_load(lp_transformer **out, const char *path);
/* Write a GPT-2 model in llm.c's format (version 3, fp32, vocab padded to a
 * multiple of 128 with zero rows). */
lp_status lp_llmc_save(const lp_transformer *m, const char *path);

lp_status lp_llama2c_load(lp_transformer **out, const char *path);

#ifdef __cplusplus
}
#endif
#endif
