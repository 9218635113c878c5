/* cmd_bench.c: `crate bench`, the performance figures of issue 6 measured
 * in one run: training throughput (forward + backward + AdamW, the
 * crate_trainer_step of src/train/), the achieved GFLOP/s from the exact
 * per-preset FLOP count (MODEL.md §9, crate_config_flops), the machine's own
 * SGEMM ceiling measured in the same process (crate_blas_sgemm_rate), peak
 * RSS (getrusage), and the single-image latency of the reconstruct path
 * (crate_model_infer).  --forward-only times the training forward alone (the
 * cost-versus-image-size figure of the 224-pixel presets).
 *
 * Order inside the run, so that each figure sees only its own memory:
 * model + trainer, warm-up steps, timed steps, inference, then peak RSS is
 * read, and only then the SGEMM ceiling allocates its operands.
 *
 * Images are synthetic (uniform in [0, 1), Philox NOISE stream of the seed);
 * the work per step does not depend on pixel values.  Masks are the
 * trainer's own (seed, step).  Nothing here is a test: the figures go to
 * benchmarks/README.md (benchmarks/compare.py runs this side by side with
 * the PyTorch reference).
 *
 * --plot draws figures from the JSON lines of earlier runs instead
 * (bench_plot.c).
 *
 * Non-goals: data loading (covered by `crate train`), MPI.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "bench.h"
#include "cli.h"
#include "crate/modelio.h"
#include "crate/threads.h"
#include "crate/train.h"

#define CMD "bench"

enum {
  OPT_WARMUP = 1500,
  OPT_INFER_REPS,
  OPT_IMG_SIZE,
  OPT_FORWARD_ONLY,
  OPT_NO_CEILING,
  OPT_SAVE_MODEL,
  OPT_JSON,
  OPT_PLOT,
  OPT_SWEEP,
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate bench [options]\n\n"
          "Measure training throughput (forward + backward + AdamW), achieved GFLOP/s\n"
          "(MODEL.md §9 FLOP count), this machine's SGEMM ceiling (same run), peak RSS and\n"
          "the single-image latency of the reconstruct path.  Synthetic images.\n\n"
          "Options:\n"
          "  -p, --preset NAME       model preset (fmnist-tiny, fmnist-small, mae-tiny,\n"
          "                          mae-small, mae-base, mae-large) [fmnist-tiny]\n"
          "  -b, --batch N           images per training step [64]\n"
          "  -t, --threads N         worker threads (OpenBLAS and OpenMP)\n"
          "                          [$CRATE_THREADS or online CPUs]\n"
          "  -n, --steps N           timed training steps [20]\n"
          "      --warmup N          untimed steps first [3]\n"
          "      --infer-reps N      timed single-image inferences; 0 = skip [50]\n"
          "      --img-size H        override the preset's image side (a multiple of its\n"
          "                          patch size), for cost-versus-size figures\n"
          "      --forward-only      time the training forward alone (no backward, no AdamW)\n"
          "      --no-ceiling        skip the SGEMM ceiling measurement\n"
          "      --save-model FILE   also write the randomly initialised model to FILE\n"
          "  -s, --seed N            seed of init, images and masks [0]\n"
          "      --json              one JSON object on stdout instead of the table\n"
          "  -v, --verbose           say which BLAS kernels run (see below)\n"
          "Plotting (no measurement):\n"
          "      --plot FILE         draw the JSON lines of FILE (crate bench --json output,\n"
          "                          benchmarks/scaling.py and compare.py records)\n"
          "      --sweep NAME        threads (img/s vs threads), batch (img/s vs batch) or\n"
          "                          size (forward GFLOP/s vs tokens) [threads]\n"
          "  -o, --out FILE          the PNG to write [bench_<sweep>.png]\n"
          "  -h, --help              show this help and exit\n\n"
          "BLAS kernels: Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and falls\n"
          "back to its SSE3 'Prescott' kernels.  Unless OPENBLAS_CORETYPE or\n"
          "CRATE_NO_CORETYPE is set, crate then sets OPENBLAS_CORETYPE=SkylakeX (AVX-512 CPUs)\n"
          "or Haswell (AVX2) and restarts itself once; -v reports it.  The table prints\n"
          "the core in use.\n\n"
          "Threads: the model path belongs to OpenMP (CRATE_THREAD_OWNER=openmp, the default;\n"
          "BLAS calls inside run single-threaded) or to OpenBLAS (CRATE_THREAD_OWNER=blas).\n"
          "Unless OMP_WAIT_POLICY is set, crate sets it to passive (same restart): spinning\n"
          "OpenMP threads collapsed throughput on all cores of a VM and on shared machines.\n\n"
          "Exit status: 0 done, 1 run-time failure, 2 usage error.\n\n"
          "Example: crate bench --preset fmnist-tiny --batch 64 --threads 1 --json\n");
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *x, size_t n) {
  if (n == 0)
    return NAN;
  qsort(x, n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static double peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return NAN;
  return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

typedef struct bench_opts {
  char preset[CRATE_CONFIG_NAME_MAX];
  long batch, threads, steps, warmup, infer_reps, img_size;
  uint64_t seed;
  bool forward_only, ceiling, json, verbose;
  const char *save_model;
  const char *plot, *sweep, *out; /* --plot mode */
} bench_opts;

