/* gmm_likelihood.c: `crate gmm likelihood`, log-likelihood by the
 * instantaneous change of variables (MATH.md §4.8; catalogue row C6).
 *
 * M exact draws x of q^{sigma_min} are encoded up to sigma_max on the
 * reversed fixture grid of n steps together with Lambda = int div F dsigma
 * (crate_molrg_loglik), and
 *
 *   log q^{sigma_min}(x) = log q^{sigma_max}(z(sigma_max)) + Lambda(sigma_max)
 *
 * is compared with the closed form of §3.2.  The divergence is exact,
 * (d - tr C / sigma^2) / sigma; with --hutchinson R it is also estimated
 * with R probes per evaluation, which is unbiased: the Hutchinson minus
 * exact-divergence results, point by point at the same n, must average to 0
 * within 4 standard errors.  The error is max_i |log q_i - exact_i| and its
 * order (fit rules of §6, round-off floor 100 eps max|log q|) must match the
 * method's order within +-0.15.  The default step counts start at 40: the
 * RK4 likelihood error has a large fifth-order term that bends the fit over
 * 20..320.  Non-goals: the Gaussian prior (prior mismatch, see row C8).
 */
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gmm.h"
#include "gmm_common.h"

#define CMD "gmm likelihood"
#define DEFAULT_OUT "gmm_likelihood"
#define DEFAULT_SAMPLERS "euler,heun,rk4,dpm2,dpmpp-2m"
#define DEFAULT_STEPS "40,80,160,320,640,1280"
#define DEFAULT_M 64

enum { OPT_SAMPLER = 1200, OPT_STEPS, OPT_SAMPLES, OPT_HUTCH, OPT_PROBE };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate gmm likelihood [options]\n\n"
          "Log-likelihood log q^{sigma-min}(x) of M exact draws by the change of variables\n"
          "(encode to sigma-max integrating div F; MATH.md 4.8, row C6) against the\n"
          "closed form: max abs error vs steps per sampler and fitted orders (pass within\n"
          "+-0.15 of the method's order).  With --hutchinson R the divergence is also\n"
          "estimated with R probes; its mean difference from the exact-divergence result\n"
          "must be within 4 standard errors of 0.\n\n"
          "Options:\n"
          "      --sampler LIST      samplers, comma separated (euler, heun, rk4, dpm2,\n"
          "                          dpmpp-2m, midpoint) [" DEFAULT_SAMPLERS "]\n"
          "      --steps LIST        ODE step counts n [" DEFAULT_STEPS "]\n"
          "                          (a grid of n + 1 noise levels)\n"
          "  -M, --samples N         points [%d]\n"
          "      --hutchinson R      also run Hutchinson with R probes per evaluation [off]\n"
          "      --probe KIND        Hutchinson probes: rademacher or gaussian [rademacher]\n",
          DEFAULT_M);
  gmm_fixture_help(f);
  gmm_common_help(f, DEFAULT_OUT);
  fprintf(f, "\nExample: crate gmm likelihood --sampler heun,rk4 --hutchinson 4\n");
}

typedef struct run {
  crate_sampler_kind kinds[GMM_MAX_LIST];
  size_t steps[GMM_MAX_LIST];
  int nk, ns;
  size_t M, probes; /* probes = 0: exact divergence only */
  crate_divergence_kind probe;
  double scale;                           /* max |log q| */
  double err[GMM_MAX_LIST][GMM_MAX_LIST]; /* max abs error, exact div */
  double mean_err[GMM_MAX_LIST][GMM_MAX_LIST];
  double order[GMM_MAX_LIST];
  bool pass[GMM_MAX_LIST];
  double h_err[GMM_MAX_LIST][GMM_MAX_LIST];  /* Hutchinson: mean abs error vs closed form */
  double h_diff[GMM_MAX_LIST][GMM_MAX_LIST]; /* mean(hutch - exact div) */
  double h_se[GMM_MAX_LIST][GMM_MAX_LIST];
  bool h_pass[GMM_MAX_LIST];
} run;

static void mean_se(const double *x, size_t n, double *mean, double *se) {
  double m = 0.0, v = 0.0;
  for (size_t i = 0; i < n; i++)
    m += x[i];
  m /= (double)n;
  for (size_t i = 0; i < n; i++)
    v += (x[i] - m) * (x[i] - m);
  v /= (double)(n > 1 ? n - 1 : 1);
  *mean = m;
  *se = sqrt(v / (double)n);
}

