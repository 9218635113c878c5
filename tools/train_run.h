/* train_run.h: the run-time half of `crate train` (cmd_train.c's file
 * comment describes the command; STYLE.md §5): the types shared by
 * cmd_train.c and train_run.c, and what train_run.c does once setup is
 * done, namely the startup table, the JSONL log, the step loop with its
 * progress line, evaluations, checkpoints and signal handling, and the
 * model file at the end.
 *
 * Private to the two files.  Every function that can fail prints one line
 * on stderr ("crate train: ...") and returns CLI_FAIL (or CLI_USAGE).
 */
#ifndef CRATE_TOOLS_TRAIN_RUN_H
#define CRATE_TOOLS_TRAIN_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "crate/config.h"
#include "crate/data.h"
#include "crate/train.h"

/* Settings a run is made of (flags, or a checkpoint when resuming). */
typedef struct train_settings {
  char preset[CRATE_CONFIG_NAME_MAX];
  char data[1024];          /* "fmnist" or a directory */
  crate_resize_mode resize; /* PNG directories only */
  long epochs, batch, limit;
  double lr, min_lr, wd, warmup, mask_ratio, clip;
  uint64_t seed;
} train_settings;

/* Which flags were given explicitly. */
typedef struct given_flags {
  bool preset, data, resize, epochs, batch, limit, lr, min_lr, wd, warmup, mask_ratio, clip, seed;
} given_flags;

/* The command line: the settings and everything else the flags say. */
typedef struct train_args {
  train_settings set; /* as given, defaults where not */
  given_flags gv;
  long threads, eval_every, eval_limit, ckpt_every, max_steps, print_every;
  uint64_t eval_seed;
  const char *out_dir, *resume, *init; /* NULL when not given */
  bool quiet, force, eval_limit_given, eval_seed_given;
} train_args;

/* One run: the resolved settings, what setup() creates, what the loop
 * needs. */
typedef struct run_state {
  crate_model *model;
  crate_trainer *trainer;
  crate_batcher *batcher;
  crate_dataset train, test;
  FILE *log;
  train_settings set; /* resolved: flags and preset defaults, or the checkpoint's */
  crate_config cfg;
  crate_trainer_opts opts;
  uint64_t start_step;       /* 0, or the checkpoint's step */
  uint64_t per_epoch, total; /* steps */
  uint64_t stop_at;          /* total, or --max-steps when smaller */
  const char *out_dir;       /* -o, or def_out */
  char def_out[CRATE_CONFIG_NAME_MAX + 8];
  char data_desc[4400]; /* the data source, for the startup table */
  char ckpt_path[4096], model_path[4096], log_path[4096];
  long threads;
  long eval_limit;    /* test images evaluated (0 = all) */
  uint64_t eval_seed; /* evaluation mask seed */
} run_state;

/* Frees what setup() created (safe on a partly set up, zeroed r). */
void train_run_free(run_state *r);

/* The resolved configuration on stderr. */
void train_print_startup(const train_args *a, const run_state *r);

/* Warns when OpenBLAS fell back to pre-AVX kernels on a CPU that has AVX2. */
void train_blas_hint(void);

/* Writes the "start" (or "resume") record of the log. */
void train_log_start(const train_args *a, run_state *r);

/* Writes the model file (r->model_path) with its source, step and seed
 * metadata.
 * @return CLI_OK, or CLI_FAIL after a message. */
int train_save_model(run_state *r);

/* Runs steps r->start_step .. r->stop_at between SIGINT / SIGTERM handlers,
 * then finishes: on a signal a checkpoint, the model and a line saying how
 * to resume (CLI_FAIL); else the model and a summary line.
 * @return CLI_OK, or CLI_FAIL after a message. */
int train_run(const train_args *a, run_state *r);

#endif
