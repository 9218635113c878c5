/* ops.h: the CRATE-MAE layer kernels (MODEL.md §3 forward, §8 backward).
 *
 * Every numerical op is a _forward/_backward pair over float storage with
 * double accumulation in reductions, plus a naive _ref twin in DOUBLE storage
 * (plain loops) that the tests compare against and take finite differences
 * of.  Layout (MODEL.md §1): activations are token-contiguous row-major (M, d)
 * arrays with M = B*N; weights are row-major [out, in] as PyTorch stores them.
 *
 * Conventions shared by every op:
 * - Argument order: outputs, caches, inputs, weights, scalars, dims.
 * - Forward overwrites its outputs and caches; no output may alias an input
 *   unless the function says so.
 * - Backward ACCUMULATES (+=) into every gradient it writes, parameter and
 *   input gradients alike, so callers zero gradient buffers first; an input
 *   gradient pointer may be NULL where documented (then it is not computed).
 * - No allocation happens inside any op: ops that need temporary memory take
 *   a caller-owned `scratch` whose length (in floats) a _scratch_size helper
 *   returns.
 * - Contract violations (impossible shapes, NULL required pointers) abort via
 *   CRATE_ASSERT; anything reachable from user data (mask ratio, d % 4,
 *   patch geometry, an empty mask) returns CRATE_STATUS_EINVAL with an
 *   "ops: ..." message.
 *
 * Pointers are borrowed for the duration of the call only.
 */
#ifndef CRATE_OPS_H
#define CRATE_OPS_H

#include "crate/defs.h"
#include "crate/rng.h"

/* ---- linear: y = x W^T + b (MODEL.md §1 GEMM table, §8 "Linear") ---------- */
/* Also the patch embedding (W = patch_embed.proj.weight read as (d, P)),
 * decoder_pred, the decoder dictionary step H = E B^(1) (b = NULL) and the
 * qkv projection. */

/** y (M, dout) = x (M, din) W^T + b; W is (dout, din); b (dout) or NULL. */
CRATE_API void crate_linear_forward(float *y, const float *x, const float *W, const float *b,
                                    size_t M, size_t din, size_t dout);
/** gW (dout, din) += gy^T x; gb (dout) += column sums of gy (if gb non-NULL);
 *  gx (M, din) += gy W (if gx non-NULL). */
CRATE_API void crate_linear_backward(float *gx, float *gW, float *gb, const float *gy,
                                     const float *x, const float *W, size_t M, size_t din,
                                     size_t dout);
CRATE_API void crate_linear_forward_ref(double *y, const double *x, const double *W,
                                        const double *b, size_t M, size_t din, size_t dout);
CRATE_API void crate_linear_backward_ref(double *gx, double *gW, double *gb, const double *gy,
                                         const double *x, const double *W, size_t M, size_t din,
                                         size_t dout);

/* ---- LayerNorm (MODEL.md §5, §8 "LayerNorm") --------------------------------
 * y = gamma * (x - mu) * rstd + beta per token, biased variance,
 * rstd = (var + eps)^(-1/2).  mean and rstd (M) are the cache. */

/** y, x: (M, d); mean, rstd: (M) cache; gamma, beta: (d). */
CRATE_API void crate_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                       const float *gamma, const float *beta, double eps, size_t M,
                                       size_t d);
/** gx (M, d) += dL/dx; ggamma, gbeta (d) += parameter gradients. */
CRATE_API void crate_layernorm_backward(float *gx, float *ggamma, float *gbeta, const float *mean,
                                        const float *rstd, const float *gy, const float *x,
                                        const float *gamma, size_t M, size_t d);
CRATE_API void crate_layernorm_forward_ref(double *y, double *mean, double *rstd, const double *x,
                                           const double *gamma, const double *beta, double eps,
                                           size_t M, size_t d);
CRATE_API void crate_layernorm_backward_ref(double *gx, double *ggamma, double *gbeta,
                                            const double *mean, const double *rstd,
                                            const double *gy, const double *x, const double *gamma,
                                            size_t M, size_t d);

/* ---- row softmax (the attention normalisation of MSSA) --------------------- */

