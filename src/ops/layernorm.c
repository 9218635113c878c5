/* layernorm.c: per-token LayerNorm with biased variance (MODEL.md §5; MATH.md
 * §2.5; backward MODEL.md §8 "LayerNorm").
 *
 *   y = gamma * (x - mu) * rstd + beta,  mu = mean(x),
 *   var = mean((x - mu)^2) (divide by d),  rstd = (var + eps)^(-1/2).
 *
 * Statistics accumulate in double; the cache keeps mu and rstd per token in
 * float and backward recomputes xhat = (x - mu) rstd from them.  The _ref
 * twins are the same formulas in double.  Non-goals: RMSNorm, no-affine mode.
 */
#include "ops_internal.h"

/* ---- fast path -------------------------------------------------------------- */

void crate_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                             const float *beta, double eps, size_t M, size_t d) {
  /* y, x: (M, d); mean, rstd: (M); gamma, beta: (d) */
  CRATE_ASSERT(y && mean && rstd && x && gamma && beta && d > 0);
  for (size_t t = 0; t < M; t++) {
    const float *xr = x + t * d;
    float *yr = y + t * d;
    double mu = 0.0;
    for (size_t j = 0; j < d; j++)
      mu += (double)xr[j];
    mu /= (double)d;
    double var = 0.0;
    for (size_t j = 0; j < d; j++) {
      double c = (double)xr[j] - mu;
      var += c * c;
    }
    var /= (double)d;
    double rs = 1.0 / sqrt(var + eps);
    mean[t] = (float)mu;
    rstd[t] = (float)rs;
    for (size_t j = 0; j < d; j++)
      yr[j] = (float)(((double)xr[j] - mu) * rs) * gamma[j] + beta[j];
  }
}

void crate_layernorm_backward(float *gx, float *ggamma, float *gbeta, const float *mean,
                              const float *rstd, const float *gy, const float *x,
                              const float *gamma, size_t M, size_t d) {
  /* gx, gy, x: (M, d); ggamma, gbeta, gamma: (d); mean, rstd: (M).
   * Inverts y = gamma * xhat + beta, xhat = (x - mu) rstd:
   *   G_gamma += g * xhat,  G_b += g,  ghat = gamma * g,
   *   g_x = rstd (ghat - mean(ghat) - xhat mean(ghat * xhat)). */
  CRATE_ASSERT(gx && ggamma && gbeta && mean && rstd && gy && x && gamma && d > 0);
  for (size_t t = 0; t < M; t++) {
    const float *xr = x + t * d, *gr = gy + t * d;
    float *gxr = gx + t * d;
    double mu = mean[t], rs = rstd[t];
    double m1 = 0.0, m2 = 0.0;
    for (size_t j = 0; j < d; j++) {
      double xh = ((double)xr[j] - mu) * rs;
      double gh = (double)gamma[j] * (double)gr[j];
      m1 += gh;
      m2 += gh * xh;
    }
    m1 /= (double)d;
    m2 /= (double)d;
    for (size_t j = 0; j < d; j++) {
      double xh = ((double)xr[j] - mu) * rs;
      double gh = (double)gamma[j] * (double)gr[j];
      gxr[j] += (float)(rs * (gh - m1 - xh * m2));
    }
  }
  /* Parameter gradients: column sums over tokens, in double, one block of
   * columns at a time (stack accumulators, no allocation). */
  double ag[CRATE__OPS_COLBLOCK], ab[CRATE__OPS_COLBLOCK];
  for (size_t j0 = 0; j0 < d; j0 += CRATE__OPS_COLBLOCK) {
    size_t nb = d - j0 < CRATE__OPS_COLBLOCK ? d - j0 : CRATE__OPS_COLBLOCK;
    for (size_t j = 0; j < nb; j++)
      ag[j] = ab[j] = 0.0;
    for (size_t t = 0; t < M; t++) {
      const float *xr = x + t * d + j0, *gr = gy + t * d + j0;
      double mu = mean[t], rs = rstd[t];
      for (size_t j = 0; j < nb; j++) {
        ag[j] += (double)gr[j] * (((double)xr[j] - mu) * rs);
        ab[j] += (double)gr[j];
      }
    }
    for (size_t j = 0; j < nb; j++) {
      ggamma[j0 + j] = (float)((double)ggamma[j0 + j] + ag[j]);
      gbeta[j0 + j] = (float)((double)gbeta[j0 + j] + ab[j]);
    }
  }
}

/* ---- double reference ------------------------------------------------------- */

void crate_layernorm_forward_ref(double *y, double *mean, double *rstd, const double *x,
                                 const double *gamma, const double *beta, double eps, size_t M,
                                 size_t d) {
  CRATE_ASSERT(y && mean && rstd && x && gamma && beta && d > 0);
  for (size_t t = 0; t < M; t++) {
    double mu = 0.0, var = 0.0;
    for (size_t j = 0; j < d; j++)
      mu += x[t * d + j];
    mu /= (double)d;
    for (size_t j = 0; j < d; j++)
      var += (x[t * d + j] - mu) * (x[t * d + j] - mu);
    var /= (double)d;
    mean[t] = mu;
    rstd[t] = 1.0 / sqrt(var + eps);
    for (size_t j = 0; j < d; j++)
      y[t * d + j] = gamma[j] * (x[t * d + j] - mu) * rstd[t] + beta[j];
  }
}

void crate_layernorm_backward_ref(double *gx, double *ggamma, double *gbeta, const double *mean,
                                  const double *rstd, const double *gy, const double *x,
                                  const double *gamma, size_t M, size_t d) {
  CRATE_ASSERT(gx && ggamma && gbeta && mean && rstd && gy && x && gamma && d > 0);
  for (size_t t = 0; t < M; t++) {
    double m1 = 0.0, m2 = 0.0;
    for (size_t j = 0; j < d; j++) {
      double xh = (x[t * d + j] - mean[t]) * rstd[t];
      m1 += gamma[j] * gy[t * d + j];
      m2 += gamma[j] * gy[t * d + j] * xh;
      ggamma[j] += gy[t * d + j] * xh;
      gbeta[j] += gy[t * d + j];
    }
    m1 /= (double)d;
    m2 /= (double)d;
    for (size_t j = 0; j < d; j++) {
      double xh = (x[t * d + j] - mean[t]) * rstd[t];
      gx[t * d + j] += rstd[t] * (gamma[j] * gy[t * d + j] - m1 - xh * m2);
    }
  }
}
