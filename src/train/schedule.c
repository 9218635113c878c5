/* schedule.c: the per-step learning-rate schedule of MODEL.md §10.1: linear
 * warmup s / S_w (open choice O7: the first step has lr 0), then a
 * half-cycle cosine from lr_max at s = S_w down to lr_min at s = S.  This is
 * the MAE framework's util/lr_sched.py evaluated at whole steps.
 *
 * Non-goals: restarts, step decay, per-group schedules.
 */
#include <math.h>

#include "crate/train.h"
#include "internal.h"

int crate_lr_schedule_check(const crate_lr_schedule *s) {
  if (!s)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: NULL schedule");
  if (!isfinite(s->lr_max) || !isfinite(s->lr_min) || s->lr_min < 0.0 || s->lr_max < s->lr_min)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "schedule: need 0 <= lr_min <= lr_max, both finite (got %g, %g)", s->lr_min,
                       s->lr_max);
  if (s->total_steps == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "schedule: total steps must be >= 1");
  if (s->warmup_steps > s->total_steps)
    return CRATE_ERROR(CRATE_STATUS_EINVAL,
                       "schedule: warmup steps (%llu) exceed the total steps (%llu)",
                       (unsigned long long)s->warmup_steps, (unsigned long long)s->total_steps);
  return CRATE_STATUS_OK;
}

double crate_lr_at(const crate_lr_schedule *s, uint64_t step) {
  const uint64_t S = s->total_steps, Sw = s->warmup_steps;
  if (step < Sw)
    return s->lr_max * (double)step / (double)Sw;
  if (step >= S)
    return s->lr_min;
  const double frac = (double)(step - Sw) / (double)(S - Sw);
  return s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(3.14159265358979323846 * frac));
}

uint64_t crate_warmup_steps(double frac, uint64_t total_steps) {
  if (!(frac > 0.0))
    return 0;
  if (frac >= 1.0)
    return total_steps;
  const double w = floor(frac * (double)total_steps + 0.5);
  return w >= (double)total_steps ? total_steps : (uint64_t)w;
}
