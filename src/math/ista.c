/* ista.c: the CRATE sparsification block and iterated ISTA for the
 * non-negative LASSO (MATH.md §2.4; Beck & Teboulle 2009, SIAM J. Imaging
 * Sci. 2(1), eq. (1.4) with the one-sided prox of lambda ||.||_1 + 1{Z >= 0}).
 *
 *   block     ISTA(z | D) = ReLU(z + eta D^T (z - D z) - eta lambda)   (2 products)
 *                         = ReLU(z + eta D^T z - eta D^T D z - eta lambda) (3, official)
 *   objective lambda ||Z||_1 + 1/2 ||Y - D Z||_F^2
 *   iterated  Z^{t+1} = ReLU(Z^t - eta D^T (D Z^t - Y) - eta lambda)
 *
 * Memory: tokens are rows.  With D: (d, m) row-major and a code z (m) stored
 * as a row, (D z)^T = z^T D^T and (D^T r)^T = r^T D, so on the (N, m) code
 * array Zc: D Zc -> Zc D^T (N, d) and D^T R -> R D (N, m).  Reference code in
 * double; the float network block is crate_ista_forward (src/ops).
 * Non-goals: FISTA momentum, two-sided soft thresholding (every CRATE
 * implementation uses the one-sided ReLU, MATH.md §2.4, P8).
 */
#include <stdint.h>
#include <string.h>

#include "crate/flow.h"
#include "internal.h"

/* ---- validation ----------------------------------------------------------- */

