/* metrics.h: image-quality metrics, MSE, PSNR and SSIM, over whole images
 * and over the masked patches of a CRATE-MAE mask (STYLE.md §10, MODEL.md
 * §3.11).
 *
 * Images are planar float (C, H, W), the layout of the model's input
 * (MODEL.md §3.1), with values on a scale whose dynamic range is
 * data_range = L (1 for [0, 1] floats, 255 for 8-bit values).  Callers undo
 * the input normalisation and clamp to [0, 1] first (STYLE.md §10).  Every
 * reduction accumulates in double.  Pixels must be finite (EINVAL names the
 * first bad one).
 *
 * Definitions:
 *   MSE  = mean over all C H W samples of (a - b)^2.
 *   PSNR = 10 log10(L^2 / MSE) dB; MSE = 0 (identical images) gives
 *          +INFINITY (the exact value).  Printing code writes "inf"; JSON,
 *          which has no infinity, writes null.
 *   SSIM (Wang, Bovik, Sheikh and Simoncelli 2004, the 2003 reference
 *          variant, no downsampling): local statistics under an 11 x 11
 *          Gaussian window w with sigma 1.5, normalised to sum 1 (separable:
 *          the 1-D taps exp(-k^2 / 4.5), k = -5..5, normalised), POPULATION
 *          (weighted) moments mu = w*x, sigma_x^2 = w*x^2 - mu_x^2,
 *          sigma_xy = w*(xy) - mu_x mu_y, and
 *            S = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
 *                / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
 *          C1 = (0.01 L)^2, C2 = (0.03 L)^2.  The map is evaluated on the
 *          VALID region only (windows entirely inside the image, no padding):
 *          (H - 10) x (W - 10) windows, window (u, v) centred on pixel
 *          (u + 5, v + 5).  MSSIM is the mean of the map; for C > 1 it is the
 *          mean over channels of the per-channel MSSIM.  Matches
 *          scikit-image structural_similarity(gaussian_weights=True,
 *          sigma=1.5, use_sample_covariance=False, data_range=L).
 *
 * Masked variants.  mask is (H/Q, W/Q) uint8 in patch order t = r (W/Q) + c
 * (MODEL.md §3.1/§3.3), 1 = masked (hidden, reconstructed) patch, 0 =
 * visible; H and W must be multiples of the patch side Q.
 *   masked MSE  = mean of (a - b)^2 over every sample (all channels) of the
 *                 masked patches.  All patches have Q^2 C samples, so this is
 *                 also the mean over masked patches of the per-patch MSE, the
 *                 quantity of MODEL.md §3.10 (pooling images: weight each
 *                 image by its sample count).
 *   masked PSNR = 10 log10(L^2 / masked MSE).
 *   masked SSIM = the mean of the SSIM map over the valid windows whose
 *                 CENTRE pixel lies in a masked patch (averaged over channels
 *                 as above).  The windows still see the neighbouring visible
 *                 pixels, so the figure depends on which image (raw
 *                 prediction or prediction pasted into the visible input) is
 *                 compared.  For a 28 x 28 image with Q = 4 the centres cover
 *                 rows and columns 5..22, so a mask that hides only the outer
 *                 ring of patches (rows/columns 0..3 and 24..27) has no such
 *                 window.
 * A masked variant with nothing to average (no masked patch, or no valid
 * window centred in one) is not an error: it returns OK with the value NaN
 * and the count 0, and the caller tests the count.
 */
#ifndef CRATE_METRICS_H
#define CRATE_METRICS_H

#include "crate/defs.h"

/** Side of the SSIM window (11) and its Gaussian sigma (1.5). */
#define CRATE_SSIM_WIN 11
#define CRATE_SSIM_SIGMA 1.5
/** SSIM constants K1, K2: C1 = (K1 L)^2, C2 = (K2 L)^2. */
#define CRATE_SSIM_K1 0.01
#define CRATE_SSIM_K2 0.03

/** Mean squared error of two images.
 *  @param mse receives the mean of (a - b)^2 over C H W samples
 *  @param a, b (C, H, W) planar, finite
 *  @return OK or EINVAL (NULL pointer, empty size, non-finite pixel). */
CRATE_API int crate_mse(double *mse, const float *a, const float *b, size_t C, size_t H, size_t W);

/** PSNR from an MSE: 10 log10(data_range^2 / mse); +INFINITY when mse = 0.
 *  @return OK or EINVAL (mse negative or not finite, data_range <= 0 or not
 *          finite). */
CRATE_API int crate_psnr(double *psnr, double mse, double data_range);

/** Mean SSIM (MSSIM) of two images, definition above.
 *  @param ssim receives the per-channel mean of the valid-region mean
 *  @param a, b (C, H, W) planar, finite; H, W >= 11
 *  @param data_range L > 0, finite
 *  @return OK, EINVAL (size below the window, bad data_range, NULL,
 *          non-finite pixel) or ENOMEM (scratch of 5 (H - 10) W doubles). */
CRATE_API int crate_ssim(double *ssim, const float *a, const float *b, size_t C, size_t H, size_t W,
                         double data_range);

/** The SSIM map of one channel over the valid region.
 *  @param map receives (H - 10, W - 10) values, map[u (W - 10) + v] for the
 *             window centred on pixel (u + 5, v + 5)
 *  @param a, b (H, W) one channel, finite; H, W >= 11
 *  @return as crate_ssim. */
CRATE_API int crate_ssim_map(double *map, const float *a, const float *b, size_t H, size_t W,
                             double data_range);

/** MSE over the masked patches.
 *  @param mse     receives the masked MSE, or NaN when no patch is masked
 *  @param samples receives the number of samples averaged, C Q^2 (masked
 *                 patches); may be NULL
 *  @param mask    (H/Q, W/Q), 1 = masked; Q >= 1 divides H and W
 *  @return OK or EINVAL (NULL, sizes, non-finite pixel). */
CRATE_API int crate_mse_masked(double *mse, size_t *samples, const float *a, const float *b,
                               const uint8_t *mask, size_t C, size_t H, size_t W, size_t Q);

/** SSIM over the masked region: mean of the map over valid windows centred
 *  in a masked patch, per-channel mean.
 *  @param ssim    receives the value, or NaN when no such window exists
 *  @param windows receives the number of windows averaged per channel (may
 *                 be NULL)
 *  @return OK, EINVAL (as crate_ssim plus the mask sizes) or ENOMEM. */
CRATE_API int crate_ssim_masked(double *ssim, size_t *windows, const float *a, const float *b,
                                const uint8_t *mask, size_t C, size_t H, size_t W, size_t Q,
                                double data_range);

#endif
