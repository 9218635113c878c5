/* rate.c: coding rates, rate reduction and their gradients, the first-order
 * Neumann gradient and the idealised multi-head subspace self-attention
 * (MATH.md §1.1-1.4, §2.1-2.2).
 *
 * Memory (MATH.md §0): every Z is the row-major (N, d) array Z^T, and block k
 * of U->Ut is the (p_k, d) array U_k^T.  So Y_k := X_k^T = Z^T U_k is one
 * GEMM, an (N, p_k) array whose row i is token i's head-k coordinates.  In
 * this notation (X^T X = Y Y^T, X X^T = Y^T Y):
 *   R        = 1/2 logdet(I_N + alpha Y Y^T) = 1/2 logdet(I_d + alpha Y^T Y)
 *              with Y = Z^T,  alpha = d / (N eps2)
 *   R^c      = sum_k 1/2 logdet(I + beta_k Y_k Y_k^T),  beta_k = p_k / (N eps2)
 *   (grad R^c)^T = sum_k beta_k W_k U_k^T,
 *              W_k = (I_N + beta_k Y_k Y_k^T)^{-1} Y_k     (NN form)
 *                  = Y_k (I_p + beta_k Y_k^T Y_k)^{-1}     (PP form, push-through)
 *   Neumann  = sum_k beta_k (Y_k - beta_k Y_k (Y_k^T Y_k)) U_k^T
 *   MSSA^T   = sum_k beta_k A_k^T Y_k U_k^T,  A_k = softmax_col(Y_k Y_k^T) or
 *              Y_k Y_k^T.  A_k^T is the row softmax of the symmetric score
 *              matrix: row j (query j) is normalised over the keys i (P9).
 * Log-dets factor the smaller Gram matrix by Cholesky.  Everything is double
 * precision: this is the reference code, not a hot path, so it allocates its
 * workspace per call (and frees it on every path).
 *
 * Non-goals: the layer-wise measurement of MATH.md §1.5 (normalised tokens,
 * learned qkv blocks) and float kernels; the network's MSSA lives in src/ops.
 * The bases need not be orthonormal or mutually orthogonal: every formula
 * here holds for any U_k (only the D3 identity needs sum_k U_k U_k^T = I).
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* ---- validation ----------------------------------------------------------- */

/* Checks the token array and the precision; Z: (N, d). */
static int check_tokens(const double *Z, size_t N, size_t d, double eps2) {
  if (!Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: token array Z is NULL");
  if (N == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: need at least one token (got N = 0)");
  if (d == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: need token width d > 0 (got d = 0)");
  if (N > SIZE_MAX / sizeof(double) / d || N > SIZE_MAX / sizeof(double) / N)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: N = %zu tokens of width d = %zu is too large", N,
                       d);
  if (!isfinite(eps2) || !(eps2 > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "rate: eps2 (= epsilon^2) must be finite and > 0 (got %g)", eps2);
  if (!isfinite((double)d / ((double)N * eps2)))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "rate: eps2 = %g is too small: alpha = d / (N eps2) overflows", eps2);
  for (size_t i = 0; i < N * d; i++)
    if (!isfinite(Z[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "rate: Z has a non-finite entry %g at token %zu, coordinate %zu", Z[i],
                         i / d, i % d);
  return CRATE_STATUS_OK;
}

/* Checks the view (shapes and finiteness, not orthonormality) and restates a
 * failure in the rate domain. */
static int check_subspaces(const crate_subspaces *U) {
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: subspace view U is NULL");
  int st = crate_subspaces_check(U, -1.0);
  if (st != CRATE_STATUS_OK) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", crate_error_message());
    return CRATE_ERROR(st, "rate: invalid subspaces (%s)", inner);
  }
  size_t pmax = 0;
  for (size_t k = 0; k < U->K; k++)
    pmax = U->p[k] > pmax ? U->p[k] : pmax;
  if (pmax > SIZE_MAX / sizeof(double) / pmax)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: subspace rank %zu is too large", pmax);
  return CRATE_STATUS_OK;
}

static int check_out(const void *out, const char *name) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: output %s is NULL", name);
  return CRATE_STATUS_OK;
}

static size_t max_rank(const crate_subspaces *U) {
  size_t pmax = 0;
  for (size_t k = 0; k < U->K; k++)
    pmax = U->p[k] > pmax ? U->p[k] : pmax;
  return pmax;
}

/* ---- building blocks ------------------------------------------------------ */

/* Y = Z^T U_k.  Z: (N, d); Utk: (p, d) = U_k^T; Y: (N, p). */
static void project(const double *Z, size_t N, size_t d, const double *Utk, size_t p, double *Y) {
  crate_dgemm(false, true, N, p, d, 1.0, Z, d, Utk, d, 0.0, Y, p);
}

/* G = I + b Y Y^T (N, N) when nn, else G = I + b Y^T Y (q, q).  Y: (N, q).
 * @return OK, or ENUMERIC when the Gram overflows (Z far too large). */
static int gram_plus_identity(const double *Y, size_t N, size_t q, double b, bool nn, double *G) {
  size_t n = nn ? N : q;
  if (nn)
    crate_dgemm(false, true, N, N, q, b, Y, q, Y, q, 0.0, G, N);
  else
    crate_dgemm(true, false, q, q, N, b, Y, q, Y, q, 0.0, G, q);
  for (size_t i = 0; i < n; i++)
    G[i * n + i] += 1.0;
  if (!crate__all_finite(G, n * n))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "rate: %zu x %zu Gram matrix overflowed (Z too large)", n, n);
  return CRATE_STATUS_OK;
}

/* *out = 1/2 logdet(I_N + b Y Y^T) = 1/2 logdet(I_q + b Y^T Y) (Sylvester),
 * factoring the smaller Gram.  Y: (N, q); G: workspace of min(N, q)^2. */
static int half_logdet(const double *Y, size_t N, size_t q, double b, double *G, double *out) {
  bool nn = N <= q;
  size_t n = nn ? N : q;
  CRATE_TRY(gram_plus_identity(Y, N, q, b, nn, G));
  double ld = 0.0;
  CRATE_TRY(crate__dlogdet_spd(n, G, n, &ld, "rate"));
  if (!isfinite(ld))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "rate: log-det of a %zu x %zu Gram matrix is not finite (Z too large)", n,
                       n);
  *out = 0.5 * ld;
  return CRATE_STATUS_OK;
}

