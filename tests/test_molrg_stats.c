/* test_molrg_stats.c: Monte Carlo identities of the MoLRG posterior
 * (MATH.md §3.3-§3.4), catalogue rows B1-B4 (§6 B).
 *
 * Fixture: d = 6, K = 3, p_k = 2, random incoherent bases, pi = .5/.3/.2.
 * Seeds are fixed, so every figure is reproducible bit for bit.  A row
 * passes when |estimate - truth| <= 4 SE with SE from the same samples; each
 * row also runs a negative control (a deliberately wrong denoiser or model)
 * and checks that the same statistic rejects it, so the tests can fail.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

enum { D = 6, K = 3 };
static const size_t P222[K] = {2, 2, 2};
static const double PI532[K] = {0.5, 0.3, 0.2};

static crate_molrg *make_model(const double *pi, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_INIT);
  crate_molrg *m = NULL;
  int st = crate_molrg_create_random(&m, D, K, P222, pi, CRATE_SUBSPACES_INCOHERENT, &r);
  crate_check(st == CRATE_STATUS_OK, "create_random: %s", crate_error_message());
  return m;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  assert_non_null(p);
  return p;
}

/* Prior-weighted linear denoiser a sum_k pi_k U_k U_k^T z: the large-sigma
 * limit of m (§3.6), used as a wrong denoiser in negative controls.
 * Z, out: (M, d). */
static void prior_weighted_mean(const crate_molrg *m, const double *Z, size_t M, double sigma,
                                double *out) {
  crate_subspaces U = crate_molrg_subspaces(m);
  const double *pi = crate_molrg_weights(m);
  double a = 1.0 / (1.0 + sigma * sigma);
  for (size_t i = 0; i < M; i++) {
    double *o = out + i * D;
    memset(o, 0, D * sizeof *o);
    for (size_t k = 0, off = 0; k < K; off += U.p[k], k++)
      for (size_t j = 0; j < U.p[k]; j++) {
        const double *u = U.Ut + (off + j) * D;
        double t = 0.0;
        for (size_t l = 0; l < D; l++)
          t += u[l] * Z[i * D + l];
        for (size_t l = 0; l < D; l++)
          o[l] += a * pi[k] * t * u[l];
      }
  }
}

/* ---- B1: posterior mean vs self-normalised importance sampling ------------- */

/* SNIS estimate of E[z_nat | z] with prior proposals X (Mp, d).  est, se:
 * (d); se via the effective sample size, se_delta via the delta method. */
static double snis(const double *X, size_t Mp, const double *z, double sigma, double *logw,
                   double *est, double *se, double *se_delta) {
  double mx = -INFINITY;
  for (size_t i = 0; i < Mp; i++) {
    double r = 0.0;
    for (size_t l = 0; l < D; l++)
      r += (z[l] - X[i * D + l]) * (z[l] - X[i * D + l]);
    logw[i] = -r / (2.0 * sigma * sigma);
    mx = logw[i] > mx ? logw[i] : mx;
  }
  double sw = 0.0, sw2 = 0.0, num[D] = {0};
  for (size_t i = 0; i < Mp; i++) {
    double w = exp(logw[i] - mx);
    logw[i] = w;
    sw += w;
    sw2 += w * w;
    for (size_t l = 0; l < D; l++)
      num[l] += w * X[i * D + l];
  }
  for (size_t l = 0; l < D; l++)
    est[l] = num[l] / sw;
  double ess = sw * sw / sw2, var[D] = {0}, vd[D] = {0};
  for (size_t i = 0; i < Mp; i++) {
    double w = logw[i];
    for (size_t l = 0; l < D; l++) {
      double e = X[i * D + l] - est[l];
      var[l] += w * e * e;
      vd[l] += w * w * e * e;
    }
  }
  for (size_t l = 0; l < D; l++) {
    se[l] = sqrt(var[l] / sw / ess);
    se_delta[l] = sqrt(vd[l]) / sw;
  }
  return ess;
}

