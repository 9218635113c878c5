/* test_ops.c: the CRATE-MAE layer kernels (include/crate/ops.h; MODEL.md §3,
 * §8; STYLE.md §7 layers 1 and 2).
 *
 * - A table-driven gradient check: one row per op (and two composite rows, the
 *   encoder and decoder layers of MODEL.md §3.6/§3.8, which check the layer
 *   formulas of §8).  Central or 4-point finite differences of the scalar
 *   <gy, y> are taken on the double-precision _ref forward; they are compared
 *   with the fast (float) backward and with the _ref backward, for every
 *   input and parameter.  Gradient buffers start from random values, so the
 *   check also proves that backward accumulates.  Rows with a ReLU skip the
 *   coordinates whose stencil comes within 2*step of the kink.
 * - Fast vs _ref agreement of every forward and backward at fmnist-tiny sizes.
 * - Property tests: ISTA with D = 0 / D = I, MSSA residual with zero
 *   out-projection, the sin-cos table, masking counts and uniformity (chi^2),
 *   the n = 10, r = 0.9 quirk, patchify round trips and orders, the loss.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crate/ops.h"
#include "internal.h"
#include "test_util.h"

/* ---- harness ------------------------------------------------------------------ */

/* Shapes and scalars an op row reads. */
typedef struct gc_ctx {
  size_t B, N, d, K, p; /* batch, tokens, width, heads, head dim */
  size_t dout;          /* second width (linear) */
  double eps, eta, lambda;
  float alpha;   /* residual sign */
  uint8_t *mask; /* (B, N - 1) for tokens, (B N) for the loss */
} gc_ctx;

#define GC_MAXT 10

typedef struct gc_spec {
  const char *name;
  size_t size;
  double scale, offset; /* init: offset + scale * N(0, 1) */
  bool grad;
} gc_spec;

typedef struct gc_row {
  const char *name;
  size_t (*specs)(const gc_ctx *c, gc_spec *s, size_t *nout);
  void (*fwd_ref)(const gc_ctx *c, double *const *t, double *y);
  void (*fwd_fast)(const gc_ctx *c, float *const *t, double *y);
  void (*bwd_ref)(const gc_ctx *c, double *const *t, const double *gy, double *const *g);
  void (*bwd_fast)(const gc_ctx *c, float *const *t, const float *gy, float *const *g);
  /* Pre-activations of the ReLU (NULL for smooth ops); returns their count. */
  size_t (*kink)(const gc_ctx *c, double *const *t, double *u);
  double step;
  int stencil;     /* 2 (central) or 4 points */
  double tol_ref;  /* _ref backward vs finite differences (double) */
  double tol_fast; /* fast backward (float) vs finite differences */
  double tol_fwd;  /* fast forward vs _ref forward */
  double tol_bwd;  /* fast backward vs _ref backward */
} gc_row;

static double *dalloc(size_t n) {
  double *p = calloc(n ? n : 1, sizeof *p);
  assert_non_null(p);
  return p;
}
static float *falloc(size_t n) {
  float *p = calloc(n ? n : 1, sizeof *p);
  assert_non_null(p);
  return p;
}
static void to_float(float *f, const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    f[i] = (float)x[i];
}
static void to_double(double *x, const float *f, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = (double)f[i];
}
/* Fills x with offset + scale N(0,1), rounded to float so that the double
 * and float copies hold the same numbers. */
static void fill(double *x, size_t n, double scale, double offset, crate_rng *r) {
  for (size_t i = 0; i < n; i++)
    x[i] = (double)(float)(offset + scale * crate_rng_normal(r));
}

/* ---- op rows: linear ---------------------------------------------------------- */

static size_t lin_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N;
  s[0] = (gc_spec){"x", M * c->d, 1.0, 0.0, true};
  s[1] = (gc_spec){"W", c->dout * c->d, 0.3, 0.0, true};
  s[2] = (gc_spec){"b", c->dout, 0.3, 0.0, true};
  *nout = M * c->dout;
  return 3;
}
static void lin_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  crate_linear_forward_ref(y, t[0], t[1], t[2], c->B * c->N, c->d, c->dout);
}
static void lin_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->dout;
  float *yf = falloc(n);
  crate_linear_forward(yf, t[0], t[1], t[2], c->B * c->N, c->d, c->dout);
  to_double(y, yf, n);
  free(yf);
}
static void lin_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  crate_linear_backward_ref(g[0], g[1], g[2], gy, t[0], t[1], c->B * c->N, c->d, c->dout);
}
static void lin_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  crate_linear_backward(g[0], g[1], g[2], gy, t[0], t[1], c->B * c->N, c->d, c->dout);
}

/* The decoder dictionary step H = E B^(1): linear, square, no bias. */
static size_t dict_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N;
  s[0] = (gc_spec){"B1", M * c->d, 1.0, 0.0, true};
  s[1] = (gc_spec){"E", c->d * c->d, 0.3, 0.0, true};
  *nout = M * c->d;
  return 2;
}
static void dict_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  crate_linear_forward_ref(y, t[0], t[1], NULL, c->B * c->N, c->d, c->d);
}
static void dict_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  float *yf = falloc(n);
  crate_linear_forward(yf, t[0], t[1], NULL, c->B * c->N, c->d, c->d);
  to_double(y, yf, n);
  free(yf);
}
static void dict_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  crate_linear_backward_ref(g[0], g[1], NULL, gy, t[0], t[1], c->B * c->N, c->d, c->d);
}
static void dict_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  crate_linear_backward(g[0], g[1], NULL, gy, t[0], t[1], c->B * c->N, c->d, c->d);
}

/* ---- op rows: LayerNorm, softmax --------------------------------------------- */

static size_t ln_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N;
  s[0] = (gc_spec){"x", M * c->d, 1.0, 0.5, true};
  s[1] = (gc_spec){"gamma", c->d, 0.2, 1.0, true};
  s[2] = (gc_spec){"beta", c->d, 0.2, 0.0, true};
  *nout = M * c->d;
  return 3;
}
static void ln_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  size_t M = c->B * c->N;
  double *mu = dalloc(M), *rs = dalloc(M);
  crate_layernorm_forward_ref(y, mu, rs, t[0], t[1], t[2], c->eps, M, c->d);
  free(mu);
  free(rs);
}
static void ln_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t M = c->B * c->N;
  float *yf = falloc(M * c->d), *mu = falloc(M), *rs = falloc(M);
  crate_layernorm_forward(yf, mu, rs, t[0], t[1], t[2], c->eps, M, c->d);
  to_double(y, yf, M * c->d);
  free(yf);
  free(mu);
  free(rs);
}
static void ln_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  size_t M = c->B * c->N;
  double *y = dalloc(M * c->d), *mu = dalloc(M), *rs = dalloc(M);
  crate_layernorm_forward_ref(y, mu, rs, t[0], t[1], t[2], c->eps, M, c->d);
  crate_layernorm_backward_ref(g[0], g[1], g[2], mu, rs, gy, t[0], t[1], M, c->d);
  free(y);
  free(mu);
  free(rs);
}
static void ln_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  size_t M = c->B * c->N;
  float *y = falloc(M * c->d), *mu = falloc(M), *rs = falloc(M);
  crate_layernorm_forward(y, mu, rs, t[0], t[1], t[2], c->eps, M, c->d);
  crate_layernorm_backward(g[0], g[1], g[2], mu, rs, gy, t[0], t[1], M, c->d);
  free(y);
  free(mu);
  free(rs);
}

/* Softmax rows: (B N, N), the shape of the stacked attention matrices. */
static size_t sm_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  s[0] = (gc_spec){"x", c->B * c->N * c->N, 1.5, 0.0, true};
  *nout = c->B * c->N * c->N;
  return 1;
}
static void sm_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  crate_softmax_forward_ref(y, t[0], c->B * c->N, c->N);
}
static void sm_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->N;
  float *yf = falloc(n);
  crate_softmax_forward(yf, t[0], c->B * c->N, c->N);
  to_double(y, yf, n);
  free(yf);
}
static void sm_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  size_t n = c->B * c->N * c->N;
  double *y = dalloc(n);
  crate_softmax_forward_ref(y, t[0], c->B * c->N, c->N);
  crate_softmax_backward_ref(g[0], gy, y, c->B * c->N, c->N);
  free(y);
}
static void sm_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  size_t n = c->B * c->N * c->N;
  float *y = falloc(n);
  crate_softmax_forward(y, t[0], c->B * c->N, c->N);
  crate_softmax_backward(g[0], gy, y, c->B * c->N, c->N);
  free(y);
}

/* ---- op rows: MSSA ------------------------------------------------------------ */

