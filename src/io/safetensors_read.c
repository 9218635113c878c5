/* safetensors_read.c: the safetensors reader (MODEL.md §11.1, STYLE.md
 * principle 12 and §9.5), and the byte-order helpers and dtype table that
 * the writer (safetensors_write.c) shares through safetensors_internal.h.
 *
 * These two files are the only ones in src/ that include jansson.h.  The
 * reader enforces every rule of the reference reader (huggingface/safetensors
 * safetensors/src/tensor.rs, `SafeTensors::read_metadata` and
 * `Metadata::validate`):
 *   - header length N <= 100,000,000 and 8 + N <= file size;
 *   - the header is one JSON object, parsed with JSON_REJECT_DUPLICATES;
 *   - each tensor entry has a dtype string, a shape array of non-negative
 *     integers and data_offsets [BEGIN, END] with BEGIN <= END;
 *   - sorted by (BEGIN, END), the tensors tile the data buffer: the first
 *     BEGIN is 0 and every BEGIN equals the previous END;
 *   - END - BEGIN == numel * bits(dtype) / 8, computed with overflow checks
 *     in bits (sub-byte types F4/F6 exist), numel * bits a multiple of 8;
 *   - 8 + N + last END == file size;
 *   - __metadata__ maps strings to strings only.
 * On top of that it accepts only F32, F16, BF16 (converted to float) and F64
 * (fixtures), naming any other dtype in the error.
 *
 * Non-goals: mmap (files are read whole), dtypes other than the four above.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crate/safetensors.h"
#include "internal.h"
#include "safetensors_internal.h"

/* ---- byte order and element conversion ----------------------------------- */

