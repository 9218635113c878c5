/* test_rate.c: coding rates, rate reduction and their gradients (MATH.md
 * §1.1-1.6, §2.1-2.2) and catalogue rows D1-D4 of MATH.md §6.
 *
 * References are computed here by independent naive loops in column math
 * (token j = row j of the (N, d) array), never by the code under test.  The
 * convention of every reported rate (P4): eps2 = epsilon^2, tokens not
 * normalised, N = number of rows of Z (no CLS token).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

/* Capacities of the fixed test arrays (no VLAs). */
enum { LD = 12, LN = 16, LP = 24, LK = 4 };

/* ---- fixtures ------------------------------------------------------------- */

typedef struct fixture {
  size_t d, K, N;
  size_t p[LK];
  double Ut[LP * LD]; /* (sum p, d) stacked U_k^T */
  double Z[LN * LD];  /* (N, d) tokens as rows */
  crate_subspaces U;
} fixture;

/* Random bases of the given kind and Gaussian tokens, from a fixed seed. */
static void fixture_init(fixture *f, size_t d, size_t K, const size_t *p, size_t N,
                         crate_subspaces_kind kind, uint64_t seed) {
  assert_true(d <= LD && K <= LK && N <= LN);
  size_t P = 0;
  for (size_t k = 0; k < K; k++) {
    f->p[k] = p[k];
    P += p[k];
  }
  assert_true(P <= LP);
  f->d = d;
  f->K = K;
  f->N = N;
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_INIT);
  assert_int_equal(crate_subspaces_random(f->Ut, d, K, p, kind, &r), CRATE_STATUS_OK);
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  crate_rng_normal_fill(&r, f->Z, N * d);
  f->U = (crate_subspaces){.d = d, .K = K, .p = f->p, .Ut = f->Ut};
}

static double rel_scalar(double a, double b) {
  return fabs(a - b) / fmax(fabs(b), 1e-300);
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* Checks a failing call: its status and a message in the rate domain that
 * mentions what. */
static void expect_error(int st, int want, const char *what) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", crate_error_message());
  crate_report("err", "status %d: %s", st, msg);
  assert_int_equal(st, want);
  crate_check(strncmp(msg, "rate: ", 6) == 0, "message '%s' must start with 'rate: '", msg);
  crate_check(strstr(msg, what) != NULL, "message '%s' must mention '%s'", msg, what);
}

/* ---- naive references (column math, explicit loops) ----------------------- */

/* x = U_k^T z_j for head k; Z: (N, d), Utk: (p, d), X: (N, p) (row j = x_j). */
static void ref_project(const double *Z, size_t N, size_t d, const double *Utk, size_t p,
                        double *X) {
  for (size_t j = 0; j < N; j++)
    for (size_t a = 0; a < p; a++) {
      double s = 0.0;
      for (size_t l = 0; l < d; l++)
        s += Utk[a * d + l] * Z[j * d + l];
      X[j * p + a] = s;
    }
}

/* 1/2 logdet(I_N + b X^T X) with (X^T X)_{ij} = <x_i, x_j>: the token form. */
static double ref_half_logdet_tokens(const double *X, size_t N, size_t p, double b) {
  double G[LN * LN], ld = 0.0;
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++)
      G[i * N + j] = (i == j) + b * dot(X + i * p, X + j * p, p);
  assert_int_equal(crate__dlogdet_spd(N, G, N, &ld, "test"), CRATE_STATUS_OK);
  return 0.5 * ld;
}

/* 1/2 logdet(I_p + b X X^T) with (X X^T)_{ab} = sum_j x_j[a] x_j[b]. */
static double ref_half_logdet_features(const double *X, size_t N, size_t p, double b) {
  double G[LD * LD], ld = 0.0;
  assert_true(p <= LD);
  for (size_t a = 0; a < p; a++)
    for (size_t c = 0; c < p; c++) {
      double s = 0.0;
      for (size_t j = 0; j < N; j++)
        s += X[j * p + a] * X[j * p + c];
      G[a * p + c] = (a == c) + b * s;
    }
  assert_int_equal(crate__dlogdet_spd(p, G, p, &ld, "test"), CRATE_STATUS_OK);
  return 0.5 * ld;
}

/* ---- finite differences --------------------------------------------------- */

typedef struct objective {
  size_t d;
  const crate_subspaces *U; /* NULL: R(Z); else R^c(Z | U) */
  double eps2;
} objective;

static double eval_objective(const objective *o, const double *Z, size_t N) {
  double v = 0.0;
  int st = o->U ? crate_rate_Rc(Z, N, o->U, o->eps2, &v) : crate_rate_R(Z, N, o->d, o->eps2, &v);
  assert_int_equal(st, CRATE_STATUS_OK);
  return v;
}

/* Fourth-order central differences, step h:
 * f'(z) ~ (8 (f(z+h) - f(z-h)) - (f(z+2h) - f(z-2h))) / (12 h). */
static void fd_grad(const objective *o, const double *Z, size_t N, double h, double *G) {
  size_t n = N * o->d;
  double W[LN * LD];
  memcpy(W, Z, n * sizeof *W);
  for (size_t i = 0; i < n; i++) {
    double z = W[i], f[4];
    const double off[4] = {h, -h, 2 * h, -2 * h};
    for (int s = 0; s < 4; s++) {
      W[i] = z + off[s];
      f[s] = eval_objective(o, W, N);
    }
    W[i] = z;
    G[i] = (8.0 * (f[0] - f[1]) - (f[2] - f[3])) / (12.0 * h);
  }
}

/* ---- unit tests ----------------------------------------------------------- */

/* R via the library (smaller Gram) vs the other Sylvester form computed here;
 * R^c per head likewise, with one head in each regime (p_k < N, p_k > N). */
