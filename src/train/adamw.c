/* adamw.c: the AdamW update (MODEL.md §10.1) and global-norm gradient
 * clipping, over flat blocks laid out by the tensor table.
 *
 * PyTorch semantics (torch.optim.AdamW, single-tensor path): decoupled decay
 * theta *= 1 - lr w first, then the bias-corrected Adam step
 *   theta -= (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
 * with w = 0 on tensors whose table entry has decay = false (1-D tensors:
 * biases, LayerNorm weights and biases; MODEL.md §10.1 decay groups, O4).
 * Parameters, m and v are flat float blocks with the same layout (STYLE.md
 * principle 4), so the step is one pass over them, tensor by tensor.  Each
 * element is computed in double from the stored floats; m and v are rounded
 * to float first and the parameter update uses the rounded values, as the
 * float32 framework does.
 *
 * Non-goals: amsgrad, maximize, per-tensor learning rates.
 */
#include <math.h>

#include "crate/train.h"
#include "internal.h"

void crate_adamw_default(crate_adamw_hparams *out) {
  out->beta1 = 0.9;
  out->beta2 = 0.95;
  out->eps = 1e-8;
  out->weight_decay = 0.05;
}

int crate_adamw_check(const crate_adamw_hparams *hp) {
  if (!hp)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: NULL hyper-parameters");
  if (!isfinite(hp->beta1) || hp->beta1 < 0.0 || hp->beta1 >= 1.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: beta1 must be in [0, 1), got %g", hp->beta1);
  if (!isfinite(hp->beta2) || hp->beta2 < 0.0 || hp->beta2 >= 1.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: beta2 must be in [0, 1), got %g", hp->beta2);
  if (!isfinite(hp->eps) || hp->eps <= 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: eps must be finite and > 0, got %g", hp->eps);
  if (!isfinite(hp->weight_decay) || hp->weight_decay < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: weight decay must be finite and >= 0, got %g",
                       hp->weight_decay);
  return CRATE_STATUS_OK;
}

int crate_adamw_step(float *theta, float *m, float *v, const float *g, size_t n,
                     const crate_tensor_desc *tab, size_t ntab, double lr, uint64_t t,
                     const crate_adamw_hparams *hp) {
  /* theta, m, v, g: (n) flat blocks; tab: (ntab) */
  CRATE_TRY(crate_adamw_check(hp));
  if (!theta || !m || !v || !g || (!tab && ntab > 0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: NULL block or table");
  if (!isfinite(lr) || lr < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: learning rate must be finite and >= 0, got %g",
                       lr);
  if (t == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "adamw: the step count t starts at 1");
  for (size_t i = 0; i < ntab; i++)
    if (tab[i].trainable && (tab[i].offset > n || tab[i].count > n - tab[i].offset))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "adamw: tensor '%s' [%zu, %zu) lies outside the %zu-float block",
                         tab[i].name, tab[i].offset, tab[i].offset + tab[i].count, n);

  const double b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
  const double bc1 = 1.0 - pow(b1, (double)t);
  const double bc2_sqrt = sqrt(1.0 - pow(b2, (double)t));
  const double step_size = lr / bc1;
  for (size_t i = 0; i < ntab; i++) {
    if (!tab[i].trainable)
      continue;
    const double keep = tab[i].decay ? 1.0 - lr * hp->weight_decay : 1.0;
    float *th = theta + tab[i].offset, *mm = m + tab[i].offset, *vv = v + tab[i].offset;
    const float *gg = g + tab[i].offset;
    /* element-wise: the same bits for any thread count */
#if defined(CRATE_HAVE_OPENMP)
#pragma omp parallel for schedule(static) if (tab[i].count >= 32768)
#endif
    for (size_t j = 0; j < tab[i].count; j++) {
      const double gd = gg[j];
      const float mf = (float)(b1 * mm[j] + (1.0 - b1) * gd);
      const float vf = (float)(b2 * vv[j] + (1.0 - b2) * gd * gd);
      mm[j] = mf;
      vv[j] = vf;
      const double denom = sqrt((double)vf) / bc2_sqrt + eps;
      th[j] = (float)((double)th[j] * keep - step_size * (double)mf / denom);
    }
  }
  return CRATE_STATUS_OK;
}

double crate_grad_norm(const float *g, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += (double)g[i] * (double)g[i];
  return sqrt(s);
}

bool crate_grad_clip(float *g, size_t n, double max_norm, double *norm) {
  const double nrm = crate_grad_norm(g, n);
  if (norm)
    *norm = nrm;
  if (!(max_norm > 0.0) || !(nrm > max_norm))
    return false;
  const double scale = max_norm / (nrm + 1e-6);
  for (size_t i = 0; i < n; i++)
    g[i] = (float)((double)g[i] * scale);
  return true;
}
