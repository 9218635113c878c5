/* plot.h: line and scatter charts rendered to an RGB canvas and saved as PNG.
 *
 * Create a plot, set its title, axis labels and scales, add series (the data
 * are copied), then crate_plot_write_png().  Nothing is drawn until render
 * (write_png renders); there are no callbacks.
 *
 *   crate_plot *p;
 *   crate_plot_create(&p, 0, 0);                       (default 960 x 640)
 *   crate_plot_set_title(p, "MSE vs sigma");
 *   crate_plot_set_labels(p, "sigma", "MSE per dim");
 *   crate_plot_set_scale(p, CRATE_PLOT_LOG10, CRATE_PLOT_LOG10);
 *   crate_plot_add(p, "Bayes", x, y, n, NULL);         (palette colour, line + dots)
 *   crate_plot_write_png(p, "out.png");
 *   crate_plot_destroy(p);
 *
 * Axes are linear or log10, independently.  Automatic ranges cover the data:
 * a linear axis adds a 4% margin on each side; on a log axis spanning at
 * least one decade each end snaps outwards to a power of ten when that adds
 * at most a quarter decade and otherwise gets a 4% margin (in log space), a
 * narrower log axis gets 4% margins.  Ticks: 1-2-5 steps on linear axes; decades with minor ticks
 * at 2..9 on log axes (1-2-5 mantissas, or linear ticks, on short log axes).
 * Points with a non-finite coordinate, or a non-positive one on a log axis,
 * are skipped and break the line.  Drawing is clipped to the plot area.
 * Text uses a built-in 5x7 bitmap font: printable ASCII plus the UTF-8
 * characters U+03C3 (sigma) and U+00B2 (superscript 2); anything else
 * shows as '?'.
 */
#ifndef CRATE_PLOT_H
#define CRATE_PLOT_H

#include "crate/defs.h"

typedef struct crate_plot crate_plot;

typedef enum crate_plot_scale {
  CRATE_PLOT_LINEAR = 0,
  CRATE_PLOT_LOG10 = 1,
} crate_plot_scale;

typedef enum crate_plot_line {
  CRATE_PLOT_SOLID = 0,
  CRATE_PLOT_DASHED = 1,
  CRATE_PLOT_DOTTED = 2,
  CRATE_PLOT_NO_LINE = 3, /* markers only (scatter) */
} crate_plot_line;

typedef enum crate_plot_marker {
  CRATE_PLOT_MARKER_NONE = 0,
  CRATE_PLOT_MARKER_CIRCLE = 1,
  CRATE_PLOT_MARKER_SQUARE = 2,
  CRATE_PLOT_MARKER_TRIANGLE = 3,
  CRATE_PLOT_MARKER_DIAMOND = 4,
  CRATE_PLOT_MARKER_CROSS = 5, /* x */
  CRATE_PLOT_MARKER_PLUS = 6,
} crate_plot_marker;

/* How a series is drawn.  A zero-initialised style is a solid 2-pixel line
 * without markers in the next palette colour. */
typedef struct crate_plot_style {
  crate_plot_line line;
  crate_plot_marker marker;
  bool use_color;     /* false: the palette colour of the series' index */
  uint32_t color;     /* 0xRRGGBB when use_color */
  double line_width;  /* pixels; <= 0 means 2 */
  double marker_size; /* marker radius in pixels; <= 0 means 4 */
} crate_plot_style;

typedef enum crate_plot_axis {
  CRATE_PLOT_X = 0,
  CRATE_PLOT_Y = 1,
} crate_plot_axis;

#define CRATE_PLOT_MAX_TICKS 64
#define CRATE_PLOT_MAX_MINOR 256

