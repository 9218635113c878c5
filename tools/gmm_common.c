/* gmm_common.c: flags, list parsing, slope fits, JSON and file helpers
 * shared by the `crate gmm` experiment subcommands (see gmm_common.h;
 * slope-fit rules of MATH.md §6). */
#include "gmm_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crate/plot.h"

void gmm_common_default(gmm_common *c, const char *cmd, const char *default_out) {
  memset(c, 0, sizeof *c);
  c->cmd = cmd;
  c->out = default_out;
}

int gmm_common_parse(gmm_common *c, gmm_fixture *fx, int opt, const char *arg) {
  switch (opt) {
  case 'h': return 2;
  case GMM_OPT_JSON: c->json = true; return 1;
  case 'q': c->quiet = true; return 1;
  case GMM_OPT_STRICT: c->strict = true; return 1;
  case 'o':
    if (!arg || !*arg) {
      cli_usage_error(c->cmd, "--out expects a file prefix");
      return -1;
    }
    c->out = arg;
    return 1;
  case 's': return gmm_fixture_parse(fx, c->cmd, GMM_OPT_SEED, arg);
  default: return gmm_fixture_parse(fx, c->cmd, opt, arg);
  }
}

int gmm_common_getopt_error(const gmm_common *c, int opt, char **argv) {
  const char *bad = argv[optind - 1];
  if (opt == ':')
    return cli_usage_error(c->cmd, "option '%s' needs a value", bad);
  if (optopt && optopt < 256 && strncmp(bad, "--", 2) != 0)
    return cli_usage_error(c->cmd, "unknown option '-%c'", optopt);
  return cli_usage_error(c->cmd, "unknown option '%s'", bad);
}

int gmm_common_option(gmm_common *c, gmm_fixture *fx, int opt, char **argv,
                      void (*usage)(FILE *f)) {
  if (opt == '?' || opt == ':')
    return gmm_common_getopt_error(c, opt, argv);
  const int h = gmm_common_parse(c, fx, opt, optarg);
  if (h == 2) {
    usage(stdout);
    return CLI_OK;
  }
  if (h <= 0)
    return h < 0 ? CLI_USAGE : gmm_common_getopt_error(c, '?', argv);
  return -1;
}

bool gmm_common_no_positional(const gmm_common *c, int argc, char **argv) {
  if (optind < argc) {
    cli_usage_error(c->cmd, "unexpected argument '%s'", argv[optind]);
    return false;
  }
  return true;
}

void gmm_common_help(FILE *f, const char *default_out) {
  fprintf(f,
          "\nOutput:\n"
          "  -o, --out PREFIX        write PREFIX.csv and PREFIX.png [%s]\n"
          "      --json              print one JSON object on stdout instead of the table\n"
          "      --strict            exit 1 when a pass criterion fails [off: report only]\n"
          "  -q, --quiet             no configuration, progress or file notes on stderr\n"
          "  -h, --help              show this help and exit\n",
          default_out);
}

void gmm_note(const gmm_common *c, const char *fmt, ...) {
  if (c->quiet)
    return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

/* ---- lists ------------------------------------------------------------------------------ */

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* Copies arg into buf; false (usage error) if too long or empty. */
static bool copy_list(const char *cmd, const char *flag, const char *arg, char *buf, size_t size) {
  if (!arg || !*arg) {
    cli_usage_error(cmd, "%s expects a value", flag);
    return false;
  }
  if (strlen(arg) >= size) {
    cli_usage_error(cmd, "%s: list too long", flag);
    return false;
  }
  strcpy(buf, arg);
  return true;
}

int gmm_parse_steps(const char *cmd, const char *flag, const char *arg, size_t *out) {
  char buf[512];
  if (!copy_list(cmd, flag, arg, buf, sizeof buf))
    return -1;
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (n == GMM_MAX_LIST) {
      cli_usage_error(cmd, "%s: at most %d step counts", flag, GMM_MAX_LIST);
      return -1;
    }
    long v;
    if (!cli_parse_long(cmd, flag, tok, 1, 1000000, &v))
      return -1;
    out[n++] = (size_t)v;
  }
  if (n == 0) {
    cli_usage_error(cmd, "%s: empty list", flag);
    return -1;
  }
  qsort(out, (size_t)n, sizeof *out, cmp_size);
  for (int i = 1; i < n; i++)
    if (out[i] == out[i - 1]) {
      cli_usage_error(cmd, "%s: step count %zu listed twice", flag, out[i]);
      return -1;
    }
  return n;
}

