/* test_train.c: training (MODEL.md §10, §11.4) and the IDX reader.
 *
 * - AdamW one and two steps against the closed forms of MODEL.md §10.1
 *   written out by hand (decay / no-decay groups, bias correction at t = 1, 2);
 * - the per-step LR schedule (first step 0, peak at S_w, cosine midpoint,
 *   lr_min at S) and the warmup rounding;
 * - gradient clipping; the Philox data order and the batcher;
 * - the IDX reader on the real Fashion-MNIST t10k files and on crafted bad
 *   files (every status it can return);
 * - the trainer: no allocation in a step, error statuses, ENUMERIC leaves the
 *   model untouched;
 * - evaluation: pooled masked-patch MSE equals a direct computation from
 *   crate_model_infer and does not depend on the batch size;
 * - checkpoints: resume bit-identity (k steps, save, reload, resume to 2k vs
 *   2k straight steps: memcmp of parameters and moments), checkpoint errors;
 * - end to end: a few hundred steps on 512 images lower the held-out masked
 *   MSE by at least 30 % and beat the mean-image fill.
 *
 * The tiny model: 28 x 28 x 1, Q = 4 (n = 49), d = 32, K = 2, 1 + 1 layers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crate/data.h"
#include "crate/modelio.h"
#include "crate/safetensors.h"
#include "crate/train.h"
#include "internal.h"
#include "test_util.h"

#define T10K_IMAGES CRATE_FMNIST_DIR "/t10k-images-idx3-ubyte.gz"
#define T10K_LABELS CRATE_FMNIST_DIR "/t10k-labels-idx1-ubyte.gz"

/* ---- helpers --------------------------------------------------------------- */

static void tiny_config(crate_config *c) {
  crate_config_default(c);
  snprintf(c->preset, sizeof c->preset, "custom");
  c->img_size = 28;
  c->in_chans = 1;
  c->patch_size = 4;
  c->embed_dim = 32;
  c->decoder_embed_dim = 32;
  c->num_heads = 2;
  c->decoder_num_heads = 2;
  c->depth = 1;
  c->decoder_depth = 1;
}

/* A fresh temporary directory (removed by rm_tmpdir). */
static void make_tmpdir(char *dir, size_t len) {
  snprintf(dir, len, "/tmp/crate_test_train_XXXXXX");
  assert_non_null(mkdtemp(dir));
}

