/* gmm_order.c: `crate gmm order`, the order of accuracy of the PF-ODE
 * samplers against an exact flow (MATH.md §4.4, §4.6; catalogue row C1).
 *
 * Target: the K = 1 mixture N(0, U U^T) whose basis U is the first subspace
 * of the fixture (d x p_1), for which the flow from sigma_0 to sigma_1 is
 *
 *   z(sigma_1) = sqrt((1 + sigma_1^2)/(1 + sigma_0^2)) U U^T z(sigma_0)
 *                + (sigma_1/sigma_0) (I - U U^T) z(sigma_0).
 *
 * M exact draws of q^{sigma_max} are decoded to sigma_min with each sampler
 * on the fixture's schedule with n steps (n + 1 noise levels), and the
 * error is the relative RMS error ||Z - Z_exact||_F / ||Z_exact||_F.  Orders
 * are fitted by the §6 rules (coarsest point dropped, points under the
 * round-off floor 100 eps dropped) and pass within +-0.15 of the method's
 * order.  Non-goals: mixtures with K >= 2 (no closed form; see catalogue C3
 * in the test suite).
 */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm order"
#define DEFAULT_OUT "gmm_order"
#define DEFAULT_SAMPLERS "euler,heun,rk4,dpm2,dpmpp-2m"
#define DEFAULT_STEPS "20,40,80,160,320"
#define DEFAULT_M 64

enum { OPT_SAMPLER = 1200, OPT_STEPS, OPT_SAMPLES };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm order [options]\n\n"
          "Order of accuracy of the PF-ODE samplers against the exact flow of the K = 1\n"
          "mixture N(0, U U^T), U = the fixture's first subspace (MATH.md §4.4, row C1):\n"
          "relative RMS error at sigma-min of M exact q^{sigma-max} draws decoded with\n"
          "n steps, and the fitted order (coarsest point and round-off points dropped),\n"
          "which passes within +-0.15 of Euler 1, Heun 2, RK4 4, DPM-2 2, DPM++(2M) 2.\n\n"
          "Options:\n"
          "      --sampler LIST      samplers, comma separated (euler, heun, rk4, dpm2,\n"
          "                          dpmpp-2m, midpoint) [" DEFAULT_SAMPLERS "]\n"
          "      --steps LIST        step counts n (n + 1 noise levels) [" DEFAULT_STEPS "]\n"
          "  -M, --samples N         points integrated [%d]\n",
          DEFAULT_M);
  gmm_fixture_help(f);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "\nExample: crate gmm order --json\n");
}

/* Applies the exact K = 1 flow s0 -> s1 to the rows of Z (M, d); Ut (p, d). */
static void exact_flow(const double *Ut, size_t p, size_t d, double s0, double s1, const double *Z,
                       double *out, size_t M) {
  double a = sqrt((1.0 + s1 * s1) / (1.0 + s0 * s0)), b = s1 / s0;
  for (size_t i = 0; i < M; i++) {
    const double *z = Z + i * d;
    double *o = out + i * d;
    for (size_t l = 0; l < d; l++)
      o[l] = b * z[l];
    for (size_t j = 0; j < p; j++) {
      double x = 0.0;
      for (size_t l = 0; l < d; l++)
        x += Ut[j * d + l] * z[l];
      for (size_t l = 0; l < d; l++)
        o[l] += (a - b) * Ut[j * d + l] * x;
    }
  }
}

static double rel_rms(const double *a, const double *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / den);
}

