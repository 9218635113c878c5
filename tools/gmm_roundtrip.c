/* gmm_roundtrip.c: `crate gmm roundtrip`, invertibility of the PF-ODE
 * discretisations (MATH.md §4.7, pitfall P3; catalogue rows C4 and C5).
 *
 * M clean data points x = U_k a of the fixture mixture (on the subspaces,
 * the population of the C4 absolute gate) are encoded from sigma_min up to
 * sigma_max on the reversed fixture grid of n steps and decoded back down,
 * either on the same grid or on a mismatched decode grid (exponential by
 * default).  The round-trip error is the relative RMS error over the samples,
 * ||Z - X||_F / ||X||_F.  Expected orders (§4.7): on the same grid the
 * leading local errors of a one-step method of even order p cancel, so
 * Euler 1, Heun 3, RK4 5, DPM-2 3 (derived by the same argument); on a
 * different grid the plain orders 1, 2, 4, 2.  DPM-Solver++(2M) is
 * multistep (its history differs between the two directions), so only its
 * plain order 2 is predicted.  The hard floor of C4 is order >= expected -
 * 0.15; the absolute gate is Heun, n = 80, same grid <= 1e-5 (defined on the
 * default fixture).  The implicit midpoint rule (opt-in) is symmetric, so its
 * same-grid round trip is exact up to the solve tolerance (C5, <= 1e-10).
 */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm roundtrip"
#define DEFAULT_OUT "gmm_roundtrip"
#define DEFAULT_SAMPLERS "euler,heun,rk4,dpm2,dpmpp-2m"
#define DEFAULT_STEPS "20,40,80,160,320"
#define DEFAULT_M 256
#define HEUN_GATE 1e-5
#define MIDPOINT_GATE 1e-10

enum { OPT_SAMPLER = 1200, OPT_STEPS, OPT_SAMPLES, OPT_DECODE };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm roundtrip [options]\n\n"
          "Encode M clean mixture points from sigma-min to sigma-max with n steps, decode\n"
          "them back, and report the relative RMS round-trip error, on the same grid and\n"
          "on a mismatched decode grid, with fitted orders (MATH.md 4.7, rows C4, C5).\n"
          "Expected: same grid Euler 1, Heun 3, RK4 5, DPM-2 3; mismatched grid 1, 2, 4,\n"
          "2; DPM++(2M) 2.  Pass: order >= expected - 0.15; Heun, n = 80, same grid\n"
          "<= 1e-5 on the default fixture.  With one sampler and one step count it runs\n"
          "that single configuration (JSON: sampler, steps, roundtrip_error).\n\n"
          "Options:\n"
          "      --sampler LIST      samplers, comma separated (euler, heun, rk4, dpm2,\n"
          "                          dpmpp-2m, midpoint) [" DEFAULT_SAMPLERS "]\n"
          "      --steps LIST        step counts n (n + 1 noise levels) [" DEFAULT_STEPS "]\n"
          "  -M, --samples N         clean data points [%d]\n"
          "      --decode-schedule S mismatched decode grid: karras, exp or uniform\n"
          "                          [exp; karras when --schedule is exp]\n",
          DEFAULT_M);
  gmm_fixture_help(f);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "\nExample: crate gmm roundtrip --sampler heun --steps 80 --json\n");
}

/* Expected order of the round trip: same grid (variant 0) or not. */
static int expected_order(crate_sampler_kind k, int variant) {
  int p = crate_sampler_order(k);
  if (variant == 1 || k == CRATE_SAMPLER_DPMPP_2M)
    return p;
  if (k == CRATE_SAMPLER_MIDPOINT)
    return 0; /* exact up to the solve tolerance; gated absolutely */
  return p % 2 == 0 ? p + 1 : p;
}

static const char *variant_name[2] = {"same", "mismatched"};

