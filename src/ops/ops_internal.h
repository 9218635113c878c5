/* ops_internal.h: helpers shared by the files of src/ops/ (never installed).
 * Only the files of src/ops/ include it. */
#ifndef CRATE_OPS_INTERNAL_H
#define CRATE_OPS_INTERNAL_H

#include "crate/ops.h"
#include "internal.h"

/* Column block used by the double-accumulating column sums: a stack array of
 * this many doubles replaces any allocation. */
#define CRATE__OPS_COLBLOCK 64

/* g (cols) += sum over the rows of x (rows, cols), accumulated in double. */
void crate__ops_colsum_acc(float *g, const float *x, size_t rows, size_t cols);

#endif