typedef struct bench_result {
  double step_med_s, step_min_s; /* per training step (or forward) */
  double img_per_s, gflops;      /* B / median step; FLOPs / median step */
  double flops_per_image;        /* train (3 x forward) or forward */
  double infer_med_ms, infer_min_ms;
  double rss_mb;
  double ceil_model, ceil_large, ceiling; /* GFLOP/s */
  size_t gemm_m, large;                   /* sizes of the two ceiling GEMMs */
  double last_loss;
} bench_result;

/* Synthetic images in [0, 1), then the preset's input normalisation. */
static void fill_images(float *x, const crate_config *cfg, size_t count, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  const size_t C = cfg->in_chans, hw = cfg->img_size * cfg->img_size;
  for (size_t i = 0; i < count; i++)
    for (size_t c = 0; c < C; c++)
      for (size_t j = 0; j < hw; j++) {
        const double v = crate_rng_uniform(&r);
        x[(i * C + c) * hw + j] = (float)((v - cfg->pixel_mean[c]) / cfg->pixel_std[c]);
      }
}

static int run_train(const bench_opts *o, crate_model *m, const float *imgs, bench_result *res) {
  const size_t B = (size_t)o->batch, total = (size_t)(o->warmup + o->steps);
  double *t = calloc(total, sizeof *t);
  if (!t)
    return cli_fail(CMD, "out of memory");
  int st = CRATE_STATUS_OK;
  if (o->forward_only) {
    const crate_dims *dm = crate_model_dims(m);
    uint8_t *mask = malloc(B * dm->n);
    size_t *ids = malloc(B * dm->n * sizeof *ids);
    double *noise = malloc(B * dm->n * sizeof *noise);
    st = (mask && ids && noise) ? crate_model_reserve(m, B) : CRATE_STATUS_ENOMEM;
    for (size_t s = 0; s < total && st == CRATE_STATUS_OK; s++) {
      st = crate_mask_random_batch(mask, ids, noise, o->seed, (uint32_t)s, 0,
                                   crate_model_config(m)->mask_ratio, B, dm->n);
      const double t0 = cli_now_s();
      if (st == CRATE_STATUS_OK)
        st = crate_model_forward(m, imgs, mask, B, &res->last_loss);
      t[s] = cli_now_s() - t0;
    }
    free(mask);
    free(ids);
    free(noise);
  } else {
    crate_trainer_opts to;
    crate_trainer_opts_default(&to);
    to.seed = o->seed;
    to.batch = B;
    to.mask_ratio = crate_model_config(m)->mask_ratio;
    to.sched.total_steps = total;
    to.sched.warmup_steps = 0;
    crate_trainer *tr = NULL;
    st = crate_trainer_create(&tr, m, &to);
    for (size_t s = 0; s < total && st == CRATE_STATUS_OK; s++) {
      crate_train_metrics mt;
      const double t0 = cli_now_s();
      st = crate_trainer_step(tr, imgs, B, &mt);
      t[s] = cli_now_s() - t0;
      res->last_loss = mt.loss;
    }
    crate_trainer_destroy(tr);
  }
  if (st != CRATE_STATUS_OK) {
    free(t);
    return cli_fail_status(CMD, st);
  }
  res->step_min_s = INFINITY;
  for (size_t s = (size_t)o->warmup; s < total; s++)
    res->step_min_s = fmin(res->step_min_s, t[s]);
  res->step_med_s = bench_median(t + o->warmup, (size_t)o->steps);
  res->img_per_s = (double)B / res->step_med_s;
  res->gflops = res->flops_per_image * (double)B / res->step_med_s * 1e-9;
  free(t);
  return CLI_OK;
}

