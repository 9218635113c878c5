/* gmm_layers_invert.c: `crate gmm crate-layers` part (b), invertibility
 * (MATH.md §5.3, §4.7; catalogue rows D5, D6).
 *
 *  (b) the explicit one-layer decoder error vs kappa (slope 2 +- 0.2,
 *      coarsest point dropped), the fixed-point inverse (error <= 1e-12
 *      with observed contraction <= kappa Lip, Lip measured at Z and Z'),
 *      and the L-layer encode -> decode round trip at fixed T vs L with
 *      Euler (order 1 +- 0.2) and Heun on the same grid (order 3 +- 0.2)
 *      for the exact field; the MSSA field's orders are reported (its Euler
 *      round trip is pre-asymptotic at L <= 64).
 *
 * This file computes the part, prints its table, builds its JSON object
 * ("invert", with its slopes and verdicts) and writes PREFIX_invert.csv and
 * the charts PREFIX_{decoder,roundtrip}.png.  Tokens and options are
 * gmm_layers.c's; shared declarations: gmm_layers.h.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "cli.h"
#include "gmm_layers.h"

/* Round-trip variants of part (b): field x method (see gmm_layers.h). */
const char *layers_rt_name[RT_N] = {"exact_euler", "exact_heun", "mssa_euler", "mssa_heun"};
const int layers_rt_order[RT_N] = {1, 3, 1, 3};
const bool layers_rt_gated[RT_N] = {true, true, false, false};

/* ||A - B||_F / ||B||_F. */
static double rel_err(const double *a, const double *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num += layers_sq(a[i] - b[i]);
    den += layers_sq(b[i]);
  }
  return sqrt(num / den);
}

/* ---- compute ------------------------------------------------------------------------------- */

int layers_part_b(const gmm_common *c, const gmm_fixture *fx, run *r, const crate_subspaces *U,
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
                     "(b) %s encoder, L = %zu", layers_rt_name[v], L);
      if (rc == CLI_OK)
        rc = gmm_check(c, crate_flow_decode(Zp, N, U, 1, L, r->T, &ov, Zh, NULL),
                       "(b) %s decoder, L = %zu", layers_rt_name[v], L);
      if (rc != CLI_OK)
        goto done;
      r->rt_err[v][i] = rel_err(Zh, Z, n);
    }
    r->slope_rt[v] = gmm_fit_order(r->layers, r->rt_err[v], (size_t)r->nl, 100 * DBL_EPSILON, NULL);
    r->pass_rt[v] =
        !isfinite(r->slope_rt[v]) || fabs(r->slope_rt[v] - layers_rt_order[v]) <= SLOPE_TOL;
    gmm_note(c, "crate-layers (b): round trip %-11s order %.3f\n", layers_rt_name[v],
             r->slope_rt[v]);
  }
done:
  free(Zp);
  free(Zh);
  return rc;
}

/* ---- table --------------------------------------------------------------------------------- */

void layers_print_b(const run *r) {
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
         r->slope_dec, layers_verdict(r->pass_dec));
  printf("  D5 fixed-point inverse: worst error %.3e (bound 1e-12), contraction <= kappa Lip: %s\n",
         r->fp_worst, layers_verdict(r->pass_fp));
  printf("\n  L-layer round trip at T = %g (encode, then decode on the same grid)\n  %6s %8s", r->T,
         "L", "kappa");
  for (int v = 0; v < RT_N; v++)
    printf("  %12s", layers_rt_name[v]);
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
    printf("  %12d", layers_rt_order[v]);
  printf("\n  %6s %8s", "result", "");
  for (int v = 0; v < RT_N; v++)
    printf("  %12s", layers_rt_gated[v] ? layers_verdict(r->pass_rt[v]) : "report");
  printf("\n  D6 order: minus the log-log slope of error vs L (error ~ L^-order), coarsest L\n"
         "  dropped; pass within +- 0.2 (same-grid Heun super-convergence, MATH.md 4.7).\n"
         "  The MSSA field is reported only: its Euler round trip approaches order 1 slowly.\n");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

