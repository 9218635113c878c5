/* render.c: crate_plot_render of the plot library (include/crate/plot.h).
 *
 * Pipeline:
 *   1. data ranges over the drawable points (finite; positive on log axes);
 *   2. axis ranges (fixed or crate_plot_auto_range) and nice ticks
 *      (crate_plot_ticks, ticks.c), with the margins sized from the tick
 *      labels;
 *   3. grid, then each series: its lines and markers are rasterised into a
 *      coverage layer (anti-aliased: distance to the segment for lines, 4x4
 *      supersampling for markers; max-combined so joints do not double),
 *      clipped to the plot area and blended in the series colour;
 *   4. frame, ticks and tick labels (log decades as 10 with a raised
 *      exponent), legend at the corner or edge middle that covers the
 *      fewest data samples, title and axis labels
 *      (the y label rotated), text from the bitmap font in font.c.
 * Pixel coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1)
 * and its centre is (i + 0.5, j + 0.5); y grows downwards.
 *
 * This file holds the data-to-pixel mapping, the layout of margins, frame,
 * tick labels and legend, and the drawing of series; the pixel-level
 * primitives are in canvas.c, the struct they share in plot_internal.h.
 */
#include <math.h>
#include <string.h>

#include "crate/plot.h"
#include "internal.h"
#include "plot_internal.h"

#define COLOR_TEXT 0x222222u
#define COLOR_FRAME 0x333333u
#define COLOR_GRID 0xDCDCDCu
#define COLOR_GRID_MINOR 0xF0F0F0u
#define COLOR_LEGEND_EDGE 0xA0A0A0u

/* ---- data to pixels ------------------------------------------------------ */

static double fwd(crate_plot_scale s, double v) { return s == CRATE_PLOT_LOG10 ? log10(v) : v; }

static bool point_ok(const crate_plot *p, double x, double y) {
  if (!isfinite(x) || !isfinite(y))
    return false;
  if (p->scale[0] == CRATE_PLOT_LOG10 && !(x > 0))
    return false;
  if (p->scale[1] == CRATE_PLOT_LOG10 && !(y > 0))
    return false;
  return true;
}

/* Data to continuous pixel coordinates (far-away points are pulled in to
 * 1e4 plot widths so that the arithmetic stays finite). */
static void to_px(const crate_plot *p, double x, double y, double *X, double *Y) {
  double u = (fwd(p->scale[0], x) - fwd(p->scale[0], p->lo[0])) /
             (fwd(p->scale[0], p->hi[0]) - fwd(p->scale[0], p->lo[0]));
  double v = (fwd(p->scale[1], y) - fwd(p->scale[1], p->lo[1])) /
             (fwd(p->scale[1], p->hi[1]) - fwd(p->scale[1], p->lo[1]));
  u = fmin(fmax(u, -1e4), 1e4);
  v = fmin(fmax(v, -1e4), 1e4);
  *X = (double)p->ax0 + u * (double)(p->ax1 - p->ax0);
  *Y = (double)p->ay1 - v * (double)(p->ay1 - p->ay0);
}

/* Pixel column (row) of an axis value, clamped into the plot area. */
static size_t px_col(const crate_plot *p, double x) {
  double X, Y;
  to_px(p, x, p->lo[1], &X, &Y);
  double c = floor(X);
  if (c < (double)p->ax0)
    c = (double)p->ax0;
  if (c > (double)(p->ax1 - 1))
    c = (double)(p->ax1 - 1);
  return (size_t)c;
}

static size_t px_row(const crate_plot *p, double y) {
  double X, Y;
  to_px(p, p->lo[0], y, &X, &Y);
  double r = floor(Y);
  if (r < (double)p->ay0)
    r = (double)p->ay0;
  if (r > (double)(p->ay1 - 1))
    r = (double)(p->ay1 - 1);
  return (size_t)r;
}

/* ---- series -------------------------------------------------------------- */