static int run_infer(const bench_opts *o, crate_model *m, const float *img, bench_result *res) {
  const crate_dims *dm = crate_model_dims(m);
  const size_t reps = (size_t)o->infer_reps, warm = 3;
  float *pred = malloc(dm->n * dm->P * sizeof *pred);
  uint8_t *mask = malloc(dm->n);
  size_t *ids = malloc(dm->n * sizeof *ids);
  double *noise = malloc(dm->n * sizeof *noise), *t = calloc(reps, sizeof *t);
  int st = (pred && mask && ids && noise && t) ? CRATE_STATUS_OK : CRATE_STATUS_ENOMEM;
  if (st == CRATE_STATUS_OK)
    st = crate_mask_random_batch(mask, ids, noise, o->seed, CRATE_EVAL_MASK_STEP, 0,
                                 crate_model_config(m)->mask_ratio, 1, dm->n);
  for (size_t r = 0; r < warm + reps && st == CRATE_STATUS_OK; r++) {
    const double t0 = cli_now_s();
    st = crate_model_infer(m, pred, img, mask, 1, NULL);
    if (r >= warm)
      t[r - warm] = cli_now_s() - t0;
  }
  if (st == CRATE_STATUS_OK) {
    res->infer_min_ms = INFINITY;
    for (size_t r = 0; r < reps; r++)
      res->infer_min_ms = fmin(res->infer_min_ms, 1e3 * t[r]);
    res->infer_med_ms = 1e3 * bench_median(t, reps);
  }
  free(pred);
  free(mask);
  free(ids);
  free(noise);
  free(t);
  return st == CRATE_STATUS_OK ? CLI_OK : cli_fail_status(CMD, st);
}

static const char *owner_name(void) {
  return crate_get_thread_owner() == CRATE_THREADS_OPENMP ? "openmp" : "blas";
}

static void print_json(const bench_opts *o, const crate_config *cfg, const crate_dims *dm,
                       const bench_result *r) {
  json_t *j = json_object();
  json_object_set_new(j, "preset", json_string(o->preset));
  json_object_set_new(j, "batch", json_integer(o->batch));
  json_object_set_new(j, "threads", json_integer(o->threads));
  json_object_set_new(j, "mode", json_string(o->forward_only ? "forward" : "train"));
  json_object_set_new(j, "img_size", json_integer((json_int_t)cfg->img_size));
  json_object_set_new(j, "tokens", json_integer((json_int_t)dm->N));
  json_object_set_new(j, "blas_core", json_string(crate_blas_core()));
  json_object_set_new(j, "openmp", json_boolean(crate_have_openmp()));
  json_object_set_new(j, "thread_owner", json_string(owner_name()));
  json_object_set_new(j, "omp_wait_policy",
                      json_string(getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : ""));
  json_object_set_new(j, "steps", json_integer(o->steps));
  json_object_set_new(j, "warmup", json_integer(o->warmup));
  json_object_set_new(j, "step_ms_median", cli_json_num(1e3 * r->step_med_s));
  json_object_set_new(j, "step_ms_min", cli_json_num(1e3 * r->step_min_s));
  json_object_set_new(j, o->forward_only ? "forward_img_per_s" : "train_img_per_s",
                      cli_json_num(r->img_per_s));
  json_object_set_new(j, "flops_per_image", cli_json_num(r->flops_per_image));
  json_object_set_new(j, "gflops", cli_json_num(r->gflops));
  json_object_set_new(j, "sgemm_ceiling_gflops", cli_json_num(r->ceiling));
  json_object_set_new(j, "sgemm_model_gflops", cli_json_num(r->ceil_model));
  json_object_set_new(j, "sgemm_large_gflops", cli_json_num(r->ceil_large));
  json_object_set_new(j, "ceiling_fraction", cli_json_num(r->gflops / r->ceiling));
  json_object_set_new(j, "peak_rss_mb", cli_json_num(r->rss_mb));
  json_object_set_new(j, "reconstruct_ms", cli_json_num(r->infer_med_ms));
  json_object_set_new(j, "reconstruct_ms_min", cli_json_num(r->infer_min_ms));
  json_object_set_new(j, "loss", cli_json_num(r->last_loss));
  char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
  if (s)
    printf("%s\n", s);
  free(s);
  json_decref(j);
}

