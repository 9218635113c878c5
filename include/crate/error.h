/* error.h: the status model (STYLE.md §4).
 *
 * Every fallible public function returns an int: CRATE_STATUS_OK (0) or one of
 * the negative codes below.  crate_strerror() gives fixed text for a code;
 * crate_error_message() gives the detail of the most recent error raised on
 * the calling thread ("domain: what happened [file:line]").  The library never
 * calls exit(); only tools/ turns statuses into exit codes.
 */
#ifndef CRATE_ERROR_H
#define CRATE_ERROR_H

#include "crate/defs.h"

typedef enum crate_status {
  CRATE_STATUS_OK = 0,
  CRATE_STATUS_ENOMEM = -1,   /* allocation failed */
  CRATE_STATUS_EINVAL = -2,   /* bad argument, shape or configuration */
  CRATE_STATUS_EIO = -3,      /* read or write failed */
  CRATE_STATUS_ENOENT = -4,   /* input file missing */
  CRATE_STATUS_EFORMAT = -5,  /* invalid file contents */
  CRATE_STATUS_EBACKEND = -6, /* BLAS/LAPACK/libpng/Jansson failure */
  CRATE_STATUS_ENUMERIC = -7, /* non-finite value, matrix not SPD, blow-up */
} crate_status;

/** @return fixed text for a status code (never NULL, static storage). */
CRATE_API const char *crate_strerror(int status);

/** @return the calling thread's last error detail ("" if none).  Borrowed:
 *  valid until the next library call on this thread. */
CRATE_API const char *crate_error_message(void);

/** Clears the calling thread's error detail. */
CRATE_API void crate_error_clear(void);

#endif
