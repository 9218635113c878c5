/* train_data.c: loading the training and held-out sets of `crate train`
 * (see train_data.h): Fashion-MNIST or an IDX directory (train and t10k
 * splits), or a directory of PNGs (crate_pngdir_load, converted to the
 * preset's channels and size by the resize mode) with the train/ + test/ or
 * last-10 % split; shape check against the preset and the preset's pixel
 * normalisation.
 *
 * Non-goals: labels (the MAE does not use them), shuffling (crate_batcher
 * draws the order).
 */
#include "train_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *train_data_dir(const char *data) {
  return strcmp(data, "fmnist") == 0 ? CRATE_FMNIST_DIR : data;
}

/* Normalises images in place by the config's pixel mean / std (identity for
 * the fmnist presets). */
static void normalise(crate_dataset *ds, const crate_config *cfg) {
  const size_t hw = ds->height * ds->width;
  for (size_t c = 0; c < ds->channels; c++) {
    const double mu = cfg->pixel_mean[c], sd = cfg->pixel_std[c];
    if (mu == 0.0 && sd == 1.0)
      continue;
    for (size_t i = 0; i < ds->count; i++) {
      float *x = ds->images + (i * ds->channels + c) * hw;
      for (size_t j = 0; j < hw; j++)
        x[j] = (float)(((double)x[j] - mu) / sd);
    }
  }
}

/* Fails unless a loaded set has the preset's shape. */
static int check_shape(const char *cmd, const crate_dataset *ds, const char *what,
                       const crate_config *cfg) {
  if (ds->channels == cfg->in_chans && ds->height == cfg->img_size && ds->width == cfg->img_size)
    return CLI_OK;
  cli_fail(cmd, "%s images are %zu x %zu x %zu but preset %s needs %zu x %zu x %zu", what,
           ds->channels, ds->height, ds->width, cfg->preset, cfg->in_chans, cfg->img_size,
           cfg->img_size);
  return CLI_FAIL;
}

/* Copies images [first, first + n) of src into a new set (no labels). */
static int dataset_slice(const char *cmd, const crate_dataset *src, size_t first, size_t n,
                         crate_dataset *out) {
  const size_t per = crate_dataset_image_size(src);
  memset(out, 0, sizeof *out);
  out->images = malloc(n * per * sizeof *out->images);
  if (!out->images)
    return cli_fail(cmd, "out of memory splitting %zu images", src->count);
  memcpy(out->images, src->images + first * per, n * per * sizeof *out->images);
  out->count = n;
  out->channels = src->channels;
  out->height = src->height;
  out->width = src->width;
  return CLI_OK;
}

/* Loads a directory of PNGs with the split convention (train_data.h). */
static int load_png(const char *cmd, const char *dir, const train_data_source *src,
                    const crate_config *cfg, crate_dataset *train, crate_dataset *test, char *desc,
                    size_t desc_n) {
  char tr[4096], te[4096];
  snprintf(tr, sizeof tr, "%s/train", dir);
  snprintf(te, sizeof te, "%s/test", dir);
  const char *mode = crate_resize_mode_name(src->resize);
  int st;
  if (cli_is_dir(tr) && cli_is_dir(te)) {
    st = crate_pngdir_load(tr, cfg->in_chans, cfg->img_size, src->resize, src->limit, train);
    if (st == CRATE_STATUS_OK) {
      st = crate_pngdir_load(te, cfg->in_chans, cfg->img_size, src->resize, src->eval_limit, test);
      if (st != CRATE_STATUS_OK)
        crate_dataset_free(train);
    }
    if (st != CRATE_STATUS_OK)
      return cli_fail_status(cmd, st);
    snprintf(desc, desc_n, "%s (PNG: train/ and test/, resize %s)", dir, mode);
    return CLI_OK;
  }
  crate_dataset all;
  st = crate_pngdir_load(dir, cfg->in_chans, cfg->img_size, src->resize, 0, &all);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(cmd, st);
  if (all.count < 2) {
    crate_dataset_free(&all);
    return cli_fail(cmd,
                    "--data %s: only one PNG file; at least 2 are needed (the last 10%%, at "
                    "least one, is held out for evaluation), or use train/ and test/ "
                    "subdirectories",
                    dir);
  }
  const size_t n_test = all.count / 10 > 0 ? all.count / 10 : 1;
  const size_t n_train = all.count - n_test;
  const size_t keep = src->limit > 0 && src->limit < n_train ? src->limit : n_train;
  const size_t keep_test =
      src->eval_limit > 0 && src->eval_limit < n_test ? src->eval_limit : n_test;
  int rc = dataset_slice(cmd, &all, 0, keep, train);
  if (rc == CLI_OK && (rc = dataset_slice(cmd, &all, n_train, keep_test, test)) != CLI_OK)
    crate_dataset_free(train);
  if (rc == CLI_OK)
    snprintf(desc, desc_n, "%s (PNG: %zu files, the last %zu held out, resize %s)", dir, all.count,
             n_test, mode);
  crate_dataset_free(&all);
  return rc;
}

int train_data_load(const char *cmd, const train_data_source *src, const crate_config *cfg,
                    crate_dataset *train, crate_dataset *test, char *desc, size_t desc_n) {
  const char *data = src->data;
  const char *dir = train_data_dir(data);
  if (!cli_is_dir(dir)) {
    if (strcmp(data, "fmnist") == 0)
      return cli_fail(cmd,
                      "Fashion-MNIST not found in %s (install Debian's dataset-fashion-mnist, "
                      "e.g. via scripts/setup.sh, or pass --data DIR)",
                      dir);
    return cli_fail(cmd, "--data %s: no such directory", dir);
  }
  char probe[4096];
  snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", dir);
  int rc;
  if (strcmp(data, "fmnist") == 0 || cli_file_exists(probe)) {
    int st = crate_fmnist_load(dir, "train", src->limit, train);
    if (st == CRATE_STATUS_OK) {
      st = crate_fmnist_load(dir, "t10k", src->eval_limit, test);
      if (st != CRATE_STATUS_OK)
        crate_dataset_free(train);
    }
    if (st != CRATE_STATUS_OK)
      return cli_fail_status(cmd, st);
    snprintf(desc, desc_n, "%s (IDX: train, t10k)", dir);
    rc = check_shape(cmd, train, "train", cfg);
    if (rc == CLI_OK)
      rc = check_shape(cmd, test, "t10k", cfg);
  } else {
    rc = load_png(cmd, dir, src, cfg, train, test, desc, desc_n);
    if (rc != CLI_OK)
      return rc;
  }
  if (rc != CLI_OK) {
    crate_dataset_free(train);
    crate_dataset_free(test);
    return rc;
  }
  normalise(train, cfg);
  normalise(test, cfg);
  return CLI_OK;
}
