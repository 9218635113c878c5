/* test_parity.c: framework parity and model files (STYLE.md §7 layer 3,
 * MODEL.md §11).
 *
 * The committed fixtures in tests/reference/ come from
 * scripts/gen_reference.py (PyTorch, float32, MODEL.md §3 implemented
 * independently; see tests/reference/README.md).  For each configuration
 * the C model is built from <name>.model.safetensors (the real loader) and
 * run on the fixture's input batch and FIXED masks; the loss and the
 * reconstruction must agree to relative 1e-4 and every parameter gradient
 * to relative 1e-3 (relative L-infinity per tensor: max |c - ref| / max
 * |ref|).  The errors are printed per tensor group, next to the
 * float32-vs-float64 noise of the reference itself.
 *
 * Model files: save -> load is bit-identical, the C writer reproduces the
 * Python converter's file byte for byte, and the loader rejects a wrong
 * shape, a missing tensor, an unknown tensor, a missing head count or
 * lambda (EFORMAT, with the flag named), metadata contradicting the shapes,
 * non-finite weights, a foreign position table and a newer format version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crate/model.h"
#include "crate/modelio.h"
#include "crate/safetensors.h"
#include "test_util.h"

#define LOSS_RTOL 1e-4
#define PRED_RTOL 1e-4
#define GRAD_RTOL 1e-3

/* ---- fixtures ---------------------------------------------------------------------- */

static const char *g_refdir;

/* The fixture directory: $CRATE_REFERENCE_DIR, next to this source file, or
 * relative to the usual working directories (repository or build root). */
static const char *find_refdir(void) {
  static char found[512];
  const char *env = getenv("CRATE_REFERENCE_DIR");
  const char *src = __FILE__;
  const char *slash = strrchr(src, '/');
  char here[256] = ".";
  if (slash && (size_t)(slash - src) < sizeof here) {
    memcpy(here, src, (size_t)(slash - src));
    here[slash - src] = '\0';
  }
  char cand[5][300];
  snprintf(cand[0], sizeof cand[0], "%.250s", env ? env : "");
  snprintf(cand[1], sizeof cand[1], "%.250s/reference", here);
  snprintf(cand[2], sizeof cand[2], "tests/reference");
  snprintf(cand[3], sizeof cand[3], "../tests/reference");
  snprintf(cand[4], sizeof cand[4], "../../tests/reference");
  for (int i = 0; i < 5; i++) {
    if (!cand[i][0])
      continue;
    char probe[400];
    snprintf(probe, sizeof probe, "%.300s/fmnist-tiny.model.safetensors", cand[i]);
    if (access(probe, R_OK) == 0) {
      snprintf(found, sizeof found, "%.300s", cand[i]);
      return found;
    }
  }
  return NULL;
}

static void fixture_path(char *buf, size_t n, const char *name, const char *kind) {
  snprintf(buf, n, "%.400s/%.64s.%.8s.safetensors", g_refdir, name, kind);
}

/* ---- comparison helpers ------------------------------------------------------------- */

/* Tensor groups for the report. */
static const char *const k_groups[] = {
    "patch_embed",    "cls/mask tokens", "enc LayerNorms", "enc MSSA",     "enc ISTA D",  "norm",
    "dec LayerNorms", "dec E",           "dec MSSA",       "decoder_norm", "decoder_pred"};
#define N_GROUPS (sizeof k_groups / sizeof k_groups[0])

static size_t group_of(const char *name) {
  const bool enc = strncmp(name, "blocks.", 7) == 0,
             dec = strncmp(name, "decoder_blocks.", 15) == 0;
  if (strncmp(name, "patch_embed.", 12) == 0)
    return 0;
  if (!strcmp(name, "cls_token") || !strcmp(name, "mask_token"))
    return 1;
  if (enc && strstr(name, ".norm."))
    return 2;
  if (enc && strstr(name, "layers.0.0.fn."))
    return 3;
  if (enc && strstr(name, "layers.0.1.fn."))
    return 4;
  if (!strncmp(name, "norm.", 5))
    return 5;
  if (dec && strstr(name, ".norm."))
    return 6;
  if (dec && strstr(name, "layers.0.0.fn."))
    return 7;
  if (dec && strstr(name, "layers.0.1.fn."))
    return 8;
  if (!strncmp(name, "decoder_norm.", 13))
    return 9;
  if (!strncmp(name, "decoder_pred.", 13))
    return 10;
  fail_msg("tensor %s has no report group", name);
  return 0;
}

