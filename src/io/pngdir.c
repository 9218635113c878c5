/* pngdir.c: PNG folders as data sets, and the per-image channel and size
 * conversion (data.h, "PNG folders"; MODEL.md §2 data; STYLE.md §9.4).
 *
 * Files are decoded by crate_png_read (libpng low-level API, no gamma
 * transform: STYLE.md §9.4), so 16-bit samples arrive as v / 65535 and
 * 8-bit ones as v / 255.  Each image is then
 *   1. reduced to the model's channels: alpha dropped, RGB -> gray by BT.601
 *      luma (0.299, 0.587, 0.114) on the stored values, gray -> RGB by
 *      replication;
 *   2. cropped (CENTER_CROP: the centred square of side min(W, H));
 *   3. resampled to size x size, separably: identity, area averaging (box)
 *      when an axis shrinks, bilinear (pixel centres aligned, edges clamped)
 *      when it grows.
 * Steps 1 and 3 are linear and both run in double on one plane at a time;
 * each output value is rounded to float once.
 *
 * Area weights are exact rationals: with the source axis scaled by n_out and
 * the output axis by n_in, output o spans [o n_in, (o + 1) n_in) and source
 * pixel k spans [k n_out, (k + 1) n_out); the weight is the integer overlap
 * divided by n_in.  A 2x reduction therefore weights by exactly 0.5 per axis
 * and gives the 2 x 2 block means with no rounding beyond the final float.
 *
 * Non-goals: alpha compositing, colour management (gAMA, iCCP and sRGB
 * chunks are ignored), anti-aliased upsampling, labels (the set has none).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "crate/data.h"
#include "internal.h"

#define PNGDIR_MAX_SIZE ((size_t)1 << 15) /* output side */

/* ---- resize modes ------------------------------------------------------------ */

int crate_resize_mode_parse(const char *name, crate_resize_mode *out) {
  if (!name || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "resize: NULL name or output");
  if (strcmp(name, "crop") == 0)
    *out = CRATE_RESIZE_CENTER_CROP;
  else if (strcmp(name, "stretch") == 0)
    *out = CRATE_RESIZE_STRETCH;
  else if (strcmp(name, "exact") == 0)
    *out = CRATE_RESIZE_EXACT;
  else
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "resize: unknown mode '%s' (expected crop, stretch or exact)", name);
  return CRATE_STATUS_OK;
}

const char *crate_resize_mode_name(crate_resize_mode mode) {
  switch (mode) {
  case CRATE_RESIZE_CENTER_CROP: return "crop";
  case CRATE_RESIZE_STRETCH: return "stretch";
  case CRATE_RESIZE_EXACT: return "exact";
  }
  return "?";
}

/* ---- 1-D resampling weights ---------------------------------------------------- */

/* Output sample o of an axis is sum_t w[o * taps + t] * src[first[o] + t];
 * first[o] + taps <= n_in always, unused taps carry weight 0. */
typedef struct axis_map {
  size_t taps;
  size_t *first; /* (n_out) */
  double *w;     /* (n_out, taps) */
} axis_map;

static void axis_free(axis_map *m) {
  free(m->first);
  free(m->w);
  memset(m, 0, sizeof *m);
}

/* Builds the map of an axis of n_in source samples onto n_out outputs. */
static int axis_build(axis_map *m, size_t n_in, size_t n_out) {
  memset(m, 0, sizeof *m);
  if (n_in == n_out || n_in == 1)
    m->taps = 1; /* identity, or a constant line */
  else if (n_in > n_out) {
    m->taps = (n_in + n_out - 1) / n_out + 1; /* ceil(r) + 1 covers any window */
    if (m->taps > n_in)
      m->taps = n_in;
  } else
    m->taps = 2;
  m->first = malloc(n_out * sizeof *m->first);
  m->w = crate__calloc(n_out * m->taps, sizeof *m->w);
  if (!m->first || !m->w) {
    axis_free(m);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "resize: cannot allocate weights for %zu -> %zu", n_in,
                       n_out);
  }
  for (size_t o = 0; o < n_out; o++) {
    double *w = m->w + o * m->taps;
    if (n_in == n_out) {
      m->first[o] = o;
      w[0] = 1.0;
    } else if (n_in == 1) {
      m->first[o] = 0;
      w[0] = 1.0;
    } else if (n_in > n_out) {
      /* area: output [o n_in, (o+1) n_in) against source [k n_out, (k+1) n_out) */
      const size_t a = o * n_in, b = a + n_in;
      const size_t k0 = a / n_out, k1 = (b - 1) / n_out; /* first and last source pixel */
      CRATE_ASSERT(k1 - k0 + 1 <= m->taps && k1 < n_in);
      /* keep all taps inside the axis: near the end, start earlier and
       * lead with zero weights */
      const size_t start = k0 + m->taps > n_in ? n_in - m->taps : k0;
      m->first[o] = start;
      for (size_t k = k0; k <= k1; k++) {
        const size_t lo = k * n_out > a ? k * n_out : a;
        const size_t hi = (k + 1) * n_out < b ? (k + 1) * n_out : b;
        w[k - start] = (double)(hi - lo) / (double)n_in;
      }
    } else {
      /* bilinear: x = (o + 0.5) n_in / n_out - 0.5 = ((2o + 1) n_in - n_out) / (2 n_out) */
      double x = ((double)(2 * o + 1) * (double)n_in - (double)n_out) / (2.0 * (double)n_out);
      if (x < 0.0)
        x = 0.0;
      if (x > (double)(n_in - 1))
        x = (double)(n_in - 1);
      size_t k = (size_t)x;
      if (k > n_in - 2)
        k = n_in - 2; /* x = n_in - 1 becomes weight 1 on the second tap */
      const double t = x - (double)k;
      m->first[o] = k;
      w[0] = 1.0 - t;
      w[1] = t;
    }
  }
  return CRATE_STATUS_OK;
}

