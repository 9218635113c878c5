/* cli.h: shared helpers of the crate command-line program (STYLE.md §5):
 * messages and exit codes, checked number parsing, and the small helpers
 * every subcommand may use (threads default, clock, durations, directories,
 * JSON numbers), all in cli.c.
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

#include <jansson.h>

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

/* ---- helpers shared by the subcommands ------------------------------------------------ */

/* The default of --threads: $CRATE_THREADS when it is a whole number in
 * [1, 1024], else the online CPUs (at least 1). */
long cli_default_threads(void);

/* Seconds on the monotonic clock (CLOCK_MONOTONIC), for intervals. */
double cli_now_s(void);

/* Formats a duration of s seconds, rounded to whole seconds, as "42s",
 * "3m05s" or "2h07m" into buf (n bytes); negative or non-finite s is 0. */
void cli_fmt_duration(double s, char *buf, size_t n);

/* True when path names a directory (following links). */
bool cli_is_dir(const char *path);

/* True when path exists (stat succeeds), whatever its type. */
bool cli_file_exists(const char *path);

/* mkdir -p: creates path and its missing parents (mode 0777 before the
 * umask).  @return 0 when path is a directory afterwards, else -1 (errno
 * says why when a system call failed). */
int cli_make_dirs(const char *path);

/* A JSON number, or null when v is not finite (JSON has no NaN or
 * infinity).  @return a new reference. */
json_t *cli_json_num(double v);

#endif
