/* The accounting allocator: every large buffer, tagged by category.
 *
 * Each block carries a 64-byte header (size, category, magic) in front of the
 * 64-byte-aligned payload, so lp_free needs no lookup table. Counters are
 * atomics so OpenMP threads may allocate. The total peak is the peak of the
 * sum (tracked with compare-and-swap), not a sum of per-category peaks. */
#include "leanprop/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_ALIGN 64
#define LP_MAGIC 0x6c7041616c6c6f63ULL /* "lpAalloc" */

typedef struct {
    uint64_t magic;
    size_t bytes;
    int category;
    char pad[LP_ALIGN - sizeof(uint64_t) - sizeof(size_t) - sizeof(int)];
} block_header;

_Static_assert(sizeof(block_header) == LP_ALIGN, "header keeps payload aligned");

static _Atomic size_t g_current[LP_MEM_COUNT];
static _Atomic size_t g_peak[LP_MEM_COUNT];
static _Atomic size_t g_total;
static _Atomic size_t g_total_peak;
static _Atomic size_t g_n_allocs;
static _Atomic size_t g_limit;
static _Atomic size_t g_fail_countdown;

static const char *const g_cat_names[LP_MEM_COUNT] = {
    "weights", "gradients", "optimizer", "activations", "scratch", "data",
};

const char *lp_mem_category_name(lp_mem_category cat)
{
    if ((int)cat < 0 || cat >= LP_MEM_COUNT) return "invalid";
    return g_cat_names[cat];
}

static void raise_peak(_Atomic size_t *peak, size_t value)
{
    size_t old = atomic_load(peak);
    while (value > old && !atomic_compare_exchange_weak(peak, &old, value)) {}
}

static void account_add(int cat, size_t bytes)
{
    size_t c = atomic_fetch_add(&g_current[cat], bytes) + bytes;
    raise_peak(&g_peak[cat], c);
    size_t t = atomic_fetch_add(&g_total, bytes) + bytes;
    raise_peak(&g_total_peak, t);
}

static void account_sub(int cat, size_t bytes)
{
    atomic_fetch_sub(&g_current[cat], bytes);
    atomic_fetch_sub(&g_total, bytes);
}

/* Returns nonzero when a test asked this allocation to fail. */
static int injected_failure(void)
{
    size_t n = atomic_load(&g_fail_countdown);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&g_fail_countdown, &n, n - 1)) return n == 1;
    }
    return 0;
}

static int over_budget(size_t bytes)
{
    size_t limit = atomic_load(&g_limit);
    return limit && atomic_load(&g_total) + bytes > limit;
}

void *lp_alloc(lp_mem_category cat, size_t bytes)
{
    char b1[32], b2[32];
    if ((int)cat < 0 || cat >= LP_MEM_COUNT) {
        lp_error(LP_ERR_INVALID_ARG, "lp_alloc: invalid memory category %d", (int)cat);
        return NULL;
    }
    if (bytes == 0) {
        lp_error(LP_ERR_INVALID_ARG, "lp_alloc: zero-byte %s buffer", g_cat_names[cat]);
        return NULL;
    }
    if (bytes > SIZE_MAX - 2 * LP_ALIGN) {
        lp_error(LP_ERR_NOMEM, "lp_alloc: %s buffer of %zu bytes overflows", g_cat_names[cat], bytes);
        return NULL;
    }
    if (over_budget(bytes)) {
        lp_error(LP_ERR_NOMEM, "memory budget exceeded: %s buffer of %s would bring the total past %s",
                 g_cat_names[cat], lp_format_bytes(bytes, b1, sizeof b1),
                 lp_format_bytes(atomic_load(&g_limit), b2, sizeof b2));
        return NULL;
    }
    size_t padded = (bytes + LP_ALIGN - 1) / LP_ALIGN * LP_ALIGN;
    block_header *h = injected_failure() ? NULL : aligned_alloc(LP_ALIGN, sizeof(block_header) + padded);
    if (!h) {
        lp_error(LP_ERR_NOMEM, "out of memory allocating %s for %s",
                 lp_format_bytes(bytes, b1, sizeof b1), g_cat_names[cat]);
        return NULL;
    }
    memset(h, 0, sizeof(block_header) + padded);
    h->magic = LP_MAGIC;
    h->bytes = bytes;
    h->category = cat;
    account_add(cat, bytes);
    atomic_fetch_add(&g_n_allocs, 1);
    return h + 1;
}

void *lp_alloc_array(lp_mem_category cat, size_t n, size_t elem_size)
{
    if (elem_size && n > SIZE_MAX / elem_size) {
        lp_error(LP_ERR_INVALID_ARG, "lp_alloc: %zu x %zu bytes overflows size_t (%s)", n, elem_size,
                 lp_mem_category_name(cat));
        return NULL;
    }
    return lp_alloc(cat, n * elem_size);
}

lp_status lp_alloc_checked(void **out, lp_mem_category cat, size_t n, size_t elem_size)
{
    if (!out) return lp_error(LP_ERR_INVALID_ARG, "lp_alloc_checked: NULL output pointer");
    *out = lp_alloc_array(cat, n, elem_size);
    if (*out) return LP_OK;
    return (n == 0 || elem_size == 0) ? LP_ERR_INVALID_ARG : LP_ERR_NOMEM;
}

