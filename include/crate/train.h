/* train.h: training a CRATE-MAE (MODEL.md §10): AdamW, the per-step
 * learning-rate schedule, the data order, the trainer (create / step /
 * destroy), evaluation on a held-out split, and training checkpoints
 * (MODEL.md §11.4).
 *
 * Determinism (STYLE.md §1.7): everything random is a Philox function of
 * the seed and a counter, so a run is a pure function of (seed, step):
 *   - masks of step s: crate_mask_random_batch(seed, step = s, sample0 = 0),
 *     i.e. image b of the batch uses (seed, MASK, s, b);
 *   - data order of epoch e: a Fisher-Yates permutation drawn from
 *     (seed, DATA, step = e, sample = 0) (crate_train_permutation);
 *   - initialisation: crate_model_init(model, seed) (stream INIT).
 * Resuming therefore needs only the parameters, the AdamW moments and the
 * step count; a resumed run is bit-identical to an uninterrupted one (same
 * thread count, same BLAS).
 *
 * Typical use:
 *   crate_trainer_opts o; crate_trainer_opts_default(&o); ... set fields ...
 *   crate_trainer_create(&t, model, &o);           (reserves the model)
 *   crate_batcher_create(&bt, &train_set, o.batch, o.seed);
 *   for (s = crate_trainer_step_count(t); s < total; s++) {
 *     crate_batcher_get(bt, s, &imgs, &epoch);
 *     crate_trainer_step(t, imgs, o.batch, &metrics);
 *   }
 *   crate_trainer_save(t, "checkpoint.safetensors", extra, n_extra);
 */
#ifndef CRATE_TRAIN_H
#define CRATE_TRAIN_H

#include "crate/config.h"
#include "crate/data.h"
#include "crate/defs.h"
#include "crate/model.h"
#include "crate/safetensors.h"
#include "crate/threads.h" /* crate_set_threads, crate_blas_core (moved there) */

/* ---- AdamW (MODEL.md §10.1, PyTorch semantics) ------------------------- */

/** AdamW hyper-parameters (the learning rate comes from the schedule). */
typedef struct crate_adamw_hparams {
  double beta1;        /* first-moment decay, 0.9 */
  double beta2;        /* second-moment decay, 0.95 */
  double eps;          /* added to sqrt(v_hat), 1e-8 */
  double weight_decay; /* decoupled decay w on decay tensors, 0.05 */
} crate_adamw_hparams;

/** Fills *out with (0.9, 0.95), eps 1e-8, weight decay 0.05. */
CRATE_API void crate_adamw_default(crate_adamw_hparams *out);

/** @return OK, or EINVAL ("adamw: ...") unless 0 <= beta < 1, eps > 0 and
 *  weight_decay >= 0, all finite. */
CRATE_API int crate_adamw_check(const crate_adamw_hparams *hp);

/** One AdamW step over flat blocks laid out by a tensor table: for each
 *  trainable entry i, elements [offset, offset + count) of every block, with
 *  (t = step count starting at 1, w = weight_decay if tab[i].decay else 0)
 *    theta <- theta (1 - lr w)
 *    m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
 *    theta <- theta - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 *  Each element is computed in double from the float inputs and rounded
 *  once per stored value.
 *  @param theta, m, v (n) flat blocks, updated in place
 *  @param g    (n) gradient block
 *  @param tab  ntab entries (e.g. crate_model_tensor_at descs); entries
 *              with trainable = false are skipped; every trainable entry
 *              must lie inside [0, n)
 *  @param lr   finite, >= 0
 *  @param t    1, 2, ... (bias correction)
 *  @return OK or EINVAL (bad hyper-parameters, lr, t = 0, entry out of
 *          range). */
CRATE_API int crate_adamw_step(float *theta, float *m, float *v, const float *g, size_t n,
                               const crate_tensor_desc *tab, size_t ntab, double lr, uint64_t t,
                               const crate_adamw_hparams *hp);

/** @return the global L2 norm of g[0..n) (double accumulation). */
CRATE_API double crate_grad_norm(const float *g, size_t n);

/** Global-norm clipping (PyTorch clip_grad_norm_): when norm > max_norm,
 *  g *= max_norm / (norm + 1e-6).  *norm (optional) receives the norm
 *  before clipping.  @return true when g was scaled.  max_norm <= 0: never. */
CRATE_API bool crate_grad_clip(float *g, size_t n, double max_norm, double *norm);

/* ---- learning-rate schedule (MODEL.md §10.1) ---------------------------- */

/** Per-step linear warmup then half-cycle cosine. */
typedef struct crate_lr_schedule {
  double lr_max;         /* peak learning rate, reached at step warmup_steps */
  double lr_min;         /* floor of the cosine (0 in the recipe) */
  uint64_t warmup_steps; /* S_w */
  uint64_t total_steps;  /* S (the cosine reaches lr_min at s = S) */
} crate_lr_schedule;

