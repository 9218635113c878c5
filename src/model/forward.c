/* forward.c: the CRATE-MAE forward pass (MODEL.md §3), its backward pass
 * (MODEL.md §8), inference without the training arena, and reconstruction
 * images (MODEL.md §3.11).  Built entirely from the ops of crate/ops.h.
 *
 * Row-token memory (MODEL.md §1): token arrays are (M, d), M = B N, CLS is
 * token 0 of each image.  The training forward keeps one cache per block in
 * the arena; inference runs the same code one image at a time with a single
 * cache per block kind, alternating the block output between two buffers.
 * Non-goals: dropout, the MAE drop-tokens path (O10), the official unused
 * pos_embed / decoder_embed.
 */
#include <string.h>

#include "model_internal.h"

/* ---- blocks ------------------------------------------------------------ */

/* Encoder block (MODEL.md §3.6).  x: (M, d) input; outputs in c. */
static void enc_block_forward(const crate_model *m, const crate__enc_view *P,
                              const crate__enc_cache *c, const float *x, size_t B) {
  const crate_dims *dm = &m->dm;
  const size_t d = dm->d, M = B * dm->N;
  /* A1 = LN_1(X), eps 1e-5 */
  crate_layernorm_forward(c->a1, c->mean1, c->rstd1, x, P->ln1_w, P->ln1_b, m->cfg.ln_eps, M, d);
  /* M = MSSA(A1) (written into h), then H = X + M */
  crate_mssa_forward(c->h, c->w, c->attn, c->o, c->a1, P->qkv, P->out_w, P->out_b, B, dm->N, d,
                     dm->K, dm->p);
  crate_residual_forward(c->h, c->h, x, 1.0f, M * d);
  /* A2 = LN_2(H); X' = ReLU(A2 + eta D^T (A2 - D A2) - eta lambda), no residual */
  crate_layernorm_forward(c->a2, c->mean2, c->rstd2, c->h, P->ln2_w, P->ln2_b, m->cfg.ln_eps, M, d);
  crate_ista_forward(c->y, c->r, c->a2, P->ista_D, m->cfg.ista_eta, m->cfg.ista_lambda, M, d);
}

/* Decoder block (MODEL.md §3.8).  x: (M, d) input; tmp: (M, d) scratch. */
static void dec_block_forward(const crate_model *m, const crate__dec_view *P,
                              const crate__dec_cache *c, const float *x, float *tmp, size_t B) {
  const crate_dims *dm = &m->dm;
  const size_t d = dm->d, M = B * dm->N;
  /* B1 = LN_a(X); H = E B1 (no bias, no ReLU, no residual) */
  crate_layernorm_forward(c->b1, c->meana, c->rstda, x, P->lna_w, P->lna_b, m->cfg.ln_eps, M, d);
  crate_linear_forward(c->h, c->b1, P->dec_E, NULL, M, d, d);
  /* B2 = LN_b(H); X' = H - MSSA_V(B2) */
  crate_layernorm_forward(c->b2, c->meanb, c->rstdb, c->h, P->lnb_w, P->lnb_b, m->cfg.ln_eps, M, d);
  crate_mssa_forward(tmp, c->w, c->attn, c->o, c->b2, P->qkv, P->out_w, P->out_b, B, dm->N, d,
                     dm->Kd, dm->pd);
  crate_residual_forward(c->y, c->h, tmp, -1.0f, M * d);
}

/* The network from images to predictions for B images held in A.  shared:
 * A has one cache per block kind (inference); block outputs alternate
 * between cache.y and A->yalt so that no block overwrites its own input.
 * imgs: (B, C, H, H); mask: (B, n). */