/** y (rows, cols) = softmax of each row of x (max subtracted, sum in double).
 *  y may equal x (in place). */
CRATE_API void crate_softmax_forward(float *y, const float *x, size_t rows, size_t cols);
/** gx (rows, cols) += y * (gy - rowsum(y * gy)); y is the forward output. */
CRATE_API void crate_softmax_backward(float *gx, const float *gy, const float *y, size_t rows,
                                      size_t cols);
CRATE_API void crate_softmax_forward_ref(double *y, const double *x, size_t rows, size_t cols);
CRATE_API void crate_softmax_backward_ref(double *gx, const double *gy, const double *y,
                                          size_t rows, size_t cols);

/* ---- MSSA (MODEL.md §3.6, §8 "MSSA"; MATH.md §2.3) --------------------------
 * m = Wo [X_1 A_1; ...; X_K A_K] + bo,  X_k = W_k a,  A_k = softmax_col(S_k),
 * S_k = p^(-1/2) X_k^T X_k (one Gram per head; q = k = v share W_k).
 * Row-token memory: w = a Wqkv^T is (M, K*p) with head k in columns
 * [k*p, (k+1)*p); attn holds Pi_k = A_k^T (row = query, softmax over the
 * row = keys) for every image and head; o = [O_1^T | ... | O_K^T] (M, K*p).
 * The residual is NOT included (crate_residual_forward adds it). */

/** m (M, d) output; caches w (M, K*p), attn (B, K, N, N), o (M, K*p);
 *  a (M, d) input; Wqkv (K*p, d); Wo (d, K*p); bo (d); M = B*N. */
CRATE_API void crate_mssa_forward(float *m, float *w, float *attn, float *o, const float *a,
                                  const float *Wqkv, const float *Wo, const float *bo, size_t B,
                                  size_t N, size_t d, size_t K, size_t p);
/** @return the backward scratch length in floats: 2*B*N*K*p + N*N. */
CRATE_API size_t crate_mssa_scratch_size(size_t B, size_t N, size_t K, size_t p);
/** ga (M, d) += dL/da; gWqkv (K*p, d), gWo (d, K*p), gbo (d) += parameter
 *  gradients; scratch: crate_mssa_scratch_size floats; gm (M, d) upstream. */
CRATE_API void crate_mssa_backward(float *ga, float *gWqkv, float *gWo, float *gbo, float *scratch,
                                   const float *w, const float *attn, const float *o,
                                   const float *gm, const float *a, const float *Wqkv,
                                   const float *Wo, size_t B, size_t N, size_t d, size_t K,
                                   size_t p);
CRATE_API void crate_mssa_forward_ref(double *m, double *w, double *attn, double *o,
                                      const double *a, const double *Wqkv, const double *Wo,
                                      const double *bo, size_t B, size_t N, size_t d, size_t K,
                                      size_t p);
/** As crate_mssa_backward, allocation-free, in double; scratch: same count
 *  of doubles. */
CRATE_API void crate_mssa_backward_ref(double *ga, double *gWqkv, double *gWo, double *gbo,
                                       double *scratch, const double *w, const double *attn,
                                       const double *o, const double *gm, const double *a,
                                       const double *Wqkv, const double *Wo, size_t B, size_t N,
                                       size_t d, size_t K, size_t p);

/* ---- ISTA, 2-product form (MODEL.md §3.6, §8 "ISTA"; MATH.md §2.4) ----------
 * Column form: R = A - D A,  U = A + eta D^T R - eta*lambda,  X' = ReLU(U).
 * Row-token memory (a = A^T): r = a - a D^T, u = a + eta r D - eta*lambda.
 * Caches: r (M, d).  The pre-activation sign is read from the output itself:
 * y > 0 exactly where U > 0 (ReLU'(0) = 0, the PyTorch convention), so no
 * separate mask is stored. */

/** y (M, d) output; r (M, d) cache; a (M, d) input; D (d, d). */
CRATE_API void crate_ista_forward(float *y, float *r, const float *a, const float *D, double eta,
                                  double lambda, size_t M, size_t d);
