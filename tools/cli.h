/* cli.h: shared helpers of the crate command-line program (STYLE.md §5).
 *
 * Exit codes: 0 success, 1 run-time failure, 2 usage error.  Numbers are
 * parsed with strtol/strtod plus range checks; a bad value is a usage error
 * that names the flag.
 */
#ifndef CRATE_TOOLS_CLI_H
#define CRATE_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crate/crate.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* A subcommand: name, entry point (argc/argv with argv[0] = name), summary. */
typedef struct cli_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} cli_command;

/* Prints "crate <cmd>: <message>\nTry 'crate <cmd> --help'." to stderr and
 * returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints "crate <cmd>: <message>" to stderr and returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints "crate <cmd>: <crate_error_message() or crate_strerror(st)>" and
 * returns CLI_FAIL. */
int cli_fail_status(const char *cmd, int st);

/* Checked number parsing: whole string, finite, within [lo, hi].  On failure
 * prints a usage error naming the flag and returns false. */
bool cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi,
                    long *out);
bool cli_parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                      double *out);
/* Parses a 64-bit seed; "-1" picks one from the clock and says so. */
bool cli_parse_seed(const char *cmd, const char *s, uint64_t *out);

/* Resets getopt so that a subcommand can rescan (glibc: optind = 0). */
void cli_getopt_reset(void);

#endif
