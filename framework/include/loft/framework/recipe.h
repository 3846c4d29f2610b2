// Recipes: TOML files that compose a training run, parsed with source positions, overridden from the command
// line, and validated against the framework's and each plugin's declared schema.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loft/options.h"
#include "loft/status.h"

namespace loft {

class PluginRegistry;

struct SourceLocation {
  std::string file;  // recipe path, or "<command line>"
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:column"
};

struct RecipeEntry {
  OptionValue value;  // as written: bool, int, float, string or list of strings
  SourceLocation where;
  std::vector<SourceLocation> item_where;  // a list's items, in order (an override's items share its location)
};

struct RecipeSection {
  std::string name;
  SourceLocation where;
  std::map<std::string, RecipeEntry> entries;
};

// One finding of parsing or validation, located in the recipe.
struct Diagnostic {
  SourceLocation where;
  std::string message;
  std::string str() const;  // "file:line:col: error: message"
};

// A recipe as written, plus command-line overrides. Values are not yet checked against any schema.
struct Recipe {
  std::filesystem::path path;
  std::map<std::string, RecipeSection> sections;
  std::vector<Diagnostic> problems;  // structural problems found while parsing (nested tables, mixed lists)
};

// TOML syntax errors come back as a Status "file:line:col: invalid TOML: ...".
StatusOr<Recipe> parse_recipe_file(const std::filesystem::path& path);
StatusOr<Recipe> parse_recipe_text(std::string_view text, const std::string& source_name);

// Applies "section.key=value"; value is read as TOML (50, 2e-4, true, ["a","b"], "s") and otherwise as a string.
// `position` is the override's index on the command line (for locations).
Status apply_override(Recipe& recipe, const std::string& assignment, int position);

// The framework's own sections and the plugin sections (whose `type` selects a plugin of that kind).
const std::map<std::string, OptionSchema>& framework_schema();
bool is_plugin_section(const std::string& section);

// A validated recipe: every known section with every declared option resolved (recipe value or default).
// Plugin sections hold the plugin's options; their `type` is in plugin_types. Options whose name is `path` or ends
// in `_path` or `_dir` are made absolute relative to the recipe's folder.
struct Qwen2Config;

struct ResolvedRecipe {
  std::filesystem::path path;
  std::map<std::string, Options> sections;
  std::map<std::string, std::string> plugin_types;  // kind -> plugin name
  // model.path's config.json, read once by validate_recipe (null when it is missing or unreadable): the checks use
  // it and the run builds the model from it, so a run reads config.json once.
  std::shared_ptr<const Qwen2Config> model_config;
  // The resolved recipe as TOML, what a run folder keeps.
  std::string to_toml() const;
};

// Checks everything and reports every problem at once (empty = valid). Fills `out` when valid and out != nullptr.
// Also checks quantizer.skip against the model's config.json when that file is readable (quantizer_host.h).
std::vector<Diagnostic> validate_recipe(const Recipe& recipe, const PluginRegistry& registry, ResolvedRecipe* out);

// Parses "15GiB", "512MiB", "1.5GB", "1000000" into bytes.
StatusOr<uint64_t> parse_byte_size(const std::string& text);

}  // namespace loft
