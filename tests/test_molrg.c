/* test_molrg.c: the MoLRG closed forms (MATH.md §3), catalogue rows A1-A8
 * (§6 A), plus the create/sample/posterior contracts and their error
 * statuses.
 *
 * References are independent of the code under test: A1/A2 evaluate
 * sum_k pi_k N(z; 0, U_k U_k^T + sigma^2 I) densely with Cholesky; A3-A6 use
 * central finite differences of log q; A7 uses the analytic limits of §3.6;
 * A8 compares the float twin with the double path and with exact symmetric
 * ties.  Fixture: d = 6, K = 3, random incoherent bases, fixed seeds.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

#define DMAX 16

static const size_t P222[3] = {2, 2, 2};
static const size_t P123[3] = {1, 2, 3};
static const double PI532[3] = {0.5, 0.3, 0.2};

static crate_molrg *make_model(size_t d, size_t K, const size_t *p, const double *pi,
                               crate_subspaces_kind kind, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_INIT);
  crate_molrg *m = NULL;
  int st = crate_molrg_create_random(&m, d, K, p, pi, kind, &r);
  crate_check(st == CRATE_STATUS_OK, "create_random: %s", crate_error_message());
  return m;
}

/* Query points Z (M, d): the first half drawn from the model at sigma, the
 * rest generic N(0, I) points. */
static void query_points(const crate_molrg *m, double sigma, size_t M, uint64_t seed, double *Z) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  size_t d = crate_molrg_dim(m), half = M / 2;
  assert_int_equal(crate_molrg_sample(m, &r, half, sigma, Z, NULL, NULL), CRATE_STATUS_OK);
  crate_rng_normal_fill(&r, Z + half * d, (M - half) * d);
}

/* Dense reference: out_k = log pi_k + log N(z; 0, U_k U_k^T + s^2 I) with a
 * Cholesky log-det and solve.  z: (d), out: (K). */
static void dense_log_joint(const crate_molrg *m, const double *z, double sigma, double *out) {
  crate_subspaces U = crate_molrg_subspaces(m);
  const double *pi = crate_molrg_weights(m);
  size_t d = U.d, off = 0;
  assert_true(d <= DMAX);
  for (size_t k = 0; k < U.K; k++) {
    double S[DMAX * DMAX], b[DMAX];
    const double *B = U.Ut + off * d;
    for (size_t i = 0; i < d; i++)
      for (size_t j = 0; j < d; j++) {
        double s = (i == j) ? sigma * sigma : 0.0;
        for (size_t r = 0; r < U.p[k]; r++)
          s += B[r * d + i] * B[r * d + j];
        S[i * d + j] = s;
      }
    assert_int_equal(crate__dpotrf(d, S, d, "Sigma_k"), CRATE_STATUS_OK);
    double logdet = 0.0, quad = 0.0;
    for (size_t i = 0; i < d; i++)
      logdet += 2.0 * log(S[i * d + i]);
    memcpy(b, z, d * sizeof *b);
    assert_int_equal(crate__dpotrs(d, 1, S, d, b, 1), CRATE_STATUS_OK);
    for (size_t i = 0; i < d; i++)
      quad += z[i] * b[i];
    out[k] = log(pi[k]) - 0.5 * ((double)d * log(2.0 * 3.14159265358979323846) + logdet + quad);
    off += U.p[k];
  }
}

static double lse(const double *v, size_t n) {
  double mx = -INFINITY, s = 0.0;
  for (size_t i = 0; i < n; i++)
    mx = v[i] > mx ? v[i] : mx;
  for (size_t i = 0; i < n; i++)
    s += exp(v[i] - mx);
  return mx + log(s);
}

static double logq_at(crate_molrg *m, const double *z, double sigma) {
  double lq = 0.0;
  crate_molrg_post o = {.logq = &lq};
  assert_int_equal(crate_molrg_posterior(m, z, 1, sigma, &o), CRATE_STATUS_OK);
  return lq;
}

static void mean_at(crate_molrg *m, const double *z, double sigma, double *mean) {
  crate_molrg_post o = {.mean = mean};
  assert_int_equal(crate_molrg_posterior(m, z, 1, sigma, &o), CRATE_STATUS_OK);
}

/* Least-squares log-log slope after dropping the coarsest point (index 0)
 * and any point below the round-off floor (MATH.md §6 rules). */
static double fit_slope(const double *x, const double *y, size_t n, double floor_) {
  double xs[32], ys[32];
  size_t k = 0;
  for (size_t i = 1; i < n && k < 32; i++)
    if (y[i] > floor_) {
      xs[k] = x[i];
      ys[k] = y[i];
      k++;
    }
  crate_check(k >= 3, "only %zu points above the round-off floor", k);
  return crate_loglog_slope(xs, ys, k);
}

static bool starts_with_molrg(void) {
  return strncmp(crate_error_message(), "molrg: ", 7) == 0;
}

/* ---- A1 / A2: closed form vs dense evaluation ------------------------------ */

static void test_a1_logq_woodbury(void **state) {
  (void)state;
  const double sigmas[4] = {1e-3, 0.1, 1.0, 30.0};
  const crate_subspaces_kind kinds[2] = {CRATE_SUBSPACES_INCOHERENT, CRATE_SUBSPACES_ORTHOGONAL};
  enum { M = 40, D = 6, K = 3 };
  for (int kk = 0; kk < 2; kk++) {
    crate_molrg *m = make_model(D, K, P123, PI532, kinds[kk], 11);
    for (int s = 0; s < 4; s++) {
      double Z[M * D], lq[M], ref[M], joint[K];
      query_points(m, sigmas[s], M, 100 + (uint64_t)s, Z);
      crate_molrg_post o = {.logq = lq};
      assert_int_equal(crate_molrg_posterior(m, Z, M, sigmas[s], &o), CRATE_STATUS_OK);
      for (size_t i = 0; i < M; i++) {
        dense_log_joint(m, Z + i * D, sigmas[s], joint);
        ref[i] = lse(joint, K);
      }
      double rel = crate_rel_linf(lq, ref, M), bound = sigmas[s] < 1e-2 ? 1e-9 : 1e-12;
      crate_report("A1",
                   "%s, p = 1/2/3, pi = .5/.3/.2, sigma = %g: log q rel diff %.3e "
                   "(bound %.0e)",
                   kk ? "orthogonal" : "incoherent", sigmas[s], rel, bound);
      crate_check(rel <= bound, "sigma %g: rel %.3e", sigmas[s], rel);
    }
    crate_molrg_destroy(m);
  }
}