static int compute(const gmm_common *c, const gmm_fixture *fx, run *r) {
  crate_molrg *mix = NULL;
  size_t M = r->M, d = fx->d;
  double *X = calloc(M * d, sizeof *X), *exact = calloc(M, sizeof *exact),
         *lq = calloc(M, sizeof *lq), *hq = calloc(M, sizeof *hq), *diff = calloc(M, sizeof *diff);
  int rc = CLI_OK;
  if (!X || !exact || !lq || !hq || !diff) {
    rc = cli_fail(c->cmd, "out of memory (%zu points)", M);
    goto done;
  }
  if ((rc = gmm_check(c, gmm_fixture_create(fx, &mix), "creating the mixture")) != CLI_OK)
    goto done;
  crate_rng rng;
  crate_rng_init(&rng, fx->seed, CRATE_RNG_NOISE);
  rc = gmm_check(c, crate_molrg_sample(mix, &rng, M, fx->sigma_min, X, NULL, NULL),
                 "drawing q^{sigma_min}");
  if (rc != CLI_OK)
    goto done;
  crate_molrg_post post = {0};
  post.logq = exact;
  rc = gmm_check(c, crate_molrg_posterior(mix, X, M, fx->sigma_min, &post),
                 "closed-form log q^{sigma_min}");
  if (rc != CLI_OK)
    goto done;
  r->scale = 0.0;
  for (size_t i = 0; i < M; i++)
    r->scale = fmax(r->scale, fabs(exact[i]));
  for (int k = 0; k < r->nk; k++) {
    const char *name = crate_sampler_name(r->kinds[k]);
    r->h_pass[k] = true;
    for (int i = 0; i < r->ns; i++) {
      size_t n = r->steps[i];
      double *up = NULL;
      rc = gmm_check(c, gmm_fixture_grid(fx, gmm_fixture_schedule_kind(fx), n, true, &up),
                     "%s grid of %zu steps", fx->schedule, n);
      if (rc != CLI_OK)
        goto done;
      crate_loglik_opts o = crate_loglik_opts_default();
      o.sampler = r->kinds[k];
      crate_loglik_out out = {lq, NULL, NULL, NULL};
      rc = gmm_check(c, crate_molrg_loglik(mix, X, M, up, n + 1, &o, &out),
                     "%s, %zu steps, exact divergence", name, n);
      if (rc == CLI_OK && r->probes > 0) {
        crate_rng pr;
        crate_rng_init_at(&pr, fx->seed, CRATE_RNG_PROBE, (uint32_t)k, (uint32_t)i);
        o.divergence = r->probe;
        o.probes = r->probes;
        o.rng = &pr;
        out.logq = hq;
        rc = gmm_check(c, crate_molrg_loglik(mix, X, M, up, n + 1, &o, &out),
                       "%s, %zu steps, Hutchinson", name, n);
      }
      free(up);
      if (rc != CLI_OK)
        goto done;
      double e = 0.0, s = 0.0;
      for (size_t j = 0; j < M; j++) {
        e = fmax(e, fabs(lq[j] - exact[j]));
        s += fabs(lq[j] - exact[j]);
      }
      r->err[k][i] = e;
      r->mean_err[k][i] = s / (double)M;
      if (!isfinite(e)) {
        rc = cli_fail(c->cmd, "%s, %zu steps: non-finite log-likelihood", name, n);
        goto done;
      }
      gmm_note(c, "likelihood: %-8s steps=%-6zu max |error| %.3e", name, n, e);
      if (r->probes > 0) {
        double he = 0.0;
        for (size_t j = 0; j < M; j++) {
          he += fabs(hq[j] - exact[j]);
          diff[j] = hq[j] - lq[j];
        }
        r->h_err[k][i] = he / (double)M;
        mean_se(diff, M, &r->h_diff[k][i], &r->h_se[k][i]);
        if (!isfinite(r->h_err[k][i])) {
          rc = cli_fail(c->cmd, "%s, %zu steps: non-finite Hutchinson log-likelihood", name, n);
          goto done;
        }
        if (!(fabs(r->h_diff[k][i]) <= 4.0 * r->h_se[k][i]))
          r->h_pass[k] = false;
        gmm_note(c, "; Hutchinson - exact div %+.3e (SE %.3e)", r->h_diff[k][i], r->h_se[k][i]);
      }
      gmm_note(c, "\n");
    }
    r->order[k] = gmm_fit_order(r->steps, r->err[k], (size_t)r->ns,
                                100 * DBL_EPSILON * fmax(r->scale, 1.0), NULL);
    r->pass[k] = fabs(r->order[k] - crate_sampler_order(r->kinds[k])) <= 0.15;
  }
done:
  free(X);
  free(exact);
  free(lq);
  free(hq);
  free(diff);
  crate_molrg_destroy(mix);
  return rc;
}