static block_header *header_of(const void *ptr)
{
    block_header *h = (block_header *)ptr - 1;
    return h->magic == LP_MAGIC ? h : NULL;
}

void lp_free(void *ptr)
{
    if (!ptr) return;
    block_header *h = header_of(ptr);
    if (!h) return; /* not ours: refuse rather than corrupt the heap */
    account_sub(h->category, h->bytes);
    atomic_fetch_sub(&g_n_allocs, 1);
    h->magic = 0;
    free(h);
}

void *lp_realloc(void *ptr, size_t bytes)
{
    if (!ptr) return lp_alloc(LP_MEM_SCRATCH, bytes);
    block_header *h = header_of(ptr);
    if (!h) {
        lp_error(LP_ERR_INVALID_ARG, "lp_realloc: pointer not from lp_alloc");
        return NULL;
    }
    void *n = lp_alloc(h->category, bytes);
    if (!n) return NULL;
    memcpy(n, ptr, h->bytes < bytes ? h->bytes : bytes);
    lp_free(ptr);
    return n;
}

size_t lp_alloc_size(const void *ptr)
{
    block_header *h = ptr ? header_of(ptr) : NULL;
    return h ? h->bytes : 0;
}

lp_mem_category lp_alloc_category(const void *ptr)
{
    block_header *h = ptr ? header_of(ptr) : NULL;
    return h ? (lp_mem_category)h->category : LP_MEM_COUNT;
}

void lp_alloc_retag(void *ptr, lp_mem_category cat)
{
    block_header *h = ptr ? header_of(ptr) : NULL;
    if (!h || (int)cat < 0 || cat >= LP_MEM_COUNT || h->category == (int)cat) return;
    atomic_fetch_sub(&g_current[h->category], h->bytes);
    size_t c = atomic_fetch_add(&g_current[cat], h->bytes) + h->bytes;
    raise_peak(&g_peak[cat], c);
    h->category = cat;
}

void lp_mem_get_stats(lp_mem_stats *out)
{
    if (!out) return;
    for (int i = 0; i < LP_MEM_COUNT; i++) {
        out->current[i] = atomic_load(&g_current[i]);
        out->peak[i] = atomic_load(&g_peak[i]);
    }
    out->total_current = atomic_load(&g_total);
    out->total_peak = atomic_load(&g_total_peak);
    out->n_allocs = atomic_load(&g_n_allocs);
    out->limit = atomic_load(&g_limit);
}

size_t lp_mem_current(lp_mem_category cat)
{
    return ((int)cat >= 0 && cat < LP_MEM_COUNT) ? atomic_load(&g_current[cat]) : 0;
}

size_t lp_mem_peak(lp_mem_category cat)
{
    return ((int)cat >= 0 && cat < LP_MEM_COUNT) ? atomic_load(&g_peak[cat]) : 0;
}

size_t lp_mem_total_current(void) { return atomic_load(&g_total); }
size_t lp_mem_total_peak(void) { return atomic_load(&g_total_peak); }

void lp_mem_reset_peak(void)
{
    for (int i = 0; i < LP_MEM_COUNT; i++) atomic_store(&g_peak[i], atomic_load(&g_current[i]));
    atomic_store(&g_total_peak, atomic_load(&g_total));
}

void lp_mem_set_limit(size_t bytes) { atomic_store(&g_limit, bytes); }
void lp_mem_fail_after(size_t n) { atomic_store(&g_fail_countdown, n); }

const char *lp_format_bytes(size_t bytes, char *buf, size_t buf_size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) { v /= 1024.0; u++; }
    if (u == 0) snprintf(buf, buf_size, "%zu B", bytes);
    else snprintf(buf, buf_size, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
    return buf;
}

void lp_mem_format_report(char *buf, size_t buf_size)
{
    lp_mem_stats s;
    lp_mem_get_stats(&s);
    size_t used = 0;
    char a[32], b[32];
    buf[0] = '\0';
    for (int i = 0; i < LP_MEM_COUNT && used < buf_size; i++) {
        used += snprintf(buf + used, buf_size - used, "%-12s %10s (peak %10s)\n", g_cat_names[i],
                         lp_format_bytes(s.current[i], a, sizeof a), lp_format_bytes(s.peak[i], b, sizeof b));
    }
    if (used < buf_size)
        snprintf(buf + used, buf_size - used, "%-12s %10s (peak %10s)\n", "total",
                 lp_format_bytes(s.total_current, a, sizeof a), lp_format_bytes(s.total_peak, b, sizeof b));
}

static size_t read_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kib = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0) { sscanf(line + klen, " %zu", &kib); break; }
    }
    fclose(f);
    return kib * 1024;
}

size_t lp_mem_rss_bytes(void) { return read_status_kib("VmRSS:"); }
size_t lp_mem_rss_peak_bytes(void) { return read_status_kib("VmHWM:"); }