static int forward_core(const crate_model *m, const crate__acts *A, const float *imgs,
                        const uint8_t *mask, size_t B, bool shared) {
  const crate_dims *dm = &m->dm;
  const crate__views *pv = &m->pv;
  const size_t d = dm->d, n = dm->n, N = dm->N, P = dm->P, M = B * N;
  /* Patch vectors in embedding order (ch, i, j); e_t = W_pe v_t + b_pe.  All
   * n patches are embedded (as the official code does); masked rows are never
   * read. */
  CRATE_TRY(crate_patchify(A->v, imgs, CRATE_PATCH_EMBED, B, dm->C, dm->H, dm->Q));
  crate_linear_forward(A->e, A->v, pv->pe_w, pv->pe_b, B * n, P, d);
  /* x_0 = cls, x_{t+1} = m_t ? mask_token : e_t, then + Pos (once) */
  crate_tokens_forward(A->x0, A->e, mask, pv->cls_token, pv->mask_token, m->pos, B, n, d);
  const float *x = A->x0;
  for (size_t l = 0; l < dm->Le; l++) {
    crate__enc_cache c = A->enc[shared ? 0 : l];
    if (shared && (l & 1))
      c.y = A->yalt;
    enc_block_forward(m, &pv->enc[l], &c, x, B);
    x = c.y;
  }
  /* latent = norm(X), eps 1e-6 */
  crate_layernorm_forward(A->latent, A->meanf, A->rstdf, x, pv->norm_w, pv->norm_b,
                          m->cfg.final_ln_eps, M, d);
  x = A->latent;
  for (size_t l = 0; l < dm->Ld; l++) {
    crate__dec_cache c = A->dec[shared ? 0 : l];
    if (shared && (l & 1))
      c.y = A->yalt;
    dec_block_forward(m, &pv->dec[l], &c, x, A->tmp, B);
    x = c.y;
  }
  /* pred = W_pred decoder_norm(X) + b_pred on the patch tokens only (CLS dropped) */
  crate_layernorm_forward(A->zd, A->meand, A->rstdd, x, pv->dnorm_w, pv->dnorm_b,
                          m->cfg.final_ln_eps, M, d);
#if defined(CRATE_HAVE_OPENMP)
#pragma omp parallel for schedule(static) if (B * n * P * d >= 1048576)
#endif
  for (size_t b = 0; b < B; b++)
    crate_linear_forward(A->pred + b * n * P, A->zd + (b * N + 1) * d, pv->pred_w, pv->pred_b, n, d,
                         P);
  return CRATE_STATUS_OK;
}

/* Targets in (i, j, ch) order, normalised per patch when norm_pix_loss. */
static int make_targets(const crate_model *m, float *tgt, const float *imgs, size_t B) {
  const crate_dims *dm = &m->dm;
  CRATE_TRY(crate_patchify(tgt, imgs, CRATE_PATCH_TARGET, B, dm->C, dm->H, dm->Q));
  if (m->cfg.norm_pix_loss)
    CRATE_TRY(crate_norm_pix_target(tgt, tgt, B * dm->n, dm->P));
  return CRATE_STATUS_OK;
}

static int check_images(const crate_model *m, const float *imgs, size_t B) {
  const size_t per = m->dm.C * m->dm.H * m->dm.H;
  for (size_t b = 0; b < B; b++)
    if (!crate__all_finitef(imgs + b * per, per))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "model: image %zu of the batch has a non-finite pixel", b);
  return CRATE_STATUS_OK;
}

/* Copies a mask as 0/1 bytes; @return the number of masked patches. */
static size_t copy_mask(uint8_t *dst, const uint8_t *src, size_t count) {
  size_t masked = 0;
  for (size_t i = 0; i < count; i++) {
    dst[i] = src[i] != 0;
    masked += dst[i];
  }
  return masked;
}

/* ---- training forward -------------------------------------------------- */