/* ---- one image ------------------------------------------------------------------ */

/* Resamples a double plane (h_in, w_in) (row stride ld) into out
 * (size, size) floats.  tmp: h_in * size doubles. */
static void resample(float *out, const double *src, size_t ld, size_t h_in, size_t size,
                     const axis_map *mx, const axis_map *my, double *tmp) {
  /* rows: tmp (h_in, size) */
  for (size_t y = 0; y < h_in; y++) {
    const double *row = src + y * ld;
    for (size_t x = 0; x < size; x++) {
      const double *w = mx->w + x * mx->taps;
      const double *p = row + mx->first[x];
      double acc = 0.0;
      for (size_t t = 0; t < mx->taps; t++)
        acc += w[t] * p[t];
      tmp[y * size + x] = acc;
    }
  }
  /* columns: out (size, size) */
  for (size_t y = 0; y < size; y++) {
    const double *w = my->w + y * my->taps;
    const double *p = tmp + my->first[y] * size;
    for (size_t x = 0; x < size; x++) {
      double acc = 0.0;
      for (size_t t = 0; t < my->taps; t++)
        acc += w[t] * p[t * size + x];
      out[y * size + x] = (float)acc;
    }
  }
}

/* crate_image_fit with `what` (a file name or "image") leading size errors. */
static int fit_image(float *out, const crate_image *img, size_t channels, size_t size,
                     crate_resize_mode mode, const char *what) {
  const size_t W = img->width, H = img->height, ic = img->channels;
  if (mode == CRATE_RESIZE_EXACT && (W != size || H != size))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "pngdir: %s is %zu x %zu pixels but the expected size is %zu x %zu "
                       "(resize mode exact; use crop or stretch to resample)",
                       what, W, H, size, size);
  /* the source window (x0, y0, w, h) */
  size_t x0 = 0, y0 = 0, w = W, h = H;
  if (mode == CRATE_RESIZE_CENTER_CROP) {
    const size_t s = W < H ? W : H;
    x0 = (W - s) / 2;
    y0 = (H - s) / 2;
    w = h = s;
  }
  axis_map mx, my;
  int st = axis_build(&mx, w, size);
  if (st != CRATE_STATUS_OK)
    return st;
  st = axis_build(&my, h, size);
  if (st != CRATE_STATUS_OK) {
    axis_free(&mx);
    return st;
  }
  double *plane = malloc(w * h * sizeof *plane);
  double *tmp = malloc(h * size * sizeof *tmp);
  if (!plane || !tmp) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: cannot allocate %zu x %zu planes for %s", w, h,
                     what);
    goto done;
  }
  const size_t colour = ic >= 3 ? 3 : 1; /* channels without alpha */
  for (size_t c = 0; c < channels; c++) {
    /* the channel's plane of the window, in double */
    for (size_t y = 0; y < h; y++) {
      const float *row = img->data + ((y0 + y) * W + x0) * ic;
      double *dst = plane + y * w;
      if (colour == 3 && channels == 1) {
        for (size_t x = 0; x < w; x++) {
          const float *p = row + x * ic;
          dst[x] = CRATE_LUMA_R * (double)p[0] + CRATE_LUMA_G * (double)p[1] +
                   CRATE_LUMA_B * (double)p[2];
        }
      } else {
        const size_t src_c = colour == 1 ? 0 : c; /* gray is replicated */
        for (size_t x = 0; x < w; x++)
          dst[x] = (double)row[x * ic + src_c];
      }
    }
    resample(out + c * size * size, plane, w, h, size, &mx, &my, tmp);
  }
done:
  free(plane);
  free(tmp);
  axis_free(&mx);
  axis_free(&my);
  return st;
}

static int check_target(size_t channels, size_t size, crate_resize_mode mode) {
  if (channels != 1 && channels != 3)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: channels must be 1 or 3, got %zu", channels);
  if (size == 0 || size > PNGDIR_MAX_SIZE)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: size must be in 1..%zu, got %zu",
                       PNGDIR_MAX_SIZE, size);
  if (mode != CRATE_RESIZE_CENTER_CROP && mode != CRATE_RESIZE_STRETCH &&
      mode != CRATE_RESIZE_EXACT)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: unknown resize mode %d", (int)mode);
  return CRATE_STATUS_OK;
}

