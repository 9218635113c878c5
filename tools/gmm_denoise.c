/* gmm_denoise.c: `crate gmm denoise`, the README demo: how well the exact
 * MoLRG denoiser removes Gaussian noise, against simpler denoisers
 * (MATH.md §3.3-3.4, catalogue row B3).
 *
 * For each sigma on a log-spaced grid, M points z = z_nat + sigma w are drawn
 * from the fixture (crate_molrg_sample; the rng restarts from the seed at
 * every sigma, so all sigmas share the same clean points and unit noise) and
 * denoised by
 *   - Bayes:          the posterior mean m(z) (crate_molrg_posterior);
 *   - theory:         E tr C(z), the MMSE predicted by the posterior
 *                     covariance (mean of trcov; B3 says MSE = E tr C);
 *   - identity:       no denoising, z itself (MSE = d sigma^2);
 *   - oracle proj.:   U_k U_k^T z with the true component k
 *                     (MSE = p_k sigma^2);
 *   - oracle Wiener:  U_k U_k^T z / (1 + sigma^2), the posterior mean given
 *                     k (MSE = p_k sigma^2 / (1 + sigma^2)), a lower bound
 *                     for every denoiser that does not know k;
 *   - linear:         the best single linear denoiser for the mixture
 *                     covariance S = sum_k pi_k U_k U_k^T, the Wiener filter
 *                     W = S (S + sigma^2 I)^{-1}
 *                     (MSE = tr S - tr(W S) = sigma^2 tr(W)).
 * MSEs are per dimension, (1/(M d)) sum_i ||xhat_i - z_nat_i||^2.  The check
 * column is B3: |MSE_Bayes - E tr C / d| within 4 standard errors of the
 * per-sample differences.  Also reported: the responsibility accuracy
 * (argmax_k pi_k(z) equals the true k).
 *
 * Output: an aligned table (or one JSON object with --json) on stdout,
 * <prefix>.csv and a log-log plot <prefix>.png of MSE against sigma.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crate/plot.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm denoise"
#define DEFAULT_OUT "gmm_denoise"
#define DEFAULT_M 4000
#define DEFAULT_POINTS 12
#define MAX_POINTS 64

enum { OPT_SAMPLES = 1200, OPT_POINTS };

enum { E_BAYES, E_THEORY, E_IDENTITY, E_ORACLE_PROJ, E_ORACLE_WIENER, E_LINEAR, N_EST };

static const char *const est_key[N_EST] = {"bayes", "theory_trC", "identity",
                                           "oracle_projection", "oracle_wiener", "linear"};

typedef struct run {
  size_t M, npts;
  double sigma[MAX_POINTS];
  double mse[N_EST][MAX_POINTS];   /* Monte Carlo, per dimension */
  double exact[N_EST][MAX_POINTS]; /* closed forms where they exist (else NaN) */
  double se_bayes[MAX_POINTS];     /* standard error of mse[E_BAYES] */
  double zscore[MAX_POINTS];       /* (MSE_Bayes - E trC/d) / SE of the difference */
  double acc[MAX_POINTS];          /* responsibility accuracy */
  bool pass[MAX_POINTS];
} run;

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm denoise [options]\n\n"
          "Denoise noisy draws of the mixture of low-rank Gaussians with the exact\n"
          "posterior mean (MATH.md §3.4) and compare, per noise level sigma, the MSE per\n"
          "dimension of: Bayes (posterior mean), theory (E tr C, the MMSE), identity (no\n"
          "denoising, sigma^2), oracle projection onto the true subspace, oracle Wiener\n"
          "(true subspace, shrunk by 1/(1+sigma^2)) and the best linear (Wiener) filter of\n"
          "the mixture covariance.  'check' is catalogue row B3: Bayes MSE = E tr C\n"
          "within 4 standard errors.\n\n"
          "Options:\n"
          "  -M, --samples N         noisy draws per sigma [%d]\n"
          "      --points N          sigma values, log-spaced in [sigma-min, sigma-max] [%d]\n"
          "Fixture (MATH.md default fixture):\n"
          "      --d N               ambient dimension [6]\n"
          "      --K N               number of subspaces [3]\n"
          "      --p P[,P...]        subspace ranks, one or K of them [2]\n"
          "      --pi W,W,...        mixture weights, K of them, summing to 1 [equal]\n"
          "      --subspaces KIND    incoherent (independent random bases) or orthogonal\n"
          "                          [incoherent]\n"
          "  -s, --seed N            seed for bases (stream INIT) and draws (stream NOISE);\n"
          "                          -1 = random [0]\n"
          "      --sigma-min S       smallest noise level [0.02]\n"
          "      --sigma-max S       largest noise level [10]\n",
          DEFAULT_M, DEFAULT_POINTS);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "\nExample: crate gmm denoise --samples 500 -o /tmp/denoise\n");
}

