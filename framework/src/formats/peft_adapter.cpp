// PEFT adapter folders: writing what Python PEFT's save_pretrained writes, and loading such a folder into a model
// whose recipe describes the same adapter.
#include "loft/framework/files.h"
#include "loft/framework/peft_adapter.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "loft/framework/atomic_file.h"
#include "loft/framework/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace loft {

namespace {

constexpr const char* kPrefix = "base_model.model.";  // PeftModelForCausalLM's prefix of the wrapped model

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Names (relative to the model) of the tensors the adapters own, so the rest of trainable_parameters() is
// modules_to_save.
std::set<std::string> adapter_owned_names(Qwen2Model& model) {
  std::set<std::string> out;
  for (auto& [site, adapter] : model.adapters()) {
    for (auto& [name, t] : adapter->trainable()) out.insert(site->name + "." + name);
  }
  return out;
}

// A config field in a comparable form: lists as sorted sets, a missing field or null as null, numbers as double.
json normalized(const json& config, const std::string& key, const json& absent) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absent;
  if (it->is_array()) {
    std::vector<json> items(it->begin(), it->end());
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    return items.empty() ? absent : json(items);
  }
  if (it->is_number()) {  // 16 and 16.0 are the same alpha
    const double v = it->get<double>();
    return v == static_cast<double>(static_cast<int64_t>(v)) ? json(static_cast<int64_t>(v)) : json(v);
  }
  return *it;
}

