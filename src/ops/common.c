/* common.c: small helpers shared by the ops (src/ops/ops_internal.h). */
#include "ops_internal.h"

/* Columns [j0, j0 + 16) (j0 + 16 <= cols), rows in order. */
CRATE__OPS_CLONES
static void colsum16(float *g, const float *x, size_t rows, size_t cols, size_t j0) {
  crate__v8d a0 = {0}, a1 = {0}, v0, v1;
  for (size_t i = 0; i < rows; i++) {
    crate__ld8(&v0, x + i * cols + j0);
    crate__ld8(&v1, x + i * cols + j0 + 8);
    a0 += v0;
    a1 += v1;
  }
  for (size_t j = 0; j < 8; j++) {
    g[j0 + j] = (float)((double)g[j0 + j] + a0[j]);
    g[j0 + 8 + j] = (float)((double)g[j0 + 8 + j] + a1[j]);
  }
}

void crate__ops_colsum_acc(float *g, const float *x, size_t rows, size_t cols) {
  /* g: (cols); x: (rows, cols) */
  const size_t nb = cols / 16;
  CRATE__OMP(parallel for schedule(static) if (rows * cols >= CRATE__OPS_PAR_MIN))
  for (size_t b = 0; b < nb; b++)
    colsum16(g, x, rows, cols, 16 * b);
  for (size_t j = 16 * nb; j < cols; j++) {
    double acc = 0.0;
    for (size_t i = 0; i < rows; i++)
      acc += (double)x[i * cols + j];
    g[j] = (float)((double)g[j] + acc);
  }
}
