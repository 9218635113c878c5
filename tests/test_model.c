/* test_model.c: the CRATE-MAE model (MODEL.md §2-§9): parameter counts
 * against the MODEL.md §7 table, the tensor table (§6), FLOP counts (§9),
 * config validation, initialisation ranges (§4), whole-model gradient checks
 * (random direction and per-tensor coordinates), a double-precision
 * reference forward assembled here from the _ref ops and the official tensor
 * names, determinism, inference vs training forward, no allocation in the
 * hot paths, error statuses, and reconstruction images.
 *
 * Every expected number is taken from MODEL.md or derived in this file from
 * first principles, never from the code under test.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "crate/config.h"
#include "crate/model.h"
#include "crate/ops.h"
#include "test_util.h"

/* ---- helpers ----------------------------------------------------------- */

/* A tiny RGB model: H = 8, Q = 4 (n = 4, N = 5, P = 48), d = 16, K = 2
 * encoder heads, 4 decoder heads (p = 8, p_dec = 4). */
static crate_config tiny_config(size_t Le, size_t Ld) {
  crate_config c;
  crate_config_default(&c);
  snprintf(c.preset, sizeof c.preset, "tiny-rgb");
  c.img_size = 8;
  c.in_chans = 3;
  c.patch_size = 4;
  c.embed_dim = 16;
  c.decoder_embed_dim = 16;
  c.num_heads = 2;
  c.decoder_num_heads = 4;
  c.depth = Le;
  c.decoder_depth = Ld;
  c.mask_ratio = 0.5;
  return c;
}

static crate_model *make_model(const crate_config *cfg, uint64_t seed) {
  crate_model *m = NULL;
  int st = crate_model_create(&m, cfg);
  if (st != CRATE_STATUS_OK)
    print_error("%s\n", crate_error_message());
  assert_int_equal(st, CRATE_STATUS_OK);
  assert_int_equal(crate_model_init(m, seed), CRATE_STATUS_OK);
  return m;
}

/* Standard normal images (B, C, H, H). */
static float *random_images(const crate_dims *dm, size_t B, uint64_t seed) {
  const size_t count = B * dm->C * dm->H * dm->H;
  float *x = malloc(count * sizeof *x);
  assert_non_null(x);
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  for (size_t i = 0; i < count; i++)
    x[i] = (float)crate_rng_normal(&r);
  return x;
}

static uint8_t *random_mask(const crate_dims *dm, size_t B, double ratio, uint64_t seed) {
  uint8_t *mask = malloc(B * dm->n);
  size_t *ids = malloc(B * dm->n * sizeof *ids);
  double *noise = malloc(B * dm->n * sizeof *noise);
  assert_true(mask && ids && noise);
  assert_int_equal(crate_mask_random_batch(mask, ids, noise, seed, 0, 0, ratio, B, dm->n),
                   CRATE_STATUS_OK);
  free(ids);
  free(noise);
  return mask;
}

/* Moves every trainable tensor away from its structured init (LayerNorm 1/0,
 * zero biases), so that no gradient is degenerate. */
static void perturb_params(crate_model *m, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_PROBE);
  for (size_t i = 0; i + 1 < crate_model_tensor_count(m); i++) {
    crate_model_tensor t;
    assert_int_equal(crate_model_tensor_at(m, i, &t), CRATE_STATUS_OK);
    if (t.desc.ndim == 1)
      for (size_t k = 0; k < t.desc.count; k++)
        t.data[k] += (float)(0.1 * crate_rng_normal(&r));
  }
}

