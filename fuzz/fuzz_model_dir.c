/* libFuzzer harness: Hugging Face model directories (lp_model_dir_open): config.json and a
 * sharded model.safetensors.index.json naming two shard files. Input: config.json,
 * LPFUZZ_SEP, index JSON, LPFUZZ_SEP, shard 1, LPFUZZ_SEP, shard 2. */
#include "fuzz_common.h"

#include "leanprop/model_dir.h"

LPFUZZ_INIT(128u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    size_t off[4], len[4];
    int parts = lpfuzz_split(data, size, 4, off, len);
    static const char *const names[4] = {"config.json", "model.safetensors.index.json",
                                         "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int i = 0; i < parts; i++) lpfuzz_write(names[i], data + off[i], len[i]);
    lp_model_dir *m = NULL;
    lp_status st = lp_model_dir_open(&m, lpfuzz_dir);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        int n = lp_model_dir_tensor_count(m);
        for (int i = 0; i < n; i++) {
            const lp_safetensors *sh = NULL;
            const lp_tensor_info *t = lp_model_dir_tensor_at(m, i, &sh);
            if (!t || !sh) lpfuzz_die("tensor without a shard");
            if (lp_model_dir_find(m, t->name, NULL) != t) lpfuzz_die("tensor not found by its own name");
            float *x = NULL;
            lp_error_clear();
            lpfuzz_status(lp_model_dir_load_f32(m, t->name, LP_MEM_SCRATCH, &x, NULL), LPFUZZ_STRICT, size);
            lp_free(x);
        }
        lp_model_dir_close(m);
    }
    lpfuzz_end();
    return 0;
}