static void rm_tmpdir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *buf, size_t len) {
  gzFile f = gzopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(gzwrite(f, buf, (unsigned)len), (int)len);
  assert_int_equal(gzclose(f), Z_OK);
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  unsigned char *b = malloc((size_t)n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* An IDX image file in memory: header (count, rows, cols) + `data_bytes`
 * bytes of pixel data (i mod 256).  Returns the length. */
static size_t make_idx_images(unsigned char *buf, uint32_t magic, uint32_t count, uint32_t rows,
                              uint32_t cols, size_t data_bytes) {
  put_be32(buf, magic);
  put_be32(buf + 4, count);
  put_be32(buf + 8, rows);
  put_be32(buf + 12, cols);
  for (size_t i = 0; i < data_bytes; i++)
    buf[16 + i] = (unsigned char)(i * 7 % 256);
  return 16 + data_bytes;
}

static void load_t10k(crate_dataset *ds) {
  int st = crate_fmnist_load(NULL, "t10k", 0, ds);
  if (st != CRATE_STATUS_OK)
    print_error("%s\n", crate_error_message());
  assert_int_equal(st, CRATE_STATUS_OK);
}

/* The first `count` images of ds as a borrowed view. */
static crate_dataset subset(const crate_dataset *ds, size_t first, size_t count) {
  crate_dataset v = *ds;
  v.images = ds->images + first * crate_dataset_image_size(ds);
  v.labels = NULL;
  v.count = count;
  return v;
}

/* ---- AdamW ------------------------------------------------------------------ */

static void test_adamw_reference(void **state) {
  (void)state;
  /* Three table entries: a 2-D decay tensor (6 floats), a non-trainable
   * entry that must not be touched (2 floats), a 1-D no-decay tensor (3). */
  crate_tensor_desc tab[3];
  memset(tab, 0, sizeof tab);
  snprintf(tab[0].name, sizeof tab[0].name, "w");
  tab[0].ndim = 2, tab[0].shape[0] = 2, tab[0].shape[1] = 3, tab[0].count = 6, tab[0].offset = 0;
  tab[0].trainable = true, tab[0].decay = true;
  snprintf(tab[1].name, sizeof tab[1].name, "fixed");
  tab[1].ndim = 1, tab[1].shape[0] = 2, tab[1].count = 2, tab[1].offset = 6;
  tab[1].trainable = false, tab[1].decay = true;
  snprintf(tab[2].name, sizeof tab[2].name, "b");
  tab[2].ndim = 1, tab[2].shape[0] = 3, tab[2].count = 3, tab[2].offset = 8;
  tab[2].trainable = true, tab[2].decay = false;
  enum { n = 11 };
  const float th0[n] = {0.5f, -1.25f, 2.0f, 0.75f, -0.3f, 1.5f, 9.0f, -9.0f, 0.2f, -0.7f, 1.1f};
  const float g1[n] = {0.1f, -0.2f, 0.0f, 3.0f, -0.05f, 1e-3f, 5.0f, 5.0f, 0.4f, 0.0f, -2.0f};
  const float g2[n] = {-0.3f, -0.1f, 0.0f, 1.0f, 0.2f, -1e-3f, 5.0f, 5.0f, 0.1f, 0.0f, 0.5f};
  crate_adamw_hparams hp;
  crate_adamw_default(&hp);
  assert_true(hp.beta1 == 0.9 && hp.beta2 == 0.95 && hp.eps == 1e-8 && hp.weight_decay == 0.05);
  hp.weight_decay = 0.1; /* large, so that a wrong decay group shows */
  const double lr1 = 0.1, lr2 = 0.05, b1 = 0.9, b2 = 0.95, eps = 1e-8;

  float th[n], m[n], v[n];
  memcpy(th, th0, sizeof th);
  memset(m, 0, sizeof m);
  memset(v, 0, sizeof v);
  assert_int_equal(crate_adamw_step(th, m, v, g1, n, tab, 3, lr1, 1, &hp), CRATE_STATUS_OK);
  float th1[n];
  memcpy(th1, th, sizeof th);
  assert_int_equal(crate_adamw_step(th, m, v, g2, n, tab, 3, lr2, 2, &hp), CRATE_STATUS_OK);

  /* Hand-derived closed forms, element by element (double):
   * t = 1: m_hat = g1, v_hat = g1^2, so
   *   theta1 = theta0 (1 - lr1 w) - lr1 g1 / (|g1| + eps);
   * t = 2: m2 = (1-b1)(b1 g1 + g2), v2 = (1-b2)(b2 g1^2 + g2^2),
   *   theta2 = theta1 (1 - lr2 w) - lr2 (m2 / (1-b1^2)) / (sqrt(v2 / (1-b2^2)) + eps). */
  double ref1[n], ref2[n], refm[n], refv[n], nobc[n];
  for (size_t i = 0; i < n; i++) {
    const bool fixed = i == 6 || i == 7, decay = i < 6;
    const double w = decay ? 0.1 : 0.0;
    if (fixed) {
      ref1[i] = ref2[i] = th0[i];
      refm[i] = refv[i] = nobc[i] = 0.0;
      continue;
    }
    const double a = g1[i], c = g2[i];
    ref1[i] = th0[i] * (1.0 - lr1 * w) - lr1 * a / (fabs(a) + eps);
    refm[i] = (1.0 - b1) * (b1 * a + c);
    refv[i] = (1.0 - b2) * (b2 * a * a + c * c);
    ref2[i] = ref1[i] * (1.0 - lr2 * w) -
              lr2 * (refm[i] / (1.0 - b1 * b1)) / (sqrt(refv[i] / (1.0 - b2 * b2)) + eps);
    /* negative control: the same without bias correction */
    nobc[i] = ref1[i] * (1.0 - lr2 * w) - lr2 * refm[i] / (sqrt(refv[i]) + eps);
  }
  double d1[n], d2[n], dm[n], dv[n];
  for (size_t i = 0; i < n; i++)
    d1[i] = th1[i], d2[i] = th[i], dm[i] = m[i], dv[i] = v[i];
  const double e1 = crate_rel_linf(d1, ref1, n), e2 = crate_rel_linf(d2, ref2, n);
  const double em = crate_rel_linf(dm, refm, n), ev = crate_rel_linf(dv, refv, n);
  const double ctrl = crate_rel_linf(d2, nobc, n);
  crate_report("adamw", "t=1 theta rel Linf %.3e; t=2 theta %.3e, m %.3e, v %.3e (bound 1e-6)", e1,
               e2, em, ev);
  crate_report("adamw", "negative control (no bias correction) rel Linf %.3e (must be > 1e-2)",
               ctrl);
  crate_assert_allclose(d1, ref1, n, 1e-6, 1e-7);
  crate_assert_allclose(d2, ref2, n, 1e-6, 1e-7);
  crate_assert_allclose(dm, refm, n, 1e-6, 1e-9);
  crate_assert_allclose(dv, refv, n, 1e-6, 1e-9);
  crate_check(ctrl > 1e-2, "control %.3e", ctrl);
  /* Exact statements: a zero gradient on a decay tensor only decays; on a
   * no-decay tensor nothing moves; the non-trainable entry is untouched. */
  crate_check(th1[2] == (float)(2.0 * (1.0 - lr1 * 0.1)), "decay-only element %.9g", th1[2]);
  crate_check(th[9] == th0[9], "no-decay zero-grad element moved: %.9g", th[9]);
  crate_check(th[6] == th0[6] && th[7] == th0[7] && m[6] == 0.0f && v[7] == 0.0f,
              "non-trainable entry touched");

  /* errors */
  assert_int_equal(crate_adamw_step(th, m, v, g1, n, tab, 3, lr1, 0, &hp), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_adamw_step(th, m, v, g1, n, tab, 3, -1.0, 1, &hp), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_adamw_step(th, m, v, g1, n, tab, 3, NAN, 1, &hp), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_adamw_step(th, m, v, g1, 10, tab, 3, lr1, 1, &hp), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "adamw: tensor 'b'"));
  crate_adamw_hparams bad = hp;
  bad.beta1 = 1.0;
  assert_int_equal(crate_adamw_check(&bad), CRATE_STATUS_EINVAL);
  bad = hp, bad.beta2 = -0.1;
  assert_int_equal(crate_adamw_check(&bad), CRATE_STATUS_EINVAL);
  bad = hp, bad.eps = 0.0;
  assert_int_equal(crate_adamw_check(&bad), CRATE_STATUS_EINVAL);
  bad = hp, bad.weight_decay = INFINITY;
  assert_int_equal(crate_adamw_check(&bad), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "adamw: "));
}

static void test_grad_clip(void **state) {
  (void)state;
  float g[4] = {3.0f, 0.0f, -4.0f, 0.0f}; /* norm 5 */
  double nrm = 0.0;
  crate_check(!crate_grad_clip(g, 4, 10.0, &nrm), "clipped below the threshold");
  crate_check(nrm == 5.0 && g[0] == 3.0f, "norm %.17g", nrm);
  crate_check(!crate_grad_clip(g, 4, 0.0, &nrm), "clip 0 must be off");
  crate_check(crate_grad_clip(g, 4, 1.0, &nrm), "not clipped above the threshold");
  const double after = crate_grad_norm(g, 4), want = 5.0 / (5.0 + 1e-6);
  crate_report("clip", "norm 5 clipped to 1: %.9f (PyTorch rule 5/(5+1e-6) = %.9f)", after, want);
  crate_check(fabs(after - want) <= 1e-6 * want, "clipped norm %.9f", after);
  crate_check(fabs(g[0] / g[2] + 0.75) < 1e-6, "direction changed");
}

/* ---- schedule ----------------------------------------------------------------- */

