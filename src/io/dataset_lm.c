/* Causal-LM instruction data from JSONL: Alpaca, prompt/response, plain text. */
#include "dataset_internal.h"

#include <stdio.h>
#include <string.h>

#include "leanprop/alloc.h"

/* Stanford Alpaca's wording; the alpaca-lora / Platypus layout with a
 * newline after "### Response:" (the TokenTune reference recipe). */
static const char k_alpaca_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
static const char k_alpaca_no_input[] =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n%s\n\n### Response:\n";

size_t lp_data_alpaca_prompt(char *buf, size_t size, const char *instruction, const char *input)
{
    if (!instruction) instruction = "";
    int n = (input && *input) ? snprintf(buf, size, k_alpaca_input, instruction, input)
                              : snprintf(buf, size, k_alpaca_no_input, instruction);
    return n < 0 ? 0 : (size_t)n;
}

/* Fetch a string field for a record; reports missing/wrong-type through the
 * policy. *ok = 1 when the value is usable. */
static lp_status need_string(const cJSON *o, const char *key, const char **out, int *ok, lp_text_dataset *ds,
                             const lp_data_options *opt, lp_data_report *rep, int64_t line)
{
    int r = lp_json_string(o, key, out);
    *ok = r == 0;
    if (r == 0) return LP_OK;
    if (r == 1)
        return lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, ds->path, line,
                               "missing field \"%s\"", key);
    return lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, ds->path, line,
                           "field \"%s\" is %s, expected a string", key,
                           lp_json_type_name(cJSON_GetObjectItemCaseSensitive(o, key)));
}

/* One record -> one example (or a counted skip). */
static lp_status add_record(lp_text_dataset *ds, const cJSON *o, int64_t line, const lp_data_options *opt,
                            lp_data_report *rep, char **scratch, size_t *scratch_cap)
{
    int ok;
    const char *a = NULL, *b = NULL;
    if (cJSON_GetObjectItemCaseSensitive(o, "instruction")) {
        LP_TRY(need_string(o, "instruction", &a, &ok, ds, opt, rep, line));
        if (!ok) return LP_OK;
        const char *input = NULL;
        int r = lp_json_string(o, "input", &input);
        if (r == 2)
            return lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, ds->path, line,
                                   "field \"input\" is %s, expected a string",
                                   lp_json_type_name(cJSON_GetObjectItemCaseSensitive(o, "input")));
        LP_TRY(need_string(o, "output", &b, &ok, ds, opt, rep, line));
        if (!ok) return LP_OK;
        size_t need = lp_data_alpaca_prompt(NULL, 0, a, input) + 1;
        if (need > *scratch_cap) {
            char *nb = *scratch ? lp_realloc(*scratch, need) : lp_alloc(LP_MEM_SCRATCH, need);
            if (!nb) return LP_ERR_NOMEM;
            *scratch = nb;
            *scratch_cap = need;
        }
        size_t plen = lp_data_alpaca_prompt(*scratch, *scratch_cap, a, input);
        LP_TRY(lp_text_dataset_add(ds, *scratch, plen, b, strlen(b), -1, line));
    } else if (cJSON_GetObjectItemCaseSensitive(o, "prompt")) {
        LP_TRY(need_string(o, "prompt", &a, &ok, ds, opt, rep, line));
        if (!ok) return LP_OK;
        const char *key = cJSON_GetObjectItemCaseSensitive(o, "response") || !cJSON_GetObjectItemCaseSensitive(o, "completion")
                        ? "response" : "completion";
        LP_TRY(need_string(o, key, &b, &ok, ds, opt, rep, line));
        if (!ok) return LP_OK;
        LP_TRY(lp_text_dataset_add(ds, a, strlen(a), b, strlen(b), -1, line));
    } else if (cJSON_GetObjectItemCaseSensitive(o, "text")) {
        LP_TRY(need_string(o, "text", &a, &ok, ds, opt, rep, line));
        if (!ok) return LP_OK;
        LP_TRY(lp_text_dataset_add(ds, NULL, 0, a, strlen(a), -1, line));
    } else {
        return lp_data_problem(rep, opt->on_malformed, &rep->skipped_malformed, ds->path, line,
                               "no \"instruction\", \"prompt\" or \"text\" field");
    }
    rep->examples++;
    return LP_OK;
}

lp_status lp_lm_dataset_load(lp_text_dataset **out, const char *path, const lp_data_options *opt,
                             lp_data_report *rep)
{
    if (!out || !path) return lp_error(LP_ERR_INVALID_ARG, "lp_lm_dataset_load: NULL argument");
    *out = NULL;
    lp_data_options defaults = lp_data_options_defaults();
    if (!opt) opt = &defaults;
    lp_data_report local;
    memset(&local, 0, sizeof local);
    if (!rep) rep = &local;
    lp_jsonl *r;
    LP_TRY(lp_jsonl_open(&r, path, opt->on_malformed, rep));
    lp_text_dataset *ds;
    lp_status st = lp_text_dataset_new(&ds, path);
    if (st != LP_OK) { lp_jsonl_close(r); return st; }
    char *scratch = NULL;
    size_t scratch_cap = 0;
    for (;;) {
        const cJSON *o;
        int64_t line;
        st = lp_jsonl_next(r, &o, &line);
        if (st != LP_OK || !o) break;
        st = add_record(ds, o, line, opt, rep, &scratch, &scratch_cap);
        if (st != LP_OK) break;
    }
    lp_free(scratch);
    lp_jsonl_close(r);
    if (st == LP_OK && ds->n == 0)
        st = rep->skipped_malformed
           ? lp_error(LP_ERR_FORMAT, "%s: no usable examples (%lld malformed records skipped; first: %s)", path,
                      (long long)rep->skipped_malformed, rep->first_problem)
           : lp_error(LP_ERR_FORMAT, "%s: empty file (no examples)", path);
    if (st != LP_OK) { lp_text_dataset_free(ds); return st; }
    *out = ds;
    return LP_OK;
}