void layers_json_b(const run *r, json_t *o, json_t *slopes, json_t *pass) {
  json_t *b = json_object(), *layers = json_array(), *rt = json_object(), *fp = json_array();
  for (int i = 0; i < r->nl; i++)
    json_array_append_new(layers, json_integer((json_int_t)r->layers[i]));
  for (int i = 0; i < r->nkap; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "kappa", json_real(r->kappas[i]));
    json_object_set_new(e, "lip", cli_json_num(r->fp_lip[i]));
    json_object_set_new(e, "kappa_lip", cli_json_num(r->kappas[i] * r->fp_lip[i]));
    if (r->fp_run[i]) {
      json_object_set_new(e, "error", cli_json_num(r->fp_err[i]));
      json_object_set_new(e, "iters", json_integer((json_int_t)r->fp_iters[i]));
      json_object_set_new(e, "contraction", cli_json_num(r->fp_contr[i]));
      json_object_set_new(e, "converged", json_boolean(r->fp_conv[i]));
    }
    json_array_append_new(fp, e);
  }
  for (int v = 0; v < RT_N; v++)
    json_object_set_new(rt, layers_rt_name[v], layers_json_vec(r->rt_err[v], (size_t)r->nl, 1));
  json_object_set_new(b, "kappas", layers_json_vec(r->kappas, (size_t)r->nkap, 1));
  json_object_set_new(b, "decoder_error", layers_json_vec(r->dec_err, (size_t)r->nkap, 1));
  json_object_set_new(b, "fixed_point", fp);
  json_object_set_new(b, "layers", layers);
  json_object_set_new(b, "roundtrip_error", rt);
  json_object_set_new(o, "invert", b);
  json_object_set_new(slopes, "decoder_kappa", cli_json_num(r->slope_dec));
  json_object_set_new(slopes, "euler_L", cli_json_num(r->slope_rt[RT_EXACT_EULER]));
  json_object_set_new(slopes, "heun_L", cli_json_num(r->slope_rt[RT_EXACT_HEUN]));
  json_object_set_new(slopes, "mssa_euler_L", cli_json_num(r->slope_rt[RT_MSSA_EULER]));
  json_object_set_new(slopes, "mssa_heun_L", cli_json_num(r->slope_rt[RT_MSSA_HEUN]));
  json_object_set_new(pass, "decoder_kappa", json_boolean(r->pass_dec));
  json_object_set_new(pass, "fixed_point", json_boolean(r->pass_fp));
  for (int v = 0; v < RT_N; v++) {
    char key[64];
    if (!layers_rt_gated[v])
      continue;
    snprintf(key, sizeof key, "roundtrip_%s", layers_rt_name[v]);
    json_object_set_new(pass, key, json_boolean(r->pass_rt[v]));
  }
}

/* ---- files --------------------------------------------------------------------------------- */

/* Writes PREFIX_invert.csv and notes it in files. */
int layers_csv_b(const gmm_common *c, const run *r, json_t *files) {
  char path[1024];
  FILE *f;
  if (!(f = layers_open_csv(c, "_invert.csv", path, sizeof path, files)))
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
  return CLI_OK;
}

int layers_plots_b(const gmm_common *c, const run *r, json_t *files) {
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
  int rc = layers_draw_chart(c, "_decoder.png", &ch, s, 1, files);
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
    s[v] = (curve){labels[v],           x,
                   r->rt_err[v],        (size_t)r->nl,
                   (size_t)(v % 2),     v >= 2 ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID,
                   layers_marks[v % 2], 0};
  }
  snprintf(title, sizeof title, "L-layer encode -> decode round trip at T=%g (N=%zu, eps2=%g)",
           r->T, r->N, r->eps2);
  gmm_chart ch2 = {title, "layers L", "||Z_hat - Z|| / ||Z||", true, true, 0, 0, 0, 0};
  gmm_chart_steps_range(&ch2, r->layers, (size_t)r->nl);
  return layers_draw_chart(c, "_roundtrip.png", &ch2, s, RT_N, files);
}