static void test_rate_sylvester(void **state) {
  (void)state;
  const size_t shapes[2][2] = {{4, 9}, {12, 5}}; /* (N, d): N < d, then N > d */
  for (int c = 0; c < 2; c++) {
    size_t N = shapes[c][0], d = shapes[c][1];
    double Z[LN * LD], R = 0.0, eps2 = 0.5;
    crate_rng r;
    crate_rng_init(&r, 11 + (uint64_t)c, CRATE_RNG_NOISE);
    crate_rng_normal_fill(&r, Z, N * d);
    assert_int_equal(crate_rate_R(Z, N, d, eps2, &R), CRATE_STATUS_OK);
    double alpha = (double)d / ((double)N * eps2);
    double rt = ref_half_logdet_tokens(Z, N, d, alpha);
    double rf = ref_half_logdet_features(Z, N, d, alpha);
    /* The library factors the smaller matrix; compare with the larger one. */
    double other = N < d ? rf : rt, e = rel_scalar(R, other);
    crate_report("sylv",
                 "R (N=%zu, d=%zu, eps2=%g, unnormalised): lib %.15f, NxN %.15f, "
                 "dxd %.15f; lib vs %s form rel %.3e (bound 1e-12)",
                 N, d, eps2, R, rt, rf, N < d ? "dxd" : "NxN", e);
    assert_true(e <= 1e-12);
    assert_true(rel_scalar(rt, rf) <= 1e-12);
  }

  /* R^c: heads of rank 1 (p < N, p x p Gram) and 5 (p > N, N x N Gram). */
  fixture f;
  const size_t p[3] = {1, 3, 5};
  fixture_init(&f, 7, 3, p, 4, CRATE_SUBSPACES_INCOHERENT, 21);
  double eps2 = 0.4, Rc = 0.0, ref = 0.0;
  assert_int_equal(crate_rate_Rc(f.Z, f.N, &f.U, eps2, &Rc), CRATE_STATUS_OK);
  for (size_t k = 0, off = 0; k < f.K; off += p[k], k++) {
    double X[LN * LD], beta = (double)p[k] / ((double)f.N * eps2);
    ref_project(f.Z, f.N, f.d, f.Ut + off * f.d, p[k], X);
    ref += p[k] < f.N ? ref_half_logdet_tokens(X, f.N, p[k], beta)
                      : ref_half_logdet_features(X, f.N, p[k], beta);
  }
  double e = rel_scalar(Rc, ref);
  crate_report("sylv",
               "R^c (N=4, p={1,3,5}, eps2=0.4): lib %.15f vs other-form sum %.15f, "
               "rel %.3e (bound 1e-12)",
               Rc, ref, e);
  assert_true(e <= 1e-12);

  /* K = 1 with U = I_d: beta = alpha, so R^c(Z | I) = R(Z). */
  double I[LD * LD] = {0}, R = 0.0;
  size_t pd = f.d;
  for (size_t i = 0; i < f.d; i++)
    I[i * f.d + i] = 1.0;
  crate_subspaces Uid = {.d = f.d, .K = 1, .p = &pd, .Ut = I};
  assert_int_equal(crate_rate_Rc(f.Z, f.N, &Uid, eps2, &Rc), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_R(f.Z, f.N, f.d, eps2, &R), CRATE_STATUS_OK);
  e = rel_scalar(Rc, R);
  crate_report("sylv", "R^c(Z | I_d) = %.15f vs R(Z) = %.15f, rel %.3e (bound 1e-12)", Rc, R, e);
  assert_true(e <= 1e-12);
}

/* Closed forms: orthogonal tokens give R = N/2 log(1 + alpha c); tokens on
 * coordinate axes with coordinate-block subspaces give R^c = 1/2 sum_j
 * log(1 + beta s_j^2).  Then Delta R and the SRR objective. */
static void test_rate_known_answers(void **state) {
  (void)state;
  enum { d = 6, N = 4 };
  double Q[d * N], Z[N * d], c = 2.5, eps2 = 0.3, R = 0.0;
  crate_rng r;
  crate_rng_init(&r, 31, CRATE_RNG_INIT);
  crate_rng_normal_fill(&r, Q, d * N);
  assert_int_equal(crate__dqr_orthonormalize(d, N, Q), CRATE_STATUS_OK);
  /* Column-major Q (d, N): column j is token j, so the storage is Z^T already. */
  for (size_t i = 0; i < (size_t)(N * d); i++)
    Z[i] = sqrt(c) * Q[i];
  assert_int_equal(crate_rate_R(Z, N, d, eps2, &R), CRATE_STATUS_OK);
  double alpha = (double)d / (N * eps2), want = 0.5 * N * log1p(alpha * c);
  double e = rel_scalar(R, want);
  crate_report("known",
               "R of %d orthogonal tokens, |z|^2 = %g: %.15f vs N/2 log(1+alpha c) = "
               "%.15f, rel %.3e (bound 1e-13)",
               N, c, R, want, e);
  assert_true(e <= 1e-13);

  /* Coordinate blocks U_k = [e_2k, e_2k+1]; token j = s_j e_{a_j}. */
  enum { M = 5 };
  const size_t p[3] = {2, 2, 2}, axis[M] = {0, 3, 4, 1, 5};
  const double s[M] = {0.7, -1.3, 2.0, 0.4, -0.9};
  double Ut[6 * d] = {0}, Y[M * d] = {0}, Rc = 0.0;
  for (size_t i = 0; i < d; i++)
    Ut[i * d + i] = 1.0;
  for (size_t j = 0; j < M; j++)
    Y[j * d + axis[j]] = s[j];
  crate_subspaces U = {.d = d, .K = 3, .p = p, .Ut = Ut};
  assert_int_equal(crate_rate_Rc(Y, M, &U, eps2, &Rc), CRATE_STATUS_OK);
  double beta = 2.0 / (M * eps2), wantc = 0.0;
  for (size_t j = 0; j < M; j++)
    wantc += 0.5 * log1p(beta * s[j] * s[j]);
  e = rel_scalar(Rc, wantc);
  crate_report("known",
               "R^c of axis tokens in coordinate blocks: %.15f vs 1/2 sum log(1+beta "
               "s^2) = %.15f, rel %.3e (bound 1e-13)",
               Rc, wantc, e);
  assert_true(e <= 1e-13);

  /* Delta R and SRR on the same tokens. */
  double Rm = 0.0, dR = 0.0, srr = 0.0, lambda = 0.1, l1 = 0.0;
  assert_int_equal(crate_rate_R(Y, M, d, eps2, &Rm), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_delta(Y, M, &U, eps2, &dR), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_srr(Y, M, &U, eps2, lambda, &srr), CRATE_STATUS_OK);
  for (size_t j = 0; j < M; j++)
    l1 += fabs(s[j]);
  double e1 = rel_scalar(dR, Rm - wantc), e2 = rel_scalar(srr, Rm - wantc - lambda * l1);
  crate_report("known",
               "Delta R = %.15f (rel %.3e), SRR(lambda=0.1) = %.15f (rel %.3e); bound "
               "1e-13",
               dR, e1, srr, e2);
  assert_true(e1 <= 1e-13 && e2 <= 1e-13);
}

