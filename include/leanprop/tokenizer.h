/* leanprop/tokenizer.h: BPE tokenizers (GPT-2, Hugging Face tokenizer.json, llama2.c) and
 * WordPiece (BERT: vocab.txt or tokenizer.json).
 *
 * One opaque handle, four ways to open it:
 *   - GPT-2's original encoder.json + vocab.bpe (byte-level BPE, GPT-2 regex pre-tokenizer);
 *   - a Hugging Face tokenizer.json whose model is BPE, either byte-level (GPT-2, Llama-3,
 *     Qwen: ByteLevel pre-tokenizer/decoder, optional Split regexes) or SentencePiece-style
 *     (Llama-2, TinyLlama, Mistral: "▁" Prepend/Replace normalizer or Metaspace, byte_fallback
 *     <0xNN> tokens), with its added/special tokens;
 *   - llama2.c's tokenizer.bin (scores + pieces; encoded as llama2.c's run.c does);
 *   - BERT's WordPiece: vocab.txt (one token a line, id = line number) or a tokenizer.json whose
 *     model is WordPiece, with the BertNormalizer (clean text, CJK, accents, lowercase),
 *     BertPreTokenizer, greedy longest-match-first "##" subwords and the WordPiece decoder.
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
 *   lp_tokenizer_open_wordpiece(&tok, "bert-base-uncased/vocab.txt", NULL);  // NULL: BERT defaults
 *   lp_tokenizer_encode(tok, "Hello, World!", 13, LP_TOKENIZER_ADD_SPECIAL, &ids, &n);
 *                                     // [CLS] hello , world ! [SEP] = {101, 7592, 1010, 2088, 999, 102}
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
    LP_TOKENIZER_WORDPIECE,         /* vocab.txt or tokenizer.json, WordPiece (BERT) */
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
    LP_TOKENIZER_ADD_SPECIAL = 1u << 4,     /* encode: add what the tokenizer's post-processor adds to
                                               one sequence, as Hugging Face's add_special_tokens:
                                               [CLS] ... [SEP] for BERT, BOS for Llama and llama2.c,
                                               nothing for GPT-2 (never an error) */
};

/* WordPiece options (lp_tokenizer_open_wordpiece); lp_tokenizer_wordpiece_defaults gives
 * BertTokenizer's defaults (bert-base-uncased). */
typedef struct {
    int lowercase;                 /* 1: lowercase the text (uncased models); 0 for cased models */
    int strip_accents;             /* 1: NFD, then drop nonspacing marks ("café" -> "cafe"); 0: keep;
                                      -1: same as lowercase (BERT's default) */
    int clean_text;                /* 1: drop control characters and U+FFFD, any whitespace -> ' ' */
    int handle_chinese_chars;      /* 1: each CJK ideograph is a word of its own */
    int max_input_chars_per_word;  /* longer words become the unknown token (100) */
    const char *unk_token;         /* "[UNK]": must be in the vocabulary */
    const char *cls_token;         /* "[CLS]": BOS, first with LP_TOKENIZER_ADD_SPECIAL */
    const char *sep_token;         /* "[SEP]": EOS, last with LP_TOKENIZER_ADD_SPECIAL */
    const char *pad_token;         /* "[PAD]": special (skipped by LP_TOKENIZER_SKIP_SPECIAL) */
    const char *mask_token;        /* "[MASK]": special */
    const char *prefix;            /* "##": continuing-subword prefix */
} lp_wordpiece_options;

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

void lp_tokenizer_wordpiece_defaults(lp_wordpiece_options *opts);

/* BERT's vocab.txt: one token a line (UTF-8; "\n", "\r\n" or "\r" ends a line), id = line
 * number - 1; an empty line is an id with no token, empty lines at the end are ignored. opts NULL:
 * the defaults, overridden by do_lower_case, strip_accents, tokenize_chinese_chars and the
 * *_token names of a tokenizer_config.json beside vocab.txt, when there is one. Errors name the
 * file and line: empty file, a token on two lines, invalid UTF-8, no unknown token. The special
 * tokens present ([UNK], [CLS], [SEP], [PAD], [MASK]) are matched in text like added tokens. */
