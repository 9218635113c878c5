/* idx.c: the IDX reader (zlib) and the Fashion-MNIST loader (data.h).
 *
 * MODEL.md §2 (fmnist data): gzip IDX files, pixels u8 / 255 in [0, 1].
 * IDX layout (LeCun's MNIST page): a big-endian u32 magic whose third byte
 * is the element type (0x08 = unsigned byte) and fourth the number of dims,
 * then one big-endian u32 per dim, then the elements in C order.
 *
 * The data are streamed through a small chunk buffer and the output array
 * grows as the bytes arrive, so a header that lies about its dims fails as
 * "truncated" without first allocating what it claims.  Every file is read
 * to the end: short data, trailing bytes and a corrupt or cut gzip stream are
 * EFORMAT.  zlib reads uncompressed files transparently, so plain IDX works.
 *
 * Non-goals: element types other than unsigned byte (MNIST-style sets only).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "crate/data.h"
#include "internal.h"

#define IDX_CHUNK ((size_t)1 << 16)

size_t crate_dataset_image_size(const crate_dataset *ds) {
  return ds ? ds->channels * ds->height * ds->width : 0;
}

void crate_dataset_free(crate_dataset *ds) {
  if (!ds)
    return;
  free(ds->images);
  free(ds->labels);
  memset(ds, 0, sizeof *ds);
}

/* ---- low-level reading ---------------------------------------------------- */

/* Maps the state of a gzFile after a short or failed read to a status. */
static int idx_read_error(gzFile f, const char *path, const char *what, size_t got, size_t want) {
  int zerr = Z_OK;
  const char *zmsg = gzerror(f, &zerr);
  if (zerr == Z_ERRNO)
    return CRATE_ERROR(CRATE_STATUS_EIO, "idx: %s: read error: %s", path, strerror(errno));
  if (zerr == Z_MEM_ERROR)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "idx: %s: zlib out of memory", path);
  if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
    /* zlib prefixes its message with the path: drop it. */
    const size_t pl = strlen(path);
    if (zmsg && strncmp(zmsg, path, pl) == 0 && zmsg[pl] == ':' && zmsg[pl + 1] == ' ')
      zmsg += pl + 2;
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "idx: %s: corrupt gzip stream (%s) in the %s", path,
                       zmsg ? zmsg : "zlib error", what);
  }
  return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                     "idx: %s: truncated file: the %s needs %zu bytes, only %zu present%s", path,
                     what, want, got, zerr == Z_BUF_ERROR ? " (gzip stream cut short)" : "");
}

/* Reads exactly n bytes or fails; want_total and done_before only feed the
 * truncation message. */
static int idx_read_exact(gzFile f, const char *path, const char *what, void *buf, size_t n,
                          size_t want_total, size_t done_before) {
  size_t got = 0;
  while (got < n) {
    size_t ask = n - got;
    if (ask > (size_t)INT_MAX / 2)
      ask = (size_t)INT_MAX / 2;
    int r = gzread(f, (char *)buf + got, (unsigned)ask);
    if (r <= 0)
      return idx_read_error(f, path, what, done_before + got, want_total);
    got += (size_t)r;
  }
  return CRATE_STATUS_OK;
}