static int model_forward(crate_model *m, const float *imgs, const uint8_t *mask, size_t B,
                         double *loss) {
  CRATE_ASSERT(m && imgs && mask);
  const crate_dims *dm = &m->dm;
  crate__acts *A = &m->train;
  if (!m->arena)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "model: no activation arena; call crate_model_reserve before forward");
  if (B == 0 || B > A->cap)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: batch %zu outside [1, %zu] (reserved)", B,
                       A->cap);
  CRATE_TRY(check_images(m, imgs, B));
  m->have_forward = false;
  if (copy_mask(A->mask, mask, B * dm->n) == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "model: the mask of the batch has no masked patch; the loss (mean over "
                       "masked patches) is undefined");
  CRATE_TRY(forward_core(m, A, imgs, A->mask, B, false));
  CRATE_TRY(make_targets(m, A->tgt, imgs, B));
  /* L = sum_{b,t} m_bt mean_j (pred - y)^2 / sum m */
  double L = 0.0;
  CRATE_TRY(crate_masked_mse_forward(&L, A->pred, A->tgt, A->mask, B * dm->n, dm->P));
  m->have_forward = true;
  m->last_B = B;
  if (loss)
    *loss = L;
  if (!isfinite(L))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC, "model: non-finite loss %g", L);
  return CRATE_STATUS_OK;
}

/* ---- backward ---------------------------------------------------------- */

/* x[0..n) = 0, in 64 KiB pieces over the OpenMP threads when large. */
static void zero(float *x, size_t n) {
  enum { PIECE = 16384 };
  const size_t np = (n + PIECE - 1) / PIECE;
#if defined(CRATE_HAVE_OPENMP)
#pragma omp parallel for schedule(static) if (np >= 8)
#endif
  for (size_t i = 0; i < np; i++)
    memset(x + i * PIECE, 0, ((i + 1) * PIECE < n ? PIECE : n - i * PIECE) * sizeof *x);
}

/* Inverts the encoder block.  gy (M, d): dL/dX' on entry (clobbered);
 * t1, t2 (M, d) scratch; on return t2 holds dL/dX. */
static void enc_block_backward(const crate_model *m, const crate__enc_view *P,
                               const crate__enc_view *G, const crate__enc_cache *c, const float *x,
                               float *gy, float *t1, float *t2, float *scratch, size_t B) {
  const crate_dims *dm = &m->dm;
  const size_t d = dm->d, M = B * dm->N;
  /* (The _ex ops with acc = false overwrite their input gradient: no zeroing
   * pass over t1, t2, gy first.) */
  /* Forward: X' = ISTA(A2).  t1 = G_A2; G_D accumulates. */
  crate__ista_backward_ex(t1, G->ista_D, scratch, c->y, c->r, gy, c->a2, P->ista_D,
                          m->cfg.ista_eta, M, d, false);
  /* Forward: A2 = LN_2(H).  t2 = G_H. */
  crate__layernorm_backward_ex(t2, G->ln2_w, G->ln2_b, c->mean2, c->rstd2, t1, c->h, P->ln2_w, M, d,
                               false);
  /* Forward: H = X + MSSA(A1).  gy = G_A1 = MSSA^bwd(G_H). */
  crate__mssa_backward_ex(gy, G->qkv, G->out_w, G->out_b, scratch, c->w, c->attn, c->o, t2, c->a1,
                          P->qkv, P->out_w, B, dm->N, d, dm->K, dm->p, false);
  /* Forward: A1 = LN_1(X).  G_X = G_H (residual path, already in t2) + LN_1^bwd(G_A1). */
  crate_layernorm_backward(t2, G->ln1_w, G->ln1_b, c->mean1, c->rstd1, gy, x, P->ln1_w, M, d);
}

/* Inverts the decoder block.  gy (M, d): dL/dX' on entry (clobbered);
 * t1, t2 scratch; on return t2 holds dL/dX. */
