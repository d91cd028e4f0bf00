/* Evaluations shared by the training loop and `leanprop eval`: LM loss,
 * classification accuracy/F1, per-sequence log-likelihood (multiple choice).
 * Exact forwards: no token selection, no gradients. */
#include "train/trainer_internal.h"

#include <math.h>
#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/log.h"
#include "leanprop/metrics_log.h"

static lp_status check_args(const char *fn, lp_transformer *m, const lp_token_subset *d, int32_t batch, int32_t max_len)
{
    if (!m || !d || !d->ds) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (batch <= 0 || max_len <= 0) return lp_error(LP_ERR_INVALID_ARG, "%s: batch %d, max_len %d", fn, (int)batch, (int)max_len);
    if (d->n < 0 || (!d->idx && d->n > d->ds->n))
        return lp_error(LP_ERR_INVALID_ARG, "%s: %lld sequences of a dataset of %lld", fn, (long long)d->n, (long long)d->ds->n);
    return LP_OK;
}

/* Fill b with data sequences [i0, i0 + nb). */
static lp_status fill(lp_batch *b, const lp_token_subset *d, int64_t i0, int32_t nb, int64_t *idx, int32_t pad_id)
{
    for (int32_t i = 0; i < nb; i++) idx[i] = d->idx ? d->idx[i0 + i] : i0 + i;
    lp_data_report rep;
    memset(&rep, 0, sizeof rep);
    return lp_batch_fill(b, d->ds, idx, nb, 0, pad_id, &rep);
}

static lp_status begin(lp_batch *b, int64_t **idx, uint8_t **am, int32_t batch, int32_t max_len)
{
    *idx = NULL;
    *am = NULL;
    LP_TRY(lp_batch_init(b, batch, max_len));
    *idx = lp_alloc_array(LP_MEM_DATA, (size_t)batch, sizeof **idx);
    *am = lp_alloc_array(LP_MEM_DATA, (size_t)batch * (size_t)max_len, 1);
    if (!*idx || !*am) {
        lp_batch_free(b);
        lp_free(*idx);
        lp_free(*am);
        return LP_ERR_NOMEM;
    }
    return LP_OK;
}

static void end(lp_batch *b, int64_t *idx, uint8_t *am)
{
    lp_batch_free(b);
    lp_free(idx);
    lp_free(am);
}

static void result_init(lp_eval_result *out)
{
    memset(out, 0, sizeof *out);
    out->loss = NAN;
    out->accuracy = NAN;
    out->macro_f1 = NAN;
    out->f1_positive = NAN;
}

lp_status lp_eval_lm(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len, int32_t pad_id,
                     lp_eval_result *out)
{
    static const char fn[] = "lp_eval_lm";
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL result", fn);
    result_init(out);
    LP_TRY(check_args(fn, m, data, batch, max_len));
    double t0 = lp_time_now();
    lp_batch b;
    int64_t *idx;
    uint8_t *am;
    LP_TRY(begin(&b, &idx, &am, batch, max_len));
    double sum = 0.0;
    int64_t count = 0;
    lp_status st = LP_OK;
    for (int64_t i0 = 0; i0 < data->n && st == LP_OK; i0 += batch) {
        int32_t nb = (int32_t)(data->n - i0 < batch ? data->n - i0 : batch);
        if ((st = fill(&b, data, i0, nb, idx, pad_id)) != LP_OK) break;
        lp_transformer_batch tb = {.B = nb, .T = b.T_used, .input_ids = b.input_ids, .labels = b.labels,
                                   .attention_mask = lp_trainer__attention_mask(am, &b)};
        lp_transformer_forward_opts o = {0};
        float l;
        if ((st = lp_transformer_forward(m, &tb, &o, &l)) != LP_OK) break;
        int64_t c = lp_transformer_last_count(m);
        sum += (double)l * (double)c;
        count += c;
    }
    end(&b, idx, am);
    if (st != LP_OK) return lp_error_context(st, "%s", fn);
    out->loss = count > 0 ? sum / (double)count : NAN;
    out->n_targets = count;
    out->seconds = lp_time_now() - t0;
    return LP_OK;
}

