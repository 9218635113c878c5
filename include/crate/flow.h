/* flow.h: structured denoising and structured diffusion of token sets, the
 * ISTA sparsification block and the attention-only (AoT) layer
 * (MATH.md §1.6, §2.4, §2.6, §5).
 *
 * Conventions (MATH.md §0, as in rate.h):
 *  - Tokens are columns of Z (d x N); memory is token-major, so every Z
 *    argument is a row-major (N, d) array holding Z^T.
 *  - eps2 holds epsilon^2; beta_k = p_k / (N eps2).
 *  - Depth time s in [0, T]; an L-layer flow uses kappa = T / L.
 *  - Everything is double precision: this is the reference code.  Functions
 *    allocate their workspace per call and free it on every path.
 *
 * Flows (src/math/flow.c, MATH.md §5):
 *   structured denoising  dZ/ds = -F(Z | U(s))   (encoder),
 *   structured diffusion  dY/ds = +F(Y | U(T-s)) (decoder, its time reversal),
 * where F is grad_Z R^c (exact) or one of its approximations (field below).
 * Subspaces are piecewise constant in depth: U(s) = U^l on [l kappa,
 * (l+1) kappa).  Encoder layer l uses U^l; decoder layer j (0-based) uses
 * U^{L-1-j}, so it is the discrete time reversal of encoder layer L-1-j.
 *
 * Errors: EINVAL (NULL pointers, N == 0, malformed subspaces, eps2 <= 0,
 * kappa <= 0, L == 0, non-finite input or parameter, unknown enum; messages
 * start with "flow: ", "lasso: " or "aot: "), ENOMEM, ENUMERIC (a step
 * produced a non-finite value, a Gram matrix overflowed, or the fixed-point
 * inverse did not converge).  After EINVAL no output is written.
 */
#ifndef CRATE_FLOW_H
#define CRATE_FLOW_H

#include "crate/rate.h"

/* ---- the vector field ------------------------------------------------------ */

typedef enum crate_flow_field {
  /* F = grad_Z R^c(Z | U), exact (p x p push-through form, MATH.md §1.4). */
  CRATE_FLOW_FIELD_EXACT = 0,
  /* F = first-order Neumann approximation (MATH.md §2.1). */
  CRATE_FLOW_FIELD_NEUMANN = 1,
  /* F = sum_k beta_k U_k U_k^T Z - MSSA(Z | U) with the softmax kernel
   * (MATH.md §2.2); with sum_k U_k U_k^T = I and equal ranks this is
   * beta Z - beta sum_k U_k SSA(Z | U_k). */
  CRATE_FLOW_FIELD_MSSA = 2,
} crate_flow_field;

typedef enum crate_flow_method {
  CRATE_FLOW_EULER = 0, /* forward Euler: the CRATE layer (MATH.md §5.2) */
  CRATE_FLOW_HEUN = 1,  /* Heun (explicit trapezoid) on the same grid */
} crate_flow_method;

/* Options shared by every flow call (a value struct; no defaults hidden). */
typedef struct crate_flow_opts {
  double eps2;              /* epsilon^2 > 0 */
  crate_flow_field field;   /* which F */
  crate_flow_method method; /* Euler or Heun */
} crate_flow_opts;

/** F(Z | U) for the chosen field.  Z: (N, U->d); F: (N, U->d), must not
 *  alias Z.  @return OK, EINVAL, ENOMEM or ENUMERIC. */
CRATE_API int crate_flow_field_eval(const double *Z, size_t N, const crate_subspaces *U,
                                    double eps2, crate_flow_field field, double *F);

/* ---- one layer ------------------------------------------------------------- */

/** One encoder step of size kappa > 0 on dZ/ds = -F(Z | U):
 *  Euler  out = Z - kappa F(Z);
 *  Heun   Z* = Z - kappa F(Z), out = Z - kappa/2 (F(Z) + F(Z*)).
 *  Z, out: (N, U->d); out may alias Z (not partially).  opt->method selects
 *  the scheme, opt->field the field. */
CRATE_API int crate_flow_encode_step(const double *Z, size_t N, const crate_subspaces *U,
                                     double kappa, const crate_flow_opts *opt, double *out);

/** One decoder step (explicit time reversal) on dY/ds = +F(Y | U):
 *  Euler  out = Y + kappa F(Y);
 *  Heun   Y* = Y + kappa F(Y), out = Y + kappa/2 (F(Y) + F(Y*)).
 *  Y, out: (N, U->d); out may alias Y. */
CRATE_API int crate_flow_decode_step(const double *Y, size_t N, const crate_subspaces *U,
                                     double kappa, const crate_flow_opts *opt, double *out);

