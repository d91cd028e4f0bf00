/* Private to src/io/tokenizer*.c: the tokenizer handle, growable buffers, hash maps, the BPE
 * engine. Not installed; the public API is include/leanprop/tokenizer.h. */
#ifndef LEANPROP_TOKENIZER_INTERNAL_H
#define LEANPROP_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "leanprop/tokenizer.h"

#define TK_MAX_ID (1 << 24)      /* ids past this are refused (a hostile file could ask for GBs) */
#define TK_MAX_SPLITS 8          /* chained Split regexes */
#define TK_MAX_NORM 8            /* normalizer ops */
#define TK_MAX_PAT 32            /* bytes of a Prepend/Replace string */
#define TK_CACHE_WORD_MAX 256    /* longest word kept in the per-word cache */
/* The per-word cache is cleared (then refills) before it would pass any of these; with the
 * hash table (2^17 slots of 24 bytes) that bounds it to about 11 MiB (docs/TOKENIZERS.md). */
#define TK_CACHE_MAX_WORDS (1u << 16)
#define TK_CACHE_MAX_KEY_BYTES (4u << 20)
#define TK_CACHE_MAX_IDS (1u << 20)     /* 4 MiB of ids */
/* Merge scratch (symbols + heap, 12 + 72 bytes a symbol) a handle keeps between calls; a larger
 * one (a llama2.c text of more symbols: run.c merges across the whole text) is freed after use. */
#define TK_SCRATCH_KEEP (1u << 16)

/* ---- growable buffers (lp_alloc, LP_MEM_DATA) ---- */
typedef struct { char *p; size_t n, cap; } tk_bytes;
typedef struct { int32_t *p; size_t n, cap; } tk_ids;

lp_status tk_bytes_reserve(tk_bytes *b, size_t extra);
lp_status tk_bytes_append(tk_bytes *b, const void *data, size_t n);
void tk_bytes_free(tk_bytes *b);
lp_status tk_ids_reserve(tk_ids *v, size_t extra);
lp_status tk_ids_push(tk_ids *v, int32_t id);
void tk_ids_free(tk_ids *v);

/* Whole file into *out (lp_alloc'd, NUL-terminated, *len bytes). Errors name the path. */
lp_status tk_read_file(const char *path, char **out, size_t *len);

/* ---- byte string -> int64 map, keys copied into its own arena ---- */
typedef struct { uint64_t hash; uint32_t off, len; int64_t val; } tk_map_slot;
typedef struct { tk_map_slot *slots; size_t cap, n; tk_bytes keys; } tk_map;

uint64_t tk_hash(const void *p, size_t n);
lp_status tk_map_init(tk_map *m, size_t expected);
void tk_map_free(tk_map *m);
void tk_map_clear(tk_map *m);
const int64_t *tk_map_get(const tk_map *m, const void *key, size_t len);
/* Inserts unless the key is present (then leaves the old value); *inserted may be NULL. */
lp_status tk_map_put(tk_map *m, const void *key, size_t len, int64_t val, int *inserted);

/* ---- (left id, right id) -> (rank, merged id) ---- */
typedef struct { uint64_t key; int32_t rank, merged; } tk_pair_slot;
typedef struct { tk_pair_slot *slots; size_t cap, n; } tk_pairmap;

lp_status tk_pairmap_init(tk_pairmap *m, size_t expected);
void tk_pairmap_free(tk_pairmap *m);
const tk_pair_slot *tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b);
lp_status tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged, int *inserted);

/* ---- the handle ---- */
enum { TK_FLAG_SPECIAL = 1, TK_FLAG_ADDED = 2 };
enum { TK_NORM_PREPEND = 1, TK_NORM_REPLACE = 2 };
enum { TK_PREPEND_NEVER = 0, TK_PREPEND_FIRST = 1, TK_PREPEND_ALWAYS = 2 };

typedef struct { int32_t id; uint32_t off, len; uint8_t lstrip, rstrip, special; } tk_added;
typedef struct { int op; char a[TK_MAX_PAT]; size_t alen; char b[TK_MAX_PAT]; size_t blen; } tk_norm_op;
typedef struct { int32_t id, prev, next; } tk_sym;
typedef struct { double key; int32_t pos, left, right, merged; } tk_cand;

