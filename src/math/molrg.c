/* molrg.c: the mixture of low-rank Gaussians (MoLRG) and its exact closed
 * forms (MATH.md §3): sampling (§3.1), the noisy marginal log q^sigma (§3.2),
 * responsibilities (§3.3), posterior mean and covariance (§3.4), score and
 * exact Laplacian (§3.5, used as the divergence of §4.8), evaluated in the
 * stable way of §3.8.
 *
 * Per point z and component k we form x_k = U_k^T z, y_k = U_k x_k (the
 * projection P_k z), n_k = ||x_k||^2 and the off-subspace residual
 * r_k = ||z - y_k||^2, summed directly (never as ||z||^2 - n_k).  With
 * 1/(s^2(1+s^2)) = 1/s^2 - 1/(1+s^2) the component log-density of §3.2 is
 *
 *   log phi_k = -d/2 log(2 pi s^2) - p_k/2 log1p(1/s^2)
 *               - r_k / (2 s^2) - n_k / (2 (1 + s^2)),
 *
 * so the logits used here are zeta_k(z) - ||z||^2/(2 s^2) with zeta_k of
 * §3.3.  The shift is common to all k, so the softmax is that of §3.3, but
 * the logits stay O(1) for the winning component instead of O(s^-2): no two
 * huge numbers are subtracted, in double or in float.
 *
 * The posterior covariance and its trace use the centred between-component
 * term sum_k pi_k(z) (m_k - m)(m_k - m)^T, which equals
 * sum_k pi_k(z) m_k m_k^T - m m^T of §3.4 exactly and is PSD by construction.
 *
 * The float twin takes and returns float arrays; its logits, softmax and
 * log-sum-exp run in float (max subtraction), while the projections and the
 * residual are reductions and accumulate in double against the double bases
 * (STYLE.md §1.5).  A float copy of U would limit the residual to a relative
 * accuracy of about eps_f ||z|| / sigma whatever the formula (A8 measures
 * 4e-3 at sigma = 1e-4), and test A8 asks for 1e-4.
 *
 * Non-goals: non-orthonormal factors (§3.7); BLAS batching (d and K are small
 * for this reference model; the loops are O(M d sum_k p_k)).
 */
#include <float.h>
#include <string.h>

#include "internal.h"

#define LOG_2PI 1.8378770664093454835606594728112

struct crate_molrg {
  size_t d, K, P; /* P = sum_k p_k */
  size_t *p;      /* (K) ranks */
  size_t *off;    /* (K) row offset of U_k^T in Ut */
  double *Ut;     /* (P, d) stacked U_k^T */
  double *pi;     /* (K) weights */
  double *logpi;  /* (K) log pi_k */
  /* scratch for one query point */
  double *x;    /* (P) U^T z */
  double *y;    /* (K, d) y_k = U_k U_k^T z */
  double *zeta; /* (K) logits, then responsibilities */
  double *mv;   /* (d) posterior mean */
  double *dk;   /* (d) m_k - m; the residual in the float twin */
  double *zb;   /* (d) float query point widened to double */
};

/* ---- create / destroy ---------------------------------------------------- */

/* Copies the thread-local detail of a failed sub-call so that it can be
 * re-raised under the "molrg: " domain without aliasing the buffer. */
static int reraise(int st, const char *what) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", crate_error_message());
  char *tag = strstr(buf, " [");
  if (tag)
    *tag = '\0'; /* drop the inner [file:line]; ours is appended */
  return CRATE_ERROR(st, "molrg: %s: %s", what, buf);
}

static int check_weights(const double *pi, size_t K) {
  if (!pi)
    return CRATE_STATUS_OK;
  double s = 0.0;
  for (size_t k = 0; k < K; k++) {
    if (!isfinite(pi[k]) || !(pi[k] > 0.0))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: weight pi_%zu = %g must be finite and > 0", k,
                         pi[k]);
    s += pi[k];
  }
  if (fabs(s - 1.0) > 1e-9)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: weights sum to %.17g, not 1 (tolerance 1e-9)",
                       s);
  return CRATE_STATUS_OK;
}