typedef struct run {
  crate_sampler_kind kinds[GMM_MAX_LIST];
  size_t steps[GMM_MAX_LIST];
  int nk, ns;
  size_t M;
  const char *decode; /* mismatched decode schedule name */
  crate_schedule_kind decode_kind;
  double err[GMM_MAX_LIST][2][GMM_MAX_LIST]; /* [sampler][variant][steps] */
  double order[GMM_MAX_LIST][2];
  bool pass[GMM_MAX_LIST][2];
  double *point_err[2]; /* single run: (M) per-point errors / RMS norm, sorted */
  double heun80;        /* Heun n = 80 same grid, NAN if not run */
} run;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One encode/decode.  Z: (M, d) work; X: (M, d) data. */
static int one_trip(const gmm_common *c, const gmm_fixture *fx, crate_molrg *mix, const run *r,
                    crate_sampler_kind kind, size_t n, int variant, const double *X, double *Z,
                    double *err, double *point_err) {
  size_t d = fx->d, M = r->M;
  const char *name = crate_sampler_name(kind);
  double *up = NULL, *down = NULL;
  crate_schedule_kind sk = gmm_fixture_schedule_kind(fx);
  int rc =
      gmm_check(c, gmm_fixture_grid(fx, sk, n, true, &up), "%s grid of %zu steps", fx->schedule, n);
  if (rc == CLI_OK)
    rc = gmm_check(c, gmm_fixture_grid(fx, variant == 0 ? sk : r->decode_kind, n, false, &down),
                   "%s grid of %zu steps", variant == 0 ? fx->schedule : r->decode, n);
  if (rc == CLI_OK) {
    memcpy(Z, X, M * d * sizeof *Z);
    rc = gmm_check(c, crate_molrg_integrate(mix, kind, up, n + 1, Z, M, NULL),
                   "%s, %zu steps, encoding", name, n);
  }
  if (rc == CLI_OK)
    rc = gmm_check(c, crate_molrg_integrate(mix, kind, down, n + 1, Z, M, NULL),
                   "%s, %zu steps, decoding on the %s grid", name, n, variant_name[variant]);
  free(up);
  free(down);
  if (rc != CLI_OK)
    return rc;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < M; i++) {
    double e = 0.0;
    for (size_t l = 0; l < d; l++) {
      double t = Z[i * d + l] - X[i * d + l];
      e += t * t;
      den += X[i * d + l] * X[i * d + l];
    }
    num += e;
    if (point_err)
      point_err[i] = sqrt(e);
  }
  *err = sqrt(num / den);
  if (point_err) {
    double rms = sqrt(den / (double)M);
    for (size_t i = 0; i < M; i++)
      point_err[i] /= rms;
    qsort(point_err, M, sizeof *point_err, cmp_d);
  }
  if (!isfinite(*err)) {
    double zmax = 0.0;
    for (size_t i = 0; i < M * d; i++)
      zmax = fmax(zmax, fabs(Z[i]));
    return cli_fail(c->cmd,
                    "%s, %zu steps, %s grid: the round-trip error overflows (decoded points "
                    "reach |z| = %.3g); use more steps or a smaller --sigma-max",
                    name, n, variant_name[variant], zmax);
  }
  return CLI_OK;
}

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  crate_molrg *mix = NULL;
  double *X = NULL, *Z = NULL;
  int rc = gmm_check(c, gmm_fixture_create(fx, &mix), "creating the mixture");
  if (rc != CLI_OK)
    return rc;
  size_t d = fx->d;
  bool single = r->nk == 1 && r->ns == 1;
  X = calloc(r->M * d, sizeof *X);
  Z = calloc(r->M * d, sizeof *Z);
  if (single) {
    r->point_err[0] = calloc(r->M, sizeof(double));
    r->point_err[1] = calloc(r->M, sizeof(double));
  }
  if (!X || !Z || (single && (!r->point_err[0] || !r->point_err[1]))) {
    rc = cli_fail(c->cmd, "out of memory (%zu points)", r->M);
    goto done;
  }
  crate_rng rng;
  crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
  rc = gmm_check(c, crate_molrg_sample(mix, &rng, r->M, 0.0, X, NULL, NULL), "drawing clean data");
  if (rc != CLI_OK)
    goto done;
  r->heun80 = NAN;
  for (int k = 0; k < r->nk; k++)
    for (int v = 0; v < 2; v++) {
      for (int i = 0; i < r->ns; i++) {
        rc = one_trip(c, fx, mix, r, r->kinds[k], r->steps[i], v, X, Z, &r->err[k][v][i],
                      single ? r->point_err[v] : NULL);
        if (rc != CLI_OK)
          goto done;
        gmm_note(c, "roundtrip: %-8s %-10s grid steps=%-6zu rel RMS error %.3e\n",
                 crate_sampler_name(r->kinds[k]), variant_name[v], r->steps[i], r->err[k][v][i]);
        if (r->kinds[k] == CRATE_SAMPLER_HEUN && v == 0 && r->steps[i] == 80)
          r->heun80 = r->err[k][v][i];
      }
      r->order[k][v] =
          gmm_fit_order(r->steps, r->err[k][v], (size_t)r->ns, 100 * DBL_EPSILON, NULL);
      if (r->kinds[k] == CRATE_SAMPLER_MIDPOINT && v == 0) {
        bool ok = true;
        for (int i = 0; i < r->ns; i++)
          ok = ok && r->err[k][v][i] <= MIDPOINT_GATE;
        r->pass[k][v] = ok;
      } else {
        /* A sweep too short for a fit is not a failure of the method. */
        r->pass[k][v] =
            !isfinite(r->order[k][v]) || r->order[k][v] >= expected_order(r->kinds[k], v) - 0.15;
      }
    }