/* R and R^c are invariant under token permutation; R under a rotation of the
 * features, and R^c when the bases rotate with the tokens.  Gradients move
 * with the tokens (equivariance). */
static void test_rate_invariance(void **state) {
  (void)state;
  fixture f;
  const size_t p[3] = {2, 3, 2};
  fixture_init(&f, 6, 3, p, 8, CRATE_SUBSPACES_INCOHERENT, 41);
  size_t N = f.N, d = f.d, P = 7;
  double eps2 = 0.5, R0 = 0, Rc0 = 0, R1 = 0, Rc1 = 0;
  double G0[LN * LD], G1[LN * LD], Gp[LN * LD], Zp[LN * LD];
  assert_int_equal(crate_rate_R(f.Z, N, d, eps2, &R0), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc(f.Z, N, &f.U, eps2, &Rc0), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc_grad(f.Z, N, &f.U, eps2, CRATE_RATE_FORM_PP, G0), CRATE_STATUS_OK);

  /* Permutation (Fisher-Yates, fixed seed). */
  size_t perm[LN];
  crate_rng r;
  crate_rng_init(&r, 42, CRATE_RNG_DATA);
  for (size_t i = 0; i < N; i++)
    perm[i] = i;
  for (size_t i = N - 1; i > 0; i--) {
    size_t j = crate_rng_below(&r, (uint32_t)(i + 1)), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < N; i++)
    memcpy(Zp + i * d, f.Z + perm[i] * d, d * sizeof *Zp);
  assert_int_equal(crate_rate_R(Zp, N, d, eps2, &R1), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc(Zp, N, &f.U, eps2, &Rc1), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc_grad(Zp, N, &f.U, eps2, CRATE_RATE_FORM_PP, G1), CRATE_STATUS_OK);
  for (size_t i = 0; i < N; i++)
    memcpy(Gp + i * d, G0 + perm[i] * d, d * sizeof *Gp);
  double eR = rel_scalar(R1, R0), eRc = rel_scalar(Rc1, Rc0), eG = crate_rel_linf(G1, Gp, N * d);
  crate_report("inv",
               "permutation: R rel %.3e, R^c rel %.3e, grad R^c rows rel %.3e "
               "(bound 1e-12)",
               eR, eRc, eG);
  assert_true(eR <= 1e-12 && eRc <= 1e-12 && eG <= 1e-12);

  /* Rotation z -> Q z: row-major Zr = Z Q^T, bases Utr = Ut Q^T. */
  double Q[LD * LD], Zr[LN * LD], Utr[LP * LD], Gr[LN * LD], GQ[LN * LD];
  crate_rng_init(&r, 43, CRATE_RNG_INIT);
  crate_rng_normal_fill(&r, Q, d * d);
  assert_int_equal(crate__dqr_orthonormalize(d, d, Q), CRATE_STATUS_OK);
  crate_dgemm_ref(false, true, N, d, d, 1.0, f.Z, d, Q, d, 0.0, Zr, d);
  crate_dgemm_ref(false, true, P, d, d, 1.0, f.Ut, d, Q, d, 0.0, Utr, d);
  crate_subspaces Ur = {.d = d, .K = f.K, .p = f.p, .Ut = Utr};
  double Rr = 0, Rcr = 0, Rc_unrot = 0, GR0[LN * LD], GRr[LN * LD], GRQ[LN * LD];
  assert_int_equal(crate_rate_R(Zr, N, d, eps2, &Rr), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc(Zr, N, &Ur, eps2, &Rcr), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc(Zr, N, &f.U, eps2, &Rc_unrot), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc_grad(Zr, N, &Ur, eps2, CRATE_RATE_FORM_NN, Gr), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_R_grad(f.Z, N, d, eps2, GR0), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_R_grad(Zr, N, d, eps2, GRr), CRATE_STATUS_OK);
  crate_dgemm_ref(false, true, N, d, d, 1.0, G0, d, Q, d, 0.0, GQ, d);
  crate_dgemm_ref(false, true, N, d, d, 1.0, GR0, d, Q, d, 0.0, GRQ, d);
  double eRr = rel_scalar(Rr, R0), eRcr = rel_scalar(Rcr, Rc0);
  double eGr = crate_rel_linf(Gr, GQ, N * d), eGRr = crate_rel_linf(GRr, GRQ, N * d);
  double moved = rel_scalar(Rc_unrot, Rc0);
  crate_report("inv",
               "rotation: R rel %.3e, R^c (bases rotated) rel %.3e, grad R rel %.3e, "
               "grad R^c rel %.3e (bound 1e-12); R^c with fixed bases moves by rel %.3e "
               "(must exceed 1e-3)",
               eRr, eRcr, eGRr, eGr, moved);
  assert_true(eRr <= 1e-12 && eRcr <= 1e-12 && eGr <= 1e-12 && eGRr <= 1e-12);
  assert_true(moved > 1e-3);
}

/* grad R (both memory forms: N < d solves N x N, N > d solves d x d) vs
 * fourth-order central differences of R. */