/* ---- the linear (Wiener) denoiser ------------------------------------------------------ */

/* S = sum_k pi_k U_k U_k^T.  S: (d, d). */
static void mixture_cov(const crate_molrg *m, double *S) {
  crate_subspaces U = crate_molrg_subspaces(m);
  const double *pi = crate_molrg_weights(m);
  size_t d = U.d;
  memset(S, 0, d * d * sizeof *S);
  for (size_t k = 0; k < U.K; k++) {
    const double *Uk = U.Ut + crate_subspaces_offset(&U, k) * d; /* (p_k, d) = U_k^T */
    for (size_t a = 0; a < U.p[k]; a++)
      for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
          S[i * d + j] += pi[k] * Uk[a * d + i] * Uk[a * d + j];
  }
}

/* W = S (S + s2 I)^{-1} = (S + s2 I)^{-1} S (S and S + s2 I commute), by a
 * Cholesky factorisation of the SPD matrix A = S + s2 I.  S, W, A: (d, d).
 * @return false if A is not numerically SPD. */
static bool wiener(const double *S, size_t d, double s2, double *W, double *A) {
  for (size_t i = 0; i < d * d; i++)
    A[i] = S[i];
  for (size_t i = 0; i < d; i++)
    A[i * d + i] += s2;
  for (size_t j = 0; j < d; j++) { /* A = L L^T, L in the lower triangle */
    double diag = A[j * d + j];
    for (size_t k = 0; k < j; k++)
      diag -= A[j * d + k] * A[j * d + k];
    if (!(diag > 0))
      return false;
    A[j * d + j] = sqrt(diag);
    for (size_t i = j + 1; i < d; i++) {
      double v = A[i * d + j];
      for (size_t k = 0; k < j; k++)
        v -= A[i * d + k] * A[j * d + k];
      A[i * d + j] = v / A[j * d + j];
    }
  }
  for (size_t c = 0; c < d; c++) { /* column c of W solves A w = S e_c */
    for (size_t i = 0; i < d; i++) {
      double v = S[i * d + c];
      for (size_t k = 0; k < i; k++)
        v -= A[i * d + k] * W[k * d + c];
      W[i * d + c] = v / A[i * d + i];
    }
    for (size_t i = d; i-- > 0;) {
      double v = W[i * d + c];
      for (size_t k = i + 1; k < d; k++)
        v -= A[k * d + i] * W[k * d + c];
      W[i * d + c] = v / A[i * d + i];
    }
  }
  return true;
}

