/* safetensors_internal.h: what the safetensors reader (safetensors_read.c)
 * and writer (safetensors_write.c) share (MODEL.md §11.1, STYLE.md §9.5).
 * Both are defined in safetensors_read.c, next to the byte-order helpers
 * and the dtype table.  No Jansson types here: jansson.h stays in the two
 * .c files.
 */
#ifndef CRATE_IO_SAFETENSORS_INTERNAL_H
#define CRATE_IO_SAFETENSORS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "crate/safetensors.h"

/* True on a little-endian host (safetensors data are little-endian). */
bool crate__st_host_is_little_endian(void);

/* Bytes per element of a supported dtype (8, 4 or 2; 0 for any other value). */
size_t crate__st_dtype_size(crate_st_dtype dt);

/* A malloc'd copy of s, or NULL when out of memory; the caller frees it. */
char *crate__st_dup_str(const char *s);

#endif
