/* plot_internal.h: what the files of the plot library share: the bitmap
 * font (font.c), the plot object (its API in plot.c), the tick labels of
 * ticks.c and the drawing primitives of canvas.c, used by the layout and
 * render code of render.c.
 *
 * Glyphs are 5 columns by 9 rows: rows 0-6 hold capitals and digits (row 6
 * is the baseline row), rows 7-8 hold descenders.  A glyph advances 6
 * columns; text is drawn at an integer scale (each font pixel becomes a
 * scale x scale block).
 */
#ifndef CRATE_PLOT_INTERNAL_H
#define CRATE_PLOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crate/plot.h"

#define CRATE__FONT_W 5
#define CRATE__FONT_H 9
#define CRATE__FONT_ASCENT 7
#define CRATE__FONT_ADVANCE 6

/* Decodes the next character of a UTF-8 string and advances *s past it.
 * Malformed bytes decode as '?' one byte at a time.  @return the code point
 * (0 at the end of the string, which is not advanced past). */
uint32_t crate__font_next(const char **s);

/* Fills rows[0..9) with the glyph of code point cp: bit 4 is the leftmost
 * column.  Printable ASCII, U+03C3 (sigma) and U+00B2 (superscript two) have
 * glyphs; anything else gets '?'. */
void crate__font_glyph(uint32_t cp, uint8_t rows[CRATE__FONT_H]);

/* Width in pixels of s at the given scale (no trailing gap); 0 for "". */
size_t crate__font_width(const char *s, size_t scale);

/* ---- the plot object ----------------------------------------------------- */

#define CRATE__PLOT_MAX_SERIES 32

typedef struct series {
  char *name;
  double *x, *y; /* (n) */
  size_t n;
  crate_plot_style style;
  uint32_t color;
} series;

struct crate_plot {
  size_t W, H;
  uint8_t *rgb; /* (H, W, 3) */
  float *cov;   /* (H, W) coverage of the series being drawn */
  char *title, *xlabel, *ylabel;
  crate_plot_scale scale[2];
  double fix_lo[2], fix_hi[2]; /* NaN: automatic */
  series s[CRATE__PLOT_MAX_SERIES];
  size_t ns;
  /* state of the last render */
  bool rendered;
  size_t ax0, ay0, ax1, ay1; /* plot area [ax0, ax1) x [ay0, ay1) */
  double lo[2], hi[2];       /* axis ranges in data units */
  size_t ts;                 /* text scale */
};

/* ---- ticks.c: tick labels ------------------------------------------------ */

#define CRATE__PLOT_MAX_LABEL 48

/* One formatted tick label: main text and an optional raised exponent. */
typedef struct tick_label {
  char main[CRATE__PLOT_MAX_LABEL];
  char sup[8];
} tick_label;

/* Formats tick v of tick set t: "10" with exponent sup for decades, else
 * the decimals the tick step needs (%.4g for tiny steps or huge values). */
void crate__plot_format_tick(const crate_plot_tickset *t, double v, tick_label *out);

/* ---- canvas.c: pixels and text ------------------------------------------- */

/* Blends colour c (0xRRGGBB) with opacity a in [0, 1] into pixel (x, y),
 * which must lie on the canvas. */
void crate__plot_blend(crate_plot *p, size_t x, size_t y, uint32_t c, double a);

/* Fills [x0, x1) x [y0, y1) with colour c; pixels off the canvas are
 * skipped. */
void crate__plot_fill_rect(crate_plot *p, long x0, long y0, long x1, long y1, uint32_t c);

/* Draws text with its top-left corner at (x, y); rotated text runs upwards
 * from (x, y), which is then its bottom-left corner.  Bold draws twice. */
void crate__plot_draw_text(crate_plot *p, long x, long y, const char *s, size_t scale, uint32_t c,
                           bool bold, bool rotated);

/* ---- canvas.c: the coverage layer for lines and markers ------------------ */

typedef struct pen {
  double half;  /* half the line width */
  double on;    /* dash: length drawn per period (0: solid) */
  double period;
} pen;

/* The pen of a line style (width, dash pattern). */
pen crate__plot_make_pen(const crate_plot_style *st);

/* Rasterises segment A->B into the coverage layer inside the rectangle
 * [rx0, rx1) x [ry0, ry1) of pixels.  s0 is the arc length at A (dashes). */
void crate__plot_cov_segment(crate_plot *p, const pen *pn, double s0, double ax, double ay,
                             double bx, double by, size_t rx0, size_t ry0, size_t rx1, size_t ry1);

/* Rasterises a marker of size r centred at (X, Y) into the coverage layer
 * inside the rectangle [rx0, rx1) x [ry0, ry1) of pixels. */
void crate__plot_cov_marker(crate_plot *p, crate_plot_marker mk, double r, double X, double Y,
                            size_t rx0, size_t ry0, size_t rx1, size_t ry1);

/* Blends the coverage of [x0, x1) x [y0, y1) in colour c and clears it. */
void crate__plot_cov_flush(crate_plot *p, uint32_t c, size_t x0, size_t y0, size_t x1, size_t y1);

#endif
