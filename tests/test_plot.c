/* test_plot.c: the PNG seam (src/io/png_io.c, STYLE.md §9.4) and the plot
 * library (src/plot/).
 *
 * PNG fixtures of the formats the writer does not produce (16-bit, palette
 * with tRNS, 1/2/4-bit gray) are crafted here with libpng directly, so the
 * reader is checked against sample values chosen by the test, never against
 * its own output.  Tick known answers are worked out by hand in comments.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "crate/image.h"
#include "crate/plot.h"
#include "plot/plot_internal.h"
#include "test_util.h"

/* ---- fixtures ------------------------------------------------------------- */

static void tmp_path(char *buf, size_t size, const char *name) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, size, "%s/crate_test_plot_%ld_%s", dir && *dir ? dir : "/tmp", (long)getpid(),
           name);
}

/* Writes a PNG with libpng: rows of raw (already packed, big-endian) bytes. */
static void craft_png(const char *path, png_uint_32 w, png_uint_32 h, int depth, int color,
                      const unsigned char *raw, size_t rowbytes, const png_color *pal, int npal,
                      const png_byte *trns, int ntrns) {
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

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  unsigned char *buf = malloc((size_t)n);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void spit(const char *path, const unsigned char *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (len)
    assert_int_equal(fwrite(buf, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* ---- PNG ------------------------------------------------------------------ */

static void test_png_roundtrip_8bit(void **state) {
  (void)state;
  char path[512];
  tmp_path(path, sizeof path, "rt.png");
  crate_rng r;
  crate_rng_init(&r, 11, CRATE_RNG_DATA);
  size_t worst = 0;
  for (size_t C = 1; C <= 4; C++) {
    const size_t W = 13 + C, H = 7;
    crate_image *img = NULL, *back = NULL;
    assert_int_equal(crate_image_create(&img, W, H, C), CRATE_STATUS_OK);
    unsigned char *want = malloc(W * H * C);
    assert_non_null(want);
    for (size_t i = 0; i < W * H * C; i++) {
      want[i] = (unsigned char)crate_rng_below(&r, 256);
      img->data[i] = (float)want[i] / 255.0f;
    }
    want[0] = 0;
    img->data[0] = 0.0f;
    want[1] = 255;
    img->data[1] = 1.0f;
    assert_int_equal(crate_png_write(path, img), CRATE_STATUS_OK);
    int depth = 0;
    assert_int_equal(crate_png_read(path, &back, &depth), CRATE_STATUS_OK);
    assert_int_equal(depth, 8);
    assert_int_equal(back->width, W);
    assert_int_equal(back->height, H);
    assert_int_equal(back->channels, C);
    size_t bad = 0;
    for (size_t i = 0; i < W * H * C; i++)
      bad += back->data[i] != (float)((double)want[i] / 255.0);
    worst = bad > worst ? bad : worst;
    /* the byte writer gives the same file contents back */
    assert_int_equal(crate_png_write_u8(path, want, W, H, C), CRATE_STATUS_OK);
    crate_image_destroy(back);
    back = NULL;
    assert_int_equal(crate_png_read(path, &back, NULL), CRATE_STATUS_OK);
    for (size_t i = 0; i < W * H * C; i++)
      bad += back->data[i] != (float)((double)want[i] / 255.0);
    worst = bad > worst ? bad : worst;
    crate_image_destroy(back);
    crate_image_destroy(img);
    free(want);
  }
  crate_report("png", "8-bit gray/GA/RGB/RGBA round trip: %zu samples differ (bound 0)", worst);
  assert_int_equal(worst, 0);

  /* out-of-range floats are clamped, NaN writes 0 */
  crate_image *img = NULL, *back = NULL;
  assert_int_equal(crate_image_create(&img, 4, 1, 1), CRATE_STATUS_OK);
  const float in[4] = {-0.5f, 2.0f, NAN, 0.5f};
  memcpy(img->data, in, sizeof in);
  assert_int_equal(crate_png_write(path, img), CRATE_STATUS_OK);
  assert_int_equal(crate_png_read(path, &back, NULL), CRATE_STATUS_OK);
  crate_report("png", "clamp: -0.5 -> %g, 2 -> %g, NaN -> %g, 0.5 -> %g (want 0, 1, 0, 128/255)",
               back->data[0], back->data[1], back->data[2], back->data[3]);
  assert_true(back->data[0] == 0.0f && back->data[1] == 1.0f && back->data[2] == 0.0f);
  assert_true(back->data[3] == (float)(128.0 / 255.0));
  crate_image_destroy(back);
  crate_image_destroy(img);
  remove(path);
}

static void test_png_16bit(void **state) {
  (void)state;
  char path[512];
  tmp_path(path, sizeof path, "g16.png");
  /* 16-bit gray: 5 x 1 samples, big-endian */
  const unsigned v[5] = {0, 1, 32768, 65535, 12345};
  unsigned char raw[10];
  for (int i = 0; i < 5; i++) {
    raw[2 * i] = (unsigned char)(v[i] >> 8);
    raw[2 * i + 1] = (unsigned char)(v[i] & 255);
  }
  craft_png(path, 5, 1, 16, PNG_COLOR_TYPE_GRAY, raw, sizeof raw, NULL, 0, NULL, 0);
  crate_image *img = NULL;
  int depth = 0;
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(depth, 16);
  assert_int_equal(img->channels, 1);
  size_t differ = 0;
  for (int i = 0; i < 5; i++)
    differ += img->data[i] != (float)(v[i] / 65535.0);
  crate_report("png", "16-bit gray 32768 -> %.6f (want 32768/65535 = 0.500008; the simplified "
               "API's trap gives 186/255 = 0.729); %zu of 5 samples differ from v/65535 "
               "(bound 0)", img->data[2], differ);
  assert_int_equal(differ, 0);
  assert_true(fabs(img->data[2] - 0.500008) < 1e-6);
  crate_image_destroy(img);

  /* 16-bit RGB with a tRNS colour -> RGBA, alpha 0 exactly at that colour */
  unsigned char rgb[2 * 6];
  const unsigned px[2][3] = {{65535, 0, 4660}, {256, 257, 65280}};
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 3; c++) {
      rgb[i * 6 + 2 * c] = (unsigned char)(px[i][c] >> 8);
      rgb[i * 6 + 2 * c + 1] = (unsigned char)(px[i][c] & 255);
    }
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png)))
    fail_msg("libpng failed while crafting a 16-bit RGB file");
  png_init_io(png, f);
  png_set_IHDR(png, info, 2, 1, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_color_16 key = {0, 256, 257, 65280, 0};
  png_set_tRNS(png, info, NULL, 0, &key);
  png_write_info(png, info);
  png_write_row(png, rgb);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(f);
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(img->channels, 4);
  const double want[8] = {1.0, 0.0, 4660 / 65535.0, 1.0, 256 / 65535.0, 257 / 65535.0,
                          65280 / 65535.0, 0.0};
  differ = 0;
  for (int i = 0; i < 8; i++)
    differ += img->data[i] != (float)want[i];
  crate_report("png", "16-bit RGB + tRNS key -> RGBA: %zu of 8 samples differ (bound 0), "
               "alpha %g, %g", differ, img->data[3], img->data[7]);
  assert_int_equal(differ, 0);
  crate_image_destroy(img);
  remove(path);
}

static void test_png_palette_and_low_depth(void **state) {
  (void)state;
  char path[512];
  tmp_path(path, sizeof path, "pal.png");
  /* 8-bit palette, 4 entries, tRNS alpha for the first two: 4 x 1 pixels */
  const png_color pal[4] = {{255, 0, 0}, {0, 128, 0}, {0, 0, 255}, {17, 34, 51}};
  const png_byte trns[2] = {0, 100};
  const unsigned char idx[4] = {3, 2, 1, 0};
  craft_png(path, 4, 1, 8, PNG_COLOR_TYPE_PALETTE, idx, 4, pal, 4, trns, 2);
  crate_image *img = NULL;
  int depth = 0;
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(img->channels, 4);
  const double want[16] = {17, 34, 51, 255, 0, 0, 255, 255, 0, 128, 0, 100, 255, 0, 0, 0};
  size_t differ = 0;
  for (int i = 0; i < 16; i++)
    differ += img->data[i] != (float)(want[i] / 255.0);
  crate_report("png", "palette + tRNS -> RGBA: %zu of 16 samples differ from v/255 (bound 0)",
               differ);
  assert_int_equal(differ, 0);
  crate_image_destroy(img);

  /* 1-bit gray checker (8 x 2) and 2/4-bit gray ramps: v scaled to 8 bits
   * by png_set_expand_gray_1_2_4_to_8, i.e. v * 255 / (2^b - 1) */
  const unsigned char bits[2] = {0xAA, 0x55};
  craft_png(path, 8, 2, 1, PNG_COLOR_TYPE_GRAY, bits, 1, NULL, 0, NULL, 0);
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(depth, 1);
  assert_int_equal(img->channels, 1);
  size_t bad = 0;
  for (size_t y = 0; y < 2; y++)
    for (size_t x = 0; x < 8; x++)
      bad += img->data[y * 8 + x] != (((x + y) % 2 == 0) ? 1.0f : 0.0f);
  crate_image_destroy(img);
  const unsigned char two[1] = {0x1B};        /* 0 1 2 3 */
  const unsigned char four[2] = {0x07, 0xF3}; /* 0 7 15 3 */
  craft_png(path, 4, 1, 2, PNG_COLOR_TYPE_GRAY, two, 1, NULL, 0, NULL, 0);
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  for (int i = 0; i < 4; i++)
    bad += img->data[i] != (float)(i / 3.0);
  crate_image_destroy(img);
  craft_png(path, 4, 1, 4, PNG_COLOR_TYPE_GRAY, four, 2, NULL, 0, NULL, 0);
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(depth, 4);
  const int v4[4] = {0, 7, 15, 3};
  for (int i = 0; i < 4; i++)
    bad += img->data[i] != (float)(v4[i] / 15.0);
  crate_report("png", "1/2/4-bit gray: %zu samples differ from v/(2^b-1) (bound 0)", bad);
  assert_int_equal(bad, 0);
  crate_image_destroy(img);
  remove(path);
}

static void test_png_errors(void **state) {
  (void)state;
  char path[512], bad[512];
  tmp_path(path, sizeof path, "ok.png");
  tmp_path(bad, sizeof bad, "bad.png");
  crate_image *img = NULL;
  remove(bad);
  int st = crate_png_read(bad, &img, NULL);
  crate_report("png", "missing file -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_ENOENT);
  assert_null(img);
  assert_non_null(strstr(crate_error_message(), "png: "));

  /* a real file, then every truncation of it */
  enum { W = 40, H = 30 };
  unsigned char pix[W * H * 3];
  for (size_t i = 0; i < sizeof pix; i++)
    pix[i] = (unsigned char)((i * 7919u) >> 3);
  assert_int_equal(crate_png_write_u8(path, pix, W, H, 3), CRATE_STATUS_OK);
  size_t len = 0;
  unsigned char *buf = slurp(path, &len);
  size_t n_ok = 0, n_format = 0, n_other = 0;
  for (size_t cut = 0; cut < len; cut++) {
    spit(bad, buf, cut);
    st = crate_png_read(bad, &img, NULL);
    if (st == CRATE_STATUS_OK) {
      n_ok++;
      crate_image_destroy(img);
    } else if (st == CRATE_STATUS_EFORMAT || st == CRATE_STATUS_EIO) {
      n_format++;
      assert_null(img);
      assert_non_null(strstr(crate_error_message(), "png: "));
    } else {
      n_other++;
    }
  }
  crate_report("png", "%zu truncations of a %zu-byte file: %zu EFORMAT/EIO, %zu OK, %zu other "
               "(bound: all rejected)", len, len, n_format, n_ok, n_other);
  assert_int_equal(n_ok, 0);
  assert_int_equal(n_other, 0);
  spit(bad, buf, len / 2);
  st = crate_png_read(bad, &img, NULL);
  crate_report("png", "half file -> %s: %s", crate_strerror(st), crate_error_message());

  /* random byte corruption: never a crash; corrupted critical data is an error */
  crate_rng r;
  crate_rng_init(&r, 3, CRATE_RNG_DATA);
  size_t rejected = 0, accepted = 0;
  for (int t = 0; t < 300; t++) {
    unsigned char *c = malloc(len);
    assert_non_null(c);
    memcpy(c, buf, len);
    size_t pos = 8 + crate_rng_below(&r, (uint32_t)(len - 8));
    c[pos] ^= (unsigned char)(1 + crate_rng_below(&r, 255));
    spit(bad, c, len);
    free(c);
    st = crate_png_read(bad, &img, NULL);
    assert_true(st == CRATE_STATUS_OK || st == CRATE_STATUS_EFORMAT);
    if (st == CRATE_STATUS_OK) {
      accepted++;
      crate_image_destroy(img);
    } else {
      rejected++;
    }
  }
  crate_report("png", "300 one-byte corruptions: %zu rejected (EFORMAT), %zu accepted (bound 0)",
               rejected, accepted);
  assert_int_equal(accepted, 0); /* every byte after the signature is in a CRC-checked critical chunk */
  free(buf);

  spit(bad, (const unsigned char *)"hello, not a png at all\n", 24);
  st = crate_png_read(bad, &img, NULL);
  crate_report("png", "text file -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EFORMAT);

  st = crate_png_write_u8("/nonexistent-dir/x.png", pix, W, H, 3);
  crate_report("png", "unwritable path -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EIO);
  assert_int_equal(crate_png_write_u8(path, pix, 0, H, 3), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_png_write_u8(path, pix, W, H, 5), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_png_write_u8(path, NULL, W, H, 3), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_png_write(path, NULL), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_png_read(NULL, &img, NULL), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_create(&img, 0, 3, 1), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_create(&img, 3, 3, 0), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_image_create(&img, (size_t)1 << 20, (size_t)1 << 20, 3),
                   CRATE_STATUS_EINVAL);
  crate_image_destroy(NULL);
  remove(path);
  remove(bad);
}

/* ---- ticks ---------------------------------------------------------------- */

static void check_ticks(const char *what, crate_plot_scale sc, double lo, double hi, size_t max,
                        const double *want, size_t n) {
  crate_plot_tickset t;
  assert_int_equal(crate_plot_ticks(sc, lo, hi, max, &t), CRATE_STATUS_OK);
  char got[512] = "";
  for (size_t i = 0; i < t.n_major; i++) {
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, "%s%g", i ? ", " : "", t.major[i]);
  }
  crate_report("ticks", "%s [%g, %g] max %zu -> %s", what, lo, hi, max, got);
  assert_int_equal(t.n_major, n);
  for (size_t i = 0; i < n; i++)
    crate_check(t.major[i] == want[i], "tick %zu: got %.17g, want %.17g", i, t.major[i], want[i]);
}

static void test_ticks_linear(void **state) {
  (void)state;
  /* span 0.93: step 0.1 would give 10 ticks > 7, step 0.2 gives 0..0.8 */
  check_ticks("linear", CRATE_PLOT_LINEAR, 0, 0.93, 7, (const double[]){0, 0.2, 0.4, 0.6, 0.8},
              5);
  /* step 2 would give -2..12 = 8 ticks > 7; step 5 gives 0, 5, 10 */
  check_ticks("linear", CRATE_PLOT_LINEAR, -3.7, 12.2, 7, (const double[]){0, 5, 10}, 3);
  check_ticks("linear", CRATE_PLOT_LINEAR, -3.7, 12.2, 8,
              (const double[]){-2, 0, 2, 4, 6, 8, 10, 12}, 8);
  check_ticks("linear", CRATE_PLOT_LINEAR, 250, 2600, 6,
              (const double[]){500, 1000, 1500, 2000, 2500}, 5);
  check_ticks("linear", CRATE_PLOT_LINEAR, 1e-6, 4.2e-6, 5,
              (const double[]){1e-6, 2e-6, 3e-6, 4e-6}, 4);

  /* properties over random ranges: inside, evenly spaced, 1-2-5 step, the
   * smallest such step within the budget */
  crate_rng r;
  crate_rng_init(&r, 7, CRATE_RNG_DATA);
  size_t bad = 0;
  for (int t = 0; t < 2000; t++) {
    double c = (crate_rng_uniform(&r) - 0.5) * pow(10.0, 8 * crate_rng_uniform(&r) - 4);
    double span = pow(10.0, 10 * crate_rng_uniform(&r) - 5);
    double lo = c - span * crate_rng_uniform(&r), hi = lo + span;
    size_t max = 2 + crate_rng_below(&r, 9);
    crate_plot_tickset ts;
    if (crate_plot_ticks(CRATE_PLOT_LINEAR, lo, hi, max, &ts) != CRATE_STATUS_OK) {
      bad++;
      continue;
    }
    double e = floor(log10(ts.step) + 1e-9), mant = ts.step / pow(10.0, e);
    bool nice = fabs(mant - 1) < 1e-9 || fabs(mant - 2) < 1e-9 || fabs(mant - 5) < 1e-9;
    bool ok = nice && ts.n_major >= 1 && ts.n_major <= max;
    for (size_t i = 0; i < ts.n_major && ok; i++) {
      ok = ts.major[i] >= lo - 1e-9 * span && ts.major[i] <= hi + 1e-9 * span;
      if (i)
        ok = ok && fabs(ts.major[i] - ts.major[i - 1] - ts.step) <= 1e-9 * ts.step + 1e-12 * fabs(ts.major[i]);
    }
    /* the next smaller nice step must exceed the budget */
    double smaller = fabs(mant - 1) < 1e-9 ? 0.5 * ts.step : fabs(mant - 2) < 1e-9 ? 0.5 * ts.step
                                                                                : 0.4 * ts.step;
    double cnt = floor(hi / smaller + 1e-9) - ceil(lo / smaller - 1e-9) + 1;
    ok = ok && cnt > (double)max;
    bad += !ok;
  }
  crate_report("ticks", "2000 random linear ranges: %zu violate inside/spacing/1-2-5/minimal "
               "(bound 0)", bad);
  assert_int_equal(bad, 0);

  crate_plot_tickset ts;
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LINEAR, 1, 1, 5, &ts), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LINEAR, 2, 1, 5, &ts), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LINEAR, 0, NAN, 5, &ts), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LINEAR, 0, 1, 1, &ts), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LOG10, 0, 1, 5, &ts), CRATE_STATUS_EINVAL);
}

