/* lapack.c: the LAPACK seam (STYLE.md §9.2).  Debian's OpenBLAS ships no
 * LAPACKE, so the Fortran routines are declared here and called directly:
 * every argument by pointer, plus the hidden size_t length of each character
 * argument (gfortran ABI).  LAPACK is column-major; for a symmetric row-major
 * matrix that view is the same matrix, and a column-major "U" factor is the
 * row-major lower triangle.  Non-goal: general (non-symmetric) solvers.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"

typedef int lapack_int;

extern void dpotrf_(const char *uplo, const lapack_int *n, double *a, const lapack_int *lda,
                    lapack_int *info, size_t uplo_len);
extern void spotrf_(const char *uplo, const lapack_int *n, float *a, const lapack_int *lda,
                    lapack_int *info, size_t uplo_len);
extern void dtrsm_(const char *side, const char *uplo, const char *transa, const char *diag,
                   const lapack_int *m, const lapack_int *n, const double *alpha,
                   const double *a, const lapack_int *lda, double *b, const lapack_int *ldb,
                   size_t l1, size_t l2, size_t l3, size_t l4);
extern void dsyevd_(const char *jobz, const char *uplo, const lapack_int *n, double *a,
                    const lapack_int *lda, double *w, double *work, const lapack_int *lwork,
                    lapack_int *iwork, const lapack_int *liwork, lapack_int *info,
                    size_t l1, size_t l2);
extern void ssyevd_(const char *jobz, const char *uplo, const lapack_int *n, float *a,
                    const lapack_int *lda, float *w, float *work, const lapack_int *lwork,
                    lapack_int *iwork, const lapack_int *liwork, lapack_int *info,
                    size_t l1, size_t l2);
extern void dgeqrf_(const lapack_int *m, const lapack_int *n, double *a, const lapack_int *lda,
                    double *tau, double *work, const lapack_int *lwork, lapack_int *info);
extern void dorgqr_(const lapack_int *m, const lapack_int *n, const lapack_int *k, double *a,
                    const lapack_int *lda, const double *tau, double *work,
                    const lapack_int *lwork, lapack_int *info);

static int check_dims(size_t n, size_t lda) {
  if (n > INT_MAX || lda > INT_MAX || lda < (n ? n : 1))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lapack: dimension %zu (lda %zu) out of range", n, lda);
  return CRATE_STATUS_OK;
}

/* Zeroes the strict upper triangle (row-major) so the array holds exactly L. */
#define CLEAR_UPPER(A, n, lda)                 \
  for (size_t r_ = 0; r_ < (n); r_++)          \
    for (size_t c_ = r_ + 1; c_ < (n); c_++)   \
      (A)[r_ * (lda) + c_] = 0

int crate__dpotrf(size_t n, double *A, size_t lda, const char *what) {
  CRATE_TRY(check_dims(n, lda));
  if (n == 0)
    return CRATE_STATUS_OK;
  lapack_int nn = (lapack_int)n, la = (lapack_int)lda, info = 0;
  dpotrf_("U", &nn, A, &la, &info, 1);
  if (info < 0)
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: dpotrf argument %d invalid", -info);
  if (info > 0)
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "%s: matrix is not positive definite (leading minor %d)", what, info);
  CLEAR_UPPER(A, n, lda);
  return CRATE_STATUS_OK;
}

int crate__spotrf(size_t n, float *A, size_t lda, const char *what) {
  CRATE_TRY(check_dims(n, lda));
  if (n == 0)
    return CRATE_STATUS_OK;
  lapack_int nn = (lapack_int)n, la = (lapack_int)lda, info = 0;
  spotrf_("U", &nn, A, &la, &info, 1);
  if (info < 0)
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: spotrf argument %d invalid", -info);
  if (info > 0)
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "%s: matrix is not positive definite (leading minor %d)", what, info);
  CLEAR_UPPER(A, n, lda);
  return CRATE_STATUS_OK;
}

int crate__dpotrs(size_t n, size_t nrhs, const double *L, size_t lda, double *B, size_t ldb) {
  CRATE_TRY(check_dims(n, lda));
  if (nrhs > INT_MAX || ldb < (nrhs ? nrhs : 1))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lapack: nrhs %zu (ldb %zu) out of range", nrhs, ldb);
  if (n == 0 || nrhs == 0)
    return CRATE_STATUS_OK;
  /* Row-major B (n, nrhs) is the column-major (nrhs, n) matrix B^T, and the
   * row-major lower L is the column-major upper U = L^T with A = U^T U.
   * A X = B  <=>  X^T U^T U = B^T: two right-side triangular solves. */
  lapack_int m = (lapack_int)nrhs, nn = (lapack_int)n, la = (lapack_int)lda, lb = (lapack_int)ldb;
  const double one = 1.0;
  dtrsm_("R", "U", "N", "N", &m, &nn, &one, L, &la, B, &lb, 1, 1, 1, 1);
  dtrsm_("R", "U", "T", "N", &m, &nn, &one, L, &la, B, &lb, 1, 1, 1, 1);
  return CRATE_STATUS_OK;
}

