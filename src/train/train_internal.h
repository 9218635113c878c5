/* train_internal.h: helpers shared by the files of src/train/ (never
 * installed). */
#ifndef CRATE_TRAIN_INTERNAL_H
#define CRATE_TRAIN_INTERNAL_H

#include "crate/train.h"

/* The trainer's trainable tensor-table entries (offsets, shapes, decay
 * flags), in table order.  *tab is borrowed.  @return their number. */
size_t crate__trainer_table(const crate_trainer *t, const crate_tensor_desc **tab);

#endif
