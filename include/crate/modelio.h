/* modelio.h: CRATE-MAE model files (MODEL.md §11.2 metadata, §11.3 loading
 * rules, §11.4 checkpoints and import) on top of safetensors.h.
 *
 * A model file holds every trainable tensor plus decoder_pos_embed under the
 * official names of MODEL.md §6 (F32), and the configuration in
 * __metadata__ as "crate.*" strings (numbers with %.9g).  Files converted
 * from PyTorch by tools/torch2crate.py have the same layout.
 *
 * Loading (MODEL.md §11.3): the header is validated by the safetensors
 * reader; the sizes come from the shapes (d from cls_token, C and Q from
 * patch_embed.proj.weight, N from decoder_pos_embed, L_e / L_d from counting
 * blocks.* / decoder_blocks.*, P from decoder_pred.weight) and must agree
 * with any metadata that states them; the head count K and lambda cannot be
 * read from shapes and come from the metadata or from the options (the
 * CLI's --heads / --lambda), else EFORMAT with a hint naming the flag.  Every
 * required tensor must be present with its exact shape and finite values;
 * pos_embed, decoder_embed.* (official-only) and optim.* (training state)
 * are accepted and ignored; anything else is an error.  decoder_pos_embed is
 * checked against the 2-D sin-cos formula (max abs diff <= 1e-5) and then
 * used as stored.  All file problems are CRATE_STATUS_EFORMAT with a
 * message "model: <file>: ..." naming the problem and the fix.
 */
#ifndef CRATE_MODELIO_H
#define CRATE_MODELIO_H

#include "crate/config.h"
#include "crate/defs.h"
#include "crate/model.h"
#include "crate/safetensors.h"

/** Value of crate.format_version this build writes and reads. */
#define CRATE_MODEL_FORMAT_VERSION 1
/** Largest |stored - formula| accepted for decoder_pos_embed (MODEL.md §3.5). */
#define CRATE_POS_EMBED_TOL 1e-5

/** What the caller (CLI flags) supplies or overrides when loading. */
typedef struct crate_model_load_opts {
  size_t num_heads;         /* > 0: use this K (--heads); 0: crate.num_heads */
  size_t decoder_num_heads; /* > 0: override; 0: crate.decoder_num_heads, else K */
  bool has_lambda;          /* true: use ista_lambda (--lambda) */
  double ista_lambda;       /* finite, >= 0 when has_lambda */
} crate_model_load_opts;

/** One extra metadata entry for crate_model_save (e.g. crate.source,
 *  crate.train.step); both strings are copied. */
typedef struct crate_metadata_entry {
  const char *key;
  const char *value;
} crate_metadata_entry;

/** Reads the configuration of an open model file (MODEL.md §11.3 steps 2-3:
 *  metadata, options, sizes from the shapes, consistency) without building
 *  a model.  Fields the file does not state take the defaults of the preset
 *  named by crate.preset, or crate_config_default().
 *  @param opts NULL for no overrides
 *  @return OK, or EFORMAT ("model: <file>: ...", e.g. a missing head count
 *          with the --heads hint); *out untouched on error. */
CRATE_API int crate_model_read_config(const crate_st *st, const crate_model_load_opts *opts,
                                      crate_config *out);

/** Builds a model from an open file: config as crate_model_read_config,
 *  then every tensor checked (presence, exact shape, finite values, no
 *  unknown names) and copied.
 *  @param out receives the model (owned; crate_model_destroy)
 *  @return OK, EFORMAT or ENOMEM; *out untouched on error. */
CRATE_API int crate_model_load_st(const crate_st *st, const crate_model_load_opts *opts,
                                  crate_model **out);

/** Opens path and loads it (crate_st_open + crate_model_load_st).
 *  @return OK, ENOENT, EIO, EFORMAT or ENOMEM. */
CRATE_API int crate_model_load_ex(const char *path, const crate_model_load_opts *opts,
                                  crate_model **out);

/** crate_model_load_ex with no overrides. */
CRATE_API int crate_model_load(const char *path, crate_model **out);

/** Sets the MODEL.md §11.2 metadata keys of a config on a writer
 *  (crate.format_version, crate.arch, crate.preset, sizes, heads, eta,
 *  lambda, epsilons, norm_pix_loss, mask_ratio, pixel_mean, pixel_std).
 *  @return OK, EINVAL (invalid config) or ENOMEM. */
CRATE_API int crate_config_to_metadata(const crate_config *cfg, crate_st_writer *w);

/** @return true when key is one of the MODEL.md §11.2 configuration keys
 *  that crate_config_to_metadata writes (NULL gives false). */
CRATE_API bool crate_config_metadata_key(const char *key);

/** Adds every model tensor (trainable tensors in table order, then
 *  decoder_pos_embed; the data are borrowed from the model, which must
 *  outlive the write) and the config metadata to a writer.  Training code
 *  adds its optim.* tensors and crate.train.* keys to the same writer.
 *  @return OK, EINVAL or ENOMEM. */
CRATE_API int crate_model_write_tensors(crate_model *m, crate_st_writer *w);

/** Saves a model file atomically (MODEL.md §11): tensors, config metadata,
 *  then the extra entries (which may override nothing but crate.source and
 *  other non-config keys: an extra key that collides with a config key is
 *  EINVAL).  Byte-for-byte deterministic.
 *  @param extra   n_extra entries, may be NULL when n_extra = 0
 *  @return OK, EINVAL, EIO or ENOMEM. */
CRATE_API int crate_model_save(crate_model *m, const char *path, const crate_metadata_entry *extra,
                               size_t n_extra);

#endif