static void test_rate_grad_R_fd(void **state) {
  (void)state;
  const size_t shapes[2][2] = {{4, 9}, {12, 5}};
  for (int c = 0; c < 2; c++) {
    size_t N = shapes[c][0], d = shapes[c][1];
    double Z[LN * LD], G[LN * LD], Gfd[LN * LD], eps2 = 0.7;
    crate_rng r;
    crate_rng_init(&r, 51 + (uint64_t)c, CRATE_RNG_NOISE);
    crate_rng_normal_fill(&r, Z, N * d);
    assert_int_equal(crate_rate_R_grad(Z, N, d, eps2, G), CRATE_STATUS_OK);
    objective o = {.d = d, .U = NULL, .eps2 = eps2};
    fd_grad(&o, Z, N, 1e-3, Gfd);
    double e = crate_rel_linf(G, Gfd, N * d);
    crate_report("gradR",
                 "N=%zu d=%zu eps2=%g: grad R vs 4th-order central FD (h=1e-3) rel "
                 "%.3e (bound 1e-8)",
                 N, d, eps2, e);
    assert_true(e <= 1e-8);
  }
}

/* Every input error is rejected with EINVAL and a "rate: " message; outputs
 * stay untouched.  An overflowing Gram gives ENUMERIC. */
static void test_rate_errors(void **state) {
  (void)state;
  fixture f;
  const size_t p[3] = {2, 2, 2};
  fixture_init(&f, 6, 3, p, 5, CRATE_SUBSPACES_ORTHOGONAL, 61);
  size_t N = f.N, d = f.d;
  double out = 123.0, G[LN * LD];
  for (size_t i = 0; i < N * d; i++)
    G[i] = 7.0;

  /* eps2 <= 0 or non-finite, in every entry point. */
  const double bad_eps[4] = {0.0, -1.0, NAN, INFINITY};
  for (int b = 0; b < 4; b++) {
    double e2 = bad_eps[b];
    expect_error(crate_rate_R(f.Z, N, d, e2, &out), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_Rc(f.Z, N, &f.U, e2, &out), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_delta(f.Z, N, &f.U, e2, &out), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_srr(f.Z, N, &f.U, e2, 0.1, &out), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_R_grad(f.Z, N, d, e2, G), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_Rc_grad(f.Z, N, &f.U, e2, CRATE_RATE_FORM_PP, G), CRATE_STATUS_EINVAL,
                 "eps2");
    expect_error(crate_rate_Rc_grad_neumann(f.Z, N, &f.U, e2, G), CRATE_STATUS_EINVAL, "eps2");
    expect_error(crate_rate_mssa(f.Z, N, &f.U, e2, CRATE_MSSA_SOFTMAX, G), CRATE_STATUS_EINVAL,
                 "eps2");
  }
  expect_error(crate_rate_R(f.Z, N, d, 1e-320, &out), CRATE_STATUS_EINVAL, "overflows");

  /* NaN in Z. */
  double Zn[LN * LD];
  memcpy(Zn, f.Z, N * d * sizeof *Zn);
  Zn[2 * d + 3] = NAN;
  expect_error(crate_rate_R(Zn, N, d, 0.5, &out), CRATE_STATUS_EINVAL, "token 2, coordinate 3");
  expect_error(crate_rate_Rc(Zn, N, &f.U, 0.5, &out), CRATE_STATUS_EINVAL, "non-finite");
  expect_error(crate_rate_Rc_grad(Zn, N, &f.U, 0.5, CRATE_RATE_FORM_NN, G), CRATE_STATUS_EINVAL,
               "non-finite");
  expect_error(crate_rate_mssa(Zn, N, &f.U, 0.5, CRATE_MSSA_LINEAR, G), CRATE_STATUS_EINVAL,
               "non-finite");

  /* N = 0, d = 0, NULL pointers. */
  expect_error(crate_rate_R(f.Z, 0, d, 0.5, &out), CRATE_STATUS_EINVAL, "N = 0");
  expect_error(crate_rate_Rc(f.Z, 0, &f.U, 0.5, &out), CRATE_STATUS_EINVAL, "N = 0");
  expect_error(crate_rate_Rc_grad_neumann(f.Z, 0, &f.U, 0.5, G), CRATE_STATUS_EINVAL, "N = 0");
  expect_error(crate_rate_R(f.Z, N, 0, 0.5, &out), CRATE_STATUS_EINVAL, "d = 0");
  expect_error(crate_rate_R(NULL, N, d, 0.5, &out), CRATE_STATUS_EINVAL, "NULL");
  expect_error(crate_rate_R(f.Z, N, d, 0.5, NULL), CRATE_STATUS_EINVAL, "NULL");
  expect_error(crate_rate_Rc(f.Z, N, NULL, 0.5, &out), CRATE_STATUS_EINVAL, "NULL");
  expect_error(crate_rate_R_grad(f.Z, N, d, 0.5, NULL), CRATE_STATUS_EINVAL, "NULL");
  expect_error(crate_rate_mssa(f.Z, N, &f.U, 0.5, CRATE_MSSA_LINEAR, NULL), CRATE_STATUS_EINVAL,
               "NULL");

  /* Malformed subspaces: rank 0, rank > d, missing arrays, K = 0. */
  const size_t bad0[3] = {2, 0, 2}, bad7[3] = {2, 7, 2};
  crate_subspaces B = f.U;
  B.p = bad0;
  expect_error(crate_rate_Rc(f.Z, N, &B, 0.5, &out), CRATE_STATUS_EINVAL, "rank p_1 = 0");
  B.p = bad7;
  expect_error(crate_rate_Rc_grad(f.Z, N, &B, 0.5, CRATE_RATE_FORM_PP, G), CRATE_STATUS_EINVAL,
               "rank p_1 = 7");
  expect_error(crate_rate_delta(f.Z, N, &B, 0.5, &out), CRATE_STATUS_EINVAL, "invalid subspaces");
  B = f.U;
  B.Ut = NULL;
  expect_error(crate_rate_mssa(f.Z, N, &B, 0.5, CRATE_MSSA_SOFTMAX, G), CRATE_STATUS_EINVAL,
               "basis array is NULL");
  B = f.U;
  B.K = 0;
  expect_error(crate_rate_Rc_grad_neumann(f.Z, N, &B, 0.5, G), CRATE_STATUS_EINVAL, "K > 0");

  /* Unknown enum values, bad lambda. */
  expect_error(crate_rate_Rc_grad(f.Z, N, &f.U, 0.5, (crate_rate_form)7, G), CRATE_STATUS_EINVAL,
               "form 7");
  expect_error(crate_rate_mssa(f.Z, N, &f.U, 0.5, (crate_mssa_kernel)9, G), CRATE_STATUS_EINVAL,
               "kernel 9");
  expect_error(crate_rate_srr(f.Z, N, &f.U, 0.5, NAN, &out), CRATE_STATUS_EINVAL, "lambda");
  expect_error(crate_rate_srr(f.Z, N, &f.U, 0.5, -0.1, &out), CRATE_STATUS_EINVAL, "lambda");

  /* Outputs are untouched by a rejected call. */
  bool untouched = out == 123.0;
  for (size_t i = 0; i < N * d; i++)
    untouched = untouched && G[i] == 7.0;
  crate_report("err", "outputs untouched after rejected calls: %s", untouched ? "yes" : "no");
  assert_true(untouched);

  /* Overflowing Gram (entries 1e160 square to inf): ENUMERIC, not a value. */
  double Zbig[LN * LD];
  for (size_t i = 0; i < N * d; i++)
    Zbig[i] = 1e160 * f.Z[i];
  expect_error(crate_rate_R(Zbig, N, d, 0.5, &out), CRATE_STATUS_ENUMERIC, "too large");
  expect_error(crate_rate_Rc(Zbig, N, &f.U, 0.5, &out), CRATE_STATUS_ENUMERIC, "too large");
  expect_error(crate_rate_Rc_grad(Zbig, N, &f.U, 0.5, CRATE_RATE_FORM_PP, G), CRATE_STATUS_ENUMERIC,
               "too large");
  expect_error(crate_rate_R_grad(Zbig, N, d, 0.5, G), CRATE_STATUS_ENUMERIC, "too large");
  expect_error(crate_rate_Rc_grad_neumann(Zbig, N, &f.U, 0.5, G), CRATE_STATUS_ENUMERIC,
               "too large");
  expect_error(crate_rate_mssa(Zbig, N, &f.U, 0.5, CRATE_MSSA_SOFTMAX, G), CRATE_STATUS_ENUMERIC,
               "too large");
}

