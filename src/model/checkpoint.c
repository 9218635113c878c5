/* checkpoint.c: CRATE-MAE model files: configuration <-> safetensors
 * metadata (MODEL.md §11.2), loading with the checks of MODEL.md §11.3,
 * saving (§11.1 writer rules), on top of include/crate/safetensors.h and the
 * public model API (include/crate/model.h).
 *
 * Loading order (MODEL.md §11.3):
 *   1. the safetensors header is validated by the reader;
 *   2. the config starts from the preset named by crate.preset (or the
 *      default config) and takes every crate.* key the file states;
 *   3. the sizes come from the shapes: d from cls_token [1, 1, d]; C and Q
 *      from patch_embed.proj.weight [d, C, Q, Q]; N from decoder_pos_embed
 *      [1, N, d] (g = sqrt(N - 1), image side g Q); L_e, L_d from counting
 *      blocks.{i} / decoder_blocks.{j}; P from decoder_pred.weight [P, d].
 *      A metadata value that disagrees with a shape is an error.  K and
 *      lambda come from the options (--heads / --lambda) or the metadata,
 *      else EFORMAT with a hint naming the flag;
 *   4. every tensor of the table must be present with its exact shape and
 *      finite values; pos_embed, decoder_embed.* and optim.* are ignored;
 *      anything else is an unknown tensor;
 *   5. decoder_pos_embed is checked against the 2-D sin-cos table the model
 *      computes (max abs diff <= 1e-5, MODEL.md §3.5) and used as stored.
 *
 * Non-goals: optimiser state (training code adds optim.* tensors to the
 * writer of crate_model_write_tensors and reads them itself), pickle.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crate/modelio.h"
#include "internal.h"

/* ---- metadata parsing ---------------------------------------------------------- */

static const char *meta(const crate_st *st, const char *key) {
  return crate_st_metadata(st, key);
}

/* crate.<key> as a positive integer, if present.  *present tells. */
static int meta_size(const crate_st *st, const char *key, size_t *out, bool *present) {
  const char *s = meta(st, key);
  *present = s != NULL;
  if (!s)
    return CRATE_STATUS_OK;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || errno == ERANGE || s[0] == '-' || s[0] == '+' || s[0] == ' ' ||
      v > (unsigned long long)SIZE_MAX)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: metadata %s = '%s' is not a non-negative integer",
                       crate_st_path(st), key, s);
  *out = (size_t)v;
  return CRATE_STATUS_OK;
}

static int parse_double(const crate_st *st, const char *key, const char *s, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno == ERANGE || !isfinite(v))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "model: %s: metadata %s = '%s' is not a finite number",
                       crate_st_path(st), key, s);
  *out = v;
  return CRATE_STATUS_OK;
}

static int meta_double(const crate_st *st, const char *key, double *out, bool *present) {
  const char *s = meta(st, key);
  *present = s != NULL;
  return s ? parse_double(st, key, s, out) : CRATE_STATUS_OK;
}

/* "a,b,c": exactly C values, or one value used for every channel. */
static int meta_list(const crate_st *st, const char *key, size_t C, double *out) {
  const char *s = meta(st, key);
  if (!s)
    return CRATE_STATUS_OK;
  double v[CRATE_CONFIG_MAX_CHANS];
  size_t n = 0;
  const char *p = s;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char item[64];
    if (n == CRATE_CONFIG_MAX_CHANS || len == 0 || len >= sizeof item)
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: metadata %s = '%s' is not a list of %zu numbers",
                         crate_st_path(st), key, s, C);
    memcpy(item, p, len);
    item[len] = '\0';
    CRATE_TRY(parse_double(st, key, item, &v[n]));
    n++;
    if (!comma)
      break;
    p = comma + 1;
  }
  if (n != C && n != 1)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: metadata %s = '%s' has %zu values but the model has %zu "
                       "channels",
                       crate_st_path(st), key, s, n, C);
  for (size_t c = 0; c < C; c++)
    out[c] = v[n == 1 ? 0 : c];
  return CRATE_STATUS_OK;
}

