/* gmm_common.h: what the `crate gmm` experiment subcommands share
 * (STYLE.md §5): the common flags (-h/--help, --json, -o/--out, -q/--quiet,
 * --strict), option-error reporting and the end of every option loop, list
 * parsing for --steps and --sampler, the slope fit of MATH.md §6 (drop the
 * coarsest point and every point under the round-off floor, least squares
 * of log error against log steps), output files (<prefix>.csv, and
 * <prefix>.png drawn with the plot library of include/crate/plot.h), JSON
 * output and progress lines (JSON numbers: cli_json_num of cli.h).
 *
 * Conventions of every subcommand built on it:
 *  - stdout carries the results: a readable table, or with --json exactly
 *    one JSON object (Jansson) and nothing else;
 *  - stderr carries the resolved configuration at startup, progress lines
 *    and the names of the files written (all silenced by -q);
 *  - exit 0 on success (criteria that fail are printed as FAIL but only
 *    change the exit status with --strict), 1 on a run-time failure (a
 *    library error such as a non-finite value during integration, whose
 *    message names the step and sigma; a file that cannot be written) and
 *    2 on a usage error.
 */
#ifndef CRATE_TOOLS_GMM_COMMON_H
#define CRATE_TOOLS_GMM_COMMON_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "crate/crate.h"
#include "gmm_fixture.h"

/* Option codes of the common flags (above the fixture's). */
enum { GMM_OPT_JSON = 1100, GMM_OPT_STRICT };

/* getopt_long entries of the common flags; -s is the fixture's --seed. */
/* clang-format off */
#define GMM_COMMON_LONGOPTS                            \
  {"help", no_argument, NULL, 'h'},                    \
  {"json", no_argument, NULL, GMM_OPT_JSON},           \
  {"out", required_argument, NULL, 'o'},               \
  {"quiet", no_argument, NULL, 'q'},                   \
  {"strict", no_argument, NULL, GMM_OPT_STRICT}
/* clang-format on */

/* Short options of the common flags and the fixture; the leading ':' makes
 * getopt report a missing argument as ':' (see gmm_common_getopt_error). */
#define GMM_COMMON_SHORTOPTS ":ho:qs:"

typedef struct gmm_common {
  const char *cmd; /* "gmm order" etc., used in messages */
  const char *out; /* output prefix: <out>.csv, <out>.png */
  bool json;       /* one JSON object on stdout */
  bool quiet;      /* no banner, progress or file notes on stderr */
  bool strict;     /* exit 1 when a pass criterion fails */
} gmm_common;

/* Sets the defaults: out = default_out, everything else off. */
void gmm_common_default(gmm_common *c, const char *cmd, const char *default_out);

/* Handles one common or fixture option.
 * @return 1 handled, 0 not a common/fixture option, -1 after a usage error
 *         (exit 2), 2 when help was asked for (print it, exit 0). */
int gmm_common_parse(gmm_common *c, gmm_fixture *fx, int opt, const char *arg);

/* Reports getopt's '?' (unknown option) or ':' (missing argument) as a
 * usage error naming the option.  @return CLI_USAGE. */
int gmm_common_getopt_error(const gmm_common *c, int opt, char **argv);

/* The end of every subcommand's getopt_long loop: handles an option its own
 * switch left over, that is getopt's errors (gmm_common_getopt_error), the
 * common and fixture options (gmm_common_parse) and --help (usage(stdout)).
 * @return -1 to go on with the next option, else the exit code: CLI_OK
 *         after --help, CLI_USAGE after a usage error. */
int gmm_common_option(gmm_common *c, gmm_fixture *fx, int opt, char **argv, void (*usage)(FILE *f));

/* Rejects stray positional arguments.  @return true if there are none. */
bool gmm_common_no_positional(const gmm_common *c, int argc, char **argv);

/* Help lines of the common flags (with defaults). */
void gmm_common_help(FILE *f, const char *default_out);

