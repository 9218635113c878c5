/* cmd_train.c: `crate train`, training a CRATE-MAE on Fashion-MNIST (or a
 * directory of PNGs) with checkpoints and bit-identical resume (MODEL.md
 * §10, §11.4; STYLE.md §5).
 *
 * The loop owns what the library leaves to tools (STYLE.md §1.13): data
 * loading, the epoch loop over crate_batcher, evaluation on the held-out
 * split (crate_eval_masked at a fixed mask seed), progress on stderr, the
 * JSONL log, checkpoints and stopping rules.  Output directory:
 *   checkpoint.safetensors  model + AdamW moments + crate.train.* (resume)
 *   model.safetensors       the model only (written at the end / on Ctrl-C)
 *   train.jsonl             one record per step and per evaluation
 * Every file is written to a temporary file and renamed into place.
 *
 * Resuming: the training settings (seed, batch, epochs, lr, schedule, mask
 * ratio, clip, data and limit) come from the checkpoint; a flag that
 * contradicts them is a usage error.  The run then continues bit-identically
 * (same thread count and BLAS) because masks, data order and initialisation
 * are Philox functions of (seed, step) and (seed, epoch).
 *
 * SIGINT / SIGTERM: the current step finishes, a checkpoint and the model
 * are written, and the program exits 1 with a line saying how to resume.  A
 * second Ctrl-C kills at once (the last checkpoint stays intact: files are
 * only ever replaced by rename).
 *
 * Data (--data): 'fmnist' (Debian's Fashion-MNIST), a directory holding
 * train-images-idx3-ubyte.gz (IDX: train and t10k splits as given), or else
 * a directory of PNG files (crate_pngdir_load: converted to the preset's
 * channels and size by --resize).  PNG split convention: DIR/train/ and
 * DIR/test/ when both exist, else the files of DIR itself, sorted by name,
 * the last 10 % (at least one) held out for evaluation.  --limit applies to
 * the training part after the split, --eval-limit to the held-out part.
 * The loading lives in train_data.c.
 *
 * This file holds the usage text, the flags (parse_args), the resume checks
 * (settings_from_checkpoint) and setup, and cmd_train() itself:
 * cmd_train() reads the flags, resolves the settings from them or from the
 * checkpoint and creates data, model, trainer and output files (setup),
 * then hands over to train_run.c, which prints and logs the configuration
 * and runs the step loop between signal handlers (train_run: step_loop,
 * then finish) with evaluation, checkpoints and the JSONL log.  The types
 * the two files share (train_settings, train_args, run_state) are in
 * train_run.h.
 *
 * Non-goals: labels (the MAE does not use them), MPI data parallelism.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crate/data.h"
#include "crate/modelio.h"
#include "crate/safetensors.h"
#include "crate/train.h"
#include "train_data.h"
#include "train_run.h"

#define CMD "train"

enum {
  OPT_LR = 1400,
  OPT_MIN_LR,
  OPT_WD,
  OPT_WARMUP,
  OPT_MASK_RATIO,
  OPT_CLIP,
  OPT_EVAL_EVERY,
  OPT_EVAL_LIMIT,
  OPT_EVAL_SEED,
  OPT_CKPT_EVERY,
  OPT_RESUME,
  OPT_MAX_STEPS,
  OPT_LIMIT,
  OPT_PRINT_EVERY,
  OPT_FORCE,
  OPT_RESIZE,
  OPT_INIT,
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate train [options]\n\n"
          "Train a CRATE-MAE (masked autoencoder) on Fashion-MNIST or a directory of PNGs:\n"
          "AdamW (0.9, 0.95), no decay on 1-D tensors, per-step linear warmup then cosine\n"
          "(MODEL.md §10).\n\n"
          "Options:\n"
          "  -p, --preset NAME       model preset (fmnist-tiny, fmnist-small) [fmnist-tiny]\n"
          "  -d, --data SRC          'fmnist' (= %s), a directory holding\n"
          "                          {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, or a\n"
          "                          directory of PNG files (see below) [fmnist]\n"
          "      --resize MODE       PNG images to the preset's size: crop (centre square, then\n"
          "                          area-average down / bilinear up), stretch (both axes),\n"
          "                          exact (refuse other sizes) [crop]\n"
          "  -e, --epochs N          epochs [20]\n"
          "  -b, --batch N           images per step; the incomplete last batch is dropped [256]\n"
          "      --lr X              peak learning rate [2e-3 for fmnist-tiny, else 1e-3]\n"
          "      --min-lr X          floor of the cosine [0]\n"
          "      --wd X              AdamW weight decay on >= 2-D tensors [0.05]\n"
          "      --warmup F          warmup as a fraction of all steps, rounded [0.05]\n"
          "      --mask-ratio R      masked fraction of patches, in (0, 1) [0.75]\n"
          "      --clip X            clip the global gradient norm to X; 0 = off [0]\n"
          "  -s, --seed N            seed of init, data order and masks; -1 = random [0]\n"
          "  -t, --threads N         BLAS threads [$CRATE_THREADS or online CPUs]\n"
          "      --eval-every N      evaluate every N steps; 0 = at each epoch end [0]\n"
          "      --eval-limit N      evaluate on the first N test images; 0 = all [0]\n"
          "      --eval-seed N       mask seed of the evaluation [0]\n"
          "                          (both carry over from the checkpoint on --resume)\n"
          "      --ckpt-every N      checkpoint every N steps; 0 = at each epoch end [0]\n"
          "  -o, --out DIR           output directory (checkpoint.safetensors,\n"
          "                          model.safetensors, train.jsonl) [runs/PRESET]\n"
          "      --resume FILE       continue from a checkpoint (settings come from it)\n"
          "      --init FILE         start from the weights of a model file (fine-tuning: fresh\n"
          "                          optimiser, schedule and data order; FILE's preset is used)\n"
          "      --max-steps N       stop once N steps (counted from 0, across resumes) are done;\n"
          "                          the schedule still spans all epochs; 0 = no limit [0]\n"
          "      --limit N           use only the first N training images; 0 = all [0]\n"
          "      --print-every N     progress line every N steps when stderr is not a TTY [50]\n"
          "      --force             overwrite an existing checkpoint in DIR on a fresh run\n"
          "  -q, --quiet             no progress lines\n"
          "  -h, --help              show this help and exit\n\n"
          "PNG directories: every *.png (not dotfiles), sorted by name; alpha dropped, RGB to\n"
          "gray by BT.601 luma (0.299, 0.587, 0.114), gray to RGB by replication; 8- and 16-bit,\n"
          "palette and gray+alpha files read without gamma.  Split: DIR/train/ and DIR/test/\n"
          "when both exist, else all of DIR with the last 10%% of the files (by name, at least\n"
          "one) held out for evaluation; --limit counts training images after the split.\n\n"
          "Ctrl-C finishes the current step, writes a checkpoint and exits 1.\n"
          "Exit status: 0 done, 1 run-time failure or interrupted, 2 usage error.\n\n"
          "Example: crate train --preset fmnist-tiny --epochs 20 -o runs/tiny\n",
          CRATE_FMNIST_DIR);
}

/* ---- the command line ------------------------------------------------------------ */