/* A stated size must equal the one read from the shapes. */
static int agree(const crate_st *st, const char *key, size_t from_shape, const char *source) {
  size_t v = 0;
  bool present;
  CRATE_TRY(meta_size(st, key, &v, &present));
  if (present && v != from_shape)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: metadata %s = %zu but %s gives %zu; the metadata does not "
                       "match the tensors",
                       crate_st_path(st), key, v, source, from_shape);
  return CRATE_STATUS_OK;
}

/* ---- shapes ---------------------------------------------------------------------- */

static void shape_str(const size_t *shape, size_t ndim, char *buf, size_t n) {
  size_t pos = 0;
  pos += (size_t)snprintf(buf + pos, n - pos, "[");
  for (size_t k = 0; k < ndim && pos < n; k++)
    pos += (size_t)snprintf(buf + pos, n - pos, "%s%zu", k ? ", " : "", shape[k]);
  if (pos < n)
    snprintf(buf + pos, n - pos, "]");
}

/* Fetches a tensor the size inference needs, with its rank checked. */
static int need(const crate_st *st, const char *name, size_t ndim, crate_st_tensor *t) {
  if (!crate_st_has(st, name))
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: missing tensor '%s' (not a CRATE-MAE model file, or an "
                       "unconverted checkpoint: use tools/torch2crate.py)",
                       crate_st_path(st), name);
  CRATE_TRY(crate_st_find(st, name, t));
  if (t->ndim != ndim) {
    char sh[128];
    shape_str(t->shape, t->ndim, sh, sizeof sh);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: tensor '%s' has shape %s, expected %zu "
                       "dimensions",
                       crate_st_path(st), name, sh, ndim);
  }
  return CRATE_STATUS_OK;
}

/* Counts layers: 1 + the largest i of "<prefix>.{i}." names (0 if none). */
static int count_layers(const crate_st *st, const char *prefix, size_t *out) {
  size_t plen = strlen(prefix), L = 0;
  for (size_t i = 0; i < crate_st_count(st); i++) {
    crate_st_tensor t;
    CRATE_TRY(crate_st_tensor_at(st, i, &t));
    if (strncmp(t.name, prefix, plen) != 0 || t.name[plen] != '.')
      continue;
    const char *s = t.name + plen + 1;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '.' || errno == ERANGE || v >= 100000 || s[0] == '+' || s[0] == '-' ||
        (s[0] == '0' && end - s > 1))
      return CRATE_ERROR(CRATE_STATUS_EFORMAT, "model: %s: unknown tensor '%s' (bad layer index)",
                         crate_st_path(st), t.name);
    if (v + 1 > L)
      L = v + 1;
  }
  *out = L;
  return CRATE_STATUS_OK;
}

static size_t isqrt(size_t x) {
  size_t r = (size_t)sqrt((double)x);
  while (r * r > x)
    r--;
  while ((r + 1) * (r + 1) <= x)
    r++;
  return r;
}

/* ---- configuration ------------------------------------------------------------------ */

