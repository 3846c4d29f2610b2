// For offload strategies that keep the whole model resident on the run device (offload/none, offload/checkpoint):
// their plan() and place().
#pragma once

#include <vector>

#include "loft/offload.h"

namespace loft {

// plan(): every unit at Home::kRunDevice. Never throws or blocks.
std::vector<Home> plan_all_resident(const std::vector<ModelUnit>& units);
// place(): every frozen linear and defined frozen tensor of `units` on `device` (a no-op for what is already there).
// Copies synchronously; throws c10::Error when out of memory.
void place_all_on(const std::vector<BlockResidency>& units, c10::Device device);

}  // namespace loft