/* ---- the experiment -------------------------------------------------------------------- */

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  crate_molrg *m = NULL;
  int rc = gmm_check(c, gmm_fixture_create(fx, &m), "creating the mixture");
  if (rc != CLI_OK)
    return rc;
  size_t d = fx->d, K = fx->K, M = r->M;
  double *Z = malloc(M * d * sizeof *Z), *X = malloc(M * d * sizeof *X);
  double *mean = malloc(M * d * sizeof *mean), *resp = malloc(M * K * sizeof *resp);
  double *trcov = malloc(M * sizeof *trcov), *S = malloc(d * d * sizeof *S);
  double *W = malloc(d * d * sizeof *W), *A = malloc(d * d * sizeof *A);
  double *xh = malloc(d * sizeof *xh), *coef = malloc(d * sizeof *coef);
  size_t *labels = malloc(M * sizeof *labels);
  if (!Z || !X || !mean || !resp || !trcov || !S || !W || !A || !xh || !coef || !labels) {
    rc = cli_fail(CMD, "out of memory for %zu samples of dimension %zu", M, d);
    goto done;
  }
  crate_subspaces U = crate_molrg_subspaces(m);
  const double *pi = crate_molrg_weights(m);
  double mean_p = 0;
  for (size_t k = 0; k < K; k++)
    mean_p += pi[k] * (double)U.p[k];
  mixture_cov(m, S);

  for (size_t t = 0; t < r->npts; t++) {
    double sigma = r->sigma[t], s2 = sigma * sigma, shrink = 1.0 / (1.0 + s2);
    crate_rng rng;
    crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
    rc = gmm_check(c, crate_molrg_sample(m, &rng, M, sigma, Z, X, labels),
                   "sampling at sigma %g", sigma);
    if (rc != CLI_OK)
      goto done;
    crate_molrg_post post = {.resp = resp, .mean = mean, .trcov = trcov};
    rc = gmm_check(c, crate_molrg_posterior(m, Z, M, sigma, &post), "posterior at sigma %g",
                   sigma);
    if (rc != CLI_OK)
      goto done;
    if (!wiener(S, d, s2, W, A)) {
      rc = cli_fail(CMD, "S + sigma^2 I is not positive definite at sigma %g", sigma);
      goto done;
    }
    double trW = 0;
    for (size_t i = 0; i < d; i++)
      trW += W[i * d + i];

    double sum[N_EST] = {0}, sum_diff = 0, sum_diff2 = 0, sum_b2 = 0;
    size_t correct = 0;
    for (size_t i = 0; i < M; i++) {
      const double *z = Z + i * d, *x = X + i * d, *mz = mean + i * d;
      size_t k = labels[i];
      const double *Uk = U.Ut + crate_subspaces_offset(&U, k) * d; /* (p_k, d) */
      double e_bayes = 0, e_id = 0, e_proj = 0, e_wien = 0, e_lin = 0;
      for (size_t a = 0; a < U.p[k]; a++) { /* coef = U_k^T z */
        double v = 0;
        for (size_t j = 0; j < d; j++)
          v += Uk[a * d + j] * z[j];
        coef[a] = v;
      }
      for (size_t j = 0; j < d; j++) { /* xh = U_k coef */
        double v = 0;
        for (size_t a = 0; a < U.p[k]; a++)
          v += Uk[a * d + j] * coef[a];
        xh[j] = v;
      }
      for (size_t j = 0; j < d; j++) {
        double lin = 0;
        for (size_t l = 0; l < d; l++)
          lin += W[j * d + l] * z[l];
        e_bayes += (mz[j] - x[j]) * (mz[j] - x[j]);
        e_id += (z[j] - x[j]) * (z[j] - x[j]);
        e_proj += (xh[j] - x[j]) * (xh[j] - x[j]);
        e_wien += (shrink * xh[j] - x[j]) * (shrink * xh[j] - x[j]);
        e_lin += (lin - x[j]) * (lin - x[j]);
      }
      sum[E_BAYES] += e_bayes;
      sum[E_THEORY] += trcov[i];
      sum[E_IDENTITY] += e_id;
      sum[E_ORACLE_PROJ] += e_proj;
      sum[E_ORACLE_WIENER] += e_wien;
      sum[E_LINEAR] += e_lin;
      sum_b2 += e_bayes * e_bayes;
      double diff = e_bayes - trcov[i];
      sum_diff += diff;
      sum_diff2 += diff * diff;
      size_t best = 0;
      for (size_t j = 1; j < K; j++)
        if (resp[i * K + j] > resp[i * K + best])
          best = j;
      correct += best == k;
    }
    double Md = (double)M * (double)d;
    for (int e = 0; e < N_EST; e++)
      r->mse[e][t] = sum[e] / Md;
    double mb = sum[E_BAYES] / (double)M, md = sum_diff / (double)M;
    double var_b = M > 1 ? (sum_b2 - (double)M * mb * mb) / (double)(M - 1) : 0;
    double var_d = M > 1 ? (sum_diff2 - (double)M * md * md) / (double)(M - 1) : 0;
    double se_d = sqrt(fmax(var_d, 0) / (double)M);
    r->se_bayes[t] = sqrt(fmax(var_b, 0) / (double)M) / (double)d;
    r->zscore[t] = se_d > 0 ? md / se_d : (md == 0 ? 0 : INFINITY);
    r->pass[t] = fabs(r->zscore[t]) <= 4.0;
    r->acc[t] = (double)correct / (double)M;
    r->exact[E_BAYES][t] = NAN;
    r->exact[E_THEORY][t] = NAN;
    r->exact[E_IDENTITY][t] = s2;
    r->exact[E_ORACLE_PROJ][t] = mean_p * s2 / (double)d;
    r->exact[E_ORACLE_WIENER][t] = mean_p * s2 * shrink / (double)d;
    r->exact[E_LINEAR][t] = s2 * trW / (double)d;
    gmm_note(c, "crate gmm denoise: sigma %-8.4g done (%zu/%zu)\n", sigma, t + 1, r->npts);
  }
  rc = CLI_OK;
