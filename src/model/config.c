/* config.c: CRATE-MAE configurations (MODEL.md §2 presets, §5 epsilons),
 * validation, derived sizes, the parameter counts of MODEL.md §7, the FLOP
 * counts of MODEL.md §9, and the tensor table of MODEL.md §6 expanded from
 * the X-macro table in params.h.
 *
 * Everything here is a function of a crate_config alone, so tools can print
 * sizes and names without allocating a model.
 * Non-goals: reading configs from files (io/ does that from safetensors
 * metadata), classifier (CRATE-C) configs.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

/* ---- presets (MODEL.md §2 preset table) -------------------------------- */

typedef struct preset {
  const char *name;
  size_t img, chans, patch, dim, heads, depth;
  double lambda;
  bool imagenet; /* ImageNet mean/std (mae presets) vs none (fmnist, O9) */
} preset;

/* lambda for the mae presets is open choice O1: 0.5 for training from
 * scratch.  The decoder mirrors the encoder (decoder_embed_dim = embed_dim,
 * decoder_num_heads = num_heads, decoder_depth = depth). */
static const preset k_presets[] = {
    {"fmnist-tiny", 28, 1, 4, 128, 4, 4, 0.1, false},
    {"fmnist-small", 28, 1, 4, 256, 8, 6, 0.1, false},
    {"mae-tiny", 224, 3, 16, 384, 6, 12, 0.5, true},
    {"mae-small", 224, 3, 16, 576, 12, 12, 0.5, true},
    {"mae-base", 224, 3, 16, 768, 12, 12, 0.5, true},
    {"mae-large", 224, 3, 16, 1024, 16, 24, 0.5, true},
};
#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

static void fill_preset(const preset *ps, crate_config *out) {
  static const double in_mean[3] = {0.485, 0.456, 0.406};
  static const double in_std[3] = {0.229, 0.224, 0.225};
  memset(out, 0, sizeof *out);
  snprintf(out->preset, sizeof out->preset, "%s", ps->name);
  out->img_size = ps->img;
  out->in_chans = ps->chans;
  out->patch_size = ps->patch;
  out->embed_dim = ps->dim;
  out->depth = ps->depth;
  out->num_heads = ps->heads;
  out->decoder_embed_dim = ps->dim;
  out->decoder_depth = ps->depth;
  out->decoder_num_heads = ps->heads;
  out->ista_eta = 0.1;
  out->ista_lambda = ps->lambda;
  out->ln_eps = 1e-5;
  out->final_ln_eps = 1e-6;
  out->norm_pix_loss = false;
  out->mask_ratio = 0.75;
  for (size_t c = 0; c < CRATE_CONFIG_MAX_CHANS; c++) {
    out->pixel_mean[c] = ps->imagenet && c < 3 ? in_mean[c] : 0.0;
    out->pixel_std[c] = ps->imagenet && c < 3 ? in_std[c] : 1.0;
  }
}

void crate_config_default(crate_config *out) {
  CRATE_ASSERT(out);
  fill_preset(&k_presets[0], out);
}

int crate_config_preset(const char *name, crate_config *out) {
  CRATE_ASSERT(out);
  if (!name)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: preset name is NULL");
  for (size_t i = 0; i < N_PRESETS; i++)
    if (strcmp(name, k_presets[i].name) == 0) {
      fill_preset(&k_presets[i], out);
      return CRATE_STATUS_OK;
    }
  return CRATE_ERROR(CRATE_STATUS_EINVAL,
                     "config: unknown preset '%s' (known: fmnist-tiny, fmnist-small, mae-tiny, "
                     "mae-small, mae-base, mae-large)",
                     name);
}

const char *crate_config_preset_name(size_t i) {
  return i < N_PRESETS ? k_presets[i].name : NULL;
}

/* ---- validation -------------------------------------------------------- */

/* Limits that keep every size product far from overflow (checked again by
 * the total count below). */
#define MAX_SIDE ((size_t)1 << 16)
#define MAX_DIM ((size_t)1 << 16)
#define MAX_DEPTH ((size_t)1024)

static int check_size(size_t v, size_t max, const char *what) {
  if (v == 0 || v > max)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: %s = %zu must be in [1, %zu]", what, v, max);
  return CRATE_STATUS_OK;
}

