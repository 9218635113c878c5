/* linear.c: the affine map y = x W^T + b and the residual add/subtract
 * (MODEL.md §1 GEMM table, §3.2, §3.6, §3.8, §3.9; §8 "Linear").
 *
 * Used for the patch embedding, qkv, out-projection, the decoder dictionary
 * step H = E B^(1) (no bias) and decoder_pred.  Row-major over the M token
 * rows; weights [out, in].  The _ref twins are double-precision loops.
 * Non-goals: fused activations, strided row views.
 */
#include "ops_internal.h"

/* ---- linear ----------------------------------------------------------------- */

void crate_linear_forward(float *y, const float *x, const float *W, const float *b, size_t M,
                          size_t din, size_t dout) {
  /* y: (M, dout); x: (M, din); W: (dout, din); b: (dout) or NULL */
  CRATE_ASSERT(y && x && W && din > 0 && dout > 0);
  crate__sgemm_par(false, true, M, dout, din, 1.0f, x, din, W, din, 0.0f, y, dout);
  if (b) {
    CRATE__OMP(parallel for schedule(static) if (M * dout >= CRATE__OPS_PAR_MIN))
    for (size_t i = 0; i < M; i++)
      for (size_t o = 0; o < dout; o++)
        y[i * dout + o] += b[o];
  }
}

void crate_linear_backward(float *gx, float *gW, float *gb, const float *gy, const float *x,
                           const float *W, size_t M, size_t din, size_t dout) {
  crate__linear_backward_ex(gx, gW, gb, gy, x, W, M, din, dout, true);
}

void crate__linear_backward_ex(float *gx, float *gW, float *gb, const float *gy, const float *x,
                               const float *W, size_t M, size_t din, size_t dout, bool acc) {
  /* gx: (M, din) or NULL; gW: (dout, din); gb: (dout) or NULL; gy: (M, dout);
   * x: (M, din); W: (dout, din).  Inverts y = x W^T + b. */
  CRATE_ASSERT(gW && gy && x && W && din > 0 && dout > 0);
  /* G_W += G_Y X^T  (row form: gW += gy^T x) */
  crate__sgemm_par(true, false, dout, din, M, 1.0f, gy, dout, x, din, 1.0f, gW, din);
  /* G_b += G_Y 1 */
  if (gb)
    crate__ops_colsum_acc(gb, gy, M, dout);
  /* G_X += W^T G_Y  (row form: gx += gy W) */
  if (gx)
    crate__sgemm_par(false, false, M, din, dout, 1.0f, gy, dout, W, din, acc ? 1.0f : 0.0f, gx,
                     din);
}

void crate_linear_forward_ref(double *y, const double *x, const double *W, const double *b,
                              size_t M, size_t din, size_t dout) {
  CRATE_ASSERT(y && x && W);
  for (size_t i = 0; i < M; i++)
    for (size_t o = 0; o < dout; o++) {
      double s = b ? b[o] : 0.0;
      for (size_t k = 0; k < din; k++)
        s += x[i * din + k] * W[o * din + k];
      y[i * dout + o] = s;
    }
}

void crate_linear_backward_ref(double *gx, double *gW, double *gb, const double *gy,
                               const double *x, const double *W, size_t M, size_t din,
                               size_t dout) {
  CRATE_ASSERT(gW && gy && x && W);
  for (size_t o = 0; o < dout; o++)
    for (size_t k = 0; k < din; k++) {
      double s = 0.0;
      for (size_t i = 0; i < M; i++)
        s += gy[i * dout + o] * x[i * din + k];
      gW[o * din + k] += s;
    }
  if (gb)
    for (size_t o = 0; o < dout; o++) {
      double s = 0.0;
      for (size_t i = 0; i < M; i++)
        s += gy[i * dout + o];
      gb[o] += s;
    }
  if (gx)
    for (size_t i = 0; i < M; i++)
      for (size_t k = 0; k < din; k++) {
        double s = 0.0;
        for (size_t o = 0; o < dout; o++)
          s += gy[i * dout + o] * W[o * din + k];
        gx[i * din + k] += s;
      }
}

/* ---- residual ----------------------------------------------------------------- */

void crate_residual_forward(float *y, const float *x, const float *f, float alpha, size_t count) {
  /* y, x, f: (count); y may alias x */
  CRATE_ASSERT(y && x && f);
  CRATE__OMP(parallel for schedule(static) if (count >= CRATE__OPS_PAR_MIN))
  for (size_t i = 0; i < count; i++)
    y[i] = x[i] + alpha * f[i];
}

void crate_residual_backward(float *gx, float *gf, const float *gy, float alpha, size_t count) {
  /* gx, gf, gy: (count).  Inverts y = x + alpha f. */
  CRATE_ASSERT(gy);
  if (gx) {
    CRATE__OMP(parallel for schedule(static) if (count >= CRATE__OPS_PAR_MIN))
    for (size_t i = 0; i < count; i++)
      gx[i] += gy[i];
  }
  if (gf) {
    CRATE__OMP(parallel for schedule(static) if (count >= CRATE__OPS_PAR_MIN))
    for (size_t i = 0; i < count; i++)
      gf[i] += alpha * gy[i];
  }
}
