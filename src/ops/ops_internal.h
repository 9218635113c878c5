/* ops_internal.h: helpers shared by the files of src/ops/ (never installed).
 * Only the files of src/ops/ include it. */
#ifndef CRATE_OPS_INTERNAL_H
#define CRATE_OPS_INTERNAL_H

#include <string.h>

#include "crate/ops.h"
#include "internal.h"

/* Column block used by the double-accumulating column sums: a stack array of
 * this many doubles replaces any allocation. */
#define CRATE__OPS_COLBLOCK 64

/* g (cols) += sum over the rows of x (rows, cols), accumulated in double.
 * Parallel over blocks of columns (each column summed over the rows in
 * order, so the result does not depend on the thread count). */
void crate__ops_colsum_acc(float *g, const float *x, size_t rows, size_t cols);

/* ---- speed helpers (issue 6) ------------------------------------------------
 *
 * CRATE__OPS_CLONES compiles a hot loop for AVX-512, AVX2 and the baseline
 * and picks one at load time (GCC target_clones, an ifunc on glibc).  The
 * build uses ISO C (-std=c11, so -ffp-contract=off) and every reduction
 * keeps an explicit lane order (CRATE__OPS_LANES partial sums combined in a
 * fixed tree), so all clones give bit-identical results.
 *
 * CRATE__OMP(clause) expands to an OpenMP pragma in an OpenMP build and to
 * nothing otherwise.  Every parallel loop of src/ops/ writes disjoint
 * outputs per iteration and keeps each reduction inside one iteration, so
 * results do not depend on the thread count either. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define CRATE__OPS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CRATE__OPS_CLONES
#endif

#define CRATE__PRAGMA(x) _Pragma(#x)
#if defined(CRATE_HAVE_OPENMP)
#define CRATE__OMP(x) CRATE__PRAGMA(omp x)
#else
#define CRATE__OMP(x)
#endif

/* CRATE__SIMD(clause): "#pragma omp simd clause" where the compiler takes
 * OpenMP SIMD pragmas (-fopenmp-simd or -fopenmp), else nothing.  Used only
 * for max reductions, which are exact in any order. */
#if defined(CRATE_HAVE_OPENMP) || defined(CRATE_HAVE_OMP_SIMD)
#define CRATE__SIMD(x) CRATE__PRAGMA(omp simd x)
#else
#define CRATE__SIMD(x)
#endif

/* Work (elements) below which a row loop stays on one thread. */
#define CRATE__OPS_PAR_MIN 32768

/* Partial sums per reduction: reductions run on 8-wide double vectors (GNU C
 * vector extensions: element-wise semantics, so the compiler may not
 * reorder them; each ISA clone computes the same bits), combined by
 * crate__hsum8 in a fixed tree. */
#define CRATE__OPS_LANES 8
typedef float crate__v8f __attribute__((vector_size(32)));
typedef double crate__v8d __attribute__((vector_size(64)));

/* *v = the 8 floats at p (any alignment), widened to double.  (Vectors go
 * by pointer: passing them by value trips GCC's -Wpsabi note.) */
static inline void crate__ld8(crate__v8d *v, const float *p) {
  crate__v8f f;
  memcpy(&f, p, sizeof f);
  *v = __builtin_convertvector(f, crate__v8d);
}

/* Fixed-order sum of the 8 lanes. */
static inline double crate__hsum8(const crate__v8d *v) {
  const crate__v8d a = *v;
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* exp(x) for x <= 0 in float, branch-free so that loops over it vectorise:
 * Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, and the Cephes expf
 * polynomial (relative error below 2.5e-7, about 2 ulp, against expf's 1);
 * x below -87 is clamped (exp(-87) = 1.6e-38, far below the float
 * resolution of a softmax sum >= 1).  NaN inputs give NaN. */
static inline float crate__expf_neg(float x) {
  const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  x = x < -87.0f ? -87.0f : x;
  const float kf = (x * log2e + shift) - shift;
  const float r = (x - kf * ln2_hi) - kf * ln2_lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * (r * r) + r + 1.0f;
  /* 2^k through the exponent bits; k is clamped to [-126, 0] (a NaN x maps
   * to -126 here and stays NaN through e) */
  const float kc = kf > 0.0f ? 0.0f : (kf >= -126.0f ? kf : -126.0f);
  union {
    int32_t i;
    float f;
  } u;
  u.i = ((int32_t)kc + 127) * (1 << 23);
  return e * u.f;
}

#endif
