/* gmm_fixture.c: parsing and validation of the MoLRG fixture flags shared by
 * the `crate gmm` subcommands, the mixture they describe (MATH.md §3.1) and
 * the noise grids built from them (crate_schedule, MATH.md §4.5); see
 * gmm_fixture.h. */
#include "gmm_fixture.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void gmm_fixture_default(gmm_fixture *fx) {
  memset(fx, 0, sizeof *fx);
  fx->d = 6;
  fx->K = 3;
  for (size_t k = 0; k < GMM_MAX_K; k++) {
    fx->p[k] = 2;
    fx->pi[k] = 0.0;
  }
  fx->equal_weights = true;
  fx->kind = CRATE_SUBSPACES_INCOHERENT;
  fx->seed = 0;
  fx->sigma_min = 0.02;
  fx->sigma_max = 10.0;
  fx->rho = 7.0;
  fx->schedule = "karras";
}

/* Splits a comma list into at most GMM_MAX_K numbers; returns the count or -1. */
static int parse_list(const char *cmd, const char *flag, const char *s, double *out, bool integer) {
  char buf[1024];
  if (strlen(s) >= sizeof buf) {
    cli_usage_error(cmd, "%s: list too long", flag);
    return -1;
  }
  strcpy(buf, s);
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (n == GMM_MAX_K) {
      cli_usage_error(cmd, "%s: at most %d entries", flag, GMM_MAX_K);
      return -1;
    }
    if (integer) {
      long v;
      if (!cli_parse_long(cmd, flag, tok, 1, 1 << 20, &v))
        return -1;
      out[n++] = (double)v;
    } else {
      double v;
      if (!cli_parse_double(cmd, flag, tok, 0.0, 1.0, &v))
        return -1;
      out[n++] = v;
    }
  }
  if (n == 0) {
    cli_usage_error(cmd, "%s: empty list", flag);
    return -1;
  }
  return n;
}

int gmm_fixture_parse(gmm_fixture *fx, const char *cmd, int opt, const char *arg) {
  long v;
  switch (opt) {
  case GMM_OPT_D:
    if (!cli_parse_long(cmd, "--d", arg, 1, 4096, &v))
      return -1;
    fx->d = (size_t)v;
    return 1;
  case GMM_OPT_K:
    if (!cli_parse_long(cmd, "--K", arg, 1, GMM_MAX_K, &v))
      return -1;
    fx->K = (size_t)v;
    return 1;
  case GMM_OPT_P: fx->p_arg = arg; return 1;
  case GMM_OPT_PI: fx->pi_arg = arg; return 1;
  case GMM_OPT_SUBSPACES:
    if (!strcmp(arg, "orthogonal"))
      fx->kind = CRATE_SUBSPACES_ORTHOGONAL;
    else if (!strcmp(arg, "incoherent") || !strcmp(arg, "random"))
      fx->kind = CRATE_SUBSPACES_INCOHERENT;
    else {
      cli_usage_error(cmd, "--subspaces must be 'incoherent' or 'orthogonal', got '%s'", arg);
      return -1;
    }
    return 1;
  case GMM_OPT_SEED: fx->seed_set = true; return cli_parse_seed(cmd, arg, &fx->seed) ? 1 : -1;
  case GMM_OPT_SIGMA_MIN:
    return cli_parse_double(cmd, "--sigma-min", arg, -INFINITY, INFINITY, &fx->sigma_min) ? 1 : -1;
  case GMM_OPT_SIGMA_MAX:
    return cli_parse_double(cmd, "--sigma-max", arg, -INFINITY, INFINITY, &fx->sigma_max) ? 1 : -1;
  case GMM_OPT_RHO: return cli_parse_double(cmd, "--rho", arg, 0.5, 100.0, &fx->rho) ? 1 : -1;
  case GMM_OPT_SCHEDULE:
    if (strcmp(arg, "karras") && strcmp(arg, "exp") && strcmp(arg, "uniform")) {
      cli_usage_error(cmd, "--schedule must be karras, exp or uniform, got '%s'", arg);
      return -1;
    }
    fx->schedule = arg;
    return 1;
  default: return 0;
  }
}

