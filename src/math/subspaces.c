/* subspaces.c: validation, random draws and the spectral constant of a set of
 * subspace bases (MATH.md §0, §1.6).  Bases are stored transposed and stacked
 * (include/crate/subspaces.h). */
#include <string.h>

#include "internal.h"

size_t crate_subspaces_total(const crate_subspaces *U) {
  size_t t = 0;
  if (!U || !U->p)
    return 0;
  for (size_t k = 0; k < U->K; k++)
    t += U->p[k];
  return t;
}

size_t crate_subspaces_offset(const crate_subspaces *U, size_t k) {
  size_t off = 0;
  for (size_t j = 0; j < k; j++)
    off += U->p[j];
  return off;
}

static int check_shape(size_t d, size_t K, const size_t *p) {
  if (d == 0 || K == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: need d > 0 and K > 0 (got d=%zu, K=%zu)", d, K);
  if (!p)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: rank array is NULL");
  for (size_t k = 0; k < K; k++)
    if (p[k] == 0 || p[k] > d)
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "subspaces: rank p_%zu = %zu must be in [1, d = %zu]", k, p[k], d);
  return CRATE_STATUS_OK;
}

int crate_subspaces_check(const crate_subspaces *U, double orth_tol) {
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: NULL view");
  CRATE_TRY(check_shape(U->d, U->K, U->p));
  if (!U->Ut)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: basis array is NULL");
  size_t d = U->d, P = crate_subspaces_total(U);
  if (!crate__all_finite(U->Ut, P * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: basis has a non-finite entry");
  if (orth_tol < 0)
    return CRATE_STATUS_OK;
  size_t off = 0;
  for (size_t k = 0; k < U->K; k++) {
    const double *B = U->Ut + off * d;
    for (size_t i = 0; i < U->p[k]; i++)
      for (size_t j = 0; j <= i; j++) {
        double s = 0.0;
        for (size_t l = 0; l < d; l++)
          s += B[i * d + l] * B[j * d + l];
        double want = (i == j) ? 1.0 : 0.0;
        if (fabs(s - want) > orth_tol)
          return CRATE_ERROR(CRATE_STATUS_EINVAL,
                             "subspaces: U_%zu^T U_%zu differs from I by %.3g at (%zu,%zu) "
                             "(tolerance %.3g); bases must have orthonormal columns",
                             k, k, fabs(s - want), i, j, orth_tol);
      }
    off += U->p[k];
  }
  return CRATE_STATUS_OK;
}

/* Copies a column-major (d, q) orthonormal block into rows of Ut. */
static void store_transposed(double *Ut, const double *Q, size_t d, size_t q) {
  for (size_t j = 0; j < q; j++)
    memcpy(Ut + j * d, Q + j * d, d * sizeof *Ut);
}

int crate_subspaces_random(double *Ut, size_t d, size_t K, const size_t *p,
                           crate_subspaces_kind kind, crate_rng *rng) {
  CRATE_TRY(check_shape(d, K, p));
  if (!Ut || !rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: NULL output or generator");
  size_t P = 0;
  for (size_t k = 0; k < K; k++)
    P += p[k];
  if (kind == CRATE_SUBSPACES_ORTHOGONAL && P > d)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "subspaces: %zu mutually orthogonal directions do not fit in d = %zu", P, d);
  if (kind != CRATE_SUBSPACES_ORTHOGONAL && kind != CRATE_SUBSPACES_INCOHERENT)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "subspaces: unknown kind %d", (int)kind);
  size_t maxq = kind == CRATE_SUBSPACES_ORTHOGONAL ? P : 0;
  for (size_t k = 0; k < K; k++)
    if (p[k] > maxq)
      maxq = p[k];
  double *Q = malloc(d * maxq * sizeof *Q);
  if (!Q)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "subspaces: %zu x %zu workspace", d, maxq);
  int st = CRATE_STATUS_OK;
  if (kind == CRATE_SUBSPACES_ORTHOGONAL) {
    crate_rng_normal_fill(rng, Q, d * P);
    st = crate__dqr_orthonormalize(d, P, Q);
    if (st == CRATE_STATUS_OK)
      store_transposed(Ut, Q, d, P);
  } else {
    size_t off = 0;
    for (size_t k = 0; k < K && st == CRATE_STATUS_OK; k++) {
      crate_rng_normal_fill(rng, Q, d * p[k]);
      st = crate__dqr_orthonormalize(d, p[k], Q);
      if (st == CRATE_STATUS_OK)
        store_transposed(Ut + off * d, Q, d, p[k]);
      off += p[k];
    }
  }
  free(Q);
  return st;
}

int crate_subspaces_lambda_max(const crate_subspaces *U, double *out) {
  CRATE_TRY(crate_subspaces_check(U, -1.0));
  size_t d = U->d, P = crate_subspaces_total(U);
  double *S = malloc(d * d * sizeof *S), *w = malloc(d * sizeof *w);
  if (!S || !w) {
    free(S);
    free(w);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "subspaces: %zu x %zu workspace", d, d);
  }
  /* sum_k U_k U_k^T = Ut^T Ut, a (d, d) Gram of the stacked bases. */
  crate_dgemm(true, false, d, d, P, 1.0, U->Ut, d, U->Ut, d, 0.0, S, d);
  int st = crate__dsyev(d, S, d, w, false);
  if (st == CRATE_STATUS_OK)
    *out = w[d - 1];
  free(S);
  free(w);
  return st;
}
