// Shared by the quantizer/nf4 tests: the plugin created through the registry as a run creates it.
#pragma once

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"

namespace loft::testing_nf4 {

class Nf4Fixture : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }

  StatusOr<std::unique_ptr<Quantizer>> create(const std::string& quant_type, int64_t blocksize, bool double_quant) {
    std::map<std::string, OptionValue> values = {
        {"quant_type", quant_type}, {"blocksize", blocksize}, {"double_quant", double_quant}};
    return registry_.create_quantizer("nf4", ctx_, Options("quantizer", values));
  }
  std::unique_ptr<Quantizer> quantizer(const std::string& quant_type = "nf4", int64_t blocksize = 64,
                                       bool double_quant = true) {
    auto q = create(quant_type, blocksize, double_quant);
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() ? std::move(q).value() : nullptr;
  }

  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
};

// Bitwise equality of two tensors (values, dtype and element count; shapes may differ by [n] vs [n, 1]).
inline ::testing::AssertionResult same_bits(const torch::Tensor& got, const torch::Tensor& want) {
  auto a = got.detach().cpu().contiguous().view(-1), b = want.detach().cpu().contiguous().view(-1);
  if (a.scalar_type() != b.scalar_type()) {
    return ::testing::AssertionFailure() << "dtype " << a.scalar_type() << " vs " << b.scalar_type();
  }
  if (a.numel() != b.numel()) return ::testing::AssertionFailure() << a.numel() << " vs " << b.numel() << " elements";
  if (std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0) return ::testing::AssertionSuccess();
  auto diff = a.to(torch::kDouble).ne(b.to(torch::kDouble)).logical_or(torch::isnan(a.to(torch::kDouble)));
  auto idx = diff.nonzero();
  int64_t first = idx.numel() ? idx[0].item<int64_t>() : -1;
  return ::testing::AssertionFailure() << idx.size(0) << " of " << a.numel() << " elements differ; first at " << first
                                       << ": " << (first >= 0 ? a[first].item<double>() : 0.0) << " vs "
                                       << (first >= 0 ? b[first].item<double>() : 0.0);
}

}  // namespace loft::testing_nf4