static size_t mssa_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N, Kp = c->K * c->p;
  s[0] = (gc_spec){"a", M * c->d, 1.0, 0.0, true};
  s[1] = (gc_spec){"Wqkv", Kp * c->d, 0.5, 0.0, true};
  s[2] = (gc_spec){"Wo", c->d * Kp, 0.3, 0.0, true};
  s[3] = (gc_spec){"bo", c->d, 0.3, 0.0, true};
  *nout = M * c->d;
  return 4;
}
typedef struct mssa_cache_d {
  double *w, *attn, *o;
} mssa_cache_d;
typedef struct mssa_cache_f {
  float *w, *attn, *o;
} mssa_cache_f;
static mssa_cache_d mssa_cd(const gc_ctx *c) {
  size_t M = c->B * c->N, Kp = c->K * c->p;
  return (mssa_cache_d){dalloc(M * Kp), dalloc(c->B * c->K * c->N * c->N), dalloc(M * Kp)};
}
static mssa_cache_f mssa_cf(const gc_ctx *c) {
  size_t M = c->B * c->N, Kp = c->K * c->p;
  return (mssa_cache_f){falloc(M * Kp), falloc(c->B * c->K * c->N * c->N), falloc(M * Kp)};
}
static void mssa_cd_free(mssa_cache_d *m) {
  free(m->w);
  free(m->attn);
  free(m->o);
}
static void mssa_cf_free(mssa_cache_f *m) {
  free(m->w);
  free(m->attn);
  free(m->o);
}
static void mssa_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  mssa_cache_d k = mssa_cd(c);
  crate_mssa_forward_ref(y, k.w, k.attn, k.o, t[0], t[1], t[2], t[3], c->B, c->N, c->d, c->K, c->p);
  mssa_cd_free(&k);
}
static void mssa_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  float *yf = falloc(n);
  mssa_cache_f k = mssa_cf(c);
  crate_mssa_forward(yf, k.w, k.attn, k.o, t[0], t[1], t[2], t[3], c->B, c->N, c->d, c->K, c->p);
  to_double(y, yf, n);
  mssa_cf_free(&k);
  free(yf);
}
static void mssa_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  double *y = dalloc(c->B * c->N * c->d);
  double *scr = dalloc(crate_mssa_scratch_size(c->B, c->N, c->K, c->p));
  mssa_cache_d k = mssa_cd(c);
  crate_mssa_forward_ref(y, k.w, k.attn, k.o, t[0], t[1], t[2], t[3], c->B, c->N, c->d, c->K, c->p);
  crate_mssa_backward_ref(g[0], g[1], g[2], g[3], scr, k.w, k.attn, k.o, gy, t[0], t[1], t[2], c->B,
                          c->N, c->d, c->K, c->p);
  mssa_cd_free(&k);
  free(y);
  free(scr);
}
static void mssa_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  float *y = falloc(c->B * c->N * c->d);
  float *scr = falloc(crate_mssa_scratch_size(c->B, c->N, c->K, c->p));
  mssa_cache_f k = mssa_cf(c);
  crate_mssa_forward(y, k.w, k.attn, k.o, t[0], t[1], t[2], t[3], c->B, c->N, c->d, c->K, c->p);
  crate_mssa_backward(g[0], g[1], g[2], g[3], scr, k.w, k.attn, k.o, gy, t[0], t[1], t[2], c->B,
                      c->N, c->d, c->K, c->p);
  mssa_cf_free(&k);
  free(y);
  free(scr);
}

/* ---- op rows: ISTA ------------------------------------------------------------ */

static size_t ista_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N;
  s[0] = (gc_spec){"a", M * c->d, 1.0, 0.0, true};
  s[1] = (gc_spec){"D", c->d * c->d, 0.3, 0.0, true};
  *nout = M * c->d;
  return 2;
}
static void ista_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  double *r = dalloc(n);
  crate_ista_forward_ref(y, r, t[0], t[1], c->eta, c->lambda, c->B * c->N, c->d);
  free(r);
}
static void ista_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  float *yf = falloc(n), *r = falloc(n);
  crate_ista_forward(yf, r, t[0], t[1], c->eta, c->lambda, c->B * c->N, c->d);
  to_double(y, yf, n);
  free(yf);
  free(r);
}
static void ista_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  size_t M = c->B * c->N, n = M * c->d;
  double *y = dalloc(n), *r = dalloc(n), *scr = dalloc(crate_ista_scratch_size(M, c->d));
  crate_ista_forward_ref(y, r, t[0], t[1], c->eta, c->lambda, M, c->d);
  crate_ista_backward_ref(g[0], g[1], scr, y, r, gy, t[0], t[1], c->eta, M, c->d);
  free(y);
  free(r);
  free(scr);
}
static void ista_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  size_t M = c->B * c->N, n = M * c->d;
  float *y = falloc(n), *r = falloc(n), *scr = falloc(crate_ista_scratch_size(M, c->d));
  crate_ista_forward(y, r, t[0], t[1], c->eta, c->lambda, M, c->d);
  crate_ista_backward(g[0], g[1], scr, y, r, gy, t[0], t[1], c->eta, M, c->d);
  free(y);
  free(r);
  free(scr);
}
/* U = a + eta r D - eta lambda from the definition, in double. */
static void ista_preact(double *u, const double *a, const double *D, const gc_ctx *c) {
  size_t M = c->B * c->N, d = c->d;
  double *r = dalloc(M * d), *y = dalloc(M * d);
  crate_ista_forward_ref(y, r, a, D, c->eta, c->lambda, M, d);
  for (size_t t = 0; t < M; t++)
    for (size_t j = 0; j < d; j++) {
      double s = 0.0;
      for (size_t i = 0; i < d; i++)
        s += D[i * d + j] * r[t * d + i];
      u[t * d + j] = a[t * d + j] + c->eta * s - c->eta * c->lambda;
    }
  free(r);
  free(y);
}
static size_t ista_kink(const gc_ctx *c, double *const *t, double *u) {
  ista_preact(u, t[0], t[1], c);
  return c->B * c->N * c->d;
}

/* ---- op rows: residual, loss, tokens ------------------------------------------ */

static size_t res_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t n = c->B * c->N * c->d;
  s[0] = (gc_spec){"x", n, 1.0, 0.0, true};
  s[1] = (gc_spec){"f", n, 1.0, 0.0, true};
  *nout = n;
  return 2;
}
static void res_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  for (size_t i = 0; i < c->B * c->N * c->d; i++)
    y[i] = t[0][i] + c->alpha * t[1][i];
}
static void res_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  float *yf = falloc(n);
  crate_residual_forward(yf, t[0], t[1], c->alpha, n);
  to_double(y, yf, n);
  free(yf);
}
static void res_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  (void)t;
  for (size_t i = 0; i < c->B * c->N * c->d; i++) {
    g[0][i] += gy[i];
    g[1][i] += c->alpha * gy[i];
  }
}
static void res_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  (void)t;
  crate_residual_backward(g[0], g[1], gy, c->alpha, c->B * c->N * c->d);
}

/* Masked MSE over rows = B N patch rows of length P = dout. */
static size_t mse_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t rows = c->B * c->N;
  s[0] = (gc_spec){"pred", rows * c->dout, 1.0, 0.0, true};
  s[1] = (gc_spec){"target", rows * c->dout, 1.0, 0.3, false};
  *nout = 1;
  return 2;
}
static void mse_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  assert_int_equal(crate_masked_mse_forward_ref(y, t[0], t[1], c->mask, c->B * c->N, c->dout),
                   CRATE_STATUS_OK);
}
static void mse_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  assert_int_equal(crate_masked_mse_forward(y, t[0], t[1], c->mask, c->B * c->N, c->dout),
                   CRATE_STATUS_OK);
}
static void mse_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  assert_int_equal(
      crate_masked_mse_backward_ref(g[0], t[0], t[1], c->mask, gy[0], c->B * c->N, c->dout),
      CRATE_STATUS_OK);
}
static void mse_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  assert_int_equal(
      crate_masked_mse_backward(g[0], t[0], t[1], c->mask, gy[0], c->B * c->N, c->dout),
      CRATE_STATUS_OK);
}

