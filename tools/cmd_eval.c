/* cmd_eval.c: `crate eval`, masked-region MSE, PSNR and SSIM of a CRATE-MAE
 * over the Fashion-MNIST test split or a PNG directory (MODEL.md §3.3,
 * §3.10-§3.11; STYLE.md §5, §10).
 *
 * Protocol (fixed, so figures are comparable between runs and models):
 *   - images in [0, 1] pixel space (no normalisation; the model's own input
 *     normalisation is applied for the forward pass and undone, and the
 *     prediction is clamped to [0, 1], before any figure is computed);
 *   - sample k of the set (0-based, in file order; a directory is read in
 *     sorted name order) is masked with the Philox mask (seed, MASK,
 *     CRATE_EVAL_MASK_STEP, k) at --mask-ratio (MODEL.md §3.3), exactly the
 *     masks crate_eval_masked and `crate train`'s evaluation use, so the
 *     result does not depend on --batch;
 *   - masked_mse  = sum of squared errors over every masked-patch pixel of
 *     the split / their number (= the mean over all masked patches of the
 *     per-patch MSE, MODEL.md §3.10, pooled over the split);
 *     masked_psnr = 10 log10(1 / masked_mse);
 *   - masked_ssim = mean over images of the SSIM over the masked region of
 *     the completed image (prediction pasted into the visible input) against
 *     the original: the SSIM map (11 x 11 Gaussian, sigma 1.5, L = 1, valid
 *     windows, STYLE.md §10) averaged over windows centred in a masked patch
 *     (include/crate/metrics.h); images with no such window are skipped and
 *     counted;
 *   - ssim = mean over images of the whole-image SSIM of the completed image;
 *   - masked_mse_unclamped / masked_psnr_unclamped: the same pooled MSE
 *     without clamping the prediction (the training loss's definition;
 *     equals crate_eval_masked when the model does not normalise).
 * Baselines, same masks and figures:
 *   - mean_image: masked patches filled with the mean image of the training
 *     split (Fashion-MNIST train-images; for a PNG directory, the mean of the
 *     evaluated images themselves, which flatters the baseline);
 *   - visible_mean: masked patches filled with the per-channel mean of the
 *     image's visible pixels.
 * Forward passes run in batches (crate_model_reserve + crate_model_forward +
 * crate_model_pred).  --json prints one object on stdout (Jansson);
 * infinite PSNRs are written as null.
 *
 * Non-goals: resizing PNG inputs (a wrong size is an error naming the file),
 * norm_pix_loss models (refused).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "crate/data.h"
#include "crate/metrics.h"
#include "crate/model.h"
#include "crate/modelio.h"
#include "crate/ops.h"
#include "crate/train.h"
#include "recon_common.h"

#define CMD "eval"
#define PATHMAX 4096

enum { OPT_MASK_RATIO = 1500, OPT_LIMIT, OPT_JSON, OPT_NO_BASELINES };

typedef struct eval_opts {
  const char *model, *data;
  double ratio;
  uint64_t seed;
  long limit, batch, threads;
  bool json, quiet, baselines;
} eval_opts;

/* Pooled figures of one method (model or baseline). */
typedef struct eval_acc {
  double sse, sse_raw; /* squared errors over masked pixels (clamped, raw) */
  size_t samples;      /* masked pixels (all channels) */
  double ssim_masked;  /* sum over images with windows > 0 */
  size_t ssim_images;  /* images contributing to ssim_masked */
  double ssim_whole;   /* sum over images */
  size_t images;
} eval_acc;

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate eval -m MODEL [options]\n\n"
          "Masked-region MSE, PSNR and SSIM of a CRATE-MAE over a test set, with fixed seeded\n"
          "masks (sample k uses the Philox mask (seed, k)), pixels in [0,1], plus two trivial\n"
          "baselines (training-set mean image fill; visible-pixel mean fill).\n\n"
          "Options:\n"
          "  -m, --model FILE        model file (.safetensors) (required)\n"
          "  -d, --data SRC          'fmnist' (= %s, split t10k), a directory\n"
          "                          holding t10k-images-idx3-ubyte.gz, or a directory of PNGs\n"
          "                          of the model's size [fmnist]\n"
          "      --mask-ratio R      fraction of patches hidden, in (0,1) [0.75]\n"
          "  -s, --seed N            mask seed; -1 = random [0]\n"
          "  -n, --limit N           first N images only; 0 = all [0]\n"
          "  -b, --batch B           images per forward pass [256]\n"
          "      --no-baselines      skip the baselines (and reading the training split)\n"
          "      --json              print one JSON object on stdout\n"
          "  -t, --threads N         BLAS threads [$CRATE_THREADS or online CPUs]\n"
          "  -q, --quiet             no startup or timing lines on stderr\n"
          "  -h, --help              show this help and exit\n\n"
          "masked_psnr = 10 log10(1 / masked_mse), masked_mse pooled over every masked-patch\n"
          "pixel of the set; SSIM per STYLE.md 10 over windows centred in masked patches.\n\n"
          "Example: crate eval -m models/fmnist-tiny.safetensors --mask-ratio 0.75 --json\n",
          CRATE_FMNIST_DIR);
}

