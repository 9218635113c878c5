/* bench_plot.c: `crate bench --plot FILE`, figures from the JSON lines of
 * earlier runs (no measurement): `crate bench --json` records tagged with
 * "sweep" and "series" (benchmarks/scaling.py) and benchmarks/compare.py's
 * records ("side", "label"; threads sweep, training runs only).  One
 * sweep per figure: training images/s against threads or batch size, or
 * forward GFLOP/s against tokens; log-log axes, one series per name, points
 * sorted by x and repeated x replaced by the median of their y.
 *
 * Non-goals: statistics beyond the median (the records are single runs).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench.h"
#include "cli.h"
#include "crate/plot.h"

#define CMD "bench"

#define PLOT_MAX_SERIES 16
#define PLOT_MAX_POINTS 64

typedef struct plot_series {
  char name[64];
  size_t n;
  double x[PLOT_MAX_POINTS], y[PLOT_MAX_POINTS];
} plot_series;

static double jget(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Series name of one record for a sweep, or NULL to skip it. */
static const char *record_series(json_t *o, const char *sweep, char *buf, size_t n) {
  json_t *sw = json_object_get(o, "sweep"), *se = json_object_get(o, "series");
  json_t *side = json_object_get(o, "side"), *label = json_object_get(o, "label");
  if (json_is_string(sw) && json_is_string(se)) {
    if (strcmp(json_string_value(sw), sweep) != 0)
      return NULL;
    snprintf(buf, n, "%s", json_string_value(se));
    return buf;
  }
  /* compare.py records: side (crate / torch) and label, training runs only */
  if (strcmp(sweep, "threads") == 0 && json_is_string(side) &&
      isfinite(jget(o, "train_img_per_s"))) {
    json_t *tv = json_object_get(o, "torch");
    snprintf(buf, n, "%s%s%s%s%s", json_string_value(side), json_is_string(tv) ? " " : "",
             json_is_string(tv) ? json_string_value(tv) : "",
             json_is_string(label) && *json_string_value(label) ? " " : "",
             json_is_string(label) ? json_string_value(label) : "");
    return buf;
  }
  return NULL;
}

static int cmp_xy(const void *a, const void *b) {
  const double *p = a, *q = b;
  return (p[0] > q[0]) - (p[0] < q[0]);
}

/* Sorts a series by x and replaces repeated x by the median of their y. */
static void series_finish(plot_series *s) {
  double xy[PLOT_MAX_POINTS][2], tmp[PLOT_MAX_POINTS];
  for (size_t i = 0; i < s->n; i++) {
    xy[i][0] = s->x[i];
    xy[i][1] = s->y[i];
  }
  qsort(xy, s->n, sizeof xy[0], cmp_xy);
  size_t m = 0;
  for (size_t i = 0; i < s->n;) {
    size_t j = i, k = 0;
    while (j < s->n && xy[j][0] == xy[i][0])
      tmp[k++] = xy[j++][1];
    s->x[m] = xy[i][0];
    s->y[m++] = bench_median(tmp, k);
    i = j;
  }
  s->n = m;
}

int bench_plot(const char *path, const char *sweep, const char *out) {
  const char *xk, *yk, *xl, *yl, *title;
  if (strcmp(sweep, "threads") == 0) {
    xk = "threads", yk = "train_img_per_s", xl = "threads", yl = "training images/s";
    title = "fmnist-tiny training throughput vs threads (batch 64)";
  } else if (strcmp(sweep, "batch") == 0) {
    xk = "batch", yk = "train_img_per_s", xl = "batch size", yl = "training images/s";
    title = "fmnist-tiny training throughput vs batch size";
  } else if (strcmp(sweep, "size") == 0) {
    xk = "tokens", yk = "gflops", xl = "tokens N = (H/16)^2 + 1", yl = "forward GFLOP/s";
    title = "forward cost vs image size (224-pixel presets, batch 8)";
  } else {
    return cli_usage_error(CMD, "--sweep must be threads, batch or size, got '%s'", sweep);
  }
  FILE *f = fopen(path, "r");
  if (!f)
    return cli_fail(CMD, "cannot open '%s'", path);
  static plot_series ser[PLOT_MAX_SERIES];
  size_t ns = 0;
  char line[8192], name[64];
  while (fgets(line, sizeof line, f)) {
    json_t *o = json_loads(line, 0, NULL);
    if (!o)
      continue;
    const double x = jget(o, xk), y = jget(o, yk);
    const char *nm = record_series(o, sweep, name, sizeof name);
    if (nm && isfinite(x) && isfinite(y)) {
      size_t i = 0;
      while (i < ns && strcmp(ser[i].name, nm) != 0)
        i++;
      if (i == ns && ns < PLOT_MAX_SERIES) {
        memset(&ser[ns], 0, sizeof ser[ns]);
        snprintf(ser[ns].name, sizeof ser[ns].name, "%s", nm);
        ns++;
      }
      if (i < ns && ser[i].n < PLOT_MAX_POINTS) {
        ser[i].x[ser[i].n] = x;
        ser[i].y[ser[i].n++] = y;
      }
    }
    json_decref(o);
  }
  fclose(f);
  if (ns == 0)
    return cli_fail(CMD, "no '%s' records in '%s'", sweep, path);
  crate_plot *p = NULL;
  int st = crate_plot_create(&p, 0, 0);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_title(p, title);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_labels(p, xl, yl);
  if (st == CRATE_STATUS_OK)
    st = crate_plot_set_scale(p, CRATE_PLOT_LOG10, CRATE_PLOT_LOG10);
  for (size_t i = 0; i < ns && st == CRATE_STATUS_OK; i++) {
    series_finish(&ser[i]);
    crate_plot_style sty;
    memset(&sty, 0, sizeof sty);
    sty.marker = (crate_plot_marker)(1 + i % 6);
    st = crate_plot_add(p, ser[i].name, ser[i].x, ser[i].y, ser[i].n, &sty);
  }
  if (st == CRATE_STATUS_OK)
    st = crate_plot_write_png(p, out);
  crate_plot_destroy(p);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  fprintf(stderr, "crate bench: wrote %s (%zu series)\n", out, ns);
  return CLI_OK;
}