static void test_a2_resp_bayes(void **state) {
  (void)state;
  const double sigmas[4] = {1e-3, 0.1, 1.0, 30.0};
  enum { M = 40, D = 6, K = 3 };
  crate_molrg *m = make_model(D, K, P123, PI532, CRATE_SUBSPACES_INCOHERENT, 12);
  for (int s = 0; s < 4; s++) {
    double Z[M * D], R[M * K], ref[M * K], joint[K], worst_sum = 0.0, minmax = 1.0;
    query_points(m, sigmas[s], M, 200 + (uint64_t)s, Z);
    crate_molrg_post o = {.resp = R};
    assert_int_equal(crate_molrg_posterior(m, Z, M, sigmas[s], &o), CRATE_STATUS_OK);
    for (size_t i = 0; i < M; i++) {
      dense_log_joint(m, Z + i * D, sigmas[s], joint);
      double l = lse(joint, K), sum = 0.0, mx = 0.0;
      for (size_t k = 0; k < K; k++) {
        ref[i * K + k] = exp(joint[k] - l);
        sum += R[i * K + k];
        mx = R[i * K + k] > mx ? R[i * K + k] : mx;
      }
      worst_sum = fabs(sum - 1.0) > worst_sum ? fabs(sum - 1.0) : worst_sum;
      minmax = mx < minmax ? mx : minmax;
    }
    double diff = crate_rel_linf(R, ref, M * K);
    crate_report("A2",
                 "sigma = %g: responsibilities vs dense Bayes rule %.3e (bound 1e-12); "
                 "max |row sum - 1| %.3e (bound 1e-15); least confident max_k pi_k(z) %.3f",
                 sigmas[s], diff, worst_sum, minmax);
    crate_check(diff <= 1e-12, "sigma %g: %.3e", sigmas[s], diff);
    crate_check(worst_sum <= 1e-15, "sigma %g: row sum off by %.3e", sigmas[s], worst_sum);
  }
  crate_molrg_destroy(m);
}

/* ---- A3 / A4: score and first-order Tweedie vs finite differences ---------- */

/* Central-difference gradient of log q at z with step h.  g: (d). */
static void fd_grad(crate_molrg *m, const double *z, double sigma, double h, double *g) {
  size_t d = crate_molrg_dim(m);
  double zp[DMAX];
  for (size_t j = 0; j < d; j++) {
    memcpy(zp, z, d * sizeof *zp);
    zp[j] = z[j] + h;
    double fp = logq_at(m, zp, sigma);
    zp[j] = z[j] - h;
    double fm = logq_at(m, zp, sigma);
    g[j] = (fp - fm) / (2.0 * h);
  }
}

enum { NFD = 8, DFX = 6, KFX = 3 };
static const double FD_SIGMAS[3] = {0.1, 0.3, 1.0};
/* h = FD_C * sigma.  Near a decision boundary the responsibilities switch
 * over a width of about sigma^2 / ||z||, so h must be small against that for
 * the 1e-6 gate, yet large enough that truncation (h^2) still dominates
 * round-off (eps |log q| / h): the printed ratio 4 confirms it. */
#define FD_C 5e-4

static void test_a3_score_fd(void **state) {
  (void)state;
  crate_molrg *m = make_model(DFX, KFX, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 13);
  for (int s = 0; s < 3; s++) {
    double sigma = FD_SIGMAS[s], Z[NFD * DFX], S[NFD * DFX], G1[NFD * DFX], G2[NFD * DFX];
    query_points(m, sigma, NFD, 300 + (uint64_t)s, Z);
    crate_molrg_post o = {.score = S};
    assert_int_equal(crate_molrg_posterior(m, Z, NFD, sigma, &o), CRATE_STATUS_OK);
    double h = FD_C * sigma;
    for (size_t i = 0; i < NFD; i++) {
      fd_grad(m, Z + i * DFX, sigma, h, G1 + i * DFX);
      fd_grad(m, Z + i * DFX, sigma, h / 2, G2 + i * DFX);
    }
    double e1 = crate_rel_linf(G1, S, NFD * DFX), e2 = crate_rel_linf(G2, S, NFD * DFX);
    crate_report("A3",
                 "sigma = %g: score vs central FD, h = %.1e: %.3e, h/2: %.3e, ratio %.3f "
                 "(bounds 1e-6, 4 +- 0.6)",
                 sigma, h, e1, e2, e1 / e2);
    crate_check(e1 <= 1e-6 && e2 <= 1e-6, "errors %.3e %.3e", e1, e2);
    crate_check(fabs(e1 / e2 - 4.0) <= 0.6, "ratio %.3f", e1 / e2);
  }
  crate_molrg_destroy(m);
}

static void test_a4_tweedie_first_order(void **state) {
  (void)state;
  crate_molrg *m = make_model(DFX, KFX, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 14);
  for (int s = 0; s < 3; s++) {
    double sigma = FD_SIGMAS[s], s2 = sigma * sigma;
    double Z[NFD * DFX], Mn[NFD * DFX], T1[NFD * DFX], T2[NFD * DFX], g[DFX];
    query_points(m, sigma, NFD, 400 + (uint64_t)s, Z);
    crate_molrg_post o = {.mean = Mn};
    assert_int_equal(crate_molrg_posterior(m, Z, NFD, sigma, &o), CRATE_STATUS_OK);
    double h = FD_C * sigma;
    for (size_t i = 0; i < NFD; i++) {
      fd_grad(m, Z + i * DFX, sigma, h, g);
      for (size_t j = 0; j < DFX; j++)
        T1[i * DFX + j] = Z[i * DFX + j] + s2 * g[j];
      fd_grad(m, Z + i * DFX, sigma, h / 2, g);
      for (size_t j = 0; j < DFX; j++)
        T2[i * DFX + j] = Z[i * DFX + j] + s2 * g[j];
    }
    double e1 = crate_rel_linf(T1, Mn, NFD * DFX), e2 = crate_rel_linf(T2, Mn, NFD * DFX);
    crate_report("A4",
                 "sigma = %g: m vs z + sigma^2 FD grad, h = %.1e: %.3e, h/2: %.3e, "
                 "ratio %.3f (bounds 1e-6, 4 +- 0.6)",
                 sigma, h, e1, e2, e1 / e2);
    crate_check(e1 <= 1e-6 && e2 <= 1e-6, "errors %.3e %.3e", e1, e2);
    crate_check(fabs(e1 / e2 - 4.0) <= 0.6, "ratio %.3f", e1 / e2);
  }
  crate_molrg_destroy(m);
}

