/* sampler.c: probability-flow-ODE samplers behind one reverse-communication
 * interface, and whole integrations with exact denoisers (MATH.md §4.2-4.8).
 *
 * The ODE is dz/dsigma = F(z, sigma) = (z - m(z; sigma)) / sigma (§4.2).
 * With sigma = grid[i], sigma' = grid[i+1], h = sigma' - sigma (negative when
 * decoding) one step z_i -> z_{i+1} of each method is (§4.6):
 *   Euler     z + h F(z, sigma)                                   (= DDIM, §4.3)
 *   Heun      zt = z + h k1;  z + h/2 (k1 + F(zt, sigma'))
 *   RK4       k1 = F(z, s), k2 = F(z + h/2 k1, s + h/2), k3 = F(z + h/2 k2,
 *             s + h/2), k4 = F(z + h k3, s'); z + h/6 (k1 + 2k2 + 2k3 + k4)
 *   DPM-2     s_m = sqrt(s s'); z_m = z + (s_m - s) k1; z + h F(z_m, s_m)
 *   DPM++(2M) in lambda = -log sigma, delta = lambda' - lambda = log(s/s'):
 *             D = m_i on the first step, else (1 + c) m_i - c m_{i-1} with
 *             c = 1/(2r) = delta_i / (2 delta_{i-1});
 *             z' = (s'/s) z - expm1(-delta) D = z + (h/s) (z - D),
 *             since expm1(-delta) = s'/s - 1 = h/s exactly; the form
 *             z - D = (z - m_i) - c (m_i - m_{i-1}) keeps the residual.
 *   midpoint  z' = z + h F((z + z')/2, s + h/2), implicit: fixed-point
 *             iterates z'_0 = z, z'_{k+1} = z + h F((z + z'_k)/2, s + h/2)
 *             (one evaluation each) until max|z'_{k+1} - z'_k| <= 64 eps
 *             max|z'_{k+1}|.  The map is symmetric (its inverse is the same
 *             rule with -h), so a same-grid round trip is exact up to that
 *             tolerance (§6 C5, P3).
 * Whenever sigma' = 0 every method takes the Tweedie step z' = m(z; sigma)
 * (P2): the field is never evaluated at sigma = 0.
 *
 * The augmented state Lambda (d Lambda / d sigma = div F, §4.8) is advanced by
 * the same weights: Euler h g1, Heun h/2 (g1 + g2), RK4 h/6 (g1 + 2g2 + 2g3 +
 * g4), DPM-2 and midpoint h g_m.  DPM++(2M) has no stage values between grid points, so
 * Lambda uses the matching multistep rule, variable-step Adams-Bashforth 2 in
 * lambda on dLambda/dlambda = -sigma div F (bounded as sigma -> 0, unlike
 * div F itself): delta (g_i + delta_i/(2 delta_{i-1}) (g_i - g_{i-1})), with
 * an Euler first step.  Both are order 2.
 *
 * Reverse communication (GSL style, no callbacks): the sampler exposes the
 * points and sigma at which it needs the denoiser; the caller fills the
 * buffers and calls crate_sampler_step.  All buffers are allocated once at
 * create; query and step never allocate.
 *
 * Non-goals: stochastic samplers (reverse SDE), adaptive step control, float
 * twins (the reference is double).
 */
#include <float.h>
#include <string.h>

#include "crate/diffusion.h"
#include "internal.h"

enum { MODE_IDLE = 0, MODE_RUN = 1, MODE_DONE = 2, MODE_FAILED = 3 };

struct crate_sampler {
  crate_sampler_kind kind;
  unsigned flags;
  size_t M, d, n; /* points, dimension, grid length */
  double *grid;   /* (n) */
  double *z;      /* (M, d) state at grid[step] */
  double *pt;     /* (M, d) stage point for stages > 0 */
  double *den;    /* (M, d) caller: m(points) */
  double *res;    /* (M, d) caller (RESID) or formed here: points - m */
  double *div;    /* (M) caller (DIVERGENCE): div F */
  double *k[4];   /* (M, d) field values of the stages of one step */
  double *g[4];   /* (M) divergences of the stages */
  double *mprev;  /* (M, d) DPM++(2M): m_{i-1} */
  double *gprev;  /* (M) DPM++(2M): -sigma div F at the previous grid point */
  double *lambda; /* (M) accumulated int div F dsigma */
  double dprev;   /* DPM++(2M): delta_{i-1} */
  bool have_prev; /* DPM++(2M): history present */
  size_t step;    /* current ODE step i */
  unsigned stage; /* current evaluation within step i */
  size_t nfe;
  int mode;
};

