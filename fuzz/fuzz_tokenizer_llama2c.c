/* libFuzzer harness: llama2.c tokenizer.bin (lp_tokenizer_open_llama2c): max_token_length,
 * then (score, length, bytes) records up to the end of the file. Output is bounded by the
 * input, so running out of the budget is a finding. Input: the file [, LPFUZZ_SEP, text]. */
#include "fuzz_tokenizer_common.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[2], len[2];
    int parts = lpfuzz_split(data, size, 2, off, len);
    const char *path = lpfuzz_write("tokenizer.bin", data + off[0], len[0]);
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_llama2c(&t, path);
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        lpfuzz_use_tokenizer(t, parts > 1 ? (const char *)data + off[1] : NULL, parts > 1 ? len[1] : 0);
        lp_tokenizer_close(t);
    }
    lpfuzz_end();
    return 0;
}