int crate_model_read_config(const crate_st *st, const crate_model_load_opts *opts,
                            crate_config *out) {
  if (!st || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL file or output");
  const char *path = crate_st_path(st);
  const char *s;
  if ((s = meta(st, "crate.format_version")) != NULL) {
    char want[16];
    snprintf(want, sizeof want, "%d", CRATE_MODEL_FORMAT_VERSION);
    if (strcmp(s, want) != 0)
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: crate.format_version is '%s' but this build reads version "
                         "%s; convert the file with a matching crate version",
                         path, s, want);
  }
  if ((s = meta(st, "crate.arch")) != NULL && strcmp(s, "crate-mae") != 0)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "model: %s: crate.arch is '%s', not 'crate-mae'", path,
                       s);

  /* Defaults: the named preset, else the default config. */
  crate_config cfg;
  const char *preset = meta(st, "crate.preset");
  if (!preset || crate_config_preset(preset, &cfg) != CRATE_STATUS_OK)
    crate_config_default(&cfg);
  crate_error_clear();
  snprintf(cfg.preset, sizeof cfg.preset, "%s", preset ? preset : "custom");

  /* Sizes from the shapes. */
  crate_st_tensor cls, pe, pred;
  CRATE_TRY(need(st, "cls_token", 3, &cls));
  CRATE_TRY(need(st, "patch_embed.proj.weight", 4, &pe));
  CRATE_TRY(need(st, "decoder_pred.weight", 2, &pred));
  const size_t d = cls.shape[2];
  if (cls.shape[0] != 1 || cls.shape[1] != 1 || d == 0)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT, "model: %s: cls_token must have shape [1, 1, d]",
                       path);
  const size_t C = pe.shape[1], Q = pe.shape[2];
  if (pe.shape[0] != d || pe.shape[3] != Q || C == 0 || Q == 0) {
    char sh[128];
    shape_str(pe.shape, 4, sh, sizeof sh);
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: patch_embed.proj.weight has shape %s, expected [%zu, C, Q, Q]",
                       path, sh, d);
  }
  const size_t P = pred.shape[0];
  if (C > CRATE_CONFIG_MAX_CHANS || P != C * Q * Q || pred.shape[1] != d)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: decoder_pred.weight is [%zu, %zu] but C = %zu, Q = %zu, d = %zu "
                       "need [%zu, %zu] (at most %d channels)",
                       path, pred.shape[0], pred.shape[1], C, Q, d, C * Q * Q, d,
                       CRATE_CONFIG_MAX_CHANS);
  size_t H;
  if (crate_st_has(st, "decoder_pos_embed")) {
    crate_st_tensor pos;
    CRATE_TRY(need(st, "decoder_pos_embed", 3, &pos));
    const size_t N = pos.shape[1];
    const size_t g = N >= 2 ? isqrt(N - 1) : 0;
    if (pos.shape[0] != 1 || pos.shape[2] != d || g == 0 || g * g != N - 1)
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: decoder_pos_embed is [%zu, %zu, %zu]; it must be [1, N, %zu] "
                         "with N - 1 a square number of patches",
                         path, pos.shape[0], pos.shape[1], pos.shape[2], d);
    H = g * Q;
    CRATE_TRY(agree(st, "crate.img_size", H, "decoder_pos_embed (N - 1 = g^2 patches) x Q"));
  } else {
    bool present;
    CRATE_TRY(meta_size(st, "crate.img_size", &H, &present));
    if (!present)
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: no decoder_pos_embed and no crate.img_size: the image size "
                         "is unknown",
                         path);
  }
  size_t Le, Ld;
  CRATE_TRY(count_layers(st, "blocks", &Le));
  CRATE_TRY(count_layers(st, "decoder_blocks", &Ld));
  CRATE_TRY(agree(st, "crate.embed_dim", d, "cls_token"));
  CRATE_TRY(agree(st, "crate.decoder_embed_dim", d, "cls_token"));
  CRATE_TRY(agree(st, "crate.in_chans", C, "patch_embed.proj.weight"));
  CRATE_TRY(agree(st, "crate.patch_size", Q, "patch_embed.proj.weight"));
  CRATE_TRY(agree(st, "crate.depth", Le, "counting blocks.*"));
  CRATE_TRY(agree(st, "crate.decoder_depth", Ld, "counting decoder_blocks.*"));
  cfg.img_size = H;
  cfg.in_chans = C;
  cfg.patch_size = Q;
  cfg.embed_dim = d;
  cfg.decoder_embed_dim = d;
  cfg.depth = Le;
  cfg.decoder_depth = Ld;

  /* Head counts and lambda: options, then metadata; never guessed. */
  bool present;
  size_t K = 0, Kd = 0;
  CRATE_TRY(meta_size(st, "crate.num_heads", &K, &present));
  if (opts && opts->num_heads > 0)
    K = opts->num_heads;
  else if (!present)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: the head count is not in the metadata (crate.num_heads) and "
                       "cannot be read from the tensor shapes (qkv is d x d for any K); pass "
                       "--heads K (e.g. 4 for fmnist-tiny, 12 for mae-base)",
                       path);
  CRATE_TRY(meta_size(st, "crate.decoder_num_heads", &Kd, &present));
  if (opts && opts->decoder_num_heads > 0)
    Kd = opts->decoder_num_heads;
  else if (!present)
    Kd = K; /* MODEL.md §2: the decoder mirrors the encoder */
  cfg.num_heads = K;
  cfg.decoder_num_heads = Kd;
  double lam = 0.0;
  CRATE_TRY(meta_double(st, "crate.ista_lambda", &lam, &present));
  if (opts && opts->has_lambda)
    lam = opts->ista_lambda;
  else if (!present)
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: the ISTA threshold is not in the metadata (crate.ista_lambda) "
                       "and cannot be read from the tensors; pass --lambda L (official "
                       "checkpoints do not record it: MODEL.md §10.2 O1)",
                       path);
  cfg.ista_lambda = lam;

  /* Everything else: metadata if stated, else the defaults chosen above. */
  double v = 0.0;
  CRATE_TRY(meta_double(st, "crate.ista_eta", &v, &present));
  if (present)
    cfg.ista_eta = v;
  CRATE_TRY(meta_double(st, "crate.ln_eps", &v, &present));
  if (present)
    cfg.ln_eps = v;
  CRATE_TRY(meta_double(st, "crate.final_ln_eps", &v, &present));
  if (present)
    cfg.final_ln_eps = v;
  CRATE_TRY(meta_double(st, "crate.mask_ratio", &v, &present));
  if (present)
    cfg.mask_ratio = v;
  if ((s = meta(st, "crate.norm_pix_loss")) != NULL) {
    if (strcmp(s, "true") == 0)
      cfg.norm_pix_loss = true;
    else if (strcmp(s, "false") == 0)
      cfg.norm_pix_loss = false;
    else
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: metadata crate.norm_pix_loss = '%s' is not true or false",
                         path, s);
  }
  CRATE_TRY(meta_list(st, "crate.pixel_mean", C, cfg.pixel_mean));
  CRATE_TRY(meta_list(st, "crate.pixel_std", C, cfg.pixel_std));
  for (size_t c = C; c < CRATE_CONFIG_MAX_CHANS; c++) {
    cfg.pixel_mean[c] = 0.0;
    cfg.pixel_std[c] = 1.0;
  }

  if (crate_config_validate(&cfg) != CRATE_STATUS_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", crate_error_message());
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: the configuration in the file is invalid: %s", path, why);
  }
  *out = cfg;
  return CRATE_STATUS_OK;
}

