/* leanprop/alloc.h: the accounting allocator.
 *
 * Every large buffer in leanprop comes from here, tagged with what it is for.
 * The allocator keeps exact current and peak byte counts per category and in
 * total; every memory figure leanprop reports comes from these counts.
 *
 *   float *w = lp_alloc(LP_MEM_WEIGHTS, n * sizeof(float));   // zeroed, 64-byte aligned
 *   if (!w) return lp_error_message() ... (status LP_ERR_NOMEM already recorded)
 *   lp_free(w);
 *   lp_mem_stats s; lp_mem_get_stats(&s);
 *   printf("activations peak %zu\n", s.peak[LP_MEM_ACTIVATIONS]);
 */
#ifndef LEANPROP_ALLOC_H
#define LEANPROP_ALLOC_H

#include <stddef.h>
#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_MEM_WEIGHTS = 0,   /* model parameters (trainable or frozen, incl. NF4 blocks) */
    LP_MEM_GRADIENTS,     /* parameter gradients */
    LP_MEM_OPTIMIZER,     /* optimizer state (Adam moments, momentum) */
    LP_MEM_ACTIVATIONS,   /* tensors saved in forward for backward */
    LP_MEM_SCRATCH,       /* temporaries live only inside one call */
    LP_MEM_DATA,          /* datasets, token buffers, graphs */
    LP_MEM_COUNT
} lp_mem_category;

typedef struct {
    size_t current[LP_MEM_COUNT];
    size_t peak[LP_MEM_COUNT];
    size_t total_current;
    size_t total_peak;      /* peak of the sum, not the sum of peaks */
    size_t n_allocs;        /* live allocations */
    size_t limit;           /* 0 = no budget */
} lp_mem_stats;

/* Lower-case name of a category: "weights", "gradients", "optimizer",
 * "activations", "scratch", "data". */
const char *lp_mem_category_name(lp_mem_category cat);

/* Zeroed, 64-byte-aligned allocation of `bytes` bytes. Returns NULL and
 * records LP_ERR_NOMEM (with the category and size) on failure, when the
 * budget would be exceeded, or when bytes == 0 / cat is invalid
 * (LP_ERR_INVALID_ARG). */
void *lp_alloc(lp_mem_category cat, size_t bytes);

/* n * elem_size bytes with overflow check. */
void *lp_alloc_array(lp_mem_category cat, size_t n, size_t elem_size);

/* Status-returning form: *out = buffer of n*elem_size bytes. */
lp_status lp_alloc_checked(void **out, lp_mem_category cat, size_t n, size_t elem_size);

/* Grow or shrink, keeping contents (new bytes zeroed). ptr may be NULL. */
void *lp_realloc(void *ptr, size_t bytes);

/* Release a buffer from lp_alloc*. NULL is a no-op. */
void lp_free(void *ptr);

/* Bytes of a live allocation and its category. */
size_t lp_alloc_size(const void *ptr);
lp_mem_category lp_alloc_category(const void *ptr);

/* Move a live buffer to another category (e.g. data -> weights). */
void lp_alloc_retag(void *ptr, lp_mem_category cat);

void lp_mem_get_stats(lp_mem_stats *out);
size_t lp_mem_current(lp_mem_category cat);
size_t lp_mem_peak(lp_mem_category cat);
size_t lp_mem_total_current(void);
size_t lp_mem_total_peak(void);
/* Peaks := current values (start a new measurement window). */
void lp_mem_reset_peak(void);

/* Budget in bytes for the total (0 = none). Allocations past it fail. */
void lp_mem_set_limit(size_t bytes);

/* Testing aid: make the n-th allocation from now fail (0 = never). */
void lp_mem_fail_after(size_t n);

/* Write "weights 1.2 MiB (peak 1.2 MiB), ..." style report into buf. */
void lp_mem_format_report(char *buf, size_t buf_size);
/* "12.3 MiB" style size into buf (at least 16 bytes). */
const char *lp_format_bytes(size_t bytes, char *buf, size_t buf_size);

/* Resident set size of this process in bytes from /proc (cross-check only). */
size_t lp_mem_rss_bytes(void);
size_t lp_mem_rss_peak_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
