/* test_pngdir.c: PNG folders as data sets (src/io/pngdir.c; data.h "PNG
 * folders"; STYLE.md §9.4).
 *
 * Every fixture is written here into a fresh temporary directory: 8-bit
 * files with crate_png_write_u8, the formats that writer does not produce
 * (16-bit gray and RGB, palette + tRNS) with libpng directly.  Expected pixel
 * values come from the integer samples the test chose: v / 255, v / 65535,
 * BT.601 luma worked out from (r, g, b), block means and bilinear weights
 * derived by hand in the comments; never from the loader's own output.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "crate/data.h"
#include "crate/image.h"
#include "test_util.h"

/* ---- fixtures ------------------------------------------------------------- */

/* A fresh directory under $TMPDIR (or /tmp) into buf. */
static void make_tmp_dir(char *buf, size_t size, const char *tag) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, size, "%s/crate_test_pngdir_%s_XXXXXX", dir && *dir ? dir : "/tmp", tag);
  assert_non_null(mkdtemp(buf));
}

/* Removes a directory, its files and its (empty) subdirectories. */
static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  const struct dirent *e;
  char path[1024];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (remove(path) != 0)
      remove_tree(path);
  }
  closedir(d);
  rmdir(dir);
}

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
  assert_true((size_t)snprintf(buf, size, "%s/%s", dir, name) < size);
}

static void write_u8(const char *dir, const char *name, const uint8_t *px, size_t w, size_t h,
                     size_t c) {
  char path[1024];
  path_in(path, sizeof path, dir, name);
  assert_int_equal(crate_png_write_u8(path, px, w, h, c), CRATE_STATUS_OK);
}

