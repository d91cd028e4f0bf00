/* Tokenised datasets and batches: text examples -> token sequences (through
 * an encode callback), plain-text corpora -> fixed windows, sequences ->
 * padded (B, T) batches with Hugging Face labels. */
#include "dataset_internal.h"

#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"

/* ------------------------------------------------------------- encoders */

static lp_status encode_bytes(void *user, const char *text, size_t len, int32_t *ids, int64_t cap, int64_t *n)
{
    (void)user;
    for (size_t i = 0; i < len && (int64_t)i < cap; i++) ids[i] = (unsigned char)text[i];
    *n = (int64_t)len;
    return LP_OK;
}

lp_text_encoder lp_text_encoder_bytes(void)
{
    lp_text_encoder e;
    memset(&e, 0, sizeof e);
    e.encode = encode_bytes;
    e.bos_id = -1;
    e.eos_id = -1;
    e.pad_id = 0;
    return e;
}

/* Encode into *buf (grown as needed, capacity *cap); *n = ids. */
static lp_status encode_into(const lp_text_encoder *enc, const char *text, size_t len, int32_t **buf, int64_t *cap,
                             int64_t *n)
{
    *n = 0;
    if (len == 0) return LP_OK;
    int64_t guess = (int64_t)len + 16;
    LP_TRY(lp_data_grow((void **)buf, cap, guess, sizeof(int32_t)));
    LP_TRY(enc->encode(enc->user, text, len, *buf, *cap, n));
    if (*n > *cap) {
        int64_t want = *n;
        LP_TRY(lp_data_grow((void **)buf, cap, want, sizeof(int32_t)));
        LP_TRY(enc->encode(enc->user, text, len, *buf, *cap, n));
        if (*n != want) return lp_error(LP_ERR_INTERNAL, "encoder returned %lld ids, then %lld for the same text",
                                        (long long)want, (long long)*n);
    }
    if (*n < 0) return lp_error(LP_ERR_INTERNAL, "encoder returned a negative count");
    return LP_OK;
}

lp_status lp_text_encode(const lp_text_encoder *enc, const char *text, size_t len, int32_t **ids, int64_t *n)
{
    if (!enc || !enc->encode || !ids || !n || (!text && len)) return lp_error(LP_ERR_INVALID_ARG, "lp_text_encode: NULL argument");
    *ids = NULL;
    int64_t cap = 0;
    lp_status st = encode_into(enc, text, len, ids, &cap, n);
    if (st != LP_OK || *n == 0) { lp_free(*ids); *ids = NULL; }
    return st;
}

/* ------------------------------------------------------ token datasets */

lp_status lp_token_builder_begin(lp_token_builder *tb, lp_token_dataset *out)
{
    memset(out, 0, sizeof *out);
    tb->ds = out;
    tb->cap_seq = 0;
    tb->cap_ids = 0;
    return LP_OK;
}

lp_status lp_token_builder_add(lp_token_builder *tb, const int32_t *ids, int64_t n, int32_t n_prompt, int32_t label,
                               int64_t source)
{
    lp_token_dataset *d = tb->ds;
    if (n > INT32_MAX) return lp_error(LP_ERR_UNSUPPORTED, "sequence of %lld tokens", (long long)n);
    int64_t cs = tb->cap_seq, need = d->n + 2;
    if (need > cs || !d->offsets) {
        int64_t c1 = cs, c2 = cs, c3 = cs, c4 = cs;
        LP_TRY(lp_data_grow((void **)&d->offsets, &c1, need, sizeof *d->offsets));
        LP_TRY(lp_data_grow((void **)&d->n_prompt, &c2, need, sizeof *d->n_prompt));
        LP_TRY(lp_data_grow((void **)&d->label, &c3, need, sizeof *d->label));
        LP_TRY(lp_data_grow((void **)&d->source, &c4, need, sizeof *d->source));
        tb->cap_seq = c1;
    }
    LP_TRY(lp_data_grow((void **)&d->ids, &tb->cap_ids, d->n_tokens + (n ? n : 1), sizeof *d->ids));
    d->offsets[d->n] = d->n_tokens;
    if (n) memcpy(d->ids + d->n_tokens, ids, (size_t)n * sizeof *ids);
    d->n_prompt[d->n] = n_prompt;
    d->label[d->n] = label;
    d->source[d->n] = source;
    d->n_tokens += n;
    if (n > d->max_len) d->max_len = (int32_t)n;
    d->n++;
    d->offsets[d->n] = d->n_tokens;
    return LP_OK;
}

