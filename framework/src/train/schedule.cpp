// Learning-rate schedules matching transformers' get_{constant,linear,cosine}_schedule_with_warmup.
#include "loft/framework/schedule.h"

#include <algorithm>
#include <cmath>

namespace loft {

StatusOr<ScheduleKind> parse_schedule(const std::string& name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "linear") return ScheduleKind::kLinear;
  if (name == "cosine") return ScheduleKind::kCosine;
  return Status::InvalidArgument("unknown schedule '" + name + "' (constant, linear or cosine)");
}

double learning_rate(ScheduleKind kind, double peak_lr, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < warmup_steps) return peak_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  if (kind == ScheduleKind::kConstant) return peak_lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = static_cast<double>(step - warmup_steps) / span;
  if (kind == ScheduleKind::kLinear) return peak_lr * std::max(0.0, 1.0 - progress);
  return peak_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace loft