/* Lines, then markers, of one series in the plot area. */
static void draw_series(crate_plot *p, const series *s) {
  pen pn = crate__plot_make_pen(&s->style);
  double r = s->style.marker_size > 0 ? s->style.marker_size : 4.0;
  double arc = 0, PX = 0, PY = 0;
  bool have_prev = false;
  for (size_t i = 0; i < s->n; i++) {
    if (!point_ok(p, s->x[i], s->y[i])) {
      have_prev = false; /* a skipped point breaks the line */
      continue;
    }
    double X, Y;
    to_px(p, s->x[i], s->y[i], &X, &Y);
    if (have_prev && s->style.line != CRATE_PLOT_NO_LINE) {
      crate__plot_cov_segment(p, &pn, arc, PX, PY, X, Y, p->ax0, p->ay0, p->ax1, p->ay1);
      arc += hypot(X - PX, Y - PY);
    }
    PX = X;
    PY = Y;
    have_prev = true;
  }
  if (s->style.marker != CRATE_PLOT_MARKER_NONE)
    for (size_t i = 0; i < s->n; i++)
      if (point_ok(p, s->x[i], s->y[i])) {
        double X, Y;
        to_px(p, s->x[i], s->y[i], &X, &Y);
        crate__plot_cov_marker(p, s->style.marker, r, X, Y, p->ax0, p->ay0, p->ax1, p->ay1);
      }
  crate__plot_cov_flush(p, s->color, p->ax0, p->ay0, p->ax1, p->ay1);
}

/* ---- rendering ----------------------------------------------------------- */

static size_t label_width(const crate_plot *p, const tick_label *l) {
  size_t w = crate__font_width(l->main, p->ts);
  if (l->sup[0])
    w += p->ts + crate__font_width(l->sup, p->ts > 1 ? p->ts - 1 : 1);
  return w;
}

/* Draws a tick label with its top-left corner at (x, y). */
static void draw_label(crate_plot *p, long x, long y, const tick_label *l) {
  size_t es = p->ts > 1 ? p->ts - 1 : 1;
  crate__plot_draw_text(p, x, y, l->main, p->ts, COLOR_TEXT, false, false);
  if (l->sup[0])
    crate__plot_draw_text(p, x + (long)(crate__font_width(l->main, p->ts) + p->ts),
                          y - (long)(3 * p->ts), l->sup, es, COLOR_TEXT, false, false);
}

/* Axis ranges from the fixed ranges or the drawable data. */
static int compute_ranges(crate_plot *p) {
  if (p->ns == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: nothing to draw (no series)");
  double mn[2] = {INFINITY, INFINITY}, mx[2] = {-INFINITY, -INFINITY};
  size_t total = 0, used = 0;
  for (size_t k = 0; k < p->ns; k++)
    for (size_t i = 0; i < p->s[k].n; i++) {
      total++;
      double v[2] = {p->s[k].x[i], p->s[k].y[i]};
      if (!point_ok(p, v[0], v[1]))
        continue;
      used++;
      for (int a = 0; a < 2; a++) {
        mn[a] = fmin(mn[a], v[a]);
        mx[a] = fmax(mx[a], v[a]);
      }
    }
  for (int a = 0; a < 2; a++) {
    const char *name = a ? "y" : "x";
    if (!isnan(p->fix_lo[a])) {
      if (p->scale[a] == CRATE_PLOT_LOG10 && !(p->fix_lo[a] > 0))
        return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: fixed %s range [%g, %g] on a log axis",
                           name, p->fix_lo[a], p->fix_hi[a]);
      p->lo[a] = p->fix_lo[a];
      p->hi[a] = p->fix_hi[a];
    } else {
      if (used == 0)
        return CRATE_ERROR(CRATE_STATUS_EINVAL,
                           "plot: no drawable point (%zu points, all non-finite or non-positive "
                           "on a log axis)", total);
      CRATE_TRY(crate_plot_auto_range(p->scale[a], mn[a], mx[a], &p->lo[a], &p->hi[a]));
    }
  }
  return CRATE_STATUS_OK;
}

/* Ticks and labels of one axis with at most max_major majors. */
static int axis_ticks(const crate_plot *p, int a, size_t max_major, crate_plot_tickset *t,
                      tick_label *labels) {
  CRATE_TRY(crate_plot_ticks(p->scale[a], p->lo[a], p->hi[a], max_major, t));
  for (size_t i = 0; i < t->n_major; i++)
    crate__plot_format_tick(t, t->major[i], &labels[i]);
  return CRATE_STATUS_OK;
}

