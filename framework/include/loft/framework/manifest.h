// Plugin manifests (plugin.toml beside each plugin library): read without loading any plugin code.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "loft/options.h"
#include "loft/plugin_kinds.h"
#include "loft/status.h"

namespace loft {

// The plugin kinds loft knows (plugin_kinds.h), in the order recipes list them.
inline constexpr const char* kPluginKinds[] = {
#define LOFT_KIND_NAME(Interface, kind, default_type, doc) #kind,
    LOFT_PLUGIN_KINDS(LOFT_KIND_NAME)
#undef LOFT_KIND_NAME
};
bool is_plugin_kind(const std::string& kind);
// "quantizer, peft, offload, ...": for messages.
std::string plugin_kind_list();

// A bool option's `requires = { "section.key" = "value", ... }`: when the option is true, each named recipe key
// (`type` included: "optimizer.type") must have that value. `loft validate` checks it, since a plugin's factory sees
// only its own section (offload/zero3's optimizer = true needs optimizer.type = "adamw_cpu").
struct OptionRequirement {
  std::string option;  // this plugin's bool option: "optimizer"
  std::string key;     // "optimizer.type"
  std::string value;   // "adamw_cpu", as the recipe spells a string, or an int/float/bool in TOML
};

struct PluginManifest {
  std::string kind;      // "quantizer"
  std::string name;      // "int8"
  std::string version;   // "0.1.0"
  uint32_t sdk_abi = 0;  // LOFT_SDK_ABI_VERSION it was built for
  std::string summary;
  std::filesystem::path manifest_path;
  std::filesystem::path library_path;  // absolute: the manifest's folder / `library`
  OptionSchema options;
  // [renamed] old = "new": options this plugin used to call by another name. A recipe that still writes the old
  // name is refused with the new one (one name per meaning; no silent aliases).
  std::map<std::string, std::string> renamed_options;
  std::vector<OptionRequirement> requirements;

  std::string qualified_name() const { return kind + "/" + name; }
};

// Parses and checks one plugin.toml. Errors name the file, line and key. A `library` that lies outside the
// manifest's own folder (absolute, a `..` component, or a symlink that resolves elsewhere) is refused: a manifest
// describes the plugin beside it, and must not make loft load code from anywhere else.
StatusOr<PluginManifest> read_manifest(const std::filesystem::path& manifest_path);

}  // namespace loft
