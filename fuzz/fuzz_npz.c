/* libFuzzer harness: .npz archives (own zip reader: central directory, zip64, stored and
 * deflate members, CRC) via lp_npz_open_memory, then every member's header and data. */
#include "fuzz_common.h"

#include "leanprop/npz.h"

LPFUZZ_INIT(256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    lp_npz *z = NULL;
    lp_status st = lp_npz_open_memory(&z, data, size, "fuzz.npz");
    /* deflate may legitimately expand an input about 1032-fold and int8 -> int64 another
     * 8-fold: below 16 KiB of input everything fits the budget, so NOMEM there is a finding */
    int strict = size < (16u << 10) ? LPFUZZ_STRICT : LPFUZZ_LENIENT;
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        int n = lp_npz_count(z);
        for (int i = 0; i < n; i++) {
            const char *name = lp_npz_name(z, i);
            if (!name) lpfuzz_die("NULL member name");
            if (lp_npz_find(z, name) < 0) lpfuzz_die("member not found by its own name");
            lp_npy_header h;
            lp_error_clear();
            st = lp_npz_header(z, name, &h);
            lpfuzz_status(st, strict, size);
            float *x = NULL;
            int64_t *y = NULL;
            lp_error_clear();
            st = lp_npz_load_f32(z, name, LP_MEM_SCRATCH, &x, &h);
            lpfuzz_status(st, strict, size);
            lp_free(x);
            lp_error_clear();
            st = lp_npz_load_i64(z, name, LP_MEM_SCRATCH, &y, &h);
            lpfuzz_status(st, strict, size);
            lp_free(y);
        }
        lp_npz_close(z);
    }
    lpfuzz_end();
    return 0;
}