std::string shape_of(const at::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

// The recipe's spelling of a PEFT config value, for "set peft.X = ..." hints.
std::string recipe_value(const json& v) { return v.is_null() ? "[] (or leave it out)" : v.dump(); }

// Every disagreement between the folder's adapter_config.json and the method's own config.
std::vector<std::string> config_mismatches(const json& file, const json& mine) {
  std::vector<std::string> out;
  struct Field {
    const char* key;
    const char* recipe_key;
    json absent;
  };
  const Field fields[] = {{"peft_type", "peft.type", nullptr},
                          {"r", "peft.r", 8},
                          {"lora_alpha", "peft.alpha", 8},
                          {"use_rslora", "peft.rslora", false},
                          {"use_dora", "peft.type", false},
                          {"target_modules", "peft.targets", nullptr},
                          {"layers_to_transform", "peft.layers", nullptr},
                          {"modules_to_save", "peft.modules_to_save", nullptr}};
  for (const auto& f : fields) {
    json theirs = normalized(file, f.key, f.absent), ours = normalized(mine, f.key, f.absent);
    if (theirs == ours) continue;
    std::string hint;
    if (f.key == std::string("use_dora")) {
      hint = fmt::format("set peft.type = \"{}\"", theirs == json(true) ? "dora" : "lora");
    } else if (f.key == std::string("peft_type")) {
      hint = "loft loads LoRA and DoRA adapters (peft_type \"LORA\")";
    } else if (f.key == std::string("target_modules") && theirs.is_string()) {
      hint = fmt::format("set peft.targets = [\"re:{}\"]", theirs.get<std::string>());
    } else if (f.key == std::string("layers_to_transform") && theirs.is_array()) {
      std::vector<std::string> layers;
      for (const auto& l : theirs) layers.push_back(recipe_value(l));
      hint = fmt::format("set peft.layers = \"{}\"", fmt::join(layers, ","));
    } else {
      hint = fmt::format("set {} = {}", f.recipe_key, recipe_value(theirs));
    }
    out.push_back(fmt::format("{} = {}, but the recipe gives {}; {}", f.key, theirs.dump(), ours.dump(), hint));
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    auto it = file.find(pattern);
    if (it != file.end() && !it->is_null() && !it->empty()) {
      out.push_back(fmt::format("{} = {}: loft gives every adapted layer the same r and alpha; retrain without {}",
                                pattern, it->dump(), pattern));
    }
  }
  if (auto it = file.find("bias"); it != file.end() && it->is_string() && it->get<std::string>() != "none") {
    out.push_back(fmt::format("bias = {}: loft adapters train no biases; use an adapter saved with bias=\"none\"",
                              it->dump()));
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> peft_adapter_tensors(Qwen2Model& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto cpu = [](const at::Tensor& t) { return t.detach().to(at::kCPU).contiguous(); };
  for (auto& [site, adapter] : model.adapters()) {
    for (auto& [key, t] : adapter->state_dict()) out.emplace_back(kPrefix + site->name + "." + key, cpu(t));
  }
  // modules_to_save: PEFT saves the trained copy under the original module's name.
  const std::set<std::string> owned = adapter_owned_names(model);
  for (auto& [name, t] : model.trainable_parameters()) {
    if (owned.count(name) == 0) out.emplace_back(kPrefix + name, cpu(t));
  }
  return out;
}

Status save_peft_adapter(Qwen2Model& model, const PeftMethod& method, const std::string& base_model_name_or_path,
                         const fs::path& out) {
  const std::string config = method.adapter_config_json(base_model_name_or_path);
  if (config.empty()) {
    return Status::InvalidArgument("this PEFT method trains whole weights and has no PEFT adapter format");
  }
  if (auto st = fs::create_directories(out); !st.ok()) return st;
  if (auto st = write_safetensors(out / "adapter_model.safetensors", peft_adapter_tensors(model), {{"format", "pt"}});
      !st.ok()) {
    return st;
  }
  return write_file_atomically(out / "adapter_config.json", config);
}

Status load_peft_adapter(Qwen2Model& model, const PeftMethod& method, const fs::path& folder) {
  const fs::path config_path = folder / "adapter_config.json", tensors_path = folder / "adapter_model.safetensors";
  const std::string mine_text = method.adapter_config_json("");
  if (mine_text.empty()) {
    return Status::InvalidArgument(fmt::format(
        "peft.adapter_path = {}: this PEFT method trains whole weights and cannot load a PEFT adapter; use "
        "peft.type = \"lora\" or \"dora\" with the adapter's r, alpha and targets", folder.string()));
  }
  std::ifstream in(config_path);
  if (!in) {
    return Status::NotFound(fmt::format("peft.adapter_path: no {} (a PEFT adapter folder holds adapter_config.json "
                                        "and adapter_model.safetensors, as PeftModel.save_pretrained writes them)",
                                        config_path.string()));
  }
  json file;
  try {
    file = json::parse(in);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("{} is not valid JSON: {}", config_path.string(), e.what()));
  }
  if (!file.is_object()) return Status::InvalidArgument(fmt::format("{} is not a JSON object", config_path.string()));
  const auto mismatches = config_mismatches(file, json::parse(mine_text));
  if (!mismatches.empty()) {
    return Status::InvalidArgument(fmt::format("{} does not describe the adapter the recipe attaches:\n  {}",
                                               config_path.string(), fmt::join(mismatches, "\n  ")));
  }

  auto opened = SafetensorsFile::open(tensors_path);
  if (!opened.ok()) return opened.status();
  const SafetensorsFile& st = *opened.value();
  std::set<std::string> unused;
  for (const auto& info : st.tensors()) unused.insert(info.name);

  for (auto& [site, adapter] : model.adapters()) {
    const std::string prefix = kPrefix + site->name + ".";
    std::map<std::string, at::Tensor> state;
    for (const auto& info : st.tensors()) {
      if (!starts_with(info.name, prefix)) continue;
      std::string key = info.name.substr(prefix.size());
      // PEFT before 0.13 saved DoRA's magnitude as a module weight.
      if (key == "lora_magnitude_vector.weight") key = "lora_magnitude_vector";
      state[key] = st.tensor(info.name);
      unused.erase(info.name);
    }
    if (auto s = adapter->load_state_dict(state); !s.ok()) {
      return Status::InvalidArgument(fmt::format("{}: {}: {}", tensors_path.string(), site->name, s.message()));
    }
  }
  const std::set<std::string> owned = adapter_owned_names(model);
  at::NoGradGuard no_grad;
  for (auto& [name, t] : model.trainable_parameters()) {
    if (owned.count(name) != 0) continue;
    const std::string key = kPrefix + name;
    const TensorInfo* info = st.find(key);
    if (info == nullptr) {
      return Status::NotFound(fmt::format("{}: no '{}' (shape {}), which peft.modules_to_save trains; was the adapter "
                                          "saved with those modules_to_save?", tensors_path.string(), key, shape_of(t)));
    }
    at::Tensor saved = st.tensor(key);
    if (saved.sizes() != t.sizes()) {
      return Status::InvalidArgument(fmt::format("{}: '{}' has shape {}, the model has {}", tensors_path.string(), key,
                                                 shape_of(saved), shape_of(t)));
    }
    t.copy_(saved);
    unused.erase(key);
  }
  if (!unused.empty()) {
    std::vector<std::string> names(unused.begin(), unused.end());
    if (names.size() > 4) {
      names.resize(4);
      names.push_back(fmt::format("... {} in all", unused.size()));
    }
    return Status::InvalidArgument(fmt::format(
        "{}: tensors that no adapted layer or modules_to_save entry of the recipe takes: {}; check peft.targets, "
        "peft.layers and peft.modules_to_save against {}", tensors_path.string(), fmt::join(names, ", "),
        config_path.string()));
  }
  return Status::Ok();
}

}  // namespace loft