static double meta_num(const crate_st *st, const char *key) {
  const char *s = crate_st_metadata(st, key);
  return s ? strtod(s, NULL) : NAN;
}

/* Runs one fixture: forward, loss, reconstruction, inference path,
 * backward, every gradient. */
static void run_parity(const char *id, const char *name, size_t want_K, double want_lambda) {
  crate_check(g_refdir != NULL, "fixture directory tests/reference not found (set "
                                "CRATE_REFERENCE_DIR)");
  char mpath[1024], rpath[1024];
  fixture_path(mpath, sizeof mpath, name, "model");
  fixture_path(rpath, sizeof rpath, name, "ref");
  crate_model *m = NULL;
  int rc = crate_model_load(mpath, &m);
  crate_check(rc == CRATE_STATUS_OK, "load %s: %s", mpath, crate_error_message());
  crate_st *ref = NULL;
  rc = crate_st_open(rpath, &ref);
  crate_check(rc == CRATE_STATUS_OK, "open %s: %s", rpath, crate_error_message());

  const crate_config *cfg = crate_model_config(m);
  const crate_dims *dm = crate_model_dims(m);
  assert_int_equal(cfg->num_heads, want_K);
  assert_true(cfg->ista_lambda == want_lambda);
  /* The loaded config agrees with the reference file's own copy. */
  assert_int_equal(cfg->embed_dim, (size_t)meta_num(ref, "crate.embed_dim"));
  assert_int_equal(cfg->depth, (size_t)meta_num(ref, "crate.depth"));
  assert_int_equal(cfg->decoder_depth, (size_t)meta_num(ref, "crate.decoder_depth"));
  assert_int_equal(cfg->img_size, (size_t)meta_num(ref, "crate.img_size"));

  crate_st_tensor tin, tmask, tloss, tpred, tloss64;
  assert_int_equal(crate_st_find(ref, "input", &tin), CRATE_STATUS_OK);
  assert_int_equal(crate_st_find(ref, "mask", &tmask), CRATE_STATUS_OK);
  assert_int_equal(crate_st_find(ref, "loss", &tloss), CRATE_STATUS_OK);
  assert_int_equal(crate_st_find(ref, "pred", &tpred), CRATE_STATUS_OK);
  assert_int_equal(crate_st_find(ref, "ref64.loss", &tloss64), CRATE_STATUS_OK);
  const size_t B = tin.shape[0];
  assert_true(tin.ndim == 4 && tin.shape[1] == dm->C && tin.shape[2] == dm->H &&
              tin.shape[3] == dm->H);
  assert_true(tmask.ndim == 2 && tmask.shape[0] == B && tmask.shape[1] == dm->n);
  assert_true(tpred.ndim == 3 && tpred.shape[0] == B && tpred.shape[1] == dm->n &&
              tpred.shape[2] == dm->P);
  assert_non_null(tloss.data64);
  uint8_t *mask = malloc(B * dm->n);
  float *pred_inf = malloc(B * dm->n * dm->P * sizeof(float));
  assert_non_null(mask);
  assert_non_null(pred_inf);
  for (size_t b = 0; b < B; b++) {
    size_t masked = 0;
    for (size_t t = 0; t < dm->n; t++) {
      mask[b * dm->n + t] = tmask.data[b * dm->n + t] > 0.5f;
      masked += mask[b * dm->n + t];
    }
    assert_int_equal(masked, dm->n_masked); /* n_keep visible per image */
  }

  /* Forward. */
  assert_int_equal(crate_model_reserve(m, B), CRATE_STATUS_OK);
  double loss = NAN;
  rc = crate_model_forward(m, tin.data, mask, B, &loss);
  crate_check(rc == CRATE_STATUS_OK, "forward: %s", crate_error_message());
  const double ref_loss = tloss.data64[0];
  const double loss_err = fabs(loss - ref_loss) / fabs(ref_loss);
  size_t Bp = 0;
  const float *pred = crate_model_pred(m, &Bp);
  assert_non_null(pred);
  assert_int_equal(Bp, B);
  const double pred_err = crate_rel_linff(pred, tpred.data, tpred.count);
  /* The single-image inference path computes the same thing. */
  double loss_inf = NAN;
  rc = crate_model_infer(m, pred_inf, tin.data, mask, B, &loss_inf);
  crate_check(rc == CRATE_STATUS_OK, "infer: %s", crate_error_message());
  const double inf_err = crate_rel_linff(pred_inf, tpred.data, tpred.count);
  const double inf_loss_err = fabs(loss_inf - ref_loss) / fabs(ref_loss);

  /* Backward and every gradient. */
  rc = crate_model_backward(m);
  crate_check(rc == CRATE_STATUS_OK, "backward: %s", crate_error_message());
  double gerr[N_GROUPS] = {0};
  size_t gcount[N_GROUPS] = {0}, compared = 0, failed = 0;
  double worst = 0.0;
  char worst_name[CRATE_TENSOR_NAME_MAX] = "";
  for (size_t i = 0; i < crate_model_tensor_count(m); i++) {
    crate_model_tensor t;
    assert_int_equal(crate_model_tensor_at(m, i, &t), CRATE_STATUS_OK);
    if (!t.desc.trainable)
      continue;
    char gname[128];
    snprintf(gname, sizeof gname, "grad.%s", t.desc.name);
    crate_st_tensor gt;
    rc = crate_st_find(ref, gname, &gt);
    crate_check(rc == CRATE_STATUS_OK, "reference lacks %s", gname);
    assert_int_equal(gt.count, t.desc.count);
    assert_non_null(t.grad);
    double e = crate_rel_linff(t.grad, gt.data, gt.count);
    size_t g = group_of(t.desc.name);
    if (!(e <= gerr[g]))
      gerr[g] = e;
    gcount[g]++;
    compared++;
    if (!(e <= worst)) {
      worst = e;
      snprintf(worst_name, sizeof worst_name, "%s", t.desc.name);
    }
    if (!(e <= GRAD_RTOL)) {
      failed++;
      printf("# [%s] FAIL gradient %s: rel err %.3e > %.0e\n", id, t.desc.name, e, GRAD_RTOL);
    }
  }

  crate_report(id,
               "%s (B=%zu, N=%zu, d=%zu, K=%zu, P=%zu, %zu+%zu layers, %zu masked of %zu "
               "per image; torch %s, seed %s)",
               name, B, dm->N, dm->d, dm->K, dm->P, dm->Le, dm->Ld, dm->n_masked, dm->n,
               crate_st_metadata(ref, "crate.ref.torch"), crate_st_metadata(ref, "crate.ref.seed"));
  crate_report(id,
               "loss C %.9g vs torch %.9g: rel err %.3e (bound %.0e); torch f32 vs f64: "
               "%s",
               loss, ref_loss, loss_err, LOSS_RTOL,
               crate_st_metadata(ref, "crate.ref.f32_vs_f64.loss"));
  crate_report(id,
               "reconstruction (%zu values): rel Linf err %.3e (bound %.0e); torch f32 vs "
               "f64: %s",
               tpred.count, pred_err, PRED_RTOL,
               crate_st_metadata(ref, "crate.ref.f32_vs_f64.pred"));
  crate_report(id, "inference path: pred rel err %.3e, loss rel err %.3e (bound %.0e)", inf_err,
               inf_loss_err, PRED_RTOL);
  for (size_t g = 0; g < N_GROUPS; g++)
    if (gcount[g])
      crate_report(id, "grad %-16s (%2zu tensors): max rel err %.3e (bound %.0e)", k_groups[g],
                   gcount[g], gerr[g], GRAD_RTOL);
  crate_report(id, "gradients: %zu tensors compared, worst %.3e (%s); torch f32 vs f64 worst: %s",
               compared, worst, worst_name,
               crate_st_metadata(ref, "crate.ref.f32_vs_f64.grad_max"));
  crate_check(loss_err <= LOSS_RTOL, "loss rel err %.3e", loss_err);
  crate_check(pred_err <= PRED_RTOL, "pred rel err %.3e", pred_err);
  crate_check(inf_err <= PRED_RTOL && inf_loss_err <= LOSS_RTOL, "inference rel err %.3e / %.3e",
              inf_err, inf_loss_err);
  crate_check(failed == 0, "%zu gradient tensors beyond %.0e", failed, GRAD_RTOL);
  /* Every trainable tensor has a reference gradient and vice versa. */
  size_t ref_grads = 0;
  for (size_t i = 0; i < crate_st_count(ref); i++) {
    crate_st_tensor t;
    assert_int_equal(crate_st_tensor_at(ref, i, &t), CRATE_STATUS_OK);
    ref_grads += strncmp(t.name, "grad.", 5) == 0;
  }
  assert_int_equal(ref_grads, compared);
  assert_int_equal(compared, crate_model_tensor_count(m) - 1);
  free(mask);
  free(pred_inf);
  crate_st_close(ref);
  crate_model_destroy(m);
}

