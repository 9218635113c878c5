/* gmm_layers.c: `crate gmm crate-layers`, the structured denoising and
 * structured diffusion experiments on MoLRG tokens (MATH.md §1.4, §1.6, §2,
 * §5; catalogue rows D4-D8; pitfalls P5, P6, P16).
 *
 * Tokens: N draws of the fixture mixture at noise sigma (Z, with the clean
 * tokens Z_nat and the component labels), true subspaces U_[K], coding
 * precision eps2 = epsilon^2 (beta_k = p_k / (N eps2)), tokens not
 * normalised, N = the tokens (no CLS).  Four parts:
 *
 *  (a) structured denoising (§5.1-5.2, D4, P5, P6): `depth` encoder layers,
 *      Euler steps Z <- Z - kappa F(Z), kappa = T / depth, with the exact
 *      field F = grad R^c and with the MSSA approximation.  Per layer: R^c,
 *      the descent-lemma slack R^c(Z) - R^c(Z+) - kappa/2 ||grad R^c||^2
 *      (exact field; gated >= -1e-12 when kappa <= 1/L, L = beta_max
 *      lambda_max(sum U U^T), MATH.md §1.6), the MSE to the clean tokens per
 *      coordinate and the per-cluster SNR ||P_k Z_k|| / ||(I - P_k) Z_k||
 *      (§2.6).  Compared with the Bayes denoiser m(z) at the same sigma
 *      (§3.4).  SNR and MSE are reported, not gated: descent on R^c is not
 *      a denoising proof (P5), and MSSA is not a descent step (P6).
 *  (b) invertibility (§5.3, D5, D6): the explicit one-layer decoder error
 *      vs kappa (slope 2 +- 0.2, coarsest point dropped), the fixed-point
 *      inverse (error <= 1e-12 with observed contraction <= kappa Lip, Lip
 *      measured at Z and Z'), and the L-layer encode -> decode round trip at
 *      fixed T vs L with Euler (order 1 +- 0.2) and Heun on the same grid
 *      (order 3 +- 0.2) for the exact field; the MSSA field's orders are
 *      reported (its Euler round trip is pre-asymptotic at L <= 64).
 *  (c) compression vs score (§5.4, D8, P16; report only): the cosine between
 *      -grad R^c(Z) and sigma^2 grad log q^sigma(Z) = m(Z) - Z on a
 *      (sigma, eps2 = c sigma^2) grid, one token at a time (N = 1, mean of
 *      the cosines) and all tokens together, for incoherent and orthogonal
 *      subspaces of the fixture's shape.
 *  (d) the AoT SNR rate (§2.6, D7): K = 3 orthogonal subspaces of rank 32,
 *      N = 60, delta = 0.1, eta = 0.5, tau = 0.9: the per-layer SNR ratio of
 *      every cluster vs 1 + eta tau (gate 1e-12 on every layer run; the
 *      exact rate holds for about 4 layers, after which the amplified
 *      cross-head scores pass tau), and a negative control with p = 2 that
 *      must deviate (> 1e-2).
 *
 * Everything is double precision; draws come from the fixture seed (bases:
 * stream INIT; tokens: NOISE; Lipschitz start vectors: PROBE), so reruns are
 * bit-identical.
 */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crate/plot.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm crate-layers"
#define DEFAULT_OUT "gmm_crate_layers"
#define DEFAULT_TOKENS 8
#define DEFAULT_SIGMA 0.3
#define DEFAULT_EPS2 0.25
#define DEFAULT_T 2.0
#define DEFAULT_DEPTH 8
#define DEFAULT_LAYERS "4,8,16,32,64"
#define DEFAULT_KAPPAS "0.4,0.2,0.1,0.05,0.025"
#define DEFAULT_AOT_LAYERS 4
#define MAX_DEPTH 10000
#define MAX_TOKENS 100000
#define MAX_SNR_COLS 6 /* clusters shown in the table (all go to CSV/JSON) */

/* Gates (MATH.md §6 rows D4-D7). */
#define DESCENT_TOL 1e-12
#define SLOPE_TOL 0.2
#define FIXED_POINT_GATE 1e-12
#define FIXED_POINT_TOL 1e-15
#define FIXED_POINT_ITERS 200
#define LIP_ITERS 2000
#define AOT_GATE 1e-12
#define AOT_CONTROL_MIN 1e-2

/* Part (c): the (sigma, eps2 = c sigma^2) grid. */
#define NSIG 8
#define NCM 3
static const double cos_sigmas[NSIG] = {0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0};
static const double cos_cmult[NCM] = {0.25, 1.0, 4.0};

/* Part (d): the theorem's regime (MATH.md §6 "Expected magnitudes"). */
#define AOT_K 3
#define AOT_P 32
#define AOT_N 60
#define AOT_CONTROL_P 2
#define AOT_DELTA 0.1
#define AOT_ETA 0.5
#define AOT_TAU 0.9
#define AOT_MAX_LAYERS 64

enum {
  OPT_TOKENS = 1200,
  OPT_SIGMA,
  OPT_EPS2,
  OPT_T,
  OPT_LAYERS,
  OPT_DEPTH,
  OPT_KAPPA,
  OPT_PART,
  OPT_AOT_LAYERS
};

enum { PART_A = 1, PART_B = 2, PART_C = 4, PART_D = 8, PART_ALL = 15 };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm crate-layers [options]\n\n"
          "Structured denoising and structured diffusion on N MoLRG tokens drawn at noise\n"
          "sigma, with the true subspaces (MATH.md §1.6, §2, §5; rows D4-D8):\n"
          "  (a) encoder layers Z <- Z - kappa F(Z), kappa = T/depth, F = grad R^c (exact)\n"
          "      or its MSSA approximation: per layer R^c, descent-lemma slack, MSE to the\n"
          "      clean tokens and per-cluster SNR, vs the Bayes denoiser m(z) (pass: R^c\n"
          "      obeys the descent lemma when kappa <= 1/L; SNR and MSE are reported only)\n"
          "  (b) invertibility: one-layer explicit decoder error vs kappa (slope 2 +- 0.2),\n"
          "      fixed-point inverse (<= 1e-12, contraction <= kappa Lip), L-layer round\n"
          "      trip vs L at fixed T: Euler order 1, Heun order 3 (+- 0.2)\n"
          "  (c) cos(-grad R^c, sigma^2 grad log q) over sigma and eps2 = c sigma^2,\n"
          "      c in {0.25, 1, 4}, per token and for the token set, incoherent and\n"
          "      orthogonal subspaces (report only)\n"
          "  (d) attention-only layer: SNR ratio per layer vs 1 + eta tau (K = 3, p = 32,\n"
          "      N = 60, delta = 0.1, eta = 0.5, tau = 0.9; pass 1e-12) and a p = 2\n"
          "      negative control (must deviate by > 1e-2)\n"
          "Convention (P4): eps2 = epsilon^2, beta_k = p_k/(N eps2), tokens not\n"
          "normalised, no CLS token.\n\n"
          "Options:\n"
          "      --part LIST         parts to run: a, b, c, d (comma separated) or all [all]\n"
          "      --tokens N          tokens N [%d]\n"
          "      --sigma S           noise level of the tokens, > 0 [%g]\n"
          "      --eps2 E            coding precision epsilon^2, > 0 [%g]\n"
          "      --T T               depth horizon of (a) and (b), > 0 [%g]\n"
          "      --depth N           encoder layers of (a), kappa = T/N [%d]\n"
          "      --layers LIST       layer counts L of the (b) round trip [" DEFAULT_LAYERS "]\n"
          "      --kappa LIST        one-layer step sizes of (b), > 0 [" DEFAULT_KAPPAS "]\n"
          "      --aot-layers N      AoT layers of (d), each gated, at most %d; the exact\n"
          "                          rate stops after about 4 layers [%d]\n",
          DEFAULT_TOKENS, DEFAULT_SIGMA, DEFAULT_EPS2, DEFAULT_T, DEFAULT_DEPTH, AOT_MAX_LAYERS,
          DEFAULT_AOT_LAYERS);
  gmm_fixture_help(f);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "  Files written instead, for the parts run: PREFIX_denoise.csv, PREFIX_invert.csv,\n"
             "  PREFIX_cosine.csv, PREFIX_aot.csv and the charts PREFIX_{rc,snr,mse,decoder,\n"
             "  roundtrip,cosine,aot}.png.\n"
             "  Fixture flags used: d, K, p, pi and subspaces (parts a, b; part c runs both\n"
             "  kinds; part d has its own constants) and the seed; the sigma range, schedule\n"
             "  and rho are not used.\n");
  fprintf(f, "\nExample: crate gmm crate-layers --part b --json\n");
}

/* ---- the run ------------------------------------------------------------------------------ */

/* Round-trip variants of part (b): field x method. */
enum { RT_EXACT_EULER, RT_EXACT_HEUN, RT_MSSA_EULER, RT_MSSA_HEUN, RT_N };
static const char *rt_name[RT_N] = {"exact_euler", "exact_heun", "mssa_euler", "mssa_heun"};
static const int rt_order[RT_N] = {1, 3, 1, 3};
/* D6 gates the exact field; the MSSA field's orders are reported (its Euler
 * round trip is still pre-asymptotic at L <= 64 on the default fixture). */
static const bool rt_gated[RT_N] = {true, true, false, false};

/* Part (a) trajectory of one field. */
typedef struct traj_stats {
  double *Rc;       /* (depth + 1) */
  double *slack;    /* (depth) R^c(Z_l) - R^c(Z_l+1) - kappa/2 ||grad||^2 */
  double *mse;      /* (depth + 1) per coordinate */
  double *snr;      /* (depth + 1, K) */
  double min_slack; /* exact field only */
  bool monotone;    /* R^c non-increasing */
  size_t best;      /* layer of the smallest MSE */
} traj_stats;