bool crate__st_host_is_little_endian(void) {
  const uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static uint64_t load_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint32_t load_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t load_le16(const unsigned char *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* IEEE binary16 -> binary32, exact (every half is a float). */
static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {
    /* zero or subnormal: man * 2^-24 is exact in float */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) /* Inf or NaN (payload kept) */
    return bits_to_float(sign | 0x7f800000u | man << 13);
  return bits_to_float(sign | (exp + 112u) << 23 | man << 13);
}

/* bfloat16 is the top half of a binary32. */
static float bf16_to_float(uint16_t h) {
  return bits_to_float((uint32_t)h << 16);
}

/* ---- dtype table ------------------------------------------------------------ */

typedef struct dtype_info {
  const char *name;
  unsigned bits;
  int ours; /* crate_st_dtype value, or -1 when the dtype is valid but unsupported */
} dtype_info;

/* Every dtype of the reference implementation (safetensors 0.5), so that an
 * unsupported-but-valid file gets a precise message. */
static const dtype_info g_dtypes[] = {
    {"F32", 32, CRATE_ST_F32},
    {"F64", 64, CRATE_ST_F64},
    {"F16", 16, CRATE_ST_F16},
    {"BF16", 16, CRATE_ST_BF16},
    {"BOOL", 8, -1},
    {"U8", 8, -1},
    {"I8", 8, -1},
    {"F8_E5M2", 8, -1},
    {"F8_E4M3", 8, -1},
    {"F8_E8M0", 8, -1},
    {"I16", 16, -1},
    {"U16", 16, -1},
    {"I32", 32, -1},
    {"U32", 32, -1},
    {"I64", 64, -1},
    {"U64", 64, -1},
    {"F4", 4, -1},
    {"F6_E2M3", 6, -1},
    {"F6_E3M2", 6, -1},
    {"C64", 64, -1},
};

static const dtype_info *dtype_lookup(const char *name) {
  for (size_t i = 0; i < sizeof g_dtypes / sizeof g_dtypes[0]; i++)
    if (strcmp(g_dtypes[i].name, name) == 0)
      return &g_dtypes[i];
  return NULL;
}

const char *crate_st_dtype_name(crate_st_dtype dtype) {
  switch (dtype) {
  case CRATE_ST_F32: return "F32";
  case CRATE_ST_F64: return "F64";
  case CRATE_ST_F16: return "F16";
  case CRATE_ST_BF16: return "BF16";
  }
  return "?";
}

size_t crate__st_dtype_size(crate_st_dtype dt) {
  switch (dt) {
  case CRATE_ST_F64: return 8;
  case CRATE_ST_F32: return 4;
  case CRATE_ST_F16:
  case CRATE_ST_BF16: return 2;
  }
  return 0;
}

/* ---- reader ------------------------------------------------------------------ */

typedef struct st_entry {
  char *name;
  crate_st_dtype dtype;
  size_t ndim;
  size_t shape[CRATE_ST_MAX_DIMS];
  size_t count;
  uint64_t begin, end; /* relative to the data buffer */
  const float *f;      /* float view */
  const double *d;     /* F64 only */
} st_entry;

struct crate_st {
  char *path;
  unsigned char *buf; /* the whole file */
  size_t size;
  size_t hdr;  /* N */
  st_entry *e; /* sorted by (begin, end, name) */
  size_t n;
  size_t *by_name; /* indices into e sorted by name */
  char **mkey, **mval;
  size_t nmeta;
  void *conv; /* converted values: doubles first, then floats */
};

static const float g_empty_f[1] = {0.0f};
static const double g_empty_d[1] = {0.0};

char *crate__st_dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

void crate_st_close(crate_st *st) {
  if (!st)
    return;
  for (size_t i = 0; i < st->n; i++)
    free(st->e[i].name);
  for (size_t i = 0; i < st->nmeta; i++) {
    free(st->mkey[i]);
    free(st->mval[i]);
  }
  free(st->e);
  free(st->by_name);
  free(st->mkey);
  free(st->mval);
  free(st->conv);
  free(st->buf);
  free(st->path);
  free(st);
}

static int cmp_offsets(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* qsort has no context argument: the index sort reads the entries here.  The
 * pointer is set and used within one call of st_parse (no concurrency issue
 * because qsort is synchronous and the pointer is thread-local). */
static _Thread_local const st_entry *g_sort_entries;

static int cmp_names(const void *a, const void *b) {
  const size_t i = *(const size_t *)a, j = *(const size_t *)b;
  return strcmp(g_sort_entries[i].name, g_sort_entries[j].name);
}

/* A non-negative JSON integer (rejects reals, negatives, other types). */
static bool json_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v))
    return false;
  json_int_t x = json_integer_value(v);
  if (x < 0)
    return false;
  *out = (uint64_t)x;
  return true;
}

/* Parses one tensor entry.  Structural problems are EFORMAT; a valid but
 * unsupported dtype is reported by *unsupported (checked after the layout,
 * as the reference reader accepts it). */