static void print_table(const bench_opts *o, const crate_config *cfg, const crate_dims *dm,
                        const bench_result *r) {
  printf("crate bench: %s (%zux%zu, %zu tokens), batch %ld, threads %ld, BLAS core %s, "
         "OpenMP %s, model threads owned by %s\n",
         o->preset, cfg->img_size, cfg->img_size, dm->N, o->batch, o->threads, crate_blas_core(),
         crate_have_openmp() ? "yes" : "no", owner_name());
  const char *what = o->forward_only ? "forward" : "train";
  printf("  %-28s %12.1f   median step %.2f ms (min %.2f) over %ld steps after %ld warm-up\n",
         o->forward_only ? "forward images/s" : "train images/s", r->img_per_s,
         1e3 * r->step_med_s, 1e3 * r->step_min_s, o->steps, o->warmup);
  printf("  %-28s %12.1f   %.1f MFLOP per image (%s, MODEL.md §9)\n", "achieved GFLOP/s",
         r->gflops, 1e-6 * r->flops_per_image, what);
  if (o->ceiling) {
    printf("  %-28s %12.1f   max of %zux%zux%zu: %.1f, %zu^3: %.1f\n", "SGEMM ceiling GFLOP/s",
           r->ceiling, r->gemm_m, dm->d, dm->d, r->ceil_model, r->large, r->ceil_large);
    printf("  %-28s %12.3f\n", "achieved / ceiling", r->gflops / r->ceiling);
  }
  printf("  %-28s %12.1f   getrusage ru_maxrss before the ceiling GEMMs\n", "peak RSS MB",
         r->rss_mb);
  if (o->infer_reps > 0)
    printf("  %-28s %12.3f   median of %ld (min %.3f), crate_model_infer, 1 image\n",
           "reconstruct ms", r->infer_med_ms, o->infer_reps, r->infer_min_ms);
}

/* Parses the flags into o->  Returns -1 to continue, else the exit code
 * (after --help, or a usage error). */
static int parse_args(int argc, char **argv, bench_opts *o) {
  static const struct option longopts[] = {
      {"preset", required_argument, NULL, 'p'},
      {"batch", required_argument, NULL, 'b'},
      {"threads", required_argument, NULL, 't'},
      {"steps", required_argument, NULL, 'n'},
      {"warmup", required_argument, NULL, OPT_WARMUP},
      {"infer-reps", required_argument, NULL, OPT_INFER_REPS},
      {"img-size", required_argument, NULL, OPT_IMG_SIZE},
      {"forward-only", no_argument, NULL, OPT_FORWARD_ONLY},
      {"no-ceiling", no_argument, NULL, OPT_NO_CEILING},
      {"save-model", required_argument, NULL, OPT_SAVE_MODEL},
      {"seed", required_argument, NULL, 's'},
      {"json", no_argument, NULL, OPT_JSON},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"sweep", required_argument, NULL, OPT_SWEEP},
      {"out", required_argument, NULL, 'o'},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  snprintf(o->preset, sizeof o->preset, "fmnist-tiny");
  o->batch = 64;
  o->threads = cli_default_threads();
  o->steps = 20;
  o->warmup = 3;
  o->infer_reps = 50;
  o->ceiling = true;
  o->sweep = "threads";
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":p:b:t:n:s:o:vh", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      if (strlen(optarg) >= sizeof o->preset)
        return cli_usage_error(CMD, "--preset '%s' is not a preset", optarg);
      snprintf(o->preset, sizeof o->preset, "%s", optarg);
      break;
    case 'b':
      if (!cli_parse_long(CMD, "--batch", optarg, 1, 65536, &o->batch))
        return CLI_USAGE;
      break;
    case 't':
      if (!cli_parse_long(CMD, "--threads", optarg, 1, 1024, &o->threads))
        return CLI_USAGE;
      break;
    case 'n':
      if (!cli_parse_long(CMD, "--steps", optarg, 1, 1000000, &o->steps))
        return CLI_USAGE;
      break;
    case OPT_WARMUP:
      if (!cli_parse_long(CMD, "--warmup", optarg, 0, 1000000, &o->warmup))
        return CLI_USAGE;
      break;
    case OPT_INFER_REPS:
      if (!cli_parse_long(CMD, "--infer-reps", optarg, 0, 1000000, &o->infer_reps))
        return CLI_USAGE;
      break;
    case OPT_IMG_SIZE:
      if (!cli_parse_long(CMD, "--img-size", optarg, 1, 4096, &o->img_size))
        return CLI_USAGE;
      break;
    case OPT_FORWARD_ONLY: o->forward_only = true; break;
    case OPT_NO_CEILING: o->ceiling = false; break;
    case OPT_SAVE_MODEL:
      if (!*optarg)
        return cli_usage_error(CMD, "--save-model needs a file name");
      o->save_model = optarg;
      break;
    case 's':
      if (!cli_parse_seed(CMD, optarg, &o->seed))
        return CLI_USAGE;
      break;
    case OPT_JSON: o->json = true; break;
    case OPT_PLOT: o->plot = optarg; break;
    case OPT_SWEEP: o->sweep = optarg; break;
    case 'o': o->out = optarg; break;
    case 'v': o->verbose = true; break;
    case 'h': usage(stdout); return CLI_OK;
    case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  return -1;
}

