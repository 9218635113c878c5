/* stats.c: two-sample and structural statistics for generated distributions,
 * used by MATH.md §6 row C7 (and C8): unbiased MMD^2 with a Gaussian kernel
 * and the median-heuristic bandwidth (Gretton, Borgwardt, Rasch, Schoelkopf,
 * Smola, "A Kernel Two-Sample Test", JMLR 2012, eq. 3 and §8), sliced W2
 * (exact 1-D W2 between empirical quantile functions), the PCA subspace
 * error ||Uhat Uhat^T - U U^T||_F of one component, and frequencies.
 *
 * All sums run in double in a fixed order, so the results are bit-identical
 * run to run.  Non-goals: permutation tests (the caller builds the null from
 * exact samples), kernels other than the Gaussian, linear-time MMD.
 */
#include <string.h>

#include "crate/stats.h"
#include "internal.h"

static int check_sample(const double *X, size_t n, size_t d, size_t nmin, const char *name) {
  if (!X)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: sample %s is NULL", name);
  if (d == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: dimension d = 0");
  if (n < nmin)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: sample %s has %zu points (need >= %zu)", name,
                       n, nmin);
  if (n > ((size_t)-1 / sizeof(double)) / d)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: sample %s too large", name);
  if (!crate__all_finite(X, n * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: sample %s has a non-finite entry", name);
  return CRATE_STATUS_OK;
}

static double sqdist(const double *a, const double *b, size_t d) {
  double s = 0.0;
  for (size_t l = 0; l < d; l++) {
    double t = a[l] - b[l];
    s += t * t;
  }
  return s;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- MMD ------------------------------------------------------------------- */

int crate_stats_median_bandwidth(double *bw, const double *X, size_t n, const double *Y, size_t m,
                                 size_t d) {
  if (!bw)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL output");
  CRATE_TRY(check_sample(X, n, d, 0, "X"));
  if (m > 0)
    CRATE_TRY(check_sample(Y, m, d, 0, "Y"));
  size_t N = n + m;
  if (N < 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: median heuristic needs >= 2 points");
  size_t use = N < CRATE_STATS_MEDIAN_MAX ? N : CRATE_STATS_MEDIAN_MAX;
  size_t npairs = use * (use - 1) / 2;
  double *D = crate__calloc(npairs, sizeof *D);
  if (!D)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "stats: %zu pair distances", npairs);
  /* Pooled index t -> point; strided subsample t = floor(j N / use). */
  size_t c = 0;
  for (size_t a = 0; a < use; a++) {
    size_t ta = (size_t)((double)a * (double)N / (double)use);
    const double *pa = ta < n ? X + ta * d : Y + (ta - n) * d;
    for (size_t b = 0; b < a; b++) {
      size_t tb = (size_t)((double)b * (double)N / (double)use);
      const double *pb = tb < n ? X + tb * d : Y + (tb - n) * d;
      D[c++] = sqdist(pa, pb, d);
    }
  }
  qsort(D, npairs, sizeof *D, cmp_double);
  double med = npairs % 2 ? D[npairs / 2] : 0.5 * (D[npairs / 2 - 1] + D[npairs / 2]);
  free(D);
  if (!(med > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "stats: median pairwise distance is 0 (points coincide)");
  *bw = sqrt(med);
  return CRATE_STATUS_OK;
}

/* Sum over pairs of exp(-||a_i - b_j||^2 / (2 bw^2)); same = off-diagonal only
 * (A == B). */
static double kernel_sum(const double *A, size_t na, const double *B, size_t nb, size_t d, double g,
                         bool same) {
  double s = 0.0;
  for (size_t i = 0; i < na; i++) {
    double row = 0.0;
    if (same) {
      for (size_t j = 0; j < i; j++)
        row += exp(-g * sqdist(A + i * d, A + j * d, d));
      row *= 2.0; /* symmetric pairs */
    } else {
      for (size_t j = 0; j < nb; j++)
        row += exp(-g * sqdist(A + i * d, B + j * d, d));
    }
    s += row;
  }
  return s;
}

int crate_stats_mmd2(double *mmd2, const double *X, size_t n, const double *Y, size_t m, size_t d,
                     double bw) {
  if (!mmd2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL output");
  CRATE_TRY(check_sample(X, n, d, 2, "X"));
  CRATE_TRY(check_sample(Y, m, d, 2, "Y"));
  if (!isfinite(bw) || !(bw > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: bandwidth %g must be finite and > 0", bw);
  double g = 1.0 / (2.0 * bw * bw);
  double kxx = kernel_sum(X, n, X, n, d, g, true);
  double kyy = kernel_sum(Y, m, Y, m, d, g, true);
  double kxy = kernel_sum(X, n, Y, m, d, g, false);
  double dn = (double)n, dm = (double)m;
  *mmd2 = kxx / (dn * (dn - 1.0)) + kyy / (dm * (dm - 1.0)) - 2.0 * kxy / (dn * dm);
  return CRATE_STATUS_OK;
}

/* ---- sliced W2 ------------------------------------------------------------------ */

/* W2^2 between the empirical laws of sorted a (n) and sorted b (m): the
 * integral over u in (0, 1) of (Fa^-1(u) - Fb^-1(u))^2, both quantile
 * functions piecewise constant with breaks at i/n and j/m. */
static double w2sq_sorted(const double *a, size_t n, const double *b, size_t m) {
  double s = 0.0, u = 0.0;
  size_t i = 0, j = 0;
  while (i < n && j < m) {
    /* next break: min((i+1)/n, (j+1)/m), compared exactly in integers */
    double ua = (double)(i + 1) / (double)n, ub = (double)(j + 1) / (double)m;
    size_t lhs = (i + 1) * m, rhs = (j + 1) * n;
    double next = lhs <= rhs ? ua : ub;
    double t = a[i] - b[j];
    s += (next - u) * t * t;
    u = next;
    if (lhs <= rhs)
      i++;
    if (rhs <= lhs)
      j++;
  }
  return s;
}

int crate_stats_sliced_w2(double *sw2, const double *X, size_t n, const double *Y, size_t m,
                          size_t d, size_t n_proj, crate_rng *rng) {
  if (!sw2 || !rng)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL %s", sw2 ? "generator" : "output");
  CRATE_TRY(check_sample(X, n, d, 1, "X"));
  CRATE_TRY(check_sample(Y, m, d, 1, "Y"));
  if (n_proj == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: sliced W2 needs n_proj >= 1");
  double *buf = crate__calloc(n + m + d, sizeof *buf);
  if (!buf)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "stats: %zu doubles", n + m + d);
  double *a = buf, *b = a + n, *th = b + m;
  double acc = 0.0;
  for (size_t r = 0; r < n_proj; r++) {
    double nn = 0.0;
    do {
      crate_rng_normal_fill(rng, th, d);
      nn = 0.0;
      for (size_t l = 0; l < d; l++)
        nn += th[l] * th[l];
    } while (!(nn > 0.0));
    nn = 1.0 / sqrt(nn);
    for (size_t l = 0; l < d; l++)
      th[l] *= nn;
    for (size_t i = 0; i < n; i++) {
      double t = 0.0;
      for (size_t l = 0; l < d; l++)
        t += X[i * d + l] * th[l];
      a[i] = t;
    }
    for (size_t i = 0; i < m; i++) {
      double t = 0.0;
      for (size_t l = 0; l < d; l++)
        t += Y[i * d + l] * th[l];
      b[i] = t;
    }
    qsort(a, n, sizeof *a, cmp_double);
    qsort(b, m, sizeof *b, cmp_double);
    acc += w2sq_sorted(a, n, b, m);
  }
  free(buf);
  *sw2 = sqrt(acc / (double)n_proj);
  return CRATE_STATUS_OK;
}

/* ---- PCA subspace error ---------------------------------------------------------- */

int crate_stats_subspace_error(double *err, size_t *count, const double *X, size_t n, size_t d,
                               const size_t *labels, size_t k, const double *Ut, size_t p) {
  if (!err || !Ut)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL %s", err ? "basis" : "output");
  CRATE_TRY(check_sample(X, n, d, 0, "X"));
  if (p == 0 || p > d)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: subspace rank p = %zu not in [1, %zu]", p, d);
  if (!crate__all_finite(Ut, p * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: basis has a non-finite entry");
  double *S = crate__calloc(2 * d * d + d, sizeof *S); /* S, P diff: (d, d); w: (d) */
  if (!S)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "stats: %zu doubles", 2 * d * d + d);
  double *E = S + d * d, *w = E + d * d;
  size_t nk = 0;
  for (size_t i = 0; i < n; i++) {
    if (labels && labels[i] != k)
      continue;
    const double *x = X + i * d;
    for (size_t a = 0; a < d; a++)
      for (size_t b = 0; b <= a; b++)
        S[a * d + b] += x[a] * x[b];
    nk++;
  }
  if (count)
    *count = nk;
  if (nk < p) {
    free(S);
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "stats: component %zu has %zu points, fewer than its rank %zu", k, nk, p);
  }
  for (size_t a = 0; a < d; a++)
    for (size_t b = 0; b <= a; b++) {
      S[a * d + b] /= (double)nk;
      S[b * d + a] = S[a * d + b];
    }
  int st = crate__dsyev(d, S, d, w, true);
  if (st != CRATE_STATUS_OK) {
    free(S);
    return st;
  }
  /* E = Uhat Uhat^T - U U^T; eigenvectors in rows d-p..d-1 (ascending). */
  for (size_t a = 0; a < d; a++)
    for (size_t b = 0; b < d; b++) {
      double e = 0.0;
      for (size_t j = d - p; j < d; j++)
        e += S[j * d + a] * S[j * d + b];
      for (size_t j = 0; j < p; j++)
        e -= Ut[j * d + a] * Ut[j * d + b];
      E[a * d + b] = e;
    }
  double f = 0.0;
  for (size_t i = 0; i < d * d; i++)
    f += E[i] * E[i];
  free(S);
  *err = sqrt(f);
  return CRATE_STATUS_OK;
}

/* ---- labels and frequencies ------------------------------------------------------- */

int crate_stats_argmax(size_t *labels, const double *P, size_t M, size_t K) {
  if (!labels || !P)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL %s", labels ? "input" : "output");
  if (K == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: argmax over K = 0 columns");
  for (size_t i = 0; i < M; i++) {
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
      if (P[i * K + k] > P[i * K + best])
        best = k;
    labels[i] = best;
  }
  return CRATE_STATUS_OK;
}

int crate_stats_frequencies(double *freq, double *se, const size_t *labels, size_t M, size_t K) {
  if (!freq || !labels)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: NULL %s", freq ? "labels" : "output");
  if (M == 0 || K == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: frequencies need M, K > 0 (got %zu, %zu)", M,
                       K);
  for (size_t i = 0; i < M; i++)
    if (labels[i] >= K)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "stats: label[%zu] = %zu not below K = %zu", i,
                         labels[i], K);
  for (size_t k = 0; k < K; k++)
    freq[k] = 0.0;
  for (size_t i = 0; i < M; i++)
    freq[labels[i]] += 1.0;
  for (size_t k = 0; k < K; k++) {
    freq[k] /= (double)M;
    if (se)
      se[k] = sqrt(freq[k] * (1.0 - freq[k]) / (double)M);
  }
  return CRATE_STATUS_OK;
}
