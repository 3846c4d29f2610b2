// Parameter groups on the host: transformers' no-decay rule and the checks a PEFT method's groups must pass.
#include "loft/framework/param_groups.h"

#include <cctype>
#include <cmath>
#include <map>
#include <regex>
#include <set>

#include <fmt/format.h>

namespace loft {

bool default_weight_decay_applies(const std::string& name) {
  // transformers 5.24 Trainer.get_decay_parameter_names: forbidden_name_patterns, searched in the lower-cased name.
  static const std::regex kNoDecay(R"(bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.))");
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return !std::regex_search(lower, kNoDecay);
}

StatusOr<std::vector<ParamGroup>> resolve_param_groups(const NamedTensors& trainable, std::vector<ParamGroup> proposed,
                                                       double weight_decay, const std::string& who) {
  std::map<std::string, const at::Tensor*> wanted;
  for (const auto& [name, t] : trainable) wanted[name] = &t;
  std::set<std::string> seen, group_names;
  std::vector<ParamGroup> out;
  for (auto& g : proposed) {
    if (!group_names.insert(g.name).second) {
      return Status::Internal(fmt::format("{}: parameter group '{}' is proposed twice", who, g.name));
    }
    if (!std::isfinite(g.lr_scale) || g.lr_scale < 0) {
      return Status::Internal(fmt::format("{}: parameter group '{}' has lr_scale {}; it must be finite and >= 0", who,
                                          g.name, g.lr_scale));
    }
    if (g.weight_decay_scale && (!std::isfinite(*g.weight_decay_scale) || *g.weight_decay_scale < 0)) {
      return Status::Internal(fmt::format("{}: parameter group '{}' has weight_decay_scale {}; it must be finite and "
                                          ">= 0", who, g.name, *g.weight_decay_scale));
    }
    for (const auto& [name, t] : g.tensors) {
      auto it = wanted.find(name);
      if (it == wanted.end() || !it->second->is_same(t)) {
        return Status::Internal(fmt::format("{}: parameter group '{}' holds '{}', which is not one of the model's "
                                            "trainable tensors", who, g.name, name));
      }
      if (!seen.insert(name).second) {
        return Status::Internal(fmt::format("{}: trainable tensor '{}' is in more than one parameter group", who, name));
      }
    }
    if (g.weight_decay_scale) {
      g.weight_decay = weight_decay * *g.weight_decay_scale;
      if (!g.tensors.empty()) out.push_back(std::move(g));
      continue;
    }
    ParamGroup decay = g, no_decay = g;
    decay.tensors.clear();
    no_decay.tensors.clear();
    no_decay.name = g.name + ".no_decay";
    decay.weight_decay = weight_decay;
    no_decay.weight_decay = 0.0;
    for (auto& named : g.tensors) (default_weight_decay_applies(named.first) ? decay : no_decay).tensors.push_back(named);
    if (!decay.tensors.empty()) out.push_back(std::move(decay));
    if (!no_decay.tensors.empty()) out.push_back(std::move(no_decay));
  }
  for (const auto& [name, t] : trainable) {
    if (!seen.count(name)) {
      return Status::Internal(fmt::format("{}: trainable tensor '{}' is in no parameter group", who, name));
    }
  }
  return out;
}

}  // namespace loft