/** @return the backward scratch length in floats: 2*M*d. */
CRATE_API size_t crate_ista_scratch_size(size_t M, size_t d);
/** ga (M, d) += dL/da; gD (d, d) += dL/dD; gy (M, d) upstream; y the forward
 *  output (mask); r the cache; scratch: crate_ista_scratch_size floats. */
CRATE_API void crate_ista_backward(float *ga, float *gD, float *scratch, const float *y,
                                   const float *r, const float *gy, const float *a, const float *D,
                                   double eta, size_t M, size_t d);
CRATE_API void crate_ista_forward_ref(double *y, double *r, const double *a, const double *D,
                                      double eta, double lambda, size_t M, size_t d);
/** scratch: crate_ista_scratch_size doubles. */
CRATE_API void crate_ista_backward_ref(double *ga, double *gD, double *scratch, const double *y,
                                       const double *r, const double *gy, const double *a,
                                       const double *D, double eta, size_t M, size_t d);

/* ---- residual: y = x + alpha f (encoder H = X + M: alpha = 1; decoder
 * X' = H - MSSA(B2): alpha = -1) ------------------------------------------- */

/** y, x, f: (count); y may equal x. */
CRATE_API void crate_residual_forward(float *y, const float *x, const float *f, float alpha,
                                      size_t count);
/** gx += gy; gf += alpha gy; either may be NULL. */
CRATE_API void crate_residual_backward(float *gx, float *gf, const float *gy, float alpha,
                                       size_t count);

/* ---- masked MSE loss (MODEL.md §3.10) --------------------------------------
 * L = sum_r m_r (1/P) sum_j (pred_rj - y_rj)^2 / sum_r m_r over the rows
 * r = (b, t) of the batch; mask m_r = 1 for removed (reconstructed) patches.
 * @return EINVAL when no row is masked (the mean is undefined). */

/** loss: scalar; pred, target: (rows, P) target order; mask: (rows). */
CRATE_API int crate_masked_mse_forward(double *loss, const float *pred, const float *target,
                                       const uint8_t *mask, size_t rows, size_t P);
/** gpred (rows, P) += gloss * 2 m_r (pred - y) / (P sum m). */
CRATE_API int crate_masked_mse_backward(float *gpred, const float *pred, const float *target,
                                        const uint8_t *mask, double gloss, size_t rows, size_t P);
CRATE_API int crate_masked_mse_forward_ref(double *loss, const double *pred, const double *target,
                                           const uint8_t *mask, size_t rows, size_t P);
CRATE_API int crate_masked_mse_backward_ref(double *gpred, const double *pred, const double *target,
                                            const uint8_t *mask, double gloss, size_t rows,
                                            size_t P);
/** norm_pix_loss target transform (off by default): y (rows, P) =
 *  (t - mean) / sqrt(s^2 + 1e-6), s^2 the UNBIASED variance of the row.
 *  y may equal t.  Targets are data, so there is no backward.
 *  @return EINVAL for P < 2. */
CRATE_API int crate_norm_pix_target(float *y, const float *t, size_t rows, size_t P);

/* ---- patches (MODEL.md §3.1) ------------------------------------------------
 * img: planar (B, C, H, H); patches: (B, n, P), n = (H/Q)^2, P = C Q^2,
 * patch t = r g + c.  Two vector orders:
 *   CRATE_PATCH_EMBED  (ch, i, j): v[(ch Q + i) Q + j]   (patch_embed input)
 *   CRATE_PATCH_TARGET (i, j, ch): y[(i Q + j) C + ch]   (loss, decoder_pred)
 * Both are permutations; unpatchify is the inverse (and the backward) of
 * patchify.  @return EINVAL when Q = 0 or H is not a multiple of Q. */
typedef enum crate_patch_order {
  CRATE_PATCH_EMBED = 0,
  CRATE_PATCH_TARGET = 1,
} crate_patch_order;

CRATE_API int crate_patchify(float *patches, const float *img, crate_patch_order order, size_t B,
                             size_t C, size_t H, size_t Q);
CRATE_API int crate_unpatchify(float *img, const float *patches, crate_patch_order order, size_t B,
                               size_t C, size_t H, size_t Q);