int crate_molrg_create(crate_molrg **out, const crate_subspaces *U, const double *pi) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL output handle");
  *out = NULL;
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL subspaces");
  int st = crate_subspaces_check(U, 1e-8);
  if (st != CRATE_STATUS_OK)
    return reraise(st, "invalid bases");
  CRATE_TRY(check_weights(pi, U->K));

  size_t d = U->d, K = U->K, P = crate_subspaces_total(U);
  if (P > ((size_t)-1 / sizeof(double)) / (d + 1) / (K + 2))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: sizes d=%zu, K=%zu too large", d, K);
  /* doubles: Ut, pi, logpi, x, y, zeta, mv, dk, zb */
  size_t nd = P * d + K + K + P + K * d + K + d + d + d;
  crate_molrg *m = crate__calloc(1, sizeof *m);
  size_t *iz = crate__calloc(2 * K, sizeof *iz);
  double *buf = crate__calloc(nd, sizeof *buf);
  if (!m || !iz || !buf) {
    free(m);
    free(iz);
    free(buf);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "molrg: %zu doubles for d=%zu, K=%zu", nd, d, K);
  }
  m->d = d;
  m->K = K;
  m->P = P;
  m->p = iz;
  m->off = iz + K;
  m->Ut = buf;
  m->pi = m->Ut + P * d;
  m->logpi = m->pi + K;
  m->x = m->logpi + K;
  m->y = m->x + P;
  m->zeta = m->y + K * d;
  m->mv = m->zeta + K;
  m->dk = m->mv + d;
  m->zb = m->dk + d;
  memcpy(m->Ut, U->Ut, P * d * sizeof *m->Ut);
  size_t off = 0;
  for (size_t k = 0; k < K; k++) {
    m->p[k] = U->p[k];
    m->off[k] = off;
    off += U->p[k];
    m->pi[k] = pi ? pi[k] : 1.0 / (double)K;
    m->logpi[k] = log(m->pi[k]);
  }
  *out = m;
  return CRATE_STATUS_OK;
}

int crate_molrg_create_random(crate_molrg **out, size_t d, size_t K, const size_t *p,
                              const double *pi, crate_subspaces_kind kind, crate_rng *rng) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL output handle");
  *out = NULL;
  if (!rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL generator");
  if (d == 0 || K == 0 || !p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "molrg: need d > 0, K > 0 and a rank array (got d=%zu, K=%zu)", d, K);
  size_t P = 0;
  for (size_t k = 0; k < K; k++) {
    if (p[k] == 0 || p[k] > d)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: rank p_%zu = %zu must be in [1, d = %zu]", k,
                         p[k], d);
    P += p[k];
  }
  CRATE_TRY(check_weights(pi, K));
  double *Ut = crate__calloc(P * d, sizeof *Ut);
  if (!Ut)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "molrg: %zu x %zu random bases", P, d);
  int st = crate_subspaces_random(Ut, d, K, p, kind, rng);
  if (st != CRATE_STATUS_OK) {
    st = reraise(st, "random bases");
  } else {
    crate_subspaces U = {.d = d, .K = K, .p = p, .Ut = Ut};
    st = crate_molrg_create(out, &U, pi);
  }
  free(Ut);
  return st;
}

void crate_molrg_destroy(crate_molrg *m) {
  if (!m)
    return;
  free(m->Ut);
  free(m->p);
  free(m);
}

/* ---- getters ------------------------------------------------------------- */

crate_subspaces crate_molrg_subspaces(const crate_molrg *m) {
  crate_subspaces U = {0, 0, NULL, NULL};
  if (m) {
    U.d = m->d;
    U.K = m->K;
    U.p = m->p;
    U.Ut = m->Ut;
  }
  return U;
}

const double *crate_molrg_weights(const crate_molrg *m) {
  return m ? m->pi : NULL;
}
size_t crate_molrg_dim(const crate_molrg *m) {
  return m ? m->d : 0;
}
size_t crate_molrg_count(const crate_molrg *m) {
  return m ? m->K : 0;
}

/* ---- sampling (§3.1) ----------------------------------------------------- */

