/* ista.c: the CRATE sparsification step, one non-negative ISTA step in the
 * 2-product form (MODEL.md §3.6, §8 "ISTA"; MATH.md §2.4; open choice O8).
 *
 * Column form:  R = A - D A,  U = A + eta D^T R - eta lambda,  X' = ReLU(U).
 * Row-token memory (a = A^T, rows are tokens):
 *   r = a - a D^T        (GEMM 1)
 *   u = a + eta r D - eta lambda      (GEMM 2)
 *   y = max(u, 0)
 * The cache is r; the pre-activation sign is y > 0 (equivalent to U > 0, and
 * ReLU'(0) = 0 as in PyTorch).  There is no residual around ISTA.
 * Non-goals: the 3-product official form (equal in exact arithmetic),
 * iterated ISTA (src/math/ista.c).
 */
#include "ops_internal.h"

size_t crate_ista_scratch_size(size_t M, size_t d) {
  return 2 * M * d;
}

void crate_ista_forward(float *y, float *r, const float *a, const float *D, double eta,
                        double lambda, size_t M, size_t d) {
  /* y, r, a: (M, d); D: (d, d) */
  CRATE_ASSERT(y && r && a && D && d > 0);
  const size_t n = M * d;
  const float shift = (float)(eta * lambda);
  CRATE__OMP(parallel for schedule(static) if (n >= CRATE__OPS_PAR_MIN))
  for (size_t i = 0; i < n; i++) {
    r[i] = a[i];
    y[i] = a[i] - shift;
  }
  /* R = A - D A  (row form: r -= a D^T) */
  crate__sgemm_par(false, true, M, d, d, -1.0f, a, d, D, d, 1.0f, r, d);
  /* U = A + eta D^T R - eta lambda  (row form: u += eta r D) */
  crate__sgemm_par(false, false, M, d, d, (float)eta, r, d, D, d, 1.0f, y, d);
  CRATE__OMP(parallel for schedule(static) if (n >= CRATE__OPS_PAR_MIN))
  for (size_t i = 0; i < n; i++)
    y[i] = y[i] < 0.0f ? 0.0f : y[i]; /* NaN propagates, as in PyTorch */
}

void crate_ista_backward(float *ga, float *gD, float *scratch, const float *y, const float *r,
                         const float *gy, const float *a, const float *D, double eta, size_t M,
                         size_t d) {
  crate__ista_backward_ex(ga, gD, scratch, y, r, gy, a, D, eta, M, d, true);
}

void crate__ista_backward_ex(float *ga, float *gD, float *scratch, const float *y, const float *r,
                             const float *gy, const float *a, const float *D, double eta, size_t M,
                             size_t d, bool acc) {
  /* ga, gy, y, r, a: (M, d); gD, D: (d, d); scratch: 2 M d floats */
  CRATE_ASSERT(ga && gD && scratch && y && r && gy && a && D && d > 0);
  const size_t n = M * d;
  float *gU = scratch, *gR = scratch + n;
  /* Forward: X' = ReLU(U).  G_U = G_X' * 1[U > 0]. */
  CRATE__OMP(parallel for schedule(static) if (n >= CRATE__OPS_PAR_MIN))
  for (size_t i = 0; i < n; i++)
    gU[i] = y[i] > 0.0f ? gy[i] : 0.0f;
  /* Forward: U = A + eta D^T R.  G_R = eta D G_U  (row form: gR = eta gU D^T). */
  crate__sgemm_par(false, true, M, d, d, (float)eta, gU, d, D, d, 0.0f, gR, d);
  /* Forward: R = A - D A.  G_A += G_U + G_R - D^T G_R  (row form: gA += gU + gR - gR D). */
  CRATE__OMP(parallel for schedule(static) if (n >= CRATE__OPS_PAR_MIN))
  for (size_t i = 0; i < n; i++)
    ga[i] = acc ? ga[i] + (gU[i] + gR[i]) : gU[i] + gR[i];
  crate__sgemm_par(false, false, M, d, d, -1.0f, gR, d, D, d, 1.0f, ga, d);
  /* G_D += eta R G_U^T - G_R A^T  (row form: gD += eta r^T gU - gR^T a). */
  crate__sgemm_par(true, false, d, d, M, (float)eta, r, d, gU, d, 1.0f, gD, d);
  crate__sgemm_par(true, false, d, d, M, -1.0f, gR, d, a, d, 1.0f, gD, d);
}

void crate_ista_forward_ref(double *y, double *r, const double *a, const double *D, double eta,
                            double lambda, size_t M, size_t d) {
  CRATE_ASSERT(y && r && a && D && d > 0);
  for (size_t t = 0; t < M; t++) {
    /* r_i = a_i - sum_j D_ij a_j  (R = A - D A, per token column) */
    for (size_t i = 0; i < d; i++) {
      double s = 0.0;
      for (size_t j = 0; j < d; j++)
        s += D[i * d + j] * a[t * d + j];
      r[t * d + i] = a[t * d + i] - s;
    }
    /* u_j = a_j + eta sum_i D_ij r_i - eta lambda */
    for (size_t j = 0; j < d; j++) {
      double s = 0.0;
      for (size_t i = 0; i < d; i++)
        s += D[i * d + j] * r[t * d + i];
      double u = a[t * d + j] + eta * s - eta * lambda;
      y[t * d + j] = u < 0.0 ? 0.0 : u;
    }
  }
}

void crate_ista_backward_ref(double *ga, double *gD, double *scratch, const double *y,
                             const double *r, const double *gy, const double *a, const double *D,
                             double eta, size_t M, size_t d) {
  CRATE_ASSERT(ga && gD && scratch && y && r && gy && a && D && d > 0);
  double *gU = scratch, *gR = scratch + M * d;
  for (size_t i = 0; i < M * d; i++)
    gU[i] = y[i] > 0.0 ? gy[i] : 0.0;
  for (size_t t = 0; t < M; t++) {
    /* G_R = eta D G_U (per token column) */
    for (size_t i = 0; i < d; i++) {
      double s = 0.0;
      for (size_t j = 0; j < d; j++)
        s += D[i * d + j] * gU[t * d + j];
      gR[t * d + i] = eta * s;
    }
    /* G_A += G_U + G_R - D^T G_R */
    for (size_t j = 0; j < d; j++) {
      double s = 0.0;
      for (size_t i = 0; i < d; i++)
        s += D[i * d + j] * gR[t * d + i];
      ga[t * d + j] += gU[t * d + j] + gR[t * d + j] - s;
    }
  }
  /* G_D[i][j] += sum_t eta r_ti gU_tj - gR_ti a_tj */
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < d; j++) {
      double s = 0.0;
      for (size_t t = 0; t < M; t++)
        s += eta * r[t * d + i] * gU[t * d + j] - gR[t * d + i] * a[t * d + j];
      gD[i * d + j] += s;
    }
}
