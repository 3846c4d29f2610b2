// LoRA / DoRA adapters and the method that places them, numerically as Hugging Face PEFT 0.21 computes them.
// Master weights stay fp32; the branch runs in the activations' dtype (PEFT runs it in fp32, see DESIGN.md §6).
#include "loft/memory_cost.h"
#include "lora_method.h"

#include "loft/module_pattern.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/mm.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace loft::peft_lora {
namespace {

enum class Init { kKaiming, kGaussian, kRandom };

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  bool rslora = false;
  bool dora = false;
  Init init = Init::kKaiming;
  std::vector<std::string> targets;           // as written, "re:" prefixes included
  std::vector<ModulePattern> target_patterns;  // the same, compiled
  bool has_regex_target = false;
  std::set<int64_t> layers;                   // empty: every layer
  std::vector<std::string> modules_to_save;   // as written
  uint64_t seed = 0;
  c10::Device device{c10::kCPU};
  double lora_plus_ratio = 0.0;               // LoRA+: B's learning rate / A's; 0 = off

  const char* plugin() const { return dora ? "peft/dora" : "peft/lora"; }
  // PEFT's `scaling` (layer.py update_layer): alpha / r, or alpha / sqrt(r) with rsLoRA.
  double scaling() const { return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r); }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "" -> {}; "0-3,7" -> {0,1,2,3,7}.
std::set<int64_t> parse_layers(const std::string& text) {
  std::set<int64_t> out;
  size_t pos = 0;
  auto bad = [&](const std::string& item) {
    return std::invalid_argument(fmt::format(
        "peft.layers = \"{}\": cannot read '{}'; write decoder layer indices and ranges, e.g. \"0-3,7\"", text, item));
  };
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    pos = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    try {
      size_t used = 0;
      size_t dash = item.find('-', 1);
      int64_t lo = std::stoll(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash)) throw bad(item);
      int64_t hi = lo;
      if (dash != std::string::npos) {
        std::string tail = item.substr(dash + 1);
        hi = std::stoll(tail, &used);
        if (used != tail.size()) throw bad(item);
      }
      if (lo < 0 || hi < lo) throw bad(item);
      for (int64_t i = lo; i <= hi; ++i) out.insert(i);
    } catch (const std::invalid_argument&) {
      throw bad(item);
    } catch (const std::out_of_range&) {
      throw bad(item);
    }
  }
  return out;
}

