/* layernorm.c: per-token LayerNorm with biased variance (MODEL.md §5; MATH.md
 * §2.5; backward MODEL.md §8 "LayerNorm").
 *
 *   y = gamma * (x - mu) * rstd + beta,  mu = mean(x),
 *   var = mean((x - mu)^2) (divide by d),  rstd = (var + eps)^(-1/2).
 *
 * The row passes run in float on 16-lane vectors (statistics two-pass, as
 * the framework does; 2x the double version's speed); the cache keeps mu
 * and rstd per token and backward recomputes xhat = (x - mu) rstd from
 * them.  The parameter gradients, sums over all M rows, accumulate in
 * double.  The _ref twins are the same formulas in double.
 * Non-goals: RMSNorm, no-affine mode.
 */
#include "ops_internal.h"

#if defined(CRATE_HAVE_OPENMP)
#include <omp.h>
#endif

/* ---- fast path -------------------------------------------------------------- */

/* 16-lane float vectors (GNU C vector extensions: element-wise, so every
 * ISA clone computes the same bits) and a fixed-order lane sum. */
typedef float ln_v16f __attribute__((vector_size(64)));

static inline void ln_ld16(ln_v16f *v, const float *p) {
  memcpy(v, p, sizeof *v);
}

static inline float ln_hsum16(const ln_v16f *v) {
  const ln_v16f a = *v;
  float s[8];
  for (int i = 0; i < 8; i++)
    s[i] = a[i] + a[i + 8];
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* Rows [r0, r1) of the forward, in float (as the framework computes it):
 * two-pass mean and variance on 16-lane vectors plus a scalar tail; rstd
 * from a double square root. */
CRATE__OPS_CLONES
static void ln_forward_rows(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                            const float *beta, double eps, size_t r0, size_t r1, size_t d) {
  const size_t dv = d / 16 * 16;
  const float invd = (float)(1.0 / (double)d);
  for (size_t t = r0; t < r1; t++) {
    const float *xr = x + t * d;
    float *yr = y + t * d;
    ln_v16f a = {0}, xv;
    for (size_t j = 0; j < dv; j += 16) {
      ln_ld16(&xv, xr + j);
      a += xv;
    }
    float mu = ln_hsum16(&a);
    for (size_t j = dv; j < d; j++)
      mu += xr[j];
    mu *= invd;
    ln_v16f v = {0};
    for (size_t j = 0; j < dv; j += 16) {
      ln_ld16(&xv, xr + j);
      const ln_v16f c = xv - mu;
      v += c * c;
    }
    float var = ln_hsum16(&v);
    for (size_t j = dv; j < d; j++) {
      const float c = xr[j] - mu;
      var += c * c;
    }
    var *= invd;
    const float rs = (float)(1.0 / sqrt((double)var + eps));
    mean[t] = mu;
    rstd[t] = rs;
    for (size_t j = 0; j < dv; j += 16) {
      ln_v16f g, bb;
      ln_ld16(&xv, xr + j);
      ln_ld16(&g, gamma + j);
      ln_ld16(&bb, beta + j);
      const ln_v16f out = ((xv - mu) * rs) * g + bb;
      memcpy(yr + j, &out, sizeof out);
    }
    for (size_t j = dv; j < d; j++)
      yr[j] = ((xr[j] - mu) * rs) * gamma[j] + beta[j];
  }
}

void crate_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                             const float *beta, double eps, size_t M, size_t d) {
  /* y, x: (M, d); mean, rstd: (M); gamma, beta: (d) */
  CRATE_ASSERT(y && mean && rstd && x && gamma && beta && d > 0);
  enum { CH = 16 }; /* rows per work item */
  const size_t nch = (M + CH - 1) / CH;
  CRATE__OMP(parallel for schedule(static) if (M * d >= CRATE__OPS_PAR_MIN))
  for (size_t c = 0; c < nch; c++)
    ln_forward_rows(y, mean, rstd, x, gamma, beta, eps, c * CH, c * CH + CH < M ? c * CH + CH : M,
                    d);
}

/* Rows [r0, r1) of the input gradient, in float on 16-lane vectors. */
CRATE__OPS_CLONES
static void ln_backward_rows(float *gx, const float *mean, const float *rstd, const float *gy,
                             const float *x, const float *gamma, size_t r0, size_t r1, size_t d,
                             bool acc) {
  const size_t dv = d / 16 * 16;
  const float invd = (float)(1.0 / (double)d);
  for (size_t t = r0; t < r1; t++) {
    const float *xr = x + t * d, *gr = gy + t * d;
    float *gxr = gx + t * d;
    const float mu = mean[t], rs = rstd[t];
    ln_v16f a1 = {0}, a2 = {0}, xv, gv, gmv;
    for (size_t j = 0; j < dv; j += 16) {
      ln_ld16(&xv, xr + j);
      ln_ld16(&gmv, gamma + j);
      ln_ld16(&gv, gr + j);
      const ln_v16f xh = (xv - mu) * rs;
      const ln_v16f gh = gmv * gv;
      a1 += gh;
      a2 += gh * xh;
    }
    float m1 = ln_hsum16(&a1), m2 = ln_hsum16(&a2);
    for (size_t j = dv; j < d; j++) {
      const float xh = (xr[j] - mu) * rs;
      const float gh = gamma[j] * gr[j];
      m1 += gh;
      m2 += gh * xh;
    }
    m1 *= invd;
    m2 *= invd;
    for (size_t j = 0; j < dv; j += 16) {
      ln_ld16(&xv, xr + j);
      ln_ld16(&gmv, gamma + j);
      ln_ld16(&gv, gr + j);
      const ln_v16f xh = (xv - mu) * rs;
      ln_v16f out = rs * (gmv * gv - m1 - xh * m2);
      if (acc) {
        ln_v16f old;
        ln_ld16(&old, gxr + j);
        out = old + out;
      }
      memcpy(gxr + j, &out, sizeof out);
    }
    for (size_t j = dv; j < d; j++) {
      const float xh = (xr[j] - mu) * rs;
      const float v = rs * (gamma[j] * gr[j] - m1 - xh * m2);
      gxr[j] = acc ? gxr[j] + v : v;
    }
  }
}