typedef struct run {
  crate_sampler_kind kinds[GMM_MAX_LIST];
  size_t steps[GMM_MAX_LIST];
  int nk, ns;
  size_t M;
  double err[GMM_MAX_LIST][GMM_MAX_LIST]; /* [sampler][steps] */
  double order[GMM_MAX_LIST];
  size_t used[GMM_MAX_LIST];
  bool pass[GMM_MAX_LIST];
} run;

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  crate_molrg *mix = NULL, *one = NULL;
  double *Z0 = NULL, *Zx = NULL, *Z = NULL;
  int rc = gmm_check(c, gmm_fixture_create(fx, &mix), "creating the mixture");
  if (rc != CLI_OK)
    return rc;
  crate_subspaces U = crate_molrg_subspaces(mix);
  size_t d = fx->d, p = U.p[0];
  crate_subspaces U1 = {d, 1, &p, U.Ut}; /* block 0 = U_1^T */
  rc = gmm_check(c, crate_molrg_create(&one, &U1, NULL), "creating the K = 1 target");
  if (rc != CLI_OK)
    goto done;
  Z0 = calloc(r->M * d, sizeof *Z0);
  Zx = calloc(r->M * d, sizeof *Zx);
  Z = calloc(r->M * d, sizeof *Z);
  if (!Z0 || !Zx || !Z) {
    rc = cli_fail(c->cmd, "out of memory (%zu points)", r->M);
    goto done;
  }
  crate_rng rng;
  crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
  rc = gmm_check(c, crate_molrg_sample(one, &rng, r->M, fx->sigma_max, Z0, NULL, NULL),
                 "drawing q^{sigma_max}");
  if (rc != CLI_OK)
    goto done;
  exact_flow(U.Ut, p, d, fx->sigma_max, fx->sigma_min, Z0, Zx, r->M);
  for (int k = 0; k < r->nk; k++) {
    const char *name = crate_sampler_name(r->kinds[k]);
    for (int i = 0; i < r->ns; i++) {
      double *grid = NULL;
      rc = gmm_check(c,
                     gmm_fixture_grid(fx, gmm_fixture_schedule_kind(fx), r->steps[i], false, &grid),
                     "building the %s grid of %zu steps", fx->schedule, r->steps[i]);
      if (rc != CLI_OK)
        goto done;
      memcpy(Z, Z0, r->M * d * sizeof *Z);
      int st = crate_molrg_integrate(one, r->kinds[k], grid, r->steps[i] + 1, Z, r->M, NULL);
      free(grid);
      rc = gmm_check(c, st, "%s, %zu steps", name, r->steps[i]);
      if (rc != CLI_OK)
        goto done;
      r->err[k][i] = rel_rms(Z, Zx, r->M * d);
      if (!isfinite(r->err[k][i])) {
        rc = cli_fail(c->cmd, "%s, %zu steps: non-finite error at sigma_min", name, r->steps[i]);
        goto done;
      }
      gmm_note(c, "order: %-8s steps=%-6zu rel RMS error %.3e\n", name, r->steps[i], r->err[k][i]);
    }
    r->order[k] = gmm_fit_order(r->steps, r->err[k], (size_t)r->ns, 100 * DBL_EPSILON, &r->used[k]);
    int want = crate_sampler_order(r->kinds[k]);
    r->pass[k] = fabs(r->order[k] - want) <= 0.15;
  }
done:
  free(Z0);
  free(Zx);
  free(Z);
  crate_molrg_destroy(one);
  crate_molrg_destroy(mix);
  return rc;
}

static void print_table(const gmm_fixture *fx, const run *r) {
  printf("Order of accuracy against the exact K=1 flow (MATH.md 4.4, row C1)\n"
         "relative RMS error at sigma_min = %g over %zu exact q^{sigma_max} draws, %s grid\n\n",
         fx->sigma_min, r->M, fx->schedule);
  printf("%8s", "steps");
  for (int k = 0; k < r->nk; k++)
    printf("  %10s", crate_sampler_name(r->kinds[k]));
  printf("\n");
  for (int i = 0; i < r->ns; i++) {
    printf("%8zu", r->steps[i]);
    for (int k = 0; k < r->nk; k++)
      printf("  %10.3e", r->err[k][i]);
    printf("\n");
  }
  printf("%8s", "order");
  for (int k = 0; k < r->nk; k++) {
    if (isfinite(r->order[k]))
      printf("  %10.3f", r->order[k]);
    else
      printf("  %10s", "n/a");
  }
  printf("\n%8s", "expected");
  for (int k = 0; k < r->nk; k++)
    printf("  %10d", crate_sampler_order(r->kinds[k]));
  printf("\n%8s", "result");
  for (int k = 0; k < r->nk; k++)
    printf("  %10s", r->pass[k] ? "PASS" : "FAIL");
  printf("\n\nFit: least squares of log error vs log steps without the coarsest point and\n"
         "points under 100 eps; pass when |order - expected| <= 0.15.\n");
}