/* Token assembly: e (B, n, d), cls, mask_token (d), pos (N, d) fixed. */
static size_t tok_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t n = c->N - 1;
  s[0] = (gc_spec){"e", c->B * n * c->d, 1.0, 0.0, true};
  s[1] = (gc_spec){"cls", c->d, 1.0, 0.0, true};
  s[2] = (gc_spec){"mask_token", c->d, 1.0, 0.0, true};
  s[3] = (gc_spec){"pos", c->N * c->d, 1.0, 0.0, false};
  *nout = c->B * c->N * c->d;
  return 4;
}
static void tok_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  crate_tokens_forward_ref(y, t[0], c->mask, t[1], t[2], t[3], c->B, c->N - 1, c->d);
}
static void tok_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  float *yf = falloc(n);
  crate_tokens_forward(yf, t[0], c->mask, t[1], t[2], t[3], c->B, c->N - 1, c->d);
  to_double(y, yf, n);
  free(yf);
}
static void tok_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  (void)t;
  crate_tokens_backward_ref(g[0], g[1], g[2], gy, c->mask, c->B, c->N - 1, c->d);
}
static void tok_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  (void)t;
  crate_tokens_backward(g[0], g[1], g[2], gy, c->mask, c->B, c->N - 1, c->d);
}

/* ---- composite rows: encoder and decoder layers (MODEL.md §3.6, §3.8) ------- */
/* Encoder: A1 = LN1(X), H = X + MSSA(A1), A2 = LN2(H), X' = ISTA(A2).
 * Decoder: B1 = LNa(X), H = E B1, B2 = LNb(H), X' = H - MSSA(B2).
 * Both run the fast ops in float and the _ref ops in double, chained exactly as
 * the model will chain them; the backward follows MODEL.md §8 "Encoder layer"
 * and "Decoder layer". */

static size_t enc_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N, Kp = c->K * c->p, d = c->d;
  s[0] = (gc_spec){"X", M * d, 1.0, 0.0, true};
  s[1] = (gc_spec){"ln1.w", d, 0.2, 1.0, true};
  s[2] = (gc_spec){"ln1.b", d, 0.2, 0.0, true};
  s[3] = (gc_spec){"qkv.w", Kp * d, 0.5, 0.0, true};
  s[4] = (gc_spec){"out.w", d * Kp, 0.3, 0.0, true};
  s[5] = (gc_spec){"out.b", d, 0.3, 0.0, true};
  s[6] = (gc_spec){"ln2.w", d, 0.2, 1.0, true};
  s[7] = (gc_spec){"ln2.b", d, 0.2, 0.0, true};
  s[8] = (gc_spec){"D", d * d, 0.3, 0.0, true};
  *nout = M * d;
  return 9;
}
/* Double forward of the encoder layer up to A2 (returned in a2). */
static void enc_ref_front(const gc_ctx *c, double *const *t, double *a2) {
  size_t M = c->B * c->N, d = c->d;
  double *a1 = dalloc(M * d), *m = dalloc(M * d), *h = dalloc(M * d);
  double *mu = dalloc(M), *rs = dalloc(M);
  mssa_cache_d k = mssa_cd(c);
  crate_layernorm_forward_ref(a1, mu, rs, t[0], t[1], t[2], c->eps, M, d);
  crate_mssa_forward_ref(m, k.w, k.attn, k.o, a1, t[3], t[4], t[5], c->B, c->N, d, c->K, c->p);
  for (size_t i = 0; i < M * d; i++)
    h[i] = t[0][i] + m[i];
  crate_layernorm_forward_ref(a2, mu, rs, h, t[6], t[7], c->eps, M, d);
  mssa_cd_free(&k);
  free(a1);
  free(m);
  free(h);
  free(mu);
  free(rs);
}
static void enc_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  size_t n = c->B * c->N * c->d;
  double *a2 = dalloc(n), *r = dalloc(n);
  enc_ref_front(c, t, a2);
  crate_ista_forward_ref(y, r, a2, t[8], c->eta, c->lambda, c->B * c->N, c->d);
  free(a2);
  free(r);
}
static size_t enc_kink(const gc_ctx *c, double *const *t, double *u) {
  size_t n = c->B * c->N * c->d;
  double *a2 = dalloc(n);
  enc_ref_front(c, t, a2);
  ista_preact(u, a2, t[8], c);
  free(a2);
  return n;
}

/* Float encoder layer: activations and caches for backward. */
typedef struct enc_f {
  float *a1, *m, *h, *a2, *y, *r, *mu1, *rs1, *mu2, *rs2;
  mssa_cache_f k;
} enc_f;
static enc_f enc_fast_forward(const gc_ctx *c, float *const *t) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  enc_f e = {falloc(n), falloc(n), falloc(n), falloc(n), falloc(n), falloc(n),
             falloc(M), falloc(M), falloc(M), falloc(M), mssa_cf(c)};
  crate_layernorm_forward(e.a1, e.mu1, e.rs1, t[0], t[1], t[2], c->eps, M, d);
  crate_mssa_forward(e.m, e.k.w, e.k.attn, e.k.o, e.a1, t[3], t[4], t[5], c->B, c->N, d, c->K,
                     c->p);
  crate_residual_forward(e.h, t[0], e.m, 1.0f, n);
  crate_layernorm_forward(e.a2, e.mu2, e.rs2, e.h, t[6], t[7], c->eps, M, d);
  crate_ista_forward(e.y, e.r, e.a2, t[8], c->eta, c->lambda, M, d);
  return e;
}
static void enc_f_free(enc_f *e) {
  float *p[] = {e->a1, e->m, e->h, e->a2, e->y, e->r, e->mu1, e->rs1, e->mu2, e->rs2};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    free(p[i]);
  mssa_cf_free(&e->k);
}
static void enc_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  enc_f e = enc_fast_forward(c, t);
  to_double(y, e.y, c->B * c->N * c->d);
  enc_f_free(&e);
}
static void enc_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  enc_f e = enc_fast_forward(c, t);
  size_t ns = crate_mssa_scratch_size(c->B, c->N, c->K, c->p);
  if (crate_ista_scratch_size(M, d) > ns)
    ns = crate_ista_scratch_size(M, d);
  float *scr = falloc(ns), *ga2 = falloc(n), *gh = falloc(n), *ga1 = falloc(n);
  /* X' = ISTA(A2) */
  crate_ista_backward(ga2, g[8], scr, e.y, e.r, gy, e.a2, t[8], c->eta, M, d);
  /* A2 = LN2(H) */
  crate_layernorm_backward(gh, g[6], g[7], e.mu2, e.rs2, ga2, e.h, t[6], M, d);
  /* H = X + MSSA(A1): G_X += G_H; G_M = G_H */
  crate_residual_backward(g[0], NULL, gh, 1.0f, n);
  crate_mssa_backward(ga1, g[3], g[4], g[5], scr, e.k.w, e.k.attn, e.k.o, gh, e.a1, t[3], t[4],
                      c->B, c->N, d, c->K, c->p);
  /* A1 = LN1(X) */
  crate_layernorm_backward(g[0], g[1], g[2], e.mu1, e.rs1, ga1, t[0], t[1], M, d);
  enc_f_free(&e);
  free(scr);
  free(ga2);
  free(gh);
  free(ga1);
}
static void enc_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  double *a1 = dalloc(n), *m = dalloc(n), *h = dalloc(n), *a2 = dalloc(n), *y = dalloc(n);
  double *r = dalloc(n), *mu1 = dalloc(M), *rs1 = dalloc(M), *mu2 = dalloc(M), *rs2 = dalloc(M);
  double *ga2 = dalloc(n), *gh = dalloc(n), *ga1 = dalloc(n);
  double *scr = dalloc(crate_mssa_scratch_size(c->B, c->N, c->K, c->p) + 2 * n);
  mssa_cache_d k = mssa_cd(c);
  crate_layernorm_forward_ref(a1, mu1, rs1, t[0], t[1], t[2], c->eps, M, d);
  crate_mssa_forward_ref(m, k.w, k.attn, k.o, a1, t[3], t[4], t[5], c->B, c->N, d, c->K, c->p);
  for (size_t i = 0; i < n; i++)
    h[i] = t[0][i] + m[i];
  crate_layernorm_forward_ref(a2, mu2, rs2, h, t[6], t[7], c->eps, M, d);
  crate_ista_forward_ref(y, r, a2, t[8], c->eta, c->lambda, M, d);
  crate_ista_backward_ref(ga2, g[8], scr, y, r, gy, a2, t[8], c->eta, M, d);
  crate_layernorm_backward_ref(gh, g[6], g[7], mu2, rs2, ga2, h, t[6], M, d);
  for (size_t i = 0; i < n; i++)
    g[0][i] += gh[i];
  crate_mssa_backward_ref(ga1, g[3], g[4], g[5], scr, k.w, k.attn, k.o, gh, a1, t[3], t[4], c->B,
                          c->N, d, c->K, c->p);
  crate_layernorm_backward_ref(g[0], g[1], g[2], mu1, rs1, ga1, t[0], t[1], M, d);
  double *p[] = {a1, m, h, a2, y, r, mu1, rs1, mu2, rs2, ga2, gh, ga1, scr};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    free(p[i]);
  mssa_cd_free(&k);
}