/* Idealised MSSA vs a naive column-math evaluation: query j attends over
 * keys i with a_ij = exp(<x_i,x_j>) / sum_i' exp(<x_i',x_j>) (MATH §2.2, P9).
 * The wrong axis must be detected, and large scores must stay finite. */
static void ref_mssa(const fixture *f, const double *Z, double eps2, crate_mssa_kernel kernel,
                     bool wrong_axis, double *out) {
  size_t N = f->N, d = f->d;
  memset(out, 0, N * d * sizeof *out);
  for (size_t k = 0, off = 0; k < f->K; off += f->p[k], k++) {
    size_t p = f->p[k];
    const double *Utk = f->Ut + off * d;
    double X[LN * LD], S[LN * LN], beta = (double)p / ((double)N * eps2);
    ref_project(Z, N, d, Utk, p, X);
    for (size_t i = 0; i < N; i++)
      for (size_t j = 0; j < N; j++)
        S[i * N + j] = dot(X + i * p, X + j * p, p); /* S[i][j], key i, query j */
    for (size_t j = 0; j < N; j++) {
      double o[LD] = {0};
      for (size_t i = 0; i < N; i++) {
        double a = S[i * N + j];
        if (kernel == CRATE_MSSA_SOFTMAX) {
          /* Normalise over keys i' for query j (or, wrongly, over queries). */
          double m = -INFINITY, s = 0.0;
          for (size_t t = 0; t < N; t++)
            m = fmax(m, wrong_axis ? S[i * N + t] : S[t * N + j]);
          for (size_t t = 0; t < N; t++)
            s += exp((wrong_axis ? S[i * N + t] : S[t * N + j]) - m);
          a = exp(S[i * N + j] - m) / s;
        }
        for (size_t c = 0; c < p; c++)
          o[c] += a * X[i * p + c];
      }
      for (size_t l = 0; l < d; l++) {
        double s = 0.0;
        for (size_t c = 0; c < p; c++)
          s += Utk[c * d + l] * o[c];
        out[j * d + l] += beta * s;
      }
    }
  }
}

static void test_rate_mssa_naive(void **state) {
  (void)state;
  fixture f;
  const size_t p[3] = {1, 2, 3};
  fixture_init(&f, 6, 3, p, 7, CRATE_SUBSPACES_INCOHERENT, 71);
  size_t N = f.N, d = f.d;
  double eps2 = 0.5, M[LN * LD], R[LN * LD], W[LN * LD];
  for (int kern = 0; kern < 2; kern++) {
    crate_mssa_kernel kernel = kern ? CRATE_MSSA_LINEAR : CRATE_MSSA_SOFTMAX;
    assert_int_equal(crate_rate_mssa(f.Z, N, &f.U, eps2, kernel, M), CRATE_STATUS_OK);
    ref_mssa(&f, f.Z, eps2, kernel, false, R);
    double e = crate_rel_linf(M, R, N * d);
    crate_report("mssa", "%s kernel vs naive column math: rel %.3e (bound 1e-12)",
                 kern ? "linear" : "softmax", e);
    assert_true(e <= 1e-12);
  }
  /* Negative control: softmax over the wrong axis (queries) differs. */
  assert_int_equal(crate_rate_mssa(f.Z, N, &f.U, eps2, CRATE_MSSA_SOFTMAX, M), CRATE_STATUS_OK);
  ref_mssa(&f, f.Z, eps2, CRATE_MSSA_SOFTMAX, true, W);
  double ew = crate_rel_linf(M, W, N * d);
  crate_report("mssa", "softmax vs wrong-axis (over queries) softmax: rel %.3e (must exceed 1e-3)",
               ew);
  assert_true(ew > 1e-3);
  /* Scores up to ~1e4: exp would overflow without the max subtraction. */
  double Zs[LN * LD], smax = 0.0;
  for (size_t i = 0; i < N * d; i++)
    Zs[i] = 40.0 * f.Z[i];
  for (size_t i = 0; i < N; i++)
    smax = fmax(smax, dot(Zs + i * d, Zs + i * d, d));
  assert_int_equal(crate_rate_mssa(Zs, N, &f.U, eps2, CRATE_MSSA_SOFTMAX, M), CRATE_STATUS_OK);
  ref_mssa(&f, Zs, eps2, CRATE_MSSA_SOFTMAX, false, R);
  double es = crate_rel_linf(M, R, N * d);
  crate_report("mssa",
               "scaled tokens (max |z|^2 = %.0f): finite %s, softmax vs naive rel %.3e "
               "(bound 1e-12)",
               smax, crate__all_finite(M, N * d) ? "yes" : "no", es);
  assert_true(crate__all_finite(M, N * d) && es <= 1e-12);
}

