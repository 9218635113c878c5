/* bench.h: what the two files of `crate bench` share: cmd_bench.c measures
 * (and owns the command line), bench_plot.c draws figures from the JSON
 * lines of earlier runs (--plot).
 */
#ifndef CRATE_TOOLS_BENCH_H
#define CRATE_TOOLS_BENCH_H

#include <stddef.h>

/* Median of x[0..n) (sorts x in place); NaN when n is 0. */
double bench_median(double *x, size_t n);

/* --plot: draws the records of the JSON-lines file path for one sweep
 * ("threads", "batch" or "size") into the PNG out.  Prints failures.
 * @return CLI_OK, CLI_FAIL, or CLI_USAGE for an unknown sweep. */
int bench_plot(const char *path, const char *sweep, const char *out);

#endif
