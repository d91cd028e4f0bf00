/* leanprop/safetensors.h: read and write Hugging Face safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {..}}, then the data block. Files are memory-mapped; every
 * header field is validated before use (offsets in range, non-overlapping,
 * bytes == product(shape) * dtype size), so a hostile file yields
 * LP_ERR_FORMAT with the file and tensor named, never an out-of-bounds read.
 * See docs/FORMATS.md for the full list of checks.
 *
 *   lp_safetensors *f;
 *   if (lp_safetensors_open(&f, "model.safetensors") != LP_OK) ... lp_error_message()
 *   const lp_tensor_info *t = lp_safetensors_find(f, "wte.weight");
 *   float *w;  // F32/F16/BF16 (and F64, integer types) converted to float
 *   lp_safetensors_load_f32(f, "wte.weight", LP_MEM_WEIGHTS, &w, NULL);
 *   lp_free(w);
 *   lp_safetensors_close(f);
 *
 *   lp_safetensors_writer *w = lp_safetensors_writer_new();
 *   lp_safetensors_writer_add_f32(w, "x", data, shape, 2);   // data referenced (not copied) until save
 *   lp_safetensors_writer_save(w, "out.safetensors");        // temp file + fsync + rename
 *   lp_safetensors_writer_free(w);
 *
 * Data is little-endian on disk; leanprop supports little-endian hosts only
 * (checked at compile time). tensor data in the file may be unaligned: read it
 * through the conversion functions below (they use memcpy), not by casting.
 */
#ifndef LEANPROP_SAFETENSORS_H
#define LEANPROP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "leanprop/alloc.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_MAX_DIMS 8
/* Largest header (JSON) accepted by the reader; larger is LP_ERR_FORMAT. */
#define LP_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef enum {
    LP_DTYPE_F32 = 0, LP_DTYPE_F16, LP_DTYPE_BF16, LP_DTYPE_F64,
    LP_DTYPE_I64, LP_DTYPE_I32, LP_DTYPE_I16, LP_DTYPE_I8, LP_DTYPE_U8, LP_DTYPE_BOOL,
    LP_DTYPE_U16, LP_DTYPE_U32, LP_DTYPE_U64,
    LP_DTYPE_COUNT
} lp_dtype;

const char *lp_dtype_name(lp_dtype dt);   /* "F32", ...; "?" for an invalid value */
size_t lp_dtype_size(lp_dtype dt);        /* bytes per element; 0 for an invalid value */
/* Parse a safetensors dtype name ("F32", "BF16", ...); -1 if unknown. */
int lp_dtype_from_name(const char *name);
/* 1 for F32/F16/BF16/F64, 0 otherwise. */
int lp_dtype_is_float(lp_dtype dt);

/* Scalar conversions (exact: subnormals, signed zeros, inf; NaN stays NaN). */
float lp_f16_to_f32(uint16_t h);
float lp_bf16_to_f32(uint16_t b);
/* Round to nearest even; overflow to inf; NaN stays a (quiet) NaN. */
uint16_t lp_f32_to_f16(float f);
uint16_t lp_f32_to_bf16(float f);
/* Convert n elements of little-endian `src` (any alignment) of type dt to
 * float. Integer types convert by value (large int64 round). */
lp_status lp_dtype_convert_to_f32(lp_dtype dt, const void *src, float *dst, size_t n);

typedef struct {
    const char *name;
    lp_dtype dtype;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    int64_t numel;
    const void *data;      /* points into the mapping; nbytes long; may be unaligned */
    size_t nbytes;
} lp_tensor_info;

typedef struct lp_safetensors lp_safetensors;

lp_status lp_safetensors_open(lp_safetensors **out, const char *path);
/* Flags for lp_safetensors_open_ex. */
#define LP_SAFETENSORS_NO_MMAP 1u   /* read the file into memory (LP_MEM_DATA) instead of mmap */
lp_status lp_safetensors_open_ex(lp_safetensors **out, const char *path, unsigned flags);
/* Parse a safetensors image already in memory (validated like a file). The
 * buffer is referenced, not copied: keep it alive and unchanged until close.
 * `name` stands for the file name in messages (NULL: "<memory>"). */