static const struct option longopts[] = {
    {"preset", required_argument, NULL, 'p'},
    {"data", required_argument, NULL, 'd'},
    {"epochs", required_argument, NULL, 'e'},
    {"batch", required_argument, NULL, 'b'},
    {"lr", required_argument, NULL, OPT_LR},
    {"min-lr", required_argument, NULL, OPT_MIN_LR},
    {"wd", required_argument, NULL, OPT_WD},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"mask-ratio", required_argument, NULL, OPT_MASK_RATIO},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"seed", required_argument, NULL, 's'},
    {"threads", required_argument, NULL, 't'},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"eval-limit", required_argument, NULL, OPT_EVAL_LIMIT},
    {"eval-seed", required_argument, NULL, OPT_EVAL_SEED},
    {"ckpt-every", required_argument, NULL, OPT_CKPT_EVERY},
    {"out", required_argument, NULL, 'o'},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"print-every", required_argument, NULL, OPT_PRINT_EVERY},
    {"force", no_argument, NULL, OPT_FORCE},
    {"resize", required_argument, NULL, OPT_RESIZE},
    {"init", required_argument, NULL, OPT_INIT},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The defaults of every flag (usage() shows them). */
static void args_default(train_args *a) {
  memset(a, 0, sizeof *a);
  train_settings *set = &a->set;
  snprintf(set->preset, sizeof set->preset, "fmnist-tiny");
  snprintf(set->data, sizeof set->data, "fmnist");
  set->resize = CRATE_RESIZE_CENTER_CROP;
  set->epochs = 20;
  set->batch = 256;
  set->lr = -1.0; /* preset default */
  set->min_lr = 0.0;
  set->wd = 0.05;
  set->warmup = 0.05;
  set->mask_ratio = 0.75;
  set->clip = 0.0;
  set->seed = 0;
  a->threads = cli_default_threads();
  a->print_every = 50;
}

