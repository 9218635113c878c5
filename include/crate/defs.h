/* defs.h: export macro and version shared by every public header. */
#ifndef CRATE_DEFS_H
#define CRATE_DEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CRATE_API __attribute__((visibility("default")))
#else
#define CRATE_API
#endif

#define CRATE_VERSION_STRING "0.1.0"

/** @return the library version string, e.g. "0.1.0" (static storage). */
CRATE_API const char *crate_version(void);

#endif
