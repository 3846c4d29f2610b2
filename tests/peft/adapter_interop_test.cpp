// Model-level adapter interop with Hugging Face PEFT 0.21.2 on a transformers-written Qwen2 (make_adapter_fixtures.py):
// loft loads PEFT's LoRA, rsLoRA, DoRA and modules_to_save adapters and gives PEFT's logits; an adapter loft saves has
// PEFT's exact key layout and PEFT, loading it, gives loft's logits (check_loft_adapter.py); adapters that disagree
// with the recipe are refused with the key to change.
#include <cstdlib>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "loft/framework/files.h"
#include "loft/framework/peft_adapter.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/safetensors.h"
#include "peft_test_support.h"

namespace fs = std::filesystem;

namespace loft::testing_peft {
namespace {

const fs::path kFixtures = LOFT_ADAPTER_FIXTURE_DIR;
// max |loft - PEFT| / max |PEFT| over the real (unpadded) positions of both rows, fp32 on the CPU.
constexpr double kLogitsTolerance = 1e-5;

struct Case {
  std::string folder, plugin;
  std::map<std::string, OptionValue> options;
};

const std::vector<std::string> kAttention = {"q_proj", "k_proj", "v_proj", "o_proj"};

std::vector<Case> cases() {
  return {{"lora", "lora", {{"r", int64_t{8}}, {"alpha", 16.0}}},
          {"rslora", "lora", {{"r", int64_t{8}}, {"alpha", 16.0}, {"rslora", true}, {"targets", kAttention}}},
          {"dora", "dora", {{"r", int64_t{4}}, {"alpha", 8.0},
                            {"targets", std::vector<std::string>{"q_proj", "v_proj", "up_proj", "down_proj"}}}},
          {"mts", "lora", {{"r", int64_t{4}}, {"alpha", 8.0}, {"targets", std::vector<std::string>{"q_proj", "v_proj"}},
                           {"modules_to_save", std::vector<std::string>{"embed_tokens", "lm_head", "model.norm"}}}}};
}

std::map<std::string, at::Tensor> read_all(const fs::path& file) {
  auto f = SafetensorsFile::open(file);
  EXPECT_TRUE(f.ok()) << f.status().message();
  std::map<std::string, at::Tensor> out;
  if (!f.ok()) return out;
  for (const auto& info : f.value()->tensors()) out[info.name] = f.value()->tensor(info.name).clone();
  return out;
}

double real_positions_error(const at::Tensor& logits, const at::Tensor& expected, const at::Tensor& lengths) {
  double worst = 0;
  for (int64_t b = 0; b < logits.size(0); ++b) {
    const int64_t len = lengths[b].item<int64_t>();
    worst = std::max(worst, max_rel_error(logits[b].slice(0, 0, len), expected[b].slice(0, 0, len)));
  }
  return worst;
}

class AdapterInterop : public PeftFixture {
 protected:
  void SetUp() override {
    PeftFixture::SetUp();
    ASSERT_TRUE(fs::exists(kFixtures / "fixtures.done")) << "run the peft.adapter_fixtures test first";
  }
  std::unique_ptr<Qwen2Model> build(PeftMethod& method) {
    ModelOptions mo;
    mo.make_linear = [this](const at::Tensor& w, const std::string& site) { return quantizer_->quantize(w, site); };
    mo.peft = &method;
    auto model = Qwen2Model::load(kFixtures / "base", mo);
    EXPECT_TRUE(model.ok()) << model.status().message();
    return model.ok() ? std::move(model.value()) : nullptr;
  }
  fs::path scratch(const std::string& name) {
    fs::path dir = fs::path(LOFT_BINARY_DIR) / "tests" / "adapter_interop" / name;
    EXPECT_TRUE(remove_tree(dir).ok());
    fs::create_directories(dir);
    return dir;
  }
};

TEST_F(AdapterInterop, LoftLoadsPeftAdaptersWithPeftLogits) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.folder);
    auto method = this->method(c.plugin, c.options);
    ASSERT_NE(method, nullptr);
    auto model = build(*method);
    ASSERT_NE(model, nullptr);
    const auto before = model->logits(read_all(kFixtures / c.folder / "reference.safetensors")["input_ids"]);
    auto st = load_peft_adapter(*model, *method, kFixtures / c.folder);
    ASSERT_TRUE(st.ok()) << st.message();
    auto ref = read_all(kFixtures / c.folder / "reference.safetensors");
    const at::Tensor logits = model->logits(ref["input_ids"], ref["lengths"]);
    const double err = real_positions_error(logits, ref["logits"], ref["lengths"]);
    std::printf("%s: loft vs PEFT logits, max relative error %.3g\n", c.folder.c_str(), err);
    EXPECT_LT(err, kLogitsTolerance);
    // The adapter matters: without it the logits are far from PEFT's.
    EXPECT_GT(max_rel_error(before, ref["logits"]), 100 * kLogitsTolerance);
  }
}

