/* patch.c: patchify / unpatchify in both patch-vector orders, the fixed 2-D
 * sin-cos position table and token assembly (MODEL.md §3.1, §3.4, §3.5; §8
 * "Token assembly").
 *
 * Images are planar (B, C, H, H); patch t = r g + c (g = H / Q) has two vector
 * orders: embedding (ch, i, j) and target (i, j, ch) (MODEL.md §3.1 table).
 * Tokens: x[b, 0] = cls + pos[0], x[b, t+1] = (masked ? mask_token : e[b, t])
 * + pos[t+1].  The position table puts the COLUMN index first, as the
 * official get_2d_sincos_pos_embed does.
 * Non-goals: non-square images, learned position embeddings.
 */
#include <string.h>

#include "ops_internal.h"

/* ---- patchify / unpatchify --------------------------------------------------- */

static int check_geometry(size_t C, size_t H, size_t Q) {
  if (C == 0 || H == 0 || Q == 0 || H % Q != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "ops: patch geometry C=%zu H=%zu Q=%zu invalid (need C, H, Q > 0 and "
                       "H a multiple of Q)",
                       C, H, Q);
  return CRATE_STATUS_OK;
}

/* Copies between one image (C, H, H) and its patches (n, P); to_patches
 * chooses the direction.  Embedding order copies Q contiguous floats at a
 * time; target order interleaves channels. */
static void patch_copy(float *patches, float *img, const float *cpatches, const float *cimg,
                       bool to_patches, crate_patch_order order, size_t C, size_t H, size_t Q) {
  const size_t g = H / Q, P = C * Q * Q;
  for (size_t r = 0; r < g; r++)
    for (size_t c = 0; c < g; c++) {
      const size_t t = r * g + c;
      for (size_t ch = 0; ch < C; ch++)
        for (size_t i = 0; i < Q; i++) {
          const size_t pix = (ch * H + r * Q + i) * H + c * Q;
          if (order == CRATE_PATCH_EMBED) {
            const size_t v = t * P + (ch * Q + i) * Q;
            if (to_patches)
              memcpy(patches + v, cimg + pix, Q * sizeof(float));
            else
              memcpy(img + pix, cpatches + v, Q * sizeof(float));
          } else {
            const size_t v = t * P + i * Q * C + ch;
            if (to_patches)
              for (size_t j = 0; j < Q; j++)
                patches[v + j * C] = cimg[pix + j];
            else
              for (size_t j = 0; j < Q; j++)
                img[pix + j] = cpatches[v + j * C];
          }
        }
    }
}

int crate_patchify(float *patches, const float *img, crate_patch_order order, size_t B, size_t C,
                   size_t H, size_t Q) {
  /* patches: (B, n, P); img: (B, C, H, H) */
  CRATE_ASSERT(patches && img);
  CRATE_TRY(check_geometry(C, H, Q));
  const size_t n = (H / Q) * (H / Q), P = C * Q * Q;
  for (size_t b = 0; b < B; b++)
    patch_copy(patches + b * n * P, NULL, NULL, img + b * C * H * H, true, order, C, H, Q);
  return CRATE_STATUS_OK;
}

int crate_unpatchify(float *img, const float *patches, crate_patch_order order, size_t B, size_t C,
                     size_t H, size_t Q) {
  /* img: (B, C, H, H); patches: (B, n, P).  Inverse (and backward) of patchify. */
  CRATE_ASSERT(patches && img);
  CRATE_TRY(check_geometry(C, H, Q));
  const size_t n = (H / Q) * (H / Q), P = C * Q * Q;
  for (size_t b = 0; b < B; b++)
    patch_copy(NULL, img + b * C * H * H, patches + b * n * P, NULL, false, order, C, H, Q);
  return CRATE_STATUS_OK;
}

/* Pixel index (within one image) of element e of patch t, straight from the
 * MODEL.md §3.1 table. */
