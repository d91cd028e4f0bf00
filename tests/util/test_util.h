/* Shared helpers for the cmocka test binaries.
 *
 *   const char *p = lp_test_shared("data/graphs/cora.npz");
 *   if (!p) { LP_SKIP("shared data not found (set LEANPROP_SHARED)"); }
 */
#ifndef LEANPROP_TEST_UTIL_H
#define LEANPROP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "leanprop/rng.h"

/* Skip the current test with a reason the runner prints. */
#define LP_SKIP(...) do { print_message("[ SKIP REASON ] " __VA_ARGS__); print_message("\n"); skip(); } while (0)

/* Fail unless status is LP_OK, printing the library's message. */
#define LP_ASSERT_OK(expr) do { lp_status st__ = (expr); \
    if (st__ != LP_OK) fail_msg("%s -> %s: %s", #expr, lp_status_name(st__), lp_error_message()); } while (0)

/* Assert |a-b| <= atol + rtol*|b|, with a message naming what differs. */
#define LP_ASSERT_CLOSE(a, b, atol, rtol, what) do { double a__ = (a), b__ = (b); \
    if (!(fabs(a__ - b__) <= (atol) + (rtol) * fabs(b__))) \
        fail_msg("%s: %.9g vs %.9g (atol %g rtol %g)", (what), a__, b__, (double)(atol), (double)(rtol)); } while (0)

/* Absolute path of a file under the shared folder ($LEANPROP_SHARED, else
 * ../shared from the project root), or NULL if it does not exist. The result
 * lives in a static ring of buffers (valid for the next 8 calls). */
const char *lp_test_shared(const char *relative);

/* Max over i of |a[i]-b[i]| / (atol + rtol*|b[i]|); <= 1 means all close.
 * *worst receives the index of the worst element (may be NULL). */
double lp_test_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol, size_t *worst);

/* Fail with index and values unless every element is close. */
void lp_test_assert_allclose(const float *a, const float *b, size_t n, double atol, double rtol, const char *what);

/* Fill with N(0,1) from a seeded generator. */
void lp_test_randn(lp_rng *r, float *x, size_t n);

/* Write `bytes` bytes to a fresh temporary file; returns its path (static ring). */
const char *lp_test_write_temp(const char *suffix, const void *data, size_t bytes);

#endif
