/* test_core.c: the core pieces: status model, Philox RNG, GEMM seam and the
 * LAPACK wrappers (log-det, eigenvalues, QR). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

/* ---- status model --------------------------------------------------------- */

static void test_status_texts(void **state) {
  (void)state;
  const int codes[] = {CRATE_STATUS_OK, CRATE_STATUS_ENOMEM, CRATE_STATUS_EINVAL,
                       CRATE_STATUS_EIO, CRATE_STATUS_ENOENT, CRATE_STATUS_EFORMAT,
                       CRATE_STATUS_EBACKEND, CRATE_STATUS_ENUMERIC};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = crate_strerror(codes[i]);
    assert_non_null(s);
    assert_true(strlen(s) > 3);
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(s, crate_strerror(codes[j]));
  }
  assert_string_equal(crate_strerror(-99), "unknown status");
  int st = CRATE_ERROR(CRATE_STATUS_EINVAL, "demo: value %d", 7);
  assert_int_equal(st, CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "demo: value 7 [test_core.c:"));
  crate_error_clear();
  assert_string_equal(crate_error_message(), "");
}

/* ---- RNG ------------------------------------------------------------------ */

static void test_philox_known_answers(void **state) {
  (void)state;
  /* Random123 known-answer vectors (STYLE.md §9.6). */
  const uint32_t ctr[3][4] = {{0, 0, 0, 0}, {0, 0, 0, 0},
                              {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  const uint32_t key[3][2] = {{0, 0}, {42, 0}, {0xa4093822u, 0x299f31d0u}};
  const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                               {0x9ceaf053u, 0x77f5493bu, 0x12bf50adu, 0x5742b3d7u},
                               {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
  for (int t = 0; t < 3; t++) {
    uint32_t out[4];
    crate_philox4x32(ctr[t], key[t], out);
    crate_report("rng", "philox vector %d: %08x %08x %08x %08x", t, out[0], out[1], out[2],
                 out[3]);
    for (int i = 0; i < 4; i++)
      assert_int_equal(out[i], want[t][i]);
  }
}

static void test_rng_reproducible(void **state) {
  (void)state;
  crate_rng a, b, c;
  crate_rng_init(&a, 1234, CRATE_RNG_NOISE);
  crate_rng_init(&b, 1234, CRATE_RNG_NOISE);
  crate_rng_init(&c, 1234, CRATE_RNG_MASK);
  size_t same_stream_diff = 0, other_stream_same = 0;
  for (int i = 0; i < 1000; i++) {
    double x = crate_rng_normal(&a), y = crate_rng_normal(&b), z = crate_rng_normal(&c);
    same_stream_diff += memcmp(&x, &y, sizeof x) != 0;
    other_stream_same += x == z;
  }
  crate_report("rng", "same seed/stream mismatches %zu of 1000; other stream equal draws %zu",
               same_stream_diff, other_stream_same);
  assert_int_equal(same_stream_diff, 0);
  assert_true(other_stream_same < 5);
  /* A copied state continues identically (checkpointing). */
  crate_rng snap = a;
  double x1 = crate_rng_uniform(&a), x2 = crate_rng_uniform(&snap);
  assert_memory_equal(&x1, &x2, sizeof x1);
  /* Explicit positions: sample 7 of step 3 is independent of what came before. */
  crate_rng p, q;
  crate_rng_init_at(&p, 99, CRATE_RNG_MASK, 3, 7);
  crate_rng_init(&q, 99, CRATE_RNG_MASK);
  for (int i = 0; i < 50; i++)
    (void)crate_rng_u32(&q);
  crate_rng_init_at(&q, 99, CRATE_RNG_MASK, 3, 7);
  for (int i = 0; i < 20; i++)
    assert_int_equal(crate_rng_u32(&p), crate_rng_u32(&q));
}

static void test_rng_moments(void **state) {
  (void)state;
  enum { M = 200000 };
  crate_rng r;
  crate_rng_init(&r, 7, CRATE_RNG_NOISE);
  double su = 0, su2 = 0, sn = 0, sn2 = 0, sn4 = 0;
  double umin = 1, umax = 0;
  for (int i = 0; i < M; i++) {
    double u = crate_rng_uniform(&r), n = crate_rng_normal(&r);
    su += u;
    su2 += u * u;
    sn += n;
    sn2 += n * n;
    sn4 += n * n * n * n;
    if (u < umin) umin = u;
    if (u > umax) umax = u;
  }
  double mu = su / M, vu = su2 / M - mu * mu, mn = sn / M, vn = sn2 / M - mn * mn;
  double kurt = sn4 / M;
  /* Standard errors: uniform mean sqrt(1/12/M); normal mean 1/sqrt(M);
   * normal variance sqrt(2/M); E n^4 = 3 with SE sqrt(96/M). */
  crate_report("rng", "uniform mean %.5f var %.5f [%.2e, %.6f]; normal mean %.5f var %.5f "
               "E n^4 %.4f", mu, vu, umin, umax, mn, vn, kurt);
  assert_true(fabs(mu - 0.5) <= 4 * sqrt(1.0 / 12 / M));
  assert_true(fabs(vu - 1.0 / 12) <= 4 * sqrt(1.0 / 180 / M));
  assert_true(fabs(mn) <= 4 / sqrt((double)M));
  assert_true(fabs(vn - 1) <= 4 * sqrt(2.0 / M));
  assert_true(fabs(kurt - 3) <= 4 * sqrt(96.0 / M));
  assert_true(umin >= 0.0 && umax < 1.0);
  /* Unbiased integers: chi-square over 10 cells (9 dof, 99.9% point 27.88). */
  long cnt[10] = {0};
  for (int i = 0; i < M; i++)
    cnt[crate_rng_below(&r, 10)]++;
  double chi2 = 0;
  for (int i = 0; i < 10; i++)
    chi2 += (cnt[i] - M / 10.0) * (cnt[i] - M / 10.0) / (M / 10.0);
  crate_report("rng", "below(10) chi2 = %.2f (9 dof)", chi2);
  assert_true(chi2 < 27.88);
}

/* ---- GEMM seam ------------------------------------------------------------ */

static void test_gemm_vs_naive(void **state) {
  (void)state;
  crate_rng r;
  crate_rng_init(&r, 3, CRATE_RNG_INIT);
  const size_t M = 37, N = 23, K = 19, pad = 3;
  double worst_d = 0, worst_s = 0;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      size_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
      size_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
      double *A = malloc(ar * lda * sizeof *A), *B = malloc(br * ldb * sizeof *B);
      double *C1 = malloc(M * ldc * sizeof *C1), *C2 = malloc(M * ldc * sizeof *C2);
      float *Af = malloc(ar * lda * sizeof *Af), *Bf = malloc(br * ldb * sizeof *Bf);
      float *C1f = malloc(M * ldc * sizeof *C1f), *C2f = malloc(M * ldc * sizeof *C2f);
      crate_rng_normal_fill(&r, A, ar * lda);
      crate_rng_normal_fill(&r, B, br * ldb);
      crate_rng_normal_fill(&r, C1, M * ldc);
      memcpy(C2, C1, M * ldc * sizeof *C1);
      for (size_t i = 0; i < ar * lda; i++) Af[i] = (float)A[i];
      for (size_t i = 0; i < br * ldb; i++) Bf[i] = (float)B[i];
      for (size_t i = 0; i < M * ldc; i++) C1f[i] = C2f[i] = (float)C1[i];
      crate_dgemm(ta, tb, M, N, K, 0.7, A, lda, B, ldb, -0.3, C1, ldc);
      crate_dgemm_ref(ta, tb, M, N, K, 0.7, A, lda, B, ldb, -0.3, C2, ldc);
      crate_sgemm(ta, tb, M, N, K, 0.7f, Af, lda, Bf, ldb, -0.3f, C1f, ldc);
      crate_sgemm_ref(ta, tb, M, N, K, 0.7f, Af, lda, Bf, ldb, -0.3f, C2f, ldc);
      double ed = crate_rel_linf(C1, C2, M * ldc), es = crate_rel_linff(C1f, C2f, M * ldc);
      crate_report("gemm", "ta=%d tb=%d: double rel err %.2e, float rel err %.2e", ta, tb, ed, es);
      if (ed > worst_d) worst_d = ed;
      if (es > worst_s) worst_s = es;
      free(A); free(B); free(C1); free(C2); free(Af); free(Bf); free(C1f); free(C2f);
    }
  /* K = 19 terms: double rounding ~ 19 * 2^-53, float ~ 19 * 2^-24. */
  assert_true(worst_d < 1e-14);
  assert_true(worst_s < 1e-5);
}

/* ---- LAPACK --------------------------------------------------------------- */

static void test_logdet_known_answer(void **state) {
  (void)state;
  double A[9] = {4, 2, 0, 2, 5, 1, 0, 1, 3};
  double ld = 0;
  assert_int_equal(crate__dlogdet_spd(3, A, 3, &ld, "test"), CRATE_STATUS_OK);
  crate_report("lapack", "logdet [[4,2,0],[2,5,1],[0,1,3]] = %.12f (log 44 = %.12f)", ld, log(44.0));
  assert_true(fabs(ld - log(44.0)) < 1e-13);
  double E[9] = {4, 2, 0, 2, 5, 1, 0, 1, 3}, w[3];
  assert_int_equal(crate__dsyev(3, E, 3, w, false), CRATE_STATUS_OK);
  crate_report("lapack", "eigenvalues %.6f %.6f %.6f", w[0], w[1], w[2]);
  assert_true(fabs(w[0] - 2.0) < 1e-12 && fabs(w[1] - (5 - sqrt(3))) < 1e-12 &&
              fabs(w[2] - (5 + sqrt(3))) < 1e-12);
  float Ef[9] = {4, 2, 0, 2, 5, 1, 0, 1, 3}, wf[3];
  assert_int_equal(crate__ssyev(3, Ef, 3, wf, false), CRATE_STATUS_OK);
  assert_true(fabs(wf[2] - (5 + sqrt(3))) < 1e-5);
  /* Not SPD: a status, never a NaN. */
  double bad[4] = {1, 2, 2, 1};
  assert_int_equal(crate__dlogdet_spd(2, bad, 2, &ld, "test"), CRATE_STATUS_ENUMERIC);
  assert_non_null(strstr(crate_error_message(), "not positive definite"));
}

/* Dense reference: log det by Gaussian elimination with partial pivoting. */
static double logdet_gauss(size_t n, double *A) {
  double s = 0;
  for (size_t c = 0; c < n; c++) {
    size_t piv = c;
    for (size_t r = c + 1; r < n; r++)
      if (fabs(A[r * n + c]) > fabs(A[piv * n + c])) piv = r;
    if (piv != c)
      for (size_t j = 0; j < n; j++) {
        double t = A[c * n + j];
        A[c * n + j] = A[piv * n + j];
        A[piv * n + j] = t;
      }
    s += log(fabs(A[c * n + c]));
    for (size_t r = c + 1; r < n; r++) {
      double f = A[r * n + c] / A[c * n + c];
      for (size_t j = c; j < n; j++) A[r * n + j] -= f * A[c * n + j];
    }
  }
  return s;
}

static void test_logdet_vs_dense(void **state) {
  (void)state;
  crate_rng r;
  crate_rng_init(&r, 11, CRATE_RNG_INIT);
  enum { n = 40 };
  double G[n * n], A[n * n], B[n * n], S[n * n], X[n * 3], Y[n * 3];
  crate_rng_normal_fill(&r, G, n * n);
  crate_dgemm(false, true, n, n, n, 1.0 / n, G, n, G, n, 0.0, A, n);
  for (int i = 0; i < n; i++) A[i * n + i] += 0.5;
  memcpy(B, A, sizeof A);
  memcpy(S, A, sizeof A);
  double l1 = 0, l2 = logdet_gauss(n, B);
  assert_int_equal(crate__dlogdet_spd(n, A, n, &l1, "test"), CRATE_STATUS_OK);
  double rel = fabs(l1 - l2) / fabs(l2);
  crate_report("lapack", "logdet 40x40 SPD: cholesky %.12f, gauss %.12f, rel diff %.2e", l1, l2, rel);
  assert_true(rel < 1e-12);
  /* Cholesky solve: A X = Y. */
  crate_rng_normal_fill(&r, Y, n * 3);
  memcpy(X, Y, sizeof Y);
  assert_int_equal(crate__dpotrs(n, 3, A, n, X, 3), CRATE_STATUS_OK);
  double AX[n * 3];
  crate_dgemm(false, false, n, 3, n, 1.0, S, n, X, 3, 0.0, AX, 3);
  double res = crate_rel_linf(AX, Y, n * 3);
  crate_report("lapack", "cholesky solve residual %.2e", res);
  assert_true(res < 1e-12);
}

static void test_qr_orthonormal(void **state) {
  (void)state;
  crate_rng r;
  crate_rng_init(&r, 5, CRATE_RNG_INIT);
  enum { d = 9, q = 4 };
  double Q[d * q], G[q * q];
  crate_rng_normal_fill(&r, Q, d * q);
  assert_int_equal(crate__dqr_orthonormalize(d, q, Q), CRATE_STATUS_OK);
  /* Column-major Q: Q^T Q = Q_rowview Q_rowview^T with rows = columns. */
  crate_dgemm(false, true, q, q, d, 1.0, Q, d, Q, d, 0.0, G, q);
  double e = 0;
  for (int i = 0; i < q; i++)
    for (int j = 0; j < q; j++) e = fmax(e, fabs(G[i * q + j] - (i == j)));
  crate_report("lapack", "QR orthonormality max |Q^T Q - I| = %.2e", e);
  assert_true(e < 1e-14);
  assert_int_equal(crate__dqr_orthonormalize(3, 4, Q), CRATE_STATUS_EINVAL);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_texts),       cmocka_unit_test(test_philox_known_answers),
      cmocka_unit_test(test_rng_reproducible),   cmocka_unit_test(test_rng_moments),
      cmocka_unit_test(test_gemm_vs_naive),      cmocka_unit_test(test_logdet_known_answer),
      cmocka_unit_test(test_logdet_vs_dense),    cmocka_unit_test(test_qr_orthonormal),
  };
  return CRATE_RUN("core", tests, argc, argv);
}
