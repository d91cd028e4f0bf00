/* fuzz/fuzz_common.h: scaffolding shared by the libFuzzer harnesses (fuzz/fuzz_*.c).
 *
 * Each harness is one translation unit that includes this header once:
 *
 *   LPFUZZ_INIT(64u << 20)                       // memory budget for lp_alloc
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
 *   {
 *       lpfuzz_begin();
 *       const char *path = lpfuzz_write("x.bin", data, size);   // only for file-based loaders
 *       lp_status st = lp_xxx_load(&obj, path);
 *       lpfuzz_status(st, LPFUZZ_LENIENT, size);
 *       if (st == LP_OK) { ... use obj ...; lp_xxx_free(obj); }
 *       lpfuzz_end();                             // deletes temp files, checks lp_alloc balance
 *       return 0;
 *   }
 *
 * What every harness checks besides the sanitizers (ASan, UBSan, LeakSanitizer):
 *   - every lp_alloc buffer is released (lp_mem_total_current() returns to its value before
 *     the input): a leak through the accounting allocator aborts at once, naming the bytes;
 *   - a failure leaves a message (house rule: a status never comes without one) and the status
 *     is a valid lp_status;
 *   - with LPFUZZ_STRICT: LP_ERR_NOMEM from an input far smaller than the budget means the parser
 *     allocated what the file declared before checking it against the file: a finding.
 * The allocator budget (lp_mem_set_limit) keeps a hostile size from taking the machine: what
 * lp_alloc would give past it fails cleanly with LP_ERR_NOMEM.
 *
 * LPFUZZ_VERBOSE=1 in the environment prints every status checked (to see why a seed fails).
 *
 * Temporary files live in one directory per process, /tmp/lpfuzz-XXXXXX, created at start,
 * emptied after every input and removed at exit. */
#ifndef LEANPROP_FUZZ_COMMON_H
#define LEANPROP_FUZZ_COMMON_H

#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leanprop/alloc.h"
#include "leanprop/status.h"
#include "leanprop/threads.h"

#define LPFUZZ_MAX_FILES 8
#define LPFUZZ_LENIENT 0   /* LP_ERR_NOMEM is an acceptable answer (outputs may exceed the input) */
#define LPFUZZ_STRICT 1    /* outputs are bounded by the input: NOMEM means an unchecked size */

static char lpfuzz_dir[64];
static char lpfuzz_files[LPFUZZ_MAX_FILES][160];
static int lpfuzz_nfiles;
static size_t lpfuzz_budget;
static size_t lpfuzz_mem_before;

static inline void lpfuzz_cleanup_dir(void)
{
    for (int i = 0; i < lpfuzz_nfiles; i++) unlink(lpfuzz_files[i]);
    lpfuzz_nfiles = 0;
    if (lpfuzz_dir[0]) rmdir(lpfuzz_dir);
}

static inline void lpfuzz_die(const char *what)
{
    fprintf(stderr, "lpfuzz: %s\n", what);
    fflush(stderr);
    lpfuzz_cleanup_dir(); /* libFuzzer keeps the input itself */
    abort();
}

static inline void lpfuzz_setup(size_t budget)
{
    lpfuzz_budget = budget;
    lp_threads_set(1);
    lp_mem_set_limit(budget);
    snprintf(lpfuzz_dir, sizeof lpfuzz_dir, "/tmp/lpfuzz-XXXXXX");
    if (!mkdtemp(lpfuzz_dir)) lpfuzz_die("cannot create the temporary directory");
    atexit(lpfuzz_cleanup_dir);
    __sanitizer_set_death_callback(lpfuzz_cleanup_dir); /* sanitizer reports end the process too */
}

/* libFuzzer calls LLVMFuzzerInitialize once before the first input. */
#define LPFUZZ_INIT(budget)                                                \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                     \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                      \
    {                                                                      \
        (void)argc; (void)argv;                                            \
        lpfuzz_setup(budget);                                              \
        return 0;                                                          \
    }
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void lpfuzz_begin(void)
{
    lp_error_clear();
    lpfuzz_mem_before = lp_mem_total_current();
}