static void test_parity_fmnist_tiny(void **state) {
  (void)state;
  run_parity("P1", "fmnist-tiny", 4, 0.1);
}

static void test_parity_rgb224(void **state) {
  (void)state;
  run_parity("P2", "rgb224-mini", 4, 0.5);
}

/* ---- model files ---------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)sz + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
  fclose(f);
  *n = (size_t)sz;
  return b;
}

static void test_save_load_bitwise(void **state) {
  (void)state;
  crate_check(g_refdir != NULL, "fixture directory not found");
  const char *names[2] = {"fmnist-tiny", "rgb224-mini"};
  char tmpl[] = "/tmp/crate_parity_XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  for (int k = 0; k < 2; k++) {
    char mpath[1024], p1[1100], p2[1100];
    fixture_path(mpath, sizeof mpath, names[k], "model");
    snprintf(p1, sizeof p1, "%s/a.safetensors", tmpl);
    snprintf(p2, sizeof p2, "%s/b.safetensors", tmpl);
    crate_model *m = NULL, *m2 = NULL;
    assert_int_equal(crate_model_load(mpath, &m), CRATE_STATUS_OK);
    crate_st *orig = NULL;
    assert_int_equal(crate_st_open(mpath, &orig), CRATE_STATUS_OK);
    const char *source = crate_st_metadata(orig, "crate.source");
    assert_non_null(source);
    const crate_metadata_entry extra[1] = {{"crate.source", source}};
    assert_int_equal(crate_model_save(m, p1, extra, 1), CRATE_STATUS_OK);
    assert_int_equal(crate_model_load(p1, &m2), CRATE_STATUS_OK);
    /* parameters, position table and config are bit-identical */
    const size_t np = crate_model_param_count(m);
    const crate_dims *dm = crate_model_dims(m);
    size_t diff = np == crate_model_param_count(m2) ? 0 : 1;
    diff += memcmp(crate_model_params(m), crate_model_params(m2), np * sizeof(float)) != 0;
    diff += memcmp(crate_model_pos_embed(m), crate_model_pos_embed(m2),
                   dm->N * dm->d * sizeof(float)) != 0;
    diff += memcmp(crate_model_config(m), crate_model_config(m2), sizeof(crate_config)) != 0;
    /* the loaded position table is the stored one (float32 as in PyTorch) */
    crate_st_tensor pos;
    assert_int_equal(crate_st_find(orig, "decoder_pos_embed", &pos), CRATE_STATUS_OK);
    diff += memcmp(pos.data, crate_model_pos_embed(m), pos.count * sizeof(float)) != 0;
    /* saving again gives the same bytes, and the same bytes as the Python
     * converter (tools/torch2crate.py) wrote */
    assert_int_equal(crate_model_save(m2, p2, extra, 1), CRATE_STATUS_OK);
    size_t n0, n1, n2;
    unsigned char *b0 = slurp(mpath, &n0), *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    const bool same12 = n1 == n2 && memcmp(b1, b2, n1) == 0;
    const bool same01 = n0 == n1 && memcmp(b0, b1, n0) == 0;
    crate_report("P3",
                 "%s: save -> load: %zu differences (params %zu floats, pos table, config, "
                 "stored pos table used); resave identical: %s; C file == Python file (%zu "
                 "bytes): %s",
                 names[k], diff, np, same12 ? "yes" : "no", n0, same01 ? "yes" : "no");
    assert_int_equal(diff, 0);
    assert_true(same12);
    assert_true(same01);
    /* crate_model_save refuses to let extras replace config keys */
    const crate_metadata_entry bad[1] = {{"crate.num_heads", "3"}};
    assert_int_equal(crate_model_save(m, p2, bad, 1), CRATE_STATUS_EINVAL);
    free(b0);
    free(b1);
    free(b2);
    crate_st_close(orig);
    crate_model_destroy(m);
    crate_model_destroy(m2);
    unlink(p1);
    unlink(p2);
  }
  /* the fmnist-tiny file holds the MODEL.md §7 count */
  char mpath[1024];
  fixture_path(mpath, sizeof mpath, "fmnist-tiny", "model");
  crate_model *m = NULL;
  assert_int_equal(crate_model_load(mpath, &m), CRATE_STATUS_OK);
  crate_report("P3", "fmnist-tiny file: %zu trainable parameters (MODEL.md §7: 403344)",
               crate_model_param_count(m));
  assert_int_equal(crate_model_param_count(m), 403344);
  crate_model_destroy(m);
  rmdir(tmpl);
}

