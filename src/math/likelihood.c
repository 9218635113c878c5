/* likelihood.c: log-likelihood by change of variables along the PF-ODE, and
 * the Hutchinson divergence estimator (MATH.md §4.8).
 *
 * Along dz/dsigma = F the density obeys d/dsigma log q^sigma(z(sigma)) =
 * -div F, so with Lambda(sigma_min) = 0 and dLambda/dsigma = div F,
 *
 *   log q^{sigma_min}(x) = log q^{sigma_max}(z(sigma_max)) + Lambda(sigma_max).
 *
 * The augmented state (z, Lambda) is integrated upward by crate_sampler with
 * CRATE_SAMPLER_DIVERGENCE.  For the MoLRG the divergence is exact,
 * div F = (d - tr C(z)/sigma^2)/sigma (Tweedie second order, §3.5), or
 * estimated by Hutchinson probes v^T J v with J = (I - C/sigma^2)/sigma,
 * which needs only J v = (v - C v / sigma^2)/sigma from the posterior
 * covariance.  The prior term is the closed form log q^{sigma_max} (§3.2) or
 * N(0, sigma_max^2 I) when the data law is treated as unknown (P10).
 *
 * Non-goals: bits per dimension and dequantisation (image data); adaptive
 * solvers (the references use RK45/dopri5; here any method of §4.6 on a
 * fixed grid, so the error has a known order).
 */
#include <string.h>

#include "crate/diffusion.h"
#include "internal.h"

#define LOG_2PI 1.8378770664093454835606594728112

crate_loglik_opts crate_loglik_opts_default(void) {
  crate_loglik_opts o;
  o.sampler = CRATE_SAMPLER_HEUN;
  o.divergence = CRATE_DIVERGENCE_EXACT;
  o.probes = 1;
  o.rng = NULL;
  o.prior = CRATE_PRIOR_EXACT;
  return o;
}

/* ---- Hutchinson ------------------------------------------------------------- */

int crate_hutchinson_divergence(double *div, double *vals, const double *cov, size_t M, size_t d,
                                double sigma, crate_divergence_kind kind, size_t R, crate_rng *rng,
                                double *work) {
  if (!div || !cov || !rng || !work)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: NULL %s",
                       !div   ? "output"
                       : !cov ? "covariances"
                       : !rng ? "generator"
                              : "work");
  if (kind != CRATE_DIVERGENCE_RADEMACHER && kind != CRATE_DIVERGENCE_GAUSSIAN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "likelihood: Hutchinson needs Rademacher or Gaussian probes (got %d)",
                       (int)kind);
  if (R == 0 || d == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "likelihood: need R >= 1 probes and d >= 1 (got %zu, %zu)", R, d);
  if (!isfinite(sigma) || !(sigma > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: sigma = %g must be finite and > 0", sigma);
  const double s2 = sigma * sigma;
  double *v = work; /* (d) */
  for (size_t i = 0; i < M; i++) {
    const double *C = cov + i * d * d; /* (d, d) */
    double acc = 0.0;
    for (size_t r = 0; r < R; r++) {
      if (kind == CRATE_DIVERGENCE_RADEMACHER)
        for (size_t l = 0; l < d; l++)
          v[l] = crate_rng_sign(rng);
      else
        crate_rng_normal_fill(rng, v, d);
      /* v^T J v = (v.v - v^T C v / sigma^2) / sigma */
      double vv = 0.0, vcv = 0.0;
      for (size_t a = 0; a < d; a++) {
        double cv = 0.0;
        for (size_t b = 0; b < d; b++)
          cv += C[a * d + b] * v[b];
        vcv += v[a] * cv;
        vv += v[a] * v[a];
      }
      double e = (vv - vcv / s2) / sigma;
      if (vals)
        vals[i * R + r] = e;
      acc += e;
    }
    div[i] = acc / (double)R;
  }
  return CRATE_STATUS_OK;
}

/* ---- log-likelihood ----------------------------------------------------------- */

static int reraise(int st) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", crate_error_message());
  char *tag = strstr(buf, " [");
  if (tag)
    *tag = '\0';
  return CRATE_ERROR(st, "likelihood: %s", buf);
}

/* Integrates (Z, Lambda) upward with Hutchinson divergences.  Z: (M, d) in
 * place; lambda: (M). */
