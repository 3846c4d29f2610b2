// Recipe parsing (toml++ with source positions), command-line overrides and validation against schemas.
#include "loft/framework/files.h"
#include "loft/framework/recipe.h"

#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "loft/framework/plugin_registry.h"
#include "loft/framework/quantizer_host.h"
#include "loft/framework/qwen2.h"
#include "recipe/suggest.h"
#include "recipe/toml_values.h"

namespace fs = std::filesystem;

namespace loft {

std::string SourceLocation::str() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

std::string Diagnostic::str() const { return where.str() + ": error: " + message; }

namespace {

SourceLocation locate(const std::string& file, const toml::source_region& region) {
  return SourceLocation{file, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

// One section's entries. A sub-table that is itself a schema section ([eval.dataset] inside [eval], or
// `dataset = {...}` written inline) becomes that section; any other table value is a problem.
void add_section(Recipe& recipe, const std::string& section_name, const toml::table& table,
                 const toml::source_region& where, const std::string& file) {
  RecipeSection section;
  section.name = section_name;
  section.where = locate(file, where);
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (const auto* sub = node.as_table(); sub && framework_schema().count(section_name + "." + name)) {
      add_section(recipe, section_name + "." + name, *sub, node.source(), file);
      continue;
    }
    auto value = natural_option_value(node);
    if (!value.ok()) {
      recipe.problems.push_back({locate(file, node.source()),
                                 fmt::format("{}.{}: {}", section_name, name, value.status().message())});
      continue;
    }
    RecipeEntry entry{std::move(value).value(), locate(file, node.source()), {}};
    if (const auto* array = node.as_array()) {
      for (const auto& item : *array) entry.item_where.push_back(locate(file, item.source()));
    }
    section.entries[name] = std::move(entry);
  }
  if (recipe.sections.count(section_name)) {  // ["eval.dataset"] beside [eval.dataset]: two tables, one section
    recipe.problems.push_back({section.where, fmt::format("section [{}] is written twice; merge the two", section_name)});
    return;
  }
  recipe.sections[section_name] = std::move(section);
}

Recipe recipe_from_table(const toml::table& root, const std::string& file) {
  Recipe recipe;
  recipe.path = file;
  for (const auto& [section_key, section_node] : root) {
    const std::string section_name(section_key.str());
    const auto* table = section_node.as_table();
    if (!table) {
      recipe.problems.push_back({locate(file, section_node.source()),
                                 fmt::format("top-level key '{}' must be a section like [{}]", section_name,
                                             section_name)});
      continue;
    }
    add_section(recipe, section_name, *table, section_node.source(), file);
  }
  return recipe;
}

std::string toml_error(const std::string& file, const toml::parse_error& e) {
  return fmt::format("{}:{}:{}: invalid TOML: {}", file, e.source().begin.line, e.source().begin.column,
                     e.description());
}

// The type a value was written with, in the words of OptionType.
std::string written_type(const OptionValue& v) {
  switch (v.index()) {
    case 0: return "a bool";
    case 1: return "an int";
    case 2: return "a float";
    case 3: return "a string";
    default: return "a list of strings";
  }
}

// Converts a written value to the declared type (int -> float allowed) or explains the mismatch.
StatusOr<OptionValue> coerce(const OptionValue& v, OptionType type) {
  switch (type) {
    case OptionType::kBool:
      if (std::holds_alternative<bool>(v)) return v;
      break;
    case OptionType::kInt:
      if (std::holds_alternative<int64_t>(v)) return v;
      break;
    case OptionType::kFloat:
      if (std::holds_alternative<double>(v)) return v;
      if (auto* i = std::get_if<int64_t>(&v)) return OptionValue(static_cast<double>(*i));
      break;
    case OptionType::kString:
      if (std::holds_alternative<std::string>(v)) return v;
      break;
    case OptionType::kStringList:
      if (std::holds_alternative<std::vector<std::string>>(v)) return v;
      break;
  }
  return Status::InvalidArgument(
      fmt::format("must be {}, got {} {}", type == OptionType::kInt ? "an int" : std::string("a ") + option_type_name(type),
                  written_type(v), format_option_value(v)));
}

// Range and choice checks; empty when fine.
std::string check_constraints(const OptionSpec& spec, const OptionValue& v) {
  if (auto* n = std::get_if<int64_t>(&v); n || std::holds_alternative<double>(v)) {
    double x = n ? static_cast<double>(*n) : std::get<double>(v);
    if (!std::isfinite(x)) return fmt::format("must be a finite number, got {}", format_option_value(v));
    if (spec.min && x < *spec.min) return fmt::format("= {} is out of range: must be >= {}", format_option_value(v), *spec.min);
    if (spec.max && x > *spec.max) return fmt::format("= {} is out of range: must be <= {}", format_option_value(v), *spec.max);
  }
  if (spec.choices.empty()) return "";
  if (auto* n = std::get_if<int64_t>(&v)) {
    const std::string text = std::to_string(*n);
    for (const auto& c : spec.choices) {
      if (c == text) return "";
    }
    return fmt::format("= {} is not one of {}", text, fmt::join(spec.choices, ", "));
  }
  auto check_one = [&](const std::string& s) -> std::string {
    for (const auto& c : spec.choices) {
      if (c == s) return "";
    }
    std::string list;
    for (const auto& c : spec.choices) list += (list.empty() ? "\"" : ", \"") + c + "\"";
    return fmt::format("= \"{}\" is not one of {}{}", s, list, did_you_mean(s, spec.choices));
  };
  if (auto* s = std::get_if<std::string>(&v)) return check_one(*s);
  if (auto* list = std::get_if<std::vector<std::string>>(&v)) {
    for (const auto& s : *list) {
      if (auto e = check_one(s); !e.empty()) return e;
    }
  }
  return "";
}

bool is_path_option(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return name == "path" || ends_with("_path") || ends_with("_dir") || name == "dir";
}

// What to say after "unknown key 'k' in [kind] (plugin kind/name)": the plugin's new name for a renamed option, a
// close option of the plugin, or the other plugins of the same kind that have that option (or a close one).
std::string plugin_key_hint(const std::string& key, const std::string& section, const PluginManifest& plugin,
                            const OptionSchema& schema, const PluginRegistry& registry) {
  std::vector<std::string> known;
  for (const auto& spec : schema) known.push_back(spec.name);
  if (auto it = plugin.renamed_options.find(key); it != plugin.renamed_options.end()) {
    return fmt::format(": {} calls it `{}` now; write {}.{} instead", plugin.qualified_name(), it->second, section,
                       it->second);
  }
  if (auto near = closest_match(key, known)) return fmt::format(" (did you mean '{}'?)", *near);
  std::vector<std::string> owners, near_owners;
  std::optional<std::string> near_other;
  for (const auto& other : registry.plugins()) {
    if (other.kind != plugin.kind || other.name == plugin.name) continue;
    if (auto it = other.renamed_options.find(key); it != other.renamed_options.end() && find_option(schema, it->second)) {
      return fmt::format(" (did you mean '{}'? `{}` is the former name of `{}` in {})", it->second, key, it->second,
                         other.qualified_name());
    }
    std::vector<std::string> theirs;
    for (const auto& spec : other.options) theirs.push_back(spec.name);
    if (find_option(other.options, key)) {
      owners.push_back(other.name);
    } else if (auto m = closest_match(key, theirs); m && (!near_other || *near_other == *m)) {
      near_other = *m;
      near_owners.push_back(other.name);
    }
  }
  if (!owners.empty()) {
    return fmt::format(": `{}` is an option of {} plugin {}, not of {}; set {}.type = \"{}\" to use it, or remove "
                       "the key",
                       key, plugin.kind, fmt::join(owners, ", "), plugin.qualified_name(), section, owners.front());
  }
  if (near_other) {
    return fmt::format(" (did you mean '{}'? an option of {} plugin {}, not of {})", *near_other, plugin.kind,
                       fmt::join(near_owners, ", "), plugin.qualified_name());
  }
  return "";
}

// Validates one section's entries against a schema and resolves defaults. `hint` says what to add after an unknown
// key's message (default: the closest known key).
void check_section(const RecipeSection* section, const std::string& section_name, const OptionSchema& schema,
                   const std::string& owner, const SourceLocation& fallback, const fs::path& base_dir,
                   std::vector<Diagnostic>& out, std::map<std::string, OptionValue>& resolved,
                   const std::function<std::string(const std::string&)>& hint = nullptr) {
  std::vector<std::string> known;
  for (const auto& spec : schema) known.push_back(spec.name);
  if (section) {
    for (const auto& [key, entry] : section->entries) {
      if (key == "type" && !find_option(schema, "type")) continue;  // plugin sections: checked by the caller
      const OptionSpec* spec = find_option(schema, key);
      if (!spec) {
        out.push_back({entry.where, fmt::format("unknown key '{}' in [{}]{}{}", key, section_name, owner,
                                                hint ? hint(key) : did_you_mean(key, known))});
        continue;
      }
      auto value = coerce(entry.value, spec->type);
      if (!value.ok()) {
        out.push_back({entry.where, fmt::format("{}.{} {}", section_name, key, value.status().message())});
        continue;
      }
      if (auto e = check_constraints(*spec, value.value()); !e.empty()) {
        out.push_back({entry.where, fmt::format("{}.{} {}", section_name, key, e)});
        continue;
      }
      resolved[key] = value.value();
    }
  }
  for (const auto& spec : schema) {
    if (resolved.count(spec.name) || (section && section->entries.count(spec.name))) continue;
    if (spec.default_value) {
      resolved[spec.name] = *spec.default_value;
    } else {
      out.push_back({section ? section->where : fallback,
                     fmt::format("[{}] needs `{}` ({}){}", section_name, spec.name, spec.doc, owner)});
    }
  }
  for (auto& [key, value] : resolved) {
    auto* s = std::get_if<std::string>(&value);
    if (s && !s->empty() && is_path_option(key) && fs::path(*s).is_relative()) {
      *s = (base_dir / *s).lexically_normal().string();
    }
  }
}

}  // namespace

StatusOr<Recipe> parse_recipe_text(std::string_view text, const std::string& source_name) {
  try {
    toml::table root = toml::parse(text, source_name);
    return recipe_from_table(root, source_name);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(toml_error(source_name, e));
  }
}

StatusOr<Recipe> parse_recipe_file(const fs::path& path) {
  if (!fs::is_regular_file(path)) {
    return Status::NotFound(fmt::format("{}: no such recipe file", path.string()));
  }
  try {
    toml::table root = toml::parse_file(path.string());
    return recipe_from_table(root, path.string());
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(toml_error(path.string(), e));
  }
}

Status apply_override(Recipe& recipe, const std::string& assignment, int position) {
  const size_t eq = assignment.find('=');
  const std::string key = assignment.substr(0, eq);
  // The key is the last dotted part; the section may be dotted itself (eval.dataset.seed=7) when the schema has it.
  const size_t dot = key.rfind('.');
  const bool known_section = dot != std::string::npos && (key.find('.') == dot || framework_schema().count(key.substr(0, dot)));
  if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == key.size() || !known_section) {
    return Status::InvalidArgument(fmt::format(
        "override '{}' must look like section.key=value (for example train.max_steps=50)", assignment));
  }
  const std::string section = key.substr(0, dot), name = key.substr(dot + 1), text = assignment.substr(eq + 1);
  OptionValue value = text;  // a bare word (path, name) is a string
  try {
    toml::table t = toml::parse("v = " + text);
    if (const auto* node = t.get("v")) {
      auto natural = natural_option_value(*node);
      if (!natural.ok()) return Status::InvalidArgument(fmt::format("override '{}': {}", assignment, natural.status().message()));
      value = natural.value();
    }
  } catch (const toml::parse_error&) {
  }
  SourceLocation where{fmt::format("<command line override #{} '{}'>", position, assignment), 0, 0};
  auto& s = recipe.sections[section];
  if (s.name.empty()) {
    s.name = section;
    s.where = where;
  }
  RecipeEntry entry{std::move(value), where, {}};
  if (auto* items = std::get_if<std::vector<std::string>>(&entry.value)) entry.item_where.assign(items->size(), where);
  s.entries[name] = std::move(entry);
  return Status::Ok();
}

namespace {

// Manifests' `requires` (see OptionRequirement): a plugin's bool option that is true needs other recipe keys to have
// given values. Reported at the option's line (or its section's, when it came from the default).
std::vector<Diagnostic> check_requirements(const Recipe& recipe, const ResolvedRecipe& resolved,
                                           const std::map<std::string, const PluginManifest*>& manifests,
                                           const SourceLocation& top) {
  std::vector<Diagnostic> out;
  for (const auto& [section, manifest] : manifests) {
    const Options& options = resolved.sections.at(section);
    for (const OptionRequirement& r : manifest->requirements) {
      const auto set = options.values().find(r.option);
      if (set == options.values().end() || !std::holds_alternative<bool>(set->second) || !std::get<bool>(set->second)) {
        continue;
      }
      const size_t dot = r.key.find('.');
      const std::string other = r.key.substr(0, dot), name = r.key.substr(dot + 1);
      std::optional<OptionValue> actual;
      if (name == "type" && resolved.plugin_types.count(other)) {
        actual = resolved.plugin_types.at(other);
      } else if (auto o = resolved.sections.find(other); o != resolved.sections.end() && o->second.has(name)) {
        actual = o->second.values().at(name);
      }
      if (!actual) continue;  // that section has errors of its own, reported already
      const auto* text = std::get_if<std::string>(&*actual);
      if (text ? *text == r.value : format_option_value(*actual) == r.value) continue;
      const bool wanted_string = std::holds_alternative<std::string>(*actual);
      const std::string wanted = wanted_string ? fmt::format("\"{}\"", r.value) : r.value;
      SourceLocation where = top;
      if (auto s = recipe.sections.find(section); s != recipe.sections.end()) {
        auto e = s->second.entries.find(r.option);
        where = e != s->second.entries.end() ? e->second.where : s->second.where;
      }
      out.push_back({where, fmt::format("{}.{} = true (plugin {}) needs {} = {}, got {}; set {} = {} or {}.{} = false",
                                        section, r.option, manifest->qualified_name(), r.key, wanted,
                                        format_option_value(*actual), r.key, wanted, section, r.option)});
    }
  }
  return out;
}

// [eval]: the held-out dataset must be named, and no key may be written that does nothing: limit and
// max_new_tokens act only with accuracy = true (without it they are left out of the resolved recipe).
void check_eval_section(const Recipe& recipe, ResolvedRecipe& resolved, const SourceLocation& top,
                        std::vector<Diagnostic>& out) {
  const auto written = recipe.sections.find("eval");
  if (!recipe.sections.count(kEvalDatasetSection)) {
    out.push_back({written != recipe.sections.end() ? written->second.where : top,
                   "[eval] needs an [eval.dataset] section naming the held-out dataset plugin and its options, e.g. "
                   "[eval.dataset] type = \"synthetic\", seed = 7 (or remove [eval])"});
  }
  auto eval = resolved.sections.find("eval");
  if (eval == resolved.sections.end() || !eval->second.has("accuracy") || eval->second.boolean("accuracy")) return;
  std::map<std::string, OptionValue> values = eval->second.values();
  for (const char* key : {"limit", "max_new_tokens"}) {
    values.erase(key);
    if (written == recipe.sections.end()) continue;
    if (auto e = written->second.entries.find(key); e != written->second.entries.end()) {
      out.push_back({e->second.where, fmt::format("eval.{} is used only with eval.accuracy = true (generation and "
                                                  "grading at the end of the run); set eval.accuracy = true or remove "
                                                  "eval.{}", key, key)});
    }
  }
  eval->second = Options("eval", std::move(values));
}

}  // namespace

std::vector<Diagnostic> validate_recipe(const Recipe& recipe, const PluginRegistry& registry, ResolvedRecipe* out) {
  std::vector<Diagnostic> diags = recipe.problems;
  const auto& schema = framework_schema();
  const fs::path base_dir = fs::absolute(recipe.path).parent_path();
  const SourceLocation top{recipe.path.string(), 1, 1};
  std::vector<std::string> section_names;
  for (const auto& [name, _] : schema) section_names.push_back(name);

  ResolvedRecipe resolved;
  resolved.path = recipe.path;
  std::map<std::string, const PluginManifest*> manifests;  // by plugin section, for the requirements check
  for (const auto& [name, section] : recipe.sections) {
    if (!schema.count(name)) {
      diags.push_back({section.where, fmt::format("unknown section [{}]{}", name, did_you_mean(name, section_names))});
    }
  }
  // [eval] and [eval.dataset] come together: either one written makes both resolved.
  const bool has_eval = recipe.sections.count("eval") || recipe.sections.count(kEvalDatasetSection);
  for (const auto& schema_entry : schema) {
    // Not a structured binding: lambdas below capture `name`, which C++17 (clang) refuses for bindings.
    const std::string& name = schema_entry.first;
    const auto& section_schema = schema_entry.second;
    auto it = recipe.sections.find(name);
    const RecipeSection* section = it == recipe.sections.end() ? nullptr : &it->second;
    // [eval] gets its defaults when only [eval.dataset] is written; a missing [eval.dataset] is check_eval_section's.
    if (is_optional_section(name) && (!has_eval || (!section && is_plugin_section(name)))) continue;
    std::map<std::string, OptionValue> values;
    if (!is_plugin_section(name)) {
      check_section(section, name, section_schema, "", top, base_dir, diags, values);
      if (name == "budget" && section) {
        for (const auto& [key, entry] : section->entries) {
          auto* text = std::get_if<std::string>(&entry.value);
          if (!text || text->empty() || !find_option(section_schema, key)) continue;
          if (auto bytes = parse_byte_size(*text); !bytes.ok()) {
            diags.push_back({entry.where, fmt::format("budget.{}: {}", key, bytes.status().message())});
          }
        }
      }
      resolved.sections[name] = Options(name, std::move(values));
      continue;
    }
    // Plugin section: `type` picks the plugin (of the section's kind), whose manifest declares the other keys.
    const std::string kind = section_plugin_kind(name);
    std::string type;
    const RecipeEntry* type_entry = section ? (section->entries.count("type") ? &section->entries.at("type") : nullptr)
                                            : nullptr;
    if (type_entry) {
      if (auto* s = std::get_if<std::string>(&type_entry->value)) {
        type = *s;
      } else {
        diags.push_back({type_entry->where, fmt::format("{}.type must be a string naming {} {} plugin, got {}", name,
                                                        std::string("aeiou").find(kind[0]) == std::string::npos ? "a" : "an",
                                                        kind, written_type(type_entry->value))});
        continue;
      }
    } else if (section_schema.front().default_value) {
      type = std::get<std::string>(*section_schema.front().default_value);
    } else {
      auto names = registry.names(kind);
      diags.push_back({section ? section->where : top,
                       fmt::format("[{}] needs `type` naming a {} plugin (available: {})", name, kind,
                                   fmt::format("{}", fmt::join(names, ", ")))});
      continue;
    }
    const SourceLocation type_where = type_entry ? type_entry->where : (section ? section->where : top);
    if (auto usable = registry.check_usable(kind, type); !usable.ok()) {
      diags.push_back({type_where, usable.message()});
      continue;
    }
    const PluginManifest* manifest = registry.find(kind, type);
    if (!manifest) {
      auto names = registry.names(kind);
      diags.push_back({type_entry ? type_entry->where : (section ? section->where : top),
                       fmt::format("unknown {} plugin '{}'{}; available: {}", kind, type, did_you_mean(type, names),
                                   names.empty() ? std::string("none found") : fmt::format("{}", fmt::join(names, ", ")))});
      continue;
    }
    // The plugin's declared options plus the host's own keys of this section (everything but `type`).
    OptionSchema merged = manifest->options;
    for (size_t i = 1; i < section_schema.size(); ++i) merged.push_back(section_schema[i]);
    check_section(section, name, merged, fmt::format(" (plugin {})", manifest->qualified_name()), top, base_dir, diags,
                  values, [&](const std::string& key) { return plugin_key_hint(key, name, *manifest, merged, registry); });
    resolved.plugin_types[name] = type;
    resolved.sections[name] = Options(name, std::move(values));
    manifests[name] = manifest;
  }
  for (auto& d : check_requirements(recipe, resolved, manifests, top)) diags.push_back(std::move(d));
  if (has_eval) check_eval_section(recipe, resolved, top, diags);
  // model.path's config.json, read once here: the checks below use it, and the run builds its model from it.
  if (auto m = resolved.sections.find("model"); m != resolved.sections.end() && m->second.has("path")) {
    const fs::path config_json = fs::path(m->second.string("path")) / "config.json";
    if (fs::is_regular_file(config_json)) {
      auto config = read_qwen2_config(config_json);
      if (config.ok()) resolved.model_config = std::make_shared<const Qwen2Config>(std::move(config).value());
    }
  }
  for (auto& d : check_quantizer_skip(recipe, resolved.model_config.get())) diags.push_back(std::move(d));
  if (resolved.model_config && resolved.sections.count("peft") && resolved.sections.count("model")) {
    for (auto& d : check_peft_targets(recipe, resolved, *resolved.model_config)) diags.push_back(std::move(d));
  }
  std::sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.where.file, a.where.line, a.where.column) < std::tie(b.where.file, b.where.line, b.where.column);
  });
  if (diags.empty() && out) *out = std::move(resolved);
  return diags;
}

