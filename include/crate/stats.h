/* stats.h: sample-quality statistics for generated distributions (MATH.md
 * §6 row C7): unbiased MMD^2 with a Gaussian kernel and the median-heuristic
 * bandwidth, sliced Wasserstein-2, per-component PCA subspace error and
 * component frequencies.
 *
 * Samples are row-major (n, d) arrays, one point per row.  Everything is
 * double precision with double accumulation; results are deterministic (the
 * sliced W2 directions come from an explicit generator).  Functions return
 * OK, EINVAL ("stats: ..." for NULLs, sizes, non-finite input or
 * parameters), ENOMEM, or EBACKEND (LAPACK).
 */
#ifndef CRATE_STATS_H
#define CRATE_STATS_H

#include "crate/rng.h"

/* At most this many pooled points (evenly strided) enter the median
 * heuristic, which then costs O(CRATE_STATS_MEDIAN_MAX^2) memory and time. */
#define CRATE_STATS_MEDIAN_MAX 1000

/** Median heuristic (Gretton et al. 2012): bw = median of the pairwise
 *  Euclidean distances of the pooled sample {X, Y} (X: (n, d), Y: (m, d);
 *  Y may be NULL with m = 0), over at most CRATE_STATS_MEDIAN_MAX pooled
 *  points.  @return EINVAL also when fewer than 2 points or all coincide. */
CRATE_API int crate_stats_median_bandwidth(double *bw, const double *X, size_t n, const double *Y,
                                           size_t m, size_t d);

/** Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the kernel
 *  k(x, y) = exp(-||x - y||^2 / (2 bw^2)):
 *    1/(n(n-1)) sum_{i!=j} k(x_i,x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i,y_j)
 *    - 2/(nm) sum_{i,j} k(x_i,y_j).
 *  Can be negative.  X: (n, d), Y: (m, d); n, m >= 2; bw > 0 finite. */
CRATE_API int crate_stats_mmd2(double *mmd2, const double *X, size_t n, const double *Y, size_t m,
                               size_t d, double bw);

/** Sliced W2: sqrt of the mean over n_proj random unit directions theta
 *  (drawn from rng) of W2^2 between the 1-D projections, computed exactly from
 *  the sorted samples (quantile functions; n and m may differ).
 *  X: (n, d), Y: (m, d). */
CRATE_API int crate_stats_sliced_w2(double *sw2, const double *X, size_t n, const double *Y,
                                    size_t m, size_t d, size_t n_proj, crate_rng *rng);

/** PCA subspace error ||Uhat Uhat^T - U U^T||_F, where Uhat spans the top p
 *  eigenvectors of the uncentred second moment (1/n_k) sum x x^T of the rows
 *  of X (n, d) with labels[i] == k (all rows when labels is NULL).  The model
 *  has zero mean, so no centring.  Ut: (p, d) = U^T, orthonormal rows.
 *  @param count  (optional) receives n_k.  EINVAL if n_k < p. */
CRATE_API int crate_stats_subspace_error(double *err, size_t *count, const double *X, size_t n,
                                         size_t d, const size_t *labels, size_t k, const double *Ut,
                                         size_t p);

/** labels[i] = argmax_k P[i, k] (first on ties).  P: (M, K). */
CRATE_API int crate_stats_argmax(size_t *labels, const double *P, size_t M, size_t K);

/** Frequencies freq[k] = #{labels == k} / M and their binomial standard
 *  errors se[k] = sqrt(freq (1 - freq) / M) (se may be NULL).  EINVAL if a
 *  label is >= K. */
CRATE_API int crate_stats_frequencies(double *freq, double *se, const size_t *labels, size_t M,
                                      size_t K);

#endif