static double forward_loss(crate_model *m, const float *imgs, const uint8_t *mask, size_t B) {
  double L = 0.0;
  int st = crate_model_forward(m, imgs, mask, B, &L);
  if (st != CRATE_STATUS_OK)
    print_error("%s\n", crate_error_message());
  assert_int_equal(st, CRATE_STATUS_OK);
  return L;
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- parameter counts (MODEL.md §7) ------------------------------------ */

static void test_param_counts(void **state) {
  (void)state;
  /* MODEL.md §7 table: per layer, trainable-used, + decoder_pos_embed,
   * + decoder_embed (official requires-grad), official total. */
  static const struct {
    const char *name;
    size_t per_layer, trainable, file, official_trainable, official_total;
  } doc[] = {
      {"fmnist-tiny", 49792, 403344, 409744, 419856, 432656},
      {"fmnist-small", 197888, 2384656, 2397456, 2450448, 2476048},
      {"mae-tiny", 444288, 11256192, 11331840, 11404032, 11555328},
      {"mae-small", 998208, 24846528, 24960000, 25178880, 25405824},
      {"mae-base", 1773312, 43745280, 43896576, 44335872, 44638464},
      {"mae-large", 3150848, 152821504, 153023232, 153871104, 154274560},
  };
  for (size_t i = 0; i < sizeof doc / sizeof doc[0]; i++) {
    crate_config cfg;
    assert_int_equal(crate_config_preset(doc[i].name, &cfg), CRATE_STATUS_OK);
    assert_string_equal(cfg.preset, doc[i].name);
    crate_param_counts c;
    assert_int_equal(crate_config_param_counts(&cfg, &c), CRATE_STATUS_OK);
    size_t trainable = 0;
    assert_int_equal(crate_config_param_count(&cfg, &trainable), CRATE_STATUS_OK);
    /* Per layer from the tensor table: the blocks.0 and decoder_blocks.0
     * entries; and the sum of every trainable entry. */
    size_t nt = 0, enc0 = 0, dec0 = 0, sum = 0;
    assert_int_equal(crate_config_tensor_count(&cfg, &nt), CRATE_STATUS_OK);
    for (size_t k = 0; k < nt; k++) {
      crate_tensor_desc t;
      assert_int_equal(crate_config_tensor(&cfg, k, &t), CRATE_STATUS_OK);
      if (!t.trainable)
        continue;
      sum += t.count;
      enc0 += starts_with(t.name, "blocks.0.") ? t.count : 0;
      dec0 += starts_with(t.name, "decoder_blocks.0.") ? t.count : 0;
    }
    crate_report("counts",
                 "%-12s trainable %zu (doc %zu) file %zu (doc %zu) official %zu/%zu (doc "
                 "%zu/%zu) per layer enc %zu dec %zu (doc %zu)",
                 doc[i].name, c.trainable, doc[i].trainable, c.file, doc[i].file,
                 c.official_trainable, c.official_total, doc[i].official_trainable,
                 doc[i].official_total, enc0, dec0, doc[i].per_layer);
    assert_int_equal(c.trainable, doc[i].trainable);
    assert_int_equal(trainable, doc[i].trainable);
    assert_int_equal(sum, doc[i].trainable);
    assert_int_equal(c.file, doc[i].file);
    assert_int_equal(c.official_trainable, doc[i].official_trainable);
    assert_int_equal(c.official_total, doc[i].official_total);
    assert_int_equal(enc0, doc[i].per_layer);
    assert_int_equal(dec0, doc[i].per_layer);
  }
  /* The flat blocks of real models have exactly that many floats. */
  const char *small[] = {"fmnist-tiny", "fmnist-small"};
  const size_t want[] = {403344, 2384656};
  for (size_t i = 0; i < 2; i++) {
    crate_config cfg;
    assert_int_equal(crate_config_preset(small[i], &cfg), CRATE_STATUS_OK);
    crate_model *m = make_model(&cfg, 0);
    crate_report("counts", "%s model flat block %zu floats", small[i], crate_model_param_count(m));
    assert_int_equal(crate_model_param_count(m), want[i]);
    crate_model_destroy(m);
  }
  /* Preset enumeration covers exactly the six presets. */
  size_t np = 0;
  while (crate_config_preset_name(np))
    np++;
  assert_int_equal(np, 6);
}

/* ---- tensor table (MODEL.md §6) ---------------------------------------- */

static void test_tensor_table(void **state) {
  (void)state;
  crate_config cfg;
  assert_int_equal(crate_config_preset("fmnist-tiny", &cfg), CRATE_STATUS_OK);
  crate_model *m = make_model(&cfg, 0);
  const size_t nt = crate_model_tensor_count(m);
  /* 11 + 8 (L_e + L_d) entries, the last one decoder_pos_embed. */
  crate_report("table", "fmnist-tiny: %zu tensors (expected 11 + 8*8 = 75; 74 trainable)", nt);
  assert_int_equal(nt, 75);
  /* MODEL.md §6 order: the head, block 0 and the tail, typed from the doc. */
  static const char *first[] = {"cls_token",
                                "mask_token",
                                "patch_embed.proj.weight",
                                "patch_embed.proj.bias",
                                "blocks.0.layers.0.0.norm.weight",
                                "blocks.0.layers.0.0.norm.bias",
                                "blocks.0.layers.0.0.fn.qkv.weight",
                                "blocks.0.layers.0.0.fn.to_out.0.weight",
                                "blocks.0.layers.0.0.fn.to_out.0.bias",
                                "blocks.0.layers.0.1.norm.weight",
                                "blocks.0.layers.0.1.norm.bias",
                                "blocks.0.layers.0.1.fn.weight",
                                "blocks.1.layers.0.0.norm.weight"};
  static const char *last[] = {"norm.weight",
                               "norm.bias",
                               "decoder_blocks.0.layers.0.0.norm.weight",
                               "decoder_blocks.0.layers.0.0.norm.bias",
                               "decoder_blocks.0.layers.0.0.fn.weight",
                               "decoder_blocks.0.layers.0.1.norm.weight",
                               "decoder_blocks.0.layers.0.1.norm.bias",
                               "decoder_blocks.0.layers.0.1.fn.qkv.weight",
                               "decoder_blocks.0.layers.0.1.fn.to_out.0.weight",
                               "decoder_blocks.0.layers.0.1.fn.to_out.0.bias"};
  static const char *tail[] = {"decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight",
                               "decoder_pred.bias", "decoder_pos_embed"};
  crate_model_tensor t;
  for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
    assert_int_equal(crate_model_tensor_at(m, i, &t), CRATE_STATUS_OK);
    assert_string_equal(t.desc.name, first[i]);
  }
  const size_t norm_at = 4 + 8 * 4; /* head + 4 encoder blocks */
  for (size_t i = 0; i < sizeof last / sizeof last[0]; i++) {
    assert_int_equal(crate_model_tensor_at(m, norm_at + i, &t), CRATE_STATUS_OK);
    assert_string_equal(t.desc.name, last[i]);
  }
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(crate_model_tensor_at(m, nt - 5 + i, &t), CRATE_STATUS_OK);
    assert_string_equal(t.desc.name, tail[i]);
  }
  /* Unique names; flat offsets tile the block in order; decay == ndim >= 2;
   * data / grad pointers are views of the flat blocks. */
  assert_null(crate_model_grads(m));
  assert_int_equal(crate_model_reserve(m, 1), CRATE_STATUS_OK);
  float *params = crate_model_params(m), *grads = crate_model_grads(m);
  assert_non_null(grads);
  size_t next = 0, n_trainable = 0;
  for (size_t i = 0; i < nt; i++) {
    assert_int_equal(crate_model_tensor_at(m, i, &t), CRATE_STATUS_OK);
    for (size_t j = 0; j < i; j++) {
      crate_model_tensor u;
      assert_int_equal(crate_model_tensor_at(m, j, &u), CRATE_STATUS_OK);
      assert_string_not_equal(t.desc.name, u.desc.name);
    }
    size_t prod = 1;
    for (size_t k = 0; k < t.desc.ndim; k++)
      prod *= t.desc.shape[k];
    assert_int_equal(prod, t.desc.count);
    if (t.desc.trainable) {
      n_trainable++;
      assert_int_equal(t.desc.offset, next);
      assert_ptr_equal(t.data, params + next);
      assert_ptr_equal(t.grad, grads + next);
      next += t.desc.count;
      assert_int_equal(t.desc.decay, t.desc.ndim >= 2);
    } else {
      assert_int_equal(i, nt - 1);
      assert_ptr_equal(t.data, crate_model_pos_embed(m));
      assert_null(t.grad);
      assert_false(t.desc.decay);
    }
    crate_model_tensor f;
    assert_int_equal(crate_model_tensor_find(m, t.desc.name, &f), CRATE_STATUS_OK);
    assert_ptr_equal(f.data, t.data);
  }
  assert_int_equal(n_trainable, 74);
  assert_int_equal(next, crate_model_param_count(m));
  /* Shapes from the §6 table. */
  static const struct {
    const char *name;
    size_t ndim, shape[4];
  } shapes[] = {{"cls_token", 3, {1, 1, 128, 1}},
                {"patch_embed.proj.weight", 4, {128, 1, 4, 4}},
                {"patch_embed.proj.bias", 1, {128, 1, 1, 1}},
                {"blocks.3.layers.0.0.fn.qkv.weight", 2, {128, 128, 1, 1}},
                {"blocks.2.layers.0.1.fn.weight", 2, {128, 128, 1, 1}},
                {"decoder_blocks.3.layers.0.1.fn.to_out.0.weight", 2, {128, 128, 1, 1}},
                {"decoder_pred.weight", 2, {16, 128, 1, 1}},
                {"decoder_pred.bias", 1, {16, 1, 1, 1}},
                {"decoder_pos_embed", 3, {1, 50, 128, 1}}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    assert_int_equal(crate_model_tensor_find(m, shapes[i].name, &t), CRATE_STATUS_OK);
    assert_int_equal(t.desc.ndim, shapes[i].ndim);
    for (size_t k = 0; k < 4; k++)
      assert_int_equal(t.desc.shape[k], shapes[i].shape[k]);
  }
  assert_int_equal(crate_model_tensor_find(m, "pos_embed", &t), CRATE_STATUS_EINVAL);
  assert_true(starts_with(crate_error_message(), "model: no tensor named 'pos_embed'"));
  assert_int_equal(crate_model_tensor_at(m, nt, &t), CRATE_STATUS_EINVAL);
  crate_model_destroy(m);
  /* Entry counts (MODEL.md §6: 11 + 8 (L_e + L_d)) and the longest name for
   * the other presets.  MODEL.md §6 names the longest pattern
   * decoder_blocks.NN.layers.0.1.fn.to_out.0.weight and calls it 48
   * characters; the string has 47 (46 with a one-digit index), so the
   * expected lengths come from the pattern itself. */
  const size_t longest2 = strlen("decoder_blocks.NN.layers.0.1.fn.to_out.0.weight");
  crate_report("table", "MODEL.md's longest-name pattern has %zu characters (doc says 48)",
               longest2);
  const struct {
    const char *name;
    size_t count, longest;
  } other[] = {{"fmnist-small", 107, longest2 - 1},
               {"mae-tiny", 203, longest2},
               {"mae-small", 203, longest2},
               {"mae-base", 203, longest2},
               {"mae-large", 395, longest2}};
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    assert_int_equal(crate_config_preset(other[i].name, &cfg), CRATE_STATUS_OK);
    size_t n = 0, longest = 0;
    char longest_name[CRATE_TENSOR_NAME_MAX] = "";
    assert_int_equal(crate_config_tensor_count(&cfg, &n), CRATE_STATUS_OK);
    for (size_t k = 0; k < n; k++) {
      crate_tensor_desc d;
      assert_int_equal(crate_config_tensor(&cfg, k, &d), CRATE_STATUS_OK);
      if (strlen(d.name) > longest) {
        longest = strlen(d.name);
        snprintf(longest_name, sizeof longest_name, "%s", d.name);
      }
    }
    crate_report("table", "%-12s %zu tensors (expected %zu), longest name %zu chars: %s",
                 other[i].name, n, other[i].count, longest, longest_name);
    assert_int_equal(n, other[i].count);
    assert_int_equal(longest, other[i].longest);
  }
  crate_tensor_desc d;
  assert_int_equal(crate_config_tensor(&cfg, 395, &d), CRATE_STATUS_EINVAL);
}

/* ---- FLOPs (MODEL.md §9) ----------------------------------------------- */

