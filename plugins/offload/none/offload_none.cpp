// offload/none: every frozen tensor on the run's device; blocks run plainly (autograd keeps their activations).
#include "loft/offload.h"
#include "loft/resident_offload.h"
#include "loft/plugin.h"

namespace {

class NoOffload final : public loft::OffloadStrategy {
 public:
  explicit NoOffload(c10::Device device) : device_(device) {}
  std::vector<loft::Home> plan(const std::vector<loft::ModelUnit>& units) override {
    return loft::plan_all_resident(units);
  }
  void place(const std::vector<loft::BlockResidency>& units) override { loft::place_all_on(units, device_); }
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