/* Parses the flags into a.  Returns -1 to continue, else the exit code
 * (after --help, or a usage error). */
static int parse_args(int argc, char **argv, train_args *a) {
  args_default(a);
  train_settings *set = &a->set;
  given_flags *gv = &a->gv;
  const long big = 1L << 30;
  long v = 0;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":p:d:e:b:s:t:o:qh", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (strlen(optarg) >= sizeof set->preset)
        return cli_usage_error(CMD, "--preset '%s' is not a preset", optarg);
      snprintf(set->preset, sizeof set->preset, "%s", optarg);
      gv->preset = true;
      break;
    case 'd':
      if (!*optarg || strlen(optarg) >= sizeof set->data)
        return cli_usage_error(CMD, "--data needs 'fmnist' or a directory");
      snprintf(set->data, sizeof set->data, "%s", optarg);
      gv->data = true;
      break;
    case 'e':
      if (!cli_parse_long(CMD, "--epochs", optarg, 1, 100000, &set->epochs))
        return CLI_USAGE;
      gv->epochs = true;
      break;
    case 'b':
      if (!cli_parse_long(CMD, "--batch", optarg, 1, 65536, &set->batch))
        return CLI_USAGE;
      gv->batch = true;
      break;
    case OPT_LR:
      if (!cli_parse_double(CMD, "--lr", optarg, 0.0, 10.0, &set->lr))
        return CLI_USAGE;
      gv->lr = true;
      break;
    case OPT_MIN_LR:
      if (!cli_parse_double(CMD, "--min-lr", optarg, 0.0, 10.0, &set->min_lr))
        return CLI_USAGE;
      gv->min_lr = true;
      break;
    case OPT_WD:
      if (!cli_parse_double(CMD, "--wd", optarg, 0.0, 10.0, &set->wd))
        return CLI_USAGE;
      gv->wd = true;
      break;
    case OPT_WARMUP:
      if (!cli_parse_double(CMD, "--warmup", optarg, 0.0, 1.0, &set->warmup))
        return CLI_USAGE;
      gv->warmup = true;
      break;
    case OPT_MASK_RATIO:
      if (!cli_parse_double(CMD, "--mask-ratio", optarg, 0.0, 1.0, &set->mask_ratio))
        return CLI_USAGE;
      if (set->mask_ratio <= 0.0 || set->mask_ratio >= 1.0)
        return cli_usage_error(CMD, "--mask-ratio must be in (0, 1), got %g", set->mask_ratio);
      gv->mask_ratio = true;
      break;
    case OPT_CLIP:
      if (!cli_parse_double(CMD, "--clip", optarg, 0.0, 1e30, &set->clip))
        return CLI_USAGE;
      gv->clip = true;
      break;
    case 's':
      if (!cli_parse_seed(CMD, optarg, &set->seed))
        return CLI_USAGE;
      gv->seed = true;
      break;
    case 't':
      if (!cli_parse_long(CMD, "--threads", optarg, 1, 1024, &a->threads))
        return CLI_USAGE;
      break;
    case OPT_EVAL_EVERY:
      if (!cli_parse_long(CMD, "--eval-every", optarg, 0, big, &a->eval_every))
        return CLI_USAGE;
      break;
    case OPT_EVAL_LIMIT:
      if (!cli_parse_long(CMD, "--eval-limit", optarg, 0, big, &a->eval_limit))
        return CLI_USAGE;
      a->eval_limit_given = true;
      break;
    case OPT_EVAL_SEED:
      if (!cli_parse_long(CMD, "--eval-seed", optarg, 0, big, &v))
        return CLI_USAGE;
      a->eval_seed = (uint64_t)v;
      a->eval_seed_given = true;
      break;
    case OPT_CKPT_EVERY:
      if (!cli_parse_long(CMD, "--ckpt-every", optarg, 0, big, &a->ckpt_every))
        return CLI_USAGE;
      break;
    case 'o':
      if (!*optarg)
        return cli_usage_error(CMD, "-o needs a directory");
      a->out_dir = optarg;
      break;
    case OPT_RESUME: a->resume = optarg; break;
    case OPT_INIT:
      if (!*optarg)
        return cli_usage_error(CMD, "--init needs a model file");
      a->init = optarg;
      break;
    case OPT_MAX_STEPS:
      if (!cli_parse_long(CMD, "--max-steps", optarg, 0, big, &a->max_steps))
        return CLI_USAGE;
      break;
    case OPT_LIMIT:
      if (!cli_parse_long(CMD, "--limit", optarg, 0, big, &set->limit))
        return CLI_USAGE;
      gv->limit = true;
      break;
    case OPT_PRINT_EVERY:
      if (!cli_parse_long(CMD, "--print-every", optarg, 1, big, &a->print_every))
        return CLI_USAGE;
      break;
    case OPT_FORCE: a->force = true; break;
    case OPT_RESIZE:
      if (crate_resize_mode_parse(optarg, &set->resize) != CRATE_STATUS_OK)
        return cli_usage_error(CMD, "--resize must be crop, stretch or exact, got '%s'", optarg);
      gv->resize = true;
      break;
    case 'q': a->quiet = true; break;
    case 'h': usage(stdout); return CLI_OK;
    case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (a->init && a->resume)
    return cli_usage_error(CMD, "--init and --resume exclude each other (a checkpoint holds "
                                "its own weights)");
  return -1;
}