static void dec_block_backward(const crate_model *m, const crate__dec_view *P,
                               const crate__dec_view *G, const crate__dec_cache *c, const float *x,
                               float *gy, float *t1, float *t2, float *scratch, size_t B) {
  const crate_dims *dm = &m->dm;
  const size_t d = dm->d, M = B * dm->N, Md = M * d;
  /* Forward: X' = H - MSSA(B2).  t1 = G_M = -G_X'; the H path keeps gy. */
#if defined(CRATE_HAVE_OPENMP)
#pragma omp parallel for schedule(static) if (Md >= 32768)
#endif
  for (size_t i = 0; i < Md; i++)
    t1[i] = -gy[i];
  /* t2 = G_B2 = MSSA^bwd(G_M); the MSSA parameter gradients see -G_X'. */
  crate__mssa_backward_ex(t2, G->qkv, G->out_w, G->out_b, scratch, c->w, c->attn, c->o, t1, c->b2,
                          P->qkv, P->out_w, B, dm->N, d, dm->Kd, dm->pd, false);
  /* Forward: B2 = LN_b(H).  gy = G_H = G_X' + LN_b^bwd(G_B2). */
  crate_layernorm_backward(gy, G->lnb_w, G->lnb_b, c->meanb, c->rstdb, t2, c->h, P->lnb_w, M, d);
  /* Forward: H = E B1.  G_E += G_H B1^T; t1 = G_B1 = E^T G_H (overwritten). */
  crate__linear_backward_ex(t1, G->dec_E, NULL, gy, c->b1, P->dec_E, M, d, d, false);
  /* Forward: B1 = LN_a(X).  t2 = G_X (overwritten). */
  crate__layernorm_backward_ex(t2, G->lna_w, G->lna_b, c->meana, c->rstda, t1, x, P->lna_w, M, d,
                               false);
}

static int model_backward(crate_model *m) {
  CRATE_ASSERT(m);
  if (!m->have_forward)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: backward needs a successful forward first");
  const crate_dims *dm = &m->dm;
  const crate__acts *A = &m->train;
  const crate__views *P = &m->pv, *G = &m->gv;
  const size_t B = m->last_B, d = dm->d, n = dm->n, N = dm->N, Pn = dm->P;
  const size_t M = B * N, Md = M * d;
  zero(m->grads, m->n_params);
  /* Forward: L = masked MSE(pred, tgt).  gpred = dL/dpred. */
  zero(A->gpred, B * n * Pn);
  CRATE_TRY(crate_masked_mse_backward(A->gpred, A->pred, A->tgt, A->mask, 1.0, B * n, Pn));
  /* Forward: pred_t = W_pred zd_{t+1} + b_pred (patch tokens).  The CLS rows
   * of the gradient stay 0. */
  float *g[3] = {A->g0, A->g1, A->g2};
  zero(g[0], Md);
  for (size_t b = 0; b < B; b++)
    crate_linear_backward(g[0] + (b * N + 1) * d, G->pred_w, G->pred_b, A->gpred + b * n * Pn,
                          A->zd + (b * N + 1) * d, P->pred_w, n, d, Pn);
  /* Forward: zd = decoder_norm(X^(L_d)). */
  const float *xd = dm->Ld > 0 ? A->dec[dm->Ld - 1].y : A->latent;
  crate__layernorm_backward_ex(g[1], G->dnorm_w, G->dnorm_b, A->meand, A->rstdd, g[0], xd,
                               P->dnorm_w, M, d, false);
  /* The running gradient is g[0] after each rotation. */
  float *t = g[0];
  g[0] = g[1];
  g[1] = t;
  for (size_t l = dm->Ld; l-- > 0;) {
    const float *x = l > 0 ? A->dec[l - 1].y : A->latent;
    dec_block_backward(m, &P->dec[l], &G->dec[l], &A->dec[l], x, g[0], g[1], g[2], A->scratch, B);
    t = g[0];
    g[0] = g[2];
    g[2] = t;
  }
  /* Forward: latent = norm(X^(L_e)). */
  const float *xe = dm->Le > 0 ? A->enc[dm->Le - 1].y : A->x0;
  crate__layernorm_backward_ex(g[1], G->norm_w, G->norm_b, A->meanf, A->rstdf, g[0], xe, P->norm_w,
                               M, d, false);
  t = g[0];
  g[0] = g[1];
  g[1] = t;
  for (size_t l = dm->Le; l-- > 0;) {
    const float *x = l > 0 ? A->enc[l - 1].y : A->x0;
    enc_block_backward(m, &P->enc[l], &G->enc[l], &A->enc[l], x, g[0], g[1], g[2], A->scratch, B);
    t = g[0];
    g[0] = g[2];
    g[2] = t;
  }
  /* Forward: token assembly.  G_cls, G_mask_token; ge = G_e on visible rows
   * only (masked rows stay 0); Pos gets nothing. */
  zero(A->ge, B * n * d);
  crate_tokens_backward(A->ge, G->cls_token, G->mask_token, g[0], A->mask, B, n, d);
  /* Forward: e = v W_pe^T + b_pe. */
  crate_linear_backward(NULL, G->pe_w, G->pe_b, A->ge, A->v, P->pe_w, B * n, Pn, d);
  return CRATE_STATUS_OK;
}

