/* params.h: THE parameter table of CRATE-MAE (MODEL.md §4, §6; STYLE.md
 * principle 4).  Private to src/model/.
 *
 * Every trainable tensor appears exactly once, in MODEL.md §6 order, as
 *
 *   X(field, name, decay, init, s0, s1, s2, s3)
 *
 *   field  member name of the view structs (crate__views, crate__enc_view,
 *          crate__dec_view) that point into the flat blocks
 *   name   official state-dict name; "%zu" is the layer index
 *   decay  1 if AdamW weight decay applies: exactly the tensors with two or
 *          more dims as stored (MODEL.md §10.1, O4: cls/mask_token decay)
 *   init   initialisation rule (MODEL.md §4), a crate__init value without its
 *          CRATE__INIT_ prefix
 *   s0..s3 PyTorch shape in symbolic sizes (crate__dim without CRATE__DIM_);
 *          NONE ends the shape
 *
 * The table drives the flat parameter / gradient (and later AdamW m, v)
 * layout and offsets, the view pointers, the tensor names for safetensors,
 * the parameter count and the initialisation, so none of them can drift.
 * decoder_pos_embed [1, N, d] is NOT in the table: it is fixed (no gradient,
 * no optimiser state) and lives in its own buffer (MODEL.md §6 notes).
 *
 * Groups, in flat-block order: HEAD, ENC x L_e, MID, DEC x L_d, TAIL.
 */
#ifndef CRATE_MODEL_PARAMS_H
#define CRATE_MODEL_PARAMS_H

/* Symbolic sizes of tensor dimensions (values: crate__dim_value). */
typedef enum crate__dim {
  CRATE__DIM_NONE = 0, /* no such dimension */
  CRATE__DIM_ONE,      /* 1 */
  CRATE__DIM_D,        /* d (embed_dim) */
  CRATE__DIM_KP,       /* K p = d (MSSA inner width) */
  CRATE__DIM_C,        /* in_chans */
  CRATE__DIM_Q,        /* patch_size */
  CRATE__DIM_P,        /* C Q^2 */
} crate__dim;

/* Initialisation rules (MODEL.md §4); every random rule draws from the INIT
 * Philox stream in table order. */
typedef enum crate__init {
  CRATE__INIT_ZERO = 0, /* 0 (biases of Linear layers, LayerNorm bias) */
  CRATE__INIT_ONE,      /* 1 (LayerNorm weight) */
  CRATE__INIT_NORMAL,   /* N(0, 0.02^2) (cls_token, mask_token) */
  CRATE__INIT_XAVIER,   /* U(+-sqrt(6 / (fan_in + fan_out))), fan_out = s0,
                           fan_in = s1 s2 s3 (Linear weights; the conv weight on
                           its (d, P) view) */
  CRATE__INIT_CONVBIAS, /* U(+-1/sqrt(P)): PyTorch Conv2d default bias, fan_in = P */
  CRATE__INIT_KAIMING,  /* U(+-sqrt(6 / fan_in)), fan_in = s1: kaiming_uniform_
                           with a = 0 (ISTA D, decoder E) */
} crate__init;

/* ---- the table --------------------------------------------------------- */

#define CRATE__PARAMS_HEAD(X)                                                                      \
  X(cls_token, "cls_token", 1, NORMAL, ONE, ONE, D, NONE)                                          \
  X(mask_token, "mask_token", 1, NORMAL, ONE, ONE, D, NONE)                                        \
  X(pe_w, "patch_embed.proj.weight", 1, XAVIER, D, C, Q, Q)                                        \
  X(pe_b, "patch_embed.proj.bias", 0, CONVBIAS, D, NONE, NONE, NONE)

/* Encoder block i: layers.0.0 = LN_1 + MSSA, layers.0.1 = LN_2 + ISTA. */
#define CRATE__PARAMS_ENC(X)                                                                       \
  X(ln1_w, "blocks.%zu.layers.0.0.norm.weight", 0, ONE, D, NONE, NONE, NONE)                       \
  X(ln1_b, "blocks.%zu.layers.0.0.norm.bias", 0, ZERO, D, NONE, NONE, NONE)                        \
  X(qkv, "blocks.%zu.layers.0.0.fn.qkv.weight", 1, XAVIER, KP, D, NONE, NONE)                      \
  X(out_w, "blocks.%zu.layers.0.0.fn.to_out.0.weight", 1, XAVIER, D, KP, NONE, NONE)               \
  X(out_b, "blocks.%zu.layers.0.0.fn.to_out.0.bias", 0, ZERO, D, NONE, NONE, NONE)                 \
  X(ln2_w, "blocks.%zu.layers.0.1.norm.weight", 0, ONE, D, NONE, NONE, NONE)                       \
  X(ln2_b, "blocks.%zu.layers.0.1.norm.bias", 0, ZERO, D, NONE, NONE, NONE)                        \
  X(ista_D, "blocks.%zu.layers.0.1.fn.weight", 1, KAIMING, D, D, NONE, NONE)

