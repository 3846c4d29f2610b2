// What `loft plugins describe` prints: an option as one entry (name, type, default, bounds, help), and a framework
// section of the recipe schema with all its keys.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "recipe/suggest.h"

namespace loft {

std::string describe_option(const OptionSpec& spec) {
  std::string out = fmt::format("  {:<16} {:<12}", spec.name, option_type_name(spec.type));
  out += spec.default_value ? fmt::format(" default {}", format_option_value(*spec.default_value))
                            : std::string(" required");
  if (spec.min) out += fmt::format(", >= {}", *spec.min);
  if (spec.max) out += fmt::format(", <= {}", *spec.max);
  if (!spec.choices.empty()) out += fmt::format(", one of {}", fmt::join(spec.choices, "|"));
  if (!spec.doc.empty()) out += "\n      " + spec.doc;
  return out;
}

StatusOr<std::string> describe_section(const std::string& section, const PluginRegistry& registry) {
  const auto& schema = framework_schema();
  auto it = schema.find(section);
  if (it == schema.end()) {
    std::vector<std::string> names;
    for (const auto& [name, _] : schema) names.push_back(name);
    return Status::NotFound(fmt::format("no recipe section [{}]{}; sections: {}", section, did_you_mean(section, names),
                                        fmt::join(names, ", ")));
  }
  const OptionSchema& keys = it->second;
  std::string out;
  if (!is_plugin_section(section)) {
    out = fmt::format("[{}] (read by loft itself)\n", section);
    for (const auto& spec : keys) out += describe_option(spec) + "\n";
    return out;
  }
  // A plugin section: `type` picks the plugin, whose manifest declares the other keys; loft reads the rest itself.
  const std::string kind = section_plugin_kind(section);
  const std::vector<std::string> plugins = registry.names(kind);
  out = fmt::format("[{}]: `type` picks the {} plugin; its options are described by `loft plugins describe {}/NAME`\n",
                    section, kind, kind);
  out += describe_option(keys.front()) + "\n";
  out += fmt::format("      installed: {}\n", plugins.empty() ? std::string("none") : fmt::format("{}", fmt::join(plugins, ", ")));
  if (keys.size() > 1) {
    out += fmt::format("keys loft reads in [{}], whichever plugin is chosen:\n", section);
    for (size_t i = 1; i < keys.size(); ++i) out += describe_option(keys[i]) + "\n";
  }
  return out;
}

}  // namespace loft
