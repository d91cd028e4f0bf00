/* libFuzzer harness: classification TSV and CSV (RFC 4180) files, and plain-text corpora cut
 * into token windows. The same input goes through each reader with the stop and the skip
 * policies and with a derived and a fixed label set; whatever loads is tokenised and batched. */
#include "fuzz_common.h"

#include "leanprop/dataset.h"

LPFUZZ_INIT(128u << 20)

static void use_text(const lp_text_dataset *ds)
{
    int64_t n = lp_text_dataset_count(ds);
    int32_t nl = 0;
    (void)lp_text_dataset_labels(ds, &nl);
    for (int64_t i = 0; i < n; i++) {
        const lp_text_example *e = lp_text_dataset_get(ds, i);
        if (!e || !e->text) lpfuzz_die("example without text");
        if (e->label < 0 || e->label >= nl) lpfuzz_die("label index outside the label set");
    }
    lp_text_encoder enc = lp_text_encoder_bytes();
    enc.bos_id = 1;
    lp_token_dataset tok;
    lp_data_report rep = {0};
    lp_error_clear();
    lp_status st = lp_token_dataset_from_text(&tok, ds, &enc, 16, &rep);
    lpfuzz_status(st, LPFUZZ_LENIENT, 0);
    if (st == LP_OK) {
        lp_batch b;
        if (tok.n > 0 && lp_batch_init(&b, 2, 16) == LP_OK) {
            int64_t idx[2] = {0, tok.n - 1};
            lp_error_clear();
            lpfuzz_status(lp_batch_fill(&b, &tok, idx, tok.n > 1 ? 2 : 1, 0, 0, &rep), LPFUZZ_LENIENT, 0);
            lp_batch_free(&b);
        }
        lp_token_dataset_free(&tok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *tsv = lpfuzz_write("data.tsv", data, size);
    const char *csv = lpfuzz_write("data.csv", data, size);
    static const char *const labels[] = {"ham", "spam", "0", "1"};
    for (int fmt = 0; fmt < 2; fmt++) {
        for (int variant = 0; variant < 2; variant++) {
            lp_data_options opt = lp_data_options_defaults();
            if (variant) {
                opt.on_malformed = LP_BAD_INPUT_SKIP;
                opt.on_unknown_label = LP_BAD_INPUT_SKIP;
                opt.labels = labels;
                opt.n_labels = 4;
                opt.text_field = "sms";
                opt.label_field = "class";
            }
            lp_data_report rep = {0};
            lp_text_dataset *ds = NULL;
            lp_error_clear();
            lp_status st = lp_cls_dataset_load(&ds, fmt ? csv : tsv, LP_CLS_FORMAT_AUTO, &opt, &rep);
            lpfuzz_status(st, LPFUZZ_LENIENT, size);
            if (st == LP_OK) {
                use_text(ds);
                lp_text_dataset_free(ds);
            }
        }
    }
    lp_text_encoder enc = lp_text_encoder_bytes();
    lp_token_dataset train, val;
    lp_data_report rep = {0};
    int32_t window = 2 + (int32_t)(size % 7);
    lp_error_clear();
    lp_status st = lp_text_corpus_load(&train, &val, tsv, &enc, window, 0.25, &rep);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        for (int64_t i = 0; i < train.n; i++)
            if (train.offsets[i + 1] - train.offsets[i] > window) lpfuzz_die("window longer than asked");
        lp_token_dataset_free(&train);
        lp_token_dataset_free(&val);
    }
    lpfuzz_end();
    return 0;
}
