/* checkpoint_train.c: training checkpoints (MODEL.md §11.4).
 *
 * A checkpoint is the model file of modelio.h (every trainable tensor plus
 * decoder_pos_embed, config in __metadata__) with, for every trainable
 * tensor <name>, the AdamW moments optim.m.<name> and optim.v.<name> (F32,
 * the parameter's shape), and the crate.train.* metadata that fixes the run:
 * step, seed, lr, min_lr, wd, beta1, beta2, eps, batch, warmup_steps,
 * total_steps, mask_ratio, clip.  Doubles are written with %.17g so they
 * read back bit-exactly.  No other RNG state is needed: masks and data order
 * are Philox functions of (seed, step) and (seed, epoch).  The file is
 * written to a temporary file and renamed into place by the safetensors
 * writer, so an interrupted write never leaves a broken checkpoint.
 *
 * Non-goals: optimiser state of other optimisers, sharded checkpoints.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "crate/modelio.h"
#include "crate/safetensors.h"
#include "crate/train.h"
#include "internal.h"
#include "train_internal.h"

#define OPTIM_NAME_MAX (CRATE_TENSOR_NAME_MAX + 16)
#define NOT_CKPT_HINT                                                                              \
  " (not a training checkpoint: model files carry no optimiser state; resume from "                \
  "checkpoint.safetensors)"

static int set_u64(crate_st_writer *w, const char *key, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return crate_st_writer_set_metadata(w, key, buf);
}

static int set_f64(crate_st_writer *w, const char *key, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  return crate_st_writer_set_metadata(w, key, buf);
}

static int write_all(crate_trainer *t, crate_st_writer *w, const crate_train_kv *extra,
                     size_t n_extra) {
  crate_model *m = crate_trainer_model(t);
  const crate_trainer_opts *o = crate_trainer_options(t);
  CRATE_TRY(crate_model_write_tensors(m, w));
  const crate_tensor_desc *tab;
  const size_t nt = crate__trainer_table(t, &tab);
  const float *mom[2] = {crate_trainer_moment1(t), crate_trainer_moment2(t)};
  const char *pre[2] = {"optim.m.", "optim.v."};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < nt; i++) {
      char name[OPTIM_NAME_MAX];
      snprintf(name, sizeof name, "%s%s", pre[k], tab[i].name);
      CRATE_TRY(
          crate_st_writer_add_f32(w, name, tab[i].ndim, tab[i].shape, mom[k] + tab[i].offset));
    }
  CRATE_TRY(set_u64(w, "crate.train.step", crate_trainer_step_count(t)));
  CRATE_TRY(set_u64(w, "crate.train.seed", o->seed));
  CRATE_TRY(set_f64(w, "crate.train.lr", o->sched.lr_max));
  CRATE_TRY(set_f64(w, "crate.train.min_lr", o->sched.lr_min));
  CRATE_TRY(set_f64(w, "crate.train.wd", o->adamw.weight_decay));
  CRATE_TRY(set_f64(w, "crate.train.beta1", o->adamw.beta1));
  CRATE_TRY(set_f64(w, "crate.train.beta2", o->adamw.beta2));
  CRATE_TRY(set_f64(w, "crate.train.eps", o->adamw.eps));
  CRATE_TRY(set_u64(w, "crate.train.batch", o->batch));
  CRATE_TRY(set_u64(w, "crate.train.warmup_steps", o->sched.warmup_steps));
  CRATE_TRY(set_u64(w, "crate.train.total_steps", o->sched.total_steps));
  CRATE_TRY(set_f64(w, "crate.train.mask_ratio", o->mask_ratio));
  CRATE_TRY(set_f64(w, "crate.train.clip", o->clip));
  for (size_t i = 0; i < n_extra; i++) {
    if (!extra[i].key || !extra[i].value || strncmp(extra[i].key, "crate.", 6) != 0)
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "train: extra checkpoint metadata '%s' must be a crate.* key",
                         extra[i].key ? extra[i].key : "(null)");
    CRATE_TRY(crate_st_writer_set_metadata(w, extra[i].key, extra[i].value));
  }
  return CRATE_STATUS_OK;
}

int crate_trainer_save(crate_trainer *t, const char *path, const crate_train_kv *extra,
                       size_t n_extra) {
  if (!t || !path || (n_extra > 0 && !extra))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: NULL trainer, path or metadata");
  crate_st_writer *w = NULL;
  CRATE_TRY(crate_st_writer_create(&w));
  int st = write_all(t, w, extra, n_extra);
  if (st == CRATE_STATUS_OK)
    st = crate_st_writer_write(w, path);
  crate_st_writer_destroy(w);
  return st;
}

/* ---- reading ------------------------------------------------------------------ */

static int get_u64(const crate_st *st, const char *key, uint64_t *out) {
  const char *s = crate_st_metadata(st, key);
  if (!s)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: no '%s' in the metadata%s",
                       crate_st_path(st), key, NOT_CKPT_HINT);
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || errno == ERANGE || s[0] == '-')
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: metadata '%s' = '%s' is not an integer",
                       crate_st_path(st), key, s);
  *out = (uint64_t)v;
  return CRATE_STATUS_OK;
}

static int get_f64(const crate_st *st, const char *key, double *out) {
  const char *s = crate_st_metadata(st, key);
  if (!s)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: no '%s' in the metadata%s",
                       crate_st_path(st), key, NOT_CKPT_HINT);
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno == ERANGE || !isfinite(v))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: metadata '%s' = '%s' is not a number",
                       crate_st_path(st), key, s);
  *out = v;
  return CRATE_STATUS_OK;
}

