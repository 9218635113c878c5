/* safetensors.h: reading and writing safetensors files (MODEL.md §11.1).
 *
 * Layout: [u64 little-endian N][N bytes UTF-8 JSON header][data buffer].
 * The header maps tensor names to {"dtype", "shape", "data_offsets"} and may
 * carry "__metadata__" (string -> string).  This module is the generic file
 * layer; the model's names, shapes and config keys (MODEL.md §6, §11.2,
 * §11.3) live in modelio.h.
 *
 * Reader (crate_st): the whole file is read into memory and every rule of
 * the reference reader (huggingface/safetensors tensor.rs) is enforced: the
 * header length (<= 100,000,000 and inside the file), valid JSON with no
 * duplicate names, a well-formed entry per tensor, offsets that tile the data
 * buffer with no holes or overlaps once sorted, sizes equal to numel x dtype
 * size (overflow-checked), a buffer that ends exactly at the end of the
 * file, and string-only metadata.  F32 is read as is, F16 and BF16 are
 * converted to float on load, F64 is allowed (test fixtures) and available
 * both exactly (double) and rounded to float.  Any other dtype is rejected
 * with a message naming it.  NaN and Inf values are not checked here.
 * Every failure is CRATE_STATUS_EFORMAT with a "safetensors: <file>: ..."
 * message naming the problem; a missing file is ENOENT, a read error EIO.
 *
 * Writer (crate_st_writer): collects tensors (F32 or F64, borrowed data) and
 * metadata, then writes a deterministic file: tensors ordered by descending
 * dtype alignment then by name (byte order of the UTF-8 names), "__metadata__"
 * first in the header with its keys sorted, the JSON padded with spaces to a
 * multiple of 8 so that the data buffer starts 8-aligned.  The file is
 * written to a temporary file in the same directory and renamed over the
 * target, so readers never see a partial file.
 *
 * Host byte order: values are decoded from little-endian explicitly, so the
 * module also works on big-endian hosts (with a copy).
 */
#ifndef CRATE_SAFETENSORS_H
#define CRATE_SAFETENSORS_H

#include "crate/defs.h"

/** Most dimensions a tensor may have (the format has no limit; 8 is ample). */
#define CRATE_ST_MAX_DIMS 8
/** Largest header the reader accepts (the reference reader's limit). */
#define CRATE_ST_MAX_HEADER 100000000u

/** Element types the reader accepts. */
typedef enum crate_st_dtype {
  CRATE_ST_F32 = 0, /* IEEE binary32 */
  CRATE_ST_F64,     /* IEEE binary64 (test fixtures) */
  CRATE_ST_F16,     /* IEEE binary16, converted to float on load */
  CRATE_ST_BF16,    /* bfloat16, converted to float on load */
} crate_st_dtype;

/** @return the safetensors name of a dtype ("F32", ...; static storage). */
CRATE_API const char *crate_st_dtype_name(crate_st_dtype dtype);

/* ---- reader --------------------------------------------------------------------- */

typedef struct crate_st crate_st;

/** One tensor of an open file (a view: every pointer is borrowed from the
 *  crate_st and valid until crate_st_close). */
typedef struct crate_st_tensor {
  const char *name;                /* tensor name (UTF-8, NUL-terminated) */
  crate_st_dtype dtype;            /* dtype as stored in the file */
  size_t ndim;                     /* 0 (scalar) .. CRATE_ST_MAX_DIMS */
  size_t shape[CRATE_ST_MAX_DIMS]; /* first ndim entries used, rest 0 */
  size_t count;                    /* elements = product of shape (1 for rank 0) */
  const float *data;               /* count floats: the values, converted to float
                                      for F16/BF16/F64 (F64 rounded to nearest);
                                      never NULL (may be a dummy when count = 0) */
  const double *data64;            /* F64 tensors: the exact count doubles;
                                      NULL for every other dtype */
} crate_st_tensor;

/** Opens and validates a safetensors file, reading it whole.
 *  @param path file to read
 *  @param out  receives the handle (owned; free with crate_st_close)
 *  @return OK; ENOENT (no such file); EIO (read error); EFORMAT (invalid
 *          file, message "safetensors: <path>: ..."); ENOMEM.  *out is
 *          untouched on error. */
