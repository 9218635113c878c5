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
 *
 * This file holds the options, the tokens and the dispatch of the parts, the
 * verdicts, the table header, the frame of the JSON object, the JSON, CSV
 * and chart helpers and the entry point; each part (its computation,
 * table, JSON, CSV and charts) lives in its own file (gmm_layers_denoise.c,
 * gmm_layers_invert.c, gmm_layers_cosine.c, gmm_layers_aot.c; see
 * gmm_layers.h).
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"
#include "gmm_layers.h"

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

/* ---- helpers ------------------------------------------------------------------------------- */

double layers_sq(double x) {
  return x * x;
}

double layers_dot(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
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
  if ((r->parts & PART_A) &&
      (rc = layers_part_a(c, r, &U, Z, Zc, labels, work, zeros, mix)) != CLI_OK)
    goto done;
  if ((r->parts & PART_B) && (rc = layers_part_b(c, fx, r, &U, Z)) != CLI_OK)
    goto done;
  if ((r->parts & PART_C) && (rc = layers_part_c(c, fx, r)) != CLI_OK)
    goto done;
  if (r->parts & PART_D)
    rc = layers_part_d(c, fx, r);
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
      ok = ok && (!layers_rt_gated[v] || r->pass_rt[v]);
  }
  if (r->parts & PART_D)
    ok = ok && r->pass_aot[0] && r->pass_aot[1];
  return ok;
}

const char *layers_verdict(bool pass) {
  return pass ? "PASS" : "FAIL";
}

/* ---- table --------------------------------------------------------------------------------- */

static void print_table(const gmm_fixture *fx, const run *r) {
  printf("crate gmm crate-layers: structured denoising and diffusion on MoLRG tokens\n"
         "(MATH.md 5; rows D4-D8).  N = %zu tokens at sigma = %g, d = %zu, K = %zu, %s\n"
         "subspaces, seed %llu; eps2 = %g (epsilon^2), tokens not normalised, no CLS.\n",
         r->N, r->sigma, fx->d, fx->K,
         fx->kind == CRATE_SUBSPACES_ORTHOGONAL ? "orthogonal" : "incoherent",
         (unsigned long long)fx->seed, r->eps2);
  if (r->parts & PART_A) {
    printf("\n");
    layers_print_a(r);
  }
  if (r->parts & PART_B) {
    printf("\n");
    layers_print_b(r);
  }
  if (r->parts & PART_C) {
    printf("\n");
    layers_print_c(r);
  }
  if (r->parts & PART_D) {
    printf("\n");
    layers_print_d(r);
  }
  printf("\nOverall: %s\n", all_pass(r) ? "PASS" : "FAIL (see the lines marked FAIL)");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

json_t *layers_json_vec(const double *x, size_t n, size_t stride) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, cli_json_num(x[i * stride]));
  return a;
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
  if (r->parts & PART_A)
    layers_json_a(r, o, pass);
  if (r->parts & PART_B) {
    layers_json_b(r, o, slopes, pass);
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
  json_object_set_new(o, "fixed_point_error",
                      (r->parts & PART_B) ? cli_json_num(r->fp_worst) : json_null());
  if (r->parts & PART_C)
    layers_json_c(r, o);
  if (r->parts & PART_D)
    layers_json_d(r, o, pass);
  json_object_set_new(o, "pass_each", pass);
  json_object_set_new(o, "pass", json_boolean(all_pass(r)));
  json_object_set_new(o, "files", files);
  return o;
}

/* ---- files --------------------------------------------------------------------------------- */

/* Opens PREFIX<suffix>, noting its name in files. */
FILE *layers_open_csv(const gmm_common *c, const char *suffix, char *path, size_t size,
                      json_t *files) {
  FILE *f = gmm_open_out(c, suffix, path, size);
  if (f)
    json_array_append_new(files, json_string(path));
  return f;
}

void layers_csv_num(FILE *f, double x) {
  if (isfinite(x))
    fprintf(f, ",%.17g", x);
  else
    fprintf(f, ",");
}

static int write_csvs(const gmm_common *c, const run *r, json_t *files) {
  if ((r->parts & PART_A) && layers_csv_a(c, r, files) != CLI_OK)
    return CLI_FAIL;
  if ((r->parts & PART_B) && layers_csv_b(c, r, files) != CLI_OK)
    return CLI_FAIL;
  if ((r->parts & PART_C) && layers_csv_c(c, r, files) != CLI_OK)
    return CLI_FAIL;
  if ((r->parts & PART_D) && layers_csv_d(c, r, files) != CLI_OK)
    return CLI_FAIL;
  return CLI_OK;
}

/* Draws the curves into PREFIX<suffix>.png and notes the file in files.
 * ch->xlo < ch->xhi fixes the x range (room for the legend). */
int layers_draw_chart(const gmm_common *c, const char *suffix, const gmm_chart *ch, const curve *s,
                      size_t ns, json_t *files) {
  char path[1100];
  if (!gmm_path(path, sizeof path, c->out, suffix))
    return cli_fail(c->cmd, "output prefix too long: '%s'", c->out);
  crate_plot *p = NULL;
  int st = gmm_chart_create(ch, &p);
  for (size_t i = 0; i < ns && st == CRATE_STATUS_OK; i++) {
    crate_plot_style style = {0};
    style.use_color = true;
    style.color = crate_plot_palette(s[i].color);
    style.line = s[i].line;
    style.marker = s[i].marker;
    style.marker_size = s[i].marker_size;
    st = crate_plot_add(p, s[i].label, s[i].x, s[i].y, s[i].n, &style);
  }
  if (gmm_chart_write(c, p, st, path) != CLI_OK)
    return CLI_FAIL;
  json_array_append_new(files, json_string(path));
  return CLI_OK;
}

const crate_plot_marker layers_marks[4] = {CRATE_PLOT_MARKER_CIRCLE, CRATE_PLOT_MARKER_SQUARE,
                                           CRATE_PLOT_MARKER_TRIANGLE, CRATE_PLOT_MARKER_DIAMOND};

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
    default: break;
    }
    const int h = gmm_common_option(&c, &fx, opt, argv, usage);
    if (h >= 0)
      return h;
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
    rc = layers_plots_a(&c, &fx, &r, files);
  if (rc == CLI_OK && (r.parts & PART_B))
    rc = layers_plots_b(&c, &r, files);
  if (rc == CLI_OK && (r.parts & PART_C))
    rc = layers_plots_c(&c, &r, files);
  if (rc == CLI_OK && (r.parts & PART_D))
    rc = layers_plots_d(&c, &r, files);
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