done:
  free(Z);
  free(X);
  free(mean);
  free(resp);
  free(trcov);
  free(S);
  free(W);
  free(A);
  free(xh);
  free(coef);
  free(labels);
  crate_molrg_destroy(m);
  return rc;
}

/* ---- output ---------------------------------------------------------------------------- */

static void describe(const gmm_fixture *fx, const run *r, FILE *f) {
  fprintf(f, "d=%zu K=%zu p=", fx->d, fx->K);
  for (size_t k = 0; k < fx->K; k++)
    fprintf(f, "%s%zu", k ? "," : "", fx->p[k]);
  fprintf(f, " pi=%s %s subspaces, seed %llu, M=%zu draws per sigma",
          fx->equal_weights ? "equal" : "given",
          fx->kind == CRATE_SUBSPACES_ORTHOGONAL ? "orthogonal" : "incoherent",
          (unsigned long long)fx->seed, r->M);
}

static void print_table(const gmm_fixture *fx, const run *r) {
  size_t npass = 0;
  printf("MoLRG denoising, MSE per dimension (1/(M d)) sum ||xhat - x||^2\n");
  describe(fx, r, stdout);
  printf("\n\n");
  printf("%9s  %10s %9s  %10s  %10s  %10s  %10s  %10s  %7s  %s\n", "sigma", "Bayes", "+-SE",
         "E trC/d", "identity", "oracle-prj", "oracle-Wnr", "linear", "resp", "check");
  for (size_t t = 0; t < r->npts; t++) {
    printf("%9.4g  %10.4e %9.2e  %10.4e  %10.4e  %10.4e  %10.4e  %10.4e  %6.1f%%  %s z=%+.2f\n",
           r->sigma[t], r->mse[E_BAYES][t], r->se_bayes[t], r->mse[E_THEORY][t],
           r->mse[E_IDENTITY][t], r->mse[E_ORACLE_PROJ][t], r->mse[E_ORACLE_WIENER][t],
           r->mse[E_LINEAR][t], 100.0 * r->acc[t], r->pass[t] ? "ok  " : "FAIL", r->zscore[t]);
    npass += r->pass[t];
  }
  printf("\nBayes = posterior mean m(z); E trC/d = mean posterior variance (the MMSE);\n"
         "identity = no denoising (expect sigma^2); oracle-prj = U_k U_k^T z and oracle-Wnr =\n"
         "U_k U_k^T z/(1+sigma^2) with the true k; linear = Wiener filter of the mixture\n"
         "covariance; resp = argmax responsibility is the true k.  check (MATH.md B3):\n"
         "|Bayes - E trC/d| <= 4 SE: %zu/%zu ok.\n",
         npass, r->npts);
}