TEST_F(AdapterInterop, LoftSavesPeftLayoutAndPeftReproducesLoftLogits) {
  std::vector<std::string> folders;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.folder);
    auto method = this->method(c.plugin, c.options);
    ASSERT_NE(method, nullptr);
    auto model = build(*method);
    ASSERT_NE(model, nullptr);
    ASSERT_TRUE(load_peft_adapter(*model, *method, kFixtures / c.folder).ok());
    // Move every trainable tensor away from what PEFT wrote, so PEFT can only match by reading loft's file.
    {
      at::NoGradGuard no_grad;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
      for (auto& [name, t] : model->trainable_parameters()) t.add_(at::randn(t.sizes(), gen) * 0.02);
    }
    const fs::path out = scratch(c.folder);
    auto st = save_peft_adapter(*model, *method, (kFixtures / "base").string(), out);
    ASSERT_TRUE(st.ok()) << st.message();

    // PEFT's layout: the same keys with the same shapes as PEFT's own save_pretrained.
    auto theirs = read_all(kFixtures / c.folder / "adapter_model.safetensors"), ours = read_all(out / "adapter_model.safetensors");
    std::set<std::string> their_keys, our_keys;
    for (auto& [k, t] : theirs) their_keys.insert(k);
    for (auto& [k, t] : ours) {
      our_keys.insert(k);
      if (theirs.count(k)) EXPECT_EQ(t.sizes(), theirs[k].sizes()) << k;
    }
    EXPECT_EQ(our_keys, their_keys);
    auto their_config = nlohmann::json::parse(std::ifstream(kFixtures / c.folder / "adapter_config.json"));
    auto our_config = nlohmann::json::parse(std::ifstream(out / "adapter_config.json"));
    for (const char* key : {"peft_type", "r", "lora_alpha", "use_rslora", "use_dora", "modules_to_save", "bias"}) {
      EXPECT_EQ(our_config[key], their_config[key]) << key;
    }

    // loft reloads its own file exactly.
    auto again = this->method(c.plugin, c.options);
    auto reloaded = build(*again);
    ASSERT_TRUE(load_peft_adapter(*reloaded, *again, out).ok());
    auto ref = read_all(kFixtures / c.folder / "reference.safetensors");
    const at::Tensor logits = model->logits(ref["input_ids"], ref["lengths"]);
    EXPECT_TRUE(at::equal(reloaded->logits(ref["input_ids"], ref["lengths"]), logits));
    ASSERT_TRUE(write_safetensors(out / "loft_logits.safetensors",
                                  {{"input_ids", ref["input_ids"]}, {"lengths", ref["lengths"]}, {"logits", logits}},
                                  {}).ok());
    folders.push_back(out.string());
  }
  // Python PEFT loads each folder (every tensor taken up) and its logits equal loft's.
  std::string cmd = std::string(LOFT_PYTHON) + " " + LOFT_SOURCE_DIR + "/tests/peft/check_loft_adapter.py " +
                    (kFixtures / "base").string();
  for (const auto& f : folders) cmd += " " + f;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Copies a fixture adapter folder with its tensors edited by `edit`.