typedef struct run {
  /* configuration */
  unsigned parts;
  size_t N, depth, aot_layers;
  double sigma, eps2, T;
  size_t layers[GMM_MAX_LIST];
  int nl;
  double kappas[GMM_MAX_LIST];
  int nkap;
  /* tokens and derived constants */
  size_t d, K;
  size_t counts[GMM_MAX_K];
  double beta_max, lam_max, Ldesc, kappa;
  bool regime; /* kappa <= 1/L */
  /* (a) */
  traj_stats tr[2]; /* exact, MSSA */
  double noisy_mse, bayes_mse, bayes_Rc;
  double bayes_snr[GMM_MAX_K];
  bool pass_a;
  /* (b) */
  double dec_err[GMM_MAX_LIST];
  double fp_err[GMM_MAX_LIST], fp_contr[GMM_MAX_LIST], fp_rate[GMM_MAX_LIST];
  double fp_lip[GMM_MAX_LIST];
  size_t fp_iters[GMM_MAX_LIST];
  bool fp_run[GMM_MAX_LIST], fp_conv[GMM_MAX_LIST];
  double rt_err[RT_N][GMM_MAX_LIST];
  double slope_dec, slope_rt[RT_N], fp_worst;
  size_t fp_count;
  bool pass_dec, pass_fp, pass_rt[RT_N];
  /* (c) [kind][mode][sigma][c]; kind 0 incoherent, 1 orthogonal; mode 0 token, 1 set */
  double cosv[2][2][NSIG][NCM];
  bool have_kind[2];
  /* (d) [run][layer][cluster]; run 0 regime, 1 control */
  double aot_snr[2][AOT_MAX_LAYERS + 1][AOT_K];
  double aot_dev[2][AOT_MAX_LAYERS];
  double aot_worst[2], tau_max;
  bool pass_aot[2];
} run;

static double sq(double x) {
  return x * x;
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static double cosine(const double *a, const double *b, size_t n) {
  return dot(a, b, n) / sqrt(dot(a, a, n) * dot(b, b, n));
}

/* ||A - B||_F / ||B||_F. */
static double rel_err(const double *a, const double *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num += sq(a[i] - b[i]);
    den += sq(b[i]);
  }
  return sqrt(num / den);
}

/* Mean squared error per coordinate. */
static double mse(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += sq(a[i] - b[i]);
  return s / (double)n;
}

/* Per-cluster SNR ||P_k Z_k||_F / ||(I - P_k) Z_k||_F over the tokens of
 * cluster k (crate_aot_snr on the one-subspace view of U_k); NAN for a
 * cluster without tokens.  work: (N, d); zeros: (N) zero labels. */
static int cluster_snr(const double *Z, size_t N, const crate_subspaces *U, const size_t *labels,
                       double *work, const size_t *zeros, double *snr) {
  size_t d = U->d;
  for (size_t k = 0; k < U->K; k++) {
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
      if (labels[i] == k)
        memcpy(work + (n++) * d, Z + i * d, d * sizeof *work);
    snr[k] = NAN;
    if (n == 0)
      continue;
    crate_subspaces Uk = {d, 1, &U->p[k], U->Ut + crate_subspaces_offset(U, k) * d};
    int st = crate_aot_snr(work, n, &Uk, zeros, &snr[k]);
    if (st != CRATE_STATUS_OK)
      return st;
  }
  return CRATE_STATUS_OK;
}

/* ---- part (a) ------------------------------------------------------------------------------ */

static int part_a(const gmm_common *c, run *r, const crate_subspaces *U, const double *Z,
                  const double *Zc, const size_t *labels, double *work, const size_t *zeros,
                  crate_molrg *mix) {
  size_t N = r->N, d = r->d, n = N * d, L = r->depth;
  double *traj = calloc((L + 1) * n, sizeof *traj), *G = calloc(n, sizeof *G);
  double *M = calloc(n, sizeof *M);
  int rc = CLI_OK;
  if (!traj || !G || !M) {
    rc = cli_fail(c->cmd, "out of memory (%zu layers of %zu tokens)", L, N);
    goto done;
  }
  static const crate_flow_field fields[2] = {CRATE_FLOW_FIELD_EXACT, CRATE_FLOW_FIELD_MSSA};
  static const char *fname[2] = {"exact", "MSSA"};
  r->pass_a = true;
  for (int f = 0; f < 2; f++) {
    traj_stats *t = &r->tr[f];
    crate_flow_opts o = {.eps2 = r->eps2, .field = fields[f], .method = CRATE_FLOW_EULER};
    rc = gmm_check(c, crate_flow_encode(Z, N, U, 1, L, r->T, &o, traj + L * n, traj),
                   "(a) %s field, %zu encoder layers, T = %g", fname[f], L, r->T);
    if (rc != CLI_OK)
      goto done;
    t->min_slack = INFINITY;
    t->monotone = true;
    t->best = 0;
    for (size_t l = 0; l <= L; l++) {
      const double *Zl = traj + l * n;
      rc = gmm_check(c, crate_rate_Rc(Zl, N, U, r->eps2, &t->Rc[l]), "(a) R^c at layer %zu", l);
      if (rc == CLI_OK)
        rc = gmm_check(c, cluster_snr(Zl, N, U, labels, work, zeros, t->snr + l * r->K),
                       "(a) SNR at layer %zu", l);
      if (rc != CLI_OK)
        goto done;
      t->mse[l] = mse(Zl, Zc, n);
      if (t->mse[l] < t->mse[t->best])
        t->best = l;
      if (l == 0)
        continue;
      t->monotone = t->monotone && t->Rc[l] <= t->Rc[l - 1];
      /* descent-lemma slack of the step l-1 -> l, with the exact gradient */
      rc =
          gmm_check(c, crate_rate_Rc_grad(traj + (l - 1) * n, N, U, r->eps2, CRATE_RATE_FORM_PP, G),
                    "(a) grad R^c at layer %zu", l - 1);
      if (rc != CLI_OK)
        goto done;
      t->slack[l - 1] = t->Rc[l - 1] - t->Rc[l] - 0.5 * r->kappa * dot(G, G, n);
      t->min_slack = fmin(t->min_slack, t->slack[l - 1]);
    }
    gmm_note(c, "crate-layers (a): %s field, R^c %.4f -> %.4f, MSE %.4e -> %.4e\n", fname[f],
             t->Rc[0], t->Rc[L], t->mse[0], t->mse[L]);
  }
  /* the exact field obeys the descent lemma in its regime (D4) */
  if (r->regime)
    r->pass_a = r->tr[0].min_slack >= -DESCENT_TOL && r->tr[0].monotone;
  /* the Bayes denoiser at the same sigma */
  crate_molrg_post post = {.mean = M};
  rc = gmm_check(c, crate_molrg_posterior(mix, Z, N, r->sigma, &post), "(a) posterior mean");
  if (rc == CLI_OK)
    rc = gmm_check(c, crate_rate_Rc(M, N, U, r->eps2, &r->bayes_Rc), "(a) R^c of m(z)");
  if (rc == CLI_OK)
    rc = gmm_check(c, cluster_snr(M, N, U, labels, work, zeros, r->bayes_snr), "(a) SNR of m(z)");
  if (rc != CLI_OK)
    goto done;
  r->bayes_mse = mse(M, Zc, n);
  r->noisy_mse = r->tr[0].mse[0];
done:
  free(traj);
  free(G);
  free(M);
  return rc;
}

/* ---- part (b) ------------------------------------------------------------------------------ */

static int part_b(const gmm_common *c, const gmm_fixture *fx, run *r, const crate_subspaces *U,
                  const double *Z) {
  size_t N = r->N, d = r->d, n = N * d;
  double *Zp = calloc(n, sizeof *Zp), *Zh = calloc(n, sizeof *Zh);
  int rc = CLI_OK;
  if (!Zp || !Zh) {
    rc = cli_fail(c->cmd, "out of memory (%zu tokens)", N);
    goto done;
  }
  crate_flow_opts o = {
      .eps2 = r->eps2, .field = CRATE_FLOW_FIELD_EXACT, .method = CRATE_FLOW_EULER};
  /* D5: one encoder step, then the explicit decoder and the fixed-point inverse */
  r->fp_worst = 0.0;
  r->fp_count = 0;
  r->pass_fp = true;
  for (int i = 0; i < r->nkap; i++) {
    double kap = r->kappas[i];
    rc = gmm_check(c, crate_flow_encode_step(Z, N, U, kap, &o, Zp), "(b) encoder step, kappa %g",
                   kap);
    if (rc == CLI_OK)
      rc = gmm_check(c, crate_flow_decode_step(Zp, N, U, kap, &o, Zh),
                     "(b) explicit decoder step, kappa %g", kap);
    if (rc != CLI_OK)
      goto done;
    r->dec_err[i] = rel_err(Zh, Z, n);
    /* Lip where the iteration runs: at Z' (its start) and Z (the fixed point) */
    double lip1 = 0.0, lip2 = 0.0;
    crate_rng rng;
    crate_rng_init(&rng, fx->seed, CRATE_RNG_PROBE);
    rc = gmm_check(c, crate_flow_lipschitz(Zp, N, U, &o, LIP_ITERS, &rng, &lip1),
                   "(b) Lipschitz estimate at Z'");
    if (rc == CLI_OK)
      rc = gmm_check(c, crate_flow_lipschitz(Z, N, U, &o, LIP_ITERS, &rng, &lip2),
                     "(b) Lipschitz estimate at Z");
    if (rc != CLI_OK)
      goto done;
    r->fp_lip[i] = fmax(lip1, lip2);
    r->fp_run[i] = kap * r->fp_lip[i] < 1.0;
    if (r->fp_run[i]) {
      crate_flow_inverse_info info;
      int st = crate_flow_encode_step_inverse(Zp, N, U, kap, &o, FIXED_POINT_TOL, FIXED_POINT_ITERS,
                                              Zh, &info);
      if (st != CRATE_STATUS_OK && st != CRATE_STATUS_ENUMERIC) {
        rc = gmm_check(c, st, "(b) fixed-point inverse, kappa %g", kap);
        goto done;
      }
      crate_error_clear();
      r->fp_err[i] = rel_err(Zh, Z, n);
      r->fp_iters[i] = info.iters;
      r->fp_contr[i] = info.contraction;
      r->fp_rate[i] = info.rate;
      r->fp_conv[i] = info.converged;
      r->fp_worst = fmax(r->fp_worst, r->fp_err[i]);
      r->fp_count++;
      r->pass_fp = r->pass_fp && info.converged && r->fp_err[i] <= FIXED_POINT_GATE &&
                   info.contraction <= kap * r->fp_lip[i];
    }
    gmm_note(c, "crate-layers (b): kappa %-6g decoder error %.3e, fixed point %s\n", kap,
             r->dec_err[i], r->fp_run[i] ? "run" : "skipped (kappa Lip >= 1)");
  }
  if (r->fp_count == 0)
    r->fp_worst = NAN;
  {
    /* error ~ kappa^2; kappas are sorted decreasing, so index 0 is the
     * coarsest point (dropped, MATH.md §6) */
    double x[GMM_MAX_LIST], y[GMM_MAX_LIST];
    size_t used = 0;
    for (int i = 1; i < r->nkap; i++)
      if (r->dec_err[i] > 100 * DBL_EPSILON) {
        x[used] = r->kappas[i];
        y[used] = r->dec_err[i];
        used++;
      }
    r->slope_dec = used >= 2 ? gmm_loglog_slope(x, y, used) : NAN;
    r->pass_dec = !isfinite(r->slope_dec) || fabs(r->slope_dec - 2.0) <= SLOPE_TOL;
  }
  /* D6: L layers at fixed T, encode then decode on the same grid */
  for (int v = 0; v < RT_N; v++) {
    crate_flow_opts ov = {.eps2 = r->eps2,
                          .field =
                              v >= RT_MSSA_EULER ? CRATE_FLOW_FIELD_MSSA : CRATE_FLOW_FIELD_EXACT,
                          .method = (v % 2) ? CRATE_FLOW_HEUN : CRATE_FLOW_EULER};
    for (int i = 0; i < r->nl; i++) {
      size_t L = r->layers[i];
      rc = gmm_check(c, crate_flow_encode(Z, N, U, 1, L, r->T, &ov, Zp, NULL),
                     "(b) %s encoder, L = %zu", rt_name[v], L);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_flow_decode(Zp, N, U, 1, L, r->T, &ov, Zh, NULL),
                       "(b) %s decoder, L = %zu", rt_name[v], L);
      if (rc != CLI_OK)
        goto done;
      r->rt_err[v][i] = rel_err(Zh, Z, n);
    }
    r->slope_rt[v] = gmm_fit_order(r->layers, r->rt_err[v], (size_t)r->nl, 100 * DBL_EPSILON, NULL);
    r->pass_rt[v] = !isfinite(r->slope_rt[v]) || fabs(r->slope_rt[v] - rt_order[v]) <= SLOPE_TOL;
    gmm_note(c, "crate-layers (b): round trip %-11s order %.3f\n", rt_name[v], r->slope_rt[v]);
  }