static void test_b1_posterior_mean_is(void **state) {
  (void)state;
  enum { MP = 200000, NQ = 4 };
  const double sigma = 0.5;
  crate_molrg *m = make_model(PI532, 31);
  double *X = xmalloc(MP * D * sizeof *X), *lw = xmalloc(MP * sizeof *lw);
  crate_rng r;
  crate_rng_init(&r, 32, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r, MP, 0.0, NULL, X, NULL), CRATE_STATUS_OK);
  double Zq[NQ * D], Mq[NQ * D], Wq[NQ * D];
  crate_rng_init(&r, 33, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r, NQ, sigma, Zq, NULL, NULL), CRATE_STATUS_OK);
  crate_molrg_post o = {.mean = Mq};
  assert_int_equal(crate_molrg_posterior(m, Zq, NQ, sigma, &o), CRATE_STATUS_OK);
  prior_weighted_mean(m, Zq, NQ, sigma, Wq);
  double worst_t = 0.0, worst_err = 0.0, worst_se_ratio = 0.0, wrong_t = 0.0;
  for (size_t q = 0; q < NQ; q++) {
    double est[D], se[D], sed[D];
    double ess = snis(X, MP, Zq + q * D, sigma, lw, est, se, sed);
    double tq = 0.0, eq = 0.0, wq = 0.0;
    for (size_t l = 0; l < D; l++) {
      double e = fabs(est[l] - Mq[q * D + l]);
      tq = fmax(tq, e / se[l]);
      eq = fmax(eq, e);
      wq = fmax(wq, fabs(est[l] - Wq[q * D + l]) / se[l]);
      worst_se_ratio = fmax(worst_se_ratio, sed[l] / se[l]);
    }
    crate_report("B1",
                 "sigma = %.2f, point %zu: ESS %.0f of %d; max |IS - m| %.2e, max |t| %.2f "
                 "(bound 4); prior-weighted denoiser |t| %.1f",
                 sigma, q, ess, MP, eq, tq, wq);
    worst_t = fmax(worst_t, tq);
    worst_err = fmax(worst_err, eq);
    wrong_t = fmax(wrong_t, wq);
  }
  crate_report("B1",
               "max |t| %.2f over %d coordinates (bound 4); delta-method SE / ESS SE <= "
               "%.2f; negative control max |t| %.1f (must exceed 4)",
               worst_t, NQ * D, worst_se_ratio, wrong_t);
  crate_check(worst_t <= 4.0, "IS disagrees with the closed form: |t| %.2f", worst_t);
  crate_check(wrong_t > 4.0, "the test cannot tell a wrong denoiser: |t| %.2f", wrong_t);
  free(X);
  free(lw);
  crate_molrg_destroy(m);
}

/* ---- B2: orthogonality principle ------------------------------------------- */

/* Max over entries of |mean_i(e_i phi_i^T)| / SE for e (M, d), phi (M, q). */
static double max_t_cross(const double *E, const double *Phi, size_t M, size_t q) {
  double worst = 0.0;
  for (size_t a = 0; a < D; a++)
    for (size_t b = 0; b < q; b++) {
      double s = 0.0, s2 = 0.0;
      for (size_t i = 0; i < M; i++) {
        double v = E[i * D + a] * Phi[i * q + b];
        s += v;
        s2 += v * v;
      }
      double mean = s / (double)M, var = s2 / (double)M - mean * mean;
      if (var <= 0.0)
        continue; /* phi_b identically zero on the sample */
      worst = fmax(worst, fabs(mean) / sqrt(var / (double)M));
    }
  return worst;
}

static void test_b2_orthogonality(void **state) {
  (void)state;
  enum { M = 100000 };
  const double sigma = 0.5;
  crate_molrg *m = make_model(PI532, 41);
  double *Z = xmalloc(M * D * sizeof *Z), *X = xmalloc(M * D * sizeof *X),
         *Mn = xmalloc(M * D * sizeof *Mn), *R = xmalloc(M * K * sizeof *R),
         *E = xmalloc(M * D * sizeof *E), *Ew = xmalloc(M * D * sizeof *Ew),
         *Wm = xmalloc(M * D * sizeof *Wm), *H = xmalloc(M * K * sizeof *H);
  crate_rng r;
  crate_rng_init(&r, 42, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r, M, sigma, Z, X, NULL), CRATE_STATUS_OK);
  crate_molrg_post o = {.mean = Mn, .resp = R};
  assert_int_equal(crate_molrg_posterior(m, Z, M, sigma, &o), CRATE_STATUS_OK);
  prior_weighted_mean(m, Z, M, sigma, Wm);
  for (size_t i = 0; i < M; i++) {
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
      best = R[i * K + k] > R[i * K + best] ? k : best;
    for (size_t k = 0; k < K; k++)
      H[i * K + k] = k == best ? 1.0 : 0.0;
    for (size_t l = 0; l < D; l++) {
      E[i * D + l] = X[i * D + l] - Mn[i * D + l];
      Ew[i * D + l] = X[i * D + l] - Wm[i * D + l];
    }
  }
  double tz = max_t_cross(E, Z, M, D), tm = max_t_cross(E, Mn, M, D), th = max_t_cross(E, H, M, K);
  double wz = max_t_cross(Ew, Z, M, D), wm = max_t_cross(Ew, Wm, M, D),
         wh = max_t_cross(Ew, H, M, K);
  crate_report("B2",
               "sigma = %.2f, M = %d: max |t| of E[(z_nat - m) phi^T]: phi = z %.2f, "
               "phi = m %.2f, phi = one-hot argmax %.2f (bound 4 each)",
               sigma, M, tz, tm, th);
  crate_report("B2",
               "negative control, prior-weighted linear denoiser: phi = z %.1f, phi = its "
               "output %.1f, phi = one-hot %.1f (max must exceed 4)",
               wz, wm, wh);
  crate_check(tz <= 4.0 && tm <= 4.0 && th <= 4.0, "orthogonality violated");
  crate_check(fmax(wz, fmax(wm, wh)) > 4.0, "the test cannot tell a wrong denoiser");
  free(Z);
  free(X);
  free(Mn);
  free(R);
  free(E);
  free(Ew);
  free(Wm);
  free(H);
  crate_molrg_destroy(m);
}

