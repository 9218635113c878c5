/* test_metrics.c: MSE, PSNR and SSIM (STYLE.md §10) and their masked
 * variants (include/crate/metrics.h).
 *
 * The test vector is scikit-image's camera.png (tests/data, CC0) against its
 * posterisation floor(v / 32) 32 + 16, with the figures of STYLE.md §10.
 * The separable SSIM is also compared with a direct 2-D window sum written
 * here from the definition, and with closed forms (constant images).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crate/image.h"
#include "crate/metrics.h"
#include "test_util.h"

/* ---- helpers ----------------------------------------------------------------- */

/* tests/data/<name>: next to this source file, or relative to the usual
 * working directories (repository or build root). */
static int data_path(char *buf, size_t n, const char *name) {
  const char *src = __FILE__;
  const char *slash = strrchr(src, '/');
  char here[256] = ".";
  if (slash && (size_t)(slash - src) < sizeof here) {
    memcpy(here, src, (size_t)(slash - src));
    here[slash - src] = '\0';
  }
  const char *env = getenv("CRATE_TEST_DATA_DIR");
  char cand[5][300];
  snprintf(cand[0], sizeof cand[0], "%.250s", env ? env : "");
  snprintf(cand[1], sizeof cand[1], "%.250s/data", here);
  snprintf(cand[2], sizeof cand[2], "tests/data");
  snprintf(cand[3], sizeof cand[3], "../tests/data");
  snprintf(cand[4], sizeof cand[4], "../../tests/data");
  for (int i = 0; i < 5; i++) {
    if (!cand[i][0])
      continue;
    snprintf(buf, n, "%.300s/%.64s", cand[i], name);
    if (access(buf, R_OK) == 0)
      return 0;
  }
  return -1;
}

static void fill_uniform(float *x, size_t n, uint64_t seed, double lo, double hi) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(lo + (hi - lo) * crate_rng_uniform(&r));
}

static double rel(double a, double b) {
  return fabs(a - b) / fabs(b);
}

/* Direct 2-D SSIM map of one channel from the definition (no separability):
 * w(i, j) = exp(-(i^2 + j^2) / (2 sigma^2)) / sum, population moments. */
static void ssim_map_direct(double *map, const float *a, const float *b, size_t H, size_t W,
                            double L) {
  double w[11][11], s = 0;
  for (int i = 0; i < 11; i++)
    for (int j = 0; j < 11; j++) {
      w[i][j] = exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / (2 * 1.5 * 1.5));
      s += w[i][j];
    }
  const double C1 = (0.01 * L) * (0.01 * L), C2 = (0.03 * L) * (0.03 * L);
  for (size_t u = 0; u + 10 < H; u++)
    for (size_t v = 0; v + 10 < W; v++) {
      double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
      for (int i = 0; i < 11; i++)
        for (int j = 0; j < 11; j++) {
          const double x = a[(u + (size_t)i) * W + v + (size_t)j];
          const double y = b[(u + (size_t)i) * W + v + (size_t)j];
          mx += w[i][j] / s * x;
          my += w[i][j] / s * y;
        }
      for (int i = 0; i < 11; i++)
        for (int j = 0; j < 11; j++) {
          const double x = a[(u + (size_t)i) * W + v + (size_t)j] - mx;
          const double y = b[(u + (size_t)i) * W + v + (size_t)j] - my;
          sxx += w[i][j] / s * x * x;
          syy += w[i][j] / s * y * y;
          sxy += w[i][j] / s * x * y;
        }
      map[u * (W - 10) + v] =
          ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2));
    }
}

/* ---- the STYLE.md §10 test vector ------------------------------------------------- */

