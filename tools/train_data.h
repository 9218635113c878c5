/* train_data.h: the training data of `crate train` (see cmd_train.c's
 * file comment for the --data convention; STYLE.md §5).
 *
 * A data source is 'fmnist' (Debian's Fashion-MNIST), a directory holding
 * train-images-idx3-ubyte.gz (IDX: train and t10k splits as given), or else
 * a directory of PNG files (crate_pngdir_load), split into DIR/train/ and
 * DIR/test/ when both exist, else the files of DIR sorted by name with the
 * last 10 % (at least one) held out for evaluation.
 *
 * Every function that can fail prints one line on stderr ("crate <cmd>:
 * ...") and returns CLI_FAIL.
 */
#ifndef CRATE_TOOLS_TRAIN_DATA_H
#define CRATE_TOOLS_TRAIN_DATA_H

#include <stddef.h>

#include "crate/config.h"
#include "crate/data.h"

/* What to load: the --data, --resize, --limit and --eval-limit settings. */
typedef struct train_data_source {
  const char *data;         /* "fmnist" or a directory */
  crate_resize_mode resize; /* PNG directories only */
  size_t limit;             /* training images kept (after the split); 0 = all */
  size_t eval_limit;        /* held-out images kept; 0 = all */
} train_data_source;

/* The directory of a data source: CRATE_FMNIST_DIR for "fmnist", else data
 * itself (borrowed). */
const char *train_data_dir(const char *data);

/* Loads the training set and the held-out set of src (IDX: train and t10k;
 * PNG: the split convention above), checks that both have the preset's
 * shape (in_chans x img_size x img_size) and normalises them in place by
 * cfg's pixel mean / std.  cmd names the subcommand in messages.
 * train, test: the two sets (free with crate_dataset_free, which is also
 * safe after a failure).  desc: receives a description of the source for
 * the startup table (desc_n bytes).
 * @return CLI_OK, or CLI_FAIL after a message. */
int train_data_load(const char *cmd, const train_data_source *src, const crate_config *cfg,
                    crate_dataset *train, crate_dataset *test, char *desc, size_t desc_n);

#endif