static void test_flops(void **state) {
  (void)state;
  /* The §9 table, with the number of significant digits it prints: a value
   * passes when it rounds to the printed figure (half a unit of the last
   * digit). */
  static const struct {
    const char *name;
    double enc, enc_unit, dec, dec_unit, fwd, fwd_unit, train, train_unit;
  } doc[] = {
      {"fmnist-tiny", 7.83e6, 1e4, 6.20e6, 1e4, 56.5e6, 1e5, 170e6, 1e6},
      {"fmnist-small", 28.8e6, 1e5, 22.2e6, 1e5, 307e6, 1e6, 0.92e9, 1e7},
      {"mae-tiny", 292e6, 1e6, 234e6, 1e6, 6.5e9, 1e8, 19.6e9, 1e8},
      {"mae-small", 612e6, 1e6, 482e6, 1e6, 13.5e9, 1e8, 40.4e9, 1e8},
      {"mae-base", 1.05e9, 1e7, 0.82e9, 1e7, 22.8e9, 1e8, 68.5e9, 1e8},
  };
  for (size_t i = 0; i < sizeof doc / sizeof doc[0]; i++) {
    crate_config cfg;
    assert_int_equal(crate_config_preset(doc[i].name, &cfg), CRATE_STATUS_OK);
    crate_flops f;
    assert_int_equal(crate_config_flops(&cfg, &f), CRATE_STATUS_OK);
    crate_report("flops",
                 "%-12s enc %.4g dec %.4g forward %.4g train %.4g (doc %.3g %.3g %.3g %.3g)",
                 doc[i].name, f.encoder_layer, f.decoder_layer, f.forward, f.train, doc[i].enc,
                 doc[i].dec, doc[i].fwd, doc[i].train);
    crate_check(fabs(f.encoder_layer - doc[i].enc) <= 0.5 * doc[i].enc_unit, "%s enc", doc[i].name);
    crate_check(fabs(f.decoder_layer - doc[i].dec) <= 0.5 * doc[i].dec_unit, "%s dec", doc[i].name);
    crate_check(fabs(f.forward - doc[i].fwd) <= 0.5 * doc[i].fwd_unit, "%s fwd", doc[i].name);
    crate_check(fabs(f.train - doc[i].train) <= 0.5 * doc[i].train_unit, "%s train", doc[i].name);
  }
}

/* ---- config validation ------------------------------------------------- */

static void expect_config_error(const crate_config *c, const char *what) {
  int st = crate_config_validate(c);
  crate_check(st == CRATE_STATUS_EINVAL, "%s: status %d", what, st);
  crate_check(starts_with(crate_error_message(), "config: "), "%s: message '%s'", what,
              crate_error_message());
  crate_model *m = NULL;
  assert_int_equal(crate_model_create(&m, c), CRATE_STATUS_EINVAL);
  assert_null(m);
}

static void test_config_errors(void **state) {
  (void)state;
  crate_config base, c;
  crate_config_default(&base);
  assert_string_equal(base.preset, "fmnist-tiny");
  assert_int_equal(crate_config_validate(&base), CRATE_STATUS_OK);
  for (size_t i = 0; crate_config_preset_name(i); i++) {
    assert_int_equal(crate_config_preset(crate_config_preset_name(i), &c), CRATE_STATUS_OK);
    assert_int_equal(crate_config_validate(&c), CRATE_STATUS_OK);
  }
  /* Preset fields that MODEL.md §2 / §5 fix. */
  assert_int_equal(crate_config_preset("mae-base", &c), CRATE_STATUS_OK);
  assert_true(c.img_size == 224 && c.in_chans == 3 && c.patch_size == 16 && c.embed_dim == 768 &&
              c.num_heads == 12 && c.depth == 12 && c.decoder_depth == 12);
  assert_true(c.ln_eps == 1e-5 && c.final_ln_eps == 1e-6 && c.mask_ratio == 0.75 &&
              c.ista_eta == 0.1 && !c.norm_pix_loss);
  assert_true(c.pixel_mean[0] == 0.485 && c.pixel_std[2] == 0.225);
  assert_int_equal(crate_config_preset("fmnist-tiny", &c), CRATE_STATUS_OK);
  assert_true(c.ista_lambda == 0.1 && c.pixel_mean[0] == 0.0 && c.pixel_std[0] == 1.0);

  assert_int_equal(crate_config_preset("vit-huge", &c), CRATE_STATUS_EINVAL);
  assert_true(starts_with(crate_error_message(), "config: unknown preset 'vit-huge'"));
  assert_int_equal(crate_config_preset(NULL, &c), CRATE_STATUS_EINVAL);

  int n = 0;
#define BAD(field, value)                                                                          \
  do {                                                                                             \
    c = base;                                                                                      \
    c.field = value;                                                                               \
    expect_config_error(&c, #field " = " #value);                                                  \
    n++;                                                                                           \
  } while (0)
  BAD(img_size, 0);
  BAD(img_size, 30); /* not a multiple of Q = 4 */
  BAD(patch_size, 0);
  BAD(patch_size, 56); /* larger than the image */
  BAD(in_chans, 0);
  BAD(in_chans, 5);
  BAD(embed_dim, 0);
  BAD(embed_dim, 130); /* not a multiple of 4 */
  BAD(embed_dim, 132); /* fine alone, but decoder_embed_dim stays 128 */
  BAD(num_heads, 0);
  BAD(num_heads, 3);         /* 128 % 3 != 0 */
  BAD(decoder_num_heads, 5); /* 128 % 5 != 0 */
  BAD(decoder_embed_dim, 64);
  BAD(depth, 0);
  BAD(decoder_depth, 0);
  BAD(ista_eta, 0.0);
  BAD(ista_eta, -0.1);
  BAD(ista_eta, NAN);
  BAD(ista_eta, INFINITY);
  BAD(ista_lambda, -1e-3);
  BAD(ista_lambda, NAN);
  BAD(ln_eps, 0.0);
  BAD(final_ln_eps, -1e-6);
  BAD(mask_ratio, 1.0);
  BAD(mask_ratio, -0.1);
  BAD(mask_ratio, NAN);
  BAD(pixel_std[0], 0.0);
  BAD(pixel_mean[0], INFINITY);
#undef BAD
  crate_report("config", "%d invalid configs rejected with EINVAL and a 'config:' message", n);
  /* With both widths at 132 the config is valid. */
  c = base;
  c.embed_dim = 132;
  c.decoder_embed_dim = 132;
  c.num_heads = 4;
  c.decoder_num_heads = 4;
  assert_int_equal(crate_config_validate(&c), CRATE_STATUS_OK);
  /* norm_pix_loss needs P >= 2: C = 1, Q = 1. */
  c = base;
  c.patch_size = 1;
  c.norm_pix_loss = true;
  expect_config_error(&c, "norm_pix_loss with P = 1");
  c.norm_pix_loss = false;
  assert_int_equal(crate_config_validate(&c), CRATE_STATUS_OK);
  assert_int_equal(crate_config_validate(NULL), CRATE_STATUS_EINVAL);
  /* Derived sizes (MODEL.md §2 table, fmnist-tiny column). */
  crate_dims dm;
  assert_int_equal(crate_config_dims(&base, &dm), CRATE_STATUS_OK);
  assert_true(dm.g == 7 && dm.n == 49 && dm.N == 50 && dm.P == 16 && dm.p == 32);
  assert_true(dm.n_keep == 12 && dm.n_masked == 37);
  assert_int_equal(crate_config_preset("mae-base", &c), CRATE_STATUS_OK);
  assert_int_equal(crate_config_dims(&c, &dm), CRATE_STATUS_OK);
  assert_true(dm.g == 14 && dm.n == 196 && dm.N == 197 && dm.P == 768 && dm.p == 64);
  assert_true(dm.n_keep == 49 && dm.n_masked == 147);
}

/* ---- initialisation (MODEL.md §4) -------------------------------------- */

static void test_init_ranges(void **state) {
  (void)state;
  crate_config cfg;
  assert_int_equal(crate_config_preset("fmnist-tiny", &cfg), CRATE_STATUS_OK);
  crate_model *m = make_model(&cfg, 7);
  const double d = 128, P = 16;
  /* Bounds from the formulas of §4 (and the doc's rounded figures). */
  static const struct {
    const char *prefix, *suffix;
    int kind; /* 0 uniform, 1 normal(0.02), 2 ones, 3 zeros */
    double doc_bound;
  } rules[] = {
      {"patch_embed.proj.weight", "", 0, 0.2041},
      {"patch_embed.proj.bias", "", 0, 0.25},
      {"cls_token", "", 1, 0},
      {"mask_token", "", 1, 0},
      {"blocks.", "fn.qkv.weight", 0, 0.1531},
      {"blocks.", "to_out.0.weight", 0, 0.1531},
      {"blocks.", "to_out.0.bias", 3, 0},
      {"blocks.", "layers.0.1.fn.weight", 0, 0.2165},
      {"decoder_blocks.", "layers.0.0.fn.weight", 0, 0.2165},
      {"decoder_blocks.", "fn.qkv.weight", 0, 0.1531},
      {"decoder_blocks.", "to_out.0.weight", 0, 0.1531},
      {"decoder_blocks.", "to_out.0.bias", 3, 0},
      {"decoder_pred.weight", "", 0, 0.2041},
      {"decoder_pred.bias", "", 3, 0},
      {"", "norm.weight", 2, 0},
      {"", "norm.bias", 3, 0},
  };
  const double exact[] = {sqrt(6.0 / (P + d)),
                          1.0 / sqrt(P),
                          0,
                          0,
                          sqrt(6.0 / (2 * d)),
                          sqrt(6.0 / (2 * d)),
                          0,
                          sqrt(6.0 / d),
                          sqrt(6.0 / d),
                          sqrt(6.0 / (2 * d)),
                          sqrt(6.0 / (2 * d)),
                          0,
                          sqrt(6.0 / (P + d)),
                          0,
                          0,
                          0};
  const size_t nt = crate_model_tensor_count(m);
  size_t covered = 0;
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    double maxabs = 0.0, sum = 0.0, sum2 = 0.0;
    size_t count = 0, tensors = 0;
    for (size_t i = 0; i + 1 < nt; i++) {
      crate_model_tensor t;
      assert_int_equal(crate_model_tensor_at(m, i, &t), CRATE_STATUS_OK);
      const size_t ln = strlen(t.desc.name), ls = strlen(rules[r].suffix);
      if (!starts_with(t.desc.name, rules[r].prefix) || ln < ls ||
          strcmp(t.desc.name + ln - ls, rules[r].suffix) != 0)
        continue;
      tensors++;
      for (size_t k = 0; k < t.desc.count; k++) {
        const double x = t.data[k];
        maxabs = fmax(maxabs, fabs(x));
        sum += x;
        sum2 += x * x;
        if (rules[r].kind == 2)
          assert_true(x == 1.0);
        if (rules[r].kind == 3)
          assert_true(x == 0.0);
      }
      count += t.desc.count;
    }
    assert_true(tensors > 0);
    covered += tensors;
    const double mean = sum / (double)count, sd = sqrt(sum2 / (double)count - mean * mean);
    if (rules[r].kind == 0) {
      const double b = exact[r];
      crate_report("init",
                   "%s*%s: %zu values, max|x| %.5f (bound %.5f, doc %.4f), sd %.5f "
                   "(b/sqrt3 %.5f)",
                   rules[r].prefix, rules[r].suffix, count, maxabs, b, rules[r].doc_bound, sd,
                   b / sqrt(3.0));
      assert_true(fabs(b - rules[r].doc_bound) < 5e-5); /* the doc's rounding of the formula */
      assert_true(maxabs <= b);
      /* The max of `count` uniform draws is within a few b / count of b. */
      assert_true(maxabs >= b * (1.0 - 10.0 / (double)count));
      assert_true(fabs(sd - b / sqrt(3.0)) <= 6.0 * b / sqrt(3.0) / sqrt((double)count));
      assert_true(fabs(mean) <= 6.0 * b / sqrt(3.0 * (double)count));
    } else if (rules[r].kind == 1) {
      crate_report("init", "%s: %zu values, sd %.5f (0.02), mean %.5f", rules[r].prefix, count, sd,
                   mean);
      assert_true(fabs(sd - 0.02) <= 0.2 * 0.02);
      assert_true(fabs(mean) <= 6.0 * 0.02 / sqrt((double)count));
    }
  }
  /* Every trainable tensor matched exactly one rule (norm.* match all LN). */
  crate_report("init", "%zu tensor matches over %zu trainable tensors", covered, nt - 1);
  assert_int_equal(covered, nt - 1);
  /* The position table: row 0 zero, row 1 (patch (0,0)) = [0..|1..|0..|1..]. */
  const float *pos = crate_model_pos_embed(m);
  for (size_t k = 0; k < 128; k++) {
    assert_true(pos[k] == 0.0f);
    assert_true(pos[128 + k] == ((k / 32) % 2 == 1 ? 1.0f : 0.0f));
  }
  crate_model_destroy(m);
}