/* ---- names ---------------------------------------------------------------- */

static const char *const names[] = {"euler", "heun", "rk4", "dpm2", "dpmpp-2m", "midpoint"};

static bool kind_valid(crate_sampler_kind kind) {
  return (int)kind >= 0 && (int)kind <= (int)CRATE_SAMPLER_MIDPOINT;
}

const char *crate_sampler_name(crate_sampler_kind kind) {
  return kind_valid(kind) ? names[kind] : "?";
}

int crate_sampler_parse(const char *name, crate_sampler_kind *kind) {
  if (!name || !kind)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL name or output");
  for (int i = 0; i <= (int)CRATE_SAMPLER_MIDPOINT; i++)
    if (strcmp(name, names[i]) == 0) {
      *kind = (crate_sampler_kind)i;
      return CRATE_STATUS_OK;
    }
  return CRATE_ERROR(CRATE_STATUS_EINVAL,
                     "sampler: unknown method '%s' (euler, heun, rk4, dpm2, dpmpp-2m, midpoint)",
                     name);
}

int crate_sampler_order(crate_sampler_kind kind) {
  static const int order[] = {1, 2, 4, 2, 2, 2};
  return kind_valid(kind) ? order[kind] : 0;
}

/* Stage buffers per ODE step (evaluations, except for the midpoint rule,
 * which keeps F and the iterate z'). */
static unsigned n_stages(crate_sampler_kind kind) {
  static const unsigned st[] = {1, 2, 4, 2, 1, 2};
  return st[kind];
}

/* ---- create / destroy ----------------------------------------------------- */

int crate_sampler_create(crate_sampler **out, crate_sampler_kind kind, const double *grid,
                         size_t n_grid, size_t M, size_t d, unsigned flags) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL output handle");
  *out = NULL;
  if (!kind_valid(kind))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: unknown method %d", (int)kind);
  if (M == 0 || d == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: need M > 0 points of d > 0 (got %zu, %zu)", M,
                       d);
  if (flags & ~(unsigned)(CRATE_SAMPLER_RESID | CRATE_SAMPLER_DIVERGENCE))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: unknown flags 0x%x", flags);
  bool with_div = (flags & CRATE_SAMPLER_DIVERGENCE) != 0;
  int st = crate_schedule_check(grid, n_grid, !with_div);
  if (st != CRATE_STATUS_OK) {
    char buf[400];
    snprintf(buf, sizeof buf, "%s", crate_error_message());
    return CRATE_ERROR(st, "sampler: bad grid%s (%s)",
                       with_div ? " for the likelihood, which cannot reach sigma = 0" : "", buf);
  }
  size_t Md = M * d;
  if (d > ((size_t)-1 / sizeof(double)) / 16 / M)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: M = %zu, d = %zu too large", M, d);
  unsigned ns = n_stages(kind);
  /* doubles: grid, z, pt, den, res, k[ns], mprev | div, g[ns], gprev, lambda */
  size_t nd = n_grid + (5 + ns) * Md + (3 + ns) * M;
  crate_sampler *s = crate__calloc(1, sizeof *s);
  double *buf = crate__calloc(nd, sizeof *buf);
  if (!s || !buf) {
    free(s);
    free(buf);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "sampler: %zu doubles for M = %zu, d = %zu", nd, M, d);
  }
  s->kind = kind;
  s->flags = flags;
  s->M = M;
  s->d = d;
  s->n = n_grid;
  double *p = buf;
  s->grid = p, p += n_grid;
  s->z = p, p += Md;
  s->pt = p, p += Md;
  s->den = p, p += Md;
  s->res = p, p += Md;
  for (unsigned j = 0; j < ns; j++)
    s->k[j] = p, p += Md;
  s->mprev = p, p += Md;
  s->div = p, p += M;
  for (unsigned j = 0; j < ns; j++)
    s->g[j] = p, p += M;
  s->gprev = p, p += M;
  s->lambda = p, p += M;
  CRATE_ASSERT((size_t)(p - buf) == nd);
  memcpy(s->grid, grid, n_grid * sizeof *grid);
  s->mode = MODE_IDLE;
  *out = s;
  return CRATE_STATUS_OK;
}