std::string eval_not_held_out_warning(const ResolvedRecipe& recipe) {
  auto held_out = recipe.sections.find(kEvalDatasetSection), train = recipe.sections.find("dataset");
  if (held_out == recipe.sections.end() || train == recipe.sections.end()) return "";
  auto type = [&](const std::string& section) {
    auto it = recipe.plugin_types.find(section);
    return it == recipe.plugin_types.end() ? std::string() : it->second;
  };
  std::map<std::string, OptionValue> train_options = train->second.values();
  train_options.erase("max_length");  // the host's key, shared by both
  if (type("dataset") != type(kEvalDatasetSection) || train_options != held_out->second.values()) return "";
  return fmt::format("[eval.dataset] is the training [dataset] (dataset/{} with the same options): the validation loss "
                     "and accuracy are measured on training data; give [eval.dataset] other data (another file, "
                     "split or seed)", type("dataset"));
}

std::string ResolvedRecipe::to_toml() const {
  std::ostringstream os;
  os << "# resolved from " << path.string() << " (defaults filled in, overrides applied)\n";
  for (const auto& [name, options] : sections) {
    os << "\n[" << name << "]\n";
    if (auto it = plugin_types.find(name); it != plugin_types.end()) {
      os << "type = " << format_option_value(it->second) << "\n";
    }
    for (const auto& [key, value] : options.values()) os << key << " = " << format_option_value(value) << "\n";
  }
  return os.str();
}

