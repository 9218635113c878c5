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
 * crate_dataset is a transparent value struct that owns its arrays; other
 * loaders (PNG folders) fill the same struct.  Free with crate_dataset_free.
 */
#ifndef CRATE_DATA_H
#define CRATE_DATA_H

#include "crate/defs.h"

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

#endif