done:
  free(Zp);
  free(Zh);
  return rc;
}

/* ---- part (c) ------------------------------------------------------------------------------ */

static int part_c(const gmm_common *c, const gmm_fixture *fx, run *r) {
  size_t N = r->N, d = fx->d, n = N * d;
  double *Z = calloc(n, sizeof *Z), *res = calloc(n, sizeof *res), *G = calloc(n, sizeof *G);
  double *tg = calloc(n, sizeof *tg);
  crate_molrg *mix = NULL;
  int rc = CLI_OK;
  if (!Z || !res || !G || !tg) {
    rc = cli_fail(c->cmd, "out of memory (%zu tokens)", N);
    goto done;
  }
  size_t total = 0;
  for (size_t k = 0; k < fx->K; k++)
    total += fx->p[k];
  for (int kind = 0; kind < 2; kind++) {
    r->have_kind[kind] = kind == 0 || total <= d;
    if (!r->have_kind[kind])
      continue;
    gmm_fixture tmp = *fx;
    tmp.kind = kind ? CRATE_SUBSPACES_ORTHOGONAL : CRATE_SUBSPACES_INCOHERENT;
    rc = gmm_check(c, gmm_fixture_create(&tmp, &mix), "(c) creating the %s mixture",
                   kind ? "orthogonal" : "incoherent");
    if (rc != CLI_OK)
      goto done;
    crate_subspaces U = crate_molrg_subspaces(mix);
    for (int s = 0; s < NSIG; s++) {
      double sigma = cos_sigmas[s];
      /* the same clean tokens and unit noise at every sigma */
      crate_rng rng;
      crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
      crate_molrg_post post = {.resid = res};
      rc = gmm_check(c, crate_molrg_sample(mix, &rng, N, sigma, Z, NULL, NULL), "(c) tokens");
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_molrg_posterior(mix, Z, N, sigma, &post), "(c) score at sigma %g",
                       sigma);
      if (rc != CLI_OK)
        goto done;
      for (size_t i = 0; i < n; i++)
        tg[i] = -res[i]; /* sigma^2 grad log q = m - z */
      for (int ci = 0; ci < NCM; ci++) {
        double eps2 = cos_cmult[ci] * sigma * sigma, mean = 0.0;
        for (size_t j = 0; j < N; j++) {
          rc = gmm_check(
              c, crate_flow_field_eval(Z + j * d, 1, &U, eps2, CRATE_FLOW_FIELD_EXACT, G + j * d),
              "(c) grad R^c of token %zu, sigma %g", j, sigma);
          if (rc != CLI_OK)
            goto done;
          for (size_t l = 0; l < d; l++)
            G[j * d + l] = -G[j * d + l];
          mean += cosine(G + j * d, tg + j * d, d);
        }
        r->cosv[kind][0][s][ci] = mean / (double)N;
        rc = gmm_check(c, crate_flow_field_eval(Z, N, &U, eps2, CRATE_FLOW_FIELD_EXACT, G),
                       "(c) grad R^c of the token set, sigma %g", sigma);
        if (rc != CLI_OK)
          goto done;
        for (size_t i = 0; i < n; i++)
          G[i] = -G[i];
        r->cosv[kind][1][s][ci] = cosine(G, tg, n);
      }
    }
    crate_molrg_destroy(mix);
    mix = NULL;
  }
  gmm_note(c, "crate-layers (c): cosines on a %d x %d (sigma, eps2) grid\n", NSIG, NCM);
done:
  crate_molrg_destroy(mix);
  free(Z);
  free(res);
  free(G);
  free(tg);
  return rc;
}

/* ---- part (d) ------------------------------------------------------------------------------ */

static int part_d(const gmm_common *c, const gmm_fixture *fx, run *r) {
  const size_t ps[2] = {AOT_P, AOT_CONTROL_P};
  double *Ut = calloc(AOT_K * AOT_P * AOT_K * AOT_P, sizeof *Ut);
  double *Z = calloc(AOT_N * AOT_K * AOT_P, sizeof *Z);
  size_t labels[AOT_N];
  int rc = CLI_OK;
  if (!Ut || !Z) {
    rc = cli_fail(c->cmd, "out of memory");
    goto done;
  }
  double want = 1.0 + AOT_ETA * AOT_TAU;
  r->tau_max = 1.0 / (1.0 + AOT_N * exp(-9.0 * AOT_P / 32.0));
  for (int v = 0; v < 2; v++) {
    size_t p[AOT_K], d = AOT_K * ps[v];
    for (size_t k = 0; k < AOT_K; k++)
      p[k] = ps[v];
    crate_rng rng;
    crate_rng_init(&rng, fx->seed, CRATE_RNG_INIT);
    rc = gmm_check(c, crate_subspaces_random(Ut, d, AOT_K, p, CRATE_SUBSPACES_ORTHOGONAL, &rng),
                   "(d) orthogonal bases, p = %zu", ps[v]);
    if (rc != CLI_OK)
      goto done;
    crate_subspaces U = {d, AOT_K, p, Ut};
    crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
    rc = gmm_check(c, crate_aot_sample(&U, AOT_N, AOT_DELTA, &rng, Z, labels), "(d) AoT tokens");
    if (rc == CLI_OK)
      rc = gmm_check(c, crate_aot_snr(Z, AOT_N, &U, labels, r->aot_snr[v][0]), "(d) SNR");
    if (rc != CLI_OK)
      goto done;
    r->aot_worst[v] = 0.0;
    for (size_t l = 0; l < r->aot_layers; l++) {
      rc = gmm_check(c, crate_aot_layer(Z, AOT_N, &U, AOT_ETA, AOT_TAU, Z), "(d) AoT layer %zu", l);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_aot_snr(Z, AOT_N, &U, labels, r->aot_snr[v][l + 1]),
                       "(d) SNR after layer %zu", l);
      if (rc != CLI_OK)
        goto done;
      double dev = 0.0;
      for (size_t k = 0; k < AOT_K; k++)
        dev = fmax(dev, fabs(r->aot_snr[v][l + 1][k] / r->aot_snr[v][l][k] - want) / want);
      r->aot_dev[v][l] = dev;
      r->aot_worst[v] = fmax(r->aot_worst[v], dev);
    }
  }
  r->pass_aot[0] = r->aot_worst[0] <= AOT_GATE;
  r->pass_aot[1] = r->aot_worst[1] > AOT_CONTROL_MIN;
  gmm_note(c, "crate-layers (d): worst SNR-ratio deviation %.3e (regime), %.3e (control)\n",
           r->aot_worst[0], r->aot_worst[1]);
done:
  free(Ut);
  free(Z);
  return rc;
}

/* ---- compute ------------------------------------------------------------------------------- */

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  crate_molrg *mix = NULL;
  size_t N = r->N, d = fx->d, n = N * d;
  double *Z = NULL, *Zc = NULL, *work = NULL;
  size_t *labels = NULL, *zeros = NULL;
  int rc = gmm_check(c, gmm_fixture_create(fx, &mix), "creating the mixture");
  if (rc != CLI_OK)
    return rc;
  crate_subspaces U = crate_molrg_subspaces(mix);
  r->d = d;
  r->K = fx->K;
  Z = calloc(n, sizeof *Z);
  Zc = calloc(n, sizeof *Zc);
  work = calloc(n, sizeof *work);
  labels = calloc(N, sizeof *labels);
  zeros = calloc(N, sizeof *zeros);
  if (!Z || !Zc || !work || !labels || !zeros) {
    rc = cli_fail(c->cmd, "out of memory (%zu tokens)", N);
    goto done;
  }
  crate_rng rng;
  crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
  rc = gmm_check(c, crate_molrg_sample(mix, &rng, N, r->sigma, Z, Zc, labels), "drawing tokens");
  if (rc == CLI_OK)
    rc = gmm_check(c, crate_subspaces_lambda_max(&U, &r->lam_max), "lambda_max(sum U U^T)");
  if (rc != CLI_OK)
    goto done;
  memset(r->counts, 0, sizeof r->counts);
  for (size_t i = 0; i < N; i++)
    r->counts[labels[i]]++;
  r->beta_max = 0.0;
  for (size_t k = 0; k < fx->K; k++)
    r->beta_max = fmax(r->beta_max, (double)fx->p[k] / ((double)N * r->eps2));
  r->Ldesc = r->beta_max * r->lam_max;
  r->kappa = r->T / (double)r->depth;
  r->regime = r->kappa * r->Ldesc <= 1.0;
  if ((r->parts & PART_A) && (rc = part_a(c, r, &U, Z, Zc, labels, work, zeros, mix)) != CLI_OK)
    goto done;
  if ((r->parts & PART_B) && (rc = part_b(c, fx, r, &U, Z)) != CLI_OK)
    goto done;
  if ((r->parts & PART_C) && (rc = part_c(c, fx, r)) != CLI_OK)
    goto done;
  if (r->parts & PART_D)
    rc = part_d(c, fx, r);
