/* gmm_layers.h: what the files of `crate gmm crate-layers` share (the
 * structured denoising and diffusion experiments, MATH.md §1.4, §1.6, §2,
 * §5; catalogue rows D4-D8):
 *   gmm_layers.c          options, the tokens, dispatch of the parts, verdicts,
 *                         the table header, the frame of the JSON object, the
 *                         JSON, CSV and chart helpers, the entry point
 *                         gmm_layers;
 *   gmm_layers_denoise.c  part (a), structured denoising (§5.1-5.2, D4);
 *   gmm_layers_invert.c   part (b), invertibility (§5.3, D5, D6);
 *   gmm_layers_cosine.c   part (c), compression vs score (§5.4, D8);
 *   gmm_layers_aot.c      part (d), the AoT SNR rate (§2.6, D7).
 * Each part file computes its part into the run record and prints its
 * table, its JSON object, its CSV file and its charts.  Symbols shared between these files
 * carry the prefix layers_.
 */
#ifndef CRATE_TOOLS_GMM_LAYERS_H
#define CRATE_TOOLS_GMM_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "crate/plot.h"
#include "gmm_common.h"

/* Gates (MATH.md §6 rows D4-D7). */
#define DESCENT_TOL 1e-12
#define SLOPE_TOL 0.2
#define FIXED_POINT_GATE 1e-12
#define FIXED_POINT_TOL 1e-15
#define FIXED_POINT_ITERS 200
#define LIP_ITERS 2000
#define AOT_GATE 1e-12
#define AOT_CONTROL_MIN 1e-2

/* Part (c): the (sigma, eps2 = c sigma^2) grid. */
#define NSIG 8
#define NCM 3
extern const double layers_cos_sigmas[NSIG]; /* gmm_layers_cosine.c */
extern const double layers_cos_cmult[NCM];

/* Part (d): the theorem's regime (MATH.md §6 "Expected magnitudes"). */
#define AOT_K 3
#define AOT_P 32
#define AOT_N 60
#define AOT_CONTROL_P 2
#define AOT_DELTA 0.1
#define AOT_ETA 0.5
#define AOT_TAU 0.9
#define AOT_MAX_LAYERS 64

/* ---- the run ------------------------------------------------------------------------------- */

/* Round-trip variants of part (b): field x method. */
enum { RT_EXACT_EULER, RT_EXACT_HEUN, RT_MSSA_EULER, RT_MSSA_HEUN, RT_N };
extern const char *layers_rt_name[RT_N]; /* gmm_layers_invert.c */
extern const int layers_rt_order[RT_N];
/* D6 gates the exact field; the MSSA field's orders are reported (its Euler
 * round trip is still pre-asymptotic at L <= 64 on the default fixture). */
extern const bool layers_rt_gated[RT_N];

/* Part (a) trajectory of one field. */
typedef struct traj_stats {
  double *Rc;       /* (depth + 1) */
  double *slack;    /* (depth) R^c(Z_l) - R^c(Z_l+1) - kappa/2 ||grad||^2 */
  double *mse;      /* (depth + 1) per coordinate */
  double *snr;      /* (depth + 1, K) */
  double min_slack; /* exact field only */
  bool monotone;    /* R^c non-increasing */
  size_t best;      /* layer of the smallest MSE */
} traj_stats;

typedef struct run {
  /* configuration */
  unsigned parts;
  size_t N, depth, aot_layers;
  double sigma, eps2, T;
  size_t layers[GMM_MAX_LIST];
  int nl;
  double kappas[GMM_MAX_LIST];
  int nkap;
  /* tokens and derived constants */
  size_t d, K;
  size_t counts[GMM_MAX_K];
  double beta_max, lam_max, Ldesc, kappa;
  bool regime; /* kappa <= 1/L */
  /* (a) */
  traj_stats tr[2]; /* exact, MSSA */
  double noisy_mse, bayes_mse, bayes_Rc;
  double bayes_snr[GMM_MAX_K];
  bool pass_a;
  /* (b) */
  double dec_err[GMM_MAX_LIST];
  double fp_err[GMM_MAX_LIST], fp_contr[GMM_MAX_LIST], fp_rate[GMM_MAX_LIST];
  double fp_lip[GMM_MAX_LIST];
  size_t fp_iters[GMM_MAX_LIST];
  bool fp_run[GMM_MAX_LIST], fp_conv[GMM_MAX_LIST];
  double rt_err[RT_N][GMM_MAX_LIST];
  double slope_dec, slope_rt[RT_N], fp_worst;
  size_t fp_count;
  bool pass_dec, pass_fp, pass_rt[RT_N];
  /* (c) [kind][mode][sigma][c]; kind 0 incoherent, 1 orthogonal; mode 0 token, 1 set */
  double cosv[2][2][NSIG][NCM];
  bool have_kind[2];
  /* (d) [run][layer][cluster]; run 0 regime, 1 control */
  double aot_snr[2][AOT_MAX_LAYERS + 1][AOT_K];
  double aot_dev[2][AOT_MAX_LAYERS];
  double aot_worst[2], tau_max;
  bool pass_aot[2];
} run;