/* ---- D1: gradient of R^c -------------------------------------------------- */

typedef struct d1_case {
  const char *name;
  size_t d, K, N;
  size_t p[3];
  crate_subspaces_kind kind;
  double eps2;
} d1_case;

static const d1_case d1_cases[3] = {
    {"orthogonal d=6 K=3 p=2 N=8", 6, 3, 8, {2, 2, 2}, CRATE_SUBSPACES_ORTHOGONAL, 0.5},
    {"incoherent d=6 K=3 p={1,2,3} N=5", 6, 3, 5, {1, 2, 3}, CRATE_SUBSPACES_INCOHERENT, 0.3},
    {"incoherent d=7 K=2 p={5,3} N=4 (p>N)", 7, 2, 4, {5, 3}, CRATE_SUBSPACES_INCOHERENT, 1.0},
};

static void test_d1_grad_pp_vs_fd(void **state) {
  (void)state;
  for (int c = 0; c < 3; c++) {
    const d1_case *dc = &d1_cases[c];
    fixture f;
    fixture_init(&f, dc->d, dc->K, dc->p, dc->N, dc->kind, 81 + (uint64_t)c);
    double G[LN * LD], Gfd[LN * LD];
    assert_int_equal(crate_rate_Rc_grad(f.Z, f.N, &f.U, dc->eps2, CRATE_RATE_FORM_PP, G),
                     CRATE_STATUS_OK);
    objective o = {.d = f.d, .U = &f.U, .eps2 = dc->eps2};
    fd_grad(&o, f.Z, f.N, 1e-3, Gfd);
    double e = crate_rel_linf(G, Gfd, f.N * f.d);
    crate_report("D1",
                 "%s, eps2=%g: PP grad R^c vs 4th-order central FD (h=1e-3) rel %.3e "
                 "(bound 1e-8)",
                 dc->name, dc->eps2, e);
    assert_true(e <= 1e-8);
  }
}

static void test_d1_pp_vs_nn(void **state) {
  (void)state;
  for (int c = 0; c < 3; c++) {
    const d1_case *dc = &d1_cases[c];
    fixture f;
    fixture_init(&f, dc->d, dc->K, dc->p, dc->N, dc->kind, 81 + (uint64_t)c);
    double Gp[LN * LD], Gn[LN * LD];
    assert_int_equal(crate_rate_Rc_grad(f.Z, f.N, &f.U, dc->eps2, CRATE_RATE_FORM_PP, Gp),
                     CRATE_STATUS_OK);
    assert_int_equal(crate_rate_Rc_grad(f.Z, f.N, &f.U, dc->eps2, CRATE_RATE_FORM_NN, Gn),
                     CRATE_STATUS_OK);
    double e = crate_rel_linf(Gp, Gn, f.N * f.d);
    crate_report("D1", "%s, eps2=%g: PP vs NN form rel %.3e (bound 1e-12)", dc->name, dc->eps2, e);
    assert_true(e <= 1e-12);
  }
}

/* ---- D2: Neumann approximation -------------------------------------------- */

/* max_k lambda_max(X_k^T X_k) (= lambda_max(X_k X_k^T), p x p). */
static double gram_lambda_max(const fixture *f) {
  double lmax = 0.0;
  for (size_t k = 0, off = 0; k < f->K; off += f->p[k], k++) {
    size_t p = f->p[k];
    double X[LN * LD], C[LD * LD], w[LD];
    ref_project(f->Z, f->N, f->d, f->Ut + off * f->d, p, X);
    crate_dgemm_ref(true, false, p, p, f->N, 1.0, X, p, X, p, 0.0, C, p);
    assert_int_equal(crate__dsyev(p, C, p, w, false), CRATE_STATUS_OK);
    lmax = fmax(lmax, w[p - 1]);
  }
  return lmax;
}

static void test_d2_neumann_slope(void **state) {
  (void)state;
  fixture f;
  const size_t p[3] = {2, 2, 2};
  fixture_init(&f, 6, 3, p, 8, CRATE_SUBSPACES_INCOHERENT, 91);
  size_t N = f.N, d = f.d;
  double lmax = gram_lambda_max(&f);
  enum { NPTS = 5 };
  const double target[NPTS] = {0.24, 0.12, 0.06, 0.03, 0.015}; /* beta * lambda_max */
  double beta[NPTS], err[NPTS];
  for (int i = 0; i < NPTS; i++) {
    /* beta = p / (N eps2) = target / lambda_max. */
    double eps2 = 2.0 * lmax / ((double)N * target[i]);
    double Ge[LN * LD], Gn[LN * LD];
    beta[i] = 2.0 / ((double)N * eps2);
    assert_int_equal(crate_rate_Rc_grad(f.Z, N, &f.U, eps2, CRATE_RATE_FORM_PP, Ge),
                     CRATE_STATUS_OK);
    assert_int_equal(crate_rate_Rc_grad_neumann(f.Z, N, &f.U, eps2, Gn), CRATE_STATUS_OK);
    err[i] = crate_rel_l2(Gn, Ge, N * d);
    crate_report("D2",
                 "lambda_max = %.4f, eps2 = %.4g, beta = %.4e, beta*lambda_max = %.4f: "
                 "||grad - Neumann|| / ||grad|| = %.4e",
                 lmax, eps2, beta[i], beta[i] * lmax, err[i]);
    assert_true(beta[i] * lmax < 0.3);
    assert_true(err[i] > 1e-12); /* far above the round-off floor */
  }
  /* Drop the coarsest point (MATH §6 fit rules). */
  double slope = crate_loglog_slope(beta + 1, err + 1, NPTS - 1);
  crate_report("D2",
               "fitted log-log slope over beta*lambda_max in [%.3f, %.3f]: %.4f "
               "(want 2 +- 0.2)",
               target[NPTS - 1], target[1], slope);
  assert_true(fabs(slope - 2.0) <= 0.2);
}