/* Report of crate_flow_encode_step_inverse. */
typedef struct crate_flow_inverse_info {
  size_t iters;       /* fixed-point iterations taken */
  double increment;   /* last ||Y_{t+1} - Y_t||_F / ||Z'||_F */
  double contraction; /* observed contraction factor: max over t of
                       * ||Y_{t+1} - Y_t|| / ||Y_t - Y_{t-1}||, over the
                       * iterations whose previous increment lies above the
                       * round-off floor (1e3 * DBL_EPSILON * ||Z'||); 0 if
                       * there were none */
  double rate;        /* geometric-mean ratio over the same iterations */
  bool converged;     /* increment <= tol reached within max_iter */
} crate_flow_inverse_info;

/** Exact inverse of one encoder step (MATH.md §5.3): finds Y with
 *  E_kappa(Y) = Z' by the iteration Y_0 = Z', Y_{t+1} = Y_t + (Z' - E(Y_t)).
 *  For Euler this is Y_{t+1} = Z' + kappa F(Y_t), a contraction with factor
 *  about kappa Lip when kappa Lip < 1.  For Heun it is the same fixed point
 *  of the Heun step.  Stops when ||Y_{t+1} - Y_t||_F <= tol ||Z'||_F (tol in
 *  (0, 1), e.g. 1e-14) or after max_iter >= 1 iterations.
 *  Zp: (N, U->d) = Z'; Y: (N, U->d) result, must not alias Zp.
 *  info: may be NULL; filled on OK and on ENUMERIC.
 *  @return OK, EINVAL, ENOMEM, or ENUMERIC when the iteration did not reach
 *  tol in max_iter steps or diverged (Y then holds the last finite iterate). */
CRATE_API int crate_flow_encode_step_inverse(const double *Zp, size_t N, const crate_subspaces *U,
                                             double kappa, const crate_flow_opts *opt, double tol,
                                             size_t max_iter, double *Y,
                                             crate_flow_inverse_info *info);

/** Local Lipschitz estimate of the field at Z (MATH.md §1.6) from central
 *  finite-difference Jacobian-vector products
 *  J v ~ (F(Z + h v) - F(Z - h v)) / (2h), h = 1e-5 * max(rms(Z),
 *  beta_max^{-1/2}), for unit v.
 *  - Exact and Neumann fields: J is the (symmetric) Hessian of R^c or of its
 *    truncated series.  Power iteration's Krylov space is searched by
 *    Lanczos with full reorthogonalisation, restarted every min(N d, 64)
 *    products; *lip = max |Ritz value|, which converges to ||J(Z)||_2 from
 *    below even when the top eigenvalues are clustered (plain power
 *    iteration stalls there).  Stops at Ritz residual <= 1e-8 |theta|, when
 *    the Krylov space is exhausted, or after max_iter products.
 *  - MSSA field: J is not symmetric; plain power iteration,
 *    *lip = max_t ||J v_t|| (a lower bound on ||J||_2), stopping when it
 *    changes by < 1e-10 relative or after max_iter products.
 *  Either way this is the local constant at Z, a lower bound on the global
 *  Lipschitz constant.  The start vector is Gaussian from rng (advanced).
 *  Only opt->eps2 and opt->field are read.  Z: (N, U->d).  max_iter >= 1. */
CRATE_API int crate_flow_lipschitz(const double *Z, size_t N, const crate_subspaces *U,
                                   const crate_flow_opts *opt, size_t max_iter, crate_rng *rng,
                                   double *lip);

/* ---- L layers at fixed horizon T ------------------------------------------- */

/** L-layer encoder at fixed horizon T > 0: kappa = T / L, layer l maps Z^l to
 *  Z^{l+1} with crate_flow_encode_step and subspaces U[nU == 1 ? 0 : l].
 *  U: array of nU views, nU == 1 (shared) or nU == L (per layer); all views
 *  share d = U[0].d (K and ranks may differ).
 *  Z0: (N, d) input; ZL: (N, d) output, may alias Z0.
 *  traj: (L + 1, N, d) or NULL; block l receives Z^l (traj[0] = Z0,
 *  traj[L] = ZL).  On ENUMERIC (a layer blew up; the message names it) ZL
 *  is untouched and traj holds the layers computed so far. */
CRATE_API int crate_flow_encode(const double *Z0, size_t N, const crate_subspaces *U, size_t nU,
                                size_t L, double T, const crate_flow_opts *opt, double *ZL,
                                double *traj);

/** L-layer decoder, the time reversal of crate_flow_encode: starting from
 *  hat Z^L = ZL, decoder layer j = 0..L-1 maps hat Z^{l+1} to hat Z^l,
 *  l = L-1-j, with crate_flow_decode_step and subspaces U[nU == 1 ? 0 : l].
 *  ZL: (N, d) input; Z0: (N, d) output, may alias ZL.
 *  traj: (L + 1, N, d) or NULL, indexed by depth like the encoder's: block l
 *  receives hat Z^l (traj[L] = ZL, traj[0] = Z0). */
CRATE_API int crate_flow_decode(const double *ZL, size_t N, const crate_subspaces *U, size_t nU,
                                size_t L, double T, const crate_flow_opts *opt, double *Z0,
                                double *traj);

