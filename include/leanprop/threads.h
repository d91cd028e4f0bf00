/* leanprop/threads.h: thread count for OpenMP loops and OpenBLAS.
 *
 * Default: $LEANPROP_THREADS if set, else the number of online CPUs.
 *   lp_threads_init();        // read the environment once (idempotent)
 *   lp_threads_set(2);        // OpenMP and OpenBLAS both use 2 threads
 */
#ifndef LEANPROP_THREADS_H
#define LEANPROP_THREADS_H

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

void lp_threads_init(void);
lp_status lp_threads_set(int n);
int lp_threads_get(void);

#ifdef __cplusplus
}
#endif
#endif
