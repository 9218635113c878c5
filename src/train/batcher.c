/* batcher.c: the data order of training (MODEL.md §10.1, STYLE.md §1.7).
 *
 * Epoch e visits the training set in the order of a Fisher-Yates
 * permutation drawn from Philox (seed, DATA, step = e, sample = 0), so the
 * batch of any global step s is a pure function of (seed, s): resuming needs
 * no data-loader state.  Batches are floor(count / B) per epoch; the
 * incomplete last batch is dropped.
 *
 * Non-goals: augmentation (none for the fmnist presets, MODEL.md §10.1),
 * sharding across ranks (a rank would take a slice of the same batch).
 */
#include <string.h>

#include "crate/rng.h"
#include "crate/train.h"
#include "internal.h"

int crate_train_permutation(uint32_t *perm, size_t count, uint64_t seed, uint64_t epoch) {
  /* perm: (count) */
  if (!perm || count == 0 || count > UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "data: permutation of %zu items (need 1..2^32-1)",
                       count);
  if (epoch > UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "data: epoch %llu beyond the Philox counter range",
                       (unsigned long long)epoch);
  crate_rng rng;
  crate_rng_init_at(&rng, seed, CRATE_RNG_DATA, (uint32_t)epoch, 0);
  for (size_t i = 0; i < count; i++)
    perm[i] = (uint32_t)i;
  for (size_t i = count - 1; i > 0; i--) {
    const uint32_t j = crate_rng_below(&rng, (uint32_t)(i + 1));
    const uint32_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  return CRATE_STATUS_OK;
}

struct crate_batcher {
  const crate_dataset *ds; /* borrowed */
  size_t B;                /* images per batch */
  size_t item;             /* floats per image */
  size_t per_epoch;        /* floor(count / B) */
  uint64_t seed;
  uint64_t perm_epoch; /* epoch perm holds, or UINT64_MAX */
  uint32_t *perm;      /* (count) */
  uint32_t *index;     /* (B) data-set indices of the current batch */
  float *batch;        /* (B, C, H, W) */
};

int crate_batcher_create(crate_batcher **out, const crate_dataset *ds, size_t batch,
                         uint64_t seed) {
  if (!out || !ds || !ds->images)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "data: NULL batcher output or empty data set");
  if (batch == 0 || batch > ds->count)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "data: batch size %zu must be in [1, %zu] (the number of images)", batch,
                       ds->count);
  if (ds->count > UINT32_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "data: %zu images exceed 2^32-1", ds->count);
  const size_t item = crate_dataset_image_size(ds);
  if (item == 0 || batch > SIZE_MAX / sizeof(float) / item)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "data: bad image size %zu", item);
  crate_batcher *b = calloc(1, sizeof *b);
  if (!b)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "data: out of memory");
  b->perm = malloc(ds->count * sizeof *b->perm);
  b->index = malloc(batch * sizeof *b->index);
  b->batch = malloc(batch * item * sizeof *b->batch);
  if (!b->perm || !b->index || !b->batch) {
    crate_batcher_destroy(b);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "data: out of memory for a batch of %zu", batch);
  }
  b->ds = ds;
  b->B = batch;
  b->item = item;
  b->per_epoch = ds->count / batch;
  b->seed = seed;
  b->perm_epoch = UINT64_MAX;
  *out = b;
  return CRATE_STATUS_OK;
}

void crate_batcher_destroy(crate_batcher *b) {
  if (!b)
    return;
  free(b->perm);
  free(b->index);
  free(b->batch);
  free(b);
}

size_t crate_batcher_steps_per_epoch(const crate_batcher *b) {
  return b->per_epoch;
}

int crate_batcher_get(crate_batcher *b, uint64_t step, const float **imgs, uint64_t *epoch,
                      const uint32_t **index) {
  const uint64_t e = step / b->per_epoch;
  const size_t first = (size_t)(step % b->per_epoch) * b->B;
  if (e != b->perm_epoch) {
    CRATE_TRY(crate_train_permutation(b->perm, b->ds->count, b->seed, e));
    b->perm_epoch = e;
  }
  for (size_t i = 0; i < b->B; i++) {
    const uint32_t k = b->perm[first + i];
    b->index[i] = k;
    memcpy(b->batch + i * b->item, b->ds->images + (size_t)k * b->item, b->item * sizeof(float));
  }
  if (imgs)
    *imgs = b->batch;
  if (epoch)
    *epoch = e;
  if (index)
    *index = b->index;
  return CRATE_STATUS_OK;
}
