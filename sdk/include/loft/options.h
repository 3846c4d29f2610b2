// Plugin options: the declared schema (from the plugin's manifest) and the typed, read-only view a plugin reads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace loft {

enum class OptionType { kBool, kInt, kFloat, kString, kStringList };

// Everything here is host-side only (no CUDA work, no stream) and never blocks.

// "bool", "int", "float", "string", "string_list": the spellings used in manifests and error messages. Returns
// static storage; never throws.
const char* option_type_name(OptionType type);

using OptionValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

// One declared option. Ranges apply to int and float; choices to string and to each item of a string list.
struct OptionSpec {
  std::string name;
  OptionType type = OptionType::kString;
  std::optional<OptionValue> default_value;  // absent means the recipe must set it
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> choices;
  std::string doc;
};

// The declared options of one plugin or framework section, in declaration order.
using OptionSchema = std::vector<OptionSpec>;

// The spec named `name`, pointing into `schema` (valid while `schema` is), or nullptr. Never throws.
const OptionSpec* find_option(const OptionSchema& schema, const std::string& name);

// Renders a value the way a recipe would spell it ("1e-4", "\"cosine\"", "[\"q_proj\"]"). Throws only
// std::bad_alloc.
std::string format_option_value(const OptionValue& value);

// The resolved options handed to a plugin factory: every declared option has a value (the recipe's or the
// default), already checked against the schema. Asking for an undeclared name or the wrong type is a programming
// error in the plugin and throws std::logic_error naming the option. Immutable; safe to read from any thread.
// A factory receives it by const reference for the call only: copy what the component keeps.
class Options {
 public:
  Options() = default;
  // The host builds it (section: the recipe section, e.g. "peft"; values: resolved and checked).
  Options(std::string section, std::map<std::string, OptionValue> values);

  // Typed reads. Throw std::logic_error naming the section and option when it is undeclared or of another type.
  // References returned point into this object and are valid as long as it is.
  bool boolean(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;  // accepts an int value too
  const std::string& string(const std::string& name) const;
  const std::vector<std::string>& strings(const std::string& name) const;

  // Never throw.
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, OptionValue>& values() const { return values_; }
  const std::string& section() const { return section_; }

 private:
  const OptionValue& at(const std::string& name, const char* wanted) const;
  std::string section_;
  std::map<std::string, OptionValue> values_;
};

}  // namespace loft
