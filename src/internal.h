/* internal.h: cross-file internals of libcrate (never installed).
 *
 * CRATE_ERROR records a detail message and returns the status; CRATE_ASSERT
 * guards contract violations (shapes that cannot happen) and stays enabled in
 * every build.  The GEMM seam and the LAPACK wrappers live here too, so that
 * cblas.h and the Fortran prototypes stay in their seam files
 * (src/core/blas.c, src/core/lapack.c).
 */
#ifndef CRATE_INTERNAL_H
#define CRATE_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "crate/crate.h"

/* ---- errors --------------------------------------------------------------- */

/* Records "message [file:line]" in the thread-local buffer and returns code.
 * Every error passes through here: one breakpoint catches them all. */
int crate__error(int code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#define CRATE_ERROR(code, ...) crate__error((code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failing status from a call. */
#define CRATE_TRY(expr)                  \
  do {                                   \
    int crate__st = (expr);              \
    if (crate__st != CRATE_STATUS_OK)    \
      return crate__st;                  \
  } while (0)

_Noreturn void crate__assert_fail(const char *expr, const char *file, int line);
#define CRATE_ASSERT(x) ((x) ? (void)0 : crate__assert_fail(#x, __FILE__, __LINE__))

/* ---- small numeric helpers ------------------------------------------------ */

/* True when every entry of x[0..n) is finite. */
bool crate__all_finite(const double *x, size_t n);
bool crate__all_finitef(const float *x, size_t n);

/* Checked calloc of n * size bytes (0 bytes gives a 1-byte block). */
void *crate__calloc(size_t n, size_t size);

/* ---- GEMM seam (row-major) ------------------------------------------------ */

/* C (M, N) = alpha * op(A) op(B) + beta * C with op(X) = X or X^T; every
 * matrix row-major with leading dimension (row stride) lda, ldb, ldc.
 * op(A) is (M, K), op(B) is (K, N).  Over CBLAS; the _ref twins are naive
 * loops with double accumulation, used by tests. */
void crate_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc);
void crate_dgemm(bool ta, bool tb, size_t M, size_t N, size_t K, double alpha,
                 const double *A, size_t lda, const double *B, size_t ldb,
                 double beta, double *C, size_t ldc);
void crate_sgemm_ref(bool ta, bool tb, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc);
void crate_dgemm_ref(bool ta, bool tb, size_t M, size_t N, size_t K,
                     double alpha, const double *A, size_t lda, const double *B,
                     size_t ldb, double beta, double *C, size_t ldc);

/* ---- LAPACK wrappers (src/core/lapack.c) ---------------------------------- */
/* Symmetric matrices are n x n, row-major with leading dimension lda.  For a
 * symmetric matrix row-major and column-major agree, so no transposes. */

/* In-place Cholesky A = L L^T; the lower triangle (row-major) holds L after.
 * @return OK or ENUMERIC (not SPD) with a message naming what. */
int crate__dpotrf(size_t n, double *A, size_t lda, const char *what);
int crate__spotrf(size_t n, float *A, size_t lda, const char *what);

/* Solves A X = B for SPD A already factored by crate__dpotrf; B is (n, nrhs)
 * row-major, overwritten with X. */
int crate__dpotrs(size_t n, size_t nrhs, const double *L, size_t lda, double *B,
                  size_t ldb);

/* log det A of an SPD matrix, A overwritten by its Cholesky factor. */
int crate__dlogdet_spd(size_t n, double *A, size_t lda, double *out,
                       const char *what);

/* Eigenvalues (ascending) of a symmetric matrix, and eigenvectors in the rows
 * of A when vectors is true (row i of A = eigenvector of w[i]). A is
 * overwritten.  Uses dsyevd/ssyevd. */
int crate__dsyev(size_t n, double *A, size_t lda, double *w, bool vectors);
int crate__ssyev(size_t n, float *A, size_t lda, float *w, bool vectors);

/* Orthonormalises the columns of a (rows, cols) column-major matrix in place
 * (thin QR, Q returned), rows >= cols.  Uses dgeqrf + dorgqr. */
int crate__dqr_orthonormalize(size_t rows, size_t cols, double *A_colmajor);

#endif
