// OffloadStrategy's SDK side (run_block through the block boundary, defaults), the names of its enums, and the
// in-place storage swap strategies use once autograd graphs have captured a frozen tensor.
#include "loft/offload.h"
#include "loft/resident_offload.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Storage.h>
#include <c10/core/StorageImpl.h>
#include <c10/util/Exception.h>

#include "loft/block_boundary.h"

namespace loft {

// ---- OffloadStrategy's SDK side ---------------------------------------------------------------------------------

BlockExecution OffloadStrategy::execution(int64_t) { return BlockExecution::kPlain; }
void OffloadStrategy::on_block(const BlockEvent&) {}
const void* OffloadStrategy::extension(std::string_view) const { return nullptr; }

at::Tensor OffloadStrategy::run_block(int64_t index, const BlockFunction& block, const at::Tensor& hidden) {
  const BlockExecution how = execution(index);
  return run_block_boundary(index, block, hidden, how, [this](const BlockEvent& event) { on_block(event); });
}

const char* home_name(Home home) {
  switch (home) {
    case Home::kRunDevice: return "run_device";
    case Home::kPinnedHost: return "pinned_host";
  }
  return "?";
}

c10::Device home_device(Home home, c10::Device run_device) {
  return home == Home::kRunDevice ? run_device : c10::Device(c10::kCPU);
}

const char* unit_kind_name(UnitKind kind) {
  switch (kind) {
    case UnitKind::kEmbedding: return "embedding";
    case UnitKind::kBlock: return "block";
    case UnitKind::kFinalNorm: return "final_norm";
    case UnitKind::kLmHead: return "lm_head";
  }
  return "?";
}

const char* block_stage_name(BlockStage stage) {
  switch (stage) {
    case BlockStage::kForwardPre: return "forward_pre";
    case BlockStage::kForwardPost: return "forward_post";
    case BlockStage::kRecomputePre: return "recompute_pre";
    case BlockStage::kRecomputePost: return "recompute_post";
    case BlockStage::kBackwardPre: return "backward_pre";
    case BlockStage::kBackwardPost: return "backward_post";
  }
  return "?";
}

namespace {

void check_owns_storage(const at::Tensor& tensor, const char* what) {
  TORCH_CHECK(tensor.defined(), what, ": the tensor is undefined");
  TORCH_CHECK(tensor.storage_offset() == 0 && tensor.is_contiguous(), what,
              ": the tensor must own its whole storage (offset 0, contiguous), got offset ", tensor.storage_offset(),
              " and strides ", tensor.strides());
}

void delete_kept_tensor(void* ctx) { delete static_cast<at::Tensor*>(ctx); }

}  // namespace

void refill_storage(const at::Tensor& tensor, const at::Tensor& source) {
  check_owns_storage(tensor, "loft::refill_storage");
  TORCH_CHECK(source.defined() && source.is_contiguous(), "loft::refill_storage: the source must be contiguous");
  TORCH_CHECK(source.sizes() == tensor.sizes() && source.scalar_type() == tensor.scalar_type() &&
                  source.device() == tensor.device(),
              "loft::refill_storage: the source is ", source.scalar_type(), " ", source.sizes(), " on ",
              source.device(), " but the tensor is ", tensor.scalar_type(), " ", tensor.sizes(), " on ",
              tensor.device());
  c10::StorageImpl* storage = tensor.storage().unsafeGetStorageImpl();
  // The new bytes keep their own tensor (and so its storage) alive until the next refill or release.
  auto* kept = new at::Tensor(source);
  storage->set_data_ptr_noswap(at::DataPtr(kept->data_ptr(), kept, &delete_kept_tensor, source.device()));
  storage->set_nbytes(source.nbytes());
}

std::vector<Home> plan_all_resident(const std::vector<ModelUnit>& units) {
  return std::vector<Home>(units.size(), Home::kRunDevice);
}

void place_all_on(const std::vector<BlockResidency>& units, c10::Device device) {
  for (const auto& unit : units) {
    for (auto* linear : unit.frozen_linears) linear->to(device, /*non_blocking=*/false);
    for (auto* tensor : unit.frozen_tensors) {
      if (tensor->defined()) *tensor = tensor->to(device);
    }
  }
}

void release_storage(const at::Tensor& tensor) {
  check_owns_storage(tensor, "loft::release_storage");
  c10::StorageImpl* storage = tensor.storage().unsafeGetStorageImpl();
  storage->set_data_ptr_noswap(at::DataPtr(nullptr, tensor.device()));
  storage->set_nbytes(0);
}

}  // namespace loft
