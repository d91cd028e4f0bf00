/* leanprop/version.h */
#ifndef LEANPROP_VERSION_H
#define LEANPROP_VERSION_H
#define LEANPROP_VERSION "0.1.0"
const char *lp_version(void);
#endif
