/* leanprop/checkpoint.h: crash-safe training checkpoints.
 *
 * A checkpoint holds what a run needs to continue exactly where it stopped: named float
 * tensors (weights, adapters, optimizer moments), named 64-bit integer scalars (step, data
 * position, epoch, RNG state words), raw byte blobs, and one free JSON string (the run's
 * options, say). It is one safetensors file, so any safetensors tool can inspect it:
 *
 *   header  {"__metadata__": {"leanprop.checkpoint": "1", "leanprop.header_crc32": "1a2b3c4d",
 *                             "leanprop.data_crc32": "...", "leanprop.json": "{...}",
 *                             "u64.step": "1200", "i64.epoch": "3", ...},
 *            "model.layers.0.mlp.up_proj.lora_A": {"dtype": "F32", "shape": [8, 64], "data_offsets": [0, 2048]},
 *            "blob": {"dtype": "U8", ...}, ...}
 *   data    the tensors in the order they were added, contiguous
 *
 * Crash safety: lp_checkpoint_writer_save writes a temporary file beside the target, fsyncs it,
 * renames it over the old checkpoint and fsyncs the directory (lp_atomic_writer): after a crash
 * or power loss at any moment the path holds the old checkpoint or the new one, complete. Any
 * write failure (full disk) leaves the old one untouched.
 *
 * Integrity: leanprop.data_crc32 is the CRC-32 of the whole data block and
 * leanprop.header_crc32 the CRC-32 of the 8-byte length and the header with its own 8 hex
 * digits read as "00000000"; both are verified by lp_checkpoint_open, which reports
 * LP_ERR_FORMAT naming the file (and which part) on any mismatch. So a flipped byte anywhere in
 * the file, or a truncated file, never loads.
 *
 *   lp_checkpoint_writer *w = lp_checkpoint_writer_new();
 *   lp_checkpoint_writer_add_tensor(w, "lora_A", A, shape, 2);   // referenced until save
 *   lp_checkpoint_writer_add_u64(w, "step", step);
 *   lp_checkpoint_writer_add_rng(w, "rng", &rng);                 // state words + Box-Muller spare
 *   lp_checkpoint_writer_set_json(w, "{\"lr\": 0.001}");
 *   lp_status st = lp_checkpoint_writer_save(w, "run/ckpt.safetensors");
 *   lp_checkpoint_writer_free(w);
 *
 *   lp_checkpoint *c;
 *   if (lp_checkpoint_open(&c, "run/ckpt.safetensors") != LP_OK) ... lp_error_message()
 *   lp_checkpoint_get_tensor(c, "lora_A", A, n);                  // count must match
 *   uint64_t step; lp_checkpoint_get_u64(c, "step", &step);
 *   lp_checkpoint_get_rng(c, "rng", &rng);
 *   lp_checkpoint_close(c);
 */
#ifndef LEANPROP_CHECKPOINT_H
#define LEANPROP_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/rng.h"
#include "leanprop/safetensors.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Format version written to "leanprop.checkpoint"; the reader refuses others. */
#define LP_CHECKPOINT_VERSION 1
/* Longest tensor or scalar name (bytes, without the NUL). */
#define LP_CHECKPOINT_NAME_MAX 1024

typedef struct lp_checkpoint_writer lp_checkpoint_writer;

/* NULL only when out of memory (LP_ERR_NOMEM recorded). */
lp_checkpoint_writer *lp_checkpoint_writer_new(void);
/* Float tensor of shape[ndim] (ndim 0..LP_MAX_DIMS; 0 = scalar), stored as F32. The data is
 * referenced, not copied: keep it alive and unchanged until save. Names are unique among
 * tensors, non-empty, at most LP_CHECKPOINT_NAME_MAX bytes and not "__metadata__". */
lp_status lp_checkpoint_writer_add_tensor(lp_checkpoint_writer *w, const char *name, const float *data,
                                          const int64_t *shape, int ndim);
/* Raw bytes (U8 tensor of shape [n]), referenced until save like tensors. */
lp_status lp_checkpoint_writer_add_bytes(lp_checkpoint_writer *w, const char *name, const void *data, size_t n);
/* Integer scalars (copied). Names are unique among scalars of the same kind. */
lp_status lp_checkpoint_writer_add_u64(lp_checkpoint_writer *w, const char *name, uint64_t value);
lp_status lp_checkpoint_writer_add_i64(lp_checkpoint_writer *w, const char *name, int64_t value);
/* The generator's whole state as scalars "<name>.s0" .. "<name>.s3", "<name>.spare" (bits of
 * the double) and "<name>.has_spare": lp_checkpoint_get_rng restores the exact sequence. */
lp_status lp_checkpoint_writer_add_rng(lp_checkpoint_writer *w, const char *name, const lp_rng *r);
/* Free-form JSON text (copied; checked to parse). Setting it again replaces it. */
lp_status lp_checkpoint_writer_set_json(lp_checkpoint_writer *w, const char *json);
/* Write atomically to `path` (temp file, fsync, rename, directory fsync). The writer stays
 * usable (save again elsewhere, or free). On failure `path` is untouched. */
lp_status lp_checkpoint_writer_save(lp_checkpoint_writer *w, const char *path);
void lp_checkpoint_writer_free(lp_checkpoint_writer *w);

typedef struct lp_checkpoint lp_checkpoint;

/* Map `path`, validate it as safetensors, check the format version and both CRCs. Errors:
 * LP_ERR_NOT_FOUND (no file), LP_ERR_IO, LP_ERR_FORMAT (corrupt, truncated, not a
 * checkpoint: the message names the file), LP_ERR_UNSUPPORTED (newer version). */
lp_status lp_checkpoint_open(lp_checkpoint **out, const char *path);
void lp_checkpoint_close(lp_checkpoint *c);
const char *lp_checkpoint_path(const lp_checkpoint *c);

/* Tensors (float and byte) in file order; NULL when absent / out of range. */
int lp_checkpoint_tensor_count(const lp_checkpoint *c);
const lp_tensor_info *lp_checkpoint_tensor_at(const lp_checkpoint *c, int i);
const lp_tensor_info *lp_checkpoint_find(const lp_checkpoint *c, const char *name);
/* Copy float tensor `name` into dst[n]: LP_ERR_NOT_FOUND if absent, LP_ERR_FORMAT if it has
 * another element count or is not F32 (the message names file, tensor and both counts). */
lp_status lp_checkpoint_get_tensor(const lp_checkpoint *c, const char *name, float *dst, size_t n);
/* Copy byte blob `name` (exactly n bytes). */
lp_status lp_checkpoint_get_bytes(const lp_checkpoint *c, const char *name, void *dst, size_t n);
/* Integer scalars: LP_ERR_NOT_FOUND naming file and scalar if absent. */
lp_status lp_checkpoint_get_u64(const lp_checkpoint *c, const char *name, uint64_t *out);
lp_status lp_checkpoint_get_i64(const lp_checkpoint *c, const char *name, int64_t *out);
lp_status lp_checkpoint_get_rng(const lp_checkpoint *c, const char *name, lp_rng *r);
/* The JSON string, or NULL if none was set. Valid until close. */
const char *lp_checkpoint_json(const lp_checkpoint *c);

#ifdef __cplusplus
}
#endif
#endif