struct lp_tokenizer {
    lp_tokenizer_kind kind;
    char path[512];                   /* for messages */
    int32_t n_vocab;
    tk_bytes pool;                    /* token strings, each followed by a NUL */
    uint32_t *tok_off, *tok_len;      /* tok_off == UINT32_MAX: no token has this id */
    tk_bytes dpool;                   /* decoded bytes of each token */
    uint32_t *dec_off, *dec_len;
    uint8_t *tok_flags;
    float *scores;                    /* llama2.c */
    size_t max_tok_len;
    tk_map vocab;                     /* token string -> id */
    tk_map whole;                     /* byte-level + ignore_merges: decoded bytes -> id */
    tk_pairmap merges;
    int32_t byte_id[256];             /* first symbol of a byte: byte-level char token or <0xNN>; -1 */

    /* pre-tokenizer: chained Isolated regex splits (byte-level) */
    int n_split;
    pcre2_code *split_re[TK_MAX_SPLITS];
    int prefix_space;                 /* ByteLevel add_prefix_space */

    /* SentencePiece-style */
    int n_norm;
    tk_norm_op norm[TK_MAX_NORM];
    int meta;                         /* Metaspace pre-tokenizer present */
    int meta_prepend, meta_split;
    char meta_rep[8];
    size_t meta_rep_len;
    int byte_fallback, fuse_unk, ignore_merges;
    int dec_replace, dec_byte_fallback, dec_strip_space;
    char dec_rep[8];
    size_t dec_rep_len;
    int32_t unk;

    tk_added *added;                  /* sorted by first byte, then longest first */
    size_t n_added;
    uint32_t added_first[257];        /* added[added_first[b] .. added_first[b+1]) start with byte b */

    int32_t bos, eos;
    uint8_t tpl_bos, tpl_eos;         /* LP_TOKENIZER_ADD_SPECIAL adds BOS / EOS (post-processor template) */

    /* WordPiece (tokenizer_wordpiece.c) */
    uint8_t wp_clean, wp_cjk, wp_strip, wp_lower;  /* normalizer: BertNormalizer parts, or Lowercase / NFD+StripAccents */
    uint8_t wp_split_ws, wp_split_punct;           /* pre-tokenizer: whitespace split, punctuation isolated */
    uint8_t wp_dec, wp_dec_cleanup;                /* WordPiece decoder (else tokens joined with spaces), cleanup */
    size_t wp_max_chars;                           /* longer words are the unknown token */
    char wp_prefix[TK_MAX_PAT], wp_dec_prefix[TK_MAX_PAT];
    size_t wp_prefix_len, wp_dec_prefix_len;

    /* encode-only mutable state */
    tk_map cache;                     /* word -> (offset << 20 | count) into cache_ids */
    tk_ids cache_ids;
    tk_sym *sym; size_t sym_cap;
    tk_cand *heap; size_t heap_cap;
    char *cat; size_t cat_cap;        /* concatenation scratch (llama2.c merges, WordPiece candidates) */
};

/* tokenizer.c: building a handle */
lp_tokenizer *tk_new(lp_tokenizer_kind kind, const char *path);
lp_status tk_alloc_vocab(lp_tokenizer *t, int32_t n_vocab);
/* Sets the string of id; errors (naming where) if id is out of range or already set. */
lp_status tk_set_token(lp_tokenizer *t, int32_t id, const char *s, size_t n, const char *where);
lp_status tk_add_added(lp_tokenizer *t, int32_t id, const char *s, size_t n, int special, int lstrip, int rstrip);
/* Builds the maps, decoded bytes, byte ids, added-token index. Call once the vocab is set. */
lp_status tk_finish(lp_tokenizer *t);
int32_t tk_lookup(const lp_tokenizer *t, const char *s, size_t n);

/* tokenizer_bpe.c: byte-level table, regex pre-tokenizer, BPE engine, per-word cache */
extern const char tk_gpt2_pattern[];
int tk_byte_to_unicode(int byte);          /* GPT-2 bytes_to_unicode */
int tk_unicode_to_byte(uint32_t cp);       /* inverse, -1 if cp is not one of the 256 */
size_t tk_utf8_encode(uint32_t cp, char *out);
/* Strict decode of one UTF-8 character at s (n > 0 bytes): its length, or 0 if invalid. */
size_t tk_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Length of the UTF-8 character starting at s (1 for a stray or truncated byte), as run.c groups. */
size_t tk_utf8_len(const char *s, size_t n);
lp_status tk_compile_split(lp_tokenizer *t, const char *pattern, size_t len, int literal);

