/* safetensors_write.c: the safetensors writer (MODEL.md §11.1, STYLE.md
 * principle 12 and §9.5); the reader is safetensors_read.c, the helpers both
 * use are declared in safetensors_internal.h.
 *
 * The writer orders tensors by descending dtype alignment, then by name, puts
 * __metadata__ first (keys sorted), pads the compact JSON with spaces to a
 * multiple of 8 and writes atomically (temporary file + rename).  Jansson
 * (only here and in safetensors_read.c within src/) builds and serialises the
 * header and checks that names and metadata are valid UTF-8.
 *
 * Non-goals: streaming writes of data that is not in memory, dtypes other
 * than F32 and F64 (F16 and BF16 are read, never written).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "crate/safetensors.h"
#include "internal.h"
#include "safetensors_internal.h"

/* ---- byte order ------------------------------------------------------------- */

static void store_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct wt_entry {
  char *name;
  crate_st_dtype dtype;
  size_t ndim;
  size_t shape[CRATE_ST_MAX_DIMS];
  size_t count;
  const void *data; /* borrowed */
} wt_entry;

struct crate_st_writer {
  wt_entry *t;
  size_t n, cap;
  char **mkey, **mval;
  size_t nmeta, mcap;
};

int crate_st_writer_create(crate_st_writer **out) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL output");
  crate_st_writer *w = calloc(1, sizeof *w);
  if (!w)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  *out = w;
  return CRATE_STATUS_OK;
}

void crate_st_writer_destroy(crate_st_writer *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->n; i++)
    free(w->t[i].name);
  for (size_t i = 0; i < w->nmeta; i++) {
    free(w->mkey[i]);
    free(w->mval[i]);
  }
  free(w->t);
  free(w->mkey);
  free(w->mval);
  free(w);
}

/* Valid UTF-8 as Jansson sees it (it refuses to store anything else). */
static bool utf8_ok(const char *s) {
  json_t *j = json_string(s);
  if (!j)
    return false;
  json_decref(j);
  return true;
}

static int writer_add(crate_st_writer *w, const char *name, crate_st_dtype dt, size_t ndim,
                      const size_t *shape, const void *data) {
  if (!w || !name)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL writer or name");
  if (name[0] == '\0' || strcmp(name, "__metadata__") == 0 || !utf8_ok(name))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "safetensors: invalid tensor name '%s' (empty, reserved or not UTF-8)",
                       name);
  if (ndim > CRATE_ST_MAX_DIMS || (ndim > 0 && !shape))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "safetensors: tensor '%s': rank %zu (max %d) or NULL "
                       "shape",
                       name, ndim, CRATE_ST_MAX_DIMS);
  size_t count = 1;
  bool zero = false;
  for (size_t k = 0; k < ndim; k++)
    zero |= shape[k] == 0;
  if (zero) {
    count = 0;
  } else {
    for (size_t k = 0; k < ndim; k++) {
      if (count > SIZE_MAX / 8 / shape[k])
        return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: tensor '%s': size overflows", name);
      count *= shape[k];
    }
  }
  if (count > 0 && !data)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: tensor '%s': NULL data", name);
  for (size_t i = 0; i < w->n; i++)
    if (strcmp(w->t[i].name, name) == 0)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: tensor '%s' added twice", name);
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    wt_entry *t = realloc(w->t, cap * sizeof *t);
    if (!t)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
    w->t = t;
    w->cap = cap;
  }
  wt_entry *e = &w->t[w->n];
  memset(e, 0, sizeof *e);
  e->name = crate__st_dup_str(name);
  if (!e->name)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  e->dtype = dt;
  e->ndim = ndim;
  for (size_t k = 0; k < ndim; k++)
    e->shape[k] = shape[k];
  e->count = count;
  e->data = data;
  w->n++;
  return CRATE_STATUS_OK;
}

int crate_st_writer_add_f32(crate_st_writer *w, const char *name, size_t ndim, const size_t *shape,
                            const float *data) {
  return writer_add(w, name, CRATE_ST_F32, ndim, shape, data);
}

int crate_st_writer_add_f64(crate_st_writer *w, const char *name, size_t ndim, const size_t *shape,
                            const double *data) {
  return writer_add(w, name, CRATE_ST_F64, ndim, shape, data);
}

