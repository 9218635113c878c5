/* gmm_sample.c: `crate gmm sample`, generation from the mixture with a
 * PF-ODE sampler and the exact score, checked against the C7 criteria of
 * MATH.md §6 (generated distribution; §4.5-4.6 for the samplers).
 *
 * M exact draws of q^{sigma_max} (z_nat + sigma_max w, so that no prior
 * mismatch hides the discretisation error, pitfall P10) are decoded to
 * sigma_min on the fixture's schedule with n steps.  The generated points
 * should be draws of q^{sigma_min}.  Each point is labelled by its largest
 * responsibility at sigma_min.  Criteria:
 *  (i)   component frequencies within 4 SE of pi, SE = sqrt(pi (1 - pi) / M);
 *  (ii)  mean squared off-subspace residual ||(I - U_k U_k^T) z||^2 (k = label)
 *        within 5 % of its value under q^{sigma_min}, mean (d - p_k) sigma_min^2,
 *        plus the discretisation term |r_n - r_8n| (same start points, 8n
 *        steps), which must shrink with n (|r_2n - r_8n| < |r_n - r_8n|);
 *  (iii) per-component PCA subspace error ||Uh Uh^T - U_k U_k^T||_F against
 *        its first-order size c_k / sqrt(M_k), c_k^2 = 2 (d - p_k) p_k
 *        sigma^2 (1 + sigma^2) [derived: eigenvector perturbation with gap 1]:
 *        M_k err^2 / c_k^2 is close to chi^2_q / q, q = (d - p_k) p_k, so the
 *        gate is err <= c_k / sqrt(M_k) * sqrt(1 + 4 sqrt(2 / q)) (4 SE);
 *        and the slope of the block-averaged error against the block size
 *        (M/32 .. M/4) within -1/2 +- 0.1;
 *  (iv)  unbiased MMD^2 (Gaussian kernel, median bandwidth) and sliced W2
 *        between the first N generated points and N fresh exact draws of
 *        q^{sigma_min}, below the 99th percentile of R exact-vs-exact
 *        replicates (same bandwidth, same projection directions).
 * Random streams: seed on NOISE at (step 0) start draws, (1) fresh exact
 * draws, (2 + r) null replicates; projections on PROBE.
 */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm sample"
#define DEFAULT_OUT "gmm_sample"
#define DEFAULT_M 3000
#define DEFAULT_STEPS 40
#define DEFAULT_MMD_N 500
#define DEFAULT_REPS 100
#define DEFAULT_PROJ 16
/* PCA slope: block sizes M/32, M/16, M/8, M/4, averaged over the blocks of
 * each size.  Sizes up to M itself would rest on one or two blocks, whose
 * chi-like noise (relative SD ~ 1/sqrt(2 q K)) makes the fitted slope wander
 * by +-0.07 at M = 3000; with >= 4 blocks per size its SD is ~0.03.  The fit
 * needs >= 16 K points in the smallest block (M >= 512 K), else it is n/a. */
#define NBLOCK 4

enum { OPT_SAMPLER = 1200, OPT_STEPS, OPT_SAMPLES, OPT_MMD_N, OPT_REPS, OPT_PROJ };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm sample [options]\n\n"
          "Generate M points by decoding exact q^{sigma-max} draws to sigma-min with a\n"
          "PF-ODE sampler and the exact score, and check them against q^{sigma-min}\n"
          "(MATH.md row C7): (i) component frequencies within 4 SE of pi; (ii) mean\n"
          "squared off-subspace residual within 5%% of (d-p) sigma-min^2 plus a\n"
          "discretisation term that shrinks with n; (iii) per-component PCA subspace\n"
          "error ~ c/sqrt(M_k), slope -1/2 +- 0.1; (iv) MMD^2 and sliced W2 against fresh\n"
          "exact draws below the 99th percentile of an exact-vs-exact null.\n\n"
          "Options:\n"
          "      --sampler NAME      euler, heun, rk4, dpm2, dpmpp-2m or midpoint [heun]\n"
          "      --steps N           ODE steps (N + 1 noise levels) [%d]\n"
          "  -M, --samples N         generated points [%d]\n"
          "      --mmd-samples N     points per side in MMD^2 and sliced W2 [%d; <= M]\n"
          "      --null-reps R       exact-vs-exact null replicates, >= 50 [%d]\n"
          "      --projections P     sliced W2 directions [%d]\n",
          DEFAULT_STEPS, DEFAULT_M, DEFAULT_MMD_N, DEFAULT_REPS, DEFAULT_PROJ);
  gmm_fixture_help(f);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "\nExample: crate gmm sample --sampler rk4 --steps 20 -M 5000\n");
}