/* ---- B3: MMSE = E tr C; perturbations are worse ---------------------------- */

static void test_b3_mmse_trace(void **state) {
  (void)state;
  enum { M = 100000 };
  const double sigmas[2] = {0.3, 1.0};
  crate_molrg *m = make_model(PI532, 51);
  double *Z = xmalloc(M * D * sizeof *Z), *X = xmalloc(M * D * sizeof *X),
         *Mn = xmalloc(M * D * sizeof *Mn), *T = xmalloc(M * sizeof *T),
         *v = xmalloc(M * sizeof *v);
  for (int s = 0; s < 2; s++) {
    double sigma = sigmas[s];
    crate_rng r;
    crate_rng_init(&r, 52, CRATE_RNG_NOISE);
    assert_int_equal(crate_molrg_sample(m, &r, M, sigma, Z, X, NULL), CRATE_STATUS_OK);
    crate_molrg_post o = {.mean = Mn, .trcov = T};
    assert_int_equal(crate_molrg_posterior(m, Z, M, sigma, &o), CRATE_STATUS_OK);
    double mse = 0.0, etr = 0.0, mean_d, se_d;
    for (size_t i = 0; i < M; i++) {
      double e = 0.0;
      for (size_t l = 0; l < D; l++)
        e += (X[i * D + l] - Mn[i * D + l]) * (X[i * D + l] - Mn[i * D + l]);
      mse += e;
      etr += T[i];
      v[i] = e - T[i]; /* paired difference */
    }
    mse /= M;
    etr /= M;
    crate_mean_se(v, M, &mean_d, &se_d);
    crate_report("B3",
                 "sigma = %.1f: MMSE %.5f vs E tr C %.5f, difference %.2e = %.2f SE "
                 "(bound 4)",
                 sigma, mse, etr, mean_d, mean_d / se_d);
    crate_check(fabs(mean_d) <= 4.0 * se_d, "MMSE vs E tr C: %.2f SE", mean_d / se_d);

    /* Perturbations m + eps g(z): a random linear map, a constant offset, a
     * rescaling.  Each must raise the empirical MSE by more than 4 SE. */
    double A[D * D], b[D];
    crate_rng_init(&r, 53 + (uint64_t)s, CRATE_RNG_PROBE);
    crate_rng_normal_fill(&r, A, D * D);
    crate_rng_normal_fill(&r, b, D);
    const double eps = 0.05;
    double worst_margin = INFINITY;
    for (int kind = 0; kind < 3; kind++) {
      for (size_t i = 0; i < M; i++) {
        const double *z = Z + i * D, *mi = Mn + i * D, *x = X + i * D;
        double e0 = 0.0, e1 = 0.0;
        for (size_t l = 0; l < D; l++) {
          double g = 0.0;
          if (kind == 0) {
            for (size_t j = 0; j < D; j++)
              g += A[l * D + j] * z[j] / sqrt((double)D);
          } else if (kind == 1) {
            g = b[l];
          } else {
            g = mi[l];
          }
          double mp = mi[l] + eps * g;
          e0 += (x[l] - mi[l]) * (x[l] - mi[l]);
          e1 += (x[l] - mp) * (x[l] - mp);
        }
        v[i] = e1 - e0;
      }
      double dm, ds;
      crate_mean_se(v, M, &dm, &ds);
      static const char *names[3] = {"random linear map", "constant offset", "rescaling"};
      crate_report("B3", "sigma = %.1f: m + %.2f * (%s): MSE up by %.3e = %.1f SE (must be > 4)",
                   sigma, eps, names[kind], dm, dm / ds);
      worst_margin = fmin(worst_margin, dm / ds);
    }
    crate_check(worst_margin > 4.0, "a perturbed denoiser was not worse: %.2f SE", worst_margin);
  }
  free(Z);
  free(X);
  free(Mn);
  free(T);
  free(v);
  crate_molrg_destroy(m);
}

/* ---- B4: responsibility calibration and argmax accuracy -------------------- */