/** @return OK or EINVAL unless 0 <= lr_min <= lr_max (finite),
 *  total_steps >= 1 and warmup_steps <= total_steps. */
CRATE_API int crate_lr_schedule_check(const crate_lr_schedule *s);

/** Learning rate of 0-based step s:
 *    s < S_w:  lr_max s / S_w                      (step 0 has lr 0)
 *    s >= S_w: lr_min + (lr_max - lr_min) (1 + cos(pi (s - S_w) / (S - S_w))) / 2
 *  and lr_min for s >= S.  S_w = S gives a pure warmup.  The schedule must
 *  pass crate_lr_schedule_check (not re-checked here). */
CRATE_API double crate_lr_at(const crate_lr_schedule *s, uint64_t step);

/** Warmup steps for a fraction of S: round(frac S), clamped to [0, S]. */
CRATE_API uint64_t crate_warmup_steps(double frac, uint64_t total_steps);

/* ---- data order ---------------------------------------------------------- */

/** Permutation of 0..count-1 for one epoch: Fisher-Yates (i from count-1
 *  down to 1, j = below(i + 1)) on draws from (seed, DATA, step = epoch,
 *  sample = 0).  @param perm (count)  @return OK or EINVAL (count 0 or
 *  > UINT32_MAX, epoch > UINT32_MAX). */
CRATE_API int crate_train_permutation(uint32_t *perm, size_t count, uint64_t seed, uint64_t epoch);

/** Batches of a data set in epoch order: global step s is batch
 *  s % steps_per_epoch of epoch s / steps_per_epoch; steps_per_epoch =
 *  floor(count / B) (the incomplete last batch is dropped, MODEL.md §10.1).
 *  Owns one permutation and one batch buffer; borrows the data set. */
typedef struct crate_batcher crate_batcher;

/** @param ds    the training set (borrowed; must outlive the batcher)
 *  @param batch B, 1 .. ds->count
 *  @return OK, EINVAL (batch 0 or > count, count > UINT32_MAX) or ENOMEM. */
CRATE_API int crate_batcher_create(crate_batcher **out, const crate_dataset *ds, size_t batch,
                                   uint64_t seed);
/** NULL is a no-op. */
CRATE_API void crate_batcher_destroy(crate_batcher *b);
/** @return floor(count / B). */
CRATE_API size_t crate_batcher_steps_per_epoch(const crate_batcher *b);
/** The B images of global step s, gathered into the batcher's buffer
 *  (B, C, H, W), borrowed until the next call.  No allocation.
 *  @param epoch receives s / steps_per_epoch (may be NULL)
 *  @param index receives the data-set indices (B), borrowed (may be NULL)
 *  @return OK or EINVAL (epoch past UINT32_MAX). */
CRATE_API int crate_batcher_get(crate_batcher *b, uint64_t step, const float **imgs,
                                uint64_t *epoch, const uint32_t **index);

/* ---- trainer (STYLE.md §1.13) -------------------------------------------- */

typedef struct crate_trainer crate_trainer;

/** Everything a training run needs besides the model and the data. */
typedef struct crate_trainer_opts {
  uint64_t seed;             /* Philox key of masks (and, by convention, init and data order) */
  size_t batch;              /* largest B per step (the model is reserved for it) */
  double mask_ratio;         /* r in (0, 1), with at least one masked patch per image */
  double clip;               /* global gradient-norm clip; 0 = off (the recipe) */
  crate_lr_schedule sched;   /* per-step learning rate */
  crate_adamw_hparams adamw; /* betas, eps, weight decay */
} crate_trainer_opts;

/** Defaults: seed 0, batch 256, mask ratio 0.75, no clipping, lr 1e-3 to
 *  0 with 5 % warmup of total_steps = 1 (set sched.total_steps and
 *  sched.warmup_steps for a real run), AdamW defaults. */
CRATE_API void crate_trainer_opts_default(crate_trainer_opts *out);

/** Metrics of one step (filled by crate_trainer_step). */
typedef struct crate_train_metrics {
  uint64_t step;    /* 0-based index of the step just taken */
  double loss;      /* masked MSE of the batch, before the update */
  double lr;        /* learning rate used (crate_lr_at(step)) */
  double grad_norm; /* global gradient norm before clipping */
  bool clipped;     /* true when the gradient was clipped */
} crate_train_metrics;

/** Creates a trainer for a model (borrowed; must outlive the trainer):
 *  checks the options, reserves the model for opts->batch images and
 *  allocates the AdamW moments (zero) and the mask buffers, each once.
 *  The step count starts at 0.  The model's parameters are not touched.
 *  @return OK, EINVAL ("train: ...") or ENOMEM; *out untouched on error. */
CRATE_API int crate_trainer_create(crate_trainer **out, crate_model *model,
                                   const crate_trainer_opts *opts);

/** Frees the trainer (not the model).  NULL is a no-op. */
CRATE_API void crate_trainer_destroy(crate_trainer *t);

