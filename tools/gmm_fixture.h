/* gmm_fixture.h: the MoLRG fixture shared by every `crate gmm` subcommand.
 *
 * Defaults are MATH.md §6's default fixture: d = 6, K = 3, p_k = 2, random
 * (incoherent) bases from seed 0, equal weights, Karras rho = 7 and
 * sigma in [0.02, 10].  Each subcommand appends GMM_FIXTURE_LONGOPTS to its
 * own getopt_long table and hands unknown options to gmm_fixture_parse().
 */
#ifndef CRATE_TOOLS_GMM_FIXTURE_H
#define CRATE_TOOLS_GMM_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "crate/crate.h"

#define GMM_MAX_K 64

typedef struct gmm_fixture {
  size_t d, K;
  size_t p[GMM_MAX_K];
  double pi[GMM_MAX_K];
  bool equal_weights;        /* pi not given: 1/K each */
  crate_subspaces_kind kind; /* incoherent (default) or orthogonal */
  uint64_t seed;
  bool seed_set; /* --seed given (else CRATE_SEED, else 0) */
  double sigma_min, sigma_max, rho;
  const char *schedule; /* "karras" (default), "exp", "uniform" */
  /* set while parsing, checked by gmm_fixture_finish */
  const char *p_arg, *pi_arg;
} gmm_fixture;

/* Option codes (above the ASCII range used by short options). */
/* clang-format off */
enum {
  GMM_OPT_D = 1000, GMM_OPT_K, GMM_OPT_P, GMM_OPT_PI, GMM_OPT_SUBSPACES, GMM_OPT_SEED,
  GMM_OPT_SIGMA_MIN, GMM_OPT_SIGMA_MAX, GMM_OPT_RHO, GMM_OPT_SCHEDULE,
};
/* clang-format on */

/* clang-format off */
#define GMM_FIXTURE_LONGOPTS                                        \
  {"d", required_argument, NULL, GMM_OPT_D},                        \
  {"K", required_argument, NULL, GMM_OPT_K},                        \
  {"p", required_argument, NULL, GMM_OPT_P},                        \
  {"pi", required_argument, NULL, GMM_OPT_PI},                      \
  {"subspaces", required_argument, NULL, GMM_OPT_SUBSPACES},        \
  {"seed", required_argument, NULL, GMM_OPT_SEED},                  \
  {"sigma-min", required_argument, NULL, GMM_OPT_SIGMA_MIN},        \
  {"sigma-max", required_argument, NULL, GMM_OPT_SIGMA_MAX},        \
  {"rho", required_argument, NULL, GMM_OPT_RHO},                    \
  {"schedule", required_argument, NULL, GMM_OPT_SCHEDULE}
/* clang-format on */

/* Fills the MATH.md default fixture. */
void gmm_fixture_default(gmm_fixture *fx);

/* Handles one fixture option.  @return 1 if handled, 0 if opt is not a
 * fixture option, -1 after printing a usage error (caller exits 2). */
int gmm_fixture_parse(gmm_fixture *fx, const char *cmd, int opt, const char *arg);

/* Cross-checks the parsed values (ranks vs d, weights sum to 1, sigma range,
 * list lengths vs K) and, when --seed was not given, takes the seed from the
 * environment variable CRATE_SEED if set (STYLE.md §5: flags win).
 * @return true, or false after a usage error. */
bool gmm_fixture_finish(gmm_fixture *fx, const char *cmd);

/* Prints the fixture's help lines (with defaults) to f. */
void gmm_fixture_help(FILE *f);

/* One line describing the fixture, for the startup banner. */
void gmm_fixture_describe(const gmm_fixture *fx, FILE *f);

/* Creates the mixture (bases drawn from seed on stream INIT).  @return a
 * crate status. */
int gmm_fixture_create(const gmm_fixture *fx, crate_molrg **out);

/* The library kind of fx->schedule. */
crate_schedule_kind gmm_fixture_schedule_kind(const gmm_fixture *fx);

/* Allocates and fills a grid of steps + 1 noise levels between the
 * fixture's sigma_max and sigma_min (crate_schedule with kind and the
 * fixture's rho): decreasing (decoding, sigma_max first) or, if increasing,
 * reversed for encoding.  *out is freed by the caller.  @return a crate
 * status (EINVAL for steps = 0, ENOMEM). */
int gmm_fixture_grid(const gmm_fixture *fx, crate_schedule_kind kind, size_t steps, bool increasing,
                     double **out);

#endif
