/* leanprop/fileio.h: whole-file reads, crash-safe writes, paths, CRC32.
 *
 * Reading a small file (config, index) with a size bound:
 *   char *text; size_t len;
 *   LP_TRY(lp_file_read_all("config.json", 1 << 20, LP_MEM_SCRATCH, &text, &len));
 *   ... text[len] == '\0' ...
 *   lp_free(text);
 *
 * Writing a file atomically (readers see the old file or the new one, never
 * a half-written one, even after a crash or power loss):
 *   lp_atomic_writer *w;
 *   LP_TRY(lp_atomic_writer_open(&w, "ckpt.bin"));   // temp file beside the target
 *   if (lp_atomic_writer_write(w, buf, n) != LP_OK) { lp_atomic_writer_abort(w); return ...; }
 *   LP_TRY(lp_atomic_writer_commit(w));              // fflush, fsync, rename, fsync dir; frees w
 *   lp_atomic_sweep_temps("ckpt.bin", NULL);        // temps of earlier killed saves
 *
 * Checksums: uint32_t c = lp_crc32(0, buf, n); c = lp_crc32(c, more, m);  (zlib's CRC-32)
 */
#ifndef LEANPROP_FILEIO_H
#define LEANPROP_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include "leanprop/alloc.h"
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest path the path helpers produce (including the NUL). */
#define LP_PATH_MAX 4096

/* Read the whole file into a new lp_alloc buffer of category `cat`, with a
 * NUL after the last byte (so text can be used as a C string); *out_len (may
 * be NULL) receives the byte count. A file larger than max_bytes is
 * LP_ERR_FORMAT; a missing file LP_ERR_NOT_FOUND; other failures LP_ERR_IO;
 * every message names the file. Free with lp_free. */
lp_status lp_file_read_all(const char *path, size_t max_bytes, lp_mem_category cat, char **out, size_t *out_len);

/* 1 if path exists (any type) / is a regular file / is a directory, else 0. */
int lp_path_exists(const char *path);
int lp_file_exists(const char *path);
int lp_dir_exists(const char *path);
/* Size of a file in bytes. */
lp_status lp_file_size(const char *path, uint64_t *out);
/* Create directory `path` (mode 0755) unless it already exists as a directory;
 * parents must exist. */
lp_status lp_dir_create(const char *path);
/* Remove a file; a missing file is not an error. */
lp_status lp_file_remove(const char *path);

/* dst = a + "/" + b (no doubled slash; a "" or b absolute gives b).
 * LP_ERR_INVALID_ARG if it does not fit dst_size. */
lp_status lp_path_join(char *dst, size_t dst_size, const char *a, const char *b);
/* Directory part of path ("." when there is none, "/" for "/x"). */
lp_status lp_path_dirname(char *dst, size_t dst_size, const char *path);
/* Pointer to the last component of path (inside path). */
const char *lp_path_basename(const char *path);

typedef struct lp_atomic_writer lp_atomic_writer;

/* Create "<path>.tmp-XXXXXX" in the target's directory. The final file gets
 * the mode of the file it replaces, else 0644. */
lp_status lp_atomic_writer_open(lp_atomic_writer **out, const char *path);
/* Append bytes. After a failure every later write and the commit fail too
 * (the first error is kept); the caller still calls commit or abort. */
lp_status lp_atomic_writer_write(lp_atomic_writer *w, const void *data, size_t n);
/* Bytes written so far. */
uint64_t lp_atomic_writer_tell(const lp_atomic_writer *w);
/* fflush, fsync, close, rename over the target, fsync the directory. Always
 * frees w; on any failure the temp file is removed and the old target is
 * left untouched. */
lp_status lp_atomic_writer_commit(lp_atomic_writer *w);
/* Remove the temp file and free w (NULL is a no-op). Leaves the target alone
 * and the current error message unchanged. */
void lp_atomic_writer_abort(lp_atomic_writer *w);
/* Remove the temp files "<name>.tmp-XXXXXX" that killed writers (a crash, SIGKILL, power
 * loss between open and commit) left behind. `path` a directory: every such file in it; else
 * only those of that target, beside it. A missing directory is not an error; *removed (may be
 * NULL) gets the count. Call it after a successful commit, when no other writer is saving to
 * the same target (directory): it would remove that writer's temp file too. */
lp_status lp_atomic_sweep_temps(const char *path, int *removed);
/* One-shot: write `n` bytes to `path` atomically. */
lp_status lp_file_write_atomic(const char *path, const void *data, size_t n);

/* Testing aid: make atomic-writer writes fail (LP_ERR_IO, as a full disk
 * would) once `n` more bytes have been written in this process; fires once,
 * then writes work again; 0 = never. Not thread-safe; for tests only. */
void lp_fileio_fail_after_bytes(uint64_t n);

/* CRC-32 (zlib / PNG / gzip polynomial). Start with crc = 0; chain calls to
 * checksum data in pieces. */
uint32_t lp_crc32(uint32_t crc, const void *data, size_t n);
/* CRC-32 of a whole file, read in chunks. */
lp_status lp_file_crc32(const char *path, uint32_t *out);

#ifdef __cplusplus
}
#endif
#endif
