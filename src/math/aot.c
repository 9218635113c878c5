/* aot.c: the attention-only (AoT) layer, its mixture-of-Gaussians token
 * model and the per-cluster SNR (MATH.md §2.6; Wang, Lu, Yu, Pai, Qu, Ma
 * 2025, arXiv 2506.03790; book ch.4 `thm:1`).
 *
 *   layer  Z <- Z + eta sum_k U_k U_k^T Z phi(Z^T U_k U_k^T Z),
 *          phi = h o softmax_col,  h(x) = tau 1{x > tau}
 *   model  z_i = U_k a_i + sum_{j != k} U_j e_{i,j},  a_i ~ N(0, I),
 *          e_{i,j} ~ N(0, delta^2 I)
 *   SNR    ||U_k U_k^T Z_k||_F / ||(I - U_k U_k^T) Z_k||_F
 *
 * Memory: Z is the row-major (N, d) array Z^T.  With Y_k = Z U_k (N, p_k),
 * the score matrix S_k = Y_k Y_k^T is symmetric, so column j of
 * softmax_col(S_k) (query j, normalised over keys i) is the softmax of row j
 * of S_k (P9).  Token j gains eta sum_i phi_k[i, j] U_k y_{k,i}, i.e.
 * out += eta Phi_k^T Y_k U_k^T with Phi_k[j][i] = phi_k[i, j] stored by query.
 * Reference code in double.  Non-goals: the learned MSSA (src/ops).
 */
#include <stdint.h>
#include <string.h>

#include "crate/flow.h"
#include "internal.h"

/* ---- validation ----------------------------------------------------------- */

static int check_subspaces(const crate_subspaces *U) {
  if (!U)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: subspace view U is NULL");
  int st = crate_subspaces_check(U, -1.0);
  if (st != CRATE_STATUS_OK) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", crate_error_message());
    return CRATE_ERROR(st, "aot: invalid subspaces (%s)", inner);
  }
  return CRATE_STATUS_OK;
}

static int check_tokens(const double *Z, size_t N, size_t d, bool need_finite) {
  if (!Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: token array Z is NULL");
  if (N == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: need at least one token (got N = 0)");
  if (N > SIZE_MAX / sizeof(double) / (N > d ? N : d) / 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: N = %zu tokens is too large", N);
  if (need_finite)
    for (size_t i = 0; i < N * d; i++)
      if (!isfinite(Z[i]))
        return CRATE_ERROR(CRATE_STATUS_EINVAL,
                           "aot: Z has a non-finite entry %g at token %zu, coordinate %zu", Z[i],
                           i / d, i % d);
  return CRATE_STATUS_OK;
}

static size_t max_rank(const crate_subspaces *U) {
  size_t pmax = 0;
  for (size_t k = 0; k < U->K; k++)
    pmax = U->p[k] > pmax ? U->p[k] : pmax;
  return pmax;
}

/* ---- layer ---------------------------------------------------------------- */

int crate_aot_layer(const double *Z, size_t N, const crate_subspaces *U, double eta, double tau,
                    double *out) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, true));
  if (!isfinite(eta) || !(eta > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: step eta must be finite and > 0 (got %g)", eta);
  if (!isfinite(tau) || !(tau > 0.0) || tau > 1.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: threshold tau must lie in (0, 1] (got %g)", tau);
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: output out is NULL");
  size_t d = U->d, p = max_rank(U), n = N * d;
  size_t len = n + N * N + 2 * N * p;
  double *acc = crate__calloc(len, sizeof *acc);
  if (!acc)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "aot: out of memory (%zu doubles)", len);
  double *S = acc + n, *Y = S + N * N, *V = Y + N * p;
  memcpy(acc, Z, n * sizeof *acc);
  for (size_t k = 0; k < U->K; k++) {
    size_t pk = U->p[k];
    const double *Utk = U->Ut + crate_subspaces_offset(U, k) * d;
    crate_dgemm(false, true, N, pk, d, 1.0, Z, d, Utk, d, 0.0, Y, pk); /* Y = Z U_k */
    crate_dgemm(false, true, N, N, pk, 1.0, Y, pk, Y, pk, 0.0, S, N);  /* S = Y Y^T */
    bool any = false;
    for (size_t j = 0; j < N; j++) { /* row j of S = column j: query j over keys i */
      double *s = S + j * N, mx = s[0], sum = 0.0;
      for (size_t i = 1; i < N; i++)
        mx = s[i] > mx ? s[i] : mx;
      for (size_t i = 0; i < N; i++) {
        s[i] = exp(s[i] - mx);
        sum += s[i];
      }
      for (size_t i = 0; i < N; i++) {
        bool pass = s[i] / sum > tau;
        s[i] = pass ? tau : 0.0;
        any = any || pass;
      }
    }
    if (!any)
      continue; /* phi_k = 0: head k contributes nothing */
    crate_dgemm(false, false, N, pk, N, 1.0, S, N, Y, pk, 0.0, V, pk);    /* V = Phi^T Y */
    crate_dgemm(false, false, N, d, pk, eta, V, pk, Utk, d, 1.0, acc, d); /* += eta V U_k^T */
  }
  int st = CRATE_STATUS_OK;
  if (!crate__all_finite(acc, n))
    st = CRATE_ERROR(CRATE_STATUS_ENUMERIC, "aot: layer produced a non-finite value");
  else
    memcpy(out, acc, n * sizeof *out);
  free(acc);
  return st;
}

/* ---- token model ---------------------------------------------------------- */

int crate_aot_sample(const crate_subspaces *U, size_t N, double delta, crate_rng *rng, double *Z,
                     size_t *labels) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, false));
  if (!isfinite(delta) || delta < 0.0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: noise delta must be finite and >= 0 (got %g)",
                       delta);
  if (!rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: rng is NULL");
  if (N > SIZE_MAX / U->K)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: N = %zu tokens is too large", N);
  size_t d = U->d, P = crate_subspaces_total(U);
  double *c = crate__calloc(P, sizeof *c);
  if (!c)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "aot: out of memory (%zu doubles)", P);
  for (size_t i = 0; i < N; i++) {
    size_t k = i * U->K / N; /* floor(i K / N) < K since i < N */
    size_t off = crate_subspaces_offset(U, k);
    for (size_t a = 0; a < U->p[k]; a++)
      c[off + a] = crate_rng_normal(rng);
    for (size_t j = 0; j < U->K; j++) {
      if (j == k)
        continue;
      size_t offj = crate_subspaces_offset(U, j);
      for (size_t a = 0; a < U->p[j]; a++)
        c[offj + a] = delta * crate_rng_normal(rng);
    }
    crate_dgemm(false, false, 1, d, P, 1.0, c, P, U->Ut, d, 0.0, Z + i * d, d); /* z = Ut^T c */
    if (labels)
      labels[i] = k;
  }
  free(c);
  return CRATE_STATUS_OK;
}