static void test_lr_schedule(void **state) {
  (void)state;
  const crate_lr_schedule s = {
      .lr_max = 2e-3, .lr_min = 1e-5, .warmup_steps = 50, .total_steps = 1050};
  assert_int_equal(crate_lr_schedule_check(&s), CRATE_STATUS_OK);
  const double l0 = crate_lr_at(&s, 0), l25 = crate_lr_at(&s, 25), lpk = crate_lr_at(&s, 50);
  const double lmid = crate_lr_at(&s, 550), lend = crate_lr_at(&s, 1050);
  const double lq = crate_lr_at(&s, 300); /* a quarter into the cosine */
  const double want_q = 1e-5 + (2e-3 - 1e-5) * 0.5 * (1.0 + sqrt(0.5));
  crate_report("sched",
               "lr(0)=%.3g lr(25)=%.6g lr(S_w)=%.6g lr(mid)=%.9g lr(S/4 cos)=%.9g "
               "lr(S)=%.3g",
               l0, l25, lpk, lmid, lq, lend);
  crate_check(l0 == 0.0, "first step lr %.3g", l0);
  crate_check(fabs(l25 - 1e-3) <= 1e-15, "half warmup %.17g", l25);
  crate_check(fabs(lpk - 2e-3) <= 1e-15, "peak %.17g", lpk);
  crate_check(fabs(lmid - (2e-3 + 1e-5) / 2) <= 1e-15, "cosine midpoint %.17g", lmid);
  crate_check(fabs(lq - want_q) <= 1e-15, "cosine quarter %.17g vs %.17g", lq, want_q);
  crate_check(fabs(lend - 1e-5) <= 1e-18 && crate_lr_at(&s, 5000) == 1e-5, "end %.17g", lend);
  double prev = -1.0;
  bool up = true, down = true;
  for (uint64_t k = 0; k <= 50; k++)
    up = up && crate_lr_at(&s, k) > prev, prev = crate_lr_at(&s, k);
  for (uint64_t k = 51; k <= 1050; k++)
    down = down && crate_lr_at(&s, k) < prev, prev = crate_lr_at(&s, k);
  crate_check(up && down, "warmup increasing %d, cosine decreasing %d", up, down);
  /* pure warmup and no warmup */
  const crate_lr_schedule w = {.lr_max = 1.0, .lr_min = 0.0, .warmup_steps = 4, .total_steps = 4};
  crate_check(crate_lr_at(&w, 3) == 0.75 && crate_lr_at(&w, 4) == 0.0, "pure warmup");
  const crate_lr_schedule c = {.lr_max = 1.0, .lr_min = 0.0, .warmup_steps = 0, .total_steps = 4};
  crate_check(crate_lr_at(&c, 0) == 1.0 && fabs(crate_lr_at(&c, 2) - 0.5) < 1e-15, "no warmup");
  /* warmup rounding: 5 % of 20 epochs x 234 steps = one epoch */
  crate_check(crate_warmup_steps(0.05, 4680) == 234, "warmup %llu",
              (unsigned long long)crate_warmup_steps(0.05, 4680));
  crate_check(crate_warmup_steps(0.0, 100) == 0 && crate_warmup_steps(1.0, 100) == 100 &&
                  crate_warmup_steps(0.025, 10) == 0 && crate_warmup_steps(0.05, 10) == 1,
              "warmup rounding");
  /* errors */
  crate_lr_schedule b = s;
  b.warmup_steps = 2000;
  assert_int_equal(crate_lr_schedule_check(&b), CRATE_STATUS_EINVAL);
  b = s, b.total_steps = 0, b.warmup_steps = 0;
  assert_int_equal(crate_lr_schedule_check(&b), CRATE_STATUS_EINVAL);
  b = s, b.lr_min = 1.0;
  assert_int_equal(crate_lr_schedule_check(&b), CRATE_STATUS_EINVAL);
  b = s, b.lr_max = NAN;
  assert_int_equal(crate_lr_schedule_check(&b), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "schedule: "));
}

/* ---- data order --------------------------------------------------------------- */

static void test_data_order(void **state) {
  (void)state;
  enum { n = 1000 };
  uint32_t *p = malloc(n * sizeof *p), *q = malloc(n * sizeof *q), *r = malloc(n * sizeof *r);
  unsigned char *seen = calloc(n, 1);
  assert_true(p && q && r && seen);
  assert_int_equal(crate_train_permutation(p, n, 7, 3), CRATE_STATUS_OK);
  assert_int_equal(crate_train_permutation(q, n, 7, 3), CRATE_STATUS_OK);
  assert_int_equal(crate_train_permutation(r, n, 7, 4), CRATE_STATUS_OK);
  size_t fixed = 0, same_next = 0;
  for (size_t i = 0; i < n; i++) {
    assert_true(p[i] < n && !seen[p[i]]);
    seen[p[i]] = 1;
    fixed += p[i] == i;
    same_next += p[i] == r[i];
  }
  crate_report("order", "fixed points %zu (expect ~1), agreement with next epoch %zu (expect ~1)",
               fixed, same_next);
  crate_check(memcmp(p, q, n * sizeof *p) == 0, "same (seed, epoch) gave another order");
  crate_check(fixed <= 8 && same_next <= 8, "not shuffled: %zu %zu", fixed, same_next);
  assert_int_equal(crate_train_permutation(p, 0, 7, 3), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_train_permutation(p, n, 7, (uint64_t)UINT32_MAX + 1), CRATE_STATUS_EINVAL);

  /* The batcher: step s is batch s % spe of epoch s / spe, dropping the tail. */
  crate_dataset ds = {0};
  ds.count = 10, ds.channels = 1, ds.height = 1, ds.width = 2;
  float img[20];
  for (int i = 0; i < 20; i++)
    img[i] = (float)(i / 2);
  ds.images = img;
  crate_batcher *b = NULL;
  assert_int_equal(crate_batcher_create(&b, &ds, 11, 1), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_batcher_create(&b, &ds, 3, 1), CRATE_STATUS_OK);
  assert_int_equal(crate_batcher_steps_per_epoch(b), 3);
  uint32_t perm[10];
  assert_int_equal(crate_train_permutation(perm, 10, 1, 1), CRATE_STATUS_OK);
  const float *x;
  const uint32_t *idx;
  uint64_t ep;
  assert_int_equal(crate_batcher_get(b, 5, &x, &ep, &idx), CRATE_STATUS_OK); /* epoch 1, batch 2 */
  assert_int_equal(ep, 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(idx[i], perm[6 + i]);
    crate_check(x[2 * i] == (float)perm[6 + i] && x[2 * i + 1] == (float)perm[6 + i],
                "gathered image %d", i);
  }
  crate_batcher_destroy(b);
  crate_batcher_destroy(NULL);
  free(p), free(q), free(r), free(seen);
}

/* ---- IDX ------------------------------------------------------------------------ */

