/* libFuzzer harness: llama2.c checkpoints (lp_llama2c_load; 7-int32 header, fp32 tensors,
 * RoPE row permutation). Memory is bounded by the input (see fuzz_llmc.c). */
#include "fuzz_common.h"

#include "leanprop/checkpoint_llm.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *path = lpfuzz_write("model.bin", data, size);
    lp_transformer *m = NULL;
    lp_status st = lp_llama2c_load(&m, path);
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        if (lp_transformer_n_params(m) <= 0) lpfuzz_die("model without parameters");
        lp_transformer_free(m);
    }
    lpfuzz_end();
    return 0;
}
