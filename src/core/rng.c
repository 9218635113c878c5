/* rng.c: Philox4x32-10 (Salmon et al., SC 2011) behind an explicit state.
 *
 * The counter is {block, sample, step, stream} and the key is the 64-bit
 * seed, as STYLE.md §9.6 lays out.  Known-answer vectors are checked by
 * tests/test_core.c.  Non-goal: cryptographic use.
 */
#include "internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void crate_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    if (round > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void crate_rng_init_at(crate_rng *rng, uint64_t seed, uint32_t stream, uint32_t step,
                       uint32_t sample) {
  rng->key[0] = (uint32_t)seed;
  rng->key[1] = (uint32_t)(seed >> 32);
  rng->ctr[0] = 0;
  rng->ctr[1] = sample;
  rng->ctr[2] = step;
  rng->ctr[3] = stream;
  rng->buf[0] = rng->buf[1] = rng->buf[2] = rng->buf[3] = 0;
  rng->used = 4;
  rng->has_spare = 0;
  rng->spare = 0.0;
}

void crate_rng_init(crate_rng *rng, uint64_t seed, uint32_t stream) {
  crate_rng_init_at(rng, seed, stream, 0, 0);
}

uint32_t crate_rng_u32(crate_rng *rng) {
  if (rng->used >= 4) {
    crate_philox4x32(rng->ctr, rng->key, rng->buf);
    /* The block word carries into the sample word so that a stream never
     * repeats; 2^32 blocks per sample position is 64 GiB of draws. */
    if (++rng->ctr[0] == 0)
      rng->ctr[1]++;
    rng->used = 0;
  }
  return rng->buf[rng->used++];
}

uint64_t crate_rng_u64(crate_rng *rng) {
  uint64_t hi = crate_rng_u32(rng);
  return (hi << 32) | crate_rng_u32(rng);
}

double crate_rng_uniform(crate_rng *rng) {
  return (double)(crate_rng_u64(rng) >> 11) * 0x1.0p-53;
}

float crate_rng_uniformf(crate_rng *rng) {
  return (float)(crate_rng_u32(rng) >> 8) * 0x1.0p-24f;
}

uint32_t crate_rng_below(crate_rng *rng, uint32_t n) {
  CRATE_ASSERT(n > 0);
  /* Lemire's multiply-shift with rejection: unbiased. */
  uint64_t m = (uint64_t)crate_rng_u32(rng) * n;
  uint32_t lo = (uint32_t)m;
  if (lo < n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    while (lo < threshold) {
      m = (uint64_t)crate_rng_u32(rng) * n;
      lo = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

double crate_rng_normal(crate_rng *rng) {
  if (rng->has_spare) {
    rng->has_spare = 0;
    return rng->spare;
  }
  /* Box-Muller in double; u1 in (0, 1] so the log is finite. */
  double u1 = 1.0 - crate_rng_uniform(rng);
  double u2 = crate_rng_uniform(rng);
  double r = sqrt(-2.0 * log(u1));
  double th = 6.283185307179586476925286766559 * u2;
  rng->spare = r * sin(th);
  rng->has_spare = 1;
  return r * cos(th);
}

void crate_rng_normal_fill(crate_rng *rng, double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = crate_rng_normal(rng);
}

double crate_rng_sign(crate_rng *rng) {
  return (crate_rng_u32(rng) & 1u) ? 1.0 : -1.0;
}
