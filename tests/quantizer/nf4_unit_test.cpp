// quantizer/nf4 on the CPU: the dequantisation error bound against fp32, forward/backward equal to a dense linear on
// the dequantised weight, bit-identical load(state()) round trips, storage bytes, dtypes, and int choices in the
// manifest that `loft validate` enforces.
#include "loft/dequantized_linear.h"
#include "loft/framework/recipe.h"
#include "nf4_test_support.h"

namespace loft::testing_nf4 {
namespace {

struct Config {
  std::string quant_type;
  int64_t blocksize;
  bool double_quant;
};
const std::vector<Config> kConfigs = {{"nf4", 64, true}, {"nf4", 64, false}, {"fp4", 64, true},
                                      {"fp4", 128, false}, {"nf4", 32, true}, {"nf4", 4096, true}};

std::string label(const Config& c) {
  return c.quant_type + "/" + std::to_string(c.blocksize) + (c.double_quant ? "/dq" : "");
}

// The dequantised absmax of each block, rebuilt from state() alone (the documented state layout).
torch::Tensor absmax_from_state(const std::map<std::string, torch::Tensor>& s) {
  if (!s.count("nested_absmax")) return s.at("absmax");
  auto codes = s.at("absmax").to(torch::kLong);
  auto nested = s.at("nested_absmax").repeat_interleave(256).narrow(0, 0, codes.numel());
  return s.at("nested_quant_map").index({codes}) * nested + s.at("nested_offset");
}

TEST_F(Nf4Fixture, ErrorWithinHalfTheLargestCodeGapOfEachBlock) {
  torch::manual_seed(7);
  for (const auto& c : kConfigs) {
    for (auto shape : std::vector<std::vector<int64_t>>{{40, 96}, {33, 100}, {7, 33}}) {
      SCOPED_TRACE(label(c) + " " + std::to_string(shape[0]) + "x" + std::to_string(shape[1]));
      auto w = torch::randn(shape) * 0.05;
      w.view(-1).index_put_({torch::randint(0, w.numel(), {5})}, 3.0);  // outliers
      auto stored = quantizer(c.quant_type, c.blocksize, c.double_quant)->quantize(w, "site");
      auto state = stored->state();
      auto code = std::get<0>(state.at("quant_map").sort());
      const double half_gap = ((code.narrow(0, 1, 15) - code.narrow(0, 0, 15)).max().item<double>()) / 2;
      const int64_t n = w.numel();
      auto block = torch::arange(n).div(c.blocksize, "floor");
      auto true_absmax = torch::zeros({(n + c.blocksize - 1) / c.blocksize}).scatter_reduce(
          0, block, w.view(-1).abs(), "amax", /*include_self=*/false);
      auto used_absmax = absmax_from_state(state);
      // code chosen for the true absmax, rebuilt with the stored one: |w - c A'| <= A gap/2 + |A - A'| (+ fp32)
      auto bound = (true_absmax * half_gap + (true_absmax - used_absmax).abs()) * (1 + 1e-6) + 1e-12;
      auto err = (w.view(-1) - stored->dequantize(torch::kFloat).view(-1)).abs();
      EXPECT_TRUE(err.le(bound.index({block})).all().item<bool>())
          << "worst excess " << (err - bound.index({block})).max().item<double>();
      if (c.double_quant) {
        // the 8-bit absmax is within half a gap of the dynamic map (plus bitsandbytes' 65536-bin rounding) times
        // its block's nested absmax
        auto map = state.at("nested_quant_map");
        const double map_half_gap = (map.narrow(0, 1, 255) - map.narrow(0, 0, 255)).max().item<double>() / 2;
        auto nested = state.at("nested_absmax").repeat_interleave(256).narrow(0, 0, true_absmax.numel());
        auto nested_bound = nested * (map_half_gap + 2.0 / 65535) * (1 + 1e-6) + 1e-12;
        EXPECT_TRUE((true_absmax - used_absmax).abs().le(nested_bound).all().item<bool>());
      } else {
        EXPECT_TRUE(torch::equal(used_absmax, true_absmax));
      }
      // and typical error is far below the bound: Gaussian weights, relative RMS error about 10% (NF4) / 12% (FP4)
      auto normal = torch::randn({64, 256});
      auto d = quantizer(c.quant_type, c.blocksize, c.double_quant)->quantize(normal, "n")->dequantize(torch::kFloat);
      EXPECT_LT(((d - normal).pow(2).mean() / normal.pow(2).mean()).sqrt().item<double>(),
                c.quant_type == "nf4" ? 0.12 : 0.14);
    }
  }
}

TEST_F(Nf4Fixture, ForwardAndInputGradientEqualDenseLinearOnTheDequantisedWeight) {
  torch::manual_seed(3);
  for (const auto& c : kConfigs) {
    SCOPED_TRACE(label(c));
    auto stored = quantizer(c.quant_type, c.blocksize, c.double_quant)->quantize(torch::randn({24, 80}), "site");
    auto dense = stored->dequantize(torch::kFloat);
    auto x = torch::randn({2, 3, 80}).requires_grad_(true);
    auto y = stored->forward(x);
    auto dy = torch::randn({2, 3, 24});
    y.backward(dy);
    auto x_ref = x.detach().clone().requires_grad_(true);
    auto y_ref = torch::nn::functional::linear(x_ref, dense);
    y_ref.backward(dy);
    EXPECT_TRUE(torch::allclose(y, y_ref, 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-6, 1e-6));
    EXPECT_TRUE(torch::equal(loft::dequantized_linear(x.detach(), *stored), y.detach()));
  }
}

TEST_F(Nf4Fixture, LoadOfStateIsBitIdentical) {
  torch::manual_seed(5);
  for (const auto& c : kConfigs) {
    SCOPED_TRACE(label(c));
    auto q = quantizer(c.quant_type, c.blocksize, c.double_quant);
    auto stored = q->quantize(torch::randn({33, 100}, torch::kBFloat16), "site");
    auto loaded = q->load(stored->state(), 33, 100);
    EXPECT_EQ(loaded->out_features(), 33);
    EXPECT_EQ(loaded->in_features(), 100);
    auto a = stored->state(), b = loaded->state();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, v] : a) EXPECT_TRUE(same_bits(b.at(k), v)) << k;
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
      EXPECT_TRUE(same_bits(loaded->dequantize(dtype), stored->dequantize(dtype)));
    }
    EXPECT_EQ(loaded->storage_bytes(), stored->storage_bytes());
  }
}

