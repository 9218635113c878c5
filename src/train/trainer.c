/* trainer.c: the training loop's step (STYLE.md §1.13: create / step /
 * destroy, no callbacks) and evaluation on a held-out split.
 *
 * One step s (MODEL.md §10.1): masks from Philox (seed, MASK, s, b) for
 * image b of the batch (MODEL.md §3.3, crate_mask_random_batch), the
 * training forward (masked MSE, MODEL.md §3.10), backward (MODEL.md §8),
 * optional global-norm clipping, then AdamW (adamw.c) with the learning
 * rate of schedule.c at step s and bias-correction count t = s + 1.  The
 * trainer owns the AdamW moments (one block: m then v, each with the flat
 * parameter layout) and the mask buffers, all allocated at create, so a step
 * allocates nothing (STYLE.md principle 4).
 *
 * Evaluation (MODEL.md §3.11): the mean over every masked patch of a split
 * of the per-patch pixel MSE, with masks fixed by (mask_seed, image index),
 * and PSNR = 10 log10(1 / MSE).  Because every image has the same number of
 * masked patches, the pooled mean is the batch losses weighted by their
 * masked-patch counts.
 *
 * Non-goals: data loading and logging (tools own them), mixed precision,
 * gradient accumulation.
 */
#include <math.h>
#include <string.h>

#include "crate/ops.h"
#include "crate/train.h"
#include "internal.h"
#include "train_internal.h"

struct crate_trainer {
  crate_model *model; /* borrowed */
  crate_trainer_opts o;
  size_t n_params;        /* floats per flat block */
  size_t ntab;            /* trainable tensors */
  crate_tensor_desc *tab; /* (ntab) table entries (offsets, decay flags) */
  float *mom;             /* (2 n_params): m, then v */
  uint8_t *mask;          /* (batch, n) */
  size_t *ids;            /* (batch, n) ids_shuffle, unused by the model */
  double *noise;          /* (batch, n) mask draws, unused by the model */
  uint64_t step;          /* steps taken */
};

void crate_trainer_opts_default(crate_trainer_opts *out) {
  memset(out, 0, sizeof *out);
  out->seed = 0;
  out->batch = 256;
  out->mask_ratio = 0.75;
  out->clip = 0.0;
  out->sched.lr_max = 1e-3;
  out->sched.lr_min = 0.0;
  out->sched.total_steps = 1;
  out->sched.warmup_steps = 0;
  crate_adamw_default(&out->adamw);
}

/* Checks a mask ratio against n patches: (int)(n (1 - r)) visible, at least
 * one masked (MODEL.md §3.3). */
static int check_ratio(const char *who, double r, size_t n) {
  if (!isfinite(r) || r <= 0.0 || r >= 1.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "%s: mask ratio must be in (0, 1), got %g", who, r);
  const size_t keep = (size_t)(int)((double)n * (1.0 - r));
  if (keep >= n)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "%s: mask ratio %g masks no patch of %zu (n_keep = (int)(n (1 - r)))", who,
                       r, n);
  return CRATE_STATUS_OK;
}

static int check_opts(const crate_trainer_opts *o, const crate_dims *dm) {
  if (o->batch == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: batch size must be >= 1");
  CRATE_TRY(check_ratio("train", o->mask_ratio, dm->n));
  if (!isfinite(o->clip) || o->clip < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: clip must be finite and >= 0 (0 = off), got %g",
                       o->clip);
  CRATE_TRY(crate_lr_schedule_check(&o->sched));
  CRATE_TRY(crate_adamw_check(&o->adamw));
  if (o->sched.total_steps > (uint64_t)UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "train: %llu steps exceed the Philox step counter (2^32 - 1)",
                       (unsigned long long)o->sched.total_steps);
  return CRATE_STATUS_OK;
}

int crate_trainer_create(crate_trainer **out, crate_model *model, const crate_trainer_opts *opts) {
  if (!out || !model || !opts)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: NULL trainer, model or options");
  const crate_dims *dm = crate_model_dims(model);
  CRATE_TRY(check_opts(opts, dm));
  if (opts->batch > SIZE_MAX / sizeof(double) / dm->n)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: batch %zu too large", opts->batch);
  CRATE_TRY(crate_model_reserve(model, opts->batch));

  crate_trainer *t = calloc(1, sizeof *t);
  if (!t)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "train: out of memory");
  t->model = model;
  t->o = *opts;
  t->n_params = crate_model_param_count(model);
  const size_t nt = crate_model_tensor_count(model);
  t->tab = calloc(nt, sizeof *t->tab);
  t->mom = calloc(2 * t->n_params, sizeof *t->mom);
  t->mask = calloc(opts->batch * dm->n, sizeof *t->mask);
  t->ids = calloc(opts->batch * dm->n, sizeof *t->ids);
  t->noise = calloc(opts->batch * dm->n, sizeof *t->noise);
  if (!t->tab || !t->mom || !t->mask || !t->ids || !t->noise) {
    const size_t np = t->n_params;
    crate_trainer_destroy(t);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "train: out of memory (%zu parameters, batch %zu)", np,
                       opts->batch);
  }
  for (size_t i = 0; i < nt; i++) {
    crate_model_tensor mt;
    int st = crate_model_tensor_at(model, i, &mt);
    if (st != CRATE_STATUS_OK) {
      crate_trainer_destroy(t);
      return st;
    }
    if (mt.desc.trainable)
      t->tab[t->ntab++] = mt.desc;
  }
  *out = t;
  return CRATE_STATUS_OK;
}