static void test_ticks_log(void **state) {
  (void)state;
  /* data [0.013, 870]: log10 -1.886 .. 2.940, each end within a quarter
   * decade of a power of ten, so the axis is [1e-2, 1e3] */
  double lo, hi;
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LOG10, 0.013, 870, &lo, &hi),
                   CRATE_STATUS_OK);
  crate_report("ticks", "log auto range of [0.013, 870] -> [%g, %g] (want [0.01, 1000])", lo, hi);
  assert_true(lo == 1e-2 && hi == 1e3);
  check_ticks("log", CRATE_PLOT_LOG10, lo, hi, 10,
              (const double[]){1e-2, 1e-1, 1, 10, 100, 1000}, 6);
  crate_plot_tickset t;
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LOG10, lo, hi, 10, &t), CRATE_STATUS_OK);
  crate_report("ticks", "log minor ticks: %zu (want 5 decades x 8 = 40), first %g, last %g",
               t.n_minor, t.minor[0], t.minor[t.n_minor - 1]);
  assert_true(t.decades);
  assert_int_equal(t.n_minor, 40);
  assert_true(t.minor[0] == 0.02 && t.minor[39] == 900);

  /* [0.02, 10]: the low end is 0.3 decade above 1e-2, so it gets a 4%
   * margin of the 2.7-decade span instead: 10^(-1.699 - 0.108) */
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LOG10, 0.02, 10, &lo, &hi), CRATE_STATUS_OK);
  double want_lo = pow(10.0, log10(0.02) - 0.04 * (1 - log10(0.02)));
  crate_report("ticks", "log auto range of [0.02, 10] -> [%.6g, %g] (want [%.6g, 10])", lo, hi,
               want_lo);
  assert_true(fabs(lo - want_lo) <= 1e-12 * want_lo && hi == 10);

  /* short log axes: 1-2-5 mantissas, then linear ticks */
  check_ticks("log", CRATE_PLOT_LOG10, 1.5, 7, 6, (const double[]){2, 5}, 2);
  check_ticks("log", CRATE_PLOT_LOG10, 0.15, 0.7, 6, (const double[]){0.2, 0.5}, 2);
  check_ticks("log", CRATE_PLOT_LOG10, 3, 4, 6, (const double[]){3, 3.2, 3.4, 3.6, 3.8, 4}, 6);

  /* 61 decades with at most 10 majors: every 7th power of ten */
  assert_int_equal(crate_plot_ticks(CRATE_PLOT_LOG10, 1e-30, 1e30, 10, &t), CRATE_STATUS_OK);
  size_t bad = 0;
  for (size_t i = 0; i < t.n_major; i++) {
    double k = log10(t.major[i]);
    bad += fabs(k - round(k)) > 1e-12 || ((long)round(k)) % 7 != 0;
  }
  crate_report("ticks", "log [1e-30, 1e30] max 10: %zu majors (want 9: 1e-28..1e28 step 7), "
               "%zu minor, %zu bad", t.n_major, t.n_minor, bad);
  assert_int_equal(t.n_major, 9);
  assert_int_equal(bad, 0);

  /* linear auto range: 4% margins; constant data gets a range around it */
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LINEAR, 0, 0.93, &lo, &hi), CRATE_STATUS_OK);
  assert_true(fabs(lo + 0.0372) < 1e-15 && fabs(hi - 0.9672) < 1e-15);
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LINEAR, 5, 5, &lo, &hi), CRATE_STATUS_OK);
  assert_true(lo == 4.5 && hi == 5.5);
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LOG10, 5, 5, &lo, &hi), CRATE_STATUS_OK);
  assert_true(lo < 5 && hi > 5);
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LOG10, 0, 5, &lo, &hi), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_auto_range(CRATE_PLOT_LINEAR, 2, 1, &lo, &hi), CRATE_STATUS_EINVAL);
}

