/* loss.c: the masked reconstruction loss of CRATE-MAE (MODEL.md §3.10, §8
 * "Loss and head"; official forward_loss).
 *
 *   l_r = (1/P) sum_j (pred_rj - y_rj)^2,   L = sum_r m_r l_r / sum_r m_r
 *
 * over all rows r = (b, t) of the batch: the mean over the masked patches of
 * the batch, not a mean of per-image means.  Sums are in double.  Also the
 * optional norm_pix_loss target transform (unbiased variance, + 1e-6).
 * Non-goals: per-image loss weights, L1 losses.
 */
#include "ops_internal.h"

static size_t count_masked(const uint8_t *mask, size_t rows) {
  size_t c = 0;
  for (size_t r = 0; r < rows; r++)
    c += mask[r] != 0;
  return c;
}

static int check_count(size_t count, size_t rows) {
  if (count == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "ops: masked MSE over %zu patches has no masked patch (mask ratio too "
                       "small?); the mean over masked patches is undefined",
                       rows);
  return CRATE_STATUS_OK;
}

int crate_masked_mse_forward(double *loss, const float *pred, const float *target,
                             const uint8_t *mask, size_t rows, size_t P) {
  /* loss: scalar; pred, target: (rows, P); mask: (rows) */
  CRATE_ASSERT(loss && pred && target && mask && P > 0);
  size_t count = count_masked(mask, rows);
  CRATE_TRY(check_count(count, rows));
  double total = 0.0;
  for (size_t r = 0; r < rows; r++) {
    if (!mask[r])
      continue;
    double s = 0.0;
    for (size_t j = 0; j < P; j++) {
      double e = (double)pred[r * P + j] - (double)target[r * P + j];
      s += e * e;
    }
    total += s / (double)P;
  }
  *loss = total / (double)count;
  return CRATE_STATUS_OK;
}

int crate_masked_mse_backward(float *gpred, const float *pred, const float *target,
                              const uint8_t *mask, double gloss, size_t rows, size_t P) {
  /* gpred, pred, target: (rows, P); mask: (rows).
   * Inverts L = sum_r m_r (1/P) sum_j (pred - y)^2 / sum m:
   *   G_pred += gloss 2 m_r (pred - y) / (P sum m). */
  CRATE_ASSERT(gpred && pred && target && mask && P > 0);
  size_t count = count_masked(mask, rows);
  CRATE_TRY(check_count(count, rows));
  double scale = gloss * 2.0 / ((double)P * (double)count);
  for (size_t r = 0; r < rows; r++) {
    if (!mask[r])
      continue;
    for (size_t j = 0; j < P; j++)
      gpred[r * P + j] += (float)(scale * ((double)pred[r * P + j] - (double)target[r * P + j]));
  }
  return CRATE_STATUS_OK;
}

int crate_masked_mse_forward_ref(double *loss, const double *pred, const double *target,
                                 const uint8_t *mask, size_t rows, size_t P) {
  CRATE_ASSERT(loss && pred && target && mask && P > 0);
  double num = 0.0, den = 0.0;
  for (size_t r = 0; r < rows; r++) {
    double l = 0.0;
    for (size_t j = 0; j < P; j++)
      l += (pred[r * P + j] - target[r * P + j]) * (pred[r * P + j] - target[r * P + j]);
    num += (mask[r] ? 1.0 : 0.0) * l / (double)P;
    den += mask[r] ? 1.0 : 0.0;
  }
  CRATE_TRY(check_count(den > 0 ? 1 : 0, rows));
  *loss = num / den;
  return CRATE_STATUS_OK;
}

int crate_masked_mse_backward_ref(double *gpred, const double *pred, const double *target,
                                  const uint8_t *mask, double gloss, size_t rows, size_t P) {
  CRATE_ASSERT(gpred && pred && target && mask && P > 0);
  double den = 0.0;
  for (size_t r = 0; r < rows; r++)
    den += mask[r] ? 1.0 : 0.0;
  CRATE_TRY(check_count(den > 0 ? 1 : 0, rows));
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < P; j++)
      gpred[r * P + j] += gloss * 2.0 * (mask[r] ? 1.0 : 0.0) *
                          (pred[r * P + j] - target[r * P + j]) / ((double)P * den);
  return CRATE_STATUS_OK;
}

int crate_norm_pix_target(float *y, const float *t, size_t rows, size_t P) {
  /* y, t: (rows, P); y may alias t */
  CRATE_ASSERT(y && t);
  if (P < 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "ops: norm_pix_loss needs patch vectors of length >= 2 (got P = %zu)", P);
  for (size_t r = 0; r < rows; r++) {
    const float *tr = t + r * P;
    double mu = 0.0, var = 0.0;
    for (size_t j = 0; j < P; j++)
      mu += (double)tr[j];
    mu /= (double)P;
    for (size_t j = 0; j < P; j++)
      var += ((double)tr[j] - mu) * ((double)tr[j] - mu);
    var /= (double)(P - 1);
    double inv = 1.0 / sqrt(var + 1e-6);
    for (size_t j = 0; j < P; j++)
      y[r * P + j] = (float)(((double)tr[j] - mu) * inv);
  }
  return CRATE_STATUS_OK;
}
