/* mssa.c: multi-head subspace self-attention as CRATE computes it, and the row
 * softmax it uses (MODEL.md §1 GEMM table, §3.6, §8 "MSSA"; MATH.md §2.3).
 *
 *   w = a Wqkv^T                       (M, K p)   shared q = k = v, no bias
 *   Pi_k = rowsoftmax(c w_k w_k^T)     (N, N)     per image, c = p^(-1/2)
 *   o_k = Pi_k w_k                     (N, p)     = (X_k A_k)^T
 *   m = o Wo^T + bo                    (M, d)
 *
 * w_k is the strided column block [k p, (k+1) p) of w (row stride K p), so no
 * head is ever copied.  S_k is symmetric, so the stored row-softmax Pi_k is
 * A_k^T of the column form.  The residual is added by the caller
 * (crate_residual_forward).  The _ref twins are double loops.
 * Non-goals: separate q/k/v projections, causal masks, dropout.
 */
#include "ops_internal.h"

#if defined(CRATE_HAVE_OPENMP)
#include <omp.h>
#endif

/* ---- row softmax ------------------------------------------------------------ */

/* One row: y = softmax(c x) with the max subtracted (c > 0, so the max of
 * c x is c max x), exp by crate__expf_neg, the sum in double over 8 vector
 * lanes (ops_internal.h).  y may equal x. */
static inline void softmax_row(float *yr, const float *xr, float c, size_t cols) {
  const size_t cv = cols / 8 * 8;
  float mx = xr[0];
  CRATE__SIMD(reduction(max : mx))
  for (size_t j = 0; j < cols; j++)
    mx = xr[j] > mx ? xr[j] : mx;
  for (size_t j = 0; j < cols; j++)
    yr[j] = crate__expf_neg(c * (xr[j] - mx));
  crate__v8d a = {0}, v;
  for (size_t j = 0; j < cv; j += 8) {
    crate__ld8(&v, yr + j);
    a += v;
  }
  double s = crate__hsum8(&a);
  for (size_t j = cv; j < cols; j++)
    s += (double)yr[j];
  const float inv = (float)(1.0 / s);
  for (size_t j = 0; j < cols; j++)
    yr[j] *= inv;
}

/* In place: row softmax of c S, S (rows, cols), c > 0. */
CRATE__OPS_CLONES
static void softmax_rows_scaled(float *S, float c, size_t rows, size_t cols) {
  for (size_t i = 0; i < rows; i++)
    softmax_row(S + i * cols, S + i * cols, c, cols);
}

CRATE__OPS_CLONES
static void softmax_rows(float *y, const float *x, size_t rows, size_t cols) {
  for (size_t i = 0; i < rows; i++)
    softmax_row(y + i * cols, x + i * cols, 1.0f, cols);
}

void crate_softmax_forward(float *y, const float *x, size_t rows, size_t cols) {
  /* y, x: (rows, cols); y may alias x */
  CRATE_ASSERT(y && x && cols > 0);
  softmax_rows(y, x, rows, cols);
}

/* Softmax backward of one row, in place: g <- y * (g - sum(y * g)), the sum
 * in double over 8 vector lanes. */
static inline void softmax_back_row(float *gr, const float *yr, size_t cols) {
  enum { L = CRATE__OPS_LANES };
  const size_t cv = cols / L * L;
  crate__v8d a = {0}, yv, gv;
  for (size_t j = 0; j < cv; j += L) {
    crate__ld8(&yv, yr + j);
    crate__ld8(&gv, gr + j);
    a += yv * gv;
  }
  double s = crate__hsum8(&a);
  for (size_t j = cv; j < cols; j++)
    s += (double)yr[j] * (double)gr[j];
  for (size_t j = 0; j < cols; j++)
    gr[j] = (float)((double)yr[j] * ((double)gr[j] - s));
}

/* In place: g (N, N) <- G_S + G_S^T, where G_S is the row-softmax backward
 * of g through y = Pi (N, N): the gradient of the symmetric scores. */
CRATE__OPS_CLONES
static void softmax_back_sym(float *g, const float *y, size_t N) {
  for (size_t i = 0; i < N; i++)
    softmax_back_row(g + i * N, y + i * N, N);
  for (size_t i = 0; i < N; i++) {
    g[i * N + i] *= 2.0f;
    for (size_t j = i + 1; j < N; j++) {
      const float s = g[i * N + j] + g[j * N + i];
      g[i * N + j] = s;
      g[j * N + i] = s;
    }
  }
}

