/* error.c: the status model of STYLE.md §4: fixed texts, a thread-local
 * detail buffer, and the single function every error passes through. */
#include <stdarg.h>
#include <string.h>

#include "internal.h"

static _Thread_local char g_msg[1024];

const char *crate_version(void) { return CRATE_VERSION_STRING; }

const char *crate_strerror(int status) {
  switch (status) {
  case CRATE_STATUS_OK: return "success";
  case CRATE_STATUS_ENOMEM: return "out of memory";
  case CRATE_STATUS_EINVAL: return "invalid argument";
  case CRATE_STATUS_EIO: return "input/output error";
  case CRATE_STATUS_ENOENT: return "no such file";
  case CRATE_STATUS_EFORMAT: return "invalid file format";
  case CRATE_STATUS_EBACKEND: return "backend library failure";
  case CRATE_STATUS_ENUMERIC: return "numerical failure";
  default: return "unknown status";
  }
}

const char *crate_error_message(void) { return g_msg; }

void crate_error_clear(void) { g_msg[0] = '\0'; }

int crate__error(int code, const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n < sizeof g_msg) {
    const char *base = strrchr(file, '/');
    snprintf(g_msg + n, sizeof g_msg - (size_t)n, " [%s:%d]", base ? base + 1 : file, line);
  }
  return code;
}

_Noreturn void crate__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "crate: internal assertion failed: %s [%s:%d]\n", expr, file, line);
  abort();
}

bool crate__all_finite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return false;
  return true;
}

bool crate__all_finitef(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return false;
  return true;
}

void *crate__calloc(size_t n, size_t size) {
  if (n == 0 || size == 0)
    return calloc(1, 1);
  if (n > ((size_t)-1) / size)
    return NULL;
  return calloc(n, size);
}
