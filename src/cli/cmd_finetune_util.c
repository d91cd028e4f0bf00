/* Helpers shared by `leanprop finetune` and `leanprop eval`. */
#include "cli/cmd_finetune_util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/fileio.h"

lp_status ftcli_policy(const char *s, lp_bad_input_policy *out)
{
    if (s && !strcmp(s, "stop")) *out = LP_BAD_INPUT_STOP;
    else if (s && !strcmp(s, "skip")) *out = LP_BAD_INPUT_SKIP;
    else return lp_error(LP_ERR_INVALID_ARG, "bad-input policy \"%s\": expected stop or skip", s ? s : "");
    return LP_OK;
}

lp_status ftcli_parse_size(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return LP_ERR_INVALID_ARG;
    while (*end == ' ') end++;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (mul > 1 && (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))) end += strlen(end);
    if (mul == 1 && !strcasecmp(end, "B")) end++;
    if (*end || v * mul > 1e18) return LP_ERR_INVALID_ARG;
    *out = (size_t)(v * mul);
    return LP_OK;
}

lp_status ftcli_open_tokenizer(lp_tokenizer **tok, const char *path, const char *model, int64_t vocab)
{
    *tok = NULL;
    if (path) return lp_tokenizer_open(tok, path);
    if (lp_dir_exists(model)) return lp_tokenizer_open(tok, model);
    char dir[LP_PATH_MAX], cand[LP_PATH_MAX], name[64];
    LP_TRY(lp_path_dirname(dir, sizeof dir, model));
    snprintf(name, sizeof name, "tok%lld.bin", (long long)vocab);
    const char *names[] = {"tokenizer.bin", name};
    for (int i = 0; i < 2; i++)
        if (lp_path_join(cand, sizeof cand, dir, names[i]) == LP_OK && lp_file_exists(cand))
            return lp_tokenizer_open(tok, cand);
    return lp_error(LP_ERR_NOT_FOUND, "no tokenizer found beside %s", model);
}

lp_text_encoder ftcli_encoder(lp_tokenizer *tok, const lp_transformer_config *cfg, lp_train_task task)
{
    lp_text_encoder enc = lp_text_encoder_from_tokenizer(tok);
    if (task == LP_TRAIN_CLS && cfg->arch != LP_ARCH_BERT) enc.eos_id = -1; /* the head reads the last text token */
    if (enc.pad_id < 0 || enc.pad_id >= cfg->vocab_size) enc.pad_id = 0;
    return enc;
}

static int has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && !strcasecmp(path + n - e, ext);
}

double ftcli_default_val_fraction(lp_train_task task, const char *path)
{
    return task == LP_TRAIN_LM && has_ext(path, ".txt") ? 0.1 : task == LP_TRAIN_CLS ? 0.2 : 0.1;
}

void ftcli_print_report(const char *path, const lp_data_report *rep, int32_t max_len)
{
    if (rep->skipped_malformed)
        fprintf(stderr, "warning: %s: %lld malformed records skipped (first: %s)\n", path,
                (long long)rep->skipped_malformed, rep->first_problem);
    if (rep->skipped_unknown_label)
        fprintf(stderr, "warning: %s: %lld records with unknown labels skipped%s%s\n", path,
                (long long)rep->skipped_unknown_label, rep->skipped_malformed ? "" : " (first: ",
                rep->skipped_malformed ? "" : rep->first_problem);
    if (rep->skipped_unknown_label && !rep->skipped_malformed) fprintf(stderr, ")\n");
    if (rep->truncated)
        fprintf(stderr, "warning: %s: %lld sequences longer than %d tokens were truncated (%lld tokens dropped)\n",
                path, (long long)rep->truncated, (int)max_len, (long long)rep->truncated_tokens);
    if (rep->dropped_no_target)
        fprintf(stderr, "warning: %s: %lld sequences had no trained token left (prompt fills %d tokens) and were dropped\n",
                path, (long long)rep->dropped_no_target, (int)max_len);
}

