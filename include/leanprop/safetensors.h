/* leanprop/safetensors.h: read and write Hugging Face safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {..}}, then the data block. Files are memory-mapped; every
 * header field is validated before use (offsets in range, non-overlapping,
 * bytes == product(shape) * dtype size), so a hostile file yields
 * LP_ERR_FORMAT with the file and tensor named, never an out-of-bounds read.
 *
 *   lp_safetensors *f;
 *   if (lp_safetensors_open(&f, "model.safetensors") != LP_OK) ... lp_error_message()
 *   const lp_tensor_info *t = lp_safetensors_find(f, "wte.weight");
 *   float *w;  // F32/F16/BF16 (and F64, integer types) converted to float
 *   lp_safetensors_load_f32(f, "wte.weight", LP_MEM_WEIGHTS, &w, NULL);
 *   lp_safetensors_close(f);
 *
 *   lp_safetensors_writer *w = lp_safetensors_writer_new();
 *   lp_safetensors_writer_add_f32(w, "x", data, shape, 2);   // data is copied? no: referenced until save
 *   lp_safetensors_writer_save(w, "out.safetensors");        // temp file + fsync + rename
 *   lp_safetensors_writer_free(w);
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

typedef enum {
    LP_DTYPE_F32 = 0, LP_DTYPE_F16, LP_DTYPE_BF16, LP_DTYPE_F64,
    LP_DTYPE_I64, LP_DTYPE_I32, LP_DTYPE_I16, LP_DTYPE_I8, LP_DTYPE_U8, LP_DTYPE_BOOL,
    LP_DTYPE_COUNT
} lp_dtype;

const char *lp_dtype_name(lp_dtype dt);   /* "F32", ... */
size_t lp_dtype_size(lp_dtype dt);

typedef struct {
    const char *name;
    lp_dtype dtype;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    int64_t numel;
    const void *data;      /* points into the mapping; nbytes long */
    size_t nbytes;
} lp_tensor_info;

typedef struct lp_safetensors lp_safetensors;

lp_status lp_safetensors_open(lp_safetensors **out, const char *path);
void lp_safetensors_close(lp_safetensors *f);
const char *lp_safetensors_path(const lp_safetensors *f);
int lp_safetensors_count(const lp_safetensors *f);
const lp_tensor_info *lp_safetensors_at(const lp_safetensors *f, int i);
/* NULL if absent (no error recorded). */
const lp_tensor_info *lp_safetensors_find(const lp_safetensors *f, const char *name);
/* Value of a "__metadata__" string entry, or NULL. */
const char *lp_safetensors_metadata(const lp_safetensors *f, const char *key);

/* Convert tensor `name` into dst[n] as float; LP_ERR_NOT_FOUND if absent,
 * LP_ERR_FORMAT if numel != n (message names file, tensor, both sizes). */
lp_status lp_safetensors_read_f32(const lp_safetensors *f, const char *name, float *dst, size_t n);
/* Same, allocating the buffer in category `cat`; info (may be NULL) receives
 * the tensor description. */
lp_status lp_safetensors_load_f32(const lp_safetensors *f, const char *name, lp_mem_category cat,
                                  float **out, const lp_tensor_info **info);
/* Integer tensors (I64/I32/I16/I8/U8/BOOL) into int64. */
lp_status lp_safetensors_read_i64(const lp_safetensors *f, const char *name, int64_t *dst, size_t n);

typedef struct lp_safetensors_writer lp_safetensors_writer;

lp_safetensors_writer *lp_safetensors_writer_new(void);
/* The data is referenced, not copied: keep it alive until save. Names must be unique. */
lp_status lp_safetensors_writer_add(lp_safetensors_writer *w, const char *name, lp_dtype dtype,
                                    const void *data, const int64_t *shape, int ndim);
lp_status lp_safetensors_writer_add_f32(lp_safetensors_writer *w, const char *name, const float *data,
                                        const int64_t *shape, int ndim);
lp_status lp_safetensors_writer_set_metadata(lp_safetensors_writer *w, const char *key, const char *value);
/* Writes tensors sorted by name (as the Python library does) to a temporary
 * file beside `path`, fsyncs, then renames over `path`: never half-written. */
lp_status lp_safetensors_writer_save(lp_safetensors_writer *w, const char *path);
void lp_safetensors_writer_free(lp_safetensors_writer *w);

#ifdef __cplusplus
}
#endif
#endif
