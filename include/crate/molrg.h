/* molrg.h: the mixture of low-rank Gaussians and its exact denoiser
 * (MATH.md §3).
 *
 *   z_nat ~ sum_k pi_k N(0, U_k U_k^T),   z = z_nat + sigma w,  w ~ N(0, I_d).
 *
 * All closed forms (log density, responsibilities, posterior mean and
 * covariance, score, exact divergence) are evaluated through log-sum-exp and
 * the cancellation-free residual of §3.8, so they stay finite at
 * sigma = 1e-4.  The double-precision functions are the reference; the
 * float twin (crate_molrg_posteriorf) is the production path (test A8).
 *
 * A crate_molrg owns a copy of its bases and a scratch buffer, so calls on
 * one handle are not thread-safe; use one handle per thread.
 */
#ifndef CRATE_MOLRG_H
#define CRATE_MOLRG_H

#include "crate/subspaces.h"

typedef struct crate_molrg crate_molrg;

/** Creates a mixture from bases (copied; orthonormality checked to 1e-8) and
 *  weights pi (K entries, each > 0, finite, summing to 1 within 1e-9).
 *  pi may be NULL for equal weights.  @return OK, EINVAL or ENOMEM. */
CRATE_API int crate_molrg_create(crate_molrg **out, const crate_subspaces *U,
                                 const double *pi);

/** Creates a mixture with random bases of the given kind (see
 *  crate_subspaces_random), drawn from rng. pi may be NULL (equal). */
CRATE_API int crate_molrg_create_random(crate_molrg **out, size_t d, size_t K,
                                        const size_t *p, const double *pi,
                                        crate_subspaces_kind kind,
                                        crate_rng *rng);

/** Frees a mixture.  NULL is a no-op. */
CRATE_API void crate_molrg_destroy(crate_molrg *m);

/** Borrowed view of the bases; valid until crate_molrg_destroy. */
CRATE_API crate_subspaces crate_molrg_subspaces(const crate_molrg *m);
/** @return the mixture weights pi (K entries), borrowed. */
CRATE_API const double *crate_molrg_weights(const crate_molrg *m);
CRATE_API size_t crate_molrg_dim(const crate_molrg *m);
CRATE_API size_t crate_molrg_count(const crate_molrg *m);

/** Draws M i.i.d. points: Z = Z_clean + sigma W.  sigma >= 0, finite.
 *  Z: (M, d) or NULL; Z_clean: (M, d) or NULL; labels: (M) or NULL.
 *  Each point consumes one uniform (its label k ~ pi), p_k normals (a) and
 *  d normals (w) whatever outputs are requested and whatever sigma is, so a
 *  fixed rng state gives the same labels and clean points at every sigma.
 *  Does not touch the handle's scratch (safe on a shared const handle).
 *  @return OK or EINVAL (NULL handle or rng, bad sigma). */
CRATE_API int crate_molrg_sample(const crate_molrg *m, crate_rng *rng,
                                 size_t M, double sigma, double *Z,
                                 double *Z_clean, size_t *labels);

/* Outputs of crate_molrg_posterior for M query points; any may be NULL. */
typedef struct crate_molrg_post {
  double *logq;  /* (M)       log q^sigma(z) (MATH.md §3.2) */
  double *resp;  /* (M, K)    responsibilities pi_k(z) (§3.3) */
  double *mean;  /* (M, d)    posterior mean m(z) (§3.4) */
  double *resid; /* (M, d)    z - m(z), cancellation-free (§3.8) */
  double *score; /* (M, d)    grad log q = (m - z) / sigma^2 (§3.5) */
  double *cov;   /* (M, d, d) posterior covariance C(z) (§3.4) */
  double *trcov; /* (M)       tr C(z) */
  double *lap;   /* (M)       Laplacian of log q = (trC/sigma^2 - d)/sigma^2 */
} crate_molrg_post;

/** Evaluates the closed forms at the rows of Z (M, d) for noise sigma > 0.
 *  Outputs left NULL are not computed; M == 0 or out == NULL is a no-op.
 *  Uses the handle's scratch (no allocation).  The logits are those of §3.3
 *  shifted by -||z||^2/(2 sigma^2), built from the off-subspace residual, so
 *  they stay O(1) at small sigma.
 *  @return OK, or EINVAL (NULL handle, sigma <= 0, non-finite or with
 *  sigma^2 outside the normal double range, NULL or non-finite Z). */
CRATE_API int crate_molrg_posterior(crate_molrg *m, const double *Z, size_t M,
                                    double sigma, const crate_molrg_post *out);

/* Float twin: the production path.  Float in, float out; the logits'
 * softmax and log-sum-exp run in float after max subtraction, while the
 * projections U_k^T z, U_k x_k and the residual are reductions accumulated
 * in double against the handle's double bases.  (With float bases the
 * residual could not beat eps_f ||z|| / sigma relative error: 4e-3 at
 * sigma = 1e-4, see test A8.)  Same errors as crate_molrg_posterior. */
typedef struct crate_molrg_postf {
  float *logq;  /* (M) */
  float *resp;  /* (M, K) */
  float *mean;  /* (M, d) */
  float *resid; /* (M, d) */
} crate_molrg_postf;

CRATE_API int crate_molrg_posteriorf(crate_molrg *m, const float *Z, size_t M,
                                     float sigma, const crate_molrg_postf *out);

#endif
