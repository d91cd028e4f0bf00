/* Adapter: a leanprop tokenizer as the datasets' encode callback. */
#include "dataset_internal.h"

#include <string.h>

#include "leanprop/alloc.h"
#include "leanprop/tokenizer.h"

static lp_status encode_tokenizer(void *user, const char *text, size_t len, int32_t *ids, int64_t cap, int64_t *n)
{
    int32_t *out = NULL;
    size_t m = 0;
    LP_TRY(lp_tokenizer_encode((lp_tokenizer *)user, text, len, 0, &out, &m));
    *n = (int64_t)m;
    if (m && (int64_t)m <= cap) memcpy(ids, out, m * sizeof(int32_t));
    lp_free(out);
    return LP_OK;
}

lp_text_encoder lp_text_encoder_from_tokenizer(struct lp_tokenizer *tok)
{
    lp_text_encoder e;
    memset(&e, 0, sizeof e);
    e.encode = encode_tokenizer;
    e.user = tok;
    e.bos_id = tok ? lp_tokenizer_bos(tok) : -1;
    e.eos_id = tok ? lp_tokenizer_eos(tok) : -1;
    e.pad_id = e.eos_id >= 0 ? e.eos_id : 0;
    return e;
}
