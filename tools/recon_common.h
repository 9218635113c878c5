/* recon_common.h: image handling and figure formatting shared by `crate
 * reconstruct` and `crate eval` (MODEL.md §3.1, §3.11; STYLE.md §5, §10).
 *
 * Images for a model are planar float (C, H, H) in [0, 1] ("pixel space");
 * the model itself sees them normalised by the config's pixel_mean /
 * pixel_std.  Every function that can fail prints one line on stderr
 * ("crate <cmd>: ...") and returns CLI_FAIL.
 */
#ifndef CRATE_TOOLS_RECON_COMMON_H
#define CRATE_TOOLS_RECON_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crate/config.h"
#include "crate/image.h"

/* ITU-R BT.601 luma weights (as PIL's convert('L') and torchvision's
 * Grayscale), applied to the stored (gamma-encoded) values. */
#define RECON_LUMA_R 0.299
#define RECON_LUMA_G 0.587
#define RECON_LUMA_B 0.114

/* Converts a decoded PNG to a model's channel count, planar (C, H, W):
 *   - alpha is dropped (gray+alpha -> gray, RGBA -> RGB);
 *   - C = 1: RGB becomes gray by RECON_LUMA_* weights;
 *   - C = 3: gray is replicated to R = G = B;
 *   - otherwise the channel counts must agree.
 * out: C H W floats.  Returns false when no conversion exists. */
bool recon_to_channels(float *out, const crate_image *img, size_t C);

/* Reads a PNG for a model: decodes it, refuses a size other than H x H
 * (naming the model's size), converts channels (recon_to_channels).
 * what: "image" or "mask", for messages.  out: C H H floats in [0, 1]. */
int recon_read_png(const char *cmd, const char *what, const char *path, size_t C, size_t H,
                   float *out);

/* (x - mean_c) / std_c in place, images (count, C, HW). */
void recon_normalise(float *x, const crate_config *cfg, size_t count, size_t hw);
/* x std_c + mean_c in place, then clamp to [0, 1] (NaN -> 0). */
void recon_denormalise_clamp(float *x, const crate_config *cfg, size_t count, size_t hw);

/* The regular files "*.png" (any case, not starting with '.') of a
 * directory, sorted by name (strcmp).  *names: count malloc'd strings;
 * free with recon_free_names.  An empty directory is fine (count 0). */
int recon_list_pngs(const char *cmd, const char *dir, char ***names, size_t *count);
void recon_free_names(char **names, size_t count);

/* A figure for the printed tables: "inf" when v is infinite (the PSNR of
 * an exact match), "n/a" when it is NaN (nothing to measure), else v
 * formatted by f (a printf format of one double) into buf (n bytes).
 * @return buf. */
const char *recon_fmt(double v, const char *f, char *buf, size_t n);

/* Atomic output: writes img to "<dir>/.<base>.tmp-<pid>" next to path;
 * recon_commit renames it into place, recon_discard removes it.
 * tmp: receives the temporary name (at least tmp_size bytes). */
int recon_write_tmp(const char *cmd, const char *path, const crate_image *img, char *tmp,
                    size_t tmp_size);
int recon_commit(const char *cmd, const char *tmp, const char *path);
void recon_discard(const char *tmp);

#endif