lp_status lp_eval_cls(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len, int32_t pad_id,
                      int32_t n_classes, int32_t *pred, lp_eval_result *out)
{
    static const char fn[] = "lp_eval_cls";
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL result", fn);
    result_init(out);
    LP_TRY(check_args(fn, m, data, batch, max_len));
    if (!data->ds->label) return lp_error(LP_ERR_INVALID_ARG, "%s: the data has no class labels", fn);
    int32_t nl = (int32_t)lp_transformer_get_config(m)->num_labels;
    if (n_classes <= 0) n_classes = nl;
    if (n_classes < 2 || n_classes != nl)
        return lp_error(LP_ERR_INVALID_ARG, "%s: %d classes but the model's classifier has %d outputs", fn,
                        (int)n_classes, (int)nl);
    double t0 = lp_time_now();
    lp_batch b;
    int64_t *idx;
    uint8_t *am;
    LP_TRY(begin(&b, &idx, &am, batch, max_len));
    float *logits = lp_alloc_array(LP_MEM_SCRATCH, (size_t)batch * (size_t)nl, sizeof(float));
    int32_t *truth = lp_alloc_array(LP_MEM_DATA, (size_t)(data->n > 0 ? data->n : 1), sizeof(int32_t));
    int32_t *pr = lp_alloc_array(LP_MEM_DATA, (size_t)(data->n > 0 ? data->n : 1), sizeof(int32_t));
    lp_status st = logits && truth && pr ? LP_OK : LP_ERR_NOMEM;
    double sum = 0.0;
    for (int64_t i0 = 0; i0 < data->n && st == LP_OK; i0 += batch) {
        int32_t nb = (int32_t)(data->n - i0 < batch ? data->n - i0 : batch);
        if ((st = fill(&b, data, i0, nb, idx, pad_id)) != LP_OK) break;
        for (int32_t r = 0; r < nb; r++)
            if (b.class_label[r] < 0 || b.class_label[r] >= nl) {
                st = lp_error(LP_ERR_INVALID_ARG, "%s: sequence %lld has label %d outside [0, %d)", fn,
                              (long long)idx[r], (int)b.class_label[r], (int)nl);
                break;
            }
        if (st != LP_OK) break;
        lp_transformer_batch tb = {.B = nb, .T = b.T_used, .input_ids = b.input_ids, .labels = b.class_label,
                                   .attention_mask = lp_trainer__attention_mask(am, &b)};
        lp_transformer_forward_opts o = {.logits = logits};
        float l;
        if ((st = lp_transformer_forward(m, &tb, &o, &l)) != LP_OK) break;
        sum += (double)l * nb;
        for (int32_t r = 0; r < nb; r++) {
            const float *z = logits + (size_t)r * nl;
            int32_t best = 0;
            for (int32_t k = 1; k < nl; k++)
                if (z[k] > z[best]) best = k;
            pr[i0 + r] = best;
            truth[i0 + r] = b.class_label[r];
        }
    }
    lp_free(logits);
    end(&b, idx, am);
    if (st == LP_OK && data->n > 0) {
        lp_cls_metrics cm;
        if ((st = lp_cls_metrics_compute(&cm, truth, pr, data->n, nl)) == LP_OK) {
            out->accuracy = cm.accuracy;
            out->macro_f1 = cm.macro_f1;
            if (nl == 2) out->f1_positive = lp_cls_metrics_binary_f1(&cm, 1);
            lp_cls_metrics_free(&cm);
        }
    }
    if (st == LP_OK && pred) memcpy(pred, pr, (size_t)data->n * sizeof *pred);
    lp_free(truth);
    lp_free(pr);
    if (st != LP_OK) return lp_error_context(st, "%s", fn);
    out->loss = data->n > 0 ? sum / (double)data->n : NAN;
    out->n_targets = data->n;
    out->seconds = lp_time_now() - t0;
    return LP_OK;
}

lp_status lp_eval_loglik(lp_transformer *m, const lp_token_subset *data, int32_t batch, int32_t max_len,
                         int32_t pad_id, double *loglik)
{
    static const char fn[] = "lp_eval_loglik";
    LP_TRY(check_args(fn, m, data, batch, max_len));
    if (!loglik) return lp_error(LP_ERR_INVALID_ARG, "%s: NULL output", fn);
    const lp_transformer_config *c = lp_transformer_get_config(m);
    if (c->arch == LP_ARCH_BERT) return lp_error(LP_ERR_UNSUPPORTED, "%s: needs a causal LM (not BERT)", fn);
    int64_t V = c->vocab_size;
    lp_batch b;
    int64_t *idx;
    uint8_t *am;
    LP_TRY(begin(&b, &idx, &am, batch, max_len));
    float *logits = lp_alloc_array(LP_MEM_SCRATCH, (size_t)batch * (size_t)max_len * (size_t)V, sizeof(float));
    lp_status st = logits ? LP_OK : lp_error_context(LP_ERR_NOMEM, "%s: logits of %d x %d x %lld", fn, (int)batch,
                                                     (int)max_len, (long long)V);
    for (int64_t i0 = 0; i0 < data->n && st == LP_OK; i0 += batch) {
        int32_t nb = (int32_t)(data->n - i0 < batch ? data->n - i0 : batch);
        if ((st = fill(&b, data, i0, nb, idx, pad_id)) != LP_OK) break;
        int32_t T = b.T_used;
        lp_transformer_batch tb = {.B = nb, .T = T, .input_ids = b.input_ids,
                                   .attention_mask = lp_trainer__attention_mask(am, &b)};
        lp_transformer_forward_opts o = {.logits = logits};
        float l;
        if ((st = lp_transformer_forward(m, &tb, &o, &l)) != LP_OK) break;
        for (int32_t r = 0; r < nb; r++) {
            double s = 0.0;
            for (int32_t t = 0; t + 1 < b.lengths[r]; t++) {
                int32_t y = b.labels[(size_t)r * T + t + 1];
                if (y < 0) continue;
                const float *z = logits + ((size_t)r * T + t) * (size_t)V;
                float mx = z[0];
                for (int64_t k = 1; k < V; k++) mx = z[k] > mx ? z[k] : mx;
                double se = 0.0;
                for (int64_t k = 0; k < V; k++) se += exp((double)z[k] - mx);
                s += (double)z[y] - mx - log(se);
            }
            loglik[i0 + r] = s;
        }
    }
    lp_free(logits);
    end(&b, idx, am);
    return st == LP_OK ? LP_OK : lp_error_context(st, "%s", fn);
}