void crate_trainer_destroy(crate_trainer *t) {
  if (!t)
    return;
  free(t->tab);
  free(t->mom);
  free(t->mask);
  free(t->ids);
  free(t->noise);
  free(t);
}

int crate_trainer_step(crate_trainer *t, const float *imgs, size_t B, crate_train_metrics *out) {
  /* imgs: (B, C, H, H) */
  if (!t || !imgs)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: NULL trainer or images");
  if (B == 0 || B > t->o.batch)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: batch of %zu images (trainer holds 1..%zu)", B,
                       t->o.batch);
  const uint64_t s = t->step;
  if (s > (uint64_t)UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: step %llu beyond the Philox step counter",
                       (unsigned long long)s);
  const crate_dims *dm = crate_model_dims(t->model);
  const double lr = crate_lr_at(&t->o.sched, s);

  CRATE_TRY(crate_mask_random_batch(t->mask, t->ids, t->noise, t->o.seed, (uint32_t)s, 0,
                                    t->o.mask_ratio, B, dm->n));
  double loss = 0.0;
  int st = crate_model_forward(t->model, imgs, t->mask, B, &loss);
  if (st == CRATE_STATUS_ENUMERIC)
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "train: non-finite loss at step %llu (lr %.3g); nothing was updated",
                       (unsigned long long)s, lr);
  if (st != CRATE_STATUS_OK)
    return st;
  CRATE_TRY(crate_model_backward(t->model));

  float *g = crate_model_grads(t->model);
  double norm = 0.0;
  bool clipped = false;
  if (t->o.clip > 0.0)
    clipped = crate_grad_clip(g, t->n_params, t->o.clip, &norm);
  else
    norm = crate_grad_norm(g, t->n_params);
  if (!isfinite(norm))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "train: non-finite gradient norm at step %llu; nothing was updated",
                       (unsigned long long)s);
  float *m = t->mom, *v = t->mom + t->n_params;
  CRATE_TRY(crate_adamw_step(crate_model_params(t->model), m, v, g, t->n_params, t->tab, t->ntab,
                             lr, s + 1, &t->o.adamw));
  t->step = s + 1;
  if (out) {
    out->step = s;
    out->loss = loss;
    out->lr = lr;
    out->grad_norm = norm;
    out->clipped = clipped;
  }
  return CRATE_STATUS_OK;
}

uint64_t crate_trainer_step_count(const crate_trainer *t) {
  return t->step;
}

int crate_trainer_set_step(crate_trainer *t, uint64_t step) {
  if (step > (uint64_t)UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: step %llu beyond the Philox step counter",
                       (unsigned long long)step);
  t->step = step;
  return CRATE_STATUS_OK;
}

const crate_trainer_opts *crate_trainer_options(const crate_trainer *t) {
  return &t->o;
}
crate_model *crate_trainer_model(crate_trainer *t) {
  return t->model;
}
float *crate_trainer_moment1(crate_trainer *t) {
  return t->mom;
}
float *crate_trainer_moment2(crate_trainer *t) {
  return t->mom + t->n_params;
}

size_t crate__trainer_table(const crate_trainer *t, const crate_tensor_desc **tab) {
  *tab = t->tab;
  return t->ntab;
}

/* ---- evaluation --------------------------------------------------------------- */

int crate_eval_masked(crate_model *m, const float *images, size_t count, size_t batch, double ratio,
                      uint64_t mask_seed, crate_eval_result *out) {
  /* images: (count, C, H, H) */
  if (!m || !images || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "eval: NULL model, images or result");
  if (count == 0 || batch == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "eval: %zu images in batches of %zu", count, batch);
  if (count > UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "eval: %zu images exceed 2^32 - 1", count);
  const crate_dims *dm = crate_model_dims(m);
  CRATE_TRY(check_ratio("eval", ratio, dm->n));
  const size_t Bc = batch < count ? batch : count;
  if (Bc > SIZE_MAX / sizeof(double) / dm->n)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "eval: batch %zu too large", Bc);
  CRATE_TRY(crate_model_reserve(m, Bc));
  uint8_t *mask = malloc(Bc * dm->n);
  size_t *ids = malloc(Bc * dm->n * sizeof *ids);
  double *noise = malloc(Bc * dm->n * sizeof *noise);
  int st = CRATE_STATUS_OK;
  if (!mask || !ids || !noise) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "eval: out of memory");
    goto done;
  }
  const size_t item = dm->C * dm->H * dm->H;
  double sum = 0.0;
  size_t total = 0;
  for (size_t first = 0; first < count; first += Bc) {
    const size_t b = count - first < Bc ? count - first : Bc;
    st = crate_mask_random_batch(mask, ids, noise, mask_seed, CRATE_EVAL_MASK_STEP, (uint32_t)first,
                                 ratio, b, dm->n);
    if (st != CRATE_STATUS_OK)
      goto done;
    double loss = 0.0;
    st = crate_model_forward(m, images + first * item, mask, b, &loss);
    if (st == CRATE_STATUS_ENUMERIC) {
      st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "eval: non-finite loss on images %zu..%zu", first,
                       first + b - 1);
      goto done;
    }
    if (st != CRATE_STATUS_OK)
      goto done;
    size_t cnt = 0;
    for (size_t i = 0; i < b * dm->n; i++)
      cnt += mask[i];
    sum += loss * (double)cnt;
    total += cnt;
  }
  out->images = count;
  out->mask_ratio = ratio;
  out->masked_patches = total;
  out->masked_mse = sum / (double)total;
  out->masked_psnr = 10.0 * log10(1.0 / out->masked_mse);
done:
  free(mask);
  free(ids);
  free(noise);
  return st;
}