int crate_config_validate(const crate_config *cfg) {
  if (!cfg)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: NULL config");
  CRATE_TRY(check_size(cfg->img_size, MAX_SIDE, "img_size"));
  CRATE_TRY(check_size(cfg->in_chans, CRATE_CONFIG_MAX_CHANS, "in_chans"));
  CRATE_TRY(check_size(cfg->patch_size, cfg->img_size, "patch_size"));
  CRATE_TRY(check_size(cfg->embed_dim, MAX_DIM, "embed_dim"));
  CRATE_TRY(check_size(cfg->depth, MAX_DEPTH, "depth"));
  CRATE_TRY(check_size(cfg->num_heads, cfg->embed_dim, "num_heads"));
  CRATE_TRY(check_size(cfg->decoder_depth, MAX_DEPTH, "decoder_depth"));
  CRATE_TRY(check_size(cfg->decoder_num_heads, cfg->embed_dim, "decoder_num_heads"));
  if (cfg->img_size % cfg->patch_size != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "config: img_size %zu is not a multiple of patch_size %zu", cfg->img_size,
                       cfg->patch_size);
  if (cfg->embed_dim % 4 != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "config: embed_dim %zu must be a multiple of 4 (2-D sin-cos positions)",
                       cfg->embed_dim);
  if (cfg->embed_dim % cfg->num_heads != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: embed_dim %zu not divisible by num_heads %zu",
                       cfg->embed_dim, cfg->num_heads);
  if (cfg->decoder_embed_dim != cfg->embed_dim)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "config: decoder_embed_dim %zu must equal embed_dim %zu (CRATE-MAE runs "
                       "the decoder directly on the latent)",
                       cfg->decoder_embed_dim, cfg->embed_dim);
  if (cfg->embed_dim % cfg->decoder_num_heads != 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "config: embed_dim %zu not divisible by decoder_num_heads %zu",
                       cfg->embed_dim, cfg->decoder_num_heads);
  if (!isfinite(cfg->ista_eta) || !(cfg->ista_eta > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: ista_eta %g must be finite and > 0",
                       cfg->ista_eta);
  if (!isfinite(cfg->ista_lambda) || !(cfg->ista_lambda >= 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: ista_lambda %g must be finite and >= 0",
                       cfg->ista_lambda);
  if (!isfinite(cfg->ln_eps) || !(cfg->ln_eps > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: ln_eps %g must be finite and > 0",
                       cfg->ln_eps);
  if (!isfinite(cfg->final_ln_eps) || !(cfg->final_ln_eps > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: final_ln_eps %g must be finite and > 0",
                       cfg->final_ln_eps);
  if (!isfinite(cfg->mask_ratio) || !(cfg->mask_ratio >= 0.0 && cfg->mask_ratio < 1.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: mask_ratio %g outside [0, 1)",
                       cfg->mask_ratio);
  for (size_t c = 0; c < cfg->in_chans; c++) {
    if (!isfinite(cfg->pixel_mean[c]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: pixel_mean[%zu] is not finite", c);
    if (!isfinite(cfg->pixel_std[c]) || !(cfg->pixel_std[c] > 0.0))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: pixel_std[%zu] = %g must be finite and > 0",
                         c, cfg->pixel_std[c]);
  }
  const size_t P = cfg->in_chans * cfg->patch_size * cfg->patch_size;
  if (cfg->norm_pix_loss && P < 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "config: norm_pix_loss needs a patch vector of at least 2 values (P = %zu)",
                       P);
  /* Total size in double: the flat blocks and the position table must be
   * addressable in bytes with room to spare. */
  const double d = (double)cfg->embed_dim, L = (double)(cfg->depth + cfg->decoder_depth);
  const double g = (double)(cfg->img_size / cfg->patch_size);
  const double total =
      L * (3 * d * d + 5 * d) + 2 * d * (double)P + 7 * d + (double)P + (g * g + 1) * d;
  if (total * 16.0 > (double)SIZE_MAX)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: model with %.3g parameters is too large",
                       total);
  return CRATE_STATUS_OK;
}

int crate_config_dims(const crate_config *cfg, crate_dims *out) {
  CRATE_ASSERT(out);
  CRATE_TRY(crate_config_validate(cfg));
  crate_dims dm;
  dm.H = cfg->img_size;
  dm.C = cfg->in_chans;
  dm.Q = cfg->patch_size;
  dm.g = dm.H / dm.Q;
  dm.n = dm.g * dm.g;
  dm.N = dm.n + 1;
  dm.P = dm.C * dm.Q * dm.Q;
  dm.d = cfg->embed_dim;
  dm.K = cfg->num_heads;
  dm.p = dm.d / dm.K;
  dm.Kd = cfg->decoder_num_heads;
  dm.pd = dm.d / dm.Kd;
  dm.Le = cfg->depth;
  dm.Ld = cfg->decoder_depth;
  CRATE_TRY(crate_mask_n_keep(&dm.n_keep, dm.n, cfg->mask_ratio));
  dm.n_masked = dm.n - dm.n_keep;
  *out = dm;
  return CRATE_STATUS_OK;
}

/* ---- the tensor table (params.h) --------------------------------------- */

#define SPEC_VIEWS(f, ...) CRATE__PARAMS_SPEC(crate__views, f, __VA_ARGS__)
#define SPEC_ENC(f, ...) CRATE__PARAMS_SPEC(crate__enc_view, f, __VA_ARGS__)
#define SPEC_DEC(f, ...) CRATE__PARAMS_SPEC(crate__dec_view, f, __VA_ARGS__)

static const crate__pspec k_head[] = {CRATE__PARAMS_HEAD(SPEC_VIEWS)};
static const crate__pspec k_enc[] = {CRATE__PARAMS_ENC(SPEC_ENC)};
static const crate__pspec k_mid[] = {CRATE__PARAMS_MID(SPEC_VIEWS)};
static const crate__pspec k_dec[] = {CRATE__PARAMS_DEC(SPEC_DEC)};
static const crate__pspec k_tail[] = {CRATE__PARAMS_TAIL(SPEC_VIEWS)};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

size_t crate__dim_value(const crate_dims *dm, crate__dim dim) {
  switch (dim) {
  case CRATE__DIM_NONE: return 0;
  case CRATE__DIM_ONE: return 1;
  case CRATE__DIM_D: return dm->d;
  case CRATE__DIM_KP: return dm->d; /* K p = d for every config (d % K == 0) */
  case CRATE__DIM_C: return dm->C;
  case CRATE__DIM_Q: return dm->Q;
  case CRATE__DIM_P: return dm->P;
  }
  CRATE_ASSERT(!"unknown dimension");
  return 0;
}

/* Shape and element count of one spec. */
static void spec_shape(const crate_dims *dm, const crate__pspec *s, crate_tensor_desc *out) {
  out->ndim = 0;
  out->count = 1;
  for (size_t k = 0; k < 4; k++) {
    out->shape[k] = 1;
    if (s->dim[k] != CRATE__DIM_NONE && out->ndim == k) {
      out->shape[k] = crate__dim_value(dm, s->dim[k]);
      out->count *= out->shape[k];
      out->ndim = k + 1;
    }
  }
}

static size_t group_size(const crate_dims *dm, const crate__pspec *s, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    crate_tensor_desc t;
    spec_shape(dm, &s[i], &t);
    total += t.count;
  }
  return total;
}

size_t crate__row_count(const crate_dims *dm) {
  return COUNT_OF(k_head) + COUNT_OF(k_mid) + COUNT_OF(k_tail) +
         (dm->Le * COUNT_OF(k_enc) + dm->Ld * COUNT_OF(k_dec));
}

void crate__row_get(const crate_dims *dm, size_t i, crate__row *out) {
  CRATE_ASSERT(out && i <= crate__row_count(dm));
  memset(out, 0, sizeof *out);
  const struct {
    const crate__pspec *s;
    size_t n, reps;
    crate__group group;
  } groups[5] = {{k_head, COUNT_OF(k_head), 1, CRATE__GROUP_HEAD},
                 {k_enc, COUNT_OF(k_enc), dm->Le, CRATE__GROUP_ENC},
                 {k_mid, COUNT_OF(k_mid), 1, CRATE__GROUP_MID},
                 {k_dec, COUNT_OF(k_dec), dm->Ld, CRATE__GROUP_DEC},
                 {k_tail, COUNT_OF(k_tail), 1, CRATE__GROUP_TAIL}};
  size_t offset = 0, rest = i;
  for (size_t gi = 0; gi < 5; gi++) {
    const size_t rows = groups[gi].n * groups[gi].reps;
    const size_t per_rep = group_size(dm, groups[gi].s, groups[gi].n);
    if (rest >= rows) {
      rest -= rows;
      offset += per_rep * groups[gi].reps;
      continue;
    }
    const size_t layer = rest / groups[gi].n, k = rest % groups[gi].n;
    const crate__pspec *s = &groups[gi].s[k];
    offset += layer * per_rep + group_size(dm, groups[gi].s, k);
    out->spec = s;
    out->group = groups[gi].group;
    out->layer = layer;
    spec_shape(dm, s, &out->desc);
    out->desc.offset = offset;
    out->desc.trainable = true;
    out->desc.decay = s->decay != 0;
    if (out->group == CRATE__GROUP_ENC || out->group == CRATE__GROUP_DEC)
      snprintf(out->desc.name, sizeof out->desc.name, s->name, layer);
    else
      snprintf(out->desc.name, sizeof out->desc.name, "%s", s->name);
    return;
  }
  /* The last entry: the fixed position table [1, N, d]. */
  out->spec = NULL;
  out->group = CRATE__GROUP_FIXED;
  snprintf(out->desc.name, sizeof out->desc.name, "%s", CRATE__POS_EMBED_NAME);
  out->desc.ndim = 3;
  out->desc.shape[0] = 1;
  out->desc.shape[1] = dm->N;
  out->desc.shape[2] = dm->d;
  out->desc.shape[3] = 1;
  out->desc.count = dm->N * dm->d;
  out->desc.offset = 0;
  out->desc.trainable = false;
  out->desc.decay = false;
}

int crate_config_tensor_count(const crate_config *cfg, size_t *count) {
  CRATE_ASSERT(count);
  crate_dims dm;
  CRATE_TRY(crate_config_dims(cfg, &dm));
  *count = crate__row_count(&dm) + 1;
  return CRATE_STATUS_OK;
}

int crate_config_tensor(const crate_config *cfg, size_t i, crate_tensor_desc *out) {
  CRATE_ASSERT(out);
  crate_dims dm;
  CRATE_TRY(crate_config_dims(cfg, &dm));
  if (i > crate__row_count(&dm))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "config: tensor index %zu out of range (%zu tensors)",
                       i, crate__row_count(&dm) + 1);
  crate__row row;
  crate__row_get(&dm, i, &row);
  *out = row.desc;
  return CRATE_STATUS_OK;
}

/* ---- counts (MODEL.md §7, §9) ------------------------------------------ */

int crate_config_param_counts(const crate_config *cfg, crate_param_counts *out) {
  CRATE_ASSERT(out);
  crate_dims dm;
  CRATE_TRY(crate_config_dims(cfg, &dm));
  /* Summed over the table itself, so the count follows the layout. */
  const size_t per_enc = group_size(&dm, k_enc, COUNT_OF(k_enc));
  const size_t per_dec = group_size(&dm, k_dec, COUNT_OF(k_dec));
  const size_t trainable = group_size(&dm, k_head, COUNT_OF(k_head)) + dm.Le * per_enc +
                           group_size(&dm, k_mid, COUNT_OF(k_mid)) + dm.Ld * per_dec +
                           group_size(&dm, k_tail, COUNT_OF(k_tail));
  out->trainable = trainable;
  out->file = trainable + dm.N * dm.d;
  out->official_trainable = trainable + dm.d * dm.d + dm.d;
  out->official_total = out->official_trainable + 2 * dm.N * dm.d;
  return CRATE_STATUS_OK;
}

int crate_config_param_count(const crate_config *cfg, size_t *trainable) {
  CRATE_ASSERT(trainable);
  crate_param_counts c;
  CRATE_TRY(crate_config_param_counts(cfg, &c));
  *trainable = c.trainable;
  return CRATE_STATUS_OK;
}

int crate_config_flops(const crate_config *cfg, crate_flops *out) {
  CRATE_ASSERT(out);
  crate_dims dm;
  CRATE_TRY(crate_config_dims(cfg, &dm));
  const double N = (double)dm.N, d = (double)dm.d, n = (double)dm.n, P = (double)dm.P;
  /* Encoder: qkv 2Nd^2 + scores 2N^2d + attn x values 2N^2d + out-proj 2Nd^2
   * + ISTA (2-product) 4Nd^2.  Decoder: E 2Nd^2 + the same MSSA. */
  out->encoder_layer = 8.0 * N * d * d + 4.0 * N * N * d;
  out->decoder_layer = 6.0 * N * d * d + 4.0 * N * N * d;
  /* Patch embedding over all n patches and the head over the n patch tokens. */
  out->forward = (double)dm.Le * out->encoder_layer + (double)dm.Ld * out->decoder_layer +
                 2.0 * n * P * d + 2.0 * n * P * d;
  out->train = 3.0 * out->forward;
  return CRATE_STATUS_OK;
}