/* ---- a double-precision reference forward built here (MODEL.md §3) ----- */

/* One parameter of the reference forward can be replaced by an exact double
 * value (finite differences without float rounding of the step). */
static struct {
  const char *name;
  size_t k;
  double value;
} g_override;

static double *getd(crate_model *m, const char *name) {
  crate_model_tensor t;
  int st = crate_model_tensor_find(m, name, &t);
  if (st != CRATE_STATUS_OK)
    print_error("%s\n", crate_error_message());
  assert_int_equal(st, CRATE_STATUS_OK);
  double *x = malloc(t.desc.count * sizeof *x);
  assert_non_null(x);
  for (size_t k = 0; k < t.desc.count; k++)
    x[k] = t.data[k];
  if (g_override.name && strcmp(g_override.name, name) == 0)
    x[g_override.k] = g_override.value;
  return x;
}

static double *getl(crate_model *m, const char *fmt, size_t layer) {
  char name[128];
  snprintf(name, sizeof name, fmt, layer);
  return getd(m, name);
}

static double *dalloc(size_t n) {
  double *x = calloc(n ? n : 1, sizeof *x);
  assert_non_null(x);
  return x;
}

/* pred (B, n, P) and the loss of the config's network in double. */
static double reference_forward(crate_model *m, const float *imgs, const uint8_t *mask, size_t B,
                                double *pred) {
  const crate_config *cfg = crate_model_config(m);
  const size_t H = cfg->img_size, C = cfg->in_chans, Q = cfg->patch_size, d = cfg->embed_dim;
  const size_t g = H / Q, n = g * g, N = n + 1, P = C * Q * Q, M = B * N;
  const size_t K = cfg->num_heads, Kd = cfg->decoder_num_heads;
  float *vf = malloc(B * n * P * sizeof *vf);
  assert_non_null(vf);
  double *v = dalloc(B * n * P), *e = dalloc(B * n * d), *x = dalloc(M * d), *y = dalloc(M * d);
  double *a = dalloc(M * d), *h = dalloc(M * d), *mm = dalloc(M * d), *w = dalloc(M * d);
  double *o = dalloc(M * d), *r = dalloc(M * d), *mean = dalloc(M), *rstd = dalloc(M);
  double *attn = dalloc(B * (K > Kd ? K : Kd) * N * N), *pos = dalloc(N * d),
         *tgt = dalloc(B * n * P);
  /* patches (embedding order), e = W_pe v + b_pe, tokens + Pos */
  assert_int_equal(crate_patchify_ref(vf, imgs, CRATE_PATCH_EMBED, B, C, H, Q), CRATE_STATUS_OK);
  for (size_t i = 0; i < B * n * P; i++)
    v[i] = vf[i];
  double *Wpe = getd(m, "patch_embed.proj.weight"), *bpe = getd(m, "patch_embed.proj.bias");
  crate_linear_forward_ref(e, v, Wpe, bpe, B * n, P, d);
  assert_int_equal(crate_pos_table_ref(pos, g, d), CRATE_STATUS_OK);
  double *cls = getd(m, "cls_token"), *mtok = getd(m, "mask_token");
  crate_tokens_forward_ref(x, e, mask, cls, mtok, pos, B, n, d);
  for (size_t l = 0; l < cfg->depth; l++) {
    double *w1 = getl(m, "blocks.%zu.layers.0.0.norm.weight", l);
    double *b1 = getl(m, "blocks.%zu.layers.0.0.norm.bias", l);
    double *qkv = getl(m, "blocks.%zu.layers.0.0.fn.qkv.weight", l);
    double *ow = getl(m, "blocks.%zu.layers.0.0.fn.to_out.0.weight", l);
    double *ob = getl(m, "blocks.%zu.layers.0.0.fn.to_out.0.bias", l);
    double *w2 = getl(m, "blocks.%zu.layers.0.1.norm.weight", l);
    double *b2 = getl(m, "blocks.%zu.layers.0.1.norm.bias", l);
    double *D = getl(m, "blocks.%zu.layers.0.1.fn.weight", l);
    crate_layernorm_forward_ref(a, mean, rstd, x, w1, b1, 1e-5, M, d);
    crate_mssa_forward_ref(mm, w, attn, o, a, qkv, ow, ob, B, N, d, K, d / K);
    for (size_t i = 0; i < M * d; i++)
      h[i] = x[i] + mm[i];
    crate_layernorm_forward_ref(a, mean, rstd, h, w2, b2, 1e-5, M, d);
    crate_ista_forward_ref(x, r, a, D, cfg->ista_eta, cfg->ista_lambda, M, d);
    free(w1), free(b1), free(qkv), free(ow), free(ob), free(w2), free(b2), free(D);
  }
  double *nw = getd(m, "norm.weight"), *nb = getd(m, "norm.bias");
  crate_layernorm_forward_ref(y, mean, rstd, x, nw, nb, 1e-6, M, d);
  memcpy(x, y, M * d * sizeof *x);
  for (size_t l = 0; l < cfg->decoder_depth; l++) {
    double *wa = getl(m, "decoder_blocks.%zu.layers.0.0.norm.weight", l);
    double *ba = getl(m, "decoder_blocks.%zu.layers.0.0.norm.bias", l);
    double *E = getl(m, "decoder_blocks.%zu.layers.0.0.fn.weight", l);
    double *wb = getl(m, "decoder_blocks.%zu.layers.0.1.norm.weight", l);
    double *bb = getl(m, "decoder_blocks.%zu.layers.0.1.norm.bias", l);
    double *qkv = getl(m, "decoder_blocks.%zu.layers.0.1.fn.qkv.weight", l);
    double *ow = getl(m, "decoder_blocks.%zu.layers.0.1.fn.to_out.0.weight", l);
    double *ob = getl(m, "decoder_blocks.%zu.layers.0.1.fn.to_out.0.bias", l);
    crate_layernorm_forward_ref(a, mean, rstd, x, wa, ba, 1e-5, M, d);
    crate_linear_forward_ref(h, a, E, NULL, M, d, d);
    crate_layernorm_forward_ref(a, mean, rstd, h, wb, bb, 1e-5, M, d);
    crate_mssa_forward_ref(mm, w, attn, o, a, qkv, ow, ob, B, N, d, Kd, d / Kd);
    for (size_t i = 0; i < M * d; i++)
      x[i] = h[i] - mm[i];
    free(wa), free(ba), free(E), free(wb), free(bb), free(qkv), free(ow), free(ob);
  }
  double *dw = getd(m, "decoder_norm.weight"), *db = getd(m, "decoder_norm.bias");
  double *pw = getd(m, "decoder_pred.weight"), *pb = getd(m, "decoder_pred.bias");
  crate_layernorm_forward_ref(y, mean, rstd, x, dw, db, 1e-6, M, d);
  for (size_t b = 0; b < B; b++)
    crate_linear_forward_ref(pred + b * n * P, y + (b * N + 1) * d, pw, pb, n, d, P);
  assert_int_equal(crate_patchify_ref(vf, imgs, CRATE_PATCH_TARGET, B, C, H, Q), CRATE_STATUS_OK);
  for (size_t i = 0; i < B * n * P; i++)
    tgt[i] = vf[i];
  double loss = 0.0;
  assert_int_equal(crate_masked_mse_forward_ref(&loss, pred, tgt, mask, B * n, P), CRATE_STATUS_OK);
  free(vf), free(v), free(e), free(x), free(y), free(a), free(h), free(mm), free(w), free(o);
  free(r), free(mean), free(rstd), free(attn), free(pos), free(tgt), free(Wpe), free(bpe);
  free(cls), free(mtok), free(nw), free(nb), free(dw), free(db), free(pw), free(pb);
  return loss;
}