/* W = (I_N + b Y Y^T)^{-1} Y (NN) = Y (I_q + b Y^T Y)^{-1} (PP).
 * Y, W: (N, q); G: N*N (NN) or q*q (PP) doubles; T: q*N doubles (PP only). */
static int apply_inverse(const double *Y, size_t N, size_t q, double b, crate_rate_form form,
                         double *G, double *T, double *W) {
  if (form == CRATE_RATE_FORM_NN) {
    CRATE_TRY(gram_plus_identity(Y, N, q, b, true, G));
    CRATE_TRY(crate__dpotrf(N, G, N, "rate"));
    memcpy(W, Y, N * q * sizeof *W);
    return crate__dpotrs(N, q, G, N, W, q);
  }
  /* PP: W^T = (I_q + b Y^T Y)^{-1} Y^T, a q x q solve with N right sides. */
  CRATE_TRY(gram_plus_identity(Y, N, q, b, false, G));
  CRATE_TRY(crate__dpotrf(q, G, q, "rate"));
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < q; j++)
      T[j * N + i] = Y[i * q + j];
  CRATE_TRY(crate__dpotrs(q, N, G, q, T, N));
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < q; j++)
      W[i * q + j] = T[j * N + i];
  return CRATE_STATUS_OK;
}

/* Allocates n doubles, or NULL; n is bounded by the checks above. */
static double *alloc_doubles(size_t n) {
  return crate__calloc(n, sizeof(double));
}

/* ---- rates ---------------------------------------------------------------- */

int crate_rate_R(const double *Z, size_t N, size_t d, double eps2, double *out) {
  CRATE_TRY(check_tokens(Z, N, d, eps2));
  CRATE_TRY(check_out(out, "out"));
  size_t n = N < d ? N : d;
  double *G = alloc_doubles(n * n);
  if (!G)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: %zu x %zu Gram matrix", n, n);
  double alpha = (double)d / ((double)N * eps2);
  int st = half_logdet(Z, N, d, alpha, G, out);
  free(G);
  return st;
}

