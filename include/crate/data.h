/* data.h: image data sets in memory and the IDX reader (Fashion-MNIST).
 *
 * MODEL.md §2 (fmnist data): Fashion-MNIST ships as gzip IDX files in
 * /usr/share/datasets/fashion-mnist/ (Debian's dataset-fashion-mnist):
 * {train,t10k}-images-idx3-ubyte.gz (magic 0x00000803: unsigned bytes, three
 * dims count x rows x cols) and {train,t10k}-labels-idx1-ubyte.gz (magic
 * 0x00000801: unsigned bytes, one dim).  IDX is big-endian.  Pixels are
 * mapped to float by u8 / 255, so they lie in [0, 1]; no other transform.
 *
 * Files are read through zlib (gzopen / gzread), which also accepts
 * uncompressed IDX files.  The whole file is checked: the magic, the dims
 * (non-zero, no size overflow), that the data are exactly as long as the dims
 * say (a short file and trailing bytes are both EFORMAT), and gzip integrity
 * (a corrupt stream is EFORMAT).  Messages start with "idx: <path>: ".
 *
 * crate_dataset is a transparent value struct that owns its arrays; the PNG
 * folder loader (crate_pngdir_load, at the end) fills the same struct.  Free
 * with crate_dataset_free.
 */
#ifndef CRATE_DATA_H
#define CRATE_DATA_H

#include "crate/defs.h"
#include "crate/image.h" /* crate_image, for crate_image_fit */

/** IDX magic numbers (big-endian u32 at the start of the file). */
#define CRATE_IDX_MAGIC_IMAGES 0x00000803u
#define CRATE_IDX_MAGIC_LABELS 0x00000801u

/** Where Debian's dataset-fashion-mnist installs the files. */
#define CRATE_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Images in memory, planar float in [0, 1], with optional labels. */
typedef struct crate_dataset {
  float *images;   /* (count, channels, height, width), owned */
  uint8_t *labels; /* (count), owned, or NULL when the set has none */
  size_t count;    /* images */
  size_t channels; /* C (1 for IDX) */
  size_t height;   /* rows */
  size_t width;    /* cols */
} crate_dataset;

/** @return floats per image: channels * height * width. */
CRATE_API size_t crate_dataset_image_size(const crate_dataset *ds);

/** Frees the arrays and zeroes *ds.  NULL and an already freed (zeroed) set
 *  are no-ops. */
CRATE_API void crate_dataset_free(crate_dataset *ds);

/** Reads an IDX image file (magic 0x00000803, dims count x rows x cols) into
 *  out->images as u8 / 255, with channels = 1 and labels = NULL.
 *  @param path  gzip or plain IDX file
 *  @param limit keep only the first `limit` images (0 = all); the whole file
 *               is still read and checked
 *  @param out   receives the set (owned; free with crate_dataset_free);
 *               untouched on error
 *  @return OK; ENOENT (no such file); EIO (read error, e.g. a directory);
 *          EFORMAT (bad magic, zero or overflowing dims, truncated data,
 *          trailing bytes, corrupt gzip stream); ENOMEM; EINVAL (NULL). */
CRATE_API int crate_idx_read_images(const char *path, size_t limit, crate_dataset *out);

/** Reads an IDX label file (magic 0x00000801, one dim).
 *  @param labels receives a malloc'd array of *count bytes (free()); the
 *                first `limit` labels when limit > 0
 *  @return as crate_idx_read_images; *labels untouched on error. */
CRATE_API int crate_idx_read_labels(const char *path, size_t limit, uint8_t **labels,
                                    size_t *count);

/** Loads a Fashion-MNIST split: <dir>/<split>-images-idx3-ubyte.gz and
 *  <dir>/<split>-labels-idx1-ubyte.gz, checking that the counts agree.
 *  @param dir   directory (NULL: CRATE_FMNIST_DIR)
 *  @param split "train" or "t10k"
 *  @param limit first `limit` images only (0 = all)
 *  @return as crate_idx_read_images; ENOENT names the missing file and
 *          the Debian package; EINVAL for an unknown split. */
CRATE_API int crate_fmnist_load(const char *dir, const char *split, size_t limit,
                                crate_dataset *out);