static void test_b4_resp_calibration(void **state) {
  (void)state;
  enum { M = 100000, NS = 6 };
  const double sigmas[NS] = {0.05, 0.1, 0.2, 0.5, 1.0, 2.0};
  crate_molrg *m = make_model(PI532, 61);
  crate_molrg *mq = make_model(NULL, 61); /* same bases, equal weights: wrong prior */
  double *Z = xmalloc(M * D * sizeof *Z), *X = xmalloc(M * D * sizeof *X),
         *R = xmalloc(M * K * sizeof *R), *v = xmalloc(M * sizeof *v);
  size_t *lab = xmalloc(M * sizeof *lab);
  double acc[NS], worst_t = 0.0, worst_pair = 0.0, wrong_t = 0.0;
  for (int s = 0; s < NS; s++) {
    /* Common random numbers: the same seed gives the same clean points,
     * labels and noise directions at every sigma. */
    crate_rng r;
    crate_rng_init(&r, 62, CRATE_RNG_NOISE);
    assert_int_equal(crate_molrg_sample(m, &r, M, sigmas[s], Z, X, lab), CRATE_STATUS_OK);
    crate_molrg_post o = {.resp = R};
    assert_int_equal(crate_molrg_posterior(m, Z, M, sigmas[s], &o), CRATE_STATUS_OK);
    double hits = 0.0, ts = 0.0, tp = 0.0;
    for (size_t i = 0; i < M; i++) {
      size_t best = 0;
      for (size_t k = 1; k < K; k++)
        best = R[i * K + k] > R[i * K + best] ? k : best;
      hits += best == lab[i];
    }
    double mk[K];
    for (size_t k = 0; k < K; k++) {
      double mean, se;
      for (size_t i = 0; i < M; i++)
        v[i] = R[i * K + k];
      crate_mean_se(v, M, &mean, &se);
      mk[k] = mean;
      ts = fmax(ts, fabs(mean - PI532[k]) / se);
      /* paired with the true label: E[1{k* = k} - pi_k(z)] = 0 */
      for (size_t i = 0; i < M; i++)
        v[i] = (lab[i] == k ? 1.0 : 0.0) - R[i * K + k];
      crate_mean_se(v, M, &mean, &se);
      tp = fmax(tp, fabs(mean) / se);
    }
    acc[s] = hits / M;
    crate_report("B4",
                 "sigma = %.2f: E pi_k(z) = %.4f/%.4f/%.4f vs .5/.3/.2, max |t| %.2f; "
                 "paired with labels max |t| %.2f (bound 4); argmax accuracy %.4f",
                 sigmas[s], mk[0], mk[1], mk[2], ts, tp, acc[s]);
    worst_t = fmax(worst_t, ts);
    worst_pair = fmax(worst_pair, tp);
    if (sigmas[s] == 1.0) {
      /* Negative control: responsibilities of the equal-weight model. */
      assert_int_equal(crate_molrg_posterior(mq, Z, M, sigmas[s], &o), CRATE_STATUS_OK);
      for (size_t k = 0; k < K; k++) {
        double mean, se;
        for (size_t i = 0; i < M; i++)
          v[i] = R[i * K + k];
        crate_mean_se(v, M, &mean, &se);
        wrong_t = fmax(wrong_t, fabs(mean - PI532[k]) / se);
      }
      crate_report("B4",
                   "negative control (equal-weight model) at sigma = 1: max |t| %.1f "
                   "(must exceed 4)",
                   wrong_t);
    }
  }
  bool mono = true;
  for (int s = 1; s < NS; s++)
    mono = mono && acc[s] < acc[s - 1];
  crate_report("B4", "accuracy %.4f %.4f %.4f %.4f %.4f %.4f over sigma = .05 ... 2: %s", acc[0],
               acc[1], acc[2], acc[3], acc[4], acc[5],
               mono ? "strictly decreasing" : "NOT monotone");
  crate_check(worst_t <= 4.0, "calibration |t| %.2f", worst_t);
  crate_check(worst_pair <= 4.0, "paired calibration |t| %.2f", worst_pair);
  crate_check(wrong_t > 4.0, "the test cannot tell a wrong prior: |t| %.2f", wrong_t);
  crate_check(mono, "argmax accuracy not decreasing in sigma");
  free(Z);
  free(X);
  free(R);
  free(v);
  free(lab);
  crate_molrg_destroy(m);
  crate_molrg_destroy(mq);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b1_posterior_mean_is),
      cmocka_unit_test(test_b2_orthogonality),
      cmocka_unit_test(test_b3_mmse_trace),
      cmocka_unit_test(test_b4_resp_calibration),
  };
  return CRATE_RUN("molrg_stats", tests, argc, argv);
}
