/* cmd_reconstruct.c: `crate reconstruct`, masked-image completion with a
 * CRATE-MAE (MODEL.md §3, §3.11; STYLE.md §5, §10).
 *
 * An image (or every *.png of a directory) is masked patch by patch, run
 * through the model (crate_model_infer: mask tokens enter before the
 * encoder, MODEL.md §3.4) and completed: the prediction is unpatchified,
 * the input normalisation is undone and values are clamped to [0, 1], and
 * the visible patches of the input are pasted back (MODEL.md §3.11).
 *
 * Masks, exactly one source:
 *   --mask-ratio R   random (MODEL.md §3.3), n_keep = (int)(n (1 - R)) patches
 *                    visible; image k of the run (0 for a single file, the
 *                    k-th name in sorted order for a directory) uses the
 *                    Philox mask (seed, MASK, CRATE_EVAL_MASK_STEP, k), the
 *                    same mask `crate eval` draws for sample k.  Default 0.75.
 *   --mask M.png     same size as the image; a pixel is "white" when its
 *                    gray value (BT.601 luma for RGB, alpha dropped) is
 *                    >= 0.5, and a patch is hidden when ANY of its pixels is
 *                    white (so a thin stroke hides every patch it touches).
 *   --box X0,Y0,X1,Y1  the pixel box [X0, X1) x [Y0, Y1) (x = column), grown
 *                    to the patch grid: every patch that overlaps it is hidden.
 *
 * Outputs: the completed image at --out (C channels, the model's size), and
 * a panel PNG (original | masked input, hidden patches hatched grey |
 * reconstruction | reconstruction with the visible patches pasted back),
 * each tile upscaled by nearest neighbour (--scale, default 224 / H, so 8
 * for 28 x 28) with a white gap of max(scale, 4) pixels between tiles and
 * no outer border: width 4 T + 3 gap, T = H scale.  Both are written to
 * temporary files and renamed into place only when both succeeded.
 *
 * Figures printed (pixels in [0, 1], STYLE.md §10, include/crate/metrics.h):
 * masked-region PSNR and SSIM of the completed image against the original,
 * and whole-image PSNR and SSIM of the completed image and of the raw
 * reconstruction.
 *
 * Input images must be exactly the model's size (no resizing).  For a
 * 1-channel model RGB is converted to gray by BT.601 luma (0.299 R + 0.587
 * G + 0.114 B on the stored values); alpha is always dropped; for a
 * 3-channel model gray is replicated.
 *
 * Non-goals: resizing or cropping inputs, norm_pix_loss models (their
 * predictions are not pixels; refused).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "crate/image.h"
#include "crate/metrics.h"
#include "crate/model.h"
#include "crate/modelio.h"
#include "crate/ops.h"
#include "crate/train.h"
#include "recon_common.h"

#define CMD "reconstruct"
#define PATHMAX 4096

enum { OPT_MASK_RATIO = 1400, OPT_MASK, OPT_BOX, OPT_PANEL, OPT_SCALE };

typedef struct recon_opts {
  const char *model, *in, *out, *panel, *mask_png;
  double ratio;
  bool has_ratio, has_box;
  long box[4]; /* X0, Y0, X1, Y1 */
  uint64_t seed;
  long scale; /* 0: automatic */
  long threads;
  bool quiet;
} recon_opts;

