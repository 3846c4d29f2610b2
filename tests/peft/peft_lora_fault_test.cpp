// peft/lora and peft/dora given bad input: state dicts with missing, misshapen, extra or non-float tensors, and
// options the factory cannot use. Each error names what is wrong; a failed load changes nothing.
#include "peft_test_support.h"

namespace loft::testing_peft {
namespace {

class PeftLoraFault : public PeftFixture {};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(PeftLoraFault, LoadStateDictNamesTheKeyAndBothShapes) {
  for (const std::string plugin : {"lora", "dora"}) {
    SCOPED_TRACE(plugin);
    auto m = method(plugin, {{"r", int64_t{4}}, {"init", std::string("random")}});
    auto s = site("model.layers.0.self_attn.k_proj", torch::randn({8, 16}), torch::randn({8}));
    auto adapter = m->attach(s.site);
    const auto good = state_map(adapter->state_dict());
    const auto before = state_map(adapter->state_dict());

    auto wrong_a = good;
    wrong_a["lora_A.weight"] = torch::zeros({3, 16});
    auto st = adapter->load_state_dict(wrong_a);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(st.message(), "'lora_A.weight'")) << st.message();
    EXPECT_TRUE(contains(st.message(), "[3, 16]") && contains(st.message(), "[4, 16]")) << st.message();
    EXPECT_TRUE(contains(st.message(), "peft/" + plugin)) << st.message();

    auto missing = good;
    missing.erase("lora_B.weight");
    st = adapter->load_state_dict(missing);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kNotFound);
    EXPECT_TRUE(contains(st.message(), "'lora_B.weight'") && contains(st.message(), "[8, 4]")) << st.message();

    auto extra = good;
    extra["lora_C.weight"] = torch::zeros({2});
    st = adapter->load_state_dict(extra);
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(contains(st.message(), "'lora_C.weight'")) << st.message();

    auto ints = good;
    ints["lora_A.weight"] = torch::zeros({4, 16}, torch::kInt);
    st = adapter->load_state_dict(ints);
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(contains(st.message(), "'lora_A.weight'") && contains(st.message(), "Int")) << st.message();

    if (plugin == "dora") {
      auto wrong_m = good;
      wrong_m["lora_magnitude_vector"] = torch::ones({8, 1});
      st = adapter->load_state_dict(wrong_m);
      ASSERT_FALSE(st.ok());
      EXPECT_TRUE(contains(st.message(), "'lora_magnitude_vector'") && contains(st.message(), "[8, 1]") &&
                  contains(st.message(), "[8]"))
          << st.message();
    }
    // Nothing was half-loaded: the first (valid) key of each bad dict was not copied either.
    for (const auto& [k, v] : adapter->state_dict()) EXPECT_TRUE(torch::equal(v, before.at(k))) << k;

    auto halved = good;
    for (auto& [k, v] : halved) v = v * 0.5;
    ASSERT_TRUE(adapter->load_state_dict(halved).ok());
    for (const auto& [k, v] : adapter->state_dict()) EXPECT_TRUE(torch::equal(v, halved.at(k))) << k;
  }
}

TEST_F(PeftLoraFault, UnusableOptionsAreErrorsNamingTheOption) {
  struct Case {
    std::map<std::string, OptionValue> options;
    std::string expect;
  };
  const std::vector<Case> cases{
      {{{"targets", std::vector<std::string>{"re:(q_proj"}}}, "re:(q_proj"},
      {{{"targets", std::vector<std::string>{}}}, "peft.targets"},
      {{{"layers", std::string("0-x")}}, "peft.layers"},
      {{{"layers", std::string("3-1")}}, "peft.layers"},
      {{{"layers", std::string("0"), }, {"targets", std::vector<std::string>{"re:.*q_proj"}}}, "peft.layers"},
  };
  for (const std::string plugin : {"lora", "dora"}) {
    for (const auto& c : cases) {
      auto m = registry_.create_peft(plugin, ctx_, options("peft", plugin, c.options));
      ASSERT_FALSE(m.ok()) << c.expect;
      EXPECT_TRUE(contains(m.status().message(), c.expect)) << m.status().message();
    }
  }
}

TEST_F(PeftLoraFault, ForwardWithoutBaseOutputIsRefused) {
  auto m = method("lora");
  auto s = site("model.layers.0.self_attn.q_proj", torch::randn({8, 8}));
  auto adapter = m->attach(s.site);
  EXPECT_THROW(adapter->forward(torch::randn({2, 8}), torch::Tensor(), false), c10::Error);
}

}  // namespace
}  // namespace loft::testing_peft
