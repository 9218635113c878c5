/* ticks.c: axis ranges and ticks of the plot library (include/crate/plot.h):
 * crate_plot_auto_range (a 4 % margin, or whole decades on a log axis when
 * that adds at most a quarter decade), crate_plot_ticks (1-2-5 steps on a
 * linear axis; decades, strided when there are many, with minor ticks at
 * 2..9 on a log axis; a short log axis falls back to 1-2-5 mantissas, then
 * to linear ticks) and the text of a tick label (crate__plot_format_tick:
 * decimals from the tick step, "10" with a raised exponent for decades).
 * Pure arithmetic on data units; pixels are render.c's.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "crate/plot.h"
#include "internal.h"
#include "plot_internal.h"

static double pow10i(int k) { return k >= 0 ? pow(10.0, k) : 1.0 / pow(10.0, -k); }

int crate_plot_auto_range(crate_plot_scale scale, double dmin, double dmax, double *lo,
                          double *hi) {
  if (!lo || !hi)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL range output");
  if (!isfinite(dmin) || !isfinite(dmax) || dmin > dmax)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: bad data range [%g, %g]", dmin, dmax);
  if (scale == CRATE_PLOT_LOG10) {
    if (!(dmin > 0))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: log axis needs positive data, got %g", dmin);
    double l0 = log10(dmin), l1 = log10(dmax);
    if (l1 - l0 >= 1.0 - 1e-9) {
      /* a decade or more: each end snaps out to a decade if that adds at
       * most a quarter decade, else gets a 4% margin */
      double f0 = floor(l0 + 1e-9), f1 = ceil(l1 - 1e-9), m = 0.04 * (l1 - l0);
      *lo = l0 - f0 <= 0.25 ? pow10i((int)f0) : pow(10.0, l0 - m);
      *hi = f1 - l1 <= 0.25 ? pow10i((int)f1) : pow(10.0, l1 + m);
    } else {
      double m = l1 > l0 ? 0.04 * (l1 - l0) : 0.3;
      *lo = pow(10.0, l0 - m);
      *hi = pow(10.0, l1 + m);
    }
  } else if (scale == CRATE_PLOT_LINEAR) {
    if (dmin == dmax) {
      double h = dmin == 0 ? 1.0 : 0.1 * fabs(dmin);
      *lo = dmin - h;
      *hi = dmax + h;
    } else {
      double m = 0.04 * (dmax - dmin);
      *lo = dmin - m;
      *hi = dmax + m;
    }
    if (!isfinite(*lo) || !isfinite(*hi))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: data range [%g, %g] too wide", dmin, dmax);
  } else {
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: unknown scale %d", (int)scale);
  }
  return CRATE_STATUS_OK;
}

/* Linear ticks m * 10^e * i inside [lo, hi]; false if more than cap. */
static bool linear_ticks(double lo, double hi, size_t max_major, crate_plot_tickset *out) {
  static const int mant[3] = {1, 2, 5};
  double span = hi - lo;
  int e = (int)floor(log10(span / (double)max_major)) - 1;
  for (int iter = 0; iter < 40; iter++, e++)
    for (int k = 0; k < 3; k++) {
      double step = mant[k] * pow10i(e);
      double a = ceil(lo / step - 1e-9), b = floor(hi / step + 1e-9);
      if (!(b - a + 1 <= (double)max_major) || b - a + 1 > CRATE_PLOT_MAX_TICKS)
        continue;
      out->n_major = 0;
      for (double i = a; i <= b; i++) {
        /* i * m / 10^-e is the correctly rounded tick (0.6, not 3 * 0.2) */
        double v = e >= 0 ? i * mant[k] * pow10i(e) : i * mant[k] / pow10i(-e);
        out->major[out->n_major++] = v == 0 ? 0.0 : v;
      }
      out->step = step;
      return out->n_major >= 1;
    }
  return false;
}

int crate_plot_ticks(crate_plot_scale scale, double lo, double hi, size_t max_major,
                     crate_plot_tickset *out) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: NULL tick output");
  memset(out, 0, sizeof *out);
  if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: empty or non-finite axis range [%g, %g]", lo,
                       hi);
  if (max_major < 2 || max_major > CRATE_PLOT_MAX_TICKS)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: max_major must be in [2, %d], got %zu",
                       CRATE_PLOT_MAX_TICKS, max_major);
  if (scale != CRATE_PLOT_LINEAR && scale != CRATE_PLOT_LOG10)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: unknown scale %d", (int)scale);
  if (scale == CRATE_PLOT_LOG10) {
    if (!(lo > 0))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: log axis range must be positive, got [%g, %g]",
                         lo, hi);
    double l0 = log10(lo), l1 = log10(hi);
    int k0 = (int)ceil(l0 - 1e-9), k1 = (int)floor(l1 + 1e-9);
    if (k1 - k0 + 1 >= 2) {
      int ndec = k1 - k0 + 1;
      int stride = (ndec + (int)max_major - 1) / (int)max_major;
      out->decades = true;
      for (int k = (int)floor(l0) - 1; k <= k1; k++) {
        double v = pow10i(k);
        bool major = v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) &&
                     ((k % stride) + stride) % stride == 0;
        if (major) {
          out->major[out->n_major++] = v;
        } else if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) &&
                   out->n_minor < CRATE_PLOT_MAX_MINOR) {
          out->minor[out->n_minor++] = v;
        }
        if (stride == 1)
          for (int m = 2; m <= 9; m++) {
            double w = k >= 0 ? m * pow10i(k) : m / pow10i(-k);
            if (w >= lo * (1 - 1e-9) && w <= hi * (1 + 1e-9) && out->n_minor < CRATE_PLOT_MAX_MINOR)
              out->minor[out->n_minor++] = w;
          }
      }
      if (out->n_major >= 2)
        return CRATE_STATUS_OK;
      memset(out, 0, sizeof *out);
    }
    /* short log axis: 1-2-5 mantissas, else linear ticks */
    for (int k = (int)floor(l0) - 1; k <= (int)ceil(l1); k++)
      for (int m = 1; m <= 9; m++) {
        double w = k >= 0 ? m * pow10i(k) : m / pow10i(-k);
        if (w < lo * (1 - 1e-9) || w > hi * (1 + 1e-9))
          continue;
        if ((m == 1 || m == 2 || m == 5) && out->n_major < CRATE_PLOT_MAX_TICKS)
          out->major[out->n_major++] = w;
        else if (out->n_minor < CRATE_PLOT_MAX_MINOR)
          out->minor[out->n_minor++] = w;
      }
    if (out->n_major >= 2 && out->n_major <= max_major)
      return CRATE_STATUS_OK;
    memset(out, 0, sizeof *out);
  }
  if (!linear_ticks(lo, hi, max_major, out))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "plot: no ticks for range [%g, %g]", lo, hi);
  return CRATE_STATUS_OK;
}

void crate__plot_format_tick(const crate_plot_tickset *t, double v, tick_label *out) {
  out->sup[0] = 0;
  if (t->decades) {
    int k = (int)lrint(log10(v));
    snprintf(out->main, sizeof out->main, "10");
    snprintf(out->sup, sizeof out->sup, "%d", k);
    return;
  }
  double a = fabs(v);
  if (t->step > 0 && (t->step >= 1e-4 && a < 1e6)) {
    int dec = (int)(-floor(log10(t->step) + 1e-9));
    if (dec < 0)
      dec = 0;
    snprintf(out->main, sizeof out->main, "%.*f", dec, v);
  } else {
    snprintf(out->main, sizeof out->main, "%.4g", v);
  }
}