int crate_st_writer_set_metadata(crate_st_writer *w, const char *key, const char *value) {
  if (!w || !key || !value)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL writer, key or value");
  if (!utf8_ok(key) || !utf8_ok(value))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: metadata '%s' is not valid UTF-8", key);
  char *v = crate__st_dup_str(value);
  if (!v)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  for (size_t i = 0; i < w->nmeta; i++)
    if (strcmp(w->mkey[i], key) == 0) {
      free(w->mval[i]);
      w->mval[i] = v;
      return CRATE_STATUS_OK;
    }
  if (w->nmeta == w->mcap) {
    size_t cap = w->mcap ? 2 * w->mcap : 16;
    char **k2 = realloc(w->mkey, cap * sizeof *k2);
    if (k2)
      w->mkey = k2;
    char **v2 = k2 ? realloc(w->mval, cap * sizeof *v2) : NULL;
    if (!v2) {
      free(v);
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
    }
    w->mval = v2;
    w->mcap = cap;
  }
  w->mkey[w->nmeta] = crate__st_dup_str(key);
  if (!w->mkey[w->nmeta]) {
    free(v);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  }
  w->mval[w->nmeta] = v;
  w->nmeta++;
  return CRATE_STATUS_OK;
}

/* Write order: descending alignment (F64 before F32), then name. */
static _Thread_local const crate_st_writer *g_sort_writer;

static int cmp_write_order(const void *a, const void *b) {
  const wt_entry *x = &g_sort_writer->t[*(const size_t *)a];
  const wt_entry *y = &g_sort_writer->t[*(const size_t *)b];
  size_t ax = crate__st_dtype_size(x->dtype), ay = crate__st_dtype_size(y->dtype);
  if (ax != ay)
    return ax > ay ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int cmp_meta_order(const void *a, const void *b) {
  return strcmp(g_sort_writer->mkey[*(const size_t *)a], g_sort_writer->mkey[*(const size_t *)b]);
}

/* The serialised header (padded) and the write order. */
typedef struct st_plan {
  char *header;   /* hdr_len bytes, padded with spaces (not NUL-terminated) */
  size_t hdr_len; /* N, a multiple of 8 */
  size_t *order;  /* tensor indices in file order */
  size_t data_len;
} st_plan;

static void plan_free(st_plan *p) {
  free(p->header);
  free(p->order);
}

static int json_set(json_t *obj, const char *key, json_t *val) {
  if (!val || json_object_set_new(obj, key, val) != 0)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: cannot build header entry '%s'", key);
  return CRATE_STATUS_OK;
}

/* {"dtype":..,"shape":[..],"data_offsets":[b,e]}: the reference key order. */
static int add_entry_json(json_t *root, const wt_entry *e, size_t begin, size_t end) {
  json_t *obj = json_object();
  if (!obj)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  CRATE_TRY(json_set(root, e->name, obj)); /* root owns obj from here */
  CRATE_TRY(json_set(obj, "dtype", json_string(crate_st_dtype_name(e->dtype))));
  json_t *shape = json_array();
  CRATE_TRY(json_set(obj, "shape", shape));
  for (size_t k = 0; k < e->ndim; k++)
    if (json_array_append_new(shape, json_integer((json_int_t)e->shape[k])) != 0)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  json_t *offs = json_array();
  CRATE_TRY(json_set(obj, "data_offsets", offs));
  if (json_array_append_new(offs, json_integer((json_int_t)begin)) != 0 ||
      json_array_append_new(offs, json_integer((json_int_t)end)) != 0)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  return CRATE_STATUS_OK;
}

static int build_header(const crate_st_writer *w, st_plan *p, json_t *root) {
  if (w->nmeta > 0) {
    size_t *mo = crate__calloc(w->nmeta, sizeof *mo);
    if (!mo)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
    for (size_t i = 0; i < w->nmeta; i++)
      mo[i] = i;
    g_sort_writer = w;
    qsort(mo, w->nmeta, sizeof *mo, cmp_meta_order);
    g_sort_writer = NULL;
    json_t *meta = json_object();
    int rc = json_set(root, "__metadata__", meta);
    for (size_t i = 0; !rc && i < w->nmeta; i++)
      rc = json_set(meta, w->mkey[mo[i]], json_string(w->mval[mo[i]]));
    free(mo);
    CRATE_TRY(rc);
  }
  for (size_t i = 0; i < w->n; i++)
    p->order[i] = i;
  g_sort_writer = w;
  qsort(p->order, w->n, sizeof *p->order, cmp_write_order);
  g_sort_writer = NULL;
  size_t off = 0;
  for (size_t i = 0; i < w->n; i++) {
    const wt_entry *e = &w->t[p->order[i]];
    size_t bytes = e->count * crate__st_dtype_size(e->dtype); /* count <= SIZE_MAX / 8 (add) */
    if (off > (size_t)LLONG_MAX - bytes)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: total data size overflows");
    CRATE_TRY(add_entry_json(root, e, off, off + bytes));
    off += bytes;
  }
  p->data_len = off;
  char *js = json_dumps(root, JSON_COMPACT);
  if (!js)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: cannot serialise the header");
  size_t len = strlen(js), padded = (len + 7) / 8 * 8;
  p->header = malloc(padded ? padded : 1);
  if (!p->header) {
    free(js);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  }
  memcpy(p->header, js, len);
  memset(p->header + len, ' ', padded - len);
  p->hdr_len = padded;
  free(js);
  if (p->hdr_len > CRATE_ST_MAX_HEADER)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "safetensors: header of %zu bytes exceeds the %u-byte limit (too many "
                       "tensors or metadata)",
                       p->hdr_len, CRATE_ST_MAX_HEADER);
  return CRATE_STATUS_OK;
}