static void test_camera_vector(void **state) {
  (void)state;
  char path[400];
  crate_check(data_path(path, sizeof path, "camera.png") == 0,
              "tests/data/camera.png not found (set CRATE_TEST_DATA_DIR)");
  crate_image *img = NULL;
  int depth = 0;
  assert_int_equal(crate_png_read(path, &img, &depth), CRATE_STATUS_OK);
  assert_int_equal(img->width, 512);
  assert_int_equal(img->height, 512);
  assert_int_equal(img->channels, 1);
  assert_int_equal(depth, 8);
  const size_t n = 512 * 512;
  float *v = malloc(n * sizeof *v), *q = malloc(n * sizeof *q);
  float *v1 = malloc(n * sizeof *v1), *q1 = malloc(n * sizeof *q1);
  assert_non_null(v);
  assert_non_null(q);
  assert_non_null(v1);
  assert_non_null(q1);
  double mean = 0;
  for (size_t i = 0; i < n; i++) {
    const double byte = round(img->data[i] * 255.0);
    v[i] = (float)byte;
    q[i] = (float)(floor(byte / 32.0) * 32.0 + 16.0);
    v1[i] = v[i] / 255.0f;
    q1[i] = q[i] / 255.0f;
    mean += byte;
  }
  mean /= (double)n;
  crate_image_destroy(img);

  double mse, psnr, ssim;
  assert_int_equal(crate_mse(&mse, v, q, 1, 512, 512), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&psnr, mse, 255.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim, v, q, 1, 512, 512, 255.0), CRATE_STATUS_OK);
  const double r_mean = rel(mean, 129.0607), r_mse = rel(mse, 87.7036), r_psnr = rel(psnr, 28.7006),
               r_ssim = rel(ssim, 0.834557);
  crate_report("M1", "camera mean %.4f (doc 129.0607, rel %.1e)", mean, r_mean);
  crate_report("M1", "camera vs posterised: MSE %.4f (doc 87.7036, rel %.1e)", mse, r_mse);
  crate_report("M1", "PSNR %.4f dB (doc 28.7006, rel %.1e)", psnr, r_psnr);
  crate_report("M1", "SSIM %.6f (doc 0.834557, rel %.1e; bound 1e-5 each)", ssim, r_ssim);
  crate_check(r_mean < 1e-5, "mean %.6f", mean);
  crate_check(r_mse < 1e-5, "MSE %.6f", mse);
  crate_check(r_psnr < 1e-5, "PSNR %.6f", psnr);
  crate_check(r_ssim < 1e-5, "SSIM %.7f", ssim);

  /* The same images on [0, 1] with L = 1: PSNR and SSIM are scale-free,
   * the MSE scales by 1/255^2 (float rounding of v/255 only). */
  double mse1, psnr1, ssim1;
  assert_int_equal(crate_mse(&mse1, v1, q1, 1, 512, 512), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&psnr1, mse1, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim1, v1, q1, 1, 512, 512, 1.0), CRATE_STATUS_OK);
  const double d_mse = rel(mse1 * 255.0 * 255.0, mse), d_psnr = rel(psnr1, psnr),
               d_ssim = rel(ssim1, ssim);
  crate_report("M1",
               "[0,1] scale, L = 1: MSE x 255^2 rel %.1e, PSNR rel %.1e, SSIM rel %.1e "
               "(bound 1e-6)",
               d_mse, d_psnr, d_ssim);
  crate_check(d_mse < 1e-6 && d_psnr < 1e-6 && d_ssim < 1e-6, "scale dependence");
  free(v);
  free(q);
  free(v1);
  free(q1);
}

/* ---- SSIM against the direct definition ------------------------------------------------ */