StatusOr<uint64_t> parse_byte_size(const std::string& text) {
  size_t end = 0;
  double number = 0;
  try {
    number = std::stod(text, &end);
  } catch (const std::exception&) {
    return Status::InvalidArgument(fmt::format("'{}' is not a size (write e.g. \"15GiB\", \"512MiB\")", text));
  }
  if (!std::isfinite(number)) {
    return Status::InvalidArgument(fmt::format("'{}' is not a finite size (write e.g. \"15GiB\", \"512MiB\")", text));
  }
  std::string unit = text.substr(end);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1}, {"B", 1}, {"KiB", 1024.0}, {"MiB", 1024.0 * 1024}, {"GiB", 1024.0 * 1024 * 1024},
      {"TiB", 1024.0 * 1024 * 1024 * 1024}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}};
  for (const auto& [u, scale] : kUnits) {
    if (unit == u) {
      if (number < 0) return Status::InvalidArgument(fmt::format("'{}' is negative", text));
      if (number * scale >= 18446744073709551616.0) {
        return Status::InvalidArgument(fmt::format("'{}' is larger than 16 EiB", text));
      }
      return static_cast<uint64_t>(number * scale);
    }
  }
  return Status::InvalidArgument(fmt::format("'{}' has unknown unit '{}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                                             text, unit));
}

}  // namespace loft