/* Ticks of one axis range (see crate_plot_ticks). */
typedef struct crate_plot_tickset {
  size_t n_major, n_minor;
  double major[CRATE_PLOT_MAX_TICKS]; /* increasing, inside [lo, hi] */
  double minor[CRATE_PLOT_MAX_MINOR]; /* increasing, inside [lo, hi] */
  double step;   /* linear major step (or 0 on a log axis with decade ticks) */
  bool decades;  /* log axis whose majors are powers of ten */
} crate_plot_tickset;

/** Creates an empty plot of width x height pixels (0, 0: 960 x 640); each in
 *  [160, 8192].  @return OK, EINVAL or ENOMEM. */
CRATE_API int crate_plot_create(crate_plot **out, size_t width, size_t height);

/** Frees a plot.  NULL is a no-op. */
CRATE_API void crate_plot_destroy(crate_plot *p);

/** Sets (copies) the title; NULL or "" removes it. */
CRATE_API int crate_plot_set_title(crate_plot *p, const char *title);

/** Sets (copies) the axis labels; NULL or "" leaves an axis unlabelled. */
CRATE_API int crate_plot_set_labels(crate_plot *p, const char *xlabel, const char *ylabel);

/** Chooses linear or log10 scales for x and y. */
CRATE_API int crate_plot_set_scale(crate_plot *p, crate_plot_scale xscale,
                                   crate_plot_scale yscale);

/** Fixes an axis range (lo < hi, finite, both > 0 on a log axis at render
 *  time); lo = hi = NaN returns to the automatic range. */
CRATE_API int crate_plot_set_range(crate_plot *p, crate_plot_axis axis, double lo, double hi);

/** Adds a series of n points (x[i], y[i]) (copied); name (copied) is its
 *  legend entry, NULL or "" for none; style may be NULL for a solid line
 *  with circle markers.  At most 32 series.  @return OK, EINVAL, ENOMEM. */
CRATE_API int crate_plot_add(crate_plot *p, const char *name, const double *x,
                             const double *y, size_t n, const crate_plot_style *style);

/** Draws the chart into the canvas.  @return OK, or EINVAL when there is no
 *  series, no drawable point (all skipped) or a fixed range is unusable. */
CRATE_API int crate_plot_render(crate_plot *p);

/** Renders and writes the canvas as an 8-bit RGB PNG.  @return OK, EINVAL
 *  (see render) or EIO. */
CRATE_API int crate_plot_write_png(crate_plot *p, const char *path);

/** The canvas, (height, width, 3) RGB bytes, as of the last render (white
 *  before).  Borrowed; width and height may be NULL. */
CRATE_API const uint8_t *crate_plot_pixels(const crate_plot *p, size_t *width,
                                           size_t *height);

/** The plot area of the last render in pixels: columns [x0, x1), rows
 *  [y0, y1).  @return OK, or EINVAL before the first successful render. */
CRATE_API int crate_plot_area(const crate_plot *p, size_t *x0, size_t *y0, size_t *x1,
                              size_t *y1);

/** Palette colour i (0xRRGGBB); it cycles after 10 colours. */
CRATE_API uint32_t crate_plot_palette(size_t i);

/** The automatic axis range for data in [dmin, dmax] (dmin <= dmax, finite,
 *  > 0 on a log axis); equal values get a range around them.
 *  @return OK or EINVAL. */
CRATE_API int crate_plot_auto_range(crate_plot_scale scale, double dmin, double dmax,
                                    double *lo, double *hi);

/** Nice ticks inside [lo, hi] (lo < hi, finite; > 0 on a log axis).  Linear:
 *  the smallest step in {1, 2, 5} x 10^k that gives at most max_major major
 *  ticks (max_major >= 2), no minor ticks.  Log: powers of ten with minor
 *  ticks at 2..9 x 10^k when at least two decades fall inside, otherwise
 *  1-2-5 mantissas, otherwise linear ticks.  @return OK or EINVAL. */
CRATE_API int crate_plot_ticks(crate_plot_scale scale, double lo, double hi,
                               size_t max_major, crate_plot_tickset *out);

#endif
