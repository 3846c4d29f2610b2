// quantizer/int8 on the CPU: recipe validation of its options (file:line), the factory's own checks, load() of bad
// states, the quantize format on hand-computed rows, and the int8 matmul's input gradient.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/quantizer.h"

namespace loft {
namespace {

class Int8Unit : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    torch::manual_seed(3);
  }
  StatusOr<std::unique_ptr<Quantizer>> create(const std::string& matmul, double threshold) {
    return registry_.create_quantizer("int8", ctx_,
                                      Options("quantizer", {{"matmul", matmul}, {"threshold", threshold}}));
  }
  std::string validate(const std::string& quantizer_lines) {
    auto recipe = parse_recipe_text("[model]\npath = \"m\"\n[peft]\ntype = \"full\"\n[dataset]\ntype = \"synthetic\"\n"
                                    "[quantizer]\ntype = \"int8\"\n" +
                                        quantizer_lines,
                                    "int8.toml");
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    std::string all;
    for (const auto& d : validate_recipe(recipe.value(), registry_, nullptr)) all += d.str() + "\n";
    return all;
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
};

TEST_F(Int8Unit, RecipeValidationNamesTheLineOfABadOption) {
  EXPECT_EQ(validate(""), "");
  EXPECT_EQ(validate("matmul = \"int8\"\nthreshold = 0.0\n"), "");
  const std::string bad = validate("threshold = -1.0\nmatmul = \"int4\"\n");
  EXPECT_NE(bad.find("int8.toml:9:"), std::string::npos) << bad;
  EXPECT_NE(bad.find("threshold"), std::string::npos) << bad;
  EXPECT_NE(bad.find("must be >= 0"), std::string::npos) << bad;
  EXPECT_NE(bad.find("int8.toml:10:"), std::string::npos) << bad;
  EXPECT_NE(bad.find("\"int4\" is not one of \"dequant\", \"int8\""), std::string::npos) << bad;
  EXPECT_NE(validate("threshold = \"six\"\n").find("int8.toml:9:"), std::string::npos);
  EXPECT_NE(validate("treshold = 6.0\n").find("did you mean 'threshold'"), std::string::npos);
}

TEST_F(Int8Unit, FactoryRejectsBadOptionsFromDirectCallers) {
  auto neg = create("dequant", -0.5);
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("threshold"), std::string::npos) << neg.status().message();
  auto unknown = create("fp8", 6.0);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("\"fp8\""), std::string::npos) << unknown.status().message();
}

TEST_F(Int8Unit, CodesFollowTheFormatOnHandComputedRows) {
  auto q = create("dequant", 6.0);
  ASSERT_TRUE(q.ok()) << q.status().message();
  // Row 0: absmax 127 -> scale 1, halves round to even. Row 1: zeros. Row 2: absmax 2 -> scale 63.5.
  auto w = torch::tensor({{127.0f, 2.5f, -3.5f, 0.5f}, {0.0f, 0.0f, 0.0f, 0.0f}, {2.0f, -1.0f, 0.5f, 0.25f}});
  auto stored = q.value()->quantize(w, "site");
  auto cb = stored->state().at("weight"), scb = stored->state().at("SCB");
  EXPECT_TRUE(torch::equal(cb, torch::tensor({{127, 2, -4, 0}, {0, 0, 0, 0}, {127, -64, 32, 16}}, torch::kChar)))
      << cb;
  EXPECT_TRUE(torch::equal(scb, torch::tensor({127.0f, 0.0f, 2.0f})));
  EXPECT_EQ(stored->storage_bytes(), 12 + 3 * 4);
  // Values beyond float16 cannot be quantized the way bitsandbytes does: a clear error, not garbage.
  try {
    q.value()->quantize(torch::tensor({{1e5f, 1.0f}}), "model.layers.3.mlp.down_proj");
    ADD_FAILURE() << "no error for a weight beyond float16";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.3.mlp.down_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("float16"), std::string::npos) << msg;
  }
}

TEST_F(Int8Unit, LoadRejectsStatesItCannotUse) {
  auto q = create("dequant", 6.0);
  ASSERT_TRUE(q.ok());
  auto stored = q.value()->quantize(torch::randn({6, 10}), "site");
  auto good = stored->state();
  EXPECT_TRUE(torch::equal(q.value()->load(good, 6, 10)->dequantize(torch::kFloat), stored->dequantize(torch::kFloat)));
  auto expect_error = [&](std::map<std::string, torch::Tensor> state, int64_t out, int64_t in, const std::string& what) {
    try {
      q.value()->load(state, out, in);
      ADD_FAILURE() << "no error; expected one mentioning " << what;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error({{"weight", good.at("weight")}}, 6, 10, "no 'SCB'");
  expect_error({{"SCB", good.at("SCB")}}, 6, 10, "no 'weight'");
  expect_error(good, 7, 10, "expected [7, 10]");
  expect_error({{"weight", good.at("weight").to(torch::kFloat)}, {"SCB", good.at("SCB")}}, 6, 10, "expected int8");
  expect_error({{"weight", good.at("weight")}, {"SCB", good.at("SCB").to(torch::kHalf)}}, 6, 10, "'SCB' is");
  auto extra = good;
  extra["absmax"] = good.at("SCB");
  expect_error(extra, 6, 10, "exactly 'weight' and 'SCB'");
}

TEST_F(Int8Unit, Int8MatmulGradientIsDyTimesTheDequantizedWeight) {
  for (double threshold : {6.0, 0.0}) {
    SCOPED_TRACE(threshold);
    auto q = create("int8", threshold);
    ASSERT_TRUE(q.ok());
    auto w = torch::randn({24, 40}) * 0.1;
    auto stored = q.value()->quantize(w, "site");
    auto x = (torch::randn({2, 7, 40}) * 2).requires_grad_(true);
    {
      torch::NoGradGuard g;
      x.select(2, 3).fill_(9.0);  // an outlier column
    }
    auto y = stored->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 7, 24}));
    auto deq = stored->dequantize(torch::kFloat);
    // Close to the dense product; the outlier column is exact in floating point.
    EXPECT_LT(((y - torch::matmul(x, deq.t())).abs().max() / y.abs().max()).item<double>(), 0.03);
    auto dy = torch::randn_like(y);
    y.backward(dy);
    EXPECT_TRUE(torch::allclose(x.grad(), torch::matmul(dy, deq), 1e-5, 1e-5));
  }
}

}  // namespace
}  // namespace loft
