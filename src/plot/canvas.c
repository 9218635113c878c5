/* canvas.c: the pixel-level drawing primitives of the plot library
 * (include/crate/plot.h; the struct and prototypes are in plot_internal.h).
 *
 *   - canvas: single pixels, filled rectangles and alpha blending on the
 *     (H, W, 3) RGB buffer, and text from the bitmap font of font.c
 *     (integer scale, optional bold and 90-degree rotation);
 *   - coverage layer: anti-aliased lines (distance to the segment, solid,
 *     dashed or dotted pens, Liang-Barsky clipping) and markers (4x4
 *     supersampling) are rasterised into the (H, W) float coverage of the
 *     series being drawn, max-combined so that joints do not double, then
 *     blended in one colour and cleared (crate__plot_cov_flush).
 * Everything works in continuous pixel coordinates: pixel (i, j) covers
 * [i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5); y grows
 * downwards.  Data units, axes and the legend layout are render.c's, ranges
 * and ticks are ticks.c's.
 * Not MATH.md material: plotting is output tooling.
 */
#include <math.h>

#include "crate/plot.h"
#include "plot_internal.h"

/* ---- canvas -------------------------------------------------------------- */

static void put(crate_plot *p, long x, long y, uint32_t c) {
  if (x < 0 || y < 0 || (size_t)x >= p->W || (size_t)y >= p->H)
    return;
  uint8_t *px = p->rgb + ((size_t)y * p->W + (size_t)x) * 3;
  px[0] = (uint8_t)(c >> 16);
  px[1] = (uint8_t)(c >> 8);
  px[2] = (uint8_t)c;
}

void crate__plot_blend(crate_plot *p, size_t x, size_t y, uint32_t c, double a) {
  uint8_t *px = p->rgb + (y * p->W + x) * 3;
  const double rgb[3] = {(double)((c >> 16) & 255), (double)((c >> 8) & 255), (double)(c & 255)};
  for (int k = 0; k < 3; k++)
    px[k] = (uint8_t)lrint((double)px[k] * (1.0 - a) + rgb[k] * a);
}

void crate__plot_fill_rect(crate_plot *p, long x0, long y0, long x1, long y1, uint32_t c) {
  for (long y = y0; y < y1; y++)
    for (long x = x0; x < x1; x++)
      put(p, x, y, c);
}

/* Draws text with its top-left corner at (x, y); rotated text runs upwards
 * from (x, y), which is then its bottom-left corner.  Bold draws twice. */
void crate__plot_draw_text(crate_plot *p, long x, long y, const char *s, size_t scale, uint32_t c,
                           bool bold, bool rotated) {
  long pen = 0, sc = (long)scale;
  uint32_t cp;
  while ((cp = crate__font_next(&s)) != 0) {
    uint8_t rows[CRATE__FONT_H];
    crate__font_glyph(cp, rows);
    for (long r = 0; r < CRATE__FONT_H; r++)
      for (long col = 0; col < CRATE__FONT_W; col++) {
        if (!(rows[r] & (1u << (CRATE__FONT_W - 1 - col))))
          continue;
        for (long dy = 0; dy < sc; dy++)
          for (long dx = 0; dx < sc + (bold ? 1 : 0); dx++) {
            long u = pen + col * sc + dx, v = r * sc + dy;
            if (rotated)
              put(p, x + v, y - u, c);
            else
              put(p, x + u, y + v, c);
          }
      }
    pen += CRATE__FONT_ADVANCE * sc;
  }
}

/* ---- coverage layer: lines and markers ----------------------------------- */

pen crate__plot_make_pen(const crate_plot_style *st) {
  pen pn;
  double w = st->line_width > 0 ? st->line_width : 2.0;
  pn.half = 0.5 * w;
  pn.on = 0;
  pn.period = 1;
  if (st->line == CRATE_PLOT_DASHED) {
    pn.on = 5.0 * w;
    pn.period = 8.0 * w;
  } else if (st->line == CRATE_PLOT_DOTTED) {
    pn.on = 0.5 * w;
    pn.period = 3.0 * w;
  }
  return pn;
}

static void cov_put(crate_plot *p, size_t x, size_t y, double a) {
  float *c = p->cov + y * p->W + x;
  if ((float)a > *c)
    *c = (float)a;
}

/* Clips segment A->B to the rectangle [x0, x1] x [y0, y1] (Liang-Barsky).
 * @return false if nothing is left; else t0 <= t1 bound the kept part. */
static bool clip(double ax, double ay, double bx, double by, double x0, double y0, double x1,
                 double y1, double *t0, double *t1) {
  double dx = bx - ax, dy = by - ay;
  const double pq[4][2] = {{-dx, ax - x0}, {dx, x1 - ax}, {-dy, ay - y0}, {dy, y1 - ay}};
  *t0 = 0;
  *t1 = 1;
  for (int i = 0; i < 4; i++) {
    double pp = pq[i][0], q = pq[i][1];
    if (pp == 0) {
      if (q < 0)
        return false;
      continue;
    }
    double r = q / pp;
    if (pp < 0) {
      if (r > *t1)
        return false;
      if (r > *t0)
        *t0 = r;
    } else {
      if (r < *t0)
        return false;
      if (r < *t1)
        *t1 = r;
    }
  }
  return *t0 <= *t1;
}

