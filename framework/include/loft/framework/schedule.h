// Learning-rate schedules: linear warmup, then constant, linear decay to 0, or cosine decay to 0.
#pragma once

#include <cstdint>
#include <string>

#include "loft/status.h"

namespace loft {

enum class ScheduleKind { kConstant, kLinear, kCosine };

StatusOr<ScheduleKind> parse_schedule(const std::string& name);

// Learning rate for optimizer step `step` (0-based) of `total_steps`, as transformers' get_*_schedule_with_warmup:
// warmup multiplies by step/warmup; linear decays (total - step)/(total - warmup); cosine by
// 0.5 (1 + cos(pi progress)).
double learning_rate(ScheduleKind kind, double peak_lr, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace loft
