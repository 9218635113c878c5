/* flow.c: structured denoising and structured diffusion of token sets, the
 * CRATE encoder and decoder as discretised ODEs (MATH.md §5.1-5.3), the
 * fixed-point inverse of an encoder step (§5.3) and a Lipschitz estimate of
 * grad R^c from finite-difference Hessian-vector products (§1.6): Lanczos,
 * i.e. power iteration's Krylov space, for the symmetric Hessians of the
 * exact and Neumann fields; plain power iteration for the MSSA field.
 *
 *   encoder  dZ/ds = -F(Z | U(s)):   Z^{l+1} = Z^l - kappa F(Z^l | U^l)  (Euler)
 *   decoder  dY/ds = +F(Y | U(T-s)): hat Z^l = hat Z^{l+1} + kappa F(hat Z^{l+1} | U^l)
 * with kappa = T / L and F = grad R^c (exact, Neumann, or the MSSA form of
 * §2.2).  Heun is the explicit trapezoid rule on the same grid; on the same
 * grid its round trip is O(kappa^3) (the O(kappa^3) local errors of the
 * forward and backward steps cancel), Euler's O(kappa).
 *
 * Memory: every Z is the row-major (N, d) array Z^T (MATH.md §0); block k of
 * U->Ut is U_k^T.  Reference code in double; workspace is allocated once per
 * call and freed on every path.  Non-goals: the learned, LayerNorm'd layers
 * (src/ops, src/model) and float kernels.
 */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "crate/flow.h"
#include "internal.h"

/* ---- validation ----------------------------------------------------------- */

/* Restates a failed subspace check in the flow domain. */
static int check_subspaces(const crate_subspaces *U, const char *what) {
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: %s is NULL", what);
  int st = crate_subspaces_check(U, -1.0);
  if (st != CRATE_STATUS_OK) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", crate_error_message());
    return CRATE_ERROR(st, "flow: invalid %s (%s)", what, inner);
  }
  return CRATE_STATUS_OK;
}

