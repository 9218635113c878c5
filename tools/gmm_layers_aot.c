/* gmm_layers_aot.c: `crate gmm crate-layers` part (d), the attention-only
 * (AoT) layer's SNR rate (MATH.md §2.6; catalogue row D7).
 *
 *  (d) K = 3 orthogonal subspaces of rank 32, N = 60, delta = 0.1,
 *      eta = 0.5, tau = 0.9: the per-layer SNR ratio of every cluster vs
 *      1 + eta tau (gate 1e-12 on every layer run; the exact rate holds for
 *      about 4 layers, after which the amplified cross-head scores pass
 *      tau), and a negative control with p = 2 that must deviate (> 1e-2).
 *      Bases and tokens are drawn here from the fixture seed (streams INIT
 *      and NOISE); the constants are in gmm_layers.h.
 *
 * This file computes the part, prints its table, builds its JSON object
 * ("aot") and writes PREFIX_aot.csv and the chart PREFIX_aot.png.  Options
 * are gmm_layers.c's; shared declarations: gmm_layers.h.
 */
#include <math.h>
#include <stdlib.h>

#include "cli.h"
#include "gmm_layers.h"

/* ---- compute ------------------------------------------------------------------------------- */

int layers_part_d(const gmm_common *c, const gmm_fixture *fx, run *r) {
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

/* ---- table --------------------------------------------------------------------------------- */

void layers_print_d(const run *r) {
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
         r->aot_worst[0], layers_verdict(r->pass_aot[0]));
  printf("  D7 control (p = %d): worst rel deviation %.3e (must exceed 1e-2): %s\n", AOT_CONTROL_P,
         r->aot_worst[1], layers_verdict(r->pass_aot[1]));
}

/* ---- JSON ---------------------------------------------------------------------------------- */

void layers_json_d(const run *r, json_t *o, json_t *pass) {
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
      json_array_append_new(snr, layers_json_vec(r->aot_snr[v][l], AOT_K, 1));
    json_object_set_new(e, "snr", snr);
    json_object_set_new(e, "max_rel_dev", layers_json_vec(r->aot_dev[v], r->aot_layers, 1));
    json_object_set_new(e, "worst", cli_json_num(r->aot_worst[v]));
    json_object_set_new(dd, v ? "control" : "regime", e);
  }
  json_object_set_new(o, "aot", dd);
  json_object_set_new(pass, "aot_rate", json_boolean(r->pass_aot[0]));
  json_object_set_new(pass, "aot_control", json_boolean(r->pass_aot[1]));
}

/* ---- files --------------------------------------------------------------------------------- */

/* Writes PREFIX_aot.csv and notes it in files. */
int layers_csv_d(const gmm_common *c, const run *r, json_t *files) {
  char path[1024];
  FILE *f;
  if (!(f = layers_open_csv(c, "_aot.csv", path, sizeof path, files)))
    return CLI_FAIL;
  fprintf(f, "run,p,layer,cluster,snr,ratio,target\n");
  for (int v = 0; v < 2; v++)
    for (size_t l = 0; l <= r->aot_layers; l++)
      for (int k = 0; k < AOT_K; k++) {
        fprintf(f, "%s,%d,%zu,%d", v ? "control" : "regime", v ? AOT_CONTROL_P : AOT_P, l, k + 1);
        layers_csv_num(f, r->aot_snr[v][l][k]);
        layers_csv_num(f, l ? r->aot_snr[v][l][k] / r->aot_snr[v][l - 1][k] : NAN);
        layers_csv_num(f, 1.0 + AOT_ETA * AOT_TAU);
        fprintf(f, "\n");
      }
  if (!gmm_close_out(c, f, path))
    return CLI_FAIL;
  return CLI_OK;
}

int layers_plots_d(const gmm_common *c, const run *r, json_t *files) {
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
                      v ? layers_marks[k] : CRATE_PLOT_MARKER_CIRCLE,
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
  return layers_draw_chart(c, "_aot.png", &ch, s, ns, files);
}