/* ---- SNR ------------------------------------------------------------------ */

int crate_aot_snr(const double *Z, size_t N, const crate_subspaces *U, const size_t *labels,
                  double *snr) {
  CRATE_TRY(check_subspaces(U));
  CRATE_TRY(check_tokens(Z, N, U->d, true));
  if (!labels)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: labels are NULL");
  if (!snr)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: output snr is NULL");
  size_t d = U->d, K = U->K, p = max_rank(U);
  for (size_t i = 0; i < N; i++)
    if (labels[i] >= K)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: label %zu of token %zu is not below K = %zu",
                         labels[i], i, K);
  double *buf = crate__calloc(2 * K + p + d, sizeof *buf);
  if (!buf)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "aot: out of memory");
  double *sig = buf, *noi = buf + K, *y = buf + 2 * K, *proj = y + p;
  size_t *count = crate__calloc(K, sizeof *count);
  if (!count) {
    free(buf);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "aot: out of memory");
  }
  for (size_t i = 0; i < N; i++) {
    size_t k = labels[i], pk = U->p[k];
    const double *Utk = U->Ut + crate_subspaces_offset(U, k) * d, *z = Z + i * d;
    crate_dgemm(false, true, 1, pk, d, 1.0, z, d, Utk, d, 0.0, y, pk);     /* y = U_k^T z */
    crate_dgemm(false, false, 1, d, pk, 1.0, y, pk, Utk, d, 0.0, proj, d); /* P_k z */
    for (size_t l = 0; l < d; l++) {
      double r = z[l] - proj[l];
      sig[k] += proj[l] * proj[l];
      noi[k] += r * r;
    }
    count[k]++;
  }
  int st = CRATE_STATUS_OK;
  for (size_t k = 0; k < K && st == CRATE_STATUS_OK; k++)
    if (count[k] == 0)
      st = CRATE_ERROR(CRATE_STATUS_EINVAL, "aot: cluster %zu has no tokens", k);
  if (st == CRATE_STATUS_OK)
    for (size_t k = 0; k < K; k++)
      snr[k] = noi[k] > 0.0 ? sqrt(sig[k]) / sqrt(noi[k]) : HUGE_VAL;
  free(count);
  free(buf);
  return st;
}
