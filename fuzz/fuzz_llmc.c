/* libFuzzer harness: llm.c GPT-2 checkpoints (lp_llmc_load; 256-int32 header, then tensors).
 * The weights are read from the file, so memory is bounded by the input: running out of the
 * budget on a small input is a finding (a size used before it was checked against the file). */
#include "fuzz_common.h"

#include "leanprop/checkpoint_llm.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *path = lpfuzz_write("model.bin", data, size);
    lp_transformer *m = NULL;
    lp_status st = lp_llmc_load(&m, path);
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        if (lp_transformer_n_params(m) <= 0) lpfuzz_die("model without parameters");
        lp_transformer_free(m);
    }
    lpfuzz_end();
    return 0;
}
