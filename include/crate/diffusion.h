/* diffusion.h: noise schedules, probability-flow-ODE samplers, encoding and
 * decoding, and likelihood by change of variables (MATH.md §4).
 *
 * The ODE (MATH.md §4.2), in the noise level sigma (not t = sigma^2, P1):
 *
 *   dz/dsigma = F(z, sigma) = (z - m(z; sigma)) / sigma,
 *
 * where m is the denoiser (posterior mean).  Decoding (sampling) integrates
 * it with sigma decreasing, encoding with sigma increasing.  A grid is an
 * array sigma_0, ..., sigma_{n-1}, strictly monotone; every entry is > 0
 * except that a decreasing grid may end in 0, and then the last step is the
 * Tweedie step z <- m(z; sigma_{n-2}) (every method, MATH.md §4.6).  The
 * field is never evaluated at sigma = 0 (P2).
 *
 * Everything here is double precision (the reference code).  Arrays of
 * points are row-major (M, d): one point per row.
 *
 * ---- the sampler: create / query / step / destroy, no callbacks -----------
 *
 * crate_sampler uses reverse communication: it never calls the denoiser.
 * Instead it says where it needs the denoiser next (a query: M points and a
 * sigma), the caller writes m(points; sigma) into the query's buffer, and
 * crate_sampler_step consumes that evaluation and advances.  One ODE step
 * takes 1 (Euler, DPM-Solver++(2M), Tweedie), 2 (Heun, DPM-2), 4 (RK4) or
 * a variable number (implicit midpoint) of evaluations.  All memory is
 * allocated by crate_sampler_create; query and step never allocate.
 *
 *   crate_sampler *s = NULL;
 *   int st = crate_sampler_create(&s, CRATE_SAMPLER_HEUN, grid, n, M, d, 0);
 *   if (st == CRATE_STATUS_OK)
 *     st = crate_sampler_start(s, Z0);            // Z0: (M, d) at grid[0]
 *   crate_sampler_query q;
 *   while (st == CRATE_STATUS_OK && crate_sampler_query_next(s, &q)) {
 *     my_denoiser(q.points, q.M, q.d, q.sigma, q.denoised); // fill (M, d)
 *     st = crate_sampler_step(s, NULL);
 *   }
 *   if (st == CRATE_STATUS_OK)                    // z at grid[n-1]
 *     memcpy(Z1, crate_sampler_state(s), M * d * sizeof(double));
 *   crate_sampler_destroy(s);
 *
 * Flags given at create:
 *  - CRATE_SAMPLER_RESID: the caller also writes q.resid = points - m, formed
 *    without cancellation (MATH.md §3.8, e.g. crate_molrg_post.resid); the
 *    field is then F = resid / sigma.  Without it the sampler forms
 *    points - denoised itself.
 *  - CRATE_SAMPLER_DIVERGENCE: the caller also writes q.div = div_z F at
 *    each point (MATH.md §4.8), and the sampler integrates the augmented
 *    state Lambda with the same method: after the grid,
 *    crate_sampler_lambda(s)[i] = int_{grid[0]}^{grid[n-1]} div F dsigma
 *    along path i.  Such a grid may not contain 0.
 *
 * Any non-finite value (in what the caller wrote, in a stage point or in the
 * state) makes crate_sampler_step return CRATE_STATUS_ENUMERIC with a message
 * naming the ODE step and its sigma; the sampler then refuses further steps
 * until crate_sampler_start is called again.
 *
 * Handles are not thread-safe; use one per thread.
 */
#ifndef CRATE_DIFFUSION_H
#define CRATE_DIFFUSION_H

#include "crate/molrg.h"

/* ---- noise schedules (MATH.md §4.5) ------------------------------------- */

typedef enum crate_schedule_kind {
  /* Karras/EDM: (smax^(1/rho) + u (smin^(1/rho) - smax^(1/rho)))^rho,
   * u = i/(n-1) (k-diffusion get_sigmas_karras). */
  CRATE_SCHEDULE_KARRAS = 0,
  /* Geometric: exp(log smax + u (log smin - log smax)) (get_sigmas_exponential). */
  CRATE_SCHEDULE_EXPONENTIAL = 1,
  /* Uniform in sigma: smax + u (smin - smax). */
  CRATE_SCHEDULE_UNIFORM = 2,
} crate_schedule_kind;

