/* crate.h: umbrella header for libcrate, the C toolkit for white-box
 * transformer autoencoders (CRATE, CRATE-MAE) and structured diffusion.
 *
 * Public headers include only <stddef.h>, <stdint.h> and <stdbool.h>; no
 * backend (BLAS, LAPACK, libpng, Jansson) type ever appears in them.
 */
#ifndef CRATE_CRATE_H
#define CRATE_CRATE_H

#include "crate/defs.h"
#include "crate/error.h"
#include "crate/rng.h"
#include "crate/subspaces.h"
#include "crate/rate.h"
#include "crate/molrg.h"
#include "crate/diffusion.h"
#include "crate/stats.h"
#include "crate/flow.h"
#include "crate/ops.h"
#include "crate/config.h"
#include "crate/model.h"
#include "crate/safetensors.h"
#include "crate/modelio.h"
#include "crate/data.h"
#include "crate/image.h"
#include "crate/metrics.h"
#include "crate/plot.h"
#include "crate/threads.h"
#include "crate/train.h"

#endif