typedef struct recon_ctx {
  crate_model *m;
  const crate_config *cfg;
  size_t C, H, Q, g, n, hw, scale, gap;
  uint8_t *fixed;            /* (n) from --mask or --box, or NULL */
  uint8_t *mask;             /* (n) mask of the current image */
  size_t *ids;               /* (n) */
  double *noise;             /* (n) */
  float *orig, *norm, *pred; /* (C, H, H), (C, H, H), (n, P) */
  float *rec, *pasted;       /* (C, H, H) pixel space */
} recon_ctx;

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate reconstruct -m MODEL -i IMG.png|DIR -o OUT.png|DIR [mask] [options]\n\n"
          "Mask patches of an image, complete them with a CRATE-MAE, and write the completed\n"
          "image plus a panel: original | masked input | reconstruction | completed.\n\n"
          "Options:\n"
          "  -m, --model FILE        model file (.safetensors) (required)\n"
          "  -i, --in PATH           input PNG, or a directory: every *.png in it (required)\n"
          "  -o, --out PATH          completed image; a directory when --in is one (required)\n"
          "      --panel PATH        panel PNG [<out without .png>_panel.png]\n"
          "Mask (choose one):\n"
          "      --mask-ratio R      random mask hiding a fraction R in (0,1) of the patches\n"
          "                          [0.75]\n"
          "      --mask FILE         PNG of the image's size, white (>= 0.5) = hidden; a patch\n"
          "                          is hidden when any of its pixels is white\n"
          "      --box X0,Y0,X1,Y1   hide the pixel box [X0,X1) x [Y0,Y1), grown to whole patches\n"
          "Other:\n"
          "  -s, --seed N            mask seed (image k uses the mask crate eval uses for\n"
          "                          sample k); -1 = random [0]\n"
          "      --scale N           panel upscaling factor, nearest neighbour [224/H, 8 for 28]\n"
          "  -t, --threads N         BLAS threads [$CRATE_THREADS or online CPUs]\n"
          "  -q, --quiet             no startup lines on stderr\n"
          "  -h, --help              show this help and exit\n\n"
          "Images must have the model's size.  RGB input to a gray model is converted by\n"
          "BT.601 luma (0.299 R + 0.587 G + 0.114 B); alpha is dropped.\n"
          "PSNR and SSIM (STYLE.md 10) are printed for the masked region and the whole image.\n\n"
          "Example: crate reconstruct -m models/fmnist-tiny.safetensors -i data/samples/"
          "fmnist-0.png -o /tmp/out.png\n");
}

/* ---- option parsing -------------------------------------------------------------------- */

static bool parse_box(const char *s, long box[4]) {
  const char *p = s;
  for (int k = 0; k < 4; k++) {
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno == ERANGE || v < 0 || v > 1000000)
      return false;
    box[k] = v;
    if (k < 3) {
      if (*end != ',')
        return false;
      p = end + 1;
    } else if (*end != '\0') {
      return false;
    }
  }
  return box[0] < box[2] && box[1] < box[3];
}