static void test_ssim_vs_direct(void **state) {
  (void)state;
  const size_t C = 2, H = 23, W = 31, Ho = H - 10, Wo = W - 10;
  float *a = malloc(C * H * W * sizeof *a), *b = malloc(C * H * W * sizeof *b);
  double *m_fast = malloc(Ho * Wo * sizeof *m_fast), *m_ref = malloc(Ho * Wo * sizeof *m_ref);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(m_fast);
  assert_non_null(m_ref);
  fill_uniform(a, C * H * W, 11, 0.0, 1.0);
  /* b: a noisy, brightened copy, so the three SSIM factors are all active */
  fill_uniform(b, C * H * W, 12, -0.2, 0.2);
  for (size_t i = 0; i < C * H * W; i++)
    b[i] = 0.8f * a[i] + 0.15f + b[i];
  double worst_map = 0, mean_ref = 0;
  for (size_t c = 0; c < C; c++) {
    assert_int_equal(crate_ssim_map(m_fast, a + c * H * W, b + c * H * W, H, W, 1.0),
                     CRATE_STATUS_OK);
    ssim_map_direct(m_ref, a + c * H * W, b + c * H * W, H, W, 1.0);
    const double e = crate_rel_linf(m_fast, m_ref, Ho * Wo);
    worst_map = e > worst_map ? e : worst_map;
    double s = 0;
    for (size_t i = 0; i < Ho * Wo; i++)
      s += m_ref[i];
    mean_ref += s / (double)(Ho * Wo) / (double)C;
  }
  double ssim, ssim_ba;
  assert_int_equal(crate_ssim(&ssim, a, b, C, H, W, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim_ba, b, a, C, H, W, 1.0), CRATE_STATUS_OK);
  crate_report("M2", "separable vs direct 2-D map: rel Linf %.2e (bound 1e-12)", worst_map);
  crate_report("M2", "MSSIM %.12f vs direct %.12f: rel %.2e (bound 1e-12); symmetric rel %.1e",
               ssim, mean_ref, rel(ssim, mean_ref), rel(ssim_ba, ssim));
  crate_check(worst_map < 1e-12, "map differs");
  crate_check(rel(ssim, mean_ref) < 1e-12, "MSSIM differs");
  crate_check(rel(ssim_ba, ssim) < 1e-14, "SSIM not symmetric");
  crate_check(ssim > 0.2 && ssim < 0.95, "test images too similar or dissimilar: %g", ssim);
  free(a);
  free(b);
  free(m_fast);
  free(m_ref);
}

/* ---- identical images and closed forms ------------------------------------------------- */

static void test_identical_and_constant(void **state) {
  (void)state;
  const size_t H = 28, W = 28, n = H * W, g = 7;
  float a[28 * 28], b[28 * 28];
  fill_uniform(a, n, 21, 0.0, 1.0);
  memcpy(b, a, sizeof a);
  uint8_t mask[49];
  for (size_t t = 0; t < g * g; t++)
    mask[t] = (uint8_t)(t % 3 == 0);
  double mse, psnr, ssim, mmse, mpsnr, mssim;
  size_t cnt, win;
  assert_int_equal(crate_mse(&mse, a, b, 1, H, W), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&psnr, mse, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim, a, b, 1, H, W, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_mse_masked(&mmse, &cnt, a, b, mask, 1, H, W, 4), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&mpsnr, mmse, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim_masked(&mssim, &win, a, b, mask, 1, H, W, 4, 1.0), CRATE_STATUS_OK);
  crate_report("M3",
               "identical: MSE %g PSNR %g SSIM 1 - %.1e; masked MSE %g PSNR %g SSIM 1 - "
               "%.1e (bound 1e-14)",
               mse, psnr, 1 - ssim, mmse, mpsnr, 1 - mssim);
  crate_check(mse == 0 && mmse == 0, "MSE of identical images");
  crate_check(isinf(psnr) && psnr > 0 && isinf(mpsnr) && mpsnr > 0, "PSNR must be +inf");
  crate_check(fabs(ssim - 1) < 1e-14 && fabs(mssim - 1) < 1e-14, "SSIM must be 1");

  /* Constant images x = 0.3, y = 0.6: sigma = 0, so SSIM is the luminance
   * term (2 xy + C1)/(x^2 + y^2 + C1), and PSNR = 10 log10(1 / 0.09). */
  for (size_t i = 0; i < n; i++) {
    a[i] = 0.3f;
    b[i] = 0.6f;
  }
  const double x = 0.3f, y = 0.6f, C1 = 1e-4;
  const double want_ssim = (2 * x * y + C1) / (x * x + y * y + C1);
  const double want_psnr = 10 * log10(1.0 / ((y - x) * (y - x)));
  assert_int_equal(crate_mse(&mse, a, b, 1, H, W), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&psnr, mse, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim, a, b, 1, H, W, 1.0), CRATE_STATUS_OK);
  crate_report("M3",
               "constant 0.3 vs 0.6: SSIM %.12f (closed form %.12f, rel %.1e), PSNR %.9f "
               "(closed form %.9f, rel %.1e; bounds 1e-12)",
               ssim, want_ssim, rel(ssim, want_ssim), psnr, want_psnr, rel(psnr, want_psnr));
  crate_check(rel(ssim, want_ssim) < 1e-12, "constant-image SSIM");
  crate_check(rel(psnr, want_psnr) < 1e-12, "constant-image PSNR");
  /* Scale invariance: x 255 with L = 255 gives the same SSIM and PSNR. */
  fill_uniform(a, n, 22, 0.0, 1.0);
  fill_uniform(b, n, 23, 0.0, 1.0);
  float a8[28 * 28], b8[28 * 28];
  for (size_t i = 0; i < n; i++) {
    a8[i] = a[i] * 255.0f;
    b8[i] = b[i] * 255.0f;
  }
  double s1, s255, m1, m255, p1, p255;
  assert_int_equal(crate_ssim(&s1, a, b, 1, H, W, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&s255, a8, b8, 1, H, W, 255.0), CRATE_STATUS_OK);
  assert_int_equal(crate_mse(&m1, a, b, 1, H, W), CRATE_STATUS_OK);
  assert_int_equal(crate_mse(&m255, a8, b8, 1, H, W), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&p1, m1, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_psnr(&p255, m255, 255.0), CRATE_STATUS_OK);
  crate_report("M3", "scale x255: SSIM rel %.1e, PSNR rel %.1e (bound 1e-6, float rounding)",
               rel(s255, s1), rel(p255, p1));
  crate_check(rel(s255, s1) < 1e-6 && rel(p255, p1) < 1e-6, "scale dependence");
}

