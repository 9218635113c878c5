/* cli.c: main() of the crate program, the subcommand table, the checked
 * parsing helpers and the small helpers (threads default, clock, durations,
 * directories, JSON numbers) shared by every subcommand (STYLE.md §5).
 *
 * Environment fixes (issue 6), both read by libraries only when they load,
 * i.e. before main(), so main() sets what is missing and re-executes itself
 * (readlink of /proc/self/exe) once with the same argv (CRATE_ENV_REEXEC
 * marks the second process, so it never loops):
 *   - BLAS core: Debian's DYNAMIC_ARCH OpenBLAS 0.3.21 does not recognise
 *     recent CPUs (e.g. Xeon family 6 model 207) and falls back to its SSE3
 *     "Prescott" kernels, about 2.5x slower than "SkylakeX" there.  When
 *     OPENBLAS_CORETYPE and CRATE_NO_CORETYPE are unset, OpenBLAS reports a
 *     generic core (crate_blas_core_is_generic) and the CPU has the
 *     instructions of the replacement (AVX-512 F/BW/VL/DQ: SkylakeX; AVX2 +
 *     FMA: Haswell), OPENBLAS_CORETYPE is set.  Results change only by float
 *     rounding (another kernel family sums in another order).
 *   - OpenMP wait policy: in an OpenMP build, for the batch commands (train,
 *     eval, bench) and unless OMP_WAIT_POLICY is set, it becomes "passive".
 *     With libgomp's default spinning, training on all 16 cores of a KVM
 *     guest ran at 190 images/s against 890 with passive waiting (an earlier
 *     session's measurement, made while the MSSA backward still started 64
 *     threads).  On an idle 2-core machine "active" trains 15-20 % faster
 *     (benchmarks/README.md), but spinning threads lose badly whenever
 *     another process wants the cores, so passive stays the default.
 * Silent unless the command line holds -v / --verbose. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "crate/threads.h"

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

/* ---- helpers shared by the subcommands ------------------------------------------------ */

long cli_default_threads(void) {
  const char *e = getenv("CRATE_THREADS");
  if (e && *e) {
    char *end = NULL;
    long v = strtol(e, &end, 10);
    if (*end == '\0' && v >= 1 && v <= 1024)
      return v;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n >= 1 ? n : 1;
}

double cli_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_fmt_duration(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0)
    s = 0;
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(buf, n, "%lds", t);
}

bool cli_is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool cli_file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

int cli_make_dirs(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf)
    return -1;
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
      buf[i] = c;
    }
  }
  return cli_is_dir(path) ? 0 : -1;
}

json_t *cli_json_num(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

static void print_usage(FILE *f) {
  fprintf(f, "Example: crate gmm denoise\n\n"
             "usage: crate <command> [options]    (crate <command> --help for details)\n\n"
             "Commands:\n");
  for (size_t i = 0; i < n_commands; i++)
    fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "  %-12s %s\n  %-12s %s\n", "help", "show this help", "version", "print the version");
}

#define REEXEC_MARKER "CRATE_ENV_REEXEC"

/* The OpenBLAS core to force on this CPU, or NULL. */
static const char *better_core(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
#endif
  return NULL;
}

/* Environment read only when libraries load (see the file comment):
 * OPENBLAS_CORETYPE when OpenBLAS fell back to generic kernels, and
 * OMP_WAIT_POLICY=passive for the batch commands of an OpenMP build when
 * the user set no policy.
 * Sets what is missing and re-executes this program once; returns only when
 * nothing was needed or the exec failed. */
static void tune_environment(int argc, char **argv, bool verbose) {
  const char *core = crate_blas_core();
  if (getenv(REEXEC_MARKER)) {
    if (verbose)
      fprintf(stderr,
              "crate: restarted with OPENBLAS_CORETYPE=%s OMP_WAIT_POLICY=%s; BLAS core now %s\n",
              getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
              getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)", core);
    return;
  }
  const char *want = NULL;
  if (!getenv("OPENBLAS_CORETYPE") && !getenv("CRATE_NO_CORETYPE") &&
      crate_blas_core_is_generic(core))
    want = better_core();
  /* the batch paths only: single-image commands open few parallel regions */
  const char *cmd = argc > 1 ? argv[1] : "";
  const bool batch_cmd = !strcmp(cmd, "train") || !strcmp(cmd, "eval") || !strcmp(cmd, "bench");
  const bool passive = batch_cmd && crate_have_openmp() && !getenv("OMP_WAIT_POLICY");
  if (!want && !passive)
    return;
  if (verbose && want)
    fprintf(stderr,
            "crate: OpenBLAS chose its generic %s kernels on a CPU with %s; setting "
            "OPENBLAS_CORETYPE=%s (set CRATE_NO_CORETYPE=1 to keep %s)\n",
            core, strcmp(want, "SkylakeX") ? "AVX2" : "AVX-512", want, core);
  if (verbose && passive)
    fprintf(stderr, "crate: setting OMP_WAIT_POLICY=passive (set OMP_WAIT_POLICY=active to "
                    "let idle OpenMP threads spin)\n");
  if ((want && setenv("OPENBLAS_CORETYPE", want, 1) != 0) ||
      (passive && setenv("OMP_WAIT_POLICY", "passive", 1) != 0) ||
      setenv(REEXEC_MARKER, "1", 1) != 0)
    return;
  /* exec the resolved path, not /proc/self/exe, so that ps and top keep
   * showing "crate" rather than "exe" */
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    fflush(NULL);
    execv(self, argv);
  }
  /* exec failed: carry on with what is already loaded */
  if (verbose)
    fprintf(stderr, "crate: could not re-execute itself; keeping BLAS core %s\n", core);
  if (want)
    unsetenv("OPENBLAS_CORETYPE");
  if (passive)
    unsetenv("OMP_WAIT_POLICY");
  unsetenv(REEXEC_MARKER);
}

int main(int argc, char **argv) {
  bool verbose = false;
  for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
    verbose = verbose || !strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose");
  tune_environment(argc, argv, verbose);
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