int crate_molrg_sample(const crate_molrg *m, crate_rng *rng, size_t M, double sigma, double *Z,
                       double *Z_clean, size_t *labels) {
  if (!m || !rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL %s", m ? "generator" : "handle");
  if (!isfinite(sigma) || sigma < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: sample needs finite sigma >= 0 (got %g)",
                       sigma);
  size_t d = m->d, K = m->K;
  /* Every point consumes the same draws whatever outputs are requested and
   * whatever sigma is: one uniform (the label), p_k normals (a) and d normals
   * (w).  So the clean points of sample(sigma) do not depend on sigma. */
  for (size_t i = 0; i < M; i++) {
    double u = crate_rng_uniform(rng), c = 0.0;
    size_t k = K - 1;
    for (size_t j = 0; j < K; j++) {
      c += m->pi[j];
      if (u < c) {
        k = j;
        break;
      }
    }
    const double *B = m->Ut + m->off[k] * d; /* (p_k, d) = U_k^T */
    /* z_nat = U_k a is accumulated in the Z_clean row if wanted, else in the
     * Z row (same operations in the same order, so the values agree). */
    double *dst = Z_clean ? Z_clean + i * d : (Z ? Z + i * d : NULL);
    if (dst)
      memset(dst, 0, d * sizeof *dst);
    for (size_t j = 0; j < m->p[k]; j++) {
      double a = crate_rng_normal(rng);
      if (dst)
        for (size_t l = 0; l < d; l++)
          dst[l] += a * B[j * d + l];
    }
    for (size_t l = 0; l < d; l++) {
      double w = crate_rng_normal(rng);
      if (Z)
        Z[i * d + l] = dst[l] + sigma * w;
    }
    if (labels)
      labels[i] = k;
  }
  return CRATE_STATUS_OK;
}

/* ---- closed forms (§3.2-§3.5, §3.8) ---------------------------------------- */

/* Constants of one noise level; s2 = sigma^2. */
typedef struct consts {
  double s2;     /* sigma^2 */
  double a;      /* 1 / (1 + s2): shrinkage of m_k */
  double c;      /* s2 / (1 + s2): posterior variance along U_k */
  double half_L; /* log(1 + s2^-2) / 2, as log1p */
  double logq0;  /* -d/2 log(2 pi s2) */
} consts;

static int make_consts(const crate_molrg *m, double sigma, consts *cs) {
  double s2 = sigma * sigma;
  if (!isfinite(sigma) || !(sigma > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: posterior needs finite sigma > 0 (got %g)",
                       sigma);
  if (!isfinite(s2) || s2 < DBL_MIN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "molrg: sigma = %g out of range (sigma^2 over- or underflows)", sigma);
  cs->s2 = s2;
  cs->a = 1.0 / (1.0 + s2);
  cs->c = s2 / (1.0 + s2);
  cs->half_L = 0.5 * log1p(1.0 / s2);
  cs->logq0 = -0.5 * (double)m->d * (LOG_2PI + log(s2));
  return CRATE_STATUS_OK;
}

/* Projections and logits of one point.  z: (d).  Fills x = U^T z (P),
 * y_k = U_k x_k (K, d) and zeta_k = log pi_k - p_k/2 log(1 + s^-2)
 * - r_k/(2 s^2) - n_k/(2 (1 + s^2)) (the §3.3 logit less ||z||^2/(2 s^2)).
 * @return max_k zeta_k. */
static double point_logits(crate_molrg *m, const double *z, const consts *cs) {
  size_t d = m->d;
  double mx = -INFINITY;
  for (size_t k = 0; k < m->K; k++) {
    const double *B = m->Ut + m->off[k] * d; /* (p_k, d) */
    double *x = m->x + m->off[k], *y = m->y + k * d;
    double n = 0.0, r = 0.0;
    for (size_t j = 0; j < m->p[k]; j++) {
      double t = 0.0;
      for (size_t l = 0; l < d; l++)
        t += B[j * d + l] * z[l];
      x[j] = t;
      n += t * t;
    }
    for (size_t l = 0; l < d; l++) {
      double t = 0.0;
      for (size_t j = 0; j < m->p[k]; j++)
        t += B[j * d + l] * x[j];
      y[l] = t;
      r += (z[l] - t) * (z[l] - t);
    }
    double zk = m->logpi[k] - (double)m->p[k] * cs->half_L - r / (2.0 * cs->s2) - 0.5 * cs->a * n;
    m->zeta[k] = zk;
    if (zk > mx)
      mx = zk;
  }
  return mx;
}

/* Posterior mean and cancellation-free residual from responsibilities w (K):
 *   m = a sum_k w_k y_k,
 *   z - m = sum_k w_k (z - y_k) + c sum_k w_k y_k   (§3.8).
 * mean, resid: (d) or NULL. */
static void point_mean_resid(const crate_molrg *m, const double *z, const double *w,
                             const consts *cs, double *mean, double *resid) {
  size_t d = m->d, K = m->K;
  for (size_t l = 0; l < d; l++) {
    double on = 0.0, off = 0.0;
    for (size_t k = 0; k < K; k++) {
      double yk = m->y[k * d + l];
      on += w[k] * yk;
      off += w[k] * (z[l] - yk);
    }
    if (mean)
      mean[l] = cs->a * on;
    if (resid)
      resid[l] = off + cs->c * on;
  }
}

int crate_molrg_posterior(crate_molrg *m, const double *Z, size_t M, double sigma,
                          const crate_molrg_post *out) {
  if (!m)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL handle");
  consts cs;
  CRATE_TRY(make_consts(m, sigma, &cs));
  if (M == 0 || !out)
    return CRATE_STATUS_OK;
  size_t d = m->d, K = m->K;
  if (!Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL query array for M = %zu", M);
  if (!crate__all_finite(Z, M * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: query points contain a non-finite entry");
  bool want_mr = out->mean || out->resid || out->score;
  bool want_c = out->cov || out->trcov || out->lap;
  double *w = m->zeta, *mv = m->mv, *dk = m->dk;
  for (size_t i = 0; i < M; i++) {
    const double *z = Z + i * d; /* (d) */
    double mx = point_logits(m, z, &cs);
    double S = 0.0;
    for (size_t k = 0; k < K; k++) {
      w[k] = exp(w[k] - mx);
      S += w[k];
    }
    if (out->logq)
      out->logq[i] = cs.logq0 + mx + log(S);
    for (size_t k = 0; k < K; k++)
      w[k] /= S;
    if (out->resp)
      memcpy(out->resp + i * K, w, K * sizeof *w);
    if (want_mr) {
      double *rs = out->resid ? out->resid + i * d : (out->score ? out->score + i * d : NULL);
      point_mean_resid(m, z, w, &cs, out->mean ? out->mean + i * d : mv, rs);
      if (out->score)
        for (size_t l = 0; l < d; l++)
          out->score[i * d + l] = -rs[l] / cs.s2;
    }
    if (!want_c)
      continue;
    if (!out->mean)
      point_mean_resid(m, z, w, &cs, mv, NULL);
    const double *mean = out->mean ? out->mean + i * d : mv;
    /* tr C = c sum_k w_k p_k + sum_k w_k ||m_k - m||^2, m_k = a y_k. */
    double tr = 0.0, spread = 0.0;
    double *C = out->cov ? out->cov + i * d * d : NULL; /* (d, d) */
    if (C)
      memset(C, 0, d * d * sizeof *C);
    for (size_t k = 0; k < K; k++) {
      tr += w[k] * (double)m->p[k];
      double e = 0.0;
      for (size_t l = 0; l < d; l++) {
        dk[l] = cs.a * m->y[k * d + l] - mean[l];
        e += dk[l] * dk[l];
      }
      spread += w[k] * e;
      if (!C)
        continue;
      /* C += c w_k U_k U_k^T + w_k (m_k - m)(m_k - m)^T */
      const double *B = m->Ut + m->off[k] * d;
      double cw = cs.c * w[k];
      for (size_t j = 0; j < m->p[k]; j++)
        for (size_t r = 0; r < d; r++) {
          double br = cw * B[j * d + r];
          for (size_t l = 0; l < d; l++)
            C[r * d + l] += br * B[j * d + l];
        }
      for (size_t r = 0; r < d; r++) {
        double dr = w[k] * dk[r];
        for (size_t l = 0; l < d; l++)
          C[r * d + l] += dr * dk[l];
      }
    }
    tr = cs.c * tr + spread;
    if (out->trcov)
      out->trcov[i] = tr;
    if (out->lap)
      out->lap[i] = (tr / cs.s2 - (double)d) / cs.s2;
  }
  return CRATE_STATUS_OK;
}

int crate_molrg_posteriorf(crate_molrg *m, const float *Z, size_t M, float sigma,
                           const crate_molrg_postf *out) {
  if (!m)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL handle");
  if (!isfinite(sigma) || !(sigma > 0.0f))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: posterior needs finite sigma > 0 (got %g)",
                       (double)sigma);
  consts cs;
  CRATE_TRY(make_consts(m, (double)sigma, &cs));
  if (M == 0 || !out)
    return CRATE_STATUS_OK;
  size_t d = m->d, K = m->K;
  if (!Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: NULL query array for M = %zu", M);
  if (!crate__all_finitef(Z, M * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "molrg: query points contain a non-finite entry");
  double *w = m->zeta, *z = m->zb, *mv = m->mv, *rv = m->dk;
  for (size_t i = 0; i < M; i++) {
    for (size_t l = 0; l < d; l++)
      z[l] = (double)Z[i * d + l];
    double mx = point_logits(m, z, &cs);
    /* Softmax and log-sum-exp in float after subtracting the max. */
    float Sf = 0.0f;
    for (size_t k = 0; k < K; k++) {
      float t = expf((float)(w[k] - mx));
      w[k] = (double)t; /* exact: w holds float values */
      Sf += t;
    }
    if (out->logq)
      out->logq[i] = (float)(cs.logq0 + mx) + logf(Sf);
    for (size_t k = 0; k < K; k++) {
      float rk = (float)w[k] / Sf;
      w[k] = (double)rk;
      if (out->resp)
        out->resp[i * K + k] = rk;
    }
    if (!out->mean && !out->resid)
      continue;
    point_mean_resid(m, z, w, &cs, mv, rv);
    for (size_t l = 0; l < d; l++) {
      if (out->mean)
        out->mean[i * d + l] = (float)mv[l];
      if (out->resid)
        out->resid[i * d + l] = (float)rv[l];
    }
  }
  return CRATE_STATUS_OK;
}