/* ---- D3: linear-kernel MSSA = Neumann-truncated gradient ------------------ */

static double cosine(const double *a, const double *b, size_t n) {
  return dot(a, b, n) / sqrt(dot(a, a, n) * dot(b, b, n));
}

static void test_d3_linear_mssa(void **state) {
  (void)state;
  fixture f;
  const size_t p[3] = {2, 2, 2};
  /* Mutually orthogonal, ranks summing to d: sum_k U_k U_k^T = I. */
  fixture_init(&f, 6, 3, p, 8, CRATE_SUBSPACES_ORTHOGONAL, 101);
  size_t N = f.N, d = f.d;
  double eps2 = 0.5, beta = 2.0 / ((double)N * eps2);
  double M[LN * LD], Gn[LN * LD], A[LN * LD];
  assert_int_equal(crate_rate_mssa(f.Z, N, &f.U, eps2, CRATE_MSSA_LINEAR, M), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc_grad_neumann(f.Z, N, &f.U, eps2, Gn), CRATE_STATUS_OK);
  for (size_t i = 0; i < N * d; i++)
    A[i] = beta * f.Z[i] - beta * M[i];
  double e = crate_rel_linf(A, Gn, N * d);
  crate_report("D3",
               "orthogonal bases, sum U_k U_k^T = I, beta = %g: beta Z - beta MSSA_lin vs "
               "Neumann gradient rel %.3e (bound 1e-12)",
               beta, e);
  assert_true(e <= 1e-12);

  /* Negative control: incoherent bases (sum U_k U_k^T != I) break the
   * identity, since sum_k U_k X_k = sum_k U_k U_k^T Z != Z. */
  fixture g;
  fixture_init(&g, 6, 3, p, 8, CRATE_SUBSPACES_INCOHERENT, 101);
  assert_int_equal(crate_rate_mssa(g.Z, N, &g.U, eps2, CRATE_MSSA_LINEAR, M), CRATE_STATUS_OK);
  assert_int_equal(crate_rate_Rc_grad_neumann(g.Z, N, &g.U, eps2, Gn), CRATE_STATUS_OK);
  for (size_t i = 0; i < N * d; i++)
    A[i] = beta * g.Z[i] - beta * M[i];
  double en = crate_rel_linf(A, Gn, N * d);
  crate_report("D3", "negative control, incoherent bases: rel %.3e (must exceed 1e-3)", en);
  assert_true(en > 1e-3);

  /* Report only (P6): softmax MSSA is a modelling choice, not a descent step. */
  const double eps2s[3] = {0.5, 2.0, 8.0};
  for (int i = 0; i < 3; i++) {
    double Ge[LN * LD], Ms[LN * LD], D[LN * LD], ND[LN * LD], b = 2.0 / ((double)N * eps2s[i]);
    assert_int_equal(crate_rate_Rc_grad(f.Z, N, &f.U, eps2s[i], CRATE_RATE_FORM_PP, Ge),
                     CRATE_STATUS_OK);
    assert_int_equal(crate_rate_mssa(f.Z, N, &f.U, eps2s[i], CRATE_MSSA_SOFTMAX, Ms),
                     CRATE_STATUS_OK);
    for (size_t j = 0; j < N * d; j++) {
      ND[j] = -Ge[j];
      D[j] = b * Ms[j] - b * f.Z[j]; /* half-step direction beta MSSA - beta Z */
    }
    crate_report("D3",
                 "report only: eps2 = %g (beta = %g): cos(-grad R^c, beta MSSA_softmax - "
                 "beta Z) = %.4f, cos(-grad R^c, MSSA_softmax) = %.4f",
                 eps2s[i], b, cosine(ND, D, N * d), cosine(ND, Ms, N * d));
  }
}

/* ---- D4: descent lemma ---------------------------------------------------- */

typedef struct descent_result {
  double R0, Rfinal;
  double Rtail;        /* R^c 50 steps before the end */
  int first_violation; /* step whose decrease broke the lemma, or -1 */
  double worst_slack;  /* min over steps of decrease - kappa/2 ||g||^2 */
} descent_result;

/* Z <- Z - kappa grad R^c(Z) for the given number of steps; checks at every
 * step R^c(Z+) <= R^c(Z) - kappa/2 ||grad||^2 + 1e-12. */
static void descend(const fixture *f, double eps2, double kappa, int steps, const char *tag,
                    descent_result *res) {
  size_t N = f->N, n = N * f->d;
  double Z[LN * LD], G[LN * LD], Rc = 0.0;
  memcpy(Z, f->Z, n * sizeof *Z);
  assert_int_equal(crate_rate_Rc(Z, N, &f->U, eps2, &Rc), CRATE_STATUS_OK);
  res->R0 = Rc;
  res->first_violation = -1;
  res->worst_slack = INFINITY;
  char line[512];
  int len = snprintf(line, sizeof line, "%.4f", Rc);
  for (int t = 0; t < steps; t++) {
    assert_int_equal(crate_rate_Rc_grad(Z, N, &f->U, eps2, CRATE_RATE_FORM_PP, G), CRATE_STATUS_OK);
    double g2 = dot(G, G, n), Rn = 0.0;
    for (size_t i = 0; i < n; i++)
      Z[i] -= kappa * G[i];
    assert_int_equal(crate_rate_Rc(Z, N, &f->U, eps2, &Rn), CRATE_STATUS_OK);
    double slack = (Rc - Rn) - 0.5 * kappa * g2;
    res->worst_slack = fmin(res->worst_slack, slack);
    if ((slack < -1e-12 || Rn > Rc) && res->first_violation < 0)
      res->first_violation = t;
    Rc = Rn;
    if (t == steps - 51)
      res->Rtail = Rc;
    if (tag && (t < 4 || t == 9 || t == 19 || t == 49 || t == steps - 1) && len > 0 &&
        (size_t)len < sizeof line)
      len += snprintf(line + len, sizeof line - (size_t)len, " -> [%d] %.3e", t + 1, Rc);
  }
  res->Rfinal = Rc;
  if (tag)
    crate_report("D4", "%s R^c trajectory: %s", tag, line);
}