static int parse_entry(const char *path, const char *name, json_t *v, st_entry *e,
                       const char **unsupported) {
  if (!json_is_object(v))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: entry '%s' is not an object; each tensor needs "
                       "{\"dtype\", \"shape\", \"data_offsets\"}",
                       path, name);
  json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
         *jo = json_object_get(v, "data_offsets");
  if (!jd || !js || !jo)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s' lacks \"%s\"; each tensor needs "
                       "{\"dtype\", \"shape\", \"data_offsets\"}",
                       path, name,
                       !jd   ? "dtype"
                       : !js ? "shape"
                             : "data_offsets");
  if (!json_is_string(jd))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "safetensors: %s: tensor '%s': dtype is not a string",
                       path, name);
  const char *dts = json_string_value(jd);
  const dtype_info *di = dtype_lookup(dts);
  if (!di)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s' has unknown dtype '%s' (not a safetensors "
                       "dtype)",
                       path, name, dts);
  if (!json_is_array(js))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': shape is not an array of integers", path,
                       name);
  size_t ndim = json_array_size(js);
  if (ndim > CRATE_ST_MAX_DIMS)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s' has %zu dimensions; crate reads at most %d",
                       path, name, ndim, CRATE_ST_MAX_DIMS);
  uint64_t dims[CRATE_ST_MAX_DIMS];
  bool zero = false, overflow = false;
  memset(e->shape, 0, sizeof e->shape);
  for (size_t k = 0; k < ndim; k++) {
    if (!json_u64(json_array_get(js, k), &dims[k]))
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "safetensors: %s: tensor '%s': shape entry %zu is not a non-negative "
                         "integer",
                         path, name, k);
    zero |= dims[k] == 0;
    overflow |= dims[k] > SIZE_MAX;
    e->shape[k] = (size_t)dims[k];
  }
  /* numel with overflow checks; a zero dimension makes it 0 whatever the
   * other dimensions are. */
  uint64_t numel = zero ? 0 : 1;
  for (size_t k = 0; k < ndim && !zero; k++) {
    if (numel > UINT64_MAX / dims[k])
      overflow = true;
    else
      numel *= dims[k];
  }
  overflow &= !zero;
  if (!json_is_array(jo) || json_array_size(jo) != 2)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': data_offsets must be [BEGIN, END]", path,
                       name);
  uint64_t b, en;
  if (!json_u64(json_array_get(jo, 0), &b) || !json_u64(json_array_get(jo, 1), &en))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': data_offsets must be non-negative integers",
                       path, name);
  if (en < b)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': data_offsets [%llu, %llu] end before they "
                       "begin",
                       path, name, (unsigned long long)b, (unsigned long long)en);
  if (overflow || numel > UINT64_MAX / di->bits || numel > SIZE_MAX)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': the element count of its shape overflows",
                       path, name);
  uint64_t nbits = numel * di->bits;
  if (nbits % 8 != 0)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s': %llu elements of %s do not fill whole bytes",
                       path, name, (unsigned long long)numel, dts);
  if (en - b != nbits / 8)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: tensor '%s' (%s, %llu elements) needs %llu bytes but its "
                       "data_offsets [%llu, %llu] span %llu",
                       path, name, dts, (unsigned long long)numel, (unsigned long long)(nbits / 8),
                       (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b));
  e->ndim = ndim;
  e->count = (size_t)numel;
  e->begin = b;
  e->end = en;
  if (di->ours < 0)
    *unsupported = di->name;
  else
    e->dtype = (crate_st_dtype)di->ours;
  return CRATE_STATUS_OK;
}

static int parse_metadata(crate_st *st, json_t *m) {
  if (json_is_null(m))
    return CRATE_STATUS_OK;
  if (!json_is_object(m))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: __metadata__ is not an object; it must map strings to "
                       "strings",
                       st->path);
  size_t n = json_object_size(m);
  st->mkey = crate__calloc(n, sizeof *st->mkey);
  st->mval = crate__calloc(n, sizeof *st->mval);
  if (!st->mkey || !st->mval)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory for metadata");
  const char *key;
  json_t *val;
  json_object_foreach(m, key, val) {
    if (!json_is_string(val))
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "safetensors: %s: __metadata__ key '%s' has a non-string value; "
                         "metadata maps strings to strings only (quote the value)",
                         st->path, key);
    st->mkey[st->nmeta] = crate__st_dup_str(key);
    st->mval[st->nmeta] = crate__st_dup_str(json_string_value(val));
    st->nmeta++;
    if (!st->mkey[st->nmeta - 1] || !st->mval[st->nmeta - 1])
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory for metadata");
  }
  return CRATE_STATUS_OK;
}

/* Builds the float (and double) views: F32 data that is 4-aligned in the
 * buffer on a little-endian host is used in place, everything else is
 * converted into one block. */