static int make_plan(const crate_st_writer *w, st_plan *p) {
  memset(p, 0, sizeof *p);
  p->order = crate__calloc(w->n, sizeof *p->order);
  json_t *root = json_object();
  int rc;
  if (!p->order || !root)
    rc = CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  else
    rc = build_header(w, p, root);
  json_decref(root);
  if (rc)
    plan_free(p);
  return rc;
}

/* A byte sink: memory (mem != NULL) or a FILE. */
typedef struct sink {
  unsigned char *mem;
  size_t pos;
  FILE *fp;
} sink;

static bool sink_put(sink *s, const void *src, size_t n) {
  if (n == 0)
    return true;
  if (s->mem) {
    memcpy(s->mem + s->pos, src, n);
    s->pos += n;
    return true;
  }
  return fwrite(src, 1, n, s->fp) == n;
}

/* Header length, header, then every tensor little-endian in plan order. */
static bool emit(const crate_st_writer *w, const st_plan *p, sink *s) {
  unsigned char len8[8];
  store_le64(len8, (uint64_t)p->hdr_len);
  if (!sink_put(s, len8, 8) || !sink_put(s, p->header, p->hdr_len))
    return false;
  const bool le = crate__st_host_is_little_endian();
  for (size_t i = 0; i < w->n; i++) {
    const wt_entry *e = &w->t[p->order[i]];
    const size_t es = crate__st_dtype_size(e->dtype);
    if (le) {
      if (!sink_put(s, e->data, e->count * es))
        return false;
      continue;
    }
    unsigned char tmp[8 * 512];
    const unsigned char *src = e->data;
    for (size_t k = 0; k < e->count;) {
      size_t m = e->count - k < 512 ? e->count - k : 512;
      for (size_t j = 0; j < m; j++)
        for (size_t b = 0; b < es; b++)
          tmp[j * es + b] = src[(k + j) * es + (es - 1 - b)];
      if (!sink_put(s, tmp, m * es))
        return false;
      k += m;
    }
  }
  return true;
}

int crate_st_writer_to_memory(const crate_st_writer *w, void **buf, size_t *len) {
  if (!w || !buf || !len)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL argument to writer_to_memory");
  st_plan p;
  CRATE_TRY(make_plan(w, &p));
  if (p.data_len > SIZE_MAX - 8 - p.hdr_len) {
    plan_free(&p);
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: file size overflows");
  }
  size_t total = 8 + p.hdr_len + p.data_len;
  sink s = {malloc(total), 0, NULL};
  if (!s.mem) {
    plan_free(&p);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory for %zu bytes", total);
  }
  (void)emit(w, &p, &s);
  CRATE_ASSERT(s.pos == total);
  plan_free(&p);
  *buf = s.mem;
  *len = total;
  return CRATE_STATUS_OK;
}

int crate_st_writer_write(const crate_st_writer *w, const char *path) {
  if (!w || !path || !path[0])
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "safetensors: NULL writer or empty path");
  st_plan p;
  CRATE_TRY(make_plan(w, &p));
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) {
    plan_free(&p);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "safetensors: out of memory");
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp.XXXXXX", 12);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    plan_free(&p);
    return CRATE_ERROR(CRATE_STATUS_EIO,
                       "safetensors: %s: cannot create a temporary file next to "
                       "it: %s",
                       path, strerror(e));
  }
  (void)fchmod(fd, 0644);
  FILE *fp = fdopen(fd, "wb");
  int rc = CRATE_STATUS_OK;
  if (!fp) {
    int e = errno;
    close(fd);
    rc = CRATE_ERROR(CRATE_STATUS_EIO, "safetensors: %s: fdopen failed: %s", path, strerror(e));
  } else {
    sink s = {NULL, 0, fp};
    bool ok = emit(w, &p, &s) && fflush(fp) == 0;
    int e = errno;
    ok = ok && fsync(fileno(fp)) == 0;
    if (!ok)
      e = errno;
    if (fclose(fp) != 0 && ok) {
      ok = false;
      e = errno;
    }
    if (!ok)
      rc = CRATE_ERROR(CRATE_STATUS_EIO, "safetensors: %s: write failed: %s", path, strerror(e));
  }
  if (!rc && rename(tmp, path) != 0) {
    int e = errno;
    rc = CRATE_ERROR(CRATE_STATUS_EIO,
                     "safetensors: %s: cannot rename the temporary file into "
                     "place: %s",
                     path, strerror(e));
  }
  if (rc)
    (void)unlink(tmp);
  free(tmp);
  plan_free(&p);
  return rc;
}