static void print_table(const gmm_fixture *fx, const run *r) {
  printf("Log-likelihood by change of variables (MATH.md 4.8, row C6)\n"
         "max |log q - closed form| over %zu exact q^{sigma_min} draws (|log q| <= %.2f),\n"
         "exact divergence, closed-form prior, %s grid from sigma %g up to %g\n\n",
         r->M, r->scale, fx->schedule, fx->sigma_min, fx->sigma_max);
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
    printf("  %10s", !isfinite(r->order[k]) ? "n/a" : r->pass[k] ? "PASS" : "FAIL");
  printf("\n\nFit: least squares of log error vs log steps without the coarsest point and\n"
         "points under 100 eps max|log q|; pass when |order - expected| <= 0.15.\n");
  if (r->probes == 0)
    return;
  printf("\nHutchinson divergence, %zu %s probe%s per evaluation: mean |log q - closed form|\n"
         "and mean (Hutchinson - exact divergence) +- SE over the points (pass: within 4 SE)\n",
         r->probes, r->probe == CRATE_DIVERGENCE_GAUSSIAN ? "Gaussian" : "Rademacher",
         r->probes == 1 ? "" : "s");
  printf("%8s  %10s  %10s  %10s  %11s  %6s\n", "steps", "sampler", "mean |err|", "mean diff", "SE",
         "z");
  for (int k = 0; k < r->nk; k++)
    for (int i = 0; i < r->ns; i++)
      printf("%8zu  %10s  %10.3e  %+10.3e  %11.3e  %6.2f\n", r->steps[i],
             crate_sampler_name(r->kinds[k]), r->h_err[k][i], r->h_diff[k][i], r->h_se[k][i],
             r->h_se[k][i] > 0 ? r->h_diff[k][i] / r->h_se[k][i] : 0.0);
  printf("%8s", "result");
  for (int k = 0; k < r->nk; k++)
    printf("  %s %s", crate_sampler_name(r->kinds[k]), r->h_pass[k] ? "PASS" : "FAIL");
  printf("\n");
}

