/* Plain-text corpora as fixed token windows, and padded batches with
 * Hugging Face labels (aligned with input_ids, -100 = no loss). */
#include "dataset_internal.h"

#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"

lp_status lp_token_windows(lp_token_dataset *out, const int32_t *ids, int64_t n, int32_t window)
{
    if (!out || (!ids && n > 0) || n < 0) return lp_error(LP_ERR_INVALID_ARG, "lp_token_windows: bad argument");
    if (window < 2) return lp_error(LP_ERR_INVALID_ARG, "lp_token_windows: window %d < 2", (int)window);
    lp_token_builder tb;
    lp_token_builder_begin(&tb, out);
    lp_status st = LP_OK;
    for (int64_t off = 0; off < n && st == LP_OK; off += window) {
        int64_t len = n - off < window ? n - off : window;
        if (len < 2) break; /* a single token trains nothing */
        st = lp_token_builder_add(&tb, ids + off, len, 0, -1, off / window);
    }
    return lp_token_builder_end(&tb, st);
}

lp_status lp_text_corpus_load(lp_token_dataset *train, lp_token_dataset *val, const char *path,
                              const lp_text_encoder *enc, int32_t window, double val_fraction,
                              lp_data_report *rep)
{
    if (!train || !path || !enc || !enc->encode) return lp_error(LP_ERR_INVALID_ARG, "lp_text_corpus_load: NULL argument");
    memset(train, 0, sizeof *train);
    if (val) memset(val, 0, sizeof *val);
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return lp_error(LP_ERR_INVALID_ARG, "%s: validation fraction %g outside [0, 1)", path, val_fraction);
    if (val_fraction > 0.0 && !val)
        return lp_error(LP_ERR_INVALID_ARG, "%s: validation fraction %g but no validation dataset", path, val_fraction);
    if (window < 2) return lp_error(LP_ERR_INVALID_ARG, "%s: window %d < 2", path, (int)window);
    char *text;
    size_t len;
    LP_TRY(lp_data_read_file(path, &text, &len));
    size_t skip = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    lp_status st = lp_text_encode(enc, text + skip, len - skip, &ids, &n);
    lp_free(text);
    if (st != LP_OK) return lp_error_context(st, "%s", path);
    if (rep) rep->records++;
    int64_t n_val = (int64_t)floor((double)n * val_fraction + 0.5);
    if (n - n_val < 2 || (val_fraction > 0.0 && n_val < 2)) {
        lp_free(ids);
        return lp_error(LP_ERR_FORMAT, "%s: %lld tokens, too few for a training part%s", path, (long long)n,
                        val_fraction > 0.0 ? " and a validation part" : "");
    }
    st = lp_token_windows(train, ids, n - n_val, window);
    if (st == LP_OK && val && n_val > 0) st = lp_token_windows(val, ids + (n - n_val), n_val, window);
    else if (st == LP_OK && val) st = lp_token_windows(val, ids, 0, window);
    lp_free(ids);
    if (st != LP_OK) {
        lp_token_dataset_free(train);
        if (val) lp_token_dataset_free(val);
        return st;
    }
    if (rep) rep->examples += train->n + (val ? val->n : 0);
    return LP_OK;
}

/* -------------------------------------------------------------- batches */

lp_status lp_batch_init(lp_batch *b, int32_t B, int32_t T)
{
    if (!b) return lp_error(LP_ERR_INVALID_ARG, "lp_batch_init: NULL batch");
    memset(b, 0, sizeof *b);
    if (B <= 0 || T <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_batch_init: batch %d x %d", (int)B, (int)T);
    size_t bt = (size_t)B * (size_t)T;
    b->input_ids = lp_alloc_array(LP_MEM_DATA, bt, sizeof(int32_t));
    b->labels = lp_alloc_array(LP_MEM_DATA, bt, sizeof(int32_t));
    b->lengths = lp_alloc_array(LP_MEM_DATA, (size_t)B, sizeof(int32_t));
    b->class_label = lp_alloc_array(LP_MEM_DATA, (size_t)B, sizeof(int32_t));
    b->index = lp_alloc_array(LP_MEM_DATA, (size_t)B, sizeof(int64_t));
    if (!b->input_ids || !b->labels || !b->lengths || !b->class_label || !b->index) {
        lp_batch_free(b);
        return LP_ERR_NOMEM;
    }
    b->B = B;
    b->T = T;
    return LP_OK;
}

void lp_batch_free(lp_batch *b)
{
    if (!b) return;
    lp_free(b->input_ids);
    lp_free(b->labels);
    lp_free(b->lengths);
    lp_free(b->class_label);
    lp_free(b->index);
    memset(b, 0, sizeof *b);
}

lp_status lp_batch_fill(lp_batch *b, const lp_token_dataset *ds, const int64_t *idx, int32_t n, int32_t pad_to,
                        int32_t pad_id, lp_data_report *rep)
{
    if (!b || !b->input_ids || !ds || (!idx && n > 0)) return lp_error(LP_ERR_INVALID_ARG, "lp_batch_fill: NULL argument");
    if (n < 0 || n > b->B) return lp_error(LP_ERR_INVALID_ARG, "lp_batch_fill: %d sequences for a batch of %d", (int)n, (int)b->B);
    if (pad_to < 0 || pad_to > b->T)
        return lp_error(LP_ERR_INVALID_ARG, "lp_batch_fill: pad_to %d outside [0, %d]", (int)pad_to, (int)b->T);
    for (int32_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return lp_error(LP_ERR_INVALID_ARG, "lp_batch_fill: index %lld outside the dataset (%lld sequences)",
                            (long long)idx[i], (long long)ds->n);
    int32_t T = pad_to;
    if (T == 0) {
        for (int32_t i = 0; i < n; i++) {
            int64_t len = ds->offsets[idx[i] + 1] - ds->offsets[idx[i]];
            if (len > T) T = len > b->T ? b->T : (int32_t)len;
        }
        if (T == 0) T = 1;
    }
    b->T_used = T;
    b->n_seq = n;
    b->n_tokens = 0;
    b->n_targets = 0;
    for (int32_t r = 0; r < b->B; r++) {
        int32_t *in = b->input_ids + (size_t)r * T, *lab = b->labels + (size_t)r * T;
        int32_t len = 0;
        if (r < n) {
            int64_t s = idx[r];
            int64_t full = ds->offsets[s + 1] - ds->offsets[s];
            len = full > T ? T : (int32_t)full;
            if (full > T && rep) {
                rep->truncated++;
                rep->truncated_tokens += full - T;
            }
            const int32_t *src = ds->ids + ds->offsets[s];
            int32_t np = ds->n_prompt ? ds->n_prompt[s] : 0;
            for (int32_t t = 0; t < len; t++) {
                in[t] = src[t];
                lab[t] = t < np ? -100 : src[t];
                b->n_targets += t >= np && t >= 1;
            }
            b->class_label[r] = ds->label ? ds->label[s] : -1;
            b->index[r] = s;
        } else {
            b->class_label[r] = -1;
            b->index[r] = -1;
        }
        for (int32_t t = len; t < T; t++) {
            in[t] = pad_id;
            lab[t] = -100;
        }
        b->lengths[r] = len;
        b->n_tokens += len;
    }
    return LP_OK;
}