lp_status lp_token_builder_end(lp_token_builder *tb, lp_status st)
{
    if (st != LP_OK) { lp_token_dataset_free(tb->ds); return st; }
    if (!tb->ds->offsets) { /* empty: still a valid (n = 0) dataset */
        int64_t c = 0;
        st = lp_data_grow((void **)&tb->ds->offsets, &c, 1, sizeof(int64_t));
        if (st != LP_OK) return st;
        tb->ds->offsets[0] = 0;
    }
    return LP_OK;
}

void lp_token_dataset_free(lp_token_dataset *ds)
{
    if (!ds) return;
    lp_free(ds->offsets);
    lp_free(ds->ids);
    lp_free(ds->n_prompt);
    lp_free(ds->label);
    lp_free(ds->source);
    memset(ds, 0, sizeof *ds);
}

lp_status lp_token_dataset_from_text(lp_token_dataset *out, const lp_text_dataset *ds, const lp_text_encoder *enc,
                                     int32_t max_len, lp_data_report *rep)
{
    if (!out || !ds || !enc || !enc->encode) return lp_error(LP_ERR_INVALID_ARG, "lp_token_dataset_from_text: NULL argument");
    if (max_len <= 0) return lp_error(LP_ERR_INVALID_ARG, "lp_token_dataset_from_text: max_len %d", (int)max_len);
    lp_data_report local;
    memset(&local, 0, sizeof local);
    if (!rep) rep = &local;
    lp_token_builder tb;
    lp_token_builder_begin(&tb, out);
    int32_t *seq = NULL, *part = NULL;
    int64_t seq_cap = 0, part_cap = 0;
    lp_status st = LP_OK;
    char *joined = NULL;
    int64_t joined_cap = 0;
    for (int64_t i = 0; i < ds->n && st == LP_OK; i++) {
        const lp_text_example *e = &ds->items[i];
        int64_t n = 0, np = 0, n_prompt = 0;
        const char *full = e->text;
        size_t full_len = strlen(e->text);
        if (e->prompt) {
            /* As alpaca-lora and lm-evaluation-harness: encode prompt + text as one
             * string (a SentencePiece tokenizer would otherwise put a word-start
             * marker in front of the text), and the prompt alone for its length. */
            size_t pl = strlen(e->prompt);
            st = lp_data_grow((void **)&joined, &joined_cap, (int64_t)(pl + full_len + 1), 1);
            if (st != LP_OK) break;
            memcpy(joined, e->prompt, pl);
            memcpy(joined + pl, e->text, full_len + 1);
            st = encode_into(enc, e->prompt, pl, &part, &part_cap, &n_prompt);
            if (st != LP_OK) break;
            full = joined;
            full_len += pl;
        }
        st = encode_into(enc, full, full_len, &part, &part_cap, &np);
        if (st == LP_OK) st = lp_data_grow((void **)&seq, &seq_cap, np + 2, sizeof *seq);
        if (st != LP_OK) break;
        if (enc->bos_id >= 0) seq[n++] = enc->bos_id;
        if (np) memcpy(seq + n, part, (size_t)np * sizeof *seq);
        n += np;
        if (n_prompt > np) n_prompt = np;
        n_prompt += enc->bos_id >= 0; /* bos and prompt tokens get no loss */
        if (enc->eos_id >= 0) seq[n++] = enc->eos_id;
        if (n > max_len) {
            rep->truncated++;
            rep->truncated_tokens += n - max_len;
            n = max_len;
        }
        /* LM data must keep a trained token; classification trains on its label */
        if (n == 0 || (e->label < 0 && n_prompt >= n)) {
            rep->dropped_no_target++;
            continue;
        }
        if (n_prompt > n) n_prompt = n;
        st = lp_token_builder_add(&tb, seq, n, (int32_t)n_prompt, e->label, i);
    }
    lp_free(seq);
    lp_free(part);
    lp_free(joined);
    return lp_token_builder_end(&tb, st);
}
