// Shared by the offload/zero3 release tests (CPU and CUDA): weak references to the storage of a streamed block's
// frozen tensors as the model built them, to show that nothing keeps those bytes once a strategy has taken them over.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <c10/core/StorageImpl.h>
#include <c10/util/intrusive_ptr.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/offload.h"

namespace loft {
namespace testing_offload {

// Wraps a strategy. Storage is watched twice: as the quantizer made each linear (watch_made, from the fixture's `made`
// hook: on a CUDA run that is the run-device copy the host moves home) and, for every host-homed block, every frozen
// tensor the strategy is offered, just before its place() runs. After place() it remembers the model's tensors.
class StorageWatch final : public OffloadStrategy {
 public:
  explicit StorageWatch(OffloadStrategy& inner) : inner_(inner) {}

  void watch_made(const std::string& site, QuantizedLinear& linear) {
    linear.visit_storage([&](std::string_view name, at::Tensor& t) {
      built.push_back({site + " " + std::string(name) + " as quantized on " + t.device().str(),
                       t.storage().getWeakStorageImpl()});
    });
  }

  std::vector<Home> plan(const std::vector<ModelUnit>& units) override { return inner_.plan(units); }
  void place(const std::vector<BlockResidency>& units) override {
    std::vector<at::Tensor*> streamed;
    auto watch = [&](const std::string& what, at::Tensor& t) {
      streamed.push_back(&t);
      offered_bytes += static_cast<int64_t>(t.nbytes());
      built.push_back({what + " as offered on " + t.device().str(), t.storage().getWeakStorageImpl()});
    };
    for (const BlockResidency& u : units) {
      if (u.kind != UnitKind::kBlock || u.home != Home::kPinnedHost) continue;
      const std::string block = "block " + std::to_string(u.index);
      for (QuantizedLinear* linear : u.frozen_linears) {
        EXPECT_TRUE(linear->visit_storage([&](std::string_view name, at::Tensor& t) {
          watch(block + " linear " + std::string(name), t);
        }));
      }
      for (at::Tensor* t : u.frozen_tensors) {
        if (t->defined()) watch(block + " tensor (bias or norm)", *t);
      }
      ++streamed_blocks;
    }
    inner_.place(units);
    for (at::Tensor* t : streamed) placed.push_back(*t);
  }
  BlockExecution execution(int64_t index) override { return inner_.execution(index); }
  void on_block(const BlockEvent& event) override {
    inner_.on_block(event);
    if (probe) trace.push_back(std::string(block_stage_name(event.stage)) + " " + std::to_string(event.index) + ": " +
                               std::to_string(probe()));
  }
  const void* extension(std::string_view id) const override { return inner_.extension(id); }

  // The watched storages something still holds with bytes in them.
  std::vector<std::string> still_held() const {
    std::vector<std::string> out;
    for (const Watched& w : built) {
      if (w.storage.expired()) continue;
      const c10::intrusive_ptr<c10::StorageImpl> s = w.storage.lock();
      if (s && s->nbytes() > 0) out.push_back(w.what + " (" + std::to_string(s->nbytes()) + " bytes)");
    }
    return out;
  }
  // The model's streamed tensors that hold bytes (none should between passes: each is released at its last use).
  int64_t placed_holding_bytes() const {
    int64_t n = 0;
    for (const at::Tensor& t : placed) n += t.storage().nbytes() > 0 ? 1 : 0;
    return n;
  }

  struct Watched {
    std::string what;
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
  };
  std::vector<Watched> built;
  std::vector<at::Tensor> placed;
  int64_t streamed_blocks = 0;
  int64_t offered_bytes = 0;  // of the host-homed blocks' frozen tensors, as offered to place()
  // When set, read after every callback (a memory statistic) into `trace`, for a report.
  std::function<int64_t()> probe;
  std::vector<std::string> trace;

 private:
  OffloadStrategy& inner_;
};

}  // namespace testing_offload
}  // namespace loft