static size_t dec_specs(const gc_ctx *c, gc_spec *s, size_t *nout) {
  size_t M = c->B * c->N, Kp = c->K * c->p, d = c->d;
  s[0] = (gc_spec){"X", M * d, 1.0, 0.0, true};
  s[1] = (gc_spec){"lna.w", d, 0.2, 1.0, true};
  s[2] = (gc_spec){"lna.b", d, 0.2, 0.0, true};
  s[3] = (gc_spec){"E", d * d, 0.3, 0.0, true};
  s[4] = (gc_spec){"lnb.w", d, 0.2, 1.0, true};
  s[5] = (gc_spec){"lnb.b", d, 0.2, 0.0, true};
  s[6] = (gc_spec){"qkv.w", Kp * d, 0.5, 0.0, true};
  s[7] = (gc_spec){"out.w", d * Kp, 0.3, 0.0, true};
  s[8] = (gc_spec){"out.b", d, 0.3, 0.0, true};
  *nout = M * d;
  return 9;
}
static void dec_fwd_ref(const gc_ctx *c, double *const *t, double *y) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  double *b1 = dalloc(n), *h = dalloc(n), *b2 = dalloc(n), *m = dalloc(n);
  double *mu = dalloc(M), *rs = dalloc(M);
  mssa_cache_d k = mssa_cd(c);
  crate_layernorm_forward_ref(b1, mu, rs, t[0], t[1], t[2], c->eps, M, d);
  crate_linear_forward_ref(h, b1, t[3], NULL, M, d, d);
  crate_layernorm_forward_ref(b2, mu, rs, h, t[4], t[5], c->eps, M, d);
  crate_mssa_forward_ref(m, k.w, k.attn, k.o, b2, t[6], t[7], t[8], c->B, c->N, d, c->K, c->p);
  for (size_t i = 0; i < n; i++)
    y[i] = h[i] - m[i];
  double *p[] = {b1, h, b2, m, mu, rs};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    free(p[i]);
  mssa_cd_free(&k);
}
typedef struct dec_f {
  float *b1, *h, *b2, *m, *y, *mua, *rsa, *mub, *rsb;
  mssa_cache_f k;
} dec_f;
static dec_f dec_fast_forward(const gc_ctx *c, float *const *t) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  dec_f e = {falloc(n), falloc(n), falloc(n), falloc(n), falloc(n),
             falloc(M), falloc(M), falloc(M), falloc(M), mssa_cf(c)};
  crate_layernorm_forward(e.b1, e.mua, e.rsa, t[0], t[1], t[2], c->eps, M, d);
  crate_linear_forward(e.h, e.b1, t[3], NULL, M, d, d);
  crate_layernorm_forward(e.b2, e.mub, e.rsb, e.h, t[4], t[5], c->eps, M, d);
  crate_mssa_forward(e.m, e.k.w, e.k.attn, e.k.o, e.b2, t[6], t[7], t[8], c->B, c->N, d, c->K,
                     c->p);
  crate_residual_forward(e.y, e.h, e.m, -1.0f, n);
  return e;
}
static void dec_f_free(dec_f *e) {
  float *p[] = {e->b1, e->h, e->b2, e->m, e->y, e->mua, e->rsa, e->mub, e->rsb};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    free(p[i]);
  mssa_cf_free(&e->k);
}
static void dec_fwd_fast(const gc_ctx *c, float *const *t, double *y) {
  dec_f e = dec_fast_forward(c, t);
  to_double(y, e.y, c->B * c->N * c->d);
  dec_f_free(&e);
}
static void dec_bwd_fast(const gc_ctx *c, float *const *t, const float *gy, float *const *g) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  dec_f e = dec_fast_forward(c, t);
  float *scr = falloc(crate_mssa_scratch_size(c->B, c->N, c->K, c->p));
  float *gm = falloc(n), *gb2 = falloc(n), *gh = falloc(n), *gb1 = falloc(n);
  /* X' = H - MSSA(B2): G_H += G_X', G_M = -G_X' */
  crate_residual_backward(gh, gm, gy, -1.0f, n);
  crate_mssa_backward(gb2, g[6], g[7], g[8], scr, e.k.w, e.k.attn, e.k.o, gm, e.b2, t[6], t[7],
                      c->B, c->N, d, c->K, c->p);
  /* B2 = LNb(H) */
  crate_layernorm_backward(gh, g[4], g[5], e.mub, e.rsb, gb2, e.h, t[4], M, d);
  /* H = E B1 */
  crate_linear_backward(gb1, g[3], NULL, gh, e.b1, t[3], M, d, d);
  /* B1 = LNa(X) */
  crate_layernorm_backward(g[0], g[1], g[2], e.mua, e.rsa, gb1, t[0], t[1], M, d);
  dec_f_free(&e);
  free(scr);
  free(gm);
  free(gb2);
  free(gh);
  free(gb1);
}
static void dec_bwd_ref(const gc_ctx *c, double *const *t, const double *gy, double *const *g) {
  size_t M = c->B * c->N, d = c->d, n = M * d;
  double *b1 = dalloc(n), *h = dalloc(n), *b2 = dalloc(n), *m = dalloc(n);
  double *mua = dalloc(M), *rsa = dalloc(M), *mub = dalloc(M), *rsb = dalloc(M);
  double *gm = dalloc(n), *gb2 = dalloc(n), *gh = dalloc(n), *gb1 = dalloc(n);
  double *scr = dalloc(crate_mssa_scratch_size(c->B, c->N, c->K, c->p));
  mssa_cache_d k = mssa_cd(c);
  crate_layernorm_forward_ref(b1, mua, rsa, t[0], t[1], t[2], c->eps, M, d);
  crate_linear_forward_ref(h, b1, t[3], NULL, M, d, d);
  crate_layernorm_forward_ref(b2, mub, rsb, h, t[4], t[5], c->eps, M, d);
  crate_mssa_forward_ref(m, k.w, k.attn, k.o, b2, t[6], t[7], t[8], c->B, c->N, d, c->K, c->p);
  for (size_t i = 0; i < n; i++) {
    gh[i] = gy[i];
    gm[i] = -gy[i];
  }
  crate_mssa_backward_ref(gb2, g[6], g[7], g[8], scr, k.w, k.attn, k.o, gm, b2, t[6], t[7], c->B,
                          c->N, d, c->K, c->p);
  crate_layernorm_backward_ref(gh, g[4], g[5], mub, rsb, gb2, h, t[4], M, d);
  crate_linear_backward_ref(gb1, g[3], NULL, gh, b1, t[3], M, d, d);
  crate_layernorm_backward_ref(g[0], g[1], g[2], mua, rsa, gb1, t[0], t[1], M, d);
  double *p[] = {b1, h, b2, m, mua, rsa, mub, rsb, gm, gb2, gh, gb1, scr};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    free(p[i]);
  mssa_cd_free(&k);
}

/* ---- the table ------------------------------------------------------------------
 * Tolerances, set from first principles before measuring:
 * - tol_ref (double backward vs FD): the 4-point stencil at h = 1e-3 has
 *   truncation error ~h^4 f^(5) ~ 1e-12 and round-off ~1e-16/h ~ 1e-13; the
 *   central stencil is exact up to round-off (~1e-16/h) for the piecewise
 *   quadratic ops (linear, ISTA, loss, tokens).  Bound: 1e-8.
 * - tol_fast (float backward vs FD): float round-off 6e-8 times the growth of
 *   sums of up to ~100 terms and of chained ops.  Bound: 1e-4.
 * - tol_fwd / tol_bwd (fast vs _ref at fmnist-tiny sizes): 1e-5 for single
 *   GEMM-like ops (sums of 128 float products), 3e-5 where softmax and chained
 *   ops compound it, 1e-6 for elementwise ops with double sums. */