static size_t ref_pixel(size_t t, size_t e, crate_patch_order order, size_t C, size_t H, size_t Q) {
  const size_t g = H / Q, r = t / g, c = t % g;
  size_t ch, i, j;
  if (order == CRATE_PATCH_EMBED) { /* e = (ch Q + i) Q + j */
    ch = e / (Q * Q);
    i = (e / Q) % Q;
    j = e % Q;
  } else { /* e = (i Q + j) C + ch */
    ch = e % C;
    j = (e / C) % Q;
    i = e / (C * Q);
  }
  return (ch * H + r * Q + i) * H + c * Q + j;
}

int crate_patchify_ref(float *patches, const float *img, crate_patch_order order, size_t B,
                       size_t C, size_t H, size_t Q) {
  CRATE_ASSERT(patches && img);
  CRATE_TRY(check_geometry(C, H, Q));
  const size_t n = (H / Q) * (H / Q), P = C * Q * Q;
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < n; t++)
      for (size_t e = 0; e < P; e++)
        patches[(b * n + t) * P + e] = img[b * C * H * H + ref_pixel(t, e, order, C, H, Q)];
  return CRATE_STATUS_OK;
}

int crate_unpatchify_ref(float *img, const float *patches, crate_patch_order order, size_t B,
                         size_t C, size_t H, size_t Q) {
  CRATE_ASSERT(patches && img);
  CRATE_TRY(check_geometry(C, H, Q));
  const size_t n = (H / Q) * (H / Q), P = C * Q * Q;
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < n; t++)
      for (size_t e = 0; e < P; e++)
        img[b * C * H * H + ref_pixel(t, e, order, C, H, Q)] = patches[(b * n + t) * P + e];
  return CRATE_STATUS_OK;
}

/* ---- position table ---------------------------------------------------------- */

static int check_pos(size_t g, size_t d) {
  if (g == 0 || d == 0 || d % 4 != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "ops: sin-cos position table needs g > 0 and d a positive multiple of "
                       "4 (got g=%zu, d=%zu)",
                       g, d);
  return CRATE_STATUS_OK;
}

int crate_pos_table(float *pos, size_t g, size_t d) {
  /* pos: (g g + 1, d) */
  CRATE_ASSERT(pos);
  CRATE_TRY(check_pos(g, d));
  const size_t D4 = d / 4;
  memset(pos, 0, d * sizeof(float)); /* CLS row */
  for (size_t k = 0; k < D4; k++) {
    const double w = pow(10000.0, -(double)k / (double)D4);
    for (size_t t = 0; t < g * g; t++) {
      const double cw = (double)(t % g) * w, rw = (double)(t / g) * w;
      float *row = pos + (t + 1) * d;
      row[k] = (float)sin(cw);
      row[D4 + k] = (float)cos(cw);
      row[2 * D4 + k] = (float)sin(rw);
      row[3 * D4 + k] = (float)cos(rw);
    }
  }
  return CRATE_STATUS_OK;
}

int crate_pos_table_ref(double *pos, size_t g, size_t d) {
  CRATE_ASSERT(pos);
  CRATE_TRY(check_pos(g, d));
  const size_t D4 = d / 4;
  for (size_t t = 0; t <= g * g; t++)
    for (size_t e = 0; e < d; e++) {
      if (t == 0) {
        pos[e] = 0.0;
        continue;
      }
      const size_t r = (t - 1) / g, c = (t - 1) % g, blk = e / D4, k = e % D4;
      const double w = 1.0 / pow(10000.0, (double)k / (double)D4);
      const double arg = (double)(blk < 2 ? c : r) * w;
      pos[t * d + e] = (blk % 2 == 0) ? sin(arg) : cos(arg);
    }
  return CRATE_STATUS_OK;
}

/* ---- token assembly -------------------------------------------------------- */