CRATE_API int crate_st_open(const char *path, crate_st **out);

/** Same as crate_st_open on bytes in memory (copied; buf may be freed after
 *  the call).  label names the source in error messages (NULL: "<memory>").
 *  @return OK, EFORMAT, EINVAL (buf NULL with len > 0) or ENOMEM. */
CRATE_API int crate_st_open_memory(const void *buf, size_t len, const char *label, crate_st **out);

/** Frees the handle and every view into it.  NULL is a no-op. */
CRATE_API void crate_st_close(crate_st *st);

/** @return the file name (or memory label) given at open (borrowed). */
CRATE_API const char *crate_st_path(const crate_st *st);

/** @return the number of tensors in the file. */
CRATE_API size_t crate_st_count(const crate_st *st);

/** Fills *out with tensor i, in data-buffer order (ascending offsets).
 *  @return OK or EINVAL (i out of range). */
CRATE_API int crate_st_tensor_at(const crate_st *st, size_t i, crate_st_tensor *out);

/** @return true when the file holds a tensor of that name. */
CRATE_API bool crate_st_has(const crate_st *st, const char *name);

/** Finds a tensor by name.
 *  @return OK, or EFORMAT ("safetensors: <path>: no tensor 'name'"). */
CRATE_API int crate_st_find(const crate_st *st, const char *name, crate_st_tensor *out);

/** @return the header length N in bytes (the JSON including padding). */
CRATE_API size_t crate_st_header_size(const crate_st *st);

/** @return the number of __metadata__ entries (0 when absent). */
CRATE_API size_t crate_st_metadata_count(const crate_st *st);

/** Metadata entry i in header order.  @return OK or EINVAL (out of range). */
CRATE_API int crate_st_metadata_at(const crate_st *st, size_t i, const char **key,
                                   const char **value);

/** @return the metadata value of key (borrowed), or NULL when absent. */
CRATE_API const char *crate_st_metadata(const crate_st *st, const char *key);

/* ---- writer --------------------------------------------------------------------- */

typedef struct crate_st_writer crate_st_writer;

/** Creates an empty writer.  @return OK or ENOMEM. */
CRATE_API int crate_st_writer_create(crate_st_writer **out);

/** Frees the writer (not the borrowed tensor data).  NULL is a no-op. */
CRATE_API void crate_st_writer_destroy(crate_st_writer *w);

/** Adds a float tensor.  The data are BORROWED: they must stay valid and
 *  unchanged until crate_st_writer_write returns.
 *  @param name  non-empty UTF-8, not "__metadata__", not added before
 *  @param ndim  0 .. CRATE_ST_MAX_DIMS; shape may be NULL when ndim = 0
 *  @param data  product(shape) floats (may be NULL when that is 0)
 *  @return OK, EINVAL (bad name, duplicate, rank, size overflow) or ENOMEM. */
CRATE_API int crate_st_writer_add_f32(crate_st_writer *w, const char *name, size_t ndim,
                                      const size_t *shape, const float *data);

/** Adds a double tensor (F64; test fixtures).  Same rules as _add_f32. */
CRATE_API int crate_st_writer_add_f64(crate_st_writer *w, const char *name, size_t ndim,
                                      const size_t *shape, const double *data);

/** Sets a metadata entry (copied; setting a key again replaces its value).
 *  @return OK, EINVAL (NULL or invalid UTF-8) or ENOMEM. */
CRATE_API int crate_st_writer_set_metadata(crate_st_writer *w, const char *key, const char *value);

/** Serialises to memory: *buf receives a malloc'd block of *len bytes (free
 *  it with free()).  Same bytes as crate_st_writer_write.
 *  @return OK, EINVAL (total size overflows) or ENOMEM. */
CRATE_API int crate_st_writer_to_memory(const crate_st_writer *w, void **buf, size_t *len);

/** Writes the file atomically: a temporary file in the same directory, then
 *  rename() over path.  On failure path is untouched and the temporary file
 *  is removed.  @return OK, EIO ("safetensors: <path>: ...") or ENOMEM. */
CRATE_API int crate_st_writer_write(const crate_st_writer *w, const char *path);

#endif
