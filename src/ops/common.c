/* common.c: small helpers shared by the ops (src/ops/ops_internal.h). */
#include "ops_internal.h"

void crate__ops_colsum_acc(float *g, const float *x, size_t rows, size_t cols) {
  double acc[CRATE__OPS_COLBLOCK];
  for (size_t j0 = 0; j0 < cols; j0 += CRATE__OPS_COLBLOCK) {
    size_t nb = cols - j0 < CRATE__OPS_COLBLOCK ? cols - j0 : CRATE__OPS_COLBLOCK;
    for (size_t j = 0; j < nb; j++)
      acc[j] = 0.0;
    for (size_t i = 0; i < rows; i++) {
      const float *row = x + i * cols + j0;
      for (size_t j = 0; j < nb; j++)
        acc[j] += (double)row[j];
    }
    for (size_t j = 0; j < nb; j++)
      g[j0 + j] = (float)((double)g[j0 + j] + acc[j]);
  }
}