/* ---- results of the last forward --------------------------------------- */

const float *crate_model_pred(const crate_model *m, size_t *B) {
  CRATE_ASSERT(m);
  if (B)
    *B = m->have_forward ? m->last_B : 0;
  return m->have_forward ? m->train.pred : NULL;
}

int crate_model_reconstruct(crate_model *m, float *img_pred, float *img_pasted) {
  CRATE_ASSERT(m);
  if (!m->have_forward)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: reconstruct needs a successful forward first");
  if (m->cfg.norm_pix_loss)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "model: predictions are per-patch normalised (norm_pix_loss on), not "
                       "pixels; reconstruction needs norm_pix_loss off");
  const crate_dims *dm = &m->dm;
  const crate__acts *A = &m->train;
  const size_t B = m->last_B, C = dm->C, H = dm->H, Q = dm->Q, g = dm->g, n = dm->n, P = dm->P;
  if (img_pred)
    CRATE_TRY(crate_unpatchify(img_pred, A->pred, CRATE_PATCH_TARGET, B, C, H, Q));
  if (img_pasted) {
    /* The input (embedding-order patches hold the raw input), then the
     * prediction over every masked patch: (1 - m) input + m pred. */
    CRATE_TRY(crate_unpatchify(img_pasted, A->v, CRATE_PATCH_EMBED, B, C, H, Q));
    for (size_t b = 0; b < B; b++)
      for (size_t t = 0; t < n; t++) {
        if (!A->mask[b * n + t])
          continue;
        const size_t r = t / g, c = t % g;
        const float *y = A->pred + (b * n + t) * P;
        for (size_t ch = 0; ch < C; ch++)
          for (size_t i = 0; i < Q; i++)
            for (size_t j = 0; j < Q; j++)
              img_pasted[((b * C + ch) * H + r * Q + i) * H + c * Q + j] = y[(i * Q + j) * C + ch];
      }
  }
  return CRATE_STATUS_OK;
}