lp_status ftcli_setup_classifier(lp_transformer *m, int32_t n_labels, const char *const *names, uint64_t seed)
{
    const lp_transformer_config *c = lp_transformer_get_config(m);
    if (n_labels < 2) return lp_error(LP_ERR_INVALID_ARG, "classification needs at least 2 labels (found %d)", (int)n_labels);
    if (c->task == LP_TASK_SEQ_CLS) {
        if (c->num_labels != n_labels)
            return lp_error(LP_ERR_INVALID_ARG, "the model's classifier has %lld outputs but the data has %d labels (%s%s)",
                            (long long)c->num_labels, (int)n_labels, names ? names[0] : "", n_labels > 1 ? ", ..." : "");
        return LP_OK;
    }
    if (c->arch == LP_ARCH_BERT) return lp_error(LP_ERR_UNSUPPORTED, "a BERT model without a classifier");
    return lp_transformer_add_cls_head(m, n_labels, seed);
}

int64_t ftcli_planned_selected(const lp_tokenselect_config *sel, int32_t B, int32_t T, int encoder)
{
    lp_tokenselect_config c = *sel;
    c.encoder = encoder;
    int64_t k = lp_tokenselect_count(&c, T);
    return (int64_t)B * (k > 0 ? k : T);
}

const char *ftcli_lora_desc(const lp_ft_model *f)
{
    static char buf[512];
    const lp_lora_config *l = &lp_ft_model_setup(f)->lora;
    int off = snprintf(buf, sizeof buf, " r%d alpha %g dropout %g on ", l->r, (double)l->alpha, (double)l->dropout);
    if (l->n_targets == 0) snprintf(buf + off, sizeof buf - off, "%s", l->target_regex[0] ? l->target_regex : "defaults");
    for (int i = 0; i < l->n_targets && off < (int)sizeof buf; i++)
        off += snprintf(buf + off, sizeof buf - off, "%s%s", i ? "," : "", l->targets[i]);
    return buf;
}

int ftcli_isatty(void)
{
    return isatty(2);
}

const char *ftcli_join(const char *a, const char *b)
{
    static char ring[4][LP_PATH_MAX];
    static int next;
    char *p = ring[next++ & 3];
    if (lp_path_join(p, LP_PATH_MAX, a, b) != LP_OK) snprintf(p, LP_PATH_MAX, "%s", b);
    return p;
}

void ftcli_format_eval_note(char *buf, size_t size, const lp_eval_result *e)
{
    snprintf(buf, size, "%.9g %.9g %.9g %.9g", e->loss, e->accuracy, e->macro_f1, e->f1_positive);
}

void ftcli_parse_eval_note(const char *s, lp_eval_result *e)
{
    char *end;
    double *dst[] = {&e->loss, &e->accuracy, &e->macro_f1, &e->f1_positive};
    for (int i = 0; i < 4; i++) {
        *dst[i] = strtod(s, &end);
        if (end == s) {
            *dst[i] = NAN;
            return;
        }
        s = end;
    }
}

void ftcli_print_memory(FILE *fp)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    char a[32], b[32];
    fprintf(fp, "memory (accounting allocator, exact)   current        peak\n");
    for (int c = 0; c < LP_MEM_COUNT; c++)
        fprintf(fp, "  %-34s %10s  %10s\n", lp_mem_category_name((lp_mem_category)c),
                lp_format_bytes(s.current[c], a, sizeof a), lp_format_bytes(s.peak[c], b, sizeof b));
    fprintf(fp, "  %-34s %10s  %10s\n", "total", lp_format_bytes(s.total_current, a, sizeof a),
            lp_format_bytes(s.total_peak, b, sizeof b));
    fprintf(fp, "  (process RSS peak %s, a cross-check: includes code, libraries, allocator slack)\n",
            lp_format_bytes(lp_mem_rss_peak_bytes(), a, sizeof a));
}