typedef struct run {
  crate_sampler_kind kind;
  size_t steps, M, mmd_n, reps, proj;
  /* (i) */
  double freq[GMM_MAX_K], se[GMM_MAX_K];
  bool pass_freq;
  /* (ii) */
  double resid[3], target, resid_se; /* n, 2n, 8n */
  bool pass_resid;
  /* (iii) */
  double pca_err[GMM_MAX_K], pca_bound[GMM_MAX_K], pca_c[GMM_MAX_K];
  size_t pca_count[GMM_MAX_K];
  double block_size[NBLOCK], block_err[NBLOCK], pca_slope;
  bool pass_pca, pass_slope, slope_na;
  /* (iv) */
  double bw, mmd, sw, mmd_q99, sw_q99, mmd_med, sw_med;
  bool pass_mmd, pass_sw;
  /* plot data: 2-D coordinates in the plane of U_1 */
  double *gx, *gy, *ex, *ey;
  size_t nplot;
} run;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Decodes M exact q^{sigma_max} draws (stream step 0) with n steps into Z. */
static int generate(const gmm_common *c, const gmm_fixture *fx, crate_molrg *mix,
                    crate_sampler_kind kind, size_t n, size_t M, double *Z) {
  crate_rng rng;
  crate_rng_init_at(&rng, fx->seed, CRATE_RNG_NOISE, 0, 0);
  int rc = gmm_check(c, crate_molrg_sample(mix, &rng, M, fx->sigma_max, Z, NULL, NULL),
                     "drawing q^{sigma_max}");
  if (rc != CLI_OK)
    return rc;
  double *grid = NULL;
  rc = gmm_check(c, gmm_fixture_grid(fx, gmm_fixture_schedule_kind(fx), n, false, &grid),
                 "%s grid of %zu steps", fx->schedule, n);
  if (rc != CLI_OK)
    return rc;
  gmm_note(c, "sample: decoding %zu points with %s, %zu steps\n", M, crate_sampler_name(kind), n);
  rc = gmm_check(c, crate_molrg_integrate(mix, kind, grid, n + 1, Z, M, NULL), "%s, %zu steps",
                 crate_sampler_name(kind), n);
  free(grid);
  return rc;
}

/* Labels by the largest responsibility at sigma_min; resp: (M, K) scratch. */
static int label(const gmm_common *c, const gmm_fixture *fx, crate_molrg *mix, const double *Z,
                 size_t M, double *resp, size_t *lab) {
  crate_molrg_post post = {0};
  post.resp = resp;
  int rc = gmm_check(c, crate_molrg_posterior(mix, Z, M, fx->sigma_min, &post),
                     "responsibilities of the generated points");
  if (rc == CLI_OK)
    rc = gmm_check(c, crate_stats_argmax(lab, resp, M, fx->K), "labels");
  return rc;
}

/* Squared off-subspace residual ||z - U_k (U_k^T z)||^2 of each row, k =
 * label, formed without cancellation: out (M); y: (d) scratch. */
static void off_resid(crate_molrg *mix, const double *Z, size_t M, const size_t *lab, double *out,
                      double *y) {
  crate_subspaces U = crate_molrg_subspaces(mix);
  size_t d = U.d;
  for (size_t i = 0; i < M; i++) {
    size_t p = U.p[lab[i]];
    const double *Ut = U.Ut + crate_subspaces_offset(&U, lab[i]) * d, *z = Z + i * d;
    memcpy(y, z, d * sizeof *y);
    for (size_t j = 0; j < p; j++) {
      double x = 0.0;
      for (size_t l = 0; l < d; l++)
        x += Ut[j * d + l] * z[l];
      for (size_t l = 0; l < d; l++)
        y[l] -= Ut[j * d + l] * x;
    }
    double r = 0.0;
    for (size_t l = 0; l < d; l++)
      r += y[l] * y[l];
    out[i] = r;
  }
}