/* ---- loading ------------------------------------------------------------------------ */

static bool ignored_name(const char *name) {
  return strcmp(name, "pos_embed") == 0 || strcmp(name, "decoder_embed.weight") == 0 ||
         strcmp(name, "decoder_embed.bias") == 0 || strncmp(name, "optim.", 6) == 0;
}

/* Copies the file's tensors into m after every check. */
static int load_tensors(const crate_st *st, crate_model *m) {
  const char *path = crate_st_path(st);
  const size_t nt = crate_model_tensor_count(m);
  /* Unknown names first: a foreign file should say so, not "missing". */
  for (size_t i = 0; i < crate_st_count(st); i++) {
    crate_st_tensor t;
    CRATE_TRY(crate_st_tensor_at(st, i, &t));
    crate_model_tensor mt;
    if (ignored_name(t.name) || crate_model_tensor_find(m, t.name, &mt) == CRATE_STATUS_OK)
      continue;
    return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                       "model: %s: unknown tensor '%s' (not a CRATE-MAE tensor of this "
                       "configuration; remove it or fix the name)",
                       path, t.name);
  }
  crate_error_clear();
  for (size_t i = 0; i < nt; i++) {
    crate_model_tensor mt;
    CRATE_TRY(crate_model_tensor_at(m, i, &mt));
    const bool is_pos = !mt.desc.trainable;
    if (!crate_st_has(st, mt.desc.name)) {
      if (is_pos)
        continue; /* computed in double by crate_model_create (MODEL.md §3.5) */
      return CRATE_ERROR(CRATE_STATUS_EFORMAT, "model: %s: missing tensor '%s'", path,
                         mt.desc.name);
    }
    crate_st_tensor t;
    CRATE_TRY(crate_st_find(st, mt.desc.name, &t));
    bool same = t.ndim == mt.desc.ndim;
    for (size_t k = 0; same && k < t.ndim; k++)
      same = t.shape[k] == mt.desc.shape[k];
    if (!same) {
      char have[128], want[128];
      shape_str(t.shape, t.ndim, have, sizeof have);
      shape_str(mt.desc.shape, mt.desc.ndim, want, sizeof want);
      return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                         "model: %s: tensor '%s' has shape %s but the configuration needs %s", path,
                         mt.desc.name, have, want);
    }
    CRATE_ASSERT(t.count == mt.desc.count);
    for (size_t k = 0; k < t.count; k++)
      if (!isfinite(t.data[k]))
        return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                           "model: %s: tensor '%s' holds a non-finite value (%g) at index %zu",
                           path, mt.desc.name, (double)t.data[k], k);
    if (is_pos) {
      double worst = 0.0;
      size_t at = 0;
      for (size_t k = 0; k < t.count; k++) {
        double e = fabs((double)t.data[k] - (double)mt.data[k]);
        if (e > worst) {
          worst = e;
          at = k;
        }
      }
      if (worst > CRATE_POS_EMBED_TOL)
        return CRATE_ERROR(CRATE_STATUS_EFORMAT,
                           "model: %s: decoder_pos_embed differs from the 2-D sin-cos table by "
                           "%.3g at token %zu, feature %zu (limit %g): a different position "
                           "encoding or grid order; this file is not a CRATE-MAE model",
                           path, worst, at / mt.desc.shape[2], at % mt.desc.shape[2],
                           CRATE_POS_EMBED_TOL);
    }
    memcpy(mt.data, t.data, t.count * sizeof(float));
  }
  return CRATE_STATUS_OK;
}

