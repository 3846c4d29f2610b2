// A frozen weight kept dense: what quantizer/none stores, and what the host keeps for the layers a recipe's
// quantizer.skip names.
#pragma once

#include "loft/quantizer.h"

namespace loft {

// y = x Wᵀ through at::linear; `weight` [out, in] is used as given (dtype, device, layout). state() is {"weight"}.
// Methods keep QuantizedLinear's contract (loft/quantizer.h): kernels on the current stream, no device sync;
// to(device, non_blocking) is at::Tensor::to. Answers no extension ids.
class DenseLinear final : public QuantizedLinear {
 public:
  // Shares `weight` (no copy): the caller must not write to it afterwards. Throws c10::Error unless it is 2-D.
  explicit DenseLinear(at::Tensor weight);
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor dequantize(c10::ScalarType dtype) const override;
  int64_t storage_bytes() const override;
  std::map<std::string, at::Tensor> state() const override;
  void to(c10::Device device, bool non_blocking) override;
  bool visit_storage(const StorageVisitor& visit) override;  // "weight"
  int64_t out_features() const override;
  int64_t in_features() const override;

 private:
  at::Tensor weight_;
};

}  // namespace loft
