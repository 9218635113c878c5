/* png_io.c: the PNG seam (STYLE.md §6 and §9.4) and the crate_image type.
 *
 * This is the only file that includes png.h.  It uses libpng's low-level API
 * with no gamma transform: the simplified API sRGB-encodes 16-bit samples
 * (gray 32768 would read as 186/255 instead of 0.500008, STYLE.md §9.4).
 *
 * Reading: palette -> RGB, gray 1/2/4 bits -> 8 bits, tRNS -> alpha, 16-bit
 * samples kept (assembled big-endian by hand, no png_set_swap) and mapped by
 * /65535, 8-bit samples by /255.  Interlaced files are de-interlaced.
 * Writing: 8-bit gray, gray+alpha, RGB or RGBA.
 *
 * libpng reports errors by longjmp.  Each libpng session runs in its own
 * function whose state lives in a context struct owned by the caller, so
 * nothing that changes between setjmp and longjmp is an automatic variable
 * of the function that called setjmp (C11 7.13.2.1).  The error callback
 * copies libpng's message into the context; the caller turns it into
 * EFORMAT (corrupt or truncated data) or EIO (the stream failed).
 */
#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include <png.h>

#include "crate/image.h"
#include "internal.h"

#define PNG_MAX_SAMPLES ((size_t)1 << 28) /* 1 GiB of floats */
#define PNG_MAX_DIM 65535u

/* ---- images ------------------------------------------------------------- */

int crate_image_create(crate_image **out, size_t width, size_t height, size_t channels) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "image: NULL output pointer");
  *out = NULL;
  if (width == 0 || height == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "image: empty size %zu x %zu", width, height);
  if (channels < 1 || channels > 4)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "image: channels must be 1..4, got %zu", channels);
  if (width > PNG_MAX_SAMPLES / height || width * height > PNG_MAX_SAMPLES / channels)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "image: %zu x %zu x %zu is too large", width, height,
                       channels);
  crate_image *img = malloc(sizeof *img);
  float *data = calloc(width * height * channels, sizeof *data);
  if (!img || !data) {
    free(img);
    free(data);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "image: cannot allocate %zu x %zu x %zu", width,
                       height, channels);
  }
  img->width = width;
  img->height = height;
  img->channels = channels;
  img->data = data;
  *out = img;
  return CRATE_STATUS_OK;
}

void crate_image_destroy(crate_image *img) {
  if (!img)
    return;
  free(img->data);
  free(img);
}

/* ---- libpng error plumbing ---------------------------------------------- */

typedef struct png_ctx {
  FILE *f;
  png_structp png;
  png_infop info;
  char msg[256];      /* libpng's last error message */
  unsigned char *buf; /* read: all rows; write: one row */
  png_bytep *rows;    /* read: row pointers into buf */
  crate_image *img;   /* read: the result */
  int bit_depth;      /* read: the file's sample depth */
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
  png_ctx *ctx = png_get_error_ptr(png);
  snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
  (void)png; /* warnings (e.g. a bad ancillary chunk) do not stop reading */
  (void)msg;
}

/* ---- reading ------------------------------------------------------------ */

/* Runs the libpng read session; 0 on success, 1 after a libpng error (message
 * in ctx->msg), or a negative crate status for our own checks. */