static int check_array(const double *A, size_t rows, size_t cols, const char *name) {
  if (!A)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: %s is NULL", name);
  for (size_t i = 0; i < rows * cols; i++)
    if (!isfinite(A[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "lasso: %s has a non-finite entry %g at row %zu, column %zu", name, A[i],
                         i / cols, i % cols);
  return CRATE_STATUS_OK;
}

static int check_dims(size_t N, size_t d, size_t m) {
  if (N == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: need at least one token (got N = 0)");
  if (d == 0 || m == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "lasso: dictionary must be non-empty (got d = %zu, m = %zu)", d, m);
  size_t big = d > m ? d : m;
  if (N > SIZE_MAX / sizeof(double) / big / 4 || d > SIZE_MAX / sizeof(double) / m)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: sizes N = %zu, d = %zu, m = %zu too large", N,
                       d, m);
  return CRATE_STATUS_OK;
}

static int check_lambda(double lambda) {
  if (!isfinite(lambda) || lambda < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: lambda must be finite and >= 0 (got %g)",
                       lambda);
  return CRATE_STATUS_OK;
}

static int check_eta(double eta) {
  if (!isfinite(eta) || !(eta > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: step eta must be finite and > 0 (got %g)", eta);
  return CRATE_STATUS_OK;
}

static int check_out(const void *out, const char *name) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: output %s is NULL", name);
  return CRATE_STATUS_OK;
}

/* ---- the CRATE block ------------------------------------------------------- */

int crate_lasso_ista_step(const double *Z, size_t N, const double *D, size_t d, double eta,
                          double lambda, crate_lasso_form form, double *out) {
  CRATE_TRY(check_dims(N, d, d));
  CRATE_TRY(check_array(Z, N, d, "Z"));
  CRATE_TRY(check_array(D, d, d, "dictionary D"));
  CRATE_TRY(check_eta(eta));
  CRATE_TRY(check_lambda(lambda));
  if (form != CRATE_LASSO_FORM_2PRODUCT && form != CRATE_LASSO_FORM_3PRODUCT)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lasso: unknown ISTA form %d", (int)form);
  CRATE_TRY(check_out(out, "out"));
  size_t n = N * d;
  double *A = crate__calloc(2 * n, sizeof *A);
  if (!A)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lasso: out of memory (%zu doubles)", 2 * n);
  double *B = A + n;
  if (form == CRATE_LASSO_FORM_2PRODUCT) {
    /* R = Z - D Z -> rows: r = z - z D^T; then G = D^T R -> R D. */
    memcpy(A, Z, n * sizeof *A);
    crate_dgemm(false, true, N, d, d, -1.0, Z, d, D, d, 1.0, A, d); /* A = Z^T - Z^T D^T */
    crate_dgemm(false, false, N, d, d, 1.0, A, d, D, d, 0.0, B, d); /* B = A D */
  } else {
    /* x1 = D z, grad_1 = D^T x1, grad_2 = D^T z; B = grad_2 - grad_1. */
    crate_dgemm(false, true, N, d, d, 1.0, Z, d, D, d, 0.0, A, d);   /* A = Z^T D^T */
    crate_dgemm(false, false, N, d, d, 1.0, Z, d, D, d, 0.0, B, d);  /* B = Z^T D */
    crate_dgemm(false, false, N, d, d, -1.0, A, d, D, d, 1.0, B, d); /* B -= A D */
  }
  int st = CRATE_STATUS_OK;
  for (size_t i = 0; i < n; i++) {
    double u = Z[i] + eta * B[i] - eta * lambda;
    if (!isfinite(u)) {
      st = CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "lasso: ISTA pre-activation overflowed at token %zu, coordinate %zu", i / d,
                       i % d);
      break;
    }
    A[i] = u > 0.0 ? u : 0.0;
  }
  if (st == CRATE_STATUS_OK)
    memcpy(out, A, n * sizeof *out);
  free(A);
  return st;
}

/* ---- objective and iterated ISTA ------------------------------------------- */

/* lambda sum |Zc| + 1/2 ||Y - Zc D^T||^2 with validated inputs; R: (N, d). */
static double objective_raw(const double *Zc, size_t N, const double *Y, const double *D, size_t d,
                            size_t m, double lambda, double *R) {
  memcpy(R, Y, N * d * sizeof *R);
  crate_dgemm(false, true, N, d, m, -1.0, Zc, m, D, m, 1.0, R, d); /* R = Y - Zc D^T */
  double l1 = 0.0, sq = 0.0;
  for (size_t i = 0; i < N * m; i++)
    l1 += fabs(Zc[i]);
  for (size_t i = 0; i < N * d; i++)
    sq += R[i] * R[i];
  return lambda * l1 + 0.5 * sq;
}

int crate_lasso_objective(const double *Zc, size_t N, const double *Y, const double *D, size_t d,
                          size_t m, double lambda, double *out) {
  CRATE_TRY(check_dims(N, d, m));
  CRATE_TRY(check_array(Zc, N, m, "codes Zc"));
  CRATE_TRY(check_array(Y, N, d, "signals Y"));
  CRATE_TRY(check_array(D, d, m, "dictionary D"));
  CRATE_TRY(check_lambda(lambda));
  CRATE_TRY(check_out(out, "objective"));
  double *R = crate__calloc(N * d, sizeof *R);
  if (!R)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lasso: out of memory (%zu doubles)", N * d);
  double f = objective_raw(Zc, N, Y, D, d, m, lambda, R);
  free(R);
  if (!isfinite(f))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC, "lasso: objective overflowed");
  *out = f;
  return CRATE_STATUS_OK;
}

int crate_lasso_ista(const double *Y, size_t N, const double *D, size_t d, size_t m, double eta,
                     double lambda, size_t iters, double *Zc, double *objective) {
  CRATE_TRY(check_dims(N, d, m));
  CRATE_TRY(check_array(Y, N, d, "signals Y"));
  CRATE_TRY(check_array(D, d, m, "dictionary D"));
  CRATE_TRY(check_array(Zc, N, m, "start codes Zc"));
  CRATE_TRY(check_eta(eta));
  CRATE_TRY(check_lambda(lambda));
  double *R = crate__calloc(N * d + N * m, sizeof *R);
  if (!R)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lasso: out of memory (%zu doubles)", N * (d + m));
  double *G = R + N * d;
  int st = CRATE_STATUS_OK;
  for (size_t t = 0; t <= iters; t++) {
    if (objective)
      objective[t] = objective_raw(Zc, N, Y, D, d, m, lambda, R);
    if (t == iters)
      break;
    memcpy(R, Y, N * d * sizeof *R);
    crate_dgemm(false, true, N, d, m, 1.0, Zc, m, D, m, -1.0, R, d); /* R = Zc D^T - Y */
    crate_dgemm(false, false, N, m, d, 1.0, R, d, D, m, 0.0, G, m);  /* G = R D = (D^T R)^T */
    for (size_t i = 0; i < N * m; i++) /* check first: ReLU maps -inf and NaN to 0 */
      if (!isfinite(Zc[i] - eta * G[i] - eta * lambda)) {
        st = CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                         "lasso: ISTA overflowed at iteration %zu (eta %g too large for D?)", t + 1,
                         eta);
        break;
      }
    if (st != CRATE_STATUS_OK)
      break;
    for (size_t i = 0; i < N * m; i++) {
      double u = Zc[i] - eta * G[i] - eta * lambda;
      Zc[i] = u > 0.0 ? u : 0.0;
    }
  }
  free(R);
  return st;
}
