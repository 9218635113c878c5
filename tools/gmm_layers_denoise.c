/* gmm_layers_denoise.c: `crate gmm crate-layers` part (a), structured
 * denoising (MATH.md §5.1-5.2, §1.6, §2.6, §3.4; catalogue row D4;
 * pitfalls P5, P6).
 *
 *  (a) `depth` encoder layers, Euler steps Z <- Z - kappa F(Z),
 *      kappa = T / depth, with the exact field F = grad R^c and with the
 *      MSSA approximation.  Per layer: R^c, the descent-lemma slack
 *      R^c(Z) - R^c(Z+) - kappa/2 ||grad R^c||^2 (exact field; gated
 *      >= -1e-12 when kappa <= 1/L, L = beta_max lambda_max(sum U U^T),
 *      MATH.md §1.6), the MSE to the clean tokens per coordinate and the
 *      per-cluster SNR ||P_k Z_k|| / ||(I - P_k) Z_k|| (§2.6).  Compared
 *      with the Bayes denoiser m(z) at the same sigma (§3.4).  SNR and MSE
 *      are reported, not gated: descent on R^c is not a denoising proof
 *      (P5), and MSSA is not a descent step (P6).
 *
 * This file computes the part, prints its table, builds its JSON object
 * ("denoise") and writes PREFIX_denoise.csv and the charts
 * PREFIX_{rc,snr,mse}.png.  Tokens and options are gmm_layers.c's; shared
 * declarations: gmm_layers.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm_layers.h"

#define MAX_SNR_COLS 6 /* clusters shown in the table (all go to CSV/JSON) */

/* Mean squared error per coordinate. */
static double mse(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += layers_sq(a[i] - b[i]);
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

/* ---- compute ------------------------------------------------------------------------------- */

int layers_part_a(const gmm_common *c, run *r, const crate_subspaces *U, const double *Z,
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
      t->slack[l - 1] = t->Rc[l - 1] - t->Rc[l] - 0.5 * r->kappa * layers_dot(G, G, n);
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

/* ---- table --------------------------------------------------------------------------------- */

static void print_snr(const double *snr, size_t K) {
  for (size_t k = 0; k < K && k < MAX_SNR_COLS; k++) {
    if (isfinite(snr[k]))
      printf("  %7.3f", snr[k]);
    else
      printf("  %7s", "-");
  }
  printf("\n");
}

void layers_print_a(const run *r) {
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
         r->regime ? "" : " [not gated: kappa > 1/L]",
         r->regime ? layers_verdict(r->pass_a) : "report");
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

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *json_traj(const run *r, const traj_stats *t, bool exact) {
  json_t *o = json_object(), *snr = json_array();
  size_t L = r->depth, K = r->K;
  for (size_t k = 0; k < K; k++)
    json_array_append_new(snr, layers_json_vec(t->snr + k, L + 1, K));
  json_object_set_new(o, "Rc", layers_json_vec(t->Rc, L + 1, 1));
  json_object_set_new(o, "mse", layers_json_vec(t->mse, L + 1, 1));
  json_object_set_new(o, "snr", snr);
  json_object_set_new(o, "Rc_monotone", json_boolean(t->monotone));
  if (exact)
    json_object_set_new(o, "descent_min_gap", cli_json_num(t->min_slack));
  json_object_set_new(o, "best_layer", json_integer((json_int_t)t->best));
  json_object_set_new(o, "best_mse", cli_json_num(t->mse[t->best]));
  return o;
}

void layers_json_a(const run *r, json_t *o, json_t *pass) {
  json_t *a = json_object(), *bayes = json_object(), *counts = json_array();
  for (size_t k = 0; k < r->K; k++)
    json_array_append_new(counts, json_integer((json_int_t)r->counts[k]));
  json_object_set_new(a, "depth", json_integer((json_int_t)r->depth));
  json_object_set_new(a, "kappa", json_real(r->kappa));
  json_object_set_new(a, "descent_regime", json_boolean(r->regime));
  json_object_set_new(a, "cluster_tokens", counts);
  json_object_set_new(a, "exact", json_traj(r, &r->tr[0], true));
  json_object_set_new(a, "mssa", json_traj(r, &r->tr[1], false));
  json_object_set_new(bayes, "Rc", cli_json_num(r->bayes_Rc));
  json_object_set_new(bayes, "mse", cli_json_num(r->bayes_mse));
  json_object_set_new(bayes, "snr", layers_json_vec(r->bayes_snr, r->K, 1));
  json_object_set_new(a, "bayes", bayes);
  json_object_set_new(a, "noisy_mse", cli_json_num(r->noisy_mse));
  json_object_set_new(o, "denoise", a);
  json_object_set_new(pass, "descent", json_boolean(r->pass_a));
}

/* ---- files --------------------------------------------------------------------------------- */

/* Writes PREFIX_denoise.csv and notes it in files. */
int layers_csv_a(const gmm_common *c, const run *r, json_t *files) {
  char path[1024];
  FILE *f;
  if (!(f = layers_open_csv(c, "_denoise.csv", path, sizeof path, files)))
    return CLI_FAIL;
  fprintf(f, "field,layer,s,Rc,lemma_gap,mse");
  for (size_t k = 0; k < r->K; k++)
    fprintf(f, ",snr_%zu", k + 1);
  fprintf(f, "\n");
  for (int fi = 0; fi < 2; fi++) {
    const traj_stats *t = &r->tr[fi];
    for (size_t l = 0; l <= r->depth; l++) {
      fprintf(f, "%s,%zu", fi ? "mssa" : "exact", l);
      layers_csv_num(f, r->kappa * (double)l);
      layers_csv_num(f, t->Rc[l]);
      layers_csv_num(f, l == 0 ? NAN : (fi == 0 ? t->slack[l - 1] : t->Rc[l - 1] - t->Rc[l]));
      layers_csv_num(f, t->mse[l]);
      for (size_t k = 0; k < r->K; k++)
        layers_csv_num(f, t->snr[l * r->K + k]);
      fprintf(f, "\n");
    }
  }
  fprintf(f, "bayes,,");
  layers_csv_num(f, r->bayes_Rc);
  fprintf(f, ",");
  layers_csv_num(f, r->bayes_mse);
  for (size_t k = 0; k < r->K; k++)
    layers_csv_num(f, r->bayes_snr[k]);
  fprintf(f, "\n");
  if (!gmm_close_out(c, f, path))
    return CLI_FAIL;
  return CLI_OK;
}

int layers_plots_a(const gmm_common *c, const gmm_fixture *fx, const run *r, json_t *files) {
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
  if ((rc = layers_draw_chart(c, "_rc.png", &ch, s, 3, files)) != CLI_OK)
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
                      L <= 40 ? layers_marks[k % 4] : CRATE_PLOT_MARKER_NONE,
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
  if ((rc = layers_draw_chart(c, "_snr.png", &ch2, s, ns, files)) != CLI_OK)
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
  rc = layers_draw_chart(c, "_mse.png", &ch3, s, 3, files);
done:
  free(x);
  free(snr);
  free(ref);
  return rc;
}