static const gc_row rows[] = {
    {"linear", lin_specs, lin_fwd_ref, lin_fwd_fast, lin_bwd_ref, lin_bwd_fast, NULL, 1e-3, 2, 1e-8,
     1e-4, 1e-5, 1e-5},
    {"dict(E)", dict_specs, dict_fwd_ref, dict_fwd_fast, dict_bwd_ref, dict_bwd_fast, NULL, 1e-3, 2,
     1e-8, 1e-4, 1e-5, 1e-5},
    {"layernorm", ln_specs, ln_fwd_ref, ln_fwd_fast, ln_bwd_ref, ln_bwd_fast, NULL, 1e-3, 4, 1e-8,
     1e-4, 1e-5, 1e-5},
    {"softmax", sm_specs, sm_fwd_ref, sm_fwd_fast, sm_bwd_ref, sm_bwd_fast, NULL, 1e-3, 4, 1e-8,
     1e-4, 1e-5, 1e-5},
    {"mssa", mssa_specs, mssa_fwd_ref, mssa_fwd_fast, mssa_bwd_ref, mssa_bwd_fast, NULL, 1e-3, 4,
     1e-8, 1e-4, 3e-5, 3e-5},
    {"ista", ista_specs, ista_fwd_ref, ista_fwd_fast, ista_bwd_ref, ista_bwd_fast, ista_kink, 1e-3,
     2, 1e-8, 1e-4, 1e-5, 1e-5},
    {"residual", res_specs, res_fwd_ref, res_fwd_fast, res_bwd_ref, res_bwd_fast, NULL, 1e-3, 2,
     1e-8, 1e-4, 1e-6, 1e-6},
    {"masked_mse", mse_specs, mse_fwd_ref, mse_fwd_fast, mse_bwd_ref, mse_bwd_fast, NULL, 1e-3, 2,
     1e-8, 1e-4, 1e-6, 1e-6},
    {"tokens", tok_specs, tok_fwd_ref, tok_fwd_fast, tok_bwd_ref, tok_bwd_fast, NULL, 1e-3, 2, 1e-8,
     1e-4, 1e-6, 1e-6},
    {"enc_layer", enc_specs, enc_fwd_ref, enc_fwd_fast, enc_bwd_ref, enc_bwd_fast, enc_kink, 1e-3,
     4, 1e-8, 1e-4, 3e-5, 3e-5},
    {"dec_layer", dec_specs, dec_fwd_ref, dec_fwd_fast, dec_bwd_ref, dec_bwd_fast, NULL, 1e-3, 4,
     1e-8, 1e-4, 3e-5, 3e-5},
};
enum { NROWS = sizeof rows / sizeof rows[0] };

/* A row instantiated at one shape: tensors in double and float, gy. */
typedef struct gc_inst {
  gc_spec s[GC_MAXT];
  size_t nt, nout;
  double *td[GC_MAXT];
  float *tf[GC_MAXT];
  double *gy;
  float *gyf;
} gc_inst;

static void inst_make(gc_inst *I, const gc_row *row, const gc_ctx *c, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_NOISE);
  memset(I, 0, sizeof *I);
  I->nt = row->specs(c, I->s, &I->nout);
  assert_true(I->nt <= GC_MAXT);
  for (size_t i = 0; i < I->nt; i++) {
    I->td[i] = dalloc(I->s[i].size);
    I->tf[i] = falloc(I->s[i].size);
    fill(I->td[i], I->s[i].size, I->s[i].scale, I->s[i].offset, &r);
    to_float(I->tf[i], I->td[i], I->s[i].size);
  }
  I->gy = dalloc(I->nout);
  I->gyf = falloc(I->nout);
  fill(I->gy, I->nout, 1.0, 0.0, &r);
  to_float(I->gyf, I->gy, I->nout);
}

static void inst_free(gc_inst *I) {
  for (size_t i = 0; i < I->nt; i++) {
    free(I->td[i]);
    free(I->tf[i]);
  }
  free(I->gy);
  free(I->gyf);
}

/* Random 0/1 mask with at least one 0 and one 1. */
static void random_mask(uint8_t *m, size_t n, uint64_t seed) {
  crate_rng r;
  crate_rng_init(&r, seed, CRATE_RNG_MASK);
  for (size_t i = 0; i < n; i++)
    m[i] = (uint8_t)(crate_rng_uniform(&r) < 0.6);
  m[0] = 1;
  m[n - 1] = 0;
}

static double objective(const gc_row *row, const gc_ctx *c, double *const *t, const double *gy,
                        size_t nout, double *y) {
  row->fwd_ref(c, t, y);
  double s = 0.0;
  for (size_t i = 0; i < nout; i++)
    s += gy[i] * y[i];
  return s;
}

/* True when a kink (ReLU pre-activation zero) lies within 2 step of the
 * stencil, measured where it matters: some pre-activation that the
 * perturbation moves changes sign over the stencil, or sits closer to 0 than
 * twice the distance the stencil (points up to +-2 step) moves it. */
static bool near_kink(const gc_row *row, const gc_ctx *c, double *const *t, double *xj, double h,
                      const double *u0, double *u, double *reach, size_t nu) {
  const double x0 = *xj;
  bool near = false;
  for (size_t i = 0; i < nu; i++)
    reach[i] = 0.0;
  for (int s = -2; s <= 2 && !near; s++) {
    if (s == 0)
      continue;
    *xj = x0 + s * h;
    assert_int_equal(row->kink(c, t, u), nu);
    for (size_t i = 0; i < nu && !near; i++) {
      near = (u[i] > 0) != (u0[i] > 0);
      reach[i] = fmax(reach[i], fabs(u[i] - u0[i]));
    }
  }
  for (size_t i = 0; i < nu && !near; i++)
    near = reach[i] > 0 && fabs(u0[i]) <= 2 * reach[i];
  *xj = x0;
  return near;
}

/* ---- tests: gradient check ------------------------------------------------------- */

static void test_gradcheck(void **state) {
  (void)state;
  /* Small sizes: d = 8, K = 2, p = 4, N = 5, B = 2; linear out 6. */
  uint8_t maskbuf[64];
  gc_ctx c = {2, 5, 8, 2, 4, 6, 1e-5, 0.1, 0.1, -1.0f, maskbuf};
  int failures = 0;
  for (size_t ri = 0; ri < NROWS; ri++) {
    const gc_row *row = &rows[ri];
    random_mask(maskbuf, c.B * c.N, 100 + ri);
    if (row->fwd_ref == tok_fwd_ref)
      random_mask(maskbuf, c.B * (c.N - 1), 100 + ri);
    gc_inst I;
    inst_make(&I, row, &c, 1000 + ri);
    double *y = dalloc(I.nout), *u0 = dalloc(I.nout), *u = dalloc(I.nout);
    double *reach = dalloc(I.nout);
    size_t nu = row->kink ? row->kink(&c, I.td, u0) : 0;
    /* Backward from random starting gradients G0 (tests accumulation). */
    crate_rng r;
    crate_rng_init(&r, 2000 + ri, CRATE_RNG_NOISE);
    double *gref[GC_MAXT] = {0}, *g0[GC_MAXT] = {0};
    float *gfast[GC_MAXT] = {0};
    for (size_t i = 0; i < I.nt; i++)
      if (I.s[i].grad) {
        g0[i] = dalloc(I.s[i].size);
        fill(g0[i], I.s[i].size, 1.0, 0.0, &r);
        gref[i] = dalloc(I.s[i].size);
        gfast[i] = falloc(I.s[i].size);
        memcpy(gref[i], g0[i], I.s[i].size * sizeof(double));
        to_float(gfast[i], g0[i], I.s[i].size);
      }
    row->bwd_ref(&c, I.td, I.gy, gref);
    row->bwd_fast(&c, I.tf, I.gyf, gfast);
    double worst_ref = 0, worst_fast = 0;
    size_t skipped = 0, total = 0;
    for (size_t i = 0; i < I.nt; i++) {
      if (!I.s[i].grad)
        continue;
      size_t n = I.s[i].size;
      double *fd = dalloc(n), *gr = dalloc(n), *gf = dalloc(n);
      for (size_t j = 0; j < n; j++) {
        double h = row->step, x0 = I.td[i][j];
        total++;
        gr[j] = gref[i][j] - g0[i][j];
        gf[j] = ((double)gfast[i][j] - (double)(float)g0[i][j]);
        if (row->kink && near_kink(row, &c, I.td, &I.td[i][j], h, u0, u, reach, nu)) {
          skipped++;
          fd[j] = gr[j] = gf[j] = 0.0;
          continue;
        }
        double f[5];
        for (int s = -2; s <= 2; s++) {
          if (s == 0 || (row->stencil == 2 && (s == -2 || s == 2)))
            continue;
          I.td[i][j] = x0 + s * h;
          f[s + 2] = objective(row, &c, I.td, I.gy, I.nout, y);
        }
        I.td[i][j] = x0;
        if (row->stencil == 4)
          fd[j] = (f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * h);
        else
          fd[j] = (f[3] - f[1]) / (2 * h);
      }
      /* The float gradient includes the float rounding of G0 + g; compare
       * against the float accumulation scale too. */
      double e_ref = crate_rel_linf(gr, fd, n), e_fast = crate_rel_linf(gf, fd, n);
      crate_report("grad", "%-10s d/d%-10s (%3zu) ref %.2e  fast %.2e", row->name, I.s[i].name, n,
                   e_ref, e_fast);
      if (e_ref > worst_ref || isnan(e_ref))
        worst_ref = e_ref;
      if (e_fast > worst_fast || isnan(e_fast))
        worst_fast = e_fast;
      free(fd);
      free(gr);
      free(gf);
    }
    bool ok = worst_ref <= row->tol_ref && worst_fast <= row->tol_fast;
    if (row->kink)
      ok = ok && skipped * 10 <= total; /* a filter that hides most of the op is a failure */
    crate_report("grad",
                 "%-10s worst ref %.3e (bound %.0e), fast %.3e (bound %.0e), step %.0e "
                 "%d-point, kink-skipped %zu/%zu%s",
                 row->name, worst_ref, row->tol_ref, worst_fast, row->tol_fast, row->step,
                 row->stencil, skipped, total, ok ? "" : "  FAIL");
    failures += !ok;
    for (size_t i = 0; i < I.nt; i++) {
      free(gref[i]);
      free(gfast[i]);
      free(g0[i]);
    }
    free(y);
    free(u0);
    free(u);
    free(reach);
    inst_free(&I);
  }
  crate_check(failures == 0, "%d op rows failed the gradient check", failures);
}