bool gmm_fixture_finish(gmm_fixture *fx, const char *cmd) {
  double tmp[GMM_MAX_K];
  const char *env = getenv("CRATE_SEED");
  if (!fx->seed_set && env && *env) {
    if (!cli_parse_seed(cmd, env, &fx->seed)) {
      fprintf(stderr, "crate %s: (the seed came from the environment: CRATE_SEED='%s')\n", cmd,
              env);
      return false;
    }
    fx->seed_set = true;
  }
  if (fx->p_arg) {
    int n = parse_list(cmd, "--p", fx->p_arg, tmp, true);
    if (n < 0)
      return false;
    if (n != 1 && (size_t)n != fx->K) {
      cli_usage_error(cmd, "--p lists %d ranks but --K is %zu (give one rank or K of them)", n,
                      fx->K);
      return false;
    }
    for (size_t k = 0; k < fx->K; k++)
      fx->p[k] = (size_t)tmp[n == 1 ? 0 : k];
  }
  size_t total = 0;
  for (size_t k = 0; k < fx->K; k++) {
    if (fx->p[k] > fx->d) {
      cli_usage_error(cmd, "rank p_%zu = %zu is larger than the ambient dimension d = %zu", k + 1,
                      fx->p[k], fx->d);
      return false;
    }
    total += fx->p[k];
  }
  if (fx->kind == CRATE_SUBSPACES_ORTHOGONAL && total > fx->d) {
    cli_usage_error(cmd, "orthogonal subspaces need sum of ranks (%zu) <= d (%zu)", total, fx->d);
    return false;
  }
  if (fx->pi_arg) {
    int n = parse_list(cmd, "--pi", fx->pi_arg, tmp, false);
    if (n < 0)
      return false;
    if ((size_t)n != fx->K) {
      cli_usage_error(cmd, "--pi lists %d weights but --K is %zu", n, fx->K);
      return false;
    }
    double s = 0;
    for (size_t k = 0; k < fx->K; k++) {
      if (!(tmp[k] > 0)) {
        cli_usage_error(cmd, "--pi: weight %zu must be positive, got %g", k + 1, tmp[k]);
        return false;
      }
      fx->pi[k] = tmp[k];
      s += tmp[k];
    }
    if (fabs(s - 1.0) > 1e-6) {
      cli_usage_error(cmd, "--pi: weights must sum to 1, they sum to %.9g", s);
      return false;
    }
    for (size_t k = 0; k < fx->K; k++)
      fx->pi[k] /= s; /* remove rounding of the printed weights */
    fx->equal_weights = false;
  } else {
    for (size_t k = 0; k < fx->K; k++)
      fx->pi[k] = 1.0 / (double)fx->K;
  }
  if (!(fx->sigma_min > 0) || !(fx->sigma_max > 0)) {
    cli_usage_error(cmd, "noise levels must be positive (sigma-min %g, sigma-max %g)",
                    fx->sigma_min, fx->sigma_max);
    return false;
  }
  /* sigma^2 must be a normal double for the closed forms (MATH.md §3.8). */
  if (fx->sigma_min < 1e-150 || fx->sigma_max > 1e150) {
    cli_usage_error(cmd, "noise levels must lie in [1e-150, 1e150] (sigma-min %g, sigma-max %g)",
                    fx->sigma_min, fx->sigma_max);
    return false;
  }
  if (fx->sigma_min >= fx->sigma_max) {
    cli_usage_error(cmd, "--sigma-min (%g) must be below --sigma-max (%g)", fx->sigma_min,
                    fx->sigma_max);
    return false;
  }
  return true;
}

void gmm_fixture_help(FILE *f) {
  fprintf(f, "\nFixture (MATH.md default fixture):\n"
             "      --d N               ambient dimension [6]\n"
             "      --K N               number of subspaces [3]\n"
             "      --p P[,P...]        subspace ranks, one or K of them [2]\n"
             "      --pi W,W,...        mixture weights, K of them, summing to 1 [equal]\n"
             "      --subspaces KIND    incoherent (independent random bases) or orthogonal\n"
             "                          [incoherent]\n"
             "  -s, --seed N            seed for bases (stream INIT) and draws (NOISE, PROBE);\n"
             "                          -1 = random [0, or $CRATE_SEED]\n"
             "      --sigma-min S       smallest noise level [0.02]\n"
             "      --sigma-max S       largest noise level [10]\n"
             "      --schedule NAME     karras, exp or uniform [karras]\n"
             "      --rho R             Karras schedule exponent [7]\n");
}

void gmm_fixture_describe(const gmm_fixture *fx, FILE *f) {
  fprintf(f, "fixture: d=%zu K=%zu p=", fx->d, fx->K);
  for (size_t k = 0; k < fx->K; k++)
    fprintf(f, "%s%zu", k ? "," : "", fx->p[k]);
  fprintf(f, " pi=");
  for (size_t k = 0; k < fx->K; k++)
    fprintf(f, "%s%.3g", k ? "," : "", fx->pi[k]);
  fprintf(f, " subspaces=%s seed=%llu sigma=[%g, %g] schedule=%s rho=%g\n",
          fx->kind == CRATE_SUBSPACES_ORTHOGONAL ? "orthogonal" : "incoherent",
          (unsigned long long)fx->seed, fx->sigma_min, fx->sigma_max, fx->schedule, fx->rho);
}

int gmm_fixture_create(const gmm_fixture *fx, crate_molrg **out) {
  crate_rng rng;
  crate_rng_init(&rng, fx->seed, CRATE_RNG_INIT);
  return crate_molrg_create_random(out, fx->d, fx->K, fx->p, fx->pi, fx->kind, &rng);
}

crate_schedule_kind gmm_fixture_schedule_kind(const gmm_fixture *fx) {
  if (!strcmp(fx->schedule, "exp"))
    return CRATE_SCHEDULE_EXPONENTIAL;
  if (!strcmp(fx->schedule, "uniform"))
    return CRATE_SCHEDULE_UNIFORM;
  return CRATE_SCHEDULE_KARRAS;
}

int gmm_fixture_grid(const gmm_fixture *fx, crate_schedule_kind kind, size_t steps, bool increasing,
                     double **out) {
  *out = NULL;
  if (steps == 0 || steps > (size_t)1 << 24)
    return CRATE_STATUS_EINVAL;
  double *g = calloc(steps + 1, sizeof *g);
  if (!g)
    return CRATE_STATUS_ENOMEM;
  int st = crate_schedule(g, kind, steps + 1, fx->sigma_min, fx->sigma_max, fx->rho, false);
  if (st == CRATE_STATUS_OK && increasing)
    st = crate_schedule_reverse(g, g, steps + 1);
  if (st != CRATE_STATUS_OK) {
    free(g);
    return st;
  }
  *out = g;
  return CRATE_STATUS_OK;
}