/* Returns -1 to continue, else the exit code. */
static int parse_args(int argc, char **argv, recon_opts *o) {
  static const struct option longopts[] = {
      {"model", required_argument, NULL, 'm'},
      {"in", required_argument, NULL, 'i'},
      {"out", required_argument, NULL, 'o'},
      {"panel", required_argument, NULL, OPT_PANEL},
      {"mask-ratio", required_argument, NULL, OPT_MASK_RATIO},
      {"mask", required_argument, NULL, OPT_MASK},
      {"box", required_argument, NULL, OPT_BOX},
      {"seed", required_argument, NULL, 's'},
      {"scale", required_argument, NULL, OPT_SCALE},
      {"threads", required_argument, NULL, 't'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->ratio = 0.75;
  o->threads = cli_default_threads();
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":m:i:o:s:t:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'i': o->in = optarg; break;
    case 'o': o->out = optarg; break;
    case OPT_PANEL: o->panel = optarg; break;
    case OPT_MASK_RATIO:
      if (!cli_parse_double(CMD, "--mask-ratio", optarg, -INFINITY, INFINITY, &o->ratio))
        return CLI_USAGE;
      if (!(o->ratio > 0 && o->ratio < 1))
        return cli_usage_error(CMD, "--mask-ratio must be in (0, 1), got %g", o->ratio);
      o->has_ratio = true;
      break;
    case OPT_MASK: o->mask_png = optarg; break;
    case OPT_BOX:
      if (!parse_box(optarg, o->box))
        return cli_usage_error(CMD,
                               "--box expects X0,Y0,X1,Y1 with 0 <= X0 < X1 and 0 <= Y0 < "
                               "Y1, got '%s'",
                               optarg);
      o->has_box = true;
      break;
    case 's':
      if (!cli_parse_seed(CMD, optarg, &o->seed))
        return CLI_USAGE;
      break;
    case OPT_SCALE:
      if (!cli_parse_long(CMD, "--scale", optarg, 1, 64, &o->scale))
        return CLI_USAGE;
      break;
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
  if (!o->in)
    return cli_usage_error(CMD, "--in PATH is required");
  if (!o->out)
    return cli_usage_error(CMD, "--out PATH is required");
  if ((int)o->has_ratio + (int)(o->mask_png != NULL) + (int)o->has_box > 1)
    return cli_usage_error(CMD, "give only one of --mask-ratio, --mask and --box");
  return -1;
}

/* ---- masks ------------------------------------------------------------------------------ */

static size_t count_masked(const uint8_t *mask, size_t n) {
  size_t k = 0;
  for (size_t t = 0; t < n; t++)
    k += mask[t] != 0;
  return k;
}

/* --mask: a patch is hidden when any of its pixels has gray value >= 0.5. */
static int mask_from_png(recon_ctx *x, const char *path) {
  float *px = malloc(x->hw * sizeof *px);
  if (!px)
    return cli_fail(CMD, "out of memory");
  int rc = recon_read_png(CMD, "mask", path, 1, x->H, px);
  if (rc == CLI_OK) {
    memset(x->fixed, 0, x->n);
    for (size_t y = 0; y < x->H; y++)
      for (size_t xx = 0; xx < x->H; xx++)
        if (px[y * x->H + xx] >= 0.5f)
          x->fixed[(y / x->Q) * x->g + xx / x->Q] = 1;
    if (count_masked(x->fixed, x->n) == 0)
      rc = cli_fail(CMD, "%s: the mask hides no patch (no pixel >= 0.5)", path);
  }
  free(px);
  return rc;
}

/* --box: every patch overlapping [X0, X1) x [Y0, Y1). */
static int mask_from_box(recon_ctx *x, const long box[4]) {
  const long H = (long)x->H;
  if (box[2] > H || box[3] > H)
    return cli_usage_error(CMD, "--box %ld,%ld,%ld,%ld lies outside the %ld x %ld image", box[0],
                           box[1], box[2], box[3], H, H);
  memset(x->fixed, 0, x->n);
  for (size_t r = 0; r < x->g; r++)
    for (size_t c = 0; c < x->g; c++) {
      const long y0 = (long)(r * x->Q), x0 = (long)(c * x->Q), q = (long)x->Q;
      if (y0 < box[3] && y0 + q > box[1] && x0 < box[2] && x0 + q > box[0])
        x->fixed[r * x->g + c] = 1;
    }
  return CLI_OK;
}

/* ---- panel -------------------------------------------------------------------------------- */

/* Copies a planar (C, H, H) image into tile k of the panel (H_p, W_p, C),
 * nearest-neighbour upscaled; hatch: masked patches drawn as grey stripes. */
static void draw_tile(crate_image *panel, const recon_ctx *x, size_t k, const float *img,
                      const uint8_t *hatch) {
  const size_t T = x->H * x->scale, C = x->C, x0 = k * (T + x->gap);
  for (size_t py = 0; py < T; py++)
    for (size_t px = 0; px < T; px++) {
      const size_t y = py / x->scale, xx = px / x->scale;
      float *dst = panel->data + (py * panel->width + x0 + px) * C;
      if (hatch && hatch[(y / x->Q) * x->g + xx / x->Q]) {
        const float v = ((px + py) % 8 < 3) ? 0.75f : 0.45f;
        for (size_t c = 0; c < C; c++)
          dst[c] = v;
      } else {
        for (size_t c = 0; c < C; c++)
          dst[c] = img[c * x->hw + y * x->H + xx];
      }
    }
}

static int build_panel(crate_image **out, const recon_ctx *x) {
  const size_t T = x->H * x->scale, W = 4 * T + 3 * x->gap;
  crate_image *p = NULL;
  int st = crate_image_create(&p, W, T, x->C);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  for (size_t i = 0; i < W * T * x->C; i++)
    p->data[i] = 1.0f; /* white gaps */
  draw_tile(p, x, 0, x->orig, NULL);
  draw_tile(p, x, 1, x->orig, x->mask);
  draw_tile(p, x, 2, x->rec, NULL);
  draw_tile(p, x, 3, x->pasted, NULL);
  *out = p;
  return CLI_OK;
}

/* ---- one image ---------------------------------------------------------------------------- */

static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Interleaved (H, H, C) crate_image from planar pixels. */
static int to_image(crate_image **out, const recon_ctx *x, const float *planar) {
  int st = crate_image_create(out, x->H, x->H, x->C);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  for (size_t c = 0; c < x->C; c++)
    for (size_t i = 0; i < x->hw; i++)
      (*out)->data[i * x->C + c] = planar[c * x->hw + i];
  return CLI_OK;
}

static int write_outputs(const recon_ctx *x, const char *out, const char *panel_path) {
  crate_image *img = NULL, *panel = NULL;
  char tmp_out[PATHMAX + 64] = "", tmp_panel[PATHMAX + 64] = "";
  int rc = to_image(&img, x, x->pasted);
  if (rc == CLI_OK)
    rc = build_panel(&panel, x);
  if (rc == CLI_OK)
    rc = recon_write_tmp(CMD, out, img, tmp_out, sizeof tmp_out);
  if (rc == CLI_OK) {
    rc = recon_write_tmp(CMD, panel_path, panel, tmp_panel, sizeof tmp_panel);
    if (rc != CLI_OK)
      recon_discard(tmp_out);
  }
  if (rc == CLI_OK) {
    rc = recon_commit(CMD, tmp_out, out);
    if (rc != CLI_OK)
      recon_discard(tmp_panel);
    else
      rc = recon_commit(CMD, tmp_panel, panel_path);
  }
  crate_image_destroy(img);
  crate_image_destroy(panel);
  return rc;
}

static int process(recon_ctx *x, const recon_opts *o, const char *in, const char *out,
                   const char *panel_path, size_t index) {
  if (same_file(in, out) || same_file(in, panel_path))
    return cli_fail(CMD, "%s: refusing to overwrite the input image", in);
  int rc = recon_read_png(CMD, "image", in, x->C, x->H, x->orig);
  if (rc != CLI_OK)
    return rc;
  /* the mask */
  if (x->fixed) {
    memcpy(x->mask, x->fixed, x->n);
  } else {
    if (index > UINT32_MAX)
      return cli_fail(CMD, "too many images for the mask counter");
    int st = crate_mask_random_batch(x->mask, x->ids, x->noise, o->seed, CRATE_EVAL_MASK_STEP,
                                     (uint32_t)index, o->ratio, 1, x->n);
    if (st != CRATE_STATUS_OK)
      return cli_fail_status(CMD, st);
  }
  const size_t n_masked = count_masked(x->mask, x->n);
  /* the model */
  memcpy(x->norm, x->orig, x->C * x->hw * sizeof *x->norm);
  recon_normalise(x->norm, x->cfg, 1, x->hw);
  int st = crate_model_infer(x->m, x->pred, x->norm, x->mask, 1, NULL);
  if (st == CRATE_STATUS_OK)
    st = crate_unpatchify(x->rec, x->pred, CRATE_PATCH_TARGET, 1, x->C, x->H, x->Q);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  recon_denormalise_clamp(x->rec, x->cfg, 1, x->hw);
  for (size_t c = 0; c < x->C; c++)
    for (size_t i = 0; i < x->hw; i++) {
      const size_t t = (i / x->H / x->Q) * x->g + (i % x->H) / x->Q;
      x->pasted[c * x->hw + i] = x->mask[t] ? x->rec[c * x->hw + i] : x->orig[c * x->hw + i];
    }
  /* the figures */
  double m_mse = NAN, m_psnr = NAN, m_ssim = NAN, mse_c, psnr_c, ssim_c, mse_r, psnr_r, ssim_r;
  size_t samples = 0, windows = 0;
  st = crate_mse_masked(&m_mse, &samples, x->pasted, x->orig, x->mask, x->C, x->H, x->H, x->Q);
  if (st == CRATE_STATUS_OK && samples > 0)
    st = crate_psnr(&m_psnr, m_mse, 1.0);
  if (st == CRATE_STATUS_OK)
    st = crate_ssim_masked(&m_ssim, &windows, x->pasted, x->orig, x->mask, x->C, x->H, x->H, x->Q,
                           1.0);
  if (st == CRATE_STATUS_OK)
    st = crate_mse(&mse_c, x->pasted, x->orig, x->C, x->H, x->H);
  if (st == CRATE_STATUS_OK)
    st = crate_psnr(&psnr_c, mse_c, 1.0);
  if (st == CRATE_STATUS_OK)
    st = crate_ssim(&ssim_c, x->pasted, x->orig, x->C, x->H, x->H, 1.0);
  if (st == CRATE_STATUS_OK)
    st = crate_mse(&mse_r, x->rec, x->orig, x->C, x->H, x->H);
  if (st == CRATE_STATUS_OK)
    st = crate_psnr(&psnr_r, mse_r, 1.0);
  if (st == CRATE_STATUS_OK)
    st = crate_ssim(&ssim_r, x->rec, x->orig, x->C, x->H, x->H, 1.0);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  rc = write_outputs(x, out, panel_path);
  if (rc != CLI_OK)
    return rc;
  char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
  printf("%s: %zu of %zu patches masked\n", in, n_masked, x->n);
  printf("  masked region  PSNR %s dB  SSIM %s   (completed vs original)\n",
         recon_fmt(m_psnr, "%.2f", b1, sizeof b1), recon_fmt(m_ssim, "%.4f", b2, sizeof b2));
  printf("  whole image    PSNR %s dB  SSIM %s   (completed)   PSNR %s dB  SSIM %s   "
         "(reconstruction)\n",
         recon_fmt(psnr_c, "%.2f", b3, sizeof b3), recon_fmt(ssim_c, "%.4f", b4, sizeof b4),
         recon_fmt(psnr_r, "%.2f", b5, sizeof b5), recon_fmt(ssim_r, "%.4f", b6, sizeof b6));
  printf("  wrote %s and %s\n", out, panel_path);
  fflush(stdout);
  return CLI_OK;
}

/* ---- entry point ---------------------------------------------------------------------------- */

static void ctx_free(recon_ctx *x) {
  crate_model_destroy(x->m);
  free(x->fixed);
  free(x->mask);
  free(x->ids);
  free(x->noise);
  free(x->orig);
  free(x->norm);
  free(x->pred);
  free(x->rec);
  free(x->pasted);
}

/* "<dir>/<name>" with the last ".png" (any case) replaced by suffix. */
static bool derive(char *buf, size_t n, const char *dir, const char *name, const char *suffix) {
  size_t len = strlen(name);
  if (len >= 4 && (name[len - 4] == '.') && (name[len - 3] | 32) == 'p' &&
      (name[len - 2] | 32) == 'n' && (name[len - 1] | 32) == 'g')
    len -= 4;
  int k = dir ? snprintf(buf, n, "%s/%.*s%s", dir, (int)len, name, suffix)
              : snprintf(buf, n, "%.*s%s", (int)len, name, suffix);
  return k > 0 && (size_t)k < n;
}

int cmd_reconstruct(int argc, char **argv) {
  recon_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0)
    return rc;
  const bool dir_mode = cli_is_dir(o.in);
  if (dir_mode && o.panel)
    return cli_usage_error(CMD, "--panel is for a single image; with a directory the panels go "
                                "to <out>/<name>_panel.png");

  recon_ctx x;
  memset(&x, 0, sizeof x);
  int st = crate_model_load(o.model, &x.m);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  x.cfg = crate_model_config(x.m);
  const crate_dims *dm = crate_model_dims(x.m);
  if (x.cfg->norm_pix_loss) {
    ctx_free(&x);
    return cli_fail(CMD, "%s: the model uses norm_pix_loss, so its predictions are not pixels",
                    o.model);
  }
  x.C = dm->C;
  x.H = dm->H;
  x.Q = dm->Q;
  x.g = dm->g;
  x.n = dm->n;
  x.hw = x.H * x.H;
  x.scale = o.scale > 0 ? (size_t)o.scale : (x.H < 224 ? 224 / x.H : 1);
  x.gap = x.scale > 4 ? x.scale : 4;
  const size_t img_floats = x.C * x.hw;
  x.mask = malloc(x.n);
  x.ids = malloc(x.n * sizeof *x.ids);
  x.noise = malloc(x.n * sizeof *x.noise);
  x.orig = malloc(img_floats * sizeof(float));
  x.norm = malloc(img_floats * sizeof(float));
  x.pred = malloc(x.n * dm->P * sizeof(float));
  x.rec = malloc(img_floats * sizeof(float));
  x.pasted = malloc(img_floats * sizeof(float));
  if (!x.mask || !x.ids || !x.noise || !x.orig || !x.norm || !x.pred || !x.rec || !x.pasted) {
    ctx_free(&x);
    return cli_fail(CMD, "out of memory");
  }
  if (o.mask_png || o.has_box) {
    if (!(x.fixed = malloc(x.n))) {
      ctx_free(&x);
      return cli_fail(CMD, "out of memory");
    }
    rc = o.mask_png ? mask_from_png(&x, o.mask_png) : mask_from_box(&x, o.box);
    if (rc != CLI_OK) {
      ctx_free(&x);
      return rc;
    }
  } else {
    size_t n_keep = 0;
    if (crate_mask_n_keep(&n_keep, x.n, o.ratio) != CRATE_STATUS_OK || n_keep >= x.n) {
      ctx_free(&x);
      return cli_usage_error(CMD, "--mask-ratio %g hides no patch of %zu", o.ratio, x.n);
    }
  }
  st = crate_set_threads((int)o.threads);
  if (st != CRATE_STATUS_OK) {
    ctx_free(&x);
    return cli_fail_status(CMD, st);
  }
  if (!o.quiet) {
    char mask_desc[PATHMAX + 64];
    if (o.mask_png)
      snprintf(mask_desc, sizeof mask_desc, "from %s (%zu of %zu patches)", o.mask_png,
               count_masked(x.fixed, x.n), x.n);
    else if (o.has_box)
      snprintf(mask_desc, sizeof mask_desc, "box %ld,%ld,%ld,%ld (%zu of %zu patches)", o.box[0],
               o.box[1], o.box[2], o.box[3], count_masked(x.fixed, x.n), x.n);
    else
      snprintf(mask_desc, sizeof mask_desc, "random, ratio %g, seed %llu", o.ratio,
               (unsigned long long)o.seed);
    fprintf(stderr,
            "crate reconstruct: model %s (preset %s, %zu x %zu x %zu, patch %zu, %zu params)\n"
            "  mask %s; panel x%zu; threads %ld\n",
            o.model, x.cfg->preset, x.C, x.H, x.H, x.Q, crate_model_param_count(x.m), mask_desc,
            x.scale, o.threads);
  }

  if (!dir_mode) {
    char panel[PATHMAX];
    if (!o.panel && !derive(panel, sizeof panel, NULL, o.out, "_panel.png")) {
      ctx_free(&x);
      return cli_fail(CMD, "--out %s: path too long", o.out);
    }
    rc = process(&x, &o, o.in, o.out, o.panel ? o.panel : panel, 0);
    ctx_free(&x);
    return rc;
  }

  /* a directory: every *.png, outputs into --out (created if missing) */
  if (!cli_is_dir(o.out) && mkdir(o.out, 0777) != 0) {
    rc = cli_fail(CMD, "--out %s: cannot create the directory: %s", o.out, strerror(errno));
    ctx_free(&x);
    return rc;
  }
  if (same_file(o.in, o.out)) {
    ctx_free(&x);
    return cli_fail(CMD, "--out %s is the input directory; choose another", o.out);
  }
  char **names = NULL;
  size_t count = 0;
  rc = recon_list_pngs(CMD, o.in, &names, &count);
  if (rc != CLI_OK) {
    ctx_free(&x);
    return rc;
  }
  if (count == 0) {
    ctx_free(&x);
    return cli_fail(CMD, "%s: no .png files in the directory", o.in);
  }
  size_t failed = 0;
  for (size_t i = 0; i < count; i++) {
    char in[PATHMAX], out[PATHMAX], panel[PATHMAX];
    if (snprintf(in, sizeof in, "%s/%s", o.in, names[i]) >= (int)sizeof in ||
        !derive(out, sizeof out, o.out, names[i], ".png") ||
        !derive(panel, sizeof panel, o.out, names[i], "_panel.png")) {
      cli_fail(CMD, "%s/%s: path too long", o.in, names[i]);
      failed++;
      continue;
    }
    if (process(&x, &o, in, out, panel, i) != CLI_OK)
      failed++;
  }
  if (failed)
    fprintf(stderr, "crate reconstruct: %zu of %zu images failed\n", failed, count);
  recon_free_names(names, count);
  ctx_free(&x);
  return failed ? CLI_FAIL : CLI_OK;
}