static int check_field(double eps2, crate_flow_field field) {
  if (!isfinite(eps2) || !(eps2 > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "flow: eps2 (= epsilon^2) must be finite and > 0 (got %g)", eps2);
  if (field != CRATE_FLOW_FIELD_EXACT && field != CRATE_FLOW_FIELD_NEUMANN &&
      field != CRATE_FLOW_FIELD_MSSA)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: unknown field %d", (int)field);
  return CRATE_STATUS_OK;
}

static int check_opts(const crate_flow_opts *opt) {
  if (!opt)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: options are NULL");
  CRATE_TRY(check_field(opt->eps2, opt->field));
  if (opt->method != CRATE_FLOW_EULER && opt->method != CRATE_FLOW_HEUN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: unknown method %d", (int)opt->method);
  return CRATE_STATUS_OK;
}

/* Checks a token array Z: (N, d) of the given name. */
static int check_tokens(const double *Z, size_t N, size_t d, const char *name) {
  if (!Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: token array %s is NULL", name);
  if (N == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: need at least one token (got N = 0)");
  if (N > SIZE_MAX / sizeof(double) / d / 8)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: N = %zu tokens of width %zu is too large", N, d);
  for (size_t i = 0; i < N * d; i++)
    if (!isfinite(Z[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "flow: %s has a non-finite entry %g at token %zu, coordinate %zu", name,
                         Z[i], i / d, i % d);
  return CRATE_STATUS_OK;
}

static int check_kappa(double kappa) {
  if (!isfinite(kappa) || !(kappa > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: step kappa must be finite and > 0 (got %g)",
                       kappa);
  return CRATE_STATUS_OK;
}

static int check_out(const void *out, const char *name) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: output %s is NULL", name);
  return CRATE_STATUS_OK;
}

/* ---- small helpers -------------------------------------------------------- */

static double *alloc_doubles(size_t n) {
  return crate__calloc(n, sizeof(double));
}

static double norm2(const double *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += x[i] * x[i];
  return sqrt(s);
}

/* Fails with ENUMERIC when x has a non-finite entry. */
static int check_finite_result(const double *x, size_t n, const char *what) {
  if (!crate__all_finite(x, n))
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC, "flow: %s produced a non-finite value", what);
  return CRATE_STATUS_OK;
}

/* ---- the field ------------------------------------------------------------ */

/* F (N, d) from a validated Z and U; F must not alias Z.  The MSSA field is
 * sum_k beta_k (Z U_k) U_k^T - MSSA^T in row-major terms. */
static int field_raw(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                     crate_flow_field field, double *F) {
  if (field == CRATE_FLOW_FIELD_EXACT)
    return crate_rate_Rc_grad(Z, N, U, eps2, CRATE_RATE_FORM_PP, F);
  if (field == CRATE_FLOW_FIELD_NEUMANN)
    return crate_rate_Rc_grad_neumann(Z, N, U, eps2, F);
  size_t d = U->d, pmax = 0;
  for (size_t k = 0; k < U->K; k++)
    pmax = U->p[k] > pmax ? U->p[k] : pmax;
  CRATE_TRY(crate_rate_mssa(Z, N, U, eps2, CRATE_MSSA_SOFTMAX, F));
  for (size_t i = 0; i < N * d; i++)
    F[i] = -F[i];
  double *Y = alloc_doubles(N * pmax);
  if (!Y)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "flow: out of memory (%zu doubles)", N * pmax);
  for (size_t k = 0; k < U->K; k++) {
    const double *Utk = U->Ut + crate_subspaces_offset(U, k) * d;
    size_t p = U->p[k];
    double beta = (double)p / ((double)N * eps2);
    crate_dgemm(false, true, N, p, d, 1.0, Z, d, Utk, d, 0.0, Y, p);   /* Y_k = Z U_k */
    crate_dgemm(false, false, N, d, p, beta, Y, p, Utk, d, 1.0, F, d); /* += b Y_k U_k^T */
  }
  free(Y);
  return check_finite_result(F, N * d, "the MSSA field");
}

int crate_flow_field_eval(const double *Z, size_t N, const crate_subspaces *U, double eps2,
                          crate_flow_field field, double *F) {
  CRATE_TRY(check_subspaces(U, "subspace view U"));
  CRATE_TRY(check_field(eps2, field));
  CRATE_TRY(check_tokens(Z, N, U->d, "Z"));
  CRATE_TRY(check_out(F, "F"));
  if (F == Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: output F must not alias Z");
  return field_raw(Z, N, U, eps2, field, F);
}

/* ---- steps ---------------------------------------------------------------- */

/* One step of dZ/ds = sign F(Z) (sign = -1 encoder, +1 decoder) from a
 * validated Z into out (may alias Z).  work: 3 N d doubles. */
static int step_raw(const double *Z, size_t N, const crate_subspaces *U, double kappa,
                    const crate_flow_opts *opt, double sign, double *work, double *out) {
  size_t n = N * U->d;
  double *F0 = work, *Zs = work + n, *F1 = work + 2 * n;
  CRATE_TRY(field_raw(Z, N, U, opt->eps2, opt->field, F0));
  if (opt->method == CRATE_FLOW_EULER) {
    for (size_t i = 0; i < n; i++)
      out[i] = Z[i] + sign * kappa * F0[i];
  } else {
    for (size_t i = 0; i < n; i++)
      Zs[i] = Z[i] + sign * kappa * F0[i];
    CRATE_TRY(check_finite_result(Zs, n, "the Heun predictor"));
    CRATE_TRY(field_raw(Zs, N, U, opt->eps2, opt->field, F1));
    for (size_t i = 0; i < n; i++)
      out[i] = Z[i] + sign * (0.5 * kappa) * (F0[i] + F1[i]);
  }
  return check_finite_result(out, n, "a step");
}

static int step_checked(const double *Z, size_t N, const crate_subspaces *U, double kappa,
                        const crate_flow_opts *opt, double sign, double *out) {
  CRATE_TRY(check_subspaces(U, "subspace view U"));
  CRATE_TRY(check_opts(opt));
  CRATE_TRY(check_kappa(kappa));
  CRATE_TRY(check_tokens(Z, N, U->d, "Z"));
  CRATE_TRY(check_out(out, "out"));
  size_t n = N * U->d;
  double *work = alloc_doubles(4 * n);
  if (!work)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "flow: out of memory (%zu doubles)", 4 * n);
  int st = step_raw(Z, N, U, kappa, opt, sign, work, work + 3 * n);
  if (st == CRATE_STATUS_OK)
    memcpy(out, work + 3 * n, n * sizeof *out);
  free(work);
  return st;
}

int crate_flow_encode_step(const double *Z, size_t N, const crate_subspaces *U, double kappa,
                           const crate_flow_opts *opt, double *out) {
  return step_checked(Z, N, U, kappa, opt, -1.0, out);
}

int crate_flow_decode_step(const double *Y, size_t N, const crate_subspaces *U, double kappa,
                           const crate_flow_opts *opt, double *out) {
  return step_checked(Y, N, U, kappa, opt, +1.0, out);
}

/* ---- fixed-point inverse -------------------------------------------------- */

int crate_flow_encode_step_inverse(const double *Zp, size_t N, const crate_subspaces *U,
                                   double kappa, const crate_flow_opts *opt, double tol,
                                   size_t max_iter, double *Y, crate_flow_inverse_info *info) {
  CRATE_TRY(check_subspaces(U, "subspace view U"));
  CRATE_TRY(check_opts(opt));
  CRATE_TRY(check_kappa(kappa));
  CRATE_TRY(check_tokens(Zp, N, U->d, "Z'"));
  CRATE_TRY(check_out(Y, "Y"));
  if (Y == Zp)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: output Y must not alias Z'");
  if (!isfinite(tol) || !(tol > 0.0) || !(tol < 1.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: tolerance must lie in (0, 1) (got %g)", tol);
  if (max_iter == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: max_iter must be >= 1");

  size_t n = N * U->d;
  double *work = alloc_doubles(4 * n);
  if (!work)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "flow: out of memory (%zu doubles)", 4 * n);
  double *E = work + 3 * n;
  double scale = norm2(Zp, n);
  double floor_abs = 1e3 * DBL_EPSILON * scale;
  double target = tol * scale;
  crate_flow_inverse_info res = {0};
  double prev = -1.0, log_sum = 0.0;
  size_t n_ratio = 0;
  int st = CRATE_STATUS_OK;
  memcpy(Y, Zp, n * sizeof *Y);
  if (scale == 0.0) { /* F(0) = 0 for every field: the inverse of 0 is 0 */
    res.converged = true;
  }
  while (!res.converged && res.iters < max_iter) {
    st = step_raw(Y, N, U, kappa, opt, -1.0, work, E); /* E = E_kappa(Y_t) */
    if (st != CRATE_STATUS_OK)
      break;
    double inc2 = 0.0;
    for (size_t i = 0; i < n; i++) {
      double delta = Zp[i] - E[i];
      inc2 += delta * delta;
      E[i] = Y[i] + delta; /* candidate Y_{t+1} */
    }
    double inc = sqrt(inc2);
    if (!isfinite(inc) || !crate__all_finite(E, n)) {
      st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "flow: fixed-point inverse diverged at iteration %zu",
                       res.iters + 1);
      break;
    }
    memcpy(Y, E, n * sizeof *Y);
    res.iters++;
    if (prev > floor_abs) {
      double ratio = inc / prev;
      res.contraction = fmax(res.contraction, ratio);
      log_sum += log(fmax(ratio, DBL_MIN));
      n_ratio++;
    }
    prev = inc;
    res.increment = scale > 0.0 ? inc / scale : 0.0;
    if (inc <= target)
      res.converged = true;
  }
  res.rate = n_ratio > 0 ? exp(log_sum / (double)n_ratio) : 0.0;
  free(work);
  if (info)
    *info = res;
  if (st != CRATE_STATUS_OK)
    return st;
  if (!res.converged)
    return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                       "flow: fixed-point inverse did not converge in %zu iterations "
                       "(increment %.3e > tol %.3e, contraction %.3f; need kappa Lip < 1)",
                       res.iters, res.increment, tol, res.contraction);
  return CRATE_STATUS_OK;
}

/* ---- Lipschitz estimate --------------------------------------------------- */

/* Finite-difference Jacobian-vector product Jv = (F(Z + h v) - F(Z - h v)) / 2h.
 * Zh, Fm: n-double scratch. */
typedef struct jvp_ctx {
  const double *Z;
  size_t N;
  const crate_subspaces *U;
  const crate_flow_opts *opt;
  double h;
  double *Zh, *Fm;
} jvp_ctx;

static int jvp(const jvp_ctx *c, const double *v, double *Jv) {
  size_t n = c->N * c->U->d;
  for (size_t i = 0; i < n; i++)
    c->Zh[i] = c->Z[i] + c->h * v[i];
  CRATE_TRY(field_raw(c->Zh, c->N, c->U, c->opt->eps2, c->opt->field, Jv));
  for (size_t i = 0; i < n; i++)
    c->Zh[i] = c->Z[i] - c->h * v[i];
  CRATE_TRY(field_raw(c->Zh, c->N, c->U, c->opt->eps2, c->opt->field, c->Fm));
  for (size_t i = 0; i < n; i++)
    Jv[i] = (Jv[i] - c->Fm[i]) / (2.0 * c->h);
  return check_finite_result(Jv, n, "a Jacobian-vector product");
}

static double dotn(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* Plain power iteration: *est = max_t ||J v_t||, v_{t+1} = J v_t / ||J v_t||.
 * For a non-symmetric J (the MSSA field) this is what is available without
 * J^T v.  work: 2n doubles; v: unit start vector (overwritten). */
static int power_iteration(const jvp_ctx *c, size_t max_iter, double *v, double *Jv, double *est) {
  size_t n = c->N * c->U->d;
  double best = 0.0, last = -1.0;
  for (size_t it = 0; it < max_iter; it++) {
    CRATE_TRY(jvp(c, v, Jv));
    double e = sqrt(dotn(Jv, Jv, n));
    best = fmax(best, e);
    if (e == 0.0) /* J v = 0 exactly: v lies in the kernel */
      break;
    for (size_t i = 0; i < n; i++)
      v[i] = Jv[i] / e;
    if (last >= 0.0 && fabs(e - last) <= 1e-10 * e)
      break;
    last = e;
  }
  *est = best;
  return CRATE_STATUS_OK;
}

/* Lanczos with full reorthogonalisation (power iteration's Krylov space) on
 * a symmetric J, restarted from the extreme Ritz vector every m steps.
 * *est = max |Ritz value|, a lower bound on ||J||_2 that converges to it.
 * Stops when the Ritz residual beta_j |y_j| <= 1e-8 |theta|, when the
 * Krylov space is exhausted, or after max_iter products.
 * Q: (m + 1) n doubles; T: m*m; y: m; al, be: m; w: n; v: unit start. */
static int lanczos(const jvp_ctx *c, size_t max_iter, size_t m, double *v, double *Q, double *T,
                   double *theta, double *al, double *be, double *w, double *est) {
  size_t n = c->N * c->U->d, used = 0;
  double best = 0.0;
  bool done = false;
  while (!done && used < max_iter) {
    memcpy(Q, v, n * sizeof *Q);
    size_t k = 0;
    double tmax = 0.0;
    size_t imax = 0;
    for (size_t j = 0; j < m && used < max_iter; j++) {
      const double *q = Q + j * n;
      CRATE_TRY(jvp(c, q, w));
      used++;
      al[j] = dotn(q, w, n);
      for (size_t i = 0; i < n; i++)
        w[i] -= al[j] * q[i] + (j > 0 ? be[j - 1] * Q[(j - 1) * n + i] : 0.0);
      for (int pass = 0; pass < 2; pass++) /* full reorthogonalisation, twice */
        for (size_t r = 0; r <= j; r++) {
          double cr = dotn(Q + r * n, w, n);
          for (size_t i = 0; i < n; i++)
            w[i] -= cr * Q[r * n + i];
        }
      be[j] = sqrt(dotn(w, w, n));
      k = j + 1;
      /* Ritz values of the k x k tridiagonal T_k (row i of T = eigenvector i) */
      memset(T, 0, k * k * sizeof *T);
      for (size_t i = 0; i < k; i++) {
        T[i * k + i] = al[i];
        if (i + 1 < k)
          T[i * k + i + 1] = T[(i + 1) * k + i] = be[i];
      }
      CRATE_TRY(crate__dsyev(k, T, k, theta, true));
      imax = fabs(theta[0]) > fabs(theta[k - 1]) ? 0 : k - 1;
      tmax = fabs(theta[imax]);
      best = fmax(best, tmax);
      double resid = be[j] * fabs(T[imax * k + k - 1]);
      double anorm = fmax(tmax, DBL_MIN);
      if (resid <= 1e-8 * anorm || be[j] <= 1e-12 * anorm || k == n) {
        done = true;
        break;
      }
      for (size_t i = 0; i < n; i++)
        Q[(j + 1) * n + i] = w[i] / be[j];
    }
    if (done || used >= max_iter)
      break;
    /* restart from the extreme Ritz vector x = sum_i y_i q_i */
    memset(v, 0, n * sizeof *v);
    for (size_t i = 0; i < k; i++)
      for (size_t l = 0; l < n; l++)
        v[l] += T[imax * k + i] * Q[i * n + l];
    double nv = sqrt(dotn(v, v, n));
    if (!(nv > 0.0))
      break;
    for (size_t l = 0; l < n; l++)
      v[l] /= nv;
  }
  *est = best;
  return CRATE_STATUS_OK;
}

int crate_flow_lipschitz(const double *Z, size_t N, const crate_subspaces *U,
                         const crate_flow_opts *opt, size_t max_iter, crate_rng *rng, double *lip) {
  CRATE_TRY(check_subspaces(U, "subspace view U"));
  if (!opt)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: options are NULL");
  CRATE_TRY(check_field(opt->eps2, opt->field));
  CRATE_TRY(check_tokens(Z, N, U->d, "Z"));
  if (!rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: rng is NULL");
  CRATE_TRY(check_out(lip, "lip"));
  if (max_iter == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: max_iter must be >= 1");

  size_t n = N * U->d, pmax = 0;
  for (size_t k = 0; k < U->K; k++)
    pmax = U->p[k] > pmax ? U->p[k] : pmax;
  double beta_max = (double)pmax / ((double)N * opt->eps2);
  double rms = sqrt(dotn(Z, Z, n) / (double)n);
  bool symmetric = opt->field != CRATE_FLOW_FIELD_MSSA;
  size_t m = n < 64 ? n : 64;
  if (m > max_iter)
    m = max_iter;
  size_t len = 4 * n + (symmetric ? (m + 1) * n + m * m + 3 * m : 0);
  double *work = alloc_doubles(len);
  if (!work)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "flow: out of memory (%zu doubles)", len);
  jvp_ctx c = {.Z = Z,
               .N = N,
               .U = U,
               .opt = opt,
               .h = 1e-5 * fmax(rms, 1.0 / sqrt(beta_max)),
               .Zh = work,
               .Fm = work + n};
  double *v = work + 2 * n, *w = work + 3 * n;
  crate_rng_normal_fill(rng, v, n);
  double nv = sqrt(dotn(v, v, n));
  for (size_t i = 0; i < n; i++)
    v[i] /= nv;
  double est = 0.0;
  int st;
  if (symmetric) {
    double *Q = work + 4 * n, *T = Q + (m + 1) * n, *theta = T + m * m, *al = theta + m,
           *be = al + m;
    st = lanczos(&c, max_iter, m, v, Q, T, theta, al, be, w, &est);
  } else {
    st = power_iteration(&c, max_iter, v, w, &est);
  }
  free(work);
  if (st != CRATE_STATUS_OK)
    return st;
  *lip = est;
  return CRATE_STATUS_OK;
}

/* ---- L layers ------------------------------------------------------------- */

static int check_layers(const double *Z, size_t N, const crate_subspaces *U, size_t nU, size_t L,
                        double T, const crate_flow_opts *opt, const double *out) {
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: subspace array U is NULL");
  if (L == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: need at least one layer (got L = 0)");
  if (nU != 1 && nU != L)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "flow: need 1 shared or L = %zu per-layer subspace views (got %zu)", L, nU);
  for (size_t l = 0; l < nU; l++) {
    char what[64];
    snprintf(what, sizeof what, "subspace view U[%zu]", l);
    CRATE_TRY(check_subspaces(&U[l], what));
    if (U[l].d != U[0].d)
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "flow: subspace view U[%zu] has d = %zu but U[0] has d = %zu", l, U[l].d,
                         U[0].d);
  }
  CRATE_TRY(check_opts(opt));
  if (!isfinite(T) || !(T > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "flow: horizon T must be finite and > 0 (got %g)", T);
  CRATE_TRY(check_kappa(T / (double)L));
  CRATE_TRY(check_tokens(Z, N, U[0].d, "Z"));
  return check_out(out, "Z");
}

/* Runs the L layers: encoder (sign -1) from depth 0 up, decoder (sign +1)
 * from depth L down; traj is indexed by depth in both directions. */
static int run_layers(const double *Zin, size_t N, const crate_subspaces *U, size_t nU, size_t L,
                      double T, const crate_flow_opts *opt, double sign, double *Zout,
                      double *traj) {
  CRATE_TRY(check_layers(Zin, N, U, nU, L, T, opt, Zout));
  size_t n = N * U[0].d;
  double kappa = T / (double)L;
  double *work = alloc_doubles(5 * n);
  if (!work)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "flow: out of memory (%zu doubles)", 5 * n);
  double *cur = work + 3 * n, *next = work + 4 * n;
  memcpy(cur, Zin, n * sizeof *cur);
  size_t start = sign < 0.0 ? 0 : L;
  if (traj)
    memcpy(traj + start * n, cur, n * sizeof *cur);
  int st = CRATE_STATUS_OK;
  for (size_t j = 0; j < L; j++) {
    size_t l = sign < 0.0 ? j : L - 1 - j; /* the encoder layer this step runs or inverts */
    const crate_subspaces *Ul = &U[nU == 1 ? 0 : l];
    st = step_raw(cur, N, Ul, kappa, opt, sign, work, next);
    if (st != CRATE_STATUS_OK) {
      char inner[512];
      snprintf(inner, sizeof inner, "%s", crate_error_message());
      st = CRATE_ERROR(st, "flow: %s layer %zu failed (%s)", sign < 0.0 ? "encoder" : "decoder", j,
                       inner);
      break;
    }
    double *t = cur;
    cur = next;
    next = t;
    if (traj)
      memcpy(traj + (sign < 0.0 ? l + 1 : l) * n, cur, n * sizeof *cur);
  }
  if (st == CRATE_STATUS_OK)
    memcpy(Zout, cur, n * sizeof *Zout);
  free(work);
  return st;
}

int crate_flow_encode(const double *Z0, size_t N, const crate_subspaces *U, size_t nU, size_t L,
                      double T, const crate_flow_opts *opt, double *ZL, double *traj) {
  return run_layers(Z0, N, U, nU, L, T, opt, -1.0, ZL, traj);
}

int crate_flow_decode(const double *ZL, size_t N, const crate_subspaces *U, size_t nU, size_t L,
                      double T, const crate_flow_opts *opt, double *Z0, double *traj) {
  return run_layers(ZL, N, U, nU, L, T, opt, +1.0, Z0, traj);
}
