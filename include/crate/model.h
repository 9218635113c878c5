/* model.h: the CRATE-MAE network (MODEL.md §3 forward, §4 init, §6 tensors,
 * §8 backward).
 *
 * crate_model is an opaque handle that owns, each in ONE aligned block
 * carved into named views by the parameter table (STYLE.md principle 4):
 *   - the flat parameter block (MODEL.md §6 order, see crate_model_tensor);
 *   - the flat gradient block (same layout; allocated by crate_model_reserve);
 *   - the fixed position table decoder_pos_embed (N, d);
 *   - the training activation arena (crate_model_reserve);
 *   - a small single-image workspace for crate_model_infer (at create).
 * Nothing is allocated inside forward, backward, reconstruct or infer.
 *
 * Typical training use:
 *   crate_model_create(&m, &cfg); crate_model_init(m, seed);
 *   crate_model_reserve(m, B);
 *   loop: crate_model_forward(m, imgs, mask, B, &loss); crate_model_backward(m);
 *         optimiser step on crate_model_params(m) with crate_model_grads(m)
 *
 * Images are planar float (B, C, H, H), already normalised (MODEL.md §2
 * input transform).  Masks are (B, n) uint8, 1 = removed (reconstructed)
 * patch, 0 = visible, in patch order t = r g + c.  Predictions are (B, n, P)
 * in TARGET order (i, j, ch) (MODEL.md §3.1).
 *
 * A model is not thread-safe: one thread at a time per handle.  Pointers
 * returned by getters are borrowed and valid until crate_model_destroy (the
 * gradient pointer until then too, once reserved; arena pointers until the
 * next crate_model_reserve that grows the arena).
 */
#ifndef CRATE_MODEL_H
#define CRATE_MODEL_H

#include "crate/config.h"
#include "crate/defs.h"

typedef struct crate_model crate_model;

/** One tensor of the model: its table entry and where its values live. */
typedef struct crate_model_tensor {
  crate_tensor_desc desc; /* name, shape, count, flat offset, flags */
  float *data;            /* desc.count values (borrowed) */
  float *grad;            /* gradient view, NULL for decoder_pos_embed or
                             before crate_model_reserve */
} crate_model_tensor;

/** Activation sites that crate_model_layer_tokens exposes (all (B N, d)
 *  token rows of the last training forward; "layer" picks the block). */
typedef enum crate_model_site {
  CRATE_SITE_TOKENS = 0, /* tokens entering the encoder (after + Pos) */
  CRATE_SITE_ENC_NORM1,  /* A^(1) = LN_1(X): the MSSA input Z of block l */
  CRATE_SITE_ENC_HIDDEN, /* H = X + MSSA(A^(1)) */
  CRATE_SITE_ENC_NORM2,  /* A^(2) = LN_2(H): the ISTA input */
  CRATE_SITE_ENC_OUT,    /* X' = ISTA output (sparse, >= 0) */
  CRATE_SITE_LATENT,     /* norm(X^(L_e)) */
  CRATE_SITE_DEC_NORMA,  /* B^(1) = LN_a(X) */
  CRATE_SITE_DEC_HIDDEN, /* H = E B^(1) */
  CRATE_SITE_DEC_NORMB,  /* B^(2) = LN_b(H) */
  CRATE_SITE_DEC_OUT,    /* X' = H - MSSA_V(B^(2)) */
} crate_model_site;

/* ---- lifetime ---------------------------------------------------------- */

/** Creates a model for a config (validated): parameters zero (call
 *  crate_model_init or load them), position table computed (MODEL.md §3.5),
 *  inference workspace allocated.  No gradient block or arena yet.
 *  @param out receives the handle (owned; free with crate_model_destroy)
 *  @return OK, EINVAL (config) or ENOMEM; *out untouched on error. */
CRATE_API int crate_model_create(crate_model **out, const crate_config *cfg);

/** Frees everything the model owns.  NULL is a no-op. */
CRATE_API void crate_model_destroy(crate_model *m);

/** Initialises every trainable tensor by MODEL.md §4, drawing from the
 *  Philox stream CRATE_RNG_INIT of seed in table order (same seed, same
 *  bits).  The position table is not touched.  Never fails on a valid model;
 *  @return OK. */
CRATE_API int crate_model_init(crate_model *m, uint64_t seed);

/** @return the model's config (borrowed). */
CRATE_API const crate_config *crate_model_config(const crate_model *m);
/** @return the derived sizes (borrowed). */
CRATE_API const crate_dims *crate_model_dims(const crate_model *m);

/* ---- parameters and the tensor table ----------------------------------- */

/** @return the number of floats in the flat parameter (and gradient) block,
 *  = the trainable parameter count of MODEL.md §7. */
CRATE_API size_t crate_model_param_count(const crate_model *m);
/** @return the flat parameter block (param_count floats, borrowed, writable:
 *  loaders and optimisers write here). */
CRATE_API float *crate_model_params(crate_model *m);
/** @return the flat gradient block (same layout), or NULL before
 *  crate_model_reserve.  Filled by crate_model_backward. */
CRATE_API float *crate_model_grads(crate_model *m);
/** @return the fixed position table decoder_pos_embed, (N, d) floats
 *  (borrowed, writable: a loader may replace it with stored values). */
CRATE_API float *crate_model_pos_embed(crate_model *m);

