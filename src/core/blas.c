/* blas.c: the row-major GEMM seam over CBLAS (STYLE.md §6).  The only file
 * that includes cblas.h.  The _ref twins are naive triple loops with double
 * accumulation; tests compare the two for every transpose combination. */
#include <cblas.h>

#include "internal.h"

void crate_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta,
                 float *C, size_t ldc) {
  if (M == 0 || N == 0)
    return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void crate_dgemm(bool ta, bool tb, size_t M, size_t N, size_t K, double alpha,
                 const double *A, size_t lda, const double *B, size_t ldb, double beta,
                 double *C, size_t ldc) {
  if (M == 0 || N == 0)
    return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* op(A)[i][l] and op(B)[l][j] for row-major storage. */
#define OPA(i, l) (ta ? A[(l) * lda + (i)] : A[(i) * lda + (l)])
#define OPB(l, j) (tb ? B[(j) * ldb + (l)] : B[(l) * ldb + (j)])

void crate_sgemm_ref(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha,
                     const float *A, size_t lda, const float *B, size_t ldb, float beta,
                     float *C, size_t ldc) {
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double acc = 0.0;
      for (size_t l = 0; l < K; l++)
        acc += (double)OPA(i, l) * (double)OPB(l, j);
      double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
      C[i * ldc + j] = (float)(alpha * acc + c);
    }
}

void crate_dgemm_ref(bool ta, bool tb, size_t M, size_t N, size_t K, double alpha,
                     const double *A, size_t lda, const double *B, size_t ldb, double beta,
                     double *C, size_t ldc) {
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double acc = 0.0;
      for (size_t l = 0; l < K; l++)
        acc += OPA(i, l) * OPB(l, j);
      double c = beta == 0.0 ? 0.0 : beta * C[i * ldc + j];
      C[i * ldc + j] = alpha * acc + c;
    }
}