/* printf to stderr unless quiet (progress, banner, file notes). */
void gmm_note(const gmm_common *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- lists ----------------------------------------------------------------------------- */

#define GMM_MAX_LIST 32

/* Parses "N[,N...]" step counts, each in [1, 1000000], into increasing
 * distinct order.  @return the count, or -1 after a usage error. */
int gmm_parse_steps(const char *cmd, const char *flag, const char *arg, size_t *out);

/* Parses "NAME[,NAME...]" sampler names (crate_sampler_parse).  @return the
 * count, or -1 after a usage error listing the valid names. */
int gmm_parse_samplers(const char *cmd, const char *flag, const char *arg, crate_sampler_kind *out);

/* The sampler's name as a JSON key: "dpmpp-2m" -> "dpmpp2m", others as is. */
const char *gmm_sampler_key(crate_sampler_kind kind);

/* ---- numbers ----------------------------------------------------------------------------- */

/* Order of convergence by the MATH.md §6 rules: minus the least-squares
 * slope of log err against log steps, after dropping the coarsest point
 * (index 0) and every point with err <= floor (round-off floor,
 * 100 eps * scale).  *used receives the number of points fitted.
 * @return the order, or NAN when fewer than 2 points remain. */
double gmm_fit_order(const size_t *steps, const double *err, size_t cnt, double floor,
                     size_t *used);

/* Least-squares slope of log y against log x over n points (all > 0). */
double gmm_loglog_slope(const double *x, const double *y, size_t n);

/* Prints obj as one JSON object on stdout (indented) and releases it.
 * @return CLI_OK, or CLI_FAIL if it could not be written. */
int gmm_json_print(const gmm_common *c, json_t *obj);

/* ---- files ------------------------------------------------------------------------------- */

/* Builds "<prefix><suffix>" into buf.  @return false if it does not fit. */
bool gmm_path(char *buf, size_t size, const char *prefix, const char *suffix);

/* Opens <prefix><suffix> for writing.  On failure prints "crate <cmd>:
 * cannot write PATH: reason" and returns NULL. */
FILE *gmm_open_out(const gmm_common *c, const char *suffix, char *path, size_t path_size);

/* Closes a file opened by gmm_open_out, reporting a write error.
 * @return true on success. */
bool gmm_close_out(const gmm_common *c, FILE *f, const char *path);

/* Runs a library call's status through: on failure prints "crate <cmd>:
 * <context>: <library message>" (the message names, e.g., the ODE step and
 * sigma of a non-finite value) and returns CLI_FAIL; else CLI_OK. */
int gmm_check(const gmm_common *c, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- plots ------------------------------------------------------------------------------- */

/* One curve of a chart: n points (x[i], y[i]); non-finite or (on a log
 * axis) non-positive points are skipped. */
typedef struct gmm_series {
  const char *label; /* legend text */
  const double *x, *y;
  size_t n;
  bool markers_only; /* scatter, no connecting line */
  int color;         /* palette colour index + 1; 0: the series' index */
  bool dashed;       /* dashed line (e.g. the second grid of a sampler) */
} gmm_series;

typedef struct gmm_chart {
  const char *title, *xlabel, *ylabel;
  bool logx, logy;
  double xlo, xhi;      /* fixed x range when xlo < xhi (e.g. room for the legend) */
  size_t width, height; /* pixels; 0: the plot library's default */
} gmm_chart;

/* x range for a sweep over steps[0] < ... < steps[n-1] on a log axis, with
 * free space on the right where the legend goes. */
void gmm_chart_steps_range(gmm_chart *chart, const size_t *steps, size_t n);

/* A plot of the chart's size with its title, fixed x range, axis labels
 * and scales set, for the caller's series.  *out: the plot (destroy with
 * crate_plot_destroy), NULL on failure.  @return a crate status. */
int gmm_chart_create(const gmm_chart *chart, crate_plot **out);

/* Writes p (from gmm_chart_create) to path when st, the status of drawing
 * so far, is CRATE_STATUS_OK; destroys p either way and notes the file on
 * stderr.  On failure prints "crate <cmd>: cannot write PATH: reason".
 * @return CLI_OK or CLI_FAIL. */
int gmm_chart_write(const gmm_common *c, crate_plot *p, int st, const char *path);

/* Draws the series into <prefix>.png (the plot library, libpng).  On
 * failure prints "crate <cmd>: cannot write PATH: reason".
 * @return CLI_OK or CLI_FAIL. */
int gmm_plot(const gmm_common *c, const gmm_chart *chart, const gmm_series *series, size_t ns);

#endif
