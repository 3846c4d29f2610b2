// quantizer/int8 against bitsandbytes 0.50.2 on the CPU: int8 codes (CB) and row absmax (SCB) of Int8Params, its
// dequantization, and Linear8bitLt's LLM.int8 forward (int8 activations, outlier columns in floating point).
// The reference comes from make_int8_reference.py, run here once per script version (raw files + JSON).
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>


#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"
#include "../support/python_reference.h"

namespace loft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::read_text;

fs::path reference_dir() {
  return testing::python_reference_dir(
      fs::path(LOFT_SOURCE_DIR) / "tests/quantizer/make_int8_reference.py", "int8_reference",
      fmt::format("\n(is bitsandbytes==0.50.2 installed in {}?)", LOFT_PYTHON));
}

torch::Tensor read_raw(const fs::path& dir, const json& name, std::vector<int64_t> shape, torch::Dtype dtype) {
  const std::string bytes = read_text(dir / name.get<std::string>());
  auto t = torch::empty(shape, torch::dtype(dtype));
  EXPECT_EQ(bytes.size(), t.nbytes()) << name;
  if (bytes.size() == t.nbytes()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

torch::Dtype dtype_named(const std::string& s) {
  if (s == "bfloat16") return torch::kBFloat16;
  if (s == "float16") return torch::kHalf;
  return torch::kFloat;
}

class Int8Parity : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    dir_ = reference_dir();
    ASSERT_FALSE(dir_.empty());
    ref_ = json::parse(read_text(dir_ / "reference.json"));
  }
  std::unique_ptr<Quantizer> quantizer(const std::string& matmul, double threshold) {
    auto q = registry_.create_quantizer("int8", ctx_, Options("quantizer", {{"matmul", matmul}, {"threshold", threshold}}));
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() ? std::move(q).value() : nullptr;
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
  fs::path dir_;
  json ref_;
};

TEST_F(Int8Parity, CodesAndScalesEqualBitsandbytes) {
  auto q = quantizer("dequant", 6.0);
  ASSERT_TRUE(q);
  ASSERT_GE(ref_["quantize"].size(), 6u);
  for (const auto& c : ref_["quantize"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t out = c["shape"][0], in = c["shape"][1];
    // The source dtype matters only through the fp16 cast both sides apply; bf16 values are exact in float32.
    const auto w = read_raw(dir_, c["weight"], {out, in}, torch::kFloat).to(dtype_named(c["dtype"]));
    const auto cb = read_raw(dir_, c["CB"], {out, in}, torch::kChar);
    const auto scb = read_raw(dir_, c["SCB"], {out}, torch::kFloat);
    auto stored = q->quantize(w, "model.layers.0.mlp.up_proj");
    const auto state = stored->state();
    ASSERT_EQ(state.size(), 2u);
    EXPECT_TRUE(torch::equal(state.at("weight"), cb))
        << (state.at("weight").to(torch::kInt) - cb.to(torch::kInt)).abs().max().item<int>() << " max code difference";
    // Bitwise: float equality would call -0 and 0 equal.
    EXPECT_TRUE(torch::equal(state.at("SCB").view(torch::kInt), scb.view(torch::kInt)));
    const auto deq = read_raw(dir_, c["dequant_f32"], {out, in}, torch::kFloat);
    EXPECT_TRUE(torch::equal(stored->dequantize(torch::kFloat).view(torch::kInt), deq.view(torch::kInt)));
    // bitsandbytes' dequant followed by .to(dtype) is what bf16/fp16 dequantize must give, bit for bit.
    for (auto dt : {torch::kBFloat16, torch::kHalf}) {
      EXPECT_TRUE(torch::equal(stored->dequantize(dt), deq.to(dt))) << dt;
    }
  }
}

TEST_F(Int8Parity, Int8MatmulEqualsLinear8bitLt) {
  ASSERT_GE(ref_["matmul"].size(), 6u);
  for (const auto& c : ref_["matmul"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t m = c["tokens"], k = c["in"], n = c["out"];
    const auto dtype = dtype_named(c["dtype"]);
    auto q = quantizer("int8", c["threshold"].get<double>());
    ASSERT_TRUE(q);
    const auto w = read_raw(dir_, c["weight"], {n, k}, torch::kFloat);
    const auto x = read_raw(dir_, c["x"], {m, k}, torch::kFloat).to(dtype);
    const auto y = read_raw(dir_, c["y"], {m, n}, torch::kFloat).to(dtype);
    auto stored = q->quantize(w, "model.layers.0.self_attn.q_proj");
    ASSERT_TRUE(torch::equal(stored->state().at("weight"), read_raw(dir_, c["CB"], {n, k}, torch::kChar)));
    ASSERT_TRUE(torch::equal(stored->state().at("SCB"), read_raw(dir_, c["SCB"], {n}, torch::kFloat)));
    torch::NoGradGuard no_grad;
    const auto got = stored->forward(x);
    ASSERT_EQ(got.scalar_type(), dtype);
    ASSERT_EQ(got.sizes(), y.sizes());
    // Same operations in the same order through the same LibTorch: the int8 part is exact and every elementwise
    // step is IEEE-rounded in bitsandbytes' order, so without outlier columns the outputs are equal. With outliers
    // the float addmm of those columns goes through the CPU BLAS; allow it one rounding of the output dtype
    // (it has been bit-equal here too: see the printed difference).
    const double diff = (got.to(torch::kFloat) - y.to(torch::kFloat)).abs().max().item<double>();
    const double y_max = y.abs().max().item<double>();
    const bool has_outliers = c["threshold"].get<double>() > 0.0 && !c["outlier_columns"].empty();
    const double bound = !has_outliers ? 0.0 : y_max * (dtype == torch::kFloat ? 1e-6 : 1.0 / 256);
    EXPECT_LE(diff, bound) << "max |loft - bitsandbytes| = " << diff << " (|y| max " << y_max << ")";
    if (diff != 0.0) {
      std::printf("note: %s differs from bitsandbytes by %g (bound %g)\n", c["name"].get<std::string>().c_str(), diff,
                  bound);
    }
    // A 3-D batch gives the same rows.
    const auto got3 = stored->forward(x.view({1, m, k}));
    EXPECT_TRUE(torch::equal(got3.view({m, n}), got));
    // The int8 path differs from the dense product only by quantization: a loose sanity bound.
    const auto dense = torch::matmul(x.to(torch::kFloat), w.t());
    const double rel = ((got.to(torch::kFloat) - dense).abs().max() / dense.abs().max()).item<double>();
    EXPECT_LT(rel, 0.05);
  }
}

}  // namespace
}  // namespace loft