/* ---- whole-model gradient checks --------------------------------------- */

typedef struct gc_fixture {
  crate_model *m;
  float *imgs, *theta0, *grad;
  uint8_t *mask;
  size_t B, n_params;
  double loss0;
} gc_fixture;

static void gc_setup(gc_fixture *f) {
  crate_config cfg = tiny_config(2, 2);
  f->m = make_model(&cfg, 11);
  perturb_params(f->m, 12);
  const crate_dims *dm = crate_model_dims(f->m);
  f->B = 3;
  f->imgs = random_images(dm, f->B, 13);
  f->mask = random_mask(dm, f->B, cfg.mask_ratio, 14);
  assert_int_equal(crate_model_reserve(f->m, f->B), CRATE_STATUS_OK);
  f->loss0 = forward_loss(f->m, f->imgs, f->mask, f->B);
  assert_int_equal(crate_model_backward(f->m), CRATE_STATUS_OK);
  f->n_params = crate_model_param_count(f->m);
  f->theta0 = malloc(f->n_params * sizeof(float));
  f->grad = malloc(f->n_params * sizeof(float));
  assert_true(f->theta0 && f->grad);
  memcpy(f->theta0, crate_model_params(f->m), f->n_params * sizeof(float));
  memcpy(f->grad, crate_model_grads(f->m), f->n_params * sizeof(float));
}

static void gc_teardown(gc_fixture *f) {
  crate_model_destroy(f->m);
  free(f->imgs);
  free(f->mask);
  free(f->theta0);
  free(f->grad);
}

/* Loss at theta0 + s v (v over the whole block); returns the loss and
 * restores nothing (the caller resets). */
static double loss_along(gc_fixture *f, const float *v, double s) {
  float *th = crate_model_params(f->m);
  for (size_t i = 0; i < f->n_params; i++)
    th[i] = (float)((double)f->theta0[i] + s * (double)v[i]);
  return forward_loss(f->m, f->imgs, f->mask, f->B);
}

static void test_gradcheck_direction(void **state) {
  (void)state;
  gc_fixture f;
  gc_setup(&f);
  /* v: standard normal scaled by each tensor's RMS, so the step h is a
   * relative perturbation of every tensor. */
  float *v = malloc(f.n_params * sizeof *v);
  assert_non_null(v);
  crate_rng r;
  crate_rng_init(&r, 21, CRATE_RNG_PROBE);
  for (size_t i = 0; i + 1 < crate_model_tensor_count(f.m); i++) {
    crate_model_tensor t;
    assert_int_equal(crate_model_tensor_at(f.m, i, &t), CRATE_STATUS_OK);
    double ss = 0.0;
    for (size_t k = 0; k < t.desc.count; k++)
      ss += (double)t.data[k] * t.data[k];
    const double rms = sqrt(ss / (double)t.desc.count);
    for (size_t k = 0; k < t.desc.count; k++)
      v[t.desc.offset + k] = (float)(rms * crate_rng_normal(&r));
  }
  double gv = 0.0;
  for (size_t i = 0; i < f.n_params; i++)
    gv += (double)f.grad[i] * (double)v[i];
  /* 4-point stencil: (8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / (12 h). */
  const double steps[] = {3e-2, 1e-2, 3e-3, 1e-3, 3e-4};
  const double h_pick = 3e-3;
  double err_pick = INFINITY;
  for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
    const double h = steps[k];
    const double lp = loss_along(&f, v, h), lm = loss_along(&f, v, -h);
    const double lp2 = loss_along(&f, v, 2 * h), lm2 = loss_along(&f, v, -2 * h);
    const double fd4 = (8.0 * (lp - lm) - (lp2 - lm2)) / (12.0 * h);
    const double fd2 = (lp - lm) / (2.0 * h);
    const double e4 = fabs(fd4 - gv) / fabs(gv), e2 = fabs(fd2 - gv) / fabs(gv);
    crate_report("gradcheck", "direction h %.0e: g.v %.9e fd4 %.9e rel %.2e (central rel %.2e)", h,
                 gv, fd4, e4, e2);
    if (h == h_pick)
      err_pick = e4;
  }
  crate_report("gradcheck",
               "whole model (%zu params, loss %.6f): rel error %.2e at h = %.0e "
               "(bound 1e-2)",
               f.n_params, f.loss0, err_pick, h_pick);
  assert_true(err_pick <= 1e-2);
  free(v);
  gc_teardown(&f);
}

