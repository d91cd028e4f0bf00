#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING 8
static char g_paths[RING][4096];
static int g_next;

static char *next_buf(void)
{
    char *b = g_paths[g_next];
    g_next = (g_next + 1) % RING;
    return b;
}

const char *lp_test_shared(const char *relative)
{
    const char *root = getenv("LEANPROP_SHARED");
    char *buf = next_buf();
    snprintf(buf, 4096, "%s/%s", root && *root ? root : "../shared", relative);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

double lp_test_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol, size_t *worst)
{
    double w = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (atol + rtol * fabs((double)b[i]));
        if (!(r <= w)) { w = r; wi = i; } /* NaN counts as worst */
        if (isnan(r)) { w = INFINITY; wi = i; break; }
    }
    if (worst) *worst = wi;
    return w;
}

void lp_test_assert_allclose(const float *a, const float *b, size_t n, double atol, double rtol, const char *what)
{
    size_t wi;
    double r = lp_test_close_ratio(a, b, n, atol, rtol, &wi);
    if (!(r <= 1.0))
        fail_msg("%s: element %zu of %zu differs: %.9g vs %.9g (atol %g rtol %g, ratio %.3g)", what, wi, n,
                 (double)a[wi], (double)b[wi], atol, rtol, r);
}

void lp_test_randn(lp_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = lp_rng_normal(r);
}

const char *lp_test_write_temp(const char *suffix, const void *data, size_t bytes)
{
    char *buf = next_buf();
    snprintf(buf, 4096, "/tmp/leanprop-test-XXXXXX%s", suffix ? suffix : "");
    int fd = mkstemps(buf, suffix ? (int)strlen(suffix) : 0);
    if (fd < 0) return NULL;
    size_t off = 0;
    while (off < bytes) {
        ssize_t w = write(fd, (const char *)data + off, bytes - off);
        if (w <= 0) { close(fd); return NULL; }
        off += (size_t)w;
    }
    close(fd);
    return buf;
}
