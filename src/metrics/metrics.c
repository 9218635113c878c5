/* metrics.c: MSE, PSNR and SSIM over whole images and over the masked
 * patches of a CRATE-MAE mask (STYLE.md §10; MODEL.md §3.10-§3.11).
 *
 * SSIM follows Wang, Bovik, Sheikh and Simoncelli (2004, IEEE TIP 13:600,
 * eq. 13 with the 2003 reference code's choices): an 11 x 11 Gaussian window
 * (sigma 1.5, normalised), population moments, the valid region only.  The
 * window is separable, so each of the five local moments (x, y, x^2, y^2,
 * xy) is one horizontal 11-tap pass followed by one vertical pass, all in
 * double.  Definitions, including the masked variants, are in
 * include/crate/metrics.h.
 *
 * Non-goals: multi-scale SSIM, the automatic downsampling of the newer
 * MATLAB ssim.m, LPIPS.
 */
#include <math.h>
#include <stdlib.h>

#include "crate/metrics.h"
#include "internal.h"

#define HALF (CRATE_SSIM_WIN / 2) /* 5 */

/* ---- argument checks ----------------------------------------------------- */

/* Finite pixels of two (n) arrays; names the first bad sample. */
static int check_finite(const float *a, const float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(a[i]) || !isfinite(b[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: non-finite pixel at sample %zu (%g, %g)", i,
                         (double)a[i], (double)b[i]);
  return CRATE_STATUS_OK;
}

static int check_images(const float *a, const float *b, size_t C, size_t H, size_t W) {
  if (!a || !b)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: NULL image");
  if (C == 0 || H == 0 || W == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: empty image %zu x %zu x %zu", C, H, W);
  if (W > SIZE_MAX / H || H * W > SIZE_MAX / C / sizeof(double) / 8)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: image %zu x %zu x %zu is too large", C, H, W);
  return check_finite(a, b, C * H * W);
}

static int check_range(double data_range) {
  if (!isfinite(data_range) || data_range <= 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "ssim: data_range must be finite and > 0, got %g",
                       data_range);
  return CRATE_STATUS_OK;
}

static int check_window(size_t H, size_t W) {
  if (H < CRATE_SSIM_WIN || W < CRATE_SSIM_WIN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "ssim: image %zu x %zu is smaller than the %d x %d window", H, W,
                       CRATE_SSIM_WIN, CRATE_SSIM_WIN);
  return CRATE_STATUS_OK;
}

static int check_mask(const uint8_t *mask, size_t H, size_t W, size_t Q) {
  if (!mask)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: NULL mask");
  if (Q == 0 || H % Q != 0 || W % Q != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "metrics: patch side %zu does not divide the image %zu x %zu", Q, H, W);
  return CRATE_STATUS_OK;
}

/* ---- MSE and PSNR ---------------------------------------------------------- */

int crate_mse(double *mse, const float *a, const float *b, size_t C, size_t H, size_t W) {
  if (!mse)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: NULL output");
  CRATE_TRY(check_images(a, b, C, H, W));
  const size_t n = C * H * W;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = (double)a[i] - (double)b[i];
    s += e * e;
  }
  *mse = s / (double)n;
  return CRATE_STATUS_OK;
}

int crate_psnr(double *psnr, double mse, double data_range) {
  if (!psnr)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "psnr: NULL output");
  if (!isfinite(mse) || mse < 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "psnr: MSE must be finite and >= 0, got %g", mse);
  if (!isfinite(data_range) || data_range <= 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "psnr: data_range must be finite and > 0, got %g",
                       data_range);
  *psnr = mse == 0 ? INFINITY : 10.0 * log10(data_range * data_range / mse);
  return CRATE_STATUS_OK;
}

int crate_mse_masked(double *mse, size_t *samples, const float *a, const float *b,
                     const uint8_t *mask, size_t C, size_t H, size_t W, size_t Q) {
  if (!mse)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: NULL output");
  CRATE_TRY(check_images(a, b, C, H, W));
  CRATE_TRY(check_mask(mask, H, W, Q));
  const size_t gw = W / Q;
  double s = 0;
  size_t count = 0;
  for (size_t c = 0; c < C; c++)
    for (size_t y = 0; y < H; y++)
      for (size_t x = 0; x < W; x++) {
        if (!mask[(y / Q) * gw + x / Q])
          continue;
        const size_t i = (c * H + y) * W + x;
        const double e = (double)a[i] - (double)b[i];
        s += e * e;
        count++;
      }
  *mse = count ? s / (double)count : NAN;
  if (samples)
    *samples = count;
  return CRATE_STATUS_OK;
}

/* ---- SSIM ---------------------------------------------------------------------- */

/* 1-D taps exp(-k^2 / (2 sigma^2)), k = -5..5, normalised to sum 1; the 2-D
 * window is their outer product, so it sums to 1 as well. */
static void gauss_taps(double w[CRATE_SSIM_WIN]) {
  double s = 0;
  for (int k = 0; k < CRATE_SSIM_WIN; k++) {
    const double t = (double)(k - HALF);
    w[k] = exp(-t * t / (2.0 * CRATE_SSIM_SIGMA * CRATE_SSIM_SIGMA));
    s += w[k];
  }
  for (int k = 0; k < CRATE_SSIM_WIN; k++)
    w[k] /= s;
}