/* Path "<tempdir>/<name>" (static buffer per file slot; name must be unique within an input). */
static inline const char *lpfuzz_path(const char *name)
{
    if (lpfuzz_nfiles >= LPFUZZ_MAX_FILES) lpfuzz_die("too many temporary files");
    char *p = lpfuzz_files[lpfuzz_nfiles++];
    snprintf(p, sizeof lpfuzz_files[0], "%s/%s", lpfuzz_dir, name);
    return p;
}

/* Write data to "<tempdir>/<name>"; removed by lpfuzz_end. */
static inline const char *lpfuzz_write(const char *name, const void *data, size_t n)
{
    const char *p = lpfuzz_path(name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) lpfuzz_die("cannot create a temporary file");
    const char *s = data;
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k <= 0) lpfuzz_die("cannot write a temporary file");
        s += k;
        n -= (size_t)k;
    }
    close(fd);
    return p;
}

/* Checks on the status a parser returned (see the top of the file). */
static inline void lpfuzz_status(lp_status st, int strict, size_t input_size)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("LPFUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "lpfuzz: %s%s%s\n", lp_status_name(st), st ? ": " : "", st ? lp_error_message() : "");
    if ((int)st < 0 || st >= LP_STATUS_COUNT) lpfuzz_die("invalid lp_status value");
    if (st == LP_OK) return;
    if (st == LP_ERR_INTERNAL) {
        fprintf(stderr, "lpfuzz: LP_ERR_INTERNAL (a broken invariant): %s\n", lp_error_message());
        lpfuzz_die("internal error");
    }
    if (lp_error_message()[0] == '\0') {
        fprintf(stderr, "lpfuzz: status '%s' without a message\n", lp_status_name(st));
        lpfuzz_die("failure without a message");
    }
    if (strict && st == LP_ERR_NOMEM && input_size < lpfuzz_budget / 2048) {
        fprintf(stderr, "lpfuzz: out of memory on a %zu-byte input (budget %zu): %s\n", input_size, lpfuzz_budget,
                lp_error_message());
        lpfuzz_die("allocation sized from the file before it was checked");
    }
}

/* Delete this input's files; abort if lp_alloc'd memory was not returned. */
static inline void lpfuzz_end(void)
{
    for (int i = 0; i < lpfuzz_nfiles; i++) unlink(lpfuzz_files[i]);
    lpfuzz_nfiles = 0;
    size_t now = lp_mem_total_current();
    if (now != lpfuzz_mem_before) {
        fprintf(stderr, "lpfuzz: lp_alloc leak: %zu bytes before the input, %zu after\n", lpfuzz_mem_before, now);
        lpfuzz_die("lp_alloc leak");
    }
}

/* Split data at the separator LPFUZZ_SEP into at most `max` parts: part i is
 * data[off[i], off[i] + len[i]). Returns the number of parts (>= 1); the last part takes
 * the rest (separators included) when there are more. */
#define LPFUZZ_SEP "\n@@@\n" /* also written by fuzz/gen_corpus.c and fuzz/gen_corpus.py */
static inline int lpfuzz_split(const uint8_t *data, size_t size, int max, size_t *off, size_t *len)
{
    const size_t sl = sizeof LPFUZZ_SEP - 1;
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; n < max - 1 && i + sl <= size; i++) {
        if (memcmp(data + i, LPFUZZ_SEP, sl) == 0) {
            off[n] = start;
            len[n] = i - start;
            n++;
            start = i + sl;
            i = start - 1;
        }
    }
    off[n] = start;
    len[n] = size - start;
    return n + 1;
}

/* NUL-terminated malloc'd copy (for parsers that take C strings). */
static inline char *lpfuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) lpfuzz_die("out of memory in the harness");
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