/* ---- tests: fast vs _ref at fmnist-tiny sizes -------------------------------------- */

static gc_ctx fmnist_ctx(uint8_t *mask) {
  /* d = 128, K = 4, p = 32, N = 50, B = 2; P = 16 */
  return (gc_ctx){2, 50, 128, 4, 32, 16, 1e-5, 0.1, 0.1, -1.0f, mask};
}

static void test_forward_fast_vs_ref(void **state) {
  (void)state;
  uint8_t mask[128];
  gc_ctx c = fmnist_ctx(mask);
  int failures = 0;
  for (size_t ri = 0; ri < NROWS; ri++) {
    const gc_row *row = &rows[ri];
    random_mask(mask, c.B * c.N, 300 + ri);
    if (row->fwd_ref == tok_fwd_ref)
      random_mask(mask, c.B * (c.N - 1), 300 + ri);
    gc_inst I;
    inst_make(&I, row, &c, 3000 + ri);
    /* fmnist-like weight scales: keep activations O(1) at d = 128 */
    for (size_t i = 0; i < I.nt; i++)
      if (I.s[i].size == c.d * c.d || I.s[i].size == c.d * c.K * c.p ||
          I.s[i].size == c.d * c.dout) {
        for (size_t j = 0; j < I.s[i].size; j++)
          I.td[i][j] = (double)(float)(I.td[i][j] / sqrt((double)c.d / 8.0));
        to_float(I.tf[i], I.td[i], I.s[i].size);
      }
    double *yr = dalloc(I.nout), *yf = dalloc(I.nout);
    row->fwd_ref(&c, I.td, yr);
    row->fwd_fast(&c, I.tf, yf);
    double e = crate_rel_linf(yf, yr, I.nout);
    bool ok = e <= row->tol_fwd;
    crate_report("fwd", "%-10s fast vs ref rel L-inf %.3e (bound %.0e)%s", row->name, e,
                 row->tol_fwd, ok ? "" : "  FAIL");
    failures += !ok;
    /* The same inputs through both backwards, from zero. */
    double *gr[GC_MAXT] = {0};
    float *gf[GC_MAXT] = {0};
    for (size_t i = 0; i < I.nt; i++)
      if (I.s[i].grad) {
        gr[i] = dalloc(I.s[i].size);
        gf[i] = falloc(I.s[i].size);
      }
    row->bwd_ref(&c, I.td, I.gy, gr);
    row->bwd_fast(&c, I.tf, I.gyf, gf);
    for (size_t i = 0; i < I.nt; i++) {
      if (!I.s[i].grad)
        continue;
      double *gfd = dalloc(I.s[i].size);
      to_double(gfd, gf[i], I.s[i].size);
      double eb = crate_rel_linf(gfd, gr[i], I.s[i].size);
      bool okb = eb <= row->tol_bwd;
      crate_report("bwd", "%-10s d/d%-10s fast vs ref rel L-inf %.3e (bound %.0e)%s", row->name,
                   I.s[i].name, eb, row->tol_bwd, okb ? "" : "  FAIL");
      failures += !okb;
      free(gfd);
      free(gr[i]);
      free(gf[i]);
    }
    free(yr);
    free(yf);
    inst_free(&I);
  }
  crate_check(failures == 0, "%d fast-vs-ref comparisons failed", failures);
}

/* ---- tests: properties --------------------------------------------------------------- */

static void test_ista_trivial_dictionary(void **state) {
  (void)state;
  /* D = 0 and D = I both give R-term zero: ISTA(z) = ReLU(z - eta lambda). */
  enum { M = 100, d = 128 };
  const double eta = 0.1, lambda = 0.1;
  float *a = falloc(M * d), *D = falloc(d * d), *y = falloc(M * d), *r = falloc(M * d);
  crate_rng rng;
  crate_rng_init(&rng, 11, CRATE_RNG_NOISE);
  for (size_t i = 0; i < M * d; i++)
    a[i] = (float)(0.05 * crate_rng_normal(&rng));
  double worst[2] = {0, 0};
  size_t active = 0;
  for (int which = 0; which < 2; which++) {
    memset(D, 0, sizeof(float) * d * d);
    if (which == 1)
      for (size_t i = 0; i < d; i++)
        D[i * d + i] = 1.0f;
    crate_ista_forward(y, r, a, D, eta, lambda, M, d);
    for (size_t i = 0; i < M * d; i++) {
      double want = fmax((double)a[i] - eta * lambda, 0.0);
      double e = fabs((double)y[i] - want) / 0.05;
      if (e > worst[which])
        worst[which] = e;
      active += which == 0 && y[i] > 0;
    }
  }
  crate_report("ista",
               "D = 0: max |y - ReLU(z - eta lambda)| / scale %.3e; D = I: %.3e "
               "(bound 1e-6); active %zu of %d",
               worst[0], worst[1], active, M * d);
  assert_true(worst[0] <= 1e-6 && worst[1] <= 1e-6);
  assert_true(active > M * d / 10 && active < M * d * 9 / 10);
  free(a);
  free(D);
  free(y);
  free(r);
}

static void test_mssa_zero_outproj_identity(void **state) {
  (void)state;
  /* H = X + MSSA(LN(X)) with W_o = 0, b_o = 0 is exactly X. */
  enum { B = 2, N = 50, d = 128, K = 4, p = 32, M = B * N };
  float *x = falloc(M * d), *a = falloc(M * d), *mu = falloc(M), *rs = falloc(M);
  float *g = falloc(d), *b = falloc(d), *Wq = falloc(K * p * d), *Wo = falloc(d * K * p);
  float *bo = falloc(d), *m = falloc(M * d), *w = falloc(M * K * p), *o = falloc(M * K * p);
  float *attn = falloc(B * K * N * N), *h = falloc(M * d);
  crate_rng rng;
  crate_rng_init(&rng, 12, CRATE_RNG_NOISE);
  for (size_t i = 0; i < M * d; i++)
    x[i] = (float)crate_rng_normal(&rng);
  for (size_t i = 0; i < K * p * d; i++)
    Wq[i] = (float)(0.15 * crate_rng_normal(&rng));
  for (size_t i = 0; i < d; i++)
    g[i] = 1.0f;
  crate_layernorm_forward(a, mu, rs, x, g, b, 1e-5, M, d);
  crate_mssa_forward(m, w, attn, o, a, Wq, Wo, bo, B, N, d, K, p);
  crate_residual_forward(h, x, m, 1.0f, M * d);
  double e = crate_rel_linff(h, x, M * d);
  /* attention rows are probability vectors (a property of the cache) */
  double rowerr = 0;
  for (size_t i = 0; i < B * K * N; i++) {
    double s = 0;
    for (size_t j = 0; j < N; j++)
      s += attn[i * N + j];
    rowerr = fmax(rowerr, fabs(s - 1.0));
  }
  crate_report("mssa",
               "zero out-projection residual: rel L-inf |H - X| %.3e (bound 0); "
               "attention row sums off by %.2e (bound 1e-6)",
               e, rowerr);
  assert_true(e == 0.0);
  assert_true(rowerr <= 1e-6);
  float *p_[] = {x, a, mu, rs, g, b, Wq, Wo, bo, m, w, o, attn, h};
  for (size_t i = 0; i < sizeof p_ / sizeof p_[0]; i++)
    free(p_[i]);
}