/* The Karras exponent used when rho = 0 is passed. */
#define CRATE_SCHEDULE_RHO_DEFAULT 7.0

/** Fills a decreasing grid sigma_0 = sigma_max > ... > sigma_{n-1} =
 *  sigma_min (endpoints exact), followed by sigma_n = 0 if append_zero.
 *  @param sigmas (n + append_zero) output.
 *  @param rho    Karras exponent (> 0; 0 selects 7); ignored by other kinds.
 *  @return OK, or EINVAL ("schedule: ...") for n < 2, sigma_min <= 0,
 *          sigma_min >= sigma_max, non-finite sigma or rho, an unknown kind,
 *          or an n too large to give distinct doubles. */
CRATE_API int crate_schedule(double *sigmas, crate_schedule_kind kind, size_t n, double sigma_min,
                             double sigma_max, double rho, bool append_zero);

/** Reverses a grid for encoding: out[i] = grid[n-1-i].  out may equal grid.
 *  @param grid (n) strictly monotone, every entry finite and > 0.
 *  @return OK or EINVAL (n < 2, a 0 or non-finite entry, not monotone). */
CRATE_API int crate_schedule_reverse(double *out, const double *grid, size_t n);

/** Validates a sampler grid (see the top of this file).  allow_zero: whether
 *  a decreasing grid may end in 0.  @return OK or EINVAL naming the entry. */
CRATE_API int crate_schedule_check(const double *grid, size_t n, bool allow_zero);

/* ---- samplers (MATH.md §4.6) ---------------------------------------------- */

typedef enum crate_sampler_kind {
  CRATE_SAMPLER_EULER = 0,    /* = DDIM (§4.3); order 1, 1 evaluation per step */
  CRATE_SAMPLER_HEUN = 1,     /* order 2, 2 evaluations */
  CRATE_SAMPLER_RK4 = 2,      /* classical Runge-Kutta, order 4, 4 evaluations */
  CRATE_SAMPLER_DPM2 = 3,     /* midpoint in log sigma, order 2, 2 evaluations */
  CRATE_SAMPLER_DPMPP_2M = 4, /* DPM-Solver++(2M), multistep order 2, 1 eval */
  /* Implicit midpoint z' = z + h F((z + z')/2, (s + s')/2), solved by
   * fixed-point iteration (one evaluation per iteration, at most
   * CRATE_SAMPLER_MIDPOINT_MAXIT, until max|change| <= 64 eps max|z'|).
   * Order 2 and symmetric, so a round trip on the same grid is exact up to
   * the solve tolerance (MATH.md §6 C5).  Converges when |h| Lip(F)/2 < 1;
   * Lip(F) = ||I - C/sigma^2||/sigma grows near decision boundaries, where
   * C/sigma^2 is not bounded by I (on the d = 6 Karras fixture n = 20 fails
   * at sigma ~ 0.15, n >= 80 converges).  Otherwise step returns ENUMERIC. */
  CRATE_SAMPLER_MIDPOINT = 5,
} crate_sampler_kind;

#define CRATE_SAMPLER_MIDPOINT_MAXIT 100

/** @return "euler", "heun", "rk4", "dpm2", "dpmpp-2m", "midpoint", or "?"
 *  (static storage). */
CRATE_API const char *crate_sampler_name(crate_sampler_kind kind);
/** Parses a name of crate_sampler_name.  @return OK or EINVAL. */
CRATE_API int crate_sampler_parse(const char *name, crate_sampler_kind *kind);
/** @return the order of accuracy of a method (1, 2 or 4; 0 if unknown). */
CRATE_API int crate_sampler_order(crate_sampler_kind kind);

enum {
  CRATE_SAMPLER_RESID = 1u,      /* caller supplies points - m (see above) */
  CRATE_SAMPLER_DIVERGENCE = 2u, /* caller supplies div F; Lambda integrated */
};

typedef struct crate_sampler crate_sampler;

/* One request for denoiser values.  Pointers are borrowed from the sampler
 * and valid until the next crate_sampler_step/start/destroy. */
