// offload/none: every frozen tensor on the run's device; blocks run plainly (autograd keeps their activations).
#include "loft/offload.h"
#include "loft/plugin.h"

namespace {

class NoOffload final : public loft::OffloadStrategy {
 public:
  explicit NoOffload(c10::Device device) : device_(device) {}
  void place(const std::vector<loft::BlockResidency>& blocks) override {
    for (const auto& block : blocks) {
      for (auto* linear : block.frozen_linears) linear->to(device_, /*non_blocking=*/false);
      for (auto* tensor : block.frozen_tensors) {
        if (tensor->defined()) *tensor = tensor->to(device_);
      }
    }
  }
  at::Tensor run_block(int64_t, const loft::BlockFunction& block, const at::Tensor& hidden) override {
    return block(hidden);
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