static void test_pos_table(void **state) {
  (void)state;
  enum { g = 7, d = 128, N = g * g + 1 };
  float *pos = falloc(N * d);
  double *posd = dalloc(N * d);
  assert_int_equal(crate_pos_table(pos, g, d), CRATE_STATUS_OK);
  assert_int_equal(crate_pos_table_ref(posd, g, d), CRATE_STATUS_OK);
  double cls = 0;
  for (size_t j = 0; j < d; j++)
    cls = fmax(cls, fabs(pos[j]));
  /* Patch (r, c) = (2, 5): t = 19, row 20.  Formula written out here:
   * [sin(5 w) | cos(5 w) | sin(2 w) | cos(2 w)], w_k = 10000^(-k/32). */
  const size_t r = 2, cc = 5, row = r * g + cc + 1, D4 = d / 4;
  double err = 0, err_ref = 0;
  for (size_t k = 0; k < D4; k++) {
    double w = exp(-log(10000.0) * (double)k / (double)D4);
    double want[4] = {sin(cc * w), cos(cc * w), sin(r * w), cos(r * w)};
    for (size_t blk = 0; blk < 4; blk++) {
      err = fmax(err, fabs((double)pos[row * d + blk * D4 + k] - want[blk]));
      err_ref = fmax(err_ref, fabs(posd[row * d + blk * D4 + k] - want[blk]));
    }
  }
  /* Column first: for (r, c) = (2, 5) the first block must not equal sin(2 w). */
  double swap = fabs((double)pos[row * d + 1] - sin(2.0 * exp(-log(10000.0) / (double)D4)));
  double all = 0;
  for (size_t i = 0; i < N * d; i++)
    all = fmax(all, fabs((double)pos[i] - posd[i]));
  crate_report("pos",
               "CLS row max |.| %.1e (bound 0); row (r=2,c=5) vs formula: float %.2e "
               "(bound 1e-7), double %.2e (bound 1e-14); float vs double table %.2e "
               "(bound 1e-7); column-first check |pos - sin(r w)| %.2f (must be > 0.1)",
               cls, err, err_ref, all, swap);
  assert_true(cls == 0.0);
  assert_true(err <= 1e-7 && err_ref <= 1e-14 && all <= 1e-7);
  assert_true(swap > 0.1);
  assert_int_equal(crate_pos_table(pos, g, 130), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "ops: "));
  assert_int_equal(crate_pos_table(pos, 0, 128), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_pos_table_ref(posd, g, 126), CRATE_STATUS_EINVAL);
  free(pos);
  free(posd);
}

static void test_mask_counts_and_uniformity(void **state) {
  (void)state;
  enum { n = 49, T = 20000 };
  const double ratio = 0.75;
  size_t n_keep;
  assert_int_equal(crate_mask_n_keep(&n_keep, n, ratio), CRATE_STATUS_OK);
  assert_int_equal(n_keep, 12); /* floor(49 * 0.25) = 12 (MODEL.md §2) */
  uint8_t mask[n], mref[n];
  size_t ids[n], idsr[n];
  double noise[n], noiser[n];
  long visible[n] = {0};
  size_t bad_count = 0, fast_ref_diff = 0;
  for (uint32_t s = 0; s < T; s++) {
    crate_rng r1, r2;
    crate_rng_init_at(&r1, 5, CRATE_RNG_MASK, 0, s);
    r2 = r1;
    assert_int_equal(crate_mask_random(mask, ids, noise, &r1, ratio, n), CRATE_STATUS_OK);
    assert_int_equal(crate_mask_random_ref(mref, idsr, noiser, &r2, ratio, n), CRATE_STATUS_OK);
    fast_ref_diff += memcmp(mask, mref, n) != 0 || memcmp(ids, idsr, sizeof ids) != 0;
    size_t vis = 0;
    for (size_t t = 0; t < n; t++) {
      vis += mask[t] == 0;
      visible[t] += mask[t] == 0;
    }
    bad_count += vis != n_keep;
    /* ids_shuffle sorts the noise ascending, visible = first n_keep */
    for (size_t i = 1; i < n; i++)
      assert_true(noise[ids[i - 1]] <= noise[ids[i]]);
    assert_int_equal(mask[ids[n_keep - 1]], 0);
    assert_int_equal(mask[ids[n_keep]], 1);
  }
  /* Uniformity.  Each draw picks n_keep of n without replacement, so the
   * counts have Var = T q (1 - q) and Cov = -T q (1 - q) / (n - 1), q =
   * n_keep / n, and X = (n - 1)/n sum (c - Tq)^2 / (T q (1 - q)) ~ chi^2(n - 1)
   * (plain Pearson would be off by the factor (1 - q) n / (n - 1)).
   * chi^2(48): 0.1% point 23.2 (lower), 99.9% point 84.0 (upper). */
  const double q = (double)n_keep / n, E = T * q;
  double x2 = 0;
  for (size_t t = 0; t < n; t++)
    x2 += (visible[t] - E) * (visible[t] - E) / (T * q * (1 - q));
  x2 *= (double)(n - 1) / n;
  crate_report("mask",
               "%d draws, n=%d r=%.2f: n_keep %zu, wrong counts %zu (bound 0), fast vs "
               "ref mismatches %zu (bound 0), chi2 %.2f on 48 dof (bounds [23.2, 84.0])",
               T, n, ratio, n_keep, bad_count, fast_ref_diff, x2);
  assert_int_equal(bad_count, 0);
  assert_int_equal(fast_ref_diff, 0);
  assert_true(x2 > 23.2 && x2 < 84.0);
}

static void test_mask_quirk_batch_and_errors(void **state) {
  (void)state;
  size_t k;
  /* Python: int(10 * (1 - 0.9)) == 0 because 1 - 0.9 = 0.09999999999999998. */
  assert_int_equal(crate_mask_n_keep(&k, 10, 0.9), CRATE_STATUS_OK);
  size_t k_quirk = k;
  assert_int_equal(crate_mask_n_keep(&k, 196, 0.75), CRATE_STATUS_OK);
  size_t k_base = k;
  assert_int_equal(crate_mask_n_keep(&k, 49, 0.0), CRATE_STATUS_OK);
  size_t k_zero = k;
  crate_report("mask",
               "n_keep(10, 0.9) = %zu (want 0); n_keep(196, 0.75) = %zu (want 49); "
               "n_keep(49, 0) = %zu (want 49)",
               k_quirk, k_base, k_zero);
  assert_int_equal(k_quirk, 0);
  assert_int_equal(k_base, 49);
  assert_int_equal(k_zero, 49);
  uint8_t m[10];
  size_t ids[10];
  double noise[10];
  crate_rng r;
  crate_rng_init(&r, 1, CRATE_RNG_MASK);
  assert_int_equal(crate_mask_random(m, ids, noise, &r, 0.9, 10), CRATE_STATUS_OK);
  for (size_t i = 0; i < 10; i++)
    assert_int_equal(m[i], 1);
  const double badr[] = {1.0, -0.1, NAN, 1.5};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(crate_mask_n_keep(&k, 10, badr[i]), CRATE_STATUS_EINVAL);
    assert_non_null(strstr(crate_error_message(), "ops: mask ratio"));
    assert_int_equal(crate_mask_random(m, ids, noise, &r, badr[i], 10), CRATE_STATUS_EINVAL);
  }
  assert_int_equal(crate_mask_random(m, ids, noise, &r, 0.5, 0), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_mask_random_ref(m, ids, noise, &r, 1.0, 10), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_mask_random_batch(m, ids, noise, 1, 0, 0, -0.5, 1, 10),
                   CRATE_STATUS_EINVAL);
  /* Batch: image b is sample sample0 + b, independent of batch layout. */
  enum { B = 4, n = 49 };
  uint8_t mb[B * n], mb2[2 * n], m1[n];
  size_t ib[B * n], i1[n];
  double nb[B * n], n1[n];
  assert_int_equal(crate_mask_random_batch(mb, ib, nb, 77, 3, 100, 0.75, B, n), CRATE_STATUS_OK);
  assert_int_equal(crate_mask_random_batch(mb2, ib, nb, 77, 3, 102, 0.75, 2, n), CRATE_STATUS_OK);
  size_t diff_layout = memcmp(mb + 2 * n, mb2, 2 * n) != 0;
  crate_rng_init_at(&r, 77, CRATE_RNG_MASK, 3, 101);
  assert_int_equal(crate_mask_random(m1, i1, n1, &r, 0.75, n), CRATE_STATUS_OK);
  size_t diff_single = memcmp(mb + n, m1, n) != 0;
  size_t same_pairs = 0;
  for (size_t b = 1; b < B; b++)
    same_pairs += memcmp(mb, mb + b * n, n) == 0;
  assert_int_equal(crate_mask_random_batch(mb2, ib, nb, 77, 4, 100, 0.75, 1, n), CRATE_STATUS_OK);
  size_t same_step = memcmp(mb, mb2, n) == 0;
  crate_report("mask",
               "batch layout mismatches %zu, single-sample mismatch %zu (bounds 0); "
               "identical masks across samples %zu, across steps %zu (bounds 0)",
               diff_layout, diff_single, same_pairs, same_step);
  assert_int_equal(diff_layout + diff_single + same_pairs + same_step, 0);
}