lp_status lp_safetensors_open_memory(lp_safetensors **out, const void *data, size_t size, const char *name);
void lp_safetensors_close(lp_safetensors *f);
const char *lp_safetensors_path(const lp_safetensors *f);
/* Tensors in header order. */
int lp_safetensors_count(const lp_safetensors *f);
const lp_tensor_info *lp_safetensors_at(const lp_safetensors *f, int i);
/* NULL if absent (no error recorded). O(log n). */
const lp_tensor_info *lp_safetensors_find(const lp_safetensors *f, const char *name);
/* Value of a "__metadata__" string entry, or NULL. */
const char *lp_safetensors_metadata(const lp_safetensors *f, const char *key);
int lp_safetensors_metadata_count(const lp_safetensors *f);
/* i-th metadata entry (sorted by key); returns 0 when out of range. */
int lp_safetensors_metadata_at(const lp_safetensors *f, int i, const char **key, const char **value);
/* Size of the data block after the header, in bytes. */
size_t lp_safetensors_data_size(const lp_safetensors *f);

/* Convert tensor `name` into dst[n] as float; LP_ERR_NOT_FOUND if absent,
 * LP_ERR_FORMAT if numel != n (message names file, tensor, both sizes). */
lp_status lp_safetensors_read_f32(const lp_safetensors *f, const char *name, float *dst, size_t n);
/* Same, allocating the buffer in category `cat`; info (may be NULL) receives
 * the tensor description. Free with lp_free. */
lp_status lp_safetensors_load_f32(const lp_safetensors *f, const char *name, lp_mem_category cat,
                                  float **out, const lp_tensor_info **info);
/* Integer tensors (I64/I32/I16/I8/U8/BOOL/U16/U32, and U64 values that fit)
 * into int64. A float tensor is LP_ERR_FORMAT. */
lp_status lp_safetensors_read_i64(const lp_safetensors *f, const char *name, int64_t *dst, size_t n);
lp_status lp_safetensors_load_i64(const lp_safetensors *f, const char *name, lp_mem_category cat,
                                  int64_t **out, const lp_tensor_info **info);

typedef struct lp_safetensors_writer lp_safetensors_writer;

/* NULL only when out of memory (LP_ERR_NOMEM recorded). */
lp_safetensors_writer *lp_safetensors_writer_new(void);
/* The data is referenced, not copied: keep it alive until save. Names must be
 * unique and not "__metadata__"; `data` is nbytes = numel * dtype size raw
 * little-endian bytes (any alignment). */
lp_status lp_safetensors_writer_add(lp_safetensors_writer *w, const char *name, lp_dtype dtype,
                                    const void *data, const int64_t *shape, int ndim);
lp_status lp_safetensors_writer_add_f32(lp_safetensors_writer *w, const char *name, const float *data,
                                        const int64_t *shape, int ndim);
/* Float data stored as `dtype` (F32, F16, BF16 or F64), converted while saving
 * (F16/BF16 round to nearest even). */
lp_status lp_safetensors_writer_add_f32_as(lp_safetensors_writer *w, const char *name, lp_dtype dtype,
                                           const float *data, const int64_t *shape, int ndim);
/* Setting a key again replaces its value. */
lp_status lp_safetensors_writer_set_metadata(lp_safetensors_writer *w, const char *key, const char *value);
int lp_safetensors_writer_count(const lp_safetensors_writer *w);
/* Total bytes of tensor data added so far. */
size_t lp_safetensors_writer_data_bytes(const lp_safetensors_writer *w);
/* Writes tensors ordered as the Python library does (by dtype, widest first in
 * its enum order, then by name; for a single-dtype file: sorted by name) with
 * contiguous offsets, the header padded with spaces to a multiple of 8, to a
 * temporary file beside `path`; fsyncs, renames over `path`, fsyncs the
 * directory: never half-written. On failure the old `path` is untouched. */
lp_status lp_safetensors_writer_save(lp_safetensors_writer *w, const char *path);
void lp_safetensors_writer_free(lp_safetensors_writer *w);

#ifdef __cplusplus
}
#endif
#endif
