/* Internals shared by the dataset readers (src/io/dataset_*.c, src/io/jsonl.c). */
#ifndef LEANPROP_DATASET_INTERNAL_H
#define LEANPROP_DATASET_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "leanprop/dataset.h"

/* String arena: chunks from lp_alloc(LP_MEM_DATA), freed together. */
typedef struct lp_arena_chunk lp_arena_chunk;
typedef struct {
    lp_arena_chunk *head;
} lp_arena;

void *lp_arena_alloc(lp_arena *a, size_t bytes);              /* 8-byte aligned, zeroed; NULL + LP_ERR_NOMEM */
char *lp_arena_strndup(lp_arena *a, const char *s, size_t n);  /* NUL-terminated copy */
void lp_arena_free(lp_arena *a);

/* Grow *p (lp_alloc'd, LP_MEM_DATA) to hold at least `need` elements, doubling. */
lp_status lp_data_grow(void **p, int64_t *cap, int64_t need, size_t elem);

/* A bad record: under SKIP count it in *counter (and rep), remember the first
 * message and return LP_OK; under STOP return LP_ERR_FORMAT "path:line: msg". */
lp_status lp_data_problem(lp_data_report *rep, lp_bad_input_policy pol, int64_t *counter, const char *path,
                          int64_t line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

struct lp_text_dataset {
    char *path;
    lp_arena arena;
    lp_text_example *items;
    int64_t n, cap;
    char **labels;          /* arena strings, index order */
    int32_t n_labels;
};

lp_status lp_text_dataset_new(lp_text_dataset **out, const char *path);
/* Append an example; strings are copied into the arena (prompt may be NULL). */
lp_status lp_text_dataset_add(lp_text_dataset *ds, const char *prompt, size_t prompt_len, const char *text,
                              size_t text_len, int32_t label, int64_t line);

/* JSON field access. Returns 0 when found with the right type, 1 when absent
 * (or null), 2 when present with another type. */
int lp_json_string(const cJSON *obj, const char *key, const char **out);
const char *lp_json_type_name(const cJSON *item);

/* Token dataset builder. */
typedef struct {
    lp_token_dataset *ds;
    int64_t cap_seq, cap_ids;
} lp_token_builder;

lp_status lp_token_builder_begin(lp_token_builder *tb, lp_token_dataset *out);
lp_status lp_token_builder_add(lp_token_builder *tb, const int32_t *ids, int64_t n, int32_t n_prompt, int32_t label,
                               int64_t source);
/* Frees what was built on failure, finishes the last offset on success. */
lp_status lp_token_builder_end(lp_token_builder *tb, lp_status st);

/* CSV (RFC 4180). Fields of one record point into an internal buffer valid
 * until the next call. Returns LP_OK with *n_fields = 0 at end of input.
 * Unbalanced quotes and stray quotes: LP_ERR_FORMAT "path:line: ..." (never
 * skippable: the record boundary is lost). */
typedef struct lp_csv lp_csv;
lp_status lp_csv_open_buffer(lp_csv **out, const char *data, size_t len, const char *path, char sep);
lp_status lp_csv_next(lp_csv *c, const char *const **fields, const size_t **lens, int32_t *n_fields,
                      int64_t *line);
void lp_csv_close(lp_csv *c);

/* Read a whole file into an LP_MEM_DATA buffer (NUL-terminated). */
lp_status lp_data_read_file(const char *path, char **data, size_t *len);

/* Count UTF-8 code points (bytes that are not continuation bytes). */
int64_t lp_utf8_length(const char *s);

#endif