typedef lp_status (*tk_piece_fn)(void *ctx, const char *p, size_t n);
/* Splits s by the chained regexes (matches and the gaps between them are pieces). */
lp_status tk_split(const lp_tokenizer *t, const char *s, size_t n, tk_piece_fn fn, void *ctx);
/* BPE of one pre-tokenized word (byte-level: raw bytes; SentencePiece: normalized text). */
lp_status tk_bpe_word(lp_tokenizer *t, const char *w, size_t n, tk_ids *out);
/* Same through the per-word cache. */
lp_status tk_bpe_word_cached(lp_tokenizer *t, const char *w, size_t n, tk_ids *out);
/* llama2.c: dummy prefix, code points / byte fallback, best-score merges. */
lp_status tk_llama2c_encode(lp_tokenizer *t, const char *s, size_t n, tk_ids *out);

/* Byte-level token string ("Ġthe") -> raw bytes (" the"); out has room for n bytes. */
void tk_bytes_decode_bytelevel(const char *s, size_t n, char *out, size_t *out_n);

/* tokenizer_gpt2.c: one merge "a b" with rank; errors name file and line (json = 0) or merge
 * index (json = 1). Call after tk_finish (needs the vocabulary map). */
lp_status tk_add_merge(lp_tokenizer *t, const char *a, size_t an, const char *b, size_t bn, int32_t rank,
                       const char *file, size_t where, int json);

/* tokenizer_hfjson.c: JSON helpers shared with the GPT-2 and WordPiece loaders (cJSON). */
struct cJSON;
lp_status tk_json_load(const char *path, struct cJSON **root);
/* Largest id in a {"token": id} object (checking every value is an integer id). */
lp_status tk_json_vocab_max(const struct cJSON *obj, const char *path, int32_t *max_id);
lp_status tk_json_vocab_set(lp_tokenizer *t, const struct cJSON *obj, const char *path);
/* obj[key] as a string / bool (def when absent or another type) / non-null item (else NULL). */
const char *tk_jstr(const struct cJSON *obj, const char *key);
int tk_jbool(const struct cJSON *obj, const char *key, int def);
const struct cJSON *tk_jget(const struct cJSON *obj, const char *key);
/* tokenizer.json added_tokens: raise *max_id to the largest id (checking each entry), then add them. */
lp_status tk_json_added_max(const struct cJSON *root, const char *path, int32_t *max_id);
lp_status tk_json_added_set(lp_tokenizer *t, const struct cJSON *root, const char *path);
/* BOS / EOS (and tpl_bos / tpl_eos) from a post_processor; call after tk_finish. */
void tk_json_post(lp_tokenizer *t, const struct cJSON *post, int depth);

/* tokenizer_wordpiece.c */
/* tokenizer.json whose model is WordPiece (root already parsed; *out set as soon as allocated). */
lp_status tk_wp_build_json(lp_tokenizer **out, const char *path, const struct cJSON *root);
/* Normalizes and pre-tokenizes s, calling fn for each word (normalized UTF-8) with the bytes
 * [begin, end) of s it came from. */
typedef lp_status (*tk_word_fn)(void *ctx, const char *w, size_t n, size_t begin, size_t end);
lp_status tk_wp_words(const lp_tokenizer *t, const char *s, size_t n, tk_word_fn fn, void *ctx);
/* Text segment -> ids (words through the per-word cache). */
lp_status tk_wp_encode(lp_tokenizer *t, const char *s, size_t n, tk_ids *out);
/* Greedy longest-match-first subwords of one normalized word (the unknown token if none fits). */
lp_status tk_wp_word(lp_tokenizer *t, const char *w, size_t n, tk_ids *out);
/* What the decoder makes of a token that is not first: "##aff" -> "aff", "the" -> " the",
 * "." -> "." (cleanup); out has room for n + 1 bytes. */
void tk_wp_decode_token(const lp_tokenizer *t, const char *s, size_t n, char *out, size_t *out_n);

/* tokenizer_unicode.c: character data for WordPiece (Unicode 14) */
enum { TK_UC_OTHER = 0, TK_UC_CTRL = 1 /* Cc, Cf, Co */, TK_UC_PUNCT = 2 /* P* */, TK_UC_MN = 3 };
int tk_uc_class(uint32_t cp);
size_t tk_uc_lower(uint32_t cp, uint32_t out[2]);   /* full lowercase mapping (1 or 2 code points) */
size_t tk_uc_strip(uint32_t cp, uint32_t out[3]);   /* NFD without Mn marks (0 to 3 code points) */
int tk_uc_is_space(uint32_t cp);                    /* White_Space (Rust's char::is_whitespace) */
int tk_uc_is_cjk(uint32_t cp);                      /* BERT's CJK ideograph blocks */
int tk_uc_is_punct(uint32_t cp);                    /* P* or ASCII punctuation/symbols (BERT) */

#endif