static void test_gradcheck_coordinates(void **state) {
  (void)state;
  /* Per tensor, three coordinates (the largest |g| and two random ones):
   * the float backward against a 4-point central difference of the DOUBLE
   * reference forward above, the coordinate set to x0 + s h exactly in
   * double.  Why double and a small step: the CLS row has a tiny variance
   * (cls_token ~ N(0, 0.02^2), Pos[0] = 0), so LN_1 scales it by up to
   * (var + eps)^(-1/2) ~ 50 and ISTA ReLU kinks are crossed within steps of
   * ~1e-5 on cls_token; a float loss cannot resolve steps that small. */
  gc_fixture f;
  gc_setup(&f);
  const crate_dims *dm = crate_model_dims(f.m);
  double *pred = dalloc(f.B * dm->n * dm->P);
  crate_rng r;
  crate_rng_init(&r, 31, CRATE_RNG_PROBE);
  double worst = 0.0;
  char worst_name[CRATE_TENSOR_NAME_MAX] = "";
  size_t checked = 0;
  for (size_t i = 0; i + 1 < crate_model_tensor_count(f.m); i++) {
    crate_model_tensor t;
    assert_int_equal(crate_model_tensor_at(f.m, i, &t), CRATE_STATUS_OK);
    const float *g = f.grad + t.desc.offset;
    size_t kmax = 0;
    double gmax = 0.0, ss = 0.0;
    for (size_t k = 0; k < t.desc.count; k++) {
      if (fabs((double)g[k]) > gmax) {
        gmax = fabs((double)g[k]);
        kmax = k;
      }
      ss += (double)f.theta0[t.desc.offset + k] * f.theta0[t.desc.offset + k];
    }
    crate_check(gmax > 0.0, "tensor %s has an all-zero gradient", t.desc.name);
    const double rms = sqrt(ss / (double)t.desc.count);
    const size_t coords[3] = {kmax, crate_rng_below(&r, (uint32_t)t.desc.count),
                              crate_rng_below(&r, (uint32_t)t.desc.count)};
    double terr = 0.0;
    for (size_t c = 0; c < 3; c++) {
      const double x0 = f.theta0[t.desc.offset + coords[c]], h = 1e-6 * fmax(rms, fabs(x0));
      const double s[4] = {1, -1, 2, -2};
      double L[4];
      g_override.name = t.desc.name;
      g_override.k = coords[c];
      for (int q = 0; q < 4; q++) {
        g_override.value = x0 + s[q] * h;
        L[q] = reference_forward(f.m, f.imgs, f.mask, f.B, pred);
      }
      g_override.name = NULL;
      const double fd = (8.0 * (L[0] - L[1]) - (L[2] - L[3])) / (12.0 * h);
      terr = fmax(terr, fabs(fd - (double)g[coords[c]]) / gmax);
      checked++;
    }
    if (terr > worst) {
      worst = terr;
      snprintf(worst_name, sizeof worst_name, "%s", t.desc.name);
    }
  }
  crate_report("gradcheck",
               "%zu coordinates over %zu tensors vs double FD: worst |fd - g| / "
               "max|g_tensor| %.2e in %s (bound 1e-4)",
               checked, crate_model_tensor_count(f.m) - 1, worst, worst_name);
  assert_true(worst <= 1e-4);
  free(pred);
  gc_teardown(&f);
}

static void test_forward_vs_reference(void **state) {
  (void)state;
  /* The tiny RGB config (C = 3: the two patch orders differ) and fmnist-tiny. */
  crate_config cfgs[2];
  cfgs[0] = tiny_config(3, 2);
  assert_int_equal(crate_config_preset("fmnist-tiny", &cfgs[1]), CRATE_STATUS_OK);
  for (size_t c = 0; c < 2; c++) {
    crate_model *m = make_model(&cfgs[c], 41);
    perturb_params(m, 42);
    const crate_dims *dm = crate_model_dims(m);
    const size_t B = 2;
    float *imgs = random_images(dm, B, 43);
    uint8_t *mask = random_mask(dm, B, cfgs[c].mask_ratio, 44);
    assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
    const double loss = forward_loss(m, imgs, mask, B);
    size_t Bp = 0;
    const float *pred = crate_model_pred(m, &Bp);
    assert_int_equal(Bp, B);
    double *ref = dalloc(B * dm->n * dm->P), *predd = dalloc(B * dm->n * dm->P);
    const double loss_ref = reference_forward(m, imgs, mask, B, ref);
    for (size_t i = 0; i < B * dm->n * dm->P; i++)
      predd[i] = pred[i];
    const double ep = crate_rel_linf(predd, ref, B * dm->n * dm->P);
    const double el = fabs(loss - loss_ref) / fabs(loss_ref);
    crate_report("reference",
                 "%s: pred rel Linf %.2e (bound 1e-5), loss %.8f vs %.8f rel %.2e "
                 "(bound 1e-6)",
                 cfgs[c].preset, ep, loss, loss_ref, el);
    assert_true(ep <= 1e-5);
    assert_true(el <= 1e-6);
    free(ref), free(predd), free(imgs), free(mask);
    crate_model_destroy(m);
  }
}

/* ---- determinism ------------------------------------------------------- */

static void test_determinism(void **state) {
  (void)state;
  crate_config cfg;
  assert_int_equal(crate_config_preset("fmnist-tiny", &cfg), CRATE_STATUS_OK);
  crate_model *a = make_model(&cfg, 5), *b = make_model(&cfg, 5), *c = make_model(&cfg, 6);
  const crate_dims *dm = crate_model_dims(a);
  const size_t n = crate_model_param_count(a), B = 2;
  assert_memory_equal(crate_model_params(a), crate_model_params(b), n * sizeof(float));
  /* Another seed changes every randomly initialised entry (all but the
   * LayerNorm and zero-bias tensors). */
  size_t differ = 0, random_entries = 0;
  for (size_t i = 0; i < n; i++)
    differ += crate_model_params(a)[i] != crate_model_params(c)[i];
  for (size_t i = 0; i + 1 < crate_model_tensor_count(a); i++) {
    crate_model_tensor t;
    assert_int_equal(crate_model_tensor_at(a, i, &t), CRATE_STATUS_OK);
    const char *nm = t.desc.name;
    const size_t ln = strlen(nm);
    const bool fixed = (ln >= 11 && strcmp(nm + ln - 11, "norm.weight") == 0) ||
                       (ln >= 9 && strcmp(nm + ln - 9, "norm.bias") == 0) ||
                       (ln >= 13 && strcmp(nm + ln - 13, "to_out.0.bias") == 0) ||
                       strcmp(nm, "decoder_pred.bias") == 0;
    random_entries += fixed ? 0 : t.desc.count;
  }
  float *imgs = random_images(dm, B, 51);
  uint8_t *mask = random_mask(dm, B, cfg.mask_ratio, 52);
  assert_int_equal(crate_model_reserve(a, B), CRATE_STATUS_OK);
  assert_int_equal(crate_model_reserve(b, 4), CRATE_STATUS_OK); /* larger arena, same bits */
  const double la = forward_loss(a, imgs, mask, B), lb = forward_loss(b, imgs, mask, B);
  assert_int_equal(crate_model_backward(a), CRATE_STATUS_OK);
  assert_int_equal(crate_model_backward(b), CRATE_STATUS_OK);
  const double la2 = forward_loss(a, imgs, mask, B);
  crate_report("determinism",
               "seed 5 twice: loss %.17g vs %.17g vs rerun %.17g; seed 6 differs "
               "in %zu of %zu params (%zu randomly initialised)",
               la, lb, la2, differ, n, random_entries);
  assert_memory_equal(&la, &lb, sizeof la);
  assert_memory_equal(&la, &la2, sizeof la);
  assert_memory_equal(crate_model_grads(a), crate_model_grads(b), n * sizeof(float));
  /* backward twice gives the same gradients (it zeroes first) */
  float *g1 = malloc(n * sizeof *g1);
  assert_non_null(g1);
  memcpy(g1, crate_model_grads(a), n * sizeof *g1);
  assert_int_equal(crate_model_backward(a), CRATE_STATUS_OK);
  assert_memory_equal(g1, crate_model_grads(a), n * sizeof *g1);
  assert_true(differ <= random_entries && differ + 2 >= random_entries);
  free(g1), free(imgs), free(mask);
  crate_model_destroy(a);
  crate_model_destroy(b);
  crate_model_destroy(c);
}

/* ---- inference --------------------------------------------------------- */

