// check_recipe_inputs: the files and plugins a validated recipe names exist and can be used, reported as recipe
// diagnostics (located at the key) before any run starts.
#include <fmt/format.h>

#include "loft/framework/files.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"

namespace loft {

namespace {

bool names_an_input(const std::string& key) {
  return key == "path" || (key.size() > 5 && key.compare(key.size() - 5, 5, "_path") == 0);
}

// Where a key of `section` was written; else its section, else the recipe's first line.
SourceLocation where_of(const Recipe& recipe, const std::string& section, const std::string& key) {
  auto s = recipe.sections.find(section);
  if (s == recipe.sections.end()) return SourceLocation{recipe.path.string(), 1, 1};
  if (auto e = s->second.entries.find(key); e != s->second.entries.end()) return e->second.where;
  return s->second.where;
}

// model.path: a folder with config.json (readable as a Qwen2 config), tokenizer.json and, for pretrained weights,
// model.safetensors or its index.
void check_model_folder(const Recipe& recipe, const ResolvedRecipe& resolved, const RecipeInputChecks& checks,
                        std::vector<Diagnostic>& out) {
  const Options& model = resolved.sections.at("model");
  const std::filesystem::path dir = model.string("path");
  const SourceLocation where = where_of(recipe, "model", "path");
  auto report = [&](const std::string& what) {
    out.push_back({where, fmt::format("model.path = \"{}\" {}", dir.string(), what)});
  };
  if (!fs::is_directory(dir)) {
    report(fmt::format("{}; point it at a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)",
                       fs::exists(dir) ? "is not a folder" : "does not exist"));
    return;
  }
  if (!fs::is_regular_file(dir / "config.json")) {
    report("has no config.json; point it at a Hugging Face model folder (config.json, model.safetensors, "
           "tokenizer.json)");
    return;
  }
  if (!resolved.model_config) {
    auto config = read_qwen2_config(dir / "config.json");
    report(fmt::format("has an unusable config.json: {}",
                       config.ok() ? std::string("unread") : config.status().message()));
    return;
  }
  if (checks.tokenizer && !fs::is_regular_file(dir / "tokenizer.json")) {
    report("has no tokenizer.json (loft tokenizes with the model's Hugging Face tokenizer); copy it from the model's "
           "repository into the folder");
  }
  if (model.string("init") == "pretrained" && !fs::is_regular_file(dir / "model.safetensors") &&
      !fs::is_regular_file(dir / "model.safetensors.index.json")) {
    report("has no model.safetensors or model.safetensors.index.json; download the weights into it, or set "
           "model.init = \"random\" to train from random weights");
  }
}

}  // namespace

std::vector<Diagnostic> check_recipe_inputs(const Recipe& recipe, const ResolvedRecipe& resolved,
                                            PluginRegistry& registry, const RecipeInputChecks& checks) {
  std::vector<Diagnostic> out;
  if (checks.model && resolved.sections.count("model")) check_model_folder(recipe, resolved, checks, out);
  for (const auto& [section, options] : resolved.sections) {
    for (const auto& [key, value] : options.values()) {
      const auto* text = std::get_if<std::string>(&value);
      if (!text || text->empty() || !names_an_input(key) || (section == "model" && key == "path")) continue;
      if (!fs::exists(*text)) {
        out.push_back({where_of(recipe, section, key),
                       fmt::format("{}.{} = \"{}\" does not exist; fix the path (a relative one is resolved against "
                                   "the recipe's folder)", section, key, *text)});
      }
    }
  }
  if (checks.plugins) {
    for (const auto& [section, name] : resolved.plugin_types) {
      if (auto st = registry.load(section_plugin_kind(section), name); !st.ok()) {
        out.push_back({where_of(recipe, section, "type"), st.message()});
      }
    }
  }
  return out;
}

}  // namespace loft
