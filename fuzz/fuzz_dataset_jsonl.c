/* libFuzzer harness: JSONL data sets. The same input goes through the raw JSONL reader (stop
 * and skip policies), the causal-LM loader, the classification loader (JSONL) and the
 * multiple-choice loader; whatever loads is tokenised (bytes), batched and, for multiple
 * choice, turned into scoring requests and scored. */
#include "fuzz_common.h"

#include "leanprop/dataset.h"

LPFUZZ_INIT(128u << 20)

static void use_tokens(const lp_token_dataset *tok)
{
    if (tok->n <= 0) return;
    lp_batch b;
    if (lp_batch_init(&b, 4, 32) != LP_OK) return;
    int64_t idx[4];
    int32_t n = tok->n < 4 ? (int32_t)tok->n : 4;
    for (int32_t i = 0; i < n; i++) idx[i] = (tok->n - 1 - i) % tok->n;
    lp_data_report rep = {0};
    lp_error_clear();
    lpfuzz_status(lp_batch_fill(&b, tok, idx, n, 0, 0, &rep), LPFUZZ_LENIENT, 0);
    lp_error_clear();
    lpfuzz_status(lp_batch_fill(&b, tok, idx, n, 7, 0, &rep), LPFUZZ_LENIENT, 0);
    lp_batch_free(&b);
}

static void use_text(const lp_text_dataset *ds)
{
    int64_t n = lp_text_dataset_count(ds);
    for (int64_t i = 0; i < n; i++) {
        const lp_text_example *e = lp_text_dataset_get(ds, i);
        if (!e || !e->text) lpfuzz_die("example without text");
    }
    int32_t nl;
    (void)lp_text_dataset_labels(ds, &nl);
    lp_text_encoder enc = lp_text_encoder_bytes();
    enc.bos_id = 1;
    enc.eos_id = 2;
    lp_token_dataset tok;
    lp_data_report rep = {0};
    lp_error_clear();
    lp_status st = lp_token_dataset_from_text(&tok, ds, &enc, 24, &rep);
    lpfuzz_status(st, LPFUZZ_LENIENT, 0);
    if (st == LP_OK) {
        use_tokens(&tok);
        lp_token_dataset_free(&tok);
    }
    char buf[256];
    lp_data_report_format(&rep, buf, sizeof buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *path = lpfuzz_write("data.jsonl", data, size);
    for (int pol = 0; pol < 2; pol++) {
        lp_data_report rep = {0};
        lp_jsonl *r = NULL;
        lp_error_clear();
        lp_status st = lp_jsonl_open(&r, path, pol ? LP_BAD_INPUT_SKIP : LP_BAD_INPUT_STOP, &rep);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st != LP_OK) continue;
        int64_t prev = 0;
        for (;;) {
            const cJSON *obj = NULL;
            int64_t line = 0;
            lp_error_clear();
            st = lp_jsonl_next(r, &obj, &line);
            lpfuzz_status(st, LPFUZZ_LENIENT, size);
            if (st != LP_OK || !obj) break;
            if (line <= prev) lpfuzz_die("line numbers do not increase");
            prev = line;
        }
        lp_jsonl_close(r);
    }
    static const char *const labels[] = {"neg", "pos", "0", "1"};
    for (int variant = 0; variant < 2; variant++) {
        lp_data_options opt = lp_data_options_defaults();
        if (variant) {
            opt.on_malformed = LP_BAD_INPUT_SKIP;
            opt.on_unknown_label = LP_BAD_INPUT_SKIP;
            opt.labels = labels;
            opt.n_labels = 4;
        }
        lp_data_report rep = {0};
        lp_text_dataset *ds = NULL;
        lp_error_clear();
        lp_status st = lp_lm_dataset_load(&ds, path, &opt, &rep);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st == LP_OK) { use_text(ds); lp_text_dataset_free(ds); }
        ds = NULL;
        lp_error_clear();
        st = lp_cls_dataset_load(&ds, path, LP_CLS_FORMAT_JSONL, &opt, &rep);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st == LP_OK) { use_text(ds); lp_text_dataset_free(ds); }
        lp_mc_dataset *mc = NULL;
        lp_error_clear();
        st = lp_mc_dataset_load(&mc, path, &opt, &rep);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st == LP_OK) {
            int64_t n = lp_mc_dataset_count(mc);
            for (int64_t i = 0; i < n; i++) {
                const lp_mc_example *e = lp_mc_dataset_get(mc, i);
                if (e->answer < 0 || e->answer >= e->n_choices) lpfuzz_die("answer outside the choices");
            }
            lp_text_encoder enc = lp_text_encoder_bytes();
            lp_mc_options mo = lp_mc_options_defaults();
            mo.n_shot = variant;
            mo.max_len = 48;
            lp_token_dataset req;
            lp_error_clear();
            st = lp_mc_build_requests(&req, mc, &enc, &mo, &rep);
            lpfuzz_status(st, LPFUZZ_LENIENT, size);
            if (st == LP_OK) {
                double *ll = calloc((size_t)req.n + 1, sizeof(double));
                int32_t *pred = calloc((size_t)n + 1, sizeof(int32_t));
                double acc, accn;
                if (!ll || !pred) lpfuzz_die("harness out of memory");
                for (int64_t i = 0; i < req.n; i++) ll[i] = -(double)(i % 5);
                lp_error_clear();
                lpfuzz_status(lp_mc_score(mc, &req, ll, &acc, &accn, pred), LPFUZZ_LENIENT, size);
                free(ll);
                free(pred);
                use_tokens(&req);
                lp_token_dataset_free(&req);
            }
            lp_mc_dataset_free(mc);
        }
    }
    lpfuzz_end();
    return 0;
}