/* ---- PNG folders (src/io/pngdir.c) ------------------------------------------
 *
 * A directory of PNG files becomes a crate_dataset of the model's channel
 * count and size.  Files: every regular "*.png" (suffix in any case) whose
 * name does not start with '.', sorted by name (strcmp, byte order);
 * subdirectories and other files are ignored.  Decoding is crate_png_read
 * (libpng low-level API, no gamma: 8-bit v / 255, 16-bit v / 65535; palette,
 * 1/2/4-bit gray and tRNS expanded).
 *
 * Channels (the same rules as `crate eval` / `crate reconstruct`):
 *   - alpha is dropped (gray+alpha -> gray, RGBA -> RGB; no compositing);
 *   - to 1 channel, RGB becomes luma Y = 0.299 R + 0.587 G + 0.114 B
 *     (ITU-R BT.601, as PIL's convert('L')), applied to the stored
 *     (gamma-encoded) values, in double, rounded once to float;
 *   - to 3 channels, gray is replicated (R = G = B).
 *
 * Size (crate_resize_mode), to size x size:
 *   - CRATE_RESIZE_CENTER_CROP (the default): crop the centred square of side
 *     s = min(W, H), starting at column (W - s) / 2 and row (H - s) / 2
 *     (integer division: an odd excess leaves the extra pixel on the right /
 *     bottom), then resample s x s to size x size;
 *   - CRATE_RESIZE_STRETCH: resample W x H to size x size (aspect not kept);
 *   - CRATE_RESIZE_EXACT: refuse any image that is not size x size (EINVAL
 *     naming the file, its size and the expected size).
 * Resampling is separable and per axis: the identity when the lengths agree;
 * area averaging (box) when shrinking, where output pixel o covers the source
 * interval [o n_in / n_out, (o + 1) n_in / n_out) and each source pixel is
 * weighted by its overlap (integer ratios give exact block means); bilinear
 * interpolation when enlarging, with pixel centres aligned (source coordinate
 * (o + 0.5) n_in / n_out - 0.5, clamped to the edge pixels; PyTorch's
 * align_corners=False).  Sums accumulate in double; each output is rounded
 * to float once.  Values stay in [0, 1].
 */

/** BT.601 luma weights used for RGB -> gray. */
#define CRATE_LUMA_R 0.299
#define CRATE_LUMA_G 0.587
#define CRATE_LUMA_B 0.114

/** How an image is brought to the model's size (see above). */
typedef enum crate_resize_mode {
  CRATE_RESIZE_CENTER_CROP = 0, /* centre-crop to a square, then area / bilinear resample */
  CRATE_RESIZE_STRETCH = 1,     /* resample both axes independently (aspect not kept) */
  CRATE_RESIZE_EXACT = 2,       /* refuse any other size */
} crate_resize_mode;

/** Parses "crop", "stretch" or "exact".  @return OK or EINVAL (unknown
 *  name, NULL); *out untouched on error. */
CRATE_API int crate_resize_mode_parse(const char *name, crate_resize_mode *out);

/** @return "crop", "stretch", "exact", or "?" for another value (static). */
CRATE_API const char *crate_resize_mode_name(crate_resize_mode mode);

/** Converts one decoded image (crate/image.h) to planar (channels, size,
 *  size) floats with the channel and size rules above.
 *  @param out      (channels, size, size) floats, written
 *  @param img      (H, W, C) image, C in 1..4
 *  @param channels 1 or 3
 *  @param size     output side, >= 1
 *  @return OK; EINVAL (NULL, channels not 1 or 3, size 0, bad image, or a
 *          size mismatch in EXACT mode, with the expected size in the
 *          message); ENOMEM. */
CRATE_API int crate_image_fit(float *out, const crate_image *img, size_t channels, size_t size,
                              crate_resize_mode mode);

/** Loads the PNG files of a directory (see above) into a dataset of
 *  (count, channels, size, size) floats in [0, 1], labels NULL, in file-name
 *  order.
 *  @param dir      the directory
 *  @param channels 1 or 3 (the model's in_chans)
 *  @param size     side of the square output images (the model's img_size)
 *  @param mode     CRATE_RESIZE_CENTER_CROP, _STRETCH or _EXACT
 *  @param limit    decode only the first `limit` files (0 = all)
 *  @param out      receives the set (owned; crate_dataset_free); untouched
 *                  on error
 *  @return OK; ENOENT (no such directory; or a listed file vanished);
 *          EINVAL (NULL, not a directory, channels not 1 or 3, size 0, an
 *          unknown mode, "no PNG files in DIR", a size mismatch in EXACT
 *          mode naming the file); EFORMAT (a corrupt, truncated or non-PNG
 *          file, named in the message: nothing is skipped); EIO (a directory
 *          or file that cannot be read); ENOMEM. */
CRATE_API int crate_pngdir_load(const char *dir, size_t channels, size_t size,
                                crate_resize_mode mode, size_t limit, crate_dataset *out);

#endif
