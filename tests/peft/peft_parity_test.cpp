// peft/lora and peft/dora against Hugging Face PEFT 0.21: outputs, gradients and merged weights on every linear
// of a tiny Qwen2 (non-square, with and without bias), and adapter_config.json / targeting / saved keys.
// The reference comes from make_peft_reference.py, run here once per script version (raw float32 + JSON).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>


#include <nlohmann/json.hpp>

#include "../support/python_reference.h"
#include "peft_test_support.h"

namespace loft::testing_peft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kTolerance = 1e-5;

using testing::read_text;

fs::path reference_dir() {
  return testing::python_reference_dir(fs::path(LOFT_SOURCE_DIR) / "tests/peft/make_peft_reference.py",
                                       "peft_reference");
}

class PeftParity : public PeftFixture {
 protected:
  static void SetUpTestSuite() {
    dir_ = reference_dir();
    if (!dir_.empty()) reference_ = json::parse(read_text(dir_ / "reference.json"));
  }
  void SetUp() override {
    PeftFixture::SetUp();
    ASSERT_FALSE(reference_.is_null()) << "no PEFT reference data";
  }
  static torch::Tensor tensor(const json& entry) {
    std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
    auto t = torch::empty(shape, torch::kFloat);
    std::ifstream f(dir_ / entry.at("file").get<std::string>(), std::ios::binary);
    f.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
    EXPECT_TRUE(f.good()) << entry.dump();
    return t;
  }
  static std::map<std::string, OptionValue> loft_options(const json& o) {
    std::map<std::string, OptionValue> out;
    for (const auto& [k, v] : o.items()) {
      if (v.is_boolean()) out[k] = v.get<bool>();
      else if (v.is_number_integer()) out[k] = v.get<int64_t>();
      else if (v.is_number()) out[k] = v.get<double>();
      else if (v.is_string()) out[k] = v.get<std::string>();
      else out[k] = v.get<std::vector<std::string>>();
    }
    return out;
  }
  void numeric_case(const std::string& case_name);
  void config_case(const std::string& case_name);

  static fs::path dir_;
  static json reference_;
};
fs::path PeftParity::dir_;
json PeftParity::reference_;

void PeftParity::numeric_case(const std::string& case_name) {
  const json* found = nullptr;
  for (const auto& c : reference_.at("numeric")) {
    if (c.at("name") == case_name) found = &c;
  }
  ASSERT_NE(found, nullptr) << case_name;
  const json& c = *found;
  const std::string plugin = c.at("plugin");
  auto opts = loft_options(c.at("options"));
  opts["init"] = std::string("random");
  auto m = method(plugin, opts);
  ASSERT_NE(m, nullptr);
  double worst_y = 0, worst_grad = 0, worst_merged = 0;
  for (const auto& s : c.at("sites")) {
    const std::string name = s.at("name");
    SCOPED_TRACE(case_name + " " + name);
    const json& t = s.at("tensors");
    auto w = tensor(t.at("W"));
    auto bias = t.contains("bias") ? tensor(t.at("bias")) : torch::Tensor();
    auto owned = site(name, w, bias, s.at("layer_index").get<int64_t>());
    ASSERT_TRUE(m->targets(owned.site));
    auto adapter = m->attach(owned.site);
    std::map<std::string, torch::Tensor> state{{"lora_A.weight", tensor(t.at("lora_A"))},
                                               {"lora_B.weight", tensor(t.at("lora_B"))}};
    if (t.contains("magnitude")) state["lora_magnitude_vector"] = tensor(t.at("magnitude"));
    auto st = adapter->load_state_dict(state);
    ASSERT_TRUE(st.ok()) << st.message();

    auto x = tensor(t.at("x")).requires_grad_(true);
    auto base_out = owned.base->forward(x);
    if (bias.defined()) base_out = base_out + bias;
    auto y = adapter->forward(x, base_out, /*training=*/false);
    auto y_ref = tensor(t.at("y"));
    worst_y = std::max(worst_y, max_rel_error(y, y_ref));
    EXPECT_LE(max_rel_error(y, y_ref), kTolerance);
    // Dropout 0: training mode computes the same function.
    EXPECT_LE(max_rel_error(adapter->forward(x, base_out, /*training=*/true), y_ref), kTolerance);

    y.backward(tensor(t.at("grad_y")));
    std::map<std::string, std::string> grad_keys{{"lora_A.weight", "grad_lora_A"}, {"lora_B.weight", "grad_lora_B"},
                                                 {"lora_magnitude_vector", "grad_magnitude"}};
    auto trainable = adapter->trainable();
    EXPECT_EQ(trainable.size(), t.contains("magnitude") ? 3u : 2u);
    for (const auto& [key, param] : trainable) {
      ASSERT_TRUE(param.grad().defined()) << key;
      double e = max_rel_error(param.grad(), tensor(t.at(grad_keys.at(key))));
      worst_grad = std::max(worst_grad, e);
      EXPECT_LE(e, kTolerance) << key;
    }
    double ex = max_rel_error(x.grad(), tensor(t.at("grad_x")));
    worst_grad = std::max(worst_grad, ex);
    EXPECT_LE(ex, kTolerance) << "grad x";

    double em = max_rel_error(adapter->merged_weight(torch::kFloat), tensor(t.at("merged")));
    worst_merged = std::max(worst_merged, em);
    EXPECT_LE(em, kTolerance);
  }
  std::printf("[ parity ] %s (%zu sites): max rel error output %.3g, grads %.3g, merged %.3g\n", case_name.c_str(),
              c.at("sites").size(), worst_y, worst_grad, worst_merged);
  RecordProperty("max_rel_error_output", fmt::format("{:.3g}", worst_y));
  RecordProperty("max_rel_error_grads", fmt::format("{:.3g}", worst_grad));
  RecordProperty("max_rel_error_merged", fmt::format("{:.3g}", worst_merged));
}