/* ---- rendering -------------------------------------------------------------- */

static uint32_t pixel(const uint8_t *rgb, size_t W, size_t x, size_t y) {
  const uint8_t *p = rgb + (y * W + x) * 3;
  return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static void test_plot_render(void **state) {
  (void)state;
  enum { N = 50 };
  double x[N], y[N], y2[N];
  for (int i = 0; i < N; i++) {
    x[i] = 0.1 * (i + 1);
    y[i] = sin(x[i]) + 1.5;
    y2[i] = 1.0 / x[i];
  }
  const uint32_t red = 0xD62828;
  crate_plot_style st = {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_NONE, true, red, 3, 0};
  crate_plot *p = NULL;
  assert_int_equal(crate_plot_create(&p, 640, 480), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_title(p, "test chart: sin and 1/x"), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_labels(p, "x", "y (log)"), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_scale(p, CRATE_PLOT_LINEAR, CRATE_PLOT_LOG10), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_add(p, "sin(x) + 1.5", x, y, N, &st), CRATE_STATUS_OK);
  crate_plot_style dashed = {CRATE_PLOT_DASHED, CRATE_PLOT_MARKER_SQUARE, false, 0, 0, 0};
  assert_int_equal(crate_plot_add(p, "1/x", x, y2, N, &dashed), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_area(p, NULL, NULL, NULL, NULL), CRATE_STATUS_EINVAL);
  char path[512];
  tmp_path(path, sizeof path, "chart.png");
  assert_int_equal(crate_plot_write_png(p, path), CRATE_STATUS_OK);
  size_t W = 0, H = 0, x0, y0, x1, y1;
  const uint8_t *rgb = crate_plot_pixels(p, &W, &H);
  assert_int_equal(crate_plot_area(p, &x0, &y0, &x1, &y1), CRATE_STATUS_OK);
  size_t nonwhite = 0, red_in = 0, red_out = 0;
  for (size_t j = 0; j < H; j++)
    for (size_t i = 0; i < W; i++) {
      uint32_t c = pixel(rgb, W, i, j);
      nonwhite += c != 0xFFFFFF;
      bool in = i >= x0 && i < x1 && j >= y0 && j < y1;
      if (c == red)
        (*(in ? &red_in : &red_out))++;
    }
  crate_report("render", "%zu x %zu canvas, area [%zu, %zu) x [%zu, %zu), %.1f%% non-white, "
               "series colour: %zu px inside the area, %zu outside", W, H, x0, x1, y0, y1,
               100.0 * (double)nonwhite / (double)(W * H), red_in, red_out);
  assert_int_equal(W, 640);
  assert_int_equal(H, 480);
  assert_true(x0 > 20 && x1 < W && y0 > 10 && y1 < H && x1 - x0 > W / 2 && y1 - y0 > H / 2);
  assert_true(nonwhite > W * H / 50 && nonwhite < W * H / 2);
  assert_true(red_in > 500); /* a 3-px line across most of the area */
  assert_int_equal(red_out, 0);
  /* palette colour of the second series (index 1) shows up too */
  size_t pal_in = 0;
  for (size_t j = y0; j < y1; j++)
    for (size_t i = x0; i < x1; i++)
      pal_in += pixel(rgb, W, i, j) == crate_plot_palette(1);
  crate_report("render", "palette colour 1: %zu px inside the area", pal_in);
  assert_true(pal_in > 200);

  /* the file holds the same pixels */
  crate_image *img = NULL;
  assert_int_equal(crate_png_read(path, &img, NULL), CRATE_STATUS_OK);
  assert_int_equal(img->width, W);
  assert_int_equal(img->height, H);
  assert_int_equal(img->channels, 3);
  size_t diff = 0;
  for (size_t i = 0; i < W * H * 3; i++)
    diff += img->data[i] != (float)(rgb[i] / 255.0);
  crate_report("render", "PNG file vs canvas: %zu samples differ (bound 0)", diff);
  assert_int_equal(diff, 0);
  crate_image_destroy(img);
  crate_plot_destroy(p);
  remove(path);
}

static void test_plot_clip_and_gaps(void **state) {
  (void)state;
  /* fixed ranges smaller than the data: nothing may leak out of the area */
  const double x[5] = {-10, 0, 1, 2, 30}, y[5] = {-5, 0.5, 9, 0.5, 40};
  const uint32_t blue = 0x1F6FB4;
  crate_plot_style st = {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_CIRCLE, true, blue, 4, 6};
  crate_plot *p = NULL;
  assert_int_equal(crate_plot_create(&p, 400, 300), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_add(p, NULL, x, y, 5, &st), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_X, 0, 2), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_Y, 0, 1), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);
  size_t W, H, x0, y0, x1, y1, in = 0, out = 0;
  const uint8_t *rgb = crate_plot_pixels(p, &W, &H);
  assert_int_equal(crate_plot_area(p, &x0, &y0, &x1, &y1), CRATE_STATUS_OK);
  for (size_t j = 0; j < H; j++)
    for (size_t i = 0; i < W; i++)
      if (pixel(rgb, W, i, j) == blue)
        (*(i >= x0 && i < x1 && j >= y0 && j < y1 ? &in : &out))++;
  crate_report("clip", "fixed ranges inside the data: %zu series px inside, %zu outside "
               "(bound 0)", in, out);
  assert_true(in > 100);
  assert_int_equal(out, 0);
  crate_plot_destroy(p);

  /* a NaN point breaks the line: (0,1) (1,NaN) (2,1) leaves the middle of
   * the would-be segment undrawn; with a finite middle point it is drawn */
  double gy[3] = {1, NAN, 1};
  const double gx[3] = {0, 1, 2};
  uint32_t mid[2];
  for (int v = 0; v < 2; v++) {
    if (v == 1)
      gy[1] = 1;
    crate_plot_style line = {CRATE_PLOT_SOLID, CRATE_PLOT_MARKER_NONE, true, blue, 4, 0};
    assert_int_equal(crate_plot_create(&p, 400, 300), CRATE_STATUS_OK);
    assert_int_equal(crate_plot_add(p, NULL, gx, gy, 3, &line), CRATE_STATUS_OK);
    assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_X, 0, 2), CRATE_STATUS_OK);
    assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_Y, 0, 2), CRATE_STATUS_OK);
    assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);
    rgb = crate_plot_pixels(p, &W, &H);
    assert_int_equal(crate_plot_area(p, &x0, &y0, &x1, &y1), CRATE_STATUS_OK);
    mid[v] = pixel(rgb, W, (x0 + x1) / 2 + 7, (y0 + y1) / 2);
    crate_plot_destroy(p);
  }
  crate_report("clip", "segment middle with a NaN point: 0x%06X (want background or grid, not "
               "the series colour), without: 0x%06X (want 0x%06X)", (unsigned)mid[0],
               (unsigned)mid[1], (unsigned)blue);
  assert_true(mid[0] != blue);
  assert_true(mid[1] == blue);
}

