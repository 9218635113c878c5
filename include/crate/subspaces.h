/* subspaces.h: a non-owning view of K subspace bases U_[K] (MATH.md §0).
 *
 * U_k is d x p_k with orthonormal columns.  Storage follows the network's qkv
 * matrix: the bases are stacked *transposed*, so Ut is a row-major
 * (sum_k p_k, d) array whose rows [off_k, off_k + p_k) hold U_k^T
 * (off_k = p_0 + ... + p_{k-1}).  Then X_k^T = Z^T U_k is one GEMM on the
 * token-major (N, d) array Z^T.
 */
#ifndef CRATE_SUBSPACES_H
#define CRATE_SUBSPACES_H

#include "crate/rng.h"

typedef struct crate_subspaces {
  size_t d;         /* ambient dimension */
  size_t K;         /* number of subspaces */
  const size_t *p;  /* (K) ranks, 1 <= p_k <= d */
  const double *Ut; /* (sum_k p_k, d) row-major, block k = U_k^T */
} crate_subspaces;

typedef enum crate_subspaces_kind {
  /* Mutually orthogonal subspaces: one QR of a d x sum(p_k) Gaussian matrix.
   * Needs sum_k p_k <= d. */
  CRATE_SUBSPACES_ORTHOGONAL = 0,
  /* Each U_k is an independent random orthonormal basis (QR of its own
   * d x p_k Gaussian), so different subspaces are incoherent but not
   * mutually orthogonal. */
  CRATE_SUBSPACES_INCOHERENT = 1,
} crate_subspaces_kind;

/** @return sum_k p_k (0 for a malformed view). */
CRATE_API size_t crate_subspaces_total(const crate_subspaces *U);

/** @return the row offset of block k in Ut. */
CRATE_API size_t crate_subspaces_offset(const crate_subspaces *U, size_t k);

/** Validates a view: d, K > 0, 1 <= p_k <= d, finite entries and, when
 *  orth_tol >= 0, max |U_k^T U_k - I| <= orth_tol for every k.
 *  @return CRATE_STATUS_OK or CRATE_STATUS_EINVAL with a message. */
CRATE_API int crate_subspaces_check(const crate_subspaces *U, double orth_tol);

/** Draws random orthonormal bases into Ut, a caller-owned
 *  (sum_k p_k, d) array.  @return OK, EINVAL (shapes), EBACKEND (LAPACK). */
CRATE_API int crate_subspaces_random(double *Ut, size_t d, size_t K,
                                     const size_t *p, crate_subspaces_kind kind,
                                     crate_rng *rng);

/** lambda_max(sum_k U_k U_k^T): 1 for mutually orthogonal subspaces, at most
 *  K in general.  The descent constant of MATH.md §1.6 is beta * this. */
CRATE_API int crate_subspaces_lambda_max(const crate_subspaces *U, double *out);

#endif