lp_status lp_tokenizer_open_wordpiece(lp_tokenizer **out, const char *vocab_txt, const lp_wordpiece_options *opts);

/* Open by name: a directory holding tokenizer.json, encoder.json + vocab.bpe, tokenizer.bin or
 * vocab.txt; GPT-2's encoder.json (vocab.bpe beside it); another *.json file (tokenizer.json); a
 * *.bin file (llama2.c); a *.txt file (WordPiece vocab.txt, options as for opts NULL). */
lp_status lp_tokenizer_open(lp_tokenizer **out, const char *path);

void lp_tokenizer_close(lp_tokenizer *tok);

/* text (len bytes, any bytes; NUL not required) -> *ids (lp_alloc'd, *n_ids entries; when the
 * result is empty *ids is NULL). Never fails on content: bytes that are not valid UTF-8 are
 * encoded byte-wise where the vocabulary allows (byte-level, byte fallback). */
lp_status lp_tokenizer_encode(lp_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids);

/* ids -> *text (lp_alloc'd, NUL-terminated, *len bytes without the NUL). Ids out of range are
 * LP_ERR_INVALID_ARG. SentencePiece-style and llama2.c tokenizers drop the space their encoder
 * put in front of the first word (and, for llama2.c, of the word after BOS, as run.c does).
 * WordPiece joins "##" pieces to the token before and puts a space before every other token
 * but the first, then removes the space before . , ! ? 's n't 'm 've 're (Hugging Face's
 * WordPiece decoder with cleanup): {[CLS] hello , world ! [SEP]} -> "[CLS] hello, world! [SEP]". */
lp_status lp_tokenizer_decode(const lp_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len);

/* Streaming decode of one token given the one before it (prev < 0: start of text): points
 * *bytes at internal storage valid while the handle lives. A byte-level token may hold part of
 * a UTF-8 character. WordPiece: the pieces of ids[0..n) put together are decode(ids, flags 0). */
lp_status lp_tokenizer_decode_piece(const lp_tokenizer *tok, int32_t prev, int32_t id,
                                    const char **bytes, size_t *len);

/* The pieces encode would run BPE on (pre-tokenizer output, special tokens split off), as byte
 * ranges of text; *spans is lp_alloc'd (NULL when empty). */
lp_status lp_tokenizer_pretokenize(const lp_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                   lp_tokenizer_span **spans, size_t *n_spans);

lp_tokenizer_kind lp_tokenizer_get_kind(const lp_tokenizer *tok);
const char *lp_tokenizer_kind_name(lp_tokenizer_kind kind);   /* "gpt2", "hf-bytelevel", ..., "wordpiece" */

/* Number of ids (max id + 1, added tokens included). */
int32_t lp_tokenizer_vocab_size(const lp_tokenizer *tok);

/* The token's string as the file spells it ("Ġthe", "▁the", " the", "##the"), NUL-terminated, length in
 * *len (may be NULL); NULL for an id out of range or one that names no token. */
const char *lp_tokenizer_token(const lp_tokenizer *tok, int32_t id, size_t *len);

/* Id of a token string as the file spells it, or -1. */
int32_t lp_tokenizer_token_id(const lp_tokenizer *tok, const char *token, size_t len);

/* Nonzero when id is a special token (BOS, EOS, <unk>, added special tokens). */
int lp_tokenizer_is_special(const lp_tokenizer *tok, int32_t id);

/* BOS / EOS ids, -1 when the tokenizer has none. GPT-2: both <|endoftext|>. tokenizer.json: from
 * the post-processor template, else by well-known names (<s>, <|begin_of_text|>, ...).
 * WordPiece: [CLS] and [SEP]. */
int32_t lp_tokenizer_bos(const lp_tokenizer *tok);
int32_t lp_tokenizer_eos(const lp_tokenizer *tok);

/* Override BOS / EOS (-1 = none). LP_ERR_INVALID_ARG for ids out of range. */
lp_status lp_tokenizer_set_bos_eos(lp_tokenizer *tok, int32_t bos, int32_t eos);

#ifdef __cplusplus
}
#endif
#endif
