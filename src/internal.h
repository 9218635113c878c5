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

/* ---- thread ownership (src/core/threads.c; STYLE.md §6) -------------------- */

/* Before an OpenMP region whose iterations call BLAS: makes OpenBLAS run
 * single-threaded (one owner of threads per code path) and returns the
 * thread count to restore, or 0 when nothing was changed (serial region,
 * one thread already, a BLAS without the control). */
int crate__blas_serial_begin(bool parallel_region);
/* After the region: restores the count crate__blas_serial_begin returned. */
void crate__blas_serial_end(int saved);

/* Entry of the model code path (forward, backward, infer): when OpenMP owns
 * its threads (crate_thread_owner), makes every BLAS call inside
 * single-threaded until crate__blas_serial_end(returned value). */
int crate__model_region_begin(void);

/* Backward ops of crate/ops.h with a choice for the input gradient:
 * acc = true accumulates (ga += ..., the public contract), acc = false
 * overwrites it, so the model's backward needs no zeroing pass over the
 * (M, d) buffer first (src/ops/; the public functions call these). */
void crate__layernorm_backward_ex(float *gx, float *ggamma, float *gbeta, const float *mean,
                                  const float *rstd, const float *gy, const float *x,
                                  const float *gamma, size_t M, size_t d, bool acc);
void crate__ista_backward_ex(float *ga, float *gD, float *scratch, const float *y, const float *r,
                             const float *gy, const float *a, const float *D, double eta, size_t M,
                             size_t d, bool acc);
void crate__linear_backward_ex(float *gx, float *gW, float *gb, const float *gy, const float *x,
                               const float *W, size_t M, size_t din, size_t dout, bool acc);
void crate__mssa_backward_ex(float *ga, float *gWqkv, float *gWo, float *gbo, float *scratch,
                             const float *w, const float *attn, const float *o, const float *gm,
                             const float *a, const float *Wqkv, const float *Wo, size_t B,
                             size_t N, size_t d, size_t K, size_t p, bool acc);

/* crate_sgemm for the large token GEMMs ((B N) x d x d and their backward).
 * With CRATE_THREADS_OPENMP the output is split into a grid of tiles of at
 * least 16 x 16, one single-threaded BLAS call per tile on OpenMP threads;
 * otherwise, for small products and inside a parallel region, it is one
 * plain crate_sgemm call. */
void crate__sgemm_par(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                      size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

#endif