void crate_sampler_destroy(crate_sampler *s) {
  if (!s)
    return;
  free(s->grid); /* the one block */
  free(s);
}

int crate_sampler_start(crate_sampler *s, const double *Z0) {
  if (!s || !Z0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL %s", s ? "start points" : "handle");
  if (!crate__all_finite(Z0, s->M * s->d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: start points contain a non-finite entry");
  memcpy(s->z, Z0, s->M * s->d * sizeof *Z0);
  memset(s->lambda, 0, s->M * sizeof *s->lambda);
  s->have_prev = false;
  s->dprev = 0.0;
  s->step = 0;
  s->stage = 0;
  s->nfe = 0;
  s->mode = MODE_RUN;
  return CRATE_STATUS_OK;
}

/* ---- query ----------------------------------------------------------------- */

/* Noise level of the current stage. */
static double stage_sigma(const crate_sampler *s) {
  double sg = s->grid[s->step], sn = s->grid[s->step + 1], h = sn - sg;
  if (sn == 0.0)
    return sg; /* Tweedie step */
  if (s->kind == CRATE_SAMPLER_MIDPOINT)
    return sg + 0.5 * h;
  if (s->stage == 0)
    return sg;
  switch (s->kind) {
  case CRATE_SAMPLER_HEUN: return sn;
  case CRATE_SAMPLER_RK4: return s->stage == 3 ? sn : sg + 0.5 * h;
  case CRATE_SAMPLER_DPM2: return sqrt(sg * sn);
  default: break;
  }
  CRATE_ASSERT(0 && "single-stage methods have no later stages");
  return sg;
}

bool crate_sampler_query_next(crate_sampler *s, crate_sampler_query *q) {
  if (!s || !q || s->mode != MODE_RUN)
    return false;
  q->points = s->stage == 0 ? s->z : s->pt;
  q->sigma = stage_sigma(s);
  q->denoised = s->den;
  q->resid = (s->flags & CRATE_SAMPLER_RESID) ? s->res : NULL;
  q->div = (s->flags & CRATE_SAMPLER_DIVERGENCE) ? s->div : NULL;
  q->M = s->M;
  q->d = s->d;
  q->step = s->step;
  q->stage = s->stage;
  return true;
}

/* ---- step ------------------------------------------------------------------ */

static void fill_info(const crate_sampler *s, crate_sampler_info *info, bool step_done) {
  if (!info)
    return;
  info->steps_done = s->step;
  info->n_steps = s->n - 1;
  info->nfe = s->nfe;
  info->sigma = s->grid[s->step < s->n ? s->step : s->n - 1];
  info->step_done = step_done;
  info->finished = s->mode == MODE_DONE;
}

/* x (n) = a + c b */
static void axpy3(double *x, const double *a, double c, const double *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = a[i] + c * b[i];
}

static int fail(crate_sampler *s, const char *what) {
  double sg = s->grid[s->step], sn = s->grid[s->step + 1];
  s->mode = MODE_FAILED;
  return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                     "sampler: non-finite %s at step %zu of %zu (sigma %.6g -> %.6g, %s "
                     "stage %u)",
                     what, s->step, s->n - 1, sg, sn, crate_sampler_name(s->kind), s->stage);
}

int crate_sampler_step(crate_sampler *s, crate_sampler_info *info) {
  if (!s)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL handle");
  if (s->mode != MODE_RUN)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: step called %s",
                       s->mode == MODE_IDLE   ? "before crate_sampler_start"
                       : s->mode == MODE_DONE ? "after the grid finished"
                                              : "after a failed step (restart it)");
  const size_t M = s->M, Md = s->M * s->d;
  const bool with_res = (s->flags & CRATE_SAMPLER_RESID) != 0;
  const bool with_div = (s->flags & CRATE_SAMPLER_DIVERGENCE) != 0;
  const unsigned j = s->stage;
  const double sg = s->grid[s->step], sn = s->grid[s->step + 1], h = sn - sg;
  const double se = stage_sigma(s);
  const double *pts = j == 0 ? s->z : s->pt;

  if (!crate__all_finite(s->den, Md))
    return fail(s, "denoiser output");
  if (with_res && !crate__all_finite(s->res, Md))
    return fail(s, "residual");
  if (with_div && !crate__all_finite(s->div, M))
    return fail(s, "divergence");
  s->nfe++;

  bool done = false;
  if (sn == 0.0) {
    /* Tweedie step: z' = m(z; sigma) (P2). */
    memcpy(s->z, s->den, Md * sizeof *s->z);
    done = true;
  } else {
    /* Field of this stage: F = (points - m) / sigma_e. */
    const unsigned kj = s->kind == CRATE_SAMPLER_MIDPOINT ? 0 : j;
    double *k = s->k[kj], inv = 1.0 / se;
    const double *r = s->res;
    if (!with_res) {
      for (size_t i = 0; i < Md; i++)
        s->res[i] = pts[i] - s->den[i];
    }
    for (size_t i = 0; i < Md; i++)
      k[i] = r[i] * inv;
    if (with_div)
      memcpy(s->g[kj], s->div, M * sizeof *s->div);

    switch (s->kind) {
    case CRATE_SAMPLER_EULER:
      axpy3(s->z, s->z, h, k, Md);
      if (with_div)
        axpy3(s->lambda, s->lambda, h, s->g[0], M);
      done = true;
      break;
    case CRATE_SAMPLER_HEUN:
      if (j == 0) {
        axpy3(s->pt, s->z, h, k, Md);
      } else {
        for (size_t i = 0; i < Md; i++)
          s->z[i] += 0.5 * h * (s->k[0][i] + s->k[1][i]);
        if (with_div)
          for (size_t i = 0; i < M; i++)
            s->lambda[i] += 0.5 * h * (s->g[0][i] + s->g[1][i]);
        done = true;
      }
      break;
    case CRATE_SAMPLER_RK4:
      if (j < 2) {
        axpy3(s->pt, s->z, 0.5 * h, k, Md);
      } else if (j == 2) {
        axpy3(s->pt, s->z, h, k, Md);
      } else {
        const double c = h / 6.0;
        for (size_t i = 0; i < Md; i++)
          s->z[i] += c * (s->k[0][i] + 2.0 * s->k[1][i] + 2.0 * s->k[2][i] + s->k[3][i]);
        if (with_div)
          for (size_t i = 0; i < M; i++)
            s->lambda[i] += c * (s->g[0][i] + 2.0 * s->g[1][i] + 2.0 * s->g[2][i] + s->g[3][i]);
        done = true;
      }
      break;
    case CRATE_SAMPLER_DPM2:
      if (j == 0) {
        axpy3(s->pt, s->z, sqrt(sg * sn) - sg, k, Md);
      } else {
        axpy3(s->z, s->z, h, k, Md);
        if (with_div)
          axpy3(s->lambda, s->lambda, h, s->g[1], M);
        done = true;
      }
      break;
    case CRATE_SAMPLER_MIDPOINT: {
      /* k = F(pts, s + h/2) with pts = (z + z'_j)/2 (z'_0 = z); the new
       * iterate z'_{j+1} = z + h k goes to k[1], the old one is z (j = 0) or
       * k[1]. */
      const double *old_it = j == 0 ? s->z : s->k[1];
      double *it = s->k[1], delta = 0.0, scale = 0.0; /* NaNs: caught below */
      for (size_t i = 0; i < Md; i++) {
        double v = s->z[i] + h * k[i];
        delta = fmax(delta, fabs(v - old_it[i]));
        scale = fmax(scale, fabs(v));
        it[i] = v;
      }
      if (delta <= 64.0 * DBL_EPSILON * scale) {
        memcpy(s->z, it, Md * sizeof *s->z);
        if (with_div)
          axpy3(s->lambda, s->lambda, h, s->g[0], M);
        done = true;
      } else if (j + 1 >= CRATE_SAMPLER_MIDPOINT_MAXIT) {
        s->mode = MODE_FAILED;
        return CRATE_ERROR(CRATE_STATUS_ENUMERIC,
                           "sampler: implicit midpoint did not converge at step %zu of %zu "
                           "(sigma %.6g -> %.6g): change %.3g after %u iterations; the step "
                           "is too large (|h| Lip F / 2 >= 1), refine the grid",
                           s->step, s->n - 1, sg, sn, delta, j + 1);
      } else {
        for (size_t i = 0; i < Md; i++)
          s->pt[i] = 0.5 * (s->z[i] + it[i]);
      }
      break;
    }
    case CRATE_SAMPLER_DPMPP_2M: {
      /* delta = lambda_{i+1} - lambda_i = log(s/s') = log1p(-h/s'). */
      const double delta = log1p(-h / sn), e = h / sg; /* e = expm1(-delta) */
      const double c = s->have_prev ? delta / (2.0 * s->dprev) : 0.0;
      for (size_t i = 0; i < Md; i++) {
        double zd = s->res[i] - c * (s->den[i] - s->mprev[i]); /* z - D */
        s->z[i] += e * zd;
      }
      if (with_div)
        for (size_t i = 0; i < M; i++) {
          double gi = -sg * s->g[0][i]; /* dLambda/dlambda */
          double inc = s->have_prev ? gi + c * (gi - s->gprev[i]) : gi;
          s->lambda[i] += delta * inc;
          s->gprev[i] = gi;
        }
      memcpy(s->mprev, s->den, Md * sizeof *s->den);
      s->dprev = delta;
      s->have_prev = true;
      done = true;
      break;
    }
    }
  }

  if (done) {
    if (!crate__all_finite(s->z, Md))
      return fail(s, "state");
    if (with_div && !crate__all_finite(s->lambda, M))
      return fail(s, "log-density increment");
    s->step++;
    s->stage = 0;
    if (s->step == s->n - 1)
      s->mode = MODE_DONE;
  } else {
    if (!crate__all_finite(s->pt, Md))
      return fail(s, "stage point");
    s->stage++;
  }
  fill_info(s, info, done);
  return CRATE_STATUS_OK;
}

bool crate_sampler_finished(const crate_sampler *s) {
  return s && s->mode == MODE_DONE;
}
const double *crate_sampler_state(const crate_sampler *s) {
  return s ? s->z : NULL;
}
const double *crate_sampler_lambda(const crate_sampler *s) {
  return s ? s->lambda : NULL;
}

/* ---- whole integrations ------------------------------------------------------ */

/* Copies the thread-local detail of a failed sub-call so that it can be
 * re-raised under another domain without aliasing the buffer. */
static int reraise(int st, const char *domain) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", crate_error_message());
  char *tag = strstr(buf, " [");
  if (tag)
    *tag = '\0';
  return CRATE_ERROR(st, "%s: %s", domain, buf);
}

