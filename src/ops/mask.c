/* mask.c: per-image random masking (MODEL.md §3.3; official random_masking).
 *
 *   n_keep = (int)(n * (1.0 - ratio))   in double, like Python's int()
 *   xi_t ~ U[0, 1)                      one crate_rng_uniform draw per patch
 *   ids_shuffle = indices sorted by (xi, index) ascending (a stable argsort)
 *   mask[ids_shuffle[i]] = (i >= n_keep)   1 = removed, 0 = visible
 *
 * The result is a uniformly random visible subset of size n_keep.  Draws come
 * from Philox on stream CRATE_RNG_MASK positioned at (seed, step, global
 * sample index), so a mask never depends on batch layout or thread count.
 * Non-goals: matching PyTorch's generator (golden tests pass masks as data).
 */
#include "ops_internal.h"

int crate_mask_n_keep(size_t *n_keep, size_t n, double ratio) {
  CRATE_ASSERT(n_keep);
  if (!(ratio >= 0.0 && ratio < 1.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "ops: mask ratio %g outside [0, 1)", ratio);
  *n_keep = (size_t)((double)n * (1.0 - ratio));
  return CRATE_STATUS_OK;
}

/* (xi_a, a) < (xi_b, b): the total order a stable sort by xi produces. */
static bool key_less(const double *xi, size_t a, size_t b) {
  return xi[a] < xi[b] || (xi[a] == xi[b] && a < b);
}

static void sift_down(size_t *h, const double *xi, size_t root, size_t len) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= len)
      return;
    if (child + 1 < len && key_less(xi, h[child], h[child + 1]))
      child++;
    if (!key_less(xi, h[root], h[child]))
      return;
    size_t tmp = h[root];
    h[root] = h[child];
    h[child] = tmp;
    root = child;
  }
}

static int draw(size_t *n_keep, double *noise, size_t *ids, crate_rng *rng, double ratio,
                size_t n) {
  CRATE_TRY(crate_mask_n_keep(n_keep, n, ratio));
  if (n == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "ops: masking needs at least one patch");
  for (size_t t = 0; t < n; t++) {
    noise[t] = crate_rng_uniform(rng);
    ids[t] = t;
  }
  return CRATE_STATUS_OK;
}

static void write_mask(uint8_t *mask, const size_t *ids, size_t n_keep, size_t n) {
  for (size_t i = 0; i < n; i++)
    mask[ids[i]] = i >= n_keep ? 1 : 0;
}

int crate_mask_random(uint8_t *mask, size_t *ids_shuffle, double *noise, crate_rng *rng,
                      double ratio, size_t n) {
  /* mask, ids_shuffle, noise: (n) */
  CRATE_ASSERT(mask && ids_shuffle && noise && rng);
  size_t n_keep;
  CRATE_TRY(draw(&n_keep, noise, ids_shuffle, rng, ratio, n));
  /* Heap sort by the total order (xi, index): the same permutation as any
   * stable sort by xi, in O(n log n) and without allocation. */
  for (size_t i = n / 2; i-- > 0;)
    sift_down(ids_shuffle, noise, i, n);
  for (size_t end = n; end-- > 1;) {
    size_t tmp = ids_shuffle[0];
    ids_shuffle[0] = ids_shuffle[end];
    ids_shuffle[end] = tmp;
    sift_down(ids_shuffle, noise, 0, end);
  }
  write_mask(mask, ids_shuffle, n_keep, n);
  return CRATE_STATUS_OK;
}

int crate_mask_random_ref(uint8_t *mask, size_t *ids_shuffle, double *noise, crate_rng *rng,
                          double ratio, size_t n) {
  CRATE_ASSERT(mask && ids_shuffle && noise && rng);
  size_t n_keep;
  CRATE_TRY(draw(&n_keep, noise, ids_shuffle, rng, ratio, n));
  /* Insertion sort: shifts only past strictly larger keys, hence stable. */
  for (size_t i = 1; i < n; i++) {
    size_t v = ids_shuffle[i], j = i;
    while (j > 0 && noise[ids_shuffle[j - 1]] > noise[v]) {
      ids_shuffle[j] = ids_shuffle[j - 1];
      j--;
    }
    ids_shuffle[j] = v;
  }
  write_mask(mask, ids_shuffle, n_keep, n);
  return CRATE_STATUS_OK;
}

int crate_mask_random_batch(uint8_t *mask, size_t *ids_shuffle, double *noise, uint64_t seed,
                            uint32_t step, uint32_t sample0, double ratio, size_t B, size_t n) {
  /* mask, ids_shuffle, noise: (B, n) */
  CRATE_ASSERT(mask && ids_shuffle && noise);
  for (size_t b = 0; b < B; b++) {
    crate_rng rng;
    crate_rng_init_at(&rng, seed, CRATE_RNG_MASK, step, (uint32_t)(sample0 + b));
    CRATE_TRY(crate_mask_random(mask + b * n, ids_shuffle + b * n, noise + b * n, &rng, ratio, n));
  }
  return CRATE_STATUS_OK;
}
