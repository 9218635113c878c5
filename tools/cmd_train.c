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
 * cmd_train() reads the flags (parse_args), resolves the settings from
 * them or from the checkpoint and creates data, model, trainer and output
 * files (setup), prints and logs the configuration, and runs the step loop
 * between signal handlers (train: step_loop, then finish).
 *
 * Non-goals: labels (the MAE does not use them), MPI data parallelism.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "crate/data.h"
#include "crate/modelio.h"
#include "crate/safetensors.h"
#include "crate/train.h"
#include "train_data.h"

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

/* ---- signals ---------------------------------------------------------------- */

static volatile sig_atomic_t g_stop = 0;

/* Installed with SA_RESETHAND: a second signal ends the process at once. */
static void on_signal(int sig) {
  g_stop = sig;
}

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

/* ---- JSONL log ------------------------------------------------------------------ */

static void log_record(FILE *f, json_t *rec) {
  if (f) {
    json_dumpf(rec, f, JSON_COMPACT | JSON_REAL_PRECISION(10));
    fputc('\n', f);
    fflush(f);
  }
  json_decref(rec);
}

/* ---- the run --------------------------------------------------------------------- */

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

static int save_checkpoint(run_state *r) {
  char epochs[32], limit[32], warmup[40], threads[32], images[32], elimit[32], eseed[32];
  const char *resize = crate_resize_mode_name(r->set.resize);
  snprintf(epochs, sizeof epochs, "%ld", r->set.epochs);
  snprintf(limit, sizeof limit, "%ld", r->set.limit);
  snprintf(warmup, sizeof warmup, "%.17g", r->set.warmup);
  snprintf(threads, sizeof threads, "%ld", r->threads);
  snprintf(images, sizeof images, "%zu", r->train.count);
  snprintf(elimit, sizeof elimit, "%ld", r->eval_limit);
  snprintf(eseed, sizeof eseed, "%llu", (unsigned long long)r->eval_seed);
  const crate_train_kv kv[] = {
      {"crate.train.epochs", epochs},     {"crate.train.limit", limit},
      {"crate.train.warmup", warmup},     {"crate.train.data", r->set.data},
      {"crate.train.resize", resize},     {"crate.train.threads", threads},
      {"crate.train.images", images},     {"crate.train.blas_core", crate_blas_core()},
      {"crate.train.eval_limit", elimit}, {"crate.train.eval_seed", eseed},
  };
  int st = crate_trainer_save(r->trainer, r->ckpt_path, kv, sizeof kv / sizeof kv[0]);
  return st == CRATE_STATUS_OK ? CLI_OK : cli_fail_status(CMD, st);
}

static int save_model(run_state *r) {
  char step[32], seed[32], source[256];
  snprintf(step, sizeof step, "%llu", (unsigned long long)crate_trainer_step_count(r->trainer));
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->set.seed);
  snprintf(source, sizeof source, "crate train --preset %s (step %s, seed %s)", r->set.preset, step,
           seed);
  const crate_metadata_entry md[] = {
      {"crate.source", source}, {"crate.train.step", step}, {"crate.train.seed", seed}};
  int st = crate_model_save(r->model, r->model_path, md, 3);
  return st == CRATE_STATUS_OK ? CLI_OK : cli_fail_status(CMD, st);
}

static int evaluate(run_state *r, size_t batch, uint64_t eval_seed, bool quiet) {
  crate_eval_result ev;
  const double t0 = cli_now_s();
  int st = crate_eval_masked(r->model, r->test.images, r->test.count, batch, r->set.mask_ratio,
                             eval_seed, &ev);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  const double dt = cli_now_s() - t0;
  const uint64_t step = crate_trainer_step_count(r->trainer);
  if (!quiet)
    fprintf(stderr, "%seval step=%llu images=%zu masked_mse=%.6f masked_psnr=%.3f dB (%.1f s)\n",
            isatty(2) ? "\r\033[K" : "", (unsigned long long)step, ev.images, ev.masked_mse,
            ev.masked_psnr, dt);
  json_t *rec = json_object();
  json_object_set_new(rec, "type", json_string("eval"));
  json_object_set_new(rec, "step", json_integer((json_int_t)step));
  json_object_set_new(rec, "images", json_integer((json_int_t)ev.images));
  json_object_set_new(rec, "mask_ratio", json_real(ev.mask_ratio));
  json_object_set_new(rec, "mask_seed", json_integer((json_int_t)eval_seed));
  json_object_set_new(rec, "masked_mse", json_real(ev.masked_mse));
  json_object_set_new(rec, "masked_psnr", json_real(ev.masked_psnr));
  json_object_set_new(rec, "seconds", json_real(dt));
  log_record(r->log, rec);
  return CLI_OK;
}

static void run_free(run_state *r) {
  crate_batcher_destroy(r->batcher);
  crate_trainer_destroy(r->trainer);
  crate_model_destroy(r->model);
  crate_dataset_free(&r->train);
  crate_dataset_free(&r->test);
  if (r->log)
    fclose(r->log);
}

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

