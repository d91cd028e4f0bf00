/* leanprop/tokenizer.h: BPE tokenizers (GPT-2, Hugging Face tokenizer.json, llama2.c).
 *
 * One opaque handle, three ways to open it:
 *   - GPT-2's original encoder.json + vocab.bpe (byte-level BPE, GPT-2 regex pre-tokenizer);
 *   - a Hugging Face tokenizer.json whose model is BPE, either byte-level (GPT-2, Llama-3,
 *     Qwen: ByteLevel pre-tokenizer/decoder, optional Split regexes) or SentencePiece-style
 *     (Llama-2, TinyLlama, Mistral: "▁" Prepend/Replace normalizer or Metaspace, byte_fallback
 *     <0xNN> tokens), with its added/special tokens;
 *   - llama2.c's tokenizer.bin (scores + pieces; encoded as llama2.c's run.c does).
 * docs/TOKENIZERS.md describes each format and what is not supported.
 *
 *   lp_tokenizer *tok;
 *   if (lp_tokenizer_open_gpt2(&tok, "encoder.json", "vocab.bpe") != LP_OK) ... lp_error_message()
 *   int32_t *ids; size_t n;
 *   lp_tokenizer_encode(tok, "Hello world", 11, 0, &ids, &n);        // ids = {15496, 995}
 *   char *text; size_t len;
 *   lp_tokenizer_decode(tok, ids, n, 0, &text, &len);                // "Hello world", NUL-terminated
 *   lp_free(ids); lp_free(text);
 *   lp_tokenizer_close(tok);
 *
 * Encoding keeps a per-word cache inside the handle, so one handle must not be used by two
 * threads at once for encoding (open one per thread); every other call is read-only.
 * Buffers returned by encode/decode come from lp_alloc (category LP_MEM_DATA): free with lp_free.
 */
#ifndef LEANPROP_TOKENIZER_H
#define LEANPROP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "leanprop/alloc.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lp_tokenizer lp_tokenizer;

typedef enum {
    LP_TOKENIZER_GPT2 = 0,          /* encoder.json + vocab.bpe */
    LP_TOKENIZER_HF_BYTELEVEL,      /* tokenizer.json, byte-level BPE */
    LP_TOKENIZER_HF_SENTENCEPIECE,  /* tokenizer.json, "▁" + byte-fallback BPE */
    LP_TOKENIZER_LLAMA2C,           /* llama2.c tokenizer.bin */
    LP_TOKENIZER_KIND_COUNT
} lp_tokenizer_kind;

/* Flags for encode and decode (or-ed together). */
enum {
    LP_TOKENIZER_ADD_BOS = 1u << 0,         /* encode: put the BOS id first (error if there is none) */
    LP_TOKENIZER_ADD_EOS = 1u << 1,         /* encode: put the EOS id last (error if there is none) */
    LP_TOKENIZER_SPECIAL_AS_TEXT = 1u << 2, /* encode: special tokens written in the text ("<|endoftext|>")
                                               are ordinary text; by default they become their id, as
                                               in Hugging Face */
    LP_TOKENIZER_SKIP_SPECIAL = 1u << 3,    /* decode: leave special tokens (BOS, EOS, ...) out */
};

/* A piece of the input that BPE runs on: bytes [begin, end) of the text. */
typedef struct {
    size_t begin, end;
    int32_t special_id;   /* id of the special/added token this piece is, else -1 */
} lp_tokenizer_span;

/* GPT-2's encoder.json (token -> id) and vocab.bpe ("#version" line, then one merge "a b" a line). */
lp_status lp_tokenizer_open_gpt2(lp_tokenizer **out, const char *encoder_json, const char *vocab_bpe);

/* A Hugging Face tokenizer.json with a BPE model (byte-level or SentencePiece-style). */
lp_status lp_tokenizer_open_hf(lp_tokenizer **out, const char *tokenizer_json);

/* llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length,
 * bytes; as many tokens as the file holds. BOS = 1, EOS = 2. */
lp_status lp_tokenizer_open_llama2c(lp_tokenizer **out, const char *tokenizer_bin);

/* Open by name: a directory holding tokenizer.json, encoder.json + vocab.bpe or tokenizer.bin;
 * GPT-2's encoder.json (vocab.bpe beside it); another *.json file (tokenizer.json); a *.bin file
 * (llama2.c). */
lp_status lp_tokenizer_open(lp_tokenizer **out, const char *path);

void lp_tokenizer_close(lp_tokenizer *tok);

/* text (len bytes, any bytes; NUL not required) -> *ids (lp_alloc'd, *n_ids entries; when the
 * result is empty *ids is NULL). Never fails on content: bytes that are not valid UTF-8 are
 * encoded byte-wise where the vocabulary allows (byte-level, byte fallback). */
lp_status lp_tokenizer_encode(lp_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids);

/* ids -> *text (lp_alloc'd, NUL-terminated, *len bytes without the NUL). Ids out of range are
 * LP_ERR_INVALID_ARG. SentencePiece-style and llama2.c tokenizers drop the space their encoder
 * put in front of the first word (and, for llama2.c, of the word after BOS, as run.c does). */
lp_status lp_tokenizer_decode(const lp_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len);

/* Streaming decode of one token given the one before it (prev < 0: start of text): points
 * *bytes at internal storage valid while the handle lives. A byte-level token may hold part of
 * a UTF-8 character. */
lp_status lp_tokenizer_decode_piece(const lp_tokenizer *tok, int32_t prev, int32_t id,
                                    const char **bytes, size_t *len);

/* The pieces encode would run BPE on (pre-tokenizer output, special tokens split off), as byte
 * ranges of text; *spans is lp_alloc'd (NULL when empty). */
lp_status lp_tokenizer_pretokenize(const lp_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                   lp_tokenizer_span **spans, size_t *n_spans);

lp_tokenizer_kind lp_tokenizer_get_kind(const lp_tokenizer *tok);
const char *lp_tokenizer_kind_name(lp_tokenizer_kind kind);   /* "gpt2", "hf-bytelevel", ... */

/* Number of ids (max id + 1, added tokens included). */
int32_t lp_tokenizer_vocab_size(const lp_tokenizer *tok);

/* The token's string as the file spells it ("Ġthe", "▁the", " the"), NUL-terminated, length in
 * *len (may be NULL); NULL for an id out of range or one that names no token. */
const char *lp_tokenizer_token(const lp_tokenizer *tok, int32_t id, size_t *len);

/* Id of a token string as the file spells it, or -1. */
int32_t lp_tokenizer_token_id(const lp_tokenizer *tok, const char *token, size_t len);

/* Nonzero when id is a special token (BOS, EOS, <unk>, added special tokens). */
int lp_tokenizer_is_special(const lp_tokenizer *tok, int32_t id);

/* BOS / EOS ids, -1 when the tokenizer has none. GPT-2: both <|endoftext|>. tokenizer.json: from
 * the post-processor template, else by well-known names (<s>, <|begin_of_text|>, ...). */
int32_t lp_tokenizer_bos(const lp_tokenizer *tok);
int32_t lp_tokenizer_eos(const lp_tokenizer *tok);

/* Override BOS / EOS (-1 = none). LP_ERR_INVALID_ARG for ids out of range. */
lp_status lp_tokenizer_set_bos_eos(lp_tokenizer *tok, int32_t bos, int32_t eos);

#ifdef __cplusplus
}
#endif
#endif