/* ---- A5: second-order Tweedie, symmetry, PSD ------------------------------- */

static void test_a5_tweedie_second_order(void **state) {
  (void)state;
  enum { D = DFX, K = KFX };
  crate_molrg *m = make_model(D, K, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 15);
  double worst_j = 0.0, worst_sym = 0.0, worst_eig = 1.0, max_gain = 0.0;
  for (int s = 0; s < 3; s++) {
    double sigma = FD_SIGMAS[s], s2 = sigma * sigma, Z[NFD * D], C[NFD * D * D];
    query_points(m, sigma, NFD, 500 + (uint64_t)s, Z);
    crate_molrg_post o = {.cov = C};
    assert_int_equal(crate_molrg_posterior(m, Z, NFD, sigma, &o), CRATE_STATUS_OK);
    double h = 1e-4 * sigma, ej = 0.0;
    for (size_t i = 0; i < NFD; i++) {
      double J[D * D], Cs[D * D], zp[D], mp[D], mm[D], w[D], A[D * D];
      const double *z = Z + i * D, *Ci = C + i * D * D;
      for (size_t j = 0; j < D; j++) {
        memcpy(zp, z, sizeof zp);
        zp[j] = z[j] + h;
        mean_at(m, zp, sigma, mp);
        zp[j] = z[j] - h;
        mean_at(m, zp, sigma, mm);
        for (size_t r = 0; r < D; r++)
          J[r * D + j] = (mp[r] - mm[r]) / (2 * h); /* d m_r / d z_j */
      }
      for (size_t r = 0; r < D * D; r++)
        Cs[r] = Ci[r] / s2;
      double e = crate_rel_linf(J, Cs, D * D);
      ej = e > ej ? e : ej;
      double asym = 0.0, cmax = 0.0;
      for (size_t r = 0; r < D; r++)
        for (size_t c = 0; c < D; c++) {
          asym = fmax(asym, fabs(Ci[r * D + c] - Ci[c * D + r]));
          cmax = fmax(cmax, fabs(Ci[r * D + c]));
        }
      worst_sym = fmax(worst_sym, asym / cmax);
      memcpy(A, Ci, sizeof A);
      assert_int_equal(crate__dsyev(D, A, D, w, false), CRATE_STATUS_OK);
      worst_eig = fmin(worst_eig, w[0] / w[D - 1]);
      max_gain = fmax(max_gain, w[D - 1] / s2);
    }
    crate_report("A5", "sigma = %g: FD Jacobian of m vs C/sigma^2 rel %.3e (bound 1e-6)", sigma,
                 ej);
    worst_j = fmax(worst_j, ej);
  }
  /* A rank-deficient C: two planes in d = 6 and small sigma, so C has a
   * 2-dimensional null space whose eigenvalues must come out >= -1e-10. */
  crate_molrg *m2 = make_model(D, 2, P222, NULL, CRATE_SUBSPACES_INCOHERENT, 16);
  {
    double Z[NFD * D], C[NFD * D * D], A[D * D], w[D];
    query_points(m2, 0.05, NFD, 550, Z);
    crate_molrg_post o = {.cov = C};
    assert_int_equal(crate_molrg_posterior(m2, Z, NFD, 0.05, &o), CRATE_STATUS_OK);
    for (size_t i = 0; i < NFD; i++) {
      memcpy(A, C + i * D * D, sizeof A);
      assert_int_equal(crate__dsyev(D, A, D, w, false), CRATE_STATUS_OK);
      worst_eig = fmin(worst_eig, w[0] / w[D - 1]);
    }
  }
  crate_molrg_destroy(m2);
  crate_report("A5",
               "max |C - C^T| / max |C| %.3e (bound 1e-15); min eigenvalue / max %.3e "
               "(bound >= -1e-10); max lambda(C)/sigma^2 %.3f (may exceed 1 near boundaries)",
               worst_sym, worst_eig, max_gain);
  crate_check(worst_j <= 1e-6, "Jacobian %.3e", worst_j);
  crate_check(worst_sym <= 1e-15, "asymmetry %.3e", worst_sym);
  crate_check(worst_eig >= -1e-10, "min eigenvalue ratio %.3e", worst_eig);
  crate_molrg_destroy(m);
}

/* ---- A6: exact Laplacian (divergence) vs FD Laplacian ---------------------- */

static double fd_laplacian(crate_molrg *m, const double *z, double sigma, double h) {
  size_t d = crate_molrg_dim(m);
  double zp[DMAX], f0 = logq_at(m, z, sigma), s = 0.0;
  for (size_t j = 0; j < d; j++) {
    memcpy(zp, z, d * sizeof *zp);
    zp[j] = z[j] + h;
    double fp = logq_at(m, zp, sigma);
    zp[j] = z[j] - h;
    double fm = logq_at(m, zp, sigma);
    s += (fp - 2.0 * f0 + fm) / (h * h);
  }
  return s;
}

static void test_a6_exact_laplacian(void **state) {
  (void)state;
  crate_molrg *m = make_model(DFX, KFX, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 17);
  for (int s = 0; s < 3; s++) {
    double sigma = FD_SIGMAS[s], Z[NFD * DFX], lap[NFD], tr[NFD], L1[NFD], L2[NFD];
    query_points(m, sigma, NFD, 600 + (uint64_t)s, Z);
    crate_molrg_post o = {.lap = lap, .trcov = tr};
    assert_int_equal(crate_molrg_posterior(m, Z, NFD, sigma, &o), CRATE_STATUS_OK);
    double h = 2e-3 * sigma;
    for (size_t i = 0; i < NFD; i++) {
      L1[i] = fd_laplacian(m, Z + i * DFX, sigma, h);
      L2[i] = fd_laplacian(m, Z + i * DFX, sigma, h / 2);
    }
    double e1 = crate_rel_linf(L1, lap, NFD), e2 = crate_rel_linf(L2, lap, NFD);
    crate_report("A6",
                 "sigma = %g: (tr C/sigma^2 - d)/sigma^2 vs FD Laplacian, h = %.1e: %.3e, "
                 "h/2: %.3e (bound 1e-5; ratio %.2f)",
                 sigma, h, e1, e2, e1 / e2);
    crate_check(e1 <= 1e-5 && e2 <= 1e-5, "errors %.3e %.3e", e1, e2);
  }
  crate_molrg_destroy(m);
}

/* ---- A7: limits of §3.6 ---------------------------------------------------- */