/* Warns when OpenBLAS fell back to pre-AVX kernels on a CPU that has AVX2
 * (it does not know recent Xeons; see src/core/threads.c). */
static void blas_hint(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  static const char *const old_cores[] = {"Prescott",   "Core2",   "Penryn",
                                          "Dunnington", "Nehalem", "Atom"};
  const char *core = crate_blas_core();
  bool old = false;
  for (size_t i = 0; i < sizeof old_cores / sizeof old_cores[0]; i++)
    old = old || strcmp(core, old_cores[i]) == 0;
  __builtin_cpu_init();
  if (old && __builtin_cpu_supports("avx2")) {
    const bool avx512 = __builtin_cpu_supports("avx512f") != 0;
    fprintf(stderr,
            "crate train: note: OpenBLAS chose its %s kernels although this CPU has %s; "
            "export OPENBLAS_CORETYPE=%s for about 2.5x the speed\n",
            core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
  }
#endif
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

/* ---- startup ----------------------------------------------------------------------- */

/* The resolved configuration on stderr. */
static void print_startup(const train_args *a, const run_state *r) {
  const crate_dims *dm = crate_model_dims(r->model);
  const crate_trainer_opts *o = &r->opts;
  const train_settings *set = &r->set;
  fprintf(stderr,
          "crate train: preset %s (%zux%zux%zu, Q=%zu, d=%zu, K=%zu, %zu+%zu layers, %zu "
          "parameters)\n"
          "  data %s: %zu training images (limit %ld), %zu test images for evaluation\n"
          "  batch %ld, %llu steps/epoch, %ld epochs = %llu steps, warmup %llu steps; stop at "
          "step %llu\n"
          "  lr %g -> %g (cosine), AdamW betas (%g, %g) eps %g wd %g, mask ratio %g, clip %g\n"
          "  seed %llu, threads %ld (BLAS core %s), eval mask seed %llu, output %s%s%s\n",
          r->cfg.preset, dm->H, dm->H, dm->C, dm->Q, dm->d, dm->K, dm->Le, dm->Ld,
          crate_model_param_count(r->model), r->data_desc, r->train.count, set->limit,
          r->test.count, set->batch, (unsigned long long)r->per_epoch, set->epochs,
          (unsigned long long)r->total, (unsigned long long)o->sched.warmup_steps,
          (unsigned long long)r->stop_at, o->sched.lr_max, o->sched.lr_min, o->adamw.beta1,
          o->adamw.beta2, o->adamw.eps, o->adamw.weight_decay, o->mask_ratio, o->clip,
          (unsigned long long)o->seed, r->threads, crate_blas_core(),
          (unsigned long long)r->eval_seed, r->out_dir, a->resume ? ", resuming from " : a->init ? ", weights from " : "",
          a->resume ? a->resume : a->init ? a->init : "");
}

/* The "start" (or "resume") record of the log. */
static void log_start(const train_args *a, run_state *r) {
  const crate_trainer_opts *o = &r->opts;
  json_t *rec = json_object();
  json_object_set_new(rec, "type", json_string(a->resume ? "resume" : "start"));
  json_object_set_new(rec, "step", json_integer((json_int_t)r->start_step));
  json_object_set_new(rec, "preset", json_string(r->cfg.preset));
  json_object_set_new(rec, "data", json_string(train_data_dir(r->set.data)));
  json_object_set_new(rec, "resize", json_string(crate_resize_mode_name(r->set.resize)));
  json_object_set_new(rec, "images", json_integer((json_int_t)r->train.count));
  json_object_set_new(rec, "batch", json_integer((json_int_t)o->batch));
  json_object_set_new(rec, "epochs", json_integer((json_int_t)r->set.epochs));
  json_object_set_new(rec, "total_steps", json_integer((json_int_t)r->total));
  json_object_set_new(rec, "warmup_steps", json_integer((json_int_t)o->sched.warmup_steps));
  json_object_set_new(rec, "lr", json_real(o->sched.lr_max));
  json_object_set_new(rec, "min_lr", json_real(o->sched.lr_min));
  json_object_set_new(rec, "wd", json_real(o->adamw.weight_decay));
  json_object_set_new(rec, "mask_ratio", json_real(o->mask_ratio));
  json_object_set_new(rec, "clip", json_real(o->clip));
  json_object_set_new(rec, "seed", json_integer((json_int_t)o->seed));
  json_object_set_new(rec, "threads", json_integer((json_int_t)r->threads));
  json_object_set_new(rec, "blas_core", json_string(crate_blas_core()));
  json_object_set_new(rec, "params", json_integer((json_int_t)crate_model_param_count(r->model)));
  if (a->init)
    json_object_set_new(rec, "init", json_string(a->init));
  log_record(r->log, rec);
}

/* ---- the loop ---------------------------------------------------------------------- */

/* Runs steps start_step .. stop_at until done or a signal arrives, with the
 * progress line, the step records, evaluations and checkpoints.  *s_done:
 * the steps done (counted from 0, across resumes). */
static int step_loop(const train_args *a, run_state *r, bool tty, double t_start,
                     uint64_t *s_done) {
  const size_t batch = r->opts.batch;
  const uint64_t stop_at = r->stop_at;
  double ema = 0.0, t_prev = t_start;
  int rc = CLI_OK;
  for (uint64_t step = r->start_step; step < stop_at && !g_stop; step++) {
    const float *x;
    uint64_t epoch;
    crate_train_metrics mt;
    int s = crate_batcher_get(r->batcher, step, &x, &epoch, NULL);
    if (s == CRATE_STATUS_OK)
      s = crate_trainer_step(r->trainer, x, batch, &mt);
    if (s != CRATE_STATUS_OK) {
      rc = cli_fail_status(CMD, s);
      break;
    }
    const uint64_t done = *s_done = step + 1;
    const double t_now = cli_now_s(), dt = t_now - t_prev;
    t_prev = t_now;
    ema = ema == 0.0 ? dt : 0.9 * ema + 0.1 * dt;
    const double ips = (double)batch / ema, eta = ema * (double)(stop_at - done);
    json_t *rec = json_object();
    json_object_set_new(rec, "type", json_string("step"));
    json_object_set_new(rec, "step", json_integer((json_int_t)done));
    json_object_set_new(rec, "epoch", json_integer((json_int_t)(epoch + 1)));
    json_object_set_new(rec, "loss", json_real(mt.loss));
    json_object_set_new(rec, "lr", json_real(mt.lr));
    json_object_set_new(rec, "grad_norm", json_real(mt.grad_norm));
    json_object_set_new(rec, "images_per_s", json_real(ips));
    json_object_set_new(rec, "eta_s", json_real(eta));
    json_object_set_new(rec, "time_s", json_real(t_now - t_start));
    log_record(r->log, rec);
    if (!a->quiet && (tty || done == r->start_step + 1 || done % (uint64_t)a->print_every == 0 ||
                      done == stop_at)) {
      char etab[32];
      cli_fmt_duration(eta, etab, sizeof etab);
      fprintf(stderr, "%sstep=%llu/%llu epoch=%llu/%ld loss=%.5f lr=%.3e img/s=%.0f eta=%s%s",
              tty ? "\r\033[K" : "", (unsigned long long)done, (unsigned long long)r->total,
              (unsigned long long)(epoch + 1), r->set.epochs, mt.loss, mt.lr, ips, etab,
              tty ? "" : "\n");
      fflush(stderr);
    }
    const bool epoch_end = done % r->per_epoch == 0;
    const bool last = done == stop_at;
    if ((a->eval_every > 0 ? done % (uint64_t)a->eval_every == 0 : epoch_end) || last) {
      if ((rc = evaluate(r, batch, r->eval_seed, a->quiet)) != CLI_OK)
        break;
    }
    if ((a->ckpt_every > 0 ? done % (uint64_t)a->ckpt_every == 0 : epoch_end) || last) {
      if ((rc = save_checkpoint(r)) != CLI_OK)
        break;
    }
  }
  return rc;
}

/* After the loop: on a signal, a checkpoint, the model and a line saying how
 * to resume (exit 1); else the model and a summary line. */
static int finish(const train_args *a, run_state *r, int rc, uint64_t s_done, double t_start) {
  if (rc == CLI_OK && g_stop) {
    /* interrupted: the step in flight finished; keep its result */
    if ((rc = save_checkpoint(r)) == CLI_OK && (rc = save_model(r)) == CLI_OK) {
      json_t *rec = json_object();
      json_object_set_new(rec, "type", json_string("interrupted"));
      json_object_set_new(rec, "step", json_integer((json_int_t)s_done));
      log_record(r->log, rec);
      cli_fail(CMD,
               "interrupted at step %llu; checkpoint written to %s (continue with --resume "
               "%s)",
               (unsigned long long)s_done, r->ckpt_path, r->ckpt_path);
      rc = CLI_FAIL;
    }
  } else if (rc == CLI_OK) {
    rc = save_model(r);
    if (rc == CLI_OK && !a->quiet)
      fprintf(stderr, "crate train: step %llu of %llu in %.1f s; wrote %s and %s\n",
              (unsigned long long)s_done, (unsigned long long)r->total, cli_now_s() - t_start,
              r->ckpt_path, r->model_path);
  }
  return rc;
}

/* The loop between SIGINT / SIGTERM handlers (file comment), then finish. */
static int train(const train_args *a, run_state *r) {
  g_stop = 0;
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  const bool tty = isatty(2) != 0;
  const double t_start = cli_now_s();
  uint64_t s_done = r->start_step;
  int rc = step_loop(a, r, tty, t_start, &s_done);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (tty && !a->quiet)
    fputc('\n', stderr);
  return finish(a, r, rc, s_done, t_start);
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
      print_startup(&a, &r);
      blas_hint();
    }
    log_start(&a, &r);
    if (r.start_step >= r.stop_at) {
      if (!a.quiet)
        fprintf(stderr, "crate train: already at step %llu (stop at %llu); nothing to do\n",
                (unsigned long long)r.start_step, (unsigned long long)r.stop_at);
      rc = save_model(&r);
    } else {
      rc = train(&a, &r);
    }
  }
  run_free(&r);
  return rc;
}