/* ---- helpers (gmm_layers.c) ---------------------------------------------------------------- */

/* x^2. */
double layers_sq(double x);

/* The dot product of a and b: (n) each. */
double layers_dot(const double *a, const double *b, size_t n);

/* A JSON array of x[0], x[stride], ..., x[(n - 1) stride]; null where a
 * value is not finite. */
json_t *layers_json_vec(const double *x, size_t n, size_t stride);

/* "PASS" or "FAIL". */
const char *layers_verdict(bool pass);

/* Opens PREFIX<suffix>, noting its name in files; NULL after a message. */
FILE *layers_open_csv(const gmm_common *c, const char *suffix, char *path, size_t size,
                      json_t *files);

/* Writes ",x" with 17 significant digits, or "," when x is not finite. */
void layers_csv_num(FILE *f, double x);

/* One curve of a chart (the plot library's styles, which gmm_series does
 * not expose: dotted reference lines, marker-only points). */
typedef struct curve {
  const char *label;
  const double *x, *y;
  size_t n;
  size_t color; /* palette index */
  crate_plot_line line;
  crate_plot_marker marker;
  double marker_size; /* <= 0: the library's default */
} curve;

/* Draws the curves into PREFIX<suffix>.png and notes the file in files.
 * ch->xlo < ch->xhi fixes the x range (room for the legend). */
int layers_draw_chart(const gmm_common *c, const char *suffix, const gmm_chart *ch, const curve *s,
                      size_t ns, json_t *files);

/* Markers for the curves of a chart, in order. */
extern const crate_plot_marker layers_marks[4];

/* ---- the parts ----------------------------------------------------------------------------- */

/* Each part: layers_part_X computes it into r (CLI_OK, or the exit status
 * after a message), layers_print_X prints its table to stdout, layers_json_X
 * adds its object to the --json object o and its verdicts to pass (part b
 * also its slopes), layers_csv_X writes its CSV file and layers_plots_X its
 * charts, both noting the files in files (CLI_OK, or the exit status after
 * a message). */

/* Part (a), structured denoising: Z, Zc (N, d) the noisy and clean tokens,
 * labels (N) their components, work (N, d) scratch, zeros (N) zero labels,
 * mix the fixture mixture (its Bayes denoiser). */
int layers_part_a(const gmm_common *c, run *r, const crate_subspaces *U, const double *Z,
                  const double *Zc, const size_t *labels, double *work, const size_t *zeros,
                  crate_molrg *mix);
void layers_print_a(const run *r);
void layers_json_a(const run *r, json_t *o, json_t *pass);
int layers_csv_a(const gmm_common *c, const run *r, json_t *files);
int layers_plots_a(const gmm_common *c, const gmm_fixture *fx, const run *r, json_t *files);

/* Part (b), invertibility, on the noisy tokens Z (N, d). */
int layers_part_b(const gmm_common *c, const gmm_fixture *fx, run *r, const crate_subspaces *U,
                  const double *Z);
void layers_print_b(const run *r);
void layers_json_b(const run *r, json_t *o, json_t *slopes, json_t *pass);
int layers_csv_b(const gmm_common *c, const run *r, json_t *files);
int layers_plots_b(const gmm_common *c, const run *r, json_t *files);

/* Part (c), compression vs score (draws its own tokens). */
int layers_part_c(const gmm_common *c, const gmm_fixture *fx, run *r);
void layers_print_c(const run *r);
void layers_json_c(const run *r, json_t *o);
int layers_csv_c(const gmm_common *c, const run *r, json_t *files);
int layers_plots_c(const gmm_common *c, const run *r, json_t *files);

/* Part (d), the AoT SNR rate (its own subspaces and tokens). */
int layers_part_d(const gmm_common *c, const gmm_fixture *fx, run *r);
void layers_print_d(const run *r);
void layers_json_d(const run *r, json_t *o, json_t *pass);
int layers_csv_d(const gmm_common *c, const run *r, json_t *files);
int layers_plots_d(const gmm_common *c, const run *r, json_t *files);

#endif