TEST_F(PeftParity, LoraR4EveryQwen2Linear) { numeric_case("lora_r4"); }
TEST_F(PeftParity, RsLoraR4) { numeric_case("rslora_r4"); }
TEST_F(PeftParity, LoraR1) { numeric_case("lora_r1"); }
TEST_F(PeftParity, DoraR4) { numeric_case("dora_r4"); }
TEST_F(PeftParity, DoraRsLoraR2) { numeric_case("dora_rslora_r2"); }

void PeftParity::config_case(const std::string& case_name) {
  const json* found = nullptr;
  for (const auto& c : reference_.at("configs")) {
    if (c.at("name") == case_name) found = &c;
  }
  ASSERT_NE(found, nullptr) << case_name;
  const json& c = *found;
  auto m = method(c.at("plugin"), loft_options(c.at("options")));
  ASSERT_NE(m, nullptr);

  // adapter_config.json: the same keys and values (peft_version aside; target_modules lists as sets, since PEFT
  // writes them from a Python set).
  json ours = json::parse(m->adapter_config_json(c.at("base_model_name_or_path")));
  json theirs = c.at("adapter_config");
  for (const auto& [key, value] : theirs.items()) {
    if (key == "peft_version") continue;
    ASSERT_TRUE(ours.contains(key)) << "adapter_config.json lacks '" << key << "'";
    if (key == "target_modules" && value.is_array()) {
      EXPECT_EQ(ours[key].get<std::set<std::string>>(), value.get<std::set<std::string>>());
    } else {
      EXPECT_EQ(ours[key], value) << key << ": ours " << ours[key].dump() << ", PEFT " << value.dump();
    }
  }
  for (const auto& [key, value] : ours.items()) EXPECT_TRUE(theirs.contains(key)) << "extra key '" << key << "'";

  // The same modules adapted, and the same tensors saved for each.
  std::set<std::string> targeted = c.at("targeted").get<std::set<std::string>>();
  std::set<std::string> saved = c.at("saved_keys").get<std::set<std::string>>();
  const std::string prefix = "base_model.model.";
  for (const auto& s : c.at("sites")) {
    const std::string name = s.at("name");
    LinearSite probe{name, s.at("short_name"), s.at("layer_index").get<int64_t>(), s.at("in").get<int64_t>(),
                     s.at("out").get<int64_t>(), nullptr, {}};
    EXPECT_EQ(m->targets(probe), targeted.count(name) == 1) << name;
    if (!targeted.count(name)) continue;
    auto owned = site(name, torch::randn({probe.out_features, probe.in_features}), {}, probe.layer_index);
    auto adapter = m->attach(owned.site);
    std::set<std::string> ours_keys, theirs_keys;
    for (const auto& [k, v] : adapter->state_dict()) ours_keys.insert(prefix + name + "." + k);
    for (const auto& k : saved) {
      // PEFT also saves lm_head's base weight when lm_head is targeted (the host's business, not the adapter's).
      if (k.rfind(prefix + name + ".", 0) == 0 && k.find(".base_layer.") == std::string::npos) theirs_keys.insert(k);
    }
    EXPECT_EQ(ours_keys, theirs_keys) << name;
  }
  // modules_to_save: the parameters PEFT saves whole.
  std::vector<std::string> expected;
  for (const auto& k : saved) {
    if (k.find("lora_") == std::string::npos && k.find(".base_layer.") == std::string::npos) {
      expected.push_back(k.substr(prefix.size()));
    }
  }
  EXPECT_EQ(m->trainable_parameters(c.at("other_parameters").get<std::vector<std::string>>()), expected);
}

TEST_F(PeftParity, AdapterConfigDefaults) { config_case("defaults"); }
TEST_F(PeftParity, AdapterConfigGaussianRsLoraLayersModulesToSave) { config_case("gaussian_rslora_layers_save"); }
TEST_F(PeftParity, AdapterConfigDoraRandomInitFractionalAlpha) { config_case("dora_random_qv"); }
TEST_F(PeftParity, AdapterConfigRegexTargets) { config_case("regex"); }
TEST_F(PeftParity, AdapterConfigLmHeadAndDottedSuffix) { config_case("lm_head_and_suffix"); }

}  // namespace
}  // namespace loft::testing_peft