static int read_session(png_ctx *ctx, const char *path) {
  if (setjmp(png_jmpbuf(ctx->png)))
    return 1;
  png_init_io(ctx->png, ctx->f);
  png_set_sig_bytes(ctx->png, 8);
  png_set_user_limits(ctx->png, PNG_MAX_DIM, PNG_MAX_DIM);
  png_read_info(ctx->png, ctx->info);

  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(ctx->png, ctx->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
  ctx->bit_depth = depth;
  if (color == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(ctx->png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8(ctx->png);
  if (png_get_valid(ctx->png, ctx->info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha(ctx->png);
  png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);

  size_t channels = png_get_channels(ctx->png, ctx->info);
  int out_depth = png_get_bit_depth(ctx->png, ctx->info);
  size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
  size_t bytes_per_sample = out_depth == 16 ? 2 : 1;
  if ((out_depth != 8 && out_depth != 16) || channels < 1 || channels > 4 ||
      rowbytes != (size_t)w * channels * bytes_per_sample)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "png: %s: unsupported layout (%zu channels of %d bits)", path, channels,
                       out_depth);
  int st = crate_image_create(&ctx->img, w, h, channels);
  if (st != CRATE_STATUS_OK)
    return st;
  ctx->buf = malloc(rowbytes * h);
  ctx->rows = malloc(sizeof *ctx->rows * h);
  if (!ctx->buf || !ctx->rows)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "png: %s: cannot allocate %u rows", path,
                       (unsigned)h);
  for (size_t y = 0; y < h; y++)
    ctx->rows[y] = ctx->buf + y * rowbytes;
  png_read_image(ctx->png, ctx->rows);
  png_read_end(ctx->png, NULL);

  float *dst = ctx->img->data;
  size_t n = (size_t)w * h * channels;
  if (out_depth == 16) {
    for (size_t i = 0; i < n; i++) {
      unsigned v = ((unsigned)ctx->buf[2 * i] << 8) | ctx->buf[2 * i + 1];
      dst[i] = (float)((double)v / 65535.0);
    }
  } else {
    for (size_t i = 0; i < n; i++)
      dst[i] = (float)((double)ctx->buf[i] / 255.0);
  }
  return 0;
}

int crate_png_read(const char *path, crate_image **out, int *bit_depth) {
  if (!path || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: NULL path or output pointer");
  *out = NULL;
  png_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.f = fopen(path, "rb");
  if (!ctx.f) {
    int e = errno;
    return CRATE_ERROR(e == ENOENT ? CRATE_STATUS_ENOENT : CRATE_STATUS_EIO,
                       "png: cannot open %s: %s", path, strerror(e));
  }
  unsigned char sig[8];
  size_t got = fread(sig, 1, sizeof sig, ctx.f);
  if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
    bool io = ferror(ctx.f) != 0;
    fclose(ctx.f);
    if (io)
      return CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot read %s", path);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "png: %s is not a PNG file (%s)", path,
                       got != sizeof sig ? "shorter than the signature" : "bad signature");
  }
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  if (ctx.png)
    ctx.info = png_create_info_struct(ctx.png);
  int st;
  if (!ctx.png || !ctx.info) {
    st = CRATE_ERROR(CRATE_STATUS_EBACKEND, "png: cannot create libpng read structures");
  } else {
    st = read_session(&ctx, path);
    if (st == 1) {
      if (ferror(ctx.f))
        st = CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot read %s: %s", path, ctx.msg);
      else
        st = CRATE_ERROR(CRATE_STATUS_EFORMAT, "png: %s: %s%s", path, ctx.msg,
                         feof(ctx.f) ? " (file truncated)" : "");
    }
  }
  png_destroy_read_struct(ctx.png ? &ctx.png : NULL, ctx.info ? &ctx.info : NULL, NULL);
  fclose(ctx.f);
  free(ctx.buf);
  free(ctx.rows);
  if (st != CRATE_STATUS_OK) {
    crate_image_destroy(ctx.img);
    return st;
  }
  if (bit_depth)
    *bit_depth = ctx.bit_depth;
  *out = ctx.img;
  return CRATE_STATUS_OK;
}

/* ---- writing ------------------------------------------------------------ */

/* Source of the rows being written: 8-bit bytes or floats in [0, 1]. */
typedef struct png_src {
  const uint8_t *u8;
  const float *f32;
  size_t width, height, channels;
} png_src;

static unsigned char to_u8(float v) {
  if (!(v > 0.0f)) /* also NaN */
    return 0;
  if (v >= 1.0f)
    return 255;
  return (unsigned char)(v * 255.0f + 0.5f);
}

static int write_session(png_ctx *ctx, const png_src *src) {
  if (setjmp(png_jmpbuf(ctx->png)))
    return 1;
  static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                               PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_init_io(ctx->png, ctx->f);
  png_set_IHDR(ctx->png, ctx->info, (png_uint_32)src->width, (png_uint_32)src->height, 8,
               types[src->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(ctx->png, ctx->info);
  size_t rowlen = src->width * src->channels;
  for (size_t y = 0; y < src->height; y++) {
    if (src->u8) {
      memcpy(ctx->buf, src->u8 + y * rowlen, rowlen);
    } else {
      const float *row = src->f32 + y * rowlen;
      for (size_t i = 0; i < rowlen; i++)
        ctx->buf[i] = to_u8(row[i]);
    }
    png_write_row(ctx->png, ctx->buf);
  }
  png_write_end(ctx->png, NULL);
  return 0;
}

static int write_png(const char *path, const png_src *src) {
  if (!path || !*path)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: NULL or empty output path");
  if (!src->u8 && !src->f32)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: NULL pixel data");
  if (src->channels < 1 || src->channels > 4)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: channels must be 1..4, got %zu",
                       src->channels);
  if (src->width == 0 || src->height == 0 || src->width > PNG_MAX_DIM ||
      src->height > PNG_MAX_DIM)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: size %zu x %zu outside 1..%u", src->width,
                       src->height, PNG_MAX_DIM);
  png_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.buf = malloc(src->width * src->channels);
  if (!ctx.buf)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "png: cannot allocate a row of %zu pixels",
                       src->width);
  ctx.f = fopen(path, "wb");
  if (!ctx.f) {
    int e = errno;
    free(ctx.buf);
    return CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot create %s: %s", path, strerror(e));
  }
  ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  if (ctx.png)
    ctx.info = png_create_info_struct(ctx.png);
  int st;
  if (!ctx.png || !ctx.info) {
    st = CRATE_ERROR(CRATE_STATUS_EBACKEND, "png: cannot create libpng write structures");
  } else {
    st = write_session(&ctx, src);
    if (st == 1)
      st = CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot write %s: %s", path, ctx.msg);
  }
  png_destroy_write_struct(ctx.png ? &ctx.png : NULL, ctx.info ? &ctx.info : NULL);
  free(ctx.buf);
  if (fflush(ctx.f) != 0 && st == CRATE_STATUS_OK)
    st = CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot write %s: %s", path, strerror(errno));
  if (fclose(ctx.f) != 0 && st == CRATE_STATUS_OK)
    st = CRATE_ERROR(CRATE_STATUS_EIO, "png: cannot close %s: %s", path, strerror(errno));
  if (st != CRATE_STATUS_OK)
    remove(path);
  return st;
}

int crate_png_write(const char *path, const crate_image *img) {
  if (!img || !img->data)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "png: NULL image");
  png_src src = {NULL, img->data, img->width, img->height, img->channels};
  return write_png(path, &src);
}

int crate_png_write_u8(const char *path, const uint8_t *pixels, size_t width, size_t height,
                       size_t channels) {
  png_src src = {pixels, NULL, width, height, channels};
  return write_png(path, &src);
}
