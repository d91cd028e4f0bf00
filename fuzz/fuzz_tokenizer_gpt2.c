/* libFuzzer harness: GPT-2 encoder.json + vocab.bpe (lp_tokenizer_open_gpt2).
 * Input: encoder.json, LPFUZZ_SEP, vocab.bpe [, LPFUZZ_SEP, text to encode]. */
#include "fuzz_tokenizer_common.h"

LPFUZZ_INIT(128u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[3], len[3];
    int parts = lpfuzz_split(data, size, 3, off, len);
    const char *enc = lpfuzz_write("encoder.json", data + off[0], len[0]);
    const char *bpe = lpfuzz_write("vocab.bpe", parts > 1 ? data + off[1] : data, parts > 1 ? len[1] : 0);
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_gpt2(&t, enc, bpe);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        lpfuzz_use_tokenizer(t, parts > 2 ? (const char *)data + off[2] : NULL, parts > 2 ? len[2] : 0);
        lp_tokenizer_close(t);
    }
    lpfuzz_end();
    return 0;
}