/* Rasterises segment A->B into the coverage layer inside the rectangle
 * [rx0, rx1) x [ry0, ry1) of pixels.  s0 is the arc length at A (dashes). */
void crate__plot_cov_segment(crate_plot *p, const pen *pn, double s0, double ax, double ay,
                             double bx, double by, size_t rx0, size_t ry0, size_t rx1, size_t ry1) {
  double m = pn->half + 2.0, ta, tb;
  if (!clip(ax, ay, bx, by, (double)rx0 - m, (double)ry0 - m, (double)rx1 + m,
            (double)ry1 + m, &ta, &tb))
    return;
  double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, len = sqrt(len2);
  size_t pieces = (size_t)ceil((tb - ta) * len / 8.0);
  if (pieces == 0)
    pieces = 1;
  for (size_t k = 0; k < pieces; k++) {
    double t0 = ta + (tb - ta) * (double)k / (double)pieces;
    double t1 = ta + (tb - ta) * (double)(k + 1) / (double)pieces;
    double px0 = fmin(ax + t0 * dx, ax + t1 * dx) - m, px1 = fmax(ax + t0 * dx, ax + t1 * dx) + m;
    double py0 = fmin(ay + t0 * dy, ay + t1 * dy) - m, py1 = fmax(ay + t0 * dy, ay + t1 * dy) + m;
    long i0 = (long)floor(fmax(px0, (double)rx0)), i1 = (long)ceil(fmin(px1, (double)rx1));
    long j0 = (long)floor(fmax(py0, (double)ry0)), j1 = (long)ceil(fmin(py1, (double)ry1));
    for (long j = j0; j < j1; j++)
      for (long i = i0; i < i1; i++) {
        double cx = (double)i + 0.5, cy = (double)j + 0.5;
        double t = len2 > 0 ? ((cx - ax) * dx + (cy - ay) * dy) / len2 : 0.0;
        t = fmin(fmax(t, t0), t1);
        if (pn->on > 0 && fmod(s0 + t * len, pn->period) >= pn->on)
          continue;
        double ex = cx - (ax + t * dx), ey = cy - (ay + t * dy);
        double a = pn->half + 0.5 - sqrt(ex * ex + ey * ey);
        if (a > 0)
          cov_put(p, (size_t)i, (size_t)j, a > 1 ? 1 : a);
      }
  }
}

static bool marker_inside(crate_plot_marker mk, double r, double dx, double dy) {
  switch (mk) {
  case CRATE_PLOT_MARKER_CIRCLE: return dx * dx + dy * dy <= r * r;
  case CRATE_PLOT_MARKER_SQUARE: return fabs(dx) <= 0.85 * r && fabs(dy) <= 0.85 * r;
  case CRATE_PLOT_MARKER_DIAMOND: return fabs(dx) + fabs(dy) <= 1.2 * r;
  case CRATE_PLOT_MARKER_TRIANGLE:
    return dy >= -1.1 * r && dy <= 0.8 * r && fabs(dx) <= (dy + 1.1 * r) / 1.9;
  case CRATE_PLOT_MARKER_CROSS:
    return fabs(dx) <= r && fabs(dy) <= r &&
           (fabs(dx - dy) <= 0.6 * r || fabs(dx + dy) <= 0.6 * r) &&
           (fabs(dx - dy) <= 1.5 || fabs(dx + dy) <= 1.5);
  case CRATE_PLOT_MARKER_PLUS:
    return fabs(dx) <= r && fabs(dy) <= r && (fabs(dx) <= 1.0 || fabs(dy) <= 1.0);
  case CRATE_PLOT_MARKER_NONE: break;
  }
  return false;
}

void crate__plot_cov_marker(crate_plot *p, crate_plot_marker mk, double r, double X, double Y,
                            size_t rx0, size_t ry0, size_t rx1, size_t ry1) {
  double m = 1.3 * r + 2;
  if (X < (double)rx0 - m || X > (double)rx1 + m || Y < (double)ry0 - m || Y > (double)ry1 + m)
    return;
  long i0 = (long)floor(fmax(X - m, (double)rx0)), i1 = (long)ceil(fmin(X + m, (double)rx1));
  long j0 = (long)floor(fmax(Y - m, (double)ry0)), j1 = (long)ceil(fmin(Y + m, (double)ry1));
  for (long j = j0; j < j1; j++)
    for (long i = i0; i < i1; i++) {
      int hits = 0;
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
          hits += marker_inside(mk, r, (double)i + (b + 0.5) / 4 - X, (double)j + (a + 0.5) / 4 - Y);
      if (hits)
        cov_put(p, (size_t)i, (size_t)j, hits / 16.0);
    }
}

/* Blends the coverage of [x0, x1) x [y0, y1) in colour c and clears it. */
void crate__plot_cov_flush(crate_plot *p, uint32_t c, size_t x0, size_t y0, size_t x1, size_t y1) {
  for (size_t y = y0; y < y1; y++)
    for (size_t x = x0; x < x1; x++) {
      float *a = p->cov + y * p->W + x;
      if (*a > 0) {
        crate__plot_blend(p, x, y, c, *a);
        *a = 0;
      }
    }
}