int crate_rate_Rc(const double *Z, size_t N, const crate_subspaces *U, double eps2, double *out) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, eps2));
  CRATE_TRY(check_out(out, "out"));
  size_t d = U->d, pmax = max_rank(U), n = N < pmax ? N : pmax;
  double *Y = alloc_doubles(N * pmax), *G = alloc_doubles(n * n);
  int st = CRATE_STATUS_OK;
  if (!Y || !G) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: R^c workspace (N = %zu, p = %zu)", N, pmax);
    goto done;
  }
  double sum = 0.0;
  for (size_t k = 0, off = 0; k < U->K; off += U->p[k], k++) {
    size_t p = U->p[k];
    double beta = (double)p / ((double)N * eps2), h = 0.0;
    project(Z, N, d, U->Ut + off * d, p, Y);
    st = half_logdet(Y, N, p, beta, G, &h);
    if (st != CRATE_STATUS_OK)
      goto done;
    sum += h;
  }
  *out = sum;
done:
  free(Y);
  free(G);
  return st;
}

int crate_rate_delta(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                     double *out) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_out(out, "out"));
  double r = 0.0, rc = 0.0;
  CRATE_TRY(crate_rate_R(Z, N, U->d, eps2, &r));
  CRATE_TRY(crate_rate_Rc(Z, N, U, eps2, &rc));
  *out = r - rc;
  return CRATE_STATUS_OK;
}

int crate_rate_srr(const double *Z, size_t N, const crate_subspaces *U, double eps2, double lambda,
                   double *out) {
  if (!isfinite(lambda) || lambda < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "rate: sparsity weight lambda must be finite and >= 0 (got %g)", lambda);
  double dr = 0.0;
  CRATE_TRY(crate_rate_delta(Z, N, U, eps2, &dr));
  double l1 = 0.0;
  for (size_t i = 0; i < N * U->d; i++)
    l1 += fabs(Z[i]);
  *out = dr - lambda * l1;
  return CRATE_STATUS_OK;
}

/* ---- gradients ------------------------------------------------------------ */

int crate_rate_R_grad(const double *Z, size_t N, size_t d, double eps2, double *G) {
  CRATE_TRY(check_tokens(Z, N, d, eps2));
  CRATE_TRY(check_out(G, "gradient G"));
  /* (grad R)^T = alpha (I_N + alpha Z^T Z)^{-1} Z^T, in whichever form has
   * the smaller matrix. */
  crate_rate_form form = N <= d ? CRATE_RATE_FORM_NN : CRATE_RATE_FORM_PP;
  size_t n = N <= d ? N : d;
  double *M = alloc_doubles(n * n), *T = NULL;
  if (M && form == CRATE_RATE_FORM_PP)
    T = alloc_doubles(N * d);
  int st = CRATE_STATUS_OK;
  if (!M || (form == CRATE_RATE_FORM_PP && !T)) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: grad R workspace (N = %zu, d = %zu)", N, d);
  } else {
    double alpha = (double)d / ((double)N * eps2);
    st = apply_inverse(Z, N, d, alpha, form, M, T, G);
    if (st == CRATE_STATUS_OK)
      for (size_t i = 0; i < N * d; i++)
        G[i] *= alpha;
    if (st == CRATE_STATUS_OK && !crate__all_finite(G, N * d))
      st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "rate: grad R is not finite (Z too large)");
  }
  free(M);
  free(T);
  return st;
}

int crate_rate_Rc_grad(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                       crate_rate_form form, double *G) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, eps2));
  CRATE_TRY(check_out(G, "gradient G"));
  if (form != CRATE_RATE_FORM_PP && form != CRATE_RATE_FORM_NN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: unknown gradient form %d (want PP or NN)",
                       (int)form);
  size_t d = U->d, pmax = max_rank(U);
  size_t msize = form == CRATE_RATE_FORM_NN ? N * N : pmax * pmax;
  double *Y = alloc_doubles(N * pmax), *W = alloc_doubles(N * pmax);
  double *M = alloc_doubles(msize), *T = alloc_doubles(N * pmax);
  int st = CRATE_STATUS_OK;
  if (!Y || !W || !M || !T) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: grad R^c workspace (N = %zu, p = %zu)", N, pmax);
    goto done;
  }
  memset(G, 0, N * d * sizeof *G);
  for (size_t k = 0, off = 0; k < U->K; off += U->p[k], k++) {
    size_t p = U->p[k];
    const double *Utk = U->Ut + off * d;
    double beta = (double)p / ((double)N * eps2);
    project(Z, N, d, Utk, p, Y);
    st = apply_inverse(Y, N, p, beta, form, M, T, W);
    if (st != CRATE_STATUS_OK)
      goto done;
    /* G += beta_k W_k U_k^T: (N, p) x (p, d). */
    crate_dgemm(false, false, N, d, p, beta, W, p, Utk, d, 1.0, G, d);
  }
  if (!crate__all_finite(G, N * d))
    st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "rate: grad R^c is not finite (Z too large)");