static void test_d4_descent_lemma(void **state) {
  (void)state;
  const size_t p[3] = {2, 2, 2};
  const crate_subspaces_kind kinds[2] = {CRATE_SUBSPACES_ORTHOGONAL, CRATE_SUBSPACES_INCOHERENT};
  double eps2 = 0.5;
  for (int c = 0; c < 2; c++) {
    fixture f;
    fixture_init(&f, 6, 3, p, 8, kinds[c], 111);
    double lam = 0.0, beta = 2.0 / (8.0 * eps2);
    assert_int_equal(crate_subspaces_lambda_max(&f.U, &lam), CRATE_STATUS_OK);
    double L = beta * lam, kappa = 1.0 / L;
    const char *name = c ? "incoherent" : "orthogonal";
    crate_report("D4",
                 "%s: d=6 K=3 p=2 N=8 eps2=%g beta=%g lambda_max(sum U U^T)=%.4f "
                 "L=%.4f kappa=1/L=%.4f",
                 name, eps2, beta, lam, L, kappa);
    descent_result res = {0};
    int steps = 200;
    descend(&f, eps2, kappa, steps, name, &res);
    crate_report("D4",
                 "%s: first violation %d (want -1), min slack (decrease - kappa/2 "
                 "||g||^2) = %.3e (bound >= -1e-12), R^c %.4f -> %.3e after %d steps",
                 name, res.first_violation, res.worst_slack, res.R0, res.Rfinal, steps);
    assert_int_equal(res.first_violation, -1);
    assert_true(res.worst_slack >= -1e-12);
    /* Collapse (P5).  Near Z = 0, R^c ~ beta/2 tr(Z^T S Z) with
     * S = sum_k U_k U_k^T, so a step with kappa = 1/L multiplies the mode of
     * eigenvalue s by (1 - s/lambda_max): R^c contracts at worst by
     * rho = (1 - lambda_min/lambda_max)^2 per step (0 when S = I). */
    double S[LD * LD], w[LD];
    crate_dgemm_ref(true, false, 6, 6, 6, 1.0, f.Ut, 6, f.Ut, 6, 0.0, S, 6);
    assert_int_equal(crate__dsyev(6, S, 6, w, false), CRATE_STATUS_OK);
    double rho = (1.0 - w[0] / w[5]) * (1.0 - w[0] / w[5]);
    double q = res.Rtail > 0 ? pow(res.Rfinal / res.Rtail, 1.0 / 50.0) : 0.0;
    crate_report("D4",
                 "%s: eig(sum U U^T) in [%.4f, %.4f]; predicted asymptotic R^c factor "
                 "per step rho = %.4f, observed over the last 50 steps %.4f",
                 name, w[0], w[5], rho, q);
    if (c == 0) {
      /* S = I: the map is superlinear near 0 (s -> s beta s^2/(1+beta s^2)). */
      crate_check(res.Rfinal <= 1e-12 * res.R0, "R^c %.3e did not collapse", res.Rfinal);
    } else {
      double dev = fabs(log(q) - log(rho)) / fabs(log(rho));
      crate_report("D4", "%s: observed vs predicted log-rate deviation %.3e (bound 0.1)", name,
                   dev);
      crate_check(res.Rfinal > 0 && dev <= 0.1, "tail rate %.5f vs predicted %.5f", q, rho);
    }
  }
}

/* Negative control: a step beyond 2/L breaks the descent inequality. */
static void test_d4_negative_control(void **state) {
  (void)state;
  const size_t p[3] = {2, 2, 2};
  const crate_subspaces_kind kinds[2] = {CRATE_SUBSPACES_ORTHOGONAL, CRATE_SUBSPACES_INCOHERENT};
  double eps2 = 0.5;
  for (int c = 0; c < 2; c++) {
    fixture f;
    fixture_init(&f, 6, 3, p, 8, kinds[c], 111);
    double lam = 0.0, beta = 2.0 / (8.0 * eps2);
    assert_int_equal(crate_subspaces_lambda_max(&f.U, &lam), CRATE_STATUS_OK);
    double L = beta * lam, mult = 2.5, kappa = mult / L;
    descent_result res = {0};
    descend(&f, eps2, kappa, 200, NULL, &res);
    crate_report("D4",
                 "negative control, %s: kappa = %.2f/L = %.4f: first violation at step "
                 "%d, min slack %.3e, R^c %.4f -> %.4f (a violation is required)",
                 c ? "incoherent" : "orthogonal", mult, kappa, res.first_violation, res.worst_slack,
                 res.R0, res.Rfinal);
    assert_true(res.first_violation >= 0);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rate_sylvester),   cmocka_unit_test(test_rate_known_answers),
      cmocka_unit_test(test_rate_invariance),  cmocka_unit_test(test_rate_grad_R_fd),
      cmocka_unit_test(test_rate_errors),      cmocka_unit_test(test_rate_mssa_naive),
      cmocka_unit_test(test_d1_grad_pp_vs_fd), cmocka_unit_test(test_d1_pp_vs_nn),
      cmocka_unit_test(test_d2_neumann_slope), cmocka_unit_test(test_d3_linear_mssa),
      cmocka_unit_test(test_d4_descent_lemma), cmocka_unit_test(test_d4_negative_control),
  };
  return CRATE_RUN("rate", tests, argc, argv);
}
