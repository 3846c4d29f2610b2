// offload/none: every frozen tensor on the run's device; blocks run plainly (autograd keeps their activations).
#include "loft/memory_cost.h"
#include "loft/offload.h"
#include "loft/resident_offload.h"
#include "loft/plugin.h"

namespace {

class NoOffload final : public loft::OffloadStrategy, public loft::OffloadMemoryPlan {
 public:
  explicit NoOffload(c10::Device device) : device_(device) {}
  std::vector<loft::Home> plan(const std::vector<loft::ModelUnit>& units) override {
    return loft::plan_all_resident(units);
  }
  void place(const std::vector<loft::BlockResidency>& units) override { loft::place_all_on(units, device_); }
  // execution() keeps the default, kPlain: block(hidden) as is.

  // loft plan: everything resident, every block plain.
  loft::OffloadMemoryLayout layout(const std::vector<loft::ModelUnit>& units) const override {
    loft::OffloadMemoryLayout l;
    l.homes = loft::plan_all_resident(units);
    for (const auto& u : units) {
      if (u.kind == loft::UnitKind::kBlock) l.execution.push_back(loft::BlockExecution::kPlain);
    }
    return l;
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kOffloadMemoryPlanId ? static_cast<const loft::OffloadMemoryPlan*>(this) : nullptr;
  }

 private:
  c10::Device device_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_offload("none", [](const loft::HostContext& ctx, const loft::Options&) {
    return std::make_unique<NoOffload>(ctx.device());
  });
}

}  // namespace

LOFT_PLUGIN("offload/none", register_plugin)