static int make_views(crate_st *st) {
  const bool le = crate__st_host_is_little_endian();
  const unsigned char *data = st->buf + 8 + st->hdr;
  size_t nd = 0, nf = 0;
  for (size_t i = 0; i < st->n; i++) {
    const st_entry *e = &st->e[i];
    const unsigned char *p = data + e->begin;
    if (e->dtype == CRATE_ST_F64) {
      nf += e->count;
      if (!le || (uintptr_t)p % sizeof(double) != 0)
        nd += e->count;
    } else if (e->dtype != CRATE_ST_F32 || !le || (uintptr_t)p % sizeof(float) != 0) {
      nf += e->count;
    }
  }
  if (nd > (SIZE_MAX / 2) / sizeof(double) || nf > (SIZE_MAX / 2) / sizeof(float))
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: %s: converted data too large", st->path);
  if (nd + nf > 0) {
    st->conv = malloc(nd * sizeof(double) + nf * sizeof(float));
    if (!st->conv)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM,
                         "safetensors: %s: out of memory converting %zu values", st->path, nd + nf);
  }
  double *dd = st->conv;
  float *ff = st->conv ? (float *)(dd + nd) : NULL;
  for (size_t i = 0; i < st->n; i++) {
    st_entry *e = &st->e[i];
    const unsigned char *p = data + e->begin;
    e->f = g_empty_f;
    e->d = NULL;
    if (e->count == 0) {
      if (e->dtype == CRATE_ST_F64)
        e->d = g_empty_d;
      continue;
    }
    switch (e->dtype) {
    case CRATE_ST_F32:
      if (le && (uintptr_t)p % sizeof(float) == 0) {
        e->f = (const float *)(const void *)p;
      } else {
        for (size_t k = 0; k < e->count; k++)
          ff[k] = bits_to_float(load_le32(p + 4 * k));
        e->f = ff;
        ff += e->count;
      }
      break;
    case CRATE_ST_F64: {
      const double *src;
      if (le && (uintptr_t)p % sizeof(double) == 0) {
        src = (const double *)(const void *)p;
      } else {
        for (size_t k = 0; k < e->count; k++) {
          uint64_t u = load_le64(p + 8 * k);
          memcpy(&dd[k], &u, sizeof u);
        }
        src = dd;
        dd += e->count;
      }
      for (size_t k = 0; k < e->count; k++)
        ff[k] = (float)src[k];
      e->d = src;
      e->f = ff;
      ff += e->count;
      break;
    }
    case CRATE_ST_F16:
      for (size_t k = 0; k < e->count; k++)
        ff[k] = half_to_float(load_le16(p + 2 * k));
      e->f = ff;
      ff += e->count;
      break;
    case CRATE_ST_BF16:
      for (size_t k = 0; k < e->count; k++)
        ff[k] = bf16_to_float(load_le16(p + 2 * k));
      e->f = ff;
      ff += e->count;
      break;
    }
  }
  return CRATE_STATUS_OK;
}