done:
  free(Z);
  free(Zc);
  free(work);
  free(labels);
  free(zeros);
  crate_molrg_destroy(mix);
  return rc;
}

/* ---- verdicts ------------------------------------------------------------------------------ */

static bool all_pass(const run *r) {
  bool ok = true;
  if (r->parts & PART_A)
    ok = ok && r->pass_a;
  if (r->parts & PART_B) {
    ok = ok && r->pass_dec && r->pass_fp;
    for (int v = 0; v < RT_N; v++)
      ok = ok && (!rt_gated[v] || r->pass_rt[v]);
  }
  if (r->parts & PART_D)
    ok = ok && r->pass_aot[0] && r->pass_aot[1];
  return ok;
}

static const char *verdict(bool pass) {
  return pass ? "PASS" : "FAIL";
}

/* ---- table ----------------------------------------------------------------------------------- */

static void print_snr(const double *snr, size_t K) {
  for (size_t k = 0; k < K && k < MAX_SNR_COLS; k++) {
    if (isfinite(snr[k]))
      printf("  %7.3f", snr[k]);
    else
      printf("  %7s", "-");
  }
  printf("\n");
}

static void print_a(const run *r) {
  size_t K = r->K, L = r->depth;
  printf("(a) Structured denoising: %zu encoder layers Z <- Z - kappa F(Z) (Euler), T = %g,\n"
         "    kappa = T/%zu = %.4g; beta_max = p/(N eps2) = %.4g, lambda_max(sum U U^T) = %.4f,\n"
         "    descent constant L = %.4g, 1/L = %.4g: %s\n",
         L, r->T, L, r->kappa, r->beta_max, r->lam_max, r->Ldesc, 1.0 / r->Ldesc,
         r->regime ? "kappa <= 1/L (descent-lemma regime)"
                   : "kappa > 1/L (outside the descent-lemma regime)");
  printf("    tokens per cluster:");
  for (size_t k = 0; k < K; k++)
    printf(" %zu", r->counts[k]);
  printf("; MSE is per coordinate, against the clean tokens (noisy input ~ sigma^2 = %.4g)\n",
         r->sigma * r->sigma);
  static const char *fname[2] = {"exact field F = grad R^c", "MSSA field (softmax kernel)"};
  for (int f = 0; f < 2; f++) {
    const traj_stats *t = &r->tr[f];
    printf("\n  %s\n  %5s %7s %9s %10s %11s", fname[f], "layer", "s", "R^c", "lemma gap", "MSE");
    for (size_t k = 0; k < K && k < MAX_SNR_COLS; k++)
      printf("  SNR_%-3zu", k + 1);
    printf("\n");
    for (size_t l = 0; l <= L; l++) {
      printf("  %5zu %7.4f %9.5f ", l, r->kappa * (double)l, t->Rc[l]);
      if (l == 0)
        printf("%10s", "");
      else
        printf("%+10.2e", f == 0 ? t->slack[l - 1] : t->Rc[l - 1] - t->Rc[l]);
      printf(" %11.4e", t->mse[l]);
      print_snr(t->snr + l * K, K);
    }
  }
  printf("\n  %-23s %9.5f %10s %11.4e", "Bayes m(z), same sigma", r->bayes_Rc, "", r->bayes_mse);
  print_snr(r->bayes_snr, K);
  if (K > MAX_SNR_COLS)
    printf("  (SNR of clusters > %d in the CSV and JSON)\n", MAX_SNR_COLS);
  printf("  lemma gap: exact field R^c(Z_l-1) - R^c(Z_l) - kappa/2 ||grad R^c||^2 (>= 0 by the\n"
         "  descent lemma when kappa <= 1/L); MSSA field: the plain decrease of R^c.\n");
  const traj_stats *e = &r->tr[0], *m = &r->tr[1];
  printf("\n  D4 descent (exact field): R^c %s, min gap %.3e (bound >= -1e-12)%s: %s\n",
         e->monotone ? "non-increasing" : "INCREASED", e->min_slack,
         r->regime ? "" : " [not gated: kappa > 1/L]", r->regime ? verdict(r->pass_a) : "report");
  printf("  P6 MSSA field: R^c %s (report only: MSSA is not a descent step)\n",
         m->monotone ? "non-increasing" : "not monotone");
  printf("  Denoising (P5, report only): MSE noisy %.4e; best layer exact %zu: %.4e, MSSA %zu: "
         "%.4e;\n  last layer exact %.4e, MSSA %.4e; Bayes m(z) %.4e (the MMSE).\n",
         r->noisy_mse, e->best, e->mse[e->best], m->best, m->mse[m->best], e->mse[L], m->mse[L],
         r->bayes_mse);
  size_t up = 0, have = 0;
  for (size_t k = 0; k < K; k++)
    if (isfinite(e->snr[k])) {
      have++;
      up += e->snr[L * K + k] > e->snr[k];
    }
  printf("  SNR (exact field) rose on %zu of %zu clusters between layer 0 and layer %zu.\n", up,
         have, L);
}

static void print_b(const run *r) {
  printf("(b) Invertibility (MATH.md 5.3, rows D5, D6), exact field unless stated; errors are\n"
         "    ||Z_hat - Z||_F / ||Z||_F on the %zu noisy tokens\n\n",
         r->N);
  printf("  one layer: %8s %12s %10s %10s %6s %11s %10s\n", "kappa", "decoder err", "Lip",
         "kappa Lip", "iters", "contraction", "fixed pt");
  for (int i = 0; i < r->nkap; i++) {
    printf("  %10s %8.4g %12.4e %10.4f %10.4f", "", r->kappas[i], r->dec_err[i], r->fp_lip[i],
           r->kappas[i] * r->fp_lip[i]);
    if (r->fp_run[i])
      printf(" %6zu %11.4f %10.2e%s\n", r->fp_iters[i], r->fp_contr[i], r->fp_err[i],
             r->fp_conv[i] ? "" : " (not converged)");
    else
      printf(" %6s %11s %10s\n", "-", "-", "kLip>=1");
  }
  printf("  D5 decoder error vs kappa: slope %.3f (expect 2 +- 0.2, coarsest point dropped): %s\n",
         r->slope_dec, verdict(r->pass_dec));
  printf("  D5 fixed-point inverse: worst error %.3e (bound 1e-12), contraction <= kappa Lip: %s\n",
         r->fp_worst, verdict(r->pass_fp));
  printf("\n  L-layer round trip at T = %g (encode, then decode on the same grid)\n  %6s %8s", r->T,
         "L", "kappa");
  for (int v = 0; v < RT_N; v++)
    printf("  %12s", rt_name[v]);
  printf("\n");
  for (int i = 0; i < r->nl; i++) {
    printf("  %6zu %8.4g", r->layers[i], r->T / (double)r->layers[i]);
    for (int v = 0; v < RT_N; v++)
      printf("  %12.4e", r->rt_err[v][i]);
    printf("\n");
  }
  printf("  %6s %8s", "order", "");
  for (int v = 0; v < RT_N; v++) {
    if (isfinite(r->slope_rt[v]))
      printf("  %12.3f", r->slope_rt[v]);
    else
      printf("  %12s", "n/a");
  }
  printf("\n  %6s %8s", "expect", "");
  for (int v = 0; v < RT_N; v++)
    printf("  %12d", rt_order[v]);
  printf("\n  %6s %8s", "result", "");
  for (int v = 0; v < RT_N; v++)
    printf("  %12s", rt_gated[v] ? verdict(r->pass_rt[v]) : "report");
  printf("\n  D6 order: minus the log-log slope of error vs L (error ~ L^-order), coarsest L\n"
         "  dropped; pass within +- 0.2 (same-grid Heun super-convergence, MATH.md 4.7).\n"
         "  The MSSA field is reported only: its Euler round trip approaches order 1 slowly.\n");
}

static void print_c(const run *r) {
  printf("(c) Compression vs score (MATH.md 5.4, row D8, report only):\n"
         "    cos(-grad R^c(Z), sigma^2 grad log q(Z)), eps2 = c sigma^2; token: each token\n"
         "    alone (N = 1), mean of %zu cosines; set: the %zu tokens jointly\n\n",
         r->N, r->N);
  static const char *kname[2] = {"incoherent", "orthogonal"};
  printf("  %8s", "");
  for (int kind = 0; kind < 2; kind++)
    for (int mode = 0; mode < 2; mode++)
      if (r->have_kind[kind]) {
        char head[32];
        snprintf(head, sizeof head, "%s, %s", kname[kind], mode ? "set" : "token");
        printf(" %-23s", head); /* over NCM = 3 columns of 8 characters */
      }
  printf("\n  %8s", "sigma \\ c");
  for (int kind = 0; kind < 2; kind++)
    for (int mode = 0; mode < 2; mode++)
      for (int ci = 0; ci < NCM; ci++)
        if (r->have_kind[kind])
          printf(" %7g", cos_cmult[ci]);
  printf("\n");
  for (int s = 0; s < NSIG; s++) {
    printf("  %8g", cos_sigmas[s]);
    for (int kind = 0; kind < 2; kind++)
      for (int mode = 0; mode < 2; mode++)
        for (int ci = 0; ci < NCM; ci++)
          if (r->have_kind[kind])
            printf(" %+7.4f", r->cosv[kind][mode][s][ci]);
    printf("\n");
  }
  if (!r->have_kind[1])
    printf("  (orthogonal subspaces skipped: sum of ranks > d)\n");
}

