/* config.h: the CRATE-MAE configuration (MODEL.md §2, §5, §7, §9).
 *
 * crate_config is a transparent value struct: fill it with
 * crate_config_default() or crate_config_preset("fmnist-tiny", &cfg), change
 * fields if needed, then check it with crate_config_validate().  Derived sizes
 * (g, n, N, P, p, n_keep), the parameter counts of MODEL.md §7, the FLOP
 * counts of MODEL.md §9 and the tensor table of MODEL.md §6 are functions of a
 * config alone, so tools can print them without building a model.
 *
 * Symbols (MODEL.md §2): H image side, C channels, Q patch side, g = H/Q,
 * n = g^2 patches, N = n + 1 tokens (CLS first), P = C Q^2 patch-vector
 * length, d width, K heads, p = d/K head dimension, L_e / L_d layers.
 */
#ifndef CRATE_CONFIG_H
#define CRATE_CONFIG_H

#include "crate/defs.h"

/** Most input channels a config may have (pixel_mean / pixel_std length). */
#define CRATE_CONFIG_MAX_CHANS 4
/** Size of crate_config.preset, including the terminating NUL. */
#define CRATE_CONFIG_NAME_MAX 32
/** Longest tensor name plus NUL (the longest official name has 48 chars). */
#define CRATE_TENSOR_NAME_MAX 64

/** Hyper-parameters of one CRATE-MAE model; field names follow the official
 *  constructor (MODEL.md §11.2 keys drop the "crate." prefix). */
typedef struct crate_config {
  char preset[CRATE_CONFIG_NAME_MAX];        /* informational: "fmnist-tiny", "custom", ... */
  size_t img_size;                           /* H (square images) */
  size_t in_chans;                           /* C, 1..CRATE_CONFIG_MAX_CHANS */
  size_t patch_size;                         /* Q; H % Q == 0 */
  size_t embed_dim;                          /* d; d % 4 == 0 and d % K == 0 */
  size_t depth;                              /* L_e */
  size_t num_heads;                          /* K */
  size_t decoder_embed_dim;                  /* must equal embed_dim */
  size_t decoder_depth;                      /* L_d */
  size_t decoder_num_heads;                  /* K of the decoder MSSA; d % it == 0 */
  double ista_eta;                           /* ISTA step eta > 0 */
  double ista_lambda;                        /* ISTA threshold lambda >= 0 */
  double ln_eps;                             /* per-block LayerNorm eps (1e-5) */
  double final_ln_eps;                       /* norm / decoder_norm eps (1e-6) */
  bool norm_pix_loss;                        /* normalise targets per patch (off) */
  double mask_ratio;                         /* r in [0, 1) (training default) */
  double pixel_mean[CRATE_CONFIG_MAX_CHANS]; /* input transform, first C used */
  double pixel_std[CRATE_CONFIG_MAX_CHANS];  /* > 0, first C used */
} crate_config;

/** Sizes derived from a valid config (MODEL.md §2). */
typedef struct crate_dims {
  size_t H, C, Q;  /* image side, channels, patch side */
  size_t g, n, N;  /* grid side H/Q, patches g^2, tokens n + 1 */
  size_t P;        /* patch-vector length C Q^2 */
  size_t d;        /* width (encoder = decoder) */
  size_t K, p;     /* encoder heads and head dimension d/K */
  size_t Kd, pd;   /* decoder heads and head dimension d/Kd */
  size_t Le, Ld;   /* encoder and decoder layers */
  size_t n_keep;   /* visible patches (int)(n (1 - r)) */
  size_t n_masked; /* n - n_keep */
} crate_dims;

/** Parameter counts of MODEL.md §7. */
typedef struct crate_param_counts {
  size_t trainable;          /* trainable and used: (Le+Ld)(3d^2+5d) + 2dP + 7d + P */
  size_t file;               /* + decoder_pos_embed (N d): what a toolkit file holds */
  size_t official_trainable; /* + the unused decoder_embed (d^2 + d) */
  size_t official_total;     /* + pos_embed, decoder_pos_embed and decoder_embed */
} crate_param_counts;