static double mean_of(const double *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  return s / (double)n;
}

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  size_t M = r->M, d = fx->d, K = fx->K, N = r->mmd_n;
  crate_molrg *mix = NULL;
  double *G = calloc(M * d, sizeof *G), *Z = calloc(M * d, sizeof *Z),
         *resp = calloc(M * K, sizeof *resp), *res = calloc(M, sizeof *res),
         *A = calloc(N * d, sizeof *A), *B = calloc(N * d, sizeof *B),
         *B2 = calloc(N * d, sizeof *B2), *nm = calloc(r->reps, sizeof *nm),
         *nsw = calloc(r->reps, sizeof *nsw), *y = calloc(d, sizeof *y);
  size_t *lab = calloc(M, sizeof *lab);
  int rc = CLI_OK;
  if (!G || !Z || !resp || !res || !A || !B || !B2 || !nm || !nsw || !y || !lab) {
    rc = cli_fail(c->cmd, "out of memory (%zu points)", M);
    goto done;
  }
  if ((rc = gmm_check(c, gmm_fixture_create(fx, &mix), "creating the mixture")) != CLI_OK)
    goto done;
  crate_subspaces U = crate_molrg_subspaces(mix);
  const double *pi = crate_molrg_weights(mix);
  double s2 = fx->sigma_min * fx->sigma_min;

  /* Generation and labels. */
  if ((rc = generate(c, fx, mix, r->kind, r->steps, M, G)) != CLI_OK)
    goto done;
  {
    /* Finite but huge points would overflow the second moments below. */
    double zmax = 0.0;
    for (size_t i = 0; i < M * d; i++)
      zmax = fmax(zmax, fabs(G[i]));
    if (!(zmax <= 1e150)) {
      rc = cli_fail(c->cmd,
                    "%s, %zu steps: the generated points blew up (|z| reaches %.3g); use more "
                    "steps or a smaller --sigma-max",
                    crate_sampler_name(r->kind), r->steps, zmax);
      goto done;
    }
  }
  if ((rc = label(c, fx, mix, G, M, resp, lab)) != CLI_OK)
    goto done;

  /* (i) frequencies. */
  rc = gmm_check(c, crate_stats_frequencies(r->freq, NULL, lab, M, K), "frequencies");
  if (rc != CLI_OK)
    goto done;
  r->pass_freq = true;
  for (size_t k = 0; k < K; k++) {
    r->se[k] = sqrt(pi[k] * (1.0 - pi[k]) / (double)M);
    if (!(fabs(r->freq[k] - pi[k]) <= 4.0 * r->se[k]))
      r->pass_freq = false;
  }

  /* (ii) off-subspace residual at n, 2n, 8n steps from the same start. */
  off_resid(mix, G, M, lab, res, y);
  r->resid[0] = mean_of(res, M);
  {
    double v = 0.0, t = 0.0;
    for (size_t i = 0; i < M; i++) {
      v += (res[i] - r->resid[0]) * (res[i] - r->resid[0]);
      t += (double)(d - U.p[lab[i]]) * s2;
    }
    r->resid_se = sqrt(v / (double)(M > 1 ? M - 1 : 1) / (double)M);
    r->target = t / (double)M;
  }
  for (int a = 1; a < 3; a++) {
    size_t n = r->steps * (a == 1 ? 2 : 8);
    if ((rc = generate(c, fx, mix, r->kind, n, M, Z)) != CLI_OK)
      goto done;
    off_resid(mix, Z, M, lab, res, y); /* the same labels: a smooth function of Z */
    r->resid[a] = mean_of(res, M);
  }
  {
    double disc = fabs(r->resid[0] - r->resid[2]), disc2 = fabs(r->resid[1] - r->resid[2]);
    r->pass_resid = fabs(r->resid[0] - r->target) <= 0.05 * r->target + disc &&
                    (disc2 < disc || disc <= 1e-12 * r->target);
  }

  /* (iii) PCA subspace error per component, and its slope over block sizes. */
  r->pass_pca = true;
  for (size_t k = 0; k < K; k++) {
    size_t p = U.p[k];
    const double *Ut = U.Ut + crate_subspaces_offset(&U, k) * d;
    double q = (double)((d - p) * p);
    r->pca_c[k] = sqrt(2.0 * q * s2 * (1.0 + s2));
    size_t nk = 0;
    for (size_t i = 0; i < M; i++)
      nk += lab[i] == k;
    if (nk < p) {
      rc = cli_fail(c->cmd,
                    "only %zu generated points are labelled %zu, fewer than its rank %zu "
                    "(use a larger -M)",
                    nk, k + 1, p);
      goto done;
    }
    rc = gmm_check(
        c, crate_stats_subspace_error(&r->pca_err[k], &r->pca_count[k], G, M, d, lab, k, Ut, p),
        "PCA of the points labelled %zu", k + 1);
    if (rc != CLI_OK)
      goto done;
    if (d == p) { /* the subspace is everything: the error is 0 up to round-off */
      r->pca_bound[k] = 1e-12;
      if (!(r->pca_err[k] <= r->pca_bound[k]))
        r->pass_pca = false;
      continue;
    }
    r->pca_bound[k] = r->pca_c[k] / sqrt((double)r->pca_count[k]) * sqrt(1.0 + 4.0 * sqrt(2.0 / q));
    if (!(r->pca_err[k] <= r->pca_bound[k]))
      r->pass_pca = false;
  }
  r->slope_na = (M >> (NBLOCK + 1)) < 16 * K;
  r->pca_slope = NAN;
  r->pass_slope = true;
  if (!r->slope_na) {
    size_t used = 0;
    double bx[NBLOCK], by[NBLOCK];
    for (int a = 0; a < NBLOCK; a++) {
      size_t bs = M >> (NBLOCK + 1 - a), nb = M / bs, cnt = 0;
      double s = 0.0;
      for (size_t b = 0; b < nb; b++)
        for (size_t k = 0; k < K; k++) {
          const size_t *lb = lab + b * bs;
          size_t nk = 0;
          for (size_t i = 0; i < bs; i++)
            nk += lb[i] == k;
          if (nk < U.p[k] || U.p[k] == d)
            continue; /* too few points of k in this block for a PCA */
          double e;
          const double *Ut = U.Ut + crate_subspaces_offset(&U, k) * d;
          rc = gmm_check(
              c, crate_stats_subspace_error(&e, NULL, G + b * bs * d, bs, d, lb, k, Ut, U.p[k]),
              "PCA of the points labelled %zu in block %zu of %zu", k + 1, b + 1, nb);
          if (rc != CLI_OK)
            goto done;
          s += e;
          cnt++;
        }
      r->block_size[a] = (double)bs;
      r->block_err[a] = cnt ? s / (double)cnt : NAN;
      if (cnt && r->block_err[a] > 0) {
        bx[used] = r->block_size[a];
        by[used] = r->block_err[a];
        used++;
      }
    }
    r->slope_na = used < 2;
    if (!r->slope_na) {
      r->pca_slope = gmm_loglog_slope(bx, by, used);
      r->pass_slope = fabs(r->pca_slope + 0.5) <= 0.1;
    }
  }

  /* (iv) MMD^2 and sliced W2 against fresh exact draws, with a null. */
  {
    crate_rng rng, pr;
    crate_rng_init_at(&rng, fx->seed, CRATE_RNG_NOISE, 1, 0);
    rc = gmm_check(c, crate_molrg_sample(mix, &rng, N, fx->sigma_min, A, NULL, NULL),
                   "drawing fresh q^{sigma_min}");
    if (rc != CLI_OK)
      goto done;
    rc = gmm_check(c, crate_stats_median_bandwidth(&r->bw, G, N, A, N, d), "median bandwidth");
    if (rc != CLI_OK)
      goto done;
    gmm_note(c, "sample: null distribution, %zu exact-vs-exact replicates of %zu points\n", r->reps,
             N);
    for (size_t t = 0; t < r->reps; t++) {
      crate_rng_init_at(&rng, fx->seed, CRATE_RNG_NOISE, (uint32_t)(2 + t), 0);
      rc = gmm_check(c, crate_molrg_sample(mix, &rng, N, fx->sigma_min, B, NULL, NULL),
                     "null replicate %zu", t);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_molrg_sample(mix, &rng, N, fx->sigma_min, B2, NULL, NULL),
                       "null replicate %zu", t);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_stats_mmd2(&nm[t], B, N, B2, N, d, r->bw), "null MMD^2");
      crate_rng_init(&pr, fx->seed, CRATE_RNG_PROBE);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_stats_sliced_w2(&nsw[t], B, N, B2, N, d, r->proj, &pr),
                       "null sliced W2");
      if (rc != CLI_OK)
        goto done;
    }
    rc = gmm_check(c, crate_stats_mmd2(&r->mmd, G, N, A, N, d, r->bw), "MMD^2");
    crate_rng_init(&pr, fx->seed, CRATE_RNG_PROBE);
    if (rc == CLI_OK)
      rc = gmm_check(c, crate_stats_sliced_w2(&r->sw, G, N, A, N, d, r->proj, &pr), "sliced W2");
    if (rc != CLI_OK)
      goto done;
    qsort(nm, r->reps, sizeof *nm, cmp_d);
    qsort(nsw, r->reps, sizeof *nsw, cmp_d);
    size_t q = (size_t)ceil(0.99 * (double)r->reps) - 1;
    r->mmd_q99 = nm[q];
    r->sw_q99 = nsw[q];
    r->mmd_med = nm[r->reps / 2];
    r->sw_med = nsw[r->reps / 2];
    r->pass_mmd = r->mmd < r->mmd_q99;
    r->pass_sw = r->sw < r->sw_q99;
  }

  /* Plot data: coordinates in the plane of U_1 (first basis vectors). */
  r->nplot = N;
  r->gx = calloc(N, sizeof(double));
  r->gy = calloc(N, sizeof(double));
  r->ex = calloc(N, sizeof(double));
  r->ey = calloc(N, sizeof(double));
  if (!r->gx || !r->gy || !r->ex || !r->ey) {
    rc = cli_fail(c->cmd, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < N; i++) {
    double g0 = 0, g1 = 0, e0 = 0, e1 = 0;
    const double *u0 = U.Ut, *u1 = U.p[0] > 1 ? U.Ut + d : NULL;
    for (size_t l = 0; l < d; l++) {
      g0 += u0[l] * G[i * d + l];
      e0 += u0[l] * A[i * d + l];
      if (u1) {
        g1 += u1[l] * G[i * d + l];
        e1 += u1[l] * A[i * d + l];
      }
    }
    r->gx[i] = g0;
    r->gy[i] = g1;
    r->ex[i] = e0;
    r->ey[i] = e1;
  }
done:
  free(G);
  free(Z);
  free(resp);
  free(res);
  free(A);
  free(B);
  free(B2);
  free(nm);
  free(nsw);
  free(y);
  free(lab);
  crate_molrg_destroy(mix);
  return rc;
}