static void print_d(const run *r) {
  double want = 1.0 + AOT_ETA * AOT_TAU;
  printf("(d) Attention-only layer SNR rate (MATH.md 2.6, row D7): K = %d orthogonal\n"
         "    subspaces, N = %d, delta = %g, eta = %g, tau = %g; theorem: tau in (1/2, %.4f]\n"
         "    for p = %d; predicted ratio 1 + eta tau = %.4f per layer\n\n",
         AOT_K, AOT_N, AOT_DELTA, AOT_ETA, AOT_TAU, r->tau_max, AOT_P, want);
  for (int v = 0; v < 2; v++) {
    printf("  %s, p = %d\n  %5s", v ? "negative control" : "theorem regime",
           v ? AOT_CONTROL_P : AOT_P, "layer");
    for (int k = 0; k < AOT_K; k++)
      printf("    SNR_%d  ratio_%d", k + 1, k + 1);
    printf("  max rel dev\n");
    for (size_t l = 0; l <= r->aot_layers; l++) {
      printf("  %5zu", l);
      for (int k = 0; k < AOT_K; k++) {
        if (l == 0)
          printf("  %7.4f  %7s", r->aot_snr[v][l][k], "");
        else
          printf("  %7.4f  %7.4f", r->aot_snr[v][l][k],
                 r->aot_snr[v][l][k] / r->aot_snr[v][l - 1][k]);
      }
      if (l > 0)
        printf("  %11.3e", r->aot_dev[v][l - 1]);
      printf("\n");
    }
  }
  printf("  D7 regime: worst rel deviation from %.2f %.3e (bound 1e-12): %s\n", want,
         r->aot_worst[0], verdict(r->pass_aot[0]));
  printf("  D7 control (p = %d): worst rel deviation %.3e (must exceed 1e-2): %s\n", AOT_CONTROL_P,
         r->aot_worst[1], verdict(r->pass_aot[1]));
}

static void print_table(const gmm_fixture *fx, const run *r) {
  printf("crate gmm crate-layers: structured denoising and diffusion on MoLRG tokens\n"
         "(MATH.md 5; rows D4-D8).  N = %zu tokens at sigma = %g, d = %zu, K = %zu, %s\n"
         "subspaces, seed %llu; eps2 = %g (epsilon^2), tokens not normalised, no CLS.\n",
         r->N, r->sigma, fx->d, fx->K,
         fx->kind == CRATE_SUBSPACES_ORTHOGONAL ? "orthogonal" : "incoherent",
         (unsigned long long)fx->seed, r->eps2);
  if (r->parts & PART_A) {
    printf("\n");
    print_a(r);
  }
  if (r->parts & PART_B) {
    printf("\n");
    print_b(r);
  }
  if (r->parts & PART_C) {
    printf("\n");
    print_c(r);
  }
  if (r->parts & PART_D) {
    printf("\n");
    print_d(r);
  }
  printf("\nOverall: %s\n", all_pass(r) ? "PASS" : "FAIL (see the lines marked FAIL)");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *json_vec(const double *x, size_t n, size_t stride) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, gmm_json_num(x[i * stride]));
  return a;
}

static json_t *json_traj(const run *r, const traj_stats *t, bool exact) {
  json_t *o = json_object(), *snr = json_array();
  size_t L = r->depth, K = r->K;
  for (size_t k = 0; k < K; k++)
    json_array_append_new(snr, json_vec(t->snr + k, L + 1, K));
  json_object_set_new(o, "Rc", json_vec(t->Rc, L + 1, 1));
  json_object_set_new(o, "mse", json_vec(t->mse, L + 1, 1));
  json_object_set_new(o, "snr", snr);
  json_object_set_new(o, "Rc_monotone", json_boolean(t->monotone));
  if (exact)
    json_object_set_new(o, "descent_min_gap", gmm_json_num(t->min_slack));
  json_object_set_new(o, "best_layer", json_integer((json_int_t)t->best));
  json_object_set_new(o, "best_mse", gmm_json_num(t->mse[t->best]));
  return o;
}