static size_t clamp_size(size_t v, size_t lo, size_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Counts the sample points of every series that fall in a rectangle. */
static size_t count_in(const crate_plot *p, long x0, long y0, long x1, long y1) {
  size_t cnt = 0;
  for (size_t k = 0; k < p->ns; k++) {
    const series *s = &p->s[k];
    double PX = 0, PY = 0;
    bool prev = false;
    for (size_t i = 0; i < s->n; i++) {
      if (!point_ok(p, s->x[i], s->y[i])) {
        prev = false;
        continue;
      }
      double X, Y;
      to_px(p, s->x[i], s->y[i], &X, &Y);
      size_t steps = 1;
      if (prev && s->style.line != CRATE_PLOT_NO_LINE)
        steps = (size_t)fmin(ceil(hypot(X - PX, Y - PY) / 4.0), 4096.0) + 1;
      for (size_t j = 0; j < steps; j++) {
        double f = steps > 1 ? (double)j / (double)(steps - 1) : 1.0;
        double qx = PX + f * (X - PX), qy = PY + f * (Y - PY);
        if (!prev || steps == 1) {
          qx = X;
          qy = Y;
        }
        if (qx >= (double)x0 && qx < (double)x1 && qy >= (double)y0 && qy < (double)y1)
          cnt++;
      }
      PX = X;
      PY = Y;
      prev = true;
    }
  }
  return cnt;
}

static void draw_legend(crate_plot *p) {
  size_t ts = p->ts, rowh = 9 * ts + 6, sample = 34, padv = 8, gap = 8;
  size_t n = 0, wmax = 0;
  for (size_t k = 0; k < p->ns; k++)
    if (p->s[k].name) {
      n++;
      size_t w = crate__font_width(p->s[k].name, ts);
      wmax = w > wmax ? w : wmax;
    }
  if (n == 0)
    return;
  long bw = (long)(padv + sample + gap + wmax + padv), bh = (long)(padv + n * rowh + padv - 6);
  long m = 10;
  /* candidates, preferred first on ties: the four corners, then the middles
   * of the top, bottom, left and right edges */
  long xl = (long)p->ax0 + m, xr = (long)p->ax1 - m - bw, xc = ((long)(p->ax0 + p->ax1) - bw) / 2;
  long yt = (long)p->ay0 + m, yb = (long)p->ay1 - m - bh, yc = ((long)(p->ay0 + p->ay1) - bh) / 2;
  long cx[8] = {xr, xl, xr, xl, xc, xc, xl, xr};
  long cy[8] = {yt, yt, yb, yb, yt, yb, yc, yc};
  size_t best = 0, best_cnt = (size_t)-1;
  for (size_t c = 0; c < 8; c++) {
    size_t cnt = count_in(p, cx[c] - 4, cy[c] - 4, cx[c] + bw + 4, cy[c] + bh + 4);
    if (cnt < best_cnt) {
      best = c;
      best_cnt = cnt;
    }
  }
  long x0 = cx[best], y0 = cy[best];
  if (x0 < 0)
    x0 = 0;
  /* box: white fill, grey edge */
  for (long y = y0; y < y0 + bh; y++)
    for (long x = x0; x < x0 + bw; x++)
      if (x >= 0 && y >= 0 && (size_t)x < p->W && (size_t)y < p->H)
        crate__plot_blend(p, (size_t)x, (size_t)y, 0xFFFFFFu, 0.92);
  crate__plot_fill_rect(p, x0, y0, x0 + bw, y0 + 1, COLOR_LEGEND_EDGE);
  crate__plot_fill_rect(p, x0, y0 + bh - 1, x0 + bw, y0 + bh, COLOR_LEGEND_EDGE);
  crate__plot_fill_rect(p, x0, y0, x0 + 1, y0 + bh, COLOR_LEGEND_EDGE);
  crate__plot_fill_rect(p, x0 + bw - 1, y0, x0 + bw, y0 + bh, COLOR_LEGEND_EDGE);
  size_t cx0 = (size_t)(x0 > 0 ? x0 : 0), cy0 = (size_t)(y0 > 0 ? y0 : 0);
  size_t cx1 = (size_t)fmin((double)(x0 + bw), (double)p->W);
  size_t cy1 = (size_t)fmin((double)(y0 + bh), (double)p->H);
  long row = 0;
  for (size_t k = 0; k < p->ns; k++) {
    const series *s = &p->s[k];
    if (!s->name)
      continue;
    long ty = y0 + (long)padv + row * (long)rowh;
    double my = (double)ty + 3.5 * (double)ts + 0.5;
    double lx0 = (double)(x0 + (long)padv), lx1 = lx0 + (double)sample;
    if (s->style.line != CRATE_PLOT_NO_LINE) {
      pen pn = crate__plot_make_pen(&s->style);
      crate__plot_cov_segment(p, &pn, 0, lx0, my, lx1, my, cx0, cy0, cx1, cy1);
    }
    if (s->style.marker != CRATE_PLOT_MARKER_NONE)
      crate__plot_cov_marker(p, s->style.marker,
                             s->style.marker_size > 0 ? s->style.marker_size : 4.0,
                             0.5 * (lx0 + lx1), my, cx0, cy0, cx1, cy1);
    crate__plot_cov_flush(p, s->color, cx0, cy0, cx1, cy1);
    crate__plot_draw_text(p, x0 + (long)(padv + sample + gap), ty, s->name, ts, COLOR_TEXT, false,
                          false);
    row++;
  }
}

int crate_plot_render(crate_plot *p) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  p->rendered = false;
  CRATE_TRY(compute_ranges(p));
  memset(p->rgb, 255, p->W * p->H * 3);

  size_t ts = (p->W >= 560 && p->H >= 400) ? 2 : 1;
  p->ts = ts;
  size_t m = 6 * ts, lh = 9 * ts, tick = 6;
  size_t top = p->title ? m + lh + m + 4 * ts : 2 * m + 4 * ts;
  size_t bottom = tick + m / 2 + 3 * ts + 7 * ts + (p->xlabel ? m + lh : 0) + m;
  size_t right = 4 * m;
  if (top + bottom + 40 > p->H)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: canvas height %zu too small", p->H);

  /* y ticks first: their labels set the left margin */
  crate_plot_tickset yt, xt;
  crate_plot_tickset *Y = &yt, *X = &xt;
  tick_label yl[CRATE_PLOT_MAX_TICKS], xl[CRATE_PLOT_MAX_TICKS];
  size_t ah = p->H - top - bottom;
  size_t ymax = p->scale[1] == CRATE_PLOT_LOG10 ? ah / (lh * 5 / 2) : ah / (lh * 4);
  CRATE_TRY(axis_ticks(p, 1, clamp_size(ymax, 2, 12), Y, yl));
  size_t ywidth = 0;
  for (size_t i = 0; i < Y->n_major; i++) {
    size_t w = label_width(p, &yl[i]);
    ywidth = w > ywidth ? w : ywidth;
  }
  size_t left = m + (p->ylabel ? lh + m : 0) + ywidth + m / 2 + tick;
  if (left + right + 40 > p->W)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: canvas width %zu too small", p->W);
  size_t aw = p->W - left - right;
  p->ax0 = left;
  p->ax1 = left + aw;
  p->ay0 = top;
  p->ay1 = top + ah;

  /* x ticks: fewer until the labels fit their spacing */
  size_t xmax = clamp_size(aw / (10 * ts * 4), 2, 10);
  for (;;) {
    CRATE_TRY(axis_ticks(p, 0, xmax, X, xl));
    size_t wmax = 0;
    for (size_t i = 0; i < X->n_major; i++) {
      size_t w = label_width(p, &xl[i]);
      wmax = w > wmax ? w : wmax;
    }
    if (xmax == 2 || X->n_major < 2 || (wmax + 3 * m) * (X->n_major - 1) <= aw)
      break;
    xmax--;
  }

  /* grid */
  for (size_t i = 0; i < X->n_minor; i++)
    crate__plot_fill_rect(p, (long)px_col(p, X->minor[i]), (long)p->ay0,
                          (long)px_col(p, X->minor[i]) + 1, (long)p->ay1, COLOR_GRID_MINOR);
  for (size_t i = 0; i < Y->n_minor; i++)
    crate__plot_fill_rect(p, (long)p->ax0, (long)px_row(p, Y->minor[i]), (long)p->ax1,
                          (long)px_row(p, Y->minor[i]) + 1, COLOR_GRID_MINOR);
  for (size_t i = 0; i < X->n_major; i++)
    crate__plot_fill_rect(p, (long)px_col(p, X->major[i]), (long)p->ay0,
                          (long)px_col(p, X->major[i]) + 1, (long)p->ay1, COLOR_GRID);
  for (size_t i = 0; i < Y->n_major; i++)
    crate__plot_fill_rect(p, (long)p->ax0, (long)px_row(p, Y->major[i]), (long)p->ax1,
                          (long)px_row(p, Y->major[i]) + 1, COLOR_GRID);

  /* series */
  for (size_t k = 0; k < p->ns; k++)
    draw_series(p, &p->s[k]);

  /* frame and ticks */
  long x0 = (long)p->ax0, x1 = (long)p->ax1, y0 = (long)p->ay0, y1 = (long)p->ay1;
  crate__plot_fill_rect(p, x0 - 1, y0 - 1, x1 + 1, y0, COLOR_FRAME);
  crate__plot_fill_rect(p, x0 - 1, y1, x1 + 1, y1 + 1, COLOR_FRAME);
  crate__plot_fill_rect(p, x0 - 1, y0 - 1, x0, y1 + 1, COLOR_FRAME);
  crate__plot_fill_rect(p, x1, y0 - 1, x1 + 1, y1 + 1, COLOR_FRAME);
  for (size_t i = 0; i < X->n_minor; i++) {
    long c = (long)px_col(p, X->minor[i]);
    crate__plot_fill_rect(p, c, y1 + 1, c + 1, y1 + 1 + (long)tick / 2, COLOR_FRAME);
  }
  for (size_t i = 0; i < Y->n_minor; i++) {
    long r = (long)px_row(p, Y->minor[i]);
    crate__plot_fill_rect(p, x0 - 1 - (long)tick / 2, r, x0 - 1, r + 1, COLOR_FRAME);
  }
  long sup_raise = 3 * (long)ts;
  for (size_t i = 0; i < X->n_major; i++) {
    long c = (long)px_col(p, X->major[i]);
    crate__plot_fill_rect(p, c, y1 + 1, c + 1, y1 + 1 + (long)tick, COLOR_FRAME);
    long w = (long)label_width(p, &xl[i]);
    long lx = c - w / 2;
    if (lx < 0)
      lx = 0;
    if (lx + w > (long)p->W)
      lx = (long)p->W - w;
    draw_label(p, lx, y1 + 1 + (long)tick + (long)m / 2 + (X->decades ? sup_raise : 0), &xl[i]);
  }
  for (size_t i = 0; i < Y->n_major; i++) {
    long r = (long)px_row(p, Y->major[i]);
    crate__plot_fill_rect(p, x0 - 1 - (long)tick, r, x0 - 1, r + 1, COLOR_FRAME);
    long w = (long)label_width(p, &yl[i]);
    long ly = r - (long)(7 * ts) / 2 + (Y->decades ? 1 : 0);
    draw_label(p, x0 - 1 - (long)tick - (long)m / 2 - w, ly, &yl[i]);
  }

  draw_legend(p);

  /* title and axis labels */
  long cxa = (long)(p->ax0 + p->ax1) / 2;
  if (p->title) {
    long w = (long)crate__font_width(p->title, ts) + 1;
    long tx = cxa - w / 2;
    if (tx + w > (long)p->W)
      tx = (long)p->W - w;
    if (tx < 0)
      tx = 0;
    crate__plot_draw_text(p, tx, (long)m, p->title, ts, 0x000000u, true, false);
  }
  if (p->xlabel) {
    long w = (long)crate__font_width(p->xlabel, ts);
    long tx = cxa - w / 2;
    if (tx < 0)
      tx = 0;
    crate__plot_draw_text(p, tx, (long)(p->H - m - lh), p->xlabel, ts, COLOR_TEXT, false, false);
  }
  if (p->ylabel) {
    long w = (long)crate__font_width(p->ylabel, ts);
    long cy = (long)(p->ay0 + p->ay1) / 2 + w / 2;
    if (cy >= (long)p->H)
      cy = (long)p->H - 1;
    crate__plot_draw_text(p, (long)m, cy, p->ylabel, ts, COLOR_TEXT, false, true);
  }
  p->rendered = true;
  return CRATE_STATUS_OK;
}