static const char *pf(bool b) {
  return b ? "PASS" : "FAIL";
}

static bool all_pass(const run *r) {
  return r->pass_freq && r->pass_resid && r->pass_pca && r->pass_slope && r->pass_mmd && r->pass_sw;
}

static void print_table(const gmm_fixture *fx, const run *r, const double *pi) {
  printf("Generated distribution (MATH.md row C7): %zu points, %s with %zu steps from exact\n"
         "q^{sigma_max} draws (sigma %g -> %g, %s grid)\n\n",
         r->M, crate_sampler_name(r->kind), r->steps, fx->sigma_max, fx->sigma_min, fx->schedule);
  printf("(i) component frequencies (label = largest responsibility at sigma_min)\n");
  printf("%6s  %8s  %8s  %8s  %6s\n", "k", "freq", "pi", "SE", "|z|");
  for (size_t k = 0; k < fx->K; k++)
    printf("%6zu  %8.4f  %8.4f  %8.4f  %6.2f\n", k + 1, r->freq[k], pi[k], r->se[k],
           fabs(r->freq[k] - pi[k]) / r->se[k]);
  printf("    within 4 SE: %s\n\n", pf(r->pass_freq));
  double disc = fabs(r->resid[0] - r->resid[2]), disc2 = fabs(r->resid[1] - r->resid[2]);
  printf("(ii) mean squared off-subspace residual\n"
         "    %zu steps: %.5e (SE %.1e) vs (d-p) sigma_min^2 = %.5e: rel dev %.4f\n"
         "    discretisation |r_n - r_8n| = %.3e (|r_2n - r_8n| = %.3e, must be smaller)\n"
         "    bound 0.05 target + disc = %.3e: %s\n\n",
         r->steps, r->resid[0], r->resid_se, r->target, fabs(r->resid[0] - r->target) / r->target,
         disc, disc2, 0.05 * r->target + disc, pf(r->pass_resid));
  printf("(iii) per-component PCA subspace error ||Uh Uh^T - U U^T||_F\n");
  printf("%6s  %8s  %10s  %14s  %10s\n", "k", "M_k", "error", "c/sqrt(M_k)", "bound");
  for (size_t k = 0; k < fx->K; k++)
    printf("%6zu  %8zu  %10.4e  %14.4e  %10.4e\n", k + 1, r->pca_count[k], r->pca_err[k],
           r->pca_c[k] / sqrt((double)r->pca_count[k]), r->pca_bound[k]);
  printf("    error <= bound (4 SE of chi^2 around c/sqrt(M_k)): %s\n", pf(r->pass_pca));
  if (r->slope_na) {
    printf("    slope n/a (needs M >= %zu for blocks of >= 16 K points)\n\n", 512 * fx->K);
  } else {
    printf("    block-averaged error vs block size:");
    for (int a = 0; a < NBLOCK; a++)
      printf(" %.0f:%.3e", r->block_size[a], r->block_err[a]);
    printf("\n    slope %.3f (bound -0.5 +- 0.1): %s\n\n", r->pca_slope, pf(r->pass_slope));
  }
  printf("(iv) %zu generated vs %zu fresh exact points; null of %zu exact-vs-exact replicates\n",
         r->mmd_n, r->mmd_n, r->reps);
  printf("    MMD^2 (bw %.4f): %.3e; null median %.3e, 99th percentile %.3e: %s\n", r->bw, r->mmd,
         r->mmd_med, r->mmd_q99, pf(r->pass_mmd));
  printf("    sliced W2 (%zu directions): %.4f; null median %.4f, 99th percentile %.4f: %s\n\n",
         r->proj, r->sw, r->sw_med, r->sw_q99, pf(r->pass_sw));
  printf("C7 overall: %s\n", all_pass(r) ? "PASS" : "FAIL");
}