static uint32_t be32(const unsigned char *b) {
  return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

/* Opens path and reads + checks the header: magic, ndim dims, none zero,
 * product without overflow.  *count receives dims[0], *item the product of
 * the other dims (1 when ndim = 1). */
static int idx_open(const char *path, uint32_t magic, gzFile *out, size_t *count, size_t *item,
                    size_t dims[3]) {
  if (!path || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "idx: NULL path or output");
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return CRATE_ERROR(CRATE_STATUS_ENOENT, "idx: %s: no such file", path);
    return CRATE_ERROR(CRATE_STATUS_EIO, "idx: %s: %s", path, strerror(errno));
  }
  if (S_ISDIR(sb.st_mode))
    return CRATE_ERROR(CRATE_STATUS_EIO, "idx: %s: is a directory, not an IDX file", path);
  gzFile f = gzopen(path, "rb");
  if (!f) {
    if (errno == ENOENT)
      return CRATE_ERROR(CRATE_STATUS_ENOENT, "idx: %s: no such file", path);
    return CRATE_ERROR(CRATE_STATUS_EIO, "idx: %s: cannot open: %s", path,
                       errno ? strerror(errno) : "zlib failure");
  }
  gzbuffer(f, 1u << 17);
  const size_t ndim = magic & 0xffu;
  unsigned char hdr[4 + 4 * 3];
  int st = idx_read_exact(f, path, "header", hdr, 4, 4 + 4 * ndim, 0);
  if (st != CRATE_STATUS_OK) {
    gzclose_r(f);
    return st;
  }
  const uint32_t got_magic = be32(hdr);
  if (got_magic != magic) {
    gzclose_r(f);
    const char *kind = magic == CRATE_IDX_MAGIC_IMAGES ? "an image" : "a label";
    if ((got_magic >> 16) != 0)
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "idx: %s: not an IDX file (first bytes 0x%08x; expected magic 0x%08x)",
                         path, got_magic, magic);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "idx: %s: magic 0x%08x is not %s file (expected 0x%08x: unsigned bytes, "
                       "%zu dim%s)",
                       path, got_magic, kind, magic, ndim, ndim == 1 ? "" : "s");
  }
  st = idx_read_exact(f, path, "header", hdr + 4, 4 * ndim, 4 + 4 * ndim, 4);
  if (st != CRATE_STATUS_OK) {
    gzclose_r(f);
    return st;
  }
  size_t prod = 1;
  for (size_t k = 0; k < ndim; k++) {
    dims[k] = be32(hdr + 4 + 4 * k);
    if (dims[k] == 0) {
      gzclose_r(f);
      return CRATE_ERROR(CRATE_STATUS_EFORMAT, "idx: %s: dimension %zu is zero", path, k);
    }
    if (k > 0) {
      if (prod > SIZE_MAX / dims[k] / sizeof(float)) {
        gzclose_r(f);
        return CRATE_ERROR(CRATE_STATUS_EFORMAT, "idx: %s: dims overflow the address space", path);
      }
      prod *= dims[k];
    }
  }
  if (dims[0] > SIZE_MAX / prod / sizeof(float)) {
    gzclose_r(f);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "idx: %s: dims overflow the address space", path);
  }
  *out = f;
  *count = dims[0];
  *item = prod;
  return CRATE_STATUS_OK;
}

/* Streams count items of `item` bytes.  The first `keep` items go to
 * *fout (as u8 / 255, if fout) or *uout (raw, if uout), arrays that grow as
 * data arrive; the rest is read and checked but dropped.  Then checks that
 * the file ends.  Closes f in every case. */
static int idx_stream(gzFile f, const char *path, const char *what, size_t count, size_t item,
                      size_t keep, float **fout, uint8_t **uout) {
  const size_t total = count * item, kept = keep * item;
  unsigned char *chunk = malloc(IDX_CHUNK);
  float *fa = NULL;
  uint8_t *ua = NULL;
  size_t cap = 0;
  int st = CRATE_STATUS_OK;
  if (!chunk) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "idx: %s: out of memory", path);
    goto done;
  }
  for (size_t pos = 0; pos < total;) {
    size_t n = total - pos < IDX_CHUNK ? total - pos : IDX_CHUNK;
    st = idx_read_exact(f, path, what, chunk, n, total, pos);
    if (st != CRATE_STATUS_OK)
      goto done;
    if (pos < kept) {
      size_t use = kept - pos < n ? kept - pos : n;
      if (pos + use > cap) { /* grow geometrically, at most to `kept` */
        size_t ncap = cap ? cap : IDX_CHUNK;
        while (ncap < pos + use)
          ncap = ncap > kept / 2 ? kept : 2 * ncap;
        if (ncap > kept)
          ncap = kept;
        void *p = fout ? realloc(fa, ncap * sizeof(float)) : realloc(ua, ncap);
        if (!p) {
          st =
              CRATE_ERROR(CRATE_STATUS_ENOMEM, "idx: %s: out of memory (%zu elements)", path, kept);
          goto done;
        }
        if (fout)
          fa = p;
        else
          ua = p;
        cap = ncap;
      }
      if (fout)
        for (size_t i = 0; i < use; i++)
          fa[pos + i] = (float)chunk[i] / 255.0f;
      else
        memcpy(ua + pos, chunk, use);
    }
    pos += n;
  }
  /* The file must end here. */
  {
    unsigned char extra;
    int r = gzread(f, &extra, 1);
    if (r > 0) {
      st = CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "idx: %s: trailing bytes after the %zu x %zu elements the header declares",
                       path, count, item);
      goto done;
    }
    int zerr = Z_OK;
    gzerror(f, &zerr);
    if (r < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
      st = idx_read_error(f, path, what, total, total);
      goto done;
    }
    if (zerr == Z_BUF_ERROR) { /* all data present but the gzip trailer is cut */
      st = CRATE_ERROR(CRATE_STATUS_EFORMAT, "idx: %s: gzip stream cut short after the data", path);
      goto done;
    }
  }