static void test_idx_t10k(void **state) {
  (void)state;
  crate_dataset ds;
  load_t10k(&ds);
  assert_int_equal(ds.count, 10000);
  assert_int_equal(ds.channels, 1);
  assert_int_equal(ds.height, 28);
  assert_int_equal(ds.width, 28);
  assert_non_null(ds.labels);
  /* First labels and the class counts, read independently (xxd / Python gzip). */
  const uint8_t first[12] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
  size_t cls[10] = {0};
  for (size_t i = 0; i < ds.count; i++)
    cls[ds.labels[i] < 10 ? ds.labels[i] : 0]++;
  assert_memory_equal(ds.labels, first, 12);
  for (int k = 0; k < 10; k++)
    assert_int_equal(cls[k], 1000);
  double sum = 0.0, s0 = 0.0, worst = 0.0;
  float lo = 1.0f, hi = 0.0f;
  for (size_t i = 0; i < ds.count * 784; i++) {
    const float x = ds.images[i];
    sum += x;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
    const double u = (double)x * 255.0;
    worst = fmax(worst, fabs(u - nearbyint(u)));
    if (i < 784)
      s0 += u;
  }
  const double mean = sum / (double)(ds.count * 784), want = 0.28684928071228494;
  crate_report("idx",
               "t10k: %zu x %zu x %zu, mean pixel %.10f (Python: %.10f), first image "
               "byte sum %.3f (33456), range [%g, %g], worst |255x - round| %.2e",
               ds.count, ds.height, ds.width, mean, want, s0, lo, hi, worst);
  crate_check(fabs(mean - want) <= 1e-7 * want, "mean %.10f", mean);
  crate_check(fabs(s0 - 33456.0) <= 1e-3, "first image sum %.6f", s0);
  crate_check(lo == 0.0f && hi == 1.0f && worst < 1e-4, "pixel mapping");

  /* limit: the first images only, identical values */
  crate_dataset part;
  assert_int_equal(crate_fmnist_load(CRATE_FMNIST_DIR, "t10k", 100, &part), CRATE_STATUS_OK);
  assert_int_equal(part.count, 100);
  assert_memory_equal(part.images, ds.images, 100 * 784 * sizeof(float));
  assert_memory_equal(part.labels, ds.labels, 100);
  crate_dataset_free(&part);
  uint8_t *lab = NULL;
  size_t nl = 0;
  assert_int_equal(crate_idx_read_labels(T10K_LABELS, 0, &lab, &nl), CRATE_STATUS_OK);
  assert_int_equal(nl, 10000);
  assert_memory_equal(lab, ds.labels, 10000);
  free(lab);
  crate_dataset_free(&ds);
  crate_dataset_free(&ds); /* zeroed: no-op */
  assert_null(ds.images);
  assert_int_equal(crate_fmnist_load(NULL, "valid", 0, &ds), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_fmnist_load("/nonexistent/fmnist", "t10k", 0, &ds), CRATE_STATUS_ENOENT);
  assert_non_null(strstr(crate_error_message(), "dataset-fashion-mnist"));
}

/* Expects status st from reading path as images; checks the message. */
static void expect_images(const char *path, int st, const char *needle) {
  crate_dataset ds = {0};
  int got = crate_idx_read_images(path, 0, &ds);
  crate_report("idx", "%s -> %s: %s", strrchr(path, '/') + 1, crate_strerror(got),
               crate_error_message());
  assert_int_equal(got, st);
  assert_null(ds.images);
  assert_non_null(strstr(crate_error_message(), "idx: "));
  if (needle)
    crate_check(strstr(crate_error_message(), needle) != NULL, "message lacks '%s'", needle);
}

static void test_idx_bad_files(void **state) {
  (void)state;
  char dir[64], path[128];
  make_tmpdir(dir, sizeof dir);
  unsigned char *buf = malloc(16 + 10 * 9);
  assert_non_null(buf);

  /* A good small file, plain and gzip: 10 images of 3 x 3. */
  size_t len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 10, 3, 3, 90);
  snprintf(path, sizeof path, "%s/good.idx", dir);
  write_file(path, buf, len);
  crate_dataset ds;
  assert_int_equal(crate_idx_read_images(path, 0, &ds), CRATE_STATUS_OK);
  assert_int_equal(ds.count, 10);
  crate_check(ds.images[89] == (float)(89 * 7 % 256) / 255.0f, "plain value %g", ds.images[89]);
  crate_dataset_free(&ds);
  snprintf(path, sizeof path, "%s/good.gz", dir);
  write_gz(path, buf, len);
  assert_int_equal(crate_idx_read_images(path, 4, &ds), CRATE_STATUS_OK);
  assert_int_equal(ds.count, 4);
  crate_dataset_free(&ds);

  /* bad magic: wrong type byte, label magic for images, not IDX at all */
  make_idx_images(buf, 0x00000903u, 10, 3, 3, 90);
  snprintf(path, sizeof path, "%s/badmagic.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "magic 0x00000903");
  make_idx_images(buf, CRATE_IDX_MAGIC_LABELS, 10, 3, 3, 90);
  snprintf(path, sizeof path, "%s/labelmagic.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "expected 0x00000803");
  snprintf(path, sizeof path, "%s/text.gz", dir);
  write_gz(path, "hello, this is not an IDX file at all", 37);
  expect_images(path, CRATE_STATUS_EFORMAT, "not an IDX file");

  /* truncated data (9 of 10 images), trailing bytes, short header, zero dim */
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 10, 3, 3, 81);
  snprintf(path, sizeof path, "%s/short.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "truncated");
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 9, 3, 3, 90);
  snprintf(path, sizeof path, "%s/trailing.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "trailing bytes");
  snprintf(path, sizeof path, "%s/header.gz", dir);
  write_gz(path, buf, 10);
  expect_images(path, CRATE_STATUS_EFORMAT, "header");
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 10, 0, 3, 0);
  snprintf(path, sizeof path, "%s/zerodim.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "zero");
  /* dims whose product overflows; a header that claims 16.7 M images of
   * 28 x 28 (52 GB as float) but carries 9 bytes: truncated, found without
   * allocating what it claims */
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 0xffffffffu, 0xffffffffu, 0xffffu, 9);
  snprintf(path, sizeof path, "%s/overflow.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "overflow");
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 0x00ffffffu, 28, 28, 9);
  snprintf(path, sizeof path, "%s/huge.gz", dir);
  write_gz(path, buf, len);
  expect_images(path, CRATE_STATUS_EFORMAT, "truncated");

  /* a gzip stream cut in half, and one with a flipped byte in the deflate data */
  size_t glen;
  unsigned char *gz = read_file(T10K_IMAGES, &glen);
  snprintf(path, sizeof path, "%s/cut.gz", dir);
  write_file(path, gz, glen / 2);
  expect_images(path, CRATE_STATUS_EFORMAT, "truncated");
  gz[glen / 3] ^= 0x5a;
  gz[glen / 3 + 1] ^= 0xa5;
  snprintf(path, sizeof path, "%s/corrupt.gz", dir);
  write_file(path, gz, glen);
  expect_images(path, CRATE_STATUS_EFORMAT, NULL);
  free(gz);
  /* the gzip trailer (CRC + size) cut: all the data are there, the end is not */
  len = make_idx_images(buf, CRATE_IDX_MAGIC_IMAGES, 10, 3, 3, 90);
  snprintf(path, sizeof path, "%s/notrailer.gz", dir);
  write_gz(path, buf, len);
  unsigned char *small = read_file(path, &glen);
  write_file(path, small, glen - 4);
  expect_images(path, CRATE_STATUS_EFORMAT, NULL);
  free(small);

  /* missing file, directory */
  snprintf(path, sizeof path, "%s/missing.gz", dir);
  expect_images(path, CRATE_STATUS_ENOENT, "no such file");
  expect_images(dir, CRATE_STATUS_EIO, "directory");
  /* labels: an image file is not a label file */
  uint8_t *lab = (uint8_t *)0x1;
  size_t nl = 7;
  assert_int_equal(crate_idx_read_labels(T10K_IMAGES, 0, &lab, &nl), CRATE_STATUS_EFORMAT);
  crate_check(lab == (uint8_t *)0x1 && nl == 7, "outputs touched on error");
  assert_int_equal(crate_idx_read_images(NULL, 0, &ds), CRATE_STATUS_EINVAL);
  free(buf);
  rm_tmpdir(dir);
}

