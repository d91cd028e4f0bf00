/* leanprop/dataset.h: training and evaluation data for fine-tuning.
 *
 * Three layers, each usable alone:
 *   1. text readers (no tokenizer needed): JSONL with line numbers; causal-LM
 *      instruction data; classification from TSV/CSV/JSONL; multiple choice.
 *   2. tokenisation through a callback (lp_text_encoder), so any tokenizer
 *      plugs in: text examples -> lp_token_dataset (flat ids + offsets, the
 *      count of leading untrained "prompt" tokens, class labels).
 *   3. batching: pad to the longest in the batch (or a fixed T), labels in the
 *      Hugging Face convention (aligned with input_ids, -100 = no loss; the
 *      model shifts), truncation past the maximum counted.
 * All data buffers come from lp_alloc(LP_MEM_DATA).
 *
 * Bad input never aborts and is never silent: a malformed record fails with
 * LP_ERR_FORMAT "file:line: reason", or, under LP_BAD_INPUT_SKIP, is skipped
 * and counted in lp_data_report (whose first_problem keeps the first message
 * for the caller to print). Truncation is counted there too; the library does
 * not print: the CLI reports the counts.
 *
 *   lp_data_options opt = lp_data_options_defaults();
 *   lp_data_report rep = {0};
 *   lp_text_dataset *train;
 *   if (lp_lm_dataset_load(&train, "alpaca.jsonl", &opt, &rep)) ... lp_error_message()
 *   lp_text_encoder enc = lp_text_encoder_bytes();      // or a real tokenizer
 *   lp_token_dataset tok;
 *   lp_token_dataset_from_text(&tok, train, &enc, 512, &rep);
 *   lp_batch b; lp_batch_init(&b, 8, 512);
 *   int64_t idx[8] = {...};
 *   lp_batch_fill(&b, &tok, idx, 8, 0, enc.pad_id, &rep);  // b.input_ids, b.labels: (8, b.T_used)
 *   ...; lp_batch_free(&b); lp_token_dataset_free(&tok); lp_text_dataset_free(train);
 *
 * Formats (details in docs/DATA.md):
 *   causal LM JSONL   {"instruction","input"?,"output"} (Alpaca prompt template),
 *                     {"prompt","response"} (alias "completion"), or {"text"}
 *   classification    TSV "label<TAB>text" (or a header naming the columns),
 *                     CSV (RFC 4180) with a header naming the columns, JSONL {"text","label"}
 *   multiple choice   JSONL {"question","choices":[..],"answer": index or letter}
 *                     (aliases: ctx/endings/label as in HellaSwag, answerKey as in ARC)
 *   plain text        a UTF-8 file cut into fixed token windows with a held-out tail
 */
#ifndef LEANPROP_DATASET_H
#define LEANPROP_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- common */

typedef enum {
    LP_BAD_INPUT_STOP = 0,   /* fail with LP_ERR_FORMAT "file:line: reason" */
    LP_BAD_INPUT_SKIP        /* skip the record, count it, keep going */
} lp_bad_input_policy;

typedef struct {
    int64_t records;             /* records (non-blank lines, CSV rows) read */
    int64_t examples;            /* examples kept */
    int64_t skipped_malformed;   /* malformed or incomplete records skipped */
    int64_t skipped_unknown_label;
    int64_t truncated;           /* sequences cut at the maximum length */
    int64_t truncated_tokens;    /* tokens those cuts dropped */
    int64_t dropped_no_target;   /* sequences left with no trained token (dropped) */
    char first_problem[512];     /* the first skipped record's message, "" if none */
} lp_data_report;

typedef struct {
    lp_bad_input_policy on_malformed;      /* default STOP */
    lp_bad_input_policy on_unknown_label;  /* default STOP */
    const char *text_field;                /* CSV/TSV header and JSONL key; default "text" */
    const char *label_field;               /* default "label" */
    /* A fixed label set (e.g. from --labels, or a training set's labels for
     * its validation file); NULL = build it from the file, sorted (numerically
     * when every label is an integer). */
    const char *const *labels;
    int32_t n_labels;
} lp_data_options;

