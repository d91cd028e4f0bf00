/* libFuzzer harness: PEFT adapter_config.json (lp_peft_parse_config), then the config ->
 * JSON -> config round trip (must parse again to the same values) and target matching. */
#include "fuzz_common.h"

#include <math.h>

#include "leanprop/peft.h"

LPFUZZ_INIT(64u << 20)

static const char *const modules[] = {
    "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "transformer.h.0.attn.c_attn",
    "bert.encoder.layer.0.attention.self.query", "lm_head", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    char *text = lpfuzz_cstr(data, size);
    lp_lora_config cfg;
    lp_status st = lp_peft_parse_config(&cfg, text, "fuzz/adapter_config.json");
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) (void)lp_lora_config_matches(&cfg, modules[i]);
        (void)lp_lora_config_scaling(&cfg);
        char *json = NULL;
        lp_error_clear();
        st = lp_peft_config_to_json(&cfg, &json);
        lpfuzz_status(st, LPFUZZ_LENIENT, size);
        if (st == LP_OK) {
            lp_lora_config back;
            if (lp_peft_parse_config(&back, json, "round-trip") != LP_OK) {
                fprintf(stderr, "lpfuzz: written adapter config does not parse: %s\n%s\n", lp_error_message(), json);
                lpfuzz_die("adapter config round trip failed");
            }
            if (back.r != cfg.r || back.alpha != cfg.alpha || back.dropout != cfg.dropout ||
                back.use_rslora != cfg.use_rslora || back.n_targets != cfg.n_targets ||
                strcmp(back.target_regex, cfg.target_regex) != 0 || back.n_exclude != cfg.n_exclude ||
                strcmp(back.exclude_regex, cfg.exclude_regex) != 0 || back.init_lora_weights != cfg.init_lora_weights)
                lpfuzz_die("adapter config round trip changed a value");
            for (int i = 0; i < cfg.n_targets; i++)
                if (strcmp(back.targets[i], cfg.targets[i]) != 0) lpfuzz_die("round trip changed a target");
            free(json);
        }
    }
    free(text);
    lpfuzz_end();
    return 0;
}
