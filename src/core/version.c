#include "leanprop/version.h"
const char *lp_version(void) { return LEANPROP_VERSION; }