/* ---- trainer ---------------------------------------------------------------------- */

static void tiny_opts(crate_trainer_opts *o, size_t batch, uint64_t total) {
  crate_trainer_opts_default(o);
  o->seed = 5;
  o->batch = batch;
  o->sched.lr_max = 2e-3;
  o->sched.total_steps = total;
  o->sched.warmup_steps = crate_warmup_steps(0.05, total);
}

static void test_trainer_step_basics(void **state) {
  (void)state;
  crate_dataset ds;
  assert_int_equal(crate_fmnist_load(NULL, "t10k", 64, &ds), CRATE_STATUS_OK);
  crate_config cfg;
  tiny_config(&cfg);
  crate_model *m = NULL;
  assert_int_equal(crate_model_create(&m, &cfg), CRATE_STATUS_OK);
  assert_int_equal(crate_model_init(m, 5), CRATE_STATUS_OK);
  crate_trainer_opts o;
  tiny_opts(&o, 16, 100);

  /* option errors */
  crate_trainer *t = NULL;
  crate_trainer_opts b = o;
  b.batch = 0;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  b = o, b.mask_ratio = 0.0;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  b = o, b.mask_ratio = 0.01; /* (int)(49 * 0.99) = 48 visible: one masked, fine */
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_OK);
  crate_trainer_destroy(t);
  t = NULL;
  b = o, b.mask_ratio = 1.0;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  b = o, b.clip = -1.0;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  b = o, b.sched.warmup_steps = 101;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  b = o, b.adamw.eps = -1.0;
  assert_int_equal(crate_trainer_create(&t, m, &b), CRATE_STATUS_EINVAL);
  assert_null(t);

  assert_int_equal(crate_trainer_create(&t, m, &o), CRATE_STATUS_OK);
  assert_int_equal(crate_trainer_step_count(t), 0);
  crate_check(crate_trainer_model(t) == m && crate_trainer_options(t)->batch == 16, "getters");
  const size_t np = crate_model_param_count(m), allocs = crate_model_alloc_count(m);
  float *p0 = malloc(np * sizeof *p0);
  assert_non_null(p0);
  memcpy(p0, crate_model_params(m), np * sizeof *p0);

  /* step 0 has lr 0: parameters do not move, the moments do */
  crate_train_metrics mt;
  assert_int_equal(crate_trainer_step(t, ds.images, 16, &mt), CRATE_STATUS_OK);
  crate_check(mt.step == 0 && mt.lr == 0.0 && isfinite(mt.loss) && mt.grad_norm > 0.0,
              "metrics of step 0: lr %g loss %g norm %g", mt.lr, mt.loss, mt.grad_norm);
  crate_check(memcmp(p0, crate_model_params(m), np * sizeof *p0) == 0, "lr 0 moved parameters");
  const float *mm = crate_trainer_moment1(t);
  size_t nz = 0;
  for (size_t i = 0; i < np; i++)
    nz += mm[i] != 0.0f;
  crate_check(nz > np / 2, "first moment mostly zero (%zu of %zu set)", nz, np);
  /* four more steps with a positive learning rate */
  for (int k = 0; k < 4; k++)
    assert_int_equal(crate_trainer_step(t, ds.images + 16 * 784, 16, &mt), CRATE_STATUS_OK);
  crate_check(mt.step == 4 && mt.lr > 0.0, "step %llu lr %g", (unsigned long long)mt.step, mt.lr);
  crate_check(memcmp(p0, crate_model_params(m), np * sizeof *p0) != 0, "parameters never moved");
  crate_report("trainer", "5 steps, heap blocks before %zu after %zu; loss %.5f norm %.4f", allocs,
               crate_model_alloc_count(m), mt.loss, mt.grad_norm);
  crate_check(crate_model_alloc_count(m) == allocs, "a step allocated");

  /* step errors */
  assert_int_equal(crate_trainer_step(t, ds.images, 0, &mt), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_trainer_step(t, ds.images, 17, &mt), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_trainer_set_step(t, (uint64_t)UINT32_MAX + 1), CRATE_STATUS_EINVAL);

  /* A non-finite loss (a huge decoder_pred weight) is ENUMERIC and changes
   * neither the parameters nor the moments nor the step count. */
  crate_model_tensor pw;
  assert_int_equal(crate_model_tensor_find(m, "decoder_pred.weight", &pw), CRATE_STATUS_OK);
  for (size_t i = 0; i < pw.desc.count; i++)
    pw.data[i] = 3e38f;
  memcpy(p0, crate_model_params(m), np * sizeof *p0);
  float *m0 = malloc(2 * np * sizeof *m0);
  assert_non_null(m0);
  memcpy(m0, crate_trainer_moment1(t), np * sizeof *m0);
  memcpy(m0 + np, crate_trainer_moment2(t), np * sizeof *m0);
  const uint64_t sc = crate_trainer_step_count(t);
  int st = crate_trainer_step(t, ds.images, 16, &mt);
  crate_report("trainer", "huge weights -> %s: %s", crate_strerror(st), crate_error_message());
  assert_int_equal(st, CRATE_STATUS_ENUMERIC);
  crate_check(crate_trainer_step_count(t) == sc, "step count advanced");
  crate_check(memcmp(p0, crate_model_params(m), np * sizeof *p0) == 0, "parameters changed");
  crate_check(memcmp(m0, crate_trainer_moment1(t), np * sizeof *m0) == 0 &&
                  memcmp(m0 + np, crate_trainer_moment2(t), np * sizeof *m0) == 0,
              "moments changed");
  free(m0);
  free(p0);
  crate_trainer_destroy(t);
  crate_trainer_destroy(NULL);
  crate_model_destroy(m);
  crate_dataset_free(&ds);
  assert_int_equal(crate_set_threads(0), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_set_threads(1), CRATE_STATUS_OK);
}