done:
  free(Y);
  free(W);
  free(M);
  free(T);
  return st;
}

int crate_rate_Rc_grad_neumann(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                               double *G) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, eps2));
  CRATE_TRY(check_out(G, "gradient G"));
  size_t d = U->d, pmax = max_rank(U);
  double *Y = alloc_doubles(N * pmax), *V = alloc_doubles(N * pmax);
  double *C = alloc_doubles(pmax * pmax);
  int st = CRATE_STATUS_OK;
  if (!Y || !V || !C) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: Neumann workspace (N = %zu, p = %zu)", N, pmax);
    goto done;
  }
  memset(G, 0, N * d * sizeof *G);
  for (size_t k = 0, off = 0; k < U->K; off += U->p[k], k++) {
    size_t p = U->p[k];
    const double *Utk = U->Ut + off * d;
    double beta = (double)p / ((double)N * eps2);
    project(Z, N, d, Utk, p, Y);
    /* (X X^T X)^T = Y (Y^T Y): V = Y - beta Y C with C = Y^T Y (p, p). */
    crate_dgemm(true, false, p, p, N, 1.0, Y, p, Y, p, 0.0, C, p);
    memcpy(V, Y, N * p * sizeof *V);
    crate_dgemm(false, false, N, p, p, -beta, Y, p, C, p, 1.0, V, p);
    crate_dgemm(false, false, N, d, p, beta, V, p, Utk, d, 1.0, G, d);
  }
  if (!crate__all_finite(G, N * d))
    st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "rate: Neumann gradient is not finite (Z too large)");
done:
  free(Y);
  free(V);
  free(C);
  return st;
}

/* ---- idealised MSSA ------------------------------------------------------- */

/* In place: row j of S (N, N) becomes softmax over its entries, i.e. query j
 * normalised over the keys i, max-subtracted; sums accumulate in double. */
static void softmax_rows(double *S, size_t N) {
  for (size_t j = 0; j < N; j++) {
    double *row = S + j * N, m = row[0], s = 0.0;
    for (size_t i = 1; i < N; i++)
      m = row[i] > m ? row[i] : m;
    for (size_t i = 0; i < N; i++) {
      row[i] = exp(row[i] - m);
      s += row[i];
    }
    for (size_t i = 0; i < N; i++)
      row[i] /= s;
  }
}

int crate_rate_mssa(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                    crate_mssa_kernel kernel, double *out) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, eps2));
  CRATE_TRY(check_out(out, "out"));
  if (kernel != CRATE_MSSA_SOFTMAX && kernel != CRATE_MSSA_LINEAR)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "rate: unknown MSSA kernel %d (want SOFTMAX or LINEAR)",
                       (int)kernel);
  size_t d = U->d, pmax = max_rank(U);
  double *Y = alloc_doubles(N * pmax), *O = alloc_doubles(N * pmax);
  double *S = alloc_doubles(N * N);
  int st = CRATE_STATUS_OK;
  if (!Y || !O || !S) {
    st = CRATE_ERROR(CRATE_STATUS_ENOMEM, "rate: MSSA workspace (N = %zu, p = %zu)", N, pmax);
    goto done;
  }
  memset(out, 0, N * d * sizeof *out);
  for (size_t k = 0, off = 0; k < U->K; off += U->p[k], k++) {
    size_t p = U->p[k];
    const double *Utk = U->Ut + off * d;
    double beta = (double)p / ((double)N * eps2);
    project(Z, N, d, Utk, p, Y);
    /* Scores S = X^T X = Y Y^T (N, N), symmetric: S[j][i] = <x_j, x_i>. */
    crate_dgemm(false, true, N, N, p, 1.0, Y, p, Y, p, 0.0, S, N);
    if (kernel == CRATE_MSSA_SOFTMAX)
      softmax_rows(S, N); /* now S = A^T, A = softmax_col(X^T X) */
    /* (X A)^T = A^T Y: row j = sum_i a_ij y_i. */
    crate_dgemm(false, false, N, p, N, 1.0, S, N, Y, p, 0.0, O, p);
    crate_dgemm(false, false, N, d, p, beta, O, p, Utk, d, 1.0, out, d);
  }
  if (!crate__all_finite(out, N * d))
    st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "rate: MSSA output is not finite (Z too large)");
done:
  free(Y);
  free(O);
  free(S);
  return st;
}