/* ---- ISTA and the non-negative LASSO (src/math/ista.c, MATH.md §2.4) --------
 * Dictionary D: (d, m) row-major, mapping codes (m) to signals (d).  Codes
 * Zc: (N, m) and signals Y: (N, d), one token per row. */

typedef enum crate_lasso_form {
  /* ReLU(z + eta D^T (z - D z) - eta lambda): two products, cheaper. */
  CRATE_LASSO_FORM_2PRODUCT = 0,
  /* ReLU(z + eta D^T z - eta D^T (D z) - eta lambda): the official code's
   * three products (Ma-Lab-Berkeley/CRATE). */
  CRATE_LASSO_FORM_3PRODUCT = 1,
} crate_lasso_form;

/** The CRATE ISTA block: one proximal-gradient step of size eta > 0 on
 *  lambda ||Z||_1 + 1/2 ||Z_in - D Z||^2 over Z >= 0, warm-started at
 *  Z = Z_in.  D: (d, d) square; Z, out: (N, d); out may alias Z.
 *  lambda >= 0.  @return OK, EINVAL ("lasso: ..."), ENOMEM, or ENUMERIC
 *  when a pre-activation overflows (checked before the ReLU, which would
 *  otherwise map -inf and NaN to 0); out is then untouched. */
CRATE_API int crate_lasso_ista_step(const double *Z, size_t N, const double *D, size_t d,
                                    double eta, double lambda, crate_lasso_form form, double *out);

/** Non-negative LASSO objective lambda sum_ij |Zc_ij| + 1/2 ||Y - D Zc||_F^2
 *  (the constraint Zc >= 0 is not checked).  Zc: (N, m); Y: (N, d);
 *  D: (d, m).  Sums accumulate in double. */
CRATE_API int crate_lasso_objective(const double *Zc, size_t N, const double *Y, const double *D,
                                    size_t d, size_t m, double lambda, double *out);

/** Iterated ISTA (Beck & Teboulle 2009) for the non-negative LASSO:
 *  Zc^{t+1} = ReLU(Zc^t - eta D^T (D Zc^t - Y) - eta lambda), t < iters.
 *  Zc: (N, m), in: the start Zc^0, out: Zc^iters.  Y: (N, d); D: (d, m).
 *  objective: (iters + 1) or NULL; entry t receives the objective at Zc^t.
 *  Monotone for eta <= 1 / ||D||_2^2.  iters may be 0.
 *  @return OK, EINVAL, ENOMEM, or ENUMERIC when a pre-activation overflows
 *  (eta far too large for D); Zc then holds the last finite iterate. */
CRATE_API int crate_lasso_ista(const double *Y, size_t N, const double *D, size_t d, size_t m,
                               double eta, double lambda, size_t iters, double *Zc,
                               double *objective);

/* ---- attention-only layer (src/math/aot.c, MATH.md §2.6) -------------------- */

/** One AoT layer:
 *    Z <- Z + eta sum_k U_k U_k^T Z phi(Z^T U_k U_k^T Z),
 *    phi = h o softmax_col,  h(x) = tau 1{x > tau} elementwise,
 *  so token j gains eta sum_k sum_i phi_k[i, j] U_k U_k^T z_i, with
 *  phi_k[., j] thresholded from the softmax over keys i of <U_k^T z_i,
 *  U_k^T z_j> (max-subtracted; no 1/sqrt(p) scale, no beta).
 *  eta > 0 and tau in (0, 1], finite.  Z, out: (N, U->d); out may alias Z. */
CRATE_API int crate_aot_layer(const double *Z, size_t N, const crate_subspaces *U, double eta,
                              double tau, double *out);

/** Draws N tokens of the AoT mixture (MATH.md §2.6): token i belongs to
 *  cluster k = floor(i K / N) (balanced contiguous blocks) and is
 *  z_i = U_k a_i + sum_{j != k} U_j e_{i,j}, a_i ~ N(0, I_{p_k}),
 *  e_{i,j} ~ N(0, delta^2 I_{p_j}); per token the normals are drawn in the
 *  order a_i, then e_{i,j} for j = 0..K-1, j != k.  The theorem assumes
 *  mutually orthogonal equal-rank bases; this function only needs a valid
 *  view.  delta >= 0.  Z: (N, U->d); labels: (N) or NULL. */
CRATE_API int crate_aot_sample(const crate_subspaces *U, size_t N, double delta, crate_rng *rng,
                               double *Z, size_t *labels);

/** Per-cluster SNR(Z_k) = ||U_k U_k^T Z_k||_F / ||(I - U_k U_k^T) Z_k||_F
 *  over the tokens with labels[i] == k (MATH.md §2.6).  The residual is
 *  formed explicitly (no cancellation).  A cluster with zero residual gets
 *  +inf.  Z: (N, U->d); labels: (N), each < K; snr: (K).  @return OK or
 *  EINVAL (also when a cluster has no tokens). */
CRATE_API int crate_aot_snr(const double *Z, size_t N, const crate_subspaces *U,
                            const size_t *labels, double *snr);

#endif
