/* schedule.c: noise schedules for the PF-ODE samplers (MATH.md §4.5).
 *
 * A schedule is a smooth image of the uniform ramp u_i = i/(n-1):
 *   Karras       sigma_i = (smax^(1/rho) + u_i (smin^(1/rho) - smax^(1/rho)))^rho
 *   exponential  sigma_i = exp(log smax + u_i (log smin - log smax))
 *   uniform      sigma_i = smax + u_i (smin - smax)
 * so a method of order p shows error ~ n^-p on each of them.  The endpoints
 * are stored exactly (pow/exp/log would round them), and the grid is
 * checked to be strictly decreasing after rounding.  Encoding uses the
 * reversed grid (crate_schedule_reverse).
 *
 * Non-goals: schedules in variance time t = sigma^2 (P1); the grids here are
 * always in sigma.
 */
#include "crate/diffusion.h"
#include "internal.h"

int crate_schedule_check(const double *grid, size_t n, bool allow_zero) {
  if (!grid)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: grid is NULL");
  if (n < 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: a grid needs n >= 2 points (got %zu)", n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(grid[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: sigma[%zu] = %g is not finite", i,
                         grid[i]);
  bool dec = grid[1] < grid[0];
  for (size_t i = 0; i + 1 < n; i++) {
    bool ok = dec ? grid[i + 1] < grid[i] : grid[i + 1] > grid[i];
    if (!ok)
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "schedule: grid not strictly monotone at sigma[%zu] = %.17g, "
                         "sigma[%zu] = %.17g",
                         i, grid[i], i + 1, grid[i + 1]);
  }
  for (size_t i = 0; i < n; i++) {
    bool last_zero = allow_zero && dec && i == n - 1 && grid[i] == 0.0;
    if (!(grid[i] > 0.0) && !last_zero)
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: sigma[%zu] = %g must be > 0%s", i, grid[i],
                         allow_zero ? " (only the last entry of a decreasing grid may be 0)" : "");
  }
  return CRATE_STATUS_OK;
}

int crate_schedule(double *sigmas, crate_schedule_kind kind, size_t n, double sigma_min,
                   double sigma_max, double rho, bool append_zero) {
  if (!sigmas)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: output array is NULL");
  if (n < 2)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: need n >= 2 points (got %zu)", n);
  if (!isfinite(sigma_min) || !isfinite(sigma_max))
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "schedule: sigma_min = %g and sigma_max = %g must be finite", sigma_min,
                       sigma_max);
  if (!(sigma_min > 0.0))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: sigma_min = %g must be > 0", sigma_min);
  if (!(sigma_min < sigma_max))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: sigma_min = %g must be < sigma_max = %g",
                       sigma_min, sigma_max);
  if (kind == CRATE_SCHEDULE_KARRAS) {
    if (rho == 0.0)
      rho = CRATE_SCHEDULE_RHO_DEFAULT;
    if (!isfinite(rho) || !(rho > 0.0))
      return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: Karras rho = %g must be finite and > 0",
                         rho);
  } else if (kind != CRATE_SCHEDULE_EXPONENTIAL && kind != CRATE_SCHEDULE_UNIFORM) {
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: unknown kind %d", (int)kind);
  }
  double a = 0.0, b = 0.0;
  if (kind == CRATE_SCHEDULE_KARRAS) {
    a = pow(sigma_max, 1.0 / rho);
    b = pow(sigma_min, 1.0 / rho);
  } else if (kind == CRATE_SCHEDULE_EXPONENTIAL) {
    a = log(sigma_max);
    b = log(sigma_min);
  }
  double den = (double)(n - 1);
  for (size_t i = 0; i < n; i++) {
    double u = (double)i / den;
    double s;
    if (kind == CRATE_SCHEDULE_KARRAS)
      s = pow(a + u * (b - a), rho);
    else if (kind == CRATE_SCHEDULE_EXPONENTIAL)
      s = exp(a + u * (b - a));
    else
      s = sigma_max + u * (sigma_min - sigma_max);
    sigmas[i] = s;
  }
  sigmas[0] = sigma_max;
  sigmas[n - 1] = sigma_min;
  for (size_t i = 0; i + 1 < n; i++)
    if (!(sigmas[i + 1] < sigmas[i]))
      return CRATE_ERROR(CRATE_STATUS_EINVAL,
                         "schedule: n = %zu points do not resolve [%g, %g] in double "
                         "(sigma[%zu] = sigma[%zu] = %.17g)",
                         n, sigma_min, sigma_max, i, i + 1, sigmas[i]);
  if (append_zero)
    sigmas[n] = 0.0;
  return CRATE_STATUS_OK;
}

int crate_schedule_reverse(double *out, const double *grid, size_t n) {
  if (!out)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: output array is NULL");
  CRATE_TRY(crate_schedule_check(grid, n, false));
  /* Swap from both ends so that out == grid works. */
  for (size_t i = 0; i < n - 1 - i; i++) {
    double a = grid[i], b = grid[n - 1 - i];
    out[i] = b;
    out[n - 1 - i] = a;
  }
  if (n % 2 == 1)
    out[n / 2] = grid[n / 2];
  return CRATE_STATUS_OK;
}