done:
  free(chunk);
  gzclose_r(f);
  if (st != CRATE_STATUS_OK) {
    free(fa);
    free(ua);
    return st;
  }
  if (fout)
    *fout = fa;
  if (uout)
    *uout = ua;
  return CRATE_STATUS_OK;
}

/* ---- public readers ------------------------------------------------------- */

int crate_idx_read_images(const char *path, size_t limit, crate_dataset *out) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "idx: NULL output");
  gzFile f;
  size_t count, item, dims[3] = {0, 0, 0};
  CRATE_TRY(idx_open(path, CRATE_IDX_MAGIC_IMAGES, &f, &count, &item, dims));
  const size_t keep = limit > 0 && limit < count ? limit : count;
  float *img = NULL;
  CRATE_TRY(idx_stream(f, path, "image data", count, item, keep, &img, NULL));
  memset(out, 0, sizeof *out);
  out->images = img;
  out->count = keep;
  out->channels = 1;
  out->height = dims[1];
  out->width = dims[2];
  return CRATE_STATUS_OK;
}

int crate_idx_read_labels(const char *path, size_t limit, uint8_t **labels, size_t *count) {
  if (!labels || !count)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "idx: NULL output");
  gzFile f;
  size_t n, item, dims[3] = {0, 0, 0};
  CRATE_TRY(idx_open(path, CRATE_IDX_MAGIC_LABELS, &f, &n, &item, dims));
  const size_t keep = limit > 0 && limit < n ? limit : n;
  uint8_t *lab = NULL;
  CRATE_TRY(idx_stream(f, path, "label data", n, item, keep, NULL, &lab));
  *labels = lab;
  *count = keep;
  return CRATE_STATUS_OK;
}

int crate_fmnist_load(const char *dir, const char *split, size_t limit, crate_dataset *out) {
  if (!out || !split)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "fmnist: NULL split or output");
  if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "fmnist: unknown split '%s' (use train or t10k)",
                       split);
  if (!dir)
    dir = CRATE_FMNIST_DIR;
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return CRATE_ERROR(CRATE_STATUS_ENOENT,
                       "fmnist: %s: no such directory (install Debian's dataset-fashion-mnist "
                       "or pass the directory holding the IDX files)",
                       dir);
  char ipath[4096], lpath[4096];
  int ni = snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, split);
  int nl = snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, split);
  if (ni < 0 || nl < 0 || (size_t)ni >= sizeof ipath || (size_t)nl >= sizeof lpath)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "fmnist: directory name too long");
  crate_dataset ds;
  CRATE_TRY(crate_idx_read_images(ipath, limit, &ds));
  uint8_t *lab = NULL;
  size_t nlab = 0;
  int st = crate_idx_read_labels(lpath, limit, &lab, &nlab);
  if (st != CRATE_STATUS_OK) {
    crate_dataset_free(&ds);
    return st;
  }
  if (nlab != ds.count) {
    size_t nimg = ds.count;
    crate_dataset_free(&ds);
    free(lab);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "fmnist: %s has %zu labels but %s has %zu images",
                       lpath, nlab, ipath, nimg);
  }
  ds.labels = lab;
  *out = ds;
  return CRATE_STATUS_OK;
}