int crate__dlogdet_spd(size_t n, double *A, size_t lda, double *out, const char *what) {
  CRATE_TRY(crate__dpotrf(n, A, lda, what));
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += log(A[i * lda + i]);
  *out = 2.0 * s;
  return CRATE_STATUS_OK;
}

int crate__dsyev(size_t n, double *A, size_t lda, double *w, bool vectors) {
  CRATE_TRY(check_dims(n, lda));
  if (n == 0)
    return CRATE_STATUS_OK;
  lapack_int nn = (lapack_int)n, la = (lapack_int)lda, info = 0, lwork = -1, liwork = -1, iq = 0;
  double wq = 0.0;
  const char *jobz = vectors ? "V" : "N";
  dsyevd_(jobz, "U", &nn, A, &la, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);
  if (info != 0)
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: dsyevd workspace query failed (%d)", info);
  lwork = (lapack_int)wq;
  liwork = iq;
  double *work = malloc((size_t)lwork * sizeof *work);
  lapack_int *iwork = malloc((size_t)(liwork > 0 ? liwork : 1) * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lapack: dsyevd workspace for n=%zu", n);
  }
  dsyevd_(jobz, "U", &nn, A, &la, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work);
  free(iwork);
  if (info != 0)
    return CRATE_ERROR(info < 0 ? CRATE_STATUS_EBACKEND : CRATE_STATUS_ENUMERIC,
                       "lapack: dsyevd failed (info %d)", info);
  return CRATE_STATUS_OK;
}

int crate__ssyev(size_t n, float *A, size_t lda, float *w, bool vectors) {
  CRATE_TRY(check_dims(n, lda));
  if (n == 0)
    return CRATE_STATUS_OK;
  lapack_int nn = (lapack_int)n, la = (lapack_int)lda, info = 0, lwork = -1, liwork = -1, iq = 0;
  float wq = 0.0f;
  const char *jobz = vectors ? "V" : "N";
  ssyevd_(jobz, "U", &nn, A, &la, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);
  if (info != 0)
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: ssyevd workspace query failed (%d)", info);
  lwork = (lapack_int)wq;
  liwork = iq;
  float *work = malloc((size_t)lwork * sizeof *work);
  lapack_int *iwork = malloc((size_t)(liwork > 0 ? liwork : 1) * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lapack: ssyevd workspace for n=%zu", n);
  }
  ssyevd_(jobz, "U", &nn, A, &la, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work);
  free(iwork);
  if (info != 0)
    return CRATE_ERROR(info < 0 ? CRATE_STATUS_EBACKEND : CRATE_STATUS_ENUMERIC,
                       "lapack: ssyevd failed (info %d)", info);
  return CRATE_STATUS_OK;
}

int crate__dqr_orthonormalize(size_t rows, size_t cols, double *A) {
  if (rows > INT_MAX || cols > rows || cols == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "lapack: QR of a %zu x %zu matrix", rows, cols);
  lapack_int m = (lapack_int)rows, n = (lapack_int)cols, lwork = -1, info = 0;
  double wq = 0.0;
  double *tau = malloc(cols * sizeof *tau);
  if (!tau)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lapack: QR tau");
  dgeqrf_(&m, &n, A, &m, tau, &wq, &lwork, &info);
  lapack_int lw2 = -1;
  double wq2 = 0.0;
  if (info == 0)
    dorgqr_(&m, &n, &n, A, &m, tau, &wq2, &lw2, &info);
  if (info != 0) {
    free(tau);
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: QR workspace query failed (%d)", info);
  }
  lwork = (lapack_int)(wq > wq2 ? wq : wq2);
  double *work = malloc((size_t)(lwork > 0 ? lwork : 1) * sizeof *work);
  if (!work) {
    free(tau);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "lapack: QR workspace");
  }
  dgeqrf_(&m, &n, A, &m, tau, work, &lwork, &info);
  if (info == 0)
    dorgqr_(&m, &n, &n, A, &m, tau, work, &lwork, &info);
  free(work);
  free(tau);
  if (info != 0)
    return CRATE_ERROR(CRATE_STATUS_EBACKEND, "lapack: QR failed (info %d)", info);
  return CRATE_STATUS_OK;
}