void crate_softmax_backward(float *gx, const float *gy, const float *y, size_t rows, size_t cols) {
  /* gx, gy, y: (rows, cols).  Inverts y = softmax_row(x):
   *   G_x += y * (G_y - rowsum(y * G_y)). */
  CRATE_ASSERT(gx && gy && y);
  for (size_t i = 0; i < rows; i++) {
    const float *gr = gy + i * cols, *yr = y + i * cols;
    double s = 0.0;
    for (size_t j = 0; j < cols; j++)
      s += (double)yr[j] * (double)gr[j];
    for (size_t j = 0; j < cols; j++)
      gx[i * cols + j] += (float)((double)yr[j] * ((double)gr[j] - s));
  }
}

void crate_softmax_forward_ref(double *y, const double *x, size_t rows, size_t cols) {
  CRATE_ASSERT(y && x && cols > 0);
  for (size_t i = 0; i < rows; i++) {
    double mx = x[i * cols];
    for (size_t j = 1; j < cols; j++)
      mx = fmax(mx, x[i * cols + j]);
    double s = 0.0;
    for (size_t j = 0; j < cols; j++)
      s += exp(x[i * cols + j] - mx);
    for (size_t j = 0; j < cols; j++)
      y[i * cols + j] = exp(x[i * cols + j] - mx) / s;
  }
}

void crate_softmax_backward_ref(double *gx, const double *gy, const double *y, size_t rows,
                                size_t cols) {
  CRATE_ASSERT(gx && gy && y);
  for (size_t i = 0; i < rows; i++) {
    double s = 0.0;
    for (size_t j = 0; j < cols; j++)
      s += y[i * cols + j] * gy[i * cols + j];
    for (size_t j = 0; j < cols; j++)
      gx[i * cols + j] += y[i * cols + j] * (gy[i * cols + j] - s);
  }
}

/* ---- MSSA, fast path ---------------------------------------------------------- */

/* Slots of (N, N) backward scratch: one per OpenMP thread, at most this many. */
#define MSSA_SLOTS 64

size_t crate_mssa_scratch_size(size_t B, size_t N, size_t K, size_t p) {
  const size_t slots = B * K < MSSA_SLOTS ? B * K : MSSA_SLOTS;
  return 2 * B * N * K * p + slots * N * N;
}

/* Work (multiply-adds of one head's score product, times images x heads)
 * from which the per-head loop is split over threads. */
#define MSSA_PAR_MIN 262144

void crate_mssa_forward(float *m, float *w, float *attn, float *o, const float *a,
                        const float *Wqkv, const float *Wo, const float *bo, size_t B, size_t N,
                        size_t d, size_t K, size_t p) {
  /* m, a: (M, d), M = B N; w, o: (M, K p); attn: (B, K, N, N);
   * Wqkv: (K p, d); Wo: (d, K p); bo: (d) */
  CRATE_ASSERT(m && w && attn && o && a && Wqkv && Wo && bo);
  CRATE_ASSERT(B > 0 && N > 0 && d > 0 && K > 0 && p > 0);
  const size_t Kp = K * p, M = B * N, nbk = B * K;
  const float c = (float)(1.0 / sqrt((double)p));
  /* X_k = W_k A^(1) for all heads at once (BLAS threads) */
  crate__sgemm_par(false, true, M, Kp, d, 1.0f, a, d, Wqkv, d, 0.0f, w, Kp);
  /* Per image and head: OpenMP threads over B K, single-threaded BLAS inside */
  const bool par = nbk > 1 && nbk * N * N * p >= MSSA_PAR_MIN;
  const int saved = crate__blas_serial_begin(par);
  CRATE__OMP(parallel for schedule(static) if (par))
  for (size_t bk = 0; bk < nbk; bk++) {
    const size_t b = bk / K, k = bk % K;
    const float *wk = w + b * N * Kp + k * p;
    float *P = attn + bk * N * N;
    /* S_k = X_k^T X_k (one Gram per head); Pi_k = A_k^T = row softmax of
     * c S_k (softmax over keys) */
    crate_sgemm(false, true, N, N, p, 1.0f, wk, Kp, wk, Kp, 0.0f, P, N);
    softmax_rows_scaled(P, c, N, N);
    /* O_k^T = Pi_k X_k^T */
    crate_sgemm(false, false, N, p, N, 1.0f, P, N, wk, Kp, 0.0f, o + b * N * Kp + k * p, Kp);
  }
  crate__blas_serial_end(saved);
  /* M = W_o [O_1; ...; O_K] + b_o 1^T */
  crate_linear_forward(m, o, Wo, bo, M, Kp, d);
}