static json_t *to_json(const gmm_fixture *fx, const run *r, const char *csv, const char *png) {
  json_t *o = json_object(), *slopes = json_object(), *exp = json_object(), *errs = json_object(),
         *merrs = json_object(), *steps = json_array();
  bool all = true;
  for (int i = 0; i < r->ns; i++)
    json_array_append_new(steps, json_integer((json_int_t)r->steps[i]));
  for (int k = 0; k < r->nk; k++) {
    const char *key = gmm_sampler_key(r->kinds[k]);
    json_object_set_new(slopes, key, cli_json_num(r->order[k]));
    json_object_set_new(exp, key, json_integer(crate_sampler_order(r->kinds[k])));
    json_t *e = json_array(), *me = json_array();
    for (int i = 0; i < r->ns; i++) {
      json_array_append_new(e, cli_json_num(r->err[k][i]));
      json_array_append_new(me, cli_json_num(r->mean_err[k][i]));
    }
    json_object_set_new(errs, key, e);
    json_object_set_new(merrs, key, me);
    all = all && (r->pass[k] || !isfinite(r->order[k]));
  }
  json_object_set_new(o, "command", json_string("gmm likelihood"));
  json_object_set_new(o, "d", json_integer((json_int_t)fx->d));
  json_object_set_new(o, "K", json_integer((json_int_t)fx->K));
  json_object_set_new(o, "seed", json_integer((json_int_t)fx->seed));
  json_object_set_new(o, "sigma_min", json_real(fx->sigma_min));
  json_object_set_new(o, "sigma_max", json_real(fx->sigma_max));
  json_object_set_new(o, "schedule", json_string(fx->schedule));
  json_object_set_new(o, "samples", json_integer((json_int_t)r->M));
  json_object_set_new(o, "logq_scale", json_real(r->scale));
  json_object_set_new(o, "error", json_string("max abs error of log q^{sigma_min}"));
  json_object_set_new(o, "steps", steps);
  json_object_set_new(o, "errors", errs);
  json_object_set_new(o, "mean_errors", merrs);
  json_object_set_new(o, "slopes", slopes);
  json_object_set_new(o, "expected", exp);
  if (r->probes > 0) {
    json_t *h = json_object();
    json_object_set_new(h, "probes", json_integer((json_int_t)r->probes));
    json_object_set_new(
        h, "probe", json_string(r->probe == CRATE_DIVERGENCE_GAUSSIAN ? "gaussian" : "rademacher"));
    for (int k = 0; k < r->nk; k++) {
      json_t *s = json_object(), *me = json_array(), *md = json_array(), *se = json_array();
      for (int i = 0; i < r->ns; i++) {
        json_array_append_new(me, cli_json_num(r->h_err[k][i]));
        json_array_append_new(md, cli_json_num(r->h_diff[k][i]));
        json_array_append_new(se, cli_json_num(r->h_se[k][i]));
      }
      json_object_set_new(s, "mean_errors", me);
      json_object_set_new(s, "mean_diff_vs_exact_div", md);
      json_object_set_new(s, "se", se);
      json_object_set_new(s, "pass", json_boolean(r->h_pass[k]));
      json_object_set_new(h, gmm_sampler_key(r->kinds[k]), s);
      all = all && r->h_pass[k];
    }
    json_object_set_new(o, "hutchinson", h);
  }
  json_object_set_new(o, "pass", json_boolean(all));
  json_object_set_new(o, "csv", json_string(csv));
  json_object_set_new(o, "png", json_string(png));
  return o;
}

static int write_csv(const gmm_common *c, const run *r, char *path, size_t size) {
  FILE *f = gmm_open_out(c, ".csv", path, size);
  if (!f)
    return CLI_FAIL;
  fprintf(f, "sampler,steps,max_abs_error,mean_abs_error,fitted_order,expected_order");
  if (r->probes > 0)
    fprintf(f, ",hutchinson_mean_abs_error,hutchinson_minus_exact_mean,hutchinson_se");
  fprintf(f, "\n");
  for (int k = 0; k < r->nk; k++)
    for (int i = 0; i < r->ns; i++) {
      fprintf(f, "%s,%zu,%.17g,%.17g,%.6f,%d", crate_sampler_name(r->kinds[k]), r->steps[i],
              r->err[k][i], r->mean_err[k][i], r->order[k], crate_sampler_order(r->kinds[k]));
      if (r->probes > 0)
        fprintf(f, ",%.17g,%.17g,%.17g", r->h_err[k][i], r->h_diff[k][i], r->h_se[k][i]);
      fprintf(f, "\n");
    }
  return gmm_close_out(c, f, path) ? CLI_OK : CLI_FAIL;
}

static int write_png(const gmm_common *c, const gmm_fixture *fx, const run *r) {
  double x[GMM_MAX_LIST];
  static char labels[2 * GMM_MAX_LIST][96];
  gmm_series s[2 * GMM_MAX_LIST];
  size_t ns = 0;
  char title[200];
  for (int i = 0; i < r->ns; i++)
    x[i] = (double)r->steps[i];
  for (int k = 0; k < r->nk; k++) {
    if (isfinite(r->order[k]))
      snprintf(labels[ns], sizeof labels[ns], "%s (slope %.2f)", crate_sampler_name(r->kinds[k]),
               -r->order[k]);
    else
      snprintf(labels[ns], sizeof labels[ns], "%s", crate_sampler_name(r->kinds[k]));
    s[ns] = (gmm_series){labels[ns], x, r->err[k], (size_t)r->ns, false, k + 1, false};
    ns++;
  }
  if (r->probes > 0)
    for (int k = 0; k < r->nk; k++) {
      snprintf(labels[ns], sizeof labels[ns], "%s, Hutchinson R=%zu (mean |err|)",
               crate_sampler_name(r->kinds[k]), r->probes);
      s[ns] = (gmm_series){labels[ns], x, r->h_err[k], (size_t)r->ns, false, k + 1, true};
      ns++;
    }
  snprintf(title, sizeof title, "Log-likelihood error at \xcf\x83=%g (%s grid, d=%zu, K=%zu)",
           fx->sigma_min, fx->schedule, fx->d, fx->K);
  gmm_chart ch = {title, "steps n", "max |log q - closed form|", true, true, 0, 0, 0, 0};
  gmm_chart_steps_range(&ch, r->steps, (size_t)r->ns);
  return gmm_plot(c, &ch, s, ns);
}