/* ---- setup ----------------------------------------------------------------------- */

/* Compares an explicitly given flag with the checkpoint's value. */
static bool same_or_usage(bool given, const char *flag, double want, double got) {
  if (!given || want == got)
    return true;
  cli_usage_error(CMD,
                  "%s %g contradicts the checkpoint (%g); training settings come from the "
                  "checkpoint when resuming, so drop the flag",
                  flag, want, got);
  return false;
}

/* --resume: the model, the trainer options and the step from the checkpoint
 * (r->model, r->opts, r->start_step, r->cfg); the training settings from its
 * metadata (r->set), where a contradicting flag is a usage error; the
 * evaluation settings carry over unless given again. */
static int settings_from_checkpoint(const train_args *a, run_state *r) {
  const char *resume = a->resume;
  const train_settings *set = &a->set;
  const given_flags *gv = &a->gv;
  crate_st *st = NULL;
  int s = crate_st_open(resume, &st);
  if (s != CRATE_STATUS_OK)
    return cli_fail_status(CMD, s);
  s = crate_train_read_opts(st, &r->opts, &r->start_step);
  if (s == CRATE_STATUS_OK)
    s = crate_model_load_st(st, NULL, &r->model);
  if (s != CRATE_STATUS_OK) {
    crate_st_close(st);
    return cli_fail_status(CMD, s);
  }
  r->cfg = *crate_model_config(r->model);
  const char *ep = crate_st_metadata(st, "crate.train.epochs");
  const char *li = crate_st_metadata(st, "crate.train.limit");
  const char *wu = crate_st_metadata(st, "crate.train.warmup");
  const char *da = crate_st_metadata(st, "crate.train.data");
  const char *rz = crate_st_metadata(st, "crate.train.resize"); /* absent before PNG data */
  if (!ep || !li || !wu || !da) {
    crate_st_close(st);
    return cli_fail(CMD,
                    "%s: not a checkpoint written by crate train (crate.train.epochs, "
                    ".limit, .warmup or .data missing)",
                    resume);
  }
  train_settings ck = *set;
  snprintf(ck.preset, sizeof ck.preset, "%s", r->cfg.preset);
  snprintf(ck.data, sizeof ck.data, "%s", da);
  ck.resize = CRATE_RESIZE_CENTER_CROP;
  if (rz && crate_resize_mode_parse(rz, &ck.resize) != CRATE_STATUS_OK) {
    crate_st_close(st);
    return cli_fail(CMD, "%s: unknown crate.train.resize '%s'", resume, rz);
  }
  const crate_trainer_opts *o = &r->opts;
  ck.epochs = strtol(ep, NULL, 10);
  ck.limit = strtol(li, NULL, 10);
  ck.warmup = strtod(wu, NULL);
  ck.batch = (long)o->batch;
  ck.lr = o->sched.lr_max;
  ck.min_lr = o->sched.lr_min;
  ck.wd = o->adamw.weight_decay;
  ck.mask_ratio = o->mask_ratio;
  ck.clip = o->clip;
  ck.seed = o->seed;
  /* evaluation settings carry over unless given again */
  const char *el = crate_st_metadata(st, "crate.train.eval_limit");
  const char *es = crate_st_metadata(st, "crate.train.eval_seed");
  if (el && !a->eval_limit_given)
    r->eval_limit = strtol(el, NULL, 10);
  if (es && !a->eval_seed_given)
    r->eval_seed = (uint64_t)strtoull(es, NULL, 10);
  crate_st_close(st);
  if (gv->preset && strcmp(set->preset, ck.preset) != 0)
    return cli_usage_error(CMD, "--preset %s contradicts the checkpoint (%s); drop the flag",
                           set->preset, ck.preset);
  if (gv->data && strcmp(set->data, ck.data) != 0)
    return cli_usage_error(CMD, "--data %s contradicts the checkpoint (%s); drop the flag",
                           set->data, ck.data);
  if (gv->resize && set->resize != ck.resize)
    return cli_usage_error(CMD, "--resize %s contradicts the checkpoint (%s); drop the flag",
                           crate_resize_mode_name(set->resize), crate_resize_mode_name(ck.resize));
  if (!same_or_usage(gv->epochs, "--epochs", (double)set->epochs, (double)ck.epochs) ||
      !same_or_usage(gv->batch, "--batch", (double)set->batch, (double)ck.batch) ||
      !same_or_usage(gv->limit, "--limit", (double)set->limit, (double)ck.limit) ||
      !same_or_usage(gv->lr, "--lr", set->lr, ck.lr) ||
      !same_or_usage(gv->min_lr, "--min-lr", set->min_lr, ck.min_lr) ||
      !same_or_usage(gv->wd, "--wd", set->wd, ck.wd) ||
      !same_or_usage(gv->warmup, "--warmup", set->warmup, ck.warmup) ||
      !same_or_usage(gv->mask_ratio, "--mask-ratio", set->mask_ratio, ck.mask_ratio) ||
      !same_or_usage(gv->clip, "--clip", set->clip, ck.clip) ||
      !same_or_usage(gv->seed, "--seed", (double)set->seed, (double)ck.seed))
    return CLI_USAGE;
  r->set = ck;
  return CLI_OK;
}