TEST_F(Nf4Fixture, StorageBytesCountEveryStateTensorAndStayNearFourBits) {
  auto stored = quantizer("nf4", 64, true)->quantize(torch::randn({1536, 1536}), "q_proj");
  int64_t sum = 0;
  for (const auto& [k, v] : stored->state()) sum += static_cast<int64_t>(v.nbytes());
  EXPECT_EQ(stored->storage_bytes(), sum);
  const int64_t n = 1536 * 1536;
  // 4 bits + 8/64 (absmax codes) + 32/(64*256) (nested absmax) per weight, plus the two code tables and the offset
  EXPECT_EQ(sum, n / 2 + n / 64 + (n / 64 / 256) * 4 + 16 * 4 + 256 * 4 + 4);
  auto plain = quantizer("nf4", 64, false)->quantize(torch::randn({1536, 1536}), "q_proj");
  EXPECT_EQ(plain->storage_bytes(), n / 2 + n / 64 * 4 + 16 * 4);
}

TEST_F(Nf4Fixture, DequantisesToAnyFloatDtypeAndQuantisesAnyInputDtype) {
  auto w = torch::randn({16, 64});
  auto q = quantizer();
  auto stored = q->quantize(w, "site");
  auto f32 = stored->dequantize(torch::kFloat);
  EXPECT_EQ(f32.sizes(), w.sizes());
  EXPECT_TRUE(torch::equal(stored->dequantize(torch::kDouble), f32.to(torch::kDouble)));
  EXPECT_TRUE(torch::equal(stored->dequantize(torch::kBFloat16), f32.to(torch::kBFloat16)));
  // fp64 input quantises as its fp32 rounding does
  auto from64 = q->quantize(w.to(torch::kDouble), "site");
  EXPECT_TRUE(same_bits(from64->state().at("weight"), stored->state().at("weight")));
}

TEST_F(Nf4Fixture, ZeroWeightDequantisesToZero) {
  for (const auto& c : kConfigs) {
    SCOPED_TRACE(label(c));
    auto stored = quantizer(c.quant_type, c.blocksize, c.double_quant)->quantize(torch::zeros({8, 40}), "zero");
    EXPECT_TRUE(torch::equal(stored->dequantize(torch::kFloat), torch::zeros({8, 40})));
  }
}

class Nf4Recipe : public Nf4Fixture {
 protected:
  std::vector<Diagnostic> validate(const std::string& quantizer_lines) {
    const std::string text = "[model]\npath = \"m\"\n[quantizer]\ntype = \"nf4\"\n" + quantizer_lines +
                             "[peft]\ntype = \"lora\"\n[offload]\ntype = \"none\"\n[dataset]\ntype = \"synthetic\"\n";
    auto recipe = parse_recipe_text(text, "nf4.toml");
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    ResolvedRecipe resolved;
    return validate_recipe(recipe.value(), registry_, &resolved);
  }
};

TEST_F(Nf4Recipe, ValidateChecksBlocksizeAndQuantTypeAtTheirLines) {
  EXPECT_TRUE(validate("blocksize = 128\nquant_type = \"fp4\"\ndouble_quant = false\n").empty());
  auto bad = validate("blocksize = 100\nquant_type = \"nf5\"\n");
  ASSERT_EQ(bad.size(), 2u);
  std::string all = bad[0].str() + "\n" + bad[1].str();
  EXPECT_NE(all.find("nf4.toml:5:"), std::string::npos) << all;
  EXPECT_NE(all.find("quantizer.blocksize = 100 is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096"),
            std::string::npos) << all;
  EXPECT_NE(all.find("nf4.toml:6:"), std::string::npos) << all;
  EXPECT_NE(all.find("quantizer.quant_type = \"nf5\" is not one of \"nf4\", \"fp4\""), std::string::npos) << all;
}

}  // namespace
}  // namespace loft::testing_nf4