/* Columns [j0, j1) (multiples of 8) of the parameter gradients, each summed
 * over all M rows in order, in double.  Rows are read front to back, up to
 * W columns of each at a time, so the pass streams x and gy once (a
 * column-block order re-read them from L3 once per block: 2.7 ms against
 * 0.46 ms for the whole backward at M = 3200, d = 128, one thread).  The
 * sums do not depend on the thread count: each column's order is fixed. */
CRATE__OPS_CLONES
static void ln_param_cols(float *ggamma, float *gbeta, const float *mean, const float *rstd,
                          const float *gy, const float *x, size_t M, size_t d, size_t j0,
                          size_t j1) {
  enum { W = 256 };
  crate__v8d ag[W / 8], ab[W / 8], gv, xv;
  for (size_t c0 = j0; c0 < j1; c0 += W) {
    const size_t c1 = c0 + W < j1 ? c0 + W : j1, nv = (c1 - c0) / 8;
    for (size_t u = 0; u < nv; u++)
      ag[u] = ab[u] = (crate__v8d){0};
    for (size_t t = 0; t < M; t++) {
      const float *xr = x + t * d + c0, *gr = gy + t * d + c0;
      const double mu = mean[t], rs = rstd[t];
      for (size_t u = 0; u < nv; u++) {
        crate__ld8(&gv, gr + 8 * u);
        crate__ld8(&xv, xr + 8 * u);
        ag[u] += gv * ((xv - mu) * rs);
        ab[u] += gv;
      }
    }
    for (size_t u = 0; u < nv; u++)
      for (size_t j = 0; j < 8; j++) {
        float *pg = ggamma + c0 + 8 * u + j, *pb = gbeta + c0 + 8 * u + j;
        *pg = (float)((double)*pg + ag[u][j]);
        *pb = (float)((double)*pb + ab[u][j]);
      }
  }
}

/* Columns [j0, d) (fewer than 8) of the parameter gradients. */
static void ln_param_tail(float *ggamma, float *gbeta, const float *mean, const float *rstd,
                          const float *gy, const float *x, size_t M, size_t d, size_t j0) {
  for (size_t j = j0; j < d; j++) {
    double ag = 0.0, ab = 0.0;
    for (size_t t = 0; t < M; t++) {
      const double g = (double)gy[t * d + j];
      ag += g * (((double)x[t * d + j] - (double)mean[t]) * (double)rstd[t]);
      ab += g;
    }
    ggamma[j] = (float)((double)ggamma[j] + ag);
    gbeta[j] = (float)((double)gbeta[j] + ab);
  }
}

void crate_layernorm_backward(float *gx, float *ggamma, float *gbeta, const float *mean,
                              const float *rstd, const float *gy, const float *x,
                              const float *gamma, size_t M, size_t d) {
  crate__layernorm_backward_ex(gx, ggamma, gbeta, mean, rstd, gy, x, gamma, M, d, true);
}

void crate__layernorm_backward_ex(float *gx, float *ggamma, float *gbeta, const float *mean,
                                  const float *rstd, const float *gy, const float *x,
                                  const float *gamma, size_t M, size_t d, bool acc) {
  /* gx, gy, x: (M, d); ggamma, gbeta, gamma: (d); mean, rstd: (M).
   * Inverts y = gamma * xhat + beta, xhat = (x - mu) rstd:
   *   G_gamma += g * xhat,  G_b += g,  ghat = gamma * g,
   *   g_x = rstd (ghat - mean(ghat) - xhat mean(ghat * xhat)). */
  CRATE_ASSERT(gx && ggamma && gbeta && mean && rstd && gy && x && gamma && d > 0);
  enum { CH = 16 }; /* rows per work item */
  const size_t nch = (M + CH - 1) / CH, nu = d / 8;
  const bool par = M * d >= CRATE__OPS_PAR_MIN;
  (void)par;
  CRATE__OMP(parallel if (par)) {
    CRATE__OMP(for schedule(static) nowait)
    for (size_t c = 0; c < nch; c++)
      ln_backward_rows(gx, mean, rstd, gy, x, gamma, c * CH, c * CH + CH < M ? c * CH + CH : M, d,
                       acc);
    /* Parameter gradients: each thread owns a contiguous range of 8-column
     * units and streams all rows over it. */
    size_t nt = 1, k = 0;
#if defined(CRATE_HAVE_OPENMP)
    nt = (size_t)omp_get_num_threads();
    k = (size_t)omp_get_thread_num();
#endif
    const size_t u0 = nu * k / nt, u1 = nu * (k + 1) / nt;
    if (u1 > u0)
      ln_param_cols(ggamma, gbeta, mean, rstd, gy, x, M, d, 8 * u0, 8 * u1);
  }
  ln_param_tail(ggamma, gbeta, mean, rstd, gy, x, M, d, 8 * nu);
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
