/* cli.c: main() of the crate program, the subcommand table and the checked
 * parsing helpers shared by every subcommand (STYLE.md §5). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"

static const cli_command commands[] = {
#define CRATE_COMMAND(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef CRATE_COMMAND
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "crate %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'crate %s --help'.\n", cmd);
  va_end(ap);
  return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "crate %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return CLI_FAIL;
}

int cli_fail_status(const char *cmd, int st) {
  const char *msg = crate_error_message();
  return cli_fail(cmd, "%s", (msg && *msg) ? msg : crate_strerror(st));
}

bool cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi,
                    long *out) {
  char *end = NULL;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || errno == ERANGE) {
    cli_usage_error(cmd, "%s expects an integer, got '%s'", flag, s ? s : "");
    return false;
  }
  if (v < lo || v > hi) {
    cli_usage_error(cmd, "%s must be in [%ld, %ld], got %ld", flag, lo, hi, v);
    return false;
  }
  *out = v;
  return true;
}

bool cli_parse_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                      double *out) {
  char *end = NULL;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || !*s || *end || errno == ERANGE || !isfinite(v)) {
    cli_usage_error(cmd, "%s expects a finite number, got '%s'", flag, s ? s : "");
    return false;
  }
  if (v < lo || v > hi) {
    cli_usage_error(cmd, "%s must be in [%g, %g], got %g", flag, lo, hi, v);
    return false;
  }
  *out = v;
  return true;
}

bool cli_parse_seed(const char *cmd, const char *s, uint64_t *out) {
  if (s && strcmp(s, "-1") == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *out = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    fprintf(stderr, "crate %s: using random seed %llu\n", cmd, (unsigned long long)*out);
    return true;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = s ? strtoull(s, &end, 10) : 0;
  if (!s || !*s || *end || errno == ERANGE || s[0] == '-') {
    cli_usage_error(cmd, "--seed expects a non-negative integer or -1, got '%s'", s ? s : "");
    return false;
  }
  *out = (uint64_t)v;
  return true;
}

void cli_getopt_reset(void) { optind = 0; }

static void print_usage(FILE *f) {
  fprintf(f, "Example: crate gmm denoise\n\n"
             "usage: crate <command> [options]    (crate <command> --help for details)\n\n"
             "Commands:\n");
  for (size_t i = 0; i < n_commands; i++)
    fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "  %-12s %s\n  %-12s %s\n", "help", "show this help", "version",
          "print the version");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return CLI_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
    print_usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(name, "version") || !strcmp(name, "--version") || !strcmp(name, "-V")) {
    printf("crate %s\n", crate_version());
    return CLI_OK;
  }
  for (size_t i = 0; i < n_commands; i++)
    if (!strcmp(name, commands[i].name)) {
      cli_getopt_reset();
      return commands[i].run(argc - 1, argv + 1);
    }
  fprintf(stderr, "crate: unknown command '%s'\nTry 'crate help'.\n", name);
  return CLI_USAGE;
}
