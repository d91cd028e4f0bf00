/* libFuzzer harness: .npy header parser (lp_npy_parse_header) and the float / int64
 * converters over the parsed data. */
#include "fuzz_common.h"

#include "leanprop/npz.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    lp_npy_header h;
    lp_status st = lp_npy_parse_header(&h, data, size, "fuzz.npy");
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        if (h.ndim < 0 || h.ndim > LP_NPY_MAX_DIMS) lpfuzz_die("ndim out of range");
        if (h.data_offset > size || h.data_bytes > size - h.data_offset) lpfuzz_die("data outside the buffer");
        if (h.data_bytes != (size_t)h.numel * lp_npy_dtype_size(h.dtype)) lpfuzz_die("data_bytes != numel * size");
        size_t n = (size_t)h.numel;
        float *x = lp_alloc_array(LP_MEM_SCRATCH, n ? n : 1, sizeof(float));
        int64_t *y = lp_alloc_array(LP_MEM_SCRATCH, n ? n : 1, sizeof(int64_t));
        if (x && y) {
            for (int rej = 0; rej < 2; rej++) {
                lp_error_clear();
                lpfuzz_status(lp_npy_convert_f32(x, n, &h, data, rej, "fuzz.npy"), LPFUZZ_STRICT, size);
            }
            lp_error_clear();
            lpfuzz_status(lp_npy_convert_i64(y, n, &h, data, "fuzz.npy"), LPFUZZ_STRICT, size);
        }
        lp_free(x);
        lp_free(y);
    }
    lpfuzz_end();
    return 0;
}