done:
  free(X);
  free(Z);
  crate_molrg_destroy(mix);
  return rc;
}

static bool heun_gate_pass(const run *r) {
  return !isfinite(r->heun80) || r->heun80 <= HEUN_GATE;
}

static void print_table(const gmm_fixture *fx, const run *r) {
  printf("Round trip sigma_min -> sigma_max -> sigma_min (MATH.md 4.7, rows C4, C5)\n"
         "relative RMS error over %zu clean data points; encode on the reversed %s grid,\n"
         "decode on the same grid or on the mismatched %s grid\n\n",
         r->M, fx->schedule, r->decode);
  for (int v = 0; v < 2; v++) {
    printf("%s decode grid (%s)\n%8s", v == 0 ? "Same" : "Mismatched",
           v == 0 ? fx->schedule : r->decode, "steps");
    for (int k = 0; k < r->nk; k++)
      printf("  %10s", crate_sampler_name(r->kinds[k]));
    printf("\n");
    for (int i = 0; i < r->ns; i++) {
      printf("%8zu", r->steps[i]);
      for (int k = 0; k < r->nk; k++)
        printf("  %10.3e", r->err[k][v][i]);
      printf("\n");
    }
    if (r->ns > 2) {
      printf("%8s", "order");
      for (int k = 0; k < r->nk; k++) {
        if (isfinite(r->order[k][v]))
          printf("  %10.3f", r->order[k][v]);
        else
          printf("  %10s", "n/a");
      }
      printf("\n%8s", "expected");
      for (int k = 0; k < r->nk; k++) {
        if (r->kinds[k] == CRATE_SAMPLER_MIDPOINT && v == 0)
          printf("  %10s", "<=1e-10");
        else
          printf("  %10d", expected_order(r->kinds[k], v));
      }
      printf("\n%8s", "result");
      for (int k = 0; k < r->nk; k++)
        printf("  %10s", r->pass[k][v] ? "PASS" : "FAIL");
      printf("\n");
    }
    printf("\n");
  }
  if (isfinite(r->heun80))
    printf("C4 absolute: Heun, 80 steps, same grid: %.3e (bound %.0e) %s\n", r->heun80, HEUN_GATE,
           heun_gate_pass(r) ? "PASS" : "FAIL");
  if (r->ns > 2)
    printf("Fit: least squares of log error vs log steps without the coarsest point and\n"
           "points under 100 eps; pass when order >= expected - 0.15 (hard floor of C4).\n");
}