int crate_molrg_integrate(crate_molrg *m, crate_sampler_kind kind, const double *grid,
                          size_t n_grid, double *Z, size_t M, double *lambda) {
  if (!m || !Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL %s", m ? "points" : "mixture");
  const size_t d = crate_molrg_dim(m);
  unsigned flags = CRATE_SAMPLER_RESID | (lambda ? CRATE_SAMPLER_DIVERGENCE : 0u);
  crate_sampler *s = NULL;
  CRATE_TRY(crate_sampler_create(&s, kind, grid, n_grid, M, d, flags));
  double *tr = lambda ? crate__calloc(M, sizeof *tr) : NULL;
  if (lambda && !tr) {
    crate_sampler_destroy(s);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "sampler: %zu doubles", M);
  }
  int st = crate_sampler_start(s, Z);
  crate_sampler_query q;
  while (st == CRATE_STATUS_OK && crate_sampler_query_next(s, &q)) {
    crate_molrg_post post = {0};
    post.mean = q.denoised;
    post.resid = q.resid;
    post.trcov = tr;
    st = crate_molrg_posterior(m, q.points, M, q.sigma, &post);
    if (st != CRATE_STATUS_OK) {
      st = reraise(st, "sampler");
      break;
    }
    if (lambda) {
      double s2 = q.sigma * q.sigma;
      for (size_t i = 0; i < M; i++)
        q.div[i] = ((double)d - tr[i] / s2) / q.sigma;
    }
    st = crate_sampler_step(s, NULL);
  }
  if (st == CRATE_STATUS_OK) {
    memcpy(Z, crate_sampler_state(s), M * d * sizeof *Z);
    if (lambda)
      memcpy(lambda, crate_sampler_lambda(s), M * sizeof *lambda);
  }
  free(tr);
  crate_sampler_destroy(s);
  return st;
}

