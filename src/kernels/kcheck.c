/* Argument validation shared by the kernels (see kcheck.h). */
#include "kernels/kcheck.h"

#include <string.h>

lp_status lpk_dims(const char *fn, size_t *numel, const char *names, const int64_t *dims, int n)
{
    int64_t prod = 1;
    const char *name = names;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(name, ",");
        if (dims[i] <= 0)
            return lp_error(LP_ERR_INVALID_ARG, "%s: dimension %.*s must be > 0, got %lld", fn, (int)len, name,
                            (long long)dims[i]);
        if (dims[i] > LPK_MAX_NUMEL / prod)
            return lp_error(LP_ERR_INVALID_ARG, "%s: dimensions %s overflow (product exceeds %lld elements)", fn,
                            names, (long long)LPK_MAX_NUMEL);
        prod *= dims[i];
        name += len + (name[len] == ',');
    }
    if (numel) *numel = (size_t)prod;
    return LP_OK;
}