/* ---- evaluation ----------------------------------------------------------------------- */

static void test_eval_definition(void **state) {
  (void)state;
  crate_dataset ds;
  assert_int_equal(crate_fmnist_load(NULL, "t10k", 40, &ds), CRATE_STATUS_OK);
  crate_config cfg;
  tiny_config(&cfg);
  crate_model *m = NULL;
  assert_int_equal(crate_model_create(&m, &cfg), CRATE_STATUS_OK);
  assert_int_equal(crate_model_init(m, 11), CRATE_STATUS_OK);
  crate_eval_result a, b;
  assert_int_equal(crate_eval_masked(m, ds.images, 40, 7, 0.75, 3, &a), CRATE_STATUS_OK);
  assert_int_equal(crate_eval_masked(m, ds.images, 40, 64, 0.75, 3, &b), CRATE_STATUS_OK);

  /* Direct computation: infer each image with the mask of (3, MASK,
   * CRATE_EVAL_MASK_STEP, i) and pool the per-patch MSE over masked patches
   * (C = 1, so target order = patch pixel order). */
  const size_t n = 49, P = 16;
  uint8_t mask[49];
  size_t ids[49];
  double noise[49];
  float pred[49 * 16];
  double sum = 0.0;
  size_t cnt = 0;
  for (size_t i = 0; i < 40; i++) {
    assert_int_equal(
        crate_mask_random_batch(mask, ids, noise, 3, CRATE_EVAL_MASK_STEP, (uint32_t)i, 0.75, 1, n),
        CRATE_STATUS_OK);
    assert_int_equal(crate_model_infer(m, pred, ds.images + i * 784, mask, 1, NULL),
                     CRATE_STATUS_OK);
    for (size_t t = 0; t < n; t++) {
      if (!mask[t])
        continue;
      const size_t r = t / 7, c = t % 7;
      double e = 0.0;
      for (size_t ii = 0; ii < 4; ii++)
        for (size_t jj = 0; jj < 4; jj++) {
          const double d = (double)pred[t * P + ii * 4 + jj] -
                           (double)ds.images[i * 784 + (r * 4 + ii) * 28 + c * 4 + jj];
          e += d * d;
        }
      sum += e / (double)P;
      cnt++;
    }
  }
  const double direct = sum / (double)cnt;
  const double e_def = fabs(a.masked_mse - direct) / direct;
  const double e_batch = fabs(a.masked_mse - b.masked_mse) / b.masked_mse;
  const double e_psnr = fabs(a.masked_psnr - 10.0 * log10(1.0 / a.masked_mse));
  crate_report("eval",
               "masked MSE %.8f (batch 7) vs %.8f (batch 64) rel %.2e; direct %.8f "
               "rel %.2e (bound 1e-5); PSNR %.4f dB; %zu masked patches (%zu expected)",
               a.masked_mse, b.masked_mse, e_batch, direct, e_def, a.masked_psnr, a.masked_patches,
               (size_t)40 * 37);
  crate_check(a.masked_patches == 40 * 37 && cnt == 40 * 37, "masked patches %zu",
              a.masked_patches);
  crate_check(a.images == 40 && a.mask_ratio == 0.75, "result fields");
  crate_check(e_def <= 1e-5 && e_batch <= 1e-5 && e_psnr <= 1e-12, "eval mismatch");
  /* a different mask seed gives a different figure */
  assert_int_equal(crate_eval_masked(m, ds.images, 40, 64, 0.75, 4, &b), CRATE_STATUS_OK);
  crate_check(b.masked_mse != a.masked_mse, "mask seed ignored");
  assert_int_equal(crate_eval_masked(m, ds.images, 0, 8, 0.75, 3, &a), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_eval_masked(m, ds.images, 40, 8, 0.0, 3, &a), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "eval: "));
  crate_model_destroy(m);
  crate_dataset_free(&ds);
}

/* ---- resume bit-identity --------------------------------------------------------------- */

/* Trains a fresh tiny model (init seed 5) from step `from` to `to`; when
 * `resume` is non-NULL the model and trainer come from that checkpoint;
 * when `save` is non-NULL a checkpoint is written at `to`.  Returns the
 * parameters followed by m and v (3 np floats, malloc'd). */
static float *run_chunk(const crate_dataset *train, const char *resume, const char *save,
                        uint64_t to, size_t *np_out) {
  crate_model *m = NULL;
  crate_trainer *t = NULL;
  crate_trainer_opts o;
  if (resume) {
    crate_st *st = NULL;
    assert_int_equal(crate_st_open(resume, &st), CRATE_STATUS_OK);
    uint64_t step = 0;
    assert_int_equal(crate_train_read_opts(st, &o, &step), CRATE_STATUS_OK);
    assert_int_equal(crate_model_load_st(st, NULL, &m), CRATE_STATUS_OK);
    assert_int_equal(crate_trainer_create(&t, m, &o), CRATE_STATUS_OK);
    assert_int_equal(crate_trainer_load_state(t, st), CRATE_STATUS_OK);
    assert_int_equal(crate_trainer_step_count(t), step);
    crate_st_close(st);
  } else {
    crate_config cfg;
    tiny_config(&cfg);
    assert_int_equal(crate_model_create(&m, &cfg), CRATE_STATUS_OK);
    assert_int_equal(crate_model_init(m, 5), CRATE_STATUS_OK);
    tiny_opts(&o, 32, 40);
    o.clip = 0.5; /* exercise clipping in the resumed state as well */
    assert_int_equal(crate_trainer_create(&t, m, &o), CRATE_STATUS_OK);
  }
  crate_batcher *bt = NULL;
  assert_int_equal(crate_batcher_create(&bt, train, o.batch, o.seed), CRATE_STATUS_OK);
  for (uint64_t s = crate_trainer_step_count(t); s < to; s++) {
    const float *x;
    assert_int_equal(crate_batcher_get(bt, s, &x, NULL, NULL), CRATE_STATUS_OK);
    assert_int_equal(crate_trainer_step(t, x, o.batch, NULL), CRATE_STATUS_OK);
  }
  if (save) {
    const crate_train_kv kv[] = {{"crate.train.data", "t10k[0:256)"}};
    assert_int_equal(crate_trainer_save(t, save, kv, 1), CRATE_STATUS_OK);
  }
  const size_t np = crate_model_param_count(m);
  float *out = malloc(3 * np * sizeof *out);
  assert_non_null(out);
  memcpy(out, crate_model_params(m), np * sizeof *out);
  memcpy(out + np, crate_trainer_moment1(t), np * sizeof *out);
  memcpy(out + 2 * np, crate_trainer_moment2(t), np * sizeof *out);
  *np_out = np;
  crate_batcher_destroy(bt);
  crate_trainer_destroy(t);
  crate_model_destroy(m);
  return out;
}

