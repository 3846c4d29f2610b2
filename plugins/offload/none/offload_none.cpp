// offload/none: every frozen tensor on the run's device; blocks run plainly (autograd keeps their activations).
#include "loft/offload.h"
#include "loft/plugin.h"

namespace {

class NoOffload final : public loft::OffloadStrategy {
 public:
  explicit NoOffload(c10::Device device) : device_(device) {}
  std::vector<loft::Home> plan(const std::vector<loft::ModelUnit>& units) override {
    return std::vector<loft::Home>(units.size(), loft::Home::kRunDevice);
  }
  void place(const std::vector<loft::BlockResidency>& units) override {
    for (const auto& unit : units) {
      for (auto* linear : unit.frozen_linears) linear->to(device_, /*non_blocking=*/false);
      for (auto* tensor : unit.frozen_tensors) {
        if (tensor->defined()) *tensor = tensor->to(device_);
      }
    }
  }
  // execution() keeps the default, kPlain: block(hidden) as is.

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