int cmd_bench(int argc, char **argv) {
  bench_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0)
    return rc;
  if (o.plot) {
    char def[64];
    snprintf(def, sizeof def, "bench_%s.png", o.sweep);
    return bench_plot(o.plot, o.sweep, o.out ? o.out : def);
  }
  if ((uint64_t)(o.warmup + o.steps) > (uint64_t)UINT32_MAX)
    return cli_usage_error(CMD, "--warmup + --steps exceed the mask step counter");
  crate_config cfg;
  if (crate_config_preset(o.preset, &cfg) != CRATE_STATUS_OK)
    return cli_usage_error(CMD, "unknown preset '%s'", o.preset);
  if (o.img_size > 0) {
    cfg.img_size = (size_t)o.img_size;
    int s = crate_config_validate(&cfg);
    if (s != CRATE_STATUS_OK)
      return cli_usage_error(CMD, "--img-size %ld: %s", o.img_size, crate_error_message());
  }
  crate_flops fl;
  crate_dims dm;
  if (crate_config_flops(&cfg, &fl) != CRATE_STATUS_OK ||
      crate_config_dims(&cfg, &dm) != CRATE_STATUS_OK)
    return cli_fail_status(CMD, CRATE_STATUS_EINVAL);
  int st = crate_set_threads((int)o.threads);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(CMD, st);
  if (o.verbose)
    fprintf(stderr, "crate bench: BLAS core %s, OPENBLAS_CORETYPE=%s, OpenMP %s, threads %ld\n",
            crate_blas_core(), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "",
            crate_have_openmp() ? "yes" : "no", o.threads);

  bench_result res;
  memset(&res, 0, sizeof res);
  res.flops_per_image = o.forward_only ? fl.forward : fl.train;
  res.ceil_model = res.ceil_large = res.ceiling = NAN;
  res.infer_med_ms = res.infer_min_ms = NAN;
  crate_model *m = NULL;
  const size_t per = cfg.in_chans * cfg.img_size * cfg.img_size;
  float *imgs = malloc((size_t)o.batch * per * sizeof *imgs);
  if (!imgs)
    return cli_fail(CMD, "out of memory for %ld images", o.batch);
  fill_images(imgs, &cfg, (size_t)o.batch, o.seed);
  rc = CLI_OK;
  st = crate_model_create(&m, &cfg);
  if (st == CRATE_STATUS_OK)
    st = crate_model_init(m, o.seed);
  if (st == CRATE_STATUS_OK && o.save_model)
    st = crate_model_save(m, o.save_model, NULL, 0);
  if (st != CRATE_STATUS_OK)
    rc = cli_fail_status(CMD, st);
  if (rc == CLI_OK)
    rc = run_train(&o, m, imgs, &res);
  if (rc == CLI_OK && o.infer_reps > 0)
    rc = run_infer(&o, m, imgs, &res);
  res.rss_mb = peak_rss_mb();
  crate_model_destroy(m);
  free(imgs);
  if (rc == CLI_OK && o.ceiling) {
    /* the model's big GEMM, (B N) x d x d, and a large square one */
    res.gemm_m = (size_t)o.batch * dm.N;
    res.large = 1536;
    st = crate_blas_sgemm_rate(res.gemm_m, dm.d, dm.d, 0.3, &res.ceil_model);
    if (st == CRATE_STATUS_OK)
      st = crate_blas_sgemm_rate(res.large, res.large, res.large, 0.3, &res.ceil_large);
    if (st != CRATE_STATUS_OK)
      rc = cli_fail_status(CMD, st);
    res.ceiling = fmax(res.ceil_model, res.ceil_large);
  }
  if (rc != CLI_OK)
    return rc;
  if (o.json)
    print_json(&o, &cfg, &dm, &res);
  else
    print_table(&o, &cfg, &dm, &res);
  return CLI_OK;
}
