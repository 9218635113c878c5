/* rng.h: explicit-state, counter-based random numbers (Philox4x32-10).
 *
 * STYLE.md §9.6.  A draw is a pure function of (seed, stream, step, sample,
 * block), so results never depend on thread or rank count.  The state is a
 * plain struct: copy it to checkpoint it.  Salmon et al., "Parallel Random
 * Numbers: As Easy as 1, 2, 3" (SC 2011).
 */
#ifndef CRATE_RNG_H
#define CRATE_RNG_H

#include "crate/defs.h"

/* Streams keep unrelated uses of one seed independent. */
typedef enum crate_rng_stream {
  CRATE_RNG_INIT = 0,  /* parameter initialisation, random bases */
  CRATE_RNG_DATA = 1,  /* data order */
  CRATE_RNG_MASK = 2,  /* masking */
  CRATE_RNG_NOISE = 3, /* noise, samples */
  CRATE_RNG_PROBE = 4, /* Hutchinson probes */
} crate_rng_stream;

typedef struct crate_rng {
  uint32_t key[2];     /* seed, low and high words */
  uint32_t ctr[4];     /* {block, sample, step, stream}; block advances */
  uint32_t buf[4];     /* current 128-bit output block */
  uint32_t used;       /* words of buf already consumed (4 = empty) */
  uint32_t has_spare;  /* 1 if spare holds a cached normal */
  double spare;        /* second Box-Muller normal */
} crate_rng;

/** One Philox4x32-10 block: out = philox(ctr, key).  Pure function. */
CRATE_API void crate_philox4x32(const uint32_t ctr[4], const uint32_t key[2],
                                uint32_t out[4]);

/** Seeds a generator on a stream, at step 0, sample 0. */
CRATE_API void crate_rng_init(crate_rng *rng, uint64_t seed, uint32_t stream);

/** Seeds a generator at an explicit (seed, stream, step, sample) position, so
 *  that e.g. the mask of sample i at epoch e is independent of batch order. */
CRATE_API void crate_rng_init_at(crate_rng *rng, uint64_t seed, uint32_t stream,
                                 uint32_t step, uint32_t sample);

/** @return 32 uniform random bits. */
CRATE_API uint32_t crate_rng_u32(crate_rng *rng);
/** @return 64 uniform random bits. */
CRATE_API uint64_t crate_rng_u64(crate_rng *rng);
/** @return a uniform double in [0, 1) with 53 random bits. */
CRATE_API double crate_rng_uniform(crate_rng *rng);
/** @return a uniform float in [0, 1): (x >> 8) * 2^-24. */
CRATE_API float crate_rng_uniformf(crate_rng *rng);
/** @return an unbiased uniform integer in [0, n); n must be > 0. */
CRATE_API uint32_t crate_rng_below(crate_rng *rng, uint32_t n);
/** @return a standard normal draw (Box-Muller in double). */
CRATE_API double crate_rng_normal(crate_rng *rng);
/** Fills x[0..n) with standard normal draws. */
CRATE_API void crate_rng_normal_fill(crate_rng *rng, double *x, size_t n);
/** @return +1.0 or -1.0 with equal probability (Rademacher). */
CRATE_API double crate_rng_sign(crate_rng *rng);

#endif
