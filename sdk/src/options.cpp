// Options view and schema helpers.
#include "loft/options.h"

#include <sstream>
#include <stdexcept>

namespace loft {

const char* option_type_name(OptionType type) {
  switch (type) {
    case OptionType::kBool: return "bool";
    case OptionType::kInt: return "int";
    case OptionType::kFloat: return "float";
    case OptionType::kString: return "string";
    case OptionType::kStringList: return "string_list";
  }
  return "?";
}

const OptionSpec* find_option(const OptionSchema& schema, const std::string& name) {
  for (const auto& spec : schema) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string format_option_value(const OptionValue& value) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      std::ostringstream os;
      os << d;
      return os.str();
    }
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(const std::vector<std::string>& list) const {
      std::string out = "[";
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + quote(list[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{}, value);
}

Options::Options(std::string section, std::map<std::string, OptionValue> values)
    : section_(std::move(section)), values_(std::move(values)) {}

const OptionValue& Options::at(const std::string& name, const char* wanted) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    throw std::logic_error("option '" + section_ + "." + name + "' was read as " + wanted +
                           " but is not declared in the plugin's manifest");
  }
  return it->second;
}

bool Options::boolean(const std::string& name) const {
  const auto& v = at(name, "bool");
  if (auto* b = std::get_if<bool>(&v)) return *b;
  throw std::logic_error("option '" + section_ + "." + name + "' is not a bool");
}

int64_t Options::integer(const std::string& name) const {
  const auto& v = at(name, "int");
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  throw std::logic_error("option '" + section_ + "." + name + "' is not an int");
}

double Options::real(const std::string& name) const {
  const auto& v = at(name, "float");
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  throw std::logic_error("option '" + section_ + "." + name + "' is not a float");
}

const std::string& Options::string(const std::string& name) const {
  const auto& v = at(name, "string");
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  throw std::logic_error("option '" + section_ + "." + name + "' is not a string");
}

const std::vector<std::string>& Options::strings(const std::string& name) const {
  const auto& v = at(name, "string_list");
  if (auto* s = std::get_if<std::vector<std::string>>(&v)) return *s;
  throw std::logic_error("option '" + section_ + "." + name + "' is not a string list");
}

}  // namespace loft