#define CRATE__PARAMS_MID(X)                                                                       \
  X(norm_w, "norm.weight", 0, ONE, D, NONE, NONE, NONE)                                            \
  X(norm_b, "norm.bias", 0, ZERO, D, NONE, NONE, NONE)

/* Decoder block j: layers.0.0 = LN_a + E, layers.0.1 = LN_b + MSSA. */
#define CRATE__PARAMS_DEC(X)                                                                       \
  X(lna_w, "decoder_blocks.%zu.layers.0.0.norm.weight", 0, ONE, D, NONE, NONE, NONE)               \
  X(lna_b, "decoder_blocks.%zu.layers.0.0.norm.bias", 0, ZERO, D, NONE, NONE, NONE)                \
  X(dec_E, "decoder_blocks.%zu.layers.0.0.fn.weight", 1, KAIMING, D, D, NONE, NONE)                \
  X(lnb_w, "decoder_blocks.%zu.layers.0.1.norm.weight", 0, ONE, D, NONE, NONE, NONE)               \
  X(lnb_b, "decoder_blocks.%zu.layers.0.1.norm.bias", 0, ZERO, D, NONE, NONE, NONE)                \
  X(qkv, "decoder_blocks.%zu.layers.0.1.fn.qkv.weight", 1, XAVIER, KP, D, NONE, NONE)              \
  X(out_w, "decoder_blocks.%zu.layers.0.1.fn.to_out.0.weight", 1, XAVIER, D, KP, NONE, NONE)       \
  X(out_b, "decoder_blocks.%zu.layers.0.1.fn.to_out.0.bias", 0, ZERO, D, NONE, NONE, NONE)

#define CRATE__PARAMS_TAIL(X)                                                                      \
  X(dnorm_w, "decoder_norm.weight", 0, ONE, D, NONE, NONE, NONE)                                   \
  X(dnorm_b, "decoder_norm.bias", 0, ZERO, D, NONE, NONE, NONE)                                    \
  X(pred_w, "decoder_pred.weight", 1, XAVIER, P, D, NONE, NONE)                                    \
  X(pred_b, "decoder_pred.bias", 0, ZERO, P, NONE, NONE, NONE)

/* The fixed table (not in the flat blocks). */
#define CRATE__POS_EMBED_NAME "decoder_pos_embed"

/* ---- view structs: one float pointer per table row --------------------- */

#define CRATE__PARAMS_FIELD(f, name, decay, init, s0, s1, s2, s3) float *f;

/* Views of one encoder block. */
typedef struct crate__enc_view {
  CRATE__PARAMS_ENC(CRATE__PARAMS_FIELD)
} crate__enc_view;

/* Views of one decoder block. */
typedef struct crate__dec_view {
  CRATE__PARAMS_DEC(CRATE__PARAMS_FIELD)
} crate__dec_view;

/* Views of a whole flat block (parameters or gradients; same layout).
 * enc (L_e) and dec (L_d) are arrays owned by the model. */
typedef struct crate__views {
  CRATE__PARAMS_HEAD(CRATE__PARAMS_FIELD)
  CRATE__PARAMS_MID(CRATE__PARAMS_FIELD)
  CRATE__PARAMS_TAIL(CRATE__PARAMS_FIELD)
  crate__enc_view *enc;
  crate__dec_view *dec;
} crate__views;

/* ---- table rows as data ------------------------------------------------ */

/* One table row; view_off is the offsetof() of its float * member in the
 * group's view struct. */
typedef struct crate__pspec {
  const char *name;
  int decay;
  crate__init init;
  crate__dim dim[4];
  size_t view_off;
} crate__pspec;

#define CRATE__PARAMS_SPEC(type, f, name, decay, init, s0, s1, s2, s3)                             \
  {name,                                                                                           \
   decay,                                                                                          \
   CRATE__INIT_##init,                                                                             \
   {CRATE__DIM_##s0, CRATE__DIM_##s1, CRATE__DIM_##s2, CRATE__DIM_##s3},                           \
   offsetof(type, f)},

#endif
