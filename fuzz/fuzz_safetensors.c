/* libFuzzer harness: safetensors reader (lp_safetensors_open_memory) and the converters
 * (lp_safetensors_read_f32 / read_i64) over every tensor and metadata entry. */
#include "fuzz_common.h"

#include "leanprop/safetensors.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    lp_safetensors *f = NULL;
    lp_status st = lp_safetensors_open_memory(&f, data, size, "fuzz.safetensors");
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        const uint8_t *end = data + size;
        int n = lp_safetensors_count(f);
        for (int i = 0; i < n; i++) {
            const lp_tensor_info *t = lp_safetensors_at(f, i);
            if (!t || !t->name) lpfuzz_die("NULL tensor info");
            if (lp_safetensors_find(f, t->name) != t) lpfuzz_die("find does not return the listed tensor");
            if (t->nbytes != (size_t)t->numel * lp_dtype_size(t->dtype)) lpfuzz_die("nbytes != numel * dtype size");
            if (t->nbytes && ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > end))
                lpfuzz_die("tensor data outside the buffer");
            size_t nel = t->numel > 0 ? (size_t)t->numel : 1;
            float *x = lp_alloc_array(LP_MEM_SCRATCH, nel, sizeof(float));
            int64_t *y = lp_alloc_array(LP_MEM_SCRATCH, nel, sizeof(int64_t));
            if (x && y) {
                lp_error_clear();
                lpfuzz_status(lp_safetensors_read_f32(f, t->name, x, (size_t)t->numel), LPFUZZ_STRICT, size);
                lp_error_clear();
                lpfuzz_status(lp_safetensors_read_i64(f, t->name, y, (size_t)t->numel), LPFUZZ_STRICT, size);
                /* wrong element count must be refused, never overrun */
                lp_error_clear();
                if (lp_safetensors_read_f32(f, t->name, x, (size_t)t->numel + 1) == LP_OK)
                    lpfuzz_die("read_f32 accepted a wrong element count");
            }
            lp_free(x);
            lp_free(y);
            float *z = NULL;
            lp_error_clear();
            st = lp_safetensors_load_f32(f, t->name, LP_MEM_SCRATCH, &z, NULL);
            lpfuzz_status(st, LPFUZZ_STRICT, size);
            lp_free(z);
        }
        int m = lp_safetensors_metadata_count(f);
        for (int i = 0; i < m; i++) {
            const char *k = NULL, *v = NULL;
            if (!lp_safetensors_metadata_at(f, i, &k, &v) || !k || !v) lpfuzz_die("metadata entry missing");
            if (lp_safetensors_metadata(f, k) == NULL) lpfuzz_die("metadata key not found again");
        }
        (void)lp_safetensors_data_size(f);
        lp_safetensors_close(f);
    }
    lpfuzz_end();
    return 0;
}