static json_t *to_json(const gmm_fixture *fx, const run *r, const char *csv, const char *png) {
  json_t *o = json_object(), *results = json_array(), *slopes = json_object(),
         *expect = json_object(), *steps = json_array();
  bool all = heun_gate_pass(r);
  for (int i = 0; i < r->ns; i++)
    json_array_append_new(steps, json_integer((json_int_t)r->steps[i]));
  for (int v = 0; v < 2; v++) {
    json_t *sl = json_object(), *ex = json_object();
    for (int k = 0; k < r->nk; k++) {
      const char *key = gmm_sampler_key(r->kinds[k]);
      json_object_set_new(sl, key, cli_json_num(r->order[k][v]));
      json_object_set_new(ex, key, json_integer(expected_order(r->kinds[k], v)));
      all = all && r->pass[k][v];
      for (int i = 0; i < r->ns; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "sampler", json_string(crate_sampler_name(r->kinds[k])));
        json_object_set_new(e, "grid", json_string(variant_name[v]));
        json_object_set_new(e, "steps", json_integer((json_int_t)r->steps[i]));
        json_object_set_new(e, "roundtrip_error", cli_json_num(r->err[k][v][i]));
        json_array_append_new(results, e);
      }
    }
    json_object_set_new(slopes, variant_name[v], sl);
    json_object_set_new(expect, variant_name[v], ex);
  }
  json_object_set_new(o, "command", json_string("gmm roundtrip"));
  if (r->nk == 1 && r->ns == 1) {
    json_object_set_new(o, "sampler", json_string(crate_sampler_name(r->kinds[0])));
    json_object_set_new(o, "steps", json_integer((json_int_t)r->steps[0]));
    json_object_set_new(o, "roundtrip_error", cli_json_num(r->err[0][0][0]));
    json_object_set_new(o, "roundtrip_error_mismatched", cli_json_num(r->err[0][1][0]));
  } else {
    json_object_set_new(o, "steps", steps);
    steps = NULL;
  }
  json_decref(steps);
  json_object_set_new(o, "error", json_string("relative RMS over the samples"));
  json_object_set_new(o, "data", json_string("clean mixture draws (on the subspaces)"));
  json_object_set_new(o, "samples", json_integer((json_int_t)r->M));
  json_object_set_new(o, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(o, "K", json_integer((json_int_t)fx->K));
  json_object_set_new(o, "seed", json_integer((json_int_t)fx->seed));
  json_object_set_new(o, "sigma_min", json_real(fx->sigma_min));
  json_object_set_new(o, "sigma_max", json_real(fx->sigma_max));
  json_object_set_new(o, "schedule", json_string(fx->schedule));
  json_object_set_new(o, "decode_schedule", json_string(r->decode));
  json_object_set_new(o, "results", results);
  json_object_set_new(o, "slopes", slopes);
  json_object_set_new(o, "expected", expect);
  json_object_set_new(o, "heun80_same_grid", cli_json_num(r->heun80));
  json_object_set_new(o, "pass", json_boolean(all));
  json_object_set_new(o, "csv", json_string(csv));
  json_object_set_new(o, "png", json_string(png));
  return o;
}

