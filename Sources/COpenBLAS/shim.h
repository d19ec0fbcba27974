/* OpenBLAS's CBLAS interface (Debian ships no cblas.pc; the openblas pkg-config module finds it). */
#ifndef SKIPD_COPENBLAS_SHIM_H
#define SKIPD_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