/** @return the number of tensors: every trainable tensor in table order
 *  (indices 0 .. count-2), then decoder_pos_embed (index count-1). */
CRATE_API size_t crate_model_tensor_count(const crate_model *m);
/** Fills *out with tensor i.  @return OK or EINVAL (i out of range). */
CRATE_API int crate_model_tensor_at(crate_model *m, size_t i, crate_model_tensor *out);
/** Finds a tensor by its official name.  @return OK or EINVAL (unknown name;
 *  the message names it). */
CRATE_API int crate_model_tensor_find(crate_model *m, const char *name, crate_model_tensor *out);

/* ---- training ---------------------------------------------------------- */

/** Bytes the training arena needs for batch B (measure only; nothing is
 *  allocated).  @return OK or EINVAL (B = 0 or the size overflows). */
CRATE_API int crate_model_arena_size(const crate_model *m, size_t batch, size_t *bytes);

/** Makes the model ready to train batches of up to `batch` images: allocates
 *  the gradient block (once) and the activation arena (measured first, then
 *  one allocation; a smaller or equal batch than already reserved is a
 *  no-op).  Invalidates the last forward when it reallocates.
 *  @return OK, EINVAL (batch 0 or too large) or ENOMEM (state unchanged). */
CRATE_API int crate_model_reserve(crate_model *m, size_t batch);
/** @return the reserved batch capacity (0 before crate_model_reserve). */
CRATE_API size_t crate_model_reserved_batch(const crate_model *m);
/** @return the arena size in bytes (0 before crate_model_reserve). */
CRATE_API size_t crate_model_arena_bytes(const crate_model *m);
/** @return how many heap blocks the model has allocated since creation (a
 *  test hook: forward, backward, reconstruct and infer never change it). */
CRATE_API size_t crate_model_alloc_count(const crate_model *m);

/** Training forward (MODEL.md §3): patches, token assembly with mask tokens
 *  before the encoder, L_e encoder blocks, final norm, L_d decoder blocks,
 *  decoder_norm, decoder_pred on the patch tokens, masked MSE over the batch
 *  (mean over all masked patches; targets in (i, j, ch) order, normalised
 *  when norm_pix_loss).  Stores every activation backward needs.
 *  @param imgs (B, C, H, H) planar, already normalised, finite
 *  @param mask (B, n), 1 = masked; at least one masked patch in the batch
 *  @param B    1 .. crate_model_reserved_batch(m)
 *  @param loss receives the loss (may be NULL)
 *  @return OK; EINVAL (not reserved, B too large or 0, no masked patch,
 *          non-finite pixel); ENUMERIC (non-finite loss: a forward was
 *          still recorded, so backward works but training should stop). */
CRATE_API int crate_model_forward(crate_model *m, const float *imgs, const uint8_t *mask, size_t B,
                                  double *loss);

/** Backward of the last forward (MODEL.md §8): ZEROES the gradient block,
 *  then fills it with dLoss/dtheta for every trainable tensor (the position
 *  table gets none).  May be called more than once per forward (same result).
 *  @return OK or EINVAL (no forward recorded). */
CRATE_API int crate_model_backward(crate_model *m);

/** @return the predictions of the last forward, (B, n, P) target order
 *  (borrowed, arena), or NULL if none; *B (optional) receives B. */
CRATE_API const float *crate_model_pred(const crate_model *m, size_t *B);

/** Images of the last forward (MODEL.md §3.11), both in the normalised input
 *  space (undo crate_config pixel_mean/std and clamp before writing PNGs):
 *  @param img_pred   (B, C, H, H) unpatchified prediction, or NULL
 *  @param img_pasted (B, C, H, H) input with masked patches replaced by the
 *                    prediction, or NULL
 *  @return OK or EINVAL (no forward, or norm_pix_loss on: predictions are
 *          not pixels then). */
CRATE_API int crate_model_reconstruct(crate_model *m, float *img_pred, float *img_pasted);

/** Activations of the last training forward at a site, (B N, d) token rows.
 *  @param layer block index for ENC_* / DEC_* sites, ignored otherwise
 *  @param z     receives the borrowed pointer (arena)
 *  @param rows  receives B N (may be NULL)
 *  @return OK or EINVAL (no forward, bad site or layer). */
CRATE_API int crate_model_layer_tokens(const crate_model *m, crate_model_site site, size_t layer,
                                       const float **z, size_t *rows);

/* ---- inference --------------------------------------------------------- */

/** Prediction without the training arena: images are processed one at a
 *  time in the model's own single-image workspace (allocated at create), so
 *  it works before (and does not disturb) crate_model_reserve / forward.
 *  Same computation as crate_model_forward.
 *  @param pred (B, n, P) target order, output
 *  @param imgs (B, C, H, H) planar, normalised, finite
 *  @param mask (B, n), 1 = masked (mask tokens); an all-visible mask is fine
 *  @param loss receives the masked MSE over the batch, or NULL (then no
 *              masked patch is required)
 *  @return OK; EINVAL (B = 0, non-finite pixel, loss asked without a masked
 *          patch); ENUMERIC (non-finite loss). */
CRATE_API int crate_model_infer(crate_model *m, float *pred, const float *imgs, const uint8_t *mask,
                                size_t B, double *loss);

#endif