/* ---- the loader's rejections ------------------------------------------------------------- */

/* How a variant of the fmnist-tiny file differs from it. */
typedef struct variant {
  const char *label;
  const char *drop_tensor;         /* leave this tensor out */
  const char *reshape;             /* write this tensor with one more element in dim 0 */
  const char *add_tensor;          /* add a 1-element tensor of this name */
  const char *nan_in;              /* put a NaN into this tensor */
  double pos_bump;                 /* add this to one decoder_pos_embed value */
  const char *drop_meta;           /* leave this metadata key out */
  const char *set_key, *set_value; /* set a metadata key */
  crate_model_load_opts opts;
  int want;           /* expected status */
  const char *needle; /* expected message fragment */
} variant;

static int load_variant(const crate_st *src, const variant *v, crate_model **out) {
  crate_st_writer *w = NULL;
  assert_int_equal(crate_st_writer_create(&w), CRATE_STATUS_OK);
  float *scratch[2] = {NULL, NULL};
  for (size_t i = 0; i < crate_st_count(src); i++) {
    crate_st_tensor t;
    assert_int_equal(crate_st_tensor_at(src, i, &t), CRATE_STATUS_OK);
    if (v->drop_tensor && !strcmp(t.name, v->drop_tensor))
      continue;
    size_t shape[CRATE_ST_MAX_DIMS];
    memcpy(shape, t.shape, sizeof shape);
    const float *data = t.data;
    if (v->reshape && !strcmp(t.name, v->reshape)) {
      shape[0]++;
      scratch[0] = calloc(t.count * shape[0] / t.shape[0], sizeof(float));
      assert_non_null(scratch[0]);
      memcpy(scratch[0], t.data, t.count * sizeof(float));
      data = scratch[0];
    } else if ((v->nan_in && !strcmp(t.name, v->nan_in)) ||
               (v->pos_bump != 0 && !strcmp(t.name, "decoder_pos_embed"))) {
      scratch[1] = malloc(t.count * sizeof(float));
      assert_non_null(scratch[1]);
      memcpy(scratch[1], t.data, t.count * sizeof(float));
      if (v->nan_in)
        scratch[1][t.count / 2] = NAN;
      else
        scratch[1][t.count - 1] += (float)v->pos_bump;
      data = scratch[1];
    }
    assert_int_equal(crate_st_writer_add_f32(w, t.name, t.ndim, shape, data), CRATE_STATUS_OK);
  }
  const float one = 1.0f;
  const size_t s1[1] = {1};
  if (v->add_tensor)
    assert_int_equal(crate_st_writer_add_f32(w, v->add_tensor, 1, s1, &one), CRATE_STATUS_OK);
  for (size_t i = 0; i < crate_st_metadata_count(src); i++) {
    const char *k, *val;
    assert_int_equal(crate_st_metadata_at(src, i, &k, &val), CRATE_STATUS_OK);
    if (v->drop_meta && !strcmp(k, v->drop_meta))
      continue;
    assert_int_equal(crate_st_writer_set_metadata(w, k, val), CRATE_STATUS_OK);
  }
  if (v->set_key)
    assert_int_equal(crate_st_writer_set_metadata(w, v->set_key, v->set_value), CRATE_STATUS_OK);
  void *buf;
  size_t len;
  assert_int_equal(crate_st_writer_to_memory(w, &buf, &len), CRATE_STATUS_OK);
  crate_st_writer_destroy(w);
  free(scratch[0]);
  free(scratch[1]);
  crate_st *st = NULL;
  int rc = crate_st_open_memory(buf, len, "variant.safetensors", &st);
  free(buf);
  if (rc)
    return rc;
  rc = crate_model_load_st(st, &v->opts, out);
  crate_st_close(st);
  return rc;
}