static int write_csv(const gmm_common *c, const run *r, char *path, size_t size) {
  FILE *f = gmm_open_out(c, ".csv", path, size);
  if (!f)
    return CLI_FAIL;
  fprintf(f, "sampler,grid,steps,roundtrip_error,fitted_order,expected_order\n");
  for (int k = 0; k < r->nk; k++)
    for (int v = 0; v < 2; v++)
      for (int i = 0; i < r->ns; i++)
        fprintf(f, "%s,%s,%zu,%.17g,%.6f,%d\n", crate_sampler_name(r->kinds[k]), variant_name[v],
                r->steps[i], r->err[k][v][i], r->order[k][v], expected_order(r->kinds[k], v));
  return gmm_close_out(c, f, path) ? CLI_OK : CLI_FAIL;
}

static int write_png(const gmm_common *c, const gmm_fixture *fx, const run *r) {
  char title[200];
  if (r->nk == 1 && r->ns == 1) {
    /* One configuration: the distribution of the per-point errors. */
    double *q = calloc(r->M, sizeof *q);
    if (!q)
      return cli_fail(c->cmd, "out of memory");
    for (size_t i = 0; i < r->M; i++)
      q[i] = r->M > 1 ? (double)i / (double)(r->M - 1) : 0.0;
    char l0[96], l1[96];
    snprintf(l0, sizeof l0, "same grid (rel RMS %.2e)", r->err[0][0][0]);
    snprintf(l1, sizeof l1, "%s decode grid (rel RMS %.2e)", r->decode, r->err[0][1][0]);
    gmm_series s[2] = {{l0, q, r->point_err[0], r->M, false, 0, false},
                       {l1, q, r->point_err[1], r->M, false, 0, true}};
    snprintf(title, sizeof title, "Round-trip error per point, %s, %zu steps (sorted)",
             crate_sampler_name(r->kinds[0]), r->steps[0]);
    gmm_chart ch = {title, "fraction of points", "||z - x|| / RMS ||x||", false, true, 0, 0, 0, 0};
    int rc = gmm_plot(c, &ch, s, 2);
    free(q);
    return rc;
  }
  double x[GMM_MAX_LIST];
  static char labels[2 * GMM_MAX_LIST][96];
  gmm_series s[2 * GMM_MAX_LIST];
  size_t ns = 0;
  for (int i = 0; i < r->ns; i++)
    x[i] = (double)r->steps[i];
  for (int v = 0; v < 2; v++)
    for (int k = 0; k < r->nk; k++) {
      const char *g = v == 0 ? "same grid" : r->decode;
      if (isfinite(r->order[k][v]))
        snprintf(labels[ns], sizeof labels[ns], "%s, %s (slope %.2f)",
                 crate_sampler_name(r->kinds[k]), g, -r->order[k][v]);
      else
        snprintf(labels[ns], sizeof labels[ns], "%s, %s", crate_sampler_name(r->kinds[k]), g);
      s[ns] = (gmm_series){labels[ns], x, r->err[k][v], (size_t)r->ns, false, k + 1, v == 1};
      ns++;
    }
  snprintf(title, sizeof title,
           "Round trip \xcf\x83 %g->%g->%g: %s encode, decode on it or on %s (d=%zu, K=%zu)",
           fx->sigma_min, fx->sigma_max, fx->sigma_min, fx->schedule, r->decode, fx->d, fx->K);
  gmm_chart ch = {title, "steps n", "relative RMS round-trip error", true, true, 0, 0, 0, 0};
  gmm_chart_steps_range(&ch, r->steps, (size_t)r->ns);
  return gmm_plot(c, &ch, s, ns);
}

