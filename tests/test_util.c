/* test_util.c: relative comparisons, slope fits and reporting for tests. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>

void crate_report(const char *id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("# [%s] ", id);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

double crate_rel_linf(const double *a, const double *b, size_t n) {
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]);
    if (!(e <= err))
      err = e; /* also propagates NaN */
    if (fabs(b[i]) > scale)
      scale = fabs(b[i]);
  }
  return err / (scale > 1e-300 ? scale : 1e-300);
}

double crate_rel_linff(const float *a, const float *b, size_t n) {
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]);
    if (!(e <= err))
      err = e;
    if (fabs((double)b[i]) > scale)
      scale = fabs((double)b[i]);
  }
  return err / (scale > 1e-300 ? scale : 1e-300);
}

double crate_rel_l2(const double *a, const double *b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

void crate__assert_allclose(const double *a, const double *b, size_t n, double rtol,
                            double atol, const char *na, const char *nb, const char *file,
                            int line) {
  size_t bad = 0, worst = 0;
  double worst_ex = -1.0;
  for (size_t i = 0; i < n; i++) {
    double lim = atol + rtol * fabs(b[i]);
    double e = fabs(a[i] - b[i]);
    if (!(e <= lim)) {
      double ex = isfinite(e) ? e / (lim > 0 ? lim : 1e-300) : INFINITY;
      if (ex > worst_ex) {
        worst_ex = ex;
        worst = i;
      }
      if (bad < 4)
        print_error("  %s[%zu] = %.17g vs %s[%zu] = %.17g (|diff| %.3g > %.3g)\n", na, i,
                    a[i], nb, i, b[i], e, lim);
      bad++;
    }
  }
  if (bad) {
    print_error("%s:%d: allclose(%s, %s, rtol=%g, atol=%g) failed at %zu of %zu entries; "
                "worst index %zu\n",
                file, line, na, nb, rtol, atol, bad, n, worst);
    fail();
  }
}

double crate_loglog_slope(const double *x, const double *y, size_t n) {
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

void crate_mean_se(const double *x, size_t n, double *mean, double *se) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    m += x[i];
  m /= (double)n;
  double v = 0.0;
  for (size_t i = 0; i < n; i++)
    v += (x[i] - m) * (x[i] - m);
  v /= (double)(n > 1 ? n - 1 : 1);
  *mean = m;
  *se = sqrt(v / (double)n);
}

int crate_run_tests(const char *group, const struct CMUnitTest *tests, size_t n, int argc,
                    char **argv) {
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