static void test_a7_limits(void **state) {
  (void)state;
  enum { D = DFX, K = KFX };
  crate_molrg *m = make_model(D, K, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 18);
  crate_subspaces U = crate_molrg_subspaces(m);
  const double *U0t = U.Ut; /* (2, d) = U_0^T */
  const double a[2] = {1.2, -0.7};
  double zin[D], P0z[D];
  for (size_t l = 0; l < D; l++)
    zin[l] = a[0] * U0t[l] + a[1] * U0t[D + l];
  const double floor_ = 100 * DBL_EPSILON;

  /* (i) z in span U_0: ||m - z|| = O(sigma^2). */
  {
    const double sg[6] = {0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625};
    double err[6], mv[D];
    for (int s = 0; s < 6; s++) {
      mean_at(m, zin, sg[s], mv);
      double e = 0.0, nz = 0.0;
      for (size_t l = 0; l < D; l++) {
        e += (mv[l] - zin[l]) * (mv[l] - zin[l]);
        nz += zin[l] * zin[l];
      }
      err[s] = sqrt(e / nz);
    }
    double slope = fit_slope(sg, err, 6, floor_);
    crate_report("A7",
                 "(i) z in span U_0: ||m - z||/||z|| %.3e -> %.3e, fitted exponent %.3f "
                 "(2 +- 0.1)",
                 err[0], err[5], slope);
    crate_check(fabs(slope - 2.0) <= 0.1, "slope %.3f", slope);
  }
  /* (ii) generic z near U_0: m -> U_0 U_0^T z. */
  {
    const double sg[7] = {1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5};
    double z[D], v[D], err[7], mv[D];
    crate_rng r;
    crate_rng_init(&r, 7, CRATE_RNG_NOISE);
    crate_rng_normal_fill(&r, v, D);
    /* remove the U_0 part of v and scale it to norm 0.05 */
    double c0 = 0.0, c1 = 0.0, nv = 0.0;
    for (size_t l = 0; l < D; l++) {
      c0 += U0t[l] * v[l];
      c1 += U0t[D + l] * v[l];
    }
    for (size_t l = 0; l < D; l++) {
      v[l] -= c0 * U0t[l] + c1 * U0t[D + l];
      nv += v[l] * v[l];
    }
    for (size_t l = 0; l < D; l++) {
      z[l] = zin[l] + 0.05 * v[l] / sqrt(nv);
      P0z[l] = zin[l]; /* U_0 U_0^T z, exact up to the rounding of zin */
    }
    for (int s = 0; s < 7; s++) {
      mean_at(m, z, sg[s], mv);
      err[s] = crate_rel_l2(mv, P0z, D);
    }
    double slope = fit_slope(sg, err, 7, floor_);
    crate_report("A7",
                 "(ii) z at distance 0.05 from U_0: ||m - U_0U_0^T z||/||U_0U_0^T z|| "
                 "%.3e -> %.3e at sigma = 1e-5 (bound 1e-8), fitted exponent %.3f (2 +- 0.1)",
                 err[0], err[6], slope);
    crate_check(err[6] <= 1e-8, "limit error %.3e", err[6]);
    crate_check(fabs(slope - 2.0) <= 0.1, "slope %.3f", slope);
  }
  /* (iii) sigma -> inf: sigma^2 m -> sum_k pi_k U_k U_k^T z. */
  {
    const double sg[9] = {10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5};
    double z[D], T[D], err[9], mv[D];
    crate_rng r;
    crate_rng_init(&r, 8, CRATE_RNG_NOISE);
    crate_rng_normal_fill(&r, z, D);
    memset(T, 0, sizeof T);
    for (size_t k = 0, off = 0; k < K; off += U.p[k], k++)
      for (size_t j = 0; j < U.p[k]; j++) {
        const double *u = U.Ut + (off + j) * D;
        double t = 0.0;
        for (size_t l = 0; l < D; l++)
          t += u[l] * z[l];
        for (size_t l = 0; l < D; l++)
          T[l] += PI532[k] * t * u[l];
      }
    for (int s = 0; s < 9; s++) {
      mean_at(m, z, sg[s], mv);
      for (size_t l = 0; l < D; l++)
        mv[l] *= sg[s] * sg[s];
      err[s] = crate_rel_l2(mv, T, D);
    }
    double slope = fit_slope(sg, err, 9, floor_);
    crate_report("A7",
                 "(iii) sigma -> inf: ||sigma^2 m - sum pi_k P_k z||/||.|| %.3e -> %.3e at "
                 "sigma = 1e5 (bound 1e-8), fitted exponent %.3f (-2 +- 0.1)",
                 err[0], err[8], slope);
    crate_check(err[8] <= 1e-8, "limit error %.3e", err[8]);
    crate_check(fabs(slope + 2.0) <= 0.1, "slope %.3f", slope);
  }
  crate_molrg_destroy(m);
}

/* ---- A8: stability at sigma = 1e-4, float vs double ------------------------ */

static bool finite_all(const double *x, size_t n) {
  return crate__all_finite(x, n);
}
static bool finite_allf(const float *x, size_t n) {
  return crate__all_finitef(x, n);
}