int crate_gauss_integrate(const double *Sigma, size_t d, crate_sampler_kind kind,
                          const double *grid, size_t n_grid, double *Z, size_t M, double *lambda) {
  if (!Sigma || !Z)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: NULL %s", Sigma ? "points" : "covariance");
  if (d == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: Gaussian target needs d > 0");
  if (!crate__all_finite(Sigma, d * d))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "sampler: covariance has a non-finite entry");
  double smax = 0.0;
  for (size_t i = 0; i < d * d; i++)
    smax = fmax(smax, fabs(Sigma[i]));
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < i; j++)
      if (fabs(Sigma[i * d + j] - Sigma[j * d + i]) > 1e-12 * smax)
        return CRATE_ERROR(CRATE_STATUS_EINVAL,
                           "sampler: covariance not symmetric at (%zu, %zu): %.17g vs %.17g", i, j,
                           Sigma[i * d + j], Sigma[j * d + i]);
  unsigned flags = CRATE_SAMPLER_RESID | (lambda ? CRATE_SAMPLER_DIVERGENCE : 0u);
  crate_sampler *s = NULL;
  CRATE_TRY(crate_sampler_create(&s, kind, grid, n_grid, M, d, flags));
  /* V: (d, d), row j = eigenvector j; ev: (d) eigenvalues; y: (d) V z. */
  double *V = crate__calloc(d * d + 2 * d, sizeof *V);
  if (!V) {
    crate_sampler_destroy(s);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "sampler: %zu doubles", d * d + 2 * d);
  }
  double *ev = V + d * d, *y = ev + d;
  memcpy(V, Sigma, d * d * sizeof *V);
  int st = crate__dsyev(d, V, d, ev, true);
  if (st == CRATE_STATUS_OK) {
    double lmax = fmax(fabs(ev[0]), fabs(ev[d - 1]));
    if (ev[0] < -1e-12 * lmax)
      st = CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "sampler: covariance is indefinite (eigenvalue %.3g of %.3g)", ev[0], lmax);
    for (size_t j = 0; j < d; j++)
      ev[j] = fmax(ev[j], 0.0);
  }
  if (st == CRATE_STATUS_OK)
    st = crate_sampler_start(s, Z);
  crate_sampler_query q;
  while (st == CRATE_STATUS_OK && crate_sampler_query_next(s, &q)) {
    double s2 = q.sigma * q.sigma, dv = 0.0;
    for (size_t j = 0; j < d; j++)
      dv += q.sigma / (ev[j] + s2);
    for (size_t i = 0; i < M; i++) {
      const double *z = q.points + i * d;
      double *mo = q.denoised + i * d, *ro = q.resid + i * d;
      for (size_t j = 0; j < d; j++) {
        double a = 0.0;
        for (size_t l = 0; l < d; l++)
          a += V[j * d + l] * z[l];
        y[j] = a;
      }
      for (size_t l = 0; l < d; l++) {
        double a = 0.0, b = 0.0;
        for (size_t j = 0; j < d; j++) {
          double w = 1.0 / (ev[j] + s2);
          a += V[j * d + l] * (ev[j] * w) * y[j];
          b += V[j * d + l] * (s2 * w) * y[j];
        }
        mo[l] = a;
        ro[l] = b;
      }
      if (lambda)
        q.div[i] = dv;
    }
    st = crate_sampler_step(s, NULL);
  }
  if (st == CRATE_STATUS_OK) {
    memcpy(Z, crate_sampler_state(s), M * d * sizeof *Z);
    if (lambda)
      memcpy(lambda, crate_sampler_lambda(s), M * sizeof *lambda);
  }
  free(V);
  crate_sampler_destroy(s);
  return st;
}