/** Naive element-by-element twins written from the index formulas. */
CRATE_API int crate_patchify_ref(float *patches, const float *img, crate_patch_order order,
                                 size_t B, size_t C, size_t H, size_t Q);
CRATE_API int crate_unpatchify_ref(float *img, const float *patches, crate_patch_order order,
                                   size_t B, size_t C, size_t H, size_t Q);

/* ---- position table (MODEL.md §3.5) -----------------------------------------
 * pos (g*g + 1, d): row 0 (CLS) zero; row t+1 for patch t = r g + c is
 * [sin(c w) | cos(c w) | sin(r w) | cos(r w)], w_k = 10000^(-k/(d/4)),
 * column index first.  Evaluated in double, rounded to float.
 * @return EINVAL unless d % 4 == 0, d > 0 and g > 0. */
CRATE_API int crate_pos_table(float *pos, size_t g, size_t d);
CRATE_API int crate_pos_table_ref(double *pos, size_t g, size_t d);

/* ---- token assembly (MODEL.md §3.4) -----------------------------------------
 * x[b, 0] = cls + pos[0]; x[b, t+1] = (m_bt ? mask_token : e[b, t]) + pos[t+1].
 * Masked rows of e are never read. */

/** x (B, N, d) output, N = n + 1; e (B, n, d); mask (B, n); cls, mask_token
 *  (d); pos (N, d). */
CRATE_API void crate_tokens_forward(float *x, const float *e, const uint8_t *mask, const float *cls,
                                    const float *mask_token, const float *pos, size_t B, size_t n,
                                    size_t d);
/** gcls (d) += sum_b gx[b, 0]; gmask_token (d) += sum over masked (b, t) of
 *  gx[b, t+1]; ge (B, n, d) += gx[b, t+1] for VISIBLE rows only (masked rows
 *  are left untouched, so a zeroed ge gives the right patch-embedding
 *  gradients).  Any of the three may be NULL.  pos gets no gradient. */
CRATE_API void crate_tokens_backward(float *ge, float *gcls, float *gmask_token, const float *gx,
                                     const uint8_t *mask, size_t B, size_t n, size_t d);
CRATE_API void crate_tokens_forward_ref(double *x, const double *e, const uint8_t *mask,
                                        const double *cls, const double *mask_token,
                                        const double *pos, size_t B, size_t n, size_t d);
CRATE_API void crate_tokens_backward_ref(double *ge, double *gcls, double *gmask_token,
                                         const double *gx, const uint8_t *mask, size_t B, size_t n,
                                         size_t d);

/* ---- random masking (MODEL.md §3.3) -----------------------------------------
 * n_keep = (int)(n * (1.0 - ratio)) in double (Python's int() including its
 * quirks: n = 10, ratio = 0.9 gives 0).  xi_t ~ U[0,1) (crate_rng_uniform)
 * for t = 0..n-1; indices sorted by (xi, index) ascending; the first n_keep
 * are visible (mask 0), the rest removed (mask 1), mask in patch order. */

/** @return EINVAL unless 0 <= ratio < 1 (finite). */
CRATE_API int crate_mask_n_keep(size_t *n_keep, size_t n, double ratio);
/** One image from an explicit generator (n draws).  Outputs: mask (n);
 *  ids_shuffle (n) = argsort(xi) (official ids_shuffle); noise (n) = xi.
 *  @return EINVAL for a bad ratio or n = 0. */
CRATE_API int crate_mask_random(uint8_t *mask, size_t *ids_shuffle, double *noise, crate_rng *rng,
                                double ratio, size_t n);
/** Same result by insertion sort (the naive twin). */
CRATE_API int crate_mask_random_ref(uint8_t *mask, size_t *ids_shuffle, double *noise,
                                    crate_rng *rng, double ratio, size_t n);
/** A batch: image b uses crate_rng_init_at(seed, CRATE_RNG_MASK, step,
 *  sample0 + b), so a mask depends only on (seed, step, global sample index).
 *  mask, ids_shuffle, noise: (B, n). */
CRATE_API int crate_mask_random_batch(uint8_t *mask, size_t *ids_shuffle, double *noise,
                                      uint64_t seed, uint32_t step, uint32_t sample0, double ratio,
                                      size_t B, size_t n);

#endif