static void write_bytes(const char *dir, const char *name, const void *buf, size_t len) {
  char path[1024];
  path_in(path, sizeof path, dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (len)
    assert_int_equal(fwrite(buf, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Writes a PNG with libpng: rows of raw (packed, big-endian) bytes. */
static void craft_png(const char *dir, const char *name, png_uint_32 w, png_uint_32 h, int depth,
                      int color, const unsigned char *raw, size_t rowbytes, const png_color *pal,
                      int npal, const png_byte *trns, int ntrns) {
  char path[1024];
  path_in(path, sizeof path, dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  assert_non_null(png);
  assert_non_null(info);
  if (setjmp(png_jmpbuf(png)))
    fail_msg("libpng failed while crafting %s", path);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (pal)
    png_set_PLTE(png, info, pal, npal);
  if (trns)
    png_set_tRNS(png, info, trns, ntrns, NULL);
  png_write_info(png, info);
  for (png_uint_32 y = 0; y < h; y++)
    png_write_row(png, raw + y * rowbytes);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  assert_int_equal(fclose(f), 0);
}

/* A gray 8-bit image of w x h from v(x, y) (values must fit a byte). */
typedef unsigned (*pixel_fn)(size_t x, size_t y);

static void write_gray(const char *dir, const char *name, size_t w, size_t h, pixel_fn fn) {
  uint8_t *px = malloc(w * h);
  assert_non_null(px);
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      const unsigned v = fn(x, y);
      assert_true(v <= 255);
      px[y * w + x] = (uint8_t)v;
    }
  write_u8(dir, name, px, w, h, 1);
  free(px);
}

/* What the decoder gives for an 8-bit sample (STYLE.md §9.4: v / 255). */
static float s8(unsigned v) {
  return (float)((double)v / 255.0);
}

/* ---- channels: every PNG flavour, to gray and to RGB ---------------------------- */

/* Four pixels per file (2 x 2), four files of each kind chosen so that no two
 * samples coincide by accident. */
#define NPX 4

/* 8-bit RGB samples shared by the RGB, RGBA and palette files. */
static const unsigned rgb8[NPX][3] = {{255, 0, 0}, {0, 128, 0}, {17, 34, 51}, {200, 100, 50}};
/* 16-bit gray (32768 reads 0.500008, not 186/255: the gamma trap) and RGB. */
static const unsigned gray16[NPX] = {32768, 0, 65535, 4660};
static const unsigned rgb16[NPX][3] = {
    {65535, 0, 4660}, {256, 257, 65280}, {32768, 32768, 32768}, {1, 2, 3}};

/* Hand-computed BT.601 luma of an (r, g, b) triple on the scale `full`. */
static double luma(const unsigned *p, double full) {
  return (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / full;
}

static void write_flavours(const char *dir) {
  /* a: gray 8-bit */
  const uint8_t g8[NPX] = {0, 77, 128, 255};
  write_u8(dir, "a_gray8.png", g8, 2, 2, 1);
  /* b: gray + alpha 8-bit: alpha is dropped */
  const uint8_t ga[2 * NPX] = {10, 0, 20, 255, 30, 128, 40, 7};
  write_u8(dir, "b_gray_alpha.png", ga, 2, 2, 2);
  /* c: RGB 8-bit */
  uint8_t rgb[3 * NPX], rgba[4 * NPX];
  for (size_t i = 0; i < NPX; i++)
    for (size_t c = 0; c < 3; c++) {
      rgb[3 * i + c] = (uint8_t)rgb8[i][c];
      rgba[4 * i + c] = (uint8_t)rgb8[i][c];
    }
  for (size_t i = 0; i < NPX; i++)
    rgba[4 * i + 3] = (uint8_t)(60 * i); /* alpha, dropped */
  write_u8(dir, "c_rgb.png", rgb, 2, 2, 3);
  /* d: RGBA 8-bit */
  write_u8(dir, "d_rgba.png", rgba, 2, 2, 4);
  /* e: gray 16-bit (big-endian samples) */
  unsigned char raw[2 * 3 * NPX];
  for (size_t i = 0; i < NPX; i++) {
    raw[2 * i] = (unsigned char)(gray16[i] >> 8);
    raw[2 * i + 1] = (unsigned char)(gray16[i] & 255);
  }
  craft_png(dir, "e_gray16.png", 2, 2, 16, PNG_COLOR_TYPE_GRAY, raw, 4, NULL, 0, NULL, 0);
  /* f: RGB 16-bit */
  for (size_t i = 0; i < NPX; i++)
    for (size_t c = 0; c < 3; c++) {
      raw[6 * i + 2 * c] = (unsigned char)(rgb16[i][c] >> 8);
      raw[6 * i + 2 * c + 1] = (unsigned char)(rgb16[i][c] & 255);
    }
  craft_png(dir, "f_rgb16.png", 2, 2, 16, PNG_COLOR_TYPE_RGB, raw, 12, NULL, 0, NULL, 0);
  /* g: palette + tRNS (4 entries; pixel i uses entry 3 - i) */
  png_color pal[NPX];
  for (size_t k = 0; k < NPX; k++) {
    pal[k].red = (png_byte)rgb8[NPX - 1 - k][0];
    pal[k].green = (png_byte)rgb8[NPX - 1 - k][1];
    pal[k].blue = (png_byte)rgb8[NPX - 1 - k][2];
  }
  const png_byte trns[2] = {0, 100};
  const unsigned char idx[NPX] = {3, 2, 1, 0};
  craft_png(dir, "g_palette.png", 2, 2, 8, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, NPX, trns, 2);
  /* h: an upper-case suffix is a PNG too: gray 8-bit */
  const uint8_t h8[NPX] = {1, 2, 3, 4};
  write_u8(dir, "h_upper.PNG", h8, 2, 2, 1);
  /* not loaded: a dotfile (corrupt on purpose), a text file, a directory */
  write_bytes(dir, ".hidden.png", "not a png", 9);
  write_bytes(dir, "notes.txt", "hello", 5);
  char sub[1024];
  path_in(sub, sizeof sub, dir, "sub.png");
  assert_int_equal(mkdir(sub, 0700), 0);
}

#define NFILES 8

/* Expected (R, G, B) of file f, pixel i, in [0, 1] (before any luma). */
static void expect_rgb(size_t f, size_t i, double out[3], bool *is_rgb, double *full) {
  static const unsigned g8[NPX] = {0, 77, 128, 255}, ga[NPX] = {10, 20, 30, 40},
                        h8[NPX] = {1, 2, 3, 4};
  *is_rgb = false;
  *full = 255.0;
  unsigned v = 0;
  switch (f) {
  case 0: v = g8[i]; break;
  case 1: v = ga[i]; break;
  case 2:
  case 3:
  case 6: {
    const unsigned *p = rgb8[i]; /* palette: pixel i uses entry 3 - i = rgb8[i] */
    *is_rgb = true;
    for (int c = 0; c < 3; c++)
      out[c] = p[c] / 255.0;
    return;
  }
  case 4:
    *full = 65535.0;
    v = gray16[i];
    break;
  case 5:
    *is_rgb = true;
    *full = 65535.0;
    for (int c = 0; c < 3; c++)
      out[c] = rgb16[i][c] / 65535.0;
    return;
  case 7: v = h8[i]; break;
  default: fail();
  }
  out[0] = out[1] = out[2] = v / *full;
}

static const unsigned *expect_ints(size_t f, size_t i) {
  if (f == 5)
    return rgb16[i];
  return rgb8[i];
}

static void test_pngdir_channels(void **state) {
  (void)state;
  char dir[512];
  make_tmp_dir(dir, sizeof dir, "chan");
  write_flavours(dir);
  for (size_t channels = 1; channels <= 3; channels += 2) {
    crate_dataset ds;
    memset(&ds, 0, sizeof ds);
    int st = crate_pngdir_load(dir, channels, 2, CRATE_RESIZE_EXACT, 0, &ds);
    crate_check(st == CRATE_STATUS_OK, "load: %s", crate_error_message());
    crate_check(ds.count == NFILES && ds.channels == channels && ds.height == 2 && ds.width == 2 &&
                    ds.labels == NULL,
                "got %zu images of %zu x %zu x %zu", ds.count, ds.channels, ds.height, ds.width);
    /* exact samples: everything but luma must equal the decoder's mapping
     * (float)(v / 255) or (float)(v / 65535) bit for bit; luma within 2
     * float ulps (input and output rounding) */
    size_t exact_bad = 0, n_exact = 0, n_luma = 0;
    double luma_err = 0.0;
    for (size_t f = 0; f < NFILES; f++)
      for (size_t i = 0; i < NPX; i++) {
        double want[3], full;
        bool is_rgb;
        expect_rgb(f, i, want, &is_rgb, &full);
        for (size_t c = 0; c < channels; c++) {
          const float got = ds.images[(f * channels + c) * NPX + i];
          if (channels == 1 && is_rgb) {
            const double w = luma(expect_ints(f, i), full);
            const double e = fabs((double)got - w) / (w > 0 ? w : 1.0);
            luma_err = e > luma_err ? e : luma_err;
            n_luma++;
          } else {
            exact_bad += got != (float)want[c];
            n_exact++;
          }
        }
      }
    /* the gamma trap: 16-bit gray 32768 is 0.500008, not 186/255 = 0.729 */
    const float trap = ds.images[(4 * channels) * NPX + 0];
    crate_report("channels",
                 "to %zu channel(s): %zu of %zu direct samples differ from v/255 or "
                 "v/65535 (bound 0); %zu luma samples, max rel err %.2e (bound 2.4e-7); "
                 "16-bit 32768 -> %.6f (want 0.500008)",
                 channels, exact_bad, n_exact, n_luma, luma_err, (double)trap);
    assert_int_equal(exact_bad, 0);
    assert_true(luma_err <= 2.4e-7);
    assert_true(n_luma == (channels == 1 ? 4 * NPX : 0)); /* c, d, f, g */
    assert_true(fabs((double)trap - 32768.0 / 65535.0) < 1e-7);
    crate_dataset_free(&ds);
  }
  /* limit: the first two files in name order */
  crate_dataset ds;
  assert_int_equal(crate_pngdir_load(dir, 1, 2, CRATE_RESIZE_EXACT, 2, &ds), CRATE_STATUS_OK);
  const bool order = ds.count == 2 && ds.images[1] == s8(77) && ds.images[4] == s8(10);
  crate_report("channels", "limit 2: %zu images, first two files in name order: %s", ds.count,
               order ? "yes" : "no");
  assert_true(order);
  crate_dataset_free(&ds);
  remove_tree(dir);
}

/* ---- size policy ------------------------------------------------------------ */

/* 56 x 56: a checkerboard of 2 x 2 blocks (+50 on blocks with bx + by odd)
 * plus a pattern inside each block (0, 60 / 120, 180 by the pixel's row and
 * column parity), so that no block mean is any single pixel: the mean of
 * block (bx, by) is 90 + 50 [(bx + by) odd]. */
static unsigned checker56(size_t x, size_t y) {
  return 60 * (unsigned)(y % 2) + 120 * (unsigned)(x % 2) + 50 * (unsigned)((x / 2 + y / 2) % 2);
}
/* 84 x 84: 3 x 3 blocks; the mean of block (bx, by) is 2 bx + 3 by + 20
 * plus the mean of the in-block pattern 10 (x % 3)^2 + 20 [y % 3 = 0], i.e.
 * (0 + 10 + 40) / 3 + 20 / 3 = 70 / 3.  The pattern is not linear, so the
 * centre pixel (2 bx + 3 by + 30, what bilinear sampling at the block
 * centre would give) is not the mean. */
static unsigned blocks84(size_t x, size_t y) {
  const unsigned i = (unsigned)(x % 3);
  return 2 * (unsigned)(x / 3) + 3 * (unsigned)(y / 3) + 20 + 10 * i * i + (y % 3 == 0 ? 20 : 0);
}
/* 42 x 42 (ratio 1.5) and 14 x 14 (ratio 0.5): a linear ramp. */
static unsigned ramp(size_t x, size_t y) {
  return 4 * (unsigned)x + 2 * (unsigned)y + 7;
}
/* 40 x 28, 28 x 40 and 41 x 28: every pixel distinct in its row / column. */
static unsigned wide(size_t x, size_t y) {
  return (unsigned)(6 * x + y) % 251;
}
static unsigned tall(size_t x, size_t y) {
  return (unsigned)(x + 6 * y) % 251;
}
/* 56 x 28 for STRETCH: columns pair up (horizontal 2x, vertical identity). */
static unsigned stripes(size_t x, size_t y) {
  return 100 * (unsigned)(x % 2) + 3 * (unsigned)(x / 2) + (unsigned)y;
}

/* Loads the single file of dir (size 28) into out[784]. */
static void load_one(const char *dir, crate_resize_mode mode, float *out) {
  crate_dataset ds;
  const int st = crate_pngdir_load(dir, 1, 28, mode, 0, &ds);
  crate_check(st == CRATE_STATUS_OK, "load: %s", crate_error_message());
  assert_int_equal(ds.count, 1);
  memcpy(out, ds.images, 28 * 28 * sizeof *out);
  crate_dataset_free(&ds);
}

static void one_file(const char *tag, size_t w, size_t h, pixel_fn fn, crate_resize_mode mode,
                     float *out) {
  char dir[512];
  make_tmp_dir(dir, sizeof dir, tag);
  write_gray(dir, "img.png", w, h, fn);
  load_one(dir, mode, out);
  remove_tree(dir);
}

static void test_pngdir_area_downsample(void **state) {
  (void)state;
  float got[784];
  /* 2x: each output is the mean of its 2 x 2 block.  The decoded samples
   * are floats s8(v); their mean in double is exact (4 floats, weights 1/4),
   * so the output must equal (float)(mean) bit for bit.  (At exactly 2x,
   * half-pixel bilinear sampling gives the same 2 x 2 means, so the 3x and
   * 1.5x cases below are the ones that tell area averaging apart.) */
  one_file("c56", 56, 56, checker56, CRATE_RESIZE_CENTER_CROP, got);
  size_t bad = 0;
  double dev = 0.0;
  for (size_t by = 0; by < 28; by++)
    for (size_t bx = 0; bx < 28; bx++) {
      double s = 0.0;
      for (size_t j = 0; j < 2; j++)
        for (size_t i = 0; i < 2; i++)
          s += (double)s8(checker56(2 * bx + i, 2 * by + j));
      const float want = (float)(s / 4.0);
      bad += got[by * 28 + bx] != want;
      /* against the analytic block mean (90 + 50 [odd]) / 255 */
      const double ana = (90.0 + 50.0 * (double)((bx + by) % 2)) / 255.0;
      const double e = fabs((double)got[by * 28 + bx] - ana) / ana;
      dev = e > dev ? e : dev;
    }
  crate_report("area",
               "56x56 2x2-block checker -> 28x28: %zu of 784 outputs differ from the "
               "block means (bound 0); rel dev from (90 + 50 [odd]) / 255: %.2e (bound 2.4e-7)",
               bad, dev);
  assert_int_equal(bad, 0);
  assert_true(dev <= 2.4e-7);

  /* 3x: means of 3 x 3 blocks (weights 1/3 per axis: not exact in binary,
   * so a relative bound of a few float ulps) */
  one_file("b84", 84, 84, blocks84, CRATE_RESIZE_CENTER_CROP, got);
  double e3 = 0.0;
  for (size_t by = 0; by < 28; by++)
    for (size_t bx = 0; bx < 28; bx++) {
      const double want = (2.0 * (double)bx + 3.0 * (double)by + 20.0 + 70.0 / 3.0) / 255.0;
      const double e = fabs((double)got[by * 28 + bx] - want) / want;
      e3 = e > e3 ? e : e3;
    }
  /* ratio 1.5: output o covers the source interval [1.5 o, 1.5 o + 1.5).
   * Even o: pixels 1.5 o (overlap 1) and 1.5 o + 1 (overlap 0.5), weights
   * (2/3, 1/3); odd o: pixels 1.5 o - 0.5 (overlap 0.5) and 1.5 o + 0.5
   * (overlap 1), weights (1/3, 2/3).  A ramp is linear, so the output is the
   * ramp at the weighted pixel index: 1.5 o + 1/3 (even), 1.5 o + 1/6 (odd). */
  one_file("r42", 42, 42, ramp, CRATE_RESIZE_CENTER_CROP, got);
  double e15 = 0.0;
  for (size_t oy = 0; oy < 28; oy++)
    for (size_t ox = 0; ox < 28; ox++) {
      const double cx = 1.5 * (double)ox + (ox % 2 ? 1.0 / 6.0 : 1.0 / 3.0);
      const double cy = 1.5 * (double)oy + (oy % 2 ? 1.0 / 6.0 : 1.0 / 3.0);
      const double want = (4.0 * cx + 2.0 * cy + 7.0) / 255.0;
      const double e = fabs((double)got[oy * 28 + ox] - want) / want;
      e15 = e > e15 ? e : e15;
    }
  crate_report("area",
               "84x84 -> 28x28 (3x3 means): max rel err %.2e; 42x42 -> 28x28 (weights "
               "2/3, 1/3): max rel err %.2e (bounds 5e-7)",
               e3, e15);
  assert_true(e3 <= 5e-7);
  assert_true(e15 <= 5e-7);
}

static void test_pngdir_bilinear_upsample(void **state) {
  (void)state;
  /* 14 -> 28: source coordinate (o + 0.5) / 2 - 0.5 = o / 2 - 0.25, clamped
   * to [0, 13].  Bilinear interpolation reproduces a linear ramp, so the
   * output is the ramp 4 x + 2 y + 7 at the clamped coordinates. */
  float got[784];
  one_file("r14", 14, 14, ramp, CRATE_RESIZE_CENTER_CROP, got);
  double err = 0.0;
  for (size_t oy = 0; oy < 28; oy++)
    for (size_t ox = 0; ox < 28; ox++) {
      double cx = (double)ox / 2.0 - 0.25, cy = (double)oy / 2.0 - 0.25;
      cx = cx < 0 ? 0 : (cx > 13 ? 13 : cx);
      cy = cy < 0 ? 0 : (cy > 13 ? 13 : cy);
      const double want = (4.0 * cx + 2.0 * cy + 7.0) / 255.0;
      const double e = fabs((double)got[oy * 28 + ox] - want) / want;
      err = e > err ? e : err;
    }
  /* a corner is a copy of the corner pixel (clamped), exactly */
  const bool corner = got[0] == s8(7) && got[783] == s8(4 * 13 + 2 * 13 + 7);
  crate_report("bilinear",
               "14x14 ramp -> 28x28: max rel err %.2e vs the ramp at (o/2 - 1/4) "
               "clamped (bound 4e-7); corners copied exactly: %s",
               err, corner ? "yes" : "no");
  assert_true(err <= 4e-7);
  assert_true(corner);
}

static void test_pngdir_center_crop_and_stretch(void **state) {
  (void)state;
  float got[784];
  /* 40 x 28: the centred 28 x 28 square starts at column (40 - 28) / 2 = 6,
   * so it holds columns 6..33, copied exactly (no resampling) */
  one_file("w40", 40, 28, wide, CRATE_RESIZE_CENTER_CROP, got);
  size_t bad_w = 0;
  for (size_t y = 0; y < 28; y++)
    for (size_t x = 0; x < 28; x++)
      bad_w += got[y * 28 + x] != s8(wide(x + 6, y));
  /* 28 x 40: rows 6..33 */
  one_file("t40", 28, 40, tall, CRATE_RESIZE_CENTER_CROP, got);
  size_t bad_t = 0;
  for (size_t y = 0; y < 28; y++)
    for (size_t x = 0; x < 28; x++)
      bad_t += got[y * 28 + x] != s8(tall(x, y + 6));
  /* 41 x 28: odd excess 13, start (41 - 28) / 2 = 6: columns 6..33 */
  one_file("w41", 41, 28, wide, CRATE_RESIZE_CENTER_CROP, got);
  size_t bad_o = 0;
  for (size_t y = 0; y < 28; y++)
    for (size_t x = 0; x < 28; x++)
      bad_o += got[y * 28 + x] != s8(wide(x + 6, y));
  crate_report("crop",
               "40x28 -> columns 6..33: %zu differ; 28x40 -> rows 6..33: %zu differ; "
               "41x28 -> columns 6..33: %zu differ (bound 0 each)",
               bad_w, bad_t, bad_o);
  assert_int_equal(bad_w, 0);
  assert_int_equal(bad_t, 0);
  assert_int_equal(bad_o, 0);

  /* STRETCH 56 x 28 -> 28 x 28: columns pair up (2x area), rows stay: the
   * mean of (2x, 2x + 1) is (0 + 100) / 2 + 3 x + y, exact in double */
  one_file("s56", 56, 28, stripes, CRATE_RESIZE_STRETCH, got);
  size_t bad_s = 0;
  for (size_t y = 0; y < 28; y++)
    for (size_t x = 0; x < 28; x++) {
      const double m = ((double)s8(stripes(2 * x, y)) + (double)s8(stripes(2 * x + 1, y))) / 2.0;
      bad_s += got[y * 28 + x] != (float)m;
    }
  /* the same file centre-cropped keeps columns 14..41 instead */
  one_file("s56c", 56, 28, stripes, CRATE_RESIZE_CENTER_CROP, got);
  size_t bad_sc = 0;
  for (size_t y = 0; y < 28; y++)
    for (size_t x = 0; x < 28; x++)
      bad_sc += got[y * 28 + x] != s8(stripes(x + 14, y));
  crate_report("stretch",
               "56x28 stretched: %zu of 784 differ from the column-pair means; "
               "cropped: %zu differ from columns 14..41 (bound 0 each)",
               bad_s, bad_sc);
  assert_int_equal(bad_s, 0);
  assert_int_equal(bad_sc, 0);
}

/* Every resampling weight set sums to 1 (area: overlaps of total n_in
 * divided by n_in; bilinear: 1 - t and t), so a constant image stays
 * constant through every crop / stretch, shrink / enlarge combination,
 * including 1-pixel axes and ratios that do not divide.  Run in memory
 * (crate_image_fit) over a grid of sizes; under ASan this also walks every
 * edge index of the weight tables. */
static void test_pngdir_constant_preserved(void **state) {
  (void)state;
  static const size_t sides[] = {1, 2, 3, 5, 27, 28, 29, 55, 56, 57, 83, 100};
  const size_t ns = sizeof sides / sizeof sides[0];
  const float v = s8(200);
  float out[3 * 28 * 28];
  double worst = 0.0;
  size_t cases = 0;
  for (size_t a = 0; a < ns; a++)
    for (size_t b = 0; b < ns; b++) {
      crate_image *img = NULL;
      assert_int_equal(crate_image_create(&img, sides[a], sides[b], 3), CRATE_STATUS_OK);
      for (size_t i = 0; i < sides[a] * sides[b] * 3; i++)
        img->data[i] = v;
      for (int mode = 0; mode < 2; mode++)
        for (size_t ch = 1; ch <= 3; ch += 2) {
          const int st = crate_image_fit(out, img, ch, 28, (crate_resize_mode)mode);
          crate_check(st == CRATE_STATUS_OK, "%zu x %zu: %s", sides[a], sides[b],
                      crate_error_message());
          for (size_t i = 0; i < ch * 28 * 28; i++) {
            const double e = fabs((double)out[i] - (double)v) / (double)v;
            worst = e > worst ? e : worst;
          }
          cases++;
        }
      crate_image_destroy(img);
    }
  crate_report("unity",
               "constant RGB image, %zu size/mode/channel cases to 28x28: max rel "
               "deviation %.2e (bound 2.4e-7: luma weights and area weights each sum to 1 "
               "within an ulp)",
               cases, worst);
  assert_true(worst <= 2.4e-7);
}

static void test_pngdir_exact_refuses(void **state) {
  (void)state;
  char dir[512];
  make_tmp_dir(dir, sizeof dir, "exact");
  write_gray(dir, "a_ok.png", 28, 28, wide);
  write_gray(dir, "b_wide.png", 40, 28, wide);
  crate_dataset ds;
  memset(&ds, 0, sizeof ds);
  ds.count = 12345; /* sentinel: untouched on error */
  const int st = crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_EXACT, 0, &ds);
  const char *msg = crate_error_message();
  const bool named = strstr(msg, "b_wide.png") != NULL && strstr(msg, "40 x 28") != NULL &&
                     strstr(msg, "28 x 28") != NULL;
  crate_report("exact", "40x28 under EXACT: status %d (want %d), message '%s'", st,
               CRATE_STATUS_EINVAL, msg);
  assert_int_equal(st, CRATE_STATUS_EINVAL);
  assert_true(named);
  assert_int_equal(ds.count, 12345);
  assert_null(ds.images);
  /* limit 1 stops before the wrong file */
  assert_int_equal(crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_EXACT, 1, &ds), CRATE_STATUS_OK);
  assert_int_equal(ds.count, 1);
  crate_dataset_free(&ds);
  /* crate_image_fit on its own */
  crate_image *img = NULL;
  assert_int_equal(crate_image_create(&img, 3, 2, 1), CRATE_STATUS_OK);
  float out[4];
  assert_int_equal(crate_image_fit(out, img, 1, 2, CRATE_RESIZE_EXACT), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "expected size is 2 x 2"));
  assert_int_equal(crate_image_fit(out, img, 2, 2, CRATE_RESIZE_STRETCH), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_fit(out, img, 1, 0, CRATE_RESIZE_STRETCH), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_fit(NULL, img, 1, 2, CRATE_RESIZE_STRETCH), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_fit(out, img, 1, 2, CRATE_RESIZE_STRETCH), CRATE_STATUS_OK);
  crate_image_destroy(img);
  remove_tree(dir);
}

static void test_pngdir_errors(void **state) {
  (void)state;
  char dir[512], path[1024];
  make_tmp_dir(dir, sizeof dir, "err");
  crate_dataset ds;
  memset(&ds, 0, sizeof ds);
  int st;

  /* a missing directory */
  path_in(path, sizeof path, dir, "no-such-dir");
  st = crate_pngdir_load(path, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  crate_report("errors", "missing dir: status %d (want ENOENT %d), '%s'", st, CRATE_STATUS_ENOENT,
               crate_error_message());
  assert_int_equal(st, CRATE_STATUS_ENOENT);
  assert_non_null(strstr(crate_error_message(), "no-such-dir"));

  /* an empty directory (nothing but non-PNG entries) */
  write_bytes(dir, "readme.txt", "x", 1);
  write_bytes(dir, ".dot.png", "", 0);
  st = crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  crate_report("errors", "no PNGs: status %d (want EINVAL %d), '%s'", st, CRATE_STATUS_EINVAL,
               crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "no PNG files in"));
  assert_non_null(strstr(crate_error_message(), dir));

  /* a regular file instead of a directory */
  path_in(path, sizeof path, dir, "readme.txt");
  st = crate_pngdir_load(path, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  crate_report("errors", "a file as the dir: status %d (want EINVAL %d)", st, CRATE_STATUS_EINVAL);
  assert_int_equal(st, CRATE_STATUS_EINVAL);

  /* a truncated PNG among good ones: EFORMAT naming it, not skipped */
  write_gray(dir, "a_good.png", 28, 28, wide);
  path_in(path, sizeof path, dir, "a_good.png");
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  unsigned char buf[4096];
  const size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  assert_true(len > 60 && len < sizeof buf);
  write_bytes(dir, "b_truncated.png", buf, len / 2);
  write_gray(dir, "c_good.png", 28, 28, wide);
  ds.count = 777;
  st = crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  crate_report("errors", "truncated PNG: status %d (want EFORMAT %d), '%s'", st,
               CRATE_STATUS_EFORMAT, crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EFORMAT);
  assert_non_null(strstr(crate_error_message(), "b_truncated.png"));
  assert_int_equal(ds.count, 777);
  path_in(path, sizeof path, dir, "b_truncated.png");
  remove(path);

  /* a zero-byte file and a non-PNG file named .png */
  write_bytes(dir, "b_empty.png", "", 0);
  st = crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  const bool empty_named = strstr(crate_error_message(), "b_empty.png") != NULL;
  crate_report("errors", "zero-byte .png: status %d (want EFORMAT), '%s'", st,
               crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EFORMAT);
  assert_true(empty_named);
  path_in(path, sizeof path, dir, "b_empty.png");
  remove(path);
  write_bytes(dir, "b_text.png", "GIF89a, honestly", 16);
  st = crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds);
  assert_int_equal(st, CRATE_STATUS_EFORMAT);
  assert_non_null(strstr(crate_error_message(), "b_text.png"));
  path_in(path, sizeof path, dir, "b_text.png");
  remove(path);

  /* the two good files load */
  assert_int_equal(crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds),
                   CRATE_STATUS_OK);
  assert_int_equal(ds.count, 2);
  crate_dataset_free(&ds);

  /* bad arguments */
  const int bad[] = {
      crate_pngdir_load(NULL, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds),
      crate_pngdir_load(dir, 1, 28, CRATE_RESIZE_CENTER_CROP, 0, NULL),
      crate_pngdir_load(dir, 2, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds),
      crate_pngdir_load(dir, 4, 28, CRATE_RESIZE_CENTER_CROP, 0, &ds),
      crate_pngdir_load(dir, 1, 0, CRATE_RESIZE_CENTER_CROP, 0, &ds),
      crate_pngdir_load(dir, 1, 28, (crate_resize_mode)7, 0, &ds),
  };
  size_t not_einval = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    not_einval += bad[i] != CRATE_STATUS_EINVAL;
  crate_report("errors",
               "bad arguments (NULL dir/out, channels 2/4, size 0, mode 7): %zu of "
               "%zu not EINVAL (bound 0)",
               not_einval, sizeof bad / sizeof bad[0]);
  assert_int_equal(not_einval, 0);

  /* resize mode names */
  crate_resize_mode m = CRATE_RESIZE_EXACT;
  assert_int_equal(crate_resize_mode_parse("crop", &m), CRATE_STATUS_OK);
  assert_int_equal(m, CRATE_RESIZE_CENTER_CROP);
  assert_int_equal(crate_resize_mode_parse("stretch", &m), CRATE_STATUS_OK);
  assert_int_equal(m, CRATE_RESIZE_STRETCH);
  assert_int_equal(crate_resize_mode_parse("exact", &m), CRATE_STATUS_OK);
  assert_int_equal(m, CRATE_RESIZE_EXACT);
  assert_int_equal(crate_resize_mode_parse("zoom", &m), CRATE_STATUS_EINVAL);
  assert_int_equal(m, CRATE_RESIZE_EXACT);
  assert_string_equal(crate_resize_mode_name(CRATE_RESIZE_CENTER_CROP), "crop");
  assert_string_equal(crate_resize_mode_name(CRATE_RESIZE_STRETCH), "stretch");
  assert_string_equal(crate_resize_mode_name(CRATE_RESIZE_EXACT), "exact");
  assert_string_equal(crate_resize_mode_name((crate_resize_mode)9), "?");
  remove_tree(dir);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pngdir_channels),
      cmocka_unit_test(test_pngdir_area_downsample),
      cmocka_unit_test(test_pngdir_bilinear_upsample),
      cmocka_unit_test(test_pngdir_center_crop_and_stretch),
      cmocka_unit_test(test_pngdir_constant_preserved),
      cmocka_unit_test(test_pngdir_exact_refuses),
      cmocka_unit_test(test_pngdir_errors),
  };
  return CRATE_RUN("pngdir", tests, argc, argv);
}