lp_data_options lp_data_options_defaults(void);

/* One "reason" line for a report, e.g. "3 malformed records skipped (first:
 * a.jsonl:7: invalid JSON near column 12); 2 sequences truncated". Empty if
 * nothing happened. */
void lp_data_report_format(const lp_data_report *rep, char *buf, size_t size);

/* ----------------------------------------------------------------- JSONL */

typedef struct lp_jsonl lp_jsonl;

/* Open a JSONL file. rep may be NULL (skips are then not counted). */
lp_status lp_jsonl_open(lp_jsonl **out, const char *path, lp_bad_input_policy on_malformed, lp_data_report *rep);
/* Next JSON object: *obj is owned by the reader and valid until the next
 * call; *line is its 1-based line number. Blank lines are ignored, a UTF-8 BOM
 * and CR line ends are accepted. At end of file *obj = NULL and LP_OK.
 * A line that is not valid JSON or not an object: LP_ERR_FORMAT
 * "path:line: reason", or skipped and counted under SKIP. */
lp_status lp_jsonl_next(lp_jsonl *r, const cJSON **obj, int64_t *line);
const char *lp_jsonl_path(const lp_jsonl *r);
void lp_jsonl_close(lp_jsonl *r);

/* --------------------------------------------------- text examples (LM, classification) */

typedef struct {
    const char *prompt;  /* NULL: every token of text is trained */
    const char *text;    /* the response (instruction data) or the whole text */
    int32_t label;       /* class index, -1 for LM data */
    int64_t line;        /* 1-based source line */
} lp_text_example;

typedef struct lp_text_dataset lp_text_dataset;

/* Causal-LM data from JSONL (formats above). Prompt-bearing records train
 * only on the response; {"text"} records train on everything. */
lp_status lp_lm_dataset_load(lp_text_dataset **out, const char *path, const lp_data_options *opt,
                             lp_data_report *rep);

typedef enum { LP_CLS_FORMAT_AUTO = 0, LP_CLS_FORMAT_TSV, LP_CLS_FORMAT_CSV, LP_CLS_FORMAT_JSONL } lp_cls_format;

/* Sequence classification data. AUTO picks by extension (.tsv, .csv,
 * .jsonl/.json). TSV without a header is "label<TAB>text" (text = rest of the
 * line); a first line naming both text_field and label_field is a header.
 * CSV must have such a header. An unknown label (with a fixed label set) is an
 * error naming file and line, or skipped under on_unknown_label = SKIP. */
lp_status lp_cls_dataset_load(lp_text_dataset **out, const char *path, lp_cls_format format,
                              const lp_data_options *opt, lp_data_report *rep);

int64_t lp_text_dataset_count(const lp_text_dataset *ds);
const lp_text_example *lp_text_dataset_get(const lp_text_dataset *ds, int64_t i);
const char *lp_text_dataset_path(const lp_text_dataset *ds);
/* Label names in index order (classification; NULL/0 for LM data). Valid
 * while the dataset lives; pass them as lp_data_options.labels to load the
 * matching validation file. */
const char *const *lp_text_dataset_labels(const lp_text_dataset *ds, int32_t *n_labels);
void lp_text_dataset_free(lp_text_dataset *ds);

/* The Alpaca prompt (Stanford Alpaca wording, alpaca-lora / Platypus layout
 * ending "### Response:\n"); input NULL or "" selects the no-input variant.
 * snprintf contract: returns the length it needs, writes at most size bytes. */
size_t lp_data_alpaca_prompt(char *buf, size_t size, const char *instruction, const char *input);

/* Parse "ham,spam" into a label list for lp_data_options.labels: *names
 * (LP_MEM_DATA, one block; lp_free(*names) releases all). Empty or duplicate
 * names are LP_ERR_INVALID_ARG. */