static void test_a8_stability_float(void **state) {
  (void)state;
  enum { D = DFX, K = KFX, MS = 200, M = MS + 2 };
  const double sigma = 1e-4, s2 = sigma * sigma;
  crate_molrg *m = make_model(D, K, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 19);
  /* A second model with orthogonal bases and equal weights, whose point
   * U_0 a + U_1 a sits exactly on the 0/1 decision boundary: pi_0 = pi_1 = 1/2. */
  crate_molrg *mt = make_model(D, K, P222, NULL, CRATE_SUBSPACES_ORTHOGONAL, 20);
  static float Zf[M * D], Rf[M * K], Mf[M * D], Ef[M * D], Lf[M];
  static double Z[M * D], R[M * K], Mn[M * D], E[M * D], S[M * D], C[M * D * D], T[M], Lp[M], Lq[M];
  crate_rng r;
  crate_rng_init(&r, 21, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r, MS, sigma, Z, NULL, NULL), CRATE_STATUS_OK);
  crate_rng_normal_fill(&r, Z + MS * D, 2 * D); /* two generic points */
  for (size_t i = 0; i < M * D; i++) {
    Zf[i] = (float)Z[i];
    Z[i] = (double)Zf[i]; /* both paths see the same float-representable points */
  }
  crate_molrg_post o = {Lq, R, Mn, E, S, C, T, Lp};
  crate_molrg_postf of = {Lf, Rf, Mf, Ef};
  assert_int_equal(crate_molrg_posterior(m, Z, M, sigma, &o), CRATE_STATUS_OK);
  assert_int_equal(crate_molrg_posteriorf(m, Zf, M, (float)sigma, &of), CRATE_STATUS_OK);
  bool fin = finite_all(Lq, M) && finite_all(R, M * K) && finite_all(Mn, M * D) &&
             finite_all(E, M * D) && finite_all(S, M * D) && finite_all(C, M * D * D) &&
             finite_all(T, M) && finite_all(Lp, M);
  bool finf = finite_allf(Lf, M) && finite_allf(Rf, M * K) && finite_allf(Mf, M * D) &&
              finite_allf(Ef, M * D);
  double er = 0.0, em = 0.0, ee = 0.0, en = 0.0, el = 0.0, ep = 0.0;
  for (size_t i = 0; i < M; i++) {
    double a[D], b[D], nv[D];
    for (size_t k = 0; k < K; k++)
      er = fmax(er, fabs((double)Rf[i * K + k] - R[i * K + k]));
    for (size_t l = 0; l < D; l++) {
      a[l] = (double)Mf[i * D + l];
      b[l] = (double)Ef[i * D + l];
      nv[l] = (double)(Zf[i * D + l] - Mf[i * D + l]); /* naive float z - m */
    }
    /* Diagnostic: the same residual formula with float-rounded bases and
     * float arithmetic throughout (what a float copy of U would give). */
    {
      crate_subspaces U = crate_molrg_subspaces(m);
      float on[D] = {0}, off[D] = {0}, cf = (float)(s2 / (1.0 + s2));
      for (size_t k = 0; k < K; k++) {
        float x[2], y[D], wk = Rf[i * K + k];
        for (size_t j = 0; j < 2; j++) {
          x[j] = 0.0f;
          for (size_t l = 0; l < D; l++)
            x[j] += (float)U.Ut[(2 * k + j) * D + l] * Zf[i * D + l];
        }
        for (size_t l = 0; l < D; l++) {
          y[l] = (float)U.Ut[(2 * k) * D + l] * x[0] + (float)U.Ut[(2 * k + 1) * D + l] * x[1];
          on[l] += wk * y[l];
          off[l] += wk * (Zf[i * D + l] - y[l]);
        }
      }
      double pf[D];
      for (size_t l = 0; l < D; l++)
        pf[l] = (double)(off[l] + cf * on[l]);
      ep = fmax(ep, crate_rel_linf(pf, E + i * D, D));
    }
    em = fmax(em, crate_rel_linf(a, Mn + i * D, D));
    ee = fmax(ee, crate_rel_linf(b, E + i * D, D));
    en = fmax(en, crate_rel_linf(nv, E + i * D, D));
    el = fmax(el, fabs((double)Lf[i] - Lq[i]) / fmax(fabs(Lq[i]), 1.0));
  }
  crate_report("A8",
               "sigma = 1e-4, %d points: double outputs finite: %s; float outputs finite: "
               "%s",
               M, fin ? "yes" : "NO", finf ? "yes" : "NO");
  crate_report("A8",
               "float vs double: resp %.3e, mean %.3e, resid %.3e (bound 1e-4, relative "
               "to each vector's scale); log q %.3e",
               er, em, ee, el);
  crate_report("A8",
               "naive float z - m vs exact residual %.3e; cancellation-free float "
               "residual %.3e (must be smaller by >= 10x); the same formula with float bases "
               "and float arithmetic %.3e (diagnostic: ~eps_f ||z|| / sigma)",
               en, ee, ep);
  crate_check(fin && finf, "non-finite output");
  crate_check(er <= 1e-4 && em <= 1e-4 && ee <= 1e-4, "resp %.3e mean %.3e resid %.3e", er, em, ee);
  crate_check(el <= 1e-4, "log q %.3e", el);
  crate_check(en >= 10.0 * ee, "naive %.3e vs cancellation-free %.3e", en, ee);

  /* Exact tie on the decision boundary (logits about -5e7 in the §3.3 form). */
  {
    crate_subspaces U = crate_molrg_subspaces(mt);
    double zt[D], rt[K];
    float zft[D], rft[K];
    for (size_t l = 0; l < D; l++)
      zt[l] = 0.9 * U.Ut[0 * D + l] + 0.4 * U.Ut[1 * D + l] + 0.9 * U.Ut[2 * D + l] +
              0.4 * U.Ut[3 * D + l];
    for (size_t l = 0; l < D; l++)
      zft[l] = (float)zt[l];
    crate_molrg_post ot = {.resp = rt};
    crate_molrg_postf oft = {.resp = rft};
    assert_int_equal(crate_molrg_posterior(mt, zt, 1, sigma, &ot), CRATE_STATUS_OK);
    assert_int_equal(crate_molrg_posteriorf(mt, zft, 1, (float)sigma, &oft), CRATE_STATUS_OK);
    double td = fmax(fabs(rt[0] - 0.5), fabs(rt[1] - 0.5));
    /* Rounding z to float moves it off the tie by ~eps_f ||z||, which shifts
     * the logits by O(eps_f ||z||^2 / sigma^2) = O(1): the float path is
     * compared with the double path at the same float point. */
    double zd[D], rd[K];
    for (size_t l = 0; l < D; l++)
      zd[l] = (double)zft[l];
    crate_molrg_post od = {.resp = rd};
    assert_int_equal(crate_molrg_posterior(mt, zd, 1, sigma, &od), CRATE_STATUS_OK);
    double tf = 0.0;
    for (size_t k = 0; k < K; k++)
      tf = fmax(tf, fabs((double)rft[k] - rd[k]));
    /* For contrast: the raw §3.3 logits formed in float, then max-subtracted. */
    float lz[K], mxl = -INFINITY, sl = 0.0f;
    float L = (float)log1p(1.0 / s2);
    for (size_t k = 0; k < K; k++) {
      float n = 0.0f;
      for (size_t j = 0; j < 2; j++) {
        float t = 0.0f;
        for (size_t l = 0; l < D; l++)
          t += (float)U.Ut[(2 * k + j) * D + l] * zft[l];
        n += t * t;
      }
      lz[k] = logf(1.0f / 3.0f) - L + n / (2.0f * (float)s2 * (1.0f + (float)s2));
      mxl = fmaxf(mxl, lz[k]);
    }
    for (size_t k = 0; k < K; k++)
      sl += expf(lz[k] - mxl);
    double tn = 0.0;
    for (size_t k = 0; k < K; k++)
      tn = fmax(tn, fabs((double)(expf(lz[k] - mxl) / sl) - rd[k]));
    crate_report("A8",
                 "exact tie pi_0 = pi_1 = 1/2 at sigma = 1e-4: double |pi_k - 1/2| %.3e; "
                 "at the float-rounded point (double pi_0 = %.4f) float vs double %.3e "
                 "(bound 1e-4); naive float sec.3.3 logits (%.3g) give %.3e",
                 td, rd[0], tf, (double)lz[0], tn);
    crate_check(td <= 1e-4 && tf <= 1e-4, "tie errors %.3e %.3e", td, tf);
  }
  crate_molrg_destroy(mt);
  crate_molrg_destroy(m);
}