/** One training step s = crate_trainer_step_count(t): masks from
 *  (seed, s, image index in batch), forward, backward, optional clipping,
 *  AdamW with lr = crate_lr_at(sched, s) and t = s + 1; then the step count
 *  becomes s + 1.  Allocates nothing.
 *  @param imgs (B, C, H, H) planar, normalised, finite
 *  @param B    1 .. opts.batch
 *  @param out  receives the metrics (may be NULL)
 *  @return OK; EINVAL (B, non-finite pixel); ENUMERIC (non-finite loss or
 *          gradient: nothing was updated and the step count is unchanged). */
CRATE_API int crate_trainer_step(crate_trainer *t, const float *imgs, size_t B,
                                 crate_train_metrics *out);

/** @return the number of steps taken (the 0-based index of the next step). */
CRATE_API uint64_t crate_trainer_step_count(const crate_trainer *t);
/** Sets the step count (resume).  @return OK or EINVAL (beyond UINT32_MAX,
 *  the mask counter's range). */
CRATE_API int crate_trainer_set_step(crate_trainer *t, uint64_t step);
/** @return the options (borrowed). */
CRATE_API const crate_trainer_opts *crate_trainer_options(const crate_trainer *t);
/** @return the model (borrowed). */
CRATE_API crate_model *crate_trainer_model(crate_trainer *t);
/** AdamW moments m and v: flat blocks with the parameter layout
 *  (crate_model_param_count floats each; borrowed, writable). */
CRATE_API float *crate_trainer_moment1(crate_trainer *t);
CRATE_API float *crate_trainer_moment2(crate_trainer *t);

/* ---- evaluation ------------------------------------------------------------- */

/** Mask counter step used by evaluation, so that evaluation masks never
 *  coincide with the masks of a training step even for the same seed. */
#define CRATE_EVAL_MASK_STEP 0xFFFFFFFFu

/** Evaluation over a held-out split (MODEL.md §3.11). */
typedef struct crate_eval_result {
  size_t images;         /* images evaluated */
  double mask_ratio;     /* r */
  size_t masked_patches; /* sum of masked patches over the split */
  double masked_mse;     /* mean over every masked patch of the split of the
                            per-patch pixel MSE (the training loss, pooled) */
  double masked_psnr;    /* 10 log10(1 / masked_mse) (pixels in [0, 1]) */
} crate_eval_result;

/** Masked-patch MSE of a model over images at a fixed mask seed: image i
 *  uses the mask from (mask_seed, MASK, CRATE_EVAL_MASK_STEP, i), so the
 *  result does not depend on the batch size.  Runs the training forward
 *  in batches of up to `batch` images: reserves the model for them
 *  (allocation happens here, never in crate_trainer_step) and overwrites
 *  the model's last forward.
 *  @param images (count, C, H, H) planar, normalised
 *  @return OK; EINVAL (count 0, batch 0, ratio with no masked patch);
 *          ENUMERIC; ENOMEM. */
CRATE_API int crate_eval_masked(crate_model *m, const float *images, size_t count, size_t batch,
                                double ratio, uint64_t mask_seed, crate_eval_result *out);

/* ---- checkpoints (MODEL.md §11.4) --------------------------------------- */

/** One metadata entry added to a checkpoint (strings copied). */
typedef struct crate_train_kv {
  const char *key;
  const char *value;
} crate_train_kv;

/** Writes a training checkpoint atomically (temporary file + rename): the
 *  model file (tensors + config metadata), optim.m.<name> and optim.v.<name>
 *  for every trainable tensor, and metadata crate.train.step, .seed, .lr,
 *  .min_lr, .wd, .beta1, .beta2, .eps, .batch, .warmup_steps, .total_steps,
 *  .mask_ratio, .clip (numbers with %.17g or %llu, so they round-trip), plus
 *  the n_extra entries (e.g. crate.train.epochs, crate.train.data).
 *  @return OK, EINVAL, EIO or ENOMEM (path untouched on failure). */
CRATE_API int crate_trainer_save(crate_trainer *t, const char *path, const crate_train_kv *extra,
                                 size_t n_extra);

/** Reads the trainer options a checkpoint was written with (crate.train.*
 *  keys; every key crate_trainer_save writes must be present).
 *  @param st an open file (crate_st_open)
 *  @param step receives crate.train.step (may be NULL)
 *  @return OK or EFORMAT ("train: <file>: ...", naming the key). */
CRATE_API int crate_train_read_opts(const crate_st *st, crate_trainer_opts *opts, uint64_t *step);

/** Restores the optimiser state of a trainer from an open checkpoint:
 *  optim.m.* and optim.v.* for every trainable tensor (exact shapes, finite
 *  values) and the step count.  Model parameters are not touched (load them
 *  with crate_model_load_st).  All or nothing: on error the trainer is
 *  unchanged.  @return OK or EFORMAT (missing or mis-shaped tensor, missing
 *  step key). */
CRATE_API int crate_trainer_load_state(crate_trainer *t, const crate_st *st);

#endif
