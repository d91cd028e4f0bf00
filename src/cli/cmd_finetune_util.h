/* Helpers shared by `leanprop finetune` and `leanprop eval` (CLI only: they
 * print). */
#ifndef LEANPROP_CLI_FINETUNE_UTIL_H
#define LEANPROP_CLI_FINETUNE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "leanprop/dataset.h"
#include "leanprop/finetune.h"
#include "leanprop/tokenizer.h"
#include "leanprop/trainer.h"

/* "stop" / "skip". */
lp_status ftcli_policy(const char *s, lp_bad_input_policy *out);
/* "123", "512K", "64M", "2G", "1.5GiB" (binary units) -> bytes. */
lp_status ftcli_parse_size(const char *s, size_t *out);
/* --tokenizer, else the model directory, else tokenizer.bin / tok<V>.bin beside a .bin. */
lp_status ftcli_open_tokenizer(lp_tokenizer **tok, const char *path, const char *model, int64_t vocab);
/* The text encoder for a task: decoders classify on the last text token (no EOS). */
lp_text_encoder ftcli_encoder(lp_tokenizer *tok, const lp_transformer_config *cfg, lp_train_task task);
/* 0.1 for a .txt corpus (held-out tail), 0.2 otherwise. */
double ftcli_default_val_fraction(lp_train_task task, const char *path);
/* Warnings for what loading skipped or cut. */
void ftcli_print_report(const char *path, const lp_data_report *rep, int32_t max_len);
/* Make m a classifier of n_labels classes: BERT must have them; a decoder gets
 * a "score" head (or must already have one of that size). */
lp_status ftcli_setup_classifier(lp_transformer *m, int32_t n_labels, const char *const *names, uint64_t seed);
/* Rows a TokenTune step of B x T selects at most (for the memory planner). */
int64_t ftcli_planned_selected(const lp_tokenselect_config *sel, int32_t B, int32_t T, int encoder);
/* " r8 alpha16 dropout0.05 on q_proj,v_proj" style description (static buffer). */
const char *ftcli_lora_desc(const lp_ft_model *f);
int ftcli_isatty(void);
/* a + "/" + b in a static ring of buffers. */
const char *ftcli_join(const char *a, const char *b);
/* An evaluation result as a short note string and back (resume keeps "before"). */
void ftcli_format_eval_note(char *buf, size_t size, const lp_eval_result *e);
void ftcli_parse_eval_note(const char *s, lp_eval_result *e);
/* The allocator's table: category, current, peak; then the total and RSS. */
void ftcli_print_memory(FILE *fp);

#endif