static int parse_args(int argc, char **argv, eval_opts *o) {
  static const struct option longopts[] = {
      {"model", required_argument, NULL, 'm'},
      {"data", required_argument, NULL, 'd'},
      {"mask-ratio", required_argument, NULL, OPT_MASK_RATIO},
      {"seed", required_argument, NULL, 's'},
      {"limit", required_argument, NULL, 'n'},
      {"batch", required_argument, NULL, 'b'},
      {"no-baselines", no_argument, NULL, OPT_NO_BASELINES},
      {"json", no_argument, NULL, OPT_JSON},
      {"threads", required_argument, NULL, 't'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->data = "fmnist";
  o->ratio = 0.75;
  o->batch = 256;
  o->baselines = true;
  o->threads = cli_default_threads();
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":m:d:s:n:b:t:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'd': o->data = optarg; break;
    case OPT_MASK_RATIO:
      if (!cli_parse_double(CMD, "--mask-ratio", optarg, -INFINITY, INFINITY, &o->ratio))
        return CLI_USAGE;
      if (!(o->ratio > 0 && o->ratio < 1))
        return cli_usage_error(CMD, "--mask-ratio must be in (0, 1), got %g", o->ratio);
      break;
    case 's':
      if (!cli_parse_seed(CMD, optarg, &o->seed))
        return CLI_USAGE;
      break;
    case 'n':
      if (!cli_parse_long(CMD, "--limit", optarg, 0, 100000000, &o->limit))
        return CLI_USAGE;
      break;
    case 'b':
      if (!cli_parse_long(CMD, "--batch", optarg, 1, 65536, &o->batch))
        return CLI_USAGE;
      break;
    case OPT_NO_BASELINES: o->baselines = false; break;
    case OPT_JSON: o->json = true; break;
    case 't':
      if (!cli_parse_long(CMD, "--threads", optarg, 1, 1024, &o->threads))
        return CLI_USAGE;
      break;
    case 'q': o->quiet = true; break;
    case 'h': usage(stdout); return CLI_OK;
    case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!o->model)
    return cli_usage_error(CMD, "--model FILE is required");
  return -1;
}

/* ---- data -------------------------------------------------------------------------------- */

/* Loads the evaluation set into ds (pixel space) and, for baselines, the
 * mean image (C H H) into mean_img (*mean_src describes it; mean_img is
 * left NULL when no training split is available).  Prints failures. */
static int load_data(const eval_opts *o, const crate_dims *dm, crate_dataset *ds, float **mean_img,
                     const char **mean_src, char *desc, size_t desc_n) {
  const bool fm = strcmp(o->data, "fmnist") == 0;
  const char *dir = fm ? CRATE_FMNIST_DIR : o->data;
  if (!cli_is_dir(dir)) {
    if (fm)
      return cli_fail(CMD,
                      "Fashion-MNIST not found in %s (install Debian's "
                      "dataset-fashion-mnist, or pass --data DIR)",
                      dir);
    return cli_fail(CMD, "--data %s: no such directory", dir);
  }
  const size_t C = dm->C, H = dm->H, hw = H * H, isz = C * hw;
  char path[PATHMAX];
  snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
  *mean_img = NULL;
  *mean_src = "none";
  if (fm || cli_file_exists(path)) {
    int st = crate_idx_read_images(path, (size_t)o->limit, ds);
    if (st != CRATE_STATUS_OK)
      return cli_fail_status(CMD, st);
    if (ds->channels != C || ds->height != H || ds->width != H) {
      cli_fail(CMD, "%s: images are %zu x %zu x %zu but the model expects %zu x %zu x %zu", path,
               ds->channels, ds->height, ds->width, C, H, H);
      crate_dataset_free(ds);
      return CLI_FAIL;
    }
    snprintf(desc, desc_n, "%s (t10k)", path);
    if (!o->baselines)
      return CLI_OK;
    crate_dataset tr;
    memset(&tr, 0, sizeof tr);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    if (!cli_file_exists(path) || crate_idx_read_images(path, 0, &tr) != CRATE_STATUS_OK ||
        crate_dataset_image_size(&tr) != isz) {
      crate_dataset_free(&tr);
      if (!o->quiet)
        fprintf(stderr, "crate eval: note: no usable %s; the mean-image baseline is skipped\n",
                path);
      return CLI_OK;
    }
    double *acc = calloc(isz, sizeof *acc);
    float *mean = malloc(isz * sizeof *mean);
    if (!acc || !mean) {
      free(acc);
      free(mean);
      crate_dataset_free(&tr);
      crate_dataset_free(ds);
      return cli_fail(CMD, "out of memory");
    }
    for (size_t i = 0; i < tr.count; i++)
      for (size_t j = 0; j < isz; j++)
        acc[j] += tr.images[i * isz + j];
    for (size_t j = 0; j < isz; j++)
      mean[j] = (float)(acc[j] / (double)tr.count);
    free(acc);
    crate_dataset_free(&tr);
    *mean_img = mean;
    *mean_src = "training split";
    return CLI_OK;
  }

  /* a directory of PNGs */
  char **names = NULL;
  size_t count = 0;
  int rc = recon_list_pngs(CMD, dir, &names, &count);
  if (rc != CLI_OK)
    return rc;
  if (count == 0)
    return cli_fail(CMD, "--data %s: no t10k-images-idx3-ubyte.gz and no .png files there", dir);
  if (o->limit > 0 && (size_t)o->limit < count)
    count = (size_t)o->limit;
  ds->images = malloc(count * isz * sizeof *ds->images);
  if (!ds->images) {
    recon_free_names(names, count);
    return cli_fail(CMD, "out of memory");
  }
  ds->count = count;
  ds->channels = C;
  ds->height = ds->width = H;
  for (size_t i = 0; i < count && rc == CLI_OK; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    rc = recon_read_png(CMD, "image", path, C, H, ds->images + i * isz);
  }
  recon_free_names(names, count);
  if (rc != CLI_OK) {
    crate_dataset_free(ds);
    return rc;
  }
  snprintf(desc, desc_n, "%s (%zu PNG files)", dir, count);
  if (o->baselines) {
    double *acc = calloc(isz, sizeof *acc);
    float *mean = malloc(isz * sizeof *mean);
    if (!acc || !mean) {
      free(acc);
      free(mean);
      crate_dataset_free(ds);
      return cli_fail(CMD, "out of memory");
    }
    for (size_t i = 0; i < count; i++)
      for (size_t j = 0; j < isz; j++)
        acc[j] += ds->images[i * isz + j];
    for (size_t j = 0; j < isz; j++)
      mean[j] = (float)(acc[j] / (double)count);
    free(acc);
    *mean_img = mean;
    *mean_src = "evaluated set (optimistic)";
  }
  return CLI_OK;
}

/* ---- figures ------------------------------------------------------------------------------- */

/* Adds one image: filled = the completed image (pixel space, clamped), raw =
 * the unclamped prediction or NULL. */
#define TRY(expr)                                                                                  \
  do {                                                                                             \
    int st_ = (expr);                                                                              \
    if (st_ != CRATE_STATUS_OK)                                                                    \
      return st_;                                                                                  \
  } while (0)

static int accumulate(eval_acc *a, const float *filled, const float *raw, const float *orig,
                      const uint8_t *mask, const crate_dims *dm) {
  double mse, s;
  size_t samples, windows;
  TRY(crate_mse_masked(&mse, &samples, filled, orig, mask, dm->C, dm->H, dm->H, dm->Q));
  if (samples > 0)
    a->sse += mse * (double)samples;
  a->samples += samples;
  if (raw) {
    TRY(crate_mse_masked(&mse, &samples, raw, orig, mask, dm->C, dm->H, dm->H, dm->Q));
    if (samples > 0)
      a->sse_raw += mse * (double)samples;
  }
  TRY(crate_ssim_masked(&s, &windows, filled, orig, mask, dm->C, dm->H, dm->H, dm->Q, 1.0));
  if (windows > 0) {
    a->ssim_masked += s;
    a->ssim_images++;
  }
  TRY(crate_ssim(&s, filled, orig, dm->C, dm->H, dm->H, 1.0));
  a->ssim_whole += s;
  a->images++;
  return CRATE_STATUS_OK;
}

static double acc_mse(const eval_acc *a) {
  return a->samples ? a->sse / (double)a->samples : NAN;
}
static double acc_mse_raw(const eval_acc *a) {
  return a->samples ? a->sse_raw / (double)a->samples : NAN;
}
static double psnr_of(double mse) {
  double p = NAN;
  if (isfinite(mse))
    (void)crate_psnr(&p, mse, 1.0);
  return p;
}
static double acc_ssim_masked(const eval_acc *a) {
  return a->ssim_images ? a->ssim_masked / (double)a->ssim_images : NAN;
}
static double acc_ssim(const eval_acc *a) {
  return a->images ? a->ssim_whole / (double)a->images : NAN;
}

static json_t *acc_json(const eval_acc *a) {
  json_t *o = json_object();
  json_object_set_new(o, "masked_mse", cli_json_num(acc_mse(a)));
  json_object_set_new(o, "masked_psnr", cli_json_num(psnr_of(acc_mse(a))));
  json_object_set_new(o, "masked_ssim", cli_json_num(acc_ssim_masked(a)));
  json_object_set_new(o, "ssim", cli_json_num(acc_ssim(a)));
  return o;
}

static void print_row(const char *name, const eval_acc *a) {
  char b1[32], b2[32], b3[32], b4[32];
  printf("  %-30s %12s %10s %12s %10s\n", name, recon_fmt(acc_mse(a), "%.6f", b1, sizeof b1),
         recon_fmt(psnr_of(acc_mse(a)), "%.3f", b2, sizeof b2),
         recon_fmt(acc_ssim_masked(a), "%.4f", b3, sizeof b3),
         recon_fmt(acc_ssim(a), "%.4f", b4, sizeof b4));
}

/* ---- entry point ------------------------------------------------------------------------------
 */

typedef struct eval_bufs {
  float *norm, *rec, *raw, *fill;
  uint8_t *mask;
  size_t *ids;
  double *noise;
} eval_bufs;

static void bufs_free(eval_bufs *b) {
  free(b->norm);
  free(b->rec);
  free(b->raw);
  free(b->fill);
  free(b->mask);
  free(b->ids);
  free(b->noise);
}

int cmd_eval(int argc, char **argv) {
  eval_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0)
    return rc;
  crate_model *m = NULL;
  int st = crate_model_load(o.model, &m);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  const crate_config *cfg = crate_model_config(m);
  const crate_dims *dm = crate_model_dims(m);
  if (cfg->norm_pix_loss) {
    crate_model_destroy(m);
    return cli_fail(CMD, "%s: the model uses norm_pix_loss, so its predictions are not pixels",
                    o.model);
  }
  size_t n_keep = 0;
  if (crate_mask_n_keep(&n_keep, dm->n, o.ratio) != CRATE_STATUS_OK || n_keep >= dm->n) {
    crate_model_destroy(m);
    return cli_usage_error(CMD, "--mask-ratio %g hides no patch of %zu", o.ratio, dm->n);
  }
  crate_dataset ds;
  memset(&ds, 0, sizeof ds);
  float *mean_img = NULL;
  const char *mean_src = "none";
  char desc[PATHMAX + 64] = "";
  rc = load_data(&o, dm, &ds, &mean_img, &mean_src, desc, sizeof desc);
  if (rc != CLI_OK) {
    crate_model_destroy(m);
    return rc;
  }
  if (ds.count > UINT32_MAX) {
    crate_dataset_free(&ds);
    free(mean_img);
    crate_model_destroy(m);
    return cli_fail(CMD, "%zu images exceed the mask counter's range; use --limit", ds.count);
  }
  if ((st = crate_set_threads((int)o.threads)) != CRATE_STATUS_OK) {
    crate_dataset_free(&ds);
    free(mean_img);
    crate_model_destroy(m);
    return cli_fail_status(CMD, st);
  }
  const size_t C = dm->C, H = dm->H, hw = H * H, isz = C * hw, n = dm->n;
  const size_t B = (size_t)o.batch < ds.count ? (size_t)o.batch : ds.count;
  if (!o.quiet)
    fprintf(stderr,
            "crate eval: model %s (preset %s, %zu x %zu x %zu, patch %zu, %zu params)\n"
            "  data %s: %zu images; mask ratio %g (%zu of %zu patches hidden), seed %llu; "
            "batch %zu, threads %ld\n",
            o.model, cfg->preset, C, H, H, dm->Q, crate_model_param_count(m), desc, ds.count,
            o.ratio, n - n_keep, n, (unsigned long long)o.seed, B, o.threads);

  eval_bufs b;
  memset(&b, 0, sizeof b);
  b.norm = malloc(B * isz * sizeof *b.norm);
  b.rec = malloc(B * isz * sizeof *b.rec);
  b.raw = malloc(B * isz * sizeof *b.raw);
  b.fill = malloc(isz * sizeof *b.fill);
  b.mask = malloc(B * n);
  b.ids = malloc(B * n * sizeof *b.ids);
  b.noise = malloc(B * n * sizeof *b.noise);
  const bool oom = !b.norm || !b.rec || !b.raw || !b.fill || !b.mask || !b.ids || !b.noise;
  st = oom ? CRATE_STATUS_ENOMEM : crate_model_reserve(m, B);
  eval_acc model_acc, mean_acc, vis_acc;
  memset(&model_acc, 0, sizeof model_acc);
  memset(&mean_acc, 0, sizeof mean_acc);
  memset(&vis_acc, 0, sizeof vis_acc);
  const double t0 = cli_now_s();
  for (size_t i0 = 0; st == CRATE_STATUS_OK && i0 < ds.count; i0 += B) {
    const size_t bn = ds.count - i0 < B ? ds.count - i0 : B;
    const float *orig = ds.images + i0 * isz;
    st = crate_mask_random_batch(b.mask, b.ids, b.noise, o.seed, CRATE_EVAL_MASK_STEP, (uint32_t)i0,
                                 o.ratio, bn, n);
    if (st != CRATE_STATUS_OK)
      break;
    memcpy(b.norm, orig, bn * isz * sizeof *b.norm);
    recon_normalise(b.norm, cfg, bn, hw);
    st = crate_model_forward(m, b.norm, b.mask, bn, NULL);
    if (st != CRATE_STATUS_OK)
      break;
    size_t got = 0;
    const float *pred = crate_model_pred(m, &got);
    st = crate_unpatchify(b.rec, pred, CRATE_PATCH_TARGET, bn, C, H, dm->Q);
    if (st != CRATE_STATUS_OK)
      break;
    /* raw = prediction in pixel space, unclamped; rec = clamped */
    for (size_t k = 0; k < bn; k++)
      for (size_t c = 0; c < C; c++) {
        const double mu = cfg->pixel_mean[c], sd = cfg->pixel_std[c];
        float *r = b.raw + (k * C + c) * hw;
        const float *p = b.rec + (k * C + c) * hw;
        for (size_t j = 0; j < hw; j++)
          r[j] = (float)((double)p[j] * sd + mu);
      }
    recon_denormalise_clamp(b.rec, cfg, bn, hw);
    for (size_t k = 0; k < bn && st == CRATE_STATUS_OK; k++) {
      const uint8_t *mk = b.mask + k * n;
      const float *ok = orig + k * isz;
      float *rk = b.rec + k * isz;
      /* completed image: visible patches from the input */
      for (size_t c = 0; c < C; c++)
        for (size_t j = 0; j < hw; j++) {
          const size_t t = (j / H / dm->Q) * dm->g + (j % H) / dm->Q;
          if (!mk[t])
            rk[c * hw + j] = ok[c * hw + j];
        }
      st = accumulate(&model_acc, rk, b.raw + k * isz, ok, mk, dm);
      if (st == CRATE_STATUS_OK && mean_img) {
        for (size_t c = 0; c < C; c++)
          for (size_t j = 0; j < hw; j++) {
            const size_t t = (j / H / dm->Q) * dm->g + (j % H) / dm->Q;
            b.fill[c * hw + j] = mk[t] ? mean_img[c * hw + j] : ok[c * hw + j];
          }
        st = accumulate(&mean_acc, b.fill, NULL, ok, mk, dm);
      }
      if (st == CRATE_STATUS_OK && o.baselines) {
        for (size_t c = 0; c < C; c++) {
          double s = 0;
          size_t cnt = 0;
          for (size_t j = 0; j < hw; j++) {
            const size_t t = (j / H / dm->Q) * dm->g + (j % H) / dm->Q;
            if (!mk[t]) {
              s += ok[c * hw + j];
              cnt++;
            }
          }
          const float v = cnt ? (float)(s / (double)cnt) : 0.5f;
          for (size_t j = 0; j < hw; j++) {
            const size_t t = (j / H / dm->Q) * dm->g + (j % H) / dm->Q;
            b.fill[c * hw + j] = mk[t] ? v : ok[c * hw + j];
          }
        }
        st = accumulate(&vis_acc, b.fill, NULL, ok, mk, dm);
      }
    }
  }
  const double secs = cli_now_s() - t0;
  bufs_free(&b);
  if (st != CRATE_STATUS_OK) {
    rc = oom ? cli_fail(CMD, "out of memory") : cli_fail_status(CMD, st);
    crate_dataset_free(&ds);
    free(mean_img);
    crate_model_destroy(m);
    return rc;
  }
  if (!o.quiet)
    fprintf(stderr, "crate eval: %zu images in %.2f s (%.0f images/s)\n", ds.count, secs,
            secs > 0 ? (double)ds.count / secs : 0.0);

  const double mse = acc_mse(&model_acc), mse_raw = acc_mse_raw(&model_acc);
  if (o.json) {
    json_t *j = json_object(), *bl = json_object();
    json_object_set_new(j, "model", json_string(o.model));
    json_object_set_new(j, "preset", json_string(cfg->preset));
    json_object_set_new(j, "data", json_string(desc));
    json_object_set_new(j, "images", json_integer((json_int_t)ds.count));
    json_object_set_new(j, "mask_ratio", json_real(o.ratio));
    json_object_set_new(j, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(j, "masked_patches_per_image", json_integer((json_int_t)(n - n_keep)));
    json_object_set_new(j, "masked_mse", cli_json_num(mse));
    json_object_set_new(j, "masked_psnr", cli_json_num(psnr_of(mse)));
    json_object_set_new(j, "masked_ssim", cli_json_num(acc_ssim_masked(&model_acc)));
    json_object_set_new(j, "masked_ssim_images", json_integer((json_int_t)model_acc.ssim_images));
    json_object_set_new(j, "ssim", cli_json_num(acc_ssim(&model_acc)));
    json_object_set_new(j, "masked_mse_unclamped", cli_json_num(mse_raw));
    json_object_set_new(j, "masked_psnr_unclamped", cli_json_num(psnr_of(mse_raw)));
    if (mean_img) {
      json_t *mb = acc_json(&mean_acc);
      json_object_set_new(mb, "source", json_string(mean_src));
      json_object_set_new(bl, "mean_image", mb);
    }
    if (o.baselines)
      json_object_set_new(bl, "visible_mean", acc_json(&vis_acc));
    json_object_set_new(j, "baselines", bl);
    json_object_set_new(j, "seconds", json_real(secs));
    rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) == 0 ? CLI_OK : CLI_FAIL;
    printf("\n");
    json_decref(j);
    if (rc != CLI_OK)
      cli_fail(CMD, "cannot write JSON to stdout");
  } else {
    char b1[32], b2[32];
    printf("%zu images, mask ratio %g (%zu of %zu patches), seed %llu; pixels in [0,1]\n", ds.count,
           o.ratio, n - n_keep, n, (unsigned long long)o.seed);
    printf("  %-30s %12s %10s %12s %10s\n", "method", "masked MSE", "PSNR dB", "masked SSIM",
           "SSIM");
    print_row("model (completed image)", &model_acc);
    if (mean_img) {
      char name[64];
      snprintf(name, sizeof name, "mean image (%s)",
               strcmp(mean_src, "training split") == 0 ? "train split" : "eval set");
      print_row(name, &mean_acc);
    }
    if (o.baselines)
      print_row("visible-pixel mean", &vis_acc);
    printf("  unclamped prediction: masked MSE %s, PSNR %s dB\n",
           recon_fmt(mse_raw, "%.6f", b1, sizeof b1),
           recon_fmt(psnr_of(mse_raw), "%.3f", b2, sizeof b2));
    if (model_acc.ssim_images < model_acc.images)
      printf("  masked SSIM over %zu images (the others have no window centred in a masked "
             "patch)\n",
             model_acc.ssim_images);
    rc = CLI_OK;
  }
  crate_dataset_free(&ds);
  free(mean_img);
  crate_model_destroy(m);
  return rc;
}
