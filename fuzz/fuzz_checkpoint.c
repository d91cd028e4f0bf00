/* libFuzzer harness: leanprop's own checkpoints (lp_checkpoint_open: safetensors validation,
 * format version, header and data CRC-32), then every accessor. Nearly every mutant fails a
 * checksum, so most inputs stop early; the seeds' CRCs are recomputed by the harness for one
 * input in four (LPFUZZ_FIX_CRC) so that the code after the check is fuzzed too. */
#include "fuzz_common.h"

#include "leanprop/checkpoint.h"
#include "leanprop/fileio.h"

LPFUZZ_INIT(128u << 20)

/* Recompute the data and header CRCs of a mutant in place (the writer's layout: the header
 * CRC's 8 hex digits follow the first "leanprop.header_crc32":" and the data CRC's the first
 * "leanprop.data_crc32":"), so that mutants of the tensors and scalars get past the checks. */
static void fix_crcs(uint8_t *p, size_t size)
{
    if (size < 8) return;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    if (n > size - 8) return;
    char *hdr = (char *)p + 8;
    static const char hk[] = "\"leanprop.header_crc32\":\"", dk[] = "\"leanprop.data_crc32\":\"";
    char *h = memmem(hdr, (size_t)n, hk, sizeof hk - 1), *d = memmem(hdr, (size_t)n, dk, sizeof dk - 1);
    if (!h || !d) return;
    h += sizeof hk - 1;
    d += sizeof dk - 1;
    if ((size_t)(h - hdr) + 8 > n || (size_t)(d - hdr) + 8 > n) return;
    static const char digits[] = "0123456789abcdef";
    uint32_t dc = lp_crc32(0, p + 8 + n, size - 8 - (size_t)n);
    for (int i = 7; i >= 0; i--) { d[i] = digits[dc & 15]; dc >>= 4; }
    memcpy(h, "00000000", 8);
    uint32_t hc = lp_crc32(0, p, 8 + (size_t)n);
    for (int i = 7; i >= 0; i--) { h[i] = digits[hc & 15]; hc >>= 4; }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    const char *path;
    if (size > 0 && (data[size - 1] & 3) == 0) {
        uint8_t *copy = malloc(size);
        if (!copy) lpfuzz_die("harness out of memory");
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        path = lpfuzz_write("ckpt.safetensors", copy, size);
        free(copy);
    } else {
        path = lpfuzz_write("ckpt.safetensors", data, size);
    }
    lp_checkpoint *c = NULL;
    lp_status st = lp_checkpoint_open(&c, path);
    lpfuzz_status(st, LPFUZZ_STRICT, size);
    if (st == LP_OK) {
        int n = lp_checkpoint_tensor_count(c);
        for (int i = 0; i < n; i++) {
            const lp_tensor_info *t = lp_checkpoint_tensor_at(c, i);
            if (!t || lp_checkpoint_find(c, t->name) != t) lpfuzz_die("tensor not found by its own name");
            size_t k = t->numel > 0 ? (size_t)t->numel : 1;
            void *buf = lp_alloc_array(LP_MEM_SCRATCH, k, 8);
            if (buf) {
                lp_error_clear();
                lpfuzz_status(lp_checkpoint_get_tensor(c, t->name, buf, (size_t)t->numel), LPFUZZ_STRICT, size);
                lp_error_clear();
                lpfuzz_status(lp_checkpoint_get_bytes(c, t->name, buf, t->nbytes), LPFUZZ_STRICT, size);
                lp_free(buf);
            }
        }
        static const char *const names[] = {"step", "epoch", "max", "min", "data.position"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            uint64_t u;
            int64_t v;
            lp_error_clear();
            lpfuzz_status(lp_checkpoint_get_u64(c, names[i], &u), LPFUZZ_STRICT, size);
            lp_error_clear();
            lpfuzz_status(lp_checkpoint_get_i64(c, names[i], &v), LPFUZZ_STRICT, size);
        }
        lp_rng r;
        lp_error_clear();
        lpfuzz_status(lp_checkpoint_get_rng(c, "rng", &r), LPFUZZ_STRICT, size);
        (void)lp_checkpoint_json(c);
        lp_checkpoint_close(c);
    }
    lpfuzz_end();
    return 0;
}