static json_t *to_json(const gmm_fixture *fx, const run *r, const char *csv, const char *png) {
  json_t *o = json_object(), *fix = json_object(), *p = json_array(), *pi = json_array(),
         *rows = json_array();
  bool all = true;
  for (size_t k = 0; k < fx->K; k++) {
    json_array_append_new(p, json_integer((json_int_t)fx->p[k]));
    json_array_append_new(pi, json_real(fx->pi[k]));
  }
  json_object_set_new(fix, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(fix, "K", json_integer((json_int_t)fx->K));
  json_object_set_new(fix, "p", p);
  json_object_set_new(fix, "pi", pi);
  json_object_set_new(fix, "subspaces", json_string(fx->kind == CRATE_SUBSPACES_ORTHOGONAL
                                                        ? "orthogonal"
                                                        : "incoherent"));
  json_object_set_new(fix, "seed", json_integer((json_int_t)fx->seed));
  for (size_t t = 0; t < r->npts; t++) {
    json_t *row = json_object(), *mse = json_object(), *exact = json_object();
    for (int e = 0; e < N_EST; e++) {
      json_object_set_new(mse, est_key[e], cli_json_num(r->mse[e][t]));
      if (isfinite(r->exact[e][t]))
        json_object_set_new(exact, est_key[e], json_real(r->exact[e][t]));
    }
    json_object_set_new(row, "sigma", json_real(r->sigma[t]));
    json_object_set_new(row, "mse", mse);
    json_object_set_new(row, "mse_exact", exact);
    json_object_set_new(row, "se_bayes", cli_json_num(r->se_bayes[t]));
    json_object_set_new(row, "resp_accuracy", json_real(r->acc[t]));
    json_object_set_new(row, "z_bayes_vs_theory", cli_json_num(r->zscore[t]));
    json_object_set_new(row, "pass", json_boolean(r->pass[t]));
    json_array_append_new(rows, row);
    all = all && r->pass[t];
  }
  json_object_set_new(o, "command", json_string("gmm denoise"));
  json_object_set_new(o, "fixture", fix);
  json_object_set_new(o, "samples", json_integer((json_int_t)r->M));
  json_object_set_new(o, "mse", json_string("per dimension: (1/(M d)) sum ||xhat - x||^2"));
  json_object_set_new(o, "rows", rows);
  json_object_set_new(o, "check", json_string("B3: |Bayes - E trC/d| <= 4 SE"));
  json_object_set_new(o, "pass", json_boolean(all));
  json_object_set_new(o, "csv", json_string(csv));
  json_object_set_new(o, "png", json_string(png));
  return o;
}

static int write_csv(const gmm_common *c, const run *r, char *path, size_t size) {
  FILE *f = gmm_open_out(c, ".csv", path, size);
  if (!f)
    return CLI_FAIL;
  fprintf(f, "sigma,mse_bayes,se_bayes,mse_theory_trC,mse_identity,mse_oracle_projection,"
             "mse_oracle_wiener,mse_linear,exact_identity,exact_oracle_projection,"
             "exact_oracle_wiener,exact_linear,resp_accuracy,z_bayes_vs_theory,pass\n");
  for (size_t t = 0; t < r->npts; t++)
    fprintf(f, "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.6f,"
               "%.4f,%d\n",
            r->sigma[t], r->mse[E_BAYES][t], r->se_bayes[t], r->mse[E_THEORY][t],
            r->mse[E_IDENTITY][t], r->mse[E_ORACLE_PROJ][t], r->mse[E_ORACLE_WIENER][t],
            r->mse[E_LINEAR][t], r->exact[E_IDENTITY][t], r->exact[E_ORACLE_PROJ][t],
            r->exact[E_ORACLE_WIENER][t], r->exact[E_LINEAR][t], r->acc[t], r->zscore[t],
            r->pass[t] ? 1 : 0);
  return gmm_close_out(c, f, path) ? CLI_OK : CLI_FAIL;
}

static int write_png(const gmm_common *c, const gmm_fixture *fx, const run *r, char *path,
                     size_t size) {
  if (!gmm_path(path, size, c->out, ".png"))
    return cli_fail(CMD, "output prefix too long: '%s'", c->out);
  static const char *const names[N_EST] = {
      "Bayes posterior mean m(z)", "theory E tr C(z) (MMSE)", "identity (no denoising)",
      "oracle projection U_k U_k^T z", "oracle Wiener (true k)", "best linear (Wiener filter)"};
  static const crate_plot_style styles[N_EST] = {
      {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_CIRCLE, true, 0x1F6FB4, 2.5, 4.5},
      {CRATE_PLOT_DASHED, CRATE_PLOT_MARKER_NONE, true, 0x111111, 1.5, 0},
      {CRATE_PLOT_DOTTED, CRATE_PLOT_MARKER_NONE, true, 0x777777, 2.5, 0},
      {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_SQUARE, true, 0x2CA02C, 2, 4},
      {CRATE_PLOT_DASHED, CRATE_PLOT_MARKER_DIAMOND, true, 0x8E5CC2, 2, 4.5},
      {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_TRIANGLE, true, 0xE8710A, 2, 4.5}};
  static const int order[N_EST] = {E_IDENTITY, E_ORACLE_PROJ, E_LINEAR, E_ORACLE_WIENER,
                                   E_BAYES, E_THEORY};
  char title[200];
  snprintf(title, sizeof title, "Denoising a mixture of low-rank Gaussians (d=%zu, K=%zu, p=%zu%s)",
           fx->d, fx->K, fx->p[0], fx->K > 1 ? ",..." : "");
  crate_plot *p = NULL;
  int st = crate_plot_create(&p, 0, 0);
  for (int i = 0; i < N_EST && st == CRATE_STATUS_OK; i++) {
    int e = order[i];
    st = crate_plot_add(p, names[e], r->sigma, r->mse[e], r->npts, &styles[e]);
  }
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_title(p, title);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_labels(p, "noise level \xcf\x83", "MSE per dimension");
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_scale(p, CRATE_PLOT_LOG10, CRATE_PLOT_LOG10);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_write_png(p, path);
  crate_plot_destroy(p);
  if (st != CRATE_STATUS_OK) {
    const char *msg = crate_error_message();
    return cli_fail(CMD, "cannot write %s: %s", path, (msg && *msg) ? msg : crate_strerror(st));
  }
  gmm_note(c, "wrote %s\n", path);
  return CLI_OK;
}

int gmm_denoise(int argc, char **argv) {
  gmm_common c;
  gmm_fixture fx;
  gmm_common_default(&c, CMD, DEFAULT_OUT);
  gmm_fixture_default(&fx);
  static run r; /* large; one per process */
  memset(&r, 0, sizeof r);
  r.M = DEFAULT_M;
  r.npts = DEFAULT_POINTS;
  static const struct option longopts[] = {
      {"samples", required_argument, NULL, OPT_SAMPLES},
      {"points", required_argument, NULL, OPT_POINTS},
      GMM_COMMON_LONGOPTS,
      {"d", required_argument, NULL, GMM_OPT_D},
      {"K", required_argument, NULL, GMM_OPT_K},
      {"p", required_argument, NULL, GMM_OPT_P},
      {"pi", required_argument, NULL, GMM_OPT_PI},
      {"subspaces", required_argument, NULL, GMM_OPT_SUBSPACES},
      {"seed", required_argument, NULL, GMM_OPT_SEED},
      {"sigma-min", required_argument, NULL, GMM_OPT_SIGMA_MIN},
      {"sigma-max", required_argument, NULL, GMM_OPT_SIGMA_MAX},
      {NULL, 0, NULL, 0}};
  opterr = 0;
  int opt;
  long v;
  while ((opt = getopt_long(argc, argv, GMM_COMMON_SHORTOPTS "M:", longopts, NULL)) != -1) {
    switch (opt) {
    case 'M':
    case OPT_SAMPLES:
      if (!cli_parse_long(CMD, "--samples", optarg, 1, 10000000, &v))
        return CLI_USAGE;
      r.M = (size_t)v;
      continue;
    case OPT_POINTS:
      if (!cli_parse_long(CMD, "--points", optarg, 2, MAX_POINTS, &v))
        return CLI_USAGE;
      r.npts = (size_t)v;
      continue;
    default: break;
    }
    const int h = gmm_common_option(&c, &fx, opt, argv, usage);
    if (h >= 0)
      return h;
  }
  if (!gmm_common_no_positional(&c, argc, argv) || !gmm_fixture_finish(&fx, CMD))
    return CLI_USAGE;
  double l0 = log(fx.sigma_min), l1 = log(fx.sigma_max);
  for (size_t t = 0; t < r.npts; t++)
    r.sigma[t] = t == 0 ? fx.sigma_min
                 : t + 1 == r.npts ? fx.sigma_max
                                   : exp(l0 + (l1 - l0) * (double)t / (double)(r.npts - 1));
  if (!c.quiet) {
    fprintf(stderr, "crate gmm denoise: ");
    describe(&fx, &r, stderr);
    fprintf(stderr, "; %zu sigmas in [%g, %g]; out=%s\n", r.npts, fx.sigma_min, fx.sigma_max,
            c.out);
  }
  int rc = compute(&c, &fx, &r);
  if (rc != CLI_OK)
    return rc;
  char csv[1024], png[1024];
  if ((rc = write_csv(&c, &r, csv, sizeof csv)) != CLI_OK)
    return rc;
  if ((rc = write_png(&c, &fx, &r, png, sizeof png)) != CLI_OK)
    return rc;
  bool all = true;
  for (size_t t = 0; t < r.npts; t++)
    all = all && r.pass[t];
  if (c.json)
    rc = gmm_json_print(&c, to_json(&fx, &r, csv, png));
  else
    print_table(&fx, &r);
  if (rc == CLI_OK && c.strict && !all)
    return cli_fail(CMD, "Bayes MSE differs from E tr C by more than 4 SE (--strict)");
  return rc;
}
