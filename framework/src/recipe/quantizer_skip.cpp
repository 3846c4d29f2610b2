// quantizer.skip: which linear sites keep a dense frozen weight (matching, and diagnostics located at the recipe
// entry that names no module).
#include "loft/framework/quantizer_host.h"

#include <optional>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/framework/files.h"
#include "loft/module_pattern.h"
#include "recipe/suggest.h"

namespace loft {

namespace {

constexpr const char* kLinearNames[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// The entry as a ModulePattern, or nothing with the regex error in *error.
std::optional<ModulePattern> compile_entry(const std::string& entry, std::string* error) {
  try {
    return ModulePattern(entry);
  } catch (const std::invalid_argument& e) {
    *error = e.what();
    return std::nullopt;
  }
}

// "model.layers.N." in an entry with N past the last layer: the likely mistake, said plainly.
std::string layer_hint(const std::string& entry, int64_t layers) {
  static const std::regex kLayer(R"((?:^|\.)layers\.(\d+)(?:\.|$))");
  std::smatch m;
  if (!std::regex_search(entry, m, kLayer)) return "";
  const std::string digits = m[1].str();
  if (digits.size() > 9 || std::stoll(digits) < layers) return "";
  return fmt::format("; the model has {} layers (0-{})", layers, layers - 1);
}

}  // namespace

// ---- skip ----

bool skip_entry_matches(const std::string& entry, const std::string& module) {
  std::string error;
  const auto pattern = compile_entry(entry, &error);
  return pattern && pattern->matches(module);
}

std::vector<std::string> skippable_module_names(const Qwen2Config& config) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const char* linear : kLinearNames) names.push_back(fmt::format("model.layers.{}.{}", i, linear));
  }
  names.push_back("lm_head");
  return names;
}

SkipResolution resolve_quantizer_skip(const std::vector<std::string>& entries, const Qwen2Config& config) {
  SkipResolution out;
  const std::vector<std::string> names = skippable_module_names(config);
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& entry = entries[i];
    std::string error;
    const auto pattern = compile_entry(entry, &error);
    if (!pattern) {
      out.problems.emplace_back(i, fmt::format("quantizer.skip entry \"{}\" is not a valid regex ({}); after \"re:\" "
                                               "write an ECMAScript regex matched against the whole module name",
                                               entry, error));
      continue;
    }
    bool any = false;
    for (const auto& name : names) {
      if (!pattern->matches(name)) continue;
      any = true;
      if (name != "lm_head") out.sites.insert(name);
    }
    if (any) continue;
    const int64_t last = config.num_hidden_layers - 1;
    const std::string layers = fmt::format("model.layers.<0-{}>.self_attn.{{q,k,v,o}}_proj, "
                                           "model.layers.<0-{}>.mlp.{{gate,up,down}}_proj and lm_head", last, last);
    if (pattern->is_regex()) {
      out.problems.emplace_back(i, fmt::format("quantizer.skip entry \"{}\" matches no module of the model; the regex "
                                               "must match a whole name: {}", entry, layers));
      continue;
    }
    std::vector<std::string> candidates = names;
    for (const char* linear : kLinearNames) {
      candidates.push_back(linear);
      const std::string s(linear);
      candidates.push_back(s.substr(s.find('.') + 1));
    }
    out.problems.emplace_back(
        i, fmt::format("quantizer.skip entry \"{}\" names no module of the model{}{}; write a full name, a dotted suffix "
                       "(\"down_proj\", \"mlp.down_proj\") or \"re:<regex>\" of {}",
                       entry, did_you_mean(entry, candidates), layer_hint(entry, config.num_hidden_layers), layers));
  }
  return out;
}

std::vector<Diagnostic> check_quantizer_skip(const Recipe& recipe, const Qwen2Config* config) {
  auto q = recipe.sections.find("quantizer");
  auto m = recipe.sections.find("model");
  if (q == recipe.sections.end() || m == recipe.sections.end()) return {};
  auto skip = q->second.entries.find("skip");
  auto path = m->second.entries.find("path");
  if (skip == q->second.entries.end() || path == m->second.entries.end()) return {};
  const auto* entries = std::get_if<std::vector<std::string>>(&skip->second.value);
  const auto* model_path = std::get_if<std::string>(&path->second.value);
  if (entries == nullptr || entries->empty() || model_path == nullptr || model_path->empty()) return {};
  fs::path model_dir = *model_path;
  if (model_dir.is_relative()) model_dir = (fs::absolute(recipe.path).parent_path() / model_dir).lexically_normal();
  const RecipeEntry& e = skip->second;
  auto where = [&](size_t index) { return index < e.item_where.size() ? e.item_where[index] : e.where; };
  std::vector<Diagnostic> out;
  if (config == nullptr) {
    // Without the model only the regexes can be checked.
    for (size_t i = 0; i < entries->size(); ++i) {
      std::string error;
      if (!compile_entry((*entries)[i], &error)) {
        out.push_back({where(i), fmt::format("quantizer.skip entry \"{}\" is not a valid regex ({}); after \"re:\" write "
                                             "an ECMAScript regex", (*entries)[i], error)});
      }
    }
    return out;
  }
  for (const auto& [index, message] : resolve_quantizer_skip(*entries, *config).problems) {
    out.push_back({where(index), fmt::format("{} ({})", message, (model_dir / "config.json").string())});
  }
  return out;
}

}  // namespace loft
