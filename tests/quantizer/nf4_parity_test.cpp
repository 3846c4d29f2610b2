// quantizer/nf4 against bitsandbytes 0.50.2 (CPU): identical packed codes, absmax, double-quantisation state and
// dequantised weights, for NF4 and FP4, double quantisation on and off, fp32/bf16/fp16 inputs, partial final blocks,
// odd element counts, zeros, outliers and values on the decision midpoints. The reference is written by
// make_nf4_reference.py into the build folder at test time.
#include <nlohmann/json.hpp>

#include "loft/framework/safetensors.h"
#include "nf4_test_support.h"

namespace loft::testing_nf4 {
namespace {

class Nf4Parity : public Nf4Fixture {
 protected:
  void SetUp() override {
    Nf4Fixture::SetUp();
    auto f = SafetensorsFile::open(std::string(LOFT_NF4_FIXTURE_DIR) + "/nf4_reference.safetensors");
    ASSERT_TRUE(f.ok()) << f.status().message() << " (the test fixture quantizer.nf4_reference writes it)";
    file_ = f.value();
    cases_ = nlohmann::json::parse(file_->metadata().at("cases"));
  }
  torch::Tensor t(const std::string& name) { return file_->tensor(name); }

  std::shared_ptr<SafetensorsFile> file_;
  nlohmann::json cases_;
};

TEST_F(Nf4Parity, CodesAbsmaxAndNestedStateAreIdentical) {
  ASSERT_GE(cases_.size(), 19u);
  for (const auto& c : cases_) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + " " + c.dump());
    auto q = quantizer(c["quant_type"], c["blocksize"], c["double_quant"]);
    ASSERT_TRUE(q);
    auto stored = q->quantize(t(name + ".w"), name);
    auto state = stored->state();
    EXPECT_TRUE(same_bits(state.at("weight"), t(name + ".weight"))) << "packed codes";
    EXPECT_TRUE(same_bits(state.at("absmax"), t(name + ".absmax"))) << "absmax";
    EXPECT_TRUE(same_bits(state.at("quant_map"), t("quant_map." + c["quant_type"].get<std::string>())));
    if (c["double_quant"]) {
      EXPECT_TRUE(same_bits(state.at("nested_absmax"), t(name + ".nested_absmax"))) << "nested_absmax";
      EXPECT_TRUE(same_bits(state.at("nested_offset"), t(name + ".nested_offset"))) << "nested_offset";
      EXPECT_TRUE(same_bits(state.at("nested_quant_map"), t("nested_quant_map"))) << "nested_quant_map";
      EXPECT_EQ(state.size(), 6u);
    } else {
      EXPECT_EQ(state.size(), 3u);
    }
  }
}

TEST_F(Nf4Parity, DequantisedWeightsAreIdenticalInEveryDtype) {
  const std::map<std::string, c10::ScalarType> dtypes = {
      {"fp32", torch::kFloat}, {"bf16", torch::kBFloat16}, {"fp16", torch::kHalf}};
  for (const auto& c : cases_) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + " " + c.dump());
    auto q = quantizer(c["quant_type"], c["blocksize"], c["double_quant"]);
    ASSERT_TRUE(q);
    auto stored = q->quantize(t(name + ".w"), name);
    for (const auto& [dname, dtype] : dtypes) {
      auto deq = stored->dequantize(dtype);
      EXPECT_EQ(deq.sizes(), t(name + ".w").sizes());
      if (c["quant_type"] == "nf4") {
        EXPECT_TRUE(same_bits(deq, t(name + ".deq_" + dname))) << "dequantize(" << dname << ")";
      } else {
        // FP4's sign-bit zero code dequantises to -0.0 in bitsandbytes' CUDA and scalar CPU kernels (loft too) but
        // to +0.0 in its AVX-512 and torch fallbacks: equal values, possibly different sign bits of zeros.
        EXPECT_TRUE(torch::equal(deq, t(name + ".deq_" + dname))) << "dequantize(" << dname << ")";
        EXPECT_TRUE(same_bits(deq.abs(), t(name + ".deq_" + dname).abs())) << "dequantize(" << dname << ")";
      }
    }
  }
}

// A state bitsandbytes wrote loads into loft and dequantises to bitsandbytes' weights (checkpoint interchange).
TEST_F(Nf4Parity, BitsandbytesStateLoadsAndDequantisesIdentically) {
  for (const auto& c : cases_) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    auto q = quantizer(c["quant_type"], c["blocksize"], c["double_quant"]);
    ASSERT_TRUE(q);
    std::map<std::string, torch::Tensor> state = {{"weight", t(name + ".weight")},
                                                  {"absmax", t(name + ".absmax")},
                                                  {"quant_map", t("quant_map." + c["quant_type"].get<std::string>())}};
    if (c["double_quant"]) {
      state["nested_absmax"] = t(name + ".nested_absmax");
      state["nested_offset"] = t(name + ".nested_offset");
      state["nested_quant_map"] = t("nested_quant_map");
    }
    auto loaded = q->load(state, c["shape"][0], c["shape"][1]);
    EXPECT_TRUE(torch::equal(loaded->dequantize(torch::kFloat), t(name + ".deq_fp32")));
    EXPECT_TRUE(same_bits(loaded->dequantize(torch::kFloat).abs(), t(name + ".deq_fp32").abs()));
  }
}

}  // namespace
}  // namespace loft::testing_nf4