typedef struct crate_sampler_query {
  const double *points; /* (M, d) where the denoiser is needed */
  double sigma;         /* its noise level, finite and > 0 */
  double *denoised;     /* (M, d) caller writes m(points; sigma) (always) */
  double *resid;        /* (M, d) caller writes points - m (CRATE_SAMPLER_RESID),
                           else NULL */
  double *div;          /* (M) caller writes div F (CRATE_SAMPLER_DIVERGENCE),
                           else NULL */
  size_t M, d;
  size_t step;    /* index i of the ODE step sigma_i -> sigma_{i+1} */
  unsigned stage; /* evaluation within that step, from 0 */
} crate_sampler_query;

/* What the last crate_sampler_step did (a plain metrics struct). */
typedef struct crate_sampler_info {
  size_t steps_done; /* ODE steps completed so far */
  size_t n_steps;    /* ODE steps in the grid (n_grid - 1) */
  size_t nfe;        /* denoiser evaluations consumed since start */
  double sigma;      /* noise level of the current state */
  bool step_done;    /* this call completed an ODE step */
  bool finished;     /* the grid is done; the state is the result */
} crate_sampler_info;

/** Creates a sampler for M points of dimension d on a grid (copied).
 *  @param flags a combination of CRATE_SAMPLER_RESID, _DIVERGENCE (or 0).
 *  @return OK, EINVAL ("sampler: ...": bad kind, M or d = 0, bad grid, a 0
 *          in the grid with DIVERGENCE, unknown flags) or ENOMEM. */
CRATE_API int crate_sampler_create(crate_sampler **out, crate_sampler_kind kind, const double *grid,
                                   size_t n_grid, size_t M, size_t d, unsigned flags);
/** Frees a sampler.  NULL is a no-op. */
CRATE_API void crate_sampler_destroy(crate_sampler *s);

/** (Re)starts at grid[0] from Z0 (M, d) (copied); Lambda = 0; multistep
 *  history cleared.  @return OK or EINVAL (NULL or non-finite Z0). */
CRATE_API int crate_sampler_start(crate_sampler *s, const double *Z0);

/** Fills *q with the next request.  @return true if an evaluation is needed,
 *  false when the grid is finished, the sampler has not been started, or it
 *  stopped on an error. */
CRATE_API bool crate_sampler_query_next(crate_sampler *s, crate_sampler_query *q);

/** Consumes the evaluation written into the current query and advances by
 *  one stage (completing an ODE step when it was the step's last stage).
 *  info may be NULL.  @return OK, EINVAL (not started, already finished, or
 *  stopped after an error) or ENUMERIC (a non-finite value; the message names
 *  the step index and sigma). */
CRATE_API int crate_sampler_step(crate_sampler *s, crate_sampler_info *info);

/** @return true once every step of the grid is done. */
CRATE_API bool crate_sampler_finished(const crate_sampler *s);
/** Current state (M, d), borrowed: z at grid[steps_done]. */
CRATE_API const double *crate_sampler_state(const crate_sampler *s);
/** Accumulated int div F dsigma (M), borrowed; zeros without DIVERGENCE. */
CRATE_API const double *crate_sampler_lambda(const crate_sampler *s);

/* ---- whole integrations with exact denoisers ------------------------------ */

/** Integrates Z (M, d) in place along grid with the exact MoLRG denoiser
 *  (crate_molrg_posterior, cancellation-free residual for F).  A decreasing
 *  grid decodes (samples), an increasing one encodes.  d = crate_molrg_dim.
 *  @param lambda (M) or NULL: if given, receives int_{grid[0]}^{grid[n-1]}
 *         div F dsigma with the exact divergence (d - trC/sigma^2)/sigma;
 *         the grid may then not contain 0.
 *  @return OK, EINVAL, ENOMEM or ENUMERIC (non-finite; step and sigma named).
 *  On error Z holds undefined values. */
CRATE_API int crate_molrg_integrate(crate_molrg *m, crate_sampler_kind kind, const double *grid,
                                    size_t n_grid, double *Z, size_t M, double *lambda);

