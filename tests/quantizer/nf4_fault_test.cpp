// quantizer/nf4 given bad input: options outside the schema (the factory's own check, for callers that skip
// `loft validate`), corrupt or mismatched saved state, unsupported weights. Each error says what and how to fix.
#include "nf4_test_support.h"

namespace loft::testing_nf4 {
namespace {

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in: " << what;
  }
}

TEST_F(Nf4Fixture, FactoryRejectsOptionsBitsandbytesDoesNotSupport) {
  auto bad_block = create("nf4", 100, true);
  ASSERT_FALSE(bad_block.ok());
  EXPECT_NE(bad_block.status().message().find("blocksize = 100 is not one bitsandbytes supports"), std::string::npos)
      << bad_block.status().message();
  auto bad_type = create("int4", 64, true);
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("quant_type = \"int4\" is not one of \"nf4\", \"fp4\""), std::string::npos)
      << bad_type.status().message();
}

class Nf4State : public Nf4Fixture {
 protected:
  void SetUp() override {
    Nf4Fixture::SetUp();
    q_ = quantizer("nf4", 64, true);
    state_ = q_->quantize(torch::randn({20, 96}), "site")->state();
  }
  std::unique_ptr<Quantizer> q_;
  std::map<std::string, torch::Tensor> state_;
};

TEST_F(Nf4State, MissingKeyIsNamed) {
  for (const char* key : {"weight", "absmax", "quant_map", "nested_offset", "nested_quant_map"}) {
    auto s = state_;
    s.erase(key);
    expect_error([&] { q_->load(s, 20, 96); }, {std::string("'") + key + "' is missing", "[20, 96]"});
  }
}

TEST_F(Nf4State, WrongSizesAndDtypesAreExplained) {
  auto s = state_;
  s["weight"] = s["weight"].narrow(0, 0, 10);
  expect_error([&] { q_->load(s, 20, 96); }, {"'weight' has 10 elements", "expected 960", "another blocksize"});
  expect_error([&] { q_->load(state_, 20, 64); }, {"'weight' has 960 elements", "expected 640"});
  s = state_;
  s["absmax"] = s["absmax"].to(torch::kFloat);
  expect_error([&] { q_->load(s, 20, 96); }, {"'absmax' has dtype Float", "expected Byte"});
  // the same state read with another blocksize: absmax has the wrong count
  expect_error([&] { quantizer("nf4", 128, true)->load(state_, 20, 96); },
               {"'absmax' has 30 elements", "expected 15", "another blocksize (now 128)"});
  s = state_;
  s["nested_offset"] = torch::zeros({3});
  expect_error([&] { q_->load(s, 20, 96); }, {"'nested_offset' has 3 elements"});
}

TEST_F(Nf4State, MismatchedFormatNamesTheOptionToChange) {
  expect_error([&] { quantizer("fp4", 64, true)->load(state_, 20, 96); },
               {"'quant_map'", "is the nf4 code", "quant_type = \"fp4\"", "set quant_type = \"nf4\""});
  expect_error([&] { quantizer("nf4", 64, false)->load(state_, 20, 96); },
               {"quantised with double quantisation", "double_quant = false", "set double_quant = true"});
  auto plain = quantizer("nf4", 64, false)->quantize(torch::randn({20, 96}), "site")->state();
  expect_error([&] { q_->load(plain, 20, 96); }, {"quantised without double quantisation", "set double_quant = false"});
}

TEST_F(Nf4State, CorruptTablesAreRejected) {
  auto s = state_;
  s["quant_map"] = s["quant_map"] * 2;
  expect_error([&] { q_->load(s, 20, 96); }, {"not a known 4-bit code", "corrupt"});
  s = state_;
  s["nested_quant_map"] = torch::zeros({256});
  expect_error([&] { q_->load(s, 20, 96); }, {"'nested_quant_map'", "not bitsandbytes' signed 8-bit dynamic map"});
}

TEST_F(Nf4Fixture, UnsupportedWeightsNameTheSite) {
  auto q = quantizer();
  expect_error([&] { q->quantize(torch::randn({4, 4, 4}), "model.layers.0.mlp.up_proj"); },
               {"model.layers.0.mlp.up_proj", "2-D"});
  expect_error([&] { q->quantize(torch::ones({4, 4}, torch::kInt), "lm_head"); }, {"lm_head", "floating-point"});
}

}  // namespace
}  // namespace loft::testing_nf4