static void test_infer_matches_forward(void **state) {
  (void)state;
  crate_config cfgs[3];
  assert_int_equal(crate_config_preset("fmnist-tiny", &cfgs[0]), CRATE_STATUS_OK);
  cfgs[1] = tiny_config(3, 1); /* odd depths: both ping-pong parities */
  cfgs[2] = tiny_config(2, 3);
  cfgs[2].norm_pix_loss = true;
  for (size_t c = 0; c < 3; c++) {
    crate_model *m = make_model(&cfgs[c], 61);
    perturb_params(m, 62);
    const crate_dims *dm = crate_model_dims(m);
    const size_t B = 3, np = B * dm->n * dm->P;
    float *imgs = random_images(dm, B, 63);
    uint8_t *mask = random_mask(dm, B, cfgs[c].mask_ratio, 64);
    float *pi = malloc(np * sizeof *pi);
    assert_non_null(pi);
    float *pt = malloc(np * sizeof *pt);
    assert_non_null(pt);
    /* Inference first: it needs no arena. */
    double li = 0.0;
    assert_int_equal(crate_model_infer(m, pi, imgs, mask, B, &li), CRATE_STATUS_OK);
    assert_int_equal(crate_model_arena_bytes(m), 0);
    assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
    /* (a) The same image and mask through the training forward (batch 1 per
     * call, as inference runs): the brief's bound is 1e-6 relative. */
    const size_t per = dm->C * dm->H * dm->H, np1 = dm->n * dm->P;
    double sum = 0.0;
    size_t masked = 0;
    for (size_t b = 0; b < B; b++) {
      size_t mb = 0;
      for (size_t t = 0; t < dm->n; t++)
        mb += mask[b * dm->n + t];
      sum += forward_loss(m, imgs + b * per, mask + b * dm->n, 1) * (double)mb;
      masked += mb;
      memcpy(pt + b * np1, crate_model_pred(m, NULL), np1 * sizeof *pt);
    }
    const double ep1 = crate_rel_linff(pi, pt, np);
    const double el1 = fabs(li - sum / (double)masked) / fabs(li);
    /* (b) The whole batch in one training forward.  Only the BLAS call shapes
     * differ (M = B N instead of N); a multi-threaded OpenBLAS splits them
     * differently, which changes float rounding, so this is a float-noise
     * bound over the L_e + L_d blocks, not a bit-identity check. */
    const double lt = forward_loss(m, imgs, mask, B);
    const double ep = crate_rel_linff(pi, crate_model_pred(m, NULL), np);
    const double el = fabs(li - lt) / fabs(lt);
    crate_report("infer",
                 "%s%s: per image pred rel Linf %.2e loss rel %.2e (bound 1e-6); whole "
                 "batch pred rel Linf %.2e loss rel %.2e (bound 1e-5)",
                 cfgs[c].preset, cfgs[c].norm_pix_loss ? " (norm_pix_loss)" : "", ep1, el1, ep, el);
    assert_true(ep1 <= 1e-6);
    assert_true(el1 <= 1e-6);
    assert_true(ep <= 1e-5);
    assert_true(el <= 1e-5);
    free(pt);
    /* Inference after a forward leaves the recorded forward alone. */
    assert_int_equal(crate_model_infer(m, pi, imgs, mask, 1, NULL), CRATE_STATUS_OK);
    assert_int_equal(crate_model_backward(m), CRATE_STATUS_OK);
    size_t Bp = 0;
    assert_non_null(crate_model_pred(m, &Bp));
    assert_int_equal(Bp, B);
    free(pi), free(imgs), free(mask);
    crate_model_destroy(m);
  }
}

/* ---- no allocation in the hot paths ------------------------------------ */

#if defined(__GLIBC__) && defined(__GLIBC_MINOR__) &&                                              \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define HAVE_MALLINFO2 1
static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}
#else
#define HAVE_MALLINFO2 0
static size_t heap_in_use(void) {
  return 0;
}
#endif

static void test_no_allocation(void **state) {
  (void)state;
  crate_config cfg = tiny_config(2, 2);
  crate_model *m = make_model(&cfg, 71);
  const crate_dims *dm = crate_model_dims(m);
  const size_t B = 4;
  float *imgs = random_images(dm, B, 72);
  uint8_t *mask = random_mask(dm, B, cfg.mask_ratio, 73);
  const size_t np = B * dm->n * dm->P, ni = B * dm->C * dm->H * dm->H;
  float *pi = malloc(np * sizeof *pi), *img1 = malloc(ni * sizeof *img1);
  float *img2 = malloc(ni * sizeof *img2);
  assert_true(pi && img1 && img2);
  size_t want = 0;
  assert_int_equal(crate_model_arena_size(m, B, &want), CRATE_STATUS_OK);
  assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
  assert_int_equal(crate_model_arena_bytes(m), want);
  const size_t allocs0 = crate_model_alloc_count(m);
  /* Reserving a smaller batch again is a no-op. */
  assert_int_equal(crate_model_reserve(m, 2), CRATE_STATUS_OK);
  assert_int_equal(crate_model_alloc_count(m), allocs0);
  size_t heap0 = 0;
  const float *tok0 = NULL, *tok1 = NULL;
  for (int round = 0; round < 2; round++) {
    if (round == 1)
      heap0 = heap_in_use(); /* after a warm-up round (BLAS buffers) */
    (void)forward_loss(m, imgs, mask, B);
    assert_int_equal(crate_model_backward(m), CRATE_STATUS_OK);
    assert_int_equal(crate_model_reconstruct(m, img1, img2), CRATE_STATUS_OK);
    assert_int_equal(crate_model_infer(m, pi, imgs, mask, B, NULL), CRATE_STATUS_OK);
    assert_int_equal(crate_model_layer_tokens(m, CRATE_SITE_TOKENS, 0, round ? &tok1 : &tok0, NULL),
                     CRATE_STATUS_OK);
  }
  const size_t heap1 = heap_in_use();
  crate_report("alloc",
               "model allocations %zu -> %zu over forward/backward/reconstruct/infer; heap "
               "in use %zu -> %zu bytes (mallinfo2 %s); arena %zu bytes",
               allocs0, crate_model_alloc_count(m), heap0, heap1,
               HAVE_MALLINFO2 ? "available" : "unavailable", crate_model_arena_bytes(m));
  assert_int_equal(crate_model_alloc_count(m), allocs0);
  assert_int_equal(heap1, heap0);
  assert_ptr_equal(tok0, tok1);
  /* Arena size for fmnist-tiny at batch 256 against MODEL.md §8's estimate
   * (9 N d + K N^2) floats per layer per image (about 0.55 GB). */
  crate_config ft;
  assert_int_equal(crate_config_preset("fmnist-tiny", &ft), CRATE_STATUS_OK);
  crate_model *t = make_model(&ft, 0);
  size_t bytes = 0;
  assert_int_equal(crate_model_arena_size(t, 256, &bytes), CRATE_STATUS_OK);
  const double est = (9.0 * 50 * 128 + 4.0 * 50 * 50) * 8 * 256 * 4;
  crate_report("alloc",
               "fmnist-tiny batch 256 arena %.3f GB (MODEL.md §8 estimate %.3f GB, ratio "
               "%.2f)",
               (double)bytes / 1e9, est / 1e9, (double)bytes / est);
  assert_true((double)bytes / est > 0.5 && (double)bytes / est < 1.5);
  assert_int_equal(crate_model_arena_size(t, 0, &bytes), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_arena_size(t, SIZE_MAX / 16, &bytes), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_reserve(t, SIZE_MAX / 16), CRATE_STATUS_EINVAL);
  crate_model_destroy(t);
  free(pi), free(img1), free(img2), free(imgs), free(mask);
  crate_model_destroy(m);
}

/* ---- error statuses ---------------------------------------------------- */