void crate_mssa_backward(float *ga, float *gWqkv, float *gWo, float *gbo, float *scratch,
                         const float *w, const float *attn, const float *o, const float *gm,
                         const float *a, const float *Wqkv, const float *Wo, size_t B, size_t N,
                         size_t d, size_t K, size_t p) {
  crate__mssa_backward_ex(ga, gWqkv, gWo, gbo, scratch, w, attn, o, gm, a, Wqkv, Wo, B, N, d, K, p,
                          true);
}

void crate__mssa_backward_ex(float *ga, float *gWqkv, float *gWo, float *gbo, float *scratch,
                             const float *w, const float *attn, const float *o, const float *gm,
                             const float *a, const float *Wqkv, const float *Wo, size_t B,
                             size_t N, size_t d, size_t K, size_t p, bool acc) {
  /* ga, gm, a: (M, d); gWqkv, Wqkv: (K p, d); gWo, Wo: (d, K p); gbo: (d);
   * w, o: (M, K p); attn: (B, K, N, N); scratch: crate_mssa_scratch_size
   * floats = go (M, K p), gw (M, K p), then one (N, N) slot per thread */
  CRATE_ASSERT(ga && gWqkv && gWo && gbo && scratch && w && attn && o && gm && a && Wqkv && Wo);
  CRATE_ASSERT(B > 0 && N > 0 && d > 0 && K > 0 && p > 0);
  const size_t Kp = K * p, M = B * N, nbk = B * K;
  const size_t slots = nbk < MSSA_SLOTS ? nbk : MSSA_SLOTS;
  const float c = (float)(1.0 / sqrt((double)p));
  float *go = scratch, *gw = scratch + M * Kp, *GPs = scratch + 2 * M * Kp;
  /* Forward: m = o Wo^T + bo.  G_Wo += G_M O^T, G_bo += G_M 1, and
   * G_O = Wo^T G_M written with beta = 0 (go needs no zeroing). */
  crate__sgemm_par(true, false, d, Kp, M, 1.0f, gm, d, o, Kp, 1.0f, gWo, Kp);
  crate__ops_colsum_acc(gbo, gm, M, d);
  crate__sgemm_par(false, false, M, Kp, d, 1.0f, gm, d, Wo, Kp, 0.0f, go, Kp);
  const bool par = nbk > 1 && nbk * N * N * p >= MSSA_PAR_MIN;
  const int saved = crate__blas_serial_begin(par);
  /* at most one thread per scratch slot, and never more than the team size
   * crate_set_threads chose (a bare num_threads(slots) would start 64
   * threads on a 2-core machine, even at --threads 1) */
  int team = (int)slots;
#if defined(CRATE_HAVE_OPENMP)
  team = omp_get_max_threads() < team ? omp_get_max_threads() : team;
#endif
  (void)team;
  CRATE__OMP(parallel num_threads(team) if (par))
  {
    size_t slot = 0;
#if defined(CRATE_HAVE_OPENMP)
    slot = (size_t)omp_get_thread_num();
#endif
    float *GP = GPs + slot * N * N;
    CRATE__OMP(for schedule(static))
    for (size_t bk = 0; bk < nbk; bk++) {
      const size_t b = bk / K, k = bk % K;
      const size_t off = b * N * Kp + k * p;
      const float *wk = w + off, *gok = go + off;
      const float *P = attn + bk * N * N;
      float *gwk = gw + off;
      /* Forward: O_k^T = Pi_k X_k^T.  G_Pi = G_{O^T} X_k; G_{X_k^T} = Pi^T G_{O^T}. */
      crate_sgemm(false, true, N, N, p, 1.0f, gok, Kp, wk, Kp, 0.0f, GP, N);
      crate_sgemm(true, false, N, p, N, 1.0f, P, N, gok, Kp, 0.0f, gwk, Kp);
      /* Forward: Pi = rowsoftmax(S).  G_S = Pi * (G_Pi - rowsum(Pi * G_Pi) 1^T).
       * Forward: S = c X_k^T X_k.  G_{X_k} += c X_k (G_S + G_S^T). */
      softmax_back_sym(GP, P, N);
      crate_sgemm(false, false, N, p, N, c, GP, N, wk, Kp, 1.0f, gwk, Kp);
    }
  }
  crate__blas_serial_end(saved);
  /* Forward: X_k = W_k A.  G_{W_k} += G_{X_k} A^T, G_A += W_k^T G_{X_k}. */
  crate__linear_backward_ex(ga, gWqkv, NULL, gw, a, Wqkv, M, d, Kp, acc);
}