static json_t *to_json(const gmm_fixture *fx, const run *r, json_t *files) {
  json_t *o = json_object(), *slopes = json_object(), *pass = json_object();
  json_object_set_new(o, "command", json_string("gmm crate-layers"));
  json_object_set_new(o, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(o, "K", json_integer((json_int_t)fx->K));
  json_object_set_new(
      o, "subspaces",
      json_string(fx->kind == CRATE_SUBSPACES_ORTHOGONAL ? "orthogonal" : "incoherent"));
  json_object_set_new(o, "seed", json_integer((json_int_t)fx->seed));
  json_object_set_new(o, "tokens", json_integer((json_int_t)r->N));
  json_object_set_new(o, "sigma", json_real(r->sigma));
  json_object_set_new(o, "eps2", json_real(r->eps2));
  json_object_set_new(o, "T", json_real(r->T));
  json_object_set_new(o, "beta_max", json_real(r->beta_max));
  json_object_set_new(o, "lambda_max", json_real(r->lam_max));
  json_object_set_new(o, "descent_L", json_real(r->Ldesc));
  json_object_set_new(o, "convention",
                      json_string("eps2 = epsilon^2, beta_k = p_k/(N eps2), tokens not "
                                  "normalised, no CLS"));
  if (r->parts & PART_A) {
    json_t *a = json_object(), *bayes = json_object(), *counts = json_array();
    for (size_t k = 0; k < r->K; k++)
      json_array_append_new(counts, json_integer((json_int_t)r->counts[k]));
    json_object_set_new(a, "depth", json_integer((json_int_t)r->depth));
    json_object_set_new(a, "kappa", json_real(r->kappa));
    json_object_set_new(a, "descent_regime", json_boolean(r->regime));
    json_object_set_new(a, "cluster_tokens", counts);
    json_object_set_new(a, "exact", json_traj(r, &r->tr[0], true));
    json_object_set_new(a, "mssa", json_traj(r, &r->tr[1], false));
    json_object_set_new(bayes, "Rc", gmm_json_num(r->bayes_Rc));
    json_object_set_new(bayes, "mse", gmm_json_num(r->bayes_mse));
    json_object_set_new(bayes, "snr", json_vec(r->bayes_snr, r->K, 1));
    json_object_set_new(a, "bayes", bayes);
    json_object_set_new(a, "noisy_mse", gmm_json_num(r->noisy_mse));
    json_object_set_new(o, "denoise", a);
    json_object_set_new(pass, "descent", json_boolean(r->pass_a));
  }
  json_t *fp_err = json_null();
  if (r->parts & PART_B) {
    json_t *b = json_object(), *layers = json_array(), *rt = json_object(), *fp = json_array();
    for (int i = 0; i < r->nl; i++)
      json_array_append_new(layers, json_integer((json_int_t)r->layers[i]));
    for (int i = 0; i < r->nkap; i++) {
      json_t *e = json_object();
      json_object_set_new(e, "kappa", json_real(r->kappas[i]));
      json_object_set_new(e, "lip", gmm_json_num(r->fp_lip[i]));
      json_object_set_new(e, "kappa_lip", gmm_json_num(r->kappas[i] * r->fp_lip[i]));
      if (r->fp_run[i]) {
        json_object_set_new(e, "error", gmm_json_num(r->fp_err[i]));
        json_object_set_new(e, "iters", json_integer((json_int_t)r->fp_iters[i]));
        json_object_set_new(e, "contraction", gmm_json_num(r->fp_contr[i]));
        json_object_set_new(e, "converged", json_boolean(r->fp_conv[i]));
      }
      json_array_append_new(fp, e);
    }
    for (int v = 0; v < RT_N; v++)
      json_object_set_new(rt, rt_name[v], json_vec(r->rt_err[v], (size_t)r->nl, 1));
    json_object_set_new(b, "kappas", json_vec(r->kappas, (size_t)r->nkap, 1));
    json_object_set_new(b, "decoder_error", json_vec(r->dec_err, (size_t)r->nkap, 1));
    json_object_set_new(b, "fixed_point", fp);
    json_object_set_new(b, "layers", layers);
    json_object_set_new(b, "roundtrip_error", rt);
    json_object_set_new(o, "invert", b);
    json_object_set_new(slopes, "decoder_kappa", gmm_json_num(r->slope_dec));
    json_object_set_new(slopes, "euler_L", gmm_json_num(r->slope_rt[RT_EXACT_EULER]));
    json_object_set_new(slopes, "heun_L", gmm_json_num(r->slope_rt[RT_EXACT_HEUN]));
    json_object_set_new(slopes, "mssa_euler_L", gmm_json_num(r->slope_rt[RT_MSSA_EULER]));
    json_object_set_new(slopes, "mssa_heun_L", gmm_json_num(r->slope_rt[RT_MSSA_HEUN]));
    json_decref(fp_err);
    fp_err = gmm_json_num(r->fp_worst);
    json_object_set_new(pass, "decoder_kappa", json_boolean(r->pass_dec));
    json_object_set_new(pass, "fixed_point", json_boolean(r->pass_fp));
    for (int v = 0; v < RT_N; v++) {
      char key[64];
      if (!rt_gated[v])
        continue;
      snprintf(key, sizeof key, "roundtrip_%s", rt_name[v]);
      json_object_set_new(pass, key, json_boolean(r->pass_rt[v]));
    }
  } else {
    json_object_set_new(slopes, "decoder_kappa", json_null());
    json_object_set_new(slopes, "euler_L", json_null());
    json_object_set_new(slopes, "heun_L", json_null());
  }
  json_object_set_new(o, "slopes", slopes);
  json_object_set_new(o, "slopes_note",
                      json_string("decoder_kappa: log-log slope of the one-layer decoder error "
                                  "vs kappa (expect 2); *_L: orders, error ~ L^-order at "
                                  "fixed T (expect Euler 1, Heun 3)"));
  json_object_set_new(o, "fixed_point_error", fp_err);
  if (r->parts & PART_C) {
    static const char *kname[2] = {"incoherent", "orthogonal"};
    json_t *cz = json_object();
    json_object_set_new(cz, "sigmas", json_vec(cos_sigmas, NSIG, 1));
    json_object_set_new(cz, "c", json_vec(cos_cmult, NCM, 1));
    json_object_set_new(cz, "eps2", json_string("c * sigma^2"));
    for (int kind = 0; kind < 2; kind++) {
      if (!r->have_kind[kind])
        continue;
      json_t *kk = json_object();
      for (int mode = 0; mode < 2; mode++) {
        json_t *rows = json_array(); /* [sigma][c] */
        for (int s = 0; s < NSIG; s++)
          json_array_append_new(rows, json_vec(r->cosv[kind][mode][s], NCM, 1));
        json_object_set_new(kk, mode ? "set" : "token", rows);
      }
      json_object_set_new(cz, kname[kind], kk);
    }
    json_object_set_new(o, "cosine", cz);
  }
  if (r->parts & PART_D) {
    json_t *dd = json_object();
    json_object_set_new(dd, "p", json_integer(AOT_P));
    json_object_set_new(dd, "control_p", json_integer(AOT_CONTROL_P));
    json_object_set_new(dd, "N", json_integer(AOT_N));
    json_object_set_new(dd, "delta", json_real(AOT_DELTA));
    json_object_set_new(dd, "eta", json_real(AOT_ETA));
    json_object_set_new(dd, "tau", json_real(AOT_TAU));
    json_object_set_new(dd, "tau_max", json_real(r->tau_max));
    json_object_set_new(dd, "target_ratio", json_real(1.0 + AOT_ETA * AOT_TAU));
    for (int v = 0; v < 2; v++) {
      json_t *e = json_object(), *snr = json_array();
      for (size_t l = 0; l <= r->aot_layers; l++)
        json_array_append_new(snr, json_vec(r->aot_snr[v][l], AOT_K, 1));
      json_object_set_new(e, "snr", snr);
      json_object_set_new(e, "max_rel_dev", json_vec(r->aot_dev[v], r->aot_layers, 1));
      json_object_set_new(e, "worst", gmm_json_num(r->aot_worst[v]));
      json_object_set_new(dd, v ? "control" : "regime", e);
    }
    json_object_set_new(o, "aot", dd);
    json_object_set_new(pass, "aot_rate", json_boolean(r->pass_aot[0]));
    json_object_set_new(pass, "aot_control", json_boolean(r->pass_aot[1]));
  }
  json_object_set_new(o, "pass_each", pass);
  json_object_set_new(o, "pass", json_boolean(all_pass(r)));
  json_object_set_new(o, "files", files);
  return o;
}

/* ---- files --------------------------------------------------------------------------------- */

/* Opens PREFIX<suffix>, noting its name in files. */
static FILE *open_csv(const gmm_common *c, const char *suffix, char *path, size_t size,
                      json_t *files) {
  FILE *f = gmm_open_out(c, suffix, path, size);
  if (f)
    json_array_append_new(files, json_string(path));
  return f;
}

static void csv_num(FILE *f, double x) {
  if (isfinite(x))
    fprintf(f, ",%.17g", x);
  else
    fprintf(f, ",");
}

static int write_csvs(const gmm_common *c, const run *r, json_t *files) {
  char path[1024];
  FILE *f;
  if (r->parts & PART_A) {
    if (!(f = open_csv(c, "_denoise.csv", path, sizeof path, files)))
      return CLI_FAIL;
    fprintf(f, "field,layer,s,Rc,lemma_gap,mse");
    for (size_t k = 0; k < r->K; k++)
      fprintf(f, ",snr_%zu", k + 1);
    fprintf(f, "\n");
    for (int fi = 0; fi < 2; fi++) {
      const traj_stats *t = &r->tr[fi];
      for (size_t l = 0; l <= r->depth; l++) {
        fprintf(f, "%s,%zu", fi ? "mssa" : "exact", l);
        csv_num(f, r->kappa * (double)l);
        csv_num(f, t->Rc[l]);
        csv_num(f, l == 0 ? NAN : (fi == 0 ? t->slack[l - 1] : t->Rc[l - 1] - t->Rc[l]));
        csv_num(f, t->mse[l]);
        for (size_t k = 0; k < r->K; k++)
          csv_num(f, t->snr[l * r->K + k]);
        fprintf(f, "\n");
      }
    }
    fprintf(f, "bayes,,");
    csv_num(f, r->bayes_Rc);
    fprintf(f, ",");
    csv_num(f, r->bayes_mse);
    for (size_t k = 0; k < r->K; k++)
      csv_num(f, r->bayes_snr[k]);
    fprintf(f, "\n");
    if (!gmm_close_out(c, f, path))
      return CLI_FAIL;
  }
  if (r->parts & PART_B) {
    if (!(f = open_csv(c, "_invert.csv", path, sizeof path, files)))
      return CLI_FAIL;
    fprintf(f, "experiment,field,method,kappa,layers,error,lip,kappa_lip,iters,contraction\n");
    for (int i = 0; i < r->nkap; i++) {
      fprintf(f, "decoder,exact,euler,%.17g,1,%.17g,,,,\n", r->kappas[i], r->dec_err[i]);
      if (r->fp_run[i])
        fprintf(f, "fixed_point,exact,euler,%.17g,1,%.17g,%.17g,%.17g,%zu,%.17g\n", r->kappas[i],
                r->fp_err[i], r->fp_lip[i], r->kappas[i] * r->fp_lip[i], r->fp_iters[i],
                r->fp_contr[i]);
    }
    for (int v = 0; v < RT_N; v++)
      for (int i = 0; i < r->nl; i++)
        fprintf(f, "roundtrip,%s,%s,%.17g,%zu,%.17g,,,,\n", v >= RT_MSSA_EULER ? "mssa" : "exact",
                (v % 2) ? "heun" : "euler", r->T / (double)r->layers[i], r->layers[i],
                r->rt_err[v][i]);
    if (!gmm_close_out(c, f, path))
      return CLI_FAIL;
  }
  if (r->parts & PART_C) {
    if (!(f = open_csv(c, "_cosine.csv", path, sizeof path, files)))
      return CLI_FAIL;
    fprintf(f, "subspaces,mode,sigma,c,eps2,cosine\n");
    for (int kind = 0; kind < 2; kind++)
      for (int mode = 0; mode < 2; mode++)
        for (int s = 0; s < NSIG; s++)
          for (int ci = 0; ci < NCM; ci++)
            if (r->have_kind[kind])
              fprintf(f, "%s,%s,%g,%g,%.17g,%.17g\n", kind ? "orthogonal" : "incoherent",
                      mode ? "set" : "token", cos_sigmas[s], cos_cmult[ci],
                      cos_cmult[ci] * sq(cos_sigmas[s]), r->cosv[kind][mode][s][ci]);
    if (!gmm_close_out(c, f, path))
      return CLI_FAIL;
  }
  if (r->parts & PART_D) {
    if (!(f = open_csv(c, "_aot.csv", path, sizeof path, files)))
      return CLI_FAIL;
    fprintf(f, "run,p,layer,cluster,snr,ratio,target\n");
    for (int v = 0; v < 2; v++)
      for (size_t l = 0; l <= r->aot_layers; l++)
        for (int k = 0; k < AOT_K; k++) {
          fprintf(f, "%s,%d,%zu,%d", v ? "control" : "regime", v ? AOT_CONTROL_P : AOT_P, l, k + 1);
          csv_num(f, r->aot_snr[v][l][k]);
          csv_num(f, l ? r->aot_snr[v][l][k] / r->aot_snr[v][l - 1][k] : NAN);
          csv_num(f, 1.0 + AOT_ETA * AOT_TAU);
          fprintf(f, "\n");
        }
    if (!gmm_close_out(c, f, path))
      return CLI_FAIL;
  }
  return CLI_OK;
}

/* One curve of a chart (the plot library's styles, which gmm_series does
 * not expose: dotted reference lines, marker-only points). */
typedef struct curve {
  const char *label;
  const double *x, *y;
  size_t n;
  size_t color; /* palette index */
  crate_plot_line line;
  crate_plot_marker marker;
  double marker_size; /* <= 0: the library's default */
} curve;

/* Draws the curves into PREFIX<suffix>.png and notes the file in files.
 * ch->xlo < ch->xhi fixes the x range (room for the legend). */
static int draw_chart(const gmm_common *c, const char *suffix, const gmm_chart *ch, const curve *s,
                      size_t ns, json_t *files) {
  char path[1100];
  if (!gmm_path(path, sizeof path, c->out, suffix))
    return cli_fail(c->cmd, "output prefix too long: '%s'", c->out);
  crate_plot *p = NULL;
  int st = crate_plot_create(&p, ch->width, ch->height);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_title(p, ch->title);
  if (st == CRATE_STATUS_OK && ch->xlo < ch->xhi)
    st = crate_plot_set_range(p, CRATE_PLOT_X, ch->xlo, ch->xhi);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_labels(p, ch->xlabel, ch->ylabel);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_scale(p, ch->logx ? CRATE_PLOT_LOG10 : CRATE_PLOT_LINEAR,
                              ch->logy ? CRATE_PLOT_LOG10 : CRATE_PLOT_LINEAR);
  for (size_t i = 0; i < ns && st == CRATE_STATUS_OK; i++) {
    crate_plot_style style = {0};
    style.use_color = true;
    style.color = crate_plot_palette(s[i].color);
    style.line = s[i].line;
    style.marker = s[i].marker;
    style.marker_size = s[i].marker_size;
    st = crate_plot_add(p, s[i].label, s[i].x, s[i].y, s[i].n, &style);
  }
  if (st == CRATE_STATUS_OK)
    st = crate_plot_write_png(p, path);
  crate_plot_destroy(p);
  if (st != CRATE_STATUS_OK)
    return gmm_check(c, st, "cannot write %s", path);
  gmm_note(c, "wrote %s\n", path);
  json_array_append_new(files, json_string(path));
  return CLI_OK;
}

static const crate_plot_marker marks[4] = {CRATE_PLOT_MARKER_CIRCLE, CRATE_PLOT_MARKER_SQUARE,
                                           CRATE_PLOT_MARKER_TRIANGLE, CRATE_PLOT_MARKER_DIAMOND};

static int plots_a(const gmm_common *c, const gmm_fixture *fx, const run *r, json_t *files) {
  size_t L = r->depth, K = r->K, nk = K < 8 ? K : 8;
  crate_plot_marker mk = L <= 40 ? CRATE_PLOT_MARKER_CIRCLE : CRATE_PLOT_MARKER_NONE;
  double *x = calloc(L + 1, sizeof *x), *snr = calloc(2 * (L + 1) * nk, sizeof *snr);
  double *ref = calloc((L + 1) * (nk + 2), sizeof *ref);
  int rc = CLI_OK;
  if (!x || !snr || !ref) {
    rc = cli_fail(c->cmd, "out of memory");
    goto done;
  }
  for (size_t l = 0; l <= L; l++)
    x[l] = (double)l;
  char title[200];
  curve s[3 * 8];
  /* R^c */
  for (size_t l = 0; l <= L; l++)
    ref[l] = r->bayes_Rc;
  s[0] = (curve){"exact field grad R^c", x, r->tr[0].Rc, L + 1, 0, CRATE_PLOT_SOLID, mk, 0};
  s[1] = (curve){"MSSA field", x, r->tr[1].Rc, L + 1, 1, CRATE_PLOT_DASHED, mk, 0};
  s[2] =
      (curve){"R^c of Bayes m(z)", x, ref, L + 1, 2, CRATE_PLOT_DOTTED, CRATE_PLOT_MARKER_NONE, 0};
  snprintf(title, sizeof title,
           "R^c per encoder layer (N=%zu, \xcf\x83=%g, eps2=%g, kappa=%.3g %s 1/L)", r->N, r->sigma,
           r->eps2, r->kappa, r->regime ? "<=" : ">");
  gmm_chart ch = {title, "layer l (depth s = kappa l)", "R^c", false, false, 0, 0, 1000, 640};
  if ((rc = draw_chart(c, "_rc.png", &ch, s, 3, files)) != CLI_OK)
    goto done;
  /* SNR per cluster */
  static char labels[3 * 8][64];
  size_t ns = 0;
  for (size_t k = 0; k < nk; k++) {
    for (int f = 0; f < 2; f++) {
      double *y = snr + ((size_t)f * nk + k) * (L + 1);
      for (size_t l = 0; l <= L; l++)
        y[l] = r->tr[f].snr[l * K + k];
      snprintf(labels[ns], sizeof labels[ns], "%zu: %s", k + 1, f ? "MSSA" : "exact");
      s[ns] = (curve){labels[ns],
                      x,
                      y,
                      L + 1,
                      k,
                      f ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID,
                      L <= 40 ? marks[k % 4] : CRATE_PLOT_MARKER_NONE,
                      0};
      ns++;
    }
    double *y = ref + (k + 1) * (L + 1);
    for (size_t l = 0; l <= L; l++)
      y[l] = r->bayes_snr[k];
    snprintf(labels[ns], sizeof labels[ns], "%zu: Bayes m(z)", k + 1);
    s[ns] = (curve){labels[ns], x, y, L + 1, k, CRATE_PLOT_DOTTED, CRATE_PLOT_MARKER_NONE, 0};
    ns++;
  }
  snprintf(title, sizeof title,
           "SNR of cluster k, ||P_k Z_k|| / ||(I-P_k) Z_k||, per layer (N=%zu, \xcf\x83=%g)", r->N,
           r->sigma);
  gmm_chart ch2 = {title, "layer l", "SNR", false, true, 0, 0, 1000, 700};
  ch2.xlo = -0.03 * (double)L;
  ch2.xhi = 1.55 * (double)L; /* room for the legend on the right */
  if ((rc = draw_chart(c, "_snr.png", &ch2, s, ns, files)) != CLI_OK)
    goto done;
  /* MSE */
  double *bm = ref + (nk + 1) * (L + 1);
  for (size_t l = 0; l <= L; l++)
    bm[l] = r->bayes_mse;
  s[0] = (curve){"exact field grad R^c", x, r->tr[0].mse, L + 1, 0, CRATE_PLOT_SOLID, mk, 0};
  s[1] = (curve){"MSSA field", x, r->tr[1].mse, L + 1, 1, CRATE_PLOT_DASHED, mk, 0};
  s[2] = (curve){"Bayes m(z) (the MMSE)", x, bm, L + 1, 2, CRATE_PLOT_DOTTED,
                 CRATE_PLOT_MARKER_NONE,  0};
  snprintf(title, sizeof title, "MSE to the clean tokens per layer (N=%zu, \xcf\x83=%g, d=%zu)",
           r->N, r->sigma, fx->d);
  gmm_chart ch3 = {title, "layer l", "MSE per coordinate", false, true, 0, 0, 1000, 640};
  rc = draw_chart(c, "_mse.png", &ch3, s, 3, files);
done:
  free(x);
  free(snr);
  free(ref);
  return rc;
}

static int plots_b(const gmm_common *c, const run *r, json_t *files) {
  char title[200];
  static char labels[RT_N + 1][96];
  curve s[RT_N];
  /* decoder error vs kappa */
  snprintf(labels[RT_N], sizeof labels[RT_N], "explicit decoder (slope %.2f)", r->slope_dec);
  s[0] = (curve){labels[RT_N],
                 r->kappas,
                 r->dec_err,
                 (size_t)r->nkap,
                 0,
                 CRATE_PLOT_SOLID,
                 CRATE_PLOT_MARKER_CIRCLE,
                 0};
  snprintf(title, sizeof title, "One layer: explicit decoder error vs step kappa (N=%zu, eps2=%g)",
           r->N, r->eps2);
  gmm_chart ch = {title, "kappa", "||Z_hat - Z|| / ||Z||", true, true, 0, 0, 1000, 640};
  int rc = draw_chart(c, "_decoder.png", &ch, s, 1, files);
  if (rc != CLI_OK)
    return rc;
  double x[GMM_MAX_LIST];
  for (int i = 0; i < r->nl; i++)
    x[i] = (double)r->layers[i];
  static const char *vname[RT_N] = {"Euler, exact", "Heun, exact", "Euler, MSSA", "Heun, MSSA"};
  for (int v = 0; v < RT_N; v++) {
    if (isfinite(r->slope_rt[v]))
      snprintf(labels[v], sizeof labels[v], "%s (error ~ L^-%.2f)", vname[v], r->slope_rt[v]);
    else
      snprintf(labels[v], sizeof labels[v], "%s", vname[v]);
    s[v] = (curve){labels[v],       x,
                   r->rt_err[v],    (size_t)r->nl,
                   (size_t)(v % 2), v >= 2 ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID,
                   marks[v % 2],    0};
  }
  snprintf(title, sizeof title, "L-layer encode -> decode round trip at T=%g (N=%zu, eps2=%g)",
           r->T, r->N, r->eps2);
  gmm_chart ch2 = {title, "layers L", "||Z_hat - Z|| / ||Z||", true, true, 0, 0, 0, 0};
  gmm_chart_steps_range(&ch2, r->layers, (size_t)r->nl);
  return draw_chart(c, "_roundtrip.png", &ch2, s, RT_N, files);
}

static int plots_c(const gmm_common *c, const run *r, json_t *files) {
  static char labels[4][64];
  static double y[4][NSIG];
  curve s[4];
  size_t ns = 0;
  for (int kind = 0; kind < 2; kind++)
    for (int mode = 0; mode < 2; mode++) {
      if (!r->have_kind[kind])
        continue;
      for (int si = 0; si < NSIG; si++)
        y[ns][si] = r->cosv[kind][mode][si][1]; /* c = 1 */
      snprintf(labels[ns], sizeof labels[ns], "%s, %s", kind ? "orthogonal" : "incoherent",
               mode ? "token set" : "per token");
      s[ns] = (curve){labels[ns],   cos_sigmas,
                      y[ns],        NSIG,
                      (size_t)kind, mode ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID,
                      marks[kind],  0};
      ns++;
    }
  char title[200];
  snprintf(
      title, sizeof title,
      "cos(-grad R^c, \xcf\x83\xc2\xb2 grad log q) vs \xcf\x83, eps2 = \xcf\x83\xc2\xb2 (N=%zu)",
      r->N);
  gmm_chart ch = {title, "\xcf\x83", "cosine", true, false, 0, 0, 1000, 640};
  return draw_chart(c, "_cosine.png", &ch, s, ns, files);
}

static int plots_d(const gmm_common *c, const run *r, json_t *files) {
  static double x[AOT_MAX_LAYERS], y[2][AOT_K][AOT_MAX_LAYERS], tgt[AOT_MAX_LAYERS];
  static char labels[2 * AOT_K + 1][64];
  static const double msize[AOT_K] = {8.0, 6.0, 4.0}; /* nested: coinciding points stay visible */
  curve s[2 * AOT_K + 1];
  size_t ns = 0, L = r->aot_layers;
  for (size_t l = 0; l < L; l++) {
    x[l] = (double)(l + 1);
    tgt[l] = 1.0 + AOT_ETA * AOT_TAU;
  }
  snprintf(labels[ns], sizeof labels[ns], "1 + eta tau = %.2f", 1.0 + AOT_ETA * AOT_TAU);
  s[ns++] = (curve){labels[0], x, tgt, L, 7, CRATE_PLOT_DOTTED, CRATE_PLOT_MARKER_NONE, 0};
  for (int v = 0; v < 2; v++)
    for (int k = 0; k < AOT_K; k++) {
      for (size_t l = 0; l < L; l++)
        y[v][k][l] = r->aot_snr[v][l + 1][k] / r->aot_snr[v][l][k];
      snprintf(labels[ns], sizeof labels[ns], "p=%d, cluster %d", v ? AOT_CONTROL_P : AOT_P, k + 1);
      s[ns] = (curve){labels[ns],
                      x,
                      y[v][k],
                      L,
                      (size_t)k,
                      v ? CRATE_PLOT_DASHED : CRATE_PLOT_NO_LINE,
                      v ? marks[k] : CRATE_PLOT_MARKER_CIRCLE,
                      v ? 0 : msize[k]};
      ns++;
    }
  char title[200];
  snprintf(title, sizeof title,
           "AoT layer: SNR ratio per layer, theorem regime p=%d vs control p=%d (N=%d)", AOT_P,
           AOT_CONTROL_P, AOT_N);
  gmm_chart ch = {title, "layer", "SNR(l) / SNR(l-1)", false, false, 0, 0, 1000, 640};
  ch.xlo = 0.5;
  ch.xhi = (double)L + 0.5 + 0.7 * (double)L; /* room for the legend */
  return draw_chart(c, "_aot.png", &ch, s, ns, files);
}

/* ---- options ------------------------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* "K[,K...]" positive finite step sizes, sorted decreasing, distinct.
 * @return the count, or -1 after a usage error. */
static int parse_kappas(const char *arg, double *out) {
  char buf[512];
  if (!arg || !*arg || strlen(arg) >= sizeof buf) {
    cli_usage_error(CMD, "--kappa expects a list of step sizes");
    return -1;
  }
  strcpy(buf, arg);
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    double v;
    if (n == GMM_MAX_LIST) {
      cli_usage_error(CMD, "--kappa: at most %d step sizes", GMM_MAX_LIST);
      return -1;
    }
    if (!cli_parse_double(CMD, "--kappa", tok, -INFINITY, INFINITY, &v))
      return -1;
    if (!(v > 0)) {
      cli_usage_error(CMD, "--kappa: step sizes must be positive, got %g", v);
      return -1;
    }
    out[n++] = v;
  }
  if (n == 0) {
    cli_usage_error(CMD, "--kappa: empty list");
    return -1;
  }
  qsort(out, (size_t)n, sizeof *out, cmp_desc);
  for (int i = 1; i < n; i++)
    if (out[i] == out[i - 1]) {
      cli_usage_error(CMD, "--kappa: step size %g listed twice", out[i]);
      return -1;
    }
  return n;
}