static void test_loader_rejects(void **state) {
  (void)state;
  crate_check(g_refdir != NULL, "fixture directory not found");
  char mpath[1024];
  fixture_path(mpath, sizeof mpath, "fmnist-tiny", "model");
  crate_st *src = NULL;
  assert_int_equal(crate_st_open(mpath, &src), CRATE_STATUS_OK);
  const crate_model_load_opts none = {0, 0, false, 0.0};
  const crate_model_load_opts heads = {4, 0, false, 0.0}, lam = {0, 0, true, 0.25};
  const variant vs[] = {
      {"unchanged", NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, none, CRATE_STATUS_OK, ""},
      {"official pos_embed is ignored", NULL, NULL, "pos_embed", NULL, 0, NULL, "crate.source", "x",
       none, CRATE_STATUS_OK, ""},
      {"optim tensor", NULL, NULL, "optim.m.norm.bias", NULL, 0, NULL, NULL, NULL, none,
       CRATE_STATUS_OK, ""},
      {"wrong shape", NULL, "norm.bias", NULL, NULL, 0, NULL, NULL, NULL, none,
       CRATE_STATUS_EFORMAT,
       "tensor 'norm.bias' has shape [129] but the configuration needs [128]"},
      {"wrong shape (qkv)", NULL, "blocks.2.layers.0.0.fn.qkv.weight", NULL, NULL, 0, NULL, NULL,
       NULL, none, CRATE_STATUS_EFORMAT, "has shape [129, 128]"},
      {"missing tensor", "blocks.1.layers.0.1.fn.weight", NULL, NULL, NULL, 0, NULL, NULL, NULL,
       none, CRATE_STATUS_EFORMAT, "missing tensor 'blocks.1.layers.0.1.fn.weight'"},
      {"missing cls_token", "cls_token", NULL, NULL, NULL, 0, NULL, NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "missing tensor 'cls_token'"},
      {"unknown tensor", NULL, NULL, "decoder_blocks.0.layers.0.2.fn.weight", NULL, 0, NULL, NULL,
       NULL, none, CRATE_STATUS_EFORMAT, "unknown tensor 'decoder_blocks.0.layers.0.2.fn.weight'"},
      {"unknown tensor (head)", NULL, NULL, "head.weight", NULL, 0, NULL, NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "unknown tensor 'head.weight'"},
      {"missing num_heads", NULL, NULL, NULL, NULL, 0, "crate.num_heads", NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "pass --heads K"},
      {"missing num_heads, --heads 4", NULL, NULL, NULL, NULL, 0, "crate.num_heads", NULL, NULL,
       heads, CRATE_STATUS_OK, ""},
      {"missing lambda", NULL, NULL, NULL, NULL, 0, "crate.ista_lambda", NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "pass --lambda L"},
      {"missing lambda, --lambda 0.25", NULL, NULL, NULL, NULL, 0, "crate.ista_lambda", NULL, NULL,
       lam, CRATE_STATUS_OK, ""},
      {"metadata contradicts shapes", NULL, NULL, NULL, NULL, 0, NULL, "crate.embed_dim", "64",
       none, CRATE_STATUS_EFORMAT, "crate.embed_dim = 64 but cls_token gives 128"},
      {"metadata depth", NULL, NULL, NULL, NULL, 0, NULL, "crate.depth", "5", none,
       CRATE_STATUS_EFORMAT, "crate.depth = 5 but counting blocks.* gives 4"},
      {"heads do not divide d", NULL, NULL, NULL, NULL, 0, NULL, "crate.num_heads", "3", none,
       CRATE_STATUS_EFORMAT, "configuration in the file is invalid"},
      {"bad number", NULL, NULL, NULL, NULL, 0, NULL, "crate.ista_eta", "fast", none,
       CRATE_STATUS_EFORMAT, "crate.ista_eta = 'fast' is not a finite number"},
      {"NaN weight", NULL, NULL, NULL, "decoder_pred.weight", 0, NULL, NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "'decoder_pred.weight' holds a non-finite value"},
      {"pos table off by 1e-3", NULL, NULL, NULL, NULL, 1e-3, NULL, NULL, NULL, none,
       CRATE_STATUS_EFORMAT, "decoder_pos_embed differs from the 2-D sin-cos table"},
      {"pos table off by 4e-6 (accepted)", NULL, NULL, NULL, NULL, 4e-6, NULL, NULL, NULL, none,
       CRATE_STATUS_OK, ""},
      {"newer format", NULL, NULL, NULL, NULL, 0, NULL, "crate.format_version", "2", none,
       CRATE_STATUS_EFORMAT, "crate.format_version is '2'"},
      {"other arch", NULL, NULL, NULL, NULL, 0, NULL, "crate.arch", "vit", none,
       CRATE_STATUS_EFORMAT, "crate.arch is 'vit'"},
  };
  size_t bad = 0;
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    crate_model *m = NULL;
    crate_error_clear();
    int rc = load_variant(src, &vs[i], &m);
    const char *msg = crate_error_message();
    bool ok = rc == vs[i].want && (rc == CRATE_STATUS_OK ? m != NULL : m == NULL) &&
              strstr(msg, vs[i].needle) != NULL;
    if (rc == CRATE_STATUS_EFORMAT)
      ok = ok && strncmp(msg, "model: variant.safetensors: ", 28) == 0;
    if (ok && rc == CRATE_STATUS_OK && vs[i].opts.has_lambda)
      ok = crate_model_config(m)->ista_lambda == 0.25;
    if (ok && rc == CRATE_STATUS_OK && vs[i].pos_bump != 0) {
      /* the stored (bumped) table is used, not the recomputed one */
      crate_st_tensor pos;
      assert_int_equal(crate_st_find(src, "decoder_pos_embed", &pos), CRATE_STATUS_OK);
      ok = crate_model_pos_embed(m)[pos.count - 1] == pos.data[pos.count - 1] + (float)4e-6;
    }
    crate_report("P4", "%-36s -> %s%s%s", vs[i].label, crate_strerror(rc), rc ? ": " : "",
                 rc ? msg : "");
    if (!ok) {
      printf("# [P4] FAIL: want status %d with '%s'\n", vs[i].want, vs[i].needle);
      bad++;
    }
    crate_model_destroy(m);
  }
  crate_st_close(src);
  /* A missing file is ENOENT; a corrupt one EFORMAT from the reader. */
  crate_model *m = NULL;
  int rc = crate_model_load("/nonexistent/dir/model.safetensors", &m);
  crate_report("P4", "missing file -> %s: %s", crate_strerror(rc), crate_error_message());
  bad += rc != CRATE_STATUS_ENOENT || m != NULL;
  crate_check(bad == 0, "%zu loader cases misbehaved", bad);
}

int main(int argc, char **argv) {
  g_refdir = find_refdir();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parity_fmnist_tiny),
      cmocka_unit_test(test_parity_rgb224),
      cmocka_unit_test(test_save_load_bitwise),
      cmocka_unit_test(test_loader_rejects),
  };
  return CRATE_RUN("parity", tests, argc, argv);
}