/** FLOPs for one image (MODEL.md §9: multiply-add = 2 FLOPs, matrix products
 *  only; LayerNorm and softmax are left out as in the §9 per-layer totals). */
typedef struct crate_flops {
  double encoder_layer; /* 8 N d^2 + 4 N^2 d */
  double decoder_layer; /* 6 N d^2 + 4 N^2 d */
  double forward;       /* L_e enc + L_d dec + patch embedding (all n) + head */
  double train;         /* forward + backward = 3 x forward */
} crate_flops;

/** One entry of the tensor table (MODEL.md §6): trainable tensors in table
 *  order, then the fixed decoder_pos_embed. */
typedef struct crate_tensor_desc {
  char name[CRATE_TENSOR_NAME_MAX]; /* official name */
  size_t ndim;                      /* 1..4 */
  size_t shape[4];                  /* PyTorch shape; unused dims are 1 */
  size_t count;                     /* elements */
  size_t offset;                    /* floats from the start of the flat parameter
                                       block (0 for decoder_pos_embed, which lives
                                       in its own buffer) */
  bool trainable;                   /* false only for decoder_pos_embed */
  bool decay;                       /* AdamW weight decay applies (ndim >= 2) */
} crate_tensor_desc;

/** Fills *out with the fmnist-tiny preset.  Never fails. */
CRATE_API void crate_config_default(crate_config *out);

/** Fills *out with a named preset (MODEL.md §2): "fmnist-tiny",
 *  "fmnist-small", "mae-tiny", "mae-small", "mae-base", "mae-large".
 *  mae presets use lambda = 0.5 (open choice O1) and ImageNet mean/std.
 *  @return OK, or EINVAL for an unknown name (*out untouched). */
CRATE_API int crate_config_preset(const char *name, crate_config *out);

/** @return the i-th preset name (static storage), or NULL past the end. */
CRATE_API const char *crate_config_preset_name(size_t i);

/** Checks every rule a model needs: positive sizes, H % Q == 0, d % 4 == 0,
 *  d % K == 0, d % K_dec == 0, decoder_embed_dim == embed_dim, C <=
 *  CRATE_CONFIG_MAX_CHANS, finite eta > 0, finite lambda >= 0, finite eps > 0,
 *  mask ratio in [0, 1), finite mean and std > 0, P >= 2 with norm_pix_loss,
 *  sizes small enough that no count overflows.
 *  @return OK or EINVAL with a "config: ..." message. */
CRATE_API int crate_config_validate(const crate_config *cfg);

/** Derived sizes of a valid config.  @return OK or EINVAL (validation). */
CRATE_API int crate_config_dims(const crate_config *cfg, crate_dims *out);

/** *trainable = trainable, used parameters (MODEL.md §7 boxed formula).
 *  @return OK or EINVAL (validation). */
CRATE_API int crate_config_param_count(const crate_config *cfg, size_t *trainable);

/** All four counts of the MODEL.md §7 table.  @return OK or EINVAL. */
CRATE_API int crate_config_param_counts(const crate_config *cfg, crate_param_counts *out);

/** FLOPs per image (MODEL.md §9).  @return OK or EINVAL. */
CRATE_API int crate_config_flops(const crate_config *cfg, crate_flops *out);

/** *count = number of tensor-table entries: 11 + 8 (L_e + L_d), i.e. every
 *  trainable tensor plus decoder_pos_embed (the last entry).
 *  @return OK or EINVAL (validation). */
CRATE_API int crate_config_tensor_count(const crate_config *cfg, size_t *count);

/** Describes entry i of the tensor table (no model needed).
 *  @return OK, or EINVAL for a bad config or i out of range. */
CRATE_API int crate_config_tensor(const crate_config *cfg, size_t i, crate_tensor_desc *out);

#endif