int gmm_parse_samplers(const char *cmd, const char *flag, const char *arg,
                       crate_sampler_kind *out) {
  char buf[512];
  if (!copy_list(cmd, flag, arg, buf, sizeof buf))
    return -1;
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (n == GMM_MAX_LIST) {
      cli_usage_error(cmd, "%s: at most %d samplers", flag, GMM_MAX_LIST);
      return -1;
    }
    crate_sampler_kind k;
    if (crate_sampler_parse(tok, &k) != CRATE_STATUS_OK) {
      crate_error_clear();
      cli_usage_error(cmd, "%s: unknown sampler '%s' (euler, heun, rk4, dpm2, dpmpp-2m, midpoint)",
                      flag, tok);
      return -1;
    }
    for (int i = 0; i < n; i++)
      if (out[i] == k) {
        cli_usage_error(cmd, "%s: sampler '%s' listed twice", flag, tok);
        return -1;
      }
    out[n++] = k;
  }
  if (n == 0) {
    cli_usage_error(cmd, "%s: empty list", flag);
    return -1;
  }
  return n;
}

const char *gmm_sampler_key(crate_sampler_kind kind) {
  return kind == CRATE_SAMPLER_DPMPP_2M ? "dpmpp2m" : crate_sampler_name(kind);
}

/* ---- numbers ------------------------------------------------------------------------------ */

double gmm_loglog_slope(const double *x, const double *y, size_t n) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; i++) {
    double lx = log(x[i]), ly = log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  double dn = (double)n;
  return (dn * sxy - sx * sy) / (dn * sxx - sx * sx);
}

double gmm_fit_order(const size_t *steps, const double *err, size_t cnt, double floor,
                     size_t *used) {
  double x[GMM_MAX_LIST], y[GMM_MAX_LIST];
  size_t k = 0;
  for (size_t i = 1; i < cnt && k < GMM_MAX_LIST; i++) {
    if (!(err[i] > floor) || !isfinite(err[i]))
      continue;
    x[k] = (double)steps[i];
    y[k] = err[i];
    k++;
  }
  if (used)
    *used = k;
  return k >= 2 ? -gmm_loglog_slope(x, y, k) : NAN;
}

int gmm_json_print(const gmm_common *c, json_t *obj) {
  if (!obj)
    return cli_fail(c->cmd, "out of memory building the JSON output");
  int rc = json_dumpf(obj, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  json_decref(obj);
  if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
    return cli_fail(c->cmd, "cannot write the JSON output");
  return CLI_OK;
}

/* ---- files --------------------------------------------------------------------------------- */

bool gmm_path(char *buf, size_t size, const char *prefix, const char *suffix) {
  int n = snprintf(buf, size, "%s%s", prefix, suffix);
  return n > 0 && (size_t)n < size;
}

FILE *gmm_open_out(const gmm_common *c, const char *suffix, char *path, size_t path_size) {
  if (!gmm_path(path, path_size, c->out, suffix)) {
    cli_fail(c->cmd, "output prefix too long: '%s'", c->out);
    return NULL;
  }
  FILE *f = fopen(path, "w");
  if (!f)
    cli_fail(c->cmd, "cannot write %s: %s", path, strerror(errno));
  return f;
}

bool gmm_close_out(const gmm_common *c, FILE *f, const char *path) {
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0)
    bad = true;
  if (bad) {
    cli_fail(c->cmd, "error writing %s", path);
    return false;
  }
  gmm_note(c, "wrote %s\n", path);
  return true;
}

