// peft.targets and peft.layers checked against the model's config.json: every target entry must name an adaptable
// linear of the model (in the selected layers), every layer index must exist. Located at the recipe entry.
#include <algorithm>
#include <optional>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "loft/framework/quantizer_host.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"
#include "loft/module_pattern.h"
#include "recipe/suggest.h"

namespace loft {

namespace {

// "0-3,7" -> {0,1,2,3,7}; nothing when the text is not in that form (the plugin refuses it with its own message).
std::optional<std::set<int64_t>> parse_layer_list(const std::string& text) {
  std::set<int64_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    if (item.empty()) continue;
    const size_t dash = item.find('-', 1);
    const std::string lo_text = item.substr(0, dash), hi_text = dash == std::string::npos ? lo_text : item.substr(dash + 1);
    auto digits = [](const std::string& s) {
      return !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!digits(lo_text) || !digits(hi_text)) return std::nullopt;
    const int64_t lo = std::stoll(lo_text), hi = std::stoll(hi_text);
    if (hi < lo) return std::nullopt;
    for (int64_t i = lo; i <= hi && i - lo < 1000000; ++i) out.insert(i);
  }
  return out;
}

// The layer index of "model.layers.N.…", or -1.
int64_t layer_of(const std::string& module) {
  static const std::string kPrefix = "model.layers.";
  if (module.rfind(kPrefix, 0) != 0) return -1;
  return std::stoll(module.substr(kPrefix.size()));
}

}  // namespace

std::vector<Diagnostic> check_peft_targets(const Recipe& recipe, const ResolvedRecipe& resolved,
                                           const Qwen2Config& config) {
  std::vector<Diagnostic> out;
  auto peft = resolved.sections.find("peft");
  if (peft == resolved.sections.end()) return out;
  const Options& options = peft->second;
  auto written = recipe.sections.find("peft");
  const RecipeSection* section = written == recipe.sections.end() ? nullptr : &written->second;
  const std::string config_json = (std::filesystem::path(resolved.sections.at("model").string("path")) / "config.json").string();
  // Where an unwritten (default) value is blamed: the section's `type`, else the section, else the recipe.
  auto where_of = [&](const std::string& key, size_t item) -> SourceLocation {
    if (section) {
      if (auto e = section->entries.find(key); e != section->entries.end()) {
        return item < e->second.item_where.size() ? e->second.item_where[item] : e->second.where;
      }
      if (auto t = section->entries.find("type"); t != section->entries.end()) return t->second.where;
      return section->where;
    }
    return SourceLocation{recipe.path.string(), 1, 1};
  };
  const int64_t layers = config.num_hidden_layers;
  std::optional<std::set<int64_t>> selected;  // empty: every layer
  if (options.has("layers") && std::holds_alternative<std::string>(options.values().at("layers"))) {
    selected = parse_layer_list(options.string("layers"));
    if (selected && !selected->empty() && *selected->rbegin() >= layers) {
      out.push_back({where_of("layers", 0),
                     fmt::format("peft.layers = \"{}\" names layer {}, but the model has {} decoder layers (0-{}) ({})",
                                 options.string("layers"), *selected->rbegin(), layers, layers - 1, config_json)});
    }
  }
  if (!options.has("targets") || !std::holds_alternative<std::vector<std::string>>(options.values().at("targets"))) {
    return out;
  }
  std::vector<std::string> sites;  // every adaptable linear: lm_head gets no adapter in loft
  for (const auto& name : skippable_module_names(config)) {
    if (name != "lm_head") sites.push_back(name);
  }
  std::vector<std::string> candidates = sites;
  for (const char* s : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    candidates.push_back(s);
    candidates.push_back((std::string(s).size() == 6 ? "self_attn." : "mlp.") + std::string(s));
  }
  const std::string all_sites = fmt::format("model.layers.<0-{0}>.self_attn.{{q,k,v,o}}_proj and "
                                            "model.layers.<0-{0}>.mlp.{{gate,up,down}}_proj", layers - 1);
  const auto targets = options.strings("targets");
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string& entry = targets[i];
    std::optional<ModulePattern> pattern;
    try {
      pattern.emplace(entry);
    } catch (const std::invalid_argument& e) {
      out.push_back({where_of("targets", i), fmt::format("peft.targets entry \"{}\" is not a valid regex ({}); after "
                                                         "\"re:\" write an ECMAScript regex matched against the whole "
                                                         "module name", entry, e.what())});
      continue;
    }
    bool anywhere = false, in_selected = false;
    for (const auto& site : sites) {
      if (!pattern->matches(site)) continue;
      anywhere = true;
      if (!selected || selected->empty() || selected->count(layer_of(site))) in_selected = true;
    }
    if (in_selected) continue;
    std::string message;
    if (anywhere) {
      message = fmt::format("peft.targets entry \"{}\" names no module in peft.layers = \"{}\"; widen peft.layers or "
                            "drop the entry", entry, options.string("layers"));
    } else if (pattern->matches("lm_head")) {
      message = fmt::format("peft.targets entry \"{}\" names lm_head, which loft does not adapt (it stays dense: the "
                            "chunked loss reads it); targets are {}", entry, all_sites);
    } else if (pattern->is_regex()) {
      message = fmt::format("peft.targets entry \"{}\" matches no module of the model; the regex must match a whole "
                            "name: {}", entry, all_sites);
    } else {
      message = fmt::format("peft.targets entry \"{}\" names no module of the model{}; write a module name, a dotted "
                            "suffix (\"q_proj\", \"self_attn.q_proj\") or \"re:<regex>\" of {}",
                            entry, did_you_mean(entry, candidates), all_sites);
    }
    out.push_back({where_of("targets", i), fmt::format("{} ({})", message, config_json)});
  }
  return out;
}

}  // namespace loft