/* SSIM map of one channel, valid region.
 * map: (H - 10, W - 10); a, b: (H, W); scratch: 5 H (W - 10) doubles. */
static void ssim_map_channel(double *map, double *scratch, const float *a, const float *b, size_t H,
                             size_t W, double data_range) {
  double w[CRATE_SSIM_WIN];
  gauss_taps(w);
  const size_t Ho = H - 2 * HALF, Wo = W - 2 * HALF, plane = H * Wo;
  double *hx = scratch, *hy = hx + plane, *hxx = hy + plane, *hyy = hxx + plane, *hxy = hyy + plane;
  /* horizontal pass: h[y][v] = sum_k w[k] f(y, v + k), f in x, y, x^2, y^2, xy */
  for (size_t y = 0; y < H; y++)
    for (size_t v = 0; v < Wo; v++) {
      double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      const float *ra = a + y * W + v, *rb = b + y * W + v;
      for (int k = 0; k < CRATE_SSIM_WIN; k++) {
        const double xa = ra[k], xb = rb[k];
        sx += w[k] * xa;
        sy += w[k] * xb;
        sxx += w[k] * xa * xa;
        syy += w[k] * xb * xb;
        sxy += w[k] * xa * xb;
      }
      const size_t o = y * Wo + v;
      hx[o] = sx;
      hy[o] = sy;
      hxx[o] = sxx;
      hyy[o] = syy;
      hxy[o] = sxy;
    }
  /* vertical pass and the SSIM formula */
  const double C1 = (CRATE_SSIM_K1 * data_range) * (CRATE_SSIM_K1 * data_range);
  const double C2 = (CRATE_SSIM_K2 * data_range) * (CRATE_SSIM_K2 * data_range);
  for (size_t u = 0; u < Ho; u++)
    for (size_t v = 0; v < Wo; v++) {
      double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
      for (int k = 0; k < CRATE_SSIM_WIN; k++) {
        const size_t o = (u + (size_t)k) * Wo + v;
        mx += w[k] * hx[o];
        my += w[k] * hy[o];
        mxx += w[k] * hxx[o];
        myy += w[k] * hyy[o];
        mxy += w[k] * hxy[o];
      }
      const double vx = mxx - mx * mx, vy = myy - my * my, cxy = mxy - mx * my;
      map[u * Wo + v] =
          ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
    }
}

/* Shared driver: per-channel map, averaged over all windows (mask NULL) or
 * over the windows centred in a masked patch. */
static int ssim_common(double *ssim, size_t *windows, const float *a, const float *b,
                       const uint8_t *mask, size_t C, size_t H, size_t W, size_t Q,
                       double data_range) {
  if (!ssim)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "ssim: NULL output");
  CRATE_TRY(check_range(data_range));
  CRATE_TRY(check_images(a, b, C, H, W));
  CRATE_TRY(check_window(H, W));
  if (mask)
    CRATE_TRY(check_mask(mask, H, W, Q));
  const size_t Ho = H - 2 * HALF, Wo = W - 2 * HALF;
  double *buf = malloc((5 * H * Wo + Ho * Wo) * sizeof *buf);
  if (!buf)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "ssim: cannot allocate scratch for %zu x %zu", H, W);
  double *map = buf + 5 * H * Wo;
  double total = 0;
  size_t count = 0;
  for (size_t c = 0; c < C; c++) {
    ssim_map_channel(map, buf, a + c * H * W, b + c * H * W, H, W, data_range);
    double s = 0;
    count = 0;
    for (size_t u = 0; u < Ho; u++)
      for (size_t v = 0; v < Wo; v++) {
        if (mask && !mask[((u + HALF) / Q) * (W / Q) + (v + HALF) / Q])
          continue;
        s += map[u * Wo + v];
        count++;
      }
    total += count ? s / (double)count : 0;
  }
  free(buf);
  *ssim = count ? total / (double)C : NAN;
  if (windows)
    *windows = count;
  return CRATE_STATUS_OK;
}

int crate_ssim(double *ssim, const float *a, const float *b, size_t C, size_t H, size_t W,
               double data_range) {
  return ssim_common(ssim, NULL, a, b, NULL, C, H, W, 1, data_range);
}

int crate_ssim_masked(double *ssim, size_t *windows, const float *a, const float *b,
                      const uint8_t *mask, size_t C, size_t H, size_t W, size_t Q,
                      double data_range) {
  if (!mask)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "metrics: NULL mask");
  return ssim_common(ssim, windows, a, b, mask, C, H, W, Q, data_range);
}

int crate_ssim_map(double *map, const float *a, const float *b, size_t H, size_t W,
                   double data_range) {
  if (!map)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "ssim: NULL output");
  CRATE_TRY(check_range(data_range));
  CRATE_TRY(check_images(a, b, 1, H, W));
  CRATE_TRY(check_window(H, W));
  double *scratch = malloc(5 * H * (W - 2 * HALF) * sizeof *scratch);
  if (!scratch)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "ssim: cannot allocate scratch for %zu x %zu", H, W);
  ssim_map_channel(map, scratch, a, b, H, W, data_range);
  free(scratch);
  return CRATE_STATUS_OK;
}