int crate_model_layer_tokens(const crate_model *m, crate_model_site site, size_t layer,
                             const float **z, size_t *rows) {
  CRATE_ASSERT(m && z);
  if (!m->have_forward)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: layer tokens need a successful forward first");
  const crate__acts *A = &m->train;
  const size_t Le = m->dm.Le, Ld = m->dm.Ld;
  const bool enc = site >= CRATE_SITE_ENC_NORM1 && site <= CRATE_SITE_ENC_OUT;
  const bool dec = site >= CRATE_SITE_DEC_NORMA && site <= CRATE_SITE_DEC_OUT;
  if ((enc && layer >= Le) || (dec && layer >= Ld))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "model: block %zu out of range (%zu encoder, %zu "
                       "decoder blocks)",
                       layer, Le, Ld);
  switch (site) {
  case CRATE_SITE_TOKENS: *z = A->x0; break;
  case CRATE_SITE_ENC_NORM1: *z = A->enc[layer].a1; break;
  case CRATE_SITE_ENC_HIDDEN: *z = A->enc[layer].h; break;
  case CRATE_SITE_ENC_NORM2: *z = A->enc[layer].a2; break;
  case CRATE_SITE_ENC_OUT: *z = A->enc[layer].y; break;
  case CRATE_SITE_LATENT: *z = A->latent; break;
  case CRATE_SITE_DEC_NORMA: *z = A->dec[layer].b1; break;
  case CRATE_SITE_DEC_HIDDEN: *z = A->dec[layer].h; break;
  case CRATE_SITE_DEC_NORMB: *z = A->dec[layer].b2; break;
  case CRATE_SITE_DEC_OUT: *z = A->dec[layer].y; break;
  default: return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: unknown activation site %d", (int)site);
  }
  if (rows)
    *rows = m->last_B * m->dm.N;
  return CRATE_STATUS_OK;
}

/* ---- inference --------------------------------------------------------- */

static int model_infer(crate_model *m, float *pred, const float *imgs, const uint8_t *mask,
                       size_t B, double *loss) {
  CRATE_ASSERT(m && pred && imgs && mask);
  const crate_dims *dm = &m->dm;
  const crate__acts *A = &m->inf;
  const size_t n = dm->n, P = dm->P, per = dm->C * dm->H * dm->H;
  if (B == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: inference on an empty batch");
  CRATE_TRY(check_images(m, imgs, B));
  size_t masked_total = 0;
  for (size_t i = 0; i < B * n; i++)
    masked_total += mask[i] != 0;
  if (loss && masked_total == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "model: the mask has no masked patch; the loss (mean over masked patches) "
                       "is undefined");
  double total = 0.0;
  for (size_t b = 0; b < B; b++) {
    const size_t masked = copy_mask(A->mask, mask + b * n, n);
    CRATE_TRY(forward_core(m, A, imgs + b * per, A->mask, 1, true));
    memcpy(pred + b * n * P, A->pred, n * P * sizeof(float));
    if (loss && masked > 0) {
      double Lb = 0.0;
      CRATE_TRY(make_targets(m, A->tgt, imgs + b * per, 1));
      CRATE_TRY(crate_masked_mse_forward(&Lb, A->pred, A->tgt, A->mask, n, P));
      total += Lb * (double)masked; /* back to a sum over masked patches */
    }
  }
  if (loss) {
    *loss = total / (double)masked_total;
    if (!isfinite(*loss))
      return CRATE_ERROR(CRATE_STATUS_ENUMERIC, "model: non-finite loss %g", *loss);
  }
  return CRATE_STATUS_OK;
}

/* ---- entry points: the model path's thread owner (crate/threads.h) ----- */

/* With OpenMP owning the model path, every BLAS call below runs
 * single-threaded (STYLE.md §6: one owner of threads per code path). */

int crate_model_forward(crate_model *m, const float *imgs, const uint8_t *mask, size_t B,
                        double *loss) {
  const int saved = crate__model_region_begin();
  const int st = model_forward(m, imgs, mask, B, loss);
  crate__blas_serial_end(saved);
  return st;
}

int crate_model_backward(crate_model *m) {
  const int saved = crate__model_region_begin();
  const int st = model_backward(m);
  crate__blas_serial_end(saved);
  return st;
}

int crate_model_infer(crate_model *m, float *pred, const float *imgs, const uint8_t *mask, size_t B,
                      double *loss) {
  const int saved = crate__model_region_begin();
  const int st = model_infer(m, pred, imgs, mask, B, loss);
  crate__blas_serial_end(saved);
  return st;
}