/* Validates st->buf (st->size bytes) and builds the tables. */
static int st_parse(crate_st *st) {
  const char *path = st->path;
  if (st->size < 8)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: file is %zu bytes, shorter than the 8-byte header length "
                       "(truncated or not a safetensors file)",
                       path, st->size);
  uint64_t N = load_le64(st->buf);
  if (N > CRATE_ST_MAX_HEADER)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: header length %llu exceeds the limit of %u bytes (not a "
                       "safetensors file, or a corrupt length field)",
                       path, (unsigned long long)N, CRATE_ST_MAX_HEADER);
  if (N > st->size - 8)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: header length %llu runs past the end of the file (%zu "
                       "bytes): truncated file",
                       path, (unsigned long long)N, st->size);
  st->hdr = (size_t)N;
  const size_t data_len = st->size - 8 - st->hdr;

  json_error_t jerr;
  json_t *root = json_loadb((const char *)st->buf + 8, st->hdr, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "safetensors: %s: header is not valid JSON: %s (line %d, column %d)", path,
                       jerr.text, jerr.line, jerr.column);
  int st_code = CRATE_STATUS_OK;
  if (!json_is_object(root)) {
    st_code = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                          "safetensors: %s: header is JSON but not an object of tensors", path);
    goto done;
  }
  size_t ntot = json_object_size(root);
  st->e = crate__calloc(ntot, sizeof *st->e);
  if (!st->e) {
    st_code = CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory for %zu entries", ntot);
    goto done;
  }
  const char *key;
  json_t *val;
  const char *unsupported = NULL, *unsupported_name = NULL;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      st_code = parse_metadata(st, val);
      if (st_code)
        goto done;
      continue;
    }
    st_entry *e = &st->e[st->n];
    const char *uns = NULL;
    st_code = parse_entry(path, key, val, e, &uns);
    if (st_code)
      goto done;
    e->name = crate__st_dup_str(key);
    if (!e->name) {
      st_code = CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
      goto done;
    }
    st->n++;
    if (uns && !unsupported) {
      unsupported = uns;
      unsupported_name = e->name;
    }
  }

  /* Contiguity: sorted by offsets the tensors tile [0, last END). */
  qsort(st->e, st->n, sizeof *st->e, cmp_offsets);
  uint64_t expect = 0;
  for (size_t i = 0; i < st->n; i++) {
    const st_entry *e = &st->e[i];
    if (e->begin > expect) {
      st_code = CRATE_ERROR(
          CRATE_STATUS_EFORMAT,
          "safetensors: %s: tensor '%s' begins at %llu but the data before it ends at %llu: a "
          "%llu-byte hole in the data buffer (data_offsets must tile the buffer)",
          path, e->name, (unsigned long long)e->begin, (unsigned long long)expect,
          (unsigned long long)(e->begin - expect));
      goto done;
    }
    if (e->begin < expect) {
      st_code = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                            "safetensors: %s: tensor '%s' begins at %llu but '%s' ends at %llu: "
                            "the tensors overlap (data_offsets must tile the buffer)",
                            path, e->name, (unsigned long long)e->begin, st->e[i - 1].name,
                            (unsigned long long)expect);
      goto done;
    }
    expect = e->end;
  }
  if (expect != data_len) {
    if (expect > data_len)
      st_code = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                            "safetensors: %s: the tensors need a %llu-byte data buffer but only "
                            "%zu bytes follow the header: truncated file",
                            path, (unsigned long long)expect, data_len);
    else
      st_code = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                            "safetensors: %s: %llu bytes follow the last tensor (data ends at "
                            "%llu of %zu): trailing garbage or a missing header entry",
                            path, (unsigned long long)(data_len - expect),
                            (unsigned long long)expect, data_len);
    goto done;
  }
  if (unsupported) {
    st_code = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                          "safetensors: %s: tensor '%s' has dtype %s, which crate does not read; "
                          "convert it to F32 (F16 and BF16 are converted on load)",
                          path, unsupported_name, unsupported);
    goto done;
  }

  st->by_name = crate__calloc(st->n, sizeof *st->by_name);
  if (!st->by_name) {
    st_code = CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
    goto done;
  }
  for (size_t i = 0; i < st->n; i++)
    st->by_name[i] = i;
  g_sort_entries = st->e;
  qsort(st->by_name, st->n, sizeof *st->by_name, cmp_names);
  g_sort_entries = NULL;
  st_code = make_views(st);

done:
  json_decref(root);
  return st_code;
}

static int st_new(const char *label, crate_st **out) {
  crate_st *st = calloc(1, sizeof *st);
  if (!st)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  st->path = crate__st_dup_str(label);
  if (!st->path) {
    free(st);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  }
  *out = st;
  return CRATE_STATUS_OK;
}

