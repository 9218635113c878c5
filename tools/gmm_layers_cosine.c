/* gmm_layers_cosine.c: `crate gmm crate-layers` part (c), compression vs
 * score (MATH.md §5.4; catalogue row D8; pitfall P16; report only).
 *
 *  (c) the cosine between -grad R^c(Z) and sigma^2 grad log q^sigma(Z) =
 *      m(Z) - Z on a (sigma, eps2 = c sigma^2) grid, one token at a time
 *      (N = 1, mean of the cosines) and all tokens together, for incoherent
 *      and orthogonal subspaces of the fixture's shape.  The tokens are
 *      drawn here, the same clean tokens and unit noise at every sigma.
 *
 * This file computes the part, prints its table, builds its JSON object
 * ("cosine") and writes PREFIX_cosine.csv and the chart PREFIX_cosine.png.
 * Options are gmm_layers.c's; shared declarations: gmm_layers.h.
 */
#include <math.h>
#include <stdlib.h>

#include "cli.h"
#include "gmm_layers.h"

/* Part (c): the (sigma, eps2 = c sigma^2) grid. */
const double layers_cos_sigmas[NSIG] = {0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0};
const double layers_cos_cmult[NCM] = {0.25, 1.0, 4.0};

static double cosine(const double *a, const double *b, size_t n) {
  return layers_dot(a, b, n) / sqrt(layers_dot(a, a, n) * layers_dot(b, b, n));
}

/* ---- compute ------------------------------------------------------------------------------- */

int layers_part_c(const gmm_common *c, const gmm_fixture *fx, run *r) {
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
      double sigma = layers_cos_sigmas[s];
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
        double eps2 = layers_cos_cmult[ci] * sigma * sigma, mean = 0.0;
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

/* ---- table --------------------------------------------------------------------------------- */

void layers_print_c(const run *r) {
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
          printf(" %7g", layers_cos_cmult[ci]);
  printf("\n");
  for (int s = 0; s < NSIG; s++) {
    printf("  %8g", layers_cos_sigmas[s]);
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

/* ---- JSON ---------------------------------------------------------------------------------- */

void layers_json_c(const run *r, json_t *o) {
  static const char *kname[2] = {"incoherent", "orthogonal"};
  json_t *cz = json_object();
  json_object_set_new(cz, "sigmas", layers_json_vec(layers_cos_sigmas, NSIG, 1));
  json_object_set_new(cz, "c", layers_json_vec(layers_cos_cmult, NCM, 1));
  json_object_set_new(cz, "eps2", json_string("c * sigma^2"));
  for (int kind = 0; kind < 2; kind++) {
    if (!r->have_kind[kind])
      continue;
    json_t *kk = json_object();
    for (int mode = 0; mode < 2; mode++) {
      json_t *rows = json_array(); /* [sigma][c] */
      for (int s = 0; s < NSIG; s++)
        json_array_append_new(rows, layers_json_vec(r->cosv[kind][mode][s], NCM, 1));
      json_object_set_new(kk, mode ? "set" : "token", rows);
    }
    json_object_set_new(cz, kname[kind], kk);
  }
  json_object_set_new(o, "cosine", cz);
}

/* ---- files --------------------------------------------------------------------------------- */

/* Writes PREFIX_cosine.csv and notes it in files. */
int layers_csv_c(const gmm_common *c, const run *r, json_t *files) {
  char path[1024];
  FILE *f;
  if (!(f = layers_open_csv(c, "_cosine.csv", path, sizeof path, files)))
    return CLI_FAIL;
  fprintf(f, "subspaces,mode,sigma,c,eps2,cosine\n");
  for (int kind = 0; kind < 2; kind++)
    for (int mode = 0; mode < 2; mode++)
      for (int s = 0; s < NSIG; s++)
        for (int ci = 0; ci < NCM; ci++)
          if (r->have_kind[kind])
            fprintf(f, "%s,%s,%g,%g,%.17g,%.17g\n", kind ? "orthogonal" : "incoherent",
                    mode ? "set" : "token", layers_cos_sigmas[s], layers_cos_cmult[ci],
                    layers_cos_cmult[ci] * layers_sq(layers_cos_sigmas[s]),
                    r->cosv[kind][mode][s][ci]);
  if (!gmm_close_out(c, f, path))
    return CLI_FAIL;
  return CLI_OK;
}

int layers_plots_c(const gmm_common *c, const run *r, json_t *files) {
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
      s[ns] = (curve){labels[ns],
                      layers_cos_sigmas,
                      y[ns],
                      NSIG,
                      (size_t)kind,
                      mode ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID,
                      layers_marks[kind],
                      0};
      ns++;
    }
  char title[200];
  snprintf(
      title, sizeof title,
      "cos(-grad R^c, \xcf\x83\xc2\xb2 grad log q) vs \xcf\x83, eps2 = \xcf\x83\xc2\xb2 (N=%zu)",
      r->N);
  gmm_chart ch = {title, "\xcf\x83", "cosine", true, false, 0, 0, 1000, 640};
  return layers_draw_chart(c, "_cosine.png", &ch, s, ns, files);
}