/* ---- masked variants ------------------------------------------------------------------ */

static void test_masked_variants(void **state) {
  (void)state;
  const size_t C = 3, H = 28, W = 28, Q = 4, g = 7, n = C * H * W;
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  double *map = malloc(18 * 18 * sizeof *map);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(map);
  fill_uniform(a, n, 31, 0.0, 1.0);
  fill_uniform(b, n, 32, 0.0, 1.0);
  uint8_t all[49], none[49], one[49], ring[49], some[49];
  for (size_t t = 0; t < g * g; t++) {
    const size_t r = t / g, c = t % g;
    all[t] = 1;
    none[t] = 0;
    one[t] = (uint8_t)(r == 1 && c == 1);
    ring[t] = (uint8_t)(r == 0 || c == 0 || r == g - 1 || c == g - 1);
    some[t] = (uint8_t)((t * 7 + 3) % 5 < 2);
  }
  double mse, ssim, v;
  size_t cnt, win;
  /* every patch masked: the masked figures are the whole-image ones */
  assert_int_equal(crate_mse(&mse, a, b, C, H, W), CRATE_STATUS_OK);
  assert_int_equal(crate_ssim(&ssim, a, b, C, H, W, 1.0), CRATE_STATUS_OK);
  assert_int_equal(crate_mse_masked(&v, &cnt, a, b, all, C, H, W, Q), CRATE_STATUS_OK);
  crate_report("M4", "all masked: MSE rel %.1e, samples %zu (want %zu)", rel(v, mse), cnt, n);
  crate_check(rel(v, mse) < 1e-14 && cnt == n, "all-masked MSE");
  assert_int_equal(crate_ssim_masked(&v, &win, a, b, all, C, H, W, Q, 1.0), CRATE_STATUS_OK);
  crate_report("M4", "all masked: SSIM rel %.1e, windows %zu (want 324)", rel(v, ssim), win);
  crate_check(rel(v, ssim) < 1e-14 && win == 18 * 18, "all-masked SSIM");
  /* nothing masked, or only the outer ring (no valid window centre there) */
  assert_int_equal(crate_mse_masked(&v, &cnt, a, b, none, C, H, W, Q), CRATE_STATUS_OK);
  crate_check(isnan(v) && cnt == 0, "no masked patch: MSE %g count %zu", v, cnt);
  assert_int_equal(crate_ssim_masked(&v, &win, a, b, none, C, H, W, Q, 1.0), CRATE_STATUS_OK);
  crate_check(isnan(v) && win == 0, "no masked patch: SSIM %g windows %zu", v, win);
  assert_int_equal(crate_ssim_masked(&v, &win, a, b, ring, C, H, W, Q, 1.0), CRATE_STATUS_OK);
  crate_report("M4", "outer ring masked: SSIM %g over %zu windows (want NaN, 0)", v, win);
  crate_check(isnan(v) && win == 0, "ring: SSIM %g windows %zu", v, win);
  /* patch (1,1) = rows/cols 4..7: centres 5..7 -> windows u, v in 0..2 */
  assert_int_equal(crate_ssim_masked(&v, &win, a, b, one, C, H, W, Q, 1.0), CRATE_STATUS_OK);
  double want = 0;
  for (size_t c = 0; c < C; c++) {
    assert_int_equal(crate_ssim_map(map, a + c * H * W, b + c * H * W, H, W, 1.0), CRATE_STATUS_OK);
    for (size_t u = 0; u < 3; u++)
      for (size_t w = 0; w < 3; w++)
        want += map[u * 18 + w] / 9.0 / (double)C;
  }
  crate_report("M4",
               "patch (1,1) masked: SSIM %.12f vs 3x3 windows of the map %.12f, windows "
               "%zu (want 9)",
               v, want, win);
  crate_check(win == 9 && rel(v, want) < 1e-13, "one-patch SSIM");
  /* an arbitrary mask: centre-in-masked-patch selection from coordinates */
  assert_int_equal(crate_ssim_masked(&v, &win, a, b, some, C, H, W, Q, 1.0), CRATE_STATUS_OK);
  want = 0;
  size_t want_win = 0;
  for (size_t c = 0; c < C; c++) {
    assert_int_equal(crate_ssim_map(map, a + c * H * W, b + c * H * W, H, W, 1.0), CRATE_STATUS_OK);
    double s = 0;
    size_t k = 0;
    for (size_t yc = 5; yc <= 22; yc++)
      for (size_t xc = 5; xc <= 22; xc++)
        if (some[(yc / 4) * 7 + xc / 4]) {
          s += map[(yc - 5) * 18 + (xc - 5)];
          k++;
        }
    want += s / (double)k / (double)C;
    want_win = k;
  }
  size_t n_some = 0;
  for (size_t t = 0; t < g * g; t++)
    n_some += some[t];
  crate_report("M4", "mask of %zu patches: SSIM rel %.1e over %zu windows (want %zu)", n_some,
               rel(v, want), win, want_win);
  crate_check(win == want_win && rel(v, want) < 1e-13, "masked SSIM selection");

  /* images that differ by delta in patch (1,1) only */
  memcpy(b, a, n * sizeof *a);
  const float delta = 0.125f; /* exact in float */
  for (size_t c = 0; c < C; c++)
    for (size_t y = 4; y < 8; y++)
      for (size_t x = 4; x < 8; x++)
        b[(c * H + y) * W + x] = a[(c * H + y) * W + x] + delta;
  double m_one, m_some, m_all;
  size_t c_one;
  assert_int_equal(crate_mse_masked(&m_one, &c_one, a, b, one, C, H, W, Q), CRATE_STATUS_OK);
  assert_int_equal(crate_mse_masked(&m_some, NULL, a, b, some, C, H, W, Q), CRATE_STATUS_OK);
  assert_int_equal(crate_mse(&m_all, a, b, C, H, W), CRATE_STATUS_OK);
  const double d2 = (double)delta * delta;
  crate_report("M4",
               "one perturbed patch: masked MSE %.9g (want %.9g, rel %.1e), samples %zu "
               "(want 48); whole MSE x 49 rel %.1e; other patches %.3g (want 0)",
               m_one, d2, rel(m_one, d2), c_one, rel(m_all * 49, d2), m_some);
  crate_check(rel(m_one, d2) < 1e-6 && c_one == 48, "masked MSE of the perturbed patch");
  crate_check(rel(m_all * 49, d2) < 1e-6, "whole MSE");
  crate_check(!some[8] && m_some == 0, "unperturbed masked patches must give 0");
  free(a);
  free(b);
  free(map);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_errors(void **state) {
  (void)state;
  float a[28 * 28] = {0}, b[28 * 28] = {0};
  uint8_t mask[49] = {1};
  double v;
  size_t k;
  int n_checked = 0;
#define EXPECT_EINVAL(call, what)                                                                  \
  do {                                                                                             \
    int st_ = (call);                                                                              \
    crate_check(st_ == CRATE_STATUS_EINVAL, "%s: status %d (want EINVAL)", what, st_);             \
    n_checked++;                                                                                   \
  } while (0)
  EXPECT_EINVAL(crate_mse(NULL, a, b, 1, 28, 28), "NULL output");
  EXPECT_EINVAL(crate_mse(&v, NULL, b, 1, 28, 28), "NULL image");
  EXPECT_EINVAL(crate_mse(&v, a, b, 0, 28, 28), "zero channels");
  EXPECT_EINVAL(crate_psnr(&v, -1.0, 1.0), "negative MSE");
  EXPECT_EINVAL(crate_psnr(&v, NAN, 1.0), "NaN MSE");
  EXPECT_EINVAL(crate_psnr(&v, 0.1, 0.0), "data_range 0");
  EXPECT_EINVAL(crate_ssim(&v, a, b, 1, 10, 28, 1.0), "H below window");
  EXPECT_EINVAL(crate_ssim(&v, a, b, 1, 28, 10, 1.0), "W below window");
  EXPECT_EINVAL(crate_ssim(&v, a, b, 1, 28, 28, 0.0), "data_range 0");
  EXPECT_EINVAL(crate_ssim(&v, a, b, 1, 28, 28, INFINITY), "data_range inf");
  EXPECT_EINVAL(crate_ssim_map(NULL, a, b, 28, 28, 1.0), "NULL map");
  EXPECT_EINVAL(crate_mse_masked(&v, &k, a, b, NULL, 1, 28, 28, 4), "NULL mask");
  EXPECT_EINVAL(crate_mse_masked(&v, &k, a, b, mask, 1, 28, 28, 5), "Q does not divide");
  EXPECT_EINVAL(crate_mse_masked(&v, &k, a, b, mask, 1, 28, 28, 0), "Q = 0");
  EXPECT_EINVAL(crate_ssim_masked(&v, &k, a, b, mask, 1, 28, 28, 3, 1.0), "Q does not divide");
  EXPECT_EINVAL(crate_ssim_masked(&v, &k, a, b, NULL, 1, 28, 28, 4, 1.0), "NULL mask");
  b[100] = NAN;
  EXPECT_EINVAL(crate_mse(&v, a, b, 1, 28, 28), "NaN pixel");
  EXPECT_EINVAL(crate_ssim(&v, a, b, 1, 28, 28, 1.0), "NaN pixel");
  b[100] = INFINITY;
  EXPECT_EINVAL(crate_mse_masked(&v, &k, a, b, mask, 1, 28, 28, 4), "inf pixel");
#undef EXPECT_EINVAL
  const char *msg = crate_error_message();
  crate_report("M5", "%d bad calls rejected with EINVAL; last message '%s'", n_checked, msg);
  crate_check(strncmp(msg, "metrics: non-finite pixel", 25) == 0, "message '%s'", msg);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_camera_vector),
      cmocka_unit_test(test_ssim_vs_direct),
      cmocka_unit_test(test_identical_and_constant),
      cmocka_unit_test(test_masked_variants),
      cmocka_unit_test(test_errors),
  };
  return CRATE_RUN("metrics", tests, argc, argv);
}