/** The same for a Gaussian target N(0, Sigma), Sigma (d, d) symmetric positive
 *  semidefinite (zero eigenvalues allowed), given by its covariance:
 *  m(z) = Sigma (Sigma + sigma^2 I)^{-1} z by one eigendecomposition, with
 *  the residual sigma^2 (Sigma + sigma^2 I)^{-1} z formed directly and
 *  div F = sum_i sigma / (lambda_i + sigma^2).
 *  @return as crate_molrg_integrate; EINVAL also for a non-symmetric,
 *          non-finite or indefinite (eigenvalue < -1e-12 ||Sigma||) Sigma. */
CRATE_API int crate_gauss_integrate(const double *Sigma, size_t d, crate_sampler_kind kind,
                                    const double *grid, size_t n_grid, double *Z, size_t M,
                                    double *lambda);

/* ---- likelihood by change of variables (MATH.md §4.8) --------------------- */

typedef enum crate_divergence_kind {
  CRATE_DIVERGENCE_EXACT = 0,      /* (d - trC/sigma^2)/sigma, closed form */
  CRATE_DIVERGENCE_RADEMACHER = 1, /* Hutchinson, v_i = +-1 */
  CRATE_DIVERGENCE_GAUSSIAN = 2,   /* Hutchinson, v ~ N(0, I) */
} crate_divergence_kind;

typedef enum crate_prior_kind {
  CRATE_PRIOR_EXACT = 0,    /* closed-form log q^{sigma_max} (MATH.md §3.2) */
  CRATE_PRIOR_GAUSSIAN = 1, /* N(0, sigma_max^2 I) (data law unknown) */
} crate_prior_kind;

typedef struct crate_loglik_opts {
  crate_sampler_kind sampler;       /* any method of §4.6 */
  crate_divergence_kind divergence; /* exact or Hutchinson */
  size_t probes;                    /* Hutchinson probes per evaluation, >= 1 */
  crate_rng *rng;                   /* Hutchinson only (use CRATE_RNG_PROBE);
                                       fresh probes at every evaluation */
  crate_prior_kind prior;
} crate_loglik_opts;

/** @return {HEUN, EXACT, probes 1, rng NULL, PRIOR_EXACT}. */
CRATE_API crate_loglik_opts crate_loglik_opts_default(void);

/* Outputs of crate_molrg_loglik; any may be NULL. */
typedef struct crate_loglik_out {
  double *logq;   /* (M)    log q^{sigma_min}(x) = prior + lambda */
  double *prior;  /* (M)    log-prior at z(sigma_max) */
  double *lambda; /* (M)    int_{sigma_min}^{sigma_max} div F dsigma */
  double *zT;     /* (M, d) z(sigma_max), the encoding */
} crate_loglik_out;

/** log q^{sigma_min}(x) for the rows of X (M, d) of the MoLRG m: integrates
 *  (z, Lambda) upward along grid, an INCREASING grid sigma_min = grid[0] <
 *  ... < grid[n-1] = sigma_max (e.g. crate_schedule_reverse of a schedule).
 *  @return OK, EINVAL ("likelihood: ...": grid not increasing, probes = 0 or
 *          no rng for Hutchinson, bad kinds, non-finite X), ENOMEM, ENUMERIC. */
CRATE_API int crate_molrg_loglik(crate_molrg *m, const double *X, size_t M, const double *grid,
                                 size_t n_grid, const crate_loglik_opts *opts,
                                 const crate_loglik_out *out);

/** Hutchinson estimates of div F = tr J at M points from their posterior
 *  covariances, J = (I - C/sigma^2)/sigma, averaging R probes:
 *  v^T J v = (||v||^2 - v^T C v / sigma^2) / sigma.  Unbiased; the variance
 *  of one probe is 2(||J||_F^2 - sum_i J_ii^2) (Rademacher) or 2||J||_F^2
 *  (Gaussian).  Probes are drawn from rng point by point, R per point.
 *  @param div   (M) the averages.
 *  @param vals  (M, R) the single-probe values, or NULL.
 *  @param cov   (M, d, d) posterior covariances (crate_molrg_post.cov).
 *  @param work  (d) scratch.
 *  @return OK or EINVAL (kind not Hutchinson, R = 0, sigma <= 0, NULLs). */
CRATE_API int crate_hutchinson_divergence(double *div, double *vals, const double *cov, size_t M,
                                          size_t d, double sigma, crate_divergence_kind kind,
                                          size_t R, crate_rng *rng, double *work);

#endif