void crate_tokens_forward(float *x, const float *e, const uint8_t *mask, const float *cls,
                          const float *mask_token, const float *pos, size_t B, size_t n, size_t d) {
  /* x: (B, N, d), N = n + 1; e: (B, n, d); mask: (B, n); cls, mask_token: (d);
   * pos: (N, d) */
  CRATE_ASSERT(x && e && mask && cls && mask_token && pos && d > 0);
  const size_t N = n + 1;
  for (size_t b = 0; b < B; b++) {
    float *xb = x + b * N * d;
    for (size_t j = 0; j < d; j++)
      xb[j] = cls[j] + pos[j];
    for (size_t t = 0; t < n; t++) {
      const float *src = mask[b * n + t] ? mask_token : e + (b * n + t) * d;
      float *dst = xb + (t + 1) * d;
      const float *pr = pos + (t + 1) * d;
      for (size_t j = 0; j < d; j++)
        dst[j] = src[j] + pr[j];
    }
  }
}

void crate_tokens_backward(float *ge, float *gcls, float *gmask_token, const float *gx,
                           const uint8_t *mask, size_t B, size_t n, size_t d) {
  /* ge: (B, n, d); gcls, gmask_token: (d); gx: (B, N, d); mask: (B, n).
   * Inverts x_0 = cls + Pos_0, x_{t+1} = (m_t ? mask_token : e_t) + Pos_{t+1}:
   *   G_cls += sum_b G_X[:, 0];  G_mask += sum_{m_t = 1} G_X[:, t+1];
   *   G_{e_t} += G_X[:, t+1] for visible t. */
  CRATE_ASSERT(gx && mask && d > 0);
  const size_t N = n + 1;
  double acc_c[CRATE__OPS_COLBLOCK], acc_m[CRATE__OPS_COLBLOCK];
  for (size_t j0 = 0; j0 < d; j0 += CRATE__OPS_COLBLOCK) {
    const size_t nb = d - j0 < CRATE__OPS_COLBLOCK ? d - j0 : CRATE__OPS_COLBLOCK;
    for (size_t j = 0; j < nb; j++)
      acc_c[j] = acc_m[j] = 0.0;
    for (size_t b = 0; b < B; b++) {
      const float *gb = gx + b * N * d + j0;
      for (size_t j = 0; j < nb; j++)
        acc_c[j] += (double)gb[j];
      for (size_t t = 0; t < n; t++) {
        const float *gt = gb + (t + 1) * d;
        if (mask[b * n + t]) {
          for (size_t j = 0; j < nb; j++)
            acc_m[j] += (double)gt[j];
        } else if (ge) {
          float *dst = ge + (b * n + t) * d + j0;
          for (size_t j = 0; j < nb; j++)
            dst[j] += gt[j];
        }
      }
    }
    for (size_t j = 0; j < nb; j++) {
      if (gcls)
        gcls[j0 + j] = (float)((double)gcls[j0 + j] + acc_c[j]);
      if (gmask_token)
        gmask_token[j0 + j] = (float)((double)gmask_token[j0 + j] + acc_m[j]);
    }
  }
}

void crate_tokens_forward_ref(double *x, const double *e, const uint8_t *mask, const double *cls,
                              const double *mask_token, const double *pos, size_t B, size_t n,
                              size_t d) {
  CRATE_ASSERT(x && e && mask && cls && mask_token && pos);
  const size_t N = n + 1;
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < N; t++)
      for (size_t j = 0; j < d; j++) {
        double v;
        if (t == 0)
          v = cls[j];
        else if (mask[b * n + t - 1])
          v = mask_token[j];
        else
          v = e[(b * n + t - 1) * d + j];
        x[(b * N + t) * d + j] = v + pos[t * d + j];
      }
}

void crate_tokens_backward_ref(double *ge, double *gcls, double *gmask_token, const double *gx,
                               const uint8_t *mask, size_t B, size_t n, size_t d) {
  CRATE_ASSERT(gx && mask);
  const size_t N = n + 1;
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < N; t++)
      for (size_t j = 0; j < d; j++) {
        double g = gx[(b * N + t) * d + j];
        if (t == 0) {
          if (gcls)
            gcls[j] += g;
        } else if (mask[b * n + t - 1]) {
          if (gmask_token)
            gmask_token[j] += g;
        } else if (ge) {
          ge[(b * n + t - 1) * d + j] += g;
        }
      }
}