static void test_patchify_roundtrip_and_orders(void **state) {
  (void)state;
  enum { B = 2, H = 28, Q = 4 };
  for (size_t C = 1; C <= 3; C += 2) {
    const size_t n = (H / Q) * (H / Q), P = C * Q * Q, npix = B * C * H * H;
    float *img = falloc(npix), *back = falloc(npix), *pe = falloc(B * n * P);
    float *pt = falloc(B * n * P), *pr = falloc(B * n * P);
    crate_rng r;
    crate_rng_init(&r, 20 + C, CRATE_RNG_NOISE);
    for (size_t i = 0; i < npix; i++)
      img[i] = (float)crate_rng_normal(&r);
    size_t bad = 0, ref_diff = 0;
    for (int o = 0; o < 2; o++) {
      crate_patch_order ord = o ? CRATE_PATCH_TARGET : CRATE_PATCH_EMBED;
      float *pp = o ? pt : pe;
      assert_int_equal(crate_patchify(pp, img, ord, B, C, H, Q), CRATE_STATUS_OK);
      assert_int_equal(crate_patchify_ref(pr, img, ord, B, C, H, Q), CRATE_STATUS_OK);
      ref_diff += memcmp(pp, pr, sizeof(float) * B * n * P) != 0;
      memset(back, 0, sizeof(float) * npix);
      assert_int_equal(crate_unpatchify(back, pp, ord, B, C, H, Q), CRATE_STATUS_OK);
      bad += memcmp(back, img, sizeof(float) * npix) != 0;
      memset(back, 0, sizeof(float) * npix);
      assert_int_equal(crate_unpatchify_ref(back, pp, ord, B, C, H, Q), CRATE_STATUS_OK);
      bad += memcmp(back, img, sizeof(float) * npix) != 0;
    }
    /* One element by hand: image 1, patch (r, c) = (3, 5), i = 2, j = 1,
     * last channel; MODEL.md §3.1 index formulas. */
    const size_t rr = 3, cc = 5, i = 2, j = 1, ch = C - 1, t = rr * (H / Q) + cc;
    float want = img[((1 * C + ch) * H + rr * Q + i) * H + cc * Q + j];
    bool hand = pe[(n + t) * P + (ch * Q + i) * Q + j] == want &&
                pt[(n + t) * P + (i * Q + j) * C + ch] == want;
    size_t differ = memcmp(pe, pt, sizeof(float) * B * n * P) != 0;
    crate_report("patch",
                 "C=%zu: round-trip failures %zu, fast vs ref mismatches %zu "
                 "(bounds 0), hand-indexed element ok %d, orders differ %zu (want %d)",
                 C, bad, ref_diff, hand, differ, C == 3);
    assert_int_equal(bad, 0);
    assert_int_equal(ref_diff, 0);
    assert_true(hand);
    assert_int_equal(differ, C == 3 ? 1 : 0);
    free(img);
    free(back);
    free(pe);
    free(pt);
    free(pr);
  }
  float dummy[4];
  assert_int_equal(crate_patchify(dummy, dummy, CRATE_PATCH_EMBED, 1, 1, 10, 4),
                   CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "ops: patch geometry"));
  assert_int_equal(crate_unpatchify(dummy, dummy, CRATE_PATCH_TARGET, 1, 1, 8, 0),
                   CRATE_STATUS_EINVAL);
  assert_int_equal(crate_patchify_ref(dummy, dummy, CRATE_PATCH_EMBED, 1, 0, 8, 4),
                   CRATE_STATUS_EINVAL);
  assert_int_equal(crate_unpatchify_ref(dummy, dummy, CRATE_PATCH_EMBED, 1, 1, 6, 4),
                   CRATE_STATUS_EINVAL);
}

static void test_loss_properties(void **state) {
  (void)state;
  /* Two images, 4 patches each; image 0 has 1 masked patch, image 1 has 3.
   * The loss is the pooled mean over the 4 masked patches, not the mean of
   * the two per-image means. */
  enum { rows = 8, P = 3 };
  float pred[rows * P], tgt[rows * P];
  for (size_t i = 0; i < rows * P; i++) {
    pred[i] = (float)(0.25 * (double)(i % 7));
    tgt[i] = (float)(0.125 * (double)(i % 5));
  }
  const uint8_t mask[rows] = {1, 0, 0, 0, 1, 1, 0, 1};
  double l[rows];
  for (size_t r = 0; r < rows; r++) {
    l[r] = 0;
    for (size_t j = 0; j < P; j++)
      l[r] += ((double)pred[r * P + j] - tgt[r * P + j]) *
              ((double)pred[r * P + j] - tgt[r * P + j]) / P;
  }
  double pooled = (l[0] + l[4] + l[5] + l[7]) / 4.0;
  double per_image = 0.5 * (l[0] + (l[4] + l[5] + l[7]) / 3.0);
  double loss;
  assert_int_equal(crate_masked_mse_forward(&loss, pred, tgt, mask, rows, P), CRATE_STATUS_OK);
  double e = fabs(loss - pooled) / pooled;
  crate_report("loss",
               "masked MSE %.9g vs pooled mean %.9g: rel %.2e (bound 1e-15); "
               "mean of per-image means %.9g differs by %.2e (must be > 1e-3)",
               loss, pooled, e, per_image, fabs(per_image - pooled) / pooled);
  assert_true(e <= 1e-15);
  assert_true(fabs(per_image - pooled) / pooled > 1e-3);
  /* Visible rows get no gradient. */
  float g[rows * P];
  memset(g, 0, sizeof g);
  assert_int_equal(crate_masked_mse_backward(g, pred, tgt, mask, 1.0, rows, P), CRATE_STATUS_OK);
  for (size_t r = 0; r < rows; r++)
    if (!mask[r])
      for (size_t j = 0; j < P; j++)
        assert_true(g[r * P + j] == 0.0f);
  /* No masked patch: EINVAL. */
  const uint8_t none[rows] = {0};
  assert_int_equal(crate_masked_mse_forward(&loss, pred, tgt, none, rows, P), CRATE_STATUS_EINVAL);
  assert_non_null(strstr(crate_error_message(), "ops: masked MSE"));
  assert_int_equal(crate_masked_mse_backward(g, pred, tgt, none, 1.0, rows, P),
                   CRATE_STATUS_EINVAL);
  double pd[rows * P], td[rows * P], gd[rows * P];
  for (size_t i = 0; i < rows * P; i++) {
    pd[i] = pred[i];
    td[i] = tgt[i];
  }
  assert_int_equal(crate_masked_mse_forward_ref(&loss, pd, td, none, rows, P), CRATE_STATUS_EINVAL);
  assert_int_equal(crate_masked_mse_backward_ref(gd, pd, td, none, 1.0, rows, P),
                   CRATE_STATUS_EINVAL);
  /* norm_pix target: each row gets mean 0 and unbiased variance
   * s^2 / (s^2 + 1e-6). */
  float y[rows * P];
  assert_int_equal(crate_norm_pix_target(y, pred, rows, P), CRATE_STATUS_OK);
  double worst = 0;
  for (size_t r = 0; r < rows; r++) {
    double mu = 0, v = 0, my = 0, vy = 0;
    for (size_t j = 0; j < P; j++) {
      mu += pred[r * P + j] / (double)P;
      my += y[r * P + j] / (double)P;
    }
    for (size_t j = 0; j < P; j++) {
      v += (pred[r * P + j] - mu) * (pred[r * P + j] - mu) / (P - 1);
      vy += (y[r * P + j] - my) * (y[r * P + j] - my) / (P - 1);
    }
    worst = fmax(worst, fabs(my));
    worst = fmax(worst, fabs(vy - v / (v + 1e-6)));
  }
  crate_report("loss", "norm_pix rows: max |mean|, |var - s2/(s2+1e-6)| %.2e (bound 1e-6)", worst);
  assert_true(worst <= 1e-6);
  assert_int_equal(crate_norm_pix_target(y, pred, rows, 1), CRATE_STATUS_EINVAL);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gradcheck),
      cmocka_unit_test(test_forward_fast_vs_ref),
      cmocka_unit_test(test_ista_trivial_dictionary),
      cmocka_unit_test(test_mssa_zero_outproj_identity),
      cmocka_unit_test(test_pos_table),
      cmocka_unit_test(test_mask_counts_and_uniformity),
      cmocka_unit_test(test_mask_quirk_batch_and_errors),
      cmocka_unit_test(test_patchify_roundtrip_and_orders),
      cmocka_unit_test(test_loss_properties),
  };
  return CRATE_RUN("ops", tests, argc, argv);
}