static void test_resume_bit_identical(void **state) {
  (void)state;
  crate_dataset all;
  assert_int_equal(crate_fmnist_load(NULL, "t10k", 256, &all), CRATE_STATUS_OK);
  const crate_dataset train = subset(&all, 0, 256); /* 8 steps per epoch at B = 32 */
  char dir[64], ck[128], ck2[128];
  make_tmpdir(dir, sizeof dir);
  snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
  snprintf(ck2, sizeof ck2, "%s/ck2.safetensors", dir);
  const uint64_t k = 6; /* resume crosses the epoch boundary at step 8 */
  size_t np = 0;
  float *straight = run_chunk(&train, NULL, NULL, 2 * k, &np);
  float *first = run_chunk(&train, NULL, ck, k, &np);
  float *resumed = run_chunk(&train, ck, ck2, 2 * k, &np);
  size_t diff_p = 0, diff_m = 0;
  for (size_t i = 0; i < np; i++) {
    diff_p += memcmp(&straight[i], &resumed[i], sizeof(float)) != 0;
    diff_m += memcmp(&straight[np + i], &resumed[np + i], sizeof(float)) != 0 ||
              memcmp(&straight[2 * np + i], &resumed[2 * np + i], sizeof(float)) != 0;
  }
  size_t moved = 0;
  for (size_t i = 0; i < np; i++)
    moved += first[i] != straight[i];
  crate_report("resume",
               "%zu parameters: %llu + %llu steps vs %llu straight: %zu parameters and "
               "%zu moments differ (bound 0); %zu parameters moved between k and 2k",
               np, (unsigned long long)k, (unsigned long long)k, (unsigned long long)(2 * k),
               diff_p, diff_m, moved);
  crate_check(diff_p == 0 && diff_m == 0, "resume is not bit-identical");
  crate_check(moved > np / 2, "steps k..2k changed too little (%zu)", moved);

  /* The checkpoint is a valid model file and records the run. */
  crate_st *st = NULL;
  assert_int_equal(crate_st_open(ck2, &st), CRATE_STATUS_OK);
  crate_check(strcmp(crate_st_metadata(st, "crate.train.step"), "12") == 0, "step key");
  crate_check(strcmp(crate_st_metadata(st, "crate.train.seed"), "5") == 0, "seed key");
  crate_check(strcmp(crate_st_metadata(st, "crate.train.lr"), "0.002") == 0, "lr key '%s'",
              crate_st_metadata(st, "crate.train.lr"));
  crate_check(crate_st_metadata(st, "crate.train.data") != NULL, "extra key");
  crate_check(crate_st_has(st, "optim.m.cls_token") &&
                  crate_st_has(st, "optim.v.decoder_pred.bias"),
              "optim tensors");
  crate_st_close(st);
  crate_model *m = NULL;
  assert_int_equal(crate_model_load(ck2, &m), CRATE_STATUS_OK);
  crate_check(memcmp(crate_model_params(m), straight, np * sizeof(float)) == 0,
              "model loaded from the checkpoint differs");
  crate_model_destroy(m);
  free(straight);
  free(first);
  free(resumed);
  crate_dataset_free(&all);
  rm_tmpdir(dir);
}

static void test_checkpoint_errors(void **state) {
  (void)state;
  char dir[64], model_only[128], other[128];
  make_tmpdir(dir, sizeof dir);
  snprintf(model_only, sizeof model_only, "%s/model.safetensors", dir);
  snprintf(other, sizeof other, "%s/other.safetensors", dir);
  crate_config cfg;
  tiny_config(&cfg);
  crate_model *m = NULL;
  assert_int_equal(crate_model_create(&m, &cfg), CRATE_STATUS_OK);
  assert_int_equal(crate_model_init(m, 1), CRATE_STATUS_OK);
  crate_trainer_opts o;
  tiny_opts(&o, 4, 10);
  crate_trainer *t = NULL;
  assert_int_equal(crate_trainer_create(&t, m, &o), CRATE_STATUS_OK);
  float *mm = crate_trainer_moment1(t);
  mm[0] = 0.25f;

  /* A model file without optimiser state cannot be resumed. */
  assert_int_equal(crate_model_save(m, model_only, NULL, 0), CRATE_STATUS_OK);
  crate_st *st = NULL;
  assert_int_equal(crate_st_open(model_only, &st), CRATE_STATUS_OK);
  crate_trainer_opts ro;
  assert_int_equal(crate_train_read_opts(st, &ro, NULL), CRATE_STATUS_EFORMAT);
  crate_report("ckpt", "model-only file: %s", crate_error_message());
  assert_non_null(strstr(crate_error_message(), "crate.train.step"));
  assert_int_equal(crate_trainer_load_state(t, st), CRATE_STATUS_EFORMAT);
  crate_st_close(st);

  /* A checkpoint of another shape (d = 16): the optimiser tensors mismatch;
   * all or nothing: the trainer is unchanged. */
  crate_config c2 = cfg;
  c2.embed_dim = c2.decoder_embed_dim = 16;
  crate_model *m2 = NULL;
  crate_trainer *t2 = NULL;
  assert_int_equal(crate_model_create(&m2, &c2), CRATE_STATUS_OK);
  assert_int_equal(crate_trainer_create(&t2, m2, &o), CRATE_STATUS_OK);
  assert_int_equal(crate_trainer_set_step(t2, 3), CRATE_STATUS_OK);
  assert_int_equal(crate_trainer_save(t2, other, NULL, 0), CRATE_STATUS_OK);
  assert_int_equal(crate_st_open(other, &st), CRATE_STATUS_OK);
  uint64_t step = 0;
  assert_int_equal(crate_train_read_opts(st, &ro, &step), CRATE_STATUS_OK);
  crate_check(step == 3 && ro.batch == 4 && ro.sched.total_steps == 10 &&
                  ro.sched.lr_max == o.sched.lr_max && ro.adamw.beta2 == 0.95,
              "options round trip");
  assert_int_equal(crate_trainer_load_state(t, st), CRATE_STATUS_EFORMAT);
  crate_report("ckpt", "d=16 state into d=32 trainer: %s", crate_error_message());
  crate_check(crate_trainer_step_count(t) == 0 && mm[0] == 0.25f, "trainer changed on error");
  crate_st_close(st);

  /* Unwritable path: EIO, nothing created. */
  int rc = crate_trainer_save(t, "/nonexistent-dir/ck.safetensors", NULL, 0);
  crate_report("ckpt", "unwritable: %s: %s", crate_strerror(rc), crate_error_message());
  assert_int_equal(rc, CRATE_STATUS_EIO);
  const crate_train_kv bad[] = {{"train.data", "x"}};
  assert_int_equal(crate_trainer_save(t, other, bad, 1), CRATE_STATUS_EINVAL);
  crate_trainer_destroy(t2);
  crate_model_destroy(m2);
  crate_trainer_destroy(t);
  crate_model_destroy(m);
  rm_tmpdir(dir);
}