static bool parse_parts(const char *arg, unsigned *out) {
  char buf[64];
  if (!arg || !*arg || strlen(arg) >= sizeof buf) {
    cli_usage_error(CMD, "--part expects a, b, c, d (comma separated) or all");
    return false;
  }
  strcpy(buf, arg);
  unsigned parts = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (!strcmp(tok, "all"))
      parts |= PART_ALL;
    else if (strlen(tok) == 1 && tok[0] >= 'a' && tok[0] <= 'd')
      parts |= 1u << (tok[0] - 'a');
    else {
      cli_usage_error(CMD, "--part: unknown part '%s' (a, b, c, d or all)", tok);
      return false;
    }
  }
  if (!parts) {
    cli_usage_error(CMD, "--part: empty list");
    return false;
  }
  *out = parts;
  return true;
}

/* A positive finite number (the flag names it in the message). */
static bool parse_positive(const char *flag, const char *arg, double *out) {
  if (!cli_parse_double(CMD, flag, arg, -INFINITY, INFINITY, out))
    return false;
  if (!(*out > 0)) {
    cli_usage_error(CMD, "%s must be positive, got %g", flag, *out);
    return false;
  }
  return true;
}

static void free_run(run *r) {
  for (int f = 0; f < 2; f++) {
    free(r->tr[f].Rc);
    free(r->tr[f].slack);
    free(r->tr[f].mse);
    free(r->tr[f].snr);
  }
}

