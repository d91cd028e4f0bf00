/* libFuzzer harness: Hugging Face tokenizer.json (lp_tokenizer_open_hf): BPE model,
 * normalizers, pre-tokenizers (PCRE2 Split regexes from the file), decoders, added tokens.
 * Input: tokenizer.json [, LPFUZZ_SEP, text to encode]. */
#include "fuzz_tokenizer_common.h"

LPFUZZ_INIT(128u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[2], len[2];
    int parts = lpfuzz_split(data, size, 2, off, len);
    const char *path = lpfuzz_write("tokenizer.json", data + off[0], len[0]);
    lp_tokenizer *t = NULL;
    lp_status st = lp_tokenizer_open_hf(&t, path);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        lpfuzz_use_tokenizer(t, parts > 1 ? (const char *)data + off[1] : NULL, parts > 1 ? len[1] : 0);
        lp_tokenizer_close(t);
    }
    lpfuzz_end();
    return 0;
}
