/* image.h: float images and the PNG seam (STYLE.md §6, §9.4).
 *
 * A crate_image holds H x W pixels of C channels as floats in [0, 1],
 * row-major (H, W, C): data[(y * W + x) * C + c].  Channel layouts follow
 * PNG: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
 *
 * PNG files are read and written with libpng's low-level API (never the
 * simplified API, which sRGB-encodes 16-bit data: STYLE.md §9.4) and with no
 * gamma transform.  Reading expands palettes to RGB, gray of 1/2/4 bits to
 * 8 bits and a tRNS chunk to an alpha channel; 8-bit samples map to v / 255
 * and 16-bit samples are kept at full precision and map to v / 65535.
 * Writing stores 8-bit samples round(clamp(v, 0, 1) * 255) (NaN -> 0).
 *
 * Errors: a missing input file is CRATE_STATUS_ENOENT, a file that cannot be
 * opened, read or written is CRATE_STATUS_EIO, a corrupt or truncated PNG is
 * CRATE_STATUS_EFORMAT; messages start with "png: ".  A failed write removes
 * the partial file.
 */
#ifndef CRATE_IMAGE_H
#define CRATE_IMAGE_H

#include "crate/defs.h"

typedef struct crate_image {
  size_t width;    /* W */
  size_t height;   /* H */
  size_t channels; /* C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
  float *data;     /* (H, W, C), owned */
} crate_image;

/** Allocates a zero-filled image; width, height >= 1, channels in 1..4 and
 *  at most 2^28 samples.  @return OK, EINVAL or ENOMEM (*out = NULL). */
CRATE_API int crate_image_create(crate_image **out, size_t width, size_t height,
                                 size_t channels);

/** Frees an image and its data.  NULL is a no-op. */
CRATE_API void crate_image_destroy(crate_image *img);

/** Reads a PNG file of any colour type and bit depth into a new image
 *  (channels: 1, 2, 3 or 4 after the expansions above).  The sample bit
 *  depth of the file (1, 2, 4, 8 or 16) goes to *bit_depth when it is not
 *  NULL.  @return OK, ENOENT, EIO, EFORMAT, ENOMEM or EINVAL (NULL args). */
CRATE_API int crate_png_read(const char *path, crate_image **out, int *bit_depth);

/** Writes img as an 8-bit PNG (gray, gray+alpha, RGB or RGBA by channels).
 *  @return OK, EINVAL (bad image) or EIO. */
CRATE_API int crate_png_write(const char *path, const crate_image *img);

/** Writes 8-bit samples directly.  pixels: (height, width, channels) bytes,
 *  channels in 1..4.  @return OK, EINVAL or EIO. */
CRATE_API int crate_png_write_u8(const char *path, const uint8_t *pixels, size_t width,
                                 size_t height, size_t channels);

#endif