/* ---- contracts: create, getters, sample, posterior ------------------------- */

static void test_create_and_getters(void **state) {
  (void)state;
  enum { D = 6, K = 3 };
  crate_rng r;
  crate_rng_init(&r, 1, CRATE_RNG_INIT);
  double Ut[6 * D];
  assert_int_equal(crate_subspaces_random(Ut, D, K, P222, CRATE_SUBSPACES_INCOHERENT, &r),
                   CRATE_STATUS_OK);
  crate_subspaces U = {D, K, P222, Ut};
  crate_molrg *m = NULL;
  assert_int_equal(crate_molrg_create(&m, &U, NULL), CRATE_STATUS_OK);
  assert_int_equal(crate_molrg_dim(m), D);
  assert_int_equal(crate_molrg_count(m), K);
  const double *w = crate_molrg_weights(m);
  for (size_t k = 0; k < K; k++)
    assert_true(w[k] == 1.0 / 3.0);
  crate_subspaces V = crate_molrg_subspaces(m);
  assert_int_equal(V.d, D);
  assert_int_equal(V.K, K);
  assert_true(V.Ut != Ut); /* a copy */
  assert_memory_equal(V.Ut, Ut, sizeof Ut);
  for (size_t k = 0; k < K; k++)
    assert_int_equal(V.p[k], P222[k]);
  Ut[0] = 7.0; /* the handle does not alias the caller's array */
  assert_true(V.Ut[0] != 7.0);
  crate_molrg_destroy(m);
  crate_molrg_destroy(NULL);
  crate_subspaces Z0 = crate_molrg_subspaces(NULL);
  assert_int_equal(Z0.d, 0);
  assert_null(crate_molrg_weights(NULL));
  assert_int_equal(crate_molrg_dim(NULL), 0);
  assert_int_equal(crate_molrg_count(NULL), 0);
  crate_report("unit", "create/getters/destroy(NULL) behave; weights default to 1/K");
}