/* ---- MSSA, double reference -------------------------------------------------- */

void crate_mssa_forward_ref(double *m, double *w, double *attn, double *o, const double *a,
                            const double *Wqkv, const double *Wo, const double *bo, size_t B,
                            size_t N, size_t d, size_t K, size_t p) {
  CRATE_ASSERT(m && w && attn && o && a && Wqkv && Wo && bo);
  CRATE_ASSERT(B > 0 && N > 0 && d > 0 && K > 0 && p > 0);
  const size_t Kp = K * p, M = B * N;
  const double c = 1.0 / sqrt((double)p);
  crate_linear_forward_ref(w, a, Wqkv, NULL, M, d, Kp);
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < K; k++) {
      double *P = attn + (b * K + k) * N * N;
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          double s = 0.0;
          for (size_t l = 0; l < p; l++)
            s += w[(b * N + i) * Kp + k * p + l] * w[(b * N + j) * Kp + k * p + l];
          P[i * N + j] = c * s;
        }
      crate_softmax_forward_ref(P, P, N, N);
      for (size_t i = 0; i < N; i++)
        for (size_t l = 0; l < p; l++) {
          double s = 0.0;
          for (size_t j = 0; j < N; j++)
            s += P[i * N + j] * w[(b * N + j) * Kp + k * p + l];
          o[(b * N + i) * Kp + k * p + l] = s;
        }
    }
  crate_linear_forward_ref(m, o, Wo, bo, M, Kp, d);
}

void crate_mssa_backward_ref(double *ga, double *gWqkv, double *gWo, double *gbo, double *scratch,
                             const double *w, const double *attn, const double *o, const double *gm,
                             const double *a, const double *Wqkv, const double *Wo, size_t B,
                             size_t N, size_t d, size_t K, size_t p) {
  CRATE_ASSERT(ga && gWqkv && gWo && gbo && scratch && w && attn && o && gm && a && Wqkv && Wo);
  const size_t Kp = K * p, M = B * N;
  const double c = 1.0 / sqrt((double)p);
  double *go = scratch, *gw = scratch + M * Kp, *GS = scratch + 2 * M * Kp;
  for (size_t i = 0; i < 2 * M * Kp; i++)
    scratch[i] = 0.0;
  crate_linear_backward_ref(go, gWo, gbo, gm, o, Wo, M, Kp, d);
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < K; k++) {
      const double *P = attn + (b * K + k) * N * N;
#define W_(i, l) w[(b * N + (i)) * Kp + k * p + (l)]
#define GO_(i, l) go[(b * N + (i)) * Kp + k * p + (l)]
#define GW_(i, l) gw[(b * N + (i)) * Kp + k * p + (l)]
      /* G_Pi[i][j] = sum_l gO[i][l] w[j][l]; value path gW[j][l] += sum_i P[i][j] gO[i][l] */
      for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
          double s = 0.0;
          for (size_t l = 0; l < p; l++)
            s += GO_(i, l) * W_(j, l);
          GS[i * N + j] = s;
        }
      for (size_t j = 0; j < N; j++)
        for (size_t l = 0; l < p; l++) {
          double s = 0.0;
          for (size_t i = 0; i < N; i++)
            s += P[i * N + j] * GO_(i, l);
          GW_(j, l) += s;
        }
      /* softmax backward, then S = c w w^T: gW[i][l] += c sum_j (G_S + G_S^T)[i][j] w[j][l] */
      for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (size_t j = 0; j < N; j++)
          s += P[i * N + j] * GS[i * N + j];
        for (size_t j = 0; j < N; j++)
          GS[i * N + j] = P[i * N + j] * (GS[i * N + j] - s);
      }
      for (size_t i = 0; i < N; i++)
        for (size_t l = 0; l < p; l++) {
          double s = 0.0;
          for (size_t j = 0; j < N; j++)
            s += (GS[i * N + j] + GS[j * N + i]) * W_(j, l);
          GW_(i, l) += c * s;
        }
#undef W_
#undef GO_
#undef GW_
    }
  crate_linear_backward_ref(ga, gWqkv, NULL, gw, a, Wqkv, M, d, Kp);
}