static void test_plot_bad_input(void **state) {
  (void)state;
  crate_plot *p = NULL;
  assert_int_equal(crate_plot_create(&p, 10, 10), CRATE_STATUS_EINVAL);
  assert_null(p);
  assert_int_equal(crate_plot_create(NULL, 0, 0), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_create(&p, 0, 0), CRATE_STATUS_OK);
  size_t W, H;
  crate_plot_pixels(p, &W, &H);
  assert_int_equal(W, 960);
  assert_int_equal(H, 640);

  int st = crate_plot_render(p);
  crate_report("bad", "no series -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EINVAL);

  const double nanx[3] = {NAN, INFINITY, 1}, nany[3] = {1, 2, NAN};
  assert_int_equal(crate_plot_add(p, "bad", nanx, nany, 3, NULL), CRATE_STATUS_OK);
  st = crate_plot_render(p);
  crate_report("bad", "only non-finite points -> %s: %s", crate_strerror(st),
               crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EINVAL);

  /* non-positive values on a log axis are skipped; all of them -> EINVAL */
  const double x[4] = {1, 2, 3, 4}, yneg[4] = {-1, 0, -3, -4}, ymix[4] = {-1, 0.5, 0, 2};
  crate_plot_destroy(p);
  assert_int_equal(crate_plot_create(&p, 0, 0), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_scale(p, CRATE_PLOT_LOG10, CRATE_PLOT_LOG10), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_add(p, "neg", x, yneg, 4, NULL), CRATE_STATUS_OK);
  st = crate_plot_render(p);
  crate_report("bad", "log axis, all y <= 0 -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_add(p, "mixed", x, ymix, 4, NULL), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_Y, -1, 1), CRATE_STATUS_OK);
  st = crate_plot_render(p);
  crate_report("bad", "fixed log range [-1, 1] -> %s: %s", crate_strerror(st),
               crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_Y, NAN, NAN), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);

  /* empty ranges, bad arguments */
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_X, 1, 1), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_X, 2, 1), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_set_range(p, CRATE_PLOT_X, 0, INFINITY), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_set_range(p, (crate_plot_axis)5, 0, 1), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_set_scale(p, (crate_plot_scale)7, CRATE_PLOT_LINEAR),
                   CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_add(p, "null", NULL, x, 4, NULL), CRATE_STATUS_EINVAL);
  crate_plot_style badst = {(crate_plot_line)9, CRATE_PLOT_MARKER_NONE, false, 0, 0, 0};
  assert_int_equal(crate_plot_add(p, "style", x, x, 4, &badst), CRATE_STATUS_EINVAL);
  badst.line = CRATE_PLOT_SOLID;
  badst.line_width = NAN;
  assert_int_equal(crate_plot_add(p, "width", x, x, 4, &badst), CRATE_STATUS_EINVAL);
  badst.line_width = 0;
  badst.use_color = true;
  badst.color = 0x1000000;
  assert_int_equal(crate_plot_add(p, "colour", x, x, 4, &badst), CRATE_STATUS_EINVAL);
  size_t added = 2;
  while (crate_plot_add(p, "more", x, x, 4, NULL) == CRATE_STATUS_OK)
    added++;
  crate_report("bad", "series accepted before the limit: %zu (want 32)", added);
  assert_int_equal(added, 32);
  st = crate_plot_write_png(p, "/nonexistent-dir/chart.png");
  crate_report("bad", "unwritable path -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_EIO);
  crate_plot_destroy(p);

  /* constant data and a single point render */
  assert_int_equal(crate_plot_create(&p, 320, 240), CRATE_STATUS_OK);
  const double one = 3.0;
  assert_int_equal(crate_plot_add(p, "one point", &one, &one, 1, NULL), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_set_scale(p, CRATE_PLOT_LOG10, CRATE_PLOT_LOG10), CRATE_STATUS_OK);
  assert_int_equal(crate_plot_render(p), CRATE_STATUS_OK);
  crate_plot_destroy(p);
  crate_plot_destroy(NULL);
  assert_int_equal(crate_plot_set_title(NULL, "x"), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_plot_render(NULL), CRATE_STATUS_EINVAL);
}