/* The data sets, the schedule's length and, on a fresh run, the trainer
 * options from the settings. */
static int setup_data(const train_args *a, run_state *r) {
  const train_settings *set = &r->set;
  const train_data_source src = {set->data, set->resize, (size_t)set->limit, (size_t)r->eval_limit};
  int rc =
      train_data_load(CMD, &src, &r->cfg, &r->train, &r->test, r->data_desc, sizeof r->data_desc);
  if (rc != CLI_OK)
    return rc;
  if ((size_t)set->batch > r->train.count)
    return cli_usage_error(CMD, "--batch %ld exceeds the %zu training images", set->batch,
                           r->train.count);
  r->per_epoch = r->train.count / (size_t)set->batch;
  r->total = r->per_epoch * (uint64_t)set->epochs;
  crate_trainer_opts *o = &r->opts;
  if (a->resume && r->total != o->sched.total_steps)
    return cli_fail(CMD,
                    "%s: the checkpoint's schedule has %llu steps but %ld epochs of %zu "
                    "images in batches of %ld give %llu (did the data change?)",
                    a->resume, (unsigned long long)o->sched.total_steps, set->epochs,
                    r->train.count, set->batch, (unsigned long long)r->total);
  if (!a->resume) {
    crate_trainer_opts_default(o);
    o->seed = set->seed;
    o->batch = (size_t)set->batch;
    o->mask_ratio = set->mask_ratio;
    o->clip = set->clip;
    o->sched.lr_max = set->lr;
    o->sched.lr_min = set->min_lr;
    o->sched.total_steps = r->total;
    o->sched.warmup_steps = crate_warmup_steps(set->warmup, r->total);
    o->adamw.weight_decay = set->wd;
    if (set->min_lr > set->lr)
      return cli_usage_error(CMD, "--min-lr %g exceeds --lr %g", set->min_lr, set->lr);
  }
  const uint64_t max_steps = (uint64_t)a->max_steps;
  r->stop_at = max_steps > 0 && max_steps < r->total ? max_steps : r->total;
  return CLI_OK;
}

/* The model (fresh or loaded), trainer, batcher and thread count; the
 * output directory, its file names and the opened log. */