static json_t *to_json(const gmm_fixture *fx, const run *r, const char *csv, const char *png) {
  json_t *o = json_object(), *slopes = json_object(), *exp = json_object(), *errs = json_object(),
         *pass = json_object(), *steps = json_array();
  bool all = true;
  for (int i = 0; i < r->ns; i++)
    json_array_append_new(steps, json_integer((json_int_t)r->steps[i]));
  for (int k = 0; k < r->nk; k++) {
    const char *key = gmm_sampler_key(r->kinds[k]);
    json_object_set_new(slopes, key, cli_json_num(r->order[k]));
    json_object_set_new(exp, key, json_integer(crate_sampler_order(r->kinds[k])));
    json_object_set_new(pass, key, json_boolean(r->pass[k]));
    json_t *e = json_array();
    for (int i = 0; i < r->ns; i++)
      json_array_append_new(e, cli_json_num(r->err[k][i]));
    json_object_set_new(errs, key, e);
    all = all && r->pass[k];
  }
  json_object_set_new(o, "command", json_string("gmm order"));
  json_object_set_new(o, "target", json_string("K=1 exact flow (MATH.md 4.4)"));
  json_object_set_new(o, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(o, "p", json_integer((json_int_t)fx->p[0]));
  json_object_set_new(o, "seed", json_integer((json_int_t)fx->seed));
  json_object_set_new(o, "sigma_min", json_real(fx->sigma_min));
  json_object_set_new(o, "sigma_max", json_real(fx->sigma_max));
  json_object_set_new(o, "schedule", json_string(fx->schedule));
  json_object_set_new(o, "rho", json_real(fx->rho));
  json_object_set_new(o, "samples", json_integer((json_int_t)r->M));
  json_object_set_new(o, "error", json_string("relative RMS at sigma_min"));
  json_object_set_new(o, "steps", steps);
  json_object_set_new(o, "errors", errs);
  json_object_set_new(o, "slopes", slopes);
  json_object_set_new(o, "expected", exp);
  json_object_set_new(o, "pass_each", pass);
  json_object_set_new(o, "pass", json_boolean(all));
  json_object_set_new(o, "csv", json_string(csv));
  json_object_set_new(o, "png", json_string(png));
  return o;
}

static int write_csv(const gmm_common *c, const run *r, char *path, size_t size) {
  FILE *f = gmm_open_out(c, ".csv", path, size);
  if (!f)
    return CLI_FAIL;
  fprintf(f, "sampler,steps,rel_rms_error,fitted_order,expected_order\n");
  for (int k = 0; k < r->nk; k++)
    for (int i = 0; i < r->ns; i++)
      fprintf(f, "%s,%zu,%.17g,%.6f,%d\n", crate_sampler_name(r->kinds[k]), r->steps[i],
              r->err[k][i], r->order[k], crate_sampler_order(r->kinds[k]));
  return gmm_close_out(c, f, path) ? CLI_OK : CLI_FAIL;
}

static int write_png(const gmm_common *c, const gmm_fixture *fx, const run *r) {
  double x[GMM_MAX_LIST];
  char labels[GMM_MAX_LIST][64], title[160];
  gmm_series s[GMM_MAX_LIST];
  for (int i = 0; i < r->ns; i++)
    x[i] = (double)r->steps[i];
  for (int k = 0; k < r->nk; k++) {
    if (isfinite(r->order[k]))
      snprintf(labels[k], sizeof labels[k], "%s (slope %.2f)", crate_sampler_name(r->kinds[k]),
               -r->order[k]);
    else
      snprintf(labels[k], sizeof labels[k], "%s", crate_sampler_name(r->kinds[k]));
    s[k] = (gmm_series){labels[k], x, r->err[k], (size_t)r->ns, false, 0, false};
  }
  snprintf(title, sizeof title,
           "Error vs the exact K=1 flow at \xcf\x83=%g (%s grid, d=%zu, p=%zu)", fx->sigma_min,
           fx->schedule, fx->d, fx->p[0]);
  gmm_chart ch = {title, "steps n", "relative RMS error", true, true, 0, 0, 0, 0};
  gmm_chart_steps_range(&ch, r->steps, (size_t)r->ns);
  return gmm_plot(c, &ch, s, (size_t)r->nk);
}

int gmm_order(int argc, char **argv) {
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
    default: break;
    }
    const int h = gmm_common_option(&c, &fx, opt, argv, usage);
    if (h >= 0)
      return h;
  }
  if (!gmm_common_no_positional(&c, argc, argv) || !gmm_fixture_finish(&fx, CMD))
    return CLI_USAGE;

  if (!c.quiet) {
    fprintf(stderr, "crate gmm order: ");
    gmm_fixture_describe(&fx, stderr);
    fprintf(stderr,
            "crate gmm order: target K=1 N(0, U U^T), U = subspace 1 (p=%zu); samples=%zu "
            "samplers=",
            fx.p[0], r.M);
    for (int k = 0; k < r.nk; k++)
      fprintf(stderr, "%s%s", k ? "," : "", crate_sampler_name(r.kinds[k]));
    fprintf(stderr, " steps=");
    for (int i = 0; i < r.ns; i++)
      fprintf(stderr, "%s%zu", i ? "," : "", r.steps[i]);
    fprintf(stderr, " out=%s\n", c.out);
  }
  int rc = compute(&c, &fx, &r);
  if (rc != CLI_OK)
    return rc;
  char csv[1024], png[1024];
  if ((rc = write_csv(&c, &r, csv, sizeof csv)) != CLI_OK)
    return rc;
  if ((rc = write_png(&c, &fx, &r)) != CLI_OK)
    return rc;
  gmm_path(png, sizeof png, c.out, ".png");
  bool all = true;
  for (int k = 0; k < r.nk; k++)
    all = all && r.pass[k];
  if (c.json)
    rc = gmm_json_print(&c, to_json(&fx, &r, csv, png));
  else
    print_table(&fx, &r);
  if (rc == CLI_OK && c.strict && !all)
    return cli_fail(CMD, "a fitted order is outside expected +-0.15 (--strict)");
  return rc;
}
