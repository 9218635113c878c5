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

/* ---- row softmax ------------------------------------------------------------ */

void crate_softmax_forward(float *y, const float *x, size_t rows, size_t cols) {
  /* y, x: (rows, cols); y may alias x */
  CRATE_ASSERT(y && x && cols > 0);
  for (size_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    float *yr = y + i * cols;
    float mx = xr[0];
    for (size_t j = 1; j < cols; j++)
      if (xr[j] > mx)
        mx = xr[j];
    double s = 0.0;
    for (size_t j = 0; j < cols; j++) {
      yr[j] = expf(xr[j] - mx);
      s += (double)yr[j];
    }
    float inv = (float)(1.0 / s);
    for (size_t j = 0; j < cols; j++)
      yr[j] *= inv;
  }
}

/* In place: g (rows, cols) <- y * (g - rowsum(y * g)). */
static void softmax_backward_inplace(float *g, const float *y, size_t rows, size_t cols) {
  for (size_t i = 0; i < rows; i++) {
    float *gr = g + i * cols;
    const float *yr = y + i * cols;
    double s = 0.0;
    for (size_t j = 0; j < cols; j++)
      s += (double)yr[j] * (double)gr[j];
    for (size_t j = 0; j < cols; j++)
      gr[j] = (float)((double)yr[j] * ((double)gr[j] - s));
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

size_t crate_mssa_scratch_size(size_t B, size_t N, size_t K, size_t p) {
  return 2 * B * N * K * p + N * N;
}

void crate_mssa_forward(float *m, float *w, float *attn, float *o, const float *a,
                        const float *Wqkv, const float *Wo, const float *bo, size_t B, size_t N,
                        size_t d, size_t K, size_t p) {
  /* m, a: (M, d), M = B N; w, o: (M, K p); attn: (B, K, N, N);
   * Wqkv: (K p, d); Wo: (d, K p); bo: (d) */
  CRATE_ASSERT(m && w && attn && o && a && Wqkv && Wo && bo);
  CRATE_ASSERT(B > 0 && N > 0 && d > 0 && K > 0 && p > 0);
  const size_t Kp = K * p, M = B * N;
  const float c = (float)(1.0 / sqrt((double)p));
  /* X_k = W_k A^(1) for all heads at once */
  crate_sgemm(false, true, M, Kp, d, 1.0f, a, d, Wqkv, d, 0.0f, w, Kp);
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < K; k++) {
      const float *wk = w + b * N * Kp + k * p;
      float *P = attn + (b * K + k) * N * N;
      /* S_k = c X_k^T X_k */
      crate_sgemm(false, true, N, N, p, c, wk, Kp, wk, Kp, 0.0f, P, N);
      /* Pi_k = A_k^T = row softmax of S_k (softmax over keys) */
      crate_softmax_forward(P, P, N, N);
      /* O_k^T = Pi_k X_k^T */
      crate_sgemm(false, false, N, p, N, 1.0f, P, N, wk, Kp, 0.0f, o + b * N * Kp + k * p, Kp);
    }
  /* M = W_o [O_1; ...; O_K] + b_o 1^T */
  crate_linear_forward(m, o, Wo, bo, M, Kp, d);
}

/* g (N, N) <- g + g^T in place. */
static void symmetrize(float *g, size_t N) {
  for (size_t i = 0; i < N; i++) {
    g[i * N + i] *= 2.0f;
    for (size_t j = i + 1; j < N; j++) {
      float s = g[i * N + j] + g[j * N + i];
      g[i * N + j] = s;
      g[j * N + i] = s;
    }
  }
}

void crate_mssa_backward(float *ga, float *gWqkv, float *gWo, float *gbo, float *scratch,
                         const float *w, const float *attn, const float *o, const float *gm,
                         const float *a, const float *Wqkv, const float *Wo, size_t B, size_t N,
                         size_t d, size_t K, size_t p) {
  /* ga, gm, a: (M, d); gWqkv, Wqkv: (K p, d); gWo, Wo: (d, K p); gbo: (d);
   * w, o: (M, K p); attn: (B, K, N, N); scratch: 2 M K p + N N floats */
  CRATE_ASSERT(ga && gWqkv && gWo && gbo && scratch && w && attn && o && gm && a && Wqkv && Wo);
  CRATE_ASSERT(B > 0 && N > 0 && d > 0 && K > 0 && p > 0);
  const size_t Kp = K * p, M = B * N;
  const float c = (float)(1.0 / sqrt((double)p));
  float *go = scratch, *gw = scratch + M * Kp, *GP = scratch + 2 * M * Kp;
  /* Forward: m = o Wo^T + bo.  G_Wo += G_M O^T, G_bo += G_M 1, G_O = Wo^T G_M. */
  for (size_t i = 0; i < M * Kp; i++)
    go[i] = 0.0f;
  crate_linear_backward(go, gWo, gbo, gm, o, Wo, M, Kp, d);
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < K; k++) {
      const size_t off = b * N * Kp + k * p;
      const float *wk = w + off, *gok = go + off;
      const float *P = attn + (b * K + k) * N * N;
      float *gwk = gw + off;
      /* Forward: O_k^T = Pi_k X_k^T.  G_Pi = G_{O^T} X_k; G_{X_k^T} = Pi^T G_{O^T}. */
      crate_sgemm(false, true, N, N, p, 1.0f, gok, Kp, wk, Kp, 0.0f, GP, N);
      crate_sgemm(true, false, N, p, N, 1.0f, P, N, gok, Kp, 0.0f, gwk, Kp);
      /* Forward: Pi = rowsoftmax(S).  G_S = Pi * (G_Pi - rowsum(Pi * G_Pi) 1^T). */
      softmax_backward_inplace(GP, P, N, N);
      /* Forward: S = c X_k^T X_k.  G_{X_k} += c X_k (G_S + G_S^T). */
      symmetrize(GP, N);
      crate_sgemm(false, false, N, p, N, c, GP, N, wk, Kp, 1.0f, gwk, Kp);
    }
  /* Forward: X_k = W_k A.  G_{W_k} += G_{X_k} A^T, G_A += W_k^T G_{X_k}. */
  crate_linear_backward(ga, gWqkv, NULL, gw, a, Wqkv, M, d, Kp);
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