// splitmix64 finaliser over (seed, FNV-1a of the site name): one RNG stream per site, independent of the order in
// which sites are attached.
uint64_t site_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  uint64_t z = seed ^ (h + 0x9e3779b97f4a7c15ull + (seed << 6) + (seed >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string shape_of(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

class LoraAdapter final : public Adapter {
 public:
  LoraAdapter(std::shared_ptr<const LoraConfig> shared, const LinearSite& site)
      : shared_(std::move(shared)), config_(*shared_), base_(site.base), scaling_(config_.scaling()) {
    const LoraConfig& config = config_;
    TORCH_CHECK(base_ != nullptr, config.plugin(), ": site '", site.name, "' has no base weight");
    // DoRA's own copy of the (small) frozen bias, on the run device. Not site.bias itself: the host moves that
    // tensor home and an offload strategy may replace it and stream its bytes, so a reference here would keep its
    // original storage alive (on the GPU, for every streamed block).
    if (config.dora && site.bias.defined()) {
      bias_ = site.bias.detach().to(site.bias.options().device(config.device), /*non_blocking=*/false, /*copy=*/true);
    }
    at::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(site_seed(config.seed, site.name));
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    at::Tensor a = at::empty({config.r, site.in_features}, f32);
    at::Tensor b = at::empty({site.out_features, config.r}, f32);
    // PEFT reset_lora_parameters: kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    switch (config.init) {
      case Init::kKaiming:
        a.uniform_(-1.0 / std::sqrt(static_cast<double>(site.in_features)),
                   1.0 / std::sqrt(static_cast<double>(site.in_features)), gen);
        b.zero_();
        break;
      case Init::kGaussian:
        a.normal_(0.0, 1.0 / static_cast<double>(config.r), gen);
        b.zero_();
        break;
      case Init::kRandom:  // init_lora_weights=False: both keep nn.Linear's default init.
        a.uniform_(-1.0 / std::sqrt(static_cast<double>(site.in_features)),
                   1.0 / std::sqrt(static_cast<double>(site.in_features)), gen);
        b.uniform_(-1.0 / std::sqrt(static_cast<double>(config.r)), 1.0 / std::sqrt(static_cast<double>(config.r)),
                   gen);
        break;
    }
    lora_a_ = a.to(config.device).set_requires_grad(true);
    lora_b_ = b.to(config.device).set_requires_grad(true);
    if (config.dora) {
      // DoraLinearLayer.update_layer: m = ||W + scaling * B A|| per output row.
      magnitude_ = weight_norm().set_requires_grad(true);
    }
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out, bool training) override {
    TORCH_CHECK(base_out.defined(), config_.plugin(), ": forward needs the base layer's output");
    const auto dtype = x.scalar_type();
    const bool drop = training && config_.dropout > 0.0;
    at::Tensor xd = drop ? at::dropout(x, config_.dropout, /*train=*/true) : x;
    at::Tensor down = at::linear(xd, lora_a_.to(dtype));
    if (!config_.dora) {
      // base_out + scaling * (down B^T) as one GEMM with its epilogue (addmm), not a GEMM, a scale and an add.
      const int64_t out = base_out.size(-1);
      return at::addmm(base_out.reshape({-1, out}), down.reshape({-1, down.size(-1)}), lora_b_.to(dtype).t(), 1.0,
                       scaling_)
          .view(base_out.sizes());
    }
    at::Tensor lora = at::linear(down, lora_b_.to(dtype));

    // DoraLinearLayer.forward: the norm is a constant for autograd (DoRA paper §4.3).
    at::Tensor norm = weight_norm();
    at::Tensor scale = (magnitude_ / norm).view({1, -1}).to(dtype);
    at::Tensor base_no_bias;
    if (drop) {
      // PEFT recomputes the base on the dropped-out input in this case (variants.py DoraLinearVariant.forward).
      base_no_bias = at::linear(xd, base_->dequantize(dtype).to(x.device()));
    } else {
      base_no_bias = bias_.defined() ? base_out - bias_.to(dtype) : base_out;
    }
    return base_out + ((scale - 1) * base_no_bias + scale * lora * scaling_);
  }

  NamedTensors trainable() const override { return state_dict(); }

  NamedTensors state_dict() const override {
    NamedTensors out{{"lora_A.weight", lora_a_}, {"lora_B.weight", lora_b_}};
    if (config_.dora) out.emplace_back("lora_magnitude_vector", magnitude_);
    return out;
  }

  Status load_state_dict(const std::map<std::string, at::Tensor>& state) override {
    const NamedTensors targets = state_dict();
    for (const auto& [name, target] : targets) {
      auto it = state.find(name);
      if (it == state.end()) {
        return Status::NotFound(
            fmt::format("{}: missing '{}' (expected shape {})", config_.plugin(), name, shape_of(target)));
      }
      if (!it->second.defined() || it->second.sizes() != target.sizes()) {
        return Status::InvalidArgument(fmt::format("{}: '{}' has shape {}, expected {}", config_.plugin(), name,
                                                   it->second.defined() ? shape_of(it->second) : "(undefined)",
                                                   shape_of(target)));
      }
      if (!at::isFloatingType(it->second.scalar_type())) {
        return Status::InvalidArgument(fmt::format("{}: '{}' has dtype {}, expected a floating-point tensor",
                                                   config_.plugin(), name, c10::toString(it->second.scalar_type())));
      }
    }
    for (const auto& [name, value] : state) {
      bool known = std::any_of(targets.begin(), targets.end(), [&](const auto& t) { return t.first == name; });
      if (!known) {
        return Status::InvalidArgument(fmt::format("{}: unexpected key '{}' with shape {} (keys: {})", config_.plugin(),
                                                   name, shape_of(value), key_list(targets)));
      }
    }
    at::NoGradGuard no_grad;
    for (const auto& [name, target] : targets) target.copy_(state.at(name));
    return Status::Ok();
  }

  at::Tensor merged_weight(c10::ScalarType dtype) const override {
    at::NoGradGuard no_grad;
    at::Tensor w = base_->dequantize(at::kFloat).to(lora_a_.device());
    // get_delta_weight: (B @ A) * scaling, in fp32.
    at::Tensor merged = w + at::mm(lora_b_, lora_a_) * scaling_;
    if (config_.dora) {
      // DoraLinearVariant.merge_safe: (m / ||W + delta||) * (W + delta).
      merged = (magnitude_ / at::linalg_vector_norm(merged, 2, at::IntArrayRef{1})).view({-1, 1}) * merged;
    }
    return merged.to(dtype);
  }

 private:
  static std::string key_list(const NamedTensors& tensors) {
    std::vector<std::string> names;
    for (const auto& t : tensors) names.push_back(t.first);
    return fmt::format("{}", fmt::join(names, ", "));
  }

  // ||W + scaling * B A|| per output row, fp32, outside autograd.
  at::Tensor weight_norm() const {
    at::NoGradGuard no_grad;
    at::Tensor w = base_->dequantize(at::kFloat).to(lora_a_.device());
    return at::linalg_vector_norm(w + scaling_ * at::mm(lora_b_, lora_a_), 2, at::IntArrayRef{1});
  }

  std::shared_ptr<const LoraConfig> shared_;  // adapters may outlive the method
  const LoraConfig& config_;
  const QuantizedLinear* base_;
  at::Tensor bias_;          // DoRA only: a copy of the frozen bias (see the constructor)
  double scaling_;
  at::Tensor lora_a_;       // [r, in], fp32 master
  at::Tensor lora_b_;       // [out, r], fp32 master
  at::Tensor magnitude_;    // [out], fp32 master, DoRA only
};

class LoraMethod final : public PeftMethod, public PeftMemoryCost {
 public:
  explicit LoraMethod(LoraConfig config)
      : shared_(std::make_shared<const LoraConfig>(std::move(config))), config_(*shared_) {}

  bool targets(const LinearSite& site) const override {
    if (!config_.layers.empty() && (site.layer_index < 0 || config_.layers.count(site.layer_index) == 0)) return false;
    return std::any_of(config_.target_patterns.begin(), config_.target_patterns.end(),
                       [&](const ModulePattern& p) { return p.matches(site.name); });
  }

  std::unique_ptr<Adapter> attach(const LinearSite& site) const override {
    return std::make_unique<LoraAdapter>(shared_, site);
  }

  // loft plan: A [r, in] and B [out, r] (+ DoRA's magnitude [out]), fp32 masters.
  int64_t trainable_elements(const LinearSite& site, bool) const override {
    return config_.r * (site.in_features + site.out_features) + (config_.dora ? site.out_features : 0);
  }
  // What LoraAdapter::forward keeps beyond the site's input: the rank-r intermediate, the casts of A and B to the
  // compute dtype, with dropout its mask (1 byte) and the dropped-out input, with DoRA the base output and B A x.
  int64_t saved_bytes(const LinearSite& site, bool, int64_t tokens, c10::ScalarType dtype) const override {
    const int64_t e = static_cast<int64_t>(c10::elementSize(dtype));
    int64_t bytes = tokens * config_.r * e;
    if (dtype != at::kFloat) bytes += config_.r * (site.in_features + site.out_features) * e;
    if (config_.dropout > 0.0) bytes += tokens * site.in_features * (e + 1);
    if (config_.dora) bytes += 2 * tokens * site.out_features * e;
    return bytes;
  }
  const void* extension(std::string_view id) const override {
    return id == kPeftMemoryCostId ? static_cast<const PeftMemoryCost*>(this) : nullptr;
  }

  // modules_to_save: a parameter trains when its name, or its module's name or dotted suffix, is listed.
  std::vector<std::string> trainable_parameters(const std::vector<std::string>& names) const override {
    std::vector<std::string> out;
    for (const auto& param : names) {
      const auto dot = param.rfind('.');
      const std::string module = dot == std::string::npos ? "" : param.substr(0, dot);
      for (const auto& entry : config_.modules_to_save) {
        if (param == entry || module == entry || ends_with(module, "." + entry)) {
          out.push_back(param);
          break;
        }
      }
    }
    return out;
  }

  // LoRA+ (lora_plus_ratio > 0) as PEFT 0.21's create_loraplus_optimizer groups the tensors: lora_B weights and
  // every 1-D tensor (DoRA magnitudes, trained biases and norm weights) learn at lr x ratio, with weight decay unless
  // the name contains "bias" (PEFT's decay_parameters: Qwen2 has no nn.LayerNorm); everything else (lora_A, the
  // matrices of modules_to_save) learns at lr with weight decay. (PEFT's separate embedding group holds LoRA
  // embedding adapters, which loft does not attach.) Without LoRA+: one group with the host's rule.
  std::vector<ParamGroup> param_groups(const NamedTensors& trainable) const override {
    if (config_.lora_plus_ratio <= 0) return PeftMethod::param_groups(trainable);
    ParamGroup a, b, b_no_decay;
    a.name = "groupA";
    a.weight_decay_scale = 1.0;
    b.name = "groupB";
    b.lr_scale = config_.lora_plus_ratio;
    b.weight_decay_scale = 1.0;
    b_no_decay.name = "groupB_no_decay";
    b_no_decay.lr_scale = config_.lora_plus_ratio;
    b_no_decay.weight_decay_scale = 0.0;
    for (const auto& named : trainable) {
      const std::string& name = named.first;
      if (name.find("lora_B") != std::string::npos || named.second.dim() == 1) {
        (name.find("bias") == std::string::npos ? b : b_no_decay).tensors.push_back(named);
      } else {
        a.tensors.push_back(named);
      }
    }
    return {a, b, b_no_decay};
  }

  std::string adapter_config_json(const std::string& base_model_name_or_path) const override {
    using nlohmann::json;
    json c;
    // Every field PEFT 0.21.2's LoraConfig writes; the ones loft does not use keep PEFT's defaults.
    for (const char* key : {"alora_invocation_tokens", "arrow_config", "auto_mapping", "corda_config", "eva_config",
                            "exclude_modules", "kasa_config", "layer_replication", "layers_pattern",
                            "lora_ga_config", "megatron_config", "monteclora_config", "revision", "target_parameters",
                            "trainable_token_indices", "use_bdlora"}) {
      c[key] = nullptr;
    }
    c["velora_config"] = nullptr;
    c["alpha_pattern"] = json::object();
    c["rank_pattern"] = json::object();
    c["loftq_config"] = json::object();
    c["base_model_name_or_path"] = base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path);
    c["bias"] = "none";
    c["ensure_weight_tying"] = false;
    c["fan_in_fan_out"] = false;
    c["inference_mode"] = true;
    switch (config_.init) {
      case Init::kKaiming: c["init_lora_weights"] = true; break;
      case Init::kGaussian: c["init_lora_weights"] = "gaussian"; break;
      case Init::kRandom: c["init_lora_weights"] = false; break;
    }
    if (config_.layers.empty()) {
      c["layers_to_transform"] = nullptr;
    } else {
      c["layers_to_transform"] = std::vector<int64_t>(config_.layers.begin(), config_.layers.end());
    }
    if (config_.alpha == std::floor(config_.alpha) && std::abs(config_.alpha) < 1e15) {
      c["lora_alpha"] = static_cast<int64_t>(config_.alpha);
    } else {
      c["lora_alpha"] = config_.alpha;
    }
    c["lora_bias"] = false;
    c["lora_dropout"] = config_.dropout;
    c["megatron_core"] = "megatron.core";
    if (config_.modules_to_save.empty()) {
      c["modules_to_save"] = nullptr;
    } else {
      // PEFT names modules; a parameter name ("model.embed_tokens.weight") is written as its module.
      std::vector<std::string> modules;
      for (std::string m : config_.modules_to_save) {
        for (const char* leaf : {".weight", ".bias"}) {
          if (ends_with(m, leaf)) m.resize(m.size() - std::string(leaf).size());
        }
        if (std::find(modules.begin(), modules.end(), m) == modules.end()) modules.push_back(m);
      }
      c["modules_to_save"] = modules;
    }
    c["peft_type"] = "LORA";
    c["peft_version"] = "0.21.2";  // the PEFT release whose format this mirrors
    c["qalora_group_size"] = 16;
    c["r"] = config_.r;
    c["target_modules"] = target_modules_json();
    c["task_type"] = "CAUSAL_LM";
    c["use_dora"] = config_.dora;
    c["use_qalora"] = false;
    c["use_rslora"] = config_.rslora;
    return c.dump(2);
  }

 private:
  // A list of names when every entry is plain; otherwise one regex that PEFT full-matches against module names,
  // with each plain entry `n` written as `(?:.*\.)?n` (PEFT's "equal or dotted suffix" rule).
  nlohmann::json target_modules_json() const {
    if (!config_.has_regex_target) return config_.targets;
    std::vector<std::string> parts;
    for (const auto& t : config_.targets) {
      if (t.rfind("re:", 0) == 0) {
        parts.push_back(config_.targets.size() == 1 ? t.substr(3) : "(?:" + t.substr(3) + ")");
      } else {
        std::string escaped;
        for (char ch : t) {
          if (std::string("\\^$.|?*+()[]{}").find(ch) != std::string::npos) escaped += '\\';
          escaped += ch;
        }
        parts.push_back("(?:.*\\.)?" + escaped);
      }
    }
    return fmt::format("{}", fmt::join(parts, "|"));
  }

  std::shared_ptr<const LoraConfig> shared_;
  const LoraConfig& config_;
};

}  // namespace

