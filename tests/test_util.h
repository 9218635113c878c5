/* test_util.h: helpers shared by the cmocka test programs.
 *
 * Every numerical test prints what it measured as a TAP comment line
 * ("# [ID] ..."), so drift shows in the logs and not only as a pass/fail
 * flip.  Comparisons are relative (STYLE.md §9): crate_assert_allclose
 * reports the worst index and the first differing pairs on failure.
 */
#ifndef CRATE_TEST_UTIL_H
#define CRATE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crate/crate.h"

/* Prints "# [id] <message>" on stdout (a TAP comment). */
void crate_report(const char *id, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* max_i |a_i - b_i| / max(max_i |b_i|, tiny): relative L-infinity error. */
double crate_rel_linf(const double *a, const double *b, size_t n);
double crate_rel_linff(const float *a, const float *b, size_t n);

/* ||a - b|| / ||b|| (Euclidean; returns ||a|| when b = 0). */
double crate_rel_l2(const double *a, const double *b, size_t n);

/* Fails unless |a_i - b_i| <= atol + rtol |b_i| for all i; prints the worst
 * index and up to four offending pairs. */
#define crate_assert_allclose(a, b, n, rtol, atol) \
  crate__assert_allclose((a), (b), (n), (rtol), (atol), #a, #b, __FILE__, __LINE__)
void crate__assert_allclose(const double *a, const double *b, size_t n, double rtol,
                            double atol, const char *na, const char *nb, const char *file,
                            int line);

/* Fails with a message when cond is false (cmocka's assert with a text). */
#define crate_check(cond, ...)                       \
  do {                                               \
    if (!(cond)) {                                   \
      print_error("check failed: %s\n  ", #cond);    \
      print_error(__VA_ARGS__);                      \
      print_error("\n");                             \
      fail();                                        \
    }                                                \
  } while (0)

/* Least-squares slope of log(y) against log(x) over n points. */
double crate_loglog_slope(const double *x, const double *y, size_t n);

/* Mean and standard error of x[0..n). */
void crate_mean_se(const double *x, size_t n, double *mean, double *se);

/* Runs the group; argv[1], if given, is a cmocka test-name filter
 * (so meson can register each catalogue row as its own test). */
int crate_run_tests(const char *group, const struct CMUnitTest *tests, size_t n, int argc,
                    char **argv);
#define CRATE_RUN(group, tests, argc, argv) \
  crate_run_tests((group), (tests), sizeof(tests) / sizeof((tests)[0]), (argc), (argv))

#endif