int crate_image_fit(float *out, const crate_image *img, size_t channels, size_t size,
                    crate_resize_mode mode) {
  if (!out || !img || !img->data)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: NULL image or output");
  if (img->width == 0 || img->height == 0 || img->channels < 1 || img->channels > 4)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: bad image %zu x %zu x %zu", img->width,
                       img->height, img->channels);
  CRATE_TRY(check_target(channels, size, mode));
  return fit_image(out, img, channels, size, mode, "image");
}

/* ---- the directory -------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static bool png_name(const char *nm) {
  const size_t len = strlen(nm);
  return nm[0] != '.' && len >= 5 && strcasecmp(nm + len - 4, ".png") == 0;
}

/* Joins dir and name into a new string. */
static char *join(const char *dir, const char *name) {
  const size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p) {
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
  }
  return p;
}

/* The sorted "*.png" names of dir (see data.h). */
static int list_pngs(const char *dir, char ***names, size_t *count) {
  DIR *d = opendir(dir);
  if (!d) {
    const int e = errno;
    if (e == ENOENT)
      return CRATE_ERROR(CRATE_STATUS_ENOENT, "pngdir: %s: no such directory", dir);
    if (e == ENOTDIR)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: %s is not a directory", dir);
    if (e == ENOMEM)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: %s: out of memory", dir);
    return CRATE_ERROR(CRATE_STATUS_EIO, "pngdir: cannot open the directory %s: %s", dir,
                       strerror(e));
  }
  char **v = NULL;
  size_t n = 0, cap = 0;
  int st = CRATE_STATUS_OK;
  for (;;) {
    errno = 0;
    const struct dirent *e = readdir(d);
    if (!e) {
      if (errno != 0)
        st = CRATE_ERROR(CRATE_STATUS_EIO, "pngdir: cannot read the directory %s: %s", dir,
                         strerror(errno));
      break;
    }
    if (!png_name(e->d_name))
      continue;
    char *full = join(dir, e->d_name);
    if (!full) {
      st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: %s: out of memory listing files", dir);
      break;
    }
    /* skip directories and other non-files named *.png; a name that cannot
     * be stat'ed (a dangling link) is kept, so that reading it names it */
    struct stat sb;
    const bool skip = stat(full, &sb) == 0 && !S_ISREG(sb.st_mode);
    free(full);
    if (skip)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nv = realloc(v, cap * sizeof *nv);
      if (!nv) {
        st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: %s: out of memory listing files", dir);
        break;
      }
      v = nv;
    }
    if (!(v[n] = strdup(e->d_name))) {
      st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: %s: out of memory listing files", dir);
      break;
    }
    n++;
  }
  closedir(d);
  if (st != CRATE_STATUS_OK) {
    free_names(v, n);
    return st;
  }
  if (n > 1)
    qsort(v, n, sizeof *v, cmp_names);
  *names = v;
  *count = n;
  return CRATE_STATUS_OK;
}

int crate_pngdir_load(const char *dir, size_t channels, size_t size, crate_resize_mode mode,
                      size_t limit, crate_dataset *out) {
  if (!dir || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: NULL directory or output");
  CRATE_TRY(check_target(channels, size, mode));
  char **names = NULL;
  size_t n = 0;
  CRATE_TRY(list_pngs(dir, &names, &n));
  if (n == 0) {
    free_names(names, n);
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "pngdir: no PNG files in %s", dir);
  }
  const size_t count = limit > 0 && limit < n ? limit : n;
  const size_t per = channels * size * size;
  crate_dataset ds;
  memset(&ds, 0, sizeof ds);
  ds.count = count;
  ds.channels = channels;
  ds.height = ds.width = size;
  int st = CRATE_STATUS_OK;
  if (count > SIZE_MAX / sizeof(float) / per)
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: %zu images of %zu x %zu x %zu are too many",
                     count, channels, size, size);
  else if (!(ds.images = malloc(count * per * sizeof *ds.images)))
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: cannot allocate %zu images of %zu x %zu x %zu",
                     count, channels, size, size);
  for (size_t i = 0; i < count && st == CRATE_STATUS_OK; i++) {
    char *path = join(dir, names[i]);
    if (!path) {
      st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "pngdir: out of memory");
      break;
    }
    crate_image *img = NULL;
    st = crate_png_read(path, &img, NULL); /* its messages name the file */
    if (st == CRATE_STATUS_OK)
      st = fit_image(ds.images + i * per, img, channels, size, mode, path);
    crate_image_destroy(img);
    free(path);
  }
  free_names(names, n);
  if (st != CRATE_STATUS_OK) {
    crate_dataset_free(&ds);
    return st;
  }
  *out = ds;
  return CRATE_STATUS_OK;
}
