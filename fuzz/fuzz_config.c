/* libFuzzer harness: Hugging Face config.json (lp_transformer_config_parse), then what a
 * parsed config feeds: validate, the memory planner, config -> JSON -> config round trip
 * (must parse again to the same sizes), and building the model under a small budget. */
#include "fuzz_common.h"

#include "leanprop/transformer.h"

LPFUZZ_INIT(64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    char *text = lpfuzz_cstr(data, size);
    lp_transformer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    lp_status st = lp_transformer_config_parse(&cfg, text, "fuzz/config.json");
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        lp_error_clear();
        st = lp_transformer_config_validate(&cfg);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        lp_transformer_mem_plan plan;
        lp_error_clear();
        lpfuzz_status(lp_transformer_plan_memory(&cfg, 2, 8, 16, &plan), LPFUZZ_LENIENT, size);
        char *json = NULL;
        lp_error_clear();
        lp_status st2 = lp_transformer_config_to_json(&cfg, "float32", &json);
        lpfuzz_status(st2, LPFUZZ_LENIENT, size);
        if (st2 == LP_OK) {
            lp_transformer_config back;
            memset(&back, 0, sizeof back);
            if (lp_transformer_config_parse(&back, json, "round-trip") != LP_OK) {
                fprintf(stderr, "lpfuzz: written config does not parse: %s\n%s\n", lp_error_message(), json);
                lpfuzz_die("config round trip failed");
            }
            if (back.arch != cfg.arch || back.vocab_size != cfg.vocab_size || back.hidden_size != cfg.hidden_size ||
                back.n_layers != cfg.n_layers || back.n_heads != cfg.n_heads || back.n_kv_heads != cfg.n_kv_heads ||
                back.intermediate_size != cfg.intermediate_size || back.head_dim != cfg.head_dim)
                lpfuzz_die("config round trip changed a size");
            free(json);
        }
        if (st == LP_OK) {
            lp_transformer *m = NULL;
            lp_error_clear();
            st = lp_transformer_new(&m, &cfg);
            lpfuzz_status(st, LPFUZZ_LENIENT, size);
            if (st == LP_OK) lp_transformer_free(m);
        }
    }
    free(text);
    lpfuzz_end();
    return 0;
}