int crate_model_load_st(const crate_st *st, const crate_model_load_opts *opts, crate_model **out) {
  if (!st || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL file or output");
  if (opts && opts->has_lambda && !(isfinite(opts->ista_lambda) && opts->ista_lambda >= 0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: lambda override %g must be finite and >= 0",
                       opts->ista_lambda);
  crate_config cfg;
  CRATE_TRY(crate_model_read_config(st, opts, &cfg));
  crate_model *m = NULL;
  CRATE_TRY(crate_model_create(&m, &cfg));
  int rc = load_tensors(st, m);
  if (rc) {
    crate_model_destroy(m);
    return rc;
  }
  *out = m;
  return CRATE_STATUS_OK;
}

int crate_model_load_ex(const char *path, const crate_model_load_opts *opts, crate_model **out) {
  if (!path || !out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL path or output");
  crate_st *st = NULL;
  CRATE_TRY(crate_st_open(path, &st));
  int rc = crate_model_load_st(st, opts, out);
  crate_st_close(st);
  return rc;
}

int crate_model_load(const char *path, crate_model **out) {
  return crate_model_load_ex(path, NULL, out);
}

/* ---- saving --------------------------------------------------------------------------- */

static int set_size(crate_st_writer *w, const char *key, size_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%zu", v);
  return crate_st_writer_set_metadata(w, key, buf);
}

static int set_double(crate_st_writer *w, const char *key, double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.9g", v);
  return crate_st_writer_set_metadata(w, key, buf);
}

static int set_list(crate_st_writer *w, const char *key, const double *v, size_t n) {
  char buf[CRATE_CONFIG_MAX_CHANS * 32];
  size_t pos = 0;
  for (size_t i = 0; i < n; i++)
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%.9g", i ? "," : "", v[i]);
  return crate_st_writer_set_metadata(w, key, buf);
}

int crate_config_to_metadata(const crate_config *cfg, crate_st_writer *w) {
  if (!cfg || !w)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL config or writer");
  CRATE_TRY(crate_config_validate(cfg));
  char ver[16];
  snprintf(ver, sizeof ver, "%d", CRATE_MODEL_FORMAT_VERSION);
  char preset[CRATE_CONFIG_NAME_MAX + 1];
  snprintf(preset, sizeof preset, "%s", cfg->preset[0] ? cfg->preset : "custom");
  CRATE_TRY(crate_st_writer_set_metadata(w, "crate.format_version", ver));
  CRATE_TRY(crate_st_writer_set_metadata(w, "crate.arch", "crate-mae"));
  CRATE_TRY(crate_st_writer_set_metadata(w, "crate.preset", preset));
  CRATE_TRY(set_size(w, "crate.img_size", cfg->img_size));
  CRATE_TRY(set_size(w, "crate.patch_size", cfg->patch_size));
  CRATE_TRY(set_size(w, "crate.in_chans", cfg->in_chans));
  CRATE_TRY(set_size(w, "crate.embed_dim", cfg->embed_dim));
  CRATE_TRY(set_size(w, "crate.depth", cfg->depth));
  CRATE_TRY(set_size(w, "crate.num_heads", cfg->num_heads));
  CRATE_TRY(set_size(w, "crate.decoder_embed_dim", cfg->decoder_embed_dim));
  CRATE_TRY(set_size(w, "crate.decoder_depth", cfg->decoder_depth));
  CRATE_TRY(set_size(w, "crate.decoder_num_heads", cfg->decoder_num_heads));
  CRATE_TRY(set_double(w, "crate.ista_eta", cfg->ista_eta));
  CRATE_TRY(set_double(w, "crate.ista_lambda", cfg->ista_lambda));
  CRATE_TRY(set_double(w, "crate.ln_eps", cfg->ln_eps));
  CRATE_TRY(set_double(w, "crate.final_ln_eps", cfg->final_ln_eps));
  CRATE_TRY(crate_st_writer_set_metadata(w, "crate.norm_pix_loss",
                                         cfg->norm_pix_loss ? "true" : "false"));
  CRATE_TRY(set_double(w, "crate.mask_ratio", cfg->mask_ratio));
  CRATE_TRY(set_list(w, "crate.pixel_mean", cfg->pixel_mean, cfg->in_chans));
  CRATE_TRY(set_list(w, "crate.pixel_std", cfg->pixel_std, cfg->in_chans));
  return CRATE_STATUS_OK;
}

int crate_model_write_tensors(crate_model *m, crate_st_writer *w) {
  if (!m || !w)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL model or writer");
  for (size_t i = 0; i < crate_model_tensor_count(m); i++) {
    crate_model_tensor t;
    CRATE_TRY(crate_model_tensor_at(m, i, &t));
    CRATE_TRY(crate_st_writer_add_f32(w, t.desc.name, t.desc.ndim, t.desc.shape, t.data));
  }
  return crate_config_to_metadata(crate_model_config(m), w);
}

/* The keys crate_config_to_metadata writes (an extra entry of
 * crate_model_save may not replace them). */
bool crate_config_metadata_key(const char *key) {
  static const char *const keys[] = {
      "crate.format_version",    "crate.arch",          "crate.preset",
      "crate.img_size",          "crate.patch_size",    "crate.in_chans",
      "crate.embed_dim",         "crate.depth",         "crate.num_heads",
      "crate.decoder_embed_dim", "crate.decoder_depth", "crate.decoder_num_heads",
      "crate.ista_eta",          "crate.ista_lambda",   "crate.ln_eps",
      "crate.final_ln_eps",      "crate.norm_pix_loss", "crate.mask_ratio",
      "crate.pixel_mean",        "crate.pixel_std"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (key && strcmp(key, keys[i]) == 0)
      return true;
  return false;
}

int crate_model_save(crate_model *m, const char *path, const crate_metadata_entry *extra,
                     size_t n_extra) {
  if (!m || !path || (n_extra > 0 && !extra))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: NULL model, path or metadata");
  for (size_t i = 0; i < n_extra; i++)
    if (!extra[i].key || !extra[i].value || crate_config_metadata_key(extra[i].key))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "model: extra metadata '%s' is NULL or a configuration key (those "
                         "come from the model's config)",
                         extra[i].key ? extra[i].key : "(null)");
  crate_st_writer *w = NULL;
  CRATE_TRY(crate_st_writer_create(&w));
  int rc = crate_model_write_tensors(m, w);
  for (size_t i = 0; !rc && i < n_extra; i++)
    rc = crate_st_writer_set_metadata(w, extra[i].key, extra[i].value);
  if (!rc)
    rc = crate_st_writer_write(w, path);
  crate_st_writer_destroy(w);
  return rc;
}
