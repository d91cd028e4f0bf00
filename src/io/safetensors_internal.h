/* Internal to src/io: the safetensors writer's entries, shared by the
 * sharded model-directory writer (model_dir.c). Not a public API. */
#ifndef LEANPROP_IO_SAFETENSORS_INTERNAL_H
#define LEANPROP_IO_SAFETENSORS_INTERNAL_H

#include "leanprop/safetensors.h"

typedef struct {
    char *name;
    lp_dtype dtype;       /* dtype written to the file */
    const void *data;     /* raw bytes of `dtype`, or floats when from_f32 */
    int from_f32;         /* data is float, converted to dtype while saving */
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    size_t nbytes;        /* bytes in the file */
} lp_st_entry;

/* Rank of a dtype in the Python library's Dtype enum (its write order is by
 * this rank descending, then by name). */
int lp_st_dtype_rank(lp_dtype dt);

int lp_st_writer_count(const lp_safetensors_writer *w);
const lp_st_entry *lp_st_writer_entry(const lp_safetensors_writer *w, int i);

/* Save only entries idx[0..n) (any order; written in the library's order). */
lp_status lp_st_writer_save_subset(const lp_safetensors_writer *w, const char *path, const int *idx, int n);

#endif