lp_status lp_data_parse_label_list(const char *list, char ***names, int32_t *n);

/* ---------------------------------------------------------- multiple choice */

typedef struct {
    const char *question;
    const char *const *choices;
    int32_t n_choices;
    int32_t answer;      /* index into choices */
    int64_t line;
} lp_mc_example;

typedef struct lp_mc_dataset lp_mc_dataset;

/* JSONL {"question","choices","answer"}; question alias "ctx"/"context",
 * or ARC's {"stem","choices":[{"text","label"}]} object; choices alias
 * "endings"; answer alias "answerKey"/"label"; the answer is a 0-based index
 * (number or digit string) or a letter A.. (or a choice's own label). */
lp_status lp_mc_dataset_load(lp_mc_dataset **out, const char *path, const lp_data_options *opt,
                             lp_data_report *rep);
int64_t lp_mc_dataset_count(const lp_mc_dataset *ds);
const lp_mc_example *lp_mc_dataset_get(const lp_mc_dataset *ds, int64_t i);
void lp_mc_dataset_free(lp_mc_dataset *ds);

/* ------------------------------------------------------------ tokenisation */

/* Encode text[0..len) (no special tokens): write up to cap ids and set *n to
 * the number the whole text needs; when *n > cap the caller grows the buffer
 * and calls again. */
typedef lp_status (*lp_encode_fn)(void *user, const char *text, size_t len, int32_t *ids, int64_t cap,
                                  int64_t *n);

typedef struct {
    lp_encode_fn encode;
    void *user;
    int32_t bos_id;   /* prepended when >= 0 (BOS, or [CLS] for BERT) */
    int32_t eos_id;   /* appended when >= 0 (EOS, or [SEP]) */
    int32_t pad_id;   /* batch padding */
} lp_text_encoder;

/* Bytes as ids 0..255, no BOS/EOS, pad 0: for tests and byte-level models. */
lp_text_encoder lp_text_encoder_bytes(void);

/* A leanprop tokenizer (leanprop/tokenizer.h) as an encoder: its BOS and EOS
 * ids (-1 where it has none; override the fields as needed, e.g. eos_id = -1
 * for classification without [SEP]), pad = EOS (or 0). Special tokens written
 * in the text become their ids, as in Hugging Face. The handle must outlive
 * the encoder and serve one thread at a time. */
struct lp_tokenizer;
lp_text_encoder lp_text_encoder_from_tokenizer(struct lp_tokenizer *tok);

/* Encode into a fresh LP_MEM_DATA buffer (*ids, *n); *ids = NULL when n = 0. */
lp_status lp_text_encode(const lp_text_encoder *enc, const char *text, size_t len, int32_t **ids, int64_t *n);

/* Token sequences: sequence i is ids[offsets[i] .. offsets[i+1]). */
typedef struct {
    int64_t n;            /* sequences */
    int64_t *offsets;     /* (n+1) */
    int32_t *ids;         /* (offsets[n]) */
    int32_t *n_prompt;    /* (n) leading tokens that get label -100 */
    int32_t *label;       /* (n) class label (classification) or choice index (MC); -1 if none */
    int64_t *source;      /* (n) index of the source example */
    int32_t max_len;      /* longest sequence */
    int64_t n_tokens;     /* offsets[n] */
} lp_token_dataset;

/* Tokenise text examples: [bos] prompt text [eos], cut on the right at
 * max_len (> 0) tokens (counted in rep). Prompt tokens (and bos) are not
 * trained; a sequence left with no trained token is dropped and counted. */
lp_status lp_token_dataset_from_text(lp_token_dataset *out, const lp_text_dataset *ds, const lp_text_encoder *enc,
                                     int32_t max_len, lp_data_report *rep);

/* Plain-text corpus for LM training: encode the whole file once, hold out the
 * last val_fraction of its tokens (0 <= f < 1), and cut each part into
 * windows of `window` tokens (stride = window; a last partial window of at
 * least 2 tokens is kept). Every token is trained. val may be NULL when
 * val_fraction is 0. */