static void test_font_and_palette(void **state) {
  (void)state;
  /* every printable ASCII glyph has ink (but space) and no two are equal */
  uint8_t g[95][CRATE__FONT_H];
  size_t empty = 0, dup = 0;
  for (int c = 32; c < 127; c++) {
    crate__font_glyph((uint32_t)c, g[c - 32]);
    size_t ink = 0;
    for (int r = 0; r < CRATE__FONT_H; r++)
      ink += g[c - 32][r] != 0;
    empty += ink == 0 && c != ' ';
    for (int d = 32; d < c; d++)
      dup += memcmp(g[c - 32], g[d - 32], CRATE__FONT_H) == 0;
  }
  /* unknown code points fall back to '?', UTF-8 decodes as one glyph */
  uint8_t q[CRATE__FONT_H], u[CRATE__FONT_H];
  crate__font_glyph(0x4E2D, u);
  crate__font_glyph('?', q);
  const char *s = "\xcf\x83=1";
  uint32_t cp1 = crate__font_next(&s), cp2 = crate__font_next(&s);
  crate_report("font", "95 ASCII glyphs: %zu empty, %zu duplicate pairs (bound 0); "
               "U+03C3 decodes to 0x%X then '%c'", empty, dup, (unsigned)cp1, (int)cp2);
  assert_int_equal(empty, 0);
  assert_int_equal(dup, 0);
  assert_memory_equal(u, q, CRATE__FONT_H);
  assert_int_equal(cp1, 0x03C3);
  assert_int_equal(cp2, '=');
  assert_int_equal(crate__font_width("", 2), 0);
  assert_int_equal(crate__font_width("ab", 2), (2 * CRATE__FONT_ADVANCE - 1) * 2);
  const char *broken = "\xcf";
  assert_int_equal(crate__font_next(&broken), '?');
  assert_int_equal(crate__font_next(&broken), 0);

  /* palette: 10 distinct colours, pairwise RGB distance at least 60 */
  double dmin = 1e9;
  for (size_t i = 0; i < 10; i++)
    for (size_t j = 0; j < i; j++) {
      uint32_t a = crate_plot_palette(i), b = crate_plot_palette(j);
      double d2 = 0;
      for (int k = 0; k < 3; k++) {
        double da = (double)((a >> (8 * k)) & 255) - (double)((b >> (8 * k)) & 255);
        d2 += da * da;
      }
      dmin = fmin(dmin, sqrt(d2));
    }
  crate_report("palette", "min pairwise RGB distance %.1f (bound >= 60)", dmin);
  assert_true(dmin >= 60);
  assert_int_equal(crate_plot_palette(10), crate_plot_palette(0));
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png_roundtrip_8bit),   cmocka_unit_test(test_png_16bit),
      cmocka_unit_test(test_png_palette_and_low_depth), cmocka_unit_test(test_png_errors),
      cmocka_unit_test(test_ticks_linear),         cmocka_unit_test(test_ticks_log),
      cmocka_unit_test(test_plot_render),          cmocka_unit_test(test_plot_clip_and_gaps),
      cmocka_unit_test(test_plot_bad_input),       cmocka_unit_test(test_font_and_palette),
  };
  return CRATE_RUN("plot", tests, argc, argv);
}
