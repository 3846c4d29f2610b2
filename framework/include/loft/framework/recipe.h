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

// The framework's own sections and the plugin sections (whose `type` selects a plugin of that kind). A section name
// may be dotted: [eval.dataset] is a plugin section of kind dataset inside [eval] (a TOML sub-table).
inline constexpr const char* kEvalDatasetSection = "eval.dataset";
const std::map<std::string, OptionSchema>& framework_schema();
bool is_plugin_section(const std::string& section);
// The plugin kind a section's `type` names ("dataset" for [dataset] and [eval.dataset]); "" for framework sections.
std::string section_plugin_kind(const std::string& section);
// Sections resolved only when the recipe has them ([eval], [eval.dataset]); the others always are, with defaults.
bool is_optional_section(const std::string& section);

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

// One warning line when [eval.dataset] is the training [dataset] (same plugin, same options but the host's
// max_length), so the "held-out" loss is measured on training data; "" otherwise (also without [eval]).
std::string eval_not_held_out_warning(const ResolvedRecipe& recipe);

// Checks everything and reports every problem at once (empty = valid). Fills `out` when valid and out != nullptr.
// Also checks quantizer.skip (quantizer_host.h) and peft.targets against the model's config.json when that file is
// readable. Reads no other file: check_recipe_inputs checks that the files the recipe names exist.
std::vector<Diagnostic> validate_recipe(const Recipe& recipe, const PluginRegistry& registry, ResolvedRecipe* out);

// What check_recipe_inputs looks at. `loft validate` checks everything; `loft data` without --tokens needs no model,
// `loft merge` no tokenizer.
struct RecipeInputChecks {
  bool model = true;      // model.path: a folder with a readable config.json and, for init = "pretrained", weights
  bool tokenizer = true;  // model.path holds tokenizer.json
  bool plugins = true;    // every plugin the recipe names loads (ABI, build fingerprint, registration)
};

// The inputs a valid recipe names, checked before anything runs, one diagnostic per problem located at its key:
// model.path (see RecipeInputChecks), every other non-empty option named `path` or `*_path` exists (`*_dir` options
// are folders loft creates), and the plugins load. Loads plugin libraries; reads no file's contents but config.json.
std::vector<Diagnostic> check_recipe_inputs(const Recipe& recipe, const ResolvedRecipe& resolved,
                                            PluginRegistry& registry, const RecipeInputChecks& checks = {});

// One diagnostic per entry of peft.targets (module patterns, loft/module_pattern.h) that names no adaptable linear
// of the model (the decoder layers' q/k/v/o/gate/up/down projections, within peft.layers when set), and for a
// peft.layers index past the model's last layer; located at the entry, or at peft.type for a default. Applies to
// the peft plugins that declare those options; validate_recipe calls it when config.json is readable.
std::vector<Diagnostic> check_peft_targets(const Recipe& recipe, const ResolvedRecipe& resolved,
                                           const Qwen2Config& config);

// `loft plugins describe`: one option as "  name  type  default X, >= a, <= b, one of ...\n      help" (no final
// newline), and a section of the framework schema, every key with its type, default, bounds and help (a plugin
// section: `type`, the installed plugins of that kind and the keys loft reads there). NotFound for an unknown
// section, with the sections listed.
std::string describe_option(const OptionSpec& spec);
StatusOr<std::string> describe_section(const std::string& section, const PluginRegistry& registry);

// Parses "15GiB", "512MiB", "1.5GB", "1000000" into bytes.
StatusOr<uint64_t> parse_byte_size(const std::string& text);

}  // namespace loft