lp_status lp_text_corpus_load(lp_token_dataset *train, lp_token_dataset *val, const char *path,
                              const lp_text_encoder *enc, int32_t window, double val_fraction,
                              lp_data_report *rep);
/* The same from tokens already in memory. */
lp_status lp_token_windows(lp_token_dataset *out, const int32_t *ids, int64_t n, int32_t window);

void lp_token_dataset_free(lp_token_dataset *ds);

/* ------------------------------------------------- multiple-choice scoring */

typedef struct {
    const char *context_template; /* "{question}" is replaced; default "Question: {question}\nAnswer:" */
    const char *target_delimiter; /* before each choice; default " " */
    const char *fewshot_delimiter;/* between shots; default "\n\n" */
    int32_t n_shot;               /* solved examples prepended, drawn from the same set without the current one */
    uint64_t seed;                /* which shots */
    int32_t max_len;              /* longer requests lose context tokens on the LEFT (choice kept) */
} lp_mc_options;

lp_mc_options lp_mc_options_defaults(void);

/* One token sequence per (example, choice): context (untrained) followed by
 * the choice (trained): out->source = example, out->label = choice index.
 * The model's summed log-likelihood of each sequence's trained tokens is the
 * choice's score. */
lp_status lp_mc_build_requests(lp_token_dataset *out, const lp_mc_dataset *ds, const lp_text_encoder *enc,
                               const lp_mc_options *opt, lp_data_report *rep);

/* From loglik[i] of each request: accuracy (argmax of the sum) and acc_norm
 * (argmax of the sum divided by the choice's length in characters, as
 * lm-evaluation-harness). pred (optional, one per example) gets the argmax. */
lp_status lp_mc_score(const lp_mc_dataset *ds, const lp_token_dataset *req, const double *loglik,
                      double *acc, double *acc_norm, int32_t *pred);

/* ---------------------------------------------------------------- batching */

typedef struct {
    int32_t B, T;           /* capacity from init */
    int32_t n_seq;          /* sequences filled; rows n_seq..B-1 are empty (length 0) */
    int32_t T_used;         /* padded length of this batch: the row stride */
    int32_t *input_ids;     /* (B, T_used) pad_id after each length */
    int32_t *labels;        /* (B, T_used) token id where trained, else -100 */
    int32_t *lengths;       /* (B) */
    int32_t *class_label;   /* (B) -1 if none */
    int64_t *index;         /* (B) dataset index, -1 for empty rows */
    int64_t n_tokens;       /* real tokens */
    int64_t n_targets;      /* next-token targets: positions t >= 1 with labels != -100 */
} lp_batch;

lp_status lp_batch_init(lp_batch *b, int32_t B, int32_t T);
/* Fill with sequences idx[0..n) of ds (n <= B). pad_to = 0 pads to the
 * longest in the batch, pad_to > 0 to exactly that length; sequences longer
 * than the padded length (or than T) are cut on the right and counted in rep. */
lp_status lp_batch_fill(lp_batch *b, const lp_token_dataset *ds, const int64_t *idx, int32_t n, int32_t pad_to,
                        int32_t pad_id, lp_data_report *rep);
void lp_batch_free(lp_batch *b);

/* --------------------------------------------------------- order and splits */

/* perm = the visiting order of n examples in epoch `epoch`: a permutation
 * that is a pure function of (seed, epoch), so resumed runs continue it. */
void lp_data_epoch_order(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch);

/* Seeded train/test split: round(n * test_fraction) examples to test. Both
 * index lists are ascending and LP_MEM_DATA (lp_free them). The same (n,
 * fraction, seed) always gives the same split. */
lp_status lp_data_split(int64_t n, double test_fraction, uint64_t seed, int64_t **train, int64_t *n_train,
                        int64_t **test, int64_t *n_test);

#ifdef __cplusplus
}
#endif
#endif