int crate_st_open_memory(const void *buf, size_t len, const char *label, crate_st **out) {
  if (!out || (!buf && len > 0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL buffer or output");
  crate_st *st = NULL;
  CRATE_TRY(st_new(label ? label : "<memory>", &st));
  st->buf = malloc(len ? len : 1);
  if (!st->buf) {
    crate_st_close(st);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory for %zu bytes", len);
  }
  if (len)
    memcpy(st->buf, buf, len);
  st->size = len;
  int rc = st_parse(st);
  if (rc) {
    crate_st_close(st);
    return rc;
  }
  *out = st;
  return CRATE_STATUS_OK;
}

int crate_st_open(const char *path, crate_st **out) {
  if (!path || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL path or output");
  int fd;
  do
    fd = open(path, O_RDONLY);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return CRATE_ERROR(CRATE_STATUS_ENOENT, "safetensors: %s: no such file", path);
    return CRATE_ERROR(CRATE_STATUS_EIO, "safetensors: %s: cannot open: %s", path, strerror(e));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return CRATE_ERROR(CRATE_STATUS_EIO, "safetensors: %s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return CRATE_ERROR(CRATE_STATUS_EIO, "safetensors: %s: not a regular file%s", path,
                       S_ISDIR(sb.st_mode) ? " (it is a directory)" : "");
  }
  if ((uintmax_t)sb.st_size > (uintmax_t)SIZE_MAX - 1) {
    close(fd);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: %s: file too large", path);
  }
  crate_st *st = NULL;
  int rc = st_new(path, &st);
  if (rc) {
    close(fd);
    return rc;
  }
  st->size = (size_t)sb.st_size;
  st->buf = malloc(st->size ? st->size : 1);
  if (!st->buf) {
    close(fd);
    crate_st_close(st);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: %s: out of memory for %zu bytes", path,
                       (size_t)sb.st_size);
  }
  size_t got = 0;
  while (got < st->size) {
    ssize_t r = read(fd, st->buf + got, st->size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      close(fd);
      crate_st_close(st);
      return CRATE_ERROR(CRATE_STATUS_EIO,
                         "safetensors: %s: read failed after %zu of %zu bytes: %s", path, got,
                         (size_t)sb.st_size, e ? strerror(e) : "file shrank");
    }
    got += (size_t)r;
  }
  close(fd);
  rc = st_parse(st);
  if (rc) {
    crate_st_close(st);
    return rc;
  }
  *out = st;
  return CRATE_STATUS_OK;
}

const char *crate_st_path(const crate_st *st) {
  return st->path;
}
size_t crate_st_count(const crate_st *st) {
  return st->n;
}
size_t crate_st_header_size(const crate_st *st) {
  return st->hdr;
}
size_t crate_st_metadata_count(const crate_st *st) {
  return st->nmeta;
}

static void fill_view(const st_entry *e, crate_st_tensor *out) {
  out->name = e->name;
  out->dtype = e->dtype;
  out->ndim = e->ndim;
  memcpy(out->shape, e->shape, sizeof out->shape);
  out->count = e->count;
  out->data = e->f;
  out->data64 = e->d;
}

int crate_st_tensor_at(const crate_st *st, size_t i, crate_st_tensor *out) {
  if (!st || !out || i >= st->n)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: tensor index %zu out of range (%zu)", i,
                       st ? st->n : 0);
  fill_view(&st->e[i], out);
  return CRATE_STATUS_OK;
}

static const st_entry *find_entry(const crate_st *st, const char *name) {
  size_t lo = 0, hi = st->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const st_entry *e = &st->e[st->by_name[mid]];
    int c = strcmp(name, e->name);
    if (c == 0)
      return e;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

bool crate_st_has(const crate_st *st, const char *name) {
  return st && name && find_entry(st, name) != NULL;
}

int crate_st_find(const crate_st *st, const char *name, crate_st_tensor *out) {
  if (!st || !name || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL argument to crate_st_find");
  const st_entry *e = find_entry(st, name);
  if (!e)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "safetensors: %s: no tensor '%s'", st->path, name);
  fill_view(e, out);
  return CRATE_STATUS_OK;
}

int crate_st_metadata_at(const crate_st *st, size_t i, const char **key, const char **value) {
  if (!st || i >= st->nmeta)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: metadata index %zu out of range (%zu)", i,
                       st ? st->nmeta : 0);
  if (key)
    *key = st->mkey[i];
  if (value)
    *value = st->mval[i];
  return CRATE_STATUS_OK;
}

const char *crate_st_metadata(const crate_st *st, const char *key) {
  if (!st || !key)
    return NULL;
  for (size_t i = 0; i < st->nmeta; i++)
    if (strcmp(st->mkey[i], key) == 0)
      return st->mval[i];
  return NULL;
}
