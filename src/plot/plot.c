/* plot.c: line and scatter charts on an RGB canvas (include/crate/plot.h):
 * the plot object and its public API: create / destroy, title, labels,
 * scales, fixed ranges, series (copied, styles validated, palette
 * colours), the pixels and plot area of the last render, and PNG output.
 *
 * The rest of the library, sharing the struct of plot_internal.h:
 *   ticks.c   axis ranges (crate_plot_auto_range), nice ticks
 *             (crate_plot_ticks) and the text of tick labels;
 *   render.c  crate_plot_render: data-to-pixel mapping, margins, grid,
 *             series, frame, tick labels, legend, title and axis labels;
 *   canvas.c  the pixel-level primitives (canvas, text, the coverage layer
 *             for lines and markers);
 *   font.c    the bitmap font.
 * Not MATH.md material: plotting is output tooling.
 */
#include <math.h>
#include <string.h>

#include "crate/image.h"
#include "crate/plot.h"
#include "internal.h"
#include "plot_internal.h"

#define DEFAULT_W 960
#define DEFAULT_H 640
#define MIN_SIZE 160
#define MAX_SIZE 8192

/* ---- small helpers ------------------------------------------------------- */

static int set_string(char **dst, const char *src) {
  char *copy = NULL;
  if (src && *src) {
    size_t n = strlen(src) + 1;
    copy = malloc(n);
    if (!copy)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "plot: cannot copy a string of %zu bytes", n);
    memcpy(copy, src, n);
  }
  free(*dst);
  *dst = copy;
  return CRATE_STATUS_OK;
}

/* ---- public API ---------------------------------------------------------- */

uint32_t crate_plot_palette(size_t i) {
  static const uint32_t colors[10] = {0x1F6FB4, 0xE8710A, 0x2CA02C, 0xD62828, 0x8E5CC2,
                                      0x8C564B, 0xE377C2, 0x808080, 0xB5B512, 0x17B2C8};
  return colors[i % 10];
}

int crate_plot_create(crate_plot **out, size_t width, size_t height) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL output pointer");
  *out = NULL;
  if (width == 0 && height == 0) {
    width = DEFAULT_W;
    height = DEFAULT_H;
  }
  if (width < MIN_SIZE || height < MIN_SIZE || width > MAX_SIZE || height > MAX_SIZE)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: canvas %zu x %zu outside [%d, %d]", width,
                       height, MIN_SIZE, MAX_SIZE);
  crate_plot *p = calloc(1, sizeof *p);
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "plot: cannot allocate the plot");
  p->W = width;
  p->H = height;
  p->rgb = malloc(width * height * 3);
  p->cov = calloc(width * height, sizeof *p->cov);
  if (!p->rgb || !p->cov) {
    crate_plot_destroy(p);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "plot: cannot allocate a %zu x %zu canvas", width,
                       height);
  }
  memset(p->rgb, 255, width * height * 3);
  for (int a = 0; a < 2; a++)
    p->fix_lo[a] = p->fix_hi[a] = NAN;
  *out = p;
  return CRATE_STATUS_OK;
}

void crate_plot_destroy(crate_plot *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->ns; i++) {
    free(p->s[i].name);
    free(p->s[i].x);
    free(p->s[i].y);
  }
  free(p->title);
  free(p->xlabel);
  free(p->ylabel);
  free(p->rgb);
  free(p->cov);
  free(p);
}

int crate_plot_set_title(crate_plot *p, const char *title) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  return set_string(&p->title, title);
}

int crate_plot_set_labels(crate_plot *p, const char *xlabel, const char *ylabel) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  CRATE_TRY(set_string(&p->xlabel, xlabel));
  return set_string(&p->ylabel, ylabel);
}

int crate_plot_set_scale(crate_plot *p, crate_plot_scale xscale, crate_plot_scale yscale) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  if ((xscale != CRATE_PLOT_LINEAR && xscale != CRATE_PLOT_LOG10) ||
      (yscale != CRATE_PLOT_LINEAR && yscale != CRATE_PLOT_LOG10))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: unknown scale (%d, %d)", (int)xscale,
                       (int)yscale);
  p->scale[0] = xscale;
  p->scale[1] = yscale;
  return CRATE_STATUS_OK;
}

int crate_plot_set_range(crate_plot *p, crate_plot_axis axis, double lo, double hi) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  if (axis != CRATE_PLOT_X && axis != CRATE_PLOT_Y)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: unknown axis %d", (int)axis);
  if (isnan(lo) && isnan(hi)) {
    p->fix_lo[axis] = p->fix_hi[axis] = NAN;
    return CRATE_STATUS_OK;
  }
  if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: axis range [%g, %g] is empty or not finite",
                       lo, hi);
  p->fix_lo[axis] = lo;
  p->fix_hi[axis] = hi;
  return CRATE_STATUS_OK;
}

int crate_plot_add(crate_plot *p, const char *name, const double *x, const double *y, size_t n,
                   const crate_plot_style *style) {
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL plot");
  if (p->ns == CRATE__PLOT_MAX_SERIES)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: at most %d series", CRATE__PLOT_MAX_SERIES);
  if (n > 0 && (!x || !y))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL data for a series of %zu points", n);
  if (n > ((size_t)1 << 28))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: series of %zu points is too long", n);
  crate_plot_style st = {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_CIRCLE, false, 0, 0, 0};
  if (style)
    st = *style;
  if ((unsigned)st.line > CRATE_PLOT_NO_LINE || (unsigned)st.marker > CRATE_PLOT_MARKER_PLUS)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: unknown line style %d or marker %d",
                       (int)st.line, (int)st.marker);
  if (!(st.line_width <= 50) || !(st.marker_size <= 50))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: line width %g or marker size %g not in (0, 50]",
                       st.line_width, st.marker_size);
  if (st.use_color && st.color > 0xFFFFFFu)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: colour 0x%X is not 0xRRGGBB",
                       (unsigned)st.color);
  series *s = &p->s[p->ns];
  memset(s, 0, sizeof *s);
  size_t bytes = (n ? n : 1) * sizeof(double);
  s->x = malloc(bytes);
  s->y = malloc(bytes);
  int status = CRATE_STATUS_OK;
  if (!s->x || !s->y)
    status = CRATE_ERROR(CRATE_STATUS_ENOMEM, "plot: cannot copy %zu points", n);
  else
    status = set_string(&s->name, name);
  if (status != CRATE_STATUS_OK) {
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
    return status;
  }
  if (n) {
    memcpy(s->x, x, n * sizeof *x);
    memcpy(s->y, y, n * sizeof *y);
  }
  s->n = n;
  s->style = st;
  s->color = st.use_color ? st.color : crate_plot_palette(p->ns);
  p->ns++;
  return CRATE_STATUS_OK;
}

const uint8_t *crate_plot_pixels(const crate_plot *p, size_t *width, size_t *height) {
  if (!p)
    return NULL;
  if (width)
    *width = p->W;
  if (height)
    *height = p->H;
  return p->rgb;
}

int crate_plot_area(const crate_plot *p, size_t *x0, size_t *y0, size_t *x1, size_t *y1) {
  if (!p || !p->rendered)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: no plot area before a successful render");
  if (x0)
    *x0 = p->ax0;
  if (y0)
    *y0 = p->ay0;
  if (x1)
    *x1 = p->ax1;
  if (y1)
    *y1 = p->ay1;
  return CRATE_STATUS_OK;
}

int crate_plot_write_png(crate_plot *p, const char *path) {
  CRATE_TRY(crate_plot_render(p));
  return crate_png_write_u8(path, p->rgb, p->W, p->H, 3);
}
