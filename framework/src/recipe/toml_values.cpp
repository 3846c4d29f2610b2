// TOML node -> OptionValue.
#include "recipe/toml_values.h"

#include <fmt/format.h>

namespace loft {

std::string describe_toml_node(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::boolean: return "a bool";
    case toml::node_type::integer: return "an int";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::string: return "a string";
    case toml::node_type::array: return "a list";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

StatusOr<OptionValue> option_value_from_toml(const toml::node& node, OptionType type) {
  auto mismatch = [&](const char* wanted) {
    return Status::InvalidArgument(fmt::format("expected {}, got {}", wanted, describe_toml_node(node)));
  };
  switch (type) {
    case OptionType::kBool:
      if (auto v = node.value_exact<bool>()) return OptionValue(*v);
      return mismatch("a bool (true or false)");
    case OptionType::kInt:
      if (auto v = node.value_exact<int64_t>()) return OptionValue(*v);
      return mismatch("an int");
    case OptionType::kFloat:
      if (auto v = node.value_exact<double>()) return OptionValue(*v);
      if (auto v = node.value_exact<int64_t>()) return OptionValue(static_cast<double>(*v));
      return mismatch("a float");
    case OptionType::kString:
      if (auto v = node.value_exact<std::string>()) return OptionValue(*v);
      return mismatch("a string");
    case OptionType::kStringList: {
      const auto* array = node.as_array();
      if (!array) return mismatch("a list of strings");
      std::vector<std::string> items;
      for (const auto& item : *array) {
        auto s = item.value_exact<std::string>();
        if (!s) {
          return Status::InvalidArgument(
              fmt::format("expected a list of strings, but an item is {}", describe_toml_node(item)));
        }
        items.push_back(*s);
      }
      return OptionValue(std::move(items));
    }
  }
  return mismatch("a known type");
}

StatusOr<OptionValue> natural_option_value(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::boolean: return option_value_from_toml(node, OptionType::kBool);
    case toml::node_type::integer: return option_value_from_toml(node, OptionType::kInt);
    case toml::node_type::floating_point: return option_value_from_toml(node, OptionType::kFloat);
    case toml::node_type::string: return option_value_from_toml(node, OptionType::kString);
    case toml::node_type::array: return option_value_from_toml(node, OptionType::kStringList);
    default: return Status::InvalidArgument("expected a bool, number, string or list of strings, got " +
                                            describe_toml_node(node));
  }
}

}  // namespace loft
