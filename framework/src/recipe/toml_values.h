// Conversion of TOML nodes to loft option values, shared by manifests and recipes.
#pragma once

#include <toml++/toml.h>

#include "loft/options.h"
#include "loft/status.h"

namespace loft {

// What a TOML node holds, in recipe words ("an int", "a string", "a table").
std::string describe_toml_node(const toml::node& node);

// Converts `node` to a value of `type`; an int is accepted where a float is wanted. The error says what was found.
StatusOr<OptionValue> option_value_from_toml(const toml::node& node, OptionType type);

// Converts a node to the value it naturally is (for keys whose type is not known yet).
StatusOr<OptionValue> natural_option_value(const toml::node& node);

}  // namespace loft