std::unique_ptr<PeftMethod> make_lora_method(const HostContext& ctx, const Options& options, bool dora) {
  LoraConfig c;
  c.dora = dora;
  c.r = options.integer("r");
  c.alpha = options.real("alpha");
  c.dropout = options.real("dropout");
  c.rslora = options.boolean("rslora");
  const std::string& init = options.string("init");
  if (init == "kaiming") {
    c.init = Init::kKaiming;
  } else if (init == "gaussian") {
    c.init = Init::kGaussian;
  } else if (init == "random") {
    c.init = Init::kRandom;
  } else {
    throw std::invalid_argument(fmt::format("peft.init = \"{}\": expected \"kaiming\", \"gaussian\" or \"random\"", init));
  }
  if (c.r < 1) throw std::invalid_argument(fmt::format("peft.r = {}: must be >= 1", c.r));
  if (!(c.dropout >= 0.0 && c.dropout <= 1.0)) {
    throw std::invalid_argument(fmt::format("peft.dropout = {}: must be in [0, 1]", c.dropout));
  }
  c.targets = options.strings("targets");
  if (c.targets.empty()) throw std::invalid_argument("peft.targets is empty: name at least one module (\"q_proj\")");
  for (const auto& t : c.targets) {
    try {
      c.target_patterns.emplace_back(t);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("peft.targets: \"{}\" is not a valid regex: {}", t, e.what()));
    }
    c.has_regex_target = c.has_regex_target || c.target_patterns.back().is_regex();
  }
  c.layers = parse_layers(options.string("layers"));
  if (!c.layers.empty() && c.has_regex_target) {
    // PEFT refuses layers_to_transform with a regex target_modules; keep loft's adapters loadable there.
    throw std::invalid_argument(
        "peft.layers cannot be combined with \"re:\" targets (PEFT ignores layers_to_transform for a regex); "
        "put the layer indices into the regex, e.g. \"re:model\\.layers\\.(0|1)\\..*q_proj\"");
  }
  c.modules_to_save = options.strings("modules_to_save");
  if (options.has("lora_plus_ratio")) c.lora_plus_ratio = options.real("lora_plus_ratio");
  if (!(c.lora_plus_ratio >= 0.0) || !std::isfinite(c.lora_plus_ratio)) {
    throw std::invalid_argument(fmt::format("peft.lora_plus_ratio = {}: must be >= 0 (0 turns LoRA+ off)",
                                            c.lora_plus_ratio));
  }
  c.seed = ctx.seed();
  c.device = ctx.device();
  return std::make_unique<LoraMethod>(std::move(c));
}

}  // namespace loft::peft_lora