static void test_create_errors(void **state) {
  (void)state;
  enum { D = 6, K = 3 };
  crate_rng r;
  crate_rng_init(&r, 2, CRATE_RNG_INIT);
  double Ut[6 * D];
  assert_int_equal(crate_subspaces_random(Ut, D, K, P222, CRATE_SUBSPACES_INCOHERENT, &r),
                   CRATE_STATUS_OK);
  crate_subspaces U = {D, K, P222, Ut};
  crate_molrg *m = (crate_molrg *)&r; /* must be reset to NULL on failure */
  int n = 0;
#define EXPECT_EINVAL(call)                                                                        \
  do {                                                                                             \
    crate_error_clear();                                                                           \
    int st_ = (call);                                                                              \
    crate_check(st_ == CRATE_STATUS_EINVAL, "%s gave %d", #call, st_);                             \
    crate_check(starts_with_molrg(), "%s: message '%s'", #call, crate_error_message());            \
    n++;                                                                                           \
  } while (0)
  EXPECT_EINVAL(crate_molrg_create(&m, &U, (const double[]){0.5, 0.3, 0.3}));
  assert_null(m);
  EXPECT_EINVAL(crate_molrg_create(&m, &U, (const double[]){0.5, 0.6, -0.1}));
  EXPECT_EINVAL(crate_molrg_create(&m, &U, (const double[]){0.5, 0.5, 0.0}));
  EXPECT_EINVAL(crate_molrg_create(&m, &U, (const double[]){NAN, 0.5, 0.5}));
  EXPECT_EINVAL(crate_molrg_create(&m, &U, (const double[]){INFINITY, 0.5, 0.5}));
  EXPECT_EINVAL(crate_molrg_create(&m, NULL, NULL));
  EXPECT_EINVAL(crate_molrg_create(NULL, &U, NULL));
  /* Non-orthonormal: stretch one basis vector by 1e-6 (tolerance 1e-8). */
  double Ub[6 * D];
  memcpy(Ub, Ut, sizeof Ub);
  for (size_t l = 0; l < D; l++)
    Ub[2 * D + l] *= 1.0 + 1e-6;
  crate_subspaces Vb = {D, K, P222, Ub};
  EXPECT_EINVAL(crate_molrg_create(&m, &Vb, NULL));
  crate_report("unit", "non-orthonormal basis: '%s'", crate_error_message());
  const size_t pbad[3] = {2, 0, 2}, pbig[3] = {3, 3, 3};
  EXPECT_EINVAL(crate_molrg_create_random(&m, D, K, pbad, NULL, CRATE_SUBSPACES_INCOHERENT, &r));
  EXPECT_EINVAL(crate_molrg_create_random(&m, D, K, pbig, NULL, CRATE_SUBSPACES_ORTHOGONAL, &r));
  EXPECT_EINVAL(crate_molrg_create_random(&m, D, K, P222, NULL, CRATE_SUBSPACES_ORTHOGONAL, NULL));
  EXPECT_EINVAL(crate_molrg_create_random(&m, 0, K, P222, NULL, CRATE_SUBSPACES_ORTHOGONAL, &r));
  EXPECT_EINVAL(crate_molrg_create_random(&m, D, K, P222, (const double[]){1, 1, 1},
                                          CRATE_SUBSPACES_ORTHOGONAL, &r));
  assert_null(m);
  /* Within the 1e-9 tolerance is accepted. */
  assert_int_equal(crate_molrg_create(&m, &U, (const double[]){0.5 + 5e-10, 0.3, 0.2}),
                   CRATE_STATUS_OK);
  crate_molrg_destroy(m);
  crate_report("unit", "%d invalid create calls rejected with EINVAL and a 'molrg: ' message", n);
}

static void test_posterior_errors(void **state) {
  (void)state;
  enum { D = 6, K = 3 };
  crate_molrg *m = make_model(D, K, P222, PI532, CRATE_SUBSPACES_INCOHERENT, 3);
  double Z[2 * D] = {0}, lq[2];
  float Zf[2 * D] = {0}, lqf[2];
  crate_molrg_post o = {.logq = lq};
  crate_molrg_postf of = {.logq = lqf};
  int n = 0;
  const double bad_sigma[] = {0.0, -1.0, NAN, INFINITY, 1e-200, 1e200};
  for (size_t s = 0; s < sizeof bad_sigma / sizeof bad_sigma[0]; s++)
    EXPECT_EINVAL(crate_molrg_posterior(m, Z, 2, bad_sigma[s], &o));
  const float bad_sigmaf[] = {0.0f, -1.0f, NAN, INFINITY};
  for (size_t s = 0; s < sizeof bad_sigmaf / sizeof bad_sigmaf[0]; s++)
    EXPECT_EINVAL(crate_molrg_posteriorf(m, Zf, 2, bad_sigmaf[s], &of));
  Z[D + 3] = NAN;
  EXPECT_EINVAL(crate_molrg_posterior(m, Z, 2, 0.5, &o));
  Z[D + 3] = -INFINITY;
  EXPECT_EINVAL(crate_molrg_posterior(m, Z, 2, 0.5, &o));
  Zf[D + 3] = NAN;
  EXPECT_EINVAL(crate_molrg_posteriorf(m, Zf, 2, 0.5f, &of));
  EXPECT_EINVAL(crate_molrg_posterior(NULL, Z, 2, 0.5, &o));
  EXPECT_EINVAL(crate_molrg_posteriorf(NULL, Zf, 2, 0.5f, &of));
  EXPECT_EINVAL(crate_molrg_posterior(m, NULL, 2, 0.5, &o));
  EXPECT_EINVAL(crate_molrg_posteriorf(m, NULL, 2, 0.5f, &of));
  /* No-ops: M = 0 (even with a NULL array) and no outputs at all. */
  assert_int_equal(crate_molrg_posterior(m, NULL, 0, 0.5, &o), CRATE_STATUS_OK);
  assert_int_equal(crate_molrg_posteriorf(m, NULL, 0, 0.5f, &of), CRATE_STATUS_OK);
  crate_molrg_post none = {0};
  Z[D + 3] = 0.0;
  assert_int_equal(crate_molrg_posterior(m, Z, 2, 0.5, &none), CRATE_STATUS_OK);
  crate_report("unit", "%d invalid posterior calls rejected with EINVAL and a 'molrg: ' message",
               n);
  crate_molrg_destroy(m);
}

/* Any subset of outputs gives bit-identical values to the full call; score is
 * -resid/sigma^2; K = 1 reduces to PPCA, m = U U^T z / (1 + sigma^2). */
static void test_posterior_outputs(void **state) {
  (void)state;
  enum { D = 6, K = 3, M = 16 };
  const double sigma = 0.4, s2 = sigma * sigma;
  crate_molrg *m = make_model(D, K, P123, PI532, CRATE_SUBSPACES_INCOHERENT, 4);
  double Z[M * D], lq[M], R[M * K], Mn[M * D], E[M * D], S[M * D], C[M * D * D], T[M], L[M];
  query_points(m, sigma, M, 5, Z);
  crate_molrg_post full = {lq, R, Mn, E, S, C, T, L};
  assert_int_equal(crate_molrg_posterior(m, Z, M, sigma, &full), CRATE_STATUS_OK);
  double lq2[M], R2[M * K], Mn2[M * D], E2[M * D], S2[M * D], C2[M * D * D], T2[M], L2[M];
  crate_molrg_post parts[] = {{.logq = lq2}, {.resp = R2}, {.mean = Mn2}, {.resid = E2},
                              {.score = S2}, {.cov = C2},  {.trcov = T2}, {.lap = L2}};
  for (size_t j = 0; j < sizeof parts / sizeof parts[0]; j++)
    assert_int_equal(crate_molrg_posterior(m, Z, M, sigma, &parts[j]), CRATE_STATUS_OK);
  assert_memory_equal(lq, lq2, sizeof lq);
  assert_memory_equal(R, R2, sizeof R);
  assert_memory_equal(Mn, Mn2, sizeof Mn);
  assert_memory_equal(E, E2, sizeof E);
  assert_memory_equal(S, S2, sizeof S);
  assert_memory_equal(C, C2, sizeof C);
  assert_memory_equal(T, T2, sizeof T);
  assert_memory_equal(L, L2, sizeof L);
  double worst_s = 0.0, worst_r = 0.0, worst_t = 0.0;
  for (size_t i = 0; i < M; i++) {
    double tc = 0.0;
    for (size_t l = 0; l < D; l++) {
      worst_s = fmax(worst_s, fabs(S[i * D + l] + E[i * D + l] / s2) / fabs(E[i * D + l] / s2));
      worst_r = fmax(worst_r, fabs(Z[i * D + l] - Mn[i * D + l] - E[i * D + l]));
      tc += C[i * D * D + l * D + l];
    }
    worst_t = fmax(worst_t, fabs(tc - T[i]) / T[i]);
  }
  crate_report("unit",
               "subset calls bit-identical; score vs -resid/sigma^2 %.2e; "
               "|z - m - resid| %.2e; trace formula vs tr(C) %.2e",
               worst_s, worst_r, worst_t);
  crate_check(worst_s <= 1e-15 && worst_r <= 1e-14 && worst_t <= 1e-13, "consistency");
  crate_molrg_destroy(m);

  /* K = 1: probabilistic PCA. */
  const size_t p3[1] = {3};
  crate_molrg *m1 = make_model(D, 1, p3, NULL, CRATE_SUBSPACES_INCOHERENT, 6);
  crate_subspaces U = crate_molrg_subspaces(m1);
  double ref[M * D], R1[M];
  crate_molrg_post o1 = {.mean = Mn, .resp = R1};
  assert_int_equal(crate_molrg_posterior(m1, Z, M, sigma, &o1), CRATE_STATUS_OK);
  for (size_t i = 0; i < M; i++)
    for (size_t l = 0; l < D; l++) {
      double t = 0.0;
      for (size_t j = 0; j < 3; j++) {
        double x = 0.0;
        for (size_t r = 0; r < D; r++)
          x += U.Ut[j * D + r] * Z[i * D + r];
        t += U.Ut[j * D + l] * x;
      }
      ref[i * D + l] = t / (1.0 + s2);
    }
  double e1 = crate_rel_linf(Mn, ref, M * D);
  crate_report("unit", "K = 1 (PPCA): m vs U U^T z/(1 + sigma^2) %.3e (bound 1e-14)", e1);
  crate_check(e1 <= 1e-14, "PPCA %.3e", e1);
  for (size_t i = 0; i < M; i++)
    assert_true(R1[i] == 1.0);
  crate_molrg_destroy(m1);
}

static void test_sample(void **state) {
  (void)state;
  enum { D = 6, K = 3, M = 20000 };
  const double sigma = 0.3;
  crate_molrg *m = make_model(D, K, P123, PI532, CRATE_SUBSPACES_INCOHERENT, 7);
  crate_subspaces U = crate_molrg_subspaces(m);
  double *Z = malloc(M * D * sizeof *Z), *Zc = malloc(M * D * sizeof *Zc),
         *Z2 = malloc(M * D * sizeof *Z2), *Z0 = malloc(M * D * sizeof *Z0);
  size_t *lab = malloc(M * sizeof *lab), *lab2 = malloc(M * sizeof *lab2);
  assert_non_null(Z);
  assert_non_null(Zc);
  assert_non_null(Z2);
  assert_non_null(Z0);
  assert_non_null(lab);
  assert_non_null(lab2);
  crate_rng r1, r2;
  crate_rng_init(&r1, 77, CRATE_RNG_NOISE);
  crate_rng_init(&r2, 77, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r1, M, sigma, Z, Zc, lab), CRATE_STATUS_OK);
  assert_int_equal(crate_molrg_sample(m, &r2, M, sigma, Z2, NULL, lab2), CRATE_STATUS_OK);
  assert_memory_equal(Z, Z2, M * D * sizeof *Z); /* reproducible, independent of outputs */
  assert_memory_equal(lab, lab2, M * sizeof *lab);
  crate_rng_init(&r2, 77, CRATE_RNG_NOISE);
  assert_int_equal(crate_molrg_sample(m, &r2, M, 0.0, Z0, NULL, NULL), CRATE_STATUS_OK);
  assert_memory_equal(Z0, Zc, M * D * sizeof *Z); /* sigma = 0 gives the clean points */
  /* Labels ~ pi; clean points lie in span U_label; noise ~ N(0, sigma^2 I). */
  double cnt[K] = {0}, worst_span = 0.0, nsum = 0.0, nsq = 0.0, e2 = 0.0, e4 = 0.0;
  for (size_t i = 0; i < M; i++) {
    size_t k = lab[i];
    assert_true(k < K);
    cnt[k] += 1.0;
    size_t off = crate_subspaces_offset(&U, k);
    double proj[D] = {0}, nz = 0.0, res = 0.0;
    for (size_t j = 0; j < U.p[k]; j++) {
      double x = 0.0;
      for (size_t l = 0; l < D; l++)
        x += U.Ut[(off + j) * D + l] * Zc[i * D + l];
      for (size_t l = 0; l < D; l++)
        proj[l] += x * U.Ut[(off + j) * D + l];
    }
    for (size_t l = 0; l < D; l++) {
      res += (Zc[i * D + l] - proj[l]) * (Zc[i * D + l] - proj[l]);
      nz += Zc[i * D + l] * Zc[i * D + l];
      double w = (Z[i * D + l] - Zc[i * D + l]) / sigma;
      nsum += w;
      nsq += w * w;
    }
    worst_span = fmax(worst_span, sqrt(res / nz));
    e2 += nz;
    e4 += nz * nz;
  }
  double nn = (double)M * D, nmean = nsum / nn, nvar = nsq / nn - nmean * nmean;
  double worst_z = 0.0;
  for (size_t k = 0; k < K; k++) {
    double f = cnt[k] / M, se = sqrt(PI532[k] * (1 - PI532[k]) / M);
    worst_z = fmax(worst_z, fabs(f - PI532[k]) / se);
  }
  /* E||z_nat||^2 = sum_k pi_k p_k = 1.7, SE from the sample itself. */
  double want_e2 = 0.5 * 1 + 0.3 * 2 + 0.2 * 3, mean_e2 = e2 / M;
  double se_e2 = sqrt((e4 / M - mean_e2 * mean_e2) / M);
  crate_report("unit",
               "sample: label freq %.4f/%.4f/%.4f vs .5/.3/.2 (max |z| %.2f, bound 4); "
               "clean off-span %.2e; noise mean %.4f var %.4f; E||z_nat||^2 %.4f vs %.4f",
               cnt[0] / M, cnt[1] / M, cnt[2] / M, worst_z, worst_span, nmean, nvar, mean_e2,
               want_e2);
  crate_check(worst_z <= 4.0, "label frequencies");
  crate_check(worst_span <= 1e-14, "clean point off span %.3e", worst_span);
  crate_check(fabs(nmean) <= 4.0 / sqrt(nn) && fabs(nvar - 1.0) <= 4.0 * sqrt(2.0 / nn),
              "noise moments %.4f %.4f", nmean, nvar);
  crate_check(fabs(mean_e2 - want_e2) <= 4.0 * se_e2, "E||z||^2 %.4f (SE %.4f)", mean_e2, se_e2);
  int n = 0;
  EXPECT_EINVAL(crate_molrg_sample(m, &r1, 4, -0.1, Z, NULL, NULL));
  EXPECT_EINVAL(crate_molrg_sample(m, &r1, 4, NAN, Z, NULL, NULL));
  EXPECT_EINVAL(crate_molrg_sample(m, NULL, 4, 0.1, Z, NULL, NULL));
  EXPECT_EINVAL(crate_molrg_sample(NULL, &r1, 4, 0.1, Z, NULL, NULL));
  assert_int_equal(n, 4);
  free(Z);
  free(Zc);
  free(Z2);
  free(Z0);
  free(lab);
  free(lab2);
  crate_molrg_destroy(m);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a1_logq_woodbury),
      cmocka_unit_test(test_a2_resp_bayes),
      cmocka_unit_test(test_a3_score_fd),
      cmocka_unit_test(test_a4_tweedie_first_order),
      cmocka_unit_test(test_a5_tweedie_second_order),
      cmocka_unit_test(test_a6_exact_laplacian),
      cmocka_unit_test(test_a7_limits),
      cmocka_unit_test(test_a8_stability_float),
      cmocka_unit_test(test_create_and_getters),
      cmocka_unit_test(test_create_errors),
      cmocka_unit_test(test_posterior_errors),
      cmocka_unit_test(test_posterior_outputs),
      cmocka_unit_test(test_sample),
  };
  return CRATE_RUN("molrg", tests, argc, argv);
}