int gmm_check(const gmm_common *c, int status, const char *fmt, ...) {
  if (status == CRATE_STATUS_OK)
    return CLI_OK;
  const char *msg = crate_error_message();
  char ctx[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  return cli_fail(c->cmd, "%s: %s", ctx, (msg && *msg) ? msg : crate_strerror(status));
}

/* ---- plots --------------------------------------------------------------------------------- */

void gmm_chart_steps_range(gmm_chart *chart, const size_t *steps, size_t n) {
  if (n < 2)
    return;
  double lo = (double)steps[0], hi = (double)steps[n - 1];
  chart->xlo = lo / 1.25;
  chart->xhi = hi * (hi / lo) * 1.25; /* the data fill about half the width */
  chart->width = 1100;
  chart->height = 680;
}

int gmm_chart_create(const gmm_chart *chart, crate_plot **out) {
  crate_plot *p = NULL;
  int st = crate_plot_create(&p, chart->width, chart->height);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_title(p, chart->title);
  if (st == CRATE_STATUS_OK && chart->xlo < chart->xhi)
    st = crate_plot_set_range(p, CRATE_PLOT_X, chart->xlo, chart->xhi);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_labels(p, chart->xlabel, chart->ylabel);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_scale(p, chart->logx ? CRATE_PLOT_LOG10 : CRATE_PLOT_LINEAR,
                              chart->logy ? CRATE_PLOT_LOG10 : CRATE_PLOT_LINEAR);
  if (st != CRATE_STATUS_OK) {
    crate_plot_destroy(p);
    p = NULL;
  }
  *out = p;
  return st;
}

int gmm_plot(const gmm_common *c, const gmm_chart *chart, const gmm_series *series, size_t ns) {
  static const crate_plot_marker markers[5] = {CRATE_PLOT_MARKER_CIRCLE, CRATE_PLOT_MARKER_SQUARE,
                                               CRATE_PLOT_MARKER_TRIANGLE,
                                               CRATE_PLOT_MARKER_DIAMOND, CRATE_PLOT_MARKER_CROSS};
  char path[1024];
  if (!gmm_path(path, sizeof path, c->out, ".png"))
    return cli_fail(c->cmd, "output prefix too long: '%s'", c->out);
  crate_plot *p = NULL;
  int st = gmm_chart_create(chart, &p);
  for (size_t i = 0; i < ns && st == CRATE_STATUS_OK; i++) {
    const gmm_series *s = &series[i];
    size_t ci = s->color > 0 ? (size_t)(s->color - 1) : i;
    crate_plot_style style = {0};
    style.use_color = true;
    style.color = crate_plot_palette(ci);
    if (s->markers_only) {
      style.line = CRATE_PLOT_NO_LINE;
      style.marker = CRATE_PLOT_MARKER_CIRCLE;
      style.marker_size = 2.0;
    } else {
      style.line = s->dashed ? CRATE_PLOT_DASHED : CRATE_PLOT_SOLID;
      style.marker = s->n <= 64 ? markers[ci % 5] : CRATE_PLOT_MARKER_NONE;
    }
    st = crate_plot_add(p, s->label, s->x, s->y, s->n, &style);
  }
  return gmm_chart_write(c, p, st, path);
}

int gmm_chart_write(const gmm_common *c, crate_plot *p, int st, const char *path) {
  if (st == CRATE_STATUS_OK)
    st = crate_plot_write_png(p, path);
  crate_plot_destroy(p);
  if (st != CRATE_STATUS_OK)
    return gmm_check(c, st, "cannot write %s", path);
  gmm_note(c, "wrote %s\n", path);
  return CLI_OK;
}
