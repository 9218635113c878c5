/* rate.h: coding rates, rate reduction and their gradients (MATH.md §1-2).
 *
 * Conventions (MATH.md §0):
 *  - Tokens are columns of Z (d x N); memory is token-major, so every Z
 *    argument is a row-major (N, d) array holding Z^T.
 *  - eps2 holds epsilon^2, the squared coding precision.  No parameter holds
 *    epsilon.  The official CRATE measurement utility's eps=0.01 is
 *    eps2 = 0.01.
 *  - R(Z)      = 1/2 logdet(I + alpha Z^T Z),  alpha  = d   / (N eps2).
 *  - R^c(Z|U)  = sum_k 1/2 logdet(I + beta_k X_k^T X_k),
 *                X_k = U_k^T Z,                beta_k = p_k / (N eps2).
 *  - Log-dets are natural logs via Cholesky of the smaller Gram matrix.
 *  - All functions compute in double precision (the reference code).
 * Functions return CRATE_STATUS_OK, EINVAL (shapes, eps2 <= 0, non-finite
 * input, malformed subspace view; messages start with "rate: "), ENOMEM, or
 * ENUMERIC (a Gram matrix that is not SPD or overflows, i.e. Z far too
 * large).  After EINVAL no output is written.  Bases are checked for shape and
 * finiteness only: the formulas hold for any U_k, orthonormal or not.
 * Outputs (N, d) must not alias Z.
 */
#ifndef CRATE_RATE_H
#define CRATE_RATE_H

#include "crate/subspaces.h"

/** R_eps(Z).  Z: (N, d).  Writes the rate to *out. */
CRATE_API int crate_rate_R(const double *Z, size_t N, size_t d, double eps2,
                           double *out);

/** R^c_eps(Z | U_[K]).  Z: (N, U->d). */
CRATE_API int crate_rate_Rc(const double *Z, size_t N, const crate_subspaces *U,
                            double eps2, double *out);

/** Delta R = R(Z) - R^c(Z | U). */
CRATE_API int crate_rate_delta(const double *Z, size_t N,
                               const crate_subspaces *U, double eps2,
                               double *out);

/** Sparse rate reduction objective with the l1 relaxation:
 *  R(Z) - R^c(Z | U) - lambda * ||Z||_1  (MATH.md §1.3).  lambda >= 0. */
CRATE_API int crate_rate_srr(const double *Z, size_t N, const crate_subspaces *U,
                             double eps2, double lambda, double *out);

/** grad_Z R = alpha (I + alpha Z Z^T)^{-1} Z.  G: (N, d), overwritten. */
CRATE_API int crate_rate_R_grad(const double *Z, size_t N, size_t d,
                                double eps2, double *G);

typedef enum crate_rate_form {
  CRATE_RATE_FORM_PP = 0, /* p x p push-through form, O(p^2 N + p^3) */
  CRATE_RATE_FORM_NN = 1, /* N x N form, O(p N^2 + N^3) */
} crate_rate_form;

/** Exact grad_Z R^c = sum_k beta_k U_k (I + beta_k X_k X_k^T)^{-1} X_k (PP)
 *  = sum_k beta_k U_k X_k (I + beta_k X_k^T X_k)^{-1} (NN).  G: (N, d). */
CRATE_API int crate_rate_Rc_grad(const double *Z, size_t N,
                                 const crate_subspaces *U, double eps2,
                                 crate_rate_form form, double *G);

/** First-order Neumann approximation (MATH.md §2.1):
 *  sum_k beta_k U_k X_k - beta_k^2 U_k X_k X_k^T X_k.  G: (N, d). */
CRATE_API int crate_rate_Rc_grad_neumann(const double *Z, size_t N,
                                         const crate_subspaces *U, double eps2,
                                         double *G);

typedef enum crate_mssa_kernel {
  CRATE_MSSA_SOFTMAX = 0, /* A_k = softmax_col(X_k^T X_k) (MATH.md §2.2): query
                           * j normalised over keys i, max-subtracted (P9) */
  CRATE_MSSA_LINEAR = 1,  /* A_k = X_k^T X_k, the Neumann-consistent kernel */
} crate_mssa_kernel;

/** Idealised MSSA(Z | U) = sum_k beta_k U_k X_k A_k (MATH.md §2.2), with
 *  beta_k = p_k / (N eps2).  With the linear kernel and sum_k U_k U_k^T = I,
 *  beta Z - beta MSSA equals the Neumann gradient.  out: (N, d). */
CRATE_API int crate_rate_mssa(const double *Z, size_t N,
                              const crate_subspaces *U, double eps2,
                              crate_mssa_kernel kernel, double *out);

#endif