/* ---- end to end -------------------------------------------------------------------------- */

static void test_train_lowers_loss(void **state) {
  (void)state;
  crate_dataset all;
  load_t10k(&all);
  const crate_dataset train = subset(&all, 0, 512);
  const crate_dataset held = subset(&all, 9744, 256);
  crate_config cfg;
  tiny_config(&cfg);
  crate_model *m = NULL;
  assert_int_equal(crate_model_create(&m, &cfg), CRATE_STATUS_OK);
  assert_int_equal(crate_model_init(m, 5), CRATE_STATUS_OK);
  const uint64_t steps = 320; /* 20 epochs of 16 batches */
  crate_trainer_opts o;
  tiny_opts(&o, 32, steps);
  crate_trainer *t = NULL;
  assert_int_equal(crate_trainer_create(&t, m, &o), CRATE_STATUS_OK);
  crate_eval_result before, after;
  assert_int_equal(crate_eval_masked(m, held.images, held.count, 128, 0.75, 1, &before),
                   CRATE_STATUS_OK);

  /* Baseline: fill masked patches with the training-set mean image. */
  float mean_img[784] = {0};
  for (size_t i = 0; i < train.count; i++)
    for (size_t j = 0; j < 784; j++)
      mean_img[j] += train.images[i * 784 + j] / (float)train.count;
  double bsum = 0.0;
  size_t bcnt = 0;
  for (size_t i = 0; i < held.count; i++) {
    uint8_t mask[49];
    size_t ids[49];
    double noise[49];
    assert_int_equal(crate_mask_random_batch(mask, ids, noise, 1, CRATE_EVAL_MASK_STEP, (uint32_t)i,
                                             0.75, 1, 49),
                     CRATE_STATUS_OK);
    for (size_t p = 0; p < 49; p++) {
      if (!mask[p])
        continue;
      double e = 0.0;
      for (size_t ii = 0; ii < 4; ii++)
        for (size_t jj = 0; jj < 4; jj++) {
          const size_t px = (p / 7 * 4 + ii) * 28 + p % 7 * 4 + jj;
          const double d = (double)mean_img[px] - (double)held.images[i * 784 + px];
          e += d * d;
        }
      bsum += e / 16.0;
      bcnt++;
    }
  }
  const double mean_fill = bsum / (double)bcnt;

  crate_batcher *bt = NULL;
  assert_int_equal(crate_batcher_create(&bt, &train, o.batch, o.seed), CRATE_STATUS_OK);
  double first_loss = 0.0, last_loss = 0.0;
  crate_train_metrics mt;
  for (uint64_t s = 0; s < steps; s++) {
    const float *x;
    assert_int_equal(crate_batcher_get(bt, s, &x, NULL, NULL), CRATE_STATUS_OK);
    assert_int_equal(crate_trainer_step(t, x, o.batch, &mt), CRATE_STATUS_OK);
    if (s < 16)
      first_loss += mt.loss / 16.0;
    if (s >= steps - 16)
      last_loss += mt.loss / 16.0;
  }
  assert_int_equal(crate_eval_masked(m, held.images, held.count, 128, 0.75, 1, &after),
                   CRATE_STATUS_OK);
  const double drop = 1.0 - after.masked_mse / before.masked_mse;
  crate_report("e2e",
               "%llu steps x 32 on 512 images: held-out masked MSE %.5f -> %.5f "
               "(%.1f %% drop, bound >= 30 %%), PSNR %.2f -> %.2f dB; mean-image fill "
               "%.5f (%.2f dB); train loss first epoch %.5f, last epoch %.5f",
               (unsigned long long)steps, before.masked_mse, after.masked_mse, 100.0 * drop,
               before.masked_psnr, after.masked_psnr, mean_fill, 10.0 * log10(1.0 / mean_fill),
               first_loss, last_loss);
  crate_check(drop >= 0.30, "held-out masked MSE dropped only %.1f %%", 100.0 * drop);
  crate_check(after.masked_mse < mean_fill, "no better than the mean image (%.5f vs %.5f)",
              after.masked_mse, mean_fill);
  crate_check(last_loss < 0.7 * first_loss, "training loss %.5f -> %.5f", first_loss, last_loss);
  crate_batcher_destroy(bt);
  crate_trainer_destroy(t);
  crate_model_destroy(m);
  crate_dataset_free(&all);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adamw_reference),
      cmocka_unit_test(test_grad_clip),
      cmocka_unit_test(test_lr_schedule),
      cmocka_unit_test(test_data_order),
      cmocka_unit_test(test_idx_t10k),
      cmocka_unit_test(test_idx_bad_files),
      cmocka_unit_test(test_trainer_step_basics),
      cmocka_unit_test(test_eval_definition),
      cmocka_unit_test(test_resume_bit_identical),
      cmocka_unit_test(test_checkpoint_errors),
      cmocka_unit_test(test_train_lowers_loss),
  };
  return CRATE_RUN("train", tests, argc, argv);
}