int gmm_layers(int argc, char **argv) {
  gmm_common c;
  gmm_fixture fx;
  gmm_common_default(&c, CMD, DEFAULT_OUT);
  gmm_fixture_default(&fx);
  static run r; /* large; one per process */
  memset(&r, 0, sizeof r);
  r.parts = PART_ALL;
  r.N = DEFAULT_TOKENS;
  r.sigma = DEFAULT_SIGMA;
  r.eps2 = DEFAULT_EPS2;
  r.T = DEFAULT_T;
  r.depth = DEFAULT_DEPTH;
  r.aot_layers = DEFAULT_AOT_LAYERS;
  r.nl = gmm_parse_steps(CMD, "--layers", DEFAULT_LAYERS, r.layers);
  r.nkap = parse_kappas(DEFAULT_KAPPAS, r.kappas);
  static const struct option longopts[] = {{"tokens", required_argument, NULL, OPT_TOKENS},
                                           {"sigma", required_argument, NULL, OPT_SIGMA},
                                           {"eps2", required_argument, NULL, OPT_EPS2},
                                           {"T", required_argument, NULL, OPT_T},
                                           {"layers", required_argument, NULL, OPT_LAYERS},
                                           {"depth", required_argument, NULL, OPT_DEPTH},
                                           {"kappa", required_argument, NULL, OPT_KAPPA},
                                           {"part", required_argument, NULL, OPT_PART},
                                           {"aot-layers", required_argument, NULL, OPT_AOT_LAYERS},
                                           GMM_COMMON_LONGOPTS,
                                           GMM_FIXTURE_LONGOPTS,
                                           {NULL, 0, NULL, 0}};
  opterr = 0;
  int opt;
  long v;
  while ((opt = getopt_long(argc, argv, GMM_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_TOKENS:
      if (!cli_parse_long(CMD, "--tokens", optarg, 1, MAX_TOKENS, &v))
        return CLI_USAGE;
      r.N = (size_t)v;
      continue;
    case OPT_SIGMA:
      if (!parse_positive("--sigma", optarg, &r.sigma))
        return CLI_USAGE;
      continue;
    case OPT_EPS2:
      if (!parse_positive("--eps2", optarg, &r.eps2))
        return CLI_USAGE;
      continue;
    case OPT_T:
      if (!parse_positive("--T", optarg, &r.T))
        return CLI_USAGE;
      continue;
    case OPT_LAYERS:
      if ((r.nl = gmm_parse_steps(CMD, "--layers", optarg, r.layers)) < 0)
        return CLI_USAGE;
      continue;
    case OPT_DEPTH:
      if (!cli_parse_long(CMD, "--depth", optarg, 1, MAX_DEPTH, &v))
        return CLI_USAGE;
      r.depth = (size_t)v;
      continue;
    case OPT_KAPPA:
      if ((r.nkap = parse_kappas(optarg, r.kappas)) < 0)
        return CLI_USAGE;
      continue;
    case OPT_PART:
      if (!parse_parts(optarg, &r.parts))
        return CLI_USAGE;
      continue;
    case OPT_AOT_LAYERS:
      if (!cli_parse_long(CMD, "--aot-layers", optarg, 1, AOT_MAX_LAYERS, &v))
        return CLI_USAGE;
      r.aot_layers = (size_t)v;
      continue;
    case '?':
    case ':': return gmm_common_getopt_error(&c, opt, argv);
    default: break;
    }
    int h = gmm_common_parse(&c, &fx, opt, optarg);
    if (h == 2) {
      usage(stdout);
      return CLI_OK;
    }
    if (h <= 0)
      return h < 0 ? CLI_USAGE : gmm_common_getopt_error(&c, '?', argv);
  }
  if (!gmm_common_no_positional(&c, argc, argv) || !gmm_fixture_finish(&fx, CMD))
    return CLI_USAGE;
  /* sigma^2 and eps2 must stay in the normal double range (MATH.md §3.8) */
  if (r.sigma < 1e-150 || r.sigma > 1e150)
    return cli_usage_error(CMD, "--sigma must lie in [1e-150, 1e150], got %g", r.sigma);
  if (r.eps2 < 1e-300 || r.eps2 > 1e300)
    return cli_usage_error(CMD, "--eps2 must lie in [1e-300, 1e300], got %g", r.eps2);

  if (!c.quiet) {
    fprintf(stderr, "crate gmm crate-layers: ");
    gmm_fixture_describe(&fx, stderr);
    fprintf(stderr,
            "crate gmm crate-layers: parts=%s%s%s%s tokens=%zu sigma=%g eps2=%g (epsilon^2, "
            "not normalised, no CLS) T=%g depth=%zu layers=",
            (r.parts & PART_A) ? "a" : "", (r.parts & PART_B) ? "b" : "",
            (r.parts & PART_C) ? "c" : "", (r.parts & PART_D) ? "d" : "", r.N, r.sigma, r.eps2, r.T,
            r.depth);
    for (int i = 0; i < r.nl; i++)
      fprintf(stderr, "%s%zu", i ? "," : "", r.layers[i]);
    fprintf(stderr, " kappa=");
    for (int i = 0; i < r.nkap; i++)
      fprintf(stderr, "%s%g", i ? "," : "", r.kappas[i]);
    fprintf(stderr, " aot-layers=%zu out=%s\n", r.aot_layers, c.out);
  }
  int rc = CLI_OK;
  for (int f = 0; f < 2 && (r.parts & PART_A); f++) {
    r.tr[f].Rc = calloc(r.depth + 1, sizeof(double));
    r.tr[f].slack = calloc(r.depth, sizeof(double));
    r.tr[f].mse = calloc(r.depth + 1, sizeof(double));
    r.tr[f].snr = calloc((r.depth + 1) * fx.K, sizeof(double));
    if (!r.tr[f].Rc || !r.tr[f].slack || !r.tr[f].mse || !r.tr[f].snr)
      rc = cli_fail(CMD, "out of memory (%zu layers)", r.depth);
  }
  if (rc == CLI_OK)
    rc = compute(&c, &fx, &r);
  json_t *files = json_array();
  if (rc == CLI_OK && !files)
    rc = cli_fail(CMD, "out of memory");
  if (rc == CLI_OK)
    rc = write_csvs(&c, &r, files);
  if (rc == CLI_OK && (r.parts & PART_A))
    rc = plots_a(&c, &fx, &r, files);
  if (rc == CLI_OK && (r.parts & PART_B))
    rc = plots_b(&c, &r, files);
  if (rc == CLI_OK && (r.parts & PART_C))
    rc = plots_c(&c, &r, files);
  if (rc == CLI_OK && (r.parts & PART_D))
    rc = plots_d(&c, &r, files);
  if (rc == CLI_OK) {
    if (c.json) {
      rc = gmm_json_print(&c, to_json(&fx, &r, files));
      files = NULL;
    } else {
      print_table(&fx, &r);
    }
  }
  json_decref(files);
  bool all = rc == CLI_OK && all_pass(&r);
  free_run(&r);
  if (rc == CLI_OK && c.strict && !all)
    return cli_fail(CMD, "a pass criterion failed (--strict)");
  return rc;
}