fs::path edited_copy(const std::string& folder, const fs::path& out,
                     const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  auto all = read_all(kFixtures / folder / "adapter_model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors(all.begin(), all.end());
  edit(tensors);
  EXPECT_TRUE(write_safetensors(out / "adapter_model.safetensors", tensors, {{"format", "pt"}}).ok());
  std::filesystem::copy_file(kFixtures / folder / "adapter_config.json", out / "adapter_config.json",
                std::filesystem::copy_options::overwrite_existing);
  return out;
}

TEST_F(AdapterInterop, RefusesAdaptersTheRecipeDoesNotDescribe) {
  auto load = [&](const std::string& plugin, const std::map<std::string, OptionValue>& options, const fs::path& dir) {
    auto method = this->method(plugin, options);
    auto model = build(*method);
    return load_peft_adapter(*model, *method, dir).message();
  };
  const auto lora = cases()[0].options;
  // Config disagreements, every one reported with the recipe key to change.
  std::string msg = load("lora", {{"r", int64_t{16}}, {"alpha", 32.0}, {"rslora", true}}, kFixtures / "lora");
  EXPECT_NE(msg.find("r = 8, but the recipe gives 16; set peft.r = 8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lora_alpha = 16, but the recipe gives 32; set peft.alpha = 16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("use_rslora = false, but the recipe gives true; set peft.rslora = false"), std::string::npos) << msg;
  msg = load("lora", cases()[2].options, kFixtures / "dora");
  EXPECT_NE(msg.find("set peft.type = \"dora\""), std::string::npos) << msg;
  msg = load("lora", {{"r", int64_t{8}}, {"alpha", 16.0}, {"targets", kAttention}}, kFixtures / "lora");
  EXPECT_NE(msg.find("target_modules = "), std::string::npos) << msg;
  EXPECT_NE(msg.find("set peft.targets = [\"down_proj\""), std::string::npos) << msg;
  msg = load("lora", lora, kFixtures / "mts");
  EXPECT_NE(msg.find("modules_to_save = [\"embed_tokens\",\"lm_head\",\"model.norm\"]"), std::string::npos) << msg;
  msg = load("full", {}, kFixtures / "lora");
  EXPECT_NE(msg.find("cannot load a PEFT adapter"), std::string::npos) << msg;
  msg = load("lora", lora, kFixtures / "nowhere");
  EXPECT_NE(msg.find("no " + (kFixtures / "nowhere" / "adapter_config.json").string()), std::string::npos) << msg;

  // Tensor problems: a missing key, a wrong shape, a tensor nothing takes.
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj.";
  fs::path dir = edited_copy("lora", scratch("missing"), [&](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](auto& kv) { return kv.first == q0 + "lora_B.weight"; }), t.end());
  });
  msg = load("lora", lora, dir);
  EXPECT_NE(msg.find("model.layers.0.self_attn.q_proj: peft/lora: missing 'lora_B.weight'"), std::string::npos) << msg;
  dir = edited_copy("lora", scratch("shape"), [&](auto& t) {
    for (auto& [k, v] : t) {
      if (k == q0 + "lora_A.weight") v = v.narrow(0, 0, 4).contiguous();
    }
  });
  msg = load("lora", lora, dir);
  EXPECT_NE(msg.find("'lora_A.weight' has shape [4, 64], expected [8, 64]"), std::string::npos) << msg;
  dir = edited_copy("lora", scratch("extra"), [&](auto& t) {
    t.emplace_back("base_model.model.model.layers.0.self_attn.q_norm.lora_A.weight", at::zeros({8, 64}));
  });
  msg = load("lora", lora, dir);
  EXPECT_NE(msg.find("tensors that no adapted layer or modules_to_save entry of the recipe takes: "
                     "base_model.model.model.layers.0.self_attn.q_norm.lora_A.weight"), std::string::npos) << msg;
}

}  // namespace
}  // namespace loft::testing_peft
