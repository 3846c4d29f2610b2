// loft::dequantized_linear: forward and the input gradient equal a dense linear on the dequantized weight, and the
// weight is dequantized once in forward and once in backward (never kept alive by the graph).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/dequantized_linear.h"

namespace {

// A "quantizer" that stores W rounded to multiples of 1/8 and counts dequantize() calls.
class RoundedLinear final : public loft::QuantizedLinear {
 public:
  explicit RoundedLinear(const at::Tensor& w) : codes_((w * 8).round().to(at::kChar)) {}
  at::Tensor forward(const at::Tensor& x) const override { return loft::dequantized_linear(x, *this); }
  at::Tensor dequantize(c10::ScalarType dtype) const override {
    ++calls;
    return codes_.to(dtype) / 8;
  }
  int64_t storage_bytes() const override { return static_cast<int64_t>(codes_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"codes", codes_}}; }
  void to(c10::Device device, bool non_blocking) override { codes_ = codes_.to(device, non_blocking); }
  int64_t out_features() const override { return codes_.size(0); }
  int64_t in_features() const override { return codes_.size(1); }
  mutable int calls = 0;

 private:
  at::Tensor codes_;
};

TEST(DequantizedLinear, ForwardAndInputGradientMatchDense) {
  torch::manual_seed(3);
  RoundedLinear q(torch::randn({6, 5}));
  at::Tensor dense = q.dequantize(at::kDouble);
  q.calls = 0;

  at::Tensor x = torch::randn({2, 3, 5}, torch::kDouble).requires_grad_(true);
  at::Tensor y = q.forward(x);
  EXPECT_EQ(q.calls, 1);
  at::Tensor dy = torch::randn({2, 3, 6}, torch::kDouble);
  y.backward(dy);
  EXPECT_EQ(q.calls, 2);

  at::Tensor x_ref = x.detach().clone().requires_grad_(true);
  at::Tensor y_ref = torch::nn::functional::linear(x_ref, dense);
  y_ref.backward(dy);
  EXPECT_TRUE(torch::equal(y.detach(), y_ref.detach()));
  EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 0, 1e-12));
}

TEST(DequantizedLinear, NoGradientNeededRunsWithoutGraph) {
  RoundedLinear q(torch::ones({4, 3}));
  at::Tensor y = q.forward(torch::ones({2, 3}));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(torch::equal(y, torch::full({2, 4}, 3.0)));
}

TEST(DequantizedLinear, WrongInputWidthNamesBothSizes) {
  RoundedLinear q(torch::ones({4, 3}));
  try {
    q.forward(torch::ones({2, 5}));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("input has 5 features, the weight expects 3"), std::string::npos);
  }
}

}  // namespace
