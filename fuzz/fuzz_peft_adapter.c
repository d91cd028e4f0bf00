/* libFuzzer harness: a whole PEFT adapter directory (lp_peft_load): adapter_config.json and
 * adapter_model.safetensors, shapes checked against r. Input: config, LPFUZZ_SEP, safetensors. */
#include "fuzz_common.h"

#include "leanprop/peft.h"

LPFUZZ_INIT(128u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[2], len[2];
    int parts = lpfuzz_split(data, size, 2, off, len);
    lpfuzz_write(LP_PEFT_CONFIG_NAME, data + off[0], len[0]);
    lpfuzz_write(LP_PEFT_WEIGHTS_NAME, parts > 1 ? data + off[1] : data, parts > 1 ? len[1] : 0);
    lp_peft_adapter *a = NULL;
    lp_status st = lp_peft_load(&a, lpfuzz_dir, (int)(size & 1));
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        for (int i = 0; i < a->n; i++)
            if (lp_peft_find(a, a->modules[i]) != a->loras[i]) lpfuzz_die("module not found by its own name");
        lp_peft_free(a);
    }
    lpfuzz_end();
    return 0;
}