int crate_train_read_opts(const crate_st *st, crate_trainer_opts *opts, uint64_t *step) {
  if (!st || !opts)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: NULL file or options");
  crate_trainer_opts o;
  crate_trainer_opts_default(&o);
  uint64_t s = 0, batch = 0;
  CRATE_TRY(get_u64(st, "crate.train.step", &s));
  CRATE_TRY(get_u64(st, "crate.train.seed", &o.seed));
  CRATE_TRY(get_f64(st, "crate.train.lr", &o.sched.lr_max));
  CRATE_TRY(get_f64(st, "crate.train.min_lr", &o.sched.lr_min));
  CRATE_TRY(get_f64(st, "crate.train.wd", &o.adamw.weight_decay));
  CRATE_TRY(get_f64(st, "crate.train.beta1", &o.adamw.beta1));
  CRATE_TRY(get_f64(st, "crate.train.beta2", &o.adamw.beta2));
  CRATE_TRY(get_f64(st, "crate.train.eps", &o.adamw.eps));
  CRATE_TRY(get_u64(st, "crate.train.batch", &batch));
  CRATE_TRY(get_u64(st, "crate.train.warmup_steps", &o.sched.warmup_steps));
  CRATE_TRY(get_u64(st, "crate.train.total_steps", &o.sched.total_steps));
  CRATE_TRY(get_f64(st, "crate.train.mask_ratio", &o.mask_ratio));
  CRATE_TRY(get_f64(st, "crate.train.clip", &o.clip));
  if (batch == 0 || batch > SIZE_MAX)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: crate.train.batch = %llu is invalid",
                       crate_st_path(st), (unsigned long long)batch);
  o.batch = (size_t)batch;
  if (crate_lr_schedule_check(&o.sched) != CRATE_STATUS_OK ||
      crate_adamw_check(&o.adamw) != CRATE_STATUS_OK || o.clip < 0.0 || !(o.mask_ratio > 0.0) ||
      !(o.mask_ratio < 1.0) || s > o.sched.total_steps)
    return CRATE_ERROR(
        CRATE_STATUS_EFORMAT,
        "train: %s: inconsistent crate.train.* settings (step %llu of %llu, "
        "warmup %llu, lr %g..%g, mask ratio %g)",
        crate_st_path(st), (unsigned long long)s, (unsigned long long)o.sched.total_steps,
        (unsigned long long)o.sched.warmup_steps, o.sched.lr_min, o.sched.lr_max, o.mask_ratio);
  *opts = o;
  if (step)
    *step = s;
  return CRATE_STATUS_OK;
}

/* Finds and checks optim.<k>.<name>: exact shape, finite values. */
static int find_moment(const crate_st *st, const char *pre, const crate_tensor_desc *d,
                       crate_st_tensor *out) {
  char name[OPTIM_NAME_MAX];
  snprintf(name, sizeof name, "%s%s", pre, d->name);
  if (!crate_st_has(st, name))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: no tensor '%s'%s", crate_st_path(st), name,
                       NOT_CKPT_HINT);
  CRATE_TRY(crate_st_find(st, name, out));
  bool same = out->ndim == d->ndim && out->count == d->count;
  for (size_t k = 0; same && k < d->ndim; k++)
    same = out->shape[k] == d->shape[k];
  if (!same)
    return CRATE_ERROR(
        CRATE_STATUS_EFORMAT,
        "train: %s: tensor '%s' has %zu dims / %zu values, the model needs %zu / %zu",
        crate_st_path(st), name, out->ndim, out->count, d->ndim, d->count);
  if (!crate__all_finitef(out->data, out->count))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: tensor '%s' holds non-finite values",
                       crate_st_path(st), name);
  return CRATE_STATUS_OK;
}

int crate_trainer_load_state(crate_trainer *t, const crate_st *st) {
  if (!t || !st)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "train: NULL trainer or file");
  uint64_t step = 0;
  CRATE_TRY(get_u64(st, "crate.train.step", &step));
  if (step > (uint64_t)UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "train: %s: crate.train.step %llu out of range",
                       crate_st_path(st), (unsigned long long)step);
  const crate_tensor_desc *tab;
  const size_t nt = crate__trainer_table(t, &tab);
  /* Check everything first (all or nothing), then copy. */
  for (size_t i = 0; i < nt; i++) {
    crate_st_tensor a, b;
    CRATE_TRY(find_moment(st, "optim.m.", &tab[i], &a));
    CRATE_TRY(find_moment(st, "optim.v.", &tab[i], &b));
    for (size_t j = 0; j < b.count; j++)
      if (b.data[j] < 0.0f)
        return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                           "train: %s: tensor 'optim.v.%s' holds a negative second moment",
                           crate_st_path(st), tab[i].name);
  }
  float *m = crate_trainer_moment1(t), *v = crate_trainer_moment2(t);
  for (size_t i = 0; i < nt; i++) {
    crate_st_tensor a, b;
    CRATE_TRY(find_moment(st, "optim.m.", &tab[i], &a));
    CRATE_TRY(find_moment(st, "optim.v.", &tab[i], &b));
    memcpy(m + tab[i].offset, a.data, tab[i].count * sizeof(float));
    memcpy(v + tab[i].offset, b.data, tab[i].count * sizeof(float));
  }
  return crate_trainer_set_step(t, step);
}