static int integrate_hutchinson(crate_molrg *m, const double *grid, size_t n, double *Z, size_t M,
                                const crate_loglik_opts *o, double *lambda) {
  const size_t d = crate_molrg_dim(m);
  crate_sampler *s = NULL;
  CRATE_TRY(crate_sampler_create(&s, o->sampler, grid, n, M, d,
                                 CRATE_SAMPLER_RESID | CRATE_SAMPLER_DIVERGENCE));
  if (M > ((size_t)-1 / sizeof(double)) / d / d - 1) {
    crate_sampler_destroy(s);
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: M = %zu too large", M);
  }
  double *cov = crate__calloc(M * d * d + d, sizeof *cov); /* (M, d, d) + work (d) */
  if (!cov) {
    crate_sampler_destroy(s);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "likelihood: %zu doubles", M * d * d + d);
  }
  int st = crate_sampler_start(s, Z);
  crate_sampler_query q;
  while (st == CRATE_STATUS_OK && crate_sampler_query_next(s, &q)) {
    crate_molrg_post post = {0};
    post.mean = q.denoised;
    post.resid = q.resid;
    post.cov = cov;
    st = crate_molrg_posterior(m, q.points, M, q.sigma, &post);
    if (st != CRATE_STATUS_OK) {
      st = reraise(st);
      break;
    }
    st = crate_hutchinson_divergence(q.div, NULL, cov, M, d, q.sigma, o->divergence, o->probes,
                                     o->rng, cov + M * d * d);
    if (st == CRATE_STATUS_OK)
      st = crate_sampler_step(s, NULL);
  }
  if (st == CRATE_STATUS_OK) {
    memcpy(Z, crate_sampler_state(s), M * d * sizeof *Z);
    memcpy(lambda, crate_sampler_lambda(s), M * sizeof *lambda);
  }
  free(cov);
  crate_sampler_destroy(s);
  return st;
}

int crate_molrg_loglik(crate_molrg *m, const double *X, size_t M, const double *grid, size_t n_grid,
                       const crate_loglik_opts *opts, const crate_loglik_out *out) {
  if (!m || !X || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: NULL %s",
                       !m   ? "mixture"
                       : !X ? "points"
                            : "outputs");
  crate_loglik_opts o = opts ? *opts : crate_loglik_opts_default();
  const size_t d = crate_molrg_dim(m);
  if (M == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: need M > 0 points");
  int st = crate_schedule_check(grid, n_grid, false);
  if (st != CRATE_STATUS_OK)
    return reraise(st);
  if (!(grid[1] > grid[0]))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "likelihood: grid must increase from sigma_min to sigma_max (got "
                       "%g, %g, ...; use crate_schedule_reverse)",
                       grid[0], grid[1]);
  if (o.divergence != CRATE_DIVERGENCE_EXACT) {
    if (o.divergence != CRATE_DIVERGENCE_RADEMACHER && o.divergence != CRATE_DIVERGENCE_GAUSSIAN)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: unknown divergence kind %d",
                         (int)o.divergence);
    if (o.probes == 0 || !o.rng)
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "likelihood: Hutchinson needs probes >= 1 and a generator (got %zu, %s)",
                         o.probes, o.rng ? "rng" : "NULL");
  }
  if (o.prior != CRATE_PRIOR_EXACT && o.prior != CRATE_PRIOR_GAUSSIAN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: unknown prior kind %d", (int)o.prior);
  if (!crate__all_finite(X, M * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "likelihood: points contain a non-finite entry");

  /* z: (M, d), lam: (M), pr: (M) */
  double *z = crate__calloc(M * d + 2 * M, sizeof *z);
  if (!z)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "likelihood: %zu doubles", M * d + 2 * M);
  double *lam = z + M * d, *pr = lam + M;
  memcpy(z, X, M * d * sizeof *z);
  if (o.divergence == CRATE_DIVERGENCE_EXACT) {
    st = crate_molrg_integrate(m, o.sampler, grid, n_grid, z, M, lam);
    if (st != CRATE_STATUS_OK)
      st = reraise(st);
  } else {
    st = integrate_hutchinson(m, grid, n_grid, z, M, &o, lam);
  }
  const double smax = grid[n_grid - 1];
  if (st == CRATE_STATUS_OK) {
    if (o.prior == CRATE_PRIOR_EXACT) {
      crate_molrg_post post = {0};
      post.logq = pr;
      st = crate_molrg_posterior(m, z, M, smax, &post);
      if (st != CRATE_STATUS_OK)
        st = reraise(st);
    } else {
      double s2 = smax * smax, c = -0.5 * (double)d * (LOG_2PI + log(s2));
      for (size_t i = 0; i < M; i++) {
        double nz = 0.0;
        for (size_t l = 0; l < d; l++)
          nz += z[i * d + l] * z[i * d + l];
        pr[i] = c - nz / (2.0 * s2);
      }
    }
  }
  if (st == CRATE_STATUS_OK) {
    for (size_t i = 0; i < M; i++) {
      if (out->logq)
        out->logq[i] = pr[i] + lam[i];
      if (out->prior)
        out->prior[i] = pr[i];
      if (out->lambda)
        out->lambda[i] = lam[i];
    }
    if (out->zT)
      memcpy(out->zT, z, M * d * sizeof *z);
  }
  free(z);
  return st;
}