int gmm_roundtrip(int argc, char **argv) {
  gmm_common c;
  gmm_fixture fx;
  gmm_common_default(&c, CMD, DEFAULT_OUT);
  gmm_fixture_default(&fx);
  static run r; /* large; one per process */
  memset(&r, 0, sizeof r);
  r.M = DEFAULT_M;
  r.nk = gmm_parse_samplers(CMD, "--sampler", DEFAULT_SAMPLERS, r.kinds);
  r.ns = gmm_parse_steps(CMD, "--steps", DEFAULT_STEPS, r.steps);
  static const struct option longopts[] = {{"sampler", required_argument, NULL, OPT_SAMPLER},
                                           {"steps", required_argument, NULL, OPT_STEPS},
                                           {"samples", required_argument, NULL, OPT_SAMPLES},
                                           {"decode-schedule", required_argument, NULL, OPT_DECODE},
                                           GMM_COMMON_LONGOPTS,
                                           GMM_FIXTURE_LONGOPTS,
                                           {NULL, 0, NULL, 0}};
  opterr = 0;
  int opt;
  long v;
  while ((opt = getopt_long(argc, argv, GMM_COMMON_SHORTOPTS "M:", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_SAMPLER:
      if ((r.nk = gmm_parse_samplers(CMD, "--sampler", optarg, r.kinds)) < 0)
        return CLI_USAGE;
      continue;
    case OPT_STEPS:
      if ((r.ns = gmm_parse_steps(CMD, "--steps", optarg, r.steps)) < 0)
        return CLI_USAGE;
      continue;
    case 'M':
    case OPT_SAMPLES:
      if (!cli_parse_long(CMD, "--samples", optarg, 1, 1000000, &v))
        return CLI_USAGE;
      r.M = (size_t)v;
      continue;
    case OPT_DECODE:
      if (strcmp(optarg, "karras") && strcmp(optarg, "exp") && strcmp(optarg, "uniform"))
        return cli_usage_error(CMD, "--decode-schedule must be karras, exp or uniform, got '%s'",
                               optarg);
      r.decode = optarg;
      continue;
    default: break;
    }
    const int h = gmm_common_option(&c, &fx, opt, argv, usage);
    if (h >= 0)
      return h;
  }
  if (!gmm_common_no_positional(&c, argc, argv) || !gmm_fixture_finish(&fx, CMD))
    return CLI_USAGE;
  if (!r.decode)
    r.decode = strcmp(fx.schedule, "exp") ? "exp" : "karras";
  if (!strcmp(r.decode, fx.schedule))
    return cli_usage_error(CMD, "--decode-schedule (%s) must differ from --schedule (%s)", r.decode,
                           fx.schedule);
  {
    gmm_fixture tmp = fx;
    tmp.schedule = r.decode;
    r.decode_kind = gmm_fixture_schedule_kind(&tmp);
  }

  if (!c.quiet) {
    fprintf(stderr, "crate gmm roundtrip: ");
    gmm_fixture_describe(&fx, stderr);
    fprintf(stderr, "crate gmm roundtrip: data=%zu clean points samplers=", r.M);
    for (int k = 0; k < r.nk; k++)
      fprintf(stderr, "%s%s", k ? "," : "", crate_sampler_name(r.kinds[k]));
    fprintf(stderr, " steps=");
    for (int i = 0; i < r.ns; i++)
      fprintf(stderr, "%s%zu", i ? "," : "", r.steps[i]);
    fprintf(stderr, " decode-schedule=%s out=%s\n", r.decode, c.out);
  }
  int rc = compute(&c, &fx, &r);
  char csv[1024], png[1024];
  if (rc == CLI_OK)
    rc = write_csv(&c, &r, csv, sizeof csv);
  if (rc == CLI_OK)
    rc = write_png(&c, &fx, &r);
  free(r.point_err[0]);
  free(r.point_err[1]);
  if (rc != CLI_OK)
    return rc;
  gmm_path(png, sizeof png, c.out, ".png");
  bool all = heun_gate_pass(&r);
  for (int k = 0; k < r.nk; k++)
    all = all && r.pass[k][0] && r.pass[k][1];
  if (c.json)
    rc = gmm_json_print(&c, to_json(&fx, &r, csv, png));
  else
    print_table(&fx, &r);
  if (rc == CLI_OK && c.strict && !all)
    return cli_fail(CMD, "a pass criterion failed (--strict)");
  return rc;
}
