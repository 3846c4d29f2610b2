// DenseLinear: the weight never requires grad, so autograd through at::linear differentiates w.r.t. x only.
#include "loft/dense_linear.h"

#include <ATen/ops/linear.h>
#include <c10/util/Exception.h>

namespace loft {

DenseLinear::DenseLinear(at::Tensor weight) : weight_(std::move(weight)) {
  TORCH_CHECK(weight_.dim() == 2, "DenseLinear: the weight must be 2-D [out, in], got ", weight_.sizes());
}
at::Tensor DenseLinear::forward(const at::Tensor& x) const { return at::linear(x, weight_); }
at::Tensor DenseLinear::dequantize(c10::ScalarType dtype) const { return weight_.to(dtype); }
int64_t DenseLinear::storage_bytes() const { return static_cast<int64_t>(weight_.nbytes()); }
std::map<std::string, at::Tensor> DenseLinear::state() const { return {{"weight", weight_}}; }
void DenseLinear::to(c10::Device device, bool non_blocking) { weight_ = weight_.to(device, non_blocking); }
bool DenseLinear::visit_storage(const StorageVisitor& visit) {
  visit("weight", weight_);
  return true;
}
int64_t DenseLinear::out_features() const { return weight_.size(0); }
int64_t DenseLinear::in_features() const { return weight_.size(1); }

}  // namespace loft
