/* leanprop/npz.h: NumPy .npy arrays and .npz archives (a zip of .npy members).
 *
 * The zip reader is leanprop's own: it reads the central directory (zip64
 * records included), accepts members that are stored or deflate-compressed
 * (zlib inflate), checks every offset and size against the file before using
 * it, and verifies each member's CRC-32. A hostile or truncated file yields
 * LP_ERR_FORMAT (or LP_ERR_UNSUPPORTED for a valid but unsupported dtype) with
 * the file and the member named, never an out-of-bounds read.
 *
 * .npy: magic "\x93NUMPY", version 1, 2 or 3, a Python dict literal with
 * 'descr', 'fortran_order' and 'shape'. Dtypes: |b1 |i1 |u1 <i2 <u2 <i4 <u4
 * <i8 <u8 <f2 <f4 <f8 (and their big-endian '>' forms). Object ('|O'),
 * unicode ('<U7'), bytes and structured dtypes are reported as unsupported,
 * and only when such a member is actually requested: readers simply skip
 * members like node_names. Fortran-order arrays are converted to C order.
 *
 *   lp_npz *z;
 *   if (lp_npz_open(&z, "cora.npz") != LP_OK) ... lp_error_message()
 *   int64_t *indptr; lp_npy_header h;
 *   lp_npz_load_i64(z, "adj_indptr", LP_MEM_DATA, &indptr, &h);   // h.shape[0] == n + 1
 *   float *vals;
 *   lp_npz_load_f32(z, "attr_data", LP_MEM_DATA, &vals, &h);
 *   lp_free(indptr); lp_free(vals);
 *   lp_npz_close(z);
 */
#ifndef LEANPROP_NPZ_H
#define LEANPROP_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/alloc.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_NPY_MAX_DIMS 8

typedef enum {
    LP_NPY_BOOL = 0, LP_NPY_I8, LP_NPY_U8, LP_NPY_I16, LP_NPY_U16, LP_NPY_I32, LP_NPY_U32,
    LP_NPY_I64, LP_NPY_U64, LP_NPY_F16, LP_NPY_F32, LP_NPY_F64,
    LP_NPY_DTYPE_COUNT
} lp_npy_dtype;

/* "bool", "int8", ..., "float64". */
const char *lp_npy_dtype_name(lp_npy_dtype dt);
size_t lp_npy_dtype_size(lp_npy_dtype dt);

typedef struct {
    char descr[16];          /* as written in the file, e.g. "<f4" */
    lp_npy_dtype dtype;
    int big_endian;
    int fortran_order;
    int ndim;                /* 0 for a scalar */
    int64_t shape[LP_NPY_MAX_DIMS];
    int64_t numel;           /* product of shape (1 for a scalar) */
    size_t data_offset;      /* bytes from the start of the .npy to the data */
    size_t data_bytes;       /* numel * dtype size */
} lp_npy_header;

/* Parse and validate the header of an .npy image buf[len]: magic, version,
 * dict, dtype, shape; checks that len holds all data bytes. `what` names the
 * array in messages (e.g. "cora.npz: labels"). */
lp_status lp_npy_parse_header(lp_npy_header *h, const void *buf, size_t len, const char *what);

/* Convert the data of an .npy image (parsed into h) to float / int64 in dst[n],
 * n == h->numel, C order. Integer conversion rejects non-integral or
 * out-of-range floats and uint64 values above INT64_MAX; float conversion
 * rejects NaN/Inf only when reject_nonfinite is set. */
lp_status lp_npy_convert_f32(float *dst, size_t n, const lp_npy_header *h, const void *buf, int reject_nonfinite,
                             const char *what);
lp_status lp_npy_convert_i64(int64_t *dst, size_t n, const lp_npy_header *h, const void *buf, const char *what);

typedef struct lp_npz lp_npz;

/* Open an .npz file (memory-mapped) and read its central directory. */
lp_status lp_npz_open(lp_npz **out, const char *path);
/* Same over a caller's buffer (kept referenced until close); `name` is used in messages. */
lp_status lp_npz_open_memory(lp_npz **out, const void *buf, size_t len, const char *name);
void lp_npz_close(lp_npz *z);
const char *lp_npz_path(const lp_npz *z);

int lp_npz_count(const lp_npz *z);
/* Array name of member i with ".npy" removed ("adj_indptr"). */
const char *lp_npz_name(const lp_npz *z, int i);
/* Index of array `name` (with or without ".npy"), or -1. */
int lp_npz_find(const lp_npz *z, const char *name);

/* Header of array `name` (decompresses the member). LP_ERR_NOT_FOUND if absent. */
lp_status lp_npz_header(const lp_npz *z, const char *name, lp_npy_header *h);
/* Load array `name` converted to float / int64 into a new buffer in category
 * `cat`; *h (may be NULL) receives its header. */
lp_status lp_npz_load_f32(const lp_npz *z, const char *name, lp_mem_category cat, float **out, lp_npy_header *h);
lp_status lp_npz_load_i64(const lp_npz *z, const char *name, lp_mem_category cat, int64_t **out,
                          lp_npy_header *h);

#ifdef __cplusplus
}
#endif
#endif