static int setup_trainer(const train_args *a, run_state *r) {
  int s = CRATE_STATUS_OK;
  if (!a->resume && !r->model) {
    s = crate_model_create(&r->model, &r->cfg);
    if (s == CRATE_STATUS_OK)
      s = crate_model_init(r->model, r->set.seed);
  }
  if (s == CRATE_STATUS_OK)
    s = crate_trainer_create(&r->trainer, r->model, &r->opts);
  if (s == CRATE_STATUS_OK && a->resume) {
    crate_st *st = NULL;
    s = crate_st_open(a->resume, &st);
    if (s == CRATE_STATUS_OK)
      s = crate_trainer_load_state(r->trainer, st);
    crate_st_close(st);
  }
  if (s == CRATE_STATUS_OK)
    s = crate_batcher_create(&r->batcher, &r->train, r->opts.batch, r->opts.seed);
  if (s == CRATE_STATUS_OK)
    s = crate_set_threads((int)r->threads);
  if (s != CRATE_STATUS_OK)
    return cli_fail_status(CMD, s);
  if (cli_make_dirs(r->out_dir) != 0)
    return cli_fail(CMD, "-o %s: cannot create the directory: %s", r->out_dir, strerror(errno));
  snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/checkpoint.safetensors", r->out_dir);
  snprintf(r->model_path, sizeof r->model_path, "%s/model.safetensors", r->out_dir);
  snprintf(r->log_path, sizeof r->log_path, "%s/train.jsonl", r->out_dir);
  if (!a->resume && !a->force && cli_file_exists(r->ckpt_path))
    return cli_fail(CMD,
                    "%s already exists; continue it with --resume %s, or pass --force to "
                    "start over",
                    r->ckpt_path, r->ckpt_path);
  r->log = fopen(r->log_path, a->resume ? "a" : "w");
  if (!r->log)
    return cli_fail(CMD, "%s: cannot open for writing: %s", r->log_path, strerror(errno));
  return CLI_OK;
}

/* Everything before the first step: settings (flags or checkpoint), data,
 * model, trainer and output files. */
static int setup(const train_args *a, run_state *r) {
  r->threads = a->threads;
  r->eval_limit = a->eval_limit;
  r->eval_seed = a->eval_seed;
  if (a->resume) {
    int rc = settings_from_checkpoint(a, r);
    if (rc != CLI_OK)
      return rc;
  } else {
    if (crate_config_preset(a->set.preset, &r->cfg) != CRATE_STATUS_OK)
      return cli_usage_error(CMD, "unknown preset '%s'", a->set.preset);
    r->set = a->set;
    if (a->init) {
      /* fine-tuning: the model file's weights and configuration */
      int s = crate_model_load(a->init, &r->model);
      if (s != CRATE_STATUS_OK)
        return cli_fail_status(CMD, s);
      const crate_config *mc = crate_model_config(r->model);
      if (a->gv.preset && strcmp(mc->preset, a->set.preset) != 0)
        return cli_usage_error(CMD, "--init %s holds a %s model but --preset says %s", a->init,
                               mc->preset, a->set.preset);
      r->cfg = *mc;
      snprintf(r->set.preset, sizeof r->set.preset, "%s", mc->preset);
    }
    if (r->set.lr < 0.0)
      r->set.lr = strcmp(r->set.preset, "fmnist-tiny") == 0 ? 2e-3 : 1e-3;
  }
  if (a->out_dir) {
    r->out_dir = a->out_dir;
  } else {
    snprintf(r->def_out, sizeof r->def_out, "runs/%s", r->set.preset);
    r->out_dir = r->def_out;
  }
  int rc = setup_data(a, r);
  if (rc == CLI_OK)
    rc = setup_trainer(a, r);
  return rc;
}

/* ---- the command ------------------------------------------------------------------- */

int cmd_train(int argc, char **argv) {
  train_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0)
    return rc;
  run_state r;
  memset(&r, 0, sizeof r);
  rc = setup(&a, &r);
  if (rc == CLI_OK) {
    if (!a.quiet) {
      train_print_startup(&a, &r);
      train_blas_hint();
    }
    train_log_start(&a, &r);
    if (r.start_step >= r.stop_at) {
      if (!a.quiet)
        fprintf(stderr, "crate train: already at step %llu (stop at %llu); nothing to do\n",
                (unsigned long long)r.start_step, (unsigned long long)r.stop_at);
      rc = train_save_model(&r);
    } else {
      rc = train_run(&a, &r);
    }
  }
  train_run_free(&r);
  return rc;
}