static json_t *to_json(const gmm_fixture *fx, const run *r, const double *pi, const char *csv,
                       const char *png) {
  json_t *o = json_object(), *fr = json_array(), *pis = json_array(), *se = json_array(),
         *pe = json_array(), *pb = json_array(), *pc = json_array(), *crit = json_object();
  for (size_t k = 0; k < fx->K; k++) {
    json_array_append_new(fr, cli_json_num(r->freq[k]));
    json_array_append_new(pis, cli_json_num(pi[k]));
    json_array_append_new(se, cli_json_num(r->se[k]));
    json_array_append_new(pe, cli_json_num(r->pca_err[k]));
    json_array_append_new(pb, cli_json_num(r->pca_bound[k]));
    json_array_append_new(pc, json_integer((json_int_t)r->pca_count[k]));
  }
  json_object_set_new(crit, "frequencies", json_boolean(r->pass_freq));
  json_object_set_new(crit, "residual", json_boolean(r->pass_resid));
  json_object_set_new(crit, "pca_error", json_boolean(r->pass_pca));
  json_object_set_new(crit, "pca_slope", r->slope_na ? json_null() : json_boolean(r->pass_slope));
  json_object_set_new(crit, "mmd2", json_boolean(r->pass_mmd));
  json_object_set_new(crit, "sliced_w2", json_boolean(r->pass_sw));
  json_object_set_new(o, "command", json_string("gmm sample"));
  json_object_set_new(o, "sampler", json_string(crate_sampler_name(r->kind)));
  json_object_set_new(o, "steps", json_integer((json_int_t)r->steps));
  json_object_set_new(o, "samples", json_integer((json_int_t)r->M));
  json_object_set_new(o, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(o, "K", json_integer((json_int_t)fx->K));
  json_object_set_new(o, "seed", json_integer((json_int_t)fx->seed));
  json_object_set_new(o, "sigma_min", json_real(fx->sigma_min));
  json_object_set_new(o, "sigma_max", json_real(fx->sigma_max));
  json_object_set_new(o, "schedule", json_string(fx->schedule));
  json_object_set_new(o, "frequencies", fr);
  json_object_set_new(o, "pi", pis);
  json_object_set_new(o, "frequency_se", se);
  json_object_set_new(o, "residual", cli_json_num(r->resid[0]));
  json_object_set_new(o, "residual_se", cli_json_num(r->resid_se));
  json_object_set_new(o, "residual_target", cli_json_num(r->target));
  json_object_set_new(o, "residual_2n", cli_json_num(r->resid[1]));
  json_object_set_new(o, "residual_8n", cli_json_num(r->resid[2]));
  json_object_set_new(o, "pca_errors", pe);
  json_object_set_new(o, "pca_bounds", pb);
  json_object_set_new(o, "pca_counts", pc);
  json_object_set_new(o, "pca_slope", cli_json_num(r->pca_slope));
  json_object_set_new(o, "mmd_samples", json_integer((json_int_t)r->mmd_n));
  json_object_set_new(o, "bandwidth", cli_json_num(r->bw));
  json_object_set_new(o, "mmd2", cli_json_num(r->mmd));
  json_object_set_new(o, "mmd2_null_q99", cli_json_num(r->mmd_q99));
  json_object_set_new(o, "sliced_w2", cli_json_num(r->sw));
  json_object_set_new(o, "sliced_w2_null_q99", cli_json_num(r->sw_q99));
  json_object_set_new(o, "null_reps", json_integer((json_int_t)r->reps));
  json_object_set_new(o, "criteria", crit);
  json_object_set_new(o, "pass", json_boolean(all_pass(r)));
  json_object_set_new(o, "csv", json_string(csv));
  json_object_set_new(o, "png", json_string(png));
  return o;
}

static int write_csv(const gmm_common *c, const gmm_fixture *fx, const run *r, const double *pi,
                     char *path, size_t size) {
  FILE *f = gmm_open_out(c, ".csv", path, size);
  if (!f)
    return CLI_FAIL;
  fprintf(f, "criterion,component,value,reference,bound,pass\n");
  for (size_t k = 0; k < fx->K; k++)
    fprintf(f, "frequency,%zu,%.17g,%.17g,%.17g,%d\n", k + 1, r->freq[k], pi[k], 4.0 * r->se[k],
            fabs(r->freq[k] - pi[k]) <= 4.0 * r->se[k]);
  fprintf(f, "residual,all,%.17g,%.17g,%.17g,%d\n", r->resid[0], r->target,
          0.05 * r->target + fabs(r->resid[0] - r->resid[2]), r->pass_resid);
  for (size_t k = 0; k < fx->K; k++)
    fprintf(f, "pca_error,%zu,%.17g,%.17g,%.17g,%d\n", k + 1, r->pca_err[k],
            r->pca_c[k] / sqrt((double)r->pca_count[k]), r->pca_bound[k],
            r->pca_err[k] <= r->pca_bound[k]);
  if (!r->slope_na)
    fprintf(f, "pca_slope,all,%.17g,-0.5,0.1,%d\n", r->pca_slope, r->pass_slope);
  fprintf(f, "mmd2,all,%.17g,%.17g,%.17g,%d\n", r->mmd, r->mmd_med, r->mmd_q99, r->pass_mmd);
  fprintf(f, "sliced_w2,all,%.17g,%.17g,%.17g,%d\n", r->sw, r->sw_med, r->sw_q99, r->pass_sw);
  return gmm_close_out(c, f, path) ? CLI_OK : CLI_FAIL;
}

static int write_png(const gmm_common *c, const gmm_fixture *fx, const run *r) {
  char title[200], lg[96];
  snprintf(lg, sizeof lg, "generated (%s, %zu steps)", crate_sampler_name(r->kind), r->steps);
  gmm_series s[2] = {
      {"fresh exact draws of q at \xcf\x83 min", r->ex, r->ey, r->nplot, true, 0, false},
      {lg, r->gx, r->gy, r->nplot, true, 0, false}};
  snprintf(title, sizeof title, "Samples projected on the plane of U_1 (d=%zu, K=%zu, \xcf\x83=%g)",
           fx->d, fx->K, fx->sigma_min);
  gmm_chart ch = {title, "<u_1, z>", "<u_2, z>", false, false, 0, 0, 0, 0};
  return gmm_plot(c, &ch, s, 2);
}

int gmm_sample(int argc, char **argv) {
  gmm_common c;
  gmm_fixture fx;
  gmm_common_default(&c, CMD, DEFAULT_OUT);
  gmm_fixture_default(&fx);
  static run r;
  memset(&r, 0, sizeof r);
  r.kind = CRATE_SAMPLER_HEUN;
  r.steps = DEFAULT_STEPS;
  r.M = DEFAULT_M;
  r.mmd_n = DEFAULT_MMD_N;
  r.reps = DEFAULT_REPS;
  r.proj = DEFAULT_PROJ;
  static const struct option longopts[] = {{"sampler", required_argument, NULL, OPT_SAMPLER},
                                           {"steps", required_argument, NULL, OPT_STEPS},
                                           {"samples", required_argument, NULL, OPT_SAMPLES},
                                           {"mmd-samples", required_argument, NULL, OPT_MMD_N},
                                           {"null-reps", required_argument, NULL, OPT_REPS},
                                           {"projections", required_argument, NULL, OPT_PROJ},
                                           GMM_COMMON_LONGOPTS,
                                           GMM_FIXTURE_LONGOPTS,
                                           {NULL, 0, NULL, 0}};
  opterr = 0;
  int opt;
  long v;
  while ((opt = getopt_long(argc, argv, GMM_COMMON_SHORTOPTS "M:", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_SAMPLER: {
      crate_sampler_kind k[GMM_MAX_LIST];
      int n = gmm_parse_samplers(CMD, "--sampler", optarg, k);
      if (n < 0)
        return CLI_USAGE;
      if (n != 1)
        return cli_usage_error(CMD, "--sampler takes one sampler, got %d", n);
      r.kind = k[0];
      continue;
    }
    case OPT_STEPS:
      if (!cli_parse_long(CMD, "--steps", optarg, 1, 100000, &v))
        return CLI_USAGE;
      r.steps = (size_t)v;
      continue;
    case 'M':
    case OPT_SAMPLES:
      if (!cli_parse_long(CMD, "--samples", optarg, 16, 10000000, &v))
        return CLI_USAGE;
      r.M = (size_t)v;
      continue;
    case OPT_MMD_N:
      if (!cli_parse_long(CMD, "--mmd-samples", optarg, 8, 100000, &v))
        return CLI_USAGE;
      r.mmd_n = (size_t)v;
      continue;
    case OPT_REPS:
      if (!cli_parse_long(CMD, "--null-reps", optarg, 50, 100000, &v))
        return CLI_USAGE;
      r.reps = (size_t)v;
      continue;
    case OPT_PROJ:
      if (!cli_parse_long(CMD, "--projections", optarg, 1, 100000, &v))
        return CLI_USAGE;
      r.proj = (size_t)v;
      continue;
    default: break;
    }
    const int h = gmm_common_option(&c, &fx, opt, argv, usage);
    if (h >= 0)
      return h;
  }
  if (!gmm_common_no_positional(&c, argc, argv) || !gmm_fixture_finish(&fx, CMD))
    return CLI_USAGE;
  if (r.mmd_n > r.M)
    r.mmd_n = r.M;

  if (!c.quiet) {
    fprintf(stderr, "crate gmm sample: ");
    gmm_fixture_describe(&fx, stderr);
    fprintf(stderr,
            "crate gmm sample: sampler=%s steps=%zu samples=%zu mmd-samples=%zu null-reps=%zu "
            "projections=%zu start=exact q^{sigma_max} out=%s\n",
            crate_sampler_name(r.kind), r.steps, r.M, r.mmd_n, r.reps, r.proj, c.out);
  }
  int rc = compute(&c, &fx, &r);
  char csv[1024], png[1024];
  double pi[GMM_MAX_K];
  memcpy(pi, fx.pi, sizeof pi);
  if (rc == CLI_OK)
    rc = write_csv(&c, &fx, &r, pi, csv, sizeof csv);
  if (rc == CLI_OK)
    rc = write_png(&c, &fx, &r);
  free(r.gx);
  free(r.gy);
  free(r.ex);
  free(r.ey);
  if (rc != CLI_OK)
    return rc;
  gmm_path(png, sizeof png, c.out, ".png");
  if (c.json)
    rc = gmm_json_print(&c, to_json(&fx, &r, pi, csv, png));
  else
    print_table(&fx, &r, pi);
  if (rc == CLI_OK && c.strict && !all_pass(&r))
    return cli_fail(CMD, "a C7 criterion failed (--strict)");
  return rc;
}