int gmm_likelihood(int argc, char **argv) {
  gmm_common c;
  gmm_fixture fx;
  gmm_common_default(&c, CMD, DEFAULT_OUT);
  gmm_fixture_default(&fx);
  static run r; /* large; one per process */
  memset(&r, 0, sizeof r);
  r.M = DEFAULT_M;
  r.probe = CRATE_DIVERGENCE_RADEMACHER;
  r.nk = gmm_parse_samplers(CMD, "--sampler", DEFAULT_SAMPLERS, r.kinds);
  r.ns = gmm_parse_steps(CMD, "--steps", DEFAULT_STEPS, r.steps);
  static const struct option longopts[] = {{"sampler", required_argument, NULL, OPT_SAMPLER},
                                           {"steps", required_argument, NULL, OPT_STEPS},
                                           {"samples", required_argument, NULL, OPT_SAMPLES},
                                           {"hutchinson", required_argument, NULL, OPT_HUTCH},
                                           {"probe", required_argument, NULL, OPT_PROBE},
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
      if (!cli_parse_long(CMD, "--samples", optarg, 2, 1000000, &v))
        return CLI_USAGE;
      r.M = (size_t)v;
      continue;
    case OPT_HUTCH:
      if (!cli_parse_long(CMD, "--hutchinson", optarg, 1, 100000, &v))
        return CLI_USAGE;
      r.probes = (size_t)v;
      continue;
    case OPT_PROBE:
      if (!strcmp(optarg, "rademacher"))
        r.probe = CRATE_DIVERGENCE_RADEMACHER;
      else if (!strcmp(optarg, "gaussian"))
        r.probe = CRATE_DIVERGENCE_GAUSSIAN;
      else
        return cli_usage_error(CMD, "--probe must be rademacher or gaussian, got '%s'", optarg);
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
    fprintf(stderr, "crate gmm likelihood: ");
    gmm_fixture_describe(&fx, stderr);
    fprintf(stderr, "crate gmm likelihood: samples=%zu samplers=", r.M);
    for (int k = 0; k < r.nk; k++)
      fprintf(stderr, "%s%s", k ? "," : "", crate_sampler_name(r.kinds[k]));
    fprintf(stderr, " steps=");
    for (int i = 0; i < r.ns; i++)
      fprintf(stderr, "%s%zu", i ? "," : "", r.steps[i]);
    if (r.probes > 0)
      fprintf(stderr, " hutchinson=%zu %s", r.probes,
              r.probe == CRATE_DIVERGENCE_GAUSSIAN ? "gaussian" : "rademacher");
    fprintf(stderr, " prior=closed-form out=%s\n", c.out);
  }
  int rc = compute(&c, &fx, &r);
  char csv[1024], png[1024];
  if (rc == CLI_OK)
    rc = write_csv(&c, &r, csv, sizeof csv);
  if (rc == CLI_OK)
    rc = write_png(&c, &fx, &r);
  if (rc != CLI_OK)
    return rc;
  gmm_path(png, sizeof png, c.out, ".png");
  bool all = true;
  for (int k = 0; k < r.nk; k++)
    all = all && (r.pass[k] || !isfinite(r.order[k])) && (r.probes == 0 || r.h_pass[k]);
  if (c.json)
    rc = gmm_json_print(&c, to_json(&fx, &r, csv, png));
  else
    print_table(&fx, &r);
  if (rc == CLI_OK && c.strict && !all)
    return cli_fail(CMD, "a pass criterion failed (--strict)");
  return rc;
}