static void test_forward_errors(void **state) {
  (void)state;
  crate_config cfg = tiny_config(1, 1);
  crate_model *m = make_model(&cfg, 81);
  const crate_dims *dm = crate_model_dims(m);
  const size_t B = 2;
  float *imgs = random_images(dm, B, 82);
  uint8_t *mask = random_mask(dm, B, cfg.mask_ratio, 83);
  uint8_t *none = calloc(B * dm->n, 1);
  float *pi = malloc(B * dm->n * dm->P * sizeof *pi);
  assert_true(none && pi);
  double loss = 0.0;
  /* Before reserve. */
  assert_int_equal(crate_model_forward(m, imgs, mask, B, &loss), CRATE_STATUS_EINVAL);
  assert_true(starts_with(crate_error_message(), "model: no activation arena"));
  assert_int_equal(crate_model_backward(m), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_reconstruct(m, NULL, NULL), CRATE_STATUS_EINVAL);
  assert_null(crate_model_pred(m, NULL));
  const float *z = NULL;
  assert_int_equal(crate_model_layer_tokens(m, CRATE_SITE_LATENT, 0, &z, NULL),
                   CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_reserve(m, 0), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_reserve(m, 1), CRATE_STATUS_OK);
  /* Batch larger than reserved, and 0. */
  assert_int_equal(crate_model_forward(m, imgs, mask, 2, &loss), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_forward(m, imgs, mask, 0, &loss), CRATE_STATUS_EINVAL);
  /* Growing the reservation reallocates the arena only (one block); the
   * gradient block stays where it is. */
  const float *grads1 = crate_model_grads(m);
  const size_t allocs1 = crate_model_alloc_count(m), bytes1 = crate_model_arena_bytes(m);
  assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
  assert_int_equal(crate_model_reserved_batch(m), B);
  assert_int_equal(crate_model_alloc_count(m), allocs1 + 1);
  assert_ptr_equal(crate_model_grads(m), grads1);
  assert_true(crate_model_arena_bytes(m) > bytes1);
  /* A mask with no masked patch: the loss is undefined. */
  assert_int_equal(crate_model_forward(m, imgs, none, B, &loss), CRATE_STATUS_EINVAL);
  crate_report("errors", "all-visible mask: %s", crate_error_message());
  assert_true(starts_with(crate_error_message(), "model: the mask of the batch has no masked"));
  assert_int_equal(crate_model_backward(m), CRATE_STATUS_EINVAL);
  /* One masked patch in the whole batch is enough. */
  none[dm->n + 1] = 1;
  assert_int_equal(crate_model_forward(m, imgs, none, B, &loss), CRATE_STATUS_OK);
  assert_int_equal(crate_model_backward(m), CRATE_STATUS_OK);
  none[dm->n + 1] = 0;
  /* Non-finite pixels are rejected. */
  imgs[dm->C * dm->H * dm->H + 5] = NAN;
  assert_int_equal(crate_model_forward(m, imgs, mask, B, &loss), CRATE_STATUS_EINVAL);
  assert_true(starts_with(crate_error_message(), "model: image 1 of the batch has a non-finite"));
  assert_int_equal(crate_model_infer(m, pi, imgs, mask, B, NULL), CRATE_STATUS_EINVAL);
  imgs[dm->C * dm->H * dm->H + 5] = 0.5f;
  /* Inference: an all-visible mask is fine without a loss, not with one. */
  assert_int_equal(crate_model_infer(m, pi, imgs, none, B, NULL), CRATE_STATUS_OK);
  assert_int_equal(crate_model_infer(m, pi, imgs, none, B, &loss), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_infer(m, pi, imgs, mask, 0, NULL), CRATE_STATUS_EINVAL);
  /* Non-finite loss. */
  assert_int_equal(crate_model_forward(m, imgs, mask, B, &loss), CRATE_STATUS_OK);
  assert_int_equal(crate_model_layer_tokens(m, CRATE_SITE_ENC_OUT, 1, &z, NULL),
                   CRATE_STATUS_EINVAL);
  assert_int_equal(crate_model_layer_tokens(m, (crate_model_site)99, 0, &z, NULL),
                   CRATE_STATUS_EINVAL);
  crate_model_tensor t;
  assert_int_equal(crate_model_tensor_find(m, "decoder_pred.bias", &t), CRATE_STATUS_OK);
  t.data[0] = NAN; /* a corrupted parameter */
  assert_int_equal(crate_model_forward(m, imgs, mask, B, &loss), CRATE_STATUS_ENUMERIC);
  crate_report("errors", "NaN in decoder_pred.bias: %s", crate_error_message());
  assert_int_equal(crate_model_backward(m), CRATE_STATUS_OK); /* the forward was recorded */
  assert_int_equal(crate_model_infer(m, pi, imgs, mask, B, &loss), CRATE_STATUS_ENUMERIC);
  /* reconstruct refuses per-patch-normalised predictions. */
  crate_model_destroy(m);
  cfg.norm_pix_loss = true;
  m = make_model(&cfg, 81);
  assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
  (void)forward_loss(m, imgs, mask, B);
  assert_int_equal(crate_model_reconstruct(m, pi, NULL), CRATE_STATUS_EINVAL);
  assert_true(starts_with(crate_error_message(), "model: predictions are per-patch normalised"));
  crate_model_destroy(m);
  crate_model_destroy(NULL);
  free(imgs), free(mask), free(none), free(pi);
}

/* ---- reconstruction images (MODEL.md §3.11) ---------------------------- */

static void test_reconstruct(void **state) {
  (void)state;
  crate_config cfg = tiny_config(1, 1);
  crate_model *m = make_model(&cfg, 91);
  const crate_dims *dm = crate_model_dims(m);
  const size_t B = 2, C = dm->C, H = dm->H, Q = dm->Q, g = dm->g, n = dm->n, P = dm->P;
  float *imgs = random_images(dm, B, 92);
  uint8_t *mask = random_mask(dm, B, cfg.mask_ratio, 93);
  float *ip = malloc(B * C * H * H * sizeof *ip), *ia = malloc(B * C * H * H * sizeof *ia);
  assert_true(ip && ia);
  assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
  (void)forward_loss(m, imgs, mask, B);
  assert_int_equal(crate_model_reconstruct(m, ip, ia), CRATE_STATUS_OK);
  const float *pred = crate_model_pred(m, NULL);
  /* Index formulas of MODEL.md §3.1 (target order (i, j, ch)). */
  size_t bad = 0, pasted_pred = 0;
  for (size_t b = 0; b < B; b++)
    for (size_t ch = 0; ch < C; ch++)
      for (size_t yy = 0; yy < H; yy++)
        for (size_t xx = 0; xx < H; xx++) {
          const size_t r = yy / Q, c = xx / Q, i = yy % Q, j = xx % Q, t = r * g + c;
          const size_t pix = ((b * C + ch) * H + yy) * H + xx;
          const float want = pred[(b * n + t) * P + (i * Q + j) * C + ch];
          bad += ip[pix] != want;
          if (mask[b * n + t]) {
            bad += ia[pix] != want;
            pasted_pred++;
          } else {
            bad += ia[pix] != imgs[pix];
          }
        }
  crate_report("reconstruct",
               "%zu mismatching pixels; %zu of %zu pasted pixels from the prediction", bad,
               pasted_pred, B * C * H * H);
  assert_int_equal(bad, 0);
  assert_int_equal(pasted_pred, B * dm->n_masked * P);
  /* Layer tokens: the encoder output is non-negative (ReLU), rows = B N. */
  const float *z = NULL;
  size_t rows = 0;
  assert_int_equal(crate_model_layer_tokens(m, CRATE_SITE_ENC_OUT, 0, &z, &rows), CRATE_STATUS_OK);
  assert_int_equal(rows, B * dm->N);
  size_t neg = 0, zeros = 0;
  for (size_t k = 0; k < rows * dm->d; k++) {
    neg += z[k] < 0.0f;
    zeros += z[k] == 0.0f;
  }
  crate_report("reconstruct", "ISTA output: %zu negative, %zu of %zu exactly zero", neg, zeros,
               rows * dm->d);
  assert_int_equal(neg, 0);
  free(ip), free(ia), free(imgs), free(mask);
  crate_model_destroy(m);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_param_counts),
      cmocka_unit_test(test_tensor_table),
      cmocka_unit_test(test_flops),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_init_ranges),
      cmocka_unit_test(test_gradcheck_direction),
      cmocka_unit_test(test_gradcheck_coordinates),
      cmocka_unit_test(test_forward_vs_reference),
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_infer_matches_forward),
      cmocka_unit_test(test_no_allocation),
      cmocka_unit_test(test_forward_errors),
      cmocka_unit_test(test_reconstruct),
  };
  return CRATE_RUN("model", tests, argc, argv);
}
