/* train_run.c: the run-time half of `crate train` (MODEL.md §10, §11.4;
 * STYLE.md §1.13, §5): everything after setup.  cmd_train.c's file comment
 * describes the command, its output directory, resuming and Ctrl-C.
 *
 * Here: the startup table on stderr (train_print_startup, train_blas_hint),
 * the JSONL log (log_record, train_log_start), checkpoints and the model
 * file (save_checkpoint, train_save_model), evaluation on the held-out split
 * at a fixed mask seed (evaluate), and the run itself (train_run): the step
 * loop with its progress line, step records, evaluations and checkpoints
 * (step_loop) between SIGINT / SIGTERM handlers, then finish.  The types
 * shared with cmd_train.c are in train_run.h.
 *
 * Non-goals: flags, settings and setup (cmd_train.c), data loading
 * (train_data.c).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "crate/modelio.h"
#include "crate/train.h"
#include "train_data.h"
#include "train_run.h"

#define CMD "train"

/* ---- signals ---------------------------------------------------------------- */

static volatile sig_atomic_t g_stop = 0;

/* Installed with SA_RESETHAND: a second signal ends the process at once. */
static void on_signal(int sig) {
  g_stop = sig;
}

/* ---- JSONL log ------------------------------------------------------------------ */

static void log_record(FILE *f, json_t *rec) {
  if (f) {
    json_dumpf(rec, f, JSON_COMPACT | JSON_REAL_PRECISION(10));
    fputc('\n', f);
    fflush(f);
  }
  json_decref(rec);
}

/* ---- checkpoints, the model, evaluation ------------------------------------------ */

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

int train_save_model(run_state *r) {
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

void train_run_free(run_state *r) {
  crate_batcher_destroy(r->batcher);
  crate_trainer_destroy(r->trainer);
  crate_model_destroy(r->model);
  crate_dataset_free(&r->train);
  crate_dataset_free(&r->test);
  if (r->log)
    fclose(r->log);
}

/* ---- startup ----------------------------------------------------------------------- */

/* Warns when OpenBLAS fell back to pre-AVX kernels on a CPU that has AVX2
 * (it does not know recent Xeons; see src/core/threads.c). */
void train_blas_hint(void) {
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

/* The resolved configuration on stderr. */
void train_print_startup(const train_args *a, const run_state *r) {
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
          (unsigned long long)r->eval_seed, r->out_dir,
          a->resume ? ", resuming from "
          : a->init ? ", weights from "
                    : "",
          a->resume ? a->resume
          : a->init ? a->init
                    : "");
}

/* The "start" (or "resume") record of the log. */
void train_log_start(const train_args *a, run_state *r) {
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
    if ((rc = save_checkpoint(r)) == CLI_OK && (rc = train_save_model(r)) == CLI_OK) {
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
    rc = train_save_model(r);
    if (rc == CLI_OK && !a->quiet)
      fprintf(stderr, "crate train: step %llu of %llu in %.1f s; wrote %s and %s\n",
              (unsigned long long)s_done, (unsigned long long)r->total, cli_now_s() - t_start,
              r->ckpt_path, r->model_path);
  }
  return rc;
}

/* The loop between SIGINT / SIGTERM handlers (file comment), then finish. */
int train_run(const train_args *a, run_state *r) {
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
